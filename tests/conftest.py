"""Shared pytest configuration for the PyFlame Python test suite.

Helper modules live in ``tests/ops`` (``pf_testutil.py``, ``op_table.py``);
that directory is put on ``sys.path`` here so the tests can import them
whatever pytest import mode is configured.
"""

import os
import sys

import numpy as np
import pytest

_OPS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ops")
if _OPS_DIR not in sys.path:
    sys.path.insert(0, _OPS_DIR)


@pytest.fixture
def rng():
    """A fresh, deterministically seeded NumPy generator for each test."""
    return np.random.default_rng(0)
