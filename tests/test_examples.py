"""The scripts in examples/ run and do what they say."""

import importlib.util
from pathlib import Path

import numpy as np

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_train_digits_cnn_learns():
    assert load("train_digits_cnn").main(epochs=12) > 0.95


def test_onnx_inference_runs():
    probs = load("onnx_inference").main()
    assert probs.shape == (3, 4)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)


def test_compile_to_csl(tmp_path):
    assert load("compile_to_csl").main(str(tmp_path))
