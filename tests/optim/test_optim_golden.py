"""PyFlame's optimizers and schedulers against PyTorch golden trajectories.

The golden files are made by ``scripts/make_golden_optim.py`` (torch 2.x, ``foreach=False``);
see that script for what each file holds. Tolerances: float32 parameters rtol 1e-5, float64
parameters rtol 1e-10, learning rates and momenta 1e-12 relative.
"""

import numpy as np
import optim_testutil as U
import pyflame as pf
import pytest

OPT_CASES = [
    "sgd_plain",
    "sgd_momentum",
    "sgd_dampening",
    "sgd_nesterov",
    "sgd_weight_decay",
    "sgd_momentum_wd_maximize",
    "sgd_nesterov_wd",
    "sgd_groups",
    "adam_plain",
    "adam_betas_eps",
    "adam_amsgrad",
    "adam_weight_decay",
    "adam_amsgrad_wd_maximize",
    "adam_groups",
    "adamw_default",
    "adamw",
    "adamw_amsgrad",
    "rmsprop_plain",
    "rmsprop_alpha_eps",
    "rmsprop_centered",
    "rmsprop_momentum",
    "rmsprop_weight_decay",
    "rmsprop_all",
    "sgd_onecycle",
    "adam_onecycle_linear",
    "rmsprop_cosine",
]

SCHED_CASES = [
    "steplr",
    "multisteplr",
    "exponentiallr",
    "cosine",
    "cosine_eta_min_past_tmax",
    "linearlr_warmup",
    "linearlr_decay",
    "linearlr_default",
    "polynomiallr",
    "polynomiallr_sqrt",
    "onecycle_cos",
    "onecycle_linear_three_phase",
    "onecycle_adam_betas",
    "onecycle_no_momentum",
    "plateau_min_rel",
    "plateau_min_abs_min_lr",
    "plateau_max_rel_cooldown",
    "plateau_max_abs_eps",
]

TOL = {"float32": dict(rtol=1e-5, atol=1e-6), "float64": dict(rtol=1e-10, atol=1e-12)}
LR_TOL = dict(rtol=1e-12, atol=1e-15)


def test_golden_files_are_the_expected_set():
    assert U.golden_files("opt_") == sorted(f"opt_{c}.npz" for c in OPT_CASES)
    assert U.golden_files("sched_") == sorted(f"sched_{c}.npz" for c in SCHED_CASES)


def test_every_option_is_covered():
    """Each optimizer option the issue lists appears in at least one golden configuration."""
    seen = set()
    for case in OPT_CASES:
        _, cfg = U.load_golden(f"opt_{case}.npz")
        groups = cfg.get("groups") or [{}]
        for g in groups:
            merged = {**cfg["kwargs"], **g}
            for key, value in merged.items():
                if key != "params" and value not in (0, 0.0, False):
                    seen.add((cfg["optimizer"], key))
    for opt_name, keys in {
        "SGD": ["lr", "momentum", "dampening", "nesterov", "weight_decay", "maximize"],
        "Adam": ["lr", "betas", "eps", "weight_decay", "amsgrad", "maximize"],
        "AdamW": ["lr", "betas", "weight_decay", "amsgrad"],
        "RMSprop": ["lr", "alpha", "eps", "centered", "momentum", "weight_decay", "maximize"],
    }.items():
        for key in keys:
            assert (opt_name, key) in seen, (opt_name, key)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", OPT_CASES)
def test_optimizer_trajectory_matches_torch(case, dtype):
    data, cfg = U.load_golden(f"opt_{case}.npz")
    params = U.make_params(data, dtype)
    opt = U.build_optimizer(cfg, params)
    sched = U.build_scheduler(cfg, opt)
    for step in range(U.steps(data)):
        if sched is not None:
            np.testing.assert_allclose(
                [g["lr"] for g in opt.param_groups], data["lrs"][step], **LR_TOL
            )
        U.set_grads(params, data, step, dtype)
        opt.step()
        if sched is not None:
            sched.step()
        for i, p in enumerate(params):
            assert p.dtype == getattr(pf, dtype)
            assert p.requires_grad
            np.testing.assert_allclose(
                p.numpy(),
                data[f"traj{dtype[-2:]}_{i}"][step],
                err_msg=f"{case} {dtype}: param {i} after step {step + 1}",
                **TOL[dtype],
            )
    if dtype == "float64":
        for i, p in enumerate(params):
            keys = sorted(k.split("_", 2)[2] for k in data if k.startswith(f"state64_{i}_"))
            assert sorted(opt.state[p]) == keys
            for key in keys:
                expected = data[f"state64_{i}_{key}"]
                value = opt.state[p][key]
                got = value if key == "step" else value.numpy()
                np.testing.assert_allclose(got, expected, err_msg=f"state {key}", **TOL[dtype])


@pytest.mark.parametrize("case", SCHED_CASES)
def test_scheduler_matches_torch(case):
    data, cfg = U.load_golden(f"sched_{case}.npz")
    opt = U.scheduler_optimizer(cfg, data["group_lrs"])
    sched = U.build_plain_scheduler(cfg, opt)
    lrs, last, mom = [U.momenta(opt)], [sched.get_last_lr()], [U.momenta(opt)]
    lrs = [[g["lr"] for g in opt.param_groups]]
    for step in range(cfg["steps"]):
        opt.step()
        U.step_scheduler(cfg, sched, data, step)
        lrs.append([g["lr"] for g in opt.param_groups])
        last.append(list(sched.get_last_lr()))
        mom.append(U.momenta(opt))
    assert lrs == last
    np.testing.assert_allclose(np.array(lrs), data["lrs"], **LR_TOL)
    np.testing.assert_allclose(np.array(mom), data["momentum"], **LR_TOL)
