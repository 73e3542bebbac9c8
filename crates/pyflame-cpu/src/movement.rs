//! Movement ops: zero-copy views (reshape, permute, expand, slice) where strides allow,
//! and copying ops (concatenation, gather along an axis).

use crate::fused::{broadcast_strides, materialize};
use pyflame_core::{
    contiguous_strides, dispatch_dtype, numel, DType, Element, Error, Result, Storage,
};
use pyflame_ir::{Op, Value};
use std::sync::Arc;

/// Tries to express `v` reshaped to `shape` as a view without copying.
fn reshape_view(v: &Value, shape: &[usize]) -> Option<Value> {
    if v.is_contiguous() {
        return Some(Value {
            storage: v.storage.clone(),
            shape: shape.to_vec(),
            strides: contiguous_strides(shape),
            offset: v.offset,
        });
    }
    // Merge the old shape into contiguous runs; each new axis group must fall in one run.
    let old: Vec<(usize, isize)> = v
        .shape
        .iter()
        .copied()
        .zip(v.strides.iter().copied())
        .filter(|&(d, _)| d != 1)
        .collect();
    let new_nz: Vec<usize> = shape.iter().copied().filter(|&d| d != 1).collect();
    let mut strides_nz = Vec::with_capacity(new_nz.len());
    let (mut oi, mut ni) = (0, 0);
    while oi < old.len() && ni < new_nz.len() {
        // Grow an old group and a new group until their element counts agree.
        let (mut op, mut np) = (old[oi].0, new_nz[ni]);
        let (os, mut nj) = (oi, ni);
        let mut oe = oi;
        while op != np {
            if op < np {
                oe += 1;
                op *= old.get(oe)?.0;
            } else {
                nj += 1;
                np *= new_nz.get(nj)?;
            }
        }
        // The old group must be contiguous within itself.
        for k in os..oe {
            if old[k].1 != old[k + 1].1 * old[k + 1].0 as isize {
                return None;
            }
        }
        let mut stride = old[oe].1;
        let mut group = Vec::new();
        for k in (ni..=nj).rev() {
            group.push(stride);
            stride *= new_nz[k] as isize;
        }
        group.reverse();
        strides_nz.extend(group);
        oi = oe + 1;
        ni = nj + 1;
    }
    if oi != old.len() || ni != new_nz.len() {
        return None;
    }
    let mut it = strides_nz.into_iter();
    let strides = shape
        .iter()
        .map(|&d| if d == 1 { 0 } else { it.next().unwrap_or(0) })
        .collect();
    Some(Value {
        storage: v.storage.clone(),
        shape: shape.to_vec(),
        strides,
        offset: v.offset,
    })
}

/// Applies a view op to a realized value (copying only for reshapes strides cannot express).
pub fn view(op: &Op, v: &Value, out_shape: &[usize]) -> Result<Value> {
    match op {
        Op::Reshape => match reshape_view(v, out_shape) {
            Some(r) => Ok(r),
            None => {
                let c = materialize(v, v.dtype())?;
                Ok(Value::contiguous(c.storage, out_shape.to_vec()))
            }
        },
        Op::Permute(p) => Ok(Value {
            storage: v.storage.clone(),
            shape: p.iter().map(|&a| v.shape[a]).collect(),
            strides: p.iter().map(|&a| v.strides[a]).collect(),
            offset: v.offset,
        }),
        Op::Expand => Ok(Value {
            storage: v.storage.clone(),
            shape: out_shape.to_vec(),
            strides: broadcast_strides(v, out_shape)?,
            offset: v.offset,
        }),
        Op::Slice { starts, steps } => {
            let offset = v.offset as isize
                + starts
                    .iter()
                    .zip(&v.strides)
                    .map(|(&s, &st)| s as isize * st)
                    .sum::<isize>();
            Ok(Value {
                storage: v.storage.clone(),
                shape: out_shape.to_vec(),
                strides: v
                    .strides
                    .iter()
                    .zip(steps)
                    .map(|(&s, &k)| s * k as isize)
                    .collect(),
                offset: offset as usize,
            })
        }
        other => Err(Error::Invalid(format!(
            "internal: {} is not a view op",
            other.name()
        ))),
    }
}

