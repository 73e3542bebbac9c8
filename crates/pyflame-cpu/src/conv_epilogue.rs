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
                #[cfg(target_arch = "x86_64")]
                if SMALL_PLANES.contains(&plane) && crate::kernels::simd::has_avx512() {
                    // SAFETY: AVX-512 F checked just above; `values` starts at flat output
                    // index `start`, a multiple of `plane`, and the bias and residual
                    // cover the output (`Epilogue`'s contract).
                    unsafe { small_planes_avx512(values, start, plane, channels, &f32_case) };
                    return;
                }
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

/// Plane sizes that [`small_planes_avx512`] handles: the divisors of 16 (a vector holds
/// whole planes of `16 / plane` channels).
#[cfg(target_arch = "x86_64")]
const SMALL_PLANES: [usize; 5] = [1, 2, 4, 8, 16];

/// [`Epilogue::planes`] for f32 planes of 1, 2, 4, 8 or 16 values, 16 values at a time
/// across planes: the deep layers of a network at batch 1 have planes of 1 to 16 values,
/// and going plane by plane cost a loop per plane (a ResNet-18 run at batch 1 spent ~30 us
/// in it). A vector's bias lanes are its `16 / plane` channels' biases, each repeated
/// `plane` times (a permute of one load). The operations and their order are those of
/// [`planes_f32_body`], so the results are the same bit for bit.
///
/// # Safety
/// Needs AVX-512 F. `plane` divides 16; `block` starts at flat output index `start`, a
/// multiple of `plane`; `e.bias` holds `channels` values and `e.residual` the whole output.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn small_planes_avx512(
    block: &mut [f32],
    start: usize,
    plane: usize,
    channels: usize,
    e: &Epilogue<'_, f32>,
) {
    use std::arch::x86_64::*;
    let per_vector = 16 / plane;
    // Lane k holds a value of the vector's channel k / plane.
    let lanes: [i32; 16] = std::array::from_fn(|k| (k / plane) as i32);
    let lane_channel = _mm512_loadu_si512(lanes.as_ptr().cast());
    let residual = e.residual.map(|r| r.as_ptr().add(start));
    let clamp = e
        .clamp
        .map(|(lo, hi)| (_mm512_set1_ps(lo), _mm512_set1_ps(hi)));
    let values = block.as_mut_ptr();
    let mut channel = (start / plane) % channels.max(1);
    let mut at = 0;
    while at < block.len() {
        let lanes = (block.len() - at).min(16);
        let mask = if lanes == 16 {
            u16::MAX
        } else {
            (1u16 << lanes) - 1
        };
        let mut v = _mm512_maskz_loadu_ps(mask, values.add(at));
        if let Some(bias) = e.bias {
            let b = if channel + per_vector <= channels {
                let loaded = _mm512_maskz_loadu_ps(
                    ((1u32 << per_vector) - 1) as u16,
                    bias.as_ptr().add(channel),
                );
                _mm512_permutexvar_ps(lane_channel, loaded)
            } else {
                // The vector runs past the last channel into the next image's first.
                let mut wrapped = [0f32; 16];
                for (k, lane) in wrapped.iter_mut().enumerate() {
                    *lane = bias[(channel + k / plane) % channels];
                }
                _mm512_loadu_ps(wrapped.as_ptr())
            };
            v = _mm512_add_ps(v, b);
        }
        if let Some(r) = residual {
            v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(mask, r.add(at)));
        }
        if let Some((lo, hi)) = clamp {
            // As `clamp`: at or below `lo` gives `lo` (also when at or above `hi`), at or
            // above `hi` gives `hi`, NaN compares false and passes through.
            let (at_lo, at_hi) = (
                _mm512_cmp_ps_mask::<_CMP_LE_OQ>(v, lo),
                _mm512_cmp_ps_mask::<_CMP_GE_OQ>(v, hi),
            );
            v = _mm512_mask_blend_ps(at_lo, _mm512_mask_blend_ps(at_hi, v, hi), lo);
        }
        _mm512_mask_storeu_ps(values.add(at), mask, v);
        at += 16;
        channel = (channel + per_vector) % channels.max(1);
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    /// Values with NaN, both zeros, values at the clamp bounds and ordinary ones.
    fn values(n: usize, seed: u32) -> Vec<f32> {
        let special = [f32::NAN, -0.0, 0.0, 6.0, -1.5, 1e-30];
        (0..n)
            .map(|i| {
                let h = (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seed);
                if h.is_multiple_of(7) {
                    special[(h as usize / 7) % special.len()]
                } else {
                    (h % 2001) as f32 / 100.0 - 10.0
                }
            })
            .collect()
    }

    #[test]
    fn small_planes_match_the_plane_by_plane_epilogue_bit_for_bit() {
        if !crate::kernels::simd::has_avx512() {
            return; // the vector path only runs on AVX-512 machines
        }
        for plane in SMALL_PLANES {
            for channels in [1, 3, 5, 16, 17, 64] {
                for images in [1, 3] {
                    let len = images * channels * plane;
                    let bias = values(channels, 1);
                    let residual = values(len, 2);
                    let output = values(len, 3);
                    for case in 0..8 {
                        let e = Epilogue {
                            bias: (case & 1 != 0).then_some(&bias[..]),
                            residual: (case & 2 != 0).then_some(&residual[..]),
                            clamp: (case & 4 != 0).then_some((0.0, 6.0)),
                        };
                        // Blocks as the callers cut them: whole images, and channel
                        // ranges of planes starting inside the output.
                        for first_plane in [0, channels.min(2), images * channels / 2] {
                            let start = first_plane * plane;
                            let mut want = output[start..].to_vec();
                            let mut got = want.clone();
                            planes_f32_body::<false>(&mut want, start, plane, channels, &e);
                            // SAFETY: AVX-512 checked above; `start` is a multiple of the
                            // plane and the bias and residual cover the output.
                            unsafe { small_planes_avx512(&mut got, start, plane, channels, &e) };
                            let bits =
                                |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                            assert_eq!(
                                bits(&got),
                                bits(&want),
                                "plane {plane} channels {channels} images {images} case {case} start {start}"
                            );
                        }
                    }
                }
            }
        }
    }
}
