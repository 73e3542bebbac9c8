"""Resize / Upsample: nearest (all rounding modes), linear and cubic (``cubic_coeff_a``,
``exclude_outside``), antialiased linear/cubic, every coordinate transformation mode
including ``tf_crop_and_resize`` with extrapolation, ``axes`` and ``keep_aspect_ratio_policy``.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> is_supported("Resize") and is_supported("Upsample")
    True
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Tuple

import numpy as np

import pyflame as pf

from ..errors import BackendError
from .registry import OpContext, Value, np_dtype_of, register


def _src_coords(
    mode: str, out_n: int, in_n: int, scale: float, roi: Optional[Tuple[float, float]]
) -> np.ndarray:
    o = np.arange(out_n, dtype=np.float64)
    if mode == "half_pixel":
        return (o + 0.5) / scale - 0.5
    if mode == "pytorch_half_pixel":
        return (o + 0.5) / scale - 0.5 if out_n > 1 else np.zeros(out_n)
    if mode == "align_corners":
        # the resized length is in_n * scale before flooring (as in the ONNX reference)
        span = in_n * scale - 1
        return o * (in_n - 1) / span if out_n > 1 and span > 0 else np.zeros(out_n)
    if mode == "asymmetric":
        return o / scale
    if mode == "half_pixel_symmetric":
        adj = out_n / (scale * in_n)
        center = in_n / 2.0
        offset = center * (1 - adj)
        return offset + (o + 0.5) / scale - 0.5
    if mode == "tf_crop_and_resize" and roi is not None:
        s, e = roi
        if out_n > 1:
            return s * (in_n - 1) + o * (e - s) * (in_n - 1) / (out_n - 1)
        return np.full(out_n, 0.5 * (s + e) * (in_n - 1))
    raise BackendError(f"Resize coordinate_transformation_mode {mode!r} is not supported")


def _antialias_axis(
    y: pf.Tensor, ax: int, src: np.ndarray, n_in: int, scale: float, mode: str, a: Any, dt: Any
) -> pf.Tensor:
    """Antialiased linear/cubic resampling along `ax` as a [n_out, n_in] weight matrix (the
    filter is stretched by 1/scale when downsampling; taps follow the ONNX reference's
    nearest-neighbour selection with edge padding)."""
    c = float(a.get("cubic_coeff_a", -0.75))
    excl = int(a.get("exclude_outside", 0))
    f = min(scale, 1.0)
    wmat = np.zeros((len(src), n_in))
    for o, x in enumerate(src):
        ratio = 1.0 if float(x).is_integer() else x - np.floor(x)
        if mode in ("cubic", "bicubic"):
            start = int(np.floor(-2 / f) + 1)
            d = np.abs(f * (np.arange(start, 2 - start) - ratio))
            coeffs = np.where(
                d <= 1,
                ((c + 2) * d - (c + 3)) * d * d + 1,
                np.where(d < 2, ((c * d - 5 * c) * d + 8 * c) * d - 4 * c, 0.0),
            )
        else:
            start = int(np.floor(-1 / f) + 1)
            args = (np.arange(start, start + 2 - 2 * start) - ratio) * f
            coeffs = np.clip(1 - np.abs(args), 0, 1)
        coeffs = coeffs / coeffs.sum()
        n = len(coeffs)
        pad = int(np.ceil(n / 2))
        xp = x + pad
        near = sorted(sorted(range(n_in + 2 * pad), key=lambda i: (abs(xp - i), i))[:n])
        idx = np.array(near) - pad
        if excl:
            coeffs = np.where((idx < 0) | (idx >= n_in), 0.0, coeffs)
            coeffs = coeffs / coeffs.sum()
        np.add.at(wmat[o], np.clip(idx, 0, n_in - 1), coeffs)
    perm = [i for i in range(y.ndim) if i != ax] + [ax]
    inv = [perm.index(i) for i in range(y.ndim)]
    moved = y.permute(perm)
    out = pf.matmul(moved, pf.from_numpy(np.ascontiguousarray(wmat.T.astype(dt))))
    return out.permute(inv)


def _cubic_axis(
    y: pf.Tensor, ax: int, src: np.ndarray, n_in: int, shp: List[int], a: Any, dt: Any
) -> pf.Tensor:
    """Cubic convolution along `ax` (coefficient ``cubic_coeff_a``; edge samples repeat, or
    with ``exclude_outside`` the outside taps get weight 0 and the rest are renormalized)."""
    c = float(a.get("cubic_coeff_a", -0.75))
    f = np.floor(src)
    t = src - f
    dist = [t + 1, t, 1 - t, 2 - t]
    ws = [
        np.where(
            d <= 1, ((c + 2) * d - (c + 3)) * d * d + 1, ((c * d - 5 * c) * d + 8 * c) * d - 4 * c
        )
        for d in dist
    ]
    taps = [f.astype(np.int64) + k - 1 for k in range(4)]
    if int(a.get("exclude_outside", 0)):
        ws = [w * ((i >= 0) & (i < n_in)) for w, i in zip(ws, taps)]
        total = sum(ws)
        ws = [w / np.where(total == 0, 1, total) for w in ws]
    out = None
    for w, i in zip(ws, taps):
        part = y[(slice(None),) * ax + (pf.from_numpy(np.clip(i, 0, n_in - 1)),)]
        part = part * pf.from_numpy(w.astype(dt).reshape(shp))
        out = part if out is None else out + part
    return out


@register("Resize", "Upsample")
def _resize(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    rank = x.ndim
    a = node.attrs
    mode = a.get("mode", "nearest")
    if mode not in ("nearest", "linear", "bilinear", "cubic", "bicubic"):
        raise BackendError(f"Resize mode {mode!r} is not supported")
    if node.op_type == "Upsample":
        scales = [float(v) for v in (ctx.a(xs[1]) if ctx.opset >= 9 else a["scales"])]
        sizes = None
        roi = None
        ctm = "asymmetric"
    else:
        roi_v = xs[1] if len(xs) > 1 and ctx.opset >= 11 else None
        sc_i = 2 if ctx.opset >= 11 else 1
        sc = xs[sc_i] if len(xs) > sc_i else None
        sz = xs[3] if len(xs) > 3 else None
        scales = (
            [float(v) for v in ctx.a(sc).reshape(-1)]
            if sc is not None and np.size(ctx.a(sc))
            else None
        )
        sizes = ctx.ints(sz) if sz is not None and np.size(ctx.a(sz)) else None
        roi = (
            ctx.a(roi_v).reshape(-1).astype(np.float64)
            if roi_v is not None and np.size(ctx.a(roi_v))
            else None
        )
        ctm = a.get(
            "coordinate_transformation_mode", "half_pixel" if ctx.opset >= 11 else "asymmetric"
        )
        if a.get("antialias", 0) and mode not in ("linear", "bilinear", "cubic", "bicubic"):
            raise BackendError("Resize antialias applies to the linear and cubic modes only")
    axes = [int(v) for v in a.get("axes", range(rank))]
    axes = [v + rank if v < 0 else v for v in axes]
    in_shape = list(x.shape)
    if sizes is not None:
        policy = a.get("keep_aspect_ratio_policy", "stretch")
        sc_axes = [sizes[i] / in_shape[ax] for i, ax in enumerate(axes)]
        if policy != "stretch":
            f = min(sc_axes) if policy == "not_larger" else max(sc_axes)
            sc_axes = [f] * len(axes)
            sizes = [int(math.floor(in_shape[ax] * f + 0.5)) for ax in axes]
        scales_full = {ax: sc_axes[i] for i, ax in enumerate(axes)}
        out_full = {ax: sizes[i] for i, ax in enumerate(axes)}
    else:
        if scales is None:
            raise BackendError("Resize needs scales or sizes")
        scales_full = {ax: scales[i] for i, ax in enumerate(axes)}
        out_full = {ax: int(math.floor(in_shape[ax] * scales[i])) for i, ax in enumerate(axes)}
    y = x
    nearest_mode = a.get("nearest_mode", "round_prefer_floor")
    for ax in axes:
        n_in, n_out, sc = in_shape[ax], out_full[ax], scales_full[ax]
        if n_in == n_out and sc == 1.0 and ctm != "tf_crop_and_resize":
            continue
        r = None
        if roi is not None and ctm == "tf_crop_and_resize":
            k = axes.index(ax)
            r = (float(roi[k]), float(roi[len(axes) + k]))
        src = _src_coords(ctm, n_out, n_in, sc, r)
        if mode == "nearest":
            if node.op_type == "Upsample":
                idx = np.floor(src)
            elif nearest_mode == "round_prefer_floor":
                idx = np.where(src - np.floor(src) == 0.5, np.floor(src), np.round(src))
            elif nearest_mode == "round_prefer_ceil":
                idx = np.where(src - np.floor(src) == 0.5, np.ceil(src), np.round(src))
            elif nearest_mode == "floor":
                idx = np.floor(src)
            else:
                idx = np.ceil(src)
            idx = np.clip(idx, 0, n_in - 1).astype(np.int64)
            y = y[(slice(None),) * ax + (pf.from_numpy(idx),)]
            continue
        shp = [1] * rank
        shp[ax] = n_out
        if a.get("antialias", 0) and node.op_type == "Resize":
            y = _antialias_axis(y, ax, src, n_in, sc, mode, a, np_dtype_of(xs[0]))
            continue
        if mode in ("cubic", "bicubic"):
            y = _cubic_axis(y, ax, src, n_in, shp, a, np_dtype_of(xs[0]))
            if ctm == "tf_crop_and_resize":
                ext = float(a.get("extrapolation_value", 0.0))
                bad = pf.from_numpy(((src < 0) | (src > n_in - 1)).reshape(shp))
                y = pf.where(bad, pf.full([], ext, dtype=y.dtype), y)
            continue
        src_c = np.clip(src, 0, n_in - 1) if ctm != "tf_crop_and_resize" else src
        lo = np.clip(np.floor(src_c), 0, n_in - 1).astype(np.int64)
        hi = np.clip(lo + 1, 0, n_in - 1)
        w = (src_c - lo).astype(np_dtype_of(xs[0]))
        wt = pf.from_numpy(w.reshape(shp))
        ylo = y[(slice(None),) * ax + (pf.from_numpy(lo),)]
        yhi = y[(slice(None),) * ax + (pf.from_numpy(hi),)]
        y = ylo + (yhi - ylo) * wt
        if ctm == "tf_crop_and_resize":
            ext = float(a.get("extrapolation_value", 0.0))
            bad = pf.from_numpy(((src < 0) | (src > n_in - 1)).reshape(shp))
            y = pf.where(bad, pf.full([], ext, dtype=y.dtype), y)
    return y
