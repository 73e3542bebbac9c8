"""Automatic differentiation: gradient mode control and backward passes.

Gradients are built as more graph nodes (so they stay lazy and fuse with the optimizer
update); `backward` accumulates them into the `.grad` of leaf tensors.

Example:
    >>> import pyflame as pf
    >>> w = pf.tensor([1.0, 2.0]).requires_grad_()
    >>> (w * w).sum().backward()
    >>> w.grad.tolist()
    [2.0, 4.0]
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence, TypeVar, Union

from . import _core
from ._core import Tensor

F = TypeVar("F", bound=Callable[..., Any])


class GradMode:
    """Thread-local switch for gradient recording.

    Example:
        >>> pf.autograd.GradMode.is_enabled()
        True
    """

    @staticmethod
    def is_enabled() -> bool:
        """True when new operations record gradient history on this thread."""
        return _core.is_grad_enabled()

    @staticmethod
    def set_enabled(enabled: bool) -> None:
        """Turns gradient recording on or off for this thread."""
        _core.set_grad_enabled(bool(enabled))


class _GradModeContext:
    """Context manager and decorator setting the grad mode, restoring it on exit."""

    def __init__(self, enabled: bool) -> None:
        self._enabled = enabled
        self._previous: list = []

    def __enter__(self) -> None:
        self._previous.append(_core.set_grad_enabled(self._enabled))

    def __exit__(self, *exc: object) -> None:
        _core.set_grad_enabled(self._previous.pop())

    def __call__(self, fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with _GradModeContext(self._enabled):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]


class no_grad(_GradModeContext):  # noqa: N801 - PyTorch's name
    """Disables gradient recording inside a `with` block or a decorated function.

    Example:
        >>> with pf.no_grad():
        ...     y = pf.ones([2]).requires_grad_() * 2
        >>> y.requires_grad
        False
    """

    def __init__(self) -> None:
        super().__init__(False)


class enable_grad(_GradModeContext):  # noqa: N801 - PyTorch's name
    """Enables gradient recording inside a `with` block or a decorated function.

    Example:
        >>> with pf.no_grad(), pf.enable_grad():
        ...     pf.autograd.GradMode.is_enabled()
        True
    """

    def __init__(self) -> None:
        super().__init__(True)


class set_grad_enabled(_GradModeContext):  # noqa: N801 - PyTorch's name
    """Sets gradient recording to `mode` inside a `with` block.

    Example:
        >>> with pf.autograd.set_grad_enabled(False):
        ...     pf.autograd.GradMode.is_enabled()
        False
    """

    def __init__(self, mode: bool) -> None:
        super().__init__(bool(mode))


def backward(
    tensors: Union[Tensor, Sequence[Tensor]],
    grad_tensors: Optional[Union[Tensor, Sequence[Optional[Tensor]]]] = None,
    retain_graph: bool = False,
) -> None:
    """Accumulates gradients of `tensors` into the leaves they depend on.

    Example:
        >>> x = pf.tensor([3.0]).requires_grad_()
        >>> pf.autograd.backward((x * x).sum())
        >>> x.grad.item()
        6.0
    """
    if isinstance(tensors, Tensor):
        tensors = [tensors]
    if grad_tensors is None or isinstance(grad_tensors, Tensor):
        grad_tensors = [grad_tensors] * len(tensors)
    if len(grad_tensors) != len(tensors):
        raise ValueError(
            f"got {len(grad_tensors)} gradients for {len(tensors)} tensors; pass one per tensor"
        )
    for i, (t, g) in enumerate(zip(tensors, grad_tensors)):
        keep = retain_graph or i < len(tensors) - 1
        t.backward(g, retain_graph=keep)


def grad(
    outputs: Union[Tensor, Sequence[Tensor]],
    inputs: Union[Tensor, Sequence[Tensor]],
    grad_outputs: Optional[Union[Tensor, Sequence[Optional[Tensor]]]] = None,
    retain_graph: bool = False,
) -> tuple:
    """Returns d(outputs)/d(inputs) without touching the inputs' `.grad`.

    Example:
        >>> x = pf.tensor([2.0]).requires_grad_()
        >>> (g,) = pf.autograd.grad((x ** 3).sum(), x)
        >>> g.item()
        12.0
    """
    single = isinstance(inputs, Tensor)
    inputs = [inputs] if single else list(inputs)
    saved = [x.grad for x in inputs]
    for x in inputs:
        x.grad = None
    try:
        backward(outputs, grad_outputs, retain_graph=retain_graph)
        result = tuple(x.grad for x in inputs)
    finally:
        for x, g in zip(inputs, saved):
            x.grad = g
    return result


__all__ = [
    "GradMode",
    "backward",
    "enable_grad",
    "grad",
    "no_grad",
    "set_grad_enabled",
]
