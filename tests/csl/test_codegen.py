"""Program structure, snapshots, determinism, caching, options and the host script."""

import json
import os
import subprocess
import sys
import time

import pyflame as pf
import pytest

SNAPSHOTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "snapshots")
UPDATE = os.environ.get("PYFLAME_UPDATE_SNAPSHOTS") == "1"


def _small_graphs():
    pf.manual_seed(1)
    g22 = pf.MeshLayout.grid(2, 2)
    a = pf.randn([4, 4], layout=g22)
    b = pf.randn([4, 4], layout=g22)
    x = pf.randn([2, 8], layout=pf.MeshLayout.col_partition(2))
    return {
        "relu_single_pe": pf.relu(pf.randn([2, 3])),
        "sum_rows_col2": x.sum(dim=-1),
        "matmul_softmax_grid2x2": pf.softmax(a @ b, dim=-1),
    }


@pytest.mark.parametrize("name", ["relu_single_pe", "sum_rows_col2", "matmul_softmax_grid2x2"])
def test_snapshot(name, opts):
    y = _small_graphs()[name]
    r = pf.compile_to_csl(y, opts)
    assert r.success, r.error_message
    snap_dir = os.path.join(SNAPSHOTS, name)
    for fname in ("layout.csl", "pe_program.csl", "run.py", "commands_wse2.sh"):
        path = os.path.join(snap_dir, fname)
        if UPDATE:
            os.makedirs(snap_dir, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(r.sources[fname])
        with open(path, encoding="utf-8") as f:
            want = f.read()
        assert r.sources[fname] == want, f"{name}/{fname} changed (PYFLAME_UPDATE_SNAPSHOTS=1)"


def test_files_and_manifest(opts):
    pf.manual_seed(0)
    a = pf.randn([8, 8], layout=pf.MeshLayout.grid(2, 2))
    r = pf.compile_to_csl(pf.relu(a @ a), opts)
    assert r.success
    names = sorted(os.path.basename(f) for f in r.generated_files)
    for n in ["README.md", "commands_wse2.sh", "commands_wse3.sh", "expected0.npy", "in0.npy"]:
        assert n in names
    for n in ["layout.csl", "manifest.json", "pe_program.csl", "run.py"]:
        assert n in names
    m = json.load(open(os.path.join(opts.output_dir, "manifest.json")))
    assert m["rectangle"] == {"width": 2, "height": 2}
    assert m["fabric_dims"]["wse2"] == [9, 4]
    assert m["outputs"][0]["placement"]["elems_per_pe"] == 16
    assert m["per_pe_memory"]["fits"] is True
    assert "--fabric-dims=9,4 --fabric-offsets=4,1" in r.sources["commands_wse2.sh"]
    assert "--arch=wse3" in r.sources["commands_wse3.sh"]
    assert "@initialize_queue" in r.sources["pe_program.csl"]


def test_deterministic_and_cached(tmp_path):
    outs = []
    for k in range(2):
        pf.manual_seed(3)
        x = pf.randn([8, 8], layout=pf.MeshLayout.row_partition(2))
        o = pf.CodeGenOptions()
        o.output_dir = str(tmp_path / f"d{k}")
        o.use_cache = False
        r = pf.compile_to_csl(pf.softmax(x, dim=-1), o)
        assert r.success
        outs.append({os.path.basename(f): open(f, "rb").read() for f in r.generated_files})
    assert outs[0] == outs[1]
    pf.manual_seed(3)
    x = pf.randn([8, 8], layout=pf.MeshLayout.row_partition(2))
    o = pf.CodeGenOptions()
    o.output_dir = str(tmp_path / "d0")
    r = pf.compile_to_csl(pf.softmax(x, dim=-1), o)
    assert r.cached and r.success and r.estimate["cycles"] > 0
    o.target = "wse3"
    assert not pf.compile_to_csl(pf.softmax(x, dim=-1), o).cached


def test_unsupported_ops_are_listed(opts):
    x = pf.randn([4, 4])
    r = pf.compile_to_csl(pf.round(x) + x.prod(dim=1, keepdim=True), opts)
    assert not r.success
    assert "round" in r.error_message and "prod" in r.error_message
    assert not os.path.exists(opts.output_dir)


def test_options_defaults(monkeypatch):
    monkeypatch.setenv("CEREBRAS_RUNTIME_ADDRESS", "10.0.0.1:9000")
    o = pf.CodeGenOptions()
    assert o.runtime_address == "10.0.0.1:9000"
    assert (o.target, o.optimize, o.emit_comments, o.fabric_width) == ("wse2", True, True, 0)
    assert o.output_dir == "./pyflame_csl_output"
    o.target = "wse9"
    r = pf.compile_to_csl(pf.randn([2, 2]), o)
    assert not r.success and "wse2" in r.error_message


def test_runtime_address_goes_into_host_script(opts):
    opts.runtime_address = "192.168.1.5:9000"
    r = pf.compile_to_csl(pf.exp(pf.randn([4, 4])), opts)
    assert r.success
    assert '"192.168.1.5:9000"' in r.sources["run.py"]
    assert "--fabric-dims=757,996" in r.sources["commands_wse2.sh"]
    assert "--fabric-dims=762,1176" in r.sources["commands_wse3.sh"]
    assert "--cmaddr" in r.sources["commands_wse2.sh"]


def test_run_py_refuses_without_sdk(opts):
    r = pf.compile_to_csl(pf.relu(pf.randn([4, 4])), opts)
    assert r.success
    p = subprocess.run(
        [sys.executable, os.path.join(opts.output_dir, "run.py")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        import cerebras.sdk  # noqa: F401

        pytest.skip("the Cerebras SDK is importable here")
    except ImportError:
        pass
    assert p.returncode == 2
    assert "not importable" in p.stderr and "nothing was executed" in p.stderr


def test_estimate_memory():
    pf.manual_seed(0)
    w = pf.randn([64, 64], layout=pf.MeshLayout.grid(4, 4))
    w.requires_grad = True
    x = pf.randn([64, 64], layout=pf.MeshLayout.grid(4, 4))
    m = pf.estimate_memory(x @ w)
    assert m["parameter_bytes"] == 16 * 16 * 4
    assert m["input_bytes"] == 16 * 16 * 4
    assert m["peak_bytes"] == m["parameter_bytes"] + m["input_bytes"] + m["activation_bytes"]
    assert m["fits_in_sram"] is True
    big = pf.randn([256, 256])
    assert pf.estimate_memory(big * 2.0)["fits_in_sram"] is False
    with pytest.raises(NotImplementedError):
        pf.estimate_memory(pf.round(big))


def test_too_big_for_sram_fails_validation(opts):
    r = pf.compile_to_csl(pf.randn([128, 128]) * 2.0, opts)
    assert not r.success and "M1" in r.error_message


def test_codegen_speed_64x64(opts):
    pf.manual_seed(0)
    layout = pf.MeshLayout.grid(64, 64)
    x = pf.randn([256, 256], layout=layout).eval()
    b = pf.randn([256], layout=layout).eval()
    h = x
    for i in range(90):
        h = pf.tanh(h + b) if i % 2 else pf.relu(h * x)
        if i % 10 == 9:
            h = h - h.mean(dim=-1, keepdim=True)
    g = pf.get_graph(h)
    assert g.num_nodes >= 150
    opts.simulate = False
    opts.use_cache = False
    start = time.perf_counter()
    r = pf.CSLCodeGenerator().generate(g, opts)
    elapsed = time.perf_counter() - start
    assert r.success, r.error_message
    assert elapsed < 1.0, elapsed


def test_simulate_1024_matmul_on_16x16():
    layout = pf.MeshLayout.grid(16, 16)
    a = pf.randn([1024, 1024], layout=layout).eval()
    b = pf.randn([1024, 1024], layout=layout).eval()
    start = time.perf_counter()
    est = pf.csl.simulate(a @ b)
    elapsed = time.perf_counter() - start
    assert elapsed < 20.0, elapsed
    assert est["flops"] == 2 * 1024**3
    assert est["max_pe_bytes"] > 48 * 1024  # honest: this size does not fit in SRAM
