"""Pooling layers: ``MaxPool1d/2d``, ``AvgPool1d/2d``, ``AdaptiveAvgPool1d/2d`` and
``GlobalAvgPool2d``.

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> nn.MaxPool2d(kernel_size=2, stride=2)(pf.ones([1, 3, 8, 8])).shape
    [1, 3, 4, 4]
"""

from __future__ import annotations

from typing import Any, Optional

import pyflame as pf

from . import functional as F
from .module import Module

__all__ = [
    "MaxPool1d",
    "MaxPool2d",
    "AvgPool1d",
    "AvgPool2d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "GlobalAvgPool2d",
]


class _MaxPoolNd(Module):
    def __init__(
        self,
        kernel_size: Any,
        stride: Optional[Any] = None,
        padding: Any = 0,
        dilation: Any = 1,
        return_indices: bool = False,
        ceil_mode: bool = False,
    ) -> None:
        super().__init__()
        if return_indices:
            raise NotImplementedError(
                "max pooling with return_indices=True is not supported by PyFlame"
            )
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.dilation = dilation
        self.return_indices = return_indices
        self.ceil_mode = ceil_mode

    def extra_repr(self) -> str:
        return (
            f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
            f"dilation={self.dilation}, ceil_mode={self.ceil_mode}"
        )


class MaxPool2d(_MaxPoolNd):
    """2-D max pooling; `stride` defaults to `kernel_size`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.MaxPool2d(3, stride=2, padding=1)(pf.ones([1, 1, 8, 8])).shape
        [1, 1, 4, 4]
    """

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Max-pools `input` (``[N, C, H, W]`` or ``[C, H, W]``)."""
        return F.max_pool2d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )


class MaxPool1d(_MaxPoolNd):
    """1-D max pooling; `stride` defaults to `kernel_size`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.MaxPool1d(2)(pf.ones([1, 2, 8])).shape
        [1, 2, 4]
    """

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Max-pools `input` (``[N, C, L]`` or ``[C, L]``)."""
        return F.max_pool1d(
            input, self.kernel_size, self.stride, self.padding, self.dilation, self.ceil_mode
        )


class _AvgPoolNd(Module):
    def __init__(
        self,
        kernel_size: Any,
        stride: Optional[Any] = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
    ) -> None:
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode
        self.count_include_pad = count_include_pad

    def extra_repr(self) -> str:
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPoolNd):
    """2-D average pooling; `stride` defaults to `kernel_size`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.AvgPool2d(2)(pf.ones([1, 1, 4, 4])).shape
        [1, 1, 2, 2]
    """

    def __init__(
        self,
        kernel_size: Any,
        stride: Optional[Any] = None,
        padding: Any = 0,
        ceil_mode: bool = False,
        count_include_pad: bool = True,
        divisor_override: Optional[int] = None,
    ) -> None:
        super().__init__(kernel_size, stride, padding, ceil_mode, count_include_pad)
        self.divisor_override = divisor_override

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Average-pools `input` (``[N, C, H, W]`` or ``[C, H, W]``)."""
        return F.avg_pool2d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
            self.divisor_override,
        )


class AvgPool1d(_AvgPoolNd):
    """1-D average pooling; `stride` defaults to `kernel_size`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.AvgPool1d(3, stride=1)(pf.ones([1, 2, 5])).shape
        [1, 2, 3]
    """

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Average-pools `input` (``[N, C, L]`` or ``[C, L]``)."""
        return F.avg_pool1d(
            input,
            self.kernel_size,
            self.stride,
            self.padding,
            self.ceil_mode,
            self.count_include_pad,
        )


class AdaptiveAvgPool2d(Module):
    """Average pooling to a fixed output size (int, pair, ``None`` entries keep the input size).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.AdaptiveAvgPool2d((1, 1))(pf.ones([2, 5, 7, 7])).shape
        [2, 5, 1, 1]
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Pools `input` to ``output_size``."""
        return F.adaptive_avg_pool2d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class AdaptiveAvgPool1d(Module):
    """Average pooling of ``[N, C, L]`` input to a fixed length.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.AdaptiveAvgPool1d(4)(pf.ones([2, 5, 9])).shape
        [2, 5, 4]
    """

    def __init__(self, output_size: Any) -> None:
        super().__init__()
        self.output_size = output_size

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Pools `input` to ``output_size``."""
        return F.adaptive_avg_pool1d(input, self.output_size)

    def extra_repr(self) -> str:
        return f"output_size={self.output_size}"


class GlobalAvgPool2d(Module):
    """Mean over the spatial dimensions: ``[N, C, H, W] -> [N, C, 1, 1]`` (``[C, H, W] ->
    [C, 1, 1]``); the same as ``AdaptiveAvgPool2d(1)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.GlobalAvgPool2d()(pf.ones([2, 5, 7, 3])).shape
        [2, 5, 1, 1]
    """

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Averages over the last two dimensions, keeping them as size 1."""
        if input.ndim not in (3, 4):
            raise ValueError(f"GlobalAvgPool2d: expected 3D or 4D input, got {list(input.shape)}")
        return input.mean((-2, -1), keepdim=True)
