"""Operator fusion: Conv+BatchNorm folded into the weights, Conv(+Add)+Relu/Clip ->
FusedConv, MatMul+Add -> Gemm (2-D) or FusedMatMulBias, Gemm+Relu -> FusedGemm,
Add+Relu -> FusedAddRelu, the erf form of GELU (``x * 0.5 * (1 + erf(x / sqrt(2)))``, as
exported by PyTorch) -> Gelu, and Gemm/FusedMatMulBias + Gelu -> one node with a Gelu
activation (the bias add and the activation then run as one fused pass over the matmul
result). Fused nodes live in the ``pyflame.rt`` domain.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph(); g.add_input("x", [1, 1, 4, 4], np.float32)
    >>> g.add_initializer("w", np.ones((2, 1, 3, 3), np.float32))
    >>> _ = g.add_node("c", "Conv", ["x", "w"], ["c"]); _ = g.add_node("r", "Relu", ["c"], ["y"])
    >>> g.add_output("y")
    >>> fuse_operators(g).stats.nodes_fused, [n.op_type for n in g.nodes]
    (1, ['FusedConv'])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..graph import Graph, Node
from ..onnx_import.registry import FUSED_DOMAIN
from ..options import OptLevel
from .base import Pass, PassResult
from .pattern import Match, Pattern, PatternEdge, PatternMatcher, PatternNode


@dataclass
class FusionConfig:
    """Which fusions OperatorFusionPass applies."""

    fuse_conv_bn: bool = True
    fuse_conv_bn_activation: bool = True
    fuse_matmul_add: bool = True
    fuse_elementwise_activation: bool = True
    fuse_gelu: bool = True
    check_backend_support: bool = True
    target_backend: str = "cpu"


def _chain(a: str, b: str, index: Optional[int] = 0) -> Pattern:
    p = Pattern()
    p.add_node(PatternNode.op(a, "a"))
    p.add_node(PatternNode.op(b, "b"))
    p.add_edge(PatternEdge.output_to_input("a", "b", index))
    p.set_root("b")
    return p


class OperatorFusionPass(Pass):
    """Applies the fusions of :class:`FusionConfig` (see the module docstring)."""

    name = "OperatorFusionPass"
    description = "fuses Conv+BN, Conv+Relu, MatMul+Add, Add+Relu and friends"
    min_level = OptLevel.EXTENDED

    def __init__(self, config: Optional[FusionConfig] = None) -> None:
        self.config = config or FusionConfig()
        self.matcher = PatternMatcher()

    def run(self, graph: Graph) -> PassResult:
        """Fuses in place; returns statistics."""
        res = PassResult()
        cfg = self.config
        if cfg.fuse_conv_bn:
            self._apply(graph, _chain("Conv", "BatchNormalization"), self._conv_bn, res)
        if cfg.fuse_elementwise_activation or cfg.fuse_conv_bn_activation:
            self._apply(graph, self._conv_add_relu_pattern(), self._conv_add_relu, res)
            self._apply(graph, _chain("Conv", "Relu"), self._conv_act, res)
            self._apply(graph, _chain("Conv", "Clip"), self._conv_act, res)
        if cfg.fuse_matmul_add:
            self._apply(graph, _chain("MatMul", "Add", None), self._matmul_add, res)
        if cfg.fuse_gelu:
            n = _fuse_gelu(graph)
            if n:
                res.modified = True
                res.stats.nodes_fused += n
                res.stats.nodes_removed += 4 * n
        if cfg.fuse_elementwise_activation:
            for act in ("Relu", "Gelu"):
                self._apply(graph, _chain("Gemm", act), self._gemm_relu, res)
                self._apply(graph, _chain("FusedMatMulBias", act), self._gemm_relu, res)
            self._apply(graph, _chain("Add", "Relu"), self._add_relu, res)
        if res.modified:
            graph.topological_sort()  # a fused node may now read a value produced later
        return res

    @staticmethod
    def _conv_add_relu_pattern() -> Pattern:
        p = Pattern()
        p.add_node(PatternNode.op("Conv", "conv"))
        p.add_node(PatternNode.op("Add", "add"))
        p.add_node(PatternNode.op("Relu", "relu"))
        p.add_edge(PatternEdge.output_to_input("conv", "add", None))
        p.add_edge(PatternEdge.output_to_input("add", "relu", 0))
        p.set_root("relu")
        return p

    def _apply(self, graph: Graph, pattern: Pattern, fn: object, res: PassResult) -> None:
        for m in self.matcher.find_all(graph, pattern):
            removed = fn(graph, m)  # type: ignore[operator]
            if removed:
                res.modified = True
                res.stats.nodes_fused += 1
                res.stats.nodes_removed += len(removed)
                ids = {id(n) for n in removed}
                graph.nodes = [n for n in graph.nodes if id(n) not in ids]

    # ---------------------------------------------------------------- rewrites
    @staticmethod
    def _conv_bn(graph: Graph, m: Match) -> List[Node]:
        conv, bn = m.get_node("a"), m.get_node("b")
        if not m.is_single_consumer("a") or len([o for o in bn.outputs if o]) != 1:
            return []
        if int(bn.attrs.get("training_mode", 0)):
            return []
        names = [conv.inputs[1]] + bn.inputs[1:5]
        if len(names) != 5 or not all(n in graph.initializers for n in names):
            return []
        if len(conv.inputs) > 2 and conv.inputs[2] and conv.inputs[2] not in graph.initializers:
            return []
        w = graph.initializers[conv.inputs[1]]
        scale, bias, mean, var = (graph.initializers[n].astype(np.float64) for n in names[1:])
        if w.dtype.kind != "f" or w.ndim < 3 or scale.shape != (w.shape[0],):
            return []
        a = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
        b0 = (
            graph.initializers[conv.inputs[2]].astype(np.float64)
            if len(conv.inputs) > 2 and conv.inputs[2]
            else np.zeros(w.shape[0])
        )
        w_new = (w.astype(np.float64) * a.reshape([-1] + [1] * (w.ndim - 1))).astype(w.dtype)
        b_new = ((b0 - mean) * a + bias).astype(w.dtype)
        wn, bname = f"{conv.name}_bnfold_W", f"{conv.name}_bnfold_B"
        graph.initializers[wn] = w_new
        graph.initializers[bname] = b_new
        conv.inputs = [conv.inputs[0], wn, bname]
        conv.outputs = [bn.outputs[0]]
        return [bn]

    @staticmethod
    def _conv_act(graph: Graph, m: Match) -> List[Node]:
        conv, act = m.get_node("a"), m.get_node("b")
        if not m.is_single_consumer("a"):
            return []
        attrs = dict(conv.attrs)
        if act.op_type == "Clip":
            if graph.opset >= 11:
                lo = act.inputs[1] if len(act.inputs) > 1 else ""
                hi = act.inputs[2] if len(act.inputs) > 2 else ""
                if not lo or not hi or lo not in graph.initializers or hi not in graph.initializers:
                    return []
                lo_v, hi_v = graph.initializers[lo], graph.initializers[hi]
            else:
                if "min" not in act.attrs or "max" not in act.attrs:
                    return []
                lo_v, hi_v = act.attrs["min"], act.attrs["max"]
            attrs.update(
                activation="Clip",
                activation_min=float(np.asarray(lo_v).reshape(-1)[0]),
                activation_max=float(np.asarray(hi_v).reshape(-1)[0]),
            )
        else:
            attrs["activation"] = "Relu"
        conv.op_type, conv.domain, conv.attrs = "FusedConv", FUSED_DOMAIN, attrs
        conv.outputs = [act.outputs[0]]
        return [act]

    @staticmethod
    def _conv_add_relu(graph: Graph, m: Match) -> List[Node]:
        conv, add, relu = m.get_node("conv"), m.get_node("add"), m.get_node("relu")
        if not (m.is_single_consumer("conv") and m.is_single_consumer("add")):
            return []
        other = add.inputs[1] if add.inputs[0] == conv.outputs[0] else add.inputs[0]
        if other == conv.outputs[0]:
            return []
        ins = list(conv.inputs) + [""] * (3 - len(conv.inputs))
        conv.inputs = ins[:3] + [other]
        conv.op_type, conv.domain = "FusedConv", FUSED_DOMAIN
        conv.attrs = dict(conv.attrs, activation="Relu")
        conv.outputs = [relu.outputs[0]]
        return [add, relu]

    @staticmethod
    def _matmul_add(graph: Graph, m: Match) -> List[Node]:
        mm, add = m.get_node("a"), m.get_node("b")
        if not m.is_single_consumer("a"):
            return []
        bias = add.inputs[1] if add.inputs[0] == mm.outputs[0] else add.inputs[0]
        if bias == mm.outputs[0]:
            return []
        a_info = graph.get_tensor_info(mm.inputs[0])
        b_info = graph.get_tensor_info(mm.inputs[1])
        c = graph.initializers.get(bias)
        two_d = (
            a_info is not None
            and a_info.shape is not None
            and len(a_info.shape) == 2
            and b_info is not None
            and b_info.shape is not None
            and len(b_info.shape) == 2
            and c is not None
            and c.ndim <= 2
        )
        out_info = graph.get_tensor_info(add.outputs[0])
        mm_info = graph.get_tensor_info(mm.outputs[0])
        if two_d and (out_info is None or mm_info is None or out_info.shape == mm_info.shape):
            mm.op_type, mm.attrs = "Gemm", {}
        else:
            mm.op_type, mm.domain, mm.attrs = "FusedMatMulBias", FUSED_DOMAIN, {}
        mm.inputs = [mm.inputs[0], mm.inputs[1], bias]
        mm.outputs = [add.outputs[0]]
        return [add]

    @staticmethod
    def _gemm_relu(graph: Graph, m: Match) -> List[Node]:
        g, relu = m.get_node("a"), m.get_node("b")
        if not m.is_single_consumer("a") or g.attrs.get("activation"):
            return []
        if relu.op_type == "Gelu" and relu.attrs.get("approximate", "none") != "none":
            return []
        if g.op_type == "Gemm":
            g.op_type, g.domain = "FusedGemm", FUSED_DOMAIN
        g.attrs = dict(g.attrs, activation=relu.op_type)
        g.outputs = [relu.outputs[0]]
        return [relu]

    @staticmethod
    def _add_relu(graph: Graph, m: Match) -> List[Node]:
        add, relu = m.get_node("a"), m.get_node("b")
        if not m.is_single_consumer("a"):
            return []
        add.op_type, add.domain = "FusedAddRelu", FUSED_DOMAIN
        add.outputs = [relu.outputs[0]]
        return [relu]


def _scalar(graph: Graph, name: str) -> Optional[float]:
    v = graph.initializers.get(name)
    if v is None or v.size != 1 or v.dtype.kind != "f":
        return None
    return float(v.reshape(-1)[0])


def _other(node: Node, name: str) -> Optional[str]:
    """The input of a binary node that is not `name` (None when both are)."""
    if len(node.inputs) != 2 or node.inputs.count(name) != 1:
        return None
    return node.inputs[1] if node.inputs[0] == name else node.inputs[0]


def _fuse_gelu(graph: Graph) -> int:
    """Rewrites ``Mul(Mul(x, Add(Erf(Div(x, sqrt2)), 1)), 0.5)`` (any operand order; also
    ``Mul(x, 1/sqrt2)`` for the Div and ``Mul(Mul(x, 0.5), Add(...))``) to ``Gelu(x)``.
    Every intermediate must have exactly one consumer and not be a graph output."""
    consumers = graph.consumers()
    producers = graph.producers()
    outputs = set(graph.output_names())

    def only(name: str, op: str) -> Optional[Node]:
        cs = consumers.get(name, [])
        if len(cs) != 1 or name in outputs or cs[0].op_type != op:
            return None
        return cs[0]

    def close(v: Optional[float], want: float) -> bool:
        return v is not None and abs(v - want) <= 1e-4 * abs(want)

    fused, dead = 0, set()
    for erf in list(graph.nodes):
        if erf.op_type != "Erf" or id(erf) in dead:
            continue
        scale = producers.get(erf.inputs[0])
        if scale is None or scale.op_type not in ("Div", "Mul") or len(scale.inputs) != 2:
            continue
        x, c = scale.inputs
        if scale.op_type == "Mul" and _scalar(graph, c) is None:
            c, x = x, c
        want = 2**0.5 if scale.op_type == "Div" else 2**-0.5
        if not close(_scalar(graph, c), want) or only(scale.outputs[0], "Erf") is None:
            continue
        add = only(erf.outputs[0], "Add")
        one = _other(add, erf.outputs[0]) if add is not None else None
        if add is None or one is None or not close(_scalar(graph, one), 1.0):
            continue
        mul = only(add.outputs[0], "Mul")
        other = _other(mul, add.outputs[0]) if mul is not None else None
        if mul is None or other is None:
            continue
        if other == x:  # (x * (1 + erf)) * 0.5
            last = only(mul.outputs[0], "Mul")
            half = _other(last, mul.outputs[0]) if last is not None else None
            if last is None or half is None or not close(_scalar(graph, half), 0.5):
                continue
            group = [scale, erf, add, mul, last]
        else:  # (x * 0.5) * (1 + erf)
            pre = producers.get(other)
            if pre is None or pre.op_type != "Mul" or only(other, "Mul") is not mul:
                continue
            half = _other(pre, x)
            if half is None or not close(_scalar(graph, half), 0.5):
                continue
            group, last = [pre, scale, erf, add, mul], mul
        out = last.outputs[0]
        keep = group[0]
        keep.op_type, keep.domain, keep.attrs = "Gelu", "", {"approximate": "none"}
        keep.inputs, keep.outputs = [x], [out]
        for n in group[1:]:
            dead.add(id(n))
        fused += 1
    if dead:
        graph.nodes = [n for n in graph.nodes if id(n) not in dead]
    return fused


def fuse_operators(graph: Graph, config: Optional[FusionConfig] = None) -> PassResult:
    """Runs OperatorFusionPass once on `graph` (see the module example)."""
    return OperatorFusionPass(config).run(graph)
