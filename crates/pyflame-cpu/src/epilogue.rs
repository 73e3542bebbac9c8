//! Matmul epilogues: a float matmul whose only consumer is a fused elementwise program (bias
//! add, activation, residual add, directly or through reshapes) is computed by blocks of rows,
//! and the program runs on each block right after it, while the block is still in cache. The
//! product never becomes a tensor: the separate pass that re-read it from memory (a BERT
//! layer's `gelu(x @ w1 + b1)` read and wrote 4 MB) disappears.
//!
//! [`fuse`] rewrites a schedule (the matmul and its reshapes lose their steps; the program's
//! step becomes [`StepKind::MatmulEpilogue`]); [`run`] executes such a step. When the product
//! or one of its reshapes must keep its value (someone outside the graph refers to it, or it
//! is saved for a backward pass), the product is too short to split into row blocks for the
//! threads, or its right-hand matrix is too large to be streamed once per block, [`run`]
//! computes the product whole and runs the program after it, exactly as the unfused
//! schedule would.

use crate::exec::{program_input, run_matmul};
use crate::fused::{BlockData, Input, Program};
use crate::kernels::matmul::{self, MatRef};
use crate::movement;
use crate::schedule::{Step, StepKind};
use pyflame_core::{dispatch_dtype, numel, DType, Element, Error, Result, Storage};
use pyflame_ir::{Graph, Op, Value};
use rayon::prelude::*;
use std::sync::Arc;

/// Elements of one block of product rows (1 MiB of f32): with the program's registers it stays
/// in a core's L2 cache while the program reads it.
const BLOCK_ELEMS: usize = 1 << 18;
/// Fewest rows of a block when the product has enough rows: every block repacks the
/// right-hand matrix. In a gemm microbenchmark (two threads) 128-row blocks were 15-25%
/// slower than gemm's own threading for `[1024, 768] x [768, 3072]`; 256-row blocks were
/// within noise of it for right-hand matrices of 1 to 25 MB.
const MIN_BLOCK_ROWS: usize = 256;
/// Largest right-hand matrix (bytes) multiplied by blocks: each block streams it again, so
/// matrices that do not stay in cache (LM heads, wide FFNs) keep gemm's own blocking.
const MAX_RHS_BYTES: usize = 8 << 20;
/// Products with less work (m * n * k) than this run on one thread (as in `matmul`).
const PARALLEL_WORK: usize = 1 << 18;

/// Rewrites `steps`: every fused program that reads the whole product of a float32/float64
/// 2-D matmul (shape equal to the program's output; reached through reshapes only), which is
/// that chain's only consumer, takes over the matmul (see the module docs).
pub(crate) fn fuse(
    g: &Graph,
    mut steps: Vec<Step>,
    consumers: &[Vec<usize>],
    is_output: &[bool],
) -> Vec<Step> {
    let mut absorbed = vec![false; g.len()];
    for step in steps.iter_mut() {
        let StepKind::Fused { inputs, .. } = &step.kind else {
            continue;
        };
        let found = inputs.iter().enumerate().find_map(|(slot, &j)| {
            product_chain(g, step.node, j, consumers, is_output).map(|(mm, v)| (slot, mm, v))
        });
        let Some((slot, matmul, views)) = found else {
            continue;
        };
        absorbed[matmul] = true;
        for &v in &views {
            absorbed[v] = true;
        }
        if let StepKind::Fused { program, inputs } =
            std::mem::replace(&mut step.kind, StepKind::View)
        {
            step.kind = StepKind::MatmulEpilogue {
                program,
                inputs,
                slot,
                matmul,
                views,
            };
        }
    }
    steps.retain(|s| !absorbed[s.node]);
    steps
}

/// The matmul behind program input `j` of the program computing `consumer`, and the reshapes
/// in between (in application order), when the chain qualifies (see [`fuse`]).
fn product_chain(
    g: &Graph,
    consumer: usize,
    j: usize,
    consumers: &[Vec<usize>],
    is_output: &[bool],
) -> Option<(usize, Vec<usize>)> {
    if g.nodes[j].shape != g.nodes[consumer].shape {
        return None;
    }
    let private = |c: usize| {
        consumers[c].len() == 1 && !is_output[c] && !g.nodes[c].is_realized() && !g.is_leaf(c)
    };
    let mut views = Vec::new();
    let mut c = j;
    while matches!(g.nodes[c].op, Op::Reshape) {
        if !private(c) {
            return None;
        }
        views.push(c);
        c = g.input_index[c][0];
    }
    let node = &g.nodes[c];
    let nd = node.shape.len();
    let float = matches!(node.dtype, DType::Float32 | DType::Float64);
    let single = nd >= 2 && node.shape[..nd - 2].iter().all(|&d| d == 1);
    if !matches!(node.op, Op::MatMul) || !private(c) || !float || !single || numel(&node.shape) == 0
    {
        return None;
    }
    views.reverse();
    Some((c, views))
}

