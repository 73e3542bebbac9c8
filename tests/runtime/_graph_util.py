"""Helpers shared by the runtime's pass tests: op lists and sessions at a given level."""

from __future__ import annotations

from typing import Any, List

import pyflame_rt as ort


def op_types(graph: Any) -> List[str]:
    """The op type of every node, in order."""
    return [n.op_type for n in graph.nodes]


def session_at(graph: Any, level: Any) -> ort.InferenceSession:
    """An InferenceSession of `graph` with optimization level `level`."""
    so = ort.SessionOptions()
    so.optimization_level = level
    return ort.InferenceSession(graph, sess_options=so)
