"""Dropout layers: ``Dropout``, ``Dropout1d`` and ``Dropout2d`` (identity in eval mode).

Masks come from ``pf.rand`` (reproducible with ``pf.manual_seed``).

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> drop = nn.Dropout(0.5)
    >>> drop.eval()(pf.ones([4])).tolist()
    [1.0, 1.0, 1.0, 1.0]
"""

from __future__ import annotations

import pyflame as pf

from . import functional as F
from .module import Module

__all__ = ["Dropout", "Dropout1d", "Dropout2d"]


class _DropoutNd(Module):
    def __init__(self, p: float = 0.5, inplace: bool = False) -> None:
        super().__init__()
        if p < 0 or p > 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p = p
        self.inplace = inplace

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout(_DropoutNd):
    """Zeroes each element with probability `p` in training mode and scales the rest by
    ``1 / (1 - p)``. `inplace` is accepted for compatibility; the result is always a new tensor.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> pf.manual_seed(0)
        >>> y = nn.Dropout(0.5)(pf.ones([1000]))
        >>> sorted(set(y.tolist()))
        [0.0, 2.0]
    """

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Applies dropout when training."""
        return F.dropout(input, self.p, self.training)


class Dropout1d(_DropoutNd):
    """Zeroes whole channels of ``[N, C, L]`` input with probability `p`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Dropout1d(0.2)(pf.ones([2, 3, 4])).shape
        [2, 3, 4]
    """

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Applies channel dropout when training."""
        return F.dropout1d(input, self.p, self.training)


class Dropout2d(_DropoutNd):
    """Zeroes whole channels of ``[N, C, H, W]`` input with probability `p` (spatial dropout).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Dropout2d(0.2)(pf.ones([2, 3, 4, 4])).shape
        [2, 3, 4, 4]
    """

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Applies channel dropout when training."""
        return F.dropout2d(input, self.p, self.training)
