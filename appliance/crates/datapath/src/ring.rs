//! AF_PACKET `TPACKET_V2` rings mapped into a worker: a receive ring the kernel fills from
//! softirq context (no socket queue, no `recvmsg`, no skb clone per packet) and a transmit
//! ring the worker fills and the kernel drains on one `send()` per batch.
//!
//! This module owns the mappings and the frame-status handshake with the kernel (an
//! acquire load before a frame is read, a release store when it is handed back); it never
//! interprets the packet bytes. A receive frame is either the kernel's or held by the worker
//! between [`RxRing::take_filled`] and [`RxRing::release`]; a transmit frame is either free, filled
//! by the worker and requested, or being sent by the kernel (whose skb may still reference
//! it until it is freed, so a frame is reused only once the kernel marked it available).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// Bytes per frame, both rings: a 1500-byte IP packet with its Ethernet and offload headers
/// fits; larger packets (GSO super-packets, jumbo frames) take the copy path.
pub(crate) const FRAME_SIZE: usize = 2048;
/// Bytes per ring block (a multiple of the page size holding whole frames).
const BLOCK_SIZE: usize = 64 << 10;
/// Frames of a receive ring (4 MiB).
pub(crate) const RX_FRAMES: usize = 2048;
/// Frames of a transmit ring (2 MiB).
pub(crate) const TX_FRAMES: usize = 1024;
/// `TPACKET_V2` of `enum tpacket_versions`.
const TPACKET_V2: libc::c_int = 1;
/// Where a transmit frame's data starts (the kernel's default without `PACKET_TX_HAS_OFF`:
/// `TPACKET2_HDRLEN - sizeof(struct sockaddr_ll)`).
const TX_DATA_OFFSET: usize = libc::TPACKET2_HDRLEN - size_of::<libc::sockaddr_ll>();
/// Largest frame (offload header included) a transmit frame holds.
pub(crate) const TX_CAPACITY: usize = FRAME_SIZE - TX_DATA_OFFSET;

/// A ring's memory, unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; the worker that owns the ring is the only
// user-space accessor.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Asks the kernel for a `TPACKET_V2` ring of `frames` frames on `fd` (option `which`)
    /// and maps it. One ring per socket.
    fn create(fd: &OwnedFd, which: libc::c_int, frames: usize) -> io::Result<Mapping> {
        crate::sockopt::set(fd, libc::SOL_PACKET, libc::PACKET_VERSION, &TPACKET_V2)?;
        let req = libc::tpacket_req {
            tp_block_size: BLOCK_SIZE as libc::c_uint,
            tp_block_nr: (frames * FRAME_SIZE / BLOCK_SIZE) as libc::c_uint,
            tp_frame_size: FRAME_SIZE as libc::c_uint,
            tp_frame_nr: frames as libc::c_uint,
        };
        crate::sockopt::set(fd, libc::SOL_PACKET, which, &req)?;
        let len = frames * FRAME_SIZE;
        // SAFETY: maps the ring the kernel just set up on fd (the socket's only ring).
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, len })
    }

    fn frame(&self, index: usize) -> *mut u8 {
        debug_assert!(index * FRAME_SIZE < self.len);
        // SAFETY: callers pass index < frames, so the offset stays inside the mapping.
        unsafe { self.ptr.as_ptr().add(index * FRAME_SIZE) }
    }

    fn status(&self, index: usize) -> &AtomicU32 {
        // SAFETY: tp_status is the first, 4-byte aligned field of the frame header at the
        // start of each frame; the kernel reads and writes it concurrently, hence atomic.
        unsafe { AtomicU32::from_ptr(self.frame(index).cast::<u32>()) }
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are exactly the mapping made in `create`, unmapped only here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// One received frame, held by the worker until released.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RxFrame {
    /// The frame's index in its ring.
    pub(crate) index: u32,
    /// Its `tp_status` bits (`TP_STATUS_COPY`, `TP_STATUS_CSUMNOTREADY`, ...).
    pub(crate) status: u32,
    /// Offset of the captured bytes (the offload header, then the frame) in the frame.
    pub(crate) offset: usize,
    /// Captured length, offload header included.
    pub(crate) len: usize,
    /// The frame's length on the wire (larger than captured when truncated).
    pub(crate) wire_len: usize,
}

