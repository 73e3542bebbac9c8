"""Optimizer API: param groups, state_dict, zero_grad, validation, one evaluation per step."""

import warnings

import numpy as np
import optim_testutil as U
import pyflame as pf
import pytest
from pyflame import optim

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------


def leaf(values, dtype=np.float32):
    return pf.tensor(np.asarray(values, dtype=dtype)).requires_grad_()


def values(t):
    return t.numpy().tolist()


OPTIMIZER_FACTORIES = {
    "sgd": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01),
    "sgd_nesterov": lambda ps: optim.SGD(ps, lr=0.05, momentum=0.9, nesterov=True),
    "adam": lambda ps: optim.Adam(ps, lr=0.01, weight_decay=0.1),
    "adam_amsgrad": lambda ps: optim.Adam(ps, lr=0.01, betas=(0.8, 0.9), amsgrad=True),
    "adamw": lambda ps: optim.AdamW(ps, lr=0.01, amsgrad=True),
    "rmsprop": lambda ps: optim.RMSprop(ps, lr=0.01, momentum=0.5, centered=True),
}

STATE_KEYS = {
    "sgd": {"momentum_buffer"},
    "sgd_nesterov": {"momentum_buffer"},
    "adam": {"step", "exp_avg", "exp_avg_sq"},
    "adam_amsgrad": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    "adamw": {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    "rmsprop": {"step", "square_avg", "momentum_buffer", "grad_avg"},
}


def golden_run(opt_factory, data, start, stop, params=None, opt=None):
    """Runs golden steps [start, stop) in float32, creating params/optimizer if not given."""
    if params is None:
        params = U.make_params(data, "float32")
        opt = opt_factory(params)
    for step in range(start, stop):
        U.set_grads(params, data, step, "float32")
        opt.step()
    return params, opt


@pytest.fixture(scope="module")
def data():
    golden, _ = U.load_golden("opt_adam_plain.npz")
    return golden


# --------------------------------------------------------------------------
# construction and param groups
# --------------------------------------------------------------------------


def test_defaults_are_merged_into_groups():
    a, b = leaf([1.0]), leaf([2.0])
    opt = optim.SGD([{"params": [a]}, {"params": b, "lr": 0.5, "momentum": 0.1}], lr=0.1)
    g0, g1 = opt.param_groups
    assert g0["lr"] == 0.1 and g0["momentum"] == 0.0 and g0["params"] == [a]
    assert g1["lr"] == 0.5 and g1["momentum"] == 0.1 and g1["params"] == [b]
    assert set(g0) == {
        "params",
        "lr",
        "momentum",
        "dampening",
        "weight_decay",
        "nesterov",
        "maximize",
    }
    assert opt.defaults["lr"] == 0.1


def test_param_groups_use_their_own_learning_rates():
    a, b = leaf([1.0, 1.0]), leaf([1.0])
    opt = optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.01}])
    a.grad, b.grad = pf.tensor([1.0, 2.0]), pf.tensor([1.0])
    opt.step()
    np.testing.assert_allclose(values(a), [0.9, 0.8], rtol=1e-6)
    np.testing.assert_allclose(values(b), [0.99], rtol=1e-6)


def test_add_param_group():
    a, b = leaf([1.0]), leaf([2.0])
    opt = optim.Adam([a], lr=0.01, betas=(0.8, 0.9))
    opt.add_param_group({"params": [b], "lr": 0.1})
    assert len(opt.param_groups) == 2
    assert opt.param_groups[1]["betas"] == (0.8, 0.9)
    assert opt.param_groups[1]["lr"] == 0.1
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    with pytest.raises(TypeError, match="must be a dict"):
        opt.add_param_group([b])


