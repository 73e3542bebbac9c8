//! Winograd F(2x2, 3x3) convolution for stride-1 3x3 f32 convolutions on AVX-512.
//!
//! The output is cut into 2x2 tiles. Tile `(n, ty, tx)` reads the 4x4 input patch at
//! `(2 ty - ph, 2 tx - pw)` and its outputs are `Y = A^T [(G g G^T) . (B^T d B)] A` (Lavin
//! and Gray, "Fast Algorithms for Convolutional Neural Networks"): 16 products per tile and
//! channel pair where the direct method needs 36, so 2.25x less arithmetic. The 16
//! transformed positions `xi` make 16 independent matrix products `M[xi] = U[xi] V[xi]`
//! over the input channels, run with the same 64-channel x 6-tile register tile as the
//! pixel kernel of `conv_pixels`.
//!
//! Work is split into chunks of tiles. A chunk copies the input rows it reads channel-last,
//! transforms its input patches (`V`, kept in the L2 cache), runs the 16 products for every block of 64 output channels (the
//! transformed weights `U` stream from the cache), and transforms the products back into
//! the output planes. The input gradient of a stride-1 3x3 convolution is the same
//! computation with the weights transposed and flipped (see
//! `conv_pixels::input_gradient_geometry`).
//!
//! Accuracy: the transforms only add, subtract and halve, but the transformed values are
//! larger than the inputs, so rounding errors grow: against the pixel kernel, with inputs
//! and weights uniform in [-1, 1], the largest difference relative to `1 + |y|` is 1.5e-5
//! for 64 input channels and 7.7e-5 for 512 (sums of 576 and 4,608 products).

use crate::conv::{ConvFloat, ConvParams, Geom};
use crate::conv_direct::{choice, winograd_disabled, Choice, SharedMut};
use crate::conv_pixels::input_gradient_geometry;
use crate::conv_tiles::{self, WeightView};
use crate::pack_cache::{self, PackSpec, Transform, WeightSource};
use pyflame_core::{DType, Error, Result, Storage};
use rayon::prelude::*;
use std::cell::RefCell;

/// Output channels of a block (four 16-lane vectors).
const BLOCK: usize = 64;
/// Tiles of one register tile.
const MICRO: usize = 6;
/// Transformed positions of a tile (4 x 4).
const XI: usize = 16;
/// Bytes of transformed input a chunk may hold (it stays in the L2 cache with the
/// products and the weights of one position).
const CHUNK_BYTES: usize = 1 << 20;
/// Most tiles of a chunk.
const MAX_CHUNK: usize = 96;
/// Fewest tiles for which the method pays: with fewer, the products are bound by reading the
/// transformed weights, 16/9 the size of the kernel (ResNet-18 at batch 1, one thread: 4
/// tiles of 128 channels take 2x the pixel kernel's time, 16 tiles of 64 channels 0.8x).
const MIN_TILES: usize = 16;

/// Whether `g` is a 3x3, stride-1, undilated, ungrouped convolution that this kernel can run
/// on this CPU (AVX-512), and, unless
/// `PYFLAME_CONV_ALGO=winograd` forces it, one where it pays: enough output channels to
/// fill the lanes, enough input channels to amortize the transforms, and planes whose 2x2
/// tiles waste little.
fn applies(g: &Geom, p: &ConvParams, forced: bool) -> bool {
    let shape_ok = conv_tiles::available()
        && g.g == 1
        && g.kh == 3
        && g.kw == 3
        && p.stride == [1, 1]
        && p.dilation == [1, 1]
        && g.n > 0
        && g.c > 0
        && g.o > 0
        && g.ho > 0
        && g.wo > 0
        && (g.h + 2 * p.padding[0]).checked_sub(2) == Some(g.ho)
        && (g.w + 2 * p.padding[1]).checked_sub(2) == Some(g.wo);
    if !shape_ok {
        return false;
    }
    match choice() {
        _ if forced => true,
        Choice::Winograd => true,
        Choice::Auto if winograd_disabled() => false,
        Choice::Auto => {
            let (th, tw) = (g.ho.div_ceil(2), g.wo.div_ceil(2));
            // Useful fraction of the tiles' outputs: 2.25x less arithmetic must survive it.
            let efficiency = g.hw() as f64 / (4 * th * tw) as f64;
            g.o >= 48 && g.c >= 16 && efficiency >= 0.75 && g.n * th * tw >= MIN_TILES
        }
        _ => false,
    }
}

/// Forward convolution into `out` ([N, O, ho, wo]); `false` when the kernel does not apply.
pub(crate) fn forward<T: ConvFloat>(
    xs: &[T],
    ws: &[T],
    source: Option<WeightSource<'_>>,
    g: &Geom,
    p: &ConvParams,
    out: &mut [T],
) -> Result<bool> {
    let view = WeightView::output_rows(g.o, g.c, 9);
    convolve(xs, (ws, source, view, false), g, p, out, false)
}

/// Input gradient of a stride-1 3x3 convolution into `dx` ([N, C, H, W]); `false` when the
/// kernel does not apply.
pub(crate) fn backward_input<T: ConvFloat>(
    gy: &[T],
    ws: &[T],
    source: Option<WeightSource<'_>>,
    g: &Geom,
    p: &ConvParams,
    dx: &mut [T],
) -> Result<bool> {
    let Some((transposed, params)) = input_gradient_geometry(g, p) else {
        return Ok(false);
    };
    let view = WeightView::input_rows(g.c, 9);
    convolve(
        gy,
        (ws, source, view, true),
        &transposed,
        &params,
        dx,
        false,
    )
}

