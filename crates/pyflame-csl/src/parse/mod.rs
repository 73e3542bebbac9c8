//! A recursive-descent parser for CSL. The grammar it implements is written down in
//! `crates/pyflame-csl/grammar.ebnf`; it accepts everything the generator emits and is
//! checked against the public Cerebras csl-examples corpus (all 164 files parse; see
//! `docs/csl.md`).
//!
//! ```
//! let f = pyflame_csl::parse::parse("const x: i16 = 3;\nfn f() void { @fadds(a, b, c); }").unwrap();
//! assert_eq!(f.items.len(), 2);
//! ```

pub mod ast;
pub mod lex;
mod parser;

pub use ast::{walk, DeclKind, Expr, File, Stmt};
pub use parser::parse;
