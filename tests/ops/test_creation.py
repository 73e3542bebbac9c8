"""Creation functions: zeros/ones/full/randn/rand/randint/arange/tensor/
from_numpy/*_like/eye/linspace and manual_seed."""

import math

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest

ALL = U.ALL_DTYPES


# --------------------------------------------------------------------------
# zeros / ones / full
# --------------------------------------------------------------------------


@pytest.mark.parametrize("fn,val", [("zeros", 0), ("ones", 1)])
@pytest.mark.parametrize("shape", [[3, 4], (2, 3), [], [0, 3], [5]], ids=str)
def test_zeros_ones_default_float32(fn, val, shape):
    x = getattr(pf, fn)(shape)
    assert x.shape == list(shape)
    assert x.dtype == pf.float32
    U.assert_tensor_close(
        x, np.full(tuple(shape), val, np.float32), out_dtype="float32", exact=True
    )


@pytest.mark.parametrize("dt", ALL)
def test_zeros_ones_full_every_dtype(dt):
    d = U.pfdt(dt)
    z, o = pf.zeros([2, 3], dtype=d), pf.ones([2, 3], dtype=d)
    fill = True if dt == "bool" else (3 if U.is_int(dt) else 2.5)
    f = pf.full([2, 3], fill, dtype=d)
    for x, v in ((z, 0), (o, 1), (f, fill)):
        assert x.dtype == d
        U.assert_tensor_close(
            x,
            np.full((2, 3), v).astype(np.float64 if U.is_float(dt) else U.NP_DTYPE[dt]),
            out_dtype=dt,
            exact=True,
        )
    if dt not in ("bfloat16",):
        assert z.numpy().dtype == U.NP_DTYPE[dt]


def test_spec_full_examples():
    x = pf.full([3, 4], 3.14)
    assert x.dtype == pf.float32 and x.shape == [3, 4]
    np.testing.assert_array_equal(x.numpy(), np.full((3, 4), 3.14, np.float32))
    y = pf.full([10], -1, dtype=pf.int32)
    assert y.dtype == pf.int32
    assert y.tolist() == [-1] * 10
    assert pf.ones([100], dtype=pf.int32).sum().item() == 100
    assert pf.zeros([100, 100], dtype=pf.float16).dtype == pf.float16


# --------------------------------------------------------------------------
# random
# --------------------------------------------------------------------------

N = 100_000


def test_randn_statistics():
    pf.manual_seed(1234)
    x = pf.randn([N])
    assert x.dtype == pf.float32 and x.shape == [N]
    v = x.numpy().astype(np.float64)
    assert np.all(np.isfinite(v))
    # standard error of the mean is 1/sqrt(N) ~ 0.0032; bounds are ~6 sigma
    assert abs(v.mean()) < 0.02
    assert abs(v.std() - 1.0) < 0.015
    # shape of the distribution, not just two moments
    assert abs(np.mean(np.abs(v) < 1.0) - 0.682689) < 0.01
    assert abs(np.mean(np.abs(v) < 2.0) - 0.954500) < 0.006
    assert abs(np.mean(v > 0) - 0.5) < 0.01
    assert 3.5 < np.abs(v).max() < 7.0
    assert abs(np.mean(v**3)) < 0.1  # skewness ~ 0
    assert abs(np.mean(v**4) - 3.0) < 0.15  # kurtosis ~ 3
    assert len(np.unique(v)) > 0.99 * N


def test_rand_statistics():
    pf.manual_seed(99)
    x = pf.rand([N])
    assert x.dtype == pf.float32
    v = x.numpy().astype(np.float64)
    assert v.min() >= 0.0 and v.max() < 1.0
    assert abs(v.mean() - 0.5) < 0.006
    assert abs(v.var() - 1.0 / 12.0) < 0.003
    hist, _ = np.histogram(v, bins=10, range=(0.0, 1.0))
    assert np.all(np.abs(hist / N - 0.1) < 0.006), hist
    assert v.min() < 1e-3 and v.max() > 1 - 1e-3
    assert len(np.unique(v)) > 0.95 * N


def test_random_tensor_consecutive_elements_uncorrelated():
    pf.manual_seed(5)
    v = pf.randn([N]).numpy().astype(np.float64)
    r = np.corrcoef(v[:-1], v[1:])[0, 1]
    assert abs(r) < 0.02
    # different rows of a 2-D random tensor are not copies of each other
    m = pf.rand([4, 1000]).numpy()
    assert not np.array_equal(m[0], m[1])


@pytest.mark.parametrize("dt", ["float64", "float16", "bfloat16"])
def test_rand_randn_dtypes(dt):
    d = U.pfdt(dt)
    x = pf.randn([1000], dtype=d)
    y = pf.rand([1000], dtype=d)
    assert x.dtype == d and y.dtype == d
    yv = U.to_np(y)
    assert yv.min() >= 0.0 and yv.max() <= 1.0
    assert abs(U.to_np(x).astype(np.float64).mean()) < 0.2


