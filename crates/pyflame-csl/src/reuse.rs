//! Liveness-based reuse of PE buffers (`CodeGenOptions::optimize`).
//!
//! Every temporary buffer is live from the first phase that touches it to the last one.
//! Buffers with the same PE rectangle and tile length whose live ranges do not overlap share
//! one array (greedy, in order of first use; a buffer may take an array whose last user ran
//! in an earlier phase, never in the same one, so in-place hazards cannot arise). Host inputs,
//! graph outputs and buffers whose first access is a read (they would observe the `@zeros`
//! initial contents) keep their own arrays. The simulator executes the rewritten plan, so a
//! wrong reuse would show up as a mismatch against the CPU executor.

use crate::plan::{BufId, BufKind, Local, Phase, Plan, Src};
use std::collections::BTreeMap;

/// Buffers read and written by a phase.
fn accesses(ph: &Phase) -> (Vec<BufId>, Vec<BufId>) {
    let src = |s: Src| match s {
        Src::Tile(b) | Src::RowVec(b) | Src::ColVec(b) | Src::Scalar(b) => Some(b),
        Src::Imm(_) => None,
    };
    match ph {
        Phase::Local { op, .. } => match op {
            Local::Map1 { dst, src: s, .. } | Local::Transpose { dst, src: s, .. } => {
                (vec![*s], vec![*dst])
            }
            Local::Reduce { dst, src: s, .. } => (vec![*s], vec![*dst]),
            Local::Map2 { dst, a, b, .. } => {
                (src(*a).into_iter().chain(src(*b)).collect(), vec![*dst])
            }
            Local::Gemm { c, a, b, zero, .. } => {
                let mut r = vec![*a, *b];
                if !zero {
                    r.push(*c);
                }
                (r, vec![*c])
            }
            Local::Fill { dst, .. } => (vec![], vec![*dst]),
            Local::Gather(g) => (vec![g.src], vec![g.dst]),
        },
        Phase::Chain { buf, .. } | Phase::BcastBack { buf, .. } => (vec![*buf], vec![*buf]),
        Phase::ToEdge { src, dst, .. } => (vec![*src], vec![*dst]),
    }
}

/// Applies `f` to every buffer reference of a phase.
fn remap_phase(ph: &mut Phase, f: &impl Fn(BufId) -> BufId) {
    let s = |x: &mut Src| {
        if let Src::Tile(b) | Src::RowVec(b) | Src::ColVec(b) | Src::Scalar(b) = x {
            *b = f(*b);
        }
    };
    match ph {
        Phase::Local { op, .. } => match op {
            Local::Map1 { dst, src, .. }
            | Local::Transpose { dst, src, .. }
            | Local::Reduce { dst, src, .. } => {
                *dst = f(*dst);
                *src = f(*src);
            }
            Local::Map2 { dst, a, b, .. } => {
                *dst = f(*dst);
                s(a);
                s(b);
            }
            Local::Gemm { c, a, b, .. } => {
                *c = f(*c);
                *a = f(*a);
                *b = f(*b);
            }
            Local::Fill { dst, .. } => *dst = f(*dst),
            Local::Gather(g) => {
                g.dst = f(g.dst);
                g.src = f(g.src);
            }
        },
        Phase::Chain { buf, .. } | Phase::BcastBack { buf, .. } => *buf = f(*buf),
        Phase::ToEdge { src, dst, .. } => {
            *src = f(*src);
            *dst = f(*dst);
        }
    }
}

