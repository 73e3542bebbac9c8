//! Op builders: each checks its arguments, infers the output shape and dtype, and returns a
//! new lazy node. Shape errors surface here, at the line that builds the op.

use crate::op::float_result;
use crate::{
    BinaryOp, ConvAttrs, Node, NodeRef, Op, PoolAttrs, PoolKind, RandDist, ReduceOp, UnaryOp,
};
use pyflame_core::{broadcast_shapes, normalize_axis, numel, DType, Error, MeshLayout, Result};

fn fmt_shape(s: &[usize]) -> String {
    format!("{s:?}")
}

/// A constant-filled tensor.
pub fn full(shape: Vec<usize>, value: f64, dtype: DType, layout: MeshLayout) -> NodeRef {
    Node::new(Op::Full { value }, vec![], shape, dtype, layout)
}

/// `start, start + step, ...` below `end` (or above it for negative steps).
pub fn arange(
    start: f64,
    end: f64,
    step: f64,
    dtype: DType,
    layout: MeshLayout,
) -> Result<NodeRef> {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
        return Err(Error::Invalid(format!(
            "arange: step must be finite and non-zero and bounds finite (got start={start}, end={end}, step={step})"
        )));
    }
    if (end - start) * step < 0.0 {
        return Err(Error::Invalid(format!(
            "arange: upper bound and step sign are inconsistent (start={start}, end={end}, step={step})"
        )));
    }
    let n = ((end - start) / step).ceil().max(0.0) as usize;
    Ok(Node::new(
        Op::Arange { start, step },
        vec![],
        vec![n],
        dtype,
        layout,
    ))
}

/// `steps` points from `start` to `end` inclusive.
pub fn linspace(start: f64, end: f64, steps: usize, dtype: DType, layout: MeshLayout) -> NodeRef {
    Node::new(
        Op::Linspace { start, end },
        vec![],
        vec![steps],
        dtype,
        layout,
    )
}

/// `n x m` identity matrix.
pub fn eye(n: usize, m: usize, dtype: DType, layout: MeshLayout) -> NodeRef {
    Node::new(Op::Eye, vec![], vec![n, m], dtype, layout)
}

/// A random tensor drawing a fresh seed from the global generator.
pub fn random(
    shape: Vec<usize>,
    dist: RandDist,
    dtype: DType,
    layout: MeshLayout,
) -> Result<NodeRef> {
    match dist {
        RandDist::Int { low, high } if high <= low => {
            return Err(Error::Invalid(format!(
                "randint: high ({high}) must be greater than low ({low})"
            )))
        }
        RandDist::Uniform { .. } | RandDist::Normal { .. } if !dtype.is_float() => {
            return Err(Error::DType(format!(
                "rand/randn need a floating dtype, got {dtype}"
            )))
        }
        _ => {}
    }
    let seed = crate::random::next_seed();
    Ok(Node::new(
        Op::Random { dist, seed },
        vec![],
        shape,
        dtype,
        layout,
    ))
}

/// An elementwise unary op.
pub fn unary(op: UnaryOp, x: &NodeRef) -> Result<NodeRef> {
    let dtype = match op {
        UnaryOp::LogicalNot => DType::Bool,
        _ if op.needs_float() => float_result(x.dtype),
        UnaryOp::Neg if x.dtype == DType::Bool => {
            return Err(Error::DType(
                "negation of a bool tensor is not supported; use logical_not (~) instead".into(),
            ))
        }
        UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round if x.dtype == DType::Bool => {
            return Err(Error::DType(format!(
                "{} is not supported for bool tensors",
                op.name()
            )))
        }
        _ => x.dtype,
    };
    Ok(Node::new(
        Op::Unary(op),
        vec![x.clone()],
        x.shape.clone(),
        dtype,
        x.layout,
    ))
}

/// The dtype two operands are combined in, with PyTorch's rule that a 0-d tensor does not
/// widen a dimensioned tensor of the same category (`int32[3] + int64 0-d -> int32`).
pub fn common_dtype(a: &NodeRef, b: &NodeRef) -> DType {
    match (a.shape.is_empty(), b.shape.is_empty()) {
        (true, false) if a.dtype.category() <= b.dtype.category() => b.dtype,
        (false, true) if b.dtype.category() <= a.dtype.category() => a.dtype,
        _ => DType::promote(a.dtype, b.dtype),
    }
}

