//! One data-path worker: a thread with its own io_uring, its share of the receive sockets
//! (PACKET_FANOUT spreads the packets), a provided-buffer ring, its transmit sockets and its
//! filters.
//!
//! Per batch of completions it checks and decapsulates every frame ([`crate::packet`]),
//! groups the accepted packets by VIP, runs each VIP's [`BatchFilter`], decrements the TTL
//! and transmits each packet from its receive buffer (a new Ethernet and offload header are
//! written in place in front of the inner packet), then recycles the buffers of the batch
//! at once. It does no netlink I/O, takes no lock per packet and allocates nothing per
//! packet; it only reads snapshots (tables, next hops) and writes its own counter cells.

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use arc_swap::{ArcSwap, Cache};
use io_uring::{IoUring, cqueue, opcode, squeue, types};
use rustc_hash::FxHashMap;

use super::afpacket;
use super::bufring::BufRing;
use super::counters::{GlobalCells, Padded};
use super::filter::{Decision, FilterSlots, WorkerFilters};
use super::resolver::{NextHops, ResolverLink, RouteAnswer};
use super::tables::{PeerId, Tables, VipId};
use crate::packet::vnet::{self, VnetHeader};
use crate::packet::{DropReason, LinkLayer, classify, ipv4};

/// Buffers per worker (a power of two).
const BUFFERS: u16 = 256;
/// Bytes per buffer: the recvmsg header, the offload header and a 64 KB GSO super-packet
/// with its Ethernet and outer IPv4 headers.
const BUFFER_SIZE: usize = 68 * 1024;
/// Size of `struct io_uring_recvmsg_out`, which starts every received buffer.
const RECVMSG_OUT_LEN: usize = 16;
/// Bytes written in front of the inner packet for transmit: offload header and Ethernet.
const TX_PREFIX: usize = vnet::LEN + 14;
const RING_ENTRIES: u32 = 1024;
const BUFFER_GROUP: u16 = 0;
/// How long a route request may stay unanswered before it is asked again.
const ASK_AGAIN: Duration = Duration::from_millis(500);
/// Largest local route cache before it is cleared.
const ROUTE_CACHE_MAX: usize = 1 << 16;
/// How often the receive sockets' kernel drop counts are read.
const STATS_INTERVAL: Duration = Duration::from_millis(500);

const KIND_RECV: u64 = 1;
const KIND_SEND: u64 = 2;

fn user_data(kind: u64, slot: u16, bid: u16) -> u64 {
    (kind << 32) | (u64::from(slot) << 16) | u64::from(bid)
}

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
    pub sockets: Vec<(OwnedFd, Source)>,
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

/// A send in flight: what to count when it completes.
#[derive(Clone, Copy, Default)]
struct InFlight {
    vip: VipId,
    epoch: u64,
    len: u32,
    fallback: bool,
}

/// One accepted packet of the current batch.
#[derive(Clone, Copy)]
struct Accepted {
    bid: u16,
    vip: VipId,
    /// Offset of the inner IPv4 header in the buffer.
    inner: usize,
    inner_len: usize,
    /// Offset of the inner header in the received frame (for the offload fields).
    inner_in_frame: usize,
    vnet: VnetHeader,
    destination: Ipv4Addr,
    /// Arrival order in the batch: grouping by VIP keeps each VIP's packets in this order.
    seq: u16,
}

/// Runs a worker until `stop` is set. The outcome of its set-up (io_uring, buffers,
/// fallback socket) goes to `ready` before it starts receiving.
pub fn run(setup: WorkerSetup, ready: crossbeam_channel::Sender<Result<(), WorkerError>>) {
    match set_up(setup) {
        Ok(mut w) => {
            let _ = ready.send(Ok(()));
            for slot in 0..w.sockets.len() {
                w.arm(slot);
            }
            w.main_loop();
        }
        Err(e) => {
            let _ = ready.send(Err(e));
        }
    }
}

