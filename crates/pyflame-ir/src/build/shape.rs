//! Movement and combination ops (views, slices, concatenation, gathers) and their gradient helpers.

use super::*;

/// Reshape (one entry may be -1).
pub fn reshape(x: &NodeRef, shape: &[i64]) -> Result<NodeRef> {
    let total = x.numel();
    let mut infer = None;
    let mut known = 1usize;
    let mut out = Vec::with_capacity(shape.len());
    for (i, &d) in shape.iter().enumerate() {
        if d == -1 {
            if infer.is_some() {
                return Err(Error::Invalid(format!(
                    "reshape: only one dimension can be -1, got {shape:?}"
                )));
            }
            infer = Some(i);
            out.push(0);
        } else if d < 0 {
            return Err(Error::Invalid(format!(
                "reshape: invalid dimension {d} in {shape:?}"
            )));
        } else {
            known = known.saturating_mul(d as usize);
            out.push(d as usize);
        }
    }
    let mismatch = || {
        Error::Shape(format!(
            "reshape: cannot reshape tensor of shape {} ({total} elements) into shape {shape:?}",
            fmt_shape(&x.shape)
        ))
    };
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(mismatch());
        }
        out[i] = total / known;
    } else if known != total {
        return Err(mismatch());
    }
    if out == x.shape {
        return Ok(x.clone());
    }
    Ok(Node::new(
        Op::Reshape,
        vec![x.clone()],
        out,
        x.dtype,
        x.layout,
    ))
}

/// Permutation of axes.
pub fn permute(x: &NodeRef, perm: &[i64]) -> Result<NodeRef> {
    let nd = x.shape.len();
    if perm.len() != nd {
        return Err(Error::Shape(format!(
            "permute: got {} dimensions {perm:?} for a tensor of shape {}",
            perm.len(),
            fmt_shape(&x.shape)
        )));
    }
    let p: Vec<usize> = perm
        .iter()
        .map(|&a| normalize_axis(a, nd))
        .collect::<Result<_>>()?;
    let mut seen = vec![false; nd];
    for &a in &p {
        if std::mem::replace(&mut seen[a], true) {
            return Err(Error::Invalid(format!(
                "permute: repeated dimension in {perm:?}"
            )));
        }
    }
    if p.iter().enumerate().all(|(i, &a)| i == a) {
        return Ok(x.clone());
    }
    // permute(permute(y, q), p) is one view of y.
    if let (Op::Permute(q), false) = (&x.op, x.is_realized()) {
        if let Some(inner) = x.input_at(0) {
            let composed: Vec<i64> = p.iter().map(|&a| q[a] as i64).collect();
            return permute(&inner, &composed);
        }
    }
    let shape = p.iter().map(|&a| x.shape[a]).collect();
    Ok(Node::new(
        Op::Permute(p),
        vec![x.clone()],
        shape,
        x.dtype,
        x.layout,
    ))
}

/// Swaps two axes.
pub fn transpose(x: &NodeRef, d0: i64, d1: i64) -> Result<NodeRef> {
    let nd = x.shape.len();
    if nd == 0 {
        return Ok(x.clone());
    }
    let a = normalize_axis(d0, nd)?;
    let b = normalize_axis(d1, nd)?;
    let mut perm: Vec<i64> = (0..nd as i64).collect();
    perm.swap(a, b);
    permute(x, &perm)
}

/// Broadcast to `shape` (-1 keeps a dimension; new leading dimensions allowed).
pub fn expand(x: &NodeRef, shape: &[i64]) -> Result<NodeRef> {
    if shape.len() < x.shape.len() {
        return Err(Error::Shape(format!(
            "expand: target shape {shape:?} has fewer dimensions than the tensor's shape {}",
            fmt_shape(&x.shape)
        )));
    }
    let lead = shape.len() - x.shape.len();
    let mut out = Vec::with_capacity(shape.len());
    for (i, &d) in shape.iter().enumerate() {
        let src = if i >= lead {
            Some(x.shape[i - lead])
        } else {
            None
        };
        let target = match (d, src) {
            (-1, Some(s)) => s,
            (d, _) if d < 0 => {
                return Err(Error::Invalid(format!("expand: invalid size {d} in {shape:?}")))
            }
            (d, Some(s)) if s != 1 && s as i64 != d => {
                return Err(Error::Shape(format!(
                    "expand: the tensor of shape {} cannot be expanded to {shape:?} (dimension {i}: {s} vs {d})",
                    fmt_shape(&x.shape)
                )))
            }
            (d, _) => d as usize,
        };
        out.push(target);
    }
    broadcast_to(x, &out)
}

