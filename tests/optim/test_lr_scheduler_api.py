"""LR scheduler API: construction, step order, state_dict, closed forms, errors."""

import math
import warnings

import numpy as np
import optim_testutil as U
import pyflame as pf
import pytest
from pyflame import optim
from pyflame.optim import lr_scheduler

SCHEDULERS = {
    "steplr": lambda o: optim.StepLR(o, step_size=3, gamma=0.5),
    "multisteplr": lambda o: optim.MultiStepLR(o, milestones=[2, 5, 5, 11], gamma=0.3),
    "exponentiallr": lambda o: optim.ExponentialLR(o, gamma=0.9),
    "cosine": lambda o: optim.CosineAnnealingLR(o, T_max=10),
    "cosine_eta_min_past_tmax": lambda o: optim.CosineAnnealingLR(o, T_max=7, eta_min=0.001),
    "linearlr_warmup": lambda o: optim.LinearLR(o, start_factor=0.25, total_iters=8),
    "polynomiallr": lambda o: optim.PolynomialLR(o, total_iters=12, power=2.0),
    "onecycle_cos": lambda o: optim.OneCycleLR(o, max_lr=[1.0, 0.5], total_steps=20),
    "plateau_min_rel": lambda o: optim.ReduceLROnPlateau(
        o, mode="min", factor=0.5, patience=2, cooldown=1
    ),
}

CLOSED_FORM = [
    "steplr",
    "multisteplr",
    "exponentiallr",
    "cosine",
    "linearlr_warmup",
    "polynomiallr",
]


def two_group_sgd():
    a, b = pf.zeros([2]).requires_grad_(), pf.zeros([3]).requires_grad_()
    return optim.SGD([{"params": [a], "lr": 0.1}, {"params": [b], "lr": 0.03}], momentum=0.9)


def test_exports():
    for name in lr_scheduler.__all__:
        assert getattr(optim, name) is getattr(lr_scheduler, name)
    assert issubclass(optim.ReduceLROnPlateau, optim.LRScheduler)


def test_constructor_takes_the_initial_step():
    opt = two_group_sgd()
    sched = optim.StepLR(opt, step_size=2)
    assert sched.last_epoch == 0 and sched._step_count == 1
    assert [g["initial_lr"] for g in opt.param_groups] == [0.1, 0.03]
    assert sched.base_lrs == [0.1, 0.03]
    assert sched.get_last_lr() == [0.1, 0.03]
    # A second scheduler keeps the recorded initial_lr.
    opt.param_groups[0]["lr"] = 0.5
    assert optim.ExponentialLR(opt, gamma=0.5).base_lrs == [0.1, 0.03]


def test_resuming_needs_initial_lr():
    with pytest.raises(KeyError, match="initial_lr"):
        optim.StepLR(two_group_sgd(), step_size=2, last_epoch=4)
    opt = two_group_sgd()
    optim.StepLR(opt, step_size=2)
    sched = optim.StepLR(opt, step_size=2, last_epoch=4)
    assert sched.last_epoch == 5


def test_requires_an_optimizer():
    for cls in (optim.StepLR, optim.ExponentialLR):
        with pytest.raises(TypeError, match="is not an Optimizer"):
            cls(object(), 1)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        optim.ReduceLROnPlateau(object())
    with pytest.raises(TypeError, match="is not an Optimizer"):
        optim.OneCycleLR(object(), max_lr=0.1, total_steps=10)


def test_correct_step_order_does_not_warn():
    opt = two_group_sgd()
    sched = optim.CosineAnnealingLR(opt, T_max=5)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(6):
            opt.step()
            sched.step()


def test_scheduler_step_before_optimizer_step_warns():
    opt = two_group_sgd()
    sched = optim.StepLR(opt, step_size=2)
    with pytest.warns(UserWarning, match="before `optimizer.step\\(\\)`"):
        sched.step()


def test_get_lr_outside_step_warns():
    sched = optim.ExponentialLR(two_group_sgd(), gamma=0.5)
    with pytest.warns(UserWarning, match="get_last_lr"):
        sched.get_lr()


