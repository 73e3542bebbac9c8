"""Layer and loss behaviour beyond the golden comparisons: argument checking, modes, the
Reduction enum, the spec's examples, and an end-to-end training loop."""

import warnings

import numpy as np
import pyflame as pf
import pytest
from pyflame import nn
from pyflame.nn import functional as F


# ---------------------------------------------------------------------- losses
def test_reduction_enum_is_accepted_everywhere():
    x, y = pf.randn([3, 4]), pf.randn([3, 4])
    assert nn.Reduction.MEAN == "mean" and str(nn.Reduction.SUM) == "sum"
    for enum, name in (
        (nn.Reduction.NONE, "none"),
        (nn.Reduction.MEAN, "mean"),
        (nn.Reduction.SUM, "sum"),
    ):
        a = nn.MSELoss(reduction=enum)(x, y).numpy()
        b = F.mse_loss(x, y, reduction=name).numpy()
        assert np.array_equal(a, b)
        assert nn.CrossEntropyLoss(reduction=enum)(x, pf.tensor([0, 1, 3])).shape == (
            [3] if name == "none" else []
        )
    assert nn.L1Loss(reduction=nn.Reduction.NONE).reduction == "none"
    with pytest.raises(ValueError, match="not a valid value for reduction"):
        nn.MSELoss(reduction="avg")
    with pytest.raises(ValueError):
        F.l1_loss(x, y, reduction="batchmean")


def test_loss_aliases_and_spec_examples():
    logits, targets = pf.randn([4, 3]), pf.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 1], [0, 0, 0]])
    a = F.bce_with_logits(logits, targets).item()
    b = F.bce_loss(pf.sigmoid(logits), targets).item()
    assert a == pytest.approx(b, rel=1e-5)
    loss_fn = nn.NLLLoss()
    c = loss_fn(pf.log_softmax(logits, dim=1), pf.tensor([0, 2, 1, 1])).item()
    assert c == pytest.approx(
        nn.CrossEntropyLoss()(logits, pf.tensor([0, 2, 1, 1])).item(), rel=1e-6
    )


def test_cross_entropy_errors():
    x = pf.randn([3, 4])
    with pytest.raises(IndexError, match="Target 7 is out of bounds"):
        F.cross_entropy(x, pf.tensor([0, 7, 1]))
    with pytest.raises(IndexError):
        F.nll_loss(x, pf.tensor([0, -3, 1]))
    # Targets not computed yet are computed first, with the same message.
    lazy = pf.tensor([0, 3, 1]) * 2
    assert not lazy.is_evaluated()
    with pytest.raises(IndexError, match="Target 6 is out of bounds"):
        F.cross_entropy(x, lazy)
    # ignore_index values are not out of range.
    loss = F.cross_entropy(x, pf.tensor([0, -100, 1]), ignore_index=-100)
    assert np.isfinite(loss.item())
    with pytest.raises(ValueError, match="label_smoothing"):
        F.cross_entropy(x, pf.tensor([0, 1, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError):
        F.cross_entropy(x, pf.tensor([0, 1]))
    with pytest.raises(ValueError):
        F.cross_entropy(x, pf.rand([3, 5]))
    with pytest.raises(ValueError, match="different to the input size"):
        F.binary_cross_entropy(pf.rand([3]), pf.rand([3, 1]))
    # every target ignored: NaN like PyTorch
    assert np.isnan(F.cross_entropy(x, pf.tensor([-100, -100, -100])).item())


def test_kl_div_mean_warns():
    with pytest.warns(UserWarning, match="batchmean"):
        F.kl_div(pf.log(pf.rand([2, 3]) + 0.1), pf.rand([2, 3]))


def test_mse_broadcast_warns():
    with pytest.warns(UserWarning, match="different to the input size"):
        F.mse_loss(pf.randn([3, 1]), pf.randn([3]))


# ---------------------------------------------------------------------- batch norm
def test_batchnorm_running_stats_and_modes():
    bn = nn.BatchNorm1d(3, momentum=0.2)
    x = pf.randn([10, 3]) * 2 + 1
    y = bn(x)
    xn = x.numpy().astype(np.float64)
    np.testing.assert_allclose(bn.running_mean.numpy(), 0.2 * xn.mean(0), rtol=1e-5)
    np.testing.assert_allclose(bn.running_var.numpy(), 0.8 + 0.2 * xn.var(0, ddof=1), rtol=1e-5)
    assert bn.num_batches_tracked.item() == 1
    np.testing.assert_allclose(
        y.numpy(), (xn - xn.mean(0)) / np.sqrt(xn.var(0) + 1e-5), rtol=1e-4, atol=1e-5
    )
    # the running statistics are materialized values, not a growing lazy graph
    assert bn.running_mean.is_evaluated() and bn.running_var.is_evaluated()
    bn.eval()
    before = bn.running_mean.numpy().copy()
    y = bn(x)
    assert np.array_equal(bn.running_mean.numpy(), before) and bn.num_batches_tracked.item() == 1
    expected = (xn - before) / np.sqrt(bn.running_var.numpy() + 1e-5)
    np.testing.assert_allclose(y.numpy(), expected, rtol=1e-4, atol=1e-5)


def test_batchnorm_input_checks():
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(pf.randn([1, 3]))
    nn.BatchNorm1d(3).eval()(pf.randn([1, 3]))
    with pytest.raises(ValueError, match="expected 4D input"):
        nn.BatchNorm2d(3)(pf.randn([2, 3, 4]))
    with pytest.raises(ValueError, match="expected 2D or 3D input"):
        nn.BatchNorm1d(3)(pf.randn([2, 3, 4, 4]))
    with pytest.raises(ValueError):
        F.batch_norm(pf.randn([2, 3]), pf.zeros([4]), pf.ones([4]))


def test_batchnorm_in_a_training_loop_keeps_gradients():
    model = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(), nn.Linear(6, 1))
    for _ in range(3):
        model.zero_grad()
        model(pf.randn([8, 4])).sum().backward()
        assert all(p.grad is not None for p in model.parameters())
    assert model[1].num_batches_tracked.item() == 3


# ---------------------------------------------------------------------- conv / pool / misc layers
def test_conv_argument_checks():
    with pytest.raises(ValueError, match="to have 4 channels, but got 3"):
        nn.Conv2d(4, 8, 3)(pf.randn([1, 3, 5, 5]))
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="strided"):
        nn.Conv2d(2, 2, 3, stride=2, padding="same")
    with pytest.raises(ValueError, match="Invalid padding string"):
        nn.Conv1d(2, 2, 3, padding="full")
    with pytest.raises(ValueError, match="smaller than the effective kernel size"):
        F.conv2d(pf.randn([1, 1, 2, 2]), pf.randn([1, 1, 3, 3]))
    with pytest.raises(ValueError):
        F.conv2d(pf.randn([1, 2, 3]), pf.randn([1, 1, 1, 1]).squeeze(0))
    with pytest.raises(ValueError, match="padding_mode"):
        nn.Conv2d(2, 2, 3, padding_mode="mirror")


