"""Every convolution algorithm against NumPy.

`PYFLAME_CONV_ALGO` selects the algorithm: `direct` (shifted grid, stride 1), `pixels`
(channel-vectorized), `winograd` (F(2x2, 3x3), stride-1 3x3 forward and input gradient),
`im2col`, or `auto`. A forced algorithm falls back to
im2col where it does not apply, so each case runs every path that exists for it.
"""

from __future__ import annotations

import numpy as np
import pyflame as pf
import pyflame.nn.functional as F
import pytest

# (N, C, H, W, O, kh, kw, stride, padding, dilation)
CASES = [
    (2, 16, 9, 7, 8, 3, 3, 1, 1, 1),  # "same" padding: shared-padding grid
    (3, 17, 8, 8, 5, 3, 3, 1, 0, 1),  # no padding, odd channel counts
    (1, 16, 10, 6, 4, 1, 1, 1, 0, 1),  # 1x1
    (2, 20, 12, 11, 6, 3, 2, 1, 2, 2),  # padding larger than the reach, dilation
    (2, 16, 7, 9, 3, 5, 3, 1, (2, 1), 1),  # 5x3 kernel, per-axis padding
    (4, 32, 5, 5, 8, 3, 3, 1, 1, 1),  # small planes
    (5, 3, 16, 16, 7, 3, 3, 1, 1, 1),  # RGB stem: thin channels
    (1, 8, 33, 30, 13, 3, 3, 1, 1, 1),  # one image, grid longer than one tile
    (2, 16, 9, 9, 8, 3, 3, 2, 1, 1),  # stride 2: pixels or im2col
    (3, 24, 11, 10, 70, 3, 3, 2, 1, 1),  # stride 2, output channels over one 64-lane tile
    (2, 16, 8, 8, 50, 1, 1, 2, 0, 1),  # 1x1 stride 2 (a ResNet shortcut)
    (1, 20, 5, 7, 64, 3, 3, (2, 1), (1, 0), (1, 2)),  # per-axis stride and dilation
    (3, 20, 9, 11, 70, 3, 3, 1, 1, 1),  # Winograd under auto: odd planes, two channel blocks
    (2, 16, 6, 5, 48, 3, 3, 1, (2, 0), 1),  # Winograd with per-axis padding 2 and 0
    # pixels: 2-4 tiles per 64-channel block share its weights, chunk of channels by chunk
    (1, 150, 4, 4, 128, 3, 3, 1, 1, 1),  # 3 tiles x 2 blocks, 15 chunks of 10 channels
    (2, 24, 2, 2, 192, 3, 3, 1, 1, 1),  # 2 tiles, the first one spanning both images
]


def _pair(v: int | tuple[int, int]) -> tuple[int, int]:
    return v if isinstance(v, tuple) else (v, v)


def conv_reference(x: np.ndarray, w: np.ndarray, stride, padding, dilation) -> np.ndarray:
    """Direct NumPy convolution (float64)."""
    (ph, pw), (sh, sw), (dh, dw) = _pair(padding), _pair(stride), _pair(dilation)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    xp = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    xp[:, :, ph : ph + h, pw : pw + wd] = x
    ho = (h + 2 * ph - dh * (kh - 1) - 1) // sh + 1
    wo = (wd + 2 * pw - dw * (kw - 1) - 1) // sw + 1
    out = np.zeros((n, o, ho, wo))
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            patch = xp[:, :, r0 : r0 + sh * ho : sh, c0 : c0 + sw * wo : sw]
            out += np.einsum("nchw,oc->nohw", patch, w[:, :, i, j])
    return out


def reference_grads(x, w, gy, stride, padding, dilation):
    """Input and weight gradients of sum(conv(x, w) * gy): the reference's exact adjoints."""
    (ph, pw), (sh, sw), (dh, dw) = _pair(padding), _pair(stride), _pair(dilation)
    n, c, h, wd = x.shape
    o, _, kh, kw = w.shape
    ho, wo = gy.shape[2:]
    gx = np.zeros((n, c, h + 2 * ph, wd + 2 * pw))
    gw = np.zeros_like(w)
    xp = np.zeros_like(gx)
    xp[:, :, ph : ph + h, pw : pw + wd] = x
    for i in range(kh):
        for j in range(kw):
            r0, c0 = i * dh, j * dw
            rows = slice(r0, r0 + sh * ho, sh)
            cols = slice(c0, c0 + sw * wo, sw)
            gx[:, :, rows, cols] += np.einsum("nohw,oc->nchw", gy, w[:, :, i, j])
            gw[:, :, i, j] = np.einsum("nohw,nchw->oc", gy, xp[:, :, rows, cols])
    return gx[:, :, ph : ph + h, pw : pw + wd], gw


