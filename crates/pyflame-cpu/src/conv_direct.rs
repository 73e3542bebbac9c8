//! Stride-1 convolution as a sum of shifted GEMMs, without im2col.
//!
//! Every image's channel planes are zero-padded and laid end to end, one long row per
//! channel: `xp[c][n * ps + y * wp + x]` in padded coordinates. With stride 1, kernel tap
//! `(i, j)` of output pixel `q = n * ps + y * wp + x` reads `xp[c][q + i * dh * wp + j * dw]`,
//! so the contribution of one tap to every output of every image is a single GEMM whose
//! right-hand side is the padded input shifted by a constant. Outputs are computed on the
//! padded grid and the grid columns outside `ho x wo` are dropped (they are the price of the
//! method: `ho * wo / ps` of the work is useful, so it is only chosen when that is high).
//!
//! The same shift gives the input gradient as a sum over taps of `W_t^T @ dy` shifted the
//! other way (a gather, so column blocks can run in parallel without write conflicts), and
//! the weight gradient as one GEMM per tap whose inner dimension is every pixel of every image.

use crate::conv::{ConvFloat, ConvParams, Geom};
use crate::conv_tiles::{self, Scatter, Shifted, WeightView, TILE_COLS, TILE_ROWS};
use crate::kernels::copy::copy_short;
use crate::kernels::narrow;
use crate::pack_cache::WeightSource;
use pyflame_core::{Result, Storage};
use rayon::prelude::*;

/// Which convolution algorithm to use (`PYFLAME_CONV_ALGO`): `auto`, `direct` (the shifted
/// grid of this module wherever it applies), `pixels` (the channel-vectorized kernel of
/// `conv_pixels` wherever it applies), `winograd` (the F(2x2, 3x3) kernel of `conv_winograd`
/// wherever it applies, `auto` elsewhere) or `im2col`. A forced choice falls back to im2col
/// where its method does not apply.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Choice {
    Auto = 0,
    Direct = 1,
    Pixels = 2,
    Winograd = 3,
    Im2col = 4,
}

/// The algorithm `PYFLAME_CONV_ALGO` asks for, as read at the start of the latest
/// evaluation (see [`read_conv_settings`]; tests switch it between evaluations), or on every
/// call while no evaluation has run in the process (kernel benchmarks calling the
/// convolutions directly).
pub(crate) fn choice() -> Choice {
    settings().0
}

/// Whether `PYFLAME_CONV_WINOGRAD=0` keeps `auto` from choosing the Winograd kernel, read
/// as [`choice`] is.
pub(crate) fn winograd_disabled() -> bool {
    settings().1
}

/// Reads the convolution settings of the environment (`PYFLAME_CONV_ALGO`,
/// `PYFLAME_CONV_WINOGRAD`) for the convolutions that follow: the executor calls this once
/// per evaluation. Reading the environment takes a lock and a scan of every variable, and
/// a batch-1 ResNet-18 run read it about 80 times (~9 us).
pub(crate) fn read_conv_settings() {
    let (choice, no_winograd) = settings_from_env();
    SETTINGS.store(
        choice as u8 | if no_winograd { WINOGRAD_OFF } else { 0 },
        std::sync::atomic::Ordering::Relaxed,
    );
}

/// [`SETTINGS`] before [`read_conv_settings`] ran.
const SETTINGS_UNREAD: u8 = u8::MAX;
/// The bit of [`SETTINGS`] set when the Winograd kernel is turned off.
const WINOGRAD_OFF: u8 = 0x80;

/// The settings last read by [`read_conv_settings`]: the [`Choice`] in the low bits and
/// [`WINOGRAD_OFF`].
static SETTINGS: std::sync::atomic::AtomicU8 = std::sync::atomic::AtomicU8::new(SETTINGS_UNREAD);

fn settings() -> (Choice, bool) {
    match SETTINGS.load(std::sync::atomic::Ordering::Relaxed) {
        SETTINGS_UNREAD => settings_from_env(),
        bits => {
            let choice = [
                Choice::Auto,
                Choice::Direct,
                Choice::Pixels,
                Choice::Winograd,
                Choice::Im2col,
            ]
            .into_iter()
            .find(|c| *c as u8 == bits & !WINOGRAD_OFF)
            .unwrap_or(Choice::Auto);
            (choice, bits & WINOGRAD_OFF != 0)
        }
    }
}

