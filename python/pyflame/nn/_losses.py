"""Loss functions (functional forms, re-exported by :mod:`pyflame.nn.functional`) and the
``Reduction`` enum. PyTorch semantics: the same formulas, reductions and defaults.

Example:
    >>> import pyflame as pf
    >>> from pyflame.nn import functional as F
    >>> F.mse_loss(pf.tensor([1.0, 2.0]), pf.tensor([1.0, 4.0])).item()
    2.0
    >>> F.l1_loss(pf.tensor([1.0, 2.0]), pf.tensor([1.0, 4.0]), reduction="sum").item()
    2.0
"""

from __future__ import annotations

import enum
import warnings
from typing import Optional, Union

import numpy as np

import pyflame as pf

from ._helpers import is_floating, numel

__all__ = [
    "Reduction",
    "mse_loss",
    "l1_loss",
    "smooth_l1_loss",
    "huber_loss",
    "cross_entropy",
    "nll_loss",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "bce_loss",
    "bce_with_logits",
    "kl_div",
]

Tensor = pf.Tensor


class Reduction(str, enum.Enum):
    """How a loss reduces its per-element values: ``NONE``, ``MEAN`` (default) or ``SUM``.

    Members compare equal to the strings ``"none"``, ``"mean"`` and ``"sum"``, which are
    accepted everywhere too.

    Example:
        >>> from pyflame import nn
        >>> nn.Reduction.SUM == "sum"
        True
    """

    NONE = "none"
    MEAN = "mean"
    SUM = "sum"

    def __str__(self) -> str:
        return self.value


ReductionT = Union[str, Reduction]


def reduction_name(reduction: ReductionT, allowed: tuple = ("none", "mean", "sum")) -> str:
    """The reduction as a plain string, checked against `allowed`."""
    name = reduction.value if isinstance(reduction, Reduction) else reduction
    if name not in allowed:
        raise ValueError(f"{reduction} is not a valid value for reduction")
    return name


def _reduce(loss: Tensor, reduction: ReductionT) -> Tensor:
    name = reduction_name(reduction)
    if name == "mean":
        return loss.mean()
    if name == "sum":
        return loss.sum()
    return loss


def _check_sizes(input: Tensor, target: Tensor, name: str) -> None:  # noqa: A002
    if list(input.shape) != list(target.shape):
        warnings.warn(
            f"Using a target size ({list(target.shape)}) that is different to the input size "
            f"({list(input.shape)}). This will likely lead to incorrect results due to "
            "broadcasting. "
            "Please ensure they have the same size.",
            stacklevel=3,
        )


def mse_loss(input: Tensor, target: Tensor, reduction: ReductionT = "mean") -> Tensor:  # noqa: A002
    """Squared error ``(input - target) ** 2``, reduced.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.mse_loss(pf.tensor([0.0, 2.0]), pf.tensor([1.0, 1.0]), reduction="none").tolist()
        [1.0, 1.0]
    """
    _check_sizes(input, target, "mse_loss")
    d = input - target
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target: Tensor, reduction: ReductionT = "mean") -> Tensor:  # noqa: A002
    """Absolute error ``|input - target|``, reduced.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.l1_loss(pf.tensor([0.0, 3.0]), pf.tensor([1.0, 1.0])).item()
        1.5
    """
    _check_sizes(input, target, "l1_loss")
    return _reduce(pf.abs(input - target), reduction)


def smooth_l1_loss(
    input: Tensor, target: Tensor, reduction: ReductionT = "mean", beta: float = 1.0
) -> Tensor:  # noqa: A002
    """``0.5 * d**2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 * beta``
    (``d = input - target``).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.smooth_l1_loss(pf.tensor([0.5, 3.0]), pf.zeros([2]), reduction="none").tolist()
        [0.125, 2.5]
    """
    if beta < 0:
        raise ValueError("smooth_l1_loss does not support negative values for beta.")
    _check_sizes(input, target, "smooth_l1_loss")
    d = pf.abs(input - target)
    if beta == 0.0:
        return _reduce(d, reduction)
    loss = pf.where(d < beta, d * d * (0.5 / beta), d - 0.5 * beta)
    return _reduce(loss, reduction)


def huber_loss(
    input: Tensor, target: Tensor, reduction: ReductionT = "mean", delta: float = 1.0
) -> Tensor:  # noqa: A002
    """``0.5 * d**2`` where ``|d| < delta``, else ``delta * (|d| - 0.5 * delta)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.huber_loss(pf.tensor([0.5, 3.0]), pf.zeros([2]), reduction="none", delta=2.0).tolist()
        [0.125, 4.0]
    """
    _check_sizes(input, target, "huber_loss")
    d = pf.abs(input - target)
    loss = pf.where(d < delta, d * d * 0.5, (d - 0.5 * delta) * delta)
    return _reduce(loss, reduction)


