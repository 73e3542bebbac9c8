"""Kernel-tap pruning for convolutions on small inputs (OptLevel.EXTENDED).

A 3x3 convolution with padding 1 over a 1x1 input only ever multiplies its centre tap with
real data: the other eight taps read padding. Image networks reach such sizes in their last
stage (torchvision's ResNet-18 on 32x32 images ends at 1x1), where those convolutions hold
most of the weights, so reading the dead taps is most of the work at batch 1. When the
input's spatial size is known, this pass slices a constant weight down to the taps that can
touch the input and shrinks the padding to match; outputs are unchanged.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph(); g.add_input("x", [1, 8, 1, 1], np.float32)
    >>> g.add_initializer("w", np.ones((4, 8, 3, 3), np.float32))
    >>> _ = g.add_node("c", "Conv", ["x", "w"], ["y"], {"pads": [1, 1, 1, 1]})
    >>> g.add_output("y")
    >>> _ = ConvTapPruningPass().run(g)
    >>> g.initializers[g.nodes[0].inputs[1]].shape, g.nodes[0].attrs["pads"]
    ((4, 8, 1, 1), [0, 0, 0, 0])
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from ..graph import Graph, Node
from ..onnx_import.ops_nn import _spatial_pads
from ..options import OptLevel
from .base import Pass, PassResult


def live_taps(
    size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int
) -> Optional[Tuple[int, int, int, int]]:
    """The taps ``[first, last]`` of one spatial axis that read real input for some output,
    with the begin and end padding that keeps the output size; None when the taps cannot be
    narrowed that way.

    Example:
        >>> live_taps(1, 3, 1, 1, 1, 1)
        (1, 1, 0, 0)
    """
    outputs = (size + pad_begin + pad_end - dilation * (kernel - 1) - 1) // stride + 1
    if outputs <= 0:
        return None
    live = [
        i
        for i in range(kernel)
        if any(0 <= o * stride + i * dilation - pad_begin < size for o in range(outputs))
    ]
    if not live:
        return None
    first, last = live[0], live[-1]
    begin = pad_begin - first * dilation
    end = (outputs - 1) * stride + dilation * (last - first) + 1 - size - begin
    if begin < 0 or end < 0:
        return None
    return first, last, begin, end


class ConvTapPruningPass(Pass):
    """Slices constant convolution weights to the taps that can read the input (see the
    module docstring)."""

    name = "ConvTapPruningPass"
    description = "drops convolution kernel taps that only ever read padding"
    min_level = OptLevel.EXTENDED

    def run(self, graph: Graph) -> PassResult:
        """Rewrites in place; returns statistics."""
        res = PassResult()
        for node in graph.nodes:
            if node.op_type in ("Conv", "FusedConv") and self._prune(graph, node):
                res.modified = True
                res.stats.nodes_rewritten += 1
        return res

    @staticmethod
    def _prune(graph: Graph, node: Node) -> bool:
        if len(node.inputs) < 2 or node.inputs[1] not in graph.initializers:
            return False
        w = graph.initializers[node.inputs[1]]
        info = graph.get_tensor_info(node.inputs[0])
        if w.ndim != 4 or info is None or info.shape is None or len(info.shape) != 4:
            return False
        spatial = list(info.shape[2:])
        if not all(isinstance(v, int) and v > 0 for v in spatial):
            return False
        kernel = [int(v) for v in node.attrs.get("kernel_shape", w.shape[2:])]
        if kernel != list(w.shape[2:]):
            return False
        strides = [int(v) for v in node.attrs.get("strides", [1, 1])]
        dilations = [int(v) for v in node.attrs.get("dilations", [1, 1])]
        begin, end = _spatial_pads(node, spatial, kernel, strides, dilations)
        axes: List[Tuple[int, int, int, int]] = []
        for a in range(2):
            t = live_taps(spatial[a], kernel[a], strides[a], dilations[a], begin[a], end[a])
            if t is None:
                return False
            axes.append(t)
        if all(last - first + 1 == k for (first, last, _, _), k in zip(axes, kernel)):
            return False
        (i0, i1, top, bottom), (j0, j1, left, right) = axes
        name = f"{node.name}_live_taps_W"
        graph.initializers[name] = w[:, :, i0 : i1 + 1, j0 : j1 + 1].copy()
        node.inputs = [node.inputs[0], name] + list(node.inputs[2:])
        attrs = dict(node.attrs)
        attrs.pop("auto_pad", None)
        attrs.update(kernel_shape=[i1 - i0 + 1, j1 - j0 + 1], pads=[top, left, bottom, right])
        node.attrs = attrs
        return True
