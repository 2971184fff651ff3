//! The tunnel headers between the outer IP header (IPv4 or IPv6) and the inner packet: IP in
//! IP (none: protocol 4 or 41), UDP with GUE or FOU, and GRE. [`inner_start`] checks them
//! against the tunnel configured for the sending peer and says where the inner packet starts
//! in the outer payload and which family the tunnel header declares for it.
//!
//! Choices (SECURITY.md lists them): the UDP source port is never judged (it is the ECMP and
//! receive-side-scaling entropy); a non-zero UDP checksum is verified, zero means none (RFC
//! 768; over IPv6 too, as RFC 6935/6936 allow for tunnel protocols and as the kernel's FOU and
//! GUE send by default); GUE variant 0 is accepted with no flags, no optional fields and
//! protocol 4 or 41 only (control messages refused), GUE variant 1 (direct IPv4 or IPv6) is
//! accepted; GRE version 0 with protocol 0x0800 or 0x86DD only, the checksum bit allowed and
//! verified, the key compared with the
//! peer's `key` (present exactly when configured), the sequence bit allowed and its number
//! not judged (workers and RSS reorder anyway, and the kernel's in-order drop would only
//! lose packets), routing, strict-source-route, recursion and every other flag refused.
//! Works on byte slices only; never allocates and never panics on any input.

use std::net::IpAddr;

use super::DropReason;
use super::ipv4::{self, PROTO_GRE, PROTO_IPIP, PROTO_IPV6};

/// IP protocol number of UDP.
pub(crate) const PROTO_UDP: u8 = 17;
/// Length of a UDP header.
pub(crate) const UDP_LEN: usize = 8;
/// Length of a GUE base header.
pub(crate) const GUE_LEN: usize = 4;
/// GRE protocol type of IPv4 (an EtherType).
const GRE_PROTO_IPV4: u16 = 0x0800;
/// GRE protocol type of IPv6 (an EtherType).
const GRE_PROTO_IPV6: u16 = 0x86dd;
const GRE_CHECKSUM: u8 = 0x80;
const GRE_KEY: u8 = 0x20;
const GRE_SEQUENCE: u8 = 0x10;
/// Routing present, strict source route, recursion control: never in a return tunnel.
const GRE_REFUSED: u8 = 0x40 | 0x08 | 0x07;

/// The return tunnel a peer sends its replies through, as the checks need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// IP in IP: IPv4 (protocol 4) or IPv6 (protocol 41) in IPv4 or IPv6 (ipip, sit/6in4,
    /// ip6ip6, 4in6).
    Ipip,
    /// Generic UDP Encapsulation to this UDP destination port.
    Gue {
        /// The UDP destination port.
        port: u16,
    },
    /// Foo-over-UDP (UDP directly followed by the inner packet) to this UDP destination port.
    Fou {
        /// The UDP destination port.
        port: u16,
    },
    /// GRE (version 0, IPv4 or IPv6 payload), with this key or none.
    Gre {
        /// The key the peer's packets carry (`None`: they carry none).
        key: Option<u32>,
    },
}

impl Tunnel {
    /// The outer IP protocol this tunnel's packets carry (for IP in IP with an IPv4 inner
    /// packet; an IPv6 one is protocol 41).
    pub const fn protocol(self) -> u8 {
        match self {
            Tunnel::Ipip => PROTO_IPIP,
            Tunnel::Gue { .. } | Tunnel::Fou { .. } => PROTO_UDP,
            Tunnel::Gre { .. } => PROTO_GRE,
        }
    }

    /// The UDP destination port of a GUE or FOU tunnel.
    pub const fn udp_port(self) -> Option<u16> {
        match self {
            Tunnel::Gue { port } | Tunnel::Fou { port } => Some(port),
            Tunnel::Ipip | Tunnel::Gre { .. } => None,
        }
    }
}

/// Whether `protocol` is the outer protocol of some tunnel type tungate decapsulates.
pub(crate) const fn is_tunnel_protocol(protocol: u8) -> bool {
    matches!(protocol, PROTO_IPIP | PROTO_IPV6 | PROTO_UDP | PROTO_GRE)
}

/// The inner family a tunnel header declares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Declared {
    /// IPv4 (protocol 4, GUE protocol 4 or version nibble 4, GRE 0x0800).
    V4,
    /// IPv6 (protocol 41, GUE protocol 41 or version nibble 6, GRE 0x86DD).
    V6,
    /// Not declared (FOU): the inner header's version says.
    Either,
}

/// The outer header's protocol and addresses (for the UDP pseudo-header).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Outer {
    pub(crate) protocol: u8,
    pub(crate) source: IpAddr,
    pub(crate) destination: IpAddr,
}

/// Checks the tunnel header(s) at the start of `payload` (the outer packet's payload, exactly
/// its length) against `tunnel`, the sender's configured tunnel, and returns the offset of
/// the inner packet in `payload` and the family the tunnel declares for it. Order: the outer
/// protocol is the tunnel's (`wrong_tunnel`), then per type the checks of [`udp`], [`gue`]
/// or [`gre`].
pub(crate) fn inner_start(
    tunnel: Tunnel,
    outer: Outer,
    payload: &[u8],
) -> Result<(usize, Declared), DropReason> {
    match (tunnel, outer.protocol) {
        (Tunnel::Ipip, PROTO_IPIP) => Ok((0, Declared::V4)),
        (Tunnel::Ipip, PROTO_IPV6) => Ok((0, Declared::V6)),
        (Tunnel::Gue { port }, PROTO_UDP) => {
            udp(port, outer, payload).and_then(|()| gue(&payload[UDP_LEN..]))
        }
        (Tunnel::Fou { port }, PROTO_UDP) => {
            udp(port, outer, payload).map(|()| (UDP_LEN, Declared::Either))
        }
        (Tunnel::Gre { key }, PROTO_GRE) => gre(key, payload),
        _ => Err(DropReason::WrongTunnel),
    }
}

