"""Declarative table of PyFlame forward ops and their NumPy references.

Each :class:`OpCase` says

* ``pf_fn``   - how to call the op on pyflame tensors (positional, one per input);
* ``np_fn``   - a NumPy reference, called on the *exact* input values
  (float inputs as float64 after rounding to the test dtype, ints/bools in
  their own dtype); it may return a list for multi-output ops;
* ``gens``    - one input generator per input, ``gen(rng, shape, dtype_name)``;
  the generator encodes the op's domain (positive for log/sqrt, non-zero
  divisors, bounded exponents, discrete values for comparisons ...);
* ``dtypes``  - the dtypes the op is tested with (names, see pf_testutil);
* ``shapes``  - named tuples of input shapes, driving the shape tests;
* ``out_dtype`` - maps the test dtype to the expected output dtype name
  (a list for multi-output ops, ``None`` = not checked);
* ``tol``     - per-output-dtype ``(rtol, atol)`` overrides of DEFAULT_TOL;
* ``exact``   - compare bit-exactly (data movement ops);
* ``noncontig`` - whether to run the op on non-contiguous pyflame views.

Semantics follow the PyFlame API reference, and PyTorch where it is silent.
"""

from dataclasses import dataclass, field
from typing import Callable, Dict, Optional, Sequence, Tuple

import numpy as np
import pf_testutil as U
import pyflame as pf

F = ("float32", "float64", "float16", "bfloat16")
F_I32 = F + ("int32",)
F_INT = F + ("int32", "int64")
INTS = ("int32", "int64")
BOOL = ("bool",)
MOVE = ("float32", "float64", "float16", "bfloat16", "int64", "int8", "bool")


# ---------------------------------------------------------------------------
# input generators: gen(rng, shape, dtype_name) -> np.ndarray
# ---------------------------------------------------------------------------


def _arr(x):
    return np.asarray(x)


def g_normal(rng, shape, dt):
    if dt == "bool":
        return _arr(rng.random(shape) < 0.5)
    if dt == "uint8":
        return _arr(rng.integers(0, 10, shape))
    if U.is_int(dt):
        return _arr(rng.integers(-5, 6, shape))
    return _arr(rng.standard_normal(shape) * 1.5)


def g_positive(rng, shape, dt):
    if U.is_int(dt):
        return _arr(rng.integers(1, 10, shape))
    return _arr(rng.uniform(0.1, 4.0, shape))


def g_nonzero(rng, shape, dt):
    sign = np.where(rng.random(shape) < 0.5, -1, 1)
    if U.is_int(dt):
        return _arr(sign * rng.integers(1, 6, shape))
    return _arr(sign * rng.uniform(0.5, 3.0, shape))


def g_bounded(lo, hi):
    def g(rng, shape, dt):
        if U.is_int(dt):
            return _arr(rng.integers(int(np.ceil(lo)), int(np.floor(hi)) + 1, shape))
        return _arr(rng.uniform(lo, hi, shape))

    return g


def g_discrete(rng, shape, dt):
    """Few distinct values (exact in every dtype) so that ties / equality happen."""
    if dt == "bool":
        return _arr(rng.random(shape) < 0.5)
    v = rng.integers(-2, 3, shape)
    if U.is_int(dt):
        return _arr(v)
    return _arr(v * 0.5)


def g_bool(rng, shape, dt):
    return _arr(rng.random(shape) < 0.5)


def g_pow_base(rng, shape, dt):
    if U.is_int(dt):
        return _arr(rng.integers(0, 4, shape))
    return _arr(rng.uniform(0.5, 2.5, shape))


def g_pow_exp(rng, shape, dt):
    if U.is_int(dt):
        return _arr(rng.integers(0, 4, shape))
    return _arr(rng.uniform(-2.0, 2.0, shape))


# ---------------------------------------------------------------------------
# output dtype rules
# ---------------------------------------------------------------------------


def same(dt):
    return dt


def to_bool(dt):
    return "bool"


def float_or_f32(dt):
    """Unary float math on an int tensor gives float32 (PyTorch)."""
    return dt if U.is_float(dt) else "float32"


def sum_dtype(dt):
    """sum of bool/int gives int64 (PyTorch)."""
    return dt if U.is_float(dt) else "int64"


def int64(dt):
    return "int64"


def unchecked(dt):
    return None


def float_same_int_unchecked(dt):
    # relu/abs of an int tensor: PyTorch keeps the int dtype but the API
    # reference's examples print floats; only values are checked for ints.
    return dt if U.is_float(dt) else None


