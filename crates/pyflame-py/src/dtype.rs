//! Python classes for dtypes, mesh layouts and PE coordinates.

use pyflame_core::{DType, MeshLayout};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyString;

/// A tensor element type (`pyflame.float32`, ...).
#[pyclass(name = "DType", module = "pyflame", frozen, eq, hash, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyDType {
    /// the core dtype
    pub inner: DType,
}

#[pymethods]
impl PyDType {
    /// Canonical name, e.g. `"float32"`.
    #[getter]
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    /// Bytes per element.
    #[getter]
    fn itemsize(&self) -> usize {
        self.inner.size()
    }
    /// True for floating point types.
    #[getter]
    fn is_floating_point(&self) -> bool {
        self.inner.is_float()
    }
    fn __repr__(&self) -> String {
        format!("DType.{}", self.inner.name())
    }
    fn __str__(&self) -> &'static str {
        self.inner.name()
    }
    fn __reduce__(&self, py: Python<'_>) -> PyResult<(Py<PyAny>, (String,))> {
        let f = py.import("pyflame")?.getattr("dtype_from_name")?;
        Ok((f.unbind(), (self.inner.name().to_string(),)))
    }
}

/// Parses a dtype argument: a `DType`, a name, or a NumPy dtype / type.
pub fn parse_dtype(obj: &Bound<'_, PyAny>) -> PyResult<DType> {
    if obj.is_none() {
        return Err(PyTypeError::new_err("expected a pyflame dtype, got None"));
    }
    if let Ok(d) = obj.cast::<PyDType>() {
        return Ok(d.get().inner);
    }
    let name = if let Ok(s) = obj.cast::<PyString>() {
        s.to_string()
    } else if let Ok(n) = obj.py().import("numpy")?.call_method1("dtype", (obj,)) {
        n.getattr("name")?.extract::<String>()?
    } else {
        return Err(PyTypeError::new_err(format!(
            "expected a pyflame dtype, got {}",
            obj.repr()?
        )));
    };
    DType::from_name(&name)
        .ok_or_else(|| PyTypeError::new_err(format!("unsupported dtype '{name}'")))
}

/// Optional dtype argument.
pub fn parse_opt_dtype(obj: Option<&Bound<'_, PyAny>>) -> PyResult<Option<DType>> {
    match obj {
        Some(o) if !o.is_none() => parse_dtype(o).map(Some),
        _ => Ok(None),
    }
}

/// How a tensor is distributed over the PEs of a Cerebras wafer.
#[pyclass(
    name = "MeshLayout",
    module = "pyflame",
    frozen,
    eq,
    hash,
    from_py_object
)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyMeshLayout {
    /// the core layout
    pub inner: MeshLayout,
}

fn positive(n: usize, what: &str) -> PyResult<usize> {
    if n == 0 {
        return Err(PyValueError::new_err(format!("{what} must be at least 1")));
    }
    Ok(n)
}

#[pymethods]
impl PyMeshLayout {
    /// All data on one PE.
    #[staticmethod]
    fn single_pe() -> Self {
        PyMeshLayout {
            inner: MeshLayout::SinglePe,
        }
    }
    /// Rows split across `n` PEs.
    #[staticmethod]
    fn row_partition(n: usize) -> PyResult<Self> {
        Ok(PyMeshLayout {
            inner: MeshLayout::RowPartition(positive(n, "n")?),
        })
    }
    /// Columns split across `n` PEs.
    #[staticmethod]
    fn col_partition(n: usize) -> PyResult<Self> {
        Ok(PyMeshLayout {
            inner: MeshLayout::ColPartition(positive(n, "n")?),
        })
    }
    /// 2-D tiles on a `rows x cols` PE grid.
    #[staticmethod]
    fn grid(rows: usize, cols: usize) -> PyResult<Self> {
        Ok(PyMeshLayout {
            inner: MeshLayout::Grid(positive(rows, "rows")?, positive(cols, "cols")?),
        })
    }
    /// Layout kind: "single_pe", "row_partition", "col_partition" or "grid".
    #[getter]
    fn kind(&self) -> &'static str {
        match self.inner {
            MeshLayout::SinglePe => "single_pe",
            MeshLayout::RowPartition(_) => "row_partition",
            MeshLayout::ColPartition(_) => "col_partition",
            MeshLayout::Grid(..) => "grid",
        }
    }
    /// PE rows used.
    #[getter]
    fn pe_rows(&self) -> usize {
        self.inner.pe_grid().0
    }
    /// PE columns used.
    #[getter]
    fn pe_cols(&self) -> usize {
        self.inner.pe_grid().1
    }
    /// Total PEs used.
    #[getter]
    fn num_pes(&self) -> usize {
        self.inner.num_pes()
    }
    fn __repr__(&self) -> String {
        self.inner.to_string()
    }
}

/// Coordinate of a processing element.
#[pyclass(name = "PECoord", module = "pyflame", frozen, eq, hash, from_py_object)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PyPECoord {
    /// row
    #[pyo3(get)]
    pub row: usize,
    /// column
    #[pyo3(get)]
    pub col: usize,
}

#[pymethods]
impl PyPECoord {
    #[new]
    fn new(row: usize, col: usize) -> Self {
        PyPECoord { row, col }
    }
    fn __repr__(&self) -> String {
        format!("PECoord(row={}, col={})", self.row, self.col)
    }
}
