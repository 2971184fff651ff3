//! Per-binding statistics: written by the workers with relaxed atomics, read as snapshots
//! from any thread (the admin API, metrics, tests).
//!
//! One [`WorkerStats`] block per (binding, worker) so workers never share a cache line;
//! [`StatsTable::snapshot`] sums them per binding, keyed by (VIP, position, plugin). The
//! blocks of a key live in the [`StatsRegistry`] across generations: a hot swap or an
//! unrelated configuration change hands the same blocks to the new instances, so every count
//! is cumulative per binding key and never goes backwards (Prometheus counters), and a key
//! whose binding is removed is dropped. It owns no policy: the chain decides what to count.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use tungate_config::OnError;

/// Upper bounds (inclusive, nanoseconds) of the call-time histogram buckets: 128 ns, 256 ns,
/// … doubling up to about 4.2 ms; a last bucket takes everything slower.
pub const CALL_NS_BOUNDS: [u64; 16] = {
    let mut b = [0u64; 16];
    let mut i = 0;
    while i < 16 {
        b[i] = 128 << i;
        i += 1;
    }
    b
};
const BUCKETS: usize = CALL_NS_BOUNDS.len() + 1;

/// Kinds of failed plugin calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The call ran past its deadline (epoch interruption).
    Deadline,
    /// The plugin grew its memory past the cap.
    MemoryCap,
    /// Any other trap (unreachable, division by zero, out-of-bounds access, stack overflow,
    /// a host call given bad pointers, …).
    Trap,
    /// The plugin wrote a verdict ABI v1 does not define (or none).
    BadVerdict,
}

impl ErrorKind {
    /// Every kind, in the order of [`ErrorCounts`].
    pub const ALL: [ErrorKind; 4] = [
        ErrorKind::Deadline,
        ErrorKind::MemoryCap,
        ErrorKind::Trap,
        ErrorKind::BadVerdict,
    ];

    /// The snake_case name used in the API and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Deadline => "deadline",
            ErrorKind::MemoryCap => "memory_cap",
            ErrorKind::Trap => "trap",
            ErrorKind::BadVerdict => "bad_verdict",
        }
    }
}

/// A counter the plugin defined (name, label), as the host keeps it.
#[derive(Debug)]
pub struct PluginCounter {
    /// Its name.
    pub name: String,
    /// Its label value (may be empty).
    pub label: String,
    /// Its value.
    pub value: AtomicU64,
}

/// The statistics of one binding on one worker.
#[derive(Debug, Default)]
pub(crate) struct WorkerStats {
    calls: AtomicU64,
    passed: AtomicU64,
    dropped: AtomicU64,
    errors: [AtomicU64; 4],
    error_passed: AtomicU64,
    error_dropped: AtomicU64,
    skipped_passed: AtomicU64,
    skipped_dropped: AtomicU64,
    quarantined: AtomicBool,
    log_lines: AtomicU64,
    log_suppressed: AtomicU64,
    call_ns_sum: AtomicU64,
    call_ns: [AtomicU64; BUCKETS],
    counters: Mutex<Vec<Arc<PluginCounter>>>,
    last_error: Mutex<Option<String>>,
}

impl WorkerStats {
    /// One call that returned, and how long it took.
    pub(crate) fn record_call(&self, ns: u64) {
        self.calls.fetch_add(1, Relaxed);
        self.call_ns_sum.fetch_add(ns, Relaxed);
        let bucket = CALL_NS_BOUNDS
            .iter()
            .position(|&b| ns <= b)
            .unwrap_or(BUCKETS - 1);
        self.call_ns[bucket].fetch_add(1, Relaxed);
    }

    /// Verdicts of a successful call.
    pub(crate) fn record_verdicts(&self, passed: u64, dropped: u64) {
        self.passed.fetch_add(passed, Relaxed);
        self.dropped.fetch_add(dropped, Relaxed);
    }

    /// A failed call affecting `packets` packets, to which `on_error` was applied.
    pub(crate) fn record_error(
        &self,
        kind: ErrorKind,
        message: String,
        packets: u64,
        on_error: OnError,
    ) {
        self.errors[kind as usize].fetch_add(1, Relaxed);
        match on_error {
            OnError::Pass => &self.error_passed,
            OnError::Drop => &self.error_dropped,
        }
        .fetch_add(packets, Relaxed);
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(message);
    }

