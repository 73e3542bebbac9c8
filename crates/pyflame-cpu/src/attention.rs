//! Fused scaled-dot-product attention ([`Op::Attention`]) and its gradient
//! ([`Op::AttentionGrad`]).
//!
//! The forward pass works on blocks of query rows: `S = q_blk @ k^T * scale` (gemm), the mask
//! and the causal limit applied, a row softmax in place, then `out_blk = P @ v` (gemm); the
//! full `[Lq, Lk]` probability matrix is never stored. Blocks of all batch entries run in
//! parallel. With `causal`, keys beyond the block's last query are skipped. A 4-D
//! `[B, H, Lq, Dv]` result is stored heads side by side (`[B, Lq, H, Dv]` memory order, a
//! strided value) when the row blocks alone keep the threads busy: multi-head attention
//! transposes it back to that order and merges the heads, which is then a view, not a copy.
//!
//! The backward pass recomputes each block's probabilities and accumulates, per batch entry,
//! `dv += P^T @ do`, `dP = do @ v^T`, `dS = P * (dP - rowsum(P * dP))`,
//! `dq_blk = scale * dS @ k` and `dk += scale * dS^T @ q_blk` (all gemm); batch entries run
//! in parallel.

use crate::kernels::simd::multiversion;
use crate::real::{dense, in_compute_dtype, Real};
use gemm::Parallelism;
use pyflame_core::{DType, Error, Result, Storage};
use pyflame_ir::{AttnAttrs, AttnMask, Op, Value};
use rayon::prelude::*;
use std::ops::Range;
use std::sync::Arc;

/// Query rows per block.
const BLOCK: usize = 64;
/// Query rows per forward block when the batch alone keeps the threads busy: a 128-row block
/// multiplies at ~1.6x the rate of two 64-row blocks (gemm's per-call overhead and packing;
/// BERT's `[8, 4, 128, 64]` heads: 45 -> 31 us per head).
const WIDE_BLOCK: usize = 128;
/// Longest key sequence for [`WIDE_BLOCK`]: its score block (`128 x lk`) stays within 512 KiB.
const WIDE_MAX_KEYS: usize = 1024;

/// Query rows per forward block: [`WIDE_BLOCK`] when there are at least two batch entries per
/// thread, the keys are few enough and the attention is not causal (causal blocks skip the
/// keys after their last query, which favours short blocks); [`BLOCK`] otherwise.
fn forward_block(dims: &Dims, causal: bool, threads: usize) -> usize {
    if !causal && dims.lk <= WIDE_MAX_KEYS && dims.batch >= 2 * threads {
        WIDE_BLOCK
    } else {
        BLOCK
    }
}

/// Shapes of one attention problem: `batch` entries of q `[lq, d]`, k `[lk, d]`, v `[lk, dv]`.
#[derive(Clone, Copy)]
struct Dims {
    batch: usize,
    lq: usize,
    lk: usize,
    d: usize,
    dv: usize,
}

/// The mask as `T` values (1/0 for a bool mask) with its strides broadcast to
/// `[..., Lq, Lk]`.
struct Mask<'a, T> {
    data: &'a [T],
    /// per batch entry, the offset of its `[Lq, Lk]` plane
    plane: Vec<isize>,
    row: isize,
    col: isize,
    keep: bool,
}

/// One of q, k and v read in place: matrix `b` (flattened batch index) starts at `base[b]`
/// of `data`, with non-negative row and column strides; every element lies inside `data`
/// (checked by [`Operand::new`]). Head-split views of a fused QKV projection are read
/// without copying them.
struct Operand<'a, T> {
    data: &'a [T],
    base: Vec<usize>,
    rs: usize,
    cs: usize,
}

impl<'a, T: Real> Operand<'a, T> {
    /// Reads `v` (of dtype `T`, non-negative strides) as `batch` matrices.
    fn new(v: &'a Value, batch: usize) -> Result<Self> {
        let nd = v.shape.len();
        let data = v.storage.as_slice::<T>()?;
        let (rows, cols) = (v.shape[nd - 2], v.shape[nd - 1]);
        let stride = |i: usize| usize::try_from(v.strides[i]).ok();
        let (rs, cs) = match (stride(nd - 2), stride(nd - 1)) {
            (Some(r), Some(c)) => (r, c),
            _ => return Err(Error::Invalid("internal: attention operand strides".into())),
        };
        let mut base = Vec::with_capacity(batch);
        for b in 0..batch {
            let (mut rem, mut off) = (b, v.offset);
            for ax in (0..nd - 2).rev() {
                let st = stride(ax)
                    .ok_or_else(|| Error::Invalid("internal: attention operand strides".into()))?;
                off += (rem % v.shape[ax]) * st;
                rem /= v.shape[ax];
            }
            base.push(off);
        }
        if rows > 0 && cols > 0 {
            let last = (rows - 1) * rs + (cols - 1) * cs;
            if base.iter().any(|&o| o + last >= data.len()) {
                return Err(Error::Invalid(
                    "internal: attention operand outside its storage".into(),
                ));
            }
        }
        Ok(Operand { data, base, rs, cs })
    }

