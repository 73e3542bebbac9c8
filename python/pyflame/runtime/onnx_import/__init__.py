"""ONNX import: ``ONNXImporter``, ``ImportOptions``, ``ImportResult``, ``from_onnx`` and the
operator registry (one converter per ONNX operator).

Example:
    >>> from pyflame.runtime.onnx_import import supported_operators
    >>> len(supported_operators()) > 100
    True
"""

from .importer import (
    ImportOptions,
    ImportResult,
    ImportStats,
    ONNXImporter,
    from_onnx,
    load_model_proto,
)
from .registry import (
    OpContext,
    check_supported,
    get_converter,
    is_supported,
    register,
    supported_operators,
    unsupported_reason,
)

__all__ = [
    "ImportOptions",
    "ImportResult",
    "ImportStats",
    "ONNXImporter",
    "OpContext",
    "check_supported",
    "from_onnx",
    "get_converter",
    "is_supported",
    "load_model_proto",
    "register",
    "supported_operators",
    "unsupported_reason",
]
