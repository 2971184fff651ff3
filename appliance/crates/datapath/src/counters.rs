//! The data path's counters: receive/transmit totals, drops by reason, per VIP the packets
//! and bytes forwarded and the drops attributed to it, and per peer the packets and bytes
//! received from it, its drops and when it was last heard from.
//!
//! Every worker writes only its own cache-line-padded cells (a relaxed load and store, no
//! read-modify-write contention); readers sum the cells into a plain [`Snapshot`]. VIP
//! counters are kept by VIP address while the VIP is configured, so they survive
//! configuration changes and restarts of the workers; a VIP removed from the configuration
//! loses them (added again, it counts from zero: a counter reset to rate readers). This
//! module never decides what to count; the workers do. Drops counted before any worker sees
//! the frame (the XDP pre-filter's) come from a [`DropSource`] read at every snapshot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;

use tungate_packet::DropReason;

/// One counter written by a single worker.
#[derive(Default)]
pub(crate) struct Cell(AtomicU64);

impl Cell {
    /// Adds `n` (only the owning worker calls this, so a load and a store suffice).
    #[inline]
    pub(crate) fn add(&self, n: u64) {
        self.0.store(
            self.0.load(Ordering::Relaxed).wrapping_add(n),
            Ordering::Relaxed,
        );
    }

    /// The current value.
    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value alone on its cache line(s), so two workers never share one.
#[derive(Default)]
#[repr(align(128))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

/// One worker's global cells.
#[derive(Default)]
pub(crate) struct GlobalCells {
    /// Frames received.
    pub(crate) rx_packets: Cell,
    /// Bytes received (frames as read, without the offload header).
    pub(crate) rx_bytes: Cell,
    /// Packets transmitted.
    pub(crate) tx_packets: Cell,
    /// Bytes transmitted (the inner packets).
    pub(crate) tx_bytes: Cell,
    /// Of the transmitted packets, those sent by the raw-socket fallback.
    pub(crate) tx_fallback_packets: Cell,
    /// On the AF_XDP path: received packets that came through the TPACKET rings beside the
    /// AF_XDP socket (frames the XDP program passes: larger than a UMEM frame, …).
    pub(crate) rx_packet_path_packets: Cell,
    /// On the AF_XDP path: transmitted packets that left through a TPACKET ring (a frame
    /// of the TPACKET path, or an egress AF_XDP cannot open).
    pub(crate) tx_packet_path_packets: Cell,
    /// ICMP fragmentation-needed messages sent (see [`super::frag_needed`]).
    pub(crate) icmp_sent: Cell,
    /// Fragmentation-needed messages not sent: over the rate limits.
    pub(crate) icmp_rate_limited: Cell,
    /// Fragmentation-needed messages not sent: no ICMP socket, or the send failed.
    pub(crate) icmp_failed: Cell,
    /// Drops by reason (all drops, whether or not attributed to a VIP).
    pub(crate) drops: [Cell; DropReason::COUNT],
}

impl GlobalCells {
    /// Counts one drop.
    #[inline]
    pub(crate) fn drop(&self, reason: DropReason) {
        self.drops[reason.index()].add(1);
    }
}

/// One worker's cells for one VIP.
#[derive(Default)]
pub(crate) struct VipCells {
    /// Packets forwarded.
    pub(crate) packets: Cell,
    /// Bytes forwarded (inner packets).
    pub(crate) bytes: Cell,
    /// Drops of this VIP's packets by reason.
    pub(crate) drops: [Cell; DropReason::COUNT],
}

/// One worker's cells for one peer (real server).
#[derive(Default)]
pub(crate) struct PeerCells {
    /// Packets received from it (the outer source, or its tunnel device, named it).
    pub(crate) packets: Cell,
    /// Bytes received from it (frames as read).
    pub(crate) bytes: Cell,
    /// When a packet from it was last received: milliseconds since the Unix epoch, 0 never.
    pub(crate) last_heard_ms: Cell,
    /// Drops of its packets by reason.
    pub(crate) drops: [Cell; DropReason::COUNT],
}

impl PeerCells {
    /// Counts one packet of `bytes` received at `now_ms` (a store of the time, no max: only
    /// the owning worker writes, and its clock reading only grows within a batch).
    #[inline]
    pub(crate) fn heard(&self, bytes: u64, now_ms: u64) {
        self.packets.add(1);
        self.bytes.add(bytes);
        self.last_heard_ms.0.store(now_ms, Ordering::Relaxed);
    }
}

/// Drop counts by reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DropCounts(pub [u64; DropReason::COUNT]);

impl DropCounts {
    /// The count for one reason.
    pub fn get(&self, reason: DropReason) -> u64 {
        self.0[reason.index()]
    }

