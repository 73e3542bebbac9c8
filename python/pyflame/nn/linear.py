"""``Identity``, ``Linear``, ``Flatten`` and ``Unflatten``.

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> layer = nn.Linear(512, 256)
    >>> layer(pf.randn([8, 512])).shape, layer.weight.shape
    ([8, 256], [256, 512])
"""

from __future__ import annotations

import math
from typing import Any, Optional, Sequence

import pyflame as pf

from . import functional as F
from . import init
from ._helpers import as_dtype
from .module import Module
from .parameter import Parameter

__all__ = ["Identity", "Linear", "Flatten", "Unflatten"]


def check_device(device: Any) -> None:
    """Rejects devices other than the CPU (modules accept ``device=`` like PyTorch)."""
    if device is not None and str(device).split(":")[0] != "cpu":
        raise ValueError(f"device {device!r} is not supported; PyFlame modules live on the CPU")


def empty_param(shape: Sequence[int], dtype: Any = None, device: Any = None) -> Parameter:
    """A zero-filled parameter of `shape` (float32 unless `dtype`), to be initialized."""
    check_device(device)
    return Parameter(pf.zeros(list(shape), dtype=as_dtype(dtype) or pf.float32))


def reset_linear_like(weight: Parameter, bias: Optional[Parameter]) -> None:
    """PyTorch's default Linear/Conv initialization: ``kaiming_uniform_(a=sqrt(5))`` for the
    weight and ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))`` for the bias."""
    init.kaiming_uniform_(weight, a=math.sqrt(5))
    if bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(weight)
        bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
        init.uniform_(bias, -bound, bound)


class Identity(Module):
    """Returns its input unchanged (any constructor arguments are ignored).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Identity(54, unused="x")(pf.ones([2])).tolist()
        [1.0, 1.0]
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Returns `input`."""
        return input


class Linear(Module):
    """Fully connected layer ``y = x @ weight.T + bias``.

    Args:
        in_features: size of each input sample.
        out_features: size of each output sample.
        bias: whether to learn an additive bias (default True).
        dtype: parameter dtype (default float32).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Linear(3, 2, bias=False)(pf.ones([4, 3])).shape
        [4, 2]
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = empty_param([self.out_features, self.in_features], dtype, device)
        if bias:
            self.bias = empty_param([self.out_features], dtype, device)
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Re-initializes weight and bias with PyTorch's defaults."""
        reset_linear_like(self.weight, self.bias)

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Applies the affine map to the last dimension of `input`."""
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}"
        )


class NonDynamicallyQuantizableLinear(Linear):
    """A ``Linear`` (the class PyTorch uses for ``MultiheadAttention.out_proj``)."""


class Flatten(Module):
    """Flattens dimensions ``start_dim..end_dim`` (default: all but the batch dimension).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Flatten()(pf.ones([2, 3, 4])).shape
        [2, 12]
    """

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        super().__init__()
        self.start_dim = start_dim
        self.end_dim = end_dim

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Returns `input` flattened over the configured dimensions."""
        return input.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Expands dimension `dim` into `unflattened_size`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Unflatten(1, (3, 4))(pf.ones([2, 12])).shape
        [2, 3, 4]
    """

    def __init__(self, dim: int, unflattened_size: Sequence[int]) -> None:
        super().__init__()
        self.dim = dim
        self.unflattened_size = tuple(int(s) for s in unflattened_size)

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Returns `input` with dimension `dim` split."""
        d = self.dim % input.ndim
        shape = list(input.shape)
        return input.reshape(shape[:d] + list(self.unflattened_size) + shape[d + 1 :])

    def extra_repr(self) -> str:
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"
