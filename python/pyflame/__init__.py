"""PyFlame: lazy tensors on a graph IR, fast parallel CPU kernels, and (soon) CSL code
generation for the Cerebras Wafer-Scale Engine.

Example:
    >>> import pyflame as pf
    >>> a = pf.randn([64, 32])
    >>> b = pf.relu(a @ pf.ones([32, 8]))  # nothing is computed yet
    >>> b.shape
    [64, 8]
    >>> float(b.sum().item()) >= 0.0        # evaluation happens here
    True
"""

from __future__ import annotations

import builtins as _builtins
from typing import Any, Optional, Union

import numpy as np

from . import _core, autograd
from ._core import (
    DType,
    Graph,
    MeshLayout,
    Node,
    PECoord,
    ShapeError,
    Tensor,
    TensorSpec,
    abs,
    add,
    amax,
    amin,
    arange,
    argmax,
    argmin,
    bfloat16,
    bitwise_and,
    bitwise_or,
    bitwise_xor,
    bool_,
    cat,
    ceil,
    chunk,
    clamp,
    cos,
    div,
    dtype_from_name,
    dtype_name,
    dtype_size,
    eq,
    erf,
    exp,
    eye,
    float16,
    float32,
    float64,
    floor,
    floor_divide,
    from_numpy,
    full,
    full_like,
    ge,
    gelu,
    get_graph,
    get_node,
    gt,
    int8,
    int16,
    int32,
    int64,
    is_lazy,
    le,
    linspace,
    log,
    log_softmax,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    lt,
    manual_seed,
    matmul,
    max,
    maximum,
    mean,
    min,
    minimum,
    mul,
    ne,
    neg,
    ones,
    ones_like,
    pow,
    prod,
    promote_types,
    rand,
    rand_like,
    randint,
    randn,
    randn_like,
    reciprocal,
    relu,
    remainder,
    round,
    sigmoid,
    sign,
    silu,
    sin,
    softmax,
    split,
    sqrt,
    stack,
    sub,
    sum,
    tanh,
    uint8,
    where,
    zeros,
    zeros_like,
)
from ._core import eval as _eval_all
from .autograd import enable_grad, no_grad, set_grad_enabled


def set_worker_spin_us(microseconds: int) -> None:
    """Sets how long idle worker threads keep spinning for work after an evaluation.

    Waking a sleeping thread costs tens of microseconds (more on virtual machines), which a
    model run in a loop would pay at every run; spinning workers take the next run's work at
    once, as ONNX Runtime's and OpenMP's threads do. 0 lets them sleep at once (saves CPU
    when evaluations are rare). The default is 5000 (or ``PYFLAME_WORKER_SPIN_US``); at most
    one second.

    Example:
        >>> import pyflame as pf
        >>> before = pf.get_worker_spin_us()
        >>> pf.set_worker_spin_us(0)
        >>> pf.get_worker_spin_us()
        0
        >>> pf.set_worker_spin_us(before)
    """
    if isinstance(microseconds, _builtins.bool) or not isinstance(microseconds, _builtins.int):
        raise TypeError(f"microseconds must be an int, got {type(microseconds).__name__}")
    if microseconds < 0:
        raise ValueError(f"microseconds must be >= 0, got {microseconds}")
    _core.set_worker_spin_us(_builtins.min(microseconds, 1_000_000))


def get_worker_spin_us() -> _builtins.int:
    """How long idle worker threads keep spinning after an evaluation, in microseconds.

    Example:
        >>> import pyflame as pf
        >>> pf.get_worker_spin_us() >= 0
        True
    """
    return _core.get_worker_spin_us()


__version__ = "1.0.0-alpha"
__version_info__ = (1, 0, 0, "alpha")
__release_status__ = "Pre-Release Alpha"

bool = _core.bool  # noqa: A001 - mirrors torch.bool
float = float32  # noqa: A001
double = float64
half = float16
long = int64
int = int32  # noqa: A001

# Subpackages use the names bound above, so they are imported after them.
from . import nn, optim  # noqa: E402

_NUMPY_DEFAULTS = {"f": float32, "i": int64, "u": int64, "b": bool_}


def tensor(
    data: Any, dtype: Optional[Union[DType, str]] = None, *, requires_grad: bool = False
) -> Tensor:
    """Creates a tensor from nested lists, a number, a NumPy array or another tensor.

    Python floats become float32, ints int64 and bools bool (PyTorch's defaults); NumPy
    arrays keep their dtype. The data is copied. ``requires_grad=True`` makes it a leaf
    that records operations for autograd (floating-point dtypes only).

    Example:
        >>> pf.tensor([[1, 2], [3, 4]]).dtype == pf.int64
        True
    """
    t = _tensor_from(data, dtype)
    if requires_grad:
        if not t.dtype.is_floating_point:
            raise TypeError(f"only floating-point tensors can require gradients, not {t.dtype}")
        t = t.detach().requires_grad_()
    return t