fn set_up(setup: WorkerSetup) -> Result<Worker, WorkerError> {
    let index = setup.index;
    let fail = |what: &'static str| {
        move |source| WorkerError {
            index,
            what,
            source,
        }
    };
    let uring = build_ring().map_err(fail("create an io_uring"))?;
    let bufs = BufRing::register(&uring, BUFFER_GROUP, BUFFERS, BUFFER_SIZE)
        .map_err(fail("register the receive buffers"))?;
    let raw = afpacket::open_raw_fallback().map_err(|e| WorkerError {
        index,
        what: "open the raw fallback socket",
        source: e.source,
    })?;
    Ok(Worker::new(setup, uring, bufs, raw))
}

fn build_ring() -> std::io::Result<IoUring> {
    // Single issuer + deferred task run: completions are processed only when this thread
    // asks, in batches. Older kernels refuse the flags: fall back to a plain ring.
    IoUring::builder()
        .setup_single_issuer()
        .setup_defer_taskrun()
        .setup_coop_taskrun()
        .build(RING_ENTRIES)
        .or_else(|_| IoUring::new(RING_ENTRIES))
}

struct Worker {
    // Field order is drop order: the ring goes before the buffers it may write.
    uring: IoUring,
    bufs: BufRing,
    index: usize,
    sockets: Vec<(OwnedFd, Source)>,
    socket_peers: Vec<Option<PeerId>>,
    needs_arm: Vec<bool>,
    raw: OwnedFd,
    tx_sockets: Vec<(u32, Option<OwnedFd>)>,
    msghdr: Box<libc::msghdr>,
    tables: Cache<Arc<ArcSwap<Tables>>, Arc<Tables>>,
    /// Table generations that sends in flight still refer to, newest last.
    epochs: Vec<(u64, Arc<Tables>)>,
    epoch: u64,
    resolver: ResolverLink,
    hops: Cache<Arc<ArcSwap<NextHops>>, Arc<NextHops>>,
    hop_generation: u64,
    routes: FxHashMap<Ipv4Addr, Route>,
    filter_slots: Arc<FilterSlots>,
    filter_generation: u64,
    filters: WorkerFilters,
    counters: Arc<[Padded<GlobalCells>]>,
    stop: Arc<AtomicBool>,
    in_flight: Vec<InFlight>,
    in_flight_count: usize,
    destinations: Vec<libc::sockaddr_in>,
    // Reused per batch (no per-packet allocation).
    received: Vec<(u16, u16, i32)>,
    sends: Vec<(u16, i32)>,
    accepted: Vec<Accepted>,
    decisions: Vec<Decision>,
    views: Vec<&'static [u8]>,
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
    fn new(setup: WorkerSetup, uring: IoUring, bufs: BufRing, raw: OwnedFd) -> Worker {
        let n = setup.sockets.len();
        // SAFETY: an all-zero msghdr (no name, no control, no iovec) is valid for
        // multishot recvmsg, which takes only the name and control lengths from it.
        let msghdr: Box<libc::msghdr> = Box::new(unsafe { std::mem::zeroed() });
        let tables = Cache::new(setup.tables);
        let hops = Cache::new(setup.resolver.hops.clone());
        Worker {
            uring,
            bufs,
            index: setup.index,
            sockets: setup.sockets,
            socket_peers: vec![None; n],
            needs_arm: vec![false; n],
            raw,
            tx_sockets: Vec::new(),
            msghdr,
            tables,
            epochs: Vec::new(),
            epoch: 0,
            resolver: setup.resolver,
            hops,
            hop_generation: u64::MAX,
            routes: FxHashMap::default(),
            filter_slots: setup.filters,
            filter_generation: 0,
            filters: WorkerFilters::default(),
            counters: setup.counters,
            stop: setup.stop,
            in_flight: vec![InFlight::default(); usize::from(BUFFERS)],
            in_flight_count: 0,
            // SAFETY: sockaddr_in is plain data; all-zero is a valid value.
            destinations: vec![unsafe { std::mem::zeroed() }; usize::from(BUFFERS)],
            received: Vec::with_capacity(usize::from(BUFFERS)),
            sends: Vec::with_capacity(usize::from(BUFFERS)),
            accepted: Vec::with_capacity(usize::from(BUFFERS)),
            decisions: Vec::with_capacity(usize::from(BUFFERS)),
            views: Vec::with_capacity(usize::from(BUFFERS)),
            last_stats: Instant::now(),
        }
    }

