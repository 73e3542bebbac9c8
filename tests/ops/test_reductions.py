"""Reduction semantics: sum/mean/max/min/argmax/argmin.

Values over many shapes and dtypes are covered by the op table
(test_forward.py); this file pins the API behaviour around them:
return types, dim/keepdim handling, output dtypes, NaN handling, accuracy.
"""

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest


def t(a, dt="float32"):
    return U.make(np.asarray(a), dt)


# --------------------------------------------------------------------------
# the examples of the API reference
# --------------------------------------------------------------------------


def test_spec_sum_examples():
    x = pf.tensor([[1, 2], [3, 4]])
    assert x.sum().item() == 10
    U.assert_tensor_close(x.sum(dim=0), np.array([4, 6]), out_dtype="int64")
    U.assert_tensor_close(x.sum(dim=1), np.array([3, 7]), out_dtype="int64")


def test_spec_mean_examples():
    x = pf.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert x.mean().item() == pytest.approx(2.5)
    U.assert_tensor_close(x.mean(dim=0), np.array([2.0, 3.0]), out_dtype="float32")


def test_spec_max_min_examples():
    x = pf.tensor([[1, 5], [3, 2]])
    assert x.max().item() == 5
    assert x.min().item() == 1
    U.assert_tensor_close(x.max(dim=1).values, np.array([5, 3]), out_dtype="int64")
    U.assert_tensor_close(x.min(dim=0).values, np.array([1, 2]), out_dtype="int64")


def test_spec_keepdim_shapes():
    x = pf.randn([3, 4])
    assert x.sum().shape == []
    assert x.sum(dim=0).shape == [4]
    assert x.sum(dim=1).shape == [3]
    assert x.sum(dim=1, keepdim=True).shape == [3, 1]


# --------------------------------------------------------------------------
# return types
# --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sum", "mean", "max", "min"])
def test_full_reduction_returns_0d_tensor(name, rng):
    a = rng.standard_normal((3, 4)).astype(np.float32)
    x = t(a)
    out = getattr(x, name)()
    assert isinstance(out, pf.Tensor)
    assert out.shape == [] and out.ndim == 0 and out.numel == 1
    ref = getattr(np, name)(a.astype(np.float64))
    assert out.item() == pytest.approx(ref, rel=1e-5, abs=1e-6)
    fn_out = getattr(pf, name)(x)
    assert isinstance(fn_out, pf.Tensor) and fn_out.shape == []
    assert fn_out.item() == out.item()


@pytest.mark.parametrize(
    "name,npval,nparg", [("max", np.max, np.argmax), ("min", np.min, np.argmin)]
)
@pytest.mark.parametrize("style", ["method", "function"])
def test_max_min_with_dim_return_values_and_indices(name, npval, nparg, style, rng):
    a = rng.standard_normal((3, 5)).astype(np.float32)
    x = t(a)
    res = getattr(x, name)(1) if style == "method" else getattr(pf, name)(x, 1)
    # attribute access
    U.assert_tensor_close(res.values, npval(a, axis=1), out_dtype="float32", exact=True)
    U.assert_tensor_close(res.indices, nparg(a, axis=1), out_dtype="int64")
    # tuple-like unpacking and indexing
    values, indices = res
    U.assert_tensor_close(values, npval(a, axis=1), exact=True)
    U.assert_tensor_close(indices, nparg(a, axis=1), out_dtype="int64")
    assert len(res) == 2
    U.assert_tensor_close(res[0], npval(a, axis=1), exact=True)
    U.assert_tensor_close(res[1], nparg(a, axis=1), out_dtype="int64")


