//! Fabric simulator: executes a [`Plan`] PE by PE. Local phases run each PE's DSD work (in
//! parallel over PEs); fabric phases move wavelets hop by hop along the configured routes
//! (`plan.routes`) into per-PE, per-color input FIFOs, so a wrong route shows up as a dropped
//! wavelet, a receive that never completes, or wavelets left unconsumed. Every PE keeps its
//! own cycle clock (see [`cost`]); the result's `cycles` is the slowest PE.

use crate::lower::elementwise::{apply_b, apply_u};
use crate::plan::{dir, Axis, BufKind, Local, Phase, Plan, RFn, ReduceKind, Role, Src, UFn};
use crate::CslError;
use std::collections::{HashMap, VecDeque};

/// What a simulation produced.
#[derive(Clone, Debug)]
pub struct SimResult {
    /// graph outputs, row-major, in `plan.outputs` order
    pub outputs: Vec<Vec<f32>>,
    /// cycles of the slowest PE
    pub cycles: u64,
    /// cycles spent in local (DSD / @map) work on the slowest PE
    pub compute_cycles: u64,
    /// wavelets injected into the fabric
    pub wavelets: u64,
    /// wavelet-hops travelled
    pub hops: u64,
}

/// Cycle cost of one local op on one PE: about one f32 element per cycle for DSD builtins
/// (2 reads + 1 write per cycle), a per-call overhead for loops of DSD ops, and a per-element
/// cost for `@map` callbacks into `<math>`.
pub fn cost(op: &Local) -> u64 {
    const CALL: u64 = 6;
    let map_cost = |f: UFn| match f {
        UFn::Relu | UFn::Neg | UFn::Abs | UFn::Copy => 1,
        UFn::Recip => 12,
        UFn::Sqrt => 20,
        UFn::Exp | UFn::Log => 30,
        UFn::Tanh | UFn::Sigmoid | UFn::Silu => 40,
        UFn::Gelu | UFn::GeluTanh => 60,
        UFn::Floor | UFn::Ceil | UFn::Sign => 6,
        UFn::Sin | UFn::Cos | UFn::Erf => 40,
    };
    let u = |x: usize| x as u64;
    match *op {
        Local::Map1 { f, n, .. } => CALL + u(n) * map_cost(f),
        Local::Map2 {
            f,
            a,
            b,
            rows,
            cols,
            ..
        } => {
            let per = match f {
                crate::plan::BFn::Div => 12,
                crate::plan::BFn::Min => 4,
                crate::plan::BFn::Eq
                | crate::plan::BFn::Ne
                | crate::plan::BFn::Lt
                | crate::plan::BFn::Le
                | crate::plan::BFn::Gt
                | crate::plan::BFn::Ge => 4,
                crate::plan::BFn::Pow => 60,
                _ => 1,
            };
            let vec = matches!(a, Src::RowVec(_) | Src::ColVec(_))
                || matches!(b, Src::RowVec(_) | Src::ColVec(_));
            let calls = if vec { u(rows) } else { 1 };
            calls * CALL + u(rows * cols) * per
        }
        Local::Reduce { rows, cols, .. } => u(rows) * CALL + u(rows * cols),
        Local::Gemm { m, k, n, .. } => u(m * k) * (CALL + u(n)),
        Local::Transpose { rows, cols, .. } => u(rows * cols) * 4,
        Local::Fill { n, .. } => CALL + u(n),
        // index arithmetic (divisions) per destination element, one loop call per row
        Local::Gather(ref g) => {
            let (r, c) = (g.dst_pl.tile_rows(), g.dst_pl.tile_cols());
            u(r) * CALL + u(r * c) * 16
        }
    }
}

fn fetch(mem: &[Vec<f32>], s: Src, r: usize, c: usize, cols: usize) -> f32 {
    match s {
        Src::Tile(b) => mem[b][r * cols + c],
        Src::RowVec(b) => mem[b][c],
        Src::ColVec(b) => mem[b][r],
        Src::Scalar(b) => mem[b][0],
        Src::Imm(v) => v,
    }
}

