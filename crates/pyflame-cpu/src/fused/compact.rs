//! Register reuse: renumbers a program's registers so dead values free their slot.

use super::{Instr, Reg};

pub(super) fn sources(ins: &Instr) -> Vec<Reg> {
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

pub(super) fn dest(ins: &Instr) -> Option<Reg> {
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

pub(super) fn remap(ins: &mut Instr, map: &std::collections::HashMap<Reg, Reg>) {
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
