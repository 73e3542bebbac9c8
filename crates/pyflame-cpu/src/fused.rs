//! Fused elementwise programs.
//!
//! A chain of elementwise ops is compiled into a small register program that runs over the
//! output in chunks of [`CHUNK`] elements: every input element is loaded once, every
//! intermediate lives in an L1-sized register, and the result is stored once. This is how
//! `relu(a * b + c)` moves four arrays through memory instead of eight.

use crate::kernels::math;
use pyflame_core::{numel, DType, Element, Error, Result, Storage};
use pyflame_ir::{BinaryOp, UnaryOp, Value};
use rayon::prelude::*;
use std::sync::Arc;

/// Elements processed per chunk (registers stay in L1/L2).
pub const CHUNK: usize = 1024;
/// Output elements per parallel task.
const TASK: usize = 32 * CHUNK;
/// Elements times instructions from which a program runs on several threads.
const PARALLEL_WORK: usize = 1 << 20;

/// The arithmetic an instruction is computed in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// f32 (also used for float16 and bfloat16).
    F32,
    /// f64.
    F64,
    /// i64 (all integers and bool).
    I64,
}

/// The compute kind of a storage dtype.
pub fn kind_of(d: DType) -> Kind {
    match d {
        DType::Float32 | DType::Float16 | DType::BFloat16 => Kind::F32,
        DType::Float64 => Kind::F64,
        _ => Kind::I64,
    }
}

/// A register: its kind and its index in that kind's register file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reg {
    /// compute kind
    pub kind: Kind,
    /// index within the kind's register file
    pub idx: u16,
}

/// One instruction of a fused program.
#[derive(Clone, Debug, PartialEq)]
pub enum Instr {
    /// Loads program input `input` into `dst`.
    Load {
        /// destination
        dst: Reg,
        /// index into the program inputs
        input: usize,
    },
    /// `dst = op(src)`.
    Unary {
        /// destination
        dst: Reg,
        /// operation
        op: UnaryOp,
        /// source
        src: Reg,
    },
    /// `dst = op(a, b)`; `a` and `b` have the same kind.
    Binary {
        /// destination
        dst: Reg,
        /// operation
        op: BinaryOp,
        /// left operand
        a: Reg,
        /// right operand
        b: Reg,
    },
    /// `dst = cond ? a : b` (cond is an I64 register).
    Where {
        /// destination
        dst: Reg,
        /// condition
        cond: Reg,
        /// value where true
        a: Reg,
        /// value where false
        b: Reg,
    },
    /// Converts between kinds (floats to ints truncate toward zero).
    Convert {
        /// destination
        dst: Reg,
        /// source
        src: Reg,
    },
    /// `dst = (src != 0)` as I64 0/1.
    ToBool {
        /// destination (I64)
        dst: Reg,
        /// source
        src: Reg,
    },
    /// Rounds a register in place to a narrower storage dtype (float16, int8, bool...), so
    /// each op rounds like an eager framework would.
    Narrow {
        /// register rounded in place
        reg: Reg,
        /// dtype to round to
        dtype: DType,
    },
}

/// A compiled fused elementwise program.
#[derive(Clone, Debug)]
pub struct Program {
    /// Instructions in execution order.
    pub instrs: Vec<Instr>,
    /// Register counts per kind (F32, F64, I64).
    pub num_regs: [usize; 3],
    /// Register holding the result.
    pub out: Reg,
    /// Number of inputs.
    pub num_inputs: usize,
}

/// Builds programs, allocating registers.
#[derive(Default)]
pub struct ProgramBuilder {
    instrs: Vec<Instr>,
    num_regs: [usize; 3],
    num_inputs: usize,
}

fn kind_index(k: Kind) -> usize {
    match k {
        Kind::F32 => 0,
        Kind::F64 => 1,
        Kind::I64 => 2,
    }
}

impl ProgramBuilder {
    fn reg(&mut self, kind: Kind) -> Reg {
        let i = kind_index(kind);
        self.num_regs[i] += 1;
        Reg {
            kind,
            idx: (self.num_regs[i] - 1) as u16,
        }
    }

    /// Adds an input and loads it in `kind`.
    pub fn load(&mut self, kind: Kind) -> Reg {
        let dst = self.reg(kind);
        self.instrs.push(Instr::Load {
            dst,
            input: self.num_inputs,
        });
        self.num_inputs += 1;
        dst
    }

    /// Converts `r` to `kind` if needed.
    pub fn convert(&mut self, r: Reg, kind: Kind) -> Reg {
        if r.kind == kind {
            return r;
        }
        let dst = self.reg(kind);
        self.instrs.push(Instr::Convert { dst, src: r });
        dst
    }

    /// `(r != 0)`.
    pub fn to_bool(&mut self, r: Reg) -> Reg {
        let dst = self.reg(Kind::I64);
        self.instrs.push(Instr::ToBool { dst, src: r });
        dst
    }

    /// Unary op computed in `r`'s kind (LogicalNot yields I64).
    pub fn unary(&mut self, op: UnaryOp, r: Reg) -> Reg {
        let kind = if op == UnaryOp::LogicalNot {
            Kind::I64
        } else {
            r.kind
        };
        let dst = self.reg(kind);
        self.instrs.push(Instr::Unary { dst, op, src: r });
        dst
    }

