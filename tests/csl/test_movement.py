"""Data movement across PEs that is not tied to one rule: layout changes between a producer
and a consumer, SUMMA on non-square grids, and the ``optimize`` option (buffer reuse)."""

import numpy as np
import pyflame as pf
import pytest


def _check(y, opts):
    opts.use_cache = False
    r = pf.compile_to_csl(y, opts)
    assert r.success, r.error_message
    scale = float(np.max(np.abs(y.numpy()))) + 1.0
    assert r.sim_max_abs_error <= 1e-4 * scale, r.sim_max_abs_error
    return r


@pytest.mark.parametrize(
    "src,dst",
    [
        (pf.MeshLayout.row_partition(4), pf.MeshLayout.col_partition(4)),
        (pf.MeshLayout.col_partition(4), pf.MeshLayout.row_partition(4)),
        (pf.MeshLayout.grid(2, 2), pf.MeshLayout.single_pe()),
        (pf.MeshLayout.single_pe(), pf.MeshLayout.grid(4, 4)),
    ],
    ids=["row4-col4", "col4-row4", "grid2x2-single", "single-grid4x4"],
)
def test_layout_change(src, dst, opts):
    pf.manual_seed(1)
    a = pf.relu(pf.randn([8, 16], layout=src))
    b = pf.relu(pf.randn([8, 16], layout=dst))
    r = _check(b - a, opts)
    assert "redistribution" in r.sources["pe_program.csl"]


@pytest.mark.parametrize("grid", [(2, 4), (4, 2), (2, 8)], ids=["2x4", "4x2", "2x8"])
def test_summa_non_square(grid, opts):
    pf.manual_seed(2)
    lay = pf.MeshLayout.grid(*grid)
    a = pf.randn([8, 16], layout=lay) + 0.0
    b = pf.randn([16, 16], layout=lay) + 0.0
    _check(pf.relu(a @ b), opts)


def test_uneven_matmul_is_a_clear_error(opts):
    lay = pf.MeshLayout.grid(2, 4)
    r = pf.compile_to_csl(pf.randn([8, 6], layout=lay) @ pf.randn([6, 8], layout=lay), opts)
    assert not r.success
    assert "does not divide evenly" in r.error_message


def _chain(n):
    x = pf.randn([32, 64])
    b = pf.randn([64])
    t = x
    for k in range(n):
        t = t + b if k % 3 == 0 else (pf.tanh(t) if k % 3 == 1 else t * x)
    return t


def test_optimize_reuses_buffers(opts):
    pf.manual_seed(3)
    y = _chain(12)
    plain = pf.estimate_memory(y, optimize=False)
    reused = pf.estimate_memory(y)
    assert not plain["fits_in_sram"]
    assert reused["fits_in_sram"]
    assert reused["activation_bytes"] < plain["activation_bytes"] // 3
    opts.use_cache = False
    opts.optimize = False
    r = pf.compile_to_csl(y, opts)
    assert not r.success and "M1" in r.error_message
    # compile_to_csl evaluated y, so a fresh graph (same values) is compiled next
    pf.manual_seed(3)
    y = _chain(12)
    opts.optimize = True
    r = _check(y, opts)
    assert "pool0" in r.sources["pe_program.csl"]
