//! Lowering of a [`Graph`] to a [`Plan`]: one rule per op kind. Every node that cannot be
//! lowered is collected, so the error lists all of them at once.

mod decompose;
pub mod elementwise;
mod matmul;
mod reduce;

use crate::plan::{Buf, BufId, BufKind, InputRef, Local, OutputRef, Phase, Placement, Plan, UFn};
use crate::CslError;
use pyflame_core::{numel, DType, MeshLayout};
use pyflame_ir::{Graph, Op, Value};
use std::collections::HashMap;

/// What a graph node became during lowering.
#[derive(Clone, Debug)]
pub(crate) enum Val {
    /// a compile-time constant (every element equal)
    Imm(f32),
    /// data the host supplies (row-major values of the node's shape)
    Host(std::sync::Arc<Vec<f32>>),
    /// a device buffer, read with `pl` (which may relabel the buffer's own placement when the
    /// per-PE data is identical, e.g. after a reshape)
    Dev {
        /// buffer
        buf: BufId,
        /// placement the value is read with
        pl: Placement,
    },
}

/// The standard placement of `shape` under `layout`: the tensor as a matrix of
/// (product of leading dims) x (last dim). A 1-D tensor is a row vector (so under a row
/// partition it is replicated on every PE, ready to broadcast against matrices).
pub fn std_placement(shape: &[usize], layout: MeshLayout) -> Placement {
    let (pr, pc) = layout.pe_grid();
    let (rows, cols) = match shape.len() {
        0 => (1, 1),
        1 => (1, shape[0]),
        n => (numel(&shape[..n - 1]), shape[n - 1]),
    };
    Placement { rows, cols, pr, pc }
}