/// The convolution of `xs` with the weights `ws` read through `view` (taps flipped when
/// `flipped`) for the geometry `g` of the convolution computed; `forced` skips the check
/// that the method pays (not the check that it can run).
fn convolve<T: ConvFloat>(
    xs: &[T],
    (ws, source, view, flipped): (&[T], Option<WeightSource<'_>>, WeightView, bool),
    g: &Geom,
    p: &ConvParams,
    out: &mut [T],
    forced: bool,
) -> Result<bool> {
    let (Some(x), Some(w), Some(out)) = (T::as_f32(xs), T::as_f32(ws), T::as_f32_mut(out)) else {
        return Ok(false);
    };
    if !applies(g, p, forced) {
        return Ok(false);
    }
    let rows = g.o.next_multiple_of(BLOCK);
    let spec = PackSpec {
        view,
        rows,
        block_rows: BLOCK,
        depth: g.c,
        taps: 9,
        transform: Transform::Winograd2x2 { flipped },
    };
    let packed_buf = pack_cache::packed(source, spec, || {
        transform_weights(w, view, flipped, rows, g.c)
    })?;
    let u = packed_buf.as_slice::<f32>()?;
    let (th, tw) = (g.ho.div_ceil(2), g.wo.div_ceil(2));
    if out.len() < g.n * g.o * g.hw() {
        return Err(Error::Invalid(format!(
            "internal: convolution output holds {} values, {} expected",
            out.len(),
            g.n * g.o * g.hw()
        )));
    }
    if x.len() < g.n * g.c * g.h * g.w {
        return Err(Error::Invalid(format!(
            "internal: convolution input holds {} values, {} expected",
            x.len(),
            g.n * g.c * g.h * g.w
        )));
    }
    let layout = Layout {
        g: *g,
        th,
        tw,
        padding: (p.padding[0], p.padding[1]),
    };
    run(&layout, u, x, out);
    Ok(true)
}

/// Sizes shared by the transforms.
#[derive(Clone, Copy)]
struct Layout {
    g: Geom,
    /// tile rows and columns of an output plane
    th: usize,
    tw: usize,
    /// rows and columns of zeros before the input's first row and column
    padding: (usize, usize),
}

impl Layout {
    fn tiles(&self) -> usize {
        self.g.n * self.th * self.tw
    }

    /// Image, tile row and tile column of flat tile `t`.
    fn tile(&self, t: usize) -> (usize, usize, usize) {
        let per_image = self.th * self.tw;
        (t / per_image, t % per_image / self.tw, t % self.tw)
    }
}

thread_local! {
    /// Per-thread transformed inputs and products, reused across calls.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs every chunk of tiles in parallel.
fn run(l: &Layout, u: &[f32], x: &[f32], out: &mut [f32]) {
    let g = &l.g;
    let tiles = l.tiles();
    let blocks = g.o.div_ceil(BLOCK);
    let threads = rayon::current_num_threads().max(1);
    let cap = (CHUNK_BYTES / (XI * 4 * g.c)).clamp(MICRO, MAX_CHUNK);
    let per_thread = tiles.div_ceil(threads);
    let chunk = if per_thread <= cap && tiles <= 4 * MICRO * threads {
        per_thread
    } else {
        tiles
            .div_ceil(4 * threads)
            .next_multiple_of(MICRO)
            .clamp(MICRO, cap)
    };
    let chunks = tiles.div_ceil(chunk);
    // Few chunks (batch 1): split the output channel blocks too; each task then repeats the
    // chunk's input transform, which costs 1/64 of a block's products.
    let groups = if chunks >= 2 * threads {
        1
    } else {
        blocks.min((2 * threads).div_ceil(chunks))
    };
    let per_group = blocks.div_ceil(groups);
    let dst = SharedMut(out.as_mut_ptr());
    (0..chunks * groups).into_par_iter().for_each(|task| {
        let (c, b) = (task / groups, task % groups);
        let first = c * chunk;
        let count = chunk.min(tiles - first);
        let block_range = b * per_group..((b + 1) * per_group).min(blocks);
        if block_range.is_empty() {
            return;
        }
        SCRATCH.with(|s| {
            let mut scratch = s.borrow_mut();
            let cp = g.c.next_multiple_of(16);
            let xt_len = channels_last_len(l, first, count);
            let (v_len, m_len) = (XI * count * cp, XI * count * BLOCK);
            let staging_len = 4 * count * BLOCK;
            let total = xt_len + v_len + m_len + staging_len;
            if scratch.len() < total {
                scratch.resize(total, 0.0);
            }
            let (xt, rest) = scratch.split_at_mut(xt_len);
            let (v, rest) = rest.split_at_mut(v_len);
            let (m, staging) = rest.split_at_mut(m_len);
            // SAFETY: `x` is the [N, C, H, W] input of `l`; `xt`, `v`, `m` and `staging` hold
            // the values `channels_last`, `input_transform`, `products` and
            // `output_transform` write; `u` holds the transformed weights of every block;
            // the tasks write disjoint (tile, channel) outputs of the output behind `dst`.
            unsafe {
                channels_last(l, x, first, count, xt);
                input_transform(l, xt, first, count, v);
                for block in block_range {
                    let ub = &u[block * XI * g.c * BLOCK..][..XI * g.c * BLOCK];
                    products(ub, (g.c, cp), v, count, m);
                    output_transform(l, m, (first, count), block, staging, dst.ptr());
                }
            }
        });
    });
}

/// The part of one image's input a chunk of tiles reads: rows `rows`, columns `cols`
/// (clipped to the image; all columns unless the chunk lies inside one tile row, so that a
/// very wide image is not copied whole for every chunk).
#[derive(Clone)]
struct Region {
    image: usize,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
}

impl Region {
    fn len(&self) -> usize {
        self.rows.len() * self.cols.len()
    }
}

/// The regions a chunk of tiles reads, image by image.
fn chunk_regions(l: &Layout, first: usize, count: usize) -> impl Iterator<Item = Region> + '_ {
    let per_image = l.th * l.tw;
    let last = first + count - 1;
    let (ph, pw) = l.padding;
    let window = |start: usize, tiles: usize, pad: usize, len: usize| {
        let lo = (2 * start).saturating_sub(pad).min(len);
        let hi = (2 * (start + tiles) + 2).saturating_sub(pad).min(len);
        lo..hi.max(lo)
    };
    (first / per_image..=last / per_image).map(move |n| {
        let image_first = n * per_image;
        let (t0, t1) = (
            first.max(image_first) - image_first,
            last.min(image_first + per_image - 1) - image_first,
        );
        let (ty0, ty1) = (t0 / l.tw, t1 / l.tw);
        let cols = if ty0 == ty1 {
            window(t0 % l.tw, t1 - t0 + 1, pw, l.g.w)
        } else {
            0..l.g.w
        };
        Region {
            image: n,
            rows: window(ty0, ty1 - ty0 + 1, ph, l.g.h),
            cols,
        }
    })
}

/// Values of the channel-last copy of a chunk's input (see [`channels_last`]).
fn channels_last_len(l: &Layout, first: usize, count: usize) -> usize {
    let positions: usize = chunk_regions(l, first, count).map(|r| r.len()).sum();
    positions * l.g.c.next_multiple_of(16)
}

/// Copies the input a chunk reads into `xt` channel-last (`[region, row, column][channel]`,
/// channels padded to 16, regions one after another as [`chunk_regions`] lists them), 16
/// positions x 16 channels at a time through a register transpose.
///
/// # Safety
/// `x` is the [N, C, H, W] input of `l`; `xt` holds [`channels_last_len`] values.
#[target_feature(enable = "avx512f")]
unsafe fn channels_last(l: &Layout, x: &[f32], first: usize, count: usize, xt: &mut [f32]) {
    let g = &l.g;
    let cp = g.c.next_multiple_of(16);
    let mut base = 0;
    for region in chunk_regions(l, first, count) {
        if region.cols.len() == g.w {
            // Whole rows: one run of positions.
            let run = region.rows.start * g.w..region.rows.end * g.w;
            copy_positions(g, x, (region.image, run), xt.as_mut_ptr().add(base * cp));
        } else {
            for (i, y) in region.rows.clone().enumerate() {
                let run = y * g.w + region.cols.start..y * g.w + region.cols.end;
                let at = base + i * region.cols.len();
                copy_positions(g, x, (region.image, run), xt.as_mut_ptr().add(at * cp));
            }
        }
        base += region.len();
    }
}

/// Copies plane positions `run` of image `image`, every channel, to `dst` channel-last
/// (position `p` of the run at `dst + p * cp`).
///
/// # Safety
/// `x` is the [N, C, H, W] input of `g`, `run` inside a plane, and `dst` writable for
/// `run.len() * cp` values.
#[target_feature(enable = "avx512f")]
unsafe fn copy_positions(
    g: &Geom,
    x: &[f32],
    (image, run): (usize, std::ops::Range<usize>),
    dst: *mut f32,
) {
    use std::arch::x86_64::*;
    let (plane, cp) = (g.h * g.w, g.c.next_multiple_of(16));
    for c0 in (0..g.c).step_by(16) {
        let src = x.as_ptr().add((image * g.c + c0) * plane);
        for p0 in run.clone().step_by(16) {
            let len = (run.end - p0).min(16);
            let mut rows = [_mm512_setzero_ps(); 16];
            for (k, row) in rows.iter_mut().enumerate().take(g.c - c0) {
                *row = _mm512_maskz_loadu_ps(mask(len), src.add(k * plane + p0));
            }
            let columns = transpose16(rows);
            let to = dst.add((p0 - run.start) * cp + c0);
            for (i, column) in columns.iter().enumerate().take(len) {
                _mm512_storeu_ps(to.add(i * cp), *column);
            }
        }
    }
}

/// `V[j][xi][c] = (B^T d B)[xi]` for the `count` tiles from `first` (`j` their index in the
/// chunk) and every channel (padded to 16), 16 channels at a time, from the channel-last
/// rows `xt` (positions in the padding read as zeros).
///
/// # Safety
/// `xt` is [`channels_last`]'s copy for this chunk; `v` holds `XI * count * cp` values.
#[target_feature(enable = "avx512f")]
unsafe fn input_transform(l: &Layout, xt: &[f32], first: usize, count: usize, v: &mut [f32]) {
    use std::arch::x86_64::*;
    let g = &l.g;
    let cp = g.c.next_multiple_of(16);
    let (ph, pw) = (l.padding.0 as isize, l.padding.1 as isize);
    let per_image = l.th * l.tw;
    let zero = _mm512_setzero_ps();
    // Where each image's rows start in `xt`, and its first row.
    // Each image's region and where it starts in `xt`.
    let images: Vec<(Region, usize)> = {
        let mut base = 0;
        chunk_regions(l, first, count)
            .map(|region| {
                let len = region.len();
                base += len;
                (region, base - len)
            })
            .collect()
    };
    let first_image = first / per_image;
    for j in 0..count {
        let (n, ty, tx) = l.tile(first + j);
        let (region, base) = &images[n - first_image];
        let (rows, cols) = (&region.rows, &region.cols);
        // Offsets of the patch's values in `xt`, `None` in the padding. (Plain loops here
        // and below: closures do not inherit this function's target features, and
        // `array::from_fn` over one was left as a call.)
        let mut at = [[None; 4]; 4];
        for (i, at_row) in at.iter_mut().enumerate() {
            let y = (2 * ty + i) as isize - ph;
            if y < 0 || y as usize >= g.h {
                continue;
            }
            // Inside the image means inside the region (it holds every patch of the chunk).
            let row = base + (y as usize - rows.start) * cols.len();
            for (k, slot) in at_row.iter_mut().enumerate() {
                let x = (2 * tx + k) as isize - pw;
                if x >= 0 && (x as usize) < g.w {
                    *slot = Some((row + x as usize - cols.start) * cp);
                }
            }
        }
        for c0 in (0..g.c).step_by(16) {
            let mut d = [[zero; 4]; 4];
            for i in 0..4 {
                for k in 0..4 {
                    if let Some(offset) = at[i][k] {
                        d[i][k] = _mm512_loadu_ps(xt.as_ptr().add(offset + c0));
                    }
                }
            }
            let mut r = [[zero; 4]; 4];
            for k in 0..4 {
                r[0][k] = _mm512_sub_ps(d[0][k], d[2][k]);
                r[1][k] = _mm512_add_ps(d[1][k], d[2][k]);
                r[2][k] = _mm512_sub_ps(d[2][k], d[1][k]);
                r[3][k] = _mm512_sub_ps(d[1][k], d[3][k]);
            }
            // A tile's 16 positions are `cp` apart: one pointer stepping through them.
            let mut dst = v.as_mut_ptr().add(j * XI * cp + c0);
            for ri in &r {
                let values = [
                    _mm512_sub_ps(ri[0], ri[2]),
                    _mm512_add_ps(ri[1], ri[2]),
                    _mm512_sub_ps(ri[2], ri[1]),
                    _mm512_sub_ps(ri[1], ri[3]),
                ];
                for value in values {
                    _mm512_storeu_ps(dst, value);
                    dst = dst.add(cp);
                }
            }
        }
    }
}

/// `M[xi][j][o] = sum_c U[xi][c][o] V[j][xi][c]` for one block of 64 output channels (`u`
/// is `[XI][depth][64]`, `v` `[count][XI][cp]`), `count` tiles.
///
/// # Safety
/// `v` holds `XI * count * cp` values and `m` `XI * count * 64`.
unsafe fn products(u: &[f32], (depth, cp): (usize, usize), v: &[f32], count: usize, m: &mut [f32]) {
    for xi in 0..XI {
        let a = u.as_ptr().add(xi * depth * BLOCK);
        let b = v.as_ptr().add(xi * cp);
        let out = m.as_mut_ptr().add(xi * count * BLOCK);
        for j in (0..count).step_by(MICRO) {
            let args = (a, depth, b.add(j * XI * cp), XI * cp, out.add(j * BLOCK));
            match (count - j).min(MICRO) {
                1 => micro::<1>(args),
                2 => micro::<2>(args),
                3 => micro::<3>(args),
                4 => micro::<4>(args),
                5 => micro::<5>(args),
                _ => micro::<MICRO>(args),
            }
        }
    }
}

/// One register tile: 64 output channels x `P` tiles over the whole depth, stored as `P`
/// rows of 64 values; tile `p`'s values are the `depth` consecutive ones at `b + p * step`.
///
/// # Safety
/// `a` holds `depth * 64` values, `b + p * step + c` is readable for `c < depth`,
/// `p < P`, and `out` is writable for `P * 64` values.
#[target_feature(enable = "avx512f")]
unsafe fn micro<const P: usize>(
    (a, depth, b, step, out): (*const f32, usize, *const f32, usize, *mut f32),
) {
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 4]; P];
    let mut ap = a;
    let mut tiles = [b; P];
    for (p, tile) in tiles.iter_mut().enumerate() {
        *tile = b.add(p * step);
    }
    for c in 0..depth {
        conv_tiles::prefetch_weights(ap);
        let w = [
            _mm512_loadu_ps(ap),
            _mm512_loadu_ps(ap.add(16)),
            _mm512_loadu_ps(ap.add(32)),
            _mm512_loadu_ps(ap.add(48)),
        ];
        for (tile, acc_p) in tiles.iter().zip(acc.iter_mut()) {
            let x = _mm512_set1_ps(*tile.add(c));
            for (acc_v, wv) in acc_p.iter_mut().zip(w) {
                *acc_v = _mm512_fmadd_ps(wv, x, *acc_v);
            }
        }
        ap = ap.add(BLOCK);
    }
    for (p, acc_p) in acc.iter().enumerate() {
        for (q, acc_v) in acc_p.iter().enumerate() {
            _mm512_storeu_ps(out.add(p * BLOCK + 16 * q), *acc_v);
        }
    }
}

