//! Pooling kernels (max, average, adaptive average) and their gradients, parallel over the
//! N*C planes.

use crate::fused::materialize;
use crate::kernels::simd::multiversion;
use pyflame_core::{numel, DType, Element, Result, Storage};
use pyflame_ir::Value;
use rayon::prelude::*;
use std::sync::Arc;

/// Pooling window hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct PoolParams {
    /// (kh, kw)
    pub kernel: [usize; 2],
    /// (sh, sw)
    pub stride: [usize; 2],
    /// (ph, pw)
    pub padding: [usize; 2],
    /// (dh, dw)
    pub dilation: [usize; 2],
    /// average pooling: divide by the full window including padding
    pub count_include_pad: bool,
}

fn acc_dtype(d: DType) -> DType {
    if d == DType::Float64 {
        DType::Float64
    } else {
        DType::Float32
    }
}

fn finish(storage: Storage, shape: &[usize], dtype: DType) -> Result<Value> {
    materialize(&Value::contiguous(Arc::new(storage), shape.to_vec()), dtype)
}

fn planes<T: Send>(data: &mut [T], plane: usize, f: impl Fn(usize, &mut [T]) + Sync + Send) {
    if plane == 0 {
        return;
    }
    if data.len() >= 1 << 14 {
        // Several planes per task: rayon's per-task cost dwarfs a small plane's work.
        let per_task = (1usize << 13).div_ceil(plane).max(1);
        data.par_chunks_mut(plane)
            .with_min_len(per_task)
            .enumerate()
            .for_each(|(i, p)| f(i, p));
    } else {
        data.chunks_mut(plane)
            .enumerate()
            .for_each(|(i, p)| f(i, p));
    }
}

/// Window rows (or columns) of output index `o`: input positions, `None` for padding.
#[inline]
fn window(
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    size: usize,
) -> impl Iterator<Item = Option<usize>> {
    (0..k).map(move |i| {
        let p = (o * stride + i * dil) as isize - pad as isize;
        (p >= 0 && (p as usize) < size).then_some(p as usize)
    })
}

/// The valid kernel taps `[k0, k1)` of output index `o` and the input position of tap 0
/// (which may be negative): taps outside the input (padding) are skipped up front.
#[inline(always)]
fn taps(
    o: usize,
    k: usize,
    stride: usize,
    pad: usize,
    dil: usize,
    size: usize,
) -> (usize, usize, isize) {
    let base = (o * stride) as isize - pad as isize;
    let k0 = if base < 0 {
        ((-base) as usize).div_ceil(dil)
    } else {
        0
    };
    let last = size as isize - 1 - base;
    let k1 = if last < 0 {
        0
    } else {
        (last as usize / dil + 1).min(k)
    };
    (k0, k1.max(k0), base)
}

/// Index (within a plane) of the max of each window, or `usize::MAX` for an all-padding one.
/// NaN wins, like PyTorch.
fn argmax_plane<T: Element>(
    x: &[T],
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    p: &PoolParams,
    out: &mut [usize],
) {
    let [kh, kw] = p.kernel;
    let [sh, sw] = p.stride;
    let [ph, pw] = p.padding;
    let [dh, dw] = p.dilation;
    for oy in 0..ho {
        let (y0, y1, ybase) = taps(oy, kh, sh, ph, dh, h);
        for ox in 0..wo {
            let (x0, x1, xbase) = taps(ox, kw, sw, pw, dw, w);
            let mut best = usize::MAX;
            let mut best_v = T::default();
            'window: for ky in y0..y1 {
                let row = (ybase + (ky * dh) as isize) as usize * w;
                for kx in x0..x1 {
                    let j = row + (xbase + (kx * dw) as isize) as usize;
                    let v = x[j];
                    #[allow(clippy::eq_op)]
                    let nan = v != v;
                    if best == usize::MAX || v > best_v || nan {
                        best = j;
                        best_v = v;
                        if nan {
                            break 'window;
                        }
                    }
                }
            }
            out[oy * wo + ox] = best;
        }
    }
}