/// A receive ring (`PACKET_RX_RING`) with the offload header in front of each frame.
pub(crate) struct RxRing {
    map: Mapping,
    frames: usize,
    head: usize,
    vnet_len: usize,
}

impl RxRing {
    /// Sets up the ring on `fd`. The socket must have `PACKET_VNET_HDR` set already if
    /// `vnet_len` is not 0, and be bound after this (so no frame is queued outside it).
    pub(crate) fn create(fd: &OwnedFd, vnet_len: usize) -> io::Result<RxRing> {
        // A frame that does not fit goes to the socket's receive queue, marked TP_STATUS_COPY.
        crate::sockopt::set(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_COPY_THRESH,
            &1 as &libc::c_int,
        )?;
        let map = Mapping::create(fd, libc::PACKET_RX_RING, RX_FRAMES)?;
        Ok(RxRing {
            map,
            frames: RX_FRAMES,
            head: 0,
            vnet_len,
        })
    }

    /// The next frame the kernel has filled, if any; the worker holds it until
    /// [`Self::release`]. Frames come in ring order.
    pub(crate) fn take_filled(&mut self) -> Option<RxFrame> {
        let index = self.head;
        let status = self.map.status(index).load(Ordering::Acquire);
        if status & libc::TP_STATUS_USER == 0 {
            return None;
        }
        self.head = (self.head + 1) % self.frames;
        let base = self.map.frame(index);
        // SAFETY: the frame is the user's now (TP_STATUS_USER, read with acquire), so its
        // header is fully written; it lies at the start of the frame, inside the mapping.
        let h = unsafe { std::ptr::read(base.cast::<libc::tpacket2_hdr>()) };
        let mac = usize::from(h.tp_mac);
        let start = mac.saturating_sub(self.vnet_len);
        let end = (mac + h.tp_snaplen as usize).min(FRAME_SIZE);
        Some(RxFrame {
            index: index as u32,
            status,
            offset: start.min(end),
            len: end.saturating_sub(start),
            wire_len: self.vnet_len + h.tp_len as usize,
        })
    }

    /// Whether frame `index` exists and is the worker's (taken, not released).
    fn held(&self, index: u32) -> bool {
        (index as usize) < self.frames
            && self.map.status(index as usize).load(Ordering::Acquire) & libc::TP_STATUS_USER != 0
    }

    /// Bytes `offset..offset + len` of held frame `index` (cut at the frame's end); empty
    /// when the frame is not held. Borrowed from the ring, so they cannot outlive it or a
    /// [`Self::release`].
    pub(crate) fn bytes(&self, index: u32, offset: usize, len: usize) -> &[u8] {
        if !self.held(index) || offset >= FRAME_SIZE {
            return &[];
        }
        let len = len.min(FRAME_SIZE - offset);
        // SAFETY: the frame is the worker's (TP_STATUS_USER, read with acquire: the kernel
        // neither writes nor reads it until it is released, which takes `&mut self`);
        // offset + len <= FRAME_SIZE keeps the slice inside it.
        unsafe { std::slice::from_raw_parts(self.map.frame(index as usize).add(offset), len) }
    }

    /// Like [`Self::bytes`], to change them in place.
    pub(crate) fn bytes_mut(&mut self, index: u32, offset: usize, len: usize) -> &mut [u8] {
        if !self.held(index) || offset >= FRAME_SIZE {
            return &mut [];
        }
        let len = len.min(FRAME_SIZE - offset);
        // SAFETY: as in `bytes`; `&mut self` makes this the only slice of the ring alive.
        unsafe { std::slice::from_raw_parts_mut(self.map.frame(index as usize).add(offset), len) }
    }

    /// Hands frame `index` back to the kernel.
    pub(crate) fn release(&mut self, index: u32) {
        self.map
            .status(index as usize)
            .store(libc::TP_STATUS_KERNEL, Ordering::Release);
    }
}