def test_max_dim_keyword_and_keepdim(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    v, i = t(a).max(dim=-2, keepdim=True)
    U.assert_tensor_close(v, a.max(axis=-2, keepdims=True), exact=True)
    U.assert_tensor_close(i, a.argmax(axis=-2)[:, None, :], out_dtype="int64")


@pytest.mark.parametrize("dt", ["int32", "int64", "int8", "uint8", "float16", "float64"])
def test_max_min_keep_dtype(dt, rng):
    a = rng.integers(0, 100, (4, 6))
    x = t(a, dt)
    assert x.max().dtype == U.pfdt(dt)
    assert x.min(dim=0).values.dtype == U.pfdt(dt)
    assert x.max().item() == a.max()
    assert x.min().item() == a.min()


def test_argmax_none_is_flat_index(rng):
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x = t(a)
    am = x.argmax()
    assert am.shape == [] and am.dtype == pf.int64
    assert am.item() == int(np.argmax(a))
    assert pf.argmin(x).item() == int(np.argmin(a))
    assert x.argmin(dim=None).item() == int(np.argmin(a))


def test_argmax_first_occurrence_on_ties():
    x = pf.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0]])
    assert x.argmax(dim=1).tolist() == [1, 0]
    assert x.argmin(dim=1).tolist() == [3, 0]
    assert x.argmax().item() == 1