    /// Rows `r0..` of matrix `b` as (elements from its first one, row stride, column stride);
    /// empty past the end of the data (only for empty matrices, which are not read).
    fn rows(&self, b: usize, r0: usize) -> (&'a [T], isize, isize) {
        let start = self.base.get(b).map_or(usize::MAX, |&o| o + r0 * self.rs);
        (
            self.data.get(start..).unwrap_or(&[]),
            self.rs as isize,
            self.cs as isize,
        )
    }

    /// The same with rows and columns swapped (the transposed matrix).
    fn rows_t(&self, b: usize) -> (&'a [T], isize, isize) {
        let (m, rs, cs) = self.rows(b, 0);
        (m, cs, rs)
    }
}

/// Everything a block computation reads.
struct Ctx<'a, T> {
    dims: Dims,
    attrs: AttnAttrs,
    q: Operand<'a, T>,
    k: Operand<'a, T>,
    v: Operand<'a, T>,
    mask: Option<Mask<'a, T>>,
}

/// Runs an attention op on its input values.
pub fn run(op: &Op, ins: &[&Value], shape: &[usize], dtype: DType) -> Result<Value> {
    in_compute_dtype(
        dtype,
        || run_typed::<f32>(op, ins, shape),
        || run_typed::<f64>(op, ins, shape),
    )
}

fn input<'a>(ins: &[&'a Value], i: usize) -> Result<&'a Value> {
    ins.get(i)
        .copied()
        .ok_or_else(|| Error::Invalid(format!("internal: attention input {i} is missing")))
}

fn run_typed<T: Real>(op: &Op, ins: &[&Value], shape: &[usize]) -> Result<Value> {
    let (attrs, first) = match op {
        Op::Attention(a) => (*a, 0),
        Op::AttentionGrad(a) => (*a, 1),
        other => {
            return Err(Error::Invalid(format!(
                "internal: {} is not an attention op",
                other.name()
            )))
        }
    };
    let (qv, kv, vv) = (
        input(ins, first)?,
        input(ins, first + 1)?,
        input(ins, first + 2)?,
    );
    let nd = qv.shape.len();
    if nd < 2 || kv.shape.len() != nd || vv.shape.len() != nd {
        return Err(Error::Invalid("internal: attention operand ranks".into()));
    }
    let batch_shape = &qv.shape[..nd - 2];
    let dims = Dims {
        batch: batch_shape.iter().product(),
        lq: qv.shape[nd - 2],
        lk: kv.shape[nd - 2],
        d: qv.shape[nd - 1],
        dv: vv.shape[nd - 1],
    };
    // Read in place when possible (views with non-negative strides), else copied.
    let in_place = |x: &Value| -> Result<Value> {
        if x.dtype() == T::DTYPE && x.strides.iter().all(|&s| s >= 0) {
            Ok(x.clone())
        } else {
            dense::<T>(x)
        }
    };
    let (q, k, v) = (in_place(qv)?, in_place(kv)?, in_place(vv)?);
    let mask_val = match attrs.mask {
        AttnMask::None => None,
        _ => Some(dense::<T>(input(ins, first + 3)?)?),
    };
    let mask = match &mask_val {
        None => None,
        Some(m) => {
            let mut full = batch_shape.to_vec();
            full.extend([dims.lq, dims.lk]);
            let st = crate::fused::broadcast_strides(m, &full)?;
            let mut plane = Vec::with_capacity(dims.batch);
            for b in 0..dims.batch {
                let (mut rem, mut off) = (b, 0isize);
                for ax in (0..nd - 2).rev() {
                    off += (rem % full[ax]) as isize * st[ax];
                    rem /= full[ax];
                }
                plane.push(off);
            }
            Some(Mask {
                data: m.storage.as_slice::<T>()?,
                plane,
                row: st[nd - 2],
                col: st[nd - 1],
                keep: attrs.mask == AttnMask::Keep,
            })
        }
    };
    let ctx = Ctx {
        dims,
        attrs,
        q: Operand::new(&q, dims.batch)?,
        k: Operand::new(&k, dims.batch)?,
        v: Operand::new(&v, dims.batch)?,
        mask,
    };
    let mut out = Storage::uninit(T::DTYPE, shape.iter().product())?;
    let o = out.as_mut_slice::<T>()?;
    if first == 0 {
        let threads = rayon::current_num_threads();
        let block = forward_block(&dims, attrs.causal, threads);
        let heads = if shape.len() == 4 && shape[1] > 1 && dims.batch > 0 {
            // Heads side by side, when the blocks of rows alone keep the threads busy.
            let tasks = (dims.batch / shape[1]) * dims.lq.div_ceil(block);
            if tasks >= 2 * threads {
                shape[1]
            } else {
                1
            }
        } else {
            1
        };
        forward(&ctx, o, heads, block);
        if heads > 1 {
            let (lq, dv) = (shape[2] as isize, shape[3] as isize);
            let h = heads as isize;
            return Ok(Value {
                storage: Arc::new(out),
                shape: shape.to_vec(),
                strides: vec![lq * h * dv, dv, h * dv, 1],
                offset: 0,
            });
        }
    } else {
        let go = dense::<T>(input(ins, 0)?)?;
        backward(&ctx, go.storage.as_slice::<T>()?, o)?;
    }
    Ok(Value::contiguous(Arc::new(out), shape.to_vec()))
}

