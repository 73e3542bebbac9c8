"""Attention functions (re-exported by :mod:`pyflame.nn.functional`):
``scaled_dot_product_attention`` and ``multi_head_attention_forward``, with PyTorch semantics.

Example:
    >>> import pyflame as pf
    >>> from pyflame.nn import functional as F
    >>> q = k = v = pf.ones([2, 4, 5, 8])
    >>> F.scaled_dot_product_attention(q, k, v, is_causal=True).shape
    [2, 4, 5, 8]
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import numpy as np

import pyflame as pf
from pyflame import _core

from ._helpers import is_floating

__all__ = ["scaled_dot_product_attention", "multi_head_attention_forward"]

Tensor = pf.Tensor


def _neg_inf(dtype: pf.DType) -> Tensor:
    return pf.full([], float("-inf"), dtype=dtype)


def _causal(lq: int, lk: int) -> Tensor:
    return pf.tensor(np.tril(np.ones((lq, lk), dtype=bool)))


def safe_softmax(scores: Tensor) -> Tensor:
    """Softmax over the last dimension that gives zeros (not NaN) for rows whose scores are
    all ``-inf`` (fully masked), like PyTorch's ``scaled_dot_product_attention``."""
    dead = scores.amax(-1, keepdim=True) == float("-inf")
    zero = pf.zeros([], dtype=scores.dtype)
    attn = pf.softmax(pf.where(dead, zero, scores), -1)
    return pf.where(dead, zero, attn)


def _repeat_heads(x: Tensor, times: int) -> Tensor:
    """``[..., H, S, D]`` -> ``[..., H * times, S, D]`` (each head repeated `times` times)."""
    if times == 1:
        return x
    shape = list(x.shape)
    y = x.unsqueeze(-3).expand(*(shape[:-2] + [times] + shape[-2:]))
    return y.reshape(shape[:-3] + [shape[-3] * times] + shape[-2:])


