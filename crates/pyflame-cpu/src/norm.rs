//! Normalization kernels (layer, group and batch norm) on inputs viewed as `[N, C, S]`:
//! statistics ([`Op::NormStats`]), the normalization itself ([`Op::NormApply`]) and its
//! gradients ([`Op::NormGradInput`], [`Op::NormGradAffine`]).
//!
//! Everything is computed in f32 (f64 for float64 data) with lane-parallel sums and rayon
//! over rows, channel segments or sample chunks. The gradient with respect to the input is
//! `dx = rstd * (g - mean(g) - xhat * mean(g * xhat))` with `g = dy * weight`, evaluated per
//! segment as `a * dy + b * x + c` once the two sums of each statistic group are known.

use crate::real::{self, dense, in_compute_dtype, Real};
use pyflame_core::{DType, Error, Result, Storage};
use pyflame_ir::{NormMode, Op, Value};
use rayon::prelude::*;
use std::sync::Arc;

/// Work (elements) from which the kernels use the rayon pool.
const PAR_MIN: usize = 1 << 14;
/// Items (rows, segments) per rayon task for items of `len` elements: about `2 * PAR_MIN`
/// elements per task, so short rows do not each pay the scheduling cost.
fn min_items(len: usize) -> usize {
    (PAR_MIN * 2 / len.max(1)).max(1)
}

/// Segment length from which the elementwise passes split work by (sample, channel) segment
/// instead of by sample.
const SEG_MIN: usize = 64;

/// Geometry of an `[N, C, S]` normalization.
#[derive(Clone, Copy)]
struct Dims {
    n: usize,
    c: usize,
    s: usize,
    mode: NormMode,
}

impl Dims {
    fn of(shape: &[usize], mode: NormMode) -> Result<Dims> {
        match (shape, mode) {
            (&[n, c, s], NormMode::Channels) => Ok(Dims { n, c, s, mode }),
            (&[n, c, s], NormMode::Groups(g)) if g > 0 && c % g == 0 => Ok(Dims { n, c, s, mode }),
            _ => Err(Error::Invalid(format!(
                "internal: normalization input {shape:?} does not fit {mode:?}"
            ))),
        }
    }

    /// Number of statistics.
    fn r(&self) -> usize {
        self.mode.num_stats(self.n, self.c)
    }

    /// Channels per group (Groups mode).
    fn cg(&self) -> usize {
        match self.mode {
            NormMode::Groups(g) => self.c / g,
            NormMode::Channels => 1,
        }
    }

    /// Index of the statistic of segment (sample `i`, channel `ch`).
    #[inline(always)]
    fn stat(&self, i: usize, ch: usize) -> usize {
        match self.mode {
            NormMode::Groups(g) => i * g + ch / (self.c / g),
            NormMode::Channels => ch,
        }
    }

    /// Elements per statistic.
    fn count(&self) -> usize {
        (self.n * self.c * self.s) / self.r().max(1)
    }

    fn numel(&self) -> usize {
        self.n * self.c * self.s
    }
}

/// Runs one normalization op on its input values.
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
        .ok_or_else(|| Error::Invalid(format!("internal: normalization input {i} is missing")))
}

