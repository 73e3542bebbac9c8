"""State-dict loading and small helpers behind :class:`~pyflame.nn.Module` (private).

Example:
    >>> from pyflame import nn
    >>> nn.Linear(2, 2).load_state_dict(nn.Linear(2, 2).state_dict())
    IncompatibleKeys(missing_keys=[], unexpected_keys=[])
"""

from __future__ import annotations

import copy
from collections import namedtuple
from typing import Any, Dict, List, Mapping, Tuple

import numpy as np

import pyflame as pf

from ._helpers import as_tensor, set_data, shape_str
from .parameter import Parameter

_IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])


class _ListIter(list):
    """A list that can also be consumed with ``next()`` (PyTorch returns generators from
    ``parameters()`` and friends; the PyFlame spec returns lists: this is both)."""

    _cursor = 0

    def __next__(self) -> Any:
        if self._cursor >= len(self):
            raise StopIteration
        self._cursor += 1
        return self[self._cursor - 1]


class RemovableHandle:
    """Handle returned by hook registration; :meth:`remove` unregisters the hook.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> m = nn.Identity()
        >>> h = m.register_forward_hook(lambda mod, inp, out: None)
        >>> h.remove()
    """

    _next_id = 0

    def __init__(self, hooks: Dict[int, Any]) -> None:
        self._hooks = hooks
        self.id = RemovableHandle._next_id
        RemovableHandle._next_id += 1

    def remove(self) -> None:
        """Removes the hook (a no-op when already removed)."""
        self._hooks.pop(self.id, None)

    def __enter__(self) -> RemovableHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove()


def _copy_tensor(t: pf.Tensor) -> pf.Tensor:
    if isinstance(t, Parameter):
        return copy.deepcopy(t)
    out = pf.tensor(np.array(t.numpy(), copy=True))
    if t.requires_grad and t.is_leaf:
        out.requires_grad_()
    return out


def load_local(
    module: Any,
    state_dict: Mapping[str, Any],
    prefix: str,
    missing_keys: List[str],
    unexpected_keys: List[str],
    error_msgs: List[str],
    assign: bool,
) -> None:
    """Loads `module`'s own parameters and persistent buffers from `state_dict` (keys under
    `prefix`), recording missing/unexpected keys and errors like PyTorch."""
    persistent = {
        k: v for k, v in module._buffers.items() if k not in module._non_persistent_buffers_set
    }
    local = {**{k: v for k, v in module._parameters.items()}, **persistent}
    for name, target in local.items():
        if target is None:
            continue
        key = prefix + name
        if key not in state_dict:
            missing_keys.append(key)
            continue
        value = state_dict[key]
        try:
            value = as_tensor(value)
        except Exception as exc:  # noqa: BLE001 - reported like torch does
            error_msgs.append(
                f'While copying the parameter named "{key}", expected a tensor or an array '
                f"from checkpoint but received {type(value).__name__} ({exc})"
            )
            continue
        if list(value.shape) != list(target.shape):
            error_msgs.append(
                f"size mismatch for {key}: copying a param with shape {shape_str(value.shape)} "
                f"from checkpoint, the shape in current model is {shape_str(target.shape)}."
            )
            continue
        if value.dtype != target.dtype:
            value = value.astype(target.dtype)
        if assign and name in module._parameters:
            setattr(module, name, Parameter(value, target.requires_grad))
        else:
            with pf.no_grad():
                set_data(target, value)
    child_prefixes = [prefix + n + "." for n, m in module._modules.items() if m is not None]
    for key in state_dict:
        if not key.startswith(prefix):
            continue
        rest = key[len(prefix) :]
        name = rest.split(".", 1)[0]
        if "." not in rest:
            if name not in local and key not in unexpected_keys:
                unexpected_keys.append(key)
        elif not any(key.startswith(cp) for cp in child_prefixes) and key not in unexpected_keys:
            unexpected_keys.append(key)


def load_state_dict(
    module: Any, state_dict: Mapping[str, Any], strict: bool, assign: bool
) -> Tuple[List[str], List[str]]:
    """``Module.load_state_dict``: loads every submodule and reports the key mismatches."""
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"Expected state_dict to be dict-like, got {type(state_dict).__name__}.")
    missing: List[str] = []
    unexpected: List[str] = []
    errors: List[str] = []
    for prefix, mod in module.named_modules(remove_duplicate=False):
        mod._load_from_state_dict(
            state_dict, prefix + "." if prefix else "", missing, unexpected, errors, assign
        )
    # Keys consumed by any (possibly shared) module are not unexpected.
    known = set(module.state_dict(keep_vars=True).keys())
    unexpected = [k for k in dict.fromkeys(unexpected) if k not in known]
    missing = list(dict.fromkeys(missing))
    if strict:
        if unexpected:
            errors.insert(
                0,
                "Unexpected key(s) in state_dict: "
                + ", ".join(f'"{k}"' for k in unexpected)
                + ". ",
            )
        if missing:
            errors.insert(
                0,
                "Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ". ",
            )
    if errors:
        raise RuntimeError(
            f"Error(s) in loading state_dict for {type(module).__name__}:\n\t" + "\n\t".join(errors)
        )
    return _IncompatibleKeys(missing, unexpected)
