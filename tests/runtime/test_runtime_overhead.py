"""Executor memory (liveness), GELU fusion, the layout pass and pre-transposed weights."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyflame_rt as ort
import pytest
from pyflame.runtime.executor import _release_lists
from pyflame_rt import opt

from ._graph_util import op_types, session_at

_erf = np.vectorize(math.erf)


def test_release_lists_free_values_after_their_last_reader():
    steps = [
        (None, None, ["x"], ["a"]),
        (None, None, ["a", "x"], ["b", "unused"]),
        (None, None, ["b"], ["y"]),
    ]
    rel = _release_lists(steps, keep={"y"})
    assert [sorted(r) for r in rel] == [[], ["a", "unused", "x"], ["b"]]


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_intermediates_are_freed_during_a_run():
    # 24 softmaxes of 4 MB each: holding every intermediate until the end would add ~96 MB
    code = textwrap.dedent(
        """
        import numpy as np
        import pyflame_rt as ort
        g = ort.Graph("chain")
        g.add_input("x", [1024, 1024], np.float32)
        prev = "x"
        for i in range(24):
            g.add_node(f"s{i}", "Softmax", [prev], [f"h{i}"], {"axis": -1})
            prev = f"h{i}"
        g.add_output(prev, [1024, 1024], np.float32)
        sess = ort.InferenceSession(g)
        x = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
        def hwm():
            st = open("/proc/self/status").read().splitlines()
            return [int(s.split()[1]) for s in st if s.startswith("VmHWM")][0]
        base = hwm()
        for _ in range(3):
            y = sess.run(None, {"x": x})[0]
        assert y.shape == (1024, 1024)
        print((hwm() - base) / 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown_mb = float(out.stdout.split()[-1])
    assert grown_mb < 40, f"peak memory grew by {grown_mb:.0f} MB during the runs"


def _gelu_graph(variant):
    rng = np.random.default_rng(0)
    g = ort.Graph("gelu")
    g.add_input("x", ["N", 8], np.float32)
    g.add_initializer("w", rng.standard_normal((8, 16)).astype(np.float32))
    g.add_initializer("b", rng.standard_normal(16).astype(np.float32))
    g.add_initializer("sqrt2", np.array(math.sqrt(2), np.float32))
    g.add_initializer("inv_sqrt2", np.array(1 / math.sqrt(2), np.float32))
    g.add_initializer("one", np.array(1, np.float32))
    g.add_initializer("half", np.array(0.5, np.float32))
    g.add_node("mm", "MatMul", ["x", "w"], ["m"])
    g.add_node("bias", "Add", ["m", "b"], ["h"])
    if variant == "div":
        g.add_node("d", "Div", ["h", "sqrt2"], ["d"])
    else:
        g.add_node("d", "Mul", ["inv_sqrt2", "h"], ["d"])
    g.add_node("e", "Erf", ["d"], ["e"])
    g.add_node("a", "Add", ["one", "e"], ["a"])
    if variant == "half_first":
        g.add_node("hh", "Mul", ["h", "half"], ["hh"])
        g.add_node("m1", "Mul", ["a", "hh"], ["y"])
    else:
        g.add_node("m1", "Mul", ["h", "a"], ["p"])
        g.add_node("m2", "Mul", ["half", "p"], ["y"])
    g.add_output("y", ["N", 16], np.float32)
    return g, g.initializers["w"], g.initializers["b"]


@pytest.mark.parametrize("variant", ["div", "mul", "half_first"])
def test_erf_gelu_becomes_one_matmul_bias_gelu_node(variant):
    g, w, b = _gelu_graph(variant)
    x = np.random.default_rng(1).standard_normal((3, 8)).astype(np.float32)
    h = x.astype(np.float64) @ w + b
    ref = 0.5 * h * (1 + _erf(h / math.sqrt(2)))
    plain = session_at(g, ort.OptLevel.NONE)
    fused = session_at(g, ort.OptLevel.EXTENDED)
    assert op_types(plain.graph).count("Erf") == 1
    assert op_types(fused.graph) == ["FusedMatMulBias"] or op_types(fused.graph) == ["FusedGemm"]
    assert fused.graph.nodes[0].attrs["activation"] == "Gelu"
    for s in (plain, fused):
        np.testing.assert_allclose(s.run(None, {"x": x})[0], ref, rtol=1e-5, atol=1e-5)


def test_gelu_not_fused_when_an_intermediate_is_used_elsewhere():
    g, _, _ = _gelu_graph("div")
    g.add_output("e", ["N", 16], np.float32)
    sess = session_at(g, ort.OptLevel.EXTENDED)
    assert "Erf" in op_types(sess.graph) and "Gelu" not in op_types(sess.graph)
    x = np.ones((2, 8), np.float32)
    ref = session_at(g, ort.OptLevel.NONE).run(None, {"x": x})
    for a, r in zip(sess.run(None, {"x": x}), ref):
        np.testing.assert_allclose(a, r, rtol=1e-6)


def _nhwc_graph():
    g = ort.Graph("nhwc")
    g.add_input("x", [2, 5, 5, 3], np.float32)
    g.add_initializer("two", np.array([2.0], np.float32))
    g.add_initializer("vec", np.arange(5, dtype=np.float32))
    g.add_node("t1", "Transpose", ["x"], ["a"], {"perm": [0, 3, 1, 2]})
    g.add_node("r", "Relu", ["a"], ["b"])
    g.add_node("m", "Mul", ["b", "two"], ["c"])
    g.add_node("t2", "Transpose", ["c"], ["y"], {"perm": [0, 2, 3, 1]})  # inverse of t1
    g.add_node("t3", "Transpose", ["x"], ["p"], {"perm": [3, 0, 1, 2]})
    g.add_node("t4", "Transpose", ["p"], ["z"], {"perm": [0, 1, 3, 2]})  # composes
    g.add_node("t5", "Transpose", ["x"], ["q"], {"perm": [0, 3, 2, 1]})
    g.add_node("s", "Add", ["q", "vec"], ["u"])  # not a scalar: the transpose must stay
    g.add_node("t6", "Transpose", ["u"], ["v"], {"perm": [0, 3, 2, 1]})
    for name, shape in (("y", [2, 5, 5, 3]), ("z", [3, 2, 5, 5]), ("v", [2, 5, 5, 3])):
        g.add_output(name, shape, np.float32)
    return g


def test_layout_pass_cancels_merges_and_keeps_transposes():
    g = _nhwc_graph()
    before = op_types(g).count("Transpose")
    res = opt.optimize_layout(g)
    assert before == 6 and res.modified and res.stats.layout_changes >= 3
    ops = op_types(g)
    assert ops.count("Transpose") == 3  # y's pair cancelled, z's pair merged, v's pair kept
    (tz,) = [n for n in g.nodes if n.outputs == ["z"]]
    assert tz.inputs == ["x"] and tz.attrs["perm"] == [3, 0, 2, 1]
    g.validate()


def test_layout_pass_outputs_unchanged_and_only_at_level_all():
    x = np.random.default_rng(2).standard_normal((2, 5, 5, 3)).astype(np.float32)
    ref = session_at(_nhwc_graph(), ort.OptLevel.NONE).run(None, {"x": x})
    np.testing.assert_allclose(ref[0], np.maximum(x, 0) * 2, rtol=1e-6)
    np.testing.assert_allclose(ref[1], x.transpose(3, 0, 2, 1), rtol=1e-6)
    ext = session_at(_nhwc_graph(), ort.OptLevel.EXTENDED)
    assert op_types(ext.graph).count("Transpose") == 6
    full = session_at(_nhwc_graph(), ort.OptLevel.ALL)
    assert op_types(full.graph).count("Transpose") == 3
    assert full.optimization_result.pass_times_ms.get("LayoutOptimizationPass") is not None
    for a, r in zip(full.run(None, {"x": x}), ref):
        np.testing.assert_allclose(a, r, rtol=1e-6)


def test_gemm_weights_are_pretransposed_once():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((6, 4)).astype(np.float32)  # [out, in] as PyTorch exports it
    g = ort.Graph("gemm")
    g.add_input("x", ["N", 4], np.float32)
    g.add_initializer("w", w)
    g.add_initializer("c", rng.standard_normal(6).astype(np.float32))
    g.add_node("fc", "Gemm", ["x", "w", "c"], ["y"], {"transB": 1, "alpha": 0.5})
    g.add_output("y", ["N", 6], np.float32)
    x = rng.standard_normal((3, 4)).astype(np.float32)
    ref = 0.5 * x @ w.T + g.initializers["c"]
    full = session_at(g, ort.OptLevel.ALL)
    (node,) = full.graph.nodes
    wt = full.graph.initializers[node.inputs[1]]
    assert int(node.attrs.get("transB", 0)) == 0 and "w" not in full.graph.initializers
    assert wt.shape == (4, 6) and wt.flags.c_contiguous
    np.testing.assert_allclose(wt, w.T)
    plain = session_at(g, ort.OptLevel.NONE)
    for s in (full, plain):
        for _ in range(2):
            np.testing.assert_allclose(s.run(None, {"x": x})[0], ref, rtol=1e-5, atol=1e-6)
    # without the pass the transposed copy is made once, not once per run
    cache = plain._executor._ctx._tensors
    n = len(cache)
    plain.run(None, {"x": x})
    assert len(cache) == n


def test_layout_config_and_unsupported_conv_layout():
    g = _nhwc_graph()
    cfg = opt.LayoutConfig(conv_layout=opt.Layout.NHWC, propagate_layout=False)
    res = opt.LayoutOptimizationPass(cfg).run(g)
    assert any("NCHW only" in w for w in res.warnings)
    # without propagation only the directly adjacent pair (t3, t4) merges
    assert op_types(g).count("Transpose") == 5
    assert "LayoutOptimizationPass" in opt.PassManager.create_default(ort.OptLevel.ALL).pass_names()
    assert (
        "LayoutOptimizationPass"
        not in opt.PassManager.create_default(ort.OptLevel.EXTENDED).pass_names()
    )


def _pool_threads():
    names = []
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                names.append(f.read().strip())
        except OSError:  # the thread ended meanwhile
            pass
    return sum(n.startswith("pyflame-pool") for n in names)


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="needs Linux /proc")
def test_num_threads_gives_the_session_its_own_pool():
    g = ort.Graph("mm")
    g.add_input("a", [64, 64], np.float32)
    g.add_node("m", "MatMul", ["a", "a"], ["b"])
    g.add_node("s", "Softmax", ["b"], ["y"], {"axis": -1})
    g.add_output("y", [64, 64], np.float32)
    a = np.random.default_rng(4).standard_normal((64, 64)).astype(np.float32)
    ref = ort.InferenceSession(g).run(None, {"a": a})[0]
    before = _pool_threads()
    so = ort.SessionOptions()
    so.intra_op_num_threads = 3
    so.execution_mode = ort.ExecutionMode.ORT_PARALLEL
    sess = ort.InferenceSession(g, sess_options=so)
    pool = sess._executor._ctx.pool
    assert pool.num_threads == 3 and pool.current_num_threads() == 3
    # rayon starts (and names) its workers asynchronously: wait for them
    deadline = time.monotonic() + 10
    while _pool_threads() < before + 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _pool_threads() == before + 3
    np.testing.assert_allclose(sess.run(None, {"a": a})[0], ref, rtol=1e-6)
    so1 = ort.SessionOptions()
    so1.num_threads = 1
    one = ort.InferenceSession(g, sess_options=so1)
    assert one._executor._ctx.pool.current_num_threads() == 1
    np.testing.assert_allclose(one.run(None, {"a": a})[0], ref, rtol=1e-6)
    assert ort.InferenceSession(g)._executor._ctx.pool is None  # 0: process-wide pool
    bad = ort.SessionOptions()
    bad.num_threads = -2
    with pytest.raises(ort.InputError, match="num_threads"):
        ort.InferenceSession(g, sess_options=bad)


