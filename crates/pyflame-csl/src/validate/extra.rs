//! Tile- and path-sensitive PE rules: C5 (RAMP deliveries are consumed, fabric sends leave
//! through RAMP), D2 (DSD index bounds), D5 (async options), T7 (overlapping async ops share
//! no queue or microthread; output queues keep one color) and M2 (alignment of paired
//! 16-bit SIMD operands). Each PE file is evaluated once per tile with that tile's params, so
//! `if (px == 0)` branches and checkerboard colors resolve per PE.

use super::eval::{field, int, Env};
use super::layout::{Layout, Tile};
use super::pe::PeFacts;
use super::sites::{
    cint, collect_sites, decls, dsd_of, is_async, may_be_fabric, options, queue_num, type_name,
    Decls, Sites,
};
use super::{Finding, Program, Severity, Severity::*};
use crate::parse::{Expr, File, Stmt};
use crate::plan::dir;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// At most this many findings per rule and file (the rest are summarized by the first ones).
const CAP: usize = 20;

/// DSD operations whose two sources are read in the same SIMD cycle.
const PAIRED_OPS: [&str; 14] = [
    "fadds", "fsubs", "fmuls", "fmaxs", "fmacs", "faddh", "fsubh", "fmulh", "fmaxh", "fmach",
    "fmachs", "faddhs", "add16", "sub16",
];

