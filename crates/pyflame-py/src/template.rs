//! `Template`: a graph recorded once and run again on new NumPy inputs without building it
//! op by op from Python (the inference runtime's cached plans use it).

use crate::convert::{value_from_numpy, value_to_numpy};
use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use crate::threads::PyThreadPool;
use pyflame_cpu::exec::evaluate_graph_in;
use pyflame_cpu::schedule::{schedule_for, Schedule};
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
    /// The schedule of the recorded graph, made on the first run.
    schedule: OnceLock<Arc<Schedule>>,
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
            schedule: OnceLock::new(),
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
        let graph = self.inner.instantiate_graph(values).py()?;
        let schedule = match self.schedule.get() {
            Some(s) => s.clone(),
            None => {
                let s = schedule_for(&graph).py()?;
                self.schedule.get_or_init(|| s).clone()
            }
        };
        let pool = pool.as_ref().map(|p| p.get());
        // The graph (every intermediate node) is also dropped without the GIL.
        let values = py
            .detach(move || -> pyflame_core::Result<Vec<Value>> {
                evaluate_graph_in(pool.map(|p| &p.pool), &graph, &schedule, keep_awake)?;
                graph
                    .outputs
                    .iter()
                    .map(|&o| {
                        graph.nodes[o].value().ok_or_else(|| {
                            pyflame_core::Error::Invalid("internal: output was not computed".into())
                        })
                    })
                    .collect()
            })
            .py()?;
        values.iter().map(|v| value_to_numpy(py, v)).collect()
    }

    fn __repr__(&self) -> String {
        format!("Template({} nodes)", self.inner.len())
    }
}
