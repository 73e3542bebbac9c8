"""Linear quantization: QuantizeLinear, DequantizeLinear (per-tensor, per-axis and blocked;
integer types int8/uint8/int16/int32) and DynamicQuantizeLinear, built from tensor ops.

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
