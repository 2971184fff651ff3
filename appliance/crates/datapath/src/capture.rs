//! Capture of dropped (and, when asked, passed) packets for an operator: the taps the
//! workers offer packets to, and the sessions that read them.
//!
//! [`Captures`] holds at most [`MAX_CAPTURES`] running taps. A worker looks at one relaxed
//! atomic (the number of taps) per batch and does nothing more while it is zero; while a
//! tap runs, each packet a tap wants is copied (at most [`SNAPLEN`] bytes) into that tap's
//! bounded queue for this worker ([`QUEUE_PER_WORKER`] packets). A packet that does not fit
//! is counted as lost, never waited for: a slow reader never slows the data path. The
//! reader ([`CaptureSession`]) takes packets from every worker's queue; dropping it removes
//! the tap.
//!
//! This module never decides what is dropped, never counts drops and never formats a file:
//! the worker offers, the admin side writes pcapng.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Select, Sender, TrySendError};
use tungate_packet::DropReason;

use crate::filter::Culprit;

/// Most captures running at once.
pub const MAX_CAPTURES: usize = 4;
/// Most bytes copied of one packet (the rest is cut; the original length is kept).
pub const SNAPLEN: usize = 4096;
/// Packets one worker may queue for one capture before further ones are lost.
pub const QUEUE_PER_WORKER: usize = 1024;

/// Which packets a capture wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CaptureFilter {
    /// Only packets attributed to this VIP (as its per-VIP counters attribute them: drops
    /// before the VIP is known, such as `unknown_peer`, never match).
    pub vip: Option<IpAddr>,
    /// Only drops for this reason.
    pub reason: Option<DropReason>,
    /// Only drops decided by this plugin (`plugin` or `plugin_error` from one of its
    /// bindings).
    pub plugin: Option<String>,
    /// Also packets that passed every check and plugin (before their TTL is decremented).
    pub passed: bool,
}

/// What became of a captured packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Dropped for this reason.
    Dropped(DropReason),
    /// Passed every check and plugin, on its way out.
    Passed,
}

/// How a captured frame starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// `userspace` decap: Ethernet, the outer IPv4 header, the inner packet.
    Ethernet,
    /// `kernel` decap: the inner IPv4 packet (the kernel removed the outer header).
    Ipv4,
}

/// One captured packet.
#[derive(Debug, Clone)]
pub struct Captured {
    /// When the worker captured it (nanoseconds since the Unix epoch).
    pub unix_nanos: u64,
    /// Which worker saw it.
    pub worker: usize,
    /// How `bytes` starts.
    pub framing: Framing,
    /// The frame as received (at most [`SNAPLEN`] bytes).
    pub bytes: Vec<u8>,
    /// The frame's whole length.
    pub original_len: usize,
    /// Dropped (why) or passed.
    pub outcome: Outcome,
    /// The VIP it was attributed to, if any.
    pub vip: Option<IpAddr>,
    /// The binding whose plugin dropped it (for `plugin` and `plugin_error` drops).
    pub culprit: Option<Culprit>,
}

/// A packet a worker offers to the running taps.
pub(crate) struct Offer<'a> {
    pub(crate) outcome: Outcome,
    pub(crate) framing: Framing,
    pub(crate) bytes: &'a [u8],
    pub(crate) original_len: usize,
    pub(crate) vip: Option<IpAddr>,
    pub(crate) culprit: Option<Culprit>,
}

/// One running capture as the workers see it.
pub(crate) struct Tap {
    filter: CaptureFilter,
    queues: Box<[Sender<Captured>]>,
    lost: AtomicU64,
}

impl Tap {
    /// Whether this tap wants a packet of this outcome, VIP and deciding plugin.
    fn wants(&self, outcome: Outcome, vip: Option<IpAddr>, plugin: Option<&str>) -> bool {
        let f = &self.filter;
        if f.vip.is_some() && f.vip != vip {
            return false;
        }
        match outcome {
            Outcome::Passed => f.passed,
            Outcome::Dropped(reason) => {
                f.reason.is_none_or(|r| r == reason)
                    && f.plugin.as_deref().is_none_or(|p| plugin == Some(p))
            }
        }
    }
}

/// The capture taps of one data path (they outlive worker restarts, as the counters do).
pub struct Captures {
    /// How many taps run: the one thing a worker reads while none does.
    active: AtomicUsize,
    taps: ArcSwap<Vec<Arc<Tap>>>,
    /// Serialises starting and ending taps.
    edit: Mutex<()>,
    workers: AtomicUsize,
}

/// All [`MAX_CAPTURES`] captures are running.
#[derive(Debug, thiserror::Error)]
#[error("{MAX_CAPTURES} captures are running already, the most at once; wait until one ends")]
pub struct CapturesBusy;

impl Captures {
    /// No tap yet, for `workers` workers.
    pub(crate) fn new(workers: usize) -> Captures {
        Captures {
            active: AtomicUsize::new(0),
            taps: ArcSwap::from_pointee(Vec::new()),
            edit: Mutex::new(()),
            workers: AtomicUsize::new(workers.max(1)),
        }
    }

