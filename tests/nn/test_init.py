"""nn.init: statistics of every initializer, gains, in-place semantics, and the layers'
default initializations (PyTorch's)."""

import math

import numpy as np
import pyflame as pf
import pytest
from pyflame import nn
from pyflame.nn import init


def test_calculate_gain_table():
    assert init.calculate_gain("linear") == 1.0
    assert init.calculate_gain("conv2d") == 1.0
    assert init.calculate_gain("sigmoid") == 1.0
    assert init.calculate_gain("tanh") == pytest.approx(5.0 / 3)
    assert init.calculate_gain("relu") == pytest.approx(math.sqrt(2.0))
    assert init.calculate_gain("leaky_relu") == pytest.approx(math.sqrt(2.0 / (1 + 0.01**2)))
    assert init.calculate_gain("leaky_relu", 0.2) == pytest.approx(math.sqrt(2.0 / 1.04))
    assert init.calculate_gain("selu") == 0.75
    with pytest.raises(ValueError):
        init.calculate_gain("swishy")


def test_in_place_semantics_keep_leaf_and_grad_flag():
    p = nn.Parameter(pf.zeros([20, 10]))
    out = init.normal_(p, 1.0, 0.5)
    assert out is p and isinstance(p, nn.Parameter) and p.requires_grad and p.is_leaf
    (p * 2).sum().backward()
    assert p.grad.shape == [20, 10]
    t = pf.zeros([3], dtype=pf.float64)
    assert init.uniform_(t).dtype == pf.float64


def _stats(t):
    a = t.numpy().astype(np.float64)
    return a.mean(), a.std(), a.min(), a.max()


def test_uniform_and_normal_statistics():
    mean, std, lo, hi = _stats(init.uniform_(pf.zeros([200, 100]), -2.0, 4.0))
    assert lo >= -2.0 and hi < 4.0
    assert mean == pytest.approx(1.0, abs=0.05) and std == pytest.approx(
        6 / math.sqrt(12), rel=0.03
    )
    mean, std, _, _ = _stats(init.normal_(pf.zeros([200, 100]), 3.0, 0.5))
    assert mean == pytest.approx(3.0, abs=0.02) and std == pytest.approx(0.5, rel=0.03)


def test_trunc_normal_bounds_and_moments():
    t = init.trunc_normal_(pf.zeros([20000]), mean=0.5, std=1.0, a=-0.5, b=1.0)
    mean, _, lo, hi = _stats(t)
    assert lo >= -0.5 and hi <= 1.0 and lo < -0.45 and hi > 0.95
    assert mean == pytest.approx(0.3, abs=0.05)  # truncated N(0.5, 1) on [-0.5, 1] has mean ~0.30
    with pytest.raises(ValueError):
        init.trunc_normal_(pf.zeros([2]), a=1.0, b=0.0)


def test_constant_zeros_ones_eye_dirac():
    assert init.constant_(pf.zeros([2, 2]), 0.25).tolist() == [[0.25, 0.25], [0.25, 0.25]]
    assert init.zeros_(pf.ones([3])).tolist() == [0.0, 0.0, 0.0]
    assert init.ones_(pf.zeros([1, 2])).tolist() == [[1.0, 1.0]]
    assert init.eye_(pf.zeros([3, 2])).tolist() == [[1.0, 0.0], [0.0, 1.0], [0.0, 0.0]]
    w = init.dirac_(pf.zeros([4, 2, 3, 3]), groups=2).numpy()
    assert w.sum() == 4 and w[0, 0, 1, 1] == 1 and w[1, 1, 1, 1] == 1 and w[2, 0, 1, 1] == 1
    x = pf.randn([1, 2, 5, 5])
    assert np.allclose(
        nn.functional.conv2d(x, init.dirac_(pf.zeros([2, 2, 3, 3])), padding=1).numpy(), x.numpy()
    )
    with pytest.raises(ValueError):
        init.eye_(pf.zeros([2]))