@pytest.mark.parametrize("algo", ["direct", "pixels", "winograd", "im2col", "auto"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[str(c) for c in CASES])
def test_conv_algorithm_matches_numpy(monkeypatch, algo, dtype, case):
    n, c, h, wd, o, kh, kw, stride, padding, dilation = case
    monkeypatch.setenv("PYFLAME_CONV_ALGO", algo)
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((n, c, h, wd))
    w = rng.standard_normal((o, c, kh, kw))
    want = conv_reference(x, w, stride, padding, dilation)
    gy = rng.standard_normal(want.shape)
    want_gx, want_gw = reference_grads(x, w, gy, stride, padding, dilation)

    xt = pf.tensor(x.astype(dtype)).requires_grad_()
    wt = pf.tensor(w.astype(dtype)).requires_grad_()
    y = F.conv2d(xt, wt, stride=stride, padding=padding, dilation=dilation)
    y.backward(pf.tensor(gy.astype(dtype)))
    tol = 1e-10 if dtype == np.float64 else 2e-4
    scale = 1 + np.abs(want).max()
    np.testing.assert_allclose(y.numpy(), want, atol=tol * scale, rtol=tol)
    np.testing.assert_allclose(xt.grad.numpy(), want_gx, atol=tol * scale, rtol=tol)
    np.testing.assert_allclose(wt.grad.numpy(), want_gw, atol=tol * scale * 10, rtol=tol)


def test_conv_algorithms_agree_on_nan_free_padding(monkeypatch):
    """Grid positions outside the images never leak into results (no NaN from scratch)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3, 24, 6, 6)).astype(np.float32)
    w = rng.standard_normal((12, 24, 3, 3)).astype(np.float32)
    outs = {}
    for algo in ("direct", "im2col"):
        monkeypatch.setenv("PYFLAME_CONV_ALGO", algo)
        for _ in range(3):  # reuse recycled (dirty) scratch buffers
            xt = pf.tensor(x).requires_grad_()
            wt = pf.tensor(w).requires_grad_()
            y = F.conv2d(xt, wt, padding=1)
            y.sum().backward()
            outs[algo] = (y.numpy(), xt.grad.numpy(), wt.grad.numpy())
    for a, b in zip(outs["direct"], outs["im2col"]):
        assert np.isfinite(a).all()
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


# Batch-1 layers of deep networks: one to a few dozen pixels (every short tile length),
# 1x1 and 3x3, strided, deeper than one weight block, more than one 64-channel block.
SMALL_CASES = [
    (1, 64, 1, 1, 64, 1, 1, 1, 0, 1),
    (1, 32, 1, 2, 70, 3, 3, 1, 1, 1),
    (1, 40, 3, 1, 64, 3, 3, 1, 1, 1),
    (1, 48, 2, 2, 128, 3, 3, 1, 1, 1),
    (1, 24, 5, 1, 64, 3, 3, 1, 1, 1),
    (1, 320, 2, 2, 96, 3, 3, 2, 1, 1),
    (1, 16, 7, 7, 64, 3, 3, 1, 1, 1),
    (2, 64, 4, 4, 64, 1, 1, 2, 0, 1),
    (2, 32, 8, 8, 64, 3, 3, 1, 1, 1),  # Winograd: transformed weights kept
]


@pytest.mark.parametrize("case", SMALL_CASES, ids=[str(c) for c in SMALL_CASES])
def test_constant_weights_reused_across_calls_match_numpy(case):
    """Weights that cannot change (a runtime's constants, owned tensors) are packed once and
    the packing is reused from the second call on: every call must give the same values."""
    n, c, h, wd, o, kh, kw, stride, padding, dilation = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rng.standard_normal((n, c, h, wd))
    w = rng.standard_normal((o, c, kh, kw))
    want = conv_reference(x, w, stride, padding, dilation)
    scale = 1 + np.abs(want).max()
    for weights in (pf._core.constant_from_numpy(w.astype(np.float32)), pf.tensor(w, "float32")):
        xt = pf.tensor(x.astype(np.float32))
        for _ in range(4):
            y = F.conv2d(xt, weights, stride=stride, padding=padding, dilation=dilation)
            np.testing.assert_allclose(y.numpy(), want, atol=2e-4 * scale, rtol=2e-4)


def test_padded_inputs_kept_between_calls_hold_each_new_input():
    """A thread keeps the zero-padded input of a small convolution for the next one of the
    same layout and copies only the image into it: every call must see its own input, also
    after a convolution of another layout (and another padding) in between."""
    rng = np.random.default_rng(11)
    w = rng.standard_normal((64, 48, 3, 3))
    other_w = rng.standard_normal((64, 48, 3, 3))
    weights = pf.tensor(w, "float32")
    other = pf.tensor(other_w, "float32")
    for step in range(6):
        x = rng.standard_normal((1, 48, 4, 4))
        y = F.conv2d(pf.tensor(x.astype(np.float32)), weights, padding=1)
        want = conv_reference(x, w, 1, 1, 1)
        np.testing.assert_allclose(y.numpy(), want, atol=2e-4 * (1 + np.abs(want).max()))
        if step % 2:
            z = rng.standard_normal((1, 48, 4, 4))
            got = F.conv2d(pf.tensor(z.astype(np.float32)), other, padding=2).numpy()
            want = conv_reference(z, other_w, 1, 2, 1)
            np.testing.assert_allclose(got, want, atol=2e-4 * (1 + np.abs(want).max()))


def test_writable_numpy_weights_are_never_served_stale():
    """`from_numpy` shares memory with a writable array: changing the array changes the
    convolution, however often the weights were used before."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((1, 32, 3, 3)).astype(np.float32)
    w = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
    wt = pf.from_numpy(w)
    for _ in range(3):
        F.conv2d(pf.tensor(x), wt, padding=1).numpy()
    w *= -2.0
    got = F.conv2d(pf.tensor(x), wt, padding=1).numpy()
    want = conv_reference(x.astype(np.float64), w.astype(np.float64), 1, 1, 1)
    np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-4)


def test_winograd_can_be_turned_off(monkeypatch):
    """`PYFLAME_CONV_WINOGRAD=0` makes `auto` use the direct kernels: the same values to
    rounding, and results that differ in the last bits from the Winograd ones."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 32, 8, 8)).astype(np.float32)
    w = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
    want = conv_reference(x.astype(np.float64), w.astype(np.float64), 1, 1, 1)
    outs = {}
    for setting in ("1", "0"):
        monkeypatch.setenv("PYFLAME_CONV_WINOGRAD", setting)
        outs[setting] = F.conv2d(pf.tensor(x), pf.tensor(w), padding=1).numpy()
        np.testing.assert_allclose(outs[setting], want, atol=1e-3, rtol=1e-4)
    # The two methods round differently: proof that the setting switched the method.
    assert not np.array_equal(outs["1"], outs["0"])


def test_constant_from_numpy_makes_the_array_read_only():
    w = np.ones((4, 4), np.float32)
    pf._core.constant_from_numpy(w)
    assert not w.flags.writeable
    with pytest.raises(ValueError):
        w[0, 0] = 2.0


def test_weights_updated_by_adam_are_read_in_place_and_stay_correct():
    """After an Adam step a parameter is a row of the update's output (an offset view);
    convolutions read it in place, and repeated calls (which pack and cache it) agree."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 32, 4, 4)).astype(np.float32)
    w0 = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
    p = pf.nn.Parameter(pf.tensor(w0))
    opt = pf.optim.Adam([p], lr=0.1)
    p.grad = pf.tensor(np.ones_like(w0))
    opt.step()
    w1 = p.detach().numpy()
    assert not np.allclose(w1, w0)
    want = conv_reference(x.astype(np.float64), w1.astype(np.float64), 1, 1, 1)
    for _ in range(4):
        y = F.conv2d(pf.tensor(x), p.detach(), padding=1).numpy()
        np.testing.assert_allclose(y, want, atol=1e-3, rtol=1e-4)
