"""Type stubs for ``pyflame._core``, the PyO3 extension module (crates/pyflame-py)."""

import builtins
from collections.abc import Iterator, Sequence
from typing import Any, Callable, NamedTuple, final, overload

import numpy as np
import numpy.typing as npt
from typing_extensions import Self, TypeAlias

# ---- helper aliases (stub-only; not present at runtime) ----

_Scalar: TypeAlias = builtins.bool | builtins.int | builtins.float | np.generic
# Anything `require_operand` accepts: a Tensor, a Python/NumPy scalar or a NumPy array.
_Operand: TypeAlias = Tensor | _Scalar | npt.NDArray[Any]
# A DType, a dtype name such as "float32", or a NumPy dtype / scalar type.
_DTypeLike: TypeAlias = DType | builtins.str | np.dtype[Any] | type
_ShapeLike: TypeAlias = builtins.int | Sequence[builtins.int]
_Dims: TypeAlias = builtins.int | Sequence[builtins.int] | None
_IntOrPair: TypeAlias = builtins.int | Sequence[builtins.int]

class _ValuesIndices(NamedTuple):
    """`(values, indices)` returned by `max`/`min` with a `dim` (runtime name `ValuesIndices`)."""

    values: Tensor
    indices: Tensor

# ---- exceptions ----

class ShapeError(ValueError):
    """Incompatible tensor shapes."""

# ---- dtypes and layouts ----

@final
class DType:
    """A tensor element type (`pyflame.float32`, ...)."""

    @property
    def name(self) -> builtins.str:
        """Canonical name, e.g. `"float32"`."""
    @property
    def itemsize(self) -> builtins.int:
        """Bytes per element."""
    @property
    def is_floating_point(self) -> builtins.bool:
        """True for floating point types."""
    def __eq__(self, other: object) -> builtins.bool: ...
    def __hash__(self) -> builtins.int: ...
    def __reduce__(self) -> tuple[Callable[[builtins.str], DType], tuple[builtins.str]]: ...

@final
class MeshLayout:
    """How a tensor is distributed over the PEs of a Cerebras wafer."""

    @staticmethod
    def single_pe() -> MeshLayout:
        """All data on one PE."""
    @staticmethod
    def row_partition(n: builtins.int) -> MeshLayout:
        """Rows split across `n` PEs."""
    @staticmethod
    def col_partition(n: builtins.int) -> MeshLayout:
        """Columns split across `n` PEs."""
    @staticmethod
    def grid(rows: builtins.int, cols: builtins.int) -> MeshLayout:
        """2-D tiles on a `rows x cols` PE grid."""
    @property
    def kind(self) -> builtins.str:
        """Layout kind: "single_pe", "row_partition", "col_partition" or "grid"."""
    @property
    def pe_rows(self) -> builtins.int:
        """PE rows used."""
    @property
    def pe_cols(self) -> builtins.int:
        """PE columns used."""
    @property
    def num_pes(self) -> builtins.int:
        """Total PEs used."""
    def __eq__(self, other: object) -> builtins.bool: ...
    def __hash__(self) -> builtins.int: ...

@final
class PECoord:
    """Coordinate of a processing element."""

    def __new__(cls, row: builtins.int, col: builtins.int) -> Self: ...
    @property
    def row(self) -> builtins.int:
        """row"""
    @property
    def col(self) -> builtins.int:
        """column"""
    def __eq__(self, other: object) -> builtins.bool: ...
    def __hash__(self) -> builtins.int: ...

float32: DType
float64: DType
float16: DType
bfloat16: DType
int64: DType
int32: DType
int16: DType
int8: DType
uint8: DType
bool: DType
bool_: DType

# ---- graph inspection ----

@final
class TensorSpec:
    """Shape, dtype and layout of a tensor."""

    def __new__(
        cls,
        shape: Sequence[builtins.int],
        dtype: DType,
        layout: MeshLayout | None = None,
    ) -> Self: ...
    @property
    def shape(self) -> list[builtins.int]:
        """dimensions"""
    @property
    def dtype(self) -> DType:
        """element type"""
    @property
    def layout(self) -> MeshLayout:
        """PE layout"""
    @property
    def numel(self) -> builtins.int:
        """Number of elements."""
    def __eq__(self, other: object) -> builtins.bool: ...

