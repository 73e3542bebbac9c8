"""Sequential, ModuleList, ModuleDict, ParameterList and ParameterDict."""

from collections import OrderedDict

import pyflame as pf
import pytest
from pyflame import nn


def test_sequential_constructors_are_equivalent():
    layers = [nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)]
    a = nn.Sequential(*layers)
    b = nn.Sequential(layers)  # the spec's list form
    c = nn.Sequential(OrderedDict([("fc1", layers[0]), ("act", layers[1]), ("fc2", layers[2])]))
    d = nn.Sequential()
    for m in layers:
        d.add(m)
    x = pf.randn([5, 4])
    for s in (a, b, d):
        assert list(s.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
        assert s(x).tolist() == a(x).tolist()
    assert list(c.state_dict()) == ["fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"]
    assert c.fc1 is layers[0] and c(x).tolist() == a(x).tolist()


def test_sequential_list_operations():
    s = nn.Sequential(nn.ReLU(), nn.Tanh(), nn.Sigmoid())
    assert len(s) == 3 and isinstance(s[1], nn.Tanh) and isinstance(s[-1], nn.Sigmoid)
    assert [type(m).__name__ for m in s] == ["ReLU", "Tanh", "Sigmoid"]
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and isinstance(sub[0], nn.Tanh)
    s[0] = nn.GELU()
    assert isinstance(s[0], nn.GELU)
    del s[1]
    assert [n for n, _ in s.named_children()] == ["0", "1"] and isinstance(s[1], nn.Sigmoid)
    s.append(nn.Identity()).extend([nn.ReLU()])
    assert len(s) == 4
    s.insert(0, nn.Tanh())
    assert isinstance(s[0], nn.Tanh) and len(s) == 5
    assert isinstance(s.pop(), nn.ReLU) and len(s) == 4
    both = s + nn.Sequential(nn.ReLU())
    assert len(both) == 5
    with pytest.raises(IndexError):
        _ = s[10]
    assert nn.Sequential()(pf.ones([2])).tolist() == [1.0, 1.0]


def test_module_list():
    ml = nn.ModuleList([nn.Linear(2, 2) for _ in range(3)])
    assert len(ml) == 3 and len(ml.parameters()) == 6
    assert list(ml.state_dict())[:2] == ["0.weight", "0.bias"]
    ml.append(nn.ReLU())
    ml.extend([nn.Tanh()])
    ml += [nn.Sigmoid()]
    assert len(ml) == 6 and isinstance(ml[-1], nn.Sigmoid)
    ml.insert(1, nn.GELU())
    assert isinstance(ml[1], nn.GELU) and len(ml) == 7
    assert isinstance(ml[2:4], nn.ModuleList) and len(ml[2:4]) == 2
    del ml[0]
    assert isinstance(ml[0], nn.GELU)
    assert [n for n, _ in ml.named_children()] == [str(i) for i in range(6)]
    ml[0] = nn.Identity()
    assert isinstance(ml.pop(0), nn.Identity) and len(ml) == 5
    with pytest.raises(NotImplementedError):
        ml(pf.ones([1]))
    assert repr(nn.ModuleList()) == "ModuleList()"


def test_module_dict():
    d = nn.ModuleDict({"a": nn.Linear(2, 3), "b": nn.ReLU()})
    assert list(d) == ["a", "b"] and d.keys() == ["a", "b"] and len(d) == 2
    assert "a" in d and "z" not in d
    d["c"] = nn.Tanh()
    d.update([("d", nn.Sigmoid())])
    assert [k for k, _ in d.items()] == ["a", "b", "c", "d"]
    assert isinstance(d.pop("b"), nn.ReLU) and "b" not in d
    del d["c"]
    assert list(d.state_dict()) == ["a.weight", "a.bias"]
    assert len(d.values()) == 2
    d.clear()
    assert len(d) == 0


def test_parameter_list_and_dict():
    pl = nn.ParameterList([pf.zeros([2]), nn.Parameter(pf.ones([3]))])
    assert len(pl) == 2 and all(isinstance(p, nn.Parameter) for p in pl)
    pl.append(pf.ones([1]))
    assert [n for n, _ in pl.named_parameters()] == ["0", "1", "2"]
    assert pl[1].shape == [3]
    pd = nn.ParameterDict({"w": pf.zeros([2])})
    pd["b"] = nn.Parameter(pf.zeros([1]))
    assert list(pd.state_dict()) == ["w", "b"] and "w" in pd and len(pd) == 2
    model = nn.Module()
    model.extra = pd
    assert [n for n, _ in model.named_parameters()] == ["extra.w", "extra.b"]
