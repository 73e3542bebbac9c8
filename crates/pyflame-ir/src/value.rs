//! [`Value`]: realized tensor data, a strided view into shared [`Storage`].

use pyflame_core::{contiguous_strides, numel, DType, Storage};
use std::sync::Arc;

/// A realized tensor: storage plus shape, strides (in elements) and offset.
#[derive(Clone, Debug)]
pub struct Value {
    /// The shared buffer.
    pub storage: Arc<Storage>,
    /// Logical shape.
    pub shape: Vec<usize>,
    /// Strides in elements (0 on broadcast axes).
    pub strides: Vec<isize>,
    /// Offset of element `[0, 0, ...]` in the storage, in elements.
    pub offset: usize,
}

impl Value {
    /// A contiguous value covering all of `storage`.
    pub fn contiguous(storage: Arc<Storage>, shape: Vec<usize>) -> Self {
        let strides = contiguous_strides(&shape);
        Value {
            storage,
            shape,
            strides,
            offset: 0,
        }
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.storage.dtype()
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// True when the elements are laid out row-major with no gaps (offset may be non-zero).
    pub fn is_contiguous(&self) -> bool {
        let mut expect = 1isize;
        for i in (0..self.shape.len()).rev() {
            if self.shape[i] != 1 && self.strides[i] != expect {
                return false;
            }
            expect *= self.shape[i] as isize;
        }
        true
    }

    /// True when every element is the same storage element (all strides zero).
    pub fn is_broadcast_scalar(&self) -> bool {
        self.strides
            .iter()
            .zip(&self.shape)
            .all(|(&s, &d)| s == 0 || d == 1)
    }

    /// True for a contiguous view of the whole storage.
    pub fn is_whole_storage(&self) -> bool {
        self.offset == 0 && self.is_contiguous() && self.numel() == self.storage.len()
    }
}
