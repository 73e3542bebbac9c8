//! CSL text for each phase: DSD builtins, `@map` callbacks, loops over tile rows, and async
//! fabric DSD operations that activate the phase sequencer when they complete.

use super::lit;
use crate::plan::{Axis, BFn, Local, Phase, Plan, RFn, ReduceKind, Role, Src, UFn};

/// `mem1d_dsd` over the first `n` elements of `name`.
pub fn dsd(name: &str, n: usize) -> String {
    format!("@get_dsd(mem1d_dsd, .{{ .base_address = &{name}, .extent = {n} }})")
}

fn inc(d: &str, off: &str) -> String {
    format!("@increment_dsd_offset({d}, {off}, f32)")
}

/// Name of the `@map` callback for a unary function, if it needs one.
pub fn ucallback(f: UFn) -> Option<&'static str> {
    Some(match f {
        UFn::Exp => "pf_exp",
        UFn::Log => "pf_log",
        UFn::Sqrt => "pf_sqrt",
        UFn::Tanh => "pf_tanh",
        UFn::Sigmoid => "pf_sigmoid",
        UFn::Gelu => "pf_gelu",
        UFn::GeluTanh => "pf_gelu_tanh",
        UFn::Silu => "pf_silu",
        UFn::Recip => "pf_recip",
        UFn::Sin => "pf_sin",
        UFn::Cos => "pf_cos",
        UFn::Floor => "pf_floor",
        UFn::Ceil => "pf_ceil",
        UFn::Sign => "pf_sign",
        UFn::Erf => "pf_erf",
        UFn::Relu | UFn::Neg | UFn::Abs | UFn::Copy => return None,
    })
}

/// Name of the `@map` callback for a binary function without a DSD instruction.
pub fn bcallback(f: BFn) -> Option<&'static str> {
    Some(match f {
        BFn::Div => "pf_div",
        BFn::Min => "pf_min",
        BFn::Pow => "pf_pow",
        BFn::Eq => "pf_eq",
        BFn::Ne => "pf_ne",
        BFn::Lt => "pf_lt",
        BFn::Le => "pf_le",
        BFn::Gt => "pf_gt",
        BFn::Ge => "pf_ge",
        _ => return None,
    })
}

/// CSL definitions of every callback (only those used are emitted).
pub fn callback_def(name: &str) -> &'static str {
    match name {
        "pf_exp" => "fn pf_exp(x: f32) f32 { return math.exp_f32(x); }",
        "pf_log" => "fn pf_log(x: f32) f32 { return math.log_f32(x); }",
        "pf_sqrt" => "fn pf_sqrt(x: f32) f32 { return math.sqrt_f32(x); }",
        "pf_tanh" => "fn pf_tanh(x: f32) f32 {\n  const e = math.exp_f32(2.0 * x);\n  return 1.0 - 2.0 / (e + 1.0);\n}",
        "pf_sigmoid" => "fn pf_sigmoid(x: f32) f32 { return 1.0 / (1.0 + math.exp_f32(-x)); }",
        "pf_silu" => "fn pf_silu(x: f32) f32 { return x / (1.0 + math.exp_f32(-x)); }",
        "pf_recip" => "fn pf_recip(x: f32) f32 { return 1.0 / x; }",
        "pf_erf" => "// erf by Abramowitz & Stegun 7.1.26 (|error| < 1.5e-7)\nfn pf_erf(x: f32) f32 {\n  const a = if (x < 0.0) -x else x;\n  const t = 1.0 / (1.0 + 0.3275911 * a);\n  const p = t * (0.2548296 + t * (-0.28449674 + t * (1.4214137 + t * (-1.4531521 + t * 1.0614054))));\n  const y = 1.0 - p * math.exp_f32(-a * a);\n  return if (x < 0.0) -y else y;\n}",
        "pf_gelu" => "fn pf_gelu(x: f32) f32 { return 0.5 * x * (1.0 + pf_erf(x * 0.70710678)); }",
        "pf_sin" => "fn pf_sin(x: f32) f32 { return math.sin_f32(x); }",
        "pf_cos" => "fn pf_cos(x: f32) f32 { return math.cos_f32(x); }",
        "pf_floor" => "// |x| >= 2^23 (and inf, NaN) is already integral; otherwise truncate through i32\nfn pf_floor(x: f32) f32 {\n  if (!(x > -8388608.0 and x < 8388608.0)) {\n    return x;\n  }\n  const t = @as(f32, @as(i32, x));\n  return if (t > x) t - 1.0 else t;\n}",
        "pf_ceil" => "fn pf_ceil(x: f32) f32 { return -pf_floor(-x); }",
        "pf_sign" => "fn pf_sign(x: f32) f32 { return if (x > 0.0) 1.0 else (if (x < 0.0) -1.0 else x); }",
        "pf_gelu_tanh" => "fn pf_gelu_tanh(x: f32) f32 {\n  const e = math.exp_f32(2.0 * (0.7978846 * (x + 0.044715 * x * x * x)));\n  return 0.5 * x * (2.0 - 2.0 / (e + 1.0));\n}",
        "pf_div" => "fn pf_div(a: f32, b: f32) f32 { return a / b; }",
        "pf_min" => "fn pf_min(a: f32, b: f32) f32 { return if (a < b) a else b; }",
        "pf_pow" => "fn pf_pow(a: f32, b: f32) f32 { return math.pow_f32(a, b); }",
        "pf_eq" => "fn pf_eq(a: f32, b: f32) f32 { return if (a == b) 1.0 else 0.0; }",
        "pf_ne" => "fn pf_ne(a: f32, b: f32) f32 { return if (a != b) 1.0 else 0.0; }",
        "pf_lt" => "fn pf_lt(a: f32, b: f32) f32 { return if (a < b) 1.0 else 0.0; }",
        "pf_le" => "fn pf_le(a: f32, b: f32) f32 { return if (a <= b) 1.0 else 0.0; }",
        "pf_gt" => "fn pf_gt(a: f32, b: f32) f32 { return if (a > b) 1.0 else 0.0; }",
        "pf_ge" => "fn pf_ge(a: f32, b: f32) f32 { return if (a >= b) 1.0 else 0.0; }",
        _ => "",
    }
}

