"""Module semantics: registration, traversal, modes, gradients, state dicts, dtype conversion,
repr, hooks, copying, and the Parameter class."""

import copy
import pickle
from collections import OrderedDict

import numpy as np
import pyflame as pf
import pytest
from pyflame import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.ReLU())
        self.head = nn.Linear(8, 3)
        self.scale = nn.Parameter(pf.ones([1]))
        self.register_buffer("steps", pf.zeros([1]))
        self.register_buffer("cache", pf.zeros([2]), persistent=False)
        self.plain = 5

    def forward(self, x):
        return self.head(self.features(x).flatten(1)[:, :8]) * self.scale


# ---------------------------------------------------------------------- Parameter
def test_parameter_is_a_tensor_subclass():
    p = nn.Parameter(pf.tensor([1.0, 2.0]))
    assert isinstance(p, pf.Tensor) and isinstance(p, nn.Parameter)
    assert p.requires_grad and p.is_leaf
    assert type(p * 2) is pf.Tensor
    assert not nn.Parameter(pf.zeros([2]), requires_grad=False).requires_grad
    assert nn.Parameter().shape == [0]
    assert repr(p).startswith("Parameter containing:\n")


def test_parameter_copies_and_stays_a_leaf_after_rebinding():
    src = pf.ones([2]) * 3  # a lazy op result
    p = nn.Parameter(src)
    assert p.is_leaf
    (p * p).sum().backward()
    assert p.grad.tolist() == [6.0, 6.0]
    p.data = pf.tensor([1.0, 1.0])
    assert type(p) is nn.Parameter and p.is_leaf and p.requires_grad
    assert nn.Parameter(np.arange(3, dtype=np.float64)).dtype == pf.float64


def test_parameter_deepcopy_and_pickle():
    p = nn.Parameter(pf.tensor([1.0, 2.0]))
    q = copy.deepcopy(p)
    assert type(q) is nn.Parameter and q is not p and q.tolist() == [1.0, 2.0]
    r = pickle.loads(pickle.dumps(p))
    assert type(r) is nn.Parameter and r.tolist() == [1.0, 2.0] and r.requires_grad


# ---------------------------------------------------------------------- registration
def test_registration_by_assignment():
    net = Net()
    assert [n for n, _ in net.named_children()] == ["features", "head"]
    assert "scale" in net._parameters and "steps" in net._buffers
    assert net.plain == 5 and "plain" not in net._parameters
    assert [n for n, _ in net.named_parameters()] == [
        "scale",
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "head.weight",
        "head.bias",
    ]
    assert [n for n, _ in net.named_parameters(recurse=False)] == ["scale"]
    assert [n for n, _ in net.named_buffers()] == [
        "steps",
        "cache",
        "features.1.running_mean",
        "features.1.running_var",
        "features.1.num_batches_tracked",
    ]
    assert len(net.parameters()) == 7 and len(net.buffers(recurse=False)) == 2


def test_parameters_is_a_list_and_an_iterator():
    m = nn.Linear(2, 2)
    params = m.parameters()
    assert len(params) == 2
    assert next(params) is m.weight
    assert next(params) is m.bias
    with pytest.raises(StopIteration):
        next(params)
    assert next(m.parameters()).shape == [2, 2]


def test_register_errors_and_reassignment():
    m = nn.Module()
    m.w = nn.Parameter(pf.zeros([1]))
    with pytest.raises(TypeError, match="Parameter or None expected"):
        m.w = pf.zeros([1])
    m.w = None
    assert m.w is None and m.parameters() == []
    m.sub = nn.ReLU()
    with pytest.raises(TypeError, match="Module or None expected"):
        m.sub = 3
    m.register_buffer("b", pf.zeros([1]))
    with pytest.raises(TypeError, match="buffer"):
        m.b = 3
    m.b = pf.ones([2])
    assert m.b.tolist() == [1.0, 1.0]
    with pytest.raises(KeyError):
        m.register_buffer("a.b", pf.zeros([1]))
    with pytest.raises(KeyError, match="already exists"):
        m.register_parameter("sub", nn.Parameter(pf.zeros([1])))
    with pytest.raises(TypeError):
        m.register_parameter("q", pf.zeros([1]))
    with pytest.raises(TypeError):
        m.add_module("q", 3)
    del m.sub
    assert m.children() == []
    with pytest.raises(AttributeError):
        _ = m.missing


