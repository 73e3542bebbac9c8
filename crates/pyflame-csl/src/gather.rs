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
/// (row-major index into the source tensor): `base + sum(idx[d] * coef[d])` over the
/// destination multi-index `idx`, or the identity of the row-major order (`flat`: a reshape
/// or a change of layout). A permutation, a strided slice and a broadcast (`coef` 0) are all
/// of this form.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ElemMap {
    /// the identity on row-major indices (the other fields are unused)
    pub flat: bool,
    /// destination shape
    pub dst_shape: Vec<usize>,
    /// source index step per destination axis
    pub coef: Vec<usize>,
    /// source index of destination element 0
    pub base: usize,
    /// `(axis, lo, hi)`: only destination elements with `lo <= idx[axis] < hi` come from
    /// this source (one input of a concatenation); their source index uses `idx[axis] - lo`
    pub window: Option<(usize, usize, usize)>,
}

fn strides(shape: &[usize]) -> Vec<usize> {
    pyflame_core::contiguous_strides(shape)
        .iter()
        .map(|&s| s as usize)
        .collect()
}

impl ElemMap {
    /// The same row-major data under another shape or distribution.
    pub fn flat() -> Self {
        ElemMap {
            flat: true,
            dst_shape: Vec::new(),
            coef: Vec::new(),
            base: 0,
            window: None,
        }
    }

    /// `permute(src, perm)`: destination axis `d` is source axis `perm[d]`.
    pub fn permute(src_shape: &[usize], perm: &[usize]) -> Self {
        let st = strides(src_shape);
        ElemMap {
            flat: false,
            dst_shape: perm.iter().map(|&a| src_shape[a]).collect(),
            coef: perm.iter().map(|&a| st[a]).collect(),
            base: 0,
            window: None,
        }
    }

    /// A strided slice: destination index `i` of axis `d` reads `starts[d] + i * steps[d]`.
    pub fn slice(
        src_shape: &[usize],
        dst_shape: &[usize],
        starts: &[usize],
        steps: &[usize],
    ) -> Self {
        let st = strides(src_shape);
        ElemMap {
            flat: false,
            dst_shape: dst_shape.to_vec(),
            coef: st.iter().zip(steps).map(|(&s, &k)| s * k).collect(),
            base: st.iter().zip(starts).map(|(&s, &k)| s * k).sum(),
            window: None,
        }
    }

    /// A broadcast of `src_shape` to `dst_shape` (leading axes added, size-1 axes repeated).
    pub fn expand(src_shape: &[usize], dst_shape: &[usize]) -> Self {
        let st = strides(src_shape);
        let lead = dst_shape.len() - src_shape.len();
        let coef = (0..dst_shape.len())
            .map(|d| {
                if d < lead || src_shape[d - lead] == 1 {
                    0
                } else {
                    st[d - lead]
                }
            })
            .collect();
        ElemMap {
            flat: false,
            dst_shape: dst_shape.to_vec(),
            coef,
            base: 0,
            window: None,
        }
    }

    /// One input of a concatenation along `axis`: its elements occupy `lo..lo + len` of that
    /// axis of the destination.
    pub fn cat_part(src_shape: &[usize], dst_shape: &[usize], axis: usize, lo: usize) -> Self {
        ElemMap {
            flat: false,
            dst_shape: dst_shape.to_vec(),
            coef: strides(src_shape),
            base: 0,
            window: Some((axis, lo, lo + src_shape[axis])),
        }
    }

    /// The window as `(divisor, modulus, lo, hi)` over destination row-major indices.
    pub fn window_terms(&self) -> Option<(usize, usize, usize, usize)> {
        let (a, lo, hi) = self.window?;
        let dst_strides = strides(&self.dst_shape);
        Some((dst_strides[a], self.dst_shape[a], lo, hi))
    }

    /// Whether destination element `f` comes from this source.
    pub fn covers(&self, f: usize) -> bool {
        match self.window_terms() {
            None => true,
            Some((dv, m, lo, hi)) => (lo..hi).contains(&((f / dv) % m)),
        }
    }

