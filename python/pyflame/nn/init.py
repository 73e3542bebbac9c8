"""Parameter initialization (``torch.nn.init`` semantics).

Every function fills its tensor argument in place (its value is rebound, like ``t.data = ...``,
without recording gradients) and returns it. Random draws use PyFlame's generator
(``pf.manual_seed``).

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> w = pf.zeros([64, 32])
    >>> _ = nn.init.kaiming_uniform_(w, nonlinearity="relu")
    >>> bound = (2.0 ** 0.5) * (3.0 / 32) ** 0.5
    >>> bool((w.abs() <= bound).all())
    True
"""

from __future__ import annotations

import math
from typing import Any, Optional, Tuple

import numpy as np

import pyflame as pf

from ._helpers import numel, set_data

__all__ = [
    "calculate_gain",
    "uniform_",
    "normal_",
    "trunc_normal_",
    "constant_",
    "zeros_",
    "ones_",
    "eye_",
    "dirac_",
    "xavier_uniform_",
    "xavier_normal_",
    "kaiming_uniform_",
    "kaiming_normal_",
    "orthogonal_",
]

Tensor = pf.Tensor


def _fill(tensor: Tensor, value: Tensor) -> Tensor:
    with pf.no_grad():
        set_data(tensor, value.astype(tensor.dtype))
    return tensor


def calculate_gain(nonlinearity: str, param: Optional[Any] = None) -> float:
    """The recommended gain for a nonlinearity (PyTorch's table).

    Example:
        >>> from pyflame import nn
        >>> nn.init.calculate_gain("relu") == 2 ** 0.5
        True
    """
    linear = [
        "linear",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
    ]
    if nonlinearity in linear or nonlinearity == "sigmoid":
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif not isinstance(param, bool) and isinstance(param, (int, float)):
            slope = float(param)
        else:
            raise ValueError(f"negative_slope {param} not a valid number")
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    raise ValueError(f"Unsupported nonlinearity {nonlinearity}")


def _calculate_fan_in_and_fan_out(tensor: Tensor) -> Tuple[int, int]:
    if tensor.ndim < 2:
        raise ValueError(
            "Fan in and fan out can not be computed for tensor with fewer than 2 dimensions"
        )
    receptive = 1
    for s in tensor.shape[2:]:
        receptive *= s
    return tensor.shape[1] * receptive, tensor.shape[0] * receptive


def _calculate_correct_fan(tensor: Tensor, mode: str) -> int:
    mode = mode.lower()
    if mode not in ("fan_in", "fan_out"):
        raise ValueError(f"Mode {mode} not supported, please use one of fan_in, fan_out")
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return fan_in if mode == "fan_in" else fan_out


def _rand(tensor: Tensor) -> Tensor:
    return pf.rand(
        list(tensor.shape), dtype=pf.float64 if tensor.dtype == pf.float64 else pf.float32
    )


def _randn(tensor: Tensor) -> Tensor:
    return pf.randn(
        list(tensor.shape), dtype=pf.float64 if tensor.dtype == pf.float64 else pf.float32
    )


def uniform_(tensor: Tensor, a: float = 0.0, b: float = 1.0, generator: Any = None) -> Tensor:
    """Fills with values drawn uniformly from ``[a, b)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> w = nn.init.uniform_(pf.zeros([100]), -2.0, -1.0)
        >>> bool(((w >= -2.0) & (w < -1.0)).all())
        True
    """
    return _fill(tensor, _rand(tensor) * (b - a) + a)


def normal_(tensor: Tensor, mean: float = 0.0, std: float = 1.0, generator: Any = None) -> Tensor:
    """Fills with values drawn from ``N(mean, std**2)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.init.normal_(pf.zeros([2, 2]), std=0.02).shape
        [2, 2]
    """
    return _fill(tensor, _randn(tensor) * std + mean)


def trunc_normal_(
    tensor: Tensor,
    mean: float = 0.0,
    std: float = 1.0,
    a: float = -2.0,
    b: float = 2.0,
    generator: Any = None,
) -> Tensor:
    """Fills with values from ``N(mean, std**2)`` truncated to ``[a, b]`` (out-of-range draws
    are redrawn).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> w = nn.init.trunc_normal_(pf.zeros([1000]), std=1.0, a=-0.5, b=0.5)
        >>> bool(((w >= -0.5) & (w <= 0.5)).all())
        True
    """
    if a >= b:
        raise ValueError(f"trunc_normal_: a ({a}) must be smaller than b ({b})")
    if std <= 0:
        return _fill(tensor, pf.full(list(tensor.shape), min(max(mean, a), b)))
    values = _randn(tensor) * std + mean
    values.eval()
    for _ in range(200):
        bad = (values < a) | (values > b)
        if not bool(bad.any().item()):
            break
        values = pf.where(bad, _randn(tensor) * std + mean, values)
        values.eval()
    else:  # pathological interval far in a tail: clamp what is left
        values = pf.clamp(values, a, b)
    return _fill(tensor, values)


