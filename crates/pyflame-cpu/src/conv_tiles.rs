//! Register-tiled f32 kernel for sums of shifted matrix products, the core of the direct
//! convolution: `out[m, q] = sum_{k, t} a[m, k, t] * b[k, q + taps[t]]` for `q` in blocks of
//! 64 columns. A tile keeps 6 rows x 64 columns of `out` in 24 AVX-512 registers while it
//! runs over every `k` and tap, so the sum over `C x kh x kw` never leaves the registers
//! (a GEMM per tap would load and store `out` once per tap, and pack its operands).

use crate::kernels::copy::copy_short;
use crate::pack_cache::{self, PackSpec, Transform, WeightSource};
use pyflame_core::{DType, Error, Result, Storage};
use rayon::prelude::*;
use std::sync::Arc;

/// Output rows of one tile.
pub(crate) const TILE_ROWS: usize = 6;
/// Columns of one tile (four 16-lane vectors).
pub(crate) const TILE_COLS: usize = 64;

/// True when the tiled kernel can run on this CPU.
pub(crate) fn available() -> bool {
    crate::kernels::simd::has_avx512()
}

/// How far ahead of its reads (in f32 values) a kernel streaming packed 64-channel weight
/// rows asks for them: 2 KiB, eight rows of four cache lines.
const WEIGHT_PREFETCH: usize = 512;

/// Asks for the four cache lines of the packed 64-channel weight row [`WEIGHT_PREFETCH`]
/// values after `row` (a hint: addresses past the weights are never read or faulted on).
///
/// At batch 1 the deep layers' kernels stream megabytes of weights from the L3 cache with
/// a few pixels each, so their speed is the rate at which weights arrive. The hardware's
/// stream prefetcher stops at every 4 KiB page; these requests keep the stream going
/// across pages. ResNet-18's 2x2 layers (2.36 MB of weights each), weights cold, two
/// threads: 68.8 -> 60 us (medians of six alternating runs).
///
/// # Safety
/// Needs SSE (every x86-64 CPU); `row` is a pointer into (or just past) the weights.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
pub(crate) unsafe fn prefetch_weights(row: *const f32) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    let ahead = row.wrapping_add(WEIGHT_PREFETCH);
    for line in 0..4 {
        _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16 * line) as *const i8);
    }
}

/// One problem for [`run`]. Pointers address row 0, column 0 of their matrices.
pub(crate) struct Shifted<'a> {
    /// rows of `out` (a multiple of [`TILE_ROWS`]: padded rows have zero weights)
    pub rows: usize,
    /// rows of `b` summed over
    pub depth: usize,
    /// column offset of each tap into `b` (may be negative)
    pub taps: &'a [isize],
    /// `[rows / TILE_ROWS][depth][taps][TILE_ROWS]`, see [`pack`]
    pub packed: &'a [f32],
    /// base of `b` and its row stride
    pub b: *const f32,
    /// row stride of `b`
    pub b_stride: isize,
    /// where the valid grid positions of `out` go
    pub out: Scatter,
    /// grid columns to compute (a multiple of [`TILE_COLS`])
    pub cols: usize,
}

/// Where a tile's results go: grid column `q` is position `(q / plane, row, col)` of the
/// padded grid (`row = q % plane / width`, `col = q % plane % width`); the positions inside
/// the window `[row0, row0 + rows) x [col0, col0 + cols)` of images `< images` are written
/// to `dst[image * image_stride + m * channel_stride + (row - row0) * line + col - col0]`
/// for output rows `m < channels`; every other grid position is dropped.
#[derive(Clone, Copy)]
pub(crate) struct Scatter {
    /// grid positions per image
    pub plane: usize,
    /// grid row length
    pub width: usize,
    /// first row and column of the window
    pub origin: (usize, usize),
    /// window rows and columns
    pub window: (usize, usize),
    /// images
    pub images: usize,
    /// output rows that exist (the rest of the last row tile is padding)
    pub channels: usize,
    /// destination
    pub dst: *mut f32,
    /// element strides of an image and of a channel in `dst` (a line is `window.1`)
    pub image_stride: usize,
    /// element stride of a channel in `dst`
    pub channel_stride: usize,
}

