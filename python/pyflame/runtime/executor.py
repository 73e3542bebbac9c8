"""Runs a Graph on pyflame tensors: each node's converter builds lazy tensor ops, and the
pyflame executor evaluates all requested outputs in one fused pass.

The first run for a given input signature (shapes + dtypes) traces the whole graph; every
value that turns out constant for that signature (initializer arithmetic, Shape/Size results
and what is computed from them) is folded, and the remaining steps are cached as a plan.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph("t"); g.add_input("x", [2], np.float32)
    >>> _ = g.add_node("r", "Relu", ["x"], ["y"]); g.add_output("y")
    >>> Executor(g).run(["y"], {"x": np.array([-1, 2], np.float32)})[0].tolist()
    [0.0, 2.0]
"""

from __future__ import annotations

import time
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np

import pyflame as pf

from .errors import BackendError, PyFlameRTError
from .graph import Graph, Node
from .onnx_import.registry import NONDETERMINISTIC, OpContext, check_supported, get_converter

Step = Tuple[Callable[..., Any], Node, List[str], List[str]]
#: a plan step: converter, node, input names, output names, names released after it
PlanStep = Tuple[Callable[..., Any], Node, List[str], List[str], Tuple[str, ...]]


def _release_lists(steps: Sequence[Step], keep: Set[str]) -> List[Tuple[str, ...]]:
    """For each step, the values no later step reads (liveness): the executor drops its
    references to them right after that step, so the pyflame evaluator can free each
    intermediate buffer as soon as its last consumer ran instead of keeping every value of
    the graph alive until the outputs are collected."""
    last: Dict[str, int] = {}
    for k, (_, _, ins, outs) in enumerate(steps):
        for name in ins:
            if name:
                last[name] = k
        for name in outs:
            if name:
                last.setdefault(name, k)  # produced but never read: dropped right away
    release: List[List[str]] = [[] for _ in steps]
    for name, k in last.items():
        if name not in keep:
            release[k].append(name)
    return [tuple(r) for r in release]


def c_contiguous(a: np.ndarray) -> np.ndarray:
    """`a` itself when it is C-contiguous, else a C-contiguous copy (0-d arrays stay 0-d,
    which `np.ascontiguousarray` would make 1-d).

    Example:
        >>> c_contiguous(np.array(3.0)).shape
        ()
    """
    return a if a.flags.c_contiguous else np.ascontiguousarray(a)


def _plan_key(feeds: Dict[str, np.ndarray]) -> Tuple[Any, ...]:
    """The input signature a plan is cached under: (name, shape, dtype) of every feed."""
    return tuple((k, v.shape, v.dtype.str) for k, v in sorted(feeds.items()))


class _Recorded(NamedTuple):
    """A plan recorded for a set of outputs: the template (None when every output is a
    constant or an input), the feed names in placeholder order, the outputs the template
    computes, and outputs that are inputs passed through."""

    template: Any
    feed_order: List[str]
    outputs: List[str]
    aliases: Dict[str, str]


class _Plan:
    """The steps left for one input signature after folding, with their constants, and the
    recorded graphs (``pyflame._core.Template``) that run them without rebuilding the lazy
    ops from Python, one per requested set of outputs (None: recording is not possible)."""

    def __init__(self, steps: List[PlanStep], consts: Dict[str, np.ndarray]) -> None:
        self.steps = steps
        self.consts = consts
        self.templates: Dict[Tuple[str, ...], Optional[_Recorded]] = {}