# ---------------------------------------------------------------------------
# shape sets
# ---------------------------------------------------------------------------

UNARY_SHAPES = {
    "scalar": ((),),
    "empty": ((0, 3),),
    "1d": ((7,),),
    "3d": ((2, 3, 4),),
}
UNARY_NO_SCALAR = {k: v for k, v in UNARY_SHAPES.items() if k != "scalar"}
ND2_SHAPES = {"2d": ((3, 4),), "3d": ((2, 3, 4),), "empty": ((0, 3),)}

BINARY_SHAPES = {
    "scalar": ((), ()),
    "empty": ((0, 3), (0, 3)),
    "same3d": ((2, 3, 4), (2, 3, 4)),
    "bcast_3x1_4": ((3, 1), (4,)),
    "bcast_4_3x1": ((4,), (3, 1)),
    "bcast_0d_2d": ((), (2, 3)),
    "bcast_3d_2d": ((2, 1, 4), (3, 1)),
    "bcast_empty": ((0, 1), (3,)),
}

TERNARY_SHAPES = {
    "scalar": ((), (), ()),
    "same2d": ((3, 4), (3, 4), (3, 4)),
    "bcast": ((3, 1), (4,), (3, 4)),
    "bcast_cond": ((4,), (2, 3, 1), ()),
    "empty": ((0, 3), (0, 3), (3,)),
}

MATMUL_SHAPES = {
    "2d": ((3, 4), (4, 5)),
    "batched": ((2, 3, 4), (2, 4, 5)),
    "bcast_batch": ((2, 1, 3, 4), (3, 4, 5)),
    "3d_2d": ((2, 3, 4), (4, 5)),
    "1d_2d": ((4,), (4, 5)),
    "2d_1d": ((3, 4), (4,)),
    "empty_m": ((0, 4), (4, 5)),
    "empty_k": ((3, 0), (0, 5)),
}


# ---------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------


@dataclass
class OpCase:
    name: str
    pf_fn: Callable
    np_fn: Callable
    gens: Sequence[Callable]
    dtypes: Tuple[str, ...]
    shapes: Dict[str, tuple]
    kind: str
    out_dtype: Callable = same
    tol: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    exact: Optional[bool] = None
    noncontig: bool = True
    # shape key used by the dtype sweep (defaults to the last shape entry)
    dtype_shape: Optional[str] = None
    # per-input dtype override: f(test_dtype) -> tuple of input dtype names
    input_dtypes: Optional[Callable] = None

    @property
    def arity(self):
        return len(self.gens)

    def in_dtypes(self, dt):
        if self.input_dtypes is not None:
            return tuple(self.input_dtypes(dt))
        return (dt,) * self.arity

    def tolerance(self, out_dt):
        return self.tol.get(out_dt, (None, None))

    @property
    def sweep_shape(self):
        return self.dtype_shape or list(self.shapes)[-1]


OPS = []


def P(name):
    """Late-bound ``pf.<name>`` so a missing function fails only its own tests."""

    def call(*args, **kwargs):
        return getattr(pf, name)(*args, **kwargs)

    call.__name__ = name
    return call


def _add(**kw):
    case = OpCase(**kw)
    assert case.name not in {c.name for c in OPS}, case.name
    OPS.append(case)
    return case


def unary(name, pf_fn, np_fn, gen=g_normal, dtypes=F, out_dtype=same, shapes=UNARY_SHAPES, **kw):
    return _add(
        name=name,
        pf_fn=pf_fn,
        np_fn=np_fn,
        gens=(gen,),
        dtypes=dtypes,
        shapes=shapes,
        kind="unary",
        out_dtype=out_dtype,
        **kw,
    )


def binary(
    name,
    pf_fn,
    np_fn,
    gens=(g_normal, g_normal),
    dtypes=F_INT,
    out_dtype=same,
    shapes=BINARY_SHAPES,
    **kw,
):
    return _add(
        name=name,
        pf_fn=pf_fn,
        np_fn=np_fn,
        gens=tuple(gens),
        dtypes=dtypes,
        shapes=shapes,
        kind="binary",
        out_dtype=out_dtype,
        dtype_shape=kw.pop("dtype_shape", "bcast_3x1_4"),
        **kw,
    )


# Looser tolerances for ops composed of several roundings.
COMPOSITE_TOL = {"float16": (4e-3, 2e-3), "bfloat16": (3e-2, 2e-2), "float32": (2e-5, 2e-6)}

