//! [`Storage`]: a type-erased, 64-byte aligned buffer, either owned or borrowed from an
//! external owner (for example a NumPy array kept alive by the bindings).

use crate::{DType, Element, Error, Result};
use std::alloc::{alloc, alloc_zeroed, dealloc, Layout};
use std::any::Any;
use std::ptr::NonNull;

const ALIGN: usize = 64;

/// Large buffers are recycled: a fresh multi-megabyte allocation costs a page fault per
/// 4 KiB on first touch, which is a large share of an elementwise kernel's time.
mod pool {
    use std::alloc::{dealloc, Layout};
    use std::ptr::NonNull;
    use std::sync::Mutex;

    /// Smallest buffer worth recycling (smaller ones come from malloc's own free lists).
    pub const MIN_BYTES: usize = 64 << 10;
    /// Most bytes held in the pool by default (oldest buffers are freed first beyond it).
    const DEFAULT_CAP_BYTES: usize = 32 << 20;

    /// The pool's cap: `PYFLAME_POOL_MB` (read once) or 32 MiB. Pooled buffers avoid page
    /// faults on repeated steps but count in the process's memory.
    fn cap_bytes() -> usize {
        static CAP: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
        *CAP.get_or_init(|| {
            std::env::var("PYFLAME_POOL_MB")
                .ok()
                .and_then(|v| v.trim().parse::<usize>().ok())
                .map_or(DEFAULT_CAP_BYTES, |mb| mb.saturating_mul(1 << 20))
        })
    }

    struct Entry(NonNull<u8>, Layout);
    // SAFETY: an entry is an unused allocation owned by the pool.
    unsafe impl Send for Entry {}

    static POOL: Mutex<(Vec<Entry>, usize)> = Mutex::new((Vec::new(), 0));

    /// Takes a recycled buffer of exactly `layout`, if one is free.
    pub fn take(layout: Layout) -> Option<NonNull<u8>> {
        let mut pool = POOL.lock().ok()?;
        let i = pool.0.iter().rposition(|e| e.1 == layout)?;
        let e = pool.0.swap_remove(i);
        pool.1 -= layout.size();
        Some(e.0)
    }

    /// Returns a buffer to the pool, freeing the oldest pooled buffers to stay under the cap
    /// (a buffer larger than the cap is freed at once).
    pub fn give(ptr: NonNull<u8>, layout: Layout) {
        let cap = cap_bytes();
        if layout.size() <= cap {
            if let Ok(mut pool) = POOL.lock() {
                let mut evicted = Vec::new();
                while pool.1 + layout.size() > cap && !pool.0.is_empty() {
                    let old = pool.0.remove(0);
                    pool.1 -= old.1.size();
                    evicted.push(old);
                }
                pool.1 += layout.size();
                pool.0.push(Entry(ptr, layout));
                drop(pool);
                for e in evicted {
                    // SAFETY: allocated with this layout by Storage.
                    unsafe { dealloc(e.0.as_ptr(), e.1) }
                }
                return;
            }
        }
        // SAFETY: allocated with this layout by Storage.
        unsafe { dealloc(ptr.as_ptr(), layout) }
    }

    /// Frees every pooled buffer.
    pub fn clear() {
        if let Ok(mut pool) = POOL.lock() {
            for e in pool.0.drain(..) {
                // SAFETY: allocated with this layout by Storage.
                unsafe { dealloc(e.0.as_ptr(), e.1) }
            }
            pool.1 = 0;
        }
    }
}

/// Releases the memory of recycled tensor buffers back to the system allocator.
pub fn release_cached_memory() {
    pool::clear();
}

enum Backing {
    Owned {
        layout: Layout,
    },
    External {
        _owner: Box<dyn Any + Send + Sync>,
        /// the owner promised the memory never changes (see [`Storage::freeze`])
        frozen: bool,
    },
}

/// A contiguous block of elements of one dtype.
///
/// Storage is immutable once shared (tensors hold it through `Arc`); kernels write only into
/// storage they have just allocated and not yet published.
pub struct Storage {
    ptr: NonNull<u8>,
    len: usize,
    dtype: DType,
    backing: Backing,
}

// SAFETY: the buffer is plain data; shared access is read-only and mutation requires `&mut`.
unsafe impl Send for Storage {}
// SAFETY: see above.
unsafe impl Sync for Storage {}

