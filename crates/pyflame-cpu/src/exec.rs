//! The executor: captures the unrealized ancestors of the requested nodes, fetches (or
//! builds) their schedule and runs it, storing results in the nodes.

use crate::fused::{materialize, Input};
use crate::kernels::{matmul, reduce};
use crate::schedule::{schedule_for, Schedule, StepKind};
use crate::{attention, conv, movement, norm, pool, softmax, sources};
use pyflame_core::{dispatch_dtype, numel, DType, Element, Error, Result, Storage};
use pyflame_ir::{ConvAttrs, Graph, NodeRef, Op, PoolAttrs, PoolKind, ReduceOp, Value};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Evaluates `outputs` (and whatever they depend on) and stores their values in the nodes.
///
/// Graphs of several kernels run on a thread of the global rayon pool (see [`evaluate_in`]).
pub fn evaluate(outputs: &[NodeRef]) -> Result<()> {
    evaluate_in(None, outputs)
}

/// [`evaluate`] on the threads of `pool` (`None`: the global pool).
///
/// A graph of at least [`HANDOFF_MIN_STEPS`] steps, or with a step big enough to run in
/// parallel (see [`hands_off`]), runs on the pool's first worker, and the
/// other workers spin (taking pending work, see [`spin_for_work`]) until it is done, as ONNX
/// Runtime's intra-op threads and PyTorch's OpenMP threads do. Run from the calling thread,
/// each kernel's parallel loop would be handed over to the pool and waited for: two thread
/// wake-ups per kernel, each costing tens to hundreds of microseconds on a virtual machine
/// (a batch-1 ResNet-18 went from ~2.1 to ~1.05 ms with the hand-off and spinning workers, an
/// MLP training step ~15% faster). The calling thread only waits for the result, polling for
/// it at first rather than sleeping (`run_on_pool`). Afterwards
/// the workers stay awake for [`worker_spin`] (see [`linger`]), so that the next evaluation's
/// hand-off does not wake them.
///
/// Always the *first* worker: the graph's buffers come from that thread's malloc arena
/// (glibc has one per thread). Graphs landing on whichever worker is free spread a training
/// run's activations over every worker's arena, each keeping its own freed memory: a
/// ResNet-18 step's peak memory doubled (~765 against ~384 MiB from the Python thread; ~407
/// on the first worker). Limiting glibc to one arena instead made the small CNN training step
/// 10-15% slower (lock contention and the main heap's trimming and regrowth).
///
/// Small graphs, and nested evaluations (from inside a pool), run on the current thread.
pub fn evaluate_in(pool: Option<&rayon::ThreadPool>, outputs: &[NodeRef]) -> Result<()> {
    let pending: Vec<NodeRef> = outputs
        .iter()
        .filter(|n| !n.is_realized())
        .cloned()
        .collect();
    if pending.is_empty() {
        return Ok(());
    }
    let g = Graph::capture(&pending, true);
    let schedule = schedule_for(&g)?;
    let handoff = hands_off(&g, &schedule);
    run_on_pool(pool, handoff, true, move || run_schedule(&g, &schedule))
}

/// A graph kept from one run to the next (a recorded template's), with what every run
/// needs and can share: its schedule, the values its realized nodes hold (constants, and
/// the inputs it was made with) and which nodes are its outputs. Run it with
/// [`run_detached_in`].
pub struct Detached {
    graph: Arc<Graph>,
    schedule: Arc<Schedule>,
    /// each node's value when the graph was kept (`None` for the nodes the steps compute)
    held: Vec<Option<Value>>,
    /// the graph's outputs, by position
    keep: Vec<bool>,
    /// whether runs go to the pool's first worker (see [`hands_off`])
    handoff: bool,
}

impl Detached {
    /// Keeps `graph` for [`run_detached_in`]: schedules it and takes its nodes' values.
    pub fn new(graph: Arc<Graph>) -> Result<Self> {
        let schedule = schedule_for(&graph)?;
        let held = graph.nodes.iter().map(|node| node.value()).collect();
        let mut keep = vec![false; graph.len()];
        for &o in &graph.outputs {
            keep[o] = true;
        }
        let handoff = hands_off(&graph, &schedule);
        Ok(Self {
            graph,
            schedule,
            held,
            keep,
            handoff,
        })
    }

    /// The graph.
    pub fn graph(&self) -> &Graph {
        &self.graph
    }

    /// Its schedule's steps.
    pub fn steps(&self) -> usize {
        self.schedule.steps.len()
    }

    /// Whether its runs are handed to the pool's first worker (see [`evaluate_in`]) rather
    /// than run on the calling thread.
    pub fn runs_on_pool(&self) -> bool {
        self.handoff
    }
}