    /// Binary op; operands must share a kind. Comparisons yield I64.
    pub fn binary(&mut self, op: BinaryOp, a: Reg, b: Reg) -> Reg {
        let kind = if op.is_comparison() {
            Kind::I64
        } else {
            a.kind
        };
        let dst = self.reg(kind);
        self.instrs.push(Instr::Binary { dst, op, a, b });
        dst
    }

    /// Select.
    pub fn select(&mut self, cond: Reg, a: Reg, b: Reg) -> Reg {
        let dst = self.reg(a.kind);
        self.instrs.push(Instr::Where { dst, cond, a, b });
        dst
    }

    /// Rounds `r` to `dtype` when `dtype` is narrower than its compute kind.
    pub fn narrow(&mut self, r: Reg, dtype: DType) {
        let needed = matches!(
            dtype,
            DType::Float16
                | DType::BFloat16
                | DType::Int32
                | DType::Int16
                | DType::Int8
                | DType::UInt8
                | DType::Bool
        );
        if needed {
            self.instrs.push(Instr::Narrow { reg: r, dtype });
        }
    }

    /// Finishes the program with `out` as result, reusing registers whose value is dead so
    /// long chains keep a small (cache-resident) register file.
    pub fn finish(self, out: Reg) -> Program {
        let mut last_use = std::collections::HashMap::new();
        for (i, ins) in self.instrs.iter().enumerate() {
            for r in sources(ins) {
                last_use.insert(r, i);
            }
        }
        last_use.insert(out, usize::MAX);
        let mut map: std::collections::HashMap<Reg, Reg> = std::collections::HashMap::new();
        let mut free: [Vec<u16>; 3] = Default::default();
        let mut count = [0usize; 3];
        let mut instrs = Vec::with_capacity(self.instrs.len());
        for (i, ins) in self.instrs.into_iter().enumerate() {
            let mut srcs = sources(&ins);
            // An instruction may read one register twice (`y * y`): free it once.
            srcs.sort_by_key(|r| (kind_index(r.kind), r.idx));
            srcs.dedup();
            let mut ins = ins;
            // Allocate the destination before releasing sources: dst never aliases a source.
            if let Some(d) = dest(&ins) {
                let k = kind_index(d.kind);
                let idx = free[k].pop().unwrap_or_else(|| {
                    count[k] += 1;
                    (count[k] - 1) as u16
                });
                map.insert(d, Reg { kind: d.kind, idx });
            }
            remap(&mut ins, &map);
            for r in srcs {
                if last_use.get(&r) == Some(&i) {
                    if let Some(p) = map.get(&r) {
                        free[kind_index(p.kind)].push(p.idx);
                    }
                }
            }
            instrs.push(ins);
        }
        let out = map.get(&out).copied().unwrap_or(out);
        Program {
            instrs,
            num_regs: count,
            out,
            num_inputs: self.num_inputs,
        }
    }
}

fn sources(ins: &Instr) -> Vec<Reg> {
    match *ins {
        Instr::Load { .. } => vec![],
        Instr::Unary { src, .. } | Instr::Convert { src, .. } | Instr::ToBool { src, .. } => {
            vec![src]
        }
        Instr::Binary { a, b, .. } => vec![a, b],
        Instr::Where { cond, a, b, .. } => vec![cond, a, b],
        Instr::Narrow { reg, .. } => vec![reg],
    }
}

fn dest(ins: &Instr) -> Option<Reg> {
    match *ins {
        Instr::Load { dst, .. }
        | Instr::Unary { dst, .. }
        | Instr::Binary { dst, .. }
        | Instr::Where { dst, .. }
        | Instr::Convert { dst, .. }
        | Instr::ToBool { dst, .. } => Some(dst),
        Instr::Narrow { .. } => None,
    }
}

fn remap(ins: &mut Instr, map: &std::collections::HashMap<Reg, Reg>) {
    let m = |r: &mut Reg| {
        if let Some(p) = map.get(r) {
            *r = *p;
        }
    };
    match ins {
        Instr::Load { dst, .. } => m(dst),
        Instr::Unary { dst, src, .. }
        | Instr::Convert { dst, src }
        | Instr::ToBool { dst, src } => {
            m(dst);
            m(src)
        }
        Instr::Binary { dst, a, b, .. } => {
            m(dst);
            m(a);
            m(b)
        }
        Instr::Where { dst, cond, a, b } => {
            m(dst);
            m(cond);
            m(a);
            m(b)
        }
        Instr::Narrow { reg, .. } => m(reg),
    }
}

/// A program input at run time.
#[derive(Clone, Debug)]
pub enum Input {
    /// A realized tensor broadcast to the program's output shape.
    Tensor(Value),
    /// A scalar (a `full` node's value).
    Scalar(f64),
}

/// How one input is read.
enum Loader<'a> {
    Scalar(f64),
    Contiguous {
        storage: &'a Storage,
        offset: usize,
    },
    /// A strided view; `shape`/`strides` are the output's, with adjacent axes that are
    /// contiguous with each other merged (so inner runs are long).
    Strided {
        storage: &'a Storage,
        offset: usize,
        shape: Vec<usize>,
        strides: Vec<isize>,
    },
}