fn settings_from_env() -> (Choice, bool) {
    let choice = match std::env::var("PYFLAME_CONV_ALGO").as_deref() {
        Ok("direct") => Choice::Direct,
        Ok("pixels") => Choice::Pixels,
        Ok("im2col") => Choice::Im2col,
        Ok("winograd") => Choice::Winograd,
        _ => Choice::Auto,
    };
    let no_winograd = std::env::var("PYFLAME_CONV_WINOGRAD").is_ok_and(|v| v.trim() == "0");
    (choice, no_winograd)
}

/// Smallest fraction of useful grid columns for which `auto` picks this method.
const MIN_EFFICIENCY: f64 = 0.7;
/// The same for the forward pass and the input gradient with the tiled kernel when the
/// channel-vectorized kernel of `conv_pixels` takes the problem: below it, that kernel (which
/// wastes nothing) is faster. (ResNet-18's batch-32 layers, single-threaded: equal on 32x32
/// planes, efficiency 0.94; pixels 15-35% faster on 16x16, 0.89, and 30% faster on 8x8.)
const MIN_EFFICIENCY_TILED: f64 = 0.92;

/// The efficiency threshold for a product the tiled kernel can run (`tiled`), given whether
/// the pixel kernel would take the problem instead.
fn min_efficiency(tiled: bool, pixels_take_it: bool) -> f64 {
    if tiled && pixels_take_it {
        MIN_EFFICIENCY_TILED
    } else {
        MIN_EFFICIENCY
    }
}

/// Layout of the padded grid shared by the three kernels.
#[derive(Clone, Copy, Debug)]
struct Grid {
    /// padded width (row length of the grid)
    wp: usize,
    /// padded plane size (`hp * wp`): distance between images on a channel row
    ps: usize,
    /// grid columns of one channel row (`n * ps`)
    cols: usize,
    /// `cols` rounded up to whole tiles: the row length of output grids
    ca: usize,
    /// the largest tap offset (slack needed before or after a row)
    slack: usize,
}

impl Grid {
    /// The grid for `g` and `p`, or `None` when the method does not apply (strides, groups,
    /// or output sizes that are not the stride-1 ones).
    fn new(g: &Geom, p: &ConvParams) -> Option<Grid> {
        if p.stride != [1, 1] || g.g != 1 || g.n == 0 || g.c == 0 || g.o == 0 {
            return None;
        }
        let (hp, wp) = (g.h + 2 * p.padding[0], g.w + 2 * p.padding[1]);
        let (span_h, span_w) = ((g.kh - 1) * p.dilation[0], (g.kw - 1) * p.dilation[1]);
        if hp < span_h + 1 || wp < span_w + 1 || g.ho != hp - span_h || g.wo != wp - span_w {
            return None;
        }
        // With "same" padding (the kernel reaches exactly the padding on each side) the
        // bottom padding of an image can be the top padding of the next one, and the right
        // padding of a row the left padding of the next row: planes of (h + ph) rows of
        // (w + pw) columns. Reads that run past a row or an image land in those zeros.
        let shared = span_h == 2 * p.padding[0] && span_w == 2 * p.padding[1];
        let (hp, wp) = if shared {
            (g.h + p.padding[0], g.w + p.padding[1])
        } else {
            (hp, wp)
        };
        let ps = hp * wp;
        let cols = g.n * ps;
        Some(Grid {
            wp,
            ps,
            cols,
            ca: cols.next_multiple_of(TILE_COLS),
            slack: span_h * wp + span_w,
        })
    }

    /// Row stride of the padded input: grid columns, then zeros that shifted reads reach.
    fn input_stride(&self) -> usize {
        self.ca + self.slack
    }

    /// Row stride of the gridded output gradient: `slack` leading zeros, then the grid.
    fn grad_stride(&self) -> usize {
        self.slack + self.ca
    }

    /// Every tap's column offset.
    fn offsets(&self, g: &Geom, p: &ConvParams) -> Vec<usize> {
        (0..g.kh * g.kw).map(|t| self.offset(t, g, p)).collect()
    }

