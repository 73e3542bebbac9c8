"""Operators computed on the host with NumPy: scatters and GatherND (no scatter primitive in
the tensor API), Asin/Acos/Atan, Det, Compress, ReverseSequence, CenterCropPad, TensorScatter
and the window functions.

Their inputs are evaluated first (``OpContext.a``), which marks the run data dependent: a
graph using them is traced on every run instead of replaying a cached plan. Results are
NumPy arrays, so shape arithmetic downstream still folds.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.onnx_import.registry import OpContext
    >>> from pyflame.runtime.graph import Node
    >>> data, idx = np.zeros((2, 2), np.float32), np.array([[1, 0]], np.int64)
    >>> upd = np.array([5.0], np.float32)
    >>> _scatter_nd(OpContext(), Node("s", "ScatterND", [], []), [data, idx, upd])
    array([[0., 0.],
           [5., 0.]], dtype=float32)
"""

from __future__ import annotations

from typing import Any, List, Optional

import numpy as np

from ..errors import BackendError
from .ops_elementwise import onnx_elem_to_np
from .registry import OpContext, Value, register

_REDUCE = {
    "add": np.add,
    "mul": np.multiply,
    "max": np.maximum,
    "min": np.minimum,
}


def _np(ctx: OpContext, v: Value) -> np.ndarray:
    return np.asarray(ctx.a(v))


def _reduction(node: Any) -> Optional[Any]:
    red = node.attrs.get("reduction", "none")
    red = red.decode() if isinstance(red, bytes) else red
    if red == "none":
        return None
    if red not in _REDUCE:
        raise BackendError(f"{node.op_type}: unknown reduction {red!r}")
    return _REDUCE[red]


def _check_index(idx: np.ndarray, dim: Any, op: str) -> np.ndarray:
    dim = np.asarray(dim)
    if np.any(idx < -dim) or np.any(idx >= dim):
        raise BackendError(f"{op}: index out of range")
    return np.where(idx < 0, idx + dim, idx)


