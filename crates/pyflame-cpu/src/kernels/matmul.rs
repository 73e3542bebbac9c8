//! Batched matrix multiplication over strided views.
//!
//! [`matmul`] computes `out[b] = a[b] @ b[b]` for `b in 0..batch`, where `a` and `b` are strided
//! views ([`MatRef`]) and `out` is contiguous `[batch, m, n]`. Every index the kernel will touch
//! is validated up front, so a bad view is an [`Error::Invalid`], never a panic or UB.
//!
//! Per element type ([`MatmulElement`]):
//! * `f32`, `f64`, `f16`: the `gemm` crate (runtime-dispatched SIMD microkernels: AVX2+FMA, and
//!   AVX-512 when the workspace enables gemm's `x86-v4` feature). Matrices with
//!   `m*n*k >= 192^3` ([`PARALLEL_WORK_THRESHOLD`]) use `Parallelism::Rayon` (rayon's current
//!   pool); smaller ones run on one thread, and the matrices of a batch are spread over the
//!   pool instead when they are small or numerous.
//! * `bf16`: each matrix is converted to `f32`, multiplied with `gemm`, and rounded back.
//! * `i64`, `i32`, `i16`, `i8`, `u8`: cache-blocked loops with wrapping arithmetic (like
//!   PyTorch's integer matmul), vectorized and runtime-dispatched (AVX2) on x86.

use super::simd::multiversion;
use gemm::Parallelism;
use half::{bf16, f16};
use pyflame_core::{Error, Result};
use rayon::prelude::*;
use sealed::Dims;

/// Work (`m * n * k` multiply-adds) from which one `gemm` call uses the rayon pool. gemm forks
/// and joins once per cache block, which on 2 cores only pays off from about 192^3 (below it,
/// 128^3 runs ~2x slower threaded than single-threaded).
pub const PARALLEL_WORK_THRESHOLD: usize = 192 * 192 * 192;

/// Total work from which a batch of products, or one integer product (computed by this
/// module's own loops), is split over the rayon pool.
pub const BATCH_PARALLEL_WORK: usize = 64 * 64 * 64;

/// A read-only view of a batch of matrices inside a slice.
///
/// Element `(b, i, j)` is `data[offset + b*batch_stride + i*row_stride + j*col_stride]`.
/// Strides are in elements; they may be 0 (broadcast, e.g. a shared batch) or negative
/// (flipped views), and need not be contiguous (a transposed view just swaps the row and
/// column strides).
pub struct MatRef<'a, T> {
    /// The underlying elements.
    pub data: &'a [T],
    /// Index of element `(0, 0, 0)` in `data`.
    pub offset: usize,
    /// Distance between consecutive matrices of the batch.
    pub batch_stride: isize,
    /// Distance between consecutive rows.
    pub row_stride: isize,
    /// Distance between consecutive columns.
    pub col_stride: isize,
}

impl<T> Clone for MatRef<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T> Copy for MatRef<'_, T> {}

impl<T> std::fmt::Debug for MatRef<'_, T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MatRef")
            .field("len", &self.data.len())
            .field("offset", &self.offset)
            .field("batch_stride", &self.batch_stride)
            .field("row_stride", &self.row_stride)
            .field("col_stride", &self.col_stride)
            .finish()
    }
}

impl<'a, T> MatRef<'a, T> {
    /// A contiguous row-major batch `[batch, rows, cols]` starting at `data[0]`.
    pub fn contiguous(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            offset: 0,
            batch_stride: (rows * cols) as isize,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// The same matrices transposed (rows and columns swapped; no data is moved).
    pub fn t(self) -> Self {
        MatRef {
            row_stride: self.col_stride,
            col_stride: self.row_stride,
            ..self
        }
    }

    /// Index of element `(b, i, j)`; callers must have validated the view.
    #[inline(always)]
    fn index(&self, b: usize, i: usize, j: usize) -> usize {
        (self.offset as isize
            + b as isize * self.batch_stride
            + i as isize * self.row_stride
            + j as isize * self.col_stride) as usize
    }

    /// Offset (from `data[0]`) of matrix `b`; callers must have validated the view.
    #[inline(always)]
    fn batch_offset(&self, b: usize) -> isize {
        self.offset as isize + b as isize * self.batch_stride
    }

    /// Checks that every element `(b, i, j)` with `b < batch, i < rows, j < cols` is inside
    /// `data` (nothing is checked when one of the extents is 0: nothing is read).
    fn validate(&self, name: &str, batch: usize, rows: usize, cols: usize) -> Result<()> {
        if batch == 0 || rows == 0 || cols == 0 {
            return Ok(());
        }
        let mut lo = self.offset as i128;
        let mut hi = lo;
        for (extent, stride) in [
            (batch, self.batch_stride),
            (rows, self.row_stride),
            (cols, self.col_stride),
        ] {
            let span = (extent as i128 - 1) * stride as i128;
            if span < 0 {
                lo += span;
            } else {
                hi += span;
            }
        }
        if lo < 0 || hi >= self.data.len() as i128 {
            return Err(Error::Invalid(format!(
                "matmul: view {name} ({batch}x{rows}x{cols}, offset {}, strides [{}, {}, {}]) \
                 reaches elements {lo}..={hi} of a buffer of {} elements",
                self.offset,
                self.batch_stride,
                self.row_stride,
                self.col_stride,
                self.data.len()
            )));
        }
        Ok(())
    }
}

impl Dims {
    /// Multiply-adds per matrix product (saturating).
    fn work(&self) -> usize {
        self.m.saturating_mul(self.n).saturating_mul(self.k)
    }

