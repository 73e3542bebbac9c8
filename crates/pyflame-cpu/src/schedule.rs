//! Scheduling: decides which nodes of a captured graph become buffers and compiles the rest
//! into fused elementwise programs. Schedules are cached by the graph's structural key, so a
//! training step that rebuilds the same graph pays for scheduling once.

use crate::fused::{cast_reg, kind_of, Program, ProgramBuilder, Reg};
use pyflame_core::{DType, Error, Result};
use pyflame_ir::{Graph, Op, ReduceOp};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// What a step computes.
#[derive(Debug)]
pub enum StepKind {
    /// A fused elementwise program over its inputs (graph positions).
    Fused {
        /// the program
        program: Program,
        /// graph positions of the program inputs
        inputs: Vec<usize>,
    },
    /// A reduction of a fused program's output.
    Reduce {
        /// reduction kind
        op: ReduceOp,
        /// producer of the reduced input (already cast to `acc`)
        program: Program,
        /// graph positions of the program inputs
        inputs: Vec<usize>,
        /// accumulator dtype (float32, float64 or int64)
        acc: DType,
        /// logical input shape
        in_shape: Vec<usize>,
        /// rows before the reduced block
        outer: usize,
        /// reduced elements
        r: usize,
        /// elements after the reduced block
        inner: usize,
    },
    /// A float matmul (inputs `g.input_index[matmul]`) whose product is read, directly or
    /// through the reshapes `views`, only by a fused program: the product is computed by
    /// blocks of rows and the program runs on each block while it is in cache (see
    /// [`crate::epilogue`]).
    MatmulEpilogue {
        /// the program (computes this step's node)
        program: Program,
        /// graph positions of the program inputs
        inputs: Vec<usize>,
        /// which program input reads the product
        slot: usize,
        /// graph position of the matmul
        matmul: usize,
        /// reshapes from the product to `inputs[slot]`, in application order
        views: Vec<usize>,
    },
    /// A source op (full, arange, random ...).
    Source,
    /// A view (reshape, permute, expand, slice) of input 0.
    View,
    /// Any other op with its own kernel (matmul, cat, take, softmax, argreduce, contiguous).
    Kernel,
}

/// One step: computes graph node `node`.
#[derive(Debug)]
pub struct Step {
    /// graph position computed
    pub node: usize,
    /// how
    pub kind: StepKind,
}

/// An executable plan for a captured graph.
#[derive(Debug)]
pub struct Schedule {
    /// Steps in execution order.
    pub steps: Vec<Step>,
    /// Graph positions whose buffers can be released after each step.
    pub free_after: Vec<Vec<usize>>,
}

fn is_fusable_consumer(op: &Op) -> bool {
    op.is_elementwise() || matches!(op, Op::Reduce { .. })
}

/// Builds the schedule for `g`.
pub fn build(g: &Graph) -> Result<Schedule> {
    let n = g.len();
    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (i, ins) in g.input_index.iter().enumerate() {
        for &j in ins {
            consumers[j].push(i);
        }
    }
    let mut is_output = vec![false; n];
    for &o in &g.outputs {
        is_output[o] = true;
    }
    // inline[i]: node i is computed inside its consumer's program instead of as a buffer.
    let mut inline = vec![false; n];
    for i in 0..n {
        if g.is_leaf(i) && g.nodes[i].is_realized() {
            continue;
        }
        let op = &g.nodes[i].op;
        inline[i] = match op {
            Op::Full { .. } => {
                !is_output[i]
                    && consumers[i]
                        .iter()
                        .all(|&c| is_fusable_consumer(&g.nodes[c].op))
            }
            _ if op.is_elementwise() => {
                !is_output[i]
                    && consumers[i].len() == 1
                    && is_fusable_consumer(&g.nodes[consumers[i][0]].op)
            }
            _ => false,
        };
    }
    let mut steps = Vec::new();
    for i in 0..n {
        let node = &g.nodes[i];
        if inline[i] || (g.is_leaf(i) && node.is_realized()) {
            continue;
        }
        let kind = match &node.op {
            Op::Full { .. }
            | Op::Arange { .. }
            | Op::Linspace { .. }
            | Op::Eye
            | Op::Random { .. } => StepKind::Source,
            op if op.is_elementwise() => {
                let mut c = Compiler {
                    g,
                    inline: &inline,
                    b: ProgramBuilder::default(),
                    inputs: Vec::new(),
                    memo: HashMap::new(),
                };
                let r = c.compile_node(i, true)?;
                StepKind::Fused {
                    program: c.b.finish(r),
                    inputs: c.inputs,
                }
            }
            Op::Reduce { op, axes, .. } => {
                let x = g.input_index[i][0];
                let in_shape = g.nodes[x].shape.clone();
                let acc = match kind_of(g.nodes[x].dtype) {
                    crate::fused::Kind::F32 => DType::Float32,
                    crate::fused::Kind::F64 => DType::Float64,
                    crate::fused::Kind::I64 => DType::Int64,
                };
                let mut c = Compiler {
                    g,
                    inline: &inline,
                    b: ProgramBuilder::default(),
                    inputs: Vec::new(),
                    memo: HashMap::new(),
                };
                let r = c.compile_node(x, false)?;
                let r = cast_reg(&mut c.b, r, g.nodes[x].dtype, acc);
                let (outer, r_len, inner) = match (axes.first(), axes.last()) {
                    (Some(&a), Some(&b)) => (
                        in_shape[..a].iter().product(),
                        in_shape[a..=b].iter().product(),
                        in_shape[b + 1..].iter().product(),
                    ),
                    _ => (in_shape.iter().product(), 1, 1),
                };
                StepKind::Reduce {
                    op: *op,
                    program: c.b.finish(r),
                    inputs: c.inputs,
                    acc,
                    in_shape,
                    outer,
                    r: r_len,
                    inner,
                }
            }
            op if op.is_view() => StepKind::View,
            Op::Input => return Err(Error::Invalid("internal: unrealized input node".into())),
            _ => StepKind::Kernel,
        };
        steps.push(Step { node: i, kind });
    }
    let steps = crate::epilogue::fuse(g, steps, &consumers, &is_output);
    // Liveness: free a buffer after the last step that reads it (outputs are kept by nodes).
    let mut last: Vec<Option<usize>> = vec![None; n];
    for (s, step) in steps.iter().enumerate() {
        let reads: Vec<usize> = match &step.kind {
            StepKind::Fused { inputs, .. } | StepKind::Reduce { inputs, .. } => inputs.clone(),
            StepKind::MatmulEpilogue {
                inputs,
                slot,
                matmul,
                ..
            } => inputs
                .iter()
                .enumerate()
                .filter(|&(k, _)| k != *slot)
                .map(|(_, &j)| j)
                .chain(g.input_index[*matmul].iter().copied())
                .collect(),
            _ => g.input_index[step.node].clone(),
        };
        for j in reads {
            last[j] = Some(s);
        }
    }
    let mut free_after = vec![Vec::new(); steps.len()];
    for (j, l) in last.iter().enumerate() {
        if let Some(s) = l {
            if !is_output[j] {
                free_after[*s].push(j);
            }
        }
    }
    Ok(Schedule { steps, free_after })
}

