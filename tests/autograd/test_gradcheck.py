"""Every vector-Jacobian rule checked against central finite differences in float64."""

from __future__ import annotations

import numpy as np
import pyflame as pf
import pytest


def gradcheck(fn, *arrays, eps=1e-6, rtol=1e-5, atol=1e-7, seed=0):
    """Compares backward() of sum(fn(*xs) * w) with central differences."""
    rng = np.random.default_rng(seed)
    xs = [pf.tensor(a.astype(np.float64)).requires_grad_() for a in arrays]
    out = fn(*xs)
    w = pf.tensor(rng.standard_normal(out.shape))
    (out * w).sum().backward()
    wn = w.numpy()

    def loss(values):
        with pf.no_grad():
            return float((fn(*[pf.tensor(v) for v in values]).numpy() * wn).sum())

    for k, x in enumerate(xs):
        analytic = x.grad.numpy() if x.grad is not None else np.zeros(arrays[k].shape)
        numeric = np.zeros(arrays[k].shape)
        base = [a.astype(np.float64).copy() for a in arrays]
        for idx in np.ndindex(*arrays[k].shape):
            plus = [b.copy() for b in base]
            minus = [b.copy() for b in base]
            plus[k][idx] += eps
            minus[k][idx] -= eps
            numeric[idx] = (loss(plus) - loss(minus)) / (2 * eps)
        np.testing.assert_allclose(analytic, numeric, rtol=rtol, atol=atol, err_msg=f"input {k}")


def rand(*shape, low=-2.0, high=2.0, seed=1):
    return np.random.default_rng(seed + sum(shape)).uniform(low, high, size=shape)


def away_from_zero(*shape, seed=2):
    r = rand(*shape, seed=seed)
    return np.where(np.abs(r) < 0.2, r + 0.5, r)


UNARY = {
    "neg": (pf.neg, rand(3, 4)),
    "abs": (pf.abs, away_from_zero(3, 4)),
    "sqrt": (pf.sqrt, rand(3, 4, low=0.5, high=3.0)),
    "exp": (pf.exp, rand(3, 4)),
    "log": (pf.log, rand(3, 4, low=0.5, high=3.0)),
    "sin": (pf.sin, rand(3, 4)),
    "cos": (pf.cos, rand(3, 4)),
    "tanh": (pf.tanh, rand(3, 4)),
    "sigmoid": (pf.sigmoid, rand(3, 4)),
    "relu": (pf.relu, away_from_zero(3, 4)),
    "gelu": (pf.gelu, rand(3, 4)),
    "gelu_tanh": (lambda x: pf.gelu(x, approximate="tanh"), rand(3, 4)),
    "silu": (pf.silu, rand(3, 4)),
    "erf": (pf.erf, rand(3, 4)),
    "reciprocal": (pf.reciprocal, away_from_zero(3, 4)),
    "square_pow": (lambda x: x**2, rand(3, 4)),
    "clamp": (lambda x: pf.clamp(x, -0.5, 0.7), away_from_zero(3, 4) * 0.9 + 0.05),
    "softmax": (lambda x: pf.softmax(x, dim=-1), rand(3, 4)),
    "softmax_dim0": (lambda x: pf.softmax(x, dim=0), rand(3, 4)),
    "log_softmax": (lambda x: pf.log_softmax(x, dim=1), rand(3, 4)),
    "floor_is_flat": (lambda x: pf.floor(x) * x, away_from_zero(3, 4) + 0.3),
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary(name):
    fn, x = UNARY[name]
    gradcheck(fn, x)


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: pf.abs(a) ** b,
    "maximum": pf.maximum,
    "minimum": pf.minimum,
    "remainder": lambda a, b: a % b,
    "where": lambda a, b: pf.where(a > b, a * 2, b * b),
}