    /// Column offset of kernel tap `t` (row-major over `kh x kw`).
    fn offset(&self, t: usize, g: &Geom, p: &ConvParams) -> usize {
        crate::conv_pixels::tap_offset(t, g, p, self.wp)
    }

    /// Columns of the grid per parallel block for a GEMM with `rows` output rows: the block
    /// of the output stays in the L2 cache, and there are a few blocks per thread.
    fn block(&self, rows: usize) -> usize {
        let fits_l2 = ((1usize << 18) / rows.max(1)).max(64);
        let per_thread = self.cols.div_ceil(4 * rayon::current_num_threads()).max(64);
        fits_l2.min(per_thread).next_multiple_of(16)
    }
}

/// The grid when `PYFLAME_CONV_ALGO` and the geometry allow the method. `thin` says a GEMM
/// would have the input channels as one of its dimensions (too thin for a network's RGB
/// stem; the tiled kernel does not have that problem).
fn plan(g: &Geom, p: &ConvParams, thin: bool, min_efficiency: f64) -> Option<Grid> {
    let choice = choice();
    if choice == Choice::Im2col || choice == Choice::Pixels {
        return None;
    }
    let grid = Grid::new(g, p)?;
    if choice == Choice::Direct {
        return Some(grid);
    }
    // Useful fraction of the computed grid columns (which are rounded up to whole tiles).
    let efficiency = (g.n * g.hw()) as f64 / grid.ca as f64;
    // Tiny channel counts (a network's RGB stem) make each tap's GEMM too thin.
    (efficiency >= min_efficiency && !(thin && g.c < 16)).then_some(grid)
}

/// A pointer that may be shared by tasks writing disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(pub(crate) *mut T);
// SAFETY: only used by tasks that write disjoint element ranges (documented at each use).
unsafe impl<T> Send for SharedMut<T> {}
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    /// The pointer (a method, so closures capture the `Send` wrapper, not the raw field).
    pub(crate) fn ptr(self) -> *mut T {
        self.0
    }
}

/// Strides of a matrix operand: (row stride, column stride), in elements.
type Strides = (isize, isize);

/// `dst (+)= lhs @ rhs` for strided `m x k` and `k x n` operands, single-threaded.
///
/// # Safety
/// Every operand pointer must cover the elements its shape and strides address, and `dst`
/// must not overlap `lhs` or `rhs` or any memory another thread writes at the same time.
#[allow(clippy::too_many_arguments)]
unsafe fn gemm_raw<T: ConvFloat>(
    (m, n, k): (usize, usize, usize),
    dst: *mut T,
    dst_s: Strides,
    accumulate: bool,
    lhs: *const T,
    lhs_s: Strides,
    rhs: *const T,
    rhs_s: Strides,
) {
    if m == 0 || n == 0 || k == 0 {
        return;
    }
    // gemm takes (column stride, row stride) pairs.
    gemm::gemm(
        m,
        n,
        k,
        dst,
        dst_s.1,
        dst_s.0,
        accumulate,
        lhs,
        lhs_s.1,
        lhs_s.0,
        rhs,
        rhs_s.1,
        rhs_s.0,
        T::from_f64(1.0),
        T::from_f64(1.0),
        false,
        false,
        false,
        gemm::Parallelism::None,
    )
}

/// `xp` [c][input_stride]: the zero-padded input planes of every image, then zeros.
fn pad_input<T: ConvFloat>(xs: &[T], g: &Geom, p: &ConvParams, grid: &Grid) -> Result<Storage> {
    pad_planes(xs, g, p, (grid.wp, grid.ps), grid.input_stride())
}

/// Padded inputs smaller than this are written by one thread: splitting a few microseconds
/// of copying costs more in hand-offs than it saves (batch-1 layers).
const PARALLEL_PAD_ELEMENTS: usize = 1 << 15;

