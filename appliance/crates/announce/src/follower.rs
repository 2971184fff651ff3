//! The announcer: one thread (`tg-announce`) that keeps the health link up exactly while
//! the gateway is ready and not draining, and the drain that withdraws, waits for the
//! traffic to move, and hands the stop over to the daemon.
//!
//! It reads readiness and the received-packet count through closures the daemon gives
//! (the control plane's view, the data path's counters). It looks at readiness when woken
//! ([`AnnounceHandle::wake`]: the control plane calls it on every readiness change), and
//! also every [`RECHECK_INTERVAL`] as a safety net; it never blocks either of them and
//! never stops the process itself.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::LinkError;

/// How often the announcer looks at readiness without being woken (a safety net: a
/// readiness change wakes it at once).
pub const RECHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How often the announcer retries setting the link after the kernel refused it.
pub const RETRY_INTERVAL: Duration = Duration::from_millis(50);
/// How long a drain waits for the link to go down.
pub const WITHDRAW_LIMIT: Duration = Duration::from_secs(2);
/// A drain ends once no packet arrived for this long after the withdrawal.
pub const DRAIN_QUIET: Duration = Duration::from_secs(1);
/// A drain ends at the latest this long after the withdrawal (traffic that keeps arriving,
/// e.g. a router that never moves it, does not hold a gateway forever).
pub const DRAIN_LIMIT: Duration = Duration::from_secs(30);
/// How often a drain samples the received-packet count.
const DRAIN_SAMPLE: Duration = Duration::from_millis(100);

/// A device whose up/down state announces GIP ([`crate::HealthLink`]; a fake in tests).
pub trait Link: Send + 'static {
    /// Sets the device up (announce) or down (withdraw).
    fn set_up(&mut self, up: bool) -> Result<(), LinkError>;
}

/// Readiness (`/readyz`): whether the data path runs with the configuration in force.
type Ready = Box<dyn Fn() -> bool + Send>;
/// Packets received so far by the data path.
type Received = Arc<dyn Fn() -> u64 + Send + Sync>;
/// Called once a drain has ended (the daemon stops the process).
type OnDrained = Arc<dyn Fn() + Send + Sync>;

#[derive(Default)]
struct State {
    draining: AtomicBool,
    stop: AtomicBool,
    /// The link's state as last set successfully.
    announced: AtomicBool,
}

/// Where this gateway's announcement of GIP stands (`/api/v1/status` `fleet.announcement`,
/// its fleet registration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Announcement {
    /// The health link is up: the routing daemon announces GIP.
    Announced,
    /// The health link is down (not ready, or stopping): GIP is withdrawn.
    Withdrawn,
    /// A drain started: GIP is withdrawn for good and the gateway stops once the traffic
    /// has moved.
    Draining,
}

impl Announcement {
    /// The lowercase name used by the API: `announced`, `withdrawn` or `draining`.
    pub fn as_str(self) -> &'static str {
        match self {
            Announcement::Announced => "announced",
            Announcement::Withdrawn => "withdrawn",
            Announcement::Draining => "draining",
        }
    }
}

/// What a drain did (`POST /api/v1/drain`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainReport {
    /// From the request to the link being down (the route withdrawn by the daemon).
    pub withdrawn_after: Duration,
    /// From the withdrawal to the end of the drain.
    pub drained_after: Duration,
    /// Packets that still arrived after the withdrawal (and were forwarded).
    pub packets_after_withdrawal: u64,
    /// Whether the traffic stopped ([`DRAIN_QUIET`] without a packet) before [`DRAIN_LIMIT`].
    pub quiet: bool,
}

/// Why a drain did not run.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DrainError {
    /// A drain is running or done already.
    #[error("this gateway is draining already")]
    AlreadyDraining,
    /// The link could not be set down.
    #[error("the health link did not go down within {0:?}; the route may still be announced")]
    NotWithdrawn(Duration),
}

/// The running announcer; [`Announcer::stop`] withdraws and removes the link.
pub struct Announcer {
    state: Arc<State>,
    handle: AnnounceHandle,
    thread: Option<JoinHandle<()>>,
}

