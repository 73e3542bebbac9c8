//! Bindings of the CSL backend (`pyflame-csl`): code generation, cache keys, memory
//! estimates, the static validator and the CSL parser. The Python-facing classes live in
//! `python/pyflame/csl.py`; these functions are private (`_csl_*`).

use crate::graph::PyGraph;
use pyflame_csl::plan::BufKind;
use pyflame_csl::{CodeGenOptions, CslError, Target};
use pyflame_ir::{Graph, NodeRef, Op};
use pyo3::exceptions::{PyNotImplementedError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

fn item<'py>(d: &Bound<'py, PyDict>, key: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    Ok(d.get_item(key)?.filter(|v| !v.is_none()))
}

fn opt_bool(d: &Bound<'_, PyDict>, key: &str, default: bool) -> PyResult<bool> {
    item(d, key)?.map_or(Ok(default), |v| v.extract::<bool>())
}

fn opt_usize(d: &Bound<'_, PyDict>, key: &str, default: usize) -> PyResult<usize> {
    item(d, key)?.map_or(Ok(default), |v| v.extract::<usize>())
}

fn opt_str(d: &Bound<'_, PyDict>, key: &str, default: &str) -> PyResult<String> {
    item(d, key)?.map_or(Ok(default.to_string()), |v| v.extract::<String>())
}

fn options(d: &Bound<'_, PyDict>) -> PyResult<CodeGenOptions> {
    let target = opt_str(d, "target", "wse2")?;
    Ok(CodeGenOptions {
        target: Target::parse(&target).map_err(|e| PyValueError::new_err(e.to_string()))?,
        emit_comments: opt_bool(d, "emit_comments", true)?,
        fabric_width: opt_usize(d, "fabric_width", 0)?,
        fabric_height: opt_usize(d, "fabric_height", 0)?,
        runtime_address: opt_str(d, "runtime_address", "")?,
        channels: opt_usize(d, "channels", 1)?,
        simulate: opt_bool(d, "simulate", true)?,
        debug_info: opt_bool(d, "generate_debug_info", false)?,
        optimize: opt_bool(d, "optimize", true)?,
    })
}

/// Realizes unrealized source leaves (random, arange, ...) so their values can be fed by the
/// host. Constant fills stay symbolic (they become immediates).
fn realize_leaves(py: Python<'_>, g: &Graph) -> PyResult<()> {
    let leaves: Vec<NodeRef> = (0..g.len())
        .filter(|&i| g.is_leaf(i))
        .map(|i| g.nodes[i].clone())
        .filter(|n| !n.is_realized() && !matches!(n.op, Op::Full { .. }))
        .collect();
    if !leaves.is_empty() {
        crate::tensor::evaluate(py, &leaves)?;
    }
    Ok(())
}

fn csl_err(e: CslError) -> PyErr {
    match e {
        CslError::Unsupported(_) => PyNotImplementedError::new_err(e.to_string()),
        other => PyValueError::new_err(other.to_string()),
    }
}

/// Cache key of (graph, options) (leaves are realized first).
#[pyfunction]
fn _csl_cache_key(
    py: Python<'_>,
    graph: PyRef<'_, PyGraph>,
    options_: &Bound<'_, PyDict>,
) -> PyResult<String> {
    let g = &graph.graph;
    let opts = options(options_)?;
    realize_leaves(py, g)?;
    let mut plan = pyflame_csl::lower::lower(g).map_err(csl_err)?;
    pyflame_csl::route::assign(&mut plan).map_err(csl_err)?;
    Ok(pyflame_csl::hash::cache_key(g, &plan, &opts))
}

/// Generates the program. Returns a dict with `sources` (name -> text), `binaries`
/// (name -> bytes), `warnings`, `estimate` (dict or None), `cache_key` and
/// `sim_max_abs_error` (simulator versus CPU executor, None without simulation). Raises
/// NotImplementedError listing unsupported ops and ValueError for invalid programs.
#[pyfunction]
fn _csl_generate<'py>(
    py: Python<'py>,
    graph: PyRef<'_, PyGraph>,
    options_: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let g = graph.graph.clone();
    let opts = options(options_)?;
    realize_leaves(py, &g)?;
    // Lower first (fails fast on unsupported ops), then compute the reference outputs.
    pyflame_csl::lower::lower(&g).map_err(csl_err)?;
    let outs: Vec<NodeRef> = g.outputs.iter().map(|&i| g.nodes[i].clone()).collect();
    crate::tensor::evaluate(py, &outs)?;
    let mut expected = Vec::new();
    for n in &outs {
        let v = n
            .value()
            .ok_or_else(|| PyValueError::new_err("output has no value after evaluation"))?;
        expected.push(pyflame_csl::lower::value_f32(&v).map_err(PyValueError::new_err)?);
    }
    let gen = py
        .detach(|| pyflame_csl::generate_with(&g, &opts, Some(&expected)))
        .map_err(csl_err)?;
    let d = PyDict::new(py);
    let src = PyDict::new(py);
    for (k, v) in &gen.sources {
        src.set_item(k, v)?;
    }
    let bin = PyDict::new(py);
    for (k, v) in &gen.binaries {
        bin.set_item(k, PyBytes::new(py, v))?;
    }
    d.set_item("sources", src)?;
    d.set_item("binaries", bin)?;
    d.set_item("warnings", gen.warnings.clone())?;
    d.set_item("cache_key", gen.cache_key.clone())?;
    let mut err: Option<f64> = None;
    if let Some(s) = &gen.sim {
        let mut m = 0f64;
        for (got, want) in s.outputs.iter().zip(&expected) {
            for (a, b) in got.iter().zip(want) {
                m = m.max(f64::from((a - b).abs()));
            }
        }
        err = Some(m);
    }
    d.set_item("sim_max_abs_error", err)?;
    match &gen.estimate {
        Some(e) => d.set_item("estimate", estimate_dict(py, e)?)?,
        None => d.set_item("estimate", py.None())?,
    }
    Ok(d)
}