/// `xp` [c][stride]: each image's channel plane zero-padded into `plane` elements of rows of
/// `width` (the image at row `ph`, column `pw`), images end to end, zeros after the last.
pub(crate) fn pad_planes<T: ConvFloat>(
    xs: &[T],
    g: &Geom,
    p: &ConvParams,
    (width, plane_len): (usize, usize),
    stride: usize,
) -> Result<Storage> {
    let mut buf = Storage::uninit(T::DTYPE, g.c * stride)?;
    write_padded(
        xs,
        g,
        p,
        (width, plane_len),
        stride,
        buf.as_mut_slice::<T>()?,
        false,
    );
    Ok(buf)
}

/// Writes [`pad_planes`]' layout into `values` (`g.c * stride` of them); with `zeroed` the
/// padding already holds zeros (a buffer of the same layout used before) and only the
/// image lines are copied.
fn write_padded<T: ConvFloat>(
    xs: &[T],
    g: &Geom,
    p: &ConvParams,
    (width, plane_len): (usize, usize),
    stride: usize,
    values: &mut [T],
    zeroed: bool,
) {
    let (ph, pw, plane) = (p.padding[0], p.padding[1], g.h * g.w);
    let copy_lines = |(ci, row): (usize, &mut [T])| {
        for (ni, padded) in row[..g.n * plane_len].chunks_mut(plane_len).enumerate() {
            let src = &xs[(ni * g.c + ci) * plane..][..plane];
            for (y, line) in src.chunks(g.w).enumerate() {
                copy_short(&mut padded[(ph + y) * width + pw..][..g.w], line);
            }
        }
    };
    if values.len() < PARALLEL_PAD_ELEMENTS {
        // One fill of the whole buffer, then the image lines: a fill per channel cost a
        // call per channel, which the 2x2 and 1x1 planes of deep layers at batch 1 (256
        // to 512 channels of 16 or 9 padded values) paid more for than for the copies.
        if !zeroed {
            values.fill(T::default());
        }
        values.chunks_mut(stride).enumerate().for_each(copy_lines);
    } else {
        values
            .par_chunks_mut(stride)
            .enumerate()
            .for_each(|(ci, row)| {
                // One fill of the whole row, then the image lines: the padding runs are
                // too short for a fill call each.
                if !zeroed {
                    row.fill(T::default());
                }
                copy_lines((ci, row));
            });
    }
}

/// The layout of a padded input (see [`PlaneInput`]): buffers of one layout are
/// interchangeable once their padding is zero.
#[derive(Clone, Copy, PartialEq, Eq)]
struct PadKey {
    dtype: pyflame_core::DType,
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    padding: [usize; 2],
}

thread_local! {
    /// Padded inputs kept by this thread for the next convolution of the same layout (the
    /// same layers run again at every inference): their padding is still zero, so only the
    /// image lines are copied. Making and zeroing them cost a batch-1 ResNet-18 ~10 us a
    /// run. A convolution takes its buffer out while it runs, so nested ones never share one.
    static KEPT_PADDED: std::cell::RefCell<Vec<(PadKey, Storage)>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// Most padded inputs a thread keeps (the oldest go first).
const KEPT_PADDED_MAX: usize = 8;

/// Largest padded input kept, in bytes (batch-1 layers; large ones are made anew).
const KEPT_PADDED_MAX_BYTES: usize = 256 << 10;

/// The input as the channel-vectorized kernels read it: a buffer, and the row width, the
/// distance between images and the distance between channels of its planes. Without
/// padding that is the `[N, C, H, W]` input itself (no copy); otherwise zero-padded planes
/// (see [`pad_planes`]), each channel's images end to end.
pub(crate) struct PlaneInput<'a, T> {
    padded: Option<Storage>,
    /// the layout of `padded`, when it goes back to [`KEPT_PADDED`] once used
    kept: Option<PadKey>,
    input: &'a [T],
    /// row width
    pub width: usize,
    /// elements from one image's plane to the next in a channel
    pub image_stride: usize,
    /// elements from one channel to the next
    pub channel_stride: usize,
}

