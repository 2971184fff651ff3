//! Benchmark (needs root): VIP B's forwarding rate while a hostile plugin is bound to VIP A.
//!
//! Builds the `rs` / `gw` / `client` namespaces, runs tungate in-process in `gw` (one
//! worker; its control plane, as `tungate run` wires it, applies VIP A's chain), and offers IPIP replies at full
//! rate from `rs` — 15 of VIP B for each one of VIP A, 64-byte UDP — with an AF_PACKET +
//! qdisc-bypass + `sendmmsg` generator. For no plugin (the baseline, measured first and last)
//! and then each hostile plugin, it prints VIP B's forwarded packets per second, and VIP B's
//! packets per second of the worker thread's CPU time (from its schedstat) with the ratio to
//! the baseline — the share of the worker a hostile plugin leaves to other VIPs, which holds
//! still when the machine is shared, unlike the wall-clock rate — as a Markdown table.
//!
//! `cargo run --release -p tungate --example hostile_plugins -- [SECONDS] [no-budget]`
//! (`no-budget` turns the per-binding time budget off, to show what it protects against).

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use tungate_plugin_host::Limits;
use tungate_test_support::flood::BulkSender;
use tungate_test_support::hostile::Hostile;
use tungate_test_support::inproc::{InProcessGateway, own_rss_kib};
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::process::thread_cpu_ns;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC};
use tungate_test_support::{FrameSocket, Topology};

const VIP_A: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const VIP_B: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

fn frame(vip: Ipv4Addr) -> Vec<u8> {
    ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, &udp(vip, CIP, 64, 22)))
}

/// One measurement: VIP A and VIP B forwarded per second, VIP B forwarded per second of the
/// worker's CPU time (what is left of the worker for VIP B, whatever else the machine runs),
/// and the drops of VIP A.
struct Rates {
    a: f64,
    b: f64,
    b_per_cpu: f64,
    a_dropped: u64,
}

fn measure(t: &Topology, gw: &InProcessGateway, seconds: u64) -> Rates {
    let frames = vec![frame(VIP_B), frame(VIP_A)];
    let order: Vec<usize> = (0..16).map(|i| usize::from(i == 15)).collect();
    let sender = BulkSender::open(&t.rs, "r0");
    let before = gw.counters();
    let cpu_before = thread_cpu_ns("self", "tg-worker-0");
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(seconds);
    let thread = std::thread::spawn(move || {
        let mut sent = 0;
        while Instant::now() < stop_at {
            let order: Vec<usize> = order.iter().copied().cycle().take(1024).collect();
            sent += sender.send(&frames, &order, None, stop_at);
        }
        sent
    });
    thread.join().expect("sender");
    let elapsed = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(300));
    let after = gw.counters();
    let cpu = (thread_cpu_ns("self", "tg-worker-0") - cpu_before) as f64 / 1e9;
    let vip =
        |s: &tungate_datapath::counters::Snapshot, v: std::net::Ipv4Addr| *s.vip(v).expect("VIP");
    let (a0, a1) = (vip(&before, VIP_A), vip(&after, VIP_A));
    let (b0, b1) = (vip(&before, VIP_B), vip(&after, VIP_B));
    Rates {
        a: (a1.packets - a0.packets) as f64 / elapsed,
        b: (b1.packets - b0.packets) as f64 / elapsed,
        b_per_cpu: (b1.packets - b0.packets) as f64 / cpu,
        a_dropped: a1.drops.total() - a0.drops.total(),
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let seconds: u64 = args.first().and_then(|a| a.parse().ok()).unwrap_or(3);
    // `no-budget`: no per-binding time budget, to show what it protects against.
    let limits = if args.iter().any(|a| a == "no-budget") {
        Limits {
            filter_time_budget: Duration::from_secs(3600),
            ..Limits::default()
        }
    } else {
        Limits::default()
    };
    let t = Topology::new();
    let gw = InProcessGateway::start(&t, &[VIP_A, VIP_B], 1, limits);
    // Resolve the client's neighbour first.
    let probe = FrameSocket::open(&t.rs, "r0");
    probe.send(&frame(VIP_B));
    std::thread::sleep(Duration::from_millis(300));

    println!(
        "| plugin on VIP A | VIP B forwarded (pps) | VIP B per worker CPU-second | B vs baseline (per CPU-second) | VIP A forwarded (pps) | VIP A dropped | plugin errors | quarantined |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let empty = InProcessGateway::document(&[VIP_A, VIP_B], 1, "");
    gw.publish(&empty, &|_| None);
    gw.wait_filters_in_force();
    let baseline = measure(&t, &gw, seconds);
    println!(
        "| none (baseline) | {:.0} | {:.0} | 1.00 | {:.0} | {} | - | - |",
        baseline.b, baseline.b_per_cpu, baseline.a, baseline.a_dropped
    );
    let rss_before = own_rss_kib();
    for kind in Hostile::ALL {
        let name = kind.name();
        let bytes = kind.module();
        gw.bind_one(&[VIP_A, VIP_B], VIP_A, &name, &bytes);
        let r = measure(&t, &gw, seconds);
        let s = gw.plugin_stats();
        let s = s.iter().find(|s| s.key.vip == VIP_A).expect("binding");
        let errors = s.errors.deadline + s.errors.memory_cap + s.errors.trap + s.errors.bad_verdict;
        println!(
            "| {name} | {:.0} | {:.0} | {:.2} | {:.0} | {} | {errors} | {} |",
            r.b,
            r.b_per_cpu,
            r.b_per_cpu / baseline.b_per_cpu,
            r.a,
            r.a_dropped,
            s.quarantined
        );
    }
    gw.publish(&empty, &|_| None);
    gw.wait_filters_in_force();
    let last = measure(&t, &gw, seconds);
    println!(
        "| none (baseline, again) | {:.0} | {:.0} | {:.2} | {:.0} | {} | - | - |",
        last.b,
        last.b_per_cpu,
        last.b_per_cpu / baseline.b_per_cpu,
        last.a,
        last.a_dropped
    );
    println!();
    println!(
        "process RSS: {rss_before} KiB before the hostile plugins, {} KiB after",
        own_rss_kib()
    );
    gw.stop();
}
