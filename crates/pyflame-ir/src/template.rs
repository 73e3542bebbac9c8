//! A recorded graph that can be run again on new input values without building it anew.
//!
//! Building a graph op by op from Python costs microseconds per op, which dominates small
//! models (a batch-1 ResNet-18 spends about as long building its ~60 ops as computing
//! them). A [`Template`] records the structure once, from the unevaluated outputs back to
//! the placeholders (the nodes that will take new values) and the realized constants, and
//! [`Template::instantiate`] rebuilds fresh nodes around new input values in one pass. The
//! inference runtime builds one graph ([`Template::instantiate_graph`]) and runs it again
//! and again with new values in the placeholders' places ([`Template::placeholder_positions`]),
//! without building nodes at all.

use crate::{Graph, Node, NodeRef, Op, Value};
use pyflame_core::{DType, Error, MeshLayout, Result};
use std::sync::Arc;

/// How one node of the template is made on each run.
#[derive(Debug)]
enum Step {
    /// Input `index` of [`Template::instantiate`].
    Placeholder { index: usize },
    /// A realized node shared by every run (weights, folded constants).
    Constant(NodeRef),
    /// The op applied to earlier steps.
    Apply {
        op: Op,
        inputs: Vec<usize>,
        shape: Vec<usize>,
        dtype: DType,
        layout: MeshLayout,
    },
}

/// A graph recorded for re-running on new inputs of the same shapes and dtypes.
#[derive(Debug)]
pub struct Template {
    steps: Vec<Step>,
    outputs: Vec<usize>,
    /// shape and dtype of each placeholder
    inputs: Vec<(Vec<usize>, DType)>,
}

impl Template {
    /// Records the unevaluated ancestors of `outputs` down to `placeholders` (nodes that
    /// take new values on each run) and realized input nodes (constants). Must be called
    /// before the outputs are evaluated (evaluation forgets how a node was computed).
    /// Refused: random ops (replaying them would repeat the same numbers) and nodes
    /// evaluated while the graph was built (their values may depend on the placeholders).
    pub fn record(outputs: &[NodeRef], placeholders: &[NodeRef]) -> Result<Template> {
        let graph = Graph::capture(outputs, true);
        let mut steps = Vec::with_capacity(graph.nodes.len());
        for (node, inputs) in graph.nodes.iter().zip(&graph.input_index) {
            let placeholder = placeholders.iter().position(|p| Arc::ptr_eq(p, node));
            let step = if let Some(index) = placeholder {
                if !inputs.is_empty() {
                    // Its ancestors would be recomputed on every run for nothing.
                    return Err(Error::Invalid(format!(
                        "placeholder {index} of the recorded graph is computed from other \
                         nodes ({}); placeholders must be input values",
                        node.op.name()
                    )));
                }
                Step::Placeholder { index }
            } else if node.is_realized() && node.op == Op::Input {
                Step::Constant(node.clone())
            } else if node.is_realized() {
                // Computed while the graph was built: it may depend on this run's inputs.
                return Err(Error::Invalid(format!(
                    "cannot record the graph: a {} node was evaluated while it was built",
                    node.op.name()
                )));
            } else if matches!(node.op, Op::Random { .. }) {
                return Err(Error::Invalid(
                    "a graph with random ops cannot be recorded for replay".into(),
                ));
            } else {
                Step::Apply {
                    op: node.op.clone(),
                    inputs: inputs.clone(),
                    shape: node.shape.clone(),
                    dtype: node.dtype,
                    layout: node.layout,
                }
            };
            steps.push(step);
        }
        Ok(Template {
            steps,
            outputs: graph.outputs,
            inputs: placeholders
                .iter()
                .map(|p| (p.shape.clone(), p.dtype))
                .collect(),
        })
    }

    /// Number of recorded nodes.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Fresh, unevaluated output nodes computing the recorded graph from `inputs` (one value
    /// per placeholder, with the placeholder's shape and dtype).
    pub fn instantiate(&self, inputs: Vec<Value>) -> Result<Vec<NodeRef>> {
        let made = self.build_nodes(inputs)?;
        // Only the outputs stay referenced from here: the evaluator frees each intermediate
        // as soon as its last reader ran.
        Ok(self.outputs.iter().map(|&o| made[o].clone()).collect())
    }

    /// [`Template::instantiate`] as the captured [`Graph`] of its outputs: every recorded
    /// node in the recorded (topological) order, which is the graph a capture of the outputs
    /// would give, without walking it. Its structure is the same on every call, so one
    /// schedule serves every run.
    pub fn instantiate_graph(&self, inputs: Vec<Value>) -> Result<Graph> {
        let nodes = self.build_nodes(inputs)?;
        let input_index = self
            .steps
            .iter()
            .map(|step| match step {
                Step::Apply { inputs, .. } => inputs.clone(),
                Step::Placeholder { .. } | Step::Constant(_) => Vec::new(),
            })
            .collect();
        Ok(Graph {
            nodes,
            input_index,
            outputs: self.outputs.clone(),
        })
    }

    /// The graph position of each placeholder (in placeholder order) in the graphs that
    /// [`Template::instantiate_graph`] builds.
    pub fn placeholder_positions(&self) -> Vec<usize> {
        let mut positions = vec![0; self.inputs.len()];
        for (position, step) in self.steps.iter().enumerate() {
            if let Step::Placeholder { index } = step {
                positions[*index] = position;
            }
        }
        positions
    }

