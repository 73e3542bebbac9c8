"""Pass infrastructure: Pass, PassStats, PassResult, PassManagerConfig and PassManager.

Example:
    >>> from pyflame.runtime.options import OptLevel
    >>> pm = PassManager.create_default(OptLevel.EXTENDED)
    >>> pm.pass_names()  # doctest: +NORMALIZE_WHITESPACE
    ['ConstantFoldingPass', 'DeadCodeEliminationPass', 'CSEPass', 'AttentionFusionPass',
     'OperatorFusionPass', 'ConvTapPruningPass']
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from ..errors import PyFlameRTError, ValidationError
from ..graph import Graph
from ..options import OptLevel

logger = logging.getLogger("pyflame_rt.opt")


@dataclass
class PassStats:
    """Counters a pass reports."""

    nodes_removed: int = 0
    nodes_added: int = 0
    nodes_fused: int = 0
    constants_folded: int = 0
    initializers_removed: int = 0
    layout_changes: int = 0
    nodes_rewritten: int = 0

    def merge(self, other: PassStats) -> None:
        """Adds `other`'s counters to this one."""
        for k in vars(self):
            setattr(self, k, getattr(self, k) + getattr(other, k))

    def __str__(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in vars(self).items())


@dataclass
class PassResult:
    """Whether the graph changed, the statistics, warnings and per-pass timings."""

    modified: bool = False
    stats: PassStats = field(default_factory=PassStats)
    warnings: List[str] = field(default_factory=list)
    iterations: int = 0
    pass_times_ms: Dict[str, float] = field(default_factory=dict)

    def merge(self, other: PassResult) -> None:
        """Accumulates `other` into this result."""
        self.modified = self.modified or other.modified
        self.stats.merge(other.stats)
        self.warnings.extend(other.warnings)
        for k, v in other.pass_times_ms.items():
            self.pass_times_ms[k] = self.pass_times_ms.get(k, 0.0) + v


class Pass:
    """Base class: override `name`, `description`, `min_level` and `run`."""

    name = "Pass"
    description = ""
    min_level = OptLevel.BASIC

    def should_run(self, level: OptLevel) -> bool:
        """True when the pass belongs to `level`."""
        return level >= self.min_level

    def run(self, graph: Graph) -> PassResult:  # pragma: no cover - abstract
        """Transforms `graph` in place."""
        raise NotImplementedError


@dataclass
class PassManagerConfig:
    """PassManager configuration (spec names)."""

    opt_level: OptLevel = OptLevel.EXTENDED
    max_iterations: int = 10
    verbose: bool = False
    validate_after_pass: bool = False
    skip_passes: List[str] = field(default_factory=list)


class PassManager:
    """Runs registered passes in order, optionally until nothing changes.

    Example:
        >>> import numpy as np
        >>> from pyflame.runtime.graph import Graph
        >>> g = Graph(); g.add_input("x", [2], np.float32)
        >>> _ = g.add_node("i", "Identity", ["x"], ["t"])
        >>> _ = g.add_node("r", "Relu", ["t"], ["y"]); g.add_output("y")
        >>> res = PassManager.create_default(OptLevel.BASIC).run_until_fixed_point(g)
        >>> [n.op_type for n in g.nodes], res.stats.nodes_removed
        (['Relu'], 1)
    """

    def __init__(self, config: Optional[PassManagerConfig] = None) -> None:
        self.config = config or PassManagerConfig()
        self.passes: List[Pass] = []

    def register_pass(self, p: Pass) -> None:
        """Appends a pass."""
        self.passes.append(p)

    def pass_names(self) -> List[str]:
        """Names of the registered passes, in order."""
        return [p.name for p in self.passes]

    @staticmethod
    def create_default(
        level: OptLevel = OptLevel.EXTENDED, config: Optional[PassManagerConfig] = None
    ) -> PassManager:
        """The standard pipeline for `level` (BASIC: folding + DCE; EXTENDED: + CSE, attention
        fusion, operator fusion; ALL: + layout optimization). Attention fusion runs before
        operator fusion, which would otherwise turn an unscaled ``MatMul -> Add(mask)`` into
        a FusedMatMulBias."""
        from .attention import AttentionFusionPass
        from .basic import ConstantFoldingPass, CSEPass, DeadCodeEliminationPass
        from .conv_taps import ConvTapPruningPass
        from .fusion import OperatorFusionPass
        from .layout import LayoutOptimizationPass

        cfg = config or PassManagerConfig()
        cfg.opt_level = OptLevel.coerce(level)
        pm = PassManager(cfg)
        for p in (
            ConstantFoldingPass(),
            DeadCodeEliminationPass(),
            CSEPass(),
            AttentionFusionPass(),
            OperatorFusionPass(),
            ConvTapPruningPass(),
            LayoutOptimizationPass(),
        ):
            if p.should_run(cfg.opt_level):
                pm.register_pass(p)
        return pm

    def _run_one(self, p: Pass, graph: Graph) -> PassResult:
        t0 = time.perf_counter()
        try:
            res = p.run(graph)
        except PyFlameRTError:
            raise
        except Exception as e:  # noqa: BLE001 - a failing pass must not take the session down
            res = PassResult(warnings=[f"{p.name} failed and was skipped: {type(e).__name__}: {e}"])
        ms = (time.perf_counter() - t0) * 1e3
        res.pass_times_ms[p.name] = res.pass_times_ms.get(p.name, 0.0) + ms
        if self.config.verbose:
            logger.warning(
                "[opt] %s: modified=%s %s (%.2f ms)", p.name, res.modified, res.stats, ms
            )
            for w in res.warnings:
                logger.warning("[opt] %s warning: %s", p.name, w)
        if self.config.validate_after_pass:
            try:
                graph.validate()
            except ValidationError as e:
                raise ValidationError([f"after {p.name}: {m}" for m in e.errors]) from e
        return res

    def run(self, graph: Graph) -> PassResult:
        """Runs each enabled pass once."""
        total = PassResult(iterations=1)
        if self.config.opt_level <= OptLevel.NONE:
            return total
        for p in self.passes:
            if p.name in self.config.skip_passes or not p.should_run(self.config.opt_level):
                continue
            total.merge(self._run_one(p, graph))
        return total

    def run_pass(self, name: str, graph: Graph) -> PassResult:
        """Runs the registered pass called `name` once."""
        for p in self.passes:
            if p.name == name:
                return self._run_one(p, graph)
        raise KeyError(f"no pass named {name!r}; registered: {self.pass_names()}")

    def run_until_fixed_point(self, graph: Graph) -> PassResult:
        """Repeats `run` until nothing changes or `max_iterations` is reached."""
        total = PassResult()
        for i in range(max(1, self.config.max_iterations)):
            res = self.run(graph)
            total.merge(res)
            total.iterations = i + 1
            if not res.modified:
                break
        else:
            total.warnings.append(f"no fixed point after {self.config.max_iterations} iterations")
        return total
