//! A VIP's plugin chain on one worker: the [`BatchFilter`] the data path calls.
//!
//! Describes each packet once per batch, then calls each plugin once with the packets still
//! passing (first drop wins), applies each binding's `on_error` to failed calls, holds each
//! binding to its time budget (a call that takes it over the budget fails, and the binding is
//! skipped until the window ends), and quarantines a binding after too many failures in a
//! row. It must never stop forwarding or
//! panic because of what a plugin does; every outcome is counted in [`super::stats`].

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungate_plugin_sdk::abi::{BATCH_MAX, Verdict};

use super::engine::{TIME_BUDGET_WINDOW, monotonic_ns_at};
use super::instance::{CallFailure, PluginInstance};
use super::stats::{ErrorKind, WorkerStats};
use tungate_config::OnError;
use tungate_datapath::filter::{BatchFilter, Culprit, Decision};

/// One binding's instance on this worker, with its failure state.
pub struct Link {
    instance: PluginInstance,
    plugin: Arc<str>,
    on_error: OnError,
    stats: Arc<WorkerStats>,
    failures_in_a_row: u32,
    quarantine_after: u32,
    quarantined: bool,
    budget: TimeBudget,
}

/// A binding's plugin time in the current [`TIME_BUDGET_WINDOW`] on this worker.
struct TimeBudget {
    limit_ns: u64,
    window_start: Instant,
    used_ns: u64,
    exhausted: bool,
}

impl TimeBudget {
    /// Starts a new window if the current one is over; whether calls are allowed now.
    fn allows(&mut self, now: Instant) -> bool {
        if now.saturating_duration_since(self.window_start) >= TIME_BUDGET_WINDOW {
            self.window_start = now;
            self.used_ns = 0;
            self.exhausted = false;
        }
        !self.exhausted
    }

    /// Adds a call's time; the failure to report if it took the binding over its budget.
    fn spend(&mut self, ns: u64) -> Option<CallFailure> {
        self.used_ns = self.used_ns.saturating_add(ns);
        if self.used_ns <= self.limit_ns {
            return None;
        }
        self.exhausted = true;
        let ms = |ns: u64| ns as f64 / 1e6;
        Some(CallFailure {
            kind: ErrorKind::Deadline,
            message: format!(
                "over its time budget: {:.2} ms of plugin time in {} ms on this worker, more \
                 than the {:.2} ms allowed; skipped until the window ends",
                ms(self.used_ns),
                TIME_BUDGET_WINDOW.as_millis(),
                ms(self.limit_ns)
            ),
        })
    }
}

impl Link {
    /// A link for a configured instance, allowed `time_budget` of plugin time per
    /// [`TIME_BUDGET_WINDOW`].
    pub(crate) fn new(
        instance: PluginInstance,
        plugin: Arc<str>,
        on_error: OnError,
        stats: Arc<WorkerStats>,
        quarantine_after: u32,
        time_budget: Duration,
    ) -> Link {
        Link {
            instance,
            plugin,
            on_error,
            stats,
            failures_in_a_row: 0,
            quarantine_after,
            quarantined: false,
            budget: TimeBudget {
                limit_ns: u64::try_from(time_budget.as_nanos()).unwrap_or(u64::MAX),
                window_start: Instant::now(),
                used_ns: 0,
                exhausted: false,
            },
        }
    }
}

/// The chain of one VIP on one worker.
pub struct VipChain {
    vip: IpAddr,
    links: Vec<Link>,
    live: Vec<usize>,
    verdicts: [u8; BATCH_MAX],
    /// For each packet of the last call that was dropped: the position of the binding that
    /// dropped it (written only on a drop; read only for dropped packets).
    decided: Vec<u16>,
}

impl VipChain {
    /// A chain of `links`, in order.
    pub fn new(vip: IpAddr, links: Vec<Link>) -> VipChain {
        VipChain {
            vip,
            links,
            live: Vec::with_capacity(BATCH_MAX),
            verdicts: [0; BATCH_MAX],
            decided: Vec::new(),
        }
    }

