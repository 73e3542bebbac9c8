"""DTypes: names, sizes, NumPy mapping, casts, and PyTorch-style type promotion.

The promotion expectations are written out literally (they are PyTorch's
``torch.result_type`` answers), not computed, so the table documents the rules.
"""

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest

# --------------------------------------------------------------------------
# dtype objects
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dt", U.ALL_DTYPES)
def test_dtype_size_and_name(dt):
    d = U.pfdt(dt)
    assert pf.dtype_size(d) == U.DTYPE_SIZE[dt]
    assert pf.dtype_name(d) == dt


def test_spec_examples():
    assert pf.dtype_size(pf.float32) == 4
    assert pf.dtype_size(pf.float16) == 2
    assert pf.dtype_name(pf.float32) == "float32"


def test_bool_aliases():
    assert pf.bool_ == pf.bool


def test_dtypes_are_distinct():
    ds = [U.pfdt(n) for n in U.ALL_DTYPES]
    for i, a in enumerate(ds):
        for j, b in enumerate(ds):
            assert (a == b) == (i == j), (U.ALL_DTYPES[i], U.ALL_DTYPES[j])
            assert (a != b) == (i != j)


def test_default_dtype_is_float32():
    assert pf.zeros([2]).dtype == pf.float32
    assert pf.randn([2]).dtype == pf.float32
    assert pf.arange(3).dtype == pf.float32
    assert pf.full([2], 1.5).dtype == pf.float32


@pytest.mark.parametrize("dt", [d for d in U.ALL_DTYPES if d != "bfloat16"])
def test_numpy_dtype_mapping(dt):
    x = pf.zeros([3], dtype=U.pfdt(dt))
    assert x.numpy().dtype == np.dtype(U.NP_DTYPE[dt])


# --------------------------------------------------------------------------
# tensor-tensor promotion (PyTorch rules)
# --------------------------------------------------------------------------

PROMOTION = [
    # same kind, different width
    ("int8", "int16", "int16"),
    ("int16", "int32", "int32"),
    ("int32", "int64", "int64"),
    ("int8", "int64", "int64"),
    ("float16", "float32", "float32"),
    ("bfloat16", "float32", "float32"),
    ("float32", "float64", "float64"),
    ("float16", "float64", "float64"),
    # float16 and bfloat16 meet in float32
    ("float16", "bfloat16", "float32"),
    # uint8 with signed ints
    ("uint8", "int8", "int16"),
    ("uint8", "int16", "int16"),
    ("uint8", "int32", "int32"),
    ("uint8", "int64", "int64"),
    # int with float: the float type wins, whatever its width
    ("int64", "float16", "float16"),
    ("int32", "bfloat16", "bfloat16"),
    ("int64", "float32", "float32"),
    ("int32", "float64", "float64"),
    ("uint8", "float16", "float16"),
    ("int8", "float32", "float32"),
    # bool with anything
    ("bool", "uint8", "uint8"),
    ("bool", "int8", "int8"),
    ("bool", "int32", "int32"),
    ("bool", "int64", "int64"),
    ("bool", "float16", "float16"),
    ("bool", "bfloat16", "bfloat16"),
    ("bool", "float32", "float32"),
    ("bool", "float64", "float64"),
]


def _ones(dt, shape=(2,)):
    return pf.ones(list(shape), dtype=U.pfdt(dt))


@pytest.mark.parametrize("a,b,expected", PROMOTION, ids=[f"{a}+{b}" for a, b, _ in PROMOTION])
def test_binary_promotion(a, b, expected):
    ta, tb = _ones(a), _ones(b)
    outs = [ta + tb, tb + ta, ta * tb, pf.maximum(ta, tb), pf.minimum(tb, ta)]
    if "bool" not in (a, b):  # PyTorch rejects '-' with a bool operand
        outs.append(tb - ta)
    for out in outs:
        assert pf.dtype_name(out.dtype) == expected
    np.testing.assert_array_equal(U.to_np(ta + tb).astype(np.float64), [2.0, 2.0])