/// True for the common non-overlapping 2x2 window with stride 2 (no padding or dilation)
/// whose windows all lie inside the `h x w` input (not so with `ceil_mode` on odd sizes),
/// which has a branch-light path.
fn is_2x2(p: &PoolParams, (h, w): (usize, usize), (ho, wo): (usize, usize)) -> bool {
    p.kernel == [2, 2]
        && p.stride == [2, 2]
        && p.padding == [0, 0]
        && p.dilation == [1, 1]
        && 2 * ho <= h
        && 2 * wo <= w
}

/// The larger of `a` and `b`; a NaN wins (PyTorch's max pooling propagates NaN). A select,
/// so loops over it vectorize.
#[inline(always)]
fn nan_max<T: Element>(a: T, b: T) -> T {
    #[allow(clippy::eq_op)]
    let a_nan = a != a;
    // `|`, not `||`: both sides are cheap, and no short-circuit keeps it branch-free.
    if (a > b) | a_nan {
        a
    } else {
        b
    }
}

/// Gradient of one row of 2x2 windows: each window's max, then the first tap equal to it
/// (NaN-aware) gets `g`, the other taps 0. Selects only, so the loop vectorizes.
#[inline(always)]
fn grad_rows_2x2_body<const FMA: bool, T: Element>(
    r0: &[T],
    r1: &[T],
    g: &[T],
    top: &mut [T],
    bottom: &mut [T],
) {
    let n = g.len();
    let (r0, r1) = (&r0[..2 * n], &r1[..2 * n]);
    let (top, bottom) = (&mut top[..2 * n], &mut bottom[..2 * n]);
    let z = T::default();
    for ox in 0..n {
        let (a, b, c, d) = (r0[2 * ox], r0[2 * ox + 1], r1[2 * ox], r1[2 * ox + 1]);
        let m = nan_max(nan_max(a, b), nan_max(c, d));
        #[allow(clippy::eq_op)]
        let m_nan = m != m;
        #[allow(clippy::eq_op)]
        // bitwise `|` / `&`: data-dependent short-circuits became branches that random
        // data mispredicts half the time
        let (s0, s1, s2) = (
            (a == m) | ((a != a) & m_nan),
            (b == m) | ((b != b) & m_nan),
            (c == m) | ((c != c) & m_nan),
        );
        let v = g[ox];
        top[2 * ox] = if s0 { v } else { z };
        top[2 * ox + 1] = if !s0 & s1 { v } else { z };
        bottom[2 * ox] = if !s0 & !s1 & s2 { v } else { z };
        bottom[2 * ox + 1] = if !s0 & !s1 & !s2 { v } else { z };
    }
}

/// Gradient of a whole plane of 2x2 windows (`wo` per row) into `dx` (rows of `w`; rows
/// and columns past the windows are left as they are).
#[inline(always)]
fn grad_plane_2x2_body<const FMA: bool, T: Element>(
    plane: &[T],
    g: &[T],
    dx: &mut [T],
    w: usize,
    wo: usize,
) {
    for (oy, g_row) in g.chunks_exact(wo.max(1)).enumerate() {
        let (top, rest) = dx[2 * oy * w..].split_at_mut(w);
        let bottom = &mut rest[..w];
        grad_rows_2x2_body::<FMA, T>(
            &plane[2 * oy * w..][..2 * wo],
            &plane[(2 * oy + 1) * w..][..2 * wo],
            g_row,
            top,
            bottom,
        );
    }
}

multiversion! {
    /// See [`grad_plane_2x2_body`].
    fn grad_plane_2x2<T: Element>(plane: &[T], g: &[T], dx: &mut [T], w: usize, wo: usize) = grad_plane_2x2_body;
}