/// Runs a [`Detached`] graph with `feeds` (graph position, value) in place of the values
/// its placeholder nodes hold, and returns the values of its outputs in order, on the
/// threads of `pool` (`None`: the global pool) as [`evaluate_in`] runs a graph. Unlike
/// [`evaluate_in`] it stores nothing in the graph's nodes and releases none of their inputs,
/// so the same graph serves every run (and concurrent runs): a run builds no nodes and drops
/// none, and reads the constants where the graph keeps them. `keep_awake: false` lets the
/// workers sleep as soon as the graph is done instead of lingering for [`worker_spin`]
/// (ONNX Runtime's `session.intra_op.allow_spinning = 0`).
pub fn run_detached_in(
    pool: Option<&rayon::ThreadPool>,
    detached: Arc<Detached>,
    feeds: Vec<(usize, Value)>,
    keep_awake: bool,
) -> Result<Vec<Value>> {
    let handoff = detached.handoff;
    run_on_pool(pool, handoff, keep_awake, move || {
        let d = &*detached;
        let mut slots = Slots::new(&d.held);
        for (position, value) in feeds {
            if position >= d.held.len() {
                return Err(Error::Invalid(
                    "internal: feed position outside the graph".into(),
                ));
            }
            slots.set(position, value);
        }
        run_steps(&d.graph, &d.schedule, &mut slots, &d.keep, false)?;
        d.graph
            .outputs
            .iter()
            .map(|&o| {
                slots
                    .get(o)
                    .cloned()
                    .ok_or_else(|| Error::Invalid("internal: output was not computed".into()))
            })
            .collect()
    })
}

/// The values of a graph's nodes during one evaluation: the ones computed (or fed) in it,
/// over the ones the nodes held when it began.
pub(crate) struct Slots<'a> {
    computed: Vec<Option<Value>>,
    held: &'a [Option<Value>],
}

impl<'a> Slots<'a> {
    /// Slots over `held` (one per graph position), none computed yet.
    fn new(held: &'a [Option<Value>]) -> Self {
        Self {
            computed: vec![None; held.len()],
            held,
        }
    }

    /// The value of graph node `j`: computed in this evaluation, else held.
    pub(crate) fn get(&self, j: usize) -> Option<&Value> {
        match self.computed.get(j) {
            Some(Some(v)) => Some(v),
            _ => self.held.get(j).and_then(Option::as_ref),
        }
    }

    fn set(&mut self, j: usize, value: Value) {
        self.computed[j] = Some(value);
    }

    /// Drops the value computed for node `j` (a held value stays with its node).
    fn release(&mut self, j: usize) {
        self.computed[j] = None;
    }
}

/// Runs `work` (a graph) on the threads of `pool` (`None`: the global pool), as described
/// at [`evaluate_in`]: on the pool's first worker while the others spin when `handoff`
/// (see [`hands_off`]), otherwise (and for nested evaluations) on the current thread.
///
/// The calling thread waits for the result by polling (yielding its core between polls) for
/// up to [`CALLER_SPIN`], then sleeps until woken: a thread asleep in the kernel took 7-15 us
/// to wake on this virtual machine, paid once per run. (Sleeping until the graph's last
/// steps and polling only from there was tried: it took the core from the workers less
/// often, but batch-1 ResNet-18 and the MLP step were no faster than with the plain poll.)
/// The workers stay awake for [`worker_spin`] after the run (`keep_awake`), each lingering
/// at the end of its own job.
fn run_on_pool<R: Send + 'static>(
    pool: Option<&rayon::ThreadPool>,
    handoff: bool,
    keep_awake: bool,
    work: impl FnOnce() -> Result<R> + Send + 'static,
) -> Result<R> {
    if !handoff || rayon::current_thread_index().is_some() {
        // One hand-off would cost more than a small graph saves; a nested evaluation stays
        // on its worker.
        // The thread that runs the graph is occupied: a lingering job it might take while
        // waiting inside a parallel loop returns at once.
        return match pool {
            Some(p) if p.current_thread_index().is_none() => p.install(|| {
                let _busy = Occupied::enter();
                work()
            }),
            _ => {
                let _busy = Occupied::enter();
                work()
            }
        };
    }
    let linger_after = keep_awake && !worker_spin().is_zero();
    let handoff = Arc::new(HandOff::new(work));
    let shared = handoff.clone();
    // Worker 0 runs the graph; the others spin (taking its parallel work) until it is done.
    let on_each_worker = move |ctx: rayon::BroadcastContext<'_>| {
        {
            // A lingering job reaching this worker while it works for this graph returns
            // at once.
            let _busy = Occupied::enter();
            if ctx.index() == 0 {
                shared.run();
            } else {
                spin_for_work(&shared.done);
            }
        }
        // Keep the worker awake for the next evaluation (returns at once inside an outer
        // linger, which goes on).
        if linger_after {
            linger();
        }
    };
    match pool {
        Some(p) => p.spawn_broadcast(on_each_worker),
        None => rayon::spawn_broadcast(on_each_worker),
    }
    handoff.wait(if keep_awake {
        CALLER_SPIN
    } else {
        std::time::Duration::ZERO
    })
}

/// How long the thread that handed a graph to the pool polls for its result before it
/// sleeps (see [`run_on_pool`]).
const CALLER_SPIN: std::time::Duration = std::time::Duration::from_millis(2);

/// A graph handed to the pool: the work (taken by the worker that runs it), its result and
/// the flag the caller and the spinning workers wait on.
struct HandOff<F, R> {
    work: Mutex<Option<F>>,
    result: Mutex<Option<Result<R>>>,
    done: AtomicBool,
    finished: std::sync::Condvar,
}

