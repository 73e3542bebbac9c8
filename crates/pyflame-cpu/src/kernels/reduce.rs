//! Reductions over one axis of a logical row-major input viewed as `[outer, r, inner]`.
//!
//! [`reduce`] writes `out[o, j] = op_{i < r} x[o, i, j]` (shape `[outer, inner]`) and
//! [`arg_reduce`] the index `i` of the extreme value. Semantics follow PyTorch:
//! * `Max`/`Min` propagate NaN; `arg_reduce` returns the first index of the extreme value,
//!   where NaN counts as the extreme;
//! * `r == 0` gives the identity (0 for `Sum`, 1 for `Prod`, -inf/+inf or `i64::MIN/MAX` for
//!   `Max`/`Min`, which callers reject anyway);
//! * `i64` sums and products wrap.
//!
//! Accuracy: contiguous `f32` sums use 32 independent `f32` lanes over blocks of 4096 elements
//! and combine the block results in `f64`, so summing 16M ones is exact and random data matches
//! an `f64` reference to ~1e-7 relative. Along a strided axis (`inner > 1`) each `f32` lane
//! takes at most 64 values before it is flushed into an `f64` lane. Products accumulate in
//! `f64` directly.
//!
//! The input comes from a [`Source`]: a plain slice (read in place) or a producer such as a
//! fused elementwise program, pulled through `fill` in blocks of at most 4096 elements.
//!
//! Parallelism: reductions with at least [`PARALLEL_THRESHOLD`] input elements use rayon,
//! splitting over `outer` rows, over `inner` columns, or (for a few long rows) over fixed-size
//! chunks of `r` with an in-order final combine. For `inner == 1` the result does not depend on
//! the number of threads.

use super::simd::multiversion;
use rayon::prelude::*;

/// Input elements (`outer * r * inner`) from which a reduction uses the rayon pool.
pub const PARALLEL_THRESHOLD: usize = 32 * 1024;

/// Maximum number of elements per `fill` call and per first-level block.
const BLOCK: usize = 4096;
/// Elements per second-level chunk of a long row (also the parallel task size).
const CHUNK: usize = 64 * 1024;
/// Independent accumulators of the contiguous block reduction.
const LANES: usize = 32;
/// Width below which rows of a column reduction are processed several at a time.
const MIN_GROUP_WIDTH: usize = 64;
/// Slabs (`r * inner` of one output row) at most this large take a simple scalar path.
const SMALL_SLAB: usize = 256;

/// The reduction operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// Sum (wrapping for integers).
    Sum,
    /// Product (wrapping for integers).
    Prod,
    /// Maximum (NaN propagates).
    Max,
    /// Minimum (NaN propagates).
    Min,
}

/// Produces elements of the logical input on demand (a fused elementwise producer, or a plain
/// slice).
pub trait Source<T>: Sync {
    /// Writes logical elements `start .. start + out.len()` into `out`
    /// (`out.len() <= 4096` when called by the reductions).
    fn fill(&self, start: usize, out: &mut [T]);

    /// The whole logical input, when it is already materialized; the reductions then read it
    /// in place instead of calling [`Source::fill`].
    fn as_slice(&self) -> Option<&[T]> {
        None
    }
}

impl<T: Copy + Sync> Source<T> for [T] {
    fn fill(&self, start: usize, out: &mut [T]) {
        out.copy_from_slice(&self[start..start + out.len()]);
    }

    fn as_slice(&self) -> Option<&[T]> {
        Some(self)
    }
}

mod sealed {
    /// Arithmetic used by the reduction loops (implemented for f32, f64, i64).
    pub trait Num: Copy + Send + Sync + PartialOrd + 'static {
        /// Additive identity.
        const ZERO: Self;
        /// Multiplicative identity.
        const ONE: Self;
        /// Identity of max (-inf or MIN).
        const LOWEST: Self;
        /// Identity of min (+inf or MAX).
        const HIGHEST: Self;
        /// Addition (wrapping for integers).
        fn add(self, o: Self) -> Self;
        /// Multiplication (wrapping for integers).
        fn mul(self, o: Self) -> Self;
        /// True for NaN.
        fn is_nan(self) -> bool;
    }

    /// Element type with a wider accumulator for sums and products.
    pub trait Sealed: Num {
        /// Accumulator type (f64 for floats, i64 for i64).
        type Acc: Num;
        /// Widens (exactly).
        fn to_acc(self) -> Self::Acc;
        /// Narrows (rounding).
        fn from_acc(a: Self::Acc) -> Self;
    }
}

use sealed::Num;

macro_rules! impl_num_float {
    ($t:ty) => {
        impl Num for $t {
            const ZERO: Self = 0.0;
            const ONE: Self = 1.0;
            const LOWEST: Self = <$t>::NEG_INFINITY;
            const HIGHEST: Self = <$t>::INFINITY;
            #[inline(always)]
            fn add(self, o: Self) -> Self {
                self + o
            }
            #[inline(always)]
            fn mul(self, o: Self) -> Self {
                self * o
            }
            #[inline(always)]
            #[allow(clippy::eq_op)]
            fn is_nan(self) -> bool {
                self != self
            }
        }
    };
}

impl_num_float!(f32);
impl_num_float!(f64);

impl Num for i64 {
    const ZERO: Self = 0;
    const ONE: Self = 1;
    const LOWEST: Self = i64::MIN;
    const HIGHEST: Self = i64::MAX;
    #[inline(always)]
    fn add(self, o: Self) -> Self {
        self.wrapping_add(o)
    }
    #[inline(always)]
    fn mul(self, o: Self) -> Self {
        self.wrapping_mul(o)
    }
    #[inline(always)]
    fn is_nan(self) -> bool {
        false
    }
}

impl sealed::Sealed for f32 {
    type Acc = f64;
    #[inline(always)]
    fn to_acc(self) -> f64 {
        self as f64
    }
    #[inline(always)]
    fn from_acc(a: f64) -> Self {
        a as f32
    }
}

impl sealed::Sealed for f64 {
    type Acc = f64;
    #[inline(always)]
    fn to_acc(self) -> f64 {
        self
    }
    #[inline(always)]
    fn from_acc(a: f64) -> Self {
        a
    }
}

impl sealed::Sealed for i64 {
    type Acc = i64;
    #[inline(always)]
    fn to_acc(self) -> i64 {
        self
    }
    #[inline(always)]
    fn from_acc(a: i64) -> Self {
        a
    }
}

