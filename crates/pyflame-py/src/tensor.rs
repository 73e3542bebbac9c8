//! The Python `Tensor` class: a handle to a lazy IR node.

use crate::convert::{parse_dims, parse_int_list, value_to_numpy};
use crate::dtype::{parse_dtype, PyDType, PyMeshLayout};
use crate::errors::IntoPy;
use crate::indexing;
use pyflame_core::DType;
use pyflame_ir::{build, BinaryOp, NodeRef, ReduceOp, UnaryOp};
use pyo3::basic::CompareOp;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::sync::Arc;

/// A lazily evaluated n-dimensional array.
///
/// Operations build graph nodes; `eval()`, `numpy()`, `item()` and friends compute them.
#[pyclass(name = "Tensor", module = "pyflame", subclass, weakref)]
pub struct PyTensor {
    /// The node this tensor refers to.
    pub node: NodeRef,
}

impl PyTensor {
    /// Wraps a node.
    pub fn new(node: NodeRef) -> Self {
        PyTensor { node }
    }

    /// Points this tensor at `node`, keeping its gradient and `requires_grad` flag (used by
    /// `__setitem__`, `data = ...` and `copy_`).
    fn rebind(&mut self, node: NodeRef) {
        if !Arc::ptr_eq(&node, &self.node) {
            node.set_requires_grad(self.node.requires_grad());
            node.set_grad(self.node.grad());
            self.node = node;
        }
    }
}

pub use crate::ops::*;

#[pymethods]
impl PyTensor {
    /// Builds a tensor from data (same as `pyflame.tensor`).
    #[new]
    #[pyo3(signature = (data, dtype=None))]
    fn py_new(
        py: Python<'_>,
        data: &Bound<'_, PyAny>,
        dtype: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let t = py
            .import("pyflame")?
            .getattr("tensor")?
            .call1((data, dtype))?;
        let node = t.cast::<PyTensor>()?.borrow().node.clone();
        Ok(PyTensor::new(node))
    }

