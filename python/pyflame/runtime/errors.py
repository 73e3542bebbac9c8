"""The pyflame runtime's exception hierarchy (mirrors the PyFlameRT spec).

Example:
    >>> from pyflame.runtime.errors import InputError, PyFlameRTError
    >>> issubclass(InputError, PyFlameRTError)
    True
"""

from __future__ import annotations

from typing import Iterable, List, Optional


class PyFlameRTError(RuntimeError):
    """Base class of every error the runtime raises."""


class InvalidModelError(PyFlameRTError):
    """The model file or bytes are invalid or corrupted."""


class UnsupportedFormatError(PyFlameRTError):
    """The model format is not supported (unknown extension or magic bytes)."""


class UnsupportedOperatorError(PyFlameRTError):
    """One or more operators are not supported; `operators` lists them all.

    Example:
        >>> e = UnsupportedOperatorError(["Foo", "Bar"])
        >>> e.operators
        ['Foo', 'Bar']
    """

    def __init__(self, operators: Iterable[str], details: Optional[List[str]] = None) -> None:
        self.operators = list(operators)
        self.details = list(details or [])
        msg = f"unsupported operator(s): {', '.join(self.operators)}"
        if self.details:
            msg += "\n  " + "\n  ".join(self.details)
        super().__init__(msg)


class ShapeMismatchError(PyFlameRTError):
    """An input's shape does not match the model's declared shape."""


class DTypeMismatchError(PyFlameRTError):
    """An input's dtype does not match the model's declared dtype."""


class ValidationError(PyFlameRTError):
    """Graph validation failed; `errors` lists every problem found.

    Example:
        >>> ValidationError(["a", "b"]).errors
        ['a', 'b']
    """

    def __init__(self, errors: Iterable[str]) -> None:
        self.errors = list(errors)
        super().__init__("graph validation failed:\n  " + "\n  ".join(self.errors))


class BackendError(PyFlameRTError):
    """Execution failed in the backend."""


class InputError(PyFlameRTError):
    """An invalid input was provided (unknown or missing name, bad value)."""


__all__ = [
    "PyFlameRTError",
    "InvalidModelError",
    "UnsupportedFormatError",
    "UnsupportedOperatorError",
    "ShapeMismatchError",
    "DTypeMismatchError",
    "ValidationError",
    "BackendError",
    "InputError",
]
