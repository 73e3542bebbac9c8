"""Adam and AdamW (``torch.optim.Adam`` / ``AdamW`` numerics, single-tensor implementation)."""

from __future__ import annotations

from typing import Any, Dict, Optional, Sequence, Tuple

import pyflame as pf

from .optimizer import Optimizer, ParamsT, _check_non_negative

__all__ = ["Adam", "AdamW"]


def _lerp(start: pf.Tensor, end: pf.Tensor, weight: float) -> pf.Tensor:
    """``start + weight * (end - start)``, evaluated like PyTorch's ``lerp`` kernel."""
    if abs(weight) < 0.5:
        return start + weight * (end - start)
    return end - (end - start) * (1.0 - weight)


def _resolve_betas(
    betas: Sequence[float], beta1: Optional[float], beta2: Optional[float]
) -> Tuple[float, float]:
    if isinstance(betas, (int, float)) or len(betas) != 2:
        raise TypeError(f"betas must be a pair (beta1, beta2), got {betas!r}")
    b1 = betas[0] if beta1 is None else beta1
    b2 = betas[1] if beta2 is None else beta2
    for i, b in enumerate((b1, b2)):
        try:
            ok = 0.0 <= float(b) < 1.0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"Invalid beta parameter at index {i}: {b}")
    return (float(b1), float(b2))


