//! Op builders: each checks its arguments, infers the output shape and dtype, and returns a
//! new lazy node. Shape errors surface here, at the line that builds the op.

use crate::op::float_result;
use crate::{
    BinaryOp, ConvAttrs, Node, NodeRef, Op, PoolAttrs, PoolKind, RandDist, ReduceOp, UnaryOp,
};
use pyflame_core::{broadcast_shapes, normalize_axis, numel, DType, Error, MeshLayout, Result};

fn fmt_shape(s: &[usize]) -> String {
    format!("{s:?}")
}

mod attention;
mod conv_fused;
mod elementwise;
mod linalg;
mod norm;
mod optim;
mod reduce;
mod shape;
mod sources;

pub use attention::*;
pub use conv_fused::*;
pub use elementwise::*;
pub use linalg::*;
pub use norm::*;
pub use optim::*;
pub use reduce::*;
pub use shape::*;
pub use sources::*;