def test_same_padding_keeps_size():
    for k in (1, 2, 3, 4, 5):
        conv = nn.Conv2d(2, 3, k, padding="same", dilation=2)
        assert conv(pf.randn([1, 2, 7, 6])).shape == [1, 3, 7, 6]
        assert nn.Conv1d(2, 3, k, padding="same")(pf.randn([2, 2, 9])).shape == [2, 3, 9]


def test_pooling_checks_and_unsupported_options():
    with pytest.raises(NotImplementedError, match="return_indices"):
        nn.MaxPool2d(2, return_indices=True)
    with pytest.raises(ValueError, match="pad should be at most half"):
        F.max_pool2d(pf.randn([1, 1, 6, 6]), 2, padding=2)
    with pytest.raises(ValueError, match="too small"):
        F.avg_pool2d(pf.randn([1, 1, 2, 2]), 3)
    assert nn.GlobalAvgPool2d()(pf.ones([3, 4, 5])).shape == [3, 1, 1]
    x = pf.randn([2, 3, 6, 4])
    np.testing.assert_allclose(
        nn.GlobalAvgPool2d()(x).numpy(), nn.AdaptiveAvgPool2d(1)(x).numpy(), rtol=1e-6, atol=1e-7
    )


def test_embedding_checks():
    emb = nn.Embedding(5, 2)
    with pytest.raises(TypeError, match="integer index tensor"):
        emb(pf.tensor([0.0, 1.0]))
    with pytest.raises(NotImplementedError, match="sparse"):
        nn.Embedding(5, 2, sparse=True)
    with pytest.raises(ValueError):
        nn.Embedding(5, 2, padding_idx=5)
    assert nn.Embedding(5, 2, padding_idx=-1).padding_idx == 4
    frozen = nn.Embedding.from_pretrained(pf.randn([4, 3]), freeze=False)
    assert frozen.weight.requires_grad and frozen(pf.tensor([1, 2])).shape == [2, 3]


def test_one_hot():
    assert F.one_hot(pf.tensor([2, 0])).tolist() == [[0, 0, 1], [1, 0, 0]]
    assert F.one_hot(pf.tensor([1]), 4).dtype == pf.int64
    with pytest.raises(ValueError):
        F.one_hot(pf.tensor([4]), 3)
    with pytest.raises(ValueError):
        F.one_hot(pf.tensor([-1]), 3)


def test_layer_norm_shape_check():
    with pytest.raises(ValueError, match="normalized_shape"):
        nn.LayerNorm(4)(pf.randn([2, 5]))
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)


def test_softmax_without_dim_warns_and_uses_legacy_dim():
    x = pf.randn([2, 3])
    with pytest.warns(UserWarning, match="Implicit dimension"):
        y = nn.Softmax()(x)
    np.testing.assert_allclose(y.numpy(), pf.softmax(x, 1).numpy())


