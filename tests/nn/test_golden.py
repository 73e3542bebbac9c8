"""Every layer, loss and functional against PyTorch golden files (forward outputs, gradients of
``sum(out * w)`` with respect to inputs and parameters, and the final module state)."""

import pytest
from nn_testutil import SPATIAL_PREFIXES, check_case, golden_names
from pyflame.nn import _helpers

NAMES = golden_names()
SPATIAL = [n for n in NAMES if n.startswith(SPATIAL_PREFIXES)]
KERNELS = ("conv2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")


def test_golden_files_present():
    assert len(NAMES) >= 150


@pytest.mark.parametrize("name", NAMES)
def test_golden(name):
    check_case(name)


@pytest.mark.parametrize("name", SPATIAL)
def test_golden_spatial_fallback(name, monkeypatch):
    """Convolution / pooling through the op-composition fallback (used when the compiled
    kernels are absent) must match PyTorch too."""
    if not any(_helpers.has_kernel(k) for k in KERNELS):
        pytest.skip("no compiled conv/pool kernels: test_golden already ran the fallback path")
    monkeypatch.setattr(_helpers, "has_kernel", lambda name: False)
    check_case(name)
