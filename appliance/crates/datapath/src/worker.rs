//! One data-path worker: a thread that runs the packet loop over its own packet I/O
//! ([`PacketIo`]; today the AF_PACKET rings of [`crate::tpacket`], whose receive sockets
//! PACKET_FANOUT spreads the packets over), its route cache and its filters.
//!
//! Per batch (up to [`BATCH`] frames taken from the receive sources, which the kernel fills
//! from softirq context) it checks and decapsulates every frame ([`tungate_packet`]), judges
//! the accepted packets VIP by VIP ([`crate::batch`]), decrements each survivor's TTL and
//! hands it to its egress ([`crate::egress`]: the transmit ring of a resolved next hop's
//! interface, or the raw fallback); then one kick sends the whole batch and every receive
//! frame goes back. No system call per packet in the common case.
//!
//! A packet too large for a ring frame (a GSO super-packet) ends the batch early: the batch
//! before it is finished first (so the order within a flow holds), then it is read whole
//! and sent on its own.
//!
//! While a capture runs ([`crate::capture`]; the worker looks once per batch), each drop
//! site also offers the frame as received to it, and forwarded packets when one asks.
//!
//! The worker owns the loop, the checks' verdicts and all counting. It does no netlink I/O,
//! takes no lock per packet, allocates nothing per packet, and never touches sockets or
//! ring memory except through its [`PacketIo`] and [`RawFallback`]; it only reads snapshots
//! (tables, next hops) and writes its own counter cells.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arc_swap::{ArcSwap, Cache};
use tungate_packet::vnet::{self, VnetHeader};
use tungate_packet::{DropReason, Inner, LinkLayer, classify, ipv4, ipv6};

use crate::StartError;
use crate::afpacket::RxSocket;
use crate::batch::{self, Accepted, Scratch};
use crate::capture::{Captures, Framing, Offer, Outcome, WorkerTaps};
use crate::counters::{GlobalCells, Padded};
use crate::egress::{self, Choice, RawFallback};
use crate::filter::{Culprit, FilterSlots, WorkerFilters};
use crate::idle::{Idle, Next};
use crate::io::{FrameId, PacketIo, Received, Span, Taken, Transmit, TxHeader, TxTag};
use crate::resolver::{NextHops, ResolverLink};
use crate::route_cache::{Lookup, RouteCache};
use crate::tables::{PeerId, Tables, VipId};
use crate::tpacket::TpacketIo;
use crate::xdp_io::XdpIo;
use crate::xsk::{Umem, XskSocket};

/// Most frames taken from the receive sources per batch.
const BATCH: usize = 256;
/// Frames taken from one source in a row before the next one's turn.
const RUN: usize = 32;
/// Longest sleep before the worker looks at `stop` and its snapshots again.
const SLEEP_TIMEOUT: Duration = Duration::from_millis(100);
/// How often the receive side's kernel drop counts are read.
const STATS_INTERVAL: Duration = Duration::from_millis(500);
/// Bytes of the Ethernet header written in front of a transmitted packet.
const ETHERNET: usize = 14;

/// Where a receive socket's frames come from.
#[derive(Debug, Clone)]
pub(crate) enum Source {
    /// `userspace` decap: the ingress interface, frames are Ethernet + outer IPIP.
    Ingress,
    /// `kernel` decap: the tunnel device of one peer, frames are inner packets.
    Tunnel {
        /// The device name, looked up in each table generation.
        device: String,
    },
}

/// What a receive source's frames are under the current tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SourceLink {
    /// Ethernet + outer IPIP from the ingress interface.
    Ingress,
    /// Inner packets from this peer's tunnel device.
    Peer(PeerId),
    /// A tunnel device no peer of the current tables owns (its frames are dropped).
    UnknownTunnel,
}

/// How a sent packet left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    /// Its egress interface's transmit side.
    Egress,
    /// The raw fallback socket.
    Fallback,
}

/// Everything a worker needs, handed over at start.
pub(crate) struct WorkerSetup {
    /// The worker's index (its counter cells and filter slot).
    pub(crate) index: usize,
    /// Its receive sockets (one per source), with where they read from.
    pub(crate) sockets: Vec<(RxSocket, Source)>,
    /// The runtime tables.
    pub(crate) tables: Arc<ArcSwap<Tables>>,
    /// Its end of the next-hop resolver.
    pub(crate) resolver: ResolverLink,
    /// Filter sets from the control side.
    pub(crate) filters: Arc<FilterSlots>,
    /// Every worker's global counter cells.
    pub(crate) counters: Arc<[Padded<GlobalCells>]>,
    /// The capture taps the worker offers packets to while a capture runs.
    pub(crate) captures: Arc<Captures>,
    /// Set to stop.
    pub(crate) stop: Arc<AtomicBool>,
    /// On the AF_XDP path: the worker's UMEM and the AF_XDP socket on its ingress queue
    /// (its receive source 0, before the TPACKET `sockets`).
    pub(crate) xsk: Option<(Umem, XskSocket)>,
}