/// Max of every window of one plane into `out` (`ho x wo`): for each output row, the max
/// over its window rows along the whole input width (contiguous, so it vectorizes), then
/// over each window's columns of that row. All-padding windows give -inf; NaN wins.
#[inline(always)]
fn max_plane_separable_body<const FMA: bool, T: PoolElement>(
    planes: &[T],
    windows: &Windows,
    out: &mut [T],
) {
    let (h, w, wo) = (windows.height, windows.width, windows.cols.len());
    let out_plane = windows.rows.len() * wo;
    let [dh, dw] = windows.dilation;
    let ninf = T::from_f64(f64::NEG_INFINITY);
    // Rows first: for every output row of a plane, the max over its window rows along the
    // whole width (contiguous, so it vectorizes) into `column_max`; then the taps of each
    // window along those rows. The two phases run plane by plane, so the second reads rows
    // whose stores have completed (a load right after narrower stores to the same bytes
    // waits for them). `ROW_SLACK` readable values follow for the vectorized stride-2 pass.
    let ho = windows.rows.len();
    // Each row's column maxes sit between `ROW_PAD` values of -inf on either side: the
    // padding of 3-wide stride-2 windows reads them, so every such window takes the
    // vectorized pass.
    let pitch = w + 2 * ROW_PAD;
    let mut buf = vec![ninf; ho * pitch + ROW_SLACK];
    if h * w == 0 {
        // Every window reads only padding.
        out.fill(ninf);
        return;
    }
    for (plane, out) in planes
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(out_plane))
    {
        for (row_buf, &(y0, y1, ybase)) in buf.chunks_exact_mut(pitch).zip(&windows.rows) {
            let column_max = &mut row_buf[ROW_PAD..ROW_PAD + w];
            let row = |ky: usize| {
                let r = (ybase + (ky * dh) as isize) as usize;
                &plane[r * w..(r + 1) * w]
            };
            // Write-only passes of up to three rows: a conditional update in place would be a
            // masked store, which the next row's loads cannot forward from.
            match y1 - y0 {
                0 => column_max.fill(ninf),
                1 => column_max.copy_from_slice(row(y0)),
                2 => {
                    let (a, b) = (row(y0), row(y0 + 1));
                    for (d, (&a, &b)) in column_max.iter_mut().zip(a.iter().zip(b)) {
                        *d = nan_max(a, b);
                    }
                }
                _ => {
                    let (a, b, c) = (row(y0), row(y0 + 1), row(y0 + 2));
                    for (d, ((&a, &b), &c)) in column_max.iter_mut().zip(a.iter().zip(b).zip(c)) {
                        *d = nan_max(a, nan_max(b, c));
                    }
                }
            }
            for ky in (y0 + 3)..y1 {
                for (d, &v) in column_max.iter_mut().zip(row(ky)) {
                    *d = nan_max(v, *d);
                }
            }
        }
        for (oy, dst) in out.chunks_exact_mut(wo.max(1)).enumerate() {
            let padded_row = &buf[oy * pitch..];
            let row_buf = &padded_row[ROW_PAD..];
            // Windows of 3 columns at stride 2 (reading the -inf around the row where they
            // reach the padding): vectorized where the CPU allows.
            if matches!(windows.stride2, Some(shift) if T::max3_stride2(padded_row, shift, dst)) {
                continue;
            }
            // Other windows with their taps in a register (a read-modify-write of `dst` per
            // tap would chain every tap through memory).
            for (d, &(x0, x1, xbase)) in dst.iter_mut().zip(&windows.cols) {
                let mut m = ninf;
                for kx in x0..x1 {
                    m = nan_max(row_buf[(xbase + (kx * dw) as isize) as usize], m);
                }
                *d = m;
            }
        }
    }
}

/// Values a row buffer holds past the row, so that the vectorized pass may read whole
/// vectors.
const ROW_SLACK: usize = 64;

/// -inf values on each side of a row of column maxes (the most padding the vectorized
/// stride-2 pass handles).
const ROW_PAD: usize = 2;

/// Element types of max pooling, with a vectorized pass for 3-wide windows at stride 2.
trait PoolElement: Element {
    /// Max pooling of whole planes with 3x3 windows at stride 2 (see
    /// `Windows::square3_stride2`) in one vectorized pass; `false` (nothing written) when
    /// there is no vectorized version or the windows are of another kind.
    fn max3x3_stride2(_planes: &[Self], _windows: &Windows, _out: &mut [Self]) -> bool {
        false
    }

    /// `dst[ox] = max(data[2 ox - shift ..= 2 ox - shift + 2])` (NaN wins) for every `ox`,
    /// where `data` is `row` after its `ROW_PAD` leading values (every window inside `row`,
    /// and `ROW_SLACK` readable values after it); `false` (nothing written) when there is no
    /// vectorized version.
    fn max3_stride2(_row: &[Self], _shift: usize, _dst: &mut [Self]) -> bool {
        false
    }
}

