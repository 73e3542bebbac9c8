//! Lowering of a [`Graph`] to a [`Plan`]: one rule per op kind. Every node that cannot be
//! lowered is collected, so the error lists all of them at once.

mod decompose;
pub mod elementwise;
mod matmul;
mod redist;
mod reduce;

use crate::plan::{Buf, BufId, BufKind, InputRef, Local, OutputRef, Phase, Placement, Plan, UFn};
use crate::CslError;
use pyflame_core::{numel, DType, Element, MeshLayout};
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

/// Row-major f32 contents of a realized float32 value (any strides).
pub fn value_f32(v: &Value) -> Result<Vec<f32>, String> {
    if v.dtype() != DType::Float32 {
        return Err(format!("dtype {} (only float32 is lowered)", v.dtype()));
    }
    value_as_f32(v)
}

/// Row-major contents of a realized value of any dtype, converted to f32 (bool as 0/1).
/// Integers must be exactly representable (|v| <= 2^24), otherwise an error says so.
pub fn value_as_f32(v: &Value) -> Result<Vec<f32>, String> {
    pyflame_core::dispatch_dtype!(v.dtype(), T => strided_f32::<T>(v))
}

fn strided_f32<T: Element>(v: &Value) -> Result<Vec<f32>, String> {
    let data = v.storage.as_slice::<T>().map_err(|e| e.to_string())?;
    let exact_needed = matches!(
        T::DTYPE,
        DType::Int64 | DType::Int32 | DType::Int16 | DType::Int8 | DType::UInt8
    );
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
        let f = x.to_f32();
        if exact_needed && f64::from(f) != x.to_f64() {
            return Err(format!(
                "{} value {} is not exactly representable in float32 (the device computes in float32)",
                T::DTYPE,
                x.to_f64()
            ));
        }
        out.push(f);
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
    /// filled, device data in another distribution is redistributed across PEs). Returns
    /// `None` after recording the reason when that is not possible.
    pub(crate) fn dev(&mut self, j: usize, pl: Placement) -> Option<BufId> {
        match self.vals[j].clone()? {
            Val::Dev { buf, pl: have } if have == pl => Some(buf),
            Val::Dev { buf, pl: have } => {
                if have.rows * have.cols != pl.rows * pl.cols {
                    self.fail(
                        self.current,
                        format!(
                            "operand %{j} is a {}x{} matrix but a {}x{} one is needed",
                            have.rows, have.cols, pl.rows, pl.cols
                        ),
                    );
                    return None;
                }
                // same row-major data, another distribution: move it across PEs
                redist::redistribute(self, buf, have, pl, crate::gather::ElemMap::flat())
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
        // any dtype is read: non-float32 leaves may only feed a cast to float32, a `where`
        // condition (bool as a 0/1 mask), or be checked by their consumer
        match node.value() {
            Some(v) => match value_as_f32(&v) {
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
        let mask_op = matches!(&node.op, Op::Binary(b) if elementwise::is_comparison(*b))
            || matches!(node.op, Op::Cast);
        if node.dtype != DType::Float32 && !(node.dtype == DType::Bool && mask_op) {
            return self.fail(i, format!("dtype {} (only float32 is lowered)", node.dtype));
        }
        // only float32 values (and 0/1 bool masks) are computed on: other dtypes are host data
        // that a cast to float32 converts
        let float_in = |k: usize| matches!(self.graph.nodes[ins[k]].dtype, DType::Float32);
        let operands_ok = match &node.op {
            Op::Cast => true,
            Op::Where => {
                matches!(self.graph.nodes[ins[0]].dtype, DType::Bool | DType::Float32)
                    && float_in(1)
                    && float_in(2)
            }
            _ => (0..ins.len()).all(float_in),
        };
        if !operands_ok {
            let dts: Vec<String> = ins
                .iter()
                .map(|&j| self.graph.nodes[j].dtype.to_string())
                .collect();
            return self.fail(
                i,
                format!(
                    "operands of dtype {} (only float32 is computed on; cast other inputs to float32 first)",
                    dts.join(", ")
                ),
            );
        }
        match &node.op {
            Op::Cast if node.dtype == DType::Bool => elementwise::to_mask(self, i, ins[0]),
            Op::Where => elementwise::where_(self, i, ins[0], ins[1], ins[2]),
            // float32 and 0/1 masks are the same on the device; other inputs are host data
            // (converted when read), so a cast to float32 is free
            Op::Cast
                if self.graph.is_leaf(ins[0])
                    || matches!(self.graph.nodes[ins[0]].dtype, DType::Bool | DType::Float32) =>
            {
                self.vals[i] = self.vals[ins[0]].clone()
            }
            Op::Unary(u) => elementwise::unary(self, i, *u, ins[0]),
            Op::Binary(b) => elementwise::binary(self, i, *b, ins[0], ins[1]),
            Op::Contiguous => self.vals[i] = self.vals[ins[0]].clone(),
            Op::Reshape => self.reshape(i, ins[0]),
            Op::Permute(p) => self.permute(i, ins[0], p.clone()),
            Op::Slice { starts, steps } => {
                let src = self.graph.nodes[ins[0]].shape.clone();
                let map = crate::gather::ElemMap::slice(&src, &node.shape, starts, steps);
                self.movement(i, ins[0], map)
            }
            Op::Cat { axis } => self.cat(i, &ins, *axis),
            Op::Expand => {
                let src = self.graph.nodes[ins[0]].shape.clone();
                let map = crate::gather::ElemMap::expand(&src, &node.shape);
                self.movement(i, ins[0], map)
            }
            Op::Reduce { op, axes, .. } => reduce::reduce(self, i, *op, axes, ins[0]),
            Op::Softmax { axis, log } => reduce::softmax(self, i, *axis, *log, ins[0]),
            Op::MatMul => matmul::matmul(self, i, ins[0], ins[1]),
            other => self.fail(i, format!("no CSL lowering rule for op '{}'", other.name())),
        }
    }

    /// A reshape moves no data by itself: a placement is a matrix view of the row-major
    /// flattened tensor, which a reshape preserves. On one PE the view is relabelled to the
    /// standard one; on a grid the old view is kept, and a consumer that needs another
    /// distribution gets a redistribution from [`Lowerer::dev`].
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
        if let Some(Val::Dev { buf, pl }) = self.vals[j].clone() {
            let out = std_placement(&node.shape, node.layout);
            if p.len() == 2 && pl.pr == 1 && pl.pc == 1 && out.pr == 1 && out.pc == 1 {
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
                return;
            }
        }
        let map = crate::gather::ElemMap::permute(&self.graph.nodes[j].shape, &p);
        self.movement(i, j, map);
    }

    /// Concatenation along `axis`: host and constant inputs are joined by the host; otherwise
    /// every input is redistributed into its window of one output buffer (a host input whose
    /// shape does not divide over the layout is uploaded to PE (0, 0) and moved from there).
    fn cat(&mut self, i: usize, ins: &[usize], axis: usize) {
        let node = self.graph.nodes[i].clone();
        let host = ins
            .iter()
            .all(|&j| matches!(self.vals[j], Some(Val::Host(_) | Val::Imm(_))));
        if host {
            let mut out = vec![0.0; numel(&node.shape)];
            let mut lo = 0;
            for &j in ins {
                let sh = self.graph.nodes[j].shape.clone();
                let data = match self.vals[j].clone() {
                    Some(Val::Host(d)) => d.to_vec(),
                    Some(Val::Imm(v)) => vec![v; numel(&sh)],
                    _ => return,
                };
                crate::gather::ElemMap::cat_part(&sh, &node.shape, axis, lo)
                    .apply_into(&data, &mut out);
                lo += sh[axis];
            }
            self.vals[i] = Some(Val::Host(std::sync::Arc::new(out)));
            return;
        }
        let out = std_placement(&node.shape, node.layout);
        if !out.divides() {
            return self.fail(i, elementwise::not_divisible(&out));
        }
        let dst = self.temp(out, "cat");
        let mut lo = 0;
        for &j in ins {
            let sh = self.graph.nodes[j].shape.clone();
            let (src, pl) = match self.vals[j].clone() {
                Some(Val::Dev { buf, pl }) => (buf, pl),
                _ => {
                    let mut p = std_placement(&sh, node.layout);
                    if !p.divides() {
                        p = std_placement(&sh, MeshLayout::SinglePe);
                    }
                    let Some(b) = self.dev(j, p) else { return };
                    (b, p)
                }
            };
            if numel(&sh) > 0 {
                let map = crate::gather::ElemMap::cat_part(&sh, &node.shape, axis, lo);
                if redist::redistribute_into(self, src, pl, out, map, Some(dst)).is_none() {
                    return;
                }
            }
            lo += sh[axis];
        }
        self.vals[i] = Some(Val::Dev { buf: dst, pl: out });
    }

    /// A data-movement op (permute, slice, expand) given by its element map: constants stay
    /// constants, host data is rearranged by the host, device data is redistributed across
    /// PEs (every destination element is fetched from the PE holding its source).
    fn movement(&mut self, i: usize, j: usize, map: crate::gather::ElemMap) {
        let node = self.graph.nodes[i].clone();
        match self.vals[j].clone() {
            Some(Val::Imm(v)) => self.vals[i] = Some(Val::Imm(v)),
            Some(Val::Host(data)) => {
                let out = map.apply(&data, numel(&node.shape));
                self.vals[i] = Some(Val::Host(std::sync::Arc::new(out)));
            }
            Some(Val::Dev { buf, pl }) => {
                let out = std_placement(&node.shape, node.layout);
                if let Some(dst) = redist::redistribute(self, buf, pl, out, map) {
                    self.vals[i] = Some(Val::Dev { buf: dst, pl: out });
                }
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
                        "a {} output cannot be returned ({}); cast it to float32{}",
                        node.dtype,
                        if node.dtype == DType::Bool {
                            "bool tensors live as 0/1 float32 masks on the device"
                        } else {
                            "the device computes in float32"
                        },
                        if node.dtype == DType::Bool {
                            " or use it in where()"
                        } else {
                            ""
                        }
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
