"""nn.utils (gradient clipping, parameter vectors) and dropout behaviour."""

import math

import numpy as np
import pyflame as pf
import pytest
from pyflame import nn
from pyflame.nn import functional as F


def _params_with_grads(grads):
    params = []
    for g in grads:
        p = nn.Parameter(pf.zeros(list(np.shape(g))))
        p.grad = pf.tensor(np.asarray(g, dtype=np.float32))
        params.append(p)
    return params


# ---------------------------------------------------------------------- clip_grad_norm_
@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, math.inf])
def test_clip_grad_norm_matches_numpy(norm_type, rng):
    grads = [rng.standard_normal((3, 4)), rng.standard_normal(5)]
    params = _params_with_grads(grads)
    flat = np.concatenate([g.ravel() for g in grads])
    expected = (
        np.abs(flat).max()
        if math.isinf(norm_type)
        else (np.abs(flat) ** norm_type).sum() ** (1 / norm_type)
    )
    total = nn.utils.clip_grad_norm_(params, max_norm=0.5, norm_type=norm_type)
    assert total.item() == pytest.approx(expected, rel=1e-5)
    coef = 0.5 / (expected + 1e-6)
    for p, g in zip(params, grads):
        np.testing.assert_allclose(p.grad.numpy(), g * coef, rtol=1e-5)


def test_clip_grad_norm_no_clipping_below_max_and_skips_missing_grads():
    params = _params_with_grads([[0.3, 0.4]])
    params.append(nn.Parameter(pf.zeros([2])))  # no grad
    total = nn.utils.clip_grad_norm_(iter(params), max_norm=1.0)
    assert total.item() == pytest.approx(0.5)
    np.testing.assert_allclose(params[0].grad.numpy(), [0.3, 0.4], rtol=1e-6)
    assert params[1].grad is None
    assert nn.utils.clip_grad_norm_([], 1.0).item() == 0.0
    single = _params_with_grads([[3.0, 4.0]])[0]
    assert nn.utils.clip_grad_norm_(single, 1.0).item() == pytest.approx(5.0)


def test_clip_grad_norm_nonfinite():
    params = _params_with_grads([[1.0, float("inf")]])
    with pytest.raises(RuntimeError, match="non-finite"):
        nn.utils.clip_grad_norm_(params, 1.0, error_if_nonfinite=True)
    assert math.isinf(nn.utils.clip_grad_norm_(params, 1.0).item())


def test_clip_grad_norm_on_a_model_then_step():
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    (model(pf.randn([16, 4])) * 100).sum().backward()
    nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    norm = nn.utils.get_total_norm([p.grad for p in model.parameters()])
    assert norm.item() == pytest.approx(1.0, rel=1e-4)


def test_clip_grad_value():
    params = _params_with_grads([[-3.0, 0.5, 2.0]])
    nn.utils.clip_grad_value_(params, 1.0)
    assert params[0].grad.tolist() == [-1.0, 0.5, 1.0]


def test_parameters_vector_round_trip():
    m = nn.Linear(3, 2)
    vec = nn.utils.parameters_to_vector(m.parameters())
    assert vec.shape == [8]
    nn.utils.vector_to_parameters(pf.arange(8.0), m.parameters())
    assert m.weight.tolist() == [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]] and m.bias.tolist() == [6.0, 7.0]
    assert m.weight.is_leaf and m.weight.requires_grad


# ---------------------------------------------------------------------- dropout
def test_dropout_train_statistics_and_scaling():
    pf.manual_seed(0)
    drop = nn.Dropout(0.3)
    y = drop(pf.ones([200, 100])).numpy()
    values = np.unique(y)
    assert len(values) == 2 and values[0] == 0.0 and values[1] == pytest.approx(1 / 0.7)
    assert (y == 0).mean() == pytest.approx(0.3, abs=0.02)
    assert y.mean() == pytest.approx(1.0, abs=0.03)


def test_dropout_eval_and_edge_probabilities():
    x = pf.randn([4, 5])
    assert nn.Dropout(0.5).eval()(x) is x
    assert F.dropout(x, 0.0) is x
    assert np.array_equal(F.dropout(x, 1.0).numpy(), np.zeros((4, 5), np.float32))
    with pytest.raises(ValueError):
        nn.Dropout(1.5)
    with pytest.raises(ValueError):
        F.dropout(x, -0.1)


def test_dropout_gradient_uses_the_same_mask():
    pf.manual_seed(1)
    x = pf.ones([50, 40]).requires_grad_()
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())


def test_dropout_is_reproducible_with_manual_seed():
    pf.manual_seed(7)
    a = F.dropout(pf.ones([100]), 0.5).numpy()
    pf.manual_seed(7)
    b = F.dropout(pf.ones([100]), 0.5).numpy()
    assert np.array_equal(a, b)


def test_dropout2d_drops_whole_channels():
    pf.manual_seed(3)
    y = nn.Dropout2d(0.5)(pf.ones([8, 16, 3, 3])).numpy()
    per_channel = y.reshape(8, 16, 9)
    assert np.all((per_channel == 0).all(-1) | (per_channel == 2.0).all(-1))
    frac = (per_channel == 0).all(-1).mean()
    assert 0.3 < frac < 0.7
    assert (
        nn.Dropout2d(0.5).eval()(pf.ones([2, 3, 2, 2])).tolist() == pf.ones([2, 3, 2, 2]).tolist()
    )
    y1 = nn.Dropout1d(0.5)(pf.ones([4, 6, 5])).numpy()
    assert np.all((y1 == 0).all(-1) | (y1 == 2.0).all(-1))
    y3 = F.dropout1d(pf.ones([6, 5]), 0.5).numpy()  # unbatched [C, L]
    assert np.all((y3 == 0).all(-1) | (y3 == 2.0).all(-1))
