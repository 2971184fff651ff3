//! Hostile plugins bound to one VIP through the real data path (needs root): tungate runs
//! in-process in namespace `gw`, wired as `tungate run` wires it (its control plane applies
//! each chain), the test alone on the machine (it measures its own process), a simulated
//! real server sends IPIP replies for VIP A (whose chain holds the hostile plugin) and VIP B
//! (no plugins), and the client counts what arrives.
//!
//! For every hostile plugin — one that hits the deadline every batch, one slow but under the
//! deadline, one that grows its memory to the cap every batch, one that grows past the cap,
//! one that logs in a loop, one with thousands of functions — VIP B's replies all arrive,
//! VIP A's are each delivered or counted, the failures are counted under their kind, and the
//! gateway's memory stays bounded. No timing is asserted here; the forwarding rate of VIP B
//! under each plugin is measured by `examples/hostile_plugins.rs`
//! (results in `deploy/bench/hostile-plugins.md`).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tungate_packet::DropReason;
use tungate_plugin_host::engine::{
    LOG_BURST, LOG_LINES_PER_SECOND, MAX_FUNCTIONS, MEMORY_CAP_BYTES,
};
use tungate_plugin_host::{BindingSnapshot, Limits, Refusal};
use tungate_test_support::hostile::Hostile;
use tungate_test_support::inproc::{InProcessGateway, own_rss_kib};
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC};
use tungate_test_support::{FrameSocket, Topology, machine};

const VIP_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const VIP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const PER_VIP: u32 = 200;
const QUIET: Duration = Duration::from_millis(500);

/// Reply `n` of `vip`, as the real server sends it.
fn reply(vip: Ipv4Addr, n: u32) -> Vec<u8> {
    let mut p = udp(vip, CIP, 64, 4);
    p[28..32].copy_from_slice(&n.to_be_bytes());
    p[26..28].fill(0);
    ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, &p))
}

/// (VIP, number) of a reply the client received.
fn received(frame: &[u8]) -> Option<(Ipv4Addr, u32)> {
    (frame.len() >= 46 && frame[12..14] == [8, 0] && frame[30..34] == CIP.octets()).then(|| {
        (
            Ipv4Addr::new(frame[26], frame[27], frame[28], frame[29]),
            u32::from_be_bytes(frame[42..46].try_into().unwrap()),
        )
    })
}