impl Scatter {
    /// Copies the valid positions of a computed tile (`TILE_ROWS x TILE_COLS`, rows from
    /// `m0`, columns from grid column `q0`) to the destination.
    ///
    /// # Safety
    /// `dst` must be writable at every index this description maps a valid position to, and
    /// no other thread may write those elements.
    unsafe fn write(&self, tile: &[[f32; TILE_COLS]; TILE_ROWS], m0: usize, q0: usize) {
        let (row0, col0) = self.origin;
        let (rows, cols) = self.window;
        let mut pos = 0;
        while pos < TILE_COLS {
            let q = q0 + pos;
            let (image, rest) = (q / self.plane, q % self.plane);
            let (row, col) = (rest / self.width, rest % self.width);
            if image >= self.images {
                return;
            }
            if row < row0 || row >= row0 + rows || col >= col0 + cols {
                // skip to the next grid row
                pos += self.width - col;
                continue;
            }
            if col < col0 {
                pos += col0 - col;
                continue;
            }
            let run = (col0 + cols - col).min(TILE_COLS - pos);
            let base = image * self.image_stride + (row - row0) * cols + (col - col0);
            for (r, values) in tile.iter().enumerate() {
                let m = m0 + r;
                if m >= self.channels {
                    break;
                }
                let dst = std::slice::from_raw_parts_mut(
                    self.dst.add(base + m * self.channel_stride),
                    run,
                );
                copy_short(dst, &values[pos..pos + run]);
            }
            pos += run;
        }
    }
}

// SAFETY: the pointers are only dereferenced inside `run`, whose tasks write disjoint
// column ranges of `out` and read `b`, which nobody writes during the call.
unsafe impl Send for Shifted<'_> {}
unsafe impl Sync for Shifted<'_> {}

/// How to read `a[m, k, t]` from a weight tensor: element strides of `m`, `k` and `t`, and
/// the number of real rows `m` (rows beyond are zero padding).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct WeightView {
    /// stride of a row `m`
    pub m: usize,
    /// stride of `k`
    pub k: usize,
    /// stride of a tap `t`
    pub t: usize,
    /// rows that exist
    pub rows: usize,
}

impl WeightView {
    /// `a[o, c, t]` of an `[O, C, kh, kw]` weight (forward: rows are output channels).
    pub fn output_rows(o: usize, c: usize, taps: usize) -> Self {
        WeightView {
            m: c * taps,
            k: taps,
            t: 1,
            rows: o,
        }
    }

    /// `a[c, o, t]` of an `[O, C, kh, kw]` weight (input gradient: rows are input channels).
    pub fn input_rows(c: usize, taps: usize) -> Self {
        WeightView {
            m: taps,
            k: c * taps,
            t: 1,
            rows: c,
        }
    }
}

/// [`pack`], through the cache of packed weights when the weights come from a storage
/// whose values never change (see `pack_cache`); counts the use.
pub(crate) fn pack_shared(
    w: &[f32],
    source: Option<WeightSource<'_>>,
    view: WeightView,
    (rows, block_rows): (usize, usize),
    depth: usize,
    taps: usize,
) -> Result<Arc<Storage>> {
    let spec = PackSpec {
        view,
        rows,
        block_rows,
        depth,
        taps,
        transform: Transform::None,
    };
    pack_cache::packed(source, spec, || {
        pack(w, view, (rows, block_rows), depth, taps)
    })
}

/// Packs `a[m, k, t]` (read from `w` through `view`) for `rows` rows in blocks of
/// `block_rows` (`rows` a multiple of it) into `[rows / block_rows][depth][taps]
/// [block_rows]`, the order the tiled kernels stream their weights in.
pub(crate) fn pack(
    w: &[f32],
    view: WeightView,
    (rows, block_rows): (usize, usize),
    depth: usize,
    taps: usize,
) -> Result<Storage> {
    let block = depth * taps * block_rows;
    let needed = if view.rows == 0 || depth == 0 || taps == 0 {
        0
    } else {
        (view.rows - 1) * view.m + (depth - 1) * view.k + (taps - 1) * view.t + 1
    };
    if w.len() < needed {
        return Err(Error::Invalid(format!(
            "internal: convolution weights hold {} values, {needed} expected",
            w.len()
        )));
    }
    let mut packed = Storage::uninit(DType::Float32, rows * depth * taps)?;
    packed
        .as_mut_slice::<f32>()?
        .par_chunks_mut(block.max(1))
        .enumerate()
        .for_each(|(mb, dst)| {
            // A blocked transpose: a few `k` at a time for every row, so that the reads
            // (contiguous per row for the usual layouts) and the writes stay in L1.
            let step = 16usize.div_ceil(taps.max(1));
            for k0 in (0..depth).step_by(step) {
                for r in 0..block_rows {
                    let m = mb * block_rows + r;
                    for k in k0..(k0 + step).min(depth) {
                        let out = &mut dst[k * taps * block_rows + r..];
                        if m >= view.rows {
                            (0..taps).for_each(|t| out[t * block_rows] = 0.0);
                            continue;
                        }
                        let src = &w[m * view.m + k * view.k..];
                        for t in 0..taps {
                            out[t * block_rows] = src[t * view.t];
                        }
                    }
                }
            }
        });
    Ok(packed)
}