def constant_(tensor: Tensor, val: float) -> Tensor:
    """Fills with `val`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.init.constant_(pf.zeros([2]), 0.5).tolist()
        [0.5, 0.5]
    """
    return _fill(tensor, pf.full(list(tensor.shape), float(val), dtype=tensor.dtype))


def zeros_(tensor: Tensor) -> Tensor:
    """Fills with zeros.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.init.zeros_(pf.ones([2])).tolist()
        [0.0, 0.0]
    """
    return _fill(tensor, pf.zeros(list(tensor.shape), dtype=tensor.dtype))


def ones_(tensor: Tensor) -> Tensor:
    """Fills with ones.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.init.ones_(pf.zeros([2])).tolist()
        [1.0, 1.0]
    """
    return _fill(tensor, pf.ones(list(tensor.shape), dtype=tensor.dtype))


def eye_(tensor: Tensor) -> Tensor:
    """Fills a 2-D tensor with the identity matrix.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.init.eye_(pf.zeros([2, 3])).tolist()
        [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]
    """
    if tensor.ndim != 2:
        raise ValueError("Only tensors with 2 dimensions are supported")
    return _fill(tensor, pf.tensor(np.eye(tensor.shape[0], tensor.shape[1])))


def dirac_(tensor: Tensor, groups: int = 1) -> Tensor:
    """Fills a 3-, 4- or 5-D convolution weight with the Dirac delta (identity convolution).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.init.dirac_(pf.zeros([2, 2, 3, 3]))[0, 0, 1, 1].item()
        1.0
    """
    if tensor.ndim not in (3, 4, 5):
        raise ValueError("Only tensors with 3, 4, or 5 dimensions are supported")
    shape = list(tensor.shape)
    if shape[0] % groups != 0:
        raise ValueError("dim 0 must be divisible by groups")
    out_per_group = shape[0] // groups
    min_dim = min(out_per_group, shape[1])
    arr = np.zeros(shape)
    centre = tuple(s // 2 for s in shape[2:])
    for g in range(groups):
        for d in range(min_dim):
            arr[(g * out_per_group + d, d) + centre] = 1.0
    return _fill(tensor, pf.tensor(arr))


def xavier_uniform_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Glorot uniform: ``U(-a, a)`` with ``a = gain * sqrt(6 / (fan_in + fan_out))``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> w = nn.init.xavier_uniform_(pf.zeros([30, 20]))
        >>> bool((w.abs() <= (6 / 50) ** 0.5).all())
        True
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    a = gain * math.sqrt(6.0 / float(fan_in + fan_out))
    return uniform_(tensor, -a, a)


def xavier_normal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Glorot normal: ``N(0, std**2)`` with ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.init.xavier_normal_(pf.zeros([30, 20])).shape
        [30, 20]
    """
    fan_in, fan_out = _calculate_fan_in_and_fan_out(tensor)
    return normal_(tensor, 0.0, gain * math.sqrt(2.0 / float(fan_in + fan_out)))


def kaiming_uniform_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> Tensor:
    """He uniform: ``U(-b, b)`` with ``b = gain * sqrt(3 / fan)`` (`a` is the leaky ReLU slope).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> w = nn.init.kaiming_uniform_(pf.zeros([8, 16]), a=5 ** 0.5)
        >>> bool((w.abs() <= 1 / 16 ** 0.5).all())
        True
    """
    fan = _calculate_correct_fan(tensor, mode)
    if fan == 0:
        return tensor
    bound = calculate_gain(nonlinearity, a) * math.sqrt(3.0 / fan)
    return uniform_(tensor, -bound, bound)


def kaiming_normal_(
    tensor: Tensor,
    a: float = 0.0,
    mode: str = "fan_in",
    nonlinearity: str = "leaky_relu",
    generator: Any = None,
) -> Tensor:
    """He normal: ``N(0, std**2)`` with ``std = gain / sqrt(fan)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.init.kaiming_normal_(pf.zeros([8, 16]), mode="fan_out", nonlinearity="relu").shape
        [8, 16]
    """
    fan = _calculate_correct_fan(tensor, mode)
    if fan == 0:
        return tensor
    return normal_(tensor, 0.0, calculate_gain(nonlinearity, a) / math.sqrt(fan))


def orthogonal_(tensor: Tensor, gain: float = 1.0, generator: Any = None) -> Tensor:
    """Fills with a (semi-)orthogonal matrix from the QR decomposition of a normal draw
    (dimensions after the first are flattened).

    Example:
        >>> import numpy as np
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> q = nn.init.orthogonal_(pf.zeros([4, 4])).numpy()
        >>> bool(np.allclose(q @ q.T, np.eye(4), atol=1e-5))
        True
    """
    if tensor.ndim < 2:
        raise ValueError("Only tensors with 2 or more dimensions are supported")
    if numel(tensor) == 0:
        return tensor
    rows = tensor.shape[0]
    cols = numel(tensor) // rows
    flat = pf.randn([rows, cols], dtype=pf.float64).numpy()
    if rows < cols:
        flat = flat.T
    q, r = np.linalg.qr(flat)
    q = q * np.sign(np.diag(r))
    if rows < cols:
        q = q.T
    return _fill(tensor, pf.tensor(q.reshape(tensor.shape) * gain))
