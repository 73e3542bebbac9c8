//! Layout facts: the `layout {}` block interpreted with comptime integers (loops over
//! `@range` with comptime bounds are unrolled, struct constants and `@concat_structs`
//! resolved, `--params` taken from the command file).

use super::eval::{field, fields, int, Env};
use super::host::cslc_lines;
use super::{Program, Severity::*};
use crate::parse::{Expr, Stmt};
use crate::plan::dir;
use std::collections::{BTreeMap, HashMap};

/// One `@set_tile_code`.
pub(super) struct Tile {
    pub(super) x: i128,
    pub(super) y: i128,
    pub(super) file: String,
    pub(super) params: Vec<(String, Expr)>,
    pub(super) env: Env,
    /// `.memcpy_params = memcpy.get_params(arg)`: Some(evaluated arg) when present
    pub(super) mp: Option<Option<i128>>,
}

/// Everything the layout block configures.
#[derive(Default)]
pub(super) struct Layout {
    pub(super) file: String,
    pub(super) rect: Vec<(i128, i128)>,
    pub(super) memcpy: Option<(Option<i128>, Option<i128>)>,
    pub(super) tiles: Vec<Tile>,
    pub(super) routes: Vec<(i128, i128, Option<i128>, u8, u8, bool)>,
    pub(super) exports: BTreeMap<String, (String, Option<bool>)>,
    pub(super) colors: HashMap<String, i128>,
    pub(super) env: Env,
    pub(super) unresolved: usize,
    /// comptime struct constants (`const p = .{ ... }`)
    pub(super) structs: HashMap<String, Expr>,
}

impl Layout {
    /// `e` as a struct literal: names of struct constants and `@concat_structs` resolved.
    fn resolve(&self, e: &Expr) -> Expr {
        match e {
            Expr::Ident(n) => self.structs.get(n).cloned().unwrap_or_else(|| e.clone()),
            Expr::Builtin(b, a) if b == "concat_structs" => {
                let mut all = Vec::new();
                for x in a {
                    if let Expr::Struct(fs) = self.resolve(x) {
                        all.extend(fs);
                    }
                }
                Expr::Struct(all)
            }
            Expr::Struct(fs) => Expr::Struct(
                fs.iter()
                    .map(|(n, x)| {
                        let known = matches!(x, Expr::Ident(i) if self.structs.contains_key(i));
                        (n.clone(), if known { self.resolve(x) } else { x.clone() })
                    })
                    .collect(),
            ),
            _ => e.clone(),
        }
    }
}

fn dirs_of(e: Option<&Expr>) -> (u8, bool) {
    let mut m = 0;
    let mut ok = true;
    if let Some(Expr::Struct(fs)) = e {
        for (_, d) in fs {
            match d {
                Expr::Ident(n) => match dir::ALL.iter().find(|(_, s)| s == n) {
                    Some((b, _)) => m |= b,
                    None => ok = false,
                },
                _ => ok = false,
            }
        }
    }
    (m, ok && m != 0)
}

impl Layout {
    fn exec(&mut self, stmts: &[Stmt], env: &mut Env) {
        for s in stmts {
            match s {
                Stmt::Decl {
                    name,
                    init: Some(e),
                    ..
                } => {
                    if let Some(v) = int(e, env) {
                        env.insert(name.clone(), v);
                    } else if matches!(e, Expr::Struct(_) | Expr::Builtin(..)) {
                        let r = self.resolve(e);
                        if matches!(r, Expr::Struct(_)) {
                            self.structs.insert(name.clone(), r);
                        }
                    }
                }
                Stmt::Block(b) => self.exec(b, &mut env.clone()),
                Stmt::If(c, t, e) => match int(c, env) {
                    Some(v) if v != 0 => self.exec(std::slice::from_ref(t), env),
                    Some(_) => {
                        if let Some(e) = e {
                            self.exec(std::slice::from_ref(e), env)
                        }
                    }
                    None => self.unresolved += 1,
                },
                Stmt::For(Expr::Builtin(r, a), caps, body) if r == "range" && !caps.is_empty() => {
                    let vals: Vec<Option<i128>> = a.iter().skip(1).map(|x| int(x, env)).collect();
                    let (lo, hi, step) = match vals.as_slice() {
                        [Some(n)] => (0, *n, 1),
                        [Some(a), Some(b)] => (*a, *b, 1),
                        [Some(a), Some(b), Some(c)] if *c > 0 => (*a, *b, *c),
                        _ => {
                            self.unresolved += 1;
                            continue;
                        }
                    };
                    let mut v = lo;
                    while v < hi && v - lo < 100_000 {
                        let mut e2 = env.clone();
                        e2.insert(caps[0].clone(), v);
                        self.exec(std::slice::from_ref(body), &mut e2);
                        v += step;
                    }
                }
                Stmt::Expr(Expr::Builtin(b, a), _) => self.builtin(b, a, env),
                _ => {}
            }
        }
    }

