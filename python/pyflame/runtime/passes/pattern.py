"""Declarative pattern matching over the graph (chains/trees of ops joined by edges).

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph(); g.add_input("a", [2, 2], np.float32)
    >>> _ = g.add_node("mm", "MatMul", ["a", "a"], ["m"])
    >>> _ = g.add_node("ad", "Add", ["m", "a"], ["y"]); g.add_output("y")
    >>> p = Pattern()
    >>> p.add_node(PatternNode.op("MatMul", "matmul")); p.add_node(PatternNode.op("Add", "add"))
    >>> p.add_edge(PatternEdge.output_to_input("matmul", "add", None)); p.set_root("add")
    >>> [m.get_node("matmul").name for m in PatternMatcher().find_all(g, p)]
    ['mm']
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence

from ..graph import Graph, Node


@dataclass
class PatternNode:
    """A pattern node matching any of `op_types` (empty = any op), labelled `label`."""

    label: str
    op_types: Sequence[str] = ()

    @staticmethod
    def op(op_type: str, label: str) -> PatternNode:
        """A node matching one op type."""
        return PatternNode(label, (op_type,))

    @staticmethod
    def any_of(op_types: Sequence[str], label: str) -> PatternNode:
        """A node matching one of several op types."""
        return PatternNode(label, tuple(op_types))


@dataclass
class PatternEdge:
    """`src`'s output 0 feeds `dst`'s input `index` (None = any input)."""

    src: str
    dst: str
    index: Optional[int] = 0

    @staticmethod
    def output_to_input(src: str, dst: str, index: Optional[int] = 0) -> PatternEdge:
        """An edge from `src` to input `index` of `dst`."""
        return PatternEdge(src, dst, index)


@dataclass
class Pattern:
    """Pattern nodes, edges and the root (the last node of the matched subgraph)."""

    nodes: Dict[str, PatternNode] = field(default_factory=dict)
    edges: List[PatternEdge] = field(default_factory=list)
    root: str = ""

    def add_node(self, n: PatternNode) -> None:
        """Adds a pattern node."""
        self.nodes[n.label] = n

    def add_edge(self, e: PatternEdge) -> None:
        """Adds an edge."""
        self.edges.append(e)

    def set_root(self, label: str) -> None:
        """Sets the root label."""
        self.root = label


@dataclass
class Match:
    """A match: label -> node, plus consumer counts to check single-consumer constraints."""

    nodes: Dict[str, Node]
    consumer_counts: Dict[str, int]
    graph_outputs: frozenset

    def get_node(self, label: str) -> Node:
        """The node matched to `label`."""
        return self.nodes[label]

    def is_single_consumer(self, label: str) -> bool:
        """True when the node's output 0 has exactly one consumer and is not a graph output."""
        out = self.nodes[label].outputs[0]
        return self.consumer_counts.get(out, 0) == 1 and out not in self.graph_outputs


class PatternMatcher:
    """Finds all (non-overlapping) matches of a Pattern."""

    def find_all(self, graph: Graph, pattern: Pattern) -> List[Match]:
        """All matches, root nodes in graph order; nodes are not shared between matches."""
        prod = graph.producers()
        counts: Dict[str, int] = {}
        for n in graph.nodes:
            for i in n.inputs:
                if i:
                    counts[i] = counts.get(i, 0) + 1
        outs = frozenset(graph.output_names())
        incoming: Dict[str, List[PatternEdge]] = {}
        for e in pattern.edges:
            incoming.setdefault(e.dst, []).append(e)
        used: set = set()
        matches: List[Match] = []
        for node in graph.nodes:
            bound: Dict[str, Node] = {}
            if self._bind(pattern, pattern.root, node, bound, incoming, prod) and not (
                {id(n) for n in bound.values()} & used
            ):
                used |= {id(n) for n in bound.values()}
                matches.append(Match(dict(bound), counts, outs))
        return matches

    def _bind(
        self,
        pattern: Pattern,
        label: str,
        node: Node,
        bound: Dict[str, Node],
        incoming: Dict[str, List[PatternEdge]],
        prod: Dict[str, Node],
    ) -> bool:
        pn = pattern.nodes[label]
        if pn.op_types and node.op_type not in pn.op_types:
            return False
        bound[label] = node
        for e in incoming.get(label, []):
            idxs = range(len(node.inputs)) if e.index is None else [e.index]
            ok = False
            for i in idxs:
                if i >= len(node.inputs) or node.inputs[i] not in prod:
                    continue
                src = prod[node.inputs[i]]
                if src.outputs[0] != node.inputs[i]:
                    continue
                snapshot = dict(bound)
                if self._bind(pattern, e.src, src, bound, incoming, prod):
                    ok = True
                    break
                bound.clear()
                bound.update(snapshot)
            if not ok:
                bound.pop(label, None)
                return False
        return True