    /// Dimensions as a list of ints.
    #[getter]
    fn shape(&self) -> Vec<usize> {
        self.node.shape.clone()
    }
    /// Element type.
    #[getter]
    fn dtype(&self) -> PyDType {
        PyDType {
            inner: self.node.dtype,
        }
    }
    /// Number of dimensions.
    #[getter]
    fn ndim(&self) -> usize {
        self.node.shape.len()
    }
    /// Total number of elements.
    #[getter]
    fn numel(&self) -> usize {
        self.node.numel()
    }
    /// Distribution over PEs.
    #[getter]
    fn layout(&self) -> PyMeshLayout {
        PyMeshLayout {
            inner: self.node.layout,
        }
    }
    /// Whether gradients are tracked.
    #[getter]
    fn get_requires_grad(&self) -> bool {
        self.node.requires_grad()
    }
    #[setter]
    fn set_requires_grad(&mut self, value: bool) -> PyResult<()> {
        if value && !self.node.dtype.is_float() {
            return Err(PyTypeError::new_err(format!(
                "only floating point tensors can require gradients (this tensor is {})",
                self.node.dtype
            )));
        }
        self.node.set_requires_grad(value);
        Ok(())
    }
    /// Sets `requires_grad` in place and returns the tensor.
    #[pyo3(signature = (requires_grad=true))]
    fn requires_grad_(slf: Bound<'_, Self>, requires_grad: bool) -> PyResult<Bound<'_, Self>> {
        slf.borrow_mut().set_requires_grad(requires_grad)?;
        Ok(slf)
    }
    /// The accumulated gradient, or None.
    #[getter]
    fn get_grad(&self) -> Option<PyTensor> {
        self.node.grad().map(PyTensor::new)
    }
    #[setter]
    fn set_grad(&mut self, grad: Option<PyRef<'_, PyTensor>>) -> PyResult<()> {
        if let Some(g) = &grad {
            if g.node.shape != self.node.shape {
                return Err(crate::errors::ShapeError::new_err(format!(
                    "assigned grad has shape {:?} but the tensor has shape {:?}",
                    g.node.shape, self.node.shape
                )));
            }
        }
        self.node.set_grad(grad.map(|g| g.node.clone()));
        Ok(())
    }
    /// A tensor sharing this one's value but cut from the graph (no gradient history).
    fn detach(&self) -> Self {
        PyTensor::new(build::detach(&self.node))
    }
    /// The tensor's value without gradient history; assigning replaces the value in place.
    #[getter]
    fn get_data(&self) -> Self {
        self.detach()
    }
    #[setter]
    fn set_data(&mut self, value: PyRef<'_, PyTensor>) {
        let node = value.node.clone();
        drop(value);
        self.rebind(build::detach(&node));
    }
    /// Copies `src` (broadcast and cast to this tensor's shape and dtype) into this tensor and
    /// returns the tensor, like PyTorch.
    fn copy_<'py>(slf: Bound<'py, Self>, src: &Bound<'py, PyAny>) -> PyResult<Bound<'py, Self>> {
        let like = slf.borrow().node.clone();
        let s = require_operand(src, Some(&like), "copy_")?;
        let s = build::broadcast_to(&build::cast(&s, like.dtype), &like.shape).py()?;
        slf.borrow_mut().rebind(build::detach(&s));
        Ok(slf)
    }
    /// Accumulates the gradient of this tensor into the `grad` of every leaf it depends on.
    #[pyo3(signature = (gradient=None, retain_graph=false))]
    fn backward(
        &self,
        py: Python<'_>,
        gradient: Option<&Bound<'_, PyAny>>,
        retain_graph: bool,
    ) -> PyResult<()> {
        let g = match gradient.filter(|g| !g.is_none()) {
            Some(g) => Some(require_operand(g, Some(&self.node), "backward")?),
            None => None,
        };
        let root = self.node.clone();
        py.detach(|| pyflame_autograd::backward(&root, g, retain_graph))
            .py()
    }
    /// True for tensors not produced by a differentiable op.
    #[getter]
    fn is_leaf(&self) -> bool {
        !self.node.requires_grad() || !self.node.inputs().iter().any(|i| i.requires_grad())
    }
    /// The device tensors are computed on.
    #[getter]
    fn device(&self) -> &'static str {
        "cpu"
    }
    /// 2-D transpose (reversed axes for other ranks).
    #[getter(T)]
    fn t_prop(&self) -> PyResult<Self> {
        let nd = self.node.shape.len() as i64;
        let perm: Vec<i64> = (0..nd).rev().collect();
        Ok(PyTensor::new(build::permute(&self.node, &perm).py()?))
    }
    /// Size of one dimension, or the whole shape.
    #[pyo3(signature = (dim=None))]
    fn size(&self, py: Python<'_>, dim: Option<i64>) -> PyResult<Py<PyAny>> {
        match dim {
            None => Ok(PyTuple::new(py, &self.node.shape)?.into_any().unbind()),
            Some(d) => {
                let a = pyflame_core::normalize_axis(d, self.node.shape.len()).py()?;
                Ok(self.node.shape[a].into_pyobject(py)?.into_any().unbind())
            }
        }
    }
    /// Number of dimensions.
    fn dim(&self) -> usize {
        self.node.shape.len()
    }