impl PoolElement for f64 {}

impl PoolElement for f32 {
    fn max3x3_stride2(planes: &[f32], windows: &Windows, out: &mut [f32]) -> bool {
        let (h, w, ho, wo) = (
            windows.height,
            windows.width,
            windows.rows.len(),
            windows.cols.len(),
        );
        let square = windows.square3_stride2 && w <= 16 * SQUARE_POOL_VECTORS;
        if !square || !crate::kernels::simd::has_avx512() || h * w == 0 || ho * wo == 0 {
            return false;
        }
        if !planes.len().is_multiple_of(h * w) || out.len() != planes.len() / (h * w) * ho * wo {
            return false;
        }
        // SAFETY: AVX-512 checked above; `planes` holds whole `h x w` planes and `out` the
        // matching `ho x wo` ones.
        unsafe { max3x3_stride2_avx512(planes, windows, out) };
        true
    }

    fn max3_stride2(row: &[f32], shift: usize, dst: &mut [f32]) -> bool {
        let count = dst.len();
        if count == 0 || shift > ROW_PAD || !crate::kernels::simd::has_avx512() {
            return false;
        }
        let first = ROW_PAD - shift;
        // Whole vectors of 16 outputs read 2 * 16 * ceil(count / 16) + 16 values.
        if first + 32 * count.div_ceil(16) + 16 > row.len() {
            return false;
        }
        // SAFETY: AVX-512 checked above; the reads stay inside `row` (checked above) and
        // the masked stores inside `dst`.
        unsafe { max3_stride2_avx512(row.as_ptr().add(first), dst.as_mut_ptr(), count) };
        true
    }
}

/// Max that returns NaN when either operand is NaN (MAXPS alone returns the second).
///
/// # Safety
/// Needs AVX-512F.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn nan_max_avx512(
    a: std::arch::x86_64::__m512,
    b: std::arch::x86_64::__m512,
) -> std::arch::x86_64::__m512 {
    use std::arch::x86_64::*;
    let either_nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, b);
    _mm512_mask_blend_ps(either_nan, _mm512_max_ps(a, b), _mm512_add_ps(a, b))
}

/// The 16 maxes `max(v[2i], v[2i + 1], v[2i + 2])` of three consecutive vectors `v` =
/// `a b c` (NaN wins), stored to the first `count` (at most 16) values of `dst`: the even
/// lanes, the odd lanes, and the even lanes shifted down by one (then lane 0 of `c`).
///
/// # Safety
/// Needs AVX-512F; `dst` writable for `count` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[inline]
unsafe fn store_windows_of_three(
    [a, b, c]: [std::arch::x86_64::__m512; 3],
    dst: *mut f32,
    count: usize,
) {
    use std::arch::x86_64::*;
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let e = _mm512_permutex2var_ps(a, even, b);
    let o = _mm512_permutex2var_ps(a, odd, b);
    let e2 = _mm512_castsi512_ps(_mm512_alignr_epi32::<1>(
        _mm512_castps_si512(c),
        _mm512_castps_si512(e),
    ));
    let m = nan_max_avx512(nan_max_avx512(e, o), e2);
    _mm512_mask_storeu_ps(dst, lanes(count), m);
}

/// The mask of the first `n` (at most 16) lanes.
#[cfg(target_arch = "x86_64")]
fn lanes(n: usize) -> u16 {
    if n >= 16 {
        0xffff
    } else {
        (1u16 << n) - 1
    }
}

/// `dst[i] = max(v[2i], v[2i + 1], v[2i + 2])` (NaN wins) for `i < count`, 16 at a time.
///
/// # Safety
/// Needs AVX-512F; `v` readable for `32 * ceil(count / 16) + 16` values, `dst` writable
/// for `count`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max3_stride2_avx512(v: *const f32, dst: *mut f32, count: usize) {
    use std::arch::x86_64::*;
    for i in (0..count).step_by(16) {
        let p = v.add(2 * i);
        let vectors = [
            _mm512_loadu_ps(p),
            _mm512_loadu_ps(p.add(16)),
            _mm512_loadu_ps(p.add(32)),
        ];
        store_windows_of_three(vectors, dst.add(i), count - i);
    }
}

