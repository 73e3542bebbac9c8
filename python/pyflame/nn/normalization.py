"""Normalization layers: ``BatchNorm1d``, ``BatchNorm2d``, ``LayerNorm``, ``GroupNorm`` and
``RMSNorm``, composed from differentiable mean/variance reductions and elementwise ops.

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> bn = nn.BatchNorm2d(4)
    >>> y = bn(pf.randn([8, 4, 5, 5]))
    >>> bn.num_batches_tracked.item()
    1
"""

from __future__ import annotations

from typing import Any, Optional, Sequence, Union

import numpy as np

import pyflame as pf

from . import functional as F
from . import init
from ._helpers import set_data
from .linear import empty_param
from .module import Module

__all__ = ["BatchNorm1d", "BatchNorm2d", "LayerNorm", "GroupNorm", "RMSNorm"]


class _BatchNorm(Module):
    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: Optional[float] = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.num_features = int(num_features)
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = empty_param([self.num_features], dtype, device)
            self.bias = empty_param([self.num_features], dtype, device)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            fdtype = self.weight.dtype if affine else (pf.float32 if dtype is None else dtype)
            self.register_buffer("running_mean", pf.zeros([self.num_features], dtype=fdtype))
            self.register_buffer("running_var", pf.ones([self.num_features], dtype=fdtype))
            self.register_buffer("num_batches_tracked", pf.tensor(np.array(0, dtype=np.int64)))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)
        self.reset_parameters()

    def reset_running_stats(self) -> None:
        """Resets the running mean to 0, the running variance to 1 and the batch count to 0."""
        if self.track_running_stats:
            init.zeros_(self.running_mean)
            init.ones_(self.running_var)
            set_data(self.num_batches_tracked, pf.tensor(np.array(0, dtype=np.int64)))

    def reset_parameters(self) -> None:
        """Resets the running statistics, the weight to 1 and the bias to 0."""
        self.reset_running_stats()
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def _check_input_dim(self, input: pf.Tensor) -> None:  # noqa: A002
        raise NotImplementedError

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Normalizes `input` with batch statistics (training, updating the running ones) or
        with the running statistics (evaluation)."""
        self._check_input_dim(input)
        factor = 0.0 if self.momentum is None else self.momentum
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            set_data(self.num_batches_tracked, self.num_batches_tracked + 1)
            if self.momentum is None:
                factor = 1.0 / float(self.num_batches_tracked.item())
        bn_training = self.training or (self.running_mean is None and self.running_var is None)
        use_running = not self.training or self.track_running_stats
        return F.batch_norm(
            input,
            self.running_mean if use_running else None,
            self.running_var if use_running else None,
            self.weight,
            self.bias,
            bn_training,
            factor,
            self.eps,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, affine={self.affine}, "
            f"track_running_stats={self.track_running_stats}"
        )


class BatchNorm1d(_BatchNorm):
    """Batch normalization over ``[N, C]`` or ``[N, C, L]`` input.

    Args:
        num_features: C.
        eps: added to the variance for stability.
        momentum: running-statistics update factor (``None``: cumulative average).
        affine: learn a per-channel weight and bias.
        track_running_stats: keep running mean/variance (used in eval mode).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.BatchNorm1d(256)(pf.randn([4, 256])).shape
        [4, 256]
    """

    def _check_input_dim(self, input: pf.Tensor) -> None:  # noqa: A002
        if input.ndim not in (2, 3):
            raise ValueError(f"expected 2D or 3D input (got {input.ndim}D input)")


class BatchNorm2d(_BatchNorm):
    """Batch normalization over ``[N, C, H, W]`` input (statistics per channel).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> bn = nn.BatchNorm2d(64).eval()
        >>> bn(pf.randn([2, 64, 3, 3])).shape
        [2, 64, 3, 3]
    """

    def _check_input_dim(self, input: pf.Tensor) -> None:  # noqa: A002
        if input.ndim != 4:
            raise ValueError(f"expected 4D input (got {input.ndim}D input)")


def _shape_tuple(shape: Union[int, Sequence[int]]) -> tuple:
    return (int(shape),) if isinstance(shape, int) else tuple(int(s) for s in shape)


class LayerNorm(Module):
    """Layer normalization over the trailing ``normalized_shape`` dimensions.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.LayerNorm([768])(pf.randn([2, 5, 768])).shape
        [2, 5, 768]
    """

    def __init__(
        self,
        normalized_shape: Union[int, Sequence[int]],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = empty_param(self.normalized_shape, dtype, device)
            if bias:
                self.bias = empty_param(self.normalized_shape, dtype, device)
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Sets the weight to 1 and the bias to 0."""
        if self.weight is not None:
            init.ones_(self.weight)
        if self.bias is not None:
            init.zeros_(self.bias)

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Normalizes `input` over its last dimensions."""
        return F.layer_norm(input, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )


class GroupNorm(Module):
    """Group normalization: `num_channels` split into `num_groups` groups.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.GroupNorm(32, 256)(pf.randn([2, 256, 4, 4])).shape
        [2, 256, 4, 4]
    """

    def __init__(
        self,
        num_groups: int,
        num_channels: int,
        eps: float = 1e-5,
        affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        if num_channels % num_groups != 0:
            raise ValueError("num_channels must be divisible by num_groups")
        self.num_groups = int(num_groups)
        self.num_channels = int(num_channels)
        self.eps = eps
        self.affine = affine
        if affine:
            self.weight = empty_param([num_channels], dtype, device)
            self.bias = empty_param([num_channels], dtype, device)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Sets the weight to 1 and the bias to 0."""
        if self.affine:
            init.ones_(self.weight)
            init.zeros_(self.bias)

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Normalizes `input` per group."""
        return F.group_norm(input, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}"


class RMSNorm(Module):
    """Root-mean-square normalization over the trailing ``normalized_shape`` dimensions:
    ``x / sqrt(mean(x**2) + eps) * weight`` (``eps=None`` uses the dtype's machine epsilon).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.RMSNorm(8)(pf.randn([2, 8])).shape
        [2, 8]
    """

    def __init__(
        self,
        normalized_shape: Union[int, Sequence[int]],
        eps: Optional[float] = None,
        elementwise_affine: bool = True,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        self.normalized_shape = _shape_tuple(normalized_shape)
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = empty_param(self.normalized_shape, dtype, device)
            init.ones_(self.weight)
        else:
            self.register_parameter("weight", None)

    def forward(self, input: pf.Tensor) -> pf.Tensor:  # noqa: A002 - PyTorch's name
        """Scales `input` by the reciprocal RMS of its last dimensions."""
        return F.rms_norm(input, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self) -> str:
        return (
            f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"
        )
