//! Syntax tree of CSL files and a pre-order walker.

/// An expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    /// integer literal
    Int(i128),
    /// float literal
    Float(f64),
    /// string literal
    Str(String),
    /// identifier (also `true`, `false`, `undefined`, type names)
    Ident(String),
    /// `.name` enum literal
    Enum(String),
    /// `@name(args)`
    Builtin(String, Vec<Expr>),
    /// `f(args)`
    Call(Box<Expr>, Vec<Expr>),
    /// `e.name`
    Field(Box<Expr>, String),
    /// `e[i, j]`
    Index(Box<Expr>, Vec<Expr>),
    /// `e.*`
    Deref(Box<Expr>),
    /// prefix operator
    Unary(&'static str, Box<Expr>),
    /// binary operator
    Binary(&'static str, Box<Expr>, Box<Expr>),
    /// `.{ .a = x, y }` (named or positional fields)
    Struct(Vec<(Option<String>, Expr)>),
    /// `T{ ... }` typed initializer
    Init(Box<Expr>, Vec<(Option<String>, Expr)>),
    /// `[dims]T`, `[*]T` (empty dims) ...
    ArrayType(Vec<Expr>, Box<Expr>),
    /// `*T` / `*const T` / `[*]T`
    PtrType(Box<Expr>),
    /// `fn(types) ret`
    FnType(Vec<Expr>, Box<Expr>),
    /// `if (c) a else b`
    If(Box<Expr>, Box<Expr>, Option<Box<Expr>>),
    /// `|i, j|{M, N} -> body`
    Access(Vec<String>, Vec<Expr>, Box<Expr>),
    /// `switch` used as an expression, or a labeled block
    Stmt(Box<Stmt>),
}

/// Declaration kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeclKind {
    /// `const`
    Const,
    /// `var`
    Var,
    /// `param`
    Param,
}

/// A statement or top-level item.
#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `const|var|param name: T = init;`
    Decl {
        /// kind
        kind: DeclKind,
        /// name
        name: String,
        /// declared type
        ty: Option<Expr>,
        /// initializer
        init: Option<Expr>,
        /// line
        line: usize,
    },
    /// `fn` (`task` = false) or `task` (= true)
    Fn {
        /// name
        name: String,
        /// parameters (name, type)
        params: Vec<(String, Expr)>,
        /// return type
        ret: Expr,
        /// body
        body: Vec<Stmt>,
        /// true for a task
        task: bool,
        /// line
        line: usize,
    },
    /// `comptime { }`
    Comptime(Vec<Stmt>),
    /// `layout { }`
    Layout(Vec<Stmt>),
    /// `{ }`
    Block(Vec<Stmt>),
    /// expression statement
    Expr(Expr, usize),
    /// `lhs op= rhs;`
    Assign(Expr, &'static str, Expr),
    /// `return e;`
    Return(Option<Expr>),
    /// `break` / `continue`
    Jump(String),
    /// `if (c) |cap| then else other`
    If(Expr, Box<Stmt>, Option<Box<Stmt>>),
    /// `while (c) : (cont) body`
    While(Expr, Option<Box<Stmt>>, Box<Stmt>),
    /// `for (iter) |captures| body`
    For(Expr, Vec<String>, Box<Stmt>),
    /// `switch (e) { arms }`: patterns (empty = else) and bodies
    Switch(Expr, Vec<(Vec<Expr>, Stmt)>),
}

/// A parsed file.
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    /// top-level items
    pub items: Vec<Stmt>,
}

/// Calls `f` on every expression in `items` (pre-order), with a flag telling whether the
/// expression is inside a `layout` block.
pub fn walk(items: &[Stmt], f: &mut dyn FnMut(&Expr, bool)) {
    for s in items {
        walk_stmt(s, false, f);
    }
}

fn walk_stmt(s: &Stmt, in_layout: bool, f: &mut dyn FnMut(&Expr, bool)) {
    match s {
        Stmt::Decl { ty, init, .. } => {
            if let Some(t) = ty {
                walk_expr(t, in_layout, f);
            }
            if let Some(e) = init {
                walk_expr(e, in_layout, f);
            }
        }
        Stmt::Fn { body, .. } | Stmt::Comptime(body) | Stmt::Block(body) => {
            body.iter().for_each(|s| walk_stmt(s, in_layout, f))
        }
        Stmt::Layout(body) => body.iter().for_each(|s| walk_stmt(s, true, f)),
        Stmt::Expr(e, _) => walk_expr(e, in_layout, f),
        Stmt::Assign(a, _, b) => {
            walk_expr(a, in_layout, f);
            walk_expr(b, in_layout, f);
        }
        Stmt::Return(e) => {
            if let Some(e) = e {
                walk_expr(e, in_layout, f);
            }
        }
        Stmt::Jump(_) => {}
        Stmt::If(c, t, e) => {
            walk_expr(c, in_layout, f);
            walk_stmt(t, in_layout, f);
            if let Some(e) = e {
                walk_stmt(e, in_layout, f);
            }
        }
        Stmt::While(c, k, b) => {
            walk_expr(c, in_layout, f);
            if let Some(k) = k {
                walk_stmt(k, in_layout, f);
            }
            walk_stmt(b, in_layout, f);
        }
        Stmt::For(it, _, b) => {
            walk_expr(it, in_layout, f);
            walk_stmt(b, in_layout, f);
        }
        Stmt::Switch(e, arms) => {
            walk_expr(e, in_layout, f);
            for (p, b) in arms {
                p.iter().for_each(|x| walk_expr(x, in_layout, f));
                walk_stmt(b, in_layout, f);
            }
        }
    }
}

fn walk_expr(e: &Expr, l: bool, f: &mut dyn FnMut(&Expr, bool)) {
    f(e, l);
    match e {
        Expr::Builtin(_, a) => a.iter().for_each(|x| walk_expr(x, l, f)),
        Expr::Call(c, a) => {
            walk_expr(c, l, f);
            a.iter().for_each(|x| walk_expr(x, l, f));
        }
        Expr::Field(x, _) | Expr::Deref(x) | Expr::Unary(_, x) | Expr::PtrType(x) => {
            walk_expr(x, l, f)
        }
        Expr::Index(x, i) => {
            walk_expr(x, l, f);
            i.iter().for_each(|y| walk_expr(y, l, f));
        }
        Expr::Binary(_, a, b) => {
            walk_expr(a, l, f);
            walk_expr(b, l, f);
        }
        Expr::Struct(fs) => fs.iter().for_each(|(_, x)| walk_expr(x, l, f)),
        Expr::Init(t, fs) => {
            walk_expr(t, l, f);
            fs.iter().for_each(|(_, x)| walk_expr(x, l, f));
        }
        Expr::ArrayType(d, t) => {
            d.iter().for_each(|x| walk_expr(x, l, f));
            walk_expr(t, l, f);
        }
        Expr::FnType(p, r) => {
            p.iter().for_each(|x| walk_expr(x, l, f));
            walk_expr(r, l, f);
        }
        Expr::If(c, a, b) => {
            walk_expr(c, l, f);
            walk_expr(a, l, f);
            if let Some(b) = b {
                walk_expr(b, l, f);
            }
        }
        Expr::Access(_, ext, b) => {
            ext.iter().for_each(|x| walk_expr(x, l, f));
            walk_expr(b, l, f);
        }
        Expr::Stmt(s) => walk_stmt(s, l, f),
        Expr::Int(_) | Expr::Float(_) | Expr::Str(_) | Expr::Ident(_) | Expr::Enum(_) => {}
    }
}