impl<F: FnOnce() -> Result<R>, R> HandOff<F, R> {
    fn new(work: F) -> Self {
        Self {
            work: Mutex::new(Some(work)),
            result: Mutex::new(None),
            done: AtomicBool::new(false),
            finished: std::sync::Condvar::new(),
        }
    }

    /// Runs the work (dropping it, and what it holds, before the caller resumes) and
    /// publishes the result; a panic becomes an error.
    fn run(&self) {
        let work = self.work.lock().unwrap_or_else(|e| e.into_inner()).take();
        let result = match work {
            Some(work) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(work))
                .unwrap_or_else(|_| {
                    Err(Error::Invalid(
                        "internal: a kernel panicked while evaluating the graph".into(),
                    ))
                }),
            None => Err(Error::Invalid("internal: the graph ran twice".into())),
        };
        let mut slot = self.result.lock().unwrap_or_else(|e| e.into_inner());
        *slot = Some(result);
        self.done.store(true, Ordering::Release);
        self.finished.notify_all();
    }

    /// The result, once published: polls for up to `spin`, then sleeps until it is.
    fn wait(&self, spin: std::time::Duration) -> Result<R> {
        let started = std::time::Instant::now();
        while !self.done.load(Ordering::Acquire) && started.elapsed() < spin {
            std::thread::yield_now();
        }
        let mut slot = self.result.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(result) = slot.take() {
                return result;
            }
            slot = self.finished.wait(slot).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// How long a spinning worker waits without finding work before it goes back to rayon's
/// own sleep.
const SPIN_IDLE: std::time::Duration = std::time::Duration::from_micros(500);

/// Takes pending pool work until `done` or until none has come for [`SPIN_IDLE`]. The bound
/// matters when graphs run concurrently: a worker waiting inside one graph's parallel loop
/// may pick up the spinner of another graph, and the two spinners must not wait for each
/// other forever.
fn spin_for_work(done: &AtomicBool) {
    let mut idle_since: Option<std::time::Instant> = None;
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_since = None;
            continue;
        }
        let now = std::time::Instant::now();
        if now.duration_since(*idle_since.get_or_insert(now)) > SPIN_IDLE {
            return;
        }
        // Give the core away if something else wants it (on a loaded machine a pure spin
        // would take it from the thread that has the work).
        std::thread::yield_now();
    }
}

/// How long a worker stays awake after an evaluation, taking pool work as it comes (see
/// [`linger`]): `PYFLAME_WORKER_SPIN_US` microseconds at start-up, [`DEFAULT_WORKER_SPIN`]
/// by default, or what [`set_worker_spin`] set last; zero lets workers sleep at once.
pub fn worker_spin() -> std::time::Duration {
    let us = match WORKER_SPIN_US.load(Ordering::Relaxed) {
        SPIN_UNSET => {
            let from_env = std::env::var("PYFLAME_WORKER_SPIN_US")
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(DEFAULT_WORKER_SPIN.as_micros() as u64, |us| {
                    us.min(MAX_WORKER_SPIN_US)
                });
            // A concurrent `set_worker_spin` wins over the environment.
            match WORKER_SPIN_US.compare_exchange(
                SPIN_UNSET,
                from_env,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => from_env,
                Err(set) => set,
            }
        }
        us => us,
    };
    std::time::Duration::from_micros(us)
}

/// Sets [`worker_spin`] for the whole process (clamped to one second).
pub fn set_worker_spin(spin: std::time::Duration) {
    let us = u64::try_from(spin.as_micros())
        .unwrap_or(u64::MAX)
        .min(MAX_WORKER_SPIN_US);
    WORKER_SPIN_US.store(us, Ordering::Relaxed);
}

/// Default of [`worker_spin`].
pub const DEFAULT_WORKER_SPIN: std::time::Duration = std::time::Duration::from_millis(5);

/// Upper bound of [`worker_spin`], in microseconds.
const MAX_WORKER_SPIN_US: u64 = 1_000_000;

/// [`WORKER_SPIN_US`] before the environment was read.
const SPIN_UNSET: u64 = u64::MAX;

/// The current [`worker_spin`] in microseconds ([`SPIN_UNSET`] until first read).
static WORKER_SPIN_US: AtomicU64 = AtomicU64::new(SPIN_UNSET);