/// Not reachable: `has_avx512` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn max3_stride2_avx512(_v: *const f32, _dst: *mut f32, _count: usize) {
    unreachable!("needs AVX-512")
}

/// Widest rows (in 16-lane vectors) of [`max3x3_stride2_avx512`].
const SQUARE_POOL_VECTORS: usize = 16;

/// 3x3 stride-2 max pooling of whole planes (padding at most 2): per output row, the max of
/// its (up to three) input rows 16 columns at a time, kept in registers; the padded row is
/// assembled from them lane-shifted (no trip through memory: loading a vector that spans
/// narrower stores just made stalls until they complete), and each 16 outputs take the even
/// lanes, the odd lanes and the even lanes shifted by one of two padded vectors. NaN wins.
///
/// # Safety
/// Needs AVX-512F; `planes` holds whole `height x width` planes (`width` at most
/// `16 * SQUARE_POOL_VECTORS`) and `out` the matching output planes of `windows`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn max3x3_stride2_avx512(planes: &[f32], windows: &Windows, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let (h, w, ho, wo) = (
        windows.height,
        windows.width,
        windows.rows.len(),
        windows.cols.len(),
    );
    let shift = windows.stride2.unwrap_or(0);
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    let vectors = w.div_ceil(16);
    // Column maxes of a row, 16 columns per vector; the vectors past the row stay -inf.
    let mut columns = [ninf; SQUARE_POOL_VECTORS + 3];
    // Vector `j` of the row with `shift` lanes of -inf in front.
    let padded = |columns: &[__m512; SQUARE_POOL_VECTORS + 3], j: usize| {
        let prev = if j == 0 { ninf } else { columns[j - 1] };
        match shift {
            0 => columns[j],
            1 => _mm512_castsi512_ps(_mm512_alignr_epi32::<15>(
                _mm512_castps_si512(columns[j]),
                _mm512_castps_si512(prev),
            )),
            _ => _mm512_castsi512_ps(_mm512_alignr_epi32::<14>(
                _mm512_castps_si512(columns[j]),
                _mm512_castps_si512(prev),
            )),
        }
    };
    for (plane, dst) in planes
        .chunks_exact(h * w)
        .zip(out.chunks_exact_mut(ho * wo))
    {
        for (&(y0, y1, ybase), dst_row) in windows.rows.iter().zip(dst.chunks_exact_mut(wo)) {
            let line = |ky: usize| plane.as_ptr().add((ybase + ky as isize) as usize * w);
            for (k, column) in columns.iter_mut().take(vectors).enumerate() {
                let mask = lanes(w - 16 * k);
                let mut m = ninf;
                for ky in y0..y1 {
                    let values = _mm512_mask_loadu_ps(ninf, mask, line(ky).add(16 * k));
                    m = nan_max_avx512(m, values);
                }
                *column = m;
            }
            for b in 0..wo.div_ceil(16) {
                let vectors = [2 * b, 2 * b + 1, 2 * b + 2].map(|j| padded(&columns, j));
                store_windows_of_three(vectors, dst_row.as_mut_ptr().add(16 * b), wo - 16 * b);
            }
        }
    }
}

/// Not reachable: `has_avx512` is false off x86-64.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn max3x3_stride2_avx512(_planes: &[f32], _windows: &Windows, _out: &mut [f32]) {
    unreachable!("needs AVX-512")
}

multiversion! {
    /// See [`max_plane_separable_body`].
    fn max_plane_separable<T: PoolElement>(planes: &[T], windows: &Windows, out: &mut [T]) = max_plane_separable_body;
}

