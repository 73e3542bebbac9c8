"""The fused scaled-dot-product attention kernel: gradients of query, key and value against
central finite differences in float64, the forward pass against NumPy, and input checks."""

from __future__ import annotations

import os
import sys

import numpy as np
import pyflame as pf
import pytest
from pyflame import _core
from pyflame.nn import functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_gradcheck import gradcheck, rand  # noqa: E402


def _reference(q, k, v, keep=None, add=None, causal=False, scale=None):
    scale = 1.0 / np.sqrt(q.shape[-1]) if scale is None else scale
    s = q @ np.swapaxes(k, -1, -2) * scale
    if add is not None:
        s = s + add
    lq, lk = s.shape[-2:]
    visible = np.ones(s.shape, dtype=bool)
    if causal:
        visible &= np.tril(np.ones((lq, lk), dtype=bool))
    if keep is not None:
        visible &= keep
    s = np.where(visible, s, -np.inf)
    m = s.max(-1, keepdims=True)
    e = np.where(np.isfinite(m), np.exp(s - np.where(np.isfinite(m), m, 0)), 0.0)
    tot = e.sum(-1, keepdims=True)
    p = np.divide(e, tot, out=np.zeros_like(e), where=tot > 0)
    return p @ v


CASES = {
    "plain": ((2, 3, 4), (2, 5, 4), 3, {}),
    "causal_square": ((1, 2, 4, 3), (1, 2, 4, 3), 2, {"is_causal": True}),
    "causal_more_keys": ((2, 3, 4), (2, 6, 4), 2, {"is_causal": True}),
    "causal_blocks": ((1, 67, 2), (1, 67, 2), 2, {"is_causal": True}),
    "scale": ((2, 3, 4), (2, 5, 4), 3, {"scale": 0.7}),
}


@pytest.mark.parametrize("name", list(CASES))
def test_attention_gradients(name):
    sq, sk, dv, kw = CASES[name]
    q, k = rand(*sq), rand(*sk, seed=3)
    v = rand(*(sk[:-1] + (dv,)), seed=4)
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, **kw), q, k, v)
    got = F.scaled_dot_product_attention(pf.tensor(q), pf.tensor(k), pf.tensor(v), **kw)
    ref = _reference(q, k, v, causal=kw.get("is_causal", False), scale=kw.get("scale"))
    np.testing.assert_allclose(got.numpy(), ref, rtol=1e-10, atol=1e-12)


def test_attention_gradients_with_masks():
    q, k, v = rand(2, 2, 3, 4), rand(2, 2, 5, 4, seed=3), rand(2, 2, 5, 3, seed=4)
    keep = np.random.default_rng(0).random((2, 1, 3, 5)) > 0.3
    keep[0, 0, 1] = False  # a fully masked row: zeros and no gradient
    add = rand(3, 5, seed=5)
    km, am = pf.tensor(keep), pf.tensor(add)
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=km), q, k, v)
    gradcheck(lambda q, k, v: F.scaled_dot_product_attention(q, k, v, attn_mask=am), q, k, v)
    got = F.scaled_dot_product_attention(pf.tensor(q), pf.tensor(k), pf.tensor(v), km)
    np.testing.assert_allclose(got.numpy(), _reference(q, k, v, keep=keep), rtol=1e-10)
    assert np.all(got.numpy()[0, :, 1] == 0.0)
    got = F.scaled_dot_product_attention(pf.tensor(q), pf.tensor(k), pf.tensor(v), am)
    np.testing.assert_allclose(got.numpy(), _reference(q, k, v, add=add), rtol=1e-10)


def test_float_mask_requiring_grad_gets_its_gradient():
    q, k, v, add = rand(2, 3, 4), rand(2, 5, 4, seed=3), rand(2, 5, 3, seed=4), rand(3, 5)
    gradcheck(lambda q, m: F.scaled_dot_product_attention(q, pf.tensor(k), pf.tensor(v), m), q, add)


def test_fused_op_is_used_and_float32_matches_float64():
    rng = np.random.default_rng(0)
    q, k, v = (rng.standard_normal((2, 4, 130, 16)) for _ in range(3))
    outs = []
    for dt in (pf.float32, pf.float64):
        ts = [pf.tensor(a).astype(dt).requires_grad_() for a in (q, k, v)]
        y = F.scaled_dot_product_attention(*ts, is_causal=True)
        assert pf.get_node(y).op_type == "attention"
        (y * pf.tensor(q).astype(dt)).sum().backward()
        outs.append([y.numpy()] + [t.grad.numpy() for t in ts])
    for a, b in zip(*outs):
        np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-4)