thread_local! {
    /// Whether this worker is lingering or working for an evaluation (a [`linger`] job
    /// taken then returns at once).
    static OCCUPIED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the current thread [`OCCUPIED`] until dropped (restoring the previous state).
struct Occupied {
    was: bool,
}

impl Occupied {
    fn enter() -> Self {
        Self {
            was: OCCUPIED.with(|o| o.replace(true)),
        }
    }
}

impl Drop for Occupied {
    fn drop(&mut self) {
        OCCUPIED.with(|o| o.set(self.was));
    }
}

/// Runs on every worker after an evaluation: takes pool work as it comes until none has come
/// for [`worker_spin`], then returns to rayon's own idle loop (which soon sleeps).
///
/// A sleeping worker costs the next evaluation a wake-up, and on a virtual machine waking a
/// thread on an idle (halted) virtual CPU took 50-120 microseconds: at batch 1 a ResNet-18
/// run waited ~54 us for its hand-off alone, and a training step pays it at each of its
/// evaluations. ONNX Runtime's intra-op threads and OpenMP's threads spin the same way
/// between parallel regions. A spinning worker yields its core to any other runnable thread
/// (`sched_yield`) between polls.
///
/// The next evaluation's hand-off is taken from inside this loop (nested), and the lingering
/// job that follows it returns at once: only the outermost one spins, and never inside an
/// evaluation's work (which it would hold up by the spin time).
///
/// A worker can still take a lingering job while it waits inside other pool work that is
/// not marked (the stolen half of some other parallel loop); that work then waits for the
/// linger to end. So a linger also ends [`LINGER_CAP`] spin times after it began, however
/// busy the pool is: that bounds such a wait, and in a loop of short runs it costs one
/// worker wake-up per cap period.
fn linger() {
    let occupied = Occupied::enter();
    if occupied.was {
        return;
    }
    let limit = worker_spin();
    let started = std::time::Instant::now();
    let mut idle_since = started;
    loop {
        if rayon::yield_now() == Some(rayon::Yield::Executed) {
            idle_since = std::time::Instant::now();
        } else if idle_since.elapsed() > limit {
            break;
        } else {
            std::thread::yield_now();
        }
        if started.elapsed() > limit * LINGER_CAP {
            break;
        }
    }
}

/// A linger ends at most this many spin times after it began (see [`linger`]).
const LINGER_CAP: u32 = 4;

/// Kernel steps from which [`evaluate_in`] moves to a pool thread.
const HANDOFF_MIN_STEPS: usize = 6;

/// Multiply-adds of a convolution or matrix product step from which a graph of fewer than
/// [`HANDOFF_MIN_STEPS`] steps is still handed to the pool.
const HANDOFF_MIN_PRODUCT_WORK: usize = 1 << 16;

/// Values of another step from which a small graph is still handed to the pool.
const HANDOFF_MIN_VALUES: usize = 1 << 18;

/// Whether a graph goes to the pool's first worker rather than running on the calling
/// thread: graphs of [`HANDOFF_MIN_STEPS`] steps or more, and smaller ones with a step
/// likely to run in parallel (a convolution or matrix product of at least
/// [`HANDOFF_MIN_PRODUCT_WORK`] multiply-adds, or another step over at least
/// [`HANDOFF_MIN_VALUES`] values).
///
/// From a thread outside the pool, each parallel loop is handed to the pool and waited
/// for asleep, and the workers, not lingering after such a run, sleep between runs: a
/// one-convolution model (64 -> 128 channels, 8x8 -> 4x4) took 30-40 us a run that way
/// against 15-21 us handed off. A graph of a few small steps (no parallel loops) is faster
/// on the calling thread: the hand-off costs ~5 us, a 64x64 matrix product ~1 us.
fn hands_off(g: &Graph, schedule: &Schedule) -> bool {
    schedule.steps.len() >= HANDOFF_MIN_STEPS
        || schedule.steps.iter().any(|step| {
            // A product with an epilogue is its product's work.
            let i = match &step.kind {
                StepKind::MatmulEpilogue { matmul, .. } => *matmul,
                _ => step.node,
            };
            let node = &g.nodes[i];
            let out = numel(&node.shape);
            let input = |k: usize| {
                g.input_index[i]
                    .get(k)
                    .map(|&j| g.nodes[j].shape.as_slice())
                    .unwrap_or(&[])
            };
            match &node.op {
                Op::MatMul => {
                    out.saturating_mul(input(0).last().copied().unwrap_or(1))
                        >= HANDOFF_MIN_PRODUCT_WORK
                }
                // Per output value, the weights' values of one output channel.
                Op::Conv2d(_) | Op::Conv2dFused(_) => {
                    out.saturating_mul(numel(input(1).get(1..).unwrap_or(&[])))
                        >= HANDOFF_MIN_PRODUCT_WORK
                }
                // Per input value, the weights' values of one input channel.
                Op::Conv2dGradInput(_) => {
                    let w = input(1);
                    let per_channel = numel(w) / w.get(1).copied().unwrap_or(1).max(1);
                    out.saturating_mul(per_channel) >= HANDOFF_MIN_PRODUCT_WORK
                }
                // Per weight value, the output gradient's values of one channel.
                Op::Conv2dGradWeight(_) => {
                    let gy = input(1);
                    let per_channel = numel(gy) / gy.get(1).copied().unwrap_or(1).max(1);
                    out.saturating_mul(per_channel) >= HANDOFF_MIN_PRODUCT_WORK
                }
                _ => {
                    let largest_input = g.input_index[i]
                        .iter()
                        .map(|&j| numel(&g.nodes[j].shape))
                        .max()
                        .unwrap_or(0);
                    out.max(largest_input) >= HANDOFF_MIN_VALUES
                }
            }
        })
}

/// Runs every step of `schedule` over the captured graph `g`.
fn run_schedule(g: &Graph, schedule: &Schedule) -> Result<()> {
    let n = g.len();
    let held: Vec<Option<Value>> = g.nodes.iter().map(|node| node.value()).collect();
    let mut slots = Slots::new(&held);
    // Nodes someone outside this graph still refers to keep their values.
    let mut in_graph_refs = vec![0usize; n];
    for ins in &g.input_index {
        for &j in ins {
            in_graph_refs[j] += 1;
        }
    }
    let mut keep = vec![false; n];
    for &o in &g.outputs {
        keep[o] = true;
    }
    for (j, node) in g.nodes.iter().enumerate() {
        // Referenced from outside this graph, or saved for a backward pass not built yet.
        if Arc::strong_count(node) > 1 + in_graph_refs[j]
            || (node.requires_grad() && !node.grad_taken())
        {
            keep[j] = true;
        }
    }
    run_steps(g, schedule, &mut slots, &keep, true)
}

/// Runs the steps of `schedule` over `g`, reading and filling `slots` (one per graph
/// position) and releasing each value after its last reader. `keep[j]`: the value of node
/// `j` must survive the run; with `publish` it is also stored in the node.
fn run_steps(
    g: &Graph,
    schedule: &Schedule,
    slots: &mut Slots<'_>,
    keep: &[bool],
    publish: bool,
) -> Result<()> {
    crate::conv_direct::read_conv_settings();
    let profile = profiling();
    // Step timings are printed after the evaluation: writing between steps would let the
    // worker threads fall asleep and charge their wake-up to the next step.
    // Only the step and its time are recorded while the graph runs: formatting a line per
    // step inside the loop cost about as much as a small kernel.
    let mut timings: Vec<(usize, f64)> =
        Vec::with_capacity(if profile { schedule.steps.len() } else { 0 });
    for (s, step) in schedule.steps.iter().enumerate() {
        let i = step.node;
        let node = &g.nodes[i];
        let started = profile.then(std::time::Instant::now);
        let value = match &step.kind {
            StepKind::MatmulEpilogue {
                program,
                inputs,
                slot,
                matmul,
                views,
            } => crate::epilogue::run(g, i, program, inputs, *slot, *matmul, views, slots, keep)?,
            kind => run_step(g, i, kind, slots)?,
        };
        if let Some(t0) = started {
            timings.push((s, t0.elapsed().as_secs_f64() * 1e6));
        }
        if publish && keep[i] {
            node.set_value(value.clone());
        }
        slots.set(i, value);
        for &j in &schedule.free_after[s] {
            slots.release(j);
        }
    }
    for (s, us) in timings {
        let step = &schedule.steps[s];
        let node = &g.nodes[step.node];
        let kind = match &step.kind {
            StepKind::Fused { program, .. } => format!("fused[{}]", program.instrs.len()),
            StepKind::MatmulEpilogue { program, .. } => {
                format!("mm+fused[{}]", program.instrs.len())
            }
            StepKind::Reduce { .. } => "reduce".to_string(),
            StepKind::Source => "source".to_string(),
            StepKind::View => "view".to_string(),
            StepKind::Kernel => "kernel".to_string(),
        };
        eprintln!(
            "pyflame-profile {:>9.1} us  {:<12} {:<20} {:?} {}",
            us,
            kind,
            node.op.name(),
            node.shape,
            node.dtype
        );
    }
    Ok(())
}

fn conv_params(a: &ConvAttrs) -> conv::ConvParams {
    conv::ConvParams {
        stride: a.stride,
        padding: a.padding,
        dilation: a.dilation,
        groups: a.groups,
    }
}

fn pool_params(a: &PoolAttrs) -> pool::PoolParams {
    pool::PoolParams {
        kernel: a.kernel,
        stride: a.stride,
        padding: a.padding,
        dilation: a.dilation,
        count_include_pad: a.count_include_pad,
    }
}

/// True when `PYFLAME_PROFILE` is set: every step's time goes to stderr.
fn profiling() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| {
        std::env::var_os("PYFLAME_PROFILE").is_some_and(|v| !v.is_empty() && v != "0")
    })
}