/// Element types the reductions support: `f32`, `f64`, `i64`.
pub trait ReduceElement: sealed::Sealed {}

impl ReduceElement for f32 {}
impl ReduceElement for f64 {}
impl ReduceElement for i64 {}

type Acc<T> = <T as sealed::Sealed>::Acc;

const SUM: u8 = 0;
const PROD: u8 = 1;
const MAX: u8 = 2;
const MIN: u8 = 3;

/// The identity of operation `K`.
#[inline(always)]
fn ident<T: Num, const K: u8>() -> T {
    match K {
        SUM => T::ZERO,
        PROD => T::ONE,
        MAX => T::LOWEST,
        _ => T::HIGHEST,
    }
}

/// Operation `K` (max/min keep NaN from either side).
#[inline(always)]
fn op<T: Num, const K: u8>(a: T, b: T) -> T {
    match K {
        SUM => a.add(b),
        PROD => a.mul(b),
        MAX => {
            if b > a || b.is_nan() {
                b
            } else {
                a
            }
        }
        _ => {
            if b < a || b.is_nan() {
                b
            } else {
                a
            }
        }
    }
}

fn identity<T: Num>(kind: ReduceKind) -> T {
    match kind {
        ReduceKind::Sum => ident::<T, SUM>(),
        ReduceKind::Prod => ident::<T, PROD>(),
        ReduceKind::Max => ident::<T, MAX>(),
        ReduceKind::Min => ident::<T, MIN>(),
    }
}

fn combine<T: Num>(kind: ReduceKind, a: T, b: T) -> T {
    match kind {
        ReduceKind::Sum => op::<T, SUM>(a, b),
        ReduceKind::Prod => op::<T, PROD>(a, b),
        ReduceKind::Max => op::<T, MAX>(a, b),
        ReduceKind::Min => op::<T, MIN>(a, b),
    }
}

// -------------------------------------------------------------------------------------------
// Vectorized slice kernels (runtime-dispatched)
// -------------------------------------------------------------------------------------------

/// Reduces a contiguous block with [`LANES`] independent accumulators, combined pairwise in
/// the wide type.
#[inline(always)]
fn lanes_reduce<T: ReduceElement, const K: u8>(xs: &[T]) -> Acc<T> {
    if xs.len() < 8 {
        let mut acc = ident::<Acc<T>, K>();
        for x in xs {
            acc = op::<Acc<T>, K>(acc, x.to_acc());
        }
        return acc;
    }
    if xs.len() < LANES {
        // Short rows: one vector of 8 lanes, then a horizontal combine.
        let mut acc = [ident::<Acc<T>, K>(); 8];
        let chunks = xs.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a = op::<Acc<T>, K>(*a, x.to_acc());
            }
        }
        for (a, x) in acc.iter_mut().zip(tail) {
            *a = op::<Acc<T>, K>(*a, x.to_acc());
        }
        return acc.into_iter().fold(ident::<Acc<T>, K>(), op::<Acc<T>, K>);
    }
    if K == PROD {
        // Products accumulate in the wide type: f32 rounding would compound over long rows.
        let mut acc = [ident::<Acc<T>, K>(); LANES];
        let chunks = xs.chunks_exact(LANES);
        let tail = chunks.remainder();
        for c in chunks {
            for (a, x) in acc.iter_mut().zip(c) {
                *a = op::<Acc<T>, K>(*a, x.to_acc());
            }
        }
        for (a, x) in acc.iter_mut().zip(tail) {
            *a = op::<Acc<T>, K>(*a, x.to_acc());
        }
        return acc.into_iter().fold(ident::<Acc<T>, K>(), op::<Acc<T>, K>);
    }
    let mut acc = [ident::<T, K>(); LANES];
    let chunks = xs.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (a, x) in acc.iter_mut().zip(c) {
            *a = op::<T, K>(*a, *x);
        }
    }
    for (a, x) in acc.iter_mut().zip(tail) {
        *a = op::<T, K>(*a, *x);
    }
    let mut wide = [ident::<Acc<T>, K>(); LANES];
    for (w, a) in wide.iter_mut().zip(&acc) {
        *w = a.to_acc();
    }
    let mut step = LANES / 2;
    while step > 0 {
        for l in 0..step {
            wide[l] = op::<Acc<T>, K>(wide[l], wide[l + step]);
        }
        step /= 2;
    }
    wide[0]
}

#[inline(always)]
fn block_reduce_body<const FMA: bool, T: ReduceElement>(kind: ReduceKind, xs: &[T]) -> Acc<T> {
    match kind {
        ReduceKind::Sum => lanes_reduce::<T, SUM>(xs),
        ReduceKind::Prod => lanes_reduce::<T, PROD>(xs),
        ReduceKind::Max => lanes_reduce::<T, MAX>(xs),
        ReduceKind::Min => lanes_reduce::<T, MIN>(xs),
    }
}

multiversion! {
    /// Reduces a contiguous block (at most [`BLOCK`] elements for accurate f32 sums).
    fn block_reduce<T: ReduceElement>(kind: ReduceKind, xs: &[T]) -> Acc<T> = block_reduce_body;
}

/// Rows of a compile-time length `R`: the loop runs across rows (interleaved loads), not
/// along one row, so many rows reduce at once.
#[inline(always)]
fn rows_reduce_fixed<T: ReduceElement, const K: u8, const R: usize>(xs: &[T], out: &mut [T]) {
    for (o, row) in out.iter_mut().zip(xs.chunks_exact(R)) {
        let mut acc = ident::<Acc<T>, K>();
        for x in &row[..R] {
            acc = op::<Acc<T>, K>(acc, x.to_acc());
        }
        *o = T::from_acc(acc);
    }
}

#[inline(always)]
fn rows_reduce_k<T: ReduceElement, const K: u8>(xs: &[T], r: usize, out: &mut [T]) {
    match r {
        1 => return rows_reduce_fixed::<T, K, 1>(xs, out),
        2 => return rows_reduce_fixed::<T, K, 2>(xs, out),
        3 => return rows_reduce_fixed::<T, K, 3>(xs, out),
        4 => return rows_reduce_fixed::<T, K, 4>(xs, out),
        _ => {}
    }
    for (o, row) in out.iter_mut().zip(xs.chunks_exact(r)) {
        *o = T::from_acc(lanes_reduce::<T, K>(row));
    }
}

