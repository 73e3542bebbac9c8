"""Shape, movement, indexing and tensor-creation operators.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("Reshape", "Slice", "Gather", "Resize", "Einsum"))
    True
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence

import numpy as np

import pyflame as pf
import pyflame.nn.functional as F

from ..errors import BackendError
from .ops_elementwise import onnx_elem_to_np
from .registry import OpContext, Value, not_supported, np_dtype_of, np_dtype_to_pf, register

ALL = slice(None)


def _axis(a: int, rank: int) -> int:
    if not -rank <= a < max(rank, 1):
        raise BackendError(f"axis {a} is out of range for rank {rank}")
    return a + rank if a < 0 else a


def _take(x: pf.Tensor, axis: int, index: Any) -> pf.Tensor:
    return x[(ALL,) * axis + (index,)]


def _np_attr_or_input(
    ctx: OpContext, node: Any, xs: List[Value], attr: str, idx: int, since: int
) -> Optional[List[int]]:
    if ctx.opset >= since:
        if len(xs) > idx and xs[idx] is not None:
            return ctx.ints(xs[idx])
        return None
    v = node.attrs.get(attr)
    return None if v is None else [int(a) for a in v]


@register("Shape")
def _shape(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    shp = np.array(list(xs[0].shape), dtype=np.int64)  # type: ignore[union-attr]
    start = int(node.attrs.get("start", 0))
    end = node.attrs.get("end")
    return shp[start : (None if end is None else int(end))].copy()


@register("Size")
def _size(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    return np.array(int(np.prod(list(xs[0].shape))), dtype=np.int64)  # type: ignore[union-attr]


@register("Constant")
def _constant(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    a = node.attrs
    if "value" in a:
        return np.asarray(a["value"])
    if "value_float" in a:
        return np.array(a["value_float"], dtype=np.float32)
    if "value_floats" in a:
        return np.array(a["value_floats"], dtype=np.float32)
    if "value_int" in a:
        return np.array(a["value_int"], dtype=np.int64)
    if "value_ints" in a:
        return np.array(a["value_ints"], dtype=np.int64)
    raise BackendError(
        "Constant: only value/value_float(s)/value_int(s) are supported "
        "(string and sparse constants are not)"
    )


@register("ConstantOfShape")
def _const_of_shape(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    shape = ctx.ints(xs[0])
    val = node.attrs.get("value")
    val = np.zeros(1, np.float32) if val is None else np.asarray(val).reshape(-1)
    return np.full(shape, val[0], dtype=val.dtype)


@register("Reshape")
def _reshape(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    shape = ctx.ints(xs[1]) if ctx.opset >= 5 else [int(s) for s in node.attrs["shape"]]
    in_shape = list(xs[0].shape)  # type: ignore[union-attr]
    if not int(node.attrs.get("allowzero", 0)):
        shape = [in_shape[i] if s == 0 else s for i, s in enumerate(shape)]
    if isinstance(xs[0], np.ndarray):
        return xs[0].reshape(shape)
    if -1 in shape:
        known = int(np.prod([s for s in shape if s != -1]))
        total = int(np.prod(in_shape))
        shape[shape.index(-1)] = total // known if known else 0
    return ctx.t(xs[0]).reshape(shape)


@register("Flatten")
def _flatten(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    axis = int(node.attrs.get("axis", 1))
    axis = axis + x.ndim if axis < 0 else axis
    shape = list(x.shape)
    return x.reshape([int(np.prod(shape[:axis])), int(np.prod(shape[axis:]))])


@register("Transpose")
def _transpose(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    perm = node.attrs.get("perm")
    perm = list(range(x.ndim))[::-1] if perm is None else [int(p) for p in perm]
    return x.permute(perm) if x.ndim > 1 else x


@register("Squeeze")
def _squeeze(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    shape = list(xs[0].shape)  # type: ignore[union-attr]
    axes = _np_attr_or_input(ctx, node, xs, "axes", 1, 13)
    if axes is None:
        axes = [i for i, s in enumerate(shape) if s == 1]
    axes = [_axis(a, len(shape)) for a in axes]
    new = [s for i, s in enumerate(shape) if i not in axes]
    if isinstance(xs[0], np.ndarray):
        return xs[0].reshape(new)
    return ctx.t(xs[0]).reshape(new)


@register("Unsqueeze")
def _unsqueeze(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    shape = list(xs[0].shape)  # type: ignore[union-attr]
    axes = _np_attr_or_input(ctx, node, xs, "axes", 1, 13) or []
    rank = len(shape) + len(axes)
    axes = sorted(_axis(a, rank) for a in axes)
    for a in axes:
        shape.insert(a, 1)
    if isinstance(xs[0], np.ndarray):
        return xs[0].reshape(shape)
    return ctx.t(xs[0]).reshape(shape)


@register("Concat")
def _concat(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    vals = [x for x in xs if x is not None]
    axis = int(node.attrs.get("axis", 0))
    if all(isinstance(v, np.ndarray) for v in vals):
        return np.concatenate(vals, axis=axis)  # type: ignore[arg-type]
    ts = [ctx.t(v) for v in vals]
    axis = _axis(axis, ts[0].ndim)
    ts = [t for t in ts if t.shape[axis] != 0] or ts[:1]
    return pf.cat(ts, axis) if len(ts) > 1 else ts[0]


@register("Split")
def _split(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    axis = _axis(int(node.attrs.get("axis", 0)), x.ndim)
    sizes = _np_attr_or_input(ctx, node, xs, "split", 1, 13)
    n_out = len(node.outputs)
    dim = x.shape[axis]
    if sizes is None:
        n = int(node.attrs.get("num_outputs", n_out))
        chunk = -(-dim // n)
        sizes = [min(chunk, dim - i * chunk) for i in range(n)]
    outs, start = [], 0
    for s in sizes:
        outs.append(_take(x, axis, slice(start, start + s)))
        start += s
    return outs


def _slice_one(x: Any, axis: int, start: int, end: int, step: int, is_np: bool) -> Any:
    dim = x.shape[axis]
    if step == 0:
        raise BackendError("Slice step must not be 0")
    s, e, st = slice(start, end, step).indices(dim)
    if is_np:
        return x[(ALL,) * axis + (slice(s, e, st),)]
    if st > 0:
        if s == 0 and e >= dim and st == 1:
            return x
        return _take(x, axis, slice(s, max(e, s), st))
    idx = np.arange(s, e, st, dtype=np.int64)
    if idx.size == 0:
        shape = list(x.shape)
        shape[axis] = 0
        return pf.zeros(shape, dtype=x.dtype)
    return _take(x, axis, pf.from_numpy(idx))


@register("Slice")
def _slice(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    if ctx.opset < 10:
        starts = [int(v) for v in node.attrs["starts"]]
        ends = [int(v) for v in node.attrs["ends"]]
        axes = node.attrs.get("axes")
        steps = None
    else:
        starts, ends = ctx.ints(xs[1]), ctx.ints(xs[2])
        axes = ctx.ints(xs[3]) if len(xs) > 3 and xs[3] is not None else None
        steps = ctx.ints(xs[4]) if len(xs) > 4 and xs[4] is not None else None
    is_np = isinstance(xs[0], np.ndarray)
    x = xs[0] if is_np else ctx.t(xs[0])
    rank = len(x.shape)  # type: ignore[union-attr]
    axes = list(range(len(starts))) if axes is None else [_axis(int(a), rank) for a in axes]
    steps = [1] * len(starts) if steps is None else steps
    for a, s, e, st in zip(axes, starts, ends, steps):
        x = _slice_one(x, a, s, e, st, is_np)
    return x


@register("Gather")
def _gather(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    data, idx = xs[0], xs[1]
    rank = len(data.shape)  # type: ignore[union-attr]
    axis = _axis(int(node.attrs.get("axis", 0)), rank)
    n = data.shape[axis]  # type: ignore[union-attr]
    if isinstance(idx, np.ndarray):
        idx = np.where(idx < 0, idx + n, idx).astype(np.int64)
        if isinstance(data, np.ndarray):
            return np.take(data, idx, axis=axis)
        if idx.ndim == 0:
            return _take(ctx.t(data), axis, int(idx))
        return _take(ctx.t(data), axis, ctx.t(idx))
    it = ctx.t(idx).astype(pf.int64)
    it = pf.where(pf.lt(it, 0), it + n, it)
    return _take(ctx.t(data), axis, it)


def _linear_index(shape: Sequence[int], idx: pf.Tensor, axis: int, n_axis: int) -> pf.Tensor:
    """Flat indices of ``x[i0, .., idx[...], .., ik]`` for GatherElements."""
    ishape = list(idx.shape)
    strides = np.cumprod([1] + list(shape[::-1]))[:-1][::-1]
    lin = pf.where(pf.lt(idx, 0), idx + n_axis, idx) * int(strides[axis])
    for d in range(len(ishape)):
        if d == axis:
            continue
        r = [1] * len(ishape)
        r[d] = ishape[d]
        lin = lin + pf.from_numpy((np.arange(ishape[d], dtype=np.int64) * strides[d]).reshape(r))
    return lin


@register("GatherElements")
def _gather_elements(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    idx = ctx.t(xs[1]).astype(pf.int64)
    axis = _axis(int(node.attrs.get("axis", 0)), x.ndim)
    lin = _linear_index(list(x.shape), idx, axis, x.shape[axis])
    return x.reshape([-1])[lin.reshape([-1])].reshape(list(idx.shape))


@register("Expand")
def _expand(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    shape = ctx.ints(xs[1])
    out = list(np.broadcast_shapes(tuple(xs[0].shape), tuple(shape)))  # type: ignore[union-attr]
    if isinstance(xs[0], np.ndarray):
        return np.broadcast_to(xs[0], out).copy()
    x = ctx.t(xs[0])
    if len(out) > x.ndim:
        x = x.reshape([1] * (len(out) - x.ndim) + list(x.shape))
    return x.expand(*out) if list(x.shape) != out else x


@register("Tile")
def _tile(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    reps = ctx.ints(xs[1])
    shape = list(x.shape)
    inter, target, final = [], [], []
    for s, r in zip(shape, reps):
        inter += [1, s]
        target += [r, s]
        final.append(s * r)
    return x.reshape(inter).expand(*target).reshape(final)


@register("Range")
def _range(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    start, limit, delta = (ctx.a(v).reshape(()) for v in xs[:3])
    return np.arange(start, limit, delta).astype(np.asarray(start).dtype)


@register("Pad")
def _pad(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    mode = node.attrs.get("mode", "constant")
    if isinstance(mode, bytes):
        mode = mode.decode()
    if ctx.opset < 11:
        pads = [int(p) for p in node.attrs["pads"]]
        value = float(node.attrs.get("value", 0.0))
        axes = list(range(x.ndim))
    else:
        pads = ctx.ints(xs[1])
        value = ctx.a(xs[2]).reshape(-1)[0].item() if len(xs) > 2 and xs[2] is not None else 0
        if len(xs) > 3 and xs[3] is not None:
            axes = [_axis(a, x.ndim) for a in ctx.ints(xs[3])]
        else:
            axes = list(range(x.ndim))
    k = len(axes)
    begins, ends = pads[:k], pads[k:]
    full = [(0, 0)] * x.ndim
    for a, b, e in zip(axes, begins, ends):
        full[a] = (b, e)
    flat: List[int] = []
    first = next((i for i, p in enumerate(full) if p != (0, 0)), x.ndim)
    for d in range(x.ndim - 1, first - 1, -1):
        flat += list(full[d])
    if not flat:
        return x
    fmode = {
        "constant": "constant",
        "reflect": "reflect",
        "edge": "replicate",
        "wrap": "circular",
    }.get(mode)
    if fmode is None:
        raise BackendError(f"Pad mode {mode!r} is not supported")
    if fmode == "constant":
        return F.pad(x, flat, mode="constant", value=value)
    return F.pad(x, flat, mode=fmode)


@register("Einsum")
def _einsum(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    eq = node.attrs["equation"].replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if "..." in eq or any(len(set(t)) != len(t) for t in terms):
        # ellipses and diagonals/traces: NumPy on the host (the run becomes data dependent)
        vals = [np.asarray(ctx.a(x)) for x in xs]
        try:
            return np.asarray(np.einsum(eq, *vals)).astype(vals[0].dtype)
        except ValueError as e:
            raise BackendError(f"Einsum {eq!r}: {e}") from e
    ts = [ctx.t(x) for x in xs]
    if not _:
        rhs = "".join(sorted(c for c in set(lhs) - {","} if lhs.count(c) == 1))
    letters = list(rhs) + sorted(set(lhs.replace(",", "")) - set(rhs))
    prod = None
    for t, term in zip(ts, terms):
        order = [term.index(c) for c in letters if c in term]
        t = t.permute(order) if len(order) > 1 else t
        shape, j = [], 0
        present = [c for c in letters if c in term]
        for c in letters:
            if c in term:
                shape.append(t.shape[j])
                j += 1
            else:
                shape.append(1)
        del present
        t = t.reshape(shape)
        prod = t if prod is None else prod * t
    red = list(range(len(rhs), len(letters)))
    return pf.sum(prod, tuple(red)) if red else prod


@register("CumSum")
def _cumsum(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    axis = _axis(int(ctx.a(xs[1]).reshape(-1)[0]), x.ndim)
    n = x.shape[axis]
    i = np.arange(n)
    excl, rev = int(node.attrs.get("exclusive", 0)), int(node.attrs.get("reverse", 0))
    # mask[j, k]: output k includes input j
    mask = (i[:, None] >= i[None, :]) if rev else (i[:, None] <= i[None, :])
    if excl:
        mask &= i[:, None] != i[None, :]
    shape = [1] * (x.ndim + 1)
    shape[axis], shape[axis + 1] = n, n
    m = pf.from_numpy(mask.reshape(shape).astype(np_dtype_of(xs[0])))
    return pf.sum(x.unsqueeze(axis + 1) * m, axis).astype(x.dtype)


@register("CumProd")
def _cumprod(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    axis = _axis(int(ctx.a(xs[1]).reshape(-1)[0]), x.ndim)
    n = x.shape[axis]
    i = np.arange(n)
    excl, rev = int(node.attrs.get("exclusive", 0)), int(node.attrs.get("reverse", 0))
    # mask[j, k]: output k multiplies input j; the others contribute 1
    mask = (i[:, None] >= i[None, :]) if rev else (i[:, None] <= i[None, :])
    if excl:
        mask &= i[:, None] != i[None, :]
    shape = [1] * (x.ndim + 1)
    shape[axis], shape[axis + 1] = n, n
    m = pf.from_numpy(mask.reshape(shape))
    one = pf.full([], 1, dtype=x.dtype)
    return pf.prod(pf.where(m, x.unsqueeze(axis + 1), one), axis).astype(x.dtype)


@register("TopK")
def _topk(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    k = int(ctx.a(xs[1]).reshape(-1)[0]) if ctx.opset >= 10 else int(node.attrs["k"])
    axis = _axis(int(node.attrs.get("axis", -1)), x.ndim)
    largest = int(node.attrs.get("largest", 1))
    if k > 64:
        raise BackendError("TopK with k > 64 is not supported (no sort primitive)")
    n = x.shape[axis]
    shape = [1] * x.ndim
    shape[axis] = n
    ar = pf.from_numpy(np.arange(n, dtype=np.int64).reshape(shape))
    work = x.astype(pf.float64) if x.dtype != pf.float64 else x
    fill = -np.inf if largest else np.inf
    vals, idxs = [], []
    for _ in range(k):
        i = pf.argmax(work, axis, True) if largest else pf.argmin(work, axis, True)
        idxs.append(i)
        vals.append(pf.amax(pf.where(pf.eq(ar, i), work, -np.inf), axis, True))
        work = pf.where(pf.eq(ar, i), pf.full([], fill, dtype=pf.float64), work)
    v = pf.cat(vals, axis) if k > 1 else vals[0]
    return [v.astype(x.dtype), pf.cat(idxs, axis) if k > 1 else idxs[0]]


@register("OneHot")
def _onehot(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    idx = ctx.t(xs[0]).astype(pf.int64)
    depth = int(ctx.a(xs[1]).reshape(-1)[0])
    vals = ctx.t(xs[2])
    axis = int(node.attrs.get("axis", -1))
    rank = idx.ndim + 1
    axis = _axis(axis, rank)
    idx = pf.where(pf.lt(idx, 0), idx + depth, idx).unsqueeze(axis)
    shape = [1] * rank
    shape[axis] = depth
    hot = pf.eq(idx, pf.from_numpy(np.arange(depth, dtype=np.int64).reshape(shape)))
    return pf.where(hot, vals[1:2].reshape([]), vals[0:1].reshape([]))


@register("Trilu")
def _trilu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    k = int(ctx.a(xs[1]).reshape(-1)[0]) if len(xs) > 1 and xs[1] is not None else 0
    n, m = x.shape[-2], x.shape[-1]
    upper = int(node.attrs.get("upper", 1))
    mask = np.triu(np.ones((n, m), bool), k) if upper else np.tril(np.ones((n, m), bool), k)
    return pf.where(pf.from_numpy(mask), x, pf.zeros([], dtype=x.dtype))


@register("EyeLike")
def _eyelike(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    n, m = xs[0].shape  # type: ignore[union-attr]
    dt = node.attrs.get("dtype")
    dtype = np_dtype_of(xs[0]) if dt is None else onnx_elem_to_np(int(dt))
    return np.eye(n, m, int(node.attrs.get("k", 0)), dtype=dtype)


@register("NonZero")
def _nonzero(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    return np.array(np.nonzero(ctx.a(xs[0])), dtype=np.int64)


@register("DepthToSpace")
def _d2s(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    b = int(node.attrs["blocksize"])
    n, c, h, w = x.shape
    if node.attrs.get("mode", "DCR") == "DCR":
        y = x.reshape([n, b, b, c // (b * b), h, w]).permute([0, 3, 4, 1, 5, 2])
    else:
        y = x.reshape([n, c // (b * b), b, b, h, w]).permute([0, 1, 4, 2, 5, 3])
    return y.reshape([n, c // (b * b), h * b, w * b])


@register("SpaceToDepth")
def _s2d(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    b = int(node.attrs["blocksize"])
    n, c, h, w = x.shape
    mode = node.attrs.get("mode", "DCR")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    # DCR: output channel (bh, bw, c); CRD (opset 25): (c, bh, bw)
    perm = [0, 1, 3, 5, 2, 4] if mode == "CRD" else [0, 3, 5, 1, 2, 4]
    y = x.reshape([n, c, h // b, b, w // b, b]).permute(perm)
    return y.reshape([n, c * b * b, h // b, w // b])


not_supported(
    "sequence/optional/map types are not supported",
    "SequenceConstruct",
    "SequenceAt",
    "SequenceInsert",
    "SequenceErase",
    "SequenceLength",
    "SequenceEmpty",
    "SplitToSequence",
    "ConcatFromSequence",
    "Optional",
    "OptionalHasElement",
    "OptionalGetElement",
    "SequenceMap",
)
not_supported(
    "string tensors are not supported",
    "StringNormalizer",
    "StringConcat",
    "StringSplit",
    "RegexFullMatch",
    "LabelEncoder",
)
_ = np_dtype_to_pf