fn exec_local(op: &Local, x: usize, y: usize, mem: &mut [Vec<f32>]) {
    match *op {
        Local::Gather(ref g) => g.exec(x, y, mem),
        Local::Map1 { f, dst, src, n } => {
            let out: Vec<f32> = mem[src][..n].iter().map(|&x| apply_u(f, x)).collect();
            mem[dst][..n].copy_from_slice(&out);
        }
        Local::Map2 {
            f,
            dst,
            a,
            b,
            rows,
            cols,
        } => {
            let mut out = vec![0.0; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    let x = fetch(mem, a, r, c, cols);
                    let y = fetch(mem, b, r, c, cols);
                    out[r * cols + c] = apply_b(f, x, y);
                }
            }
            mem[dst][..rows * cols].copy_from_slice(&out);
        }
        Local::Reduce {
            f,
            dst,
            src,
            rows,
            cols,
            kind,
        } => {
            let init = match f {
                RFn::Sum => 0.0,
                RFn::Max => f32::NEG_INFINITY,
            };
            let comb = |a: f32, b: f32| match f {
                RFn::Sum => a + b,
                RFn::Max => apply_b(crate::plan::BFn::Max, a, b),
            };
            let s = &mem[src];
            let out: Vec<f32> = match kind {
                ReduceKind::OverCols => (0..rows)
                    .map(|r| {
                        s[r * cols..(r + 1) * cols]
                            .iter()
                            .fold(init, |a, &b| comb(a, b))
                    })
                    .collect(),
                ReduceKind::OverRows => {
                    let mut acc = vec![init; cols];
                    for r in 0..rows {
                        for c in 0..cols {
                            acc[c] = comb(acc[c], s[r * cols + c]);
                        }
                    }
                    acc
                }
                ReduceKind::All => vec![s[..rows * cols].iter().fold(init, |a, &b| comb(a, b))],
            };
            mem[dst][..out.len()].copy_from_slice(&out);
        }
        Local::Gemm {
            c,
            a,
            b,
            m,
            k,
            n,
            lda,
            aoff,
            boff,
            zero,
        } => {
            let mut cbuf = std::mem::take(&mut mem[c]);
            if zero {
                cbuf[..m * n].fill(0.0);
            }
            let (av, bv) = (&mem[a], &mem[b]);
            for i in 0..m {
                let crow = &mut cbuf[i * n..(i + 1) * n];
                for kk in 0..k {
                    let s = av[i * lda + aoff + kk];
                    let brow = &bv[(boff + kk) * n..(boff + kk + 1) * n];
                    for (cv, bvv) in crow.iter_mut().zip(brow) {
                        *cv += s * bvv;
                    }
                }
            }
            mem[c] = cbuf;
        }
        Local::Transpose {
            dst,
            src,
            rows,
            cols,
        } => {
            let mut out = vec![0.0; rows * cols];
            for r in 0..rows {
                for c in 0..cols {
                    out[c * rows + r] = mem[src][r * cols + c];
                }
            }
            mem[dst][..rows * cols].copy_from_slice(&out);
        }
        Local::Fill { dst, v, n } => mem[dst][..n].fill(v),
    }
}

/// Per (x, y, color): queued messages and the cycle their last wavelet arrives.
type Fifos = HashMap<(usize, usize, u8), VecDeque<(Vec<f32>, u64)>>;
/// Per (x, y, color) of a sender: receiving PEs and hop counts.
type Destinations = HashMap<(usize, usize, u8), Vec<(usize, usize, u64)>>;

struct Fabric<'p> {
    plan: &'p Plan,
    fifo: Fifos,
    dest_cache: Destinations,
    wavelets: u64,
    hops: u64,
}