def _class_last(x: Tensor) -> Tensor:
    """``[N, C, d1, ...]`` -> ``[N, d1, ..., C]``."""
    if x.ndim <= 2:
        return x
    return x.permute([0] + list(range(2, x.ndim)) + [1])


def _check_targets(target: Tensor, c: int, ignore_index: int) -> None:
    if is_floating(target) or target.dtype == pf.bool_:
        raise TypeError(
            f"expected class-index targets of an integer dtype, got {target.dtype.name}"
        )
    # Checked on the values (computed first if needed: targets usually arrive computed from
    # a data loader), not by evaluating a graph on every step.
    values = target.numpy()
    out_of_range = ((values < 0) | (values >= c)) & (values != ignore_index)
    if out_of_range.any():
        raise IndexError(f"Target {int(np.abs(values[out_of_range]).max())} is out of bounds.")


def _nll_parts(input: Tensor, target: Tensor, weight: Optional[Tensor], ignore_index: int) -> tuple:  # noqa: A002
    """Per-element ``-w[t] * input[t]`` (zero where ignored) and the per-element weights."""
    c = input.shape[1]
    if list(target.shape) != [input.shape[0]] + list(input.shape[2:]):
        raise ValueError(
            f"Expected target of shape {[input.shape[0]] + list(input.shape[2:])}, "
            f"got {list(target.shape)}"
        )
    _check_targets(target, c, ignore_index)
    hot = target.unsqueeze(-1) == pf.arange(c, dtype=target.dtype)
    picked = pf.where(hot, _class_last(input), pf.zeros([], dtype=input.dtype)).sum(-1)
    valid = (target != ignore_index).astype(input.dtype)
    if weight is not None:
        if list(weight.shape) != [c]:
            raise ValueError(
                f"weight tensor should be defined either for all {c} classes or no classes "
                f"but got weight tensor of shape: {list(weight.shape)}"
            )
        w = (
            pf.where(hot, weight.astype(input.dtype), pf.zeros([], dtype=input.dtype)).sum(-1)
            * valid
        )
    else:
        w = valid
    return -(picked * w), w


def nll_loss(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: ReductionT = "mean",
) -> Tensor:
    """Negative log likelihood of class-index `target` under log-probabilities `input`
    (``[N, C]``, ``[N, C, d1, ...]`` or unbatched ``[C]``). ``mean`` divides by the total weight
    of the non-ignored targets.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.nll_loss(pf.tensor([[-1.0, -2.0], [-3.0, -4.0]]), pf.tensor([1, 0])).item()
        2.5
    """
    name = reduction_name(reduction)
    unbatched = input.ndim == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    if input.ndim < 2:
        raise ValueError(f"Expected 1 or more dimensions for nll_loss input (got {input.ndim})")
    loss, w = _nll_parts(input, target, weight, ignore_index)
    if name == "mean":
        return loss.sum() / w.sum()
    if name == "sum":
        return loss.sum()
    return loss.squeeze(0) if unbatched else loss


