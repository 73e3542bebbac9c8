"""Matmul epilogues: a 2-D float matmul whose product only feeds one fused elementwise program
(bias add, GELU, residual add, through reshapes) is computed by blocks of rows with the program
run on each block. Results must equal NumPy references and the unfused path (the product kept
alive by a Python reference, which makes the executor compute it whole), for odd shapes,
several row blocks with a tail, non-contiguous and offset operands, float32 and float64.
"""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Callable, Tuple

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest
from pyflame.nn import functional as F

# (m, k, n): an empty contraction, one row, tiny, one block, several blocks with a short
# tail (parallel split), many blocks (cache-sized).
SHAPES = [
    (9, 0, 5),
    (1, 5, 3),
    (7, 3, 11),
    (33, 17, 9),
    (300, 64, 37),
    (1030, 96, 130),
    (520, 40, 1024),
]


def _ref_gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU in float64."""
    return U.np_gelu(x)


def _operands(
    rng: np.random.Generator, m: int, k: int, n: int, dt: str
) -> Tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x [m, k], w [k, n], bias [n], residual [m, n] rounded to ``dt``, as float64."""
    arrs = (
        rng.standard_normal((m, k)),
        rng.standard_normal((k, n)) / np.sqrt(max(k, 1)),
        rng.standard_normal(n),
        rng.standard_normal((m, n)),
    )
    return tuple(U.exact_inputs(a, dt) for a in arrs)  # type: ignore[return-value]


def _tol(dt: str, k: int) -> dict:
    """Tolerances for a k-term product plus a few elementwise ops (worst-case bound scale)."""
    eps = U.EPS[dt]
    return {"rtol": 8 * (k + 4) * eps, "atol": 8 * (k + 4) * eps}


def _both_paths(fn: Callable[[pf.Tensor], pf.Tensor], x: pf.Tensor, w: pf.Tensor):
    """``fn(x @ w)`` through the epilogue (the product is unreferenced) and the unfused path
    (the product is kept alive, so it must be computed whole and keep its value)."""
    fused = fn(pf.matmul(x, w)).numpy()
    prod = pf.matmul(x, w)
    unfused = fn(prod).numpy()
    return fused, unfused, prod.numpy()


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("m,k,n", SHAPES)
def test_bias_gelu_and_residual(m: int, k: int, n: int, dt: str) -> None:
    rng = np.random.default_rng(m * 1000 + n)
    x, w, b, r = _operands(rng, m, k, n, dt)
    tx, tw, tb, tr = (U.make(a, dt) for a in (x, w, b, r))
    prod = x @ w
    tol = _tol(dt, k)

    fused, unfused, kept = _both_paths(lambda y: F.gelu(y + tb), tx, tw)
    np.testing.assert_allclose(fused, _ref_gelu(prod + b), **tol)
    np.testing.assert_allclose(fused, unfused, **tol)
    np.testing.assert_allclose(kept, prod, **tol)

    fused, unfused, _ = _both_paths(lambda y: y + tb + tr, tx, tw)
    np.testing.assert_allclose(fused, prod + b + r, **tol)
    np.testing.assert_allclose(fused, unfused, **tol)
    assert fused.dtype == U.NP_DTYPE[dt]