@final
class Node:
    """One operation of a graph."""

    @property
    def id(self) -> builtins.int:
        """Unique id."""
    @property
    def op_type(self) -> builtins.str:
        """Operation name, e.g. "matmul"."""
    @property
    def inputs(self) -> list[Node]:
        """Input nodes (empty for evaluated nodes, whose inputs were released)."""
    @property
    def output_shape(self) -> list[builtins.int]:
        """Output shape."""
    @property
    def output_dtype(self) -> DType:
        """Output dtype."""
    @property
    def layout(self) -> MeshLayout:
        """Output layout."""
    @property
    def spec(self) -> TensorSpec:
        """Output spec."""
    def is_evaluated(self) -> builtins.bool:
        """True once computed."""
    def __eq__(self, other: object) -> builtins.bool: ...
    def __hash__(self) -> builtins.int: ...

@final
class Graph:
    """A computation graph: the nodes a tensor depends on, in topological order."""

    @property
    def nodes(self) -> list[Node]:
        """Nodes in topological order (inputs first)."""
    @property
    def num_nodes(self) -> builtins.int:
        """Number of nodes."""
    @property
    def outputs(self) -> list[Node]:
        """Output nodes."""
    def to_string(self) -> builtins.str:
        """Text listing, one node per line."""
    def __len__(self) -> builtins.int: ...

@final
class ThreadPool:
    """A pool of `num_threads` worker threads (named `pyflame-pool-<i>`) that evaluates tensors."""

    def __new__(cls, num_threads: builtins.int) -> Self: ...
    @property
    def num_threads(self) -> builtins.int:
        """Number of worker threads."""
    def current_num_threads(self) -> builtins.int:
        """The thread count rayon reports inside the pool (what parallel kernels split over)."""
    def eval(self, *tensors: Tensor) -> None:
        """Evaluates the given tensors in one pass on this pool's threads (GIL released)."""

@final
class Template:
    """A graph recorded once and run again on new NumPy inputs without rebuilding it."""

    def __new__(cls, outputs: list[Tensor], placeholders: list[Tensor]) -> Self:
        """Records how the unevaluated `outputs` are computed from `placeholders` and
        realized constants (raises ValueError for random ops or nodes evaluated while the
        graph was built)."""
    def run(
        self,
        inputs: list[npt.NDArray[Any]],
        pool: ThreadPool | None = None,
        keep_awake: builtins.bool = True,
    ) -> list[npt.NDArray[Any]]:
        """The outputs for new placeholder values of the recorded shapes and dtypes
        (`keep_awake=False`: the workers sleep as soon as the run is done)."""
    def __len__(self) -> builtins.int: ...

# ---- Tensor ----

