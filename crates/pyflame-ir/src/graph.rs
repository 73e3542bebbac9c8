//! Capture of the unrealized ancestors of some nodes into a topologically ordered [`Graph`].

use crate::{NodeRef, Op};
use std::collections::HashMap;

/// A captured computation: nodes in topological order (inputs before users). Realized nodes
/// are leaves; their inputs are not followed.
#[derive(Clone, Debug, Default)]
pub struct Graph {
    /// Nodes in topological order.
    pub nodes: Vec<NodeRef>,
    /// For each node, the positions of its inputs in `nodes`.
    pub input_index: Vec<Vec<usize>>,
    /// Positions of the requested outputs in `nodes`.
    pub outputs: Vec<usize>,
}

impl Graph {
    /// Captures the ancestors of `outputs`, stopping at realized nodes when
    /// `stop_at_realized` is true (evaluation) and following every retained input otherwise
    /// (inspection).
    pub fn capture(outputs: &[NodeRef], stop_at_realized: bool) -> Graph {
        let mut g = Graph::default();
        let mut position: HashMap<u64, usize> = HashMap::new();
        // Iterative post-order DFS.
        let mut stack: Vec<(NodeRef, bool)> =
            outputs.iter().rev().map(|n| (n.clone(), false)).collect();
        while let Some((node, expanded)) = stack.pop() {
            if position.contains_key(&node.id) {
                continue;
            }
            let leaf = stop_at_realized && node.is_realized();
            let inputs = if leaf { Vec::new() } else { node.inputs() };
            if expanded || inputs.is_empty() {
                let idx = inputs.iter().map(|i| position[&i.id]).collect();
                position.insert(node.id, g.nodes.len());
                g.nodes.push(node);
                g.input_index.push(idx);
            } else {
                stack.push((node, true));
                for i in inputs.into_iter().rev() {
                    if !position.contains_key(&i.id) {
                        stack.push((i, false));
                    }
                }
            }
        }
        g.outputs = outputs.iter().map(|n| position[&n.id]).collect();
        g
    }

    /// Number of nodes.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// True for an empty graph.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// True when node `i` is a leaf of the capture (realized, or a source op).
    pub fn is_leaf(&self, i: usize) -> bool {
        self.input_index[i].is_empty()
    }

    /// The structural key of the graph: equal keys mean the same schedule can be reused.
    /// Leaves are described by dtype and shape only (their strides are handled at run time).
    pub fn structural_key(&self) -> Vec<u64> {
        let mut key = Vec::with_capacity(self.nodes.len() * 8);
        for (i, node) in self.nodes.iter().enumerate() {
            let realized_leaf = self.input_index[i].is_empty() && node.is_realized();
            if realized_leaf {
                Op::Input.encode(&mut key);
            } else {
                node.op.encode(&mut key);
            }
            key.push(node.dtype as u64);
            key.push(node.shape.len() as u64);
            key.extend(node.shape.iter().map(|&d| d as u64));
            key.push(self.input_index[i].len() as u64);
            key.extend(self.input_index[i].iter().map(|&d| d as u64));
        }
        key.push(u64::MAX);
        key.extend(self.outputs.iter().map(|&o| o as u64));
        key
    }

    /// Human-readable listing, one node per line (`%3 = matmul(%1, %2) : [100, 100] float32`).
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (i, node) in self.nodes.iter().enumerate() {
            let args: Vec<String> = self.input_index[i]
                .iter()
                .map(|j| format!("%{j}"))
                .collect();
            let name =
                if self.input_index[i].is_empty() && node.is_realized() && node.op != Op::Input {
                    format!("{} [evaluated]", node.op.name())
                } else {
                    node.op.name().to_string()
                };
            out.push_str(&format!(
                "%{i} = {name}({}) : {:?} {}\n",
                args.join(", "),
                node.shape,
                node.dtype
            ));
        }
        out
    }
}
