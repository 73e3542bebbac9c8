//! [`Real`]: the float types (f32, f64) the normalization and attention kernels compute in,
//! and lane-parallel sums over slices that the compiler vectorizes.

use crate::kernels::math;
use pyflame_core::{DType, Element, Result};
use pyflame_ir::Value;
use std::ops::{Add, Mul, Sub};

/// A float type the dedicated kernels compute in.
pub trait Real:
    Element + Add<Output = Self> + Sub<Output = Self> + Mul<Output = Self> + PartialOrd
{
    /// 0
    const ZERO: Self;
    /// 1
    const ONE: Self;
    /// -infinity
    const NEG_INF: Self;
    /// Exponential of every element, in place.
    fn exp_slice(x: &mut [Self]);
}

impl Real for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INF: Self = f32::NEG_INFINITY;
    fn exp_slice(x: &mut [Self]) {
        math::exp_f32(x)
    }
}

impl Real for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
    const NEG_INF: Self = f64::NEG_INFINITY;
    fn exp_slice(x: &mut [Self]) {
        math::exp_f64(x)
    }
}

/// The compute dtype for data of `dtype`: float64 stays, everything else uses float32.
pub fn compute_dtype(dtype: DType) -> DType {
    if dtype == DType::Float64 {
        DType::Float64
    } else {
        DType::Float32
    }
}

/// `v` as a contiguous value of `T` covering its whole storage (copied only when needed).
pub fn dense<T: Real>(v: &Value) -> Result<Value> {
    crate::fused::materialize(v, T::DTYPE)
}

/// Lanes of the vectorized sums.
const LANES: usize = 8;
/// Elements summed in `T` before the partial sum moves into f64.
const BLOCK: usize = 1024;

/// Sum of `f(i)` for `i` in `0..n`, accumulated over `LANES` independent lanes in `T` per
/// block of `BLOCK` elements and across blocks in f64.
#[inline(always)]
fn lane_sum<T: Real>(n: usize, f: impl Fn(usize) -> T) -> f64 {
    let mut total = 0.0f64;
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        let mut acc = [T::ZERO; LANES];
        let full = start + (end - start) / LANES * LANES;
        let mut i = start;
        while i < full {
            for (l, a) in acc.iter_mut().enumerate() {
                *a = *a + f(i + l);
            }
            i += LANES;
        }
        let mut block: f64 = acc.iter().map(|a| a.to_f64()).sum();
        for j in full..end {
            block += f(j).to_f64();
        }
        total += block;
        start = end;
    }
    total
}

/// Σ x
#[inline]
pub fn sum<T: Real>(x: &[T]) -> f64 {
    lane_sum(x.len(), |i| x[i])
}

/// Σ (x - m)²
#[inline]
pub fn sum_sq_dev<T: Real>(x: &[T], m: T) -> f64 {
    lane_sum(x.len(), |i| {
        let d = x[i] - m;
        d * d
    })
}

/// Σ a·b
#[inline]
pub fn dot<T: Real>(a: &[T], b: &[T]) -> f64 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    lane_sum(n, |i| a[i] * b[i])
}

/// Σ dy·(x - m)
#[inline]
pub fn dot_dev<T: Real>(dy: &[T], x: &[T], m: T) -> f64 {
    let n = dy.len().min(x.len());
    let (dy, x) = (&dy[..n], &x[..n]);
    lane_sum(n, |i| dy[i] * (x[i] - m))
}

/// Σ w·dy·(x - m)
#[inline]
pub fn wdot_dev<T: Real>(w: &[T], dy: &[T], x: &[T], m: T) -> f64 {
    let n = dy.len().min(x.len()).min(w.len());
    let (w, dy, x) = (&w[..n], &dy[..n], &x[..n]);
    lane_sum(n, |i| w[i] * dy[i] * (x[i] - m))
}
