//! One data-path worker: a thread with its share of the receive sockets (PACKET_FANOUT
//! spreads the packets), each with a mapped receive ring, its transmit rings (one per egress
//! interface, opened on first use), its io_uring and its filters.
//!
//! Per batch (up to [`BATCH`] frames taken from the receive rings, which the kernel fills
//! from softirq context) it checks and decapsulates every frame ([`tungate_packet`]), groups
//! the accepted packets by VIP, runs each VIP's [`BatchFilter`], and copies each accepted
//! packet behind a new offload and Ethernet header into the transmit ring of its egress
//! interface with the TTL decremented; then one `send()` per transmit ring hands the whole
//! batch to the kernel and every receive frame goes back to the kernel. No system call per
//! packet in the common case. The loop's system calls go through the worker's io_uring
//! ([`super::uring`]): the sleep when every receive ring is empty (one-shot polls, armed only
//! then) and the transmit kicks of a batch (one `io_uring_enter` for every egress ring).
//!
//! A packet too large for a ring frame (a GSO super-packet) arrives truncated in the ring
//! with the whole packet on the socket's queue: the batch before it is finished first (so
//! the order within a flow holds), then it is read and sent on its own. Packets whose next
//! hop is not resolved yet go through the raw fallback socket.
//!
//! It does no netlink I/O, takes no lock per packet and allocates nothing per packet; it
//! only reads snapshots (tables, next hops) and writes its own counter cells.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Cache};
use rustc_hash::FxHashMap;

use super::afpacket::{self, RxSocket, TxSocket};
use super::counters::{GlobalCells, Padded};
use super::filter::{Decision, FilterSlots, WorkerFilters};
use super::resolver::{NextHops, ResolverLink, RouteAnswer};
use super::ring::{RxFrame, TX_CAPACITY};
use super::tables::{PeerId, Tables, VipId};
use super::uring::LoopCalls;
use tungate_packet::vnet::{self, VnetHeader};
use tungate_packet::{DropReason, LinkLayer, classify, ipv4};

/// Most frames taken from the receive rings per batch.
const BATCH: usize = 256;
/// How long an idle worker keeps looking at its rings before it sleeps: a wakeup (a
/// context switch, and on a virtual machine an exit from the halted vCPU) costs far more than
/// the gap between packets at moderate rates, so a short spin saves CPU per packet there and
/// latency everywhere; with no traffic the worker sleeps.
const SPIN_BEFORE_SLEEP: Duration = Duration::from_micros(50);
/// Longest sleep before the worker looks at `stop` and its snapshots again.
const SLEEP_TIMEOUT: Duration = Duration::from_millis(100);
/// Bytes of the buffer for packets too large for a ring frame: a 64 KB GSO super-packet with
/// its offload, Ethernet and outer IPv4 headers.
const BIG_BUFFER: usize = 68 * 1024;
/// Room in front of the large-packet buffer for a new offload and Ethernet header.
const BIG_HEADROOM: usize = 64;
/// Bytes written in front of the inner packet for transmit: offload header and Ethernet.
const TX_PREFIX: usize = vnet::LEN + 14;
/// How long a route request may stay unanswered before it is asked again.
const ASK_AGAIN: Duration = Duration::from_millis(500);
/// Largest local route cache before it is cleared.
const ROUTE_CACHE_MAX: usize = 1 << 16;
/// How often the receive sockets' kernel drop counts are read.
const STATS_INTERVAL: Duration = Duration::from_millis(500);

/// Where a receive socket's frames come from.
#[derive(Debug, Clone)]
pub enum Source {
    /// `userspace` decap: the ingress interface, frames are Ethernet + outer IPIP.
    Ingress,
    /// `kernel` decap: the tunnel device of one peer, frames are inner packets.
    Tunnel {
        /// The device name (`tg-<peer>`), looked up in each table generation.
        device: String,
    },
}

