//! The error type every PyFlame crate returns.

/// A PyFlame error. The binding layer maps each variant to a Python exception.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    /// Incompatible shapes (maps to `pyflame.ShapeError`, a `ValueError`).
    #[error("{0}")]
    Shape(String),
    /// A dtype that the operation does not accept (maps to `TypeError`).
    #[error("{0}")]
    DType(String),
    /// An out-of-range index or dimension (maps to `IndexError`).
    #[error("{0}")]
    Index(String),
    /// Any other invalid argument (maps to `ValueError`).
    #[error("{0}")]
    Invalid(String),
    /// A feature that is not built yet (maps to `NotImplementedError`).
    #[error("{0}")]
    NotImplemented(String),
}

/// Result alias using [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Returns early with an [`Error::Shape`] built from a format string.
#[macro_export]
macro_rules! shape_err {
    ($($arg:tt)*) => { return Err($crate::Error::Shape(format!($($arg)*))) };
}

/// Returns early with an [`Error::Invalid`] built from a format string.
#[macro_export]
macro_rules! invalid {
    ($($arg:tt)*) => { return Err($crate::Error::Invalid(format!($($arg)*))) };
}
