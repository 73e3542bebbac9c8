"""Torch-free PyTorch state-dict import: real golden file, hand-written archives, hostile files.

The tests never import torch. ``_write_pt`` produces the byte layout of ``torch.save`` (zip
with ``<prefix>/data.pkl`` whose tensors reference storages by persistent id
``('storage', <torch.XStorage global>, key, 'cpu', numel)``, and the raw little-endian
storage bytes under ``<prefix>/data/<key>``); ``tests/golden/runtime/linear2.pt`` is a real
file written by ``scripts/make_golden_pt.py``.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import zipfile

import numpy as np
import pyflame as pf
import pyflame_rt as ort
import pytest
from pyflame import nn
from pyflame.runtime.torch_import import UnsafeCheckpointError, load_pytorch_checkpoint

GOLDEN = os.path.join(os.path.dirname(__file__), "..", "golden", "runtime")


# ------------------------------------------------------------------ torch.save look-alike
class _Global:
    """Pickled as ``GLOBAL 'module name'`` (no import, like torch's own globals)."""

    def __init__(self, module: str, name: str) -> None:
        self.module, self.name = module, name


class _Call:
    """Pickled as ``func(*args)`` (REDUCE)."""

    def __init__(self, func: _Global, *args) -> None:
        self.func, self.args = func, args


class _Storage:
    """A storage: pickled as a persistent id, its bytes go to ``data/<key>``."""

    def __init__(self, key: str, kind: str, data: bytes, numel: int) -> None:
        self.key, self.kind, self.data, self.numel = key, kind, data, numel


_KINDS = {
    np.dtype(np.float32): "FloatStorage",
    np.dtype(np.float64): "DoubleStorage",
    np.dtype(np.float16): "HalfStorage",
    np.dtype(np.int64): "LongStorage",
    np.dtype(np.int32): "IntStorage",
    np.dtype(np.int16): "ShortStorage",
    np.dtype(np.int8): "CharStorage",
    np.dtype(np.uint8): "ByteStorage",
    np.dtype(np.bool_): "BoolStorage",
}


class _TorchLikePickler(pickle._Pickler):  # the pure-Python pickler lets us emit raw GLOBALs
    dispatch = pickle._Pickler.dispatch.copy()

    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _Global("torch", obj.kind), obj.key, "cpu", obj.numel)
        return None

    def _save_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    def _save_call(self, obj):
        self.save(obj.func)
        self.save(tuple(obj.args))
        self.write(pickle.REDUCE)

    dispatch[_Global] = _save_global
    dispatch[_Call] = _save_call


def _storage(key: str, a: np.ndarray, kind: str = "") -> _Storage:
    a = np.ascontiguousarray(a)
    kind = kind or _KINDS[a.dtype]
    return _Storage(key, kind, a.astype(a.dtype.newbyteorder("<")).tobytes(), a.size)


def _tensor(storage, offset, size, stride, parameter=False):
    t = _Call(
        _Global("torch._utils", "_rebuild_tensor_v2"),
        storage,
        offset,
        tuple(size),
        tuple(stride),
        False,
        _Call(_Global("collections", "OrderedDict")),
    )
    if parameter:
        t = _Call(_Global("torch._utils", "_rebuild_parameter"), t, True, collections.OrderedDict())
    return t


