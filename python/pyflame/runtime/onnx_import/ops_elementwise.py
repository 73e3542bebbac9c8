"""Elementwise, activation, comparison, logical and cast operators.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("Add", "Gelu", "Where", "Cast"))
    True
"""

from __future__ import annotations

import math
from typing import Any, List

import numpy as np

import pyflame as pf
import pyflame.nn.functional as F

from ..errors import BackendError
from .registry import OpContext, Value, np_dtype_of, np_dtype_to_pf, register

_ONNX_TO_NP = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
}


def onnx_elem_to_np(elem: int) -> np.dtype:
    """NumPy dtype of an ONNX TensorProto element type; BackendError when unsupported.

    Example:
        >>> onnx_elem_to_np(1)
        dtype('float32')
    """
    if elem not in _ONNX_TO_NP:
        raise BackendError(
            f"ONNX element type {elem} is not supported (string/complex/float8/"
            "bfloat16/int4 types have no executor dtype)"
        )
    return np.dtype(_ONNX_TO_NP[elem])


def _is_int(v: Value) -> bool:
    return np_dtype_of(v).kind in "iub"


def _binary(fn: Any) -> Any:
    def conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
        return fn(ctx.t(xs[0]), ctx.t(xs[1]))

    return conv


register("Add")(_binary(lambda a, b: a + b))
register("Sub")(_binary(lambda a, b: a - b))
register("Mul")(_binary(lambda a, b: a * b))
register("Equal")(_binary(pf.eq))
register("Less")(_binary(pf.lt))
register("LessOrEqual")(_binary(pf.le))
register("Greater")(_binary(pf.gt))
register("GreaterOrEqual")(_binary(pf.ge))
register("And")(_binary(pf.logical_and))
register("Or")(_binary(pf.logical_or))
register("Xor")(_binary(pf.logical_xor))
register("BitwiseAnd")(_binary(pf.bitwise_and))
register("BitwiseOr")(_binary(pf.bitwise_or))
register("BitwiseXor")(_binary(pf.bitwise_xor))


def _trunc(x: pf.Tensor) -> pf.Tensor:
    return pf.sign(x) * pf.floor(pf.abs(x))


def _int_trunc_div(a: pf.Tensor, b: pf.Tensor) -> pf.Tensor:
    q = pf.floor_divide(a, b)
    fix = pf.logical_and(pf.ne(q * b, a), pf.ne(pf.lt(a, 0), pf.lt(b, 0)))
    return q + fix.astype(q.dtype)