/// Collected findings, deduplicated and capped per (rule, file).
#[derive(Default)]
struct Out {
    seen: BTreeSet<(&'static str, String, String)>,
    count: HashMap<(&'static str, String), usize>,
    list: Vec<Finding>,
}

impl Out {
    fn add(&mut self, rule: &'static str, sev: Severity, file: &str, msg: String) {
        if !self.seen.insert((rule, file.to_string(), msg.clone())) {
            return;
        }
        let n = self.count.entry((rule, file.to_string())).or_default();
        *n += 1;
        if *n <= CAP {
            self.list.push(Finding {
                rule,
                severity: sev,
                file: file.to_string(),
                message: msg,
            });
        }
    }
}

/// Route of each (x, y, color): (rx, tx) direction sets.
type RouteMap = HashMap<(i128, i128, i128), (u8, u8)>;
/// Colors each PE's routes deliver to RAMP.
type RampMap = HashMap<(i128, i128), Vec<i128>>;

/// Per-file data shared by the per-tile checks.
struct PeFile<'a> {
    sites: Sites,
    decls: Decls,
    facts: &'a PeFacts,
    aligned: BTreeSet<String>,
    /// indices of the sites C5 looks at
    c5: Vec<usize>,
    /// indices of the sites D2 looks at
    d2: Vec<usize>,
    /// names the D2 sites and the array sizes depend on, and the distinct `if` conditions
    /// guarding D2 sites: D2 runs once per distinct set of their values
    d2_names: Vec<String>,
    d2_guards: Vec<Expr>,
}

impl<'a> PeFile<'a> {
    fn new(parsed: &File, facts: &'a PeFacts, aligned: BTreeSet<String>) -> Self {
        let sites = collect_sites(parsed);
        let decls = decls(parsed);
        let mut c5 = Vec::new();
        let mut d2 = Vec::new();
        let mut names = BTreeSet::new();
        let mut d2_guards: Vec<Expr> = Vec::new();
        for (k, s) in sites.list.iter().enumerate() {
            let n = s.name.as_str();
            let fabric = |kinds: &[&str]| matches!(s.args.first(), Some(Expr::Ident(x)) if kinds.contains(&x.as_str()));
            if (n == "get_dsd" && fabric(&["fabin_dsd"]))
                || matches!(n, "initialize_queue" | "unblock" | "bind_data_task")
                || ((n.starts_with('f') || n.starts_with("mov"))
                    && s.args
                        .iter()
                        .any(|a| matches!(dsd_of(a, &decls, 0), Some(("fabout_dsd", _)))))
            {
                c5.push(k);
            }
            if (n == "get_dsd" && fabric(&["mem1d_dsd"])) || n == "increment_dsd_offset" {
                d2.push(k);
                for (g, _) in &s.guards {
                    if !d2_guards.contains(g) {
                        d2_guards.push(g.clone());
                    }
                }
                for a in &s.args {
                    free_names(a, &mut names);
                }
            }
        }
        for (_, dims, _) in &facts.arrays {
            for d in dims {
                free_names(d, &mut names);
            }
        }
        PeFile {
            sites,
            decls,
            facts,
            aligned,
            c5,
            d2,
            d2_names: names.into_iter().collect(),
            d2_guards,
        }
    }
}

/// Identifiers an expression mentions.
fn free_names(e: &Expr, out: &mut BTreeSet<String>) {
    crate::parse::walk(&[Stmt::Expr(e.clone(), 0)], &mut |x, _| {
        if let Expr::Ident(n) = x {
            out.insert(n.clone());
        }
    });
}

/// Runs C5, D2, D5, T7 and M2.
pub(super) fn check(p: &mut Program, l: &Layout, facts: &BTreeMap<String, PeFacts>) {
    let mut out = Out::default();
    let mut files: BTreeMap<&str, PeFile> = BTreeMap::new();
    for (name, pf) in facts {
        let Some(parsed) = p.csl.get(name) else {
            continue;
        };
        let aligned = p
            .sources
            .get(name)
            .map(|t| aligned_names(t))
            .unwrap_or_default();
        let pe = PeFile::new(parsed, pf, aligned);
        check_d5(name, &pe, &mut out);
        check_t7(name, parsed, &pe.decls, &mut out);
        check_m2(name, &pe, &mut out);
        files.insert(name.as_str(), pe);
    }
    let routes: RouteMap = l
        .routes
        .iter()
        .filter_map(|&(x, y, c, rx, tx, _)| c.map(|c| ((x, y, c), (rx, tx))))
        .collect();
    let mut ramp = RampMap::new();
    for (&(x, y, c), &(_, tx)) in &routes {
        if tx & dir::RAMP != 0 {
            ramp.entry((x, y)).or_default().push(c);
        }
    }
    type D2Key = (Vec<Option<i128>>, Vec<Option<i128>>);
    let mut d2_done: BTreeSet<(&str, D2Key)> = BTreeSet::new();
    for t in &l.tiles {
        let Some(pe) = files.get(t.file.as_str()) else {
            continue;
        };
        let env = tile_env(t, l, pe.facts);
        check_c5(t, pe, &env, (&routes, &ramp), &mut out);
        let key = (
            pe.d2_names.iter().map(|n| env.get(n).copied()).collect(),
            pe.d2_guards.iter().map(|g| int(g, &env)).collect(),
        );
        if d2_done.insert((t.file.as_str(), key)) {
            check_d2(&t.file, pe, &env, &mut out);
        }
    }
    p.out.extend(out.list);
}

/// Names declared with `align(...)` (scanned from the source text: the parser drops it).
fn aligned_names(text: &str) -> BTreeSet<String> {
    let mut s = BTreeSet::new();
    for line in text.lines() {
        let l = line.trim_start();
        if !l.contains(" align(") {
            continue;
        }
        for kw in ["var ", "const "] {
            if let Some(rest) = l.strip_prefix(kw) {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                s.insert(name);
            }
        }
    }
    s
}

/// The tile's params (colors resolved through the layout) plus the file's comptime constants.
pub(super) fn tile_env(t: &Tile, l: &Layout, pf: &PeFacts) -> Env {
    let mut env = t.env.clone();
    for (k, e) in &t.params {
        if env.contains_key(k) {
            continue;
        }
        let c = match e {
            Expr::Ident(n) => l.colors.get(n).copied(),
            Expr::Builtin(b, a) if b == "get_color" => a.first().and_then(|x| int(x, &l.env)),
            _ => None,
        };
        if let Some(c) = c {
            env.insert(k.clone(), c);
        }
    }
    for (n, e) in &pf.consts {
        let scalar = match e {
            Expr::Builtin(b, _) => b == "get_color" || b == "as",
            Expr::Int(_) | Expr::Ident(_) | Expr::Unary(..) | Expr::Binary(..) | Expr::If(..) => {
                true
            }
            _ => false,
        };
        if !scalar || env.contains_key(n) {
            continue; // not an integer, or a param supplied by the tile (wins over its default)
        }
        if let Some(v) = cint(e, &env) {
            env.insert(n.clone(), v);
        }
    }
    env
}

/// C5: every color a route delivers to RAMP is consumed by the PE (a `fabin_dsd` or a data
/// task bound to it, directly on WSE-2 or through an input queue on WSE-3), and every color
/// the PE sends on with a `fabout_dsd` has RAMP in its route's `rx`.
fn check_c5(
    t: &Tile,
    pe: &PeFile,
    env: &Env,
    (routes, ramp): (&RouteMap, &RampMap),
    out: &mut Out,
) {
    let mut consumed = BTreeSet::new();
    let mut sent = BTreeSet::new();
    let mut unknown_in = false;
    let mut queue_color: HashMap<i128, i128> = HashMap::new();
    let mut task_queues = Vec::new();
    for s in pe
        .c5
        .iter()
        .map(|&k| &pe.sites.list[k])
        .filter(|s| s.live(env))
    {
        match s.name.as_str() {
            "get_dsd" => {
                let kind = match s.args.first() {
                    Some(Expr::Ident(k)) => k.as_str(),
                    _ => continue,
                };
                if kind != "fabin_dsd" && kind != "fabout_dsd" {
                    continue;
                }
                let c = s
                    .args
                    .get(1)
                    .and_then(|st| field(st, "fabric_color"))
                    .and_then(|e| cint(e, env));
                match (kind, c) {
                    ("fabin_dsd", Some(c)) => {
                        consumed.insert(c);
                    }
                    ("fabin_dsd", None) => unknown_in = true,
                    _ => {}
                }
            }
            "initialize_queue" => {
                let q = s.args.first();
                let input = matches!(q, Some(Expr::Builtin(b, _)) if b == "get_input_queue")
                    || matches!(q, Some(Expr::Ident(n)) if type_name(&pe.decls.get(n).and_then(|d| d.0.clone())) == Some("input_queue"));
                let qn = q.and_then(|q| queue_num(q, &pe.decls, env));
                let c = s
                    .args
                    .get(1)
                    .and_then(|st| field(st, "color"))
                    .and_then(|e| cint(e, env));
                match (input, qn, c) {
                    (true, Some(q), Some(c)) => {
                        queue_color.insert(q, c);
                    }
                    (true, _, _) => unknown_in = true,
                    _ => {}
                }
            }
            "unblock" => {
                // `@unblock(color)` (WSE-2) or `@unblock(input_queue)` (WSE-3) lets control
                // wavelets reach the CE
                let is_queue = matches!(s.args.first(), Some(Expr::Builtin(b, _)) if b == "get_input_queue")
                    || matches!(s.args.first(), Some(Expr::Ident(n)) if type_name(&pe.decls.get(n).and_then(|d| d.0.clone())) == Some("input_queue"));
                if is_queue {
                    if let Some(q) = s.args.first().and_then(|e| queue_num(e, &pe.decls, env)) {
                        task_queues.push(q);
                    }
                } else if let Some(c) = s.args.first().and_then(|e| cint(e, env)) {
                    if matches!(s.args.first(), Some(Expr::Ident(n)) if type_name(&pe.decls.get(n).and_then(|d| d.0.clone())) == Some("color"))
                    {
                        consumed.insert(c);
                    }
                }
            }
            n if n.starts_with('f') || n.starts_with("mov") => {
                // a DSD operation that surely runs on this PE sends on its fabout operands
                // functions called under an `if` and data/control tasks (they run only when
                // wavelets arrive) may not run on this PE
                let called_conditionally = s.func.as_ref().is_some_and(|f| {
                    pe.sites.guarded_fns.contains(f)
                        || pe
                            .facts
                            .binds
                            .iter()
                            .any(|(t, k, _)| t == f && k != "bind_local_task")
                });
                if called_conditionally || !s.surely_live(env) {
                    continue;
                }
                for a in &s.args {
                    if let Some(("fabout_dsd", st)) = dsd_of(a, &pe.decls, 0) {
                        if let Some(c) = field(st, "fabric_color").and_then(|e| cint(e, env)) {
                            sent.insert(c);
                        }
                    }
                }
            }
            "bind_data_task" => match data_task_source(s.args.get(1), &pe.decls, env) {
                Some(TaskSrc::Color(c)) => {
                    consumed.insert(c);
                }
                Some(TaskSrc::Queue(q)) => task_queues.push(q),
                None => unknown_in = true,
            },
            _ => {}
        }
    }
    for q in task_queues {
        match queue_color.get(&q) {
            Some(c) => {
                consumed.insert(*c);
            }
            None => unknown_in = true,
        }
    }
    let (x, y) = (t.x, t.y);
    let mut deliver: Vec<i128> = ramp.get(&(x, y)).cloned().unwrap_or_default();
    deliver.sort();
    if !unknown_in {
        for c in deliver {
            if !consumed.contains(&c) {
                out.add("C5", Warning, &t.file, format!("PE ({x},{y}): the route of color {c} delivers to RAMP but the program neither reads it with a fabin_dsd nor binds a data task to it"));
            }
        }
    }
    for c in sent {
        let ok = routes
            .get(&(x, y, c))
            .is_some_and(|&(rx, _)| rx & dir::RAMP != 0);
        if !ok {
            out.add(
                "C5",
                Warning,
                &t.file,
                format!("PE ({x},{y}) sends on color {c} with a fabout_dsd, but its route for color {c} does not take RAMP in .rx"),
            );
        }
    }
}

enum TaskSrc {
    Color(i128),
    Queue(i128),
}

/// What a data task id is built from: a color (WSE-2) or an input queue (WSE-3).
fn data_task_source(e: Option<&Expr>, d: &Decls, env: &Env) -> Option<TaskSrc> {
    let e = e?;
    let e = match e {
        Expr::Ident(n) => d.get(n)?.1.as_ref()?,
        _ => e,
    };
    let Expr::Builtin(b, a) = e else { return None };
    if b != "get_data_task_id" {
        return None;
    }
    let arg = a.first()?;
    let is_queue = matches!(arg, Expr::Builtin(b, _) if b == "get_input_queue")
        || matches!(arg, Expr::Ident(n) if type_name(&d.get(n).and_then(|x| x.0.clone())) == Some("input_queue"));
    if is_queue {
        queue_num(arg, d, env).map(TaskSrc::Queue)
    } else {
        cint(arg, env).map(TaskSrc::Color)
    }
}

/// Element count and dims of each array of a file under `env`.
fn array_dims(pf: &PeFacts, env: &Env) -> HashMap<String, Vec<i128>> {
    pf.arrays
        .iter()
        .filter_map(|(n, dims, _)| {
            let v: Option<Vec<i128>> = dims.iter().map(|x| int(x, env)).collect();
            v.map(|v| (n.clone(), v))
        })
        .collect()
}

/// `&a` or `&a[k]`: array name and element offset.
fn base_of(e: &Expr, env: &Env) -> Option<(String, i128)> {
    match e {
        Expr::Unary("&", x) => match x.as_ref() {
            Expr::Ident(n) => Some((n.clone(), 0)),
            Expr::Index(a, i) if i.len() == 1 => match a.as_ref() {
                Expr::Ident(n) => Some((n.clone(), int(&i[0], env)?)),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// D2: every element a `mem1d_dsd` can address lies inside its array (base + offset +
/// i * stride for i < extent, or the affine `tensor_access` index at both ends), also after
/// a comptime `@increment_dsd_offset` of such a DSD.
fn check_d2(file: &str, pe: &PeFile, env: &Env, out: &mut Out) {
    let dims = array_dims(pe.facts, env);
    for s in pe
        .d2
        .iter()
        .map(|&k| &pe.sites.list[k])
        .filter(|s| s.live(env))
    {
        let (st, extra) = match s.name.as_str() {
            "get_dsd" => match (s.args.first(), s.args.get(1)) {
                (Some(Expr::Ident(k)), Some(st)) if k == "mem1d_dsd" => (st, 0),
                _ => continue,
            },
            "increment_dsd_offset" => {
                let Some(("mem1d_dsd", st)) = s.args.first().and_then(|x| dsd_of(x, &pe.decls, 0))
                else {
                    continue;
                };
                match s.args.get(1).and_then(|x| int(x, env)) {
                    Some(k) => (st, k),
                    None => continue,
                }
            }
            _ => continue,
        };
        if let Some(Expr::Access(vars, ext, body)) = field(st, "tensor_access") {
            d2_access(file, vars, ext, body, extra, &dims, env, out);
            continue;
        }
        let Some((arr, base)) = field(st, "base_address").and_then(|b| base_of(b, env)) else {
            continue;
        };
        let Some(len) = dims.get(&arr).map(|d| d.iter().product::<i128>()) else {
            continue;
        };
        let get = |n: &str, dflt: i128| match field(st, n) {
            Some(e) => int(e, env),
            None => Some(dflt),
        };
        let (Some(ext), Some(stride), Some(off)) =
            (get("extent", -1), get("stride", 1), get("offset", 0))
        else {
            continue;
        };
        if ext <= 0 {
            continue;
        }
        let first = base + off + extra;
        let last = first + (ext - 1) * stride;
        let (lo, hi) = (first.min(last), first.max(last));
        if lo < 0 || hi >= len {
            out.add("D2", Error, file, format!("mem1d_dsd over {arr} ([{len}] elements) addresses elements {lo}..={hi} (extent {ext}, stride {stride}, offset {})", base + off + extra));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn d2_access(
    file: &str,
    vars: &[String],
    ext: &[Expr],
    body: &Expr,
    extra: i128,
    dims: &HashMap<String, Vec<i128>>,
    env: &Env,
    out: &mut Out,
) {
    let (Some(v), Some(n)) = (vars.first(), ext.first().and_then(|e| int(e, env))) else {
        return;
    };
    let Expr::Index(a, idx) = body else { return };
    let Expr::Ident(arr) = a.as_ref() else { return };
    let Some(d) = dims.get(arr) else { return };
    if vars.len() != 1 || n <= 0 {
        return;
    }
    let bounds: Vec<i128> = if idx.len() == d.len() {
        d.clone()
    } else if idx.len() == 1 {
        vec![d.iter().product()]
    } else {
        return;
    };
    for (k, (ix, bound)) in idx.iter().zip(bounds).enumerate() {
        let at = |i: i128| {
            let mut e = env.clone();
            e.insert(v.clone(), i);
            int(ix, &e)
        };
        let (Some(a0), Some(a1)) = (at(0), at(n - 1)) else {
            continue;
        };
        let shift = if k + 1 == idx.len() { extra } else { 0 };
        let (lo, hi) = (a0.min(a1) + shift, a0.max(a1) + shift);
        if lo < 0 || hi >= bound {
            out.add("D2", Error, file, format!("tensor_access |{v}|{{{n}}} -> {arr}[...]: index {k} ranges over {lo}..={hi}, outside 0..{bound}"));
        }
    }
}

/// D5: `.activate` names a local task id; `.async = true` has a fabric or FIFO operand.
fn check_d5(file: &str, pe: &PeFile, out: &mut Out) {
    for s in &pe.sites.list {
        let Some(o) = options(&s.args) else { continue };
        if s.name == "get_dsd" || s.name == "initialize_queue" || s.args.len() < 2 {
            continue;
        }
        if let Some(t) = field(o, "activate") {
            let kind = match t {
                Expr::Builtin(b, _) => Some(b.trim_start_matches("get_").to_string()),
                Expr::Ident(n) => pe.decls.get(n).and_then(|(ty, init)| match (ty, init) {
                    (Some(Expr::Ident(t)), _) => Some(t.clone()),
                    (_, Some(Expr::Builtin(b, _))) => {
                        Some(b.trim_start_matches("get_").to_string())
                    }
                    _ => None,
                }),
                _ => None,
            };
            if let Some(k) = kind.filter(|k| k.ends_with("task_id") && k != "local_task_id") {
                out.add(
                    "D5",
                    Warning,
                    file,
                    format!(
                        "@{}: .activate target is a {k}, not a local_task_id",
                        s.name
                    ),
                );
            }
        }
        if is_async(&s.args) {
            let operands = &s.args[..s.args.len() - 1];
            if !operands.iter().any(|x| may_be_fabric(x, &pe.decls, 0)) {
                out.add(
                    "D5",
                    Warning,
                    file,
                    format!(
                        "@{} with .async = true has no fabric or FIFO operand",
                        s.name
                    ),
                );
            }
        }
    }
}

/// Microthread keys of an async op: its `.ut_id`, else the queues of its fabric operands
/// (on WSE-2 the queue id is the microthread).
fn op_keys(args: &[Expr], d: &Decls) -> BTreeSet<String> {
    let env = Env::new();
    let mut keys = BTreeSet::new();
    if let Some(u) = options(args).and_then(|o| field(o, "ut_id")) {
        if let Some(k) = match u {
            Expr::Builtin(b, a) if b == "get_ut_id" => a.first().and_then(|x| int(x, &env)),
            _ => None,
        } {
            keys.insert(format!("ut_id {k}"));
        }
        return keys;
    }
    for a in &args[..args.len().saturating_sub(1)] {
        if let Some((kind, st)) = dsd_of(a, d, 0) {
            let qf = match kind {
                "fabin_dsd" => "input_queue",
                "fabout_dsd" => "output_queue",
                _ => continue,
            };
            if let Some(q) = field(st, qf).and_then(|x| queue_num(x, d, &env)) {
                keys.insert(format!("queue {q}"));
            }
        }
    }
    keys
}

/// Sets of async-op keys issued along each path of a statement list (capped).
fn paths(stmts: &[Stmt], d: &Decls, file: &str, out: &mut Out) -> Vec<Vec<String>> {
    let mut acc: Vec<Vec<String>> = vec![Vec::new()];
    for s in stmts {
        let alts: Vec<Vec<String>> = match s {
            Stmt::Expr(Expr::Builtin(b, a), _) if is_async(a) => {
                vec![op_keys(a, d)
                    .into_iter()
                    .map(|k| format!("{k} (@{b})"))
                    .collect()]
            }
            Stmt::Block(b) => paths(b, d, file, out),
            Stmt::If(_, t, e) => {
                let mut v = paths(std::slice::from_ref(t), d, file, out);
                match e {
                    Some(e) => v.extend(paths(std::slice::from_ref(e), d, file, out)),
                    None => v.push(Vec::new()),
                }
                v
            }
            Stmt::Switch(_, arms) => {
                let mut v = Vec::new();
                for (_, b) in arms {
                    v.extend(paths(std::slice::from_ref(b), d, file, out));
                }
                v
            }
            Stmt::While(_, _, b) | Stmt::For(_, _, b) => {
                let v = paths(std::slice::from_ref(b), d, file, out);
                for k in v.iter().flatten() {
                    out.add("T7", Warning, file, format!("async op on {k} inside a loop: the next iteration may issue it again before it completes"));
                }
                v
            }
            _ => vec![Vec::new()],
        };
        let mut next = Vec::new();
        for a in &acc {
            for b in &alts {
                if next.len() < 256 {
                    let mut p = a.clone();
                    p.extend(b.iter().cloned());
                    next.push(p);
                }
            }
        }
        acc = next;
    }
    acc
}

/// T7: along any path of a function, no two async ops use the same microthread (queue id on
/// WSE-2, `ut_id` on WSE-3); an output queue is not used with two colors in one file.
fn check_t7(file: &str, f: &File, d: &Decls, out: &mut Out) {
    for s in &f.items {
        let body = match s {
            Stmt::Fn { body, .. } | Stmt::Comptime(body) => body,
            _ => continue,
        };
        for p in paths(body, d, file, out) {
            let mut seen: BTreeMap<&str, &str> = BTreeMap::new();
            for k in &p {
                let key = k.split(" (@").next().unwrap_or(k);
                if let Some(prev) = seen.insert(key, k) {
                    out.add(
                        "T7",
                        Warning,
                        file,
                        format!("two async ops may run at once on {key}: {prev} and {k}"),
                    );
                }
            }
        }
    }
    // output queue -> colors (by expression text)
    let mut colors: BTreeMap<i128, BTreeSet<String>> = BTreeMap::new();
    let env = Env::new();
    crate::parse::walk(&f.items, &mut |e, _| {
        let Expr::Builtin(b, a) = e else { return };
        let (q, c) = match b.as_str() {
            "get_dsd" => match (a.first(), a.get(1)) {
                (Some(Expr::Ident(k)), Some(st)) if k == "fabout_dsd" => {
                    (field(st, "output_queue"), field(st, "fabric_color"))
                }
                _ => return,
            },
            "initialize_queue" => {
                if !matches!(a.first(), Some(Expr::Builtin(g, _)) if g == "get_output_queue") {
                    return;
                }
                (a.first(), a.get(1).and_then(|st| field(st, "color")))
            }
            _ => return,
        };
        if let (Some(q), Some(c)) = (q.and_then(|q| queue_num(q, d, &env)), c) {
            colors.entry(q).or_default().insert(render(c));
        }
    });
    for (q, cs) in colors {
        if cs.len() > 1 {
            let list: Vec<&str> = cs.iter().map(String::as_str).collect();
            out.add("T7", Warning, file, format!("output queue {q} is used with several colors ({}); on WSE-3 it must drain before switching", list.join(", ")));
        }
    }
}

/// Short text of a color expression.
fn render(e: &Expr) -> String {
    match e {
        Expr::Ident(n) => n.clone(),
        Expr::Field(x, n) => format!("{}.{n}", render(x)),
        Expr::Int(v) => v.to_string(),
        Expr::Builtin(b, a) => format!(
            "@{b}({})",
            a.iter().map(render).collect::<Vec<_>>().join(", ")
        ),
        other => format!("{other:?}"),
    }
}

/// M2: when a paired DSD op reads two memory operands, 16-bit arrays among them are declared
/// `align(...)` and do not start at an odd element.
fn check_m2(file: &str, pe: &PeFile, out: &mut Out) {
    let env = Env::new();
    let bytes: HashMap<&str, usize> = pe
        .facts
        .arrays
        .iter()
        .map(|(n, _, b)| (n.as_str(), *b))
        .collect();
    for s in pe
        .sites
        .list
        .iter()
        .filter(|s| PAIRED_OPS.contains(&s.name.as_str()))
    {
        let mems: Vec<(String, Option<i128>)> = s
            .args
            .iter()
            .skip(1)
            .filter_map(|a| dsd_of(a, &pe.decls, 0))
            .filter(|(k, _)| *k == "mem1d_dsd" || *k == "mem4d_dsd")
            .filter_map(|(_, st)| match field(st, "base_address") {
                Some(b) => base_of(b, &env)
                    .map(|(n, k)| (n, Some(k)))
                    .or_else(|| match b {
                        Expr::Unary("&", x) => match x.as_ref() {
                            Expr::Index(a, _) => match a.as_ref() {
                                Expr::Ident(n) => Some((n.clone(), None)),
                                _ => None,
                            },
                            _ => None,
                        },
                        _ => None,
                    }),
                None => match field(st, "tensor_access") {
                    Some(Expr::Access(_, _, body)) => match body.as_ref() {
                        Expr::Index(a, _) => match a.as_ref() {
                            Expr::Ident(n) => Some((n.clone(), Some(0))),
                            _ => None,
                        },
                        _ => None,
                    },
                    _ => None,
                },
            })
            .collect();
        if mems.len() < 2 {
            continue;
        }
        for (arr, start) in &mems {
            if bytes.get(arr.as_str()) != Some(&2) {
                continue;
            }
            if !pe.aligned.contains(arr) {
                out.add("M2", Warning, file, format!("@{}: 16-bit array {arr} is a paired SIMD operand but is not declared align(...) (need 32-bit alignment)", s.name));
            } else if start.is_some_and(|k| k % 2 != 0) {
                out.add("M2", Warning, file, format!("@{}: operand starts at an odd element of 16-bit array {arr} (not 32-bit aligned)", s.name));
            }
        }
    }
}
