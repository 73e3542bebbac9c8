#!/usr/bin/env python3
"""Generates the PyTorch golden files for ``tests/optim`` (optimizers and LR schedulers).

Needs PyTorch (a dev-only dependency: the tests themselves never import torch). Run from the
repository root::

    python3 scripts/make_golden_optim.py            # writes tests/golden/optim/*.npz

Optimizer goldens (``opt_<case>.npz``): two small parameters start from fixed values and take
``STEPS`` steps with a fixed gradient sequence (stored in the file, so the tests need no RNG);
at a few steps one parameter gets no gradient (``grad = None``, the step skips it). The
trajectory (parameters after every step) is recorded twice: with float32 parameters and with
float64 parameters, plus the final optimizer state of the float64 run. Some cases attach a
scheduler that is stepped after every ``optimizer.step()``.

Scheduler goldens (``sched_<case>.npz``): the learning rates of a two-group optimizer right after
the scheduler's construction and after each of ``steps`` steps (``optimizer.step()`` then
``scheduler.step()``), plus the momentum / beta1 for OneCycleLR and the metric sequence driving
ReduceLROnPlateau.

Every file holds its configuration as a JSON string (key ``config``) so the tests can rebuild
the same optimizer and scheduler in PyFlame.

Example:
    >>> # python3 scripts/make_golden_optim.py --check   (regenerate and compare, write nothing)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any, Dict, List

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "optim")
STEPS = 20
SHAPES = [(2, 3), (4,)]
# (step, parameter index) pairs where the parameter has no gradient.
NO_GRAD = [(4, 1), (11, 0), (12, 1)]

OPTIMIZER_CASES: Dict[str, Dict[str, Any]] = {
    "sgd_plain": {"optimizer": "SGD", "kwargs": {"lr": 0.1}},
    "sgd_momentum": {"optimizer": "SGD", "kwargs": {"lr": 0.05, "momentum": 0.9}},
    "sgd_dampening": {
        "optimizer": "SGD",
        "kwargs": {"lr": 0.05, "momentum": 0.9, "dampening": 0.3},
    },
    "sgd_nesterov": {
        "optimizer": "SGD",
        "kwargs": {"lr": 0.05, "momentum": 0.8, "nesterov": True},
    },
    "sgd_weight_decay": {"optimizer": "SGD", "kwargs": {"lr": 0.05, "weight_decay": 0.1}},
    "sgd_momentum_wd_maximize": {
        "optimizer": "SGD",
        "kwargs": {
            "lr": 0.03,
            "momentum": 0.7,
            "dampening": 0.1,
            "weight_decay": 0.05,
            "maximize": True,
        },
    },
    "sgd_nesterov_wd": {
        "optimizer": "SGD",
        "kwargs": {"lr": 0.04, "momentum": 0.9, "nesterov": True, "weight_decay": 0.02},
    },
    "sgd_groups": {
        "optimizer": "SGD",
        "kwargs": {"lr": 0.01, "momentum": 0.5},
        "groups": [
            {"params": [0], "lr": 0.1, "momentum": 0.9, "nesterov": True},
            {"params": [1], "weight_decay": 0.1},
        ],
    },
    "adam_plain": {"optimizer": "Adam", "kwargs": {"lr": 0.01}},
    "adam_betas_eps": {
        "optimizer": "Adam",
        "kwargs": {"lr": 0.02, "betas": [0.8, 0.99], "eps": 1e-3},
    },
    "adam_amsgrad": {"optimizer": "Adam", "kwargs": {"lr": 0.01, "amsgrad": True}},
    "adam_weight_decay": {"optimizer": "Adam", "kwargs": {"lr": 0.01, "weight_decay": 0.1}},
    "adam_amsgrad_wd_maximize": {
        "optimizer": "Adam",
        "kwargs": {
            "lr": 0.01,
            "betas": [0.5, 0.9],
            "weight_decay": 0.05,
            "amsgrad": True,
            "maximize": True,
        },
    },
    "adam_groups": {
        "optimizer": "Adam",
        "kwargs": {"lr": 0.01},
        "groups": [
            {"params": [0], "lr": 0.05, "betas": [0.7, 0.95]},
            {"params": [1], "weight_decay": 0.2, "amsgrad": True},
        ],
    },
    "adamw_default": {"optimizer": "AdamW", "kwargs": {}},
    "adamw": {"optimizer": "AdamW", "kwargs": {"lr": 0.01, "weight_decay": 0.1}},
    "adamw_amsgrad": {
        "optimizer": "AdamW",
        "kwargs": {"lr": 0.02, "betas": [0.85, 0.98], "weight_decay": 0.3, "amsgrad": True},
    },
    "rmsprop_plain": {"optimizer": "RMSprop", "kwargs": {"lr": 0.01}},
    "rmsprop_alpha_eps": {
        "optimizer": "RMSprop",
        "kwargs": {"lr": 0.005, "alpha": 0.8, "eps": 1e-3},
    },
    "rmsprop_centered": {
        "optimizer": "RMSprop",
        "kwargs": {"lr": 0.01, "alpha": 0.9, "centered": True},
    },
    "rmsprop_momentum": {"optimizer": "RMSprop", "kwargs": {"lr": 0.01, "momentum": 0.9}},
    "rmsprop_weight_decay": {
        "optimizer": "RMSprop",
        "kwargs": {"lr": 0.01, "weight_decay": 0.1},
    },
    "rmsprop_all": {
        "optimizer": "RMSprop",
        "kwargs": {
            "lr": 0.01,
            "alpha": 0.95,
            "centered": True,
            "momentum": 0.5,
            "weight_decay": 0.05,
            "maximize": True,
        },
    },
    "sgd_onecycle": {
        "optimizer": "SGD",
        "kwargs": {"lr": 0.1, "momentum": 0.9},
        "scheduler": {"name": "OneCycleLR", "kwargs": {"max_lr": 0.2, "total_steps": STEPS}},
    },
    "adam_onecycle_linear": {
        "optimizer": "Adam",
        "kwargs": {"lr": 0.01},
        "scheduler": {
            "name": "OneCycleLR",
            "kwargs": {
                "max_lr": 0.05,
                "total_steps": STEPS,
                "anneal_strategy": "linear",
                "three_phase": True,
            },
        },
    },
    "rmsprop_cosine": {
        "optimizer": "RMSprop",
        "kwargs": {"lr": 0.02, "momentum": 0.5},
        "scheduler": {"name": "CosineAnnealingLR", "kwargs": {"T_max": 8, "eta_min": 0.001}},
    },
}

# Two param groups with different base learning rates for every scheduler case.
SCHED_GROUP_LRS = [0.1, 0.03]
METRICS_STEPS = 40


def _metrics() -> List[float]:
    """A metric with improvements, plateaus and tiny (below-threshold) changes."""
    values = []
    x = 1.0
    for i in range(METRICS_STEPS):
        if i % 7 in (0, 1):
            x *= 0.9  # clear improvement
        elif i % 7 == 3:
            x *= 1.0 - 2e-5  # below the default relative threshold
        elif i % 7 == 5:
            x *= 1.05  # gets worse
        values.append(x)
    return values


SCHEDULER_CASES: Dict[str, Dict[str, Any]] = {
    "steplr": {"name": "StepLR", "kwargs": {"step_size": 3, "gamma": 0.5}, "steps": 20},
    "multisteplr": {
        "name": "MultiStepLR",
        "kwargs": {"milestones": [2, 5, 5, 11], "gamma": 0.3},
        "steps": 20,
    },
    "exponentiallr": {"name": "ExponentialLR", "kwargs": {"gamma": 0.9}, "steps": 20},
    "cosine": {"name": "CosineAnnealingLR", "kwargs": {"T_max": 10}, "steps": 20},
    "cosine_eta_min_past_tmax": {
        "name": "CosineAnnealingLR",
        "kwargs": {"T_max": 7, "eta_min": 0.001},
        "steps": 45,
    },
    "linearlr_warmup": {
        "name": "LinearLR",
        "kwargs": {"start_factor": 0.25, "end_factor": 1.0, "total_iters": 8},
        "steps": 20,
    },
    "linearlr_decay": {
        "name": "LinearLR",
        "kwargs": {"start_factor": 1.0, "end_factor": 0.1, "total_iters": 6},
        "steps": 20,
    },
    "linearlr_default": {"name": "LinearLR", "kwargs": {}, "steps": 20},
    "polynomiallr": {
        "name": "PolynomialLR",
        "kwargs": {"total_iters": 12, "power": 2.0},
        "steps": 20,
    },
    "polynomiallr_sqrt": {
        "name": "PolynomialLR",
        "kwargs": {"total_iters": 15, "power": 0.5},
        "steps": 20,
    },
    "onecycle_cos": {
        "name": "OneCycleLR",
        "kwargs": {"max_lr": [1.0, 0.5], "total_steps": 20},
        "steps": 20,
    },
    "onecycle_linear_three_phase": {
        "name": "OneCycleLR",
        "kwargs": {
            "max_lr": 0.8,
            "total_steps": 25,
            "pct_start": 0.25,
            "anneal_strategy": "linear",
            "three_phase": True,
            "div_factor": 10.0,
            "final_div_factor": 100.0,
            "base_momentum": [0.8, 0.7],
            "max_momentum": 0.9,
        },
        "steps": 25,
    },
    "onecycle_adam_betas": {
        "name": "OneCycleLR",
        "optimizer": "Adam",
        "kwargs": {"max_lr": 0.01, "epochs": 4, "steps_per_epoch": 5, "pct_start": 0.4},
        "steps": 20,
    },
    "onecycle_no_momentum": {
        "name": "OneCycleLR",
        "kwargs": {"max_lr": 0.3, "total_steps": 20, "cycle_momentum": False},
        "steps": 20,
    },
    "plateau_min_rel": {
        "name": "ReduceLROnPlateau",
        "kwargs": {"mode": "min", "factor": 0.5, "patience": 2, "cooldown": 1},
        "steps": METRICS_STEPS,
    },
    "plateau_min_abs_min_lr": {
        "name": "ReduceLROnPlateau",
        "kwargs": {
            "mode": "min",
            "factor": 0.3,
            "patience": 1,
            "threshold": 0.01,
            "threshold_mode": "abs",
            "min_lr": [0.005, 0.002],
        },
        "steps": METRICS_STEPS,
    },
    "plateau_max_rel_cooldown": {
        "name": "ReduceLROnPlateau",
        "kwargs": {"mode": "max", "factor": 0.7, "patience": 0, "cooldown": 2, "min_lr": 0.01},
        "steps": METRICS_STEPS,
    },
    "plateau_max_abs_eps": {
        "name": "ReduceLROnPlateau",
        "kwargs": {
            "mode": "max",
            "factor": 0.5,
            "patience": 1,
            "threshold": 0.02,
            "threshold_mode": "abs",
            "eps": 0.004,
        },
        "steps": METRICS_STEPS,
    },
}


def _initial_data(seed: int) -> Dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    data = {}
    for i, shape in enumerate(SHAPES):
        data[f"p0_{i}"] = rng.standard_normal(shape)
        # Per-step scale so gradients vary in magnitude (and Adam's normalization matters).
        scale = 10.0 ** rng.uniform(-1.0, 0.5, size=(STEPS,) + (1,) * len(shape))
        data[f"grads_{i}"] = rng.standard_normal((STEPS,) + shape) * scale
    mask = np.ones((STEPS, len(SHAPES)), dtype=bool)
    for step, index in NO_GRAD:
        mask[step, index] = False
    data["has_grad"] = mask
    return data


def _torch_kwargs(kwargs: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(kwargs)
    if "betas" in out:
        out["betas"] = tuple(float(b) for b in out["betas"])
    return out


def _run_optimizer(torch: Any, cfg: Dict[str, Any], data: Dict[str, np.ndarray], dtype: Any):
    params = [
        torch.tensor(data[f"p0_{i}"], dtype=dtype, requires_grad=True) for i in range(len(SHAPES))
    ]
    cls = getattr(torch.optim, cfg["optimizer"])
    if cfg.get("groups"):
        groups = []
        for g in cfg["groups"]:
            group = _torch_kwargs({k: v for k, v in g.items() if k != "params"})
            group["params"] = [params[i] for i in g["params"]]
            groups.append(group)
        opt = cls(groups, **_torch_kwargs(cfg["kwargs"]), foreach=False)
    else:
        opt = cls(params, **_torch_kwargs(cfg["kwargs"]), foreach=False)
    sched = None
    if cfg.get("scheduler"):
        sched_cls = getattr(torch.optim.lr_scheduler, cfg["scheduler"]["name"])
        sched = sched_cls(opt, **cfg["scheduler"]["kwargs"])
    traj = [np.zeros((STEPS,) + s) for s in SHAPES]
    lrs = np.zeros((STEPS, len(opt.param_groups)))
    for step in range(STEPS):
        lrs[step] = [g["lr"] for g in opt.param_groups]
        for i, p in enumerate(params):
            if data["has_grad"][step, i]:
                p.grad = torch.tensor(data[f"grads_{i}"][step], dtype=dtype)
            else:
                p.grad = None
        opt.step()
        if sched is not None:
            sched.step()
        for i, p in enumerate(params):
            traj[i][step] = p.detach().numpy()
    return params, opt, traj, lrs


def make_optimizer_golden(torch: Any, name: str, cfg: Dict[str, Any]) -> Dict[str, np.ndarray]:
    data = _initial_data(seed=sum(map(ord, name)))
    out: Dict[str, np.ndarray] = {"config": np.array(json.dumps(cfg, sort_keys=True))}
    out.update(data)
    _, _, traj32, lrs = _run_optimizer(torch, cfg, data, torch.float32)
    params, opt, traj64, _ = _run_optimizer(torch, cfg, data, torch.float64)
    for i in range(len(SHAPES)):
        out[f"traj32_{i}"] = np.stack(traj32[i]).astype(np.float32)
        out[f"traj64_{i}"] = np.stack(traj64[i])
        for key, value in sorted(opt.state[params[i]].items()):
            out[f"state64_{i}_{key}"] = np.asarray(value.detach().numpy(), dtype=np.float64)
    if cfg.get("scheduler"):
        out["lrs"] = lrs
    return out


def make_scheduler_golden(torch: Any, name: str, cfg: Dict[str, Any]) -> Dict[str, np.ndarray]:
    params = [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)]
    groups = [{"params": [p], "lr": lr} for p, lr in zip(params, SCHED_GROUP_LRS)]
    opt_name = cfg.get("optimizer", "SGD")
    if opt_name == "SGD":
        opt = torch.optim.SGD(groups, lr=SCHED_GROUP_LRS[0], momentum=0.9)
    else:
        opt = getattr(torch.optim, opt_name)(groups, lr=SCHED_GROUP_LRS[0])
    sched = getattr(torch.optim.lr_scheduler, cfg["name"])(opt, **cfg["kwargs"])
    metrics = _metrics()

    def momenta() -> List[float]:
        if opt_name == "SGD":
            return [g["momentum"] for g in opt.param_groups]
        return [g["betas"][0] for g in opt.param_groups]

    lrs = [[g["lr"] for g in opt.param_groups]]
    last = [sched.get_last_lr()]
    mom = [momenta()]
    for step in range(cfg["steps"]):
        opt.step()
        if cfg["name"] == "ReduceLROnPlateau":
            sched.step(metrics[step])
        else:
            sched.step()
        lrs.append([g["lr"] for g in opt.param_groups])
        last.append(sched.get_last_lr())
        mom.append(momenta())
    assert lrs == last, "get_last_lr() must equal the group lrs"
    out = {
        "config": np.array(json.dumps(cfg, sort_keys=True)),
        "group_lrs": np.array(SCHED_GROUP_LRS, dtype=np.float64),
        "lrs": np.array(lrs, dtype=np.float64),
        "momentum": np.array(mom, dtype=np.float64),
    }
    if cfg["name"] == "ReduceLROnPlateau":
        out["metrics"] = np.array(metrics, dtype=np.float64)
    return out


def main(argv: List[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=OUT_DIR, help="output directory")
    parser.add_argument(
        "--check", action="store_true", help="compare with the existing files, write nothing"
    )
    args = parser.parse_args(argv)
    import torch  # a dev-only dependency, imported here so the module imports without it

    torch.set_default_dtype(torch.float32)
    files: Dict[str, Dict[str, np.ndarray]] = {}
    for name, cfg in OPTIMIZER_CASES.items():
        files[f"opt_{name}.npz"] = make_optimizer_golden(torch, name, cfg)
    for name, cfg in SCHEDULER_CASES.items():
        files[f"sched_{name}.npz"] = make_scheduler_golden(torch, name, cfg)

    os.makedirs(args.out, exist_ok=True)
    mismatched = []
    for fname, arrays in files.items():
        path = os.path.join(args.out, fname)
        if args.check:
            with np.load(path, allow_pickle=False) as old:
                same = set(old.files) == set(arrays) and all(
                    np.array_equal(old[k], arrays[k]) for k in arrays
                )
            if not same:
                mismatched.append(fname)
        else:
            np.savez_compressed(path, **arrays)
    if args.check:
        for fname in mismatched:
            print(f"differs: {fname}")
        print(f"{len(files) - len(mismatched)}/{len(files)} golden files up to date")
        return 1 if mismatched else 0
    where = os.path.normpath(args.out)
    print(f"wrote {len(files)} golden files to {where} (torch {torch.__version__})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
