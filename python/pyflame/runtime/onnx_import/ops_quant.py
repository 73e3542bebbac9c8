"""Linear quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis and blocked;
integer types int8/uint8/int16/int32), DynamicQuantizeLinear, and the integer products
MatMulInteger, ConvInteger, QLinearMatMul and QLinearConv, built from tensor ops.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("QuantizeLinear", "DequantizeLinear"))
    True
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

import pyflame as pf

from ..errors import BackendError
from .ops_elementwise import onnx_elem_to_np
from .registry import OpContext, Value, np_dtype_of, np_dtype_to_pf, register

_RANGES = {
    np.dtype(np.uint8): (0, 255),
    np.dtype(np.int8): (-128, 127),
    np.dtype(np.int16): (-32768, 32767),
    np.dtype(np.int32): (-(2**31), 2**31 - 1),
}


def _param(ctx: OpContext, p: Value, shape: List[int], axis: int, block: int) -> pf.Tensor:
    """A scale or zero point broadcastable to `shape` (scalar, per-axis or blocked)."""
    t = ctx.t(p).astype(pf.float32)
    if t.ndim == 0 or t.numel == 1:
        return t.reshape([])
    if not block:
        if t.ndim != 1 or t.shape[0] != shape[axis]:
            raise BackendError(f"per-axis parameter of shape {t.shape} does not fit {shape}")
        dims = [1] * len(shape)
        dims[axis] = t.shape[0]
        return t.reshape(dims)
    if t.ndim != len(shape):
        raise BackendError("blocked quantization parameters must have the input's rank")
    big = list(t.shape)
    big.insert(axis + 1, block)
    rep = t.unsqueeze(axis + 1).expand(big)
    merged = list(t.shape)
    merged[axis] *= block
    rep = rep.reshape(merged)
    if merged[axis] != shape[axis]:
        idx: List[Any] = [slice(None)] * len(shape)
        idx[axis] = slice(0, shape[axis])
        rep = rep[tuple(idx)]
    if list(rep.shape) != list(shape):
        raise BackendError(f"blocked parameter of shape {t.shape} does not fit {shape}")
    return rep


def _axis(node: Any, ndim: int) -> int:
    a = int(node.attrs.get("axis", 1))
    return a + ndim if a < 0 else a


@register("DequantizeLinear")
def _dequantize(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    shape, axis = list(x.shape), _axis(node, max(x.ndim, 1))
    block = int(node.attrs.get("block_size", 0))
    scale = _param(ctx, xs[1], shape, axis, block)
    y = x.astype(pf.float32)
    if len(xs) > 2 and xs[2] is not None:
        y = y - _param(ctx, xs[2], shape, axis, block)
    out = int(node.attrs.get("output_dtype", 0))
    dt = onnx_elem_to_np(out) if out else np_dtype_of(xs[1])
    return (y * scale).astype(np_dtype_to_pf(dt))


def _saturate(y: pf.Tensor, dt: np.dtype) -> pf.Tensor:
    if dt not in _RANGES:
        raise BackendError(f"quantization to {dt} is not supported")
    lo, hi = _RANGES[dt]
    return pf.clamp(y, float(lo), float(hi)).astype(np_dtype_to_pf(dt))


@register("QuantizeLinear")
def _quantize(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    shape, axis = list(x.shape), _axis(node, max(x.ndim, 1))
    block = int(node.attrs.get("block_size", 0))
    has_zp = len(xs) > 2 and xs[2] is not None
    out = int(node.attrs.get("output_dtype", 0))
    if has_zp:
        dt = np_dtype_of(xs[2])
        if out and onnx_elem_to_np(out) != dt:
            raise BackendError("QuantizeLinear: output_dtype and the zero point's type differ")
    else:
        dt = onnx_elem_to_np(out) if out else np.dtype(np.uint8)
    scale = _param(ctx, xs[1], shape, axis, block)
    y = pf.round(x.astype(pf.float32) / scale)
    if has_zp:
        y = y + _param(ctx, xs[2], shape, axis, block)
    return _saturate(y, np.dtype(dt))


@register("DynamicQuantizeLinear")
def _dynamic_quantize(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0]).astype(pf.float32)
    zero = pf.full([], 0.0, dtype=pf.float32)
    hi = pf.maximum(pf.amax(x), zero)
    lo = pf.minimum(pf.amin(x), zero)
    span = hi - lo
    scale = pf.where(pf.eq(span, 0.0), pf.full([], 1.0, dtype=pf.float32), span) / 255.0
    zp = pf.round(pf.clamp(-lo / scale, 0.0, 255.0))
    y = pf.clamp(pf.round(x / scale) + zp, 0.0, 255.0)
    u8 = np_dtype_to_pf(np.uint8)
    return [y.astype(u8), scale.astype(ctx.t(xs[0]).dtype), zp.astype(u8)]


# ---------------------------------------------------------------- integer matmul / conv
# Integer products are computed in float64, which is exact for the int8/uint8 operands and
# int32 accumulators of these operators (|sum| < 2**53).


def _centered(ctx: OpContext, v: Value, zp: Value, rows: bool) -> pf.Tensor:
    """``v - zero_point`` in float64; a 1-D zero point is per row (A) or per column (B)."""
    t = ctx.t(v).astype(pf.float64)
    if zp is None:
        return t
    z = ctx.t(zp).astype(pf.float64)
    if z.ndim == 1 and z.shape[0] > 1 and rows:
        z = z.reshape([z.shape[0], 1])
    return t - z


def _requantize(r: pf.Tensor, scale: pf.Tensor, zp: Value, dt: np.dtype, ctx: OpContext) -> Any:
    y = pf.round(r * scale)
    if zp is not None:
        y = y + ctx.t(zp).astype(pf.float64)
    lo, hi = _RANGES[np.dtype(dt)]
    return pf.clamp(y, float(lo), float(hi)).astype(np_dtype_to_pf(dt))


def _f64(ctx: OpContext, v: Value, rows: bool = False) -> pf.Tensor:
    t = ctx.t(v).astype(pf.float64)
    if rows and t.ndim == 1 and t.shape[0] > 1:
        t = t.reshape([t.shape[0], 1])
    return t


@register("MatMulInteger")
def _matmul_integer(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    xs = list(xs) + [None] * (4 - len(xs))
    a = _centered(ctx, xs[0], xs[2], rows=True)
    b = _centered(ctx, xs[1], xs[3], rows=False)
    return pf.matmul(a, b).astype(pf.int32)


@register("QLinearMatMul")
def _qlinear_matmul(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    a = _centered(ctx, xs[0], xs[2], rows=True)
    b = _centered(ctx, xs[3], xs[5], rows=False)
    scale = _f64(ctx, xs[1], rows=True) * _f64(ctx, xs[4]) / _f64(ctx, xs[6])
    dt = np_dtype_of(xs[7]) if xs[7] is not None else np_dtype_of(xs[0])
    return _requantize(pf.matmul(a, b), scale, xs[7], dt, ctx)


def _int_conv(ctx: OpContext, node: Any, x: Value, xzp: Value, w: Value, wzp: Value) -> Any:
    from .ops_nn import _conv

    xf = ctx.t(x).astype(pf.float64)
    if xzp is not None:
        xf = xf - ctx.t(xzp).astype(pf.float64)
    wf = ctx.t(w).astype(pf.float64)
    if wzp is not None:
        z = ctx.t(wzp).astype(pf.float64)
        if z.ndim == 1 and z.shape[0] > 1:
            z = z.reshape([z.shape[0]] + [1] * (wf.ndim - 1))
        wf = wf - z
    return _conv(ctx, node, [xf, wf])


@register("ConvInteger")
def _conv_integer(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    xs = list(xs) + [None] * (4 - len(xs))
    return _int_conv(ctx, node, xs[0], xs[2], xs[1], xs[3]).astype(pf.int32)


@register("QLinearConv")
def _qlinear_conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    xs = list(xs) + [None] * (9 - len(xs))
    r = _int_conv(ctx, node, xs[0], xs[2], xs[3], xs[5])
    if xs[8] is not None:
        bias = ctx.t(xs[8]).astype(pf.float64)
        r = r + bias.reshape([1, bias.shape[0]] + [1] * (r.ndim - 2))
    ws = _f64(ctx, xs[4])
    if ws.ndim == 1 and ws.shape[0] > 1:
        ws = ws.reshape([1, ws.shape[0]] + [1] * (r.ndim - 2))
    scale = _f64(ctx, xs[1]) * ws / _f64(ctx, xs[6])
    dt = np_dtype_of(xs[7]) if xs[7] is not None else np_dtype_of(xs[0])
    return _requantize(r, scale, xs[7], dt, ctx)
