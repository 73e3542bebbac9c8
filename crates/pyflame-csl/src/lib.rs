//! PyFlame CSL backend for the Cerebras WSE-2/WSE-3.
//!
//! `Graph -> Plan -> CSL text`. [`lower::lower`] places each op on a PE rectangle from its
//! `MeshLayout` and turns it into phases of per-PE work; [`route::assign`] gives every fabric
//! role a color and static routes; [`render`] prints the plan as `layout.csl`, `pe_program.csl`,
//! `idle.csl`, `run.py`, `commands_wse{2,3}.sh`, `manifest.json` and a README. Without
//! hardware, [`validate`] checks the emitted program against the rules of the CSL reference
//! (section 4) and [`sim`] executes the plan (per-PE DSD work, wavelets along the configured
//! routes) to reproduce the CPU executor's numbers and count cycles for [`perf`].
//!
//! ```no_run
//! use pyflame_csl::{generate, CodeGenOptions};
//! # fn demo(graph: &pyflame_ir::Graph) {
//! let out = generate(graph, &CodeGenOptions::default()).expect("lowered");
//! assert!(out.sources.contains_key("layout.csl"));
//! # }
//! ```

pub mod gather;
pub mod hash;
pub mod lower;
pub mod npy;
pub mod parse;
pub mod perf;
pub mod plan;
pub mod render;
pub mod reuse;
pub mod route;
pub mod sim;
pub mod validate;

use std::collections::BTreeMap;

/// Errors of the CSL backend.
#[derive(Debug, Clone, PartialEq)]
pub enum CslError {
    /// Ops (or op/layout combinations) without a lowering rule, one line each.
    Unsupported(Vec<String>),
    /// Invalid options or graph.
    Invalid(String),
    /// The emitted program broke validator rules (one line per finding).
    Validation(Vec<String>),
    /// The simulator found a fault (deadlock, dropped wavelet ...).
    Sim(String),
}

impl std::fmt::Display for CslError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CslError::Unsupported(v) => {
                write!(
                    f,
                    "unsupported for CSL code generation:\n  {}",
                    v.join("\n  ")
                )
            }
            CslError::Invalid(s) => write!(f, "{s}"),
            CslError::Validation(v) => {
                write!(
                    f,
                    "generated program failed validation:\n  {}",
                    v.join("\n  ")
                )
            }
            CslError::Sim(s) => write!(f, "fabric simulation failed: {s}"),
        }
    }
}

impl std::error::Error for CslError {}

/// Target architecture.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// CS-2
    Wse2,
    /// CS-3
    Wse3,
}

impl Target {
    /// `wse2` or `wse3`.
    pub fn name(self) -> &'static str {
        match self {
            Target::Wse2 => "wse2",
            Target::Wse3 => "wse3",
        }
    }
    /// Parses `wse2` / `wse3`.
    pub fn parse(s: &str) -> Result<Target, CslError> {
        match s {
            "wse2" => Ok(Target::Wse2),
            "wse3" => Ok(Target::Wse3),
            other => Err(CslError::Invalid(format!(
                "target must be 'wse2' or 'wse3', got '{other}'"
            ))),
        }
    }
}

/// Code generation options (mirrors the Python `CodeGenOptions`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct CodeGenOptions {
    /// primary target (both command files are always written)
    pub target: Target,
    /// emit comments naming the graph op of every phase
    pub emit_comments: bool,
    /// fabric width for `--fabric-dims` (0 = smallest that fits memcpy)
    pub fabric_width: usize,
    /// fabric height (0 = smallest that fits memcpy)
    pub fabric_height: usize,
    /// `cmaddr` for real hardware (empty = simulator)
    pub runtime_address: String,
    /// memcpy I/O channels (1..=16)
    pub channels: usize,
    /// run the fabric simulator and report its cycles
    pub simulate: bool,
    /// include debug info (`-g`-style comments with buffer sizes)
    pub debug_info: bool,
    /// optimization passes: liveness-based reuse of PE buffers ([`reuse`])
    pub optimize: bool,
}

