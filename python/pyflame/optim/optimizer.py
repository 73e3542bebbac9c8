"""The optimizer base class shared by SGD, Adam, AdamW and RMSprop.

The API and the ``state_dict`` format follow ``torch.optim.Optimizer``. What differs is how a step
is carried out: PyFlame tensors are lazy, so :meth:`Optimizer.step` first builds the new value of
every parameter and every state tensor as a graph, then realizes all of them with a single
``pf.eval`` call, and only then rebinds the parameters (``p.data = new``) and stores the new
state. No autograd history is recorded: parameters and gradients are detached before use.

Example:
    >>> import pyflame as pf
    >>> from pyflame import optim
    >>> w = pf.tensor([1.0, 2.0]).requires_grad_()
    >>> opt = optim.SGD([w], lr=0.5)
    >>> w.grad = pf.tensor([1.0, -1.0])
    >>> opt.step()
    >>> w.numpy().tolist()
    [0.5, 2.5]
"""

from __future__ import annotations

import warnings
from collections import defaultdict
from itertools import chain
from typing import (
    Any,
    Callable,
    DefaultDict,
    Dict,
    Iterable,
    List,
    Optional,
    Sequence,
    Tuple,
    Union,
)

import numpy as np

import pyflame as pf

__all__ = ["Optimizer", "ParamsT"]

#: What optimizers accept as ``params``: tensors, (name, tensor) pairs, or param-group dicts.
ParamsT = Union[Iterable["pf.Tensor"], Iterable[Dict[str, Any]], Iterable[Tuple[str, "pf.Tensor"]]]

# A step's pending result for one parameter: (param, new value, new state entries).
_Pending = Tuple["pf.Tensor", "pf.Tensor", Dict[str, Any]]


def _is_tensor(x: Any) -> bool:
    return isinstance(x, pf.Tensor)


def _check_non_negative(name: str, value: Any) -> None:
    """Raises ValueError (like torch) when a hyperparameter is negative or not a number."""
    try:
        ok = float(value) >= 0.0
    except (TypeError, ValueError):
        raise ValueError(f"Invalid {name}: {value!r}") from None
    if not ok:
        raise ValueError(f"Invalid {name}: {value}")