def test_randint():
    pf.manual_seed(7)
    x = pf.randint(-3, 5, [N])
    assert x.dtype == pf.int64 and x.shape == [N]
    v = x.numpy()
    assert v.min() == -3 and v.max() == 4
    counts = np.bincount(v + 3, minlength=8)
    assert np.all(np.abs(counts / N - 1 / 8) < 0.01), counts


def test_randint_shapes():
    assert pf.randint(0, 10, [2, 3]).shape == [2, 3]
    assert pf.randint(0, 10, (4,)).shape == [4]
    assert pf.randint(0, 1, [5]).tolist() == [0] * 5


def _draw_all():
    return [pf.randn([50]).numpy(), pf.rand([3, 7]).numpy(), pf.randint(0, 1000, [20]).numpy()]


def test_manual_seed_reproducible():
    pf.manual_seed(42)
    first = _draw_all()
    pf.manual_seed(42)
    second = _draw_all()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)


def test_manual_seed_different_seeds_differ():
    pf.manual_seed(1)
    a = pf.randn([100]).numpy()
    pf.manual_seed(2)
    b = pf.randn([100]).numpy()
    assert not np.array_equal(a, b)


def test_consecutive_draws_differ():
    pf.manual_seed(3)
    a = pf.randn([100]).numpy()
    b = pf.randn([100]).numpy()
    assert not np.array_equal(a, b)


def test_manual_seed_independent_of_eval_order():
    """The values of a random tensor are fixed when it is created, not when it
    is evaluated: evaluating in a different order gives the same numbers."""
    pf.manual_seed(11)
    a1, b1 = pf.randn([64]), pf.randn([64])
    va1, vb1 = a1.numpy(), b1.numpy()
    pf.manual_seed(11)
    a2, b2 = pf.randn([64]), pf.randn([64])
    vb2, va2 = b2.numpy(), a2.numpy()
    np.testing.assert_array_equal(va1, va2)
    np.testing.assert_array_equal(vb1, vb2)


def test_random_tensor_is_stable_across_uses():
    x = pf.randn([100])
    d = x - x
    np.testing.assert_array_equal(d.numpy(), np.zeros(100, np.float32))
    v1 = x.numpy()
    v2 = x.numpy()
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal((x * 1.0).numpy(), v1)


def test_like_random_reproducible():
    base = pf.zeros([3, 4], dtype=pf.float64)
    pf.manual_seed(8)
    a = pf.randn_like(base).numpy()
    b = pf.rand_like(base).numpy()
    pf.manual_seed(8)
    np.testing.assert_array_equal(pf.randn_like(base).numpy(), a)
    np.testing.assert_array_equal(pf.rand_like(base).numpy(), b)
    assert a.dtype == np.float64 and a.shape == (3, 4)