/// Concatenates values (all of the output dtype) along `axis`.
pub fn cat(values: &[Value], axis: usize, out_shape: &[usize]) -> Result<Value> {
    let dtype = values
        .first()
        .map(|v| v.dtype())
        .ok_or_else(|| Error::Invalid("cat of nothing".into()))?;
    let outer: usize = out_shape[..axis].iter().product();
    let inner: usize = out_shape[axis + 1..].iter().product();
    let total = out_shape[axis];
    let es = dtype.size();
    let mut storage = Storage::uninit(dtype, numel(out_shape))?;
    let parts: Vec<Value> = values
        .iter()
        .map(|v| materialize(v, dtype))
        .collect::<Result<_>>()?;
    pyflame_core::dispatch_dtype!(dtype, T => {
        let out = storage.as_mut_slice::<T>()?;
        let mut col = 0;
        for p in &parts {
            let a = p.shape[axis];
            let src = &p.storage.as_slice::<T>()?[p.offset..p.offset + outer * a * inner];
            let w = a * inner;
            if w > 0 {
                for o in 0..outer {
                    let dst = o * total * inner + col * inner;
                    out[dst..dst + w].copy_from_slice(&src[o * w..o * w + w]);
                }
            }
            col += a;
        }
    });
    let _ = es;
    Ok(Value::contiguous(Arc::new(storage), out_shape.to_vec()))
}

/// `out[pre, idx, post] = data[pre, index[idx], post]`, negative indices counting from the end.
pub fn take(data: &Value, index: &Value, axis: usize, out_shape: &[usize]) -> Result<Value> {
    let dtype = data.dtype();
    let d = materialize(data, dtype)?;
    let idx = materialize(index, pyflame_core::DType::Int64)?;
    let idx = idx.storage.as_slice::<i64>()?;
    let outer: usize = data.shape[..axis].iter().product();
    let size = data.shape[axis];
    let inner: usize = data.shape[axis + 1..].iter().product();
    let mut resolved = Vec::with_capacity(idx.len());
    for &i in idx {
        let j = if i < 0 { i + size as i64 } else { i };
        if j < 0 || j >= size as i64 {
            return Err(Error::Index(format!(
                "index {i} is out of bounds for dimension {axis} with size {size}"
            )));
        }
        resolved.push(j as usize);
    }
    let mut storage = Storage::uninit(dtype, numel(out_shape))?;
    pyflame_core::dispatch_dtype!(dtype, T => {
        let out = storage.as_mut_slice::<T>()?;
        let src = d.storage.as_slice::<T>()?;
        let n = resolved.len();
        for o in 0..outer {
            for (k, &j) in resolved.iter().enumerate() {
                let s = o * size * inner + j * inner;
                let t = (o * n + k) * inner;
                out[t..t + inner].copy_from_slice(&src[s..s + inner]);
            }
        }
    });
    Ok(Value::contiguous(Arc::new(storage), out_shape.to_vec()))
}

/// Reads one element of a value as f64 (for `item()` and scalar loaders).
pub fn element_f64<T: Element>(v: &Value, flat: usize) -> Result<f64> {
    let mut rem = flat;
    let mut pos = v.offset as isize;
    for i in (0..v.shape.len()).rev() {
        pos += (rem % v.shape[i]) as isize * v.strides[i];
        rem /= v.shape[i];
    }
    v.storage
        .as_slice::<T>()?
        .get(pos as usize)
        .map(|x| x.to_f64())
        .ok_or_else(|| Error::Index("element out of range".into()))
}

