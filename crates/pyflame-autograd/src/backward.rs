//! The backward pass.

use crate::vjp::vjp;
use pyflame_core::{Error, Result};
use pyflame_ir::{build, grad_mode, BinaryOp, NodeRef};
use std::collections::{HashMap, HashSet};

/// Restores grad mode when dropped.
struct ModeGuard(bool);

impl Drop for ModeGuard {
    fn drop(&mut self) {
        grad_mode::set_enabled(self.0);
    }
}

/// Nodes that require grad reachable from `root`, in topological order (inputs first).
fn tape(root: &NodeRef) -> Vec<NodeRef> {
    let mut order = Vec::new();
    let mut seen = HashSet::new();
    let mut stack = vec![(root.clone(), false)];
    while let Some((node, expanded)) = stack.pop() {
        if expanded {
            order.push(node);
            continue;
        }
        if !seen.insert(node.id) {
            continue;
        }
        stack.push((node.clone(), true));
        for i in node.inputs() {
            if i.requires_grad() && !seen.contains(&i.id) {
                stack.push((i, false));
            }
        }
    }
    order
}

fn accumulate(map: &mut HashMap<u64, NodeRef>, id: u64, g: NodeRef) -> Result<()> {
    let merged = match map.remove(&id) {
        Some(prev) => build::binary(BinaryOp::Add, &prev, &g)?,
        None => g,
    };
    map.insert(id, merged);
    Ok(())
}

/// Accumulates d`root`/d`leaf` into the `grad` of every leaf that requires gradients.
///
/// `grad` defaults to ones for a single-element root. Unless `retain_graph` is set, the
/// links of evaluated intermediate nodes are released afterwards (like PyTorch freeing the
/// graph); the gradient expressions keep what they need alive.
pub fn backward(root: &NodeRef, grad: Option<NodeRef>, retain_graph: bool) -> Result<()> {
    if !root.requires_grad() {
        return Err(Error::Invalid(
            "element 0 of tensors does not require grad and does not have a grad_fn".into(),
        ));
    }
    let seed = match grad {
        Some(g) => {
            if g.shape != root.shape {
                return Err(Error::Shape(format!(
                    "gradient of shape {:?} does not match the tensor's shape {:?}",
                    g.shape, root.shape
                )));
            }
            build::cast(&g, root.dtype)
        }
        None => {
            if root.numel() != 1 {
                return Err(Error::Invalid(format!(
                    "grad can be implicitly created only for scalar outputs (this tensor has shape {:?}); pass a gradient",
                    root.shape
                )));
            }
            build::full(root.shape.clone(), 1.0, root.dtype, root.layout)
        }
    };
    // Gradient graphs are not themselves differentiated.
    let _guard = ModeGuard(grad_mode::set_enabled(false));
    let order = tape(root);
    let mut grads: HashMap<u64, NodeRef> = HashMap::new();
    grads.insert(root.id, seed);
    for node in order.iter().rev() {
        let Some(g) = grads.remove(&node.id) else {
            continue;
        };
        let inputs = node.inputs();
        if !inputs.iter().any(|i| i.requires_grad()) {
            // A leaf (no input carries gradients): accumulate into its grad, in its dtype.
            let g = build::cast(&g, node.dtype);
            let total = match node.grad() {
                Some(prev) => build::binary(BinaryOp::Add, &prev, &g)?,
                None => g,
            };
            node.set_grad(Some(total));
            continue;
        }
        let input_grads = vjp(node, &inputs, &g)?;
        for (inp, ig) in inputs.iter().zip(input_grads) {
            if let Some(ig) = ig {
                if inp.requires_grad() {
                    accumulate(&mut grads, inp.id, ig)?;
                }
            }
        }
    }
    if !retain_graph {
        for node in &order {
            if node.num_inputs() == 0 {
                continue;
            }
            if node.is_realized() {
                node.release_inputs();
            } else {
                // Its value is still needed (by the gradient expressions, which hold it),
                // but not for another backward pass.
                node.mark_grad_taken();
            }
        }
    }
    Ok(())
}
