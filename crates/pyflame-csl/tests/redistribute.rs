//! Data movement across PEs (transposes, reshapes that change tile ownership, layout
//! changes), reductions over any axis, and SUMMA on non-square grids: simulator versus CPU
//! executor, with the validator run on every generated program.

mod common;
use common::{check, input, layouts};
use pyflame_core::MeshLayout;
use pyflame_csl::plan::{Local, Phase};
use pyflame_ir::{build, BinaryOp, NodeRef, ReduceOp, UnaryOp};

const TOL: f32 = 1e-4;

fn relu(x: &NodeRef) -> NodeRef {
    build::unary(UnaryOp::Relu, x).unwrap()
}

fn fabric_phases(g: &pyflame_csl::Generated) -> usize {
    g.plan
        .phases
        .iter()
        .filter(|p| !matches!(p, Phase::Local { .. }))
        .count()
}

fn gathers(g: &pyflame_csl::Generated) -> usize {
    g.plan
        .phases
        .iter()
        .filter(|p| {
            matches!(
                p,
                Phase::Local {
                    op: Local::Gather(_),
                    ..
                }
            )
        })
        .count()
}

#[test]
fn transpose_across_pes() {
    for l in layouts() {
        // a computed (device) tensor, so the transpose must move data
        let x = relu(&input(&[8, 16], 1, l));
        let t = build::transpose(&x, 0, 1).unwrap();
        let g = check(&t, TOL);
        if l.num_pes() > 1 {
            assert!(
                fabric_phases(&g) > 0,
                "{l}: a transpose across PEs uses the fabric"
            );
        }
        // consumed by an elementwise op with an untransposed operand of the same shape
        let y = input(&[16, 8], 2, l);
        check(&build::binary(BinaryOp::Add, &t, &y).unwrap(), TOL);
        // x^T @ x: a transposed operand of SUMMA
        check(&build::matmul(&t, &x).unwrap(), TOL);
    }
}

#[test]
fn permute_3d_across_pes() {
    for l in layouts() {
        let x = relu(&input(&[4, 8, 4], 3, l));
        for perm in [[0i64, 2, 1], [2, 0, 1], [1, 0, 2], [2, 1, 0]] {
            let p = build::permute(&x, &perm).unwrap();
            check(&build::unary(UnaryOp::Exp, &p).unwrap(), TOL);
        }
    }
}

#[test]
fn reshape_that_moves_elements() {
    for l in layouts() {
        let x = relu(&input(&[8, 16], 4, l));
        let r = build::reshape(&x, &[16, 8]).unwrap();
        let y = input(&[16, 8], 5, l);
        check(&build::binary(BinaryOp::Mul, &r, &y).unwrap(), TOL);
        let r3 = build::reshape(&x, &[4, 4, 8]).unwrap();
        check(
            &build::reduce(ReduceOp::Sum, &r3, Some(&[1]), false).unwrap(),
            TOL,
        );
    }
}

#[test]
fn layout_change_between_producer_and_consumer() {
    let cases = [
        (MeshLayout::RowPartition(4), MeshLayout::ColPartition(4)),
        (MeshLayout::ColPartition(4), MeshLayout::RowPartition(4)),
        (MeshLayout::Grid(2, 2), MeshLayout::SinglePe),
        (MeshLayout::SinglePe, MeshLayout::Grid(4, 4)),
        (MeshLayout::Grid(4, 4), MeshLayout::RowPartition(4)),
    ];
    for (la, lb) in cases {
        let a = relu(&input(&[8, 16], 6, la));
        let b = relu(&input(&[8, 16], 7, lb));
        // the output takes b's layout, so a's tiles move
        let g = check(&build::binary(BinaryOp::Sub, &b, &a).unwrap(), TOL);
        assert!(gathers(&g) > 0, "{la} -> {lb}");
    }
}

#[test]
fn reductions_over_any_axis_on_grids() {
    for l in layouts() {
        let x = relu(&input(&[4, 8, 16], 8, l));
        for op in [ReduceOp::Sum, ReduceOp::Mean, ReduceOp::Max, ReduceOp::Min] {
            for axes in [&[1i64][..], &[0, 2], &[0], &[1, 2], &[0, 1]] {
                for keep in [false, true] {
                    check(&build::reduce(op, &x, Some(axes), keep).unwrap(), TOL);
                }
            }
        }
        // host data reduced over a middle axis, then used by an elementwise op
        let h = input(&[4, 8, 16], 9, l);
        let s = build::reduce(ReduceOp::Sum, &h, Some(&[1]), false).unwrap();
        check(&build::unary(UnaryOp::Tanh, &s).unwrap(), TOL);
    }
}

