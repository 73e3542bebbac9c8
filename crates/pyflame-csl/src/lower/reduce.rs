//! Reductions (local reduce, then row and column reduce chains with a broadcast back, so the
//! result is replicated along the reduced PE axis) and softmax built on them.

use super::elementwise::not_divisible;
use super::{std_placement, Lowerer, Val};
use crate::plan::{Axis, BFn, BufId, Local, Phase, Placement, RFn, ReduceKind, Src, UFn};
use pyflame_core::numel;
use pyflame_ir::ReduceOp;

/// Which matrix dimension `axes` of `shape` cover under placement `pl`.
fn kind_of(shape: &[usize], axes: &[usize], pl: &Placement) -> Option<ReduceKind> {
    let nd = shape.len();
    if axes.len() == nd || numel(shape) == 1 {
        return Some(ReduceKind::All);
    }
    let &k = axes.first()?;
    let trailing = axes.iter().copied().eq(k..nd);
    let leading = k == 0 && axes.iter().copied().eq(0..axes.len());
    if trailing && numel(&shape[k..]) == pl.cols && numel(&shape[..k]) == pl.rows {
        return Some(ReduceKind::OverCols);
    }
    if leading {
        let e = axes.len();
        if numel(&shape[..e]) == pl.rows && numel(&shape[e..]) == pl.cols {
            return Some(ReduceKind::OverRows);
        }
    }
    None
}

/// Emits a reduction of `src` (placement `pl`) and returns the result buffer and placement.
pub(crate) fn emit_reduce(
    l: &mut Lowerer,
    f: RFn,
    src: BufId,
    pl: Placement,
    kind: ReduceKind,
    tag: &str,
) -> (BufId, Placement) {
    let out = match kind {
        ReduceKind::OverCols => Placement { cols: 1, ..pl },
        ReduceKind::OverRows => Placement { rows: 1, ..pl },
        ReduceKind::All => Placement {
            rows: 1,
            cols: 1,
            ..pl
        },
    };
    let dst = l.temp(out, tag);
    l.local(
        Local::Reduce {
            f,
            dst,
            src,
            rows: pl.tile_rows(),
            cols: pl.tile_cols(),
            kind,
        },
        pl,
    );
    let n = out.tile_len();
    let across_cols = pl.cols > 1 && pl.pc > 1 && kind != ReduceKind::OverRows;
    let across_rows = pl.rows > 1 && pl.pr > 1 && kind != ReduceKind::OverCols;
    for (go, axis) in [(across_cols, Axis::Row), (across_rows, Axis::Col)] {
        if go {
            l.push(Phase::Chain {
                f,
                buf: dst,
                n,
                axis,
            });
            l.push(Phase::BcastBack { buf: dst, n, axis });
        }
    }
    (dst, out)
}

pub(crate) fn reduce(l: &mut Lowerer, i: usize, op: ReduceOp, axes: &[usize], j: usize) {
    let f = match op {
        ReduceOp::Sum | ReduceOp::Mean => RFn::Sum,
        // min(x) = -max(-x): there is no @fmins, and negation is exact
        ReduceOp::Max | ReduceOp::Min => RFn::Max,
        _ => {
            return l.fail(
                i,
                format!("no CSL lowering rule for reduction '{}'", op.name()),
            )
        }
    };
    let in_shape = l.graph.nodes[j].shape.clone();
    let node = l.graph.nodes[i].clone();
    let pl = match l.vals[j].clone() {
        Some(Val::Dev { pl, .. }) => pl,
        _ => std_placement(&in_shape, node.layout),
    };
    if !pl.divides() {
        return l.fail(i, not_divisible(&pl));
    }
    if numel(&in_shape) == 0 {
        return l.fail(i, "reduction of an empty tensor");
    }
    let (mut src, pl, kind) = match kind_of(&in_shape, axes, &pl) {
        Some(kind) => {
            let Some(src) = l.dev(j, pl) else { return };
            (src, pl, kind)
        }
        // other axes (a middle axis, or axes that do not match the tiling): move the reduced
        // axes last across PEs, then reduce each row
        None => match reduced_last(l, j, &in_shape, axes, node.layout) {
            Some((src, pl)) => (src, pl, ReduceKind::OverCols),
            None => return,
        },
    };
    if op == ReduceOp::Min {
        let neg = l.temp(pl, "negmin");
        l.local(
            Local::Map1 {
                f: UFn::Neg,
                dst: neg,
                src,
                n: pl.tile_len(),
            },
            pl,
        );
        src = neg;
    }
    let (mut dst, out) = emit_reduce(l, f, src, pl, kind, op.name());
    if op == ReduceOp::Min {
        let m = l.temp(out, "min");
        l.local(
            Local::Map1 {
                f: UFn::Neg,
                dst: m,
                src: dst,
                n: out.tile_len(),
            },
            out,
        );
        dst = m;
    }
    if op == ReduceOp::Mean {
        let count = numel(&in_shape) / numel(&node.shape).max(1);
        let m = l.temp(out, "mean");
        l.local(
            Local::Map2 {
                f: BFn::Mul,
                dst: m,
                a: Src::Tile(dst),
                b: Src::Imm(1.0 / count as f32),
                rows: out.tile_rows(),
                cols: out.tile_cols(),
            },
            out,
        );
        dst = m;
    }
    l.vals[i] = Some(Val::Dev { buf: dst, pl: out });
}