/// A worker could not start.
#[derive(Debug, thiserror::Error)]
#[error("worker {index}: cannot {what}: {source}")]
pub struct WorkerError {
    index: usize,
    what: &'static str,
    source: std::io::Error,
}

/// Runs a worker until `stop` is set. The outcome of its set-up (the fallback socket) goes
/// to `ready` before it starts receiving.
pub(crate) fn run(setup: WorkerSetup, ready: crossbeam_channel::Sender<Result<(), StartError>>) {
    let index = setup.index;
    match RawFallback::open() {
        Ok(fallback) => {
            let (sockets, mut sources): (Vec<_>, Vec<_>) = setup.sockets.into_iter().unzip();
            let shared = Shared {
                index,
                tables: setup.tables,
                resolver: setup.resolver,
                filters: setup.filters,
                counters: setup.counters,
                captures: setup.captures,
                stop: setup.stop,
            };
            match setup.xsk {
                Some((umem, socket)) => {
                    sources.insert(0, Source::Ingress);
                    let io = XdpIo::new(index, umem, socket, sockets, BATCH);
                    let mut w = Worker::new(shared, sources, io, fallback);
                    let _ = ready.send(Ok(()));
                    w.main_loop();
                }
                None => {
                    let io = TpacketIo::new(index, sockets, BATCH);
                    let mut w = Worker::new(shared, sources, io, fallback);
                    let _ = ready.send(Ok(()));
                    w.main_loop();
                }
            }
        }
        Err(e) => {
            let _ = ready.send(Err(StartError::Worker(WorkerError {
                index,
                what: "open the raw fallback socket",
                source: e.source,
            })));
        }
    }
}

/// What a worker shares with the rest of the data path.
struct Shared {
    index: usize,
    tables: Arc<ArcSwap<Tables>>,
    resolver: ResolverLink,
    filters: Arc<FilterSlots>,
    counters: Arc<[Padded<GlobalCells>]>,
    captures: Arc<Captures>,
    stop: Arc<AtomicBool>,
}

/// Where one worker counts: its global cells and the current tables' VIP counters.
struct Tally<'a> {
    worker: usize,
    cells: &'a GlobalCells,
    tables: &'a Tables,
}

impl Tally<'_> {
    /// Counts a dropped packet, also for its VIP when it has one.
    fn drop(&self, reason: DropReason, vip: Option<VipId>) {
        self.cells.drop(reason);
        if let Some(vip) = vip
            && let Some(v) = self.tables.vips.get(vip as usize)
        {
            v.counters.worker(self.worker).drops[reason.index()].add(1);
        }
    }

    /// Counts a dropped packet of `peer` (and its VIP, when it has one).
    fn drop_from(&self, reason: DropReason, vip: Option<VipId>, peer: PeerId) {
        self.drop(reason, vip);
        if let Some(p) = self.tables.peers.get(usize::from(peer)) {
            p.counters.worker(self.worker).drops[reason.index()].add(1);
        }
    }

    /// Counts a packet received from `peer` at `now_ms` (ms since the Unix epoch).
    fn heard(&self, peer: PeerId, bytes: u64, now_ms: u64) {
        if let Some(p) = self.tables.peers.get(usize::from(peer)) {
            p.counters.worker(self.worker).heard(bytes, now_ms);
        }
    }

    /// Counts a packet the kernel took.
    fn sent(&self, vip: VipId, len: u32, via: Via) {
        self.cells.tx_packets.add(1);
        self.cells.tx_bytes.add(u64::from(len));
        if via == Via::Fallback {
            self.cells.tx_fallback_packets.add(1);
        }
        if let Some(v) = self.tables.vips.get(vip as usize) {
            let c = v.counters.worker(self.worker);
            c.packets.add(1);
            c.bytes.add(u64::from(len));
        }
    }
}

struct Worker<Io: PacketIo> {
    index: usize,
    io: Io,
    /// Each receive source's origin, and what its frames are under the current tables.
    sources: Vec<Source>,
    links: Vec<SourceLink>,
    fallback: RawFallback,
    tables: Cache<Arc<ArcSwap<Tables>>, Arc<Tables>>,
    current: Arc<Tables>,
    resolver: ResolverLink,
    hops: Cache<Arc<ArcSwap<NextHops>>, Arc<NextHops>>,
    routes: RouteCache,
    /// Checked peers whose expected link-layer source this worker already asked for.
    asked_sources: HashSet<IpAddr>,
    filter_slots: Arc<FilterSlots>,
    filter_generation: u64,
    filters: WorkerFilters,
    counters: Arc<[Padded<GlobalCells>]>,
    /// The running captures, as of this batch.
    taps: WorkerTaps,
    stop: Arc<AtomicBool>,
    // Reused per batch (no per-packet allocation).
    /// Receive frames of the batch, given back after it.
    held: Vec<FrameId>,
    accepted: Vec<Accepted>,
    scratch: Scratch,
    next_source: usize,
    last_stats: Instant,
    /// The time of the batch being gathered, in ms since the Unix epoch (read once per
    /// batch: a peer's last-heard time is exact to a batch).
    now_ms: u64,
}

