//! Elementwise lowering: unary functions (DSD builtins or `@map`) and binary arithmetic with
//! broadcasting against scalars, row vectors and column vectors.

use super::{std_placement, Lowerer, Val};
use crate::plan::{BFn, Local, Placement, Src, UFn};
use pyflame_core::numel;
use pyflame_ir::{BinaryOp, UnaryOp};

/// The plan function for a unary op, if it is lowered.
pub(crate) fn ufn(u: UnaryOp) -> Option<UFn> {
    Some(match u {
        UnaryOp::Relu => UFn::Relu,
        UnaryOp::Neg => UFn::Neg,
        UnaryOp::Abs => UFn::Abs,
        UnaryOp::Exp => UFn::Exp,
        UnaryOp::Log => UFn::Log,
        UnaryOp::Sqrt => UFn::Sqrt,
        UnaryOp::Tanh => UFn::Tanh,
        UnaryOp::Sigmoid => UFn::Sigmoid,
        UnaryOp::Gelu => UFn::Gelu,
        UnaryOp::GeluTanh => UFn::GeluTanh,
        UnaryOp::Silu => UFn::Silu,
        UnaryOp::Reciprocal => UFn::Recip,
        UnaryOp::Sin => UFn::Sin,
        UnaryOp::Cos => UFn::Cos,
        UnaryOp::Floor => UFn::Floor,
        UnaryOp::Ceil => UFn::Ceil,
        UnaryOp::Sign => UFn::Sign,
        UnaryOp::Erf => UFn::Erf,
        _ => return None,
    })
}

/// Scalar semantics of a unary function for the simulator: f32 in, f32 out, with the same
/// formulas as the generated CSL callbacks (tanh through exp, erf by A&S 7.1.26).
pub fn apply_u(f: UFn, x: f32) -> f32 {
    match f {
        UFn::Relu => x.max(0.0),
        UFn::Neg => -x,
        UFn::Abs => x.abs(),
        UFn::Copy => x,
        UFn::Exp => x.exp(),
        UFn::Log => x.ln(),
        UFn::Sqrt => x.sqrt(),
        UFn::Tanh => 1.0 - 2.0 / ((2.0 * x).exp() + 1.0),
        UFn::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UFn::Gelu => 0.5 * x * (1.0 + erf_f32(x * std::f32::consts::FRAC_1_SQRT_2)),
        UFn::GeluTanh => {
            let e = (2.0 * (0.797_884_6 * (x + 0.044715 * x * x * x))).exp();
            0.5 * x * (2.0 - 2.0 / (e + 1.0))
        }
        UFn::Silu => x / (1.0 + (-x).exp()),
        UFn::Recip => 1.0 / x,
        UFn::Sin => x.sin(),
        UFn::Cos => x.cos(),
        UFn::Floor => floor_f32(x),
        UFn::Ceil => -floor_f32(-x),
        UFn::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        UFn::Erf => erf_f32(x),
    }
}

/// floor as the generated CSL computes it: values with |x| >= 2^23 (and inf, NaN) are
/// already integral; others go through a truncating conversion to i32, minus one when the
/// truncation rounded up.
pub fn floor_f32(x: f32) -> f32 {
    if !(x > -8_388_608.0 && x < 8_388_608.0) {
        return x;
    }
    let t = (x as i32) as f32;
    if t > x {
        t - 1.0
    } else {
        t
    }
}

/// erf by Abramowitz & Stegun 7.1.26; the generated CSL uses the same formula. Absolute
/// error below 1.5e-7.
pub fn erf_f32(x: f32) -> f32 {
    let s = x.signum();
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = t
        * (0.254_829_6
            + t * (-0.284_496_74 + t * (1.421_413_7 + t * (-1.453_152_1 + t * 1.061_405_4))));
    s * (1.0 - poly * (-a * a).exp())
}

/// Scalar reference semantics of a binary function.
pub fn apply_b(f: BFn, a: f32, b: f32) -> f32 {
    match f {
        BFn::Add => a + b,
        BFn::Sub => a - b,
        BFn::Mul => a * b,
        BFn::Max => {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.max(b)
            }
        }
        BFn::Min => {
            if a.is_nan() || b.is_nan() {
                f32::NAN
            } else {
                a.min(b)
            }
        }
        BFn::Div => a / b,
        BFn::Pow => a.powf(b),
        BFn::Eq => mask(a == b),
        BFn::Ne => mask(a != b),
        BFn::Lt => mask(a < b),
        BFn::Le => mask(a <= b),
        BFn::Gt => mask(a > b),
        BFn::Ge => mask(a >= b),
    }
}

/// A comparison result as the float mask the backend stores for bool tensors.
fn mask(c: bool) -> f32 {
    if c {
        1.0
    } else {
        0.0
    }
}

