//! Benchmark (needs root): the data path's forwarding rate with and without a burst of
//! admin API requests.
//!
//! Builds the `rs` / `gw` / `client` namespaces and runs the real `tungate` binary in `gw`
//! (one worker; VIP bound to the `accounting` plugin). Each round offers 64-byte UDP replies
//! in IPIP at full rate from `rs` (AF_PACKET + qdisc bypass + `sendmmsg`) for SECONDS, and
//! in every other round 16 client threads run the hostile-request test's mix against the
//! API at the same time (reads, authorised writes that rebuild the VIP's chain and add and
//! remove peers and plugins, unauthenticated writes). Rounds alternate quiet / burst, ROUNDS
//! of each; it prints every round and the medians as Markdown: packets forwarded per
//! second, the same per second of the worker thread's CPU time (what the worker achieves
//! when it runs, which holds still on a shared machine), and API requests answered.
//!
//! `cargo build --release -p tungate --bin tungate --example api_burst && target/release/examples/api_burst [SECONDS] [ROUNDS]`
//!
//! Results: `deploy/bench/api-burst.md`.

use tungate_test_support::plugins;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tungate_test_support::flood::BulkSender;
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::process::thread_cpu_ns;
use tungate_test_support::requests::burst;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use tungate_test_support::{FrameSocket, Topology, Tungate};

struct Round {
    burst: bool,
    pps: f64,
    pps_per_cpu: f64,
    requests: usize,
    unauthenticated_accepted: usize,
    unexpected: usize,
}

fn round(t: &Topology, tg: &mut Tungate, token: &str, seconds: u64, with_burst: bool) -> Round {
    let frame = ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, &udp(VIP, CIP, 64, 22)));
    let sender = BulkSender::open(&t.rs, "r0");
    let before = tg.counters();
    let cpu_before = thread_cpu_ns(&tg.pid().to_string(), "tg-worker-0");
    let started = Instant::now();
    let stop_at = started + Duration::from_secs(seconds);
    let load = std::thread::spawn(move || {
        let frames = vec![frame];
        let order = vec![0usize; 1024];
        while Instant::now() < stop_at {
            sender.send(&frames, &order, None, stop_at);
        }
    });
    let stop = Arc::new(AtomicBool::new(false));
    let api = with_burst.then(|| {
        let (ns, token, stop) = (t.gw.name.clone(), token.to_owned(), stop.clone());
        std::thread::spawn(move || burst(&ns, &token, 16, usize::MAX, &stop))
    });
    load.join().expect("load generator");
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = (thread_cpu_ns(&tg.pid().to_string(), "tg-worker-0") - cpu_before) as f64 / 1e9;
    let after = tg.counters();
    stop.store(true, Ordering::Relaxed);
    let outcome = api.map(|h| h.join().expect("burst")).unwrap_or_default();
    let forwarded = after["tx_packets"].as_u64().unwrap() - before["tx_packets"].as_u64().unwrap();
    Round {
        burst: with_burst,
        pps: forwarded as f64 / elapsed,
        pps_per_cpu: forwarded as f64 / cpu.max(1e-9),
        requests: outcome.total(),
        unauthenticated_accepted: outcome.unauthenticated_accepted(),
        unexpected: outcome.unexpected.len(),
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let seconds: u64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(4);
    let rounds: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(5);
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let acc = dir.path().join("accounting.wasm");
    std::fs::write(&acc, plugins::plugin_wasm("accounting")).unwrap();
    let config = t.config(&format!(
        "[[vips]]\naddress = \"{VIP}\"\n[[vips.plugins]]\nplugin = \"accounting\"\n\
         config = {{ prefixes = [\"198.51.100.0/24\"] }}\n"
    ));
    let mut tg = Tungate::start_with(&t.gw, &config, &["--plugin", acc.to_str().unwrap()]);
    let token = tg.token();
    // Resolve the client's neighbour so every round takes the fast path.
    let probe = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    probe.send(&ethernet(
        GW_RS_MAC,
        RS_MAC,
        &ipip(RIP, GIP, &udp(VIP, CIP, 64, 22)),
    ));
    client.wait_for(Duration::from_secs(5), |f| {
        f.len() > 34 && f[30..34] == CIP.octets()
    });
    drop(client);

    let mut results = Vec::new();
    for i in 0..rounds * 2 {
        let r = round(&t, &mut tg, &token, seconds, i % 2 == 1);
        eprintln!(
            "round {i} ({}): {:.0} pps, {:.0} per worker CPU-second, {} API requests",
            if r.burst { "burst" } else { "quiet" },
            r.pps,
            r.pps_per_cpu,
            r.requests
        );
        results.push(r);
    }
    let rss = tg.rss_kib();
    let (status, _) = tg.stop();
    assert_eq!(status, 0, "tungate stopped cleanly");

    println!(
        "| round | API burst | forwarded (pps) | per worker CPU-second | API requests answered |"
    );
    println!("|---:|---|---:|---:|---:|");
    for (i, r) in results.iter().enumerate() {
        println!(
            "| {i} | {} | {:.0} | {:.0} | {} |",
            if r.burst { "yes" } else { "no" },
            r.pps,
            r.pps_per_cpu,
            r.requests
        );
    }
    let pick = |burst: bool, f: fn(&Round) -> f64| {
        median(results.iter().filter(|r| r.burst == burst).map(f).collect())
    };
    let (quiet_pps, burst_pps) = (pick(false, |r| r.pps), pick(true, |r| r.pps));
    let (quiet_cpu, burst_cpu) = (
        pick(false, |r| r.pps_per_cpu),
        pick(true, |r| r.pps_per_cpu),
    );
    let requests = pick(true, |r| r.requests as f64);
    println!();
    println!(
        "| median of {rounds} rounds | forwarded (pps) | per worker CPU-second | API requests per second |"
    );
    println!("|---|---:|---:|---:|");
    println!("| no burst | {quiet_pps:.0} | {quiet_cpu:.0} | 0 |");
    println!(
        "| API burst | {burst_pps:.0} | {burst_cpu:.0} | {:.0} |",
        requests / seconds as f64
    );
    println!(
        "| burst / no burst | {:.2} | {:.2} | |",
        burst_pps / quiet_pps,
        burst_cpu / quiet_cpu
    );
    let accepted: usize = results.iter().map(|r| r.unauthenticated_accepted).sum();
    let unexpected: usize = results.iter().map(|r| r.unexpected).sum();
    println!();
    println!(
        "unauthenticated writes accepted: {accepted}; answers outside the rules: {unexpected}; \
         tungate RSS at the end: {rss} KiB"
    );
}
