"""matmul / @ : 2-D, batched, broadcast batch dims, 1-D operands (NumPy rules),
non-contiguous operands, dtypes, empty dims.

Float results are checked against a float64 reference on the exact inputs
with the rigorous bound |err| <= (K + 2) * eps * (|A| @ |B|), which holds for
any summation order, so blocked/parallel kernels pass and wrong ones do not.
"""

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest


def check_matmul(out, a, b, dt="float32"):
    """a, b: exact input values (float64 for floats)."""
    ref = np.matmul(a, b)
    assert out.shape == list(np.shape(ref)), f"{out.shape} != {list(np.shape(ref))}"
    if not U.is_float(dt):
        assert out.dtype == U.pfdt(dt)
        np.testing.assert_array_equal(U.to_np(out), ref)
        return
    assert out.dtype == U.pfdt(dt)
    k = a.shape[-1] if a.ndim else 1
    bound = (k + 2) * U.EPS[dt] * np.matmul(np.abs(a), np.abs(b))
    got = U.to_np(out).astype(np.float64)
    # output rounding to the dtype adds half an ulp of the result
    bound = bound + U.EPS[dt] * np.abs(ref) + 1e-300
    err = np.abs(got - ref)
    assert np.all(err <= bound), (
        f"max err {err.max()} exceeds bound (worst ratio {(err / bound).max():.3g})"
    )


def inputs(rng, sa, sb, dt="float32"):
    if U.is_int(dt):
        a = rng.integers(-8, 9, sa)
        b = rng.integers(-8, 9, sb)
    else:
        a = rng.standard_normal(sa)
        b = rng.standard_normal(sb)
    return U.make(a, dt), U.make(b, dt), U.exact_inputs(a, dt), U.exact_inputs(b, dt)


SHAPES_2D = [
    ((1, 1), (1, 1)),
    ((3, 5), (5, 2)),
    ((5, 1), (1, 7)),
    ((1, 9), (9, 1)),
    ((17, 33), (33, 9)),
    ((64, 128), (128, 65)),
    ((130, 257), (257, 3)),
    ((2, 300), (300, 2)),
]


@pytest.mark.parametrize(
    "sa,sb", SHAPES_2D, ids=[f"{a}@{b}".replace(" ", "") for a, b in SHAPES_2D]
)
def test_matmul_2d(sa, sb, rng):
    ta, tb, a, b = inputs(rng, sa, sb)
    check_matmul(ta @ tb, a, b)


def test_matmul_function_and_operator_agree(rng):
    ta, tb, _, _ = inputs(rng, (20, 30), (30, 10))
    np.testing.assert_array_equal(pf.matmul(ta, tb).numpy(), (ta @ tb).numpy())


def test_spec_matmul_examples():
    a = pf.randn([100, 50])
    b = pf.randn([50, 75])
    assert (a @ b).shape == [100, 75]
    assert pf.matmul(a, b).shape == [100, 75]
    a = pf.randn([8, 100, 50])
    b = pf.randn([8, 50, 75])
    assert (a @ b).shape == [8, 100, 75]


BATCH_SHAPES = [
    ((4, 3, 5), (4, 5, 2)),
    ((2, 3, 4, 5), (2, 3, 5, 6)),
    ((2, 1, 3, 4), (5, 4, 2)),
    ((1, 3, 4), (6, 4, 2)),
    ((2, 1, 3, 4), (1, 5, 4, 2)),
    ((3, 4, 5), (5, 2)),
    ((4, 5), (3, 5, 2)),
    ((4,), (4, 6)),
    ((3, 4), (4,)),
    ((4,), (4,)),
    ((2, 3, 4), (4,)),
    ((4,), (2, 4, 5)),
    ((0, 4), (4, 5)),
    ((3, 0), (0, 5)),
    ((3, 4), (4, 0)),
    ((0, 3, 4), (4, 2)),
]


@pytest.mark.parametrize(
    "sa,sb", BATCH_SHAPES, ids=[f"{a}@{b}".replace(" ", "") for a, b in BATCH_SHAPES]
)
def test_matmul_batched_broadcast_and_vectors(sa, sb, rng):
    ta, tb, a, b = inputs(rng, sa, sb)
    check_matmul(ta @ tb, a, b)


def test_matmul_empty_k_gives_zeros():
    out = pf.zeros([3, 0]) @ pf.zeros([0, 4])
    np.testing.assert_array_equal(out.numpy(), np.zeros((3, 4), np.float32))


