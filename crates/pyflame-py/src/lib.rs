//! `pyflame._core`: the PyO3 bindings. Only this crate depends on pyo3; it converts
//! arguments, maps errors to Python exceptions and releases the GIL around execution.

mod convert;
mod csl;
mod dtype;
mod errors;
mod functions;
mod graph;
mod indexing;
mod nn_ops;
mod ops;
mod template;
mod tensor;
mod threads;

use pyflame_core::dtype::ALL_DTYPES;
use pyo3::prelude::*;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    // Rayon's global pool, built now so that its workers are pinned to cores.
    pyflame_cpu::affinity::init_global_pool();
    m.add_class::<tensor::PyTensor>()?;
    m.add_class::<dtype::PyDType>()?;
    m.add_class::<dtype::PyMeshLayout>()?;
    m.add_class::<dtype::PyPECoord>()?;
    m.add_class::<graph::PyGraph>()?;
    m.add_class::<graph::PyNode>()?;
    m.add_class::<graph::PyTensorSpec>()?;
    m.add_class::<threads::PyThreadPool>()?;
    m.add_function(wrap_pyfunction!(threads::set_worker_spin_us, m)?)?;
    m.add_function(wrap_pyfunction!(threads::get_worker_spin_us, m)?)?;
    m.add_class::<template::PyTemplate>()?;
    m.add("ShapeError", py.get_type::<errors::ShapeError>())?;
    for d in ALL_DTYPES {
        m.add(d.name(), dtype::PyDType { inner: d })?;
    }
    m.add(
        "bool_",
        dtype::PyDType {
            inner: pyflame_core::DType::Bool,
        },
    )?;
    use functions::*;
    functions::register_unary(m)?;
    functions::register_binary(m)?;
    for f in [
        wrap_pyfunction!(zeros, m)?,
        wrap_pyfunction!(ones, m)?,
        wrap_pyfunction!(full, m)?,
        wrap_pyfunction!(randn, m)?,
        wrap_pyfunction!(rand, m)?,
        wrap_pyfunction!(randint, m)?,
        wrap_pyfunction!(arange, m)?,
        wrap_pyfunction!(linspace, m)?,
        wrap_pyfunction!(eye, m)?,
        wrap_pyfunction!(zeros_like, m)?,
        wrap_pyfunction!(ones_like, m)?,
        wrap_pyfunction!(full_like, m)?,
        wrap_pyfunction!(rand_like, m)?,
        wrap_pyfunction!(randn_like, m)?,
        wrap_pyfunction!(from_numpy, m)?,
        wrap_pyfunction!(constant_from_numpy, m)?,
        wrap_pyfunction!(gelu, m)?,
        wrap_pyfunction!(softmax, m)?,
        wrap_pyfunction!(log_softmax, m)?,
        wrap_pyfunction!(logical_and, m)?,
        wrap_pyfunction!(logical_or, m)?,
        wrap_pyfunction!(logical_xor, m)?,
        wrap_pyfunction!(matmul, m)?,
        wrap_pyfunction!(where_, m)?,
        wrap_pyfunction!(clamp, m)?,
        wrap_pyfunction!(cat, m)?,
        wrap_pyfunction!(stack, m)?,
        wrap_pyfunction!(split, m)?,
        wrap_pyfunction!(chunk, m)?,
        wrap_pyfunction!(sum, m)?,
        wrap_pyfunction!(mean, m)?,
        wrap_pyfunction!(prod, m)?,
        wrap_pyfunction!(amax, m)?,
        wrap_pyfunction!(amin, m)?,
        wrap_pyfunction!(max, m)?,
        wrap_pyfunction!(min, m)?,
        wrap_pyfunction!(argmax, m)?,
        wrap_pyfunction!(argmin, m)?,
        wrap_pyfunction!(get_graph, m)?,
        wrap_pyfunction!(get_node, m)?,
        wrap_pyfunction!(eval_all, m)?,
        wrap_pyfunction!(is_lazy, m)?,
        wrap_pyfunction!(manual_seed, m)?,
        wrap_pyfunction!(dtype_size, m)?,
        wrap_pyfunction!(dtype_name, m)?,
        wrap_pyfunction!(dtype_from_name, m)?,
        wrap_pyfunction!(promote_types, m)?,
        wrap_pyfunction!(_schedule_cache_size, m)?,
        wrap_pyfunction!(_scalar_tensor, m)?,
        wrap_pyfunction!(set_grad_enabled, m)?,
        wrap_pyfunction!(conv2d, m)?,
        wrap_pyfunction!(max_pool2d, m)?,
        wrap_pyfunction!(avg_pool2d, m)?,
        wrap_pyfunction!(adaptive_avg_pool2d, m)?,
        wrap_pyfunction!(is_grad_enabled, m)?,
        wrap_pyfunction!(nn_ops::normalization, m)?,
        wrap_pyfunction!(nn_ops::scaled_dot_product_attention, m)?,
        wrap_pyfunction!(nn_ops::adam_step, m)?,
    ] {
        m.add_function(f)?;
    }
    csl::register(m)?;
    Ok(())
}
