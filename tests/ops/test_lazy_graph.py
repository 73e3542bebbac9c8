"""Laziness, pf.eval, graph inspection, layouts, versions, and numerical
stability of repeated / cached / fused evaluation."""

from types import SimpleNamespace

import numpy as np
import pf_testutil as U
import pyflame as pf
import pytest

# --------------------------------------------------------------------------
# laziness
# --------------------------------------------------------------------------


def test_ops_are_lazy_until_eval():
    a = pf.randn([10])
    b = pf.randn([10])
    c = pf.relu(a * b + 1.0)
    assert pf.is_lazy(c) is True
    assert c.is_evaluated() is False
    c.eval()
    assert pf.is_lazy(c) is False
    assert c.is_evaluated() is True


def test_spec_is_evaluated_example():
    x = pf.randn([10])
    assert x.is_evaluated() is False
    assert pf.is_lazy(x) is True
    x.eval()
    assert x.is_evaluated() is True
    assert pf.is_lazy(x) is False


@pytest.mark.parametrize("reader", ["numpy", "item", "tolist", "asarray"])
def test_readers_trigger_evaluation(reader):
    x = pf.ones([1]) * 3.0
    assert pf.is_lazy(x)
    val = {
        "numpy": lambda: x.numpy()[0],
        "item": lambda: x.item(),
        "tolist": lambda: x.tolist()[0],
        "asarray": lambda: np.asarray(x)[0],
    }[reader]()
    assert val == 3.0
    assert x.is_evaluated()


def test_eval_of_output_does_not_require_evaluating_inputs_first():
    a = pf.randn([5])
    b = a * 2.0
    c = b + 1.0
    c.eval()
    assert c.is_evaluated()
    # inputs of an evaluated tensor can still be read consistently
    np.testing.assert_allclose(c.numpy(), a.numpy() * 2.0 + 1.0, rtol=1e-6)
    np.testing.assert_allclose(b.numpy(), a.numpy() * 2.0, rtol=1e-6)


def test_pf_eval_single_and_multiple():
    a = pf.randn([100])
    b = pf.randn([100])
    c = a + b
    r = pf.eval(c)
    assert isinstance(r, pf.Tensor)
    assert c.is_evaluated()
    d, e = a * 2.0, b * 3.0
    rs = pf.eval(a, b, d, e)
    assert isinstance(rs, tuple) and len(rs) == 4
    assert all(t.is_evaluated() for t in (a, b, d, e))
    np.testing.assert_array_equal(rs[0].numpy(), a.numpy())
    np.testing.assert_allclose(rs[2].numpy(), a.numpy() * 2.0, rtol=1e-6)
    np.testing.assert_allclose(c.numpy(), a.numpy() + b.numpy(), rtol=1e-6)
    np.testing.assert_allclose(e.numpy(), b.numpy() * 3.0, rtol=1e-6)


def test_eval_shared_subexpression_consistent():
    x = pf.randn([64])
    y = pf.exp(x) + 1.0
    u, v = y * 2.0, y - 1.0
    pf.eval(u, v)
    np.testing.assert_allclose(u.numpy() / 2.0 - v.numpy(), np.ones(64, np.float32), rtol=1e-5)


def test_evaluated_twice_is_stable(rng):
    a = rng.standard_normal((16, 16)).astype(np.float32)
    x = pf.from_numpy(a)
    y = pf.softmax(x @ x + 1.0, dim=-1).sum(dim=0)
    y.eval()
    v1 = y.numpy().copy()
    y.eval()
    v2 = y.numpy().copy()
    v3 = pf.eval(y).numpy()
    np.testing.assert_array_equal(v1, v2)
    np.testing.assert_array_equal(v1, v3)


def _block(x, w, b):
    h = pf.relu(x @ w + b)
    return pf.softmax(h * 0.5 - 1.0, dim=-1).sum(dim=1)