fn builtin(f: BFn) -> Option<&'static str> {
    Some(match f {
        BFn::Add => "@fadds",
        BFn::Sub => "@fsubs",
        BFn::Mul => "@fmuls",
        BFn::Max => "@fmaxs",
        _ => return None,
    })
}

fn scalar_expr(f: BFn, a: &str, b: &str) -> String {
    match f {
        BFn::Add => format!("{a} + {b}"),
        BFn::Sub => format!("{a} - {b}"),
        BFn::Mul => format!("{a} * {b}"),
        BFn::Max => format!("if ({a} > {b}) {a} else {b}"),
        BFn::Div => format!("pf_div({a}, {b})"),
        BFn::Min => format!("pf_min({a}, {b})"),
        BFn::Pow => format!("pf_pow({a}, {b})"),
        f => format!("{}({a}, {b})", bcallback(f).unwrap_or("pf_eq")),
    }
}

fn row_loop(rows: usize, cols: usize, body: &str) -> String {
    if rows == 1 {
        return format!("  {{\n    const r: u16 = 0;\n    const o: i16 = 0;\n{body}  }}\n");
    }
    format!(
        "  var r: u16 = 0;\n  while (r < {rows}) : (r += 1) {{\n    const o: i16 = @as(i16, r * {cols});\n{body}  }}\n"
    )
}

