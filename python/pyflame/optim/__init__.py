"""Optimizers and learning-rate schedulers with PyTorch's semantics and numerics.

``pf.optim`` provides :class:`SGD`, :class:`Adam`, :class:`AdamW` and :class:`RMSprop` (built on
:class:`Optimizer`) and the schedulers of :mod:`pyflame.optim.lr_scheduler`, which are also
importable from here. A step builds all parameter updates lazily and realizes them in one
evaluation pass.

Example:
    >>> import pyflame as pf
    >>> from pyflame import optim
    >>> w = pf.tensor([1.0, 2.0]).requires_grad_()
    >>> opt = optim.SGD([w], lr=0.1, momentum=0.9)
    >>> sched = optim.StepLR(opt, step_size=10, gamma=0.5)
    >>> for _ in range(3):
    ...     opt.zero_grad()
    ...     w.grad = 2 * w.detach()  # gradient of (w ** 2).sum()
    ...     opt.step()
    ...     sched.step()
    >>> bool((w.abs() < pf.tensor([1.0, 2.0])).all().item())
    True
"""

from . import lr_scheduler
from .adam import Adam, AdamW
from .lr_scheduler import (
    CosineAnnealingLR,
    ExponentialLR,
    LinearLR,
    LRScheduler,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    ReduceLROnPlateau,
    StepLR,
)
from .optimizer import Optimizer
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = [
    "Optimizer",
    "SGD",
    "Adam",
    "AdamW",
    "RMSprop",
    "lr_scheduler",
    "LRScheduler",
    "StepLR",
    "MultiStepLR",
    "ExponentialLR",
    "CosineAnnealingLR",
    "LinearLR",
    "PolynomialLR",
    "OneCycleLR",
    "ReduceLROnPlateau",
]
