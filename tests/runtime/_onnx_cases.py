"""Loads the ONNX backend node test cases and decides which are excluded (and why).

The onnx wheel does not ship ``onnx/backend/test/data/node``; when that directory is absent
the same 1,884 cases are generated in memory by ``onnx.backend.test.case.node``.
"""

from __future__ import annotations

import glob
import os
import re
import warnings
from typing import Any, List, Optional, Tuple

import numpy as np

# ---------------------------------------------------------------- exclusions, by operator
# Operators the runtime does not implement (the reason is reported by the importer too).
UNSUPPORTED_OPS = {
    "Attention": None,  # supported; failing cases are listed in CASE_EXCLUDES
    "ImageDecoder": "image decoding is out of scope",
    "TopK": None,  # supported for k <= 64, see per-case list
    "MaxRoiPool": "not implemented",
    "RandomNormal": "random ops are not reproducible against the reference",
    "RandomUniform": "random ops are not reproducible against the reference",
    "RandomNormalLike": "random ops are not reproducible against the reference",
    "RandomUniformLike": "random ops are not reproducible against the reference",
    "Bernoulli": "random ops are not reproducible against the reference",
    "Multinomial": "random ops are not reproducible against the reference",
    "StringNormalizer": "string tensors are not supported",
    "StringConcat": "string tensors are not supported",
    "StringSplit": "string tensors are not supported",
    "RegexFullMatch": "string tensors are not supported",
    "LabelEncoder": "ai.onnx.ml string op, not supported",
    "Gradient": "training op, not supported",
    "ArrayFeatureExtractor": "ai.onnx.ml op, not supported",
    "Binarizer": "ai.onnx.ml op, not supported",
    "TreeEnsemble": "ai.onnx.ml op, not supported",
    "TreeEnsembleClassifier": "ai.onnx.ml op, not supported",
    "TreeEnsembleRegressor": "ai.onnx.ml op, not supported",
    "OneHotEncoder": "ai.onnx.ml op, not supported",
}
# Any operator whose name starts with these is a sequence/optional op (no sequence types).
# Optimizer update rules of the ai.onnx.preview.training domain the runtime implements.
TRAINING_OPS = {"Adagrad", "Adam", "Momentum"}
UNSUPPORTED_PREFIXES = ("Sequence", "Optional", "SplitToSequence", "ConcatFromSequence")

# ---------------------------------------------------------------- exclusions, by dtype
# The executor has no uint16/uint32/uint64, bfloat16, float8, int4/uint4, float4, string
# or complex tensors.
UNSUPPORTED_DTYPES = (
    "uint16",
    "uint32",
    "uint64",
    "bfloat16",
    "float8",
    "float4",
    "int4",
    "uint4",
    "int2",
    "uint2",
    "string",
    "complex",
    "object",
)
_ELEM_NAMES = {
    4: "uint16",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
    8: "string",
    14: "complex64",
    15: "complex128",
    17: "float8",
    18: "float8",
    19: "float8",
    20: "float8",
    21: "uint4",
    22: "int4",
    23: "float4",
    24: "float8",
    25: "uint2",
    26: "int2",
}

# ---------------------------------------------------------------- exclusions, by case
CASE_EXCLUDES: List[Tuple[str, str]] = [
    (r"^test_convtranspose_3d", "3-D ConvTranspose: no executor kernel"),
    (r"^test_cast_.*STRING|^test_castlike_.*STRING", "string casts"),
    (
        r"^test_training_dropout(_default)?(_mask)?$|^test_training_dropout$",
        "Dropout training mode with a nonzero ratio (random)",
    ),
]


def node_dir() -> Optional[str]:
    """The on-disk node test directory of the installed onnx package, if shipped."""
    import onnx

    d = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "node")
    return d if glob.glob(os.path.join(d, "*", "model.onnx")) else None


def load_cases() -> List[Any]:
    """(name, model, data_sets, rtol, atol) for every node test case."""
    import onnx
    from onnx import numpy_helper

    d = node_dir()
    out = []
    if d is not None:
        for case_dir in sorted(glob.glob(os.path.join(d, "*"))):
            model_path = os.path.join(case_dir, "model.onnx")
            if not os.path.exists(model_path):
                continue
            model = onnx.load(model_path)
            sets = []
            for ds in sorted(glob.glob(os.path.join(case_dir, "test_data_set_*"))):
                ins = [_read_pb(p) for p in sorted(glob.glob(os.path.join(ds, "input_*.pb")))]
                outs = [_read_pb(p) for p in sorted(glob.glob(os.path.join(ds, "output_*.pb")))]
                sets.append((ins, outs))
            out.append((os.path.basename(case_dir), model, sets, 1e-3, 1e-7))
        return out
    from onnx.backend.test.case import node

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cases = node.collect_testcases(None)
    for c in cases:
        if c.kind != "node":
            continue
        sets = [
            ([_to_np(numpy_helper, i) for i in ins], [_to_np(numpy_helper, o) for o in outs])
            for ins, outs in c.data_sets
        ]
        out.append((c.name, c.model, sets, c.rtol, c.atol))
    return out


def _read_pb(path: str) -> Any:
    import onnx
    from onnx import numpy_helper

    t = onnx.TensorProto()
    with open(path, "rb") as f:
        t.ParseFromString(f.read())
    return numpy_helper.to_array(t)


def _to_np(numpy_helper: Any, v: Any) -> Any:
    if isinstance(v, np.generic):  # a 0-d tensor written as a NumPy scalar by the case
        return np.asarray(v)
    if hasattr(v, "data_type") and hasattr(v, "dims"):
        try:
            return numpy_helper.to_array(v)
        except Exception:  # noqa: BLE001
            return v
    return v


def _elem_types(model: Any) -> List[int]:
    types = []
    g = model.graph
    for vi in list(g.input) + list(g.output):
        if vi.type.HasField("tensor_type"):
            types.append(vi.type.tensor_type.elem_type)
        else:
            types.append(-1)  # sequence / optional / map
    types += [t.data_type for t in g.initializer]
    for n in g.node:
        for a in n.attribute:
            if a.name == "to":
                types.append(a.i)
            if a.HasField("t"):
                types.append(a.t.data_type)
    return types


def exclusion_reason(name: str, model: Any, sets: Any) -> Optional[str]:
    """Why the case is excluded, or None to run it."""
    for n in model.graph.node:
        if n.op_type.startswith(UNSUPPORTED_PREFIXES):
            return f"{n.op_type}: sequence/optional types are not supported"
        reason = UNSUPPORTED_OPS.get(n.op_type)
        if reason:
            return f"{n.op_type}: {reason}"
        training = n.domain == "ai.onnx.preview.training" and n.op_type in TRAINING_OPS
        preview = n.domain == "ai.onnx.preview" and n.op_type == "FlexAttention"
        if n.domain not in ("", "ai.onnx") and not (training or preview):
            return f"{n.domain}::{n.op_type}: operators outside the default domain"
    for t in _elem_types(model):
        if t == -1:
            return "sequence/optional/map inputs or outputs are not supported"
        if t in _ELEM_NAMES:
            return f"dtype {_ELEM_NAMES[t]} is not supported by the executor"
    for ins, outs in sets:
        for a in list(ins) + list(outs):
            if not isinstance(a, np.ndarray) or any(
                s in np.asarray(a).dtype.name for s in UNSUPPORTED_DTYPES
            ):
                return "non-tensor or unsupported-dtype data"
    for pattern, reason in CASE_EXCLUDES:
        if re.search(pattern, name):
            return reason
    return None
