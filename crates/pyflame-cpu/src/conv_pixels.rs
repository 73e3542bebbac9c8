//! Convolution for any stride and dilation with the output channels in the vector lanes: a
//! tile holds 64 output channels x 6 output pixels in 24 AVX-512 registers and runs over
//! every input channel and kernel tap, broadcasting one input value per pixel. Pixels are
//! visited one by one, so there is no wasted work on padding or on skipped (strided)
//! positions: this is the kernel for small and mid-size planes (deep layers, batch 1), for
//! strided convolutions, where the shifted-grid kernel of `conv_direct` wastes columns, and,
//! through transposed and flipped weights, for the input gradient of stride-1 convolutions.

use crate::conv::{ConvFloat, ConvParams, Geom};
use crate::conv_direct::{choice, Choice, PlaneInput, SharedMut};
use crate::conv_tiles::{self, WeightView};
use crate::pack_cache::{self, PackSpec, Transform, WeightSource};
use pyflame_core::Result;
use rayon::prelude::*;

/// Output channels of a tile (four 16-lane vectors).
const TILE_CHANNELS: usize = 64;
/// Output pixels of a tile.
const TILE_PIXELS: usize = 6;

/// Most pixel tiles of one 64-channel block that run as one task sharing the weights (see
/// [`convolve`]).
const MAX_SHARED_TILES: usize = 4;
/// Weights streamed per depth chunk when tiles share them: small enough to stay in the L1
/// cache while every tile of the task reads them.
const SHARED_CHUNK_BYTES: usize = 24 * 1024;

/// Output pixels below which packing the weights costs more than the tiles save (batch-1
/// deep layers are bound by reading the weights; im2col's GEMM does that best).
const MIN_PIXELS: usize = 256;
/// Most input channels x taps: a tile streams `64 x depth` weights from the L2 cache for
/// only 6 pixels, which stops paying beyond some depth (512-channel 3x3 layers, 4608, are
/// still 10-40% faster than im2col's GEMM).
const MAX_DEPTH: usize = 4608;

/// Whether to use this kernel: f32 on AVX-512, one group, and, unless
/// `PYFLAME_CONV_ALGO=pixels` forces it, enough output channels to fill the lanes and
/// either packed weights that are reused (inference: packing is paid once, and the kernel
/// then streams each weight once per six pixels, which beats im2col on the small planes of
/// deep layers and batch 1) or a moderate depth and enough pixels. This includes 1x1
/// convolutions: measured on ResNet shapes at batch 32, 1.0-1.5x the speed of im2col's
/// GEMM (whose strided 1x1 case also gathers the input first).
fn applies(g: &Geom, reused: bool) -> bool {
    let pixels = g.n * g.hw();
    conv_tiles::available()
        && !matches!(choice(), Choice::Im2col | Choice::Direct)
        && g.g == 1
        && (choice() == Choice::Pixels
            || (g.o >= 48
                && ((reused && pixels < MIN_PIXELS)
                    || (g.c * g.kh * g.kw <= MAX_DEPTH && pixels >= MIN_PIXELS))))
        && pixels > 0
        && g.c > 0
}

/// Whether the kernel takes the convolution of geometry `g` whatever the state of the cache
/// of packed weights (used to let another kernel yield to this one).
pub(crate) fn takes(g: &Geom) -> bool {
    applies(g, false)
}

/// The geometry of the forward convolution that computes the input gradient of a stride-1
/// convolution of geometry `g` (see [`backward_input`]), if there is one.
pub(crate) fn input_gradient_geometry(g: &Geom, p: &ConvParams) -> Option<(Geom, ConvParams)> {
    let pad = |k: usize, d: usize, p: usize| ((k - 1) * d).checked_sub(p);
    if p.stride != [1, 1] || g.g != 1 || g.kh == 0 || g.kw == 0 {
        return None;
    }
    let padding = [
        pad(g.kh, p.dilation[0], p.padding[0])?,
        pad(g.kw, p.dilation[1], p.padding[1])?,
    ];
    let transposed = Geom {
        n: g.n,
        c: g.o,
        h: g.ho,
        w: g.wo,
        o: g.c,
        kh: g.kh,
        kw: g.kw,
        ho: g.h,
        wo: g.w,
        g: 1,
    };
    let params = ConvParams {
        stride: [1, 1],
        padding,
        dilation: p.dilation,
        groups: 1,
    };
    Some((transposed, params))
}

