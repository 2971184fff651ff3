//! The data-path workers' scheduling policy (`gateway.worker_priority`): `SCHED_FIFO` at the
//! configured priority, set by each worker on itself before it takes its first packet.
//!
//! A normal (`SCHED_OTHER`) worker is preempted by every task the scheduler prefers on its
//! core and, once woken by a packet, may wait for the running task's slice to end: the
//! latency tail traced in deploy/bench/results/xdp-cpu-latency.md. A `SCHED_FIFO` worker
//! runs as soon as it is runnable and keeps its core until it sleeps.

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

#[cfg(test)]
mod tests {
    use super::*;

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
        #[repr(C)]
        struct Header {
            version: u32,
            pid: i32,
        }
        #[repr(C)]
        #[derive(Clone, Copy, Default)]
        struct Data {
            effective: u32,
            permitted: u32,
            inheritable: u32,
        }
        const VERSION_3: u32 = 0x2008_0522;
        const CAP_SYS_NICE: u32 = 23;
        let mut header = Header {
            version: VERSION_3,
            pid: 0,
        };
        let mut data = [Data::default(); 2];
        // SAFETY: capget/capset(2) with a version-3 header and the two data words that
        // version uses, both alive across the calls.
        unsafe {
            assert_eq!(
                libc::syscall(libc::SYS_capget, &raw mut header, data.as_mut_ptr()),
                0
            );
            data[0].effective &= !(1 << CAP_SYS_NICE);
            data[0].permitted &= !(1 << CAP_SYS_NICE);
            assert_eq!(
                libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()),
                0,
                "capset: {}",
                std::io::Error::last_os_error()
            );
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
}
