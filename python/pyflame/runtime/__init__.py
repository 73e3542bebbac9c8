"""pyflame.runtime: an ONNX-Runtime-compatible inference runtime on the pyflame executor.

Use it directly or through the ``pyflame_rt`` package (``import pyflame_rt as ort``).

Example:
    >>> import numpy as np
    >>> from pyflame import runtime as rt
    >>> g = rt.Graph("g"); g.add_input("x", [2], np.float32)
    >>> _ = g.add_node("r", "Relu", ["x"], ["y"]); g.add_output("y", [2], np.float32)
    >>> rt.InferenceSession(g).run(None, {"x": np.array([-1.0, 1.0], np.float32)})[0].tolist()
    [0.0, 1.0]
"""

from . import passes as opt
from .errors import (
    BackendError,
    DTypeMismatchError,
    InputError,
    InvalidModelError,
    PyFlameRTError,
    ShapeMismatchError,
    UnsupportedFormatError,
    UnsupportedOperatorError,
    ValidationError,
)
from .graph import Graph, Node
from .onnx_import import (
    ImportOptions,
    ImportResult,
    ImportStats,
    ONNXImporter,
    from_onnx,
    supported_operators,
)
from .options import ExecutionMode, GraphOptimizationLevel, OptLevel, RunOptions, SessionOptions
from .pfm import dumps_pfm, load_pfm, loads_pfm, save_pfm
from .session import (
    InferenceSession,
    ModelMetadata,
    get_all_providers,
    get_available_providers,
    get_device,
    get_version_string,
    set_default_logger_severity,
    set_seed,
)
from .torch_import import (
    PyTorchImporter,
    UnsafeCheckpointError,
    from_pytorch,
    load_pytorch_checkpoint,
    load_pytorch_state_dict,
)
from .types import DType, NodeArg, Tensor, TensorInfo, from_numpy

__version__ = "0.3.0"


class _ImportModule:
    """The spec's ``pyflame_rt.import_module`` namespace."""

    ONNXImporter = ONNXImporter

    PyTorchImporter = PyTorchImporter

    class TorchScriptImporter:
        """Not implemented yet: importing TorchScript archives."""

        def __init__(self) -> None:
            raise NotImplementedError(
                "TorchScriptImporter is not implemented; export the model to ONNX instead"
            )


import_module = _ImportModule()

__all__ = [
    "BackendError",
    "DType",
    "DTypeMismatchError",
    "ExecutionMode",
    "Graph",
    "GraphOptimizationLevel",
    "ImportOptions",
    "ImportResult",
    "ImportStats",
    "InferenceSession",
    "InputError",
    "InvalidModelError",
    "ModelMetadata",
    "Node",
    "NodeArg",
    "ONNXImporter",
    "OptLevel",
    "PyTorchImporter",
    "PyFlameRTError",
    "RunOptions",
    "SessionOptions",
    "ShapeMismatchError",
    "Tensor",
    "TensorInfo",
    "UnsafeCheckpointError",
    "UnsupportedFormatError",
    "UnsupportedOperatorError",
    "ValidationError",
    "from_numpy",
    "dumps_pfm",
    "from_onnx",
    "from_pytorch",
    "get_all_providers",
    "get_available_providers",
    "get_device",
    "get_version_string",
    "import_module",
    "load_pfm",
    "load_pytorch_checkpoint",
    "load_pytorch_state_dict",
    "loads_pfm",
    "opt",
    "save_pfm",
    "set_default_logger_severity",
    "set_seed",
    "supported_operators",
]