@pytest.mark.parametrize("name", list(BINARY))
@pytest.mark.parametrize(
    "shapes",
    [((3, 4), (3, 4)), ((3, 1), (4,)), ((2, 3, 4), (1, 4))],
    ids=["same", "bcast", "bcast3"],
)
def test_binary(name, shapes):
    a = away_from_zero(*shapes[0], seed=3) + 0.1
    b = away_from_zero(*shapes[1], seed=4) + 0.05
    if name == "remainder":
        b = np.abs(b) + 0.5
    gradcheck(BINARY[name], a, b)


def test_scalars_on_either_side():
    gradcheck(lambda x: 2.0 / x + 3.0 * x - 1.5, away_from_zero(5))


REDUCTIONS = {
    "sum_all": lambda x: x.sum(),
    "sum_dim": lambda x: x.sum(dim=1),
    "sum_keep": lambda x: x.sum(dim=(0, 2), keepdim=True),
    "mean_dim": lambda x: x.mean(dim=-1),
    "mean_nonadjacent": lambda x: x.mean(dim=(0, 2)),
    "max_all": lambda x: x.max(),
    "max_dim": lambda x: x.max(dim=1).values,
    "min_dim_keep": lambda x: x.min(dim=2, keepdim=True).values,
    "amax_tuple": lambda x: x.amax(dim=(1, 2)),
    "prod_dim": lambda x: x.prod(dim=1),
}


@pytest.mark.parametrize("name", list(REDUCTIONS))
def test_reductions(name):
    gradcheck(REDUCTIONS[name], away_from_zero(2, 3, 4, seed=5))


SHAPE_OPS = {
    "reshape": lambda x: x.reshape(4, 6) * pf.arange(6, dtype=pf.float64),
    "transpose": lambda x: x.transpose(0, 2),
    "permute": lambda x: x.permute(2, 0, 1),
    "expand": lambda x: x[:, :1, :].expand(2, 5, 4),
    "squeeze_unsqueeze": lambda x: x[:, :1].squeeze(1).unsqueeze(0),
    "flatten": lambda x: x.flatten(1),
    "slice_steps": lambda x: x[:, 1:, ::2],
    "int_index": lambda x: x[1, -1],
    "tensor_index": lambda x: x[pf.tensor([2, 0, 2])],
    "tensor_index_dim1": lambda x: x[:, pf.tensor([0, 2, 2, 1])],
    "bool_mask": lambda x: x[x > 0.1],
    "cat": lambda x: pf.cat([x, x * 2, x[:, :1]], dim=1),
    "stack": lambda x: pf.stack([x, x * x], dim=-1),
    "split": lambda x: pf.split(x, [1, 2], dim=1)[1] * 3,
    "chunk": lambda x: pf.chunk(x, 2, dim=2)[0] + pf.chunk(x, 2, dim=2)[1],
    "contiguous_T": lambda x: x.transpose(1, 2).contiguous(),
}


@pytest.mark.parametrize("name", list(SHAPE_OPS))
def test_shape_ops(name):
    x = away_from_zero(2, 3, 4, seed=6)
    if name == "tensor_index":
        x = away_from_zero(3, 2, 4, seed=6)
    gradcheck(SHAPE_OPS[name], x)


MATMUL = {
    "2d": ((3, 4), (4, 5)),
    "batched": ((2, 3, 4), (2, 4, 5)),
    "broadcast_batch": ((2, 1, 3, 4), (3, 4, 2)),
    "vec_mat": ((4,), (4, 3)),
    "mat_vec": ((3, 4), (4,)),
    "dot": ((4,), (4,)),
}


@pytest.mark.parametrize("name", list(MATMUL))
def test_matmul(name):
    sa, sb = MATMUL[name]
    gradcheck(lambda a, b: a @ b, rand(*sa, seed=7), rand(*sb, seed=8))


def test_grads_accumulate_and_reuse_is_summed():
    x = pf.tensor([1.0, 2.0, 3.0], dtype=pf.float64).requires_grad_()
    (x * x).sum().backward()
    (x * 3).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.array([1.0, 2.0, 3.0]) + 3)
    y = pf.tensor([2.0], dtype=pf.float64).requires_grad_()
    z = y * y
    (z + z * z).sum().backward()  # d/dy (y^2 + y^4) = 2y + 4y^3
    assert y.grad.item() == pytest.approx(2 * 2 + 4 * 8)