def test_assignment_before_init_is_an_error():
    class Bad(nn.Module):
        def __init__(self):
            self.w = nn.Parameter(pf.zeros([1]))

    with pytest.raises(AttributeError, match="before Module.__init__"):
        Bad()


def test_shared_parameters_and_modules_are_listed_once():
    shared = nn.Linear(2, 2)
    seq = nn.Sequential(shared, nn.ReLU(), shared)
    assert len(seq.parameters()) == 2
    assert [n for n, _ in seq.named_modules()] == ["", "0", "1"]
    assert len(seq.named_parameters(remove_duplicate=False)) == 4
    assert list(seq.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    seq.load_state_dict(seq.state_dict())


def test_children_modules_apply_get_submodule():
    net = Net()
    assert [type(m).__name__ for m in net.modules()] == [
        "Net",
        "Sequential",
        "Conv2d",
        "BatchNorm2d",
        "ReLU",
        "Linear",
    ]
    assert [n for n, _ in net.named_modules()] == [
        "",
        "features",
        "features.0",
        "features.1",
        "features.2",
        "head",
    ]
    seen = []
    net.apply(lambda m: seen.append(type(m).__name__))
    assert seen == ["Conv2d", "BatchNorm2d", "ReLU", "Sequential", "Linear", "Net"]
    assert net.get_submodule("features.1") is net.features[1]
    assert net.get_parameter("features.0.weight") is net.features[0].weight
    assert net.get_buffer("features.1.running_var").tolist() == [1.0, 1.0]
    with pytest.raises(AttributeError):
        net.get_submodule("features.7")


def test_train_eval_and_requires_grad():
    net = Net()
    assert net.training and net.is_training() and net.features[1].training
    assert net.eval() is net
    assert not net.training and not net.features[1].training and not net.is_training()
    net.train()
    assert net.head.training
    net.train(False)
    assert not net.head.training
    with pytest.raises(ValueError):
        net.train("yes")
    net.requires_grad_(False)
    assert not any(p.requires_grad for p in net.parameters())
    net.requires_grad_()
    assert all(p.requires_grad for p in net.parameters())


def test_zero_grad():
    m = nn.Linear(3, 2)
    m(pf.ones([4, 3])).sum().backward()
    assert m.weight.grad is not None
    m.zero_grad(set_to_none=False)
    assert m.weight.grad.tolist() == [[0.0] * 3] * 2
    m.zero_grad()
    assert m.weight.grad is None and m.bias.grad is None


def test_forward_missing_raises():
    with pytest.raises(NotImplementedError, match="forward"):
        nn.Module()(pf.ones([1]))


def test_forward_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre"))
    h2 = m.register_forward_hook(lambda mod, args, out: out * 0)
    out = m(pf.ones([1, 2]))
    assert calls == ["pre"] and out.tolist() == [[0.0, 0.0]]
    h1.remove()
    h2.remove()
    assert m(pf.ones([1, 2])).abs().sum().item() >= 0 and calls == ["pre"]


# ---------------------------------------------------------------------- state dict
def test_state_dict_keys_and_values():
    net = Net()
    sd = net.state_dict()
    assert list(sd) == [
        "scale",
        "steps",
        "features.0.weight",
        "features.0.bias",
        "features.1.weight",
        "features.1.bias",
        "features.1.running_mean",
        "features.1.running_var",
        "features.1.num_batches_tracked",
        "head.weight",
        "head.bias",
    ]
    assert not sd["head.weight"].requires_grad
    assert type(sd["head.weight"]) is pf.Tensor
    assert np.array_equal(sd["head.weight"].numpy(), net.head.weight.numpy())
    assert net.state_dict(keep_vars=True)["head.weight"] is net.head.weight
    # Values are snapshots: a later update of the module does not change them.
    before = sd["head.bias"].numpy().copy()
    net.head.bias.data = pf.full([3], 7.0)
    assert np.array_equal(sd["head.bias"].numpy(), before)


def test_load_state_dict_copies_in_place():
    a, b = Net(), Net()
    w = b.head.weight
    result = b.load_state_dict(a.state_dict())
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert result == ([], [])
    assert b.head.weight is w and w.requires_grad and w.is_leaf
    for k, v in a.state_dict().items():
        assert np.array_equal(b.state_dict()[k].numpy(), v.numpy()), k
    # numpy arrays are accepted and cast to the parameter dtype
    b.load_state_dict(
        {
            k: v.numpy().astype(np.float64) if v.dtype == pf.float32 else v.numpy()
            for k, v in a.state_dict().items()
        }
    )
    assert b.head.weight.dtype == pf.float32
    b(pf.randn([2, 1, 4, 4])).sum().backward()
    assert b.head.weight.grad is not None


def test_load_state_dict_strict_errors():
    net = Net()
    sd = net.state_dict()
    del sd["head.bias"]
    del sd["features.1.running_mean"]
    sd["head.extra"] = pf.zeros([1])
    sd["nothing.weight"] = pf.zeros([1])
    with pytest.raises(RuntimeError) as info:
        net.load_state_dict(sd)
    msg = str(info.value)
    assert msg.startswith("Error(s) in loading state_dict for Net:")
    assert 'Missing key(s) in state_dict: "features.1.running_mean", "head.bias".' in msg
    assert 'Unexpected key(s) in state_dict: "nothing.weight", "head.extra".' in msg
    result = net.load_state_dict(sd, strict=False)
    assert sorted(result.missing_keys) == ["features.1.running_mean", "head.bias"]
    assert sorted(result.unexpected_keys) == ["head.extra", "nothing.weight"]


def test_load_state_dict_shape_mismatch_always_raises():
    net = Net()
    sd = net.state_dict()
    sd["head.weight"] = pf.zeros([3, 9])
    for strict in (True, False):
        with pytest.raises(
            RuntimeError,
            match=r"size mismatch for head.weight: copying a param with shape \[3, 9\] from "
            r"checkpoint, the shape in current model is \[3, 8\]",
        ):
            net.load_state_dict(sd, strict=strict)
    with pytest.raises(TypeError):
        net.load_state_dict([1, 2])


def test_non_persistent_buffer_not_loaded_or_saved():
    net = Net()
    assert "cache" not in net.state_dict()
    sd = net.state_dict()
    sd["cache"] = pf.ones([2])
    with pytest.raises(RuntimeError, match='Unexpected key.*"cache"'):
        net.load_state_dict(sd)


def test_load_state_dict_assign():
    m = nn.Linear(2, 2)
    old = m.weight
    m.load_state_dict({"weight": pf.ones([2, 2]), "bias": pf.zeros([2])}, assign=True)
    assert m.weight is not old and isinstance(m.weight, nn.Parameter)
    assert m.weight.tolist() == [[1.0, 1.0], [1.0, 1.0]]


# ---------------------------------------------------------------------- dtype, repr, copy
def test_to_dtype_casts_floating_state_only():
    net = Net()
    net(pf.randn([2, 1, 4, 4])).sum().backward()
    assert net.double() is net
    assert all(p.dtype == pf.float64 for p in net.parameters())
    assert net.head.weight.grad.dtype == pf.float64
    assert net.features[1].running_mean.dtype == pf.float64
    assert net.features[1].num_batches_tracked.dtype == pf.int64
    assert isinstance(net.head.weight, nn.Parameter) and net.head.weight.is_leaf
    out = net(pf.randn([2, 1, 4, 4], dtype=pf.float64))
    assert out.dtype == pf.float64
    net.float()
    assert net.head.bias.dtype == pf.float32
    net.to("cpu")
    net.to(pf.float64)
    net.to("cpu", dtype="float32")
    assert net.head.bias.dtype == pf.float32
    assert net.half().head.bias.dtype == pf.float16
    assert net.cpu() is net
    with pytest.raises(ValueError):
        net.to("cuda")
    with pytest.raises(TypeError):
        net.to(pf.int32)


def test_repr_matches_torch_format():
    model = nn.Sequential(
        OrderedDict(
            [
                ("conv", nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)),
                ("block", nn.Sequential(nn.BatchNorm2d(8), nn.ReLU())),
                ("pool", nn.MaxPool2d(2)),
                ("flat", nn.Flatten()),
                ("drop", nn.Dropout(0.25)),
                ("fc", nn.Linear(32, 10)),
            ]
        )
    )
    assert repr(model) == (
        "Sequential(\n"
        "  (conv): Conv2d(3, 8, kernel_size=(3, 3), stride=(2, 2), padding=(1, 1), bias=False)\n"
        "  (block): Sequential(\n"
        "    (0): BatchNorm2d(8, eps=1e-05, momentum=0.1, affine=True, track_running_stats=True)\n"
        "    (1): ReLU()\n"
        "  )\n"
        "  (pool): MaxPool2d(kernel_size=2, stride=2, padding=0, dilation=1, ceil_mode=False)\n"
        "  (flat): Flatten(start_dim=1, end_dim=-1)\n"
        "  (drop): Dropout(p=0.25, inplace=False)\n"
        "  (fc): Linear(in_features=32, out_features=10, bias=True)\n"
        ")"
    )
    assert repr(nn.LayerNorm(768)) == "LayerNorm((768,), eps=1e-05, elementwise_affine=True)"
    assert repr(nn.GroupNorm(32, 256)) == "GroupNorm(32, 256, eps=1e-05, affine=True)"
    assert (
        repr(nn.Conv1d(2, 4, 3, padding="same"))
        == "Conv1d(2, 4, kernel_size=(3,), stride=(1,), padding=same)"
    )
    assert repr(nn.Embedding(10, 3, padding_idx=0)) == "Embedding(10, 3, padding_idx=0)"
    assert repr(nn.GELU()) == "GELU(approximate='none')"
    assert repr(nn.Softmax(dim=1)) == "Softmax(dim=1)"
    assert repr(nn.LeakyReLU()) == "LeakyReLU(negative_slope=0.01)"
    assert repr(nn.MultiheadAttention(8, 2)) == (
        "MultiheadAttention(\n  (out_proj): NonDynamicallyQuantizableLinear("
        "in_features=8, out_features=8, bias=True)\n)"
    )


def test_deepcopy_is_independent():
    net = Net()
    clone = copy.deepcopy(net)
    assert clone is not net and clone.head is not net.head
    assert clone.head.weight is not net.head.weight
    assert isinstance(clone.head.weight, nn.Parameter) and clone.head.weight.requires_grad
    assert np.array_equal(clone.head.weight.numpy(), net.head.weight.numpy())
    clone.head.weight.data = pf.zeros([3, 8])
    assert net.head.weight.abs().sum().item() > 0
    x = pf.randn([2, 1, 4, 4])
    clone.load_state_dict(net.state_dict())
    assert np.allclose(clone.eval()(x).numpy(), net.eval()(x).numpy())


def test_dir_lists_registered_names():
    names = dir(Net())
    assert {"features", "head", "scale", "steps", "forward"} <= set(names)
