//! Convolution over groups of images (for `groups == 1`): the columns of several images are
//! laid side by side so each GEMM is large (`k` or `n` = images x output pixels). One GEMM
//! per image is badly shaped for the small spatial sizes of deep layers (4x4 in ResNet's
//! last stage gives k = 16 for the weight gradient).

use crate::conv::{gemm_into, ConvFloat, ConvParams, Geom};
use gemm::Parallelism;
use pyflame_core::{Result, Storage};
use rayon::prelude::*;

/// Columns per GEMM to aim for: wide enough to amortize packing and threading.
const TARGET_COLUMNS: usize = 2048;

/// Images processed together.
pub(crate) fn group_size(g: &Geom) -> usize {
    TARGET_COLUMNS.div_ceil(g.hw().max(1)).clamp(1, g.n.max(1))
}

/// A scratch buffer from the recycled storage pool (no page faults on repeated calls). Its
/// contents are unspecified: every user writes the part it reads.
fn scratch<T: ConvFloat>(len: usize) -> Result<Storage> {
    Storage::uninit(T::DTYPE, len)
}

fn par_for(m: usize, n: usize, k: usize) -> Parallelism {
    if m * n * k >= 1 << 18 {
        Parallelism::Rayon(0)
    } else {
        Parallelism::None
    }
}

/// Fills one im2col row: kernel tap `(ki, kj)` of one channel `plane`, for every output
/// position, into `dst` (`ho * wo`; padding reads as zero).
#[inline]
pub(crate) fn fill_row<T: ConvFloat>(
    plane: &[T],
    ki: usize,
    kj: usize,
    g: &Geom,
    p: &ConvParams,
    dst: &mut [T],
) {
    let (sh, sw) = (p.stride[0], p.stride[1]);
    let (ph, pw) = (p.padding[0] as isize, p.padding[1] as isize);
    let off = (kj * p.dilation[1]) as isize - pw;
    // Output columns `lo..hi` read inside the row (`ox * sw + off` in `0..w`); the same for
    // every row, so the checks are made once.
    let lo = if off < 0 {
        ((-off) as usize).div_ceil(sw).min(g.wo)
    } else {
        0
    };
    let hi = if off >= g.w as isize {
        lo
    } else {
        ((g.w as isize - 1 - off) as usize / sw + 1).clamp(lo, g.wo)
    };
    for oy in 0..g.ho {
        let iy = (oy * sh + ki * p.dilation[0]) as isize - ph;
        let out_row = &mut dst[oy * g.wo..(oy + 1) * g.wo];
        if iy < 0 || iy >= g.h as isize {
            out_row.fill(T::default());
            continue;
        }
        let src = &plane[iy as usize * g.w..(iy as usize + 1) * g.w];
        out_row[..lo].fill(T::default());
        out_row[hi..].fill(T::default());
        if lo == hi {
            continue;
        }
        let first = (lo as isize * sw as isize + off) as usize;
        if sw == 1 {
            out_row[lo..hi].copy_from_slice(&src[first..first + (hi - lo)]);
        } else {
            let src = &src[first..];
            for (o, &v) in out_row[lo..hi].iter_mut().zip(src.iter().step_by(sw)) {
                *o = v;
            }
        }
    }
}

/// Adds one column row (kernel tap `ki, kj`) back into an image's channel plane.
#[inline]
pub(crate) fn add_row<T: ConvFloat>(
    src: &[T],
    ki: usize,
    kj: usize,
    g: &Geom,
    p: &ConvParams,
    plane: &mut [T],
) {
    let (sh, sw) = (p.stride[0], p.stride[1]);
    let (ph, pw) = (p.padding[0] as isize, p.padding[1] as isize);
    for oy in 0..g.ho {
        let iy = (oy * sh + ki * p.dilation[0]) as isize - ph;
        if iy < 0 || iy >= g.h as isize {
            continue;
        }
        let dst = &mut plane[iy as usize * g.w..(iy as usize + 1) * g.w];
        let off = (kj * p.dilation[1]) as isize - pw;
        let row = &src[oy * g.wo..(oy + 1) * g.wo];
        if sw == 1 && off >= 0 && off as usize + g.wo <= g.w {
            dst[off as usize..off as usize + g.wo]
                .iter_mut()
                .zip(row)
                .for_each(|(d, &v)| *d += v);
        } else {
            for (ox, &v) in row.iter().enumerate() {
                let ix = (ox * sw) as isize + off;
                if ix >= 0 && ix < g.w as isize {
                    dst[ix as usize] += v;
                }
            }
        }
    }
}

/// `cols` = [ckk, gn * hw]: the im2col of images `n0 .. n0 + gn`, side by side.
fn im2col_group<T: ConvFloat>(
    xs: &[T],
    n0: usize,
    gn: usize,
    g: &Geom,
    p: &ConvParams,
    cols: &mut [T],
) {
    let hw = g.hw();
    let (kk, plane) = (g.kh * g.kw, g.h * g.w);
    cols[..g.ckk() * gn * hw]
        .par_chunks_mut(gn * hw)
        .enumerate()
        .for_each(|(r, row)| {
            let (ci, t) = (r / kk, r % kk);
            let (ki, kj) = (t / g.kw, t % g.kw);
            for j in 0..gn {
                let img = &xs[((n0 + j) * g.c + ci) * plane..][..plane];
                fill_row(img, ki, kj, g, p, &mut row[j * hw..(j + 1) * hw]);
            }
        });
}

