"""Convolution layers: ``Conv1d`` and ``Conv2d`` (PyTorch semantics and parameter layout).

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> conv = nn.Conv2d(3, 8, kernel_size=3, padding=1)
    >>> conv(pf.randn([2, 3, 16, 16])).shape
    [2, 8, 16, 16]
"""

from __future__ import annotations

from typing import Any, Tuple, Union

import pyflame as pf

from . import functional as F
from ._helpers import ntuple
from .linear import empty_param, reset_linear_like
from .module import Module

__all__ = ["Conv1d", "Conv2d"]

_PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class _ConvNd(Module):
    _n = 2

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: Any,
        stride: Any = 1,
        padding: Any = 0,
        dilation: Any = 1,
        groups: int = 1,
        bias: bool = True,
        padding_mode: str = "zeros",
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        n = self._n
        if groups <= 0:
            raise ValueError("groups must be a positive integer")
        if in_channels % groups != 0:
            raise ValueError("in_channels must be divisible by groups")
        if out_channels % groups != 0:
            raise ValueError("out_channels must be divisible by groups")
        if padding_mode not in _PADDING_MODES:
            raise ValueError(
                f"padding_mode must be one of {_PADDING_MODES}, "
                f"but got padding_mode='{padding_mode}'"
            )
        self.in_channels = int(in_channels)
        self.out_channels = int(out_channels)
        self.kernel_size: Tuple[int, ...] = ntuple(kernel_size, n, "kernel_size")
        self.stride: Tuple[int, ...] = ntuple(stride, n, "stride")
        self.dilation: Tuple[int, ...] = ntuple(dilation, n, "dilation")
        self.padding: Union[str, Tuple[int, ...]]
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(
                    f"Invalid padding string '{padding}', should be one of {{'valid', 'same'}}"
                )
            if padding == "same" and any(s != 1 for s in self.stride):
                raise ValueError("padding='same' is not supported for strided convolutions")
            self.padding = padding
        else:
            self.padding = ntuple(padding, n, "padding")
        self.groups = int(groups)
        self.padding_mode = padding_mode
        self.output_padding = (0,) * n
        self.transposed = False
        self.weight = empty_param(
            [out_channels, in_channels // groups, *self.kernel_size], dtype, device
        )
        if bias:
            self.bias = empty_param([out_channels], dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initializes weight and bias with PyTorch's defaults."""
        reset_linear_like(self.weight, self.bias)

    def _explicit_pad(self, x: pf.Tensor) -> pf.Tensor:
        """Pads `x` for a non-zeros padding mode (the convolution then runs unpadded)."""
        if isinstance(self.padding, str):
            if self.padding == "valid":
                return x
            pads = []
            for d, k in zip(reversed(self.dilation), reversed(self.kernel_size)):
                total = d * (k - 1)
                pads += [total // 2, total - total // 2]
        else:
            pads = [p for p in reversed(self.padding) for _ in range(2)]
        return F.pad(x, pads, mode=self.padding_mode)

    def extra_repr(self) -> str:
        s = f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}"
        s += f", stride={self.stride}"
        if self.padding != (0,) * self._n:
            s += f", padding={self.padding}"
        if self.dilation != (1,) * self._n:
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution over ``[N, C_in, H, W]`` input; weight ``[C_out, C_in / groups, kh, kw]``.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, stride, dilation: ints or pairs.
        padding: int, pair, ``"valid"`` or ``"same"``.
        groups: blocked connections from input to output channels.
        bias: whether to add a learnable bias.
        padding_mode: ``"zeros"``, ``"reflect"``, ``"replicate"`` or ``"circular"``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Conv2d(4, 8, (3, 5), stride=2, groups=2)(pf.ones([1, 4, 9, 9])).shape
        [1, 8, 4, 3]
    """

    _n = 2

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Convolves `input` with the layer's weight."""
        if self.padding_mode != "zeros":
            return F.conv2d(
                self._explicit_pad(input),
                self.weight,
                self.bias,
                self.stride,
                0,
                self.dilation,
                self.groups,
            )
        return F.conv2d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )


class Conv1d(_ConvNd):
    """1-D convolution over ``[N, C_in, L]`` input; weight ``[C_out, C_in / groups, k]``.

    Runs as a 2-D convolution with a unit height.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Conv1d(128, 256, kernel_size=3, padding=1)(pf.ones([2, 128, 20])).shape
        [2, 256, 20]
    """

    _n = 1

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Convolves `input` with the layer's weight."""
        if self.padding_mode != "zeros":
            return F.conv1d(
                self._explicit_pad(input),
                self.weight,
                self.bias,
                self.stride,
                0,
                self.dilation,
                self.groups,
            )
        return F.conv1d(
            input, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups
        )