/// `Y = A^T M A` for the chunk's tiles and block `block` of output channels, written to
/// the [N, O, ho, wo] output at `out` through `staging` (`[4 * tile + output][64]`: the
/// results as they leave the transform, channels in the lanes). The chunk's output pixels
/// are then taken 16 at a time in the planes' order, their staged vectors transposed, and
/// each channel's run stored with one masked store (a scatter per vector cost 2-3x more).
///
/// # Safety
/// `m` holds the block's products, `staging` `4 * count * 64` values; `out` is the whole
/// output, and no other task writes these tiles' outputs of this block.
#[target_feature(enable = "avx512f")]
unsafe fn output_transform(
    l: &Layout,
    m: &[f32],
    (first, count): (usize, usize),
    block: usize,
    staging: &mut [f32],
    out: *mut f32,
) {
    use std::arch::x86_64::*;
    let g = &l.g;
    let o0 = block * BLOCK;
    let channels = BLOCK.min(g.o - o0);
    let vectors = channels.div_ceil(16);
    let st = staging.as_mut_ptr();
    for j in 0..count {
        for q in 0..vectors {
            let mut mv = [_mm512_setzero_ps(); XI];
            for (xi, value) in mv.iter_mut().enumerate() {
                *value = _mm512_loadu_ps(m.as_ptr().add((xi * count + j) * BLOCK + 16 * q));
            }
            // A^T M (two rows), then (A^T M) A (two columns).
            let mut s = [[_mm512_setzero_ps(); 4]; 2];
            for c in 0..4 {
                s[0][c] = _mm512_add_ps(_mm512_add_ps(mv[c], mv[4 + c]), mv[8 + c]);
                s[1][c] = _mm512_sub_ps(_mm512_sub_ps(mv[4 + c], mv[8 + c]), mv[12 + c]);
            }
            for (r, sr) in s.iter().enumerate() {
                let left = _mm512_add_ps(_mm512_add_ps(sr[0], sr[1]), sr[2]);
                let right = _mm512_sub_ps(_mm512_sub_ps(sr[1], sr[2]), sr[3]);
                let slot = st.add((4 * j + 2 * r) * BLOCK + 16 * q);
                _mm512_storeu_ps(slot, left);
                _mm512_storeu_ps(slot.add(BLOCK), right);
            }
        }
    }
    // The chunk's output pixels in plane order: runs of up to 16 consecutive positions.
    let per_image = l.th * l.tw;
    let plane = g.hw();
    let mut run = Run {
        image: 0,
        start: 0,
        slots: [0; 16],
        len: 0,
    };
    let last = first + count - 1;
    for n in first / per_image..=last / per_image {
        let image_first = n * per_image;
        let rows = (first.max(image_first) - image_first) / l.tw
            ..=(last.min(image_first + per_image - 1) - image_first) / l.tw;
        for ty in rows {
            let row_first = image_first + ty * l.tw;
            let t0 = first.max(row_first);
            let t1 = (first + count).min(row_first + l.tw);
            for y in 2 * ty..(2 * ty + 2).min(g.ho) {
                for x in 2 * (t0 - row_first)..(2 * (t1 - row_first)).min(g.wo) {
                    let at = y * g.wo + x;
                    let contiguous = run.image == n && run.start + run.len == at;
                    if run.len == 16 || (run.len > 0 && !contiguous) {
                        store_run(&run, st, (out, g.o, plane), o0, channels);
                        run.len = 0;
                    }
                    if run.len == 0 {
                        run.image = n;
                        run.start = at;
                    }
                    let t = row_first + x / 2 - first;
                    run.slots[run.len] = 4 * t + 2 * (y % 2) + x % 2;
                    run.len += 1;
                }
            }
        }
    }
    if run.len > 0 {
        store_run(&run, st, (out, g.o, plane), o0, channels);
    }
}

