"""Fixtures for the CSL backend tests."""

import pyflame as pf
import pytest


@pytest.fixture
def out_dir(tmp_path):
    """A fresh output directory per test."""
    return str(tmp_path / "csl_out")


@pytest.fixture
def opts(out_dir):
    """Options writing into the per-test directory, without a runtime address."""
    o = pf.CodeGenOptions()
    o.output_dir = out_dir
    o.runtime_address = ""
    return o
