//! 2-D convolution (im2col + GEMM) and its two backward kernels. Batches are processed in
//! parallel (one single-threaded GEMM per image and group); a single image uses the GEMM's
//! own parallelism instead.

use crate::conv_batched::{add_row, fill_row};
use crate::conv_epilogue::Epilogue;
use crate::fused::{contiguous, materialize};
use crate::kernels::narrow;
use crate::pack_cache::WeightSource;
use crate::real::compute_dtype;
use gemm::Parallelism;
use pyflame_core::{numel, DType, Element, Result, Storage};
use pyflame_ir::Value;
use rayon::prelude::*;
use std::sync::Arc;

/// Convolution hyper-parameters.
#[derive(Clone, Copy, Debug)]
pub struct ConvParams {
    /// (sh, sw)
    pub stride: [usize; 2],
    /// (ph, pw)
    pub padding: [usize; 2],
    /// (dh, dw)
    pub dilation: [usize; 2],
    /// channel groups
    pub groups: usize,
}

/// Geometry derived from shapes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Geom {
    pub(crate) n: usize,
    pub(crate) c: usize,
    pub(crate) h: usize,
    pub(crate) w: usize,
    pub(crate) o: usize,
    pub(crate) kh: usize,
    pub(crate) kw: usize,
    pub(crate) ho: usize,
    pub(crate) wo: usize,
    pub(crate) g: usize,
}

impl Geom {
    pub(crate) fn new(x: &[usize], w: &[usize], out: &[usize], groups: usize) -> Self {
        Geom {
            n: x[0],
            c: x[1],
            h: x[2],
            w: x[3],
            o: w[0],
            kh: w[2],
            kw: w[3],
            ho: out[2],
            wo: out[3],
            g: groups,
        }
    }
    pub(crate) fn cg(&self) -> usize {
        self.c / self.g
    }
    pub(crate) fn og(&self) -> usize {
        self.o / self.g
    }
    pub(crate) fn ckk(&self) -> usize {
        self.cg() * self.kh * self.kw
    }
    pub(crate) fn hw(&self) -> usize {
        self.ho * self.wo
    }
}

/// Float types the convolution kernels run in.
pub trait ConvFloat: Element + std::ops::AddAssign + std::ops::Mul<Output = Self> {
    /// The slice as `f32` when `Self` is `f32` (for the f32-only tiled kernels).
    fn as_f32(_s: &[Self]) -> Option<&[f32]> {
        None
    }
    /// The mutable slice as `f32` when `Self` is `f32`.
    fn as_f32_mut(_s: &mut [Self]) -> Option<&mut [f32]> {
        None
    }
}
impl ConvFloat for f32 {
    fn as_f32(s: &[f32]) -> Option<&[f32]> {
        Some(s)
    }
    fn as_f32_mut(s: &mut [f32]) -> Option<&mut [f32]> {
        Some(s)
    }
}
impl ConvFloat for f64 {}

/// Fills `cols` ([cg*kh*kw, ho*wo]) from one image's channel group `x` ([cg, h, w]).
fn im2col<T: ConvFloat>(x: &[T], g: &Geom, p: &ConvParams, cols: &mut [T]) {
    let (hw, plane, kk) = (g.hw(), g.h * g.w, g.kh * g.kw);
    for (r, row) in cols.chunks_mut(hw).take(g.cg() * kk).enumerate() {
        let (ci, t) = (r / kk, r % kk);
        fill_row(
            &x[ci * plane..(ci + 1) * plane],
            t / g.kw,
            t % g.kw,
            g,
            p,
            row,
        );
    }
}

/// Adds `cols` ([cg*kh*kw, ho*wo]) back into one image's channel group `dx` ([cg, h, w]).
fn col2im<T: ConvFloat>(cols: &[T], g: &Geom, p: &ConvParams, dx: &mut [T]) {
    let (hw, plane, kk) = (g.hw(), g.h * g.w, g.kh * g.kw);
    for (r, row) in cols.chunks(hw).take(g.cg() * kk).enumerate() {
        let (ci, t) = (r / kk, r % kk);
        add_row(
            row,
            t / g.kw,
            t % g.kw,
            g,
            p,
            &mut dx[ci * plane..(ci + 1) * plane],
        );
    }
}

