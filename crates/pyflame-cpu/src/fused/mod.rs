//! Fused elementwise programs.
//!
//! A chain of elementwise ops is compiled into a small register program that runs over the
//! output in chunks of [`CHUNK`] elements: every input element is loaded once, every
//! intermediate lives in an L1-sized register, and the result is stored once. This is how
//! `relu(a * b + c)` moves four arrays through memory instead of eight.
//!
//! Modules: [`compact`] (register reuse), [`load`] (how inputs are read), [`interp`] (the
//! chunk interpreter).

mod compact;
mod interp;
mod load;

use compact::{dest, remap, sources};
use interp::{Flags, Scratch};
pub use load::{broadcast_strides, BlockData};
use load::{make_loader, Loader};

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

/// A program input at run time.
#[derive(Clone, Debug)]
pub enum Input {
    /// A realized tensor broadcast to the program's output shape.
    Tensor(Value),
    /// A scalar (a `full` node's value).
    Scalar(f64),
}

impl Program {
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
            self.run_into(&loaders, out)?;
        });
        Ok(Value::contiguous(Arc::new(storage), shape.to_vec()))
    }

    fn run_into<T: Element>(&self, loaders: &[Loader], out: &mut [T]) -> Result<()> {
        let n = out.len();
        let task = |(t, block): (usize, &mut [T])| -> Result<()> {
            let mut scratch = Scratch::new(self, block.len());
            let mut flags = Flags::default();
            let base = t * TASK;
            for (c, piece) in block.chunks_mut(CHUNK).enumerate() {
                let start = base + c * CHUNK;
                self.run_chunk(loaders, start, piece.len(), &mut scratch, &mut flags)?;
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
        if flags.neg_int_pow {
            return Err(Error::Invalid(
                "integers to negative integer powers are not allowed".into(),
            ));
        }
        Ok(())
    }

    /// [`Program::fill_range`] with input `slot` read from `block` instead of its prepared
    /// loader: `block[0]` is flat element `block_start` of that input, and the block must cover
    /// `[start, start + out.len())`. A matmul epilogue uses this to run the program on rows
    /// of the product while they are in cache, before the product exists as a tensor.
    pub fn fill_range_with_block<T: Element>(
        &self,
        inputs: &PreparedInputs,
        slot: usize,
        block: BlockData<'_>,
        block_start: usize,
        start: usize,
        out: &mut [T],
    ) -> Result<()> {
        if slot >= inputs.loaders.len() {
            return Err(Error::Invalid(
                "internal: epilogue input out of range".into(),
            ));
        }
        let mut loaders = inputs.loaders.clone();
        loaders[slot] = Loader::Block {
            data: block,
            base: block_start,
        };
        let prepared = PreparedInputs { loaders };
        self.fill_range(&prepared, start, out)
    }

    /// Prepares loaders for repeated [`Program::fill_range`] calls.
    pub fn prepare<'a>(&self, inputs: &'a [Input], shape: &[usize]) -> Result<PreparedInputs<'a>> {
        let loaders = inputs
            .iter()
            .map(|i| make_loader(i, shape))
            .collect::<Result<Vec<_>>>()?;
        Ok(PreparedInputs { loaders })
    }
}

/// Loaders bound to a program's inputs and logical shape.
pub struct PreparedInputs<'a> {
    loaders: Vec<Loader<'a>>,
}

// SAFETY: loaders only hold shared references to immutable storage.
unsafe impl Sync for PreparedInputs<'_> {}

/// `v` as a contiguous value of `dtype`: itself when it already is one, at any offset in its
/// storage (read it through `storage[offset..offset + numel]`), a [`materialize`]d copy
/// otherwise. Keeping the value keeps its storage's identity (the packed-weight cache keys
/// on it) and skips a copy: a parameter updated by Adam is a row of the update's output.
pub fn contiguous(v: &Value, dtype: DType) -> Result<Value> {
    if v.dtype() == dtype && v.is_contiguous() {
        Ok(v.clone())
    } else {
        materialize(v, dtype)
    }
}

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
