"""Helpers for the optimizer / scheduler tests: loading the PyTorch golden files written by
``scripts/make_golden_optim.py`` and rebuilding the same configurations in PyFlame.

No torch here: everything the tests need (initial parameters, gradients, configurations and
PyTorch's results) is in the ``.npz`` files.
"""

import json
import os

import numpy as np
import pyflame as pf
from pyflame import optim

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "optim")

NP_DTYPES = {"float32": np.float32, "float64": np.float64}


def load_golden(fname):
    """The arrays of one golden file (a dict) and its decoded configuration."""
    with np.load(os.path.join(GOLDEN_DIR, fname), allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    return data, json.loads(str(data["config"]))


def golden_files(prefix):
    return sorted(f for f in os.listdir(GOLDEN_DIR) if f.startswith(prefix) and f.endswith(".npz"))


def _kwargs(kwargs):
    out = dict(kwargs)
    if "betas" in out:
        out["betas"] = tuple(out["betas"])
    return out


def num_params(data):
    return sum(1 for k in data if k.startswith("p0_"))


def make_params(data, dtype):
    """Fresh leaf parameters (requires_grad) with the golden's initial values."""
    return [
        pf.tensor(data[f"p0_{i}"].astype(NP_DTYPES[dtype])).requires_grad_()
        for i in range(num_params(data))
    ]


def build_optimizer(cfg, params):
    cls = getattr(optim, cfg["optimizer"])
    if cfg.get("groups"):
        groups = []
        for g in cfg["groups"]:
            group = _kwargs({k: v for k, v in g.items() if k != "params"})
            group["params"] = [params[i] for i in g["params"]]
            groups.append(group)
        return cls(groups, **_kwargs(cfg["kwargs"]))
    return cls(params, **_kwargs(cfg["kwargs"]))


def build_scheduler(cfg, opt):
    if not cfg.get("scheduler"):
        return None
    return getattr(optim, cfg["scheduler"]["name"])(opt, **cfg["scheduler"]["kwargs"])


def set_grads(params, data, step, dtype):
    """Gives each parameter the golden gradient of `step` (or None where it has none)."""
    for i, p in enumerate(params):
        if data["has_grad"][step, i]:
            p.grad = pf.tensor(data[f"grads_{i}"][step].astype(NP_DTYPES[dtype]))
        else:
            p.grad = None


def steps(data):
    return data["grads_0"].shape[0]


def scheduler_optimizer(cfg, group_lrs):
    """The two-group optimizer the scheduler goldens were made with."""
    params = [pf.zeros([2]).requires_grad_(), pf.zeros([3]).requires_grad_()]
    groups = [{"params": [p], "lr": float(lr)} for p, lr in zip(params, group_lrs)]
    if cfg.get("optimizer", "SGD") == "SGD":
        return optim.SGD(groups, lr=float(group_lrs[0]), momentum=0.9)
    return getattr(optim, cfg["optimizer"])(groups, lr=float(group_lrs[0]))


def momenta(opt):
    if isinstance(opt, optim.SGD):
        return [g["momentum"] for g in opt.param_groups]
    return [g["betas"][0] for g in opt.param_groups]


def build_plain_scheduler(cfg, opt):
    return getattr(optim, cfg["name"])(opt, **cfg["kwargs"])


def step_scheduler(cfg, sched, data, step):
    if cfg["name"] == "ReduceLROnPlateau":
        sched.step(float(data["metrics"][step]))
    else:
        sched.step()
