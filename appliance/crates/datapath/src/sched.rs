//! The data-path workers' scheduling: their policy (`gateway.worker_priority`: `SCHED_FIFO`
//! at the configured priority) and their CPUs (`gateway.worker_cpus`: each worker pinned to
//! its own, the process's other threads kept off them), set before a worker takes its first
//! packet.
//!
//! A normal (`SCHED_OTHER`) worker is preempted by every task the scheduler prefers on its
//! core and, once woken by a packet, may wait for the running task's slice to end: the
//! latency tail traced in deploy/bench/results/xdp-cpu-latency.md. A `SCHED_FIFO` worker
//! runs as soon as it is runnable and keeps its core until it sleeps.

use nix::sched::{CpuSet, sched_setaffinity};
use nix::unistd::Pid;
use tungate_config::host;

/// Why a worker could not take its scheduling policy.
#[derive(Debug, thiserror::Error)]
pub enum SchedError {
    /// The process may not use real-time priorities.
    #[error(
        "gateway.worker_priority = {priority}: not permitted to run the workers SCHED_FIFO \
         ({source}); give tungate CAP_SYS_NICE (systemd: AmbientCapabilities=CAP_SYS_NICE) or \
         an RLIMIT_RTPRIO of at least {priority} (systemd: LimitRTPRIO={priority}, ulimit -r), \
         and leave RestrictRealtime off, or remove gateway.worker_priority"
    )]
    NotPermitted {
        /// The priority asked for.
        priority: u32,
        /// The kernel's answer.
        source: std::io::Error,
    },
    /// Any other refusal (e.g. a priority the kernel does not accept).
    #[error("gateway.worker_priority = {priority}: cannot run the workers SCHED_FIFO: {source}")]
    Other {
        /// The priority asked for.
        priority: u32,
        /// The kernel's answer.
        source: std::io::Error,
    },
}

/// Runs the calling thread `SCHED_FIFO` at `priority` (1–99); `None` leaves it as it is.
pub(crate) fn apply_to_current_thread(priority: Option<u32>) -> Result<(), SchedError> {
    let Some(priority) = priority else {
        return Ok(());
    };
    let param = libc::sched_param {
        sched_priority: i32::try_from(priority).unwrap_or(i32::MAX),
    };
    // SAFETY: sched_setscheduler(2) with pid 0 (the calling thread) and a valid sched_param
    // that lives across the call.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &raw const param) };
    if rc == 0 {
        return Ok(());
    }
    let source = std::io::Error::last_os_error();
    Err(if source.raw_os_error() == Some(libc::EPERM) {
        SchedError::NotPermitted { priority, source }
    } else {
        SchedError::Other { priority, source }
    })
}

/// Why the workers could not be placed on `gateway.worker_cpus`.
#[derive(Debug, thiserror::Error)]
pub enum PlacementError {
    /// A CPU the process may not run on (absent, offline, or outside its affinity).
    #[error("gateway.worker_cpus: {}", host::cpu_not_allowed(*cpu, allowed))]
    NotAllowed {
        /// The CPU asked for.
        cpu: u32,
        /// The CPUs the process may run on.
        allowed: Vec<u32>,
    },
    /// The process's own affinity could not be read.
    #[error("gateway.worker_cpus: cannot read the CPUs this process may run on: {0}")]
    Affinity(std::io::Error),
    /// The kernel refused to pin a worker.
    #[error("gateway.worker_cpus: cannot pin worker {worker} to CPU {cpu}: {source}")]
    Pin {
        /// The worker's index.
        worker: usize,
        /// Its CPU.
        cpu: u32,
        /// The kernel's answer.
        source: nix::Error,
    },
}

/// Checks `cpus` (`gateway.worker_cpus`) against the CPUs the process may run on (as the
/// host check does; this guards a start from a document that skipped it).
pub(crate) fn check_worker_cpus(cpus: Option<&[u32]>) -> Result<(), PlacementError> {
    let allowed = host::allowed_cpus().map_err(PlacementError::Affinity)?;
    for &cpu in cpus.unwrap_or_default() {
        if !allowed.contains(&cpu) {
            return Err(PlacementError::NotAllowed {
                cpu,
                allowed: allowed.to_vec(),
            });
        }
    }
    Ok(())
}

fn cpu_set(cpus: &[u32]) -> CpuSet {
    let mut set = CpuSet::new();
    for &cpu in cpus {
        // Every CPU here came from an affinity mask or was checked against one.
        let _ = set.set(cpu as usize);
    }
    set
}

/// Pins the calling thread (worker `worker`) to `cpu`; `None` leaves it as it is.
pub(crate) fn pin_current_thread(worker: usize, cpu: Option<u32>) -> Result<(), PlacementError> {
    let Some(cpu) = cpu else {
        return Ok(());
    };
    sched_setaffinity(Pid::from_raw(0), &cpu_set(&[cpu])).map_err(|source| PlacementError::Pin {
        worker,
        cpu,
        source,
    })
}