struct Compiler<'a> {
    g: &'a Graph,
    inline: &'a [bool],
    b: ProgramBuilder,
    inputs: Vec<usize>,
    memo: HashMap<usize, Reg>,
}

impl Compiler<'_> {
    /// Emits node `i` (computed here when it is the program root or inlined, loaded as an
    /// input otherwise) and returns its register, holding values of `kind_of(dtype)` already
    /// rounded to the node's dtype.
    fn compile_node(&mut self, i: usize, root: bool) -> Result<Reg> {
        if let Some(&r) = self.memo.get(&i) {
            return Ok(r);
        }
        let node = &self.g.nodes[i];
        let computed_here = node.op.is_elementwise()
            && !matches!(node.op, Op::Full { .. })
            && (self.inline[i] || root)
            && !(self.g.is_leaf(i) && node.is_realized());
        let r = if !computed_here {
            self.inputs.push(i);
            self.b.load(kind_of(node.dtype))
        } else {
            let ins = self.g.input_index[i].clone();
            let dt = |j: usize| self.g.nodes[j].dtype;
            match &node.op {
                Op::Unary(op) => {
                    let x = self.compile_node(ins[0], false)?;
                    let x = cast_reg(
                        &mut self.b,
                        x,
                        dt(ins[0]),
                        if *op == pyflame_ir::UnaryOp::LogicalNot {
                            dt(ins[0])
                        } else {
                            node.dtype
                        },
                    );
                    let r = self.b.unary(*op, x);
                    self.b.narrow(r, node.dtype);
                    r
                }
                Op::Binary(op) => {
                    let compute = if op.is_comparison() {
                        DType::promote(dt(ins[0]), dt(ins[1]))
                    } else {
                        node.dtype
                    };
                    let a = self.compile_node(ins[0], false)?;
                    let a = cast_reg(&mut self.b, a, dt(ins[0]), compute);
                    let b = self.compile_node(ins[1], false)?;
                    let b = cast_reg(&mut self.b, b, dt(ins[1]), compute);
                    let r = self.b.binary(*op, a, b);
                    self.b.narrow(r, node.dtype);
                    r
                }
                Op::Where => {
                    let c = self.compile_node(ins[0], false)?;
                    let c = cast_reg(&mut self.b, c, dt(ins[0]), DType::Bool);
                    let a = self.compile_node(ins[1], false)?;
                    let a = cast_reg(&mut self.b, a, dt(ins[1]), node.dtype);
                    let b = self.compile_node(ins[2], false)?;
                    let b = cast_reg(&mut self.b, b, dt(ins[2]), node.dtype);
                    self.b.select(c, a, b)
                }
                Op::Cast => {
                    let x = self.compile_node(ins[0], false)?;
                    cast_reg(&mut self.b, x, dt(ins[0]), node.dtype)
                }
                other => {
                    return Err(Error::Invalid(format!(
                        "internal: {} is not elementwise",
                        other.name()
                    )))
                }
            }
        };
        self.memo.insert(i, r);
        Ok(r)
    }
}

type Cache = Mutex<HashMap<Vec<u64>, Arc<Schedule>>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Most schedules kept before the cache is cleared.
const CACHE_CAPACITY: usize = 4096;

/// The cached schedule for `g`, building it on a miss.
pub fn schedule_for(g: &Graph) -> Result<Arc<Schedule>> {
    let key = g.structural_key();
    if let Some(s) = cache().lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
        return Ok(s.clone());
    }
    let s = Arc::new(build(g)?);
    let mut c = cache().lock().unwrap_or_else(|e| e.into_inner());
    if c.len() >= CACHE_CAPACITY {
        c.clear();
    }
    c.insert(key, s.clone());
    Ok(s)
}

/// Number of cached schedules (for tests and diagnostics).
pub fn cache_len() -> usize {
    cache().lock().map(|c| c.len()).unwrap_or(0)
}