impl<Io: PacketIo> Worker<Io> {
    fn new(shared: Shared, sources: Vec<Source>, io: Io, fallback: RawFallback) -> Worker<Io> {
        let mut tables = Cache::new(shared.tables);
        let current = tables.load().clone();
        let hops = Cache::new(shared.resolver.hops.clone());
        let mut w = Worker {
            index: shared.index,
            io,
            links: vec![SourceLink::UnknownTunnel; sources.len()],
            sources,
            fallback,
            tables,
            current,
            resolver: shared.resolver,
            hops,
            routes: RouteCache::new(),
            asked_sources: HashSet::new(),
            filter_slots: shared.filters,
            filter_generation: 0,
            filters: WorkerFilters::default(),
            counters: shared.counters,
            taps: WorkerTaps::new(shared.captures),
            stop: shared.stop,
            held: Vec::with_capacity(BATCH),
            accepted: Vec::with_capacity(BATCH),
            scratch: Scratch::with_capacity(BATCH),
            next_source: 0,
            last_stats: Instant::now(),
            now_ms: 0,
        };
        w.map_sources();
        w
    }

    fn cells(&self) -> &GlobalCells {
        &self.counters[self.index]
    }

    fn tally(&self) -> Tally<'_> {
        Tally {
            worker: self.index,
            cells: &self.counters[self.index],
            tables: &self.current,
        }
    }

    fn drop_packet(&self, reason: DropReason, vip: Option<VipId>) {
        self.tally().drop(reason, vip);
    }

    /// Counts a dropped received frame (offload header first) and offers it to the running
    /// captures.
    fn drop_received(
        &self,
        reason: DropReason,
        vip: Option<VipId>,
        source: usize,
        received: Received,
    ) {
        self.drop_packet(reason, vip);
        self.offer_received(reason, vip, source, received);
    }

    /// Offers a dropped received frame (offload header first) to the running captures.
    fn offer_received(
        &self,
        reason: DropReason,
        vip: Option<VipId>,
        source: usize,
        received: Received,
    ) {
        if self.taps.on() {
            let bytes = self.io.bytes(received.span);
            let framing = match self.sources.get(source) {
                Some(Source::Ingress) => Framing::Ethernet,
                _ => Framing::Ipv4,
            };
            let header = vnet::LEN.min(bytes.len());
            self.taps.offer(
                self.index,
                Offer {
                    outcome: Outcome::Dropped(reason),
                    framing,
                    bytes: &bytes[header..],
                    original_len: received.wire_len.saturating_sub(header),
                    vip: vip.and_then(|v| self.current.vips.get(v as usize).map(|v| v.address)),
                    culprit: None,
                },
            );
        }
    }

    /// Counts an accepted packet that cannot go on, for its VIP and its peer, and offers it
    /// to the running captures.
    fn drop_accepted(&self, reason: DropReason, a: &Accepted) {
        self.tally().drop_from(reason, Some(a.vip), a.peer);
        if self.taps.on() {
            offer_accepted(
                &self.taps,
                self.index,
                &self.io,
                &self.current,
                a,
                Outcome::Dropped(reason),
                None,
            );
        }
    }

    fn map_sources(&mut self) {
        for (link, source) in self.links.iter_mut().zip(&self.sources) {
            *link = match source {
                Source::Ingress => SourceLink::Ingress,
                Source::Tunnel { device } => match self.current.peer_by_device(device) {
                    Some(peer) => SourceLink::Peer(peer),
                    None => SourceLink::UnknownTunnel,
                },
            };
        }
    }

    fn main_loop(&mut self) {
        let mut idle = Idle::default();
        while !self.stop.load(Ordering::Relaxed) {
            self.refresh_snapshots();
            let large = self.gather();
            if self.held.is_empty() && large.is_none() {
                match idle.empty(Instant::now()) {
                    Next::Sleep => self.io.wait(SLEEP_TIMEOUT),
                    Next::Spin => std::hint::spin_loop(),
                }
            } else {
                idle.work(Instant::now());
                self.finish_batch();
                if let Some((source, frame)) = large {
                    self.receive_large(source, frame);
                }
                self.count_packet_path();
            }
            if self.last_stats.elapsed() >= STATS_INTERVAL {
                self.read_receive_drops();
            }
        }
    }

    /// Between batches: new tables, next hops, filters and resolver answers.
    fn refresh_snapshots(&mut self) {
        let tables = self.tables.load();
        if !Arc::ptr_eq(tables, &self.current) {
            self.current = tables.clone();
            self.map_sources();
        }
        self.taps.refresh();
        self.routes.follow_generation(self.hops.load().generation);
        while let Ok((destination, answer, generation)) = self.resolver.answers.try_recv() {
            self.routes.answer(destination, answer, generation);
        }
        if self.filter_slots.generation() != self.filter_generation
            && let Some((generation, set)) = self.filter_slots.take(self.index)
        {
            self.filter_generation = generation;
            let old = std::mem::replace(&mut self.filters, set);
            self.filter_slots.retire(old);
        }
    }

    /// Takes up to [`BATCH`] frames from the receive sources, round robin, checking each.
    /// Stops early at a packet too large for its frame (returned with its source, the frame
    /// still held: its batch is finished first so that order within a flow holds).
    fn gather(&mut self) -> Option<(usize, FrameId)> {
        self.held.clear();
        self.accepted.clear();
        let n = self.io.sources();
        if n == 0 {
            // No source yet (`kernel` decap with no peer): nothing to take.
            return None;
        }
        self.now_ms = unix_ms();
        let mut idle = 0;
        let mut source = self.next_source % n;
        while self.held.len() < BATCH && idle < n {
            let Some(taken) = self.io.take(source) else {
                idle += 1;
                source = (source + 1) % n;
                continue;
            };
            idle = 0;
            match taken {
                Taken::Large(frame) => {
                    self.next_source = (source + 1) % n;
                    return Some((source, frame));
                }
                Taken::Frame(received) => {
                    self.held.push(received.span.frame);
                    self.receive_frame(source, received);
                    // Take a run from one source, then move on (fairness without a syscall).
                    if self.held.len().is_multiple_of(RUN) {
                        source = (source + 1) % n;
                    }
                }
            }
        }
        self.next_source = (source + 1) % n;
        None
    }

    /// Checks one received frame (offload header + frame) and queues the packet in it, or
    /// counts why it is dropped.
    fn receive_frame(&mut self, source: usize, received: Received) {
        let cells = self.cells();
        cells.rx_packets.add(1);
        cells
            .rx_bytes
            .add(received.wire_len.saturating_sub(vnet::LEN) as u64);
        if received.wire_len > received.span.len {
            self.drop_received(DropReason::Truncated, None, source, received);
            return;
        }
        let bytes = self.io.bytes(received.span);
        let Some(vnet_header) = VnetHeader::parse(bytes) else {
            self.drop_received(DropReason::MalformedOuter, None, source, received);
            return;
        };
        let packet = &bytes[vnet::LEN..];
        let link = match self.links.get(source) {
            Some(SourceLink::Peer(peer)) => LinkLayer::Decapsulated(*peer),
            Some(SourceLink::Ingress) => LinkLayer::EthernetIpip,
            Some(SourceLink::UnknownTunnel) | None => {
                self.drop_received(DropReason::UnknownPeer, None, source, received);
                return;
            }
        };
        let received_bytes = packet.len() as u64;
        let ethernet_source: Option<[u8; 6]> = packet.get(6..12).and_then(|s| s.try_into().ok());
        match classify(packet, link, &*self.current) {
            Ok(a) => {
                let vnet_header = match a.inner {
                    _ if self.io.reads_offload_state(source) => vnet_header,
                    Inner::V4(inner) => vnet::partial_checksum(packet, a.inner_offset, &inner),
                    Inner::V6(inner) => vnet::partial_checksum6(packet, a.inner_offset, &inner),
                };
                if link == LinkLayer::EthernetIpip && self.spoofed(a.peer, ethernet_source) {
                    // Not heard from the peer: someone else used its address.
                    self.tally()
                        .drop_from(DropReason::SpoofedPeer, Some(a.vip), a.peer);
                    self.offer_received(DropReason::SpoofedPeer, Some(a.vip), source, received);
                    return;
                }
                self.tally().heard(a.peer, received_bytes, self.now_ms);
                self.accepted.push(Accepted {
                    packet: Span {
                        frame: received.span.frame,
                        offset: received.span.offset + vnet::LEN + a.inner_offset,
                        len: a.inner_len,
                    },
                    inner_in_frame: a.inner_offset,
                    vnet: vnet_header,
                    vip: a.vip,
                    peer: a.peer,
                    destination: a.inner.destination(),
                })
            }
            Err(r) => {
                match r.peer {
                    Some(peer) => {
                        let tally = self.tally();
                        tally.heard(peer, received_bytes, self.now_ms);
                        tally.drop_from(r.reason, r.vip, peer);
                    }
                    None => self.drop_packet(r.reason, r.vip),
                }
                self.offer_received(r.reason, r.vip, source, received);
            }
        }
    }

    /// Whether a frame from `peer` with Ethernet source `from` must be dropped as
    /// `spoofed_peer`: the peer is checked and `from` is not the MAC the resolver expects, or
    /// that is not known yet (fail closed; the resolver is asked once per worker).
    fn spoofed(&mut self, peer: PeerId, from: Option<[u8; 6]>) -> bool {
        let Some(entry) = self.current.peers.get(usize::from(peer)) else {
            return false;
        };
        if !entry.check_source_mac {
            return false;
        }
        let address = entry.address;
        match self.hops.load().sources.get(&address) {
            Some(expected) => from != Some(*expected),
            None => {
                if !self.asked_sources.contains(&address)
                    && self.resolver.ask_source(self.index, address)
                {
                    self.asked_sources.insert(address);
                }
                true
            }
        }
    }

    /// Filters, forwards and transmits the batch, then gives its frames back.
    fn finish_batch(&mut self) {
        self.filter_and_send();
        for &frame in &self.held {
            self.io.release(frame);
        }
        self.held.clear();
    }

    /// Counts what took the TPACKET path beside AF_XDP since the last call.
    fn count_packet_path(&mut self) {
        let (rx, tx) = self.io.take_packet_path_counts();
        if rx + tx > 0 {
            let cells = self.cells();
            cells.rx_packet_path_packets.add(rx);
            cells.tx_packet_path_packets.add(tx);
        }
    }

    /// A packet too large for its ring frame: read it whole and send it on its own.
    fn receive_large(&mut self, source: usize, frame: FrameId) {
        self.accepted.clear();
        match self.io.receive_large(frame) {
            Some(received) => {
                self.receive_frame(source, received);
                self.filter_and_send();
            }
            None => {
                self.cells().rx_packets.add(1);
                self.drop_packet(DropReason::Truncated, None);
            }
        }
    }

    /// Runs the filters on the accepted packets, forwards what passes and transmits.
    fn filter_and_send(&mut self) {
        if self.accepted.is_empty() {
            return;
        }
        let mut accepted = std::mem::take(&mut self.accepted);
        let tally = Tally {
            worker: self.index,
            cells: &self.counters[self.index],
            tables: &self.current,
        };
        let io = &self.io;
        let taps = &self.taps;
        let capturing = taps.on();
        batch::judge(
            &mut accepted,
            &mut self.filters,
            &mut self.scratch,
            capturing,
            |vip| tally.tables.vips.get(vip as usize).map(|v| v.address),
            |span| io.bytes(span),
            |a, reason, culprit| {
                tally.drop_from(reason, Some(a.vip), a.peer);
                if capturing {
                    let outcome = Outcome::Dropped(reason);
                    offer_accepted(taps, tally.worker, io, tally.tables, a, outcome, culprit);
                }
            },
        );
        if capturing && taps.want_passed() {
            for a in &accepted {
                offer_accepted(
                    taps,
                    tally.worker,
                    io,
                    tally.tables,
                    a,
                    Outcome::Passed,
                    None,
                );
            }
        }
        let hops = self.hops.load().clone();
        for a in &accepted {
            self.forward(a, &hops);
        }
        self.accepted = accepted;
        self.flush_transmit();
    }

    /// Sends one accepted packet on its way, or counts why it cannot go.
    fn forward(&mut self, a: &Accepted, hops: &NextHops) {
        let lookup = self.routes.lookup(a.destination, Instant::now);
        if lookup == (Lookup::Unresolved { ask: true }) {
            let (resolver, index) = (&self.resolver, self.index);
            self.routes.ask(a.destination, Instant::now(), || {
                resolver.ask(index, a.destination)
            });
        }
        match egress::choose(lookup, hops, a.packet.len, a.vnet.is_gso()) {
            Choice::NoRoute => self.drop_accepted(DropReason::NoRoute, a),
            Choice::TooBig { mtu } => {
                crate::frag_needed::answer_too_big(self.io.bytes(a.packet), mtu, self.cells());
                self.drop_accepted(DropReason::TooBig, a);
            }
            Choice::Fallback => self.send_fallback(a),
            Choice::Interface { ifindex, ethernet } => self.transmit(a, ifindex, ethernet),
        }
    }

    /// Hands a packet to its egress interface's transmit side (the raw fallback when that
    /// cannot be opened).
    fn transmit(&mut self, a: &Accepted, ifindex: u32, ethernet: [u8; 14]) {
        let frame_len = ETHERNET + a.packet.len;
        let Some(vnet) = a.vnet.for_transmit(a.inner_in_frame, ETHERNET, frame_len) else {
            self.drop_accepted(DropReason::MalformedInner, a);
            return;
        };
        if !self.io.egress_ready(ifindex) {
            return self.send_fallback(a);
        }
        decrement_ttl_or_hop_limit(self.io.bytes_mut(a.packet));
        let len = a.packet.len as u32;
        let tag = TxTag { vip: a.vip, len };
        match self
            .io
            .transmit(ifindex, a.packet, &TxHeader { vnet, ethernet }, tag)
        {
            Transmit::Queued => {}
            Transmit::Sent => self.tally().sent(a.vip, len, Via::Egress),
            // Every frame still in flight: the interface is slower than the input.
            Transmit::Full => self.drop_accepted(DropReason::TxError, a),
            Transmit::Failed(e) => {
                tracing::debug!("worker {}: send failed: {e}", self.index);
                self.drop_accepted(DropReason::TxError, a);
            }
        }
    }

    /// Kicks the transmit side, then counts each queued packet as sent or failed.
    fn flush_transmit(&mut self) {
        let tally = Tally {
            worker: self.index,
            cells: &self.counters[self.index],
            tables: &self.current,
        };
        self.io.kick(&mut |tag, taken| {
            if taken {
                tally.sent(tag.vip, tag.len, Via::Egress);
            } else {
                tally.drop(DropReason::TxError, Some(tag.vip));
            }
        });
    }

    /// Sends through the raw socket (the kernel routes it and resolves the neighbour).
    fn send_fallback(&mut self, a: &Accepted) {
        if a.vnet.is_gso() {
            // The raw socket cannot segment, so a super-packet has no usable next hop until
            // the neighbour is resolved (a connection's first, small packets resolve it).
            self.drop_accepted(DropReason::NoRoute, a);
            return;
        }
        let packet = self.io.bytes_mut(a.packet);
        if a.vnet.needs_csum() {
            let start = usize::from(a.vnet.csum_start).wrapping_sub(a.inner_in_frame);
            if start >= packet.len()
                || !vnet::finish_checksum(packet, start, usize::from(a.vnet.csum_offset))
            {
                self.drop_accepted(DropReason::MalformedInner, a);
                return;
            }
        }
        decrement_ttl_or_hop_limit(packet);
        match self.fallback.send(packet, a.destination) {
            Ok(()) => self.tally().sent(a.vip, a.packet.len as u32, Via::Fallback),
            Err(e) => {
                tracing::debug!("worker {}: fallback send failed: {e}", self.index);
                // The raw socket refuses a packet larger than the route's MTU (the fast path
                // checks the MTU before sending): the same drop as on the fast path.
                let reason = match e.raw_os_error() {
                    Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => DropReason::NoRoute,
                    Some(libc::EMSGSIZE) => DropReason::TooBig,
                    _ => DropReason::TxError,
                };
                self.drop_accepted(reason, a);
            }
        }
    }

    fn read_receive_drops(&mut self) {
        self.last_stats = Instant::now();
        let drops = self.io.take_receive_drops();
        if drops > 0 {
            self.cells().drops[DropReason::RxOverflow.index()].add(drops);
        }
    }
}