# --- arithmetic with Python scalars on either side -------------------------
unary("neg", lambda x: -x, np.negative, dtypes=F_INT)
unary("neg_fn", lambda x: pf.neg(x), np.negative, dtypes=F_INT)
unary("add_scalar", lambda x: x + 2.5, lambda a: a + 2.5)
unary("radd_scalar", lambda x: 2.5 + x, lambda a: 2.5 + a)
unary("add_int_scalar", lambda x: x + 3, lambda a: a + 3, dtypes=F_INT)
unary("sub_scalar", lambda x: x - 1.25, lambda a: a - 1.25)
unary("rsub_scalar", lambda x: 1.25 - x, lambda a: 1.25 - a)
unary("rsub_int_scalar", lambda x: 7 - x, lambda a: 7 - a, dtypes=F_INT)
unary("mul_scalar", lambda x: x * 3, lambda a: a * 3, dtypes=F_INT)
unary("rmul_scalar", lambda x: -2.0 * x, lambda a: -2.0 * a)
unary("div_scalar", lambda x: x / 4.0, lambda a: a / 4.0)
unary("rdiv_scalar", lambda x: 2.0 / x, lambda a: 2.0 / a, gen=g_nonzero)
unary(
    "div_int_by_int_scalar",
    lambda x: x / 2,
    lambda a: a / 2,
    dtypes=INTS,
    out_dtype=lambda dt: "float32",
)
unary("pow_scalar2", lambda x: x**2, lambda a: a**2, dtypes=F_INT)
unary("pow_scalar3", lambda x: x**3, lambda a: a**3, dtypes=F_INT)
unary("pow_scalar_half", lambda x: x**0.5, np.sqrt, gen=g_positive)
unary("rpow_scalar", lambda x: 2.0**x, lambda a: 2.0**a, gen=g_bounded(-3, 3))
unary(
    "gt_scalar",
    lambda x: x > 0.0,
    lambda a: a > 0.0,
    gen=g_discrete,
    dtypes=F_INT,
    out_dtype=to_bool,
)
unary(
    "eq_scalar", lambda x: x == 0.5, lambda a: a == 0.5, gen=g_discrete, dtypes=F, out_dtype=to_bool
)
unary(
    "rlt_scalar", lambda x: 0 < x, lambda a: 0 < a, gen=g_discrete, dtypes=F_INT, out_dtype=to_bool
)

# --- math -----------------------------------------------------------------
unary("abs", P("abs"), np.abs, dtypes=F_INT, out_dtype=float_same_int_unchecked)
unary("sqrt", P("sqrt"), np.sqrt, gen=g_positive, dtypes=F_I32, out_dtype=float_or_f32)
unary("exp", P("exp"), np.exp, gen=g_bounded(-3, 3), dtypes=F_I32, out_dtype=float_or_f32)
unary("log", P("log"), np.log, gen=g_positive, dtypes=F_I32, out_dtype=float_or_f32)
unary("sin", P("sin"), np.sin, dtypes=F_I32, out_dtype=float_or_f32)
unary("cos", P("cos"), np.cos, dtypes=F_I32, out_dtype=float_or_f32)
unary("clamp", lambda x: pf.clamp(x, min=-0.5, max=0.5), lambda a: np.clip(a, -0.5, 0.5))
unary("clamp_min", lambda x: pf.clamp(x, min=0.0), lambda a: np.maximum(a, 0.0))
unary("clamp_max", lambda x: pf.clamp(x, max=0.25), lambda a: np.minimum(a, 0.25))
unary("clamp_int", lambda x: pf.clamp(x, min=-2, max=3), lambda a: np.clip(a, -2, 3), dtypes=INTS)

