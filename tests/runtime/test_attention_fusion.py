"""AttentionFusionPass: the composed attention chain becomes one FusedAttention node whose
results equal the unfused graph's (and NumPy's), on the kernel and on the fallback path."""

from __future__ import annotations

import math

import numpy as np
import pyflame_rt as ort
import pytest
from pyflame.runtime.onnx_import import ops_attention
from pyflame_rt import opt

from ._graph_util import op_types, session_at

B, H, LQ, LK, D, DV = 2, 3, 5, 7, 4, 6


def _graph(
    scale="div",
    mask="last",
    transpose_k=True,
    mask_shape=(B, 1, 1, LK),
    softmax_axis=-1,
    opset=17,
    extra_output=None,
):
    """q [B,H,LQ,D], k [B,H,LK,D] (transposed in the graph) or kt [B,H,D,LK], v [B,H,LK,DV]."""
    g = ort.Graph("attn")
    g.opset = opset
    g.add_input("q", [B, H, LQ, D], np.float32)
    if transpose_k:
        g.add_input("k", [B, H, LK, D], np.float32)
        g.add_node("t", "Transpose", ["k"], ["kt"], {"perm": [0, 1, 3, 2]})
    else:
        g.add_input("kt", [B, H, D, LK], np.float32)
    g.add_input("v", [B, H, LK, DV], np.float32)
    s = "s"
    g.add_node("mm1", "MatMul", ["q", "kt"], [s])
    if scale == "div":
        g.add_initializer("c", np.array(math.sqrt(D), np.float32))
        g.add_node("sc", "Div", [s, "c"], ["s2"])
        s = "s2"
    elif scale in ("mul", "mul_first"):
        g.add_initializer("c", np.array([0.3], np.float32))
        ins = [s, "c"] if scale == "mul" else ["c", s]
        g.add_node("sc", "Mul", ins, ["s2"])
        s = "s2"
    if mask is not None:
        g.add_input("mask", list(mask_shape), np.float32)
        ins = [s, "mask"] if mask == "last" else ["mask", s]
        g.add_node("am", "Add", ins, ["s3"])
        s = "s3"
    attrs = {} if softmax_axis is None else {"axis": softmax_axis}
    g.add_node("sm", "Softmax", [s], ["p"], attrs)
    g.add_node("mm2", "MatMul", ["p", "v"], ["y"])
    g.add_output("y")
    if extra_output:
        g.add_output(extra_output)
    return g


def _feeds(graph, mask_shape=(B, 1, 1, LK), seed=0):
    rng = np.random.default_rng(seed)
    shapes = {i.name: i.shape for i in graph.inputs}
    feeds = {n: rng.standard_normal(shapes[n]).astype(np.float32) for n in shapes}
    if "mask" in feeds:
        m = np.zeros(mask_shape, np.float32)
        m[..., -2:] = -10000.0
        feeds["mask"] = m
    return feeds


@pytest.fixture
def composed_calls(monkeypatch):
    """Counts the runs of FusedAttention's operator-by-operator fallback."""
    calls = []
    real = ops_attention._composed_attention

    def spy(ctx, node, xs):
        calls.append(node.name)
        return real(ctx, node, xs)

    monkeypatch.setattr(ops_attention, "_composed_attention", spy)
    return calls


def _numpy_ref(feeds, scale):
    q = feeds["q"].astype(np.float64)
    kt = feeds["kt"] if "kt" in feeds else np.swapaxes(feeds["k"], -1, -2)
    s = q @ kt.astype(np.float64) * scale
    if "mask" in feeds:
        s = s + feeds["mask"]
    p = np.exp(s - s.max(-1, keepdims=True))
    p /= p.sum(-1, keepdims=True)
    return p @ feeds["v"].astype(np.float64)


SCALES = {"div": 1 / math.sqrt(D), "mul": 0.3, "mul_first": 0.3, None: 1.0}


@pytest.mark.parametrize("scale", ["div", "mul", "mul_first", None])
@pytest.mark.parametrize("mask", ["last", "first", None])
def test_attention_chain_becomes_one_node(scale, mask, composed_calls):
    g = _graph(scale=scale, mask=mask)
    plain = session_at(g, ort.OptLevel.NONE)
    fused = session_at(g, ort.OptLevel.EXTENDED)
    assert op_types(fused.graph).count("FusedAttention") == 1
    for op in ("MatMul", "Softmax", "Div", "Mul", "Add"):
        assert op not in op_types(fused.graph)
    assert op_types(fused.graph) == ["Transpose", "FusedAttention"]
    feeds = _feeds(g)
    want = plain.run(None, feeds)[0]
    got = fused.run(None, feeds)[0]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, _numpy_ref(feeds, SCALES[scale]), rtol=1e-5, atol=1e-6)
    assert composed_calls == []  # ran on the attention kernel


