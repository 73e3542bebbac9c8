//! Weight gradient with the output channels in the vector lanes, the counterpart of the
//! pixel kernel of `conv_pixels`: `dW[o, col] = sum_q dy[q, o] * x[col, q]`, where `q` runs
//! over every output pixel of every image and column `col = (c, tap)` reads input channel
//! `c` at the pixel's tap position. A tile keeps 64 output channels x 6 columns in 24
//! AVX-512 registers while it runs over a block of pixels: per pixel, four vector loads of
//! the (transposed) output gradient and six broadcasts of input values. The blocks of the
//! output gradient are shared by all columns while they are in cache, and a tile's partial
//! sums stay in registers over a whole block, so the work is the same register-tiled
//! multiply-add as the forward kernels (the per-tap GEMMs it replaces re-pack both operands
//! for every tap).

use crate::conv::{ConvFloat, ConvParams, Geom};
use crate::conv_direct::{choice, Choice, PlaneInput, SharedMut};
use crate::conv_pixels::{tap_offset, PixelCursor};
use crate::conv_tiles;
use pyflame_core::{DType, Result, Storage};
use rayon::prelude::*;

/// Output channels of a tile (four 16-lane vectors).
const TILE_CHANNELS: usize = 64;
/// Weight columns (input channel, tap) of a tile.
const TILE_COLUMNS: usize = 6;
/// Pixels per block: the block of the transposed output gradient (`64 x 4` bytes per pixel,
/// 128 KiB) stays in the L2 cache while every column of a task reads it, and each tile's
/// partial sums are loaded and stored once per block. (Single-threaded on ResNet-18's
/// batch-32 layers, 512 was 2-20% faster than 128 and on par with 256.)
const BLOCK_PIXELS: usize = 512;

/// Whether to use this kernel: f32 on AVX-512, one group, enough output channels to fill
/// the lanes and enough columns for a tile (unless `PYFLAME_CONV_ALGO=pixels` forces it;
/// `direct` and `im2col` turn it off).
fn applies(g: &Geom) -> bool {
    conv_tiles::available()
        && g.g == 1
        && g.n * g.hw() > 0
        && g.c > 0
        && match choice() {
            Choice::Pixels => true,
            Choice::Auto | Choice::Winograd => g.o >= 48 && g.c * g.kh * g.kw >= 4 * TILE_COLUMNS,
            Choice::Direct | Choice::Im2col => false,
        }
}

/// Weight gradient into `dw` ([O, C, kh, kw]) from the input `xs` and the output gradient
/// `gy` ([N, O, ho, wo]); `false` when the kernel does not apply.
pub(crate) fn backward_weight<T: ConvFloat>(
    xs: &[T],
    gy: &[T],
    g: &Geom,
    p: &ConvParams,
    dw: &mut [T],
) -> Result<bool> {
    if !applies(g) {
        return Ok(false);
    }
    let (Some(dy), Some(dw)) = (T::as_f32(gy), T::as_f32_mut(dw)) else {
        return Ok(false);
    };
    let kk = g.kh * g.kw;
    let columns = g.c * kk;
    let planes = PlaneInput::new(xs, g, p)?;
    let Some(xp) = T::as_f32(planes.values()?) else {
        return Ok(false);
    };
    let (wp, channel_stride) = (planes.width, planes.channel_stride);
    let hw = g.hw();
    let pixels = g.n * hw;
    let o_pad = g.o.next_multiple_of(TILE_CHANNELS);
    let dyt_buf = transpose_gradient(dy, g, o_pad)?;
    let dyt = dyt_buf.as_slice::<f32>()?;

    // Offset of column (c, t) in `xp`: its channel row plus its tap's position.
    let column_offset = |col: usize| (col / kk) * channel_stride + tap_offset(col % kk, g, p, wp);
    let groups = columns.div_ceil(TILE_COLUMNS);
    let blocks = o_pad / TILE_CHANNELS;
    let per_task = groups
        .div_ceil((4 * rayon::current_num_threads()).div_ceil(blocks))
        .max(1);
    let chunks = groups.div_ceil(per_task);
    let out = SharedMut(dw.as_mut_ptr());
    (0..blocks * chunks).into_par_iter().for_each(|task| {
        let (block, chunk) = (task / chunks, task % chunks);
        let o0 = block * TILE_CHANNELS;
        let group_range = chunk * per_task..((chunk + 1) * per_task).min(groups);
        let mut sums = vec![[[0.0f32; TILE_CHANNELS]; TILE_COLUMNS]; group_range.len()];
        let bases: Vec<[usize; TILE_COLUMNS]> = group_range
            .clone()
            .map(|gi| {
                let first = gi * TILE_COLUMNS;
                let last = (first + TILE_COLUMNS).min(columns) - 1;
                std::array::from_fn(|j| column_offset((first + j).min(last)))
            })
            .collect();
        // Offset of each output pixel's first tap in a channel row, for one block.
        let mut cursor = PixelCursor::at(0, g, p, (wp, planes.image_stride));
        let mut sources = Vec::with_capacity(BLOCK_PIXELS);
        for q0 in (0..pixels).step_by(BLOCK_PIXELS) {
            let q1 = (q0 + BLOCK_PIXELS).min(pixels);
            sources.clear();
            for _ in q0..q1 {
                sources.push(cursor.source());
                cursor.advance();
            }
            let args = BlockArgs {
                dy: dyt[q0 * o_pad + o0..].as_ptr(),
                dy_stride: o_pad,
                sources: &sources,
                x: xp.as_ptr(),
            };
            for (sum, base) in sums.iter_mut().zip(&bases) {
                // SAFETY: `dy` has `o_pad` values per pixel for the block's pixels, and every
                // pixel's source offset plus a column's offset lies inside `xp` (the pixel's
                // (padded) plane in the column's channel, see `PlaneInput`).
                unsafe { tile_avx512(&args, base, sum) };
            }
        }
        let channels = TILE_CHANNELS.min(g.o - o0);
        for (gi, sum) in group_range.zip(&sums) {
            let first = gi * TILE_COLUMNS;
            let count = TILE_COLUMNS.min(columns - first);
            // SAFETY: rows o0.. o0 + channels and columns first.. first + count of the
            // [O, columns] gradient; tasks own distinct (channel block, column group) pairs.
            unsafe {
                store(
                    sum,
                    out.ptr().add(o0 * columns + first),
                    columns,
                    channels,
                    count,
                )
            };
        }
    });
    Ok(true)
}

