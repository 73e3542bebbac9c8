//! `Template`: a graph recorded once and run again on new NumPy inputs without building it
//! op by op from Python (the inference runtime's cached plans use it).

use crate::convert::{value_from_numpy, value_to_numpy};
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use crate::threads::PyThreadPool;
use pyflame_cpu::exec::{run_detached_in, Detached};
use pyflame_ir::template::Template;
use pyflame_ir::Value;
use pyo3::prelude::*;
use std::sync::{Arc, OnceLock};

/// A recorded graph: `Template(outputs, placeholders)` records how the unevaluated
/// `outputs` are computed from the `placeholders` (and realized constants);
/// `run(arrays)` computes the outputs for new placeholder values of the same shapes and
/// dtypes and returns NumPy arrays.
#[pyclass(name = "Template", module = "pyflame._core", frozen)]
pub struct PyTemplate {
    inner: Template,
    /// The graph every run executes, made on the first run (see [`Runnable`]).
    runnable: OnceLock<Arc<Runnable>>,
}

/// One graph of the recorded nodes, kept for all runs with its schedule: each run puts its
/// inputs in the placeholders' places and computes the outputs without building nodes or
/// storing values in them (`run_detached_in`).
struct Runnable {
    detached: Arc<Detached>,
    /// graph position of each placeholder
    placeholders: Vec<usize>,
}

#[pymethods]
impl PyTemplate {
    #[new]
    fn new(
        outputs: Vec<PyRef<'_, PyTensor>>,
        placeholders: Vec<PyRef<'_, PyTensor>>,
    ) -> PyResult<Self> {
        let outs: Vec<_> = outputs.iter().map(|t| t.node.clone()).collect();
        let phs: Vec<_> = placeholders.iter().map(|t| t.node.clone()).collect();
        Ok(Self {
            inner: Template::record(&outs, &phs).py()?,
            runnable: OnceLock::new(),
        })
    }

    /// Number of recorded nodes.
    fn __len__(&self) -> usize {
        self.inner.len()
    }

    /// Evaluates the outputs for `inputs` (one array per placeholder), on `pool` when given
    /// (otherwise the global pool), with the GIL released. With `keep_awake=False` the
    /// workers sleep as soon as the run is done instead of spinning for the next one.
    #[pyo3(signature = (inputs, pool=None, keep_awake=true))]
    fn run<'py>(
        &self,
        py: Python<'py>,
        inputs: Vec<Bound<'py, PyAny>>,
        pool: Option<Py<PyThreadPool>>,
        keep_awake: bool,
    ) -> PyResult<Vec<Bound<'py, PyAny>>> {
        let values = inputs
            .iter()
            .map(value_from_numpy)
            .collect::<PyResult<Vec<_>>>()?;
        self.inner.check_inputs(&values).py()?;
        let runnable = match self.runnable.get() {
            Some(r) => r.clone(),
            None => {
                // The first run's inputs stay in the placeholder nodes: the schedule takes
                // realized leaves for inputs.
                let graph = self.inner.instantiate_graph(values.clone()).py()?;
                let made = Arc::new(Runnable {
                    detached: Arc::new(Detached::new(Arc::new(graph)).py()?),
                    placeholders: self.inner.placeholder_positions(),
                });
                self.runnable.get_or_init(|| made).clone()
            }
        };
        let feeds: Vec<(usize, Value)> =
            runnable.placeholders.iter().copied().zip(values).collect();
        let pool = pool.as_ref().map(|p| p.get());
        let values = py
            .detach(|| {
                run_detached_in(
                    pool.map(|p| &p.pool),
                    runnable.detached.clone(),
                    feeds,
                    keep_awake,
                )
            })
            .py()?;
        values.iter().map(|v| value_to_numpy(py, v)).collect()
    }

    fn __repr__(&self) -> String {
        format!("Template({} nodes)", self.inner.len())
    }
}
