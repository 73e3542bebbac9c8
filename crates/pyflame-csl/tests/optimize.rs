//! `CodeGenOptions::optimize`: liveness-based buffer reuse lets larger programs fit in the
//! 48 KB per PE, and never changes results.

mod common;
use common::{check, check_with, input, layouts};
use pyflame_core::MeshLayout;
use pyflame_csl::{generate, CodeGenOptions, CslError};
use pyflame_ir::{build, BinaryOp, Graph, NodeRef, ReduceOp, UnaryOp};

/// A chain of `n` elementwise ops on a [32, 64] tensor (8 KB per buffer on one PE).
fn long_chain(n: usize, l: MeshLayout) -> NodeRef {
    let x = input(&[32, 64], 1, l);
    let b = input(&[64], 2, l);
    let mut t = x.clone();
    for k in 0..n {
        t = match k % 3 {
            0 => build::binary(BinaryOp::Add, &t, &b).unwrap(),
            1 => build::unary(UnaryOp::Tanh, &t).unwrap(),
            _ => build::binary(BinaryOp::Mul, &t, &x).unwrap(),
        };
    }
    t
}

#[test]
fn reuse_makes_a_long_chain_fit() {
    let out = long_chain(12, MeshLayout::SinglePe);
    let g = Graph::capture(std::slice::from_ref(&out), false);
    let plain = CodeGenOptions {
        optimize: false,
        ..Default::default()
    };
    match generate(&g, &plain) {
        Err(CslError::Validation(v)) => assert!(v.iter().any(|f| f.contains("M1")), "{v:?}"),
        other => panic!(
            "expected an M1 failure without reuse, got {:?}",
            other.map(|_| ())
        ),
    }
    let gen = check(&out, 1e-4);
    // x, b, the output and two alternating temporaries
    assert!(gen.plan.bufs.len() <= 6, "{} buffers", gen.plan.bufs.len());
    assert!(gen.plan.max_pe_bytes() < 48 * 1024);
}

#[test]
fn reuse_never_changes_results() {
    let plain = CodeGenOptions {
        optimize: false,
        ..Default::default()
    };
    // a fresh graph per generation: `check` evaluates (realizes) its output on the CPU
    let build_graph = |l: MeshLayout| {
        let x = input(&[8, 16], 3, l);
        let w = input(&[16, 16], 4, l);
        let h = build::unary(UnaryOp::Relu, &build::matmul(&x, &w).unwrap()).unwrap();
        let h = build::matmul(&h, &w).unwrap();
        let s = build::softmax(&h, -1, false).unwrap();
        let m = build::reduce(ReduceOp::Mean, &s, Some(&[0]), true).unwrap();
        build::binary(BinaryOp::Sub, &s, &m).unwrap()
    };
    for l in layouts() {
        let a = check(&build_graph(l), 1e-4);
        let b = check_with(&build_graph(l), 1e-4, &plain);
        assert_eq!(a.sim.unwrap().outputs, b.sim.unwrap().outputs, "{l}");
        assert!(
            a.plan.bufs.len() < b.plan.bufs.len(),
            "{l}: no buffer was reused"
        );
        assert!(a.plan.max_pe_bytes() < b.plan.max_pe_bytes(), "{l}");
    }
}

#[test]
fn reuse_with_data_movement() {
    let plain = CodeGenOptions {
        optimize: false,
        ..Default::default()
    };
    // transposes, a concatenation (partial writes into one buffer) and a middle-axis
    // reduction, each moving data across PEs
    let build_graph = |l: MeshLayout| {
        let x = build::unary(UnaryOp::Relu, &input(&[8, 16], 5, l)).unwrap();
        let t = build::transpose(&x, 0, 1).unwrap();
        let c = build::cat(&[t.clone(), build::unary(UnaryOp::Exp, &t).unwrap()], 0).unwrap();
        let r = build::reshape(&c, &[4, 8, 8]).unwrap();
        let s = build::reduce(ReduceOp::Sum, &r, Some(&[1]), false).unwrap();
        build::binary(BinaryOp::Mul, &s, &input(&[4, 8], 6, l)).unwrap()
    };
    for l in layouts() {
        let a = check(&build_graph(l), 1e-4);
        let b = check_with(&build_graph(l), 1e-4, &plain);
        assert_eq!(a.sim.unwrap().outputs, b.sim.unwrap().outputs, "{l}");
        assert!(a.plan.max_pe_bytes() <= b.plan.max_pe_bytes(), "{l}");
    }
}
