"""Session API, options, errors, import and optimization passes."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
import pyflame_rt as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from pyflame_rt import opt  # noqa: E402


def _conv_bn_relu_model(dynamic_batch=True):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    scale, bias = rng.random(4).astype(np.float32) + 0.5, rng.standard_normal(4).astype(np.float32)
    mean, var = rng.standard_normal(4).astype(np.float32), rng.random(4).astype(np.float32) + 0.1
    fc = rng.standard_normal((4, 5)).astype(np.float32)
    fcb = rng.standard_normal(5).astype(np.float32)
    inits = [
        numpy_helper.from_array(a, n)
        for a, n in [
            (w, "w"),
            (b, "b"),
            (scale, "s"),
            (bias, "bb"),
            (mean, "m"),
            (var, "v"),
            (fc, "fc"),
            (fcb, "fcb"),
            (np.array([0, -1], np.int64), "shp"),
        ]
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["c", "s", "bb", "m", "v"], ["bn"]),
        helper.make_node("Relu", ["bn"], ["r"]),
        helper.make_node("Identity", ["r"], ["r2"]),
        helper.make_node("GlobalAveragePool", ["r2"], ["p"]),
        helper.make_node("Shape", ["p"], ["ps"]),
        helper.make_node("Gather", ["ps", "zero"], ["n"], axis=0),
        helper.make_node("Reshape", ["p", "shp"], ["flat"]),
        helper.make_node("MatMul", ["flat", "fc"], ["mm"]),
        helper.make_node("Add", ["mm", "fcb"], ["y"]),
        helper.make_node("Relu", ["x"], ["dead"]),
    ]
    inits.append(numpy_helper.from_array(np.array(0, np.int64), "zero"))
    batch = "N" if dynamic_batch else 2
    g = helper.make_graph(
        nodes,
        "convnet",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 5])],
        inits,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="unit-test")
    ref_parts = dict(w=w, b=b, scale=scale, bias=bias, mean=mean, var=var, fc=fc, fcb=fcb)
    return m, ref_parts


def _reference(x, p):
    n = x.shape[0]
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, 4, 8, 8), np.float64)
    for i in range(8):
        for j in range(8):
            patch = xp[:, :, i : i + 3, j : j + 3]
            out[:, :, i, j] = np.einsum("nchw,ochw->no", patch, p["w"]) + p["b"]
    bn = (out - p["mean"][None, :, None, None]) / np.sqrt(p["var"][None, :, None, None] + 1e-5)
    bn = bn * p["scale"][None, :, None, None] + p["bias"][None, :, None, None]
    pooled = np.maximum(bn, 0).mean(axis=(2, 3))
    return pooled @ p["fc"] + p["fcb"]


@pytest.mark.parametrize(
    "level",
    [
        ort.OptLevel.ORT_DISABLE_ALL,
        ort.OptLevel.ORT_ENABLE_BASIC,
        ort.OptLevel.ORT_ENABLE_EXTENDED,
        ort.OptLevel.ORT_ENABLE_ALL,
    ],
)
def test_end_to_end_matches_reference_at_every_level(level):
    model, parts = _conv_bn_relu_model()
    so = ort.SessionOptions()
    so.graph_optimization_level = level
    sess = ort.InferenceSession(
        model.SerializeToString(), sess_options=so, providers=["CPUExecutionProvider"]
    )
    for n in (1, 3, 1):
        x = np.random.default_rng(n).standard_normal((n, 3, 8, 8)).astype(np.float32)
        y = sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(y, _reference(x, parts), rtol=1e-4, atol=1e-4)


def test_metadata_and_node_args(tmp_path):
    model, _ = _conv_bn_relu_model()
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    sess = ort.InferenceSession(str(path))
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert (inp.name, inp.shape, inp.type) == ("x", ["N", 3, 8, 8], "tensor(float)")
    assert (out.name, out.shape, out.type) == ("y", ["N", 5], "tensor(float)")
    assert sess.get_providers() == ["CPUExecutionProvider"]
    meta = sess.get_modelmeta()
    assert meta.producer_name == "unit-test" and meta.graph_name == "convnet"


def test_optimizer_fuses_and_cleans():
    model, _ = _conv_bn_relu_model(dynamic_batch=False)
    sess = ort.InferenceSession(model.SerializeToString())
    ops = [n.op_type for n in sess.graph.nodes]
    assert "BatchNormalization" not in ops and "Identity" not in ops
    assert "FusedConv" in ops and ("Gemm" in ops or "FusedMatMulBias" in ops)
    assert "Shape" not in ops and "Gather" not in ops  # static shape arithmetic folded
    res = sess.optimization_result
    assert res.stats.nodes_fused >= 2 and res.stats.constants_folded >= 1


def test_skip_passes_and_manual_pass_manager():
    model, _ = _conv_bn_relu_model(dynamic_batch=False)
    graph = ort.ONNXImporter().import_model(model).graph
    cfg = opt.PassManagerConfig(
        max_iterations=3, validate_after_pass=True, skip_passes=["OperatorFusionPass"]
    )
    pm = opt.PassManager.create_default(ort.OptLevel.ALL, cfg)
    res = pm.run_until_fixed_point(graph)
    assert res.iterations >= 1 and "BatchNormalization" in [n.op_type for n in graph.nodes]
    assert "OperatorFusionPass" not in res.pass_times_ms
    with pytest.raises(KeyError):
        pm.run_pass("NoSuchPass", graph)


def test_cse_and_pattern_matcher():
    g = ort.Graph("cse")
    g.add_input("a", [4], np.float32)
    g.add_node("e1", "Exp", ["a"], ["x"])
    g.add_node("e2", "Exp", ["a"], ["y"])
    g.add_node("m", "Mul", ["x", "y"], ["z"])
    g.add_output("z", [4], np.float32)
    assert opt.eliminate_common_subexpressions(g).stats.nodes_removed == 1
    a = np.arange(4, dtype=np.float32)
    out = ort.InferenceSession(g).run(None, {"a": a})[0]
    np.testing.assert_allclose(out, np.exp(a) ** 2, rtol=1e-5)


def test_input_errors_name_what_was_expected():
    model, _ = _conv_bn_relu_model()
    sess = ort.InferenceSession(model.SerializeToString())
    x = np.zeros((1, 3, 8, 8), np.float32)
    with pytest.raises(ort.InputError, match="'x'"):
        sess.run(None, {"wrong": x})
    with pytest.raises(ort.InputError, match="missing"):
        sess.run(None, {})
    with pytest.raises(ort.ShapeMismatchError, match=r"\['N', 3, 8, 8\]"):
        sess.run(None, {"x": np.zeros((1, 3, 9, 8), np.float32)})
    with pytest.raises(ort.ShapeMismatchError, match="rank"):
        sess.run(None, {"x": np.zeros((3, 8, 8), np.float32)})
    with pytest.raises(ort.DTypeMismatchError, match=r"tensor\(float\).*tensor\(double\)"):
        sess.run(None, {"x": x.astype(np.float64)})
    with pytest.raises(ort.InputError, match="unknown output"):
        sess.run(["nope"], {"x": x})
    assert issubclass(ort.ShapeMismatchError, ort.PyFlameRTError)


def test_malformed_models_raise_clean_errors(tmp_path):
    with pytest.raises(ort.InvalidModelError):
        ort.InferenceSession(b"\x08\x07garbage\xff\xff")
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(os.urandom(256))
    with pytest.raises(ort.InvalidModelError):
        ort.InferenceSession(str(bad))
    with pytest.raises(ort.InvalidModelError):
        ort.InferenceSession(str(tmp_path / "missing.onnx"))
    with pytest.raises(ort.UnsupportedFormatError):
        ort.InferenceSession(12345)
    model, _ = _conv_bn_relu_model()
    data = model.SerializeToString()
    for cut in (10, len(data) // 2, len(data) - 3):
        with pytest.raises(ort.PyFlameRTError):
            ort.InferenceSession(data[:cut])


def test_all_unsupported_operators_reported_at_once():
    nodes = [
        helper.make_node("StringSplit", ["x"], ["y1"]),
        helper.make_node("StringNormalizer", ["x"], ["y2"]),
        helper.make_node("Relu", ["x"], ["y3"]),
        helper.make_node("Frobnicate", ["x"], ["y4"], domain="com.example"),
    ]
    vi = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y1", "y2", "y3", "y4")
    ]
    g = helper.make_graph(
        nodes,
        "bad",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in ("x", "w", "r")],
        vi,
    )
    m = helper.make_model(
        g, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    with pytest.raises(ort.UnsupportedOperatorError) as ei:
        ort.InferenceSession(m.SerializeToString())
    assert set(ei.value.operators) == {
        "StringSplit",
        "StringNormalizer",
        "com.example::Frobnicate",
    }


def test_import_result_and_stats():
    model, _ = _conv_bn_relu_model()
    res = ort.ONNXImporter().import_model(model.SerializeToString(), ort.ImportOptions())
    assert res.success and res.stats.node_count == 11 and res.stats.opset == 17
    assert res.stats.parameter_count > 100
    assert not ort.ONNXImporter().import_model(b"junk").success


def test_options_validation_and_aliases():
    so = ort.SessionOptions()
    assert so.optimization_level is ort.OptLevel.EXTENDED
    so.graph_optimization_level = 99  # ORT's ORT_ENABLE_ALL value
    assert so.optimization_level is ort.OptLevel.ALL
    so.intra_op_num_threads = 2
    assert so.num_threads == 2 and so.validate() == []
    so.device = "gpu"
    so.log_level = "loud"
    assert len(so.validate()) == 2
    with pytest.raises(ort.InputError):
        ort.InferenceSession(ort.Graph(), sess_options=so)
    ro = ort.RunOptions()
    ro.tag, ro.timeout_ms = "t", 5000
    assert ro.run_tag == "t"


def test_ort_config_entries_and_compatibility_options():
    so = ort.SessionOptions()
    assert so.allow_spinning
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.some_future_key", "x")
    assert not so.allow_spinning
    assert so.get_session_config_entry("session.some_future_key") == "x"
    with pytest.raises(KeyError, match="not set"):
        so.get_session_config_entry("session.unset")
    with pytest.raises(ValueError, match="'0' or '1'"):
        so.add_session_config_entry("session.intra_op.allow_spinning", "yes")
    with pytest.raises(TypeError):
        so.add_session_config_entry("session.intra_op.allow_spinning", 0)
    so.enable_mem_pattern = False
    so.enable_cpu_mem_arena = False
    so.use_deterministic_compute = True
    assert so.validate() == []
    ro = ort.RunOptions()
    ro.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
    assert ro.get_run_config_entry("memory.enable_memory_arena_shrinkage") == "cpu:0"
    ro.log_severity_level = 3
    assert ro.log_level == "error" and ro.log_severity_level == 3
    ro.logid = "request-7"
    with pytest.raises(KeyError):
        ro.get_run_config_entry("nope")


@pytest.mark.parametrize("spinning", ["0", "1"])
def test_runs_with_and_without_spinning_workers(spinning):
    model, parts = _conv_bn_relu_model()
    so = ort.SessionOptions()
    so.add_session_config_entry("session.intra_op.allow_spinning", spinning)
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so)
    assert sess._executor.keep_awake is (spinning == "1")
    rng = np.random.default_rng(5)
    for _ in range(5):  # past recording, onto the recorded graph
        x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32)
        y = sess.run(None, {"x": x})[0]
        np.testing.assert_allclose(y, _reference(x, parts), rtol=1e-4, atol=1e-4)
    # The recorded run hands the session's setting to the template.
    ((key, (recorded, index)),) = sess._recorded_runs.items()
    seen = []

    class Spy:
        def run(self, arrays, pool, keep_awake):
            seen.append(keep_awake)
            return recorded.template.run(arrays, pool, keep_awake)

    sess._recorded_runs[key] = (recorded._replace(template=Spy()), index)
    np.testing.assert_allclose(
        sess.run(None, {"x": x})[0], _reference(x, parts), rtol=1e-4, atol=1e-4
    )
    assert seen == [spinning == "1"]


def test_optimized_model_filepath_writes_a_loadable_pfm(tmp_path):
    model, parts = _conv_bn_relu_model()
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.optimized_model_filepath = str(tmp_path / "opt.pfm")
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so)
    reloaded = ort.InferenceSession(str(tmp_path / "opt.pfm"))
    assert len(reloaded.graph.nodes) == len(sess.graph.nodes)
    x = np.random.default_rng(6).standard_normal((3, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        reloaded.run(None, {"x": x})[0], _reference(x, parts), rtol=1e-4, atol=1e-4
    )
    so.optimized_model_filepath = str(tmp_path / "opt.onnx")
    with pytest.raises(NotImplementedError, match=".pfm"):
        ort.InferenceSession(model.SerializeToString(), sess_options=so)


def test_ort_session_and_module_compatibility_calls():
    model, parts = _conv_bn_relu_model()
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert sess.get_provider_options() == {"CPUExecutionProvider": {}}
    sess.set_providers(["CPUExecutionProvider"])
    with pytest.raises(ort.InputError, match="unavailable"):
        sess.set_providers(["CUDAExecutionProvider"])
    sess.disable_fallback()
    sess.enable_fallback()
    assert ort.get_all_providers() == ["CPUExecutionProvider"]
    assert ort.get_version_string() == ort.__version__
    ort.set_default_logger_severity(3)
    with pytest.raises(ort.InputError):
        ort.set_default_logger_severity(7)
    ort.set_seed(5)
    with pytest.raises(ort.InputError):
        ort.set_seed("5")
    so = ort.SessionOptions()
    so.use_per_session_threads = False
    so.enable_mem_reuse = False
    so.logid, so.log_verbosity_level = "s1", 1
    assert so.validate() == []


def test_free_dimension_override_fixes_a_symbolic_input_dim():
    model, parts = _conv_bn_relu_model()  # input "x" is [N, 3, 8, 8]
    so = ort.SessionOptions()
    so.add_free_dimension_override_by_name("N", 2)
    so.add_free_dimension_override_by_name("unused", 7)
    sess = ort.InferenceSession(model.SerializeToString(), sess_options=so)
    assert sess.get_inputs()[0].shape == [2, 3, 8, 8]
    x = np.random.default_rng(8).standard_normal((2, 3, 8, 8)).astype(np.float32)
    np.testing.assert_allclose(
        sess.run(None, {"x": x})[0], _reference(x, parts), rtol=1e-4, atol=1e-4
    )
    with pytest.raises(ort.ShapeMismatchError, match="expected 2, got 3"):
        sess.run(None, {"x": np.zeros((3, 3, 8, 8), np.float32)})
    plain = ort.InferenceSession(model.SerializeToString())
    assert plain.get_inputs()[0].shape[0] == "N"
    with pytest.raises(ValueError):
        so.add_free_dimension_override_by_name("N", -1)
    with pytest.raises(TypeError):
        so.add_free_dimension_override_by_name(3, 1)


def test_run_async_calls_back_with_outputs_or_the_error():
    import threading

    model, parts = _conv_bn_relu_model()
    sess = ort.InferenceSession(model.SerializeToString())
    x = np.random.default_rng(7).standard_normal((2, 3, 8, 8)).astype(np.float32)
    done = threading.Event()
    got = {}

    def callback(outputs, user_data, error):
        got["outputs"], got["user_data"], got["error"] = outputs, user_data, error
        done.set()

    sess.run_async(None, {"x": x}, callback, "token")
    assert done.wait(30)
    assert got["error"] == "" and got["user_data"] == "token"
    np.testing.assert_allclose(got["outputs"][0], _reference(x, parts), rtol=1e-4, atol=1e-4)
    done.clear()
    sess.run_async(None, {"x": x.astype(np.float64)}, callback, None)
    assert done.wait(30)
    assert got["outputs"] == [] and "DTypeMismatchError" in got["error"]
    with pytest.raises(ort.InputError, match="callable"):
        sess.run_async(None, {"x": x}, "not callable", None)


def test_worker_spin_setting():
    import pyflame as pf

    before = pf.get_worker_spin_us()
    try:
        pf.set_worker_spin_us(250)
        assert pf.get_worker_spin_us() == 250
        pf.set_worker_spin_us(10**9)  # clamped to one second
        assert pf.get_worker_spin_us() == 1_000_000
        with pytest.raises(ValueError):
            pf.set_worker_spin_us(-1)
        with pytest.raises(TypeError):
            pf.set_worker_spin_us(1.5)
    finally:
        pf.set_worker_spin_us(before)


def test_profiling_writes_chrome_trace(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model, _ = _conv_bn_relu_model()
    so = ort.SessionOptions()
    so.enable_profiling = True
    sess = ort.InferenceSession(model.SerializeToString(), so)
    ro = ort.RunOptions()
    ro.tag = "prof"
    sess.run(None, {"x": np.ones((2, 3, 8, 8), np.float32)}, ro)
    path = sess.end_profiling()
    events = json.loads(open(path).read())
    nodes = [e for e in events if e["cat"] == "Node"]
    assert nodes and all(e["ph"] == "X" and e["dur"] >= 0 for e in nodes)
    assert {e["args"]["op_name"] for e in nodes} >= {"FusedConv"}
    assert any(e["name"] == "model_run" and e["args"]["tag"] == "prof" for e in events)


def test_types_tensor_and_dtype():
    t = ort.from_numpy(np.zeros((2, 3, 4), np.float32))
    assert (t.shape, t.dtype, t.ndim, t.num_elements, t.size_bytes) == (
        [2, 3, 4],
        ort.DType.Float32,
        3,
        24,
        96,
    )
    assert ort.DType.Float32.value == 0 and ort.DType.Int64.onnx_type == "tensor(int64)"
    c = t.clone()
    c.zero()
    assert c.reshape([6, 4]).shape == [6, 4]
    # The PyTorch importer is implemented (tests/runtime/test_torch_import.py covers it).
    assert callable(ort.import_module.PyTorchImporter().import_model)


def test_programmatic_graph_and_validation():
    g = ort.Graph("g")
    g.add_input("x", [2], np.float32)
    g.add_node("n", "Neg", ["missing"], ["y"])
    g.add_output("y", [2], np.float32)
    with pytest.raises(ort.ValidationError) as ei:
        ort.InferenceSession(g)
    assert "missing" in str(ei.value)


def test_dynamic_shape_ops_fold_per_signature():
    # y = Reshape(x, Concat(Shape(x)[0:1], [-1])) with a dynamic batch
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Slice", ["s", "st", "en"], ["b"]),
        helper.make_node("Concat", ["b", "m1"], ["shape"], axis=0),
        helper.make_node("Reshape", ["x", "shape"], ["y"]),
    ]
    inits = [
        numpy_helper.from_array(np.array(v, np.int64), n)
        for v, n in (([0], "st"), ([1], "en"), ([-1], "m1"))
    ]
    g = helper.make_graph(
        nodes,
        "dyn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["B", 6])],
        inits,
    )
    sess = ort.InferenceSession(helper.make_model(g).SerializeToString())
    for b in (1, 4, 1):
        x = np.arange(b * 6, dtype=np.float32).reshape(b, 2, 3)
        np.testing.assert_array_equal(sess.run(None, {"x": x})[0], x.reshape(b, 6))
