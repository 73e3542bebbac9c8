//! Builtin call sites of a PE file with the `if` conditions that guard them, plus helpers to
//! resolve names to their declarations (DSDs, queues, task ids) and to evaluate colors.
//! Used by the path- and tile-sensitive rules in [`super::extra`].

use super::eval::{field, int, Env};
use crate::parse::{walk, Expr, File, Stmt};
use std::collections::{BTreeSet, HashMap};

/// One `@builtin(...)` call found in a PE file.
pub(super) struct Site {
    /// `if` conditions on the way to the call and the branch taken (true = then)
    pub(super) guards: Vec<(Expr, bool)>,
    /// the builtin name
    pub(super) name: String,
    /// its arguments
    pub(super) args: Vec<Expr>,
    /// the enclosing `fn` or `task`, if any
    pub(super) func: Option<String>,
}

/// The builtin call sites of a file and the functions some call of which is guarded.
pub(super) struct Sites {
    /// every builtin call
    pub(super) list: Vec<Site>,
    /// functions called (somewhere) under an `if`
    pub(super) guarded_fns: BTreeSet<String>,
}

impl Site {
    /// False when some guard is known (under `env`) to exclude this call.
    pub(super) fn live(&self, env: &Env) -> bool {
        self.guards
            .iter()
            .all(|(c, want)| int(c, env).is_none_or(|v| (v != 0) == *want))
    }

    /// True when every guard is known (under `env`) to hold.
    pub(super) fn surely_live(&self, env: &Env) -> bool {
        self.guards
            .iter()
            .all(|(c, want)| int(c, env).is_some_and(|v| (v != 0) == *want))
    }
}

/// Every builtin call of a file, with its guards.
pub(super) fn collect_sites(f: &File) -> Sites {
    let mut c = Collector {
        guards: Vec::new(),
        func: None,
        out: Sites {
            list: Vec::new(),
            guarded_fns: BTreeSet::new(),
        },
    };
    for s in &f.items {
        c.visit(s);
    }
    c.out
}

struct Collector {
    guards: Vec<(Expr, bool)>,
    func: Option<String>,
    out: Sites,
}

impl Collector {
    fn visit(&mut self, s: &Stmt) {
        match s {
            Stmt::Fn { name, body, .. } => {
                self.func = Some(name.clone());
                body.iter().for_each(|s| self.visit(s));
                self.func = None;
            }
            Stmt::Comptime(body) | Stmt::Block(body) => body.iter().for_each(|s| self.visit(s)),
            Stmt::Layout(_) => {}
            Stmt::If(c, t, e) => {
                self.exprs(std::slice::from_ref(&Stmt::Expr(c.clone(), 0)));
                self.guards.push((c.clone(), true));
                self.visit(t);
                self.guards.pop();
                if let Some(e) = e {
                    self.guards.push((c.clone(), false));
                    self.visit(e);
                    self.guards.pop();
                }
            }
            Stmt::While(c, k, b) => {
                self.exprs(std::slice::from_ref(&Stmt::Expr(c.clone(), 0)));
                if let Some(k) = k {
                    self.visit(k);
                }
                self.visit(b);
            }
            Stmt::For(_, _, b) => self.visit(b),
            Stmt::Switch(_, arms) => arms.iter().for_each(|(_, b)| self.visit(b)),
            other => self.exprs(std::slice::from_ref(other)),
        }
    }

    fn exprs(&mut self, s: &[Stmt]) {
        let (guards, func, out) = (&self.guards, &self.func, &mut self.out);
        walk(s, &mut |e, _| match e {
            Expr::Builtin(b, a) => out.list.push(Site {
                guards: guards.to_vec(),
                name: b.clone(),
                args: a.clone(),
                func: func.clone(),
            }),
            Expr::Call(c, _) if !guards.is_empty() => {
                if let Expr::Ident(n) = c.as_ref() {
                    out.guarded_fns.insert(n.clone());
                }
            }
            _ => {}
        });
    }
}

/// Top-level and function-local declarations of a file: name -> (type, initializer).
pub(super) type Decls = HashMap<String, (Option<Expr>, Option<Expr>)>;