def _tensor_from(data: Any, dtype: Optional[Union[DType, str]]) -> Tensor:
    if isinstance(data, Tensor):
        dtype = data.dtype if dtype is None else dtype
        data = data.detach().numpy()  # copied below, like any array
    if isinstance(data, np.ndarray):
        arr = np.array(data, copy=True)
    else:
        arr = np.asarray(data)
        if arr.dtype == object:
            raise TypeError(f"cannot build a tensor from {type(data).__name__} of mixed objects")
        if arr.dtype.kind in _NUMPY_DEFAULTS and arr.dtype.kind != "u":
            default = _NUMPY_DEFAULTS[arr.dtype.kind]
            if dtype is None:
                arr = arr.astype(
                    {"f": np.float32, "i": np.int64, "b": np.bool_}[arr.dtype.kind], copy=False
                )
                dtype = default
    if arr.dtype.kind not in "fiub":
        raise TypeError(f"unsupported data type {arr.dtype} for a tensor")
    if arr.dtype == np.uint16 or arr.dtype == np.uint32 or arr.dtype == np.uint64:
        arr = arr.astype(np.int64)
    t = from_numpy(np.require(arr, requirements="C"))
    if dtype is not None and t.dtype != _as_dtype(dtype):
        t = t.astype(dtype)
    return t


def _as_dtype(d: Union[DType, str]) -> DType:
    return d if isinstance(d, DType) else dtype_from_name(str(d))


def eval(*tensors: Tensor) -> Union[Tensor, tuple]:  # noqa: A001 - the spec's name
    """Evaluates one or more tensors together; returns the tensor or a tuple of them.

    Example:
        >>> a, b = pf.eval(pf.ones([2]), pf.zeros([2]))
        >>> a.is_evaluated()
        True
    """
    return _eval_all(*tensors)


def print_graph(t: Tensor) -> None:
    """Prints the computation graph of `t`, one node per line.

    Example:
        >>> pf.print_graph(pf.relu(pf.ones([2]) + 1))  # doctest: +ELLIPSIS
        %0 = ...
    """
    print(get_graph(t).to_string(), end="")


def transpose(x: Tensor, dim0: int, dim1: int) -> Tensor:
    """Swaps two dimensions (a zero-copy view when evaluated).

    Example:
        >>> pf.transpose(pf.zeros([2, 3]), 0, 1).shape
        [3, 2]
    """
    return x.transpose(dim0, dim1)


def reshape(x: Tensor, shape: Any) -> Tensor:
    """Reshapes `x` (one dimension may be -1).

    Example:
        >>> pf.reshape(pf.zeros([2, 3]), [-1]).shape
        [6]
    """
    return x.reshape(shape)


def squeeze(x: Tensor, dim: Any = None) -> Tensor:
    """Removes size-1 dimensions.

    Example:
        >>> pf.squeeze(pf.zeros([1, 3, 1])).shape
        [3]
    """
    return x.squeeze(dim)


def unsqueeze(x: Tensor, dim: int) -> Tensor:
    """Inserts a size-1 dimension at `dim`.

    Example:
        >>> pf.unsqueeze(pf.zeros([3]), 0).shape
        [1, 3]
    """
    return x.unsqueeze(dim)


def permute(x: Tensor, dims: Any) -> Tensor:
    """Reorders dimensions.

    Example:
        >>> pf.permute(pf.zeros([2, 3, 4]), [2, 0, 1]).shape
        [4, 2, 3]
    """
    return x.permute(dims)


def flatten(x: Tensor, start_dim: int = 0, end_dim: int = -1) -> Tensor:
    """Flattens dimensions `start_dim..end_dim` into one.

    Example:
        >>> pf.flatten(pf.zeros([2, 3, 4]), 1).shape
        [2, 12]
    """
    return x.flatten(start_dim, end_dim)


def expand(x: Tensor, *sizes: Any) -> Tensor:
    """Broadcasts `x` to a larger shape without copying.

    Example:
        >>> pf.expand(pf.zeros([1, 3]), 4, 3).shape
        [4, 3]
    """
    return x.expand(*sizes)


__all__ = [name for name in dir() if not name.startswith("_")]
from .csl import CodeGenOptions, CodeGenResult, CSLCodeGenerator, compile_to_csl, estimate_memory  # noqa: E402, I001
