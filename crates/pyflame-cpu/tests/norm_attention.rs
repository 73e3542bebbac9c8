//! The normalization and attention kernels against naive f64 references: statistics,
//! normalization, input and affine gradients for every grouping (short and long segments,
//! sizes large enough for the parallel paths), and attention forward and backward with masks.

use pyflame_core::{DType, MeshLayout, Storage};
use pyflame_cpu::exec;
use pyflame_ir::{build, AttnAttrs, AttnMask, Node, NodeRef, NormMode, Value};
use std::sync::Arc;

fn input<T: pyflame_core::Element>(shape: &[usize], data: Vec<T>) -> NodeRef {
    let s = Storage::from_slice(&data).unwrap();
    Node::input(
        Value::contiguous(Arc::new(s), shape.to_vec()),
        MeshLayout::SinglePe,
    )
}

fn values(n: &NodeRef) -> Vec<f64> {
    exec::evaluate(std::slice::from_ref(n)).unwrap();
    let v = n.value().unwrap();
    let c = pyflame_cpu::fused::materialize(&v, DType::Float64).unwrap();
    c.storage.as_slice::<f64>().unwrap()[c.offset..c.offset + c.numel()].to_vec()
}

/// Deterministic pseudo-random values in [-2, 2).
fn data(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            s = s
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 4.0 - 2.0
        })
        .collect()
}

fn close(a: &[f64], b: &[f64], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + y.abs()),
            "{what}[{i}]: {x} vs {y}"
        );
    }
}

/// Statistic index of each element of an `[n, c, s]` input.
fn stat_of(mode: NormMode, n: usize, c: usize, s: usize) -> Vec<usize> {
    let mut out = Vec::with_capacity(n * c * s);
    for i in 0..n {
        for ch in 0..c {
            let r = match mode {
                NormMode::Groups(g) => i * g + ch / (c / g),
                NormMode::Channels => ch,
            };
            out.extend(std::iter::repeat_n(r, s));
        }
    }
    out
}

/// (y, dx, dw, db) of `y = (x - mean) * rstd * w + b` for upstream gradient `dy`.
fn norm_reference(
    mode: NormMode,
    shape: [usize; 3],
    x: &[f64],
    w: &[f64],
    b: &[f64],
    dy: &[f64],
    eps: f64,
) -> [Vec<f64>; 4] {
    let [n, c, s] = shape;
    let stat = stat_of(mode, n, c, s);
    let r = mode.num_stats(n, c);
    let (mut cnt, mut sum) = (vec![0.0; r], vec![0.0; r]);
    for (k, &v) in stat.iter().zip(x) {
        cnt[*k] += 1.0;
        sum[*k] += v;
    }
    let mean: Vec<f64> = sum.iter().zip(&cnt).map(|(s, c)| s / c).collect();
    let mut var = vec![0.0; r];
    for (k, &v) in stat.iter().zip(x) {
        var[*k] += (v - mean[*k]).powi(2) / cnt[*k];
    }
    let rstd: Vec<f64> = var.iter().map(|v| 1.0 / (v + eps).sqrt()).collect();
    let ch_of = |e: usize| (e / s) % c;
    let xhat: Vec<f64> = (0..x.len())
        .map(|e| (x[e] - mean[stat[e]]) * rstd[stat[e]])
        .collect();
    let y = (0..x.len())
        .map(|e| xhat[e] * w[ch_of(e)] + b[ch_of(e)])
        .collect();
    let g: Vec<f64> = (0..x.len()).map(|e| dy[e] * w[ch_of(e)]).collect();
    let (mut mg, mut mgx) = (vec![0.0; r], vec![0.0; r]);
    for e in 0..x.len() {
        mg[stat[e]] += g[e] / cnt[stat[e]];
        mgx[stat[e]] += g[e] * xhat[e] / cnt[stat[e]];
    }
    let dx = (0..x.len())
        .map(|e| {
            let k = stat[e];
            rstd[k] * (g[e] - mg[k] - xhat[e] * mgx[k])
        })
        .collect();
    let (mut dw, mut db) = (vec![0.0; c], vec![0.0; c]);
    for e in 0..x.len() {
        dw[ch_of(e)] += dy[e] * xhat[e];
        db[ch_of(e)] += dy[e];
    }
    [y, dx, dw, db]
}

