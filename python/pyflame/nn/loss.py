"""Loss modules (``torch.nn`` semantics): ``MSELoss``, ``L1Loss``, ``SmoothL1Loss``,
``HuberLoss``, ``CrossEntropyLoss``, ``NLLLoss``, ``BCELoss``, ``BCEWithLogitsLoss`` and
``KLDivLoss``. Each takes ``reduction`` (``"none"``/``"mean"``/``"sum"`` or a
:class:`Reduction` member).

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> loss_fn = nn.CrossEntropyLoss(label_smoothing=0.1)
    >>> loss = loss_fn(pf.randn([8, 10]), pf.randint(0, 10, [8]))
    >>> loss.shape
    []
"""

from __future__ import annotations

from typing import Optional

import pyflame as pf

from . import functional as F
from ._losses import Reduction, ReductionT, reduction_name
from .module import Module

__all__ = [
    "Reduction",
    "MSELoss",
    "L1Loss",
    "SmoothL1Loss",
    "HuberLoss",
    "CrossEntropyLoss",
    "NLLLoss",
    "BCELoss",
    "BCEWithLogitsLoss",
    "KLDivLoss",
]

Tensor = pf.Tensor


class _Loss(Module):
    _allowed = ("none", "mean", "sum")

    def __init__(self, reduction: ReductionT = "mean") -> None:
        super().__init__()
        self.reduction = reduction_name(reduction, self._allowed)


class _WeightedLoss(_Loss):
    def __init__(self, weight: Optional[Tensor] = None, reduction: ReductionT = "mean") -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)


class MSELoss(_Loss):
    """Mean squared error ``(input - target) ** 2``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.MSELoss()(pf.tensor([1.0, 3.0]), pf.tensor([1.0, 1.0])).item()
        2.0
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002 - PyTorch's name
        """The reduced loss."""
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """Mean absolute error ``|input - target|``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.L1Loss(reduction=nn.Reduction.SUM)(pf.tensor([1.0, 3.0]), pf.zeros([2])).item()
        4.0
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        """The reduced loss."""
        return F.l1_loss(input, target, reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """Quadratic below `beta`, linear above (Huber loss scaled by ``1 / beta``).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.SmoothL1Loss(beta=1.0)(pf.tensor([0.5]), pf.zeros([1])).item()
        0.125
    """

    def __init__(self, reduction: ReductionT = "mean", beta: float = 1.0) -> None:
        super().__init__(reduction)
        self.beta = beta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        """The reduced loss."""
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """Quadratic below `delta`, ``delta * (|d| - delta / 2)`` above.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.HuberLoss(delta=1.0)(pf.tensor([3.0]), pf.zeros([1])).item()
        2.5
    """

    def __init__(self, reduction: ReductionT = "mean", delta: float = 1.0) -> None:
        super().__init__(reduction)
        self.delta = delta

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        """The reduced loss."""
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class CrossEntropyLoss(_WeightedLoss):
    """Log-softmax + negative log likelihood over class dimension 1, for class-index targets
    (with ``ignore_index``) or class-probability targets; optional per-class ``weight`` and
    ``label_smoothing``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> loss_fn = nn.CrossEntropyLoss(ignore_index=-1)
        >>> round(loss_fn(pf.zeros([2, 4]), pf.tensor([1, -1])).item(), 4)
        1.3863
    """

    def __init__(
        self,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: ReductionT = "mean",
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = label_smoothing

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        """The reduced loss."""
        return F.cross_entropy(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
            label_smoothing=self.label_smoothing,
        )


class NLLLoss(_WeightedLoss):
    """Negative log likelihood of class-index targets under log-probabilities.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> nn.NLLLoss()(pf.tensor([[-0.5, -2.0]]), pf.tensor([0])).item()
        0.5
    """

    def __init__(
        self,
        weight: Optional[Tensor] = None,
        ignore_index: int = -100,
        reduction: ReductionT = "mean",
    ) -> None:
        super().__init__(weight, reduction)
        self.ignore_index = ignore_index

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        """The reduced loss."""
        return F.nll_loss(
            input,
            target,
            weight=self.weight,
            ignore_index=self.ignore_index,
            reduction=self.reduction,
        )


class BCELoss(_WeightedLoss):
    """Binary cross entropy between probabilities and targets.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> round(nn.BCELoss()(pf.tensor([0.9]), pf.tensor([1.0])).item(), 4)
        0.1054
    """

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        """The reduced loss."""
        return F.binary_cross_entropy(input, target, weight=self.weight, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """Sigmoid + binary cross entropy in one numerically stable step; ``pos_weight``
    (broadcast along the last dimension) weights positive examples.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> loss_fn = nn.BCEWithLogitsLoss(pos_weight=pf.tensor([2.0]))
        >>> round(loss_fn(pf.tensor([0.0]), pf.tensor([1.0])).item(), 4)
        1.3863
    """

    def __init__(
        self,
        weight: Optional[Tensor] = None,
        reduction: ReductionT = "mean",
        pos_weight: Optional[Tensor] = None,
    ) -> None:
        super().__init__(reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        """The reduced loss."""
        return F.binary_cross_entropy_with_logits(
            input, target, weight=self.weight, reduction=self.reduction, pos_weight=self.pos_weight
        )


class KLDivLoss(_Loss):
    """KL divergence between log-probabilities `input` and `target` (probabilities, or
    log-probabilities with ``log_target=True``); ``reduction`` may also be ``"batchmean"``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> p = pf.tensor([[0.25, 0.75]])
        >>> nn.KLDivLoss(reduction="batchmean")(pf.log(p), p).item()
        0.0
    """

    _allowed = ("none", "mean", "sum", "batchmean")

    def __init__(self, reduction: ReductionT = "mean", log_target: bool = False) -> None:
        super().__init__(reduction)
        self.log_target = log_target

    def forward(self, input: Tensor, target: Tensor) -> Tensor:  # noqa: A002
        """The reduced loss."""
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)