fn run_typed<T: Real>(op: &Op, ins: &[&Value], shape: &[usize]) -> Result<Value> {
    let x_shape = match op {
        Op::NormStats(_) | Op::NormApply { .. } => input(ins, 0)?.shape.clone(),
        _ => input(ins, 1)?.shape.clone(),
    };
    let mut out = Storage::uninit(T::DTYPE, shape.iter().product())?;
    let o = out.as_mut_slice::<T>()?;
    match op {
        Op::NormStats(mode) => {
            let d = Dims::of(&x_shape, *mode)?;
            let x = dense::<T>(input(ins, 0)?)?;
            stats(&d, x.storage.as_slice::<T>()?, o);
        }
        Op::NormApply {
            mode,
            eps,
            weight,
            bias,
        } => {
            let d = Dims::of(&x_shape, *mode)?;
            let x = dense::<T>(input(ins, 0)?)?;
            let st = dense::<T>(input(ins, 1)?)?;
            let mut next = 2;
            let mut param = |present: bool| -> Result<Option<Value>> {
                if !present {
                    return Ok(None);
                }
                next += 1;
                Ok(Some(dense::<T>(input(ins, next - 1)?)?))
            };
            let (w, b) = (param(*weight)?, param(*bias)?);
            let w = w.as_ref().map(|v| v.storage.as_slice::<T>()).transpose()?;
            let b = b.as_ref().map(|v| v.storage.as_slice::<T>()).transpose()?;
            let coef = Coefs::new(&d, st.storage.as_slice::<T>()?, *eps, w, b);
            apply(&d, &coef, x.storage.as_slice::<T>()?, o);
        }
        Op::NormGradInput {
            mode,
            eps,
            weight,
            sums,
        } => {
            let d = Dims::of(&x_shape, *mode)?;
            let dy = dense::<T>(input(ins, 0)?)?;
            let x = dense::<T>(input(ins, 1)?)?;
            let st = dense::<T>(input(ins, 2)?)?;
            let w = if *weight {
                Some(dense::<T>(input(ins, 3)?)?)
            } else {
                None
            };
            let pre = if *sums {
                Some(dense::<T>(input(ins, 3 + *weight as usize)?)?)
            } else {
                None
            };
            let w = w.as_ref().map(|v| v.storage.as_slice::<T>()).transpose()?;
            let pre = pre
                .as_ref()
                .map(|v| v.storage.as_slice::<T>())
                .transpose()?;
            let (dy, x) = (dy.storage.as_slice::<T>()?, x.storage.as_slice::<T>()?);
            let st = st.storage.as_slice::<T>()?;
            if d.s == 1 && matches!(d.mode, NormMode::Groups(_)) {
                grad_input_rows(&d, dy, x, st, *eps, w, o);
            } else if matches!(d.mode, NormMode::Groups(_)) {
                grad_input_groups(&d, dy, x, st, *eps, w, o);
            } else {
                let coef = grad_input_coefs(&d, dy, x, st, *eps, w, pre);
                grad_input(&d, &coef, dy, x, o);
            }
        }
        Op::NormGradAffine { mode, eps } => {
            let d = Dims::of(&x_shape, *mode)?;
            let dy = dense::<T>(input(ins, 0)?)?;
            let x = dense::<T>(input(ins, 1)?)?;
            let st = dense::<T>(input(ins, 2)?)?;
            grad_affine(
                &d,
                dy.storage.as_slice::<T>()?,
                x.storage.as_slice::<T>()?,
                st.storage.as_slice::<T>()?,
                *eps,
                o,
            );
        }
        other => {
            return Err(Error::Invalid(format!(
                "internal: {} is not a normalization op",
                other.name()
            )))
        }
    }
    Ok(Value::contiguous(Arc::new(out), shape.to_vec()))
}

/// Per-channel sums over samples and positions: `f(i, ch, acc)` adds the contributions of
/// segment (sample `i`, channel `ch`) to the `k` sums `acc` of channel `ch`.
fn channel_sums<F>(d: &Dims, k: usize, f: F) -> Vec<f64>
where
    F: Fn(usize, usize, &mut [f64]) + Sync,
{
    row_sums(d, k, |i, acc| {
        for (ch, a) in acc.chunks_exact_mut(k).enumerate() {
            f(i, ch, a);
        }
    })
}

/// Per-channel sums over samples: `f(i, acc)` adds the contributions of sample `i` to the
/// sums `acc` (`k` per channel, channel-major). Sample chunks run in parallel, each with its
/// own partial sums.
fn row_sums<F>(d: &Dims, k: usize, f: F) -> Vec<f64>
where
    F: Fn(usize, &mut [f64]) + Sync,
{
    let chunks = if d.numel() >= PAR_MIN {
        (rayon::current_num_threads() * 2).min(d.n).max(1)
    } else {
        1
    };
    let per = d.n.div_ceil(chunks);
    let run = |t: usize| {
        let mut acc = vec![0.0f64; d.c * k];
        for i in t * per..((t + 1) * per).min(d.n) {
            f(i, &mut acc);
        }
        acc
    };
    let partial: Vec<Vec<f64>> = if chunks > 1 {
        (0..chunks).into_par_iter().map(run).collect()
    } else {
        vec![run(0)]
    };
    let mut total = vec![0.0f64; d.c * k];
    for p in partial {
        total.iter_mut().zip(p).for_each(|(t, v)| *t += v);
    }
    total
}

