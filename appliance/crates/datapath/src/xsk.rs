//! AF_XDP sockets over one UMEM: the UMEM (a worker's frame memory, registered with the
//! kernel), the four kinds of rings (fill and completion: frame addresses; receive and
//! transmit: descriptors) and the sockets that own them — the one that registers the UMEM
//! and receives on an ingress queue, and transmit-only sockets that share its UMEM
//! (`XDP_SHARED_UMEM`) on other devices, each with its own fill and completion rings.
//!
//! This module owns the mappings and the producer/consumer handshake with the kernel (an
//! acquire load of the other side's index before descriptors are read or slots reused, a
//! release store of ours once they are written or read); it never decides what a frame
//! holds or where it goes, and never counts packets.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, Ordering};

/// How long a bind may find its queue still held by a socket the kernel is releasing.
const BIND_BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Bytes per UMEM frame (chunk).
pub(crate) const FRAME_SIZE: usize = 2048;
/// Bytes the kernel leaves free in front of a received packet in its frame
/// (`XDP_PACKET_HEADROOM`).
pub(crate) const KERNEL_HEADROOM: usize = 256;
/// The largest frame (Ethernet header included) a UMEM frame receives: what the XDP program
/// may redirect; larger frames must be passed to the kernel (the TPACKET path reads them).
pub const MAX_REDIRECT_FRAME: usize = FRAME_SIZE - KERNEL_HEADROOM;
/// Entries of every ring (a power of two).
pub(crate) const RING_SIZE: u32 = 2048;
/// Frames of a worker's UMEM: a full fill ring plus a full transmit ring in flight.
pub(crate) const FRAMES: usize = 2 * RING_SIZE as usize;

/// A socket or its UMEM could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("AF_XDP socket on interface index {ifindex} queue {queue}: {what}: {source}")]
pub struct XskError {
    /// What failed (the call or socket option).
    pub(crate) what: &'static str,
    /// The interface index.
    pub(crate) ifindex: u32,
    /// The queue.
    pub(crate) queue: u32,
    /// The error from the kernel.
    pub(crate) source: io::Error,
}

/// Memory mapped from the kernel (a ring) or anonymous (the UMEM), unmapped on drop.
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is plain shared memory; the worker that owns it is its only
// user-space accessor.
unsafe impl Send for Mapping {}

