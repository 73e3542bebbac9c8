//! Comptime integer evaluation for the validator (literals, names bound in an environment,
//! arithmetic, comparisons, `and`/`or`, `if` expressions, `@as`).

use crate::parse::Expr;
use std::collections::HashMap;

/// Names with known integer (or boolean 0/1) values.
pub type Env = HashMap<String, i128>;

/// Evaluates `e`, or `None` when it is not a comptime integer under `env`.
pub fn int(e: &Expr, env: &Env) -> Option<i128> {
    Some(match e {
        Expr::Int(v) => *v,
        Expr::Ident(n) if n == "true" => 1,
        Expr::Ident(n) if n == "false" => 0,
        Expr::Ident(n) => *env.get(n)?,
        Expr::Builtin(b, a) if b == "as" && a.len() == 2 => int(&a[1], env)?,
        Expr::Unary("-", x) => -int(x, env)?,
        Expr::Unary("!", x) => i128::from(int(x, env)? == 0),
        Expr::If(c, t, f) => {
            if int(c, env)? != 0 {
                int(t, env)?
            } else {
                int(f.as_deref()?, env)?
            }
        }
        Expr::Binary(op, a, b) => {
            let (x, y) = (int(a, env)?, int(b, env)?);
            match *op {
                "+" => x + y,
                "-" => x - y,
                "*" => x * y,
                "/" if y != 0 => x / y,
                "%" if y != 0 => x.rem_euclid(y),
                "==" => i128::from(x == y),
                "!=" => i128::from(x != y),
                "<" => i128::from(x < y),
                ">" => i128::from(x > y),
                "<=" => i128::from(x <= y),
                ">=" => i128::from(x >= y),
                "and" => i128::from(x != 0 && y != 0),
                "or" => i128::from(x != 0 || y != 0),
                "<<" if (0..64).contains(&y) => x << y,
                ">>" if (0..64).contains(&y) => x >> y,
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// The named fields of a `.{ ... }` struct literal.
pub fn fields(e: &Expr) -> Option<Vec<(&str, &Expr)>> {
    match e {
        Expr::Struct(fs) => Some(
            fs.iter()
                .filter_map(|(n, x)| n.as_deref().map(|n| (n, x)))
                .collect(),
        ),
        _ => None,
    }
}

/// Field `name` of a struct literal.
pub fn field<'e>(e: &'e Expr, name: &str) -> Option<&'e Expr> {
    match e {
        Expr::Struct(fs) => fs
            .iter()
            .find(|(n, _)| n.as_deref() == Some(name))
            .map(|(_, x)| x),
        _ => None,
    }
}