/// Broadcast strides of `v` against `out_shape` (`v`'s shape must broadcast to it).
pub fn broadcast_strides(v: &Value, out_shape: &[usize]) -> Result<Vec<isize>> {
    let nd = out_shape.len();
    if v.shape.len() > nd {
        return Err(Error::Shape(format!(
            "cannot broadcast {:?} to {:?}",
            v.shape, out_shape
        )));
    }
    let lead = nd - v.shape.len();
    let mut strides = vec![0isize; nd];
    for i in 0..v.shape.len() {
        let (d, o) = (v.shape[i], out_shape[lead + i]);
        if d == o {
            strides[lead + i] = if d == 1 { 0 } else { v.strides[i] };
        } else if d != 1 {
            return Err(Error::Shape(format!(
                "cannot broadcast {:?} to {:?}",
                v.shape, out_shape
            )));
        }
    }
    Ok(strides)
}

fn make_loader<'a>(input: &'a Input, out_shape: &[usize]) -> Result<Loader<'a>> {
    match input {
        Input::Scalar(v) => Ok(Loader::Scalar(*v)),
        Input::Tensor(v) => {
            let strides = broadcast_strides(v, out_shape)?;
            // Bounds check: the furthest element reached must lie inside the storage.
            let mut max = v.offset as isize;
            for (s, &d) in strides.iter().zip(out_shape) {
                if d == 0 {
                    return Ok(Loader::Scalar(0.0));
                }
                if *s < 0 {
                    return Err(Error::Invalid("negative strides are not supported".into()));
                }
                max += s * (d as isize - 1);
            }
            if numel(out_shape) > 0 && max as usize >= v.storage.len() {
                return Err(Error::Invalid(format!(
                    "view out of bounds: element {max} of a storage of {}",
                    v.storage.len()
                )));
            }
            let contiguous = {
                let mut expect = 1isize;
                let mut ok = true;
                for i in (0..out_shape.len()).rev() {
                    if out_shape[i] != 1 && strides[i] != expect {
                        ok = false;
                        break;
                    }
                    expect *= out_shape[i] as isize;
                }
                ok
            };
            if strides
                .iter()
                .zip(out_shape)
                .all(|(&s, &d)| s == 0 || d == 1)
            {
                // Every element is the same one.
                let s = &*v.storage;
                let x = pyflame_core::dispatch_dtype!(s.dtype(), T => {
                    s.as_slice::<T>()?.get(v.offset).map(|e| e.to_f64())
                });
                return Ok(Loader::Scalar(x.unwrap_or(0.0)));
            }
            if contiguous {
                Ok(Loader::Contiguous {
                    storage: &v.storage,
                    offset: v.offset,
                })
            } else {
                let (shape, strides) = collapse(out_shape, &strides);
                Ok(Loader::Strided {
                    storage: &v.storage,
                    offset: v.offset,
                    shape,
                    strides,
                })
            }
        }
    }
}

/// Merges adjacent axes that are contiguous with each other (`stride[i] == stride[i+1] *
/// shape[i+1]`, which includes runs of broadcast axes) and drops size-1 axes, preserving the
/// row-major element order.
fn collapse(shape: &[usize], strides: &[isize]) -> (Vec<usize>, Vec<isize>) {
    let mut cs: Vec<usize> = Vec::with_capacity(shape.len());
    let mut cst: Vec<isize> = Vec::with_capacity(shape.len());
    for (&d, &st) in shape.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        if let (Some(last_d), Some(last_st)) = (cs.last_mut(), cst.last_mut()) {
            if *last_st == st * d as isize {
                *last_d *= d;
                *last_st = st;
                continue;
            }
        }
        cs.push(d);
        cst.push(st);
    }
    if cs.is_empty() {
        cs.push(1);
        cst.push(0);
    }
    (cs, cst)
}

/// Compute-side element types of registers.
trait Compute: Copy + Default + Send + Sync + 'static {
    fn from_elem<T: Element>(x: T) -> Self;
    fn from_f64(x: f64) -> Self;
}

impl Compute for f32 {
    #[inline(always)]
    fn from_elem<T: Element>(x: T) -> Self {
        x.to_f32()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as f32
    }
}
impl Compute for f64 {
    #[inline(always)]
    fn from_elem<T: Element>(x: T) -> Self {
        x.to_f64()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x
    }
}
impl Compute for i64 {
    #[inline(always)]
    fn from_elem<T: Element>(x: T) -> Self {
        x.to_i64()
    }
    #[inline(always)]
    fn from_f64(x: f64) -> Self {
        x as i64
    }
}

#[inline(always)]
fn convert_slice<T: Element, C: Compute>(src: &[T], dst: &mut [C]) {
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = C::from_elem(s);
    }
}

/// Reads elements `[start, start + dst.len())` (row-major over `shape`) of a strided view.
fn gather_strided<T: Element, C: Compute>(
    data: &[T],
    offset: usize,
    strides: &[isize],
    shape: &[usize],
    start: usize,
    dst: &mut [C],
) {
    let nd = shape.len();
    let mut idx = vec![0usize; nd];
    let mut rem = start;
    for i in (0..nd).rev() {
        idx[i] = rem % shape[i];
        rem /= shape[i];
    }
    let mut pos: isize = offset as isize
        + idx
            .iter()
            .zip(strides)
            .map(|(&i, &s)| i as isize * s)
            .sum::<isize>();
    let inner = shape[nd - 1];
    let inner_stride = strides[nd - 1];
    let mut written = 0;
    while written < dst.len() {
        let run = (inner - idx[nd - 1]).min(dst.len() - written);
        let out = &mut dst[written..written + run];
        if inner_stride == 1 {
            convert_slice(&data[pos as usize..pos as usize + run], out);
        } else if inner_stride == 0 {
            out.fill(C::from_elem(data[pos as usize]));
        } else {
            let mut p = pos;
            for o in out.iter_mut() {
                *o = C::from_elem(data[p as usize]);
                p += inner_stride;
            }
        }
        written += run;
        // Advance the multi-index by `run`.
        idx[nd - 1] += run;
        pos += inner_stride * run as isize;
        let mut d = nd - 1;
        while idx[d] == shape[d] && d > 0 {
            pos -= strides[d] * shape[d] as isize;
            idx[d] = 0;
            d -= 1;
            idx[d] += 1;
            pos += strides[d];
        }
    }
}

