"""RMSprop (``torch.optim.RMSprop`` numerics, single-tensor implementation)."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import pyflame as pf

from .adam import _lerp
from .optimizer import Optimizer, ParamsT, _check_non_negative

__all__ = ["RMSprop"]


class RMSprop(Optimizer):
    """RMSprop, with optional centering, momentum and weight decay.

    Per parameter (``g`` negated when ``maximize``)::

        g = g + weight_decay * p                         (if weight_decay != 0)
        v = alpha * v + (1 - alpha) * g * g
        avg = sqrt(v - g_avg**2) + eps, g_avg = lerp(g_avg, g, 1 - alpha)   (centered)
        avg = sqrt(v) + eps                                                 (otherwise)
        b = momentum * b + g / avg;  p = p - lr * b      (if momentum > 0)
        p = p - lr * g / avg                             (otherwise)

    Args:
        params: tensors or parameter-group dicts to optimize.
        lr: learning rate (default 1e-2).
        alpha: smoothing constant (default 0.99).
        eps: term added to the denominator after the square root (default 1e-8).
        weight_decay: L2 penalty (default 0).
        momentum: momentum factor (default 0).
        centered: normalize by an estimate of the gradient's variance (default False).
        maximize: maximize the objective instead of minimizing it.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import optim
        >>> w = pf.tensor([1.0]).requires_grad_()
        >>> opt = optim.RMSprop([w], lr=0.01, alpha=0.99)
        >>> w.grad = pf.tensor([2.0])
        >>> opt.step()  # first step: g / sqrt(0.01 * g * g) = 10
        >>> round(w.item(), 5)
        0.9
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        _check_non_negative("learning rate", lr)
        _check_non_negative("epsilon value", eps)
        _check_non_negative("momentum value", momentum)
        _check_non_negative("weight_decay value", weight_decay)
        _check_non_negative("alpha value", alpha)
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "alpha": alpha,
            "eps": eps,
            "centered": centered,
            "weight_decay": weight_decay,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _fill_group_defaults(self, group: Dict[str, Any]) -> None:
        super()._fill_group_defaults(group)
        group.setdefault("momentum", 0)
        group.setdefault("centered", False)
        group.setdefault("maximize", False)

    def _update(
        self,
        param: pf.Tensor,
        grad: pf.Tensor,
        state: Dict[str, Any],
        group: Dict[str, Any],
    ) -> Tuple[pf.Tensor, Dict[str, Any]]:
        lr = group["lr"]
        alpha = group["alpha"]
        eps = group["eps"]
        weight_decay = group["weight_decay"]
        momentum = group["momentum"]
        step = float(state.get("step", 0.0)) + 1.0
        square_avg = state.get("square_avg")
        if square_avg is None:
            square_avg = pf.zeros_like(param)

        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * param

        square_avg = square_avg * alpha + (1 - alpha) * grad * grad
        new_state: Dict[str, Any] = {"step": step, "square_avg": square_avg}
        if group["centered"]:
            grad_avg = state.get("grad_avg")
            if grad_avg is None:
                grad_avg = pf.zeros_like(param)
            grad_avg = _lerp(grad_avg, grad, 1 - alpha)
            new_state["grad_avg"] = grad_avg
            avg = pf.sqrt(square_avg - grad_avg * grad_avg)
        else:
            avg = pf.sqrt(square_avg)
        avg = avg + eps

        if momentum > 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = pf.zeros_like(param)
            buf = buf * momentum + grad / avg
            new_state["momentum_buffer"] = buf
            return param + (-lr) * buf, new_state
        return param + (-lr) * grad / avg, new_state