/// Rows per block for an `m x k` by `k x n` product of `elem`-byte values on `threads`
/// threads, or `None` when blocks do not pay: the product is too short to give every thread
/// a block, or its right-hand matrix is larger than [`MAX_RHS_BYTES`] (the caller then runs
/// it whole, on gemm's own threading).
fn rows_per_block(m: usize, k: usize, n: usize, elem: usize, threads: usize) -> Option<usize> {
    if k.saturating_mul(n).saturating_mul(elem) > MAX_RHS_BYTES {
        return None;
    }
    let cache_rows = (BLOCK_ELEMS / n.max(1)).max(1);
    if threads <= 1 || m.saturating_mul(n).saturating_mul(k) < PARALLEL_WORK {
        return Some(cache_rows.max(MIN_BLOCK_ROWS).min(m));
    }
    if m < 16 * threads || (n > m && m < threads * MIN_BLOCK_ROWS) {
        // Too few rows for blocks worth their repacking: the product splits its columns
        // over the threads instead (`matmul`), and the program runs after it.
        return None;
    }
    // Two blocks per thread balance the load; at least MIN_BLOCK_ROWS rows unless that
    // would leave a thread without a block.
    let balanced = m.div_ceil(2 * threads).next_multiple_of(16);
    let floor = MIN_BLOCK_ROWS.min(m.div_ceil(threads).next_multiple_of(16));
    Some(cache_rows.min(balanced).max(floor).min(m))
}

/// Element types of products computed by blocks.
trait ProductElem: Element + matmul::GemmScalar {
    fn block(data: &[Self]) -> BlockData<'_>;
}

impl ProductElem for f32 {
    fn block(data: &[f32]) -> BlockData<'_> {
        BlockData::F32(data)
    }
}

impl ProductElem for f64 {
    fn block(data: &[f64]) -> BlockData<'_> {
        BlockData::F64(data)
    }
}

/// The 2-D view (offset, row stride, column stride) of a matmul operand whose leading axes
/// all have size 1.
fn mat_ref<'a, P: Element>(v: &'a Value) -> Result<MatRef<'a, P>> {
    let nd = v.shape.len();
    if nd < 2 {
        return Err(Error::Invalid("internal: epilogue operand rank".into()));
    }
    Ok(MatRef {
        data: v.storage.as_slice::<P>()?,
        offset: v.offset,
        batch_stride: 0,
        row_stride: v.strides[nd - 2],
        col_stride: v.strides[nd - 1],
    })
}

/// One block-wise product plus program: `out` (the program's output) is split into blocks of
/// `rb` product rows; each block's rows are multiplied into a scratch buffer and the program
/// reads them from there.
#[allow(clippy::too_many_arguments)]
fn blocked<T: Element, P: ProductElem>(
    a: &Value,
    b: &Value,
    (m, k, n): (usize, usize, usize),
    rb: usize,
    program: &Program,
    inputs: &[Input],
    slot: usize,
    shape: &[usize],
    out: &mut [T],
) -> Result<()> {
    let (ar, br) = (mat_ref::<P>(a)?, mat_ref::<P>(b)?);
    let prepared = program.prepare(inputs, shape)?;
    let product_dtype = a.dtype();
    let run_block = |(bi, dst): (usize, &mut [T])| -> Result<()> {
        let rows = dst.len() / n;
        let r0 = bi * rb;
        let mut scratch = Storage::uninit(product_dtype, rows * n)?;
        let tmp = scratch.as_mut_slice::<P>()?;
        matmul::matmul_rows((m, k, n), ar, br, r0..r0 + rows, tmp)?;
        program.fill_range_with_block(&prepared, slot, P::block(tmp), r0 * n, r0 * n, dst)
    };
    let blocks = m.div_ceil(rb);
    if blocks > 1
        && rayon::current_num_threads() > 1
        && m.saturating_mul(n).saturating_mul(k) >= PARALLEL_WORK
    {
        out.par_chunks_mut(rb * n)
            .enumerate()
            .try_for_each(run_block)
    } else {
        out.chunks_mut(rb * n).enumerate().try_for_each(run_block)
    }
}