/// What the admin API holds to start a drain (cheap to clone).
#[derive(Clone)]
pub struct AnnounceHandle {
    /// The announcer thread (unparked when a drain starts).
    follower: std::thread::Thread,
    state: Arc<State>,
    received: Received,
    on_drained: OnDrained,
    quiet: Duration,
    limit: Duration,
}

impl Announcer {
    /// Starts following readiness with `link` (initially down): up while `ready()` and no
    /// drain runs. `received()` counts the packets the data path received; `on_drained`
    /// runs once a drain ended.
    pub fn start(
        link: impl Link,
        ready: impl Fn() -> bool + Send + 'static,
        received: impl Fn() -> u64 + Send + Sync + 'static,
        on_drained: impl Fn() + Send + Sync + 'static,
    ) -> std::io::Result<Announcer> {
        Self::start_with(
            link,
            Box::new(ready),
            Arc::new(received),
            Arc::new(on_drained),
            (DRAIN_QUIET, DRAIN_LIMIT),
            RECHECK_INTERVAL,
        )
    }

    fn start_with(
        mut link: impl Link,
        ready: Ready,
        received: Received,
        on_drained: OnDrained,
        (quiet, limit): (Duration, Duration),
        recheck: Duration,
    ) -> std::io::Result<Announcer> {
        let state = Arc::new(State::default());
        let shared = state.clone();
        let thread = std::thread::Builder::new()
            .name("tg-announce".into())
            .spawn(move || {
                let mut failing = false;
                loop {
                    let stopping = shared.stop.load(Ordering::Acquire);
                    let want = !stopping && !shared.draining.load(Ordering::Acquire) && ready();
                    if want != shared.announced.load(Ordering::Acquire) || failing {
                        match link.set_up(want) {
                            Ok(()) => {
                                failing = false;
                                shared.announced.store(want, Ordering::Release);
                                tracing::info!(
                                    "{} GIP: {}",
                                    if want { "announcing" } else { "withdrew" },
                                    reason(want, stopping, &shared)
                                );
                            }
                            Err(e) if !failing => {
                                failing = true;
                                tracing::error!("{e}");
                            }
                            Err(_) => {}
                        }
                    }
                    if stopping {
                        break;
                    }
                    // A readiness change, a drain or a stop unparks the thread: it acts
                    // at once, not at the tick.
                    std::thread::park_timeout(if failing { RETRY_INTERVAL } else { recheck });
                }
                // Dropping the link here deletes the device.
            })?;
        Ok(Announcer {
            handle: AnnounceHandle {
                follower: thread.thread().clone(),
                state: state.clone(),
                received,
                on_drained,
                quiet,
                limit,
            },
            state,
            thread: Some(thread),
        })
    }

    /// A handle for drains.
    pub fn handle(&self) -> AnnounceHandle {
        self.handle.clone()
    }

    /// Whether the link is up (GIP announced).
    pub fn announced(&self) -> bool {
        self.state.announced.load(Ordering::Acquire)
    }

    /// Withdraws (link down) and removes the link; call before the data path stops.
    pub fn stop(mut self) {
        self.state.stop.store(true, Ordering::Release);
        self.handle.follower.unpark();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn reason(announced: bool, stopping: bool, state: &State) -> &'static str {
    match (announced, stopping, state.draining.load(Ordering::Acquire)) {
        (true, _, _) => "ready",
        (false, true, _) => "stopping",
        (false, false, true) => "draining",
        (false, false, false) => "not ready",
    }
}

impl AnnounceHandle {
    /// Has the announcer look at readiness now (call it whenever readiness may have
    /// changed; extra calls are harmless).
    pub fn wake(&self) {
        self.follower.unpark();
    }

    /// Whether a drain runs or ran.
    pub fn draining(&self) -> bool {
        self.state.draining.load(Ordering::Acquire)
    }

    /// Whether the link is up (GIP announced).
    pub fn announced(&self) -> bool {
        self.state.announced.load(Ordering::Acquire)
    }