impl<'a, T: ConvFloat> PlaneInput<'a, T> {
    /// The planes of `xs` for geometry `g` and padding `p.padding`.
    pub(crate) fn new(xs: &'a [T], g: &Geom, p: &ConvParams) -> Result<Self> {
        if p.padding == [0, 0] {
            let plane = g.h * g.w;
            return Ok(PlaneInput {
                padded: None,
                kept: None,
                input: xs,
                width: g.w,
                image_stride: g.c * plane,
                channel_stride: plane,
            });
        }
        let (hp, wp) = (g.h + 2 * p.padding[0], g.w + 2 * p.padding[1]);
        let plane = hp * wp;
        let stride = g.n * plane;
        let key = PadKey {
            dtype: T::DTYPE,
            n: g.n,
            c: g.c,
            h: g.h,
            w: g.w,
            padding: p.padding,
        };
        let keep = g.c * stride * T::DTYPE.size() <= KEPT_PADDED_MAX_BYTES;
        let reused = keep
            .then(|| {
                KEPT_PADDED
                    .try_with(|kept| {
                        let mut kept = kept.borrow_mut();
                        let at = kept.iter().position(|(k, _)| *k == key)?;
                        Some(kept.remove(at).1)
                    })
                    .ok()
                    .flatten()
            })
            .flatten();
        let padded = match reused {
            Some(mut buf) => {
                let values = buf.as_mut_slice::<T>()?;
                write_padded(xs, g, p, (wp, plane), stride, values, true);
                buf
            }
            None => pad_planes(xs, g, p, (wp, plane), stride)?,
        };
        Ok(PlaneInput {
            padded: Some(padded),
            kept: keep.then_some(key),
            input: xs,
            width: wp,
            image_stride: plane,
            channel_stride: g.n * plane,
        })
    }

    /// The values.
    pub(crate) fn values(&self) -> Result<&[T]> {
        match &self.padded {
            Some(buf) => buf.as_slice::<T>(),
            None => Ok(self.input),
        }
    }
}

impl<T> Drop for PlaneInput<'_, T> {
    fn drop(&mut self) {
        if let (Some(key), Some(buf)) = (self.kept, self.padded.take()) {
            // After the thread's locals are gone (thread exit) the buffer is just freed.
            let _ = KEPT_PADDED.try_with(|kept| {
                let mut kept = kept.borrow_mut();
                if kept.len() >= KEPT_PADDED_MAX {
                    kept.remove(0);
                }
                kept.push((key, buf));
            });
        }
    }
}

/// `dyg` [o][grad_stride]: `slack` zeros, then the output gradient on the padded grid (zero
/// at every grid position that is not an output), then zeros up to whole tiles.
fn grid_output_grad<T: ConvFloat>(gy: &[T], g: &Geom, grid: &Grid) -> Result<Storage> {
    let stride = grid.grad_stride();
    let mut buf = Storage::uninit(T::DTYPE, g.o * stride)?;
    let hw = g.hw();
    buf.as_mut_slice::<T>()?
        .par_chunks_mut(stride)
        .enumerate()
        .for_each(|(o, row)| {
            // One fill of the whole row, then the gradient's lines (as in `pad_planes`).
            row.fill(T::default());
            let planes = &mut row[grid.slack..grid.slack + grid.cols];
            for (ni, padded) in planes.chunks_mut(grid.ps).enumerate() {
                let src = &gy[(ni * g.o + o) * hw..][..hw];
                for (y, line) in src.chunks(g.wo).enumerate() {
                    copy_short(&mut padded[y * grid.wp..][..g.wo], line);
                }
            }
        });
    Ok(buf)
}

/// The f32 slices of `a` and `b` when the tiled kernel can run on them.
fn tiled<'a, T: ConvFloat>(a: &'a [T], b: &'a [T]) -> Option<(&'a [f32], &'a [f32])> {
    if !conv_tiles::available() {
        return None;
    }
    Some((T::as_f32(a)?, T::as_f32(b)?))
}