/// Mean and biased variance per statistic, written as `[2, R]`.
fn stats<T: Real>(d: &Dims, x: &[T], out: &mut [T]) {
    let r = d.r();
    let (means, vars) = out.split_at_mut(r);
    match d.mode {
        NormMode::Groups(_) => {
            let len = d.count();
            let row = |(idx, (m, v)): (usize, (&mut T, &mut T))| {
                let xs = &x[idx * len..(idx + 1) * len];
                let mean = real::sum(xs) / len.max(1) as f64;
                *m = T::from_f64(mean);
                *v = T::from_f64(real::sum_sq_dev(xs, T::from_f64(mean)) / len.max(1) as f64);
            };
            if d.numel() >= PAR_MIN && r > 1 {
                means
                    .par_iter_mut()
                    .zip(vars.par_iter_mut())
                    .with_min_len(min_items(len))
                    .enumerate()
                    .for_each(row);
            } else {
                means
                    .iter_mut()
                    .zip(vars.iter_mut())
                    .enumerate()
                    .for_each(row);
            }
        }
        NormMode::Channels => {
            let count = (d.n * d.s).max(1) as f64;
            let seg = |i: usize, ch: usize| &x[(i * d.c + ch) * d.s..(i * d.c + ch + 1) * d.s];
            let (sums, sq);
            let mean: Vec<T>;
            if d.s == 1 {
                // [N, C]: vectorizable loops along each row.
                let row = |i: usize| &x[i * d.c..(i + 1) * d.c];
                sums = row_sums(d, 1, |i, acc| {
                    acc.iter_mut()
                        .zip(row(i))
                        .for_each(|(a, v)| *a += v.to_f64())
                });
                mean = sums.iter().map(|&s| T::from_f64(s / count)).collect();
                sq = row_sums(d, 1, |i, acc| {
                    for ((a, &v), &m) in acc.iter_mut().zip(row(i)).zip(&mean) {
                        let dv = v - m;
                        *a += (dv * dv).to_f64();
                    }
                });
            } else {
                sums = channel_sums(d, 1, |i, ch, a| a[0] += real::sum(seg(i, ch)));
                mean = sums.iter().map(|&s| T::from_f64(s / count)).collect();
                sq = channel_sums(d, 1, |i, ch, a| {
                    a[0] += real::sum_sq_dev(seg(i, ch), mean[ch])
                });
            }
            for ch in 0..d.c {
                means[ch] = mean[ch];
                vars[ch] = T::from_f64(sq[ch] / count);
            }
        }
    }
}

/// What the elementwise passes need: statistics as (mean, rstd) and the affine parameters.
struct Coefs<'a, T> {
    mean: Vec<T>,
    rstd: Vec<T>,
    weight: Option<&'a [T]>,
    bias: Option<&'a [T]>,
}

impl<'a, T: Real> Coefs<'a, T> {
    fn new(d: &Dims, st: &[T], eps: f64, weight: Option<&'a [T]>, bias: Option<&'a [T]>) -> Self {
        let r = d.r();
        let mean = st[..r].to_vec();
        let rstd = st[r..2 * r]
            .iter()
            .map(|v| T::from_f64(1.0 / (v.to_f64() + eps).sqrt()))
            .collect();
        Coefs {
            mean,
            rstd,
            weight,
            bias,
        }
    }

    /// `(a, b)` with `y = a * x + b` on segment (sample `i`, channel `ch`).
    #[inline(always)]
    fn affine(&self, d: &Dims, i: usize, ch: usize) -> (T, T) {
        let r = d.stat(i, ch);
        let w = self.weight.map_or(T::ONE, |w| w[ch]);
        let b = self.bias.map_or(T::ZERO, |b| b[ch]);
        let a = self.rstd[r] * w;
        (a, b - self.mean[r] * a)
    }
}

