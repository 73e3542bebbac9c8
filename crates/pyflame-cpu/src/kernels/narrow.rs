//! Matrix products with a narrow right-hand side (a few columns): batch-1 convolutions of
//! deep layers (`n` = output pixels, 1 to 4) and matrix-vector products.
//!
//! A general GEMM packs its left operand into panels before multiplying; with only a few
//! columns that packing costs as much as the product. Here every row of the left operand
//! (a weight row, contiguous) is read once and dotted with each column of the right operand,
//! which was transposed once into contiguous rows, so the weights stream at memory speed.

use rayon::prelude::*;

/// Widest right-hand side worth this kernel.
pub const MAX_COLUMNS: usize = 4;

/// True when this kernel beats a packed GEMM on this CPU (it is written for AVX-512).
pub fn available() -> bool {
    super::simd::has_avx512()
}

/// Four dot products of `row` with `cols` (each at least as long as `row`).
///
/// # Safety
/// Needs AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot4(row: &[f32], cols: [&[f32]; 4]) -> [f32; 4] {
    use std::arch::x86_64::*;
    let k = row.len();
    let full = k - k % 16;
    let mut acc = [_mm512_setzero_ps(); 4];
    let r = row.as_ptr();
    let c = cols.map(|c| c.as_ptr());
    let mut i = 0;
    while i < full {
        let x = _mm512_loadu_ps(r.add(i));
        for (a, col) in acc.iter_mut().zip(&c) {
            *a = _mm512_fmadd_ps(x, _mm512_loadu_ps(col.add(i)), *a);
        }
        i += 16;
    }
    let mut out = [0.0f32; 4];
    for (o, (a, col)) in out.iter_mut().zip(acc.iter().zip(&cols)) {
        let mut s = _mm512_reduce_add_ps(*a);
        for l in full..k {
            s += row[l] * col[l];
        }
        *o = s;
    }
    out
}

/// One dot product of `row` with `col` (at least as long as `row`).
///
/// # Safety
/// Needs AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn dot1(row: &[f32], col: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let k = row.len();
    let full = k - k % 32;
    let (r, c) = (row.as_ptr(), col.as_ptr());
    let (mut a0, mut a1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
    let mut i = 0;
    while i < full {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(r.add(i)), _mm512_loadu_ps(c.add(i)), a0);
        a1 = _mm512_fmadd_ps(
            _mm512_loadu_ps(r.add(i + 16)),
            _mm512_loadu_ps(c.add(i + 16)),
            a1,
        );
        i += 32;
    }
    let mut s = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
    for l in full..k {
        s += row[l] * col[l];
    }
    s
}

/// Not reachable: [`available`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot1(_row: &[f32], _col: &[f32]) -> f32 {
    unreachable!("the narrow GEMM kernel needs AVX-512")
}

/// Not reachable: [`available`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn dot4(_row: &[f32], _cols: [&[f32]; 4]) -> [f32; 4] {
    unreachable!("the narrow GEMM kernel needs AVX-512")
}

/// `out[j] = row . cols[j]` for every column (each at least as long as `row`), four at a time.
/// Only call it when [`available`] is true.
pub fn dot_rows(row: &[f32], cols: &[&[f32]], out: &mut [f32]) {
    let k = row.len();
    for (j0, chunk) in cols.chunks(4).enumerate() {
        if chunk.len() == 4 {
            // SAFETY: callers check `available()` (AVX-512F).
            let sums = unsafe { dot4(row, [chunk[0], chunk[1], chunk[2], chunk[3]]) };
            out[4 * j0..4 * j0 + 4].copy_from_slice(&sums);
        } else {
            for (c, col) in chunk.iter().enumerate() {
                // SAFETY: as above.
                out[4 * j0 + c] = unsafe { dot1(row, &col[..k]) };
            }
        }
    }
}

/// `dst[i, j] (+)= sum_l lhs[i * lda + l] * rhs_t[j * k + l]` for `i < m`, `j < n`, with `dst`
/// row-major (`m x n`) and `rhs_t` the right operand transposed (`n x k`). Parallel over rows
/// when the product is large enough. Only call it when [`available`] is true.
///
/// Example:
/// ```
/// use pyflame_cpu::kernels::narrow::narrow_gemm_f32;
/// let (lhs, rhs_t) = ([1.0, 2.0, 3.0, 4.0], [1.0, 1.0]);
/// let mut dst = [0.0; 2];
/// if pyflame_cpu::kernels::narrow::available() {
///     narrow_gemm_f32(2, 1, 2, &mut dst, false, &lhs, 2, &rhs_t);
///     assert_eq!(dst, [3.0, 7.0]);
/// }
/// ```
#[allow(clippy::too_many_arguments)]
pub fn narrow_gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [f32],
    accumulate: bool,
    lhs: &[f32],
    lda: usize,
    rhs_t: &[f32],
) {
    if m == 0 || n == 0 {
        return;
    }
    let row_job = |(i, out): (usize, &mut [f32])| {
        let row = &lhs[i * lda..i * lda + k];
        if n == 1 {
            // SAFETY: callers check `available()` (AVX-512F).
            let v = unsafe { dot1(row, &rhs_t[..k]) };
            out[0] = if accumulate { out[0] + v } else { v };
            return;
        }
        for j0 in (0..n).step_by(4) {
            let cols: [&[f32]; 4] = std::array::from_fn(|c| {
                let j = (j0 + c).min(n - 1);
                &rhs_t[j * k..j * k + k]
            });
            // SAFETY: callers check `available()` (AVX-512F).
            let sums = unsafe { dot4(row, cols) };
            for (c, &v) in sums.iter().enumerate().take(n - j0) {
                let d = &mut out[j0 + c];
                *d = if accumulate { *d + v } else { v };
            }
        }
    };
    if m * k >= 1 << 16 {
        dst[..m * n]
            .par_chunks_mut(n)
            .with_min_len(8)
            .enumerate()
            .for_each(row_job);
    } else {
        dst[..m * n].chunks_mut(n).enumerate().for_each(row_job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_naive_product() {
        if !available() {
            return; // the kernel is AVX-512 only (callers fall back to a packed GEMM)
        }
        for &(m, n, k) in &[(1, 1, 1), (7, 3, 37), (33, 16, 130), (300, 5, 600)] {
            let lhs: Vec<f32> = (0..m * k).map(|v| ((v * 7) % 11) as f32 - 5.0).collect();
            let rhs_t: Vec<f32> = (0..n * k).map(|v| ((v * 3) % 13) as f32 - 6.0).collect();
            let mut dst = vec![1.0f32; m * n];
            narrow_gemm_f32(m, n, k, &mut dst, true, &lhs, k, &rhs_t);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = 1.0
                        + (0..k)
                            .map(|l| lhs[i * k + l] * rhs_t[j * k + l])
                            .sum::<f32>();
                    assert!((dst[i * n + j] - want).abs() <= 1e-3 * want.abs().max(1.0));
                }
            }
        }
    }
}
