//! The second [`PacketIo`]: AF_XDP. Source 0 is the worker's AF_XDP socket on its ingress
//! queue; a forwarded frame leaves from the same UMEM frame (decapsulated in place: the
//! Ethernet header is written over the end of the outer headers and the descriptor starts
//! there), on the ingress socket itself when the egress interface is the ingress one, else on
//! a transmit socket of the worker's own that shares the UMEM (`XDP_SHARED_UMEM`) on the same
//! queue number of the egress interface — one per worker, so no two workers ever share a
//! single-producer ring. Nothing is copied in user space.
//!
//! What AF_XDP cannot carry goes through the TPACKET path ([`TpacketIo`], sources 1.. and its
//! transmit rings): frames larger than a UMEM frame (the XDP program passes them to the
//! kernel, where the AF_PACKET socket reads them, GSO super-packets included), and packets
//! for an egress interface where no AF_XDP socket can be opened. Receive waits and transmit
//! kicks of both go through the worker's one io_uring.
//!
//! An AF_XDP frame comes with no checksum state (the kernel hands XDP none): the worker
//! recognises a partial checksum itself (`reads_offload_state`), and a frame that leaves
//! by AF_XDP has it finished here, where TPACKET would leave it to the kernel.
//!
//! This module owns the UMEM's frame bookkeeping (each frame is in the fill ring, held by
//! the worker, queued for transmit, or free); it never parses, judges, routes or counts a
//! packet.

use std::collections::VecDeque;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use tungate_packet::vnet;

use crate::afpacket::RxSocket;
use crate::io::{FrameId, PacketIo, Received, Span, Taken, Transmit, TxHeader, TxTag};
use crate::tpacket::TpacketIo;
use crate::xsk::{self, FRAMES, RING_SIZE, Umem, XskSocket};

/// Bytes of an Ethernet header.
const ETHERNET: usize = 14;
/// Receive slots read before they are handed back to the kernel in one store.
const RX_RELEASE_EVERY: u32 = 64;
/// Most kicks in a row for one batch: copy mode sends at most 32 frames per kick.
const MAX_KICKS: usize = 16;

/// What a UMEM frame is doing (a frame can be held and queued for transmit at once: it
/// goes back to the fill ring once it is neither).
const HELD: u8 = 1;
const IN_TX: u8 = 2;

/// One egress interface's transmit side on the AF_XDP path.
enum Egress {
    /// The ingress socket itself (the egress interface is the ingress one).
    Ingress,
    /// A transmit socket sharing the UMEM (index into `XdpIo::shared`).
    Shared(usize),
    /// No AF_XDP socket could be opened: the TPACKET transmit ring.
    Packet,
}

/// A transmit socket and the tags of its queued packets, in order.
struct TxSide {
    socket: XskSocket,
    pending: VecDeque<TxTag>,
}

/// A worker's AF_XDP socket and UMEM, its shared transmit sockets, and the TPACKET path for
/// what AF_XDP cannot carry.
pub(crate) struct XdpIo {
    worker: usize,
    umem: Umem,
    ingress: TxSide,
    shared: Vec<TxSide>,
    egress: Vec<(u32, Egress)>,
    packet: TpacketIo,
    /// Per frame: [`HELD`], [`IN_TX`].
    state: Vec<u8>,
    /// Frames in no ring and not held.
    free: Vec<u32>,
    /// Receive slots read and not yet handed back.
    rx_unreleased: u32,
    /// The AF_XDP sockets' drop count at the last read.
    drops_seen: u64,
    /// Sockets to kick (reused).
    kick_fds: Vec<RawFd>,
    /// Frames taken from the TPACKET sources, and sent through the TPACKET path, since the
    /// worker last asked.
    packet_path: (u64, u64),
}

impl XdpIo {
    /// The I/O of worker `worker`: its AF_XDP `socket` (registered with `umem`, bound to
    /// its ingress queue) and its TPACKET receive `sockets` for frames the XDP program
    /// passes; `batch`: the most packets it queues between two kicks.
    pub(crate) fn new(
        worker: usize,
        umem: Umem,
        socket: XskSocket,
        sockets: Vec<RxSocket>,
        batch: usize,
    ) -> XdpIo {
        let packet = TpacketIo::with_first_poll(worker, sockets, batch, socket.fd.as_raw_fd());
        let mut io = XdpIo {
            worker,
            umem,
            ingress: TxSide {
                socket,
                pending: VecDeque::with_capacity(RING_SIZE as usize),
            },
            shared: Vec::new(),
            egress: Vec::new(),
            packet,
            state: vec![0; FRAMES],
            free: (0..FRAMES as u32).rev().collect(),
            rx_unreleased: 0,
            drops_seen: 0,
            kick_fds: Vec::new(),
            packet_path: (0, 0),
        };
        io.refill();
        io
    }