/// `y = a * x + b` with per-segment coefficients from `coef(i, ch)`, parallel by sample rows
/// (or by segment when segments are long).
fn segment_map<T: Real, F>(d: &Dims, x: &[T], y: &mut [T], coef: F)
where
    F: Fn(usize, usize, &[T], &mut [T]) + Sync,
{
    let (c, s) = (d.c, d.s);
    let par = d.numel() >= PAR_MIN;
    if s >= SEG_MIN || d.n == 1 {
        let seg = |(idx, ys): (usize, &mut [T])| {
            let xs = &x[idx * s..(idx + 1) * s];
            coef(idx / c, idx % c, xs, ys)
        };
        if par {
            y.par_chunks_mut(s.max(1))
                .with_min_len(min_items(s))
                .enumerate()
                .for_each(seg);
        } else {
            y.chunks_mut(s.max(1)).enumerate().for_each(seg);
        }
    } else {
        let row = |(i, ys): (usize, &mut [T])| {
            for ch in 0..c {
                let o = ch * s;
                coef(
                    i,
                    ch,
                    &x[i * c * s + o..i * c * s + o + s],
                    &mut ys[o..o + s],
                );
            }
        };
        if par {
            y.par_chunks_mut((c * s).max(1))
                .with_min_len(min_items(c * s))
                .enumerate()
                .for_each(row);
        } else {
            y.chunks_mut((c * s).max(1)).enumerate().for_each(row);
        }
    }
}

/// Runs `f(i, row)` on every row of `[N, C]` data (one element per channel), in parallel
/// when the data is large.
fn rows_s1<T: Real>(d: &Dims, y: &mut [T], f: impl Fn(usize, &mut [T]) + Sync) {
    let work = |(i, ys): (usize, &mut [T])| f(i, ys);
    if d.numel() >= PAR_MIN {
        y.par_chunks_mut(d.c.max(1))
            .with_min_len(min_items(d.c))
            .enumerate()
            .for_each(work);
    } else {
        y.chunks_mut(d.c.max(1)).enumerate().for_each(work);
    }
}

/// `y[j] = a[j] * x[j] + b[j]` along one row (vectorizable).
#[inline(always)]
fn axpb<T: Real>(y: &mut [T], a: &[T], x: &[T], b: &[T]) {
    let n = y.len().min(a.len()).min(x.len()).min(b.len());
    let (y, a, x, b) = (&mut y[..n], &a[..n], &x[..n], &b[..n]);
    for j in 0..n {
        y[j] = a[j] * x[j] + b[j];
    }
}

fn apply<T: Real>(d: &Dims, coef: &Coefs<'_, T>, x: &[T], y: &mut [T]) {
    if d.s == 1 {
        // One element per channel: vectorizable loops along each row.
        match d.mode {
            NormMode::Channels => {
                let (a, b): (Vec<T>, Vec<T>) = (0..d.c).map(|ch| coef.affine(d, 0, ch)).unzip();
                rows_s1(d, y, |i, ys| axpb(ys, &a, &x[i * d.c..(i + 1) * d.c], &b));
            }
            NormMode::Groups(_) => {
                let cg = d.cg();
                let ones = vec![T::ONE; if coef.weight.is_none() { d.c } else { 0 }];
                let zeros = vec![T::ZERO; if coef.bias.is_none() { d.c } else { 0 }];
                let w = coef.weight.unwrap_or(&ones);
                let bias = coef.bias.unwrap_or(&zeros);
                rows_s1(d, y, |i, ys| {
                    let xs = &x[i * d.c..(i + 1) * d.c];
                    for (g, (yg, xg)) in ys.chunks_mut(cg).zip(xs.chunks(cg)).enumerate() {
                        let ch0 = g * cg;
                        let r = d.stat(i, ch0);
                        let (m, rs) = (coef.mean[r], coef.rstd[r]);
                        let n = yg.len();
                        let (w, b) = (&w[ch0..ch0 + n], &bias[ch0..ch0 + n]);
                        for (((o, &v), &wj), &bj) in yg.iter_mut().zip(xg).zip(w).zip(b) {
                            *o = (v - m) * rs * wj + bj;
                        }
                    }
                });
            }
        }
        return;
    }
    segment_map(d, x, y, |i, ch, xs, ys| {
        let (a, b) = coef.affine(d, i, ch);
        for (o, &v) in ys.iter_mut().zip(xs) {
            *o = v * a + b;
        }
    });
}

/// Per statistic: the sums `Σ g` and `Σ g * (x - mean)` with `g = dy * weight`, turned
/// into the coefficients `(a_base, b, c)` of `dx = a_base * weight * dy + b * x + c`.
struct GradCoefs<'a, T> {
    rstd: Vec<T>,
    b: Vec<T>,
    c: Vec<T>,
    weight: Option<&'a [T]>,
}

