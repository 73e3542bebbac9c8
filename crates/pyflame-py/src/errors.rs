//! Maps PyFlame errors to Python exceptions.

use pyo3::exceptions::{PyIndexError, PyNotImplementedError, PyTypeError, PyValueError};
use pyo3::prelude::*;

pyo3::create_exception!(
    _core,
    ShapeError,
    PyValueError,
    "Incompatible tensor shapes."
);

/// Converts a core error into the matching Python exception.
pub fn to_py(e: pyflame_core::Error) -> PyErr {
    use pyflame_core::Error::*;
    match e {
        Shape(m) => ShapeError::new_err(m),
        DType(m) => PyTypeError::new_err(m),
        Index(m) => PyIndexError::new_err(m),
        Invalid(m) => PyValueError::new_err(m),
        NotImplemented(m) => PyNotImplementedError::new_err(m),
    }
}

/// `Result` conversion helper: `core_result.py()?`.
pub trait IntoPy<T> {
    /// Maps the error to a Python exception.
    fn py(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for pyflame_core::Result<T> {
    fn py(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
