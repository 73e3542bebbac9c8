//! Builder of the convolution with a fused epilogue ([`Op::Conv2dFused`]).

use super::{binary, cast, conv2d, fmt_shape, full, reshape, unary};
use crate::{BinaryOp, ConvAttrs, ConvEpilogue, Node, NodeRef, Op, UnaryOp};
use pyflame_core::{DType, Error, Result};

/// `clamp(conv2d(x, w) + bias[o] + residual)`: one [`Op::Conv2dFused`] node, whose kernel
/// applies the bias, the residual and the clamp while it writes the output, when nothing
/// needs a gradient and the result is float32 or float64; otherwise the same value composed
/// of plain ops (see [`conv2d_epilogue_composed`]). `bias` is `[O]`, `residual` has the
/// output's shape, `clamp` is `(min, max)` (ReLU is `(0, inf)`).
pub fn conv2d_fused(
    x: &NodeRef,
    w: &NodeRef,
    bias: Option<&NodeRef>,
    residual: Option<&NodeRef>,
    clamp: Option<(f64, f64)>,
    a: ConvAttrs,
) -> Result<NodeRef> {
    let y = conv2d(x, w, a)?;
    if let Some(b) = bias {
        if b.shape != [y.shape[1]] {
            return Err(Error::Shape(format!(
                "conv2d: bias of shape {} does not match {} output channels",
                fmt_shape(&b.shape),
                y.shape[1]
            )));
        }
    }
    if let Some(r) = residual {
        if r.shape != y.shape {
            return Err(Error::Shape(format!(
                "conv2d: residual of shape {} does not match the output {}",
                fmt_shape(&r.shape),
                fmt_shape(&y.shape)
            )));
        }
    }
    if let Some((lo, hi)) = clamp {
        if lo.is_nan() || hi.is_nan() || lo > hi {
            return Err(Error::Invalid(format!(
                "conv2d: clamp bounds ({lo}, {hi}) must be ordered numbers"
            )));
        }
    }
    let dtype = y.dtype;
    let extras = bias.into_iter().chain(residual);
    let grad = [x, w]
        .into_iter()
        .chain(extras.clone())
        .any(|n| n.requires_grad());
    let plain = bias.is_none() && residual.is_none() && clamp.is_none();
    // Extras of a wider dtype than the convolution's are added after it, as composed.
    let promotes = extras
        .into_iter()
        .any(|e| DType::promote(dtype, e.dtype) != dtype);
    if plain || grad || promotes || !matches!(dtype, DType::Float32 | DType::Float64) {
        return conv2d_epilogue_composed(y, bias, residual, clamp);
    }
    let inputs: Vec<NodeRef> = [x, w]
        .into_iter()
        .chain(bias)
        .chain(residual)
        .map(|n| cast(n, dtype))
        .collect();
    let epilogue = ConvEpilogue {
        conv: a,
        bias: bias.is_some(),
        residual: residual.is_some(),
        clamp,
    };
    Ok(Node::new(
        Op::Conv2dFused(epilogue),
        inputs,
        y.shape.clone(),
        dtype,
        y.layout,
    ))
}

/// The value of [`Op::Conv2dFused`] from plain ops, given the convolution's output `y`:
/// `y + bias` (broadcast over channels), then `+ residual`, then the clamp (ReLU for
/// `(0, inf)`, maximum/minimum otherwise). Used when gradients are needed and by backends
/// without the fused kernel.
pub fn conv2d_epilogue_composed(
    y: NodeRef,
    bias: Option<&NodeRef>,
    residual: Option<&NodeRef>,
    clamp: Option<(f64, f64)>,
) -> Result<NodeRef> {
    let mut out = y;
    if let Some(b) = bias {
        let b = reshape(b, &[1, out.shape[1] as i64, 1, 1])?;
        out = binary(BinaryOp::Add, &out, &b)?;
    }
    if let Some(r) = residual {
        out = binary(BinaryOp::Add, &out, r)?;
    }
    match clamp {
        None => {}
        Some((lo, hi)) if lo == 0.0 && hi == f64::INFINITY => out = unary(UnaryOp::Relu, &out)?,
        Some((lo, hi)) => {
            if lo > f64::NEG_INFINITY {
                let b = full(vec![], lo, out.dtype, out.layout);
                out = binary(BinaryOp::Maximum, &out, &b)?;
            }
            if hi < f64::INFINITY {
                let b = full(vec![], hi, out.dtype, out.layout);
                out = binary(BinaryOp::Minimum, &out, &b)?;
            }
        }
    }
    Ok(out)
}
