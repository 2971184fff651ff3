//! The worker's packet I/O seam: how a worker receives batches of frames, reaches the bytes
//! of the frames it holds, gives them back, transmits packets on an egress interface, kicks
//! the transmit side and sleeps.
//!
//! [`PacketIo`] is implemented by the AF_PACKET `TPACKET_V2` rings ([`crate::tpacket`]); an
//! AF_XDP implementation can follow without touching the worker. This module only defines
//! the contract and its small value types; it never opens a socket, never touches packet
//! bytes and never counts anything.

use std::time::Duration;

use tungate_packet::vnet::VnetHeader;

use crate::tables::VipId;

/// A frame the worker holds from the moment it takes it until it gives it back with
/// [`PacketIo::release`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameId {
    /// Frame `index` of receive source `source`.
    Ring {
        /// The receive source (its position among the worker's sources).
        source: u16,
        /// The frame's index in that source's ring.
        index: u32,
    },
    /// The one buffer for a packet larger than a ring frame ([`PacketIo::receive_large`]).
    Large,
}

/// Where some bytes lie in a held frame: the whole received frame (offload header first),
/// or the inner IPv4 packet in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    /// The frame.
    pub(crate) frame: FrameId,
    /// The first byte's offset in the frame's memory.
    pub(crate) offset: usize,
    /// The number of bytes.
    pub(crate) len: usize,
}

/// A received frame the worker now holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Received {
    /// The captured bytes: the offload header, then the frame.
    pub(crate) span: Span,
    /// The length on the wire, offload header included (larger than `span.len` when the
    /// frame was cut).
    pub(crate) wire_len: usize,
}

/// What taking from a receive source gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Taken {
    /// A frame, held until released.
    Frame(Received),
    /// A packet too large for a frame (a GSO super-packet): the frame is held, the packet
    /// waits whole elsewhere. Finish the current batch first (the order within a flow
    /// holds), then read it with [`PacketIo::receive_large`].
    Large(FrameId),
}

/// The headers written in front of a packet for transmit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TxHeader {
    /// The offload header for the transmitted frame (see [`VnetHeader::for_transmit`]).
    pub(crate) vnet: VnetHeader,
    /// The Ethernet header: next-hop MAC, own MAC, IPv4.
    pub(crate) ethernet: [u8; 14],
}

/// What the worker needs to count a transmitted packet once the kernel took it or not;
/// the I/O keeps it with the packet and hands it back from [`PacketIo::kick`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TxTag {
    /// The VIP whose reply it is.
    pub(crate) vip: VipId,
    /// The inner packet's length.
    pub(crate) len: u32,
}

/// What became of a packet handed to [`PacketIo::transmit`].
#[derive(Debug)]
pub(crate) enum Transmit {
    /// Queued; its outcome comes with the next [`PacketIo::kick`].
    Queued,
    /// Not queued: every transmit slot is still in flight (the interface is slower than the
    /// input).
    Full,
    /// Sent on its own right away (a packet too large for a transmit slot).
    Sent,
    /// Sending it on its own failed.
    Failed(std::io::Error),
}

/// A worker's packet I/O. Frames come in batches from its receive sources and stay held
/// (their bytes stable and the worker's alone) until released; packets leave on an egress
/// interface with a header the worker chose.
pub(crate) trait PacketIo {
    /// Number of receive sources.
    fn sources(&self) -> usize;

    /// The next frame of receive source `source`, if one is waiting.
    fn take(&mut self, source: usize) -> Option<Taken>;

    /// Whether the offload header in front of a frame of `source` is the kernel's (the
    /// TPACKET rings: it says whether the checksum is still to be finished), or an empty one
    /// written in its place (AF_XDP: XDP gets no checksum state, so the worker recognises a
    /// partial checksum itself).
    fn reads_offload_state(&self, source: usize) -> bool {
        let _ = source;
        true
    }

    /// Reads the packet that [`Taken::Large`] announced into the large-packet buffer
    /// (held as [`FrameId::Large`] until the next call) and gives back the frame that
    /// announced it. `None`: the packet was gone.
    fn receive_large(&mut self, frame: FrameId) -> Option<Received>;

    /// The bytes of `span` in a held frame (empty if the frame is not held).
    fn bytes(&self, span: Span) -> &[u8];

    /// The bytes of `span` in a held frame, to change them in place.
    fn bytes_mut(&mut self, span: Span) -> &mut [u8];

    /// Gives a held ring frame back to the receive side.
    fn release(&mut self, frame: FrameId);

    /// Whether packets can be transmitted on interface `ifindex` (its transmit side is
    /// opened on first use; `false`: it cannot be, use the raw fallback).
    fn egress_ready(&mut self, ifindex: u32) -> bool;

    /// Transmits the packet at `packet` (in a held frame; its TTL already decremented)
    /// behind `header` on interface `ifindex` (which [`Self::egress_ready`] accepted).
    fn transmit(&mut self, ifindex: u32, packet: Span, header: &TxHeader, tag: TxTag) -> Transmit;

    /// Asks the kernel to send every queued packet, then calls `settled` for each with
    /// whether the kernel took it.
    fn kick(&mut self, settled: &mut dyn FnMut(TxTag, bool));

    /// Sleeps until a receive source has something or `timeout` passed.
    fn wait(&mut self, timeout: Duration);

    /// Frames the receive side lost for lack of room since the last call.
    fn take_receive_drops(&mut self) -> u64;

    /// Packets received and transmitted through the TPACKET path beside AF_XDP since the
    /// last call (an I/O without such a path has none).
    fn take_packet_path_counts(&mut self) -> (u64, u64) {
        (0, 0)
    }
}