# --- activations ---------------------------------------------------------
unary(
    "relu", P("relu"), lambda a: np.maximum(a, 0), dtypes=F_INT, out_dtype=float_same_int_unchecked
)
unary("sigmoid", P("sigmoid"), U.np_sigmoid, dtypes=F_I32, out_dtype=float_or_f32)
unary("tanh", P("tanh"), np.tanh, dtypes=F_I32, out_dtype=float_or_f32)
unary("gelu", P("gelu"), U.np_gelu, tol=COMPOSITE_TOL)
unary("gelu_tanh", lambda x: pf.gelu(x, approximate="tanh"), U.np_gelu_tanh, tol=COMPOSITE_TOL)
unary("silu", P("silu"), U.np_silu, tol=COMPOSITE_TOL)
unary("softmax", lambda x: pf.softmax(x), U.np_softmax, shapes=UNARY_NO_SCALAR, tol=COMPOSITE_TOL)
unary(
    "softmax_dim0",
    lambda x: pf.softmax(x, dim=0),
    lambda a: U.np_softmax(a, 0),
    shapes=UNARY_NO_SCALAR,
    tol=COMPOSITE_TOL,
)
unary(
    "log_softmax",
    lambda x: pf.log_softmax(x, dim=-1),
    U.np_log_softmax,
    shapes=UNARY_NO_SCALAR,
    tol=COMPOSITE_TOL,
)
unary(
    "log_softmax_dim1",
    lambda x: pf.log_softmax(x, dim=1),
    lambda a: U.np_log_softmax(a, 1),
    shapes=ND2_SHAPES,
    tol=COMPOSITE_TOL,
)

# --- logical (bool) --------------------------------------------------------
unary("invert_bool", lambda x: ~x, np.logical_not, gen=g_bool, dtypes=BOOL)
unary("logical_not", P("logical_not"), np.logical_not, gen=g_bool, dtypes=BOOL)

# --- binary arithmetic ----------------------------------------------------
binary("add", lambda a, b: a + b, np.add)
binary("sub", lambda a, b: a - b, np.subtract)
binary("mul", lambda a, b: a * b, np.multiply)
binary(
    "div", lambda a, b: a / b, np.true_divide, gens=(g_normal, g_nonzero), out_dtype=float_or_f32
)
binary(
    "pow", lambda a, b: a**b, np.power, gens=(g_pow_base, g_pow_exp), dtypes=F, tol=COMPOSITE_TOL
)
binary("pow_fn", P("pow"), np.power, gens=(g_pow_base, g_pow_exp), dtypes=F, tol=COMPOSITE_TOL)
binary("pow_int", lambda a, b: a**b, np.power, gens=(g_pow_base, g_pow_exp), dtypes=INTS)
binary("maximum", P("maximum"), np.maximum, gens=(g_discrete, g_normal))
binary("minimum", P("minimum"), np.minimum, gens=(g_discrete, g_normal))
# --- comparisons ----------------------------------------------------------
for _n, _f, _r in [
    ("eq", lambda a, b: a == b, np.equal),
    ("ne", lambda a, b: a != b, np.not_equal),
    ("lt", lambda a, b: a < b, np.less),
    ("le", lambda a, b: a <= b, np.less_equal),
    ("gt", lambda a, b: a > b, np.greater),
    ("ge", lambda a, b: a >= b, np.greater_equal),
]:
    binary(_n, _f, _r, gens=(g_discrete, g_discrete), out_dtype=to_bool)
# --- logical ----------------------------------------------------------------
binary("and_op", lambda a, b: a & b, np.logical_and, gens=(g_bool, g_bool), dtypes=BOOL)
binary("or_op", lambda a, b: a | b, np.logical_or, gens=(g_bool, g_bool), dtypes=BOOL)
binary("xor_op", lambda a, b: a ^ b, np.logical_xor, gens=(g_bool, g_bool), dtypes=BOOL)
binary("logical_and", P("logical_and"), np.logical_and, gens=(g_bool, g_bool), dtypes=BOOL)
binary("logical_or", P("logical_or"), np.logical_or, gens=(g_bool, g_bool), dtypes=BOOL)
binary("logical_xor", P("logical_xor"), np.logical_xor, gens=(g_bool, g_bool), dtypes=BOOL)

# --- matmul -----------------------------------------------------------------
MATMUL_TOL = {"float32": (1e-5, 1e-5), "float16": (4e-3, 4e-3), "bfloat16": (3e-2, 3e-2)}
binary(
    "matmul_op",
    lambda a, b: a @ b,
    np.matmul,
    shapes=MATMUL_SHAPES,
    dtypes=F_INT,
    tol=MATMUL_TOL,
    dtype_shape="bcast_batch",
)
binary(
    "matmul_fn",
    P("matmul"),
    np.matmul,
    shapes=MATMUL_SHAPES,
    dtypes=F,
    tol=MATMUL_TOL,
    dtype_shape="batched",
)