    /// Packets that met a quarantined binding, to which `on_error` was applied.
    pub(crate) fn record_skipped(&self, packets: u64, on_error: OnError) {
        match on_error {
            OnError::Pass => &self.skipped_passed,
            OnError::Drop => &self.skipped_dropped,
        }
        .fetch_add(packets, Relaxed);
    }

    /// Marks the binding quarantined on this worker.
    pub(crate) fn set_quarantined(&self) {
        self.quarantined.store(true, Relaxed);
    }

    /// A log line that was emitted (`true`) or suppressed by the rate limit.
    pub(crate) fn record_log(&self, emitted: bool) {
        if emitted {
            &self.log_lines
        } else {
            &self.log_suppressed
        }
        .fetch_add(1, Relaxed);
    }

    /// The counter `name`/`label` the plugin defines: the one an earlier generation of
    /// this binding defined (so its count goes on), or a new one at zero.
    pub fn counter(&self, name: &str, label: &str) -> Arc<PluginCounter> {
        let mut all = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(c) = all.iter().find(|c| c.name == name && c.label == label) {
            return c.clone();
        }
        let c = Arc::new(PluginCounter {
            name: name.to_owned(),
            label: label.to_owned(),
            value: AtomicU64::new(0),
        });
        all.push(c.clone());
        c
    }

    /// Lifts the quarantine (a rebuilt binding starts afresh).
    pub(crate) fn clear_quarantine(&self) {
        self.quarantined.store(false, Relaxed);
    }
}

/// The statistics blocks of every binding key, kept across generations.
#[derive(Debug, Default)]
pub struct StatsRegistry {
    by_key: Mutex<HashMap<BindingKey, Vec<Arc<WorkerStats>>>>,
}

impl StatsRegistry {
    /// The blocks of `key` for at least `workers` workers: those of earlier generations (so
    /// counts carry on), plus new ones where there were fewer workers. Blocks of workers
    /// that no longer exist are kept too, so their counts stay in the sums.
    pub(crate) fn cells(&self, key: &BindingKey, workers: usize) -> Vec<Arc<WorkerStats>> {
        let mut cells = self
            .by_key
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned()
            .unwrap_or_default();
        while cells.len() < workers {
            cells.push(Arc::default());
        }
        cells
    }

    /// Makes `table` the current one: its keys keep their blocks (quarantine lifted), every
    /// other key is forgotten.
    pub(crate) fn adopt(&self, table: &StatsTable) {
        let mut by_key = self.by_key.lock().unwrap_or_else(|p| p.into_inner());
        by_key.clear();
        for b in &table.bindings {
            for w in &b.workers {
                w.clear_quarantine();
            }
            by_key.insert(b.key.clone(), b.workers.clone());
        }
    }

    /// Number of binding keys kept.
    pub fn len(&self) -> usize {
        self.by_key.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no key is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Which binding: the VIP, the position in its chain, the plugin name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct BindingKey {
    /// The VIP.
    pub vip: IpAddr,
    /// Position in the VIP's chain (0 first).
    pub position: usize,
    /// The plugin's name.
    pub plugin: String,
}

/// One binding's statistics across workers.
#[derive(Debug)]
pub struct BindingStats {
    /// Which binding.
    pub key: BindingKey,
    /// The module's sha256.
    pub sha256: String,
    /// The binding's failure policy.
    pub on_error: OnError,
    /// One block per worker.
    pub(crate) workers: Vec<Arc<WorkerStats>>,
}

/// The statistics of every binding of one published generation.
#[derive(Debug, Default)]
pub struct StatsTable {
    /// The bindings, in document order.
    pub bindings: Vec<BindingStats>,
}

/// Error counts by kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ErrorCounts {
    /// Deadline hits.
    pub deadline: u64,
    /// Memory cap hits.
    pub memory_cap: u64,
    /// Other traps.
    pub trap: u64,
    /// Bad or missing verdicts.
    pub bad_verdict: u64,
}

/// One plugin-defined counter's value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CounterValue {
    /// Its name.
    pub name: String,
    /// Its label value.
    pub label: String,
    /// Summed over workers.
    pub value: u64,
}