@pytest.mark.parametrize("dt", U.ALL_DTYPES)
def test_same_dtype_keeps_dtype(dt):
    t = _ones(dt)
    if dt != "bool":
        assert (t + t).dtype == U.pfdt(dt)
        assert (t * t).dtype == U.pfdt(dt)
    assert pf.maximum(t, t).dtype == U.pfdt(dt)
    assert pf.where(pf.ones([2], dtype=pf.bool_), t, t).dtype == U.pfdt(dt)


def test_promotion_computes_in_wider_type():
    # int8 + int16 -> int16: must not overflow in int8
    r = pf.full([2], 100, dtype=pf.int8) + pf.full([2], 100, dtype=pf.int16)
    assert r.dtype == pf.int16 and r.tolist() == [200, 200]
    # uint8 + int8 -> int16
    r = pf.full([1], 200, dtype=pf.uint8) + pf.full([1], -100, dtype=pf.int8)
    assert r.dtype == pf.int16 and r.tolist() == [100]
    # int32 + float32 keeps the fraction
    r = pf.tensor([1, 2, 3], dtype=pf.int32) + pf.tensor([0.5, 0.5, 0.5])
    assert r.dtype == pf.float32 and r.tolist() == [1.5, 2.5, 3.5]
    # float16 + float32 computes in float32 precision
    r = pf.full([1], 1.0, dtype=pf.float16) + pf.full([1], 1e-4)
    assert r.dtype == pf.float32 and r.item() == pytest.approx(1.0001, rel=1e-6)


# --------------------------------------------------------------------------
# tensor-scalar promotion (Python scalars never widen within a category)
# --------------------------------------------------------------------------

SCALAR_PROMOTION = [
    ("int32", 1, "int32"),
    ("int64", 1, "int64"),
    ("int8", 1, "int8"),
    ("uint8", 1, "uint8"),
    ("int16", 1, "int16"),
    ("int32", 1.5, "float32"),
    ("int64", 1.5, "float32"),
    ("uint8", 0.5, "float32"),
    ("float16", 2.0, "float16"),
    ("bfloat16", 2.0, "bfloat16"),
    ("float64", 2.0, "float64"),
    ("float32", 2, "float32"),
    ("float16", 2, "float16"),
    ("bool", 1, "int64"),
    ("bool", 1.5, "float32"),
]


@pytest.mark.parametrize(
    "dt,scalar,expected",
    SCALAR_PROMOTION,
    ids=[f"{d}+{type(s).__name__}" for d, s, _ in SCALAR_PROMOTION],
)
def test_scalar_promotion(dt, scalar, expected):
    t = _ones(dt)
    outs = [t + scalar, scalar + t, t * scalar, scalar * t]
    if dt != "bool":  # PyTorch rejects '-' with a bool operand
        outs += [t - scalar, scalar - t]
    for out in outs:
        assert pf.dtype_name(out.dtype) == expected
    np.testing.assert_allclose(U.to_np(t + scalar).astype(np.float64), [1 + scalar] * 2)


def test_scalar_values_int_tensor_plus_float():
    r = pf.tensor([1, 2], dtype=pf.int32) + 1.5
    assert r.dtype == pf.float32 and r.tolist() == [2.5, 3.5]
    r = 0.5 * pf.tensor([3, 4])
    assert r.dtype == pf.float32 and r.tolist() == [1.5, 2.0]


