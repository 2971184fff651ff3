//! The real server's side of the reply tunnel, in userspace: its replies from the VIP are
//! routed into a TUN device; this reads each one from the TUN, wraps it in an outer IPv4
//! header RIP -> GIP (protocol 4, IPIP; or, with `--tunnel gue`, protocol 17 with a UDP
//! header to port 6080, its source port a hash of the inner flow as `encap-sport auto` makes
//! it, and a GUE header) and sends it to the gateway through a raw socket — what the
//! kernel's `ipip` or `fou`/`gue` encapsulation does on a real server (the host running the
//! demo may have neither).
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
/// Length of the UDP and GUE headers of a GUE packet.
const GUE_HEADERS_LEN: usize = 8 + 4;

/// The reply tunnel of the demo's real server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DemoTunnel {
    /// IPv4 in IPv4 (protocol 4).
    #[default]
    Ipip,
    /// GUE (variant 0, protocol 4) to UDP port [`tungate_config::DEFAULT_GUE_PORT`].
    Gue,
}

impl DemoTunnel {
    /// The name the configuration's `tunnel` key uses.
    pub fn as_str(self) -> &'static str {
        match self {
            DemoTunnel::Ipip => "ipip",
            DemoTunnel::Gue => "gue",
        }
    }
}
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
    outer_header(4, inner.len(), source, destination, id, out);
    out.extend_from_slice(inner);
}

/// Clears `out` and writes an outer IPv4 header of `protocol` for `payload_len` bytes.
fn outer_header(
    protocol: u8,
    payload_len: usize,
    source: Ipv4Addr,
    destination: Ipv4Addr,
    id: u16,
    out: &mut Vec<u8>,
) {
    let total = (OUTER_HEADER_LEN + payload_len) as u16;
    out.clear();
    out.extend_from_slice(&[0x45, 0]);
    out.extend_from_slice(&total.to_be_bytes());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(&[0, 0, OUTER_TTL, protocol, 0, 0]);
    out.extend_from_slice(&source.octets());
    out.extend_from_slice(&destination.octets());
    let checksum = ipv4::checksum(&out[..OUTER_HEADER_LEN]);
    out[10..12].copy_from_slice(&checksum.to_be_bytes());
}

/// The UDP source port of a GUE packet carrying `inner`: a hash of its addresses, protocol
/// and first four transport bytes (the ports), in the dynamic range, so that each flow keeps
/// one port and different flows spread (what `encap-sport auto` does).
pub(crate) fn flow_port(inner: &[u8]) -> u16 {
    let header_len = inner.first().map_or(20, |b| usize::from(b & 0x0f) * 4);
    let mut hash: u32 = 0x811c_9dc5; // FNV-1a
    let fields = inner.get(9..10).into_iter().chain(inner.get(12..20));
    for &byte in fields
        .flatten()
        .chain(inner.get(header_len..header_len + 4).unwrap_or(&[]))
    {
        hash = (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193);
    }
    49152 + (hash % 16384) as u16
}

/// Writes into `out` the GUE packet carrying `inner` from `source` to `destination`: an
/// outer IPv4 header (protocol 17), a UDP header from [`flow_port`] to `port` with no
/// checksum (0, as the kernel's fou/gue encapsulation sends by default), the GUE header
/// (variant 0, no flags, protocol 4), then `inner` unchanged.
pub(crate) fn encapsulate_gue(
    inner: &[u8],
    source: Ipv4Addr,
    destination: Ipv4Addr,
    port: u16,
    id: u16,
    out: &mut Vec<u8>,
) {
    outer_header(
        17,
        GUE_HEADERS_LEN + inner.len(),
        source,
        destination,
        id,
        out,
    );
    out.extend_from_slice(&flow_port(inner).to_be_bytes());
    out.extend_from_slice(&port.to_be_bytes());
    out.extend_from_slice(&((GUE_HEADERS_LEN + inner.len()) as u16).to_be_bytes());
    out.extend_from_slice(&[0, 0, 0, 4, 0, 0]);
    out.extend_from_slice(inner);
}

/// Reads replies from `tun` and sends them encapsulated to `gateway` until `stop` is set.
/// Call it on a thread inside the real server's namespace.
pub(crate) fn run(
    mut tun: File,
    tunnel: DemoTunnel,
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
    let mut packet = Vec::with_capacity(65_536 + OUTER_HEADER_LEN + GUE_HEADERS_LEN);
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
        match tunnel {
            DemoTunnel::Ipip => encapsulate(inner, rip, gateway, id, &mut packet),
            DemoTunnel::Gue => encapsulate_gue(
                inner,
                rip,
                gateway,
                tungate_config::DEFAULT_GUE_PORT,
                id,
                &mut packet,
            ),
        }
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

    #[test]
    fn a_gue_packet_is_what_the_gateway_decapsulates_and_its_source_port_follows_the_flow() {
        let flow = |client_port: u16| {
            let mut p = vec![
                0x45u8, 0, 0, 28, 1, 2, 0, 0, 63, 17, 0, 0, 192, 0, 2, 80, 198, 51, 100, 10,
            ];
            p.extend_from_slice(&80u16.to_be_bytes());
            p.extend_from_slice(&client_port.to_be_bytes());
            p.extend_from_slice(&[0, 8, 0, 0]);
            let c = ipv4::checksum(&p[..20]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            p
        };
        let inner = flow(40000);
        let mut out = Vec::new();
        let (rip, gip) = (Ipv4Addr::new(10, 99, 0, 2), Ipv4Addr::new(10, 99, 0, 1));
        encapsulate_gue(&inner, rip, gip, 6080, 7, &mut out);
        // Checked by etherparse, independently of this code: IPv4/UDP to 6080, GUE header.
        let parsed = etherparse::SlicedPacket::from_ip(&out).expect("parses");
        let Some(etherparse::TransportSlice::Udp(udp)) = parsed.transport else {
            panic!("not UDP");
        };
        assert_eq!(udp.destination_port(), 6080);
        assert_eq!(usize::from(udp.length()), 8 + 4 + inner.len());
        assert_eq!(udp.checksum(), 0);
        assert_eq!(&out[28..32], &[0, 4, 0, 0]);
        assert_eq!(&out[32..], &inner[..]);
        // One flow keeps its port; another flow (another client port) mostly gets another.
        assert_eq!(flow_port(&inner), flow_port(&flow(40000)));
        let ports: std::collections::HashSet<u16> =
            (40000..40064).map(|p| flow_port(&flow(p))).collect();
        assert!(ports.len() > 32, "{} ports for 64 flows", ports.len());
        assert!(ports.iter().all(|&p| p >= 49152));
    }
}