/// The window taps of every output row and column (see [`taps`]), computed once per call
/// (they involve divisions, and are the same for every plane).
struct Windows {
    rows: Vec<(usize, usize, isize)>,
    cols: Vec<(usize, usize, isize)>,
    height: usize,
    width: usize,
    dilation: [usize; 2],
    /// For 3-wide, undilated windows at stride 2 with at most 2 columns of padding: the
    /// padding, so that window `ox` starts at column `2 ox - padding`.
    stride2: Option<usize>,
    /// Whether the windows are 3x3, undilated, at stride 2 in both directions, with at most
    /// 2 rows and columns of padding (the stem of a ResNet).
    square3_stride2: bool,
}

impl Windows {
    fn new(p: &PoolParams, (h, w): (usize, usize), (ho, wo): (usize, usize)) -> Self {
        let cols: Vec<(usize, usize, isize)> = (0..wo)
            .map(|o| taps(o, p.kernel[1], p.stride[1], p.padding[1], p.dilation[1], w))
            .collect();
        let stride2 =
            (p.kernel[1] == 3 && p.stride[1] == 2 && p.dilation[1] == 1 && p.padding[1] <= 2)
                .then_some(p.padding[1]);
        let square3_stride2 = stride2.is_some()
            && p.kernel[0] == 3
            && p.stride[0] == 2
            && p.dilation[0] == 1
            && p.padding[0] <= 2;
        Windows {
            rows: (0..ho)
                .map(|o| taps(o, p.kernel[0], p.stride[0], p.padding[0], p.dilation[0], h))
                .collect(),
            cols,
            height: h,
            width: w,
            dilation: p.dilation,
            stride2,
            square3_stride2,
        }
    }
}

/// Max pooling forward.
pub fn max_pool2d(x: &Value, p: &PoolParams, out_shape: &[usize], dtype: DType) -> Result<Value> {
    let acc = acc_dtype(dtype);
    let xv = materialize(x, acc)?;
    let (h, w, ho, wo) = (x.shape[2], x.shape[3], out_shape[2], out_shape[3]);
    let mut out = Storage::uninit(acc, numel(out_shape))?;
    let windows = Windows::new(p, (h, w), (ho, wo));
    macro_rules! go {
        ($T:ty) => {{
            let xs = &xv.storage.as_slice::<$T>()?[xv.offset..xv.offset + xv.numel()];
            // Several planes per call: the per-call setup is then paid once for all.
            let k = (1024 / (ho * wo).max(1)).max(1);
            planes(out.as_mut_slice::<$T>()?, k * ho * wo, |ci, o| {
                let count = o.len() / (ho * wo).max(1);
                let first = &xs[ci * k * h * w..][..count * h * w];
                if <$T>::max3x3_stride2(first, &windows, o) {
                    return;
                }
                if !is_2x2(p, (h, w), (ho, wo)) {
                    max_plane_separable(first, &windows, o);
                    return;
                }
                for (plane, o) in first.chunks_exact(h * w).zip(o.chunks_exact_mut(ho * wo)) {
                    for (oy, row) in o.chunks_mut(wo.max(1)).enumerate() {
                        let r0 = &plane[2 * oy * w..][..2 * wo];
                        let r1 = &plane[(2 * oy + 1) * w..][..2 * wo];
                        for ((dst, a), b) in row
                            .iter_mut()
                            .zip(r0.chunks_exact(2))
                            .zip(r1.chunks_exact(2))
                        {
                            *dst = nan_max(nan_max(a[0], a[1]), nan_max(b[0], b[1]));
                        }
                    }
                }
            });
        }};
    }
    if acc == DType::Float64 {
        go!(f64)
    } else {
        go!(f32)
    }
    finish(out, out_shape, dtype)
}

