"""Functional forms of the ``pyflame.nn`` layers, activations and losses (``torch.nn.functional``
semantics), built from differentiable PyFlame ops; the lazy executor fuses the elementwise parts.

Example:
    >>> import pyflame as pf
    >>> from pyflame.nn import functional as F
    >>> x = pf.tensor([[-1.0, 0.5, 2.0]])
    >>> F.relu(x).tolist()
    [[0.0, 0.5, 2.0]]
    >>> round(F.cross_entropy(x, pf.tensor([2])).item(), 4)
    0.2413
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Optional, Sequence

import pyflame as pf

from ._attention_fn import multi_head_attention_forward, scaled_dot_product_attention
from ._helpers import is_floating, normalize_dim, numel, set_data
from ._losses import (
    bce_loss,
    bce_with_logits,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cross_entropy,
    huber_loss,
    kl_div,
    l1_loss,
    mse_loss,
    nll_loss,
    smooth_l1_loss,
)
from ._norm_fn import batch_norm, group_norm, layer_norm, rms_norm
from ._spatial import (
    adaptive_avg_pool1d,
    adaptive_avg_pool2d,
    avg_pool1d,
    avg_pool2d,
    conv1d,
    conv2d,
    max_pool1d,
    max_pool2d,
    pad,
)

__all__ = [
    # activations
    "relu",
    "relu6",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "mish",
    "sigmoid",
    "tanh",
    "softplus",
    "softsign",
    "hardtanh",
    "hardsigmoid",
    "hardswish",
    "logsigmoid",
    "threshold",
    "glu",
    "softmax",
    "softmin",
    "log_softmax",
    "normalize",
    "cosine_similarity",
    # layers
    "linear",
    "conv1d",
    "conv2d",
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "dropout",
    "dropout1d",
    "dropout2d",
    "batch_norm",
    "layer_norm",
    "group_norm",
    "rms_norm",
    "embedding",
    "one_hot",
    "pad",
    "scaled_dot_product_attention",
    "multi_head_attention_forward",
    # losses
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


# ---------------------------------------------------------------------- activations
def relu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002 - PyTorch's name
    """``max(x, 0)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.relu(pf.tensor([-1.0, 2.0])).tolist()
        [0.0, 2.0]
    """
    return pf.relu(input)


def relu6(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``min(max(x, 0), 6)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.relu6(pf.tensor([-1.0, 7.0])).tolist()
        [0.0, 6.0]
    """
    return pf.clamp(input, 0.0, 6.0)


