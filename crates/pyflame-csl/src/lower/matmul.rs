//! Matmul: SUMMA on a PE grid (square or not) (A tiles broadcast along PE rows, B tiles down PE
//! columns, local `@fmacs` GEMM per step), its 1-D specialisations for row and column
//! partitions, and a single local GEMM on one PE. A matrix-vector product is the same
//! schedule with a one-column B, unless B is a row vector split along PE columns: then it is
//! the tutorial GEMV (local products, row reduce chain, broadcast back).

use super::elementwise::not_divisible;
use super::reduce::emit_reduce;
use super::{std_placement, Lowerer, Val};
use crate::plan::{Axis, BFn, Local, Phase, Placement, RFn, ReduceKind, Src};

pub(crate) fn matmul(l: &mut Lowerer, i: usize, ja: usize, jb: usize) {
    let node = l.graph.nodes[i].clone();
    let (sa, sb) = (
        l.graph.nodes[ja].shape.clone(),
        l.graph.nodes[jb].shape.clone(),
    );
    if sa.len() != 2 || sb.len() != 2 {
        return l.fail(
            i,
            format!("batched matmul {sa:?} @ {sb:?} is not lowered (2-D operands only)"),
        );
    }
    let k = sa[1];
    let (pr, pc) = node.layout.pe_grid();
    let pa = std_placement(&sa, node.layout);
    let pb = std_placement(&sb, node.layout);
    let pcl = std_placement(&node.shape, node.layout);
    for p in [&pa, &pb, &pcl] {
        if !p.divides() {
            return l.fail(i, not_divisible(p));
        }
    }
    let Some(a) = l.dev(ja, pa) else { return };
    if sb[1] == 1 && k > 1 {
        // GEMV with x as a row vector split along PE columns (replicated down the columns):
        // y_part = rows of A * x (@fmuls), local row sums, then a row reduce chain and a
        // broadcast back, leaving y split along PE rows like the standard [M, 1] placement.
        let xrow = Placement {
            rows: 1,
            cols: k,
            ..pa
        };
        let is_row = match &l.vals[jb] {
            Some(Val::Dev { pl, .. }) => *pl == xrow,
            Some(Val::Host(_)) => true,
            _ => false,
        };
        if is_row {
            let Some(x) = l.dev(jb, xrow) else { return };
            let t = l.temp(pa, "gemv_prod");
            l.local(
                Local::Map2 {
                    f: BFn::Mul,
                    dst: t,
                    a: Src::Tile(a),
                    b: Src::RowVec(x),
                    rows: pa.tile_rows(),
                    cols: pa.tile_cols(),
                },
                pa,
            );
            let (y, pl) = emit_reduce(l, RFn::Sum, t, pa, ReduceKind::OverCols, "gemv");
            l.vals[i] = Some(Val::Dev { buf: y, pl });
            return;
        }
    }
    let Some(b) = l.dev(jb, pb) else { return };
    let c = l.temp(pcl, "matmul");
    let (tm, tn) = (pcl.tile_rows(), pcl.tile_cols());
    let gemm = |a, b, kk, lda, aoff, boff, zero| Local::Gemm {
        c,
        a,
        b,
        m: tm,
        k: kk,
        n: tn,
        lda,
        aoff,
        boff,
        zero,
    };
    if k == 1 || (pr == 1 && pc == 1) {
        l.local(gemm(a, b, pa.tile_cols(), pa.tile_cols(), 0, 0, true), pcl);
    } else if pc == 1 {
        // row partition: A rows are local (full K), B row blocks travel down the column
        let kb = k / pr;
        let bbuf = l.temp(pb, "bpanel");
        for s in 0..pr {
            bcast(l, b, bbuf, pb, Axis::Col, s);
            l.local(gemm(a, bbuf, kb, k, s * kb, 0, s == 0), pcl);
        }
    } else if pr == 1 {
        // column partition: B columns are local (full K), A column blocks travel along the row
        let kb = k / pc;
        let abuf = l.temp(pa, "apanel");
        for s in 0..pc {
            bcast(l, a, abuf, pa, Axis::Row, s);
            l.local(gemm(abuf, b, kb, kb, 0, s * kb, s == 0), pcl);
        }
    } else {
        // SUMMA on a pr x pc grid: A's K is split in pc blocks (PE columns), B's K in pr blocks
        // (PE rows). The steps are the intervals between the union of both block boundaries;
        // a step broadcasts A's tile column / B's tile row only when it changes and reads the
        // panel at an offset (square grids: one step per block, offsets 0).
        let (ka, kb) = (k / pc, k / pr);
        let abuf = l.temp(pa, "apanel");
        let bbuf = l.temp(pb, "bpanel");
        let mut cuts: Vec<usize> = (0..pc)
            .map(|s| s * ka)
            .chain((0..pr).map(|s| s * kb))
            .collect();
        cuts.push(k);
        cuts.sort_unstable();
        cuts.dedup();
        let (mut have_a, mut have_b) = (usize::MAX, usize::MAX);
        for (s, w) in cuts.windows(2).enumerate() {
            let (k0, k1) = (w[0], w[1]);
            let (ra, rb) = (k0 / ka, k0 / kb);
            if ra != have_a {
                bcast(l, a, abuf, pa, Axis::Row, ra);
                have_a = ra;
            }
            if rb != have_b {
                bcast(l, b, bbuf, pb, Axis::Col, rb);
                have_b = rb;
            }
            l.local(gemm(abuf, bbuf, k1 - k0, ka, k0 % ka, k0 % kb, s == 0), pcl);
        }
    }
    l.vals[i] = Some(Val::Dev { buf: c, pl: pcl });
}

/// Broadcast of the tile at position `root` along `axis` into `dst` on every PE: the root
/// sends to the last PE (one pass-through color), which broadcasts back (a second color).
fn bcast(l: &mut Lowerer, src: usize, dst: usize, pl: Placement, axis: Axis, root: usize) {
    let n = pl.tile_len();
    l.push(Phase::ToEdge {
        src,
        dst,
        n,
        axis,
        root,
    });
    l.push(Phase::BcastBack { buf: dst, n, axis });
}