    /// How to spread the batch: `true` = one matrix per rayon task (each single-threaded),
    /// `false` = matrices in sequence (each may use the pool itself).
    fn parallel_over_batch(&self) -> bool {
        let threads = rayon::current_num_threads();
        self.batch > 1
            && threads > 1
            && self.work().saturating_mul(self.batch) >= BATCH_PARALLEL_WORK
            && (self.work() < PARALLEL_WORK_THRESHOLD || self.batch >= 2 * threads)
    }

    /// True for products worth two threads but too small for gemm's own parallel split:
    /// their output is split by rows or columns instead ([`gemm_split`]).
    fn split_output(&self) -> bool {
        let threads = rayon::current_num_threads();
        threads > 1
            && self.work() >= SPLIT_MIN_WORK
            && self.work() < SPLIT_MAX_WORK
            && (self.m >= 16 * threads || self.n >= 16 * threads)
            && self.n > 0
    }

    /// Parallelism for one matrix when matrices run in sequence.
    fn per_matrix_parallelism(&self) -> Parallelism {
        if self.work() >= PARALLEL_WORK_THRESHOLD && rayon::current_num_threads() > 1 {
            Parallelism::Rayon(0)
        } else {
            Parallelism::None
        }
    }
}

/// Smallest product (m*n*k) split by rows or columns over the threads.
const SPLIT_MIN_WORK: usize = 1 << 18;
/// Products from this size on use gemm's own parallelism.
const SPLIT_MAX_WORK: usize = 1 << 28;

mod sealed {
    use super::MatRef;

    /// Problem sizes of one batched product.
    #[derive(Clone, Copy, Debug)]
    pub struct Dims {
        pub batch: usize,
        pub m: usize,
        pub k: usize,
        pub n: usize,
    }

    /// Implementation hook of [`super::MatmulElement`] (sealed: only this module implements it).
    pub trait Sealed: Sized {
        /// Runs the product; views and `out` have been validated.
        fn matmul_validated(d: Dims, a: MatRef<'_, Self>, b: MatRef<'_, Self>, out: &mut [Self]);
    }
}

/// Element types [`matmul`] supports: `f32`, `f64`, `f16`, `bf16`, `i64`, `i32`, `i16`, `i8`, `u8`.
pub trait MatmulElement: Copy + Send + Sync + 'static + sealed::Sealed {}

/// Computes `out[b] = a[b] @ b[b]` for `b in 0..batch`, with `a[b]` of shape `[m, k]`, `b[b]`
/// of shape `[k, n]` and `out` contiguous `[batch, m, n]`.
///
/// `k == 0` fills `out` with zeros; `batch`, `m` or `n` equal to 0 means an empty `out`.
/// Integer types use wrapping arithmetic. Returns [`Error::Invalid`] when `out.len()` is not
/// `batch * m * n` or a view reaches outside its slice.
pub fn matmul<T: MatmulElement>(
    batch: usize,
    m: usize,
    k: usize,
    n: usize,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    out: &mut [T],
) -> Result<()> {
    let expected = batch
        .checked_mul(m)
        .and_then(|v| v.checked_mul(n))
        .ok_or_else(|| Error::Invalid(format!("matmul: output {batch}x{m}x{n} is too large")))?;
    if out.len() != expected {
        return Err(Error::Invalid(format!(
            "matmul: output buffer has {} elements, expected {batch}x{m}x{n} = {expected}",
            out.len()
        )));
    }
    a.validate("a", batch, m, k)?;
    b.validate("b", batch, k, n)?;
    if expected == 0 {
        return Ok(());
    }
    T::matmul_validated(Dims { batch, m, k, n }, a, b, out);
    Ok(())
}

// -------------------------------------------------------------------------------------------
// Floating point: the gemm crate
// -------------------------------------------------------------------------------------------

/// Types the `gemm` crate multiplies natively.
pub(crate) trait GemmScalar: Copy + Send + Sync + 'static {
    const ZERO: Self;
    const ONE: Self;
}

impl GemmScalar for f32 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl GemmScalar for f64 {
    const ZERO: Self = 0.0;
    const ONE: Self = 1.0;
}

impl GemmScalar for f16 {
    const ZERO: Self = f16::ZERO;
    const ONE: Self = f16::ONE;
}