/// `dy` [N, O, hw] as `[N * hw][o_pad]` (pixel-major, channels padded with zeros), so that a
/// pixel's 64 output channels are one 256-byte run.
fn transpose_gradient(dy: &[f32], g: &Geom, o_pad: usize) -> Result<Storage> {
    let hw = g.hw();
    let mut buf = Storage::uninit(DType::Float32, g.n * hw * o_pad)?;
    buf.as_mut_slice::<f32>()?
        .par_chunks_mut(hw * o_pad)
        .enumerate()
        .for_each(|(n, dst)| {
            let src = &dy[n * g.o * hw..][..g.o * hw];
            // SAFETY: AVX-512 is available (checked by `applies`); `src` is [O][hw] and
            // `dst` is [hw][o_pad].
            unsafe { transpose_image(src, g.o, hw, dst, o_pad) };
        });
    Ok(buf)
}

/// One image's `[o][hw]` gradient into `[hw][o_pad]`: blocks of 8 channels x 16 pixels go
/// through [`crate::conv_store::transpose_8x16`], the edges element by element.
///
/// # Safety
/// Needs AVX-512 (F, VL); `src` holds `o * hw` values and `dst` `hw * o_pad`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq")]
unsafe fn transpose_image(src: &[f32], o: usize, hw: usize, dst: &mut [f32], o_pad: usize) {
    use std::arch::x86_64::*;
    let (o_full, p_full) = (o / 8 * 8, hw / 16 * 16);
    for o0 in (0..o_full).step_by(8) {
        for p0 in (0..p_full).step_by(16) {
            let mut rows = [_mm512_setzero_ps(); 8];
            for (k, row) in rows.iter_mut().enumerate() {
                *row = _mm512_loadu_ps(src.as_ptr().add((o0 + k) * hw + p0));
            }
            let pairs = crate::conv_store::transpose_8x16(rows);
            for (k, pair) in pairs.iter().enumerate() {
                let at = dst.as_mut_ptr().add((p0 + 2 * k) * o_pad + o0);
                _mm256_storeu_ps(at, _mm512_castps512_ps256(*pair));
                _mm256_storeu_ps(at.add(o_pad), _mm512_extractf32x8_ps::<1>(*pair));
            }
        }
        for p in p_full..hw {
            for k in 0..8 {
                dst[p * o_pad + o0 + k] = src[(o0 + k) * hw + p];
            }
        }
    }
    for p in 0..hw {
        let row = &mut dst[p * o_pad..][..o_pad];
        for (c, v) in row.iter_mut().enumerate().skip(o_full) {
            *v = if c < o { src[c * hw + p] } else { 0.0 };
        }
    }
}

