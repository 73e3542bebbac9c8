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

from pyflame import runtime as _runtime
from pyflame.runtime import *  # noqa: F403 - the runtime's public API, re-exported as is
from pyflame.runtime import __version__

__all__ = [*_runtime.__all__, "__version__"]
