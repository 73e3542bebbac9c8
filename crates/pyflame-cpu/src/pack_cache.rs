//! Packed convolution weights kept across calls.
//!
//! The tiled convolution kernels read their weights in a packed order (see
//! `conv_tiles::pack`). Packing costs about as much as a small layer's arithmetic, and at
//! inference the weights never change: a session's initializers, a module in eval mode. So
//! the packed copy is kept, keyed by the identity of the weight storage (plus the offset of
//! the weights in it and the packing), for as long as that storage lives.
//!
//! Only storage whose values can never change is eligible ([`Storage::is_immutable`]: owned
//! buffers, and external memory the owner froze). The cache holds a [`Weak`] reference to
//! each source: while it exists the allocation cannot be reused by another storage, so a
//! pointer match is an identity match, and a source that died is purged.
//!
//! A weight is kept from its second use with the same packing on, so training, where every
//! step makes new weights, never fills the cache. The packed bytes are bounded
//! (`PYFLAME_PACK_CACHE_MB`, default 512); the least recently used are dropped first.

use crate::conv_tiles::WeightView;
use pyflame_core::{Result, Storage};
use std::sync::{Arc, Mutex, Weak};

/// How a weight tensor is packed: everything `conv_tiles::pack` is called with.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) struct PackSpec {
    /// where `a[m, k, t]` is read from
    pub view: WeightView,
    /// rows after padding and the rows of one block
    pub rows: usize,
    /// rows of one block
    pub block_rows: usize,
    /// values of `k`
    pub depth: usize,
    /// values of `t`
    pub taps: usize,
    /// what is done to the taps besides reordering them
    pub transform: Transform,
}

/// What a packing does to each row's taps besides reordering them.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Transform {
    /// the taps as they are
    None,
    /// the Winograd F(2x2, 3x3) kernel transform of `conv_winograd`, of the taps read in
    /// reverse order when `flipped`
    Winograd2x2 {
        /// taps read in reverse order
        flipped: bool,
    },
}

/// The weight storage and the offset of the weights' first element in it.
#[derive(Clone, Copy)]
pub(crate) struct WeightSource<'a> {
    /// the storage holding the weights
    pub storage: &'a Arc<Storage>,
    /// offset of the first weight, in elements
    pub offset: usize,
}

struct Entry {
    source: Weak<Storage>,
    offset: usize,
    spec: PackSpec,
    /// `None` until the second use
    packed: Option<Arc<Storage>>,
    /// uses counted by [`note_use`]
    uses: usize,
    last_use: u64,
}

impl Entry {
    fn matches(&self, source: &WeightSource<'_>, spec: &PackSpec) -> bool {
        std::ptr::eq(self.source.as_ptr(), Arc::as_ptr(source.storage))
            && self.offset == source.offset
            && self.spec == *spec
    }

    fn bytes(&self) -> usize {
        self.packed
            .as_ref()
            .map_or(0, |p| p.len() * p.dtype().size())
    }
}

struct Cache {
    entries: Vec<Entry>,
    clock: u64,
}

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
    clock: 0,
});

/// Most entries (packed or only seen) kept; beyond it the least recently used go.
const MAX_ENTRIES: usize = 4096;

fn budget_bytes() -> usize {
    std::env::var("PYFLAME_PACK_CACHE_MB")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .unwrap_or(512)
        << 20
}