/// Output dtype of a binary op whose operands are combined in `common`
/// (see [`common_dtype`]); `a` and `b` are the operand dtypes, for messages.
pub fn binary_dtype(op: BinaryOp, common: DType, a: DType, b: DType) -> Result<DType> {
    Ok(match op {
        _ if op.is_comparison() => DType::Bool,
        _ if op.is_bitwise() => {
            if common.is_float() {
                return Err(Error::DType(format!(
                    "{} is only defined for integer and bool tensors, got {a} and {b}",
                    op.name()
                )));
            }
            common
        }
        BinaryOp::Div => float_result(common),
        BinaryOp::Sub if common == DType::Bool => {
            return Err(Error::DType(
                "subtraction of bool tensors is not supported; use ^ or logical_xor".into(),
            ))
        }
        _ => common,
    })
}

/// An elementwise binary op with broadcasting.
pub fn binary(op: BinaryOp, a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
    let shape = broadcast_shapes(&a.shape, &b.shape).map_err(|_| {
        Error::Shape(format!(
            "{}: shapes {} and {} cannot be broadcast together",
            op.name(),
            fmt_shape(&a.shape),
            fmt_shape(&b.shape)
        ))
    })?;
    let dtype = binary_dtype(op, common_dtype(a, b), a.dtype, b.dtype)?;
    Ok(Node::new(
        Op::Binary(op),
        vec![a.clone(), b.clone()],
        shape,
        dtype,
        a.layout,
    ))
}

/// `where(cond, a, b)` with broadcasting of all three.
pub fn where_(cond: &NodeRef, a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
    let shape = broadcast_shapes(&cond.shape, &a.shape)
        .and_then(|s| broadcast_shapes(&s, &b.shape))
        .map_err(|_| {
            Error::Shape(format!(
                "where: shapes {} (condition), {} and {} cannot be broadcast together",
                fmt_shape(&cond.shape),
                fmt_shape(&a.shape),
                fmt_shape(&b.shape)
            ))
        })?;
    let cond = if cond.dtype == DType::Bool {
        cond.clone()
    } else {
        cast(cond, DType::Bool)
    };
    let dtype = DType::promote(a.dtype, b.dtype);
    Ok(Node::new(
        Op::Where,
        vec![cond, a.clone(), b.clone()],
        shape,
        dtype,
        a.layout,
    ))
}

/// Conversion to `dtype` (returns `x` itself when it already has that dtype).
pub fn cast(x: &NodeRef, dtype: DType) -> NodeRef {
    if x.dtype == dtype {
        return x.clone();
    }
    Node::new(Op::Cast, vec![x.clone()], x.shape.clone(), dtype, x.layout)
}

/// Normalizes a list of possibly negative axes (`None` = all axes) to sorted unique axes.
pub fn normalize_axes(axes: Option<&[i64]>, ndim: usize) -> Result<Vec<usize>> {
    let mut out = match axes {
        None => (0..ndim).collect::<Vec<_>>(),
        Some(list) => list
            .iter()
            .map(|&a| normalize_axis(a, ndim))
            .collect::<Result<Vec<_>>>()?,
    };
    out.sort_unstable();
    let before = out.len();
    out.dedup();
    if out.len() != before {
        return Err(Error::Invalid(format!(
            "dimension list {axes:?} contains duplicates"
        )));
    }
    if ndim == 0 {
        out.clear();
    }
    Ok(out)
}

