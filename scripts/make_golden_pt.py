#!/usr/bin/env python3
"""Generates the tiny real PyTorch checkpoint for ``tests/runtime/test_torch_import.py``.

Needs PyTorch (dev only: the tests never import torch). Run from the repository root::

    python3 scripts/make_golden_pt.py            # writes tests/golden/runtime/linear2.pt (+ .npz)
    python3 scripts/make_golden_pt.py --check    # regenerates in memory, compares the arrays

The checkpoint is the ``state_dict`` of ``Sequential(Linear(3, 4), ReLU(), Linear(4, 2))`` with
a fixed seed, saved by ``torch.save`` in its default zip format. ``linear2.npz`` holds the
same tensors plus an input ``x`` and the model output ``y`` so the test checks the values
read by the torch-free reader and a pyflame model loaded from them.

Example:
    $ python3 scripts/make_golden_pt.py
    wrote tests/golden/runtime/linear2.pt (1,6xx bytes) and linear2.npz
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Dict

import numpy as np

OUT_DIR = os.path.join("tests", "golden", "runtime")


def build() -> tuple[bytes, Dict[str, np.ndarray]]:
    """Returns the checkpoint bytes and the reference arrays."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
    sd = model.state_dict()
    buf = io.BytesIO()
    torch.save(sd, buf)
    x = torch.linspace(-1.0, 1.0, 6).reshape(2, 3)
    with torch.no_grad():
        y = model(x)
    ref = {f"sd__{k}": v.numpy() for k, v in sd.items()}
    ref["x"], ref["y"] = x.numpy(), y.numpy()
    return buf.getvalue(), ref


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="compare instead of writing")
    args = ap.parse_args()
    data, ref = build()
    pt, npz = os.path.join(OUT_DIR, "linear2.pt"), os.path.join(OUT_DIR, "linear2.npz")
    if args.check:
        old = np.load(npz)
        ok = set(old.files) == set(ref) and all(np.array_equal(old[k], ref[k]) for k in ref)
        print("golden files up to date" if ok else "golden files differ")
        return 0 if ok else 1
    os.makedirs(OUT_DIR, exist_ok=True)
    with open(pt, "wb") as f:
        f.write(data)
    np.savez(npz, **ref)
    print(f"wrote {pt} ({len(data):,} bytes) and {os.path.basename(npz)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