/// Whether a binary op is a comparison (bool result, lowered as a 0/1 f32 mask).
pub(crate) fn is_comparison(b: BinaryOp) -> bool {
    matches!(
        b,
        BinaryOp::Eq | BinaryOp::Ne | BinaryOp::Lt | BinaryOp::Le | BinaryOp::Gt | BinaryOp::Ge
    )
}

pub(crate) fn unary(l: &mut Lowerer, i: usize, u: UnaryOp, j: usize) {
    let Some(f) = ufn(u) else {
        return l.fail(i, format!("no CSL lowering rule for unary '{}'", u.name()));
    };
    let node = l.graph.nodes[i].clone();
    let pl = match l.vals[j].clone() {
        Some(Val::Imm(v)) => {
            l.vals[i] = Some(Val::Imm(apply_u(f, v)));
            return;
        }
        Some(Val::Dev { pl, .. }) => pl,
        _ => std_placement(&node.shape, node.layout),
    };
    if !pl.divides() {
        return l.fail(i, not_divisible(&pl));
    }
    let Some(src) = l.dev(j, pl) else { return };
    let dst = l.temp(pl, u.name());
    l.local(
        Local::Map1 {
            f,
            dst,
            src,
            n: pl.tile_len(),
        },
        pl,
    );
    l.vals[i] = Some(Val::Dev { buf: dst, pl });
}

pub(crate) fn not_divisible(pl: &Placement) -> String {
    format!(
        "a {}x{} matrix does not divide evenly over a {}x{} PE rectangle",
        pl.rows, pl.cols, pl.pr, pl.pc
    )
}

/// A cast of a float32 tensor to bool: the 0/1 mask `x != 0` (NaN is true, as on the CPU).
pub(crate) fn to_mask(l: &mut Lowerer, i: usize, j: usize) {
    let node = l.graph.nodes[i].clone();
    let pl = match l.vals[j].clone() {
        Some(Val::Imm(v)) => {
            l.vals[i] = Some(Val::Imm(apply_b(BFn::Ne, v, 0.0)));
            return;
        }
        Some(Val::Dev { pl, .. }) => pl,
        _ => std_placement(&node.shape, node.layout),
    };
    if !pl.divides() {
        return l.fail(i, not_divisible(&pl));
    }
    let Some(src) = l.dev(j, pl) else { return };
    let dst = l.temp(pl, "mask");
    l.local(
        Local::Map2 {
            f: BFn::Ne,
            dst,
            a: Src::Tile(src),
            b: Src::Imm(0.0),
            rows: pl.tile_rows(),
            cols: pl.tile_cols(),
        },
        pl,
    );
    l.vals[i] = Some(Val::Dev { buf: dst, pl });
}

/// How an operand broadcasts against the output.
enum Pattern {
    Same,
    Scalar,
    Row,
    Col,
    General,
}

fn pattern(s: &[usize], o: &[usize]) -> Pattern {
    if numel(s) == 1 {
        return Pattern::Scalar;
    }
    if s == o {
        return Pattern::Same;
    }
    let mut sp = vec![1; o.len() - s.len().min(o.len())];
    sp.extend_from_slice(s);
    let n = o.len();
    if n >= 1 && sp[..n - 1].iter().all(|&d| d == 1) && sp[n - 1] == o[n - 1] {
        return Pattern::Row;
    }
    if n >= 2 && sp[n - 1] == 1 && sp[..n - 1] == o[..n - 1] {
        return Pattern::Col;
    }
    Pattern::General
}