    /// Judges up to [`BATCH_MAX`] packets. Each plugin gets the descriptors of the packets
    /// still passing, written straight into its memory.
    /// `offset`: the first packet's index in the whole call (for [`Self::decided`]).
    fn filter_batch(&mut self, offset: usize, packets: &[&[u8]], decisions: &mut [Decision]) {
        let decided = &mut self.decided[offset..];
        self.live.clear();
        self.live
            .extend((0..packets.len()).filter(|&i| decisions[i] == Decision::Pass));
        // One clock read per batch plus one per call: the batch time and each call's duration.
        let mut clock = Instant::now();
        let now = monotonic_ns_at(clock);
        for (position, link) in self.links.iter_mut().enumerate() {
            let position = u16::try_from(position).unwrap_or(u16::MAX);
            if self.live.is_empty() {
                break;
            }
            let n = self.live.len() as u64;
            if link.quarantined || !link.budget.allows(clock) {
                link.stats.record_skipped(n, link.on_error);
                apply_on_error(link.on_error, &mut self.live, decisions, decided, position);
                continue;
            }
            let result = link.instance.call(
                now,
                self.live.iter().map(|&i| packets[i]),
                &mut self.verdicts,
            );
            let returned = Instant::now();
            let took = returned.saturating_duration_since(clock).as_nanos();
            clock = returned;
            let took = u64::try_from(took).unwrap_or(u64::MAX);
            link.stats.record_call(took);
            let over_budget = link.budget.spend(took);
            let result = result
                .and_then(|()| check_verdicts(&self.verdicts[..self.live.len()]))
                .and_then(|()| over_budget.map_or(Ok(()), Err));
            match result {
                Ok(()) => {
                    link.failures_in_a_row = 0;
                    let verdicts = &self.verdicts;
                    let mut k = 0;
                    self.live.retain(|&i| {
                        let drop = verdicts[k] == Verdict::Drop as u8;
                        k += 1;
                        if drop {
                            decisions[i] = Decision::DropByPlugin;
                            decided[i] = position;
                        }
                        !drop
                    });
                    let passed = self.live.len() as u64;
                    link.stats.record_verdicts(passed, n - passed);
                }
                Err(failure) => {
                    link.failures_in_a_row += 1;
                    link.stats.record_error(
                        failure.kind,
                        failure.message.clone(),
                        n,
                        link.on_error,
                    );
                    apply_on_error(link.on_error, &mut self.live, decisions, decided, position);
                    if link.failures_in_a_row >= link.quarantine_after {
                        link.quarantined = true;
                        link.stats.set_quarantined();
                        tracing::warn!(
                            vip = %self.vip,
                            plugin = &*link.plugin,
                            failures = link.failures_in_a_row,
                            on_error = link.on_error.as_str(),
                            "plugin quarantined after consecutive failures (last: {}); \
                             rebuild the binding to retry it",
                            failure.message
                        );
                    }
                }
            }
        }
    }
}

/// The packets still live after a failure: all of them go on (`pass`) or are dropped.
fn apply_on_error(
    on_error: OnError,
    live: &mut Vec<usize>,
    decisions: &mut [Decision],
    decided: &mut [u16],
    position: u16,
) {
    if on_error == OnError::Drop {
        for &i in live.iter() {
            decisions[i] = Decision::DropOnError;
            decided[i] = position;
        }
        live.clear();
    }
}

/// Every verdict must be one ABI v1 defines.
fn check_verdicts(verdicts: &[u8]) -> Result<(), CallFailure> {
    match verdicts
        .iter()
        .position(|&v| Verdict::from_code(v).is_none())
    {
        None => Ok(()),
        Some(i) => Err(CallFailure {
            kind: ErrorKind::BadVerdict,
            message: format!(
                "verdict {:#04x} for packet {i} of the batch is not one ABI v1 defines (0 pass, 1 drop){}",
                verdicts[i],
                if verdicts[i] == tungate_plugin_sdk::abi::VERDICT_UNSET {
                    "; the plugin wrote none"
                } else {
                    ""
                }
            ),
        }),
    }
}

