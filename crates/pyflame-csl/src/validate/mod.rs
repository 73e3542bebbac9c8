//! Static validator for a CSL program directory: the checkable rules of the CSL reference,
//! section 4 (layout and flags L1-L7, colors and routes C1-C7, tasks and queues T1-T8, DSDs
//! D1-D5, exports and host script X1-X6, memory M1-M2). It parses every `.csl` file with
//! [`crate::parse`], evaluates the comptime integers it needs (tile params, array sizes), and
//! scans `run.py` and `commands_*.sh` for the host-side facts. `rules.rs` holds the
//! file-level rules, `extra.rs` the per-PE and per-path ones (C5, D2, D5, T7, M2) and
//! `xhost.rs` the host rules that need layout declarations (X3, X5).

mod eval;
mod extra;
mod host;
mod layout;
mod pe;
mod rules;
mod sites;
mod xhost;

use crate::parse::{parse, File};
use std::collections::BTreeMap;
use std::path::Path;

/// Per-PE SRAM (8 banks x 6 KB).
pub const SRAM_BYTES: usize = 48 * 1024;
/// Data budget per PE we accept without warning (Cerebras' SpMV sample asserts < 46 KB).
pub const DATA_WARN_BYTES: usize = 46 * 1024;
/// Allowance for code, stack and the memcpy runtime (to be calibrated with a real compile).
pub const CODE_ALLOWANCE_BYTES: usize = 6 * 1024;
/// Largest data footprint that still fits next to the code allowance.
pub const DATA_LIMIT_BYTES: usize = SRAM_BYTES - CODE_ALLOWANCE_BYTES;

/// How bad a finding is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// compile failure certain or very likely
    Error,
    /// hang, miscompute or convention violation
    Warning,
}

/// One validator finding.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// rule id from the reference (L1 ... M2)
    pub rule: &'static str,
    /// severity
    pub severity: Severity,
    /// file the finding is about
    pub file: String,
    /// explanation
    pub message: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{} {sev} [{}]: {}", self.rule, self.file, self.message)
    }
}

/// The parsed program plus the raw texts.
pub struct Program<'a> {
    /// file name -> source text
    pub sources: &'a BTreeMap<String, String>,
    /// parsed `.csl` files
    pub csl: BTreeMap<String, File>,
    /// findings so far
    pub out: Vec<Finding>,
}

impl Program<'_> {
    /// Records a finding.
    pub fn report(
        &mut self,
        rule: &'static str,
        sev: Severity,
        file: &str,
        msg: impl Into<String>,
    ) {
        self.out.push(Finding {
            rule,
            severity: sev,
            file: file.to_string(),
            message: msg.into(),
        });
    }
}

/// Validates a program given as file name -> text.
pub fn validate_sources(sources: &BTreeMap<String, String>) -> Vec<Finding> {
    let mut p = Program {
        sources,
        csl: BTreeMap::new(),
        out: Vec::new(),
    };
    for (name, text) in sources {
        if name.ends_with(".csl") {
            match parse(text) {
                Ok(f) => {
                    p.csl.insert(name.clone(), f);
                }
                Err(e) => p.report("P0", Severity::Error, name, format!("does not parse: {e}")),
            }
        }
    }
    rules::check(&mut p);
    p.out
}

/// Validates the program in directory `dir` (its `.csl`, `.py` and `.sh` files).
pub fn validate_dir(dir: &Path) -> Result<Vec<Finding>, String> {
    let mut sources = BTreeMap::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    for e in entries {
        let path = e.map_err(|e| e.to_string())?.path();
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_string)
        else {
            continue;
        };
        if name.ends_with(".csl") || name.ends_with(".py") || name.ends_with(".sh") {
            let text = std::fs::read_to_string(&path).map_err(|e| format!("{name}: {e}"))?;
            sources.insert(name, text);
        }
    }
    if sources.is_empty() {
        return Err(format!("{}: no .csl files", dir.display()));
    }
    Ok(validate_sources(&sources))
}
