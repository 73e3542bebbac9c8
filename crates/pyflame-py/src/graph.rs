//! Graph inspection classes: `Graph`, `Node`, `TensorSpec`.

use crate::dtype::{PyDType, PyMeshLayout};
use pyflame_ir::{Graph, NodeRef};
use pyo3::prelude::*;

/// Shape, dtype and layout of a tensor.
#[pyclass(name = "TensorSpec", module = "pyflame", frozen, eq)]
#[derive(Clone, PartialEq)]
pub struct PyTensorSpec {
    /// dimensions
    #[pyo3(get)]
    pub shape: Vec<usize>,
    /// element type
    #[pyo3(get)]
    pub dtype: PyDType,
    /// PE layout
    #[pyo3(get)]
    pub layout: PyMeshLayout,
}

#[pymethods]
impl PyTensorSpec {
    #[new]
    #[pyo3(signature = (shape, dtype, layout=None))]
    fn new(shape: Vec<usize>, dtype: PyDType, layout: Option<PyMeshLayout>) -> Self {
        PyTensorSpec {
            shape,
            dtype,
            layout: layout.unwrap_or(PyMeshLayout {
                inner: Default::default(),
            }),
        }
    }
    /// Number of elements.
    #[getter]
    fn numel(&self) -> usize {
        self.shape.iter().product()
    }
    fn __repr__(&self) -> String {
        format!(
            "TensorSpec(shape={:?}, dtype={}, layout={})",
            self.shape, self.dtype.inner, self.layout.inner
        )
    }
}

/// One operation of a graph.
#[pyclass(name = "Node", module = "pyflame", frozen)]
pub struct PyNode {
    /// the IR node
    pub node: NodeRef,
}

#[pymethods]
impl PyNode {
    /// Unique id.
    #[getter]
    fn id(&self) -> u64 {
        self.node.id
    }
    /// Operation name, e.g. "matmul".
    #[getter]
    fn op_type(&self) -> &'static str {
        self.node.op.name()
    }
    /// Input nodes (empty for evaluated nodes, whose inputs were released).
    #[getter]
    fn inputs(&self) -> Vec<PyNode> {
        self.node
            .inputs()
            .into_iter()
            .map(|node| PyNode { node })
            .collect()
    }
    /// Output shape.
    #[getter]
    fn output_shape(&self) -> Vec<usize> {
        self.node.shape.clone()
    }
    /// Output dtype.
    #[getter]
    fn output_dtype(&self) -> PyDType {
        PyDType {
            inner: self.node.dtype,
        }
    }
    /// Output layout.
    #[getter]
    fn layout(&self) -> PyMeshLayout {
        PyMeshLayout {
            inner: self.node.layout,
        }
    }
    /// Output spec.
    #[getter]
    fn spec(&self) -> PyTensorSpec {
        PyTensorSpec {
            shape: self.node.shape.clone(),
            dtype: self.output_dtype(),
            layout: self.layout(),
        }
    }
    /// True once computed.
    fn is_evaluated(&self) -> bool {
        self.node.is_realized()
    }
    fn __eq__(&self, other: &PyNode) -> bool {
        self.node.id == other.node.id
    }
    fn __hash__(&self) -> u64 {
        self.node.id
    }
    fn __repr__(&self) -> String {
        format!(
            "Node(id={}, op_type='{}', shape={:?}, dtype={})",
            self.node.id,
            self.node.op.name(),
            self.node.shape,
            self.node.dtype
        )
    }
}

/// A computation graph: the nodes a tensor depends on, in topological order.
#[pyclass(name = "Graph", module = "pyflame", frozen)]
pub struct PyGraph {
    /// the captured graph
    pub graph: Graph,
}

#[pymethods]
impl PyGraph {
    /// Nodes in topological order (inputs first).
    #[getter]
    fn nodes(&self) -> Vec<PyNode> {
        self.graph
            .nodes
            .iter()
            .map(|n| PyNode { node: n.clone() })
            .collect()
    }
    /// Number of nodes.
    #[getter]
    fn num_nodes(&self) -> usize {
        self.graph.len()
    }
    /// Output nodes.
    #[getter]
    fn outputs(&self) -> Vec<PyNode> {
        self.graph
            .outputs
            .iter()
            .map(|&i| PyNode {
                node: self.graph.nodes[i].clone(),
            })
            .collect()
    }
    /// Text listing, one node per line.
    #[pyo3(name = "to_string")]
    fn listing(&self) -> String {
        self.graph.render()
    }
    fn __len__(&self) -> usize {
        self.graph.len()
    }
    fn __str__(&self) -> String {
        self.graph.render()
    }
    fn __repr__(&self) -> String {
        format!("Graph(num_nodes={})", self.graph.len())
    }
}
