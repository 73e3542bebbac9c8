"""Recorded plans: from the third run of an input signature on, a session runs the graph
recorded by `pyflame._core.Template` instead of rebuilding it from Python. Every run must
still compute from its own inputs."""

from __future__ import annotations

import numpy as np
import pyflame as pf
import pyflame_rt as ort
import pytest


def _conv_graph():
    rng = np.random.default_rng(0)
    g = ort.Graph("convs")
    g.add_input("x", [1, 8, 5, 5], np.float32)
    g.add_input("s", [1], np.float32)
    g.add_initializer("w", rng.standard_normal((64, 8, 3, 3)).astype(np.float32))
    g.add_initializer("k", np.array([2.0], np.float32))
    g.add_node("c", "Conv", ["x", "w"], ["c"], {"pads": [1, 1, 1, 1]})
    g.add_node("r", "Relu", ["c"], ["y"])
    g.add_node("m", "Mul", ["y", "s"], ["z"])
    g.add_node("sh", "Shape", ["x"], ["shape"])
    g.add_node("kk", "Mul", ["k", "k"], ["four"])
    g.add_node("id", "Identity", ["s"], ["s_out"])
    for name in ("y", "z", "shape", "four", "s_out"):
        g.add_output(name)
    return g


def _reference(x, w, s):
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((1, 64, 5, 5))
    for i in range(3):
        for j in range(3):
            out += np.einsum("nchw,oc->nohw", xp[:, :, i : i + 5, j : j + 5], w[:, :, i, j])
    y = np.maximum(out, 0)
    return y, y * s[0]


