"""Padding, convolution and pooling functions (re-exported by :mod:`pyflame.nn.functional`).

Convolution and pooling call the compiled kernels ``pyflame._core.conv2d``, ``max_pool2d``,
``avg_pool2d`` and ``adaptive_avg_pool2d`` when the extension provides them. Builds without
those kernels fall back to a composition of differentiable tensor ops (strided slicing, stacking
and a batched matmul): slower, but with the same results and gradients as PyTorch (max pooling
sends the gradient to the first maximum of each window, like PyTorch).

Example:
    >>> import pyflame as pf
    >>> from pyflame.nn import functional as F
    >>> x = pf.ones([1, 1, 4, 4])
    >>> F.conv2d(x, pf.ones([2, 1, 3, 3]), padding=1).shape
    [1, 2, 4, 4]
    >>> F.max_pool2d(x, 2).shape
    [1, 1, 2, 2]
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple, Union

import numpy as np

import pyflame as pf

from . import _helpers
from ._helpers import kernel, pair

__all__ = [
    "pad",
    "conv1d",
    "conv2d",
    "max_pool1d",
    "max_pool2d",
    "avg_pool1d",
    "avg_pool2d",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
]

IntOrPair = Union[int, Tuple[int, int], Sequence[int]]


# ---------------------------------------------------------------------- padding
def _take(x: pf.Tensor, dim: int, index: Union[slice, pf.Tensor]) -> pf.Tensor:
    return x[(slice(None),) * dim + (index,)]


def pad(
    input: pf.Tensor, pad: Sequence[int], mode: str = "constant", value: Optional[float] = None
) -> pf.Tensor:  # noqa: A002
    """Pads (or, with negative amounts, crops) the last dimensions of `input`.

    `pad` lists ``(left, right)`` amounts starting from the last dimension:
    ``(l_last, r_last, l_prev, r_prev, ...)``. Modes: ``"constant"`` (with `value`, default 0),
    ``"reflect"``, ``"replicate"`` and ``"circular"``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.pad(pf.ones([1, 2]), (1, 2)).tolist()
        [[0.0, 1.0, 1.0, 0.0, 0.0]]
        >>> F.pad(pf.tensor([[1.0, 2.0, 3.0]]), (2, 1), mode="reflect").tolist()
        [[3.0, 2.0, 1.0, 2.0, 3.0, 2.0]]
    """
    pads = [int(p) for p in pad]
    if len(pads) % 2 != 0:
        raise ValueError("Padding length must be divisible by 2")
    if len(pads) // 2 > input.ndim:
        raise ValueError(
            "Padding length should be less than or equal to two times the input dimension"
        )
    if mode not in ("constant", "reflect", "replicate", "circular"):
        raise NotImplementedError(f"padding mode {mode!r} is not supported")
    if mode != "constant" and value not in (None, 0, 0.0):
        raise ValueError(f"Padding mode {mode!r} doesn't take in value argument")
    fill = 0.0 if value is None else value
    x = input
    for k in range(len(pads) // 2):
        dim = input.ndim - 1 - k
        left, right = pads[2 * k], pads[2 * k + 1]
        if left == 0 and right == 0:
            continue
        n = x.shape[dim]
        if mode == "constant":
            start, stop = max(-left, 0), n - max(-right, 0)
            if start > 0 or stop < n:
                x = _take(x, dim, slice(start, stop))
            parts = []
            for amount in (left, right):
                if amount > 0:
                    shape = list(x.shape)
                    shape[dim] = amount
                    parts.append(pf.full(shape, fill, dtype=x.dtype))
                else:
                    parts.append(None)
            pieces = [p for p in (parts[0], x, parts[1]) if p is not None]
            x = pf.cat(pieces, dim) if len(pieces) > 1 else x
            continue
        idx = np.arange(-left, n + right)
        if mode == "reflect":
            if left >= n or right >= n:
                raise ValueError(
                    f"Padding size should be less than the corresponding input dimension, but got: "
                    f"padding ({left}, {right}) at dimension {dim} of input {list(input.shape)}"
                )
            period = 2 * (n - 1) if n > 1 else 1
            idx = np.abs(idx) % period if n > 1 else np.zeros_like(idx)
            idx = np.where(idx >= n, period - idx, idx)
        elif mode == "replicate":
            idx = np.clip(idx, 0, n - 1)
        else:  # circular
            if left > n or right > n:
                raise ValueError("Padding value causes wrapping around more than once.")
            idx = idx % n
        x = _take(x, dim, pf.tensor(idx.astype(np.int64)))
    return x


# ---------------------------------------------------------------------- convolution
def _batched(x: pf.Tensor, dims: int, name: str) -> Tuple[pf.Tensor, bool]:
    if x.ndim == dims + 1:
        return x.unsqueeze(0), True
    if x.ndim != dims + 2:
        raise ValueError(
            f"{name}: expected a {dims + 1}D (unbatched) or {dims + 2}D (batched) input, "
            f"got input of shape {list(x.shape)}"
        )
    return x, False


def _conv2d_fallback(
    x: pf.Tensor,
    w: pf.Tensor,
    b: Optional[pf.Tensor],
    stride: Tuple[int, int],
    padding: Tuple[int, int],
    dilation: Tuple[int, int],
    groups: int,
) -> pf.Tensor:
    if padding != (0, 0):
        x = pad(x, (padding[1], padding[1], padding[0], padding[0]))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh = (h - dilation[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (wd - dilation[1] * (kw - 1) - 1) // stride[1] + 1
    cols = [
        x[
            :,
            :,
            i * dilation[0] : i * dilation[0] + stride[0] * (oh - 1) + 1 : stride[0],
            j * dilation[1] : j * dilation[1] + stride[1] * (ow - 1) + 1 : stride[1],
        ]
        for i in range(kh)
        for j in range(kw)
    ]
    patches = pf.stack(cols, 2).reshape(n, groups, cg * kh * kw, oh * ow)
    out = w.reshape(groups, o // groups, cg * kh * kw) @ patches
    out = out.reshape(n, o, oh, ow)
    if b is not None:
        out = out + b.reshape(1, o, 1, 1)
    return out


def conv2d(
    input: pf.Tensor,  # noqa: A002 - PyTorch's name
    weight: pf.Tensor,
    bias: Optional[pf.Tensor] = None,
    stride: IntOrPair = 1,
    padding: Union[IntOrPair, str] = 0,
    dilation: IntOrPair = 1,
    groups: int = 1,
) -> pf.Tensor:
    """2-D convolution (cross-correlation) of ``[N, C, H, W]`` (or ``[C, H, W]``) input.

    `padding` is an int, a pair, ``"valid"`` (no padding) or ``"same"`` (output as large as
    the input; stride 1 only; an odd total padding puts the extra row/column at the end).

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.conv2d(pf.ones([2, 4, 5, 5]), pf.ones([6, 2, 3, 3]), groups=2, padding="same").shape
        [2, 6, 5, 5]
    """
    x, unbatched = _batched(input, 2, "conv2d")
    if weight.ndim != 4:
        raise ValueError(
            f"conv2d: expected a 4D weight [out, in/groups, kh, kw], got {list(weight.shape)}"
        )
    stride_, dilation_ = pair(stride, "stride"), pair(dilation, "dilation")
    groups = int(groups)
    if groups < 1:
        raise ValueError("non-positive groups is not supported")
    if min(stride_) < 1 or min(dilation_) < 1:
        raise ValueError(f"conv2d: stride {stride_} and dilation {dilation_} must be positive")
    o, cg, kh, kw = weight.shape
    if x.shape[1] != cg * groups:
        raise ValueError(
            f"Given groups={groups}, weight of size {list(weight.shape)}, expected input"
            f"{list(x.shape)} to have {cg * groups} channels, but got {x.shape[1]} channels instead"
        )
    if o % groups != 0:
        raise ValueError(f"out_channels ({o}) must be divisible by groups ({groups})")
    if bias is not None and list(bias.shape) != [o]:
        raise ValueError(f"conv2d: expected bias of shape [{o}], got {list(bias.shape)}")
    if isinstance(padding, str):
        if padding == "valid":
            padding_ = (0, 0)
        elif padding == "same":
            if stride_ != (1, 1):
                raise ValueError("padding='same' is not supported for strided convolutions")
            total = [d * (k - 1) for d, k in zip(dilation_, (kh, kw))]
            padding_ = (total[0] // 2, total[1] // 2)
            extra = [t - 2 * p for t, p in zip(total, padding_)]
            if any(extra):
                x = pad(x, (0, extra[1], 0, extra[0]))
        else:
            raise ValueError(
                f"Invalid padding string {padding!r}, should be one of {{'valid', 'same'}}"
            )
    else:
        padding_ = pair(padding, "padding")
        if min(padding_) < 0:
            raise ValueError("negative padding is not supported")
    for i, name in ((2, "height"), (3, "width")):
        size = x.shape[i] + 2 * padding_[i - 2]
        if size < dilation_[i - 2] * (weight.shape[i] - 1) + 1:
            raise ValueError(
                f"conv2d: input {name} ({size} after padding) is smaller than the effective "
                f"kernel size ({dilation_[i - 2] * (weight.shape[i] - 1) + 1})"
            )
    if _helpers.has_kernel("conv2d"):
        out = kernel("conv2d")(x, weight, bias, stride_, padding_, dilation_, groups)
    else:
        out = _conv2d_fallback(x, weight, bias, stride_, padding_, dilation_, groups)
    return out.squeeze(0) if unbatched else out


def conv1d(
    input: pf.Tensor,  # noqa: A002 - PyTorch's name
    weight: pf.Tensor,
    bias: Optional[pf.Tensor] = None,
    stride: Union[int, Sequence[int]] = 1,
    padding: Union[int, Sequence[int], str] = 0,
    dilation: Union[int, Sequence[int]] = 1,
    groups: int = 1,
) -> pf.Tensor:
    """1-D convolution of ``[N, C, L]`` (or ``[C, L]``) input; runs as a 2-D convolution with a
    unit height.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.conv1d(pf.ones([2, 3, 10]), pf.ones([4, 3, 3]), stride=2).shape
        [2, 4, 4]
    """
    x, unbatched = _batched(input, 1, "conv1d")
    if weight.ndim != 3:
        raise ValueError(
            f"conv1d: expected a 3D weight [out, in/groups, k], got {list(weight.shape)}"
        )
    s = _helpers.single(stride, "stride")[0]
    d = _helpers.single(dilation, "dilation")[0]
    p: Union[str, Tuple[int, int]]
    p = padding if isinstance(padding, str) else (0, _helpers.single(padding, "padding")[0])
    out = conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, s), p, (1, d), groups).squeeze(2)
    return out.squeeze(0) if unbatched else out


# ---------------------------------------------------------------------- pooling
def _pool_out(size: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    num = size + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= size + p:
        out -= 1
    return out


def _pool_args(
    name: str,
    x: pf.Tensor,
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair],
    padding: IntOrPair,
    dilation: IntOrPair,
    ceil_mode: bool,
) -> Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int], Tuple[int, int], List[int]]:
    k = pair(kernel_size, "kernel_size")
    s = (
        k
        if stride is None or (not isinstance(stride, int) and len(stride) == 0)
        else pair(stride, "stride")
    )
    p, d = pair(padding, "padding"), pair(dilation, "dilation")
    if min(k) < 1 or min(s) < 1 or min(d) < 1:
        raise ValueError(f"{name}: kernel_size, stride and dilation must be positive")
    if p[0] > k[0] // 2 or p[1] > k[1] // 2 or min(p) < 0:
        raise ValueError(
            f"{name}: pad should be at most half of effective kernel size, but got pad={p}, "
            f"kernel_size={k}"
        )
    out = [_pool_out(x.shape[2 + i], k[i], s[i], p[i], d[i], ceil_mode) for i in range(2)]
    if min(out) < 1:
        raise ValueError(
            f"{name}: given input size {list(x.shape[1:])}, the calculated output size "
            f"{[x.shape[1]] + out} is too small"
        )
    return k, s, p, d, out


def _windows(
    x: pf.Tensor, k: Tuple[int, int], s: Tuple[int, int], d: Tuple[int, int], out: List[int]
) -> List[pf.Tensor]:
    return [
        x[
            :,
            :,
            i * d[0] : i * d[0] + s[0] * (out[0] - 1) + 1 : s[0],
            j * d[1] : j * d[1] + s[1] * (out[1] - 1) + 1 : s[1],
        ]
        for i in range(k[0])
        for j in range(k[1])
    ]


def _pad_for_pool(
    x: pf.Tensor,
    k: Tuple[int, int],
    s: Tuple[int, int],
    p: Tuple[int, int],
    d: Tuple[int, int],
    out: List[int],
    value: float,
) -> pf.Tensor:
    rights = [
        max((out[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 - x.shape[2 + i] - p[i], 0)
        for i in range(2)
    ]
    if p == (0, 0) and rights == [0, 0]:
        return x
    return pad(x, (p[1], rights[1], p[0], rights[0]), value=value)


def max_pool2d(
    input: pf.Tensor,  # noqa: A002 - PyTorch's name
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    dilation: IntOrPair = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> pf.Tensor:
    """2-D max pooling of ``[N, C, H, W]`` (or ``[C, H, W]``) input; `stride` defaults to
    `kernel_size`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.max_pool2d(pf.arange(16.0).reshape(1, 1, 4, 4), 2).reshape(-1).tolist()
        [5.0, 7.0, 13.0, 15.0]
    """
    if return_indices:
        raise NotImplementedError("max_pool2d(return_indices=True) is not supported by PyFlame")
    x, unbatched = _batched(input, 2, "max_pool2d")
    k, s, p, d, out_hw = _pool_args(
        "max_pool2d", x, kernel_size, stride, padding, dilation, ceil_mode
    )
    if _helpers.has_kernel("max_pool2d"):
        out = kernel("max_pool2d")(x, k, s, p, d, bool(ceil_mode))
    else:
        xp = _pad_for_pool(x, k, s, p, d, out_hw, float("-inf"))
        wins = _windows(xp, k, s, d, out_hw)
        out = wins[0]
        for w in wins[1:]:
            # Strict '>' keeps the first maximum, so the gradient goes where PyTorch sends it.
            out = pf.where(w > out, w, out)
    return out.squeeze(0) if unbatched else out


def avg_pool2d(
    input: pf.Tensor,  # noqa: A002 - PyTorch's name
    kernel_size: IntOrPair,
    stride: Optional[IntOrPair] = None,
    padding: IntOrPair = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: Optional[int] = None,
) -> pf.Tensor:
    """2-D average pooling of ``[N, C, H, W]`` (or ``[C, H, W]``) input.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.avg_pool2d(pf.arange(16.0).reshape(1, 1, 4, 4), 2).reshape(-1).tolist()
        [2.5, 4.5, 10.5, 12.5]
    """
    x, unbatched = _batched(input, 2, "avg_pool2d")
    k, s, p, d, out_hw = _pool_args("avg_pool2d", x, kernel_size, stride, padding, 1, ceil_mode)
    if divisor_override is not None and int(divisor_override) == 0:
        raise ValueError("divisor must be not zero")
    if _helpers.has_kernel("avg_pool2d") and divisor_override is None:
        out = kernel("avg_pool2d")(x, k, s, p, bool(ceil_mode), bool(count_include_pad))
    else:
        xp = _pad_for_pool(x, k, s, p, d, out_hw, 0.0)
        wins = _windows(xp, k, s, d, out_hw)
        total = wins[0]
        for w in wins[1:]:
            total = total + w
        if divisor_override is not None:
            return _unbatch(total / float(divisor_override), unbatched)
        div = np.empty(out_hw, dtype=np.float64)
        h, w_ = x.shape[2], x.shape[3]
        for i in range(out_hw[0]):
            hs = i * s[0] - p[0]
            he = min(hs + k[0], h + p[0])
            for j in range(out_hw[1]):
                ws = j * s[1] - p[1]
                we = min(ws + k[1], w_ + p[1])
                if count_include_pad:
                    div[i, j] = (he - hs) * (we - ws)
                else:
                    div[i, j] = (min(he, h) - max(hs, 0)) * (min(we, w_) - max(ws, 0))
        out = total / pf.tensor(div).astype(x.dtype)
    return out.squeeze(0) if unbatched else out


def _unbatch(x: pf.Tensor, unbatched: bool) -> pf.Tensor:
    return x.squeeze(0) if unbatched else x


def _adaptive_size(output_size: Any, in_hw: Sequence[int]) -> Tuple[int, int]:
    if isinstance(output_size, int) or output_size is None:
        output_size = (output_size, output_size)
    sizes = list(output_size)
    if len(sizes) == 1:
        sizes = sizes * 2
    if len(sizes) != 2:
        raise ValueError(
            f"adaptive_avg_pool2d: output_size must be an int or a pair, got {output_size!r}"
        )
    out = tuple(int(in_hw[i]) if sizes[i] is None else int(sizes[i]) for i in range(2))
    if min(out) < 1:
        raise ValueError(f"adaptive_avg_pool2d: output_size must be positive, got {output_size!r}")
    return out  # type: ignore[return-value]


def adaptive_avg_pool2d(input: pf.Tensor, output_size: Any) -> pf.Tensor:  # noqa: A002
    """Average pooling to a fixed output size ``(oh, ow)`` (an int means square; ``None``
    keeps that input dimension). Window ``i`` covers ``[floor(i*H/oh), ceil((i+1)*H/oh))``.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.adaptive_avg_pool2d(pf.ones([2, 3, 7, 5]), (1, 1)).shape
        [2, 3, 1, 1]
    """
    x, unbatched = _batched(input, 2, "adaptive_avg_pool2d")
    n, c, h, w = x.shape
    oh, ow = _adaptive_size(output_size, (h, w))
    if (oh, ow) == (1, 1):
        out = x.mean((2, 3), keepdim=True)
    elif h % oh == 0 and w % ow == 0:
        out = x.reshape(n, c, oh, h // oh, ow, w // ow).mean((3, 5))
    elif _helpers.has_kernel("adaptive_avg_pool2d"):
        out = kernel("adaptive_avg_pool2d")(x, (oh, ow))
    else:
        cells = []
        for i in range(oh):
            hs, he = (i * h) // oh, -((-(i + 1) * h) // oh)
            for j in range(ow):
                ws, we = (j * w) // ow, -((-(j + 1) * w) // ow)
                cells.append(x[:, :, hs:he, ws:we].mean((2, 3)))
        out = pf.stack(cells, 2).reshape(n, c, oh, ow)
    return out.squeeze(0) if unbatched else out


def _to_2d(x: pf.Tensor, name: str) -> Tuple[pf.Tensor, bool]:
    if x.ndim not in (2, 3):
        raise ValueError(
            f"{name}: expected a 2D (unbatched) or 3D (batched) input, got {list(x.shape)}"
        )
    return (x.unsqueeze(1) if x.ndim == 2 else x.unsqueeze(2)), x.ndim == 2


def _from_2d(x: pf.Tensor, unbatched: bool) -> pf.Tensor:
    return x.squeeze(1) if unbatched else x.squeeze(2)


def max_pool1d(
    input: pf.Tensor,  # noqa: A002 - PyTorch's name
    kernel_size: Union[int, Sequence[int]],
    stride: Optional[Union[int, Sequence[int]]] = None,
    padding: Union[int, Sequence[int]] = 0,
    dilation: Union[int, Sequence[int]] = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> pf.Tensor:
    """1-D max pooling of ``[N, C, L]`` (or ``[C, L]``) input.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.max_pool1d(pf.arange(6.0).reshape(1, 1, 6), 2).tolist()
        [[[1.0, 3.0, 5.0]]]
    """
    x, unbatched = _to_2d(input, "max_pool1d")
    k = _helpers.single(kernel_size, "kernel_size")[0]
    s = k if stride is None else _helpers.single(stride, "stride")[0]
    p = _helpers.single(padding, "padding")[0]
    d = _helpers.single(dilation, "dilation")[0]
    out = max_pool2d(x, (1, k), (1, s), (0, p), (1, d), ceil_mode, return_indices)
    return _from_2d(out, unbatched)


def avg_pool1d(
    input: pf.Tensor,  # noqa: A002 - PyTorch's name
    kernel_size: Union[int, Sequence[int]],
    stride: Optional[Union[int, Sequence[int]]] = None,
    padding: Union[int, Sequence[int]] = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
) -> pf.Tensor:
    """1-D average pooling of ``[N, C, L]`` (or ``[C, L]``) input.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.avg_pool1d(pf.arange(6.0).reshape(1, 1, 6), 3).tolist()
        [[[1.0, 4.0]]]
    """
    x, unbatched = _to_2d(input, "avg_pool1d")
    k = _helpers.single(kernel_size, "kernel_size")[0]
    s = k if stride is None else _helpers.single(stride, "stride")[0]
    p = _helpers.single(padding, "padding")[0]
    out = avg_pool2d(x, (1, k), (1, s), (0, p), ceil_mode, count_include_pad)
    return _from_2d(out, unbatched)


def adaptive_avg_pool1d(input: pf.Tensor, output_size: Union[int, Sequence[int]]) -> pf.Tensor:  # noqa: A002
    """Average pooling of ``[N, C, L]`` input to a fixed length.

    Example:
        >>> import pyflame as pf
        >>> from pyflame.nn import functional as F
        >>> F.adaptive_avg_pool1d(pf.arange(6.0).reshape(1, 1, 6), 2).tolist()
        [[[1.0, 4.0]]]
    """
    x, unbatched = _to_2d(input, "adaptive_avg_pool1d")
    size = _helpers.single(output_size, "output_size")[0]
    return _from_2d(adaptive_avg_pool2d(x, (1, size)), unbatched)
