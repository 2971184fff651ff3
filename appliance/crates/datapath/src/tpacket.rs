//! The first [`PacketIo`]: AF_PACKET `TPACKET_V2` rings. Receive sockets with mapped rings
//! (one per source), the large-packet buffer for what does not fit a ring frame (read from
//! the socket's queue), the transmit rings of the egress interfaces ([`Egresses`]) and the
//! loop's system calls on the worker's io_uring ([`LoopCalls`]).
//!
//! This module owns those sockets, rings and buffers and hands the worker their bytes; it
//! never parses, judges, routes or counts a packet.

use std::os::fd::{AsRawFd, RawFd};
use std::time::Duration;

use crate::afpacket::{self, RxSocket};
use crate::egress::{Egresses, TX_PREFIX};
use crate::io::{FrameId, PacketIo, Received, Span, Taken, Transmit, TxHeader, TxTag};
use crate::uring::LoopCalls;

/// Bytes of the buffer for packets too large for a ring frame: a 64 KB GSO super-packet with
/// its offload, Ethernet and outer IPv4 headers.
const LARGE_BUFFER: usize = 68 * 1024;
/// Room in front of the large-packet buffer for a new offload and Ethernet header.
const LARGE_HEADROOM: usize = 64;
const _: () = assert!(TX_PREFIX <= LARGE_HEADROOM);

/// A worker's AF_PACKET receive sockets, large-packet buffer and transmit rings.
pub(crate) struct TpacketIo {
    sockets: Vec<RxSocket>,
    egress: Egresses,
    calls: LoopCalls,
    /// The large-packet buffer: [`LARGE_HEADROOM`] bytes, then the packet (allocated on
    /// first use).
    large: Vec<u8>,
}

impl TpacketIo {
    /// The I/O of worker `worker` over its receive `sockets` (in source order); `batch`: the
    /// most packets it queues between two kicks.
    pub(crate) fn new(worker: usize, sockets: Vec<RxSocket>, batch: usize) -> TpacketIo {
        Self::polling(worker, sockets, batch, None)
    }

    /// Like [`Self::new`], its waits also watching `first` (another receive socket of the
    /// worker: the AF_XDP one, whose I/O wraps this one).
    pub(crate) fn with_first_poll(
        worker: usize,
        sockets: Vec<RxSocket>,
        batch: usize,
        first: RawFd,
    ) -> TpacketIo {
        Self::polling(worker, sockets, batch, Some(first))
    }

    fn polling(
        worker: usize,
        sockets: Vec<RxSocket>,
        batch: usize,
        first: Option<RawFd>,
    ) -> TpacketIo {
        let receive_fds: Vec<_> = first
            .into_iter()
            .chain(sockets.iter().map(|s| s.fd.as_raw_fd()))
            .collect();
        TpacketIo {
            calls: LoopCalls::new(worker, &receive_fds),
            sockets,
            egress: Egresses::new(worker, batch),
            large: Vec::new(),
        }
    }
}

impl TpacketIo {
    /// The worker's loop calls (its io_uring), to kick other sockets too.
    pub(crate) fn calls(&mut self) -> &mut LoopCalls {
        &mut self.calls
    }

    /// Transmits the inner packet `buf[start..]` (in memory of another I/O, with room for
    /// the headers in front) behind `header` on `ifindex` through the transmit rings.
    pub(crate) fn transmit_buffer(
        &mut self,
        ifindex: u32,
        buf: &mut [u8],
        start: usize,
        header: &TxHeader,
        tag: TxTag,
    ) -> Transmit {
        self.egress
            .transmit(&mut self.calls, ifindex, buf, start, header, tag)
    }
}

impl PacketIo for TpacketIo {
    fn sources(&self) -> usize {
        self.sockets.len()
    }

