"""`pyflame quickstart`: a short, real end-to-end run.

1. Builds a small graph, prints it, evaluates it and checks it against NumPy.
2. Measures fp32 matmul throughput.
3. Trains an MLP on scikit-learn's 8x8 handwritten digits (real data shipped inside the
   scikit-learn package, so nothing is downloaded) and reports test accuracy and time.

Example:
    $ pyflame quickstart
"""

from __future__ import annotations

import tempfile
import time
from typing import Callable, Optional

import numpy as np

import pyflame as pf


def _print_graph_demo() -> bool:
    pf.manual_seed(0)
    x = pf.randn([256, 128])
    w = pf.randn([128, 64]) * 0.1
    b = pf.zeros([64])
    h = pf.relu(x @ w + b)
    y = pf.softmax(h, dim=-1)
    loss = (y * y).sum(dim=1).mean()
    print("\nThe graph (nothing has been computed yet):")
    pf.print_graph(loss)
    start = time.perf_counter()
    value = loss.item()
    print(f"\nEvaluated in {1e3 * (time.perf_counter() - start):.2f} ms: value = {value:.6f}")
    xn, wn = x.numpy().astype(np.float64), w.numpy().astype(np.float64)
    hn = np.maximum(xn @ wn, 0.0)
    e = np.exp(hn - hn.max(axis=1, keepdims=True))
    yn = e / e.sum(axis=1, keepdims=True)
    reference = float((yn * yn).sum(axis=1).mean())
    error = abs(value - reference) / abs(reference)
    ok = error < 1e-4
    verdict = "OK" if ok else "MISMATCH"
    print(f"NumPy reference: {reference:.6f} (relative error {error:.2e}) -> {verdict}")
    return ok


def matmul_gflops(n: int = 1024, repeats: int = 5) -> float:
    """Median fp32 GFLOP/s of an `n x n` matmul.

    Example:
        >>> matmul_gflops(64, 1) > 0
        True
    """
    a = pf.randn([n, n]).eval()
    b = pf.randn([n, n]).eval()
    (a @ b).eval()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        (a @ b).eval()
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / float(np.median(times)) / 1e9


