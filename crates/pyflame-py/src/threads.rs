//! `ThreadPool`: a dedicated rayon pool whose threads evaluate tensors, so a caller (the
//! inference runtime's `SessionOptions.num_threads`) can bound the parallelism of one
//! evaluation independently of the global pool.

use crate::errors::IntoPy;
use crate::tensor::PyTensor;
use pyflame_ir::NodeRef;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::PyTuple;

/// A pool of `num_threads` worker threads (named `pyflame-pool-<i>`) that evaluates tensors.
/// Its workers are pinned to cores when the pool fits the process's cores
/// (`pyflame_cpu::affinity`; `PYFLAME_PIN_THREADS=0` leaves them free).
#[pyclass(name = "ThreadPool", module = "pyflame._core", frozen)]
pub struct PyThreadPool {
    /// the worker threads
    pub(crate) pool: rayon::ThreadPool,
    num_threads: usize,
}

#[pymethods]
impl PyThreadPool {
    #[new]
    fn new(num_threads: usize) -> PyResult<Self> {
        if num_threads == 0 {
            return Err(PyValueError::new_err("ThreadPool needs num_threads >= 1"));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(num_threads)
            .thread_name(|i| format!("pyflame-pool-{i}"))
            .start_handler(pyflame_cpu::affinity::start_handler(num_threads))
            .build()
            .map_err(|e| PyRuntimeError::new_err(format!("cannot start thread pool: {e}")))?;
        Ok(Self { pool, num_threads })
    }

    /// Number of worker threads.
    #[getter]
    fn num_threads(&self) -> usize {
        self.num_threads
    }

    /// The thread count rayon reports inside the pool (what parallel kernels split over).
    fn current_num_threads(&self) -> usize {
        self.pool.install(rayon::current_num_threads)
    }

    /// Evaluates the given tensors in one pass on this pool's threads (GIL released).
    #[pyo3(signature = (*tensors))]
    fn eval(&self, py: Python<'_>, tensors: &Bound<'_, PyTuple>) -> PyResult<()> {
        let nodes: Vec<NodeRef> = tensors
            .iter()
            .map(|x| {
                x.cast::<PyTensor>()
                    .map(|t| t.borrow().node.clone())
                    .map_err(|_| PyTypeError::new_err("ThreadPool.eval() takes tensors"))
            })
            .collect::<PyResult<_>>()?;
        py.detach(|| pyflame_cpu::exec::evaluate_in(Some(&self.pool), &nodes))
            .py()
    }

    fn __repr__(&self) -> String {
        format!("ThreadPool(num_threads={})", self.num_threads)
    }
}

/// Sets how long idle worker threads keep spinning for more work after an evaluation, in
/// microseconds (0: they sleep at once; at most one second).
#[pyfunction]
pub fn set_worker_spin_us(us: u64) {
    pyflame_cpu::exec::set_worker_spin(std::time::Duration::from_micros(us));
}

/// How long idle worker threads keep spinning after an evaluation, in microseconds.
#[pyfunction]
pub fn get_worker_spin_us() -> u64 {
    pyflame_cpu::exec::worker_spin().as_micros() as u64
}