/// Broadcasts row-major `data` of shape `s` to shape `o`.
fn expand_data(data: &[f32], s: &[usize], o: &[usize]) -> Vec<f32> {
    let n = o.len();
    let mut sp = vec![1; n - s.len()];
    sp.extend_from_slice(s);
    let st = pyflame_core::contiguous_strides(&sp);
    let total = numel(o);
    let mut out = Vec::with_capacity(total);
    let mut idx = vec![0usize; n];
    for _ in 0..total {
        let off: isize = (0..n)
            .map(|d| {
                if sp[d] == 1 {
                    0
                } else {
                    idx[d] as isize * st[d]
                }
            })
            .sum();
        out.push(data[off as usize]);
        for d in (0..n).rev() {
            idx[d] += 1;
            if idx[d] < o[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

fn bfn(b: BinaryOp) -> Option<BFn> {
    Some(match b {
        BinaryOp::Add => BFn::Add,
        BinaryOp::Sub => BFn::Sub,
        BinaryOp::Mul => BFn::Mul,
        BinaryOp::Div => BFn::Div,
        BinaryOp::Maximum => BFn::Max,
        BinaryOp::Minimum => BFn::Min,
        BinaryOp::Pow => BFn::Pow,
        BinaryOp::Eq => BFn::Eq,
        BinaryOp::Ne => BFn::Ne,
        BinaryOp::Lt => BFn::Lt,
        BinaryOp::Le => BFn::Le,
        BinaryOp::Gt => BFn::Gt,
        BinaryOp::Ge => BFn::Ge,
        _ => return None,
    })
}

/// The operand `j` as a [`Src`] for an output with placement `out` (standard when `std`).
fn operand(l: &mut Lowerer, j: usize, out: Placement, std: bool) -> Option<Src> {
    let s = l.graph.nodes[j].shape.clone();
    let o = l.graph.nodes[l_current(l)].shape.clone();
    let pat = pattern(&s, &o);
    if let Some(Val::Imm(v)) = l.vals[j] {
        return Some(Src::Imm(v));
    }
    let row = Placement { rows: 1, ..out };
    let col = Placement { cols: 1, ..out };
    let one = Placement {
        rows: 1,
        cols: 1,
        ..out
    };
    match (pat, std) {
        (Pattern::Same, _) => l.dev(j, out).map(Src::Tile),
        (Pattern::Scalar, _) => l.dev(j, one).map(Src::Scalar),
        (Pattern::Row, true) => l.dev(j, row).map(Src::RowVec),
        (Pattern::Col, true) => l.dev(j, col).map(Src::ColVec),
        _ => {
            if let Some(Val::Host(data)) = l.vals[j].clone() {
                let full = expand_data(&data, &s, &o);
                let b = l.host_buf(j, &full, out);
                Some(Src::Tile(b))
            } else {
                let cur = l_current(l);
                l.fail(
                    cur,
                    format!("broadcast of computed operand %{j} {s:?} to {o:?} is not lowered"),
                );
                None
            }
        }
    }
}

fn l_current(l: &Lowerer) -> usize {
    l.current
}

pub(crate) fn binary(l: &mut Lowerer, i: usize, b: BinaryOp, ja: usize, jb: usize) {
    let Some(f) = bfn(b) else {
        return l.fail(i, format!("no CSL lowering rule for binary '{}'", b.name()));
    };
    if let (Some(Val::Imm(x)), Some(Val::Imm(y))) = (&l.vals[ja], &l.vals[jb]) {
        l.vals[i] = Some(Val::Imm(apply_b(f, *x, *y)));
        return;
    }
    let node = l.graph.nodes[i].clone();
    let std_pl = std_placement(&node.shape, node.layout);
    let mut out = std_pl;
    for &j in &[ja, jb] {
        if l.graph.nodes[j].shape == node.shape {
            if let Some(Val::Dev { pl, .. }) = l.vals[j] {
                out = pl;
                break;
            }
        }
    }
    if !out.divides() {
        return l.fail(i, not_divisible(&out));
    }
    let std = out == std_pl;
    let Some(a) = operand(l, ja, out, std) else {
        return;
    };
    let Some(bb) = operand(l, jb, out, std) else {
        return;
    };
    let dst = l.temp(out, b.name());
    l.local(
        Local::Map2 {
            f,
            dst,
            a,
            b: bb,
            rows: out.tile_rows(),
            cols: out.tile_cols(),
        },
        out,
    );
    l.vals[i] = Some(Val::Dev { buf: dst, pl: out });
}

/// `where(c, a, b)` with `c` a 0/1 mask: `a * c + b * (1 - c)` from four `Map2` ops. Exact
/// when the unselected operand is finite (an inf or NaN there turns the result into NaN).
pub(crate) fn where_(l: &mut Lowerer, i: usize, jc: usize, ja: usize, jb: usize) {
    let node = l.graph.nodes[i].clone();
    let std_pl = std_placement(&node.shape, node.layout);
    let mut out = std_pl;
    for &j in &[ja, jb, jc] {
        if l.graph.nodes[j].shape == node.shape {
            if let Some(Val::Dev { pl, .. }) = l.vals[j] {
                out = pl;
                break;
            }
        }
    }
    if !out.divides() {
        return l.fail(i, not_divisible(&out));
    }
    let std = out == std_pl;
    let Some(c) = operand(l, jc, out, std) else {
        return;
    };
    let Some(a) = operand(l, ja, out, std) else {
        return;
    };
    let Some(b) = operand(l, jb, out, std) else {
        return;
    };
    let (rows, cols) = (out.tile_rows(), out.tile_cols());
    let map2 = |l: &mut Lowerer, f: BFn, a: Src, b: Src, name: &str| {
        let dst = l.temp(out, name);
        l.local(
            Local::Map2 {
                f,
                dst,
                a,
                b,
                rows,
                cols,
            },
            out,
        );
        dst
    };
    let t1 = map2(l, BFn::Mul, a, c, "where_a");
    let nc = map2(l, BFn::Sub, Src::Imm(1.0), c, "where_nc");
    let t2 = map2(l, BFn::Mul, b, Src::Tile(nc), "where_b");
    let dst = map2(l, BFn::Add, Src::Tile(t1), Src::Tile(t2), "where");
    l.vals[i] = Some(Val::Dev { buf: dst, pl: out });
}