    fn builtin(&mut self, b: &str, a: &[Expr], env: &Env) {
        let xy = |i: usize| {
            (
                a.get(i).and_then(|e| int(e, env)),
                a.get(i + 1).and_then(|e| int(e, env)),
            )
        };
        match b {
            "set_rectangle" => match xy(0) {
                (Some(w), Some(h)) => self.rect.push((w, h)),
                _ => self.unresolved += 1,
            },
            "set_tile_code" => {
                let (Some(x), Some(y)) = xy(0) else {
                    self.unresolved += 1;
                    return;
                };
                let file = match a.get(2) {
                    Some(Expr::Str(s)) => s.clone(),
                    _ => String::new(),
                };
                let st = a.get(3).map(|e| self.resolve(e));
                let params: Vec<(String, Expr)> = st
                    .as_ref()
                    .and_then(fields)
                    .map(|v| {
                        v.into_iter()
                            .map(|(n, e)| (n.to_string(), e.clone()))
                            .collect()
                    })
                    .unwrap_or_default();
                let mut penv = Env::new();
                for (n, e) in &params {
                    if let Some(v) = int(e, env) {
                        penv.insert(n.clone(), v);
                    }
                }
                let mp = params.iter().find(|(n, _)| n == "memcpy_params").and_then(|(_, e)| match e {
                    Expr::Call(c, a) if matches!(c.as_ref(), Expr::Field(_, n) if n == "get_params") => {
                        Some(a.first().and_then(|v| int(v, env)))
                    }
                    _ => None,
                });
                self.tiles.push(Tile {
                    x,
                    y,
                    file,
                    params,
                    env: penv,
                    mp,
                });
            }
            "set_color_config" => {
                let (Some(x), Some(y)) = xy(0) else {
                    self.unresolved += 1;
                    return;
                };
                let color = match a.get(2) {
                    Some(Expr::Ident(n)) => {
                        self.colors.get(n).copied().or_else(|| env.get(n).copied())
                    }
                    Some(Expr::Builtin(g, ga)) if g == "get_color" => {
                        ga.first().and_then(|e| int(e, env))
                    }
                    _ => None,
                };
                let cfg = a.get(3).map(|e| self.resolve(e));
                let routes_e = cfg
                    .as_ref()
                    .and_then(|c| field(c, "routes"))
                    .map(|r| self.resolve(r));
                let routes = routes_e.as_ref();
                let (rx, okr) = dirs_of(routes.and_then(|r| field(r, "rx")));
                let (tx, okt) = dirs_of(routes.and_then(|r| field(r, "tx")));
                if routes.is_some() {
                    self.routes.push((x, y, color, rx, tx, okr && okt));
                }
            }
            "export_name" => {
                if let Some(Expr::Str(n)) = a.first() {
                    let ty = match a.get(1) {
                        Some(Expr::PtrType(t)) => match t.as_ref() {
                            Expr::Ident(e) => format!("[*]{e}"),
                            _ => "?".into(),
                        },
                        Some(Expr::FnType(..)) => "fn".into(),
                        _ => "?".into(),
                    };
                    let m = a.get(2).and_then(|e| int(e, env)).map(|v| v != 0);
                    self.exports.insert(n.clone(), (ty, m));
                }
            }
            _ => {}
        }
    }
}

pub(super) fn collect_layout(p: &mut Program) -> Option<Layout> {
    let with_layout: Vec<String> = p
        .csl
        .iter()
        .filter(|(_, f)| f.items.iter().any(|s| matches!(s, Stmt::Layout(_))))
        .map(|(n, _)| n.clone())
        .collect();
    if with_layout.len() != 1 {
        p.report(
            "L1",
            Error,
            "*",
            format!(
                "expected exactly one file with a layout block, found {}",
                with_layout.len()
            ),
        );
        return None;
    }
    let file = &p.csl[&with_layout[0]];
    let mut l = Layout {
        file: with_layout[0].clone(),
        ..Default::default()
    };
    let mut env = Env::new();
    for (n, t) in p.sources.iter().filter(|(n, _)| n.ends_with(".sh")) {
        let _ = n;
        if let Some(c) = cslc_lines("", t).into_iter().next() {
            for (k, v) in c.params {
                if let Some(v) = v {
                    env.insert(k, i128::from(v));
                }
            }
            break;
        }
    }
    let mut body = Vec::new();
    for s in &file.items {
        match s {
            Stmt::Decl {
                name,
                init: Some(e),
                ..
            } => {
                if let Expr::Builtin(g, a) = e {
                    if g == "get_color" {
                        if let Some(c) = a.first().and_then(|x| int(x, &env)) {
                            l.colors.insert(name.clone(), c);
                        }
                    }
                    if g == "import_module"
                        && matches!(a.first(), Some(Expr::Str(m)) if m == "<memcpy/get_params>")
                    {
                        let st = a.get(1);
                        l.memcpy = Some((
                            st.and_then(|s| field(s, "width"))
                                .and_then(|e| int(e, &env)),
                            st.and_then(|s| field(s, "height"))
                                .and_then(|e| int(e, &env)),
                        ));
                    }
                }
                if let Some(v) = int(e, &env) {
                    env.insert(name.clone(), v);
                }
            }
            Stmt::Layout(b) => body.extend(b.iter().cloned()),
            _ => {}
        }
    }
    l.exec(&body, &mut env);
    l.env = env;
    Some(l)
}
