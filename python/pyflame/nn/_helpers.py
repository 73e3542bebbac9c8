"""Small helpers shared by the ``pyflame.nn`` modules (not part of the public API)."""

from __future__ import annotations

from typing import Any, Optional, Sequence, Tuple

import numpy as np

import pyflame as pf
from pyflame import _core

_FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")


def numel(t: pf.Tensor) -> int:
    """Number of elements of `t` (the product of its shape)."""
    n = 1
    for s in t.shape:
        n *= int(s)
    return n


def is_floating(t: pf.Tensor) -> bool:
    """True when `t` has a floating-point dtype."""
    return pf.dtype_name(t.dtype) in _FLOAT_DTYPES


def as_dtype(dtype: Any) -> Optional[pf.DType]:
    """Converts a dtype-like (``pf.DType``, a name such as ``"float32"`` or None)."""
    if dtype is None or isinstance(dtype, pf.DType):
        return dtype
    return pf.dtype_from_name(str(dtype))


def as_tensor(value: Any) -> pf.Tensor:
    """A tensor for `value` (tensors are returned as they are; arrays and lists are copied)."""
    if isinstance(value, pf.Tensor):
        return value
    return pf.tensor(np.asarray(value))


def set_data(t: pf.Tensor, value: Any) -> pf.Tensor:
    """Rebinds the value of `t` in place (like ``t.data = value`` in PyTorch) and returns `t`.

    The new value is detached and materialized first: the core keeps `t` a leaf (with its
    ``requires_grad`` flag and ``.grad``) only when the assigned value is already evaluated.
    """
    v = as_tensor(value).detach()
    if list(v.shape) != list(t.shape):
        v = v.expand(*t.shape).contiguous()
    v.eval()
    t.data = v
    return t


def ntuple(value: Any, n: int, name: str = "argument") -> Tuple[int, ...]:
    """`value` as a tuple of `n` ints (an int is repeated)."""
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return (int(value),) * n
    try:
        out = tuple(int(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of {n} ints, got {value!r}") from None
    if len(out) == 1 and n > 1:
        out = out * n
    if len(out) != n:
        raise ValueError(f"{name} must be an int or a tuple of {n} ints, got {value!r}")
    return out


def pair(value: Any, name: str = "argument") -> Tuple[int, int]:
    """`value` as a pair of ints."""
    return ntuple(value, 2, name)  # type: ignore[return-value]


def single(value: Any, name: str = "argument") -> Tuple[int]:
    """`value` as a 1-tuple of ints."""
    return ntuple(value, 1, name)  # type: ignore[return-value]


def has_kernel(name: str) -> bool:
    """True when the compiled core provides the kernel `name` (e.g. ``"conv2d"``)."""
    return hasattr(_core, name)


def kernel(name: str) -> Any:
    """The core kernel `name`, or NotImplementedError explaining that it is not built."""
    fn = getattr(_core, name, None)
    if fn is None:
        raise NotImplementedError(
            f"pyflame._core.{name} is not available in this build of PyFlame; "
            f"rebuild the extension with the {name} kernel to use this layer"
        )
    return fn


def normalize_dim(dim: int, ndim: int) -> int:
    """`dim` made non-negative for a tensor with `ndim` dimensions (IndexError if out of range)."""
    if not -max(ndim, 1) <= dim < max(ndim, 1):
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-max(ndim, 1)}, "
            f"{max(ndim, 1) - 1}], but got {dim})"
        )
    return dim % max(ndim, 1)


def shape_str(shape: Sequence[int]) -> str:
    """A shape printed like ``[2, 3]``."""
    return "[" + ", ".join(str(int(s)) for s in shape) + "]"
