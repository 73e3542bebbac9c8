//! Host-script rules that need the layout's declarations: X3 (`launch` arguments match the
//! exported function's signature) and X5 (streaming memcpy colors and wavelet counts).

use super::eval::{field, int, Env};
use super::extra::tile_env;
use super::host::{call_args, cslc_lines, quoted};
use super::layout::Layout;
use super::pe::PeFacts;
use super::{Finding, Program, Severity, Severity::*};
use crate::parse::{walk, Expr, Stmt};
use std::collections::{BTreeMap, HashMap};

/// numpy scalar constructor -> CSL type.
const NUMPY: [(&str, &str); 8] = [
    ("int16", "i16"),
    ("uint16", "u16"),
    ("int32", "i32"),
    ("uint32", "u32"),
    ("float16", "f16"),
    ("float32", "f32"),
    ("int8", "i8"),
    ("uint8", "u8"),
];

/// Calls of `name` in a Python script, with arguments spanning continuation lines:
/// (line, arguments).
fn calls(text: &str, name: &str) -> Vec<(usize, Vec<String>)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i].trim();
        if l.starts_with('#') || !l.contains(&format!("{name}(")) {
            i += 1;
            continue;
        }
        let mut joined = l.to_string();
        let mut j = i;
        let depth = |s: &str| {
            s.chars().fold(0i32, |d, c| match c {
                '(' | '[' => d + 1,
                ')' | ']' => d - 1,
                _ => d,
            })
        };
        while depth(&joined) > 0 && j + 1 < lines.len() {
            j += 1;
            joined.push(' ');
            joined.push_str(lines[j].trim());
        }
        if let Some(a) = call_args(&joined, name) {
            out.push((i + 1, a));
        }
        i = j + 1;
    }
    out
}

/// Findings gathered while the program is borrowed.
struct Rep(Vec<Finding>);

impl Rep {
    fn report(&mut self, rule: &'static str, severity: Severity, file: &str, msg: String) {
        self.0.push(Finding {
            rule,
            severity,
            file: file.to_string(),
            message: msg,
        });
    }
}

/// Runs X3 and X5.
pub(super) fn check(p: &mut Program, l: &Layout, facts: &BTreeMap<String, PeFacts>) {
    let mut r = Rep(Vec::new());
    check_into(p, l, facts, &mut r);
    p.out.extend(r.0);
}

