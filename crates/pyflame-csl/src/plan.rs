//! The PE-level program plan: buffers, phases, colors and routes. The renderer prints it as
//! CSL and the simulator executes it.

use std::collections::BTreeMap;

/// Index of a [`Buf`] in [`Plan::bufs`].
pub type BufId = usize;

/// A tensor distribution: the tensor seen as an `rows x cols` matrix, tiled over a
/// `pr x pc` PE rectangle anchored at PE (0, 0). A matrix dimension of size 1 is replicated
/// across that PE axis instead of split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Placement {
    /// logical matrix rows
    pub rows: usize,
    /// logical matrix columns
    pub cols: usize,
    /// PE rows of the rectangle
    pub pr: usize,
    /// PE columns of the rectangle
    pub pc: usize,
}

impl Placement {
    /// Rows held by one PE.
    pub fn tile_rows(&self) -> usize {
        if self.rows == 1 {
            1
        } else {
            self.rows / self.pr
        }
    }
    /// Columns held by one PE.
    pub fn tile_cols(&self) -> usize {
        if self.cols == 1 {
            1
        } else {
            self.cols / self.pc
        }
    }
    /// Elements held by one PE.
    pub fn tile_len(&self) -> usize {
        self.tile_rows() * self.tile_cols()
    }
    /// True when every tile dimension divides evenly (or is replicated).
    pub fn divides(&self) -> bool {
        (self.rows == 1 || self.rows.is_multiple_of(self.pr))
            && (self.cols == 1 || self.cols.is_multiple_of(self.pc))
    }
    /// Tile of PE (`x`, `y`) taken from the row-major matrix `data` (`rows * cols` values).
    pub fn tile_of(&self, data: &[f32], x: usize, y: usize) -> Vec<f32> {
        let (tr, tc) = (self.tile_rows(), self.tile_cols());
        let r0 = if self.rows == 1 { 0 } else { y * tr };
        let c0 = if self.cols == 1 { 0 } else { x * tc };
        let mut out = Vec::with_capacity(tr * tc);
        for r in 0..tr {
            let start = (r0 + r) * self.cols + c0;
            out.extend_from_slice(&data[start..start + tc]);
        }
        out
    }
    /// Reassembles the row-major matrix from per-PE tiles (`tiles(x, y)`); replicated copies
    /// are read from PE row/column 0.
    pub fn gather(&self, tiles: impl Fn(usize, usize) -> Vec<f32>) -> Vec<f32> {
        let (tr, tc) = (self.tile_rows(), self.tile_cols());
        let mut out = vec![0.0; self.rows * self.cols];
        let ny = if self.rows == 1 { 1 } else { self.pr };
        let nx = if self.cols == 1 { 1 } else { self.pc };
        for y in 0..ny {
            for x in 0..nx {
                let t = tiles(x, y);
                for r in 0..tr {
                    let start = (y * tr + r) * self.cols + x * tc;
                    out[start..start + tc].copy_from_slice(&t[r * tc..(r + 1) * tc]);
                }
            }
        }
        out
    }
}

/// What a buffer is for.
#[derive(Clone, Debug, PartialEq)]
pub enum BufKind {
    /// Written by the host before launch (a graph input); holds its values.
    Input(Vec<f32>),
    /// Computed on the device.
    Temp,
}

/// A per-PE array: every PE of the placement's rectangle holds `placement.tile_len()` f32s.
#[derive(Clone, Debug)]
pub struct Buf {
    /// CSL identifier
    pub name: String,
    /// distribution
    pub placement: Placement,
    /// input or temporary
    pub kind: BufKind,
    /// graph node index this buffer holds, if any
    pub node: Option<usize>,
}