/// `pre`: the `[2, C]` affine gradients (`Σ dy * xhat`, `Σ dy` per channel) when already
/// computed; in per-channel mode they give both sums without another pass over the data.
fn grad_input_coefs<'a, 'b, T: Real>(
    d: &Dims,
    dy: &'b [T],
    x: &'b [T],
    st: &[T],
    eps: f64,
    weight: Option<&'a [T]>,
    pre: Option<&[T]>,
) -> GradCoefs<'a, T> {
    let r = d.r();
    let mean = &st[..r];
    let rstd: Vec<f64> = st[r..2 * r]
        .iter()
        .map(|v| 1.0 / (v.to_f64() + eps).sqrt())
        .collect();
    let s = d.s;
    let seg = |buf: &'b [T], i: usize, ch: usize| -> &'b [T] {
        &buf[(i * d.c + ch) * s..(i * d.c + ch + 1) * s]
    };
    // sums[2 * r] = Σ g, sums[2 * r + 1] = Σ g * (x - mean)
    let mut sums = vec![0.0f64; 2 * r];
    let seg_sums = |i: usize, ch: usize, out: &mut [f64]| {
        let m = mean[d.stat(i, ch)];
        let w = weight.map_or(1.0, |w| w[ch].to_f64());
        let (dys, xs) = (seg(dy, i, ch), seg(x, i, ch));
        out[0] += w * real::sum(dys);
        out[1] += w * real::dot_dev(dys, xs, m);
    };
    match d.mode {
        NormMode::Groups(_) => {
            // The group kernels (grad_input_rows / grad_input_groups) fuse these sums with
            // the gradient; this sequential form keeps the function complete for any mode.
            let groups = d.c / d.cg();
            for (k, out) in sums.chunks_mut(2).enumerate() {
                let (i, g) = (k / groups, k % groups);
                for ch in g * d.cg()..(g + 1) * d.cg() {
                    seg_sums(i, ch, out);
                }
            }
        }
        NormMode::Channels if pre.is_some_and(|p| p.len() == 2 * d.c) => {
            let p = pre.unwrap_or_default();
            for ch in 0..d.c {
                let w = weight.map_or(1.0, |w| w[ch].to_f64());
                sums[2 * ch] = w * p[d.c + ch].to_f64();
                sums[2 * ch + 1] = w * p[ch].to_f64() / rstd[ch];
            }
        }
        NormMode::Channels if s == 1 => {
            // [N, C]: accumulate Σ dy and Σ dy * (x - mean) along rows (two arrays of C),
            // then weight them and interleave per statistic.
            let c = d.c;
            let raw = row_sums(d, 2, |i, acc| {
                let (dys, xs) = (&dy[i * c..(i + 1) * c], &x[i * c..(i + 1) * c]);
                let (s1, s2) = acc.split_at_mut(c);
                for j in 0..c.min(dys.len()).min(xs.len()) {
                    s1[j] += dys[j].to_f64();
                    s2[j] += (dys[j] * (xs[j] - mean[j])).to_f64();
                }
            });
            for ch in 0..c {
                let w = weight.map_or(1.0, |w| w[ch].to_f64());
                sums[2 * ch] = w * raw[ch];
                sums[2 * ch + 1] = w * raw[c + ch];
            }
        }
        NormMode::Channels => sums = channel_sums(d, 2, seg_sums),
    }
    let count = d.count().max(1) as f64;
    let (mut b, mut c) = (vec![T::ZERO; r], vec![T::ZERO; r]);
    for k in 0..r {
        let (rs, m) = (rstd[k], mean[k].to_f64());
        let (g1, g2) = (sums[2 * k], sums[2 * k + 1]);
        let bk = -rs * rs * rs * g2 / count;
        b[k] = T::from_f64(bk);
        c[k] = T::from_f64(-rs * g1 / count - m * bk);
    }
    GradCoefs {
        rstd: rstd.into_iter().map(T::from_f64).collect(),
        b,
        c,
        weight,
    }
}

