"""pyflame_rt vs onnxruntime: latency (interleaved medians), session creation, peak memory.

Needs the models of scripts/make_onnx_models.py and onnxruntime (dev only). ONNX Runtime
runs with its default settings (its worker threads spin between runs); the libraries run in
alternating blocks of calls (see `interleaved`).

    python benches/bench_runtime.py [--reps 240]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.environ.get("PYFLAME_RT_MODELS", os.path.join(ROOT, "target", "onnx_models"))


def interleaved(fa, fb, reps: int, blocks: int = 6):
    """Median seconds of `reps` calls each of fa and fb, run in alternating blocks.

    Each library gets a few untimed calls and a short pause before its block: ONNX Runtime's
    worker threads (and pyflame_rt's, during a graph) spin waiting for work, and a block
    right after the other library's would share the cores with those spinning threads.
    Blocks alternate their order so slow drift of the machine hits both equally.
    """
    ta: list = []
    tb: list = []
    per_block = max(1, reps // blocks)
    for blk in range(blocks):
        order = ((fa, ta), (fb, tb)) if blk % 2 == 0 else ((fb, tb), (fa, ta))
        for f, acc in order:
            for _ in range(2):
                f()
            time.sleep(0.05)
            f()
            for _ in range(per_block):
                t = time.perf_counter()
                f()
                acc.append(time.perf_counter() - t)
    return statistics.median(ta), statistics.median(tb)


def _peak_rss_child(kind: str, model: str) -> float:
    """Peak RSS (MB) of a fresh process that creates a session and runs the BERT model once."""
    code = f"""
import numpy as np
h = np.random.default_rng(0).standard_normal((8, 128, 256)).astype(np.float32)
m = np.ones((8, 128), np.float32)
if {kind!r} == "ort":
    import onnxruntime as rt
    s = rt.InferenceSession({model!r}, providers=["CPUExecutionProvider"])
else:
    import pyflame_rt as rt
    so = rt.SessionOptions()
    so.graph_optimization_level = rt.GraphOptimizationLevel.ORT_ENABLE_ALL
    s = rt.InferenceSession({model!r}, so)
for _ in range(3):
    s.run(None, {{"hidden": h, "attention_mask": m}})
# VmHWM, not ru_maxrss: Linux carries ru_maxrss of the forking parent across exec
hwm = [ln for ln in open("/proc/self/status") if ln.startswith("VmHWM")][0]
print(int(hwm.split()[1]) / 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.split()[0])


def main() -> None:
    import onnxruntime
    import pyflame_rt

    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=240, help="timed calls per library and case")
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    resnet = os.path.join(MODELS, "resnet18.onnx")
    bert = os.path.join(MODELS, "bert_encoder.onnx")
    if not (os.path.exists(resnet) and os.path.exists(bert)):
        sys.exit("models missing: run python scripts/make_onnx_models.py")
    rows = []
    pso = pyflame_rt.SessionOptions()
    pso.graph_optimization_level = pyflame_rt.GraphOptimizationLevel.ORT_ENABLE_ALL
    for name, path in (("resnet18", resnet), ("bert_encoder", bert)):
        gc.collect()
        ca, cb = [], []
        for _ in range(5):
            t = time.perf_counter()
            pyflame_rt.InferenceSession(path, pso)
            ca.append(time.perf_counter() - t)
            t = time.perf_counter()
            onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
            cb.append(time.perf_counter() - t)
        a, b = statistics.median(ca), statistics.median(cb)
        rows.append((f"{name} session creation", a, b))
    # ONNX Runtime with its default settings (the target). Its worker threads spin
    # for a while after each run; the untimed call before each timed one (`interleaved`)
    # keeps that spinning out of the other library's timed call.
    so = onnxruntime.SessionOptions()
    pf_r = pyflame_rt.InferenceSession(resnet, pso)
    ort_r = onnxruntime.InferenceSession(resnet, so, providers=["CPUExecutionProvider"])
    for bsz in (1, 32):
        x = rng.standard_normal((bsz, 3, 32, 32)).astype(np.float32)
        a, b = interleaved(
            lambda: pf_r.run(None, {"input": x}),  # noqa: B023
            lambda: ort_r.run(None, {"input": x}),  # noqa: B023
            args.reps,
        )
        rows.append((f"resnet18 batch {bsz}", a, b))
    pf_b = pyflame_rt.InferenceSession(bert, pso)
    ort_b = onnxruntime.InferenceSession(bert, so, providers=["CPUExecutionProvider"])
    feed = {
        "hidden": rng.standard_normal((8, 128, 256)).astype(np.float32),
        "attention_mask": np.ones((8, 128), np.float32),
    }
    a, b = interleaved(lambda: pf_b.run(None, feed), lambda: ort_b.run(None, feed), args.reps)
    rows.append(("bert_encoder batch 8", a, b))
    print(f"{'case':32s} {'pyflame_rt ms':>14s} {'onnxruntime ms':>15s} {'ratio':>7s}")
    for name, a, b in rows:
        print(f"{name:32s} {a * 1e3:14.3f} {b * 1e3:15.3f} {a / b:7.2f}x")
    pa, pb = _peak_rss_child("pf", bert), _peak_rss_child("ort", bert)
    print(
        f"bert_encoder peak RSS (fresh process, 3 runs): pyflame_rt {pa:.0f} MB, "
        f"onnxruntime {pb:.0f} MB, ratio {pa / pb:.2f}x"
    )


if __name__ == "__main__":
    main()
