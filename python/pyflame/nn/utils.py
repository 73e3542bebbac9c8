"""Gradient clipping and parameter/vector conversion (``torch.nn.utils`` semantics).

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> w = pf.zeros([2]).requires_grad_()
    >>> w.grad = pf.tensor([3.0, 4.0])
    >>> nn.utils.clip_grad_norm_([w], max_norm=1.0).item()
    5.0
    >>> [round(g, 4) for g in w.grad.tolist()]
    [0.6, 0.8]
"""

from __future__ import annotations

import math
from typing import Iterable, List, Optional, Union

import pyflame as pf

from ._helpers import numel, set_data

__all__ = [
    "clip_grad_norm_",
    "clip_grad_value_",
    "get_total_norm",
    "parameters_to_vector",
    "vector_to_parameters",
]

Tensor = pf.Tensor
TensorsT = Union[Tensor, Iterable[Tensor]]


def _as_list(tensors: TensorsT) -> List[Tensor]:
    return [tensors] if isinstance(tensors, pf.Tensor) else list(tensors)


def _norm(t: Tensor, norm_type: float) -> Tensor:
    t = t.astype(pf.float64) if t.dtype == pf.float64 else t.astype(pf.float32)
    if math.isinf(norm_type):
        return pf.abs(t).amax() if norm_type > 0 else pf.abs(t).amin()
    if norm_type == 2.0:
        return pf.sqrt((t * t).sum())
    if norm_type == 1.0:
        return pf.abs(t).sum()
    return (pf.abs(t) ** norm_type).sum() ** (1.0 / norm_type)


def get_total_norm(
    tensors: TensorsT,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: Optional[bool] = None,
) -> Tensor:
    """The `norm_type`-norm of all `tensors` together (as if concatenated).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.utils.get_total_norm([pf.tensor([3.0]), pf.tensor([4.0])]).item()
        5.0
    """
    ts = _as_list(tensors)
    norm_type = float(norm_type)
    if not ts:
        return pf.tensor(0.0)
    norms = [_norm(t, norm_type) for t in ts]
    if math.isinf(norm_type):
        total = pf.stack(norms).amax() if norm_type > 0 else pf.stack(norms).amin()
    else:
        total = _norm(pf.stack([n.astype(norms[0].dtype) for n in norms]), norm_type)
    if error_if_nonfinite:
        value = float(total.item())
        if math.isnan(value) or math.isinf(value):
            raise RuntimeError(
                f"The total norm of order {norm_type} for gradients from `parameters` is "
                "non-finite, so it cannot be clipped. To disable this error and scale the "
                "gradients by the non-finite norm anyway, set `error_if_nonfinite=False`"
            )
    return total


def clip_grad_norm_(
    parameters: TensorsT,
    max_norm: float,
    norm_type: float = 2.0,
    error_if_nonfinite: bool = False,
    foreach: Optional[bool] = None,
) -> Tensor:
    """Scales the gradients of `parameters` so that their total norm is at most `max_norm`
    (factor ``max_norm / (total + 1e-6)``, capped at 1); returns the total norm before clipping.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> model = nn.Linear(4, 2)
        >>> model(pf.randn([8, 4])).sum().backward()
        >>> norm = nn.utils.clip_grad_norm_(model.parameters(), 0.1)
        >>> bool(nn.utils.get_total_norm([p.grad for p in model.parameters()]).item() <= 0.1 + 1e-5)
        True
    """
    params = [p for p in _as_list(parameters) if p.grad is not None]
    if not params:
        return pf.tensor(0.0)
    grads = [p.grad for p in params]
    total = get_total_norm(grads, norm_type, error_if_nonfinite)
    coef = pf.clamp(float(max_norm) / (total + 1e-6), max=1.0)
    news = [g * coef.astype(g.dtype) for g in grads]
    pf.eval(total, *news)
    for p, new in zip(params, news):
        p.grad = new
    return total


def clip_grad_value_(
    parameters: TensorsT, clip_value: float, foreach: Optional[bool] = None
) -> None:
    """Clamps every gradient of `parameters` to ``[-clip_value, clip_value]``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> w = pf.zeros([2]).requires_grad_()
        >>> w.grad = pf.tensor([-3.0, 0.5])
        >>> nn.utils.clip_grad_value_([w], 1.0)
        >>> w.grad.tolist()
        [-1.0, 0.5]
    """
    v = float(clip_value)
    for p in _as_list(parameters):
        if p.grad is not None:
            new = pf.clamp(p.grad, -v, v)
            new.eval()
            p.grad = new


def parameters_to_vector(parameters: Iterable[Tensor]) -> Tensor:
    """All parameters flattened and concatenated into one vector.

    Example:
        >>> from pyflame import nn
        >>> nn.utils.parameters_to_vector(nn.Linear(3, 2).parameters()).shape
        [8]
    """
    return pf.cat([p.reshape(-1) for p in parameters], 0)


def vector_to_parameters(vec: Tensor, parameters: Iterable[Tensor]) -> None:
    """Copies consecutive slices of `vec` into `parameters` (in place).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> m = nn.Linear(3, 2)
        >>> nn.utils.vector_to_parameters(pf.zeros([8]), m.parameters())
        >>> m.bias.tolist()
        [0.0, 0.0]
    """
    if vec.ndim != 1:
        raise TypeError(f"expected a 1-D vector, got shape {list(vec.shape)}")
    offset = 0
    with pf.no_grad():
        for p in parameters:
            n = numel(p)
            set_data(p, vec[offset : offset + n].reshape(list(p.shape)).astype(p.dtype))
            offset += n
