//! Tensor helpers shared by the `Tensor` methods and the module-level functions: operand
//! conversion, evaluation with the GIL released, and ops with Python-level argument handling
//! (max/min with indices, clamp, split/chunk, gelu, repr).

use crate::convert::{self, extract_scalar, parse_dims, scalar_node, value_to_numpy};
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use pyflame_core::DType;
use pyflame_ir::{build, BinaryOp, NodeRef, ReduceOp, UnaryOp};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;

/// Evaluates nodes with the GIL released.
pub fn evaluate(py: Python<'_>, nodes: &[NodeRef]) -> PyResult<()> {
    py.detach(|| pyflame_cpu::exec::evaluate(nodes)).py()
}

/// The node of a tensor argument, or a scalar node typed against `like`.
pub fn operand(obj: &Bound<'_, PyAny>, like: Option<&NodeRef>) -> PyResult<Option<NodeRef>> {
    if let Ok(t) = obj.cast::<PyTensor>() {
        return Ok(Some(t.borrow().node.clone()));
    }
    let layout = like.map(|n| n.layout).unwrap_or_default();
    if let Some(s) = extract_scalar(obj) {
        return Ok(Some(scalar_node(&s, like.map(|n| n.dtype), layout)));
    }
    if obj.hasattr("__array_interface__")? && obj.hasattr("dtype")? {
        return Ok(Some(convert::node_from_numpy(obj, layout)?));
    }
    Ok(None)
}

