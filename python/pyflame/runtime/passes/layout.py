"""Conservative layout optimization (OptLevel.ALL): removes layout shuffles the CPU kernels
do not need and stores constant weights in the layout the kernels read.

The CPU executor's convolution and pooling kernels are NCHW only, so the pass never changes
the layout an operator computes in. What it does:

- **Transpose chains**: ``Transpose(Transpose(x, p1), p2)`` becomes one Transpose with the
  composed permutation, and disappears when that permutation is the identity.
- **Propagation** (``propagate_layout``): a Transpose followed by a single-consumer
  elementwise operator (unary, or binary with a one-element constant) is moved after it, so a
  ``Transpose -> Relu -> inverse Transpose`` sandwich (NHWC models converted to NCHW) cancels.
- **Pre-transposed weights** (``pretranspose_weights``): ``Gemm`` / ``FusedGemm`` with
  ``transA``/``transB`` on a constant operand gets the transposed constant stored contiguous
  at session creation, so the GEMM reads it contiguously and no run transposes it.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph(); g.add_input("x", [1, 4, 4, 3], np.float32)
    >>> _ = g.add_node("t1", "Transpose", ["x"], ["a"], {"perm": [0, 3, 1, 2]})
    >>> _ = g.add_node("r", "Relu", ["a"], ["b"])
    >>> _ = g.add_node("t2", "Transpose", ["b"], ["y"], {"perm": [0, 2, 3, 1]})
    >>> g.add_output("y")
    >>> _ = LayoutOptimizationPass().run(g)
    >>> [n.op_type for n in g.nodes]
    ['Relu']
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import List, Optional

import numpy as np

from ..graph import Graph, Node
from ..options import OptLevel
from .base import Pass, PassResult


class Layout(enum.Enum):
    """Tensor memory layouts named by the spec."""

    NCHW = "NCHW"
    NHWC = "NHWC"
    NC4HW4 = "NC4HW4"


@dataclass
class LayoutConfig:
    """LayoutOptimizationPass configuration (spec names).

    `conv_layout` is the layout convolutions compute in; the CPU backend's kernels are NCHW,
    so any other value is reported as a warning and not applied. `insert_transposes` allows
    the pass to create Transpose nodes (when moving one past an elementwise operator).
    """

    conv_layout: Layout = Layout.NCHW
    insert_transposes: bool = True
    propagate_layout: bool = True
    pretranspose_weights: bool = True
    target_backend: str = "cpu"


#: elementwise operators a Transpose can move past (unary, or binary with a scalar constant)
_UNARY = {
    "Abs", "Cast", "Ceil", "Clip", "Cos", "Elu", "Erf", "Exp", "Floor", "Gelu", "HardSigmoid",
    "HardSwish", "LeakyRelu", "Log", "Neg", "Not", "Reciprocal", "Relu", "Round", "Selu",
    "Sigmoid", "Sign", "Sin", "Softplus", "Softsign", "Sqrt", "Tanh",
}  # fmt: skip
_BINARY = {"Add", "Sub", "Mul", "Div", "Pow", "Max", "Min"}


def _perm(graph: Graph, node: Node) -> Optional[List[int]]:
    p = node.attrs.get("perm")
    if p is not None:
        return [int(v) for v in p]
    info = graph.get_tensor_info(node.inputs[0])
    if info is None or info.shape is None:
        return None
    return list(range(len(info.shape)))[::-1]


class LayoutOptimizationPass(Pass):
    """See the module docstring."""

    name = "LayoutOptimizationPass"
    description = (
        "cancels/merges transposes, moves them past elementwise ops, pre-transposes weights"
    )
    min_level = OptLevel.ALL

    def __init__(self, config: Optional[LayoutConfig] = None) -> None:
        self.config = config or LayoutConfig()

    def run(self, graph: Graph) -> PassResult:
        """Rewrites `graph` in place; returns statistics."""
        res = PassResult()
        cfg = self.config
        if Layout(cfg.conv_layout) is not Layout.NCHW:
            res.warnings.append(
                f"conv_layout {Layout(cfg.conv_layout).value} not applied: the "
                f"{cfg.target_backend} backend's convolution kernels are NCHW only"
            )
        if cfg.pretranspose_weights:
            self._pretranspose(graph, res)
        for _ in range(len(graph.nodes) + 1):  # each round removes or moves a Transpose
            changed = self._merge_transposes(graph, res)
            if cfg.propagate_layout and cfg.insert_transposes:
                changed = self._sink_transpose(graph, res) or changed
            if not changed:
                break
        if res.modified:
            graph.topological_sort()
        return res

    # ------------------------------------------------------------------ weights
    @staticmethod
    def _pretranspose(graph: Graph, res: PassResult) -> None:
        consumers = graph.consumers()
        for n in graph.nodes:
            if n.op_type not in ("Gemm", "FusedGemm"):
                continue
            for idx, attr in ((0, "transA"), (1, "transB")):
                name = n.inputs[idx] if len(n.inputs) > idx else ""
                w = graph.initializers.get(name)
                if not int(n.attrs.get(attr, 0)) or w is None or w.ndim != 2:
                    continue
                new = f"{name}__T"
                if new not in graph.initializers:
                    graph.initializers[new] = np.ascontiguousarray(w.T)
                n.inputs[idx] = new
                n.attrs = dict(n.attrs, **{attr: 0})
                if len(consumers.get(name, [])) <= 1 and name not in graph.output_names():
                    del graph.initializers[name]
                    res.stats.initializers_removed += 1
                res.stats.layout_changes += 1
                res.modified = True

    # --------------------------------------------------------------- transposes
    @staticmethod
    def _merge_transposes(graph: Graph, res: PassResult) -> bool:
        producers = graph.producers()
        consumers = graph.consumers()
        outputs = set(graph.output_names())
        for t2 in graph.nodes:
            if t2.op_type != "Transpose":
                continue
            t1 = producers.get(t2.inputs[0])
            if t1 is None or t1.op_type != "Transpose":
                continue
            p1, p2 = _perm(graph, t1), _perm(graph, t2)
            if p1 is None or p2 is None or len(p1) != len(p2):
                continue
            q = [p1[i] for i in p2]
            x, y = t1.inputs[0], t2.outputs[0]
            if q == list(range(len(q))):
                if y in outputs:
                    # a graph output keeps its name: the producer of x writes it directly
                    px = producers.get(x)
                    if (
                        px is None
                        or x in outputs
                        or [id(c) for c in consumers.get(x, [])] != [id(t1)]
                        or len(consumers.get(t1.outputs[0], [])) != 1
                    ):
                        continue
                    px.outputs = [y if o == x else o for o in px.outputs]
                    x = y
                for c in consumers.get(y, []):
                    c.inputs = [x if i == y else i for i in c.inputs]
                graph.nodes = [n for n in graph.nodes if n is not t2]
                res.stats.nodes_removed += 1
            else:
                t2.inputs = [x]
                t2.attrs = dict(t2.attrs, perm=q)
            if len(consumers.get(t1.outputs[0], [])) == 1 and t1.outputs[0] not in outputs:
                graph.nodes = [n for n in graph.nodes if n is not t1]
                res.stats.nodes_removed += 1
            res.stats.layout_changes += 1
            res.modified = True
            return True
        return False

    @staticmethod
    def _sink_transpose(graph: Graph, res: PassResult) -> bool:
        """``Op(Transpose(x))`` -> ``Transpose(Op(x))`` when that lets two transposes meet."""
        producers = graph.producers()
        consumers = graph.consumers()
        outputs = set(graph.output_names())
        for op in graph.nodes:
            if len(op.outputs) != 1 or not op.inputs:
                continue
            if op.op_type in _UNARY:
                t_idx = 0
            elif op.op_type in _BINARY and len(op.inputs) == 2:
                t_idx = 1 if op.inputs[1] in producers else 0
            else:
                continue
            t = producers.get(op.inputs[t_idx])
            if t is None or t.op_type != "Transpose" or t.outputs[0] in outputs:
                continue
            perm = _perm(graph, t)
            # every other operand must be a one-element constant of rank <= the transposed
            # value's, so broadcasting it commutes with the permutation
            others = [i for k, i in enumerate(op.inputs) if k != t_idx and i]
            if perm is None or not all(
                i in graph.initializers
                and graph.initializers[i].size == 1
                and graph.initializers[i].ndim <= len(perm)
                for i in others
            ):
                continue
            if len(consumers.get(t.outputs[0], [])) != 1:
                continue
            # only worth it when the op's result goes (only) into another Transpose
            after = consumers.get(op.outputs[0], [])
            if len(after) != 1 or after[0].op_type not in _UNARY | _BINARY | {"Transpose"}:
                continue
            if after[0].op_type != "Transpose" and not _leads_to_transpose(graph, after[0]):
                continue
            y = op.outputs[0]
            mid = f"{y}__pre_transpose"
            op.inputs = [t.inputs[0] if k == t_idx else i for k, i in enumerate(op.inputs)]
            op.outputs = [mid]
            t.inputs, t.outputs = [mid], [y]
            res.stats.layout_changes += 1
            res.modified = True
            graph.topological_sort()
            return True
        return False


def _leads_to_transpose(graph: Graph, node: Node, depth: int = 8) -> bool:
    """True when a single-consumer chain of elementwise ops from `node` ends in a Transpose."""
    consumers = graph.consumers()
    for _ in range(depth):
        after = consumers.get(node.outputs[0], []) if len(node.outputs) == 1 else []
        if len(after) != 1:
            return False
        node = after[0]
        if node.op_type == "Transpose":
            return True
        if node.op_type not in _UNARY | _BINARY:
            return False
    return False


def optimize_layout(graph: Graph, config: Optional[LayoutConfig] = None) -> PassResult:
    """Runs LayoutOptimizationPass once on `graph` (see the module example)."""
    return LayoutOptimizationPass(config).run(graph)


__all__ = [
    "Layout",
    "LayoutConfig",
    "LayoutOptimizationPass",
    "optimize_layout",
]
