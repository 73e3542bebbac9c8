"""The 2x2 / stride-2 max-pooling fast path against NumPy: NaN propagation, ties (the first
maximum gets the gradient, as in PyTorch), odd sizes (ceil_mode falls back to the general
kernel)."""

from __future__ import annotations

import numpy as np
import pyflame as pf
import pyflame.nn.functional as F
import pytest


def reference(x: np.ndarray):
    """Max of each 2x2 window and the gradient of its sum (first maximum; NaN wins)."""
    n, c, h, w = x.shape
    ho, wo = h // 2, w // 2
    out = np.empty((n, c, ho, wo), x.dtype)
    grad = np.zeros_like(x)
    for idx in np.ndindex(n, c, ho, wo):
        a, b, i, j = idx
        win = x[a, b, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2].reshape(-1)
        nans = np.flatnonzero(np.isnan(win))
        k = int(nans[0]) if nans.size else int(np.argmax(win))
        out[idx] = win[k]
        grad[a, b, 2 * i + k // 2, 2 * j + k % 2] = 1.0
    return out, grad


@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 5)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_2x2_matches_numpy(shape, dtype):
    rng = np.random.default_rng(0)
    x = rng.integers(-2, 3, shape).astype(dtype)  # many ties
    x[0, 0, 0, 1] = np.nan
    x[0, 1, 2, 2] = -np.inf
    want, want_grad = reference(x)
    xt = pf.tensor(x).requires_grad_()
    y = F.max_pool2d(xt, 2)
    y.sum().backward()
    np.testing.assert_array_equal(y.numpy(), want)
    np.testing.assert_array_equal(xt.grad.numpy(), want_grad)


def test_max_pool_2x2_ceil_mode_on_odd_sizes():
    x = np.arange(2 * 5 * 5, dtype=np.float32).reshape(1, 2, 5, 5)
    y = F.max_pool2d(pf.tensor(x), 2, ceil_mode=True).numpy()
    assert y.shape == (1, 2, 3, 3)
    np.testing.assert_array_equal(y[0, 0, 2], [21.0, 23.0, 24.0])  # the last input row alone