    /// The worker count changed (taps started later get one queue per worker; a running
    /// tap's queues are shared round robin by any extra workers).
    pub(crate) fn resize(&self, workers: usize) {
        self.workers.store(workers.max(1), Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.edit.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Starts a capture; it runs until the session is dropped.
    pub fn start(self: &Arc<Self>, filter: CaptureFilter) -> Result<CaptureSession, CapturesBusy> {
        let _guard = self.lock();
        let current = self.taps.load_full();
        if current.len() >= MAX_CAPTURES {
            return Err(CapturesBusy);
        }
        let workers = self.workers.load(Ordering::Relaxed);
        let (queues, receivers): (Vec<_>, Vec<_>) = (0..workers)
            .map(|_| crossbeam_channel::bounded(QUEUE_PER_WORKER))
            .unzip();
        let tap = Arc::new(Tap {
            filter,
            queues: queues.into_boxed_slice(),
            lost: AtomicU64::new(0),
        });
        let mut next = (*current).clone();
        next.push(tap.clone());
        let n = next.len();
        self.taps.store(Arc::new(next));
        self.active.store(n, Ordering::Release);
        Ok(CaptureSession {
            captures: self.clone(),
            tap,
            receivers,
        })
    }

    fn end(&self, tap: &Arc<Tap>) {
        let _guard = self.lock();
        let mut next = (*self.taps.load_full()).clone();
        next.retain(|t| !Arc::ptr_eq(t, tap));
        let n = next.len();
        self.taps.store(Arc::new(next));
        self.active.store(n, Ordering::Release);
    }

    /// How many captures run now.
    pub fn running(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }
}

/// A running capture, read by one consumer. Dropping it ends the capture.
pub struct CaptureSession {
    captures: Arc<Captures>,
    tap: Arc<Tap>,
    receivers: Vec<Receiver<Captured>>,
}

impl CaptureSession {
    /// The next captured packet, waiting until `deadline` at most.
    pub fn next_until(&self, deadline: Instant) -> Option<Captured> {
        for r in &self.receivers {
            if let Ok(c) = r.try_recv() {
                return Some(c);
            }
        }
        let mut select = Select::new();
        for r in &self.receivers {
            select.recv(r);
        }
        let op = select.select_deadline(deadline).ok()?;
        let index = op.index();
        op.recv(&self.receivers[index]).ok()
    }

    /// Packets this capture wanted that did not fit in a worker's queue.
    pub fn lost(&self) -> u64 {
        self.tap.lost.load(Ordering::Relaxed)
    }
}

impl Drop for CaptureSession {
    fn drop(&mut self) {
        self.captures.end(&self.tap);
    }
}

/// One worker's view of the running taps, refreshed once per batch.
pub(crate) struct WorkerTaps {
    captures: Arc<Captures>,
    taps: Arc<Vec<Arc<Tap>>>,
    empty: Arc<Vec<Arc<Tap>>>,
}

impl WorkerTaps {
    pub(crate) fn new(captures: Arc<Captures>) -> WorkerTaps {
        let empty = Arc::new(Vec::new());
        WorkerTaps {
            captures,
            taps: empty.clone(),
            empty,
        }
    }

    /// Between batches: one relaxed load while no capture runs.
    #[inline]
    pub(crate) fn refresh(&mut self) {
        if self.captures.active.load(Ordering::Relaxed) == 0 {
            if !self.taps.is_empty() {
                self.taps = self.empty.clone();
            }
        } else {
            self.taps = self.captures.taps.load_full();
        }
    }

    /// Whether any capture runs (as of the last refresh).
    #[inline]
    pub(crate) fn on(&self) -> bool {
        !self.taps.is_empty()
    }

    /// Whether some running capture wants passed packets.
    pub(crate) fn want_passed(&self) -> bool {
        self.taps.iter().any(|t| t.filter.passed)
    }

    /// Offers a packet to every tap that wants it (a copy each; lost when its queue is full).
    pub(crate) fn offer(&self, worker: usize, offer: Offer<'_>) {
        let mut now = None;
        let plugin = offer.culprit.as_ref().map(|c| &*c.plugin);
        for tap in self.taps.iter() {
            if !tap.wants(offer.outcome, offer.vip, plugin) {
                continue;
            }
            let queue = &tap.queues[worker % tap.queues.len()];
            if queue.is_full() {
                tap.lost.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            let unix_nanos = *now.get_or_insert_with(|| {
                SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
            });
            let cut = offer.bytes.len().min(SNAPLEN);
            let captured = Captured {
                unix_nanos,
                worker,
                framing: offer.framing,
                bytes: offer.bytes[..cut].to_vec(),
                original_len: offer.original_len,
                outcome: offer.outcome,
                vip: offer.vip,
                culprit: offer.culprit.clone(),
            };
            match queue.try_send(captured) {
                Ok(()) | Err(TrySendError::Disconnected(_)) => {}
                Err(TrySendError::Full(_)) => {
                    tap.lost.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;
    use std::time::Duration;

    const VIP: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));

    fn offer(outcome: Outcome, vip: Option<IpAddr>, plugin: Option<&str>) -> Offer<'static> {
        Offer {
            outcome,
            framing: Framing::Ipv4,
            bytes: &[0x45, 1, 2, 3],
            original_len: 4,
            vip,
            culprit: plugin.map(|p| Culprit {
                position: 1,
                plugin: p.into(),
            }),
        }
    }

    fn drain(s: &CaptureSession) -> Vec<Captured> {
        let mut out = Vec::new();
        while let Some(c) = s.next_until(Instant::now()) {
            out.push(c);
        }
        out
    }

    #[test]
    fn nothing_is_offered_while_no_capture_runs_and_a_session_ends_its_tap() {
        let captures = Arc::new(Captures::new(2));
        let mut w = WorkerTaps::new(captures.clone());
        w.refresh();
        assert!(!w.on());
        let s = captures.start(CaptureFilter::default()).unwrap();
        w.refresh();
        assert!(w.on());
        assert!(!w.want_passed());
        w.offer(
            1,
            offer(Outcome::Dropped(DropReason::UnknownPeer), None, None),
        );
        w.offer(0, offer(Outcome::Passed, Some(VIP), None));
        let got = drain(&s);
        assert_eq!(got.len(), 1, "passed packets only when asked");
        assert_eq!(got[0].outcome, Outcome::Dropped(DropReason::UnknownPeer));
        assert_eq!(
            (got[0].worker, &got[0].bytes[..]),
            (1, &[0x45, 1, 2, 3][..])
        );
        drop(s);
        assert_eq!(captures.running(), 0);
        w.refresh();
        assert!(!w.on());
    }

    #[test]
    fn filters_select_by_vip_reason_plugin_and_passed() {
        let captures = Arc::new(Captures::new(1));
        let by_plugin = captures
            .start(CaptureFilter {
                plugin: Some("deny".into()),
                ..CaptureFilter::default()
            })
            .unwrap();
        let by_reason_vip = captures
            .start(CaptureFilter {
                vip: Some(VIP),
                reason: Some(DropReason::TtlExpired),
                passed: true,
                ..CaptureFilter::default()
            })
            .unwrap();
        let mut w = WorkerTaps::new(captures.clone());
        w.refresh();
        assert!(w.want_passed());
        w.offer(
            0,
            offer(
                Outcome::Dropped(DropReason::Plugin),
                Some(VIP),
                Some("deny"),
            ),
        );
        w.offer(
            0,
            offer(
                Outcome::Dropped(DropReason::Plugin),
                Some(VIP),
                Some("other"),
            ),
        );
        w.offer(
            0,
            offer(Outcome::Dropped(DropReason::TtlExpired), Some(VIP), None),
        );
        w.offer(
            0,
            offer(Outcome::Dropped(DropReason::TtlExpired), None, None),
        );
        w.offer(0, offer(Outcome::Passed, Some(VIP), None));
        w.offer(
            0,
            offer(
                Outcome::Passed,
                Some(Ipv4Addr::new(192, 0, 2, 11).into()),
                None,
            ),
        );
        let p = drain(&by_plugin);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].culprit.as_ref().unwrap().plugin.as_ref(), "deny");
        let r: Vec<Outcome> = drain(&by_reason_vip).iter().map(|c| c.outcome).collect();
        assert_eq!(
            r,
            vec![Outcome::Dropped(DropReason::TtlExpired), Outcome::Passed]
        );
    }

    #[test]
    fn a_fifth_capture_is_refused_and_a_full_queue_counts_lost_packets() {
        let captures = Arc::new(Captures::new(1));
        let sessions: Vec<_> = (0..MAX_CAPTURES)
            .map(|_| captures.start(CaptureFilter::default()).unwrap())
            .collect();
        assert!(captures.start(CaptureFilter::default()).is_err());
        drop(sessions);
        let s = captures.start(CaptureFilter::default()).unwrap();
        let mut w = WorkerTaps::new(captures.clone());
        w.refresh();
        for _ in 0..QUEUE_PER_WORKER + 7 {
            w.offer(0, offer(Outcome::Dropped(DropReason::NoRoute), None, None));
        }
        assert_eq!(s.lost(), 7);
        assert_eq!(drain(&s).len(), QUEUE_PER_WORKER);
        let deadline = Instant::now() + Duration::from_millis(1);
        assert!(s.next_until(deadline).is_none(), "nothing more");
    }

    #[test]
    fn long_packets_are_cut_to_the_snap_length_with_their_length_kept() {
        let captures = Arc::new(Captures::new(1));
        let s = captures.start(CaptureFilter::default()).unwrap();
        let mut w = WorkerTaps::new(captures.clone());
        w.refresh();
        let big = vec![7u8; SNAPLEN + 100];
        w.offer(
            0,
            Offer {
                bytes: &big,
                original_len: big.len(),
                ..offer(Outcome::Dropped(DropReason::TooBig), None, None)
            },
        );
        let c = drain(&s).remove(0);
        assert_eq!((c.bytes.len(), c.original_len), (SNAPLEN, SNAPLEN + 100));
    }
}
