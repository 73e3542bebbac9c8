//! sin, cos, floor, ceil, sign and erf on every layout, and casts: host data of any dtype
//! cast to float32 (converted by the host), float32 to bool masks, bool inputs as `where`
//! conditions, and the errors for what is not lowered.

mod common;
use common::{check, data, input_shift, layouts};
use pyflame_core::{DType, MeshLayout, Storage};
use pyflame_ir::{build, BinaryOp, Graph, Node, NodeRef, UnaryOp, Value};
use std::sync::Arc;

fn leaf<T: pyflame_core::Element>(v: &[T], shape: &[usize], l: MeshLayout) -> NodeRef {
    let st = Storage::from_slice(v).expect("storage");
    Node::input(Value::contiguous(Arc::new(st), shape.to_vec()), l)
}

/// Values in [-5, 5) with exact integers and halves mixed in.
fn wide(n: usize, seed: u64) -> Vec<f32> {
    data(n, seed, 0.0)
        .iter()
        .enumerate()
        .map(|(i, v)| match i % 5 {
            0 => (v * 5.0).round(),
            1 => (v * 5.0).round() + 0.5,
            _ => v * 5.0,
        })
        .collect()
}

#[test]
fn more_unary_functions() {
    for l in layouts() {
        let x = leaf(&wide(128, 1), &[8, 16], l);
        // computed on the device first, so the function runs on PEs
        let x = build::binary(BinaryOp::Add, &x, &input_shift(&[16], 2, l, 0.0)).unwrap();
        for u in [
            UnaryOp::Sin,
            UnaryOp::Cos,
            UnaryOp::Floor,
            UnaryOp::Ceil,
            UnaryOp::Sign,
            UnaryOp::Erf,
        ] {
            check(&build::unary(u, &x).unwrap(), 2e-5);
        }
        let w = leaf(&wide(128, 3), &[8, 16], l);
        let w = build::unary(UnaryOp::Relu, &w).unwrap();
        for u in [UnaryOp::Floor, UnaryOp::Ceil, UnaryOp::Sign] {
            check(&build::unary(u, &w).unwrap(), 0.0);
        }
    }
}

#[test]
fn casts_of_host_data_and_masks() {
    for l in layouts() {
        let ints: Vec<i32> = (0..128).map(|i| (i * 37 % 101) - 50).collect();
        let xi = leaf(&ints, &[8, 16], l);
        let y = input_shift(&[8, 16], 4, l, 0.0);
        check(
            &build::binary(BinaryOp::Mul, &build::cast(&xi, DType::Float32), &y).unwrap(),
            1e-5,
        );
        let f64s: Vec<f64> = (0..16).map(|i| f64::from(i) / 7.0).collect();
        let xd = leaf(&f64s, &[16], l);
        check(
            &build::binary(BinaryOp::Add, &y, &build::cast(&xd, DType::Float32)).unwrap(),
            1e-5,
        );
        // a bool input as a where() condition, and a float32 -> bool cast
        let bools: Vec<bool> = (0..128).map(|i| i % 3 == 0).collect();
        let c = leaf(&bools, &[8, 16], l);
        let z = build::unary(UnaryOp::Exp, &y).unwrap();
        check(&build::where_(&c, &z, &y).unwrap(), 1e-5);
        let m = build::cast(&build::unary(UnaryOp::Relu, &y).unwrap(), DType::Bool);
        check(&build::where_(&m, &y, &z).unwrap(), 1e-5);
        check(&build::cast(&m, DType::Float32), 0.0);
    }
}

fn lower_err(out: &NodeRef) -> String {
    let g = Graph::capture(std::slice::from_ref(out), false);
    pyflame_csl::generate(&g, &Default::default())
        .map(|_| ())
        .expect_err("must not lower")
        .to_string()
}

#[test]
fn unsupported_casts_are_clear_errors() {
    let l = MeshLayout::Grid(2, 2);
    let big: Vec<i64> = (0..16).map(|i| (1i64 << 40) + i).collect();
    let e = lower_err(&build::cast(&leaf(&big, &[4, 4], l), DType::Float32));
    assert!(e.contains("not exactly representable"), "{e}");
    let ints: Vec<i32> = (0..16).collect();
    let xi = leaf(&ints, &[4, 4], l);
    let e = lower_err(&build::binary(BinaryOp::Add, &xi, &xi).unwrap());
    assert!(e.contains("int32"), "{e}");
    let y = input_shift(&[4, 4], 5, l, 0.0);
    let e = lower_err(&build::cast(&y, DType::Int32));
    assert!(e.contains("int32"), "{e}");
    let e = lower_err(&build::binary(BinaryOp::Lt, &xi, &xi).unwrap());
    assert!(e.contains("cast other inputs to float32"), "{e}");
}