impl Fabric<'_> {
    /// PEs (with hop counts) that receive what (`x`, `y`) injects on `color`.
    fn destinations(
        &mut self,
        x: usize,
        y: usize,
        color: u8,
    ) -> Result<Vec<(usize, usize, u64)>, CslError> {
        if let Some(d) = self.dest_cache.get(&(x, y, color)) {
            return Ok(d.clone());
        }
        let routes = &self.plan.routes;
        let start = routes.get(&(x, y, color)).ok_or_else(|| {
            CslError::Sim(format!(
                "PE ({x},{y}) sends on color {color} but has no route for it"
            ))
        })?;
        if start.rx & dir::RAMP == 0 {
            return Err(CslError::Sim(format!(
                "PE ({x},{y}) sends on color {color} but its route does not take RAMP as input"
            )));
        }
        let mut out = Vec::new();
        let mut stack = vec![(x, y, *start, 0u64)];
        let limit = 4 * (self.plan.width + self.plan.height) as u64 + 8;
        while let Some((cx, cy, r, h)) = stack.pop() {
            if h > limit {
                return Err(CslError::Sim(format!("routing loop on color {color}")));
            }
            if r.tx & dir::RAMP != 0 && h > 0 {
                out.push((cx, cy, h));
            }
            for (bit, dx, dy, back) in [
                (dir::EAST, 1i64, 0i64, dir::WEST),
                (dir::WEST, -1, 0, dir::EAST),
                (dir::SOUTH, 0, 1, dir::NORTH),
                (dir::NORTH, 0, -1, dir::SOUTH),
            ] {
                if r.tx & bit == 0 {
                    continue;
                }
                let (nx, ny) = (cx as i64 + dx, cy as i64 + dy);
                let next = (nx >= 0 && ny >= 0)
                    .then(|| routes.get(&(nx as usize, ny as usize, color)))
                    .flatten();
                match next {
                    Some(nr) if nr.rx & back != 0 => {
                        stack.push((nx as usize, ny as usize, *nr, h + 1))
                    }
                    _ => {
                        return Err(CslError::Sim(format!(
                            "wavelet on color {color} dropped: PE ({cx},{cy}) transmits towards ({nx},{ny}), which does not receive it"
                        )))
                    }
                }
            }
        }
        self.dest_cache.insert((x, y, color), out.clone());
        Ok(out)
    }

    fn send(
        &mut self,
        x: usize,
        y: usize,
        color: u8,
        data: Vec<f32>,
        t: u64,
    ) -> Result<(), CslError> {
        let n = data.len() as u64;
        let dests = self.destinations(x, y, color)?;
        self.wavelets += n;
        for (dx, dy, h) in dests {
            self.hops += n * h;
            self.fifo
                .entry((dx, dy, color))
                .or_default()
                .push_back((data.clone(), t + n + h));
        }
        Ok(())
    }

    fn recv(
        &mut self,
        x: usize,
        y: usize,
        color: u8,
        n: usize,
    ) -> Result<(Vec<f32>, u64), CslError> {
        let msg = self
            .fifo
            .get_mut(&(x, y, color))
            .and_then(|q| q.pop_front())
            .ok_or_else(|| {
                CslError::Sim(format!(
                    "deadlock: PE ({x},{y}) waits for {n} wavelets on color {color} that never arrive"
                ))
            })?;
        if msg.0.len() != n {
            return Err(CslError::Sim(format!(
                "PE ({x},{y}) expects {n} wavelets on color {color} but {} arrived",
                msg.0.len()
            )));
        }
        Ok(msg)
    }
}

fn color(plan: &Plan, role: Role) -> Result<u8, CslError> {
    plan.colors
        .get(&role)
        .copied()
        .ok_or_else(|| CslError::Sim(format!("no color assigned to {role:?}")))
}