/// Runs `p` over its columns in parallel.
///
/// # Safety
/// For every column `q < p.cols`, row `k < p.depth` and tap offset `d`, `b + k * b_stride +
/// q + d` must be readable; `p.out` must satisfy [`Scatter::write`]'s contract, and nothing
/// else may access its destination during the call. [`available`] must be true.
pub(crate) unsafe fn run(p: &Shifted<'_>) {
    debug_assert!(p.rows.is_multiple_of(TILE_ROWS) && p.cols.is_multiple_of(TILE_COLS));
    let tiles = p.cols / TILE_COLS;
    // A few column blocks per thread; each block sweeps every row tile so that its slice of
    // `b` is reused from the cache.
    let per_task = tiles
        .div_ceil(4 * rayon::current_num_threads())
        .clamp(1, 16);
    (0..tiles.div_ceil(per_task))
        .into_par_iter()
        .for_each(|task| {
            let first = task * per_task;
            let mut tile = [[0.0f32; TILE_COLS]; TILE_ROWS];
            for t in first..(first + per_task).min(tiles) {
                let q = t * TILE_COLS;
                for mb in 0..p.rows / TILE_ROWS {
                    let a = &p.packed[mb * p.depth * p.taps.len() * TILE_ROWS..];
                    // SAFETY: forwarded from the caller's contract.
                    unsafe {
                        tile_avx512(
                            a.as_ptr(),
                            p.depth,
                            p.taps,
                            p.b.add(q),
                            p.b_stride,
                            &mut tile,
                        );
                        p.out.write(&tile, mb * TILE_ROWS, q);
                    }
                }
            }
        });
}

/// One 6 x 64 tile.
///
/// # Safety
/// As [`run`], for this tile's columns; needs AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512(
    a: *const f32,
    depth: usize,
    taps: &[isize],
    b: *const f32,
    b_stride: isize,
    out: &mut [[f32; TILE_COLS]; TILE_ROWS],
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 4]; TILE_ROWS];
    let mut ap = a;
    for k in 0..depth {
        let row = b.offset(k as isize * b_stride);
        for &d in taps {
            let src = row.offset(d);
            let bv = [
                _mm512_loadu_ps(src),
                _mm512_loadu_ps(src.add(16)),
                _mm512_loadu_ps(src.add(32)),
                _mm512_loadu_ps(src.add(48)),
            ];
            for (r, acc_row) in acc.iter_mut().enumerate() {
                let w = _mm512_set1_ps(*ap.add(r));
                for (v, acc_v) in acc_row.iter_mut().enumerate() {
                    *acc_v = _mm512_fmadd_ps(w, bv[v], *acc_v);
                }
            }
            ap = ap.add(TILE_ROWS);
        }
    }
    for (dst, acc_row) in out.iter_mut().zip(&acc) {
        for (v, acc_v) in acc_row.iter().enumerate() {
            _mm512_storeu_ps(dst.as_mut_ptr().add(16 * v), *acc_v);
        }
    }
}

/// Not reachable: [`available`] is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn tile_avx512(
    _a: *const f32,
    _depth: usize,
    _taps: &[isize],
    _b: *const f32,
    _b_stride: isize,
    _out: &mut [[f32; TILE_COLS]; TILE_ROWS],
) {
    unreachable!("the tiled convolution kernel needs AVX-512")
}