/// `out[m, q] = sum_{k, t} a[m, k, t] * b[k, q + taps[t]]` over the grid with one GEMM per
/// tap and block of columns; `out` has row stride `grid.ca`, and `a` is read through
/// `a_strides` ((m, k) strides at tap 0, taps adjacent in memory).
#[allow(clippy::too_many_arguments)]
fn gemm_products<T: ConvFloat>(
    (m, k): (usize, usize),
    taps: &[isize],
    a: &[T],
    a_strides: Strides,
    b: *const T,
    b_stride: usize,
    out: *mut T,
    grid: &Grid,
) {
    let out = SharedMut(out);
    let b = SharedMut(b.cast_mut());
    let block = grid.block(m);
    (0..grid.cols.div_ceil(block))
        .into_par_iter()
        .for_each(|blk| {
            let q0 = blk * block;
            let width = block.min(grid.cols - q0);
            for (t, &d) in taps.iter().enumerate() {
                // SAFETY: block `blk` writes only columns q0..q0 + width of `out`; the shifted
                // reads of `b` stay inside its rows (see the callers' layouts).
                unsafe {
                    gemm_raw(
                        (m, width, k),
                        out.ptr().add(q0),
                        (grid.ca as isize, 1),
                        t > 0,
                        a.as_ptr().add(t),
                        a_strides,
                        b.ptr().cast_const().offset(q0 as isize + d),
                        (b_stride as isize, 1),
                    )
                }
            }
        });
}

/// One shifted-grid product and where its results go: `out[image, m, y, x]` = grid value
/// `sum_{k, t} a[m, k, t] * b[k, q + taps[t]]` at grid position `(origin.0 + y, origin.1 + x)`
/// of `image`, for the `window` of positions.
struct ShiftedConv<'a, T> {
    /// output channels `m` and summed rows `k` of `b`
    rows: usize,
    depth: usize,
    /// column offset of each tap into `b`
    taps: Vec<isize>,
    /// how `a[m, k, t]` is read from the weight tensor (taps adjacent: `view.t == 1`)
    view: WeightView,
    /// the buffer holding `b`, where its row 0, column 0 is, and its row stride (shifts may
    /// read before `b_start`, so the pointer is derived from the whole buffer)
    b: &'a [T],
    b_start: usize,
    b_stride: usize,
    /// first grid row and column of the results, and their rows and columns
    origin: (usize, usize),
    window: (usize, usize),
}

impl<T: ConvFloat> ShiftedConv<'_, T> {
    /// Computes the product with the tiled kernel when `ws` is f32 on AVX-512 (results
    /// scattered straight into `out`), otherwise with one GEMM per tap into a grid that is
    /// then cropped into `out`.
    fn run(
        &self,
        grid: &Grid,
        images: usize,
        (ws, source): (&[T], Option<WeightSource<'_>>),
        out: &mut [T],
    ) -> Result<()> {
        let (wy, wx) = self.window;
        let area = wy * wx;
        if let Some((_, w)) = tiled(self.b, ws) {
            let rows = self.rows.next_multiple_of(TILE_ROWS);
            let packed = conv_tiles::pack_shared(
                w,
                source,
                self.view,
                (rows, TILE_ROWS),
                self.depth,
                self.taps.len(),
            )?;
            let problem = Shifted {
                rows,
                depth: self.depth,
                taps: &self.taps,
                packed: packed.as_slice::<f32>()?,
                b: self.b.as_ptr().wrapping_add(self.b_start).cast::<f32>(),
                b_stride: self.b_stride as isize,
                out: Scatter {
                    plane: grid.ps,
                    width: grid.wp,
                    origin: self.origin,
                    window: self.window,
                    images,
                    channels: self.rows,
                    dst: out.as_mut_ptr().cast::<f32>(),
                    image_stride: self.rows * area,
                    channel_stride: area,
                },
                cols: grid.ca,
            };
            // SAFETY: the callers' layouts give every row of `b` the columns a tap reaches
            // for q < ca (slack on the side the taps shift to), and the scatter addresses
            // exactly the [images, rows, window] elements of `out`.
            unsafe { conv_tiles::run(&problem) };
            return Ok(());
        }
        let mut grid_buf = Storage::uninit(T::DTYPE, self.rows * grid.ca)?;
        gemm_products(
            (self.rows, self.depth),
            &self.taps,
            ws,
            (self.view.m as isize, self.view.k as isize),
            self.b.as_ptr().wrapping_add(self.b_start),
            self.b_stride,
            grid_buf.as_mut_slice::<T>()?.as_mut_ptr(),
            grid,
        );
        let values = grid_buf.as_slice::<T>()?;
        let (oy, ox) = self.origin;
        out[..images * self.rows * area]
            .par_chunks_mut(area)
            .enumerate()
            .for_each(|(r, dst)| {
                let (image, m) = (r / self.rows, r % self.rows);
                let src = &values[m * grid.ca + image * grid.ps..][..grid.ps];
                for (y, line) in dst.chunks_mut(wx).enumerate() {
                    line.copy_from_slice(&src[(y + oy) * grid.wp + ox..][..wx]);
                }
            });
        Ok(())
    }
}

