"""The official ONNX backend node tests, run through pyflame_rt.InferenceSession.

Each case is one test. Excluded cases are skipped with their reason (see _onnx_cases.py for
the commented exclude lists: unsupported operators, unsupported dtypes, specific cases).
"""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")

import pyflame_rt as ort  # noqa: E402

from ._onnx_cases import exclusion_reason, load_cases  # noqa: E402

CASES = load_cases()


def _params():
    for name, model, sets, rtol, atol in CASES:
        reason = exclusion_reason(name, model, sets)
        marks = [pytest.mark.skip(reason=reason)] if reason else []
        yield pytest.param(model, sets, rtol, atol, id=name, marks=marks)


@pytest.mark.parametrize("model,sets,rtol,atol", list(_params()))
def test_node(model, sets, rtol, atol):
    sess = ort.InferenceSession(model.SerializeToString())
    input_names = [i.name for i in model.graph.input]
    for inputs, outputs in sets:
        feed = dict(zip(input_names, inputs))
        got = sess.run(None, feed)
        assert len(got) == len(outputs)
        for g, ref in zip(got, outputs):
            ref = np.asarray(ref)
            assert g.dtype == ref.dtype, f"dtype {g.dtype} != {ref.dtype}"
            assert g.shape == ref.shape, f"shape {g.shape} != {ref.shape}"
            # float16 results carry ~3 significant digits (fp16 epsilon is 9.8e-4)
            r, a = (4e-3, 1e-3) if ref.dtype == np.float16 else (1e-3, 1e-5)
            np.testing.assert_allclose(g, ref, rtol=max(rtol, r), atol=max(atol, a))
