//! Reductions, arg-reductions and softmax.

use super::*;

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
    if !adjacent {
        return reduce_in_runs(op, x, &axes, keepdim);
    }
    let out_shape: Vec<usize> = if keepdim {
        x.shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
            .collect()
    } else {
        (0..x.shape.len())
            .filter(|a| !axes.contains(a))
            .map(|a| x.shape[a])
            .collect()
    };
    Ok(Node::new(
        Op::Reduce { op, axes, keepdim },
        vec![x.clone()],
        out_shape,
        dtype,
        x.layout,
    ))
}

/// A reduction over non-adjacent `axes` (sorted): one reduction per run of adjacent axes, the
/// innermost run first, so each reads contiguous data (the bias gradient of a convolution,
/// `sum` over (0, 2, 3) of `[N, C, H, W]`, sums each image's planes and then the images,
/// instead of reading a permuted view with short runs). Every run of a `mean` averages equal
/// groups, so the mean of the means is the mean.
fn reduce_in_runs(op: ReduceOp, x: &NodeRef, axes: &[usize], keepdim: bool) -> Result<NodeRef> {
    let mut runs: Vec<Vec<i64>> = Vec::new();
    for &a in axes {
        match runs.last_mut() {
            Some(run) if run.last() == Some(&(a as i64 - 1)) => run.push(a as i64),
            _ => runs.push(vec![a as i64]),
        }
    }
    // Reducing a later run without keepdim leaves the indices of earlier axes unchanged.
    let mut out = x.clone();
    for run in runs.iter().rev() {
        out = reduce(op, &out, Some(run), false)?;
    }
    if keepdim {
        let shape: Vec<i64> = x
            .shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d as i64 })
            .collect();
        return reshape(&out, &shape);
    }
    Ok(out)
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