def _dense(key: str, a: np.ndarray, parameter: bool = False):
    a = np.asarray(a)
    strides = [s // a.itemsize for s in np.array(a, order="C").strides]
    return _tensor(_storage(key, a.reshape(-1)), 0, a.shape, strides, parameter)


def _collect(obj, out):
    if isinstance(obj, _Storage):
        out[obj.key] = obj
    elif isinstance(obj, _Call):
        for x in obj.args:
            _collect(x, out)
    elif isinstance(obj, dict):
        for v in obj.values():
            _collect(v, out)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _collect(v, out)
    return out


def _pickle(obj) -> bytes:
    buf = io.BytesIO()
    _TorchLikePickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def _write_pt(path, obj, prefix="archive", data_pkl=None, extra=None, drop=()):
    storages = _collect(obj, {})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        z.writestr(f"{prefix}/data.pkl", data_pkl if data_pkl is not None else _pickle(obj))
        z.writestr(f"{prefix}/byteorder", "little")
        for key, s in storages.items():
            if key not in drop:
                z.writestr(f"{prefix}/data/{key}", s.data)
        z.writestr(f"{prefix}/version", "3\n")
        for name, data in (extra or {}).items():
            z.writestr(name, data)
    return path


# ------------------------------------------------------------------ the real torch file
def test_golden_torch_file_matches_reference():
    ref = np.load(os.path.join(GOLDEN, "linear2.npz"))
    sd = ort.load_pytorch_state_dict(os.path.join(GOLDEN, "linear2.pt"))
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    for k, v in sd.items():
        np.testing.assert_array_equal(v, ref[f"sd__{k}"])
        assert v.dtype == np.float32 and v.shape == ref[f"sd__{k}"].shape


def test_from_pytorch_builds_pyflame_model():
    ref = np.load(os.path.join(GOLDEN, "linear2.npz"))
    model = ort.from_pytorch(
        os.path.join(GOLDEN, "linear2.pt"),
        lambda: nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2)),
    )
    y = model(pf.tensor(ref["x"])).numpy()
    np.testing.assert_allclose(y, ref["y"], rtol=1e-6, atol=1e-6)
    with pytest.raises(RuntimeError, match="size mismatch|shape"):
        ort.from_pytorch(
            os.path.join(GOLDEN, "linear2.pt"),
            lambda: nn.Sequential(nn.Linear(3, 5), nn.ReLU(), nn.Linear(5, 2)),
        )
    with pytest.raises(TypeError, match="pyflame.nn.Module"):
        ort.from_pytorch(os.path.join(GOLDEN, "linear2.pt"), lambda: 42)


def _define_mlp(graph, weights):
    graph.add_input("input", [None, 3], np.float32)
    for k, v in weights.items():
        graph.add_initializer(k, v)
    graph.add_node("fc1", "Gemm", ["input", "0.weight", "0.bias"], ["h"], {"transB": 1})
    graph.add_node("relu", "Relu", ["h"], ["r"])
    graph.add_node("fc2", "Gemm", ["r", "2.weight", "2.bias"], ["output"], {"transB": 1})
    graph.add_output("output", [None, 2], np.float32)


def test_pytorch_importer_with_graph_definer(tmp_path):
    ref = np.load(os.path.join(GOLDEN, "linear2.npz"))
    importer = ort.import_module.PyTorchImporter()
    result = importer.import_model(os.path.join(GOLDEN, "linear2.pt"), _define_mlp)
    assert result.success, result.error
    assert result.stats.node_count == 3 and result.stats.parameter_count == 4 * 3 + 4 + 2 * 4 + 2
    sess = ort.InferenceSession(result.graph)
    np.testing.assert_allclose(sess.run(None, {"input": ref["x"]})[0], ref["y"], rtol=1e-5)
    # ... and the graph survives a .pfm round trip
    ort.save_pfm(sess, tmp_path / "mlp.pfm")
    out = ort.InferenceSession(str(tmp_path / "mlp.pfm")).run(None, {"input": ref["x"]})[0]
    np.testing.assert_array_equal(out, sess.run(None, {"input": ref["x"]})[0])
    bad = importer.import_model(os.path.join(GOLDEN, "linear2.pt"), lambda g, w: w["nope"])
    assert not bad.success and "nope" in bad.error
    with pytest.raises(ort.UnsupportedFormatError, match="model definer"):
        ort.InferenceSession(os.path.join(GOLDEN, "linear2.pt"))