def test_activation_gradients_at_extremes_are_finite():
    x = pf.tensor([-1000.0, -30.0, 0.0, 30.0, 1000.0]).requires_grad_()
    for fn in (F.elu, F.softplus, F.mish, F.logsigmoid, F.selu, F.silu):
        x.grad = None
        fn(x).sum().backward()
        assert np.isfinite(x.grad.numpy()).all(), fn.__name__
    p = pf.tensor([0.0, 1.0, 0.5]).requires_grad_()
    F.binary_cross_entropy(p, pf.tensor([0.0, 1.0, 1.0])).backward()
    assert np.isfinite(p.grad.numpy()).all()
    z = pf.tensor([-100.0, 100.0]).requires_grad_()
    loss = F.binary_cross_entropy_with_logits(z, pf.tensor([1.0, 0.0]))
    assert loss.item() == pytest.approx(100.0)
    loss.backward()
    assert np.isfinite(z.grad.numpy()).all()


# ---------------------------------------------------------------------- attention
def test_mha_self_attention_defaults_and_causal_flag():
    mha = nn.MultiheadAttention(8, 2)
    x = pf.randn([5, 2, 8])
    out, w = mha(x)  # key/value default to the query
    out2, _ = mha(x, x, x)
    assert np.array_equal(out.numpy(), out2.numpy()) and w.shape == [2, 5, 5]
    causal = pf.tensor(np.triu(np.ones((5, 5), dtype=bool), 1))
    a, wa = mha(x, attn_mask=causal)
    b, _ = mha(x, is_causal=True)
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6)
    assert np.allclose(np.triu(wa.numpy()[0], 1), 0.0)
    _, none = mha(x, need_weights=False)
    assert none is None
    with pytest.raises(ValueError, match="2D attn_mask"):
        mha(x, attn_mask=pf.zeros([4, 5], dtype=pf.bool_))
    with pytest.raises(ValueError, match="divisible"):
        nn.MultiheadAttention(6, 4)


def test_mha_dropout_only_in_training():
    mha = nn.MultiheadAttention(4, 2, dropout=0.9)
    x = pf.randn([6, 1, 4])
    mha.eval()
    a, _ = mha(x)
    b, _ = mha(x)
    assert np.array_equal(a.numpy(), b.numpy())
    mha.train()
    _, w = mha(x, average_attn_weights=False)
    assert (w.numpy() == 0).mean() > 0.5


def test_self_and_cross_attention_wrappers():
    sa = nn.SelfAttention(8, 2)
    x = pf.randn([4, 3, 8])
    ref, _ = nn.MultiheadAttention.forward(sa, x, x, x, need_weights=False)
    np.testing.assert_array_equal(sa(x).numpy(), ref.numpy())
    assert list(sa.state_dict()) == [
        "in_proj_weight",
        "in_proj_bias",
        "out_proj.weight",
        "out_proj.bias",
    ]
    ca = nn.CrossAttention(8, 2, kdim=5)
    assert ca(pf.randn([4, 3, 8]), pf.randn([7, 3, 5])).shape == [4, 3, 8]
    assert "k_proj_weight" in ca.state_dict() and "in_proj_weight" not in ca.state_dict()


def test_sdpa_bool_and_float_masks_agree():
    q, k, v = pf.randn([2, 3, 4]), pf.randn([2, 5, 4]), pf.randn([2, 5, 6])
    keep = pf.tensor(np.random.default_rng(0).uniform(size=(3, 5)) > 0.3)
    add = pf.where(keep, pf.zeros([]), pf.full([], float("-inf")))
    a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep).numpy()
    b = F.scaled_dot_product_attention(q, k, v, attn_mask=add).numpy()
    np.testing.assert_allclose(a, b, rtol=1e-6)
    with pytest.raises(ValueError):
        F.scaled_dot_product_attention(q, k, v, attn_mask=keep, is_causal=True)


# ---------------------------------------------------------------------- end to end
def test_readme_training_example_learns():
    pf.manual_seed(0)
    rng = np.random.default_rng(0)
    centers = rng.standard_normal((3, 10)).astype(np.float32) * 3
    labels = rng.integers(0, 3, 96)
    data = centers[labels] + rng.standard_normal((96, 10)).astype(np.float32)
    model = nn.Sequential(nn.Linear(10, 32), nn.ReLU(), nn.Dropout(0.1), nn.Linear(32, 3))
    loss_fn = nn.CrossEntropyLoss()
    x, y = pf.tensor(data), pf.tensor(labels)
    first = None
    for _ in range(60):
        model.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        with pf.no_grad():
            for p in model.parameters():
                p.data = _sgd(p)
        first = loss.item() if first is None else first
    model.eval()
    acc = (model(x).argmax(1) == y).astype(pf.float32).mean().item()
    assert loss.item() < 0.5 * first and acc > 0.9


def _sgd(p):
    new = p.detach() - p.grad * 0.1
    new.eval()
    return new


def test_works_with_optim_when_available():
    optim = pytest.importorskip("pyflame.optim")
    model = nn.Sequential(
        nn.Conv2d(1, 4, 3, padding=1),
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(16, 2),
    )
    opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = pf.randn([8, 1, 4, 4]), pf.tensor([0, 1] * 4)
    losses = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(15):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            losses.append(loss.item())
    assert losses[-1] < losses[0]
    assert all(isinstance(p, nn.Parameter) and p.is_leaf for p in model.parameters())