/// Offset of kernel tap `t` (row-major over `kh x kw`) from its window's first value, in
/// planes with rows of `width` values.
pub(crate) fn tap_offset(t: usize, g: &Geom, p: &ConvParams, width: usize) -> usize {
    (t / g.kw) * p.dilation[0] * width + (t % g.kw) * p.dilation[1]
}

/// Walks output pixels in order (image, row, column) and gives each one's window offset (its
/// first tap) in a channel of planes with rows of `width` values, `image_stride` apart (see
/// `PlaneInput`): one division to start, none per pixel.
#[derive(Clone, Copy)]
pub(crate) struct PixelCursor {
    image: usize,
    y: usize,
    x: usize,
    rows: usize,
    cols: usize,
    row_step: usize,
    col_step: usize,
    image_stride: usize,
}

impl PixelCursor {
    /// The cursor at flat output pixel `pixel` (`g.hw()` must not be 0).
    pub(crate) fn at(
        pixel: usize,
        g: &Geom,
        p: &ConvParams,
        (width, image_stride): (usize, usize),
    ) -> Self {
        let hw = g.hw().max(1);
        let (image, r) = (pixel / hw, pixel % hw);
        PixelCursor {
            image,
            y: r / g.wo.max(1),
            x: r % g.wo.max(1),
            rows: g.ho,
            cols: g.wo,
            row_step: p.stride[0] * width,
            col_step: p.stride[1],
            image_stride,
        }
    }

    /// The current pixel's window offset.
    pub(crate) fn source(&self) -> usize {
        self.image * self.image_stride + self.y * self.row_step + self.x * self.col_step
    }

    /// The current pixel's image and position in its output plane.
    fn position(&self) -> (usize, usize) {
        (self.image, self.y * self.cols + self.x)
    }

    /// Moves to the next pixel.
    pub(crate) fn advance(&mut self) {
        self.x += 1;
        if self.x == self.cols {
            self.x = 0;
            self.y += 1;
            if self.y == self.rows {
                self.y = 0;
                self.image += 1;
            }
        }
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
    let view = WeightView::output_rows(g.o, g.c, g.kh * g.kw);
    convolve(xs, (ws, source, view, false), g, p, out)
}

/// Input gradient of a stride-1 convolution into `dx` ([N, C, H, W]); `false` when the
/// kernel does not apply. It is the forward convolution of the output gradient with the
/// weights transposed (input and output channels swapped) and flipped (tap `(i, j)` at
/// `(kh - 1 - i, kw - 1 - j)`), padded by `(k - 1) * dilation - padding`.
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
    let view = WeightView::input_rows(g.c, g.kh * g.kw);
    convolve(gy, (ws, source, view, true), &transposed, &params, dx)
}