def test_param_argument_errors():
    a = leaf([1.0])
    with pytest.raises(TypeError, match="iterable of Tensors"):
        optim.SGD(a, lr=0.1)
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD([], lr=0.1)
    with pytest.raises(TypeError, match="ordered collections"):
        optim.SGD([{"params": {a}}], lr=0.1)
    with pytest.raises(TypeError, match="can only optimize Tensors"):
        optim.SGD([a, 3.0], lr=0.1)


def test_duplicate_parameter_warns():
    a = leaf([1.0])
    with pytest.warns(UserWarning, match="duplicate parameters"):
        optim.SGD([a, a], lr=0.1)


def test_named_parameters():
    a, b = leaf([1.0]), leaf([2.0])
    opt = optim.SGD([("w", a), ("b", b)], lr=0.1)
    assert opt.param_groups[0]["params"] == [a, b]
    assert opt.param_groups[0]["param_names"] == ["w", "b"]
    assert opt.state_dict()["param_groups"][0]["param_names"] == ["w", "b"]
    with pytest.raises(ValueError, match="with/without names"):
        opt.add_param_group({"params": [leaf([0.0])]})


def test_repr_lists_groups():
    opt = optim.RMSprop([leaf([1.0])], lr=0.5)
    text = repr(opt)
    assert text.startswith("RMSprop (") and "Parameter Group 0" in text and "lr: 0.5" in text


# --------------------------------------------------------------------------
# hyperparameter validation
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: optim.SGD(p, lr=-0.1), "Invalid learning rate"),
        (lambda p: optim.SGD(p, lr=0.1, momentum=-0.5), "Invalid momentum"),
        (lambda p: optim.SGD(p, lr=0.1, weight_decay=-1e-4), "Invalid weight_decay"),
        (lambda p: optim.SGD(p, lr=0.1, nesterov=True), "Nesterov momentum requires"),
        (
            lambda p: optim.SGD(p, lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
            "Nesterov momentum requires",
        ),
        (lambda p: optim.Adam(p, lr=-1e-3), "Invalid learning rate"),
        (lambda p: optim.Adam(p, eps=-1e-8), "Invalid epsilon"),
        (lambda p: optim.Adam(p, betas=(1.0, 0.999)), "beta parameter at index 0"),
        (lambda p: optim.Adam(p, betas=(-0.1, 0.999)), "beta parameter at index 0"),
        (lambda p: optim.Adam(p, betas=(0.9, 1.5)), "beta parameter at index 1"),
        (lambda p: optim.Adam(p, beta2=1.0), "beta parameter at index 1"),
        (lambda p: optim.Adam(p, weight_decay=-0.1), "Invalid weight_decay"),
        (lambda p: optim.AdamW(p, lr=-1.0), "Invalid learning rate"),
        (lambda p: optim.AdamW(p, betas=(0.9, -0.1)), "beta parameter at index 1"),
        (lambda p: optim.RMSprop(p, lr=-0.01), "Invalid learning rate"),
        (lambda p: optim.RMSprop(p, alpha=-0.5), "Invalid alpha"),
        (lambda p: optim.RMSprop(p, eps=-1.0), "Invalid epsilon"),
        (lambda p: optim.RMSprop(p, momentum=-0.9), "Invalid momentum"),
        (lambda p: optim.RMSprop(p, weight_decay=-0.9), "Invalid weight_decay"),
        (lambda p: optim.SGD(p, lr="fast"), "Invalid learning rate"),
    ],
)
def test_invalid_hyperparameters_raise_value_error(make, match):
    with pytest.raises(ValueError, match=match):
        make([leaf([1.0])])


def test_betas_must_be_a_pair():
    with pytest.raises(TypeError, match="pair"):
        optim.Adam([leaf([1.0])], betas=0.9)


def test_beta1_beta2_keywords():
    opt = optim.Adam([leaf([1.0])], beta1=0.5, beta2=0.75)
    assert opt.param_groups[0]["betas"] == (0.5, 0.75)
    opt = optim.AdamW([leaf([1.0])], betas=(0.8, 0.9), beta2=0.95)
    assert opt.param_groups[0]["betas"] == (0.8, 0.95)