/// Forward convolution into `out` ([N, O, ho, wo]); `false` when the method does not apply.
pub(crate) fn forward<T: ConvFloat>(
    xs: &[T],
    ws: &[T],
    source: Option<WeightSource<'_>>,
    g: &Geom,
    p: &ConvParams,
    out: &mut [T],
) -> Result<bool> {
    let is_tiled = tiled(xs, ws).is_some();
    let threshold = min_efficiency(is_tiled, crate::conv_pixels::takes(g));
    let Some(grid) = plan(g, p, !is_tiled, threshold) else {
        return Ok(false);
    };
    let kk = g.kh * g.kw;
    let xp_buf = pad_input(xs, g, p, &grid)?;
    // y[o, q] = sum_{c, t} W[o, c, t] * xp[c, q + offset(t)]
    ShiftedConv {
        rows: g.o,
        depth: g.c,
        taps: grid.offsets(g, p).iter().map(|&d| d as isize).collect(),
        view: WeightView::output_rows(g.o, g.c, kk),
        b: xp_buf.as_slice::<T>()?,
        b_start: 0,
        b_stride: grid.input_stride(),
        origin: (0, 0),
        window: (g.ho, g.wo),
    }
    .run(&grid, g.n, (ws, source), out)?;
    Ok(true)
}

/// Input gradient into `dx` ([N, C, H, W]); `false` when the method does not apply.
pub(crate) fn backward_input<T: ConvFloat>(
    gy: &[T],
    ws: &[T],
    source: Option<WeightSource<'_>>,
    g: &Geom,
    p: &ConvParams,
    dx: &mut [T],
) -> Result<bool> {
    let pixels_take_it = crate::conv_pixels::input_gradient_geometry(g, p)
        .is_some_and(|(transposed, _)| crate::conv_pixels::takes(&transposed));
    let is_tiled = tiled(gy, ws).is_some();
    let Some(grid) = plan(g, p, !is_tiled, min_efficiency(is_tiled, pixels_take_it)) else {
        return Ok(false);
    };
    let kk = g.kh * g.kw;
    let dyg_buf = grid_output_grad(gy, g, &grid)?;
    // dxp[c, q] = sum_{o, t} W[o, c, t] * dyg[o, q - offset(t)]; the negative shifts read the
    // `slack` zeros that lead every row of `dyg`.
    ShiftedConv {
        rows: g.c,
        depth: g.o,
        taps: grid.offsets(g, p).iter().map(|&d| -(d as isize)).collect(),
        view: WeightView::input_rows(g.c, kk),
        b: dyg_buf.as_slice::<T>()?,
        b_start: grid.slack,
        b_stride: grid.grad_stride(),
        origin: (p.padding[0], p.padding[1]),
        window: (g.h, g.w),
    }
    .run(&grid, g.n, (ws, source), dx)?;
    Ok(true)
}

