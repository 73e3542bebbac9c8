//! Conversions between Python objects (NumPy arrays, scalars, shapes) and IR nodes.

use crate::errors::IntoPy;
use numpy::{
    Element as NpElement, PyArray1, PyArrayDyn, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyflame_core::{dtype::Category, DType, MeshLayout, Storage};
use pyflame_ir::{build, Node, NodeRef, Value};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyFloat, PyInt, PyList, PySequence, PyTuple};
use std::sync::Arc;

/// Keeps a NumPy array alive while a tensor borrows its memory.
struct ArrayOwner(#[allow(dead_code)] Py<PyAny>);

fn wrap_array<T: NpElement + pyflame_core::Element>(
    arr: &Bound<'_, PyAny>,
    frozen: bool,
) -> PyResult<Option<Value>> {
    let Ok(a) = arr.cast::<PyArrayDyn<T>>() else {
        return Ok(None);
    };
    let shape = a.shape().to_vec();
    let len: usize = shape.iter().product();
    let ptr = a.data() as *const u8;
    let aligned = (ptr as usize).is_multiple_of(std::mem::align_of::<T>());
    if a.is_c_contiguous() && aligned && len > 0 {
        // SAFETY: the array is C-contiguous and aligned with `len` elements of T, and the
        // owner keeps it alive for as long as the storage exists.
        let mut storage = unsafe {
            Storage::from_external(
                ptr,
                len,
                T::DTYPE,
                Box::new(ArrayOwner(arr.clone().unbind())),
            )
        }
        .py()?;
        if frozen {
            storage.freeze();
        }
        return Ok(Some(Value::contiguous(Arc::new(storage), shape)));
    }
    let owned = a.to_owned_array();
    let data: Vec<T> = owned.iter().copied().collect();
    let storage = Storage::from_slice(&data).py()?;
    Ok(Some(Value::contiguous(Arc::new(storage), shape)))
}

/// Wraps a NumPy array as a realized value, sharing memory when the layout allows.
pub fn value_from_numpy(arr: &Bound<'_, PyAny>) -> PyResult<Value> {
    wrap_numpy(arr, false)
}

/// Wraps a NumPy array the caller will never modify again: the array is made read-only
/// and the tensor's storage is marked immutable, so kernels may keep layouts derived from
/// it (packed convolution weights) across calls.
pub fn constant_value_from_numpy(arr: &Bound<'_, PyAny>) -> PyResult<Value> {
    if arr.cast::<PyUntypedArray>().is_ok() {
        arr.getattr("flags")?.setattr("writeable", false)?;
    }
    wrap_numpy(arr, true)
}

fn wrap_numpy(arr: &Bound<'_, PyAny>, frozen: bool) -> PyResult<Value> {
    if arr.cast::<PyUntypedArray>().is_err() {
        return Err(PyTypeError::new_err(format!(
            "expected a numpy.ndarray, got {}",
            arr.get_type().name()?
        )));
    }
    macro_rules! try_types {
        ($($t:ty),*) => {
            $( if let Some(v) = wrap_array::<$t>(arr, frozen)? { return Ok(v); } )*
        };
    }
    try_types!(f32, f64, half::f16, i64, i32, i16, i8, u8, bool);
    let dt = arr.getattr("dtype")?.str()?.to_string();
    Err(PyTypeError::new_err(format!(
        "numpy arrays of dtype {dt} are not supported; use float16/32/64, int8/16/32/64, uint8 or bool"
    )))
}

/// A realized input node from a NumPy array.
pub fn node_from_numpy(arr: &Bound<'_, PyAny>, layout: MeshLayout) -> PyResult<NodeRef> {
    Ok(Node::input(value_from_numpy(arr)?, layout))
}

/// Copies a realized value into a new NumPy array (bfloat16 becomes float32).
pub fn value_to_numpy<'py>(py: Python<'py>, v: &Value) -> PyResult<Bound<'py, PyAny>> {
    let dtype = if v.dtype() == DType::BFloat16 {
        DType::Float32
    } else {
        v.dtype()
    };
    let c = py
        .detach(|| pyflame_cpu::fused::materialize(v, dtype))
        .py()?;
    macro_rules! out {
        ($t:ty) => {{
            let s = &c.storage.as_slice::<$t>().py()?[c.offset..c.offset + c.numel()];
            PyArray1::<$t>::from_slice(py, s)
                .reshape(c.shape.clone())?
                .into_any()
        }};
    }
    Ok(match dtype {
        DType::Float32 | DType::BFloat16 => out!(f32),
        DType::Float64 => out!(f64),
        DType::Float16 => out!(half::f16),
        DType::Int64 => out!(i64),
        DType::Int32 => out!(i32),
        DType::Int16 => out!(i16),
        DType::Int8 => out!(i8),
        DType::UInt8 => out!(u8),
        DType::Bool => out!(bool),
    })
}

/// A Python scalar classified for type promotion.
pub enum Scalar {
    /// bool
    Bool(bool),
    /// int
    Int(i64),
    /// float
    Float(f64),
}

