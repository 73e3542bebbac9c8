//! Executor tests: fused programs, views, reductions and matmul against naive references.

use pyflame_core::{DType, Error, MeshLayout, Storage};
use pyflame_cpu::{exec, schedule};
use pyflame_ir::{build, BinaryOp, Node, NodeRef, ReduceOp, UnaryOp, Value};
use std::sync::Arc;

fn input_f32(shape: &[usize], data: Vec<f32>) -> NodeRef {
    let s = Storage::from_slice(&data).unwrap();
    Node::input(
        Value::contiguous(Arc::new(s), shape.to_vec()),
        MeshLayout::SinglePe,
    )
}

fn input_i64(shape: &[usize], data: Vec<i64>) -> NodeRef {
    let s = Storage::from_slice(&data).unwrap();
    Node::input(
        Value::contiguous(Arc::new(s), shape.to_vec()),
        MeshLayout::SinglePe,
    )
}

/// Evaluates and reads back as f64 in row-major order (any dtype, any strides).
fn values(n: &NodeRef) -> Vec<f64> {
    exec::evaluate(std::slice::from_ref(n)).unwrap();
    let v = n.value().unwrap();
    let c = pyflame_cpu::fused::materialize(&v, DType::Float64).unwrap();
    c.storage.as_slice::<f64>().unwrap()[c.offset..c.offset + c.numel()].to_vec()
}

fn seq(n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) / 10.0)
        .collect()
}

#[test]
fn fused_chain_matches_scalar_reference() {
    let n = 100_000; // several parallel tasks
    let (a, b, c) = (
        seq(n),
        seq(n).iter().rev().copied().collect::<Vec<_>>(),
        vec![0.5f32; n],
    );
    let (na, nb, nc) = (
        input_f32(&[n], a.clone()),
        input_f32(&[n], b.clone()),
        input_f32(&[n], c.clone()),
    );
    let ab = build::binary(BinaryOp::Mul, &na, &nb).unwrap();
    let abc = build::binary(BinaryOp::Add, &ab, &nc).unwrap();
    let out = build::unary(UnaryOp::Relu, &abc).unwrap();
    let got = values(&out);
    for i in 0..n {
        let want = (a[i] * b[i] + c[i]).max(0.0) as f64;
        assert_eq!(got[i], want, "element {i}");
    }
}

#[test]
fn broadcast_and_transposed_inputs() {
    // x: [3, 4] transposed to [4, 3], plus a row vector [3].
    let x = input_f32(&[3, 4], (0..12).map(|v| v as f32).collect());
    let xt = build::transpose(&x, 0, 1).unwrap();
    let row = input_f32(&[3], vec![100.0, 200.0, 300.0]);
    let y = build::binary(BinaryOp::Add, &xt, &row).unwrap();
    let got = values(&y);
    let mut want = vec![];
    for i in 0..4 {
        for j in 0..3 {
            want.push((j * 4 + i) as f64 + 100.0 * (j + 1) as f64);
        }
    }
    assert_eq!(got, want);
}

