"""Host (NumPy) operators, continued: BitCast, TfIdfVectorizer, MaxPool with Indices, MaxUnpool,
N-d pooling beyond the 2-D kernels, DeformConv, STFT, MelWeightMatrix, and the update rules
of the ``ai.onnx.preview.training`` domain (Adagrad, Adam, Momentum). As in
:mod:`ops_host`, inputs are evaluated first.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("BitCast", "MaxUnpool", "STFT", "Adam"))
    True
"""

from __future__ import annotations

import math
from typing import Any, List

import numpy as np

from ..errors import BackendError
from .ops_elementwise import onnx_elem_to_np
from .registry import OpContext, Value, register


def _np(ctx: OpContext, v: Value) -> np.ndarray:
    return np.asarray(ctx.a(v))


@register("BitCast")
def _bitcast(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = _np(ctx, xs[0])
    dt = onnx_elem_to_np(int(node.attrs["to"]))
    if dt.itemsize != x.dtype.itemsize:
        raise BackendError(f"BitCast between {x.dtype} and {dt} needs equal element sizes")
    return (x if x.flags.c_contiguous else np.ascontiguousarray(x)).view(dt)


def maxpool_with_indices(ctx: OpContext, node: Any, xs: List[Value]) -> List[np.ndarray]:
    """2-D MaxPool returning (values, flat NCHW indices of the maxima)."""
    x = _np(ctx, xs[0])
    if x.ndim != 4:
        raise BackendError("MaxPool with Indices supports 2-D pooling only")
    a = node.attrs
    k = [int(v) for v in a["kernel_shape"]]
    s = [int(v) for v in a.get("strides", [1, 1])]
    d = [int(v) for v in a.get("dilations", [1, 1])]
    p = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID") or int(a.get("ceil_mode", 0)):
        raise BackendError("MaxPool with Indices: auto_pad SAME / ceil_mode are not supported")
    n, c, h, w = x.shape
    oh = (h + p[0] + p[2] - d[0] * (k[0] - 1) - 1) // s[0] + 1
    ow = (w + p[1] + p[3] - d[1] * (k[1] - 1) - 1) // s[1] + 1
    best = np.full((n, c, oh, ow), -np.inf)
    where = np.zeros((n, c, oh, ow), np.int64)
    rows = np.arange(oh) * s[0] - p[0]
    cols = np.arange(ow) * s[1] - p[1]
    col_major = int(a.get("storage_order", 0))
    base = np.arange(n * c).reshape(n, c, 1, 1) * h * w
    for i in range(k[0]):
        for j in range(k[1]):
            r = (rows + i * d[0])[:, None]
            q = (cols + j * d[1])[None, :]
            ok = (r >= 0) & (r < h) & (q >= 0) & (q < w)
            rr, qq = np.clip(r, 0, h - 1), np.clip(q, 0, w - 1)
            v = np.where(ok, x[:, :, rr, qq], -np.inf)
            better = v > best
            best = np.where(better, v, best)
            flat = rr * w + qq if not col_major else qq * h + rr
            where = np.where(better, base + flat, where)
    return [best.astype(x.dtype), where]


@register("MaxUnpool")
def _max_unpool(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, idx = _np(ctx, xs[0]), _np(ctx, xs[1]).astype(np.int64)
    a = node.attrs
    nd = x.ndim - 2
    k = [int(v) for v in a["kernel_shape"]]
    s = [int(v) for v in a.get("strides", [1] * nd)]
    p = [int(v) for v in a.get("pads", [0] * (2 * nd))]
    spatial = [(x.shape[2 + i] - 1) * s[i] - p[i] - p[i + nd] + k[i] for i in range(nd)]
    inferred = list(x.shape[:2]) + spatial
    # indices address the inferred (unpadded) shape; output_shape only adds room at the end
    flat = np.zeros(int(np.prod(inferred)), dtype=x.dtype)
    if np.any(idx < 0) or np.any(idx >= flat.size):
        raise BackendError("MaxUnpool: an index is outside the output")
    flat[idx.reshape(-1)] = x.reshape(-1)
    if len(xs) <= 2 or xs[2] is None:
        return flat.reshape(inferred)
    shape = [int(v) for v in _np(ctx, xs[2]).reshape(-1)]
    if len(shape) != len(inferred) or any(o < i for o, i in zip(shape, inferred)):
        raise BackendError("MaxUnpool: output_shape is smaller than the unpooled shape")
    out = np.zeros(shape, dtype=x.dtype)
    out[tuple(slice(0, i) for i in inferred)] = flat.reshape(inferred)
    return out


@register("STFT")
def _stft(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    xs = list(xs) + [None] * (4 - len(xs))
    x = _np(ctx, xs[0])
    step = int(_np(ctx, xs[1]).reshape(-1)[0])
    window = _np(ctx, xs[2]).reshape(-1) if xs[2] is not None else None
    if xs[3] is not None:
        length = int(_np(ctx, xs[3]).reshape(-1)[0])
    else:
        length = window.size if window is not None else x.shape[-2]
    if window is None:
        window = np.ones(length)
    if x.ndim != 3 or x.shape[2] not in (1, 2) or window.size != length or step <= 0:
        raise BackendError("STFT: signal (B, L, 1|2), frame_step > 0, window of frame_length")
    sig = x[..., 0] if x.shape[2] == 1 else x[..., 0] + 1j * x[..., 1]
    frames = 1 + (sig.shape[1] - length) // step
    if frames < 1:
        raise BackendError("STFT: the signal is shorter than one frame")
    idx = np.arange(frames)[:, None] * step + np.arange(length)[None, :]
    spec = np.fft.fft(sig[:, idx] * window, n=length, axis=-1)  # (B, frames, length)
    if int(node.attrs.get("onesided", 1)):
        spec = spec[..., : length // 2 + 1]
    return np.stack([spec.real, spec.imag], -1).astype(x.dtype)


@register("MelWeightMatrix")
def _mel_weight_matrix(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    bins, dft, rate = (int(_np(ctx, v).reshape(-1)[0]) for v in xs[:3])
    lo_hz, hi_hz = (float(_np(ctx, v).reshape(-1)[0]) for v in xs[3:5])
    spec_bins = dft // 2 + 1
    lo_mel = 2595 * math.log1p(lo_hz / 700) / math.log(10)
    hi_mel = 2595 * math.log1p(hi_hz / 700) / math.log(10)
    points = np.arange(bins + 2)
    mel = points * ((hi_mel - lo_mel) / (bins + 2)) + lo_mel
    hz = 700 * np.expm1(mel / 2595 * math.log(10))
    f = (((dft + 1) * hz) // rate).astype(int)
    out = np.zeros((spec_bins, bins))
    for i in range(bins):
        left, center, right = f[i], f[i + 1], f[i + 2]
        if center == left:
            out[center, i] = 1
        else:
            for j in range(left, center + 1):
                out[j, i] = (j - left) / (center - left)
        for j in range(center, right):
            out[j, i] = (right - j) / (right - center)
    return out.astype(onnx_elem_to_np(int(node.attrs.get("output_datatype", 1))))


def _groups(xs: List[Value], per: int, op: str) -> int:
    n = (len(xs) - 2) // per
    if n < 1 or len(xs) != 2 + per * n:
        raise BackendError(f"{op}: expected R, T and {per} tensors per optimized input")
    return n


@register("Adagrad")
def _adagrad(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    a = node.attrs
    r, t = float(_np(ctx, xs[0])), float(_np(ctx, xs[1]))
    decay, eps = float(a.get("decay_factor", 0.0)), float(a.get("epsilon", 0.0))
    norm = float(a.get("norm_coefficient", 0.0))
    n = _groups(xs, 3, "Adagrad")
    new_x, new_h = [], []
    for i in range(n):
        x, g, h = (_np(ctx, xs[2 + k * n + i]) for k in range(3))
        rate = r / (1 + t * decay)
        gr = norm * x + g
        h2 = h + gr * gr
        new_x.append((x - rate * gr / (np.sqrt(h2) + eps)).astype(x.dtype))
        new_h.append(h2.astype(h.dtype))
    return new_x + new_h


@register("Adam")
def _adam(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    a = node.attrs
    r, t = float(_np(ctx, xs[0])), float(_np(ctx, xs[1]))
    alpha, beta = float(a.get("alpha", 0.9)), float(a.get("beta", 0.999))
    eps, norm = float(a.get("epsilon", 0.0)), float(a.get("norm_coefficient", 0.0))
    post = float(a.get("norm_coefficient_post", 0.0))
    n = _groups(xs, 4, "Adam")
    outs: List[List[np.ndarray]] = [[], [], []]
    for i in range(n):
        x, g, v, h = (_np(ctx, xs[2 + k * n + i]) for k in range(4))
        gr = norm * x + g
        v2 = alpha * v + (1 - alpha) * gr
        h2 = beta * h + (1 - beta) * gr * gr
        rate = r * math.sqrt(1 - beta**t) / (1 - alpha**t) if t > 0 else r
        x2 = (1 - post) * (x - rate * (v2 / (np.sqrt(h2) + eps)))
        for lst, val, like in zip(outs, (x2, v2, h2), (x, v, h)):
            lst.append(val.astype(like.dtype))
    return outs[0] + outs[1] + outs[2]


@register("Momentum")
def _momentum(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    a = node.attrs
    r, t = float(_np(ctx, xs[0])), float(_np(ctx, xs[1]))
    alpha, beta = float(a["alpha"]), float(a["beta"])
    norm = float(a["norm_coefficient"])
    mode = a.get("mode", "standard")
    n = _groups(xs, 3, "Momentum")
    new_x, new_v = [], []
    for i in range(n):
        x, g, v = (_np(ctx, xs[2 + k * n + i]) for k in range(3))
        gr = norm * x + g
        v2 = alpha * v + (beta if t > 0 else 1.0) * gr
        x2 = x - r * v2 if mode == "standard" else x - r * (gr + alpha * v2)
        new_x.append(x2.astype(x.dtype))
        new_v.append(v2.astype(v.dtype))
    return new_x + new_v


def pool_nd(ctx: OpContext, node: Any, xs: List[Value], kind: str) -> np.ndarray:
    """N-d MaxPool / AveragePool / LpPool on the host, following the ONNX reference exactly
    (dilations, ceil_mode, explicit pads larger than the kernel, count_include_pad): used for
    what the 2-D kernels do not cover (3-D pooling, dilated average pooling, large pads)."""
    x = _np(ctx, xs[0]).astype(np.float64)
    a = node.attrs
    nd = x.ndim - 2
    k = [int(v) for v in a["kernel_shape"]]
    s = [int(v) for v in a.get("strides", [1] * nd)]
    d = [int(v) for v in a.get("dilations", [1] * nd)]
    pads = [int(v) for v in a.get("pads", [0] * (2 * nd))]
    if a.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID"):
        raise BackendError(
            f"{node.op_type}: auto_pad SAME with this configuration is not supported"
        )
    ceil = bool(int(a.get("ceil_mode", 0)))
    include = bool(int(a.get("count_include_pad", 0)))
    spatial = list(x.shape[2:])
    out, padded_pads = [], list(pads)
    for i in range(nd):
        sw = d[i] * (k[i] - 1) + 1
        size = (spatial[i] + pads[i] + pads[nd + i] - sw) / s[i] + 1
        o = int(np.ceil(size)) if ceil else int(np.floor(size))
        if ceil and (o - 1) * s[i] >= spatial[i] + pads[i]:
            o -= 1
        out.append(o)
        extra = (o - 1) * s[i] + sw - spatial[i] - pads[i] - pads[nd + i]
        if extra > 0:
            padded_pads[i] += extra // 2
            padded_pads[nd + i] += extra - extra // 2
    fill = np.nan if kind == "max" or not include else 0.0
    padded = np.pad(
        x,
        [(0, 0), (0, 0)] + [(padded_pads[i], padded_pads[nd + i]) for i in range(nd)],
        constant_values=fill,
    )
    p = float(a.get("p", 2))
    acc = np.full(x.shape[:2] + tuple(out), -np.inf if kind == "max" else 0.0)
    count = np.zeros_like(acc)
    for offs in np.ndindex(*k):
        idx = [np.arange(out[i]) * s[i] + offs[i] * d[i] for i in range(nd)]
        ok = np.ones(tuple(out), dtype=bool)
        for i in range(nd):
            shape = [1] * nd
            shape[i] = out[i]
            ok = ok & (idx[i] < spatial[i] + pads[i] + pads[nd + i]).reshape(shape)
        block = padded[(slice(None), slice(None)) + np.ix_(*idx)]
        use = ok & ~np.isnan(block) if kind == "max" or not include else ok & (block == block)
        if kind == "max":
            acc = np.where(use, np.maximum(acc, np.where(use, block, -np.inf)), acc)
        elif kind == "lp":
            acc = acc + np.where(use, np.abs(np.nan_to_num(block)) ** p, 0.0)
        else:
            acc = acc + np.where(use, np.nan_to_num(block), 0.0)
        count = count + use
    if kind == "avg":
        acc = acc / np.where(count == 0, 1, count)
    elif kind == "lp":
        acc = acc ** (1.0 / p)
    return acc.astype(_np(ctx, xs[0]).dtype)


def _bilinear_zero_pad(img: np.ndarray, h: np.ndarray, w: np.ndarray) -> np.ndarray:
    """img (C, H, W) sampled at float pixel positions h, w (same shape S): (C, *S), zeros
    outside the image (GridSample linear / zeros / align_corners=1)."""
    ih, iw = img.shape[1:]
    h0, w0 = np.floor(h).astype(np.int64), np.floor(w).astype(np.int64)
    th, tw = h - h0, w - w0
    out = np.zeros((img.shape[0],) + h.shape)
    for dh, wh in ((0, 1 - th), (1, th)):
        for dw, ww in ((0, 1 - tw), (1, tw)):
            hh, ww_i = h0 + dh, w0 + dw
            ok = (hh >= 0) & (hh < ih) & (ww_i >= 0) & (ww_i < iw)
            vals = img[:, np.clip(hh, 0, ih - 1), np.clip(ww_i, 0, iw - 1)]
            out += np.where(ok, wh * ww, 0.0) * vals
    return out


@register("DeformConv")
def _deform_conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """2-D deformable convolution: each kernel tap samples the input bilinearly at its
    offset position (zeros outside), scaled by the optional mask."""
    xs = list(xs) + [None] * (5 - len(xs))
    x, w, off = (_np(ctx, v).astype(np.float64) for v in xs[:3])
    if x.ndim != 4:
        raise BackendError("DeformConv supports 2-D inputs only")
    a = node.attrs
    kh, kw = [int(v) for v in a.get("kernel_shape", w.shape[2:])]
    sh, sw = [int(v) for v in a.get("strides", [1, 1])]
    dh, dw = [int(v) for v in a.get("dilations", [1, 1])]
    pads = [int(v) for v in a.get("pads", [0, 0, 0, 0])]
    group, og = int(a.get("group", 1)), int(a.get("offset_group", 1))
    n, ic = x.shape[:2]
    oc = w.shape[0]
    oh, ow = off.shape[2:]
    if ic != w.shape[1] * group or oc % group or ic % og or off.shape[1] != og * kh * kw * 2:
        raise BackendError("DeformConv: inconsistent X / W / offset shapes")
    off = off.reshape(n, og, kh, kw, 2, oh, ow)
    mask = (
        _np(ctx, xs[4]).astype(np.float64).reshape(n, og, kh, kw, oh, ow)
        if xs[4] is not None
        else np.ones((n, og, kh, kw, oh, ow))
    )
    base_h = (np.arange(oh) * sh - pads[0])[:, None]
    base_w = (np.arange(ow) * sw - pads[1])[None, :]
    per_og = ic // og
    cols = np.zeros((n, ic, kh, kw, oh, ow))
    for b in range(n):
        for g in range(og):
            chans = slice(g * per_og, (g + 1) * per_og)
            for i in range(kh):
                for j in range(kw):
                    hh = base_h + i * dh + off[b, g, i, j, 0]
                    ww = base_w + j * dw + off[b, g, i, j, 1]
                    sampled = _bilinear_zero_pad(x[b, chans], hh, ww)
                    cols[b, chans, i, j] = sampled * mask[b, g, i, j]
    icg, ocg = ic // group, oc // group
    y = np.concatenate(
        [
            np.einsum(
                "ocij,ncijhw->nohw",
                w[gi * ocg : (gi + 1) * ocg],
                cols[:, gi * icg : (gi + 1) * icg],
            )
            for gi in range(group)
        ],
        axis=1,
    )
    if xs[3] is not None:
        y = y + _np(ctx, xs[3]).reshape(1, -1, 1, 1)
    return y.astype(_np(ctx, xs[0]).dtype)


@register("TfIdfVectorizer")
def _tfidf(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """N-gram counts of integer sequences (rows of a 1-D or 2-D input) against the pool of
    ``pool_int64s``, weighted TF / IDF / TFIDF (the reference's skip-gram walk)."""
    x = _np(ctx, xs[0])
    a = node.attrs
    pool = [int(v) for v in a.get("pool_int64s", [])]
    if not pool:
        raise BackendError("TfIdfVectorizer: only integer pools (pool_int64s) are supported")
    lo, hi = int(a["min_gram_length"]), int(a["max_gram_length"])
    skip = int(a["max_skip_count"])
    counts_at = [int(v) for v in a["ngram_counts"]]
    indexes = [int(v) for v in a["ngram_indexes"]]
    weights = [float(v) for v in a.get("weights", [])]
    mode = a.get("mode", "TF")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    grams: dict = {}
    prefixes: set = set()
    gram_id = 0
    for size, begin in enumerate(counts_at, start=1):
        end = counts_at[size] if size < len(counts_at) else len(pool)
        for start in range(begin, end, size):
            gram = tuple(pool[start : start + size])
            if lo <= size <= hi:
                grams[gram] = gram_id
                prefixes.update(gram[:j] for j in range(1, size + 1))
            gram_id += 1
    out_size = max(indexes) + 1
    rows = x.reshape(1, -1) if x.ndim <= 1 else x.reshape(x.shape[0], -1)
    freq = np.zeros((rows.shape[0], out_size))
    for r, row in enumerate(rows.tolist()):
        first = lo
        for dist in range(1, skip + 2):
            for start in range(len(row)):
                if start + dist * (first - 1) >= len(row):
                    break
                path: tuple = ()
                item, size = start, 1
                while size <= hi and item < len(row):
                    path = path + (row[item],)
                    if path not in prefixes:
                        break
                    if size >= first and path in grams:
                        freq[r, indexes[grams[path]]] += 1
                    size += 1
                    item += dist
            if first == 1:
                first = 2
                if first > hi:
                    break
    if mode == "TF":
        y = freq
    elif mode == "IDF":
        y = np.where(freq > 0, np.asarray(weights) if weights else 1.0, 0.0)
    elif mode == "TFIDF":
        y = freq * np.asarray(weights) if weights else freq
    else:
        raise BackendError(f"TfIdfVectorizer: unknown mode {mode!r}")
    y = y.astype(np.float32)
    return y.reshape(out_size) if x.ndim <= 1 else y
