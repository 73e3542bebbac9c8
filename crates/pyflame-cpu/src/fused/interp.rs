//! The chunk interpreter: runs a program's instructions over one chunk of registers.

use super::load::{load_into, Loader};
use super::{Instr, Kind, Program, Reg, CHUNK};
use crate::kernels::math;
use pyflame_core::{DType, Error, Result};
use pyflame_ir::{BinaryOp, UnaryOp};

/// Per-thread register files.
pub struct Scratch {
    pub(super) f32s: Vec<f32>,
    pub(super) f64s: Vec<f64>,
    pub(super) i64s: Vec<i64>,
    pub(super) stride: usize,
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
pub(super) struct Flags {
    pub(super) int_div_zero: bool,
    pub(super) neg_int_pow: bool,
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
    pub(super) fn run_chunk(
        &self,
        loaders: &[Loader],
        start: usize,
        len: usize,
        scratch: &mut Scratch,
        flags: &mut Flags,
    ) -> Result<()> {
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::has_avx512() {
            // SAFETY: the CPU supports the AVX-512 subsets, AVX2 and FMA (checked above).
            return unsafe { self.run_chunk_avx512(loaders, start, len, scratch, flags) };
        }
        #[cfg(target_arch = "x86_64")]
        if crate::kernels::simd::has_avx2_fma() {
            // SAFETY: the CPU supports AVX2 and FMA (checked above).
            return unsafe { self.run_chunk_avx2(loaders, start, len, scratch, flags) };
        }
        self.run_chunk_body(loaders, start, len, scratch, flags)
    }

    /// [`Program::run_chunk`] compiled with AVX-512 (F, VL, BW, DQ), AVX2 and FMA enabled.
    ///
    /// # Safety
    /// The CPU must support those instruction sets.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f,avx512vl,avx512bw,avx512dq,avx2,fma")]
    unsafe fn run_chunk_avx512(
        &self,
        loaders: &[Loader],
        start: usize,
        len: usize,
        scratch: &mut Scratch,
        flags: &mut Flags,
    ) -> Result<()> {
        self.run_chunk_body(loaders, start, len, scratch, flags)
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
        start: usize,
        len: usize,
        scratch: &mut Scratch,
        flags: &mut Flags,
    ) -> Result<()> {
        self.run_chunk_body(loaders, start, len, scratch, flags)
    }

    #[inline(always)]
    fn run_chunk_body(
        &self,
        loaders: &[Loader],
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
                        // Branch-free bit selection over zipped iterators, so it vectorizes (a
                        // plain `if` compiled to a scalar load from one of two addresses);
                        // `dst` is a register distinct from `cond`, `a` and `b`.
                        macro_rules! select {
                            ($file:ident, $U:ty, $to:expr, $from:expr) => {{
                                let (c, x, y) = (
                                    files.i64(cond, len),
                                    files.$file(a, len),
                                    files.$file(b, len),
                                );
                                files
                                    .$file(dst, len)
                                    .iter_mut()
                                    .zip(c.iter().zip(x.iter().zip(y.iter())))
                                    .for_each(|(o, (&c, (&x, &y)))| {
                                        let m = <$U>::from(c != 0).wrapping_neg();
                                        *o = $from(($to(x) & m) | ($to(y) & !m));
                                    })
                            }};
                        }
                        match dst.kind {
                            Kind::F32 => select!(f32, u32, f32::to_bits, f32::from_bits),
                            Kind::F64 => select!(f64, u64, f64::to_bits, f64::from_bits),
                            Kind::I64 => select!(i64, u64, |v: i64| v as u64, |v: u64| v as i64),
                        }
                    }
                    Instr::Convert { dst, src } => {
                        // `as` conversions between the three register kinds.
                        macro_rules! conv {
                            ($from:ident, $to:ident, $t:ty) => {
                                files
                                    .$to(dst, len)
                                    .iter_mut()
                                    .zip(files.$from(src, len).iter())
                                    .for_each(|(o, &x)| *o = x as $t)
                            };
                        }
                        match (src.kind, dst.kind) {
                            (Kind::F32, Kind::F64) => conv!(f32, f64, f64),
                            (Kind::F32, Kind::I64) => conv!(f32, i64, i64),
                            (Kind::F64, Kind::F32) => conv!(f64, f32, f32),
                            (Kind::F64, Kind::I64) => conv!(f64, i64, i64),
                            (Kind::I64, Kind::F32) => conv!(i64, f32, f32),
                            (Kind::I64, Kind::F64) => conv!(i64, f64, f64),
                            _ => {
                                return Err(Error::Invalid(
                                    "internal: conversion between equal kinds".into(),
                                ))
                            }
                        }
                    }
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
}