def test_zero_dim_tensor_participates_like_scalar():
    # 0-d tensors built with from_numpy so that this checks only promotion.
    i64_0d = pf.from_numpy(np.array(5, dtype=np.int64))
    f32_0d = pf.from_numpy(np.array(2.0, dtype=np.float32))
    assert i64_0d.shape == [] and f32_0d.shape == []
    # PyTorch: a 0-d tensor of the same category does not widen a dimensioned one
    r = _ones("int32") + i64_0d
    assert r.dtype == pf.int32
    assert r.tolist() == [6, 6]
    r = _ones("float16") + f32_0d
    assert r.dtype == pf.float16
    # ...but two 0-d tensors promote normally
    r = pf.from_numpy(np.array(1, dtype=np.int32)) + i64_0d
    assert r.dtype == pf.int64


# --------------------------------------------------------------------------
# division, pow, comparison, unary math
# --------------------------------------------------------------------------

DIV = [
    ("int32", "int32", "float32"),
    ("int64", "int64", "float32"),
    ("uint8", "int8", "float32"),
    ("bool", "int32", "float32"),
    ("int64", "float16", "float16"),
    ("int32", "float64", "float64"),
    ("float16", "float16", "float16"),
    ("bfloat16", "bfloat16", "bfloat16"),
]


@pytest.mark.parametrize("a,b,expected", DIV, ids=[f"{a}/{b}" for a, b, _ in DIV])
def test_true_division_promotion(a, b, expected):
    ta = pf.full([2], 3, dtype=U.pfdt(a)) if a != "bool" else _ones(a)
    tb = pf.full([2], 2, dtype=U.pfdt(b))
    r = ta / tb
    assert pf.dtype_name(r.dtype) == expected
    num = 3 if a != "bool" else 1
    np.testing.assert_allclose(U.to_np(r).astype(np.float64), [num / 2] * 2)


def test_int_division_by_scalar():
    r = pf.tensor([1, 2, 3]) / 2
    assert r.dtype == pf.float32
    assert r.tolist() == [0.5, 1.0, 1.5]
    r = 1 / pf.tensor([2, 4], dtype=pf.int32)
    assert r.dtype == pf.float32 and r.tolist() == [0.5, 0.25]


def test_pow_promotion():
    i = pf.tensor([1, 2, 3])
    assert (i**2).dtype == pf.int64 and (i**2).tolist() == [1, 4, 9]
    assert (i**0.5).dtype == pf.float32
    assert (_ones("float16") ** 2).dtype == pf.float16
    assert (_ones("int32") ** _ones("float64")).dtype == pf.float64


@pytest.mark.parametrize(
    "a,b",
    [
        ("int32", "float32"),
        ("float16", "float64"),
        ("uint8", "int8"),
        ("bool", "int64"),
        ("bfloat16", "float16"),
    ],
    ids=str,
)
def test_comparison_gives_bool(a, b):
    ta = pf.tensor([1, 2, 3], dtype=U.pfdt(a)) if a != "bool" else pf.tensor([True, True, False])
    tb = pf.tensor([1, 1, 4], dtype=U.pfdt(b))
    an = np.array([1, 2, 3]) if a != "bool" else np.array([1, 1, 0])
    bn = np.array([1, 1, 4])
    for op in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__"):
        r = getattr(ta, op)(tb)
        assert r.dtype == pf.bool_, op
        assert r.tolist() == getattr(an, op)(bn).tolist(), op


def test_where_promotion():
    c = pf.tensor([True, False])
    assert pf.where(c, _ones("int32"), _ones("float32")).dtype == pf.float32
    assert pf.where(c, _ones("int32"), _ones("int64")).dtype == pf.int64
    r = pf.where(c, pf.tensor([1, 2], dtype=pf.int32), 0.5)
    assert r.dtype == pf.float32 and r.tolist() == [1.0, 0.5]
    r = pf.where(c, _ones("float16"), 0.0)
    assert r.dtype == pf.float16


