//! Benchmark: nanoseconds per packet of a VIP's plugin chain inside a worker, batched (64
//! packets per call), for chains of 0, 1 and 4 example plugins, Wasm (the real host: pooled
//! instances, epoch deadlines, descriptor copies) against the same plugins compiled natively
//! (the same crates called directly, packet by packet, on the same descriptors).
//!
//! Run: `cargo bench -p tungate --bench plugins` (release profile; it builds the example
//! plugins for wasm32 first). Prints a markdown table of medians over repeats; the committed
//! results are in `benches/RESULTS-plugins.md`.

use tungate_test_support::plugins;

use std::hint::black_box;
use std::net::Ipv4Addr;
use std::time::Instant;

use etherparse::PacketBuilder;
use tungate_config::{Binding, OnError, Vip, parse_toml};
use tungate_datapath::filter::{BatchFilter, Decision};
use tungate_plugin_host::chain::VipChain;
use tungate_plugin_host::engine::monotonic_ns;
use tungate_plugin_host::{Limits, PluginHost};
use tungate_plugin_sdk::{Packet, PacketDesc, Plugin, Verdict, configure_from_json};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const BATCH: usize = 64;
/// Many short repeats: on a shared machine the fastest ones show the cost without
/// interference (min), the median shows the typical cost under the load of the moment.
const REPEATS: usize = 201;
const BATCHES_PER_REPEAT: usize = 1_000;

/// Configurations under which every test packet passes every plugin (the most work).
const CIDR: &str = r#"{ "deny": ["198.51.100.0/24", "10.0.0.0/8"] }"#;
const PORTS: &str = r#"{ "allow": [ { "protocol": "udp", "ports": [53, 123] }, { "protocol": "tcp", "ports": [80, 443] } ] }"#;
const RATE: &str = r#"{ "unit": "packets", "rate": 10000000000, "max_clients": 1024 }"#;
const ACCOUNTING: &str = r#"{ "prefixes": ["203.0.113.0/24", "203.0.113.128/25", "0.0.0.0/0"] }"#;

/// 64 replies to 16 clients, UDP and TCP, 60 to 1400 bytes.
fn batch() -> Vec<Vec<u8>> {
    (0..BATCH)
        .map(|i| {
            let client = [203, 0, 113, (i % 16) as u8 + 1];
            let payload = vec![0u8; 32 + (i * 37) % 1340];
            let mut out = Vec::new();
            if i % 2 == 0 {
                PacketBuilder::ipv4(VIP.octets(), client, 64)
                    .udp(53, 40000 + i as u16)
                    .write(&mut out, &payload)
                    .unwrap();
            } else {
                PacketBuilder::ipv4(VIP.octets(), client, 64)
                    .tcp(443, 50000 + i as u16, 7, 1024)
                    .ack(9)
                    .write(&mut out, &payload)
                    .unwrap();
            }
            out
        })
        .collect()
}

/// The Wasm chain of `plugins` (name, JSON config) for one worker.
fn wasm_chain(host: &PluginHost, plugins: &[(&str, &str)]) -> Box<dyn BatchFilter> {
    if plugins.is_empty() {
        return Box::new(VipChain::new(VIP.into(), Vec::new()));
    }
    let mut doc = parse_toml("[gateway]\naddress = \"10.0.0.1\"").unwrap();
    doc.vips.push(Vip {
        address: VIP.into(),
        shared: false,
        plugins: plugins
            .iter()
            .map(|(name, config)| Binding {
                plugin: (*name).into(),
                sha256: None,
                config: serde_json::from_str(config).unwrap(),
                on_error: OnError::Pass,
            })
            .collect(),
    });
    let mut generation = host.build(&doc, &plugins::example_module, 1).unwrap();
    generation.filters[0].by_vip.remove(&VIP.into()).unwrap()
}

/// One natively compiled plugin.
trait Native: Send {
    fn judge(&mut self, p: &Packet<'_>) -> Verdict;
}

impl<P: Plugin + Send> Native for P {
    fn judge(&mut self, p: &Packet<'_>) -> Verdict {
        self.on_packet(p)
    }
}

fn native<P: Plugin + Send + 'static>(config: &str) -> Box<dyn Native> {
    Box::new(configure_from_json::<P>(config.as_bytes()).unwrap())
}

/// The same chain natively: describe each packet once, each plugin judges the packets
/// still passing, first drop wins.
struct NativeChain {
    plugins: Vec<Box<dyn Native>>,
    descs: Vec<PacketDesc>,
}

