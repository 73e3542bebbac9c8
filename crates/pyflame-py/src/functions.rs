//! Module-level functions of `pyflame._core`: creation, math, reductions, combination,
//! graph inspection, evaluation and random seeding.

use crate::convert::{self, extract_scalar, parse_shape};
use crate::dtype::{parse_dtype, parse_opt_dtype, PyDType, PyMeshLayout};
use crate::errors::IntoPy;
use crate::graph::{PyGraph, PyNode};
use crate::tensor::{self, evaluate, require_operand, PyTensor};
use pyflame_core::{DType, MeshLayout};
use pyflame_ir::{build, BinaryOp, Graph, Node, NodeRef, RandDist, ReduceOp, UnaryOp};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyTuple, PyTupleMethods};

fn layout_of(l: Option<PyMeshLayout>) -> MeshLayout {
    l.map(|l| l.inner).unwrap_or_default()
}

fn t(node: NodeRef) -> PyTensor {
    PyTensor::new(node)
}

fn node_of(x: &Bound<'_, PyAny>) -> PyResult<NodeRef> {
    require_operand(x, None, "expected a tensor")
}

/// Tensor of zeros.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, layout=None))]
pub fn zeros(
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    let d = parse_opt_dtype(dtype)?.unwrap_or(DType::Float32);
    Ok(t(build::full(
        parse_shape(shape)?,
        0.0,
        d,
        layout_of(layout),
    )))
}

/// Tensor of ones.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, layout=None))]
pub fn ones(
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    let d = parse_opt_dtype(dtype)?.unwrap_or(DType::Float32);
    Ok(t(build::full(
        parse_shape(shape)?,
        1.0,
        d,
        layout_of(layout),
    )))
}

/// Tensor filled with `fill_value` (dtype inferred from the value when not given).
#[pyfunction]
#[pyo3(signature = (shape, fill_value, dtype=None, layout=None))]
pub fn full(
    shape: &Bound<'_, PyAny>,
    fill_value: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    let s = extract_scalar(fill_value)
        .ok_or_else(|| PyTypeError::new_err("full: fill_value must be a number"))?;
    let d = parse_opt_dtype(dtype)?.unwrap_or(s.default_dtype());
    let shape = parse_shape(&PyTuple::new(shape.py(), [shape])?)?;
    Ok(t(build::full(shape, s.value(), d, layout_of(layout))))
}

fn rand_impl(
    shape: &Bound<'_, PyTuple>,
    dist: RandDist,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    let d = parse_opt_dtype(dtype)?.unwrap_or(DType::Float32);
    Ok(t(build::random(
        parse_shape(shape)?,
        dist,
        d,
        layout_of(layout),
    )
    .py()?))
}

/// Standard normal random tensor.
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, layout=None))]
pub fn randn(
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    rand_impl(
        shape,
        RandDist::Normal {
            mean: 0.0,
            std: 1.0,
        },
        dtype,
        layout,
    )
}

/// Uniform random tensor in [0, 1).
#[pyfunction]
#[pyo3(signature = (*shape, dtype=None, layout=None))]
pub fn rand(
    shape: &Bound<'_, PyTuple>,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    rand_impl(
        shape,
        RandDist::Uniform {
            low: 0.0,
            high: 1.0,
        },
        dtype,
        layout,
    )
}

/// Random integers in [low, high): `randint(high, size)` or `randint(low, high, size)`.
#[pyfunction]
#[pyo3(signature = (*args, size=None, dtype=None, layout=None))]
pub fn randint(
    args: &Bound<'_, PyTuple>,
    size: Option<&Bound<'_, PyAny>>,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    let n = args.len();
    let (low, high, shape_obj) = match (n, size) {
        (2, None) => (0, args.get_item(0)?.extract::<i64>()?, args.get_item(1)?),
        (3, None) => (
            args.get_item(0)?.extract::<i64>()?,
            args.get_item(1)?.extract::<i64>()?,
            args.get_item(2)?,
        ),
        (1, Some(s)) => (0, args.get_item(0)?.extract::<i64>()?, s.clone()),
        (2, Some(s)) => (
            args.get_item(0)?.extract::<i64>()?,
            args.get_item(1)?.extract::<i64>()?,
            s.clone(),
        ),
        _ => {
            return Err(PyTypeError::new_err(
                "randint(low=0, high, size): expected (high, size) or (low, high, size)",
            ))
        }
    };
    let shape = parse_shape(&PyTuple::new(args.py(), [shape_obj])?)?;
    let d = parse_opt_dtype(dtype)?.unwrap_or(DType::Int64);
    Ok(t(build::random(
        shape,
        RandDist::Int { low, high },
        d,
        layout_of(layout),
    )
    .py()?))
}