class Adam(Optimizer):
    """Adam, with optional AMSGrad and (L2 or decoupled) weight decay.

    Per parameter at step ``t`` (``g`` negated when ``maximize``)::

        p = p * (1 - lr * weight_decay)                       (decoupled weight decay)
        g = g + weight_decay * p                              (otherwise, if weight_decay != 0)
        m = lerp(m, g, 1 - beta1);  v = beta2 * v + (1 - beta2) * g * g
        v_max = max(v_max, v)                                 (amsgrad; used instead of v)
        denom = sqrt(v) / sqrt(1 - beta2**t) + eps
        p = p - lr / (1 - beta1**t) * m / denom

    Args:
        params: tensors or parameter-group dicts to optimize.
        lr: learning rate (default 1e-3).
        betas: ``(beta1, beta2)`` coefficients of the running averages (default (0.9, 0.999)).
        eps: term added to the denominator after the square root (default 1e-8).
        weight_decay: weight decay (default 0).
        amsgrad: use the AMSGrad variant (default False).
        maximize: maximize the objective instead of minimizing it.
        decoupled_weight_decay: apply weight decay to the parameter directly (AdamW).
        beta1, beta2: alternative spelling of ``betas`` (each overrides its entry).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import optim
        >>> w = pf.tensor([1.0, -1.0]).requires_grad_()
        >>> opt = optim.Adam([w], lr=0.1, betas=(0.9, 0.999))
        >>> w.grad = pf.tensor([0.5, -2.0])
        >>> opt.step()
        >>> [round(v, 4) for v in w.numpy().tolist()]  # the first step moves by ~lr
        [0.9, -0.9]
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        decoupled_weight_decay: bool = False,
        beta1: Optional[float] = None,
        beta2: Optional[float] = None,
    ) -> None:
        _check_non_negative("learning rate", lr)
        _check_non_negative("epsilon value", eps)
        betas = _resolve_betas(betas, beta1, beta2)
        _check_non_negative("weight_decay value", weight_decay)
        defaults = {
            "lr": lr,
            "betas": betas,
            "eps": eps,
            "weight_decay": weight_decay,
            "amsgrad": amsgrad,
            "maximize": maximize,
            "decoupled_weight_decay": decoupled_weight_decay,
        }
        super().__init__(params, defaults)

    def _fill_group_defaults(self, group: Dict[str, Any]) -> None:
        super()._fill_group_defaults(group)
        group.setdefault("amsgrad", False)
        group.setdefault("maximize", False)
        group.setdefault("decoupled_weight_decay", False)
        group["betas"] = tuple(group["betas"])

    def _update(
        self,
        param: pf.Tensor,
        grad: pf.Tensor,
        state: Dict[str, Any],
        group: Dict[str, Any],
    ) -> Tuple[pf.Tensor, Dict[str, Any]]:
        lr = group["lr"]
        beta1, beta2 = group["betas"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        step = float(state.get("step", 0.0)) + 1.0
        exp_avg = state.get("exp_avg")
        exp_avg_sq = state.get("exp_avg_sq")
        if exp_avg is None:
            exp_avg = pf.zeros_like(param)
        if exp_avg_sq is None:
            exp_avg_sq = pf.zeros_like(param)

        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            if group["decoupled_weight_decay"]:
                param = param * (1 - lr * weight_decay)
            else:
                grad = grad + weight_decay * param

        bias_correction1 = 1 - beta1**step
        bias_correction2 = 1 - beta2**step
        if _fused_ok(param, grad, exp_avg, exp_avg_sq, state.get("max_exp_avg_sq"), group):
            # One pass over param, grad and state (one elementwise program per new tensor
            # would reload the inputs three or four times).
            moments = [exp_avg, exp_avg_sq]
            if group["amsgrad"]:
                prev_max = state.get("max_exp_avg_sq")
                moments.append(pf.zeros_like(param) if prev_max is None else prev_max)
            packed = pf._core.adam_step(
                param,
                grad,
                moments,
                beta1,
                beta2,
                eps,
                lr / bias_correction1,
                bias_correction2**0.5,
                bool(group["amsgrad"]),
            )
            names = ["exp_avg", "exp_avg_sq", "max_exp_avg_sq"][: len(moments)]
            fused_state: Dict[str, Any] = {"step": step}
            fused_state.update({n: packed[i + 1] for i, n in enumerate(names)})
            return packed[0], fused_state

        exp_avg = _lerp(exp_avg, grad, 1 - beta1)
        exp_avg_sq = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
        new_state: Dict[str, Any] = {"step": step, "exp_avg": exp_avg, "exp_avg_sq": exp_avg_sq}

        step_size = lr / bias_correction1
        bias_correction2_sqrt = bias_correction2**0.5
        if group["amsgrad"]:
            max_exp_avg_sq = state.get("max_exp_avg_sq")
            if max_exp_avg_sq is None:
                max_exp_avg_sq = pf.zeros_like(param)
            max_exp_avg_sq = pf.maximum(max_exp_avg_sq, exp_avg_sq)
            new_state["max_exp_avg_sq"] = max_exp_avg_sq
            denom = pf.sqrt(max_exp_avg_sq) / bias_correction2_sqrt + eps
        else:
            denom = pf.sqrt(exp_avg_sq) / bias_correction2_sqrt + eps
        return param + (-step_size) * exp_avg / denom, new_state


def _fused_ok(
    param: pf.Tensor,
    grad: pf.Tensor,
    exp_avg: pf.Tensor,
    exp_avg_sq: pf.Tensor,
    max_exp_avg_sq: Optional[pf.Tensor],
    group: Dict[str, Any],
) -> bool:
    """True when the one-pass kernel applies: float32/float64 tensors of one shape and dtype
    (state loaded from elsewhere may differ; the composed update handles that)."""
    others = [grad, exp_avg, exp_avg_sq]
    if group["amsgrad"] and max_exp_avg_sq is not None:
        others.append(max_exp_avg_sq)
    return param.dtype in (pf.float32, pf.float64) and all(
        isinstance(t, pf.Tensor) and t.dtype == param.dtype and t.shape == param.shape
        for t in others
    )


class AdamW(Adam):
    """Adam with decoupled weight decay (``p *= 1 - lr * weight_decay`` before the Adam step).

    Same arguments as :class:`Adam`, except ``weight_decay`` defaults to 1e-2 and
    ``decoupled_weight_decay`` is always True.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import optim
        >>> w = pf.tensor([1.0]).requires_grad_()
        >>> opt = optim.AdamW([w], lr=0.1, weight_decay=0.5)
        >>> w.grad = pf.tensor([0.0])
        >>> opt.step()  # zero gradient: only the decay acts, w *= 1 - 0.1 * 0.5
        >>> round(w.item(), 6)
        0.95
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
        amsgrad: bool = False,
        *,
        maximize: bool = False,
        beta1: Optional[float] = None,
        beta2: Optional[float] = None,
    ) -> None:
        super().__init__(
            params,
            lr,
            betas,
            eps,
            weight_decay,
            amsgrad,
            maximize=maximize,
            decoupled_weight_decay=True,
            beta1=beta1,
            beta2=beta2,
        )

    def _fill_group_defaults(self, group: Dict[str, Any]) -> None:
        super()._fill_group_defaults(group)
        group["decoupled_weight_decay"] = True
