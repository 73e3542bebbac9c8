//! Fused optimizer updates: one pass over the parameter, its gradient and its state
//! ([`Op::AdamStep`]), instead of one elementwise program per new tensor, each reloading
//! what the others read.

use crate::fused::contiguous;
use crate::kernels::simd::multiversion;
use pyflame_core::{DType, Error, Result, Storage};
use pyflame_ir::{AdamAttrs, Op, Value};
use rayon::prelude::*;
use std::sync::Arc;

/// Elements per parallel task (big enough to amortize a task, small enough to split a
/// layer's weights over the threads).
const TASK: usize = 1 << 14;

/// Runs an optimizer op on realized inputs.
pub fn run(op: &Op, ins: &[&Value], shape: &[usize], dtype: DType) -> Result<Value> {
    let Op::AdamStep(attrs) = op else {
        return Err(Error::Invalid(format!(
            "internal: {} is not an optimizer op",
            op.name()
        )));
    };
    // Inputs are usually contiguous rows of the previous step's output: read them in place.
    let dense = ins
        .iter()
        .map(|v| contiguous(v, dtype))
        .collect::<Result<Vec<_>>>()?;
    let n = dense.first().map_or(0, Value::numel);
    if dense.len() != shape.first().copied().unwrap_or(0) + 1
        || dense.iter().any(|v| v.numel() != n)
    {
        return Err(Error::Invalid(
            "internal: adam_step inputs do not match its output".into(),
        ));
    }
    let mut out = Storage::uninit(dtype, dense.len().saturating_sub(1) * n)?;
    macro_rules! go {
        ($T:ty) => {{
            let slices = dense
                .iter()
                .map(|v| Ok(&v.storage.as_slice::<$T>()?[v.offset..v.offset + n]))
                .collect::<Result<Vec<_>>>()?;
            adam::<$T>(&slices, attrs, out.as_mut_slice::<$T>()?, n);
        }};
    }
    match dtype {
        DType::Float32 => go!(f32),
        DType::Float64 => go!(f64),
        other => {
            return Err(Error::DType(format!(
                "adam_step supports float32 and float64, not {other}"
            )))
        }
    }
    Ok(Value::contiguous(Arc::new(out), shape.to_vec()))
}

/// Float arithmetic the update needs, for f32 and f64.
trait AdamFloat: Copy + Send + Sync + PartialOrd {
    fn of(v: f64) -> Self;
    fn add(self, o: Self) -> Self;
    fn sub(self, o: Self) -> Self;
    fn mul(self, o: Self) -> Self;
    fn div(self, o: Self) -> Self;
    fn sqrt(self) -> Self;
}