    /// Checks that `inputs` are one value per placeholder, each with the placeholder's
    /// shape and dtype.
    pub fn check_inputs(&self, inputs: &[Value]) -> Result<()> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::Invalid(format!(
                "the recorded graph takes {} inputs, {} were given",
                self.inputs.len(),
                inputs.len()
            )));
        }
        for (i, (v, (shape, dtype))) in inputs.iter().zip(&self.inputs).enumerate() {
            if &v.shape != shape || v.dtype() != *dtype {
                return Err(Error::Shape(format!(
                    "input {i} of the recorded graph is {:?} {}, expected {shape:?} {dtype}",
                    v.shape,
                    v.dtype()
                )));
            }
        }
        Ok(())
    }

    /// One fresh node per recorded step (placeholders take `inputs`).
    fn build_nodes(&self, inputs: Vec<Value>) -> Result<Vec<NodeRef>> {
        self.check_inputs(&inputs)?;
        let mut inputs: Vec<Option<Value>> = inputs.into_iter().map(Some).collect();
        let mut made: Vec<NodeRef> = Vec::with_capacity(self.steps.len());
        for step in &self.steps {
            let node = match step {
                Step::Placeholder { index } => {
                    // A placeholder appears once in the capture.
                    let value = inputs[*index].take().ok_or_else(|| {
                        Error::Invalid("internal: placeholder recorded twice".into())
                    })?;
                    Node::input(value, MeshLayout::default())
                }
                Step::Constant(node) => node.clone(),
                Step::Apply {
                    op,
                    inputs,
                    shape,
                    dtype,
                    layout,
                } => {
                    let args = inputs
                        .iter()
                        .map(|&i| made.get(i).cloned())
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| {
                            Error::Invalid("internal: recorded inputs out of order".into())
                        })?;
                    Node::untracked(op.clone(), args, shape.clone(), *dtype, *layout)
                }
            };
            made.push(node);
        }
        if self.outputs.iter().any(|&o| o >= made.len()) {
            return Err(Error::Invalid("internal: recorded output missing".into()));
        }
        Ok(made)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{build, BinaryOp, UnaryOp};
    use pyflame_core::Storage;

    fn value(data: &[f32]) -> Value {
        Value::contiguous(
            Arc::new(Storage::from_slice(data).unwrap()),
            vec![data.len()],
        )
    }

    #[test]
    fn records_structure_and_rebuilds_it_around_new_inputs() {
        let x = Node::input(value(&[1.0, -2.0]), MeshLayout::default());
        let w = Node::input(value(&[3.0, 4.0]), MeshLayout::default());
        let y = build::unary(
            UnaryOp::Relu,
            &build::binary(BinaryOp::Mul, &x, &w).unwrap(),
        )
        .unwrap();
        let t = Template::record(&[y], &[x]).unwrap();
        assert_eq!(t.len(), 4);
        let out = t.instantiate(vec![value(&[5.0, 6.0])]).unwrap();
        assert_eq!(out.len(), 1);
        assert!(!out[0].is_realized());
        assert_eq!(out[0].shape, vec![2]);
        // the constant is shared, the placeholder is new
        let mul = out[0].inputs()[0].clone();
        let ins = mul.inputs();
        assert!(Arc::ptr_eq(&ins[1], &w));
        assert_eq!(
            ins[0].value().unwrap().storage.as_slice::<f32>().unwrap(),
            &[5.0, 6.0]
        );
    }

    #[test]
    fn instantiated_graph_is_the_capture_of_its_outputs() {
        let x = Node::input(value(&[1.0, -2.0]), MeshLayout::default());
        let w = Node::input(value(&[3.0, 4.0]), MeshLayout::default());
        let prod = build::binary(BinaryOp::Mul, &x, &w).unwrap();
        let y = build::unary(UnaryOp::Relu, &prod).unwrap();
        let z = build::binary(BinaryOp::Add, &prod, &y).unwrap();
        let t = Template::record(&[z, y], &[x]).unwrap();
        let g = t.instantiate_graph(vec![value(&[5.0, 6.0])]).unwrap();
        let outputs: Vec<NodeRef> = g.outputs.iter().map(|&o| g.nodes[o].clone()).collect();
        let captured = Graph::capture(&outputs, true);
        assert_eq!(g.input_index, captured.input_index);
        assert_eq!(g.outputs, captured.outputs);
        assert!(g
            .nodes
            .iter()
            .zip(&captured.nodes)
            .all(|(a, b)| Arc::ptr_eq(a, b)));
        assert_eq!(g.structural_key(), captured.structural_key());
        assert!(t.instantiate_graph(vec![value(&[1.0])]).is_err());
    }

    #[test]
    fn rejects_inputs_of_another_shape_and_random_graphs() {
        let x = Node::input(value(&[1.0, 2.0]), MeshLayout::default());
        let y = build::unary(UnaryOp::Neg, &x).unwrap();
        let t = Template::record(&[y], std::slice::from_ref(&x)).unwrap();
        assert!(t.instantiate(vec![value(&[1.0])]).is_err());
        assert!(t.instantiate(vec![]).is_err());
        let r = Node::untracked(
            Op::Random {
                dist: crate::RandDist::Normal {
                    mean: 0.0,
                    std: 1.0,
                },
                seed: 1,
            },
            vec![],
            vec![2],
            DType::Float32,
            MeshLayout::default(),
        );
        let z = build::binary(BinaryOp::Add, &x, &r).unwrap();
        assert!(Template::record(&[z], std::slice::from_ref(&x)).is_err());
        // A placeholder must be an input value, not a computed node.
        let computed = build::unary(UnaryOp::Neg, &x).unwrap();
        let out = build::unary(UnaryOp::Exp, &computed).unwrap();
        let refused = Template::record(&[out], &[computed]);
        assert!(refused.is_err_and(|e| e.to_string().contains("placeholders must be input")));
    }
}