/// Everything a worker needs, handed over at start.
pub struct WorkerSetup {
    /// The worker's index (its counter cells and filter slot).
    pub index: usize,
    /// Its receive sockets (one per source), with where they read from.
    pub sockets: Vec<(RxSocket, Source)>,
    /// The runtime tables.
    pub tables: Arc<ArcSwap<Tables>>,
    /// Its end of the next-hop resolver.
    pub resolver: ResolverLink,
    /// Filter sets from the control side.
    pub filters: Arc<FilterSlots>,
    /// Every worker's global counter cells.
    pub counters: Arc<[Padded<GlobalCells>]>,
    /// Set to stop.
    pub stop: Arc<AtomicBool>,
}

/// A worker could not start.
#[derive(Debug, thiserror::Error)]
#[error("worker {index}: cannot {what}: {source}")]
pub struct WorkerError {
    index: usize,
    what: &'static str,
    source: std::io::Error,
}

#[derive(Clone, Copy)]
enum Route {
    Hop(u32),
    Unreachable,
    Pending(Instant),
}

/// One accepted packet of the current batch.
#[derive(Clone, Copy)]
struct Accepted {
    /// The inner IPv4 packet, in a held receive frame or the large-packet buffer.
    data: *mut u8,
    inner_len: usize,
    /// Offset of the inner header in the received frame (for the offload fields).
    inner_in_frame: usize,
    vnet: VnetHeader,
    vip: VipId,
    destination: Ipv4Addr,
}

impl Accepted {
    /// The packet's bytes.
    ///
    /// # Safety
    /// The frame or buffer it lies in must still be held by the worker, with no other
    /// reference to these bytes alive.
    unsafe fn bytes_mut<'a>(self) -> &'a mut [u8] {
        // SAFETY: per the caller's promise, `data..data + inner_len` is held memory.
        unsafe { std::slice::from_raw_parts_mut(self.data, self.inner_len) }
    }
}

/// A packet requested in a transmit ring, counted once the kernel took it.
#[derive(Clone, Copy)]
struct PendingTx {
    vip: VipId,
    len: u32,
}

/// An egress interface's sockets (`None`: they could not be opened; use the fallback).
struct Egress {
    ifindex: u32,
    socket: Option<TxSocket>,
    pending: Vec<PendingTx>,
}

/// Runs a worker until `stop` is set. The outcome of its set-up (the fallback socket) goes
/// to `ready` before it starts receiving.
pub fn run(setup: WorkerSetup, ready: crossbeam_channel::Sender<Result<(), WorkerError>>) {
    let index = setup.index;
    match afpacket::open_raw_fallback() {
        Ok(raw) => {
            let mut w = Worker::new(setup, raw);
            let _ = ready.send(Ok(()));
            w.main_loop();
        }
        Err(e) => {
            let _ = ready.send(Err(WorkerError {
                index,
                what: "open the raw fallback socket",
                source: e.source,
            }));
        }
    }
}

struct Worker {
    index: usize,
    sockets: Vec<(RxSocket, Source)>,
    socket_peers: Vec<Option<PeerId>>,
    raw: OwnedFd,
    egress: Vec<Egress>,
    tables: Cache<Arc<ArcSwap<Tables>>, Arc<Tables>>,
    current: Arc<Tables>,
    resolver: ResolverLink,
    hops: Cache<Arc<ArcSwap<NextHops>>, Arc<NextHops>>,
    hop_generation: u64,
    routes: FxHashMap<Ipv4Addr, Route>,
    filter_slots: Arc<FilterSlots>,
    filter_generation: u64,
    filters: WorkerFilters,
    counters: Arc<[Padded<GlobalCells>]>,
    stop: Arc<AtomicBool>,
    // Reused per batch (no per-packet allocation).
    /// Receive frames of the batch, by (socket, frame index), released after it.
    held: Vec<(u16, u32)>,
    accepted: Vec<Accepted>,
    decisions: Vec<Decision>,
    views: Vec<&'static [u8]>,
    /// The loop's system calls (sleep, transmit kicks).
    calls: LoopCalls,
    /// Transmit ring sockets to kick after a batch (reused).
    kick_fds: Vec<std::os::fd::RawFd>,
    /// For packets too large for a ring frame (allocated on first use).
    big: Vec<u8>,
    next_socket: usize,
    last_stats: Instant,
}

