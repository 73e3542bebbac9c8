"""Normalization functions (re-exported by :mod:`pyflame.nn.functional`): ``batch_norm``,
``layer_norm``, ``group_norm`` and ``rms_norm``, with PyTorch semantics.

Batch, layer and group norm run on the dedicated kernels of ``pyflame._core.normalization``:
the input is viewed as ``[N, C, S]``, one pass computes the statistics (mean and biased
variance), a second normalizes and applies the affine parameters, and the backward pass
uses dedicated gradient kernels instead of differentiating a chain of reductions.

Example:
    >>> import pyflame as pf
    >>> from pyflame.nn import functional as F
    >>> [round(v, 3) for v in F.layer_norm(pf.tensor([[1.0, 3.0]]), [2])[0].tolist()]
    [-1.0, 1.0]
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import numpy as np

import pyflame as pf
from pyflame import _core

from ._helpers import numel

__all__ = ["batch_norm", "layer_norm", "group_norm", "rms_norm"]

Tensor = pf.Tensor


def _check_affine(name: str, t: Optional[Tensor], c: int, fn: str) -> None:
    if t is not None and numel(t) != c:
        raise ValueError(f"{fn}: {name} should contain {c} elements not {numel(t)}")


def _positions(x: Tensor) -> int:
    """Number of positions per (sample, channel): the product of the dimensions after 1."""
    return int(np.prod(x.shape[2:], dtype=np.int64))


def _running_update(
    running: Tensor, stat: Tensor, momentum: float, correction: float = 1.0
) -> None:
    """``running = (1 - momentum) * running + momentum * stat * correction``, assigned lazily.

    A previous update still pending is evaluated first (its batch statistics are normally
    computed by then), so a buffer never accumulates a chain of updates over many steps.
    """
    if _core.is_lazy(running):
        pf.eval(running)
    with pf.no_grad():
        new = running * (1.0 - momentum) + stat.astype(running.dtype) * (momentum * correction)
    running.data = new


def batch_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    running_mean: Optional[Tensor],
    running_var: Optional[Tensor],
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    training: bool = False,
    momentum: float = 0.1,
    eps: float = 1e-5,
) -> Tensor:
    """Batch normalization over dimension 1 of ``[N, C, ...]`` input.

    In training mode the batch statistics normalize the input and the running statistics
    (when given) are updated in place: ``running = (1 - momentum) * running + momentum * stat``
    with the unbiased batch variance, like PyTorch. The update stays lazy: it is computed
    with the batch (or, at the latest, by the next call with the same buffers). Otherwise the
    running statistics are used.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> rm, rv = pf.zeros([2]), pf.ones([2])
        >>> y = F.batch_norm(pf.tensor([[1.0, 2.0], [3.0, 6.0]]), rm, rv, training=True)
        >>> rm.tolist(), rv.tolist()
        ([0.20000000298023224, 0.4000000059604645], [1.100000023841858, 1.7000000476837158])
    """
    if input.ndim < 2:
        raise ValueError(f"batch_norm: expected at least 2D input (got {input.ndim}D input)")
    c = input.shape[1]
    for name, t in (
        ("running_mean", running_mean),
        ("running_var", running_var),
        ("weight", weight),
        ("bias", bias),
    ):
        _check_affine(name, t, c, "batch_norm")
    if training or running_mean is None or running_var is None:
        n = numel(input) // c if c else 0
        if training and n <= 1:
            raise ValueError(
                "Expected more than 1 value per channel when training, "
                f"got input size {list(input.shape)}"
            )
        x3 = input.reshape(input.shape[0], c, _positions(input))
        y, stats = _core.normalization(x3, None, float(eps), weight, bias)
        if training:
            if running_mean is not None:
                _running_update(running_mean, stats[0], momentum)
            if running_var is not None:
                _running_update(running_var, stats[1], momentum, n / max(n - 1, 1))
        return y.reshape(list(input.shape))
    shape = [1, c] + [1] * (input.ndim - 2)
    y = (input - running_mean.reshape(shape)) / pf.sqrt(running_var.reshape(shape) + eps)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _normalized_shape(normalized_shape: Union[int, Sequence[int]]) -> List[int]:
    if isinstance(normalized_shape, int):
        return [int(normalized_shape)]
    return [int(s) for s in normalized_shape]


def layer_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    normalized_shape: Union[int, Sequence[int]],
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-5,
) -> Tensor:
    """Normalizes over the trailing `normalized_shape` dimensions (biased variance).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> [round(v, 3) for v in F.layer_norm(pf.tensor([[1.0, 3.0]]), [2])[0].tolist()]
        [-1.0, 1.0]
    """
    ns = _normalized_shape(normalized_shape)
    k = len(ns)
    if k == 0 or input.ndim < k or list(input.shape[input.ndim - k :]) != ns:
        raise ValueError(
            f"Given normalized_shape={ns}, expected input with shape "
            f"[*, {', '.join(map(str, ns))}], "
            f"but got input of size {list(input.shape)}"
        )
    features = int(np.prod(ns))
    for name, t in (("weight", weight), ("bias", bias)):
        if t is not None and list(t.shape) != ns:
            raise ValueError(f"layer_norm: {name} should have shape {ns}, got {list(t.shape)}")
    rows = numel(input) // features if features else 0
    y, _ = _core.normalization(input.reshape(rows, features, 1), 1, float(eps), weight, bias)
    return y.reshape(list(input.shape))


def group_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    num_groups: int,
    weight: Optional[Tensor] = None,
    bias: Optional[Tensor] = None,
    eps: float = 1e-5,
) -> Tensor:
    """Group normalization: channels (dimension 1) split into `num_groups` groups, each
    normalized over its channels and all spatial positions.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.group_norm(pf.randn([2, 4, 3, 3]), 2).shape
        [2, 4, 3, 3]
    """
    if input.ndim < 2:
        raise ValueError(f"group_norm: expected at least 2D input, got {input.ndim}D")
    n, c = input.shape[0], input.shape[1]
    if num_groups <= 0 or c % num_groups != 0:
        raise ValueError(
            "Expected number of channels in input to be divisible by num_groups, but got "
            f"input of shape {list(input.shape)} and num_groups={num_groups}"
        )
    _check_affine("weight", weight, c, "group_norm")
    _check_affine("bias", bias, c, "group_norm")
    x3 = input.reshape(n, c, _positions(input))
    y, _ = _core.normalization(x3, int(num_groups), float(eps), weight, bias)
    return y.reshape(list(input.shape))


def rms_norm(
    input: Tensor,  # noqa: A002 - PyTorch's name
    normalized_shape: Union[int, Sequence[int]],
    weight: Optional[Tensor] = None,
    eps: Optional[float] = None,
) -> Tensor:
    """Root-mean-square normalization over the trailing `normalized_shape` dimensions:
    ``x / sqrt(mean(x**2) + eps) * weight`` (``eps=None``: the dtype's machine epsilon).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> [round(v, 3) for v in F.rms_norm(pf.tensor([[3.0, 4.0]]), [2])[0].tolist()]
        [0.849, 1.131]
    """
    ns = _normalized_shape(normalized_shape)
    k = len(ns)
    if k == 0 or input.ndim < k or list(input.shape[input.ndim - k :]) != ns:
        raise ValueError(
            f"rms_norm: expected input with trailing shape {ns}, got {list(input.shape)}"
        )
    if eps is None:
        eps = float(np.finfo(np.float64 if input.dtype == pf.float64 else np.float32).eps)
    dims = tuple(range(input.ndim - k, input.ndim))
    y = input / pf.sqrt((input * input).mean(dims, keepdim=True) + eps)
    return y if weight is None else y * weight