@pytest.mark.parametrize("name", CLOSED_FORM)
def test_step_with_epoch_uses_the_closed_form(name):
    data, _ = U.load_golden(f"sched_{name}.npz")
    opt = two_group_sgd()
    sched = SCHEDULERS[name](opt)
    opt.step()
    for epoch in (7, 3, 12, 0):
        with pytest.warns(UserWarning, match="epoch parameter"):
            sched.step(epoch)
        assert sched.last_epoch == epoch
        np.testing.assert_allclose(sched.get_last_lr(), data["lrs"][epoch], rtol=1e-12)


@pytest.mark.parametrize("name", sorted(SCHEDULERS))
def test_state_dict_round_trip(name):
    data, cfg = U.load_golden(f"sched_{name}.npz")
    n = cfg["steps"]
    opt = U.scheduler_optimizer(cfg, data["group_lrs"])
    sched = SCHEDULERS[name](opt)
    for step in range(n // 2):
        opt.step()
        U.step_scheduler(cfg, sched, data, step)
    sd = sched.state_dict()
    assert "optimizer" not in sd and sd["last_epoch"] == n // 2
    opt_sd = opt.state_dict()

    opt2 = U.scheduler_optimizer(cfg, data["group_lrs"])
    sched2 = SCHEDULERS[name](opt2)
    opt2.load_state_dict(opt_sd)
    sched2.load_state_dict(sd)
    assert sched2.get_last_lr() == sched.get_last_lr()
    for step in range(n // 2, n):
        opt2.step()
        U.step_scheduler(cfg, sched2, data, step)
        np.testing.assert_allclose(sched2.get_last_lr(), data["lrs"][step + 1], rtol=1e-12)
        np.testing.assert_allclose(U.momenta(opt2), data["momentum"][step + 1], rtol=1e-12)


def test_lr_changes_reach_the_update():
    w = pf.tensor([1.0])
    opt = optim.SGD([w], lr=1.0)
    sched = optim.MultiStepLR(opt, milestones=[1], gamma=0.1)
    w.grad = pf.tensor([1.0])
    opt.step()  # lr 1.0
    sched.step()
    opt.step()  # lr 0.1
    np.testing.assert_allclose(w.item(), 1.0 - 1.0 - 0.1, rtol=1e-6)


def test_linear_lr_validation():
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        optim.LinearLR(two_group_sgd(), start_factor=0.0)
    with pytest.raises(ValueError, match="Starting multiplicative factor"):
        optim.LinearLR(two_group_sgd(), start_factor=1.5)
    with pytest.raises(ValueError, match="Ending multiplicative factor"):
        optim.LinearLR(two_group_sgd(), end_factor=-0.1)


def test_polynomial_lr_end_lr():
    opt = optim.SGD([pf.zeros([1])], lr=1.0)
    sched = optim.PolynomialLR(opt, total_iters=5, power=2.0, end_lr=0.1)
    lrs = [opt.get_lr()]
    for _ in range(8):
        opt.step()
        sched.step()
        lrs.append(opt.get_lr())
    expected = [0.9 * (1 - min(t, 5) / 5) ** 2 + 0.1 for t in range(9)]
    np.testing.assert_allclose(lrs, expected, rtol=1e-12)


def test_cosine_matches_the_closed_form_within_t_max():
    opt = optim.SGD([pf.zeros([1])], lr=0.1)
    sched = optim.CosineAnnealingLR(opt, T_max=10, eta_min=0.01)
    for t in range(1, 11):
        opt.step()
        sched.step()
        expected = 0.01 + 0.09 * (1 + math.cos(math.pi * t / 10)) / 2
        np.testing.assert_allclose(opt.get_lr(), expected, rtol=1e-9, atol=1e-15)


# --------------------------------------------------------------------------
# OneCycleLR
# --------------------------------------------------------------------------


def test_one_cycle_errors():
    opt = two_group_sgd()
    with pytest.raises(ValueError, match="total_steps OR"):
        optim.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="positive integer total_steps"):
        optim.OneCycleLR(opt, max_lr=0.1, total_steps=0)
    with pytest.raises(ValueError, match="positive integer epochs"):
        optim.OneCycleLR(opt, max_lr=0.1, epochs=-1, steps_per_epoch=3)
    with pytest.raises(ValueError, match="pct_start"):
        optim.OneCycleLR(opt, max_lr=0.1, total_steps=10, pct_start=1.5)
    with pytest.raises(ValueError, match="anneal_strategy"):
        optim.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="same length as optimizer.param_groups"):
        optim.OneCycleLR(opt, max_lr=[0.1, 0.2, 0.3], total_steps=10)


