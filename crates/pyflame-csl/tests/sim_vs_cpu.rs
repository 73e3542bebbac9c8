//! Simulator versus CPU executor for every lowering rule on every layout.

mod common;
use common::{check, input, input_shift, layouts};
use pyflame_core::MeshLayout;
use pyflame_ir::{build, BinaryOp, ReduceOp, UnaryOp};

const TOL: f32 = 2e-5;

#[test]
fn unary_functions() {
    for l in layouts() {
        let x = input(&[8, 16], 1, l);
        for u in [
            UnaryOp::Relu,
            UnaryOp::Neg,
            UnaryOp::Abs,
            UnaryOp::Exp,
            UnaryOp::Tanh,
            UnaryOp::Sigmoid,
            UnaryOp::Gelu,
            UnaryOp::GeluTanh,
            UnaryOp::Silu,
        ] {
            check(&build::unary(u, &x).unwrap(), TOL);
        }
        let pos = input_shift(&[8, 16], 2, l, 1.5);
        for u in [UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Reciprocal] {
            check(&build::unary(u, &pos).unwrap(), TOL);
        }
    }
}

#[test]
fn binary_with_broadcasting() {
    for l in layouts() {
        let a = input(&[8, 16], 3, l);
        let b = input_shift(&[8, 16], 4, l, 2.5);
        let row = input_shift(&[16], 5, l, 2.5);
        let col = input_shift(&[8, 1], 6, l, 2.5);
        let s = build::full(vec![], 1.5, pyflame_core::DType::Float32, l);
        for op in [
            BinaryOp::Add,
            BinaryOp::Sub,
            BinaryOp::Mul,
            BinaryOp::Div,
            BinaryOp::Maximum,
            BinaryOp::Minimum,
        ] {
            for rhs in [&b, &row, &col, &s] {
                check(&build::binary(op, &a, rhs).unwrap(), TOL);
                check(&build::binary(op, rhs, &a).unwrap(), TOL);
            }
        }
        // general broadcast of a host input ([8,1,16] + [4,16] style) becomes a full tile
        let c3 = input(&[2, 4, 16], 7, l);
        let m = input(&[4, 16], 8, l);
        check(&build::binary(BinaryOp::Add, &c3, &m).unwrap(), TOL);
        // chains reuse device buffers
        let t = build::binary(BinaryOp::Mul, &a, &b).unwrap();
        let t = build::unary(UnaryOp::Relu, &t).unwrap();
        check(&build::binary(BinaryOp::Add, &t, &row).unwrap(), TOL);
    }
}

#[test]
fn reductions() {
    for l in layouts() {
        let x = input(&[8, 16], 9, l);
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            for axes in [Some(&[1i64][..]), Some(&[0][..]), None] {
                for keep in [false, true] {
                    check(&build::reduce(op, &x, axes, keep).unwrap(), 1e-4);
                }
            }
        }
        let x3 = input(&[2, 4, 16], 10, l);
        check(
            &build::reduce(ReduceOp::Sum, &x3, Some(&[2]), true).unwrap(),
            1e-4,
        );
        check(
            &build::reduce(ReduceOp::Max, &x3, Some(&[0, 1]), false).unwrap(),
            1e-4,
        );
        // min reduction (-max(-x)) feeding elementwise minimum against a row vector
        let mn = build::reduce(ReduceOp::Min, &x3, Some(&[0, 1]), false).unwrap();
        let y = build::binary(BinaryOp::Minimum, &x, &mn).unwrap();
        check(&y, 1e-4);
    }
}

#[test]
fn softmax_and_layernorm() {
    for l in layouts() {
        let x = input(&[8, 16], 11, l);
        check(&build::softmax(&x, -1, false).unwrap(), TOL);
        check(&build::softmax(&x, -1, true).unwrap(), 1e-4);
        check(&build::softmax(&x, 0, false).unwrap(), TOL);
        // layernorm over the last axis: (x - mean) / sqrt(var + eps) * g + b
        let mean = build::reduce(ReduceOp::Mean, &x, Some(&[-1]), true).unwrap();
        let d = build::binary(BinaryOp::Sub, &x, &mean).unwrap();
        let var = build::reduce(
            ReduceOp::Mean,
            &build::binary(BinaryOp::Mul, &d, &d).unwrap(),
            Some(&[-1]),
            true,
        )
        .unwrap();
        let eps = build::full(vec![], 1e-5, pyflame_core::DType::Float32, l);
        let std = build::unary(
            UnaryOp::Sqrt,
            &build::binary(BinaryOp::Add, &var, &eps).unwrap(),
        )
        .unwrap();
        let y = build::binary(BinaryOp::Div, &d, &std).unwrap();
        let g = input_shift(&[16], 12, l, 1.0);
        let b = input(&[16], 13, l);
        let y = build::binary(
            BinaryOp::Add,
            &build::binary(BinaryOp::Mul, &y, &g).unwrap(),
            &b,
        )
        .unwrap();
        check(&y, 1e-4);
    }
}