# ------------------------------------------------------------------ hand-written archives
def test_dtypes_strides_offsets_and_parameters(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {
        "f32": rng.standard_normal((2, 3)).astype(np.float32),
        "f64": rng.standard_normal(4),
        "f16": rng.standard_normal(3).astype(np.float16),
        "i64": np.array([1, -2, 3], np.int64),
        "i32": np.array([[7]], np.int32),
        "i16": np.array([-5, 5], np.int16),
        "i8": np.array([-128, 127], np.int8),
        "u8": np.array([0, 255], np.uint8),
        "b": np.array([True, False]),
        "scalar": np.array(3, np.int64),
        "empty": np.zeros((0, 4), np.float32),
    }
    sd = collections.OrderedDict((k, _dense(f"s_{k}", v)) for k, v in arrays.items())
    sd["param"] = _dense("s_param", arrays["f32"], parameter=True)
    # a transposed view and two slices sharing one storage, with storage offsets
    base = np.arange(12, dtype=np.float32)
    shared = _storage("shared", base)
    sd["transposed"] = _tensor(shared, 0, (3, 4), (1, 3))
    sd["tail"] = _tensor(shared, 6, (2, 3), (3, 1))
    sd["every_other"] = _tensor(shared, 1, (5,), (2,))
    sd["broadcast"] = _tensor(shared, 2, (2, 3), (0, 1))
    bf = np.array([1.0, -2.5, 3.140625], np.float32)
    bf_bits = (bf.view(np.uint32) >> 16).astype(np.uint16)
    sd["bf16"] = _tensor(_storage("bf", bf_bits, "BFloat16Storage"), 0, (3,), (1,))
    path = _write_pt(tmp_path / "m.pt", sd)
    out = ort.load_pytorch_state_dict(path)
    assert list(out) == list(sd)
    for k, v in arrays.items():
        np.testing.assert_array_equal(out[k], v)
        assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
    np.testing.assert_array_equal(out["param"], arrays["f32"])
    np.testing.assert_array_equal(out["transposed"], base[:12].reshape(4, 3).T)
    np.testing.assert_array_equal(out["tail"], base[6:].reshape(2, 3))
    np.testing.assert_array_equal(out["every_other"], base[1:11:2])
    np.testing.assert_array_equal(out["broadcast"], [[2, 3, 4], [2, 3, 4]])
    assert out["bf16"].dtype == np.float32
    np.testing.assert_array_equal(out["bf16"], bf)
    assert all(a.flags.owndata or a.base is not None for a in out.values())


def test_state_dict_key_and_checkpoint_dicts(tmp_path):
    w = np.ones((2, 2), np.float32)
    ckpt = {"epoch": 3, "model_state_dict": {"w": _dense("0", w)}, "lr": [0.1, 0.01]}
    path = _write_pt(tmp_path / "ckpt.pt", ckpt, prefix="ckpt")
    np.testing.assert_array_equal(ort.load_pytorch_state_dict(path)["w"], w)  # auto-detected
    np.testing.assert_array_equal(ort.load_pytorch_state_dict(path, "model_state_dict")["w"], w)
    with pytest.raises(ort.InvalidModelError, match="'state_dict' not in the checkpoint"):
        ort.load_pytorch_state_dict(path, "state_dict")
    with pytest.raises(ort.InvalidModelError, match="state_dict_key"):
        ort.load_pytorch_state_dict(path, "epoch")
    full = load_pytorch_checkpoint(path)
    assert full["epoch"] == 3 and full["lr"] == [0.1, 0.01]
    other = _write_pt(tmp_path / "o.pt", {"a": {"w": _dense("0", w)}, "step": 1})
    with pytest.raises(ort.InvalidModelError, match="not named tensors"):
        ort.load_pytorch_state_dict(other)
    lst = _write_pt(tmp_path / "l.pt", [_dense("0", w)])
    with pytest.raises(ort.InvalidModelError, match="not a dict"):
        ort.load_pytorch_state_dict(lst)


# ------------------------------------------------------------------ hostile files
class _Evil:
    def __init__(self, func, arg):
        self.func, self.arg = func, arg

    def __reduce__(self):
        return (self.func, (self.arg,))


@pytest.mark.parametrize("protocol", [2, 4])
@pytest.mark.parametrize(
    "func, name",
    [
        (os.system, r"(posix|os|nt)\.system"),
        (eval, r"(builtins|__builtin__)\.eval"),
        (getattr, r"(builtins|__builtin__)\.getattr"),
    ],
)
def test_malicious_pickle_is_refused_not_executed(tmp_path, protocol, func, name):
    marker = tmp_path / "pwned"
    arg = f"touch {marker}" if func is os.system else "__import__('os')"
    payload = collections.OrderedDict(w=1.0, evil=_Evil(func, arg))
    data = pickle.dumps(payload, protocol=protocol)
    path = _write_pt(tmp_path / "evil.pt", {}, data_pkl=data)
    with pytest.raises(UnsafeCheckpointError, match=name) as ei:
        ort.load_pytorch_state_dict(path)
    assert isinstance(ei.value, ort.InvalidModelError)
    assert "not on the allow-list" in str(ei.value)
    assert not marker.exists()


def test_other_forbidden_globals(tmp_path):
    for mod, name in [
        ("torch._utils", "_rebuild_qtensor"),
        ("torch", "load"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("collections", "defaultdict"),
    ]:
        data = _pickle({"x": _Call(_Global(mod, name), 1)})
        path = _write_pt(tmp_path / "f.pt", {}, data_pkl=data)
        with pytest.raises(UnsafeCheckpointError, match=f"'{mod}.{name}'"):
            ort.load_pytorch_state_dict(path)


@pytest.mark.parametrize(
    "tensor, message",
    [
        (lambda s: _tensor(s, 0, (3, 3), (3, 1)), "reaches element 8"),
        (lambda s: _tensor(s, 5, (2,), (1,)), "reaches element"),
        (lambda s: _tensor(s, 0, (2,), (-1,)), "negative"),
        (lambda s: _tensor(s, -1, (2,), (1,)), "negative"),
        (lambda s: _tensor(s, 0, (2, 2), (1,)), "different ranks"),
        (lambda s: _tensor(s, 0, (2.5,), (1,)), "tuple of ints"),
        (lambda s: _tensor(s, "0", (2,), (1,)), "not an int"),
        (lambda s: _tensor("nope", 0, (2,), (1,)), "not a storage"),
        (lambda s: _tensor(s, 0, (10**9, 10**9), (0, 0)), "implausibly large"),
        (lambda s: _Call(_Global("torch._utils", "_rebuild_parameter"), 5), "not a tensor"),
    ],
)
def test_out_of_bounds_views_are_rejected(tmp_path, tensor, message):
    s = _storage("0", np.arange(6, dtype=np.float32))
    path = _write_pt(tmp_path / "b.pt", {"t": tensor(s)})
    with pytest.raises(ort.InvalidModelError, match=message):
        ort.load_pytorch_state_dict(path)


def test_storage_problems(tmp_path):
    s = _storage("0", np.arange(4, dtype=np.float32))
    s.numel = 100  # claims more elements than data/0 holds
    with pytest.raises(ort.InvalidModelError, match="has 16 bytes but 100"):
        ort.load_pytorch_state_dict(_write_pt(tmp_path / "a.pt", {"t": _tensor(s, 0, (4,), (1,))}))
    s = _storage("0", np.arange(4, dtype=np.float32))
    with pytest.raises(ort.InvalidModelError, match="missing"):
        ort.load_pytorch_state_dict(
            _write_pt(tmp_path / "b.pt", {"t": _tensor(s, 0, (4,), (1,))}, drop=("0",))
        )
    s = _storage("0", np.arange(4, dtype=np.float32), kind="ComplexFloatStorage")
    with pytest.raises(UnsafeCheckpointError, match="torch.ComplexFloatStorage"):
        ort.load_pytorch_state_dict(_write_pt(tmp_path / "c.pt", {"t": _tensor(s, 0, (4,), (1,))}))

    class _BadPid(_TorchLikePickler):
        def persistent_id(self, obj):
            return ("storage", "x") if isinstance(obj, _Storage) else None

    buf = io.BytesIO()
    _BadPid(buf, protocol=2).dump({"t": _tensor(s, 0, (4,), (1,))})
    with pytest.raises(ort.InvalidModelError, match="persistent id"):
        ort.load_pytorch_state_dict(_write_pt(tmp_path / "d.pt", {}, data_pkl=buf.getvalue()))


def test_big_endian_archive(tmp_path):
    a = np.arange(6, dtype=np.float32)
    s = _Storage("0", "FloatStorage", a.astype(">f4").tobytes(), 6)
    path = tmp_path / "be.pt"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("archive/data.pkl", _pickle({"t": _tensor(s, 0, (2, 3), (3, 1))}))
        z.writestr("archive/byteorder", "big")
        z.writestr("archive/data/0", s.data)
    np.testing.assert_array_equal(ort.load_pytorch_state_dict(path)["t"], a.reshape(2, 3))


def test_wrong_formats(tmp_path):
    legacy = tmp_path / "legacy.pt"
    legacy.write_bytes(pickle.dumps(119547037146038801333356, protocol=2) + b"rest")
    with pytest.raises(ort.UnsupportedFormatError, match="legacy"):
        ort.load_pytorch_state_dict(legacy)
    garbage = tmp_path / "g.pt"
    garbage.write_bytes(b"hello world")
    with pytest.raises(ort.UnsupportedFormatError, match="not a PyTorch zip"):
        ort.load_pytorch_state_dict(garbage)
    ts = tmp_path / "ts.pt"
    with zipfile.ZipFile(ts, "w") as z:
        z.writestr("m/constants.pkl", b"")
        z.writestr("m/code/m.py", b"")
    with pytest.raises(ort.UnsupportedFormatError, match="TorchScript"):
        ort.load_pytorch_state_dict(ts)
    with pytest.raises(ort.InvalidModelError, match="not found"):
        ort.load_pytorch_state_dict(tmp_path / "missing.pt")


def test_truncated_and_corrupted_files_raise_cleanly(tmp_path):
    raw = open(os.path.join(GOLDEN, "linear2.pt"), "rb").read()
    p = tmp_path / "t.pt"
    for n in list(range(0, len(raw), 7)):
        p.write_bytes(raw[:n])
        with pytest.raises((ort.InvalidModelError, ort.UnsupportedFormatError)):
            ort.load_pytorch_state_dict(p)
    rng = np.random.default_rng(0)
    for _ in range(300):
        b = bytearray(raw)
        for _ in range(int(rng.integers(1, 4))):
            b[int(rng.integers(0, len(b)))] = int(rng.integers(0, 256))
        p.write_bytes(bytes(b))
        try:
            sd = ort.load_pytorch_state_dict(p)
        except (ort.InvalidModelError, ort.UnsupportedFormatError):
            continue
        assert all(isinstance(v, np.ndarray) for v in sd.values())
    # a corrupt pickle inside a valid zip
    data = _pickle({"t": _dense("0", np.ones(3, np.float32))})
    for cut in range(1, len(data), 5):
        path = _write_pt(
            tmp_path / "c.pt", {"t": _dense("0", np.ones(3, np.float32))}, data_pkl=data[:cut]
        )
        with pytest.raises(ort.InvalidModelError):
            ort.load_pytorch_state_dict(path)


def test_writer_matches_torch_layout():
    """Our hand-written archive pickles like the real torch file (same opcodes/globals)."""
    import pickletools

    raw = open(os.path.join(GOLDEN, "linear2.pt"), "rb").read()
    with zipfile.ZipFile(io.BytesIO(raw)) as z:
        real = z.read("archive/data.pkl")

    def globals_of(data):
        return sorted({a for op, a, _ in pickletools.genops(data) if op.name == "GLOBAL"})

    sd = collections.OrderedDict(
        (k, _dense(str(i), np.zeros(2, np.float32))) for i, k in enumerate(["0.weight", "0.bias"])
    )
    mine = _pickle(_Call(_Global("collections", "OrderedDict"), ()) if False else sd)
    assert set(globals_of(mine)) <= set(globals_of(real)) | {"collections OrderedDict"}
    assert "torch FloatStorage" in globals_of(mine)