impl Scalar {
    /// Promotion category.
    pub fn category(&self) -> Category {
        match self {
            Scalar::Bool(_) => Category::Bool,
            Scalar::Int(_) => Category::Integer,
            Scalar::Float(_) => Category::Float,
        }
    }
    /// Value as f64.
    pub fn value(&self) -> f64 {
        match *self {
            Scalar::Bool(b) => b as u8 as f64,
            Scalar::Int(i) => i as f64,
            Scalar::Float(f) => f,
        }
    }
    /// Dtype of the scalar alone (bool, int64, float32).
    pub fn default_dtype(&self) -> DType {
        match self {
            Scalar::Bool(_) => DType::Bool,
            Scalar::Int(_) => DType::Int64,
            Scalar::Float(_) => DType::Float32,
        }
    }
}

/// Extracts a Python (or NumPy) scalar.
pub fn extract_scalar(obj: &Bound<'_, PyAny>) -> Option<Scalar> {
    if let Ok(b) = obj.cast::<PyBool>() {
        return Some(Scalar::Bool(b.is_true()));
    }
    if obj.is_instance_of::<PyInt>() {
        return obj.extract::<i64>().ok().map(Scalar::Int);
    }
    if obj.is_instance_of::<PyFloat>() {
        return obj.extract::<f64>().ok().map(Scalar::Float);
    }
    // NumPy scalars.
    let kind = obj
        .getattr("dtype")
        .and_then(|d| d.getattr("kind"))
        .and_then(|k| k.extract::<String>())
        .ok()?;
    if obj
        .getattr("ndim")
        .and_then(|n| n.extract::<usize>())
        .ok()?
        != 0
    {
        return None;
    }
    match kind.as_str() {
        "b" => obj.extract::<bool>().ok().map(Scalar::Bool),
        "i" | "u" => obj
            .call_method0("__int__")
            .ok()?
            .extract::<i64>()
            .ok()
            .map(Scalar::Int),
        "f" => obj
            .call_method0("__float__")
            .ok()?
            .extract::<f64>()
            .ok()
            .map(Scalar::Float),
        _ => None,
    }
}

/// A 0-d node holding a scalar, typed for an operation with a tensor of dtype `like`.
pub fn scalar_node(s: &Scalar, like: Option<DType>, layout: MeshLayout) -> NodeRef {
    let dtype = match like {
        Some(d) => d.promote_with_scalar(s.category()),
        None => s.default_dtype(),
    };
    build::full(vec![], s.value(), dtype, layout)
}

/// Parses a shape given as varargs (`zeros(2, 3)`) or one sequence (`zeros([2, 3])`).
pub fn parse_shape(args: &Bound<'_, PyTuple>) -> PyResult<Vec<usize>> {
    let items: Vec<Bound<'_, PyAny>> =
        if args.len() == 1 && !args.get_item(0)?.is_instance_of::<PyInt>() {
            let first = args.get_item(0)?;
            let seq = first
                .cast::<PySequence>()
                .map_err(|_| PyTypeError::new_err("shape must be a sequence of ints"))?;
            seq.try_iter()?.collect::<PyResult<_>>()?
        } else {
            args.iter().collect()
        };
    let dims: Vec<i64> = items.iter().map(|d| dim_arg(d)).collect::<PyResult<_>>()?;
    build::checked_shape(&dims).py()
}

/// Parses one dimension (an int, not a bool or float).
pub fn dim_arg(d: &Bound<'_, PyAny>) -> PyResult<i64> {
    if d.is_instance_of::<PyBool>() || d.is_instance_of::<PyFloat>() {
        return Err(PyTypeError::new_err(format!(
            "dimensions must be integers, got {}",
            d.repr()?
        )));
    }
    d.extract::<i64>().map_err(|_| {
        PyTypeError::new_err(format!(
            "dimensions must be integers, got {}",
            d.repr().map(|r| r.to_string()).unwrap_or_default()
        ))
    })
}

/// Parses a list of ints given as varargs or one sequence (for reshape/permute/expand).
pub fn parse_int_list(args: &Bound<'_, PyTuple>) -> PyResult<Vec<i64>> {
    if args.len() == 1 {
        let first = args.get_item(0)?;
        if first.is_instance_of::<PyList>() || first.is_instance_of::<PyTuple>() {
            return first.try_iter()?.map(|d| dim_arg(&d?)).collect();
        }
    }
    args.iter().map(|d| dim_arg(&d)).collect()
}

/// Parses `dim=None | int | sequence of ints`.
pub fn parse_dims(dim: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Vec<i64>>> {
    match dim {
        None => Ok(None),
        Some(d) if d.is_none() => Ok(None),
        Some(d) if d.is_instance_of::<PyInt>() => Ok(Some(vec![dim_arg(d)?])),
        Some(d) => {
            let v: Vec<i64> = d
                .try_iter()
                .map_err(|_| PyTypeError::new_err("dim must be an int or a sequence of ints"))?
                .map(|x| dim_arg(&x?))
                .collect::<PyResult<_>>()?;
            if v.is_empty() {
                return Err(PyValueError::new_err("dim must not be an empty sequence"));
            }
            Ok(Some(v))
        }
    }
}
