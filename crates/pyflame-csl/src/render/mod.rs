//! Renders a [`Plan`] as a complete CSL program: `layout.csl`, `pe_program.csl`, `idle.csl`
//! (when some PEs of the rectangle do nothing), `run.py`, `commands_wse2.sh`,
//! `commands_wse3.sh`, `manifest.json`, `README.md` and the `.npy` data files.

mod gather;
mod host;
mod kernels;
mod layout;
mod pe;

use crate::perf::Estimate;
use crate::plan::Plan;
use crate::{CodeGenOptions, CslError};
use std::collections::BTreeMap;

pub use host::fabric_dims;

/// Local task id of the phase sequencer (recommended pool 8-20, 24-26; above every color we
/// hand out, so it never collides with a WSE-2 data task id).
pub const ADVANCE_TASK_ID: u8 = 24;
/// `--fabric-offsets` used by every command file.
pub const OFFSETS: (usize, usize) = (4, 1);

/// Text and binary files of a program.
pub type Files = (BTreeMap<String, String>, BTreeMap<String, Vec<u8>>);

/// Renders every file. `expected` are the reference outputs written as `expected_K.npy`.
pub fn render(
    plan: &Plan,
    opts: &CodeGenOptions,
    expected: Option<&[Vec<f32>]>,
    cache_key: &str,
    estimate: Option<&Estimate>,
) -> Result<Files, CslError> {
    let mut src = BTreeMap::new();
    let mut bin = BTreeMap::new();
    let idle = pe::has_idle(plan);
    src.insert(
        "layout.csl".to_string(),
        layout::layout(plan, opts, cache_key, idle),
    );
    src.insert("pe_program.csl".to_string(), pe::pe_program(plan, opts));
    if idle {
        src.insert("idle.csl".to_string(), pe::idle_program());
    }
    for (i, inp) in plan.inputs.iter().enumerate() {
        if let crate::plan::BufKind::Input(data) = &plan.bufs[inp.buf].kind {
            let p = plan.bufs[inp.buf].placement;
            bin.insert(
                format!("in{i}.npy"),
                crate::npy::f32_npy(data, &[p.rows, p.cols]),
            );
        }
    }
    if let Some(exp) = expected {
        if exp.len() != plan.outputs.len() {
            return Err(CslError::Invalid(format!(
                "{} reference outputs given for {} graph outputs",
                exp.len(),
                plan.outputs.len()
            )));
        }
        for (k, (o, data)) in plan.outputs.iter().zip(exp).enumerate() {
            let p = plan.bufs[o.buf].placement;
            if data.len() != p.rows * p.cols {
                return Err(CslError::Invalid(format!(
                    "reference output {k} has {} values, expected {}",
                    data.len(),
                    p.rows * p.cols
                )));
            }
            bin.insert(
                format!("expected{k}.npy"),
                crate::npy::f32_npy(data, &[p.rows, p.cols]),
            );
        }
    }
    src.insert(
        "run.py".to_string(),
        host::run_py(plan, opts, expected.is_some()),
    );
    for t in [crate::Target::Wse2, crate::Target::Wse3] {
        src.insert(
            format!("commands_{}.sh", t.name()),
            host::commands(plan, opts, t),
        );
    }
    src.insert(
        "manifest.json".to_string(),
        host::manifest(plan, opts, cache_key, estimate, expected.is_some()),
    );
    src.insert("README.md".to_string(), host::readme(plan, opts));
    Ok((src, bin))
}

/// A CSL f32 literal (always with a decimal point; non-finite values via bit casts).
pub fn lit(v: f32) -> String {
    if v.is_nan() {
        return "@bitcast(f32, @as(u32, 0x7fc00000))".into();
    }
    if v.is_infinite() {
        return if v > 0.0 {
            "@bitcast(f32, @as(u32, 0x7f800000))".into()
        } else {
            "@bitcast(f32, @as(u32, 0xff800000))".into()
        };
    }
    let s = format!("{v:?}");
    match s.find('e') {
        Some(e) if !s[..e].contains('.') => format!("{}.0{}", &s[..e], &s[e..]),
        _ => s,
    }
}

/// JSON string literal.
pub fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn literals() {
        assert_eq!(super::lit(1.0), "1.0");
        assert_eq!(super::lit(-0.5), "-0.5");
        assert_eq!(super::lit(1e-5), "1.0e-5");
        assert!(super::lit(f32::NEG_INFINITY).contains("0xff800000"));
    }
}