/// `dst[m, n] (+)= lhs[m, k] @ rhs[k, n]` with explicit strides (column stride, row stride).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemm_into<T: ConvFloat>(
    m: usize,
    n: usize,
    k: usize,
    dst: &mut [T],
    accumulate: bool,
    lhs: &[T],
    lhs_strides: (isize, isize),
    rhs: &[T],
    rhs_strides: (isize, isize),
    par: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::default());
        }
        return;
    }
    if n <= narrow::MAX_COLUMNS && lhs_strides.0 == 1 && narrow::available() {
        if let (Some(d), Some(l), Some(r)) = (T::as_f32_mut(dst), T::as_f32(lhs), T::as_f32(rhs)) {
            // A few output columns (batch-1 deep layers): stream the weight rows once
            // instead of packing them.
            let (cs, rs) = rhs_strides;
            let rhs_t: Vec<f32> = (0..n)
                .flat_map(|j| (0..k).map(move |l| r[l * rs as usize + j * cs as usize]))
                .collect();
            narrow::narrow_gemm_f32(m, n, k, d, accumulate, l, lhs_strides.1 as usize, &rhs_t);
            return;
        }
    }
    // SAFETY: every operand slice covers the index range implied by its shape and strides
    // (checked by the callers' slicing), and dst does not alias lhs or rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.as_ptr(),
            lhs_strides.0,
            lhs_strides.1,
            rhs.as_ptr(),
            rhs_strides.0,
            rhs_strides.1,
            T::from_f64(1.0),
            T::from_f64(1.0),
            false,
            false,
            false,
            par,
        )
    }
}

fn par_for(n: usize, work: usize) -> (bool, Parallelism) {
    // Many images: one thread per image, single-threaded GEMMs. One image: parallel GEMM.
    if n >= 2 {
        (true, Parallelism::None)
    } else if work >= 1 << 18 {
        (false, Parallelism::Rayon(0))
    } else {
        (false, Parallelism::None)
    }
}

fn slice<T: Element>(v: &Value) -> Result<&[T]> {
    Ok(&v.storage.as_slice::<T>()?[v.offset..v.offset + v.numel()])
}

fn finish(storage: Storage, shape: &[usize], dtype: DType) -> Result<Value> {
    let v = Value::contiguous(Arc::new(storage), shape.to_vec());
    materialize(&v, dtype)
}

/// Forward convolution: `x` [N, C, H, W], `w` [O, C/groups, kh, kw] -> `out_shape`.
pub fn conv2d(
    x: &Value,
    w: &Value,
    p: &ConvParams,
    out_shape: &[usize],
    dtype: DType,
) -> Result<Value> {
    let out = conv2d_storage(x, w, p, out_shape, compute_dtype(dtype))?;
    finish(out, out_shape, dtype)
}

/// Forward convolution followed by its epilogue (`clamp(y + bias[o] + residual)`, see
/// [`Epilogue`]), applied in place while the output is still in cache; `dtype` is float32
/// or float64 (the builder composes plain ops for other dtypes).
#[allow(clippy::too_many_arguments)]
pub fn conv2d_fused(
    x: &Value,
    w: &Value,
    bias: Option<&Value>,
    residual: Option<&Value>,
    clamp: Option<(f64, f64)>,
    p: &ConvParams,
    out_shape: &[usize],
    dtype: DType,
) -> Result<Value> {
    let acc = compute_dtype(dtype);
    let mut out = conv2d_storage(x, w, p, out_shape, acc)?;
    let bias = bias.map(|b| contiguous(b, acc)).transpose()?;
    let residual = residual.map(|r| contiguous(r, acc)).transpose()?;
    let plane = out_shape[2] * out_shape[3];
    macro_rules! go {
        ($T:ty) => {{
            let e = Epilogue::<$T> {
                bias: bias.as_ref().map(|b| slice::<$T>(b)).transpose()?,
                residual: residual.as_ref().map(|r| slice::<$T>(r)).transpose()?,
                clamp: clamp.map(|(lo, hi)| (<$T>::from_f64(lo), <$T>::from_f64(hi))),
            };
            e.apply(out.as_mut_slice::<$T>()?, plane, out_shape[1]);
        }};
    }
    match acc {
        DType::Float64 => go!(f64),
        _ => go!(f32),
    }
    finish(out, out_shape, dtype)
}