fn estimate_dict<'py>(
    py: Python<'py>,
    e: &pyflame_csl::perf::Estimate,
) -> PyResult<Bound<'py, PyDict>> {
    let d = PyDict::new(py);
    d.set_item("cycles", e.cycles)?;
    d.set_item("device_seconds", e.device_seconds)?;
    d.set_item("io_seconds", e.io_seconds)?;
    d.set_item("total_seconds", e.total_seconds)?;
    d.set_item("flops", e.flops)?;
    d.set_item("device_flops_per_s", e.device_flops_per_s)?;
    d.set_item("h2d_bytes", e.h2d_bytes)?;
    d.set_item("d2h_bytes", e.d2h_bytes)?;
    d.set_item("pes", e.pes)?;
    d.set_item("max_pe_bytes", e.max_pe_bytes)?;
    Ok(d)
}

/// Simulates without rendering or validating (for programs that may not fit in SRAM).
#[pyfunction]
fn _csl_simulate<'py>(
    py: Python<'py>,
    graph: PyRef<'_, PyGraph>,
    options_: &Bound<'py, PyDict>,
) -> PyResult<Bound<'py, PyDict>> {
    let g = graph.graph.clone();
    let opts = options(options_)?;
    realize_leaves(py, &g)?;
    let (_, e) = py
        .detach(|| pyflame_csl::simulate(&g, &opts))
        .map_err(csl_err)?;
    estimate_dict(py, &e)
}

/// Per-PE memory of the lowered graph: parameter (leaves that require grad), input,
/// activation and peak bytes (buffers are static arrays, so peak = their sum; with
/// `optimize`, temporaries with disjoint live ranges share arrays first).
#[pyfunction]
#[pyo3(signature = (graph, optimize = true))]
fn _csl_estimate_memory<'py>(
    py: Python<'py>,
    graph: PyRef<'_, PyGraph>,
    optimize: bool,
) -> PyResult<Bound<'py, PyDict>> {
    let g = &graph.graph;
    realize_leaves(py, g)?;
    let mut plan = pyflame_csl::lower::lower(g).map_err(csl_err)?;
    if optimize {
        pyflame_csl::reuse::reuse_buffers(&mut plan);
    }
    let (mut best, mut at) = ((0usize, 0usize, 0usize), (0usize, 0usize));
    for y in 0..plan.height {
        for x in 0..plan.width {
            let (mut p, mut i, mut a) = (0, 0, 0);
            for (b, buf) in plan.bufs.iter().enumerate() {
                if !plan.holds(b, x, y) {
                    continue;
                }
                let bytes = 4 * buf.placement.tile_len();
                match (&buf.kind, buf.node) {
                    (BufKind::Input(_), Some(n)) if g.nodes[n].requires_grad() => p += bytes,
                    (BufKind::Input(_), _) => i += bytes,
                    (BufKind::Temp, _) => a += bytes,
                }
            }
            if p + i + a > best.0 + best.1 + best.2 {
                best = (p, i, a);
                at = (x, y);
            }
        }
    }
    let peak = best.0 + best.1 + best.2;
    let d = PyDict::new(py);
    d.set_item("parameter_bytes", best.0)?;
    d.set_item("input_bytes", best.1)?;
    d.set_item("activation_bytes", best.2)?;
    d.set_item("peak_bytes", peak)?;
    d.set_item(
        "code_allowance_bytes",
        pyflame_csl::validate::CODE_ALLOWANCE_BYTES,
    )?;
    d.set_item("sram_bytes", pyflame_csl::validate::SRAM_BYTES)?;
    d.set_item(
        "fits_in_sram",
        peak <= pyflame_csl::validate::DATA_LIMIT_BYTES,
    )?;
    d.set_item("peak_pe", at)?;
    d.set_item("rectangle", (plan.width, plan.height))?;
    Ok(d)
}

/// Validates a program directory: list of (rule, severity, file, message).
#[pyfunction]
fn _csl_validate_dir(path: &str) -> PyResult<Vec<(String, String, String, String)>> {
    let f = pyflame_csl::validate::validate_dir(std::path::Path::new(path))
        .map_err(PyValueError::new_err)?;
    Ok(f.into_iter()
        .map(|x| {
            let sev = match x.severity {
                pyflame_csl::validate::Severity::Error => "error",
                pyflame_csl::validate::Severity::Warning => "warning",
            };
            (x.rule.to_string(), sev.to_string(), x.file, x.message)
        })
        .collect())
}

/// Parses CSL text; returns None on success or the error message.
#[pyfunction]
fn _csl_parse_error(text: &str) -> Option<String> {
    pyflame_csl::parse::parse(text).err()
}

/// Registers the CSL functions on the `_core` module.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_csl_cache_key, m)?)?;
    m.add_function(wrap_pyfunction!(_csl_generate, m)?)?;
    m.add_function(wrap_pyfunction!(_csl_simulate, m)?)?;
    m.add_function(wrap_pyfunction!(_csl_estimate_memory, m)?)?;
    m.add_function(wrap_pyfunction!(_csl_validate_dir, m)?)?;
    m.add_function(wrap_pyfunction!(_csl_parse_error, m)?)?;
    Ok(())
}