/// Consecutive output positions of one image and the staging slot of each.
struct Run {
    image: usize,
    /// position of the first in its plane
    start: usize,
    slots: [usize; 16],
    len: usize,
}

/// Stores a run's values of channels `o0..o0 + channels` into their planes.
///
/// # Safety
/// As [`output_transform`]; `out` holds `[N][outputs][plane]`.
#[target_feature(enable = "avx512f")]
unsafe fn store_run(
    run: &Run,
    staging: *const f32,
    (out, outputs, plane): (*mut f32, usize, usize),
    o0: usize,
    channels: usize,
) {
    use std::arch::x86_64::*;
    let lanes = mask(run.len);
    for q in 0..channels.div_ceil(16) {
        let mut rows = [_mm512_setzero_ps(); 16];
        for (row, &slot) in rows.iter_mut().zip(&run.slots).take(run.len) {
            *row = _mm512_loadu_ps(staging.add(slot * BLOCK + 16 * q));
        }
        let columns = transpose16(rows);
        for (k, column) in columns.iter().enumerate().take(channels - 16 * q) {
            let o = o0 + 16 * q + k;
            let dst = out.add((run.image * outputs + o) * plane + run.start);
            _mm512_mask_storeu_ps(dst, lanes, *column);
        }
    }
}

