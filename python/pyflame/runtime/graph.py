"""The runtime's graph IR: ONNX-like nodes over named tensors, plus initializers.

Example:
    >>> import numpy as np
    >>> g = Graph("tiny")
    >>> g.add_input("x", [None, 4], np.float32)
    >>> g.add_initializer("w", np.ones((4, 2), np.float32))
    >>> _ = g.add_node("mm", "MatMul", ["x", "w"], ["y"])
    >>> g.add_output("y", [None, 2], np.float32)
    >>> g.validate()
    >>> [n.op_type for n in g.nodes]
    ['MatMul']
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence

import numpy as np

from .errors import ValidationError
from .types import Dim, TensorInfo


@dataclass
class Node:
    """One operation: ``outputs = op_type(inputs, **attrs)``; an input name "" is absent.

    Example:
        >>> Node("r", "Relu", ["x"], ["y"]).op_type
        'Relu'
    """

    name: str
    op_type: str
    inputs: List[str]
    outputs: List[str]
    attrs: Dict[str, Any] = field(default_factory=dict)
    domain: str = ""


class Graph:
    """A computation graph with named inputs, outputs, initializers and nodes.

    Example:
        >>> g = Graph("g")
        >>> g.name
        'g'
    """

    def __init__(self, name: str = "graph") -> None:
        self.name = name
        self.inputs: List[TensorInfo] = []
        self.outputs: List[TensorInfo] = []
        self.initializers: Dict[str, np.ndarray] = {}
        self.nodes: List[Node] = []
        self.value_info: Dict[str, TensorInfo] = {}
        self.opset: int = 17
        self.metadata: Dict[str, str] = {}

    # ------------------------------------------------------------- building
    def add_input(self, name: str, shape: Optional[Sequence[Dim]], dtype: Any) -> None:
        """Declares a graph input (dims may be None or symbolic names)."""
        self.inputs.append(TensorInfo(name, np.dtype(dtype), _dims(shape)))

    def add_output(
        self, name: str, shape: Optional[Sequence[Dim]] = None, dtype: Any = None
    ) -> None:
        """Declares a graph output."""
        dt = None if dtype is None else np.dtype(dtype)
        self.outputs.append(TensorInfo(name, dt, _dims(shape)))

    def add_initializer(self, name: str, value: np.ndarray) -> None:
        """Adds a constant tensor (weights)."""
        self.initializers[name] = np.asarray(value)

    def add_node(
        self,
        name: str,
        op_type: str,
        inputs: Sequence[str],
        outputs: Sequence[str],
        attrs: Optional[Dict[str, Any]] = None,
        domain: str = "",
    ) -> Node:
        """Appends a node and returns it."""
        node = Node(name, op_type, list(inputs), list(outputs), dict(attrs or {}), domain)
        self.nodes.append(node)
        return node

    def copy(self) -> Graph:
        """A copy whose node list and attributes can be changed independently (arrays shared)."""
        g = Graph(self.name)
        g.inputs = [copy.copy(i) for i in self.inputs]
        g.outputs = [copy.copy(o) for o in self.outputs]
        g.initializers = dict(self.initializers)
        g.nodes = [
            Node(n.name, n.op_type, list(n.inputs), list(n.outputs), dict(n.attrs), n.domain)
            for n in self.nodes
        ]
        g.value_info = dict(self.value_info)
        g.opset = self.opset
        g.metadata = dict(self.metadata)
        return g

    # ------------------------------------------------------------- queries
    def producers(self) -> Dict[str, Node]:
        """Map from tensor name to the node producing it."""
        return {o: n for n in self.nodes for o in n.outputs if o}

    def consumers(self) -> Dict[str, List[Node]]:
        """Map from tensor name to the nodes reading it (graph outputs are not nodes)."""
        out: Dict[str, List[Node]] = {}
        for n in self.nodes:
            for i in n.inputs:
                if i:
                    out.setdefault(i, []).append(n)
        return out

    def output_names(self) -> List[str]:
        """Names of the graph outputs."""
        return [o.name for o in self.outputs]

    def get_tensor_info(self, name: str) -> Optional[TensorInfo]:
        """Known metadata of a tensor (inputs, outputs, value_info, initializers)."""
        for t in self.inputs + self.outputs:
            if t.name == name:
                return t
        if name in self.value_info:
            return self.value_info[name]
        if name in self.initializers:
            a = self.initializers[name]
            return TensorInfo(name, a.dtype, list(a.shape))
        return None

    def topological_sort(self) -> None:
        """Orders nodes so each comes after its producers; raises ValidationError on a cycle."""
        known = {i.name for i in self.inputs} | set(self.initializers)
        prod = self.producers()
        order: List[Node] = []
        state: Dict[int, int] = {}
        for root in self.nodes:
            if state.get(id(root)) == 2:
                continue
            stack = [(root, 0)]
            while stack:
                node, k = stack.pop()
                if k == 0:
                    if state.get(id(node)) == 2:
                        continue
                    if state.get(id(node)) == 1:
                        raise ValidationError([f"cycle through node {node.name!r}"])
                    state[id(node)] = 1
                deps = [prod[i] for i in node.inputs if i and i not in known and i in prod]
                if k < len(deps):
                    stack.append((node, k + 1))
                    dep = deps[k]
                    if state.get(id(dep)) == 1:
                        raise ValidationError([f"cycle through node {dep.name!r}"])
                    if state.get(id(dep)) != 2:
                        stack.append((dep, 0))
                else:
                    state[id(node)] = 2
                    order.append(node)
        self.nodes = order

    def validate(self) -> None:
        """Checks names and connectivity; raises ValidationError listing every problem."""
        errors: List[str] = []
        defined = set()
        for i in self.inputs:
            if not i.name:
                errors.append("graph input with an empty name")
            if i.name in defined:
                errors.append(f"duplicate graph input {i.name!r}")
            defined.add(i.name)
        defined |= set(self.initializers)
        try:
            self.topological_sort()
        except ValidationError as e:
            errors.extend(e.errors)
        for n in self.nodes:
            for i in n.inputs:
                if i and i not in defined:
                    errors.append(f"node {n.name!r} ({n.op_type}) reads undefined tensor {i!r}")
            for o in n.outputs:
                if o and o in defined and o not in self.initializers:
                    errors.append(f"tensor {o!r} is produced twice (node {n.name!r})")
                if o:
                    defined.add(o)
        if not self.outputs:
            errors.append("graph has no outputs")
        for o in self.outputs:
            if o.name not in defined:
                errors.append(f"graph output {o.name!r} is never produced")
        if errors:
            raise ValidationError(errors)

    def summary(self) -> str:
        """A short multi-line description."""
        lines = [
            f'Graph "{self.name}" ({len(self.nodes)} nodes, {len(self.initializers)} initializers)'
        ]
        for i in self.inputs:
            lines.append(f"  input  {i.name}: {i.shape} {i.dtype}")
        for o in self.outputs:
            lines.append(f"  output {o.name}: {o.shape} {o.dtype}")
        return "\n".join(lines)


def _dims(shape: Optional[Sequence[Dim]]) -> Optional[List[Dim]]:
    if shape is None:
        return None
    return [d if d is None or isinstance(d, str) else int(d) for d in shape]
