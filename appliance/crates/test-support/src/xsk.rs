//! A bare AF_XDP socket for tests, written against the kernel's interface alone: a UMEM,
//! its fill and completion rings and the socket's receive and transmit rings, created but
//! not mapped, bound in copy mode to one queue of an interface. Enough for an XDP program
//! to redirect to it and for a wait or a kick on its descriptor; it never moves a frame.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::netns::Netns;

/// Ring entries (a power of two).
const ENTRIES: u32 = 16;
/// Bytes per UMEM chunk.
const CHUNK: usize = 2048;

/// The socket and its UMEM (unmapped after the socket closes).
pub struct BareXsk {
    fd: OwnedFd,
    /// Registered with the socket: kept (and dropped after it) for the socket's life.
    _umem: Umem,
}

impl BareXsk {
    /// Opens it inside `ns`, bound to `queue` of `interface`.
    pub fn open(ns: &Netns, interface: &str, queue: u32) -> BareXsk {
        let interface = interface.to_owned();
        ns.run(move || open_here(&interface, queue))
    }

    /// The socket's descriptor (for polls and kicks).
    pub fn raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for BareXsk {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn open_here(interface: &str, queue: u32) -> BareXsk {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
    assert!(
        fd >= 0,
        "AF_XDP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let umem = Umem::new(ENTRIES as usize * CHUNK);
    let reg = libc::xdp_umem_reg {
        addr: umem.ptr as u64,
        len: umem.len as u64,
        chunk_size: CHUNK as u32,
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    let set = |option: libc::c_int, value: *const libc::c_void, len: usize| {
        // SAFETY: value points at `len` readable bytes for the call's duration.
        let rc =
            unsafe { libc::setsockopt(fd.as_raw_fd(), libc::SOL_XDP, option, value, len as u32) };
        assert_eq!(
            rc,
            0,
            "setsockopt {option}: {}",
            std::io::Error::last_os_error()
        );
    };
    set(
        libc::XDP_UMEM_REG,
        (&raw const reg).cast(),
        size_of_val(&reg),
    );
    let entries: u32 = ENTRIES;
    for ring in [
        libc::XDP_UMEM_FILL_RING,
        libc::XDP_UMEM_COMPLETION_RING,
        libc::XDP_RX_RING,
        libc::XDP_TX_RING,
    ] {
        set(ring, (&raw const entries).cast(), size_of::<u32>());
    }
    let index = nix::net::if_::if_nametoindex(interface).expect("interface");
    let address = libc::sockaddr_xdp {
        sxdp_family: libc::AF_XDP as u16,
        sxdp_flags: libc::XDP_COPY,
        sxdp_ifindex: index,
        sxdp_queue_id: queue,
        sxdp_shared_umem_fd: 0,
    };
    // SAFETY: address is a valid sockaddr_xdp of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const address).cast(),
            size_of::<libc::sockaddr_xdp>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind AF_XDP: {}", std::io::Error::last_os_error());
    BareXsk { fd, _umem: umem }
}

/// Page-aligned memory for a UMEM, unmapped on drop.
struct Umem {
    ptr: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is plain memory that only the kernel writes to.
unsafe impl Send for Umem {}

impl Umem {
    fn new(len: usize) -> Umem {
        // SAFETY: an anonymous private mapping, no address hint.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        assert_ne!(ptr, libc::MAP_FAILED, "mmap");
        Umem { ptr, len }
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        // SAFETY: ptr and len are the mapping made in `new`, unmapped once.
        unsafe { libc::munmap(self.ptr, self.len) };
    }
}