/// One matrix product with `gemm`: `dst = a[bi] @ b[bi]`, `dst` contiguous `m x n`.
fn gemm_one<T: GemmScalar>(
    d: Dims,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    bi: usize,
    dst: &mut [T],
    par: Parallelism,
) {
    debug_assert_eq!(dst.len(), d.m * d.n);
    // SAFETY: `dst` is an exclusive, contiguous m x n block.
    unsafe { gemm_raw(d, a, b, bi, dst.as_mut_ptr(), d.n, par) }
}

/// `dst = a[bi] @ b[bi]` into the `m x n` block at `dst` whose rows are `dst_row_stride`
/// elements apart (columns contiguous).
///
/// # Safety
/// `matmul` must have validated the views for `d` (every element (bi, i, p) of `a` for
/// i < m, p < k and (bi, p, j) of `b` for p < k, j < n is inside its slice), and the block at
/// `dst` must be valid for writes and not accessed by anyone else during the call.
unsafe fn gemm_raw<T: GemmScalar>(
    d: Dims,
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    bi: usize,
    dst: *mut T,
    dst_row_stride: usize,
    par: Parallelism,
) {
    if d.k == 0 {
        for i in 0..d.m {
            std::slice::from_raw_parts_mut(dst.add(i * dst_row_stride), d.n).fill(T::ZERO);
        }
        return;
    }
    // The base pointers below (element (bi, 0, 0)) are in bounds and gemm only reads elements
    // of the validated set. With `read_dst = false` gemm computes dst = 1 * lhs @ rhs without
    // reading dst.
    let lhs = a.data.as_ptr().offset(a.batch_offset(bi));
    let rhs = b.data.as_ptr().offset(b.batch_offset(bi));
    gemm::gemm(
        d.m,
        d.n,
        d.k,
        dst,
        1,
        dst_row_stride as isize,
        false,
        lhs,
        a.col_stride,
        a.row_stride,
        rhs,
        b.col_stride,
        b.row_stride,
        T::ZERO,
        T::ONE,
        false,
        false,
        false,
        par,
    );
}

/// Mid-size products on several threads, each with a single-threaded GEMM over its share of
/// the output: gemm's own threading costs more than it gains at these sizes. Every thread
/// packs the whole operand it shares with the others, so the output is split along the
/// larger dimension: by columns when `n > m` (each thread packs all of `a` and its columns
/// of `b`), otherwise by rows.
fn gemm_split<T: GemmScalar>(d: Dims, a: MatRef<'_, T>, b: MatRef<'_, T>, out: &mut [T]) {
    let threads = rayon::current_num_threads();
    let mn = d.m * d.n;
    if d.n > d.m && d.n >= 16 * threads {
        // Column blocks of whole 16-wide vectors.
        let cols = d.n.div_ceil(threads).next_multiple_of(16);
        let parts = d.n.div_ceil(cols);
        for (bi, dst) in out.chunks_mut(mn).enumerate() {
            let base = dst.as_mut_ptr() as usize;
            (0..parts).into_par_iter().for_each(|part| {
                let c0 = part * cols;
                let sub = Dims {
                    n: cols.min(d.n - c0),
                    ..d
                };
                let b_cols = MatRef {
                    offset: b.index(0, 0, c0),
                    ..b
                };
                // SAFETY: `matmul` validated the views for `d`; columns c0.. of `b` are a
                // subset. Each part writes columns [c0, c0 + sub.n) of every row of this
                // matrix's block of `out`, which no other part touches.
                unsafe {
                    let dst = (base as *mut T).add(c0);
                    gemm_raw(sub, a, b_cols, bi, dst, d.n, Parallelism::None);
                }
            });
        }
        return;
    }
    let rows = d.m.div_ceil(threads);
    for (bi, dst) in out.chunks_mut(mn).enumerate() {
        dst.par_chunks_mut(rows * d.n)
            .enumerate()
            .for_each(|(part, block)| {
                let sub = Dims {
                    m: block.len() / d.n,
                    ..d
                };
                let a_rows = MatRef {
                    offset: a.index(0, part * rows, 0),
                    ..a
                };
                gemm_one(sub, a_rows, b, bi, block, Parallelism::None);
            });
    }
}

fn gemm_batched<T: GemmScalar>(d: Dims, a: MatRef<'_, T>, b: MatRef<'_, T>, out: &mut [T]) {
    let mn = d.m * d.n;
    if d.parallel_over_batch() {
        out.par_chunks_mut(mn)
            .enumerate()
            .for_each(|(bi, dst)| gemm_one(d, a, b, bi, dst, Parallelism::None));
    } else if d.split_output() {
        gemm_split(d, a, b, out);
    } else {
        let par = d.per_matrix_parallelism();
        for (bi, dst) in out.chunks_mut(mn).enumerate() {
            gemm_one(d, a, b, bi, dst, par);
        }
    }
}

