"""The usage examples in the ``pyflame.nn`` docstrings run and print what they claim."""

import doctest
import importlib
import pkgutil

import pyflame.nn
import pytest

MODULES = ["pyflame.nn"] + sorted(
    f"pyflame.nn.{m.name}" for m in pkgutil.iter_modules(pyflame.nn.__path__)
)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0, f"{result.failed} docstring example(s) failed in {name}"