def test_no_grad_and_detach_stop_history():
    x = pf.ones([2]).requires_grad_()
    with pf.no_grad():
        y = x * 2
    assert not y.requires_grad
    assert not x.detach().requires_grad
    assert (x * 2).requires_grad
    with pytest.raises(ValueError, match="does not require grad"):
        y.sum().backward()


def test_backward_needs_gradient_for_non_scalars():
    x = pf.ones([3]).requires_grad_()
    with pytest.raises(ValueError, match="scalar"):
        (x * 2).backward()
    (x * 2).backward(pf.tensor([1.0, 0.0, 2.0]))
    assert x.grad.tolist() == [2.0, 0.0, 4.0]


def test_integer_tensors_cannot_require_grad():
    with pytest.raises(TypeError):
        pf.tensor([1, 2]).requires_grad_()


def test_autograd_grad_leaves_dot_grad_alone():
    x = pf.tensor([3.0]).requires_grad_()
    x.grad = pf.tensor([100.0])
    (g,) = pf.autograd.grad((x**2).sum(), x)
    assert g.item() == pytest.approx(6.0)
    assert x.grad.item() == 100.0


def test_graph_is_released_after_backward():
    x = pf.ones([2]).requires_grad_()
    y = (x * 3).sum()
    y.eval()
    y.backward()
    with pytest.raises(ValueError):
        y.backward()
    y2 = (x * 3).sum()
    y2.eval()
    y2.backward(retain_graph=True)
    y2.backward()
    assert x.grad.tolist() == [9.0, 9.0]


def conv2d_reference(x, w, stride, padding, dilation, groups):
    """Direct NumPy convolution used as the forward reference."""
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    ho = (h + 2 * padding - dilation * (kh - 1) - 1) // stride + 1
    wo = (wd + 2 * padding - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, ho, wo))
    og = o // groups
    for oc in range(o):
        gi = oc // og
        for i in range(ho):
            for j in range(wo):
                patch = xp[
                    :,
                    gi * cg : (gi + 1) * cg,
                    i * stride : i * stride + dilation * (kh - 1) + 1 : dilation,
                    j * stride : j * stride + dilation * (kw - 1) + 1 : dilation,
                ]
                out[:, oc, i, j] = (patch * w[oc]).sum(axis=(1, 2, 3))
    return out


CONV_CASES = {
    "plain": dict(stride=1, padding=0, dilation=1, groups=1),
    "pad_stride": dict(stride=2, padding=1, dilation=1, groups=1),
    "dilated_grouped": dict(stride=1, padding=2, dilation=2, groups=2),
}


