//! Bindings of the dedicated neural-network kernels: normalization with saved statistics and
//! fused scaled-dot-product attention.

use crate::errors::IntoPy;
use crate::tensor::{require_operand, PyTensor};
use pyflame_ir::{build, NodeRef, NormMode};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn node_of(x: &Bound<'_, PyAny>, what: &str) -> PyResult<NodeRef> {
    require_operand(x, None, what)
}

fn opt_node(x: Option<&Bound<'_, PyAny>>, what: &str) -> PyResult<Option<NodeRef>> {
    x.filter(|o| !o.is_none())
        .map(|o| node_of(o, what))
        .transpose()
}

/// Normalizes `x` viewed as `[N, C, S]` by its own statistics: per (sample, group of
/// `C / groups` channels) when `groups` is given (layer and group norm), per channel over
/// samples and positions otherwise (batch norm). `weight` and `bias` hold `C` elements.
/// Returns the output and the `[2, R]` statistics (mean and biased variance, no gradient).
#[pyfunction]
#[pyo3(signature = (x, groups, eps, weight=None, bias=None))]
pub fn normalization(
    x: &Bound<'_, PyAny>,
    groups: Option<usize>,
    eps: f64,
    weight: Option<&Bound<'_, PyAny>>,
    bias: Option<&Bound<'_, PyAny>>,
) -> PyResult<(PyTensor, PyTensor)> {
    let x = node_of(x, "normalization")?;
    let mode = match groups {
        Some(0) => {
            return Err(PyValueError::new_err(
                "normalization: groups must be positive",
            ))
        }
        Some(g) => NormMode::Groups(g),
        None => NormMode::Channels,
    };
    let w = opt_node(weight, "normalization weight")?;
    let b = opt_node(bias, "normalization bias")?;
    let (y, stats) = build::normalize(&x, mode, eps, w.as_ref(), b.as_ref()).py()?;
    Ok((PyTensor::new(y), PyTensor::new(stats)))
}

/// Fused `softmax(q @ k^T * scale + mask) @ v` over the last two dimensions (`scale`
/// defaults to `1 / sqrt(D)`). A bool `mask` marks with True the keys that take part; a float
/// mask is added to the scores; `is_causal` hides the keys after each query. Rows without
/// any visible key give zeros, or NaN with `empty_rows_nan` (like `softmax` then matmul).
#[pyfunction]
#[pyo3(signature = (q, k, v, mask=None, is_causal=false, scale=None, empty_rows_nan=false))]
pub fn scaled_dot_product_attention(
    q: &Bound<'_, PyAny>,
    k: &Bound<'_, PyAny>,
    v: &Bound<'_, PyAny>,
    mask: Option<&Bound<'_, PyAny>>,
    is_causal: bool,
    scale: Option<f64>,
    empty_rows_nan: bool,
) -> PyResult<PyTensor> {
    let what = "scaled_dot_product_attention";
    let (q, k, v) = (node_of(q, what)?, node_of(k, what)?, node_of(v, what)?);
    let m = opt_node(mask, what)?;
    let d = q.shape.last().copied().unwrap_or(1);
    let scale = scale.unwrap_or(1.0 / (d.max(1) as f64).sqrt());
    let out =
        build::attention_with(&q, &k, &v, m.as_ref(), is_causal, scale, empty_rows_nan).py()?;
    Ok(PyTensor::new(out))
}

/// One Adam step of `param` in a single pass (no gradient history): `state` is
/// `[exp_avg, exp_avg_sq]` (plus `max_exp_avg_sq` with `amsgrad`), each shaped like
/// `param`. Returns `[3 or 4, *param.shape]`: the new param, then the new state in order.
#[pyfunction]
#[pyo3(signature = (param, grad, state, beta1, beta2, eps, step_size, bias_correction2_sqrt, amsgrad=false))]
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    param: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    state: Vec<Bound<'_, PyAny>>,
    beta1: f64,
    beta2: f64,
    eps: f64,
    step_size: f64,
    bias_correction2_sqrt: f64,
    amsgrad: bool,
) -> PyResult<PyTensor> {
    let p = node_of(param, "adam_step param")?;
    let g = node_of(grad, "adam_step grad")?;
    let s = state
        .iter()
        .map(|t| node_of(t, "adam_step state"))
        .collect::<PyResult<Vec<_>>>()?;
    let attrs = pyflame_ir::AdamAttrs {
        beta1,
        beta2,
        eps,
        step_size,
        bias_correction2_sqrt,
        amsgrad,
    };
    Ok(PyTensor::new(build::adam_step(&p, &g, &s, attrs).py()?))
}