/// The forward convolution's output in the compute dtype `acc`.
fn conv2d_storage(
    x: &Value,
    w: &Value,
    p: &ConvParams,
    out_shape: &[usize],
    acc: DType,
) -> Result<Storage> {
    let (xv, wv) = (contiguous(x, acc)?, contiguous(w, acc)?);
    let g = Geom::new(&x.shape, &w.shape, out_shape, p.groups);
    let mut out = Storage::uninit(acc, numel(out_shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let (xs, ws) = (slice::<$T>(&xv)?, slice::<$T>(&wv)?);
            let o = out.as_mut_slice::<$T>()?;
            if g.g == 1 {
                let source = Some(WeightSource {
                    storage: &wv.storage,
                    offset: wv.offset,
                });
                if !winograd_forward(xs, ws, source, &g, p, o)?
                    && !crate::conv_direct::forward(xs, ws, source, &g, p, o)?
                    && !crate::conv_pixels::forward(xs, ws, source, &g, p, o)?
                {
                    crate::conv_batched::forward(xs, ws, &g, p, o)?;
                }
                return Ok(out);
            }
            let per_image = g.o * g.hw();
            let (parallel, par) = par_for(g.n, g.o * g.hw() * g.ckk());
            let image = |(ni, dst): (usize, &mut [$T])| {
                let mut cols = vec![<$T>::default(); g.ckk() * g.hw()];
                for gi in 0..g.g {
                    let xg = &xs[(ni * g.c + gi * g.cg()) * g.h * g.w..][..g.cg() * g.h * g.w];
                    im2col(xg, &g, p, &mut cols);
                    let wg = &ws[gi * g.og() * g.ckk()..][..g.og() * g.ckk()];
                    let d = &mut dst[gi * g.og() * g.hw()..][..g.og() * g.hw()];
                    gemm_into(
                        g.og(),
                        g.hw(),
                        g.ckk(),
                        d,
                        false,
                        wg,
                        (1, g.ckk() as isize),
                        &cols,
                        (1, g.hw() as isize),
                        par,
                    );
                }
            };
            if per_image > 0 {
                if parallel {
                    o.par_chunks_mut(per_image).enumerate().for_each(image);
                } else {
                    o.chunks_mut(per_image).enumerate().for_each(image);
                }
            }
        }};
    }
    match acc {
        DType::Float64 => go!(f64),
        _ => go!(f32),
    }
    Ok(out)
}

/// The Winograd kernel's forward convolution (`false` when it does not apply).
fn winograd_forward<T: ConvFloat>(
    xs: &[T],
    ws: &[T],
    source: Option<WeightSource<'_>>,
    g: &Geom,
    p: &ConvParams,
    out: &mut [T],
) -> Result<bool> {
    #[cfg(target_arch = "x86_64")]
    return crate::conv_winograd::forward(xs, ws, source, g, p, out);
    #[cfg(not(target_arch = "x86_64"))]
    return Ok(false);
}

/// The Winograd kernel's input gradient (`false` when it does not apply).
fn winograd_backward_input<T: ConvFloat>(
    gy: &[T],
    ws: &[T],
    source: Option<WeightSource<'_>>,
    g: &Geom,
    p: &ConvParams,
    dx: &mut [T],
) -> Result<bool> {
    #[cfg(target_arch = "x86_64")]
    return crate::conv_winograd::backward_input(gy, ws, source, g, p, dx);
    #[cfg(not(target_arch = "x86_64"))]
    return Ok(false);
}

/// Gradient of the convolution with respect to its input: `gy` [N, O, Ho, Wo], `w`.
pub fn conv2d_backward_input(
    gy: &Value,
    w: &Value,
    p: &ConvParams,
    x_shape: &[usize],
    dtype: DType,
) -> Result<Value> {
    let acc = compute_dtype(dtype);
    let (gv, wv) = (contiguous(gy, acc)?, contiguous(w, acc)?);
    let g = Geom::new(x_shape, &w.shape, &gy.shape, p.groups);
    let mut out = Storage::zeros(acc, numel(x_shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let (gs, ws) = (slice::<$T>(&gv)?, slice::<$T>(&wv)?);
            let o = out.as_mut_slice::<$T>()?;
            if g.g == 1 {
                let source = Some(WeightSource {
                    storage: &wv.storage,
                    offset: wv.offset,
                });
                if !winograd_backward_input(gs, ws, source, &g, p, o)?
                    && !crate::conv_direct::backward_input(gs, ws, source, &g, p, o)?
                    && !crate::conv_pixels::backward_input(gs, ws, source, &g, p, o)?
                {
                    crate::conv_batched::backward_input(gs, ws, &g, p, o)?;
                }
                return finish(out, x_shape, dtype);
            }
            let per_image = g.c * g.h * g.w;
            let (parallel, par) = par_for(g.n, g.o * g.hw() * g.ckk());
            let image = |(ni, dx): (usize, &mut [$T])| {
                let mut cols = vec![<$T>::default(); g.ckk() * g.hw()];
                for gi in 0..g.g {
                    // cols = W_g^T [ckk, og] @ gy_g [og, hw]
                    let wg = &ws[gi * g.og() * g.ckk()..][..g.og() * g.ckk()];
                    let gyg = &gs[(ni * g.o + gi * g.og()) * g.hw()..][..g.og() * g.hw()];
                    gemm_into(
                        g.ckk(),
                        g.hw(),
                        g.og(),
                        &mut cols,
                        false,
                        wg,
                        (g.ckk() as isize, 1),
                        gyg,
                        (1, g.hw() as isize),
                        par,
                    );
                    let dxg = &mut dx[gi * g.cg() * g.h * g.w..][..g.cg() * g.h * g.w];
                    col2im(&cols, &g, p, dxg);
                }
            };
            if per_image > 0 {
                if parallel {
                    o.par_chunks_mut(per_image).enumerate().for_each(image);
                } else {
                    o.chunks_mut(per_image).enumerate().for_each(image);
                }
            }
        }};
    }
    match acc {
        DType::Float64 => go!(f64),
        _ => go!(f32),
    }
    finish(out, x_shape, dtype)
}