/// CSL statements for a local op.
pub fn local(plan: &Plan, op: &Local) -> String {
    let name = |b: usize| plan.bufs[b].name.as_str();
    match *op {
        Local::Gather(ref g) => super::gather::gather(plan, g),
        Local::Map1 { f, dst, src, n } => {
            let (d, s) = (dsd(name(dst), n), dsd(name(src), n));
            match f {
                UFn::Relu => format!("  @fmaxs({d}, {s}, 0.0);\n"),
                UFn::Neg => format!("  @fnegs({d}, {s});\n"),
                UFn::Abs => format!("  @fabss({d}, {s});\n"),
                UFn::Copy => format!("  @fmovs({d}, {s});\n"),
                _ => format!("  @map({}, {s}, {d});\n", ucallback(f).unwrap_or("pf_missing")),
            }
        }
        Local::Fill { dst, v, n } => format!("  @fmovs({}, {});\n", dsd(name(dst), n), lit(v)),
        Local::Map2 {
            f,
            dst,
            a,
            b,
            rows,
            cols,
        } => map2(plan, f, dst, a, b, rows, cols),
        Local::Reduce {
            f,
            dst,
            src,
            rows,
            cols,
            kind,
        } => {
            let init = match f {
                RFn::Sum => "0.0",
                RFn::Max => "math.NEGATIVE_INF_f32",
            };
            let op = if f == RFn::Sum { "@fadds" } else { "@fmaxs" };
            let (d, s) = (name(dst), name(src));
            match kind {
                ReduceKind::All => format!(
                    "  {d}[0] = {init};\n  {op}(&{d}[0], {d}[0], {});\n",
                    dsd(s, rows * cols)
                ),
                ReduceKind::OverCols => format!(
                    "  @fmovs({}, {init});\n{}",
                    dsd(d, rows),
                    row_loop(
                        rows,
                        cols,
                        &format!("    {op}(&{d}[r], {d}[r], {});\n", inc(&dsd(s, cols), "o"))
                    )
                ),
                ReduceKind::OverRows => format!(
                    "  @fmovs({}, {init});\n{}",
                    dsd(d, cols),
                    row_loop(
                        rows,
                        cols,
                        &format!(
                            "    {op}({dv}, {dv}, {});\n",
                            inc(&dsd(s, cols), "o"),
                            dv = dsd(d, cols)
                        )
                    )
                ),
            }
        }
        Local::Gemm {
            c,
            a,
            b,
            m,
            k,
            n,
            lda,
            aoff,
            boff,
            zero,
        } => {
            let mut s = String::new();
            if zero {
                s += &format!("  @fmovs({}, 0.0);\n", dsd(name(c), m * n));
            }
            s += &format!(
                "  // C[{m}x{n}] += A[:, {aoff}..{}] * B[{boff}..{}, :], one @fmacs per (row, k)\n",
                aoff + k,
                boff + k
            );
            s += &format!("  var i: u16 = 0;\n  while (i < {m}) : (i += 1) {{\n");
            s += &format!(
                "    const c_row = {};\n",
                inc(&dsd(name(c), n), &format!("@as(i16, i * {n})"))
            );
            s += &format!("    var kk: u16 = 0;\n    while (kk < {k}) : (kk += 1) {{\n");
            s += &format!(
                "      const b_row = {};\n",
                inc(&dsd(name(b), n), &format!("@as(i16, (kk + {boff}) * {n})"))
            );
            s += &format!(
                "      @fmacs(c_row, c_row, b_row, {}[i * {lda} + {aoff} + kk]);\n    }}\n  }}\n",
                name(a)
            );
            s
        }
        Local::Transpose {
            dst,
            src,
            rows,
            cols,
        } => format!(
            "  var r: u16 = 0;\n  while (r < {rows}) : (r += 1) {{\n    var c: u16 = 0;\n    while (c < {cols}) : (c += 1) {{\n      {}[c * {rows} + r] = {}[r * {cols} + c];\n    }}\n  }}\n",
            name(dst),
            name(src)
        ),
    }
}

fn map2(plan: &Plan, f: BFn, dst: usize, a: Src, b: Src, rows: usize, cols: usize) -> String {
    let name = |b: usize| plan.bufs[b].name.clone();
    let is_vec = |s: Src| matches!(s, Src::RowVec(_) | Src::ColVec(_));
    let loopy = is_vec(a) || is_vec(b);
    let scalar_like = |s: Src| matches!(s, Src::ColVec(_) | Src::Scalar(_) | Src::Imm(_));
    let operand = |s: Src| -> String {
        match s {
            Src::Tile(x) if loopy => inc(&dsd(&name(x), cols), "o"),
            Src::Tile(x) => dsd(&name(x), rows * cols),
            Src::RowVec(x) => dsd(&name(x), cols),
            Src::ColVec(x) => format!("{}[r]", name(x)),
            Src::Scalar(x) => format!("{}[0]", name(x)),
            Src::Imm(v) => lit(v),
        }
    };
    let d = if loopy {
        inc(&dsd(&name(dst), cols), "o")
    } else {
        dsd(&name(dst), rows * cols)
    };
    let (ta, tb) = (operand(a), operand(b));
    let stmt = if scalar_like(a) && scalar_like(b) {
        format!("@fmovs({d}, {});", scalar_expr(f, &ta, &tb))
    } else if let Some(bi) = builtin(f) {
        format!("{bi}({d}, {ta}, {tb});")
    } else {
        format!(
            "@map({}, {ta}, {tb}, {d});",
            bcallback(f).unwrap_or("pf_missing")
        )
    };
    if loopy {
        row_loop(rows, cols, &format!("    {stmt}\n"))
    } else {
        format!("  {stmt}\n")
    }
}

