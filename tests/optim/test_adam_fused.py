"""The one-pass Adam kernel (`pyflame._core.adam_step`, used by Adam and AdamW) against a
NumPy transcription of PyTorch's update, and its input checks."""

from __future__ import annotations

import numpy as np
import pyflame as pf
import pytest


def numpy_adam(p, g, m, v, vmax, beta1, beta2, eps, step_size, bc2_sqrt):
    m = m + (g - m) * (1 - beta1)
    v = v * beta2 + (1 - beta2) * g * g
    second = v
    if vmax is not None:
        vmax = np.where(np.isnan(vmax) | (vmax > v), vmax, v)
        second = vmax
    p = p - step_size * (m / (np.sqrt(second) / bc2_sqrt + eps))
    return [p, m, v] + ([vmax] if vmax is not None else [])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("amsgrad", [False, True])
@pytest.mark.parametrize("n", [5, 70_001])  # one task, and several parallel tasks
def test_adam_step_matches_numpy(dtype, amsgrad, n):
    rng = np.random.default_rng(n)
    p, g, m = (rng.standard_normal(n).astype(dtype) for _ in range(3))
    v = rng.random(n).astype(dtype)
    vmax = rng.random(n).astype(dtype) if amsgrad else None
    if amsgrad:
        vmax[1] = np.nan
    args = dict(beta1=0.85, beta2=0.99, eps=1e-8, step_size=0.01 / (1 - 0.85**3))
    bc2 = (1 - 0.99**3) ** 0.5
    state = [pf.tensor(m), pf.tensor(v)] + ([pf.tensor(vmax)] if amsgrad else [])
    out = pf._core.adam_step(
        pf.tensor(p), pf.tensor(g), state, bias_correction2_sqrt=bc2, amsgrad=amsgrad, **args
    ).numpy()
    want = numpy_adam(
        p, g, m, v, vmax, args["beta1"], args["beta2"], args["eps"], args["step_size"], bc2
    )
    assert out.shape == (len(want), n) and out.dtype == dtype
    tol = 1e-6 if dtype == np.float32 else 1e-14
    for got, ref in zip(out, want):
        np.testing.assert_allclose(got, ref.astype(dtype), rtol=tol, atol=tol)


def test_adam_step_rejects_mismatched_inputs():
    p = pf.zeros([3])
    with pytest.raises(ValueError, match="match the parameter"):
        pf._core.adam_step(
            p, pf.zeros([4]), [pf.zeros([3]), pf.zeros([3])], 0.9, 0.99, 1e-8, 0.1, 1.0
        )
    with pytest.raises(ValueError, match="state tensors"):
        pf._core.adam_step(p, pf.zeros([3]), [pf.zeros([3])], 0.9, 0.99, 1e-8, 0.1, 1.0)
    with pytest.raises(TypeError, match="float32 or float64"):
        q = pf.zeros([3], dtype="int64")
        pf._core.adam_step(q, q, [q, q], 0.9, 0.99, 1e-8, 0.1, 1.0)