# --- where ------------------------------------------------------------------
_add(
    name="where",
    pf_fn=P("where"),
    np_fn=np.where,
    gens=(g_bool, g_normal, g_normal),
    dtypes=F_INT,
    shapes=TERNARY_SHAPES,
    kind="ternary",
    dtype_shape="bcast",
    input_dtypes=lambda dt: ("bool", dt, dt),
)
_add(
    name="where_scalar_other",
    pf_fn=lambda c, a: pf.where(c, a, 0.0),
    np_fn=lambda c, a: np.where(c, a, 0.0),
    gens=(g_bool, g_normal),
    dtypes=F,
    shapes={"same": ((3, 4), (3, 4)), "bcast": ((4,), (3, 1)), "scalar": ((), ())},
    kind="ternary",
    input_dtypes=lambda dt: ("bool", dt),
    dtype_shape="bcast",
)
_add(
    name="where_scalar_both",
    pf_fn=lambda c: pf.where(c, 1.5, -2.0),
    np_fn=lambda c: np.where(c, 1.5, -2.0),
    gens=(g_bool,),
    dtypes=("float32",),
    shapes={"1d": ((5,),), "2d": ((3, 4),)},
    kind="ternary",
    input_dtypes=lambda dt: ("bool",),
    out_dtype=lambda dt: "float32",
)

# --- reductions -------------------------------------------------------------
RED_DTYPES = F_INT + ("bool",)
SUM_TOL = {"float32": (1e-5, 1e-5), "float16": (4e-3, 4e-3), "bfloat16": (3e-2, 3e-2)}


def _np_sum(axis=None, keepdims=False):
    def f(a):
        if a.dtype.kind in "biu":
            return np.sum(a, axis=axis, keepdims=keepdims, dtype=np.int64)
        return np.sum(a, axis=axis, keepdims=keepdims)

    return f


def reduction(name, pf_fn, np_fn, shapes, dtypes=F_INT, out_dtype=same, gen=g_normal, **kw):
    return _add(
        name=name,
        pf_fn=pf_fn,
        np_fn=np_fn,
        gens=(gen,),
        dtypes=dtypes,
        shapes=shapes,
        kind="reduction",
        out_dtype=out_dtype,
        dtype_shape=kw.pop("dtype_shape", "3d"),
        **kw,
    )


RED_ALL = {"scalar": ((),), "empty": ((0, 3),), "1d": ((7,),), "3d": ((2, 3, 4),)}
RED_ALL_NONEMPTY = {"scalar": ((),), "1d": ((7,),), "3d": ((2, 3, 4),)}
RED_LAST = {"1d": ((7,),), "3d": ((2, 3, 4),), "empty_rows": ((0, 3),)}
RED_DIM0 = {"1d": ((7,),), "3d": ((2, 3, 4),), "empty_cols": ((2, 0),), "empty_rows": ((0, 3),)}
RED_DIM1 = {"2d": ((3, 4),), "3d": ((2, 3, 4),), "empty_rows": ((0, 3),)}
RED_TUPLE = {"3d": ((2, 3, 4),), "4d": ((2, 3, 2, 2),), "empty": ((2, 0, 3),)}