    /// Where the announcement stands: a drain wins (it withdraws for good), else the
    /// link's state as last set.
    pub fn announcement(&self) -> Announcement {
        if self.draining() {
            Announcement::Draining
        } else if self.announced() {
            Announcement::Announced
        } else {
            Announcement::Withdrawn
        }
    }

    /// Drains (blocking): sets the link down, waits until it is, then until no packet
    /// arrived for the quiet period (at most the limit), then calls `on_drained`. Once
    /// started, the gateway stays withdrawn.
    pub fn drain(&self) -> Result<DrainReport, DrainError> {
        if self.state.draining.swap(true, Ordering::AcqRel) {
            return Err(DrainError::AlreadyDraining);
        }
        self.follower.unpark();
        let started = Instant::now();
        while self.state.announced.load(Ordering::Acquire) {
            if started.elapsed() > WITHDRAW_LIMIT {
                return Err(DrainError::NotWithdrawn(WITHDRAW_LIMIT));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let withdrawn = Instant::now();
        let first = (self.received)();
        let mut last = first;
        let mut last_change = withdrawn;
        let quiet = loop {
            std::thread::sleep(DRAIN_SAMPLE);
            let now = Instant::now();
            let count = (self.received)();
            if count != last {
                last = count;
                last_change = now;
            }
            if now.duration_since(last_change) >= self.quiet {
                break true;
            }
            if now.duration_since(withdrawn) >= self.limit {
                break false;
            }
        };
        let report = DrainReport {
            withdrawn_after: withdrawn.duration_since(started),
            drained_after: withdrawn.elapsed(),
            packets_after_withdrawal: last.saturating_sub(first),
            quiet,
        };
        tracing::info!(
            "drained: {} packets after the withdrawal, {}; stopping",
            report.packets_after_withdrawal,
            if quiet {
                "the traffic has moved"
            } else {
                "traffic still arrives at the drain limit"
            }
        );
        (self.on_drained)();
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// A link that records every state it was set to.
    #[derive(Clone, Default)]
    struct Recorded(Arc<Mutex<Vec<bool>>>);

    impl Link for Recorded {
        fn set_up(&mut self, up: bool) -> Result<(), LinkError> {
            self.0.lock().unwrap().push(up);
            Ok(())
        }
    }

    impl Recorded {
        fn last(&self) -> Option<bool> {
            self.0.lock().unwrap().last().copied()
        }
    }

    /// Waits (bounded, generously) until `f` holds.
    fn until(what: &str, f: impl Fn() -> bool) {
        let end = Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(Instant::now() < end, "never: {what}");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// A recheck interval no test outlives: the link can only follow readiness if woken.
    const NEVER: Duration = Duration::from_secs(3600);

    struct Fixture {
        link: Recorded,
        ready: Arc<AtomicBool>,
        received: Arc<AtomicU64>,
        drained: Arc<AtomicBool>,
        announcer: Announcer,
    }

    fn fixture(quiet: Duration, limit: Duration) -> Fixture {
        let link = Recorded::default();
        let ready = Arc::new(AtomicBool::new(false));
        let received = Arc::new(AtomicU64::new(0));
        let drained = Arc::new(AtomicBool::new(false));
        let (r, c, d) = (ready.clone(), received.clone(), drained.clone());
        let announcer = Announcer::start_with(
            link.clone(),
            Box::new(move || r.load(Ordering::Acquire)),
            Arc::new(move || c.load(Ordering::Acquire)),
            Arc::new(move || d.store(true, Ordering::Release)),
            (quiet, limit),
            NEVER,
        )
        .unwrap();
        Fixture {
            link,
            ready,
            received,
            drained,
            announcer,
        }
    }

    #[test]
    fn the_link_follows_readiness_and_goes_down_at_stop() {
        let f = fixture(DRAIN_QUIET, DRAIN_LIMIT);
        let handle = f.announcer.handle();
        handle.wake();
        std::thread::sleep(RETRY_INTERVAL * 3);
        assert_eq!(f.link.last(), None, "never up while not ready");
        assert_eq!(handle.announcement(), Announcement::Withdrawn);
        // Each change is followed because the change wakes the announcer (the recheck
        // interval is longer than any test).
        f.ready.store(true, Ordering::Release);
        handle.wake();
        until("announced when ready", || f.link.last() == Some(true));
        assert_eq!(handle.announcement(), Announcement::Announced);
        assert_eq!(handle.announcement().as_str(), "announced");
        f.ready.store(false, Ordering::Release);
        handle.wake();
        until("withdrawn when not ready", || f.link.last() == Some(false));
        until("reported withdrawn", || {
            handle.announcement() == Announcement::Withdrawn
        });
        f.ready.store(true, Ordering::Release);
        handle.wake();
        until("announced again", || f.link.last() == Some(true));
        let link = f.link.clone();
        f.announcer.stop();
        assert_eq!(link.last(), Some(false), "stop withdraws first");
        assert_eq!(*link.0.lock().unwrap(), [true, false, true, false]);
    }

    #[test]
    fn a_drain_withdraws_waits_for_quiet_and_stays_withdrawn() {
        let f = fixture(Duration::from_millis(300), Duration::from_secs(20));
        f.ready.store(true, Ordering::Release);
        f.announcer.handle().wake();
        until("announced", || f.announcer.announced());
        let handle = f.announcer.handle();
        let received = f.received.clone();
        // Traffic that goes on for a while after the withdrawal, then stops.
        let link = f.link.clone();
        let feeder = std::thread::spawn(move || {
            until("withdrawn", || link.last() == Some(false));
            for _ in 0..5 {
                received.fetch_add(10, Ordering::AcqRel);
                std::thread::sleep(DRAIN_SAMPLE);
            }
        });
        let report = handle.drain().unwrap();
        feeder.join().unwrap();
        assert!(report.quiet);
        // The first burst may race the drain's baseline; the later ones are counted.
        assert!(
            (40..=50).contains(&report.packets_after_withdrawal),
            "{report:?}"
        );
        assert!(
            f.drained.load(Ordering::Acquire),
            "the stop was handed over"
        );
        assert_eq!(handle.drain(), Err(DrainError::AlreadyDraining));
        handle.wake();
        std::thread::sleep(RETRY_INTERVAL * 3);
        assert_eq!(f.link.last(), Some(false), "ready, but drained: stays down");
        assert_eq!(handle.announcement(), Announcement::Draining);
        assert_eq!(handle.announcement().as_str(), "draining");
        f.announcer.stop();
    }

    #[test]
    fn a_drain_whose_traffic_never_stops_ends_at_the_limit() {
        let f = fixture(Duration::from_millis(500), Duration::from_millis(400));
        f.ready.store(true, Ordering::Release);
        f.announcer.handle().wake();
        until("announced", || f.announcer.announced());
        let received = f.received.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let feeder = std::thread::spawn(move || {
            while !s.load(Ordering::Acquire) {
                received.fetch_add(1, Ordering::AcqRel);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let report = f.announcer.handle().drain().unwrap();
        stop.store(true, Ordering::Release);
        feeder.join().unwrap();
        assert!(!report.quiet, "{report:?}");
        assert!(report.packets_after_withdrawal > 0);
        assert!(f.drained.load(Ordering::Acquire));
        f.announcer.stop();
    }

    /// A link the kernel sets up but refuses to set down.
    struct StuckUp;

    impl Link for StuckUp {
        fn set_up(&mut self, up: bool) -> Result<(), LinkError> {
            if up {
                Ok(())
            } else {
                Err(LinkError::BadName("stuck".into()))
            }
        }
    }

    #[test]
    fn a_link_that_cannot_go_down_fails_the_drain_without_stopping_the_gateway() {
        let announcer = Announcer::start_with(
            StuckUp,
            Box::new(|| true),
            Arc::new(|| 0),
            Arc::new(|| panic!("a failed drain must not stop the gateway")),
            (DRAIN_QUIET, DRAIN_LIMIT),
            NEVER,
        )
        .unwrap();
        until("announced", || announcer.announced());
        let handle = announcer.handle();
        assert_eq!(
            handle.drain(),
            Err(DrainError::NotWithdrawn(WITHDRAW_LIMIT))
        );
        assert!(handle.announced(), "still reported as announced: it is");
        announcer.stop();
    }
}