    fn cells(&self) -> &GlobalCells {
        &self.counters[self.index]
    }

    fn push_sqe(&mut self, entry: squeue::Entry) {
        // SAFETY: every entry points at memory the worker keeps alive until its completion:
        // the msghdr (boxed, lives as long as the worker), receive buffers (held, not
        // recycled, until the send completes) and `destinations[bid]` (same).
        while unsafe { self.uring.submission().push(&entry) }.is_err() {
            if let Err(e) = self.uring.submit() {
                tracing::warn!("worker {}: submit: {e}", self.index);
            }
        }
    }

    fn arm(&mut self, slot: usize) {
        let fd = self.sockets[slot].0.as_raw_fd();
        let entry = opcode::RecvMsgMulti::new(types::Fd(fd), &raw const *self.msghdr, BUFFER_GROUP)
            .flags(libc::MSG_TRUNC as u32)
            .build()
            .user_data(user_data(KIND_RECV, slot as u16, 0));
        self.push_sqe(entry);
        self.needs_arm[slot] = false;
    }

    fn main_loop(&mut self) {
        let timeout = types::Timespec::new().nsec(100_000_000);
        let args = types::SubmitArgs::new().timespec(&timeout);
        while !self.stop.load(Ordering::Relaxed) {
            match self.uring.submitter().submit_with_args(1, &args) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc::ETIME) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => {}
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {}
                Err(e) => {
                    tracing::error!("worker {}: io_uring wait failed: {e}", self.index);
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
            self.refresh_snapshots();
            self.collect_completions();
            self.process_batch();
            self.bufs.publish();
            for slot in 0..self.needs_arm.len() {
                if self.needs_arm[slot] {
                    self.arm(slot);
                }
            }
            if self.last_stats.elapsed() >= STATS_INTERVAL {
                self.read_socket_statistics();
            }
        }
    }

    /// Between batches: new tables, next hops, filters and resolver answers.
    fn refresh_snapshots(&mut self) {
        let tables = self.tables.load().clone();
        if self
            .epochs
            .last()
            .is_none_or(|(_, t)| !Arc::ptr_eq(t, &tables))
        {
            self.epoch += 1;
            for (slot, (_, source)) in self.sockets.iter().enumerate() {
                self.socket_peers[slot] = match source {
                    Source::Ingress => None,
                    Source::Tunnel { device } => tables.peer_by_device(device),
                };
            }
            self.epochs.push((self.epoch, tables));
        }
        if self.in_flight_count == 0 && self.epochs.len() > 1 {
            self.epochs.drain(..self.epochs.len() - 1);
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
            self.filters = set;
        }
    }

    fn collect_completions(&mut self) {
        self.received.clear();
        let mut sends = std::mem::take(&mut self.sends);
        sends.clear();
        for cqe in self.uring.completion() {
            let data = cqe.user_data();
            let kind = data >> 32;
            let slot = ((data >> 16) & 0xffff) as u16;
            let bid = (data & 0xffff) as u16;
            match kind {
                KIND_RECV => {
                    if !cqueue::more(cqe.flags()) {
                        self.needs_arm[usize::from(slot)] = true;
                    }
                    match cqueue::buffer_select(cqe.flags()) {
                        Some(bid) => self.received.push((bid, slot, cqe.result())),
                        None if cqe.result() < 0 && cqe.result() != -libc::ENOBUFS => {
                            tracing::debug!(
                                "worker {}: receive on socket {slot}: {}",
                                self.index,
                                std::io::Error::from_raw_os_error(-cqe.result())
                            );
                        }
                        None => {}
                    }
                }
                KIND_SEND => sends.push((bid, cqe.result())),
                _ => {}
            }
        }
        for &(bid, result) in &sends {
            self.send_completed(bid, result);
        }
        self.sends = sends;
    }

