"""State-space style operators of opset 27: LinearAttention (linear, gated, delta and
gated-delta update rules, grouped heads, past state) and CausalConvWithState (depthwise
causal 1-D convolution carrying its last ``k - 1`` inputs as state), built from tensor ops.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("LinearAttention", "CausalConvWithState"))
    True
"""

from __future__ import annotations

import math
from typing import Any, List

import pyflame as pf

from ..errors import BackendError
from .registry import OpContext, Value, register

_core = pf._core


def _heads(x: pf.Tensor, heads: int, what: str) -> pf.Tensor:
    """(B, T, H*D) -> (B, H, T, D) in float32."""
    if x.ndim != 3 or x.shape[2] % heads:
        raise BackendError(f"LinearAttention: {what} must be (B, T, H*D) with H = {heads}")
    b, t, hd = x.shape
    return x.reshape([b, t, heads, hd // heads]).permute([0, 2, 1, 3]).astype(pf.float32)


@register("LinearAttention")
def _linear_attention(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    xs = list(xs) + [None] * (6 - len(xs))
    a = node.attrs
    rule = a.get("update_rule", "gated_delta")
    rule = rule.decode() if isinstance(rule, bytes) else rule
    if rule not in ("linear", "gated", "delta", "gated_delta"):
        raise BackendError(f"LinearAttention: unknown update_rule {rule!r}")
    if "q_num_heads" not in a or "kv_num_heads" not in a:
        raise BackendError("LinearAttention needs q_num_heads and kv_num_heads")
    hq, hkv = int(a["q_num_heads"]), int(a["kv_num_heads"])
    if hq <= 0 or hkv <= 0 or hq % hkv:
        raise BackendError("LinearAttention: q_num_heads must be a multiple of kv_num_heads")
    gating, delta = rule in ("gated", "gated_delta"), rule in ("delta", "gated_delta")
    past, decay, beta = xs[3], xs[4], xs[5]
    if gating != (decay is not None) or delta != (beta is not None):
        raise BackendError(f"LinearAttention: update_rule {rule!r} and decay/beta disagree")
    query = ctx.t(xs[0])
    out_dtype = query.dtype
    q = _heads(query, hq, "query")
    k = _heads(ctx.t(xs[1]), hkv, "key")
    v = _heads(ctx.t(xs[2]), hkv, "value")
    b, _, t, dk = q.shape
    dv = v.shape[3]
    group = hq // hkv
    g4 = None
    if decay is not None:
        d = ctx.t(decay)
        if d.ndim != 3 or d.shape[2] not in (hkv, hkv * dk):
            raise BackendError("LinearAttention: decay must be (B, T, H) or (B, T, H*d_k)")
        d = d.reshape([b, t, hkv, d.shape[2] // hkv]).permute([0, 2, 1, 3])
        g4 = pf.exp(d.astype(pf.float32))  # (B, H, T, 1 or d_k)
    b4 = None
    if beta is not None:
        be = ctx.t(beta)
        if be.ndim != 3 or be.shape[2] not in (hkv, 1):
            raise BackendError("LinearAttention: beta must be (B, T, H) or (B, T, 1)")
        b4 = be.reshape([b, t, be.shape[2], 1]).permute([0, 2, 1, 3]).astype(pf.float32)
    if past is not None:
        state = ctx.t(past)
        if list(state.shape) != [b, hkv, dk, dv]:
            raise BackendError(f"LinearAttention: past_state must be {[b, hkv, dk, dv]}")
        state_dtype = state.dtype
        state = state.astype(pf.float32)
    else:
        state_dtype = out_dtype
        state = pf.zeros([b, hkv, dk, dv], dtype=pf.float32)
    scale = float(a.get("scale", 0.0)) or 1.0 / math.sqrt(dk)
    outs = []
    for i in range(t):
        k_t = k[:, :, i : i + 1, :]  # (B, H, 1, d_k)
        v_t = v[:, :, i : i + 1, :]  # (B, H, 1, d_v)
        if g4 is not None:
            state = state * g4[:, :, i, :].unsqueeze(3)  # per key row
        if b4 is not None:
            v_t = b4[:, :, i : i + 1, :] * (v_t - pf.matmul(k_t, state))
        state = state + pf.matmul(k_t.transpose(2, 3), v_t)
        read = state
        if group > 1:
            read = state.unsqueeze(2).expand([b, hkv, group, dk, dv]).reshape([b, hq, dk, dv])
        outs.append(pf.matmul(q[:, :, i : i + 1, :], read) * scale)  # (B, Hq, 1, d_v)
    y = pf.cat(outs, 2).permute([0, 2, 1, 3]).reshape([b, t, hq * dv])
    return [y.astype(out_dtype), state.astype(state_dtype)][: max(1, len(node.outputs))]


@register("CausalConvWithState")
def _causal_conv(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    xs = list(xs) + [None] * (4 - len(xs))
    x, w = ctx.t(xs[0]), ctx.t(xs[1])
    act = node.attrs.get("activation", "none")
    act = act.decode() if isinstance(act, bytes) else act
    if act not in ("none", "silu", "swish"):
        raise BackendError(f"CausalConvWithState: unknown activation {act!r}")
    if x.ndim != 3 or w.ndim != 3:
        raise BackendError("CausalConvWithState: input (B, C, L) and weight (C, 1, k) expected")
    n, c, _ = x.shape
    kk = w.shape[2]
    pad = ctx.t(xs[3]) if xs[3] is not None else pf.zeros([n, c, kk - 1], dtype=x.dtype)
    padded = pf.cat([pad, x], 2) if kk > 1 else x
    bias = ctx.t(xs[2]) if xs[2] is not None else None
    y = _core.conv2d(padded.unsqueeze(3), w.unsqueeze(3), bias, [1, 1], [0, 0], [1, 1], c).squeeze(
        3
    )
    if act != "none":
        yf = y.astype(pf.float32)
        y = (yf * pf.sigmoid(yf)).astype(x.dtype)
    total = padded.shape[2]
    state = padded[:, :, total - (kk - 1) :] if kk > 1 else pf.zeros([n, c, 0], dtype=x.dtype)
    return [y, state][: max(1, len(node.outputs))]