# --------------------------------------------------------------------------
# arange / linspace / eye
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,kwargs,expected",
    [
        ((5,), {}, [0, 1, 2, 3, 4]),
        ((1, 5), {}, [1, 2, 3, 4]),
        ((0, 10, 2), {}, [0, 2, 4, 6, 8]),
        ((0, 1, 0.25), {}, [0, 0.25, 0.5, 0.75]),
        ((5, 0, -1), {}, [5, 4, 3, 2, 1]),
        ((0,), {}, []),
        ((3, 3), {}, []),
        ((0, 1, 0.1), {}, list(np.arange(0, 1, 0.1))),
        ((-2.5, 2), {}, [-2.5, -1.5, -0.5, 0.5, 1.5]),
    ],
    ids=[
        "5",
        "1_5",
        "0_10_2",
        "frac_step",
        "neg_step",
        "empty",
        "start_eq_end",
        "len_0.1",
        "neg_start",
    ],
)
def test_arange_default_float32(args, kwargs, expected):
    x = pf.arange(*args, **kwargs)
    assert x.dtype == pf.float32
    assert x.shape == [len(expected)]
    np.testing.assert_allclose(x.numpy(), np.array(expected, np.float32), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dt", ["int32", "int64", "float64"])
def test_arange_dtype(dt):
    x = pf.arange(0, 5, dtype=U.pfdt(dt))
    assert x.dtype == U.pfdt(dt)
    assert x.tolist() == [0, 1, 2, 3, 4]
    y = pf.arange(10, step=3, dtype=U.pfdt(dt))
    assert y.tolist() == [0, 3, 6, 9]


@pytest.mark.parametrize(
    "start,end,steps",
    [(0, 1, 5), (-1, 1, 3), (0, 1, 1), (2, 2, 4), (1, 0, 6), (0, 10, 101), (0, 1, 0)],
    ids=["0_1_5", "sym", "one", "const", "descending", "101", "zero"],
)
def test_linspace(start, end, steps):
    x = pf.linspace(start, end, steps)
    assert x.dtype == pf.float32 and x.shape == [steps]
    ref = np.linspace(start, end, steps)
    np.testing.assert_allclose(x.numpy(), ref, rtol=1e-6, atol=1e-6)
    if steps >= 2:
        assert x[0].item() == start and x[-1].item() == pytest.approx(end, abs=1e-6)


@pytest.mark.parametrize("n,m", [(1, None), (3, None), (2, 4), (4, 2), (0, None)], ids=str)
def test_eye(n, m):
    x = pf.eye(n) if m is None else pf.eye(n, m)
    assert x.dtype == pf.float32
    U.assert_tensor_close(x, np.eye(n, m), exact=True)


def test_eye_dtype():
    x = pf.eye(3, dtype=pf.int32)
    assert x.dtype == pf.int32
    assert x.sum().item() == 3


# --------------------------------------------------------------------------
# tensor()
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data,dt,shape",
    [
        ([[1, 2], [3, 4]], "int64", [2, 2]),
        ([1.0, 2.5], "float32", [2]),
        ([1, 2.5], "float32", [2]),
        ([[True, False]], "bool", [1, 2]),
        (5, "int64", []),
        (2.5, "float32", []),
        (True, "bool", []),
        ([[[1.0]], [[2.0]]], "float32", [2, 1, 1]),
        ([], "float32", [0]),
        (((1, 2), (3, 4)), "int64", [2, 2]),
    ],
    ids=[
        "int_2d",
        "float",
        "mixed",
        "bool",
        "int_0d",
        "float_0d",
        "bool_0d",
        "3d",
        "empty",
        "tuples",
    ],
)
def test_tensor_inference(data, dt, shape):
    x = pf.tensor(data)
    assert x.dtype == U.pfdt(dt)
    assert x.shape == shape
    ref = (
        np.array(data, dtype=U.NP_DTYPE[dt])
        if dt != "float32"
        else np.array(data, dtype=np.float32)
    )
    np.testing.assert_array_equal(x.numpy(), ref)


@pytest.mark.parametrize("dt", ["float64", "float16", "int32", "int8", "uint8", "bool", "bfloat16"])
def test_tensor_with_dtype(dt):
    x = pf.tensor([[0, 1], [2, 3]], dtype=U.pfdt(dt))
    assert x.dtype == U.pfdt(dt)
    ref = np.array([[0, 1], [2, 3]]).astype(U.NP_DTYPE[dt] or np.float32)
    np.testing.assert_array_equal(U.to_np(x), ref)


def test_tensor_from_numpy_array_values():
    a = np.random.default_rng(0).standard_normal((3, 4))
    x = pf.tensor(a)
    assert x.shape == [3, 4]
    np.testing.assert_allclose(U.to_np(x).astype(np.float64), a, rtol=1e-6)
    y = pf.tensor(a, dtype=pf.float32)
    assert y.dtype == pf.float32
    np.testing.assert_array_equal(y.numpy(), a.astype(np.float32))


def test_tensor_large_ints_exact():
    x = pf.tensor([2**40 + 1, -(2**50)])
    assert x.dtype == pf.int64
    assert x.tolist() == [2**40 + 1, -(2**50)]


def test_tensor_nan_inf():
    x = pf.tensor([float("nan"), float("inf"), -float("inf")])
    v = x.numpy()
    assert np.isnan(v[0]) and v[1] == np.inf and v[2] == -np.inf


# --------------------------------------------------------------------------
# from_numpy
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dt", [d for d in ALL if d != "bfloat16"])
def test_from_numpy_keeps_dtype(dt, rng):
    if U.is_float(dt):
        a = (rng.standard_normal((3, 5)) * 10).astype(U.NP_DTYPE[dt])
    else:
        a = rng.integers(0, 100, (3, 5)).astype(U.NP_DTYPE[dt])
    x = pf.from_numpy(a)
    assert x.dtype == U.pfdt(dt)
    assert x.shape == [3, 5]
    out = x.numpy()
    assert out.dtype == a.dtype
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize(
    "make_view",
    [
        lambda a: a[:, ::2],
        lambda a: a.T,
        lambda a: a[::-1],
        lambda a: a[:, ::-2],
        lambda a: np.asfortranarray(a),
        lambda a: a[1:3, 2:5],
        lambda a: np.broadcast_to(a[0], (4, 6)),
        lambda a: a.reshape(-1)[1:].reshape(23)[::3],
    ],
    ids=[
        "step",
        "T",
        "reversed",
        "neg_step",
        "fortran",
        "offset_block",
        "broadcast_zero_stride",
        "offset_stride",
    ],
)
def test_from_numpy_non_contiguous(make_view):
    a = np.arange(24, dtype=np.float32).reshape(4, 6)
    v = make_view(a)
    x = pf.from_numpy(v)
    assert x.shape == list(v.shape)
    np.testing.assert_array_equal(x.numpy(), v)
    np.testing.assert_array_equal((x * 2.0).numpy(), v * 2)


