"""Reduction operators (ReduceX with attribute or input axes) and ArgMax/ArgMin.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> is_supported("ReduceL2") and is_supported("ArgMin")
    True
"""

from __future__ import annotations

from typing import Any, List

import numpy as np

import pyflame as pf

from .registry import OpContext, Value, register

# opset from which `axes` is an input instead of an attribute
_AXES_INPUT_SINCE = {"ReduceSum": 13}


def _axes(ctx: OpContext, node: Any, xs: List[Value], rank: int) -> List[int]:
    since = _AXES_INPUT_SINCE.get(node.op_type, 18)
    if ctx.opset >= since:
        axes = ctx.ints(xs[1]) if len(xs) > 1 and xs[1] is not None else []
    else:
        axes = [int(a) for a in node.attrs.get("axes", [])]
    if not axes:
        if int(node.attrs.get("noop_with_empty_axes", 0)):
            return []
        return list(range(rank))
    return sorted({a + rank if a < 0 else a for a in axes})


def _reducer(kind: str) -> Any:
    def conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
        x = ctx.t(xs[0])
        axes = _axes(ctx, node, xs, x.ndim)
        keep = bool(int(node.attrs.get("keepdims", 1)))
        if not axes and x.ndim > 0 and int(node.attrs.get("noop_with_empty_axes", 0)):
            return x
        if x.ndim == 0:
            return _pre(kind, x)
        dims = tuple(axes)
        if any(x.shape[a] == 0 for a in axes):
            return _empty(kind, x, axes, keep)
        if kind in ("sum", "l1", "l2", "sumsq", "logsum"):
            y = pf.sum(_pre(kind, x), dims, keep)
        elif kind == "mean":
            y = pf.mean(x, dims, keep)
        elif kind == "max":
            y = pf.amax(x, dims, keep)
        elif kind == "min":
            y = pf.amin(x, dims, keep)
        elif kind == "prod":
            y = pf.prod(x, dims, keep)
        else:  # logsumexp
            m = pf.amax(x, dims, True)
            m = pf.where(pf.ne(m, m * 0.0 + float("inf")), m, m * 0.0)  # guard +inf maxima
            y = pf.log(pf.sum(pf.exp(x - m), dims, True)) + m
            if not keep:
                y = y.reshape([s for i, s in enumerate(x.shape) if i not in axes])
        if kind == "l2":
            y = pf.sqrt(y)
        elif kind == "logsum":
            y = pf.log(y)
        return y

    return conv


def _pre(kind: str, x: pf.Tensor) -> pf.Tensor:
    if kind == "l1":
        return pf.abs(x)
    if kind in ("l2", "sumsq"):
        return x * x
    return x


def _empty(kind: str, x: pf.Tensor, axes: List[int], keep: bool) -> Any:
    shape = (
        [(1 if i in axes else s) for i, s in enumerate(x.shape)]
        if keep
        else [s for i, s in enumerate(x.shape) if i not in axes]
    )
    dt = np.dtype(pf.dtype_name(x.dtype).replace("bool", "bool_"))
    if dt.kind == "b":  # identities over booleans: False (max, sum), True (min, prod)
        return np.full(shape, kind in ("min", "prod"), dtype=dt)
    fill = {
        "max": -np.inf if dt.kind == "f" else np.iinfo(dt).min,
        "min": np.inf if dt.kind == "f" else np.iinfo(dt).max,
        "prod": 1,
        "logsum": -np.inf,
        "logsumexp": -np.inf,
    }.get(kind, 0)
    return np.full(shape, fill, dtype=dt)


for _op, _kind in [
    ("ReduceSum", "sum"),
    ("ReduceMean", "mean"),
    ("ReduceMax", "max"),
    ("ReduceMin", "min"),
    ("ReduceProd", "prod"),
    ("ReduceL1", "l1"),
    ("ReduceL2", "l2"),
    ("ReduceSumSquare", "sumsq"),
    ("ReduceLogSum", "logsum"),
    ("ReduceLogSumExp", "logsumexp"),
]:
    register(_op)(_reducer(_kind))


def _arg(largest: bool) -> Any:
    def conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
        x = ctx.t(xs[0])
        axis = int(node.attrs.get("axis", 0))
        axis = axis + x.ndim if axis < 0 else axis
        keep = bool(int(node.attrs.get("keepdims", 1)))
        fn = pf.argmax if largest else pf.argmin
        if int(node.attrs.get("select_last_index", 0)):
            n = x.shape[axis]
            rev = pf.from_numpy(np.arange(n - 1, -1, -1, dtype=np.int64))
            xr = x[(slice(None),) * axis + (rev,)]
            return (n - 1) - fn(xr, axis, keep)
        return fn(x, axis, keep)

    return conv


register("ArgMax")(_arg(True))
register("ArgMin")(_arg(False))