class Tensor:
    """A lazily evaluated n-dimensional array."""

    def __new__(cls, data: Any, dtype: _DTypeLike | None = None) -> Self:
        """Builds a tensor from data (same as `pyflame.tensor`)."""
    @property
    def shape(self) -> list[builtins.int]:
        """Dimensions as a list of ints."""
    @property
    def dtype(self) -> DType:
        """Element type."""
    @property
    def ndim(self) -> builtins.int:
        """Number of dimensions."""
    @property
    def numel(self) -> builtins.int:
        """Total number of elements."""
    @property
    def layout(self) -> MeshLayout:
        """Distribution over PEs."""
    @property
    def requires_grad(self) -> builtins.bool:
        """Whether gradients are tracked."""
    @requires_grad.setter
    def requires_grad(self, value: builtins.bool) -> None: ...
    def requires_grad_(self, requires_grad: builtins.bool = True) -> Self:
        """Sets `requires_grad` in place and returns the tensor."""
    @property
    def grad(self) -> Tensor | None:
        """The accumulated gradient, or None."""
    @grad.setter
    def grad(self, grad: Tensor | None) -> None: ...
    def detach(self) -> Tensor:
        """A tensor sharing this one's value but cut from the graph (no gradient history)."""
    @property
    def data(self) -> Tensor:
        """The tensor's value without gradient history; assigning replaces the value in place."""
    @data.setter
    def data(self, value: Tensor) -> None: ...
    def copy_(self, src: _Operand) -> Self:
        """Copies `src` (broadcast and cast to this tensor's shape and dtype) into this tensor."""
    def backward(
        self, gradient: _Operand | None = None, retain_graph: builtins.bool = False
    ) -> None:
        """Accumulates the gradient of this tensor into the `grad` of every leaf it depends on."""
    @property
    def is_leaf(self) -> builtins.bool:
        """True for tensors not produced by a differentiable op."""
    @property
    def device(self) -> builtins.str:
        """The device tensors are computed on."""
    @property
    def T(self) -> Tensor:
        """2-D transpose (reversed axes for other ranks)."""
    @overload
    def size(self, dim: None = None) -> tuple[builtins.int, ...]:
        """Size of one dimension, or the whole shape."""
    @overload
    def size(self, dim: builtins.int) -> builtins.int: ...
    def dim(self) -> builtins.int:
        """Number of dimensions."""
    def eval(self) -> Self:
        """Computes the tensor's value now; returns the tensor."""
    def is_evaluated(self) -> builtins.bool:
        """True once the value has been computed."""
    def numpy(self) -> npt.NDArray[Any]:
        """A NumPy copy of the values (evaluates first)."""
    def __array__(
        self, dtype: npt.DTypeLike | None = None, copy: builtins.bool | None = None
    ) -> npt.NDArray[Any]: ...
    def item(self) -> builtins.bool | builtins.int | builtins.float:
        """The single value as a Python number."""
    def tolist(self) -> Any:
        """Nested Python lists."""
    def __len__(self) -> builtins.int: ...
    def __bool__(self) -> builtins.bool: ...
    def __float__(self) -> builtins.float: ...
    def __int__(self) -> builtins.int: ...
    def __index__(self) -> builtins.int: ...
    def __hash__(self) -> builtins.int: ...
    def __iter__(self) -> Iterator[Tensor]: ...

    # arithmetic (unsupported operands give NotImplemented)
    def __add__(self, other: _Operand, /) -> Tensor: ...
    def __radd__(self, other: _Operand, /) -> Tensor: ...
    def __sub__(self, other: _Operand, /) -> Tensor: ...
    def __rsub__(self, other: _Operand, /) -> Tensor: ...
    def __mul__(self, other: _Operand, /) -> Tensor: ...
    def __rmul__(self, other: _Operand, /) -> Tensor: ...
    def __truediv__(self, other: _Operand, /) -> Tensor: ...
    def __rtruediv__(self, other: _Operand, /) -> Tensor: ...
    def __floordiv__(self, other: _Operand, /) -> Tensor: ...
    def __rfloordiv__(self, other: _Operand, /) -> Tensor: ...
    def __mod__(self, other: _Operand, /) -> Tensor: ...
    def __rmod__(self, other: _Operand, /) -> Tensor: ...
    def __pow__(self, other: _Operand, mod: None = None, /) -> Tensor: ...
    def __rpow__(self, other: _Operand, mod: None = None, /) -> Tensor: ...
    def __and__(self, other: _Operand, /) -> Tensor: ...
    def __rand__(self, other: _Operand, /) -> Tensor: ...
    def __or__(self, other: _Operand, /) -> Tensor: ...
    def __ror__(self, other: _Operand, /) -> Tensor: ...
    def __xor__(self, other: _Operand, /) -> Tensor: ...
    def __rxor__(self, other: _Operand, /) -> Tensor: ...
    def __matmul__(self, other: _Operand, /) -> Tensor: ...
    def __rmatmul__(self, other: _Operand, /) -> Tensor: ...
    def __neg__(self) -> Tensor: ...
    def __pos__(self) -> Tensor: ...
    def __abs__(self) -> Tensor: ...
    def __invert__(self) -> Tensor: ...
    def __eq__(self, other: _Operand, /) -> Tensor: ...  # type: ignore[override]
    def __ne__(self, other: _Operand, /) -> Tensor: ...  # type: ignore[override]
    def __lt__(self, other: _Operand, /) -> Tensor: ...
    def __le__(self, other: _Operand, /) -> Tensor: ...
    def __gt__(self, other: _Operand, /) -> Tensor: ...
    def __ge__(self, other: _Operand, /) -> Tensor: ...

    # indexing
    def __getitem__(self, key: Any, /) -> Tensor: ...
    def __setitem__(self, key: Any, value: _Operand, /) -> None: ...

    # reductions
    def sum(self, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor: ...
    def mean(self, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor: ...
    def prod(self, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor: ...
    @overload
    def max(self, dim: None = None, keepdim: builtins.bool = False) -> Tensor: ...
    @overload
    def max(self, dim: Tensor, keepdim: builtins.bool = False) -> Tensor: ...
    @overload
    def max(
        self, dim: builtins.int | Sequence[builtins.int], keepdim: builtins.bool = False
    ) -> _ValuesIndices: ...
    @overload
    def min(self, dim: None = None, keepdim: builtins.bool = False) -> Tensor: ...
    @overload
    def min(self, dim: Tensor, keepdim: builtins.bool = False) -> Tensor: ...
    @overload
    def min(
        self, dim: builtins.int | Sequence[builtins.int], keepdim: builtins.bool = False
    ) -> _ValuesIndices: ...
    def amax(self, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor: ...
    def amin(self, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor: ...
    def argmax(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor: ...
    def argmin(self, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor: ...
    def any(self, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor:
        """True where any element is non-zero (reduced like sum)."""
    def all(self, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor:
        """True where all elements are non-zero."""

    # shape
    def reshape(self, *shape: builtins.int | Sequence[builtins.int]) -> Tensor: ...
    def view(self, *shape: builtins.int | Sequence[builtins.int]) -> Tensor: ...
    def transpose(self, dim0: builtins.int, dim1: builtins.int) -> Tensor: ...
    def permute(self, *dims: builtins.int | Sequence[builtins.int]) -> Tensor: ...
    def squeeze(self, dim: _Dims = None) -> Tensor: ...
    def unsqueeze(self, dim: builtins.int) -> Tensor: ...
    def flatten(self, start_dim: builtins.int = 0, end_dim: builtins.int = -1) -> Tensor: ...
    def expand(self, *sizes: builtins.int | Sequence[builtins.int]) -> Tensor: ...
    def expand_as(self, other: Tensor) -> Tensor: ...
    def contiguous(self) -> Tensor: ...
    def astype(self, dtype: _DTypeLike) -> Tensor:
        """Converts to `dtype`."""
    def to(self, *args: _DTypeLike, dtype: _DTypeLike | None = None) -> Tensor:
        """`to(dtype)`; device strings other than "cpu" are rejected."""
    def float(self) -> Tensor: ...
    def double(self) -> Tensor: ...
    def half(self) -> Tensor: ...
    def bfloat16(self) -> Tensor: ...
    def int(self) -> Tensor: ...
    def long(self) -> Tensor: ...
    def bool(self) -> Tensor: ...

    # elementwise
    def relu(self) -> Tensor: ...
    def sigmoid(self) -> Tensor: ...
    def tanh(self) -> Tensor: ...
    def gelu(self, approximate: builtins.str = "none") -> Tensor: ...
    def silu(self) -> Tensor: ...
    def exp(self) -> Tensor: ...
    def log(self) -> Tensor: ...
    def sqrt(self) -> Tensor: ...
    def abs(self) -> Tensor: ...
    def sin(self) -> Tensor: ...
    def cos(self) -> Tensor: ...
    def neg(self) -> Tensor: ...
    def floor(self) -> Tensor: ...
    def ceil(self) -> Tensor: ...
    def round(self) -> Tensor: ...
    def sign(self) -> Tensor: ...
    def reciprocal(self) -> Tensor: ...
    def erf(self) -> Tensor: ...
    def logical_not(self) -> Tensor: ...
    def softmax(self, dim: builtins.int = -1) -> Tensor: ...
    def log_softmax(self, dim: builtins.int = -1) -> Tensor: ...
    def clamp(self, min: _Operand | None = None, max: _Operand | None = None) -> Tensor: ...
    def pow(self, exponent: _Operand) -> Tensor: ...
    def matmul(self, other: _Operand) -> Tensor: ...
    def split(self, split_size_or_sections: _IntOrPair, dim: builtins.int = 0) -> list[Tensor]: ...
    def chunk(self, chunks: builtins.int, dim: builtins.int = 0) -> list[Tensor]: ...

# ---- creation ----

def zeros(
    *shape: _ShapeLike, dtype: _DTypeLike | None = None, layout: MeshLayout | None = None
) -> Tensor:
    """Tensor of zeros."""

def ones(
    *shape: _ShapeLike, dtype: _DTypeLike | None = None, layout: MeshLayout | None = None
) -> Tensor:
    """Tensor of ones."""

def full(
    shape: _ShapeLike,
    fill_value: _Scalar,
    dtype: _DTypeLike | None = None,
    layout: MeshLayout | None = None,
) -> Tensor:
    """Tensor filled with `fill_value` (dtype inferred from the value when not given)."""

def randn(
    *shape: _ShapeLike, dtype: _DTypeLike | None = None, layout: MeshLayout | None = None
) -> Tensor:
    """Standard normal random tensor."""

def rand(
    *shape: _ShapeLike, dtype: _DTypeLike | None = None, layout: MeshLayout | None = None
) -> Tensor:
    """Uniform random tensor in [0, 1)."""

@overload
def randint(
    high: builtins.int,
    size: _ShapeLike,
    /,
    *,
    dtype: _DTypeLike | None = None,
    layout: MeshLayout | None = None,
) -> Tensor:
    """Random integers in [low, high): `randint(high, size)` or `randint(low, high, size)`."""

@overload
def randint(
    low: builtins.int,
    high: builtins.int,
    size: _ShapeLike,
    /,
    *,
    dtype: _DTypeLike | None = None,
    layout: MeshLayout | None = None,
) -> Tensor: ...
@overload
def randint(
    high: builtins.int,
    /,
    *,
    size: _ShapeLike,
    dtype: _DTypeLike | None = None,
    layout: MeshLayout | None = None,
) -> Tensor: ...
@overload
def randint(
    low: builtins.int,
    high: builtins.int,
    /,
    *,
    size: _ShapeLike,
    dtype: _DTypeLike | None = None,
    layout: MeshLayout | None = None,
) -> Tensor: ...
def arange(
    start: builtins.float,
    end: builtins.float | None = None,
    step: builtins.float = 1.0,
    dtype: _DTypeLike | None = None,
    layout: MeshLayout | None = None,
) -> Tensor:
    """`start, start + step, ...` below `end` (float32 unless `dtype` is given)."""

def linspace(
    start: builtins.float,
    end: builtins.float,
    steps: builtins.int,
    dtype: _DTypeLike | None = None,
    layout: MeshLayout | None = None,
) -> Tensor:
    """`steps` evenly spaced values from `start` to `end` inclusive."""

def eye(
    n: builtins.int,
    m: builtins.int | None = None,
    dtype: _DTypeLike | None = None,
    layout: MeshLayout | None = None,
) -> Tensor:
    """Identity matrix of `n` rows and `m` (default `n`) columns."""

def zeros_like(x: Tensor, dtype: _DTypeLike | None = None) -> Tensor:
    """Zeros shaped like `x`."""

def ones_like(x: Tensor, dtype: _DTypeLike | None = None) -> Tensor:
    """Ones shaped like `x`."""

def full_like(x: Tensor, fill_value: builtins.float, dtype: _DTypeLike | None = None) -> Tensor:
    """`fill_value` shaped like `x`."""

def rand_like(x: Tensor, dtype: _DTypeLike | None = None) -> Tensor:
    """Uniform random values shaped like `x`."""

def randn_like(x: Tensor, dtype: _DTypeLike | None = None) -> Tensor:
    """Normal random values shaped like `x`."""

def from_numpy(arr: npt.NDArray[Any], layout: MeshLayout | None = None) -> Tensor:
    """Wraps a NumPy array (sharing memory when it is C-contiguous and aligned)."""

def constant_from_numpy(arr: npt.NDArray[Any]) -> Tensor:
    """Wraps an array that never changes again (made read-only); kernels may cache layouts
    derived from it, such as packed convolution weights."""

# ---- elementwise unary ----

def relu(x: _Operand) -> Tensor:
    """max(x, 0)"""

def sigmoid(x: _Operand) -> Tensor:
    """1 / (1 + exp(-x))"""

def tanh(x: _Operand) -> Tensor:
    """Hyperbolic tangent."""

def silu(x: _Operand) -> Tensor:
    """x * sigmoid(x)"""

def abs(x: _Operand) -> Tensor:
    """Absolute value."""

def sqrt(x: _Operand) -> Tensor:
    """Square root."""

def exp(x: _Operand) -> Tensor:
    """Exponential."""

def log(x: _Operand) -> Tensor:
    """Natural logarithm."""

def sin(x: _Operand) -> Tensor:
    """Sine."""

def cos(x: _Operand) -> Tensor:
    """Cosine."""

def neg(x: _Operand) -> Tensor:
    """Negation."""

def floor(x: _Operand) -> Tensor:
    """Round toward -inf."""

def ceil(x: _Operand) -> Tensor:
    """Round toward +inf."""

def round(x: _Operand) -> Tensor:
    """Round half to even."""

def sign(x: _Operand) -> Tensor:
    """Sign (-1, 0, 1)."""

def reciprocal(x: _Operand) -> Tensor:
    """1 / x"""

def erf(x: _Operand) -> Tensor:
    """Error function."""

def logical_not(x: _Operand) -> Tensor:
    """Logical not (bool result)."""

def gelu(x: _Operand, approximate: builtins.str = "none") -> Tensor:
    """GELU (exact erf form, or `approximate="tanh"`)."""

def softmax(x: _Operand, dim: builtins.int = -1) -> Tensor:
    """Softmax along `dim`."""

def log_softmax(x: _Operand, dim: builtins.int = -1) -> Tensor:
    """Log-softmax along `dim`."""

# ---- elementwise binary ----

def add(a: _Operand, b: _Operand) -> Tensor:
    """a + b"""

def sub(a: _Operand, b: _Operand) -> Tensor:
    """a - b"""

def mul(a: _Operand, b: _Operand) -> Tensor:
    """a * b"""

def div(a: _Operand, b: _Operand) -> Tensor:
    """a / b (true division)"""

def floor_divide(a: _Operand, b: _Operand) -> Tensor:
    """a // b"""

def remainder(a: _Operand, b: _Operand) -> Tensor:
    """a % b (sign of b)"""

def pow(a: _Operand, b: _Operand) -> Tensor:
    """a ** b"""

def maximum(a: _Operand, b: _Operand) -> Tensor:
    """Elementwise maximum (NaN propagates)."""

def minimum(a: _Operand, b: _Operand) -> Tensor:
    """Elementwise minimum (NaN propagates)."""

def eq(a: _Operand, b: _Operand) -> Tensor:
    """a == b"""

def ne(a: _Operand, b: _Operand) -> Tensor:
    """a != b"""

def lt(a: _Operand, b: _Operand) -> Tensor:
    """a < b"""

def le(a: _Operand, b: _Operand) -> Tensor:
    """a <= b"""

def gt(a: _Operand, b: _Operand) -> Tensor:
    """a > b"""

def ge(a: _Operand, b: _Operand) -> Tensor:
    """a >= b"""

def bitwise_and(a: _Operand, b: _Operand) -> Tensor:
    """a & b"""

def bitwise_or(a: _Operand, b: _Operand) -> Tensor:
    """a | b"""

def bitwise_xor(a: _Operand, b: _Operand) -> Tensor:
    """a ^ b"""

def logical_and(a: _Operand, b: _Operand) -> Tensor:
    """Logical and (inputs treated as bool)."""

def logical_or(a: _Operand, b: _Operand) -> Tensor:
    """Logical or (inputs treated as bool)."""

def logical_xor(a: _Operand, b: _Operand) -> Tensor:
    """Logical xor (inputs treated as bool)."""

def matmul(a: _Operand, b: _Operand) -> Tensor:
    """Matrix product (NumPy semantics for 1-D operands, broadcast batch dimensions)."""

def where(cond: _Operand, a: _Operand, b: _Operand) -> Tensor:
    """`where(cond, a, b)`."""

def clamp(x: _Operand, min: _Operand | None = None, max: _Operand | None = None) -> Tensor:
    """Clamps to `[min, max]`."""

# ---- combination ----

def cat(tensors: Sequence[Tensor], dim: builtins.int = 0) -> Tensor:
    """Concatenates along `dim`."""

def stack(tensors: Sequence[Tensor], dim: builtins.int = 0) -> Tensor:
    """Stacks along a new `dim`."""

def split(x: _Operand, split_size_or_sections: _IntOrPair, dim: builtins.int = 0) -> list[Tensor]:
    """Splits along `dim` into pieces of a size or of the given sizes."""

def chunk(x: _Operand, chunks: builtins.int, dim: builtins.int = 0) -> list[Tensor]:
    """Splits into `chunks` pieces along `dim`."""

# ---- reductions ----

def sum(x: _Operand, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor:
    """`sum` over `dim` (all dimensions when None)."""

def mean(x: _Operand, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor:
    """`mean` over `dim` (all dimensions when None)."""

def prod(x: _Operand, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor:
    """`prod` over `dim` (all dimensions when None)."""

def amax(x: _Operand, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor:
    """`amax` over `dim` (all dimensions when None)."""

def amin(x: _Operand, dim: _Dims = None, keepdim: builtins.bool = False) -> Tensor:
    """`amin` over `dim` (all dimensions when None)."""

@overload
def max(x: _Operand, dim: None = None, keepdim: builtins.bool = False) -> Tensor:
    """Maximum: `max(x)` (0-d), `max(x, dim)` (values, indices) or `max(a, b)` (elementwise)."""

@overload
def max(x: _Operand, dim: Tensor, keepdim: builtins.bool = False) -> Tensor: ...
@overload
def max(
    x: _Operand, dim: builtins.int | Sequence[builtins.int], keepdim: builtins.bool = False
) -> _ValuesIndices: ...
@overload
def min(x: _Operand, dim: None = None, keepdim: builtins.bool = False) -> Tensor:
    """Minimum: `min(x)` (0-d), `min(x, dim)` (values, indices) or `min(a, b)` (elementwise)."""

@overload
def min(x: _Operand, dim: Tensor, keepdim: builtins.bool = False) -> Tensor: ...
@overload
def min(
    x: _Operand, dim: builtins.int | Sequence[builtins.int], keepdim: builtins.bool = False
) -> _ValuesIndices: ...
def argmax(x: _Operand, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
    """Index of the maximum (flattened when `dim` is None)."""

def argmin(x: _Operand, dim: builtins.int | None = None, keepdim: builtins.bool = False) -> Tensor:
    """Index of the minimum (flattened when `dim` is None)."""

# ---- neural-network ops ----

def conv2d(
    x: _Operand,
    weight: _Operand,
    bias: _Operand | None = None,
    stride: _IntOrPair | None = None,
    padding: _IntOrPair | None = None,
    dilation: _IntOrPair | None = None,
    groups: builtins.int = 1,
    residual: _Operand | None = None,
    clamp: tuple[builtins.float, builtins.float] | None = None,
) -> Tensor:
    """2-D convolution of `x` [N, C, H, W] with `weight` [O, C/groups, kh, kw], plus `bias` [O],
    plus `residual` (the output's shape), then `clamp` = (min, max); fused into the kernel
    when no gradient is needed."""

def max_pool2d(
    x: _Operand,
    kernel_size: _IntOrPair,
    stride: _IntOrPair | None = None,
    padding: _IntOrPair | None = None,
    dilation: _IntOrPair | None = None,
    ceil_mode: builtins.bool = False,
) -> Tensor:
    """2-D max pooling (stride defaults to the kernel size)."""

def avg_pool2d(
    x: _Operand,
    kernel_size: _IntOrPair,
    stride: _IntOrPair | None = None,
    padding: _IntOrPair | None = None,
    ceil_mode: builtins.bool = False,
    count_include_pad: builtins.bool = True,
) -> Tensor:
    """2-D average pooling (stride defaults to the kernel size)."""

def adaptive_avg_pool2d(x: _Operand, output_size: _IntOrPair) -> Tensor:
    """Adaptive average pooling to `output_size` (an int or a pair)."""

# ---- graph, evaluation, autograd mode, seeding ----

def get_graph(x: Tensor) -> Graph:
    """The graph of everything `x` depends on."""

def get_node(x: Tensor) -> Node:
    """The IR node behind `x`."""

def set_worker_spin_us(us: builtins.int) -> None:
    """Sets how long idle workers spin for work after an evaluation (microseconds)."""

def get_worker_spin_us() -> builtins.int:
    """How long idle workers spin for work after an evaluation (microseconds)."""

@overload
def eval() -> tuple[()]:
    """Evaluates all given tensors in one pass (shared work is done once)."""

@overload
def eval(tensor: Tensor, /) -> Tensor: ...
@overload
def eval(t0: Tensor, t1: Tensor, /, *tensors: Tensor) -> tuple[Tensor, ...]: ...
def normalization(
    x: _Operand,
    groups: builtins.int | None,
    eps: builtins.float,
    weight: _Operand | None = None,
    bias: _Operand | None = None,
) -> tuple[Tensor, Tensor]:
    """Normalizes `x` viewed as [N, C, S] by its own statistics (per sample and channel group
    when `groups` is given, per channel otherwise); returns the output and the [2, R]
    statistics (mean, biased variance)."""

def scaled_dot_product_attention(
    q: _Operand,
    k: _Operand,
    v: _Operand,
    mask: _Operand | None = None,
    is_causal: builtins.bool = False,
    scale: builtins.float | None = None,
    empty_rows_nan: builtins.bool = False,
) -> Tensor:
    """Fused softmax(q @ k^T * scale + mask) @ v; a bool mask marks the keys that take part.
    Rows with no visible key give zeros, or NaN with `empty_rows_nan` (like the unfused ops)."""

def adam_step(
    param: _Operand,
    grad: _Operand,
    state: list[Tensor],
    beta1: builtins.float,
    beta2: builtins.float,
    eps: builtins.float,
    step_size: builtins.float,
    bias_correction2_sqrt: builtins.float,
    amsgrad: builtins.bool = False,
) -> Tensor:
    """One Adam step in a single pass; returns [3 or 4, *param.shape]: the new param, then
    the new exp_avg, exp_avg_sq (and max_exp_avg_sq with `amsgrad`)."""

def is_lazy(x: Tensor) -> builtins.bool:
    """True when `x` has not been evaluated yet."""

def manual_seed(seed: builtins.int) -> None:
    """Seeds the global random generator."""

def set_grad_enabled(enabled: builtins.bool) -> builtins.bool:
    """Turns gradient recording on or off for this thread; returns the previous mode."""

def is_grad_enabled() -> builtins.bool:
    """True when new ops record gradient history on this thread."""

# ---- dtype helpers ----

def dtype_size(dtype: _DTypeLike) -> builtins.int:
    """Bytes per element of `dtype`."""

def dtype_name(dtype: _DTypeLike) -> builtins.str:
    """Name of `dtype`."""

def dtype_from_name(name: builtins.str) -> DType:
    """The dtype named `name`."""

def promote_types(a: _DTypeLike, b: _DTypeLike) -> DType:
    """PyTorch's type promotion of two dtypes."""

# ---- private helpers ----

def _schedule_cache_size() -> builtins.int:
    """Number of compiled schedules in the executor's cache."""

def _scalar_tensor(value: _Scalar, dtype: _DTypeLike | None) -> Tensor:
    """Scalar helper used by `pyflame.tensor` for 0-d Python numbers."""

# ---- CSL backend (private; wrapped by pyflame.csl) ----

def _csl_cache_key(graph: Graph, options_: dict[builtins.str, Any]) -> builtins.str:
    """Cache key of (graph, options) (leaves are realized first)."""

def _csl_generate(graph: Graph, options_: dict[builtins.str, Any]) -> dict[builtins.str, Any]:
    """Generates the program and returns a dict (sources, binaries, warnings, estimate, ...)."""

def _csl_simulate(graph: Graph, options_: dict[builtins.str, Any]) -> dict[builtins.str, Any]:
    """Simulates without rendering or validating (for programs that may not fit in SRAM)."""

def _csl_estimate_memory(graph: Graph, optimize: builtins.bool = True) -> dict[builtins.str, Any]:
    """Per-PE memory of the lowered graph: parameter, input, activation and peak bytes."""

def _csl_validate_dir(
    path: builtins.str,
) -> list[tuple[builtins.str, builtins.str, builtins.str, builtins.str]]:
    """Validates a program directory: list of (rule, severity, file, message)."""

def _csl_parse_error(text: builtins.str) -> builtins.str | None:
    """Parses CSL text; returns None on success or the error message."""
