//! PyFlame core types shared by every other crate: [`DType`], shapes and strides,
//! [`Storage`] (aligned, type-erased buffers), [`MeshLayout`]/[`PECoord`] and [`Error`].

pub mod dtype;
pub mod element;
pub mod error;
pub mod layout;
pub mod shape;
pub mod storage;

pub use dtype::DType;
pub use element::Element;
pub use error::{Error, Result};
pub use layout::{MeshLayout, PECoord};
pub use shape::{broadcast_shapes, contiguous_strides, normalize_axis, numel};
pub use storage::Storage;
