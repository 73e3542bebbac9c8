"""The dedicated normalization kernels (layer, group and batch norm): forward against NumPy
and gradients of input, weight and bias against central finite differences in float64."""

from __future__ import annotations

import os
import sys

import numpy as np
import pyflame as pf
import pytest
from pyflame.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_gradcheck import gradcheck, rand  # noqa: E402


def _ref_norm(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


LAYER = {
    "last_dim": ((3, 4, 5), [5]),
    "last_two": ((2, 3, 4), [3, 4]),
    "rows_only": ((6, 7), [7]),
}


@pytest.mark.parametrize("name", list(LAYER))
def test_layer_norm_gradients(name):
    shape, ns = LAYER[name]
    x, w, b = rand(*shape), rand(*ns, seed=3), rand(*ns, seed=4)
    gradcheck(lambda x, w, b: F.layer_norm(x, ns, w, b, 1e-5), x, w, b)
    gradcheck(lambda x: F.layer_norm(x, ns), x)
    axes = tuple(range(len(shape) - len(ns), len(shape)))
    got = F.layer_norm(pf.tensor(x), ns, pf.tensor(w), pf.tensor(b)).numpy()
    np.testing.assert_allclose(got, _ref_norm(x, axes, 1e-5) * w + b, rtol=1e-10, atol=1e-12)


GROUP = {
    "1d": ((2, 6, 3), 3),
    "2d": ((2, 4, 2, 3), 2),
    "one_group": ((3, 4, 2), 1),
    "per_channel": ((2, 3, 5), 3),
    "no_spatial": ((4, 6), 2),
}


@pytest.mark.parametrize("name", list(GROUP))
def test_group_norm_gradients(name):
    shape, g = GROUP[name]
    c = shape[1]
    x, w, b = rand(*shape), rand(c, seed=3), rand(c, seed=4)
    gradcheck(lambda x, w, b: F.group_norm(x, g, w, b), x, w, b)
    gradcheck(lambda x, w: F.group_norm(x, g, w), x, w)
    n = shape[0]
    xg = x.reshape(n, g, -1)
    ref = _ref_norm(xg, (2,), 1e-5).reshape(shape)
    cshape = [1, c] + [1] * (len(shape) - 2)
    ref = ref * w.reshape(cshape) + b.reshape(cshape)
    got = F.group_norm(pf.tensor(x), g, pf.tensor(w), pf.tensor(b)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


BATCH = {"2d": (5, 3), "3d": (3, 2, 4), "4d": (2, 3, 2, 2), "long_rows": (2, 2, 70)}


@pytest.mark.parametrize("name", list(BATCH))
def test_batch_norm_training_gradients(name):
    shape = BATCH[name]
    c = shape[1]
    x, w, b = rand(*shape), rand(c, seed=3), rand(c, seed=4)
    gradcheck(lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), x, w, b)
    gradcheck(lambda x: F.batch_norm(x, None, None, training=True), x)
    axes = (0,) + tuple(range(2, len(shape)))
    cshape = [1, c] + [1] * (len(shape) - 2)
    ref = _ref_norm(x, axes, 1e-5) * w.reshape(cshape) + b.reshape(cshape)
    got = F.batch_norm(pf.tensor(x), None, None, pf.tensor(w), pf.tensor(b), True).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-10, atol=1e-12)


def test_batch_norm_running_stats_stay_lazy_and_match_pytorch_formula():
    x = rand(6, 3, 4)
    rm, rv = pf.zeros([3], dtype=pf.float64), pf.ones([3], dtype=pf.float64)
    xt = pf.tensor(x)
    y = F.batch_norm(xt, rm, rv, training=True, momentum=0.2)
    assert pf._core.is_lazy(y) and pf._core.is_lazy(rm) and pf._core.is_lazy(rv)
    n = 6 * 4
    mean = x.mean(axis=(0, 2))
    var = x.var(axis=(0, 2)) * n / (n - 1)
    np.testing.assert_allclose(rm.numpy(), 0.2 * mean, rtol=1e-12)
    np.testing.assert_allclose(rv.numpy(), 0.8 + 0.2 * var, rtol=1e-12)
    # A second step builds on the first one's (now evaluated) values.
    F.batch_norm(xt, rm, rv, training=True, momentum=0.2)
    np.testing.assert_allclose(rm.numpy(), 0.2 * mean + 0.8 * 0.2 * mean, rtol=1e-12)


def test_float32_large_inputs_match_float64():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 96, 40)) * 3 + 1
    w, b = rng.standard_normal(96), rng.standard_normal(96)
    r = rng.standard_normal(x.shape)
    for fn in (
        lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True),
        lambda x, w, b: F.group_norm(x, 8, w, b),
        lambda x, w, b: F.layer_norm(x, [40], w[:40], b[:40]),
    ):
        outs, grads = [], []
        for dt in (pf.float32, pf.float64):
            ts = [pf.tensor(a).astype(dt).requires_grad_() for a in (x, w, b)]
            y = fn(*ts)
            (y * pf.tensor(r).astype(dt)).sum().backward()
            outs.append(y.numpy().astype(np.float64))
            grads.append([t.grad.numpy().astype(np.float64) for t in ts])
        np.testing.assert_allclose(outs[0], outs[1], rtol=1e-4, atol=1e-4)
        for g32, g64 in zip(*grads):
            # float32 sums over 2,560 elements per channel: measured error ~2e-7 of the max
            np.testing.assert_allclose(g32, g64, rtol=1e-4, atol=1e-5 * np.abs(g64).max())


def test_bad_inputs_raise_clear_errors():
    x = pf.randn([2, 6, 3])
    with pytest.raises(ValueError, match="divisible"):
        F.group_norm(x, 4)
    with pytest.raises(ValueError, match="weight should contain 6"):
        F.group_norm(x, 3, pf.ones([5]))
    with pytest.raises(ValueError, match="normalized_shape"):
        F.layer_norm(x, [4])
    with pytest.raises(ValueError, match="more than 1 value"):
        F.batch_norm(pf.randn([1, 3]), None, None, training=True)
    with pytest.raises(ValueError, match="eps"):
        F.layer_norm(x, [3], eps=float("nan"))
    with pytest.raises(TypeError, match="floating point"):
        F.layer_norm(pf.tensor(np.ones((2, 3), dtype=np.int64)), [3])


def test_batchnorm_module_keeps_the_batch_lazy():
    bn = pf.nn.BatchNorm2d(3)
    x = pf.randn([4, 3, 5, 5]) * 2.0 + 1.0
    y = bn(x)
    assert pf._core.is_lazy(x) and pf._core.is_lazy(y) and pf._core.is_lazy(bn.running_mean)
    xv = x.numpy()
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.1 * xv.mean(axis=(0, 2, 3)), rtol=1e-5)
    var = xv.var(axis=(0, 2, 3), ddof=1)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.9 + 0.1 * var, rtol=1e-5)
    for _ in range(20):  # pending updates never pile up: each call settles the previous one
        bn(x)
        assert len(pf.get_graph(bn.running_var).nodes) < 20
    assert bn.num_batches_tracked.item() == 21


def test_empty_inputs():
    x = pf.randn([0, 5]).requires_grad_()
    w = pf.ones([5]).requires_grad_()
    F.layer_norm(x, [5], w).sum().backward()
    assert x.grad.shape == [0, 5] and w.grad.tolist() == [0.0] * 5
    assert F.group_norm(pf.randn([0, 4, 3]), 2).shape == [0, 4, 3]
    assert F.batch_norm(pf.randn([0, 4, 3]), None, None).shape == [0, 4, 3]
