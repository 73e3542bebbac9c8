//! PyFlame CPU backend: the scheduler and executor for captured graphs, fused elementwise
//! programs, and the kernels (matmul, reductions, math) they call.

pub mod affinity;
pub mod attention;
pub mod conv;
mod conv_batched;
mod conv_direct;
mod conv_epilogue;
mod conv_pixels;
mod conv_store;
mod conv_tiles;
mod conv_wgrad;
#[cfg(target_arch = "x86_64")]
mod conv_winograd;
mod epilogue;
pub mod exec;
pub mod fused;
pub mod kernels;
pub mod movement;
pub mod norm;
pub mod optim;
pub mod pack_cache;
pub mod pool;
pub mod real;
pub mod schedule;
pub mod softmax;
pub mod sources;
