//! Builders of the normalization ops ([`Op::NormStats`], [`Op::NormApply`] and their
//! gradients). Inputs are viewed as `[N, C, S]`; callers reshape layer/group/batch norm
//! inputs to that form.

use super::*;
use crate::NormMode;

/// The dtype statistics are kept in for an input of `dtype` (float32 for half types).
pub fn norm_stats_dtype(dtype: DType) -> DType {
    if dtype == DType::Float64 {
        DType::Float64
    } else {
        DType::Float32
    }
}

fn check_input(x: &NodeRef, mode: NormMode) -> Result<()> {
    if x.shape.len() != 3 {
        return Err(Error::Shape(format!(
            "normalization expects its input viewed as [N, C, S], got {}",
            fmt_shape(&x.shape)
        )));
    }
    if !x.dtype.is_float() {
        return Err(Error::DType(format!(
            "normalization needs a floating point tensor, got {}",
            x.dtype
        )));
    }
    if let NormMode::Groups(g) = mode {
        if g == 0 || !x.shape[1].is_multiple_of(g) {
            return Err(Error::Shape(format!(
                "normalization: {} channels cannot be split into {g} groups",
                x.shape[1]
            )));
        }
    }
    Ok(())
}

fn check_stats(x: &NodeRef, stats: &NodeRef, mode: NormMode) -> Result<()> {
    // The gradient of NormApply assumes the statistics are x's own: accept only a
    // NormStats node of the same grouping whose input (while still linked) is x.
    let own = stats.op == Op::NormStats(mode)
        && stats
            .input_at(0)
            .is_none_or(|src| std::sync::Arc::ptr_eq(&src, x));
    if !own {
        return Err(Error::Invalid(
            "normalization: the statistics must be norm_stats of the normalized input".into(),
        ));
    }
    let r = mode.num_stats(x.shape[0], x.shape[1]);
    if stats.shape != [2, r] {
        return Err(Error::Shape(format!(
            "normalization statistics should have shape [2, {r}], got {}",
            fmt_shape(&stats.shape)
        )));
    }
    Ok(())
}

fn check_eps(eps: f64) -> Result<()> {
    if !eps.is_finite() || eps < 0.0 {
        return Err(Error::Invalid(format!(
            "normalization: eps must be a finite non-negative number, got {eps}"
        )));
    }
    Ok(())
}

/// Per-group mean and biased variance of `x` (`[N, C, S]`) as a `[2, R]` node. The node never
/// records gradient history: gradients reach `x` through [`norm_apply`].
pub fn norm_stats(x: &NodeRef, mode: NormMode) -> Result<NodeRef> {
    check_input(x, mode)?;
    let r = mode.num_stats(x.shape[0], x.shape[1]);
    Ok(Node::untracked(
        Op::NormStats(mode),
        vec![x.clone()],
        vec![2, r],
        norm_stats_dtype(x.dtype),
        x.layout,
    ))
}

/// An affine parameter (`weight` or `bias`) checked to hold `c` elements, as a `[C]` node of
/// `dtype`.
fn affine_param(p: &NodeRef, c: usize, dtype: DType, what: &str) -> Result<NodeRef> {
    if p.numel() != c {
        return Err(Error::Shape(format!(
            "normalization: {what} should contain {c} elements, got shape {}",
            fmt_shape(&p.shape)
        )));
    }
    if !p.dtype.is_float() {
        return Err(Error::DType(format!(
            "normalization: {what} must be floating point, got {}",
            p.dtype
        )));
    }
    let flat = if p.shape == [c] {
        p.clone()
    } else {
        reshape(p, &[c as i64])?
    };
    Ok(cast(&flat, dtype))
}

/// `(x - mean) / sqrt(var + eps) * weight + bias` for `x` (`[N, C, S]`) and `stats` the
/// [`norm_stats`] of `x`; `weight` and `bias` hold `C` elements.
pub fn norm_apply(
    x: &NodeRef,
    stats: &NodeRef,
    weight: Option<&NodeRef>,
    bias: Option<&NodeRef>,
    mode: NormMode,
    eps: f64,
) -> Result<NodeRef> {
    check_input(x, mode)?;
    check_stats(x, stats, mode)?;
    check_eps(eps)?;
    let c = x.shape[1];
    let mut inputs = vec![x.clone(), stats.clone()];
    if let Some(w) = weight {
        inputs.push(affine_param(w, c, x.dtype, "weight")?);
    }
    if let Some(b) = bias {
        inputs.push(affine_param(b, c, x.dtype, "bias")?);
    }
    Ok(Node::new(
        Op::NormApply {
            mode,
            eps,
            weight: weight.is_some(),
            bias: bias.is_some(),
        },
        inputs,
        x.shape.clone(),
        x.dtype,
        x.layout,
    ))
}

/// Normalizes `x` (`[N, C, S]`) by its own statistics: returns the output and the `[2, R]`
/// statistics (mean, biased variance; without gradient history).
pub fn normalize(
    x: &NodeRef,
    mode: NormMode,
    eps: f64,
    weight: Option<&NodeRef>,
    bias: Option<&NodeRef>,
) -> Result<(NodeRef, NodeRef)> {
    let stats = norm_stats(x, mode)?;
    let y = norm_apply(x, &stats, weight, bias, mode, eps)?;
    Ok((y, stats))
}

/// Gradient of [`norm_apply`] with respect to `x`; `weight` is the op's (flattened) weight.
/// `sums`, the [`norm_grad_affine`] of the same arguments, lets per-channel (batch norm)
/// gradients reuse its reductions.
pub fn norm_grad_input(
    g: &NodeRef,
    x: &NodeRef,
    stats: &NodeRef,
    weight: Option<&NodeRef>,
    sums: Option<&NodeRef>,
    mode: NormMode,
    eps: f64,
) -> NodeRef {
    let mut inputs = vec![g.clone(), x.clone(), stats.clone()];
    inputs.extend(weight.cloned());
    inputs.extend(sums.cloned());
    Node::new(
        Op::NormGradInput {
            mode,
            eps,
            weight: weight.is_some(),
            sums: sums.is_some(),
        },
        inputs,
        x.shape.clone(),
        x.dtype,
        x.layout,
    )
}

/// Gradients of [`norm_apply`] with respect to its weight and bias, as a `[2, C]` node.
pub fn norm_grad_affine(
    g: &NodeRef,
    x: &NodeRef,
    stats: &NodeRef,
    mode: NormMode,
    eps: f64,
) -> NodeRef {
    Node::new(
        Op::NormGradAffine { mode, eps },
        vec![g.clone(), x.clone(), stats.clone()],
        vec![2, x.shape[1]],
        x.dtype,
        x.layout,
    )
}
