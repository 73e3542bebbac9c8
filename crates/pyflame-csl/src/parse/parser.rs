//! The recursive-descent parser (grammar: `crates/pyflame-csl/grammar.ebnf`).

use super::ast::{DeclKind, Expr, File, Stmt};
use super::lex::{lex, Tok, Token};

/// Parses CSL source text.
pub fn parse(src: &str) -> Result<File, String> {
    let toks = lex(src)?;
    let mut p = Parser { t: toks, i: 0 };
    let mut items = Vec::new();
    while !p.at_eof() {
        items.push(p.item()?);
    }
    Ok(File { items })
}

struct Parser {
    t: Vec<Token>,
    i: usize,
}

type R<T> = Result<T, String>;

impl Parser {
    fn peek(&self) -> &Tok {
        &self.t[self.i].tok
    }
    fn peek_at(&self, k: usize) -> &Tok {
        &self.t[(self.i + k).min(self.t.len() - 1)].tok
    }
    fn line(&self) -> usize {
        self.t[self.i].line
    }
    fn at_eof(&self) -> bool {
        matches!(self.peek(), Tok::Eof)
    }
    fn bump(&mut self) -> Tok {
        let t = self.t[self.i].tok.clone();
        if self.i + 1 < self.t.len() {
            self.i += 1;
        }
        t
    }
    fn is_p(&self, p: &str) -> bool {
        matches!(self.peek(), Tok::P(q) if *q == p)
    }
    fn is_kw(&self, k: &str) -> bool {
        matches!(self.peek(), Tok::Ident(q) if q == k)
    }
    fn eat_p(&mut self, p: &str) -> bool {
        let yes = self.is_p(p);
        if yes {
            self.bump();
        }
        yes
    }
    fn eat_kw(&mut self, k: &str) -> bool {
        let yes = self.is_kw(k);
        if yes {
            self.bump();
        }
        yes
    }
    fn err<T>(&self, what: &str) -> R<T> {
        Err(format!(
            "line {}: expected {what}, found {:?}",
            self.line(),
            self.peek()
        ))
    }
    fn expect_p(&mut self, p: &str) -> R<()> {
        if self.eat_p(p) {
            Ok(())
        } else {
            self.err(&format!("'{p}'"))
        }
    }
    fn ident(&mut self) -> R<String> {
        match self.bump() {
            Tok::Ident(s) => Ok(s),
            _ => {
                self.i -= 1;
                self.err("an identifier")
            }
        }
    }

    fn item(&mut self) -> R<Stmt> {
        while self.eat_kw("pub")
            || self.eat_kw("export")
            || self.eat_kw("extern")
            || self.eat_kw("inline")
        {}
        if self.is_kw("fn") || self.is_kw("task") {
            return self.func();
        }
        if self.eat_kw("layout") {
            return Ok(Stmt::Layout(self.block()?));
        }
        if self.is_kw("comptime") && matches!(self.peek_at(1), Tok::P("{")) {
            self.bump();
            return Ok(Stmt::Comptime(self.block()?));
        }
        if self.is_kw("const") || self.is_kw("var") || self.is_kw("param") {
            return self.decl();
        }
        self.err("a declaration, fn, task, comptime or layout block")
    }

    fn func(&mut self) -> R<Stmt> {
        let line = self.line();
        let task = self.is_kw("task");
        self.bump();
        let name = self.ident()?;
        self.expect_p("(")?;
        let mut params = Vec::new();
        while !self.eat_p(")") {
            self.eat_kw("comptime");
            let n = self.ident()?;
            self.expect_p(":")?;
            let ty = self.expr()?;
            params.push((n, ty));
            if !self.eat_p(",") {
                self.expect_p(")")?;
                break;
            }
        }
        let ret = self.prefix_no_init()?;
        let body = self.block()?;
        Ok(Stmt::Fn {
            name,
            params,
            ret,
            body,
            task,
            line,
        })
    }