    /// Moves free frames into the ingress socket's fill ring.
    fn refill(&mut self) {
        let fill = &mut self.ingress.socket.fill;
        let room = fill.free(self.free.len() as u32) as usize;
        if room == 0 || self.free.is_empty() {
            return;
        }
        for _ in 0..room.min(self.free.len()) {
            if let Some(frame) = self.free.pop() {
                fill.push(xsk::address(frame, 0));
            }
        }
        fill.submit();
    }

    /// Frames the kernel finished sending go back.
    fn reap_completions(&mut self) {
        let (state, free) = (&mut self.state, &mut self.free);
        for side in std::iter::once(&mut self.ingress).chain(self.shared.iter_mut()) {
            let mut any = false;
            while let Some(addr) = side.socket.completion.pop() {
                clear(state, free, xsk::frame_of(addr).0, IN_TX);
                any = true;
            }
            if any {
                side.socket.completion.release();
            }
        }
    }

    fn take_xsk(&mut self) -> Option<Taken> {
        let rx = self.ingress.socket.rx.as_mut()?;
        loop {
            let Some(desc) = rx.pop() else {
                if self.rx_unreleased > 0 {
                    rx.release();
                    self.rx_unreleased = 0;
                }
                self.reap_completions();
                self.refill();
                return None;
            };
            self.rx_unreleased += 1;
            if self.rx_unreleased >= RX_RELEASE_EVERY {
                rx.release();
                self.rx_unreleased = 0;
            }
            let (frame, offset) = xsk::frame_of(desc.addr);
            let len = desc.len as usize;
            // The kernel leaves XDP_PACKET_HEADROOM in front: room for an all-zero offload
            // header (an AF_XDP frame carries no offload state), so the worker sees the same
            // layout as from the TPACKET ring.
            let Some(start) = offset.checked_sub(vnet::LEN) else {
                self.free.push(frame);
                continue;
            };
            let Some(bytes) =
                Some(self.umem.bytes_mut(frame, start, vnet::LEN + len)).filter(|b| !b.is_empty())
            else {
                self.free.push(frame);
                continue;
            };
            bytes[..vnet::LEN].fill(0);
            self.state[frame as usize] |= HELD;
            let span = Span {
                frame: FrameId::Ring {
                    source: 0,
                    index: frame,
                },
                offset: start,
                len: vnet::LEN + len,
            };
            return Some(Taken::Frame(Received {
                span,
                wire_len: span.len,
            }));
        }
    }

    /// The AF_XDP transmit side for `ifindex`, opened on first use.
    fn egress_for(&mut self, ifindex: u32) -> &Egress {
        if let Some(at) = self.egress.iter().position(|(i, _)| *i == ifindex) {
            return &self.egress[at].1;
        }
        let egress = if ifindex == self.ingress.socket.ifindex {
            Egress::Ingress
        } else {
            let queue = self.ingress.socket.queue;
            match XskSocket::sharing(&self.ingress.socket, ifindex, queue) {
                Ok(socket) => {
                    self.shared.push(TxSide {
                        socket,
                        pending: VecDeque::with_capacity(RING_SIZE as usize),
                    });
                    Egress::Shared(self.shared.len() - 1)
                }
                Err(e) => {
                    tracing::warn!(
                        "worker {}: {e}; transmitting on it through the TPACKET path",
                        self.worker
                    );
                    Egress::Packet
                }
            }
        };
        self.egress.push((ifindex, egress));
        &self.egress[self.egress.len() - 1].1
    }

    /// Kicks every transmit socket with queued frames until the kernel took them all (or
    /// made no progress), then settles what it took.
    fn kick_xsk(&mut self, settled: &mut dyn FnMut(TxTag, bool)) {
        for _ in 0..MAX_KICKS {
            self.kick_fds.clear();
            for side in std::iter::once(&mut self.ingress).chain(self.shared.iter_mut()) {
                if side.socket.tx.outstanding() > 0 && side.socket.tx_needs_kick() {
                    self.kick_fds.push(side.socket.fd.as_raw_fd());
                }
            }
            if self.kick_fds.is_empty() {
                break;
            }
            let before: u32 = self.outstanding();
            self.packet.calls().kick(&self.kick_fds);
            if self.outstanding() == before {
                break;
            }
        }
        for side in std::iter::once(&mut self.ingress).chain(self.shared.iter_mut()) {
            let left = side.socket.tx.outstanding() as usize;
            while side.pending.len() > left {
                if let Some(tag) = side.pending.pop_front() {
                    settled(tag, true);
                }
            }
        }
        self.reap_completions();
        self.refill();
    }

