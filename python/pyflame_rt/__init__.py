"""pyflame_rt: ONNX-Runtime-compatible inference on pyflame (a thin face over pyflame.runtime).

Switch from ONNX Runtime by changing the import::

    import pyflame_rt as ort
    sess = ort.InferenceSession("model.onnx", providers=["CPUExecutionProvider"])
    outputs = sess.run(None, {"input": x})

Example:
    >>> import pyflame_rt as ort
    >>> ort.get_available_providers()
    ['CPUExecutionProvider']
"""

from pyflame.runtime import (
    BackendError,
    DType,
    DTypeMismatchError,
    ExecutionMode,
    Graph,
    GraphOptimizationLevel,
    ImportOptions,
    ImportResult,
    ImportStats,
    InferenceSession,
    InputError,
    InvalidModelError,
    ModelMetadata,
    Node,
    NodeArg,
    ONNXImporter,
    OptLevel,
    PyFlameRTError,
    RunOptions,
    SessionOptions,
    ShapeMismatchError,
    Tensor,
    TensorInfo,
    UnsupportedFormatError,
    UnsupportedOperatorError,
    ValidationError,
    __version__,
    from_numpy,
    from_onnx,
    get_available_providers,
    get_device,
    import_module,
    opt,
    supported_operators,
)

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
    "PyFlameRTError",
    "RunOptions",
    "SessionOptions",
    "ShapeMismatchError",
    "Tensor",
    "TensorInfo",
    "UnsupportedFormatError",
    "UnsupportedOperatorError",
    "ValidationError",
    "__version__",
    "from_numpy",
    "from_onnx",
    "get_available_providers",
    "get_device",
    "import_module",
    "opt",
    "supported_operators",
]