fn lock() -> std::sync::MutexGuard<'static, Cache> {
    // A panic while holding the lock leaves a consistent Vec; keep using it.
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Counts a use of `source` packed as `spec` and returns how many uses came before (0 for
/// the first, and always 0 for weights that may change). Kernels whose speed depends on
/// packing ask this to know whether a packing would be reused.
pub(crate) fn note_use(source: Option<WeightSource<'_>>, spec: &PackSpec) -> usize {
    let Some(source) = source.filter(|s| s.storage.is_immutable()) else {
        return 0;
    };
    let mut cache = lock();
    cache.clock += 1;
    let now = cache.clock;
    if let Some(e) = cache.entries.iter_mut().find(|e| e.matches(&source, spec)) {
        e.last_use = now;
        e.uses += 1;
        return e.uses - 1;
    }
    cache.entries.retain(|e| e.source.strong_count() > 0);
    cache.entries.push(Entry {
        source: Arc::downgrade(source.storage),
        offset: source.offset,
        spec: *spec,
        packed: None,
        uses: 1,
        last_use: now,
    });
    evict(&mut cache, budget_bytes());
    0
}

/// The packed weights for a use already counted with [`note_use`]: from the cache when
/// present, otherwise made by `pack`, and kept from the second use on.
pub(crate) fn get_or_pack(
    source: Option<WeightSource<'_>>,
    spec: PackSpec,
    pack: impl FnOnce() -> Result<Storage>,
) -> Result<Arc<Storage>> {
    let Some(source) = source.filter(|s| s.storage.is_immutable()) else {
        return Ok(Arc::new(pack()?));
    };
    let keep = {
        let cache = lock();
        match cache.entries.iter().find(|e| e.matches(&source, &spec)) {
            Some(Entry {
                packed: Some(p), ..
            }) => return Ok(p.clone()),
            Some(e) => e.uses >= 2,
            None => false,
        }
    };
    // Packed outside the lock: other threads' convolutions need not wait for it.
    let packed = Arc::new(pack()?);
    if keep {
        let mut cache = lock();
        if let Some(e) = cache.entries.iter_mut().find(|e| e.matches(&source, &spec)) {
            e.packed.get_or_insert_with(|| packed.clone());
        }
        evict(&mut cache, budget_bytes());
    }
    Ok(packed)
}

/// [`note_use`] then [`get_or_pack`].
pub(crate) fn packed(
    source: Option<WeightSource<'_>>,
    spec: PackSpec,
    pack: impl FnOnce() -> Result<Storage>,
) -> Result<Arc<Storage>> {
    note_use(source, &spec);
    get_or_pack(source, spec, pack)
}

/// Drops least recently used entries until the packed bytes fit `budget` and the entry
/// count fits [`MAX_ENTRIES`].
fn evict(cache: &mut Cache, budget: usize) {
    let mut total: usize = cache.entries.iter().map(Entry::bytes).sum();
    while total > budget || cache.entries.len() > MAX_ENTRIES {
        let Some(oldest) = cache
            .entries
            .iter()
            .enumerate()
            .filter(|(_, e)| total <= budget || e.packed.is_some())
            .min_by_key(|(_, e)| e.last_use)
            .map(|(i, _)| i)
        else {
            break;
        };
        total -= cache.entries[oldest].bytes();
        cache.entries.swap_remove(oldest);
    }
}

/// Packed bytes held (for tests and diagnostics).
pub fn cached_bytes() -> usize {
    lock().entries.iter().map(Entry::bytes).sum()
}

/// Drops every cached packing.
pub fn clear() {
    lock().entries.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use pyflame_core::DType;

    fn spec(depth: usize) -> PackSpec {
        PackSpec {
            view: WeightView::output_rows(2, depth, 1),
            rows: 2,
            block_rows: 2,
            depth,
            taps: 1,
            transform: Transform::None,
        }
    }

    fn pack_counting(count: &std::cell::Cell<usize>) -> Result<Storage> {
        count.set(count.get() + 1);
        Storage::zeros(DType::Float32, 8)
    }

    #[test]
    fn packs_once_from_the_second_use_and_forgets_dead_sources() {
        let w = Arc::new(Storage::from_slice(&[1.0f32; 8]).unwrap());
        let source = Some(WeightSource {
            storage: &w,
            offset: 0,
        });
        let count = std::cell::Cell::new(0);
        let s = spec(4);
        assert_eq!(note_use(source, &s), 0);
        get_or_pack(source, s, || pack_counting(&count)).unwrap();
        assert_eq!(note_use(source, &s), 1);
        let a = get_or_pack(source, s, || pack_counting(&count)).unwrap();
        let b = packed(source, s, || pack_counting(&count)).unwrap();
        assert_eq!(
            count.get(),
            2,
            "first use and second use pack, the third reuses"
        );
        assert!(Arc::ptr_eq(&a, &b));
        // another packing of the same weights is a different entry
        assert_eq!(note_use(source, &spec(2)), 0);
        drop(w);
        let other = Arc::new(Storage::from_slice(&[2.0f32; 8]).unwrap());
        let other_source = Some(WeightSource {
            storage: &other,
            offset: 0,
        });
        note_use(other_source, &s);
        let cache = lock();
        assert!(cache.entries.iter().all(|e| e.source.strong_count() > 0));
    }

    #[test]
    fn mutable_external_memory_is_never_cached() {
        let data = [1.0f32; 8];
        // SAFETY: `data` outlives the storage and is not modified during the test.
        let ext = unsafe {
            Storage::from_external(data.as_ptr().cast(), 8, DType::Float32, Box::new(()))
        }
        .unwrap();
        let w = Arc::new(ext);
        let source = Some(WeightSource {
            storage: &w,
            offset: 0,
        });
        let count = std::cell::Cell::new(0);
        for _ in 0..3 {
            packed(source, spec(3), || pack_counting(&count)).unwrap();
        }
        assert_eq!(count.get(), 3);
        assert_eq!(note_use(source, &spec(3)), 0);
    }

    #[test]
    fn eviction_keeps_the_budget() {
        let mut cache = Cache {
            entries: Vec::new(),
            clock: 0,
        };
        let w = Arc::new(Storage::from_slice(&[0.0f32; 4]).unwrap());
        for i in 0..4 {
            cache.entries.push(Entry {
                source: Arc::downgrade(&w),
                offset: i,
                spec: spec(1),
                packed: Some(Arc::new(Storage::zeros(DType::Float32, 256).unwrap())),
                uses: 2,
                last_use: i as u64,
            });
        }
        evict(&mut cache, 2 * 1024);
        assert_eq!(cache.entries.len(), 2);
        assert!(cache.entries.iter().all(|e| e.last_use >= 2));
    }
}
