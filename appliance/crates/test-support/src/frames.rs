//! AF_PACKET sockets opened inside a namespace: [`FrameSocket`] sends and receives whole
//! frames on one interface (what a test's real server and client see), [`packet_socket`]
//! is the bare socket underneath. Every receive loop is bounded in time.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::netns::Netns;

/// An AF_PACKET socket bound to `interface` of the calling thread's namespace, receiving
/// frames of EtherType `protocol` (0: none, a socket that only sends).
pub fn packet_socket(interface: &str, protocol: u16) -> OwnedFd {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC,
            i32::from(protocol.to_be()),
        )
    };
    assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
    // SAFETY: fd was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let index = nix::net::if_::if_nametoindex(interface).expect("interface");
    // SAFETY: all-zero sockaddr_ll is valid; fields set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = index as i32;
    // SAFETY: sll is a valid sockaddr_ll of the size passed.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as u32,
        )
    };
    assert_eq!(rc, 0, "bind: {}", std::io::Error::last_os_error());
    fd
}

/// An AF_PACKET socket bound to one interface of a namespace: sends and receives whole
/// Ethernet frames (or L3 packets on L3 devices).
pub struct FrameSocket {
    fd: OwnedFd,
}

impl FrameSocket {
    /// Opens the socket on `interface` inside `ns` (receives IPv4 frames only).
    pub fn open(ns: &Netns, interface: &str) -> FrameSocket {
        Self::open_protocol(ns, interface, 0x0800)
    }

    /// Opens the socket on `interface` inside `ns`, receiving frames of EtherType
    /// `protocol` (`ETH_P_ALL`, 3: every frame, IPv4 and IPv6 alike).
    pub fn open_protocol(ns: &Netns, interface: &str, protocol: u16) -> FrameSocket {
        let interface = interface.to_owned();
        let fd = ns.run(move || {
            let fd = packet_socket(&interface, protocol);
            // Room for a few thousand frames, so a test may read after sending.
            let size: libc::c_int = 16 << 20;
            // SAFETY: fd is open; the value is a c_int whose size is passed.
            unsafe {
                libc::setsockopt(
                    fd.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVBUFFORCE,
                    (&raw const size).cast(),
                    size_of::<libc::c_int>() as u32,
                )
            };
            fd
        });
        FrameSocket { fd }
    }

    /// From now on every frame sent (and received) starts with a virtio-net header
    /// (`PACKET_VNET_HDR`): a sent frame can carry offload state, such as a checksum the
    /// kernel leaves to the device (`CHECKSUM_PARTIAL`), as a real server's stack does.
    pub fn with_offload_header(self) -> FrameSocket {
        let on: libc::c_int = 1;
        // SAFETY: fd is open; the value is a c_int whose size is passed.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_VNET_HDR,
                (&raw const on).cast(),
                size_of::<libc::c_int>() as u32,
            )
        };
        assert_eq!(
            rc,
            0,
            "PACKET_VNET_HDR: {}",
            std::io::Error::last_os_error()
        );
        self
    }

    /// The raw socket, for setting extra options.
    pub fn raw_fd(&self) -> std::os::fd::RawFd {
        self.fd.as_raw_fd()
    }

    /// Sends one frame as it is.
    pub fn send(&self, frame: &[u8]) {
        // SAFETY: frame is a valid buffer of the given length.
        let n = unsafe { libc::send(self.fd.as_raw_fd(), frame.as_ptr().cast(), frame.len(), 0) };
        assert_eq!(
            n,
            frame.len() as isize,
            "send: {}",
            std::io::Error::last_os_error()
        );
    }

    /// Waits at most `limit` for an incoming frame that `wanted` accepts (others are
    /// skipped); true as soon as one arrives.
    pub fn wait_for(&self, limit: Duration, wanted: impl Fn(&[u8]) -> bool) -> bool {
        let deadline = Instant::now() + limit;
        let mut found = false;
        let mut remaining = limit;
        while !found && !remaining.is_zero() {
            let got = self.receive_for(remaining.min(Duration::from_millis(20)), |f| wanted(f));
            found = !got.is_empty();
            remaining = deadline.saturating_duration_since(Instant::now());
        }
        found
    }

    /// Receives frames until `deadline` passes with nothing more, keeping those `keep`
    /// accepts (incoming only; the socket also sees its own host's outgoing frames).
    pub fn receive_for(&self, quiet: Duration, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 70000];
        let mut deadline = Instant::now() + quiet;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return got;
            }
            let mut pfd = libc::pollfd {
                fd: self.fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: pfd is one valid pollfd.
            let rc = unsafe { libc::poll(&raw mut pfd, 1, left.as_millis().max(1) as i32) };
            if rc <= 0 {
                continue;
            }
            // SAFETY: an all-zero sockaddr_ll is valid for recvfrom to fill.
            let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
            let mut len = size_of::<libc::sockaddr_ll>() as u32;
            // SAFETY: buf and sll are valid for writes of the sizes given.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr().cast(),
                    buf.len(),
                    libc::MSG_DONTWAIT,
                    (&raw mut sll).cast(),
                    &raw mut len,
                )
            };
            if n > 0 && sll.sll_pkttype != libc::PACKET_OUTGOING && keep(&buf[..n as usize]) {
                got.push(buf[..n as usize].to_vec());
                deadline = Instant::now() + quiet;
            }
        }
    }
}
