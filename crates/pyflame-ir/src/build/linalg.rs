//! Matrix products, convolution and pooling.

use super::*;

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