impl BatchFilter for VipChain {
    fn filter(&mut self, packets: &[&[u8]], decisions: &mut [Decision]) {
        if self.decided.len() < packets.len() {
            self.decided.resize(packets.len(), u16::MAX);
        }
        for (n, (p, d)) in packets
            .chunks(BATCH_MAX)
            .zip(decisions.chunks_mut(BATCH_MAX))
            .enumerate()
        {
            self.filter_batch(n * BATCH_MAX, p, d);
        }
    }

    fn culprit(&self, packet: usize) -> Option<Culprit> {
        let position = usize::from(*self.decided.get(packet)?);
        let link = self.links.get(position)?;
        Some(Culprit {
            position,
            plugin: link.plugin.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Limits, PluginEngine};
    use crate::instance::{InstanceLabels, Prepared};
    use crate::stats::{BindingKey, BindingSnapshot, BindingStats};
    use crate::test_wat::{self, hostile};
    use crate::validate::check_module;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

    fn engine() -> PluginEngine {
        PluginEngine::new(Limits {
            max_instances: 8,
            memory_cap_bytes: 1 << 20,
            filter_deadline: Duration::from_millis(3),
            quarantine_after: 3,
            ..Limits::default()
        })
        .unwrap()
    }

    /// A chain of (filter body, on_error) links and each link's stats.
    fn chain(engine: &PluginEngine, links: &[(&str, OnError)]) -> (VipChain, Vec<BindingStats>) {
        chain_with_budget(engine, links, Duration::from_secs(1))
    }

    /// The same, each link allowed `budget` of plugin time per window.
    fn chain_with_budget(
        engine: &PluginEngine,
        links: &[(&str, OnError)],
        budget: Duration,
    ) -> (VipChain, Vec<BindingStats>) {
        let mut built = Vec::new();
        let mut stats = Vec::new();
        for (position, (body, on_error)) in links.iter().enumerate() {
            let bytes = test_wat::plugin(&test_wat::hostile_body(body));
            let module = check_module(engine, &bytes).unwrap().module;
            let prepared = Prepared::new(engine, &module, 1).unwrap();
            let worker = Arc::new(WorkerStats::default());
            let labels = InstanceLabels {
                vip: VIP,
                position,
                plugin: format!("p{position}").into(),
            };
            let inst =
                PluginInstance::new(engine, &prepared, b"{}", labels, worker.clone()).unwrap();
            built.push(Link::new(
                inst,
                format!("p{position}").into(),
                *on_error,
                worker.clone(),
                3,
                budget,
            ));
            stats.push(BindingStats {
                key: BindingKey {
                    vip: VIP,
                    position,
                    plugin: format!("p{position}"),
                },
                sha256: String::new(),
                on_error: *on_error,
                workers: vec![worker],
            });
        }
        (VipChain::new(VIP, built), stats)
    }

    /// IPv4 headers whose TOS bytes are `tos`.
    fn packets(tos: &[u8]) -> Vec<Vec<u8>> {
        tos.iter()
            .map(|&t| {
                let mut b = vec![0u8; 40];
                b[0] = 0x45;
                b[1] = t;
                b
            })
            .collect()
    }

    fn run(chain: &mut VipChain, tos: &[u8]) -> Vec<Decision> {
        let owned = packets(tos);
        let refs: Vec<&[u8]> = owned.iter().map(|p| p.as_slice()).collect();
        let mut d = vec![Decision::Pass; refs.len()];
        chain.filter(&refs, &mut d);
        d
    }

    fn counter(s: &BindingSnapshot, name: &str) -> u64 {
        s.counters
            .iter()
            .find(|c| c.name == name)
            .map_or(0, |c| c.value)
    }

    use Decision::{DropByPlugin as D, DropOnError as E, Pass as P};

    #[test]
    fn first_drop_wins_and_later_plugins_see_only_passing_packets() {
        let e = engine();
        let (mut c, stats) = chain(
            &e,
            &[
                (&test_wat::drop_tos(1), OnError::Pass),
                (&test_wat::drop_tos(2), OnError::Pass),
            ],
        );
        assert_eq!(run(&mut c, &[0, 1, 2, 0, 1]), [P, D, D, P, D]);
        let (a, b) = (stats[0].snapshot(), stats[1].snapshot());
        assert_eq!((a.passed, a.dropped, counter(&a, "seen")), (3, 2, 5));
        assert_eq!((b.passed, b.dropped, counter(&b, "seen")), (2, 1, 3));
        assert_eq!(run(&mut c, &[1, 1]), [D, D]);
        assert_eq!(
            counter(&stats[1].snapshot(), "seen"),
            3,
            "no live packet: no call"
        );
        assert_eq!(stats[1].snapshot().calls, 1);
    }

    #[test]
    fn the_binding_that_dropped_each_packet_is_known() {
        let e = engine();
        let (mut c, _) = chain(
            &e,
            &[
                (&test_wat::drop_tos(1), OnError::Pass),
                (&test_wat::drop_tos(2), OnError::Pass),
            ],
        );
        // More than one ABI batch, so the second chunk's indices count from its offset.
        let tos: Vec<u8> = (0..BATCH_MAX + 3).map(|i| (i % 3) as u8).collect();
        let d = run(&mut c, &tos);
        for (i, t) in tos.iter().enumerate() {
            match t {
                0 => assert_eq!(d[i], P),
                _ => {
                    assert_eq!(d[i], D);
                    let culprit = c.culprit(i).unwrap();
                    assert_eq!(culprit.position, usize::from(*t) - 1, "packet {i}");
                    assert_eq!(&*culprit.plugin, format!("p{}", t - 1));
                }
            }
        }
    }

    #[test]
    fn batches_longer_than_batch_max_are_split() {
        let e = engine();
        let (mut c, stats) = chain(&e, &[(&test_wat::drop_tos(1), OnError::Pass)]);
        let tos: Vec<u8> = (0..150).map(|i| (i % 2) as u8).collect();
        let d = run(&mut c, &tos);
        let want: Vec<Decision> = tos.iter().map(|&t| if t == 1 { D } else { P }).collect();
        assert_eq!(d, want);
        let s = stats[0].snapshot();
        assert_eq!((s.calls, counter(&s, "seen")), (3, 150));
    }

    /// A binding that goes over its time budget fails that call (its `on_error` applies) and
    /// is skipped until the window ends; then it is called again.
    #[test]
    fn a_binding_over_its_time_budget_fails_then_is_skipped_until_the_window_ends() {
        let e = engine();
        // No time at all: every call takes the binding over its budget.
        let (mut c, stats) =
            chain_with_budget(&e, &[(test_wat::PASS_ALL, OnError::Drop)], Duration::ZERO);
        assert_eq!(
            run(&mut c, &[0, 0]),
            [E, E],
            "the call over budget fails closed"
        );
        let s = stats[0].snapshot();
        assert_eq!((s.calls, s.errors.deadline, s.error_dropped), (1, 1, 2));
        let last = s.last_error.unwrap_or_default();
        assert!(last.contains("over its time budget"), "{last}");
        assert_eq!(run(&mut c, &[0, 0, 0]), [E, E, E]);
        let s = stats[0].snapshot();
        assert_eq!((s.calls, s.skipped_dropped), (1, 3), "skipped, not called");
        std::thread::sleep(TIME_BUDGET_WINDOW + Duration::from_millis(10));
        run(&mut c, &[0]);
        let s = stats[0].snapshot();
        assert_eq!(
            (s.calls, s.errors.deadline),
            (2, 2),
            "called again in a new window"
        );
        // A budget that is not reached changes nothing.
        let (mut c, stats) = chain_with_budget(
            &e,
            &[(test_wat::PASS_ALL, OnError::Drop)],
            Duration::from_secs(1),
        );
        assert_eq!(run(&mut c, &[0, 0]), [P, P]);
        assert_eq!(stats[0].snapshot().errors.deadline, 0);
    }

    /// Each hostile body fails every call with its kind; forwarding goes on under
    /// `on_error = pass`, the packets are dropped under `drop`, and the next plugin still
    /// runs for the packets that go on.
    #[test]
    fn hostile_plugins_are_contained_and_counted() {
        let e = engine();
        let cases = [
            (hostile::INFINITE_LOOP, ErrorKind::Deadline, "deadline"),
            (
                hostile::GROW_PAST_CAP,
                ErrorKind::MemoryCap,
                "cap is 1048576 bytes",
            ),
            (hostile::UNREACHABLE, ErrorKind::Trap, "unreachable"),
            (hostile::DIV_BY_ZERO, ErrorKind::Trap, "divide by zero"),
            (hostile::OUT_OF_BOUNDS, ErrorKind::Trap, "out of bounds"),
            (
                hostile::VERDICT_SEVEN,
                ErrorKind::BadVerdict,
                "verdict 0x07",
            ),
            (hostile::NO_VERDICT, ErrorKind::BadVerdict, "wrote none"),
        ];
        for (body, kind, text) in cases {
            for on_error in [OnError::Pass, OnError::Drop] {
                let (mut c, stats) = chain(
                    &e,
                    &[(body, on_error), (&test_wat::drop_tos(1), OnError::Pass)],
                );
                let d = run(&mut c, &[0, 1, 0]);
                let s = stats[0].snapshot();
                let kinds = [
                    s.errors.deadline,
                    s.errors.memory_cap,
                    s.errors.trap,
                    s.errors.bad_verdict,
                ];
                let mut want = [0; 4];
                want[kind as usize] = 1;
                assert_eq!(kinds, want, "{body:?}");
                let msg = s.last_error.clone().unwrap();
                assert!(msg.contains(text), "{body:?}: {msg}");
                assert!(
                    msg.matches("wasm trap").count() <= 1,
                    "{body:?}: said twice: {msg}"
                );
                let next = stats[1].snapshot();
                match on_error {
                    OnError::Pass => {
                        assert_eq!(d, [P, D, P], "{body:?}: fail open, next plugin judges");
                        assert_eq!(s.error_passed, 3);
                        assert_eq!(counter(&next, "seen"), 3);
                    }
                    OnError::Drop => {
                        assert_eq!(d, [E, E, E], "{body:?}: fail closed");
                        assert_eq!(s.error_dropped, 3);
                        assert_eq!(next.calls, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn quarantine_after_consecutive_failures_only() {
        let e = engine();
        for on_error in [OnError::Pass, OnError::Drop] {
            let (mut c, stats) = chain(&e, &[(hostile::TRAP_ON_TOS_9, on_error)]);
            let failed = if on_error == OnError::Pass { P } else { E };
            for _ in 0..2 {
                assert_eq!(run(&mut c, &[9, 0]), [failed, failed]);
            }
            assert_eq!(run(&mut c, &[0, 0]), [P, P], "a good call resets the count");
            for _ in 0..2 {
                run(&mut c, &[9]);
            }
            assert!(
                !stats[0].snapshot().quarantined,
                "4 failures, never 3 in a row"
            );
            run(&mut c, &[9]);
            let s = stats[0].snapshot();
            assert!(s.quarantined && s.quarantined_workers == 1);
            assert_eq!(s.errors.trap, 5);
            assert_eq!(s.calls, 6);
            assert_eq!(
                run(&mut c, &[0, 0, 0]),
                [failed; 3],
                "quarantined: skipped, on_error applies"
            );
            let s = stats[0].snapshot();
            assert_eq!(s.calls, 6, "not called any more");
            assert_eq!(s.skipped_passed + s.skipped_dropped, 3);
        }
    }
}