/// Broadcast to an exact shape (NumPy rules).
pub fn broadcast_to(x: &NodeRef, shape: &[usize]) -> Result<NodeRef> {
    if x.shape == shape {
        return Ok(x.clone());
    }
    let b = broadcast_shapes(&x.shape, shape)?;
    if b != shape {
        return Err(Error::Shape(format!(
            "cannot broadcast a tensor of shape {} to shape {}",
            fmt_shape(&x.shape),
            fmt_shape(shape)
        )));
    }
    Ok(Node::new(
        Op::Expand,
        vec![x.clone()],
        shape.to_vec(),
        x.dtype,
        x.layout,
    ))
}

/// Python-style slice of one axis: `(start, stop, step)` with `None` as defaults.
pub type SliceSpec = (Option<i64>, Option<i64>, Option<i64>);

/// Resolves a Python slice against a dimension of size `dim`: (start, len, step).
pub fn resolve_slice(spec: SliceSpec, dim: usize) -> Result<(usize, usize, usize)> {
    let step = spec.2.unwrap_or(1);
    if step <= 0 {
        return Err(Error::Invalid(format!(
            "slice step must be positive (got {step}); use pyflame.flip for reversal"
        )));
    }
    let n = dim as i64;
    let clamp = |v: i64| -> i64 {
        let v = if v < 0 { v + n } else { v };
        v.clamp(0, n)
    };
    let start = spec.0.map_or(0, clamp);
    let stop = spec.1.map_or(n, clamp);
    let len = if stop > start {
        (stop - start + step - 1) / step
    } else {
        0
    };
    Ok((start as usize, len as usize, step as usize))
}

/// Strided slice over all axes: `(start, len, step)` per axis.
pub fn slice(x: &NodeRef, ranges: &[(usize, usize, usize)]) -> Result<NodeRef> {
    if ranges.len() != x.shape.len() {
        return Err(Error::Shape(format!(
            "slice: {} ranges for a tensor of shape {}",
            ranges.len(),
            fmt_shape(&x.shape)
        )));
    }
    for (i, &(s, l, st)) in ranges.iter().enumerate() {
        if st == 0 || (l > 0 && s + (l - 1) * st >= x.shape[i]) {
            return Err(Error::Index(format!(
                "slice: range (start {s}, length {l}, step {st}) is out of bounds for dimension {i} of size {}",
                x.shape[i]
            )));
        }
    }
    if ranges
        .iter()
        .zip(&x.shape)
        .all(|(&(s, l, st), &d)| s == 0 && l == d && st == 1)
    {
        return Ok(x.clone());
    }
    let starts = ranges.iter().map(|r| r.0).collect();
    let steps = ranges.iter().map(|r| r.2).collect();
    let shape = ranges.iter().map(|r| r.1).collect();
    Ok(Node::new(
        Op::Slice { starts, steps },
        vec![x.clone()],
        shape,
        x.dtype,
        x.layout,
    ))
}

/// Removes size-1 axes (all of them, or the listed ones that have size 1).
pub fn squeeze(x: &NodeRef, dims: Option<&[i64]>) -> Result<NodeRef> {
    let axes = match dims {
        None => (0..x.shape.len())
            .filter(|&a| x.shape[a] == 1)
            .collect::<Vec<_>>(),
        Some(d) => normalize_axes(Some(d), x.shape.len())?
            .into_iter()
            .filter(|&a| x.shape[a] == 1)
            .collect(),
    };
    let shape: Vec<i64> = (0..x.shape.len())
        .filter(|a| !axes.contains(a))
        .map(|a| x.shape[a] as i64)
        .collect();
    reshape(x, &shape)
}

