//! Thread-local gradient mode (`pyflame.no_grad()` turns it off for the current thread).

use std::cell::Cell;

thread_local! {
    static ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// True when new ops record gradient history.
pub fn is_enabled() -> bool {
    ENABLED.with(|e| e.get())
}

/// Sets the mode for the current thread and returns the previous one.
pub fn set_enabled(enabled: bool) -> bool {
    ENABLED.with(|e| e.replace(enabled))
}