    fn take(&mut self, source: usize) -> Option<Taken> {
        let frame = self.sockets.get_mut(source)?.ring.take_filled()?;
        let id = FrameId::Ring {
            source: source as u16,
            index: frame.index,
        };
        if frame.status & libc::TP_STATUS_COPY != 0 {
            return Some(Taken::Large(id));
        }
        Some(Taken::Frame(Received {
            span: Span {
                frame: id,
                offset: frame.offset,
                len: frame.len,
            },
            wire_len: frame.wire_len,
        }))
    }

    fn receive_large(&mut self, frame: FrameId) -> Option<Received> {
        let FrameId::Ring { source, .. } = frame else {
            return None;
        };
        let socket = self.sockets.get(usize::from(source))?;
        if self.large.is_empty() {
            self.large = vec![0; LARGE_HEADROOM + LARGE_BUFFER];
        }
        let buf = &mut self.large[LARGE_HEADROOM..];
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe {
            libc::recv(
                socket.fd.as_raw_fd(),
                buf.as_mut_ptr().cast(),
                buf.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        self.release(frame);
        // A negative count: the copy went missing (cannot happen while the ring hands out
        // frames in order).
        let wire_len = usize::try_from(n).ok()?;
        Some(Received {
            span: Span {
                frame: FrameId::Large,
                offset: LARGE_HEADROOM,
                len: wire_len.min(LARGE_BUFFER),
            },
            wire_len,
        })
    }

    fn bytes(&self, span: Span) -> &[u8] {
        match span.frame {
            FrameId::Ring { source, index } => match self.sockets.get(usize::from(source)) {
                Some(s) => s.ring.bytes(index, span.offset, span.len),
                None => &[],
            },
            FrameId::Large => self
                .large
                .get(span.offset..)
                .and_then(|b| b.get(..span.len))
                .unwrap_or_default(),
        }
    }

    fn bytes_mut(&mut self, span: Span) -> &mut [u8] {
        match span.frame {
            FrameId::Ring { source, index } => match self.sockets.get_mut(usize::from(source)) {
                Some(s) => s.ring.bytes_mut(index, span.offset, span.len),
                None => &mut [],
            },
            FrameId::Large => self
                .large
                .get_mut(span.offset..)
                .and_then(|b| b.get_mut(..span.len))
                .unwrap_or_default(),
        }
    }

    fn release(&mut self, frame: FrameId) {
        if let FrameId::Ring { source, index } = frame
            && let Some(s) = self.sockets.get_mut(usize::from(source))
        {
            s.ring.release(index);
        }
    }

    fn egress_ready(&mut self, ifindex: u32) -> bool {
        self.egress.ready(ifindex)
    }

    fn transmit(&mut self, ifindex: u32, packet: Span, header: &TxHeader, tag: TxTag) -> Transmit {
        // The packet with the memory in front of it, where a packet sent on its own gets
        // its headers written.
        let buf = match packet.frame {
            FrameId::Ring { source, index } => match self.sockets.get_mut(usize::from(source)) {
                Some(s) => s.ring.bytes_mut(index, 0, packet.offset + packet.len),
                None => &mut [],
            },
            FrameId::Large => self
                .large
                .get_mut(..packet.offset + packet.len)
                .unwrap_or_default(),
        };
        if buf.len() != packet.offset + packet.len {
            return Transmit::Failed(std::io::Error::other("packet outside its frame"));
        }
        self.egress
            .transmit(&mut self.calls, ifindex, buf, packet.offset, header, tag)
    }

    fn kick(&mut self, settled: &mut dyn FnMut(TxTag, bool)) {
        self.egress.kick(&mut self.calls, settled);
    }

    fn wait(&mut self, timeout: Duration) {
        self.calls.wait(timeout);
    }

    fn take_receive_drops(&mut self) -> u64 {
        self.sockets
            .iter()
            .filter_map(|s| afpacket::take_statistics(&s.fd).ok())
            .map(|(_, drops)| u64::from(drops))
            .sum()
    }
}
