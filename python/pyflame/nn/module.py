"""``Module``: the base class of every layer, with PyTorch's ``torch.nn.Module`` semantics.

Assigning a :class:`~pyflame.nn.Parameter`, a ``Module`` or (through :meth:`Module.register_buffer`)
a buffer tensor as an attribute registers it; parameters, buffers and submodules are then found by
:meth:`Module.parameters`, :meth:`Module.named_modules`, :meth:`Module.state_dict` (dotted keys
such as ``"features.0.weight"``) and friends.

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> class Net(nn.Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = nn.Linear(4, 2)
    ...         self.register_buffer("steps", pf.zeros([1]))
    ...     def forward(self, x):
    ...         return self.fc(x)
    >>> net = Net()
    >>> list(net.state_dict().keys())
    ['steps', 'fc.weight', 'fc.bias']
    >>> net(pf.ones([3, 4])).shape
    [3, 2]
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from typing import (
    Any,
    Callable,
    Dict,
    List,
    Mapping,
    Optional,
    Set,
    Tuple,
    TypeVar,
)

import pyflame as pf

from . import _state
from ._helpers import as_dtype, is_floating, set_data
from ._state import RemovableHandle, _copy_tensor, _ListIter
from .parameter import Parameter

__all__ = ["Module", "RemovableHandle"]

T = TypeVar("T", bound="Module")


class Module:
    """Base class for all neural network modules (PyTorch semantics).

    Subclasses call ``super().__init__()`` first, assign parameters and submodules as
    attributes, and implement :meth:`forward`; calling the module runs the forward hooks and
    :meth:`forward`.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> class Scale(nn.Module):
        ...     def __init__(self):
        ...         super().__init__()
        ...         self.s = nn.Parameter(pf.ones([1]))
        ...     def forward(self, x):
        ...         return x * self.s
        >>> Scale()(pf.full([2], 3.0)).tolist()
        [3.0, 3.0]
    """

    training: bool
    _version: int = 1

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        if args or kwargs:
            raise TypeError(
                f"{type(self).__name__}.__init__() got unexpected arguments; "
                "Module.__init__ takes none"
            )
        object.__setattr__(self, "training", True)
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "_non_persistent_buffers_set", set())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_forward_hooks", OrderedDict())
        object.__setattr__(self, "_forward_pre_hooks", OrderedDict())

    # ------------------------------------------------------------------ forward / call
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Computes the module's output; every subclass implements it."""
        raise NotImplementedError(
            f'Module [{type(self).__name__}] is missing the required "forward" function'
        )

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        for hook in list(self._forward_pre_hooks.values()):
            result = hook(self, args)
            if result is not None:
                args = result if isinstance(result, tuple) else (result,)
        out = self.forward(*args, **kwargs)
        for hook in list(self._forward_hooks.values()):
            result = hook(self, args, out)
            if result is not None:
                out = result
        return out

    def register_forward_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Registers ``hook(module, args, output)`` run after :meth:`forward`; a non-None
        return value replaces the output.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import nn
            >>> m = nn.ReLU()
            >>> h = m.register_forward_hook(lambda mod, args, out: out * 2)
            >>> m(pf.ones([1])).tolist()
            [2.0]
        """
        handle = RemovableHandle(self._forward_hooks)
        self._forward_hooks[handle.id] = hook
        return handle

    def register_forward_pre_hook(self, hook: Callable[..., Any]) -> RemovableHandle:
        """Registers ``hook(module, args)`` run before :meth:`forward`; a non-None return
        value replaces the positional arguments.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import nn
            >>> m = nn.Identity()
            >>> h = m.register_forward_pre_hook(lambda mod, args: (args[0] + 1,))
            >>> m(pf.zeros([1])).tolist()
            [1.0]
        """
        handle = RemovableHandle(self._forward_pre_hooks)
        self._forward_pre_hooks[handle.id] = hook
        return handle

    # ------------------------------------------------------------------ registration
    def _check_init(self, what: str) -> None:
        if "_parameters" not in self.__dict__:
            raise AttributeError(f"cannot assign {what} before Module.__init__() call")

    @staticmethod
    def _check_name(name: Any, kind: str) -> None:
        if not isinstance(name, str):
            raise TypeError(f"{kind} name should be a string. Got {type(name).__name__}")
        if name == "":
            raise KeyError(f'{kind} name can\'t be empty string ""')
        if "." in name:
            raise KeyError(f'{kind} name can\'t contain "."')

    def register_parameter(self, name: str, param: Optional[Parameter]) -> None:
        """Adds a parameter (or ``None``, a declared but absent parameter) under `name`.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import nn
            >>> m = nn.Module()
            >>> m.register_parameter("bias", None)
            >>> m.bias is None
            True
        """
        self._check_init("parameters")
        self._check_name(name, "parameter")
        if hasattr(self, name) and name not in self._parameters:
            raise KeyError(f"attribute '{name}' already exists")
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(
                f"cannot assign '{type(param).__name__}' object to parameter '{name}' "
                "(pyflame.nn.Parameter or None required)"
            )
        self._parameters[name] = param

    def register_buffer(
        self, name: str, tensor: Optional[pf.Tensor], persistent: bool = True
    ) -> None:
        """Adds a buffer: state that is not a parameter (e.g. BatchNorm's running mean).

        Persistent buffers are part of :meth:`state_dict`; non-persistent ones are not.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import nn
            >>> m = nn.Module()
            >>> m.register_buffer("mask", pf.ones([2]), persistent=False)
            >>> list(m.state_dict()), [n for n, _ in m.named_buffers()]
            ([], ['mask'])
        """
        self._check_init("buffers")
        self._check_name(name, "buffer")
        if hasattr(self, name) and name not in self._buffers:
            raise KeyError(f"attribute '{name}' already exists")
        if tensor is not None and not isinstance(tensor, pf.Tensor):
            raise TypeError(
                f"cannot assign '{type(tensor).__name__}' object to buffer '{name}' "
                "(pyflame.Tensor or None required)"
            )
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers_set.discard(name)
        else:
            self._non_persistent_buffers_set.add(name)

    def add_module(self, name: str, module: Optional[Module]) -> None:
        """Adds a child module under `name` (also done by assigning it as an attribute).

        Example:
            >>> from pyflame import nn
            >>> m = nn.Module()
            >>> m.add_module("act", nn.ReLU())
            >>> [n for n, _ in m.named_children()]
            ['act']
        """
        self._check_init("child module")
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._check_name(name, "module")
        if hasattr(self, name) and name not in self._modules:
            raise KeyError(f"attribute '{name}' already exists")
        self._modules[name] = module

    register_module = add_module

    def __setattr__(self, name: str, value: Any) -> None:
        params = self.__dict__.get("_parameters")
        if isinstance(value, Parameter):
            if params is None:
                raise AttributeError("cannot assign parameters before Module.__init__() call")
            self._remove_from(name, self.__dict__, self._buffers, self._modules)
            self._non_persistent_buffers_set.discard(name)
            self.register_parameter(name, value)
            return
        if params is not None and name in params:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as parameter '{name}' "
                    "(pyflame.nn.Parameter or None expected)"
                )
            self.register_parameter(name, value)
            return
        modules = self.__dict__.get("_modules")
        if isinstance(value, Module):
            if modules is None:
                raise AttributeError("cannot assign module before Module.__init__() call")
            self._remove_from(name, self.__dict__, self._parameters, self._buffers)
            self._non_persistent_buffers_set.discard(name)
            modules[name] = value
            return
        if modules is not None and name in modules:
            if value is not None:
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as child module '{name}' "
                    "(pyflame.nn.Module or None expected)"
                )
            modules[name] = value
            return
        buffers = self.__dict__.get("_buffers")
        if buffers is not None and name in buffers:
            if value is not None and not isinstance(value, pf.Tensor):
                raise TypeError(
                    f"cannot assign '{type(value).__name__}' as buffer '{name}' "
                    "(pyflame.Tensor or None expected)"
                )
            buffers[name] = value
            return
        object.__setattr__(self, name, value)

    @staticmethod
    def _remove_from(name: str, *dicts: Dict[str, Any]) -> None:
        for d in dicts:
            if name in d:
                del d[name]

    def __getattr__(self, name: str) -> Any:
        d = self.__dict__
        for key in ("_parameters", "_buffers", "_modules"):
            store = d.get(key)
            if store is not None and name in store:
                return store[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for key in ("_parameters", "_buffers", "_modules"):
            store = self.__dict__.get(key)
            if store is not None and name in store:
                del store[name]
                if key == "_buffers":
                    self._non_persistent_buffers_set.discard(name)
                return
        object.__delattr__(self, name)

    def __dir__(self) -> List[str]:
        keys = list(super().__dir__())
        keys += list(self._parameters) + list(self._buffers) + list(self._modules)
        return sorted(set(k for k in keys if not k[0].isdigit()))

    # ------------------------------------------------------------------ traversal
    def _named_members(
        self, get: Callable[[Module], Any], prefix: str, recurse: bool, remove_duplicate: bool
    ) -> _ListIter:
        memo: Set[int] = set()
        out = _ListIter()
        modules = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate)
        if not recurse:
            modules = [(prefix, self)]
        for mod_prefix, mod in modules:
            for k, v in get(mod):
                if v is None or (remove_duplicate and id(v) in memo):
                    continue
                if remove_duplicate:
                    memo.add(id(v))
                out.append((mod_prefix + ("." if mod_prefix else "") + k, v))
        return out

    def named_parameters(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> List[Tuple[str, Parameter]]:
        """``(dotted name, parameter)`` pairs, each shared parameter listed once.

        Example:
            >>> from pyflame import nn
            >>> [n for n, _ in nn.Sequential(nn.Linear(2, 2)).named_parameters()]
            ['0.weight', '0.bias']
        """
        return self._named_members(
            lambda m: m._parameters.items(), prefix, recurse, remove_duplicate
        )

    def parameters(self, recurse: bool = True) -> List[Parameter]:
        """The module's parameters (those of its submodules too when `recurse`).

        Example:
            >>> from pyflame import nn
            >>> [p.shape for p in nn.Linear(3, 2).parameters()]
            [[2, 3], [2]]
        """
        return _ListIter(p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(
        self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True
    ) -> List[Tuple[str, pf.Tensor]]:
        """``(dotted name, buffer)`` pairs.

        Example:
            >>> from pyflame import nn
            >>> [n for n, _ in nn.BatchNorm1d(3).named_buffers()]
            ['running_mean', 'running_var', 'num_batches_tracked']
        """
        return self._named_members(lambda m: m._buffers.items(), prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> List[pf.Tensor]:
        """The module's buffers (those of its submodules too when `recurse`).

        Example:
            >>> from pyflame import nn
            >>> len(nn.BatchNorm2d(4).buffers())
            3
        """
        return _ListIter(b for _, b in self.named_buffers(recurse=recurse))

    def named_children(self) -> List[Tuple[str, Module]]:
        """``(name, module)`` pairs of the direct children.

        Example:
            >>> from pyflame import nn
            >>> [n for n, _ in nn.Sequential(nn.ReLU(), nn.Tanh()).named_children()]
            ['0', '1']
        """
        memo: Set[int] = set()
        out = _ListIter()
        for name, m in self._modules.items():
            if m is not None and id(m) not in memo:
                memo.add(id(m))
                out.append((name, m))
        return out

    def children(self) -> List[Module]:
        """The direct child modules.

        Example:
            >>> from pyflame import nn
            >>> len(nn.Sequential(nn.ReLU(), nn.Tanh()).children())
            2
        """
        return _ListIter(m for _, m in self.named_children())

    def named_modules(
        self, memo: Optional[Set[int]] = None, prefix: str = "", remove_duplicate: bool = True
    ) -> List[Tuple[str, Module]]:
        """``(dotted name, module)`` for this module (name ``""``) and all its descendants.

        Example:
            >>> from pyflame import nn
            >>> [n for n, _ in nn.Sequential(nn.Sequential(nn.ReLU())).named_modules()]
            ['', '0', '0.0']
        """
        out = _ListIter()
        memo = set() if memo is None else memo

        def visit(mod: Module, pre: str) -> None:
            if remove_duplicate:
                if id(mod) in memo:
                    return
                memo.add(id(mod))
            out.append((pre, mod))
            for name, child in mod._modules.items():
                if child is not None:
                    visit(child, pre + ("." if pre else "") + name)

        visit(self, prefix)
        return out

    def modules(self) -> List[Module]:
        """This module and all its descendants, each once.

        Example:
            >>> from pyflame import nn
            >>> [type(m).__name__ for m in nn.Sequential(nn.ReLU()).modules()]
            ['Sequential', 'ReLU']
        """
        return _ListIter(m for _, m in self.named_modules())

    def get_submodule(self, target: str) -> Module:
        """The submodule at the dotted path `target` (``""`` is this module).

        Example:
            >>> from pyflame import nn
            >>> type(nn.Sequential(nn.ReLU()).get_submodule("0")).__name__
            'ReLU'
        """
        mod: Module = self
        if target == "":
            return mod
        for item in target.split("."):
            if item not in mod._modules or mod._modules[item] is None:
                raise AttributeError(f"{type(mod).__name__} has no attribute `{item}`")
            mod = mod._modules[item]
        return mod

    def get_parameter(self, target: str) -> Parameter:
        """The parameter at the dotted path `target` (e.g. ``"0.weight"``).

        Example:
            >>> from pyflame import nn
            >>> nn.Sequential(nn.Linear(2, 3)).get_parameter("0.weight").shape
            [3, 2]
        """
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters or mod._parameters[name] is None:
            raise AttributeError(f"{type(mod).__name__} has no parameter `{name}`")
        return mod._parameters[name]

    def get_buffer(self, target: str) -> pf.Tensor:
        """The buffer at the dotted path `target` (e.g. ``"bn.running_mean"``).

        Example:
            >>> from pyflame import nn
            >>> nn.BatchNorm1d(3).get_buffer("running_var").tolist()
            [1.0, 1.0, 1.0]
        """
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._buffers or mod._buffers[name] is None:
            raise AttributeError(f"{type(mod).__name__} has no buffer `{name}`")
        return mod._buffers[name]

    def apply(self: T, fn: Callable[[Module], Any]) -> T:
        """Calls ``fn`` on every submodule (children first) and then on this module.

        Example:
            >>> from pyflame import nn
            >>> seen = []
            >>> _ = nn.Sequential(nn.ReLU()).apply(lambda m: seen.append(type(m).__name__))
            >>> seen
            ['ReLU', 'Sequential']
        """
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ------------------------------------------------------------------ modes and grads
    def train(self: T, mode: bool = True) -> T:
        """Sets training mode (`mode` True) or evaluation mode on this module and its children.

        Example:
            >>> from pyflame import nn
            >>> nn.Dropout().train(False).training
            False
        """
        if not isinstance(mode, bool):
            raise ValueError("training mode is expected to be boolean")
        self.training = mode
        for child in self.children():
            child.train(mode)
        return self

    def eval(self: T) -> T:
        """Sets evaluation mode (``train(False)``): dropout off, BatchNorm uses running stats.

        Example:
            >>> from pyflame import nn
            >>> nn.BatchNorm1d(2).eval().is_training()
            False
        """
        return self.train(False)

    def is_training(self) -> bool:
        """True in training mode.

        Example:
            >>> from pyflame import nn
            >>> nn.Linear(1, 1).is_training()
            True
        """
        return self.training

    def requires_grad_(self: T, requires_grad: bool = True) -> T:
        """Sets ``requires_grad`` on every parameter (e.g. to freeze a module).

        Example:
            >>> from pyflame import nn
            >>> [p.requires_grad for p in nn.Linear(1, 1).requires_grad_(False).parameters()]
            [False, False]
        """
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Resets the gradients of all parameters (to None by default, else to zeros).

        Example:
            >>> import pyflame as pf
            >>> from pyflame import nn
            >>> m = nn.Linear(2, 1)
            >>> m(pf.ones([1, 2])).sum().backward()
            >>> m.zero_grad()
            >>> m.weight.grad is None
            True
        """
        for p in self.parameters():
            if p.grad is None:
                continue
            p.grad = None if set_to_none else pf.zeros_like(p.grad)

    # ------------------------------------------------------------------ state dict
    def _save_to_state_dict(
        self, destination: Dict[str, Any], prefix: str, keep_vars: bool
    ) -> None:
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.detach()
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers_set:
                destination[prefix + name] = b if keep_vars else b.detach()

    def state_dict(
        self,
        destination: Optional[Dict[str, Any]] = None,
        prefix: str = "",
        keep_vars: bool = False,
    ) -> OrderedDict[str, pf.Tensor]:
        """Parameters and persistent buffers under dotted keys (values detached).

        Example:
            >>> from pyflame import nn
            >>> model = nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2))
            >>> list(model.state_dict())  # doctest: +NORMALIZE_WHITESPACE
            ['0.weight', '0.bias', '1.weight', '1.bias', '1.running_mean', '1.running_var',
             '1.num_batches_tracked']
        """
        if destination is None:
            destination = OrderedDict()
        self._save_to_state_dict(destination, prefix, keep_vars)
        for name, child in self._modules.items():
            if child is not None:
                child.state_dict(
                    destination=destination, prefix=prefix + name + ".", keep_vars=keep_vars
                )
        return destination  # type: ignore[return-value]

    def _load_from_state_dict(
        self,
        state_dict: Mapping[str, Any],
        prefix: str,
        missing_keys: List[str],
        unexpected_keys: List[str],
        error_msgs: List[str],
        assign: bool,
    ) -> None:
        _state.load_local(
            self, state_dict, prefix, missing_keys, unexpected_keys, error_msgs, assign
        )

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Tuple[List[str], List[str]]:
        """Copies parameters and buffers from `state_dict` into this module.

        Values may be tensors or NumPy arrays; they are cast to each target's dtype. Shape
        mismatches always raise; with ``strict=True`` missing and unexpected keys raise too.

        Returns:
            a ``(missing_keys, unexpected_keys)`` namedtuple.

        Raises:
            RuntimeError: listing every missing/unexpected key and size mismatch.

        Example:
            >>> from pyflame import nn
            >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
            >>> b.load_state_dict(a.state_dict())
            IncompatibleKeys(missing_keys=[], unexpected_keys=[])
            >>> bool((a.weight == b.weight).all())
            True
        """
        return _state.load_state_dict(self, state_dict, strict, assign)

    # ------------------------------------------------------------------ dtype conversion
    def _apply(self: T, fn: Callable[[pf.Tensor], pf.Tensor], floating_only: bool = True) -> T:
        for mod in self.modules():
            for store in (mod._parameters, mod._buffers):
                for t in store.values():
                    if t is None or (floating_only and not is_floating(t)):
                        continue
                    new = fn(t.detach())
                    if new.dtype == t.dtype and list(new.shape) == list(t.shape):
                        continue
                    with pf.no_grad():
                        set_data(t, new)
                    if isinstance(t, Parameter) and t.grad is not None:
                        t.grad = fn(t.grad.detach())
        return self

    def to(self: T, *args: Any, **kwargs: Any) -> T:
        """Casts floating-point parameters and buffers in place: ``to(dtype)``, ``to("cpu")``
        or ``to("cpu", dtype)``; integer buffers keep their dtype.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import nn
            >>> nn.Linear(2, 2).to(pf.float64).weight.dtype == pf.float64
            True
        """
        dtype = kwargs.pop("dtype", None)
        device = kwargs.pop("device", None)
        kwargs.pop("non_blocking", None)
        if kwargs:
            raise TypeError(f"to() got unexpected keyword arguments {sorted(kwargs)}")
        for a in args:
            if isinstance(a, pf.DType):
                dtype = a
            elif isinstance(a, str) and a.split(":")[0] in ("cpu",):
                device = a
            elif isinstance(a, str):
                try:
                    dtype = as_dtype(a)
                except Exception:  # noqa: BLE001
                    raise ValueError(f"unsupported device or dtype {a!r}") from None
            elif isinstance(a, pf.Tensor):
                dtype = a.dtype
            else:
                raise TypeError(f"to() got an unexpected argument {a!r}")
        if device is not None and str(device).split(":")[0] != "cpu":
            raise ValueError(f"device {device!r} is not supported; PyFlame modules live on the CPU")
        if dtype is None:
            return self
        dtype = as_dtype(dtype)
        if pf.dtype_name(dtype) not in ("float16", "bfloat16", "float32", "float64"):
            raise TypeError(f"nn.Module.to only accepts floating point dtypes, but got {dtype}")
        return self._apply(lambda t: t.astype(dtype))

    def float(self: T) -> T:  # noqa: A003 - PyTorch's name
        """Casts floating-point parameters and buffers to float32.

        Example:
            >>> from pyflame import nn
            >>> nn.Linear(1, 1).double().float().weight.dtype.name
            'float32'
        """
        return self.to(pf.float32)

    def double(self: T) -> T:
        """Casts floating-point parameters and buffers to float64.

        Example:
            >>> from pyflame import nn
            >>> nn.Linear(1, 1).double().bias.dtype.name
            'float64'
        """
        return self.to(pf.float64)

    def half(self: T) -> T:
        """Casts floating-point parameters and buffers to float16.

        Example:
            >>> from pyflame import nn
            >>> nn.Linear(1, 1).half().bias.dtype.name
            'float16'
        """
        return self.to(pf.float16)

    def bfloat16(self: T) -> T:
        """Casts floating-point parameters and buffers to bfloat16.

        Example:
            >>> from pyflame import nn
            >>> nn.Linear(1, 1).bfloat16().bias.dtype.name
            'bfloat16'
        """
        return self.to(pf.bfloat16)

    def cpu(self: T) -> T:
        """Returns the module itself (PyFlame modules always live on the CPU).

        Example:
            >>> from pyflame import nn
            >>> m = nn.ReLU(); m.cpu() is m
            True
        """
        return self

    def type(self: T, dst_type: Any) -> T:  # noqa: A003 - PyTorch's name
        """Casts all floating-point parameters and buffers to `dst_type`.

        Example:
            >>> import pyflame as pf
            >>> from pyflame import nn
            >>> nn.Linear(1, 1).type(pf.float64).weight.dtype.name
            'float64'
        """
        return self.to(dst_type)

    # ------------------------------------------------------------------ copy and repr
    def __deepcopy__(self, memo: Dict[int, Any]) -> Module:
        for mod in self.modules():
            for value in (
                list(mod.__dict__.values())
                + list(mod._parameters.values())
                + list(mod._buffers.values())
            ):
                if isinstance(value, pf.Tensor) and id(value) not in memo:
                    memo[id(value)] = _copy_tensor(value)
        new = type(self).__new__(type(self))
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            object.__setattr__(new, k, copy.deepcopy(v, memo))
        return new

    def extra_repr(self) -> str:
        """The module-specific part of ``repr`` (one line or several); empty by default.

        Example:
            >>> from pyflame import nn
            >>> nn.Linear(2, 3).extra_repr()
            'in_features=2, out_features=3, bias=True'
        """
        return ""

    def _get_name(self) -> str:
        return type(self).__name__

    def __repr__(self) -> str:
        extra = self.extra_repr()
        lines = extra.split("\n") if extra else []
        child_lines = []
        for name, mod in self._modules.items():
            mod_str = _add_indent(repr(mod), 2)
            child_lines.append(f"({name}): {mod_str}")
        body = lines + child_lines
        main = self._get_name() + "("
        if body:
            if len(lines) == 1 and not child_lines:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(body) + "\n"
        return main + ")"


def _add_indent(text: str, spaces: int) -> str:
    parts = text.split("\n")
    if len(parts) == 1:
        return text
    return parts[0] + "\n" + "\n".join(" " * spaces + line for line in parts[1:])