fn slot<'s>(slots: &'s Slots<'_>, j: usize) -> Result<&'s Value> {
    slots
        .get(j)
        .ok_or_else(|| Error::Invalid(format!("internal: value of graph node %{j} is missing")))
}

/// Program input for graph node `j`: its value, or the scalar of an inlined `full`.
pub(crate) fn program_input(g: &Graph, j: usize, slots: &Slots<'_>) -> Result<Input> {
    match (slots.get(j), &g.nodes[j].op) {
        (Some(v), _) => Ok(Input::Tensor(v.clone())),
        (None, Op::Full { value }) => Ok(Input::Scalar(*value)),
        _ => Err(Error::Invalid(format!(
            "internal: program input %{j} is not available"
        ))),
    }
}

fn program_inputs(g: &Graph, inputs: &[usize], slots: &Slots<'_>) -> Result<Vec<Input>> {
    inputs.iter().map(|&j| program_input(g, j, slots)).collect()
}

fn run_step(g: &Graph, i: usize, kind: &StepKind, slots: &Slots<'_>) -> Result<Value> {
    let node = &g.nodes[i];
    let ins = &g.input_index[i];
    match kind {
        StepKind::Source => sources::evaluate(&node.op, &node.shape, node.dtype),
        StepKind::Fused { program, inputs } => {
            let inputs = program_inputs(g, inputs, slots)?;
            program.evaluate(&inputs, &node.shape, node.dtype)
        }
        StepKind::Reduce {
            op,
            program,
            inputs,
            acc,
            in_shape,
            outer,
            r,
            inner,
        } => {
            let inputs = program_inputs(g, inputs, slots)?;
            run_reduce(
                *op,
                program,
                &inputs,
                *acc,
                in_shape,
                *outer,
                *r,
                *inner,
                &node.shape,
                node.dtype,
            )
        }
        StepKind::View => movement::view(&node.op, slot(slots, ins[0])?, &node.shape),
        StepKind::MatmulEpilogue { .. } => Err(Error::Invalid(
            "internal: matmul epilogue steps run through epilogue::run".into(),
        )),
        StepKind::Kernel => match &node.op {
            Op::MatMul => run_matmul(
                slot(slots, ins[0])?,
                slot(slots, ins[1])?,
                &node.shape,
                node.dtype,
            ),
            Op::Cat { axis } => {
                let vals: Vec<Value> = ins
                    .iter()
                    .map(|&j| slot(slots, j).cloned())
                    .collect::<Result<_>>()?;
                movement::cat(&vals, *axis, &node.shape)
            }
            Op::Take { axis } => movement::take(
                slot(slots, ins[0])?,
                slot(slots, ins[1])?,
                *axis,
                &node.shape,
            ),
            Op::Softmax { axis, log } => {
                softmax::softmax(slot(slots, ins[0])?, *axis, *log, node.dtype)
            }
            Op::ArgReduce { is_max, axis, .. } => {
                run_arg_reduce(slot(slots, ins[0])?, *is_max, *axis, &node.shape)
            }
            Op::Contiguous => materialize(slot(slots, ins[0])?, node.dtype),
            Op::Conv2d(a) => conv::conv2d(
                slot(slots, ins[0])?,
                slot(slots, ins[1])?,
                &conv_params(a),
                &node.shape,
                node.dtype,
            ),
            Op::Conv2dFused(e) => {
                let extra = |k: usize| slot(slots, ins[k]);
                let bias = e.bias.then(|| extra(2)).transpose()?;
                let residual = e.residual.then(|| extra(2 + e.bias as usize)).transpose()?;
                conv::conv2d_fused(
                    slot(slots, ins[0])?,
                    slot(slots, ins[1])?,
                    bias,
                    residual,
                    e.clamp,
                    &conv_params(&e.conv),
                    &node.shape,
                    node.dtype,
                )
            }
            Op::Conv2dGradInput(a) => conv::conv2d_backward_input(
                slot(slots, ins[0])?,
                slot(slots, ins[1])?,
                &conv_params(a),
                &node.shape,
                node.dtype,
            ),
            Op::Conv2dGradWeight(a) => conv::conv2d_backward_weight(
                slot(slots, ins[0])?,
                slot(slots, ins[1])?,
                &conv_params(a),
                &node.shape,
                node.dtype,
            ),
            Op::Pool2d { kind, attrs } => {
                let (x, p) = (slot(slots, ins[0])?, pool_params(attrs));
                match kind {
                    PoolKind::Max => pool::max_pool2d(x, &p, &node.shape, node.dtype),
                    PoolKind::Avg => pool::avg_pool2d(x, &p, &node.shape, node.dtype),
                    PoolKind::AdaptiveAvg => pool::adaptive_avg_pool2d(x, &node.shape, node.dtype),
                }
            }
            Op::Pool2dGrad { kind, attrs } => {
                let p = pool_params(attrs);
                match kind {
                    PoolKind::Max => pool::max_pool2d_backward(
                        slot(slots, ins[0])?,
                        slot(slots, ins[1])?,
                        &p,
                        node.dtype,
                    ),
                    PoolKind::Avg => {
                        pool::avg_pool2d_backward(slot(slots, ins[0])?, &p, &node.shape, node.dtype)
                    }
                    PoolKind::AdaptiveAvg => pool::adaptive_avg_pool2d_backward(
                        slot(slots, ins[0])?,
                        &node.shape,
                        node.dtype,
                    ),
                }
            }
            Op::Unslice { starts, steps } => {
                movement::unslice(slot(slots, ins[0])?, starts, steps, &node.shape)
            }
            Op::TakeGrad { axis } => movement::take_grad(
                slot(slots, ins[0])?,
                slot(slots, ins[1])?,
                *axis,
                &node.shape,
            ),
            Op::NormStats(_)
            | Op::NormApply { .. }
            | Op::NormGradInput { .. }
            | Op::NormGradAffine { .. } => {
                let vals = ins
                    .iter()
                    .map(|&j| slot(slots, j))
                    .collect::<Result<Vec<_>>>()?;
                norm::run(&node.op, &vals, &node.shape, node.dtype)
            }
            Op::Attention(_) | Op::AttentionGrad(_) => {
                let vals = ins
                    .iter()
                    .map(|&j| slot(slots, j))
                    .collect::<Result<Vec<_>>>()?;
                attention::run(&node.op, &vals, &node.shape, node.dtype)
            }
            Op::AdamStep(_) => {
                let vals = ins
                    .iter()
                    .map(|&j| slot(slots, j))
                    .collect::<Result<Vec<_>>>()?;
                crate::optim::run(&node.op, &vals, &node.shape, node.dtype)
            }
            other => Err(Error::NotImplemented(format!(
                "the CPU backend has no kernel for {}",
                other.name()
            ))),
        },
    }
}