/// Elementwise functions of one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UFn {
    /// max(x, 0) via @fmaxs
    Relu,
    /// -x via @fnegs
    Neg,
    /// |x| via @fabss
    Abs,
    /// copy via @fmovs
    Copy,
    /// exp via @map
    Exp,
    /// natural log via @map
    Log,
    /// sqrt via @map
    Sqrt,
    /// tanh via @map
    Tanh,
    /// logistic via @map
    Sigmoid,
    /// exact (erf) GELU via @map
    Gelu,
    /// tanh-approximated GELU via @map
    GeluTanh,
    /// x * sigmoid(x) via @map
    Silu,
    /// 1 / x via @map
    Recip,
    /// sine via @map (`math.sin_f32`)
    Sin,
    /// cosine via @map (`math.cos_f32`)
    Cos,
    /// round toward -inf via @map (integer conversion)
    Floor,
    /// round toward +inf via @map (`-floor(-x)`)
    Ceil,
    /// -1, 0 (keeping the sign of zero) or 1 via @map; NaN stays NaN
    Sign,
    /// error function via @map (Abramowitz & Stegun 7.1.26)
    Erf,
}

/// Elementwise functions of two arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BFn {
    /// @fadds
    Add,
    /// @fsubs
    Sub,
    /// @fmuls
    Mul,
    /// @fmaxs
    Max,
    /// @map division
    Div,
    /// @map minimum
    Min,
    /// @map power
    Pow,
    /// @map `a == b` as a 0/1 mask
    Eq,
    /// @map `a != b` as a 0/1 mask
    Ne,
    /// @map `a < b` as a 0/1 mask
    Lt,
    /// @map `a <= b` as a 0/1 mask
    Le,
    /// @map `a > b` as a 0/1 mask
    Gt,
    /// @map `a >= b` as a 0/1 mask
    Ge,
}

/// Reduction functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RFn {
    /// sum (@fadds)
    Sum,
    /// maximum (@fmaxs)
    Max,
}

/// An operand of a binary map, relative to a `rows x cols` destination tile.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Src {
    /// a full tile of the same shape
    Tile(BufId),
    /// a `cols` vector repeated for every row
    RowVec(BufId),
    /// a `rows` vector, one value per row
    ColVec(BufId),
    /// element 0 of a buffer
    Scalar(BufId),
    /// an immediate constant
    Imm(f32),
}

/// The PE axis a collective runs along.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Axis {
    /// along a PE row (west -> east), x varies
    Row,
    /// along a PE column (north -> south), y varies
    Col,
}

/// One step of local (no fabric) work on every PE of a rectangle.
#[derive(Clone, Debug, PartialEq)]
pub enum Local {
    /// `dst = f(src)` over `n` elements
    Map1 {
        /// function
        f: UFn,
        /// destination
        dst: BufId,
        /// source
        src: BufId,
        /// elements
        n: usize,
    },
    /// `dst = f(a, b)` over a `rows x cols` tile
    Map2 {
        /// function
        f: BFn,
        /// destination
        dst: BufId,
        /// left operand
        a: Src,
        /// right operand
        b: Src,
        /// tile rows
        rows: usize,
        /// tile columns
        cols: usize,
    },
    /// Local reduction of a `rows x cols` tile. `over_cols`: one result per row (`rows`
    /// values); otherwise one per column; `all`: a single value.
    Reduce {
        /// function
        f: RFn,
        /// destination
        dst: BufId,
        /// source
        src: BufId,
        /// tile rows
        rows: usize,
        /// tile columns
        cols: usize,
        /// which dimension is reduced
        kind: ReduceKind,
    },
    /// `c[m x n] (+)= a[:, aoff..aoff+k] @ b[boff..boff+k, :]` with row-major tiles.
    Gemm {
        /// output tile
        c: BufId,
        /// left tile
        a: BufId,
        /// right tile
        b: BufId,
        /// rows of c
        m: usize,
        /// inner dimension of this step
        k: usize,
        /// columns of c
        n: usize,
        /// row stride of a
        lda: usize,
        /// first column of a
        aoff: usize,
        /// first row of b
        boff: usize,
        /// zero c first
        zero: bool,
    },
    /// `dst[..n] = v` (@fmovs with a scalar)
    Fill {
        /// destination
        dst: BufId,
        /// value
        v: f32,
        /// elements
        n: usize,
    },
    /// Copy of the destination elements whose source lies in one PE's tile (a step of a
    /// redistribution across PEs, see [`crate::gather`]).
    Gather(Box<crate::gather::Gather>),
    /// `dst[c x r] = transpose(src[r x c])`
    Transpose {
        /// destination
        dst: BufId,
        /// source
        src: BufId,
        /// source rows
        rows: usize,
        /// source columns
        cols: usize,
    },
}