    /// Transmits through the TPACKET path with `send`, counting what it queued or sent.
    fn count_packet_path(&mut self, send: impl FnOnce(&mut TpacketIo) -> Transmit) -> Transmit {
        let sent = send(&mut self.packet);
        if matches!(sent, Transmit::Queued | Transmit::Sent) {
            self.packet_path.1 += 1;
        }
        sent
    }

    fn outstanding(&mut self) -> u32 {
        std::iter::once(&mut self.ingress)
            .chain(self.shared.iter_mut())
            .map(|s| s.socket.tx.outstanding())
            .sum()
    }
}

/// Clears `flag` of `frame`; a frame neither held nor queued is free again.
fn clear(state: &mut [u8], free: &mut Vec<u32>, frame: u32, flag: u8) {
    if let Some(s) = state.get_mut(frame as usize) {
        let was = *s;
        *s &= !flag;
        if was != 0 && *s == 0 {
            free.push(frame);
        }
    }
}

/// A TPACKET frame id as the worker sees it (its sources come after the AF_XDP one).
fn outer(frame: FrameId) -> FrameId {
    match frame {
        FrameId::Ring { source, index } => FrameId::Ring {
            source: source + 1,
            index,
        },
        FrameId::Large => FrameId::Large,
    }
}

/// The TPACKET path's own id of a frame the worker holds (`None`: an AF_XDP frame).
fn inner(frame: FrameId) -> Option<FrameId> {
    match frame {
        FrameId::Ring { source: 0, .. } => None,
        FrameId::Ring { source, index } => Some(FrameId::Ring {
            source: source - 1,
            index,
        }),
        FrameId::Large => Some(FrameId::Large),
    }
}

fn inner_span(span: Span) -> Option<Span> {
    Some(Span {
        frame: inner(span.frame)?,
        ..span
    })
}

impl PacketIo for XdpIo {
    fn sources(&self) -> usize {
        1 + self.packet.sources()
    }

    fn reads_offload_state(&self, source: usize) -> bool {
        source != 0
    }

    fn take(&mut self, source: usize) -> Option<Taken> {
        if source == 0 {
            return self.take_xsk();
        }
        let taken = self.packet.take(source - 1)?;
        self.packet_path.0 += 1;
        Some(match taken {
            Taken::Frame(r) => Taken::Frame(Received {
                span: Span {
                    frame: outer(r.span.frame),
                    ..r.span
                },
                ..r
            }),
            Taken::Large(frame) => Taken::Large(outer(frame)),
        })
    }

    fn receive_large(&mut self, frame: FrameId) -> Option<Received> {
        self.packet.receive_large(inner(frame)?)
    }

    fn bytes(&self, span: Span) -> &[u8] {
        match (span.frame, inner_span(span)) {
            (FrameId::Ring { index, .. }, None) => self.umem.bytes(index, span.offset, span.len),
            (_, Some(s)) => self.packet.bytes(s),
            _ => &[],
        }
    }

    fn bytes_mut(&mut self, span: Span) -> &mut [u8] {
        match (span.frame, inner_span(span)) {
            (FrameId::Ring { index, .. }, None) => {
                self.umem.bytes_mut(index, span.offset, span.len)
            }
            (_, Some(s)) => self.packet.bytes_mut(s),
            _ => &mut [],
        }
    }

    fn release(&mut self, frame: FrameId) {
        match (frame, inner(frame)) {
            (FrameId::Ring { index, .. }, None) => {
                clear(&mut self.state, &mut self.free, index, HELD)
            }
            (_, Some(f)) => self.packet.release(f),
            _ => {}
        }
    }

    fn egress_ready(&mut self, ifindex: u32) -> bool {
        match self.egress_for(ifindex) {
            Egress::Ingress | Egress::Shared(_) => true,
            Egress::Packet => self.packet.egress_ready(ifindex),
        }
    }