#[inline(always)]
fn rows_reduce_body<const FMA: bool, T: ReduceElement>(
    kind: ReduceKind,
    xs: &[T],
    r: usize,
    out: &mut [T],
) {
    match kind {
        ReduceKind::Sum => rows_reduce_k::<T, SUM>(xs, r, out),
        ReduceKind::Prod => rows_reduce_k::<T, PROD>(xs, r, out),
        ReduceKind::Max => rows_reduce_k::<T, MAX>(xs, r, out),
        ReduceKind::Min => rows_reduce_k::<T, MIN>(xs, r, out),
    }
}

multiversion! {
    /// `out[o] = reduce(xs[o*r .. (o+1)*r])` for short contiguous rows (`r <= BLOCK`).
    fn rows_reduce<T: ReduceElement>(kind: ReduceKind, xs: &[T], r: usize, out: &mut [T]) = rows_reduce_body;
}

/// Small slabs with a compile-time width `N`: the accumulators live in registers.
#[inline(always)]
fn slabs_reduce_fixed<T: ReduceElement, const K: u8, const N: usize>(
    xs: &[T],
    r: usize,
    out: &mut [T],
) {
    for (orow, slab) in out.chunks_exact_mut(N).zip(xs.chunks_exact(r * N)) {
        let mut acc = [ident::<Acc<T>, K>(); N];
        for row in slab.chunks_exact(N) {
            for (a, x) in acc.iter_mut().zip(row) {
                *a = op::<Acc<T>, K>(*a, x.to_acc());
            }
        }
        for (o, a) in orow.iter_mut().zip(acc) {
            *o = T::from_acc(a);
        }
    }
}

#[inline(always)]
fn slabs_reduce_k<T: ReduceElement, const K: u8>(xs: &[T], r: usize, inner: usize, out: &mut [T]) {
    match inner {
        2 => return slabs_reduce_fixed::<T, K, 2>(xs, r, out),
        3 => return slabs_reduce_fixed::<T, K, 3>(xs, r, out),
        4 => return slabs_reduce_fixed::<T, K, 4>(xs, r, out),
        _ => {}
    }
    let mut lanes = [ident::<Acc<T>, K>(); SMALL_SLAB];
    let acc = &mut lanes[..inner];
    for (orow, slab) in out.chunks_exact_mut(inner).zip(xs.chunks_exact(r * inner)) {
        acc.fill(ident::<Acc<T>, K>());
        for row in slab.chunks_exact(inner) {
            for (a, x) in acc.iter_mut().zip(row) {
                *a = op::<Acc<T>, K>(*a, x.to_acc());
            }
        }
        for (o, a) in orow.iter_mut().zip(acc.iter()) {
            *o = T::from_acc(*a);
        }
    }
}

#[inline(always)]
fn slabs_reduce_body<const FMA: bool, T: ReduceElement>(
    kind: ReduceKind,
    xs: &[T],
    r: usize,
    inner: usize,
    out: &mut [T],
) {
    match kind {
        ReduceKind::Sum => slabs_reduce_k::<T, SUM>(xs, r, inner, out),
        ReduceKind::Prod => slabs_reduce_k::<T, PROD>(xs, r, inner, out),
        ReduceKind::Max => slabs_reduce_k::<T, MAX>(xs, r, inner, out),
        ReduceKind::Min => slabs_reduce_k::<T, MIN>(xs, r, inner, out),
    }
}

multiversion! {
    /// Reduces consecutive small `[r, inner]` slabs of `xs` into rows of `inner` outputs.
    fn slabs_reduce<T: ReduceElement>(kind: ReduceKind, xs: &[T], r: usize, inner: usize, out: &mut [T]) = slabs_reduce_body;
}

#[inline(always)]
fn accumulate_rows<T: Num, const K: u8>(acc: &mut [T], xs: &[T]) {
    for row in xs.chunks(acc.len()) {
        for (a, x) in acc.iter_mut().zip(row) {
            *a = op::<T, K>(*a, *x);
        }
    }
}

#[inline(always)]
fn accumulate_rows_wide<T: ReduceElement, const K: u8>(acc: &mut [Acc<T>], xs: &[T]) {
    for row in xs.chunks(acc.len()) {
        for (a, x) in acc.iter_mut().zip(row) {
            *a = op::<Acc<T>, K>(*a, x.to_acc());
        }
    }
}

#[inline(always)]
fn accumulate_body<const FMA: bool, T: ReduceElement>(
    kind: ReduceKind,
    acc: &mut [T],
    wide: &mut [Acc<T>],
    xs: &[T],
) {
    match kind {
        ReduceKind::Sum => accumulate_rows::<T, SUM>(acc, xs),
        ReduceKind::Prod => accumulate_rows_wide::<T, PROD>(wide, xs),
        ReduceKind::Max => accumulate_rows::<T, MAX>(acc, xs),
        ReduceKind::Min => accumulate_rows::<T, MIN>(acc, xs),
    }
}

multiversion! {
    /// `acc[l] = op(acc[l], row[l])` for each consecutive row of `xs` of width `acc.len()`
    /// (the last row may be shorter); products go straight into the wide lanes `wide`.
    fn accumulate<T: ReduceElement>(kind: ReduceKind, acc: &mut [T], wide: &mut [Acc<T>], xs: &[T]) = accumulate_body;
}

/// Moves the element-type lanes into the wide lanes (`wide[l] = op(wide[l], acc[l])`) and
/// resets them.
fn flush_lanes<T: ReduceElement>(kind: ReduceKind, acc: &mut [T], wide: &mut [Acc<T>]) {
    let id = identity::<T>(kind);
    for (w, a) in wide.iter_mut().zip(acc.iter_mut()) {
        *w = combine(kind, *w, a.to_acc());
        *a = id;
    }
}

// -------------------------------------------------------------------------------------------
// Reading the source
// -------------------------------------------------------------------------------------------

/// Reads blocks of the logical input: borrowed from the slice when the source has one, or
/// produced into a private buffer.
struct Reader<'a, T, S: ?Sized> {
    src: &'a S,
    slice: Option<&'a [T]>,
    buf: Vec<T>,
}

impl<'a, T: ReduceElement, S: Source<T> + ?Sized> Reader<'a, T, S> {
    fn new(src: &'a S) -> Self {
        let slice = src.as_slice();
        let buf = if slice.is_some() {
            Vec::new()
        } else {
            vec![T::ZERO; BLOCK]
        };
        Reader { src, slice, buf }
    }

