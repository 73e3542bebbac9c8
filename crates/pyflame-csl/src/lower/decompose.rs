//! Rewrites the fused CPU ops that have no CSL lowering rule (normalization, attention and
//! convolution-epilogue kernels) into the primitive ops they stand for, so graphs built with `nn.LayerNorm`,
//! `F.group_norm`, `F.batch_norm` or `F.scaled_dot_product_attention` still lower (as they
//! did when those functions were compositions). Other graphs are returned untouched.

use crate::CslError;
use pyflame_core::{MeshLayout, Storage};
use pyflame_ir::{
    build, AttnAttrs, AttnMask, BinaryOp, Graph, Node, NodeRef, NormMode, Op, ReduceOp, UnaryOp,
    Value,
};
use std::sync::Arc;

fn err(e: pyflame_core::Error) -> CslError {
    CslError::Invalid(format!("expanding a fused op for CSL: {e}"))
}

fn fused(op: &Op) -> bool {
    matches!(
        op,
        Op::NormApply { .. } | Op::Attention(_) | Op::Conv2dFused(_)
    )
}

/// `g` with every [`Op::NormApply`] and [`Op::Attention`] replaced by primitive ops, or
/// `None` when it has none.
pub fn expand(g: &Graph) -> Result<Option<Graph>, CslError> {
    if !g
        .nodes
        .iter()
        .enumerate()
        .any(|(i, n)| !g.input_index[i].is_empty() && fused(&n.op))
    {
        return Ok(None);
    }
    let mut map: Vec<NodeRef> = Vec::with_capacity(g.len());
    for (i, node) in g.nodes.iter().enumerate() {
        let idx = &g.input_index[i];
        let ins: Vec<NodeRef> = idx.iter().map(|&j| map[j].clone()).collect();
        let unchanged = ins
            .iter()
            .zip(idx)
            .all(|(n, &j)| Arc::ptr_eq(n, &g.nodes[j]));
        let new = match &node.op {
            _ if ins.is_empty() => node.clone(),
            Op::NormApply {
                mode,
                eps,
                weight,
                bias,
            } => {
                let w = weight.then(|| ins[2].clone());
                let b = bias.then(|| ins[2 + *weight as usize].clone());
                norm(&ins[0], *mode, *eps, w.as_ref(), b.as_ref()).map_err(err)?
            }
            Op::Attention(a) => attention(node, &ins, *a).map_err(err)?,
            Op::Conv2dFused(e) => {
                let y = build::conv2d(&ins[0], &ins[1], e.conv).map_err(err)?;
                let bias = e.bias.then(|| &ins[2]);
                let residual = e.residual.then(|| &ins[2 + e.bias as usize]);
                build::conv2d_epilogue_composed(y, bias, residual, e.clamp).map_err(err)?
            }
            _ if unchanged => node.clone(),
            _ => Node::untracked(
                node.op.clone(),
                ins,
                node.shape.clone(),
                node.dtype,
                node.layout,
            ),
        };
        map.push(new);
    }
    let outs: Vec<NodeRef> = g.outputs.iter().map(|&o| map[o].clone()).collect();
    Ok(Some(Graph::capture(&outs, false)))
}

fn scalar(v: f64, like: &NodeRef) -> NodeRef {
    build::full(vec![], v, like.dtype, like.layout)
}

/// `(x - mean) / sqrt(var + eps) * w + b` on `x` viewed as `[N, C, S]`.
fn norm(
    x: &NodeRef,
    mode: NormMode,
    eps: f64,
    w: Option<&NodeRef>,
    b: Option<&NodeRef>,
) -> pyflame_core::Result<NodeRef> {
    let (n, c, s) = (x.shape[0] as i64, x.shape[1] as i64, x.shape[2] as i64);
    // The reduced view: rows of statistics groups (Groups) or [N, C, S] (Channels).
    let (view, axes): (NodeRef, Vec<i64>) = match mode {
        NormMode::Groups(g) => {
            let g = g as i64;
            (build::reshape(x, &[n * g, c / g * s])?, vec![1])
        }
        NormMode::Channels if s == 1 => (build::reshape(x, &[n, c])?, vec![0]),
        NormMode::Channels => (x.clone(), vec![0, 2]),
    };
    let mean = build::reduce(ReduceOp::Mean, &view, Some(&axes), true)?;
    let xc = build::binary(BinaryOp::Sub, &view, &mean)?;
    let var = build::reduce(
        ReduceOp::Mean,
        &build::binary(BinaryOp::Mul, &xc, &xc)?,
        Some(&axes),
        true,
    )?;
    let den = build::unary(
        UnaryOp::Sqrt,
        &build::binary(BinaryOp::Add, &var, &scalar(eps, x))?,
    )?;
    let y = build::binary(BinaryOp::Div, &xc, &den)?;
    // Affine parameters per channel: a row vector over [N, C] when S == 1.
    let (mut y, pshape) = if s == 1 {
        (build::reshape(&y, &[n, c])?, vec![c])
    } else {
        (build::reshape(&y, &[n, c, s])?, vec![1, c, 1])
    };
    if let Some(w) = w {
        y = build::binary(BinaryOp::Mul, &y, &build::reshape(w, &pshape)?)?;
    }
    if let Some(b) = b {
        y = build::binary(BinaryOp::Add, &y, &build::reshape(b, &pshape)?)?;
    }
    build::reshape(&y, &[n, c, s])
}

/// `softmax(q @ k^T * scale + mask) @ v` from primitive ops.
fn attention(node: &NodeRef, ins: &[NodeRef], a: AttnAttrs) -> pyflame_core::Result<NodeRef> {
    let (q, k, v) = (&ins[0], &ins[1], &ins[2]);
    let kt = build::transpose(k, -1, -2)?;
    let mut s = build::binary(
        BinaryOp::Mul,
        &build::matmul(q, &kt)?,
        &scalar(a.scale, node),
    )?;
    let neg_inf = scalar(f64::NEG_INFINITY, node);
    match a.mask {
        AttnMask::None => {}
        AttnMask::Additive => s = build::binary(BinaryOp::Add, &s, &ins[3])?,
        AttnMask::Keep => s = build::where_(&ins[3], &s, &neg_inf)?,
    }
    if a.causal {
        let nd = s.shape.len();
        let (lq, lk) = (s.shape[nd - 2], s.shape[nd - 1]);
        let keep: Vec<bool> = (0..lq * lk).map(|e| e % lk <= e / lk).collect();
        let storage = Storage::from_slice(&keep)?;
        let tril = Node::input(
            Value::contiguous(Arc::new(storage), vec![lq, lk]),
            MeshLayout::SinglePe,
        );
        s = build::where_(&tril, &s, &neg_inf)?;
    }
    build::matmul(&build::softmax(&s, -1, false)?, v)
}