/// Weight gradient into `dw` ([O, C, kh, kw]); `false` when the method does not apply.
pub(crate) fn backward_weight<T: ConvFloat>(
    xs: &[T],
    gy: &[T],
    g: &Geom,
    p: &ConvParams,
    dw: &mut [T],
) -> Result<bool> {
    if let Some(done) = backward_weight_thin(xs, gy, g, p, dw)? {
        return Ok(done);
    }
    let Some(grid) = plan(g, p, true, MIN_EFFICIENCY) else {
        return Ok(false);
    };
    let xp_buf = pad_input(xs, g, p, &grid)?;
    let xp = xp_buf.as_slice::<T>()?;
    let dyg_buf = grid_output_grad(gy, g, &grid)?;
    let dyg = &dyg_buf.as_slice::<T>()?[grid.slack..];
    let (kk, x_stride, dy_stride) = (
        g.kh * g.kw,
        grid.input_stride() as isize,
        grid.grad_stride() as isize,
    );
    // The columns are split into one contiguous range per thread, each with its own
    // partial [kk, O, C]; a range is walked in blocks small enough for their `dyg` and `xp`
    // columns to stay in the L2 cache while every tap's GEMM reads them.
    let groups = rayon::current_num_threads().clamp(1, grid.cols.div_ceil(256));
    let span = grid.cols.div_ceil(groups);
    let block = ((1usize << 21) / (std::mem::size_of::<T>() * (g.o + g.c))).max(256);
    let part = g.o * g.c;
    let mut partial_buf = Storage::uninit(T::DTYPE, groups * kk * part)?;
    let partial = partial_buf.as_mut_slice::<T>()?;
    partial
        .par_chunks_mut(kk * part)
        .enumerate()
        .for_each(|(group, d)| {
            let start = (group * span).min(grid.cols);
            let end = (start + span).min(grid.cols);
            if start == end {
                d.fill(T::default());
            }
            for q0 in (start..end).step_by(block) {
                let depth = block.min(end - q0);
                for t in 0..kk {
                    let off = grid.offset(t, g, p);
                    // d[t, o, c] (+)= sum_q dyg[o, q] * xp[c, q + off] over the block.
                    // SAFETY: `d` is this group's own partial; reads stay inside `dyg` and
                    // `xp` (whose trailing `slack` zeros cover q + off).
                    unsafe {
                        gemm_raw(
                            (g.o, g.c, depth),
                            d.as_mut_ptr().add(t * part),
                            (g.c as isize, 1),
                            q0 > start,
                            dyg.as_ptr().add(q0),
                            (dy_stride, 1),
                            xp.as_ptr().add(q0 + off),
                            (1, x_stride),
                        )
                    }
                }
            }
        });
    let partial = &*partial;
    dw[..g.o * g.c * kk]
        .par_chunks_mut(kk)
        .enumerate()
        .for_each(|(oc, taps)| {
            for (t, v) in taps.iter_mut().enumerate() {
                let mut acc = T::default();
                for group in 0..groups {
                    acc += partial[(group * kk + t) * part + oc];
                }
                *v = acc;
            }
        });
    Ok(true)
}

/// Most input channels x taps for [`backward_weight_thin`].
const THIN_COLUMNS: usize = 32;

/// Weight gradient for few input channels (a network's RGB or grayscale stem), where a GEMM
/// would have only `C x kh x kw` columns: every weight-gradient entry `(o, c, t)` is one dot
/// product of output-gradient row `o` with input row `c` shifted by tap `t`, over the grid.
/// `None` when it does not apply (f64, no AVX-512, wider layers, strides, forced algorithms).
fn backward_weight_thin<T: ConvFloat>(
    xs: &[T],
    gy: &[T],
    g: &Geom,
    p: &ConvParams,
    dw: &mut [T],
) -> Result<Option<bool>> {
    let kk = g.kh * g.kw;
    if g.c * kk > THIN_COLUMNS
        || !narrow::available()
        || !matches!(choice(), Choice::Auto | Choice::Winograd)
    {
        return Ok(None);
    }
    let (Some(grid), Some(dw)) = (Grid::new(g, p), T::as_f32_mut(dw)) else {
        return Ok(None);
    };
    let xp_buf = pad_input(xs, g, p, &grid)?;
    let dyg_buf = grid_output_grad(gy, g, &grid)?;
    let (Some(xp), Some(dyg)) = (
        T::as_f32(xp_buf.as_slice::<T>()?),
        T::as_f32(dyg_buf.as_slice::<T>()?),
    ) else {
        return Ok(None);
    };
    let (x_stride, dy_stride) = (grid.input_stride(), grid.grad_stride());
    let shifted: Vec<&[f32]> = (0..g.c)
        .flat_map(|c| (0..kk).map(move |t| (c, t)))
        .map(|(c, t)| &xp[c * x_stride + grid.offset(t, g, p)..][..grid.cols])
        .collect();
    dw[..g.o * g.c * kk]
        .par_chunks_mut(g.c * kk)
        .enumerate()
        .for_each(|(o, out)| {
            let row = &dyg[o * dy_stride + grid.slack..][..grid.cols];
            narrow::dot_rows(row, &shifted, out);
        });
    Ok(Some(true))
}
