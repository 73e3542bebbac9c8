"""Neural-network operators: Conv, ConvTranspose, pooling, normalization, Gemm/MatMul
and the fused operators the optimizer produces (domain ``pyflame.rt``).

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("Conv", "BatchNormalization", "FusedConv", "Resize"))
    True
"""

from __future__ import annotations

import math
from typing import Any, List, Optional, Sequence, Tuple

import numpy as np

import pyflame as pf
import pyflame.nn.functional as F

from ..errors import BackendError
from .registry import OpContext, Value, not_supported, np_dtype_of, register

_core = pf._core


def _spatial_pads(
    node: Any, in_sp: Sequence[int], k: Sequence[int], s: Sequence[int], d: Sequence[int]
) -> Tuple[List[int], List[int]]:
    nd = len(in_sp)
    auto = node.attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(nd):
            out = -(-in_sp[i] // s[i])
            total = max((out - 1) * s[i] + (k[i] - 1) * d[i] + 1 - in_sp[i], 0)
            small = total // 2
            b = small if auto == "SAME_UPPER" else total - small
            begin.append(b)
            end.append(total - b)
        return begin, end
    if auto == "VALID":
        return [0] * nd, [0] * nd
    pads = [int(p) for p in node.attrs.get("pads", [0] * (2 * nd))]
    return pads[:nd], pads[nd:]


def _to2d(x: pf.Tensor) -> Tuple[pf.Tensor, bool]:
    if x.ndim == 3:
        return x.unsqueeze(3), True
    if x.ndim != 4:
        raise BackendError(
            f"only 1-D and 2-D spatial operators are supported (input rank {x.ndim})"
        )
    return x, False


def _pair(v: Sequence[int], fill: int) -> List[int]:
    v = list(v)
    return v + [fill] * (2 - len(v))


def _pad_explicit(x: pf.Tensor, begin: List[int], end: List[int], value: float) -> pf.Tensor:
    flat: List[int] = []
    for b, e in zip(begin[::-1], end[::-1]):
        flat += [b, e]
    return F.pad(x, flat, mode="constant", value=value)


def _conv(
    ctx: OpContext,
    node: Any,
    xs: List[Value],
    residual: Optional[pf.Tensor] = None,
    clamp: Optional[Tuple[float, float]] = None,
) -> pf.Tensor:
    """Conv (bias, residual and a clamp fused into the kernel when given)."""
    x = ctx.t(xs[0])
    w = ctx.t(xs[1])
    b = ctx.t(xs[2]) if len(xs) > 2 and xs[2] is not None else None
    nd = x.ndim - 2
    k = list(node.attrs.get("kernel_shape", list(w.shape[2:])))
    s = [int(v) for v in node.attrs.get("strides", [1] * nd)]
    d = [int(v) for v in node.attrs.get("dilations", [1] * nd)]
    begin, end = _spatial_pads(node, list(x.shape[2:]), k, s, d)
    x, one_d = _to2d(x)
    if one_d:
        w = w.unsqueeze(3)
        residual = residual.unsqueeze(3) if residual is not None else None
    if begin != end:
        x = _pad_explicit(x, _pair(begin, 0), _pair(end, 0), 0.0)
        begin = [0] * nd
    y = _core.conv2d(
        x,
        w,
        b,
        _pair(s, 1),
        _pair(begin, 0),
        _pair(d, 1),
        int(node.attrs.get("group", 1)),
        residual=residual,
        clamp=clamp,
    )
    return y.squeeze(3) if one_d else y


def _activation(node: Any, y: pf.Tensor) -> pf.Tensor:
    act = node.attrs.get("activation", "")
    if not act:
        return y
    if act == "Relu":
        return pf.relu(y)
    if act == "Clip":
        return pf.clamp(y, float(node.attrs["activation_min"]), float(node.attrs["activation_max"]))
    if act == "LeakyRelu":
        return pf.where(pf.ge(y, 0.0), y, y * float(node.attrs.get("activation_alpha", 0.01)))
    if act == "Sigmoid":
        return pf.sigmoid(y)
    if act == "Gelu":
        return F.gelu(y)
    raise BackendError(f"unknown fused activation {act!r}")


def _clamp_of(node: Any) -> Optional[Tuple[float, float]]:
    """The fused activation as the (min, max) clamp the conv kernel applies, if it is one."""
    act = node.attrs.get("activation", "")
    if act == "Relu":
        return (0.0, math.inf)
    if act == "Clip":
        return (float(node.attrs["activation_min"]), float(node.attrs["activation_max"]))
    return None


register("Conv")(_conv)


@register("FusedConv")
def _fused_conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    residual = ctx.t(xs[3]) if len(xs) > 3 and xs[3] is not None else None  # Conv + Add
    clamp = _clamp_of(node)
    y = _conv(ctx, node, xs[:3])  # lazy: only its shape is looked at when the kernel fuses
    kernel_act = clamp is not None or not node.attrs.get("activation", "")
    # A broadcast residual or another activation is applied after the convolution.
    if kernel_act and (residual is None or list(residual.shape) == list(y.shape)):
        return _conv(ctx, node, xs[:3], residual=residual, clamp=clamp)
    if residual is not None:
        y = y + residual
    return _activation(node, y)


@register("ConvTranspose")
def _conv_transpose(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    nd = x.ndim - 2
    if nd not in (1, 2):
        raise BackendError("only 1-D and 2-D ConvTranspose are supported")
    w_in = xs[1]
    g = int(node.attrs.get("group", 1))
    wshape = list(w_in.shape)  # type: ignore[union-attr]
    k = [int(v) for v in node.attrs.get("kernel_shape", wshape[2:])]
    s = [int(v) for v in node.attrs.get("strides", [1] * nd)]
    d = [int(v) for v in node.attrs.get("dilations", [1] * nd)]
    op = [int(v) for v in node.attrs.get("output_padding", [0] * nd)]
    in_sp = list(x.shape[2:])
    auto = node.attrs.get("auto_pad", "NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    out_shape = node.attrs.get("output_shape")
    full = [s[i] * (in_sp[i] - 1) + op[i] + (k[i] - 1) * d[i] + 1 for i in range(nd)]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        target = (
            [int(v) for v in out_shape][-nd:]
            if out_shape is not None
            else [in_sp[i] * s[i] for i in range(nd)]
        )
        begin, end = [], []
        for i in range(nd):
            total = full[i] - target[i]
            if auto == "SAME_LOWER":
                begin.append(total - total // 2)
                end.append(total // 2)
            else:
                begin.append(total // 2)
                end.append(total - total // 2)
    elif out_shape is not None:
        # explicit output_shape (as the reference): the full result is cut or extended
        # (with zeros, i.e. the bias) at the end; leading pads still apply
        pads = [int(p) for p in node.attrs.get("pads", [0] * (2 * nd))]
        target = [int(v) for v in out_shape][-nd:]
        begin = pads[:nd]
        end = [full[i] - begin[i] - target[i] for i in range(nd)]
    elif auto == "VALID":
        begin, end = [0] * nd, [0] * nd
    else:
        pads = [int(p) for p in node.attrs.get("pads", [0] * (2 * nd))]
        begin, end = pads[:nd], pads[nd:]
    cin, cout_g = wshape[0], wshape[1]
    if isinstance(w_in, np.ndarray):
        w = w_in.reshape([g, cin // g, cout_g] + wshape[2:]).swapaxes(1, 2)
        w = np.ascontiguousarray(
            np.flip(w.reshape([g * cout_g, cin // g] + wshape[2:]), axis=tuple(range(2, 2 + nd)))
        )
        wt = ctx.t(w)
    else:
        wt = ctx.t(w_in).reshape([g, cin // g, cout_g] + wshape[2:]).transpose(1, 2)
        wt = wt.reshape([g * cout_g, cin // g] + wshape[2:])
        for a in range(2, 2 + nd):
            rev = pf.from_numpy(np.arange(wshape[a] - 1, -1, -1, dtype=np.int64))
            wt = wt[(slice(None),) * a + (rev,)]
    # zero insertion (stride), then padding, then a stride-1 convolution
    y = x
    for i in range(nd):
        if s[i] > 1:
            ax = 2 + i
            shp = list(y.shape)
            y = y.unsqueeze(ax + 1)
            flat = [0, 0] * (y.ndim - ax - 2) + [0, s[i] - 1]
            y = F.pad(y, flat)
            shp[ax] = shp[ax] * s[i]
            y = y.reshape(shp)[(slice(None),) * ax + (slice(0, (in_sp[i] - 1) * s[i] + 1),)]
    pb = [d[i] * (k[i] - 1) - begin[i] for i in range(nd)]
    pe = [d[i] * (k[i] - 1) - end[i] + op[i] for i in range(nd)]
    y = _pad_explicit(y, pb, pe, 0.0)
    y, one_d = _to2d(y)
    if one_d:
        wt = wt.unsqueeze(3)
    b = ctx.t(xs[2]) if len(xs) > 2 and xs[2] is not None else None
    out = _core.conv2d(y, wt, b, [1, 1], [0, 0], _pair(d, 1), g)
    return out.squeeze(3) if one_d else out


def _pool(ctx: OpContext, node: Any, xs: List[Value], kind: str) -> Any:
    if len(node.outputs) > 1 and node.outputs[1]:
        from .ops_misc import maxpool_with_indices

        return maxpool_with_indices(ctx, node, xs)
    x = ctx.t(xs[0])
    k0 = [int(v) for v in node.attrs["kernel_shape"]]
    d0 = [int(v) for v in node.attrs.get("dilations", [1] * len(k0))]
    p0 = [int(v) for v in node.attrs.get("pads", [0] * (2 * len(k0)))]
    if (
        x.ndim > 4
        or (kind == "avg" and any(v != 1 for v in d0))
        or any(2 * v > kk for v, kk in zip(p0, k0 + k0))
    ):
        from .ops_misc import pool_nd  # what the 2-D kernels do not cover, on the host

        return pool_nd(ctx, node, xs, kind)
    if kind == "max" and x.dtype not in (pf.float16, pf.float32, pf.float64):
        # the kernel pools floats: integers go through float64 (exact up to 2**53)
        return _pool(ctx, node, [x.astype(pf.float64)], kind).astype(x.dtype)
    nd = x.ndim - 2
    k = [int(v) for v in node.attrs["kernel_shape"]]
    s = [int(v) for v in node.attrs.get("strides", [1] * nd)]
    d = [int(v) for v in node.attrs.get("dilations", [1] * nd)]
    ceil = bool(int(node.attrs.get("ceil_mode", 0)))
    begin, end = _spatial_pads(node, list(x.shape[2:]), k, s, d)
    x, one_d = _to2d(x)
    k2, s2, d2 = _pair(k, 1), _pair(s, 1), _pair(d, 1)
    if kind == "max":
        if begin != end:
            x = _pad_explicit(x, _pair(begin, 0), _pair(end, 0), -math.inf)
            begin = [0] * nd
        y = _core.max_pool2d(x, k2, s2, _pair(begin, 0), d2, ceil)
    else:
        if d2 != [1, 1]:
            raise BackendError("AveragePool with dilations is not supported")
        include = bool(int(node.attrs.get("count_include_pad", 0)))
        if begin == end and all(2 * b <= kk for b, kk in zip(begin, k)):
            y = _core.avg_pool2d(x, k2, s2, _pair(begin, 0), ceil, include)
        elif ceil:
            raise BackendError("AveragePool with asymmetric pads and ceil_mode is not supported")
        else:
            xp = _pad_explicit(x, _pair(begin, 0), _pair(end, 0), 0.0)
            summed = _core.avg_pool2d(xp, k2, s2, [0, 0], False, True)
            if include:
                y = summed
            else:
                ones = pf.ones([1, 1] + list(x.shape[2:]), dtype=x.dtype)
                cnt = _core.avg_pool2d(
                    _pad_explicit(ones, _pair(begin, 0), _pair(end, 0), 0.0),
                    k2,
                    s2,
                    [0, 0],
                    False,
                    True,
                )
                y = summed / cnt
    return y.squeeze(3) if one_d else y


@register("LpPool")
def _lp_pool(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """(sum over each window of |x|^p)^(1/p): a depthwise convolution with a ones kernel
    (which also gives dilations and explicit/auto pads, padded values contributing 0)."""
    x = ctx.t(xs[0])
    nd = x.ndim - 2
    if nd > 2:
        from .ops_misc import pool_nd

        return pool_nd(ctx, node, xs, "lp")
    if int(node.attrs.get("ceil_mode", 0)):
        raise BackendError("LpPool with ceil_mode is not supported")
    p = float(node.attrs.get("p", 2))
    k = [int(v) for v in node.attrs["kernel_shape"]]
    s = [int(v) for v in node.attrs.get("strides", [1] * nd)]
    d = [int(v) for v in node.attrs.get("dilations", [1] * nd)]
    begin, end = _spatial_pads(node, list(x.shape[2:]), k, s, d)
    c = x.shape[1]
    ax = pf.abs(x)
    powed = ax * ax if p == 2 else pf.pow(ax, p)
    xp, one_d = _to2d(powed)
    if begin != end:
        xp = _pad_explicit(xp, _pair(begin, 0), _pair(end, 0), 0.0)
        begin = [0] * nd
    ones = pf.ones([c, 1] + _pair(k, 1), dtype=x.dtype)
    summed = _core.conv2d(xp, ones, None, _pair(s, 1), _pair(begin, 0), _pair(d, 1), c)
    y = pf.sqrt(summed) if p == 2 else pf.pow(summed, 1.0 / p)
    return y.squeeze(3) if one_d else y


register("MaxPool")(lambda ctx, node, xs: _pool(ctx, node, xs, "max"))
register("AveragePool")(lambda ctx, node, xs: _pool(ctx, node, xs, "avg"))


@register("GlobalAveragePool")
def _gap(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return pf.mean(x, tuple(range(2, x.ndim)), True)


@register("GlobalMaxPool")
def _gmp(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return pf.amax(x, tuple(range(2, x.ndim)), True)


def _chan(v: pf.Tensor, rank: int) -> pf.Tensor:
    return v.reshape([1, -1] + [1] * (rank - 2)) if rank > 1 else v


@register("BatchNormalization")
def _batchnorm(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    if int(node.attrs.get("training_mode", 0)) and ctx.opset >= 14:
        return _batchnorm_training(ctx, node, xs)
    if int(node.attrs.get("training_mode", 0)) or (ctx.opset < 7 and len(node.outputs) > 1):
        raise BackendError("BatchNormalization in training mode is not supported")
    if len([o for o in node.outputs if o]) > 1:
        raise BackendError("BatchNormalization training outputs are not supported")
    x = ctx.t(xs[0])
    eps = float(node.attrs.get("epsilon", 1e-5))
    scale, bias, mean, var = xs[1:5]
    if all(isinstance(v, np.ndarray) for v in (scale, bias, mean, var)):
        a = scale / np.sqrt(var.astype(np.float64) + eps)  # type: ignore[union-attr]
        b = bias - mean * a  # type: ignore[operator]
        dt = np_dtype_of(xs[0])
        at, bt = ctx.t(a.astype(dt)), ctx.t(np.asarray(b).astype(dt))
    else:
        at = ctx.t(scale) / pf.sqrt(ctx.t(var) + eps)
        bt = ctx.t(bias) - ctx.t(mean) * at
    return x * _chan(at, x.ndim) + _chan(bt, x.ndim)


def _batchnorm_training(ctx: OpContext, node: Any, xs: List[Value]) -> List[pf.Tensor]:
    """Training mode (opset 14+): batch statistics normalize; outputs (Y, running_mean,
    running_var) with running = input * momentum + batch * (1 - momentum)."""
    x = ctx.t(xs[0])
    eps = float(node.attrs.get("epsilon", 1e-5))
    momentum = float(node.attrs.get("momentum", 0.9))
    dims = tuple(d for d in range(x.ndim) if d != 1)
    mean = pf.mean(x, dims, False)
    c = x - _chan(mean, x.ndim)
    var = pf.mean(c * c, dims, False)
    y = c / _chan(pf.sqrt(var + eps), x.ndim)
    y = y * _chan(ctx.t(xs[1]), x.ndim) + _chan(ctx.t(xs[2]), x.ndim)
    run_mean = ctx.t(xs[3]) * momentum + mean * (1 - momentum)
    run_var = ctx.t(xs[4]) * momentum + var * (1 - momentum)
    return [t.astype(x.dtype) for t in (y, run_mean, run_var)][: max(1, len(node.outputs))]


def _normalize(x: pf.Tensor, dims: Tuple[int, ...], eps: float) -> Tuple[pf.Tensor, Any, Any]:
    mean = pf.mean(x, dims, True)
    c = x - mean
    inv = pf.reciprocal(pf.sqrt(pf.mean(c * c, dims, True) + eps))
    return c * inv, mean, inv


@register("InstanceNormalization")
def _instnorm(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    y, _, _ = _normalize(x, tuple(range(2, x.ndim)), float(node.attrs.get("epsilon", 1e-5)))
    return y * _chan(ctx.t(xs[1]), x.ndim) + _chan(ctx.t(xs[2]), x.ndim)


@register("LayerNormalization")
def _layernorm(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    axis = int(node.attrs.get("axis", -1))
    axis = axis + x.ndim if axis < 0 else axis
    eps = float(node.attrs.get("epsilon", 1e-5))
    dims = tuple(range(axis, x.ndim))
    scale = ctx.t(xs[1])
    bias = ctx.t(xs[2]) if len(xs) > 2 and xs[2] is not None else None
    norm_shape = list(x.shape[axis:])
    want_stats = len(node.outputs) > 1 and any(node.outputs[1:])
    stash = int(node.attrs.get("stash_type", 1))
    if (
        not want_stats
        and list(scale.shape) == norm_shape
        and x.dtype == pf.float32
        and (bias is None or list(bias.shape) == norm_shape)
    ):
        return F.layer_norm(x, norm_shape, scale, bias, eps)
    xc = x.astype(pf.float32) if stash == 1 and x.dtype != pf.float64 else x
    y, mean, inv = _normalize(xc, dims, eps)
    y = y.astype(x.dtype) * scale
    if bias is not None:
        y = y + bias
    return [y, mean, inv][: len(node.outputs)]


@register("GroupNormalization")
def _groupnorm(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    g = int(node.attrs["num_groups"])
    eps = float(node.attrs.get("epsilon", 1e-5))
    n, c = x.shape[0], x.shape[1]
    rest = list(x.shape[2:])
    xg = x.reshape([n, g, -1])
    y, _, _ = _normalize(xg, (2,), eps)
    y = y.reshape([n, c] + rest)
    scale, bias = ctx.t(xs[1]), ctx.t(xs[2])
    if scale.shape[0] != c:  # opset 18: per-group scale and bias
        rep = c // g
        scale = scale.reshape([g, 1]).expand(g, rep).reshape([c])
        bias = bias.reshape([g, 1]).expand(g, rep).reshape([c])
    return y * _chan(scale, x.ndim) + _chan(bias, x.ndim)


@register("LRN")
def _lrn(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    size = int(node.attrs["size"])
    alpha, beta = float(node.attrs.get("alpha", 1e-4)), float(node.attrs.get("beta", 0.75))
    bias = float(node.attrs.get("bias", 1.0))
    c = x.shape[1]
    sq = x * x
    lo, hi = (size - 1) // 2, size - 1 - (size - 1) // 2
    padded = _pad_explicit(sq, [lo] + [0] * (x.ndim - 2), [hi] + [0] * (x.ndim - 2), 0.0)
    acc = None
    for i in range(size):
        part = padded[:, i : i + c]
        acc = part if acc is None else acc + part
    return x / pf.pow(acc * (alpha / size) + bias, beta)


@register("MeanVarianceNormalization")
def _mvn(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    axes = tuple(int(a) for a in node.attrs.get("axes", [0, 2, 3]))
    return _normalize(x, axes, 1e-9)[0]


@register("LpNormalization")
def _lpnorm(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    axis = int(node.attrs.get("axis", -1))
    p = int(node.attrs.get("p", 2))
    norm = pf.sum(pf.abs(x), axis, True) if p == 1 else pf.sqrt(pf.sum(x * x, axis, True))
    # an all-zero slice gives zeros, as in the reference (not 0 / 0)
    return x / pf.where(pf.eq(norm, 0.0), pf.full([], 1.0, dtype=norm.dtype), norm)


@register("MatMul")
def _matmul(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    return _mm(ctx.t(xs[0]), ctx.t(xs[1]))


def _mm(a: pf.Tensor, b: pf.Tensor) -> pf.Tensor:
    """``a @ b``; a batched ``a`` times a 2-D ``b`` (a weight) is one [rows, k] x [k, n]
    GEMM over all batch rows instead of one GEMM per batch entry (which repacks ``b`` for
    every entry and splits worse over the threads: about 2x slower for BERT's layers)."""
    if b.ndim == 2 and a.ndim > 2 and a.shape[-1] == b.shape[0]:
        lead = list(a.shape[:-1])
        return pf.matmul(a.reshape([-1, a.shape[-1]]), b).reshape(lead + [b.shape[1]])
    return pf.matmul(a, b)


@register("FusedMatMulBias")
def _matmul_bias(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    return _activation(node, _mm(ctx.t(xs[0]), ctx.t(xs[1])) + ctx.t(xs[2]))


@register("FusedAddRelu")
def _add_relu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    return pf.relu(ctx.t(xs[0]) + ctx.t(xs[1]))


def _gemm(ctx: OpContext, node: Any, xs: List[Value]) -> pf.Tensor:
    if isinstance(xs[1], np.ndarray) and xs[1].ndim == 2 and int(node.attrs.get("transB", 0)):
        b = ctx.t_transposed(xs[1])
    else:
        b = ctx.t(xs[1])
        if int(node.attrs.get("transB", 0)):
            b = b.transpose(0, 1)
    a = ctx.t(xs[0])
    if int(node.attrs.get("transA", 0)):
        a = a.transpose(0, 1)
    y = pf.matmul(a, b)
    alpha = float(node.attrs.get("alpha", 1.0))
    if alpha != 1.0:
        y = y * alpha
    if len(xs) > 2 and xs[2] is not None:
        beta = float(node.attrs.get("beta", 1.0))
        c = ctx.t(xs[2])
        y = y + (c * beta if beta != 1.0 else c)
    return y


register("Gemm")(_gemm)
register("FusedGemm")(lambda ctx, node, xs: _activation(node, _gemm(ctx, node, xs)))


not_supported("3-D convolution/pooling has no executor kernel", "Conv3D")
not_supported(
    "not expressible with the tensor API",
    "MaxRoiPool",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
    "ImageDecoder",
    "SkipLayerNormalization",
)


@register("Swish")
def _swish(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    return x * pf.sigmoid(x * float(node.attrs.get("alpha", 1.0)))


@register("RMSNormalization")
def _rmsnorm(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    axis = int(node.attrs.get("axis", -1))
    axis = axis + x.ndim if axis < 0 else axis
    eps = float(node.attrs.get("epsilon", 1e-5))
    xc = (
        x.astype(pf.float32)
        if int(node.attrs.get("stash_type", 1)) == 1 and x.dtype != pf.float64
        else x
    )
    ms = pf.mean(xc * xc, tuple(range(axis, x.ndim)), True)
    y = (xc * pf.reciprocal(pf.sqrt(ms + eps))).astype(x.dtype)
    return y * ctx.t(xs[1])


def _nll(
    ctx: OpContext, node: Any, logp: pf.Tensor, target: Value, weight: Optional[Value]
) -> pf.Tensor:
    c = logp.shape[1]
    t = ctx.t(target).astype(pf.int64)
    ignore = node.attrs.get("ignore_index")
    valid = pf.ne(t, int(ignore)) if ignore is not None else None
    t_safe = pf.where(valid, t, t * 0) if valid is not None else t
    shape = [1, c] + [1] * (logp.ndim - 2)
    onehot = pf.eq(t_safe.unsqueeze(1), pf.from_numpy(np.arange(c, dtype=np.int64).reshape(shape)))
    picked = pf.sum(pf.where(onehot, logp, logp * 0), 1)
    w = pf.ones(list(t.shape), dtype=logp.dtype)
    if weight is not None:
        w = ctx.t(weight)[t_safe]
    if valid is not None:
        w = pf.where(valid, w, w * 0)
    loss = -picked * w
    red = node.attrs.get("reduction", "mean")
    if red == "none":
        return loss
    if red == "sum":
        return pf.sum(loss, None)
    return pf.sum(loss, None) / pf.sum(w, None)


@register("NegativeLogLikelihoodLoss")
def _nll_loss(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    w = xs[2] if len(xs) > 2 else None
    return _nll(ctx, node, ctx.t(xs[0]), xs[1], w)


@register("SoftmaxCrossEntropyLoss")
def _sce_loss(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x = ctx.t(xs[0])
    logp = pf.log_softmax(x, 1)
    w = xs[2] if len(xs) > 2 else None
    loss = _nll(ctx, node, logp, xs[1], w)
    return [loss, logp] if len(node.outputs) > 1 and node.outputs[1] else [loss]
