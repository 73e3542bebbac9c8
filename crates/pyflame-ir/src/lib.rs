//! PyFlame graph IR: operations ([`Op`]), the lazy tensor DAG ([`Node`]), op builders with
//! shape/dtype inference ([`build`]), and capture of unrealized ancestors into a [`Graph`].

pub mod build;
pub mod grad_mode;
pub mod graph;
pub mod node;
pub mod op;
pub mod random;
pub mod template;
pub mod value;

pub use graph::Graph;
pub use node::{Node, NodeRef};
pub use op::{
    AdamAttrs, AttnAttrs, AttnMask, BinaryOp, ConvAttrs, ConvEpilogue, NormMode, Op, PoolAttrs,
    PoolKind, RandDist, ReduceOp, UnaryOp,
};
pub use value::Value;
