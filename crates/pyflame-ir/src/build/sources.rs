//! Source ops: constant fills, ranges, identity matrices, random tensors.

use super::*;

/// A constant-filled tensor.
pub fn full(shape: Vec<usize>, value: f64, dtype: DType, layout: MeshLayout) -> NodeRef {
    Node::new(Op::Full { value }, vec![], shape, dtype, layout)
}

/// `start, start + step, ...` below `end` (or above it for negative steps).
pub fn arange(
    start: f64,
    end: f64,
    step: f64,
    dtype: DType,
    layout: MeshLayout,
) -> Result<NodeRef> {
    if step == 0.0 || !step.is_finite() || !start.is_finite() || !end.is_finite() {
        return Err(Error::Invalid(format!(
            "arange: step must be finite and non-zero and bounds finite (got start={start}, end={end}, step={step})"
        )));
    }
    if (end - start) * step < 0.0 {
        return Err(Error::Invalid(format!(
            "arange: upper bound and step sign are inconsistent (start={start}, end={end}, step={step})"
        )));
    }
    let n = ((end - start) / step).ceil().max(0.0) as usize;
    Ok(Node::new(
        Op::Arange { start, step },
        vec![],
        vec![n],
        dtype,
        layout,
    ))
}

/// `steps` points from `start` to `end` inclusive.
pub fn linspace(start: f64, end: f64, steps: usize, dtype: DType, layout: MeshLayout) -> NodeRef {
    Node::new(
        Op::Linspace { start, end },
        vec![],
        vec![steps],
        dtype,
        layout,
    )
}

/// `n x m` identity matrix.
pub fn eye(n: usize, m: usize, dtype: DType, layout: MeshLayout) -> NodeRef {
    Node::new(Op::Eye, vec![], vec![n, m], dtype, layout)
}

/// A random tensor drawing a fresh seed from the global generator.
pub fn random(
    shape: Vec<usize>,
    dist: RandDist,
    dtype: DType,
    layout: MeshLayout,
) -> Result<NodeRef> {
    match dist {
        RandDist::Int { low, high } if high <= low => {
            return Err(Error::Invalid(format!(
                "randint: high ({high}) must be greater than low ({low})"
            )))
        }
        RandDist::Uniform { .. } | RandDist::Normal { .. } if !dtype.is_float() => {
            return Err(Error::DType(format!(
                "rand/randn need a floating dtype, got {dtype}"
            )))
        }
        _ => {}
    }
    let seed = crate::random::next_seed();
    Ok(Node::new(
        Op::Random { dist, seed },
        vec![],
        shape,
        dtype,
        layout,
    ))
}