    /// All drops.
    pub fn total(&self) -> u64 {
        self.0.iter().sum()
    }

    /// The non-zero counts with their reason names.
    pub fn nonzero(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DropReason::ALL
            .into_iter()
            .map(|r| (r.as_str(), self.get(r)))
            .filter(|(_, n)| *n != 0)
    }

    fn add(&mut self, other: &DropCounts) {
        for (sum, n) in self.0.iter_mut().zip(other.0) {
            *sum += n;
        }
    }

    fn add_cells(&mut self, cells: &[Cell; DropReason::COUNT]) {
        for (sum, cell) in self.0.iter_mut().zip(cells) {
            *sum += cell.get();
        }
    }
}

impl Serialize for DropCounts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(DropReason::ALL.map(|r| (r.as_str(), self.get(r))))
    }
}

/// One VIP's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct VipSnapshot {
    /// The VIP.
    pub vip: IpAddr,
    /// Packets forwarded.
    pub packets: u64,
    /// Bytes forwarded.
    pub bytes: u64,
    /// Drops of this VIP's packets by reason.
    pub drops: DropCounts,
}

/// One peer's totals.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PeerSnapshot {
    /// The peer's name.
    pub name: String,
    /// Its address (RIP).
    pub address: IpAddr,
    /// Packets received from it.
    pub packets: u64,
    /// Bytes received from it.
    pub bytes: u64,
    /// Drops of its packets by reason.
    pub drops: DropCounts,
    /// When it was last heard from, in milliseconds since the Unix epoch (None: never).
    pub last_heard_ms: Option<u64>,
}

/// A consistent-enough read of every counter (each value is exact; values read a few
/// nanoseconds apart may disagree by the packets in flight).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Snapshot {
    /// Frames received.
    pub rx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets transmitted by the raw-socket fallback (neighbour not yet resolved).
    pub tx_fallback_packets: u64,
    /// On the AF_XDP path: packets received through the TPACKET rings beside it (frames
    /// the XDP program passes to the kernel, e.g. larger than a UMEM frame).
    pub rx_packet_path_packets: u64,
    /// On the AF_XDP path: packets transmitted through a TPACKET ring (what AF_XDP cannot
    /// carry).
    pub tx_packet_path_packets: u64,
    /// ICMP fragmentation-needed messages sent.
    pub icmp_sent: u64,
    /// Fragmentation-needed messages over the rate limits (not sent).
    pub icmp_rate_limited: u64,
    /// Fragmentation-needed messages that could not be sent.
    pub icmp_failed: u64,
    /// All drops by reason.
    pub drops: DropCounts,
    /// Per VIP, ordered by address.
    pub vips: Vec<VipSnapshot>,
    /// Per configured peer, ordered by name.
    pub peers: Vec<PeerSnapshot>,
}

impl Snapshot {
    /// The counters of one VIP, if it is configured.
    pub fn vip(&self, vip: impl Into<IpAddr>) -> Option<&VipSnapshot> {
        let vip = vip.into();
        self.vips.iter().find(|v| v.vip == vip)
    }

    /// The counters of one configured peer.
    pub fn peer(&self, name: &str) -> Option<&PeerSnapshot> {
        self.peers.iter().find(|p| p.name == name)
    }