def test_from_numpy_misaligned_buffer():
    raw = np.zeros(4 * 10 + 1, dtype=np.uint8)
    a = raw[1:].view(np.float32)  # deliberately misaligned float32 data
    a[:] = np.arange(10, dtype=np.float32)
    x = pf.from_numpy(a)
    np.testing.assert_array_equal(x.numpy(), np.arange(10, dtype=np.float32))


def test_from_numpy_0d_and_empty():
    x = pf.from_numpy(np.array(3.5, dtype=np.float32))
    assert x.shape == [] and x.item() == 3.5
    y = pf.from_numpy(np.zeros((0, 4), dtype=np.int32))
    assert y.shape == [0, 4] and y.dtype == pf.int32


def test_from_numpy_values_used_in_computation(rng):
    a = rng.standard_normal((4, 4))
    x = pf.from_numpy(a)  # float64 stays float64
    assert x.dtype == pf.float64
    np.testing.assert_allclose((x @ x).numpy(), a @ a, rtol=1e-12)


# --------------------------------------------------------------------------
# *_like
# --------------------------------------------------------------------------


@pytest.mark.parametrize("dt", ["float32", "float64", "int32", "bool", "float16"])
def test_like_functions(dt):
    src = pf.ones([2, 3], dtype=U.pfdt(dt))
    z = pf.zeros_like(src)
    o = pf.ones_like(src)
    f = pf.full_like(src, 1)
    for t in (z, o, f):
        assert t.shape == [2, 3] and t.dtype == U.pfdt(dt)
    np.testing.assert_array_equal(U.to_np(z), np.zeros((2, 3), U.NP_DTYPE[dt]))
    np.testing.assert_array_equal(U.to_np(o), np.ones((2, 3), U.NP_DTYPE[dt]))
    np.testing.assert_array_equal(U.to_np(f), np.ones((2, 3), U.NP_DTYPE[dt]))


def test_like_functions_float():
    src = pf.zeros([4, 5])
    f = pf.full_like(src, 2.5)
    assert f.dtype == pf.float32
    np.testing.assert_array_equal(f.numpy(), np.full((4, 5), 2.5, np.float32))
    r = pf.rand_like(src)
    n = pf.randn_like(src)
    assert r.shape == [4, 5] and n.shape == [4, 5]
    assert r.dtype == pf.float32 and n.dtype == pf.float32
    rv = r.numpy()
    assert rv.min() >= 0 and rv.max() < 1


def test_like_of_view_and_lazy():
    src = (pf.randn([3, 4]) * 2.0).transpose(0, 1)
    z = pf.zeros_like(src)
    assert z.shape == [4, 3]
    np.testing.assert_array_equal(z.numpy(), np.zeros((4, 3), np.float32))


def test_like_dtype_override():
    src = pf.zeros([2, 2])
    assert pf.zeros_like(src, dtype=pf.int32).dtype == pf.int32
    assert pf.ones_like(src, dtype=pf.float64).dtype == pf.float64


# --------------------------------------------------------------------------
# reading values back
# --------------------------------------------------------------------------


def test_numpy_item_tolist_array():
    x = pf.tensor([[1.5, 2.0], [3.0, 4.25]])
    a = x.numpy()
    assert isinstance(a, np.ndarray) and a.dtype == np.float32
    assert x.tolist() == [[1.5, 2.0], [3.0, 4.25]]
    assert np.asarray(x).tolist() == [[1.5, 2.0], [3.0, 4.25]]
    assert np.array(x, dtype=np.float64).dtype == np.float64
    assert x[1, 1].item() == 4.25
    assert isinstance(x[1, 1].item(), float)
    assert isinstance(pf.tensor([3])[0].item(), int)
    assert isinstance(pf.tensor([True])[0].item(), bool)
    assert pf.tensor(7).tolist() == 7
    assert math.isclose(pf.tensor([0.1]).item(), 0.1, rel_tol=1e-7)


def test_repr_contains_tensor_and_values():
    r = repr(pf.tensor([1.5, 2.5]))
    assert "tensor(" in r
    assert "1.5" in r and "2.5" in r
    assert "tensor(" in repr(pf.zeros([0, 3]))
    assert "tensor(" in repr(pf.randn([2, 2]) + 1.0)
    assert "tensor(" in repr(pf.tensor(3))