fn grad_input<T: Real>(d: &Dims, k: &GradCoefs<'_, T>, dy: &[T], x: &[T], dx: &mut [T]) {
    let s = d.s;
    if s == 1 {
        let ones = vec![T::ONE; if k.weight.is_none() { d.c } else { 0 }];
        let w = k.weight.unwrap_or(&ones);
        match d.mode {
            NormMode::Channels => {
                // dx = a * dy + (b * x + c) with per-channel a, b, c.
                let a: Vec<T> = (0..d.c).map(|ch| k.rstd[ch] * w[ch]).collect();
                rows_s1(d, dx, |i, out| {
                    let lo = i * d.c;
                    let (dys, xs) = (&dy[lo..lo + d.c], &x[lo..lo + d.c]);
                    let n = out.len().min(a.len()).min(k.b.len()).min(k.c.len());
                    let (a, b, c) = (&a[..n], &k.b[..n], &k.c[..n]);
                    for j in 0..n {
                        out[j] = a[j] * dys[j] + b[j] * xs[j] + c[j];
                    }
                });
            }
            NormMode::Groups(_) => {
                let cg = d.cg();
                rows_s1(d, dx, |i, out| {
                    for (g, og) in out.chunks_mut(cg).enumerate() {
                        let (ch0, n) = (g * cg, og.len());
                        let r = d.stat(i, ch0);
                        let (rs, b, c) = (k.rstd[r], k.b[r], k.c[r]);
                        let lo = i * d.c + ch0;
                        let (dys, xs, w) = (&dy[lo..lo + n], &x[lo..lo + n], &w[ch0..ch0 + n]);
                        for (((o, &g), &v), &wj) in og.iter_mut().zip(dys).zip(xs).zip(w) {
                            *o = rs * wj * g + b * v + c;
                        }
                    }
                });
            }
        }
        return;
    }
    segment_map(d, x, dx, |i, ch, xs, out| {
        let r = d.stat(i, ch);
        let a = k.rstd[r] * k.weight.map_or(T::ONE, |w| w[ch]);
        let (b, c) = (k.b[r], k.c[r]);
        let lo = (i * d.c + ch) * s;
        let dys = &dy[lo..lo + s];
        for ((o, &xv), &g) in out.iter_mut().zip(xs).zip(dys) {
            *o = a * g + b * xv + c;
        }
    });
}

/// Input gradient of a row-wise (layer) norm in one pass per row: each group's two sums and
/// its gradient are computed while the row is in cache.
fn grad_input_rows<T: Real>(
    d: &Dims,
    dy: &[T],
    x: &[T],
    st: &[T],
    eps: f64,
    weight: Option<&[T]>,
    dx: &mut [T],
) {
    let (r, cg) = (d.r(), d.cg());
    let (mean, var) = (&st[..r], &st[r..2 * r]);
    let count = cg.max(1) as f64;
    rows_s1(d, dx, |i, out| {
        for (g, og) in out.chunks_mut(cg).enumerate() {
            let (ch0, n) = (g * cg, og.len());
            let k = d.stat(i, ch0);
            let (m, rs) = (mean[k], 1.0 / (var[k].to_f64() + eps).sqrt());
            let lo = i * d.c + ch0;
            let (dys, xs) = (&dy[lo..lo + n], &x[lo..lo + n]);
            let (g1, g2) = match weight {
                Some(w) => {
                    let w = &w[ch0..ch0 + n];
                    (real::dot(w, dys), real::wdot_dev(w, dys, xs, m))
                }
                None => (real::sum(dys), real::dot_dev(dys, xs, m)),
            };
            let bk = -rs * rs * rs * g2 / count;
            let (b, c) = (
                T::from_f64(bk),
                T::from_f64(-rs * g1 / count - m.to_f64() * bk),
            );
            let rs = T::from_f64(rs);
            match weight {
                Some(w) => {
                    let w = &w[ch0..ch0 + n];
                    for (((o, &gv), &v), &wj) in og.iter_mut().zip(dys).zip(xs).zip(w) {
                        *o = rs * wj * gv + b * v + c;
                    }
                }
                None => {
                    for ((o, &gv), &v) in og.iter_mut().zip(dys).zip(xs) {
                        *o = rs * gv + b * v + c;
                    }
                }
            }
        }
    });
}

