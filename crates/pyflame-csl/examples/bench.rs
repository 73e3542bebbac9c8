//! Timing of code generation (300-op graph on a 64x64 grid) and simulation (1024x1024 matmul
//! on a 16x16 grid). Run with `cargo run --release --example bench`.
use pyflame_core::{MeshLayout, Storage};
use pyflame_csl::{generate, CodeGenOptions};
use pyflame_ir::{build, BinaryOp, Graph, Node, ReduceOp, UnaryOp, Value};
use std::sync::Arc;
use std::time::Instant;

fn input(shape: &[usize], l: MeshLayout) -> pyflame_ir::NodeRef {
    let n: usize = shape.iter().product();
    let d: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
        .collect();
    Node::input(
        Value::contiguous(
            Arc::new(Storage::from_slice(&d).expect("s")),
            shape.to_vec(),
        ),
        l,
    )
}

fn main() {
    let l = MeshLayout::Grid(64, 64);
    let x = input(&[256, 256], l);
    let b = input(&[256], l);
    let mut h = x.clone();
    for i in 0..100 {
        h = build::binary(BinaryOp::Add, &h, &b).expect("add");
        h = build::unary(
            if i % 2 == 0 {
                UnaryOp::Tanh
            } else {
                UnaryOp::Relu
            },
            &h,
        )
        .expect("u");
        if i % 10 == 9 {
            let m = build::reduce(ReduceOp::Mean, &h, Some(&[-1]), true).expect("mean");
            h = build::binary(BinaryOp::Sub, &h, &m).expect("sub");
        } else {
            h = build::binary(BinaryOp::Mul, &h, &x).expect("mul");
        }
    }
    let g = Graph::capture(&[h], false);
    let t = Instant::now();
    let opts = CodeGenOptions {
        simulate: false,
        ..Default::default()
    };
    let gen = generate(&g, &opts).expect("gen");
    let bytes: usize = gen.sources.values().map(|s| s.len()).sum();
    println!(
        "codegen: {} nodes, {} phases on 64x64: {:.3} s ({} bytes of text)",
        g.len(),
        gen.plan.phases.len(),
        t.elapsed().as_secs_f64(),
        bytes
    );
    let t = Instant::now();
    let gen = generate(&g, &CodeGenOptions::default()).expect("gen");
    println!(
        "codegen + simulation of the same graph: {:.3} s, {} cycles",
        t.elapsed().as_secs_f64(),
        gen.sim.map(|s| s.cycles).unwrap_or(0)
    );

    let l = MeshLayout::Grid(16, 16);
    let a = input(&[1024, 1024], l);
    let bm = input(&[1024, 1024], l);
    let c = build::matmul(&a, &bm).expect("mm");
    let g = Graph::capture(&[c], false);
    let t = Instant::now();
    let (_, e) = pyflame_csl::simulate(&g, &CodeGenOptions::default()).expect("sim");
    println!("1024^3 matmul on 16x16: simulate {:.3} s; {} cycles = {:.3} ms on device, {:.1} GFLOP/s, {} bytes per PE", t.elapsed().as_secs_f64(), e.cycles, e.device_seconds * 1e3, e.device_flops_per_s / 1e9, e.max_pe_bytes);
    match generate(
        &g,
        &CodeGenOptions {
            simulate: false,
            ..Default::default()
        },
    ) {
        Ok(_) => println!("generated"),
        Err(err) => println!("generate refuses: {err}"),
    }

    // a transpose across all PEs of a 16x16 grid (256 tile broadcasts, the largest allowed)
    let x = input(&[256, 256], l);
    let t = build::permute(&build::unary(UnaryOp::Relu, &x).expect("relu"), &[1, 0])
        .expect("transpose");
    let g = Graph::capture(&[t], false);
    let start = Instant::now();
    let gen = generate(&g, &CodeGenOptions::default()).expect("transpose");
    let s = gen.sim.expect("sim");
    println!(
        "256x256 transpose on 16x16: codegen + validation + simulation {:.3} s; {} phases, {} cycles, {} wavelets",
        start.elapsed().as_secs_f64(),
        gen.plan.phases.len(),
        s.cycles,
        s.wavelets
    );
}