fn check_into(p: &Program, l: &Layout, facts: &BTreeMap<String, PeFacts>, r: &mut Rep) {
    let Some(text) = p.sources.get("run.py").cloned() else {
        return;
    };
    let Some(lay) = p.csl.get(&l.file) else {
        return;
    };
    // layout: exported function signatures, top-level decls, streaming color fields
    let mut sigs: HashMap<String, Vec<String>> = HashMap::new();
    let mut streams: Vec<(String, Expr)> = Vec::new();
    walk(&lay.items, &mut |e, _| match e {
        Expr::Builtin(b, a) if b == "export_name" => {
            if let (Some(Expr::Str(n)), Some(Expr::FnType(ps, _))) = (a.first(), a.get(1)) {
                let ts = ps
                    .iter()
                    .map(|t| match t {
                        Expr::Ident(x) => x.clone(),
                        _ => "?".into(),
                    })
                    .collect();
                sigs.insert(n.clone(), ts);
            }
        }
        Expr::Struct(fs) => {
            for (n, x) in fs {
                if let Some(n) = n.as_deref() {
                    if n.starts_with("MEMCPYH2D_") || n.starts_with("MEMCPYD2H_") {
                        streams.push((n.to_string(), x.clone()));
                    }
                }
            }
        }
        _ => {}
    });
    let mut findings = Vec::new();
    // X3
    for (line, args) in calls(&text, ".launch") {
        let Some(name) = args.first().and_then(|a| quoted(a)) else {
            continue;
        };
        let Some(sig) = sigs.get(&name) else { continue };
        let pos: Vec<&String> = args
            .iter()
            .skip(1)
            .filter(|a| !a.contains('=') && !a.is_empty())
            .collect();
        if pos.len() != sig.len() {
            findings.push(format!(
                "line {line}: launch(\"{name}\") passes {} arguments, the exported fn takes {}",
                pos.len(),
                sig.len()
            ));
            continue;
        }
        for (k, (a, want)) in pos.iter().zip(sig).enumerate() {
            let np = a
                .strip_prefix("np.")
                .or_else(|| a.strip_prefix("numpy."))
                .and_then(|r| r.split_once('('))
                .map(|(t, _)| t);
            match np {
                Some(t) => {
                    let got = NUMPY.iter().find(|(n, _)| *n == t).map(|(_, c)| *c);
                    if got != Some(want.as_str()) {
                        findings.push(format!("line {line}: argument {k} of launch(\"{name}\") is np.{t}, the exported fn expects {want}"));
                    }
                }
                None if a.parse::<f64>().is_ok() => findings.push(format!(
                    "line {line}: argument {k} of launch(\"{name}\") is a plain Python number; pass a numpy scalar of type {want}"
                )),
                None => {}
            }
        }
    }
    for m in findings.drain(..) {
        r.report("X3", Error, "run.py", m);
    }
    // X5
    let decl_init: HashMap<&str, &Expr> = lay
        .items
        .iter()
        .filter_map(|s| match s {
            Stmt::Decl {
                name,
                init: Some(e),
                ..
            } => Some((name.as_str(), e)),
            _ => None,
        })
        .collect();
    let mut cl_params: HashMap<String, Option<u64>> = HashMap::new();
    for (n, t) in p.sources.iter().filter(|(n, _)| n.ends_with(".sh")) {
        for c in cslc_lines(n, t) {
            cl_params.extend(c.params);
        }
    }
    // streaming field -> (color param name, color value)
    let mut fields: Vec<(String, Option<String>, Option<i128>)> = Vec::new();
    for (f, x) in &streams {
        let x = match x {
            Expr::Ident(n) => decl_init.get(n.as_str()).copied().unwrap_or(x),
            _ => x,
        };
        let (param, val) = match x {
            Expr::Builtin(b, a) if b == "get_color" => match a.first() {
                Some(Expr::Ident(pn)) => (
                    Some(pn.clone()),
                    cl_params
                        .get(pn)
                        .copied()
                        .flatten()
                        .map(i128::from)
                        .or_else(|| l.env.get(pn).copied()),
                ),
                Some(e) => (None, int(e, &l.env)),
                None => (None, None),
            },
            _ => (None, None),
        };
        fields.push((f.clone(), param, val));
    }
    let host_lines: Vec<&str> = text.lines().map(str::trim).collect();
    for (name, h2d) in [(".memcpy_h2d", true), (".memcpy_d2h", false)] {
        for (line, args) in calls(&text, name) {
            if !args.iter().any(|a| a.replace(' ', "") == "streaming=True") {
                continue;
            }
            let dirn = if h2d { "MEMCPYH2D_" } else { "MEMCPYD2H_" };
            let Some(carg) = args.get(if h2d { 0 } else { 1 }) else {
                continue;
            };
            // resolve the host's color: a literal, or VAR = int(...['PARAM'])
            let (param, val): (Option<String>, Option<i128>) = match carg.parse::<i128>() {
                Ok(v) => (None, Some(v)),
                Err(_) => {
                    let def = host_lines
                        .iter()
                        .find(|l| {
                            l.split_once('=')
                                .is_some_and(|(v, _)| v.trim() == carg.as_str())
                        })
                        .and_then(|l| l.split_once('=').map(|(_, r)| r.trim().to_string()));
                    match def {
                        Some(r) => match r.parse::<i128>() {
                            Ok(v) => (None, Some(v)),
                            Err(_) => (
                                r.rsplit('\'')
                                    .nth(1)
                                    .or_else(|| r.rsplit('"').nth(1))
                                    .map(str::to_string),
                                None,
                            ),
                        },
                        None => (None, None),
                    }
                }
            };
            let matching: Vec<&(String, Option<String>, Option<i128>)> = fields
                .iter()
                .filter(|(f, fp, fv)| {
                    f.starts_with(dirn)
                        && match (&param, val) {
                            (Some(pn), _) => fp.as_deref() == Some(pn.as_str()),
                            (None, Some(v)) => *fv == Some(v),
                            _ => true,
                        }
                })
                .collect();
            if param.is_none() && val.is_none() {
                continue;
            }
            let Some((field_name, _, _)) = matching.first() else {
                let what = param
                    .clone()
                    .unwrap_or_else(|| format!("{}", val.unwrap_or(-1)));
                r.report("X5", Warning, "run.py", format!("line {line}: streaming {} uses color {what}, which is not the color given to get_params(.{dirn}*)", &name[1..]));
                continue;
            };
            if let Some(pn) = &param {
                if !cl_params.is_empty() && !cl_params.contains_key(pn) {
                    r.report(
                        "X5",
                        Warning,
                        "run.py",
                        format!("line {line}: color parameter {pn} is not passed with --params"),
                    );
                }
            }
            // wavelet count: a fabric DSD on sys_mod.<field> with a comptime extent
            let nums: Vec<Option<i64>> = args
                .iter()
                .skip(2)
                .take(5)
                .map(|a| a.parse().ok())
                .collect();
            let (Some(Some(x0)), Some(Some(y0)), Some(Some(n))) =
                (nums.first(), nums.get(1), nums.get(4))
            else {
                continue;
            };
            let Some(t) = l
                .tiles
                .iter()
                .find(|t| t.x == i128::from(*x0) && t.y == i128::from(*y0))
            else {
                continue;
            };
            let (Some(pf), Some(parsed)) = (facts.get(&t.file), p.csl.get(&t.file)) else {
                continue;
            };
            let env: Env = tile_env(t, l, pf);
            let kind = if h2d { "fabin_dsd" } else { "fabout_dsd" };
            let mut extents = Vec::new();
            walk(&parsed.items, &mut |e, _| {
                let Expr::Builtin(b, a) = e else { return };
                if b != "get_dsd" || !matches!(a.first(), Some(Expr::Ident(k)) if k == kind) {
                    return;
                }
                let Some(st) = a.get(1) else { return };
                let on =
                    matches!(field(st, "fabric_color"), Some(Expr::Field(_, f)) if f == field_name);
                if on {
                    extents.push(field(st, "extent").and_then(|x| int(x, &env)));
                }
            });
            let total: Option<i128> = extents.iter().copied().sum();
            if let (false, Some(tot)) = (extents.is_empty(), total) {
                if tot != i128::from(*n) {
                    r.report("X5", Warning, "run.py", format!("line {line}: streaming {} moves {n} elements per PE but PE ({x0},{y0}) handles {tot} wavelets on {field_name}", &name[1..]));
                }
            }
        }
    }
}
