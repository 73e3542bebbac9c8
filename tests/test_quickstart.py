"""The README's main job: `pyflame quickstart` runs end to end on real data."""

import re
import subprocess
import sys


def test_quickstart_trains_and_compiles():
    out = subprocess.run(
        [sys.executable, "-m", "pyflame", "quickstart", "--size", "128", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    text = out.stdout
    assert "-> OK" in text
    accuracy = float(re.search(r"test accuracy ([0-9.]+)%", text).group(1))
    assert accuracy >= 95.0
    assert "validator: clean" in text
    error = float(re.search(r"max abs difference ([0-9.e+-]+)", text).group(1))
    assert error < 1e-4
