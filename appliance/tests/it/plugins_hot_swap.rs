//! Hot swap under traffic: while worker threads filter a numbered stream through their
//! chains, the control side publishes a new configuration. Every number must be judged
//! exactly once, by the old chain then (from one batch on) by the new one, and the
//! plugins' own counters, cumulative per binding across the swap, must add up to the
//! stream exactly (and the old generation's view never exceeds the new one's).

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tungate_test_support::machine;
use tungate_test_support::plugins;

use etherparse::PacketBuilder;
use tungate_config::{Document, parse_toml};
use tungate_datapath::filter::{Decision, FilterSlots, WorkerFilters};
use tungate_plugin_host::{BindingSnapshot, Limits, PluginHost};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const WORKERS: usize = 2;
const BATCH: usize = 16;
/// Batches each worker runs on the new generation before it stops.
const AFTER_SWAP: u64 = 200;

/// Accounting, then cidr-filter with `cidr_config`.
fn doc(cidr_config: &str) -> Document {
    parse_toml(&format!(
        r#"
        [gateway]
        address = "10.0.0.1"
        workers = {WORKERS}
        [[vips]]
        address = "{VIP}"
        [[vips.plugins]]
        plugin = "accounting"
        config = {{ prefixes = ["0.0.0.0/0"] }}
        [[vips.plugins]]
        plugin = "cidr-filter"
        config = {cidr_config}
        "#
    ))
    .unwrap()
}

/// UDP reply number `n` to a client in 198.51.100.0/24 (the number is the payload).
fn numbered(n: u64) -> Vec<u8> {
    let b = PacketBuilder::ipv4(VIP.octets(), [198, 51, 100, 20], 64).udp(443, 50000);
    let mut out = Vec::new();
    b.write(&mut out, &n.to_be_bytes()).unwrap();
    out
}

fn number_of(packet: &[u8]) -> u64 {
    u64::from_be_bytes(packet[28..36].try_into().unwrap())
}

/// What one worker saw: (number, decision, generation) in stream order.
type Record = (u64, Decision, u64);

/// Filters numbered batches, taking new filter sets between batches, until it has run
/// `AFTER_SWAP` batches on a generation after the first.
fn worker(index: usize, slots: Arc<FilterSlots>, progress: Arc<AtomicU64>) -> Vec<Record> {
    let (mut generation, mut set): (u64, WorkerFilters) = slots.take(index).expect("first set");
    let mut records = Vec::new();
    let mut next = 0u64;
    let mut after = 0;
    while after < AFTER_SWAP {
        if let Some((g, s)) = slots.take(index) {
            generation = g;
            set = s;
        }
        let batch: Vec<Vec<u8>> = (next..next + BATCH as u64).map(numbered).collect();
        next += BATCH as u64;
        let refs: Vec<&[u8]> = batch.iter().map(|p| p.as_slice()).collect();
        let mut d = vec![Decision::Pass; BATCH];
        set.by_vip
            .get_mut(&VIP.into())
            .unwrap()
            .filter(&refs, &mut d);
        records.extend(
            refs.iter()
                .zip(d)
                .map(|(p, d)| (number_of(p), d, generation)),
        );
        if generation > 1 {
            after += 1;
        }
        progress.fetch_add(1, Ordering::Release);
    }
    records
}

fn packets_counted(stats: &[BindingSnapshot]) -> u64 {
    stats[0]
        .counters
        .iter()
        .find(|c| c.name == "packets")
        .unwrap()
        .value
}

#[test]
fn a_swap_under_traffic_judges_every_number_once_old_then_new() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    // A generous deadline: on a loaded CI machine a preempted call must not trap (a trap
    // is no verdict and no count, which is not what this test is about).
    let host = PluginHost::new(Limits {
        max_instances: 16,
        filter_deadline: std::time::Duration::from_secs(2),
        ..Limits::default()
    })
    .unwrap();
    let slots = Arc::new(FilterSlots::new(WORKERS));
    let deny = doc(r#"{ deny = ["198.51.100.0/24"] }"#);
    let allow = doc(r#"{ allow = ["198.51.100.0/24"] }"#);
    assert_eq!(
        host.publish(&slots, &deny, &plugins::example_module)
            .unwrap(),
        1
    );
    let old_stats = host.stats_table();

    let progress: Vec<Arc<AtomicU64>> = (0..WORKERS).map(|_| Arc::default()).collect();
    let threads: Vec<_> = (0..WORKERS)
        .map(|i| {
            let (slots, progress) = (slots.clone(), progress[i].clone());
            std::thread::spawn(move || worker(i, slots, progress))
        })
        .collect();
    // Let every worker run a while on the old chain, then swap under their feet.
    while progress.iter().any(|p| p.load(Ordering::Acquire) < 100) {
        std::thread::yield_now();
    }
    assert_eq!(
        host.publish(&slots, &allow, &plugins::example_module)
            .unwrap(),
        2
    );
    let new_stats = host.stats_table();

    let mut total = 0;
    for t in threads {
        let records = t.join().expect("worker thread");
        total += records.len() as u64;
        for (k, (n, _, _)) in records.iter().enumerate() {
            assert_eq!(*n, k as u64, "each number judged exactly once, in order");
        }
        let switch = records
            .iter()
            .position(|r| r.2 == 2)
            .expect("the worker took the new set");
        assert!(
            switch >= 100 * BATCH,
            "swapped mid-stream, after the old chain ran"
        );
        assert_eq!(switch % BATCH, 0, "switched between two batches");
        assert!(
            records[..switch]
                .iter()
                .all(|r| r.1 == Decision::DropByPlugin && r.2 == 1),
            "before the switch: the old verdicts"
        );
        assert!(
            records[switch..]
                .iter()
                .all(|r| r.1 == Decision::Pass && r.2 == 2),
            "after the switch: the new verdicts"
        );
    }

    let (old, new) = (old_stats.snapshot(), new_stats.snapshot());
    for b in &new {
        assert_eq!(b.last_error, None, "no call failed");
    }
    assert_eq!(
        packets_counted(&new),
        total,
        "the binding counted every packet exactly once across the swap (cumulative)"
    );
    assert_eq!(old, new, "both generations read the same cumulative cells");
    let dropped_before: usize = 100 * BATCH * WORKERS;
    assert!(
        new[1].dropped >= dropped_before as u64,
        "the old verdicts are kept in the cumulative count"
    );
    assert_eq!(new[1].passed + new[1].dropped, total);
    assert_eq!(new[0].passed, total, "accounting passes everything");
}