/// Zeros of `out_shape` with `x` written at positions `starts[d] + i * steps[d]`.
pub fn unslice(x: &Value, starts: &[usize], steps: &[usize], out_shape: &[usize]) -> Result<Value> {
    let dtype = x.dtype();
    let src = materialize(x, dtype)?;
    let mut storage = Storage::zeros(dtype, numel(out_shape))?;
    let out_strides = contiguous_strides(out_shape);
    let nd = out_shape.len();
    let n = src.numel();
    dispatch_dtype!(dtype, T => {
        let out = storage.as_mut_slice::<T>()?;
        let s = &src.storage.as_slice::<T>()?[src.offset..src.offset + n];
        if nd == 0 {
            if let (Some(o), Some(v)) = (out.first_mut(), s.first()) {
                *o = *v;
            }
        } else if n > 0 {
            let inner = x.shape[nd - 1];
            let inner_step = steps[nd - 1];
            let mut idx = vec![0usize; nd];
            for chunk in s.chunks(inner) {
                let base: usize = (0..nd - 1).map(|d| (starts[d] + idx[d] * steps[d]) * out_strides[d] as usize).sum::<usize>() + starts[nd - 1];
                for (k, &v) in chunk.iter().enumerate() {
                    out[base + k * inner_step] = v;
                }
                // Advance the outer multi-index.
                let mut d = nd - 1;
                while d > 0 {
                    d -= 1;
                    idx[d] += 1;
                    if idx[d] < x.shape[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
    });
    Ok(Value::contiguous(Arc::new(storage), out_shape.to_vec()))
}

/// Scatter-add: `out[pre, index[k], post] += grad[pre, k, post]` into zeros of `out_shape`.
pub fn take_grad(grad: &Value, index: &Value, axis: usize, out_shape: &[usize]) -> Result<Value> {
    let acc = if grad.dtype() == DType::Float64 {
        DType::Float64
    } else {
        DType::Float32
    };
    let g = materialize(grad, acc)?;
    let idx = materialize(index, DType::Int64)?;
    let idx = &idx.storage.as_slice::<i64>()?[idx.offset..idx.offset + idx.numel()];
    let outer: usize = out_shape[..axis].iter().product();
    let size = out_shape[axis];
    let inner: usize = out_shape[axis + 1..].iter().product();
    let n = idx.len();
    let mut resolved = Vec::with_capacity(n);
    for &i in idx {
        let j = if i < 0 { i + size as i64 } else { i };
        if j < 0 || j >= size as i64 {
            return Err(Error::Index(format!(
                "index {i} is out of bounds for dimension {axis} with size {size}"
            )));
        }
        resolved.push(j as usize);
    }
    let mut storage = Storage::zeros(acc, numel(out_shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let out = storage.as_mut_slice::<$T>()?;
            let src = &g.storage.as_slice::<$T>()?[g.offset..g.offset + g.numel()];
            for o in 0..outer {
                for (k, &j) in resolved.iter().enumerate() {
                    let s = (o * n + k) * inner;
                    let t = (o * size + j) * inner;
                    for (dst, &v) in out[t..t + inner].iter_mut().zip(&src[s..s + inner]) {
                        *dst += v;
                    }
                }
            }
        }};
    }
    if acc == DType::Float64 {
        go!(f64)
    } else {
        go!(f32)
    }
    let v = Value::contiguous(Arc::new(storage), out_shape.to_vec());
    materialize(&v, grad.dtype())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reshape_of_transposed_is_detected() {
        let s =
            Arc::new(Storage::from_slice(&(0..24).map(|x| x as f32).collect::<Vec<_>>()).unwrap());
        let v = Value::contiguous(s, vec![2, 3, 4]);
        // Permute to [2, 4, 3]: merging the last two axes is impossible without a copy.
        let p = view(&Op::Permute(vec![0, 2, 1]), &v, &[2, 4, 3]).unwrap();
        assert!(reshape_view(&p, &[2, 12]).is_none());
        // Splitting an axis is always possible.
        let r = reshape_view(&p, &[2, 2, 2, 3]).unwrap();
        assert_eq!(r.strides, vec![12, 2, 1, 4]);
        // Merging the leading axes of a sliced view with compatible strides works.
        assert!(reshape_view(&v, &[6, 4]).is_some());
    }
}