impl Mapping {
    fn new(fd: RawFd, len: usize, offset: libc::off_t) -> io::Result<Mapping> {
        let flags = if fd < 0 {
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE
        } else {
            libc::MAP_SHARED | libc::MAP_POPULATE
        };
        // SAFETY: a fresh mapping chosen by the kernel; nothing else refers to it yet.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                flags,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        Ok(Mapping { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr and len are those of a mapping made by `new` and unmapped only here.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// A worker's UMEM: [`FRAMES`] frames of [`FRAME_SIZE`] bytes.
pub(crate) struct Umem {
    area: Mapping,
}

impl Umem {
    fn new() -> io::Result<Umem> {
        Ok(Umem {
            area: Mapping::new(-1, FRAMES * FRAME_SIZE, 0)?,
        })
    }

    /// The bytes `offset..offset + len` of frame `frame` (empty if outside the frame).
    pub(crate) fn bytes(&self, frame: u32, offset: usize, len: usize) -> &[u8] {
        match Self::range(frame, offset, len) {
            // SAFETY: the range lies inside the UMEM (checked); the caller holds the frame,
            // so the kernel does not write it meanwhile.
            Some(start) => unsafe {
                std::slice::from_raw_parts(self.area.ptr.as_ptr().add(start), len)
            },
            None => &[],
        }
    }

    /// Like [`Self::bytes`], to change them.
    pub(crate) fn bytes_mut(&mut self, frame: u32, offset: usize, len: usize) -> &mut [u8] {
        match Self::range(frame, offset, len) {
            // SAFETY: as in `bytes`, and `&mut self` makes the slice the only one.
            Some(start) => unsafe {
                std::slice::from_raw_parts_mut(self.area.ptr.as_ptr().add(start), len)
            },
            None => &mut [],
        }
    }

    fn range(frame: u32, offset: usize, len: usize) -> Option<usize> {
        let frame = frame as usize;
        (frame < FRAMES && offset.checked_add(len)? <= FRAME_SIZE)
            .then_some(frame * FRAME_SIZE + offset)
    }
}

/// The frame holding UMEM address `addr`, and the address's offset in it.
pub(crate) fn frame_of(addr: u64) -> (u32, usize) {
    (
        (addr / FRAME_SIZE as u64) as u32,
        (addr % FRAME_SIZE as u64) as usize,
    )
}

/// The UMEM address of byte `offset` of frame `frame`.
pub(crate) fn address(frame: u32, offset: usize) -> u64 {
    u64::from(frame) * FRAME_SIZE as u64 + offset as u64
}

/// One mapped ring of `T` (a frame address or an [`libc::xdp_desc`]).
pub(crate) struct Ring<T: Copy> {
    _map: Mapping,
    producer: NonNull<AtomicU32>,
    consumer: NonNull<AtomicU32>,
    /// The ring's flags word (`XDP_RING_NEED_WAKEUP`), written by the kernel.
    flags: NonNull<AtomicU32>,
    descs: NonNull<T>,
    /// This side's index (producer of a fill or transmit ring, consumer of the others).
    local: u32,
    /// The other side's index as last read.
    other: u32,
}

// SAFETY: the ring is shared memory with the kernel only; the worker that owns it is its
// only user-space accessor.
unsafe impl<T: Copy> Send for Ring<T> {}

impl<T: Copy> Ring<T> {
    fn map(fd: &OwnedFd, offsets: &libc::xdp_ring_offset, page: u64) -> io::Result<Ring<T>> {
        let len = offsets.desc as usize + RING_SIZE as usize * size_of::<T>();
        let map = Mapping::new(fd.as_raw_fd(), len, page as libc::off_t)?;
        let at = |offset: u64| {
            // SAFETY: the kernel's offsets lie inside the mapping it sized.
            unsafe { NonNull::new_unchecked(map.ptr.as_ptr().add(offset as usize)) }
        };
        let producer: NonNull<AtomicU32> = at(offsets.producer).cast();
        let consumer: NonNull<AtomicU32> = at(offsets.consumer).cast();
        let flags: NonNull<AtomicU32> = at(offsets.flags).cast();
        let descs: NonNull<T> = at(offsets.desc).cast();
        // SAFETY: the indices are aligned u32s in the mapping, written by the kernel
        // atomically.
        let (p, c) = unsafe {
            (
                producer.as_ref().load(Ordering::Acquire),
                consumer.as_ref().load(Ordering::Acquire),
            )
        };
        Ok(Ring {
            _map: map,
            producer,
            consumer,
            flags,
            descs,
            local: 0,
            other: 0,
        }
        .started(p, c))
    }

    /// Both indices start at 0 on a new ring; a defensive read keeps them right otherwise.
    fn started(mut self, producer: u32, consumer: u32) -> Self {
        self.local = producer.max(consumer);
        self.other = self.local;
        self
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (see `map`).
        unsafe { self.producer.as_ref() }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: points into the live mapping (see `map`).
        unsafe { self.consumer.as_ref() }
    }

    /// Whether the kernel asks to be woken (`XDP_RING_NEED_WAKEUP`) to go on with this ring:
    /// a transmit ring that needs a kick to be sent, a fill ring whose driver ran out of
    /// frames. Only meaningful on a socket bound with `XDP_USE_NEED_WAKEUP`.
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: points into the live mapping (see `map`); the kernel writes it atomically.
        let flags = unsafe { self.flags.as_ref() };
        flags.load(Ordering::Acquire) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    fn slot(&self, index: u32) -> *mut T {
        // SAFETY: masked by the ring size, so inside the descriptor array.
        unsafe { self.descs.as_ptr().add((index & (RING_SIZE - 1)) as usize) }
    }

    // Producer side (fill and transmit rings).

    /// Free slots (reads the kernel's consumer index when the cached one shows too few).
    pub(crate) fn free(&mut self, wanted: u32) -> u32 {
        let free = RING_SIZE - self.local.wrapping_sub(self.other);
        if free >= wanted {
            return free;
        }
        self.other = self.consumer().load(Ordering::Acquire);
        RING_SIZE - self.local.wrapping_sub(self.other)
    }

    /// Writes `value` into the next slot (published by [`Self::submit`]); `false`: full.
    pub(crate) fn push(&mut self, value: T) -> bool {
        if self.free(1) == 0 {
            return false;
        }
        // SAFETY: the slot is free (the kernel consumed it: acquire above), so only this
        // side touches it until the release store in `submit`.
        unsafe { self.slot(self.local).write(value) };
        self.local = self.local.wrapping_add(1);
        true
    }

    /// Publishes the slots written by [`Self::push`].
    pub(crate) fn submit(&self) {
        self.producer().store(self.local, Ordering::Release);
    }

    /// Slots pushed that the kernel has not consumed yet.
    pub(crate) fn outstanding(&mut self) -> u32 {
        self.other = self.consumer().load(Ordering::Acquire);
        self.local.wrapping_sub(self.other)
    }

    // Consumer side (receive and completion rings).

    /// The next entry the kernel produced, if any (given back by [`Self::release`]).
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.local == self.other {
            self.other = self.producer().load(Ordering::Acquire);
            if self.local == self.other {
                return None;
            }
        }
        // SAFETY: the kernel produced this slot (acquire above) and reuses it only after
        // the release store in `release`.
        let value = unsafe { self.slot(self.local).read() };
        self.local = self.local.wrapping_add(1);
        Some(value)
    }

    /// Gives the slots read by [`Self::pop`] back to the kernel.
    pub(crate) fn release(&self) {
        self.consumer().store(self.local, Ordering::Release);
    }
}

fn getsockopt<T>(fd: &OwnedFd, name: libc::c_int) -> io::Result<T> {
    let mut value = std::mem::MaybeUninit::<T>::zeroed();
    let mut len = size_of::<T>() as libc::socklen_t;
    // SAFETY: value is valid for writes of the length passed.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            value.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: zero-initialised plain integers, filled (fully or in part) by the kernel.
    Ok(unsafe { value.assume_init() })
}

/// An AF_XDP socket with its rings: receive (the UMEM's owner only) and transmit, and the
/// fill and completion rings of its device queue.
pub(crate) struct XskSocket {
    /// The socket (polled for received frames, kicked for transmit).
    pub(crate) fd: OwnedFd,
    /// The interface and queue it is bound to.
    pub(crate) ifindex: u32,
    pub(crate) queue: u32,
    /// Bound with `XDP_USE_NEED_WAKEUP` (or sharing such a socket's UMEM): the rings'
    /// [`Ring::needs_wakeup`] says when a kick is needed.
    pub(crate) need_wakeup: bool,
    pub(crate) rx: Option<Ring<libc::xdp_desc>>,
    pub(crate) tx: Ring<libc::xdp_desc>,
    pub(crate) fill: Ring<u64>,
    pub(crate) completion: Ring<u64>,
}

/// Whether a socket registers the UMEM and receives, or shares another's to transmit.
enum Role<'a> {
    Owner(&'a Umem),
    SharesWith(&'a XskSocket),
}

impl XskSocket {
    /// A socket that registers `umem` and receives on `queue` of `ifindex` (where an XDP
    /// program redirects to it), able to transmit there too.
    pub(crate) fn owner(umem: &Umem, ifindex: u32, queue: u32) -> Result<XskSocket, XskError> {
        Self::open(Role::Owner(umem), ifindex, queue)
    }

    /// A transmit socket on `queue` of `ifindex` sharing `owner`'s UMEM.
    pub(crate) fn sharing(
        owner: &XskSocket,
        ifindex: u32,
        queue: u32,
    ) -> Result<XskSocket, XskError> {
        Self::open(Role::SharesWith(owner), ifindex, queue)
    }

    fn open(role: Role<'_>, ifindex: u32, queue: u32) -> Result<XskSocket, XskError> {
        let fail = |what| {
            move |source| XskError {
                what,
                ifindex,
                queue,
                source,
            }
        };
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(fail("socket(AF_XDP)")(io::Error::last_os_error()));
        }
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        if let Role::Owner(umem) = role {
            let reg = libc::xdp_umem_reg {
                addr: umem.area.ptr.as_ptr() as u64,
                len: umem.area.len as u64,
                chunk_size: FRAME_SIZE as u32,
                headroom: 0,
                flags: 0,
                tx_metadata_len: 0,
            };
            crate::sockopt::set(&fd, libc::SOL_XDP, libc::XDP_UMEM_REG, &reg)
                .map_err(fail("XDP_UMEM_REG"))?;
            crate::sockopt::set(&fd, libc::SOL_XDP, libc::XDP_RX_RING, &RING_SIZE)
                .map_err(fail("XDP_RX_RING"))?;
        }
        crate::sockopt::set(&fd, libc::SOL_XDP, libc::XDP_UMEM_FILL_RING, &RING_SIZE)
            .map_err(fail("XDP_UMEM_FILL_RING"))?;
        crate::sockopt::set(
            &fd,
            libc::SOL_XDP,
            libc::XDP_UMEM_COMPLETION_RING,
            &RING_SIZE,
        )
        .map_err(fail("XDP_UMEM_COMPLETION_RING"))?;
        crate::sockopt::set(&fd, libc::SOL_XDP, libc::XDP_TX_RING, &RING_SIZE)
            .map_err(fail("XDP_TX_RING"))?;
        let off: libc::xdp_mmap_offsets =
            getsockopt(&fd, libc::XDP_MMAP_OFFSETS).map_err(fail("XDP_MMAP_OFFSETS"))?;
        let rx = match role {
            Role::Owner(_) => Some(
                Ring::map(&fd, &off.rx, libc::XDP_PGOFF_RX_RING as u64)
                    .map_err(fail("mmap receive ring"))?,
            ),
            Role::SharesWith(_) => None,
        };
        let tx = Ring::map(&fd, &off.tx, libc::XDP_PGOFF_TX_RING as u64)
            .map_err(fail("mmap transmit ring"))?;
        let fill = Ring::map(&fd, &off.fr, libc::XDP_UMEM_PGOFF_FILL_RING)
            .map_err(fail("mmap fill ring"))?;
        let completion = Ring::map(&fd, &off.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING)
            .map_err(fail("mmap completion ring"))?;
        // The UMEM's owner asks for XDP_USE_NEED_WAKEUP: the kernel then flags the rings it
        // needs a system call for, and kicks it does not need are skipped. A socket sharing
        // the UMEM may not pass flags; it inherits the owner's.
        let (flags, shared_fd, need_wakeup) = match role {
            Role::Owner(_) => (libc::XDP_USE_NEED_WAKEUP, 0, true),
            Role::SharesWith(o) => (
                libc::XDP_SHARED_UMEM,
                o.fd.as_raw_fd() as u32,
                o.need_wakeup,
            ),
        };
        let sxdp = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: flags,
            sxdp_ifindex: ifindex,
            sxdp_queue_id: queue,
            sxdp_shared_umem_fd: shared_fd,
        };
        // A process killed a moment ago (kill -9, then a restart) may still hold the queue:
        // the kernel releases its AF_XDP socket after the process is gone, so a bind that
        // finds the queue busy is tried again for a while before it counts as a failure.
        let started = std::time::Instant::now();
        loop {
            // SAFETY: sxdp is a valid sockaddr_xdp of the size passed. Neither XDP_COPY nor
            // XDP_ZEROCOPY: zero-copy where the driver has it, copy mode otherwise.
            let rc = unsafe {
                libc::bind(
                    fd.as_raw_fd(),
                    (&raw const sxdp).cast(),
                    size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if rc == 0 {
                break;
            }
            let error = io::Error::last_os_error();
            if error.raw_os_error() != Some(libc::EBUSY) || started.elapsed() >= BIND_BUSY_WAIT {
                return Err(fail("bind")(error));
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Ok(XskSocket {
            fd,
            ifindex,
            queue,
            need_wakeup,
            rx,
            tx,
            fill,
            completion,
        })
    }

    /// Whether queued transmit descriptors need a kick (`sendto`) to be sent: always without
    /// `XDP_USE_NEED_WAKEUP`; with it, when the kernel flags the transmit ring (in copy mode
    /// it always does: only the kick sends).
    pub(crate) fn tx_needs_kick(&self) -> bool {
        !self.need_wakeup || self.tx.needs_wakeup()
    }

    /// The kernel's drop counts for this socket: frames dropped for lack of room in the
    /// receive ring or of a fill-ring frame, and invalid descriptors, since it was opened.
    pub(crate) fn dropped(&self) -> io::Result<u64> {
        let s: libc::xdp_statistics = getsockopt(&self.fd, libc::XDP_STATISTICS)?;
        Ok(s.rx_dropped + s.rx_ring_full + s.rx_invalid_descs)
    }
}

/// A worker's UMEM with the socket that registered it.
pub(crate) fn open_owner(ifindex: u32, queue: u32) -> Result<(Umem, XskSocket), XskError> {
    let umem = Umem::new().map_err(|source| XskError {
        what: "map the UMEM",
        ifindex,
        queue,
        source,
    })?;
    let socket = XskSocket::owner(&umem, ifindex, queue)?;
    Ok((umem, socket))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_map_to_frames_and_offsets_both_ways() {
        assert_eq!(frame_of(address(3, 276)), (3, 276));
        assert_eq!(frame_of(0), (0, 0));
        assert_eq!(
            frame_of(address(FRAMES as u32 - 1, FRAME_SIZE - 1)),
            (FRAMES as u32 - 1, FRAME_SIZE - 1)
        );
    }

    #[test]
    fn umem_slices_stay_inside_their_frame() {
        let mut umem = Umem::new().unwrap();
        assert_eq!(umem.bytes(0, 0, FRAME_SIZE).len(), FRAME_SIZE);
        assert!(
            umem.bytes(0, 1, FRAME_SIZE).is_empty(),
            "crosses into frame 1"
        );
        assert!(umem.bytes(FRAMES as u32, 0, 1).is_empty(), "past the UMEM");
        umem.bytes_mut(1, 10, 2).copy_from_slice(&[7, 8]);
        assert_eq!(umem.bytes(1, 9, 4), [0, 7, 8, 0]);
    }

    /// A network namespace of this test's own (`tgxsk-<pid>-<n>`, the name the CI's leftover
    /// check knows), with a veth pair `x0`–`x1` up; deleted on drop, also when a test fails.
    struct Namespace(String);

    impl Namespace {
        fn with_veth() -> Namespace {
            static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let ns = Namespace(format!("tgxsk-{}-{n}", std::process::id()));
            ns.ip(&["netns", "add", &ns.0]);
            for args in [
                &["link", "add", "x0", "type", "veth", "peer", "name", "x1"][..],
                // No IPv6 link-local addresses: nothing but the test's frames crosses.
                &["link", "set", "x0", "addrgenmode", "none"],
                &["link", "set", "x1", "addrgenmode", "none"],
                &["link", "set", "x0", "up"],
                &["link", "set", "x1", "up"],
            ] {
                ns.ip(&[&["-n", &ns.0][..], args].concat());
            }
            ns
        }

        fn ip(&self, args: &[&str]) -> String {
            let out = std::process::Command::new("ip")
                .args(args)
                .output()
                .unwrap();
            assert!(out.status.success(), "ip {args:?} (run as root): {out:?}");
            String::from_utf8_lossy(&out.stdout).into_owned()
        }

        /// Runs `f` in a thread inside the namespace.
        fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
            let path = format!("/run/netns/{}", self.0);
            std::thread::spawn(move || {
                let file = std::fs::File::open(&path).unwrap();
                // SAFETY: setns(2) on a namespace file we hold open; it changes only this
                // thread's network namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                assert_eq!(rc, 0, "setns: {}", io::Error::last_os_error());
                f()
            })
            .join()
            .unwrap()
        }

        fn rx_packets(&self, dev: &str) -> u64 {
            let v: serde_json::Value =
                serde_json::from_str(&self.ip(&["-n", &self.0, "-s", "-j", "link", "show", dev]))
                    .unwrap();
            v[0]["stats64"]["rx"]["packets"].as_u64().unwrap()
        }
    }

    impl Drop for Namespace {
        fn drop(&mut self) {
            let _ = std::process::Command::new("ip")
                .args(["netns", "del", &self.0])
                .status();
        }
    }

    /// Queues one 60-byte frame in frame `frame` on `socket`'s transmit ring and returns
    /// whether the kernel flagged the ring for a kick, then kicks and waits for its
    /// completion.
    fn send_one(umem: &mut Umem, socket: &mut XskSocket, frame: u32) -> bool {
        let bytes = umem.bytes_mut(frame, 0, 60);
        bytes.fill(0);
        bytes[..6].fill(0xff); // broadcast
        bytes[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        bytes[12..14].copy_from_slice(&[0x88, 0xb5]); // local experimental EtherType
        assert!(socket.tx.push(libc::xdp_desc {
            addr: address(frame, 0),
            len: 60,
            options: 0,
        }));
        socket.tx.submit();
        let flagged = socket.tx.needs_wakeup();
        // SAFETY: a zero-length send with no buffer: the kernel reads the transmit ring.
        let rc = unsafe {
            libc::sendto(
                socket.fd.as_raw_fd(),
                std::ptr::null(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null(),
                0,
            )
        };
        assert!(rc >= 0, "kick: {}", io::Error::last_os_error());
        assert_eq!(socket.tx.outstanding(), 0, "the kick took the frame");
        assert_eq!(
            socket.completion.pop(),
            Some(address(frame, 0)),
            "completed"
        );
        socket.completion.release();
        flagged
    }

    /// What `XdpIo`'s kicks rely on: the ring's flag word is read where the kernel writes it,
    /// and in copy mode (veth) the kernel flags the transmit rings of the UMEM's owner and
    /// of a socket sharing it (on this kernel with or without `XDP_USE_NEED_WAKEUP`: only a
    /// kick sends there), so the kicks are never skipped on veth; the kick then sends.
    #[test]
    fn in_copy_mode_the_kernel_flags_both_transmit_rings_for_the_kick_that_sends() {
        let ns = Namespace::with_veth();
        let before = (ns.rx_packets("x0"), ns.rx_packets("x1"));
        let flagged = ns.run(|| {
            let x0 = nix::net::if_::if_nametoindex("x0").unwrap();
            let x1 = nix::net::if_::if_nametoindex("x1").unwrap();
            let (mut umem, mut owner) = open_owner(x0, 0).expect("AF_XDP owner socket on x0");
            let mut sharer = XskSocket::sharing(&owner, x1, 0).expect("shared socket on x1");
            let owner_flagged = send_one(&mut umem, &mut owner, 0);
            let sharer_flagged = send_one(&mut umem, &mut sharer, 1);
            (
                owner_flagged,
                sharer_flagged,
                owner.tx_needs_kick(),
                sharer.tx_needs_kick(),
            )
        });
        assert_eq!(
            flagged,
            (true, true, true, true),
            "copy mode: the kernel flags both transmit rings (before and after a kick)"
        );
        assert_eq!(
            (
                ns.rx_packets("x0") - before.0,
                ns.rx_packets("x1") - before.1
            ),
            (1, 1),
            "each frame crossed the veth: the one sent on x0 reached x1, the one on x1 reached x0"
        );
    }
}