def cross_entropy(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Optional[Tensor] = None,
    ignore_index: int = -100,
    reduction: ReductionT = "mean",
    label_smoothing: float = 0.0,
) -> Tensor:
    """Cross entropy between logits `input` (class dimension 1) and `target`: class indices
    (integer, with ``ignore_index`` and per-class ``weight``) or class probabilities (float,
    same shape as `input`). ``label_smoothing`` mixes in the uniform distribution.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> logits = pf.tensor([[2.0, 0.0, 0.0]])
        >>> round(F.cross_entropy(logits, pf.tensor([0])).item(), 4)
        0.2395
        >>> round(F.cross_entropy(logits, pf.tensor([[1.0, 0.0, 0.0]])).item(), 4)
        0.2395
    """
    name = reduction_name(reduction)
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be between 0.0 and 1.0. Got: {label_smoothing}")
    probs = is_floating(target)
    unbatched = input.ndim == 1
    if unbatched:
        input, target = input.unsqueeze(0), target.unsqueeze(0)
    if input.ndim < 2:
        raise ValueError(
            f"Expected 1 or more dimensions for cross_entropy input (got {input.ndim})"
        )
    c = input.shape[1]
    logp = pf.log_softmax(input, 1)
    wshape = [1, c] + [1] * (input.ndim - 2)
    if probs:
        if list(target.shape) != list(input.shape):
            raise ValueError(
                f"Expected probability targets of the input's shape {list(input.shape)}, "
                f"got {list(target.shape)}"
            )
        t = target.astype(input.dtype)
        if label_smoothing > 0:
            t = t * (1.0 - label_smoothing) + label_smoothing / c
        prod = logp * t
        if weight is not None:
            prod = prod * weight.astype(input.dtype).reshape(wshape)
        loss = -prod.sum(1)
        if name == "mean":
            return (
                loss.sum() / float(max(numel(input) // c, 1))
                if numel(input)
                else loss.sum() * float("nan")
            )
        if name == "sum":
            return loss.sum()
        return loss.squeeze(0) if unbatched else loss
    nll, w = _nll_parts(logp, target, weight, ignore_index)
    if label_smoothing <= 0.0:
        if name == "mean":
            return nll.sum() / w.sum()
        if name == "sum":
            return nll.sum()
        return nll.squeeze(0) if unbatched else nll
    scaled = logp if weight is None else logp * weight.astype(input.dtype).reshape(wshape)
    smooth = -scaled.sum(1)
    keep = target != ignore_index
    smooth = pf.where(keep, smooth, pf.zeros([], dtype=input.dtype))
    eps = float(label_smoothing)
    if name == "mean":
        denom = w.sum()
        return (nll.sum() / denom) * (1.0 - eps) + (smooth.sum() / denom) * (eps / c)
    if name == "sum":
        return nll.sum() * (1.0 - eps) + smooth.sum() * (eps / c)
    out = nll * (1.0 - eps) + smooth * (eps / c)
    return out.squeeze(0) if unbatched else out


def _safe_log(x: Tensor) -> Tensor:
    """``log(x)`` clamped at -100 like PyTorch's BCE, without NaN gradients at 0."""
    pos = x > 0
    safe = pf.where(pos, x, pf.ones_like(x))
    return pf.where(pos, pf.clamp(pf.log(safe), min=-100.0), pf.full_like(x, -100.0))


def binary_cross_entropy(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Optional[Tensor] = None,
    reduction: ReductionT = "mean",
) -> Tensor:
    """Binary cross entropy between probabilities `input` and `target` (logs clamped at -100).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> round(F.binary_cross_entropy(pf.tensor([0.5]), pf.tensor([1.0])).item(), 4)
        0.6931
    """
    if list(target.shape) != list(input.shape):
        raise ValueError(
            f"Using a target size ({list(target.shape)}) that is different to the input size "
            f"({list(input.shape)}) is deprecated. Please ensure they have the same size."
        )
    loss = -(target * _safe_log(input) + (1.0 - target) * _safe_log(1.0 - input))
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


def _log_sigmoid(x: Tensor) -> Tensor:
    return pf.minimum(x, pf.zeros_like(x)) - pf.log(pf.exp(-pf.abs(x)) + 1.0)


def binary_cross_entropy_with_logits(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    weight: Optional[Tensor] = None,
    reduction: ReductionT = "mean",
    pos_weight: Optional[Tensor] = None,
) -> Tensor:
    """``binary_cross_entropy(sigmoid(input), target)`` in a numerically stable form;
    ``pos_weight`` weights the positive term (broadcast over the last dimension).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> round(F.binary_cross_entropy_with_logits(pf.tensor([0.0]), pf.tensor([1.0])).item(), 4)
        0.6931
    """
    if list(target.shape) != list(input.shape):
        raise ValueError(
            f"Target size ({list(target.shape)}) must be the same as input size "
            f"({list(input.shape)})"
        )
    log_sig = _log_sigmoid(input)
    if pos_weight is not None:
        log_sig = log_sig * ((pos_weight - 1.0) * target + 1.0)
    loss = (1.0 - target) * input - log_sig
    if weight is not None:
        loss = loss * weight
    return _reduce(loss, reduction)


bce_loss = binary_cross_entropy
bce_with_logits = binary_cross_entropy_with_logits


def kl_div(
    input: Tensor,  # noqa: A002 - PyTorch's name
    target: Tensor,
    reduction: str = "mean",
    log_target: bool = False,
) -> Tensor:
    """Kullback-Leibler divergence ``target * (log(target) - input)`` for log-probabilities
    `input` (`target` probabilities, or log-probabilities when ``log_target``). Reductions:
    ``"none"``, ``"mean"`` (over all elements), ``"sum"``, ``"batchmean"`` (sum / batch size).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> p = pf.tensor([[0.5, 0.5]])
        >>> F.kl_div(pf.log(p), p, reduction="batchmean").item()
        0.0
    """
    name = reduction_name(reduction, ("none", "mean", "sum", "batchmean"))
    if name == "mean":
        warnings.warn(
            "reduction: 'mean' divides the total loss by both the batch size and the support size."
            "'batchmean' divides only by the batch size, and aligns with the KL div math "
            "definition."
            "'mean' will be changed to behave the same as 'batchmean' in the next major release.",
            stacklevel=2,
        )
    if log_target:
        loss = pf.exp(target) * (target - input)
    else:
        pos = target > 0
        safe = pf.where(pos, target, pf.ones_like(target))
        loss = pf.where(pos, target * pf.log(safe), pf.zeros_like(target)) - target * input
    if name == "batchmean":
        return loss.sum() / float(input.shape[0]) if input.ndim else loss.sum()
    return _reduce(loss, name)