/// Input gradient of a group norm with positions (`S > 1`) in one pass per group: each
/// (sample, group) block of `C / groups` channel segments is contiguous, so its two sums and
/// its gradient are computed while the block is in cache.
fn grad_input_groups<T: Real>(
    d: &Dims,
    dy: &[T],
    x: &[T],
    st: &[T],
    eps: f64,
    weight: Option<&[T]>,
    dx: &mut [T],
) {
    let (r, cg, s) = (d.r(), d.cg(), d.s);
    let (mean, var) = (&st[..r], &st[r..2 * r]);
    let len = cg * s;
    let count = len.max(1) as f64;
    let group = |(k, out): (usize, &mut [T])| {
        let (m, rs) = (mean[k], 1.0 / (var[k].to_f64() + eps).sqrt());
        let ch0 = (k % (d.c / cg)) * cg;
        let (dys, xs) = (&dy[k * len..(k + 1) * len], &x[k * len..(k + 1) * len]);
        let w = |j: usize| weight.map_or(T::ONE, |w| w[ch0 + j]);
        let (mut g1, mut g2) = (0.0, 0.0);
        for (j, (dseg, xseg)) in dys.chunks(s).zip(xs.chunks(s)).enumerate() {
            let wj = w(j).to_f64();
            g1 += wj * real::sum(dseg);
            g2 += wj * real::dot_dev(dseg, xseg, m);
        }
        let bk = -rs * rs * rs * g2 / count;
        let (b, c) = (
            T::from_f64(bk),
            T::from_f64(-rs * g1 / count - m.to_f64() * bk),
        );
        let rs = T::from_f64(rs);
        for (j, ((oseg, dseg), xseg)) in out
            .chunks_mut(s)
            .zip(dys.chunks(s))
            .zip(xs.chunks(s))
            .enumerate()
        {
            let a = rs * w(j);
            for ((o, &gv), &v) in oseg.iter_mut().zip(dseg).zip(xseg) {
                *o = a * gv + b * v + c;
            }
        }
    };
    if d.numel() >= PAR_MIN {
        dx.par_chunks_mut(len.max(1))
            .with_min_len(min_items(len))
            .enumerate()
            .for_each(group);
    } else {
        dx.chunks_mut(len.max(1)).enumerate().for_each(group);
    }
}

/// Weight and bias gradients: `Σ dy * xhat` and `Σ dy` per channel, written as `[2, C]`.
fn grad_affine<T: Real>(d: &Dims, dy: &[T], x: &[T], st: &[T], eps: f64, out: &mut [T]) {
    let r = d.r();
    let mean = &st[..r];
    let rstd: Vec<f64> = st[r..2 * r]
        .iter()
        .map(|v| 1.0 / (v.to_f64() + eps).sqrt())
        .collect();
    let s = d.s;
    let sums = if s == 1 {
        // One element per channel: accumulate whole rows with channel-parallel loops.
        let c = d.c;
        let raw = row_sums(d, 2, |i, acc| {
            let lo = i * c;
            let (dys, xs) = (&dy[lo..lo + c], &x[lo..lo + c]);
            let (sw, sb) = acc.split_at_mut(c);
            match d.mode {
                NormMode::Groups(_) => {
                    // One statistic per (row, group): scalars along each group.
                    for (g, ((swg, sbg), (dg, xg))) in sw
                        .chunks_mut(d.cg())
                        .zip(sb.chunks_mut(d.cg()))
                        .zip(dys.chunks(d.cg()).zip(xs.chunks(d.cg())))
                        .enumerate()
                    {
                        let k = d.stat(i, g * d.cg());
                        let (m, rs) = (mean[k], rstd[k]);
                        for j in 0..swg.len().min(dg.len()).min(xg.len()) {
                            swg[j] += rs * (dg[j] * (xg[j] - m)).to_f64();
                            sbg[j] += dg[j].to_f64();
                        }
                    }
                }
                NormMode::Channels => {
                    for j in 0..c {
                        sw[j] += rstd[j] * (dys[j] * (xs[j] - mean[j])).to_f64();
                        sb[j] += dys[j].to_f64();
                    }
                }
            }
        });
        // Interleave as (weight, bias) per channel like channel_sums.
        (0..c).flat_map(|ch| [raw[ch], raw[c + ch]]).collect()
    } else {
        channel_sums(d, 2, |i, ch, a| {
            let k = d.stat(i, ch);
            let lo = (i * d.c + ch) * s;
            let (dys, xs) = (&dy[lo..lo + s], &x[lo..lo + s]);
            a[0] += rstd[k] * real::dot_dev(dys, xs, mean[k]);
            a[1] += real::sum(dys);
        })
    };
    for ch in 0..d.c {
        out[ch] = T::from_f64(sums[2 * ch]);
        out[d.c + ch] = T::from_f64(sums[2 * ch + 1]);
    }
}
