//! Redistribution across PEs: a transpose / permute, a reshape that changes which PE owns an
//! element, or a change of layout between a producer and a consumer.
//!
//! The element map is evaluated at compile time to find, for every destination tile, the
//! source tiles it needs. Then:
//! * every element is already on its PE: one local gather;
//! * sources lie in the same PE row (column): per source PE column (row) `sx`, its tile is
//!   broadcast along the PE rows (columns) into a panel (ToEdge + BcastBack: a pass-through
//!   color to the last PE, a second color back), and every PE gathers from the panel;
//! * otherwise, per source column `sx` a row broadcast into panel 1, then per source row `sy`
//!   a column broadcast of panel 1 into panel 2, and a gather from panel 2.
//!
//! Only source tiles some destination needs are broadcast. The collectives run on the union
//! of the source and destination rectangles; a source on a smaller rectangle is first copied
//! into a staging buffer that spans the union.

use super::Lowerer;
use crate::gather::{source_of, At, ElemMap, Gather};
use crate::plan::{Axis, BufId, Local, Phase, Placement, UFn};
use std::collections::{BTreeMap, BTreeSet};

/// Most source tiles one redistribution may broadcast (each is 4 fabric phases).
pub const MAX_ROUNDS: usize = 256;

/// A buffer holding a `tr x tc` tile on every PE of a `w x h` rectangle.
fn panel_placement(src: &Placement, w: usize, h: usize) -> Placement {
    Placement {
        rows: src.tile_rows() * h,
        cols: src.tile_cols() * w,
        pr: h,
        pc: w,
    }
}

/// Emits the redistribution of `src` (distributed as `src_pl`) into a new buffer distributed
/// as `dst_pl`, element by element through `map`. `None` after recording the reason.
pub(crate) fn redistribute(
    l: &mut Lowerer,
    src: BufId,
    src_pl: Placement,
    dst_pl: Placement,
    map: ElemMap,
) -> Option<BufId> {
    redistribute_into(l, src, src_pl, dst_pl, map, None)
}

/// [`redistribute`] into `into` (a buffer of `dst_pl`) when given: the elements `map` covers
/// are written, the others kept (the inputs of a concatenation fill one buffer).
pub(crate) fn redistribute_into(
    l: &mut Lowerer,
    src: BufId,
    src_pl: Placement,
    dst_pl: Placement,
    map: ElemMap,
    into: Option<BufId>,
) -> Option<BufId> {
    for p in [&src_pl, &dst_pl] {
        if !p.divides() {
            l.fail(l.current, super::elementwise::not_divisible(p));
            return None;
        }
    }
    let terms = map.terms();
    let (tr, tc) = (dst_pl.tile_rows(), dst_pl.tile_cols());
    let (mut local, mut row_only, mut col_only) = (true, true, true);
    // source column -> source rows needed
    let mut used: BTreeMap<usize, BTreeSet<usize>> = BTreeMap::new();
    for y in 0..dst_pl.pr {
        for x in 0..dst_pl.pc {
            for i in 0..tr {
                for j in 0..tc {
                    let Some((ox, oy, _)) =
                        source_of(&dst_pl, &src_pl, &map, &terms, (x, y), (i, j))
                    else {
                        continue;
                    };
                    local &= (ox, oy) == (x, y);
                    row_only &= oy == y;
                    col_only &= ox == x;
                    used.entry(ox).or_default().insert(oy);
                }
            }
        }
    }
    let dst = match into {
        Some(b) => b,
        None => l.temp(dst_pl, "redist"),
    };
    if used.is_empty() {
        return Some(dst); // an input that covers no element
    }
    let gather = |src: BufId, sx: At, sy: At| {
        Local::Gather(Box::new(Gather {
            dst,
            src,
            dst_pl,
            src_pl,
            map: map.clone(),
            sx,
            sy,
        }))
    };
    if local {
        l.local(gather(src, At::Own, At::Own), dst_pl);
        return Some(dst);
    }
    let rounds: usize = used.values().map(|s| s.len()).sum();
    if rounds > MAX_ROUNDS {
        l.fail(
            l.current,
            format!(
                "redistribution needs {rounds} source tiles broadcast (at most {MAX_ROUNDS} are lowered)"
            ),
        );
        return None;
    }
    let (w, h) = (src_pl.pc.max(dst_pl.pc), src_pl.pr.max(dst_pl.pr));
    let staging = if (src_pl.pc, src_pl.pr) == (w, h) {
        src
    } else {
        let st = l.temp(panel_placement(&src_pl, w, h), "staging");
        l.local(
            Local::Map1 {
                f: UFn::Copy,
                dst: st,
                src,
                n: src_pl.tile_len(),
            },
            src_pl,
        );
        st
    };
    let ppl = panel_placement(&src_pl, w, h);
    let n = src_pl.tile_len();
    let p1 = l.temp(ppl, "panel");
    if row_only || col_only {
        let (axis, roots): (Axis, BTreeSet<usize>) = if row_only {
            (Axis::Row, used.keys().copied().collect())
        } else {
            (Axis::Col, used.values().flatten().copied().collect())
        };
        for r in roots {
            bcast(l, staging, p1, n, axis, r);
            let (sx, sy) = if row_only {
                (At::Fixed(r), At::Own)
            } else {
                (At::Own, At::Fixed(r))
            };
            l.local(gather(p1, sx, sy), dst_pl);
        }
    } else {
        let p2 = l.temp(ppl, "panel2");
        for (sx, rows) in &used {
            bcast(l, staging, p1, n, Axis::Row, *sx);
            for sy in rows {
                bcast(l, p1, p2, n, Axis::Col, *sy);
                l.local(gather(p2, At::Fixed(*sx), At::Fixed(*sy)), dst_pl);
            }
        }
    }
    Some(dst)
}

/// Broadcast of the tile at position `root` along `axis` into `dst` on every PE of the line.
fn bcast(l: &mut Lowerer, src: BufId, dst: BufId, n: usize, axis: Axis, root: usize) {
    l.push(Phase::ToEdge {
        src,
        dst,
        n,
        axis,
        root,
    });
    l.push(Phase::BcastBack { buf: dst, n, axis });
}