/// A binding's statistics at one moment, summed over workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindingSnapshot {
    /// Which binding.
    #[serde(flatten)]
    pub key: BindingKey,
    /// The module's sha256.
    pub sha256: String,
    /// `pass` or `drop`.
    pub on_error: &'static str,
    /// Calls into the plugin that returned (successfully or not).
    pub calls: u64,
    /// Packets the plugin passed.
    pub passed: u64,
    /// Packets the plugin dropped.
    pub dropped: u64,
    /// Failed calls by kind.
    pub errors: ErrorCounts,
    /// Packets of failed calls that went on (on_error = pass).
    pub error_passed: u64,
    /// Packets of failed calls that were dropped (on_error = drop).
    pub error_dropped: u64,
    /// Packets that met the quarantined binding and went on.
    pub skipped_passed: u64,
    /// Packets that met the quarantined binding and were dropped.
    pub skipped_dropped: u64,
    /// Whether the binding is quarantined on any worker.
    pub quarantined: bool,
    /// On how many workers.
    pub quarantined_workers: usize,
    /// Log lines emitted.
    pub log_lines: u64,
    /// Log lines suppressed by the rate limit.
    pub log_suppressed: u64,
    /// Total time in calls, nanoseconds.
    pub call_ns_sum: u64,
    /// Calls per time bucket: `call_ns_buckets[i]` counts calls of at most
    /// [`CALL_NS_BOUNDS`]`[i]` ns (and more than the bound before); the last, slower ones.
    pub call_ns_buckets: Vec<u64>,
    /// The plugin's own counters, in definition order.
    pub counters: Vec<CounterValue>,
    /// The most recent failure's message, if any.
    pub last_error: Option<String>,
}

impl StatsTable {
    /// Sums every binding's workers.
    pub fn snapshot(&self) -> Vec<BindingSnapshot> {
        self.bindings.iter().map(BindingStats::snapshot).collect()
    }
}

