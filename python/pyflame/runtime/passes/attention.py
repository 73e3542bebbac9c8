"""Attention fusion: the composed scaled-dot-product attention that exporters emit,
``MatMul(q, kt) -> Div(c) | Mul(c) -> Add(mask) -> Softmax(last axis) -> MatMul(., v)``
(scale and mask optional, the scale constant on either side of a Mul, the mask on either
side of the Add), becomes one ``FusedAttention`` node in the ``pyflame.rt`` domain.

The fused node runs pyflame's attention kernel (query blocks of ``q @ k^T * scale + mask``,
softmax and ``@ v`` without storing the ``[..., Lq, Lk]`` score and probability tensors).
Whether the kernel applies is decided when the node runs, from the actual shapes and dtypes
(``kt`` is ``[..., D, Lk]``, the batch axes of q, kt and v equal, the mask broadcasting to
the scores without growing them, the softmax over the last axis, float32/float64): when it
does not, the node computes exactly the original chain of operators. Rows whose scores are
all ``-inf`` give NaN, as the softmax of the original graph does.

Every intermediate (scores, scaled scores, masked scores, probabilities) must have exactly
one consumer and must not be a graph output; otherwise the chain is left alone.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph(); g.opset = 17
    >>> for n in ("q", "kt", "v"): g.add_input(n, [1, 2, 4, 4], np.float32)
    >>> g.add_initializer("c", np.array(2.0, np.float32))
    >>> _ = g.add_node("m1", "MatMul", ["q", "kt"], ["s"])
    >>> _ = g.add_node("d", "Div", ["s", "c"], ["t"])
    >>> _ = g.add_node("sm", "Softmax", ["t"], ["p"], {"axis": -1})
    >>> _ = g.add_node("m2", "MatMul", ["p", "v"], ["y"]); g.add_output("y")
    >>> fuse_attention(g).stats.nodes_fused, [n.op_type for n in g.nodes]
    (1, ['FusedAttention'])
"""

from __future__ import annotations

from typing import Dict, List, Optional, Set, Tuple

from ..graph import Graph, Node
from ..onnx_import.registry import FUSED_DOMAIN
from ..options import OptLevel
from .base import Pass, PassResult


class AttentionFusionPass(Pass):
    """Rewrites the composed attention chain to ``FusedAttention`` (module docstring)."""

    name = "AttentionFusionPass"
    description = "fuses MatMul -> scale -> Add(mask) -> Softmax -> MatMul into FusedAttention"
    min_level = OptLevel.EXTENDED

    def run(self, graph: Graph) -> PassResult:
        """Fuses in place; returns statistics."""
        res = PassResult()
        producers = graph.producers()
        consumers = graph.consumers()
        outputs = set(graph.output_names())
        dead: Set[int] = set()
        for sm in list(graph.nodes):
            if sm.op_type != "Softmax" or sm.domain not in ("", "ai.onnx") or id(sm) in dead:
                continue
            m = _match(graph, sm, producers, consumers, outputs)
            if m is None:
                continue
            group, fused_inputs, attrs = m
            last = group[-1]
            last.op_type, last.domain = "FusedAttention", FUSED_DOMAIN
            last.inputs, last.attrs = fused_inputs, attrs
            for n in group[:-1]:
                dead.add(id(n))
            res.modified = True
            res.stats.nodes_fused += 1
            res.stats.nodes_removed += len(group) - 1
        if dead:
            graph.nodes = [n for n in graph.nodes if id(n) not in dead]
            graph.topological_sort()
        return res


def _only_consumer(
    name: str, consumers: Dict[str, List[Node]], outputs: Set[str]
) -> Optional[Node]:
    """The single node reading `name`, or None (several readers, none, or a graph output)."""
    cs = consumers.get(name, [])
    if len(cs) != 1 or name in outputs:
        return None
    return cs[0]


def _scalar_const(graph: Graph, name: str) -> bool:
    v = graph.initializers.get(name)
    return v is not None and v.size == 1 and v.dtype.kind == "f"


def _is_plain(node: Optional[Node], op: str) -> bool:
    return node is not None and node.op_type == op and node.domain in ("", "ai.onnx")


def _scores(
    graph: Graph,
    name: str,
    producers: Dict[str, Node],
    consumers: Dict[str, List[Node]],
    outputs: Set[str],
) -> Optional[Tuple[List[Node], Node, str, str]]:
    """Recognises `name` as ``MatMul(q, kt)`` optionally scaled by a scalar constant:
    returns (nodes, the MatMul, scale op "Div"/"Mul"/"", scale constant name)."""
    node = producers.get(name)
    if node is None or len(node.outputs) != 1:
        return None
    scale_op, const, nodes = "", "", []
    if (_is_plain(node, "Div") or _is_plain(node, "Mul")) and len(node.inputs) == 2:
        a, b = node.inputs
        if _scalar_const(graph, b):
            x, const = a, b
        elif node.op_type == "Mul" and _scalar_const(graph, a):
            x, const = b, a
        else:
            return None
        if _only_consumer(x, consumers, outputs) is not node:
            return None
        scale_op, nodes = node.op_type, [node]
        node = producers.get(x)
        if node is None or len(node.outputs) != 1:
            return None
    if not _is_plain(node, "MatMul") or len(node.inputs) != 2 or not all(node.inputs):
        return None
    return [node] + nodes, node, scale_op, const


def _match(
    graph: Graph,
    sm: Node,
    producers: Dict[str, Node],
    consumers: Dict[str, List[Node]],
    outputs: Set[str],
) -> Optional[Tuple[List[Node], List[str], Dict[str, object]]]:
    """The nodes of the chain ending at Softmax `sm` (in order, the final MatMul last), the
    fused node's inputs and attributes; None when `sm` does not end such a chain."""
    if len(sm.inputs) != 1 or len(sm.outputs) != 1 or not sm.outputs[0]:
        return None
    mm2 = _only_consumer(sm.outputs[0], consumers, outputs)
    if not _is_plain(mm2, "MatMul") or mm2.inputs[0] != sm.outputs[0]:
        return None
    if mm2.inputs[1] == sm.outputs[0] or len(mm2.outputs) != 1:
        return None
    x = sm.inputs[0]
    if _only_consumer(x, consumers, outputs) is not sm:
        return None
    add = producers.get(x)
    mask = ""
    found = None
    if _is_plain(add, "Add") and len(add.inputs) == 2 and add.inputs[0] != add.inputs[1]:
        for i in (0, 1):
            s = add.inputs[i]
            if _only_consumer(s, consumers, outputs) is not add:
                continue
            found = _scores(graph, s, producers, consumers, outputs)
            if found is not None:
                mask = add.inputs[1 - i]
                found = (found[0] + [add],) + found[1:]
                break
    else:
        found = _scores(graph, x, producers, consumers, outputs)
    if found is None or not mask and _is_plain(add, "Add"):
        return None
    nodes, mm1, scale_op, const = found
    q, kt = mm1.inputs
    attrs: Dict[str, object] = {"scale_op": scale_op}
    if "axis" in sm.attrs:
        attrs["softmax_axis"] = int(sm.attrs["axis"])
    inputs = [q, kt, mm2.inputs[1], mask, const]
    return nodes + [sm, mm2], inputs, attrs


def fuse_attention(graph: Graph) -> PassResult:
    """Runs AttentionFusionPass once on `graph` (see the module example)."""
    return AttentionFusionPass().run(graph)
