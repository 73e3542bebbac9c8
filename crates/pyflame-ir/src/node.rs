//! [`Node`]: one vertex of the lazy tensor DAG. A Python `Tensor` holds a [`NodeRef`].

use crate::{Op, Value};
use pyflame_core::{numel, DType, MeshLayout};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

/// Shared handle to a node.
pub type NodeRef = Arc<Node>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A lazy tensor: an op applied to input nodes, with its output shape/dtype/layout known at
/// construction. Once evaluated it holds a [`Value`] and drops its inputs (unless they are
/// needed for gradients) so their memory can be released.
pub struct Node {
    /// Unique id (creation order).
    pub id: u64,
    /// The operation.
    pub op: Op,
    /// Output shape.
    pub shape: Vec<usize>,
    /// Output dtype.
    pub dtype: DType,
    /// Output distribution over PEs.
    pub layout: MeshLayout,
    inputs: Mutex<Vec<NodeRef>>,
    value: RwLock<Option<Value>>,
    retain_inputs: AtomicBool,
    requires_grad: AtomicBool,
    grad_taken: AtomicBool,
    grad: Mutex<Option<NodeRef>>,
}

impl Node {
    /// Creates an unrealized node. It records gradient history (requires grad and keeps its
    /// inputs) when grad mode is on, its dtype is floating point and an input requires grad.
    #[inline]
    pub fn new(
        op: Op,
        inputs: Vec<NodeRef>,
        shape: Vec<usize>,
        dtype: DType,
        layout: MeshLayout,
    ) -> NodeRef {
        let track = dtype.is_float()
            && !inputs.is_empty()
            && inputs.iter().any(|i| i.requires_grad())
            && crate::grad_mode::is_enabled();
        let node = Self::untracked(op, inputs, shape, dtype, layout);
        if track {
            node.set_requires_grad(true);
        }
        node
    }

    /// Creates an unrealized node that never records gradient history.
    pub fn untracked(
        op: Op,
        inputs: Vec<NodeRef>,
        shape: Vec<usize>,
        dtype: DType,
        layout: MeshLayout,
    ) -> NodeRef {
        Arc::new(Node {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            op,
            shape,
            dtype,
            layout,
            inputs: Mutex::new(inputs),
            value: RwLock::new(None),
            retain_inputs: AtomicBool::new(false),
            grad_taken: AtomicBool::new(false),
            requires_grad: AtomicBool::new(false),
            grad: Mutex::new(None),
        })
    }

    /// Creates a realized input node holding `value`.
    pub fn input(value: Value, layout: MeshLayout) -> NodeRef {
        let node = Node::new(
            Op::Input,
            vec![],
            value.shape.clone(),
            value.dtype(),
            layout,
        );
        node.set_value(value);
        node
    }

    fn lock_inputs(&self) -> MutexGuard<'_, Vec<NodeRef>> {
        // A poisoned lock only means another thread panicked while holding it; the vector
        // itself is still valid.
        self.inputs.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The current inputs (empty once realized, unless inputs are retained).
    pub fn inputs(&self) -> Vec<NodeRef> {
        self.lock_inputs().clone()
    }

    /// Number of current inputs.
    pub fn num_inputs(&self) -> usize {
        self.lock_inputs().len()
    }

    /// The `i`-th current input.
    pub fn input_at(&self, i: usize) -> Option<NodeRef> {
        self.lock_inputs().get(i).cloned()
    }

    /// Drops the inputs of a realized node (after a backward pass that did not retain the
    /// graph).
    pub fn release_inputs(&self) {
        // A released node can no longer propagate gradients.
        self.set_requires_grad(false);
        if self.is_realized() {
            let dropped = std::mem::take(&mut *self.lock_inputs());
            drop_iteratively(dropped);
        }
    }

    /// Marks an unrealized node whose gradient a backward pass has already built without
    /// retaining the graph: no later backward pass goes through it (PyTorch would refuse a
    /// second one), so the executor need not keep its value for one. If something does need
    /// the value again, the node is still linked to its inputs and is recomputed.
    pub fn mark_grad_taken(&self) {
        self.grad_taken.store(true, Ordering::Relaxed);
    }

    /// See [`Node::mark_grad_taken`].
    pub fn grad_taken(&self) -> bool {
        self.grad_taken.load(Ordering::Relaxed)
    }

    /// Keep inputs after realization (autograd needs the graph for backward).
    pub fn set_retain_inputs(&self, retain: bool) {
        self.retain_inputs.store(retain, Ordering::Relaxed);
    }

    /// Whether gradients flow to (or through) this node.
    pub fn requires_grad(&self) -> bool {
        self.requires_grad.load(Ordering::Relaxed)
    }

    /// Marks the node as requiring gradients; its inputs are then kept after evaluation.
    pub fn set_requires_grad(&self, value: bool) {
        self.requires_grad.store(value, Ordering::Relaxed);
        self.set_retain_inputs(value);
    }

    /// The accumulated gradient (for leaves).
    pub fn grad(&self) -> Option<NodeRef> {
        self.grad.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Replaces the accumulated gradient.
    pub fn set_grad(&self, grad: Option<NodeRef>) {
        *self.grad.lock().unwrap_or_else(|e| e.into_inner()) = grad;
    }

    /// Number of elements.
    pub fn numel(&self) -> usize {
        numel(&self.shape)
    }

    /// True once the node holds a value.
    pub fn is_realized(&self) -> bool {
        self.value.read().map(|v| v.is_some()).unwrap_or(false)
    }

    /// The realized value, if any.
    pub fn value(&self) -> Option<Value> {
        self.value.read().ok().and_then(|v| v.clone())
    }

    /// Stores the realized value and releases the inputs.
    pub fn set_value(&self, value: Value) {
        if let Ok(mut slot) = self.value.write() {
            *slot = Some(value);
        }
        if !self.retain_inputs.load(Ordering::Relaxed) {
            let dropped = std::mem::take(&mut *self.lock_inputs());
            drop_iteratively(dropped);
        }
    }
}

/// Drops a list of nodes without recursion, so releasing a very long chain cannot overflow
/// the stack.
fn drop_iteratively(mut stack: Vec<NodeRef>) {
    while let Some(node) = stack.pop() {
        if let Ok(inner) = Arc::try_unwrap(node) {
            let inputs = std::mem::take(&mut *inner.lock_inputs());
            stack.extend(inputs);
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let inputs = std::mem::take(self.inputs.get_mut().unwrap_or_else(|e| e.into_inner()));
        if !inputs.is_empty() {
            drop_iteratively(inputs);
        }
    }
}

impl std::fmt::Debug for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Node#{}({}, {:?}, {})",
            self.id,
            self.op.name(),
            self.shape,
            self.dtype
        )
    }
}