    /// Computes the tensor's value now; returns the tensor.
    fn eval(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        let node = slf.borrow().node.clone();
        evaluate(slf.py(), &[node])?;
        Ok(slf)
    }
    /// True once the value has been computed.
    fn is_evaluated(&self) -> bool {
        self.node.is_realized()
    }
    /// A NumPy copy of the values (evaluates first).
    fn numpy<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        evaluate(py, std::slice::from_ref(&self.node))?;
        let v = self
            .node
            .value()
            .ok_or_else(|| PyValueError::new_err("tensor has no value"))?;
        value_to_numpy(py, &v)
    }
    #[pyo3(signature = (dtype=None, copy=None))]
    fn __array__<'py>(
        &self,
        py: Python<'py>,
        dtype: Option<&Bound<'py, PyAny>>,
        copy: Option<bool>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let _ = copy;
        let a = self.numpy(py)?;
        match dtype {
            Some(d) if !d.is_none() => a.call_method1("astype", (d,)),
            _ => Ok(a),
        }
    }
    /// The single value as a Python number.
    fn item(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if self.node.numel() != 1 {
            return Err(PyValueError::new_err(format!(
                "item() needs a tensor with exactly one element, this one has shape {:?} ({} elements)",
                self.node.shape,
                self.node.numel()
            )));
        }
        Ok(self.numpy(py)?.call_method0("item")?.unbind())
    }
    /// Nested Python lists.
    fn tolist(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        Ok(self.numpy(py)?.call_method0("tolist")?.unbind())
    }
    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        repr(py, &self.node)
    }
    fn __len__(&self) -> PyResult<usize> {
        self.node
            .shape
            .first()
            .copied()
            .ok_or_else(|| PyTypeError::new_err("len() of a 0-d tensor"))
    }
    fn __bool__(&self, py: Python<'_>) -> PyResult<bool> {
        if self.node.numel() != 1 {
            return Err(PyValueError::new_err(format!(
                "the truth value of a tensor with {} elements is ambiguous; use .any() or .all()",
                self.node.numel()
            )));
        }
        self.item(py)?.bind(py).is_truthy()
    }
    fn __float__(&self, py: Python<'_>) -> PyResult<f64> {
        self.item(py)?.bind(py).extract::<f64>()
    }
    fn __int__(&self, py: Python<'_>) -> PyResult<i64> {
        self.item(py)?
            .bind(py)
            .call_method0("__int__")?
            .extract::<i64>()
    }
    fn __index__(&self, py: Python<'_>) -> PyResult<i64> {
        if !self.node.dtype.is_int() {
            return Err(PyTypeError::new_err(
                "only integer tensors of a single element can be used as an index",
            ));
        }
        self.__int__(py)
    }
    fn __hash__(slf: &Bound<'_, Self>) -> isize {
        slf.as_ptr() as isize
    }
    fn __iter__(slf: &Bound<'_, Self>) -> PyResult<Py<PyAny>> {
        let py = slf.py();
        let n = slf.borrow().__len__()?;
        let items: Vec<Py<PyAny>> = (0..n)
            .map(|i| slf.get_item(i).map(|x| x.unbind()))
            .collect::<PyResult<_>>()?;
        Ok(PyList::new(py, items)?.try_iter()?.into_any().unbind())
    }

    // ---- arithmetic ----
    fn __add__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Add, &self.node, o, false)
    }
    fn __radd__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Add, &self.node, o, true)
    }
    fn __sub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Sub, &self.node, o, false)
    }
    fn __rsub__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Sub, &self.node, o, true)
    }
    fn __mul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Mul, &self.node, o, false)
    }
    fn __rmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Mul, &self.node, o, true)
    }
    fn __truediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Div, &self.node, o, false)
    }
    fn __rtruediv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Div, &self.node, o, true)
    }
    fn __floordiv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::FloorDiv, &self.node, o, false)
    }
    fn __rfloordiv__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::FloorDiv, &self.node, o, true)
    }
    fn __mod__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Rem, &self.node, o, false)
    }
    fn __rmod__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Rem, &self.node, o, true)
    }
    fn __pow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = modulo;
        binop(py, BinaryOp::Pow, &self.node, o, false)
    }
    fn __rpow__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        modulo: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let _ = modulo;
        binop(py, BinaryOp::Pow, &self.node, o, true)
    }
    fn __and__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::And, &self.node, o, false)
    }
    fn __rand__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::And, &self.node, o, true)
    }
    fn __or__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Or, &self.node, o, false)
    }
    fn __ror__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Or, &self.node, o, true)
    }
    fn __xor__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Xor, &self.node, o, false)
    }
    fn __rxor__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Xor, &self.node, o, true)
    }
    fn __matmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match operand(o, None)? {
            Some(b) => wrap(py, build::matmul(&self.node, &b).py()?),
            None => Ok(py.NotImplemented()),
        }
    }
    fn __rmatmul__(&self, py: Python<'_>, o: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        match operand(o, None)? {
            Some(a) => wrap(py, build::matmul(&a, &self.node).py()?),
            None => Ok(py.NotImplemented()),
        }
    }
    fn __neg__(&self) -> PyResult<Self> {
        Ok(PyTensor::new(build::unary(UnaryOp::Neg, &self.node).py()?))
    }
    fn __pos__(&self) -> Self {
        PyTensor::new(self.node.clone())
    }
    fn __abs__(&self) -> PyResult<Self> {
        Ok(PyTensor::new(build::unary(UnaryOp::Abs, &self.node).py()?))
    }
    fn __invert__(&self) -> PyResult<Self> {
        if self.node.dtype != DType::Bool {
            return Err(PyTypeError::new_err(format!(
                "~ is only supported for bool tensors, got {}",
                self.node.dtype
            )));
        }
        Ok(PyTensor::new(
            build::unary(UnaryOp::LogicalNot, &self.node).py()?,
        ))
    }
    fn __richcmp__(
        &self,
        py: Python<'_>,
        o: &Bound<'_, PyAny>,
        op: CompareOp,
    ) -> PyResult<Py<PyAny>> {
        let bop = match op {
            CompareOp::Eq => BinaryOp::Eq,
            CompareOp::Ne => BinaryOp::Ne,
            CompareOp::Lt => BinaryOp::Lt,
            CompareOp::Le => BinaryOp::Le,
            CompareOp::Gt => BinaryOp::Gt,
            CompareOp::Ge => BinaryOp::Ge,
        };
        binop(py, bop, &self.node, o, false)
    }

    // ---- indexing ----
    fn __getitem__(&self, py: Python<'_>, key: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyTensor::new(indexing::getitem(py, &self.node, key)?))
    }
    fn __setitem__(
        &mut self,
        py: Python<'_>,
        key: &Bound<'_, PyAny>,
        value: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let node = indexing::setitem(py, &self.node, key, value)?;
        self.rebind(node);
        Ok(())
    }

    // ---- reductions ----
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn sum(&self, dim: Option<&Bound<'_, PyAny>>, keepdim: bool) -> PyResult<Self> {
        Ok(PyTensor::new(reduction(
            &self.node,
            ReduceOp::Sum,
            dim,
            keepdim,
        )?))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn mean(&self, dim: Option<&Bound<'_, PyAny>>, keepdim: bool) -> PyResult<Self> {
        Ok(PyTensor::new(reduction(
            &self.node,
            ReduceOp::Mean,
            dim,
            keepdim,
        )?))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn prod(&self, dim: Option<&Bound<'_, PyAny>>, keepdim: bool) -> PyResult<Self> {
        Ok(PyTensor::new(reduction(
            &self.node,
            ReduceOp::Prod,
            dim,
            keepdim,
        )?))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn max(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyAny>> {
        max_min(py, &self.node, true, dim, keepdim)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn min(
        &self,
        py: Python<'_>,
        dim: Option<&Bound<'_, PyAny>>,
        keepdim: bool,
    ) -> PyResult<Py<PyAny>> {
        max_min(py, &self.node, false, dim, keepdim)
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn amax(&self, dim: Option<&Bound<'_, PyAny>>, keepdim: bool) -> PyResult<Self> {
        Ok(PyTensor::new(reduction(
            &self.node,
            ReduceOp::Max,
            dim,
            keepdim,
        )?))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn amin(&self, dim: Option<&Bound<'_, PyAny>>, keepdim: bool) -> PyResult<Self> {
        Ok(PyTensor::new(reduction(
            &self.node,
            ReduceOp::Min,
            dim,
            keepdim,
        )?))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn argmax(&self, dim: Option<i64>, keepdim: bool) -> PyResult<Self> {
        Ok(PyTensor::new(
            build::arg_reduce(true, &self.node, dim, keepdim).py()?,
        ))
    }
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn argmin(&self, dim: Option<i64>, keepdim: bool) -> PyResult<Self> {
        Ok(PyTensor::new(
            build::arg_reduce(false, &self.node, dim, keepdim).py()?,
        ))
    }
    /// True where any element is non-zero (reduced like sum).
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn any(&self, dim: Option<&Bound<'_, PyAny>>, keepdim: bool) -> PyResult<Self> {
        let b = build::cast(&self.node, DType::Bool);
        Ok(PyTensor::new(build::cast(
            &reduction(&b, ReduceOp::Max, dim, keepdim)?,
            DType::Bool,
        )))
    }
    /// True where all elements are non-zero.
    #[pyo3(signature = (dim=None, keepdim=false))]
    fn all(&self, dim: Option<&Bound<'_, PyAny>>, keepdim: bool) -> PyResult<Self> {
        let b = build::cast(&self.node, DType::Bool);
        Ok(PyTensor::new(build::cast(
            &reduction(&b, ReduceOp::Min, dim, keepdim)?,
            DType::Bool,
        )))
    }

    // ---- shape ----
    #[pyo3(signature = (*shape))]
    fn reshape(&self, shape: &Bound<'_, PyTuple>) -> PyResult<Self> {
        Ok(PyTensor::new(
            build::reshape(&self.node, &parse_int_list(shape)?).py()?,
        ))
    }
    #[pyo3(signature = (*shape))]
    fn view(&self, shape: &Bound<'_, PyTuple>) -> PyResult<Self> {
        self.reshape(shape)
    }
    fn transpose(&self, dim0: i64, dim1: i64) -> PyResult<Self> {
        Ok(PyTensor::new(
            build::transpose(&self.node, dim0, dim1).py()?,
        ))
    }
    #[pyo3(signature = (*dims))]
    fn permute(&self, dims: &Bound<'_, PyTuple>) -> PyResult<Self> {
        Ok(PyTensor::new(
            build::permute(&self.node, &parse_int_list(dims)?).py()?,
        ))
    }
    #[pyo3(signature = (dim=None))]
    fn squeeze(&self, dim: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let dims = parse_dims(dim)?;
        Ok(PyTensor::new(
            build::squeeze(&self.node, dims.as_deref()).py()?,
        ))
    }
    fn unsqueeze(&self, dim: i64) -> PyResult<Self> {
        Ok(PyTensor::new(build::unsqueeze(&self.node, dim).py()?))
    }
    #[pyo3(signature = (start_dim=0, end_dim=-1))]
    fn flatten(&self, start_dim: i64, end_dim: i64) -> PyResult<Self> {
        Ok(PyTensor::new(
            build::flatten(&self.node, start_dim, end_dim).py()?,
        ))
    }
    #[pyo3(signature = (*sizes))]
    fn expand(&self, sizes: &Bound<'_, PyTuple>) -> PyResult<Self> {
        Ok(PyTensor::new(
            build::expand(&self.node, &parse_int_list(sizes)?).py()?,
        ))
    }
    fn expand_as(&self, other: &PyTensor) -> PyResult<Self> {
        Ok(PyTensor::new(
            build::broadcast_to(&self.node, &other.node.shape).py()?,
        ))
    }
    fn contiguous(&self) -> Self {
        PyTensor::new(build::contiguous(&self.node))
    }
    /// Converts to `dtype`.
    fn astype(&self, dtype: &Bound<'_, PyAny>) -> PyResult<Self> {
        Ok(PyTensor::new(build::cast(&self.node, parse_dtype(dtype)?)))
    }
    /// `to(dtype)`; device strings other than "cpu" are rejected.
    #[pyo3(signature = (*args, dtype=None))]
    fn to(&self, args: &Bound<'_, PyTuple>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let mut target = self.node.dtype;
        for a in args.iter() {
            if let Ok(s) = a.extract::<String>() {
                if DType::from_name(&s).is_none() {
                    if s == "cpu" {
                        continue;
                    }
                    return Err(PyValueError::new_err(format!("unsupported device '{s}'; PyFlame tensors live on the CPU (compile to CSL for the WSE)")));
                }
            }
            target = parse_dtype(&a)?;
        }
        if let Some(d) = dtype.filter(|d| !d.is_none()) {
            target = parse_dtype(d)?;
        }
        Ok(PyTensor::new(build::cast(&self.node, target)))
    }
    fn float(&self) -> Self {
        PyTensor::new(build::cast(&self.node, DType::Float32))
    }
    fn double(&self) -> Self {
        PyTensor::new(build::cast(&self.node, DType::Float64))
    }
    fn half(&self) -> Self {
        PyTensor::new(build::cast(&self.node, DType::Float16))
    }
    fn bfloat16(&self) -> Self {
        PyTensor::new(build::cast(&self.node, DType::BFloat16))
    }
    fn int(&self) -> Self {
        PyTensor::new(build::cast(&self.node, DType::Int32))
    }
    fn long(&self) -> Self {
        PyTensor::new(build::cast(&self.node, DType::Int64))
    }
    fn bool(&self) -> Self {
        PyTensor::new(build::cast(&self.node, DType::Bool))
    }

    // ---- elementwise ----
    fn relu(&self) -> PyResult<Self> {
        self.un(UnaryOp::Relu)
    }
    fn sigmoid(&self) -> PyResult<Self> {
        self.un(UnaryOp::Sigmoid)
    }
    fn tanh(&self) -> PyResult<Self> {
        self.un(UnaryOp::Tanh)
    }
    #[pyo3(signature = (approximate="none"))]
    fn gelu(&self, approximate: &str) -> PyResult<Self> {
        Ok(PyTensor::new(gelu(&self.node, approximate)?))
    }
    fn silu(&self) -> PyResult<Self> {
        self.un(UnaryOp::Silu)
    }
    fn exp(&self) -> PyResult<Self> {
        self.un(UnaryOp::Exp)
    }
    fn log(&self) -> PyResult<Self> {
        self.un(UnaryOp::Log)
    }
    fn sqrt(&self) -> PyResult<Self> {
        self.un(UnaryOp::Sqrt)
    }
    fn abs(&self) -> PyResult<Self> {
        self.un(UnaryOp::Abs)
    }
    fn sin(&self) -> PyResult<Self> {
        self.un(UnaryOp::Sin)
    }
    fn cos(&self) -> PyResult<Self> {
        self.un(UnaryOp::Cos)
    }
    fn neg(&self) -> PyResult<Self> {
        self.un(UnaryOp::Neg)
    }
    fn floor(&self) -> PyResult<Self> {
        self.un(UnaryOp::Floor)
    }
    fn ceil(&self) -> PyResult<Self> {
        self.un(UnaryOp::Ceil)
    }
    fn round(&self) -> PyResult<Self> {
        self.un(UnaryOp::Round)
    }
    fn sign(&self) -> PyResult<Self> {
        self.un(UnaryOp::Sign)
    }
    fn reciprocal(&self) -> PyResult<Self> {
        self.un(UnaryOp::Reciprocal)
    }
    fn erf(&self) -> PyResult<Self> {
        self.un(UnaryOp::Erf)
    }
    fn logical_not(&self) -> PyResult<Self> {
        self.un(UnaryOp::LogicalNot)
    }
    #[pyo3(signature = (dim=-1))]
    fn softmax(&self, dim: i64) -> PyResult<Self> {
        Ok(PyTensor::new(build::softmax(&self.node, dim, false).py()?))
    }
    #[pyo3(signature = (dim=-1))]
    fn log_softmax(&self, dim: i64) -> PyResult<Self> {
        Ok(PyTensor::new(build::softmax(&self.node, dim, true).py()?))
    }
    #[pyo3(signature = (min=None, max=None))]
    fn clamp(
        &self,
        min: Option<&Bound<'_, PyAny>>,
        max: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        Ok(PyTensor::new(clamp(&self.node, min, max)?))
    }
    fn pow(&self, py: Python<'_>, exponent: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        binop(py, BinaryOp::Pow, &self.node, exponent, false)
    }
    fn matmul(&self, py: Python<'_>, other: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        self.__matmul__(py, other)
    }
    #[pyo3(signature = (split_size_or_sections, dim=0))]
    fn split(&self, split_size_or_sections: &Bound<'_, PyAny>, dim: i64) -> PyResult<Vec<Self>> {
        Ok(split(&self.node, split_size_or_sections, dim)?
            .into_iter()
            .map(PyTensor::new)
            .collect())
    }
    #[pyo3(signature = (chunks, dim=0))]
    fn chunk(&self, py: Python<'_>, chunks: i64, dim: i64) -> PyResult<Vec<Self>> {
        Ok(chunk(py, &self.node, chunks, dim)?
            .into_iter()
            .map(PyTensor::new)
            .collect())
    }
}

impl PyTensor {
    fn un(&self, op: UnaryOp) -> PyResult<Self> {
        Ok(PyTensor::new(build::unary(op, &self.node).py()?))
    }
}
