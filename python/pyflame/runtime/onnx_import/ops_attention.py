"""ONNX ``Attention`` (opsets 23-25): scaled dot-product attention with 3-D or 4-D inputs,
grouped-query heads, boolean or additive masks (padded to the key length), causal and
sliding-window masking aligned to a past cache or to ``nonpad_kv_seqlen``, softcap, the
``past_key``/``past_value`` cache (``present_*`` outputs) and the four
``qk_matmul_output_mode`` values. Fully masked query rows give zeros, as in the reference.
Also ``RotaryEmbedding``, ``SwiGLU``, ``AffineGrid``, the preview ``FlexAttention`` and the
``pyflame.rt`` ``FusedAttention`` made by ``AttentionFusionPass``.

The structural masks (causal, window, padding) depend only on shapes and on
``nonpad_kv_seqlen``, so they are built in NumPy; everything that depends on Q/K/V or on a
mask fed at run time is built from pyflame tensor ops and stays lazy.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("Attention", "RotaryEmbedding", "AffineGrid"))
    True
"""

from __future__ import annotations

import math
from typing import Any, List, Optional

import numpy as np

import pyflame as pf

from ..errors import BackendError
from ..graph import Graph, Node
from .ops_elementwise import onnx_elem_to_np
from .registry import OpContext, Value, get_converter, np_dtype_to_pf, register

_NEG_INF = float("-inf")