    /// A short human-readable rendering (what `tungate run` prints).
    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "rx {} packets {} bytes; tx {} packets {} bytes ({} by fallback); dropped {}",
            self.rx_packets,
            self.rx_bytes,
            self.tx_packets,
            self.tx_bytes,
            self.tx_fallback_packets,
            self.drops.total()
        );
        for (name, n) in self.drops.nonzero() {
            let _ = writeln!(out, "  drop {name}: {n}");
        }
        if self.icmp_sent + self.icmp_rate_limited + self.icmp_failed > 0 {
            let _ = writeln!(
                out,
                "  icmp fragmentation-needed: {} sent, {} rate-limited, {} failed",
                self.icmp_sent, self.icmp_rate_limited, self.icmp_failed
            );
        }
        for v in &self.vips {
            let _ = write!(
                out,
                "  vip {}: {} packets {} bytes",
                v.vip, v.packets, v.bytes
            );
            for (name, n) in v.drops.nonzero() {
                let _ = write!(out, ", {name} {n}");
            }
            out.push('\n');
        }
        out
    }
}

/// One VIP's cells, one per worker, plus what earlier worker sets counted.
pub(crate) struct VipCounters {
    vip: IpAddr,
    workers: Box<[Padded<VipCells>]>,
    base: VipSnapshot,
}

impl VipCounters {
    fn new(vip: IpAddr, workers: usize, base: VipSnapshot) -> Self {
        Self {
            vip,
            workers: (0..workers).map(|_| Padded::default()).collect(),
            base,
        }
    }

    /// Worker `index`'s cells (an index past the worker count is a caller bug).
    #[inline]
    pub(crate) fn worker(&self, index: usize) -> &VipCells {
        &self.workers[index]
    }

    fn snapshot(&self) -> VipSnapshot {
        let mut s = self.base;
        s.vip = self.vip;
        for w in self.workers.iter() {
            s.packets += w.packets.get();
            s.bytes += w.bytes.get();
            s.drops.add_cells(&w.drops);
        }
        s
    }
}

/// One peer's cells, one per worker, plus what earlier worker sets counted.
pub(crate) struct PeerCounters {
    workers: Box<[Padded<PeerCells>]>,
    base: PeerSnapshot,
}

impl PeerCounters {
    fn new(workers: usize, base: PeerSnapshot) -> Self {
        Self {
            workers: (0..workers).map(|_| Padded::default()).collect(),
            base,
        }
    }

    /// Worker `index`'s cells (an index past the worker count is a caller bug).
    #[inline]
    pub(crate) fn worker(&self, index: usize) -> &PeerCells {
        &self.workers[index]
    }

    fn snapshot(&self) -> PeerSnapshot {
        let mut s = self.base.clone();
        for w in self.workers.iter() {
            s.packets += w.packets.get();
            s.bytes += w.bytes.get();
            s.drops.add_cells(&w.drops);
            let heard = w.last_heard_ms.get();
            if heard != 0 {
                s.last_heard_ms = s.last_heard_ms.max(Some(heard));
            }
        }
        s
    }
}

/// Reads drops counted outside the workers, before them (the XDP pre-filter's per-reason
/// counters): cumulative since the source began, `None` when they cannot be read now.
pub type DropSource = Box<dyn Fn() -> Option<DropCounts> + Send + Sync>;

/// All counters of the data path, and the capture taps beside them (they are shared and
/// outlive worker restarts the same way).
pub struct Counters {
    inner: Mutex<Generation>,
    captures: Arc<crate::capture::Captures>,
}

struct Generation {
    global: Arc<[Padded<GlobalCells>]>,
    global_base: Snapshot,
    vips: BTreeMap<IpAddr, Arc<VipCounters>>,
    /// The configured peers' counters, by name (a removed peer's go with it).
    peers: BTreeMap<String, Arc<PeerCounters>>,
    source: Option<DropSource>,
}

impl Counters {
    /// Counters for `workers` workers, all zero.
    pub fn new(workers: usize) -> Self {
        Self {
            inner: Mutex::new(Generation {
                global: (0..workers).map(|_| Padded::default()).collect(),
                global_base: Snapshot::default(),
                vips: BTreeMap::new(),
                peers: BTreeMap::new(),
                source: None,
            }),
            captures: Arc::new(crate::capture::Captures::new(workers)),
        }
    }