/// `dst (m x n, row stride ldd) = [dst * keep +] beta * lhs @ rhs` where each operand is
/// given by (pointer, row stride, column stride).
#[allow(clippy::too_many_arguments)]
fn gemm_into<T: Real>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    ldd: usize,
    accumulate: bool,
    lhs: (&[T], isize, isize),
    rhs: (&[T], isize, isize),
    beta: T,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for r in 0..m {
                dst[r * ldd..r * ldd + n].fill(T::ZERO);
            }
        }
        return;
    }
    let last = |(_, rs, cs): (&[T], isize, isize), rows: usize, cols: usize| {
        (rows as isize - 1) * rs + (cols as isize - 1) * cs
    };
    // Every element an operand names lies inside its slice: the largest offset is checked
    // here and strides are non-negative.
    assert!(lhs.1 >= 0 && lhs.2 >= 0 && rhs.1 >= 0 && rhs.2 >= 0);
    assert!((last(lhs, m, k) as usize) < lhs.0.len());
    assert!((last(rhs, k, n) as usize) < rhs.0.len());
    assert!((m - 1) * ldd + n <= dst.len());
    // SAFETY: the bounds above keep every access of gemm (rows < m / k, columns < k / n)
    // inside the three slices; dst is exclusively borrowed and distinct from lhs and rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            ldd as isize,
            accumulate,
            lhs.0.as_ptr(),
            lhs.2,
            lhs.1,
            rhs.0.as_ptr(),
            rhs.2,
            rhs.1,
            T::ONE,
            beta,
            false,
            false,
            false,
            Parallelism::None,
        );
    }
}

impl<T: Real> Ctx<'_, T> {
    /// Keys visible to the rows of the block ending (exclusively) at query `r1`.
    fn kv_len(&self, r1: usize) -> usize {
        if self.attrs.causal {
            self.dims.lk.min(r1)
        } else {
            self.dims.lk
        }
    }

    /// Softmax probabilities of query rows `r0..r1` of batch entry `b` over the first `kl`
    /// keys, into `p` (row stride `kl`).
    fn probs(&self, b: usize, r0: usize, r1: usize, kl: usize, p: &mut [T]) {
        let d = self.dims.d;
        let br = r1 - r0;
        if kl == 0 {
            return;
        }
        gemm_into(
            br,
            kl,
            d,
            p,
            kl,
            false,
            self.q.rows(b, r0),
            self.k.rows_t(b),
            T::from_f64(self.attrs.scale),
        );
        for ii in 0..br {
            let row = &mut p[ii * kl..(ii + 1) * kl];
            let qi = r0 + ii;
            if let Some(m) = &self.mask {
                let base = m.plane[b] + qi as isize * m.row;
                if m.col == 1 && !m.keep {
                    // Contiguous additive mask row (the common padding mask): a plain
                    // vectorizable add.
                    add_row(row, &m.data[base as usize..base as usize + kl]);
                } else {
                    for (j, s) in row.iter_mut().enumerate() {
                        let mv = m.data[(base + j as isize * m.col) as usize];
                        if m.keep {
                            if mv == T::ZERO {
                                *s = T::NEG_INF;
                            }
                        } else {
                            *s = *s + mv;
                        }
                    }
                }
            }
            if self.attrs.causal && qi + 1 < kl {
                row[qi + 1..].fill(T::NEG_INF);
            }
            softmax_row(row, self.attrs.empty_rows_nan);
        }
    }
}

