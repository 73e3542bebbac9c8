//! Elementwise ops and their dtype rules (PyTorch promotion, 0-d tensors, true division).

use super::*;

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