/// `start, start + step, ...` below `end` (float32 unless `dtype` is given).
#[pyfunction]
#[pyo3(signature = (start, end=None, step=1.0, dtype=None, layout=None))]
pub fn arange(
    start: f64,
    end: Option<f64>,
    step: f64,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    let (s, e) = match end {
        Some(e) => (start, e),
        None => (0.0, start),
    };
    let d = parse_opt_dtype(dtype)?.unwrap_or(DType::Float32);
    Ok(t(build::arange(s, e, step, d, layout_of(layout)).py()?))
}

/// `steps` evenly spaced values from `start` to `end` inclusive.
#[pyfunction]
#[pyo3(signature = (start, end, steps, dtype=None, layout=None))]
pub fn linspace(
    start: f64,
    end: f64,
    steps: i64,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    if steps < 0 {
        return Err(PyValueError::new_err(format!(
            "linspace: steps must be non-negative, got {steps}"
        )));
    }
    let d = parse_opt_dtype(dtype)?.unwrap_or(DType::Float32);
    Ok(t(build::linspace(
        start,
        end,
        steps as usize,
        d,
        layout_of(layout),
    )))
}

/// Identity matrix of `n` rows and `m` (default `n`) columns.
#[pyfunction]
#[pyo3(signature = (n, m=None, dtype=None, layout=None))]
pub fn eye(
    n: i64,
    m: Option<i64>,
    dtype: Option<&Bound<'_, PyAny>>,
    layout: Option<PyMeshLayout>,
) -> PyResult<PyTensor> {
    let m = m.unwrap_or(n);
    if n < 0 || m < 0 {
        return Err(PyValueError::new_err(format!(
            "eye: sizes must be non-negative, got n={n}, m={m}"
        )));
    }
    let d = parse_opt_dtype(dtype)?.unwrap_or(DType::Float32);
    Ok(t(build::eye(n as usize, m as usize, d, layout_of(layout))))
}