def test_same_structure_gives_identical_results(rng):
    x = rng.standard_normal((8, 12)).astype(np.float32)
    w = rng.standard_normal((12, 6)).astype(np.float32)
    b = rng.standard_normal((6,)).astype(np.float32)
    outs = [_block(pf.from_numpy(x), pf.from_numpy(w), pf.from_numpy(b)).numpy() for _ in range(3)]
    np.testing.assert_array_equal(outs[0], outs[1])
    np.testing.assert_array_equal(outs[0], outs[2])


def test_same_structure_new_inputs_gives_new_correct_results(rng):
    """A cached schedule must not reuse stale inputs or outputs."""
    for i in range(4):
        x = rng.standard_normal((8, 12)).astype(np.float32)
        w = rng.standard_normal((12, 6)).astype(np.float32)
        b = rng.standard_normal((6,)).astype(np.float32)
        got = _block(pf.from_numpy(x), pf.from_numpy(w), pf.from_numpy(b)).numpy()
        h = np.maximum(x.astype(np.float64) @ w + b, 0)
        ref = U.np_softmax(h * 0.5 - 1.0, axis=-1).sum(axis=1)
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-5, err_msg=f"iteration {i}")


def test_same_structure_different_shapes(rng):
    for n in (3, 5, 3, 7):
        a = rng.standard_normal((n, 4)).astype(np.float32)
        got = (pf.relu(pf.from_numpy(a)) * 2.0 + 1.0).sum(dim=0).numpy()
        ref = (np.maximum(a.astype(np.float64), 0) * 2 + 1).sum(axis=0)
        np.testing.assert_allclose(got, ref, rtol=1e-5, err_msg=f"n={n}")


# --------------------------------------------------------------------------
# long elementwise chains (fusion must not change values)
# --------------------------------------------------------------------------


def test_long_elementwise_chain(rng):
    a = rng.uniform(-1, 1, 1000).astype(np.float32)
    b = rng.uniform(0.5, 1.5, 1000).astype(np.float32)
    x, y = pf.from_numpy(a), pf.from_numpy(b)
    r, rn = x, a.astype(np.float64)
    bn = b.astype(np.float64)
    steps = [
        (lambda t: t * y, lambda n: n * bn),
        (lambda t: t + 0.25, lambda n: n + 0.25),
        (lambda t: pf.tanh(t), np.tanh),
        (lambda t: t / y, lambda n: n / bn),
        (lambda t: pf.sigmoid(t), U.np_sigmoid),
        (lambda t: t - x, lambda n: n - a),
        (lambda t: pf.abs(t), np.abs),
        (lambda t: pf.sqrt(t + 0.01), lambda n: np.sqrt(n + 0.01)),
        (lambda t: pf.maximum(t, x), lambda n: np.maximum(n, a)),
        (lambda t: pf.clamp(t, min=-0.9, max=0.9), lambda n: np.clip(n, -0.9, 0.9)),
        (lambda t: -t, np.negative),
        (lambda t: pf.exp(t), np.exp),
        (lambda t: pf.log(t), np.log),
        (lambda t: pf.sin(t) * pf.cos(t), lambda n: np.sin(n) * np.cos(n)),
        (lambda t: t**2, lambda n: n**2),
        (lambda t: pf.silu(t), U.np_silu),
    ]
    for i in range(60):
        f, g = steps[i % len(steps)]
        r, rn = f(r), g(rn)
    assert pf.is_lazy(r)
    np.testing.assert_allclose(r.numpy(), rn, rtol=1e-4, atol=1e-5)


_NP = SimpleNamespace(
    exp=np.exp, relu=lambda z: np.maximum(z, 0), sigmoid=U.np_sigmoid, tanh=np.tanh, sqrt=np.sqrt
)

