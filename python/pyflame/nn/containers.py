"""Container modules: ``Sequential``, ``ModuleList``, ``ModuleDict``, ``ParameterList`` and
``ParameterDict`` (PyTorch semantics).

Example:
    >>> import pyflame as pf
    >>> from pyflame import nn
    >>> model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    >>> model(pf.ones([3, 4])).shape
    [3, 2]
    >>> list(model.state_dict())
    ['0.weight', '0.bias', '2.weight', '2.bias']
"""

from __future__ import annotations

import operator
from collections import OrderedDict
from typing import Any, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from .module import Module
from .parameter import Parameter

__all__ = ["Sequential", "ModuleList", "ModuleDict", "ParameterList", "ParameterDict"]


def _index(idx: int, size: int, what: str) -> int:
    idx = operator.index(idx)
    if not -size <= idx < size:
        raise IndexError(f"index {idx} is out of range for {what} of length {size}")
    return idx % size


class Sequential(Module):
    """Runs its modules one after another, feeding each output to the next module.

    Accepts modules as separate arguments, one list/tuple of modules, or one ``OrderedDict``
    of named modules; :meth:`add` / :meth:`append` add more at the end.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> model = nn.Sequential()
        >>> _ = model.add(nn.Linear(4, 2))
        >>> _ = model.add(nn.Tanh())
        >>> len(model), model(pf.zeros([1, 4])).shape
        (2, [1, 2])
    """

    def __init__(self, *args: Any) -> None:
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (OrderedDict, dict)):
            for name, mod in args[0].items():
                self.add_module(str(name), mod)
            return
        if len(args) == 1 and isinstance(args[0], (list, tuple)):
            args = tuple(args[0])
        for i, mod in enumerate(args):
            self.add_module(str(i), mod)

    def add(self, module: Module, name: Optional[str] = None) -> Sequential:
        """Appends `module` (under the next index, or `name`); returns self.

        Example:
            >>> from pyflame import nn
            >>> len(nn.Sequential().add(nn.ReLU()).add(nn.Tanh()))
            2
        """
        self.add_module(str(len(self._modules)) if name is None else name, module)
        return self

    def append(self, module: Module) -> Sequential:
        """Appends `module` at the end; returns self.

        Example:
            >>> from pyflame import nn
            >>> len(nn.Sequential(nn.ReLU()).append(nn.Tanh()))
            2
        """
        return self.add(module)

    def extend(self, modules: Iterable[Module]) -> Sequential:
        """Appends every module of `modules`; returns self.

        Example:
            >>> from pyflame import nn
            >>> len(nn.Sequential().extend([nn.ReLU(), nn.Tanh()]))
            2
        """
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> Sequential:
        """Inserts `module` before position `index`; returns self.

        Example:
            >>> from pyflame import nn
            >>> type(nn.Sequential(nn.ReLU()).insert(0, nn.Tanh())[0]).__name__
            'Tanh'
        """
        mods = list(self._modules.values())
        n = len(mods)
        if not -n <= index <= n:
            raise IndexError(f"Index out of range: {index}")
        mods.insert(index if index >= 0 else index + n, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)
        return self

    def pop(self, index: Union[int, slice] = -1) -> Module:
        """Removes and returns the module at `index`.

        Example:
            >>> from pyflame import nn
            >>> s = nn.Sequential(nn.ReLU(), nn.Tanh())
            >>> type(s.pop()).__name__, len(s)
            ('Tanh', 1)
        """
        v = self[index]
        del self[index]
        return v

    def _keys_at(self, idx: Union[int, slice]) -> List[str]:
        keys = list(self._modules.keys())
        if isinstance(idx, slice):
            return keys[idx]
        return [keys[_index(idx, len(keys), "Sequential")]]

    def __getitem__(self, idx: Union[int, slice]) -> Union[Module, Sequential]:
        if isinstance(idx, slice):
            return type(self)(OrderedDict((k, self._modules[k]) for k in self._keys_at(idx)))
        return self._modules[self._keys_at(idx)[0]]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, self._keys_at(idx)[0], module)

    def __delitem__(self, idx: Union[int, slice]) -> None:
        for key in self._keys_at(idx):
            del self._modules[key]
        # Keep the numbering contiguous (like torch >= 2.0).
        items = list(self._modules.items())
        self._modules.clear()
        for i, (k, m) in enumerate(items):
            self._modules[str(i) if k.isdigit() else k] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __add__(self, other: Sequential) -> Sequential:
        if not isinstance(other, Sequential):
            raise ValueError(
                f"add operator supports only objects of Sequential class, got {type(other)}"
            )
        return Sequential(*(list(self) + list(other)))

    def forward(self, input: Any) -> Any:  # noqa: A002 - PyTorch's name
        """Applies every module in order."""
        for module in self._modules.values():
            input = module(input)
        return input


