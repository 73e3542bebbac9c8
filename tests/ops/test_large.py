"""Sizes large enough to hit the parallel / blocked kernel paths (chunk
boundaries, odd sizes, strided inputs), still cheap enough for a quick suite."""

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest


def f32(rng, *shape):
    return rng.standard_normal(shape).astype(np.float32)


def close(t, ref, rtol=1e-5, atol=1e-5):
    np.testing.assert_allclose(t.numpy(), ref, rtol=rtol, atol=atol)


def test_large_broadcast_binary(rng):
    a, b, c = f32(rng, 1023, 1025), f32(rng, 1025), f32(rng, 1023, 1)
    close(pf.from_numpy(a) * pf.from_numpy(b) - pf.from_numpy(c), a * b - c)


def test_large_transposed_and_strided_elementwise(rng):
    a = f32(rng, 1001, 1003)
    b = f32(rng, 1003, 1001)
    x, y = pf.from_numpy(a), pf.from_numpy(b)
    close(x + y.T, a + b.T)
    s = f32(rng, 512, 3001)
    close(pf.exp(pf.from_numpy(s)[:, ::3] * 0.5), np.exp(s[:, ::3].astype(np.float64) * 0.5))


@pytest.mark.parametrize("dim", [0, 1, -1, None], ids=["dim0", "dim1", "dim-1", "all"])
@pytest.mark.parametrize("view", ["contig", "transposed"])
def test_large_reductions(dim, view, rng):
    a = f32(rng, 1000, 1037)
    x = pf.from_numpy(a)
    if view == "transposed":
        a = a.T
        x = x.T
    a64 = a.astype(np.float64)
    close(x.sum(dim=dim), a64.sum(axis=dim), rtol=1e-5, atol=1e-3)
    close(x.mean(dim=dim), a64.mean(axis=dim), rtol=1e-5, atol=1e-5)
    if dim is None:
        assert x.max().item() == a.max() and x.min().item() == a.min()
        assert x.argmax().item() == int(np.argmax(a))
    else:
        np.testing.assert_array_equal(x.max(dim=dim).values.numpy(), a.max(axis=dim))
        np.testing.assert_array_equal(x.argmin(dim=dim).numpy(), np.argmin(a, axis=dim))


@pytest.mark.parametrize("n", [1 << 20, (1 << 20) + 7], ids=["pow2", "odd"])
def test_large_argmax_ties_return_first(n):
    x = pf.zeros([n])
    assert x.argmax().item() == 0
    assert x.argmin().item() == 0
    a = np.zeros(n, np.float32)
    a[n - 1] = 1.0
    a[n // 2 + 3] = 1.0
    assert pf.from_numpy(a).argmax().item() == n // 2 + 3
    a = np.ones((3, n // 4), np.float32)
    np.testing.assert_array_equal(pf.from_numpy(a).argmax(dim=1).numpy(), [0, 0, 0])


def test_large_int_sum_exceeds_int32():
    a = np.full(1 << 20, 5000, np.int32)
    s = pf.from_numpy(a).sum()
    assert s.dtype == pf.int64
    assert s.item() == 5000 * (1 << 20)  # 5.2e9 > 2**31


@pytest.mark.parametrize("dim", [-1, 0])
def test_large_softmax(dim, rng):
    a = f32(rng, 257, 1031) * 3
    ref = U.np_softmax(a, axis=dim)
    close(pf.softmax(pf.from_numpy(a), dim=dim), ref, rtol=1e-5, atol=1e-6)
    close(pf.log_softmax(pf.from_numpy(a), dim=dim), np.log(ref), rtol=1e-5, atol=1e-5)


def test_large_softmax_extreme_values_stable():
    a = np.array([[1000.0, 0.0, -1000.0], [-1e4, -1e4, -1e4]], np.float32)
    out = pf.softmax(pf.from_numpy(a), dim=-1).numpy()
    np.testing.assert_allclose(out, [[1, 0, 0], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6, atol=1e-7)
    lout = pf.log_softmax(pf.from_numpy(a), dim=-1).numpy()
    assert np.all(np.isfinite(lout))
    np.testing.assert_allclose(lout[0], [0.0, -1000.0, -2000.0], rtol=1e-6)


def test_large_cat_stack_where(rng):
    a, b = f32(rng, 600, 700), f32(rng, 600, 300)
    close(pf.cat([pf.from_numpy(a), pf.from_numpy(b)], dim=1), np.concatenate([a, b], axis=1))
    close(pf.stack([pf.from_numpy(b), pf.from_numpy(b) * 2.0], dim=1), np.stack([b, b * 2], axis=1))
    x = pf.from_numpy(a)
    close(pf.where(x > 0.0, x, pf.from_numpy(a[0])), np.where(a > 0, a, a[0]))


def test_large_casts(rng):
    a = f32(rng, 1 << 20) * 100
    x = pf.from_numpy(a)
    np.testing.assert_array_equal(x.astype(pf.float16).numpy(), a.astype(np.float16))
    bf = x.astype(pf.bfloat16).astype(pf.float32).numpy()
    np.testing.assert_array_equal(bf, U.round_to_bf16(a))
    np.testing.assert_array_equal(x.astype(pf.int32).numpy(), a.astype(np.int32))


def test_large_bool_mask_preserves_order(rng):
    a = f32(rng, 1 << 20)
    x = pf.from_numpy(a)
    np.testing.assert_array_equal(x[x > 0.5].numpy(), a[a > 0.5])


def test_large_setitem(rng):
    a = f32(rng, 1024, 1024)
    x = pf.from_numpy(a.copy())
    x.eval()
    x[100:900, ::2] = 0.0
    ref = a.copy()
    ref[100:900, ::2] = 0.0
    np.testing.assert_array_equal(x.numpy(), ref)


def test_matmul_long_k(rng):
    a, b = f32(rng, 16, 20000), f32(rng, 20000, 16)
    ref = a.astype(np.float64) @ b.astype(np.float64)
    bound = (20000 + 2) * 2.0**-23 * (np.abs(a).astype(np.float64) @ np.abs(b))
    err = np.abs((pf.from_numpy(a) @ pf.from_numpy(b)).numpy() - ref)
    assert np.all(err <= bound)
    # a blocked / pairwise accumulation is far better than the worst-case bound
    assert np.max(err / np.abs(np.abs(a).astype(np.float64) @ np.abs(b))) < 1e-5


def test_large_fused_chain_with_broadcast_and_view(rng):
    a, b = f32(rng, 700, 900), f32(rng, 900)
    x, y = pf.from_numpy(a), pf.from_numpy(b)
    out = pf.sigmoid(pf.relu(x * y + 1.0) - x.T.T * 0.5) + pf.tanh(y)
    a64, b64 = a.astype(np.float64), b.astype(np.float64)
    ref = U.np_sigmoid(np.maximum(a64 * b64 + 1, 0) - a64 * 0.5) + np.tanh(b64)
    close(out, ref)