# Patterns where one intermediate feeds an op several times (e.g. y * y) and
# the fused kernel keeps going afterwards: written once, run on pf and NumPy.
FUSION_PATTERNS = {
    "square_then_scale_add": lambda v, F: (lambda y: (y * y) * -1.0 + v)(v * 2.0),
    "square_then_scale_sub": lambda v, F: (lambda y: (y * y) * 0.5 - v)(v * 2.0),
    "square_then_exp_add": lambda v, F: (lambda y: F.exp((y * y) * -1.0) + v)(v * 2.0),
    "cube_plus_base": lambda v, F: (lambda y: y * y * y + y)(v + 1.0),
    "fourth_power_plus_input": lambda v, F: (lambda y: ((y * y) * y) * y + v)(v * 0.5),
    "diamond": lambda v, F: (lambda y: (y + y) * (y - v) + 1.0)(v * 2.0),
    "exp_square_mix": lambda v, F: (lambda y: (y * y + y) * v - 0.25)(F.exp(v)),
    "relu_reuse": lambda v, F: (lambda y: y * y + y * v - 1.0)(F.relu(v)),
    "sigmoid_tanh_reuse": lambda v, F: (lambda s, t: s * t + s * s - t * t)(
        F.sigmoid(v), F.tanh(v)
    ),
    "input_used_many_times": lambda v, F: v * v + v * 3.0 - v / (v * v + 1.0) + v,
    "long_reuse_chain": lambda v, F: (lambda y: (lambda z: (z * z) * y + z - y)(y * y + 1.0))(
        v * 0.5
    ),
}


@pytest.mark.parametrize("pattern", list(FUSION_PATTERNS.values()), ids=list(FUSION_PATTERNS))
def test_fusion_patterns_with_reused_intermediates(pattern, rng):
    a = rng.uniform(-2, 2, 37).astype(np.float32)
    got = pattern(pf.from_numpy(a), pf)
    assert pf.is_lazy(got)
    ref = pattern(a.astype(np.float64), _NP)
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-5, atol=1e-5)


# Random elementwise DAGs: every op keeps values bounded, operands are drawn
# from all earlier nodes (so intermediates are reused, shared and broadcast).
_DAG_UNARY = [
    (lambda t: pf.tanh(t), np.tanh),
    (lambda t: pf.sigmoid(t), U.np_sigmoid),
    (lambda t: pf.relu(t), lambda n: np.maximum(n, 0)),
    (lambda t: -t, np.negative),
    (lambda t: pf.abs(t), np.abs),
    (lambda t: pf.sin(t), np.sin),
    (lambda t: pf.cos(t), np.cos),
    (lambda t: t * 0.9 + 0.1, lambda n: n * 0.9 + 0.1),
    (lambda t: pf.exp(-pf.abs(t)), lambda n: np.exp(-np.abs(n))),
    (lambda t: t * t, lambda n: n * n),
    # reductions and row-wise ops inside the DAG split fused regions
    (
        lambda t: t - t.mean(dim=-1, keepdim=True) if t.ndim else t,
        lambda n: n - n.mean(axis=-1, keepdims=True) if n.ndim else n,
    ),
    (
        lambda t: pf.softmax(t, dim=-1) if t.ndim else t,
        lambda n: U.np_softmax(n, axis=-1) if n.ndim else n,
    ),
    (
        lambda t: t * t.max(dim=0, keepdim=True).values if t.ndim else t,
        lambda n: n * n.max(axis=0, keepdims=True) if n.ndim else n,
    ),
]
_DAG_BINARY = [
    (lambda a, b: (a + b) * 0.5, lambda a, b: (a + b) * 0.5),
    (lambda a, b: (a - b) * 0.5, lambda a, b: (a - b) * 0.5),
    (lambda a, b: a * pf.tanh(b), lambda a, b: a * np.tanh(b)),
    (lambda a, b: pf.maximum(a, b), np.maximum),
    (lambda a, b: pf.minimum(a, b), np.minimum),
    # continuous at a == b, so float32/float64 near-ties cannot flip the result
    (
        lambda a, b: pf.where(a > b, a - b, (b - a) * 0.5),
        lambda a, b: np.where(a > b, a - b, (b - a) * 0.5),
    ),
    (lambda a, b: a / (pf.abs(b) + 1.0), lambda a, b: a / (np.abs(b) + 1.0)),
]


