//! Criterion benchmarks of the CPU kernels: matmul (GFLOP/s = Gelem/s with
//! `Throughput::Elements(2 m n k)`), full reductions over 16M f32 (GB/s), elementwise math
//! on 1M f32 in L1-sized chunks, against scalar `std`/`libm` loops, and the three 3x3
//! convolution kernels (forward, input and weight gradient) on two ResNet-18 training shapes
//! (GFLOP/s as for matmul, `2 N O C 9 H W`).
//!
//! Run with `cargo bench -p pyflame-cpu` (a couple of minutes; 2 s per benchmark).

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use half::{bf16, f16};
use pyflame_core::{DType, Storage};
use pyflame_cpu::conv::{conv2d, conv2d_backward_input, conv2d_backward_weight, ConvParams};
use pyflame_cpu::kernels::matmul::{matmul, MatRef};
use pyflame_cpu::kernels::reduce::{arg_reduce, reduce, ReduceKind};
use pyflame_cpu::kernels::{math, simd};
use pyflame_ir::Value;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

fn bench_matmul(c: &mut Criterion) {
    eprintln!(
        "pyflame kernels: rayon threads = {}, SIMD = {}",
        rayon::current_num_threads(),
        simd::active_isa()
    );
    let mut g = c.benchmark_group("matmul_f32");
    for &s in &[256usize, 512, 1024] {
        let a = values(s * s, 1);
        let b = values(s * s, 2);
        let mut out = vec![0f32; s * s];
        g.throughput(Throughput::Elements(2 * (s * s * s) as u64));
        g.bench_with_input(BenchmarkId::from_parameter(s), &s, |bench, &s| {
            bench.iter(|| {
                let (ar, br) = (MatRef::contiguous(&a, s, s), MatRef::contiguous(&b, s, s));
                matmul(1, s, s, s, ar, br, black_box(&mut out)).expect("valid views");
            })
        });
    }
    g.finish();

    // Other dtypes and a batched small case at a glance.
    let mut g = c.benchmark_group("matmul_other");
    let s = 512usize;
    g.throughput(Throughput::Elements(2 * (s * s * s) as u64));
    let a = values(s * s, 3);
    let b = values(s * s, 4);
    let a16: Vec<f16> = a.iter().map(|&x| f16::from_f32(x)).collect();
    let b16: Vec<f16> = b.iter().map(|&x| f16::from_f32(x)).collect();
    let mut o16 = vec![f16::ZERO; s * s];
    g.bench_function("f16_512", |bench| {
        bench.iter(|| {
            let (ar, br) = (
                MatRef::contiguous(&a16, s, s),
                MatRef::contiguous(&b16, s, s),
            );
            matmul(1, s, s, s, ar, br, black_box(&mut o16)).expect("valid views");
        })
    });
    let ab: Vec<bf16> = a.iter().map(|&x| bf16::from_f32(x)).collect();
    let bb: Vec<bf16> = b.iter().map(|&x| bf16::from_f32(x)).collect();
    let mut ob = vec![bf16::ZERO; s * s];
    g.bench_function("bf16_512", |bench| {
        bench.iter(|| {
            let (ar, br) = (MatRef::contiguous(&ab, s, s), MatRef::contiguous(&bb, s, s));
            matmul(1, s, s, s, ar, br, black_box(&mut ob)).expect("valid views");
        })
    });
    let ai: Vec<i32> = a.iter().map(|&x| (x * 100.0) as i32).collect();
    let bi: Vec<i32> = b.iter().map(|&x| (x * 100.0) as i32).collect();
    let mut oi = vec![0i32; s * s];
    g.bench_function("i32_512", |bench| {
        bench.iter(|| {
            let (ar, br) = (MatRef::contiguous(&ai, s, s), MatRef::contiguous(&bi, s, s));
            matmul(1, s, s, s, ar, br, black_box(&mut oi)).expect("valid views");
        })
    });
    // 4096 independent 32x32 products (parallel over the batch).
    let (batch, m) = (4096usize, 32usize);
    let a = values(batch * m * m, 5);
    let b = values(batch * m * m, 6);
    let mut out = vec![0f32; batch * m * m];
    g.throughput(Throughput::Elements(2 * (batch * m * m * m) as u64));
    g.bench_function("f32_batch4096_32", |bench| {
        bench.iter(|| {
            let (ar, br) = (MatRef::contiguous(&a, m, m), MatRef::contiguous(&b, m, m));
            matmul(batch, m, m, m, ar, br, black_box(&mut out)).expect("valid views");
        })
    });
    g.finish();
}

fn bench_reduce(c: &mut Criterion) {
    let n = 16 * 1024 * 1024;
    let x: Vec<f32> = values(n, 7).iter().map(|v| v + 1.0).collect();
    let mut g = c.benchmark_group("reduce_16M_f32");
    g.throughput(Throughput::Bytes((n * 4) as u64));
    for (name, kind) in [("sum", ReduceKind::Sum), ("max", ReduceKind::Max)] {
        g.bench_function(name, |bench| {
            let mut out = [0f32];
            bench.iter(|| reduce(kind, black_box(&x[..]), 1, n, 1, &mut out))
        });
    }
    g.bench_function("sum_rows_4096x4096", |bench| {
        let mut out = vec![0f32; 4096];
        bench.iter(|| reduce(ReduceKind::Sum, black_box(&x[..]), 4096, 4096, 1, &mut out))
    });
    g.bench_function("sum_axis0_4096x4096", |bench| {
        let mut out = vec![0f32; 4096];
        bench.iter(|| reduce(ReduceKind::Sum, black_box(&x[..]), 1, 4096, 4096, &mut out))
    });
    g.bench_function("argmax", |bench| {
        let mut out = [0i64];
        bench.iter(|| arg_reduce(true, black_box(&x[..]), 1, n, 1, &mut out))
    });
    g.bench_function("std_iter_sum_baseline", |bench| {
        bench.iter(|| black_box(&x[..]).iter().sum::<f32>())
    });
    g.finish();
}

