//! CPU compute kernels: elementwise math, matrix multiplication and reductions.
//!
//! Every kernel here works on plain slices and is free of I/O and tensor bookkeeping; the
//! executor slices tensors into chunks and calls these. SIMD is selected at runtime (see
//! [`simd`]) so one binary runs everywhere and still uses AVX2/FMA where available.

pub mod copy;
#[cfg(target_arch = "x86_64")]
mod gelu_avx512;
pub mod math;
pub mod matmul;
pub mod narrow;
pub mod reduce;
pub mod simd;
