"""The .pfm format: round trips through InferenceSession, alignment, mmap, untrusted files."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import pyflame_rt as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from pyflame.runtime import pfm  # noqa: E402


def _conv_matmul_model() -> bytes:
    """x[N,2,6,6] -> Conv(3x3, pad 1) -> BatchNorm -> Relu -> Flatten -> MatMul -> Add -> y[N,5]."""
    rng = np.random.default_rng(1)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    b = rng.standard_normal(3).astype(np.float32)
    fc = rng.standard_normal((3 * 6 * 6, 5)).astype(np.float32)
    fcb = rng.standard_normal(5).astype(np.float32)
    scale, bias = rng.random(3).astype(np.float32) + 0.5, rng.standard_normal(3).astype(np.float32)
    mean, var = rng.standard_normal(3).astype(np.float32), rng.random(3).astype(np.float32) + 0.1
    bn = [(scale, "s"), (bias, "bb"), (mean, "mu"), (var, "var")]
    inits = [numpy_helper.from_array(a, n) for a, n in bn] + [
        numpy_helper.from_array(a, n) for a, n in [(w, "w"), (b, "b"), (fc, "fc"), (fcb, "fcb")]
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1], name="conv"),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "mu", "var"], ["bn"], name="bn"),
        helper.make_node("Relu", ["bn"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], axis=1, name="flat"),
        helper.make_node("MatMul", ["f", "fc"], ["m"], name="mm"),
        helper.make_node("Add", ["m", "fcb"], ["a"], name="add"),
        helper.make_node(
            "Constant",
            [],
            ["k"],
            name="const",
            value=numpy_helper.from_array(np.array([0.5], np.float32)),
        ),
        helper.make_node("Mul", ["a", "k"], ["y"], name="mul"),
    ]
    graph = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 2, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 5])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.producer_name = "pfm-test"
    return model.SerializeToString()


@pytest.fixture()
def model_bytes() -> bytes:
    return _conv_matmul_model()


def _x() -> np.ndarray:
    return np.random.default_rng(2).standard_normal((2, 2, 6, 6)).astype(np.float32)


@pytest.mark.parametrize("level", [ort.OptLevel.NONE, ort.OptLevel.ALL])
def test_onnx_to_pfm_round_trip_identical(tmp_path, model_bytes, level):
    so = ort.SessionOptions()
    so.optimization_level = level
    sess = ort.InferenceSession(model_bytes, sess_options=so)
    ref = sess.run(None, {"x": _x()})[0]
    # Save both the imported (unoptimized) graph and the session's optimized graph.
    g = ort.ONNXImporter().import_model(model_bytes).graph
    for src in (g, sess):
        path = tmp_path / "m.pfm"
        ort.save_pfm(src, path)
        sess2 = ort.InferenceSession(str(path), sess_options=so)
        out = sess2.run(None, {"x": _x()})[0]
        assert out.dtype == ref.dtype and out.shape == ref.shape
        np.testing.assert_array_equal(out, ref)
        assert [(i.name, i.shape, i.type) for i in sess2.get_inputs()] == [
            ("x", ["N", 2, 6, 6], "tensor(float)")
        ]
        assert sess2.get_modelmeta().producer_name == "pfm-test"
        # bytes and pathlib paths work too
        out_b = ort.InferenceSession(path.read_bytes(), sess_options=so).run(None, {"x": _x()})[0]
        np.testing.assert_array_equal(out_b, ref)
        sess3 = ort.InferenceSession(path, sess_options=so)
        np.testing.assert_array_equal(sess3.run(None, {"x": _x()})[0], ref)


def test_weights_are_aligned_and_memory_mapped(tmp_path, model_bytes):
    g = ort.ONNXImporter().import_model(model_bytes).graph
    path = tmp_path / "m.pfm"
    ort.save_pfm(g, path)
    raw = path.read_bytes()
    magic, version, meta_len = struct.unpack_from("<4sIQ", raw)
    assert (magic, version) == (b"PFM\0", 1)
    meta = json.loads(raw[16 : 16 + meta_len])
    data_start = (16 + meta_len + 63) // 64 * 64
    assert len(raw) % 64 == 0
    for e in meta["tensors"]:
        assert e["offset"] % 64 == 0 and (data_start + e["offset"]) % 64 == 0
    g2 = ort.load_pfm(path)
    assert set(g2.initializers) == set(g.initializers)
    for name, a in g.initializers.items():
        b = g2.initializers[name]
        np.testing.assert_array_equal(a, b)
        assert b.dtype == a.dtype and not b.flags.writeable
        # a view over the mmap, not a copy
        assert b.base is not None and not b.flags.owndata
    const = [n.attrs["value"] for n in g2.nodes if n.op_type == "Constant"]
    np.testing.assert_array_equal(const[0] if const else g2.initializers["k"], [0.5])
    conv = next(n for n in g2.nodes if n.op_type == "Conv")
    assert conv.attrs["pads"] == [1, 1, 1, 1]
    copied = ort.load_pfm(path, mmap_weights=False)
    assert all(a.flags.owndata for a in copied.initializers.values())


def test_attribute_and_dtype_round_trip(tmp_path):
    g = ort.Graph("attrs")
    g.add_input("x", [None, "T", 3], np.float32)
    arrays = {
        "f16": np.arange(5, dtype=np.float16),
        "f64": np.linspace(0, 1, 7),
        "i8": np.array([-1, 2], np.int8),
        "u8": np.array([[1, 2], [3, 4]], np.uint8),
        "i16": np.array([3], np.int16),
        "i32": np.array([], np.int32),
        "i64": np.array(7, np.int64),
        "b": np.array([True, False, True]),
        "strided": np.arange(12, dtype=np.float32).reshape(3, 4)[:, ::2],
    }
    for k, v in arrays.items():
        g.add_initializer(k, v)
    attrs = {
        "i": 3,
        "f": 0.25,
        "inf": float("inf"),
        "nan": float("nan"),
        "s": "héllo",
        "ints": [1, -2],
        "floats": [1.5, 2.0],
        "strs": ["a", "b"],
        "flag": True,
        "raw": b"\x00\xff",
        "none": None,
        "t": np.array([[1, 2]], np.int64),
    }
    g.add_node("n", "Identity", ["x"], ["y"], attrs, domain="custom")
    g.add_output("y", None, None)
    g.metadata = {"producer_name": "me", "custom:k": "v"}
    g.opset = 13
    data = ort.dumps_pfm(g)
    g2 = ort.loads_pfm(data)
    for k, v in arrays.items():
        np.testing.assert_array_equal(g2.initializers[k], v)
        assert g2.initializers[k].dtype == v.dtype and g2.initializers[k].shape == v.shape
    a = g2.nodes[0].attrs
    assert a["i"] == 3 and a["f"] == 0.25 and a["inf"] == float("inf") and np.isnan(a["nan"])
    assert a["s"] == "héllo" and a["ints"] == [1, -2] and a["strs"] == ["a", "b"]
    assert a["flag"] is True and a["raw"] == b"\x00\xff" and a["none"] is None
    np.testing.assert_array_equal(a["t"], [[1, 2]])
    assert g2.nodes[0].domain == "custom" and g2.opset == 13 and g2.metadata == g.metadata
    assert g2.inputs[0].shape == [None, "T", 3] and g2.outputs[0].dtype is None
    # file and bytes give the same graph
    path = tmp_path / "a.pfm"
    ort.save_pfm(g, path)
    assert path.read_bytes() == data


def test_save_rejects_unsupported_values(tmp_path):
    g = ort.Graph("bad")
    g.add_initializer("s", np.array(["a"]))
    with pytest.raises(ort.InvalidModelError, match="dtype"):
        ort.save_pfm(g, tmp_path / "x.pfm")
    g = ort.Graph("bad")
    g.add_node("n", "Relu", ["x"], ["y"], {"obj": object()})
    with pytest.raises(ort.InvalidModelError, match="attribute 'obj'"):
        ort.save_pfm(g, tmp_path / "x.pfm")
    with pytest.raises(TypeError):
        ort.save_pfm(42, tmp_path / "x.pfm")


# ------------------------------------------------------------------ untrusted files
def _saved(tmp_path, model_bytes) -> bytes:
    path = tmp_path / "ok.pfm"
    ort.save_pfm(ort.ONNXImporter().import_model(model_bytes).graph, path)
    return path.read_bytes()


def _with_meta(raw: bytes, edit) -> bytes:
    meta_len = struct.unpack_from("<Q", raw, 8)[0]
    meta = json.loads(raw[16 : 16 + meta_len])
    edit(meta)
    new = json.dumps(meta).encode()
    data_start = (16 + meta_len + 63) // 64 * 64
    head = struct.pack("<4sIQ", b"PFM\0", 1, len(new)) + new
    pad = (16 + len(new) + 63) // 64 * 64 - len(head)
    return head + b"\0" * pad + raw[data_start:]


def _load(tmp_path, data: bytes):
    p = tmp_path / "bad.pfm"
    p.write_bytes(data)
    return ort.load_pfm(p)


def test_every_truncation_is_rejected_cleanly(tmp_path, model_bytes):
    raw = _saved(tmp_path, model_bytes)
    meta_len = struct.unpack_from("<Q", raw, 8)[0]
    meta = json.loads(raw[16 : 16 + meta_len])
    data_start = (16 + meta_len + 63) // 64 * 64
    need = data_start + max(e["offset"] + e["nbytes"] for e in meta["tensors"])
    cuts = sorted(set(list(range(0, 40)) + list(range(40, need, max(1, need // 300))) + [need - 1]))
    for n in cuts:
        with pytest.raises((ort.InvalidModelError, ort.UnsupportedFormatError)):
            _load(tmp_path, raw[:n])
        with pytest.raises((ort.InvalidModelError, ort.UnsupportedFormatError)):
            ort.loads_pfm(raw[:n])
    with pytest.raises(ort.InvalidModelError, match="beyond the end of the file"):
        _load(tmp_path, raw[: need - 1])
    # only the final alignment padding may be cut
    assert set(ort.loads_pfm(raw[:need]).initializers) == set(meta["initializers"])


def test_random_corruption_never_crashes(tmp_path, model_bytes):
    raw = _saved(tmp_path, model_bytes)
    meta_end = 16 + struct.unpack_from("<Q", raw, 8)[0]
    rng = np.random.default_rng(0)
    for _ in range(300):
        b = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, meta_end))] = int(rng.integers(0, 256))
        try:
            ort.loads_pfm(bytes(b))
        except (ort.InvalidModelError, ort.UnsupportedFormatError):
            pass


def test_header_checks(tmp_path, model_bytes):
    raw = _saved(tmp_path, model_bytes)
    with pytest.raises(ort.UnsupportedFormatError, match="magic"):
        _load(tmp_path, b"XXXX" + raw[4:])
    with pytest.raises(ort.UnsupportedFormatError, match="version 99"):
        _load(tmp_path, raw[:4] + struct.pack("<I", 99) + raw[8:])
    with pytest.raises(ort.InvalidModelError, match="metadata length"):
        _load(tmp_path, raw[:8] + struct.pack("<Q", 2**62) + raw[16:])
    with pytest.raises(ort.InvalidModelError, match="JSON"):
        _load(tmp_path, raw[:16] + b"\xff" + raw[17:])
    with pytest.raises(ort.InvalidModelError, match="not found"):
        ort.load_pfm(tmp_path / "missing.pfm")
    # a .pfm path through the session reports the same errors
    p = tmp_path / "trunc.pfm"
    p.write_bytes(raw[:100])
    with pytest.raises(ort.InvalidModelError):
        ort.InferenceSession(str(p))
    # PFM magic under another extension is still recognised
    q = tmp_path / "model.bin"
    q.write_bytes(raw)
    assert ort.InferenceSession(str(q)).get_inputs()[0].name == "x"


def _first(meta):
    return meta["tensors"][0]


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda m: _first(m).update(dtype="complex64"), "unknown dtype 'complex64'"),
        (lambda m: _first(m).update(dtype=None), "unknown dtype"),
        (lambda m: _first(m).update(offset=1 << 40), "beyond the end"),
        (lambda m: _first(m).update(offset=-64), "negative"),
        (lambda m: _first(m).update(offset=8), "aligned"),
        (lambda m: _first(m).update(nbytes=_first(m)["nbytes"] + 4), "does not match"),
        (lambda m: _first(m).update(shape=[-1]), "non-negative"),
        (lambda m: _first(m).update(shape="abc"), "wrong type"),
        (lambda m: _first(m).update(shape=[2**40, 2**40], nbytes=2**82), "beyond the end"),
        (lambda m: m.pop("tensors"), "missing field 'tensors'"),
        (lambda m: m["initializers"].update(w=999), "out of range"),
        (lambda m: m["nodes"][0].update(inputs=[1]), "list of strings"),
        (lambda m: m["nodes"][0].update(attrs={"a": {"t": "evil"}}), "unknown attribute kind"),
        (lambda m: m["nodes"][0].update(attrs={"a": {"t": "tensor", "v": 99}}), "out of range"),
        (lambda m: m["inputs"][0].update(dtype="object"), "unknown dtype 'object'"),
        (lambda m: m["inputs"][0].update(shape=[1.5]), "shape must be"),
        (lambda m: m.update(metadata={"a": 1}), "strings to strings"),
        (lambda m: m.update(nodes="x"), "wrong type"),
    ],
)
def test_corrupt_metadata_is_rejected_with_clear_message(tmp_path, model_bytes, edit, message):
    raw = _saved(tmp_path, model_bytes)
    with pytest.raises(ort.InvalidModelError, match=message):
        _load(tmp_path, _with_meta(raw, edit))


def test_non_object_metadata(tmp_path):
    body = b"[1, 2]"
    data = struct.pack("<4sIQ", b"PFM\0", 1, len(body)) + body
    with pytest.raises(ort.InvalidModelError, match="not a JSON object"):
        ort.loads_pfm(data)


def test_module_constants():
    assert pfm.ALIGNMENT == 64 and pfm.MAGIC == b"PFM\0" and os.path.basename(pfm.__file__)