/// Inserts a size-1 axis at `dim` (in `-ndim-1..=ndim`).
pub fn unsqueeze(x: &NodeRef, dim: i64) -> Result<NodeRef> {
    let a = normalize_axis(dim, x.shape.len() + 1)?;
    let mut shape: Vec<i64> = x.shape.iter().map(|&d| d as i64).collect();
    shape.insert(a, 1);
    reshape(x, &shape)
}

/// Flattens axes `start..=end` into one.
pub fn flatten(x: &NodeRef, start: i64, end: i64) -> Result<NodeRef> {
    if x.shape.is_empty() {
        return reshape(x, &[1]);
    }
    let nd = x.shape.len();
    let s = normalize_axis(start, nd)?;
    let e = normalize_axis(end, nd)?;
    if s > e {
        return Err(Error::Invalid(format!(
            "flatten: start_dim ({start}) comes after end_dim ({end})"
        )));
    }
    let mut shape: Vec<i64> = x.shape[..s].iter().map(|&d| d as i64).collect();
    shape.push(x.shape[s..=e].iter().product::<usize>() as i64);
    shape.extend(x.shape[e + 1..].iter().map(|&d| d as i64));
    reshape(x, &shape)
}

/// Concatenation along `axis` (dtypes promoted to a common one).
pub fn cat(xs: &[NodeRef], axis: i64) -> Result<NodeRef> {
    let first = xs
        .first()
        .ok_or_else(|| Error::Invalid("cat: expected a non-empty list of tensors".into()))?;
    let nd = first.shape.len();
    if nd == 0 {
        return Err(Error::Shape(
            "cat: zero-dimensional tensors cannot be concatenated".into(),
        ));
    }
    let a = normalize_axis(axis, nd)?;
    let mut dtype = first.dtype;
    let mut total = 0;
    for (i, x) in xs.iter().enumerate() {
        let same = x.shape.len() == nd && (0..nd).all(|d| d == a || x.shape[d] == first.shape[d]);
        if !same {
            return Err(Error::Shape(format!(
                "cat: tensor 0 has shape {} but tensor {i} has shape {}; sizes must match except in dimension {a}",
                fmt_shape(&first.shape),
                fmt_shape(&x.shape)
            )));
        }
        total += x.shape[a];
        dtype = DType::promote(dtype, x.dtype);
    }
    if xs.len() == 1 {
        return Ok(cast(first, dtype));
    }
    let inputs = xs.iter().map(|x| cast(x, dtype)).collect();
    let mut shape = first.shape.clone();
    shape[a] = total;
    Ok(Node::new(
        Op::Cat { axis: a },
        inputs,
        shape,
        dtype,
        first.layout,
    ))
}

/// Stacks tensors of equal shape along a new axis.
pub fn stack(xs: &[NodeRef], axis: i64) -> Result<NodeRef> {
    let first = xs
        .first()
        .ok_or_else(|| Error::Invalid("stack: expected a non-empty list of tensors".into()))?;
    for (i, x) in xs.iter().enumerate() {
        if x.shape != first.shape {
            return Err(Error::Shape(format!(
                "stack: tensor 0 has shape {} but tensor {i} has shape {}; all tensors must have the same shape",
                fmt_shape(&first.shape),
                fmt_shape(&x.shape)
            )));
        }
    }
    let a = normalize_axis(axis, first.shape.len() + 1)? as i64;
    let parts = xs
        .iter()
        .map(|x| unsqueeze(x, a))
        .collect::<Result<Vec<_>>>()?;
    cat(&parts, a)
}

/// Gathers slices of `data` along `axis` at the positions in the integer tensor `index`.
pub fn take(data: &NodeRef, index: &NodeRef, axis: i64) -> Result<NodeRef> {
    if !index.dtype.is_int() {
        return Err(Error::DType(format!(
            "index tensors must have an integer dtype, got {}",
            index.dtype
        )));
    }
    let a = normalize_axis(axis, data.shape.len())?;
    if data.shape.is_empty() {
        return Err(Error::Index(
            "cannot index a zero-dimensional tensor with a tensor".into(),
        ));
    }
    let mut shape = data.shape[..a].to_vec();
    shape.extend_from_slice(&index.shape);
    shape.extend_from_slice(&data.shape[a + 1..]);
    Ok(Node::new(
        Op::Take { axis: a },
        vec![data.clone(), index.clone()],
        shape,
        data.dtype,
        data.layout,
    ))
}