/// The convolution of `xs` with the weights `ws` read through `view` (taps in reverse order
/// when `flipped`), for the geometry `g` of the convolution computed.
fn convolve<T: ConvFloat>(
    xs: &[T],
    (ws, source, view, flipped): (&[T], Option<WeightSource<'_>>, WeightView, bool),
    g: &Geom,
    p: &ConvParams,
    out: &mut [T],
) -> Result<bool> {
    let Some(w) = T::as_f32(ws) else {
        return Ok(false);
    };
    let kk = g.kh * g.kw;
    let rows = g.o.next_multiple_of(TILE_CHANNELS);
    let spec = PackSpec {
        view,
        rows,
        block_rows: TILE_CHANNELS,
        depth: g.c,
        taps: kk,
        transform: Transform::None,
    };
    if !applies(g, pack_cache::note_use(source, &spec) > 0) {
        return Ok(false);
    }
    let planes = PlaneInput::new(xs, g, p)?;
    let wp = planes.width;
    let Some(xp) = T::as_f32(planes.values()?) else {
        return Ok(false);
    };
    let packed_buf = pack_cache::get_or_pack(source, spec, || {
        conv_tiles::pack(w, view, (rows, TILE_CHANNELS), g.c, kk)
    })?;
    let packed = packed_buf.as_slice::<f32>()?;
    let taps: Vec<usize> = (0..kk)
        .map(|t| if flipped { kk - 1 - t } else { t })
        .map(|t| tap_offset(t, g, p, wp))
        .collect();
    let hw = g.hw();
    let pixels = g.n * hw;
    // Offset of a pixel's channel-0 value in `out`.
    let target = |(image, at): (usize, usize)| image * g.o * hw + at;
    let tiles = pixels.div_ceil(TILE_PIXELS);
    let blocks = rows / TILE_CHANNELS;
    let threads = rayon::current_num_threads();
    // A few tiles per block and a block per thread (batch-1 layers of a few pixels, such as
    // ResNet's 4x4 maps): one task per block, whose tiles take turns on each chunk of the
    // block's weights while it is in L1, so the weights are read from L3 once instead of
    // once per tile (and from L2 after that).
    let shared = (2..=MAX_SHARED_TILES).contains(&tiles) && blocks >= threads;
    let per_task = if shared {
        tiles
    } else {
        tiles.div_ceil((4 * threads).div_ceil(blocks)).clamp(1, 64)
    };
    let chunks = tiles.div_ceil(per_task);
    let dst = SharedMut(out.as_mut_ptr().cast::<f32>());
    let plane_stride = planes.channel_stride;
    (0..blocks * chunks).into_par_iter().for_each(|task| {
        let (block, chunk) = (task / chunks, task % chunks);
        let a = &packed[block * g.c * kk * TILE_CHANNELS..][..g.c * kk * TILE_CHANNELS];
        let first_tile = chunk * per_task;
        if shared {
            let cursor = PixelCursor::at(first_tile * TILE_PIXELS, g, p, (wp, planes.image_stride));
            let (dst, o0) = (dst.ptr(), block * TILE_CHANNELS);
            let shared_args = SharedTiles {
                a,
                taps: &taps,
                b: xp,
                b_stride: plane_stride,
                pixels,
                first_tile,
                tiles: tiles - first_tile,
            };
            // SAFETY: as for the tiles below: `a` is this block's packed weights, the
            // sources lie inside the padded planes, and this task alone writes channels
            // `o0..o0 + channels` of its pixels, inside the output.
            unsafe {
                shared_tiles(
                    &shared_args,
                    g,
                    cursor,
                    |position| dst.add(target(position) + o0 * hw),
                    (hw, TILE_CHANNELS.min(g.o - o0)),
                )
            };
            return;
        }
        let mut cursor = PixelCursor::at(first_tile * TILE_PIXELS, g, p, (wp, planes.image_stride));
        let o0 = block * TILE_CHANNELS;
        // A local copy of the pointer: through the closure's capture it was reloaded for
        // every store (the stores might have changed it, as far as the compiler knew).
        let dst = dst.ptr();
        for t in first_tile..((chunk + 1) * per_task).min(tiles) {
            let count = TILE_PIXELS.min(pixels - t * TILE_PIXELS);
            let (tile_sources, positions) = tile_pixels(&mut cursor, count);
            let args = TileArgs {
                a: a.as_ptr(),
                taps: &taps,
                b: xp.as_ptr(),
                b_stride: plane_stride,
                src: &tile_sources,
            };
            // SAFETY: `a` is this block's `g.c * kk * 64` packed weights; every source
            // offset plus every tap offset lies inside the pixel's (padded) plane, which
            // `PlaneInput` holds for all `c` channels `plane_stride` apart; the (pixel,
            // channel) pairs written are distinct across tasks and inside the [N, O, ho, wo]
            // output.
            unsafe {
                finish_tile(
                    (count, &args),
                    ((0, g.c), None),
                    &positions,
                    |position| dst.add(target(position) + o0 * hw),
                    (hw, TILE_CHANNELS.min(g.o - o0)),
                )
            };
        }
    });
    Ok(true)
}

/// Where a tile's results go.
enum Target<'a> {
    /// `[pixel][channel]`, for the caller to scatter
    Tile(&'a mut [[f32; TILE_CHANNELS]; TILE_PIXELS]),
    /// Consecutive pixels of channel planes: pixel `p` of channel `j < channels` goes to
    /// `dst[j * plane + p]`.
    Planes {
        dst: *mut f32,
        plane: usize,
        channels: usize,
    },
}

/// What a tile reads: packed weights `a` (`taps.len() * 64` values per input channel), the
/// padded input `b` (row `c` at `c * b_stride`), each tap's offset, and each pixel's offset.
struct TileArgs<'a> {
    a: *const f32,
    taps: &'a [usize],
    b: *const f32,
    b_stride: usize,
    src: &'a [usize; TILE_PIXELS],
}

