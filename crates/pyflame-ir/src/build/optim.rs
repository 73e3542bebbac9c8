//! Builder of the fused optimizer update ([`Op::AdamStep`]).

use super::fmt_shape;
use crate::{AdamAttrs, Node, NodeRef, Op};
use pyflame_core::{Error, Result};

/// One Adam step of `param` (see [`Op::AdamStep`]): `state` is (exp_avg, exp_avg_sq) plus
/// max_exp_avg_sq when `attrs.amsgrad`. Every input must have the param's shape and float
/// dtype; the result is `[3 or 4, *shape]` (new param, then the new state in order).
pub fn adam_step(
    param: &NodeRef,
    grad: &NodeRef,
    state: &[NodeRef],
    attrs: AdamAttrs,
) -> Result<NodeRef> {
    let want = if attrs.amsgrad { 3 } else { 2 };
    if state.len() != want {
        return Err(Error::Invalid(format!(
            "adam_step: {want} state tensors expected{}, got {}",
            if attrs.amsgrad { " with amsgrad" } else { "" },
            state.len()
        )));
    }
    if !matches!(
        param.dtype,
        pyflame_core::DType::Float32 | pyflame_core::DType::Float64
    ) {
        return Err(Error::DType(format!(
            "adam_step: parameters must be float32 or float64, got {}",
            param.dtype
        )));
    }
    let mut inputs = vec![param.clone(), grad.clone()];
    inputs.extend(state.iter().cloned());
    for t in &inputs[1..] {
        if t.shape != param.shape || t.dtype != param.dtype {
            return Err(Error::Shape(format!(
                "adam_step: every input must match the parameter ({} {}), got {} {}",
                fmt_shape(&param.shape),
                param.dtype,
                fmt_shape(&t.shape),
                t.dtype
            )));
        }
    }
    let mut shape = vec![inputs.len() - 1];
    shape.extend(&param.shape);
    Ok(Node::untracked(
        Op::AdamStep(attrs),
        inputs,
        shape,
        param.dtype,
        param.layout,
    ))
}
