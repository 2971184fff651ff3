//! `gateway.worker_priority` with the real `tungate run` in a namespace (needs root): the
//! data-path workers run `SCHED_FIFO` at the configured priority (read back from
//! `/proc/PID/task/TID/sched`) while every other thread keeps normal scheduling, and the
//! gateway forwards; without `CAP_SYS_NICE` and with `RLIMIT_RTPRIO` 0 it refuses to start
//! with a message that names the remedies.

use std::time::Duration;

use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::process::binary;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, IoPath, RIP, RS_MAC, VIP};
use tungate_test_support::{FrameSocket, Topology, Tungate};

/// `(policy, prio)` of thread `tid` of `pid` from `/proc/PID/task/TID/sched` (policy 0 is
/// SCHED_OTHER, 1 SCHED_FIFO; for SCHED_FIFO the kernel's prio is 99 − priority).
fn policy(pid: u32, tid: &str) -> (u32, u32) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/sched")).expect("sched");
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
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("tasks")
        .map(|t| {
            let tid = t.expect("task").file_name().to_string_lossy().into_owned();
            let comm =
                std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm")).unwrap_or_default();
            let (p, prio) = policy(pid, &tid);
            (comm.trim().to_owned(), p, prio)
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
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    for _ in 0..20 {
        rs.send(&ethernet(
            GW_RS_MAC,
            RS_MAC,
            &ipip(RIP, GIP, &udp(VIP, CIP, 64, 64)),
        ));
    }
    let got = client.receive_for(Duration::from_millis(400), |f| {
        f.len() >= 34 && f[12..14] == [8, 0] && f[30..34] == CIP.octets()
    });
    assert_eq!(got.len(), 20);
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

crate::on_both_io_paths!(workers_run_sched_fifo);

#[test]
fn without_cap_sys_nice_it_refuses_to_start_and_says_why() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tungate.toml");
    std::fs::write(&config, t.config("worker_priority = 20")).unwrap();
    let state = dir.path().join("state");
    // The capability gone from the bounding set (so root's exec cannot regain it) and
    // RLIMIT_RTPRIO 0: no way to SCHED_FIFO.
    let out = t.gw.exec(
        "prlimit",
        &[
            "--rtprio=0",
            "setpriv",
            "--bounding-set=-sys_nice",
            "--inh-caps=-sys_nice",
            &binary(),
            "run",
            "--config",
            config.to_str().unwrap(),
            "--state-dir",
            state.to_str().unwrap(),
        ],
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
    let listed = t.gw.exec("nft", &["list", "tables"]);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("tungate"),
        "no fence left behind"
    );
    assert!(
        !t.gw
            .ip(&["-d", "link", "show", "dev", "g0"])
            .contains("prog/xdp"),
        "no XDP program left behind"
    );
}