@pytest.mark.parametrize("dt", ["float64", "float16", "bfloat16", "int32", "int64"])
@pytest.mark.parametrize("sa,sb", [((7, 13), (13, 5)), ((2, 3, 9), (9, 4))], ids=["2d", "batched"])
def test_matmul_dtypes(dt, sa, sb, rng):
    ta, tb, a, b = inputs(rng, sa, sb, dt)
    check_matmul(ta @ tb, a, b, dt)


def test_matmul_float64_is_double_precision(rng):
    a = rng.standard_normal((50, 40))
    b = rng.standard_normal((40, 30))
    out = pf.from_numpy(a) @ pf.from_numpy(b)
    np.testing.assert_allclose(out.numpy(), a @ b, rtol=1e-12, atol=1e-12)


def test_matmul_int_large_values_exact():
    a = np.full((3, 100), 1000, np.int64)
    b = np.full((100, 2), 1000, np.int64)
    out = pf.from_numpy(a) @ pf.from_numpy(b)
    assert out.dtype == pf.int64
    assert out.tolist() == [[100_000_000] * 2] * 3


# --------------------------------------------------------------------------
# non-contiguous operands (pyflame views)
# --------------------------------------------------------------------------


def _t(a):
    return U.make(a, "float32")


def test_matmul_transposed_lhs(rng):
    a = rng.standard_normal((33, 17))
    b = rng.standard_normal((33, 9))
    check_matmul(_t(a).T @ _t(b), U.round_to(a, "float32").T, U.round_to(b, "float32"))


def test_matmul_transposed_rhs(rng):
    a = rng.standard_normal((17, 33))
    b = rng.standard_normal((9, 33))
    check_matmul(
        _t(a) @ _t(b).transpose(0, 1), U.round_to(a, "float32"), U.round_to(b, "float32").T
    )


def test_matmul_both_transposed(rng):
    a = rng.standard_normal((40, 20))
    b = rng.standard_normal((30, 40))
    check_matmul(_t(a).T @ _t(b).T, U.round_to(a, "float32").T, U.round_to(b, "float32").T)


def test_matmul_sliced_operands(rng):
    a = rng.standard_normal((20, 30))
    b = rng.standard_normal((31, 12))
    ra, rb = U.round_to(a, "float32"), U.round_to(b, "float32")
    check_matmul(_t(a)[2:, ::2] @ _t(b)[1::2, 3:], ra[2:, ::2], rb[1::2, 3:])


def test_matmul_batched_transposed_and_permuted(rng):
    a = rng.standard_normal((3, 6, 5))
    b = rng.standard_normal((4, 6, 3))
    ra, rb = U.round_to(a, "float32"), U.round_to(b, "float32")
    # [3,5,6] @ [3,6,4]
    lhs = _t(a).transpose(1, 2)
    rhs = (
        _t(b).permute([2, 1, 0]).permute([2, 1, 0]).permute([2, 1, 0])
    )  # b.transpose(0,2) -> [3,6,4]
    check_matmul(lhs @ rhs, np.swapaxes(ra, 1, 2), np.transpose(rb, (2, 1, 0)))


def test_matmul_expanded_batch(rng):
    a = rng.standard_normal((1, 3, 4))
    b = rng.standard_normal((5, 4, 2))
    ra, rb = U.round_to(a, "float32"), U.round_to(b, "float32")
    check_matmul(_t(a).expand([5, 3, 4]) @ _t(b), np.broadcast_to(ra, (5, 3, 4)), rb)


def test_matmul_of_lazy_results_and_chain(rng):
    a = rng.standard_normal((8, 6))
    b = rng.standard_normal((6, 7))
    c = rng.standard_normal((7, 5))
    bias = rng.standard_normal((5,))
    ta, tb, tc, tbias = _t(a), _t(b), _t(c), _t(bias)
    out = pf.relu(((ta * 2.0) @ tb) @ tc + tbias)
    ra, rb, rc, rbias = (U.round_to(x, "float32") for x in (a, b, c, bias))
    ref = np.maximum(((ra * 2) @ rb) @ rc + rbias, 0)
    U.assert_tensor_close(out, ref, out_dtype="float32", rtol=1e-5, atol=1e-5)


def test_matmul_256_float32(rng):
    a = rng.standard_normal((256, 256)).astype(np.float32)
    b = rng.standard_normal((256, 256)).astype(np.float32)
    check_matmul(pf.from_numpy(a) @ pf.from_numpy(b), a.astype(np.float64), b.astype(np.float64))
