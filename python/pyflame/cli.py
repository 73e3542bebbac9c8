"""The `pyflame` command line.

Example:
    $ pyflame quickstart
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Optional, Sequence

import numpy as np

import pyflame as pf


def _matmul_gflops(n: int, repeats: int) -> float:
    a = pf.randn([n, n]).eval()
    b = pf.randn([n, n]).eval()
    (a @ b).eval()  # warm up: schedule cache, thread pool, page faults
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        (a @ b).eval()
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / float(np.median(times)) / 1e9


def quickstart(size: int = 1024, repeats: int = 5) -> int:
    """Builds a small graph, shows it, evaluates it, checks it against NumPy and measures
    matmul throughput. Returns a process exit code.

    Example:
        >>> quickstart(size=64, repeats=1)  # doctest: +SKIP
        0
    """
    print(f"PyFlame {pf.__version__} quickstart")
    pf.manual_seed(0)
    x = pf.randn([256, 128])
    w = pf.randn([128, 64]) * 0.1
    b = pf.zeros([64])
    h = pf.relu(x @ w + b)
    y = pf.softmax(h, dim=-1)
    loss = (y * y).sum(dim=1).mean()
    print("\nThe graph (nothing has been computed yet):")
    pf.print_graph(loss)
    assert pf.is_lazy(loss)

    start = time.perf_counter()
    value = loss.item()
    print(f"\nEvaluated in {1e3 * (time.perf_counter() - start):.2f} ms: loss = {value:.6f}")

    xn, wn = x.numpy(), w.numpy().astype(np.float64)
    hn = np.maximum(xn @ wn, 0.0)
    e = np.exp(hn - hn.max(axis=1, keepdims=True))
    yn = e / e.sum(axis=1, keepdims=True)
    reference = float((yn * yn).sum(axis=1).mean())
    error = abs(value - reference) / abs(reference)
    ok = error < 1e-4
    verdict = "OK" if ok else "MISMATCH"
    print(f"NumPy reference: {reference:.6f} (relative error {error:.2e}) -> {verdict}")

    gflops = _matmul_gflops(size, repeats)
    print(f"\nfp32 matmul {size}x{size}: {gflops:.1f} GFLOP/s")
    return 0 if ok else 1


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `pyflame` command."""
    parser = argparse.ArgumentParser(prog="pyflame", description="PyFlame command line")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="run a short end-to-end demo")
    q.add_argument("--size", type=int, default=1024, help="matmul size for the GFLOP/s figure")
    q.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    if args.command == "quickstart":
        return quickstart(args.size, args.repeats)
    return 2


if __name__ == "__main__":
    sys.exit(main())
