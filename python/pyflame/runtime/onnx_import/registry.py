"""Operator converter registry: one function per ONNX operator, onto pyflame tensors.

A converter receives an :class:`OpContext`, the :class:`~pyflame.runtime.graph.Node` and the
input values (``pf.Tensor``, ``numpy.ndarray`` for constants, or ``None`` for an absent
optional input) and returns the output values. NumPy results mean "constant for the current
input shapes" (Shape, Size, folded shape arithmetic).

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> is_supported("Relu"), is_supported("NoSuchOp")
    (True, False)
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

import pyflame as pf

from ..errors import BackendError, UnsupportedOperatorError

Value = Union["pf.Tensor", np.ndarray, None]
Converter = Callable[["OpContext", Any, List[Value]], Any]

_CONVERTERS: Dict[str, Converter] = {}
_UNSUPPORTED_REASONS: Dict[str, str] = {}
#: ops whose result changes from run to run: never folded
NONDETERMINISTIC = {
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "Bernoulli",
}
FUSED_DOMAIN = "pyflame.rt"
#: the optimizer update rules of this domain are supported (operators in ops_misc)
TRAINING_DOMAIN = "ai.onnx.preview.training"
TRAINING_OPS = {"Adagrad", "Adam", "Momentum"}
#: supported operators of the preview domain (ops_attention)
PREVIEW_DOMAIN = "ai.onnx.preview"
PREVIEW_OPS = {"FlexAttention"}


def register(*op_types: str) -> Callable[[Converter], Converter]:
    """Decorator registering a converter for the given ONNX operator names.

    Example:
        >>> @register("MyIdentityForDocs")
        ... def _conv(ctx, node, xs):
        ...     return [xs[0]]
        >>> is_supported("MyIdentityForDocs")
        True
    """

    def deco(fn: Converter) -> Converter:
        for op in op_types:
            _CONVERTERS[op] = fn
        return fn

    return deco


def not_supported(reason: str, *op_types: str) -> None:
    """Records operators that are known and deliberately not supported, with the reason."""
    for op in op_types:
        _UNSUPPORTED_REASONS[op] = reason


def get_converter(op_type: str) -> Optional[Converter]:
    """The converter for `op_type`, or None."""
    return _CONVERTERS.get(op_type)


def is_supported(op_type: str) -> bool:
    """True when `op_type` has a converter."""
    _ensure_loaded()
    return op_type in _CONVERTERS


def supported_operators() -> List[str]:
    """Sorted names of all supported operators (ONNX and fused ones).

    Example:
        >>> "Conv" in supported_operators()
        True
    """
    _ensure_loaded()
    return sorted(_CONVERTERS)


def unsupported_reason(op_type: str) -> str:
    """Why `op_type` is not supported (a generic message for unknown ops)."""
    _ensure_loaded()
    return _UNSUPPORTED_REASONS.get(op_type, "no converter for this operator")


def _with_subgraph_nodes(nodes: Sequence[Any]) -> List[Any]:
    """`nodes` and, recursively, the nodes of their subgraph attributes (If/Loop/Scan)."""
    out: List[Any] = []
    for n in nodes:
        out.append(n)
        for v in getattr(n, "attrs", {}).values():
            sub = getattr(v, "nodes", None)
            if isinstance(sub, list) and hasattr(v, "initializers"):
                out.extend(_with_subgraph_nodes(sub))
    return out


def check_supported(nodes: Sequence[Any]) -> None:
    """Raises UnsupportedOperatorError listing ALL unsupported operators of `nodes` at once."""
    _ensure_loaded()
    bad: Dict[str, List[str]] = {}
    for n in _with_subgraph_nodes(nodes):
        domain = n.domain or ""
        key = n.op_type
        known = (
            domain in ("", "ai.onnx", FUSED_DOMAIN)
            or (domain == TRAINING_DOMAIN and key in TRAINING_OPS)
            or (domain == PREVIEW_DOMAIN and key in PREVIEW_OPS)
        )
        if not known or key not in _CONVERTERS:
            label = key if domain in ("", "ai.onnx") else f"{domain}::{key}"
            bad.setdefault(label, []).append(n.name or "?")
    if bad:
        details = [
            f"{op} (nodes: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}): "
            f"{unsupported_reason(op.split('::')[-1])}"
            for op, names in bad.items()
        ]
        raise UnsupportedOperatorError(sorted(bad), details)


def _ensure_loaded() -> None:
    from . import (  # noqa: F401
        ops_attention,
        ops_control,
        ops_elementwise,
        ops_host,
        ops_host2,
        ops_linear_attention,
        ops_misc,
        ops_nn,
        ops_quant,
        ops_reduce,
        ops_resize,
        ops_rnn,
        ops_tensor,
    )


class OpContext:
    """What a converter may use: the opset, conversions between values, and flags.

    Example:
        >>> ctx = OpContext(opset=17)
        >>> ctx.t(np.ones(2, np.float32)).shape
        [2]
    """

    def __init__(self, opset: int = 17) -> None:
        self.opset = opset
        self.data_dependent = False
        self._tensors: Dict[int, Any] = {}
        #: a ``pyflame._core.ThreadPool`` evaluating on a bounded number of threads, or None
        #: for the global pool
        self.pool: Any = None

    def evaluate(self, *tensors: Any) -> None:
        """Evaluates pyflame tensors in one pass, on `pool` when one is set."""
        if self.pool is not None:
            self.pool.eval(*tensors)
        else:
            pf._core.eval(*tensors)

    def t(self, v: Value) -> pf.Tensor:
        """The value as a pyflame tensor. Constants (NumPy arrays: initializers and folded
        values, which the runtime never modifies) are wrapped without copying and made
        read-only, so kernels may keep what they derive from them, such as packed
        convolution weights, from one run to the next."""
        if isinstance(v, np.ndarray):
            key = id(v)
            hit = self._tensors.get(key)
            if hit is not None and hit[0] is v:
                return hit[1]
            if v.dtype.kind not in "fiub" or v.dtype.name in ("uint16", "uint32", "uint64"):
                raise BackendError(f"dtype {v.dtype} is not supported by the pyflame executor")
            # (np.ascontiguousarray would turn a 0-d array into shape (1,))
            t = pf._core.constant_from_numpy(v if v.flags.c_contiguous else np.ascontiguousarray(v))
            self._tensors[key] = (v, t)
            return t
        if v is None:
            raise BackendError("a required input is missing")
        return v

    def retain_tensors(self, ids: Any) -> None:
        """Drops the cached tensor wrappers of arrays whose id is not in `ids` (and of the
        transposed copies made from them), so per-run temporaries do not accumulate."""
        keep = {k: e for k, e in self._tensors.items() if (k if k >= 0 else -k - 1) in ids}
        self._tensors = keep

    def t_transposed(self, v: np.ndarray) -> pf.Tensor:
        """A constant 2-D array's transpose as a contiguous pyflame tensor, made once per
        array (not on every run) and cached like :meth:`t`.

        Example:
            >>> ctx = OpContext()
            >>> w = np.arange(6, dtype=np.float32).reshape(2, 3)
            >>> ctx.t_transposed(w).shape, ctx.t_transposed(w) is ctx.t_transposed(w)
            ([3, 2], True)
        """
        key = -id(v) - 1  # negative keys: transposed copies (ids are non-negative)
        hit = self._tensors.get(key)
        if hit is not None and hit[0] is v:
            return hit[1]
        t = self.t(np.ascontiguousarray(v.T))
        self._tensors[key] = (v, t)
        return t

    def a(self, v: Value) -> np.ndarray:
        """The value as a NumPy array; a non-constant tensor is evaluated (data dependent)."""
        if isinstance(v, np.ndarray):
            return v
        if v is None:
            raise BackendError("a required input is missing")
        self.data_dependent = True
        self.evaluate(v)
        return np.asarray(v.numpy())

    def ints(self, v: Value) -> List[int]:
        """The value as a list of Python ints."""
        return [int(x) for x in np.asarray(self.a(v)).reshape(-1)]

    @staticmethod
    def is_const(v: Value) -> bool:
        """True for NumPy (constant) values."""
        return isinstance(v, np.ndarray)


def np_dtype_to_pf(dtype: Any) -> Any:
    """The pyflame dtype of a NumPy dtype.

    Example:
        >>> np_dtype_to_pf(np.int64) == pf.int64
        True
    """
    name = np.dtype(dtype).name
    if name == "bool":
        return pf.bool_
    try:
        return pf.dtype_from_name(name)
    except Exception as e:  # noqa: BLE001 - re-raised with a clear message
        raise BackendError(f"dtype {name} is not supported by the pyflame executor") from e


def pf_dtype_to_np(dtype: Any) -> np.dtype:
    """The NumPy dtype of a pyflame dtype."""
    name = pf.dtype_name(dtype)
    if name == "bfloat16":
        raise BackendError("bfloat16 has no NumPy dtype")
    return np.dtype("bool" if name == "bool" else name)


def shape_of(v: Value) -> List[int]:
    """Shape of a value as a list of ints."""
    if isinstance(v, np.ndarray):
        return list(v.shape)
    return list(v.shape)  # type: ignore[union-attr]


def np_dtype_of(v: Value) -> np.dtype:
    """NumPy dtype of a value."""
    if isinstance(v, np.ndarray):
        return v.dtype
    return pf_dtype_to_np(v.dtype)  # type: ignore[union-attr]