#[inline(always)]
fn add_row_body<const FMA: bool, T: Real>(row: &mut [T], add: &[T]) {
    row.iter_mut().zip(add).for_each(|(s, &mv)| *s = *s + mv);
}

// The row passes are compiled for AVX-512 and AVX2 too (the baseline build has SSE2 only).
multiversion! {
    /// `row += add` elementwise.
    fn add_row<T: Real>(row: &mut [T], add: &[T]) = add_row_body;
}

multiversion! {
    /// In-place softmax of one row; a row without any finite score becomes zeros (NaN when
    /// `empty_nan`). NaN scores propagate to the whole row (through the sum).
    fn softmax_row<T: Real>(row: &mut [T], empty_nan: bool) = softmax_row_body;
}

/// Maximum of a row ignoring NaN (lane-parallel, so it vectorizes).
#[inline(always)]
fn row_max<T: Real>(row: &[T]) -> T {
    let (chunks, rest) = row.as_chunks::<8>();
    let mut acc = [T::NEG_INF; 8];
    for c in chunks {
        for l in 0..8 {
            acc[l] = if c[l] > acc[l] { c[l] } else { acc[l] };
        }
    }
    let mut m = T::NEG_INF;
    for &v in acc.iter().chain(rest) {
        if v > m {
            m = v;
        }
    }
    m
}

#[inline(always)]
fn softmax_row_body<const FMA: bool, T: Real>(row: &mut [T], empty_nan: bool) {
    let max = row_max(row);
    if max == T::NEG_INF {
        let nan = empty_nan || row.iter().any(|x| x.to_f64().is_nan());
        row.fill(if nan { T::from_f64(f64::NAN) } else { T::ZERO });
        return;
    }
    row.iter_mut().for_each(|x| *x = *x - max);
    T::exp_slice(row);
    let sum: f64 = crate::real::sum(row);
    let inv = T::from_f64(1.0 / sum);
    row.iter_mut().for_each(|x| *x = *x * inv);
}

/// The forward pass into `out`, laid out as `[batch / heads, lq, heads, dv]`: with `heads`
/// = 1 the usual `[batch, lq, dv]`; with the head count of a `[B, H, lq, d]` problem, the
/// `[B, lq, H, dv]` order in which multi-head attention concatenates its heads, so the
/// `transpose(1, 2).reshape(B, lq, H * dv)` that follows it is a view instead of a copy. Each
/// task computes all heads of one block of query rows (a contiguous piece of `out`).
fn forward<T: Real>(ctx: &Ctx<'_, T>, out: &mut [T], heads: usize, block: usize) {
    let Dims { lq, dv, .. } = ctx.dims;
    if lq == 0 || dv == 0 || heads == 0 {
        return;
    }
    let ld = heads * dv;
    let work = |bb: usize, blk: usize, o: &mut [T], buf: &mut Vec<T>| {
        let r0 = blk * block;
        let r1 = (r0 + block).min(lq);
        let kl = ctx.kv_len(r1);
        if kl == 0 {
            o.fill(T::ZERO);
            return;
        }
        buf.resize((r1 - r0) * kl, T::ZERO);
        for h in 0..heads {
            let b = bb * heads + h;
            ctx.probs(b, r0, r1, kl, buf);
            gemm_into(
                r1 - r0,
                dv,
                kl,
                &mut o[h * dv..],
                ld,
                false,
                (buf, kl as isize, 1),
                ctx.v.rows(b, 0),
                T::ONE,
            );
        }
    };
    out.par_chunks_mut(lq * ld)
        .enumerate()
        .for_each(|(bb, ob)| {
            ob.par_chunks_mut(block * ld)
                .enumerate()
                .for_each_init(Vec::new, |buf, (blk, o)| work(bb, blk, o, buf))
        });
}