/// Adds the columns of images `n0 .. n0 + gn` back into their input gradients `dx`
/// (the group's images, contiguous).
fn col2im_group<T: ConvFloat>(cols: &[T], gn: usize, g: &Geom, p: &ConvParams, dx: &mut [T]) {
    let hw = g.hw();
    let kk = g.kh * g.kw;
    let plane = g.h * g.w;
    dx.par_chunks_mut(g.c * plane)
        .enumerate()
        .for_each(|(j, img)| {
            for ci in 0..g.c {
                let dst = &mut img[ci * plane..(ci + 1) * plane];
                for t in 0..kk {
                    let r = ci * kk + t;
                    let src = &cols[r * gn * hw + j * hw..][..hw];
                    add_row(src, t / g.kw, t % g.kw, g, p, dst);
                }
            }
        });
}

/// `dst` [og, gn * hw] <- `gy` of images `n0 .. n0 + gn` ([N, og, hw] in memory).
fn gather_outputs<T: ConvFloat>(gy: &[T], n0: usize, gn: usize, g: &Geom, dst: &mut [T]) {
    let hw = g.hw();
    dst[..g.o * gn * hw]
        .par_chunks_mut(gn * hw)
        .enumerate()
        .for_each(|(o, row)| {
            for j in 0..gn {
                row[j * hw..(j + 1) * hw].copy_from_slice(&gy[((n0 + j) * g.o + o) * hw..][..hw]);
            }
        });
}

/// Forward convolution into `out` ([N, O, ho, wo]).
pub(crate) fn forward<T: ConvFloat>(
    xs: &[T],
    ws: &[T],
    g: &Geom,
    p: &ConvParams,
    out: &mut [T],
) -> Result<()> {
    let (hw, ckk) = (g.hw(), g.ckk());
    let gs = group_size(g);
    let mut cols_buf = scratch::<T>(ckk * gs * hw)?;
    let mut tmp_buf = scratch::<T>(g.o * gs * hw)?;
    let cols = cols_buf.as_mut_slice::<T>()?;
    let tmp = tmp_buf.as_mut_slice::<T>()?;
    for n0 in (0..g.n).step_by(gs) {
        let gn = gs.min(g.n - n0);
        im2col_group(xs, n0, gn, g, p, cols);
        let width = gn * hw;
        gemm_into(
            g.o,
            width,
            ckk,
            tmp,
            false,
            ws,
            (1, ckk as isize),
            cols,
            (1, width as isize),
            par_for(g.o, width, ckk),
        );
        out[n0 * g.o * hw..(n0 + gn) * g.o * hw]
            .par_chunks_mut(g.o * hw)
            .enumerate()
            .for_each(|(j, img)| {
                for o in 0..g.o {
                    img[o * hw..(o + 1) * hw].copy_from_slice(&tmp[o * width + j * hw..][..hw]);
                }
            });
    }
    Ok(())
}

/// Input gradient into `dx` ([N, C, H, W], zeroed).
pub(crate) fn backward_input<T: ConvFloat>(
    gy: &[T],
    ws: &[T],
    g: &Geom,
    p: &ConvParams,
    dx: &mut [T],
) -> Result<()> {
    let (hw, ckk) = (g.hw(), g.ckk());
    let gs = group_size(g);
    let mut cols_buf = scratch::<T>(ckk * gs * hw)?;
    let mut gyp_buf = scratch::<T>(g.o * gs * hw)?;
    let cols = cols_buf.as_mut_slice::<T>()?;
    let gyp = gyp_buf.as_mut_slice::<T>()?;
    let img = g.c * g.h * g.w;
    for n0 in (0..g.n).step_by(gs) {
        let gn = gs.min(g.n - n0);
        let width = gn * hw;
        gather_outputs(gy, n0, gn, g, gyp);
        // cols [ckk, width] = W^T [ckk, O] @ gyp [O, width]
        gemm_into(
            ckk,
            width,
            g.o,
            cols,
            false,
            ws,
            (ckk as isize, 1),
            gyp,
            (1, width as isize),
            par_for(ckk, width, g.o),
        );
        col2im_group(cols, gn, g, p, &mut dx[n0 * img..(n0 + gn) * img]);
    }
    Ok(())
}

/// Weight gradient into `dw` ([O, C, kh, kw], zeroed).
pub(crate) fn backward_weight<T: ConvFloat>(
    xs: &[T],
    gy: &[T],
    g: &Geom,
    p: &ConvParams,
    dw: &mut [T],
) -> Result<()> {
    let (hw, ckk) = (g.hw(), g.ckk());
    let gs = group_size(g);
    let mut cols_buf = scratch::<T>(ckk * gs * hw)?;
    let mut gyp_buf = scratch::<T>(g.o * gs * hw)?;
    let cols = cols_buf.as_mut_slice::<T>()?;
    let gyp = gyp_buf.as_mut_slice::<T>()?;
    for n0 in (0..g.n).step_by(gs) {
        let gn = gs.min(g.n - n0);
        let width = gn * hw;
        im2col_group(xs, n0, gn, g, p, cols);
        gather_outputs(gy, n0, gn, g, gyp);
        // dW [O, ckk] += gyp [O, width] @ cols^T [width, ckk]
        gemm_into(
            g.o,
            ckk,
            width,
            dw,
            true,
            gyp,
            (1, width as isize),
            cols,
            (width as isize, 1),
            par_for(g.o, ckk, width),
        );
    }
    Ok(())
}