/// Row-major f32 contents of a realized value (any strides).
pub fn value_f32(v: &Value) -> Result<Vec<f32>, String> {
    if v.dtype() != DType::Float32 {
        return Err(format!("dtype {} (only float32 is lowered)", v.dtype()));
    }
    let data = v.storage.as_slice::<f32>().map_err(|e| e.to_string())?;
    let n = v.numel();
    let mut out = Vec::with_capacity(n);
    let nd = v.shape.len();
    let mut idx = vec![0usize; nd];
    for _ in 0..n {
        let off = v.offset as isize
            + idx
                .iter()
                .zip(&v.strides)
                .map(|(&i, &st)| i as isize * st)
                .sum::<isize>();
        let Some(&x) = usize::try_from(off).ok().and_then(|o| data.get(o)) else {
            return Err("value view points outside its storage".into());
        };
        out.push(x);
        for d in (0..nd).rev() {
            idx[d] += 1;
            if idx[d] < v.shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    Ok(out)
}

/// Lowering state.
pub(crate) struct Lowerer<'g> {
    pub(crate) graph: &'g Graph,
    pub(crate) plan: Plan,
    pub(crate) vals: Vec<Option<Val>>,
    pub(crate) unsupported: Vec<String>,
    host_bufs: HashMap<(usize, Placement), BufId>,
    pub(crate) current: usize,
}

impl<'g> Lowerer<'g> {
    fn new(graph: &'g Graph) -> Self {
        Lowerer {
            graph,
            plan: Plan::default(),
            vals: vec![None; graph.len()],
            unsupported: Vec::new(),
            host_bufs: HashMap::new(),
            current: 0,
        }
    }

    /// Records that node `i` cannot be lowered.
    pub(crate) fn fail(&mut self, i: usize, why: impl std::fmt::Display) {
        let n = &self.graph.nodes[i];
        self.unsupported.push(format!(
            "%{i} {} {:?} ({}): {why}",
            n.op.name(),
            n.shape,
            n.layout
        ));
    }

    /// A new temporary buffer.
    pub(crate) fn temp(&mut self, pl: Placement, tag: &str) -> BufId {
        let id = self.plan.bufs.len();
        self.plan.bufs.push(Buf {
            name: format!("t{id}_{tag}"),
            placement: pl,
            kind: BufKind::Temp,
            node: Some(self.current),
        });
        id
    }

    /// A host-fed buffer holding node `j`'s data (already expanded to `pl`'s matrix).
    pub(crate) fn host_buf(&mut self, j: usize, data: &[f32], pl: Placement) -> BufId {
        if let Some(&b) = self.host_bufs.get(&(j, pl)) {
            return b;
        }
        let id = self.plan.bufs.len();
        self.plan.bufs.push(Buf {
            name: format!("in{}_n{j}", self.plan.inputs.len()),
            placement: pl,
            kind: BufKind::Input(data.to_vec()),
            node: Some(j),
        });
        self.plan.inputs.push(InputRef {
            buf: id,
            shape: self.graph.nodes[j].shape.clone(),
        });
        self.host_bufs.insert((j, pl), id);
        id
    }

    /// Appends a local phase on the rectangle of `pl`.
    pub(crate) fn local(&mut self, op: Local, pl: Placement) {
        self.push(Phase::Local {
            op,
            w: pl.pc,
            h: pl.pr,
        });
    }

    /// Appends a phase, noting the graph op it comes from.
    pub(crate) fn push(&mut self, ph: Phase) {
        let n = &self.graph.nodes[self.current];
        self.plan
            .notes
            .push(format!("%{} {} {:?}", self.current, n.op.name(), n.shape));
        self.plan.phases.push(ph);
    }

    /// Node `j` as a device value with placement `pl` (host data is uploaded, constants are
    /// filled). Returns `None` (after recording the reason) when `j` lives elsewhere.
    pub(crate) fn dev(&mut self, j: usize, pl: Placement) -> Option<BufId> {
        match self.vals[j].clone()? {
            Val::Dev { buf, pl: have } if have == pl => Some(buf),
            Val::Dev { pl: have, .. } => {
                self.fail(
                    self.current,
                    format!(
                        "operand %{j} is distributed as {}x{} over {}x{} PEs but {}x{} over {}x{} is needed (redistribution across PEs is not lowered)",
                        have.rows, have.cols, have.pr, have.pc, pl.rows, pl.cols, pl.pr, pl.pc
                    ),
                );
                None
            }
            Val::Host(data) => Some(self.host_buf(j, &data, pl)),
            Val::Imm(v) => {
                let b = self.temp(pl, "const");
                let n = pl.tile_len();
                self.local(Local::Fill { dst: b, v, n }, pl);
                Some(b)
            }
        }
    }

    fn leaf(&mut self, i: usize) {
        let node = &self.graph.nodes[i];
        if let Op::Full { value } = node.op {
            if !node.is_realized() {
                self.vals[i] = Some(Val::Imm(value as f32));
                return;
            }
        }
        match node.value() {
            Some(v) => match value_f32(&v) {
                Ok(data) => {
                    let uniform = data.len() == 1;
                    self.vals[i] = Some(if uniform {
                        Val::Imm(data[0])
                    } else {
                        Val::Host(std::sync::Arc::new(data))
                    });
                }
                Err(e) => self.fail(i, e),
            },
            None => self.fail(
                i,
                "leaf has no value; evaluate it (or its inputs) before code generation",
            ),
        }
    }

    fn lower_node(&mut self, i: usize) {
        self.current = i;
        let node = self.graph.nodes[i].clone();
        let ins = self.graph.input_index[i].clone();
        if ins.is_empty() {
            return self.leaf(i);
        }
        if ins.iter().any(|&j| self.vals[j].is_none()) {
            return; // an input already failed; it is reported
        }
        if node.numel() == 0 {
            return self.fail(i, "empty tensors are not lowered");
        }
        // bool tensors are 0/1 f32 masks on the device: comparisons produce them, `where`
        // and casts to float32 consume them
        let mask_op = matches!(&node.op, Op::Binary(b) if elementwise::is_comparison(*b));
        if node.dtype != DType::Float32 && !(node.dtype == DType::Bool && mask_op) {
            return self.fail(i, format!("dtype {} (only float32 is lowered)", node.dtype));
        }
        match &node.op {
            Op::Where => elementwise::where_(self, i, ins[0], ins[1], ins[2]),
            Op::Cast if matches!(self.graph.nodes[ins[0]].dtype, DType::Bool | DType::Float32) => {
                self.vals[i] = self.vals[ins[0]].clone()
            }
            Op::Unary(u) => elementwise::unary(self, i, *u, ins[0]),
            Op::Binary(b) => elementwise::binary(self, i, *b, ins[0], ins[1]),
            Op::Contiguous => self.vals[i] = self.vals[ins[0]].clone(),
            Op::Reshape => self.reshape(i, ins[0]),
            Op::Permute(p) => self.permute(i, ins[0], p.clone()),
            Op::Reduce { op, axes, .. } => reduce::reduce(self, i, *op, axes, ins[0]),
            Op::Softmax { axis, log } => reduce::softmax(self, i, *axis, *log, ins[0]),
            Op::MatMul => matmul::matmul(self, i, ins[0], ins[1]),
            other => self.fail(i, format!("no CSL lowering rule for op '{}'", other.name())),
        }
    }

    /// A reshape never moves data: a placement is a matrix view of the row-major flattened
    /// tensor, which a reshape preserves. On one PE the view is relabelled to the standard one;
    /// on a grid the old view is kept and consumers check it.
    fn reshape(&mut self, i: usize, j: usize) {
        let node = self.graph.nodes[i].clone();
        match self.vals[j].clone() {
            Some(Val::Dev { buf, pl }) => {
                let want = std_placement(&node.shape, node.layout);
                let pl = if pl.pr == 1 && pl.pc == 1 && want.pr == 1 && want.pc == 1 {
                    want
                } else {
                    pl
                };
                self.vals[i] = Some(Val::Dev { buf, pl });
            }
            other => self.vals[i] = other,
        }
    }

    fn permute(&mut self, i: usize, j: usize, p: Vec<usize>) {
        let node = self.graph.nodes[i].clone();
        match self.vals[j].clone() {
            Some(Val::Imm(v)) => self.vals[i] = Some(Val::Imm(v)),
            Some(Val::Host(data)) => {
                let src = &self.graph.nodes[j].shape;
                self.vals[i] = Some(Val::Host(std::sync::Arc::new(permute_data(&data, src, &p))));
            }
            Some(Val::Dev { buf, pl }) => {
                if p.len() != 2 || pl.pr != 1 || pl.pc != 1 {
                    return self.fail(
                        i,
                        "transpose across PEs is not lowered (only 2-D transpose on a single PE)",
                    );
                }
                let out = std_placement(&node.shape, node.layout);
                let dst = self.temp(out, "transpose");
                self.local(
                    Local::Transpose {
                        dst,
                        src: buf,
                        rows: pl.rows,
                        cols: pl.cols,
                    },
                    out,
                );
                self.vals[i] = Some(Val::Dev { buf: dst, pl: out });
            }
            None => {}
        }
    }

    fn finish_outputs(&mut self) {
        for &o in &self.graph.outputs.clone() {
            self.current = o;
            let node = self.graph.nodes[o].clone();
            let Some(v) = self.vals[o].clone() else {
                continue;
            };
            if node.dtype != DType::Float32 {
                self.fail(
                    o,
                    format!(
                        "a {} output cannot be returned (bool tensors live as 0/1 float32 masks on the device); cast it to float32 or use it in where()",
                        node.dtype
                    ),
                );
                continue;
            }
            let buf = match v {
                Val::Dev { buf, pl } if self.plan.bufs[buf].placement == pl => buf,
                Val::Dev { buf, pl } => {
                    // relabelled view: copy into a buffer with the right placement
                    let dst = self.temp(pl, "out");
                    self.local(
                        Local::Map1 {
                            f: UFn::Copy,
                            dst,
                            src: buf,
                            n: pl.tile_len(),
                        },
                        pl,
                    );
                    dst
                }
                _ => {
                    let pl = std_placement(&node.shape, node.layout);
                    match self.dev(o, pl) {
                        Some(src) => {
                            let dst = self.temp(pl, "out");
                            self.local(
                                Local::Map1 {
                                    f: UFn::Copy,
                                    dst,
                                    src,
                                    n: pl.tile_len(),
                                },
                                pl,
                            );
                            dst
                        }
                        None => continue,
                    }
                }
            };
            self.plan.outputs.push(OutputRef {
                buf,
                shape: node.shape.clone(),
            });
        }
    }
}

/// Row-major permutation of `data` (shape `src`) by `perm`.
fn permute_data(data: &[f32], src: &[usize], perm: &[usize]) -> Vec<f32> {
    let nd = src.len();
    let strides = pyflame_core::contiguous_strides(src);
    let out_shape: Vec<usize> = perm.iter().map(|&a| src[a]).collect();
    let n = data.len();
    let mut out = Vec::with_capacity(n);
    let mut idx = vec![0usize; nd];
    for _ in 0..n {
        let off: isize = (0..nd).map(|d| idx[d] as isize * strides[perm[d]]).sum();
        out.push(data[off as usize]);
        for d in (0..nd).rev() {
            idx[d] += 1;
            if idx[d] < out_shape[d] {
                break;
            }
            idx[d] = 0;
        }
    }
    out
}

/// Lowers `graph` to a plan (without routes; see [`crate::route::assign`]).
pub fn lower(graph: &Graph) -> Result<Plan, CslError> {
    // Fused normalization / attention ops are lowered as the primitives they stand for.
    let expanded = decompose::expand(graph)?;
    let graph = expanded.as_ref().unwrap_or(graph);
    let mut l = Lowerer::new(graph);
    for i in 0..graph.len() {
        l.lower_node(i);
    }
    l.finish_outputs();
    if !l.unsupported.is_empty() {
        return Err(CslError::Unsupported(l.unsupported));
    }
    let mut plan = l.plan;
    plan.width = plan.bufs.iter().map(|b| b.placement.pc).max().unwrap_or(1);
    plan.height = plan.bufs.iter().map(|b| b.placement.pr).max().unwrap_or(1);
    if plan.outputs.is_empty() {
        return Err(CslError::Invalid("the graph has no outputs".into()));
    }
    Ok(plan)
}