impl Storage {
    fn allocate(dtype: DType, len: usize, zeroed: bool) -> Result<Self> {
        let bytes = len
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::Invalid(format!("tensor of {len} elements is too large")))?;
        let layout = Layout::from_size_align(bytes.max(ALIGN), ALIGN)
            .map_err(|_| Error::Invalid(format!("tensor of {bytes} bytes is too large")))?;
        if !zeroed && layout.size() >= pool::MIN_BYTES {
            if let Some(ptr) = pool::take(layout) {
                return Ok(Storage {
                    ptr,
                    len,
                    dtype,
                    backing: Backing::Owned { layout },
                });
            }
        }
        // SAFETY: layout has non-zero size.
        let raw = unsafe {
            if zeroed {
                alloc_zeroed(layout)
            } else {
                alloc(layout)
            }
        };
        let ptr = NonNull::new(raw).ok_or_else(|| {
            Error::Invalid(format!(
                "out of memory allocating {bytes} bytes for a tensor"
            ))
        })?;
        Ok(Storage {
            ptr,
            len,
            dtype,
            backing: Backing::Owned { layout },
        })
    }

    /// Allocates `len` elements of `dtype`. The contents are unspecified until written, so the
    /// caller must fill every element before sharing the storage.
    pub fn uninit(dtype: DType, len: usize) -> Result<Self> {
        let mut s = Self::allocate(dtype, len, false)?;
        // Bool buffers must only ever hold 0/1 and floats must not be signalling garbage
        // visible to readers: zero small buffers cheaply; large ones are always fully written.
        if dtype == DType::Bool {
            s.bytes_mut().fill(0);
        }
        Ok(s)
    }

    /// Allocates `len` zeroed elements (a recycled buffer is cleared with memset, which is
    /// cheaper than faulting in fresh pages).
    pub fn zeros(dtype: DType, len: usize) -> Result<Self> {
        let mut s = Self::allocate(dtype, len, false)?;
        s.bytes_mut().fill(0);
        Ok(s)
    }

    /// Copies a slice into new storage.
    pub fn from_slice<T: Element>(data: &[T]) -> Result<Self> {
        let mut s = Self::uninit(T::DTYPE, data.len())?;
        s.as_mut_slice::<T>()?.copy_from_slice(data);
        Ok(s)
    }

    /// Wraps memory owned by someone else.
    ///
    /// # Safety
    /// `ptr` must point to `len` valid, initialized elements of `dtype`, suitably aligned for
    /// the element type, that stay alive and unmodified by Rust code while `owner` is alive.
    pub unsafe fn from_external(
        ptr: *const u8,
        len: usize,
        dtype: DType,
        owner: Box<dyn Any + Send + Sync>,
    ) -> Result<Self> {
        let ptr = NonNull::new(ptr as *mut u8)
            .ok_or_else(|| Error::Invalid("external buffer pointer is null".into()))?;
        Ok(Storage {
            ptr,
            len,
            dtype,
            backing: Backing::External {
                _owner: owner,
                frozen: false,
            },
        })
    }

    /// Element type.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the storage holds no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when this storage owns its memory (and so may be written through `&mut`).
    pub fn is_owned(&self) -> bool {
        matches!(self.backing, Backing::Owned { .. })
    }

    /// Records that the external owner will never modify this memory again (an owned buffer
    /// is immutable once shared anyway). Kernels may then cache layouts derived from the
    /// values, such as packed convolution weights, for as long as the storage lives.
    pub fn freeze(&mut self) {
        if let Backing::External { frozen, .. } = &mut self.backing {
            *frozen = true;
        }
    }

    /// True when the values can never change while this storage is alive: owned buffers
    /// (written only before they are shared) and external memory marked with
    /// [`Storage::freeze`]. Memory borrowed from a writable NumPy array is not.
    pub fn is_immutable(&self) -> bool {
        match self.backing {
            Backing::Owned { .. } => true,
            Backing::External { frozen, .. } => frozen,
        }
    }

    /// Raw bytes.
    pub fn bytes(&self) -> &[u8] {
        // SAFETY: ptr is valid for len * size bytes for the life of self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len * self.dtype.size()) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self gives exclusive access.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len * self.dtype.size()) }
    }

    /// Typed view; fails when `T` is not the storage's dtype.
    pub fn as_slice<T: Element>(&self) -> Result<&[T]> {
        self.check::<T>()?;
        // SAFETY: dtype matches T, alignment is 64 for owned buffers and checked by the
        // constructor contract for external ones.
        Ok(unsafe { std::slice::from_raw_parts(self.ptr.as_ptr() as *const T, self.len) })
    }

    /// Typed mutable view of owned storage.
    pub fn as_mut_slice<T: Element>(&mut self) -> Result<&mut [T]> {
        self.check::<T>()?;
        if !self.is_owned() {
            return Err(Error::Invalid(
                "cannot write into borrowed (external) storage".into(),
            ));
        }
        // SAFETY: as in as_slice, plus exclusive access through &mut self.
        Ok(unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr() as *mut T, self.len) })
    }

    fn check<T: Element>(&self) -> Result<()> {
        if T::DTYPE != self.dtype {
            return Err(Error::DType(format!(
                "storage holds {} but {} was requested",
                self.dtype,
                T::DTYPE
            )));
        }
        Ok(())
    }

    /// Deep copy into a new owned buffer.
    pub fn deep_clone(&self) -> Result<Self> {
        let mut s = Self::allocate(self.dtype, self.len, false)?;
        s.bytes_mut().copy_from_slice(self.bytes());
        Ok(s)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        if let Backing::Owned { layout } = self.backing {
            if layout.size() >= pool::MIN_BYTES {
                pool::give(self.ptr, layout);
            } else {
                // SAFETY: allocated in `allocate` with this layout.
                unsafe { dealloc(self.ptr.as_ptr(), layout) }
            }
        }
    }
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Storage({} x {})", self.len, self.dtype)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_access_is_checked() {
        let s = Storage::from_slice(&[1.0f32, 2.0, 3.0]).unwrap();
        assert_eq!(s.as_slice::<f32>().unwrap(), &[1.0, 2.0, 3.0]);
        assert!(s.as_slice::<f64>().is_err());
        assert_eq!(s.as_slice::<f32>().unwrap().as_ptr() as usize % 64, 0);
        let z = Storage::zeros(DType::Int64, 0).unwrap();
        assert!(z.is_empty());
    }
}
