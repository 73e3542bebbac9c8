"""Train a small CNN on scikit-learn's 8x8 digits with PyFlame.

Run: python examples/train_digits_cnn.py [--epochs 12]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import pyflame as pf
from pyflame import nn, optim
from sklearn.datasets import load_digits


def main(epochs: int = 12) -> float:
    """Trains the CNN and returns its test accuracy."""
    digits = load_digits()
    x = (digits.images.astype(np.float32) / 16.0)[:, None]  # [N, 1, 8, 8]
    y = digits.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))

    pf.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.MaxPool2d(2),  # 4x4
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(32, 10),
    )
    opt = optim.AdamW(model.parameters(), lr=1e-2)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = rng.permutation(split)
        for i in range(0, split, 64):
            idx = perm[i : i + 64]
            loss = loss_fn(model(pf.tensor(x[idx])), pf.tensor(y[idx]))
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"epoch {epoch + 1}: last batch loss {loss.item():.4f}")
    model.eval()
    with pf.no_grad():
        pred = model(pf.tensor(x[split:])).argmax(dim=1).numpy()
    accuracy = float((pred == y[split:]).mean())
    print(f"test accuracy {100 * accuracy:.1f}% in {time.perf_counter() - start:.1f} s")
    return accuracy


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=12)
    main(parser.parse_args().epochs)
