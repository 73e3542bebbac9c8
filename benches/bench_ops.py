#!/usr/bin/env python3
"""PyFlame vs NumPy (and PyTorch CPU, if importable) micro-benchmarks.

All libraries are timed in one process, interleaved: each repetition runs
every library once, in a rotating order, so that frequency scaling, thermal
state and background noise hit all of them alike.  Reported numbers are
medians over the repetitions, after warm-up runs.

Timed regions
-------------
* pyflame: building the expression *and* ``.eval()`` of the result; inputs are
  created with ``pf.from_numpy`` / ``pf.randn`` and forced with ``.eval()``
  before timing.
* numpy / torch: the eager operations.

Benchmarks
----------
* fp32 matmul 1024x1024 @ 1024x1024 (GFLOP/s)
* relu(a * b + c) on 16M float32 (ms; effective GB/s counting 4 arrays of
  traffic), compared with the machine's copy bandwidth (np.copyto of 16M
  float32, counting 2 arrays of traffic)
* sum and max over 16M float32 (ms, GB/s of input read)
* graph build time on tiny tensors: 10k ops built, no eval (us/op)
* a 10-op graph on tiny tensors whose schedule is cached: build + eval (us/eval)

Usage: python benches/bench_ops.py [--quick] [--reps N]
Prints a markdown table to stdout.
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np
import pyflame as pf


def load_torch():
    # PyTorch with its default settings (until session 4 this set OMP_WAIT_POLICY=PASSIVE,
    # which slows PyTorch's small parallel ops).
    try:
        import torch  # optional comparison only
    except Exception as exc:  # ImportError, or a broken install raising OSError
        print(
            f"<!-- torch not available: {type(exc).__name__}: {str(exc).splitlines()[0][:120]} -->"
        )
        return None
    torch.set_num_threads(2)
    return torch


# ---------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------


def interleaved(impls, reps, warmup, inner=1):
    """Median seconds per call (per inner iteration) for each implementation.

    impls: dict name -> zero-argument callable running `inner` iterations.
    """
    names = list(impls)
    for name in names:
        for _ in range(warmup):
            impls[name]()
    samples = {name: [] for name in names}
    for r in range(reps):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            # One untimed call first: it absorbs the previous library's worker threads
            # still spinning (OpenMP, OpenBLAS), which would otherwise steal a core.
            impls[name]()
            t0 = time.perf_counter()
            impls[name]()
            samples[name].append((time.perf_counter() - t0) / inner)
    return {name: statistics.median(ts) for name, ts in samples.items()}


# ---------------------------------------------------------------------------
# reporting
# ---------------------------------------------------------------------------

ROWS = []
NOTES = []


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    if v >= 10:
        return f"{v:.1f}"
    return f"{v:.3g}"


def add_row(name, unit, values, higher_is_better):
    """values: dict lib -> metric in `unit` (None if not run)."""
    pfv = values.get("pyflame")

    def ratio(other):
        ov = values.get(other)
        if pfv is None or ov is None or ov == 0 or pfv == 0:
            return None
        return pfv / ov if higher_is_better else ov / pfv

    ROWS.append(
        (name, unit, pfv, values.get("numpy"), values.get("torch"), ratio("numpy"), ratio("torch"))
    )


def print_table(torch_ok):
    print()
    print("| benchmark | unit | pyflame | numpy | torch | pf speed vs numpy | pf speed vs torch |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for name, unit, p, n, t, rn, rt in ROWS:
        rn_s = "-" if rn is None else f"{rn:.2f}x"
        rt_s = "-" if rt is None else f"{rt:.2f}x"
        t_s = fmt(t) if torch_ok else "n/a"
        print(f"| {name} | {unit} | {fmt(p)} | {fmt(n)} | {t_s} | {rn_s} | {rt_s} |")
    print()
    print(
        "Speed ratios > 1 mean pyflame is faster "
        "(time ratio other/pyflame, or throughput pyflame/other)."
    )
    for note in NOTES:
        print(f"- {note}")


def check(name, got, ref, rtol, atol):
    ok = np.allclose(
        np.asarray(got, dtype=np.float64), np.asarray(ref, dtype=np.float64), rtol=rtol, atol=atol
    )
    if not ok:
        NOTES.append(f"**{name}: pyflame result does not match numpy** (rtol={rtol}, atol={atol})")
    return ok


# ---------------------------------------------------------------------------
# benchmarks
# ---------------------------------------------------------------------------


def bench_matmul(rng, torch, reps, warmup, n=1024):
    A = rng.standard_normal((n, n), dtype=np.float32)
    B = rng.standard_normal((n, n), dtype=np.float32)
    a, b = pf.from_numpy(A), pf.from_numpy(B)
    a.eval()
    b.eval()
    check("matmul", (a @ b).numpy(), A.astype(np.float64) @ B.astype(np.float64), 1e-3, 1e-3)
    impls = {
        "pyflame": lambda: (a @ b).eval(),
        "numpy": lambda: A @ B,
    }
    if torch is not None:
        ta, tb = torch.from_numpy(A), torch.from_numpy(B)
        impls["torch"] = lambda: ta @ tb
    t = interleaved(impls, reps, warmup)
    flop = 2.0 * n**3
    add_row(f"matmul fp32 {n}x{n}", "GFLOP/s", {k: flop / v / 1e9 for k, v in t.items()}, True)


def bench_elementwise(rng, torch, reps, warmup, n=16 << 20):
    A = rng.standard_normal(n, dtype=np.float32)
    B = rng.standard_normal(n, dtype=np.float32)
    C = rng.standard_normal(n, dtype=np.float32)
    a, b, c = pf.from_numpy(A), pf.from_numpy(B), pf.from_numpy(C)
    pf.eval(a, b, c)
    check("relu(a*b+c)", pf.relu(a * b + c).numpy(), np.maximum(A * B + C, 0), 1e-6, 1e-6)
    dst = np.empty_like(A)
    impls = {
        "pyflame": lambda: pf.relu(a * b + c).eval(),
        "numpy": lambda: np.maximum(A * B + C, np.float32(0)),
        "copy": lambda: np.copyto(dst, A),
    }
    if torch is not None:
        ta, tb, tc = (torch.from_numpy(x) for x in (A, B, C))
        impls["torch"] = lambda: torch.relu(ta * tb + tc)
    t = interleaved(impls, reps, warmup)
    copy_t = t.pop("copy")
    add_row("relu(a*b+c) 16M fp32", "ms", {k: v * 1e3 for k, v in t.items()}, False)
    traffic = 4 * n * 4  # three reads, one write
    gbps = {k: traffic / v / 1e9 for k, v in t.items()}
    add_row("relu(a*b+c) 16M fp32", "GB/s (4 arrays)", gbps, True)
    copy_gbps = 2 * n * 4 / copy_t / 1e9
    NOTES.append(
        f"machine copy bandwidth (np.copyto, 16M fp32, 2 arrays of traffic): {copy_gbps:.1f} GB/s; "
        f"pyflame relu(a*b+c) reaches {gbps['pyflame'] / copy_gbps:.0%} of it "
        f"(numpy: {gbps['numpy'] / copy_gbps:.0%})"
    )


def bench_reductions(rng, torch, reps, warmup, n=16 << 20):
    A = rng.standard_normal(n, dtype=np.float32)
    a = pf.from_numpy(A)
    a.eval()
    check("sum", a.sum().item(), A.astype(np.float64).sum(), 1e-4, 1e-1)
    check("max", a.max().item(), A.max(), 0, 0)
    ta = torch.from_numpy(A) if torch is not None else None
    for name, pf_fn, np_fn, t_fn in [
        ("sum", lambda: a.sum().eval(), lambda: A.sum(), lambda: ta.sum()),
        ("max", lambda: a.max().eval(), lambda: A.max(), lambda: ta.max()),
    ]:
        impls = {"pyflame": pf_fn, "numpy": np_fn}
        if torch is not None:
            impls["torch"] = t_fn
        t = interleaved(impls, reps, warmup)
        add_row(f"{name} 16M fp32", "ms", {k: v * 1e3 for k, v in t.items()}, False)
        add_row(f"{name} 16M fp32", "GB/s (read)", {k: n * 4 / v / 1e9 for k, v in t.items()}, True)


def bench_graph_build(torch, reps, warmup, n_ops=10_000, chain=100):
    x = pf.randn([4])
    x.eval()
    xn = x.numpy()

    def build():
        keep = []
        for _ in range(n_ops // chain):
            y = x
            for _ in range(chain // 2):
                y = y * x
                y = y + x
            keep.append(y)
        return keep

    def numpy_eager():
        for _ in range(n_ops // chain):
            y = xn
            for _ in range(chain // 2):
                y = y * xn
                y = y + xn

    impls = {"pyflame": build, "numpy": numpy_eager}
    if torch is not None:
        tx = torch.from_numpy(xn)

        def torch_eager():
            for _ in range(n_ops // chain):
                y = tx
                for _ in range(chain // 2):
                    y = y * tx
                    y = y + tx

        impls["torch"] = torch_eager
    t = interleaved(impls, reps, warmup)
    add_row(
        "build 10k ops, tiny [4] (pf: no eval; others: eager)",
        "us/op",
        {k: v / n_ops * 1e6 for k, v in t.items()},
        False,
    )


def bench_cached_graph(torch, reps, warmup, inner=200):
    X = np.linspace(-1.0, 1.0, 16, dtype=np.float32)
    x = pf.from_numpy(X)
    x.eval()

    def ten_ops(v, relu, exp):
        y = v * 2.0  # 1
        y = y + v  # 2
        y = relu(y)  # 3
        y = y - 0.5  # 4
        y = y * y  # 5
        y = exp(y * -1.0)  # 6, 7
        y = y + v  # 8
        y = y / 3.0  # 9
        return relu(y)  # 10

    ref = ten_ops(X.astype(np.float64), lambda z: np.maximum(z, 0), np.exp)
    check("10-op graph", ten_ops(x, pf.relu, pf.exp).numpy(), ref, 1e-5, 1e-6)

    def pf_run():
        for _ in range(inner):
            ten_ops(x, pf.relu, pf.exp).eval()

    def np_run():
        for _ in range(inner):
            ten_ops(X, lambda z: np.maximum(z, np.float32(0)), np.exp)

    impls = {"pyflame": pf_run, "numpy": np_run}
    if torch is not None:
        tX = torch.from_numpy(X)

        def torch_run():
            for _ in range(inner):
                ten_ops(tX, torch.relu, torch.exp)

        impls["torch"] = torch_run
    t = interleaved(impls, reps, warmup, inner=inner)
    add_row(
        "10-op tiny graph, cached schedule (build+eval)",
        "us/eval",
        {k: v * 1e6 for k, v in t.items()},
        False,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="fewer repetitions (5 instead of 15, 1 warm-up)"
    )
    ap.add_argument(
        "--reps", type=int, default=None, help="override the number of timed repetitions"
    )
    ap.add_argument(
        "--only",
        default=None,
        help="comma list of: matmul,elementwise,reductions,build,cached (default: all)",
    )
    args = ap.parse_args(argv)
    reps = args.reps or (5 if args.quick else 15)
    warmup = 1 if args.quick else 3
    only = set(args.only.split(",")) if args.only else None

    torch = load_torch()
    print("# PyFlame benchmarks")
    print()
    print(
        f"- pyflame {getattr(pf, '__version__', '?')}, numpy {np.__version__}"
        + (
            f", torch {torch.__version__} ({torch.get_num_threads()} threads)"
            if torch is not None
            else ", torch: not available"
        )
    )
    machine = f"{platform.machine()} {platform.processor() or ''}".strip()
    print(f"- {machine}, cpus={os.cpu_count()}, python {platform.python_version()}")
    print(f"- {reps} interleaved repetitions after {warmup} warm-up runs, medians")
    sys.stdout.flush()

    rng = np.random.default_rng(0)
    pf.manual_seed(0)
    steps = [
        ("matmul", lambda: bench_matmul(rng, torch, reps, warmup)),
        ("elementwise", lambda: bench_elementwise(rng, torch, reps, warmup)),
        ("reductions", lambda: bench_reductions(rng, torch, reps, warmup)),
        ("build", lambda: bench_graph_build(torch, reps, warmup)),
        ("cached", lambda: bench_cached_graph(torch, reps, warmup)),
    ]
    for name, fn in steps:
        if only is None or name in only:
            fn()
    print_table(torch is not None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