    fn send_completed(&mut self, bid: u16, result: i32) {
        let f = self.in_flight[usize::from(bid)];
        self.in_flight_count -= 1;
        let vip = self
            .epochs
            .iter()
            .find(|(e, _)| *e == f.epoch)
            .and_then(|(_, t)| t.vips.get(f.vip as usize))
            .map(|v| v.counters.clone());
        let cells = &self.counters[self.index];
        if result >= 0 {
            cells.tx_packets.add(1);
            cells.tx_bytes.add(u64::from(f.len));
            if f.fallback {
                cells.tx_fallback_packets.add(1);
            }
            if let Some(v) = vip {
                let c = v.worker(self.index);
                c.packets.add(1);
                c.bytes.add(u64::from(f.len));
            }
        } else {
            let reason = match -result {
                libc::ENETUNREACH | libc::EHOSTUNREACH if f.fallback => DropReason::NoRoute,
                // The raw fallback refuses a packet larger than the route's MTU (the fast
                // path checks the MTU before sending): the same drop as on the fast path.
                libc::EMSGSIZE => DropReason::TooBig,
                _ => DropReason::TxError,
            };
            tracing::debug!(
                "worker {}: send failed: {}",
                self.index,
                std::io::Error::from_raw_os_error(-result)
            );
            cells.drop(reason);
            if let Some(v) = vip {
                v.worker(self.index).drops[reason.index()].add(1);
            }
        }
        self.bufs.recycle(bid);
    }

    fn drop_packet(&mut self, bid: u16, reason: DropReason, vip: Option<VipId>) {
        self.cells().drop(reason);
        if let Some(vip) = vip
            && let Some((_, t)) = self.epochs.last()
            && let Some(v) = t.vips.get(vip as usize)
        {
            v.counters.worker(self.index).drops[reason.index()].add(1);
        }
        self.bufs.recycle(bid);
    }

    fn process_batch(&mut self) {
        let Some((_, tables)) = self.epochs.last().cloned() else {
            return;
        };
        self.accepted.clear();
        let received = std::mem::take(&mut self.received);
        for &(bid, slot, result) in &received {
            self.receive_one(&tables, bid, usize::from(slot), result);
        }
        self.received = received;
        if self.accepted.is_empty() {
            return;
        }
        self.run_filters(&tables);
        let accepted = std::mem::take(&mut self.accepted);
        let hops = self.hops.load().clone();
        for a in &accepted {
            self.forward(a, &hops);
        }
        self.accepted = accepted;
    }

    fn receive_one(&mut self, tables: &Tables, bid: u16, slot: usize, result: i32) {
        if result < 0 {
            self.bufs.recycle(bid);
            return;
        }
        let buffer_size = self.bufs.buffer_size();
        let buf = self.bufs.buffer(bid);
        let Ok(out) =
            types::RecvMsgOut::parse(&buf[..(result as usize).min(buffer_size)], &self.msghdr)
        else {
            self.drop_packet(bid, DropReason::Truncated, None);
            return;
        };
        let payload_len = out.payload_data().len();
        let truncated =
            out.is_payload_truncated() || out.incoming_payload_len() as usize > payload_len;
        let cells = &self.counters[self.index];
        cells.rx_packets.add(1);
        cells
            .rx_bytes
            .add(payload_len.saturating_sub(vnet::LEN) as u64);
        if truncated {
            self.drop_packet(bid, DropReason::Truncated, None);
            return;
        }
        let Some(vnet_header) = VnetHeader::parse(out.payload_data()) else {
            self.drop_packet(bid, DropReason::MalformedOuter, None);
            return;
        };
        let frame_start = RECVMSG_OUT_LEN + vnet::LEN;
        let frame = &buf[frame_start..RECVMSG_OUT_LEN + payload_len];
        let link = match self.socket_peers.get(slot) {
            Some(Some(peer)) => LinkLayer::Decapsulated(*peer),
            Some(None) if matches!(self.sockets[slot].1, Source::Ingress) => {
                LinkLayer::EthernetIpip
            }
            _ => {
                self.drop_packet(bid, DropReason::UnknownPeer, None);
                return;
            }
        };
        match classify(frame, link, tables) {
            Ok(a) => self.accepted.push(Accepted {
                bid,
                vip: a.vip,
                inner: frame_start + a.inner_offset,
                inner_len: a.inner_len,
                inner_in_frame: a.inner_offset,
                vnet: vnet_header,
                destination: a.inner.destination,
                seq: self.accepted.len() as u16,
            }),
            Err(r) => self.drop_packet(bid, r.reason, r.vip),
        }
    }

