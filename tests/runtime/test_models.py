"""Equivalence with ONNX Runtime on PyTorch-exported models (ResNet-18, BERT-style encoder).

The models and onnxruntime reference outputs are produced by scripts/make_onnx_models.py
(needs torch + onnxruntime, dev only) into target/onnx_models/ (gitignored) or
$PYFLAME_RT_MODELS. Without them these tests are skipped.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

pytest.importorskip("onnx")
import pyflame_rt as ort  # noqa: E402

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODELS = os.environ.get("PYFLAME_RT_MODELS", os.path.join(_ROOT, "target", "onnx_models"))


def _need(*names):
    paths = [os.path.join(MODELS, n) for n in names]
    missing = [p for p in paths if not os.path.exists(p)]
    if missing:
        pytest.skip(
            f"{missing[0]} not found: run `python scripts/make_onnx_models.py` "
            "(needs torch and onnxruntime) to generate the models"
        )
    return paths


@pytest.mark.parametrize("level", [ort.OptLevel.NONE, ort.OptLevel.ALL])
def test_resnet18_matches_onnxruntime(level):
    model, ref = _need("resnet18.onnx", "resnet18_ref.npz")
    so = ort.SessionOptions()
    so.optimization_level = level
    sess = ort.InferenceSession(model, so)
    data = np.load(ref)
    for b in (1, 32):
        out = sess.run(None, {"input": data[f"input_{b}"]})[0]
        np.testing.assert_allclose(out, data[f"logits_{b}"], rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("level", [ort.OptLevel.NONE, ort.OptLevel.ALL])
def test_bert_encoder_matches_onnxruntime(level):
    model, ref = _need("bert_encoder.onnx", "bert_encoder_ref.npz")
    so = ort.SessionOptions()
    so.optimization_level = level
    sess = ort.InferenceSession(model, so)
    data = np.load(ref)
    out = sess.run(None, {"hidden": data["hidden"], "attention_mask": data["attention_mask"]})[0]
    np.testing.assert_allclose(out, data["output"], rtol=1e-3, atol=1e-4)