/// Max pooling gradient: routes each output gradient to its window's max.
pub fn max_pool2d_backward(x: &Value, gy: &Value, p: &PoolParams, dtype: DType) -> Result<Value> {
    let acc = acc_dtype(dtype);
    let (xv, gv) = (materialize(x, acc)?, materialize(gy, acc)?);
    let (h, w, ho, wo) = (x.shape[2], x.shape[3], gy.shape[2], gy.shape[3]);
    // The 2x2 path writes every element when the windows tile the plane exactly; every other
    // plane starts from zeros.
    let exact = is_2x2(p, (h, w), (ho, wo)) && h == 2 * ho && w == 2 * wo;
    let mut out = Storage::uninit(acc, numel(&x.shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let xs = &xv.storage.as_slice::<$T>()?[xv.offset..xv.offset + xv.numel()];
            let gs = &gv.storage.as_slice::<$T>()?[gv.offset..gv.offset + gv.numel()];
            planes(out.as_mut_slice::<$T>()?, h * w, |i, dx| {
                let plane = &xs[i * h * w..(i + 1) * h * w];
                if !is_2x2(p, (h, w), (ho, wo)) {
                    dx.fill(<$T>::default());
                }
                if is_2x2(p, (h, w), (ho, wo)) {
                    let g = &gs[i * ho * wo..(i + 1) * ho * wo];
                    if !exact {
                        dx.fill(<$T>::default());
                    }
                    grad_plane_2x2(plane, g, dx, w, wo);
                    return;
                }
                let mut idx = vec![0usize; ho * wo];
                argmax_plane(plane, h, w, ho, wo, p, &mut idx);
                for (k, &j) in idx.iter().enumerate() {
                    if j != usize::MAX {
                        dx[j] += gs[i * ho * wo + k];
                    }
                }
            });
        }};
    }
    if acc == DType::Float64 {
        go!(f64)
    } else {
        go!(f32)
    }
    finish(out, &x.shape, dtype)
}

fn avg_divisor(oy: usize, ox: usize, h: usize, w: usize, p: &PoolParams) -> usize {
    if p.count_include_pad {
        // Windows are clipped to the padded input (PyTorch semantics).
        let span = |o: usize, k: usize, s: usize, pad: usize, size: usize| {
            let start = (o * s) as isize - pad as isize;
            let end = (start + k as isize).min((size + pad) as isize);
            (end - start) as usize
        };
        span(oy, p.kernel[0], p.stride[0], p.padding[0], h)
            * span(ox, p.kernel[1], p.stride[1], p.padding[1], w)
    } else {
        window(oy, p.kernel[0], p.stride[0], p.padding[0], 1, h)
            .flatten()
            .count()
            * window(ox, p.kernel[1], p.stride[1], p.padding[1], 1, w)
                .flatten()
                .count()
    }
}

/// Average pooling forward.
pub fn avg_pool2d(x: &Value, p: &PoolParams, out_shape: &[usize], dtype: DType) -> Result<Value> {
    let acc = acc_dtype(dtype);
    let xv = materialize(x, acc)?;
    let (h, w, ho, wo) = (x.shape[2], x.shape[3], out_shape[2], out_shape[3]);
    let mut out = Storage::uninit(acc, numel(out_shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let xs = &xv.storage.as_slice::<$T>()?[xv.offset..xv.offset + xv.numel()];
            planes(out.as_mut_slice::<$T>()?, ho * wo, |i, o| {
                let plane = &xs[i * h * w..(i + 1) * h * w];
                for oy in 0..ho {
                    let (y0, y1, yb) = taps(oy, p.kernel[0], p.stride[0], p.padding[0], 1, h);
                    for ox in 0..wo {
                        let (x0, x1, xb) = taps(ox, p.kernel[1], p.stride[1], p.padding[1], 1, w);
                        let mut s: $T = 0.0;
                        for ky in y0..y1 {
                            let r = (yb + ky as isize) as usize * w;
                            let c0 = (xb + x0 as isize) as usize;
                            s += plane[r + c0..r + c0 + (x1 - x0)].iter().sum::<$T>();
                        }
                        let d = avg_divisor(oy, ox, h, w, p).max(1);
                        o[oy * wo + ox] = s / d as $T;
                    }
                }
            });
        }};
    }
    if acc == DType::Float64 {
        go!(f64)
    } else {
        go!(f32)
    }
    finish(out, out_shape, dtype)
}

