//! Softmax and log-softmax along one axis, numerically stable (max subtracted), computed
//! in f32 (f64 for float64 tensors) and parallel over rows.

use crate::fused::materialize;
use crate::kernels::math;
use pyflame_core::{DType, Result};
use pyflame_ir::Value;
use rayon::prelude::*;

fn rows_f32(data: &mut [f32], n: usize, log: bool) {
    let work = |row: &mut [f32]| {
        let max = row.iter().fold(
            f32::NEG_INFINITY,
            |m, &x| if x > m || x.is_nan() { x } else { m },
        );
        let shift = if max.is_finite() { max } else { 0.0 };
        row.iter_mut().for_each(|x| *x -= shift);
        if log {
            let mut e = row.to_vec();
            math::exp_f32(&mut e);
            let lse = e.iter().map(|&x| x as f64).sum::<f64>().ln() as f32;
            row.iter_mut().for_each(|x| *x -= lse);
        } else {
            math::exp_f32(row);
            let inv = 1.0 / row.iter().map(|&x| x as f64).sum::<f64>() as f32;
            row.iter_mut().for_each(|x| *x *= inv);
        }
    };
    if data.len() >= 1 << 15 && n > 0 {
        data.par_chunks_mut(n).for_each(work);
    } else if n > 0 {
        data.chunks_mut(n).for_each(work);
    }
}

fn rows_f64(data: &mut [f64], n: usize, log: bool) {
    let work = |row: &mut [f64]| {
        let max = row.iter().fold(
            f64::NEG_INFINITY,
            |m, &x| if x > m || x.is_nan() { x } else { m },
        );
        let shift = if max.is_finite() { max } else { 0.0 };
        row.iter_mut().for_each(|x| *x -= shift);
        let sum: f64 = row.iter().map(|x| x.exp()).sum();
        if log {
            let lse = sum.ln();
            row.iter_mut().for_each(|x| *x -= lse);
        } else {
            row.iter_mut().for_each(|x| *x = x.exp() / sum);
        }
    };
    if data.len() >= 1 << 15 && n > 0 {
        data.par_chunks_mut(n).for_each(work);
    } else if n > 0 {
        data.chunks_mut(n).for_each(work);
    }
}

/// Softmax of `x` along `axis`, returned as a new contiguous value of `dtype`.
pub fn softmax(x: &Value, axis: usize, log: bool, dtype: DType) -> Result<Value> {
    let nd = x.shape.len();
    if nd == 0 {
        let one = if log { 0.0 } else { 1.0 };
        let v = materialize(x, dtype)?;
        let s = pyflame_core::Storage::from_slice(&[one])?;
        let f = Value::contiguous(std::sync::Arc::new(s), vec![]);
        return materialize(&f, v.dtype());
    }
    // Move `axis` last so rows are contiguous, compute, then move it back.
    let mut perm: Vec<usize> = (0..nd).filter(|&a| a != axis).collect();
    perm.push(axis);
    let moved = crate::movement::view(
        &pyflame_ir::Op::Permute(perm.clone()),
        x,
        &perm.iter().map(|&a| x.shape[a]).collect::<Vec<_>>(),
    )?;
    let acc = if dtype == DType::Float64 {
        DType::Float64
    } else {
        DType::Float32
    };
    let mut buf = materialize(&moved, acc)?;
    let n = x.shape[axis];
    {
        let storage = std::sync::Arc::get_mut(&mut buf.storage);
        let owned;
        let st = match storage {
            Some(s) if s.is_owned() => s,
            _ => {
                owned = std::sync::Arc::new(buf.storage.deep_clone()?);
                buf.storage = owned;
                std::sync::Arc::get_mut(&mut buf.storage).ok_or_else(|| {
                    pyflame_core::Error::Invalid("internal: softmax buffer".into())
                })?
            }
        };
        match acc {
            DType::Float64 => rows_f64(st.as_mut_slice::<f64>()?, n, log),
            _ => rows_f32(st.as_mut_slice::<f32>()?, n, log),
        }
    }
    let mut inv = vec![0usize; nd];
    for (i, &p) in perm.iter().enumerate() {
        inv[p] = i;
    }
    let back = crate::movement::view(&pyflame_ir::Op::Permute(inv), &buf, &x.shape)?;
    materialize(&back, dtype)
}