/// Sends `PER_VIP` replies of each VIP, interleaved, and returns the numbers the client got
/// per VIP (in arrival order).
fn exchange(rs: &FrameSocket, client: &FrameSocket) -> (Vec<u32>, Vec<u32>) {
    for n in 0..PER_VIP {
        rs.send(&reply(VIP_A, n));
        rs.send(&reply(VIP_B, n));
        if n % 16 == 15 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
    let (mut a, mut b) = (Vec::new(), Vec::new());
    for f in client.receive_for(QUIET, |f| received(f).is_some()) {
        match received(&f) {
            Some((v, n)) if v == VIP_A => a.push(n),
            Some((v, n)) if v == VIP_B => b.push(n),
            other => panic!("unexpected reply {other:?}"),
        }
    }
    (a, b)
}

fn binding_a(stats: &[BindingSnapshot]) -> &BindingSnapshot {
    stats
        .iter()
        .find(|s| s.key.vip == VIP_A)
        .expect("VIP A's binding")
}

#[test]
fn vip_b_keeps_forwarding_while_each_hostile_plugin_is_bound_to_vip_a() {
    let _alone = machine::alone();
    let t = Topology::new();
    let gw = InProcessGateway::start(&t, &[VIP_A, VIP_B], 1, Limits::default());
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    // Resolve the client's neighbour first.
    rs.send(&reply(VIP_B, u32::MAX));
    assert_eq!(
        client.receive_for(QUIET, |f| received(f).is_some()).len(),
        1
    );
    let rss_before = own_rss_kib();
    let all: Vec<u32> = (0..PER_VIP).collect();

    for kind in Hostile::ALL {
        let name = kind.name();
        let bytes = kind.module();
        let started = Instant::now();
        let info = gw
            .check(&bytes)
            .unwrap_or_else(|r| panic!("{name} refused: {r}"));
        let check_time = started.elapsed();
        gw.bind_one(&[VIP_A, VIP_B], VIP_A, &name, &bytes);
        let before = gw.counters();
        let sent_at = Instant::now();
        let (a, b) = exchange(&rs, &client);
        let elapsed = sent_at.elapsed().as_secs_f64();
        let after = gw.counters();
        let stats = gw.plugin_stats();
        let s = binding_a(&stats);
        let vip = |snapshot: &tungate_datapath::counters::Snapshot, v| {
            *snapshot.vip(v).expect("VIP counters")
        };
        let (a_before, a_after) = (vip(&before, VIP_A), vip(&after, VIP_A));
        let plugin_error = a_after.drops.get(DropReason::PluginError)
            - a_before.drops.get(DropReason::PluginError);
        eprintln!(
            "{name}: {} bytes, checked in {check_time:?}; VIP A {} delivered, {plugin_error} \
             dropped on error; VIP B {} delivered; errors {:?}; quarantined {}; calls {}; \
             log lines {} (suppressed {})",
            info.size,
            a.len(),
            b.len(),
            s.errors,
            s.quarantined,
            s.calls,
            s.log_lines,
            s.log_suppressed
        );

        assert_eq!(b, all, "{name}: every reply of VIP B arrives, in order");
        assert_eq!(
            a.len() as u64 + plugin_error,
            u64::from(PER_VIP),
            "{name}: each reply of VIP A is delivered or counted as a plugin error"
        );
        assert!(
            a.windows(2).all(|w| w[0] < w[1]),
            "{name}: in order, none twice"
        );
        let failures = s.errors.deadline + s.errors.memory_cap + s.errors.trap;
        assert_eq!(s.errors.bad_verdict, 0, "{name}");
        match kind {
            Hostile::Deadline => {
                // One deadline hit exhausts the binding's time budget, so it is called at
                // most once per budget window (and quarantined after five such windows).
                assert!(s.errors.deadline >= 1, "{name}");
                assert_eq!(s.calls, s.errors.deadline, "{name}: every call failed");
                assert_eq!(failures, s.errors.deadline, "{name}: deadline only");
                assert!(a.is_empty(), "{name}: fails closed");
            }
            Hostile::MemoryPastCap => {
                assert!(s.quarantined, "{name}: quarantined");
                assert!(s.errors.memory_cap >= 1, "{name}");
                assert_eq!(failures, s.errors.memory_cap, "{name}: memory cap only");
                assert!(a.is_empty(), "{name}: fails closed");
            }
            Hostile::MemoryToCap => {
                // Reaching the cap is allowed; only going past it fails.
                assert_eq!(s.errors.memory_cap, 0, "{name}");
                assert!(s.calls >= 1, "{name}: called");
            }
            Hostile::LogFlood => {
                let allowed = u64::from(LOG_BURST)
                    + (f64::from(LOG_LINES_PER_SECOND) * (elapsed + 1.0)).ceil() as u64;
                assert!(
                    s.log_lines <= allowed,
                    "{name}: {} lines logged",
                    s.log_lines
                );
                assert!(s.log_lines >= 1, "{name}: some lines logged");
                // Each call that ran to its end asked 1000 lines (one over the time budget
                // also ran to its end, and counts as a deadline failure).
                let asked = s.log_lines + s.log_suppressed;
                assert!(
                    asked >= 1000 * (s.calls - failures) && asked <= 1000 * s.calls,
                    "{name}: {asked} lines asked in {} calls",
                    s.calls
                );
            }
            Hostile::SlowUnderDeadline | Hostile::ManyFunctions(_) => {
                assert!(s.calls >= 1, "{name}: called");
            }
        }
        if matches!(kind, Hostile::ManyFunctions(_)) {
            assert_eq!(failures, 0, "{name}");
            assert_eq!(a, all, "{name}: passes everything");
        }
    }
    // Past the function limit, a module is refused from its function section, before any
    // compilation.
    let too_many = Hostile::ManyFunctions(MAX_FUNCTIONS + 1).module();
    let started = Instant::now();
    let refusal = gw.check(&too_many).expect_err("refused");
    eprintln!(
        "functions-{}: {} bytes, refused in {:?}: {refusal}",
        MAX_FUNCTIONS + 1,
        too_many.len(),
        started.elapsed()
    );
    assert!(
        matches!(
            refusal,
            Refusal::TooManyFunctions {
                max: MAX_FUNCTIONS,
                ..
            }
        ),
        "{refusal}"
    );
    let rss_after = own_rss_kib();
    eprintln!("test process RSS: {rss_before} KiB before the plugins, {rss_after} KiB after");
    // One instance at most at its memory cap, plus compiled code: bounded, whatever the
    // plugins did.
    let bound = (MEMORY_CAP_BYTES as u64 / 1024) * 2 + 64 * 1024;
    assert!(
        rss_after <= rss_before + bound,
        "RSS grew by {} KiB (bound {bound} KiB)",
        rss_after - rss_before
    );
    gw.stop();
}