def _broadcast_batch(query: Tensor, key: Tensor, value: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """Expands the leading (batch) dimensions of q, k and v to their common shape."""
    if query.ndim < 2 or key.ndim < 2 or value.ndim < 2:
        raise ValueError(
            "scaled_dot_product_attention: query, key and value need at least 2 dimensions, "
            f"got {list(query.shape)}, {list(key.shape)} and {list(value.shape)}"
        )
    try:
        batch = list(np.broadcast_shapes(query.shape[:-2], key.shape[:-2], value.shape[:-2]))
    except ValueError:
        raise ValueError(
            "scaled_dot_product_attention: the batch dimensions of query "
            f"{list(query.shape)}, key {list(key.shape)} and value {list(value.shape)} "
            "do not broadcast"
        ) from None

    def expand(t: Tensor) -> Tensor:
        shape = batch + list(t.shape[-2:])
        return t if list(t.shape) == shape else t.expand(*shape)

    return expand(query), expand(key), expand(value)


def scaled_dot_product_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Optional[Tensor] = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
    scale: Optional[float] = None,
    enable_gqa: bool = False,
) -> Tensor:
    """``softmax(q @ k^T * scale + mask) @ v`` over the last two dimensions.

    A boolean `attn_mask` marks the positions that *take part* (True) in attention; a float
    mask is added to the scores. ``is_causal`` applies a lower-triangular mask. Fully masked
    rows give zeros. Dropout (when ``dropout_p > 0``) is always applied, like PyTorch.

    Runs on the fused attention kernel (forward and backward, the probabilities are never
    stored whole). Dropout, and a float mask that requires gradients, take the composed
    path (``softmax`` and two matmuls), which supports them.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> q, k, v = pf.ones([1, 3, 4]), pf.ones([1, 5, 4]), pf.ones([1, 5, 2])
        >>> out = F.scaled_dot_product_attention(q, k, v)
        >>> out.shape
        [1, 3, 2]
    """
    if is_causal and attn_mask is not None:
        raise ValueError(
            "scaled_dot_product_attention: pass either attn_mask or is_causal, not both"
        )
    if not 0.0 <= dropout_p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {dropout_p}")
    if scale is None:
        scale = 1.0 / math.sqrt(max(query.shape[-1], 1)) if query.ndim else 1.0
    if enable_gqa and query.ndim >= 3 and key.shape[-3] != query.shape[-3]:
        if query.shape[-3] % key.shape[-3] != 0:
            raise ValueError(
                "enable_gqa: the number of query heads must be a multiple of the key/value heads"
            )
        key = _repeat_heads(key, query.shape[-3] // key.shape[-3])
        value = _repeat_heads(value, query.shape[-3] // value.shape[-3])
    mask_needs_grad = (
        attn_mask is not None and attn_mask.dtype != pf.bool_ and attn_mask.requires_grad
    )
    if dropout_p > 0.0 or mask_needs_grad:
        return _composed_attention(query, key, value, attn_mask, dropout_p, is_causal, scale)
    query, key, value = _broadcast_batch(query, key, value)
    return _core.scaled_dot_product_attention(
        query, key, value, attn_mask, bool(is_causal), float(scale)
    )


def _composed_attention(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    attn_mask: Optional[Tensor],
    dropout_p: float,
    is_causal: bool,
    scale: float,
) -> Tensor:
    """Attention from primitive ops (softmax, matmuls, dropout); differentiable in the mask."""
    lq, lk = query.shape[-2], key.shape[-2]
    scores = (query @ key.transpose(-2, -1)) * scale
    if is_causal:
        attn_mask = _causal(lq, lk)
    if attn_mask is not None:
        if attn_mask.dtype == pf.bool_:
            scores = pf.where(attn_mask, scores, _neg_inf(scores.dtype))
        else:
            scores = scores + attn_mask.astype(scores.dtype)
    attn = safe_softmax(scores) if attn_mask is not None else pf.softmax(scores, -1)
    if dropout_p > 0.0:
        from .functional import dropout

        attn = dropout(attn, dropout_p, training=True)
    return attn @ value


def _to_float_mask(mask: Optional[Tensor], dtype: pf.DType, name: str) -> Optional[Tensor]:
    """MHA masks: bool True means *masked out*; converted to an additive float mask."""
    if mask is None:
        return None
    if mask.dtype == pf.bool_:
        return pf.where(mask, _neg_inf(dtype), pf.zeros([], dtype=dtype))
    if not is_floating(mask):
        raise TypeError(f"only bool and floating types of {name} are supported")
    return mask.astype(dtype)


def _pad_last(mask: Optional[Tensor]) -> Optional[Tensor]:
    if mask is None:
        return None
    shape = list(mask.shape)
    shape[-1] = 1
    return pf.cat([mask, pf.zeros(shape, dtype=mask.dtype)], -1)


def _linear(x: Tensor, w: Tensor, b: Optional[Tensor]) -> Tensor:
    """``x @ w^T + b`` as one 2-D product over all leading dimensions of `x` (a batched
    product with a broadcast weight would repack the weight for every batch entry)."""
    lead = list(x.shape[:-1])
    out = x.reshape(-1, x.shape[-1]) @ w.transpose(0, 1)
    if b is not None:
        out = out + b
    return out.reshape(lead + [w.shape[0]])


def multi_head_attention_forward(
    query: Tensor,
    key: Tensor,
    value: Tensor,
    embed_dim_to_check: int,
    num_heads: int,
    in_proj_weight: Optional[Tensor],
    in_proj_bias: Optional[Tensor],
    bias_k: Optional[Tensor],
    bias_v: Optional[Tensor],
    add_zero_attn: bool,
    dropout_p: float,
    out_proj_weight: Tensor,
    out_proj_bias: Optional[Tensor],
    training: bool = True,
    key_padding_mask: Optional[Tensor] = None,
    need_weights: bool = True,
    attn_mask: Optional[Tensor] = None,
    use_separate_proj_weight: bool = False,
    q_proj_weight: Optional[Tensor] = None,
    k_proj_weight: Optional[Tensor] = None,
    v_proj_weight: Optional[Tensor] = None,
    static_k: Optional[Tensor] = None,
    static_v: Optional[Tensor] = None,
    average_attn_weights: bool = True,
    is_causal: bool = False,
) -> Tuple[Tensor, Optional[Tensor]]:
    """Multi-head attention on sequence-first inputs ``[L, N, E]`` (or unbatched ``[L, E]``),
    as ``torch.nn.functional.multi_head_attention_forward``.

    Boolean masks mark positions to *ignore* (True). ``attn_mask`` is ``[L, S]`` or
    ``[N * num_heads, L, S]``; ``key_padding_mask`` is ``[N, S]``. Returns the output and,
    when ``need_weights``, the attention weights (averaged over heads unless
    ``average_attn_weights`` is False). ``is_causal`` without a mask builds the causal mask.
    Fully masked query rows give NaN with ``need_weights`` and zeros without (as in PyTorch,
    whose ``need_weights=False`` path goes through ``scaled_dot_product_attention``).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> mha = nn.MultiheadAttention(8, 2)
        >>> out, w = nn.functional.multi_head_attention_forward(
        ...     pf.ones([3, 1, 8]), pf.ones([3, 1, 8]), pf.ones([3, 1, 8]), 8, 2,
        ...     mha.in_proj_weight, mha.in_proj_bias, None, None, False, 0.0,
        ...     mha.out_proj.weight, mha.out_proj.bias)
        >>> out.shape, w.shape
        ([3, 1, 8], [1, 3, 3])
    """
    if static_k is not None or static_v is not None:
        raise NotImplementedError("static_k / static_v are not supported by PyFlame")
    unbatched = query.ndim == 2
    if unbatched:
        query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
        if key_padding_mask is not None:
            key_padding_mask = key_padding_mask.unsqueeze(0)
    if query.ndim != 3 or key.ndim != 3 or value.ndim != 3:
        raise ValueError(
            "multi_head_attention_forward: query, key and value must be 2D or 3D tensors"
        )
    tgt_len, bsz, embed_dim = query.shape
    src_len = key.shape[0]
    if embed_dim != embed_dim_to_check:
        raise ValueError(
            f"was expecting embedding dimension of {embed_dim_to_check}, but got {embed_dim}"
        )
    if embed_dim % num_heads != 0:
        raise ValueError(f"embed_dim {embed_dim} not divisible by num_heads {num_heads}")
    if key.shape[:2] != value.shape[:2]:
        raise ValueError(
            f"key shape {list(key.shape)} does not match value shape {list(value.shape)}"
        )
    head_dim = embed_dim // num_heads
    dtype = query.dtype

    if use_separate_proj_weight:
        if q_proj_weight is None or k_proj_weight is None or v_proj_weight is None:
            raise ValueError("use_separate_proj_weight is True but q/k/v_proj_weight is None")
        w_q, w_k, w_v = q_proj_weight, k_proj_weight, v_proj_weight
    else:
        if in_proj_weight is None:
            raise ValueError("use_separate_proj_weight is False but in_proj_weight is None")
        w_q, w_k, w_v = pf.chunk(in_proj_weight, 3, 0)
    b_q = b_k = b_v = None
    if in_proj_bias is not None:
        b_q, b_k, b_v = pf.chunk(in_proj_bias, 3, 0)
    q = _linear(query, w_q, b_q)
    k = _linear(key, w_k, b_k)
    v = _linear(value, w_v, b_v)

    if is_causal and attn_mask is None:
        attn_mask = _causal(tgt_len, src_len).logical_not()
    mask = _to_float_mask(attn_mask, dtype, "attn_mask")
    if mask is not None:
        if mask.ndim == 2:
            if list(mask.shape) != [tgt_len, src_len]:
                raise ValueError(
                    f"The shape of the 2D attn_mask is {list(mask.shape)}, "
                    f"but should be {[tgt_len, src_len]}."
                )
            mask = mask.unsqueeze(0)
        elif mask.ndim == 3:
            if list(mask.shape) != [bsz * num_heads, tgt_len, src_len]:
                raise ValueError(
                    f"The shape of the 3D attn_mask is {list(mask.shape)}, but should be "
                    f"{[bsz * num_heads, tgt_len, src_len]}."
                )
        else:
            raise ValueError(f"attn_mask's dimension {mask.ndim} is not supported")
    kpm = _to_float_mask(key_padding_mask, dtype, "key_padding_mask")
    if kpm is not None and list(kpm.shape) != [bsz, src_len]:
        raise ValueError(
            f"expecting key_padding_mask shape of {[bsz, src_len]}, but got {list(kpm.shape)}"
        )

    if bias_k is not None and bias_v is not None:
        k = pf.cat([k, bias_k.reshape(1, 1, embed_dim).expand(1, bsz, embed_dim)], 0)
        v = pf.cat([v, bias_v.reshape(1, 1, embed_dim).expand(1, bsz, embed_dim)], 0)
        mask, kpm = _pad_last(mask), _pad_last(kpm)
    elif (bias_k is None) != (bias_v is None):
        raise ValueError("bias_k and bias_v must both be given or both be None")

    # [L, N, E] -> [N * H, L, head_dim]
    q = q.reshape(tgt_len, bsz * num_heads, head_dim).transpose(0, 1)
    k = k.reshape(k.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    v = v.reshape(v.shape[0], bsz * num_heads, head_dim).transpose(0, 1)
    if add_zero_attn:
        zeros = pf.zeros([bsz * num_heads, 1, head_dim], dtype=dtype)
        k = pf.cat([k, zeros], 1)
        v = pf.cat([v, zeros], 1)
        mask, kpm = _pad_last(mask), _pad_last(kpm)
    s = k.shape[1]
    if kpm is not None:
        kpm = kpm.reshape(bsz, 1, 1, s).expand(bsz, num_heads, 1, s).reshape(bsz * num_heads, 1, s)
        mask = kpm if mask is None else mask + kpm
    if not training:
        dropout_p = 0.0

    weights = None
    if not need_weights and dropout_p == 0.0 and (mask is None or not mask.requires_grad):
        # The fused kernel: the [N * H, L, S] probabilities are never materialized.
        out = _core.scaled_dot_product_attention(q, k, v, mask, False, 1.0 / math.sqrt(head_dim))
    else:
        scores = (q * (1.0 / math.sqrt(head_dim))) @ k.transpose(-2, -1)
        if mask is not None:
            scores = scores + mask
        weights = (
            safe_softmax(scores)
            if mask is not None and not need_weights
            else pf.softmax(scores, -1)
        )
        if dropout_p > 0.0:
            from .functional import dropout

            weights = dropout(weights, dropout_p, training=True)
        out = weights @ v  # [N * H, L, head_dim]
    out = out.transpose(0, 1).reshape(tgt_len * bsz, embed_dim)
    out = _linear(out, out_proj_weight, out_proj_bias).reshape(tgt_len, bsz, embed_dim)
    attn = None
    if need_weights and weights is not None:
        attn = weights.reshape(bsz, num_heads, tgt_len, s)
        if average_attn_weights:
            attn = attn.mean(1)
        if unbatched:
            attn = attn.squeeze(0)
    if unbatched:
        out = out.squeeze(1)
    return out, attn