    /// Runs each VIP's filter on that VIP's packets of the batch; drops what they reject.
    fn run_filters(&mut self, tables: &Tables) {
        if self.filters.by_vip.is_empty() {
            return;
        }
        // Grouped by VIP without reordering any VIP's packets (an unstable sort by VIP alone
        // reordered the packets of a flow whenever a batch was large).
        self.accepted.sort_unstable_by_key(|a| (a.vip, a.seq));
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
            let address = tables.vips[vip as usize].address;
            if let Some(filter) = self.filters.by_vip.get_mut(&address) {
                let mut views = relifetime(std::mem::take(&mut self.views));
                for a in &accepted[start..end] {
                    let ptr = self.bufs.buffer_ptr(a.bid);
                    // SAFETY: the worker holds buffer `a.bid` (received, not recycled); the
                    // range lies inside it, and no mutable view exists during the call.
                    views
                        .push(unsafe { std::slice::from_raw_parts(ptr.add(a.inner), a.inner_len) });
                }
                filter.filter(&views, &mut decisions[start..end]);
                self.views = relifetime(views);
            }
            start = end;
        }
        let mut verdicts = decisions.iter();
        accepted.retain(|a| match verdicts.next() {
            Some(Decision::DropByPlugin) => {
                self.drop_packet(a.bid, DropReason::Plugin, Some(a.vip));
                false
            }
            Some(Decision::DropOnError) => {
                self.drop_packet(a.bid, DropReason::PluginError, Some(a.vip));
                false
            }
            Some(Decision::Pass) | None => true,
        });
        self.accepted = accepted;
        self.decisions = decisions;
    }

    fn forward(&mut self, a: &Accepted, hops: &NextHops) {
        let buf = self.bufs.buffer(a.bid);
        ipv4::decrement_ttl(&mut buf[a.inner..a.inner + a.inner_len]);
        let route = match self.routes.get(&a.destination) {
            Some(Route::Hop(id)) => Some(*id),
            Some(Route::Unreachable) => {
                self.drop_packet(a.bid, DropReason::NoRoute, Some(a.vip));
                return;
            }
            Some(Route::Pending(since)) => {
                if since.elapsed() > ASK_AGAIN {
                    self.ask(a.destination);
                }
                None
            }
            None => {
                self.ask(a.destination);
                None
            }
        };
        let hop = route.and_then(|id| hops.hops.get(id as usize));
        match hop {
            Some(hop) if hop.ethernet.is_some() => {
                if a.inner_len > hop.mtu as usize && !a.vnet.is_gso() {
                    let packet = &self.bufs.buffer(a.bid)[a.inner..a.inner + a.inner_len];
                    super::frag_needed::answer_too_big(packet, hop.mtu, &self.counters[self.index]);
                    self.drop_packet(a.bid, DropReason::TooBig, Some(a.vip));
                    return;
                }
                let ethernet = hop.ethernet.unwrap_or_default();
                let ifindex = hop.ifindex;
                self.send_fast(a, ethernet, ifindex);
            }
            _ => self.send_fallback(a),
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

    fn tx_socket(&mut self, ifindex: u32) -> Option<i32> {
        if let Some((_, fd)) = self.tx_sockets.iter().find(|(i, _)| *i == ifindex) {
            return fd.as_ref().map(|f| f.as_raw_fd());
        }
        let fd = match afpacket::open_transmit(ifindex) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::warn!("worker {}: {e}; using the raw fallback", self.index);
                None
            }
        };
        let raw = fd.as_ref().map(|f| f.as_raw_fd());
        self.tx_sockets.push((ifindex, fd));
        raw
    }

    fn send_fast(&mut self, a: &Accepted, ethernet: [u8; 14], ifindex: u32) {
        let Some(fd) = self.tx_socket(ifindex) else {
            self.send_fallback(a);
            return;
        };
        let frame_len = 14 + a.inner_len;
        let Some(tx_vnet) = a.vnet.for_transmit(a.inner_in_frame, 14, frame_len) else {
            self.drop_packet(a.bid, DropReason::MalformedInner, Some(a.vip));
            return;
        };
        let start = a.inner - TX_PREFIX;
        let buf = self.bufs.buffer(a.bid);
        tx_vnet.write(&mut buf[start..start + vnet::LEN]);
        buf[start + vnet::LEN..a.inner].copy_from_slice(&ethernet);
        let ptr = self.bufs.buffer_ptr(a.bid);
        // SAFETY: `start + vnet::LEN + frame_len` lies inside the held buffer.
        let data = unsafe { ptr.add(start) };
        let entry = opcode::Send::new(types::Fd(fd), data, (vnet::LEN + frame_len) as u32)
            .build()
            .user_data(user_data(KIND_SEND, 0, a.bid));
        self.submit_send(a, entry, false);
    }

    fn send_fallback(&mut self, a: &Accepted) {
        if a.vnet.is_gso() {
            // The raw socket cannot segment, so a super-packet has no usable next hop until
            // the neighbour is resolved (a connection's first, small packets resolve it).
            self.drop_packet(a.bid, DropReason::NoRoute, Some(a.vip));
            return;
        }
        let buf = self.bufs.buffer(a.bid);
        if a.vnet.needs_csum() {
            let start = usize::from(a.vnet.csum_start).wrapping_sub(a.inner_in_frame);
            let packet = &mut buf[a.inner..a.inner + a.inner_len];
            if start >= packet.len()
                || !vnet::finish_checksum(packet, start, usize::from(a.vnet.csum_offset))
            {
                self.drop_packet(a.bid, DropReason::MalformedInner, Some(a.vip));
                return;
            }
        }
        let dest = &mut self.destinations[usize::from(a.bid)];
        dest.sin_family = libc::AF_INET as libc::sa_family_t;
        dest.sin_addr.s_addr = u32::from(a.destination).to_be();
        let dest_ptr = (&raw const *dest).cast::<libc::sockaddr>();
        let ptr = self.bufs.buffer_ptr(a.bid);
        // SAFETY: `a.inner + a.inner_len` lies inside the held buffer.
        let data = unsafe { ptr.add(a.inner) };
        let entry = opcode::Send::new(types::Fd(self.raw.as_raw_fd()), data, a.inner_len as u32)
            .dest_addr(dest_ptr)
            .dest_addr_len(size_of::<libc::sockaddr_in>() as libc::socklen_t)
            .build()
            .user_data(user_data(KIND_SEND, 1, a.bid));
        self.submit_send(a, entry, true);
    }

    fn submit_send(&mut self, a: &Accepted, entry: squeue::Entry, fallback: bool) {
        self.in_flight[usize::from(a.bid)] = InFlight {
            vip: a.vip,
            epoch: self.epoch,
            len: a.inner_len as u32,
            fallback,
        };
        self.in_flight_count += 1;
        self.push_sqe(entry);
    }

    fn read_socket_statistics(&mut self) {
        self.last_stats = Instant::now();
        let mut drops = 0u64;
        for (fd, _) in &self.sockets {
            if let Ok((_, d)) = afpacket::take_statistics(fd) {
                drops += u64::from(d);
            }
        }
        if drops > 0 {
            self.cells().drops[DropReason::RxOverflow.index()].add(drops);
        }
    }
}