    fn transmit(&mut self, ifindex: u32, packet: Span, header: &TxHeader, tag: TxTag) -> Transmit {
        let FrameId::Ring { source: 0, index } = packet.frame else {
            // A frame of the TPACKET path leaves through its transmit rings.
            let Some(span) = inner_span(packet) else {
                return Transmit::Failed(std::io::Error::other("no such frame"));
            };
            if !self.packet.egress_ready(ifindex) {
                return Transmit::Failed(std::io::Error::other(
                    "no TPACKET transmit ring for the egress interface",
                ));
            }
            return self.count_packet_path(|p| p.transmit(ifindex, span, header, tag));
        };
        let side = match self.egress_for(ifindex) {
            Egress::Ingress => None,
            Egress::Shared(at) => Some(*at),
            Egress::Packet => {
                // Copied into the TPACKET transmit ring from the UMEM frame.
                let buf = self.umem.bytes_mut(index, 0, packet.offset + packet.len);
                if buf.is_empty() {
                    return Transmit::Failed(std::io::Error::other("packet outside its frame"));
                }
                let (offset, packet_io) = (packet.offset, &mut self.packet);
                let sent = packet_io.transmit_buffer(ifindex, buf, offset, header, tag);
                if matches!(sent, Transmit::Queued | Transmit::Sent) {
                    self.packet_path.1 += 1;
                }
                return sent;
            }
        };
        let Some(start) = packet.offset.checked_sub(ETHERNET) else {
            return Transmit::Failed(std::io::Error::other("no room for the Ethernet header"));
        };
        let frame = self.umem.bytes_mut(index, start, ETHERNET + packet.len);
        if frame.is_empty() {
            return Transmit::Failed(std::io::Error::other("packet outside its frame"));
        }
        let tx = match side {
            None => &mut self.ingress,
            Some(at) => &mut self.shared[at],
        };
        if tx.socket.tx.free(1) == 0 {
            return Transmit::Full;
        }
        frame[..ETHERNET].copy_from_slice(&header.ethernet);
        // An AF_XDP frame leaves without offload state: a partial checksum is finished here,
        // as a device would (a super-packet never comes from a UMEM frame).
        if header.vnet.is_gso()
            || (header.vnet.needs_csum()
                && !vnet::finish_checksum(
                    frame,
                    usize::from(header.vnet.csum_start),
                    usize::from(header.vnet.csum_offset),
                ))
        {
            return Transmit::Failed(std::io::Error::other(
                "offload state that an AF_XDP frame cannot carry",
            ));
        }
        tx.socket.tx.push(libc::xdp_desc {
            addr: xsk::address(index, start),
            len: (ETHERNET + packet.len) as u32,
            options: 0,
        });
        tx.socket.tx.submit();
        tx.pending.push_back(tag);
        self.state[index as usize] |= IN_TX;
        Transmit::Queued
    }

    fn kick(&mut self, settled: &mut dyn FnMut(TxTag, bool)) {
        self.kick_xsk(settled);
        self.packet.kick(settled);
    }

    fn wait(&mut self, timeout: Duration) {
        self.reap_completions();
        self.refill();
        self.packet.wait(timeout);
    }

    fn take_packet_path_counts(&mut self) -> (u64, u64) {
        std::mem::take(&mut self.packet_path)
    }

    fn take_receive_drops(&mut self) -> u64 {
        let now = self.ingress.socket.dropped().unwrap_or(self.drops_seen);
        let new = now.saturating_sub(self.drops_seen);
        self.drops_seen = now;
        new + self.packet.take_receive_drops()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_ids_of_the_tpacket_path_shift_by_the_af_xdp_source() {
        let tpacket = FrameId::Ring {
            source: 0,
            index: 9,
        };
        let seen = outer(tpacket);
        assert_eq!(
            seen,
            FrameId::Ring {
                source: 1,
                index: 9
            }
        );
        assert_eq!(inner(seen), Some(tpacket));
        assert_eq!(
            inner(FrameId::Ring {
                source: 0,
                index: 3
            }),
            None,
            "AF_XDP"
        );
        assert_eq!(inner(FrameId::Large), Some(FrameId::Large));
        assert_eq!(outer(FrameId::Large), FrameId::Large);
    }

    #[test]
    fn a_frame_is_free_again_once_neither_held_nor_queued() {
        let mut state = vec![0u8; 4];
        let mut free = Vec::new();
        state[2] = HELD | IN_TX;
        clear(&mut state, &mut free, 2, HELD);
        assert!(free.is_empty(), "still queued for transmit");
        clear(&mut state, &mut free, 2, IN_TX);
        assert_eq!(free, [2], "sent and released");
        state[1] = IN_TX;
        clear(&mut state, &mut free, 1, IN_TX);
        assert_eq!(free, [2, 1], "completed after its release");
        clear(&mut state, &mut free, 1, IN_TX);
        assert_eq!(free, [2, 1], "a second completion frees nothing twice");
        clear(&mut state, &mut free, 99, HELD);
        assert_eq!(free, [2, 1], "an address outside the UMEM is ignored");
    }
}