#[test]
fn matmul_gemm_and_gemv() {
    for l in layouts() {
        let a = input(&[8, 16], 14, l);
        let b = input(&[16, 8], 15, l);
        check(&build::matmul(&a, &b).unwrap(), 1e-4);
        let v = input(&[16], 16, l);
        check(&build::matmul(&a, &v).unwrap(), 1e-4);
        let r = input(&[1, 8], 17, l);
        check(&build::matmul(&r, &a).unwrap(), 1e-4);
        // relu(a @ b + bias) then softmax: a small MLP layer
        let bias = input(&[8], 18, l);
        let h = build::binary(BinaryOp::Add, &build::matmul(&a, &b).unwrap(), &bias).unwrap();
        let h = build::unary(UnaryOp::Relu, &h).unwrap();
        check(&build::softmax(&h, -1, false).unwrap(), 1e-4);
    }
}

#[test]
fn transpose_and_reshape_on_one_pe() {
    let x = input(&[6, 10], 19, MeshLayout::SinglePe);
    let t = build::transpose(&x, 0, 1).unwrap();
    check(&build::unary(UnaryOp::Relu, &t).unwrap(), TOL);
    let r = build::reshape(&build::unary(UnaryOp::Exp, &x).unwrap(), &[10, 6]).unwrap();
    check(
        &build::reduce(ReduceOp::Sum, &r, Some(&[1]), false).unwrap(),
        1e-4,
    );
    // a reshape that keeps every tile is free on a grid
    let g = input(&[8, 16], 20, MeshLayout::Grid(2, 2));
    let s = build::reduce(ReduceOp::Sum, &g, Some(&[1]), false).unwrap();
    let s2 = build::reshape(&s, &[8, 1]).unwrap();
    check(&build::binary(BinaryOp::Sub, &g, &s2).unwrap(), 1e-4);
}

#[test]
fn comparisons_as_masks_and_where() {
    use pyflame_core::DType;
    let cmps = [
        BinaryOp::Eq,
        BinaryOp::Ne,
        BinaryOp::Lt,
        BinaryOp::Le,
        BinaryOp::Gt,
        BinaryOp::Ge,
    ];
    for l in layouts() {
        let a = input(&[8, 16], 21, l);
        let b = input(&[8, 16], 22, l);
        let row = input(&[16], 23, l);
        let m = build::binary(BinaryOp::Maximum, &a, &b).unwrap();
        let s = build::full(vec![], 0.1, DType::Float32, l);
        for op in cmps {
            // equal elements occur: a == max(a, b) wherever a >= b
            for rhs in [&m, &row, &s] {
                let c = build::binary(op, &a, rhs).unwrap();
                check(&build::cast(&c, DType::Float32), 0.0);
            }
        }
        // where(a > b, a, b) == maximum(a, b); with a row vector and a scalar
        let c = build::binary(BinaryOp::Gt, &a, &b).unwrap();
        check(&build::where_(&c, &a, &b).unwrap(), TOL);
        let c = build::binary(BinaryOp::Lt, &a, &row).unwrap();
        check(&build::where_(&c, &row, &s).unwrap(), TOL);
        // masks feed arithmetic: relu-like a * (a > 0)
        let pos = build::binary(BinaryOp::Gt, &a, &s).unwrap();
        let y = build::binary(BinaryOp::Mul, &a, &build::cast(&pos, DType::Float32)).unwrap();
        check(&y, TOL);
    }
}

#[test]
fn bool_outputs_are_an_explicit_error() {
    let a = input(&[4, 4], 24, MeshLayout::SinglePe);
    let b = input(&[4, 4], 25, MeshLayout::SinglePe);
    let c = build::binary(BinaryOp::Lt, &a, &b).unwrap();
    let g = pyflame_ir::Graph::capture(&[c], false);
    let Err(err) = pyflame_csl::generate(&g, &pyflame_csl::CodeGenOptions::default()) else {
        panic!("a bool output must not generate");
    };
    assert!(err.to_string().contains("bool"), "{err}");
}