def test_torch_defaults():
    p = [leaf([1.0])]
    assert optim.SGD(p).defaults["lr"] == 1e-3
    adam = optim.Adam(p).defaults
    assert (adam["lr"], adam["betas"], adam["eps"], adam["weight_decay"]) == (
        1e-3,
        (0.9, 0.999),
        1e-8,
        0.0,
    )
    assert adam["decoupled_weight_decay"] is False
    adamw = optim.AdamW(p).defaults
    assert adamw["weight_decay"] == 1e-2 and adamw["decoupled_weight_decay"] is True
    rms = optim.RMSprop(p).defaults
    assert (rms["lr"], rms["alpha"], rms["eps"], rms["momentum"], rms["centered"]) == (
        1e-2,
        0.99,
        1e-8,
        0.0,
        False,
    )


# --------------------------------------------------------------------------
# get_lr / set_lr
# --------------------------------------------------------------------------


def test_get_lr_set_lr():
    a, b = leaf([1.0]), leaf([1.0])
    opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.2}], lr=0.1)
    assert opt.get_lr() == 0.1
    opt.set_lr(0.05)
    assert [g["lr"] for g in opt.param_groups] == [0.05, 0.05]
    opt.set_lr([0.3, 0.4])
    assert [g["lr"] for g in opt.param_groups] == [0.3, 0.4]
    assert opt.get_lr() == 0.3
    with pytest.raises(ValueError, match="one per param group"):
        opt.set_lr([0.1])
    with pytest.raises(ValueError, match="Invalid learning rate"):
        opt.set_lr(-1.0)
    a.grad, b.grad = pf.tensor([1.0]), pf.tensor([1.0])
    opt.step()
    np.testing.assert_allclose([a.item(), b.item()], [0.7, 0.6], rtol=1e-6)


# --------------------------------------------------------------------------
# zero_grad
# --------------------------------------------------------------------------


def test_zero_grad_set_to_none():
    a, b = leaf([1.0, 2.0]), leaf([3.0])
    a.grad = pf.tensor([5.0, 6.0])
    opt = optim.SGD([a, b], lr=0.1)
    opt.zero_grad()
    assert a.grad is None and b.grad is None


def test_zero_grad_to_zeros():
    a, b = leaf([1.0, 2.0]), leaf([3.0], dtype=np.float64)
    a.grad = pf.tensor([5.0, 6.0])
    b.grad = pf.tensor(np.array([7.0]))
    c = leaf([0.0])
    opt = optim.SGD([a, b, c], lr=0.1)
    opt.zero_grad(set_to_none=False)
    assert values(a.grad) == [0.0, 0.0] and a.grad.dtype == pf.float32
    assert values(b.grad) == [0.0] and b.grad.dtype == pf.float64
    assert c.grad is None  # no gradient stays no gradient
    assert not a.grad.requires_grad
    # A zero gradient still takes a step (weight decay acts); a None gradient does not.
    opt2 = optim.SGD([a, c], lr=0.1, weight_decay=1.0)
    opt2.step()
    np.testing.assert_allclose(values(a), [0.9, 1.8], rtol=1e-6)
    assert values(c) == [0.0]


# --------------------------------------------------------------------------
# step
# --------------------------------------------------------------------------


def test_params_without_grad_are_skipped():
    a, b = leaf([1.0]), leaf([2.0])
    opt = optim.Adam([a, b], lr=0.1)
    a.grad = pf.tensor([1.0])
    opt.step()
    assert b not in opt.state and values(b) == [2.0]
    assert opt.state[a]["step"] == 1.0


