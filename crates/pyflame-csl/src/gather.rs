//! Element-level redistribution: which source element every destination element comes from
//! (a permutation of axes or a reshape of the row-major data) and which PE tile holds it.
//! The lowering ([`crate::lower`]) uses it to decide which tiles must travel, the simulator to
//! execute a [`Gather`] and the renderer prints the same arithmetic as CSL.

use crate::plan::{BufId, Placement};

/// The source tile a [`Gather`] copies from, per axis: the PE's own coordinate or a fixed one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum At {
    /// the PE's own `px` (or `py`)
    Own,
    /// a fixed PE column (or row)
    Fixed(usize),
}

impl At {
    /// The coordinate on PE coordinate `own`.
    pub fn on(self, own: usize) -> usize {
        match self {
            At::Own => own,
            At::Fixed(v) => v,
        }
    }
}

/// Destination element (row-major index into a tensor of `dst_shape`) to source element
/// (row-major index into a tensor of `src_shape`). With an empty `perm` the row-major order
/// is kept (a reshape or a change of layout); otherwise destination axis `d` is source axis
/// `perm[d]` (a transpose / permute).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ElemMap {
    /// destination shape
    pub dst_shape: Vec<usize>,
    /// source shape
    pub src_shape: Vec<usize>,
    /// axis permutation, empty for identity of the flat order
    pub perm: Vec<usize>,
}

impl ElemMap {
    /// The same row-major data under another shape or distribution.
    pub fn flat() -> Self {
        ElemMap {
            dst_shape: Vec::new(),
            src_shape: Vec::new(),
            perm: Vec::new(),
        }
    }

    /// `(divisor, modulus, source stride)` per destination axis: the source index is
    /// `sum((f / divisor) % modulus * stride)`; empty for the identity.
    pub fn terms(&self) -> Vec<(usize, usize, usize)> {
        if self.perm.is_empty() {
            return Vec::new();
        }
        let dst_strides = pyflame_core::contiguous_strides(&self.dst_shape);
        let src_strides = pyflame_core::contiguous_strides(&self.src_shape);
        (0..self.dst_shape.len())
            .filter(|&d| self.dst_shape[d] > 1)
            .map(|d| {
                (
                    dst_strides[d] as usize,
                    self.dst_shape[d],
                    src_strides[self.perm[d]] as usize,
                )
            })
            .collect()
    }

    /// Source row-major index of destination row-major index `f`.
    pub fn src_index(&self, terms: &[(usize, usize, usize)], f: usize) -> usize {
        if self.perm.is_empty() {
            return f;
        }
        terms.iter().map(|&(dv, m, st)| (f / dv) % m * st).sum()
    }
}

/// Where the element `(i, j)` of the tile of destination PE (`x`, `y`) comes from: the
/// source PE column and row holding it and its index in that PE's tile.
pub fn source_of(
    dst: &Placement,
    src: &Placement,
    map: &ElemMap,
    terms: &[(usize, usize, usize)],
    (x, y): (usize, usize),
    (i, j): (usize, usize),
) -> (usize, usize, usize) {
    let r = if dst.rows == 1 {
        0
    } else {
        y * dst.tile_rows() + i
    };
    let c = if dst.cols == 1 {
        0
    } else {
        x * dst.tile_cols() + j
    };
    let s = map.src_index(terms, r * dst.cols + c);
    let (sr, sc) = (s / src.cols, s % src.cols);
    let (str_, stc) = (src.tile_rows(), src.tile_cols());
    // a replicated source axis: the own copy when this PE has one, else PE 0's
    let ox = if src.cols == 1 {
        if x < src.pc {
            x
        } else {
            0
        }
    } else {
        sc / stc
    };
    let oy = if src.rows == 1 {
        if y < src.pr {
            y
        } else {
            0
        }
    } else {
        sr / str_
    };
    let li = if src.rows == 1 { 0 } else { sr % str_ };
    let lj = if src.cols == 1 { 0 } else { sc % stc };
    (ox, oy, li * stc + lj)
}

/// Copies into `dst` every element whose source lies in the tile of PE (`sx`, `sy`), read from
/// `src` (that tile, or a panel holding a copy of it).
#[derive(Clone, Debug, PartialEq)]
pub struct Gather {
    /// destination buffer (tile of `dst_pl`)
    pub dst: BufId,
    /// buffer holding the source tile
    pub src: BufId,
    /// destination distribution
    pub dst_pl: Placement,
    /// source distribution (the tile geometry of `src`)
    pub src_pl: Placement,
    /// element map
    pub map: ElemMap,
    /// source PE column
    pub sx: At,
    /// source PE row
    pub sy: At,
}

impl Gather {
    /// Executes the gather on PE (`x`, `y`) (simulator semantics).
    pub fn exec(&self, x: usize, y: usize, mem: &mut [Vec<f32>]) {
        let (sx, sy) = (self.sx.on(x), self.sy.on(y));
        let terms = self.map.terms();
        let (tr, tc) = (self.dst_pl.tile_rows(), self.dst_pl.tile_cols());
        let mut out = std::mem::take(&mut mem[self.dst]);
        for i in 0..tr {
            for j in 0..tc {
                let (ox, oy, k) = source_of(
                    &self.dst_pl,
                    &self.src_pl,
                    &self.map,
                    &terms,
                    (x, y),
                    (i, j),
                );
                if (ox, oy) == (sx, sy) {
                    out[i * tc + j] = mem[self.src][k];
                }
            }
        }
        mem[self.dst] = out;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transpose_sources() {
        // 4x4 matrix on a 2x2 grid, transposed: element (0, 1) of PE (1, 0)'s tile is
        // out[0][3] = in[3][0], held by PE (0, 1) at (1, 0) of its tile.
        let pl = Placement {
            rows: 4,
            cols: 4,
            pr: 2,
            pc: 2,
        };
        let map = ElemMap {
            dst_shape: vec![4, 4],
            src_shape: vec![4, 4],
            perm: vec![1, 0],
        };
        let t = map.terms();
        assert_eq!(source_of(&pl, &pl, &map, &t, (1, 0), (0, 1)), (0, 1, 2));
    }

    #[test]
    fn flat_map_is_identity() {
        let m = ElemMap::flat();
        assert_eq!(m.src_index(&m.terms(), 17), 17);
    }
}