/// A node with `x`'s value and no gradient history: realized values are shared, lazy ones
/// are computed through an identity view.
pub fn detach(x: &NodeRef) -> NodeRef {
    if !x.requires_grad() {
        return x.clone();
    }
    match x.value() {
        Some(v) => Node::input(v, x.layout),
        None => Node::untracked(
            Op::Reshape,
            vec![x.clone()],
            x.shape.clone(),
            x.dtype,
            x.layout,
        ),
    }
}

/// A node whose value will be contiguous in memory.
pub fn contiguous(x: &NodeRef) -> NodeRef {
    if let Some(v) = x.value() {
        if v.is_contiguous() {
            return x.clone();
        }
    }
    Node::new(
        Op::Contiguous,
        vec![x.clone()],
        x.shape.clone(),
        x.dtype,
        x.layout,
    )
}

/// Checks that `numel(shape)` fits in memory arithmetic.
pub fn checked_shape(shape: &[i64]) -> Result<Vec<usize>> {
    let mut total: usize = 1;
    let mut out = Vec::with_capacity(shape.len());
    for &d in shape {
        if d < 0 {
            return Err(Error::Invalid(format!(
                "negative dimension {d} in shape {shape:?}"
            )));
        }
        total = total
            .checked_mul(d as usize)
            .filter(|&t| t <= (isize::MAX as usize) / 8)
            .ok_or_else(|| Error::Invalid(format!("shape {shape:?} is too large")))?;
        out.push(d as usize);
    }
    let _ = numel(&out);
    Ok(out)
}

/// Places `x` at the strided positions `(start, len, step)` of a zero tensor of `shape`
/// (the gradient of [`slice`]).
pub fn unslice(x: &NodeRef, shape: &[usize], ranges: &[(usize, usize, usize)]) -> Result<NodeRef> {
    if ranges.len() != shape.len() || ranges.iter().map(|r| r.1).ne(x.shape.iter().copied()) {
        return Err(Error::Shape(format!(
            "unslice: input of shape {} does not match the ranges {ranges:?}",
            fmt_shape(&x.shape)
        )));
    }
    let starts = ranges.iter().map(|r| r.0).collect();
    let steps = ranges.iter().map(|r| r.2).collect();
    Ok(Node::new(
        Op::Unslice { starts, steps },
        vec![x.clone()],
        shape.to_vec(),
        x.dtype,
        x.layout,
    ))
}

/// Scatter-adds slices of `grad` into zeros of `data_shape` along `axis` at `index`
/// (the gradient of [`take`]).
pub fn take_grad(
    grad: &NodeRef,
    index: &NodeRef,
    axis: usize,
    data_shape: &[usize],
) -> Result<NodeRef> {
    Ok(Node::new(
        Op::TakeGrad { axis },
        vec![grad.clone(), index.clone()],
        data_shape.to_vec(),
        grad.dtype,
        grad.layout,
    ))
}

/// Sums `g` over broadcast dimensions so it has `shape` (the gradient of broadcasting).
pub fn sum_to_shape(g: &NodeRef, shape: &[usize]) -> Result<NodeRef> {
    if g.shape == shape {
        return Ok(g.clone());
    }
    if g.shape.len() < shape.len() {
        return broadcast_to(g, shape);
    }
    let lead = g.shape.len() - shape.len();
    let mut axes: Vec<i64> = (0..lead as i64).collect();
    for (i, &d) in shape.iter().enumerate() {
        if d == 1 && g.shape[lead + i] != 1 {
            axes.push((lead + i) as i64);
        }
    }
    let summed = if axes.is_empty() {
        g.clone()
    } else {
        reduce(ReduceOp::Sum, g, Some(&axes), true)?
    };
    reshape(
        &summed,
        &shape.iter().map(|&d| d as i64).collect::<Vec<_>>(),
    )
}