def test_step_keeps_grad_requires_grad_dtype_and_identity():
    a = leaf([1.0, 2.0])
    grad = pf.tensor([0.5, 0.5])
    a.grad = grad
    opt = optim.SGD([a], lr=1.0)
    before = id(a)
    opt.step()
    assert id(a) == before and opt.param_groups[0]["params"][0] is a
    assert a.requires_grad and a.is_leaf and a.dtype == pf.float32
    assert values(a.grad) == [0.5, 0.5]
    assert values(a) == [0.5, 1.5]


def test_grad_of_another_dtype_is_cast_to_the_param_dtype():
    a = leaf([1.0, 2.0])
    a.grad = pf.tensor(np.array([0.25, 0.5]))  # float64
    opt = optim.Adam([a], lr=0.1)
    opt.step()
    assert a.dtype == pf.float32
    assert all(v.dtype == pf.float32 for k, v in opt.state[a].items() if k != "step")


def test_params_that_do_not_require_grad_are_still_stepped_when_given_a_grad():
    a = pf.tensor([1.0])
    a.grad = pf.tensor([1.0])
    optim.SGD([a], lr=0.5).step()
    assert values(a) == [0.5] and not a.requires_grad


def test_closure_is_called_once_and_its_loss_returned():
    w = leaf([3.0])
    calls = []

    def closure():
        calls.append(1)
        w.grad = 2 * w.detach()
        return (w * w).sum().item()

    opt = optim.SGD([w], lr=0.25)
    loss = opt.step(closure)
    assert loss == 9.0 and len(calls) == 1
    assert w.item() == 1.5
    assert opt.step() is None


def test_sgd_minimizes_a_quadratic():
    target = np.array([1.0, -2.0, 3.0], dtype=np.float32)
    for make in OPTIMIZER_FACTORIES.values():
        w = leaf([0.0, 0.0, 0.0])
        opt = make([w])
        for g in opt.param_groups:
            g["lr"] = 0.05
            g["weight_decay"] = 0.0
        first = float(np.sum((w.numpy() - target) ** 2))
        for _ in range(50):
            opt.zero_grad()
            w.grad = 2 * (w.detach() - pf.tensor(target))
            opt.step()
        assert float(np.sum((w.numpy() - target) ** 2)) < 0.5 * first


def test_maximize_flips_the_direction():
    a, b = leaf([1.0]), leaf([1.0])
    a.grad, b.grad = pf.tensor([1.0]), pf.tensor([1.0])
    optim.SGD([a], lr=0.1).step()
    optim.SGD([b], lr=0.1, maximize=True).step()
    np.testing.assert_allclose([a.item(), b.item()], [0.9, 1.1], rtol=1e-6)


def test_adamw_is_adam_with_decoupled_weight_decay():
    a, b = leaf([1.0, -2.0]), leaf([1.0, -2.0])
    opt_a = optim.AdamW([a], lr=0.1, weight_decay=0.3)
    opt_b = optim.Adam([b], lr=0.1, weight_decay=0.3, decoupled_weight_decay=True)
    for g in ([0.5, 0.1], [-0.2, 0.3], [0.1, -0.4]):
        a.grad = pf.tensor(g)
        b.grad = pf.tensor(g)
        opt_a.step()
        opt_b.step()
    assert values(a) == values(b)


# --------------------------------------------------------------------------
# one evaluation pass per step
# --------------------------------------------------------------------------


class EvalCounter:
    def __init__(self, real):
        self.real = real
        self.calls = []

    def __call__(self, *tensors):
        self.calls.append(tensors)
        return self.real(*tensors)


