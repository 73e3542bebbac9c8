//! Shape and dtype inference of the op builders, and graph capture.

use pyflame_core::{DType, Error, MeshLayout, Storage};
use pyflame_ir::{build, BinaryOp, Graph, Node, NodeRef, ReduceOp, UnaryOp, Value};
use std::sync::Arc;

fn input(shape: &[usize], dtype: DType) -> NodeRef {
    let n: usize = shape.iter().product();
    let s = Storage::zeros(dtype, n).unwrap();
    Node::input(
        Value::contiguous(Arc::new(s), shape.to_vec()),
        MeshLayout::SinglePe,
    )
}

#[test]
fn binary_broadcasts_and_promotes() {
    let a = input(&[3, 1], DType::Int32);
    let b = input(&[4], DType::Float16);
    let c = build::binary(BinaryOp::Add, &a, &b).unwrap();
    assert_eq!(c.shape, vec![3, 4]);
    assert_eq!(c.dtype, DType::Float16);
    let d = build::binary(BinaryOp::Div, &a, &a).unwrap();
    assert_eq!(d.dtype, DType::Float32);
    let e = build::binary(BinaryOp::Lt, &a, &b).unwrap();
    assert_eq!(e.dtype, DType::Bool);
}

#[test]
fn shape_errors_name_both_shapes() {
    let a = input(&[3, 4], DType::Float32);
    let b = input(&[5], DType::Float32);
    let err = build::binary(BinaryOp::Mul, &a, &b).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::Shape(_)));
    assert!(msg.contains("[3, 4]") && msg.contains("[5]"), "{msg}");
    let m = build::matmul(&a, &input(&[5, 2], DType::Float32))
        .unwrap_err()
        .to_string();
    assert!(m.contains("[3, 4]") && m.contains("[5, 2]"), "{m}");
}

#[test]
fn matmul_shapes_follow_numpy() {
    let a = input(&[2, 1, 3, 4], DType::Float32);
    let b = input(&[5, 4, 6], DType::Float32);
    assert_eq!(build::matmul(&a, &b).unwrap().shape, vec![2, 5, 3, 6]);
    let v = input(&[4], DType::Float32);
    assert_eq!(
        build::matmul(&v, &input(&[4, 6], DType::Float32))
            .unwrap()
            .shape,
        vec![6]
    );
    assert_eq!(
        build::matmul(&input(&[3, 4], DType::Float32), &v)
            .unwrap()
            .shape,
        vec![3]
    );
    assert!(build::matmul(&v, &v).unwrap().shape.is_empty());
}

#[test]
fn reductions_infer_shapes_and_dtypes() {
    let x = input(&[2, 3, 4], DType::Int32);
    let s = build::reduce(ReduceOp::Sum, &x, Some(&[0, 2]), true).unwrap();
    assert_eq!(s.shape, vec![1, 3, 1]);
    assert_eq!(s.dtype, DType::Int64);
    assert!(build::reduce(ReduceOp::Mean, &x, None, false).is_err());
    let f = input(&[2, 3, 4], DType::Float32);
    assert!(
        build::reduce(ReduceOp::Max, &f, Some(&[-1]), false)
            .unwrap()
            .shape
            == vec![2, 3]
    );
    assert!(build::reduce(
        ReduceOp::Max,
        &input(&[0, 2], DType::Float32),
        Some(&[0]),
        false
    )
    .is_err());
    assert!(matches!(
        build::reduce(ReduceOp::Sum, &f, Some(&[3]), false),
        Err(Error::Index(_))
    ));
}

#[test]
fn reshape_infers_and_checks() {
    let x = input(&[2, 3, 4], DType::Float32);
    assert_eq!(build::reshape(&x, &[-1, 4]).unwrap().shape, vec![6, 4]);
    assert!(build::reshape(&x, &[5, -1]).is_err());
    assert!(build::reshape(&x, &[-1, -1]).is_err());
    assert_eq!(build::flatten(&x, 1, -1).unwrap().shape, vec![2, 12]);
    assert_eq!(build::unsqueeze(&x, -1).unwrap().shape, vec![2, 3, 4, 1]);
    assert_eq!(
        build::squeeze(&input(&[1, 3, 1], DType::Float32), None)
            .unwrap()
            .shape,
        vec![3]
    );
}

#[test]
fn slices_resolve_like_python() {
    assert_eq!(
        build::resolve_slice((Some(-3), None, None), 10).unwrap(),
        (7, 3, 1)
    );
    assert_eq!(
        build::resolve_slice((Some(1), Some(8), Some(3)), 10).unwrap(),
        (1, 3, 3)
    );
    assert_eq!(
        build::resolve_slice((Some(5), Some(2), None), 10).unwrap(),
        (5, 0, 1)
    );
    assert!(build::resolve_slice((None, None, Some(-1)), 10).is_err());
}

#[test]
fn capture_orders_topologically_and_stops_at_realized() {
    let a = input(&[4], DType::Float32);
    let b = build::unary(UnaryOp::Exp, &a).unwrap();
    let c = build::binary(BinaryOp::Add, &b, &a).unwrap();
    let g = Graph::capture(std::slice::from_ref(&c), true);
    assert_eq!(g.len(), 3);
    assert_eq!(g.nodes[2].id, c.id);
    for (i, ins) in g.input_index.iter().enumerate() {
        assert!(ins.iter().all(|&j| j < i));
    }
    // Same structure, different nodes: equal keys.
    let a2 = input(&[4], DType::Float32);
    let c2 = build::binary(
        BinaryOp::Add,
        &build::unary(UnaryOp::Exp, &a2).unwrap(),
        &a2,
    )
    .unwrap();
    assert_eq!(
        g.structural_key(),
        Graph::capture(&[c2], true).structural_key()
    );
}

#[test]
fn long_chains_drop_without_stack_overflow() {
    let mut x = input(&[1], DType::Float32);
    for _ in 0..200_000 {
        x = build::unary(UnaryOp::Neg, &x).unwrap();
    }
    drop(x);
}
