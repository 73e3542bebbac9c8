"""``Embedding``: a lookup table of learnable vectors indexed by integer ids.

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> emb = nn.Embedding(10, 3, padding_idx=0)
    >>> emb(pf.tensor([[1, 2, 0]])).shape
    [1, 3, 3]
    >>> emb.weight[0].tolist()
    [0.0, 0.0, 0.0]
"""

from __future__ import annotations

from typing import Any, Optional

import pyflame as pf

from . import functional as F
from . import init
from ._helpers import set_data
from .linear import check_device, empty_param
from .module import Module
from .parameter import Parameter

__all__ = ["Embedding"]


class Embedding(Module):
    """Maps integer indices to rows of ``weight`` (``[num_embeddings, embedding_dim]``,
    initialized from ``N(0, 1)``; the ``padding_idx`` row is zero and gets no gradient).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Embedding(100, 16)(pf.tensor([3, 7])).shape
        [2, 16]
    """

    def __init__(
        self,
        num_embeddings: int,
        embedding_dim: int,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
        _weight: Optional[pf.Tensor] = None,
        _freeze: bool = False,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        check_device(device)
        if sparse:
            raise NotImplementedError(
                "sparse embedding gradients are not supported by PyFlame; use sparse=False"
            )
        self.num_embeddings = int(num_embeddings)
        self.embedding_dim = int(embedding_dim)
        if padding_idx is not None:
            if padding_idx > 0 and padding_idx >= num_embeddings:
                raise ValueError("Padding_idx must be within num_embeddings")
            if padding_idx < 0:
                if padding_idx < -num_embeddings:
                    raise ValueError("Padding_idx must be within num_embeddings")
                padding_idx = num_embeddings + padding_idx
        self.padding_idx = padding_idx
        self.max_norm = max_norm
        self.norm_type = norm_type
        self.scale_grad_by_freq = scale_grad_by_freq
        self.sparse = sparse
        if _weight is None:
            self.weight = empty_param([self.num_embeddings, self.embedding_dim], dtype, device)
            self.reset_parameters()
        else:
            if list(_weight.shape) != [self.num_embeddings, self.embedding_dim]:
                raise ValueError("Shape of weight does not match num_embeddings and embedding_dim")
            self.weight = Parameter(_weight, requires_grad=not _freeze)

    def reset_parameters(self) -> None:
        """Draws the weight from ``N(0, 1)`` and zeroes the padding row."""
        init.normal_(self.weight)
        self._fill_padding_idx_with_zero()

    def _fill_padding_idx_with_zero(self) -> None:
        if self.padding_idx is not None:
            keep = (pf.arange(self.num_embeddings, dtype=pf.int64) != self.padding_idx).unsqueeze(1)
            with pf.no_grad():
                w = self.weight.detach()
                set_data(self.weight, pf.where(keep, w, pf.zeros_like(w)))

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Looks up the rows for the indices in `input` (any shape; a trailing dim is added)."""
        return F.embedding(
            input,
            self.weight,
            self.padding_idx,
            self.max_norm,
            self.norm_type,
            self.scale_grad_by_freq,
            self.sparse,
        )

    def extra_repr(self) -> str:
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq is not False:
            s += ", scale_grad_by_freq=True"
        return s

    @classmethod
    def from_pretrained(
        cls,
        embeddings: pf.Tensor,
        freeze: bool = True,
        padding_idx: Optional[int] = None,
        max_norm: Optional[float] = None,
        norm_type: float = 2.0,
        scale_grad_by_freq: bool = False,
        sparse: bool = False,
    ) -> Embedding:
        """An ``Embedding`` holding (a copy of) the 2-D `embeddings`; frozen by default.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import nn
            >>> emb = nn.Embedding.from_pretrained(pf.eye(3))
            >>> emb.weight.requires_grad, emb(pf.tensor([1])).tolist()
            (False, [[0.0, 1.0, 0.0]])
        """
        if embeddings.ndim != 2:
            raise ValueError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        return cls(
            rows,
            cols,
            padding_idx=padding_idx,
            max_norm=max_norm,
            norm_type=norm_type,
            scale_grad_by_freq=scale_grad_by_freq,
            sparse=sparse,
            _weight=embeddings,
            _freeze=freeze,
        )
