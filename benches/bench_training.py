#!/usr/bin/env python3
"""Training-step benchmarks: PyFlame against PyTorch CPU, interleaved in one process.

Models (the issue's three): MLP 784-256-10 + Adam (batch 128); a small CNN (conv3x3 32, relu,
maxpool, conv3x3 64, relu, maxpool, linear 10) + SGD momentum on 1x28x28 (batch 64);
ResNet-18 (CIFAR-style, 3x32x32, 10 classes) forward+backward (batch 32).

Both libraries run the same model code shape; each repetition runs one step of each, in
alternating order; medians are compared. Peak memory of the ResNet-18 step is measured in
fresh child processes (growth of the peak RSS over the RSS before the first step).

Usage: python benches/bench_training.py [--reps N] [--only mlp,cnn,resnet] [--no-memory]
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np


def build(lib: str, model: str, seed: int = 0) -> tuple:
    """Returns (step function, description) for `lib` in {'pf', 'torch'}."""
    if lib == "pf":
        import pyflame as fw
        from pyflame import nn, optim

        def tensor(a):
            return fw.tensor(a)

        def flatten(x):
            return x.reshape(x.shape[0], -1)
    else:
        # PyTorch with its default settings (its OpenMP workers spin for a while after each
        # parallel region; `interleave_steps` pauses between the libraries' blocks). Until
        # session 4 this set OMP_WAIT_POLICY=PASSIVE, which made PyTorch's small steps
        # 2-2.5x slower than its default.
        import torch as fw
        from torch import nn, optim

        fw.set_num_threads(2)

        def tensor(a):
            return fw.from_numpy(a)

        def flatten(x):
            return x.reshape(x.shape[0], -1)

    fw.manual_seed(seed)
    rng = np.random.default_rng(seed)

    class BasicBlock(nn.Module):
        def __init__(self, cin: int, cout: int, stride: int) -> None:
            super().__init__()
            self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
            self.bn1 = nn.BatchNorm2d(cout)
            self.conv2 = nn.Conv2d(cout, cout, 3, stride=1, padding=1, bias=False)
            self.bn2 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.short = None
            if stride != 1 or cin != cout:
                self.short = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.bn2(self.conv2(out))
            return self.relu(out + (x if self.short is None else self.short(x)))

    class ResNet18(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.stem = nn.Sequential(
                nn.Conv2d(3, 64, 3, padding=1, bias=False), nn.BatchNorm2d(64), nn.ReLU()
            )
            layers, cin = [], 64
            for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
                cin = cout
            self.layers = nn.Sequential(*layers)
            self.pool = nn.AdaptiveAvgPool2d(1)
            self.fc = nn.Linear(512, 10)

        def forward(self, x):
            return self.fc(flatten(self.pool(self.layers(self.stem(x)))))

    loss_fn = nn.CrossEntropyLoss()
    if model == "mlp":
        net = nn.Sequential(nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
        opt = optim.Adam(net.parameters(), lr=1e-3)
        x = tensor(rng.standard_normal((128, 784)).astype(np.float32))
    elif model == "cnn":
        net = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(64 * 7 * 7, 10),
        )
        opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        x = tensor(rng.standard_normal((64, 1, 28, 28)).astype(np.float32))
    else:
        net = ResNet18()
        opt = None
        x = tensor(rng.standard_normal((32, 3, 32, 32)).astype(np.float32))
    y = tensor(rng.integers(0, 10, x.shape[0]).astype(np.int64))

    def step() -> float:
        loss = loss_fn(net(x), y)
        if opt is not None:
            opt.zero_grad()
        else:
            for p in net.parameters():
                p.grad = None
        loss.backward()
        if opt is not None:
            opt.step()
        else:
            # forward+backward only: make sure every gradient is computed
            grads = [p.grad for p in net.parameters()]
            if lib == "pf":
                fw.eval(*grads)
        return loss.item()

    return step


def bench(model: str, reps: int, block: int = 5) -> dict:
    """Median step time of each library for `model` (see :func:`interleave_steps`)."""
    return interleave_steps({lib: build(lib, model) for lib in ("pf", "torch")}, reps, block=block)


def interleave_steps(steps: dict, reps: int, pause: float = 0.02, block: int = 5) -> dict:
    """Median seconds of each step function, in alternating blocks (3 warm-up rounds first).

    Each library's block starts after a `pause` (so the other library's worker threads, which
    spin for a while after their work as PyTorch's OpenMP threads do, are idle again) and two
    untimed steps (which wake this library's threads); then `block` consecutive steps are
    timed, as in a training loop. `reps` blocks per library.
    """
    for _ in range(3):
        for s in steps.values():
            s()
    times = {lib: [] for lib in steps}
    for r in range(reps):
        order = ["pf", "torch"] if r % 2 == 0 else ["torch", "pf"]
        for lib in order:
            time.sleep(pause)
            steps[lib]()
            steps[lib]()
            for _ in range(block):
                t0 = time.perf_counter()
                steps[lib]()
                times[lib].append(time.perf_counter() - t0)
    return {lib: statistics.median(ts) for lib, ts in times.items()}


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak_rss_bytes() -> int:
    """High-water mark of this process's RSS (VmHWM). Not `ru_maxrss`: Linux carries that
    over from the forked copy of the parent across exec, so a child of a large benchmark
    process would report the parent's size."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def child_memory(lib: str, model: str) -> None:
    step = build(lib, model)
    before = _rss_bytes()
    for _ in range(3):
        step()
    print(json.dumps({"growth": _peak_rss_bytes() - before}))


def memory(model: str) -> dict:
    out = {}
    for lib in ("pf", "torch"):
        res = subprocess.run(
            [sys.executable, __file__, "--child", lib, model],
            capture_output=True,
            text=True,
            check=True,
        )
        out[lib] = json.loads(res.stdout.strip().splitlines()[-1])["growth"]
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--only", default="mlp,cnn,resnet")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_memory(*args.child)
        return
    names = {
        "mlp": "MLP 784-256-10, Adam, batch 128, full step",
        "cnn": "small CNN, SGD momentum, batch 64, full step",
        "resnet": "ResNet-18 CIFAR, batch 32, forward+backward",
    }
    print("| benchmark | pyflame ms | torch ms | time ratio pf/torch |")
    print("|---|---:|---:|---:|")
    for model in args.only.split(","):
        r = (
            bench(model, max(4, args.reps // 3), block=2)
            if model == "resnet"
            else bench(model, args.reps)
        )
        print(
            f"| {names[model]} | {r['pf'] * 1e3:.2f} | {r['torch'] * 1e3:.2f} "
            f"| {r['pf'] / r['torch']:.2f}x |"
        )
    if not args.no_memory and "resnet" in args.only:
        m = memory("resnet")
        print(
            f"\nResNet-18 step peak memory growth: pyflame {m['pf'] / 2**20:.0f} MiB, "
            f"torch {m['torch'] / 2**20:.0f} MiB, ratio {m['pf'] / m['torch']:.2f}x"
        )


if __name__ == "__main__":
    main()