class ModuleList(Module):
    """A list of modules, registered as children (named ``"0"``, ``"1"``, ...).

    Example:
        >>> from pyflame import nn
        >>> layers = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
        >>> len(layers), len(layers.parameters())
        (3, 6)
    """

    def __init__(self, modules: Optional[Iterable[Module]] = None) -> None:
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx: Union[int, slice]) -> Union[Module, ModuleList]:
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_index(idx, len(self), "ModuleList"))]

    def __setitem__(self, idx: int, module: Module) -> None:
        setattr(self, str(_index(idx, len(self), "ModuleList")), module)

    def __delitem__(self, idx: Union[int, slice]) -> None:
        if isinstance(idx, slice):
            for k in range(len(self._modules))[idx]:
                del self._modules[str(k)]
        else:
            del self._modules[str(_index(idx, len(self), "ModuleList"))]
        mods = list(self._modules.values())
        self._modules.clear()
        for i, m in enumerate(mods):
            self._modules[str(i)] = m

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> ModuleList:
        return self.extend(modules)

    def __add__(self, other: Iterable[Module]) -> ModuleList:
        return ModuleList(list(self) + list(other))

    def append(self, module: Module) -> ModuleList:
        """Appends `module`; returns self.

        Example:
            >>> from pyflame import nn
            >>> len(nn.ModuleList().append(nn.ReLU()))
            1
        """
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        """Appends every module of `modules`; returns self.

        Example:
            >>> from pyflame import nn
            >>> len(nn.ModuleList().extend([nn.ReLU(), nn.Tanh()]))
            2
        """
        if isinstance(modules, Module) and not isinstance(modules, (ModuleList, Sequential)):
            raise TypeError("ModuleList.extend should be called with an iterable of modules")
        for m in list(modules):
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Inserts `module` before position `index`.

        Example:
            >>> from pyflame import nn
            >>> ml = nn.ModuleList([nn.ReLU()]); ml.insert(0, nn.Tanh())
            >>> type(ml[0]).__name__
            'Tanh'
        """
        mods = list(self._modules.values())
        mods.insert(index, module)
        self._modules.clear()
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def pop(self, index: int = -1) -> Module:
        """Removes and returns the module at `index`.

        Example:
            >>> from pyflame import nn
            >>> type(nn.ModuleList([nn.ReLU(), nn.Tanh()]).pop()).__name__
            'Tanh'
        """
        m = self[index]
        del self[index]
        return m

    def __repr__(self) -> str:
        if not self._modules:
            return "ModuleList()"
        return super().__repr__()


class ModuleDict(Module):
    """An ordered dict of named child modules.

    Example:
        >>> from pyflame import nn
        >>> heads = nn.ModuleDict({"cls": nn.Linear(4, 3), "box": nn.Linear(4, 4)})
        >>> list(heads.keys()), "cls" in heads
        (['cls', 'box'], True)
    """

    def __init__(
        self, modules: Optional[Union[Mapping[str, Module], Iterable[Tuple[str, Module]]]] = None
    ) -> None:
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def clear(self) -> None:
        """Removes every module."""
        self._modules.clear()

    def pop(self, key: str) -> Module:
        """Removes and returns the module under `key`."""
        v = self[key]
        del self[key]
        return v

    def keys(self) -> List[str]:
        """The keys, in insertion order."""
        return list(self._modules.keys())

    def items(self) -> List[Tuple[str, Module]]:
        """``(key, module)`` pairs, in insertion order."""
        return list(self._modules.items())

    def values(self) -> List[Module]:
        """The modules, in insertion order."""
        return list(self._modules.values())

    def update(self, modules: Union[Mapping[str, Module], Iterable[Tuple[str, Module]]]) -> None:
        """Adds (or replaces) modules from a mapping or from ``(key, module)`` pairs.

        Example:
            >>> from pyflame import nn
            >>> d = nn.ModuleDict(); d.update([("a", nn.ReLU())])
            >>> list(d)
            ['a']
        """
        items = modules.items() if isinstance(modules, (Mapping, ModuleDict)) else modules
        for j, kv in enumerate(items):
            if len(kv) != 2:
                raise ValueError(
                    f"ModuleDict update sequence element #{j} has length {len(kv)}; 2 is required"
                )
            self[kv[0]] = kv[1]

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """ModuleDict is not callable (like torch): pick a module and call it."""
        raise NotImplementedError('Module [ModuleDict] is missing the required "forward" function')


class ParameterList(Module):
    """A list of parameters registered on the module (named ``"0"``, ``"1"``, ...).

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> pl = nn.ParameterList([nn.Parameter(pf.zeros([2])) for _ in range(2)])
        >>> [n for n, _ in pl.named_parameters()]
        ['0', '1']
    """

    def __init__(self, values: Optional[Iterable[Any]] = None) -> None:
        super().__init__()
        self._size = 0
        if values is not None:
            self.extend(values)

    def __getitem__(self, idx: Union[int, slice]) -> Any:
        if isinstance(idx, slice):
            return ParameterList([self[i] for i in range(len(self))[idx]])
        return getattr(self, str(_index(idx, len(self), "ParameterList")))

    def __setitem__(self, idx: int, param: Any) -> None:
        idx = _index(idx, len(self), "ParameterList")
        setattr(self, str(idx), _as_param(param))

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[Any]:
        return iter(self[i] for i in range(len(self)))

    def append(self, value: Any) -> ParameterList:
        """Appends a parameter (tensors are wrapped in ``Parameter``); returns self."""
        new_idx = len(self)
        self._size += 1
        self.register_parameter(str(new_idx), _as_param(value))
        return self

    def extend(self, values: Iterable[Any]) -> ParameterList:
        """Appends every value of `values`; returns self."""
        for v in values:
            self.append(v)
        return self

    def extra_repr(self) -> str:
        return "\n".join(
            f"({i}): Parameter containing: [{p.dtype.name} of size {'x'.join(map(str, p.shape))}]"
            for i, p in enumerate(self)
        )


class ParameterDict(Module):
    """An ordered dict of named parameters.

    Example:
        >>> import pyflame as pf
        >>> from pyflame import nn
        >>> pd = nn.ParameterDict({"scale": nn.Parameter(pf.ones([1]))})
        >>> list(pd.state_dict())
        ['scale']
    """

    def __init__(
        self, parameters: Optional[Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]] = None
    ) -> None:
        super().__init__()
        if parameters is not None:
            self.update(parameters)

    def __getitem__(self, key: str) -> Parameter:
        return self._parameters[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self.register_parameter(key, _as_param(value))

    def __delitem__(self, key: str) -> None:
        del self._parameters[key]

    def __len__(self) -> int:
        return len(self._parameters)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parameters)

    def __contains__(self, key: object) -> bool:
        return key in self._parameters

    def keys(self) -> List[str]:
        """The keys, in insertion order."""
        return list(self._parameters.keys())

    def items(self) -> List[Tuple[str, Parameter]]:
        """``(key, parameter)`` pairs."""
        return list(self._parameters.items())

    def values(self) -> List[Parameter]:
        """The parameters."""
        return list(self._parameters.values())

    def update(self, parameters: Union[Mapping[str, Any], Iterable[Tuple[str, Any]]]) -> None:
        """Adds (or replaces) parameters from a mapping or from ``(key, value)`` pairs."""
        items = (
            parameters.items() if isinstance(parameters, (Mapping, ParameterDict)) else parameters
        )
        for k, v in items:
            self[k] = v

    def extra_repr(self) -> str:
        return "\n".join(
            f"({k}): Parameter containing: [{p.dtype.name} of size {'x'.join(map(str, p.shape))}]"
            for k, p in self.items()
        )


def _as_param(value: Any) -> Any:
    if value is None or isinstance(value, Parameter):
        return value
    return Parameter(value)