def test_every_run_uses_its_own_inputs():
    g = _conv_graph()
    w = g.initializers["w"].copy()
    sess = ort.InferenceSession(g)
    rng = np.random.default_rng(1)
    for run in range(6):
        x = rng.standard_normal((1, 8, 5, 5)).astype(np.float32)
        s = np.array([run + 0.5], np.float32)
        y, z, shape, four, s_out = sess.run(None, {"x": x, "s": s})
        ry, rz = _reference(x, w, s)
        np.testing.assert_allclose(y, ry, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(z, rz, rtol=1e-4, atol=1e-4)
        assert shape.tolist() == [1, 8, 5, 5]
        assert four.tolist() == [4.0]
        np.testing.assert_array_equal(s_out, s)
    (plan,) = sess._executor._plans.values()
    recorded = [t for t in plan.templates.values() if t is not None]
    assert recorded, "the plan was not recorded"


def test_output_subsets_and_outputs_are_fresh_arrays():
    sess = ort.InferenceSession(_conv_graph())
    x = np.ones((1, 8, 5, 5), np.float32)
    s = np.array([2.0], np.float32)
    for _ in range(4):
        (z,) = sess.run(["z"], {"x": x, "s": s})
        y, four = sess.run(["y", "four"], {"x": x, "s": s})
    np.testing.assert_allclose(z, 2 * y, rtol=1e-6)
    z[...] = -1  # results are the caller's: changing them changes nothing in the session
    four[...] = 0
    (z2, four2) = sess.run(["z", "four"], {"x": x, "s": s})
    np.testing.assert_allclose(z2, 2 * y, rtol=1e-6)
    assert four2.tolist() == [4.0]


def test_checked_runs_skip_the_checks_only_for_the_same_signature():
    # Once a signature's run is recorded, later runs with the same outputs and feed
    # signature go straight to the recorded graph; anything else still gets the checks.
    sess = ort.InferenceSession(_conv_graph())
    rng = np.random.default_rng(3)
    w = _conv_graph().initializers["w"]
    s = np.array([1.5], np.float32)
    for _ in range(4):
        x = rng.standard_normal((1, 8, 5, 5)).astype(np.float32)
        (z, y) = sess.run(["z", "y"], {"x": x, "s": s})
    assert sess._recorded_runs, "the run was not recorded"
    ry, rz = _reference(x, w, s)
    np.testing.assert_allclose(y, ry, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(z, rz, rtol=1e-4, atol=1e-4)
    with pytest.raises(ort.ShapeMismatchError, match="expects shape"):
        sess.run(["z", "y"], {"x": np.zeros((1, 8, 5, 4), np.float32), "s": s})
    with pytest.raises(ort.DTypeMismatchError, match="tensor\\(float\\)"):
        sess.run(["z", "y"], {"x": x.astype(np.float64), "s": s})
    with pytest.raises(ort.InputError, match="unknown input"):
        sess.run(["z", "y"], {"x": x, "s": s, "extra": s})
    with pytest.raises(ort.InputError, match="missing input"):
        sess.run(["z", "y"], {"x": x})
    with pytest.raises(ort.InputError, match="unknown output"):
        sess.run(["nope"], {"x": x, "s": s})
    # A non-contiguous feed of the same signature gives the same answer.
    x_strided = np.asfortranarray(x)
    np.testing.assert_array_equal(sess.run(["z", "y"], {"x": x_strided, "s": s})[0], z)


def test_scalar_inputs_iterator_outputs_and_unhashable_names_on_recorded_runs():
    g = ort.Graph("scalar")
    g.add_input("x", [4], np.float32)
    g.add_input("s", [], np.float32)
    g.add_node("m", "Mul", ["x", "s"], ["y"])
    g.add_node("r", "Relu", ["y"], ["z"])
    g.add_output("z")
    g.add_output("y")
    sess = ort.InferenceSession(g)
    x = np.array([1.0, -2.0, 3.0, -4.0], np.float32)
    for run in range(5):  # 0-d feeds stay 0-d on recorded runs too
        s = np.array(run + 1.0, np.float32)
        (z,) = sess.run(iter(["z"]), {"x": x, "s": s})  # a one-shot iterator of names
        np.testing.assert_array_equal(z, np.maximum(x * s, 0))
    with pytest.raises(ort.InputError, match="unknown output"):
        sess.run([["z"]], {"x": x, "s": s})


def test_recorded_plans_run_on_the_session_pool():
    so = ort.SessionOptions()
    so.num_threads = 1
    sess = ort.InferenceSession(_conv_graph(), sess_options=so)
    x = np.random.default_rng(2).standard_normal((1, 8, 5, 5)).astype(np.float32)
    s = np.array([1.0], np.float32)
    first = sess.run(["z"], {"x": x, "s": s})[0]
    for _ in range(3):
        np.testing.assert_array_equal(sess.run(["z"], {"x": x, "s": s})[0], first)


def test_template_refuses_random_ops():
    x = pf.from_numpy(np.zeros(4, np.float32))
    y = x + pf.randn([4])
    with pytest.raises(ValueError, match="random"):
        pf._core.Template([y], [x])


def test_template_api_records_and_replays():
    x = pf.from_numpy(np.array([1.0, -2.0, 3.0], np.float32))
    w = pf._core.constant_from_numpy(np.array([2.0, 2.0, 2.0], np.float32))
    y = pf.relu(x * w)
    t = pf._core.Template([y], [x])
    assert len(t) == 4
    (out,) = t.run([np.array([-1.0, 4.0, 0.5], np.float32)])
    np.testing.assert_array_equal(out, [0.0, 8.0, 1.0])
    with pytest.raises(ValueError, match="expected"):
        t.run([np.zeros(4, np.float32)])
    with pytest.raises(ValueError):
        t.run([])


def test_template_refuses_nodes_evaluated_while_building():
    x = pf.from_numpy(np.ones(3, np.float32))
    h = (x * 2.0).eval()  # computed from this run's input: must not become a constant
    y = h + 1.0
    with pytest.raises(ValueError, match="evaluated while it was built"):
        pf._core.Template([y], [x])


_DEEP_SCRIPT = """
import numpy as np, pyflame_rt as ort
rng = np.random.default_rng(0)
g = ort.Graph("deep")
g.add_input("x", [2, 16, 12, 12], np.float32)
ws = []
prev = "x"
for i in range(8):
    w = (rng.standard_normal((16, 16, 3, 3)) * 0.2).astype(np.float32)
    ws.append(w)
    g.add_initializer(f"w{i}", w)
    g.add_node(f"c{i}", "Conv", [prev, f"w{i}"], [f"c{i}"], {"pads": [1, 1, 1, 1]})
    g.add_node(f"r{i}", "Relu", [f"c{i}"], [f"y{i}"])
    prev = f"y{i}"
g.add_output(prev)
sess = ort.InferenceSession(g)
def ref(x):
    y = x.astype(np.float64)
    for w in ws:
        p = np.pad(y, ((0, 0), (0, 0), (1, 1), (1, 1)))
        out = np.zeros_like(y)
        for i in range(3):
            for j in range(3):
                out += np.einsum("nchw,oc->nohw", p[:, :, i:i + 12, j:j + 12], w[:, :, i, j])
        y = np.maximum(out, 0)
    return y
def work(seed):
    local = np.random.default_rng(seed)
    for run in range(40):
        x = local.standard_normal((2, 16, 12, 12)).astype(np.float32)
        (y,) = sess.run(None, {"x": x})
        if run % 8 == 0:
            np.testing.assert_allclose(y, ref(x), rtol=1e-3, atol=1e-3)
work(1)
# Two Python threads running recorded graphs at once (the run releases the GIL).
import threading
errors = []
def guarded(seed):
    try:
        work(seed)
    except Exception as e:
        errors.append(e)
threads = [threading.Thread(target=guarded, args=(s,)) for s in (2, 3)]
for t in threads:
    t.start()
for t in threads:
    t.join()
assert not errors, errors
print("ok")
"""


@pytest.mark.parametrize("threads", ["1", "2", "4"])
def test_recorded_deep_graph_with_spinning_workers(threads, run_script_ok):
    # Recorded graphs of 6+ kernels run on a pool thread while the other workers spin for
    # work; with more workers than cores, or none, and with two graphs running at once,
    # every run must finish and be right.
    run_script_ok(_DEEP_SCRIPT, threads)
