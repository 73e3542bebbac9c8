"""Activation modules (``ReLU``, ``GELU``, ``SiLU``, ``Sigmoid``, ``Tanh``, ``Softmax``,
``LogSoftmax``, ``LeakyReLU`` and more), thin wrappers over :mod:`pyflame.nn.functional`.

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> nn.LeakyReLU(0.1)(pf.tensor([-10.0, 1.0])).tolist()
    [-1.0, 1.0]
"""

from __future__ import annotations

from typing import Optional

import pyflame as pf

from . import functional as F
from .module import Module

__all__ = [
    "ReLU",
    "ReLU6",
    "LeakyReLU",
    "ELU",
    "SELU",
    "GELU",
    "SiLU",
    "Mish",
    "Sigmoid",
    "Tanh",
    "Softplus",
    "Softsign",
    "Hardtanh",
    "Hardsigmoid",
    "Hardswish",
    "LogSigmoid",
    "Threshold",
    "GLU",
    "Softmax",
    "Softmin",
    "LogSoftmax",
]

Tensor = pf.Tensor


class _Inplace(Module):
    def __init__(self, inplace: bool = False) -> None:
        super().__init__()
        self.inplace = inplace

    def extra_repr(self) -> str:
        return "inplace=True" if self.inplace else ""


class ReLU(_Inplace):
    """``max(x, 0)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.ReLU()(pf.tensor([-1.0, 1.0])).tolist()
        [0.0, 1.0]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        """Applies the activation."""
        return F.relu(input)


class ReLU6(_Inplace):
    """``min(max(x, 0), 6)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.ReLU6()(pf.tensor([9.0])).tolist()
        [6.0]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.relu6(input)


class SiLU(_Inplace):
    """``x * sigmoid(x)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.SiLU()(pf.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.silu(input)


class Mish(_Inplace):
    """``x * tanh(softplus(x))``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Mish()(pf.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.mish(input)


class SELU(_Inplace):
    """Scaled ELU.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.SELU()(pf.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.selu(input)


class Hardsigmoid(_Inplace):
    """``relu6(x + 3) / 6``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Hardsigmoid()(pf.tensor([0.0])).tolist()
        [0.5]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.hardsigmoid(input)


class Hardswish(_Inplace):
    """``x * relu6(x + 3) / 6``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Hardswish()(pf.tensor([3.0])).tolist()
        [3.0]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.hardswish(input)


class LeakyReLU(Module):
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.LeakyReLU()(pf.tensor([-100.0])).tolist()
        [-1.0]
    """

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False) -> None:
        super().__init__()
        self.negative_slope = negative_slope
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.leaky_relu(input, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}" + (", inplace=True" if self.inplace else "")


class ELU(Module):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.ELU()(pf.tensor([1.0])).tolist()
        [1.0]
    """

    def __init__(self, alpha: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        self.alpha = alpha
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.elu(input, self.alpha)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}" + (", inplace=True" if self.inplace else "")


class GELU(Module):
    """Gaussian error linear unit (``approximate="none"`` or ``"tanh"``).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.GELU(approximate="tanh")(pf.tensor([0.0])).tolist()
        [0.0]
    """

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        if approximate not in ("none", "tanh"):
            raise ValueError(
                f"approximate argument must be either none or tanh, got {approximate!r}"
            )
        self.approximate = approximate

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.gelu(input, approximate=self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Sigmoid(Module):
    """``1 / (1 + exp(-x))``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Sigmoid()(pf.tensor([0.0])).tolist()
        [0.5]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.sigmoid(input)


class Tanh(Module):
    """Hyperbolic tangent.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Tanh()(pf.tensor([0.0])).tolist()
        [0.0]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.tanh(input)


class Softsign(Module):
    """``x / (1 + |x|)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Softsign()(pf.tensor([1.0])).tolist()
        [0.5]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.softsign(input)


class LogSigmoid(Module):
    """``log(sigmoid(x))``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> round(nn.LogSigmoid()(pf.tensor([0.0])).item(), 4)
        -0.6931
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.logsigmoid(input)


class Softplus(Module):
    """``log(1 + exp(beta * x)) / beta`` (linear above `threshold`).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Softplus()(pf.tensor([30.0])).tolist()
        [30.0]
    """

    def __init__(self, beta: float = 1.0, threshold: float = 20.0) -> None:
        super().__init__()
        self.beta = beta
        self.threshold = threshold

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.softplus(input, self.beta, self.threshold)

    def extra_repr(self) -> str:
        return f"beta={self.beta}, threshold={self.threshold}"


class Hardtanh(Module):
    """Clamps to ``[min_val, max_val]``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Hardtanh()(pf.tensor([-5.0, 5.0])).tolist()
        [-1.0, 1.0]
    """

    def __init__(self, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> None:
        super().__init__()
        if max_val < min_val:
            raise ValueError("min_val cannot be greater than max_val")
        self.min_val = min_val
        self.max_val = max_val
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.hardtanh(input, self.min_val, self.max_val)

    def extra_repr(self) -> str:
        return f"min_val={self.min_val}, max_val={self.max_val}" + (
            ", inplace=True" if self.inplace else ""
        )


class Threshold(Module):
    """``x`` where ``x > threshold``, else `value`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Threshold(0.5, -1.0)(pf.tensor([0.0, 1.0])).tolist()
        [-1.0, 1.0]
    """

    def __init__(self, threshold: float, value: float, inplace: bool = False) -> None:
        super().__init__()
        self.threshold = threshold
        self.value = value
        self.inplace = inplace

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.threshold(input, self.threshold, self.value)

    def extra_repr(self) -> str:
        return f"threshold={self.threshold}, value={self.value}" + (
            ", inplace=True" if self.inplace else ""
        )


class GLU(Module):
    """Gated linear unit over `dim`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.GLU()(pf.ones([3, 4])).shape
        [3, 2]
    """

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the activation."""
        return F.glu(input, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class _SoftmaxBase(Module):
    def __init__(self, dim: Optional[int] = None) -> None:
        super().__init__()
        self.dim = dim

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class Softmax(_SoftmaxBase):
    """Softmax along `dim`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Softmax(dim=-1)(pf.zeros([1, 4])).tolist()
        [[0.25, 0.25, 0.25, 0.25]]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the softmax."""
        return F.softmax(input, self.dim)


class Softmin(_SoftmaxBase):
    """``softmax(-x)`` along `dim`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.Softmin(dim=-1)(pf.zeros([1, 2])).tolist()
        [[0.5, 0.5]]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the softmin."""
        return F.softmin(input, self.dim)


class LogSoftmax(_SoftmaxBase):
    """``log(softmax(x))`` along `dim`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.LogSoftmax(dim=1)(pf.zeros([1, 1])).tolist()
        [[0.0]]
    """

    def forward(self, input: Tensor) -> Tensor:  # noqa: A002
        """Applies the log-softmax."""
        return F.log_softmax(input, self.dim)