fn load_into<C: Compute>(loader: &Loader, start: usize, dst: &mut [C]) -> Result<()> {
    match loader {
        Loader::Scalar(v) => dst.fill(C::from_f64(*v)),
        Loader::Contiguous { storage, offset } => {
            pyflame_core::dispatch_dtype!(storage.dtype(), T => {
                let s = storage.as_slice::<T>()?;
                convert_slice(&s[offset + start..offset + start + dst.len()], dst);
            })
        }
        Loader::Strided {
            storage,
            offset,
            shape,
            strides,
        } => {
            pyflame_core::dispatch_dtype!(storage.dtype(), T => {
                gather_strided(storage.as_slice::<T>()?, *offset, strides, shape, start, dst);
            })
        }
    }
    Ok(())
}

/// Per-thread register files.
pub struct Scratch {
    f32s: Vec<f32>,
    f64s: Vec<f64>,
    i64s: Vec<i64>,
    stride: usize,
}

impl Scratch {
    /// Register files sized for `p`, for chunks of at most `max_len` elements.
    pub fn new(p: &Program, max_len: usize) -> Self {
        let stride = max_len.clamp(1, CHUNK);
        Scratch {
            f32s: vec![0.0; p.num_regs[0] * stride],
            f64s: vec![0.0; p.num_regs[1] * stride],
            i64s: vec![0; p.num_regs[2] * stride],
            stride,
        }
    }
}

/// Raw register file pointers: instructions read and write distinct registers of one file,
/// which the borrow checker cannot see through a single `Vec`.
struct Files {
    f32s: *mut f32,
    f64s: *mut f64,
    i64s: *mut i64,
    stride: usize,
}

// Handing out `&mut` from `&self` is the point of this type: it stands in for an
// `UnsafeCell` over the scratch buffers, and each caller upholds the aliasing rules.
#[allow(clippy::mut_from_ref)]
impl Files {
    /// # Safety
    /// `r` must be a register of the program the scratch was sized for, and no other live
    /// reference may alias it mutably.
    #[inline(always)]
    unsafe fn f32(&self, r: Reg, len: usize) -> &mut [f32] {
        std::slice::from_raw_parts_mut(self.f32s.add(r.idx as usize * self.stride), len)
    }
    #[inline(always)]
    unsafe fn f64(&self, r: Reg, len: usize) -> &mut [f64] {
        std::slice::from_raw_parts_mut(self.f64s.add(r.idx as usize * self.stride), len)
    }
    #[inline(always)]
    unsafe fn i64(&self, r: Reg, len: usize) -> &mut [i64] {
        std::slice::from_raw_parts_mut(self.i64s.add(r.idx as usize * self.stride), len)
    }
}

/// Error flags raised by integer kernels (division by zero, negative powers).
#[derive(Default)]
struct Flags {
    int_div_zero: bool,
    neg_int_pow: bool,
}

macro_rules! float_unary {
    ($T:ty, $op:expr, $s:expr, $d:expr, $exp:path, $log:path, $tanh:path, $sig:path, $silu:path,
     $gelu:path, $gelu_t:path, $erf:path, $sin:path, $cos:path) => {{
        let (s, d): (&[$T], &mut [$T]) = ($s, $d);
        match $op {
            UnaryOp::Neg => d.iter_mut().zip(s).for_each(|(o, &x)| *o = -x),
            UnaryOp::Abs => d.iter_mut().zip(s).for_each(|(o, &x)| *o = x.abs()),
            UnaryOp::Sqrt => d.iter_mut().zip(s).for_each(|(o, &x)| *o = x.sqrt()),
            UnaryOp::Relu => d.iter_mut().zip(s).for_each(|(o, &x)| {
                *o = if x > 0.0 {
                    x
                } else if x.is_nan() {
                    x
                } else {
                    0.0
                }
            }),
            UnaryOp::Floor => d.iter_mut().zip(s).for_each(|(o, &x)| *o = x.floor()),
            UnaryOp::Ceil => d.iter_mut().zip(s).for_each(|(o, &x)| *o = x.ceil()),
            UnaryOp::Round => d
                .iter_mut()
                .zip(s)
                .for_each(|(o, &x)| *o = x.round_ties_even()),
            UnaryOp::Sign => d.iter_mut().zip(s).for_each(|(o, &x)| {
                *o = if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    x
                }
            }),
            UnaryOp::Reciprocal => d.iter_mut().zip(s).for_each(|(o, &x)| *o = 1.0 / x),
            UnaryOp::LogicalNot => unreachable!("logical_not writes an I64 register"),
            other => {
                d.copy_from_slice(s);
                match other {
                    UnaryOp::Exp => $exp(d),
                    UnaryOp::Log => $log(d),
                    UnaryOp::Tanh => $tanh(d),
                    UnaryOp::Sigmoid => $sig(d),
                    UnaryOp::Silu => $silu(d),
                    UnaryOp::Gelu => $gelu(d),
                    UnaryOp::GeluTanh => $gelu_t(d),
                    UnaryOp::Erf => $erf(d),
                    UnaryOp::Sin => $sin(d),
                    UnaryOp::Cos => $cos(d),
                    _ => unreachable!(),
                }
            }
        }
    }};
}

