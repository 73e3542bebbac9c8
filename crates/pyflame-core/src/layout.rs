//! How a tensor is distributed over the processing elements (PEs) of a Cerebras WSE.

use std::fmt;

/// Distribution of a tensor over a rectangle of PEs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum MeshLayout {
    /// The whole tensor lives on one PE.
    #[default]
    SinglePe,
    /// Rows split over `n` PEs.
    RowPartition(usize),
    /// Columns split over `n` PEs.
    ColPartition(usize),
    /// 2-D tiles over a `rows x cols` PE grid.
    Grid(usize, usize),
}

impl MeshLayout {
    /// PE rectangle `(rows, cols)` the layout occupies.
    pub fn pe_grid(&self) -> (usize, usize) {
        match *self {
            MeshLayout::SinglePe => (1, 1),
            MeshLayout::RowPartition(n) => (n, 1),
            MeshLayout::ColPartition(n) => (1, n),
            MeshLayout::Grid(r, c) => (r, c),
        }
    }

    /// Number of PEs used.
    pub fn num_pes(&self) -> usize {
        let (r, c) = self.pe_grid();
        r * c
    }
}

impl fmt::Display for MeshLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MeshLayout::SinglePe => write!(f, "MeshLayout.single_pe()"),
            MeshLayout::RowPartition(n) => write!(f, "MeshLayout.row_partition({n})"),
            MeshLayout::ColPartition(n) => write!(f, "MeshLayout.col_partition({n})"),
            MeshLayout::Grid(r, c) => write!(f, "MeshLayout.grid({r}, {c})"),
        }
    }
}

/// Coordinate of one PE on the fabric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct PECoord {
    /// Row (y).
    pub row: usize,
    /// Column (x).
    pub col: usize,
}
