//! The epilogue of a fused convolution: `clamp(y + bias[o] + residual)`, applied to the
//! output of the forward kernels in place (the output is written once and read back from
//! the cache, instead of a second kernel reading it from memory into a new buffer).

use crate::conv::ConvFloat;
use crate::kernels::simd::multiversion;
use rayon::prelude::*;
use std::ops::Add;

/// Outputs below which the epilogue runs on the calling thread.
const PARALLEL_ELEMENTS: usize = 1 << 15;

/// What to add to and clamp on every output value; the order of the operations is that of
/// the composed ops (`(y + bias) + residual`, then the clamp), so the results are the same.
pub(crate) struct Epilogue<'a, T> {
    /// `[O]`, added to every value of channel `o`
    pub bias: Option<&'a [T]>,
    /// the output's shape, added element by element
    pub residual: Option<&'a [T]>,
    /// `(min, max)`; NaN passes through, and `-0.0` clamped at `0.0` becomes `0.0` (as ReLU)
    pub clamp: Option<(T, T)>,
}

impl<T: ConvFloat + Add<Output = T>> Epilogue<'_, T> {
    /// Applies the epilogue to `out` ([N, channels, plane] contiguous).
    pub(crate) fn apply(&self, out: &mut [T], plane: usize, channels: usize) {
        if plane == 0 || channels == 0 || out.is_empty() {
            return;
        }
        let image = plane * channels;
        let run = |(i, block): (usize, &mut [T])| self.planes(block, i * image, plane, channels);
        if out.len() >= PARALLEL_ELEMENTS && out.len() > image {
            out.par_chunks_mut(image).enumerate().for_each(run);
        } else if out.len() >= PARALLEL_ELEMENTS {
            // One image: split it by channels.
            let per_task = (PARALLEL_ELEMENTS / 2).div_ceil(plane).max(1) * plane;
            out.par_chunks_mut(per_task)
                .enumerate()
                .for_each(|(i, block)| self.planes(block, i * per_task, plane, channels));
        } else {
            out.chunks_mut(image).enumerate().for_each(run);
        }
    }

    /// `block` starts at flat output index `start` (a multiple of `plane`): the bias plane by
    /// plane, then the residual and the clamp over the whole block (small planes, such as
    /// the 1x1 and 2x2 maps of deep layers, would otherwise pay a call per plane).
    fn planes(&self, block: &mut [T], start: usize, plane: usize, channels: usize) {
        if let Some(f32_case) = self.as_f32() {
            if let Some(values) = T::as_f32_mut(block) {
                planes_f32(values, start, plane, channels, &f32_case);
                return;
            }
        }
        if let Some(bias) = self.bias {
            for (j, values) in block.chunks_mut(plane).enumerate() {
                let b = bias[(start / plane + j) % channels];
                values.iter_mut().for_each(|v| *v += b);
            }
        }
        if let Some(residual) = self.residual {
            let residual = &residual[start..start + block.len()];
            block.iter_mut().zip(residual).for_each(|(v, &r)| *v += r);
        }
        if let Some((lo, hi)) = self.clamp {
            block.iter_mut().for_each(|v| *v = clamp(*v, lo, hi));
        }
    }

    /// The f32 view of the epilogue, when `T` is f32.
    fn as_f32(&self) -> Option<Epilogue<'_, f32>> {
        let (lo, hi) = match self.clamp {
            Some((lo, hi)) => (Some(lo.to_f32()), Some(hi.to_f32())),
            None => (None, None),
        };
        Some(Epilogue {
            bias: match self.bias {
                Some(b) => Some(T::as_f32(b)?),
                None => None,
            },
            residual: match self.residual {
                Some(r) => Some(T::as_f32(r)?),
                None => None,
            },
            clamp: lo.zip(hi),
        })
    }
}

/// `x` clamped to `[lo, hi]`; NaN passes through, and `-0.0` clamped at `0.0` becomes `0.0`.
#[inline(always)]
fn clamp<T: PartialOrd + Copy>(x: T, lo: T, hi: T) -> T {
    if x <= lo {
        lo
    } else if x >= hi {
        hi
    } else {
        x
    }
}

/// [`Epilogue::planes`] for f32 in one pass over each plane (vectorized with the widest
/// instructions the CPU has: the crate's baseline build is SSE2).
#[inline(always)]
fn planes_f32_body<const FMA: bool>(
    block: &mut [f32],
    start: usize,
    plane: usize,
    channels: usize,
    e: &Epilogue<'_, f32>,
) {
    let first = start / plane;
    for (j, values) in block.chunks_mut(plane).enumerate() {
        let at = start + j * plane;
        let residual = e.residual.map(|r| &r[at..at + values.len()]);
        let bias = e.bias.map(|b| b[(first + j) % channels]);
        // Each combination is its own loop, so that no operation is applied that the
        // composed ops would not apply (adding 0.0 would turn -0.0 into 0.0).
        match (bias, residual, e.clamp) {
            (Some(b), Some(r), Some((lo, hi))) => values
                .iter_mut()
                .zip(r)
                .for_each(|(v, &r)| *v = clamp(*v + b + r, lo, hi)),
            (Some(b), Some(r), None) => {
                values.iter_mut().zip(r).for_each(|(v, &r)| *v = *v + b + r)
            }
            (Some(b), None, Some((lo, hi))) => {
                values.iter_mut().for_each(|v| *v = clamp(*v + b, lo, hi))
            }
            (Some(b), None, None) => values.iter_mut().for_each(|v| *v += b),
            (None, Some(r), Some((lo, hi))) => values
                .iter_mut()
                .zip(r)
                .for_each(|(v, &r)| *v = clamp(*v + r, lo, hi)),
            (None, Some(r), None) => values.iter_mut().zip(r).for_each(|(v, &r)| *v += r),
            (None, None, Some((lo, hi))) => values.iter_mut().for_each(|v| *v = clamp(*v, lo, hi)),
            (None, None, None) => {}
        }
    }
}

multiversion! {
    fn planes_f32(
        block: &mut [f32],
        start: usize,
        plane: usize,
        channels: usize,
        e: &Epilogue<'_, f32>,
    ) = planes_f32_body;
}