@pytest.mark.parametrize("dt", ["int64", "int32", "int8", "uint8", "bool"])
@pytest.mark.parametrize("fn", ["sqrt", "exp", "log", "sin", "cos", "sigmoid", "tanh"])
def test_unary_float_math_on_int_gives_float32(fn, dt):
    x = pf.tensor([1, 2, 1], dtype=U.pfdt(dt)) if dt != "bool" else pf.tensor([True, True, True])
    r = getattr(pf, fn)(x)
    assert r.dtype == pf.float32
    ref = {
        "sqrt": np.sqrt,
        "exp": np.exp,
        "log": np.log,
        "sin": np.sin,
        "cos": np.cos,
        "sigmoid": U.np_sigmoid,
        "tanh": np.tanh,
    }[fn](np.array([1.0, 2.0, 1.0] if dt != "bool" else [1.0] * 3))
    np.testing.assert_allclose(r.numpy(), ref, rtol=1e-6)


def test_spec_int_tensor_math_examples():
    np.testing.assert_allclose(pf.sqrt(pf.tensor([1, 4, 9])).numpy(), [1.0, 2.0, 3.0])
    np.testing.assert_allclose(
        pf.exp(pf.tensor([0, 1, 2])).numpy(), np.exp([0.0, 1.0, 2.0]), rtol=1e-6
    )
    np.testing.assert_allclose(pf.relu(pf.tensor([-1, 0, 1, 2])).numpy(), [0, 0, 1, 2])
    np.testing.assert_allclose(pf.abs(pf.tensor([-1, -2, 3])).numpy(), [1, 2, 3])
    np.testing.assert_allclose(pf.sigmoid(pf.tensor([0])).numpy(), [0.5])
    np.testing.assert_allclose(pf.tanh(pf.tensor([0])).numpy(), [0.0])


def test_neg_of_int_stays_int():
    r = -pf.tensor([1, -2], dtype=pf.int32)
    assert r.dtype == pf.int32 and r.tolist() == [-1, 2]


# --------------------------------------------------------------------------
# casts: astype / to
# --------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["astype", "to"])
@pytest.mark.parametrize("dst", U.ALL_DTYPES)
def test_cast_small_ints_roundtrip(method, dst):
    """Values 0..5 are exact in every dtype (bool: 0/1)."""
    src = (
        np.array([0, 1, 2, 3, 4, 5], np.int64)
        if dst != "bool"
        else np.array([0, 1, 0, 1], np.int64)
    )
    x = pf.from_numpy(src)
    y = getattr(x, method)(U.pfdt(dst))
    assert y.dtype == U.pfdt(dst)
    assert y.shape == x.shape
    back = getattr(y, method)(pf.int64)
    assert back.dtype == pf.int64
    np.testing.assert_array_equal(back.numpy(), src)


def test_float32_float64_roundtrip_exact(rng):
    a = rng.standard_normal(1000).astype(np.float32)
    x = pf.from_numpy(a)
    y = x.astype(pf.float64)
    np.testing.assert_array_equal(y.numpy(), a.astype(np.float64))
    np.testing.assert_array_equal(y.astype(pf.float32).numpy(), a)


def test_float64_to_float32_rounds_to_nearest(rng):
    a = rng.standard_normal(1000)
    np.testing.assert_array_equal(pf.from_numpy(a).to(pf.float32).numpy(), a.astype(np.float32))


def test_float32_to_float16_rounding_matches_numpy(rng):
    a = np.concatenate(
        [
            rng.standard_normal(1000).astype(np.float32) * 100,
            np.array([65504.0, 70000.0, -70000.0, 1e-8, 6e-5, 0.0, -0.0], np.float32),
        ]
    )
    with np.errstate(over="ignore"):
        ref = a.astype(np.float16)  # 70000 overflows to inf, as it must
    y = pf.from_numpy(a).astype(pf.float16)
    np.testing.assert_array_equal(y.numpy(), ref)
    np.testing.assert_array_equal(y.astype(pf.float32).numpy(), ref.astype(np.float32))


