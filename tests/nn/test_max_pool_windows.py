"""General max pooling (any kernel, stride, padding, dilation, ceil_mode) against a NumPy
loop over the windows, with NaN inputs (NaN wins, like PyTorch)."""

from __future__ import annotations

import math

import numpy as np
import pyflame as pf
import pyflame.nn.functional as F
import pytest


def out_size(n: int, k: int, s: int, p: int, d: int, ceil: bool) -> int:
    span = n + 2 * p - d * (k - 1) - 1
    o = (math.ceil(span / s) if ceil else span // s) + 1
    if ceil and (o - 1) * s >= n + p:  # the last window must start inside the input
        o -= 1
    return o


def reference(x: np.ndarray, k: int, s: int, p: int, d: int, ceil: bool) -> np.ndarray:
    n, c, h, w = x.shape
    ho, wo = out_size(h, k, s, p, d, ceil), out_size(w, k, s, p, d, ceil)
    out = np.full((n, c, ho, wo), -np.inf, x.dtype)
    for oy in range(ho):
        for ox in range(wo):
            ys = [oy * s - p + i * d for i in range(k)]
            xs = [ox * s - p + j * d for j in range(k)]
            ys = [y for y in ys if 0 <= y < h]
            xs = [v for v in xs if 0 <= v < w]
            if not ys or not xs:
                continue
            win = x[:, :, ys][:, :, :, xs].reshape(n, c, -1)
            m = win.max(axis=2)
            out[:, :, oy, ox] = np.where(np.isnan(win).any(axis=2), np.nan, m)
    return out


@pytest.mark.parametrize(
    "k,s,p,d,ceil",
    [
        (3, 2, 1, 1, False),
        (3, 1, 1, 1, False),
        (2, 1, 0, 1, False),
        (3, 2, 0, 1, True),
        (3, 3, 1, 2, False),
        (5, 2, 2, 1, True),
        (2, 3, 1, 1, True),
    ],
)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_max_pool_matches_numpy_windows(k, s, p, d, ceil, dtype):
    rng = np.random.default_rng(k * 100 + s * 10 + p)
    x = rng.standard_normal((2, 3, 9, 7)).astype(dtype)
    x[0, 1, 4, 3] = np.nan
    x[1, 2, 0, 0] = np.nan
    y = F.max_pool2d(pf.tensor(x), k, stride=s, padding=p, dilation=d, ceil_mode=ceil).numpy()
    ref = reference(x, k, s, p, d, ceil)
    assert y.shape == ref.shape
    np.testing.assert_array_equal(y, ref)


def test_wide_rows_and_many_planes():
    # Rows wider than the on-stack row buffer, and enough planes to run in parallel.
    rng = np.random.default_rng(9)
    x = rng.standard_normal((2, 3, 5, 300)).astype(np.float32)
    x[1, 0, 2, 299] = np.nan
    y = F.max_pool2d(pf.tensor(x), 3, stride=2, padding=1).numpy()
    np.testing.assert_array_equal(y, reference(x, 3, 2, 1, 1, False))
    x = rng.standard_normal((8, 64, 16, 16)).astype(np.float32)
    y = F.max_pool2d(pf.tensor(x), 3, stride=2, padding=1).numpy()
    np.testing.assert_array_equal(y, reference(x, 3, 2, 1, 1, False))


# Row widths around the 16-lane vectors, with and without padding and ceil_mode; without
# padding a row needs at least 3 columns to hold a window.
WIDTH_CASES = [
    (width, p, ceil)
    for width in [1, 2, 15, 16, 17, 31, 32, 33, 64, 65, 256]
    for p, ceil in [(1, False), (0, False), (0, True), (1, True)]
    if width + 2 * p >= 3
]


@pytest.mark.parametrize("width,p,ceil", WIDTH_CASES)
def test_3x3_stride2_rows_of_every_width(width, p, ceil):
    # The whole-plane vectorized 3x3 / stride-2 path: NaN and -inf in the last column and
    # row, windows clipped by padding and by ceil_mode.
    rng = np.random.default_rng(width * 10 + p)
    x = rng.standard_normal((2, 3, 7, width)).astype(np.float32)
    x[0, 0, 3, width - 1] = np.nan
    x[1, 2, 6, width - 1] = -np.inf
    x[1, 1, 6, 0] = np.nan
    y = F.max_pool2d(pf.tensor(x), 3, stride=2, padding=p, ceil_mode=ceil).numpy()
    ref = reference(x, 3, 2, p, 1, ceil)
    assert y.shape == ref.shape
    np.testing.assert_array_equal(y, ref)
