//! Shared helpers: graph construction and CPU reference evaluation.
#![allow(dead_code)]

use pyflame_core::{MeshLayout, Storage};
use pyflame_csl::{generate_with, CodeGenOptions, Generated};
use pyflame_ir::{Graph, Node, NodeRef, Value};
use std::sync::Arc;

/// Deterministic pseudo-random data in [-1, 1) (+ `shift`).
pub fn data(n: usize, seed: u64, shift: f32) -> Vec<f32> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0 + shift
        })
        .collect()
}

/// A realized input node.
pub fn input(shape: &[usize], seed: u64, layout: MeshLayout) -> NodeRef {
    input_shift(shape, seed, layout, 0.0)
}

/// A realized input node with values shifted by `shift`.
pub fn input_shift(shape: &[usize], seed: u64, layout: MeshLayout, shift: f32) -> NodeRef {
    let n: usize = shape.iter().product();
    let st = Storage::from_slice(&data(n, seed, shift)).expect("storage");
    Node::input(Value::contiguous(Arc::new(st), shape.to_vec()), layout)
}

/// Generates code for `out` (simulating it) and checks the simulator against the CPU
/// executor; returns the generation result.
pub fn check(out: &NodeRef, tol: f32) -> Generated {
    check_with(out, tol, &CodeGenOptions::default())
}

/// [`check`] with explicit options.
pub fn check_with(out: &NodeRef, tol: f32, opts: &CodeGenOptions) -> Generated {
    let g = Graph::capture(std::slice::from_ref(out), false);
    pyflame_cpu::exec::evaluate(std::slice::from_ref(out)).expect("cpu");
    let want = pyflame_csl::lower::value_f32(&out.value().expect("value")).expect("f32");
    let gen = match generate_with(&g, opts, Some(std::slice::from_ref(&want))) {
        Ok(g) => g,
        Err(e) => panic!(
            "generation failed for {}:\n{e}\n{}",
            out.op.name(),
            g.render()
        ),
    };
    let got = &gen.sim.as_ref().expect("sim").outputs[0];
    assert_eq!(got.len(), want.len());
    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
        let ok = (a - b).abs() <= tol * (1.0 + b.abs()) || (a.is_nan() && b.is_nan());
        assert!(
            ok,
            "element {i}: sim {a} vs cpu {b} ({} on {})",
            out.op.name(),
            out.layout
        );
    }
    gen
}

/// The layouts every rule is checked on.
pub fn layouts() -> Vec<MeshLayout> {
    vec![
        MeshLayout::SinglePe,
        MeshLayout::RowPartition(4),
        MeshLayout::ColPartition(4),
        MeshLayout::Grid(2, 2),
        MeshLayout::Grid(4, 4),
    ]
}
