//! Reverse-mode automatic differentiation on the lazy graph.
//!
//! Every op has a vector-Jacobian rule ([`vjp`]) that builds the gradient as more graph
//! nodes, so gradients stay lazy and fuse with whatever consumes them (typically the
//! optimizer update). [`backward`] walks the nodes that require gradients in reverse
//! topological order and accumulates into the leaves' `grad`.

mod backward;
mod vjp;

pub use backward::backward;
pub use vjp::vjp;
