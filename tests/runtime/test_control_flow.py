"""If / Loop / Scan with outer-scope values, at every optimization level."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import pyflame_rt as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

LEVELS = [ort.OptLevel.NONE, ort.OptLevel.BASIC, ort.OptLevel.EXTENDED, ort.OptLevel.ALL]


def _sess(model, level):
    so = ort.SessionOptions()
    so.optimization_level = level
    return ort.InferenceSession(model.SerializeToString(), sess_options=so)


def _if_model():
    # y = if (sum(x) > 0) then x * w (w: outer initializer, read only by the branch)
    #     else exp(x) + t (t: an outer intermediate used only inside the branch)
    f = TensorProto.FLOAT
    then_g = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["ty"])],
        "then",
        [],
        [helper.make_tensor_value_info("ty", f, [3])],
    )
    else_g = helper.make_graph(
        [helper.make_node("Exp", ["x"], ["e"]), helper.make_node("Add", ["e", "t"], ["ey"])],
        "else",
        [],
        [helper.make_tensor_value_info("ey", f, [3])],
    )
    nodes = [
        helper.make_node("Neg", ["x"], ["t"]),
        helper.make_node("ReduceSum", ["x"], ["s"], keepdims=0),
        helper.make_node("Greater", ["s", "zero"], ["c"]),
        helper.make_node("If", ["c"], ["y"], then_branch=then_g, else_branch=else_g),
    ]
    g = helper.make_graph(
        nodes,
        "if",
        [helper.make_tensor_value_info("x", f, [3])],
        [helper.make_tensor_value_info("y", f, [3])],
        [
            numpy_helper.from_array(np.array([2, 3, 4], np.float32), "w"),
            numpy_helper.from_array(np.array(0, np.float32), "zero"),
        ],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("level", LEVELS)
def test_if_reads_outer_scope_values(level):
    sess = _sess(_if_model(), level)
    for x in (np.array([1, 2, 3], np.float32), np.array([-1, -2, 0.5], np.float32)) * 2:
        got = sess.run(None, {"x": x})[0]
        ref = x * [2, 3, 4] if x.sum() > 0 else np.exp(x) - x
        np.testing.assert_allclose(got, ref, rtol=1e-6)


def _loop_scan_model():
    # Loop: acc_{i+1} = acc_i * 2 + x (x from the outer scope), 3 times, scan output acc_i
    # Scan: running sum over the rows of m
    f, i64, b = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
    body = helper.make_graph(
        [
            helper.make_node("Mul", ["acc", "two"], ["d"]),
            helper.make_node("Add", ["d", "x"], ["acc_out"]),
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Identity", ["acc_out"], ["scan_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", i64, []),
            helper.make_tensor_value_info("cond_in", b, []),
            helper.make_tensor_value_info("acc", f, [2]),
        ],
        [
            helper.make_tensor_value_info("cond_out", b, []),
            helper.make_tensor_value_info("acc_out", f, [2]),
            helper.make_tensor_value_info("scan_out", f, [2]),
        ],
    )
    scan_body = helper.make_graph(
        [
            helper.make_node("Add", ["s", "row"], ["s2"]),
            helper.make_node("Identity", ["s2"], ["o"]),
        ],
        "scan_body",
        [helper.make_tensor_value_info("s", f, [2]), helper.make_tensor_value_info("row", f, [2])],
        [helper.make_tensor_value_info("s2", f, [2]), helper.make_tensor_value_info("o", f, [2])],
    )
    nodes = [
        helper.make_node("Loop", ["n", "", "acc0"], ["acc", "accs"], body=body),
        helper.make_node("Scan", ["acc0", "m"], ["total", "partial"], body=scan_body,
                         num_scan_inputs=1),
    ]  # fmt: skip
    g = helper.make_graph(
        nodes,
        "loop_scan",
        [
            helper.make_tensor_value_info("x", f, [2]),
            helper.make_tensor_value_info("m", f, [4, 2]),
        ],
        [helper.make_tensor_value_info(n, f, None) for n in ("acc", "accs", "total", "partial")],
        [
            numpy_helper.from_array(np.array(3, np.int64), "n"),
            numpy_helper.from_array(np.zeros(2, np.float32), "acc0"),
            numpy_helper.from_array(np.array(2, np.float32), "two"),
        ],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("level", LEVELS)
def test_loop_and_scan_with_outer_scope_values(level):
    sess = _sess(_loop_scan_model(), level)
    x = np.array([1.0, -0.5], np.float32)
    m = np.arange(8, dtype=np.float32).reshape(4, 2)
    for _ in range(2):  # the second run replays the cached plan (no data-dependent values)
        acc, accs, total, partial = sess.run(None, {"x": x, "m": m})
        steps = [x, 3 * x, 7 * x]
        np.testing.assert_allclose(accs, np.stack(steps), rtol=1e-6)
        np.testing.assert_allclose(acc, 7 * x, rtol=1e-6)
        np.testing.assert_allclose(partial, np.cumsum(m, 0), rtol=1e-6)
        np.testing.assert_allclose(total, m.sum(0), rtol=1e-6)


def test_subgraph_models_cannot_be_saved_as_pfm(tmp_path):
    sess = _sess(_if_model(), ort.OptLevel.ALL)
    with pytest.raises(ort.InvalidModelError, match="branch.*Graph is not supported"):
        ort.save_pfm(sess, str(tmp_path / "m.pfm"))