/// What a local reduction reduces.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceKind {
    /// each row to one value
    OverCols,
    /// each column to one value
    OverRows,
    /// everything to one value
    All,
}

/// One phase of the program. Every PE runs the phases in order; a phase that touches the
/// fabric completes when its (single) async fabric operation does.
#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    /// Local work on the PEs of a `w x h` rectangle.
    Local {
        /// the work
        op: Local,
        /// rectangle width (PE columns)
        w: usize,
        /// rectangle height (PE rows)
        h: usize,
    },
    /// Reduce chain: along `axis`, the first PE sends `buf`, middle PEs send
    /// `f(received, buf)`, the last PE stores `f(received, buf)` into `buf`. Uses the two
    /// checkerboard colors of the axis.
    Chain {
        /// function
        f: RFn,
        /// buffer (length `n` on every PE)
        buf: BufId,
        /// elements
        n: usize,
        /// axis
        axis: Axis,
    },
    /// The last PE of each row (column) sends `n` values of `buf` back along the axis; all
    /// others receive them into `buf`.
    BcastBack {
        /// buffer
        buf: BufId,
        /// elements
        n: usize,
        /// axis
        axis: Axis,
    },
    /// The PE at position `root` along the axis sends `src` to the last PE of its row
    /// (column), which stores it in `dst`. Root == last: local copy.
    ToEdge {
        /// source buffer
        src: BufId,
        /// destination buffer
        dst: BufId,
        /// elements
        n: usize,
        /// axis
        axis: Axis,
        /// sending position along the axis
        root: usize,
    },
}

/// Direction bits of a route.
pub mod dir {
    /// the PE's own compute element
    pub const RAMP: u8 = 1;
    /// towards y - 1
    pub const NORTH: u8 = 2;
    /// towards y + 1
    pub const SOUTH: u8 = 4;
    /// towards x + 1
    pub const EAST: u8 = 8;
    /// towards x - 1
    pub const WEST: u8 = 16;
    /// Names in CSL order.
    pub const ALL: [(u8, &str); 5] = [
        (RAMP, "RAMP"),
        (NORTH, "NORTH"),
        (SOUTH, "SOUTH"),
        (EAST, "EAST"),
        (WEST, "WEST"),
    ];
}

/// One `@set_color_config` entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Route {
    /// receive directions (bit set of [`dir`])
    pub rx: u8,
    /// transmit directions
    pub tx: u8,
}

/// Fabric color roles. Each role has one color and one queue (input and output) number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// reduce chain, even sender positions
    ChainA(Axis),
    /// reduce chain, odd sender positions
    ChainB(Axis),
    /// broadcast back from the last PE
    Back(Axis),
    /// point-to-point to the last PE
    Edge(Axis),
}

impl Role {
    /// Identifier used in generated CSL.
    pub fn ident(self) -> String {
        let (n, a) = match self {
            Role::ChainA(a) => ("chain_a", a),
            Role::ChainB(a) => ("chain_b", a),
            Role::Back(a) => ("back", a),
            Role::Edge(a) => ("edge", a),
        };
        format!("{}_{}", if a == Axis::Row { "row" } else { "col" }, n)
    }
    /// Hardware queue used for this role's fabric DSDs (2..=7; 0 and 1 belong to memcpy).
    /// The two chain colors share a queue: a PE receives on only one of them.
    pub fn queue(self) -> u8 {
        let base = match self {
            Role::ChainA(_) | Role::ChainB(_) => 2,
            Role::Back(_) => 3,
            Role::Edge(_) => 4,
        };
        match self {
            Role::ChainA(a) | Role::ChainB(a) | Role::Back(a) | Role::Edge(a) => {
                if a == Axis::Row {
                    base
                } else {
                    base + 3
                }
            }
        }
    }
}

