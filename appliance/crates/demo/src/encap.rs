//! The real server's side of the reply tunnel, in userspace: its replies from the VIP are
//! routed into a TUN device; this reads each one from the TUN, wraps it in an outer IPv4
//! header RIP -> GIP (protocol 4, IPIP) and sends it to the gateway through a raw socket —
//! what the kernel's `ipip` module does on a real server (the host running the demo may
//! have none).
//!
//! It must run on a thread inside the real server's namespace (the TUN device and the raw
//! socket are made there). It only encapsulates IPv4 packets read from its own TUN device;
//! anything else read there (IPv6 from the device's own link-local chatter) is skipped.

use std::fs::{File, OpenOptions};
use std::io::Read as _;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use super::DemoError;
use tungate_packet::ipv4;

/// Length of the outer header.
pub(crate) const OUTER_HEADER_LEN: usize = 20;
/// TTL of the outer header.
pub(crate) const OUTER_TTL: u8 = 64;
/// How often the loop looks at its stop flag.
const POLL_MS: u16 = 200;

/// What the encapsulator did.
#[derive(Debug, Default)]
pub(crate) struct EncapCounters {
    /// Replies wrapped and sent to the gateway.
    pub sent: AtomicU64,
    /// Sends that failed.
    pub send_errors: AtomicU64,
    /// Non-IPv4 packets read from the TUN and skipped.
    pub skipped: AtomicU64,
}

/// Creates the TUN device `name` (no packet-info header) in the calling thread's namespace;
/// it lives as long as the returned file.
pub(crate) fn open_tun(name: &str) -> Result<File, DemoError> {
    let tun_error = |source| DemoError::Tun {
        name: name.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/net/tun")
        .map_err(tun_error)?;
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    if name.len() >= request.ifr_name.len() {
        return Err(tun_error(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "interface name too long",
        )));
    }
    for (slot, byte) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *slot = byte as libc::c_char;
    }
    request.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI) as libc::c_short;
    // SAFETY: TUNSETIFF reads (and may update) the ifreq we pass, which lives across the
    // call; the descriptor is an open /dev/net/tun.
    let rc = unsafe { libc::ioctl(file.as_raw_fd(), libc::TUNSETIFF, &mut request) };
    if rc < 0 {
        return Err(tun_error(std::io::Error::last_os_error()));
    }
    Ok(file)
}

/// Writes into `out` the IPIP packet carrying `inner` from `source` to `destination`: a
/// 20-byte IPv4 header (protocol 4, TTL [`OUTER_TTL`], identification `id`, checksum
/// filled in) followed by `inner` unchanged.
pub(crate) fn encapsulate(
    inner: &[u8],
    source: Ipv4Addr,
    destination: Ipv4Addr,
    id: u16,
    out: &mut Vec<u8>,
) {
    let total = (OUTER_HEADER_LEN + inner.len()) as u16;
    out.clear();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0, OUTER_TTL, 4, 0, 0]);
    out.extend_from_slice(&source.octets());
    out.extend_from_slice(&destination.octets());
    let checksum = ipv4::checksum(&out[..OUTER_HEADER_LEN]);
    out[10..12].copy_from_slice(&checksum.to_be_bytes());
    out.extend_from_slice(inner);
}

/// Reads replies from `tun` and sends them encapsulated to `gateway` until `stop` is set.
/// Call it on a thread inside the real server's namespace.
pub(crate) fn run(
    mut tun: File,
    rip: Ipv4Addr,
    gateway: Ipv4Addr,
    stop: &AtomicBool,
    counters: &EncapCounters,
) -> Result<(), DemoError> {
    // IPPROTO_RAW: we write the whole IPv4 header ourselves (IP_HDRINCL implied).
    let raw = Socket::new(
        Domain::IPV4,
        Type::RAW,
        Some(Protocol::from(libc::IPPROTO_RAW)),
    )
    .map_err(|source| DemoError::Socket {
        what: "the raw IPv4 socket of the encapsulator",
        source,
    })?;
    let to = SockAddr::from(SocketAddrV4::new(gateway, 0));
    let mut buffer = vec![0u8; 65_536];
    let mut packet = Vec::with_capacity(65_536 + OUTER_HEADER_LEN);
    let mut id: u16 = 0;
    while !stop.load(Ordering::Relaxed) {
        let mut fds = [PollFd::new(tun.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(POLL_MS)) {
            Ok(0) => continue,
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => {
                return Err(DemoError::Tun {
                    name: "the TUN device".into(),
                    source: e.into(),
                });
            }
        }
        let n = match tun.read(&mut buffer) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(source) => {
                return Err(DemoError::Tun {
                    name: "the TUN device".into(),
                    source,
                });
            }
        };
        let inner = &buffer[..n];
        if inner.first().map(|b| b >> 4) != Some(4) {
            counters.skipped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        id = id.wrapping_add(1);
        encapsulate(inner, rip, gateway, id, &mut packet);
        match raw.send_to(&packet, &to) {
            Ok(_) => counters.sent.fetch_add(1, Ordering::Relaxed),
            Err(_) => counters.send_errors.fetch_add(1, Ordering::Relaxed),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_outer_header_is_the_one_rfc_2003_describes() {
        let inner = [
            0x45u8, 0, 0, 24, 1, 2, 0, 0, 63, 17, 0, 0, 192, 0, 2, 80, 198, 51, 100, 10,
        ];
        let mut out = Vec::new();
        encapsulate(
            &inner,
            Ipv4Addr::new(10, 99, 0, 2),
            Ipv4Addr::new(10, 99, 0, 1),
            0x1234,
            &mut out,
        );
        // Written out by hand: version 4 / IHL 5, TOS 0, total 40, id 0x1234, no flags,
        // TTL 64, protocol 4, checksum, 10.99.0.2 -> 10.99.0.1.
        let expected_header = [
            0x45, 0, 0, 40, 0x12, 0x34, 0, 0, 64, 4, 0x53, 0xd6, 10, 99, 0, 2, 10, 99, 0, 1,
        ];
        assert_eq!(&out[..20], &expected_header);
        assert_eq!(&out[20..], &inner);
        // And a receiver's check accepts it.
        let header = ipv4::check_header(&out).expect("well-formed");
        assert_eq!(header.protocol, 4);
    }
}