macro_rules! float_binary {
    ($T:ty, $op:expr, $a:expr, $b:expr, $files:expr, $dst:expr, $len:expr) => {{
        let (a, b): (&[$T], &[$T]) = ($a, $b);
        macro_rules! each {
            ($f:expr) => {{
                // SAFETY: dst is a register distinct from a and b.
                let d: &mut [$T] = $files($dst.0, $len);
                d.iter_mut()
                    .zip(a.iter().zip(b))
                    .for_each(|(o, (&x, &y))| *o = $f(x, y));
            }};
        }
        macro_rules! cmp {
            ($f:expr) => {{
                // SAFETY: as above (the destination is an I64 register).
                let d: &mut [i64] = $dst.1.i64($dst.0, $len);
                d.iter_mut()
                    .zip(a.iter().zip(b))
                    .for_each(|(o, (&x, &y))| *o = $f(x, y) as i64);
            }};
        }
        let _ = &$dst;
        match $op {
            BinaryOp::Add => each!(|x: $T, y: $T| x + y),
            BinaryOp::Sub => each!(|x: $T, y: $T| x - y),
            BinaryOp::Mul => each!(|x: $T, y: $T| x * y),
            BinaryOp::Div => each!(|x: $T, y: $T| x / y),
            BinaryOp::FloorDiv => each!(|x: $T, y: $T| (x / y).floor()),
            BinaryOp::Rem => each!(|x: $T, y: $T| {
                let r = x % y;
                if r != 0.0 && ((r < 0.0) != (y < 0.0)) {
                    r + y
                } else {
                    r
                }
            }),
            BinaryOp::Pow => each!(|x: $T, y: $T| x.powf(y)),
            BinaryOp::Maximum => each!(|x: $T, y: $T| if x.is_nan() || y.is_nan() {
                <$T>::NAN
            } else if x > y {
                x
            } else {
                y
            }),
            BinaryOp::Minimum => each!(|x: $T, y: $T| if x.is_nan() || y.is_nan() {
                <$T>::NAN
            } else if x < y {
                x
            } else {
                y
            }),
            BinaryOp::Eq => cmp!(|x: $T, y: $T| x == y),
            BinaryOp::Ne => cmp!(|x: $T, y: $T| x != y),
            BinaryOp::Lt => cmp!(|x: $T, y: $T| x < y),
            BinaryOp::Le => cmp!(|x: $T, y: $T| x <= y),
            BinaryOp::Gt => cmp!(|x: $T, y: $T| x > y),
            BinaryOp::Ge => cmp!(|x: $T, y: $T| x >= y),
            BinaryOp::And | BinaryOp::Or | BinaryOp::Xor => {
                return Err(Error::DType(
                    "bitwise ops are not defined for floating point tensors".into(),
                ))
            }
        }
    }};
}

fn narrow_f32(d: &mut [f32], dtype: DType) {
    match dtype {
        DType::Float16 => d
            .iter_mut()
            .for_each(|x| *x = half::f16::from_f32(*x).to_f32()),
        DType::BFloat16 => d
            .iter_mut()
            .for_each(|x| *x = half::bf16::from_f32(*x).to_f32()),
        _ => {}
    }
}

fn narrow_i64(d: &mut [i64], dtype: DType) {
    match dtype {
        DType::Int32 => d.iter_mut().for_each(|x| *x = *x as i32 as i64),
        DType::Int16 => d.iter_mut().for_each(|x| *x = *x as i16 as i64),
        DType::Int8 => d.iter_mut().for_each(|x| *x = *x as i8 as i64),
        DType::UInt8 => d.iter_mut().for_each(|x| *x = *x as u8 as i64),
        DType::Bool => d.iter_mut().for_each(|x| *x = (*x != 0) as i64),
        _ => {}
    }
}

