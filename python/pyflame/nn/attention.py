"""Attention layers: ``MultiheadAttention`` (PyTorch's parameter names and layout) and the thin
wrappers ``SelfAttention`` and ``CrossAttention``.

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> mha = nn.MultiheadAttention(embed_dim=16, num_heads=4)
    >>> x = pf.randn([5, 2, 16])            # [seq, batch, embed]
    >>> out, weights = mha(x, x, x)
    >>> out.shape, weights.shape
    ([5, 2, 16], [2, 5, 5])
"""

from __future__ import annotations

from typing import Any, Optional, Tuple

import pyflame as pf

from . import init
from ._attention_fn import multi_head_attention_forward
from .linear import NonDynamicallyQuantizableLinear, empty_param
from .module import Module

__all__ = ["MultiheadAttention", "SelfAttention", "CrossAttention"]

Tensor = pf.Tensor


class MultiheadAttention(Module):
    """Multi-head attention ``softmax(Q K^T / sqrt(d)) V`` with learned projections.

    Args:
        embed_dim: model dimension E (split across `num_heads` heads).
        num_heads: number of heads (must divide E).
        dropout: dropout probability on the attention weights (training mode only).
        bias: add biases to the input and output projections.
        add_bias_kv: learn an extra key/value appended to the sequences.
        add_zero_attn: append an all-zero key/value.
        kdim, vdim: key/value feature sizes (default E; when different, separate
            ``q_proj_weight``/``k_proj_weight``/``v_proj_weight`` replace ``in_proj_weight``).
        batch_first: inputs and outputs are ``[batch, seq, E]`` instead of ``[seq, batch, E]``.

    ``forward(query, key=None, value=None, key_padding_mask=None, need_weights=True,
    attn_mask=None, average_attn_weights=True, is_causal=False)`` returns
    ``(attn_output, attn_weights or None)``; `key` and `value` default to `query`
    (self-attention). Boolean masks mark positions to ignore (True).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> mha = nn.MultiheadAttention(8, 2, batch_first=True)
        >>> q, kv = pf.randn([3, 4, 8]), pf.randn([3, 6, 8])
        >>> pad = pf.zeros([3, 6], dtype=pf.bool_)
        >>> out, w = mha(q, kv, kv, key_padding_mask=pad, average_attn_weights=False)
        >>> out.shape, w.shape
        ([3, 4, 8], [3, 2, 4, 6])
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        add_bias_kv: bool = False,
        add_zero_attn: bool = False,
        kdim: Optional[int] = None,
        vdim: Optional[int] = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if embed_dim <= 0 or num_heads <= 0:
            raise ValueError(
                f"embed_dim and num_heads must be greater than 0, got embed_dim={embed_dim} "
                f"and num_heads={num_heads} instead"
            )
        self.embed_dim = int(embed_dim)
        self.kdim = int(kdim) if kdim is not None else self.embed_dim
        self.vdim = int(vdim) if vdim is not None else self.embed_dim
        self._qkv_same_embed_dim = self.kdim == self.embed_dim and self.vdim == self.embed_dim
        self.num_heads = int(num_heads)
        self.dropout = dropout
        self.batch_first = batch_first
        self.head_dim = self.embed_dim // self.num_heads
        if self.head_dim * self.num_heads != self.embed_dim:
            raise ValueError("embed_dim must be divisible by num_heads")
        e = self.embed_dim
        if not self._qkv_same_embed_dim:
            self.q_proj_weight = empty_param([e, e], dtype, device)
            self.k_proj_weight = empty_param([e, self.kdim], dtype, device)
            self.v_proj_weight = empty_param([e, self.vdim], dtype, device)
            self.register_parameter("in_proj_weight", None)
        else:
            self.in_proj_weight = empty_param([3 * e, e], dtype, device)
            self.register_parameter("q_proj_weight", None)
            self.register_parameter("k_proj_weight", None)
            self.register_parameter("v_proj_weight", None)
        if bias:
            self.in_proj_bias = empty_param([3 * e], dtype, device)
        else:
            self.register_parameter("in_proj_bias", None)
        self.out_proj = NonDynamicallyQuantizableLinear(e, e, bias=bias, device=device, dtype=dtype)
        if add_bias_kv:
            self.bias_k = empty_param([1, 1, e], dtype, device)
            self.bias_v = empty_param([1, 1, e], dtype, device)
        else:
            self.bias_k = self.bias_v = None
        self.add_zero_attn = add_zero_attn
        self._reset_parameters()

    def _reset_parameters(self) -> None:
        if self._qkv_same_embed_dim:
            init.xavier_uniform_(self.in_proj_weight)
        else:
            init.xavier_uniform_(self.q_proj_weight)
            init.xavier_uniform_(self.k_proj_weight)
            init.xavier_uniform_(self.v_proj_weight)
        if self.in_proj_bias is not None:
            init.zeros_(self.in_proj_bias)
            init.zeros_(self.out_proj.bias)
        if self.bias_k is not None:
            init.xavier_normal_(self.bias_k)
        if self.bias_v is not None:
            init.xavier_normal_(self.bias_v)

    def forward(
        self,
        query: Tensor,
        key: Optional[Tensor] = None,
        value: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        need_weights: bool = True,
        attn_mask: Optional[Tensor] = None,
        average_attn_weights: bool = True,
        is_causal: bool = False,
    ) -> Tuple[Tensor, Optional[Tensor]]:
        """Attends from `query` to `key`/`value`; returns ``(output, weights or None)``."""
        if key is None:
            key = query
        if value is None:
            value = key
        batched = query.ndim == 3
        if self.batch_first and batched:
            query, key, value = query.transpose(0, 1), key.transpose(0, 1), value.transpose(0, 1)
        out, weights = multi_head_attention_forward(
            query,
            key,
            value,
            self.embed_dim,
            self.num_heads,
            self.in_proj_weight,
            self.in_proj_bias,
            self.bias_k,
            self.bias_v,
            self.add_zero_attn,
            self.dropout,
            self.out_proj.weight,
            self.out_proj.bias,
            training=self.training,
            key_padding_mask=key_padding_mask,
            need_weights=need_weights,
            attn_mask=attn_mask,
            use_separate_proj_weight=not self._qkv_same_embed_dim,
            q_proj_weight=self.q_proj_weight,
            k_proj_weight=self.k_proj_weight,
            v_proj_weight=self.v_proj_weight,
            average_attn_weights=average_attn_weights,
            is_causal=is_causal,
        )
        if self.batch_first and batched:
            out = out.transpose(0, 1)
        return out, weights


class SelfAttention(MultiheadAttention):
    """Self-attention: ``MultiheadAttention`` with key = value = query, returning only the
    output. Parameters and ``state_dict`` keys are those of ``MultiheadAttention``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> attn = nn.SelfAttention(768, 12)
        >>> attn(pf.randn([10, 2, 768])).shape
        [10, 2, 768]
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            embed_dim, num_heads, dropout, bias, batch_first=batch_first, device=device, dtype=dtype
        )

    def forward(  # type: ignore[override]
        self,
        x: Tensor,
        attn_mask: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        is_causal: bool = False,
    ) -> Tensor:
        """Attends from `x` to itself; returns the output only."""
        out, _ = super().forward(
            x,
            x,
            x,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            attn_mask=attn_mask,
            is_causal=is_causal,
        )
        return out


class CrossAttention(MultiheadAttention):
    """Cross-attention: `query` attends to `context` (key = value = context), returning only the
    output. ``kdim`` sets the context's feature size when it differs from ``embed_dim``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> attn = nn.CrossAttention(512, 8)
        >>> attn(pf.randn([4, 2, 512]), pf.randn([9, 2, 512])).shape
        [4, 2, 512]
    """

    def __init__(
        self,
        embed_dim: int,
        num_heads: int,
        dropout: float = 0.0,
        bias: bool = True,
        kdim: Optional[int] = None,
        batch_first: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(
            embed_dim,
            num_heads,
            dropout,
            bias,
            kdim=kdim,
            vdim=kdim,
            batch_first=batch_first,
            device=device,
            dtype=dtype,
        )

    def forward(  # type: ignore[override]
        self,
        query: Tensor,
        context: Tensor,
        attn_mask: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
    ) -> Tensor:
        """Attends from `query` to `context`; returns the output only."""
        out, _ = super().forward(
            query,
            context,
            context,
            key_padding_mask=key_padding_mask,
            need_weights=False,
            attn_mask=attn_mask,
        )
        return out