/// Runs the plan and returns outputs and cycle counts.
pub fn run(plan: &Plan) -> Result<SimResult, CslError> {
    let (w, h) = (plan.width, plan.height);
    let npe = w * h;
    let mut mem: Vec<Vec<Vec<f32>>> = (0..npe)
        .map(|p| {
            let (x, y) = (p % w, p / w);
            plan.bufs
                .iter()
                .enumerate()
                .map(|(b, buf)| {
                    if !plan.holds(b, x, y) {
                        return Vec::new();
                    }
                    match &buf.kind {
                        BufKind::Input(data) => buf.placement.tile_of(data, x, y),
                        BufKind::Temp => vec![0.0; buf.placement.tile_len()],
                    }
                })
                .collect()
        })
        .collect();
    let mut clock = vec![0u64; npe];
    let mut compute = vec![0u64; npe];
    let mut fab = Fabric {
        plan,
        fifo: HashMap::new(),
        dest_cache: HashMap::new(),
        wavelets: 0,
        hops: 0,
    };
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(8);
    for ph in &plan.phases {
        match ph {
            Phase::Local { op, w: rw, h: rh } => {
                let c = cost(op);
                let chunk = npe.div_ceil(threads).max(1);
                std::thread::scope(|s| {
                    for (ci, part) in mem.chunks_mut(chunk).enumerate() {
                        s.spawn(move || {
                            for (k, pe_mem) in part.iter_mut().enumerate() {
                                let p = ci * chunk + k;
                                if p % w < *rw && p / w < *rh {
                                    exec_local(op, p % w, p / w, pe_mem);
                                }
                            }
                        });
                    }
                });
                for p in 0..npe {
                    if p % w < *rw && p / w < *rh {
                        clock[p] += c;
                        compute[p] += c;
                    }
                }
            }
            _ => fabric_phase(plan, ph, &mut mem, &mut clock, &mut fab)?,
        }
        if let Some(((x, y, c), _)) = fab.fifo.iter().find(|(_, q)| !q.is_empty()) {
            return Err(CslError::Sim(format!(
                "wavelets on color {c} left unconsumed at PE ({x},{y})"
            )));
        }
    }
    let outputs = plan
        .outputs
        .iter()
        .map(|o| {
            let pl = plan.bufs[o.buf].placement;
            pl.gather(|x, y| mem[y * w + x][o.buf].clone())
        })
        .collect();
    let worst = (0..npe).max_by_key(|&p| clock[p]).unwrap_or(0);
    Ok(SimResult {
        outputs,
        cycles: clock.get(worst).copied().unwrap_or(0),
        compute_cycles: compute.iter().copied().max().unwrap_or(0),
        wavelets: fab.wavelets,
        hops: fab.hops,
    })
}