/// Like [`operand`] but raising `TypeError` for unsupported objects.
pub fn require_operand(
    obj: &Bound<'_, PyAny>,
    like: Option<&NodeRef>,
    what: &str,
) -> PyResult<NodeRef> {
    operand(obj, like)?.ok_or_else(|| {
        PyTypeError::new_err(format!(
            "{what}: expected a Tensor or a number, got {}",
            obj.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })
}

pub(crate) fn wrap(py: Python<'_>, node: NodeRef) -> PyResult<Py<PyAny>> {
    Ok(Py::new(py, PyTensor::new(node))?.into_any())
}

pub(crate) fn binop(
    py: Python<'_>,
    op: BinaryOp,
    a: &NodeRef,
    other: &Bound<'_, PyAny>,
    reflected: bool,
) -> PyResult<Py<PyAny>> {
    match operand(other, Some(a))? {
        None => Ok(py.NotImplemented()),
        Some(b) => {
            let node = if reflected {
                build::binary(op, &b, a)
            } else {
                build::binary(op, a, &b)
            }
            .py()?;
            wrap(py, node)
        }
    }
}

pub(crate) fn values_indices(py: Python<'_>) -> PyResult<&Bound<'_, PyAny>> {
    static CLS: PyOnceLock<Py<PyAny>> = PyOnceLock::new();
    Ok(CLS
        .get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            let nt = py.import("collections")?.getattr("namedtuple")?;
            Ok(nt.call1(("ValuesIndices", ("values", "indices")))?.unbind())
        })?
        .bind(py))
}

/// `max`/`min` with the PyTorch convention: no dim -> 0-d tensor, dim -> (values, indices).
pub fn max_min(
    py: Python<'_>,
    x: &NodeRef,
    is_max: bool,
    dim: Option<&Bound<'_, PyAny>>,
    keepdim: bool,
) -> PyResult<Py<PyAny>> {
    let op = if is_max { ReduceOp::Max } else { ReduceOp::Min };
    match dim {
        Some(d) if !d.is_none() => {
            if let Ok(other) = d.cast::<PyTensor>() {
                // max(a, b) elementwise, like torch.max(a, other).
                let b = other.borrow().node.clone();
                let bop = if is_max {
                    BinaryOp::Maximum
                } else {
                    BinaryOp::Minimum
                };
                return wrap(py, build::binary(bop, x, &b).py()?);
            }
            let dims = parse_dims(Some(d))?.unwrap_or_default();
            if dims.len() != 1 {
                return Err(PyTypeError::new_err(
                    "max/min with indices take a single int dim",
                ));
            }
            let values = build::reduce(op, x, Some(&dims), keepdim).py()?;
            let indices = build::arg_reduce(is_max, x, Some(dims[0]), keepdim).py()?;
            let cls = values_indices(py)?;
            Ok(cls.call1((wrap(py, values)?, wrap(py, indices)?))?.unbind())
        }
        _ => wrap(py, build::reduce(op, x, None, false).py()?),
    }
}

/// Reduction helper shared by methods and functions.
pub fn reduction(
    x: &NodeRef,
    op: ReduceOp,
    dim: Option<&Bound<'_, PyAny>>,
    keepdim: bool,
) -> PyResult<NodeRef> {
    let dims = parse_dims(dim)?;
    build::reduce(op, x, dims.as_deref(), keepdim).py()
}

/// `clamp(x, min, max)` with scalar or tensor bounds.
pub fn clamp(
    x: &NodeRef,
    min: Option<&Bound<'_, PyAny>>,
    max: Option<&Bound<'_, PyAny>>,
) -> PyResult<NodeRef> {
    let min = min.filter(|m| !m.is_none());
    let max = max.filter(|m| !m.is_none());
    if min.is_none() && max.is_none() {
        return Err(PyValueError::new_err(
            "clamp: at least one of min and max must be given",
        ));
    }
    let mut out = x.clone();
    if let Some(m) = min {
        let b = require_operand(m, Some(x), "clamp")?;
        out = build::binary(BinaryOp::Maximum, &out, &b).py()?;
    }
    if let Some(m) = max {
        let b = require_operand(m, Some(x), "clamp")?;
        out = build::binary(BinaryOp::Minimum, &out, &b).py()?;
    }
    Ok(out)
}

/// Splits along `dim` into pieces of `size` (int) or the given sizes (list).
pub fn split(x: &NodeRef, sizes: &Bound<'_, PyAny>, dim: i64) -> PyResult<Vec<NodeRef>> {
    let a = pyflame_core::normalize_axis(dim, x.shape.len()).py()?;
    let n = x.shape[a];
    let parts: Vec<usize> = if let Ok(s) = sizes.extract::<i64>() {
        if s <= 0 {
            return Err(PyValueError::new_err(format!(
                "split_size must be positive, got {s}"
            )));
        }
        let s = s as usize;
        if n == 0 {
            vec![0]
        } else {
            (0..n.div_ceil(s)).map(|i| s.min(n - i * s)).collect()
        }
    } else {
        let v: Vec<i64> = sizes.extract().map_err(|_| {
            PyTypeError::new_err("split_size_or_sections must be an int or a list of ints")
        })?;
        if v.iter().any(|&s| s < 0) || v.iter().sum::<i64>() != n as i64 {
            return Err(crate::errors::ShapeError::new_err(format!(
                "split: sections {v:?} do not sum to the size {n} of dimension {a} (shape {:?})",
                x.shape
            )));
        }
        v.into_iter().map(|s| s as usize).collect()
    };
    let mut start = 0;
    let mut out = Vec::with_capacity(parts.len());
    for len in parts {
        let ranges: Vec<(usize, usize, usize)> = x
            .shape
            .iter()
            .enumerate()
            .map(|(i, &d)| if i == a { (start, len, 1) } else { (0, d, 1) })
            .collect();
        out.push(build::slice(x, &ranges).py()?);
        start += len;
    }
    Ok(out)
}

/// Splits into `chunks` nearly equal pieces (the last may be smaller).
pub fn chunk(py: Python<'_>, x: &NodeRef, chunks: i64, dim: i64) -> PyResult<Vec<NodeRef>> {
    if chunks <= 0 {
        return Err(PyValueError::new_err(format!(
            "chunks must be positive, got {chunks}"
        )));
    }
    let a = pyflame_core::normalize_axis(dim, x.shape.len()).py()?;
    let n = x.shape[a];
    let size = n.div_ceil(chunks as usize).max(1);
    split(x, &size.into_pyobject(py)?.into_any(), dim)
}

/// The repr: values formatted by NumPy, dtype shown when not the default for its kind.
pub fn repr(py: Python<'_>, node: &NodeRef) -> PyResult<String> {
    evaluate(py, std::slice::from_ref(node))?;
    let v = node
        .value()
        .ok_or_else(|| PyValueError::new_err("tensor has no value"))?;
    let arr = value_to_numpy(py, &v)?;
    let np = py.import("numpy")?;
    let kwargs = pyo3::types::PyDict::new(py);
    kwargs.set_item("separator", ", ")?;
    kwargs.set_item("prefix", "tensor(")?;
    let body: String = np
        .getattr("array2string")?
        .call((arr,), Some(&kwargs))?
        .extract()?;
    let suffix = match node.dtype {
        DType::Float32 | DType::Int64 | DType::Bool => String::new(),
        d => format!(", dtype=pyflame.{}", d.name()),
    };
    let lazy = "";
    Ok(format!("tensor({body}{suffix}){lazy}"))
}

/// GELU with PyTorch's `approximate` argument.
pub fn gelu(x: &NodeRef, approximate: &str) -> PyResult<NodeRef> {
    let op = match approximate {
        "none" => UnaryOp::Gelu,
        "tanh" => UnaryOp::GeluTanh,
        other => {
            return Err(PyValueError::new_err(format!(
                "gelu: approximate must be 'none' or 'tanh', got '{other}'"
            )))
        }
    };
    build::unary(op, x).py()
}