@pytest.mark.parametrize("shape", [[300, 200], [64, 16, 3, 3]])
def test_xavier_statistics(shape):
    fan_in = shape[1] * int(np.prod(shape[2:]))
    fan_out = shape[0] * int(np.prod(shape[2:]))
    bound = math.sqrt(6.0 / (fan_in + fan_out))
    _, std, lo, hi = _stats(init.xavier_uniform_(pf.zeros(shape), gain=2.0))
    assert -2 * bound <= lo and hi <= 2 * bound
    assert std == pytest.approx(2 * bound / math.sqrt(3), rel=0.03)
    _, std, _, _ = _stats(init.xavier_normal_(pf.zeros(shape)))
    assert std == pytest.approx(math.sqrt(2.0 / (fan_in + fan_out)), rel=0.03)


def test_kaiming_statistics():
    shape = [256, 64, 3, 3]
    fan_in, fan_out = 64 * 9, 256 * 9
    _, std, lo, hi = _stats(init.kaiming_uniform_(pf.zeros(shape), nonlinearity="relu"))
    bound = math.sqrt(2.0) * math.sqrt(3.0 / fan_in)
    assert -bound <= lo and hi <= bound and std == pytest.approx(bound / math.sqrt(3), rel=0.03)
    _, std, _, _ = _stats(
        init.kaiming_normal_(pf.zeros(shape), mode="fan_out", nonlinearity="relu")
    )
    assert std == pytest.approx(math.sqrt(2.0 / fan_out), rel=0.03)
    _, std, _, _ = _stats(init.kaiming_normal_(pf.zeros(shape), a=0.2))
    assert std == pytest.approx(math.sqrt(2.0 / 1.04) / math.sqrt(fan_in), rel=0.03)
    with pytest.raises(ValueError):
        init.kaiming_uniform_(pf.zeros([3]))
    with pytest.raises(ValueError):
        init.kaiming_uniform_(pf.zeros([3, 3]), mode="fan_middle")


def test_orthogonal():
    q = init.orthogonal_(pf.zeros([6, 4]), gain=2.0).numpy()
    assert np.allclose(q.T @ q, 4 * np.eye(4), atol=1e-4)
    w = init.orthogonal_(pf.zeros([3, 2, 2, 2])).numpy().reshape(3, 8)
    assert np.allclose(w @ w.T, np.eye(3), atol=1e-5)


def test_manual_seed_reproducibility():
    pf.manual_seed(123)
    a = nn.Linear(8, 4).weight.numpy()
    pf.manual_seed(123)
    b = nn.Linear(8, 4).weight.numpy()
    assert np.array_equal(a, b)
    assert not np.array_equal(a, nn.Linear(8, 4).weight.numpy())


def test_default_layer_initializations():
    lin = nn.Linear(400, 300)
    bound = 1.0 / math.sqrt(400)
    _, std, lo, hi = _stats(lin.weight)
    assert -bound <= lo and hi <= bound and std == pytest.approx(bound / math.sqrt(3), rel=0.05)
    _, _, lo, hi = _stats(lin.bias)
    assert -bound <= lo and hi <= bound and hi - lo > bound
    conv = nn.Conv2d(16, 32, 3)
    bound = 1.0 / math.sqrt(16 * 9)
    _, std, lo, hi = _stats(conv.weight)
    assert -bound <= lo and hi <= bound and std == pytest.approx(bound / math.sqrt(3), rel=0.1)
    assert np.abs(conv.bias.numpy()).max() <= bound
    emb = nn.Embedding(1000, 32, padding_idx=3)
    mean, std, _, _ = _stats(emb.weight)
    assert std == pytest.approx(1.0, rel=0.05) and abs(mean) < 0.05
    assert emb.weight[3].tolist() == [0.0] * 32
    for norm in (nn.BatchNorm2d(5), nn.LayerNorm(5), nn.GroupNorm(1, 5)):
        assert norm.weight.tolist() == [1.0] * 5 and norm.bias.tolist() == [0.0] * 5
    bn = nn.BatchNorm1d(3)
    assert bn.running_mean.tolist() == [0.0] * 3 and bn.running_var.tolist() == [1.0] * 3
    assert bn.num_batches_tracked.item() == 0 and bn.num_batches_tracked.dtype == pf.int64
    mha = nn.MultiheadAttention(16, 4)
    bound = math.sqrt(6.0 / (16 + 48))
    assert np.abs(mha.in_proj_weight.numpy()).max() <= bound
    assert mha.in_proj_bias.tolist() == [0.0] * 48 and mha.out_proj.bias.tolist() == [0.0] * 16
    assert nn.Linear(3, 2, dtype=pf.float64).weight.dtype == pf.float64