/// Whether a start narrowed the other threads (a start without `worker_cpus` then widens
/// them again).
static NARROWED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Moves every thread of the process but the workers (`tg-worker-*`) onto the CPUs the
/// process may run on minus `cpus`, so that the API, the plugin epoch ticker, the resolver
/// and the rest never preempt a worker; threads they start later inherit that. With `None`
/// it undoes an earlier narrowing, for the workers too. When `cpus` takes every CPU there is nowhere else to go:
/// the threads stay where they may run, with a warning. Best effort: a thread that ends
/// meanwhile is skipped, and a failure is logged, never fatal.
pub(crate) fn keep_other_threads_off(cpus: Option<&[u32]>) {
    use std::sync::atomic::Ordering;
    if cpus.is_none() && !NARROWED.load(Ordering::Relaxed) {
        return;
    }
    let Ok(all) = host::allowed_cpus() else {
        return;
    };
    let taken = cpus.unwrap_or_default();
    let mut rest: Vec<u32> = all.iter().copied().filter(|c| !taken.contains(c)).collect();
    if rest.is_empty() {
        tracing::warn!(
            "gateway.worker_cpus takes every CPU this process may run on ({}): its other \
             threads share them with the workers",
            host::cpu_list(all)
        );
        rest = all.to_vec();
    }
    let set = cpu_set(&rest);
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return;
    };
    for task in tasks.flatten() {
        let name = task.file_name();
        let Ok(tid) = name.to_string_lossy().parse::<i32>() else {
            continue;
        };
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        // Workers placed by `cpus` keep their CPU; unplaced ones (started by a narrowed
        // thread, they inherited its set) are widened with the rest.
        if cpus.is_some() && comm.starts_with("tg-worker-") {
            continue;
        }
        match sched_setaffinity(Pid::from_raw(tid), &set) {
            Ok(()) | Err(nix::Error::ESRCH) => {}
            Err(e) => tracing::warn!(
                "cannot move thread {} off the workers' CPUs: {e}",
                comm.trim()
            ),
        }
    }
    NARROWED.store(cpus.is_some(), Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sched::sched_getaffinity;

    /// The calling thread's policy and priority, as the kernel reports them.
    fn current() -> (i32, i32) {
        let mut param = libc::sched_param { sched_priority: 0 };
        // SAFETY: plain queries of the calling thread (pid 0); param is valid for writes.
        unsafe {
            let policy = libc::sched_getscheduler(0);
            assert_eq!(libc::sched_getparam(0, &raw mut param), 0);
            (policy, param.sched_priority)
        }
    }

    /// Drops CAP_SYS_NICE from the calling thread's effective and permitted sets
    /// (capabilities are per thread: the rest of the test process keeps it).
    fn drop_sys_nice() {
        for set in [caps::CapSet::Effective, caps::CapSet::Permitted] {
            caps::drop(None, set, caps::Capability::CAP_SYS_NICE).expect("drop CAP_SYS_NICE");
        }
    }

    #[test]
    fn none_leaves_the_thread_alone() {
        std::thread::spawn(|| {
            let before = current();
            apply_to_current_thread(None).unwrap();
            assert_eq!(current(), before);
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_priority_makes_the_thread_sched_fifo() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: needs root (CAP_SYS_NICE)");
            return;
        }
        std::thread::spawn(|| {
            apply_to_current_thread(Some(7)).unwrap();
            assert_eq!(current(), (libc::SCHED_FIFO, 7));
        })
        .join()
        .unwrap();
    }

    #[test]
    fn without_cap_sys_nice_and_rtprio_it_is_refused_clearly() {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit(2) into a valid rlimit.
        let rc = unsafe { libc::getrlimit(libc::RLIMIT_RTPRIO, &raw mut limit) };
        assert_eq!(rc, 0);
        if limit.rlim_cur >= 5 {
            eprintln!("skipped: RLIMIT_RTPRIO {} allows it", limit.rlim_cur);
            return;
        }
        std::thread::spawn(|| {
            drop_sys_nice();
            let before = current();
            let e = apply_to_current_thread(Some(5)).unwrap_err();
            assert!(
                matches!(e, SchedError::NotPermitted { priority: 5, .. }),
                "{e:?}"
            );
            let msg = e.to_string();
            assert!(msg.contains("not permitted"), "{msg}");
            assert!(msg.contains("CAP_SYS_NICE"), "{msg}");
            assert!(msg.contains("LimitRTPRIO=5"), "{msg}");
            assert_eq!(current(), before, "the policy must be unchanged");
        })
        .join()
        .unwrap();
    }

    #[test]
    fn a_cpu_the_process_may_not_run_on_is_refused_naming_the_ones_it_may() {
        let allowed = host::allowed_cpus().unwrap();
        assert!(!allowed.is_empty());
        check_worker_cpus(None).unwrap();
        check_worker_cpus(Some(allowed)).unwrap();
        let absent = 1023;
        assert!(
            !allowed.contains(&absent),
            "a machine with 1024 CPUs: {allowed:?}"
        );
        let e = check_worker_cpus(Some(&[allowed[0], absent])).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.starts_with("gateway.worker_cpus: CPU 1023 is not one this process may run on"),
            "{msg}"
        );
        assert!(msg.contains(&host::cpu_list(allowed)), "{msg}");
    }

    #[test]
    fn a_worker_is_pinned_to_its_cpu_alone() {
        let allowed = host::allowed_cpus().unwrap();
        let cpu = *allowed.last().unwrap();
        let own = std::thread::spawn(move || {
            pin_current_thread(0, Some(cpu)).unwrap();
            let set = sched_getaffinity(Pid::from_raw(0)).unwrap();
            (0..CpuSet::count())
                .filter(|&c| set.is_set(c).unwrap())
                .collect::<Vec<usize>>()
        })
        .join()
        .unwrap();
        assert_eq!(own, vec![cpu as usize]);
        // None leaves the thread as it is.
        let before = sched_getaffinity(Pid::from_raw(0)).unwrap();
        pin_current_thread(0, None).unwrap();
        assert_eq!(sched_getaffinity(Pid::from_raw(0)).unwrap(), before);
    }
}