fn fab_in(c: &str, n: usize, q: u8) -> String {
    format!("@get_dsd(fabin_dsd, .{{ .fabric_color = {c}, .extent = {n}, .input_queue = @get_input_queue({q}) }})")
}

fn fab_out(c: &str, n: usize, q: u8) -> String {
    format!("@get_dsd(fabout_dsd, .{{ .fabric_color = {c}, .extent = {n}, .output_queue = @get_output_queue({q}) }})")
}

const ASYNC: &str = ".{ .async = true, .activate = advance_id }";

/// Name of the color a PE receives (`in`) or sends on for a role; chain roles resolve the
/// checkerboard parity through module-level constants.
pub fn role_color(role: Role, sending: bool) -> String {
    match role {
        Role::ChainA(a) | Role::ChainB(a) => {
            let ax = if a == Axis::Row { "row" } else { "col" };
            format!("{ax}_chain_{}", if sending { "out" } else { "in" })
        }
        other => format!("c_{}", other.ident()),
    }
}

/// CSL statements of a fabric phase (ending in an async op or `@activate`).
pub fn fabric(plan: &Plan, ph: &Phase) -> String {
    let name = |b: usize| plan.bufs[b].name.clone();
    let (fw, fh) = plan.phase_rect(ph).unwrap_or((1, 1));
    let (axis, pos, last) = match ph {
        Phase::Chain { axis, .. } | Phase::BcastBack { axis, .. } | Phase::ToEdge { axis, .. } => {
            if *axis == Axis::Row {
                (*axis, "px", fw - 1)
            } else {
                (*axis, "py", fh - 1)
            }
        }
        Phase::Local { .. } => return String::new(),
    };
    let body = match *ph {
        Phase::Chain { f, buf, n, .. } => {
            let q = Role::ChainA(axis).queue();
            let (cin, cout) = (
                role_color(Role::ChainA(axis), false),
                role_color(Role::ChainA(axis), true),
            );
            let op = if f == RFn::Sum { "@fadds" } else { "@fmaxs" };
            let b = dsd(&name(buf), n);
            format!(
                "    if ({pos} == 0) {{\n      @fmovs({}, {b}, {ASYNC});\n    }} else if ({pos} == {last}) {{\n      {op}({b}, {b}, {}, {ASYNC});\n    }} else {{\n      {op}({}, {b}, {}, {ASYNC});\n    }}\n",
                fab_out(&cout, n, q),
                fab_in(&cin, n, q),
                fab_out(&cout, n, q),
                fab_in(&cin, n, q),
            )
        }
        Phase::BcastBack { buf, n, .. } => {
            let role = Role::Back(axis);
            let (c, q) = (role_color(role, true), role.queue());
            let b = dsd(&name(buf), n);
            format!(
                "    if ({pos} == {last}) {{\n      @fmovs({}, {b}, {ASYNC});\n    }} else {{\n      @fmovs({b}, {}, {ASYNC});\n    }}\n",
                fab_out(&c, n, q),
                fab_in(&c, n, q)
            )
        }
        Phase::ToEdge {
            src, dst, n, root, ..
        } => {
            let role = Role::Edge(axis);
            let (c, q) = (role_color(role, true), role.queue());
            let (s, d) = (dsd(&name(src), n), dsd(&name(dst), n));
            if root == last {
                format!("    if ({pos} == {last}) {{\n      @fmovs({d}, {s});\n    }}\n    @activate(advance_id);\n")
            } else {
                format!(
                    "    if ({pos} == {root}) {{\n      @fmovs({}, {s}, {ASYNC});\n    }} else if ({pos} == {last}) {{\n      @fmovs({d}, {}, {ASYNC});\n    }} else {{\n      @activate(advance_id);\n    }}\n",
                    fab_out(&c, n, q),
                    fab_in(&c, n, q)
                )
            }
        }
        Phase::Local { .. } => String::new(),
    };
    if (fw, fh) == (plan.width, plan.height) {
        body.lines()
            .map(|l| format!("{}\n", l.strip_prefix("  ").unwrap_or(l)))
            .collect()
    } else {
        format!("  if (px < {fw} and py < {fh}) {{\n{body}  }} else {{\n    @activate(advance_id);\n  }}\n")
    }
}