    fn decl(&mut self) -> R<Stmt> {
        let line = self.line();
        let kind = match self.bump() {
            Tok::Ident(k) if k == "const" => DeclKind::Const,
            Tok::Ident(k) if k == "var" => DeclKind::Var,
            _ => DeclKind::Param,
        };
        let name = self.ident()?;
        let ty = if self.eat_p(":") {
            Some(self.prefix_type()?)
        } else {
            None
        };
        if self.eat_kw("align") {
            self.expect_p("(")?;
            self.expr()?;
            self.expect_p(")")?;
        }
        if self.eat_kw("linksection") {
            self.expect_p("(")?;
            self.expr()?;
            self.expect_p(")")?;
        }
        let init = if self.eat_p("=") {
            Some(self.expr()?)
        } else {
            None
        };
        self.expect_p(";")?;
        Ok(Stmt::Decl {
            kind,
            name,
            ty,
            init,
            line,
        })
    }

    /// A type in declaration position: stops before `align`/`=`.
    fn prefix_type(&mut self) -> R<Expr> {
        self.binary(0)
    }

    fn block(&mut self) -> R<Vec<Stmt>> {
        self.expect_p("{")?;
        let mut v = Vec::new();
        while !self.eat_p("}") {
            if self.at_eof() {
                return self.err("'}'");
            }
            v.push(self.stmt()?);
        }
        Ok(v)
    }

    fn body(&mut self) -> R<Stmt> {
        if self.is_p("{") {
            Ok(Stmt::Block(self.block()?))
        } else {
            self.stmt()
        }
    }

    /// Body of an `if`: a block, a control statement, or an expression whose `;` comes after
    /// the whole `if ... else ...` (returned flag).
    fn if_body(&mut self) -> R<(Stmt, bool)> {
        if self.is_p("{") {
            return Ok((Stmt::Block(self.block()?), false));
        }
        let control = [
            "if", "while", "for", "switch", "return", "break", "continue", "const", "var",
        ];
        if control.iter().any(|k| self.is_kw(k)) {
            return Ok((self.stmt()?, false));
        }
        Ok((self.simple_stmt()?, true))
    }

    fn captures(&mut self) -> R<Vec<String>> {
        let mut v = Vec::new();
        if self.eat_p("|") {
            while !self.eat_p("|") {
                self.eat_p("*");
                v.push(self.ident()?);
                self.eat_p(",");
            }
        }
        Ok(v)
    }

    fn stmt(&mut self) -> R<Stmt> {
        let line = self.line();
        if self.is_kw("const") || self.is_kw("var") {
            return self.decl();
        }
        if self.is_p("{") {
            return Ok(Stmt::Block(self.block()?));
        }
        if self.is_kw("comptime") && matches!(self.peek_at(1), Tok::P("{")) {
            self.bump();
            return Ok(Stmt::Comptime(self.block()?));
        }
        // labeled block or loop: `name: {`
        if matches!(self.peek(), Tok::Ident(_)) && matches!(self.peek_at(1), Tok::P(":")) {
            if matches!(self.peek_at(2), Tok::P("{")) {
                self.bump();
                self.bump();
                return Ok(Stmt::Block(self.block()?));
            }
            if matches!(self.peek_at(2), Tok::Ident(k) if k == "while" || k == "for") {
                self.bump();
                self.bump();
                return self.stmt();
            }
        }
        if self.eat_kw("inline") {
            return self.stmt();
        }
        if self.eat_kw("if") {
            self.expect_p("(")?;
            let c = self.expr()?;
            self.expect_p(")")?;
            self.captures()?;
            let (t, mut semi) = self.if_body()?;
            let e = if self.eat_kw("else") {
                self.captures()?;
                let (e, s2) = self.if_body()?;
                semi = s2;
                Some(Box::new(e))
            } else {
                None
            };
            if semi {
                self.expect_p(";")?;
            }
            return Ok(Stmt::If(c, Box::new(t), e));
        }
        if self.eat_kw("while") {
            self.expect_p("(")?;
            let c = self.expr()?;
            self.expect_p(")")?;
            self.captures()?;
            let cont = if self.eat_p(":") {
                self.expect_p("(")?;
                let s = self.simple_stmt()?;
                self.expect_p(")")?;
                Some(Box::new(s))
            } else {
                None
            };
            let b = self.body()?;
            return Ok(Stmt::While(c, cont, Box::new(b)));
        }
        if self.eat_kw("for") {
            self.expect_p("(")?;
            let it = self.expr()?;
            while self.eat_p(",") {
                self.expr()?;
            }
            self.expect_p(")")?;
            let caps = self.captures()?;
            let b = self.body()?;
            return Ok(Stmt::For(it, caps, Box::new(b)));
        }
        if self.is_kw("switch") {
            let s = self.switch()?;
            self.eat_p(";");
            return Ok(s);
        }
        if self.eat_kw("return") {
            let e = if self.is_p(";") {
                None
            } else {
                Some(self.expr()?)
            };
            self.expect_p(";")?;
            return Ok(Stmt::Return(e));
        }
        if self.is_kw("break") || self.is_kw("continue") {
            let Tok::Ident(k) = self.bump() else {
                return self.err("break");
            };
            if self.eat_p(":") {
                self.ident()?;
            }
            if !self.is_p(";") {
                self.expr()?;
            }
            self.expect_p(";")?;
            return Ok(Stmt::Jump(k));
        }
        let s = self.simple_stmt()?;
        self.expect_p(";")?;
        let _ = line;
        Ok(s)
    }