@pytest.mark.parametrize("dt", ["float32", "float64"])
@pytest.mark.parametrize("seed", range(100))
def test_random_elementwise_dags(seed, dt):
    r = np.random.default_rng(1000 + seed)
    shapes = [(4, 5), (5,), (4, 1), ()]
    arrays = [r.uniform(-1.5, 1.5, shapes[i % len(shapes)]).astype(dt) for i in range(3)]
    pf_nodes = [pf.from_numpy(a) for a in arrays]
    np_nodes = [a.astype(np.float64) for a in arrays]
    for _ in range(int(r.integers(5, 30))):
        if r.random() < 0.4:
            f, g = _DAG_UNARY[r.integers(len(_DAG_UNARY))]
            i = int(r.integers(len(pf_nodes)))
            pf_nodes.append(f(pf_nodes[i]))
            np_nodes.append(g(np_nodes[i]))
        else:
            f, g = _DAG_BINARY[r.integers(len(_DAG_BINARY))]
            i, j = (int(k) for k in r.integers(len(pf_nodes), size=2))
            pf_nodes.append(f(pf_nodes[i], pf_nodes[j]))
            np_nodes.append(g(np_nodes[i], np_nodes[j]))
    # evaluate the last node and, together, two random intermediate ones
    picks = [len(pf_nodes) - 1] + [int(k) for k in r.integers(3, len(pf_nodes), size=2)]
    outs = pf.eval(*[pf_nodes[k] for k in picks])
    for k, out in zip(picks, outs):
        assert out.dtype == U.pfdt(dt)
        tol = 1e-4 if dt == "float32" else 1e-10
        np.testing.assert_allclose(
            out.numpy(), np_nodes[k], rtol=tol, atol=tol / 10, err_msg=f"node {k} of seed {seed}"
        )


def test_chain_with_broadcast_diamond_and_reduction(rng):
    a = rng.standard_normal((32, 16)).astype(np.float32)
    c = rng.standard_normal((16,)).astype(np.float32)
    x, col = pf.from_numpy(a), pf.from_numpy(c)
    h = x * col + 1.0
    left = pf.relu(h)
    right = pf.sigmoid(h) * 2.0
    out = (left + right - h).sum(dim=1) / 16.0
    an, cn = a.astype(np.float64), c.astype(np.float64)
    hn = an * cn + 1
    ref = (np.maximum(hn, 0) + U.np_sigmoid(hn) * 2 - hn).sum(axis=1) / 16
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=1e-5)


def test_chain_with_intermediate_evaluated_midway(rng):
    a = rng.standard_normal(500).astype(np.float32)
    x = pf.from_numpy(a)
    mid = pf.exp(x * 0.5) + 1.0
    mid_val = mid.numpy().copy()
    end = pf.log(mid) * 2.0
    np.testing.assert_allclose(
        end.numpy(), np.log(mid_val.astype(np.float64)) * 2, rtol=1e-5, atol=1e-6
    )
    np.testing.assert_array_equal(mid.numpy(), mid_val)


def test_large_fused_elementwise(rng):
    n = 1 << 20
    a = rng.standard_normal(n).astype(np.float32)
    b = rng.standard_normal(n).astype(np.float32)
    c = rng.standard_normal(n).astype(np.float32)
    out = pf.relu(pf.from_numpy(a) * pf.from_numpy(b) + pf.from_numpy(c))
    ref = np.maximum(a * b + c, np.float32(0))
    np.testing.assert_allclose(out.numpy(), ref, rtol=1e-6, atol=1e-6)


def test_many_independent_graphs_in_one_eval():
    xs = [pf.full([4], float(i)) * 2.0 for i in range(50)]
    rs = pf.eval(*xs)
    assert len(rs) == 50
    for i, r in enumerate(rs):
        assert r.tolist() == [2.0 * i] * 4