    /// Where captures of dropped packets start ([`crate::capture`]).
    pub fn captures(&self) -> Arc<crate::capture::Captures> {
        self.captures.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Generation> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The global cells of every worker (worker `i` writes element `i`).
    pub(crate) fn global_cells(&self) -> Arc<[Padded<GlobalCells>]> {
        self.lock().global.clone()
    }

    /// The counters of `vip`, created on first use and kept until [`Self::retain_vips`]
    /// drops them.
    pub(crate) fn vip(&self, vip: IpAddr) -> Arc<VipCounters> {
        let mut g = self.lock();
        let workers = g.global.len();
        g.vips
            .entry(vip)
            .or_insert_with(|| {
                Arc::new(VipCounters::new(
                    vip,
                    workers,
                    VipSnapshot {
                        vip,
                        packets: 0,
                        bytes: 0,
                        drops: DropCounts::default(),
                    },
                ))
            })
            .clone()
    }

    /// Forgets the counters of every VIP for which `keep` is false (VIPs no longer
    /// configured), so snapshots, `/metrics` and the status list only configured VIPs. A
    /// worker still on an older table generation may count a few more packets into the
    /// forgotten cells: they are no longer read (the global totals still have them).
    pub(crate) fn retain_vips(&self, keep: impl Fn(IpAddr) -> bool) {
        self.lock().vips.retain(|vip, _| keep(*vip));
    }

    /// The counters of the configured peers `peers` (name, address), in that order: kept by
    /// name across calls (a peer whose address changed keeps its counts); those of peers
    /// no longer listed are dropped, so only configured peers are ever reported.
    pub(crate) fn peers(&self, peers: &[(&str, IpAddr)]) -> Vec<Arc<PeerCounters>> {
        let mut g = self.lock();
        let workers = g.global.len();
        let mut kept = BTreeMap::new();
        let found = peers
            .iter()
            .map(|&(name, address)| {
                let counters = match g.peers.remove(name) {
                    Some(c) if c.base.address == address => c,
                    old => {
                        let base = old.map_or_else(
                            || PeerSnapshot {
                                name: name.to_owned(),
                                address,
                                packets: 0,
                                bytes: 0,
                                drops: DropCounts::default(),
                                last_heard_ms: None,
                            },
                            |c| PeerSnapshot {
                                address,
                                ..c.snapshot()
                            },
                        );
                        Arc::new(PeerCounters::new(workers, base))
                    }
                };
                kept.insert(name.to_owned(), counters.clone());
                counters
            })
            .collect();
        g.peers = kept;
        found
    }

    /// Moves every count into the base and makes fresh cells for `workers` workers. Call it
    /// only while no worker runs (between a stop and a start); cells handed out before are
    /// no longer read.
    pub(crate) fn resize(&self, workers: usize) {
        self.captures.resize(workers);
        let mut g = self.lock();
        let total = Self::sum(&g);
        g.global_base = Snapshot {
            vips: Vec::new(),
            peers: Vec::new(),
            ..total
        };
        g.global = (0..workers).map(|_| Padded::default()).collect();
        for c in g.vips.values_mut() {
            *c = Arc::new(VipCounters::new(c.vip, workers, c.snapshot()));
        }
        for c in g.peers.values_mut() {
            *c = Arc::new(PeerCounters::new(workers, c.snapshot()));
        }
    }

    /// Adds `source`'s drops to every snapshot from now on (`None`: no source). The drops
    /// of the source it replaces are kept (read one last time), so totals never go back.
    /// Its drops count as received too, except `rx_overflow` (as on the TPACKET path, where
    /// the kernel's ring overflows are drops the workers never received).
    pub fn set_drop_source(&self, source: Option<DropSource>) {
        let mut g = self.lock();
        if let Some(old) = g.source.take()
            && let Some(drops) = old()
        {
            add_source_drops(&mut g.global_base, &drops);
        }
        g.source = source;
    }

    /// Reads every counter.
    pub fn snapshot(&self) -> Snapshot {
        let g = self.lock();
        let mut s = Self::sum(&g);
        if let Some(drops) = g.source.as_ref().and_then(|source| source()) {
            add_source_drops(&mut s, &drops);
        }
        s
    }

    /// The workers' cells and the base (not the drop source).
    fn sum(g: &Generation) -> Snapshot {
        let mut s = g.global_base.clone();
        for w in g.global.iter() {
            s.rx_packets += w.rx_packets.get();
            s.rx_bytes += w.rx_bytes.get();
            s.tx_packets += w.tx_packets.get();
            s.tx_bytes += w.tx_bytes.get();
            s.tx_fallback_packets += w.tx_fallback_packets.get();
            s.rx_packet_path_packets += w.rx_packet_path_packets.get();
            s.tx_packet_path_packets += w.tx_packet_path_packets.get();
            s.icmp_sent += w.icmp_sent.get();
            s.icmp_rate_limited += w.icmp_rate_limited.get();
            s.icmp_failed += w.icmp_failed.get();
            s.drops.add_cells(&w.drops);
        }
        s.vips = g.vips.values().map(|v| v.snapshot()).collect();
        s.peers = g.peers.values().map(|p| p.snapshot()).collect();
        s
    }
}

/// Adds a [`DropSource`]'s reading: drops by reason, and received except `rx_overflow`.
fn add_source_drops(s: &mut Snapshot, drops: &DropCounts) {
    s.drops.add(drops);
    s.rx_packets += drops.total() - drops.get(DropReason::RxOverflow);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn workers_sum_and_vips_survive_a_resize() {
        let c = Counters::new(2);
        let vip: IpAddr = Ipv4Addr::new(192, 0, 2, 10).into();
        let cells = c.global_cells();
        cells[0].rx_packets.add(3);
        cells[1].rx_packets.add(4);
        cells[1].drop(DropReason::TtlExpired);
        let v = c.vip(vip);
        v.worker(0).packets.add(5);
        v.worker(1).bytes.add(700);
        v.worker(1).drops[DropReason::Plugin.index()].add(2);
        assert!(Arc::ptr_eq(&v, &c.vip(vip)));
        let s = c.snapshot();
        assert_eq!(s.rx_packets, 7);
        assert_eq!(s.drops.get(DropReason::TtlExpired), 1);
        assert_eq!(s.drops.total(), 1);
        let vs = s.vip(vip).unwrap();
        assert_eq!((vs.packets, vs.bytes), (5, 700));
        assert_eq!(vs.drops.get(DropReason::Plugin), 2);

        c.resize(3);
        let v2 = c.vip(vip);
        assert!(!Arc::ptr_eq(&v, &v2));
        v2.worker(2).packets.add(1);
        c.global_cells()[2].rx_packets.add(1);
        let s = c.snapshot();
        assert_eq!(s.rx_packets, 8);
        assert_eq!(s.vip(vip).unwrap().packets, 6);
        assert_eq!(s.vip(vip).unwrap().drops.get(DropReason::Plugin), 2);
        let text = s.render();
        assert!(text.contains("drop ttl_expired: 1"), "{text}");
        assert!(
            text.contains("vip 192.0.2.10: 6 packets 700 bytes, plugin 2"),
            "{text}"
        );
        let json = serde_json::to_value(&s).unwrap();
        assert_eq!(json["drops"]["ttl_expired"], 1);
        assert_eq!(json["vips"][0]["vip"], "192.0.2.10");
    }

    #[test]
    fn removed_vips_leave_the_snapshot_and_count_from_zero_when_added_again() {
        let c = Counters::new(1);
        let kept: IpAddr = Ipv4Addr::new(192, 0, 2, 10).into();
        let removed: IpAddr = Ipv4Addr::new(192, 0, 2, 11).into();
        c.vip(kept).worker(0).packets.add(3);
        c.vip(removed).worker(0).packets.add(4);
        c.retain_vips(|vip| vip == kept);
        let s = c.snapshot();
        assert_eq!(s.vips.len(), 1);
        assert_eq!(s.vip(kept).unwrap().packets, 3);
        assert!(s.vip(removed).is_none());
        assert_eq!(c.vip(removed).worker(0).packets.get(), 0);
    }

    #[test]
    fn peers_count_by_name_survive_a_resize_and_leave_when_removed() {
        let c = Counters::new(2);
        let (a, b): (IpAddr, IpAddr) = (
            Ipv4Addr::new(10, 0, 1, 2).into(),
            Ipv4Addr::new(10, 0, 1, 3).into(),
        );
        let cells = c.peers(&[("rs1", a), ("rs2", b)]);
        cells[0].worker(0).heard(100, 5_000);
        cells[0].worker(1).heard(50, 7_000);
        cells[0].worker(1).drops[DropReason::VipNotServed.index()].add(1);
        let s = c.snapshot();
        let rs1 = s.peer("rs1").unwrap();
        assert_eq!(
            (rs1.packets, rs1.bytes, rs1.last_heard_ms),
            (2, 150, Some(7_000))
        );
        assert_eq!(rs1.drops.get(DropReason::VipNotServed), 1);
        assert_eq!(s.peer("rs2").unwrap().last_heard_ms, None, "never heard");
        c.resize(1);
        // Same name, new address: the counts stay.
        let moved = c.peers(&[("rs1", b)]);
        moved[0].worker(0).heard(10, 9_000);
        let s = c.snapshot();
        let rs1 = s.peer("rs1").unwrap();
        assert_eq!(
            (rs1.address, rs1.packets, rs1.last_heard_ms),
            (b, 3, Some(9_000))
        );
        assert!(s.peer("rs2").is_none(), "a removed peer is not reported");
    }

    #[test]
    fn a_drop_source_adds_its_drops_and_a_replaced_one_keeps_its_count() {
        let c = Counters::new(1);
        c.global_cells()[0].rx_packets.add(10);
        c.global_cells()[0].drop(DropReason::UnknownPeer);
        let reading = |unknown_peer: u64, overflow: u64| {
            let mut d = DropCounts::default();
            d.0[DropReason::UnknownPeer.index()] = unknown_peer;
            d.0[DropReason::RxOverflow.index()] = overflow;
            d
        };
        let live = Arc::new(AtomicU64::new(5));
        let l = live.clone();
        c.set_drop_source(Some(Box::new(move || {
            Some(reading(l.load(Ordering::Relaxed), 2))
        })));
        let s = c.snapshot();
        assert_eq!(s.drops.get(DropReason::UnknownPeer), 6);
        assert_eq!(s.drops.get(DropReason::RxOverflow), 2);
        assert_eq!(
            s.rx_packets, 15,
            "received: the workers' and the source's but overflows"
        );
        live.store(7, Ordering::Relaxed);
        assert_eq!(c.snapshot().drops.get(DropReason::UnknownPeer), 8);

        // A new source (the program reloaded) starts from zero; the old count stays.
        c.set_drop_source(Some(Box::new(move || Some(reading(1, 0)))));
        let s = c.snapshot();
        assert_eq!(s.drops.get(DropReason::UnknownPeer), 9);
        assert_eq!(s.drops.get(DropReason::RxOverflow), 2);
        // An unreadable source adds nothing; removing it keeps what it had counted.
        c.set_drop_source(Some(Box::new(|| None)));
        c.set_drop_source(None);
        let s = c.snapshot();
        assert_eq!(s.drops.get(DropReason::UnknownPeer), 9);
        assert_eq!(s.rx_packets, 18);

        // A resize (workers restarted) neither loses nor doubles the source's drops.
        c.set_drop_source(Some(Box::new(move || Some(reading(4, 0)))));
        c.resize(2);
        let s = c.snapshot();
        assert_eq!(s.drops.get(DropReason::UnknownPeer), 13);
        assert_eq!(s.rx_packets, 22);
    }

    #[test]
    fn padded_cells_do_not_share_cache_lines() {
        assert!(std::mem::align_of::<Padded<GlobalCells>>() >= 128);
        let cells: Vec<Padded<VipCells>> = (0..2).map(|_| Padded::default()).collect();
        let a = &cells[0].packets as *const Cell as usize;
        let b = &cells[1].packets as *const Cell as usize;
        assert!(b - a >= 128);
    }
}