reduction(
    "sum_all",
    lambda x: x.sum(),
    _np_sum(),
    RED_ALL,
    dtypes=RED_DTYPES,
    out_dtype=sum_dtype,
    tol=SUM_TOL,
)
reduction("sum_fn_all", P("sum"), _np_sum(), RED_ALL, dtypes=F, tol=SUM_TOL)
reduction(
    "sum_dim0",
    lambda x: pf.sum(x, dim=0),
    _np_sum(0),
    RED_DIM0,
    dtypes=RED_DTYPES,
    out_dtype=sum_dtype,
    tol=SUM_TOL,
)
reduction(
    "sum_dim_neg_keepdim",
    lambda x: x.sum(dim=-1, keepdim=True),
    _np_sum(-1, True),
    {**RED_LAST, "empty_cols": ((2, 0),)},
    dtypes=RED_DTYPES,
    out_dtype=sum_dtype,
    tol=SUM_TOL,
)
reduction(
    "sum_tuple",
    lambda x: x.sum(dim=(0, 2)),
    _np_sum((0, 2)),
    RED_TUPLE,
    dtypes=RED_DTYPES,
    out_dtype=sum_dtype,
    tol=SUM_TOL,
)
reduction(
    "sum_tuple_keepdim",
    lambda x: pf.sum(x, dim=(0, -1), keepdim=True),
    _np_sum((0, -1), True),
    RED_TUPLE,
    dtypes=RED_DTYPES,
    out_dtype=sum_dtype,
    tol=SUM_TOL,
)
reduction(
    "mean_all",
    lambda x: x.mean(),
    np.mean,
    {"scalar": ((),), "1d": ((7,),), "3d": ((2, 3, 4),)},
    dtypes=F,
    tol=SUM_TOL,
)
reduction(
    "mean_dim1",
    lambda x: x.mean(dim=1),
    lambda a: np.mean(a, axis=1),
    {"2d": ((3, 4),), "3d": ((2, 3, 4),), "empty_rows": ((0, 3),)},
    dtypes=F,
    tol=SUM_TOL,
)
reduction(
    "mean_tuple_keepdim",
    lambda x: pf.mean(x, dim=(1, 2), keepdim=True),
    lambda a: np.mean(a, axis=(1, 2), keepdims=True),
    {"3d": ((2, 3, 4),), "4d": ((2, 3, 2, 2),)},
    dtypes=F,
    tol=SUM_TOL,
)
reduction("max_all", lambda x: x.max(), np.max, RED_ALL_NONEMPTY, exact=True)
reduction("min_all", P("min"), np.min, RED_ALL_NONEMPTY, exact=True)
reduction(
    "max_dim_values",
    lambda x: x.max(dim=-1).values,
    lambda a: np.max(a, axis=-1),
    RED_LAST,
    exact=True,
)
reduction(
    "max_dim_indices",
    lambda x: x.max(dim=-1).indices,
    lambda a: np.argmax(a, axis=-1),
    RED_LAST,
    out_dtype=int64,
)
reduction(
    "min_dim_values",
    lambda x: x.min(0).values,
    lambda a: np.min(a, axis=0),
    {"1d": ((7,),), "3d": ((2, 3, 4),), "empty_cols": ((3, 0),)},
    exact=True,
)
reduction(
    "min_dim_indices",
    lambda x: x.min(0).indices,
    lambda a: np.argmin(a, axis=0),
    {"1d": ((7,),), "3d": ((2, 3, 4),), "empty_cols": ((3, 0),)},
    out_dtype=int64,
)
reduction(
    "max_fn_dim_keepdim",
    lambda x: list(pf.max(x, 1, keepdim=True)),
    lambda a: [np.max(a, axis=1, keepdims=True), np.argmax(a, axis=1)[:, None]],
    {"2d": ((3, 4),)},
    out_dtype=lambda dt: [dt, "int64"],
    exact=True,
    dtype_shape="2d",
)
reduction(
    "min_fn_dim_unpack",
    lambda x: list(pf.min(x, dim=-1)),
    lambda a: [np.min(a, axis=-1), np.argmin(a, axis=-1)],
    {"2d": ((3, 4),), "3d": ((2, 3, 4),)},
    out_dtype=lambda dt: [dt, "int64"],
    exact=True,
)
reduction("argmax_all", lambda x: x.argmax(), np.argmax, RED_ALL_NONEMPTY, out_dtype=int64)
reduction("argmin_all", P("argmin"), np.argmin, RED_ALL_NONEMPTY, out_dtype=int64)
reduction(
    "argmax_dim",
    lambda x: pf.argmax(x, dim=1),
    lambda a: np.argmax(a, axis=1),
    {"2d": ((3, 4),), "3d": ((2, 3, 4),)},
    out_dtype=int64,
)
reduction(
    "argmin_dim_keepdim",
    lambda x: x.argmin(dim=-1, keepdim=True),
    lambda a: np.argmin(a, axis=-1)[..., None],
    {"1d": ((7,),), "3d": ((2, 3, 4),)},
    out_dtype=int64,
)
# ties: discrete values, first occurrence wins (NumPy and PyTorch agree)
reduction(
    "argmax_ties",
    lambda x: x.argmax(dim=-1),
    lambda a: np.argmax(a, axis=-1),
    {"2d": ((4, 6),), "3d": ((2, 3, 5),)},
    gen=g_discrete,
    out_dtype=int64,
)


# --- shape ops (pure data movement: bit-exact) -------------------------------


def shape_op(name, pf_fn, np_fn, shapes, dtypes=MOVE, **kw):
    return _add(
        name=name,
        pf_fn=pf_fn,
        np_fn=np_fn,
        gens=(g_normal,),
        dtypes=dtypes,
        shapes=shapes,
        kind="shape",
        exact=True,
        dtype_shape=kw.pop("dtype_shape", None),
        **kw,
    )


def _np_expand_ones(a):
    return np.broadcast_to(a, tuple(5 if d == 1 else d for d in a.shape))


