"""Run an ONNX model with pyflame_rt, the ONNX-Runtime-compatible runtime.

Builds a small ONNX model with the `onnx` package (Gemm -> Relu -> Gemm -> Softmax), then runs
it exactly as one would with onnxruntime, only the import changes.

Run: python examples/onnx_inference.py
"""

from __future__ import annotations

import numpy as np
import onnx
import pyflame_rt as ort
from onnx import TensorProto, helper, numpy_helper


def build_model() -> bytes:
    """A 16-32-4 MLP with softmax output, as serialized ONNX."""
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.standard_normal((16, 32)).astype(np.float32), "w1")
    b1 = numpy_helper.from_array(np.zeros(32, np.float32), "b1")
    w2 = numpy_helper.from_array(rng.standard_normal((32, 4)).astype(np.float32), "w2")
    b2 = numpy_helper.from_array(np.zeros(4, np.float32), "b2")
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["batch", 4])],
        initializer=[w1, b1, w2, b2],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    return model.SerializeToString()


def main() -> np.ndarray:
    """Runs the model on a random batch and returns the probabilities."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(build_model(), sess_options=options)
    print("inputs:", [(i.name, i.shape, i.type) for i in session.get_inputs()])
    batch = np.random.default_rng(1).standard_normal((3, 16)).astype(np.float32)
    (probs,) = session.run(None, {"x": batch})
    print("probabilities:\n", np.round(probs, 4))
    return probs


if __name__ == "__main__":
    main()
