//! Builders of the fused scaled-dot-product attention ops ([`Op::Attention`] and its
//! gradient).

use super::*;
use crate::{AttnAttrs, AttnMask};

/// `softmax(q @ k^T * scale + mask) @ v` over the last two axes, as one op.
///
/// `q` is `[..., Lq, D]`, `k` `[..., Lk, D]` and `v` `[..., Lk, Dv]` with equal leading
/// (batch) axes. A bool `mask` marks with `true` the keys that take part; a float mask is
/// added to the scores; either must broadcast to `[..., Lq, Lk]`. `causal` additionally
/// hides the keys `j > i` from query `i`. Rows with no visible key give zeros.
pub fn attention(
    q: &NodeRef,
    k: &NodeRef,
    v: &NodeRef,
    mask: Option<&NodeRef>,
    causal: bool,
    scale: f64,
) -> Result<NodeRef> {
    attention_with(q, k, v, mask, causal, scale, false)
}

/// [`attention`], choosing what rows with no visible key give: zeros, or NaN when
/// `empty_rows_nan` (what `softmax` over a row of `-inf` followed by the matmul gives, so a
/// graph rewritten from that pattern keeps its results).
pub fn attention_with(
    q: &NodeRef,
    k: &NodeRef,
    v: &NodeRef,
    mask: Option<&NodeRef>,
    causal: bool,
    scale: f64,
    empty_rows_nan: bool,
) -> Result<NodeRef> {
    let nd = q.shape.len();
    if nd < 2 || k.shape.len() != nd || v.shape.len() != nd {
        return Err(Error::Shape(format!(
            "attention: query, key and value need the same number (at least 2) of dimensions, got {}, {} and {}",
            fmt_shape(&q.shape),
            fmt_shape(&k.shape),
            fmt_shape(&v.shape)
        )));
    }
    let batch = &q.shape[..nd - 2];
    let (lq, d) = (q.shape[nd - 2], q.shape[nd - 1]);
    let (lk, dv) = (k.shape[nd - 2], v.shape[nd - 1]);
    if &k.shape[..nd - 2] != batch
        || &v.shape[..nd - 2] != batch
        || k.shape[nd - 1] != d
        || v.shape[nd - 2] != lk
    {
        return Err(Error::Shape(format!(
            "attention: shapes query {}, key {} and value {} do not match (expected [..., Lq, D], [..., Lk, D], [..., Lk, Dv])",
            fmt_shape(&q.shape),
            fmt_shape(&k.shape),
            fmt_shape(&v.shape)
        )));
    }
    for (t, what) in [(q, "query"), (k, "key"), (v, "value")] {
        if !t.dtype.is_float() {
            return Err(Error::DType(format!(
                "attention: {what} must be floating point, got {}",
                t.dtype
            )));
        }
    }
    if !scale.is_finite() {
        return Err(Error::Invalid(format!(
            "attention: scale must be finite, got {scale}"
        )));
    }
    let dtype = DType::promote(DType::promote(q.dtype, k.dtype), v.dtype);
    let mut inputs = vec![cast(q, dtype), cast(k, dtype), cast(v, dtype)];
    let kind = match mask {
        None => AttnMask::None,
        Some(m) => {
            let mut full = batch.to_vec();
            full.extend([lq, lk]);
            let ok = m.shape.len() <= full.len()
                && broadcast_shapes(&m.shape, &full).is_ok_and(|s| s == full);
            if !ok {
                return Err(Error::Shape(format!(
                    "attention: mask of shape {} does not broadcast to the scores' shape {}",
                    fmt_shape(&m.shape),
                    fmt_shape(&full)
                )));
            }
            if m.dtype == DType::Bool {
                inputs.push(m.clone());
                AttnMask::Keep
            } else if m.dtype.is_float() {
                inputs.push(cast(m, dtype));
                AttnMask::Additive
            } else {
                return Err(Error::DType(format!(
                    "attention: the mask must be bool or floating point, got {}",
                    m.dtype
                )));
            }
        }
    };
    let attrs = AttnAttrs {
        scale,
        causal,
        mask: kind,
        empty_rows_nan,
    };
    let mut shape = batch.to_vec();
    shape.extend([lq, dv]);
    Ok(Node::new(
        Op::Attention(attrs),
        inputs,
        shape,
        dtype,
        q.layout,
    ))
}

/// Gradient of [`attention`]: `inputs` are (grad_out, q, k, v, mask?); the result is the
/// 1-D concatenation of the (contiguous) gradients of q, k and v.
pub fn attention_grad(inputs: Vec<NodeRef>, attrs: AttnAttrs) -> NodeRef {
    let total = inputs[1].numel() + inputs[2].numel() + inputs[3].numel();
    let (dtype, layout) = (inputs[1].dtype, inputs[1].layout);
    Node::new(Op::AttentionGrad(attrs), inputs, vec![total], dtype, layout)
}