    /// Logical elements `start .. start + len` (`len <= BLOCK`).
    #[inline]
    fn read(&mut self, start: usize, len: usize) -> &[T] {
        debug_assert!(len <= BLOCK);
        match self.slice {
            Some(s) => &s[start..start + len],
            None => {
                let b = &mut self.buf[..len];
                self.src.fill(start, b);
                b
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// inner == 1: contiguous rows
// -------------------------------------------------------------------------------------------

/// Reduces `len <= CHUNK` contiguous elements starting at `start`, block by block.
fn reduce_span<T: ReduceElement, S: Source<T> + ?Sized>(
    kind: ReduceKind,
    rd: &mut Reader<'_, T, S>,
    start: usize,
    len: usize,
) -> Acc<T> {
    let mut acc = identity::<Acc<T>>(kind);
    let mut off = 0;
    while off < len {
        let n = BLOCK.min(len - off);
        acc = combine(kind, acc, block_reduce(kind, rd.read(start + off, n)));
        off += n;
    }
    acc
}

/// Reduces one row of `r` elements: blocks combined into chunks of [`CHUNK`], chunks combined
/// in order (the same association as the parallel version).
fn reduce_row<T: ReduceElement, S: Source<T> + ?Sized>(
    kind: ReduceKind,
    rd: &mut Reader<'_, T, S>,
    start: usize,
    r: usize,
) -> T {
    let mut total = identity::<Acc<T>>(kind);
    let mut off = 0;
    while off < r {
        let n = CHUNK.min(r - off);
        total = combine(kind, total, reduce_span(kind, rd, start + off, n));
        off += n;
    }
    T::from_acc(total)
}

/// One long row, its chunks spread over the pool.
fn reduce_row_parallel<T: ReduceElement, S: Source<T> + ?Sized>(
    kind: ReduceKind,
    src: &S,
    start: usize,
    r: usize,
) -> T {
    let chunks = r.div_ceil(CHUNK);
    let partials: Vec<Acc<T>> = (0..chunks)
        .into_par_iter()
        .map_init(
            || Reader::new(src),
            |rd, c| {
                let off = c * CHUNK;
                reduce_span(kind, rd, start + off, CHUNK.min(r - off))
            },
        )
        .collect();
    let total = partials
        .into_iter()
        .fold(identity::<Acc<T>>(kind), |a, b| combine(kind, a, b));
    T::from_acc(total)
}

/// Rows `o0 .. o0 + out.len()` of the `inner == 1` case.
fn reduce_rows<T: ReduceElement, S: Source<T> + ?Sized>(
    kind: ReduceKind,
    rd: &mut Reader<'_, T, S>,
    r: usize,
    o0: usize,
    out: &mut [T],
) {
    if r > BLOCK {
        for (i, o) in out.iter_mut().enumerate() {
            *o = reduce_row(kind, rd, (o0 + i) * r, r);
        }
        return;
    }
    // Several short rows per read.
    let rows_per_read = BLOCK / r;
    for (ci, outs) in out.chunks_mut(rows_per_read).enumerate() {
        let start = (o0 + ci * rows_per_read) * r;
        let xs = rd.read(start, outs.len() * r);
        rows_reduce(kind, xs, r, outs);
    }
}

// -------------------------------------------------------------------------------------------
// inner > 1: column accumulation
// -------------------------------------------------------------------------------------------

/// Scratch space of a column reduction task.
struct ColScratch<T: ReduceElement> {
    /// Element-type lanes (sum, max, min).
    acc: Vec<T>,
    /// Wide lanes (products, and flushed element-type lanes).
    lanes: Vec<Acc<T>>,
    /// Per-column result.
    wide: Vec<Acc<T>>,
}

impl<T: ReduceElement> ColScratch<T> {
    fn new() -> Self {
        ColScratch {
            acc: Vec::new(),
            lanes: Vec::new(),
            wide: Vec::new(),
        }
    }
}

/// Element-type additions per lane between two flushes into the wide lanes (keeps f32 column
/// sums accurate).
const FLUSH_ADDS: usize = 64;

/// Reduces rows `i0 .. i0 + rows` of output row `o`, columns `j0 .. j0 + jlen`
/// (`jlen <= BLOCK`), into `sc.wide[..jlen]`.
#[allow(clippy::too_many_arguments)]
fn reduce_cols_span<T: ReduceElement, S: Source<T> + ?Sized>(
    kind: ReduceKind,
    rd: &mut Reader<'_, T, S>,
    sc: &mut ColScratch<T>,
    o: usize,
    r: usize,
    inner: usize,
    i0: usize,
    rows: usize,
    j0: usize,
    jlen: usize,
) {
    let full = jlen == inner;
    // Narrow rows are processed `g` at a time: lane l then holds column l % jlen.
    let g = if full && jlen < MIN_GROUP_WIDTH {
        MIN_GROUP_WIDTH.div_ceil(jlen)
    } else {
        1
    };
    let w = g * jlen;
    sc.acc.clear();
    sc.acc.resize(w, identity::<T>(kind));
    sc.lanes.clear();
    sc.lanes.resize(w, identity::<Acc<T>>(kind));
    let base = (o * r + i0) * inner + j0;
    let mut pending = 0;
    if full {
        // Rows are contiguous: read whole groups, up to BLOCK elements at a time.
        let rows_per_read = (BLOCK / w).max(1) * g;
        let mut i = 0;
        while i < rows {
            let nr = rows_per_read.min(rows - i);
            let xs = rd.read(base + i * inner, nr * inner);
            accumulate(kind, &mut sc.acc, &mut sc.lanes, xs);
            i += nr;
            pending += nr.div_ceil(g);
            if pending >= FLUSH_ADDS {
                flush_lanes(kind, &mut sc.acc, &mut sc.lanes);
                pending = 0;
            }
        }
    } else {
        for i in 0..rows {
            let xs = rd.read(base + i * inner, jlen);
            accumulate(kind, &mut sc.acc, &mut sc.lanes, xs);
            pending += 1;
            if pending >= FLUSH_ADDS {
                flush_lanes(kind, &mut sc.acc, &mut sc.lanes);
                pending = 0;
            }
        }
    }
    flush_lanes(kind, &mut sc.acc, &mut sc.lanes);
    sc.wide.clear();
    sc.wide.extend_from_slice(&sc.lanes[..jlen]);
    for (l, a) in sc.lanes.iter().enumerate().skip(jlen) {
        let j = l % jlen;
        sc.wide[j] = combine(kind, sc.wide[j], *a);
    }
}

/// Reduces output rows `o0 .. o0 + out.len() / inner` (all `r` rows, all columns) into `out`.
fn reduce_slabs<T: ReduceElement, S: Source<T> + ?Sized>(
    kind: ReduceKind,
    rd: &mut Reader<'_, T, S>,
    sc: &mut ColScratch<T>,
    o0: usize,
    r: usize,
    inner: usize,
    out: &mut [T],
) {
    let slab = r * inner;
    if slab <= SMALL_SLAB {
        // Several small slabs per read.
        let per_read = BLOCK / slab;
        for (ci, outs) in out.chunks_mut(per_read * inner).enumerate() {
            let start = (o0 + ci * per_read) * slab;
            let xs = rd.read(start, outs.len() / inner * slab);
            slabs_reduce(kind, xs, r, inner, outs);
        }
        return;
    }
    for (k, orow) in out.chunks_mut(inner).enumerate() {
        reduce_slab(kind, rd, sc, o0 + k, r, inner, orow);
    }
}

/// Reduces the whole of output row `o` (all `r` rows, all columns) into `out` (`inner` long),
/// for slabs larger than [`SMALL_SLAB`].
fn reduce_slab<T: ReduceElement, S: Source<T> + ?Sized>(
    kind: ReduceKind,
    rd: &mut Reader<'_, T, S>,
    sc: &mut ColScratch<T>,
    o: usize,
    r: usize,
    inner: usize,
    out: &mut [T],
) {
    // Column chunks of at most BLOCK, balanced (4097 columns -> 2049 + 2048).
    let cw = inner.div_ceil(inner.div_ceil(BLOCK));
    for (jc, outs) in out.chunks_mut(cw).enumerate() {
        let j0 = jc * cw;
        reduce_cols_span(kind, rd, sc, o, r, inner, 0, r, j0, outs.len());
        for (o, w) in outs.iter_mut().zip(&sc.wide) {
            *o = T::from_acc(*w);
        }
    }
}

/// Reduces `src` (logical row-major `[outer, r, inner]`) over the middle axis into `out`
/// (`[outer, inner]`, row-major).
///
/// `src` is a plain slice (`&[T]`, read in place) or any [`Source`] (`&dyn Source<T>` works
/// too; a slice cannot be coerced to `dyn`, hence the generic parameter).
///
/// # Panics
/// If `out.len() != outer * inner`, if `outer * r * inner` overflows, or if a slice source is
/// shorter than `outer * r * inner` (caller bugs, not data-dependent conditions).
pub fn reduce<T: ReduceElement, S: Source<T> + ?Sized>(
    kind: ReduceKind,
    src: &S,
    outer: usize,
    r: usize,
    inner: usize,
    out: &mut [T],
) {
    let total = outer
        .checked_mul(r)
        .and_then(|v| v.checked_mul(inner))
        .expect("reduce: outer * r * inner overflows usize");
    assert_eq!(
        out.len(),
        outer * inner,
        "reduce: output length must be outer * inner"
    );
    if let Some(s) = src.as_slice() {
        assert!(
            s.len() >= total,
            "reduce: source has {} elements, need {total}",
            s.len()
        );
    }
    if out.is_empty() {
        return;
    }
    if r == 0 {
        out.fill(identity::<T>(kind));
        return;
    }
    let threads = rayon::current_num_threads();
    let parallel = total >= PARALLEL_THRESHOLD && threads > 1;

    if inner == 1 {
        if !parallel {
            reduce_rows(kind, &mut Reader::new(src), r, 0, out);
        } else if outer >= 2 * threads || r <= CHUNK {
            let rows_per_task = outer
                .div_ceil(threads * 4)
                .max(PARALLEL_THRESHOLD.div_ceil(r));
            out.par_chunks_mut(rows_per_task).enumerate().for_each_init(
                || Reader::new(src),
                |rd, (t, outs)| reduce_rows(kind, rd, r, t * rows_per_task, outs),
            );
        } else {
            for (o, v) in out.iter_mut().enumerate() {
                *v = reduce_row_parallel(kind, src, o * r, r);
            }
        }
        return;
    }

    let slab = r * inner;
    if !parallel {
        let (mut rd, mut sc) = (Reader::new(src), ColScratch::new());
        reduce_slabs(kind, &mut rd, &mut sc, 0, r, inner, out);
    } else if outer >= 2 * threads || slab <= SMALL_SLAB {
        let rows_per_task = outer
            .div_ceil(threads * 4)
            .max(PARALLEL_THRESHOLD.div_ceil(slab));
        out.par_chunks_mut(rows_per_task * inner)
            .enumerate()
            .for_each_init(
                || (Reader::new(src), ColScratch::new()),
                |(rd, sc), (t, outs)| reduce_slabs(kind, rd, sc, t * rows_per_task, r, inner, outs),
            );
    } else if inner >= 2 * 512 {
        // Few output rows, wide: split the columns.
        let cols = inner.div_ceil(threads * 2).clamp(512, BLOCK);
        for (o, orow) in out.chunks_mut(inner).enumerate() {
            orow.par_chunks_mut(cols).enumerate().for_each_init(
                || (Reader::new(src), ColScratch::new()),
                |(rd, sc), (c, outs)| {
                    reduce_cols_span(kind, rd, sc, o, r, inner, 0, r, c * cols, outs.len());
                    for (v, w) in outs.iter_mut().zip(&sc.wide) {
                        *v = T::from_acc(*w);
                    }
                },
            );
        }
    } else {
        // Few output rows, narrow (inner < 1024), long r: split r, combine partials in order.
        let rows_per_task = r.div_ceil(threads * 4).max(CHUNK / inner);
        let tasks = r.div_ceil(rows_per_task);
        for (o, orow) in out.chunks_mut(inner).enumerate() {
            let partials: Vec<Vec<Acc<T>>> = (0..tasks)
                .into_par_iter()
                .map_init(
                    || (Reader::new(src), ColScratch::new()),
                    |(rd, sc), t| {
                        let i0 = t * rows_per_task;
                        let rows = rows_per_task.min(r - i0);
                        reduce_cols_span(kind, rd, sc, o, r, inner, i0, rows, 0, inner);
                        sc.wide.clone()
                    },
                )
                .collect();
            for (j, v) in orow.iter_mut().enumerate() {
                let acc = partials
                    .iter()
                    .fold(identity::<Acc<T>>(kind), |a, p| combine(kind, a, p[j]));
                *v = T::from_acc(acc);
            }
        }
    }
}

// -------------------------------------------------------------------------------------------
// argmax / argmin
// -------------------------------------------------------------------------------------------

/// True when `x` should replace `best` (strictly better, or the first NaN).
#[inline(always)]
fn better<T: Num>(is_max: bool, x: T, best: T) -> bool {
    let strictly = if is_max { x > best } else { x < best };
    strictly || (x.is_nan() && !best.is_nan())
}

/// First index of the extreme of a contiguous row.
fn arg_row<T: ReduceElement>(is_max: bool, row: &[T]) -> i64 {
    // Pass 1: the extreme value (vectorized, NaN-propagating); pass 2: its first position.
    let kind = if is_max {
        ReduceKind::Max
    } else {
        ReduceKind::Min
    };
    let mut ext = identity::<T>(kind);
    for block in row.chunks(BLOCK) {
        ext = combine(kind, ext, T::from_acc(block_reduce(kind, block)));
    }
    let pos = if ext.is_nan() {
        row.iter().position(|x| x.is_nan())
    } else {
        row.iter().position(|x| *x == ext)
    };
    pos.unwrap_or(0) as i64
}

/// Branch-free update of running extremes `best` and their indices `idx` with row `i`.
#[inline(always)]
fn arg_update_k<T: ReduceElement, const IS_MAX: bool>(
    best: &mut [T],
    idx: &mut [i64],
    row: &[T],
    i: i64,
) {
    for ((b, ix), x) in best.iter_mut().zip(idx.iter_mut()).zip(row) {
        let strictly = if IS_MAX { *x > *b } else { *x < *b };
        let take = strictly | (x.is_nan() & !b.is_nan());
        *b = if take { *x } else { *b };
        *ix = if take { i } else { *ix };
    }
}

#[inline(always)]
fn arg_update_body<const FMA: bool, T: ReduceElement>(
    is_max: bool,
    best: &mut [T],
    idx: &mut [i64],
    row: &[T],
    i: i64,
) {
    if is_max {
        arg_update_k::<T, true>(best, idx, row, i);
    } else {
        arg_update_k::<T, false>(best, idx, row, i);
    }
}

multiversion! {
    /// Updates running extremes with one row (see [`arg_update_k`]).
    fn arg_update<T: ReduceElement>(is_max: bool, best: &mut [T], idx: &mut [i64], row: &[T], i: i64) = arg_update_body;
}

/// Argmax/argmin over rows `0..r` of columns `j0 .. j0 + out.len()` of a `[r, inner]` slab.
fn arg_cols<T: ReduceElement>(
    is_max: bool,
    slab: &[T],
    inner: usize,
    j0: usize,
    out: &mut [i64],
    best: &mut Vec<T>,
) {
    let w = out.len();
    best.clear();
    best.extend_from_slice(&slab[j0..j0 + w]);
    out.fill(0);
    for (i, row) in slab.chunks_exact(inner).enumerate().skip(1) {
        arg_update(is_max, best, out, &row[j0..j0 + w], i as i64);
    }
}

/// Writes the index (along the middle axis) of the maximum (`is_max`) or minimum of
/// `src` viewed as `[outer, r, inner]` into `out` (`[outer, inner]`).
///
/// Returns the first index of the extreme value; NaN counts as the extreme (the first NaN
/// wins). `r == 0` writes zeros (callers reject it).
///
/// # Panics
/// If `out.len() != outer * inner`, if `outer * r * inner` overflows or if `src` is shorter
/// than `outer * r * inner`.
pub fn arg_reduce<T: ReduceElement>(
    is_max: bool,
    src: &[T],
    outer: usize,
    r: usize,
    inner: usize,
    out: &mut [i64],
) {
    let total = outer
        .checked_mul(r)
        .and_then(|v| v.checked_mul(inner))
        .expect("arg_reduce: outer * r * inner overflows usize");
    assert_eq!(
        out.len(),
        outer * inner,
        "arg_reduce: output length must be outer * inner"
    );
    assert!(
        src.len() >= total,
        "arg_reduce: source has {} elements, need {total}",
        src.len()
    );
    if r == 0 {
        out.fill(0);
        return;
    }
    if out.is_empty() {
        return;
    }
    let src = &src[..total];
    let threads = rayon::current_num_threads();
    let parallel = total >= PARALLEL_THRESHOLD && threads > 1;
    let slab = r * inner;
    if inner == 1 {
        if parallel && outer >= 2 {
            let rows_per_task = outer
                .div_ceil(threads * 4)
                .max(PARALLEL_THRESHOLD.div_ceil(r));
            out.par_chunks_mut(rows_per_task)
                .zip(src.par_chunks(rows_per_task * r))
                .for_each(|(outs, xs)| {
                    for (o, row) in outs.iter_mut().zip(xs.chunks_exact(r)) {
                        *o = arg_row(is_max, row);
                    }
                });
        } else if parallel {
            // One long row: per-chunk (value, first index) pairs, combined in order.
            let best = src
                .par_chunks(CHUNK)
                .enumerate()
                .map(|(c, xs)| {
                    let i = arg_row(is_max, xs) as usize;
                    (xs[i], c * CHUNK + i)
                })
                .collect::<Vec<_>>()
                .into_iter()
                .reduce(|a, b| if better(is_max, b.0, a.0) { b } else { a });
            out[0] = best.map_or(0, |b| b.1 as i64);
        } else {
            for (o, row) in out.iter_mut().zip(src.chunks_exact(r)) {
                *o = arg_row(is_max, row);
            }
        }
        return;
    }
    if parallel && outer >= 2 {
        let rows_per_task = outer
            .div_ceil(threads * 4)
            .max(PARALLEL_THRESHOLD.div_ceil(slab));
        out.par_chunks_mut(rows_per_task * inner)
            .zip(src.par_chunks(rows_per_task * slab))
            .for_each_init(Vec::new, |best, (outs, xs)| {
                for (orow, s) in outs.chunks_mut(inner).zip(xs.chunks_exact(slab)) {
                    arg_cols(is_max, s, inner, 0, orow, best);
                }
            });
    } else if parallel {
        // One output row, split over columns.
        let cols = inner.div_ceil(threads * 4).max(64);
        out.par_chunks_mut(cols)
            .enumerate()
            .for_each_init(Vec::new, |best, (c, outs)| {
                arg_cols(is_max, src, inner, c * cols, outs, best);
            });
    } else {
        let mut best = Vec::new();
        for (orow, s) in out.chunks_mut(inner).zip(src.chunks_exact(slab)) {
            arg_cols(is_max, s, inner, 0, orow, &mut best);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A non-slice source computing x[i] = f(i), counting calls.
    struct FnSource<T, F: Fn(usize) -> T + Sync>(F, std::sync::atomic::AtomicUsize);

    impl<T: Sync, F: Fn(usize) -> T + Sync> Source<T> for FnSource<T, F> {
        fn fill(&self, start: usize, out: &mut [T]) {
            assert!(out.len() <= BLOCK);
            self.1.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            for (i, o) in out.iter_mut().enumerate() {
                *o = (self.0)(start + i);
            }
        }
    }

    fn naive<T: ReduceElement>(
        kind: ReduceKind,
        x: &[T],
        outer: usize,
        r: usize,
        inner: usize,
    ) -> Vec<Acc<T>> {
        let mut out = Vec::new();
        for o in 0..outer {
            for j in 0..inner {
                let mut acc = identity::<Acc<T>>(kind);
                for i in 0..r {
                    acc = combine(kind, acc, x[(o * r + i) * inner + j].to_acc());
                }
                out.push(acc);
            }
        }
        out
    }

    fn pseudo(i: usize) -> f64 {
        let mut s = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x5555;
        s ^= s >> 29;
        s = s.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        s ^= s >> 32;
        (s % 2001) as f64 / 1000.0 - 1.0
    }

    const SHAPES: [(usize, usize, usize); 20] = [
        (1, 1, 1),
        (50, 16, 3),
        (40, 7, 4),
        (30, 9, 5),
        (3000, 16, 3),
        (1, 7, 1),
        (3, 5, 2),
        (1, 100, 1),
        (4, 33, 1),
        (2, 1000, 3),
        (1, 5000, 1),
        (1, 3, 5000),
        (7, 70, 70),
        (1, 200_000, 1),
        (5, 40_000, 1),
        (3, 20_000, 2),
        (1, 3000, 17),
        (2, 50, 3000),
        (1, 5, 9000),
        (10_000, 3, 2),
    ];

    fn check_kind_f64ref(kind: ReduceKind, tol: f64) {
        for &(outer, r, inner) in &SHAPES {
            let n = outer * r * inner;
            // For products keep values near 1 so that the result stays finite.
            let val = |i: usize| {
                if kind == ReduceKind::Prod {
                    1.0 + pseudo(i) * 1e-3
                } else {
                    pseudo(i)
                }
            };
            let x32: Vec<f32> = (0..n).map(|i| val(i) as f32).collect();
            let x64: Vec<f64> = (0..n).map(val).collect();
            let xi: Vec<i64> = (0..n).map(|i| (pseudo(i) * 1000.0) as i64).collect();
            let exp32 = naive(kind, &x32, outer, r, inner);
            let exp64 = naive(kind, &x64, outer, r, inner);
            let expi = naive(kind, &xi, outer, r, inner);
            let mut o32 = vec![0f32; outer * inner];
            let mut o64 = vec![0f64; outer * inner];
            let mut oi = vec![0i64; outer * inner];
            // Slice source.
            reduce(kind, &x32[..], outer, r, inner, &mut o32);
            reduce(kind, &x64[..], outer, r, inner, &mut o64);
            reduce(kind, &xi[..], outer, r, inner, &mut oi);
            let close =
                |a: f64, e: f64, scale: f64| (a - e).abs() <= tol * scale.max(e.abs()) || a == e;
            for k in 0..outer * inner {
                // Sums are compared relative to the sum of magnitudes (cancellation).
                let scale = if kind == ReduceKind::Sum {
                    r as f64 * 0.5
                } else {
                    1.0
                };
                assert!(
                    close(o32[k] as f64, exp32[k], scale * 1e-1),
                    "{kind:?} f32 {:?} [{k}]: {} vs {}",
                    (outer, r, inner),
                    o32[k],
                    exp32[k]
                );
                assert!(
                    close(o64[k], exp64[k], scale * 1e-8),
                    "{kind:?} f64 {:?} [{k}]: {} vs {}",
                    (outer, r, inner),
                    o64[k],
                    exp64[k]
                );
                assert_eq!(oi[k], expi[k], "{kind:?} i64 {:?} [{k}]", (outer, r, inner));
            }
            // Producer source: identical results to the slice source.
            let src = FnSource(|i| val(i) as f32, Default::default());
            let mut p32 = vec![0f32; outer * inner];
            reduce(kind, &src as &dyn Source<f32>, outer, r, inner, &mut p32);
            assert_eq!(p32, o32, "{kind:?} producer {:?}", (outer, r, inner));
            let srci = FnSource(|i| (pseudo(i) * 1000.0) as i64, Default::default());
            let mut pi = vec![0i64; outer * inner];
            reduce(kind, &srci, outer, r, inner, &mut pi);
            assert_eq!(pi, oi);
        }
    }

    #[test]
    fn sum_matches_reference() {
        check_kind_f64ref(ReduceKind::Sum, 1e-6);
    }

    #[test]
    fn prod_matches_reference() {
        check_kind_f64ref(ReduceKind::Prod, 1e-5);
    }

    #[test]
    fn max_min_match_reference() {
        check_kind_f64ref(ReduceKind::Max, 0.0);
        check_kind_f64ref(ReduceKind::Min, 0.0);
    }

    #[test]
    fn sum_of_16m_ones_is_exact_and_random_is_accurate() {
        let n = 1 << 24;
        let ones = vec![1.0f32; n];
        let mut out = [0.0f32];
        reduce(ReduceKind::Sum, &ones[..], 1, n, 1, &mut out);
        assert_eq!(out[0], 16_777_216.0);
        // Same through a producer and as [2, n/2] columns.
        let src = FnSource(|_| 1.0f32, Default::default());
        reduce(ReduceKind::Sum, &src, 1, n, 1, &mut out);
        assert_eq!(out[0], 16_777_216.0);
        let mut out2 = [0.0f32; 2];
        reduce(ReduceKind::Sum, &ones[..], 1, n / 2, 2, &mut out2);
        assert_eq!(out2, [8_388_608.0; 2]);
        // Random data in [0, 1).
        let x: Vec<f32> = (0..n).map(|i| (pseudo(i) as f32 + 1.0) * 0.5).collect();
        let exact: f64 = x.iter().map(|&v| v as f64).sum();
        reduce(ReduceKind::Sum, &x[..], 1, n, 1, &mut out);
        assert!(
            ((out[0] as f64 - exact) / exact).abs() < 1e-6,
            "{} vs {exact}",
            out[0]
        );
        let mut cols = [0.0f32; 4];
        reduce(ReduceKind::Sum, &x[..], 1, n / 4, 4, &mut cols);
        let total: f64 = cols.iter().map(|&v| v as f64).sum();
        assert!(((total - exact) / exact).abs() < 1e-6);
    }

    #[test]
    fn nan_propagates_in_max_min() {
        for &(outer, r, inner) in &[(1, 10, 1), (1, 100_000, 1), (3, 50, 4), (1, 50_000, 3)] {
            let n = outer * r * inner;
            let mut x: Vec<f32> = (0..n).map(|i| pseudo(i) as f32).collect();
            // A NaN in output position 0 only.
            x[inner * (r / 2)] = f32::NAN;
            for kind in [ReduceKind::Max, ReduceKind::Min] {
                let mut out = vec![0f32; outer * inner];
                reduce(kind, &x[..], outer, r, inner, &mut out);
                assert!(out[0].is_nan(), "{kind:?} {:?}", (outer, r, inner));
                assert!(out[1..].iter().all(|v| !v.is_nan()));
            }
            // Sum propagates NaN too.
            let mut out = vec![0f32; outer * inner];
            reduce(ReduceKind::Sum, &x[..], outer, r, inner, &mut out);
            assert!(out[0].is_nan());
        }
    }

    #[test]
    fn empty_and_identity() {
        let x: [f32; 0] = [];
        let mut out = [5.0f32; 3];
        reduce(ReduceKind::Sum, &x[..], 1, 0, 3, &mut out);
        assert_eq!(out, [0.0; 3]);
        reduce(ReduceKind::Prod, &x[..], 3, 0, 1, &mut out);
        assert_eq!(out, [1.0; 3]);
        let mut oi = [5i64; 2];
        reduce(ReduceKind::Max, &[0i64; 0][..], 2, 0, 1, &mut oi);
        assert_eq!(oi, [i64::MIN; 2]);
        let mut none: [f32; 0] = [];
        reduce(ReduceKind::Sum, &[1.0f32; 4][..], 0, 4, 1, &mut none);
        reduce(ReduceKind::Sum, &[1.0f32; 4][..], 4, 1, 0, &mut none);
        // Longer slices than needed are fine (prefix used).
        let mut o = [0.0f32];
        reduce(ReduceKind::Sum, &[1.0f32, 2.0, 100.0][..], 1, 2, 1, &mut o);
        assert_eq!(o[0], 3.0);
    }

    #[test]
    fn integer_sum_and_prod_wrap() {
        let x = [i64::MAX, 1, 1];
        let mut o = [0i64];
        reduce(ReduceKind::Sum, &x[..], 1, 3, 1, &mut o);
        assert_eq!(o[0], i64::MIN + 1);
        let y = vec![3i64; 100];
        reduce(ReduceKind::Prod, &y[..], 1, 100, 1, &mut o);
        assert_eq!(o[0], (0..100).fold(1i64, |a, _| a.wrapping_mul(3)));
    }

    #[test]
    #[should_panic(expected = "output length")]
    fn wrong_output_length_panics() {
        reduce(ReduceKind::Sum, &[1.0f32; 4][..], 2, 2, 1, &mut [0.0; 3]);
    }

    fn naive_arg<T: ReduceElement>(
        is_max: bool,
        x: &[T],
        outer: usize,
        r: usize,
        inner: usize,
    ) -> Vec<i64> {
        let mut out = Vec::new();
        for o in 0..outer {
            for j in 0..inner {
                let mut bi = 0;
                for i in 1..r {
                    let (v, b) = (x[(o * r + i) * inner + j], x[(o * r + bi) * inner + j]);
                    if better(is_max, v, b) {
                        bi = i;
                    }
                }
                out.push(bi as i64);
            }
        }
        out
    }

    #[test]
    fn arg_reduce_matches_reference() {
        for &(outer, r, inner) in &SHAPES {
            let n = outer * r * inner;
            // Coarse values so that ties are frequent; a few NaNs in the f32 data.
            let x32: Vec<f32> = (0..n)
                .map(|i| {
                    if i % 997 == 13 {
                        f32::NAN
                    } else {
                        (pseudo(i) * 8.0).round() as f32
                    }
                })
                .collect();
            let x64: Vec<f64> = (0..n).map(|i| (pseudo(i) * 8.0).round()).collect();
            let xi: Vec<i64> = (0..n).map(|i| (pseudo(i) * 8.0) as i64).collect();
            for is_max in [true, false] {
                let mut o = vec![-1i64; outer * inner];
                arg_reduce(is_max, &x32, outer, r, inner, &mut o);
                assert_eq!(
                    o,
                    naive_arg(is_max, &x32, outer, r, inner),
                    "f32 {is_max} {:?}",
                    (outer, r, inner)
                );
                arg_reduce(is_max, &x64, outer, r, inner, &mut o);
                assert_eq!(
                    o,
                    naive_arg(is_max, &x64, outer, r, inner),
                    "f64 {is_max} {:?}",
                    (outer, r, inner)
                );
                arg_reduce(is_max, &xi, outer, r, inner, &mut o);
                assert_eq!(
                    o,
                    naive_arg(is_max, &xi, outer, r, inner),
                    "i64 {is_max} {:?}",
                    (outer, r, inner)
                );
            }
        }
    }

    #[test]
    fn arg_reduce_first_index_and_nan() {
        let x = [1.0f32, 3.0, 3.0, 0.0, 0.0];
        let mut o = [0i64];
        arg_reduce(true, &x, 1, 5, 1, &mut o);
        assert_eq!(o[0], 1);
        arg_reduce(false, &x, 1, 5, 1, &mut o);
        assert_eq!(o[0], 3);
        let y = [1.0f32, f32::NAN, 5.0, f32::NAN];
        arg_reduce(true, &y, 1, 4, 1, &mut o);
        assert_eq!(o[0], 1);
        arg_reduce(false, &y, 1, 4, 1, &mut o);
        assert_eq!(o[0], 1);
        // Long row: the max sits in a later parallel chunk; equal values earlier lose.
        let mut z = vec![0.0f32; 300_000];
        z[250_000] = 2.0;
        z[280_000] = 2.0;
        arg_reduce(true, &z, 1, z.len(), 1, &mut o);
        assert_eq!(o[0], 250_000);
        z[270_000] = f32::NAN;
        arg_reduce(false, &z, 1, z.len(), 1, &mut o);
        assert_eq!(o[0], 270_000);
        arg_reduce(true, &[1.0f32; 0], 1, 0, 1, &mut o);
        assert_eq!(o[0], 0);
    }
}
