"""More host (NumPy) operators: Unique, DFT, Col2Im, NonMaxSuppression, GridSample and
RoiAlign. As in
:mod:`ops_host`, their inputs are evaluated first, so graphs using them are traced on every
run (their output sizes or the sort they need have no tensor-API equivalent).

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("Unique", "DFT", "Col2Im", "NonMaxSuppression"))
    True
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

from ..errors import BackendError
from .registry import OpContext, Value, register


def _np(ctx: OpContext, v: Value) -> np.ndarray:
    return np.asarray(ctx.a(v))


def _opt_scalar(ctx: OpContext, xs: List[Value], i: int) -> Any:
    if len(xs) <= i or xs[i] is None:
        return None
    a = _np(ctx, xs[i]).reshape(-1)
    return a[0] if a.size else None


@register("Unique")
def _unique(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = _np(ctx, xs[0])
    axis = node.attrs.get("axis")
    if axis is None:
        src, ax = x.reshape(-1), 0
    else:
        ax = int(axis) + (x.ndim if int(axis) < 0 else 0)
        src = x
    y, first, inv, counts = np.unique(
        src, return_index=True, return_inverse=True, return_counts=True, axis=ax
    )
    inv = inv.reshape(-1)
    if not int(node.attrs.get("sorted", 1)):  # order of first occurrence
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(order.size)
        y, first, counts, inv = np.take(y, order, axis=ax), first[order], counts[order], rank[inv]
    i64 = np.int64
    return [y, first.astype(i64), inv.astype(i64), counts.astype(i64)][: max(1, len(node.outputs))]


@register("DFT")
def _dft(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = _np(ctx, xs[0])
    if x.shape[-1] not in (1, 2):
        raise BackendError("DFT input's last axis must be 1 (real) or 2 (complex)")
    n_in = _opt_scalar(ctx, xs, 1)
    if ctx.opset >= 20:
        a = _opt_scalar(ctx, xs, 2)
        axis = -2 if a is None else int(a)
    else:
        axis = int(node.attrs.get("axis", 1))
    axis %= x.ndim
    if axis == x.ndim - 1:
        raise BackendError("DFT axis cannot be the real/imaginary axis")
    inverse, onesided = int(node.attrs.get("inverse", 0)), int(node.attrs.get("onesided", 0))
    sig = x[..., 0] if x.shape[-1] == 1 else x[..., 0] + 1j * x[..., 1]
    if n_in is not None:
        n = int(n_in)
    elif inverse and onesided:
        n = 2 * (x.shape[axis] - 1)
    else:
        n = x.shape[axis]
    if inverse:
        res = np.fft.irfft(sig, n=n, axis=axis) if onesided else np.fft.ifft(sig, n=n, axis=axis)
    else:
        res = np.fft.fft(sig, n=n, axis=axis)
        if onesided:
            res = np.take(res, np.arange(n // 2 + 1), axis=axis)
    if np.iscomplexobj(res):
        out = np.stack([res.real, res.imag], axis=-1)
    else:
        out = res[..., None]
    return out.astype(x.dtype)


@register("Col2Im")
def _col2im(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = _np(ctx, xs[0])
    img = [int(v) for v in _np(ctx, xs[1]).reshape(-1)]
    k = [int(v) for v in _np(ctx, xs[2]).reshape(-1)]
    nd = len(img)
    if len(k) != nd or x.ndim != 3:
        raise BackendError("Col2Im: image_shape and block_shape must have the same length")
    dil = [int(v) for v in node.attrs.get("dilations", [1] * nd)]
    st = [int(v) for v in node.attrs.get("strides", [1] * nd)]
    pads = [int(v) for v in node.attrs.get("pads", [0] * (2 * nd))]
    pb, pe = pads[:nd], pads[nd:]
    blocks = [(img[i] + pb[i] + pe[i] - (dil[i] * (k[i] - 1) + 1)) // st[i] + 1 for i in range(nd)]
    kprod = int(np.prod(k))
    if x.shape[1] % kprod or int(np.prod(blocks)) != x.shape[2] or min(blocks) < 1:
        raise BackendError(f"Col2Im: input shape {list(x.shape)} does not fit the blocks")
    n, c = x.shape[0], x.shape[1] // kprod
    cols = x.reshape([n, c] + k + blocks)
    out = np.zeros([n, c] + [img[i] + pb[i] + pe[i] for i in range(nd)], dtype=x.dtype)
    for kidx in np.ndindex(*k):
        where = tuple(
            slice(kidx[i] * dil[i], kidx[i] * dil[i] + st[i] * (blocks[i] - 1) + 1, st[i])
            for i in range(nd)
        )
        out[(slice(None), slice(None)) + where] += cols[(slice(None), slice(None)) + kidx]
    crop = tuple(slice(pb[i], pb[i] + img[i]) for i in range(nd))
    return out[(slice(None), slice(None)) + crop]


def _corners(b: np.ndarray, center: bool) -> np.ndarray:
    """[..., 4] boxes -> [..., 4] (y_min, x_min, y_max, x_max)."""
    if center:
        xc, yc, w, h = b[..., 0], b[..., 1], b[..., 2] / 2, b[..., 3] / 2
        return np.stack([yc - h, xc - w, yc + h, xc + w], -1)
    y0, x0, y1, x1 = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return np.stack(
        [np.minimum(y0, y1), np.minimum(x0, x1), np.maximum(y0, y1), np.maximum(x0, x1)], -1
    )


def _suppress(a: np.ndarray, b: np.ndarray, thr: float) -> bool:
    ih = min(a[2], b[2]) - max(a[0], b[0])
    iw = min(a[3], b[3]) - max(a[1], b[1])
    if ih <= 0 or iw <= 0:
        return False
    inter = ih * iw
    area_a = (a[2] - a[0]) * (a[3] - a[1])
    area_b = (b[2] - b[0]) * (b[3] - b[1])
    union = area_a + area_b - inter
    if area_a <= 0 or area_b <= 0 or union <= 0:
        return False
    return bool(inter / union > thr)


@register("NonMaxSuppression")
def _nms(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    boxes, scores = _np(ctx, xs[0]), _np(ctx, xs[1])
    max_out = _opt_scalar(ctx, xs, 2)
    max_out = 0 if max_out is None else max(int(max_out), 0)
    iou = _opt_scalar(ctx, xs, 3)
    iou = 0.0 if iou is None else float(iou)
    score_thr = _opt_scalar(ctx, xs, 4)
    if boxes.ndim != 3 or boxes.shape[2] != 4 or scores.ndim != 3:
        raise BackendError("NonMaxSuppression: boxes [B, N, 4] and scores [B, C, N] expected")
    corners = _corners(boxes.astype(np.float64), bool(int(node.attrs.get("center_point_box", 0))))
    out = []
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            s = scores[b, c]
            cand = np.arange(s.size) if score_thr is None else np.nonzero(s > score_thr)[0]
            # highest score first; equal scores: lower box index first
            order = cand[np.lexsort((cand, -s[cand]))]
            chosen: List[int] = []
            for i in order:
                if len(chosen) >= max_out:
                    break
                if all(not _suppress(corners[b, i], corners[b, j], iou) for j in chosen):
                    chosen.append(int(i))
                    out.append((b, c, int(i)))
    return np.array(out, dtype=np.int64).reshape(-1, 3)


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Reflects coordinates outside [lo, hi] back inside (repeatedly, by the near border)."""
    span = hi - lo
    if span <= 0:
        return np.full_like(x, lo)
    below, above = x < lo, x > hi
    dx = np.where(below, lo - x, x - hi)
    n = np.floor(dx / span)
    r = dx - n * span
    even = n % 2 == 0
    x = np.where(below, np.where(even, lo + r, hi - r), x)
    return np.where(above, np.where(even, hi - r, lo + r), x)