/// Not reachable: the kernel is only chosen on x86-64 with AVX-512.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn transpose_image(_src: &[f32], _o: usize, _hw: usize, _dst: &mut [f32], _o_pad: usize) {
    unreachable!("the weight-gradient kernel needs AVX-512")
}

/// What a tile reads for one block of pixels: the transposed gradient from the tile's first
/// channel (`dy_stride` values per pixel), each pixel's source offset, and the padded input.
struct BlockArgs<'a> {
    dy: *const f32,
    dy_stride: usize,
    sources: &'a [usize],
    x: *const f32,
}

/// Adds one block of pixels to a tile: `sum[j][o] += sum_q dy[q][o] * x[base[j] + src[q]]`.
///
/// # Safety
/// `args.dy + q * dy_stride` holds 64 readable values for every pixel `q` of the block, and
/// `args.x + base[j] + sources[q]` is readable for every column `j` and pixel. Needs
/// AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(
    args: &BlockArgs<'_>,
    base: &[usize; TILE_COLUMNS],
    sum: &mut [[f32; TILE_CHANNELS]; TILE_COLUMNS],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 4]; TILE_COLUMNS];
    for (acc_j, src) in acc.iter_mut().zip(sum.iter()) {
        for (v, acc_v) in acc_j.iter_mut().enumerate() {
            *acc_v = _mm512_loadu_ps(src.as_ptr().add(16 * v));
        }
    }
    let columns: [*const f32; TILE_COLUMNS] = std::array::from_fn(|j| args.x.add(base[j]));
    let mut dy = args.dy;
    for &s in args.sources {
        let dv = [
            _mm512_loadu_ps(dy),
            _mm512_loadu_ps(dy.add(16)),
            _mm512_loadu_ps(dy.add(32)),
            _mm512_loadu_ps(dy.add(48)),
        ];
        for (column, acc_j) in columns.iter().zip(acc.iter_mut()) {
            let x = _mm512_set1_ps(*column.add(s));
            for (acc_v, d) in acc_j.iter_mut().zip(dv) {
                *acc_v = _mm512_fmadd_ps(d, x, *acc_v);
            }
        }
        dy = dy.add(args.dy_stride);
    }
    for (dst, acc_j) in sum.iter_mut().zip(&acc) {
        for (v, acc_v) in acc_j.iter().enumerate() {
            _mm512_storeu_ps(dst.as_mut_ptr().add(16 * v), *acc_v);
        }
    }
}

/// Not reachable: the kernel is only chosen on x86-64 with AVX-512.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_avx512(
    _args: &BlockArgs<'_>,
    _base: &[usize; TILE_COLUMNS],
    _sum: &mut [[f32; TILE_CHANNELS]; TILE_COLUMNS],
) {
    unreachable!("the weight-gradient kernel needs AVX-512")
}

/// Writes the first `count` columns of a tile's sums for `channels` output channels:
/// `dst[o * row + j] = sum[j][o]`.
///
/// # Safety
/// `dst` must be writable at those positions. Needs AVX-512 (F, VL, DQ).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq")]
unsafe fn store(
    sum: &[[f32; TILE_CHANNELS]; TILE_COLUMNS],
    dst: *mut f32,
    row: usize,
    channels: usize,
    count: usize,
) {
    use std::arch::x86_64::*;
    let acc: [[__m512; 4]; TILE_COLUMNS] = std::array::from_fn(|j| {
        std::array::from_fn(|v| _mm512_loadu_ps(sum[j].as_ptr().add(16 * v)))
    });
    macro_rules! store_n {
        ($n:literal) => {{
            let part: [[__m512; 4]; $n] = std::array::from_fn(|j| acc[j]);
            crate::conv_store::store_planes::<$n>(&part, dst, row, channels)
        }};
    }
    match count {
        1 => store_n!(1),
        2 => store_n!(2),
        3 => store_n!(3),
        4 => store_n!(4),
        5 => store_n!(5),
        _ => store_n!(6),
    }
}

/// Not reachable: the kernel is only chosen on x86-64 with AVX-512.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn store(
    _sum: &[[f32; TILE_CHANNELS]; TILE_COLUMNS],
    _dst: *mut f32,
    _row: usize,
    _channels: usize,
    _count: usize,
) {
    unreachable!("the weight-gradient kernel needs AVX-512")
}