fn check_norm(mode: NormMode, shape: [usize; 3]) {
    let [n, c, s] = shape;
    let len = n * c * s;
    let eps = 1e-5;
    let (x, w, b, dy) = (data(len, 1), data(c, 2), data(c, 3), data(len, 4));
    let want = norm_reference(mode, shape, &x, &w, &b, &dy, eps);
    for dtype in [DType::Float64, DType::Float32] {
        let tol = if dtype == DType::Float64 { 1e-9 } else { 2e-4 };
        let node = |v: &[f64], sh: &[usize]| build::cast(&input(sh, v.to_vec()), dtype);
        let xn = node(&x, &shape);
        let (wn, bn, dyn_) = (node(&w, &[c]), node(&b, &[c]), node(&dy, &shape));
        let (y, stats) = build::normalize(&xn, mode, eps, Some(&wn), Some(&bn)).unwrap();
        let what = format!("{mode:?} {shape:?} {dtype}");
        close(&values(&y), &want[0], tol, &format!("y {what}"));
        let wflat = build::cast(&wn, dtype);
        let dx = build::norm_grad_input(&dyn_, &xn, &stats, Some(&wflat), None, mode, eps);
        close(&values(&dx), &want[1], tol, &format!("dx {what}"));
        let affn = build::norm_grad_affine(&dyn_, &xn, &stats, mode, eps);
        let aff = values(&affn);
        // The input gradient reusing the affine gradient's sums agrees.
        let dx2 = build::norm_grad_input(&dyn_, &xn, &stats, Some(&wflat), Some(&affn), mode, eps);
        close(
            &values(&dx2),
            &want[1],
            tol,
            &format!("dx from sums {what}"),
        );
        close(&aff[..c], &want[2], tol * 10.0, &format!("dw {what}"));
        close(&aff[c..], &want[3], tol * 10.0, &format!("db {what}"));
        // Without a weight the input gradient uses w = 1.
        let ones = vec![1.0; c];
        let plain = norm_reference(mode, shape, &x, &ones, &vec![0.0; c], &dy, eps);
        let dx1 = build::norm_grad_input(&dyn_, &xn, &stats, None, None, mode, eps);
        close(
            &values(&dx1),
            &plain[1],
            tol,
            &format!("dx no weight {what}"),
        );
    }
}

#[test]
fn layer_norm_rows() {
    check_norm(NormMode::Groups(1), [7, 33, 1]);
    check_norm(NormMode::Groups(1), [300, 96, 1]); // parallel rows
}

#[test]
fn group_norm_segments() {
    check_norm(NormMode::Groups(3), [2, 6, 5]);
    check_norm(NormMode::Groups(4), [3, 8, 100]); // long segments, parallel
    check_norm(NormMode::Groups(2), [5, 4, 1]); // grouped rows without positions
}

#[test]
fn batch_norm_channels() {
    check_norm(NormMode::Channels, [9, 5, 1]);
    check_norm(NormMode::Channels, [4, 3, 7]);
    check_norm(NormMode::Channels, [40, 16, 70]); // parallel sample chunks
    check_norm(NormMode::Channels, [512, 40, 1]);
}

#[test]
fn norm_builders_reject_bad_arguments() {
    let x = input(&[2, 6, 3], data(36, 1));
    assert!(build::norm_stats(&x, NormMode::Groups(4)).is_err());
    assert!(build::norm_stats(&x, NormMode::Groups(0)).is_err());
    let flat = input(&[2, 6], data(12, 1));
    assert!(build::norm_stats(&flat, NormMode::Channels).is_err());
    let w = input(&[5], data(5, 1));
    assert!(build::normalize(&x, NormMode::Channels, 1e-5, Some(&w), None).is_err());
    assert!(build::normalize(&x, NormMode::Channels, f64::NAN, None, None).is_err());
    // Statistics of another tensor, or of another grouping, are refused.
    let other = input(&[2, 6, 3], data(36, 9));
    let st = build::norm_stats(&other, NormMode::Channels).unwrap();
    assert!(build::norm_apply(&x, &st, None, None, NormMode::Channels, 1e-5).is_err());
    let st = build::norm_stats(&x, NormMode::Groups(3)).unwrap();
    assert!(build::norm_apply(&x, &st, None, None, NormMode::Channels, 1e-5).is_err());
    assert!(build::norm_apply(&x, &st, None, None, NormMode::Groups(3), 1e-5).is_ok());
    let ints = input(&[2, 3, 1], vec![1i64; 6]);
    assert!(build::normalize(&ints, NormMode::Channels, 1e-5, None, None).is_err());
}