#[test]
fn reduction_consumes_fused_producer() {
    let n = 3 * 50_000;
    let data = seq(n);
    let x = input_f32(&[3, 50_000], data.clone());
    let sq = build::binary(BinaryOp::Mul, &x, &x).unwrap();
    let s = build::reduce(ReduceOp::Sum, &sq, Some(&[1]), false).unwrap();
    let got = values(&s);
    for (r, g) in got.iter().enumerate() {
        let want: f64 = data[r * 50_000..(r + 1) * 50_000]
            .iter()
            .map(|&v| (v * v) as f64)
            .sum();
        assert!(
            (g - want).abs() <= 1e-5 * want.abs(),
            "row {r}: {g} vs {want}"
        );
    }
    // Non-adjacent axes and mean.
    let y = input_f32(&[2, 3, 4], (0..24).map(|v| v as f32).collect());
    let m = build::reduce(ReduceOp::Mean, &y, Some(&[0, 2]), true).unwrap();
    assert_eq!(m.shape, vec![1, 3, 1]);
    let got = values(&m);
    let want: Vec<f64> = (0..3)
        .map(|j| {
            (0..2)
                .flat_map(|i| (0..4).map(move |k| (i * 12 + j * 4 + k) as f64))
                .sum::<f64>()
                / 8.0
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn matmul_with_transposed_and_broadcast_operands() {
    let a = input_f32(&[2, 3], vec![1., 2., 3., 4., 5., 6.]);
    let b = input_f32(&[2, 3], vec![1., 0., 1., 0., 1., 0.]);
    let bt = build::transpose(&b, 0, 1).unwrap();
    let c = build::matmul(&a, &bt).unwrap();
    assert_eq!(values(&c), vec![4., 2., 10., 5.]);
    // Batched [2, 2, 3] @ broadcast [3, 1].
    let batch = input_f32(&[2, 2, 3], (0..12).map(|v| v as f32).collect());
    let v = input_f32(&[3, 1], vec![1., 1., 1.]);
    let d = build::matmul(&batch, &v).unwrap();
    assert_eq!(d.shape, vec![2, 2, 1]);
    assert_eq!(values(&d), vec![3., 12., 21., 30.]);
}

#[test]
fn integer_division_by_zero_is_an_error_not_a_crash() {
    let a = input_i64(&[3], vec![1, 2, 3]);
    let z = input_i64(&[3], vec![1, 0, 1]);
    let q = build::binary(BinaryOp::FloorDiv, &a, &z).unwrap();
    let err = exec::evaluate(&[q]).unwrap_err();
    assert!(matches!(err, Error::Invalid(ref m) if m.contains("division by zero")));
    // Python semantics for negative floor division and remainder.
    let n = input_i64(&[2], vec![-7, 7]);
    let d = input_i64(&[2], vec![2, -2]);
    assert_eq!(
        values(&build::binary(BinaryOp::FloorDiv, &n, &d).unwrap()),
        vec![-4., -4.]
    );
    assert_eq!(
        values(&build::binary(BinaryOp::Rem, &n, &d).unwrap()),
        vec![1., -1.]
    );
}

#[test]
fn narrow_dtypes_round_each_op() {
    let a = input_i64(&[1], vec![100]);
    let a8 = build::cast(&a, DType::Int8);
    let s = build::binary(BinaryOp::Add, &a8, &a8).unwrap(); // 200 wraps to -56
    assert_eq!(s.dtype, DType::Int8);
    assert_eq!(values(&s), vec![-56.]);
}

#[test]
fn same_structure_reuses_its_schedule() {
    let build_graph = |v: f32| {
        let x = input_f32(&[4], vec![v; 4]);
        let y = build::unary(UnaryOp::Exp, &x).unwrap();
        build::reduce(ReduceOp::Sum, &y, None, false).unwrap()
    };
    let first = build_graph(0.0);
    assert_eq!(values(&first), vec![4.0]);
    let before = schedule::cache_len();
    let second = build_graph(1.0);
    let got = values(&second)[0];
    assert!((got - 4.0 * 1f64.exp()).abs() < 1e-5);
    assert_eq!(
        schedule::cache_len(),
        before,
        "the second graph should hit the cache"
    );
}

#[test]
fn intermediates_referenced_elsewhere_keep_their_values() {
    let x = input_f32(&[3], vec![1., 2., 3.]);
    let y = build::binary(BinaryOp::Mul, &x, &x).unwrap();
    let z = build::reduce(ReduceOp::Sum, &y, None, false).unwrap();
    assert_eq!(values(&z), vec![14.]);
    // y was inlined into the reduction; evaluating it now still gives the right values.
    assert_eq!(values(&y), vec![1., 4., 9.]);
    assert!(z.num_inputs() == 0, "an evaluated node releases its inputs");
}

/// A chain of `steps` matmuls by the 2x2 matrix [[1, 1], [0, 1]] (one kernel step each):
/// row `[a, b]` becomes `[a, a * steps + b]`.
fn matmul_chain(start: f32, steps: usize) -> NodeRef {
    let shear = input_f32(&[2, 2], vec![1., 1., 0., 1.]);
    let mut x = input_f32(&[1, 2], vec![start, 1.0]);
    for _ in 0..steps {
        x = build::matmul(&x, &shear).unwrap();
    }
    x
}

#[test]
fn graphs_evaluated_from_several_threads_with_lingering_workers() {
    // Graphs of 6+ steps are handed to a pool worker, and afterwards every worker lingers,
    // taking work for a while. Evaluations from several threads at once interleave with
    // those lingering loops; every one must finish with the right value.
    assert!(exec::worker_spin() > std::time::Duration::ZERO);
    let handles: Vec<_> = (0..3)
        .map(|t| {
            std::thread::spawn(move || {
                for round in 0..25 {
                    let start = (t * 100 + round) as f32;
                    let out = matmul_chain(start, 8);
                    assert_eq!(values(&out), vec![start as f64, start as f64 * 8.0 + 1.0]);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("an evaluating thread panicked");
    }
}

#[test]
fn detached_runs_reuse_one_graph_and_leave_its_nodes_unrealized() {
    // A recorded template's graph serves every run: each run takes its own input value in
    // the placeholder's place, returns the outputs (the last node and an intermediate that
    // is also read further on) and stores nothing in the nodes.
    let shear = input_f32(&[2, 2], vec![1., 1., 0., 1.]);
    let x = input_f32(&[1, 2], vec![0.0, 1.0]);
    let mut y = x.clone();
    let mut middle = None;
    for step in 0..8 {
        y = build::matmul(&y, &shear).unwrap();
        if step == 3 {
            middle = Some(build::unary(UnaryOp::Neg, &y).unwrap());
            y = build::binary(BinaryOp::Sub, &y, middle.as_ref().unwrap()).unwrap();
        }
    }
    let middle = middle.unwrap();
    let template = pyflame_ir::template::Template::record(&[y, middle], &[x]).unwrap();
    let first = Value::contiguous(
        Arc::new(Storage::from_slice(&[0.0f32, 1.0]).unwrap()),
        vec![1, 2],
    );
    let detached = Arc::new(
        exec::Detached::new(Arc::new(template.instantiate_graph(vec![first]).unwrap())).unwrap(),
    );
    assert!(
        detached.steps() >= 6,
        "the run should be handed to the pool"
    );
    let position = template.placeholder_positions()[0];
    for start in [2.0f32, -3.0, 0.5] {
        let feed = Value::contiguous(
            Arc::new(Storage::from_slice(&[start, 1.0]).unwrap()),
            vec![1, 2],
        );
        let outs =
            exec::run_detached_in(None, detached.clone(), vec![(position, feed)], true).unwrap();
        let read = |v: &Value| v.storage.as_slice::<f32>().unwrap()[..2].to_vec();
        // after 4 shears [s, 4s + 1]; doubled by `y - (-y)`; 4 more shears add 4 * 2s
        let (a, b) = (2.0 * start, 2.0 * (4.0 * start + 1.0));
        assert_eq!(read(&outs[0]), vec![a, b + 4.0 * a]);
        assert_eq!(read(&outs[1]), vec![-start, -(4.0 * start + 1.0)]);
    }
    let graph = detached.graph();
    for (j, node) in graph.nodes.iter().enumerate() {
        let leaf = graph.input_index[j].is_empty();
        assert_eq!(node.is_realized(), leaf, "node {j} ({})", node.op.name());
        if !leaf {
            assert_eq!(node.inputs().len(), graph.input_index[j].len());
        }
    }
}

#[test]
fn small_graphs_go_to_the_pool_only_with_a_step_worth_splitting() {
    let kept = |out: &NodeRef| {
        let graph = pyflame_ir::Graph::capture(std::slice::from_ref(out), true);
        exec::Detached::new(Arc::new(graph)).unwrap()
    };
    // One convolution of 131,072 multiply-adds (64 -> 128 channels, 8x8 -> 4x4).
    let x = input_f32(&[1, 64, 8, 8], seq(64 * 64));
    let w = input_f32(&[128, 64, 1, 1], seq(128 * 64));
    let attrs = pyflame_ir::ConvAttrs {
        stride: [2, 2],
        padding: [0, 0],
        dilation: [1, 1],
        groups: 1,
    };
    let conv = build::conv2d(&x, &w, attrs).unwrap();
    let d = kept(&conv);
    assert!(d.steps() < 6 && d.runs_on_pool());
    // One 1x64 by 64x64 product: 4,096 multiply-adds, run where it is asked for.
    let a = input_f32(&[1, 64], seq(64));
    let b = input_f32(&[64, 64], seq(64 * 64));
    let product = build::matmul(&a, &b).unwrap();
    assert!(!kept(&product).runs_on_pool());
    let first_product = product.clone();
    // A 1x512 by 512x256 product with a bias (one step: the product and its epilogue),
    // 131,072 multiply-adds over fewer values than another step would need.
    let a = input_f32(&[1, 512], seq(512));
    let b512 = input_f32(&[512, 256], seq(512 * 256));
    let bias = input_f32(&[256], seq(256));
    let linear = build::binary(BinaryOp::Add, &build::matmul(&a, &b512).unwrap(), &bias).unwrap();
    let d = kept(&linear);
    assert!(d.steps() == 1 && d.runs_on_pool());
    // A chain of such products long enough to go to the pool anyway.
    let mut y = first_product;
    for _ in 0..7 {
        y = build::matmul(&y, &b).unwrap();
    }
    assert!(kept(&y).runs_on_pool());
}