def test_pass_counts_and_is_idempotent():
    g = _graph()
    res = opt.fuse_attention(g)
    assert res.modified and res.stats.nodes_fused == 1 and res.stats.nodes_removed == 4
    assert op_types(g) == ["Transpose", "FusedAttention"]
    node = g.nodes[1]
    assert node.domain == "pyflame.rt"
    assert node.inputs == ["q", "kt", "v", "mask", "c"]
    assert node.attrs == {"scale_op": "Div", "softmax_axis": -1}
    again = opt.fuse_attention(g)
    assert not again.modified and op_types(g) == ["Transpose", "FusedAttention"]


def test_kt_fed_directly_and_default_softmax_axis():
    g = _graph(transpose_k=False, softmax_axis=None)
    plain, fused = session_at(g, ort.OptLevel.NONE), session_at(g, ort.OptLevel.EXTENDED)
    assert op_types(fused.graph) == ["FusedAttention"]
    feeds = _feeds(g)
    np.testing.assert_allclose(
        fused.run(None, feeds)[0], plain.run(None, feeds)[0], rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize(
    "kwargs, on_kernel",
    [
        ({"softmax_axis": 2}, False),  # softmax over queries: not attention
        ({"softmax_axis": 1, "opset": 11}, False),  # opset 11 flattens from axis 1
        ({"softmax_axis": None, "opset": 11}, False),  # same with the opset-11 default axis
        ({"softmax_axis": 3, "opset": 11}, True),  # flattening from the last axis: a row
        ({"mask_shape": (1, B, 1, LQ, LK)}, False),  # the mask grows the scores' rank
        ({"mask_shape": (B, H, LQ, 1)}, True),  # broadcast along the keys
        ({"mask_shape": (LK,)}, True),  # one bias per key for everything
    ],
)
def test_fallback_and_unusual_cases_match_the_unfused_graph(kwargs, on_kernel, composed_calls):
    g = _graph(**kwargs)
    plain, fused = session_at(g, ort.OptLevel.NONE), session_at(g, ort.OptLevel.EXTENDED)
    assert op_types(fused.graph).count("FusedAttention") == 1
    feeds = _feeds(g, mask_shape=kwargs.get("mask_shape", (B, 1, 1, LK)))
    want = plain.run(None, feeds)[0]
    got = fused.run(None, feeds)[0]
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert (composed_calls == []) == on_kernel


@pytest.mark.parametrize("name", ["s", "s2", "s3", "p"])
def test_not_fused_when_an_intermediate_is_a_graph_output(name):
    g = _graph(extra_output=name)
    fused = session_at(g, ort.OptLevel.EXTENDED)
    assert "FusedAttention" not in op_types(fused.graph)
    assert "Softmax" in op_types(fused.graph)


def test_not_fused_when_an_intermediate_has_another_reader():
    g = _graph()
    g.add_node("extra", "Relu", ["s2"], ["r"])
    g.add_output("r")
    fused = session_at(g, ort.OptLevel.EXTENDED)
    assert "FusedAttention" not in op_types(fused.graph)
    feeds = _feeds(g)
    plain = session_at(g, ort.OptLevel.NONE)
    for a, b in zip(fused.run(None, feeds), plain.run(None, feeds)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_non_constant_scale_is_not_fused():
    g = _graph(scale=None)
    g.add_input("c", [1], np.float32)
    g.nodes[-3].inputs = ["s", "c"]
    g.nodes[-3].op_type = "Mul"  # Add(s, c) -> Mul(s, c) with c fed at run time: no Add left
    fused = session_at(g, ort.OptLevel.EXTENDED)
    assert "FusedAttention" not in op_types(fused.graph)


def test_fully_masked_rows_give_nan_like_the_unfused_graph(composed_calls):
    g = _graph(mask_shape=(B, 1, LQ, LK))
    plain, fused = session_at(g, ort.OptLevel.NONE), session_at(g, ort.OptLevel.EXTENDED)
    feeds = _feeds(g, mask_shape=(B, 1, LQ, LK))
    feeds["mask"][1, 0, 2, :] = -np.inf
    want = plain.run(None, feeds)[0]
    got = fused.run(None, feeds)[0]
    assert np.isnan(want[1, :, 2]).all() and np.isnan(got[1, :, 2]).all()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)  # NaNs compare equal
    assert composed_calls == []


def test_float64(composed_calls):
    g = _graph()
    for i in g.inputs:
        i.dtype = np.dtype(np.float64)
    g.initializers["c"] = g.initializers["c"].astype(np.float64)
    plain, fused = session_at(g, ort.OptLevel.NONE), session_at(g, ort.OptLevel.EXTENDED)
    feeds = {k: v.astype(np.float64) for k, v in _feeds(g).items()}
    got = fused.run(None, feeds)[0]
    np.testing.assert_allclose(got, plain.run(None, feeds)[0], rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(got, _numpy_ref(feeds, 1 / math.sqrt(D)), rtol=1e-12, atol=1e-13)
    assert composed_calls == []


def test_float16_runs_the_original_operators(composed_calls):
    g = _graph()
    for i in g.inputs:
        i.dtype = np.dtype(np.float16)
    g.initializers["c"] = g.initializers["c"].astype(np.float16)
    plain, fused = session_at(g, ort.OptLevel.NONE), session_at(g, ort.OptLevel.EXTENDED)
    feeds = {k: v.astype(np.float16) for k, v in _feeds(g).items()}
    np.testing.assert_array_equal(fused.run(None, feeds)[0], plain.run(None, feeds)[0])
    assert len(composed_calls) == 1


def test_bad_shapes_raise_a_clear_error():
    g = _graph(transpose_k=False)
    feeds = _feeds(g)
    feeds["kt"] = np.ones((B, H, D + 1, LK), np.float32)
    g.inputs[1] = type(g.inputs[1])("kt", np.dtype(np.float32), [B, H, "Dk", LK])
    fused = session_at(g, ort.OptLevel.EXTENDED)
    assert op_types(fused.graph) == ["FusedAttention"]
    with pytest.raises(ort.PyFlameRTError, match="mm2"):
        fused.run(None, feeds)


def test_head_split_views_of_a_packed_projection(composed_calls):
    """q, k and v as strided head views of one [B, S, 3, H, D] tensor (the BERT export's
    Reshape -> Transpose -> Split -> Squeeze), read in place by the kernel."""
    g = ort.Graph("packed")
    g.add_input("x", [B, LK, 3 * H * D], np.float32)
    g.add_input("mask", [B, 1, 1, LK], np.float32)
    g.add_initializer("shape", np.array([B, LK, 3, H, D], np.int64))
    g.add_initializer("split", np.array([1, 1, 1], np.int64))
    g.add_initializer("ax0", np.array([0], np.int64))
    g.add_initializer("c", np.array(math.sqrt(D), np.float32))
    g.add_node("r", "Reshape", ["x", "shape"], ["r"])
    g.add_node("t", "Transpose", ["r"], ["t"], {"perm": [2, 0, 3, 1, 4]})
    g.add_node("sp", "Split", ["t", "split"], ["q5", "k5", "v5"], {"axis": 0})
    for n in ("q", "k", "v"):
        g.add_node(f"sq_{n}", "Squeeze", [f"{n}5", "ax0"], [n])
    g.add_node("kt", "Transpose", ["k"], ["kt"], {"perm": [0, 1, 3, 2]})
    g.add_node("mm1", "MatMul", ["q", "kt"], ["s"])
    g.add_node("sc", "Div", ["s", "c"], ["s2"])
    g.add_node("am", "Add", ["s2", "mask"], ["s3"])
    g.add_node("sm", "Softmax", ["s3"], ["p"], {"axis": -1})
    g.add_node("mm2", "MatMul", ["p", "v"], ["y"])
    g.add_output("y")
    plain, fused = session_at(g, ort.OptLevel.NONE), session_at(g, ort.OptLevel.EXTENDED)
    assert op_types(fused.graph).count("FusedAttention") == 1 and "Softmax" not in op_types(
        fused.graph
    )
    feeds = _feeds(g)
    x5 = feeds["x"].reshape(B, LK, 3, H, D).transpose(2, 0, 3, 1, 4)
    ref = _numpy_ref({"q": x5[0], "k": x5[1], "v": x5[2], "mask": feeds["mask"]}, 1 / math.sqrt(D))
    got = fused.run(None, feeds)[0]
    np.testing.assert_allclose(got, plain.run(None, feeds)[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    assert composed_calls == []
