#!/usr/bin/env python3
"""Convolution layers: PyFlame against PyTorch CPU, interleaved in one process.

Every 3x3 (and 1x1 shortcut) layer shape of a CIFAR ResNet-18 at batch 32, plus batch-1
layers, forward alone and forward + both gradients. Each repetition times one call of each
library in turn (after an untimed call of the same library); medians are compared.

Usage: python benches/bench_conv.py [--reps N] [--threads T] [--cpu-time]

`--cpu-time` measures process CPU time instead of wall time: on a shared, noisy machine it is
steadier (it does not count time the process waits for a core), at the price of counting
spinning worker threads.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

# (N, C, H, O, kernel, stride, padding)
LAYERS = [
    (32, 3, 32, 64, 3, 1, 1),
    (32, 64, 32, 64, 3, 1, 1),
    (32, 64, 32, 128, 3, 2, 1),
    (32, 64, 32, 128, 1, 2, 0),
    (32, 128, 16, 128, 3, 1, 1),
    (32, 128, 16, 256, 3, 2, 1),
    (32, 256, 8, 256, 3, 1, 1),
    (32, 256, 8, 512, 3, 2, 1),
    (32, 512, 4, 512, 3, 1, 1),
    (1, 64, 32, 64, 3, 1, 1),
    (1, 128, 16, 128, 3, 1, 1),
    (1, 256, 8, 256, 3, 1, 1),
    (1, 256, 2, 256, 3, 1, 1),
]


def _calls(pf, F, torch, rng, layer: tuple) -> dict:  # noqa: ANN001 - modules
    """The four timed calls of one layer: PyFlame and PyTorch, forward and forward+backward."""
    n, c, h, o, k, s, p = layer
    x = rng.standard_normal((n, c, h, h)).astype(np.float32)
    w = (rng.standard_normal((o, c, k, k)) * 0.1).astype(np.float32)
    ho = (h + 2 * p - k) // s + 1
    gy = rng.standard_normal((n, o, ho, ho)).astype(np.float32)
    px, pw, pg = pf.tensor(x), pf.tensor(w), pf.tensor(gy)
    tx, tw, tg = torch.from_numpy(x), torch.from_numpy(w), torch.from_numpy(gy)

    def pf_fwd() -> None:
        F.conv2d(px, pw, stride=s, padding=p).eval()

    def torch_fwd() -> None:
        with torch.no_grad():
            torch.nn.functional.conv2d(tx, tw, stride=s, padding=p)

    def pf_fb() -> None:
        a, b = pf.tensor(x).requires_grad_(), pf.tensor(w).requires_grad_()
        F.conv2d(a, b, stride=s, padding=p).backward(pg)
        pf.eval(a.grad, b.grad)

    def torch_fb() -> None:
        a, b = tx.clone().requires_grad_(), tw.clone().requires_grad_()
        torch.nn.functional.conv2d(a, b, stride=s, padding=p).backward(tg)

    return {"pf_fwd": pf_fwd, "t_fwd": torch_fwd, "pf_fb": pf_fb, "t_fb": torch_fb}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cpu-time", action="store_true")
    args = ap.parse_args()
    os.environ.setdefault("RAYON_NUM_THREADS", str(args.threads))
    import pyflame as pf
    import pyflame.nn.functional as F
    import torch

    torch.set_num_threads(args.threads)
    clock = time.process_time if args.cpu_time else time.perf_counter
    rng = np.random.default_rng(0)

    def timed(fn) -> float:
        fn()
        t = clock()
        fn()
        return clock() - t

    print("| layer (N, C, H, O, k, stride, pad) | fwd PyFlame / PyTorch ms | ratio |", end="")
    print(" fwd+bwd PyFlame / PyTorch ms | ratio |")
    print("|---|---:|---:|---:|---:|")
    for layer in LAYERS:
        fns = _calls(pf, F, torch, rng, layer)
        times: dict = {f: [] for f in ("pf_fwd", "t_fwd", "pf_fb", "t_fb")}
        for _ in range(args.reps):
            for key, fn in fns.items():
                times[key].append(timed(fn))
        m = {key: statistics.median(v) * 1e3 for key, v in times.items()}
        print(
            f"| {layer} | {m['pf_fwd']:.2f} / {m['t_fwd']:.2f} | "
            f"{m['pf_fwd'] / m['t_fwd']:.2f}x | {m['pf_fb']:.2f} / {m['t_fb']:.2f} | "
            f"{m['pf_fb'] / m['t_fb']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