def test_deep_graph_does_not_overflow_recursion():
    x = pf.zeros([2])
    for _ in range(5000):
        x = x + 1.0
    assert x.tolist() == [5000.0, 5000.0]


# --------------------------------------------------------------------------
# graph inspection
# --------------------------------------------------------------------------


def test_get_graph_and_nodes():
    a = pf.randn([100, 50])
    b = pf.randn([50, 75])
    c = a @ b
    d = pf.relu(c)
    g = pf.get_graph(d)
    assert isinstance(g, pf.Graph)
    assert isinstance(g.num_nodes, int)
    assert g.num_nodes == len(g.nodes)
    assert g.num_nodes >= 4  # two inputs, matmul, relu
    assert all(isinstance(n, pf.Node) for n in g.nodes)
    ops = [n.op_type for n in g.nodes]
    assert "matmul" in ops and "relu" in ops
    assert all(isinstance(o, str) and o == o.lower() for o in ops)
    assert str(g)


def test_get_node_structure():
    a = pf.randn([100, 50])
    b = pf.randn([50, 75])
    d = pf.relu(a @ b)
    node = pf.get_node(d)
    assert isinstance(node, pf.Node)
    assert node.op_type == "relu"
    assert node.output_shape == [100, 75]
    assert node.output_dtype == pf.float32
    assert len(node.inputs) == 1
    mm = node.inputs[0]
    assert mm.op_type == "matmul"
    assert mm.output_shape == [100, 75]
    assert len(mm.inputs) == 2
    assert [n.output_shape for n in mm.inputs] == [[100, 50], [50, 75]]


def test_add_node_and_broadcast_shape():
    a = pf.randn([3, 1])
    b = pf.randn([4])
    n = pf.get_node(a + b)
    assert n.op_type == "add"
    assert n.output_shape == [3, 4]
    assert [i.output_shape for i in n.inputs] == [[3, 1], [4]]


def test_node_dtypes_and_reduction_shapes():
    x = pf.ones([3, 4], dtype=pf.int32)
    s = x.sum(dim=1)
    assert pf.get_node(s).output_shape == [3]
    assert pf.get_node(s).output_dtype == pf.int64
    h = pf.ones([2]).astype(pf.float16)
    assert pf.get_node(h).output_dtype == pf.float16
    c = pf.ones([2]) < 1.0
    assert pf.get_node(c).output_dtype == pf.bool_


def test_graph_grows_with_ops_and_shares_nodes():
    a = pf.randn([8])
    b = pf.randn([8])
    c = a + b
    n_c = pf.get_graph(c).num_nodes
    d = pf.relu(c)
    assert pf.get_graph(d).num_nodes == n_c + 1
    # c used twice: still one add node
    e = c * c
    g = pf.get_graph(e)
    assert g.num_nodes == n_c + 1
    assert [n.op_type for n in g.nodes].count("add") == 1
    inputs = pf.get_node(e).inputs
    assert len(inputs) == 2 and all(i.op_type == "add" for i in inputs)


def test_graph_of_evaluated_tensor_is_inspectable():
    a = pf.randn([4])
    d = pf.relu(a)
    d.eval()
    g = pf.get_graph(d)
    assert g.num_nodes >= 1
    assert pf.get_node(d).output_shape == [4]


def test_print_graph(capfd):
    a = pf.randn([100, 100])
    b = pf.randn([100, 100])
    d = pf.relu(a @ b)
    pf.print_graph(d)
    out = capfd.readouterr().out
    assert "matmul" in out and "relu" in out


def test_graph_inspection_does_not_evaluate():
    d = pf.relu(pf.randn([4]) @ pf.randn([4, 2]))
    pf.get_graph(d)
    pf.get_node(d)
    assert pf.is_lazy(d)


