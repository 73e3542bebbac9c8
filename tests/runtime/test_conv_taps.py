"""ConvTapPruningPass: convolutions on small inputs lose the taps that only read padding."""

from __future__ import annotations

import numpy as np
import pyflame_rt as ort
import pytest
from pyflame.runtime.graph import Graph
from pyflame.runtime.passes.conv_taps import live_taps
from pyflame_rt import opt

from ._graph_util import session_at


def _conv_graph(spatial, kernel, attrs, channels=(6, 5), batch=2):
    g = Graph()
    c, o = channels
    g.add_input("x", [batch, c, *spatial], np.float32)
    rng = np.random.default_rng(0)
    g.add_initializer("w", rng.standard_normal((o, c, *kernel)).astype(np.float32))
    g.add_initializer("b", rng.standard_normal(o).astype(np.float32))
    g.add_node("conv", "Conv", ["x", "w", "b"], ["y"], dict(attrs))
    g.add_output("y")
    return g


def test_live_taps_of_one_axis():
    assert live_taps(1, 3, 1, 1, 1, 1) == (1, 1, 0, 0)  # 1x1 input: the centre only
    assert live_taps(2, 3, 2, 1, 1, 1) == (1, 2, 0, 0)  # stride 2 from 2x2 to 1x1
    assert live_taps(8, 3, 1, 1, 1, 1) == (0, 2, 1, 1)  # every tap reads the input
    assert live_taps(1, 5, 1, 2, 4, 4) == (2, 2, 0, 0)  # dilation
    assert live_taps(3, 3, 1, 1, 0, 0) == (0, 2, 0, 0)  # no padding: nothing to drop
    assert live_taps(1, 3, 1, 1, 0, 0) is None  # no output at all


CASES = [
    ((1, 1), (3, 3), {"pads": [1, 1, 1, 1]}, (1, 1)),
    ((2, 2), (3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2]}, (2, 2)),
    ((1, 3), (3, 3), {"pads": [1, 1, 1, 1]}, (1, 3)),
    ((1, 1), (5, 5), {"pads": [4, 4, 4, 4], "dilations": [2, 2]}, (1, 1)),
    ((1, 1), (3, 3), {"auto_pad": "SAME_UPPER"}, (1, 1)),
    ((1, 2), (3, 3), {"pads": [2, 0, 0, 1]}, (1, 2)),  # asymmetric padding
]


@pytest.mark.parametrize("spatial,kernel,attrs,pruned", CASES)
def test_pass_shrinks_the_kernel_and_keeps_outputs(spatial, kernel, attrs, pruned):
    x = np.random.default_rng(1).standard_normal((2, 6, *spatial)).astype(np.float32)
    ref = session_at(_conv_graph(spatial, kernel, attrs), ort.OptLevel.NONE).run(None, {"x": x})[0]
    g = _conv_graph(spatial, kernel, attrs)
    res = opt.ConvTapPruningPass().run(g)
    assert res.modified and res.stats.nodes_rewritten == 1
    (node,) = g.nodes
    assert g.initializers[node.inputs[1]].shape[2:] == pruned
    assert list(node.attrs["kernel_shape"]) == list(pruned)
    got = session_at(g, ort.OptLevel.NONE).run(None, {"x": x})[0]
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5)


def test_pass_leaves_convolutions_that_use_every_tap():
    g = _conv_graph((8, 8), (3, 3), {"pads": [1, 1, 1, 1]})
    assert not opt.ConvTapPruningPass().run(g).modified
    assert g.initializers[g.nodes[0].inputs[1]].shape == (5, 6, 3, 3)


def test_pass_needs_a_static_spatial_size():
    g = Graph()
    g.add_input("x", [1, 6, "h", "w"], np.float32)
    g.add_initializer("w", np.ones((5, 6, 3, 3), np.float32))
    g.add_node("conv", "Conv", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})
    g.add_output("y")
    assert not opt.ConvTapPruningPass().run(g).modified


def test_pass_runs_in_the_default_pipeline():
    x = np.random.default_rng(3).standard_normal((1, 6, 1, 1)).astype(np.float32)
    graph = _conv_graph((1, 1), (3, 3), {"pads": [1, 1, 1, 1]}, batch=1)
    ref = session_at(graph, ort.OptLevel.NONE).run(None, {"x": x})[0]
    sess = session_at(
        _conv_graph((1, 1), (3, 3), {"pads": [1, 1, 1, 1]}, batch=1), ort.OptLevel.EXTENDED
    )
    assert "ConvTapPruningPass" in sess.optimization_result.pass_times_ms
    (node,) = [n for n in sess.graph.nodes if n.op_type in ("Conv", "FusedConv")]
    assert sess.graph.initializers[node.inputs[1]].shape == (5, 6, 1, 1)
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], ref, rtol=1e-5, atol=1e-5)
