//! `Tensor.__getitem__` / `__setitem__`: ints, slices, `...`, `None`, one integer or boolean
//! tensor index (lists and NumPy arrays are converted to tensors).

use crate::convert::node_from_numpy;
use crate::errors::IntoPy;
use crate::tensor::{evaluate, require_operand, PyTensor};
use pyflame_core::{dispatch_dtype, DType, Element, Storage};
use pyflame_ir::{build, Node, NodeRef, Value};
use pyo3::exceptions::{PyIndexError, PyNotImplementedError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyEllipsis, PyInt, PyList, PySlice, PyTuple};
use std::sync::Arc;

enum Item {
    Int(i64),
    Slice(Option<i64>, Option<i64>, Option<i64>),
    NewAxis,
    Ellipsis,
    Tensor(NodeRef),
}

fn opt_i64(o: Bound<'_, PyAny>) -> PyResult<Option<i64>> {
    if o.is_none() {
        Ok(None)
    } else {
        Ok(Some(o.extract::<i64>().map_err(|_| {
            PyTypeError::new_err("slice indices must be integers or None")
        })?))
    }
}

fn parse_item(py: Python<'_>, obj: &Bound<'_, PyAny>) -> PyResult<Item> {
    if obj.is_none() {
        return Ok(Item::NewAxis);
    }
    if obj.is_instance_of::<PyEllipsis>() {
        return Ok(Item::Ellipsis);
    }
    if obj.is_instance_of::<PyBool>() {
        return Err(PyTypeError::new_err(
            "indexing with a Python bool is not supported; use a bool tensor",
        ));
    }
    if let Ok(s) = obj.cast::<PySlice>() {
        return Ok(Item::Slice(
            opt_i64(s.getattr("start")?)?,
            opt_i64(s.getattr("stop")?)?,
            opt_i64(s.getattr("step")?)?,
        ));
    }
    if obj.is_instance_of::<PyInt>() {
        return Ok(Item::Int(obj.extract()?));
    }
    if let Ok(t) = obj.cast::<PyTensor>() {
        let n = t.borrow().node.clone();
        if n.shape.is_empty() && n.dtype.is_int() {
            evaluate(py, std::slice::from_ref(&n))?;
            return Ok(Item::Int(t.call_method0("item")?.extract()?));
        }
        return Ok(Item::Tensor(n));
    }
    if obj.is_instance_of::<PyList>() || obj.hasattr("__array_interface__")? {
        let arr = py.import("numpy")?.call_method1("asarray", (obj,))?;
        let kind: String = arr.getattr("dtype")?.getattr("kind")?.extract()?;
        let arr = match kind.as_str() {
            "b" => arr,
            "i" | "u" => arr.call_method1("astype", ("int64",))?,
            _ if arr.getattr("size")?.extract::<usize>()? == 0 => {
                arr.call_method1("astype", ("int64",))?
            }
            _ => {
                return Err(PyIndexError::new_err(
                    "index arrays must hold integers or booleans",
                ))
            }
        };
        return Ok(Item::Tensor(node_from_numpy(&arr, Default::default())?));
    }
    if let Ok(i) = obj.call_method0("__index__") {
        return Ok(Item::Int(i.extract()?));
    }
    Err(PyIndexError::new_err(format!(
        "only integers, slices, ..., None and integer or boolean tensors are valid indices (got {})",
        obj.get_type().name()?
    )))
}

/// What each output axis of the basic-indexed tensor comes from.
enum Out {
    NewAxis,
    Dim(usize),
    Adv(usize, usize),
}

/// `x[key]`.
pub fn getitem(py: Python<'_>, x: &NodeRef, key: &Bound<'_, PyAny>) -> PyResult<NodeRef> {
    let raw: Vec<Bound<'_, PyAny>> = match key.cast::<PyTuple>() {
        Ok(t) => t.iter().collect(),
        Err(_) => vec![key.clone()],
    };
    let items = raw
        .iter()
        .map(|o| parse_item(py, o))
        .collect::<PyResult<Vec<_>>>()?;
    let ndim = x.shape.len();
    let consumed: usize = items
        .iter()
        .map(|i| match i {
            Item::Int(_) | Item::Slice(..) => 1,
            Item::Tensor(t) if t.dtype == DType::Bool => t.shape.len(),
            Item::Tensor(_) => 1,
            _ => 0,
        })
        .sum();
    let ellipses = items.iter().filter(|i| matches!(i, Item::Ellipsis)).count();
    if ellipses > 1 {
        return Err(PyIndexError::new_err(
            "an index can only have a single ellipsis (...)",
        ));
    }
    if consumed > ndim {
        return Err(PyIndexError::new_err(format!(
            "too many indices for a tensor of dimension {ndim} (shape {:?})",
            x.shape
        )));
    }
    let mut ranges: Vec<(usize, usize, usize)> = x.shape.iter().map(|&d| (0, d, 1)).collect();
    let mut outs: Vec<Out> = Vec::new();
    let mut adv: Vec<(usize, NodeRef)> = Vec::new();
    let mut d = 0;
    let fill = ndim - consumed;
    for item in items
        .iter()
        .chain(std::iter::once(&Item::Ellipsis).filter(|_| ellipses == 0))
    {
        match item {
            Item::NewAxis => outs.push(Out::NewAxis),
            Item::Ellipsis => {
                for _ in 0..fill {
                    outs.push(Out::Dim(d));
                    d += 1;
                }
            }
            Item::Int(i) => {
                let size = x.shape[d] as i64;
                let j = if *i < 0 { i + size } else { *i };
                if j < 0 || j >= size {
                    return Err(PyIndexError::new_err(format!(
                        "index {i} is out of bounds for dimension {d} with size {size}"
                    )));
                }
                ranges[d] = (j as usize, 1, 1);
                d += 1;
            }
            Item::Slice(a, b, c) => {
                ranges[d] = build::resolve_slice((*a, *b, *c), x.shape[d]).py()?;
                outs.push(Out::Dim(d));
                d += 1;
            }
            Item::Tensor(t) => {
                let k = if t.dtype == DType::Bool {
                    t.shape.len()
                } else {
                    1
                };
                if t.dtype == DType::Bool && t.shape[..] != x.shape[d..d + k] {
                    return Err(PyIndexError::new_err(format!(
                        "the boolean mask of shape {:?} does not match the indexed dimensions {:?} of the tensor of shape {:?}",
                        t.shape,
                        &x.shape[d..d + k],
                        x.shape
                    )));
                }
                outs.push(Out::Adv(d, k));
                adv.push((outs.len() - 1, t.clone()));
                d += k;
            }
        }
    }
    if adv.len() > 1 {
        return Err(PyNotImplementedError::new_err(
            "indexing with more than one tensor index is not supported yet; index one dimension at a time",
        ));
    }
    let sliced = build::slice(x, &ranges).py()?;
    let shape: Vec<i64> = outs
        .iter()
        .map(|o| match *o {
            Out::NewAxis => 1,
            Out::Dim(d) => sliced.shape[d] as i64,
            Out::Adv(d, k) => sliced.shape[d..d + k].iter().product::<usize>() as i64,
        })
        .collect();
    let shaped = build::reshape(&sliced, &shape).py()?;
    match adv.pop() {
        None => Ok(shaped),
        Some((axis, t)) => {
            let index = if t.dtype == DType::Bool {
                mask_positions(py, &t)?
            } else {
                t
            };
            build::take(&shaped, &index, axis as i64).py()
        }
    }
}

