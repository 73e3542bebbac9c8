//! [`Real`]: the float types (f32, f64) the normalization and attention kernels compute in,
//! and lane-parallel sums over slices that the compiler vectorizes.

use crate::kernels::math;
use crate::kernels::simd::multiversion;
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

/// Runs a kernel in the compute type of `dtype` (`f64` for float64, `f32` otherwise: one of
/// `in_f32` / `in_f64`) and casts its result to `dtype`.
pub fn in_compute_dtype(
    dtype: DType,
    in_f32: impl FnOnce() -> Result<Value>,
    in_f64: impl FnOnce() -> Result<Value>,
) -> Result<Value> {
    let out = match compute_dtype(dtype) {
        DType::Float64 => in_f64()?,
        _ => in_f32()?,
    };
    if out.dtype() == dtype {
        Ok(out)
    } else {
        crate::fused::materialize(&out, dtype)
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

/// Σ f(a_i, b_i, c_i) over equally long slices, accumulated over `LANES` independent lanes
/// in `T` per block of `BLOCK` elements (fixed-size chunks, so the loop vectorizes) and
/// across blocks in f64.
#[inline(always)]
fn lane_sum3<T: Real>(a: &[T], b: &[T], c: &[T], f: impl Fn(T, T, T) -> T) -> f64 {
    let n = a.len().min(b.len()).min(c.len());
    let mut total = 0.0f64;
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        let (ac, ar) = a[start..end].as_chunks::<LANES>();
        let (bc, br) = b[start..end].as_chunks::<LANES>();
        let (cc, cr) = c[start..end].as_chunks::<LANES>();
        let mut acc = [T::ZERO; LANES];
        for ((x, y), z) in ac.iter().zip(bc).zip(cc) {
            for l in 0..LANES {
                acc[l] = acc[l] + f(x[l], y[l], z[l]);
            }
        }
        let mut block: f64 = acc.iter().map(|v| v.to_f64()).sum();
        for ((&x, &y), &z) in ar.iter().zip(br).zip(cr) {
            block += f(x, y, z).to_f64();
        }
        total += block;
        start = end;
    }
    total
}

#[inline(always)]
fn sum_body<const FMA: bool, T: Real>(x: &[T]) -> f64 {
    lane_sum3(x, x, x, |v, _, _| v)
}

#[inline(always)]
fn sum_sq_dev_body<const FMA: bool, T: Real>(x: &[T], m: T) -> f64 {
    lane_sum3(x, x, x, |v, _, _| {
        let d = v - m;
        d * d
    })
}

#[inline(always)]
fn dot_body<const FMA: bool, T: Real>(a: &[T], b: &[T]) -> f64 {
    lane_sum3(a, b, b, |x, y, _| x * y)
}

#[inline(always)]
fn dot_dev_body<const FMA: bool, T: Real>(dy: &[T], x: &[T], m: T) -> f64 {
    lane_sum3(dy, x, x, |g, v, _| g * (v - m))
}

#[inline(always)]
fn wdot_dev_body<const FMA: bool, T: Real>(w: &[T], dy: &[T], x: &[T], m: T) -> f64 {
    lane_sum3(w, dy, x, |wv, g, v| wv * g * (v - m))
}

// Each sum is compiled for AVX-512 and AVX2 as well and picks the best at run time (the
// baseline build only has SSE2).
multiversion! {
    /// Σ x
    pub fn sum<T: Real>(x: &[T]) -> f64 = sum_body;
}
multiversion! {
    /// Σ (x - m)²
    pub fn sum_sq_dev<T: Real>(x: &[T], m: T) -> f64 = sum_sq_dev_body;
}
multiversion! {
    /// Σ a·b
    pub fn dot<T: Real>(a: &[T], b: &[T]) -> f64 = dot_body;
}
multiversion! {
    /// Σ dy·(x - m)
    pub fn dot_dev<T: Real>(dy: &[T], x: &[T], m: T) -> f64 = dot_dev_body;
}
multiversion! {
    /// Σ w·dy·(x - m)
    pub fn wdot_dev<T: Real>(w: &[T], dy: &[T], x: &[T], m: T) -> f64 = wdot_dev_body;
}