/// Applies `f` in place chunk by chunk (as the executor does: 4096-element chunks in L1),
/// copying each chunk from `src` first.
fn chunked(src: &[f32], dst: &mut [f32], f: fn(&mut [f32])) {
    for (d, s) in dst.chunks_mut(4096).zip(src.chunks(4096)) {
        d.copy_from_slice(s);
        f(d);
    }
}

fn bench_math(c: &mut Criterion) {
    let n = 1 << 20;
    let mut g = c.benchmark_group("math_1M_f32");
    g.throughput(Throughput::Elements(n as u64));
    let scaled = |lo: f32, hi: f32| -> Vec<f32> {
        values(n, 11)
            .iter()
            .map(|v| lo + (hi - lo) * (v + 1.0) * 0.5)
            .collect()
    };
    let mut dst = vec![0f32; n];
    // The scalar baseline is written inline so that it is not slowed by an indirect call.
    macro_rules! case {
        ($name:literal, $lo:expr, $hi:expr, $ours:path $(, |$x:ident| $base:expr)?) => {{
            let src = scaled($lo, $hi);
            g.bench_function(concat!($name, "/pyflame"), |bench| {
                bench.iter(|| chunked(black_box(&src), &mut dst, $ours))
            });
            $(
                g.bench_function(concat!($name, "/scalar_std"), |bench| {
                    bench.iter(|| {
                        for (d, $x) in dst.iter_mut().zip(black_box(&src).iter().copied()) {
                            *d = $base;
                        }
                    })
                });
            )?
        }};
    }
    case!("exp", -10.0, 10.0, math::exp_f32, |x| x.exp());
    case!("log", 1e-3, 1e3, math::log_f32, |x| x.ln());
    case!("tanh", -5.0, 5.0, math::tanh_f32, |x| x.tanh());
    case!("sigmoid", -10.0, 10.0, math::sigmoid_f32, |x| 1.0
        / (1.0 + (-x).exp()));
    case!("silu", -10.0, 10.0, math::silu_f32, |x| x
        / (1.0 + (-x).exp()));
    case!("gelu", -5.0, 5.0, math::gelu_f32, |x| {
        0.5 * x * (1.0 + libm::erff(x * std::f32::consts::FRAC_1_SQRT_2))
    });
    case!("gelu_tanh", -5.0, 5.0, math::gelu_tanh_f32, |x| {
        0.5 * x * (1.0 + (0.797_884_6 * (x + 0.044_715 * x * x * x)).tanh())
    });
    case!("erf", -3.0, 3.0, math::erf_f32, |x| libm::erff(x));
    case!("sin", -10.0, 10.0, math::sin_f32, |x| x.sin());
    case!("cos", -10.0, 10.0, math::cos_f32, |x| x.cos());
    g.bench_function("copy_only", |bench| {
        let src = scaled(-1.0, 1.0);
        bench.iter(|| chunked(black_box(&src), &mut dst, |_| {}))
    });
    g.finish();
}

/// A contiguous f32 value of `shape` with deterministic contents.
fn value(shape: &[usize], seed: u64) -> Value {
    let data = values(shape.iter().product(), seed);
    let storage = Storage::from_slice(&data).expect("allocation");
    Value::contiguous(Arc::new(storage), shape.to_vec())
}

fn bench_conv(c: &mut Criterion) {
    let mut g = c.benchmark_group("conv3x3_f32_batch32");
    let params = ConvParams {
        stride: [1, 1],
        padding: [1, 1],
        dilation: [1, 1],
        groups: 1,
    };
    for &(ch, hw) in &[(64usize, 32usize), (256, 8)] {
        let (x_shape, w_shape) = ([32, ch, hw, hw], [ch, ch, 3, 3]);
        let (x, w, gy) = (value(&x_shape, 1), value(&w_shape, 2), value(&x_shape, 3));
        g.throughput(Throughput::Elements(
            (2 * 32 * ch * ch * 9 * hw * hw) as u64,
        ));
        let name = format!("{ch}ch_{hw}x{hw}");
        g.bench_function(format!("forward/{name}"), |bench| {
            bench.iter(|| conv2d(&x, &w, &params, &x_shape, DType::Float32).expect("conv"))
        });
        // The same without the Winograd kernel (the direct kernels `auto` used before it).
        g.bench_function(format!("forward_no_winograd/{name}"), |bench| {
            std::env::set_var("PYFLAME_CONV_WINOGRAD", "0");
            bench.iter(|| conv2d(&x, &w, &params, &x_shape, DType::Float32).expect("conv"));
            std::env::remove_var("PYFLAME_CONV_WINOGRAD");
        });
        g.bench_function(format!("input_grad/{name}"), |bench| {
            bench.iter(|| {
                conv2d_backward_input(&gy, &w, &params, &x_shape, DType::Float32).expect("conv")
            })
        });
        g.bench_function(format!("weight_grad/{name}"), |bench| {
            bench.iter(|| {
                conv2d_backward_weight(&x, &gy, &params, &w_shape, DType::Float32).expect("conv")
            })
        });
    }
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(10)
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
}

criterion_group! {
    name = benches;
    config = config();
    targets = bench_matmul, bench_reduce, bench_math, bench_conv
}
criterion_main!(benches);