shape_op("reshape_flat", lambda x: x.reshape([-1]), lambda a: a.reshape(-1), UNARY_SHAPES)
shape_op(
    "reshape_lastdim",
    lambda x: x.reshape([-1, x.shape[-1]]),
    lambda a: a.reshape(-1, a.shape[-1]),
    UNARY_NO_SCALAR,
)
shape_op(
    "reshape_fn",
    lambda x: pf.reshape(x, [x.shape[-1], -1]),
    lambda a: a.reshape(a.shape[-1], -1),
    UNARY_NO_SCALAR,
)
shape_op(
    "reshape_tuple",
    lambda x: x.reshape((2, -1, 2)),
    lambda a: a.reshape(2, -1, 2),
    {"3d": ((2, 3, 4),), "2d": ((4, 6),)},
)
shape_op(
    "view", lambda x: x.view([x.numel]), lambda a: a.reshape(-1), UNARY_SHAPES, noncontig=False
)
shape_op(
    "transpose",
    lambda x: x.transpose(0, -1),
    lambda a: np.swapaxes(a, 0, -1),
    {"1d": ((7,),), "2d": ((3, 4),), "3d": ((2, 3, 4),), "empty": ((0, 3),)},
)
shape_op(
    "transpose_fn",
    lambda x: pf.transpose(x, 1, 2),
    lambda a: np.swapaxes(a, 1, 2),
    {"3d": ((2, 3, 4),), "4d": ((2, 3, 1, 2),)},
)
shape_op("T", lambda x: x.T, lambda a: a.T, {"2d": ((3, 4),), "row": ((1, 5),), "empty": ((0, 3),)})
shape_op(
    "permute",
    lambda x: x.permute([2, 0, 1]),
    lambda a: np.transpose(a, (2, 0, 1)),
    {"3d": ((2, 3, 4),), "empty": ((2, 0, 3),)},
)
shape_op(
    "permute_varargs",
    lambda x: x.permute(1, 2, 0),
    lambda a: np.transpose(a, (1, 2, 0)),
    {"3d": ((2, 3, 4),)},
)
shape_op(
    "squeeze_all",
    lambda x: x.squeeze(),
    np.squeeze,
    {"scalar": ((),), "ones": ((1,),), "4d": ((1, 3, 1, 4),), "empty": ((0, 1),)},
)
shape_op(
    "squeeze_dim",
    lambda x: x.squeeze(0),
    lambda a: np.squeeze(a, 0),
    {"ones": ((1,),), "4d": ((1, 3, 1, 4),)},
)
shape_op(
    "squeeze_neg_dim",
    lambda x: pf.squeeze(x, -2),
    lambda a: np.squeeze(a, -2),
    {"4d": ((1, 3, 1, 4),)},
)
shape_op("squeeze_noop", lambda x: x.squeeze(1), lambda a: a, {"4d": ((1, 3, 1, 4),)})
shape_op("unsqueeze0", lambda x: x.unsqueeze(0), lambda a: np.expand_dims(a, 0), UNARY_SHAPES)
shape_op(
    "unsqueeze_neg1", lambda x: pf.unsqueeze(x, -1), lambda a: np.expand_dims(a, -1), UNARY_SHAPES
)
shape_op("unsqueeze_mid", lambda x: x.unsqueeze(1), lambda a: np.expand_dims(a, 1), UNARY_NO_SCALAR)
shape_op("flatten", lambda x: x.flatten(), lambda a: a.reshape(-1), UNARY_SHAPES)
shape_op(
    "flatten_start1",
    lambda x: x.flatten(1),
    lambda a: a.reshape(a.shape[0], int(np.prod(a.shape[1:]))),
    {"3d": ((2, 3, 4),), "empty": ((0, 3, 2),)},
)
shape_op(
    "expand_new_dim",
    lambda x: x.expand([2] + x.shape),
    lambda a: np.broadcast_to(a, (2,) + a.shape),
    UNARY_SHAPES,
)
shape_op(
    "expand_ones",
    lambda x: x.expand([5 if d == 1 else d for d in x.shape]),
    _np_expand_ones,
    {"1": ((1,),), "3x1x4": ((3, 1, 4),), "1x1": ((1, 1),)},
)
shape_op(
    "expand_minus1",
    lambda x: x.expand([-1, 4]),
    lambda a: np.broadcast_to(a, (a.shape[0], 4)),
    {"3x1": ((3, 1),), "empty": ((0, 1),)},
)
shape_op("contiguous", lambda x: x.contiguous(), lambda a: a, UNARY_SHAPES)
shape_op(
    "expand_then_add",
    lambda x: x.expand([3] + x.shape) + 0,
    lambda a: np.broadcast_to(a, (3,) + a.shape) + 0,
    {"2d": ((1, 4),)},
    dtypes=("float32", "int64"),
)


