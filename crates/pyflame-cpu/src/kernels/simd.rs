//! Runtime SIMD dispatch.
//!
//! Wheels are built for the baseline target (x86-64 with SSE2, no `-C target-cpu=native`), so
//! the wider instruction sets are selected at run time. The pattern used by every kernel is:
//!
//! 1. write the kernel body once as an `#[inline(always)]` function that is generic over
//!    `const FMA: bool` (and, optionally, one element type), using [`madd_f32`]/[`madd_f64`]
//!    for every multiply-add so that the FMA build fuses them and the baseline build does not
//!    call the slow software `fma()`;
//! 2. let the crate-internal `multiversion!` macro generate the public function,
//!    which compiles the body a second time inside a `#[target_feature(enable = "avx2,fma")]`
//!    wrapper and picks the copy at run time with [`has_avx2_fma`] (a cached atomic load).
//!
//! LLVM then autovectorizes the same source twice: with 256-bit AVX2 + FMA where the CPU has
//! them, and with the baseline instruction set otherwise. On aarch64 NEON (with fused
//! multiply-add) is part of the baseline, so the `FMA = true` copy is used directly; on other
//! architectures the `FMA = false` copy is used.
//!
//! Setting the environment variable `PYFLAME_NO_SIMD=1` before the first kernel call forces the
//! baseline path (useful to test it on a machine with AVX2).

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
use std::sync::atomic::{AtomicU8, Ordering};

/// Detection state: 0 = not yet detected, 1 = unavailable, 2 = available.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
static AVX2_FMA: AtomicU8 = AtomicU8::new(0);

/// Returns true when the running CPU supports AVX2 and FMA (and `PYFLAME_NO_SIMD` is not set).
///
/// The CPUID query runs once; later calls are a single relaxed atomic load.
#[inline]
pub fn has_avx2_fma() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        match AVX2_FMA.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => detect_avx2_fma(),
        }
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        false
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[cold]
#[inline(never)]
fn detect_avx2_fma() -> bool {
    let disabled = std::env::var_os("PYFLAME_NO_SIMD").is_some_and(|v| !v.is_empty() && v != "0");
    let yes = !disabled && is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma");
    AVX2_FMA.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
    yes
}

/// Detection state of AVX-512 (F, VL, BW, DQ): 0 = not yet detected, 1 = no, 2 = yes.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
static AVX512: AtomicU8 = AtomicU8::new(0);

/// Returns true when the running CPU supports AVX-512 (F, VL, BW, DQ) besides AVX2 and FMA
/// (and `PYFLAME_NO_SIMD` / `PYFLAME_NO_AVX512` are not set).
#[inline]
pub fn has_avx512() -> bool {
    #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
    {
        match AVX512.load(Ordering::Relaxed) {
            1 => false,
            2 => true,
            _ => detect_avx512(),
        }
    }
    #[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
    {
        false
    }
}

#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
#[cold]
#[inline(never)]
fn detect_avx512() -> bool {
    let off = std::env::var_os("PYFLAME_NO_AVX512").is_some_and(|v| !v.is_empty() && v != "0");
    let yes = !off
        && has_avx2_fma()
        && is_x86_feature_detected!("avx512f")
        && is_x86_feature_detected!("avx512vl")
        && is_x86_feature_detected!("avx512bw")
        && is_x86_feature_detected!("avx512dq");
    AVX512.store(if yes { 2 } else { 1 }, Ordering::Relaxed);
    yes
}

/// Returns a short name of the instruction set the kernels dispatch to
/// (`"avx2+fma"`, `"neon"` or `"baseline"`), for diagnostics.
pub fn active_isa() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "neon"
    } else if has_avx512() {
        "avx512"
    } else if has_avx2_fma() {
        "avx2+fma"
    } else {
        "baseline"
    }
}