/// Node `j` (shape `shape`) permuted so that `axes` come last, as a `kept x reduced` matrix
/// on the layout's PE rectangle (a redistribution across PEs).
fn reduced_last(
    l: &mut Lowerer,
    j: usize,
    shape: &[usize],
    axes: &[usize],
    layout: pyflame_core::MeshLayout,
) -> Option<(BufId, Placement)> {
    let kept: Vec<usize> = (0..shape.len()).filter(|a| !axes.contains(a)).collect();
    let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
    let (pr, pc) = layout.pe_grid();
    let pl = Placement {
        rows: kept.iter().map(|&a| shape[a]).product(),
        cols: axes.iter().map(|&a| shape[a]).product(),
        pr,
        pc,
    };
    if !pl.divides() {
        l.fail(
            l.current,
            format!(
                "reduction over axes {axes:?} of {shape:?}: {}",
                not_divisible(&pl)
            ),
        );
        return None;
    }
    let (src, have) = match l.vals[j].clone()? {
        Val::Dev { buf, pl } => (buf, pl),
        _ => {
            // host data: uploaded in the standard distribution, then moved like device data
            let std = std_placement(shape, layout);
            (l.dev(j, std)?, std)
        }
    };
    let map = crate::gather::ElemMap::permute(shape, &perm);
    let dst = super::redist::redistribute(l, src, have, pl, map)?;
    Some((dst, pl))
}

pub(crate) fn softmax(l: &mut Lowerer, i: usize, axis: usize, log: bool, j: usize) {
    let node = l.graph.nodes[i].clone();
    let shape = node.shape.clone();
    let pl = match l.vals[j].clone() {
        Some(Val::Dev { pl, .. }) => pl,
        _ => std_placement(&shape, node.layout),
    };
    if !pl.divides() {
        return l.fail(i, not_divisible(&pl));
    }
    let axes: Vec<usize> = if axis + 1 == shape.len() {
        vec![axis]
    } else {
        (0..=axis).collect()
    };
    let direct = match kind_of(&shape, &axes, &pl) {
        Some(k @ (ReduceKind::OverCols | ReduceKind::OverRows)) if axes.len() == 1 => Some(k),
        Some(ReduceKind::All) if shape.len() == 1 => Some(ReduceKind::All),
        _ => None,
    };
    // any other axis: moved last across PEs, softmax along rows, moved back
    let (x, pl, kind, back) = match direct {
        Some(k) => {
            let Some(x) = l.dev(j, pl) else { return };
            (x, pl, k, None)
        }
        None => {
            let Some((x, pl2)) = reduced_last(l, j, &shape, &[axis], node.layout) else {
                return;
            };
            let perm: Vec<usize> = (0..shape.len())
                .filter(|&a| a != axis)
                .chain([axis])
                .collect();
            (x, pl2, ReduceKind::OverCols, Some(perm))
        }
    };
    let vec = |b: BufId| match kind {
        ReduceKind::OverCols => Src::ColVec(b),
        ReduceKind::OverRows => Src::RowVec(b),
        ReduceKind::All => Src::Scalar(b),
    };
    let (tr, tc) = (pl.tile_rows(), pl.tile_cols());
    let (m, red) = emit_reduce(l, RFn::Max, x, pl, kind, "smax");
    let t = l.temp(pl, "shifted");
    l.local(
        Local::Map2 {
            f: BFn::Sub,
            dst: t,
            a: Src::Tile(x),
            b: vec(m),
            rows: tr,
            cols: tc,
        },
        pl,
    );
    let e = l.temp(pl, "exp");
    let n = pl.tile_len();
    l.local(
        Local::Map1 {
            f: UFn::Exp,
            dst: e,
            src: t,
            n,
        },
        pl,
    );
    let (s, _) = emit_reduce(l, RFn::Sum, e, pl, kind, "ssum");
    let g = l.temp(red, if log { "logsum" } else { "inv" });
    l.local(
        Local::Map1 {
            f: if log { UFn::Log } else { UFn::Recip },
            dst: g,
            src: s,
            n: red.tile_len(),
        },
        red,
    );
    let out = l.temp(pl, if log { "log_softmax" } else { "softmax" });
    let (f, a) = if log {
        (BFn::Sub, Src::Tile(t))
    } else {
        (BFn::Mul, Src::Tile(e))
    };
    l.local(
        Local::Map2 {
            f,
            dst: out,
            a,
            b: vec(g),
            rows: tr,
            cols: tc,
        },
        pl,
    );
    match back {
        None => l.vals[i] = Some(Val::Dev { buf: out, pl }),
        Some(perm) => {
            // destination axis a is axis d of the permuted tensor where perm[d] == a
            let mut inv = vec![0; perm.len()];
            for (d, &a) in perm.iter().enumerate() {
                inv[a] = d;
            }
            let permuted: Vec<usize> = perm.iter().map(|&a| shape[a]).collect();
            let map = crate::gather::ElemMap::permute(&permuted, &inv);
            let std = std_placement(&shape, node.layout);
            if let Some(b) = super::redist::redistribute(l, out, pl, std, map) {
                l.vals[i] = Some(Val::Dev { buf: b, pl: std });
            }
        }
    }
}
