#!/usr/bin/env python3
"""Training-step benchmarks of normalization and attention: PyFlame against PyTorch CPU,
interleaved in one process (medians compared).

Models:

* ``ln``: MLP 512-512-LayerNorm-ReLU-512-LayerNorm-10, Adam, batch 256;
* ``bn``: the same MLP with BatchNorm1d (training mode, running statistics updated), Adam;
* ``bn2d``: BatchNorm2d(32)-ReLU-BatchNorm2d(32)-flatten-Linear(8192, 10) on [64, 32, 16, 16]
  input, SGD momentum;
* ``mha``: a pre-norm transformer block (LayerNorm, MultiheadAttention(256, 8, batch_first,
  ``need_weights=False``), residual, LayerNorm, FFN 256-1024-256) on [16, 128, 256], Adam;
* ``causal``: the ``mha`` block with ``is_causal`` self-attention via
  ``F.scaled_dot_product_attention`` on [8, 8, 256, 32] heads.

Usage: python benches/bench_norm_attention.py [--reps N] [--only ln,bn,bn2d,mha,causal]
"""

from __future__ import annotations

import argparse

import numpy as np
from bench_training import interleave_steps


def build(lib: str, model: str, seed: int = 0):
    """Returns one training-step function of `model` for `lib` in {'pf', 'torch'}."""
    if lib == "pf":
        import pyflame as fw
        from pyflame import nn, optim
        from pyflame.nn import functional as F

        def tensor(a):
            return fw.tensor(a)
    else:
        import torch as fw
        from torch import nn, optim
        from torch.nn import functional as F

        fw.set_num_threads(2)

        def tensor(a):
            return fw.from_numpy(a)

    fw.manual_seed(seed)
    rng = np.random.default_rng(seed)

    class Block(nn.Module):
        def __init__(self, e: int, heads: int) -> None:
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(e), nn.LayerNorm(e)
            self.attn = nn.MultiheadAttention(e, heads, batch_first=True)
            self.ff = nn.Sequential(nn.Linear(e, 4 * e), nn.GELU(), nn.Linear(4 * e, e))

        def forward(self, x):
            h = self.ln1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            return x + self.ff(self.ln2(x))

    class CausalBlock(nn.Module):
        def __init__(self, e: int, heads: int) -> None:
            super().__init__()
            self.heads = heads
            self.ln = nn.LayerNorm(e)
            self.qkv = nn.Linear(e, 3 * e)
            self.out = nn.Linear(e, e)

        def forward(self, x):
            b, n, e = x.shape
            qkv = self.qkv(self.ln(x)).reshape(b, n, 3, self.heads, e // self.heads)
            q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            return x + self.out(a.transpose(1, 2).reshape(b, n, e))

    loss_fn = nn.MSELoss()
    if model in ("ln", "bn"):
        norm = nn.LayerNorm if model == "ln" else nn.BatchNorm1d
        net = nn.Sequential(
            nn.Linear(512, 512), norm(512), nn.ReLU(), nn.Linear(512, 512), norm(512),
            nn.Linear(512, 10),
        )  # fmt: skip
        opt = optim.Adam(net.parameters(), lr=1e-3)
        x = tensor(rng.standard_normal((256, 512)).astype(np.float32))
        y = tensor(rng.standard_normal((256, 10)).astype(np.float32))
    elif model == "bn2d":
        net = nn.Sequential(
            nn.BatchNorm2d(32), nn.ReLU(), nn.BatchNorm2d(32), nn.Flatten(),
            nn.Linear(32 * 16 * 16, 10),
        )  # fmt: skip
        opt = optim.SGD(net.parameters(), lr=0.01, momentum=0.9)
        x = tensor(rng.standard_normal((64, 32, 16, 16)).astype(np.float32))
        y = tensor(rng.standard_normal((64, 10)).astype(np.float32))
    elif model == "mha":
        net = Block(256, 8)
        opt = optim.Adam(net.parameters(), lr=1e-4)
        x = tensor(rng.standard_normal((16, 128, 256)).astype(np.float32))
        y = tensor(rng.standard_normal((16, 128, 256)).astype(np.float32))
    else:
        net = CausalBlock(256, 8)
        opt = optim.Adam(net.parameters(), lr=1e-4)
        x = tensor(rng.standard_normal((8, 256, 256)).astype(np.float32))
        y = tensor(rng.standard_normal((8, 256, 256)).astype(np.float32))
    net.train()

    def step() -> float:
        loss = loss_fn(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    return step


def bench(model: str, reps: int) -> dict:
    """Median step time of each library for `model`, interleaved like bench_training."""
    return interleave_steps({lib: build(lib, model) for lib in ("pf", "torch")}, reps)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=15)
    ap.add_argument("--only", default="ln,bn,bn2d,mha,causal")
    args = ap.parse_args()
    names = {
        "ln": "MLP 512 with 2x LayerNorm, Adam, batch 256",
        "bn": "MLP 512 with 2x BatchNorm1d, Adam, batch 256",
        "bn2d": "2x BatchNorm2d(32) + linear, [64, 32, 16, 16], SGD",
        "mha": "transformer block (MHA 256/8 heads, 2x LayerNorm, FFN), [16, 128, 256], Adam",
        "causal": "causal SDPA block (LayerNorm, qkv, 8 heads), [8, 256, 256], Adam",
    }
    print("| benchmark | pyflame ms | torch ms | time ratio pf/torch |")
    print("|---|---:|---:|---:|")
    for model in args.only.split(","):
        r = bench(model, args.reps)
        print(
            f"| {names[model]} | {r['pf'] * 1e3:.2f} | {r['torch'] * 1e3:.2f} "
            f"| {r['pf'] / r['torch']:.2f}x |",
            flush=True,
        )


if __name__ == "__main__":
    main()
