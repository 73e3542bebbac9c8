//! Source ops: constant fills, ranges, identity matrices and random tensors.

use pyflame_core::{dispatch_dtype, numel, DType, Element, Result, Storage};
use pyflame_ir::{random, Op, RandDist, Value};
use rayon::prelude::*;
use std::sync::Arc;

fn fill_with<F: Fn(usize) -> f64 + Sync>(dtype: DType, shape: &[usize], f: F) -> Result<Value> {
    let n = numel(shape);
    let mut s = Storage::uninit(dtype, n)?;
    dispatch_dtype!(dtype, T => {
        let out = s.as_mut_slice::<T>()?;
        if n >= 1 << 16 {
            out.par_chunks_mut(1 << 14).enumerate().for_each(|(c, b)| {
                for (j, o) in b.iter_mut().enumerate() {
                    *o = T::from_f64(f(c * (1 << 14) + j));
                }
            });
        } else {
            out.iter_mut().enumerate().for_each(|(i, o)| *o = T::from_f64(f(i)));
        }
    });
    Ok(Value::contiguous(Arc::new(s), shape.to_vec()))
}

/// Evaluates a source op into a new contiguous value.
pub fn evaluate(op: &Op, shape: &[usize], dtype: DType) -> Result<Value> {
    match *op {
        Op::Full { value } => fill_with(dtype, shape, |_| value),
        Op::Arange { start, step } => fill_with(dtype, shape, |i| start + i as f64 * step),
        Op::Linspace { start, end } => {
            let n = shape[0];
            let step = if n > 1 {
                (end - start) / (n - 1) as f64
            } else {
                0.0
            };
            // The second half counts back from `end` so both endpoints are exact.
            fill_with(dtype, shape, |i| {
                if n == 1 || i < n / 2 {
                    start + step * i as f64
                } else {
                    end - step * (n - 1 - i) as f64
                }
            })
        }
        Op::Eye => {
            let m = shape[1];
            fill_with(dtype, shape, |i| if i / m == i % m { 1.0 } else { 0.0 })
        }
        Op::Random { dist, seed } => match dist {
            RandDist::Uniform { low, high } => fill_with(dtype, shape, |i| {
                let v = low + (high - low) * random::uniform(seed, i as u64);
                // Rounding to a narrow dtype must not produce `high`.
                v.min(high - (high - low) * f64::EPSILON)
            }),
            RandDist::Normal { mean, std } => fill_with(dtype, shape, |i| {
                mean + std * random::normal(seed, i as u64)
            }),
            RandDist::Int { low, high } => {
                let range = (high as i128 - low as i128) as u128;
                let n = numel(shape);
                let mut s = Storage::uninit(dtype, n)?;
                dispatch_dtype!(dtype, T => {
                    let out = s.as_mut_slice::<T>()?;
                    out.par_iter_mut().with_min_len(1 << 14).enumerate().for_each(|(i, o)| {
                        let r = (random::bits(seed, i as u64) as u128 % range) as i128 + low as i128;
                        *o = T::from_i64(r as i64);
                    });
                });
                Ok(Value::contiguous(Arc::new(s), shape.to_vec()))
            }
        },
        _ => Err(pyflame_core::Error::Invalid(format!(
            "internal: {} is not a source op",
            op.name()
        ))),
    }
}