impl BatchFilter for NativeChain {
    fn filter(&mut self, packets: &[&[u8]], decisions: &mut [Decision]) {
        self.descs.clear();
        self.descs
            .extend(packets.iter().map(|p| PacketDesc::parse(p)));
        let now = monotonic_ns();
        for plugin in &mut self.plugins {
            for (d, decision) in self.descs.iter().zip(decisions.iter_mut()) {
                if *decision == Decision::Pass
                    && plugin.judge(&Packet::new(d, now)) == Verdict::Drop
                {
                    *decision = Decision::DropByPlugin;
                }
            }
        }
    }
}

/// Runs `BATCHES_PER_REPEAT` batches through `filter`; returns ns per packet.
fn one_repeat(filter: &mut dyn BatchFilter, refs: &[&[u8]], decisions: &mut [Decision]) -> f64 {
    let start = Instant::now();
    for _ in 0..BATCHES_PER_REPEAT {
        decisions.fill(Decision::Pass);
        filter.filter(black_box(refs), black_box(&mut *decisions));
    }
    start.elapsed().as_nanos() as f64 / (BATCHES_PER_REPEAT * BATCH) as f64
}

/// Median and minimum of the samples.
fn median_min(mut samples: Vec<f64>) -> (f64, f64) {
    samples.sort_by(f64::total_cmp);
    (samples[samples.len() / 2], samples[0])
}

fn main() {
    let host = PluginHost::new(Limits {
        max_instances: 16,
        ..Limits::default()
    })
    .unwrap();
    let packets = batch();
    let refs: Vec<&[u8]> = packets.iter().map(|p| p.as_slice()).collect();
    let mut decisions = vec![Decision::Pass; refs.len()];
    type Make = fn() -> Box<dyn Native>;
    let all: [(&str, &str, Make); 4] = [
        ("cidr-filter", CIDR, || {
            native::<cidr_filter::CidrFilter>(CIDR)
        }),
        ("port-filter", PORTS, || {
            native::<port_filter::PortFilter>(PORTS)
        }),
        ("rate-limit", RATE, || native::<rate_limit::RateLimit>(RATE)),
        ("accounting", ACCOUNTING, || {
            native::<accounting::Accounting>(ACCOUNTING)
        }),
    ];
    println!(
        "{REPEATS} repeats of {BATCHES_PER_REPEAT} batches of {BATCH} packets; wasm and native \
         alternate within each repeat so both see the same machine load.\n"
    );
    println!(
        "| chain | wasm ns/packet: median (min) | native ns/packet: median (min) | wasm − native: median of paired differences (difference of the mins) |"
    );
    println!("|---|---|---|---|");
    let rows: [(&str, &[usize]); 7] = [
        ("0 plugins (descriptors only)", &[]),
        ("1 plugin: cidr-filter", &[0]),
        ("1 plugin: port-filter", &[1]),
        ("1 plugin: rate-limit", &[2]),
        ("1 plugin: accounting", &[3]),
        ("4 plugins: cidr, port, rate, accounting", &[0, 1, 2, 3]),
        ("4 plugins: cidr ×4", &[0, 0, 0, 0]),
    ];
    for (label, indices) in rows {
        let chosen: Vec<_> = indices.iter().map(|&i| all[i]).collect();
        let mut wasm = wasm_chain(
            &host,
            &chosen.iter().map(|(n, c, _)| (*n, *c)).collect::<Vec<_>>(),
        );
        let mut nat = NativeChain {
            plugins: chosen.iter().map(|(_, _, make)| make()).collect(),
            descs: Vec::with_capacity(BATCH),
        };
        for filter in [wasm.as_mut(), &mut nat as &mut dyn BatchFilter] {
            one_repeat(filter, &refs, &mut decisions);
            assert!(
                decisions.iter().all(|d| *d == Decision::Pass),
                "every packet passes every plugin"
            );
        }
        let (mut w, mut n, mut diff) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..REPEATS {
            let a = one_repeat(wasm.as_mut(), &refs, &mut decisions);
            let b = one_repeat(&mut nat, &refs, &mut decisions);
            w.push(a);
            n.push(b);
            diff.push(a - b);
        }
        let ((wm, wmin), (nm, nmin), (dm, _)) = (median_min(w), median_min(n), median_min(diff));
        println!(
            "| {label} | {wm:.2} ({wmin:.2}) | {nm:.2} ({nmin:.2}) | {dm:.2} ({:.2}) |",
            wmin - nmin
        );
    }
}
