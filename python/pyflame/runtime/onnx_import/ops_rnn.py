"""Recurrent operators RNN, GRU and LSTM (forward, reverse, bidirectional; layout 0 and 1;
``clip``; the default and the common custom activations; GRU ``linear_before_reset``; LSTM
peepholes), unrolled over the sequence with tensor ops.

The input projections of all time steps are one matmul; each step adds the recurrent
matmul and the gate arithmetic, so the whole sequence is one lazy graph evaluated at once.
``sequence_lens`` shorter than the sequence and LSTM ``input_forget`` are not supported.

Example:
    >>> from pyflame.runtime.onnx_import.registry import is_supported
    >>> all(is_supported(o) for o in ("RNN", "GRU", "LSTM"))
    True
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional, Tuple

import numpy as np

import pyflame as pf

from ..errors import BackendError
from .registry import OpContext, Value, register

Act = Callable[[pf.Tensor], pf.Tensor]


def _activation(name: str, alpha: Optional[float], beta: Optional[float]) -> Act:
    n = name.decode() if isinstance(name, bytes) else name
    n = n.lower()
    if n == "sigmoid":
        return pf.sigmoid
    if n == "tanh":
        return pf.tanh
    if n == "relu":
        return pf.relu
    if n == "leakyrelu":
        a = 0.01 if alpha is None else alpha
        return lambda x: pf.where(pf.ge(x, 0.0), x, x * a)
    if n == "hardsigmoid":
        a, b = (0.2 if alpha is None else alpha), (0.5 if beta is None else beta)
        return lambda x: pf.clamp(x * a + b, 0.0, 1.0)
    if n == "affine":
        a, b = (1.0 if alpha is None else alpha), (0.0 if beta is None else beta)
        return lambda x: x * a + b
    if n == "scaledtanh":
        a, b = (1.0 if alpha is None else alpha), (1.0 if beta is None else beta)
        return lambda x: pf.tanh(x * b) * a
    raise BackendError(f"recurrent activation {name!r} is not supported")


def _activations(node: Any, per_dir: int, dirs: int, defaults: List[str]) -> List[List[Act]]:
    names = list(node.attrs.get("activations", [])) or defaults * dirs
    alphas = list(node.attrs.get("activation_alpha", []))
    betas = list(node.attrs.get("activation_beta", []))
    if len(names) != per_dir * dirs:
        raise BackendError(f"{node.op_type}: expected {per_dir * dirs} activations")
    acts = [
        _activation(
            n,
            float(alphas[i]) if i < len(alphas) else None,
            float(betas[i]) if i < len(betas) else None,
        )
        for i, n in enumerate(names)
    ]
    return [acts[d * per_dir : (d + 1) * per_dir] for d in range(dirs)]


def _common(
    ctx: OpContext, node: Any, xs: List[Value], gates: int
) -> Tuple[pf.Tensor, pf.Tensor, pf.Tensor, Optional[pf.Tensor], pf.Tensor, int, int, bool]:
    xs = list(xs) + [None] * (8 - len(xs))
    x, w, r = ctx.t(xs[0]), ctx.t(xs[1]), ctx.t(xs[2])
    layout = int(node.attrs.get("layout", 0))
    if layout:
        x = x.permute([1, 0, 2])
    seq, batch = x.shape[0], x.shape[1]
    dirs, hidden = w.shape[0], r.shape[2]
    if w.shape[1] != gates * hidden:
        raise BackendError(f"{node.op_type}: W has {w.shape[1]} rows, expected {gates * hidden}")
    if xs[4] is not None:
        lens = np.asarray(ctx.a(xs[4])).reshape(-1)
        if np.any(lens != seq):
            raise BackendError(f"{node.op_type}: sequence_lens shorter than the sequence")
    b = ctx.t(xs[3]) if xs[3] is not None else None
    h0 = ctx.t(xs[5]) if xs[5] is not None else pf.zeros([dirs, batch, hidden], dtype=x.dtype)
    if layout and xs[5] is not None:
        h0 = h0.permute([1, 0, 2])
    return x, w, r, b, h0, dirs, hidden, bool(layout)


def _directions(node: Any, dirs: int) -> List[bool]:
    d = node.attrs.get("direction", "forward")
    d = d.decode() if isinstance(d, bytes) else d
    want = {"forward": [False], "reverse": [True], "bidirectional": [False, True]}.get(d)
    if want is None or len(want) != dirs:
        raise BackendError(f"{node.op_type}: direction {d!r} does not fit {dirs} weight sets")
    return want


def _clip(node: Any) -> Callable[[pf.Tensor], pf.Tensor]:
    c = node.attrs.get("clip")
    if c is None:
        return lambda t: t
    c = float(c)
    return lambda t: pf.clamp(t, -c, c)


def _outputs(
    node: Any, ys: List[List[pf.Tensor]], finals: List[List[pf.Tensor]], layout: bool
) -> List[pf.Tensor]:
    # ys[d][t]: [batch, hidden] -> Y [seq, dirs, batch, hidden]
    y = pf.stack([pf.stack(seq_out, 0) for seq_out in ys], 1)
    outs = [y]
    for k in range(len(finals[0])):
        outs.append(pf.stack([f[k] for f in finals], 0))
    if layout:
        outs = [outs[0].permute([2, 0, 1, 3])] + [o.permute([1, 0, 2]) for o in outs[1:]]
    return outs[: max(1, len(node.outputs))]


def _input_projection(x: pf.Tensor, w: pf.Tensor, bias: Optional[pf.Tensor]) -> pf.Tensor:
    """x [seq, batch, in] @ w^T [in, gates*hidden] (+ bias) for all steps at once."""
    p = pf.matmul(x, w.transpose(0, 1))
    return p + bias if bias is not None else p


@register("RNN")
def _rnn(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, w, r, b, h0, dirs, hidden, layout = _common(ctx, node, xs, 1)
    acts = _activations(node, 1, dirs, ["Tanh"])
    clip = _clip(node)
    ys, finals = [], []
    for d, rev in enumerate(_directions(node, dirs)):
        bias = b[d][:hidden] + b[d][hidden:] if b is not None else None
        xp = _input_projection(x, w[d], bias)
        rt, h, out = r[d].transpose(0, 1), h0[d], []
        for t in range(x.shape[0]) if not rev else reversed(range(x.shape[0])):
            h = acts[d][0](clip(xp[t] + pf.matmul(h, rt)))
            out.append(h)
        ys.append(out[::-1] if rev else out)
        finals.append([h])
    return _outputs(node, ys, finals, layout)


@register("GRU")
def _gru(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, w, r, b, h0, dirs, n, layout = _common(ctx, node, xs, 3)
    acts = _activations(node, 2, dirs, ["Sigmoid", "Tanh"])
    clip = _clip(node)
    lbr = int(node.attrs.get("linear_before_reset", 0))
    ys, finals = [], []
    for d, rev in enumerate(_directions(node, dirs)):
        f, g = acts[d]
        wb = b[d][: 3 * n] if b is not None else None
        rb = b[d][3 * n :] if b is not None else None
        xp = _input_projection(x, w[d], wb)  # [seq, batch, 3n]: z, r, h
        rz_t = r[d][: 2 * n].transpose(0, 1)
        rh_t = r[d][2 * n :].transpose(0, 1)
        h, out = h0[d], []
        for t in range(x.shape[0]) if not rev else reversed(range(x.shape[0])):
            zr = xp[t][:, : 2 * n] + pf.matmul(h, rz_t)
            if rb is not None:
                zr = zr + rb[: 2 * n]
            z = f(clip(zr[:, :n]))
            rr = f(clip(zr[:, n:]))
            xh = xp[t][:, 2 * n :]
            if lbr:
                hr = pf.matmul(h, rh_t)
                if rb is not None:
                    hr = hr + rb[2 * n :]
                cand = g(clip(xh + rr * hr))
            else:
                hr = pf.matmul(rr * h, rh_t)
                if rb is not None:
                    hr = hr + rb[2 * n :]
                cand = g(clip(xh + hr))
            h = (1.0 - z) * cand + z * h
            out.append(h)
        ys.append(out[::-1] if rev else out)
        finals.append([h])
    return _outputs(node, ys, finals, layout)


@register("LSTM")
def _lstm(ctx: OpContext, node: Any, xs: List[Value]) -> Any:
    x, w, r, b, h0, dirs, n, layout = _common(ctx, node, xs, 4)
    xs = list(xs) + [None] * (8 - len(xs))
    if int(node.attrs.get("input_forget", 0)):
        raise BackendError("LSTM input_forget is not supported")
    acts = _activations(node, 3, dirs, ["Sigmoid", "Tanh", "Tanh"])
    clip = _clip(node)
    batch = x.shape[1]
    c0 = ctx.t(xs[6]) if xs[6] is not None else pf.zeros([dirs, batch, n], dtype=x.dtype)
    if layout and xs[6] is not None:
        c0 = c0.permute([1, 0, 2])
    peep = ctx.t(xs[7]) if xs[7] is not None else None
    ys, finals = [], []
    for d, rev in enumerate(_directions(node, dirs)):
        f, g, hact = acts[d]
        bias = b[d][: 4 * n] + b[d][4 * n :] if b is not None else None
        xp = _input_projection(x, w[d], bias)  # [seq, batch, 4n]: i, o, f, c
        rt = r[d].transpose(0, 1)
        pi, po, pf_ = (
            (peep[d][:n], peep[d][n : 2 * n], peep[d][2 * n :]) if peep is not None else (None,) * 3
        )
        h, c, out = h0[d], c0[d], []
        for t in range(x.shape[0]) if not rev else reversed(range(x.shape[0])):
            gts = xp[t] + pf.matmul(h, rt)
            gi, go, gf, gc = (gts[:, k * n : (k + 1) * n] for k in range(4))
            if pi is not None:
                gi, gf = gi + pi * c, gf + pf_ * c
            i_g, f_g = f(clip(gi)), f(clip(gf))
            c = f_g * c + i_g * g(clip(gc))
            if po is not None:
                go = go + po * c
            h = f(clip(go)) * hact(c)
            out.append(h)
        ys.append(out[::-1] if rev else out)
        finals.append([h, c])
    return _outputs(node, ys, finals, layout)
