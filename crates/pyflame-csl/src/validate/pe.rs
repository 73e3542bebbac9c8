//! Facts about one PE program file, gathered by walking its syntax tree.

use super::eval::{field, fields, int, Env};
use crate::parse::{walk, DeclKind, Expr, File, Stmt};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// A fabric DSD: input side?, field names, (input side, queue number) when known.
type FabricDsd = (bool, Vec<String>, Option<(bool, i128)>);

/// Facts about one PE file.
#[derive(Default)]
pub(super) struct PeFacts {
    pub(super) params: BTreeMap<String, bool>,
    pub(super) memcpy: bool,
    pub(super) exports: BTreeSet<String>,
    pub(super) tasks: BTreeMap<String, usize>,
    pub(super) binds: Vec<(String, String, Option<i128>)>,
    pub(super) activated: BTreeSet<String>,
    pub(super) id_names: HashMap<String, i128>,
    pub(super) queues: Vec<(bool, i128)>,
    pub(super) init_queues: BTreeSet<(bool, i128)>,
    pub(super) fabric: Vec<FabricDsd>,
    pub(super) extents: Vec<(String, Option<i128>, Option<i128>)>,
    pub(super) builtins: BTreeSet<String>,
    pub(super) colors: Vec<i128>,
    pub(super) unblocks: bool,
    pub(super) arrays: Vec<(String, Vec<Expr>, usize)>,
    pub(super) consts: Vec<(String, Expr)>,
}

fn elem_bytes(t: &Expr) -> usize {
    match t {
        Expr::Ident(n) => match n.as_str() {
            "f32" | "i32" | "u32" => 4,
            "f16" | "i16" | "u16" | "bf16" | "cb16" => 2,
            "u8" | "i8" | "bool" => 1,
            "i64" | "u64" => 8,
            _ => 4,
        },
        _ => 4,
    }
}

fn queue_of(e: &Expr, names: &HashMap<String, (bool, i128)>) -> Option<(bool, i128)> {
    match e {
        Expr::Builtin(b, a) if b == "get_input_queue" || b == "get_output_queue" => {
            Some((b == "get_input_queue", int(a.first()?, &Env::new())?))
        }
        Expr::Ident(n) => names.get(n).copied(),
        _ => None,
    }
}

pub(super) fn pe_facts(f: &File) -> PeFacts {
    let mut pf = PeFacts::default();
    let mut qnames: HashMap<String, (bool, i128)> = HashMap::new();
    for s in &f.items {
        match s {
            Stmt::Decl {
                kind,
                name,
                init,
                ty,
                ..
            } => {
                if *kind == DeclKind::Param {
                    pf.params.insert(name.clone(), init.is_some());
                }
                if let Some(Expr::Builtin(b, a)) = init {
                    if b == "get_local_task_id"
                        || b == "get_data_task_id"
                        || b == "get_control_task_id"
                    {
                        if let Some(v) = a.first().and_then(|x| int(x, &Env::new())) {
                            pf.id_names.insert(name.clone(), v);
                        }
                    }
                    if b == "get_input_queue" || b == "get_output_queue" {
                        if let Some(q) = init.as_ref().and_then(|e| queue_of(e, &qnames)) {
                            qnames.insert(name.clone(), q);
                        }
                    }
                    if b == "import_module"
                        && matches!(a.first(), Some(Expr::Str(m)) if m == "<memcpy/memcpy>")
                    {
                        pf.memcpy = true;
                    }
                    if (b == "zeros" || b == "constants") && *kind == DeclKind::Var {
                        if let Some(Expr::ArrayType(d, t)) = a.first() {
                            pf.arrays.push((name.clone(), d.clone(), elem_bytes(t)));
                        }
                    }
                }
                if let (Some(Expr::ArrayType(d, t)), DeclKind::Var) = (ty, kind) {
                    if !matches!(init, Some(Expr::Builtin(..))) {
                        pf.arrays.push((name.clone(), d.clone(), elem_bytes(t)));
                    }
                }
                if let Some(e) = init {
                    pf.consts.push((name.clone(), e.clone()));
                }
            }
            Stmt::Fn {
                name, params, task, ..
            } if *task => {
                pf.tasks.insert(name.clone(), params.len());
            }
            _ => {}
        }
    }
    walk(&f.items, &mut |e, _| match e {
        Expr::Builtin(b, a) => {
            pf.builtins.insert(b.clone());
            match b.as_str() {
                "export_symbol" => {
                    let n = match (a.first(), a.get(1)) {
                        (_, Some(Expr::Str(s))) => Some(s.clone()),
                        (Some(Expr::Ident(s)), None) => Some(s.clone()),
                        _ => None,
                    };
                    pf.exports.extend(n);
                }
                "bind_local_task" | "bind_data_task" | "bind_control_task" => {
                    if let Some(Expr::Ident(t)) = a.first() {
                        let id = match a.get(1) {
                            Some(Expr::Ident(n)) => pf.id_names.get(n).copied(),
                            Some(Expr::Builtin(_, x)) => {
                                x.first().and_then(|v| int(v, &Env::new()))
                            }
                            _ => None,
                        };
                        pf.binds.push((t.clone(), b.clone(), id));
                    }
                }
                "activate" | "block" | "unblock" => {
                    if let Some(Expr::Ident(n)) = a.first() {
                        pf.activated.insert(n.clone());
                    }
                }
                "get_input_queue" | "get_output_queue" => {
                    if let Some(v) = a.first().and_then(|x| int(x, &Env::new())) {
                        pf.queues.push((b == "get_input_queue", v));
                    }
                }
                "get_color" => {
                    if let Some(v) = a.first().and_then(|x| int(x, &Env::new())) {
                        pf.colors.push(v);
                    }
                }
                "initialize_queue" => {
                    if let Some(q) = a.first().and_then(|x| queue_of(x, &qnames)) {
                        pf.init_queues.insert(q);
                    }
                }
                "get_dsd" => {
                    let kind = match a.first() {
                        Some(Expr::Ident(k)) => k.clone(),
                        _ => String::new(),
                    };
                    let st = a.get(1);
                    let names: Vec<String> = st
                        .and_then(fields)
                        .map(|v| v.iter().map(|(n, _)| n.to_string()).collect())
                        .unwrap_or_default();
                    if kind == "fabin_dsd" || kind == "fabout_dsd" {
                        let qf = if kind == "fabin_dsd" {
                            "input_queue"
                        } else {
                            "output_queue"
                        };
                        let q = st
                            .and_then(|s| field(s, qf))
                            .and_then(|x| queue_of(x, &qnames));
                        pf.fabric.push((kind == "fabin_dsd", names, q));
                    } else if kind == "mem1d_dsd" {
                        let ext = st
                            .and_then(|s| field(s, "extent"))
                            .and_then(|x| int(x, &Env::new()));
                        let stride = st
                            .and_then(|s| field(s, "stride"))
                            .and_then(|x| int(x, &Env::new()));
                        pf.extents.push((kind, ext, stride));
                    }
                }
                _ => {}
            }
        }
        Expr::Struct(fs) => {
            for (n, x) in fs {
                if matches!(n.as_deref(), Some("activate" | "unblock")) {
                    if let Expr::Ident(i) = x {
                        pf.activated.insert(i.clone());
                    }
                }
            }
        }
        Expr::Call(c, _) => {
            if matches!(c.as_ref(), Expr::Field(_, n) if n == "unblock_cmd_stream") {
                pf.unblocks = true;
            }
        }
        _ => {}
    });
    pf
}