@pytest.mark.parametrize("name", list(CONV_CASES))
def test_conv2d_forward_and_gradients(name):
    kw = CONV_CASES[name]
    x = rand(2, 4, 6, 5, seed=9)
    w = rand(4, 4 // kw["groups"], 3, 3, seed=10)
    got = pf._core.conv2d(pf.tensor(x), pf.tensor(w), None, **kw).numpy()
    np.testing.assert_allclose(got, conv2d_reference(x, w, **kw), rtol=1e-10, atol=1e-12)
    gradcheck(lambda a, b: pf._core.conv2d(a, b, None, **kw), x, w)


def test_conv2d_bias_gradient():
    gradcheck(
        lambda x, w, b: pf._core.conv2d(x, w, b, stride=1, padding=1),
        rand(1, 2, 4, 4, seed=11),
        rand(3, 2, 3, 3, seed=12),
        rand(3, seed=13),
    )


POOLS = {
    "max": lambda x: pf._core.max_pool2d(x, 2, 2),
    "max_overlap_pad_ceil": lambda x: pf._core.max_pool2d(x, 3, 2, 1, 1, True),
    "avg": lambda x: pf._core.avg_pool2d(x, 2, 1),
    "avg_pad_exclude": lambda x: pf._core.avg_pool2d(x, 3, 2, 1, True, False),
    "adaptive": lambda x: pf._core.adaptive_avg_pool2d(x, (2, 3)),
}


@pytest.mark.parametrize("name", list(POOLS))
def test_pooling_gradients(name):
    # Distinct values so max pooling has no ties.
    x = np.random.default_rng(14).permutation(2 * 3 * 5 * 6).reshape(2, 3, 5, 6) / 7.0
    gradcheck(POOLS[name], x)


def test_conv_shape_errors_are_clear():
    with pytest.raises(ValueError, match=r"\[2, 3, 5, 5\]"):
        pf._core.conv2d(pf.zeros([2, 3, 5, 5]), pf.zeros([4, 2, 3, 3]))
    with pytest.raises(ValueError):
        pf._core.conv2d(pf.zeros([1, 1, 2, 2]), pf.zeros([1, 1, 3, 3]))
    with pytest.raises(ValueError):
        pf._core.max_pool2d(pf.zeros([1, 1, 4, 4]), 2, 0)


def test_values_after_backward_without_retaining_the_graph():
    # After backward (graph not retained) the executor no longer keeps intermediate values
    # for a later backward pass; values still referenced from Python are kept, the others are
    # recomputed if anything needs them again, and gradients are unchanged.
    rng = np.random.default_rng(3)
    a = rng.standard_normal((4, 5))
    w = rng.standard_normal((5, 3))
    x = pf.tensor(a, requires_grad=True)
    wt = pf.tensor(w, requires_grad=True)
    hidden = pf.relu(x @ wt)  # held: its value is kept
    pre = x @ wt + 1.0  # held but lazy
    loss = (pf.relu(pre) * hidden).sum()
    loss.backward()
    pf.eval(x.grad, wt.grad)
    h = np.maximum(a @ w, 0)
    p = a @ w + 1.0
    mask = (p > 0).astype(float)
    g_hidden = np.maximum(p, 0) * (a @ w > 0)
    g_pre = h * mask
    expected_x = (g_hidden + g_pre) @ w.T
    np.testing.assert_allclose(x.grad.numpy(), expected_x, rtol=1e-10)
    np.testing.assert_allclose(wt.grad.numpy(), a.T @ (g_hidden + g_pre), rtol=1e-10)
    assert hidden.is_evaluated()
    np.testing.assert_allclose(hidden.numpy(), h, rtol=1e-12)
    np.testing.assert_allclose(pre.numpy(), p, rtol=1e-12)
    np.testing.assert_allclose(loss.item(), (np.maximum(p, 0) * h).sum(), rtol=1e-12)


def test_forward_evaluated_before_backward_keeps_what_backward_needs():
    # loss.item() before backward (a logging training loop): the forward values backward
    # uses are kept, not recomputed, and the gradients are right.
    rng = np.random.default_rng(4)
    a = rng.standard_normal((6, 4))
    x = pf.tensor(a, requires_grad=True)
    loss = (pf.relu(x * 2.0 - 0.5) ** 2).sum()
    value = loss.item()
    assert value == pytest.approx((np.maximum(2 * a - 0.5, 0) ** 2).sum())
    loss.backward()
    np.testing.assert_allclose(
        x.grad.numpy(), 2 * np.maximum(2 * a - 0.5, 0) * 2 * (2 * a - 0.5 > 0), rtol=1e-12
    )


def test_relu_gradient_like_pytorch_at_zero_and_nan():
    x = pf.tensor([-1.0, 0.0, 2.0, float("nan")], requires_grad=True)
    pf.relu(x).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 1.0, 1.0]  # torch 2.13 gives the same
    # an infinite upstream gradient stays 0 where the ReLU is off (not inf * 0 = NaN)
    y = pf.tensor([-1.0, 2.0], requires_grad=True)
    pf.relu(y).backward(pf.tensor([float("inf"), 1.0]))
    assert y.grad.tolist() == [0.0, 1.0]
