//! Performance model: simulator cycles turned into time with the WSE clock, plus host I/O
//! over memcpy channels (REFERENCE.md section 6).

use crate::plan::{BufKind, Plan};
use crate::sim::SimResult;
use crate::{CodeGenOptions, Target};

/// Clock used by the SDK examples to turn cycles into seconds (both WSE-2 and WSE-3).
pub const CLOCK_HZ: f64 = 850e6;
/// Bandwidth of one memcpy I/O channel in bytes/s (about 7 Gb/s).
pub const CHANNEL_BYTES_PER_S: f64 = 7e9 / 8.0;
/// Fixed host transaction overhead in seconds (about 200 us per memcpy/launch).
pub const TRANSACTION_S: f64 = 200e-6;
/// SDK-usable fabric of a CS-2 (docs) and a CS-3.
pub fn machine_dims(t: Target) -> (usize, usize) {
    match t {
        Target::Wse2 => (757, 996),
        Target::Wse3 => (762, 1176),
    }
}

/// A run-time estimate for one launch of the generated program.
#[derive(Clone, Debug, PartialEq)]
pub struct Estimate {
    /// device cycles (slowest PE, from the simulator)
    pub cycles: u64,
    /// device time in seconds
    pub device_seconds: f64,
    /// bytes moved host -> device
    pub h2d_bytes: usize,
    /// bytes moved device -> host
    pub d2h_bytes: usize,
    /// host I/O time in seconds
    pub io_seconds: f64,
    /// total seconds
    pub total_seconds: f64,
    /// floating point operations per launch (2 per multiply-add)
    pub flops: u64,
    /// achieved device FLOP/s
    pub device_flops_per_s: f64,
    /// PEs used
    pub pes: usize,
    /// largest per-PE buffer footprint in bytes
    pub max_pe_bytes: usize,
}

/// Combines plan and simulation into an [`Estimate`].
pub fn estimate(plan: &Plan, sim: &SimResult, opts: &CodeGenOptions) -> Estimate {
    let mut h2d = 0;
    for i in &plan.inputs {
        let b = &plan.bufs[i.buf];
        if matches!(b.kind, BufKind::Input(_)) {
            h2d += 4 * b.placement.tile_len() * b.placement.pr * b.placement.pc;
        }
    }
    let d2h: usize = plan
        .outputs
        .iter()
        .map(|o| {
            4 * plan.bufs[o.buf].placement.tile_len()
                * plan.bufs[o.buf].placement.pr
                * plan.bufs[o.buf].placement.pc
        })
        .sum();
    let transactions = plan.inputs.len() + plan.outputs.len() + 1;
    let io = (h2d + d2h) as f64 / (CHANNEL_BYTES_PER_S * opts.channels as f64)
        + transactions as f64 * TRANSACTION_S;
    let dev = sim.cycles as f64 / CLOCK_HZ;
    let flops = flop_count(plan);
    Estimate {
        cycles: sim.cycles,
        device_seconds: dev,
        h2d_bytes: h2d,
        d2h_bytes: d2h,
        io_seconds: io,
        total_seconds: dev + io,
        flops,
        device_flops_per_s: if dev > 0.0 { flops as f64 / dev } else { 0.0 },
        pes: plan.width * plan.height,
        max_pe_bytes: plan.max_pe_bytes(),
    }
}

fn flop_count(plan: &Plan) -> u64 {
    use crate::plan::{Local, Phase};
    let mut f = 0u64;
    for ph in &plan.phases {
        if let Phase::Local { op, w, h } = ph {
            let pes = (w * h) as u64;
            let per = match *op {
                Local::Gemm { m, k, n, .. } => 2 * (m * k * n) as u64,
                Local::Map1 { n, .. } | Local::Fill { n, .. } => n as u64,
                Local::Map2 { rows, cols, .. } | Local::Reduce { rows, cols, .. } => {
                    (rows * cols) as u64
                }
                Local::Transpose { .. } | Local::Gather(_) => 0,
            };
            f += per * pes;
        }
    }
    f
}