/// The UDP header: length (at least 8, and exactly the outer payload: `bad_udp_length`),
/// destination port (`wrong_tunnel`), then a non-zero checksum (`bad_udp_checksum`).
fn udp(port: u16, outer: Outer, payload: &[u8]) -> Result<(), DropReason> {
    let Some(header) = payload.get(..UDP_LEN) else {
        return Err(DropReason::BadUdpLength);
    };
    let length = usize::from(u16::from_be_bytes([header[4], header[5]]));
    if length < UDP_LEN || length != payload.len() {
        return Err(DropReason::BadUdpLength);
    }
    if u16::from_be_bytes([header[2], header[3]]) != port {
        return Err(DropReason::WrongTunnel);
    }
    if header[6..8] != [0, 0] && udp_checksum(outer, payload) != 0 {
        return Err(DropReason::BadUdpChecksum);
    }
    Ok(())
}

/// The UDP checksum over the pseudo-header and `datagram`: 0 when the datagram's checksum
/// field is right.
pub(crate) fn udp_checksum(outer: Outer, datagram: &[u8]) -> u16 {
    let pseudo_sum = match (outer.source, outer.destination) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            let mut pseudo = [0u8; 12];
            pseudo[..4].copy_from_slice(&source.octets());
            pseudo[4..8].copy_from_slice(&destination.octets());
            pseudo[9] = PROTO_UDP;
            pseudo[10..12].copy_from_slice(&(datagram.len() as u16).to_be_bytes());
            ipv4::sum_words(&pseudo, 0)
        }
        // RFC 8200 8.1: addresses, 32-bit upper-layer length, three zero bytes, next header.
        (source, destination) => {
            let mut pseudo = [0u8; 40];
            pseudo[..16].copy_from_slice(&v6_octets(source));
            pseudo[16..32].copy_from_slice(&v6_octets(destination));
            pseudo[32..36].copy_from_slice(&(datagram.len() as u32).to_be_bytes());
            pseudo[39] = PROTO_UDP;
            ipv4::sum_words(&pseudo, 0)
        }
    };
    !ipv4::fold(ipv4::sum_words(datagram, 0) + pseudo_sum)
}

/// The 16 octets of an IPv6 address (an IPv4 one, never paired with IPv6 by the caller, as
/// IPv4-mapped).
fn v6_octets(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// The GUE header after the UDP header (`bad_gue` for anything but a variant 0 data message
/// with protocol 4 or 41 and no flags or optional fields, or variant 1 carrying IPv4 or IPv6):
/// the offset of the inner packet from the start of the UDP header and its declared family.
fn gue(message: &[u8]) -> Result<(usize, Declared), DropReason> {
    let Some(&first) = message.first() else {
        return Err(DropReason::BadGue);
    };
    match first >> 6 {
        // Variant 1: the UDP payload is the IP packet itself; 0b0100 is IPv4, 0b0110 IPv6.
        1 if first >> 4 == 4 => Ok((UDP_LEN, Declared::V4)),
        1 if first >> 4 == 6 => Ok((UDP_LEN, Declared::V6)),
        0 => {
            let Some(header) = message.get(..GUE_LEN) else {
                return Err(DropReason::BadGue);
            };
            // C bit (control message), hlen (optional fields), flags: none allowed.
            let control_or_hlen = header[0] & 0x3f;
            let flags = u16::from_be_bytes([header[2], header[3]]);
            let declared = match header[1] {
                PROTO_IPIP => Declared::V4,
                PROTO_IPV6 => Declared::V6,
                _ => return Err(DropReason::BadGue),
            };
            if control_or_hlen != 0 || flags != 0 {
                return Err(DropReason::BadGue);
            }
            Ok((UDP_LEN + GUE_LEN, declared))
        }
        _ => Err(DropReason::BadGue),
    }
}

/// The GRE header (`bad_gre` for another version, protocol or a refused flag, or a header
/// longer than the payload; `bad_gre_checksum`; `wrong_gre_key` when the key is absent,
/// present or different against the peer's): the offset of the inner packet and its declared
/// family.
fn gre(key: Option<u32>, payload: &[u8]) -> Result<(usize, Declared), DropReason> {
    let Some(base) = payload.get(..4) else {
        return Err(DropReason::BadGre);
    };
    let flags = base[0];
    // base[1]: five reserved flag bits (the PPTP acknowledgement among them) and the version.
    if flags & GRE_REFUSED != 0 || base[1] != 0 {
        return Err(DropReason::BadGre);
    }
    let declared = match u16::from_be_bytes([base[2], base[3]]) {
        GRE_PROTO_IPV4 => Declared::V4,
        GRE_PROTO_IPV6 => Declared::V6,
        _ => return Err(DropReason::BadGre),
    };
    let word = |bit: u8| usize::from(flags & bit != 0) * 4;
    let len = 4 + word(GRE_CHECKSUM) + word(GRE_KEY) + word(GRE_SEQUENCE);
    if payload.len() < len {
        return Err(DropReason::BadGre);
    }
    if flags & GRE_CHECKSUM != 0 && ipv4::checksum(payload) != 0 {
        return Err(DropReason::BadGreChecksum);
    }
    let at = 4 + word(GRE_CHECKSUM);
    let carried = (flags & GRE_KEY != 0).then(|| {
        u32::from_be_bytes([
            payload[at],
            payload[at + 1],
            payload[at + 2],
            payload[at + 3],
        ])
    });
    if carried != key {
        return Err(DropReason::WrongGreKey);
    }
    Ok((len, declared))
}