/// Reduction over `axes` (`None` = all).
pub fn reduce(op: ReduceOp, x: &NodeRef, axes: Option<&[i64]>, keepdim: bool) -> Result<NodeRef> {
    let axes = normalize_axes(axes, x.shape.len())?;
    let dtype = match op {
        ReduceOp::Mean => {
            if !x.dtype.is_float() {
                return Err(Error::DType(format!(
                    "mean is only defined for floating point tensors, got {}; cast with .to(pyflame.float32) first",
                    x.dtype
                )));
            }
            x.dtype
        }
        ReduceOp::Sum | ReduceOp::Prod if !x.dtype.is_float() => DType::Int64,
        _ => x.dtype,
    };
    if matches!(op, ReduceOp::Max | ReduceOp::Min) && axes.iter().any(|&a| x.shape[a] == 0) {
        return Err(Error::Invalid(format!(
            "{}: cannot reduce over a zero-size dimension of a tensor of shape {} (the operation has no identity)",
            op.name(),
            fmt_shape(&x.shape)
        )));
    }
    let adjacent = axes.windows(2).all(|w| w[1] == w[0] + 1);
    let kept_shape: Vec<usize> = (0..x.shape.len())
        .filter(|a| !axes.contains(a))
        .map(|a| x.shape[a])
        .collect();
    // Non-adjacent axes: move the reduced axes to the end (a free view), reduce the tail.
    let (input, red_axes) = if adjacent {
        (x.clone(), axes.clone())
    } else {
        let mut perm: Vec<usize> = (0..x.shape.len()).filter(|a| !axes.contains(a)).collect();
        let k = perm.len();
        perm.extend(axes.iter().copied());
        (
            permute(x, &perm.iter().map(|&p| p as i64).collect::<Vec<_>>())?,
            (k..x.shape.len()).collect(),
        )
    };
    let out_shape: Vec<usize> = if keepdim && adjacent {
        x.shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
            .collect()
    } else {
        kept_shape
    };
    let node = Node::new(
        Op::Reduce {
            op,
            axes: red_axes,
            keepdim: keepdim && adjacent,
        },
        vec![input],
        out_shape,
        dtype,
        x.layout,
    );
    if keepdim && !adjacent {
        let shape: Vec<i64> = x
            .shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d as i64 })
            .collect();
        return reshape(&node, &shape);
    }
    Ok(node)
}

/// Index of the maximum (or minimum) along `axis`, or of the flattened tensor.
pub fn arg_reduce(is_max: bool, x: &NodeRef, axis: Option<i64>, keepdim: bool) -> Result<NodeRef> {
    let name = if is_max { "argmax" } else { "argmin" };
    let (axis, shape) = match axis {
        None => {
            if x.numel() == 0 {
                return Err(Error::Invalid(format!("{name}: the tensor is empty")));
            }
            let shape = if keepdim {
                vec![1; x.shape.len()]
            } else {
                vec![]
            };
            (None, shape)
        }
        Some(a) => {
            let a = normalize_axis(a, x.shape.len())?;
            if x.shape.get(a) == Some(&0) {
                return Err(Error::Invalid(format!(
                    "{name}: cannot reduce over a zero-size dimension of a tensor of shape {}",
                    fmt_shape(&x.shape)
                )));
            }
            let mut shape = x.shape.clone();
            if x.shape.is_empty() {
                (Some(0), shape)
            } else {
                if keepdim {
                    shape[a] = 1;
                } else {
                    shape.remove(a);
                }
                (Some(a), shape)
            }
        }
    };
    if x.dtype == DType::Bool {
        return Err(Error::DType(format!(
            "{name} is not supported for bool tensors"
        )));
    }
    Ok(Node::new(
        Op::ArgReduce {
            is_max,
            axis,
            keepdim,
        },
        vec![x.clone()],
        shape,
        DType::Int64,
        x.layout,
    ))
}

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

