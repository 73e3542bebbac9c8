"""Control flow: If, Loop and Scan. Their subgraphs (imported as runtime Graphs) run through
the same converters as the main graph, so their tensor ops join the lazy graph of the run.

The importer appends the outer-scope values a subgraph reads to the node's inputs (after
the ``_num_declared_inputs`` declared ones). ``If`` conditions and ``Loop`` trip counts /
conditions that are not constants are evaluated (which makes the run data dependent: it is
traced again on every run); ``Scan`` iterates over a static axis length and stays lazy.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("If", "Loop", "Scan"))
    True
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

import pyflame as pf

from ..errors import BackendError
from ..graph import Graph
from .registry import OpContext, Value, get_converter, register

_DECLARED = "_num_declared_inputs"


def _split_inputs(node: Any, xs: List[Value]) -> tuple:
    n = int(node.attrs.get(_DECLARED, len(xs)))
    outer = dict(zip(node.inputs[n:], xs[n:]))
    return list(xs[:n]), outer


def run_subgraph(
    ctx: OpContext, g: Graph, feeds: List[Value], outer: Dict[str, Value]
) -> List[Value]:
    """Runs `g` with its inputs bound to `feeds` (in order) and outer-scope values `outer`;
    returns its outputs (lazy tensors or NumPy constants)."""
    if len(feeds) != len(g.inputs):
        raise BackendError(f"subgraph {g.name!r} takes {len(g.inputs)} inputs, got {len(feeds)}")
    env: Dict[str, Value] = dict(outer)
    env.update(g.initializers)
    for info, v in zip(g.inputs, feeds):
        env[info.name] = v
    for n in g.nodes:
        fn = get_converter(n.op_type)
        if fn is None:
            raise BackendError(f"subgraph operator {n.op_type!r} is not supported")
        try:
            vals = [env[i] if i else None for i in n.inputs]
        except KeyError as e:
            raise BackendError(f"subgraph node {n.name!r} reads undefined value {e}") from e
        res = fn(ctx, n, vals)
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        for name, r in zip(n.outputs, res):
            if name:
                env[name] = np.asarray(r) if isinstance(r, np.generic) else r
    try:
        return [env[o.name] for o in g.outputs]
    except KeyError as e:
        raise BackendError(f"subgraph {g.name!r} does not produce output {e}") from e


def _flag(ctx: OpContext, v: Value) -> bool:
    return bool(np.asarray(ctx.a(v)).reshape(-1)[0])


@register("If")
def _if(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    (cond,), outer = _split_inputs(node, xs)
    branch = node.attrs["then_branch" if _flag(ctx, cond) else "else_branch"]
    return run_subgraph(ctx, branch, [], outer)


def _stack(ctx: OpContext, vals: List[Value], axis: int = 0) -> Value:
    if all(isinstance(v, np.ndarray) for v in vals):
        return np.stack(vals, axis)  # type: ignore[arg-type]
    return pf.stack([ctx.t(v) for v in vals], axis)


@register("Loop")
def _loop(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    declared, outer = _split_inputs(node, xs)
    declared += [None] * (2 - len(declared))
    trip, cond, state = declared[0], declared[1], list(declared[2:])
    body: Graph = node.attrs["body"]
    n_scan = len(body.outputs) - 1 - len(state)
    if n_scan < 0:
        raise BackendError("Loop body has fewer outputs than loop-carried values")
    limit: Optional[int] = None if trip is None else int(np.asarray(ctx.a(trip)).reshape(-1)[0])
    go = True if cond is None else _flag(ctx, cond)
    if limit is None and cond is None:
        raise BackendError("Loop without a trip count or a condition would not end")
    scans: List[List[Value]] = [[] for _ in range(n_scan)]
    i = 0
    while go and (limit is None or i < limit):
        feeds = [np.array(i, np.int64), np.array(go, np.bool_)] + state
        outs = run_subgraph(ctx, body, feeds, outer)
        if cond is not None:  # without a condition input the body's condition is ignored
            go = _flag(ctx, outs[0])
        state = list(outs[1 : 1 + len(state)])
        for k in range(n_scan):
            scans[k].append(outs[1 + len(state) + k])
        i += 1
    results: List[Value] = list(state)
    for k in range(n_scan):
        if not scans[k]:
            raise BackendError("Loop ran zero iterations: its scan outputs have unknown shapes")
        results.append(_stack(ctx, scans[k]))
    return results


def _take(ctx: OpContext, v: Value, axis: int, t: int) -> Value:
    if isinstance(v, np.ndarray):
        return np.take(v, t, axis=axis)
    idx: List[Any] = [slice(None)] * ctx.t(v).ndim
    idx[axis] = t
    return ctx.t(v)[tuple(idx)]


def _scan_once(
    ctx: OpContext, node: Any, state: List[Value], inputs: List[Value], outer: Dict[str, Value]
) -> List[Value]:
    a = node.attrs
    body: Graph = a["body"]
    m = len(inputs)
    in_axes = [int(v) for v in a.get("scan_input_axes", [0] * m)]
    in_dirs = [int(v) for v in a.get("scan_input_directions", [0] * m)]
    n_out = len(body.outputs) - len(state)
    out_axes = [int(v) for v in a.get("scan_output_axes", [0] * n_out)]
    out_dirs = [int(v) for v in a.get("scan_output_directions", [0] * n_out)]
    shapes = [list(v.shape) for v in inputs]  # type: ignore[union-attr]
    in_axes = [ax + len(s) if ax < 0 else ax for ax, s in zip(in_axes, shapes)]
    steps = {s[ax] for ax, s in zip(in_axes, shapes)}
    if len(steps) != 1:
        raise BackendError("Scan inputs differ in length along their scan axes")
    count = steps.pop()
    per_step: List[List[Value]] = [[] for _ in range(n_out)]
    for t in range(count):
        slices = [
            _take(ctx, v, ax, count - 1 - t if d else t)
            for v, ax, d in zip(inputs, in_axes, in_dirs)
        ]
        outs = run_subgraph(ctx, body, state + slices, outer)
        state = list(outs[: len(state)])
        for k in range(n_out):
            per_step[k].append(outs[len(state) + k])
    results = list(state)
    for k in range(n_out):
        if not per_step[k]:
            raise BackendError("Scan over zero steps: its scan outputs have unknown shapes")
        vals = per_step[k][::-1] if out_dirs[k] else per_step[k]
        rank = np.ndim(vals[0]) if isinstance(vals[0], np.ndarray) else ctx.t(vals[0]).ndim
        ax = out_axes[k] + rank + 1 if out_axes[k] < 0 else out_axes[k]
        results.append(_stack(ctx, vals, ax))
    return results


@register("Scan")
def _scan(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    declared, outer = _split_inputs(node, xs)
    m = int(node.attrs["num_scan_inputs"])
    if ctx.opset >= 9:
        n = len(declared) - m
        return _scan_once(ctx, node, list(declared[:n]), list(declared[n:]), outer)
    # opset 8: optional sequence_lens first, then states and inputs with a batch axis
    lens, rest = declared[0], declared[1:]
    n = len(rest) - m
    batch = (rest[0] if n else rest[n]).shape[0]  # type: ignore[union-attr]
    if lens is not None:
        full = (rest[n].shape[1],)  # type: ignore[union-attr]
        if np.any(np.asarray(ctx.a(lens)).reshape(-1) != full[0]):
            raise BackendError("Scan (opset 8) with sequence_lens shorter than the input")
    per_batch = []
    for b in range(batch):
        st = [_take(ctx, v, 0, b) for v in rest[:n]]
        ins = [_take(ctx, v, 0, b) for v in rest[n:]]
        per_batch.append(_scan_once(ctx, node, st, ins, outer))
    return [_stack(ctx, [r[k] for r in per_batch]) for k in range(len(per_batch[0]))]