/// Gradient of the convolution with respect to its weight: `x`, `gy` [N, O, Ho, Wo].
pub fn conv2d_backward_weight(
    x: &Value,
    gy: &Value,
    p: &ConvParams,
    w_shape: &[usize],
    dtype: DType,
) -> Result<Value> {
    let acc = compute_dtype(dtype);
    let (xv, gv) = (contiguous(x, acc)?, contiguous(gy, acc)?);
    let g = Geom::new(&x.shape, w_shape, &gy.shape, p.groups);
    let wn = numel(w_shape);
    let mut out = Storage::zeros(acc, wn)?;
    macro_rules! go {
        ($T:ty) => {{
            let (xs, gs) = (slice::<$T>(&xv)?, slice::<$T>(&gv)?);
            if g.g == 1 {
                let dw = out.as_mut_slice::<$T>()?;
                if !crate::conv_wgrad::backward_weight(xs, gs, &g, p, dw)?
                    && !crate::conv_direct::backward_weight(xs, gs, &g, p, dw)?
                {
                    crate::conv_batched::backward_weight(xs, gs, &g, p, dw)?;
                }
                return finish(out, w_shape, dtype);
            }
            let (parallel, par) = par_for(g.n, g.o * g.hw() * g.ckk());
            let image = |ni: usize, dw: &mut [$T], cols: &mut Vec<$T>| {
                for gi in 0..g.g {
                    let xg = &xs[(ni * g.c + gi * g.cg()) * g.h * g.w..][..g.cg() * g.h * g.w];
                    im2col(xg, &g, p, cols);
                    // dW_g [og, ckk] += gy_g [og, hw] @ cols^T [hw, ckk]
                    let gyg = &gs[(ni * g.o + gi * g.og()) * g.hw()..][..g.og() * g.hw()];
                    let d = &mut dw[gi * g.og() * g.ckk()..][..g.og() * g.ckk()];
                    gemm_into(
                        g.og(),
                        g.ckk(),
                        g.hw(),
                        d,
                        true,
                        gyg,
                        (1, g.hw() as isize),
                        cols,
                        (g.hw() as isize, 1),
                        par,
                    );
                }
            };
            let total: Vec<$T> = if parallel {
                (0..g.n)
                    .into_par_iter()
                    .fold(
                        || {
                            (
                                vec![<$T>::default(); wn],
                                vec![<$T>::default(); g.ckk() * g.hw()],
                            )
                        },
                        |(mut dw, mut cols), ni| {
                            image(ni, &mut dw, &mut cols);
                            (dw, cols)
                        },
                    )
                    .map(|(dw, _)| dw)
                    .reduce(
                        || vec![<$T>::default(); wn],
                        |mut a, b| {
                            a.iter_mut().zip(&b).for_each(|(x, &y)| *x += y);
                            a
                        },
                    )
            } else {
                let mut dw = vec![<$T>::default(); wn];
                let mut cols = vec![<$T>::default(); g.ckk() * g.hw()];
                for ni in 0..g.n {
                    image(ni, &mut dw, &mut cols);
                }
                dw
            };
            out.as_mut_slice::<$T>()?.copy_from_slice(&total);
        }};
    }
    match acc {
        DType::Float64 => go!(f64),
        _ => go!(f32),
    }
    finish(out, w_shape, dtype)
}