/// Matrix product with NumPy/PyTorch semantics (1-D operands, broadcast batch axes).
pub fn matmul(a: &NodeRef, b: &NodeRef) -> Result<NodeRef> {
    if a.shape.is_empty() || b.shape.is_empty() {
        return Err(Error::Shape(format!(
            "matmul: both operands need at least one dimension, got shapes {} and {}",
            fmt_shape(&a.shape),
            fmt_shape(&b.shape)
        )));
    }
    if a.dtype == DType::Bool || b.dtype == DType::Bool {
        return Err(Error::DType(
            "matmul is not supported for bool tensors".into(),
        ));
    }
    let dtype = DType::promote(a.dtype, b.dtype);
    let a2 = if a.shape.len() == 1 {
        unsqueeze(a, 0)?
    } else {
        a.clone()
    };
    let b2 = if b.shape.len() == 1 {
        unsqueeze(b, 1)?
    } else {
        b.clone()
    };
    let (m, k) = (a2.shape[a2.shape.len() - 2], a2.shape[a2.shape.len() - 1]);
    let (k2, n) = (b2.shape[b2.shape.len() - 2], b2.shape[b2.shape.len() - 1]);
    if k != k2 {
        return Err(Error::Shape(format!(
            "matmul: shapes {} and {} are not aligned: {k} (last dim of the first) != {k2} ({} dim of the second)",
            fmt_shape(&a.shape),
            fmt_shape(&b.shape),
            if b.shape.len() == 1 { "only" } else { "second-to-last" }
        )));
    }
    let batch = broadcast_shapes(
        &a2.shape[..a2.shape.len() - 2],
        &b2.shape[..b2.shape.len() - 2],
    )
    .map_err(|_| {
        Error::Shape(format!(
            "matmul: batch dimensions of shapes {} and {} cannot be broadcast together",
            fmt_shape(&a.shape),
            fmt_shape(&b.shape)
        ))
    })?;
    let mut shape = batch.clone();
    shape.extend([m, n]);
    let out = Node::new(
        Op::MatMul,
        vec![cast(&a2, dtype), cast(&b2, dtype)],
        shape,
        dtype,
        a.layout,
    );
    let mut final_shape: Vec<i64> = batch.iter().map(|&d| d as i64).collect();
    if a.shape.len() > 1 {
        final_shape.push(m as i64);
    }
    if b.shape.len() > 1 {
        final_shape.push(n as i64);
    }
    reshape(&out, &final_shape)
}