impl Program {
    /// Runs the program for output elements `[start, start + len)` (`len <= CHUNK`),
    /// leaving the result in the `out` register of `scratch`. Dispatches at run time to a
    /// copy compiled for AVX2+FMA when the CPU has it.
    #[inline]
    fn run_chunk(
        &self,
        loaders: &[Loader],
        shape: &[usize],
        start: usize,
        len: usize,
        scratch: &mut Scratch,
        flags: &mut Flags,
    ) -> Result<()> {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            return unsafe { self.run_chunk_avx2(loaders, shape, start, len, scratch, flags) };
        }
        self.run_chunk_body(loaders, shape, start, len, scratch, flags)
    }

    /// [`Program::run_chunk`] compiled with AVX2 and FMA enabled.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2,fma")]
    unsafe fn run_chunk_avx2(
        &self,
        loaders: &[Loader],
        shape: &[usize],
        start: usize,
        len: usize,
        scratch: &mut Scratch,
        flags: &mut Flags,
    ) -> Result<()> {
        self.run_chunk_body(loaders, shape, start, len, scratch, flags)
    }

    #[inline(always)]
    fn run_chunk_body(
        &self,
        loaders: &[Loader],
        _shape: &[usize],
        start: usize,
        len: usize,
        scratch: &mut Scratch,
        flags: &mut Flags,
    ) -> Result<()> {
        let files = Files {
            f32s: scratch.f32s.as_mut_ptr(),
            f64s: scratch.f64s.as_mut_ptr(),
            i64s: scratch.i64s.as_mut_ptr(),
            stride: scratch.stride,
        };
        // SAFETY (for all register accesses below): the builder gives every instruction a
        // fresh destination register, distinct from its sources, and all indices are within
        // the scratch sized by `Scratch::new(self)`.
        unsafe {
            for ins in &self.instrs {
                match *ins {
                    Instr::Load { dst, input } => {
                        let l = &loaders[input];
                        match dst.kind {
                            Kind::F32 => load_into(l, start, files.f32(dst, len))?,
                            Kind::F64 => load_into(l, start, files.f64(dst, len))?,
                            Kind::I64 => load_into(l, start, files.i64(dst, len))?,
                        }
                    }
                    Instr::Unary { dst, op, src } => match (src.kind, op) {
                        (_, UnaryOp::LogicalNot) => {
                            let d = files.i64(dst, len);
                            match src.kind {
                                Kind::F32 => d
                                    .iter_mut()
                                    .zip(files.f32(src, len).iter())
                                    .for_each(|(o, &x)| *o = (x == 0.0) as i64),
                                Kind::F64 => d
                                    .iter_mut()
                                    .zip(files.f64(src, len).iter())
                                    .for_each(|(o, &x)| *o = (x == 0.0) as i64),
                                Kind::I64 => d
                                    .iter_mut()
                                    .zip(files.i64(src, len).iter())
                                    .for_each(|(o, &x)| *o = (x == 0) as i64),
                            }
                        }
                        (Kind::F32, op) => float_unary!(
                            f32,
                            op,
                            files.f32(src, len),
                            files.f32(dst, len),
                            math::exp_f32,
                            math::log_f32,
                            math::tanh_f32,
                            math::sigmoid_f32,
                            math::silu_f32,
                            math::gelu_f32,
                            math::gelu_tanh_f32,
                            math::erf_f32,
                            math::sin_f32,
                            math::cos_f32
                        ),
                        (Kind::F64, op) => float_unary!(
                            f64,
                            op,
                            files.f64(src, len),
                            files.f64(dst, len),
                            math::exp_f64,
                            math::log_f64,
                            math::tanh_f64,
                            math::sigmoid_f64,
                            math::silu_f64,
                            math::gelu_f64,
                            math::gelu_tanh_f64,
                            math::erf_f64,
                            math::sin_f64,
                            math::cos_f64
                        ),
                        (Kind::I64, op) => {
                            let (s, d) = (files.i64(src, len), files.i64(dst, len));
                            match op {
                                UnaryOp::Neg => d
                                    .iter_mut()
                                    .zip(s.iter())
                                    .for_each(|(o, &x)| *o = x.wrapping_neg()),
                                UnaryOp::Abs => d
                                    .iter_mut()
                                    .zip(s.iter())
                                    .for_each(|(o, &x)| *o = x.wrapping_abs()),
                                UnaryOp::Relu => {
                                    d.iter_mut().zip(s.iter()).for_each(|(o, &x)| *o = x.max(0))
                                }
                                UnaryOp::Sign => d
                                    .iter_mut()
                                    .zip(s.iter())
                                    .for_each(|(o, &x)| *o = x.signum()),
                                UnaryOp::Floor | UnaryOp::Ceil | UnaryOp::Round => {
                                    d.copy_from_slice(s)
                                }
                                other => {
                                    return Err(Error::DType(format!(
                                        "{} is not defined for integer tensors",
                                        other.name()
                                    )))
                                }
                            }
                        }
                    },
                    Instr::Binary { dst, op, a, b } => match a.kind {
                        Kind::F32 => {
                            let fa: &[f32] = files.f32(a, len);
                            let fb: &[f32] = files.f32(b, len);
                            let w = (dst, &files);
                            float_binary!(f32, op, fa, fb, |r: Reg, n| w.1.f32(r, n), w, len)
                        }
                        Kind::F64 => {
                            let fa: &[f64] = files.f64(a, len);
                            let fb: &[f64] = files.f64(b, len);
                            let w = (dst, &files);
                            float_binary!(f64, op, fa, fb, |r: Reg, n| w.1.f64(r, n), w, len)
                        }
                        Kind::I64 => {
                            let (x, y, d) =
                                (files.i64(a, len), files.i64(b, len), files.i64(dst, len));
                            let it = d.iter_mut().zip(x.iter().zip(y.iter()));
                            match op {
                                BinaryOp::Add => {
                                    it.for_each(|(o, (&p, &q))| *o = p.wrapping_add(q))
                                }
                                BinaryOp::Sub => {
                                    it.for_each(|(o, (&p, &q))| *o = p.wrapping_sub(q))
                                }
                                BinaryOp::Mul => {
                                    it.for_each(|(o, (&p, &q))| *o = p.wrapping_mul(q))
                                }
                                BinaryOp::Div | BinaryOp::FloorDiv => {
                                    it.for_each(|(o, (&p, &q))| {
                                        if q == 0 {
                                            flags.int_div_zero = true;
                                            *o = 0;
                                        } else {
                                            let r = p.wrapping_div(q);
                                            *o = if (p.wrapping_rem(q) != 0) && ((p < 0) != (q < 0))
                                            {
                                                r - 1
                                            } else {
                                                r
                                            };
                                        }
                                    })
                                }
                                BinaryOp::Rem => it.for_each(|(o, (&p, &q))| {
                                    if q == 0 {
                                        flags.int_div_zero = true;
                                        *o = 0;
                                    } else {
                                        let r = p.wrapping_rem(q);
                                        *o = if r != 0 && ((r < 0) != (q < 0)) {
                                            r + q
                                        } else {
                                            r
                                        };
                                    }
                                }),
                                BinaryOp::Pow => it.for_each(|(o, (&p, &q))| {
                                    if q < 0 {
                                        if p == 1 {
                                            *o = 1
                                        } else if p == -1 {
                                            *o = if q % 2 == 0 { 1 } else { -1 }
                                        } else {
                                            flags.neg_int_pow = true;
                                            *o = 0
                                        }
                                    } else {
                                        *o = p.wrapping_pow(q.min(u32::MAX as i64) as u32);
                                    }
                                }),
                                BinaryOp::Maximum => it.for_each(|(o, (&p, &q))| *o = p.max(q)),
                                BinaryOp::Minimum => it.for_each(|(o, (&p, &q))| *o = p.min(q)),
                                BinaryOp::Eq => it.for_each(|(o, (&p, &q))| *o = (p == q) as i64),
                                BinaryOp::Ne => it.for_each(|(o, (&p, &q))| *o = (p != q) as i64),
                                BinaryOp::Lt => it.for_each(|(o, (&p, &q))| *o = (p < q) as i64),
                                BinaryOp::Le => it.for_each(|(o, (&p, &q))| *o = (p <= q) as i64),
                                BinaryOp::Gt => it.for_each(|(o, (&p, &q))| *o = (p > q) as i64),
                                BinaryOp::Ge => it.for_each(|(o, (&p, &q))| *o = (p >= q) as i64),
                                BinaryOp::And => it.for_each(|(o, (&p, &q))| *o = p & q),
                                BinaryOp::Or => it.for_each(|(o, (&p, &q))| *o = p | q),
                                BinaryOp::Xor => it.for_each(|(o, (&p, &q))| *o = p ^ q),
                            }
                        }
                    },
                    Instr::Where { dst, cond, a, b } => {
                        let c = files.i64(cond, len);
                        match dst.kind {
                            Kind::F32 => {
                                let (x, y, d) =
                                    (files.f32(a, len), files.f32(b, len), files.f32(dst, len));
                                for i in 0..len {
                                    d[i] = if c[i] != 0 { x[i] } else { y[i] }
                                }
                            }
                            Kind::F64 => {
                                let (x, y, d) =
                                    (files.f64(a, len), files.f64(b, len), files.f64(dst, len));
                                for i in 0..len {
                                    d[i] = if c[i] != 0 { x[i] } else { y[i] }
                                }
                            }
                            Kind::I64 => {
                                let (x, y, d) =
                                    (files.i64(a, len), files.i64(b, len), files.i64(dst, len));
                                for i in 0..len {
                                    d[i] = if c[i] != 0 { x[i] } else { y[i] }
                                }
                            }
                        }
                    }
                    Instr::Convert { dst, src } => match (src.kind, dst.kind) {
                        (Kind::F32, Kind::F64) => files
                            .f64(dst, len)
                            .iter_mut()
                            .zip(files.f32(src, len).iter())
                            .for_each(|(o, &x)| *o = x as f64),
                        (Kind::F32, Kind::I64) => files
                            .i64(dst, len)
                            .iter_mut()
                            .zip(files.f32(src, len).iter())
                            .for_each(|(o, &x)| *o = x as i64),
                        (Kind::F64, Kind::F32) => files
                            .f32(dst, len)
                            .iter_mut()
                            .zip(files.f64(src, len).iter())
                            .for_each(|(o, &x)| *o = x as f32),
                        (Kind::F64, Kind::I64) => files
                            .i64(dst, len)
                            .iter_mut()
                            .zip(files.f64(src, len).iter())
                            .for_each(|(o, &x)| *o = x as i64),
                        (Kind::I64, Kind::F32) => files
                            .f32(dst, len)
                            .iter_mut()
                            .zip(files.i64(src, len).iter())
                            .for_each(|(o, &x)| *o = x as f32),
                        (Kind::I64, Kind::F64) => files
                            .f64(dst, len)
                            .iter_mut()
                            .zip(files.i64(src, len).iter())
                            .for_each(|(o, &x)| *o = x as f64),
                        _ => {
                            return Err(Error::Invalid(
                                "internal: conversion between equal kinds".into(),
                            ))
                        }
                    },
                    Instr::ToBool { dst, src } => {
                        let d = files.i64(dst, len);
                        match src.kind {
                            Kind::F32 => d
                                .iter_mut()
                                .zip(files.f32(src, len).iter())
                                .for_each(|(o, &x)| *o = (x != 0.0) as i64),
                            Kind::F64 => d
                                .iter_mut()
                                .zip(files.f64(src, len).iter())
                                .for_each(|(o, &x)| *o = (x != 0.0) as i64),
                            Kind::I64 => d
                                .iter_mut()
                                .zip(files.i64(src, len).iter())
                                .for_each(|(o, &x)| *o = (x != 0) as i64),
                        }
                    }
                    Instr::Narrow { reg, dtype } => match reg.kind {
                        Kind::F32 => narrow_f32(files.f32(reg, len), dtype),
                        Kind::I64 => narrow_i64(files.i64(reg, len), dtype),
                        Kind::F64 => {}
                    },
                }
            }
        }
        Ok(())
    }

    /// Evaluates the program into a new contiguous tensor of `shape` and `dtype`.
    pub fn evaluate(&self, inputs: &[Input], shape: &[usize], dtype: DType) -> Result<Value> {
        let n = numel(shape);
        let mut storage = Storage::uninit(dtype, n)?;
        let loaders = inputs
            .iter()
            .map(|i| make_loader(i, shape))
            .collect::<Result<Vec<_>>>()?;
        if loaders.len() != self.num_inputs {
            return Err(Error::Invalid(
                "internal: program input count mismatch".into(),
            ));
        }
        pyflame_core::dispatch_dtype!(dtype, T => {
            let out = storage.as_mut_slice::<T>()?;
            self.run_into(&loaders, shape, out)?;
        });
        Ok(Value::contiguous(Arc::new(storage), shape.to_vec()))
    }

    fn run_into<T: Element>(
        &self,
        loaders: &[Loader],
        shape: &[usize],
        out: &mut [T],
    ) -> Result<()> {
        let n = out.len();
        let task = |(t, block): (usize, &mut [T])| -> Result<()> {
            let mut scratch = Scratch::new(self, block.len());
            let mut flags = Flags::default();
            let base = t * TASK;
            for (c, piece) in block.chunks_mut(CHUNK).enumerate() {
                let start = base + c * CHUNK;
                self.run_chunk(loaders, shape, start, piece.len(), &mut scratch, &mut flags)?;
                self.store(&scratch, piece);
            }
            if flags.int_div_zero {
                return Err(Error::Invalid("integer division by zero".into()));
            }
            if flags.neg_int_pow {
                return Err(Error::Invalid(
                    "integers to negative integer powers are not allowed".into(),
                ));
            }
            Ok(())
        };
        // Parallel only when the work (elements x instructions) pays for waking a thread.
        if n >= 2 * TASK && n * self.instrs.len().max(1) >= PARALLEL_WORK {
            out.par_chunks_mut(TASK).enumerate().try_for_each(task)
        } else {
            out.chunks_mut(TASK).enumerate().try_for_each(task)
        }
    }

    fn store<T: Element>(&self, scratch: &Scratch, out: &mut [T]) {
        let i = self.out.idx as usize * scratch.stride;
        let len = out.len();
        match self.out.kind {
            Kind::F32 => out
                .iter_mut()
                .zip(&scratch.f32s[i..i + len])
                .for_each(|(o, &x)| *o = T::from_f32(x)),
            Kind::F64 => out
                .iter_mut()
                .zip(&scratch.f64s[i..i + len])
                .for_each(|(o, &x)| *o = T::from_f64(x)),
            Kind::I64 => out
                .iter_mut()
                .zip(&scratch.i64s[i..i + len])
                .for_each(|(o, &x)| *o = T::from_i64(x)),
        }
    }

    /// Runs the program for `[start, start + out.len())` into `out` (any length), for
    /// reductions that consume the program's output block by block.
    pub fn fill_range<T: Element>(
        &self,
        inputs: &PreparedInputs,
        start: usize,
        out: &mut [T],
    ) -> Result<()> {
        let mut scratch = Scratch::new(self, out.len());
        let mut flags = Flags::default();
        for (c, piece) in out.chunks_mut(CHUNK).enumerate() {
            self.run_chunk(
                &inputs.loaders,
                &inputs.shape,
                start + c * CHUNK,
                piece.len(),
                &mut scratch,
                &mut flags,
            )?;
            self.store(&scratch, piece);
        }
        if flags.int_div_zero {
            return Err(Error::Invalid("integer division by zero".into()));
        }
        Ok(())
    }

    /// Prepares loaders for repeated [`Program::fill_range`] calls.
    pub fn prepare<'a>(&self, inputs: &'a [Input], shape: &[usize]) -> Result<PreparedInputs<'a>> {
        let loaders = inputs
            .iter()
            .map(|i| make_loader(i, shape))
            .collect::<Result<Vec<_>>>()?;
        Ok(PreparedInputs {
            loaders,
            shape: shape.to_vec(),
        })
    }
}

/// Loaders bound to a program's inputs and logical shape.
pub struct PreparedInputs<'a> {
    loaders: Vec<Loader<'a>>,
    shape: Vec<usize>,
}

// SAFETY: loaders only hold shared references to immutable storage.
unsafe impl Sync for PreparedInputs<'_> {}

/// Copies any value into a new contiguous value of `dtype` (cast and/or gather).
pub fn materialize(v: &Value, dtype: DType) -> Result<Value> {
    if v.dtype() == dtype && v.is_whole_storage() {
        return Ok(v.clone());
    }
    let mut b = ProgramBuilder::default();
    let r = b.load(kind_of(v.dtype()));
    let r = cast_reg(&mut b, r, v.dtype(), dtype);
    let p = b.finish(r);
    p.evaluate(&[Input::Tensor(v.clone())], &v.shape, dtype)
}

/// Emits the instructions converting a register holding `from` data to `to` data.
pub fn cast_reg(b: &mut ProgramBuilder, r: Reg, from: DType, to: DType) -> Reg {
    if from == to {
        return r;
    }
    let out = if to == DType::Bool {
        b.to_bool(r)
    } else {
        b.convert(r, kind_of(to))
    };
    b.narrow(out, to);
    out
}
