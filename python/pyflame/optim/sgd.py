"""Stochastic gradient descent (``torch.optim.SGD`` numerics, single-tensor implementation)."""

from __future__ import annotations

from typing import Any, Dict, Tuple

import pyflame as pf

from .optimizer import Optimizer, ParamsT, _check_non_negative

__all__ = ["SGD"]


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay.

    Per parameter, with ``g`` the gradient (negated when ``maximize``)::

        g = g + weight_decay * p                      (if weight_decay != 0)
        b = g  (first step)  |  b = momentum * b + (1 - dampening) * g
        g = g + momentum * b  (nesterov)  |  g = b    (if momentum != 0)
        p = p - lr * g

    Args:
        params: tensors or parameter-group dicts to optimize.
        lr: learning rate (default 1e-3, PyTorch's default).
        momentum: momentum factor (default 0).
        dampening: dampening for momentum (default 0).
        weight_decay: L2 penalty added to the gradient (default 0).
        nesterov: use Nesterov momentum (needs ``momentum > 0`` and ``dampening == 0``).
        maximize: maximize the objective instead of minimizing it.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import optim
        >>> w = pf.tensor([1.0, -1.0]).requires_grad_()
        >>> opt = optim.SGD([w], lr=0.1, momentum=0.9)
        >>> w.grad = pf.tensor([1.0, 1.0])
        >>> opt.step()
        >>> w.numpy().tolist()
        [0.8999999761581421, -1.100000023841858]
    """

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
    ) -> None:
        _check_non_negative("learning rate", lr)
        _check_non_negative("momentum value", momentum)
        _check_non_negative("weight_decay value", weight_decay)
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening")
        defaults = {
            "lr": lr,
            "momentum": momentum,
            "dampening": dampening,
            "weight_decay": weight_decay,
            "nesterov": nesterov,
            "maximize": maximize,
        }
        super().__init__(params, defaults)

    def _fill_group_defaults(self, group: Dict[str, Any]) -> None:
        super()._fill_group_defaults(group)
        group.setdefault("nesterov", False)
        group.setdefault("maximize", False)

    def _update(
        self,
        param: pf.Tensor,
        grad: pf.Tensor,
        state: Dict[str, Any],
        group: Dict[str, Any],
    ) -> Tuple[pf.Tensor, Dict[str, Any]]:
        lr = group["lr"]
        momentum = group["momentum"]
        dampening = group["dampening"]
        weight_decay = group["weight_decay"]
        if group["maximize"]:
            grad = -grad
        if weight_decay != 0:
            grad = grad + weight_decay * param
        new_state: Dict[str, Any] = {}
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = grad
            else:
                buf = buf * momentum + (1 - dampening) * grad
            new_state["momentum_buffer"] = buf
            grad = grad + momentum * buf if group["nesterov"] else buf
        return param + (-lr) * grad, new_state
