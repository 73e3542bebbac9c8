//! Pinning pool workers to cores, as ONNX Runtime pins its intra-op threads.
//!
//! Unpinned, the workers of a pool that just woke up often share a core until the kernel's
//! load balancer spreads them, a few milliseconds later: on the 2-core development machine,
//! a batch-1 ResNet-18 run right after a pause took 1.5-3x its steady time for the first
//! 5-25 runs, against 2-4 runs pinned (`benches/RESULTS.md`, session 9). Worker `i` of a
//! pool of at most as many threads as the process may use cores gets the `i`-th of those
//! cores; larger pools, other systems and `PYFLAME_PIN_THREADS=0` leave the workers free.

/// Whether pinning is on: `PYFLAME_PIN_THREADS` is unset or anything but `0` (read once).
pub fn pinning_enabled() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("PYFLAME_PIN_THREADS").map_or(true, |v| v.trim() != "0"))
}

/// The cores the calling thread may run on, in increasing order (empty when unknown).
pub fn allowed_cpus() -> Vec<usize> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `set` is a plain bit set that sched_getaffinity fills for the calling
        // thread (pid 0); CPU_ISSET only reads it, for indices below CPU_SETSIZE.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
                return Vec::new();
            }
            (0..libc::CPU_SETSIZE as usize)
                .filter(|&c| libc::CPU_ISSET(c, &set))
                .collect()
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Vec::new()
    }
}

/// Pins the calling thread to core `cpu`; false when the system refused or cannot.
pub fn pin_current_thread(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        if cpu >= libc::CPU_SETSIZE as usize {
            return false;
        }
        // SAFETY: `set` is a zeroed bit set with one bit (below CPU_SETSIZE) set, passed
        // with its size for the calling thread (pid 0).
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        false
    }
}

/// A rayon `start_handler` for a pool of `num_threads` workers: pins worker `i` to the
/// `i`-th core the creating thread may use, when pinning is on and the pool fits those cores.
pub fn start_handler(num_threads: usize) -> impl Fn(usize) + Send + Sync + 'static {
    let cpus = allowed_cpus();
    let pin = pinning_enabled() && num_threads >= 2 && num_threads <= cpus.len();
    move |index| {
        if pin {
            if let Some(&cpu) = cpus.get(index) {
                pin_current_thread(cpu);
            }
        }
    }
}

/// Builds rayon's global pool with [`start_handler`] (the number of threads rayon would
/// choose: `RAYON_NUM_THREADS`, else one per core), its workers named `pyflame-wrk-<i>`.
/// Does nothing when the global pool was built already.
pub fn init_global_pool() {
    let threads = std::env::var("RAYON_NUM_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|&n| n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    // An error means the global pool exists already (built by an earlier call or by a
    // parallel loop that ran first): it keeps its threads as they are.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("pyflame-wrk-{i}"))
        .start_handler(start_handler(threads))
        .build_global();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_cpus_lists_at_least_the_current_core() {
        let cpus = allowed_cpus();
        if cfg!(target_os = "linux") {
            assert!(!cpus.is_empty());
            assert!(cpus.windows(2).all(|w| w[0] < w[1]));
        }
    }

    #[test]
    fn pinning_a_thread_restricts_it_to_that_core() {
        let cpus = allowed_cpus();
        let Some(&last) = cpus.last() else { return };
        let seen = std::thread::spawn(move || {
            assert!(pin_current_thread(last));
            allowed_cpus()
        })
        .join()
        .unwrap();
        assert_eq!(seen, vec![last]);
        assert!(!pin_current_thread(usize::MAX));
    }
}