/// Decrements the TTL (IPv4, with its checksum) or the hop limit (IPv6) of a checked inner
/// packet, by its version.
fn decrement_ttl_or_hop_limit(packet: &mut [u8]) {
    match packet.first().map(|b| b >> 4) {
        Some(4) => ipv4::decrement_ttl(packet),
        Some(6) => ipv6::decrement_hop_limit(packet),
        _ => {}
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Offers an accepted packet's whole frame as received (Ethernet and outer header in
/// `userspace` decap, the inner packet alone in `kernel` decap) to the running captures.
fn offer_accepted<Io: PacketIo>(
    taps: &WorkerTaps,
    worker: usize,
    io: &Io,
    tables: &Tables,
    a: &Accepted,
    outcome: Outcome,
    culprit: Option<Culprit>,
) {
    let frame = Span {
        frame: a.packet.frame,
        offset: a.packet.offset - a.inner_in_frame,
        len: a.inner_in_frame + a.packet.len,
    };
    let bytes = io.bytes(frame);
    taps.offer(
        worker,
        Offer {
            outcome,
            framing: if a.inner_in_frame == 0 {
                Framing::Ipv4
            } else {
                Framing::Ethernet
            },
            bytes,
            original_len: bytes.len(),
            vip: tables.vips.get(a.vip as usize).map(|v| v.address),
            culprit,
        },
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::counters::Counters;
    use crate::filter::{BatchFilter, Decision};
    use crate::resolver::{NextHop, RouteAnswer};
    use std::net::Ipv4Addr;
    use std::os::fd::{FromRawFd, OwnedFd};

    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
    const CLIENT: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
    const ETH: [u8; 14] = [2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];

    /// One source of received frames in memory; records what is released and transmitted.
    #[derive(Default)]
    struct FakeIo {
        frames: Vec<Vec<u8>>,
        next: usize,
        released: Vec<FrameId>,
        queued: Vec<(u32, Vec<u8>, TxTag)>,
        sent: Vec<(u32, Vec<u8>)>,
    }

    impl PacketIo for FakeIo {
        fn sources(&self) -> usize {
            1
        }
        fn take(&mut self, _: usize) -> Option<Taken> {
            let frame = self.frames.get(self.next)?;
            let span = Span {
                frame: FrameId::Ring {
                    source: 0,
                    index: self.next as u32,
                },
                offset: 0,
                len: frame.len(),
            };
            self.next += 1;
            Some(Taken::Frame(Received {
                span,
                wire_len: span.len,
            }))
        }
        fn receive_large(&mut self, _: FrameId) -> Option<Received> {
            None
        }
        fn bytes(&self, span: Span) -> &[u8] {
            let FrameId::Ring { index, .. } = span.frame else {
                return &[];
            };
            &self.frames[index as usize][span.offset..span.offset + span.len]
        }
        fn bytes_mut(&mut self, span: Span) -> &mut [u8] {
            let FrameId::Ring { index, .. } = span.frame else {
                return &mut [];
            };
            &mut self.frames[index as usize][span.offset..span.offset + span.len]
        }
        fn release(&mut self, frame: FrameId) {
            self.released.push(frame);
        }
        fn egress_ready(&mut self, _: u32) -> bool {
            true
        }
        fn transmit(&mut self, ifindex: u32, packet: Span, h: &TxHeader, tag: TxTag) -> Transmit {
            assert_eq!(h.ethernet, ETH);
            let bytes = self.bytes(packet).to_vec();
            self.queued.push((ifindex, bytes, tag));
            Transmit::Queued
        }
        fn kick(&mut self, settled: &mut dyn FnMut(TxTag, bool)) {
            for (ifindex, bytes, tag) in self.queued.drain(..) {
                self.sent.push((ifindex, bytes));
                settled(tag, true);
            }
        }
        fn wait(&mut self, _: Duration) {}
        fn take_receive_drops(&mut self) -> u64 {
            0
        }
    }

    /// The offload header (all zero) and an inner UDP packet VIP -> client.
    fn frame(ttl: u8, payload: &[u8]) -> Vec<u8> {
        let mut out = vec![0u8; vnet::LEN];
        etherparse::PacketBuilder::ipv4(VIP.octets(), CLIENT.octets(), ttl)
            .udp(80, 40000)
            .write(&mut out, payload)
            .unwrap();
        out
    }

    /// Drops the packets whose first payload byte is odd.
    struct DropOdd;
    impl BatchFilter for DropOdd {
        fn filter(&mut self, packets: &[&[u8]], decisions: &mut [Decision]) {
            for (p, d) in packets.iter().zip(decisions) {
                if p[28] % 2 == 1 {
                    *d = Decision::DropByPlugin;
                }
            }
        }
    }

    /// A worker reading `frames` from peer `a`'s tunnel device, with the client's route
    /// resolved to interface 7 (so nothing takes the fallback, whose socket is a socket
    /// pair end here and can send nothing anywhere).
    fn worker(frames: Vec<Vec<u8>>, counters: &Counters) -> (Worker<FakeIo>, Arc<FilterSlots>) {
        let doc = tungate_config::parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\ndecap = \"kernel\"\n\
             [[peers]]\nname = \"a\"\naddress = \"10.0.1.2\"\nvips = [\"192.0.2.10\"]",
        )
        .unwrap();
        let tables = Arc::new(ArcSwap::from_pointee(Tables::build(&doc, counters)));
        let hops = Arc::new(ArcSwap::from_pointee(NextHops {
            generation: 1,
            hops: vec![NextHop {
                ifindex: 7,
                address: CLIENT.into(),
                mtu: 1500,
                ethernet: Some(ETH),
            }],
            sources: Default::default(),
        }));
        let (requests, _) = crossbeam_channel::unbounded();
        let (answer, answers) = crossbeam_channel::unbounded();
        answer
            .send((CLIENT.into(), RouteAnswer::Hop(0), 1))
            .unwrap();
        let filters = Arc::new(FilterSlots::new(1));
        let mut fds = [0; 2];
        // SAFETY: fds has room for the two descriptors socketpair(2) writes.
        let rc = unsafe { libc::socketpair(libc::AF_UNIX, libc::SOCK_DGRAM, 0, fds.as_mut_ptr()) };
        assert_eq!(rc, 0);
        // SAFETY: both were just created and are owned by nobody else.
        let (end, _) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        let shared = Shared {
            index: 0,
            tables,
            resolver: ResolverLink {
                hops,
                requests,
                answers,
            },
            filters: filters.clone(),
            counters: counters.global_cells(),
            captures: counters.captures(),
            stop: Arc::new(AtomicBool::new(false)),
        };
        let io = FakeIo {
            frames,
            ..FakeIo::default()
        };
        let sources = vec![Source::Tunnel {
            device: "tg-a".into(),
        }];
        let w = Worker::new(shared, sources, io, RawFallback::over(end));
        (w, filters)
    }

    fn batch(w: &mut Worker<FakeIo>) {
        w.refresh_snapshots();
        assert_eq!(w.gather(), None, "no large packet");
        w.finish_batch();
    }

    #[test]
    fn a_batch_is_checked_judged_forwarded_with_the_ttl_one_lower_and_given_back() {
        let counters = Counters::new(1);
        let mut frames: Vec<Vec<u8>> = (0..6u8).map(|n| frame(64, &[n; 20])).collect();
        frames.push(frame(1, &[0; 20])); // TTL 1: never forwarded
        frames.push(vec![0; 5]); // shorter than the offload header
        let (mut w, filters) = worker(frames.clone(), &counters);
        let mut set = WorkerFilters::default();
        set.by_vip.insert(VIP.into(), Box::new(DropOdd));
        filters.publish(vec![set]);
        batch(&mut w);

        let sent = &w.io.sent;
        let payloads: Vec<u8> = sent.iter().map(|(_, p)| p[28]).collect();
        assert_eq!(payloads, vec![0, 2, 4], "the even ones, in order");
        for (ifindex, packet) in sent {
            assert_eq!(*ifindex, 7);
            assert_eq!(packet[8], 63, "TTL one lower");
            assert_eq!(
                tungate_packet::ipv4::checksum(&packet[..20]),
                0,
                "valid checksum"
            );
            let original = &frames[usize::from(packet[28])][vnet::LEN..];
            assert_eq!(
                packet[12..],
                original[12..],
                "addresses and payload unchanged"
            );
            assert_eq!(packet.len(), original.len());
        }
        assert_eq!(w.io.released.len(), 8, "every frame given back");
        let s = counters.snapshot();
        assert_eq!((s.rx_packets, s.tx_packets), (8, 3));
        assert_eq!(s.tx_bytes, 3 * 48);
        assert_eq!(s.drops.get(DropReason::Plugin), 3);
        assert_eq!(s.drops.get(DropReason::TtlExpired), 1);
        assert_eq!(s.drops.get(DropReason::MalformedOuter), 1);
        let vip = s.vip(VIP).expect("the VIP's counters");
        assert_eq!((vip.packets, vip.drops.get(DropReason::Plugin)), (3, 3));
    }

    #[test]
    fn while_a_capture_runs_drops_are_offered_as_received_and_passes_only_when_asked() {
        use crate::capture::{CaptureFilter, Framing, Outcome};
        let counters = Counters::new(1);
        let frames = vec![frame(64, &[1; 20]), frame(1, &[2; 20]), frame(64, &[4; 20])];
        let (mut w, filters) = worker(frames.clone(), &counters);
        let mut set = WorkerFilters::default();
        set.by_vip.insert(VIP.into(), Box::new(DropOdd));
        filters.publish(vec![set]);
        let drops = counters.captures().start(CaptureFilter::default()).unwrap();
        let passes = counters
            .captures()
            .start(CaptureFilter {
                passed: true,
                reason: Some(DropReason::Plugin),
                ..CaptureFilter::default()
            })
            .unwrap();
        batch(&mut w);
        assert_eq!(w.io.sent.len(), 1, "capturing changes nothing forwarded");
        let take = |s: &crate::capture::CaptureSession| {
            let mut v = Vec::new();
            while let Some(c) = s.next_until(Instant::now()) {
                v.push(c);
            }
            v
        };
        let got = take(&drops);
        let outcomes: Vec<Outcome> = got.iter().map(|c| c.outcome).collect();
        assert_eq!(
            outcomes,
            vec![
                Outcome::Dropped(DropReason::TtlExpired),
                Outcome::Dropped(DropReason::Plugin)
            ]
        );
        for (c, sent) in got.iter().zip([&frames[1], &frames[0]]) {
            assert_eq!(c.framing, Framing::Ipv4, "kernel decap: the inner packet");
            assert_eq!(c.bytes, sent[vnet::LEN..], "as received, TTL untouched");
            assert_eq!(c.vip, Some(VIP.into()));
        }
        let got = take(&passes);
        let outcomes: Vec<Outcome> = got.iter().map(|c| c.outcome).collect();
        assert_eq!(
            outcomes,
            vec![Outcome::Dropped(DropReason::Plugin), Outcome::Passed]
        );
        assert_eq!(got[1].bytes, frames[2][vnet::LEN..]);
        drop((drops, passes));
        assert_eq!(counters.captures().running(), 0);
    }

    #[test]
    fn a_tunnel_device_no_peer_owns_drops_its_frames_as_unknown_peer() {
        let counters = Counters::new(1);
        let (mut w, _) = worker(vec![frame(64, &[0; 20])], &counters);
        w.sources[0] = Source::Tunnel {
            device: "tg-gone".into(),
        };
        w.map_sources();
        batch(&mut w);
        assert!(w.io.sent.is_empty());
        assert_eq!(counters.snapshot().drops.get(DropReason::UnknownPeer), 1);
    }
}