def test_float32_to_bfloat16_round_to_nearest_even(rng):
    a = np.concatenate(
        [
            rng.standard_normal(1000).astype(np.float32) * 100,
            # halfway cases: 1 + 2^-8 (ties to even 1.0), 1 + 3*2^-8 (to 1 + 2^-6)
            np.array([1 + 2**-8, 1 + 3 * 2**-8, 3.0e38, 1e-30], np.float32),
        ]
    )
    y = pf.from_numpy(a).astype(pf.bfloat16).astype(pf.float32)
    np.testing.assert_array_equal(y.numpy(), U.round_to_bf16(a))


def test_float_to_int_truncates_toward_zero():
    x = pf.tensor([-2.7, -0.5, 0.5, 2.7, 100.9])
    assert x.astype(pf.int32).tolist() == [-2, 0, 0, 2, 100]
    assert x.to(pf.int64).tolist() == [-2, 0, 0, 2, 100]


def test_to_bool_and_back():
    x = pf.tensor([0.0, -0.0, 0.1, -3.0, float("nan")])
    assert x.astype(pf.bool_).tolist() == [False, False, True, True, True]
    b = pf.tensor([True, False, True])
    assert b.astype(pf.float32).tolist() == [1.0, 0.0, 1.0]
    assert b.astype(pf.int32).tolist() == [1, 0, 1]
    assert pf.tensor([0, 5, -1]).astype(pf.bool_).tolist() == [False, True, True]


def test_int_narrowing_wraps_like_numpy():
    a = np.array([130, -129, 255, 256, -1], np.int32)
    x = pf.from_numpy(a)
    np.testing.assert_array_equal(x.astype(pf.int8).numpy(), a.astype(np.int8))
    np.testing.assert_array_equal(x.astype(pf.uint8).numpy(), a.astype(np.uint8))


def test_large_int64_to_float64_exact():
    a = np.array([2**40 + 1, -(2**45) + 3], np.int64)
    np.testing.assert_array_equal(pf.from_numpy(a).astype(pf.float64).numpy(), a.astype(np.float64))


def test_astype_same_dtype_and_on_views(rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x = pf.from_numpy(a)
    np.testing.assert_array_equal(x.astype(pf.float32).numpy(), a)
    np.testing.assert_array_equal(x.T.astype(pf.float64).numpy(), a.T.astype(np.float64))
    np.testing.assert_array_equal(x[:, ::2].to(pf.float16).numpy(), a[:, ::2].astype(np.float16))


def test_astype_of_lazy_expression(rng):
    a = rng.standard_normal(10).astype(np.float32)
    y = (pf.from_numpy(a) * 3.0).astype(pf.int32)
    np.testing.assert_array_equal(y.numpy(), (a * np.float32(3.0)).astype(np.int32))


# --------------------------------------------------------------------------
# reductions and dtypes
# --------------------------------------------------------------------------

SUM_DTYPE = [
    ("bool", "int64"),
    ("uint8", "int64"),
    ("int8", "int64"),
    ("int16", "int64"),
    ("int32", "int64"),
    ("int64", "int64"),
    ("float16", "float16"),
    ("bfloat16", "bfloat16"),
    ("float32", "float32"),
    ("float64", "float64"),
]


@pytest.mark.parametrize("dt,expected", SUM_DTYPE, ids=[d for d, _ in SUM_DTYPE])
def test_sum_result_dtype(dt, expected):
    assert pf.dtype_name(_ones(dt, (3, 2)).sum().dtype) == expected
    assert pf.dtype_name(_ones(dt, (3, 2)).sum(dim=0).dtype) == expected


@pytest.mark.parametrize("dt", ["int8", "int32", "uint8", "float16", "float64"])
def test_max_min_argmax_dtypes(dt):
    t = _ones(dt, (3, 2))
    assert t.max().dtype == U.pfdt(dt)
    assert t.min(dim=1).values.dtype == U.pfdt(dt)
    assert t.argmax().dtype == pf.int64
    assert t.max(dim=0).indices.dtype == pf.int64