def test_one_cycle_needs_momentum_or_betas():
    class Plain(optim.Optimizer):
        def __init__(self, params, lr=0.1):
            super().__init__(params, {"lr": lr})

        def _update(self, param, grad, state, group):
            return param - group["lr"] * grad, {}

    opt = Plain([pf.zeros([1])])
    with pytest.raises(ValueError, match="momentum or beta1"):
        optim.OneCycleLR(opt, max_lr=0.1, total_steps=10)
    sched = optim.OneCycleLR(opt, max_lr=0.1, total_steps=10, cycle_momentum=False)
    assert opt.get_lr() == pytest.approx(0.004)
    assert sched.total_steps == 10


def test_one_cycle_stepping_past_total_steps_raises():
    opt = two_group_sgd()
    sched = optim.OneCycleLR(opt, max_lr=0.1, total_steps=5)
    for _ in range(5):
        opt.step()
        sched.step()
    with pytest.raises(ValueError, match="Tried to step 6 times"):
        sched.step()


def test_one_cycle_sets_group_keys():
    opt = optim.Adam([pf.zeros([1])], lr=0.01, betas=(0.9, 0.99))
    optim.OneCycleLR(opt, max_lr=0.5, total_steps=10, div_factor=5.0, final_div_factor=10.0)
    g = opt.param_groups[0]
    assert g["initial_lr"] == 0.1 and g["max_lr"] == 0.5 and g["min_lr"] == 0.01
    assert g["betas"] == (0.95, 0.99)
    assert g["max_momentum"] == 0.95 and g["base_momentum"] == 0.85


# --------------------------------------------------------------------------
# ReduceLROnPlateau
# --------------------------------------------------------------------------


def test_plateau_errors():
    opt = two_group_sgd()
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        optim.ReduceLROnPlateau(opt, factor=1.0)
    with pytest.raises(ValueError, match="mode avg is unknown"):
        optim.ReduceLROnPlateau(opt, mode="avg")
    with pytest.raises(ValueError, match="threshold mode"):
        optim.ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError, match="expected 2 min_lrs"):
        optim.ReduceLROnPlateau(opt, min_lr=[0.1])


def test_plateau_accepts_tensor_metrics_and_tracks_state():
    opt = two_group_sgd()
    sched = optim.ReduceLROnPlateau(opt, patience=0, factor=0.5)
    assert sched.get_last_lr() == [0.1, 0.03]
    sched.step(pf.tensor(1.0))
    assert sched.best == 1.0 and sched.num_bad_epochs == 0
    sched.step(pf.tensor([2.0]).sum())
    assert sched.get_last_lr() == [0.05, 0.015]
    assert sched.last_epoch == 2 and not sched.in_cooldown


def test_plateau_min_lr_follows_added_groups():
    opt = two_group_sgd()
    sched = optim.ReduceLROnPlateau(opt, patience=0, min_lr=0.02)
    opt.add_param_group({"params": [pf.zeros([1])], "lr": 0.5})
    sched.step(1.0)
    sched.step(2.0)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.02, 0.02, 0.05])
    opt = two_group_sgd()
    sched = optim.ReduceLROnPlateau(opt, patience=0, min_lr=[0.0, 0.0])
    opt.add_param_group({"params": [pf.zeros([1])], "lr": 0.5})
    sched.step(1.0)
    with pytest.raises(RuntimeError, match="number of param groups"):
        sched.step(2.0)


def test_plateau_state_dict_restores_comparison_mode():
    opt = two_group_sgd()
    a = optim.ReduceLROnPlateau(opt, mode="max", threshold_mode="abs", threshold=0.5)
    a.step(1.0)
    b = optim.ReduceLROnPlateau(two_group_sgd())
    b.load_state_dict(a.state_dict())
    assert (b.mode, b.threshold_mode, b.threshold, b.best) == ("max", "abs", 0.5, 1.0)
    assert b.mode_worse == -math.inf
