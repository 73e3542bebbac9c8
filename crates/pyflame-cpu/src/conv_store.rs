//! Register-to-memory transposes for the convolution kernels whose tiles hold 16 channels
//! per AVX-512 register and up to 8 pixels (or weight columns) per tile: the tile leaves the
//! registers as runs of consecutive values per channel, with permutes and masked stores
//! instead of scalar moves.

/// Stores the `P` pixels x 64 channels of `acc` as runs of `P` values in channel planes
/// (`dst[j * plane + p]` for channels `j < channels`), transposing 16 channels at a time.
///
/// # Safety
/// `dst` must be writable at those positions. Needs AVX-512 (F, VL, DQ).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq")]
#[inline(never)]
pub(crate) unsafe fn store_planes<const P: usize>(
    acc: &[[std::arch::x86_64::__m512; 4]; P],
    dst: *mut f32,
    plane: usize,
    channels: usize,
) {
    use std::arch::x86_64::*;
    // Lanes 0..P of the low and high halves of each transposed register.
    let low = ((1u32 << P) - 1) as u16;
    for v in 0..4 {
        let mut rows = [_mm512_setzero_ps(); 8];
        for (row, pixel) in rows.iter_mut().zip(acc) {
            *row = pixel[v];
        }
        let columns = transpose_8x16(rows);
        for (k, pair) in columns.iter().enumerate() {
            let j = 16 * v + 2 * k;
            if j < channels {
                _mm512_mask_storeu_ps(dst.add(j * plane), low, *pair);
            }
            if j + 1 < channels {
                let high = _mm512_extractf32x8_ps::<1>(*pair);
                _mm256_mask_storeu_ps(dst.add((j + 1) * plane), low as u8, high);
            }
        }
    }
}

/// Transposes 8 rows of 16 lanes: register `k` of the result holds column `2k` of the rows
/// in lanes 0..8 and column `2k + 1` in lanes 8..16.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
pub(crate) unsafe fn transpose_8x16(
    rows: [std::arch::x86_64::__m512; 8],
) -> [std::arch::x86_64::__m512; 8] {
    use std::arch::x86_64::*;
    // Pairs of rows interleaved: lane 2c + s is row (2j + s), column c (low: c < 8).
    let pair_low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    let pair_high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    // Two interleaved pairs merged: lane 4c + t is row t (of four), column c (of four).
    let quad_low = _mm512_setr_epi32(0, 1, 16, 17, 2, 3, 18, 19, 4, 5, 20, 21, 6, 7, 22, 23);
    let quad_high = _mm512_setr_epi32(8, 9, 24, 25, 10, 11, 26, 27, 12, 13, 28, 29, 14, 15, 30, 31);
    // Two row quads merged: lanes 0..8 are one column's eight rows, lanes 8..16 the next's.
    let oct_low = _mm512_setr_epi32(0, 1, 2, 3, 16, 17, 18, 19, 4, 5, 6, 7, 20, 21, 22, 23);
    let oct_high = _mm512_setr_epi32(8, 9, 10, 11, 24, 25, 26, 27, 12, 13, 14, 15, 28, 29, 30, 31);
    let mut pairs = [[_mm512_setzero_ps(); 2]; 4];
    for j in 0..4 {
        pairs[j][0] = _mm512_permutex2var_ps(rows[2 * j], pair_low, rows[2 * j + 1]);
        pairs[j][1] = _mm512_permutex2var_ps(rows[2 * j], pair_high, rows[2 * j + 1]);
    }
    // quads[h][m][q]: columns 8h + 4q .. 8h + 4q + 4 of rows 4m .. 4m + 4
    let mut quads = [[[_mm512_setzero_ps(); 2]; 2]; 2];
    for h in 0..2 {
        for m in 0..2 {
            quads[h][m][0] = _mm512_permutex2var_ps(pairs[2 * m][h], quad_low, pairs[2 * m + 1][h]);
            quads[h][m][1] =
                _mm512_permutex2var_ps(pairs[2 * m][h], quad_high, pairs[2 * m + 1][h]);
        }
    }
    let mut columns = [_mm512_setzero_ps(); 8];
    for (k, column) in columns.iter_mut().enumerate() {
        let (h, q, r) = (k / 4, (k / 2) % 2, k % 2);
        let oct = if r == 0 { oct_low } else { oct_high };
        *column = _mm512_permutex2var_ps(quads[h][0][q], oct, quads[h][1][q]);
    }
    columns
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::transpose_8x16;
    use std::arch::x86_64::*;

    #[test]
    fn transpose_puts_column_pairs_in_registers() {
        if !crate::kernels::simd::has_avx512() {
            return; // the kernel only runs on AVX-512 machines
        }
        let rows: [[f32; 16]; 8] =
            std::array::from_fn(|r| std::array::from_fn(|c| (r * 16 + c) as f32));
        // SAFETY: AVX-512 checked above; the arrays hold 16 values each.
        let columns: [[f32; 16]; 8] = unsafe {
            let regs = std::array::from_fn(|r| _mm512_loadu_ps(rows[r].as_ptr()));
            let out = transpose_8x16(regs);
            std::array::from_fn(|k| {
                let mut lanes = [0.0f32; 16];
                _mm512_storeu_ps(lanes.as_mut_ptr(), out[k]);
                lanes
            })
        };
        for (k, lanes) in columns.iter().enumerate() {
            for r in 0..8 {
                assert_eq!(lanes[r], rows[r][2 * k], "column {} row {r}", 2 * k);
                assert_eq!(
                    lanes[8 + r],
                    rows[r][2 * k + 1],
                    "column {} row {r}",
                    2 * k + 1
                );
            }
        }
    }
}
