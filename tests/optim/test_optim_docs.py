"""The examples in the docstrings of pyflame.optim run and print what they show."""

import doctest
import importlib

import pytest

MODULES = [
    "pyflame.optim",
    "pyflame.optim.optimizer",
    "pyflame.optim.sgd",
    "pyflame.optim.adam",
    "pyflame.optim.rmsprop",
    "pyflame.optim.lr_scheduler",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_public_api_is_documented():
    optim = importlib.import_module("pyflame.optim")
    for name in optim.__all__:
        obj = getattr(optim, name)
        assert obj.__doc__ and ">>>" in obj.__doc__, name
        for attr, member in vars(obj).items() if isinstance(obj, type) else []:
            if callable(member) and not attr.startswith("_") and attr != "get_lr":
                assert member.__doc__ and ">>>" in member.__doc__, f"{name}.{attr}"