/// Adapts a fused program to the reduction kernels' [`reduce::Source`].
struct ProgramSource<'a> {
    program: &'a crate::fused::Program,
    prepared: crate::fused::PreparedInputs<'a>,
    error: Mutex<Option<Error>>,
}

impl<T: Element> reduce::Source<T> for ProgramSource<'_> {
    fn fill(&self, start: usize, out: &mut [T]) {
        if let Err(e) = self.program.fill_range(&self.prepared, start, out) {
            if let Ok(mut slot) = self.error.lock() {
                slot.get_or_insert(e);
            }
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn run_reduce(
    op: ReduceOp,
    program: &crate::fused::Program,
    inputs: &[Input],
    acc: DType,
    in_shape: &[usize],
    outer: usize,
    r: usize,
    inner: usize,
    out_shape: &[usize],
    out_dtype: DType,
) -> Result<Value> {
    let kind = match op {
        ReduceOp::Sum | ReduceOp::Mean => reduce::ReduceKind::Sum,
        ReduceOp::Prod => reduce::ReduceKind::Prod,
        ReduceOp::Max => reduce::ReduceKind::Max,
        ReduceOp::Min => reduce::ReduceKind::Min,
    };
    // A plain contiguous input of the accumulator dtype is reduced in place.
    let direct = match (program.instrs.len(), inputs) {
        (1, [Input::Tensor(v)]) if v.dtype() == acc && v.is_contiguous() => Some(v.clone()),
        _ => None,
    };
    let sum = matches!(op, ReduceOp::Sum | ReduceOp::Mean);
    let copies = r == 1
        && (!sum || !out_dtype.is_float() || matches!(out_dtype, DType::Float32 | DType::Float64));
    if let Some(v) = direct.as_ref().filter(|v| copies && v.dtype() == out_dtype) {
        // Reductions of one element: a copy of the input (a global pooling over 1x1 maps at
        // the end of a network), not the input's own buffer, so that the result does not
        // change when the input is later updated in place (an optimizer's step).
        let n = outer * inner;
        let mut out_storage = Storage::uninit(out_dtype, n)?;
        dispatch_dtype!(out_dtype, T => {
            let values = &v.storage.as_slice::<T>()?[v.offset..v.offset + n];
            out_storage.as_mut_slice::<T>()?.copy_from_slice(values);
        });
        // A sum starts from zero, as NumPy's and PyTorch's do: -0.0 sums to 0.0.
        match out_dtype {
            DType::Float32 if sum => out_storage
                .as_mut_slice::<f32>()?
                .iter_mut()
                .for_each(|x| *x += 0.0),
            DType::Float64 if sum => out_storage
                .as_mut_slice::<f64>()?
                .iter_mut()
                .for_each(|x| *x += 0.0),
            _ => {}
        }
        return Ok(Value::contiguous(Arc::new(out_storage), out_shape.to_vec()));
    }
    let prepared = program.prepare(inputs, in_shape)?;
    let src = ProgramSource {
        program,
        prepared,
        error: Mutex::new(None),
    };
    let mut out_storage = Storage::uninit(out_dtype, outer * inner)?;
    macro_rules! go {
        ($T:ty) => {{
            let mut acc_out: Vec<$T> = vec![<$T>::default(); outer * inner];
            match &direct {
                Some(v) => {
                    let s = &v.storage.as_slice::<$T>()?[v.offset..v.offset + outer * r * inner];
                    reduce::reduce(kind, s, outer, r, inner, &mut acc_out);
                }
                None => reduce::reduce(kind, &src as &dyn reduce::Source<$T>, outer, r, inner, &mut acc_out),
            }
            if let Some(e) = src.error.lock().ok().and_then(|mut e| e.take()) {
                return Err(e);
            }
            let scale = if op == ReduceOp::Mean { 1.0 / r as f64 } else { 1.0 };
            dispatch_dtype!(out_dtype, O => {
                let out = out_storage.as_mut_slice::<O>()?;
                if op == ReduceOp::Mean {
                    out.iter_mut().zip(&acc_out).for_each(|(o, &x)| *o = O::from_f64(x.to_f64() * scale));
                } else {
                    out.iter_mut().zip(&acc_out).for_each(|(o, &x)| *o = convert::<$T, O>(x));
                }
            });
        }};
    }
    match acc {
        DType::Float32 => go!(f32),
        DType::Float64 => go!(f64),
        _ => go!(i64),
    }
    Ok(Value::contiguous(Arc::new(out_storage), out_shape.to_vec()))
}

#[inline(always)]
fn convert<A: Element, B: Element>(x: A) -> B {
    match A::DTYPE {
        DType::Float64 => B::from_f64(x.to_f64()),
        d if d.is_float() => B::from_f32(x.to_f32()),
        _ => B::from_i64(x.to_i64()),
    }
}

fn run_arg_reduce(
    x: &Value,
    is_max: bool,
    axis: Option<usize>,
    out_shape: &[usize],
) -> Result<Value> {
    let acc = match crate::fused::kind_of(x.dtype()) {
        crate::fused::Kind::F32 => DType::Float32,
        crate::fused::Kind::F64 => DType::Float64,
        crate::fused::Kind::I64 => DType::Int64,
    };
    let v = materialize(x, acc)?;
    let (outer, r, inner) = match axis {
        Some(a) if !x.shape.is_empty() => (
            x.shape[..a].iter().product(),
            x.shape[a],
            x.shape[a + 1..].iter().product(),
        ),
        _ => (1, v.numel(), 1),
    };
    let mut out = vec![0i64; outer * inner];
    dispatch_dtype!(acc, T => {
        match acc {
            DType::Float32 | DType::Float64 | DType::Int64 => {}
            _ => unreachable!(),
        }
        arg_reduce_typed::<T>(&v, is_max, outer, r, inner, &mut out)?;
    });
    let s = Storage::from_slice(&out)?;
    Ok(Value::contiguous(Arc::new(s), out_shape.to_vec()))
}

fn arg_reduce_typed<T: Element>(
    v: &Value,
    is_max: bool,
    outer: usize,
    r: usize,
    inner: usize,
    out: &mut [i64],
) -> Result<()> {
    match T::DTYPE {
        DType::Float32 => {
            reduce::arg_reduce::<f32>(is_max, v.storage.as_slice::<f32>()?, outer, r, inner, out)
        }
        DType::Float64 => {
            reduce::arg_reduce::<f64>(is_max, v.storage.as_slice::<f64>()?, outer, r, inner, out)
        }
        _ => reduce::arg_reduce::<i64>(is_max, v.storage.as_slice::<i64>()?, outer, r, inner, out),
    }
    Ok(())
}

/// Batch layout of one matmul operand: (batch stride, row stride, col stride), or `None`
/// when its batch axes cannot be expressed with a single stride.
fn operand_strides(v: &Value, batch: &[usize]) -> Result<Option<(isize, isize, isize)>> {
    let nd = v.shape.len();
    let (rs, cs) = (v.strides[nd - 2], v.strides[nd - 1]);
    let mut full = batch.to_vec();
    full.extend_from_slice(&v.shape[nd - 2..]);
    let strides = crate::fused::broadcast_strides(v, &full)?;
    let bstr = &strides[..batch.len()];
    if batch.contains(&0) {
        return Ok(Some((0, rs, cs)));
    }
    // Find s with bstr[i] == s * prod(batch[i+1..]) on every axis of size > 1.
    let mut s: Option<isize> = None;
    let mut ok = true;
    let mut inner = 1isize;
    for i in (0..batch.len()).rev() {
        if batch[i] > 1 {
            let base = *s.get_or_insert(bstr[i] / inner);
            ok &= base * inner == bstr[i];
        }
        inner *= batch[i] as isize;
    }
    Ok(if ok {
        Some((s.unwrap_or(0), rs, cs))
    } else {
        None
    })
}

/// `a @ b` (batched, broadcast) into a new contiguous value of `out_shape`.
pub(crate) fn run_matmul(a: &Value, b: &Value, out_shape: &[usize], dtype: DType) -> Result<Value> {
    let nd = out_shape.len();
    let batch_shape = &out_shape[..nd - 2];
    let (m, n) = (out_shape[nd - 2], out_shape[nd - 1]);
    let k = a.shape[a.shape.len() - 1];
    let batch: usize = batch_shape.iter().product();
    let prepare = |v: &Value| -> Result<(Value, (isize, isize, isize))> {
        if let Some(st) = operand_strides(v, batch_shape)? {
            return Ok((v.clone(), st));
        }
        // Materialize the broadcast operand so its batch axes collapse.
        let mut full = batch_shape.to_vec();
        full.extend_from_slice(&v.shape[v.shape.len() - 2..]);
        let e = movement::view(&Op::Expand, v, &full)?;
        let c = materialize(&e, v.dtype())?;
        let st = operand_strides(&c, batch_shape)?
            .ok_or_else(|| Error::Invalid("internal: matmul operand layout".into()))?;
        Ok((c, st))
    };
    let (a, sa) = prepare(a)?;
    let (b, sb) = prepare(b)?;
    let mut storage = Storage::uninit(dtype, numel(out_shape))?;
    macro_rules! go {
        ($T:ty) => {{
            let ar = matmul::MatRef {
                data: a.storage.as_slice::<$T>()?,
                offset: a.offset,
                batch_stride: sa.0,
                row_stride: sa.1,
                col_stride: sa.2,
            };
            let br = matmul::MatRef {
                data: b.storage.as_slice::<$T>()?,
                offset: b.offset,
                batch_stride: sb.0,
                row_stride: sb.1,
                col_stride: sb.2,
            };
            matmul::matmul::<$T>(batch, m, k, n, ar, br, storage.as_mut_slice::<$T>()?)?;
        }};
    }
    match dtype {
        DType::Float32 => go!(f32),
        DType::Float64 => go!(f64),
        DType::Float16 => go!(half::f16),
        DType::BFloat16 => go!(half::bf16),
        DType::Int64 => go!(i64),
        DType::Int32 => go!(i32),
        DType::Int16 => go!(i16),
        DType::Int8 => go!(i8),
        DType::UInt8 => go!(u8),
        DType::Bool => {
            return Err(Error::DType(
                "matmul is not supported for bool tensors".into(),
            ))
        }
    }
    Ok(Value::contiguous(Arc::new(storage), out_shape.to_vec()))
}