/// The transpose of a 16 x 16 block held as 16 rows: `out[k]` lane `p` is `rows[p]` lane `k`.
#[target_feature(enable = "avx512f")]
unsafe fn transpose16(rows: [std::arch::x86_64::__m512; 16]) -> [std::arch::x86_64::__m512; 16] {
    use std::arch::x86_64::*;
    // Pairs of rows interleaved by 32 bits, then groups of four by 64 bits: u[4 i + m] then
    // holds, in 128-bit lane L, column 4 L + m of rows 4 i .. 4 i + 3.
    let mut t = [_mm512_setzero_ps(); 16];
    for i in (0..16).step_by(2) {
        t[i] = _mm512_unpacklo_ps(rows[i], rows[i + 1]);
        t[i + 1] = _mm512_unpackhi_ps(rows[i], rows[i + 1]);
    }
    let mut u = [_mm512_setzero_ps(); 16];
    for group in (0..16).step_by(4) {
        for half in 0..2 {
            let a = _mm512_castps_pd(t[group + half]);
            let b = _mm512_castps_pd(t[group + 2 + half]);
            u[group + 2 * half] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
            u[group + 2 * half + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        }
    }
    // Lane L of the four row groups into one vector: column 4 L + m.
    let mut out = [_mm512_setzero_ps(); 16];
    for m in 0..4 {
        let v0 = _mm512_shuffle_f32x4::<0x88>(u[m], u[4 + m]);
        let v1 = _mm512_shuffle_f32x4::<0xdd>(u[m], u[4 + m]);
        let v2 = _mm512_shuffle_f32x4::<0x88>(u[8 + m], u[12 + m]);
        let v3 = _mm512_shuffle_f32x4::<0xdd>(u[8 + m], u[12 + m]);
        out[m] = _mm512_shuffle_f32x4::<0x88>(v0, v2);
        out[8 + m] = _mm512_shuffle_f32x4::<0xdd>(v0, v2);
        out[4 + m] = _mm512_shuffle_f32x4::<0x88>(v1, v3);
        out[12 + m] = _mm512_shuffle_f32x4::<0xdd>(v1, v3);
    }
    out
}

/// The mask of the first `n` (at most 16) lanes.
fn mask(n: usize) -> u16 {
    if n >= 16 {
        u16::MAX
    } else {
        (1u16 << n) - 1
    }
}

/// The transformed weights `U = G g G^T` of every row `m < rows` (zero past the view's
/// rows), packed `[rows / 64][XI][depth][64]`; taps are read flipped when `flipped`.
fn transform_weights(
    w: &[f32],
    view: WeightView,
    flipped: bool,
    rows: usize,
    depth: usize,
) -> Result<Storage> {
    let needed = if view.rows == 0 || depth == 0 {
        0
    } else {
        (view.rows - 1) * view.m + (depth - 1) * view.k + 8 * view.t + 1
    };
    if w.len() < needed {
        return Err(Error::Invalid(format!(
            "internal: convolution weights hold {} values, {needed} expected",
            w.len()
        )));
    }
    let mut packed = Storage::uninit(DType::Float32, rows * XI * depth)?;
    let dst = SharedMut(packed.as_mut_slice::<f32>()?.as_mut_ptr());
    // Tasks of (block, run of `k`): one block is a whole layer's weights for 64 channels.
    let per_task = depth
        .div_ceil(4 * rayon::current_num_threads())
        .clamp(1, 64);
    let runs = depth.div_ceil(per_task);
    let gathers_fit = needed < i32::MAX as usize;
    (0..(rows / BLOCK) * runs).into_par_iter().for_each(|task| {
        let (block, run) = (task / runs, task % runs);
        let ks = run * per_task..((run + 1) * per_task).min(depth);
        let dst = dst.ptr();
        for k in ks {
            for group in 0..BLOCK / 16 {
                let m0 = block * BLOCK + 16 * group;
                // SAFETY: the task writes values (xi, k, m0..m0 + 16) of its block, which no
                // other task writes; `w` holds every tap of rows < view.rows (checked above).
                unsafe {
                    let at = dst.add((block * XI * depth + k) * BLOCK + 16 * group);
                    if gathers_fit {
                        transform_rows_avx512(w, view, flipped, (m0, k), at, depth * BLOCK);
                    } else {
                        transform_rows(w, view, flipped, (m0, k), at, depth * BLOCK);
                    }
                }
            }
        }
    });
    Ok(packed)
}

/// `U` of rows `m0..m0 + 16` (zero past the view's rows) at depth `k`: value `xi` of row
/// `m0 + i` goes to `dst[xi * xi_stride + i]`.
///
/// # Safety
/// `dst` is writable at those positions; `w` holds every tap of the rows that exist.
unsafe fn transform_rows(
    w: &[f32],
    view: WeightView,
    flipped: bool,
    (m0, k): (usize, usize),
    dst: *mut f32,
    xi_stride: usize,
) {
    for i in 0..16 {
        let m = m0 + i;
        let u = if m < view.rows {
            let src = &w[m * view.m + k * view.k..];
            let tap = |t: usize| src[if flipped { 8 - t } else { t } * view.t];
            transform_kernel(std::array::from_fn(tap))
        } else {
            [0.0; XI]
        };
        for (xi, value) in u.into_iter().enumerate() {
            *dst.add(xi * xi_stride + i) = value;
        }
    }
}

/// [`transform_rows`] with the 16 rows in the lanes (gathered taps).
///
/// # Safety
/// As [`transform_rows`]; every tap offset fits an `i32`.
#[target_feature(enable = "avx512f")]
unsafe fn transform_rows_avx512(
    w: &[f32],
    view: WeightView,
    flipped: bool,
    (m0, k): (usize, usize),
    dst: *mut f32,
    xi_stride: usize,
) {
    use std::arch::x86_64::*;
    let mut offsets = [0i32; 16];
    let mut lanes = 0u16;
    for (i, offset) in offsets.iter_mut().enumerate() {
        if m0 + i < view.rows {
            *offset = ((m0 + i) * view.m) as i32;
            lanes |= 1 << i;
        }
    }
    let idx = _mm512_loadu_si512(offsets.as_ptr().cast());
    let zero = _mm512_setzero_ps();
    let half = _mm512_set1_ps(0.5);
    let mut g = [zero; 9];
    for (t, value) in g.iter_mut().enumerate() {
        let tap = if flipped { 8 - t } else { t };
        let base = w.as_ptr().wrapping_add(k * view.k + tap * view.t);
        *value = _mm512_mask_i32gather_ps::<4>(zero, lanes, idx, base);
    }
    // G g (four rows of three), then (G g) G^T row by row.
    let mut cols = [[zero; 4]; 3];
    for (j, col) in cols.iter_mut().enumerate() {
        let (a, b, c) = (g[j], g[3 + j], g[6 + j]);
        let (sum, diff) = (_mm512_add_ps(a, c), b);
        *col = [
            a,
            _mm512_mul_ps(half, _mm512_add_ps(sum, diff)),
            _mm512_mul_ps(half, _mm512_sub_ps(sum, diff)),
            c,
        ];
    }
    let [first, middle, last] = cols;
    for (i, ((a, b), c)) in first.into_iter().zip(middle).zip(last).enumerate() {
        let sum = _mm512_add_ps(a, c);
        let row = [
            a,
            _mm512_mul_ps(half, _mm512_add_ps(sum, b)),
            _mm512_mul_ps(half, _mm512_sub_ps(sum, b)),
            c,
        ];
        for (j, value) in row.into_iter().enumerate() {
            _mm512_storeu_ps(dst.add((4 * i + j) * xi_stride), value);
        }
    }
}

/// `G g G^T` of one 3x3 kernel (row-major), with `G = [[1, 0, 0], [1/2, 1/2, 1/2],
/// [1/2, -1/2, 1/2], [0, 0, 1]]`.
fn transform_kernel(k: [f32; 9]) -> [f32; XI] {
    // The same order of operations as `transform_rows_avx512`.
    let side = |a: f32, b: f32, c: f32| [a, 0.5 * ((a + c) + b), 0.5 * ((a + c) - b), c];
    // G g: four rows of three.
    let cols: [[f32; 4]; 3] = std::array::from_fn(|j| side(k[j], k[3 + j], k[6 + j]));
    let mut u = [0.0; XI];
    for i in 0..4 {
        let row = side(cols[0][i], cols[1][i], cols[2][i]);
        u[4 * i..4 * i + 4].copy_from_slice(&row);
    }
    u
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct sum, in f64.
    fn reference(x: &[f32], w: &[f32], g: &Geom, p: &ConvParams) -> Vec<f64> {
        let mut out = vec![0.0f64; g.n * g.o * g.hw()];
        for n in 0..g.n {
            for o in 0..g.o {
                for y in 0..g.ho {
                    for xo in 0..g.wo {
                        let mut s = 0.0f64;
                        for c in 0..g.c {
                            for i in 0..3 {
                                for j in 0..3 {
                                    let (yi, xi) = (
                                        (y + i) as isize - p.padding[0] as isize,
                                        (xo + j) as isize - p.padding[1] as isize,
                                    );
                                    if yi < 0 || xi < 0 || yi >= g.h as isize || xi >= g.w as isize
                                    {
                                        continue;
                                    }
                                    let xv = x
                                        [((n * g.c + c) * g.h + yi as usize) * g.w + xi as usize]
                                        as f64;
                                    s += xv * w[((o * g.c + c) * 3 + i) * 3 + j] as f64;
                                }
                            }
                        }
                        out[((n * g.o + o) * g.ho + y) * g.wo + xo] = s;
                    }
                }
            }
        }
        out
    }

    /// The geometry and parameters of a 3x3 stride-1 convolution of `[n, c, h, w]` into
    /// `o` channels with `padding`.
    fn geometry(
        (n, c, h, w, o): (usize, usize, usize, usize, usize),
        padding: [usize; 2],
    ) -> (Geom, ConvParams) {
        let p = ConvParams {
            stride: [1, 1],
            padding,
            dilation: [1, 1],
            groups: 1,
        };
        let (ho, wo) = (h + 2 * padding[0] - 2, w + 2 * padding[1] - 2);
        (
            Geom::new(&[n, c, h, w], &[o, c, 3, 3], &[n, o, ho, wo], 1),
            p,
        )
    }

    fn values(len: usize, seed: u32) -> Vec<f32> {
        let mut state = seed.wrapping_mul(2654435761).wrapping_add(1);
        (0..len)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                (state % 2001) as f32 / 1000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn matches_the_direct_sum() {
        if !conv_tiles::available() {
            eprintln!("skipped: the Winograd kernel needs AVX-512");
            return;
        }
        // (n, c, h, w, o, padding): odd and even planes, partial channel blocks, padding
        // 0 to 2, a single tile, more tiles than one chunk.
        let cases = [
            (1, 3, 8, 8, 64, [1, 1]),
            (2, 5, 7, 9, 70, [1, 1]),
            (1, 16, 5, 6, 17, [0, 0]),
            (3, 8, 4, 4, 130, [2, 1]),
            (1, 4, 2, 2, 16, [1, 1]),
            (2, 32, 33, 31, 48, [1, 1]),
            // Wide rows: chunks inside one tile row copy only their columns.
            (1, 16, 4, 401, 64, [1, 1]),
        ];
        for (n, c, h, w, o, padding) in cases {
            let (g, p) = geometry((n, c, h, w, o), padding);
            let (ho, wo) = (g.ho, g.wo);
            let x = values(n * c * h * w, 1);
            let wt = values(o * c * 9, 2);
            let mut out = vec![f32::NAN; n * o * ho * wo];
            let view = WeightView::output_rows(o, c, 9);
            let ran = convolve(&x, (&wt, None, view, false), &g, &p, &mut out, true).unwrap();
            assert!(ran, "the kernel should take {:?}", (n, c, h, w, o));
            let want = reference(&x, &wt, &g, &p);
            for (i, (&got, &want)) in out.iter().zip(&want).enumerate() {
                let tol = 1e-5 * (1.0 + (c * 9) as f64).sqrt();
                assert!(
                    (got as f64 - want).abs() <= tol,
                    "case {:?} output {i}: {got} vs {want}",
                    (n, c, h, w, o)
                );
            }
        }
    }

    #[test]
    fn input_gradient_matches_the_direct_sum() {
        if !conv_tiles::available() {
            eprintln!("skipped: the Winograd kernel needs AVX-512");
            return;
        }
        for (n, c, h, w, o, padding) in [(2, 20, 7, 9, 70, [1, 1]), (1, 17, 6, 5, 64, [2, 0])] {
            let (g, p) = geometry((n, c, h, w, o), padding);
            let (ho, wo) = (g.ho, g.wo);
            let gy = values(n * o * ho * wo, 4);
            let wt = values(o * c * 9, 5);
            let (transposed, params) = input_gradient_geometry(&g, &p).unwrap();
            let view = WeightView::input_rows(c, 9);
            let mut dx = vec![f32::NAN; n * c * h * w];
            let ran = convolve(
                &gy,
                (&wt, None, view, true),
                &transposed,
                &params,
                &mut dx,
                true,
            )
            .unwrap();
            assert!(ran);
            // dx[n, c, y, x] = sum over (o, i, j) of gy[n, o, y - i + ph, x - j + pw] w[o, c, i, j].
            for ni in 0..n {
                for ci in 0..c {
                    for y in 0..h {
                        for x in 0..w {
                            let mut want = 0.0f64;
                            for oi in 0..o {
                                for i in 0..3 {
                                    for j in 0..3 {
                                        let (yo, xo) = (
                                            (y + padding[0]) as isize - i as isize,
                                            (x + padding[1]) as isize - j as isize,
                                        );
                                        if yo < 0
                                            || xo < 0
                                            || yo >= ho as isize
                                            || xo >= wo as isize
                                        {
                                            continue;
                                        }
                                        let g_at =
                                            ((ni * o + oi) * ho + yo as usize) * wo + xo as usize;
                                        let w_at = ((oi * c + ci) * 3 + i) * 3 + j;
                                        want += gy[g_at] as f64 * wt[w_at] as f64;
                                    }
                                }
                            }
                            let got = dx[((ni * c + ci) * h + y) * w + x] as f64;
                            let tol = 1e-5 * (1.0 + (o * 9) as f64).sqrt();
                            assert!(
                                (got - want).abs() <= tol,
                                "{got} vs {want} at {ni} {ci} {y} {x}"
                            );
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn vector_and_scalar_weight_transforms_agree() {
        if !conv_tiles::available() {
            eprintln!("skipped: needs AVX-512");
            return;
        }
        // 70 output channels (a partial second block), 5 input channels, both views.
        let (o, c) = (70, 5);
        let w = values(o * c * 9, 3);
        for (view, rows, flipped) in [
            (WeightView::output_rows(o, c, 9), o, false),
            (WeightView::input_rows(c, 9), c, true),
        ] {
            let depth = if rows == o { c } else { o };
            for m0 in (0..rows.next_multiple_of(16)).step_by(16) {
                for k in 0..depth {
                    let (mut a, mut b) = ([f32::NAN; 16 * XI], [f32::NAN; 16 * XI]);
                    // SAFETY: AVX-512 is available; both write 16 x XI values.
                    unsafe {
                        transform_rows(&w, view, flipped, (m0, k), a.as_mut_ptr(), 16);
                        transform_rows_avx512(&w, view, flipped, (m0, k), b.as_mut_ptr(), 16);
                    }
                    assert_eq!(a, b, "rows {m0}.., depth {k}");
                }
            }
        }
    }

    #[test]
    fn transpose16_transposes() {
        if !conv_tiles::available() {
            eprintln!("skipped: needs AVX-512");
            return;
        }
        use std::arch::x86_64::*;
        let values: Vec<f32> = (0..256).map(|i| i as f32).collect();
        let mut got = [[0.0f32; 16]; 16];
        // SAFETY: AVX-512 is available; every load and store is of 16 values in bounds.
        unsafe {
            let rows = std::array::from_fn(|p| _mm512_loadu_ps(values.as_ptr().add(16 * p)));
            for (k, column) in transpose16(rows).iter().enumerate() {
                _mm512_storeu_ps(got[k].as_mut_ptr(), *column);
            }
        }
        for (k, column) in got.iter().enumerate() {
            for (p, &v) in column.iter().enumerate() {
                assert_eq!(v, (16 * p + k) as f32);
            }
        }
    }

    #[test]
    fn transformed_kernel_of_a_delta_is_its_outer_product() {
        // g = delta at the centre: G g G^T = G[:,1] G[:,1]^T = (0, 1/2, -1/2, 0)^2.
        let mut k = [0.0; 9];
        k[4] = 1.0;
        let u = transform_kernel(k);
        let col = [0.0, 0.5, -0.5, 0.0];
        for i in 0..4 {
            for j in 0..4 {
                assert_eq!(u[4 * i + j], col[i] * col[j]);
            }
        }
    }
}