macro_rules! adam_float {
    ($T:ty) => {
        impl AdamFloat for $T {
            #[inline(always)]
            fn of(v: f64) -> Self {
                v as $T
            }
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn sub(self, o: Self) -> Self {
                self - o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            fn div(self, o: Self) -> Self {
                self / o
            }
            #[inline(always)]
            fn sqrt(self) -> Self {
                <$T>::sqrt(self)
            }
        }
    };
}
adam_float!(f32);
adam_float!(f64);

/// The step's coefficients in the element type.
#[derive(Clone, Copy)]
struct Coefficients<T> {
    one_minus_beta1: T,
    beta2: T,
    one_minus_beta2: T,
    eps: T,
    step_size: T,
    bias_correction2_sqrt: T,
}

/// PyTorch's Adam, element by element: `m += (g - m)(1 - beta1)`, `v = v beta2 + (1 - beta2)
/// g^2`, (`vmax = max(vmax, v)`), `p -= step_size m / (sqrt(v or vmax) / bc2_sqrt + eps)`.
/// `ins` = param, grad, m, v (, vmax); `out` rows = new param, m, v (, vmax).
fn adam<T: AdamFloat>(ins: &[&[T]], a: &AdamAttrs, out: &mut [T], n: usize) {
    let c = Coefficients {
        one_minus_beta1: T::of(1.0 - a.beta1),
        beta2: T::of(a.beta2),
        one_minus_beta2: T::of(1.0 - a.beta2),
        eps: T::of(a.eps),
        step_size: T::of(a.step_size),
        bias_correction2_sqrt: T::of(a.bias_correction2_sqrt),
    };
    let rows = ins.len() - 1;
    let base = out.as_mut_ptr() as usize;
    let tasks = n.div_ceil(TASK);
    let body = |t: usize| {
        let (lo, hi) = (t * TASK, ((t + 1) * TASK).min(n));
        // SAFETY: each task writes elements [lo, hi) of every output row, which no other
        // task touches, inside the `rows * n` buffer.
        let row = |r: usize| unsafe {
            std::slice::from_raw_parts_mut((base as *mut T).add(r * n + lo), hi - lo)
        };
        let part = |i: usize| &ins[i][lo..hi];
        if rows == 4 {
            let (m_out, v_out, vmax_out) = (row(1), row(2), row(3));
            moments(part(1), part(2), part(3), m_out, v_out, c);
            amsgrad_max(part(4), v_out, vmax_out);
            update(part(0), m_out, vmax_out, row(0), c);
        } else {
            adam_plain(
                part(0),
                part(1),
                part(2),
                part(3),
                row(0),
                row(1),
                row(2),
                c,
            );
        }
    };
    if tasks > 1 {
        (0..tasks).into_par_iter().for_each(body);
    } else {
        (0..tasks).for_each(body);
    }
}

/// New first and second moments of one element: `m + (g - m)(1 - beta1)`,
/// `v beta2 + (1 - beta2) g^2`.
#[inline(always)]
fn moment_pair<T: AdamFloat>(g: T, m: T, v: T, c: &Coefficients<T>) -> (T, T) {
    (
        m.add(g.sub(m).mul(c.one_minus_beta1)),
        v.mul(c.beta2).add(c.one_minus_beta2.mul(g).mul(g)),
    )
}

/// New parameter from its moments: `p - step_size m / (sqrt(second) / bc2_sqrt + eps)`.
#[inline(always)]
fn stepped<T: AdamFloat>(p: T, m: T, second: T, c: &Coefficients<T>) -> T {
    let denom = second.sqrt().div(c.bias_correction2_sqrt).add(c.eps);
    p.sub(c.step_size.mul(m.div(denom)))
}

#[inline(always)]
fn moments_body<const FMA: bool, T: AdamFloat>(
    g: &[T],
    m: &[T],
    v: &[T],
    m_out: &mut [T],
    v_out: &mut [T],
    c: Coefficients<T>,
) {
    let n = g.len();
    let (m, v, m_out, v_out) = (&m[..n], &v[..n], &mut m_out[..n], &mut v_out[..n]);
    for i in 0..n {
        (m_out[i], v_out[i]) = moment_pair(g[i], m[i], v[i], &c);
    }
}

/// Adam without amsgrad in one pass (moments and update per element), so each input is
/// read once.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn adam_plain_body<const FMA: bool, T: AdamFloat>(
    p: &[T],
    g: &[T],
    m: &[T],
    v: &[T],
    p_out: &mut [T],
    m_out: &mut [T],
    v_out: &mut [T],
    c: Coefficients<T>,
) {
    let n = p.len();
    let (g, m, v) = (&g[..n], &m[..n], &v[..n]);
    let (p_out, m_out, v_out) = (&mut p_out[..n], &mut m_out[..n], &mut v_out[..n]);
    for i in 0..n {
        let (mi, vi) = moment_pair(g[i], m[i], v[i], &c);
        p_out[i] = stepped(p[i], mi, vi, &c);
        m_out[i] = mi;
        v_out[i] = vi;
    }
}

#[inline(always)]
fn amsgrad_max_body<const FMA: bool, T: AdamFloat>(vmax: &[T], v: &[T], out: &mut [T]) {
    let n = v.len();
    let (vmax, out) = (&vmax[..n], &mut out[..n]);
    for i in 0..n {
        // NaN in either wins, like torch.maximum
        #[allow(clippy::eq_op)]
        let keep = vmax[i] > v[i] || vmax[i] != vmax[i];
        out[i] = if keep { vmax[i] } else { v[i] };
    }
}

#[inline(always)]
fn update_body<const FMA: bool, T: AdamFloat>(
    p: &[T],
    m: &[T],
    second: &[T],
    out: &mut [T],
    c: Coefficients<T>,
) {
    let n = p.len();
    let (m, second, out) = (&m[..n], &second[..n], &mut out[..n]);
    for i in 0..n {
        out[i] = stepped(p[i], m[i], second[i], &c);
    }
}

multiversion! {
    /// See [`moments_body`].
    fn moments<T: AdamFloat>(g: &[T], m: &[T], v: &[T], m_out: &mut [T], v_out: &mut [T], c: Coefficients<T>) = moments_body;
}
multiversion! {
    /// See [`adam_plain_body`].
    #[allow(clippy::too_many_arguments)]
    fn adam_plain<T: AdamFloat>(p: &[T], g: &[T], m: &[T], v: &[T], p_out: &mut [T], m_out: &mut [T], v_out: &mut [T], c: Coefficients<T>) = adam_plain_body;
}
multiversion! {
    /// See [`amsgrad_max_body`].
    fn amsgrad_max<T: AdamFloat>(vmax: &[T], v: &[T], out: &mut [T]) = amsgrad_max_body;
}
multiversion! {
    /// See [`update_body`].
    fn update<T: AdamFloat>(p: &[T], m: &[T], second: &[T], out: &mut [T], c: Coefficients<T>) = update_body;
}