class Executor:
    """Executes a validated Graph; see the module docstring."""

    def __init__(
        self, graph: Graph, max_plans: int = 16, num_threads: int = 0, keep_awake: bool = True
    ) -> None:
        """`num_threads` > 0 evaluates on a dedicated pool of that many threads (0: the
        process-wide pool, one thread per core). `keep_awake=False` lets the workers sleep
        as soon as a recorded run is done instead of spinning for the next one."""
        self.keep_awake = keep_awake
        check_supported(graph.nodes)
        self.graph = graph
        self.opset = graph.opset
        self._steps: List[Step] = []
        for n in graph.nodes:
            fn = get_converter(n.op_type)
            assert fn is not None  # check_supported guarantees it
            self._steps.append((fn, n, list(n.inputs), [o for o in n.outputs]))
        self._outputs = {o.name for o in graph.outputs}
        self._release = _release_lists(self._steps, self._outputs)
        self._plans: Dict[Any, _Plan] = {}
        self._max_plans = max_plans
        self._ctx = OpContext(self.opset)
        if num_threads > 0:
            self._ctx.pool = pf._core.ThreadPool(int(num_threads))

    @staticmethod
    def _to_outputs(node: Node, res: Any) -> List[Any]:
        out = list(res) if isinstance(res, (list, tuple)) else [res]
        return [np.asarray(r) if isinstance(r, np.generic) else r for r in out]

    def _trace(
        self,
        env: Dict[str, Any],
        ctx: OpContext,
        deadline: Optional[float],
        profile: Optional[list],
    ) -> List[Step]:
        """Runs every node, folding those whose inputs are all constant (NumPy) for this
        signature; returns the steps that remain. Tensor values are released after their
        last consumer; NumPy constants stay in `env` (the plan keeps those still needed)."""
        remaining: List[Step] = []
        for step, release in zip(self._steps, self._release):
            fn, node, ins, outs = step
            vals = [env[i] if i else None for i in ins]
            if deadline is not None and time.perf_counter() > deadline:
                raise BackendError("run timed out (RunOptions.timeout_ms) before evaluation")
            const_in = node.op_type not in NONDETERMINISTIC and all(
                v is None or isinstance(v, np.ndarray) for v in vals
            )
            t0 = time.perf_counter() if profile is not None else 0.0
            try:
                res = self._to_outputs(node, fn(ctx, node, vals))
            except PyFlameRTError:
                raise
            except Exception as e:  # noqa: BLE001 - shape errors etc. from the tensor API
                raise _node_error(node, e) from e
            if profile is not None:
                live = [r for r in res if r is not None and not isinstance(r, np.ndarray)]
                if live:
                    ctx.evaluate(*live)
                profile.append((node, t0, time.perf_counter()))
            if const_in:
                live = [r for r in res if r is not None and not isinstance(r, np.ndarray)]
                if live:
                    ctx.evaluate(*live)
                res = [
                    r if r is None or isinstance(r, np.ndarray) else np.asarray(r.numpy())
                    for r in res
                ]
            all_const = all(r is None or isinstance(r, np.ndarray) for r in res)
            for name, r in zip(outs, res):
                if name:
                    env[name] = r
            if not all_const:
                remaining.append(step)
            del vals, res
            for name in release:
                if not isinstance(env.get(name), np.ndarray):
                    env.pop(name, None)
        return remaining

    def _make_plan(self, steps: List[Step], env: Dict[str, Any], feeds: Dict[str, Any]) -> _Plan:
        needed = {i for _, _, ins, _ in steps for i in ins if i} | self._outputs
        consts = {
            k: v
            for k, v in env.items()
            if isinstance(v, np.ndarray) and k in needed and k not in feeds
        }
        release = _release_lists(steps, self._outputs)
        plan_steps = [(fn, n, ins, outs, rel) for (fn, n, ins, outs), rel in zip(steps, release)]
        return _Plan(plan_steps, consts)

    @staticmethod
    def _replay(
        plan: _Plan, env: Dict[str, Any], ctx: OpContext, deadline: Optional[float]
    ) -> None:
        """Builds the lazy tensor ops of a cached plan (no folding, no checks per value)."""
        node = None
        try:
            for fn, node, ins, outs, release in plan.steps:
                if deadline is not None and time.perf_counter() > deadline:
                    raise BackendError("run timed out (RunOptions.timeout_ms) before evaluation")
                res = fn(ctx, node, [env[i] if i else None for i in ins])
                if isinstance(res, (list, tuple)):
                    for name, r in zip(outs, res):
                        if name:
                            env[name] = np.asarray(r) if isinstance(r, np.generic) else r
                else:
                    env[outs[0]] = np.asarray(res) if isinstance(res, np.generic) else res
                for name in release:
                    env.pop(name, None)
        except PyFlameRTError:
            raise
        except Exception as e:  # noqa: BLE001 - shape errors etc. from the tensor API
            raise _node_error(node, e) from e

    def run(
        self,
        output_names: Sequence[str],
        feeds: Dict[str, np.ndarray],
        deadline: Optional[float] = None,
        profile: Optional[list] = None,
    ) -> List[np.ndarray]:
        """Computes `output_names` (graph outputs) from `feeds` (validated NumPy arrays)."""
        unknown = [n for n in output_names if n not in self._outputs]
        if unknown:
            raise BackendError(
                f"{unknown} are not graph outputs (intermediates are released as soon as "
                f"their last consumer ran); graph outputs: {sorted(self._outputs)}"
            )
        key = _plan_key(feeds)
        plan = self._plans.get(key)
        ctx = self._ctx
        ctx.data_dependent = False
        names = tuple(output_names)
        if plan is not None and profile is None:
            recorded = plan.templates.get(names)
            if recorded is not None:  # the feeds go straight to the recorded graph
                return self._run_template(recorded, names, feeds, plan, deadline)
        if plan is None or profile is not None or len(ctx._tensors) > 4096:
            # A traced run creates its folded constants (and host-operator results) anew:
            # keep only the tensor wrappers of arrays that outlive the run.
            ctx.retain_tensors(self._persistent_ids())
        env: Dict[str, Any] = {}
        for k, v in feeds.items():
            env[k] = (
                pf.from_numpy(c_contiguous(v))
                if v.dtype.kind in "fiub" and v.dtype.name not in ("uint16", "uint32", "uint64")
                else v
            )
        if plan is None or profile is not None:
            env.update(self.graph.initializers)
            steps = self._trace(env, ctx, deadline, profile)
            if plan is None and not ctx.data_dependent and profile is None:
                if len(self._plans) >= self._max_plans:
                    self._plans.pop(next(iter(self._plans)))
                self._plans[key] = self._make_plan(steps, env, feeds)
        else:
            feed_tensors = {k: v for k, v in env.items() if k in feeds}
            env.update(plan.consts)
            self._replay(plan, env, ctx, deadline)
            if ctx.data_dependent:  # cannot happen for a cacheable plan; kept as a guard
                self._plans.pop(key, None)
            elif names not in plan.templates:
                plan.templates[names] = self._record(names, env, feed_tensors)
        return self._collect(output_names, env, ctx)

    def recorded_run(
        self, names: Tuple[str, ...], feeds: Dict[str, np.ndarray]
    ) -> Optional[Tuple[_Recorded, Tuple[int, ...]]]:
        """The recorded graph that computes every one of `names` from feeds like `feeds`
        (validated), with the position of each name among its outputs; None while it is not
        recorded, or when an output is not computed by it (a constant, an input). Run it
        with `evaluate_recorded`."""
        plan = self._plans.get(_plan_key(feeds))
        recorded = plan.templates.get(names) if plan is not None else None
        if recorded is None or recorded.template is None:
            return None
        if any(n not in recorded.outputs for n in names):
            return None
        return recorded, tuple(recorded.outputs.index(n) for n in names)

    def evaluate_recorded(
        self, recorded: _Recorded, feeds: Dict[str, np.ndarray]
    ) -> List[np.ndarray]:
        """The outputs of a recorded graph (in `recorded.outputs` order) for `feeds`, on the
        executor's threads; BackendError when evaluation fails."""
        arrays = [c_contiguous(feeds[k]) for k in recorded.feed_order]
        try:
            return recorded.template.run(arrays, self._ctx.pool, self.keep_awake)
        except Exception as e:  # noqa: BLE001
            raise BackendError(f"evaluation failed: {type(e).__name__}: {e}") from e

    @staticmethod
    def _record(
        names: Tuple[str, ...], env: Dict[str, Any], feed_tensors: Dict[str, Any]
    ) -> Optional[_Recorded]:
        """Records the replayed graph of `names` (before it is evaluated) as a Template over
        the feed tensors. None when it cannot be recorded (random ops, values computed while
        building, feeds that are not tensors): the plan is then replayed from Python."""
        if not all(isinstance(v, pf.Tensor) for v in feed_tensors.values()):
            return None
        feed_of = {id(t): k for k, t in feed_tensors.items()}
        aliases: Dict[str, str] = {}
        live: List[str] = []
        for n in dict.fromkeys(names):
            v = env.get(n)
            if isinstance(v, np.ndarray):
                continue  # a plan constant
            if id(v) in feed_of:
                aliases[n] = feed_of[id(v)]  # an input passed through (Identity)
            elif isinstance(v, pf.Tensor) and not v.is_evaluated():
                live.append(n)
            else:
                return None
        order = sorted(feed_tensors)
        template = None
        if live:
            try:
                template = pf._core.Template(
                    [env[n] for n in live], [feed_tensors[k] for k in order]
                )
            except ValueError:  # random ops, or nodes evaluated while building
                return None
        return _Recorded(template, order, live, aliases)

    def _run_template(
        self,
        recorded: _Recorded,
        names: Tuple[str, ...],
        feeds: Dict[str, np.ndarray],
        plan: _Plan,
        deadline: Optional[float],
    ) -> List[np.ndarray]:
        """Runs a recorded plan: the feeds go straight to the recorded graph."""
        if deadline is not None and time.perf_counter() > deadline:
            raise BackendError("run timed out (RunOptions.timeout_ms) before evaluation")
        computed: Dict[str, np.ndarray] = {}
        if recorded.template is not None:
            computed = dict(zip(recorded.outputs, self.evaluate_recorded(recorded, feeds)))
        out = []
        for n in names:
            if n in computed:
                out.append(computed[n])
            elif n in recorded.aliases:
                out.append(np.array(feeds[recorded.aliases[n]], copy=True))
            elif n in plan.consts:
                out.append(np.array(plan.consts[n], copy=True))
            else:
                raise BackendError(f"output {n!r} was not produced")
        return out

    def _persistent_ids(self) -> Set[int]:
        """ids of the arrays that live across runs: initializers and cached plan constants."""
        ids = {id(v) for v in self.graph.initializers.values()}
        for plan in self._plans.values():
            ids.update(id(v) for v in plan.consts.values())
        return ids

    @staticmethod
    def _collect(names: Sequence[str], env: Dict[str, Any], ctx: OpContext) -> List[np.ndarray]:
        vals = []
        for n in names:
            if n not in env or env[n] is None:
                raise BackendError(f"output {n!r} was not produced")
            vals.append(env[n])
        live = [v for v in vals if not isinstance(v, np.ndarray)]
        if live:
            try:
                ctx.evaluate(*live)
            except Exception as e:  # noqa: BLE001
                raise BackendError(f"evaluation failed: {type(e).__name__}: {e}") from e
        out = []
        for v in vals:
            if isinstance(v, np.ndarray):
                out.append(np.array(v, copy=True))
            else:
                out.append(np.asarray(v.numpy()))
        return out


def _node_error(node: Optional[Node], e: Exception) -> BackendError:
    where = f"node {node.name!r} ({node.op_type})" if node is not None else "a node"
    return BackendError(f"{where} failed: {type(e).__name__}: {e}")