/// Empties a vector of borrowed slices so its allocation can be reused with any lifetime
/// (the in-place `collect` keeps the allocation; no element is ever converted).
fn relifetime<'a, 'b>(mut v: Vec<&'a [u8]>) -> Vec<&'b [u8]> {
    v.clear();
    v.into_iter()
        .map(|_| -> &'b [u8] { unreachable!() })
        .collect()
}

impl Worker {
    fn new(setup: WorkerSetup, raw: OwnedFd) -> Worker {
        let n = setup.sockets.len();
        let mut tables = Cache::new(setup.tables);
        let current = tables.load().clone();
        let hops = Cache::new(setup.resolver.hops.clone());
        let receive_fds: Vec<_> = setup
            .sockets
            .iter()
            .map(|(s, _)| s.fd.as_raw_fd())
            .collect();
        let calls = LoopCalls::new(setup.index, &receive_fds);
        let mut w = Worker {
            index: setup.index,
            sockets: setup.sockets,
            socket_peers: vec![None; n],
            raw,
            egress: Vec::new(),
            tables,
            current,
            resolver: setup.resolver,
            hops,
            hop_generation: u64::MAX,
            routes: FxHashMap::default(),
            filter_slots: setup.filters,
            filter_generation: 0,
            filters: WorkerFilters::default(),
            counters: setup.counters,
            stop: setup.stop,
            held: Vec::with_capacity(BATCH),
            accepted: Vec::with_capacity(BATCH),
            decisions: Vec::with_capacity(BATCH),
            views: Vec::with_capacity(BATCH),
            calls,
            kick_fds: Vec::new(),
            big: Vec::new(),
            next_socket: 0,
            last_stats: Instant::now(),
        };
        w.map_sockets_to_peers();
        w
    }

    fn cells(&self) -> &GlobalCells {
        &self.counters[self.index]
    }

    fn map_sockets_to_peers(&mut self) {
        for (slot, (_, source)) in self.sockets.iter().enumerate() {
            self.socket_peers[slot] = match source {
                Source::Ingress => None,
                Source::Tunnel { device } => self.current.peer_by_device(device),
            };
        }
    }

    fn main_loop(&mut self) {
        let mut idle_since: Option<Instant> = None;
        while !self.stop.load(Ordering::Relaxed) {
            self.refresh_snapshots();
            let copied = self.gather();
            if self.held.is_empty() && copied.is_none() {
                let since = *idle_since.get_or_insert_with(Instant::now);
                if since.elapsed() >= SPIN_BEFORE_SLEEP {
                    self.wait();
                    idle_since = None;
                } else {
                    std::hint::spin_loop();
                }
            } else {
                idle_since = None;
                self.finish_batch();
                if let Some((slot, index)) = copied {
                    self.receive_copied(slot, index);
                }
            }
            if self.last_stats.elapsed() >= STATS_INTERVAL {
                self.read_socket_statistics();
            }
        }
    }

    /// Sleeps until a receive socket has something (or the timeout passes).
    fn wait(&mut self) {
        self.calls.wait(SLEEP_TIMEOUT);
    }

    /// Between batches: new tables, next hops, filters and resolver answers.
    fn refresh_snapshots(&mut self) {
        let tables = self.tables.load();
        if !Arc::ptr_eq(tables, &self.current) {
            self.current = tables.clone();
            self.map_sockets_to_peers();
        }
        let generation = self.hops.load().generation;
        if generation != self.hop_generation {
            self.hop_generation = generation;
            self.routes.clear();
        }
        while let Ok((dst, answer, generation)) = self.resolver.answers.try_recv() {
            if generation == self.hop_generation {
                let route = match answer {
                    RouteAnswer::Hop(id) => Route::Hop(id),
                    RouteAnswer::Unreachable => Route::Unreachable,
                };
                self.routes.insert(dst, route);
            } else {
                self.routes.remove(&dst);
            }
        }
        if self.filter_slots.generation() != self.filter_generation
            && let Some((generation, set)) = self.filter_slots.take(self.index)
        {
            self.filter_generation = generation;
            let old = std::mem::replace(&mut self.filters, set);
            self.filter_slots.retire(old);
        }
    }

    /// Takes up to [`BATCH`] frames from the receive rings, round robin, checking each.
    /// Stops early at a frame whose packet did not fit (returned, still held: its batch is
    /// finished first so that order within a flow holds).
    fn gather(&mut self) -> Option<(u16, u32)> {
        self.held.clear();
        self.accepted.clear();
        let n = self.sockets.len();
        if n == 0 {
            // No source yet (`kernel` decap with no peer): nothing to take.
            return None;
        }
        let mut idle = 0;
        let mut slot = self.next_socket;
        while self.held.len() < BATCH && idle < n {
            let Some(frame) = self.sockets[slot].0.ring.take_filled() else {
                idle += 1;
                slot = (slot + 1) % n;
                continue;
            };
            idle = 0;
            if frame.status & libc::TP_STATUS_COPY != 0 {
                self.next_socket = (slot + 1) % n;
                return Some((slot as u16, frame.index));
            }
            self.held.push((slot as u16, frame.index));
            self.receive_frame(slot, frame);
            // Take a run from one socket, then move on (fairness without a syscall).
            if self.held.len().is_multiple_of(32) {
                slot = (slot + 1) % n;
            }
        }
        self.next_socket = (slot + 1) % n;
        None
    }

    /// Checks one frame (offload header + frame, `len` bytes captured of `wire_len`) and
    /// queues the packet in it, or counts why it is dropped.
    fn receive_frame(&mut self, slot: usize, frame: RxFrame) {
        let cells = &self.counters[self.index];
        cells.rx_packets.add(1);
        cells
            .rx_bytes
            .add(frame.wire_len.saturating_sub(vnet::LEN) as u64);
        if frame.wire_len > frame.len {
            self.drop_packet(DropReason::Truncated, None);
            return;
        }
        // SAFETY: the frame is held by the worker (taken from the ring, not yet released,
        // or the large-packet buffer); `data..data + len` lies inside it.
        let bytes = unsafe { std::slice::from_raw_parts(frame.data, frame.len) };
        let Some(vnet_header) = VnetHeader::parse(bytes) else {
            self.drop_packet(DropReason::MalformedOuter, None);
            return;
        };
        let packet = &bytes[vnet::LEN..];
        let link = match self.socket_peers.get(slot) {
            Some(Some(peer)) => LinkLayer::Decapsulated(*peer),
            Some(None) if matches!(self.sockets[slot].1, Source::Ingress) => {
                LinkLayer::EthernetIpip
            }
            _ => {
                self.drop_packet(DropReason::UnknownPeer, None);
                return;
            }
        };
        match classify(packet, link, &*self.current) {
            Ok(a) => self.accepted.push(Accepted {
                // SAFETY: inner_offset lies inside the checked frame.
                data: unsafe { frame.data.add(vnet::LEN + a.inner_offset) },
                inner_len: a.inner_len,
                inner_in_frame: a.inner_offset,
                vnet: vnet_header,
                vip: a.vip,
                destination: a.inner.destination,
            }),
            Err(r) => self.drop_packet(r.reason, r.vip),
        }
    }

    fn drop_packet(&self, reason: DropReason, vip: Option<VipId>) {
        self.cells().drop(reason);
        if let Some(vip) = vip
            && let Some(v) = self.current.vips.get(vip as usize)
        {
            v.counters.worker(self.index).drops[reason.index()].add(1);
        }
    }

    /// Filters, forwards and transmits the batch, then gives its frames back.
    fn finish_batch(&mut self) {
        self.filter_and_send();
        for &(slot, index) in &self.held {
            self.sockets[usize::from(slot)].0.ring.release(index);
        }
        self.held.clear();
    }

    /// Runs each VIP's filter on that VIP's packets of the batch; drops what they reject.
    fn run_filters(&mut self) {
        if self.filters.by_vip.is_empty() {
            return;
        }
        self.accepted.sort_by_key(|a| a.vip);
        let mut accepted = std::mem::take(&mut self.accepted);
        let mut decisions = std::mem::take(&mut self.decisions);
        decisions.clear();
        decisions.resize(accepted.len(), Decision::Pass);
        let mut start = 0;
        while start < accepted.len() {
            let vip = accepted[start].vip;
            let end = start
                + accepted[start..]
                    .iter()
                    .take_while(|a| a.vip == vip)
                    .count();
            let address = self.current.vips[vip as usize].address;
            if let Some(filter) = self.filters.by_vip.get_mut(&address) {
                let mut views = relifetime(std::mem::take(&mut self.views));
                for a in &accepted[start..end] {
                    // SAFETY: the worker holds the packet's frame; no mutable view of it
                    // exists during the call.
                    views.push(unsafe { a.bytes_mut() });
                }
                filter.filter(&views, &mut decisions[start..end]);
                self.views = relifetime(views);
            }
            start = end;
        }
        let mut verdicts = decisions.iter();
        accepted.retain(|a| match verdicts.next() {
            Some(Decision::DropByPlugin) => {
                self.drop_packet(DropReason::Plugin, Some(a.vip));
                false
            }
            Some(Decision::DropOnError) => {
                self.drop_packet(DropReason::PluginError, Some(a.vip));
                false
            }
            Some(Decision::Pass) | None => true,
        });
        self.accepted = accepted;
        self.decisions = decisions;
    }

    fn route(&mut self, destination: Ipv4Addr, vip: VipId) -> Option<Option<u32>> {
        match self.routes.get(&destination) {
            Some(Route::Hop(id)) => Some(Some(*id)),
            Some(Route::Unreachable) => {
                self.drop_packet(DropReason::NoRoute, Some(vip));
                None
            }
            Some(Route::Pending(since)) => {
                if since.elapsed() > ASK_AGAIN {
                    self.ask(destination);
                }
                Some(None)
            }
            None => {
                self.ask(destination);
                Some(None)
            }
        }
    }

    /// Sends one accepted packet on its way: into its egress transmit ring, or with a
    /// `send()` of its own when it is too large for a ring frame, or through the raw
    /// fallback when its next hop is not resolved yet. `big`: it lies in the large-packet
    /// buffer, with [`BIG_HEADROOM`] bytes free in front of its frame.
    fn forward(&mut self, a: &Accepted, hops: &NextHops) {
        let Some(route) = self.route(a.destination, a.vip) else {
            return;
        };
        let hop = route.and_then(|id| hops.hops.get(id as usize));
        let (ethernet, ifindex) = match hop {
            Some(h) if h.ethernet.is_some() => {
                if a.inner_len > h.mtu as usize && !a.vnet.is_gso() {
                    // SAFETY: the worker holds the packet's frame; nothing else refers to it now.
                    let packet = unsafe { a.bytes_mut() };
                    super::frag_needed::answer_too_big(packet, h.mtu, self.cells());
                    self.drop_packet(DropReason::TooBig, Some(a.vip));
                    return;
                }
                (h.ethernet.unwrap_or_default(), h.ifindex)
            }
            _ => return self.send_fallback(a),
        };
        let frame_len = 14 + a.inner_len;
        let Some(tx_vnet) = a.vnet.for_transmit(a.inner_in_frame, 14, frame_len) else {
            self.drop_packet(DropReason::MalformedInner, Some(a.vip));
            return;
        };
        let Some(e) = self.egress_for(ifindex) else {
            return self.send_fallback(a);
        };
        let egress = &mut self.egress[e];
        let Some(socket) = egress.socket.as_mut() else {
            return self.send_fallback(a);
        };
        let len = vnet::LEN + frame_len;
        if len <= TX_CAPACITY {
            let mut tx_vnet = tx_vnet;
            if !tx_vnet.is_gso() {
                // The whole frame is "header": the kernel copies it into the skb's linear
                // part. Otherwise the skb would point into the ring's pages, and the first
                // hop that orphans user pages (veth, any local delivery) would allocate a
                // page and copy it again (skb_copy_ubufs).
                tx_vnet.hdr_len = frame_len as u16;
            }
            // SAFETY: the worker holds the packet's frame; nothing else refers to it now.
            let inner = unsafe { a.bytes_mut() };
            let pushed = socket.ring.push(len, |out| {
                tx_vnet.write(&mut out[..vnet::LEN]);
                out[vnet::LEN..TX_PREFIX].copy_from_slice(&ethernet);
                let packet = &mut out[TX_PREFIX..];
                packet.copy_from_slice(inner);
                ipv4::decrement_ttl(packet);
            });
            match pushed {
                Some(()) => egress.pending.push(PendingTx {
                    vip: a.vip,
                    len: a.inner_len as u32,
                }),
                // Every frame still in flight: the interface is slower than the input.
                None => self.drop_packet(DropReason::TxError, Some(a.vip)),
            }
            return;
        }
        // Only a packet from the large-packet buffer is larger than a ring frame. Whatever
        // the ring holds goes first, so the order within a flow holds.
        let fd = socket.plain.as_raw_fd();
        self.flush_transmit();
        // SAFETY: the packet lies in the large-packet buffer at least BIG_HEADROOM bytes
        // after its start (TX_PREFIX < BIG_HEADROOM), and the worker holds that buffer.
        let start = unsafe { a.data.sub(TX_PREFIX) };
        // SAFETY: as above; `start..start + len` covers the prefix and the packet.
        let out = unsafe { std::slice::from_raw_parts_mut(start, len) };
        tx_vnet.write(&mut out[..vnet::LEN]);
        out[vnet::LEN..TX_PREFIX].copy_from_slice(&ethernet);
        ipv4::decrement_ttl(&mut out[TX_PREFIX..]);
        // SAFETY: out is valid for reads of its length.
        let rc = unsafe { libc::send(fd, out.as_ptr().cast(), out.len(), libc::MSG_DONTWAIT) };
        self.count_sent(a.vip, a.inner_len as u32, rc >= 0, false);
        if rc < 0 {
            tracing::debug!(
                "worker {}: send failed: {}",
                self.index,
                std::io::Error::last_os_error()
            );
        }
    }

    /// The index of `ifindex`'s egress entry, opening its sockets on first use.
    fn egress_for(&mut self, ifindex: u32) -> Option<usize> {
        if let Some(i) = self.egress.iter().position(|e| e.ifindex == ifindex) {
            return Some(i);
        }
        let socket = match afpacket::open_transmit(ifindex) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::warn!("worker {}: {e}; using the raw fallback", self.index);
                None
            }
        };
        self.egress.push(Egress {
            ifindex,
            socket,
            pending: Vec::with_capacity(BATCH),
        });
        Some(self.egress.len() - 1)
    }

    /// Kicks every transmit ring with requested frames (one `io_uring_enter` for all),
    /// then counts each packet as sent or failed.
    fn flush_transmit(&mut self) {
        self.kick_fds.clear();
        for e in &self.egress {
            if let Some(socket) = &e.socket
                && socket.ring.has_pending()
            {
                self.kick_fds.push(socket.ring_fd.as_raw_fd());
            }
        }
        if self.kick_fds.is_empty() {
            return;
        }
        self.calls.kick(&self.kick_fds);
        let mut egress = std::mem::take(&mut self.egress);
        for e in &mut egress {
            if e.pending.is_empty() {
                continue;
            }
            if let Some(socket) = e.socket.as_mut() {
                let pending = &e.pending;
                socket.ring.settle(|position, taken| {
                    let p = pending[position];
                    self.count_sent(p.vip, p.len, taken, false);
                });
            }
            e.pending.clear();
        }
        self.egress = egress;
    }

    fn count_sent(&self, vip: VipId, len: u32, ok: bool, fallback: bool) {
        if !ok {
            self.drop_packet(
                if fallback {
                    DropReason::NoRoute
                } else {
                    DropReason::TxError
                },
                Some(vip),
            );
            return;
        }
        let cells = self.cells();
        cells.tx_packets.add(1);
        cells.tx_bytes.add(u64::from(len));
        if fallback {
            cells.tx_fallback_packets.add(1);
        }
        if let Some(v) = self.current.vips.get(vip as usize) {
            let c = v.counters.worker(self.index);
            c.packets.add(1);
            c.bytes.add(u64::from(len));
        }
    }

    fn ask(&mut self, destination: Ipv4Addr) {
        if self.routes.len() >= ROUTE_CACHE_MAX {
            self.routes.clear();
        }
        if self.resolver.ask(self.index, destination) {
            self.routes
                .insert(destination, Route::Pending(Instant::now()));
        }
    }

    /// Sends through the raw socket (the kernel routes it and resolves the neighbour).
    fn send_fallback(&mut self, a: &Accepted) {
        if a.vnet.is_gso() {
            // The raw socket cannot segment, so a super-packet has no usable next hop until
            // the neighbour is resolved (a connection's first, small packets resolve it).
            self.drop_packet(DropReason::NoRoute, Some(a.vip));
            return;
        }
        // SAFETY: the worker holds the packet's frame; nothing else refers to it now.
        let packet = unsafe { a.bytes_mut() };
        if a.vnet.needs_csum() {
            let start = usize::from(a.vnet.csum_start).wrapping_sub(a.inner_in_frame);
            if start >= packet.len()
                || !vnet::finish_checksum(packet, start, usize::from(a.vnet.csum_offset))
            {
                self.drop_packet(DropReason::MalformedInner, Some(a.vip));
                return;
            }
        }
        ipv4::decrement_ttl(packet);
        // SAFETY: an all-zero sockaddr_in is valid; the fields are set below.
        let mut dest: libc::sockaddr_in = unsafe { std::mem::zeroed() };
        dest.sin_family = libc::AF_INET as libc::sa_family_t;
        dest.sin_addr.s_addr = u32::from(a.destination).to_be();
        // SAFETY: packet and dest are valid for reads of the lengths passed.
        let rc = unsafe {
            libc::sendto(
                self.raw.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                libc::MSG_DONTWAIT,
                (&raw const dest).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc < 0 {
            let e = std::io::Error::last_os_error();
            tracing::debug!("worker {}: fallback send failed: {e}", self.index);
            // The raw socket refuses a packet larger than the route's MTU (the fast path
            // checks the MTU before sending): the same drop as on the fast path.
            let reason = match e.raw_os_error() {
                Some(libc::ENETUNREACH | libc::EHOSTUNREACH) => DropReason::NoRoute,
                Some(libc::EMSGSIZE) => DropReason::TooBig,
                _ => DropReason::TxError,
            };
            self.drop_packet(reason, Some(a.vip));
            return;
        }
        self.count_sent(a.vip, a.inner_len as u32, true, true);
    }

    /// A packet too large for its ring frame: read it whole from the socket's queue into
    /// the large-packet buffer and send it on its own, then give the frame back.
    fn receive_copied(&mut self, slot: u16, index: u32) {
        let slot_usize = usize::from(slot);
        if self.big.is_empty() {
            self.big = vec![0; BIG_HEADROOM + BIG_BUFFER];
        }
        let fd = self.sockets[slot_usize].0.fd.as_raw_fd();
        let buf = &mut self.big[BIG_HEADROOM..];
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                fd,
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        self.sockets[slot_usize].0.ring.release(index);
        if n < 0 {
            // The copy went missing (cannot happen while the ring hands out frames in
            // order): count the frame as truncated.
            self.cells().rx_packets.add(1);
            self.drop_packet(DropReason::Truncated, None);
            return;
        }
        let wire_len = n as usize;
        let frame = RxFrame {
            index,
            status: 0,
            // SAFETY: BIG_HEADROOM < self.big.len().
            data: unsafe { self.big.as_mut_ptr().add(BIG_HEADROOM) },
            len: wire_len.min(BIG_BUFFER),
            wire_len,
        };
        self.accepted.clear();
        self.receive_frame(slot_usize, frame);
        self.filter_and_send();
    }

    /// Runs the filters on the accepted packets, forwards what passes and transmits.
    fn filter_and_send(&mut self) {
        if self.accepted.is_empty() {
            return;
        }
        self.run_filters();
        let accepted = std::mem::take(&mut self.accepted);
        let hops = self.hops.load().clone();
        for a in &accepted {
            self.forward(a, &hops);
        }
        self.accepted = accepted;
        self.flush_transmit();
    }

    fn read_socket_statistics(&mut self) {
        self.last_stats = Instant::now();
        let mut drops = 0u64;
        for (s, _) in &self.sockets {
            if let Ok((_, d)) = afpacket::take_statistics(&s.fd) {
                drops += u64::from(d);
            }
        }
        if drops > 0 {
            self.cells().drops[DropReason::RxOverflow.index()].add(drops);
        }
    }
}