@pytest.mark.parametrize("name", sorted(OPTIMIZER_FACTORIES))
def test_step_realizes_everything_in_one_evaluation(name, monkeypatch):
    params = [leaf(np.ones((3, 4))), leaf(np.arange(5.0)), leaf([7.0])]
    opt = OPTIMIZER_FACTORIES[name](params)
    counter = EvalCounter(pf.eval)
    monkeypatch.setattr(pf, "eval", counter)
    for step in range(3):
        # Lazy parameters and lazy gradients: nothing is computed before the step.
        for i, p in enumerate(params):
            p.data = p.detach() * 1.0
            if i == 2 and step == 1:
                p.grad = None  # skipped in this step
            else:
                p.grad = pf.ones(p.shape) * (0.5 + step) - p.detach() * 0.1
            assert pf.is_lazy(p)
        counter.calls.clear()
        opt.step()
        assert len(counter.calls) == 1, f"step {step} used {len(counter.calls)} evaluations"
        (evaluated,) = counter.calls
        n_state = sum(
            1 for p in params for k, v in opt.state[p].items() if isinstance(v, pf.Tensor)
        )
        updated = 2 if step == 1 else 3
        stepped_state = sum(
            1 for p in params[:updated] for v in opt.state[p].values() if isinstance(v, pf.Tensor)
        )
        assert len(evaluated) == updated + stepped_state
        assert n_state >= stepped_state
        for p in params[:updated]:
            assert not pf.is_lazy(p)
            assert p.requires_grad and p.is_leaf
            assert set(opt.state[p]) == STATE_KEYS[name]
            for v in opt.state[p].values():
                if isinstance(v, pf.Tensor):
                    assert not pf.is_lazy(v)
                    assert not v.requires_grad
    # No gradients: nothing to evaluate.
    opt.zero_grad()
    counter.calls.clear()
    opt.step()
    assert counter.calls == []


# --------------------------------------------------------------------------
# state_dict / load_state_dict
# --------------------------------------------------------------------------


def test_state_dict_format():
    a, b, c = leaf([1.0, 2.0]), leaf([3.0]), leaf([4.0, 5.0, 6.0])
    opt = optim.Adam([{"params": [a]}, {"params": [b, c], "lr": 0.5}], lr=0.1, amsgrad=True)
    a.grad, c.grad = pf.tensor([1.0, 1.0]), pf.tensor([1.0, 2.0, 3.0])
    opt.step()
    sd = opt.state_dict()
    assert set(sd) == {"state", "param_groups"}
    assert [g["params"] for g in sd["param_groups"]] == [[0], [1, 2]]
    assert sd["param_groups"][1]["lr"] == 0.5 and sd["param_groups"][0]["betas"] == (0.9, 0.999)
    assert sorted(sd["state"]) == [0, 2]  # b had no gradient
    st = sd["state"][2]
    assert set(st) == {"step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq"}
    assert isinstance(st["step"], pf.Tensor) and st["step"].dtype == pf.float32
    assert st["step"].shape == [] and st["step"].item() == 1.0
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert isinstance(st[key], pf.Tensor) and st[key].shape == [3]
    np.testing.assert_allclose(values(st["exp_avg"]), [0.1, 0.2, 0.3], rtol=1e-6)


def test_state_dict_is_a_snapshot():
    a = leaf([1.0, 2.0])
    opt = optim.SGD([a], lr=0.1, momentum=0.9)
    a.grad = pf.tensor([1.0, 1.0])
    opt.step()
    sd = opt.state_dict()
    saved = values(sd["state"][0]["momentum_buffer"])
    opt.step()
    opt.param_groups[0]["lr"] = 0.01
    assert values(sd["state"][0]["momentum_buffer"]) == saved
    assert sd["param_groups"][0]["lr"] == 0.1
    assert values(opt.state[a]["momentum_buffer"]) != saved