@register("Div")
def _div(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    a, b = ctx.t(xs[0]), ctx.t(xs[1])
    if _is_int(xs[0]):
        return _int_trunc_div(a, b)
    return a / b


@register("Mod")
def _mod(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    a, b = ctx.t(xs[0]), ctx.t(xs[1])
    if int(node.attrs.get("fmod", 0)) == 0:
        return pf.remainder(a, b)
    if _is_int(xs[0]):
        return a - _int_trunc_div(a, b) * b
    return a - _trunc(a / b) * b


@register("Pow")
def _pow(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    a, b = ctx.t(xs[0]), ctx.t(xs[1])
    out = pf.pow(a, b)
    return out if out.dtype == a.dtype else out.astype(a.dtype)


def _unary(fn: Any) -> Any:
    def conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
        return fn(ctx.t(xs[0]))

    return conv


register("Neg")(_unary(lambda x: -x))
register("Abs")(_unary(pf.abs))
register("Sqrt")(_unary(pf.sqrt))
register("Exp")(_unary(pf.exp))
register("Log")(_unary(pf.log))
register("Sin")(_unary(pf.sin))
register("Cos")(_unary(pf.cos))
register("Tan")(_unary(lambda x: pf.sin(x) / pf.cos(x)))
register("Tanh")(_unary(pf.tanh))
register("Sinh")(_unary(lambda x: (pf.exp(x) - pf.exp(-x)) * 0.5))
register("Cosh")(_unary(lambda x: (pf.exp(x) + pf.exp(-x)) * 0.5))
register("Asinh")(_unary(lambda x: pf.log(x + pf.sqrt(x * x + 1.0))))
register("Acosh")(_unary(lambda x: pf.log(x + pf.sqrt(x * x - 1.0))))
register("Atanh")(_unary(lambda x: pf.log((1.0 + x) / (1.0 - x)) * 0.5))
register("Sigmoid")(_unary(pf.sigmoid))
register("Relu")(_unary(pf.relu))
register("Erf")(_unary(pf.erf))
register("Floor")(_unary(pf.floor))
register("Ceil")(_unary(pf.ceil))
register("Sign")(_unary(pf.sign))
register("Reciprocal")(_unary(pf.reciprocal))
register("Not")(_unary(pf.logical_not))
register("Softsign")(_unary(lambda x: x / (1.0 + pf.abs(x))))
register("IsNaN")(_unary(lambda x: pf.ne(x, x)))
register("Identity")(lambda ctx, node, xs: [xs[0]])


@register("Round")
def _round(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    # round half to even, built from floor so it does not depend on the kernel's tie rule
    f = pf.floor(x)
    d = x - f
    half_even = pf.where(pf.eq(pf.remainder(f, 2.0), 0.0), f, f + 1.0)
    return pf.where(pf.lt(d, 0.5), f, pf.where(pf.gt(d, 0.5), f + 1.0, half_even))


@register("BitwiseNot")
def _bitnot(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    ones = 255 if np_dtype_of(xs[0]) == np.uint8 else -1
    return pf.bitwise_xor(x, pf.full([], ones, dtype=x.dtype))


@register("IsInf")
def _isinf(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    pos = pf.eq(x, math.inf)
    neg = pf.eq(x, -math.inf)
    if not int(node.attrs.get("detect_positive", 1)):
        pos = pf.logical_and(pos, pf.lt(x, x))
    if not int(node.attrs.get("detect_negative", 1)):
        neg = pf.logical_and(neg, pf.lt(x, x))
    return pf.logical_or(pos, neg)


@register("BitShift")
def _bitshift(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """Shifts as multiplications / floor divisions by 2**s (wrapping like a shift); shift
    amounts < 0 or >= the bit width give 0 (right shifts of negatives: -1), as the reference."""
    x, s = ctx.t(xs[0]), ctx.t(xs[1])
    dt = np_dtype_of(xs[0])
    bits = dt.itemsize * 8
    i64 = pf.int64
    s64 = s.astype(i64)
    outside = pf.logical_or(pf.lt(s64, 0), pf.ge(s64, bits))
    safe = pf.clamp(pf.where(outside, pf.full([], 0, dtype=i64), s64), 0, 62)
    p = pf.pow(pf.full([], 2, dtype=i64), safe)
    zero = pf.full([], 0, dtype=x.dtype)
    if node.attrs.get("direction", "LEFT") == "LEFT":
        y = x * p.astype(x.dtype)
        return pf.where(outside, zero, y)
    x64 = x.astype(i64)
    y = pf.floor_divide(x64, p)
    sign = pf.where(pf.lt(x64, 0), pf.full([], -1, dtype=i64), pf.full([], 0, dtype=i64))
    if bits == 64:  # x >> 63: beyond the exact 2**62 divisor
        y = pf.where(pf.ge(s64, 63), sign, y)
    return pf.where(outside, sign, y).astype(x.dtype)


@register("Where")
def _where(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    return pf.where(ctx.t(xs[0]).astype(pf.bool_), ctx.t(xs[1]), ctx.t(xs[2]))


def _variadic(fn: Any) -> Any:
    def conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
        ts = [ctx.t(x) for x in xs if x is not None]
        out = ts[0]
        for t in ts[1:]:
            out = fn(out, t)
        return out

    return conv


register("Max")(_variadic(pf.maximum))
register("Min")(_variadic(pf.minimum))
register("Sum")(_variadic(lambda a, b: a + b))


@register("Mean")
def _mean(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    ts = [ctx.t(x) for x in xs if x is not None]
    out = ts[0]
    for t in ts[1:]:
        out = out + t
    return out / float(len(ts))


@register("Clip")
def _clip(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    if ctx.opset < 11:
        lo, hi = node.attrs.get("min"), node.attrs.get("max")
        lo_t = None if lo is None else pf.full([], float(lo), dtype=x.dtype)
        hi_t = None if hi is None else pf.full([], float(hi), dtype=x.dtype)
    else:
        lo_t = ctx.t(xs[1]) if len(xs) > 1 and xs[1] is not None else None
        hi_t = ctx.t(xs[2]) if len(xs) > 2 and xs[2] is not None else None
    if lo_t is not None:
        x = pf.maximum(x, lo_t)
    if hi_t is not None:
        x = pf.minimum(x, hi_t)
    return x


@register("LeakyRelu")
def _leaky(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return pf.where(pf.ge(x, 0.0), x, x * float(node.attrs.get("alpha", 0.01)))


@register("PRelu")
def _prelu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, s = ctx.t(xs[0]), ctx.t(xs[1])
    return pf.where(pf.ge(x, 0.0), x, x * s)


@register("Elu")
def _elu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return pf.where(pf.gt(x, 0.0), x, (pf.exp(x) - 1.0) * float(node.attrs.get("alpha", 1.0)))


@register("Celu")
def _celu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    a = float(node.attrs.get("alpha", 1.0))
    return pf.maximum(x, 0.0) + pf.minimum((pf.exp(x / a) - 1.0) * a, 0.0)


@register("Selu")
def _selu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    a = float(node.attrs.get("alpha", 1.67326319217681884765625))
    g = float(node.attrs.get("gamma", 1.05070102214813232421875))
    return pf.where(pf.gt(x, 0.0), x * g, (pf.exp(x) * a - a) * g)


@register("ThresholdedRelu")
def _trelu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return pf.where(pf.gt(x, float(node.attrs.get("alpha", 1.0))), x, x * 0.0)


@register("HardSigmoid")
def _hsig(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    a, b = float(node.attrs.get("alpha", 0.2)), float(node.attrs.get("beta", 0.5))
    return pf.clamp(x * a + b, 0.0, 1.0)


@register("HardSwish")
def _hswish(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return x * pf.clamp(x * (1.0 / 6.0) + 0.5, 0.0, 1.0)


@register("Softplus")
def _softplus(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return pf.maximum(x, 0.0) + pf.log(pf.exp(-pf.abs(x)) + 1.0)


@register("Mish")
def _mish(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return x * pf.tanh(pf.maximum(x, 0.0) + pf.log(pf.exp(-pf.abs(x)) + 1.0))


@register("Gelu")
def _gelu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    return F.gelu(ctx.t(xs[0]), approximate=node.attrs.get("approximate", "none"))


@register("Shrink")
def _shrink(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    lam, bias = float(node.attrs.get("lambd", 0.5)), float(node.attrs.get("bias", 0.0))
    zero = x * 0
    return pf.where(pf.lt(x, -lam), x + bias, pf.where(pf.gt(x, lam), x - bias, zero))


@register("Cast")
def _cast(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    if "saturate" in node.attrs and int(node.attrs.get("to", 1)) > 16:
        raise BackendError("float8 casts are not supported")
    dt = onnx_elem_to_np(int(node.attrs["to"]))
    if isinstance(xs[0], np.ndarray) and xs[0].dtype.kind in "fiub":
        if xs[0].dtype.kind == "f" and dt.kind in "iu":
            with np.errstate(invalid="ignore"):
                return np.trunc(xs[0]).astype(dt)
        return xs[0].astype(dt)
    return ctx.t(xs[0]).astype(np_dtype_to_pf(dt))


@register("CastLike")
def _castlike(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    return ctx.t(xs[0]).astype(np_dtype_to_pf(np_dtype_of(xs[1])))


@register("Dropout")
def _dropout(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = xs[0]
    if len(xs) > 2 and xs[2] is not None and bool(ctx.a(xs[2]).reshape(-1)[0]):
        ratio = float(ctx.a(xs[1]).reshape(-1)[0]) if len(xs) > 1 and xs[1] is not None else 0.5
        if ratio != 0.0:  # ratio 0 drops nothing: training mode is the identity then
            raise BackendError("Dropout with training_mode=True is not supported in inference")
    outs = [x]
    if len(node.outputs) > 1:
        outs.append(pf.ones(list(ctx.t(x).shape), dtype=pf.bool_))
    return outs


def _coerce_2d(x: pf.Tensor, axis: int) -> pf.Tensor:
    shape = list(x.shape)
    axis = axis + len(shape) if axis < 0 else axis
    outer = int(np.prod(shape[:axis])) if axis else 1
    return x.reshape([outer, int(np.prod(shape[axis:]))])


def _softmax_like(kind: str) -> Any:
    def conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
        x = ctx.t(xs[0])
        if ctx.opset < 13:
            axis = int(node.attrs.get("axis", 1))
            x2 = _coerce_2d(x, axis)
            return _apply_softmax(kind, x2, 1).reshape(list(x.shape))
        return _apply_softmax(kind, x, int(node.attrs.get("axis", -1)))

    return conv


def _apply_softmax(kind: str, x: pf.Tensor, axis: int) -> pf.Tensor:
    if kind == "softmax":
        return pf.softmax(x, axis)
    if kind == "log":
        return pf.log_softmax(x, axis)
    # Hardmax: one-hot of the first maximum
    n = x.shape[axis]
    idx = pf.argmax(x, axis, True)
    shape = [1] * x.ndim
    shape[axis] = n
    ar = pf.from_numpy(np.arange(n, dtype=np.int64).reshape(shape))
    return pf.eq(idx, ar).astype(x.dtype)


register("Softmax")(_softmax_like("softmax"))
register("LogSoftmax")(_softmax_like("log"))
register("Hardmax")(_softmax_like("hard"))