/// Naive attention over `[b, l, d]` data: (out, dq, dk, dv) for upstream gradient `go`.
#[allow(clippy::too_many_arguments)]
fn attention_reference(
    dims: [usize; 5],
    q: &[f64],
    k: &[f64],
    v: &[f64],
    keep: Option<&[bool]>,
    causal: bool,
    scale: f64,
    go: &[f64],
) -> [Vec<f64>; 4] {
    let [bn, lq, lk, d, dv] = dims;
    let mut out = vec![0.0; bn * lq * dv];
    let (mut dq, mut dk, mut dvv) = (
        vec![0.0; bn * lq * d],
        vec![0.0; bn * lk * d],
        vec![0.0; bn * lk * dv],
    );
    for b in 0..bn {
        for i in 0..lq {
            let vis =
                |j: usize| !(causal && j > i) && keep.is_none_or(|m| m[(b * lq + i) * lk + j]);
            let s: Vec<f64> = (0..lk)
                .map(|j| {
                    let dot: f64 = (0..d)
                        .map(|t| q[(b * lq + i) * d + t] * k[(b * lk + j) * d + t])
                        .sum();
                    if vis(j) {
                        dot * scale
                    } else {
                        f64::NEG_INFINITY
                    }
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let p: Vec<f64> = if m == f64::NEG_INFINITY {
                vec![0.0; lk]
            } else {
                let e: Vec<f64> = s.iter().map(|x| (x - m).exp()).collect();
                let z: f64 = e.iter().sum();
                e.iter().map(|x| x / z).collect()
            };
            let gorow = &go[(b * lq + i) * dv..(b * lq + i + 1) * dv];
            let dp: Vec<f64> = (0..lk)
                .map(|j| (0..dv).map(|t| gorow[t] * v[(b * lk + j) * dv + t]).sum())
                .collect();
            let rs: f64 = p.iter().zip(&dp).map(|(a, b)| a * b).sum();
            for j in 0..lk {
                let ds = p[j] * (dp[j] - rs) * scale;
                for t in 0..dv {
                    out[(b * lq + i) * dv + t] += p[j] * v[(b * lk + j) * dv + t];
                    dvv[(b * lk + j) * dv + t] += p[j] * gorow[t];
                }
                for t in 0..d {
                    dq[(b * lq + i) * d + t] += ds * k[(b * lk + j) * d + t];
                    dk[(b * lk + j) * d + t] += ds * q[(b * lq + i) * d + t];
                }
            }
        }
    }
    [out, dq, dk, dvv]
}

fn check_attention(dims: [usize; 5], masked: bool, causal: bool) {
    let [bn, lq, lk, d, dv] = dims;
    let (q, k, v) = (
        data(bn * lq * d, 1),
        data(bn * lk * d, 2),
        data(bn * lk * dv, 3),
    );
    let go = data(bn * lq * dv, 4);
    let mut keep: Vec<bool> = data(bn * lq * lk, 5).iter().map(|x| *x > -1.0).collect();
    if masked {
        keep[..lk].fill(false); // a fully masked row
    }
    let scale = 0.4;
    let want = attention_reference(
        dims,
        &q,
        &k,
        &v,
        masked.then_some(&keep[..]),
        causal,
        scale,
        &go,
    );
    let (qn, kn, vn) = (
        input(&[bn, lq, d], q),
        input(&[bn, lk, d], k),
        input(&[bn, lk, dv], v),
    );
    let mask = input(&[bn, lq, lk], keep);
    let m = masked.then_some(&mask);
    let out = build::attention(&qn, &kn, &vn, m, causal, scale).unwrap();
    let what = format!("{dims:?} masked={masked} causal={causal}");
    close(&values(&out), &want[0], 1e-10, &format!("out {what}"));
    let attrs = AttnAttrs {
        scale,
        causal,
        mask: if masked {
            AttnMask::Keep
        } else {
            AttnMask::None
        },
        empty_rows_nan: false,
    };
    let mut ins = vec![input(&[bn, lq, dv], go), qn, kn, vn];
    ins.extend(m.cloned());
    let grads = values(&build::attention_grad(ins, attrs));
    let (nq, nk) = (bn * lq * d, bn * lk * d);
    close(&grads[..nq], &want[1], 1e-10, &format!("dq {what}"));
    close(&grads[nq..nq + nk], &want[2], 1e-10, &format!("dk {what}"));
    close(&grads[nq + nk..], &want[3], 1e-10, &format!("dv {what}"));
}

#[test]
fn attention_matches_reference() {
    check_attention([2, 3, 5, 4, 3], false, false);
    check_attention([2, 3, 5, 4, 3], true, false);
    check_attention([1, 70, 75, 3, 2], false, true); // two query blocks, causal key skipping
    check_attention([2, 66, 40, 2, 5], true, true);
    // one entry, several query blocks: the backward splits blocks over tasks
    check_attention([1, 200, 150, 4, 3], false, true);
    check_attention([1, 130, 20, 2, 2], true, false);
}

#[test]
fn attention_builder_rejects_bad_shapes() {
    let q = input(&[2, 3, 4], data(24, 1));
    let k = input(&[2, 5, 4], data(40, 1));
    let v_bad = input(&[2, 6, 4], data(48, 1));
    assert!(build::attention(&q, &k, &v_bad, None, false, 1.0).is_err());
    let v = input(&[2, 5, 2], data(20, 1));
    let mask = input(&[4, 5], data(20, 1));
    assert!(build::attention(&q, &k, &v, Some(&mask), false, 1.0).is_err());
    assert!(build::attention(&q, &k, &v, None, false, f64::INFINITY).is_err());
    let imask = input(&[3, 5], vec![1i64; 15]);
    assert!(build::attention(&q, &k, &v, Some(&imask), false, 1.0).is_err());
}

#[test]
fn attention_empty_rows_give_zeros_or_nan() {
    let (bn, lq, lk, d, dv) = (2, 3, 4, 2, 2);
    let (q, k, v) = (
        input(&[bn, lq, d], data(bn * lq * d, 1)),
        input(&[bn, lk, d], data(bn * lk * d, 2)),
        input(&[bn, lk, dv], data(bn * lk * dv, 3)),
    );
    // additive mask: row 1 of entry 0 is -inf everywhere, the others are finite
    let mut m = data(bn * lq * lk, 4);
    m[lk..2 * lk].fill(f64::NEG_INFINITY);
    let mask = input(&[bn, lq, lk], m.clone());
    let zeros = values(&build::attention(&q, &k, &v, Some(&mask), false, 0.5).unwrap());
    let nans = values(&build::attention_with(&q, &k, &v, Some(&mask), false, 0.5, true).unwrap());
    let (qd, kd, vd) = (
        data(bn * lq * d, 1),
        data(bn * lk * d, 2),
        data(bn * lk * dv, 3),
    );
    for b in 0..bn {
        for i in 0..lq {
            let row = (b * lq + i) * dv..(b * lq + i + 1) * dv;
            if b == 0 && i == 1 {
                assert!(zeros[row.clone()].iter().all(|&x| x == 0.0));
                assert!(nans[row].iter().all(|x| x.is_nan()));
                continue;
            }
            // the other rows are the plain softmax attention (both variants alike)
            let s: Vec<f64> = (0..lk)
                .map(|j| {
                    let dot: f64 = (0..d)
                        .map(|t| qd[(b * lq + i) * d + t] * kd[(b * lk + j) * d + t])
                        .sum();
                    dot * 0.5 + m[(b * lq + i) * lk + j]
                })
                .collect();
            let mx = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|x| (x - mx).exp()).collect();
            let z: f64 = e.iter().sum();
            let want: Vec<f64> = (0..dv)
                .map(|c| (0..lk).map(|j| e[j] / z * vd[(b * lk + j) * dv + c]).sum())
                .collect();
            close(&zeros[row.clone()], &want, 1e-12, "zeros variant");
            close(&nans[row], &want, 1e-12, "nan variant");
        }
    }
}