/// Merges buffers with disjoint live ranges; returns the number of buffers removed.
pub fn reuse_buffers(plan: &mut Plan) -> usize {
    let nb = plan.bufs.len();
    // (first, last, first access is a write)
    let mut live: Vec<Option<(usize, usize, bool)>> = vec![None; nb];
    for (k, ph) in plan.phases.iter().enumerate() {
        let (reads, writes) = accesses(ph);
        for (b, is_write) in reads
            .iter()
            .map(|&b| (b, false))
            .chain(writes.iter().map(|&b| (b, true)))
        {
            match &mut live[b] {
                Some((_, last, _)) => *last = k,
                slot @ None => *slot = Some((k, k, is_write)),
            }
        }
    }
    let mut pinned = vec![false; nb];
    for o in &plan.outputs {
        pinned[o.buf] = true;
    }
    for (b, buf) in plan.bufs.iter().enumerate() {
        if matches!(buf.kind, BufKind::Input(_)) {
            pinned[b] = true;
        }
    }
    // candidates in order of first use
    let mut cand: Vec<(usize, usize, BufId)> = (0..nb)
        .filter(|&b| !pinned[b])
        .filter_map(|b| match live[b] {
            Some((first, last, true)) => Some((first, last, b)),
            _ => None,
        })
        .collect();
    cand.sort_unstable();
    // (pc, pr, tile_len) -> arrays: (representative, last phase using it)
    let mut arrays: BTreeMap<(usize, usize, usize), Vec<(BufId, usize)>> = BTreeMap::new();
    let mut target: Vec<BufId> = (0..nb).collect();
    for (first, last, b) in cand {
        let p = plan.bufs[b].placement;
        let slots = arrays.entry((p.pc, p.pr, p.tile_len())).or_default();
        match slots.iter_mut().find(|(_, free_after)| *free_after < first) {
            Some(slot) => {
                target[b] = slot.0;
                slot.1 = last;
            }
            None => slots.push((b, last)),
        }
    }
    // compact: drop merged buffers and renumber
    let mut new_id = vec![usize::MAX; nb];
    let mut kept = Vec::new();
    for b in 0..nb {
        if target[b] == b {
            new_id[b] = kept.len();
            kept.push(plan.bufs[b].clone());
        }
    }
    let removed = nb - kept.len();
    if removed == 0 {
        return 0;
    }
    // an array shared by several values is named for what it is
    let mut pools = 0;
    for b in 0..nb {
        if target[b] == b && (0..nb).any(|o| o != b && target[o] == b) {
            kept[new_id[b]].name = format!("pool{pools}");
            pools += 1;
        }
    }
    let map = |b: BufId| new_id[target[b]];
    for ph in &mut plan.phases {
        remap_phase(ph, &map);
    }
    for i in &mut plan.inputs {
        i.buf = map(i.buf);
    }
    for o in &mut plan.outputs {
        o.buf = map(o.buf);
    }
    plan.bufs = kept;
    removed
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Buf, OutputRef, Placement, UFn};

    fn buf(name: &str, kind: BufKind) -> Buf {
        Buf {
            name: name.into(),
            placement: Placement {
                rows: 4,
                cols: 4,
                pr: 1,
                pc: 1,
            },
            kind,
            node: None,
        }
    }

    fn map1(dst: BufId, src: BufId) -> Phase {
        Phase::Local {
            op: Local::Map1 {
                f: UFn::Exp,
                dst,
                src,
                n: 16,
            },
            w: 1,
            h: 1,
        }
    }

    #[test]
    fn chain_of_temps_uses_two_arrays() {
        // in -> t1 -> t2 -> t3 -> t4 (output): t1 and t3 can share, t2 cannot share with t1
        let mut plan = Plan::default();
        plan.bufs.push(buf("in", BufKind::Input(vec![0.0; 16])));
        for n in ["t1", "t2", "t3", "t4"] {
            plan.bufs.push(buf(n, BufKind::Temp));
        }
        for k in 1..5 {
            plan.phases.push(map1(k, k - 1));
        }
        plan.outputs.push(OutputRef {
            buf: 4,
            shape: vec![4, 4],
        });
        assert_eq!(reuse_buffers(&mut plan), 1);
        assert_eq!(plan.bufs.len(), 4);
        // t3 now writes into t1's array
        assert_eq!(plan.phases[2], map1(1, 2));
        assert_eq!(plan.outputs[0].buf, 3);
    }
}
