//! The example plugins end to end through the netns data path of the real binary (needs
//! root): each one bound through the API judges real IPIP-tunnelled replies, with what the
//! clients receive, the API's statistics and `/metrics` checked against counts made here;
//! and the hot swap through the API under a steady numbered stream — a module replaced and
//! a binding's configuration changed mid-stream — where every number arrives exactly once
//! with the old then the new verdicts, the counters add up and the metrics never go back.

use std::collections::{BTreeMap, HashSet};
use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;
use serde_json::{Value, json};
use tungate_test_support::http::Api;
use tungate_test_support::packets::{ethernet, ipip};
use tungate_test_support::plugins;
use tungate_test_support::topology::IoPath;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use tungate_test_support::{FrameSocket, Topology, Tungate, machine};

const ADMIN: &str = "127.0.0.1:9080";
const QUIET: Duration = Duration::from_millis(500);
/// A second client, in another prefix than `CIP`.
const CLIENT_B: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);

/// The topology with client B's address on `c0` and a gateway address in its prefix.
fn topology(io: IoPath) -> Topology {
    let t = Topology::on(io);
    t.client
        .ip(&["addr", "add", &format!("{CLIENT_B}/24"), "dev", "c0"]);
    t.gw.ip(&["addr", "add", "203.0.113.1/24", "dev", "g1"]);
    t
}

/// Starts tungate with every example plugin stored (by `--plugin`), no chain bound.
fn start(t: &Topology, dir: &std::path::Path) -> (Tungate, Api) {
    let mut args = Vec::new();
    for name in plugins::EXAMPLES {
        let path = dir.join(format!("{name}.wasm"));
        std::fs::write(&path, plugins::plugin_wasm(name)).unwrap();
        args.push("--plugin".to_owned());
        args.push(path.display().to_string());
    }
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let tg = Tungate::start_with(&t.gw, &t.config(""), &refs);
    let api = Api::new(&t.gw, ADMIN, Some(tg.token()));
    (tg, api)
}

/// An inner UDP reply VIP:sport -> dst:40000 whose payload is `n` (8 bytes) plus padding.
fn reply(dst: Ipv4Addr, sport: u16, n: u64, pad: usize) -> Vec<u8> {
    let mut payload = n.to_be_bytes().to_vec();
    payload.resize(8 + pad, 0x5a);
    let mut out = Vec::new();
    PacketBuilder::ipv4(VIP.octets(), dst.octets(), 64)
        .udp(sport, 40000)
        .write(&mut out, &payload)
        .unwrap();
    out
}

fn frame(inner: &[u8]) -> Vec<u8> {
    ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, inner))
}

/// Frames to either client: (destination, number).
fn delivered(frames: &[Vec<u8>]) -> Vec<(Ipv4Addr, u64)> {
    frames
        .iter()
        .map(|f| {
            let ip = &f[14..];
            let dst = Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]);
            (dst, u64::from_be_bytes(ip[28..36].try_into().unwrap()))
        })
        .collect()
}

fn to_clients(f: &[u8]) -> bool {
    f.len() >= 50
        && f[12..14] == [8, 0]
        && (f[30..34] == CIP.octets() || f[30..34] == CLIENT_B.octets())
        && f[14 + 9] == 17
}

/// Binds `chain` (JSON bindings) to the VIP.
fn bind(api: &Api, chain: Value) {
    let r = api.put_json(&format!("/api/v1/vips/{VIP}"), &json!({ "plugins": chain }));
    assert_eq!(r.status, 200, "{}", r.text());
    api.wait_filters_in_force();
}

/// Sends `(dst, sport, n, pad)` replies and returns what the clients received.
fn exchange(t: &Topology, packets: &[(Ipv4Addr, u16, u64, usize)]) -> Vec<(Ipv4Addr, u64)> {
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    for &(dst, sport, n, pad) in packets {
        rs.send(&frame(&reply(dst, sport, n, pad)));
    }
    delivered(&client.receive_for(QUIET, to_clients))
}