    /// `(divisor, modulus, offset, coefficient)` per destination axis that contributes: the
    /// source index is `base + sum(((f / divisor) % modulus - offset) * coefficient)` (the
    /// offset is the window's `lo` on its axis, else 0); empty for the identity.
    pub fn terms(&self) -> Vec<Term> {
        if self.flat {
            return Vec::new();
        }
        let dst_strides = strides(&self.dst_shape);
        (0..self.dst_shape.len())
            .filter(|&d| self.dst_shape[d] > 1 && self.coef[d] > 0)
            .map(|d| {
                let off = match self.window {
                    Some((a, lo, _)) if a == d => lo,
                    _ => 0,
                };
                (dst_strides[d], self.dst_shape[d], off, self.coef[d])
            })
            .collect()
    }

    /// Source row-major index of destination row-major index `f` (which [`Self::covers`]).
    pub fn src_index(&self, terms: &[Term], f: usize) -> usize {
        if self.flat {
            return f;
        }
        self.base
            + terms
                .iter()
                .map(|&(dv, m, off, c)| ((f / dv) % m - off) * c)
                .sum::<usize>()
    }

    /// Applies the map to host data: `out[f] = data[src_index(f)]` for the `out.len()`
    /// destination elements it covers.
    pub fn apply_into(&self, data: &[f32], out: &mut [f32]) {
        let t = self.terms();
        for (f, o) in out.iter_mut().enumerate() {
            if self.covers(f) {
                *o = data[self.src_index(&t, f)];
            }
        }
    }

    /// [`Self::apply_into`] a new vector of `n` elements.
    pub fn apply(&self, data: &[f32], n: usize) -> Vec<f32> {
        let mut out = vec![0.0; n];
        self.apply_into(data, &mut out);
        out
    }
}

/// One contributing destination axis of an [`ElemMap`]: `(divisor, modulus, offset,
/// coefficient)`.
pub type Term = (usize, usize, usize, usize);

/// Where the element `(i, j)` of the tile of destination PE (`x`, `y`) comes from: the
/// source PE column and row holding it and its index in that PE's tile.
pub fn source_of(
    dst: &Placement,
    src: &Placement,
    map: &ElemMap,
    terms: &[Term],
    (x, y): (usize, usize),
    (i, j): (usize, usize),
) -> Option<(usize, usize, usize)> {
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
    let f = r * dst.cols + c;
    if !map.covers(f) {
        return None;
    }
    let s = map.src_index(terms, f);
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
    Some((ox, oy, li * stc + lj))
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
                let found = source_of(
                    &self.dst_pl,
                    &self.src_pl,
                    &self.map,
                    &terms,
                    (x, y),
                    (i, j),
                );
                if let Some((ox, oy, k)) = found {
                    if (ox, oy) == (sx, sy) {
                        out[i * tc + j] = mem[self.src][k];
                    }
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
        let map = ElemMap::permute(&[4, 4], &[1, 0]);
        let t = map.terms();
        assert_eq!(
            source_of(&pl, &pl, &map, &t, (1, 0), (0, 1)),
            Some((0, 1, 2))
        );
    }

    #[test]
    fn slice_and_expand_maps() {
        // x[1::2, 2:4] of a 4x6 matrix
        let m = ElemMap::slice(&[4, 6], &[2, 2], &[1, 2], &[2, 1]);
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        assert_eq!(m.apply(&data, 4), vec![8.0, 9.0, 20.0, 21.0]);
        // [3, 1] -> [2, 3, 2]
        let e = ElemMap::expand(&[3, 1], &[2, 3, 2]);
        let d = [1.0, 2.0, 3.0];
        assert_eq!(e.apply(&d, 12)[..6], [1.0, 1.0, 2.0, 2.0, 3.0, 3.0]);
    }

    #[test]
    fn cat_parts_fill_their_window() {
        // cat([2x2 of 0..4, 2x1 of 10, 11], axis 1) -> 2x3
        let mut out = vec![0.0; 6];
        ElemMap::cat_part(&[2, 2], &[2, 3], 1, 0).apply_into(&[0.0, 1.0, 2.0, 3.0], &mut out);
        ElemMap::cat_part(&[2, 1], &[2, 3], 1, 2).apply_into(&[10.0, 11.0], &mut out);
        assert_eq!(out, vec![0.0, 1.0, 10.0, 2.0, 3.0, 11.0]);
    }

    #[test]
    fn flat_map_is_identity() {
        let m = ElemMap::flat();
        assert_eq!(m.src_index(&m.terms(), 17), 17);
    }
}