/// Executes a [`StepKind::MatmulEpilogue`] step computing graph node `i`; `keep[j]` tells
/// whether node `j` must store its value (then the product is computed whole and stored).
#[allow(clippy::too_many_arguments)]
pub(crate) fn run(
    g: &Graph,
    i: usize,
    program: &Program,
    inputs: &[usize],
    slot: usize,
    matmul: usize,
    views: &[usize],
    slots: &crate::exec::Slots<'_>,
    keep: &[bool],
) -> Result<Value> {
    let node = &g.nodes[i];
    let mm = &g.nodes[matmul];
    let operand = |p: usize| {
        slots
            .get(g.input_index[matmul][p])
            .ok_or_else(|| Error::Invalid("internal: matmul operand is missing".into()))
    };
    let (a, b) = (operand(0)?, operand(1)?);
    let mut prog_inputs = inputs
        .iter()
        .enumerate()
        .map(|(s, &j)| {
            if s == slot {
                Ok(Input::Scalar(0.0))
            } else {
                program_input(g, j, slots)
            }
        })
        .collect::<Result<Vec<_>>>()?;
    let nd = mm.shape.len();
    let (m, n) = (mm.shape[nd - 2], mm.shape[nd - 1]);
    let k = a.shape[a.shape.len() - 1];
    let kept = keep[matmul] || views.iter().any(|&v| keep[v]);
    let elem = mm.dtype.size();
    let plan = rows_per_block(m, k, n, elem, rayon::current_num_threads());
    let (Some(rb), false) = (plan, kept) else {
        // The unfused order: the product, its reshapes, then the program over them.
        let mut v = run_matmul(a, b, &mm.shape, mm.dtype)?;
        if keep[matmul] {
            mm.set_value(v.clone());
        }
        for &w in views {
            v = movement::view(&g.nodes[w].op, &v, &g.nodes[w].shape)?;
            if keep[w] {
                g.nodes[w].set_value(v.clone());
            }
        }
        prog_inputs[slot] = Input::Tensor(v);
        return program.evaluate(&prog_inputs, &node.shape, node.dtype);
    };
    let mut storage = Storage::uninit(node.dtype, numel(&node.shape))?;
    dispatch_dtype!(node.dtype, T => {
        let out = storage.as_mut_slice::<T>()?;
        let args = (&prog_inputs[..], slot, &node.shape[..]);
        match mm.dtype {
            DType::Float32 => blocked::<T, f32>(a, b, (m, k, n), rb, program, args.0, args.1,
                                                args.2, out)?,
            DType::Float64 => blocked::<T, f64>(a, b, (m, k, n), rb, program, args.0, args.1,
                                                args.2, out)?,
            other => {
                return Err(Error::Invalid(format!(
                    "internal: matmul epilogue for {other}"
                )))
            }
        }
    });
    Ok(Value::contiguous(Arc::new(storage), node.shape.clone()))
}

#[cfg(test)]
mod tests {
    use super::rows_per_block;

    #[test]
    fn block_rows_cover_the_threads() {
        // BERT's projections: 1024 rows on two threads -> four blocks of 256 rows.
        assert_eq!(rows_per_block(1024, 256, 1024, 4, 2), Some(256));
        assert_eq!(rows_per_block(1024, 256, 256, 4, 2), Some(256));
        assert_eq!(rows_per_block(1024, 1024, 256, 4, 2), Some(256));
        // Wide products keep 256-row blocks (each block repacks the right-hand matrix).
        assert_eq!(rows_per_block(2048, 512, 2048, 4, 2), Some(256));
        assert_eq!(rows_per_block(300, 256, 256, 4, 2), Some(160));
        // Short products: one thread's share each, or whole (split by columns when wider
        // than tall: an MLP layer on a batch of 128).
        assert_eq!(rows_per_block(100, 64, 64, 4, 2), Some(64));
        assert_eq!(rows_per_block(300, 512, 512, 4, 2), None);
        assert_eq!(rows_per_block(128, 784, 256, 4, 2), None);
        assert_eq!(rows_per_block(20, 512, 512, 4, 2), None);
        // Right-hand matrices beyond 8 MiB stay with gemm's own blocking.
        assert_eq!(rows_per_block(1024, 768, 3072, 4, 2), None);
        assert_eq!(rows_per_block(1024, 768, 1536, 8, 2), None);
        assert_eq!(rows_per_block(1024, 768, 1536, 4, 2), Some(256));
        // Small work or one thread: blocks of cache size (at least 256 rows), in sequence.
        assert_eq!(rows_per_block(10, 8, 8, 4, 4), Some(10));
        assert_eq!(rows_per_block(4096, 64, 64, 4, 1), Some(4096));
        assert_eq!(rows_per_block(4096, 64, 4096, 4, 1), Some(256));
    }
}