impl Default for CodeGenOptions {
    fn default() -> Self {
        CodeGenOptions {
            target: Target::Wse2,
            emit_comments: true,
            fabric_width: 0,
            fabric_height: 0,
            runtime_address: String::new(),
            channels: 1,
            simulate: true,
            debug_info: false,
            optimize: true,
        }
    }
}

/// Everything [`generate`] produced.
#[derive(Clone, Debug)]
pub struct Generated {
    /// the plan
    pub plan: plan::Plan,
    /// file name -> text
    pub sources: BTreeMap<String, String>,
    /// file name -> binary contents (.npy inputs and expected outputs)
    pub binaries: BTreeMap<String, Vec<u8>>,
    /// validator findings (warnings; errors make generation fail)
    pub warnings: Vec<String>,
    /// simulator result (when `simulate`)
    pub sim: Option<sim::SimResult>,
    /// performance estimate (when `simulate`)
    pub estimate: Option<perf::Estimate>,
    /// hash of graph structure, input values and options
    pub cache_key: String,
}

/// Lowers, routes, renders, validates and (optionally) simulates `graph`. `expected` holds
/// the reference values of the graph outputs (row-major f32), written next to `run.py`.
pub fn generate_with(
    graph: &pyflame_ir::Graph,
    opts: &CodeGenOptions,
    expected: Option<&[Vec<f32>]>,
) -> Result<Generated, CslError> {
    if !(1..=16).contains(&opts.channels) {
        return Err(CslError::Invalid(format!(
            "channels must be in 1..=16, got {}",
            opts.channels
        )));
    }
    let plan = build_plan(graph, opts)?;
    let cache_key = hash::cache_key(graph, &plan, opts);
    let sim = if opts.simulate {
        Some(sim::run(&plan)?)
    } else {
        None
    };
    let estimate = sim.as_ref().map(|s| perf::estimate(&plan, s, opts));
    let (sources, binaries) = render::render(&plan, opts, expected, &cache_key, estimate.as_ref())?;
    let report = validate::validate_sources(&sources);
    let (errors, warnings): (Vec<_>, Vec<_>) = report
        .into_iter()
        .partition(|f| f.severity == validate::Severity::Error);
    if !errors.is_empty() {
        return Err(CslError::Validation(
            errors.iter().map(|f| f.to_string()).collect(),
        ));
    }
    Ok(Generated {
        plan,
        sources,
        binaries,
        warnings: warnings.iter().map(|f| f.to_string()).collect(),
        sim,
        estimate,
        cache_key,
    })
}

/// Lowers, routes and simulates `graph` without rendering or validating: the performance
/// model for programs that may not (yet) fit in SRAM. `Estimate::max_pe_bytes` tells.
pub fn simulate(
    graph: &pyflame_ir::Graph,
    opts: &CodeGenOptions,
) -> Result<(sim::SimResult, perf::Estimate), CslError> {
    let plan = build_plan(graph, opts)?;
    let s = sim::run(&plan)?;
    let e = perf::estimate(&plan, &s, opts);
    Ok((s, e))
}

/// Lowers `graph`, applies the optimization passes when `opts.optimize` (buffer reuse) and
/// assigns colors and routes: the plan that is rendered and simulated.
pub fn build_plan(
    graph: &pyflame_ir::Graph,
    opts: &CodeGenOptions,
) -> Result<plan::Plan, CslError> {
    let mut plan = lower::lower(graph)?;
    if opts.optimize {
        reuse::reuse_buffers(&mut plan);
    }
    route::assign(&mut plan)?;
    Ok(plan)
}

/// [`generate_with`] without reference outputs.
pub fn generate(graph: &pyflame_ir::Graph, opts: &CodeGenOptions) -> Result<Generated, CslError> {
    generate_with(graph, opts, None)
}