@register("ScatterND")
def _scatter_nd(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    data, idx, upd = _np(ctx, xs[0]), _np(ctx, xs[1]).astype(np.int64), _np(ctx, xs[2])
    k = idx.shape[-1]
    if k > data.ndim:
        raise BackendError("ScatterND: indices address more axes than the data has")
    flat = _check_index(idx.reshape(-1, k), np.array(data.shape[:k]), "ScatterND")
    where = tuple(flat.T)
    vals = upd.reshape((-1,) + data.shape[k:])
    out = data.copy()
    red = _reduction(node)
    if red is None:
        out[where] = vals
    else:
        red.at(out, where, vals)
    return out


def _elements_index(idx: np.ndarray, axis: int, dim: int, op: str) -> tuple:
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = _check_index(idx, dim, op)
    return tuple(grid)


@register("ScatterElements", "Scatter")
def _scatter_elements(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    data, idx, upd = _np(ctx, xs[0]), _np(ctx, xs[1]).astype(np.int64), _np(ctx, xs[2])
    axis = int(node.attrs.get("axis", 0))
    axis = axis + data.ndim if axis < 0 else axis
    if idx.shape != upd.shape or idx.ndim != data.ndim:
        raise BackendError(f"{node.op_type}: indices and updates must match in shape and rank")
    where = _elements_index(idx, axis, data.shape[axis], node.op_type)
    out = data.copy()
    red = _reduction(node)
    if red is None:
        out[where] = upd
    else:
        red.at(out, where, upd)
    return out


@register("GatherND")
def _gather_nd(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    data, idx = _np(ctx, xs[0]), _np(ctx, xs[1]).astype(np.int64)
    b = int(node.attrs.get("batch_dims", 0))
    k = idx.shape[-1]
    if b + k > data.ndim or idx.shape[:b] != data.shape[:b]:
        raise BackendError("GatherND: indices do not fit the data shape")
    bsize = int(np.prod(data.shape[:b], dtype=np.int64))
    ri = _check_index(idx.reshape(bsize, -1, k), np.array(data.shape[b : b + k]), "GatherND")
    rd = data.reshape((bsize,) + data.shape[b:])
    out = np.stack([rd[(i,) + tuple(ri[i].T)] for i in range(bsize)]) if bsize else rd[:0]
    return out.reshape(idx.shape[:-1] + data.shape[b + k :])


@register("TensorScatter")
def _tensor_scatter(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    cache, upd = _np(ctx, xs[0]), _np(ctx, xs[1])
    axis = int(node.attrs.get("axis", -2))
    axis = axis + cache.ndim if axis < 0 else axis
    if axis == 0 or upd.ndim != cache.ndim:
        raise BackendError("TensorScatter: the sequence axis must not be the batch axis")
    mode = node.attrs.get("mode", "linear")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    n = cache.shape[0]
    starts = (
        _np(ctx, xs[2]).astype(np.int64).reshape(-1)
        if len(xs) > 2 and xs[2] is not None
        else np.zeros(n, np.int64)
    )
    size, seq = cache.shape[axis], upd.shape[axis]
    out = cache.copy()
    for b in range(n):
        pos = starts[b] + np.arange(seq)
        if mode == "circular":
            pos %= size
        elif pos.size and (pos[-1] >= size or pos[0] < 0):
            raise BackendError("TensorScatter: write past the end of the cache (linear mode)")
        dst = np.moveaxis(out[b], axis - 1, 0)
        dst[pos] = np.moveaxis(upd[b], axis - 1, 0)
    return out


def _unary(fn: Any) -> Any:
    def conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
        x = _np(ctx, xs[0])
        with np.errstate(invalid="ignore"):
            return fn(x).astype(x.dtype)

    return conv


register("Asin")(_unary(np.arcsin))
register("Acos")(_unary(np.arccos))
register("Atan")(_unary(np.arctan))


@register("Det")
def _det(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = _np(ctx, xs[0])
    if x.ndim < 2 or x.shape[-1] != x.shape[-2]:
        raise BackendError("Det needs square matrices in the last two axes")
    return np.linalg.det(x.astype(np.float64)).astype(x.dtype)


@register("Compress")
def _compress(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, cond = _np(ctx, xs[0]), _np(ctx, xs[1]).astype(bool).reshape(-1)
    axis = node.attrs.get("axis")
    if axis is None:
        return np.compress(cond, x.reshape(-1))
    return np.compress(cond, x, axis=int(axis))


@register("ReverseSequence")
def _reverse_sequence(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, lens = _np(ctx, xs[0]), _np(ctx, xs[1]).astype(np.int64).reshape(-1)
    b_ax, t_ax = int(node.attrs.get("batch_axis", 1)), int(node.attrs.get("time_axis", 0))
    out = x.copy()
    for i, n in enumerate(lens):
        if n <= 0:
            continue
        if n > x.shape[t_ax]:
            raise BackendError("ReverseSequence: a sequence length exceeds the time axis")
        dst: List[Any] = [slice(None)] * x.ndim
        src: List[Any] = [slice(None)] * x.ndim
        dst[b_ax] = src[b_ax] = i
        dst[t_ax], src[t_ax] = slice(0, n), slice(n - 1, None, -1)
        out[tuple(dst)] = x[tuple(src)]
    return out


@register("CenterCropPad")
def _center_crop_pad(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, shape = _np(ctx, xs[0]), [int(v) for v in _np(ctx, xs[1]).reshape(-1)]
    axes = [int(a) for a in node.attrs.get("axes", range(x.ndim))]
    axes = [a + x.ndim if a < 0 else a for a in axes]
    if len(axes) != len(shape):
        raise BackendError("CenterCropPad: shape and axes lengths differ")
    crop: List[Any] = [slice(None)] * x.ndim
    pad: List[Any] = [slice(None)] * x.ndim
    new = list(x.shape)
    for a, want in zip(axes, shape):
        dim = x.shape[a]
        new[a] = want
        lo = abs(dim - want) // 2
        if want < dim:
            crop[a] = slice(lo, lo + want)
        elif want > dim:
            pad[a] = slice(lo, lo + dim)
    out = np.zeros(new, dtype=x.dtype)
    out[tuple(pad)] = x[tuple(crop)]
    return out


def _window(kind: str) -> Any:
    def conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
        n = int(_np(ctx, xs[0]).reshape(-1)[0])
        periodic = int(node.attrs.get("periodic", 1))
        dt = onnx_elem_to_np(int(node.attrs.get("output_datatype", 1)))
        span = n if periodic else n - 1
        k = np.arange(n, dtype=np.float64)
        ang = 2 * np.pi * k / span if span > 0 else np.zeros(n)
        if kind == "hann":
            w = 0.5 - 0.5 * np.cos(ang)
        elif kind == "hamming":
            w = 25 / 46 - (21 / 46) * np.cos(ang)
        else:
            w = 0.42 - 0.5 * np.cos(ang) + 0.08 * np.cos(2 * ang)
        return w.astype(dt)

    return conv


register("HannWindow")(_window("hann"))
register("HammingWindow")(_window("hamming"))
register("BlackmanWindow")(_window("blackman"))