#[test]
fn vectors_change_orientation() {
    for l in layouts() {
        let x = relu(&input(&[8, 16], 15, l));
        // a row sum is a column vector on the device; added to a [8] row vector it moves
        let s = build::reduce(ReduceOp::Sum, &x, Some(&[1]), false).unwrap();
        let v = input(&[8], 16, l);
        check(&build::binary(BinaryOp::Add, &s, &v).unwrap(), TOL);
        // a computed vector as the x of a GEMV, and a column sum as a matmul row
        let w = input(&[16, 8], 17, l);
        let c = build::reduce(ReduceOp::Mean, &x, Some(&[0]), false).unwrap();
        check(&build::matmul(&x, &relu(&c)).unwrap(), TOL);
        let c2 = build::reduce(ReduceOp::Max, &x, Some(&[0]), true).unwrap();
        check(&build::matmul(&c2, &w).unwrap(), TOL);
    }
}

#[test]
fn slices_and_expands() {
    for l in layouts() {
        let x = relu(&input(&[8, 16], 18, l));
        // leading rows, every other column, a strided 2-D window
        for ranges in [
            [(0usize, 4usize, 1usize), (0, 16, 1)],
            [(0, 8, 1), (1, 8, 2)],
            [(2, 4, 1), (4, 8, 1)],
            [(1, 4, 2), (0, 4, 4)],
        ] {
            let s = build::slice(&x, &ranges).unwrap();
            check(&build::unary(UnaryOp::Exp, &s).unwrap(), TOL);
        }
        // a sliced half added to the other half (both move)
        let a = build::slice(&x, &[(0, 8, 1), (0, 8, 1)]).unwrap();
        let b = build::slice(&x, &[(0, 8, 1), (8, 8, 1)]).unwrap();
        check(&build::binary(BinaryOp::Sub, &a, &b).unwrap(), TOL);
        // a computed column and row broadcast to full tiles, and new leading axes
        let c = build::reduce(ReduceOp::Sum, &x, Some(&[1]), true).unwrap();
        check(&relu(&build::expand(&c, &[8, 16]).unwrap()), TOL);
        let r = build::reduce(ReduceOp::Max, &x, Some(&[0]), true).unwrap();
        check(&relu(&build::expand(&r, &[4, 8, 16]).unwrap()), TOL);
        // host data is sliced by the host
        let h = input(&[8, 16], 19, l);
        check(
            &relu(&build::slice(&h, &[(0, 4, 2), (0, 16, 1)]).unwrap()),
            TOL,
        );
    }
}

#[test]
fn concatenation() {
    for l in layouts() {
        let a = relu(&input(&[8, 16], 20, l));
        let b = relu(&input(&[8, 16], 21, l));
        for axis in [0, 1] {
            let c = build::cat(&[a.clone(), b.clone()], axis).unwrap();
            check(&build::unary(UnaryOp::Exp, &c).unwrap(), TOL);
        }
        // a computed part and a host part of another length, and three parts
        let h = input(&[4, 16], 22, l);
        check(&relu(&build::cat(&[a.clone(), h.clone()], 0).unwrap()), TOL);
        let c3 = build::cat(&[b.clone(), h, a.clone()], 0).unwrap();
        check(&build::unary(UnaryOp::Tanh, &c3).unwrap(), TOL);
        // host parts only: joined by the host
        let h1 = input(&[8, 4], 23, l);
        let h2 = input(&[8, 12], 24, l);
        check(&relu(&build::cat(&[h1, h2], 1).unwrap()), TOL);
    }
}

#[test]
fn softmax_over_any_axis() {
    for l in layouts() {
        let x = relu(&input(&[4, 8, 16], 14, l));
        for axis in [0i64, 1] {
            check(&build::softmax(&x, axis, false).unwrap(), TOL);
            check(&build::softmax(&x, axis, true).unwrap(), TOL);
        }
    }
}

#[test]
fn summa_on_non_square_grids() {
    for (r, c) in [(2, 4), (4, 2), (1, 4), (4, 1), (2, 8)] {
        let l = MeshLayout::Grid(r, c);
        for (m, k, n) in [(8, 16, 8), (16, 8, 16), (8, 24, 16)] {
            if k % r != 0 || k % c != 0 {
                continue;
            }
            let a = input(&[m, k], 10, l);
            let b = input(&[k, n], 11, l);
            check(&build::matmul(&a, &b).unwrap(), TOL);
            // operands computed on the device
            check(&build::matmul(&relu(&a), &relu(&b)).unwrap(), TOL);
        }
    }
}

#[test]
fn uneven_shapes_are_a_clear_error() {
    let l = MeshLayout::Grid(2, 4);
    let a = input(&[8, 6], 12, l);
    let b = input(&[6, 8], 13, l);
    let out = build::matmul(&a, &b).unwrap();
    let g = pyflame_ir::Graph::capture(std::slice::from_ref(&out), false);
    let e = pyflame_csl::generate(&g, &Default::default()).expect_err("uneven");
    assert!(e.to_string().contains("divide"), "{e}");
}