/// Flat positions of the true elements of a boolean mask, as an int64 tensor.
fn mask_positions(py: Python<'_>, mask: &NodeRef) -> PyResult<NodeRef> {
    evaluate(py, std::slice::from_ref(mask))?;
    let v = mask
        .value()
        .ok_or_else(|| PyIndexError::new_err("mask has no value"))?;
    let m = pyflame_cpu::fused::materialize(&v, DType::Bool).py()?;
    let bits = &m.storage.as_slice::<bool>().py()?[m.offset..m.offset + m.numel()];
    let pos: Vec<i64> = bits
        .iter()
        .enumerate()
        .filter(|(_, &b)| b)
        .map(|(i, _)| i as i64)
        .collect();
    let n = pos.len();
    let s = Storage::from_slice(&pos).py()?;
    Ok(Node::input(
        Value::contiguous(Arc::new(s), vec![n]),
        mask.layout,
    ))
}

fn scatter<T: Element>(dst: &mut [T], offsets: &[i64], src: &[T]) -> pyflame_core::Result<()> {
    for (&o, &v) in offsets.iter().zip(src) {
        let slot = dst
            .get_mut(o as usize)
            .ok_or_else(|| pyflame_core::Error::Index("setitem offset out of range".into()))?;
        *slot = v;
    }
    Ok(())
}

/// `x[key] = value`: returns the node holding the updated values (a fresh buffer, so lazy
/// tensors built from the old value keep seeing it).
pub fn setitem(
    py: Python<'_>,
    x: &NodeRef,
    key: &Bound<'_, PyAny>,
    value: &Bound<'_, PyAny>,
) -> PyResult<NodeRef> {
    evaluate(py, std::slice::from_ref(x))?;
    let n = x.numel();
    let positions = build::arange(0.0, n as f64, 1.0, DType::Int64, x.layout).py()?;
    let positions = build::reshape(
        &positions,
        &x.shape.iter().map(|&d| d as i64).collect::<Vec<_>>(),
    )
    .py()?;
    let target = getitem(py, &positions, key)?;
    let val = require_operand(value, Some(x), "__setitem__")?;
    let val = build::broadcast_to(&build::cast(&val, x.dtype), &target.shape).map_err(|_| {
        crate::errors::ShapeError::new_err(format!(
            "cannot assign a value of shape {:?} to an indexed region of shape {:?}",
            val.shape, target.shape
        ))
    })?;
    evaluate(py, &[target.clone(), val.clone()])?;
    let (tv, vv, xv) = match (target.value(), val.value(), x.value()) {
        (Some(a), Some(b), Some(c)) => (a, b, c),
        _ => {
            return Err(PyIndexError::new_err(
                "internal: setitem operands were not evaluated",
            ))
        }
    };
    let offsets = pyflame_cpu::fused::materialize(&tv, DType::Int64).py()?;
    let vals = pyflame_cpu::fused::materialize(&vv, x.dtype).py()?;
    let base = pyflame_cpu::fused::materialize(&xv, x.dtype).py()?;
    let mut storage = if base.is_whole_storage() && Arc::ptr_eq(&base.storage, &xv.storage) {
        base.storage.deep_clone().py()?
    } else {
        Arc::try_unwrap(base.storage)
            .or_else(|s| s.deep_clone())
            .py()?
    };
    let off =
        &offsets.storage.as_slice::<i64>().py()?[offsets.offset..offsets.offset + offsets.numel()];
    dispatch_dtype!(x.dtype, T => {
        let src = &vals.storage.as_slice::<T>().py()?[vals.offset..vals.offset + vals.numel()];
        scatter(storage.as_mut_slice::<T>().py()?, off, src).py()?;
    });
    Ok(Node::input(
        Value::contiguous(Arc::new(storage), x.shape.clone()),
        x.layout,
    ))
}