fn fabric_phase(
    plan: &Plan,
    ph: &Phase,
    mem: &mut [Vec<Vec<f32>>],
    clock: &mut [u64],
    fab: &mut Fabric,
) -> Result<(), CslError> {
    let (fw, fh) = plan.phase_rect(ph).unwrap_or((plan.width, plan.height));
    let w = plan.width;
    let axis = match ph {
        Phase::Chain { axis, .. } | Phase::BcastBack { axis, .. } | Phase::ToEdge { axis, .. } => {
            *axis
        }
        Phase::Local { .. } => return Ok(()),
    };
    let (len, lines) = if axis == Axis::Row {
        (fw, fh)
    } else {
        (fh, fw)
    };
    let at = |line: usize, i: usize| {
        if axis == Axis::Row {
            (i, line)
        } else {
            (line, i)
        }
    };
    for line in 0..lines {
        match *ph {
            Phase::Chain { f, buf, n, .. } => {
                let ca = color(plan, Role::ChainA(axis))?;
                let cb = color(plan, Role::ChainB(axis))?;
                for i in 0..len {
                    let (x, y) = at(line, i);
                    let p = y * w + x;
                    let mut val = mem[p][buf][..n].to_vec();
                    if i > 0 {
                        let cin = if (i - 1) % 2 == 0 { ca } else { cb };
                        let (data, arr) = fab.recv(x, y, cin, n)?;
                        for (v, d) in val.iter_mut().zip(&data) {
                            *v = match f {
                                RFn::Sum => d + *v,
                                RFn::Max => apply_b(crate::plan::BFn::Max, *d, *v),
                            };
                        }
                        clock[p] = (clock[p] + n as u64).max(arr);
                    }
                    if i + 1 < len {
                        let cout = if i % 2 == 0 { ca } else { cb };
                        fab.send(x, y, cout, val, clock[p])?;
                        clock[p] += n as u64;
                    } else {
                        mem[p][buf][..n].copy_from_slice(&val);
                    }
                }
            }
            Phase::BcastBack { buf, n, .. } => {
                let c = color(plan, Role::Back(axis))?;
                let (lx, ly) = at(line, len - 1);
                let lp = ly * w + lx;
                let data = mem[lp][buf][..n].to_vec();
                fab.send(lx, ly, c, data, clock[lp])?;
                clock[lp] += n as u64;
                for i in (0..len - 1).rev() {
                    let (x, y) = at(line, i);
                    let p = y * w + x;
                    let (data, arr) = fab.recv(x, y, c, n)?;
                    mem[p][buf][..n].copy_from_slice(&data);
                    clock[p] = (clock[p] + n as u64).max(arr);
                }
            }
            Phase::ToEdge {
                src, dst, n, root, ..
            } => {
                let (lx, ly) = at(line, len - 1);
                let lp = ly * w + lx;
                if root == len - 1 {
                    let data = mem[lp][src][..n].to_vec();
                    mem[lp][dst][..n].copy_from_slice(&data);
                    clock[lp] += n as u64;
                } else {
                    let c = color(plan, Role::Edge(axis))?;
                    let (rx, ry) = at(line, root);
                    let rp = ry * w + rx;
                    let data = mem[rp][src][..n].to_vec();
                    fab.send(rx, ry, c, data, clock[rp])?;
                    clock[rp] += n as u64;
                    let (data, arr) = fab.recv(lx, ly, c, n)?;
                    mem[lp][dst][..n].copy_from_slice(&data);
                    clock[lp] = (clock[lp] + n as u64).max(arr);
                }
            }
            Phase::Local { .. } => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::{Buf, Placement, Route};

    fn two_pe_plan() -> Plan {
        let pl = Placement {
            rows: 1,
            cols: 2,
            pr: 1,
            pc: 2,
        };
        let mut plan = Plan {
            width: 2,
            height: 1,
            fabric_rect: Some((2, 1)),
            ..Default::default()
        };
        plan.bufs.push(Buf {
            name: "x".into(),
            placement: Placement { cols: 1, ..pl },
            kind: BufKind::Input(vec![3.0]),
            node: None,
        });
        plan.phases.push(Phase::BcastBack {
            buf: 0,
            n: 1,
            axis: Axis::Row,
        });
        plan.colors.insert(Role::Back(Axis::Row), 0);
        plan
    }

    #[test]
    fn broadcast_follows_routes() {
        let mut plan = two_pe_plan();
        plan.routes.insert(
            (1, 0, 0),
            Route {
                rx: dir::RAMP,
                tx: dir::WEST,
            },
        );
        plan.routes.insert(
            (0, 0, 0),
            Route {
                rx: dir::EAST,
                tx: dir::RAMP,
            },
        );
        let r = run(&plan).expect("runs");
        assert_eq!(r.wavelets, 1);
        assert_eq!(r.hops, 1);
    }

    #[test]
    fn a_missing_route_drops_wavelets() {
        let mut plan = two_pe_plan();
        plan.routes.insert(
            (1, 0, 0),
            Route {
                rx: dir::RAMP,
                tx: dir::WEST,
            },
        );
        let e = run(&plan).expect_err("must fail");
        assert!(e.to_string().contains("dropped"), "{e}");
    }

    #[test]
    fn a_route_off_the_rectangle_fails() {
        let mut plan = two_pe_plan();
        plan.routes.insert(
            (1, 0, 0),
            Route {
                rx: dir::RAMP,
                tx: dir::EAST | dir::WEST,
            },
        );
        plan.routes.insert(
            (0, 0, 0),
            Route {
                rx: dir::EAST,
                tx: dir::NORTH,
            },
        );
        assert!(run(&plan).is_err());
    }
}