/// Average pooling gradient.
pub fn avg_pool2d_backward(
    gy: &Value,
    p: &PoolParams,
    x_shape: &[usize],
    dtype: DType,
) -> Result<Value> {
    let acc = acc_dtype(dtype);
    let gv = materialize(gy, acc)?;
    let (h, w, ho, wo) = (x_shape[2], x_shape[3], gy.shape[2], gy.shape[3]);
    let mut out = Storage::zeros(acc, numel(x_shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let gs = &gv.storage.as_slice::<$T>()?[gv.offset..gv.offset + gv.numel()];
            planes(out.as_mut_slice::<$T>()?, h * w, |i, dx| {
                for oy in 0..ho {
                    let (y0, y1, yb) = taps(oy, p.kernel[0], p.stride[0], p.padding[0], 1, h);
                    for ox in 0..wo {
                        let (x0, x1, xb) = taps(ox, p.kernel[1], p.stride[1], p.padding[1], 1, w);
                        let d = avg_divisor(oy, ox, h, w, p).max(1);
                        let g = gs[i * ho * wo + oy * wo + ox] / d as $T;
                        for ky in y0..y1 {
                            let r = (yb + ky as isize) as usize * w;
                            let c0 = (xb + x0 as isize) as usize;
                            dx[r + c0..r + c0 + (x1 - x0)]
                                .iter_mut()
                                .for_each(|v| *v += g);
                        }
                    }
                }
            });
        }};
    }
    if acc == DType::Float64 {
        go!(f64)
    } else {
        go!(f32)
    }
    finish(out, x_shape, dtype)
}

/// PyTorch's adaptive window `[start, end)` for output index `o` of `out` over `size`.
fn adaptive(o: usize, out: usize, size: usize) -> (usize, usize) {
    ((o * size) / out, ((o + 1) * size).div_ceil(out))
}

/// Adaptive average pooling forward.
pub fn adaptive_avg_pool2d(x: &Value, out_shape: &[usize], dtype: DType) -> Result<Value> {
    let acc = acc_dtype(dtype);
    let xv = materialize(x, acc)?;
    let (h, w, ho, wo) = (x.shape[2], x.shape[3], out_shape[2], out_shape[3]);
    let mut out = Storage::uninit(acc, numel(out_shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let xs = &xv.storage.as_slice::<$T>()?[xv.offset..xv.offset + xv.numel()];
            planes(out.as_mut_slice::<$T>()?, ho * wo, |i, o| {
                let plane = &xs[i * h * w..(i + 1) * h * w];
                for oy in 0..ho {
                    let (y0, y1) = adaptive(oy, ho, h);
                    for ox in 0..wo {
                        let (x0, x1) = adaptive(ox, wo, w);
                        let mut s = 0.0f64;
                        for iy in y0..y1 {
                            s += plane[iy * w + x0..iy * w + x1]
                                .iter()
                                .map(|v| v.to_f64())
                                .sum::<f64>();
                        }
                        o[oy * wo + ox] = <$T>::from_f64(s / ((y1 - y0) * (x1 - x0)).max(1) as f64);
                    }
                }
            });
        }};
    }
    if acc == DType::Float64 {
        go!(f64)
    } else {
        go!(f32)
    }
    finish(out, out_shape, dtype)
}

/// Adaptive average pooling gradient.
pub fn adaptive_avg_pool2d_backward(gy: &Value, x_shape: &[usize], dtype: DType) -> Result<Value> {
    let acc = acc_dtype(dtype);
    let gv = materialize(gy, acc)?;
    let (h, w, ho, wo) = (x_shape[2], x_shape[3], gy.shape[2], gy.shape[3]);
    let mut out = Storage::zeros(acc, numel(x_shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let gs = &gv.storage.as_slice::<$T>()?[gv.offset..gv.offset + gv.numel()];
            planes(out.as_mut_slice::<$T>()?, h * w, |i, dx| {
                for oy in 0..ho {
                    let (y0, y1) = adaptive(oy, ho, h);
                    for ox in 0..wo {
                        let (x0, x1) = adaptive(ox, wo, w);
                        let g = gs[i * ho * wo + oy * wo + ox].to_f64()
                            / ((y1 - y0) * (x1 - x0)).max(1) as f64;
                        for iy in y0..y1 {
                            for v in &mut dx[iy * w + x0..iy * w + x1] {
                                *v += <$T>::from_f64(g);
                            }
                        }
                    }
                }
            });
        }};
    }
    if acc == DType::Float64 {
        go!(f64)
    } else {
        go!(f32)
    }
    finish(out, x_shape, dtype)
}
