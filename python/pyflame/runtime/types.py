"""Runtime value types: DType, TensorInfo, NodeArg, Tensor and from_numpy.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.types import DType, from_numpy
    >>> t = from_numpy(np.zeros((2, 3), dtype=np.float32))
    >>> t.shape, t.dtype, t.size_bytes
    ([2, 3], <DType.Float32: 0>, 24)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import List, Optional, Sequence, Union

import numpy as np

from .errors import InputError

Dim = Union[int, str, None]


class DType(enum.Enum):
    """Element types (values follow the spec's table order)."""

    Float32 = 0
    Float16 = 1
    BFloat16 = 2
    Float64 = 3
    Int64 = 4
    Int32 = 5
    Int16 = 6
    Int8 = 7
    UInt8 = 8
    Bool = 9

    @property
    def numpy(self) -> np.dtype:
        """The NumPy dtype (BFloat16 has none and raises).

        Example:
            >>> DType.Int64.numpy
            dtype('int64')
        """
        if self is DType.BFloat16:
            raise NotImplementedError("BFloat16 has no NumPy dtype")
        return np.dtype(_TO_NP[self])

    @property
    def onnx_type(self) -> str:
        """ONNX Runtime's type string, e.g. ``'tensor(float)'``.

        Example:
            >>> DType.Float32.onnx_type
            'tensor(float)'
        """
        return f"tensor({_ONNX_NAMES[self]})"

    @property
    def itemsize(self) -> int:
        """Bytes per element.

        Example:
            >>> DType.Float16.itemsize
            2
        """
        return 2 if self is DType.BFloat16 else self.numpy.itemsize

    @staticmethod
    def from_numpy(dtype: object) -> DType:
        """The DType of a NumPy dtype; raises InputError when there is none.

        Example:
            >>> DType.from_numpy(np.float32)
            <DType.Float32: 0>
        """
        dt = np.dtype(dtype)  # type: ignore[call-overload]
        for k, v in _TO_NP.items():
            if np.dtype(v) == dt:
                return k
        raise InputError(f"NumPy dtype {dt} has no runtime DType")


_TO_NP = {
    DType.Float32: np.float32,
    DType.Float16: np.float16,
    DType.Float64: np.float64,
    DType.Int64: np.int64,
    DType.Int32: np.int32,
    DType.Int16: np.int16,
    DType.Int8: np.int8,
    DType.UInt8: np.uint8,
    DType.Bool: np.bool_,
}
_ONNX_NAMES = {
    DType.Float32: "float",
    DType.Float16: "float16",
    DType.BFloat16: "bfloat16",
    DType.Float64: "double",
    DType.Int64: "int64",
    DType.Int32: "int32",
    DType.Int16: "int16",
    DType.Int8: "int8",
    DType.UInt8: "uint8",
    DType.Bool: "bool",
}


def onnx_type_string(dtype: np.dtype) -> str:
    """ONNX Runtime's type string for any NumPy dtype (also those without a DType).

    Example:
        >>> onnx_type_string(np.dtype(np.uint32))
        'tensor(uint32)'
    """
    dt = np.dtype(dtype)
    names = {"float32": "float", "float64": "double", "bool": "bool"}
    return f"tensor({names.get(dt.name, dt.name)})"


@dataclass
class TensorInfo:
    """Metadata of a tensor: name, dtype (a NumPy dtype) and shape.

    Dims are ints, ``None`` (unknown) or strings (symbolic names such as ``"batch"``).

    Example:
        >>> TensorInfo("x", np.dtype(np.float32), [None, 3]).is_dynamic()
        True
    """

    name: str = ""
    dtype: Optional[np.dtype] = None
    shape: Optional[List[Dim]] = None

    def is_dynamic(self) -> bool:
        """True when the rank or any dimension is unknown."""
        return self.shape is None or any(not isinstance(d, int) for d in self.shape)

    def is_static(self) -> bool:
        """True when every dimension is a known int."""
        return not self.is_dynamic()


class NodeArg:
    """ONNX Runtime's input/output descriptor (``name``, ``shape``, ``type``).

    Example:
        >>> a = NodeArg(TensorInfo("x", np.dtype(np.float32), ["N", 3]))
        >>> a.name, a.shape, a.type
        ('x', ['N', 3], 'tensor(float)')
    """

    def __init__(self, info: TensorInfo) -> None:
        self._info = info

    @property
    def name(self) -> str:
        """The tensor's name."""
        return self._info.name

    @property
    def shape(self) -> Optional[List[Dim]]:
        """Dims: ints, None for unknown, or symbolic names."""
        return None if self._info.shape is None else list(self._info.shape)

    @property
    def type(self) -> str:
        """Type string such as ``'tensor(float)'``."""
        if self._info.dtype is None:
            return "tensor(undefined)"
        return onnx_type_string(self._info.dtype)

    def __repr__(self) -> str:
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape!r})"


@dataclass
class Tensor:
    """A host tensor (NumPy-backed) as described by the spec's Tensor class.

    Example:
        >>> t = Tensor([2, 3], DType.Float32)
        >>> t.reshape([3, 2]).shape
        [3, 2]
    """

    shape_or_array: object = None
    dtype_arg: Optional[DType] = None
    _array: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        src = self.shape_or_array
        if isinstance(src, np.ndarray):
            self._array = src
        else:
            if src is None:
                raise InputError("Tensor needs a shape or a NumPy array")
            dt = (self.dtype_arg or DType.Float32).numpy
            self._array = np.zeros([int(d) for d in src], dtype=dt)  # type: ignore[union-attr]

    @property
    def shape(self) -> List[int]:
        """The dims as a list."""
        return list(self._array.shape)

    @property
    def dtype(self) -> DType:
        """The element type."""
        return DType.from_numpy(self._array.dtype)

    @property
    def ndim(self) -> int:
        """Number of dims."""
        return self._array.ndim

    @property
    def num_elements(self) -> int:
        """Number of elements."""
        return int(self._array.size)

    @property
    def size_bytes(self) -> int:
        """Size of the data in bytes."""
        return int(self._array.nbytes)

    @property
    def is_valid(self) -> bool:
        """True (a Tensor always holds data)."""
        return True

    @property
    def owns_data(self) -> bool:
        """True when the data is not a view of another array."""
        return self._array.base is None

    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (shared, not copied)."""
        return self._array

    def clone(self) -> Tensor:
        """A deep copy."""
        return Tensor(self._array.copy())

    def reshape(self, shape: Sequence[int]) -> Tensor:
        """A reshaped view."""
        return Tensor(self._array.reshape([int(d) for d in shape]))

    def zero(self) -> None:
        """Sets every element to zero in place."""
        self._array[...] = 0


def from_numpy(array: np.ndarray) -> Tensor:
    """Wraps a NumPy array as a runtime Tensor (no copy).

    Example:
        >>> from_numpy(np.ones(4, dtype=np.int64)).dtype
        <DType.Int64: 4>
    """
    if not isinstance(array, np.ndarray):
        raise InputError(f"from_numpy expects a numpy.ndarray, got {type(array).__name__}")
    DType.from_numpy(array.dtype)
    return Tensor(array)