class Optimizer:
    """Base class of all optimizers (PyTorch's ``torch.optim.Optimizer`` semantics).

    Args:
        params: an iterable of tensors, of ``(name, tensor)`` pairs, or of dicts defining
            parameter groups (each with a ``"params"`` entry plus per-group hyperparameters).
        defaults: default hyperparameters, used for every key a group does not set.

    Subclasses implement :meth:`_update` (the lazy update rule for one parameter) and may
    override :meth:`_fill_group_defaults` (keys added to groups loaded from old state dicts).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import optim
        >>> a, b = pf.zeros([2]), pf.zeros([3])
        >>> opt = optim.SGD([{"params": [a]}, {"params": [b], "lr": 0.01}], lr=0.1)
        >>> [g["lr"] for g in opt.param_groups]
        [0.1, 0.01]
    """

    def __init__(self, params: ParamsT, defaults: Dict[str, Any]) -> None:
        self.defaults: Dict[str, Any] = defaults
        self.state: DefaultDict[Any, Dict[str, Any]] = defaultdict(dict)
        self.param_groups: List[Dict[str, Any]] = []
        if _is_tensor(params):
            raise TypeError(
                "params argument given to the optimizer should be an iterable of Tensors or "
                f"dicts, but got {type(params).__name__}"
            )
        param_groups = list(params)
        if len(param_groups) == 0:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(param_groups[0], dict):
            param_groups = [{"params": param_groups}]
        for group in param_groups:
            self.add_param_group(group)

    # ------------------------------------------------------------------ groups

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        """Adds a parameter group; hyperparameters it does not set come from ``defaults``.

        The dict itself is stored (as in PyTorch), with ``"params"`` turned into a list.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import optim
            >>> opt = optim.SGD([pf.zeros([2])], lr=0.1, momentum=0.9)
            >>> opt.add_param_group({"params": [pf.zeros([3])], "lr": 0.01})
            >>> opt.param_groups[1]["momentum"], opt.param_groups[1]["lr"]
            (0.9, 0.01)
        """
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError("a param group needs a 'params' entry")
        params = param_group["params"]
        if _is_tensor(params):
            params = [params]
        elif isinstance(params, (set, frozenset)):
            raise TypeError(
                "optimizer parameters need to be organized in ordered collections, but the "
                "ordering of tensors in sets will change between runs. Please use a list instead."
            )
        else:
            params = list(params)

        tensors: List[Any] = []
        names: List[str] = []
        for item in params:
            if isinstance(item, tuple):
                if len(item) != 2:
                    raise TypeError("named parameters must be (name, tensor) pairs")
                names.append(item[0])
                tensors.append(item[1])
            else:
                tensors.append(item)
        if names and len(names) != len(tensors):
            raise ValueError(
                "all optimizer params should be with/without names. Some param names are missing"
            )
        for p in tensors:
            if not _is_tensor(p):
                raise TypeError(
                    "optimizer can only optimize Tensors, but one of the params is "
                    f"{type(p).__name__}"
                )
        param_group["params"] = tensors
        if names:
            param_group["param_names"] = names

        for name, default in self.defaults.items():
            param_group.setdefault(name, default)

        if len({id(p) for p in tensors}) != len(tensors):
            warnings.warn(
                "optimizer contains a parameter group with duplicate parameters; "
                "in future, this will cause an error",
                stacklevel=3,
            )
        existing = set()
        for group in self.param_groups:
            existing.update(id(p) for p in group["params"])
            if ("param_names" in param_group) != ("param_names" in group):
                which = "with names" if "param_names" in param_group else "without names"
                raise ValueError(
                    "all optimizer param groups should be with/without names. "
                    f"cannot add param group {which} to the optimizer"
                )
        if any(id(p) in existing for p in tensors):
            raise ValueError("some parameters appear in more than one parameter group")
        self.param_groups.append(param_group)

    # --------------------------------------------------------------- learning rate

    def get_lr(self) -> float:
        """The learning rate of the first parameter group.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import optim
            >>> optim.Adam([pf.zeros([2])], lr=3e-4).get_lr()
            0.0003
        """
        return self.param_groups[0]["lr"]

    def set_lr(self, lr: Union[float, Sequence[float]]) -> None:
        """Sets the learning rate of every group (one number), or of each group (a sequence).

        Example:
            >>> import pyflame as pf
            >>> from pyflame import optim
            >>> opt = optim.SGD([pf.zeros([2])], lr=0.1)
            >>> opt.set_lr(0.01)
            >>> opt.get_lr()
            0.01
        """
        if isinstance(lr, (list, tuple)):
            if len(lr) != len(self.param_groups):
                raise ValueError(
                    f"expected {len(self.param_groups)} learning rates (one per param group), "
                    f"got {len(lr)}"
                )
            lrs = list(lr)
        else:
            lrs = [lr] * len(self.param_groups)
        for value in lrs:
            _check_non_negative("learning rate", value)
        for group, value in zip(self.param_groups, lrs):
            group["lr"] = value

    # ------------------------------------------------------------------ gradients

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clears the gradients of all parameters.

        Args:
            set_to_none: set ``p.grad = None`` (the default, as in PyTorch); if False, replace
                each existing gradient by zeros of its shape and dtype.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import optim
            >>> w = pf.zeros([2])
            >>> w.grad = pf.ones([2])
            >>> opt = optim.SGD([w], lr=0.1)
            >>> opt.zero_grad(set_to_none=False)
            >>> w.grad.numpy().tolist()
            [0.0, 0.0]
            >>> opt.zero_grad()
            >>> w.grad is None
            True
        """
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad = pf.zeros_like(grad.detach())

    # ----------------------------------------------------------------------- step

    def step(self, closure: Optional[Callable[[], Any]] = None) -> Any:
        """Performs one optimization step and returns the closure's loss (or None).

        Every parameter whose ``grad`` is not None is updated; the new parameters and
        optimizer state are computed together in one evaluation pass.

        Args:
            closure: optional callable that re-evaluates the model (computing gradients)
                and returns the loss; it is called before the update.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import optim
            >>> w = pf.tensor([1.0])
            >>> opt = optim.SGD([w], lr=0.1)
            >>> def closure():
            ...     w.grad = 2 * w.detach()  # gradient of w**2
            ...     return float((w * w).sum().item())
            >>> opt.step(closure)
            1.0
            >>> round(w.item(), 6)
            0.8
        """
        loss = None
        if closure is not None:
            loss = closure()
        pending: List[_Pending] = []
        for group in self.param_groups:
            for p in group["params"]:
                grad = p.grad
                if grad is None:
                    continue
                param = p.detach()
                grad = grad.detach()
                if grad.dtype != param.dtype:
                    grad = grad.astype(param.dtype)
                new_param, new_state = self._update(param, grad, self.state[p], group)
                if new_param.dtype != param.dtype:
                    new_param = new_param.astype(param.dtype)
                pending.append((p, new_param, new_state))
        self._realize(pending)
        return loss

    def _update(
        self,
        param: pf.Tensor,
        grad: pf.Tensor,
        state: Dict[str, Any],
        group: Dict[str, Any],
    ) -> Tuple[pf.Tensor, Dict[str, Any]]:
        """Builds (lazily) the new value of one parameter and its new state entries.

        ``param`` and ``grad`` are detached; ``state`` must not be modified (the returned
        entries are stored after the step's evaluation succeeded).
        """
        raise NotImplementedError(f"{type(self).__name__} does not implement _update")

    def _realize(self, pending: List[_Pending]) -> None:
        """Evaluates all new parameters and state tensors in one pass, then commits them."""
        tensors: List[pf.Tensor] = []
        for _, new_param, new_state in pending:
            tensors.append(new_param)
            tensors.extend(v for v in new_state.values() if _is_tensor(v))
        if tensors:
            pf.eval(*tensors)
        for p, new_param, new_state in pending:
            p.data = new_param
            self.state[p].update(new_state)

    # ----------------------------------------------------------------- state dict

    def state_dict(self) -> Dict[str, Any]:
        """Returns the optimizer state in PyTorch's format.

        ``{"state": {index: {...}}, "param_groups": [{..., "params": [index, ...]}]}`` where
        parameters are referred to by their position across all groups. State tensors are
        PyFlame tensors (``"step"`` as a 0-d float32 tensor, like PyTorch). The result is a
        snapshot: later steps do not change it.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import optim
            >>> w = pf.zeros([2])
            >>> opt = optim.SGD([w], lr=0.1, momentum=0.9)
            >>> w.grad = pf.ones([2])
            >>> opt.step()
            >>> sd = opt.state_dict()
            >>> sorted(sd["state"][0]), sd["param_groups"][0]["params"]
            (['momentum_buffer'], [0])
        """
        mapping: Dict[int, int] = {}
        start = 0
        packed_groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            if "param_names" in packed:
                packed["param_names"] = list(packed["param_names"])
            for i, p in enumerate(group["params"], start):
                mapping.setdefault(id(p), i)
            packed["params"] = [mapping[id(p)] for p in group["params"]]
            start += len(packed["params"])
            packed_groups.append(packed)
        packed_state = {}
        for key, value in self.state.items():
            index = mapping[id(key)] if _is_tensor(key) and id(key) in mapping else key
            packed_state[index] = {k: _export_value(k, v) for k, v in value.items()}
        return {"state": packed_state, "param_groups": packed_groups}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Loads a state produced by :meth:`state_dict` (of an optimizer with the same layout).

        Hyperparameters are taken from the saved groups; state tensors are cast to their
        parameter's dtype (except ``"step"``). NumPy arrays are accepted in place of tensors.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import optim
            >>> w = pf.zeros([2])
            >>> opt = optim.Adam([w], lr=0.1)
            >>> w.grad = pf.ones([2])
            >>> opt.step()
            >>> fresh = optim.Adam([w], lr=0.5)
            >>> fresh.load_state_dict(opt.state_dict())
            >>> fresh.get_lr(), fresh.state[w]["step"]
            (0.1, 1.0)
        """
        groups = self.param_groups
        saved_groups = [_copy_group(g) for g in state_dict["param_groups"]]
        if len(groups) != len(saved_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        for group, saved in zip(groups, saved_groups):
            if len(group["params"]) != len(saved["params"]):
                raise ValueError(
                    "loaded state dict contains a parameter group that doesn't match the size "
                    "of optimizer's group"
                )
        id_map = dict(
            zip(
                chain.from_iterable(g["params"] for g in saved_groups),
                chain.from_iterable(g["params"] for g in groups),
            )
        )
        state: DefaultDict[Any, Dict[str, Any]] = defaultdict(dict)
        for key, value in state_dict["state"].items():
            if key in id_map:
                param = id_map[key]
                state[param] = {k: _import_value(param, k, v) for k, v in value.items()}
            else:
                state[key] = value
        new_groups = []
        for group, saved in zip(groups, saved_groups):
            saved["params"] = group["params"]
            if "param_names" in group and "param_names" not in saved:
                saved["param_names"] = group["param_names"]
            self._fill_group_defaults(saved)
            new_groups.append(saved)
        self.state = state
        self.param_groups = new_groups

    def _fill_group_defaults(self, group: Dict[str, Any]) -> None:
        """Completes a group loaded from a state dict (PyTorch's ``__setstate__`` defaults)."""
        for name, default in self.defaults.items():
            group.setdefault(name, default)

    def __repr__(self) -> str:
        text = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            text += f"\nParameter Group {i}\n"
            for key in sorted(group.keys()):
                if key != "params":
                    text += f"    {key}: {group[key]}\n"
        return text + ")"


def _copy_group(group: Dict[str, Any]) -> Dict[str, Any]:
    out = dict(group)
    for key in ("params", "param_names"):
        if key in out:
            out[key] = list(out[key])
    return out


def _export_value(key: str, value: Any) -> Any:
    """A state entry as it appears in a state dict (a snapshot; step as a float32 tensor)."""
    if key == "step" and isinstance(value, (int, float)):
        return pf.tensor(np.asarray(value, dtype=np.float32))
    if _is_tensor(value):
        return value.detach()
    return value


def _import_value(param: pf.Tensor, key: str, value: Any) -> Any:
    """A state-dict entry as stored in ``Optimizer.state`` for ``param``."""
    if key == "step":
        if _is_tensor(value) or isinstance(value, (np.ndarray, np.generic)):
            return float(np.asarray(value.numpy() if _is_tensor(value) else value).reshape(()))
        return float(value)
    if isinstance(value, (np.ndarray, np.generic)):
        value = pf.tensor(np.asarray(value))
    if _is_tensor(value):
        if list(value.shape) != list(param.shape):
            raise ValueError(
                f"state entry {key!r} has shape {list(value.shape)} but its parameter has shape "
                f"{list(param.shape)}"
            )
        if param.dtype.is_floating_point and value.dtype != param.dtype:
            return value.astype(param.dtype)
        return value.detach()
    return value