def _heads_first(x: pf.Tensor, heads: int) -> pf.Tensor:
    """[batch, seq, heads * d] -> [batch, heads, seq, d]."""
    b, s, hid = x.shape
    if hid % heads:
        raise BackendError(f"Attention: hidden size {hid} is not divisible by {heads} heads")
    return x.reshape([b, s, heads, hid // heads]).permute([0, 2, 1, 3])


def _repeat_heads(x: pf.Tensor, reps: int) -> pf.Tensor:
    """Interleaved repeat of the head axis: [h0, h0, h1, h1, ...]."""
    if reps == 1:
        return x
    b, h, s, d = x.shape
    return x.unsqueeze(2).expand([b, h, reps, s, d]).reshape([b, h * reps, s, d])


def _structural_bias(
    q_len: int,
    kv_len: int,
    causal: bool,
    left: int,
    right: int,
    offset: Any,
) -> Optional[np.ndarray]:
    """Additive 0/-inf bias of the causal and sliding-window constraints, shape (q, kv) for
    a scalar offset or (batch, 1, q, kv) for per-batch offsets; None when unconstrained."""
    if not causal and left < 0 and right < 0:
        return None
    i = np.arange(q_len).reshape(q_len, 1)
    j = np.arange(kv_len).reshape(1, kv_len)
    per_batch = np.ndim(offset) > 0
    pos = i + (np.reshape(offset, (-1, 1, 1)) if per_batch else int(offset))
    allowed = np.ones(np.broadcast(pos, j).shape, dtype=bool)
    if causal:
        allowed &= j <= pos
    if left >= 0:
        allowed &= pos - j <= left
    if right >= 0:
        allowed &= j - pos <= right
    bias = np.where(allowed, np.float32(0), np.float32(_NEG_INF))
    if per_batch:
        bias = bias.reshape(bias.shape[0], 1, q_len, kv_len)
    return bias


@register("Attention")
def _attention(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    xs = list(xs) + [None] * (7 - len(xs))
    q, k, v = ctx.t(xs[0]), ctx.t(xs[1]), ctx.t(xs[2])
    mask_in, past_k, past_v, nonpad = xs[3], xs[4], xs[5], xs[6]
    a = node.attrs
    if q.ndim not in (3, 4) or not (q.ndim == k.ndim == v.ndim):
        raise BackendError("Attention: Q, K and V must all be 3-D or all be 4-D")
    if (past_k is None) != (past_v is None):
        raise BackendError("Attention: past_key and past_value must be given together")
    if nonpad is not None and past_k is not None:
        raise BackendError("Attention: nonpad_kv_seqlen cannot be combined with a past cache")
    out_dtype = q.dtype
    f32 = pf.float32
    three_d = q.ndim == 3
    if three_d:
        if "q_num_heads" not in a or "kv_num_heads" not in a:
            raise BackendError("Attention: 3-D inputs need q_num_heads and kv_num_heads")
        q = _heads_first(q, int(a["q_num_heads"]))
        k = _heads_first(k, int(a["kv_num_heads"]))
        v = _heads_first(v, int(a["kv_num_heads"]))
    if past_k is not None:
        k = pf.cat([ctx.t(past_k), k], 2)
        v = pf.cat([ctx.t(past_v), v], 2)
    present_k, present_v = k, v
    batch, q_heads, q_len, head = q.shape
    kv_heads, kv_len = k.shape[1], k.shape[2]
    scale = float(a["scale"]) if "scale" in a else 1.0 / math.sqrt(head)
    s = float(np.asarray(math.sqrt(scale), dtype=ctx_np_dtype(out_dtype)))
    if q_heads != kv_heads:
        if q_heads % kv_heads or v.shape[1] != kv_heads:
            raise BackendError(
                f"Attention: {q_heads} query heads cannot share {kv_heads} key/value heads"
            )
        k = _repeat_heads(k, q_heads // kv_heads)
        v = _repeat_heads(v, q_heads // kv_heads)
    qk = pf.matmul(q.astype(f32) * s, (k.astype(f32) * s).transpose(2, 3))
    softcap = float(a.get("softcap", 0.0))
    if softcap > 0:
        qk = pf.tanh(qk / softcap) * softcap
    # ---- additive bias: attn_mask (padded to kv_len), causal/window, key padding
    bias: Any = None
    if mask_in is not None:
        m = ctx.t(mask_in)
        if m.dtype == pf.bool_:
            m = pf.where(m, pf.full([], 0.0, dtype=f32), pf.full([], _NEG_INF, dtype=f32))
        else:
            m = m.astype(f32)
        pad = kv_len - m.shape[-1]
        if pad > 0:
            fill = pf.full(list(m.shape[:-1]) + [pad], _NEG_INF, dtype=f32)
            m = pf.cat([m, fill], m.ndim - 1)
        bias = m
    left, right = int(a.get("left_window_size", -1)), int(a.get("right_window_size", -1))
    if nonpad is not None:
        lens = np.asarray(ctx.a(nonpad)).reshape(-1).astype(np.int64)
        offset: Any = lens - q_len
    else:
        offset = ctx.t(past_k).shape[2] if past_k is not None else 0
    struct = _structural_bias(q_len, kv_len, bool(int(a.get("is_causal", 0))), left, right, offset)
    if nonpad is not None:
        keep = np.arange(kv_len)[None, :] < lens[:, None]
        pad_bias = np.where(keep, np.float32(0), np.float32(_NEG_INF))
        pad_bias = pad_bias.reshape(batch, 1, 1, kv_len)
        struct = pad_bias if struct is None else struct + pad_bias
    if struct is not None:
        sb = pf.from_numpy(np.ascontiguousarray(struct))
        bias = sb if bias is None else bias + sb
    scores = qk if bias is None else qk + bias
    mode = int(a.get("qk_matmul_output_mode", 0))
    qk_out = scores if mode == 2 else qk
    prec = a.get("softmax_precision")
    if prec is not None and onnx_elem_to_np(int(prec)) == np.float64:
        probs = pf.softmax(scores.astype(pf.float64), -1).astype(f32)
    else:
        probs = pf.softmax(scores, -1)
    if bias is not None:
        # a query row whose bias is -inf everywhere attends nothing: its weights are 0
        full_bias = bias + pf.full([q_len, kv_len], 0.0, dtype=f32)
        dead = pf.eq(pf.amax(full_bias, -1, True), _NEG_INF)
        probs = pf.where(dead, pf.full([], 0.0, dtype=f32), probs)
    if mode == 3:
        qk_out = probs
    y = pf.matmul(probs, v.astype(f32))
    if three_d:
        y = y.permute([0, 2, 1, 3]).reshape([batch, q_len, -1])
    outs = [y, present_k, present_v, qk_out]
    return [t.astype(out_dtype) for t in outs[: max(1, len(node.outputs))]]


def ctx_np_dtype(dtype: Any) -> np.dtype:
    """NumPy dtype of a pyflame float dtype (float16/32/64)."""
    for np_dt in (np.float16, np.float32, np.float64):
        if np_dtype_to_pf(np_dt) == dtype:
            return np.dtype(np_dt)
    return np.dtype(np.float32)


@register("RotaryEmbedding")
def _rotary_embedding(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """Rotary position embedding of a [batch, heads, seq, head] or [batch, seq, hidden]
    input with cos/sin caches ([seq, d/2], or [max_pos, d/2] indexed by position_ids)."""
    x = ctx.t(xs[0])
    cos, sin = ctx.t(xs[1]), ctx.t(xs[2])
    pos = xs[3] if len(xs) > 3 else None
    a = node.attrs
    shape = list(x.shape)
    if x.ndim == 4:
        x = x.permute([0, 2, 1, 3])
    elif x.ndim == 3:
        heads = int(a.get("num_heads", 0))
        if heads <= 0 or shape[2] % heads:
            raise BackendError("RotaryEmbedding: 3-D input needs num_heads dividing hidden")
        x = x.reshape([shape[0], shape[1], heads, shape[2] // heads])
    else:
        raise BackendError("RotaryEmbedding: the input must be 3-D or 4-D")
    head = x.shape[3]
    rot = int(a.get("rotary_embedding_dim", 0)) or head
    half = rot // 2
    if pos is not None:
        p = ctx.t(pos).astype(pf.int64)
        cos = cos[p.reshape([-1])].reshape(list(p.shape) + [cos.shape[-1]])
        sin = sin[p.reshape([-1])].reshape(list(p.shape) + [sin.shape[-1]])
    if cos.shape[-1] != half or sin.shape[-1] != half:
        raise BackendError("RotaryEmbedding: cache width must be rotary_embedding_dim / 2")
    cos, sin = cos.unsqueeze(cos.ndim - 1), sin.unsqueeze(sin.ndim - 1)
    x_rot, x_keep = x[:, :, :, :rot], x[:, :, :, rot:]
    interleaved = int(a.get("interleaved", 0))
    if interleaved:
        x1, x2 = x_rot[:, :, :, 0::2], x_rot[:, :, :, 1::2]
    else:
        x1, x2 = x_rot[:, :, :, :half], x_rot[:, :, :, half:]
    real = cos * x1 - sin * x2
    imag = sin * x1 + cos * x2
    if interleaved:
        rotated = pf.stack([real, imag], 4).reshape(list(x_rot.shape))
    else:
        rotated = pf.cat([real, imag], 3)
    out = pf.cat([rotated, x_keep], 3) if rot < head else rotated
    if len(shape) == 3:
        return out.reshape(shape).astype(x.dtype)
    return out.permute([0, 2, 1, 3]).astype(x.dtype)


@register("SwiGLU")
def _swiglu(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """``a * sigmoid(alpha * a) * b`` (inputs of identical shape and dtype)."""
    a, b = ctx.t(xs[0]), ctx.t(xs[1])
    if list(a.shape) != list(b.shape) or a.dtype != b.dtype:
        raise BackendError("SwiGLU needs inputs of identical shape and dtype")
    alpha = float(node.attrs.get("alpha", 1.0))
    return (a * pf.sigmoid(a * alpha) * b).astype(a.dtype)


@register("AffineGrid")
def _affine_grid(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """Sampling grid of affine transforms ``theta`` (N, 2, 3) or (N, 3, 4) for an output of
    ``size`` (N, C, H, W) or (N, C, D, H, W); coordinates normalized to [-1, 1]."""
    theta = ctx.t(xs[0])
    size = [int(v) for v in np.asarray(ctx.a(xs[1])).reshape(-1)]
    spatial = size[2:]
    nd = len(spatial)
    if nd not in (2, 3) or list(theta.shape[1:]) != [nd, nd + 1]:
        raise BackendError("AffineGrid: theta must be (N, 2, 3) or (N, 3, 4) matching size")
    align = bool(int(node.attrs.get("align_corners", 0)))
    axes = []
    for d in spatial:
        if align:
            axes.append(np.linspace(-1.0, 1.0, d) if d > 1 else np.zeros(1))
        else:
            axes.append((2.0 * np.arange(d) + 1) / d - 1)
    mesh = np.meshgrid(*axes, indexing="ij")  # per spatial axis, outer axis first
    # homogeneous coordinates ordered (x, y[, z], 1): the last spatial axis first
    base = np.stack([m.reshape(-1) for m in mesh[::-1]] + [np.ones(mesh[0].size)], 0)
    b = pf.from_numpy(base.astype(np.float32))  # (nd + 1, points)
    grid = pf.matmul(theta.astype(pf.float32), b)  # (N, nd, points)
    out = grid.permute([0, 2, 1]).reshape([theta.shape[0]] + spatial + [nd])
    return out.astype(theta.dtype)


@register("FlexAttention")
def _flex_attention(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """``ai.onnx.preview`` FlexAttention: softmax(score_mod(Q K^T * scale)) -> prob_mod -> @ V,
    with the optional score/prob modifiers as subgraphs (one input, one output)."""
    from .ops_control import run_subgraph

    n_decl = int(node.attrs.get("_num_declared_inputs", len(xs)))
    outer = dict(zip(node.inputs[n_decl:], xs[n_decl:]))
    q, k, v = ctx.t(xs[0]), ctx.t(xs[1]), ctx.t(xs[2])
    if q.ndim != 4 or k.ndim != 4 or v.ndim != 4:
        raise BackendError("FlexAttention needs rank-4 Q, K and V")
    hq, hkv = q.shape[1], k.shape[1]
    if v.shape[1] != hkv or v.shape[2] != k.shape[2] or k.shape[3] != q.shape[3]:
        raise BackendError("FlexAttention: Q/K/V shapes are inconsistent")
    if hq != hkv:
        if hq % hkv:
            raise BackendError("FlexAttention: q heads must be a multiple of kv heads")
        k, v = _repeat_heads(k, hq // hkv), _repeat_heads(v, hq // hkv)
    a = node.attrs
    scale = float(a["scale"]) if "scale" in a else 1.0 / math.sqrt(q.shape[3])
    s = float(np.asarray(math.sqrt(np.float32(scale)), dtype=ctx_np_dtype(q.dtype)))
    scores = pf.matmul(q * s, (k * s).transpose(2, 3))
    prec = a.get("softmax_precision")
    if prec is not None:
        compute = np_dtype_to_pf(onnx_elem_to_np(int(prec)))
    elif q.dtype == pf.float64:
        compute = pf.float64
    else:
        compute = pf.float32
    scores = scores.astype(compute)
    if isinstance(a.get("score_mod"), Graph):
        scores = ctx.t(run_subgraph(ctx, a["score_mod"], [scores], outer)[0]).astype(compute)
    probs = pf.softmax(scores, -1)
    if isinstance(a.get("prob_mod"), Graph):
        probs = ctx.t(run_subgraph(ctx, a["prob_mod"], [probs], outer)[0]).astype(compute)
    return pf.matmul(probs, v.astype(compute)).astype(v.dtype)


def _first(res: Any) -> Any:
    return res[0] if isinstance(res, (list, tuple)) else res


def _composed_attention(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """The original chain of a ``FusedAttention`` node, operator by operator."""

    def run(op: str, ins: List[Value], attrs: Optional[dict] = None) -> Any:
        fn = get_converter(op)
        if fn is None:  # pragma: no cover - the standard operators are always registered
            raise BackendError(f"FusedAttention: no converter for {op}")
        return _first(fn(ctx, Node(f"{node.name}/{op}", op, [], [], dict(attrs or {})), ins))

    q, kt, v, mask, const = (list(xs) + [None] * 5)[:5]
    s = run("MatMul", [q, kt])
    scale_op = str(node.attrs.get("scale_op", ""))
    if scale_op:
        s = run(scale_op, [s, const])
    if mask is not None:
        s = run("Add", [s, mask])
    sm_attrs = {"axis": node.attrs["softmax_axis"]} if "softmax_axis" in node.attrs else {}
    return run("MatMul", [run("Softmax", [s], sm_attrs), v])


def _fused_scale(node: Any, const: Value) -> Optional[float]:
    """The factor applied to ``q @ kt`` (None when it is not a finite scalar)."""
    scale_op = str(node.attrs.get("scale_op", ""))
    if not scale_op:
        return 1.0
    if not isinstance(const, np.ndarray) or const.size != 1 or const.dtype.kind != "f":
        return None
    c = float(const.reshape(-1)[0])
    scale = 1.0 / c if scale_op == "Div" and c != 0.0 else c
    if scale_op not in ("Div", "Mul") or c == 0.0 or not math.isfinite(scale):
        return None
    return scale


@register("FusedAttention")
def _fused_attention(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    """``softmax(q @ kt * scale + mask) @ v`` (the node made by ``AttentionFusionPass``; inputs
    q, kt, v, mask or None, scale constant or None) on the attention kernel when the shapes
    and dtypes allow it, otherwise as the original chain of operators."""
    q, kt, v, mask, const = (list(xs) + [None] * 5)[:5]
    scale = _fused_scale(node, const)
    if scale is None or any(t is None for t in (q, kt, v)):
        return _composed_attention(ctx, node, xs)
    tq, tk, tv = ctx.t(q), ctx.t(kt), ctx.t(v)
    nd = tq.ndim
    dtype = tq.dtype
    ok = (
        nd >= 2
        and tk.ndim == nd
        and tv.ndim == nd
        and dtype in (pf.float32, pf.float64)
        and tk.dtype == dtype
        and tv.dtype == dtype
        and list(tq.shape[:-2]) == list(tk.shape[:-2]) == list(tv.shape[:-2])
        and tk.shape[-2] == tq.shape[-1]
        and tv.shape[-2] == tk.shape[-1]
    )
    axis = int(node.attrs.get("softmax_axis", -1 if ctx.opset >= 13 else 1))
    ok = ok and (axis + nd if axis < 0 else axis) == nd - 1
    tm = None
    if ok and mask is not None:
        tm = ctx.t(mask)
        scores = list(tq.shape[:-1]) + [tk.shape[-1]]
        try:
            grown = list(np.broadcast_shapes(tuple(tm.shape), tuple(scores))) != scores
        except ValueError:
            grown = True
        ok = tm.dtype == dtype and tm.ndim <= nd and not grown
    if not ok:
        return _composed_attention(ctx, node, xs)
    k = tk.transpose(nd - 2, nd - 1)
    return pf._core.scaled_dot_product_attention(tq, k, tv, tm, False, scale, True)