/// Input channels `c0..c1` of a tile of `pixels` pixels: starts from the partial sums in
/// the carry buffer when `carry` is `Some((buffer, true))` (from zero otherwise), and ends
/// by writing to `out`, or without `out` to the carry buffer.
///
/// # Safety
/// As [`tile_n`]; a carry buffer holds `TILE_PIXELS * TILE_CHANNELS` values.
unsafe fn tile_part(
    pixels: usize,
    args: &TileArgs<'_>,
    range: (usize, usize),
    carry: Carry,
    out: Option<Target<'_>>,
) {
    match pixels {
        1 => tile_n::<1>(args, range, carry, out),
        2 => tile_n::<2>(args, range, carry, out),
        3 => tile_n::<3>(args, range, carry, out),
        4 => tile_n::<4>(args, range, carry, out),
        5 => tile_n::<5>(args, range, carry, out),
        _ => tile_n::<TILE_PIXELS>(args, range, carry, out),
    }
}

/// A tile's carried partial sums: the buffer, and whether to start from them.
type Carry = Option<(*mut f32, bool)>;

/// The tiles of one task that share its block's weights (see [`convolve`]).
struct SharedTiles<'a> {
    /// this block's packed weights
    a: &'a [f32],
    taps: &'a [usize],
    /// the padded input planes, channel `c` at `c * b_stride`
    b: &'a [f32],
    b_stride: usize,
    /// pixels of the whole output
    pixels: usize,
    first_tile: usize,
    tiles: usize,
}

/// Runs the task's tiles chunk of input channels by chunk, every tile on each chunk of
/// weights in turn, with the partial sums kept between chunks; `dst(position)` is where the
/// output pixel at `position` has its first channel's value (channels `plane` apart,
/// `channels` of them): a tile whose pixels lie in one image is stored from its first
/// pixel as a [`Target::Planes`], other tiles pixel by pixel.
///
/// # Safety
/// As [`tile_n`] for every tile; the destinations are this task's alone.
unsafe fn shared_tiles(
    t: &SharedTiles<'_>,
    g: &Geom,
    mut cursor: PixelCursor,
    dst: impl Fn((usize, usize)) -> *mut f32,
    (plane, channels): (usize, usize),
) {
    let tiles = t.tiles.min(MAX_SHARED_TILES);
    let mut sources = [[0usize; TILE_PIXELS]; MAX_SHARED_TILES];
    let mut positions = [[(0usize, 0usize); TILE_PIXELS]; MAX_SHARED_TILES];
    let mut counts = [0usize; MAX_SHARED_TILES];
    for k in 0..tiles {
        counts[k] = TILE_PIXELS.min(t.pixels - (t.first_tile + k) * TILE_PIXELS);
        (sources[k], positions[k]) = tile_pixels(&mut cursor, counts[k]);
    }
    let mut carry = [[0.0f32; TILE_PIXELS * TILE_CHANNELS]; MAX_SHARED_TILES];
    let step = (SHARED_CHUNK_BYTES / (t.taps.len() * TILE_CHANNELS * 4)).max(1);
    let mut c0 = 0;
    while c0 < g.c {
        let c1 = (c0 + step).min(g.c);
        for k in 0..tiles {
            let args = TileArgs {
                a: t.a.as_ptr(),
                taps: t.taps,
                b: t.b.as_ptr(),
                b_stride: t.b_stride,
                src: &sources[k],
            };
            let carry_k = Some((carry[k].as_mut_ptr(), c0 > 0));
            if c1 < g.c {
                tile_part(counts[k], &args, (c0, c1), carry_k, None);
            } else {
                finish_tile(
                    (counts[k], &args),
                    ((c0, c1), carry_k),
                    &positions[k],
                    &dst,
                    (plane, channels),
                );
            }
        }
        c0 = c1;
    }
}

/// Each pixel's window offset and output position for the next tile of `count` pixels (a
/// short tile repeats its last pixel's window, whose results are not stored).
fn tile_pixels(
    cursor: &mut PixelCursor,
    count: usize,
) -> ([usize; TILE_PIXELS], [(usize, usize); TILE_PIXELS]) {
    let mut sources = [0usize; TILE_PIXELS];
    let mut positions = [(0usize, 0usize); TILE_PIXELS];
    for i in 0..count {
        sources[i] = cursor.source();
        positions[i] = cursor.position();
        cursor.advance();
    }
    for i in count..TILE_PIXELS {
        sources[i] = sources[count - 1];
    }
    (sources, positions)
}

