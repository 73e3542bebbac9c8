"""Constant folding, dead-code elimination and common-subexpression elimination.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph(); g.add_input("x", [3], np.float32)
    >>> g.add_initializer("a", np.ones(3, np.float32))
    >>> _ = g.add_node("c", "Add", ["a", "a"], ["two"])
    >>> _ = g.add_node("m", "Mul", ["x", "two"], ["y"]); g.add_output("y")
    >>> fold_constants(g).stats.constants_folded, g.initializers["two"].tolist()
    (1, [2.0, 2.0, 2.0])
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

import numpy as np

from ..graph import Graph, Node
from ..onnx_import.registry import NONDETERMINISTIC, OpContext, get_converter, is_supported
from ..options import OptLevel
from .base import Pass, PassResult


def replace_uses(graph: Graph, old: str, new: str) -> None:
    """Makes every node read `new` where it read `old`."""
    for n in graph.nodes:
        if old in n.inputs:
            n.inputs = [new if i == old else i for i in n.inputs]


@dataclass
class ConstantFoldingConfig:
    """What ConstantFoldingPass may fold."""

    max_tensor_bytes: int = 16 * 1024 * 1024
    fold_shape_ops: bool = True
    fold_expensive_ops: bool = False
    exclude_ops: List[str] = field(default_factory=list)


_EXPENSIVE = {"MatMul", "Gemm", "Conv", "ConvTranspose", "Einsum"}


class ConstantFoldingPass(Pass):
    """Evaluates nodes whose inputs are all constants (and Shape/Size of static shapes)."""

    name = "ConstantFoldingPass"
    description = "pre-computes nodes with constant inputs"
    min_level = OptLevel.BASIC

    def __init__(self, config: Optional[ConstantFoldingConfig] = None) -> None:
        self.config = config or ConstantFoldingConfig()

    def _static_shape(self, graph: Graph, name: str) -> Optional[List[int]]:
        info = graph.get_tensor_info(name)
        if info is None or info.is_dynamic():
            return None
        return [int(d) for d in info.shape]  # type: ignore[union-attr]

    def run(self, graph: Graph) -> PassResult:
        """Folds in place; returns statistics."""
        res = PassResult()
        cfg = self.config
        ctx = OpContext(graph.opset)
        outputs = set(graph.output_names())
        keep: List[Node] = []
        for n in graph.nodes:
            folded = self._try_fold(graph, n, ctx, cfg, res)
            if folded is None:
                keep.append(n)
                continue
            for name, val in zip(n.outputs, folded):
                if name:
                    graph.initializers[name] = val
            res.modified = True
            res.stats.constants_folded += 1
            res.stats.nodes_removed += 1
        del outputs
        graph.nodes = keep
        return res

    def _try_fold(
        self, graph: Graph, n: Node, ctx: OpContext, cfg: ConstantFoldingConfig, res: PassResult
    ) -> Optional[List[np.ndarray]]:
        if n.op_type in cfg.exclude_ops or n.op_type in NONDETERMINISTIC:
            return None
        if n.domain not in ("", "ai.onnx") or not is_supported(n.op_type):
            return None
        if n.op_type in _EXPENSIVE and not cfg.fold_expensive_ops:
            return None
        if n.op_type in ("Shape", "Size"):
            if not cfg.fold_shape_ops or not n.inputs:
                return None
            shape = self._static_shape(graph, n.inputs[0])
            if shape is None:
                return None
            vals: List[Any] = [
                np.zeros(shape, np.float32) if 0 in shape else np.broadcast_to(np.float32(0), shape)
            ]
        else:
            if not all((not i) or i in graph.initializers for i in n.inputs):
                return None
            if not any(n.inputs):
                if n.op_type not in ("Constant", "ConstantOfShape", "EyeLike", "Range"):
                    return None
            vals = [graph.initializers[i] if i else None for i in n.inputs]
        fn = get_converter(n.op_type)
        try:
            out = fn(ctx, n, vals)  # type: ignore[misc]
            out = list(out) if isinstance(out, (list, tuple)) else [out]
            arrays = [
                None if o is None else (o if isinstance(o, np.ndarray) else np.asarray(o.numpy()))
                for o in out
            ]
        except Exception as e:  # noqa: BLE001 - leave the node for run time
            res.warnings.append(f"could not fold {n.name} ({n.op_type}): {e}")
            return None
        if any(a is not None and a.nbytes > cfg.max_tensor_bytes for a in arrays):
            return None
        if len(arrays) < len([o for o in n.outputs if o]):
            return None
        return arrays  # type: ignore[return-value]


def fold_constants(graph: Graph, config: Optional[ConstantFoldingConfig] = None) -> PassResult:
    """Runs ConstantFoldingPass once on `graph` (see the module example)."""
    return ConstantFoldingPass(config).run(graph)


@dataclass
class DCEConfig:
    """What DeadCodeEliminationPass removes."""

    remove_initializers: bool = True
    remove_identity: bool = True
    remove_dropout: bool = True


class DeadCodeEliminationPass(Pass):
    """Removes Identity/inference Dropout, nodes no output needs and unused initializers."""

    name = "DeadCodeEliminationPass"
    description = "removes nodes and initializers that do not contribute to outputs"
    min_level = OptLevel.BASIC

    def __init__(self, config: Optional[DCEConfig] = None) -> None:
        self.config = config or DCEConfig()

    def run(self, graph: Graph) -> PassResult:
        """Eliminates in place; returns statistics."""
        res = PassResult()
        outputs = set(graph.output_names())
        consumers = graph.consumers()
        keep: List[Node] = []
        for n in graph.nodes:
            passthrough = (self.config.remove_identity and n.op_type == "Identity") or (
                self.config.remove_dropout
                and n.op_type == "Dropout"
                and not (len(n.outputs) > 1 and n.outputs[1] and n.outputs[1] in consumers)
                and not (len(n.outputs) > 1 and n.outputs[1] in outputs)
                and (len(n.inputs) < 3 or not n.inputs[2])
            )
            if passthrough and n.inputs and n.inputs[0] and n.outputs[0] not in outputs:
                replace_uses(graph, n.outputs[0], n.inputs[0])
                res.modified = True
                res.stats.nodes_removed += 1
                continue
            keep.append(n)
        graph.nodes = keep
        live = set(outputs)
        alive: List[Node] = []
        for n in reversed(graph.nodes):
            if any(o in live for o in n.outputs if o):
                alive.append(n)
                live.update(i for i in n.inputs if i)
            else:
                res.modified = True
                res.stats.nodes_removed += 1
        graph.nodes = alive[::-1]
        if self.config.remove_initializers:
            for k in [k for k in graph.initializers if k not in live]:
                del graph.initializers[k]
                res.stats.initializers_removed += 1
                res.modified = True
        return res


def eliminate_dead_code(graph: Graph, config: Optional[DCEConfig] = None) -> PassResult:
    """Runs DeadCodeEliminationPass once on `graph`.

    Example:
        >>> from pyflame.runtime.graph import Graph
        >>> g = Graph(); g.add_input("x", [1], np.float32)
        >>> _ = g.add_node("dead", "Relu", ["x"], ["unused"])
        >>> _ = g.add_node("r", "Neg", ["x"], ["y"]); g.add_output("y")
        >>> eliminate_dead_code(g).stats.nodes_removed
        1
    """
    return DeadCodeEliminationPass(config).run(graph)


@dataclass
class CSEConfig:
    """CSE options."""

    check_attributes: bool = True
    max_comparisons: int = 1000


def _attr_key(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return ("nd", v.dtype.str, v.shape, v.tobytes())
    if isinstance(v, list):
        return tuple(_attr_key(x) for x in v)
    return v


class CSEPass(Pass):
    """Shares nodes with identical op, inputs and attributes (and identical small constants)."""

    name = "CSEPass"
    description = "common subexpression elimination"
    min_level = OptLevel.EXTENDED

    def __init__(self, config: Optional[CSEConfig] = None) -> None:
        self.config = config or CSEConfig()

    def run(self, graph: Graph) -> PassResult:
        """Eliminates in place; returns statistics."""
        res = PassResult()
        outputs = set(graph.output_names())
        seen: Dict[Any, Node] = {}
        keep: List[Node] = []
        for n in graph.nodes:
            if n.op_type in NONDETERMINISTIC or any(o in outputs for o in n.outputs):
                keep.append(n)
                continue
            attrs = (
                tuple(sorted((k, _attr_key(v)) for k, v in n.attrs.items()))
                if self.config.check_attributes
                else ()
            )
            try:
                key = (n.domain, n.op_type, tuple(n.inputs), len(n.outputs), attrs)
                hash(key)
            except TypeError:
                keep.append(n)
                continue
            prev = seen.get(key)
            if prev is None:
                seen[key] = n
                keep.append(n)
                continue
            for old, new in zip(n.outputs, prev.outputs):
                if old:
                    replace_uses(graph, old, new)
            res.modified = True
            res.stats.nodes_removed += 1
        graph.nodes = keep
        return res


def eliminate_common_subexpressions(graph: Graph, config: Optional[CSEConfig] = None) -> PassResult:
    """Runs CSEPass once on `graph`.

    Example:
        >>> from pyflame.runtime.graph import Graph
        >>> g = Graph(); g.add_input("a", [1], np.float32)
        >>> _ = g.add_node("x", "Exp", ["a"], ["x"]); _ = g.add_node("y", "Exp", ["a"], ["y"])
        >>> _ = g.add_node("z", "Mul", ["x", "y"], ["z"]); g.add_output("z")
        >>> eliminate_common_subexpressions(g).stats.nodes_removed, g.nodes[-1].inputs
        (1, ['x', 'x'])
    """
    return CSEPass(config).run(graph)