/// A graph output and the buffer that holds it.
#[derive(Clone, Debug)]
pub struct OutputRef {
    /// buffer
    pub buf: BufId,
    /// logical shape of the graph output
    pub shape: Vec<usize>,
}

/// An input symbol: buffer plus the logical shape of the graph value it carries.
#[derive(Clone, Debug)]
pub struct InputRef {
    /// buffer
    pub buf: BufId,
    /// logical shape
    pub shape: Vec<usize>,
}

/// The whole PE-level program.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// program rectangle width (PE columns)
    pub width: usize,
    /// program rectangle height (PE rows)
    pub height: usize,
    /// buffers
    pub bufs: Vec<Buf>,
    /// phases, in order
    pub phases: Vec<Phase>,
    /// host-fed inputs
    pub inputs: Vec<InputRef>,
    /// graph outputs
    pub outputs: Vec<OutputRef>,
    /// color of each role in use
    pub colors: BTreeMap<Role, u8>,
    /// routes per (x, y, color)
    pub routes: BTreeMap<(usize, usize, u8), Route>,
    /// rectangle (w, h) of the fabric collectives
    pub fabric_rect: Option<(usize, usize)>,
    /// a comment per phase (the graph op it lowers)
    pub notes: Vec<String>,
}

impl Plan {
    /// True when PE (`x`, `y`) is inside the placement's rectangle.
    pub fn holds(&self, buf: BufId, x: usize, y: usize) -> bool {
        let p = &self.bufs[buf].placement;
        x < p.pc && y < p.pr
    }
    /// Bytes of buffers held by PE (`x`, `y`).
    pub fn pe_bytes(&self, x: usize, y: usize) -> usize {
        (0..self.bufs.len())
            .filter(|&b| self.holds(b, x, y))
            .map(|b| 4 * self.bufs[b].placement.tile_len())
            .sum()
    }
    /// The PE rectangle (w, h) a fabric phase runs on: that of the buffer it fills.
    pub fn phase_rect(&self, ph: &Phase) -> Option<(usize, usize)> {
        let b = match ph {
            Phase::Local { .. } => return None,
            Phase::Chain { buf, .. } | Phase::BcastBack { buf, .. } => *buf,
            Phase::ToEdge { dst, .. } => *dst,
        };
        let p = self.bufs[b].placement;
        Some((p.pc, p.pr))
    }
    /// Largest per-PE buffer footprint in bytes.
    pub fn max_pe_bytes(&self) -> usize {
        let mut best = 0;
        // Footprints only change at placement boundaries; check the distinct corners.
        let mut xs: Vec<usize> = self.bufs.iter().map(|b| b.placement.pc - 1).collect();
        let mut ys: Vec<usize> = self.bufs.iter().map(|b| b.placement.pr - 1).collect();
        xs.sort_unstable();
        xs.dedup();
        ys.sort_unstable();
        ys.dedup();
        for &x in &xs {
            for &y in &ys {
                best = best.max(self.pe_bytes(x, y));
            }
        }
        best.max(self.pe_bytes(0, 0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tiles_round_trip() {
        let p = Placement {
            rows: 4,
            cols: 6,
            pr: 2,
            pc: 3,
        };
        let data: Vec<f32> = (0..24).map(|v| v as f32).collect();
        assert_eq!(p.tile_of(&data, 1, 1), vec![14.0, 15.0, 20.0, 21.0]);
        assert_eq!(p.gather(|x, y| p.tile_of(&data, x, y)), data);
    }

    #[test]
    fn replicated_dimension() {
        let p = Placement {
            rows: 1,
            cols: 8,
            pr: 4,
            pc: 2,
        };
        assert_eq!((p.tile_rows(), p.tile_cols()), (1, 4));
        let data: Vec<f32> = (0..8).map(|v| v as f32).collect();
        assert_eq!(p.tile_of(&data, 1, 3), vec![4.0, 5.0, 6.0, 7.0]);
        assert!(p.divides());
        assert!(!Placement {
            rows: 3,
            cols: 8,
            pr: 2,
            pc: 2
        }
        .divides());
    }
}