/// Runs the last input channels of a tile (`count`, `args`, `range` and `carry` as for
/// [`tile_part`]) and stores it: `dst(position)` is where the output pixel at `position`
/// has its first channel's value (`channels` channels `plane` apart). A tile whose pixels
/// lie in one image goes straight from the registers to one run per channel; others go
/// through a local tile, pixel by pixel.
///
/// # Safety
/// As [`tile_part`]; every destination is writable.
unsafe fn finish_tile(
    (count, args): (usize, &TileArgs<'_>),
    (range, carry): ((usize, usize), Carry),
    positions: &[(usize, usize); TILE_PIXELS],
    dst: impl Fn((usize, usize)) -> *mut f32,
    (plane, channels): (usize, usize),
) {
    if positions[0].0 == positions[count - 1].0 {
        let target = Target::Planes {
            dst: dst(positions[0]),
            plane,
            channels,
        };
        tile_part(count, args, range, carry, Some(target));
        return;
    }
    let mut tile = [[0.0f32; TILE_CHANNELS]; TILE_PIXELS];
    tile_part(count, args, range, carry, Some(Target::Tile(&mut tile)));
    for (values, &position) in tile.iter().zip(positions).take(count) {
        let to = dst(position);
        for (j, &v) in values.iter().take(channels).enumerate() {
            *to.add(j * plane) = v;
        }
    }
}

/// The tile for `P` pixels (rows `P..` of a [`Target::Tile`] are left as they were).
///
/// # Safety
/// `args.b + c * args.b_stride + src[p] + taps[t]` is readable for every `c < c1`, pixel
/// `p < P` and tap, and `args.a` holds the weights described on [`TileArgs`]; a
/// [`Target::Planes`] destination is writable at the `P` values of each of its channels.
/// Needs AVX-512 (F, VL, DQ).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl,avx512dq")]
unsafe fn tile_n<const P: usize>(
    args: &TileArgs<'_>,
    (c0, c1): (usize, usize),
    carry: Carry,
    out: Option<Target<'_>>,
) {
    let TileArgs {
        a,
        taps,
        b,
        b_stride,
        src,
    } = *args;
    use std::arch::x86_64::*;
    let mut acc = [[_mm512_setzero_ps(); 4]; P];
    if let Some((sums, true)) = carry {
        for (p, acc_p) in acc.iter_mut().enumerate() {
            for (v, acc_v) in acc_p.iter_mut().enumerate() {
                *acc_v = _mm512_loadu_ps(sums.add(p * TILE_CHANNELS + 16 * v));
            }
        }
    }
    let mut ap = a.add(c0 * taps.len() * TILE_CHANNELS);
    for c in c0..c1 {
        let row = b.add(c * b_stride);
        let px: [*const f32; P] = std::array::from_fn(|i| row.add(src[i]));
        for &d in taps {
            conv_tiles::prefetch_weights(ap);
            let wv = [
                _mm512_loadu_ps(ap),
                _mm512_loadu_ps(ap.add(16)),
                _mm512_loadu_ps(ap.add(32)),
                _mm512_loadu_ps(ap.add(48)),
            ];
            for (pixel, acc_p) in px.iter().zip(acc.iter_mut()) {
                let x = _mm512_set1_ps(*pixel.add(d));
                for (acc_v, w) in acc_p.iter_mut().zip(wv) {
                    *acc_v = _mm512_fmadd_ps(w, x, *acc_v);
                }
            }
            ap = ap.add(TILE_CHANNELS);
        }
    }
    let Some(out) = out else {
        if let Some((sums, _)) = carry {
            for (p, acc_p) in acc.iter().enumerate() {
                for (v, acc_v) in acc_p.iter().enumerate() {
                    _mm512_storeu_ps(sums.add(p * TILE_CHANNELS + 16 * v), *acc_v);
                }
            }
        }
        return;
    };
    match out {
        Target::Tile(tile) => {
            for (dst, acc_p) in tile.iter_mut().zip(&acc) {
                for (v, acc_v) in acc_p.iter().enumerate() {
                    _mm512_storeu_ps(dst.as_mut_ptr().add(16 * v), *acc_v);
                }
            }
        }
        Target::Planes {
            dst,
            plane,
            channels,
        } => {
            // A copy, so that the accumulators themselves never have their address taken.
            let values = acc;
            crate::conv_store::store_planes::<P>(&values, dst, plane, channels);
        }
    }
}