/// Softmax or log-softmax along `axis`.
pub fn softmax(x: &NodeRef, axis: i64, log: bool) -> Result<NodeRef> {
    let a = normalize_axis(axis, x.shape.len())?;
    let x = cast(x, float_result(x.dtype));
    Ok(Node::new(
        Op::Softmax { axis: a, log },
        vec![x.clone()],
        x.shape.clone(),
        x.dtype,
        x.layout,
    ))
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

fn window_out(
    input: usize,
    kernel: usize,
    stride: usize,
    pad: usize,
    dilation: usize,
    ceil_mode: bool,
) -> Option<usize> {
    let eff = dilation.checked_mul(kernel.checked_sub(1)?)? + 1;
    let padded = input + 2 * pad;
    if padded < eff || stride == 0 {
        return None;
    }
    let span = padded - eff;
    let mut n = if ceil_mode {
        span.div_ceil(stride)
    } else {
        span / stride
    } + 1;
    if ceil_mode && (n - 1) * stride >= input + pad {
        n -= 1;
    }
    Some(n)
}

/// 2-D convolution: `x` [N, C, H, W], `w` [O, C/groups, kh, kw] (no bias).
pub fn conv2d(x: &NodeRef, w: &NodeRef, a: ConvAttrs) -> Result<NodeRef> {
    if x.shape.len() != 4 || w.shape.len() != 4 {
        return Err(Error::Shape(format!(
            "conv2d expects a 4-D input [N, C, H, W] and a 4-D weight [O, C/groups, kh, kw], got {} and {}",
            fmt_shape(&x.shape),
            fmt_shape(&w.shape)
        )));
    }
    if !x.dtype.is_float() || !w.dtype.is_float() {
        return Err(Error::DType(format!(
            "conv2d needs floating point tensors, got {} and {}",
            x.dtype, w.dtype
        )));
    }
    let g = a.groups;
    if g == 0 || x.shape[1] != w.shape[1] * g || !w.shape[0].is_multiple_of(g) {
        return Err(Error::Shape(format!(
            "conv2d: input {} with groups={g} does not match weight {} (input channels must equal weight.shape[1] * groups and out channels must divide by groups)",
            fmt_shape(&x.shape),
            fmt_shape(&w.shape)
        )));
    }
    if a.stride.contains(&0) || a.dilation.contains(&0) {
        return Err(Error::Invalid(
            "conv2d: stride and dilation must be positive".into(),
        ));
    }
    let oh = window_out(
        x.shape[2],
        w.shape[2],
        a.stride[0],
        a.padding[0],
        a.dilation[0],
        false,
    );
    let ow = window_out(
        x.shape[3],
        w.shape[3],
        a.stride[1],
        a.padding[1],
        a.dilation[1],
        false,
    );
    let (Some(oh), Some(ow)) = (oh, ow) else {
        return Err(Error::Shape(format!(
            "conv2d: kernel {:?} (dilation {:?}) is larger than the padded input {}",
            &w.shape[2..],
            a.dilation,
            fmt_shape(&x.shape)
        )));
    };
    let dtype = DType::promote(x.dtype, w.dtype);
    let shape = vec![x.shape[0], w.shape[0], oh, ow];
    Ok(Node::new(
        Op::Conv2d(a),
        vec![cast(x, dtype), cast(w, dtype)],
        shape,
        dtype,
        x.layout,
    ))
}

/// Gradient of [`conv2d`] with respect to its input.
pub fn conv2d_grad_input(g: &NodeRef, w: &NodeRef, a: ConvAttrs, x_shape: &[usize]) -> NodeRef {
    Node::new(
        Op::Conv2dGradInput(a),
        vec![g.clone(), w.clone()],
        x_shape.to_vec(),
        g.dtype,
        g.layout,
    )
}

/// Gradient of [`conv2d`] with respect to its weight.
pub fn conv2d_grad_weight(x: &NodeRef, g: &NodeRef, a: ConvAttrs, w_shape: &[usize]) -> NodeRef {
    Node::new(
        Op::Conv2dGradWeight(a),
        vec![x.clone(), g.clone()],
        w_shape.to_vec(),
        g.dtype,
        g.layout,
    )
}

/// 2-D pooling of `x` [N, C, H, W]; `output_size` is required for adaptive pooling.
pub fn pool2d(
    kind: PoolKind,
    x: &NodeRef,
    a: PoolAttrs,
    output_size: Option<[usize; 2]>,
) -> Result<NodeRef> {
    if x.shape.len() != 4 {
        return Err(Error::Shape(format!(
            "pooling expects a 4-D input [N, C, H, W], got {}",
            fmt_shape(&x.shape)
        )));
    }
    if !x.dtype.is_float() {
        return Err(Error::DType(format!(
            "pooling needs a floating point tensor, got {}",
            x.dtype
        )));
    }
    let (oh, ow) = match kind {
        PoolKind::AdaptiveAvg => {
            let [oh, ow] = output_size
                .ok_or_else(|| Error::Invalid("adaptive pooling needs an output size".into()))?;
            if oh == 0 || ow == 0 {
                return Err(Error::Invalid(format!(
                    "adaptive pooling output size must be positive, got {oh}x{ow}"
                )));
            }
            (oh, ow)
        }
        _ => {
            if a.kernel.contains(&0) || a.stride.contains(&0) || a.dilation.contains(&0) {
                return Err(Error::Invalid(
                    "pooling: kernel, stride and dilation must be positive".into(),
                ));
            }
            if a.padding[0] * 2 > a.kernel[0] || a.padding[1] * 2 > a.kernel[1] {
                return Err(Error::Invalid(format!(
                    "pooling: padding {:?} should be at most half of the kernel size {:?}",
                    a.padding, a.kernel
                )));
            }
            let oh = window_out(
                x.shape[2],
                a.kernel[0],
                a.stride[0],
                a.padding[0],
                a.dilation[0],
                a.ceil_mode,
            );
            let ow = window_out(
                x.shape[3],
                a.kernel[1],
                a.stride[1],
                a.padding[1],
                a.dilation[1],
                a.ceil_mode,
            );
            match (oh, ow) {
                (Some(h), Some(w)) => (h, w),
                _ => {
                    return Err(Error::Shape(format!(
                        "pooling: window {:?} does not fit the input {} with padding {:?}",
                        a.kernel,
                        fmt_shape(&x.shape),
                        a.padding
                    )))
                }
            }
        }
    };
    let shape = vec![x.shape[0], x.shape[1], oh, ow];
    Ok(Node::new(
        Op::Pool2d { kind, attrs: a },
        vec![x.clone()],
        shape,
        x.dtype,
        x.layout,
    ))
}

/// Gradient of [`pool2d`]: `inputs` are (x, grad_out) for max pooling and (grad_out) otherwise.
pub fn pool2d_grad(
    kind: PoolKind,
    a: PoolAttrs,
    inputs: Vec<NodeRef>,
    x_shape: &[usize],
) -> NodeRef {
    let (dtype, layout) = (inputs[inputs.len() - 1].dtype, inputs[0].layout);
    Node::new(
        Op::Pool2dGrad { kind, attrs: a },
        inputs,
        x_shape.to_vec(),
        dtype,
        layout,
    )
}