    /// Expression or assignment without the trailing `;`.
    fn simple_stmt(&mut self) -> R<Stmt> {
        let line = self.line();
        let e = self.expr()?;
        for op in [
            "=", "+=", "-=", "*=", "/=", "%=", "&=", "|=", "^=", "<<=", ">>=",
        ] {
            if self.is_p(op) {
                self.bump();
                let rhs = self.expr()?;
                let op: &'static str = match op {
                    "=" => "=",
                    "+=" => "+=",
                    "-=" => "-=",
                    "*=" => "*=",
                    "/=" => "/=",
                    "%=" => "%=",
                    "&=" => "&=",
                    "|=" => "|=",
                    "^=" => "^=",
                    "<<=" => "<<=",
                    _ => ">>=",
                };
                return Ok(Stmt::Assign(e, op, rhs));
            }
        }
        Ok(Stmt::Expr(e, line))
    }

    fn switch(&mut self) -> R<Stmt> {
        self.bump();
        self.expect_p("(")?;
        let e = self.expr()?;
        self.expect_p(")")?;
        self.expect_p("{")?;
        let mut arms = Vec::new();
        while !self.eat_p("}") {
            let mut pats = Vec::new();
            if !self.eat_kw("else") {
                loop {
                    let a = self.expr()?;
                    if self.eat_p("...") || self.eat_p("..") {
                        self.expr()?;
                    }
                    pats.push(a);
                    if !self.eat_p(",") || self.is_p("=>") {
                        break;
                    }
                }
            }
            self.expect_p("=>")?;
            self.captures()?;
            let body = if self.is_p("{") {
                Stmt::Block(self.block()?)
            } else if self.is_kw("return") || self.is_kw("break") || self.is_kw("continue") {
                // `=> return x,` : parse without the trailing ';'
                let Tok::Ident(k) = self.bump() else {
                    return self.err("keyword");
                };
                if !self.is_p(",") && !self.is_p("}") {
                    self.expr()?;
                }
                Stmt::Jump(k)
            } else {
                self.simple_stmt()?
            };
            arms.push((pats, body));
            if !self.eat_p(",") {
                self.expect_p("}")?;
                break;
            }
        }
        Ok(Stmt::Switch(e, arms))
    }

    fn expr(&mut self) -> R<Expr> {
        self.binary(0)
    }

    fn binary(&mut self, min: usize) -> R<Expr> {
        const LEVELS: [&[&str]; 9] = [
            &["or"],
            &["and"],
            &["==", "!=", "<", ">", "<=", ">="],
            &["|", "orelse"],
            &["^"],
            &["&"],
            &["<<", ">>"],
            &["+", "-", "++", "+%", "-%"],
            &["*", "/", "%", "**", "*%", "||"],
        ];
        if min >= LEVELS.len() {
            return self.prefix();
        }
        let mut lhs = self.binary(min + 1)?;
        loop {
            let op = LEVELS[min].iter().find(|o| match self.peek() {
                Tok::P(p) => p == *o,
                Tok::Ident(k) => k == *o,
                _ => false,
            });
            let Some(&op) = op else { break };
            self.bump();
            let rhs = self.binary(min + 1)?;
            lhs = Expr::Binary(op, Box::new(lhs), Box::new(rhs));
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> R<Expr> {
        for op in ["!", "-", "~", "&", "-%"] {
            if self.is_p(op) {
                self.bump();
                let op: &'static str = match op {
                    "!" => "!",
                    "-" => "-",
                    "~" => "~",
                    "&" => "&",
                    _ => "-%",
                };
                return Ok(Expr::Unary(op, Box::new(self.prefix()?)));
            }
        }
        if self.eat_p("*") {
            self.eat_kw("const");
            self.eat_kw("volatile");
            return Ok(Expr::PtrType(Box::new(self.prefix()?)));
        }
        if self.eat_p("?") {
            return self.prefix();
        }
        if self.eat_kw("comptime") {
            return self.prefix();
        }
        if self.eat_kw("try") {
            return self.prefix();
        }
        let p = self.primary()?;
        self.postfix(p)
    }

    fn fields(&mut self) -> R<Vec<(Option<String>, Expr)>> {
        // after '{'
        let mut v = Vec::new();
        while !self.eat_p("}") {
            if self.is_p(".")
                && matches!(self.peek_at(1), Tok::Ident(_))
                && matches!(self.peek_at(2), Tok::P("="))
            {
                self.bump();
                let n = self.ident()?;
                self.bump();
                v.push((Some(n), self.expr()?));
            } else {
                v.push((None, self.expr()?));
            }
            if !self.eat_p(",") {
                self.expect_p("}")?;
                break;
            }
        }
        Ok(v)
    }

    fn args(&mut self) -> R<Vec<Expr>> {
        let mut v = Vec::new();
        while !self.eat_p(")") {
            v.push(self.expr()?);
            if !self.eat_p(",") {
                self.expect_p(")")?;
                break;
            }
        }
        Ok(v)
    }

    fn postfix(&mut self, mut e: Expr) -> R<Expr> {
        loop {
            if self.eat_p("(") {
                let a = self.args()?;
                e = Expr::Call(Box::new(e), a);
            } else if self.eat_p(".*") {
                e = Expr::Deref(Box::new(e));
            } else if self.is_p(".") && matches!(self.peek_at(1), Tok::Ident(_)) {
                self.bump();
                let n = self.ident()?;
                e = Expr::Field(Box::new(e), n);
            } else if self.eat_p("[") {
                let mut idx = vec![self.expr()?];
                if self.eat_p("..") {
                    if !self.is_p("]") {
                        self.expr()?;
                    }
                } else {
                    while self.eat_p(",") {
                        idx.push(self.expr()?);
                    }
                }
                self.expect_p("]")?;
                e = Expr::Index(Box::new(e), idx);
            } else if self.is_p("{")
                && (matches!(e, Expr::ArrayType(..))
                    || (matches!(e, Expr::Ident(_) | Expr::Field(..))
                        && matches!(self.peek_at(1), Tok::P(".") | Tok::P("}"))
                        && !matches!(self.peek_at(2), Tok::P("{"))))
            {
                self.bump();
                let f = self.fields()?;
                e = Expr::Init(Box::new(e), f);
            } else {
                return Ok(e);
            }
        }
    }

    fn primary(&mut self) -> R<Expr> {
        let line = self.line();
        match self.peek().clone() {
            Tok::Int(v) => {
                self.bump();
                Ok(Expr::Int(v))
            }
            Tok::Float(v) => {
                self.bump();
                Ok(Expr::Float(v))
            }
            Tok::Char(v) => {
                self.bump();
                Ok(Expr::Int(i128::from(v)))
            }
            Tok::Str(s) => {
                self.bump();
                Ok(Expr::Str(s))
            }
            Tok::Builtin(n) => {
                self.bump();
                self.expect_p("(")?;
                let a = self.args()?;
                Ok(Expr::Builtin(n, a))
            }
            Tok::P("(") => {
                self.bump();
                let e = self.expr()?;
                self.expect_p(")")?;
                Ok(e)
            }
            Tok::P("{") => {
                self.bump();
                Ok(Expr::Struct(self.fields()?))
            }
            Tok::P(".") => {
                self.bump();
                if self.eat_p("{") {
                    return Ok(Expr::Struct(self.fields()?));
                }
                Ok(Expr::Enum(self.ident()?))
            }
            Tok::P("[") => {
                self.bump();
                let mut dims = Vec::new();
                if self.eat_p("*") {
                    self.expect_p("]")?;
                    self.eat_kw("const");
                    return Ok(Expr::PtrType(Box::new(self.prefix()?)));
                }
                while !self.eat_p("]") {
                    dims.push(self.expr()?);
                    if !self.eat_p(",") {
                        self.expect_p("]")?;
                        break;
                    }
                }
                self.eat_kw("const");
                let elem = self.prefix_no_init()?;
                Ok(Expr::ArrayType(dims, Box::new(elem)))
            }
            Tok::P("|") => {
                let caps = self.captures()?;
                self.expect_p("{")?;
                let mut ext = Vec::new();
                while !self.eat_p("}") {
                    ext.push(self.expr()?);
                    if !self.eat_p(",") {
                        self.expect_p("}")?;
                        break;
                    }
                }
                self.expect_p("->")?;
                let body = self.expr()?;
                Ok(Expr::Access(caps, ext, Box::new(body)))
            }
            Tok::Ident(k) if k == "if" => {
                self.bump();
                self.expect_p("(")?;
                let c = self.expr()?;
                self.expect_p(")")?;
                let t = self.expr()?;
                let e = if self.eat_kw("else") {
                    Some(Box::new(self.expr()?))
                } else {
                    None
                };
                Ok(Expr::If(Box::new(c), Box::new(t), e))
            }
            Tok::Ident(k) if k == "fn" || k == "task" => {
                self.bump();
                self.expect_p("(")?;
                let mut ps = Vec::new();
                while !self.eat_p(")") {
                    if matches!(self.peek_at(1), Tok::P(":")) {
                        self.bump();
                        self.bump();
                    }
                    ps.push(self.expr()?);
                    if !self.eat_p(",") {
                        self.expect_p(")")?;
                        break;
                    }
                }
                let r = self.prefix_no_init()?;
                Ok(Expr::FnType(ps, Box::new(r)))
            }
            Tok::Ident(k) if k == "switch" => Ok(Expr::Stmt(Box::new(self.switch()?))),
            Tok::Ident(k) if k == "struct" || k == "enum" || k == "union" => {
                self.bump();
                if self.eat_p("(") {
                    self.expr()?;
                    self.expect_p(")")?;
                }
                self.expect_p("{")?;
                let mut items = Vec::new();
                while !self.eat_p("}") {
                    if self.is_kw("const")
                        || self.is_kw("var")
                        || self.is_kw("fn")
                        || self.is_kw("pub")
                    {
                        items.push(self.item()?);
                        continue;
                    }
                    let n = self.ident()?;
                    if self.eat_p(":") {
                        self.expr()?;
                    }
                    if self.eat_p("=") {
                        self.expr()?;
                    }
                    items.push(Stmt::Expr(Expr::Ident(n), line));
                    if !self.eat_p(",") {
                        self.expect_p("}")?;
                        break;
                    }
                }
                Ok(Expr::Stmt(Box::new(Stmt::Block(items))))
            }
            Tok::Ident(k) => {
                self.bump();
                Ok(Expr::Ident(k))
            }
            _ => self.err("an expression"),
        }
    }

    /// A type after `[..]` or `fn(..)`: prefix and postfix without `{` initializers.
    fn prefix_no_init(&mut self) -> R<Expr> {
        if self.eat_p("*") {
            self.eat_kw("const");
            return Ok(Expr::PtrType(Box::new(self.prefix_no_init()?)));
        }
        let mut e = self.primary()?;
        while self.is_p(".") && matches!(self.peek_at(1), Tok::Ident(_)) {
            self.bump();
            e = Expr::Field(Box::new(e), self.ident()?);
        }
        if self.eat_p("(") {
            let a = self.args()?;
            e = Expr::Call(Box::new(e), a);
        }
        Ok(e)
    }
}