impl BindingStats {
    /// Sums the workers.
    pub fn snapshot(&self) -> BindingSnapshot {
        let sum = |f: fn(&WorkerStats) -> &AtomicU64| -> u64 {
            self.workers.iter().map(|w| f(w).load(Relaxed)).sum()
        };
        let kind = |k: ErrorKind| -> u64 {
            self.workers
                .iter()
                .map(|w| w.errors[k as usize].load(Relaxed))
                .sum()
        };
        let mut counters: Vec<CounterValue> = Vec::new();
        for w in &self.workers {
            for c in w.counters.lock().unwrap_or_else(|p| p.into_inner()).iter() {
                let value = c.value.load(Relaxed);
                match counters
                    .iter_mut()
                    .find(|x| x.name == c.name && x.label == c.label)
                {
                    Some(x) => x.value += value,
                    None => counters.push(CounterValue {
                        name: c.name.clone(),
                        label: c.label.clone(),
                        value,
                    }),
                }
            }
        }
        let quarantined_workers = self
            .workers
            .iter()
            .filter(|w| w.quarantined.load(Relaxed))
            .count();
        BindingSnapshot {
            key: self.key.clone(),
            sha256: self.sha256.clone(),
            on_error: self.on_error.as_str(),
            calls: sum(|w| &w.calls),
            passed: sum(|w| &w.passed),
            dropped: sum(|w| &w.dropped),
            errors: ErrorCounts {
                deadline: kind(ErrorKind::Deadline),
                memory_cap: kind(ErrorKind::MemoryCap),
                trap: kind(ErrorKind::Trap),
                bad_verdict: kind(ErrorKind::BadVerdict),
            },
            error_passed: sum(|w| &w.error_passed),
            error_dropped: sum(|w| &w.error_dropped),
            skipped_passed: sum(|w| &w.skipped_passed),
            skipped_dropped: sum(|w| &w.skipped_dropped),
            quarantined: quarantined_workers > 0,
            quarantined_workers,
            log_lines: sum(|w| &w.log_lines),
            log_suppressed: sum(|w| &w.log_suppressed),
            call_ns_sum: sum(|w| &w.call_ns_sum),
            call_ns_buckets: (0..BUCKETS)
                .map(|i| {
                    self.workers
                        .iter()
                        .map(|w| w.call_ns[i].load(Relaxed))
                        .sum()
                })
                .collect(),
            counters,
            last_error: self
                .workers
                .iter()
                .filter_map(|w| {
                    w.last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone()
                })
                .next_back(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn snapshot_sums_workers_and_merges_counters() {
        let (a, b) = (
            Arc::new(WorkerStats::default()),
            Arc::new(WorkerStats::default()),
        );
        for (w, v) in [(&a, 3), (&b, 4)] {
            w.counter("packets", "10.0.0.0/8")
                .value
                .fetch_add(v, Relaxed);
        }
        a.record_call(100);
        a.record_call(129);
        b.record_call(10_000_000);
        a.record_verdicts(5, 1);
        b.record_verdicts(2, 0);
        b.record_error(ErrorKind::Deadline, "too slow".into(), 64, OnError::Drop);
        a.record_error(ErrorKind::BadVerdict, "verdict 7".into(), 3, OnError::Pass);
        b.record_skipped(9, OnError::Drop);
        b.set_quarantined();
        a.record_log(true);
        a.record_log(false);
        let table = BindingStats {
            key: BindingKey {
                vip: Ipv4Addr::new(192, 0, 2, 1).into(),
                position: 1,
                plugin: "accounting".into(),
            },
            sha256: "ab".repeat(32),
            on_error: OnError::Drop,
            workers: vec![a, b],
        };
        let s = table.snapshot();
        assert_eq!((s.calls, s.passed, s.dropped), (3, 7, 1));
        assert_eq!(s.call_ns_sum, 10_000_229);
        assert_eq!(s.call_ns_buckets[0], 1, "100 ns <= 128");
        assert_eq!(s.call_ns_buckets[1], 1, "129 ns <= 256");
        assert_eq!(s.call_ns_buckets[16], 1, "10 ms is past the last bound");
        assert_eq!(s.call_ns_buckets.iter().sum::<u64>(), 3);
        assert_eq!(
            s.errors,
            ErrorCounts {
                deadline: 1,
                memory_cap: 0,
                trap: 0,
                bad_verdict: 1
            }
        );
        assert_eq!((s.error_passed, s.error_dropped), (3, 64));
        assert_eq!((s.skipped_passed, s.skipped_dropped), (0, 9));
        assert!(s.quarantined);
        assert_eq!(s.quarantined_workers, 1);
        assert_eq!((s.log_lines, s.log_suppressed), (1, 1));
        assert_eq!(
            s.counters,
            [CounterValue {
                name: "packets".into(),
                label: "10.0.0.0/8".into(),
                value: 7
            }]
        );
        assert!(s.last_error.is_some());
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["vip"], "192.0.2.1");
        assert_eq!(json["plugin"], "accounting");
        assert_eq!(json["on_error"], "drop");
    }

    #[test]
    fn the_registry_carries_blocks_and_counters_across_generations_and_drops_removed_keys() {
        let registry = StatsRegistry::default();
        let key = |position| BindingKey {
            vip: Ipv4Addr::new(192, 0, 2, 1).into(),
            position,
            plugin: "accounting".into(),
        };
        let table = |keys: &[usize], workers: usize| StatsTable {
            bindings: keys
                .iter()
                .map(|&p| BindingStats {
                    key: key(p),
                    sha256: String::new(),
                    on_error: OnError::Pass,
                    workers: registry.cells(&key(p), workers),
                })
                .collect(),
        };
        let first = table(&[0, 1], 1);
        registry.adopt(&first);
        first.bindings[0].workers[0].record_verdicts(5, 2);
        first.bindings[0].workers[0]
            .counter("packets", "all")
            .value
            .fetch_add(7, Relaxed);
        first.bindings[0].workers[0].set_quarantined();
        // The next generation (two workers now, binding 1 removed) goes on from there.
        let second = table(&[0], 2);
        assert_eq!(second.bindings[0].workers.len(), 2);
        assert!(Arc::ptr_eq(
            &first.bindings[0].workers[0],
            &second.bindings[0].workers[0]
        ));
        registry.adopt(&second);
        assert_eq!(registry.len(), 1, "the removed binding's key is dropped");
        let again = second.bindings[0].workers[1].counter("packets", "all");
        again.value.fetch_add(1, Relaxed);
        second.bindings[0].workers[1].record_verdicts(1, 0);
        let s = second.bindings[0].snapshot();
        assert_eq!((s.passed, s.dropped), (6, 2));
        assert_eq!(s.counters[0].value, 8);
        assert!(!s.quarantined, "rebuilding lifts the quarantine");
        let same = first.bindings[0].workers[0].counter("packets", "all");
        assert_eq!(
            same.value.load(Relaxed),
            7,
            "a redefined counter is the same cell"
        );
        // A key that comes back after removal starts from zero.
        let third = table(&[0, 1], 1);
        assert_eq!(third.bindings[1].snapshot().passed, 0);
    }
}