# --- combination ------------------------------------------------------------


def _np_split(a, size_or_sections, axis=0):
    n = a.shape[axis]
    if isinstance(size_or_sections, int):
        bounds = list(range(0, n, size_or_sections)) + [n]
    else:
        bounds = list(np.cumsum([0] + list(size_or_sections)))
    out = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        idx = [slice(None)] * a.ndim
        idx[axis] = slice(lo, hi)
        out.append(a[tuple(idx)])
    return out


def _np_chunk(a, chunks, axis=0):
    n = a.shape[axis]
    size = -(-n // chunks)
    return _np_split(a, size, axis)


def combine(name, pf_fn, np_fn, shapes, n_inputs, dtypes=MOVE, **kw):
    return _add(
        name=name,
        pf_fn=pf_fn,
        np_fn=np_fn,
        gens=(g_normal,) * n_inputs,
        dtypes=dtypes,
        shapes=shapes,
        kind="combine",
        exact=True,
        **kw,
    )


combine(
    "cat_dim0",
    lambda a, b: pf.cat([a, b]),
    lambda a, b: np.concatenate([a, b]),
    {
        "2d": ((2, 3), (4, 3)),
        "empty": ((0, 3), (2, 3)),
        "1d": ((3,), (2,)),
        "3d": ((1, 2, 3), (2, 2, 3)),
    },
    2,
)
combine(
    "cat_neg1",
    lambda a, b: pf.cat([a, b], dim=-1),
    lambda a, b: np.concatenate([a, b], axis=-1),
    {"2d": ((3, 2), (3, 5)), "3d": ((2, 2, 1), (2, 2, 3))},
    2,
)
combine(
    "cat_three_dim1",
    lambda a, b, c: pf.cat([a, b, c], dim=1),
    lambda a, b, c: np.concatenate([a, b, c], axis=1),
    {"2d": ((2, 1), (2, 2), (2, 3))},
    3,
)
combine("cat_single", lambda a: pf.cat([a], dim=0), lambda a: a.copy(), {"2d": ((2, 3),)}, 1)
combine(
    "stack_dim0",
    lambda a, b: pf.stack([a, b]),
    lambda a, b: np.stack([a, b]),
    {"2d": ((3, 4), (3, 4)), "scalar": ((), ()), "empty": ((0, 2), (0, 2))},
    2,
)
combine(
    "stack_last",
    lambda a, b, c: pf.stack([a, b, c], dim=-1),
    lambda a, b, c: np.stack([a, b, c], axis=-1),
    {"2d": ((3, 4),) * 3, "1d": ((5,),) * 3},
    3,
)
combine(
    "stack_mid",
    lambda a, b: pf.stack([a, b], dim=1),
    lambda a, b: np.stack([a, b], axis=1),
    {"2d": ((3, 4),) * 2},
    2,
)
combine(
    "split_int",
    lambda x: list(pf.split(x, 2)),
    lambda a: _np_split(a, 2),
    {"2d_uneven": ((5, 3),), "1d_even": ((4,),)},
    1,
)
combine(
    "split_sections_dim1",
    lambda x: list(pf.split(x, [1, 3], dim=1)),
    lambda a: _np_split(a, [1, 3], 1),
    {"2d": ((2, 4),), "3d": ((2, 4, 2),)},
    1,
)
combine(
    "split_neg_dim",
    lambda x: list(pf.split(x, 3, dim=-1)),
    lambda a: _np_split(a, 3, -1),
    {"2d": ((2, 7),)},
    1,
)
combine(
    "chunk",
    lambda x: list(pf.chunk(x, 3)),
    lambda a: _np_chunk(a, 3),
    {"uneven": ((5, 2),), "even": ((6,),)},
    1,
)
combine(
    "chunk_fewer",
    lambda x: list(pf.chunk(x, 4)),
    lambda a: _np_chunk(a, 4),
    {"6_into_4": ((6,),)},
    1,
)
combine(
    "chunk_dim1",
    lambda x: list(pf.chunk(x, 2, dim=1)),
    lambda a: _np_chunk(a, 2, 1),
    {"2d": ((2, 3),)},
    1,
)


OPS_BY_NAME = {c.name: c for c in OPS}