/// Collects the declarations of a file (all scopes flattened; later ones win).
pub(super) fn decls(f: &File) -> Decls {
    fn go(items: &[Stmt], d: &mut Decls) {
        for s in items {
            match s {
                Stmt::Decl { name, ty, init, .. } => {
                    d.insert(name.clone(), (ty.clone(), init.clone()));
                }
                Stmt::Fn { body, .. } | Stmt::Comptime(body) | Stmt::Block(body) => go(body, d),
                Stmt::If(_, t, e) => {
                    go(std::slice::from_ref(t), d);
                    if let Some(e) = e {
                        go(std::slice::from_ref(e), d);
                    }
                }
                Stmt::While(_, _, b) | Stmt::For(_, _, b) => go(std::slice::from_ref(b), d),
                Stmt::Switch(_, arms) => {
                    for (_, b) in arms {
                        go(std::slice::from_ref(b), d);
                    }
                }
                _ => {}
            }
        }
    }
    let mut d = Decls::new();
    go(&f.items, &mut d);
    d
}

/// The name of a type expression when it is a plain identifier.
pub(super) fn type_name(t: &Option<Expr>) -> Option<&str> {
    match t {
        Some(Expr::Ident(n)) => Some(n),
        _ => None,
    }
}

/// Integer value of `e`, also reading `@get_color(n)`.
pub(super) fn cint(e: &Expr, env: &Env) -> Option<i128> {
    match e {
        Expr::Builtin(b, a) if b == "get_color" => int(a.first()?, env),
        _ => int(e, env),
    }
}

/// A DSD expression resolved to `(kind, struct)` through names and DSD mutators
/// (`@increment_dsd_offset`, `@set_dsd_*`); `None` when unknown.
pub(super) fn dsd_of<'a>(e: &'a Expr, d: &'a Decls, depth: usize) -> Option<(&'a str, &'a Expr)> {
    if depth > 8 {
        return None;
    }
    match e {
        Expr::Builtin(b, a) if b == "get_dsd" => match (a.first(), a.get(1)) {
            (Some(Expr::Ident(k)), Some(s)) => Some((k.as_str(), s)),
            _ => None,
        },
        Expr::Builtin(b, a) if b == "increment_dsd_offset" || b.starts_with("set_dsd_") => {
            dsd_of(a.first()?, d, depth + 1)
        }
        Expr::Ident(n) => dsd_of(d.get(n)?.1.as_ref()?, d, depth + 1),
        _ => None,
    }
}

/// Whether an operand may be a fabric DSD or a FIFO (unknown operands count as "may").
pub(super) fn may_be_fabric(e: &Expr, d: &Decls, depth: usize) -> bool {
    if depth > 8 {
        return true;
    }
    match e {
        Expr::Int(_) | Expr::Float(_) | Expr::Str(_) | Expr::Unary("&", _) => false,
        Expr::Unary("-", _) | Expr::Binary(..) => false,
        Expr::Builtin(b, a) if b == "get_dsd" => {
            matches!(a.first(), Some(Expr::Ident(k)) if k == "fabin_dsd" || k == "fabout_dsd")
        }
        Expr::Builtin(b, _) if b == "allocate_fifo" => true,
        Expr::Builtin(b, a) if b == "increment_dsd_offset" || b.starts_with("set_dsd_") => {
            a.first().is_none_or(|x| may_be_fabric(x, d, depth + 1))
        }
        Expr::Builtin(..) => false,
        Expr::Ident(n) => match d.get(n) {
            None => true,
            Some((ty, init)) => match type_name(ty) {
                Some("fabin_dsd" | "fabout_dsd") => true,
                Some("mem1d_dsd" | "mem4d_dsd" | "f32" | "f16" | "i16" | "u16" | "i32" | "u32") => {
                    false
                }
                _ => init.as_ref().is_none_or(|x| may_be_fabric(x, d, depth + 1)),
            },
        },
        _ => true,
    }
}

/// Queue number of a `@get_input_queue(q)` / `@get_output_queue(q)` expression or a name
/// bound to one.
pub(super) fn queue_num(e: &Expr, d: &Decls, env: &Env) -> Option<i128> {
    match e {
        Expr::Builtin(b, a) if b == "get_input_queue" || b == "get_output_queue" => {
            int(a.first()?, env)
        }
        Expr::Ident(n) => match d.get(n) {
            Some((_, Some(init))) if !matches!(init, Expr::Ident(_)) => queue_num(init, d, env),
            _ => None,
        },
        _ => None,
    }
}

/// The options struct of a DSD operation call (its last argument when it is `.{ ... }`).
pub(super) fn options(args: &[Expr]) -> Option<&Expr> {
    args.last().filter(|x| matches!(x, Expr::Struct(_)))
}

/// Whether a call is an async DSD operation (`.async = true` in its options).
pub(super) fn is_async(args: &[Expr]) -> bool {
    options(args)
        .and_then(|o| field(o, "async"))
        .and_then(|v| int(v, &Env::new()))
        == Some(1)
}