def test_tensorspec_exists():
    assert hasattr(pf, "TensorSpec")


# --------------------------------------------------------------------------
# layouts
# --------------------------------------------------------------------------

LAYOUTS = {
    "single_pe": lambda: pf.MeshLayout.single_pe(),
    "row_partition4": lambda: pf.MeshLayout.row_partition(4),
    "col_partition4": lambda: pf.MeshLayout.col_partition(4),
    "grid4x4": lambda: pf.MeshLayout.grid(4, 4),
}


@pytest.mark.parametrize("make_layout", list(LAYOUTS.values()), ids=list(LAYOUTS))
@pytest.mark.parametrize("creator", ["zeros", "ones", "randn", "rand", "full"])
def test_creation_carries_layout(make_layout, creator):
    L = make_layout()
    args = ([100, 100], 2.0) if creator == "full" else ([100, 100],)
    x = getattr(pf, creator)(*args, layout=L)
    assert x.layout == L
    x.eval()
    assert x.layout == L
    assert x.shape == [100, 100]


def test_default_layout_is_single_pe():
    assert pf.zeros([4, 4]).layout == pf.MeshLayout.single_pe()
    assert pf.from_numpy(np.zeros((2, 2), np.float32)).layout == pf.MeshLayout.single_pe()


def test_layout_equality():
    assert pf.MeshLayout.row_partition(4) == pf.MeshLayout.row_partition(4)
    assert pf.MeshLayout.row_partition(4) != pf.MeshLayout.col_partition(4)
    assert pf.MeshLayout.row_partition(4) != pf.MeshLayout.row_partition(2)
    assert pf.MeshLayout.grid(4, 4) != pf.MeshLayout.grid(2, 8)
    assert pf.MeshLayout.single_pe() != pf.MeshLayout.grid(1, 2)


def test_layout_flows_through_elementwise_ops_and_values_unaffected():
    L = pf.MeshLayout.row_partition(4)
    x = pf.ones([100, 100], layout=L)
    y = pf.relu(x * 2.0 + 1.0)
    assert y.layout == L
    np.testing.assert_array_equal(y.numpy(), np.full((100, 100), 3.0, np.float32))


def test_layout_values_identical_across_layouts(rng):
    a = rng.standard_normal((16, 16)).astype(np.float32)
    results = []
    for make_layout in LAYOUTS.values():
        x = pf.zeros([16, 16], layout=make_layout()) + pf.from_numpy(a)
        results.append(pf.softmax(x @ x, dim=-1).numpy())
    for r in results[1:]:
        np.testing.assert_allclose(r, results[0], rtol=1e-6, atol=1e-7)


def test_pecoord():
    c = pf.PECoord(2, 3)
    assert c.row == 2 and c.col == 3
    assert pf.PECoord(2, 3) == pf.PECoord(2, 3)
    assert pf.PECoord(2, 3) != pf.PECoord(3, 2)


# --------------------------------------------------------------------------
# versions
# --------------------------------------------------------------------------


def test_version_attributes():
    assert isinstance(pf.__version__, str) and pf.__version__
    assert isinstance(pf.__version_info__, tuple)
    assert pf.__version_info__[:3] == (1, 0, 0)


# --------------------------------------------------------------------------
# tensor flags
# --------------------------------------------------------------------------


def test_tensor_factory_requires_grad():
    src = pf.tensor([1.0, 2.0])
    x = pf.tensor(src, requires_grad=True)
    assert x.requires_grad and not src.requires_grad
    (x * x).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), [2.0, 4.0])
    assert pf.tensor(np.ones(2), requires_grad=False).requires_grad is False
    with pytest.raises(TypeError, match="floating-point"):
        pf.tensor([1, 2], requires_grad=True)


def test_requires_grad_flag():
    x = pf.randn([3])
    assert x.requires_grad is False
    x.requires_grad = True
    assert x.requires_grad is True
    x.requires_grad = False
    assert x.requires_grad is False