def test_bad_inputs_raise_clear_errors():
    q = pf.randn([2, 3, 4])
    with pytest.raises(ValueError, match="do not match"):
        _core.scaled_dot_product_attention(q, pf.randn([2, 5, 3]), pf.randn([2, 5, 4]))
    with pytest.raises(ValueError, match="mask"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=pf.ones([4, 4]))
    with pytest.raises(TypeError, match="bool or floating"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=pf.tensor(np.ones((3, 3), np.int64)))
    with pytest.raises(ValueError, match="either attn_mask or is_causal"):
        F.scaled_dot_product_attention(q, q, q, attn_mask=pf.ones([3, 3]), is_causal=True)
    with pytest.raises(ValueError, match="at least 2 dimensions"):
        F.scaled_dot_product_attention(pf.randn([4]), q, q)
    with pytest.raises(ValueError, match="do not broadcast"):
        F.scaled_dot_product_attention(q, pf.randn([3, 3, 4]), pf.randn([3, 3, 4]))


def test_empty_inputs():
    q = pf.randn([0, 3, 4]).requires_grad_()
    F.scaled_dot_product_attention(q, q, q).sum().backward()
    assert q.grad.shape == [0, 3, 4]
    k = pf.randn([2, 0, 4]).requires_grad_()
    q = pf.randn([2, 3, 4]).requires_grad_()
    out = F.scaled_dot_product_attention(q, k, k)
    out.sum().backward()
    assert out.tolist() == [[[0.0] * 4] * 3] * 2 and k.grad.shape == [2, 0, 4]
    q, v = pf.randn([2, 3, 0]), pf.randn([2, 3, 2]).requires_grad_()
    F.scaled_dot_product_attention(q, q, v).sum().backward()  # D = 0: uniform weights
    np.testing.assert_allclose(v.grad.numpy(), np.ones((2, 3, 2)), rtol=1e-6)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize(
    "shape,lk,threads",
    [
        ((8, 4, 128), 128, 2),  # BERT's heads: one 128-row block per head, heads side by side
        ((2, 3, 70), 70, 2),  # too few row blocks for the threads: heads one after another
        ((6, 300), 257, 2),  # 128-row blocks with a 44-row tail, odd key count
        ((5, 131), 1025, 2),  # keys beyond the wide-block limit: 64-row blocks
        ((3, 200), 90, 2),  # too few batch entries for two threads: 64-row blocks
        ((3, 200), 90, 1),  # one thread: 128-row blocks
    ],
)
def test_forward_block_sizes_match_numpy(shape, lk, threads, dt):
    """The forward pass takes 128-row query blocks when the batch keeps the threads busy
    and stores 4-D results heads side by side when the row blocks do; every layout (with
    tails, odd key counts, strided head views, an additive padding mask, causal or not)
    equals the NumPy reference, also after the heads are merged back."""
    rng = np.random.default_rng(len(shape) + lk)
    d, dv = 24, 20
    *batch, lq = shape
    q = rng.standard_normal((*batch, lq, d)).astype(dt)
    # k and v as strided views of one buffer, like the heads of a fused QKV projection
    kv = rng.standard_normal((*batch, lk, d + dv)).astype(dt)
    add = np.where(rng.random((lk,)) < 0.2, -1e9, 0.0).astype(dt)
    tkv = pf.tensor(kv)
    tk, tv = tkv[..., :d], tkv[..., d:]
    pool = _core.ThreadPool(threads)
    out = F.scaled_dot_product_attention(pf.tensor(q), tk, tv, attn_mask=pf.tensor(add))
    pool.eval(out)
    ref = _reference(q.astype(np.float64), kv[..., :d], kv[..., d:], add=add)
    tol = 1e-5 if dt == np.float32 else 1e-12
    np.testing.assert_allclose(out.numpy(), ref, rtol=tol, atol=tol)
    if len(batch) == 2:
        b0, h = batch
        merged = out.transpose(1, 2).reshape([b0, lq, h * dv]) * 2.0
        ref_m = np.swapaxes(ref, 1, 2).reshape(b0, lq, h * dv) * 2.0
        np.testing.assert_allclose(merged.numpy(), ref_m, rtol=tol, atol=tol)
        causal = F.scaled_dot_product_attention(pf.tensor(q), tk, tv, is_causal=True)
        pool.eval(causal)
        ref_c = _reference(q.astype(np.float64), kv[..., :d], kv[..., d:], causal=True)
        np.testing.assert_allclose(causal.numpy(), ref_c, rtol=tol, atol=tol)
