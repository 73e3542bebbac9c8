"""Graph optimization (the spec's ``pyflame_rt.opt``): passes, PassManager, PatternMatcher.

Example:
    >>> from pyflame.runtime.passes import PassManager, OptLevel
    >>> "OperatorFusionPass" in PassManager.create_default(OptLevel.ALL).pass_names()
    True
"""

from __future__ import annotations

from typing import Any, Optional

from ..graph import Graph
from ..options import OptLevel
from .attention import AttentionFusionPass, fuse_attention
from .base import Pass, PassManager, PassManagerConfig, PassResult, PassStats
from .basic import (
    ConstantFoldingConfig,
    ConstantFoldingPass,
    CSEConfig,
    CSEPass,
    DCEConfig,
    DeadCodeEliminationPass,
    eliminate_common_subexpressions,
    eliminate_dead_code,
    fold_constants,
)
from .conv_taps import ConvTapPruningPass
from .fusion import FusionConfig, OperatorFusionPass, fuse_operators
from .layout import Layout, LayoutConfig, LayoutOptimizationPass, optimize_layout
from .pattern import Match, Pattern, PatternEdge, PatternMatcher, PatternNode


def optimize(
    graph: Graph, level: Any = OptLevel.EXTENDED, config: Optional[PassManagerConfig] = None
) -> PassResult:
    """Runs the default pipeline for `level` on `graph` until a fixed point.

    Example:
        >>> import numpy as np
        >>> g = Graph(); g.add_input("x", [1], np.float32)
        >>> _ = g.add_node("i", "Identity", ["x"], ["t"]); _ = g.add_node("n", "Neg", ["t"], ["y"])
        >>> g.add_output("y")
        >>> optimize(g, OptLevel.BASIC).stats.nodes_removed
        1
    """
    return PassManager.create_default(OptLevel.coerce(level), config).run_until_fixed_point(graph)


__all__ = [
    "AttentionFusionPass",
    "CSEConfig",
    "CSEPass",
    "ConstantFoldingConfig",
    "ConstantFoldingPass",
    "ConvTapPruningPass",
    "DCEConfig",
    "DeadCodeEliminationPass",
    "FusionConfig",
    "Layout",
    "LayoutConfig",
    "LayoutOptimizationPass",
    "Match",
    "OperatorFusionPass",
    "OptLevel",
    "Pass",
    "PassManager",
    "PassManagerConfig",
    "PassResult",
    "PassStats",
    "Pattern",
    "PatternEdge",
    "PatternMatcher",
    "PatternNode",
    "eliminate_common_subexpressions",
    "eliminate_dead_code",
    "fuse_attention",
    "fold_constants",
    "fuse_operators",
    "optimize",
    "optimize_layout",
]
