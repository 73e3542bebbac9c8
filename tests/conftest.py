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


@pytest.fixture
def run_script_ok():
    """Runs a Python script in a fresh process with ``RAYON_NUM_THREADS=threads`` and checks
    that it exits cleanly and prints ``ok``."""
    import subprocess

    def run(script: str, threads: str) -> None:
        env = dict(os.environ, RAYON_NUM_THREADS=threads)
        out = subprocess.run(
            [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "ok"

    return run