@pytest.mark.parametrize("name", sorted(OPTIMIZER_FACTORIES))
def test_state_dict_round_trip_continues_identically(name, data):
    make = OPTIMIZER_FACTORIES[name]
    n = U.steps(data)
    full, _ = golden_run(make, data, 0, n)

    first, opt1 = golden_run(make, data, 0, n // 2)
    saved = opt1.state_dict()
    # A fresh optimizer over fresh parameters holding the same values, with other settings.
    params = [pf.tensor(p.numpy()).requires_grad_() for p in first]
    opt2 = make(params)
    for g in opt2.param_groups:
        g["lr"] = 123.0
    opt2.load_state_dict(saved)
    assert [g["lr"] for g in opt2.param_groups] == [g["lr"] for g in opt1.param_groups]
    assert all(g["params"] == params for g in opt2.param_groups)
    resumed, _ = golden_run(make, data, n // 2, n, params=params, opt=opt2)
    for p_full, p_resumed in zip(full, resumed):
        np.testing.assert_array_equal(p_resumed.numpy(), p_full.numpy())


def test_load_state_dict_casts_state_to_param_dtype_and_accepts_numpy():
    a = leaf([1.0, 2.0])
    opt = optim.Adam([a], lr=0.1)
    sd = {
        "state": {
            0: {
                "step": np.float32(3.0),
                "exp_avg": np.array([0.1, 0.2]),  # float64 -> float32
                "exp_avg_sq": pf.tensor(np.array([0.01, 0.04])),
            }
        },
        "param_groups": [
            {"lr": 0.05, "betas": [0.8, 0.9], "eps": 1e-8, "weight_decay": 0.0, "params": [0]}
        ],
    }
    opt.load_state_dict(sd)
    st = opt.state[a]
    assert st["step"] == 3.0 and isinstance(st["step"], float)
    assert st["exp_avg"].dtype == pf.float32 and st["exp_avg_sq"].dtype == pf.float32
    group = opt.param_groups[0]
    assert group["betas"] == (0.8, 0.9)  # lists (e.g. from JSON) become tuples
    assert group["amsgrad"] is False and group["maximize"] is False  # filled defaults
    assert group["params"] == [a]
    a.grad = pf.tensor([1.0, 1.0])
    opt.step()
    assert opt.state[a]["step"] == 4.0


def test_load_state_dict_validates_layout():
    a, b = leaf([1.0]), leaf([2.0])
    opt = optim.SGD([a, b], lr=0.1, momentum=0.9)
    a.grad = pf.tensor([1.0])
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.SGD([{"params": [a]}, {"params": [b]}], lr=0.1).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size"):
        optim.SGD([a], lr=0.1).load_state_dict(sd)
    c, d = leaf([1.0, 2.0]), leaf([2.0])
    with pytest.raises(ValueError, match="shape"):
        optim.SGD([c, d], lr=0.1).load_state_dict(sd)


def test_adamw_state_dict_keeps_decoupled_weight_decay():
    a = leaf([1.0])
    sd = optim.Adam([a], lr=0.1, weight_decay=0.1).state_dict()
    opt = optim.AdamW([a])
    opt.load_state_dict(sd)
    assert opt.param_groups[0]["decoupled_weight_decay"] is True


def test_state_dict_round_trip_with_scheduler():
    data, cfg = U.load_golden("opt_sgd_onecycle.npz")
    n = U.steps(data)
    params = U.make_params(data, "float32")
    opt = U.build_optimizer(cfg, params)
    sched = U.build_scheduler(cfg, opt)
    for step in range(n // 2):
        U.set_grads(params, data, step, "float32")
        opt.step()
        sched.step()
    opt_sd, sched_sd = opt.state_dict(), sched.state_dict()

    params2 = [pf.tensor(p.numpy()).requires_grad_() for p in params]
    opt2 = U.build_optimizer(cfg, params2)
    sched2 = U.build_scheduler(cfg, opt2)
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sched_sd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for step in range(n // 2, n):
            U.set_grads(params2, data, step, "float32")
            opt2.step()
            sched2.step()
            np.testing.assert_allclose(
                [g["lr"] for g in opt2.param_groups],
                data["lrs"][step + 1] if step + 1 < n else [sched2.get_last_lr()[0]],
                rtol=1e-12,
            )
    for i, p in enumerate(params2):
        np.testing.assert_allclose(p.numpy(), data[f"traj32_{i}"][-1], rtol=1e-5, atol=1e-6)
