//! Copies of short runs (a few to a few dozen elements) without a call into `memcpy`.
//!
//! Convolution kernels move data in runs as short as a plane row (4 to 32 values) or a
//! tile's pixels (up to 6): padding input planes, scattering tile results into `[N, C, H, W]`
//! outputs. Each `copy_from_slice` of a length known only at run time becomes a call to
//! `memmove`, which costs more than the copy itself at these sizes (thousands of calls per
//! convolution). Copying fixed-size blocks lets the compiler emit plain vector moves.

/// Copies `src` into `dst` (which must have the same length) in fixed-size blocks.
///
/// # Panics
/// When the lengths differ (a bug in the caller, as with `copy_from_slice`).
#[inline]
pub fn copy_short<T: Copy>(dst: &mut [T], src: &[T]) {
    assert_eq!(dst.len(), src.len(), "copy_short: lengths differ");
    let mut dst_blocks = dst.chunks_exact_mut(16);
    let mut src_blocks = src.chunks_exact(16);
    for (d, s) in (&mut dst_blocks).zip(&mut src_blocks) {
        copy_block::<T, 16>(d, s);
    }
    let (mut d, mut s) = (dst_blocks.into_remainder(), src_blocks.remainder());
    if d.len() >= 8 {
        copy_block::<T, 8>(&mut d[..8], &s[..8]);
        (d, s) = (&mut d[8..], &s[8..]);
    }
    if d.len() >= 4 {
        copy_block::<T, 4>(&mut d[..4], &s[..4]);
        (d, s) = (&mut d[4..], &s[4..]);
    }
    if d.len() >= 2 {
        copy_block::<T, 2>(&mut d[..2], &s[..2]);
        (d, s) = (&mut d[2..], &s[2..]);
    }
    if !d.is_empty() {
        copy_block::<T, 1>(d, s);
    }
}

/// Copies exactly `N` elements (the slices' lengths are `N`).
#[inline(always)]
fn copy_block<T: Copy, const N: usize>(dst: &mut [T], src: &[T]) {
    if let (Ok(d), Ok(s)) = (<&mut [T; N]>::try_from(dst), <&[T; N]>::try_from(src)) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests {
    use super::copy_short;

    #[test]
    fn copies_every_length() {
        for n in 0..70 {
            let src: Vec<u32> = (0..n as u32).collect();
            let mut dst = vec![u32::MAX; n];
            copy_short(&mut dst, &src);
            assert_eq!(dst, src, "length {n}");
        }
    }
}