/// `a * b + c`, fused into one FMA instruction when `FMA` is true.
///
/// With `FMA = false` this is a plain multiply and add (rounded twice); it never calls the
/// software `fmaf`, which would be slow and block vectorization on CPUs without FMA.
#[inline(always)]
pub fn madd_f32<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `a * b + c` in f64, fused when `FMA` is true (see [`madd_f32`]).
#[inline(always)]
pub fn madd_f64<const FMA: bool>(a: f64, b: f64, c: f64) -> f64 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// Defines a function whose body is compiled twice (baseline and AVX2+FMA) and dispatched at
/// run time.
///
/// ```ignore
/// #[inline(always)]
/// fn scale_body<const FMA: bool>(x: &mut [f32], s: f32) {
///     for v in x { *v = madd_f32::<FMA>(*v, s, 0.0) }
/// }
/// multiversion! {
///     /// Multiplies every element by `s`.
///     pub fn scale(x: &mut [f32], s: f32) = scale_body;
/// }
/// ```
///
/// The body must be an `#[inline(always)]` function in scope whose first generic parameter is
/// `const FMA: bool`. An optional list of type parameters, each with a single trait bound, is
/// forwarded after it: `pub fn f<T: Bound>(x: &[T]) -> T = f_body;` calls
/// `f_body::<FMA, T>(x)`.
macro_rules! multiversion {
    (
        $(#[$attr:meta])*
        $vis:vis fn $name:ident $(<$($gen:ident : $bound:path),+ $(,)?>)?
            ($($arg:ident : $argty:ty),* $(,)?) $(-> $ret:ty)? = $body:ident;
    ) => {
        $(#[$attr])*
        $vis fn $name $(<$($gen: $bound),+>)? ($($arg: $argty),*) $(-> $ret)? {
            #[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
            {
                #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
                unsafe fn avx512 $(<$($gen: $bound),+>)? ($($arg: $argty),*) $(-> $ret)? {
                    $body::<true $($(, $gen)+)?>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2_fma $(<$($gen: $bound),+>)? ($($arg: $argty),*) $(-> $ret)? {
                    $body::<true $($(, $gen)+)?>($($arg),*)
                }
                if $crate::kernels::simd::has_avx512() {
                    // SAFETY: the running CPU supports these AVX-512 subsets, AVX2 and FMA.
                    return unsafe { avx512 $(::<$($gen),+>)? ($($arg),*) };
                }
                if $crate::kernels::simd::has_avx2_fma() {
                    // SAFETY: the running CPU supports AVX2 and FMA (checked just above), which
                    // is the only requirement of the `target_feature` wrapper.
                    return unsafe { avx2_fma $(::<$($gen),+>)? ($($arg),*) };
                }
                $body::<false $($(, $gen)+)?>($($arg),*)
            }
            #[cfg(target_arch = "aarch64")]
            {
                // NEON with fused multiply-add is part of the aarch64 baseline.
                $body::<true $($(, $gen)+)?>($($arg),*)
            }
            #[cfg(not(any(target_arch = "x86", target_arch = "x86_64", target_arch = "aarch64")))]
            {
                $body::<false $($(, $gen)+)?>($($arg),*)
            }
        }
    };
}

pub(crate) use multiversion;

#[cfg(test)]
mod tests {
    use super::*;

    #[inline(always)]
    fn axpy_body<const FMA: bool>(y: &mut [f32], a: f32, x: &[f32]) {
        for (y, x) in y.iter_mut().zip(x) {
            *y = madd_f32::<FMA>(a, *x, *y);
        }
    }

    multiversion! {
        /// y += a * x
        fn axpy(y: &mut [f32], a: f32, x: &[f32]) = axpy_body;
    }

    trait Double: Copy {
        fn double(self) -> Self;
    }
    impl Double for i32 {
        fn double(self) -> Self {
            self.wrapping_mul(2)
        }
    }

    #[inline(always)]
    fn double_body<const FMA: bool, T: Double>(x: &mut [T]) -> usize {
        for v in x.iter_mut() {
            *v = v.double();
        }
        x.len()
    }

    multiversion! {
        /// Doubles every element.
        fn double_all<T: Double>(x: &mut [T]) -> usize = double_body;
    }

    #[test]
    fn detection_is_stable() {
        let a = has_avx2_fma();
        assert_eq!(a, has_avx2_fma());
        assert!(["avx512", "avx2+fma", "neon", "baseline"].contains(&active_isa()));
    }

    #[test]
    fn dispatch_macro_works() {
        let x: Vec<f32> = (0..37).map(|i| i as f32).collect();
        let mut y = vec![1.0f32; 37];
        axpy(&mut y, 2.0, &x);
        for (i, v) in y.iter().enumerate() {
            assert_eq!(*v, 1.0 + 2.0 * i as f32);
        }
        let mut z: Vec<i32> = (0..10).collect();
        assert_eq!(double_all(&mut z), 10);
        assert_eq!(z[9], 18);
    }

    #[test]
    fn madd_variants_agree_on_exact_values() {
        assert_eq!(madd_f32::<true>(3.0, 4.0, 5.0), 17.0);
        assert_eq!(madd_f32::<false>(3.0, 4.0, 5.0), 17.0);
        assert_eq!(madd_f64::<true>(3.0, 4.0, 5.0), 17.0);
        assert_eq!(madd_f64::<false>(3.0, 4.0, 5.0), 17.0);
    }
}