/// Rows `rows` of the product `a @ b` (`a` is `m x k`, `b` is `k x n`; batch entry 0 of
/// both views) into `dst` (contiguous `rows.len() x n`), single-threaded. Blocked products
/// use it to process each block of rows while it is in cache (matmul epilogues). Returns
/// `Error::Invalid` for rows outside `0..m`, a wrong `dst` length or views that reach
/// outside their slices.
pub(crate) fn matmul_rows<T: GemmScalar>(
    (m, k, n): (usize, usize, usize),
    a: MatRef<'_, T>,
    b: MatRef<'_, T>,
    rows: std::ops::Range<usize>,
    dst: &mut [T],
) -> Result<()> {
    if rows.start > rows.end || rows.end > m {
        return Err(Error::Invalid(format!(
            "matmul: rows {rows:?} outside a product of {m} rows"
        )));
    }
    let count = rows.end - rows.start;
    if dst.len() != count * n {
        return Err(Error::Invalid(format!(
            "matmul: row block has {} elements, expected {count}x{n}",
            dst.len()
        )));
    }
    a.validate("a", 1, m, k)?;
    b.validate("b", 1, k, n)?;
    if count == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        dst.fill(T::ZERO);
        return Ok(());
    }
    // Element (0, rows.start, 0) of `a` was validated (k > 0), so its index is in bounds.
    let a_rows = MatRef {
        offset: a.index(0, rows.start, 0),
        ..a
    };
    let d = Dims {
        batch: 1,
        m: count,
        k,
        n,
    };
    gemm_one(d, a_rows, b, 0, dst, Parallelism::None);
    Ok(())
}

impl sealed::Sealed for f32 {
    fn matmul_validated(d: Dims, a: MatRef<'_, Self>, b: MatRef<'_, Self>, out: &mut [Self]) {
        gemm_batched(d, a, b, out);
    }
}

impl sealed::Sealed for f64 {
    fn matmul_validated(d: Dims, a: MatRef<'_, Self>, b: MatRef<'_, Self>, out: &mut [Self]) {
        gemm_batched(d, a, b, out);
    }
}

impl sealed::Sealed for f16 {
    fn matmul_validated(d: Dims, a: MatRef<'_, Self>, b: MatRef<'_, Self>, out: &mut [Self]) {
        gemm_batched(d, a, b, out);
    }
}

impl MatmulElement for f32 {}
impl MatmulElement for f64 {}
impl MatmulElement for f16 {}

// -------------------------------------------------------------------------------------------
// bf16: convert to f32, gemm, round back
// -------------------------------------------------------------------------------------------

/// Copies matrix `bi` of `v` (`rows x cols`) into `dst` as contiguous row-major f32.
fn bf16_to_f32_block(v: MatRef<'_, bf16>, bi: usize, rows: usize, cols: usize, dst: &mut Vec<f32>) {
    dst.clear();
    dst.reserve(rows * cols);
    for i in 0..rows {
        if v.col_stride == 1 {
            let start = v.index(bi, i, 0);
            dst.extend(v.data[start..start + cols].iter().map(|x| x.to_f32()));
        } else {
            dst.extend((0..cols).map(|j| v.data[v.index(bi, i, j)].to_f32()));
        }
    }
}

/// One bf16 product through f32; `bufs` are reusable scratch buffers.
fn bf16_one(
    d: Dims,
    a: MatRef<'_, bf16>,
    b: MatRef<'_, bf16>,
    bi: usize,
    dst: &mut [bf16],
    par: Parallelism,
    bufs: &mut (Vec<f32>, Vec<f32>, Vec<f32>),
) {
    let (abuf, bbuf, cbuf) = bufs;
    bf16_to_f32_block(a, bi, d.m, d.k, abuf);
    bf16_to_f32_block(b, bi, d.k, d.n, bbuf);
    cbuf.clear();
    cbuf.resize(d.m * d.n, 0.0);
    let one = Dims { batch: 1, ..d };
    gemm_one(
        one,
        MatRef::contiguous(abuf, d.m, d.k),
        MatRef::contiguous(bbuf, d.k, d.n),
        0,
        cbuf,
        par,
    );
    for (o, c) in dst.iter_mut().zip(cbuf.iter()) {
        *o = bf16::from_f32(*c);
    }
}

impl sealed::Sealed for bf16 {
    fn matmul_validated(d: Dims, a: MatRef<'_, Self>, b: MatRef<'_, Self>, out: &mut [Self]) {
        let mn = d.m * d.n;
        if d.parallel_over_batch() {
            out.par_chunks_mut(mn).enumerate().for_each_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |bufs, (bi, dst)| bf16_one(d, a, b, bi, dst, Parallelism::None, bufs),
            );
        } else {
            let par = d.per_matrix_parallelism();
            let mut bufs = (Vec::new(), Vec::new(), Vec::new());
            for (bi, dst) in out.chunks_mut(mn).enumerate() {
                bf16_one(d, a, b, bi, dst, par, &mut bufs);
            }
        }
    }
}

