//! The epilogue of a fused convolution: `clamp(y + bias[o] + residual)`, applied to the
//! output of the forward kernels in place (the output is written once and read back from
//! the cache, instead of a second kernel reading it from memory into a new buffer).

use pyflame_core::Element;
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

impl<T: Element + Add<Output = T>> Epilogue<'_, T> {
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
        if let Some(bias) = self.bias {
            for (j, values) in block.chunks_mut(plane).enumerate() {
                let b = bias[(start / plane + j) % channels];
                values.iter_mut().for_each(|v| *v = *v + b);
            }
        }
        if let Some(residual) = self.residual {
            let residual = &residual[start..start + block.len()];
            block
                .iter_mut()
                .zip(residual)
                .for_each(|(v, &r)| *v = *v + r);
        }
        if let Some((lo, hi)) = self.clamp {
            block.iter_mut().for_each(|v| {
                let x = *v;
                *v = if x <= lo {
                    lo
                } else if x >= hi {
                    hi
                } else {
                    x
                };
            });
        }
    }
}