def leaky_relu(input: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where positive, ``negative_slope * x`` elsewhere.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.leaky_relu(pf.tensor([-2.0, 3.0]), 0.5).tolist()
        [-1.0, 3.0]
    """
    return pf.where(input > 0, input, input * negative_slope)


def elu(input: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.elu(pf.tensor([0.0, 1.0])).tolist()
        [0.0, 1.0]
    """
    neg = (pf.exp(pf.minimum(input, pf.zeros_like(input))) - 1.0) * alpha
    return pf.where(input > 0, input, neg)


def selu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """Scaled ELU with PyTorch's constants.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> round(F.selu(pf.tensor([1.0])).item(), 4)
        1.0507
    """
    return elu(input, 1.6732632423543772848170429916717) * 1.0507009873554804934193349852946


def gelu(input: Tensor, approximate: str = "none") -> Tensor:  # noqa: A002
    """Gaussian error linear unit (exact ``"none"`` or ``"tanh"`` approximation).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> round(F.gelu(pf.tensor([1.0])).item(), 4)
        0.8413
    """
    if approximate not in ("none", "tanh"):
        raise ValueError(f"approximate argument must be either none or tanh, got {approximate!r}")
    return pf.gelu(input, approximate=approximate)


def silu(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * sigmoid(x)`` (swish).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.silu(pf.tensor([0.0])).tolist()
        [0.0]
    """
    return pf.silu(input)


def _softplus_stable(z: Tensor) -> Tensor:
    return pf.relu(z) + pf.log(pf.exp(-pf.abs(z)) + 1.0)


def softplus(input: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:  # noqa: A002
    """``log(1 + exp(beta * x)) / beta``, linear above ``threshold`` (like PyTorch).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> round(F.softplus(pf.tensor([0.0])).item(), 4)
        0.6931
    """
    z = input * beta
    soft = _softplus_stable(z) / beta if beta != 1 else _softplus_stable(z)
    return pf.where(z > threshold, input, soft)


def mish(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * tanh(softplus(x))``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> round(F.mish(pf.tensor([1.0])).item(), 4)
        0.8651
    """
    return input * pf.tanh(softplus(input))


def sigmoid(input: Tensor) -> Tensor:  # noqa: A002
    """``1 / (1 + exp(-x))``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.sigmoid(pf.tensor([0.0])).tolist()
        [0.5]
    """
    return pf.sigmoid(input)


def tanh(input: Tensor) -> Tensor:  # noqa: A002
    """Hyperbolic tangent.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.tanh(pf.tensor([0.0])).tolist()
        [0.0]
    """
    return pf.tanh(input)


def softsign(input: Tensor) -> Tensor:  # noqa: A002
    """``x / (1 + |x|)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.softsign(pf.tensor([1.0])).tolist()
        [0.5]
    """
    return input / (pf.abs(input) + 1.0)


def hardtanh(
    input: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False
) -> Tensor:  # noqa: A002
    """Clamps to ``[min_val, max_val]``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.hardtanh(pf.tensor([-3.0, 0.5, 3.0])).tolist()
        [-1.0, 0.5, 1.0]
    """
    if max_val < min_val:
        raise ValueError("min_val cannot be greater than max_val")
    return pf.clamp(input, min_val, max_val)


def hardsigmoid(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``relu6(x + 3) / 6``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.hardsigmoid(pf.tensor([0.0, 4.0])).tolist()
        [0.5, 1.0]
    """
    return pf.clamp(input + 3.0, 0.0, 6.0) / 6.0


def hardswish(input: Tensor, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x * relu6(x + 3) / 6``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.hardswish(pf.tensor([-4.0, 4.0])).tolist()
        [-0.0, 4.0]
    """
    return input * hardsigmoid(input)


def logsigmoid(input: Tensor) -> Tensor:  # noqa: A002
    """``log(sigmoid(x))``, computed stably.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> round(F.logsigmoid(pf.tensor([0.0])).item(), 4)
        -0.6931
    """
    return pf.minimum(input, pf.zeros_like(input)) - pf.log(pf.exp(-pf.abs(input)) + 1.0)


def threshold(input: Tensor, threshold: float, value: float, inplace: bool = False) -> Tensor:  # noqa: A002
    """``x`` where ``x > threshold``, else `value`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.threshold(pf.tensor([0.5, 2.0]), 1.0, -1.0).tolist()
        [-1.0, 2.0]
    """
    return pf.where(input > threshold, input, pf.full_like(input, value))


def glu(input: Tensor, dim: int = -1) -> Tensor:  # noqa: A002
    """Gated linear unit: splits `dim` in halves ``a, b`` and returns ``a * sigmoid(b)``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.glu(pf.ones([2, 4])).shape
        [2, 2]
    """
    d = normalize_dim(dim, input.ndim)
    if input.shape[d] % 2 != 0:
        raise ValueError(
            f"Halving dimension must be even, but dimension {d} is size {input.shape[d]}"
        )
    a, b = pf.chunk(input, 2, d)
    return a * pf.sigmoid(b)


def _softmax_dim(name: str, ndim: int) -> int:
    warnings.warn(
        f"Implicit dimension choice for {name} has been deprecated. "
        "Change the call to include dim=X as an argument.",
        stacklevel=3,
    )
    return 0 if ndim in (0, 1, 3) else 1


def _cast(x: Tensor, dtype: Any) -> Tensor:
    return x if dtype is None else x.astype(dtype)


def softmax(input: Tensor, dim: Optional[int] = None, dtype: Any = None) -> Tensor:  # noqa: A002
    """Softmax along `dim` (PyTorch's legacy choice of dim, with a warning, when omitted).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.softmax(pf.zeros([1, 2]), dim=1).tolist()
        [[0.5, 0.5]]
    """
    if dim is None:
        dim = _softmax_dim("softmax", input.ndim)
    return pf.softmax(_cast(input, dtype), dim)


def softmin(input: Tensor, dim: Optional[int] = None, dtype: Any = None) -> Tensor:  # noqa: A002
    """``softmax(-x)`` along `dim`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.softmin(pf.zeros([1, 2]), dim=1).tolist()
        [[0.5, 0.5]]
    """
    if dim is None:
        dim = _softmax_dim("softmin", input.ndim)
    return pf.softmax(-_cast(input, dtype), dim)


def log_softmax(input: Tensor, dim: Optional[int] = None, dtype: Any = None) -> Tensor:  # noqa: A002
    """``log(softmax(x))`` along `dim`, computed stably.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> round(F.log_softmax(pf.zeros([1, 2]), dim=1)[0, 0].item(), 4)
        -0.6931
    """
    if dim is None:
        dim = _softmax_dim("log_softmax", input.ndim)
    return pf.log_softmax(_cast(input, dtype), dim)


def normalize(input: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:  # noqa: A002
    """Divides by the `p`-norm along `dim` (at least `eps`).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.normalize(pf.tensor([[3.0, 4.0]])).tolist()
        [[0.6000000238418579, 0.800000011920929]]
    """
    norm = _pnorm(input, p, dim)
    return input / pf.clamp(norm, min=eps)


def _pnorm(x: Tensor, p: float, dim: int) -> Tensor:
    if math.isinf(p):
        return pf.abs(x).amax(dim, keepdim=True) if p > 0 else pf.abs(x).amin(dim, keepdim=True)
    if p == 2:
        return pf.sqrt((x * x).sum(dim, keepdim=True))
    if p == 1:
        return pf.abs(x).sum(dim, keepdim=True)
    return (pf.abs(x) ** p).sum(dim, keepdim=True) ** (1.0 / p)


def cosine_similarity(x1: Tensor, x2: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Cosine of the angle between `x1` and `x2` along `dim`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.cosine_similarity(pf.tensor([[1.0, 0.0]]), pf.tensor([[2.0, 0.0]])).tolist()
        [1.0]
    """
    n1 = pf.clamp(pf.sqrt((x1 * x1).sum(dim)), min=eps)
    n2 = pf.clamp(pf.sqrt((x2 * x2).sum(dim)), min=eps)
    return (x1 * x2).sum(dim) / (n1 * n2)


# ---------------------------------------------------------------------- linear
def linear(input: Tensor, weight: Tensor, bias: Optional[Tensor] = None) -> Tensor:  # noqa: A002
    """``x @ weight.T + bias`` for `weight` of shape ``[out, in]``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.linear(pf.ones([5, 3]), pf.ones([2, 3]), pf.zeros([2])).shape
        [5, 2]
    """
    if input.shape[-1] != weight.shape[-1]:
        raise ValueError(
            "mat1 and mat2 shapes cannot be multiplied "
            f"({input.shape[-2] if input.ndim > 1 else 1}x"
            f"{input.shape[-1]} and {weight.shape[-1]}x{weight.shape[0]})"
        )
    out = input @ weight.transpose(0, 1) if weight.ndim == 2 else input @ weight
    return out if bias is None else out + bias


# ---------------------------------------------------------------------- dropout
def _check_p(p: float) -> None:
    if p < 0.0 or p > 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")


def _keep_mask(shape: Sequence[int], p: float, dtype: Any) -> Tensor:
    keep = pf.rand(list(shape)) >= p
    return keep.astype(dtype) * (1.0 / (1.0 - p))


def dropout(input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:  # noqa: A002
    """Zeroes elements with probability `p` (``pf.rand`` masks, seeded by ``pf.manual_seed``)
    and scales the rest by ``1 / (1 - p)``; the identity when not `training`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.dropout(pf.ones([4]), 0.5, training=False).tolist()
        [1.0, 1.0, 1.0, 1.0]
    """
    _check_p(p)
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    return input * _keep_mask(input.shape, p, input.dtype)


def _feature_dropout(
    input: Tensor, p: float, training: bool, batched_ndim: int, name: str
) -> Tensor:  # noqa: A002
    _check_p(p)
    if input.ndim not in (batched_ndim - 1, batched_ndim) and not (
        name == "dropout2d" and input.ndim == 3
    ):
        raise ValueError(
            f"{name}: expected {batched_ndim - 1}D or {batched_ndim}D input, got {input.ndim}D"
        )
    if not training or p == 0.0:
        return input
    if p == 1.0:
        return input * 0.0
    unbatched = input.ndim == batched_ndim - 1 and name != "dropout2d"
    x = input.unsqueeze(0) if unbatched else input
    mask_shape = list(x.shape[:2]) + [1] * (x.ndim - 2)
    out = x * _keep_mask(mask_shape, p, x.dtype)
    return out.squeeze(0) if unbatched else out


def dropout1d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:  # noqa: A002
    """Zeroes whole channels of ``[N, C, L]`` (or ``[C, L]``) input with probability `p`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.dropout1d(pf.ones([2, 3, 4]), training=False).shape
        [2, 3, 4]
    """
    return _feature_dropout(input, p, training, 3, "dropout1d")


def dropout2d(
    input: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False
) -> Tensor:  # noqa: A002
    """Zeroes whole channels of ``[N, C, H, W]`` input with probability `p` (a 3-D input is
    read as ``[N, C, L]``, like PyTorch).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.dropout2d(pf.ones([2, 3, 4, 4]), 0.0).shape
        [2, 3, 4, 4]
    """
    return _feature_dropout(input, p, training, 4, "dropout2d")


# ---------------------------------------------------------------------- embedding
def _check_indices(x: Tensor, what: str) -> None:
    if is_floating(x) or x.dtype == pf.bool_:
        raise TypeError(f"{what}: expected an integer index tensor, got {x.dtype.name}")


def embedding(
    input: Tensor,  # noqa: A002 - PyTorch's name
    weight: Tensor,
    padding_idx: Optional[int] = None,
    max_norm: Optional[float] = None,
    norm_type: float = 2.0,
    scale_grad_by_freq: bool = False,
    sparse: bool = False,
) -> Tensor:
    """Looks up rows of `weight` (``[num_embeddings, dim]``) for integer indices `input`.

    ``padding_idx``'s row receives no gradient; ``max_norm`` renormalizes (in place) the looked-up
    rows whose norm exceeds it; ``scale_grad_by_freq`` divides gradients by index frequency in
    the batch. The gradient is dense (``sparse=True`` is rejected).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.embedding(pf.tensor([[0, 2]]), pf.eye(3)).tolist()
        [[[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]]
    """
    _check_indices(input, "embedding")
    if sparse:
        raise NotImplementedError(
            "sparse embedding gradients are not supported by PyFlame; use sparse=False"
        )
    v = weight.shape[0]
    if padding_idx is not None:
        if not -v <= padding_idx < v:
            raise ValueError("Padding_idx must be within num_embeddings")
        padding_idx = padding_idx % v
    if max_norm is not None:
        _embedding_renorm_(weight, input, float(max_norm), float(norm_type))
    out = weight[input]
    if padding_idx is not None:
        keep = (input != padding_idx).unsqueeze(-1)
        out = pf.where(keep, out, out.detach())
    if scale_grad_by_freq:
        flat = input.reshape(-1, 1)
        counts = (flat == pf.arange(v, dtype=input.dtype)).astype(weight.dtype).sum(0)
        s = (1.0 / counts[input]).unsqueeze(-1)
        out = out * s + (out * (1.0 - s)).detach()
    return out


def _embedding_renorm_(weight: Tensor, input: Tensor, max_norm: float, norm_type: float) -> None:  # noqa: A002
    v = weight.shape[0]
    with pf.no_grad():
        used = (input.reshape(-1, 1) == pf.arange(v, dtype=input.dtype)).astype(pf.int32).sum(0) > 0
        norms = _pnorm(weight.detach(), norm_type, 1).reshape(v)
        scale = pf.where(used & (norms > max_norm), max_norm / (norms + 1e-7), pf.ones_like(norms))
        set_data(weight, weight.detach() * scale.unsqueeze(1))


def one_hot(tensor: Tensor, num_classes: int = -1) -> Tensor:
    """int64 one-hot encoding with a new trailing dimension of size `num_classes` (inferred as
    ``max + 1`` when -1).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.one_hot(pf.tensor([0, 2]), 3).tolist()
        [[1, 0, 0], [0, 0, 1]]
    """
    _check_indices(tensor, "one_hot")
    if numel(tensor) == 0:
        if num_classes < 0:
            raise ValueError("Can not infer total number of classes from empty tensor.")
    else:
        lo, hi = int(tensor.min().item()), int(tensor.max().item())
        if lo < 0:
            raise ValueError("Class values must be non-negative.")
        if num_classes < 0:
            num_classes = hi + 1
        elif hi >= num_classes:
            raise ValueError("Class values must be smaller than num_classes.")
    classes = pf.arange(num_classes, dtype=tensor.dtype)
    return (tensor.unsqueeze(-1) == classes).astype(pf.int64)