impl MatmulElement for bf16 {}

// -------------------------------------------------------------------------------------------
// Integers: blocked loops with wrapping arithmetic
// -------------------------------------------------------------------------------------------

/// Integer element with wrapping multiply-add.
trait WrappingInt: Copy + Send + Sync + Default + 'static {
    /// `self + a * b` with wrapping (two's complement) arithmetic.
    fn wrapping_madd(self, a: Self, b: Self) -> Self;
}

macro_rules! impl_wrapping_int {
    ($($t:ty),*) => {$(
        impl WrappingInt for $t {
            #[inline(always)]
            fn wrapping_madd(self, a: Self, b: Self) -> Self {
                self.wrapping_add(a.wrapping_mul(b))
            }
        }
    )*};
}

impl_wrapping_int!(i64, i32, i16, i8, u8);

/// Columns of the packed `b` block kept hot in L1/L2.
const INT_NC: usize = 512;
/// Depth of the packed `b` block.
const INT_KC: usize = 128;

/// `dst` (rows `i0..i0 + dst.len()/n` of one output matrix) `= a[bi] @ bp`, where `bp` is the
/// contiguous row-major `k x n` right-hand side.
#[inline(always)]
fn int_rows_body<const FMA: bool, T: WrappingInt>(
    a: MatRef<'_, T>,
    bi: usize,
    i0: usize,
    k: usize,
    n: usize,
    bp: &[T],
    dst: &mut [T],
) {
    dst.fill(T::default());
    let rows = dst.len() / n;
    for j0 in (0..n).step_by(INT_NC) {
        let j1 = (j0 + INT_NC).min(n);
        for p0 in (0..k).step_by(INT_KC) {
            let p1 = (p0 + INT_KC).min(k);
            for r in 0..rows {
                let crow = &mut dst[r * n + j0..r * n + j1];
                for p in p0..p1 {
                    let av = a.data[a.index(bi, i0 + r, p)];
                    let brow = &bp[p * n + j0..p * n + j1];
                    for (c, bv) in crow.iter_mut().zip(brow) {
                        *c = c.wrapping_madd(av, *bv);
                    }
                }
            }
        }
    }
}

multiversion! {
    /// Runtime-dispatched [`int_rows_body`].
    fn int_rows<T: WrappingInt>(
        a: MatRef<'_, T>,
        bi: usize,
        i0: usize,
        k: usize,
        n: usize,
        bp: &[T],
        dst: &mut [T],
    ) = int_rows_body;
}

/// Packs matrix `bi` of `b` (`k x n`) into `buf` as contiguous row-major, or borrows it when it
/// already is.
fn pack_rhs<'s, T: Copy>(
    b: MatRef<'s, T>,
    bi: usize,
    k: usize,
    n: usize,
    buf: &'s mut Vec<T>,
) -> &'s [T] {
    if b.col_stride == 1 && (b.row_stride == n as isize || k == 1) {
        let start = b.index(bi, 0, 0);
        return &b.data[start..start + k * n];
    }
    buf.clear();
    buf.reserve(k * n);
    for p in 0..k {
        buf.extend((0..n).map(|j| b.data[b.index(bi, p, j)]));
    }
    buf
}

fn int_matmul<T: WrappingInt>(d: Dims, a: MatRef<'_, T>, b: MatRef<'_, T>, out: &mut [T]) {
    let mn = d.m * d.n;
    if d.k == 0 {
        out.fill(T::default());
        return;
    }
    if d.parallel_over_batch() {
        out.par_chunks_mut(mn)
            .enumerate()
            .for_each_init(Vec::new, |buf, (bi, dst)| {
                let bp = pack_rhs(b, bi, d.k, d.n, buf);
                int_rows(a, bi, 0, d.k, d.n, bp, dst);
            });
        return;
    }
    let parallel = d.work() >= BATCH_PARALLEL_WORK && rayon::current_num_threads() > 1;
    let mut buf = Vec::new();
    for (bi, dst) in out.chunks_mut(mn).enumerate() {
        let bp = pack_rhs(b, bi, d.k, d.n, &mut buf);
        if parallel {
            let tasks = rayon::current_num_threads() * 4;
            let rows_per_task = d.m.div_ceil(tasks).max(1);
            dst.par_chunks_mut(rows_per_task * d.n)
                .enumerate()
                .for_each(|(t, rows)| {
                    int_rows(a, bi, t * rows_per_task, d.k, d.n, bp, rows);
                });
        } else {
            int_rows(a, bi, 0, d.k, d.n, bp, dst);
        }
    }
}

macro_rules! impl_int_matmul {
    ($($t:ty),*) => {$(
        impl sealed::Sealed for $t {
            fn matmul_validated(d: Dims, a: MatRef<'_, Self>, b: MatRef<'_, Self>, out: &mut [Self]) {
                int_matmul(d, a, b, out);
            }
        }
        impl MatmulElement for $t {}
    )*};
}

