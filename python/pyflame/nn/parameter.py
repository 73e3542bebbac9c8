"""``Parameter``: a tensor that a :class:`~pyflame.nn.Module` registers as one of its parameters.

``Parameter`` is a real subclass of ``pf.Tensor``: it is a leaf tensor with
``requires_grad=True`` (unless asked otherwise) that modules recognize when it is assigned as an
attribute. Operations on a parameter return plain ``pf.Tensor`` objects, and rebinding its value
(``p.data = ...``) keeps it a ``Parameter``.

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> p = nn.Parameter(pf.zeros([2, 3]))
    >>> p.requires_grad, p.shape, isinstance(p, pf.Tensor)
    (True, [2, 3], True)
    >>> type(p * 2) is pf.Tensor
    True
"""

from __future__ import annotations

from typing import Any, Dict, Optional

import numpy as np

import pyflame as pf

from ._helpers import as_tensor

__all__ = ["Parameter", "is_parameter"]


class Parameter(pf.Tensor):
    """A tensor registered as a module parameter when assigned to a module attribute.

    Args:
        data: the initial value (a tensor, a NumPy array or nested lists); it is copied and
            materialized. ``None`` gives an empty float32 tensor.
        requires_grad: whether the parameter records gradients (default True).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> layer = nn.Module()
        >>> layer.w = nn.Parameter(pf.ones([3]))
        >>> [name for name, _ in layer.named_parameters()]
        ['w']
    """

    def __new__(cls, data: Any = None, requires_grad: bool = True) -> Parameter:
        base = pf.zeros([0]) if data is None else as_tensor(data)
        base = base.detach()
        base.eval()
        inst = super().__new__(cls, base)
        # pf.Tensor(x) is a (lazy) copy of x; materialize it so the parameter is a leaf.
        inst.eval()
        inst.requires_grad_(bool(requires_grad))
        return inst

    def __init__(self, data: Any = None, requires_grad: bool = True) -> None:
        pass

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()

    def __deepcopy__(self, memo: Dict[int, Any]) -> Parameter:
        if id(self) in memo:
            return memo[id(self)]
        out = Parameter(pf.tensor(np.array(self.numpy(), copy=True)), self.requires_grad)
        if self.grad is not None:
            out.grad = pf.tensor(np.array(self.grad.numpy(), copy=True))
        memo[id(self)] = out
        return out

    def __reduce_ex__(self, protocol: Any) -> Any:
        return (_rebuild_parameter, (np.array(self.numpy(), copy=True), self.requires_grad))


def _rebuild_parameter(array: np.ndarray, requires_grad: bool) -> Parameter:
    return Parameter(pf.tensor(array), requires_grad)


def is_parameter(value: Optional[Any]) -> bool:
    """True when `value` is a :class:`Parameter`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> from pyflame.nn.parameter import is_parameter
        >>> is_parameter(nn.Parameter(pf.zeros([1]))), is_parameter(pf.zeros([1]))
        (True, False)
    """
    return isinstance(value, Parameter)