/// Resolves both clients' neighbour entries so every packet leaves the fast way.
fn warm_up(t: &Topology) {
    let got = exchange(t, &[(CIP, 53, 0, 0), (CLIENT_B, 53, 0, 0)]);
    assert_eq!(got.len(), 2, "warm-up packets reach both clients");
}

/// What each test works with; the guard comes first so it is released last. Each test
/// runs alone: the plugins' per-call deadline is wall time, and these tests check exact
/// verdicts, so they do not compete with other tests for the two cores.
type Setup = (machine::Alone, Topology, tempfile::TempDir, Tungate, Api);

/// The topology, tungate with every example plugin, warmed-up neighbours, and `chain`
/// bound to the VIP.
fn setup(io: IoPath, chain: Value) -> Setup {
    let serial = machine::alone();
    let t = topology(io);
    let dir = tempfile::tempdir().unwrap();
    let (tg, api) = start(&t, dir.path());
    warm_up(&t);
    bind(&api, chain);
    (serial, t, dir, tg, api)
}

/// The binding at `position` in `/api/v1/stats`.
fn binding(api: &Api, position: usize) -> Value {
    let stats = api.get("/api/v1/stats").json();
    stats["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["position"] == position)
        .cloned()
        .unwrap_or_else(|| panic!("no binding at {position}: {stats}"))
}

fn plugin_counter(b: &Value, name: &str, label: &str) -> u64 {
    b["plugin_counters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name && c["label"] == label)
        .and_then(|c| c["value"].as_u64())
        .unwrap_or_else(|| panic!("no counter {name}{{{label}}} in {b}"))
}

/// Every sample of `/metrics`, keyed `name{labels}`.
fn scrape(api: &Api) -> BTreeMap<String, f64> {
    let r = api.get("/metrics");
    assert_eq!(r.status, 200);
    r.text()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| {
            let (k, v) = l.rsplit_once(' ')?;
            Some((k.to_owned(), v.parse().ok()?))
        })
        .collect()
}

fn vip_forwarded(api: &Api) -> u64 {
    let stats = api.get("/api/v1/stats").json();
    stats["vips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["address"] == VIP.to_string())
        .map_or(0, |v| v["forwarded_packets"].as_u64().unwrap())
}

fn cidr_filter_denies_one_client_prefix_and_the_other_gets_everything(io: IoPath) {
    let (_serial, t, _dir, tg, api) = setup(
        io,
        json!([{"plugin": "cidr-filter", "config": {"deny": ["203.0.113.0/24"]}}]),
    );
    let packets: Vec<_> = (1..=40u64)
        .map(|n| (if n % 2 == 0 { CIP } else { CLIENT_B }, 53, n, 10))
        .collect();
    let got = exchange(&t, &packets);
    let want: Vec<(Ipv4Addr, u64)> = (1..=40u64)
        .filter(|n| n % 2 == 0)
        .map(|n| (CIP, n))
        .collect();
    let mut sorted = got.clone();
    sorted.sort();
    assert_eq!(sorted, want, "client B gets nothing, client A everything");
    let b = binding(&api, 0);
    assert_eq!(
        (
            b["verdicts"]["pass"].as_u64(),
            b["verdicts"]["drop"].as_u64()
        ),
        (Some(20), Some(20))
    );
    assert_eq!(plugin_counter(&b, "dropped", "denied"), 20);
    let stats = api.get("/api/v1/stats").json();
    assert_eq!(stats["drops"]["plugin"], 20);
    assert_eq!(vip_forwarded(&api), 22, "20 plus the warm-up pair");
    let m = scrape(&api);
    let labels = format!("vip=\"{VIP}\",position=\"0\",plugin=\"cidr-filter\"");
    assert_eq!(
        m[&format!("tungate_plugin_verdicts_total{{{labels},verdict=\"drop\"}}")],
        20.0
    );
    assert_eq!(
        m[&format!(
            "tungate_plugin_counter_total{{{labels},counter=\"dropped\",counter_label=\"denied\"}}"
        )],
        20.0
    );
    assert_eq!(
        m[&format!("tungate_vip_dropped_packets_total{{vip=\"{VIP}\",reason=\"plugin\"}}")],
        20.0
    );
    assert_eq!(
        m[&format!("tungate_plugin_batch_duration_seconds_count{{{labels}}}")],
        b["calls"].as_f64().unwrap()
    );
    assert!(
        !m.keys()
            .any(|k| k.contains(&CIP.to_string()) || k.contains(&CLIENT_B.to_string())),
        "no client address in any label"
    );
    assert_eq!(tg.stop().0, 0);
}

fn port_filter_passes_only_the_allowed_source_ports(io: IoPath) {
    let (_serial, t, _dir, tg, api) = setup(
        io,
        json!([{"plugin": "port-filter", "config": {"allow": [{"protocol": "udp", "ports": [53]}]}}]),
    );
    let packets: Vec<_> = (1..=30u64)
        .map(|n| (CIP, if n % 3 == 0 { 123 } else { 53 }, n, 0))
        .collect();
    let got: HashSet<u64> = exchange(&t, &packets).into_iter().map(|d| d.1).collect();
    let want: HashSet<u64> = (1..=30u64).filter(|n| n % 3 != 0).collect();
    assert_eq!(got, want);
    let b = binding(&api, 0);
    assert_eq!(plugin_counter(&b, "dropped", "port"), 10);
    assert_eq!(b["verdicts"]["pass"], 20);
    assert_eq!(tg.stop().0, 0);
}

fn rate_limit_caps_each_client_at_its_burst(io: IoPath) {
    let (_serial, t, _dir, tg, api) = setup(
        io,
        json!([{"plugin": "rate-limit", "config": {"unit": "packets", "rate": 1, "burst": 10}}]),
    );
    let mut packets: Vec<_> = (1..=40u64).map(|n| (CIP, 53, n, 0)).collect();
    packets.extend((41..=55u64).map(|n| (CLIENT_B, 53, n, 0)));
    let started = Instant::now();
    let got = exchange(&t, &packets);
    // Sent within well under a second: each client gets its burst, plus at most one token
    // per second that passed.
    let extra = started.elapsed().as_secs() + 1;
    let a = got.iter().filter(|d| d.0 == CIP).count() as u64;
    let b = got.iter().filter(|d| d.0 == CLIENT_B).count() as u64;
    assert!((10..=10 + extra).contains(&a), "client A got {a}");
    assert!((10..=10 + extra).contains(&b), "client B got {b}");
    let s = binding(&api, 0);
    assert_eq!(s["verdicts"]["pass"].as_u64().unwrap(), a + b);
    assert_eq!(plugin_counter(&s, "dropped", "rate"), 55 - a - b);
    assert_eq!(tg.stop().0, 0);
}

fn accounting_counts_packets_and_bytes_per_configured_prefix(io: IoPath) {
    let (_serial, t, _dir, tg, api) = setup(
        io,
        json!([{"plugin": "accounting", "config": {"prefixes": ["198.51.100.0/24"]}}]),
    );
    let mut packets: Vec<_> = (1..=5u64).map(|n| (CIP, 53, n, 100)).collect();
    packets.extend((6..=8u64).map(|n| (CLIENT_B, 53, n, 300)));
    let got = exchange(&t, &packets);
    assert_eq!(got.len(), 8, "accounting passes everything");
    let a_len = reply(CIP, 53, 0, 100).len() as u64;
    let b_len = reply(CLIENT_B, 53, 0, 300).len() as u64;
    let s = binding(&api, 0);
    assert_eq!(plugin_counter(&s, "packets", "198.51.100.0/24"), 5);
    assert_eq!(plugin_counter(&s, "bytes", "198.51.100.0/24"), 5 * a_len);
    assert_eq!(plugin_counter(&s, "packets", "unmatched"), 3);
    assert_eq!(plugin_counter(&s, "bytes", "unmatched"), 3 * b_len);
    let m = scrape(&api);
    let key = format!(
        "tungate_plugin_counter_total{{vip=\"{VIP}\",position=\"0\",plugin=\"accounting\",counter=\"bytes\",counter_label=\"198.51.100.0/24\"}}"
    );
    assert_eq!(m[&key], (5 * a_len) as f64);
    assert_eq!(tg.stop().0, 0);
}

/// The same module with a custom section appended: other bytes (a new sha256), same code.
fn rebuilt(module: &[u8]) -> Vec<u8> {
    let mut out = module.to_vec();
    out.extend_from_slice(&[0, 7, 4, b's', b'w', b'a', b'p', b'v', b'2']);
    out
}

/// Every `tungate_plugin_*` and VIP counter present in both scrapes is not lower in `b`.
fn assert_monotonic(a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>) {
    for (k, v) in a {
        let counter = k.starts_with("tungate_plugin_")
            && (k.contains("_total{") || k.contains("_bucket{") || k.contains("_count{"))
            || k.starts_with("tungate_vip_")
            || k.starts_with("tungate_received_");
        if counter && let Some(w) = b.get(k) {
            assert!(w >= v, "{k} went back from {v} to {w}");
        }
    }
}

fn hot_swap_through_the_api_under_a_steady_stream_judges_every_number_once(io: IoPath) {
    // Numbers sent after the last swap returned: the stream goes on well past it.
    const AFTER_LAST_SWAP: u64 = 5_000;
    // Numbers sent before each swap starts (the swaps happen mid-stream by construction,
    // whatever the machine's load, instead of at fixed times).
    const BETWEEN_SWAPS: u64 = 4_000;
    // Even numbers go to client A, odd ones to client B; first B's prefix is denied.
    let (_serial, t, _dir, tg, api) = setup(
        io,
        json!([
            {"plugin": "accounting", "config": {"prefixes": ["0.0.0.0/0"]}},
            {"plugin": "cidr-filter", "config": {"deny": ["203.0.113.0/24"]}}
        ]),
    );
    let before = binding(&api, 1);
    let forwarded_before = vip_forwarded(&api);
    let first_scrape = scrape(&api);
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let receiver =
        std::thread::spawn(move || client.receive_for(Duration::from_secs(2), to_clients));
    let sent = Arc::new(AtomicU64::new(0));
    let swapped = Arc::new(AtomicBool::new(false));
    let sender = {
        let (sent, swapped) = (sent.clone(), swapped.clone());
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut last = u64::MAX;
            let mut n = 0;
            while n < last {
                n += 1;
                let dst = if n % 2 == 0 { CIP } else { CLIENT_B };
                rs.send(&frame(&reply(dst, 53, n, 0)));
                sent.store(n, Ordering::Relaxed);
                if last == u64::MAX && swapped.load(Ordering::Relaxed) {
                    last = n + AFTER_LAST_SWAP;
                }
                // About 10 000 packets per second, steadily.
                let due = start + Duration::from_micros(100 * n);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
            }
            n
        })
    };
    let wait_for_more = |from: u64| {
        let deadline = Instant::now() + Duration::from_secs(120);
        while sent.load(Ordering::Relaxed) < from + BETWEEN_SWAPS {
            assert!(Instant::now() < deadline, "the sender stalled");
            std::thread::sleep(Duration::from_millis(10));
        }
        sent.load(Ordering::Relaxed)
    };
    let mut scrapes = vec![first_scrape];
    let at_module_swap = wait_for_more(0);
    // 1: the module is replaced (new bytes, same code): every binding of it is rebuilt.
    let r = api.put_wasm(
        "/api/v1/plugins/cidr-filter",
        &rebuilt(&plugins::plugin_wasm("cidr-filter")),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let new_sha = r.json()["sha256"].as_str().unwrap().to_owned();
    scrapes.push(scrape(&api));
    let at_config_change = wait_for_more(sent.load(Ordering::Relaxed));
    // 2: the binding's configuration changes: now A's prefix is denied.
    bind(
        &api,
        json!([
            {"plugin": "accounting", "config": {"prefixes": ["0.0.0.0/0"]}},
            {"plugin": "cidr-filter", "config": {"deny": ["198.51.100.0/24"]}}
        ]),
    );
    swapped.store(true, Ordering::Relaxed);
    scrapes.push(scrape(&api));
    let total = sender.join().unwrap();
    let frames = receiver.join().unwrap();
    scrapes.push(scrape(&api));

    let got = delivered(&frames);
    let mut seen = HashSet::new();
    for (dst, n) in &got {
        assert!(seen.insert(*n), "number {n} arrived twice");
        assert_eq!(
            *dst,
            if n % 2 == 0 { CIP } else { CLIENT_B },
            "number {n} to the wrong client"
        );
    }
    // One switch point S: numbers below it got the old verdicts (evens pass), numbers from
    // it the new ones (odds pass). S lies between the last even and the first odd delivered.
    let first_odd = got
        .iter()
        .filter(|(_, n)| n % 2 == 1)
        .map(|d| d.1)
        .min()
        .expect("new verdicts seen");
    let last_even = got
        .iter()
        .filter(|(_, n)| n % 2 == 0)
        .map(|d| d.1)
        .max()
        .expect("old verdicts seen");
    let want = |s: u64| -> HashSet<u64> {
        (1..=total)
            .filter(|&n| if n < s { n % 2 == 0 } else { n % 2 == 1 })
            .collect()
    };
    let switch = (last_even + 1..=first_odd).find(|&s| want(s) == seen);
    let Some(switch) = switch else {
        let w = want(first_odd);
        let missing: Vec<u64> = w.difference(&seen).copied().take(10).collect();
        let extra: Vec<u64> = seen.difference(&w).copied().take(10).collect();
        panic!(
            "no single switch point (last even {last_even}, first odd {first_odd}): missing {missing:?}, unexpected {extra:?}"
        );
    };
    assert!(
        switch > at_config_change && switch < total - AFTER_LAST_SWAP / 2,
        "the new verdicts start with the configuration change (sent up to \
         {at_config_change} before it, {total} in all; module swap at {at_module_swap}), \
         not at {switch}"
    );

    // Counters add up: no loss, no double count, cumulative across both swaps.
    let accounting = binding(&api, 0);
    let cidr = binding(&api, 1);
    assert_eq!(cidr["sha256"], new_sha, "the replaced module is in force");
    assert_ne!(before["sha256"], new_sha);
    let judged = total + before["verdicts"]["pass"].as_u64().unwrap();
    assert_eq!(
        plugin_counter(&accounting, "packets", "0.0.0.0/0"),
        judged,
        "accounting saw every packet once"
    );
    let pass = cidr["verdicts"]["pass"].as_u64().unwrap();
    let drop = cidr["verdicts"]["drop"].as_u64().unwrap();
    assert_eq!(pass + drop, judged, "cidr-filter judged every packet once");
    assert_eq!(
        pass - before["verdicts"]["pass"].as_u64().unwrap(),
        seen.len() as u64
    );
    assert_eq!(vip_forwarded(&api) - forwarded_before, seen.len() as u64);
    for pair in scrapes.windows(2) {
        assert_monotonic(&pair[0], &pair[1]);
    }
    let generation = api.get("/api/v1/status").json()["config_generation"]
        .as_u64()
        .unwrap();
    assert!(
        generation >= 4,
        "start, bind, module swap, config change: {generation}"
    );
    assert_eq!(tg.stop().0, 0);
}

crate::on_both_io_paths!(
    cidr_filter_denies_one_client_prefix_and_the_other_gets_everything,
    port_filter_passes_only_the_allowed_source_ports,
    rate_limit_caps_each_client_at_its_burst,
    accounting_counts_packets_and_bytes_per_configured_prefix,
    hot_swap_through_the_api_under_a_steady_stream_judges_every_number_once,
);