impl_int_matmul!(i64, i32, i16, i8, u8);

#[cfg(test)]
mod tests {
    use super::*;

    /// Naive reference in f64 (or wrapping i64 for integers, cast back).
    fn reference<T: Copy>(
        d: (usize, usize, usize, usize),
        a: MatRef<'_, T>,
        b: MatRef<'_, T>,
        mul_add: impl Fn(f64, T, T) -> f64,
    ) -> Vec<f64> {
        let (batch, m, k, n) = d;
        let mut out = vec![0.0; batch * m * n];
        for bi in 0..batch {
            for i in 0..m {
                for j in 0..n {
                    let mut acc = 0.0;
                    for p in 0..k {
                        acc = mul_add(acc, a.data[a.index(bi, i, p)], b.data[b.index(bi, p, j)]);
                    }
                    out[(bi * m + i) * n + j] = acc;
                }
            }
        }
        out
    }

    /// Deterministic small values.
    fn values(len: usize, seed: u64) -> Vec<f64> {
        let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                ((s >> 40) % 17) as f64 - 8.0
            })
            .collect()
    }

    /// Layout variants of an operand of logical shape [batch, rows, cols]: returns the backing
    /// data (as f64 values) and the view parameters.
    fn layouts(
        batch: usize,
        rows: usize,
        cols: usize,
        seed: u64,
    ) -> Vec<(Vec<f64>, usize, [isize; 3])> {
        let (b, r, c) = (batch as isize, rows as isize, cols as isize);
        let mut v = vec![
            // contiguous
            (values(batch * rows * cols, seed), 0, [r * c, c, 1]),
            // transposed storage (column-major per matrix) with an offset of 3
            (values(3 + batch * rows * cols, seed + 1), 3, [r * c, 1, r]),
            // broadcast batch (stride 0)
            (values(rows * cols, seed + 2), 0, [0, c, 1]),
            // padded rows (row stride > cols) and batch-major-last layout
            (
                values(rows * (cols + 2) * batch + 1, seed + 3),
                1,
                [c + 2, (c + 2) * b, 1],
            ),
        ];
        // negative column stride (flipped), offset at the last column
        if cols > 0 {
            v.push((
                values(batch * rows * cols, seed + 4),
                (cols - 1),
                [r * c, c, -1],
            ));
        }
        v
    }

    fn check_float<T: MatmulElement + Copy>(
        to: impl Fn(f64) -> T + Copy,
        from: impl Fn(T) -> f64 + Copy,
        tol: f64,
    ) {
        let shapes = [
            (1, 1, 1, 1),
            (1, 3, 5, 4),
            (2, 7, 9, 5),
            (3, 17, 33, 9),
            (1, 65, 70, 67),
            (5, 20, 16, 24),
            (40, 20, 16, 24),
            (1, 130, 129, 131),
            (2, 2, 0, 3),
            // Few rows (inference-like shapes), serial and batch-parallel.
            (1, 1, 37, 40),
            (3, 5, 19, 33),
            (2, 16, 64, 50),
            (1, 13, 300, 300),
            (8, 4, 100, 100),
        ];
        for &(batch, m, k, n) in &shapes {
            let big = batch * m * k * n > 100_000;
            for (la, (ad, aoff, ast)) in layouts(batch, m, k, 1).into_iter().enumerate() {
                for (lb, (bd, boff, bst)) in layouts(batch, k, n, 2).into_iter().enumerate() {
                    // Large shapes: only a few layout pairs (the naive reference is slow).
                    if big && la > 1 && lb > 1 {
                        continue;
                    }
                    let at: Vec<T> = ad.iter().map(|&x| to(x)).collect();
                    let bt: Vec<T> = bd.iter().map(|&x| to(x)).collect();
                    let a = MatRef {
                        data: &at,
                        offset: aoff,
                        batch_stride: ast[0],
                        row_stride: ast[1],
                        col_stride: ast[2],
                    };
                    let b = MatRef {
                        data: &bt,
                        offset: boff,
                        batch_stride: bst[0],
                        row_stride: bst[1],
                        col_stride: bst[2],
                    };
                    let mut out = vec![to(99.0); batch * m * n];
                    matmul(batch, m, k, n, a, b, &mut out).unwrap();
                    let r = reference((batch, m, k, n), a, b, |acc, x, y| acc + from(x) * from(y));
                    for (o, e) in out.iter().zip(&r) {
                        let o = from(*o);
                        assert!(
                            (o - e).abs() <= tol * e.abs().max(1.0),
                            "{:?} a{ast:?} b{bst:?}: {o} vs {e}",
                            (batch, m, k, n)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn f32_matches_reference() {
        check_float::<f32>(|x| x as f32, |x| x as f64, 1e-6);
    }

    #[test]
    fn f64_matches_reference() {
        check_float::<f64>(|x| x, |x| x, 1e-12);
    }

    #[test]
    fn f16_matches_reference() {
        // Small integers and sums up to 130 * 64 are exact in f32 accumulation; the result is
        // rounded to f16 once (relative 2^-11).
        check_float::<f16>(f16::from_f64, |x| x.to_f64(), 1e-3);
    }

    #[test]
    fn bf16_matches_reference() {
        check_float::<bf16>(bf16::from_f64, |x| x.to_f64(), 8e-3);
    }

    fn check_int<T: MatmulElement + WrappingInt + Copy + PartialEq + std::fmt::Debug>(
        to: impl Fn(i64) -> T + Copy,
        to_i64: impl Fn(T) -> i64 + Copy,
    ) {
        let shapes = [
            (1, 1, 1, 1),
            (2, 7, 9, 5),
            (3, 17, 200, 9),
            (1, 65, 70, 600),
            (40, 20, 16, 24),
            (1, 3, 0, 2),
        ];
        for &(batch, m, k, n) in &shapes {
            for (ad, aoff, ast) in layouts(batch, m, k, 5) {
                for (bd, boff, bst) in layouts(batch, k, n, 6) {
                    // Scale values up so that narrow types actually wrap.
                    let at: Vec<T> = ad.iter().map(|&x| to(x as i64 * 37)).collect();
                    let bt: Vec<T> = bd.iter().map(|&x| to(x as i64 * 91)).collect();
                    let a = MatRef {
                        data: &at,
                        offset: aoff,
                        batch_stride: ast[0],
                        row_stride: ast[1],
                        col_stride: ast[2],
                    };
                    let b = MatRef {
                        data: &bt,
                        offset: boff,
                        batch_stride: bst[0],
                        row_stride: bst[1],
                        col_stride: bst[2],
                    };
                    let mut out = vec![to(5); batch * m * n];
                    matmul(batch, m, k, n, a, b, &mut out).unwrap();
                    // Reference: exact i64 sum of products of the stored values, wrapped.
                    for bi in 0..batch {
                        for i in 0..m {
                            for j in 0..n {
                                let mut acc = 0i64;
                                for p in 0..k {
                                    acc = acc.wrapping_add(
                                        to_i64(at[a.index(bi, i, p)])
                                            .wrapping_mul(to_i64(bt[b.index(bi, p, j)])),
                                    );
                                }
                                assert_eq!(
                                    out[(bi * m + i) * n + j],
                                    to(acc),
                                    "{:?}",
                                    (batch, m, k, n)
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn integers_match_reference_with_wrapping() {
        check_int::<i64>(|x| x, |x| x);
        check_int::<i32>(|x| x as i32, |x| x as i64);
        check_int::<i16>(|x| x as i16, |x| x as i64);
        check_int::<i8>(|x| x as i8, |x| x as i64);
        check_int::<u8>(|x| x as u8, |x| x as i64);
    }

    #[test]
    fn i64_wraps_on_overflow() {
        let a = [i64::MAX, 2];
        let b = [2i64, 1];
        let mut out = [0i64];
        matmul(
            1,
            1,
            2,
            1,
            MatRef::contiguous(&a, 1, 2),
            MatRef::contiguous(&b, 2, 1),
            &mut out,
        )
        .unwrap();
        assert_eq!(out[0], i64::MAX.wrapping_mul(2).wrapping_add(2));
    }

    #[test]
    fn large_parallel_f32_and_int() {
        let (m, k, n) = (150, 140, 130);
        let a: Vec<f32> = values(m * k, 7).iter().map(|&x| x as f32).collect();
        let b: Vec<f32> = values(k * n, 8).iter().map(|&x| x as f32).collect();
        let mut out = vec![0f32; m * n];
        let (ar, br) = (MatRef::contiguous(&a, m, k), MatRef::contiguous(&b, k, n));
        matmul(1, m, k, n, ar, br, &mut out).unwrap();
        let r = reference((1, m, k, n), ar, br, |acc, x, y| acc + x as f64 * y as f64);
        assert!(out
            .iter()
            .zip(&r)
            .all(|(o, e)| (*o as f64 - e).abs() < 1e-3));
        let ai: Vec<i32> = values(m * k, 7).iter().map(|&x| x as i32).collect();
        let bi: Vec<i32> = values(k * n, 8).iter().map(|&x| x as i32).collect();
        let mut oi = vec![0i32; m * n];
        matmul(
            1,
            m,
            k,
            n,
            MatRef::contiguous(&ai, m, k),
            MatRef::contiguous(&bi, k, n),
            &mut oi,
        )
        .unwrap();
        assert!(oi.iter().zip(&r).all(|(o, e)| *o as f64 == *e));
    }

    #[test]
    fn empty_and_zero_k() {
        let a = [1.0f32; 6];
        let b = [1.0f32; 6];
        // k == 0: zeros.
        let mut out = [7.0f32; 4];
        matmul(
            1,
            2,
            0,
            2,
            MatRef::contiguous(&[], 2, 0),
            MatRef::contiguous(&[], 0, 2),
            &mut out,
        )
        .unwrap();
        assert_eq!(out, [0.0; 4]);
        let mut oi = [7i32; 4];
        matmul(
            1,
            2,
            0,
            2,
            MatRef::contiguous(&[], 2, 0),
            MatRef::contiguous(&[], 0, 2),
            &mut oi,
        )
        .unwrap();
        assert_eq!(oi, [0; 4]);
        let mut ob = [bf16::ONE; 4];
        matmul(
            1,
            2,
            0,
            2,
            MatRef::contiguous(&[], 2, 0),
            MatRef::contiguous(&[], 0, 2),
            &mut ob,
        )
        .unwrap();
        assert_eq!(ob, [bf16::ZERO; 4]);
        // m == 0, n == 0, batch == 0: empty output, views not read.
        let mut empty: [f32; 0] = [];
        matmul(
            1,
            0,
            3,
            2,
            MatRef::contiguous(&[], 0, 3),
            MatRef::contiguous(&b, 3, 2),
            &mut empty,
        )
        .unwrap();
        matmul(
            1,
            2,
            3,
            0,
            MatRef::contiguous(&a, 2, 3),
            MatRef::contiguous(&[], 3, 0),
            &mut empty,
        )
        .unwrap();
        matmul(
            0,
            2,
            3,
            2,
            MatRef::contiguous(&[], 2, 3),
            MatRef::contiguous(&[], 3, 2),
            &mut empty,
        )
        .unwrap();
    }

    #[test]
    fn invalid_views_are_errors() {
        let a = [1.0f32; 6];
        let b = [1.0f32; 6];
        let mut out = [0.0f32; 4];
        let ok_a = MatRef::contiguous(&a[..], 2, 3);
        let ok_b = MatRef::contiguous(&b[..], 3, 2);
        assert!(matmul(1, 2, 3, 2, ok_a, ok_b, &mut out).is_ok());
        // Wrong output length.
        assert!(matches!(
            matmul(1, 2, 3, 2, ok_a, ok_b, &mut out[..3]),
            Err(Error::Invalid(_))
        ));
        // a too short for 2 batches.
        let mut out2 = [0.0f32; 8];
        assert!(matches!(
            matmul(2, 2, 3, 2, ok_a, ok_b, &mut out2),
            Err(Error::Invalid(_))
        ));
        // Offset pushes past the end.
        let bad = MatRef { offset: 1, ..ok_a };
        assert!(matches!(
            matmul(1, 2, 3, 2, bad, ok_b, &mut out),
            Err(Error::Invalid(_))
        ));
        // Negative stride reaching before the start.
        let bad = MatRef {
            col_stride: -1,
            ..ok_b
        };
        assert!(matches!(
            matmul(1, 2, 3, 2, ok_a, bad, &mut out),
            Err(Error::Invalid(_))
        ));
        // Huge strides do not overflow.
        let bad = MatRef {
            row_stride: isize::MAX,
            ..ok_a
        };
        assert!(matches!(
            matmul(1, 2, 3, 2, bad, ok_b, &mut out),
            Err(Error::Invalid(_))
        ));
        let bad = MatRef {
            batch_stride: isize::MIN,
            ..ok_a
        };
        assert!(matches!(
            matmul(3, 2, 3, 2, bad, ok_b, &mut [0.0; 12]),
            Err(Error::Invalid(_))
        ));
        // Output size overflow.
        assert!(matches!(
            matmul(usize::MAX, 2, 3, 2, ok_a, ok_b, &mut out),
            Err(Error::Invalid(_))
        ));
        // Integers are validated the same way.
        let ai = [1i8; 6];
        let mut oi = [0i8; 4];
        let bad = MatRef {
            offset: 4,
            ..MatRef::contiguous(&ai[..], 2, 3)
        };
        assert!(matches!(
            matmul(1, 2, 3, 2, bad, MatRef::contiguous(&ai[..], 3, 2), &mut oi),
            Err(Error::Invalid(_))
        ));
    }

    #[test]
    fn transposed_helper() {
        // a^T where a is stored 3x2 -> logical 2x3.
        let a = [1.0f64, 2.0, 3.0, 4.0, 5.0, 6.0];
        let b = [1.0f64, 0.0, 0.0, 1.0, 1.0, 1.0];
        let mut out = [0.0f64; 4];
        matmul(
            1,
            2,
            3,
            2,
            MatRef::contiguous(&a[..], 3, 2).t(),
            MatRef::contiguous(&b[..], 3, 2),
            &mut out,
        )
        .unwrap();
        // a^T = [[1,3,5],[2,4,6]]
        assert_eq!(out, [6.0, 8.0, 8.0, 10.0]);
    }
}
