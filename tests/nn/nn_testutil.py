"""Helpers for the ``pyflame.nn`` tests: loading the PyTorch golden files written by
``scripts/make_golden_nn.py`` and replaying each case in PyFlame.

No torch here: inputs, parameters, outputs and gradients all come from the ``.npz`` files.
"""

import json
import os
import warnings

import numpy as np
import pyflame as pf
from pyflame import nn
from pyflame.nn import functional as F

GOLDEN_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "golden", "nn")

# Cases that exercise the convolution / pooling kernels (or their op-composition fallbacks).
SPATIAL_PREFIXES = (
    "conv",
    "maxpool",
    "avgpool",
    "adaptiveavgpool",
    "f_conv",
    "f_max_pool",
    "f_avg_pool",
    "f_adaptive",
)


def golden_names():
    return sorted(f[:-4] for f in os.listdir(GOLDEN_DIR) if f.endswith(".npz"))


def load_golden(name):
    with np.load(os.path.join(GOLDEN_DIR, name + ".npz"), allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    return data, json.loads(str(data["config"]))


def _tuple(v):
    return tuple(v) if isinstance(v, list) else v


def prefixed(data, prefix):
    return {k[len(prefix) :]: v for k, v in data.items() if k.startswith(prefix)}


def replay(name):
    """Runs a golden case in PyFlame. Returns (cfg, data, outputs, inputs, module)."""
    data, cfg = load_golden(name)
    inputs = []
    for i, grad in enumerate(cfg["input_grad"]):
        t = pf.tensor(data[f"in_{i}"])
        inputs.append(t.requires_grad_() if grad else t)
    call = cfg.get("call", list(range(len(inputs))))
    call_kw = {k: pf.tensor(v) for k, v in prefixed(data, "ckw__").items()}
    call_kw.update(cfg.get("call_kwargs", {}))
    args = [_tuple(a) for a in cfg["args"]]
    kwargs = {k: _tuple(v) for k, v in cfg.get("kwargs", {}).items()}
    module = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if cfg["kind"] == "module":
            kwargs.update({k: pf.tensor(v) for k, v in prefixed(data, "kw__").items()})
            module = getattr(nn, cfg["target"])(*args, **kwargs)
            if cfg["dtype"] == "float64":
                module.double()
            result = module.load_state_dict(prefixed(data, "sd__"))
            assert result.missing_keys == [] and result.unexpected_keys == []
            module.train()
            for s in range(cfg.get("pre_steps", 0)):
                step = [pf.tensor(data[f"pre_{s}_{i}"]) for i in range(len(inputs))]
                with pf.no_grad():
                    module(*[step[i] for i in call], **call_kw)
            module.train(cfg.get("mode", "train") == "train")
            out = module(*[inputs[i] for i in call], **call_kw)
        else:
            fn = getattr(F, cfg["target"])
            out = fn(*[inputs[i] for i in call], *args, **call_kw, **kwargs)
    outs = list(out) if isinstance(out, tuple) else [out]
    return cfg, data, outs, inputs, module


def assert_close(actual, expected, tol, what):
    rtol, atol = tol
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    if expected.dtype.kind in "fc":
        assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=what)
    else:
        np.testing.assert_array_equal(actual, expected, err_msg=what)


def check_case(name):
    """Replays `name` and compares outputs, gradients and the final state with PyTorch's."""
    cfg, data, outs, inputs, module = replay(name)
    tol = tuple(cfg["tolerance"])
    assert len(outs) == cfg["n_out"], f"{len(outs)} outputs, expected {cfg['n_out']}"
    loss = None
    for j, o in enumerate(outs):
        if f"out_{j}" not in data:
            assert o is None, f"output {j} should be None"
            continue
        assert_close(o.numpy(), data[f"out_{j}"], tol, f"{name}: output {j}")
        if f"w_{j}" in data:
            term = (o * pf.tensor(data[f"w_{j}"])).sum()
            loss = term if loss is None else loss + term
    if loss is not None and loss.requires_grad:
        loss.backward()
    for i, t in enumerate(inputs):
        key = f"gin_{i}"
        if key in data:
            assert t.grad is not None, f"{name}: input {i} got no gradient"
            assert_close(t.grad.numpy(), data[key], tol, f"{name}: grad of input {i}")
    if module is not None:
        params = dict(module.named_parameters())
        grads = prefixed(data, "gp__")
        for k, p in params.items():
            if k in grads:
                assert p.grad is not None, f"{name}: parameter {k} got no gradient"
                assert_close(p.grad.numpy(), grads[k], tol, f"{name}: grad of {k}")
            elif p.requires_grad and p.grad is not None:
                np.testing.assert_array_equal(
                    p.grad.numpy(), 0.0, err_msg=f"{name}: unexpected grad of {k}"
                )
        final = prefixed(data, "final_sd__")
        state = module.state_dict()
        assert sorted(state) == sorted(final), (
            f"{name}: state_dict keys {sorted(state)} != {sorted(final)}"
        )
        for k, v in final.items():
            assert_close(state[k].numpy(), v, tol, f"{name}: final state {k}")