def load_digits_split(seed: int = 0) -> tuple:
    """scikit-learn's digits as standardized float32 train/test arrays (80/20 split).

    Example:
        >>> xtr, ytr, xte, yte = load_digits_split()  # doctest: +SKIP
        >>> xtr.shape[1]  # doctest: +SKIP
        64
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError(
            "the quickstart trains on scikit-learn's digits data set; install it with "
            "`pip install scikit-learn`"
        ) from exc
    data = load_digits()
    x = data.data.astype(np.float32) / 16.0
    y = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    x, y = x[order], y[order]
    split = int(0.8 * len(x))
    mean = x[:split].mean(axis=0)
    std = x[:split].std(axis=0) + 1e-3
    x = (x - mean) / std
    return x[:split], y[:split], x[split:], y[split:]


def _progress(total: int, desc: str) -> Callable[[int, Optional[str]], None]:
    try:
        from tqdm import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency
        tqdm = None
    if tqdm is None:

        def plain(n: int, postfix: Optional[str] = None) -> None:
            print(f"{desc}: {n}/{total} {postfix or ''}")

        return plain
    bar = tqdm(total=total, desc=desc, unit="epoch", leave=True)

    def update(n: int, postfix: Optional[str] = None) -> None:
        bar.update(n - bar.n)
        if postfix:
            bar.set_postfix_str(postfix)
        if n >= total:
            bar.close()

    return update


def train_digits(epochs: int = 30, batch_size: int = 64, seed: int = 0) -> tuple:
    """Trains a 64-128-10 MLP with Adam on the digits; returns (accuracy, seconds, model).

    Example:
        >>> acc, seconds = train_digits(epochs=2)  # doctest: +SKIP
    """
    from pyflame import nn, optim

    xtr, ytr, xte, yte = load_digits_split(seed)
    pf.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 10))
    opt = optim.Adam(model.parameters(), lr=3e-3)
    sched = optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    loss_fn = nn.CrossEntropyLoss()
    rng = np.random.default_rng(seed)
    progress = _progress(epochs, "training")
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = rng.permutation(len(xtr))
        total, count = 0.0, 0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            xb, yb = pf.tensor(xtr[idx]), pf.tensor(ytr[idx])
            loss = loss_fn(model(xb), yb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
            count += len(idx)
        sched.step()
        progress(epoch + 1, f"loss {total / count:.4f}")
    seconds = time.perf_counter() - start
    model.eval()
    with pf.no_grad():
        predictions = model(pf.tensor(xte)).argmax(dim=1).numpy()
    accuracy = float((predictions == yte).mean())
    return accuracy, seconds, model


def compile_model_to_csl(model: pf.nn.Module, samples: np.ndarray, output_dir: str) -> bool:
    """Compiles the trained MLP's inference graph (softmax of the logits) for a 2x2 PE grid,
    then validates the program and checks the fabric simulator against the CPU executor.

    Example:
        >>> compile_model_to_csl(model, xte[:16], "/tmp/csl")  # doctest: +SKIP
        True
    """
    grid = pf.MeshLayout.grid(2, 2)
    first, last = model[0], model[3]

    def on_grid(a: np.ndarray) -> pf.Tensor:
        return pf.from_numpy(np.ascontiguousarray(a, dtype=np.float32), layout=grid)

    x = on_grid(samples)
    w1, b1 = on_grid(first.weight.numpy().T), on_grid(first.bias.numpy())
    w2, b2 = on_grid(last.weight.numpy().T), on_grid(last.bias.numpy())
    probabilities = pf.softmax(pf.relu(x @ w1 + b1) @ w2 + b2, dim=-1)
    options = pf.CodeGenOptions()
    options.output_dir = output_dir
    result = pf.compile_to_csl(probabilities, options)
    if not result.success:
        print(f"CSL generation failed: {result.error_message}")
        return False
    issues = [i for i in pf.csl.validate(output_dir) if i[1] == "error"]
    estimate = result.estimate or {}
    error = result.sim_max_abs_error
    print(f"wrote {len(result.generated_files)} files to {output_dir}")
    print(f"validator: {'clean' if not issues else f'{len(issues)} errors'}")
    if error is not None:
        print(f"fabric simulator vs CPU executor: max abs difference {error:.2e}")
    if "cycles" in estimate:
        print(f"performance model: {estimate['cycles']} cycles on the WSE-2 model")
    return not issues and error is not None and error < 1e-4


def run(size: int = 1024, repeats: int = 5, epochs: int = 30) -> int:
    """Runs the whole quickstart; returns a process exit code.

    Example:
        >>> run(size=64, repeats=1, epochs=2)  # doctest: +SKIP
        0
    """
    print(f"PyFlame {pf.__version__} quickstart")
    ok = _print_graph_demo()
    print(f"\nfp32 matmul {size}x{size}: {matmul_gflops(size, repeats):.1f} GFLOP/s")
    print("\nTraining a 64-128-10 MLP on scikit-learn's handwritten digits (1437 train / 360 test)")
    accuracy, seconds, model = train_digits(epochs=epochs)
    print(f"test accuracy {100 * accuracy:.2f}% after {epochs} epochs in {seconds:.1f} s")
    good = accuracy >= 0.95
    if not good:
        print("accuracy is below the expected 95%")
    print("\nCompiling the trained model's inference graph to CSL for a 2x2 PE grid")
    _, _, xte, _ = load_digits_split()
    out_dir = tempfile.mkdtemp(prefix="pyflame_csl_")
    compiled = compile_model_to_csl(model, xte[:16], out_dir)
    return 0 if ok and good and compiled else 1