@pytest.mark.parametrize("dt", ["float32", "float64"])
def test_through_reshapes(dt: str) -> None:
    """The runtime's batched Linear: [b*s, k] @ [k, n] reshaped to [b, s, n], plus bias."""
    rng = np.random.default_rng(1)
    x, w, b, _ = _operands(rng, 6 * 50, 24, 40, dt)
    tx, tw, tb = (U.make(a, dt) for a in (x, w, b))
    out = F.gelu(pf.matmul(tx, tw).reshape([6, 50, 40]).reshape([6, 2000 // 40, 40]) + tb)
    assert out.shape == [6, 50, 40]
    ref = _ref_gelu((x @ w).reshape(6, 50, 40) + b)
    np.testing.assert_allclose(out.numpy(), ref, **_tol(dt, 24))


def test_kept_reshape_keeps_its_value() -> None:
    """A reshape of the product that is referenced keeps its value (unfused path)."""
    rng = np.random.default_rng(2)
    x, w, b, _ = _operands(rng, 64, 16, 12, "float32")
    tx, tw, tb = (U.make(a, "float32") for a in (x, w, b))
    view = pf.matmul(tx, tw).reshape([8, 8, 12])
    out = (view + tb).numpy()
    tol = _tol("float32", 16)
    np.testing.assert_allclose(view.numpy(), (x @ w).reshape(8, 8, 12), **tol)
    np.testing.assert_allclose(out, (x @ w).reshape(8, 8, 12) + b, **tol)


@pytest.mark.parametrize("layout", ["x_transposed", "w_transposed", "both_offset"])
def test_non_contiguous_operands(layout: str) -> None:
    rng = np.random.default_rng(3)
    m, k, n = 260, 33, 70
    x, w, b, _ = _operands(rng, m, k, n, "float32")
    tb = U.make(b, "float32")
    if layout == "x_transposed":
        tx = U.make(np.ascontiguousarray(x.T), "float32").transpose(0, 1)
        tw = U.make(w, "float32")
    elif layout == "w_transposed":
        tx = U.make(x, "float32")
        tw = U.make(np.ascontiguousarray(w.T), "float32").transpose(0, 1)
    else:
        tx = U.make(np.vstack([np.zeros((3, k)), x]), "float32")[3:]
        tw = U.make(np.hstack([np.zeros((k, 5)), w]), "float32")[:, 5:]
    out = F.gelu(pf.matmul(tx, tw) + tb).numpy()
    np.testing.assert_allclose(out, _ref_gelu(x @ w + b), **_tol("float32", k))


def test_integer_result_and_program_errors() -> None:
    """Programs that cast to integers, and integer errors raised inside the epilogue."""
    rng = np.random.default_rng(4)
    x = rng.integers(-3, 4, (40, 8)).astype(np.float32)
    w = rng.integers(-3, 4, (8, 6)).astype(np.float32)
    tx, tw = pf.tensor(x), pf.tensor(w)
    out = (pf.matmul(tx, tw) * 2.0).astype(pf.int32)
    assert out.dtype == pf.int32
    np.testing.assert_array_equal(out.numpy(), (x @ w * 2).astype(np.int32))
    zero = pf.zeros([40, 6], dtype=pf.int32)
    with pytest.raises(Exception, match="division by zero"):
        ((pf.matmul(tx, tw).astype(pf.int32)) // zero).numpy()


def test_product_used_twice_in_program() -> None:
    rng = np.random.default_rng(5)
    x, w, b, _ = _operands(rng, 50, 10, 20, "float32")
    tx, tw, tb = (U.make(a, "float32") for a in (x, w, b))
    y = pf.matmul(tx, tw)
    out = (y * y + tb).numpy()
    del y
    p = x @ w
    np.testing.assert_allclose(out, p * p + b, **_tol("float32", 10))


def test_grad_through_fused_linear() -> None:
    """Training keeps the product (saved or requiring grad): gradients stay correct."""
    rng = np.random.default_rng(6)
    x, w, b, _ = _operands(rng, 30, 12, 8, "float64")
    tw = pf.tensor(w).requires_grad_()
    tb = pf.tensor(b).requires_grad_()
    loss = (F.gelu(pf.matmul(pf.tensor(x), tw) + tb) ** 2).sum()
    loss.backward()
    # d/dz sum(gelu(z)^2) = 2 gelu(z) gelu'(z); gelu'(z) = Phi(z) + z phi(z)
    z = x @ w + b
    phi = np.exp(-z * z / 2) / np.sqrt(2 * np.pi)
    cdf = 0.5 * (1 + U.np_erf(z / np.sqrt(2)))
    dz = 2 * _ref_gelu(z) * (cdf + z * phi)
    np.testing.assert_allclose(tb.grad.numpy(), dz.sum(0), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(tw.grad.numpy(), x.T @ dz, rtol=1e-9, atol=1e-12)


def test_profile_shows_the_fused_step() -> None:
    """The executor really fuses (PYFLAME_PROFILE names the step ``mm+fused``)."""
    code = (
        "import numpy as np, pyflame as pf\n"
        "from pyflame.nn import functional as F\n"
        "x = pf.tensor(np.ones((64, 32), np.float32))\n"
        "w = pf.tensor(np.ones((32, 48), np.float32))\n"
        "b = pf.tensor(np.ones(48, np.float32))\n"
        "print(float(F.gelu(pf.matmul(x, w) + b).numpy()[0, 0]))\n"
    )
    env = dict(os.environ, PYFLAME_PROFILE="1")
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    assert "mm+fused" in res.stderr
    assert float(res.stdout) == pytest.approx(33.0)
    assert " matmul " not in res.stderr


def test_weight_beyond_block_limit() -> None:
    """A right-hand matrix over 8 MiB is multiplied whole (gemm's own blocking), then the
    program runs: same results."""
    rng = np.random.default_rng(7)
    x, w, b, _ = _operands(rng, 64, 1024, 2100, "float32")
    tx, tw, tb = (U.make(a, "float32") for a in (x, w, b))
    out = F.gelu(pf.matmul(tx, tw) + tb).numpy()
    np.testing.assert_allclose(out, _ref_gelu(x @ w + b), **_tol("float32", 1024))