fn like(
    x: &PyTensor,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<(Vec<usize>, DType, MeshLayout)> {
    Ok((
        x.node.shape.clone(),
        parse_opt_dtype(dtype)?.unwrap_or(x.node.dtype),
        x.node.layout,
    ))
}

/// Zeros shaped like `x`.
#[pyfunction]
#[pyo3(signature = (x, dtype=None))]
pub fn zeros_like(x: PyRef<'_, PyTensor>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
    let (s, d, l) = like(&x, dtype)?;
    Ok(t(build::full(s, 0.0, d, l)))
}

/// Ones shaped like `x`.
#[pyfunction]
#[pyo3(signature = (x, dtype=None))]
pub fn ones_like(x: PyRef<'_, PyTensor>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
    let (s, d, l) = like(&x, dtype)?;
    Ok(t(build::full(s, 1.0, d, l)))
}

/// `fill_value` shaped like `x`.
#[pyfunction]
#[pyo3(signature = (x, fill_value, dtype=None))]
pub fn full_like(
    x: PyRef<'_, PyTensor>,
    fill_value: f64,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let (s, d, l) = like(&x, dtype)?;
    Ok(t(build::full(s, fill_value, d, l)))
}

/// Uniform random values shaped like `x`.
#[pyfunction]
#[pyo3(signature = (x, dtype=None))]
pub fn rand_like(x: PyRef<'_, PyTensor>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
    let (s, d, l) = like(&x, dtype)?;
    Ok(t(build::random(
        s,
        RandDist::Uniform {
            low: 0.0,
            high: 1.0,
        },
        d,
        l,
    )
    .py()?))
}

/// Normal random values shaped like `x`.
#[pyfunction]
#[pyo3(signature = (x, dtype=None))]
pub fn randn_like(x: PyRef<'_, PyTensor>, dtype: Option<&Bound<'_, PyAny>>) -> PyResult<PyTensor> {
    let (s, d, l) = like(&x, dtype)?;
    Ok(t(build::random(
        s,
        RandDist::Normal {
            mean: 0.0,
            std: 1.0,
        },
        d,
        l,
    )
    .py()?))
}

/// Wraps a NumPy array (sharing memory when it is C-contiguous and aligned).
#[pyfunction]
#[pyo3(signature = (arr, layout=None))]
pub fn from_numpy(arr: &Bound<'_, PyAny>, layout: Option<PyMeshLayout>) -> PyResult<PyTensor> {
    Ok(t(convert::node_from_numpy(arr, layout_of(layout))?))
}

/// Wraps a NumPy array that will never change again (it is made read-only): the runtime's
/// weights. Kernels may cache layouts derived from such tensors across calls.
#[pyfunction]
pub fn constant_from_numpy(arr: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    Ok(t(Node::input(
        convert::constant_value_from_numpy(arr)?,
        MeshLayout::default(),
    )))
}

/// Applies an elementwise unary op by name.
fn un(x: &Bound<'_, PyAny>, op: UnaryOp) -> PyResult<PyTensor> {
    Ok(t(build::unary(op, &node_of(x)?).py()?))
}

macro_rules! unary_fns {
    ($($name:ident => $op:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            #[pyfunction]
            pub fn $name(x: &Bound<'_, PyAny>) -> PyResult<PyTensor> { un(x, UnaryOp::$op) }
        )*
        /// Registers the unary functions.
        pub fn register_unary(m: &Bound<'_, PyModule>) -> PyResult<()> {
            $( m.add_function(wrap_pyfunction!($name, m)?)?; )*
            Ok(())
        }
    };
}

unary_fns! {
    relu => Relu, "max(x, 0)";
    sigmoid => Sigmoid, "1 / (1 + exp(-x))";
    tanh => Tanh, "Hyperbolic tangent.";
    silu => Silu, "x * sigmoid(x)";
    abs => Abs, "Absolute value.";
    sqrt => Sqrt, "Square root.";
    exp => Exp, "Exponential.";
    log => Log, "Natural logarithm.";
    sin => Sin, "Sine.";
    cos => Cos, "Cosine.";
    neg => Neg, "Negation.";
    floor => Floor, "Round toward -inf.";
    ceil => Ceil, "Round toward +inf.";
    round => Round, "Round half to even.";
    sign => Sign, "Sign (-1, 0, 1).";
    reciprocal => Reciprocal, "1 / x";
    erf => Erf, "Error function.";
    logical_not => LogicalNot, "Logical not (bool result).";
}

/// GELU (exact erf form, or `approximate="tanh"`).
#[pyfunction]
#[pyo3(signature = (x, approximate="none"))]
pub fn gelu(x: &Bound<'_, PyAny>, approximate: &str) -> PyResult<PyTensor> {
    Ok(t(tensor::gelu(&node_of(x)?, approximate)?))
}

/// Softmax along `dim`.
#[pyfunction]
#[pyo3(signature = (x, dim=-1))]
pub fn softmax(x: &Bound<'_, PyAny>, dim: i64) -> PyResult<PyTensor> {
    Ok(t(build::softmax(&node_of(x)?, dim, false).py()?))
}

/// Log-softmax along `dim`.
#[pyfunction]
#[pyo3(signature = (x, dim=-1))]
pub fn log_softmax(x: &Bound<'_, PyAny>, dim: i64) -> PyResult<PyTensor> {
    Ok(t(build::softmax(&node_of(x)?, dim, true).py()?))
}

fn two(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, what: &str) -> PyResult<(NodeRef, NodeRef)> {
    let an = crate::tensor::operand(a, None)?;
    match an {
        Some(x) if a.is_instance_of::<PyTensor>() => {
            Ok((x.clone(), require_operand(b, Some(&x), what)?))
        }
        _ => {
            let y = require_operand(b, None, what)?;
            Ok((require_operand(a, Some(&y), what)?, y))
        }
    }
}

macro_rules! binary_fns {
    ($($name:ident => $op:ident, $doc:literal;)*) => {
        $(
            #[doc = $doc]
            #[pyfunction]
            pub fn $name(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
                let (x, y) = two(a, b, stringify!($name))?;
                Ok(t(build::binary(BinaryOp::$op, &x, &y).py()?))
            }
        )*
        /// Registers the binary functions.
        pub fn register_binary(m: &Bound<'_, PyModule>) -> PyResult<()> {
            $( m.add_function(wrap_pyfunction!($name, m)?)?; )*
            Ok(())
        }
    };
}

binary_fns! {
    add => Add, "a + b";
    sub => Sub, "a - b";
    mul => Mul, "a * b";
    div => Div, "a / b (true division)";
    floor_divide => FloorDiv, "a // b";
    remainder => Rem, "a % b (sign of b)";
    pow => Pow, "a ** b";
    maximum => Maximum, "Elementwise maximum (NaN propagates).";
    minimum => Minimum, "Elementwise minimum (NaN propagates).";
    eq => Eq, "a == b";
    ne => Ne, "a != b";
    lt => Lt, "a < b";
    le => Le, "a <= b";
    gt => Gt, "a > b";
    ge => Ge, "a >= b";
    bitwise_and => And, "a & b";
    bitwise_or => Or, "a | b";
    bitwise_xor => Xor, "a ^ b";
}

fn logical(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>, op: BinaryOp) -> PyResult<PyTensor> {
    let (x, y) = two(a, b, op.name())?;
    Ok(t(build::binary(
        op,
        &build::cast(&x, DType::Bool),
        &build::cast(&y, DType::Bool),
    )
    .py()?))
}

/// Logical and (inputs treated as bool).
#[pyfunction]
pub fn logical_and(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    logical(a, b, BinaryOp::And)
}
/// Logical or (inputs treated as bool).
#[pyfunction]
pub fn logical_or(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    logical(a, b, BinaryOp::Or)
}
/// Logical xor (inputs treated as bool).
#[pyfunction]
pub fn logical_xor(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    logical(a, b, BinaryOp::Xor)
}

/// Matrix product (NumPy semantics for 1-D operands, broadcast batch dimensions).
#[pyfunction]
pub fn matmul(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyTensor> {
    Ok(t(build::matmul(&node_of(a)?, &node_of(b)?).py()?))
}

/// `where(cond, a, b)`.
#[pyfunction]
#[pyo3(name = "where")]
pub fn where_(
    cond: &Bound<'_, PyAny>,
    a: &Bound<'_, PyAny>,
    b: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    let c = node_of(cond)?;
    let (x, y) = two(a, b, "where")?;
    Ok(t(build::where_(&c, &x, &y).py()?))
}

/// Clamps to `[min, max]`.
#[pyfunction]
#[pyo3(signature = (x, min=None, max=None))]
pub fn clamp(
    x: &Bound<'_, PyAny>,
    min: Option<&Bound<'_, PyAny>>,
    max: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    Ok(t(tensor::clamp(&node_of(x)?, min, max)?))
}

fn node_list(xs: &Bound<'_, PyAny>) -> PyResult<Vec<NodeRef>> {
    xs.try_iter()
        .map_err(|_| PyTypeError::new_err("expected a sequence of tensors"))?
        .enumerate()
        .map(|(i, x)| {
            let x = x?;
            x.cast::<PyTensor>()
                .map(|t| t.borrow().node.clone())
                .map_err(|_| {
                    PyTypeError::new_err(format!(
                        "expected a sequence of tensors, but element {i} is {}",
                        x.get_type()
                            .name()
                            .map(|n| n.to_string())
                            .unwrap_or_default()
                    ))
                })
        })
        .collect()
}

/// Concatenates along `dim`.
#[pyfunction]
#[pyo3(signature = (tensors, dim=0))]
pub fn cat(tensors: &Bound<'_, PyAny>, dim: i64) -> PyResult<PyTensor> {
    Ok(t(build::cat(&node_list(tensors)?, dim).py()?))
}

/// Stacks along a new `dim`.
#[pyfunction]
#[pyo3(signature = (tensors, dim=0))]
pub fn stack(tensors: &Bound<'_, PyAny>, dim: i64) -> PyResult<PyTensor> {
    Ok(t(build::stack(&node_list(tensors)?, dim).py()?))
}

/// Splits along `dim` into pieces of a size or of the given sizes.
#[pyfunction]
#[pyo3(signature = (x, split_size_or_sections, dim=0))]
pub fn split(
    x: &Bound<'_, PyAny>,
    split_size_or_sections: &Bound<'_, PyAny>,
    dim: i64,
) -> PyResult<Vec<PyTensor>> {
    Ok(tensor::split(&node_of(x)?, split_size_or_sections, dim)?
        .into_iter()
        .map(t)
        .collect())
}

/// Splits into `chunks` pieces along `dim`.
#[pyfunction]
#[pyo3(signature = (x, chunks, dim=0))]
pub fn chunk(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    chunks: i64,
    dim: i64,
) -> PyResult<Vec<PyTensor>> {
    Ok(tensor::chunk(py, &node_of(x)?, chunks, dim)?
        .into_iter()
        .map(t)
        .collect())
}

macro_rules! reduce_fns {
    ($($name:ident => $op:ident;)*) => {
        $(
            #[doc = concat!("`", stringify!($name), "` over `dim` (all dimensions when None).")]
            #[pyfunction]
            #[pyo3(signature = (x, dim=None, keepdim=false))]
            pub fn $name(x: &Bound<'_, PyAny>, dim: Option<&Bound<'_, PyAny>>, keepdim: bool) -> PyResult<PyTensor> {
                Ok(t(tensor::reduction(&node_of(x)?, ReduceOp::$op, dim, keepdim)?))
            }
        )*
    };
}

reduce_fns! {
    sum => Sum;
    mean => Mean;
    prod => Prod;
    amax => Max;
    amin => Min;
}

/// Maximum: `max(x)` (0-d), `max(x, dim)` (values, indices) or `max(a, b)` (elementwise).
#[pyfunction]
#[pyo3(signature = (x, dim=None, keepdim=false))]
pub fn max(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    dim: Option<&Bound<'_, PyAny>>,
    keepdim: bool,
) -> PyResult<Py<PyAny>> {
    tensor::max_min(py, &node_of(x)?, true, dim, keepdim)
}

/// Minimum: `min(x)` (0-d), `min(x, dim)` (values, indices) or `min(a, b)` (elementwise).
#[pyfunction]
#[pyo3(signature = (x, dim=None, keepdim=false))]
pub fn min(
    py: Python<'_>,
    x: &Bound<'_, PyAny>,
    dim: Option<&Bound<'_, PyAny>>,
    keepdim: bool,
) -> PyResult<Py<PyAny>> {
    tensor::max_min(py, &node_of(x)?, false, dim, keepdim)
}

/// Index of the maximum (flattened when `dim` is None).
#[pyfunction]
#[pyo3(signature = (x, dim=None, keepdim=false))]
pub fn argmax(x: &Bound<'_, PyAny>, dim: Option<i64>, keepdim: bool) -> PyResult<PyTensor> {
    Ok(t(build::arg_reduce(true, &node_of(x)?, dim, keepdim).py()?))
}

/// Index of the minimum (flattened when `dim` is None).
#[pyfunction]
#[pyo3(signature = (x, dim=None, keepdim=false))]
pub fn argmin(x: &Bound<'_, PyAny>, dim: Option<i64>, keepdim: bool) -> PyResult<PyTensor> {
    Ok(t(build::arg_reduce(false, &node_of(x)?, dim, keepdim).py()?))
}

/// The graph of everything `x` depends on.
#[pyfunction]
pub fn get_graph(x: PyRef<'_, PyTensor>) -> PyGraph {
    PyGraph {
        graph: Graph::capture(std::slice::from_ref(&x.node), false),
    }
}

/// The IR node behind `x`.
#[pyfunction]
pub fn get_node(x: PyRef<'_, PyTensor>) -> PyNode {
    PyNode {
        node: x.node.clone(),
    }
}

/// Evaluates all given tensors in one pass (shared work is done once).
#[pyfunction]
#[pyo3(name = "eval", signature = (*tensors))]
pub fn eval_all<'py>(
    py: Python<'py>,
    tensors: &Bound<'py, PyTuple>,
) -> PyResult<Bound<'py, PyAny>> {
    let nodes: Vec<NodeRef> = tensors
        .iter()
        .map(|x| {
            x.cast::<PyTensor>()
                .map(|t| t.borrow().node.clone())
                .map_err(|_| PyTypeError::new_err("eval() takes tensors"))
        })
        .collect::<PyResult<_>>()?;
    evaluate(py, &nodes)?;
    if tensors.len() == 1 {
        tensors.get_item(0)
    } else {
        Ok(tensors.clone().into_any())
    }
}

/// True when `x` has not been evaluated yet.
#[pyfunction]
pub fn is_lazy(x: PyRef<'_, PyTensor>) -> bool {
    !x.node.is_realized()
}

/// Seeds the global random generator.
#[pyfunction]
pub fn manual_seed(seed: i64) {
    pyflame_ir::random::manual_seed(seed as u64);
}

/// Bytes per element of `dtype`.
#[pyfunction]
pub fn dtype_size(dtype: &Bound<'_, PyAny>) -> PyResult<usize> {
    Ok(parse_dtype(dtype)?.size())
}

/// Name of `dtype`.
#[pyfunction]
pub fn dtype_name(dtype: &Bound<'_, PyAny>) -> PyResult<&'static str> {
    Ok(parse_dtype(dtype)?.name())
}

/// The dtype named `name`.
#[pyfunction]
pub fn dtype_from_name(name: &str) -> PyResult<PyDType> {
    DType::from_name(name)
        .map(|inner| PyDType { inner })
        .ok_or_else(|| PyTypeError::new_err(format!("unknown dtype '{name}'")))
}

/// PyTorch's type promotion of two dtypes.
#[pyfunction]
pub fn promote_types(a: &Bound<'_, PyAny>, b: &Bound<'_, PyAny>) -> PyResult<PyDType> {
    Ok(PyDType {
        inner: DType::promote(parse_dtype(a)?, parse_dtype(b)?),
    })
}

/// Number of compiled schedules in the executor's cache.
#[pyfunction]
pub fn _schedule_cache_size() -> usize {
    pyflame_cpu::schedule::cache_len()
}

/// Scalar helper used by `pyflame.tensor` for 0-d Python numbers.
#[pyfunction]
pub fn _scalar_tensor(
    value: &Bound<'_, PyAny>,
    dtype: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTensor> {
    let s = extract_scalar(value).ok_or_else(|| PyTypeError::new_err("expected a number"))?;
    let d = parse_opt_dtype(dtype)?.unwrap_or(s.default_dtype());
    Ok(t(build::full(vec![], s.value(), d, MeshLayout::SinglePe)))
}

/// Turns gradient recording on or off for this thread; returns the previous mode.
#[pyfunction]
pub fn set_grad_enabled(enabled: bool) -> bool {
    pyflame_ir::grad_mode::set_enabled(enabled)
}

/// True when new ops record gradient history on this thread.
#[pyfunction]
pub fn is_grad_enabled() -> bool {
    pyflame_ir::grad_mode::is_enabled()
}

/// Parses an int or a pair of ints.
fn pair(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<[usize; 2]> {
    let v: Vec<i64> = if let Ok(i) = obj.extract::<i64>() {
        vec![i, i]
    } else {
        obj.extract::<Vec<i64>>()
            .map_err(|_| PyTypeError::new_err(format!("{what} must be an int or a pair of ints")))?
    };
    match v.as_slice() {
        [a, b] if *a >= 0 && *b >= 0 => Ok([*a as usize, *b as usize]),
        _ => Err(PyValueError::new_err(format!(
            "{what} must be one or two non-negative ints, got {v:?}"
        ))),
    }
}

/// 2-D convolution of `x` [N, C, H, W] with `weight` [O, C/groups, kh, kw], plus `bias` [O],
/// plus `residual` (the output's shape), then `clamp` = (min, max) (ReLU is `(0, inf)`).
/// With a bias, residual or clamp and no gradient needed, the additions and the clamp run
/// in the convolution kernel as it writes its output.
#[pyfunction]
#[pyo3(signature = (x, weight, bias=None, stride=None, padding=None, dilation=None, groups=1, residual=None, clamp=None))]
#[allow(clippy::too_many_arguments)]
pub fn conv2d(
    x: &Bound<'_, PyAny>,
    weight: &Bound<'_, PyAny>,
    bias: Option<&Bound<'_, PyAny>>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    dilation: Option<&Bound<'_, PyAny>>,
    groups: usize,
    residual: Option<&Bound<'_, PyAny>>,
    clamp: Option<(f64, f64)>,
) -> PyResult<PyTensor> {
    let opt = |o: Option<&Bound<'_, PyAny>>, d: usize, what: &str| {
        o.map_or(Ok([d, d]), |o| pair(o, what))
    };
    let attrs = pyflame_ir::ConvAttrs {
        stride: opt(stride, 1, "stride")?,
        padding: opt(padding, 0, "padding")?,
        dilation: opt(dilation, 1, "dilation")?,
        groups,
    };
    let bias = bias.filter(|b| !b.is_none()).map(node_of).transpose()?;
    let residual = residual.filter(|r| !r.is_none()).map(node_of).transpose()?;
    let y = build::conv2d_fused(
        &node_of(x)?,
        &node_of(weight)?,
        bias.as_ref(),
        residual.as_ref(),
        clamp,
        attrs,
    )
    .py()?;
    Ok(t(y))
}

fn pool_attrs(
    kernel_size: &Bound<'_, PyAny>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    dilation: Option<&Bound<'_, PyAny>>,
    ceil_mode: bool,
    count_include_pad: bool,
) -> PyResult<pyflame_ir::PoolAttrs> {
    let kernel = pair(kernel_size, "kernel_size")?;
    let stride = match stride.filter(|s| !s.is_none()) {
        Some(s) => pair(s, "stride")?,
        None => kernel,
    };
    Ok(pyflame_ir::PoolAttrs {
        kernel,
        stride,
        padding: padding.map_or(Ok([0, 0]), |p| pair(p, "padding"))?,
        dilation: dilation.map_or(Ok([1, 1]), |d| pair(d, "dilation"))?,
        ceil_mode,
        count_include_pad,
    })
}

/// 2-D max pooling (stride defaults to the kernel size).
#[pyfunction]
#[pyo3(signature = (x, kernel_size, stride=None, padding=None, dilation=None, ceil_mode=false))]
pub fn max_pool2d(
    x: &Bound<'_, PyAny>,
    kernel_size: &Bound<'_, PyAny>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    dilation: Option<&Bound<'_, PyAny>>,
    ceil_mode: bool,
) -> PyResult<PyTensor> {
    let a = pool_attrs(kernel_size, stride, padding, dilation, ceil_mode, true)?;
    Ok(t(build::pool2d(
        pyflame_ir::PoolKind::Max,
        &node_of(x)?,
        a,
        None,
    )
    .py()?))
}

/// 2-D average pooling (stride defaults to the kernel size).
#[pyfunction]
#[pyo3(signature = (x, kernel_size, stride=None, padding=None, ceil_mode=false, count_include_pad=true))]
pub fn avg_pool2d(
    x: &Bound<'_, PyAny>,
    kernel_size: &Bound<'_, PyAny>,
    stride: Option<&Bound<'_, PyAny>>,
    padding: Option<&Bound<'_, PyAny>>,
    ceil_mode: bool,
    count_include_pad: bool,
) -> PyResult<PyTensor> {
    let a = pool_attrs(
        kernel_size,
        stride,
        padding,
        None,
        ceil_mode,
        count_include_pad,
    )?;
    Ok(t(build::pool2d(
        pyflame_ir::PoolKind::Avg,
        &node_of(x)?,
        a,
        None,
    )
    .py()?))
}

/// Adaptive average pooling to `output_size` (an int or a pair).
#[pyfunction]
pub fn adaptive_avg_pool2d(
    x: &Bound<'_, PyAny>,
    output_size: &Bound<'_, PyAny>,
) -> PyResult<PyTensor> {
    let size = pair(output_size, "output_size")?;
    let a = pyflame_ir::PoolAttrs {
        kernel: [1, 1],
        stride: [1, 1],
        padding: [0, 0],
        dilation: [1, 1],
        ceil_mode: false,
        count_include_pad: true,
    };
    Ok(t(build::pool2d(
        pyflame_ir::PoolKind::AdaptiveAvg,
        &node_of(x)?,
        a,
        Some(size),
    )
    .py()?))
}
