"""Convolution with a fused epilogue: `_core.conv2d(..., residual=, clamp=)`.

Without gradients, the bias, the residual and the clamp run in the convolution kernel; the
result must equal the composed ops (conv, add, add, relu/clamp) bit for bit, on every
convolution algorithm, and match a NumPy reference. With gradients the builder composes the
plain ops, so autograd sees ordinary nodes.
"""

from __future__ import annotations

import numpy as np
import pyflame as pf
import pytest
from test_conv_algorithms import conv_reference

_core = pf._core

# (N, C, H, O, k, stride, padding, groups)
CASES = [
    (2, 16, 9, 8, 3, 1, 1, 1),  # shifted grid
    (3, 24, 11, 70, 3, 2, 1, 1),  # pixels, two 64-channel blocks
    (1, 64, 4, 64, 3, 1, 1, 1),  # batch 1, small plane
    (2, 16, 8, 50, 1, 2, 0, 1),  # 1x1 stride 2
    (2, 8, 7, 6, 3, 1, 1, 2),  # grouped (im2col per group)
    (1, 3, 40, 96, 3, 1, 1, 1),  # one image large enough to split across threads
]

ALGOS = ["auto", "direct", "pixels", "im2col"]


def _inputs(case, dtype, rng):
    n, c, h, o, k, s, p, g = case
    x = rng.standard_normal((n, c, h, h)).astype(dtype)
    w = (rng.standard_normal((o, c // g, k, k)) * 0.2).astype(dtype)
    b = rng.standard_normal(o).astype(dtype)
    ho = (h + 2 * p - k) // s + 1
    r = rng.standard_normal((n, o, ho, ho)).astype(dtype)
    return x, w, b, r, (s, p, g)


def _reference(x, w, b, r, s, p, g, clamp):
    ci, co = x.shape[1] // g, w.shape[0] // g
    y = np.concatenate(
        [
            conv_reference(x[:, i * ci : (i + 1) * ci], w[i * co : (i + 1) * co], s, p, 1)
            for i in range(g)
        ],
        axis=1,
    )
    y = y + b.reshape(1, -1, 1, 1) + r
    return np.clip(y, *clamp) if clamp else y


@pytest.mark.parametrize("algo", ALGOS)
@pytest.mark.parametrize("case", CASES)
def test_fused_matches_composed_and_numpy(monkeypatch, algo, case):
    monkeypatch.setenv("PYFLAME_CONV_ALGO", algo)
    rng = np.random.default_rng(len(case) + sum(case))
    x, w, b, r, (s, p, g) = _inputs(case, np.float32, rng)
    tx, tw, tb, tr = (pf.tensor(a) for a in (x, w, b, r))
    for clamp in [None, (0.0, float("inf")), (-0.5, 0.75)]:
        fused = _core.conv2d(tx, tw, tb, s, p, 1, g, residual=tr, clamp=clamp).numpy()
        y = _core.conv2d(tx, tw, None, s, p, 1, g) + tb.reshape(1, -1, 1, 1) + tr
        if clamp == (0.0, float("inf")):
            y = pf.relu(y)
        elif clamp:
            y = pf.clamp(y, clamp[0], clamp[1])
        np.testing.assert_array_equal(fused, y.numpy())
        np.testing.assert_allclose(fused, _reference(x, w, b, r, s, p, g, clamp), atol=2e-4)


@pytest.mark.parametrize("parts", ["bias", "residual", "clamp", "bias+clamp"])
def test_each_part_alone(parts):
    rng = np.random.default_rng(3)
    x, w, b, r, (s, p, g) = _inputs(CASES[1], np.float64, rng)
    bias = pf.tensor(b) if "bias" in parts else None
    res = pf.tensor(r) if "residual" in parts else None
    clamp = (0.0, float("inf")) if "clamp" in parts else None
    out = _core.conv2d(pf.tensor(x), pf.tensor(w), bias, s, p, 1, g, residual=res, clamp=clamp)
    want = _reference(
        x,
        w,
        b if bias is not None else np.zeros_like(b),
        r if res is not None else np.zeros_like(r),
        s,
        p,
        g,
        clamp,
    )
    assert out.dtype == pf.float64
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-10, atol=1e-10)


def test_nan_and_negative_zero_behave_like_relu():
    x = np.zeros((1, 1, 3, 3), np.float32)
    w = np.ones((2, 1, 1, 1), np.float32)
    r = np.full((1, 2, 3, 3), -0.0, np.float32)
    r[0, 0, 1, 1] = np.nan
    r[0, 1, 0, 0] = -1.0
    out = _core.conv2d(
        pf.tensor(x), pf.tensor(w), residual=pf.tensor(r), clamp=(0.0, float("inf"))
    ).numpy()
    assert np.isnan(out[0, 0, 1, 1])
    finite = np.delete(out.reshape(-1), 4)
    assert (finite == 0).all() and not np.signbit(finite).any()


def test_gradients_flow_through_the_composed_ops():
    rng = np.random.default_rng(5)
    x, w, b, r, (s, p, g) = _inputs(CASES[0], np.float64, rng)
    tx, tw, tb, tr = (pf.tensor(a, requires_grad=True) for a in (x, w, b, r))
    y = _core.conv2d(tx, tw, tb, s, p, 1, g, residual=tr, clamp=(0.0, float("inf")))
    (y * y).sum().backward()
    # d/d residual of sum(relu(z)^2) is 2 relu(z)
    z = _reference(x, w, b, r, s, p, g, (0.0, np.inf))
    np.testing.assert_allclose(tr.grad.numpy(), 2 * z, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(tb.grad.numpy(), (2 * z).sum(axis=(0, 2, 3)), rtol=1e-9)
    assert tx.grad is not None and tw.grad is not None


def test_half_precision_is_composed():
    rng = np.random.default_rng(6)
    x, w, b, r, (s, p, g) = _inputs(CASES[0], np.float32, rng)
    tx, tw, tb, tr = (pf.tensor(a).to(pf.float16) for a in (x, w, b, r))
    out = _core.conv2d(tx, tw, tb, s, p, 1, g, residual=tr, clamp=(0.0, float("inf")))
    want = pf.relu(_core.conv2d(tx, tw, tb, s, p, 1, g) + tr)
    assert out.dtype == pf.float16
    np.testing.assert_array_equal(out.numpy(), want.numpy())


def test_bad_arguments_raise():
    x, w = pf.zeros((1, 4, 5, 5)), pf.zeros((6, 4, 3, 3))
    with pytest.raises(pf.ShapeError, match="residual"):
        _core.conv2d(x, w, residual=pf.zeros((1, 6, 5, 5)))
    with pytest.raises(pf.ShapeError, match="bias"):
        _core.conv2d(x, w, pf.zeros(5), clamp=(0.0, 1.0))
    with pytest.raises(ValueError, match="clamp"):
        _core.conv2d(x, w, clamp=(1.0, 0.0))
    with pytest.raises(ValueError, match="clamp"):
        _core.conv2d(x, w, clamp=(float("nan"), 0.0))