fn backward<T: Real>(ctx: &Ctx<'_, T>, go: &[T], out: &mut [T]) -> Result<()> {
    let Dims {
        batch,
        lq,
        lk,
        d,
        dv,
    } = ctx.dims;
    let (nq, nk, nv) = (batch * lq * d, batch * lk * d, batch * lk * dv);
    if out.len() != nq + nk + nv || go.len() != batch * lq * dv {
        return Err(Error::Invalid("internal: attention gradient sizes".into()));
    }
    let (dq, rest) = out.split_at_mut(nq);
    let (dk, dvv) = rest.split_at_mut(nk);
    dk.fill(T::ZERO);
    dvv.fill(T::ZERO);
    let scale = T::from_f64(ctx.attrs.scale);
    // Query rows `rows` of entry `b`: writes their dq rows (`dq_b` holds exactly those) and
    // accumulates into dk_b and dv_b.
    let entry = |b: usize, rows: Range<usize>, dq_b: &mut [T], dk_b: &mut [T], dv_b: &mut [T]| {
        let (mut p, mut dp) = (Vec::new(), Vec::new());
        let base = rows.start;
        for r0 in rows.clone().step_by(BLOCK) {
            let r1 = (r0 + BLOCK).min(rows.end);
            let br = r1 - r0;
            let kl = ctx.kv_len(r1);
            let dq_blk = (r0 - base) * d..(r1 - base) * d;
            if kl == 0 {
                dq_b[dq_blk].fill(T::ZERO);
                continue;
            }
            p.resize(br * kl, T::ZERO);
            dp.resize(br * kl, T::ZERO);
            ctx.probs(b, r0, r1, kl, &mut p);
            let go_blk = &go[(b * lq + r0) * dv..(b * lq + r1) * dv];
            // dv += P^T @ do
            gemm_into(
                kl,
                dv,
                br,
                dv_b,
                dv,
                true,
                (&p, 1, kl as isize),
                (go_blk, dv as isize, 1),
                T::ONE,
            );
            // dP = do @ v^T
            gemm_into(
                br,
                kl,
                dv,
                &mut dp,
                kl,
                false,
                (go_blk, dv as isize, 1),
                ctx.v.rows_t(b),
                T::ONE,
            );
            // dS = P * (dP - rowsum(P * dP))
            for (pr, dr) in p.chunks_exact(kl).zip(dp.chunks_exact_mut(kl)) {
                let s = T::from_f64(crate::real::dot(pr, dr));
                for (g, &pv) in dr.iter_mut().zip(pr) {
                    *g = pv * (*g - s);
                }
            }
            // dq_blk = scale * dS @ k ; dk += scale * dS^T @ q_blk
            gemm_into(
                br,
                d,
                kl,
                &mut dq_b[dq_blk],
                d,
                false,
                (&dp, kl as isize, 1),
                ctx.k.rows(b, 0),
                scale,
            );
            gemm_into(
                kl,
                d,
                br,
                dk_b,
                d,
                true,
                (&dp, 1, kl as isize),
                ctx.q.rows(b, r0),
                scale,
            );
        }
    };
    let (dq_b, dk_b, dv_b) = (
        per_entry(dq, batch, lq * d),
        per_entry(dk, batch, lk * d),
        per_entry(dvv, batch, lk * dv),
    );
    // Fewer entries than threads: split each entry's query blocks over tasks with private
    // dk / dv accumulators, summed afterwards.
    let threads = rayon::current_num_threads();
    let blocks = lq.div_ceil(BLOCK);
    let split = if batch == 0 || batch >= threads || d == 0 {
        1
    } else {
        (threads / batch).min(blocks).max(1)
    };
    if split == 1 {
        dq_b.into_par_iter()
            .zip(dk_b)
            .zip(dv_b)
            .enumerate()
            .for_each(|(b, ((dq_b, dk_b), dv_b))| entry(b, 0..lq, dq_b, dk_b, dv_b));
        return Ok(());
    }
    let per = blocks.div_ceil(split) * BLOCK;
    for (b, ((dq_b, dk_b), dv_b)) in dq_b.into_iter().zip(dk_b).zip(dv_b).enumerate() {
        let partial: Vec<(Vec<T>, Vec<T>)> = dq_b
            .par_chunks_mut(per * d)
            .enumerate()
            .map(|(t, dq_part)| {
                let (mut dk_t, mut dv_t) = (vec![T::ZERO; lk * d], vec![T::ZERO; lk * dv]);
                let rows = t * per..((t + 1) * per).min(lq);
                entry(b, rows, dq_part, &mut dk_t, &mut dv_t);
                (dk_t, dv_t)
            })
            .collect();
        for (dk_t, dv_t) in partial {
            dk_b.iter_mut().zip(dk_t).for_each(|(a, v)| *a = *a + v);
            dv_b.iter_mut().zip(dv_t).for_each(|(a, v)| *a = *a + v);
        }
    }
    Ok(())
}

/// `data` split into `batch` consecutive pieces of `len` elements (possibly empty).
fn per_entry<T>(data: &mut [T], batch: usize, len: usize) -> Vec<&mut [T]> {
    if len == 0 {
        return (0..batch).map(|_| &mut [][..]).collect();
    }
    data.chunks_mut(len).collect()
}