def test_shape_inference_without_weight_bytes_keeps_value_info():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper
    from pyflame.runtime.onnx_import.importer import _without_weights

    w = np.ones((64, 32), np.float32)  # 2048 elements: replaced by a typed input
    g = helper.make_graph(
        [
            helper.make_node("MatMul", ["x", "w"], ["h"]),
            helper.make_node("Reshape", ["h", "shape"], ["r"]),
            helper.make_node("Relu", ["r"], ["y"]),
        ],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [
            numpy_helper.from_array(w, "w"),
            numpy_helper.from_array(np.array([-1, 4, 8], np.int64), "shape"),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    light = _without_weights(onnx, model)
    assert [i.name for i in light.graph.initializer] == ["shape"]
    assert "w" in [i.name for i in light.graph.input]
    assert len(light.SerializeToString()) < 1000 < len(model.SerializeToString())
    graph = ort.ONNXImporter().import_model(model.SerializeToString()).graph
    assert graph.value_info["h"].shape == ["N", 32]
    assert graph.value_info["r"].shape[1:] == [4, 8]
    assert graph.outputs[0].shape[1:] == [4, 8]  # output type completed by inference
    assert list(graph.initializers) == ["w", "shape"] and graph.initializers["w"].shape == (64, 32)


def test_traced_runs_do_not_accumulate_cached_constants():
    # GatherND runs on the host, so every run is traced and creates new NumPy constants
    g = ort.Graph("host")
    g.add_input("x", [4, 3], np.float32)
    g.add_initializer("idx", np.array([[1], [3]], np.int64))
    g.add_initializer("w", np.full((3,), 2.0, np.float32))
    g.add_node("gnd", "GatherND", ["x", "idx"], ["r"])
    g.add_node("m", "Mul", ["r", "w"], ["y"])
    g.add_output("y", [2, 3], np.float32)
    sess = ort.InferenceSession(g)
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    sizes = []
    for _ in range(5):
        np.testing.assert_allclose(sess.run(None, {"x": x})[0], x[[1, 3]] * 2)
        sizes.append(len(sess._executor._ctx._tensors))
    assert sizes[-1] == sizes[1] and sizes[-1] <= 3


def test_executor_refuses_intermediates_as_outputs():
    from pyflame.runtime.executor import Executor

    g = ort.Graph("chain")
    g.add_input("x", [2], np.float32)
    g.add_node("a", "Relu", ["x"], ["h"])
    g.add_node("b", "Neg", ["h"], ["y"])
    g.add_output("y", [2], np.float32)
    ex = Executor(g)
    x = np.array([-1.0, 2.0], np.float32)
    np.testing.assert_allclose(ex.run(["y"], {"x": x})[0], [0.0, -2.0])
    with pytest.raises(ort.BackendError, match="not graph outputs"):
        ex.run(["h"], {"x": x})


_PINNING_SCRIPT = """
import os, time
import pyflame as pf

def affinities(prefix):
    out = {}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out = {}
        for t in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{t}/comm") as f:
                    name = f.read().strip()
                if name.startswith(prefix):
                    out[name] = sorted(os.sched_getaffinity(int(t)))
            except OSError:
                pass
        if len(out) >= expected.get(prefix, 0):
            return out
        time.sleep(0.01)
    return out

cpus = sorted(os.sched_getaffinity(0))
pin = os.environ.get("PYFLAME_PIN_THREADS", "1") != "0"
expected = {"pyflame-wrk": 2, "pyflame-pool": 2}
globals_ = affinities("pyflame-wrk")
assert sorted(globals_) == ["pyflame-wrk-0", "pyflame-wrk-1"], globals_
pool = pf._core.ThreadPool(2)
pooled = affinities("pyflame-pool")
assert sorted(pooled) == ["pyflame-pool-0", "pyflame-pool-1"], pooled
for workers in (globals_, pooled):
    for i in range(2):
        name = sorted(workers)[i]
        assert workers[name] == ([cpus[i]] if pin else cpus), (workers, cpus)
# The calling thread stays free.
assert sorted(os.sched_getaffinity(0)) == cpus
# A pool with more workers than cores leaves them free.
before = set(os.listdir("/proc/self/task"))
big = pf._core.ThreadPool(len(cpus) + 1)
deadline = time.monotonic() + 10
while len(set(os.listdir("/proc/self/task")) - before) < len(cpus) + 1:
    assert time.monotonic() < deadline, "the pool's workers did not start"
    time.sleep(0.01)
for t in set(os.listdir("/proc/self/task")) - before:
    assert sorted(os.sched_getaffinity(int(t))) == cpus
print("ok")
"""


@pytest.mark.skipif(
    not os.path.exists("/proc/self/task") or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux /proc and two cores",
)
@pytest.mark.parametrize("pin", ["1", "0"])
def test_pool_workers_are_pinned_to_cores_unless_turned_off(pin, monkeypatch, run_script_ok):
    # Two workers on a process with two or more cores: worker i runs on the i-th allowed
    # core, the Python thread stays free; PYFLAME_PIN_THREADS=0 leaves every worker free.
    monkeypatch.setenv("PYFLAME_PIN_THREADS", pin)
    run_script_ok(_PINNING_SCRIPT, "2")
