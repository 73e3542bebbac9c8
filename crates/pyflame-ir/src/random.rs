//! Counter-based random numbers: element `i` of a random tensor is a pure function of
//! `(seed, i)`, so generation is parallel and reproducible. A global generator hands out seeds.

use std::sync::atomic::{AtomicU64, Ordering};

static GLOBAL_STATE: AtomicU64 = AtomicU64::new(0x5DEE_CE66_D1CE_4E5B);

/// Resets the global generator (`pf.manual_seed`).
pub fn manual_seed(seed: u64) {
    GLOBAL_STATE.store(mix(seed ^ 0x9E37_79B9_7F4A_7C15), Ordering::SeqCst);
}

/// Draws a fresh seed for one random op.
pub fn next_seed() -> u64 {
    let s = GLOBAL_STATE.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::SeqCst);
    mix(s)
}

/// SplitMix64 finalizer: a good 64-bit mixing function.
#[inline(always)]
pub fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 64 random bits for element `i` of a stream.
#[inline(always)]
pub fn bits(seed: u64, i: u64) -> u64 {
    mix(seed ^ mix(i.wrapping_add(0x632B_E59B_D9B4_E019)))
}

/// Uniform f64 in [0, 1) with 53 random bits.
#[inline(always)]
pub fn uniform(seed: u64, i: u64) -> f64 {
    (bits(seed, i) >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Standard normal via Box-Muller on two independent uniforms of element `i`.
#[inline(always)]
pub fn normal(seed: u64, i: u64) -> f64 {
    let u1 = 1.0 - uniform(seed, 2 * i); // (0, 1]
    let u2 = uniform(seed, 2 * i + 1);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