# --------------------------------------------------------------------------
# dims
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "dim",
    [0, 1, 2, -1, -3, (0, 1), (1, 2), (0, 2), (0, -1), (0, 1, 2), (-1, -2)],
    ids=lambda d: f"dim{d}".replace(" ", ""),
)
@pytest.mark.parametrize("keepdim", [False, True], ids=["nokeep", "keep"])
@pytest.mark.parametrize("name", ["sum", "mean"])
def test_sum_mean_dims(name, dim, keepdim, rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    out = getattr(t(a), name)(dim=dim, keepdim=keepdim)
    ref = getattr(np, name)(a.astype(np.float64), axis=dim, keepdims=keepdim)
    U.assert_tensor_close(out, ref, out_dtype="float32")


@pytest.mark.parametrize("dim", [0, 1, -1], ids=lambda d: f"dim{d}")
@pytest.mark.parametrize("keepdim", [False, True], ids=["nokeep", "keep"])
def test_max_min_argmax_dims(dim, keepdim, rng):
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x = t(a)
    U.assert_tensor_close(
        x.max(dim=dim, keepdim=keepdim).values, a.max(axis=dim, keepdims=keepdim), exact=True
    )
    U.assert_tensor_close(
        x.min(dim=dim, keepdim=keepdim).values, a.min(axis=dim, keepdims=keepdim), exact=True
    )
    U.assert_tensor_close(
        x.argmax(dim=dim, keepdim=keepdim),
        np.argmax(a, axis=dim, keepdims=keepdim),
        out_dtype="int64",
    )
    U.assert_tensor_close(
        x.argmin(dim=dim, keepdim=keepdim),
        np.argmin(a, axis=dim, keepdims=keepdim),
        out_dtype="int64",
    )


def test_sum_dim_as_list_or_tuple_equal(rng):
    a = rng.standard_normal((2, 3, 4)).astype(np.float32)
    x = t(a)
    np.testing.assert_array_equal(x.sum(dim=(0, 2)).numpy(), x.sum(dim=[0, 2]).numpy())


def test_0d_reductions():
    x = pf.tensor(3.5)
    assert x.sum().item() == 3.5
    assert x.mean().item() == 3.5
    assert x.max().item() == 3.5
    assert x.argmax().item() == 0


# --------------------------------------------------------------------------
# dtypes
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dt", ["bool", "uint8", "int8", "int16", "int32", "int64"])
def test_sum_of_int_and_bool_is_int64(dt, rng):
    a = rng.integers(0, 2, (5, 7)) if dt == "bool" else rng.integers(0, 50, (5, 7))
    x = t(a.astype(bool) if dt == "bool" else a, dt)
    s = x.sum()
    assert s.dtype == pf.int64
    assert s.item() == int(a.sum())
    assert x.sum(dim=0).dtype == pf.int64
    np.testing.assert_array_equal(x.sum(dim=0).numpy(), a.sum(axis=0))


def test_sum_of_int8_does_not_overflow():
    x = pf.full([10], 100, dtype=pf.int8)
    assert x.sum().item() == 1000


def test_bool_sum_counts_trues():
    x = pf.tensor([[True, False, True], [True, True, True]])
    assert x.sum().item() == 5
    assert x.sum(dim=1).tolist() == [2, 3]


@pytest.mark.parametrize("dt", ["float16", "bfloat16", "float64"])
def test_float_sum_keeps_dtype(dt, rng):
    a = rng.standard_normal((4, 8))
    x = t(a, dt)
    assert x.sum().dtype == U.pfdt(dt)
    assert x.mean(dim=1).dtype == U.pfdt(dt)
    ref = U.exact_inputs(a, dt).sum()
    tol = {"float16": 2e-2, "bfloat16": 1.5e-1, "float64": 1e-12}[dt]
    assert float(x.sum().item()) == pytest.approx(ref, rel=tol, abs=tol)


@pytest.mark.parametrize("dt", ["int32", "int64", "bool"])
def test_mean_of_int_raises_type_error(dt):
    x = pf.ones([3], dtype=U.pfdt(dt))
    with pytest.raises(TypeError):
        x.mean()
    with pytest.raises(TypeError):
        pf.mean(x, dim=0)


# --------------------------------------------------------------------------
# special values, empties, accuracy
# --------------------------------------------------------------------------


def test_nan_propagates_through_max_min_sum():
    x = pf.tensor([[1.0, float("nan"), 3.0], [4.0, 5.0, 6.0]])
    assert np.isnan(x.max().item())
    assert np.isnan(x.min().item())
    assert np.isnan(x.sum().item())
    row_max = x.max(dim=1).values.numpy()
    assert np.isnan(row_max[0]) and row_max[1] == 6.0
    col_min = x.min(dim=0).values.numpy()
    assert np.isnan(col_min[1]) and col_min[0] == 1.0 and col_min[2] == 3.0


def test_inf_in_max_min():
    x = pf.tensor([1.0, float("inf"), -float("inf"), 0.0])
    assert x.max().item() == float("inf")
    assert x.min().item() == -float("inf")
    assert x.argmax().item() == 1 and x.argmin().item() == 2


def test_empty_reductions():
    x = pf.zeros([0, 3])
    assert x.sum().item() == 0.0
    U.assert_tensor_close(x.sum(dim=0), np.zeros(3), out_dtype="float32")
    assert x.sum(dim=1).shape == [0]
    assert np.isnan(x.mean().item())
    assert x.max(dim=1).values.shape == [0]


def test_large_sum_is_accurate(rng):
    """1M float32 values: a pairwise/blocked sum is within ~1e-6 relative,
    naive sequential float32 accumulation is off by ~1e-4."""
    a = rng.random(1 << 20, dtype=np.float32)
    x = t(a)
    ref = a.astype(np.float64).sum()
    assert x.sum().item() == pytest.approx(ref, rel=1e-5)
    assert x.mean().item() == pytest.approx(ref / a.size, rel=1e-5)


def test_large_max_and_argmax(rng):
    a = rng.standard_normal(300_001).astype(np.float32)
    a[123_457] = 10.0
    x = t(a)
    assert x.max().item() == 10.0
    assert x.argmax().item() == 123_457


def test_reduction_of_lazy_expression(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    b = rng.standard_normal((6,)).astype(np.float32)
    y = (t(a) * 2.0 + t(b)).sum(dim=1)
    ref = (a.astype(np.float64) * 2 + b).sum(axis=1)
    U.assert_tensor_close(y, ref, out_dtype="float32", atol=1e-5)


def test_sum_of_reduction_chain(rng):
    a = rng.standard_normal((3, 4, 5)).astype(np.float32)
    x = t(a)
    y = x.sum(dim=2).max(dim=1).values.sum()
    ref = a.astype(np.float64).sum(axis=2).max(axis=1).sum()
    assert y.item() == pytest.approx(ref, rel=1e-5, abs=1e-5)


@pytest.mark.parametrize("dt", ["float32", "float64", "int64"])
@pytest.mark.parametrize("inner", [1, 2, 3, 4, 5])
def test_short_trailing_rows(dt, inner):
    # Rows of 1-4 elements reduce across rows at once (a global pool on a 1x1 or 2x2 plane).
    rng = np.random.default_rng(inner)
    a = (rng.standard_normal((33, 7, inner)) * 4).astype(dt)
    if dt != "int64":
        a[3, 2, inner - 1] = np.nan
    x = t(a, dt)
    U.assert_tensor_close(x.sum(dim=-1), a.sum(axis=-1), out_dtype=dt)
    U.assert_tensor_close(x.prod(dim=-1), a.prod(axis=-1), out_dtype=dt)
    U.assert_tensor_close(x.amax(dim=-1), a.max(axis=-1), out_dtype=dt, exact=True)
    U.assert_tensor_close(x.amin(dim=-1), a.min(axis=-1), out_dtype=dt, exact=True)
    if dt != "int64":
        U.assert_tensor_close(x.mean(dim=-1), a.mean(axis=-1), out_dtype=dt)


@pytest.mark.parametrize("dim", [(0, 2, 3), (0, 2, 4), (1, 3), (0, 4), (0, 1, 3, 4)])
@pytest.mark.parametrize("keepdim", [False, True], ids=["nokeep", "keep"])
def test_reductions_over_separate_runs_of_axes(dim, keepdim, rng):
    # Non-adjacent axes reduce one run of adjacent axes at a time (innermost first).
    a = rng.standard_normal((3, 4, 5, 2, 6)).astype(np.float32)
    x = t(a)
    for name in ("sum", "mean"):
        out = getattr(x, name)(dim=dim, keepdim=keepdim)
        ref = getattr(np, name)(a.astype(np.float64), axis=dim, keepdims=keepdim)
        U.assert_tensor_close(out, ref, out_dtype="float32")
    ints = rng.integers(-4, 5, a.shape).astype(np.int32)
    np.testing.assert_array_equal(
        pf.tensor(ints).sum(dim=dim, keepdim=keepdim).numpy(),
        ints.astype(np.int64).sum(axis=dim, keepdims=keepdim),
    )
    assert pf.tensor(ints).sum(dim=dim).dtype == pf.int64
    small = (rng.random(a.shape) + 0.5).astype(np.float64)
    np.testing.assert_allclose(
        pf.tensor(small).prod(dim=dim, keepdim=keepdim).numpy(),
        small.prod(axis=dim, keepdims=keepdim),
        rtol=1e-12,
    )
    np.testing.assert_array_equal(
        x.amax(dim=dim, keepdim=keepdim).numpy(), a.max(axis=dim, keepdims=keepdim)
    )
    np.testing.assert_array_equal(
        x.amin(dim=dim, keepdim=keepdim).numpy(), a.min(axis=dim, keepdims=keepdim)
    )


def test_gradient_of_a_reduction_over_separate_axes(rng):
    a = rng.standard_normal((2, 3, 4, 5))
    x = pf.tensor(a, requires_grad=True)
    w = rng.standard_normal(3)
    ((x.mean(dim=(0, 2, 3)) * pf.tensor(w)).sum()).backward()
    expected = np.broadcast_to(w.reshape(1, 3, 1, 1) / (2 * 4 * 5), a.shape)
    np.testing.assert_allclose(x.grad.numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize(
    "op, dt",
    [
        (op, dt)
        for op in ["sum", "mean", "amax", "amin", "prod"]
        for dt in ["float32", "float64", "int32", "int64"]
        if not (op == "mean" and dt.startswith("int"))  # a TypeError (test_errors)
    ],
)
def test_reductions_over_axes_of_one_element_match_numpy(op, dt):
    # A global average pool over 1x1 maps reduces one element per output: the result is
    # the element, except that a sum (and a mean) of -0.0 is 0.0, as in NumPy.
    values = [-0.0, np.nan, np.inf, -3.5, 2.0, 0.0] if dt.startswith("float") else [-3, 0, 7]
    a = np.array(values, dtype=dt).reshape(1, -1, 1, 1)
    x = pf.tensor(a)
    got = getattr(x, op)(dim=(2, 3), keepdim=True).numpy()
    numpy_op = {"sum": np.sum, "mean": np.mean, "amax": np.max, "amin": np.min, "prod": np.prod}
    want = numpy_op[op](a, axis=(2, 3), keepdims=True)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want.astype(got.dtype))
    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
