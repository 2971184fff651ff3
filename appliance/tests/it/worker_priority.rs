//! `gateway.worker_priority` with the real `tungate run` in a namespace (needs root): the
//! data-path workers run `SCHED_FIFO` at the configured priority (read back from
//! `/proc/PID/task/TID/sched`) while every other thread keeps normal scheduling, and the
//! gateway forwards; without `CAP_SYS_NICE` and with `RLIMIT_RTPRIO` 0 it refuses to start
//! with a message that names the remedies.

use std::path::Path;

use tungate_test_support::process::{run_once_through, threads_of};
use tungate_test_support::topology::IoPath;
use tungate_test_support::{Topology, Tungate};

/// `(policy, prio)` of a thread from its `/proc/PID/task/TID/sched` (policy 0 is
/// SCHED_OTHER, 1 SCHED_FIFO; for SCHED_FIFO the kernel's prio is 99 − priority).
fn policy(task: &Path) -> (u32, u32) {
    let text = std::fs::read_to_string(task.join("sched")).expect("sched");
    let field = |name: &str| -> u32 {
        text.lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(name))
            .and_then(|l| l.split(':').nth(1))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {text}"))
    };
    (field("policy"), field("prio"))
}

/// Every thread of `pid`: (name, policy, prio).
fn threads(pid: u32) -> Vec<(String, u32, u32)> {
    threads_of(pid)
        .into_iter()
        .map(|(name, task)| {
            let (p, prio) = policy(&task);
            (name, p, prio)
        })
        .collect()
}

fn workers_run_sched_fifo(io: IoPath) {
    let t = Topology::on(io);
    let tg = Tungate::start(&t.gw, &t.config("workers = 1\nworker_priority = 20"));
    let all = threads(tg.pid());
    let workers: Vec<_> = all
        .iter()
        .filter(|t| t.0.starts_with("tg-worker-"))
        .collect();
    assert_eq!(workers.len(), 1, "{all:?}");
    assert_eq!((workers[0].1, workers[0].2), (1, 99 - 20), "{all:?}");
    for other in all.iter().filter(|t| !t.0.starts_with("tg-worker-")) {
        assert_eq!(other.1, 0, "only the workers are real-time: {all:?}");
    }
    // And it forwards.
    assert_eq!(t.replies_reaching_the_client(20), 20);
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

crate::on_both_io_paths!(workers_run_sched_fifo);

#[test]
fn without_cap_sys_nice_it_refuses_to_start_and_says_why() {
    let t = Topology::new();
    // The capability gone from the bounding set (so root's exec cannot regain it) and
    // RLIMIT_RTPRIO 0: no way to SCHED_FIFO.
    let out = run_once_through(
        &t.gw,
        &[
            "prlimit",
            "--rtprio=0",
            "setpriv",
            "--bounding-set=-sys_nice",
            "--inh-caps=-sys_nice",
        ],
        &t.config("worker_priority = 20"),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr
            .contains("gateway.worker_priority = 20: not permitted to run the workers SCHED_FIFO"),
        "{stderr}"
    );
    assert!(stderr.contains("CAP_SYS_NICE"), "{stderr}");
    assert!(stderr.contains("LimitRTPRIO=20"), "{stderr}");
    t.assert_gateway_left_nothing();
}