def _cubic_weights(t: np.ndarray) -> List[np.ndarray]:
    """Keys cubic convolution weights (alpha -0.75) of taps -1, 0, 1, 2 at fraction t."""
    a = -0.75

    def far(d: np.ndarray) -> np.ndarray:
        return ((a * d - 5 * a) * d + 8 * a) * d - 4 * a

    def near(d: np.ndarray) -> np.ndarray:
        return ((a + 2) * d - (a + 3)) * d * d + 1

    return [far(t + 1), near(t), near(1 - t), far(2 - t)]


@register("GridSample")
def _grid_sample(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, grid = _np(ctx, xs[0]), _np(ctx, xs[1]).astype(np.float64)
    a = node.attrs
    mode = a.get("mode", "linear" if ctx.opset >= 20 else "bilinear")
    mode = {"bilinear": "linear", "bicubic": "cubic"}.get(mode, mode)
    pad_mode = a.get("padding_mode", "zeros")
    align = bool(int(a.get("align_corners", 0)))
    dims = list(x.shape[2:])
    nd = len(dims)
    if mode not in ("linear", "nearest", "cubic") or pad_mode not in (
        "zeros",
        "border",
        "reflection",
    ):
        raise BackendError(f"GridSample: unsupported mode {mode!r} / padding {pad_mode!r}")
    if grid.ndim != nd + 2 or grid.shape[-1] != nd or grid.shape[0] != x.shape[0]:
        raise BackendError("GridSample: grid must be (N, *out, rank) matching the input")
    lo = [0.0 if align else -0.5 for _ in dims]
    hi = [d - 1.0 if align else d - 0.5 for d in dims]
    coords = []
    for i, d in enumerate(dims):
        g = grid[..., nd - 1 - i]  # grid holds (x, y[, z]): the last input axis first
        c = (g + 1) / 2 * (d - 1) if align else ((g + 1) * d - 1) / 2
        if mode == "nearest":
            c = np.rint(c)
        if pad_mode == "border":
            c = np.where((c < lo[i]) | (c > hi[i]), np.clip(c, 0, d - 1), c)
        elif pad_mode == "reflection":
            c = _reflect(c, lo[i], hi[i])
        coords.append(c)

    def index(i: int, idx: np.ndarray) -> tuple:
        """Per-axis integer index and validity for the padding mode."""
        if pad_mode == "zeros":
            return np.clip(idx, 0, dims[i] - 1), (idx >= 0) & (idx < dims[i])
        if pad_mode == "border":
            return np.clip(idx, 0, dims[i] - 1), None
        ref = _reflect(idx.astype(np.float64), lo[i], hi[i]).astype(np.int64)
        return np.clip(ref, 0, dims[i] - 1), None

    if mode == "nearest":
        taps = [[(c.astype(np.int64), np.ones_like(c))] for c in coords]
    elif mode == "linear":
        taps = []
        for c in coords:
            f = np.floor(c)
            t = c - f
            taps.append([(f.astype(np.int64), 1 - t), (f.astype(np.int64) + 1, t)])
    else:
        taps = []
        for c in coords:
            f = np.floor(c)
            w = _cubic_weights(c - f)
            taps.append([(f.astype(np.int64) + k - 1, w[k]) for k in range(4)])
    n_idx = np.arange(x.shape[0]).reshape((-1,) + (1,) * (grid.ndim - 2))
    acc = np.zeros((x.shape[1],) + grid.shape[:-1], dtype=np.float64)
    for combo in np.ndindex(*[len(t) for t in taps]):
        weight = np.ones(grid.shape[:-1])
        idxs, valid = [], np.ones(grid.shape[:-1], dtype=bool)
        for i, k in enumerate(combo):
            idx, w = taps[i][k]
            ii, ok = index(i, idx)
            idxs.append(ii)
            weight = weight * w
            if ok is not None:
                valid &= ok
        vals = x[(n_idx, slice(None)) + tuple(idxs)]  # (N, *out, C)
        vals = np.moveaxis(vals, -1, 0) * np.where(valid, weight, 0.0)
        acc += vals
    return np.moveaxis(acc, 0, 1).astype(x.dtype)


def _roi_axis(start: float, size: float, bins: int, grid: int, limit: int) -> tuple:
    """Sample positions of one RoiAlign axis: (low index, high index, low weight, high
    weight), each (bins, grid); positions beyond [-1, limit] get zero weights."""
    p = start + np.arange(bins)[:, None] * size + (np.arange(grid)[None, :] + 0.5) * size / grid
    outside = (p < -1.0) | (p > limit)
    p = np.maximum(p, 0.0)
    low = p.astype(np.int64)
    top = low >= limit - 1
    low = np.where(top, limit - 1, low)
    high = np.where(top, limit - 1, low + 1)
    p = np.where(top, low, p)
    frac = p - low
    return low, high, np.where(outside, 0.0, 1 - frac), np.where(outside, 0.0, frac)


def _roi_corner(
    img: np.ndarray, yi: np.ndarray, xi: np.ndarray, wy: np.ndarray, wx: np.ndarray
) -> np.ndarray:
    """Weighted pixels of one bilinear corner: (C, oh, gh, ow, gw)."""
    v = img[:, yi[:, :, None, None], xi[None, None, :, :]]
    return v * (wy[:, :, None, None] * wx[None, None, :, :])


@register("RoiAlign")
def _roi_align(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = _np(ctx, xs[0])
    rois = _np(ctx, xs[1]).astype(np.float64)
    idx = _np(ctx, xs[2]).astype(np.int64).reshape(-1)
    a = node.attrs
    half = a.get(
        "coordinate_transformation_mode", "half_pixel" if ctx.opset >= 16 else "output_half_pixel"
    )
    half = (half.decode() if isinstance(half, bytes) else half).lower() == "half_pixel"
    mode = a.get("mode", "avg")
    mode = (mode.decode() if isinstance(mode, bytes) else mode).lower()
    oh, ow = int(a.get("output_height", 1)), int(a.get("output_width", 1))
    ratio, scale = int(a.get("sampling_ratio", 0)), float(a.get("spatial_scale", 1.0))
    if x.ndim != 4 or rois.ndim != 2 or rois.shape[1] != 4 or rois.shape[0] != idx.size:
        raise BackendError("RoiAlign: X (N, C, H, W), rois (R, 4), batch_indices (R,) expected")
    h, w = x.shape[2:]
    out = np.zeros((idx.size, x.shape[1], oh, ow))
    shift = 0.5 if half else 0.0
    for r in range(idx.size):
        x1, y1, x2, y2 = rois[r] * scale - shift
        rw, rh = x2 - x1, y2 - y1
        if not half:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        gh = ratio if ratio > 0 else int(np.ceil(rh / oh))
        gw = ratio if ratio > 0 else int(np.ceil(rw / ow))
        ylo, yhi, wyl, wyh = _roi_axis(y1, rh / oh, oh, gh, h)
        xlo, xhi, wxl, wxh = _roi_axis(x1, rw / ow, ow, gw, w)
        img = x[idx[r]].astype(np.float64)  # (C, H, W)
        parts = [
            _roi_corner(img, ylo, xlo, wyl, wxl),
            _roi_corner(img, ylo, xhi, wyl, wxh),
            _roi_corner(img, yhi, xlo, wyh, wxl),
            _roi_corner(img, yhi, xhi, wyh, wxh),
        ]
        if mode == "avg":
            out[r] = sum(parts).sum(axis=(2, 4)) / max(gh * gw, 1)
        elif mode == "max":
            out[r] = np.maximum.reduce(parts).max(axis=(2, 4))
        else:
            raise BackendError(f"RoiAlign: unknown mode {mode!r}")
    return out.astype(x.dtype)