/// A transmit ring (`PACKET_TX_RING`) on a socket with the offload header and qdisc bypass.
pub(crate) struct TxRing {
    map: Mapping,
    frames: usize,
    head: usize,
    /// Frames requested since the last flush, in request order.
    pending: Vec<u32>,
}

impl TxRing {
    /// Sets up the ring on `fd` (which must not be bound for receiving anything).
    pub(crate) fn create(fd: &OwnedFd) -> io::Result<TxRing> {
        // A malformed frame is skipped instead of stopping the ring for good.
        crate::sockopt::set(fd, libc::SOL_PACKET, libc::PACKET_LOSS, &1 as &libc::c_int)?;
        let map = Mapping::create(fd, libc::PACKET_TX_RING, TX_FRAMES)?;
        Ok(TxRing {
            map,
            frames: TX_FRAMES,
            head: 0,
            pending: Vec::with_capacity(TX_FRAMES),
        })
    }

    /// Fills the next free frame with `len` bytes written by `fill` (at most
    /// [`TX_CAPACITY`]) and requests it. `None` (nothing requested) when that frame is
    /// still the kernel's (every frame in flight) or `len` does not fit.
    pub(crate) fn push(&mut self, len: usize, fill: impl FnOnce(&mut [u8])) -> Option<()> {
        if len > TX_CAPACITY {
            return None;
        }
        let index = self.head;
        if self.map.status(index).load(Ordering::Acquire) != libc::TP_STATUS_AVAILABLE {
            return None;
        }
        self.head = (self.head + 1) % self.frames;
        let base = self.map.frame(index);
        // SAFETY: the frame is available (acquire above), so the kernel no longer reads
        // it; TX_DATA_OFFSET + len <= FRAME_SIZE keeps the slice inside the frame.
        let data = unsafe { std::slice::from_raw_parts_mut(base.add(TX_DATA_OFFSET), len) };
        fill(data);
        set_tx_len(base, len as u32);
        self.map
            .status(index)
            .store(libc::TP_STATUS_SEND_REQUEST, Ordering::Release);
        self.pending.push(index as u32);
        Some(())
    }

    /// Whether frames were requested since the last [`TxRing::settle`].
    pub(crate) fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// After the kick (a zero-length send on the ring's socket) that asked the kernel to
    /// send every requested frame: calls `outcome` for each, in request order, with whether
    /// the kernel took it. A frame it did not take (the send failed) is cancelled: its
    /// length is zeroed so that the next send skips it as malformed (withdrawing it would
    /// stop the kernel's ring head on it).
    pub(crate) fn settle(&mut self, mut outcome: impl FnMut(usize, bool)) {
        for (position, &index) in self.pending.iter().enumerate() {
            let taken = self.map.status(index as usize).load(Ordering::Acquire)
                != libc::TP_STATUS_SEND_REQUEST;
            if !taken {
                set_tx_len(self.map.frame(index as usize), 0);
            }
            outcome(position, taken);
        }
        self.pending.clear();
    }
}

/// Writes a transmit frame's `tp_len`.
fn set_tx_len(frame: *mut u8, len: u32) {
    // SAFETY: tp_len is the second field of the frame header (offset 4, 4-byte aligned);
    // callers own the frame (available, or requested and not taken by the kernel).
    unsafe { frame.add(4).cast::<u32>().write(len) };
}

// The geometry, checked at compile time: a receive frame (header, sockaddr_ll, padding to
// 16, offload header, then Ethernet) and a transmit frame (offload header, Ethernet) each
// hold a 1500-byte IP packet; blocks hold whole frames and rings whole blocks.
const _: () = assert!((libc::TPACKET2_HDRLEN + 16).next_multiple_of(16) + 10 + 1500 <= FRAME_SIZE);
const _: () = assert!(10 + 14 + 1500 <= TX_CAPACITY);
const _: () = assert!(BLOCK_SIZE.is_multiple_of(FRAME_SIZE));
const _: () = assert!((RX_FRAMES * FRAME_SIZE).is_multiple_of(BLOCK_SIZE));
const _: () = assert!((TX_FRAMES * FRAME_SIZE).is_multiple_of(BLOCK_SIZE));
