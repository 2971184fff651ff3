//! The checks every received frame passes before any plugin sees it, and decapsulation.
//!
//! [`classify`] takes one received frame and either accepts it — naming the VIP whose reply
//! it is and where the inner IPv4 or IPv6 packet lies in the frame — or gives the
//! [`DropReason`]. The order of the checks is part of the contract (the first failing check
//! names the reason): link type, outer header (IPv4: well formed, checksum; IPv6: well formed,
//! an accepted extension chain (`crate::ipv6`), no routing header with segments left; then
//! not a fragment, a tunnel protocol, addressed to the GIP of its family, from a known peer),
//! the tunnel header against that peer's configured tunnel (`crate::tunnel`: type, UDP port or
//! GRE key, then the header itself, which declares the inner family), then the inner header
//! of that family (well formed and exactly the outer payload, IPv4 checksum, not a tunnel
//! itself, source a VIP of that peer, no IPv4 source route, an accepted IPv6 extension chain
//! without a routing header with segments left, TTL or hop limit above 1). Inner fragments
//! pass, in both families. Who the peers and VIPs are comes from a [`Directory`]; this module
//! never allocates, never does I/O and never panics on any input.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::DropReason;
use super::ipv4::{self, PROTO_GRE, PROTO_IPIP, PROTO_IPV6};
use super::ipv6;
use super::tunnel::{self, Declared, Outer, Tunnel};

/// Length of an Ethernet II header.
pub(crate) const ETHERNET_LEN: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];
const ETHERTYPE_IPV6: [u8; 2] = [0x86, 0xdd];

/// Who the gateway, the peers and their VIPs are (the data path's runtime tables).
pub trait Directory {
    /// How the caller names a peer.
    type Peer: Copy;
    /// How the caller names a VIP.
    type Vip: Copy;
    /// The IPv4 gateway address (GIP; 0.0.0.0 when the gateway has none).
    fn gateway(&self) -> Ipv4Addr;
    /// The IPv6 gateway address, if the gateway has one.
    fn gateway6(&self) -> Option<Ipv6Addr>;
    /// The peer whose RS address (RIP) is `address`.
    fn peer_by_address(&self, address: IpAddr) -> Option<Self::Peer>;
    /// The VIP `inner_source` if `peer` serves it.
    fn vip_served_by(&self, peer: Self::Peer, inner_source: IpAddr) -> Option<Self::Vip>;
    /// The return tunnel `peer` is configured with (`userspace` decap judges it).
    fn tunnel(&self, peer: Self::Peer) -> Tunnel;
}

/// What a received frame looks like, by receive mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLayer<P> {
    /// `userspace` decap: Ethernet, outer IPv4 or IPv6, the tunnel header of the peer's type
    /// (none for IP in IP; UDP + GUE, UDP for FOU, GRE) and the inner packet. (The name
    /// predates the other tunnel types and IPv6.)
    EthernetIpip,
    /// `kernel` decap: the inner packet alone, read from the tunnel device of this peer.
    Decapsulated(P),
}

/// The checked inner header of an accepted packet, by family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inner {
    /// An inner IPv4 packet.
    V4(ipv4::Header),
    /// An inner IPv6 packet.
    V6(ipv6::Header),
}

impl Inner {
    /// The inner source address (the VIP).
    pub fn source(&self) -> IpAddr {
        match self {
            Inner::V4(h) => h.source.into(),
            Inner::V6(h) => h.source.into(),
        }
    }

    /// The inner destination address (the client).
    pub fn destination(&self) -> IpAddr {
        match self {
            Inner::V4(h) => h.destination.into(),
            Inner::V6(h) => h.destination.into(),
        }
    }

    /// The inner packet's length (IPv4 total length, or the IPv6 header plus payload length).
    pub fn total_len(&self) -> usize {
        match self {
            Inner::V4(h) => h.total_len,
            Inner::V6(h) => h.total_len(),
        }
    }
}

/// A frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted<P, V> {
    /// The peer it came from.
    pub peer: P,
    /// The VIP whose reply this is.
    pub vip: V,
    /// Where the inner IP header starts in the frame.
    pub inner_offset: usize,
    /// The inner packet's length.
    pub inner_len: usize,
    /// The inner header's fields, by family.
    pub inner: Inner,
}

/// A frame that failed a check, with its peer and VIP when the failure came after they
/// were known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rejected<P, V> {
    /// Why it is dropped.
    pub reason: DropReason,
    /// The peer it came from, for per-peer drop counters.
    pub peer: Option<P>,
    /// The VIP it belonged to, for per-VIP drop counters.
    pub vip: Option<V>,
}

impl<P, V> From<DropReason> for Rejected<P, V> {
    fn from(reason: DropReason) -> Self {
        Rejected {
            reason,
            peer: None,
            vip: None,
        }
    }
}

/// A rejection in the names of directory `D`.
pub type RejectedBy<D> = Rejected<<D as Directory>::Peer, <D as Directory>::Vip>;

/// What [`classify`] says of a frame, in the names of directory `D`.
pub type Classified<D> =
    Result<Accepted<<D as Directory>::Peer, <D as Directory>::Vip>, RejectedBy<D>>;

/// The peer, the inner packet's range in the frame and the family its tunnel declares.
type OuterChecked<D> = (<D as Directory>::Peer, usize, usize, Declared);

/// Checks one received frame and finds the inner packet in it.
pub fn classify<D: Directory>(
    frame: &[u8],
    link: LinkLayer<D::Peer>,
    directory: &D,
) -> Classified<D> {
    let (peer, inner_offset, inner_end, declared) = match link {
        LinkLayer::EthernetIpip => match frame.get(12..14) {
            Some(t) if *t == ETHERTYPE_IPV4 => check_outer4(frame, directory)?,
            Some(t) if *t == ETHERTYPE_IPV6 => check_outer6(frame, directory)?,
            _ => return Err(DropReason::NotIpv4.into()),
        },
        LinkLayer::Decapsulated(peer) => (peer, 0, frame.len(), Declared::Either),
    };
    let inner_bytes = &frame[inner_offset..inner_end];
    let (vip, inner) = match (declared, inner_bytes.first().map(|b| b >> 4)) {
        (Declared::V4 | Declared::Either, Some(4)) => check_inner4(peer, inner_bytes, directory)?,
        (Declared::V6 | Declared::Either, Some(6)) => check_inner6(peer, inner_bytes, directory)?,
        _ => return Err(by_peer(DropReason::MalformedInner, peer)),
    };
    Ok(Accepted {
        peer,
        vip,
        inner_offset,
        inner_len: inner.total_len(),
        inner,
    })
}

/// A rejection once the peer is known.
fn by_peer<P, V>(reason: DropReason, peer: P) -> Rejected<P, V> {
    Rejected {
        reason,
        peer: Some(peer),
        vip: None,
    }
}

/// A rejection once the peer and the VIP are known.
fn by_vip<P, V>(reason: DropReason, peer: P, vip: V) -> Rejected<P, V> {
    Rejected {
        reason,
        peer: Some(peer),
        vip: Some(vip),
    }
}

/// Whether an inner protocol (or next header) is a tunnel: IPIP, IPv6-in-IP or GRE.
fn is_nested_tunnel(protocol: u8) -> bool {
    matches!(protocol, PROTO_IPIP | PROTO_IPV6 | PROTO_GRE)
}

/// The inner IPv4 checks: well formed and exactly `bytes`, checksum, not a tunnel, source a
/// VIP of `peer`, no source route, TTL above 1.
fn check_inner4<D: Directory>(
    peer: D::Peer,
    bytes: &[u8],
    directory: &D,
) -> Result<(D::Vip, Inner), RejectedBy<D>> {
    let inner = match ipv4::check_header(bytes) {
        Ok(h) if h.total_len == bytes.len() => h,
        Ok(_) | Err(ipv4::HeaderProblem::Malformed | ipv4::HeaderProblem::NotIpv4) => {
            return Err(by_peer(DropReason::MalformedInner, peer));
        }
        Err(ipv4::HeaderProblem::BadChecksum) => {
            return Err(by_peer(DropReason::BadInnerChecksum, peer));
        }
    };
    if is_nested_tunnel(inner.protocol) {
        return Err(by_peer(DropReason::NestedTunnel, peer));
    }
    let vip = directory
        .vip_served_by(peer, inner.source.into())
        .ok_or(by_peer(DropReason::VipNotServed, peer))?;
    match ipv4::has_source_route(&bytes[..inner.header_len]) {
        Ok(false) => {}
        Ok(true) => return Err(by_vip(DropReason::SourceRoute, peer, vip)),
        Err(_) => return Err(by_vip(DropReason::MalformedInner, peer, vip)),
    }
    if inner.ttl <= 1 {
        return Err(by_vip(DropReason::TtlExpired, peer, vip));
    }
    Ok((vip, Inner::V4(inner)))
}

/// The drop reason of an IPv6 extension chain the walk refused.
fn chain_reason(problem: ipv6::HeaderProblem) -> DropReason {
    match problem {
        ipv6::HeaderProblem::RoutingHeader => DropReason::RoutingHeader,
        ipv6::HeaderProblem::BadExtensionChain => DropReason::BadExtensionHeaders,
        ipv6::HeaderProblem::NotIpv6 | ipv6::HeaderProblem::Malformed => DropReason::MalformedInner,
    }
}

/// The inner IPv6 checks, in the IPv4 order: well formed with a payload length exactly
/// `bytes` (IPv6 has no checksum), not a tunnel (also behind extension headers), source a VIP
/// of `peer`, an accepted extension chain without a routing header with segments left (the
/// counterpart of the source route, judged after the VIP as in IPv4), hop limit above 1.
fn check_inner6<D: Directory>(
    peer: D::Peer,
    bytes: &[u8],
    directory: &D,
) -> Result<(D::Vip, Inner), RejectedBy<D>> {
    let exact = bytes.get(4..6).is_some_and(|l| {
        bytes.len() >= ipv6::HEADER_LEN
            && ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([l[0], l[1]])) == bytes.len()
    });
    if !exact {
        return Err(by_peer(DropReason::MalformedInner, peer));
    }
    let walked = match ipv6::check_header(bytes) {
        Err(ipv6::HeaderProblem::NotIpv6 | ipv6::HeaderProblem::Malformed) => {
            return Err(by_peer(DropReason::MalformedInner, peer));
        }
        walked => walked,
    };
    if let Ok(h) = &walked
        && is_nested_tunnel(h.protocol)
    {
        return Err(by_peer(DropReason::NestedTunnel, peer));
    }
    let mut source = [0u8; 16];
    source.copy_from_slice(&bytes[8..24]);
    let vip = directory
        .vip_served_by(peer, Ipv6Addr::from(source).into())
        .ok_or(by_peer(DropReason::VipNotServed, peer))?;
    let inner = walked.map_err(|p| by_vip(chain_reason(p), peer, vip))?;
    if inner.hop_limit <= 1 {
        return Err(by_vip(DropReason::TtlExpired, peer, vip));
    }
    Ok((vip, Inner::V6(inner)))
}

/// The peer's tunnel header after an outer header of either family: returns the peer and
/// the inner packet's range in the frame and the family the tunnel declares.
fn check_tunnel<D: Directory>(
    frame: &[u8],
    directory: &D,
    fields: Outer,
    payload: (usize, usize),
) -> Result<OuterChecked<D>, RejectedBy<D>> {
    if !tunnel::is_tunnel_protocol(fields.protocol) {
        return Err(DropReason::NotIpip.into());
    }
    let gateway = match fields.destination {
        IpAddr::V4(_) => Some(IpAddr::V4(directory.gateway())),
        IpAddr::V6(_) => directory.gateway6().map(IpAddr::V6),
    };
    if gateway != Some(fields.destination) {
        return Err(DropReason::WrongGateway.into());
    }
    let peer = directory
        .peer_by_address(fields.source)
        .ok_or(DropReason::UnknownPeer)?;
    let (start, end) = payload;
    let tunnel: Tunnel = directory.tunnel(peer);
    let (inner, declared) = tunnel::inner_start(tunnel, fields, &frame[start..end])
        .map_err(|reason| by_peer(reason, peer))?;
    Ok((peer, start + inner, end, declared))
}

/// The outer IPv4 checks of `userspace` decap (the EtherType is IPv4).
fn check_outer4<D: Directory>(
    frame: &[u8],
    directory: &D,
) -> Result<OuterChecked<D>, RejectedBy<D>> {
    let outer = match ipv4::check_header(&frame[ETHERNET_LEN..]) {
        Ok(h) => h,
        Err(ipv4::HeaderProblem::NotIpv4) => return Err(DropReason::NotIpv4.into()),
        Err(ipv4::HeaderProblem::Malformed) => return Err(DropReason::MalformedOuter.into()),
        Err(ipv4::HeaderProblem::BadChecksum) => {
            return Err(DropReason::BadOuterChecksum.into());
        }
    };
    if outer.is_fragment {
        return Err(DropReason::OuterFragment.into());
    }
    let fields = Outer {
        protocol: outer.protocol,
        source: outer.source.into(),
        destination: outer.destination.into(),
    };
    let payload = (
        ETHERNET_LEN + outer.header_len,
        ETHERNET_LEN + outer.total_len,
    );
    check_tunnel(frame, directory, fields, payload)
}

/// The outer IPv6 checks of `userspace` decap (the EtherType is IPv6): the header and its
/// extension chain (a stock `ip6tnl`'s Destination Options header among them), then not a
/// fragment.
fn check_outer6<D: Directory>(
    frame: &[u8],
    directory: &D,
) -> Result<OuterChecked<D>, RejectedBy<D>> {
    let outer = match ipv6::check_header(&frame[ETHERNET_LEN..]) {
        Ok(h) => h,
        Err(ipv6::HeaderProblem::NotIpv6 | ipv6::HeaderProblem::Malformed) => {
            return Err(DropReason::MalformedOuter.into());
        }
        Err(p) => return Err(chain_reason(p).into()),
    };
    if outer.is_fragment() {
        return Err(DropReason::OuterFragment.into());
    }
    let fields = Outer {
        protocol: outer.protocol,
        source: outer.source.into(),
        destination: outer.destination.into(),
    };
    let payload = (
        ETHERNET_LEN + outer.upper_offset,
        ETHERNET_LEN + outer.total_len(),
    );
    check_tunnel(frame, directory, fields, payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder};

    const GIP: [u8; 4] = [10, 0, 0, 1];
    const RIP: [u8; 4] = [10, 0, 1, 2];
    const OTHER_RIP: [u8; 4] = [10, 0, 1, 3];
    const VIP: [u8; 4] = [192, 0, 2, 10];
    const OTHER_VIP: [u8; 4] = [192, 0, 2, 11];
    const CIP: [u8; 4] = [198, 51, 100, 7];
    const GUE_RIP: [u8; 4] = [10, 0, 1, 4];
    const FOU_RIP: [u8; 4] = [10, 0, 1, 5];
    const GRE_RIP: [u8; 4] = [10, 0, 1, 6];
    const KEYED_RIP: [u8; 4] = [10, 0, 1, 7];
    const GUE_PORT: u16 = 6080;
    const FOU_PORT: u16 = 5555;
    const KEY: u32 = 0x0102_0304;
    const GIP6: [u8; 16] = v6(0xd, 1);
    const RIP6: [u8; 16] = v6(1, 2);
    const OTHER_RIP6: [u8; 16] = v6(1, 3);
    const GUE_RIP6: [u8; 16] = v6(1, 4);
    const FOU_RIP6: [u8; 16] = v6(1, 5);
    const GRE_RIP6: [u8; 16] = v6(1, 6);
    const VIP6: [u8; 16] = v6(0xf, 0x10);
    const OTHER_VIP6: [u8; 16] = v6(0xf, 0x11);
    const CIP6: [u8; 16] = v6(0xc, 7);

    /// 2001:db8:`net`::`host`.
    const fn v6(net: u8, host: u8) -> [u8; 16] {
        [0x20, 1, 0xd, 0xb8, 0, net, 0, 0, 0, 0, 0, 0, 0, 0, 0, host]
    }

    /// IPv6 peers: 11 (RIP6, IP in IP: ip6ip6 and 4in6) serves VIP6 and VIP; 12 (OTHER_RIP6,
    /// IP in IP) serves OTHER_VIP6; 13 (GUE_RIP6, GUE to 6080), 14 (FOU_RIP6, FOU to 5555)
    /// and 15 (GRE_RIP6, GRE without key) serve VIP6. IPv4 peers 1 (6in4) and 3 to 5 serve
    /// VIP6 (id 20) too.
    fn peer6(a: [u8; 16]) -> Option<u8> {
        match a {
            RIP6 => Some(11),
            OTHER_RIP6 => Some(12),
            GUE_RIP6 => Some(13),
            FOU_RIP6 => Some(14),
            GRE_RIP6 => Some(15),
            _ => None,
        }
    }

    fn vip6(peer: u8, s: [u8; 16]) -> Option<u8> {
        match (peer, s) {
            (1 | 3..=5 | 11 | 13..=15, VIP6) => Some(20),
            (12, OTHER_VIP6) => Some(21),
            _ => None,
        }
    }

    /// Peer 1 (RIP) serves VIP (id 10); peer 2 (OTHER_RIP) serves OTHER_VIP (id 11); both
    /// send IPIP. Peers 3 (GUE_RIP, GUE to 6080), 4 (FOU_RIP, FOU to 5555), 5 (GRE_RIP, GRE
    /// without key) and 6 (KEYED_RIP, GRE with KEY) serve VIP too.
    struct Fixed;
    impl Directory for Fixed {
        type Peer = u8;
        type Vip = u8;
        fn gateway(&self) -> Ipv4Addr {
            GIP.into()
        }
        fn gateway6(&self) -> Option<Ipv6Addr> {
            Some(GIP6.into())
        }
        fn peer_by_address(&self, a: IpAddr) -> Option<u8> {
            let a = match a {
                IpAddr::V4(a) => a,
                IpAddr::V6(a) => return peer6(a.octets()),
            };
            match a.octets() {
                RIP => Some(1),
                OTHER_RIP => Some(2),
                GUE_RIP => Some(3),
                FOU_RIP => Some(4),
                GRE_RIP => Some(5),
                KEYED_RIP => Some(6),
                _ => None,
            }
        }
        fn vip_served_by(&self, peer: u8, s: IpAddr) -> Option<u8> {
            let s = match s {
                IpAddr::V4(s) => s,
                IpAddr::V6(s) => return vip6(peer, s.octets()),
            };
            match (peer, s.octets()) {
                (1 | 3..=6 | 11, VIP) => Some(10),
                (2, OTHER_VIP) => Some(11),
                _ => None,
            }
        }
        fn tunnel(&self, peer: u8) -> Tunnel {
            match peer {
                3 => Tunnel::Gue { port: GUE_PORT },
                4 => Tunnel::Fou { port: FOU_PORT },
                5 => Tunnel::Gre { key: None },
                6 => Tunnel::Gre { key: Some(KEY) },
                13 => Tunnel::Gue { port: GUE_PORT },
                14 => Tunnel::Fou { port: FOU_PORT },
                15 => Tunnel::Gre { key: None },
                _ => Tunnel::Ipip,
            }
        }
    }

    /// An inner UDP reply built by etherparse (independently of the code under test).
    fn inner_udp(src: [u8; 4], ttl: u8, payload_len: usize) -> Vec<u8> {
        let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
        let mut out = Vec::new();
        PacketBuilder::ipv4(src, CIP, ttl)
            .udp(80, 40000)
            .write(&mut out, &payload)
            .unwrap();
        out
    }

    fn inner_with(protocol: u8, src: [u8; 4], options: &[u8]) -> Vec<u8> {
        let mut h = Ipv4Header::new(8, 64, IpNumber(protocol), src, CIP).unwrap();
        h.options = options.try_into().unwrap();
        h.total_len = (h.header_len() + 8) as u16;
        h.header_checksum = h.calc_header_checksum();
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(&[0; 8]);
        out
    }

    fn outer_header(src: [u8; 4], dst: [u8; 4], protocol: u8, inner_len: usize) -> Vec<u8> {
        let mut h = Ipv4Header::new(inner_len as u16, 63, IpNumber(protocol), src, dst).unwrap();
        h.header_checksum = h.calc_header_checksum();
        h.to_bytes().to_vec()
    }

    fn frame_from(outer: &[u8], inner: &[u8]) -> Vec<u8> {
        let eth = Ethernet2Header {
            source: [2, 0, 0, 0, 0, 1],
            destination: [2, 0, 0, 0, 0, 2],
            ether_type: etherparse::EtherType::IPV4,
        };
        let mut f = eth.to_bytes().to_vec();
        f.extend_from_slice(outer);
        f.extend_from_slice(inner);
        f
    }

    fn tunnelled(inner: &[u8]) -> Vec<u8> {
        frame_from(&outer_header(RIP, GIP, 4, inner.len()), inner)
    }

    /// Re-checksums the outer header after a test changed it on purpose.
    fn fix_outer_checksum(f: &mut [u8]) {
        let ihl = usize::from(f[14] & 0xf) * 4;
        f[24..26].fill(0);
        let c = ipv4::checksum(&f[14..14 + ihl.min(f.len() - 14)]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }

    fn edited(mut f: Vec<u8>, at: usize, value: u8, fix: bool) -> Vec<u8> {
        f[at] = value;
        if fix {
            fix_outer_checksum(&mut f);
        }
        f
    }

    #[test]
    fn userspace_table() {
        use DropReason::*;
        let good = tunnelled(&inner_udp(VIP, 64, 64));
        let mut padded = tunnelled(&inner_udp(VIP, 64, 0));
        padded.extend_from_slice(&[0; 4]); // trailer bytes after the outer packet
        let mut long_outer = good.clone();
        long_outer[14 + 3] += 1; // outer total length claims one byte more than present
        fix_outer_checksum(&mut long_outer);
        let mut inner_lies = good.clone();
        inner_lies[34 + 3] -= 1; // inner total length one short of the outer payload
        let c = {
            inner_lies[34 + 10..34 + 12].fill(0);
            ipv4::checksum(&inner_lies[34..54])
        };
        inner_lies[44..46].copy_from_slice(&c.to_be_bytes());
        let mut inner_bad_sum = good.clone();
        inner_bad_sum[34 + 11] ^= 0x55;
        let mut inner_frag = inner_udp(VIP, 64, 64);
        inner_frag[6] = 0x20; // more fragments
        inner_frag[10..12].fill(0);
        let c = ipv4::checksum(&inner_frag[..20]);
        inner_frag[10..12].copy_from_slice(&c.to_be_bytes());

        type Case = (
            &'static str,
            Vec<u8>,
            Result<(usize, usize, u8), (DropReason, Option<u8>)>,
        );
        let cases: Vec<Case> = vec![
            ("good udp", good.clone(), Ok((34, 92, 10))),
            ("ethernet padding", padded, Ok((34, 28, 10))),
            (
                "inner fragment passes",
                tunnelled(&inner_frag),
                Ok((34, 92, 10)),
            ),
            (
                "ipv6 ethertype",
                edited(good.clone(), 12, 0x86, false),
                Err((NotIpv4, None)),
            ),
            (
                "outer version 6",
                edited(good.clone(), 14, 0x65, false),
                Err((NotIpv4, None)),
            ),
            ("empty", vec![], Err((NotIpv4, None))),
            (
                "ethernet only",
                good[..14].to_vec(),
                Err((MalformedOuter, None)),
            ),
            (
                "outer ihl 3",
                edited(good.clone(), 14, 0x43, true),
                Err((MalformedOuter, None)),
            ),
            (
                "outer ihl past end",
                edited(good[..40].to_vec(), 14, 0x4f, false),
                Err((MalformedOuter, None)),
            ),
            (
                "outer length past end",
                long_outer,
                Err((MalformedOuter, None)),
            ),
            (
                "outer checksum",
                edited(good.clone(), 25, good[25] ^ 1, false),
                Err((BadOuterChecksum, None)),
            ),
            (
                "outer more fragments",
                edited(good.clone(), 20, 0x20, true),
                Err((OuterFragment, None)),
            ),
            (
                "outer fragment offset",
                edited(good.clone(), 21, 0x08, true),
                Err((OuterFragment, None)),
            ),
            (
                "outer tcp",
                edited(good.clone(), 23, 6, true),
                Err((NotIpip, None)),
            ),
            (
                "outer udp from an ipip peer",
                edited(good.clone(), 23, 17, true),
                Err((WrongTunnel, None)),
            ),
            (
                "wrong gateway",
                frame_from(
                    &outer_header(RIP, [10, 0, 0, 9], 4, 92),
                    &inner_udp(VIP, 64, 64),
                ),
                Err((WrongGateway, None)),
            ),
            (
                "unknown peer",
                frame_from(
                    &outer_header([10, 9, 9, 9], GIP, 4, 92),
                    &inner_udp(VIP, 64, 64),
                ),
                Err((UnknownPeer, None)),
            ),
            (
                "inner truncated",
                tunnelled(&inner_udp(VIP, 64, 64)[..19]),
                Err((MalformedInner, None)),
            ),
            (
                "inner version 6",
                edited(good.clone(), 34, 0x65, false),
                Err((MalformedInner, None)),
            ),
            ("inner length lies", inner_lies, Err((MalformedInner, None))),
            (
                "inner checksum",
                inner_bad_sum,
                Err((BadInnerChecksum, None)),
            ),
            (
                "nested ipip",
                tunnelled(&inner_with(4, VIP, &[])),
                Err((NestedTunnel, None)),
            ),
            (
                "nested ipv6",
                tunnelled(&inner_with(41, VIP, &[])),
                Err((NestedTunnel, None)),
            ),
            (
                "nested gre",
                tunnelled(&inner_with(47, VIP, &[])),
                Err((NestedTunnel, None)),
            ),
            (
                "vip of another peer",
                tunnelled(&inner_udp(OTHER_VIP, 64, 8)),
                Err((VipNotServed, None)),
            ),
            (
                "not a vip",
                tunnelled(&inner_udp(CIP, 64, 8)),
                Err((VipNotServed, None)),
            ),
            (
                "lsrr",
                tunnelled(&inner_with(17, VIP, &[1, 0x83, 7, 4, 1, 2, 3, 4])),
                Err((SourceRoute, Some(10))),
            ),
            (
                "ssrr",
                tunnelled(&inner_with(17, VIP, &[0x89, 7, 4, 1, 2, 3, 4, 0])),
                Err((SourceRoute, Some(10))),
            ),
            (
                "record route passes",
                tunnelled(&inner_with(17, VIP, &[7, 7, 4, 0, 0, 0, 0, 0])),
                Ok((34, 36, 10)),
            ),
            (
                "bad option length",
                tunnelled(&inner_with(17, VIP, &[0x44, 9, 0, 0])),
                Err((MalformedInner, Some(10))),
            ),
            (
                "ttl 1",
                tunnelled(&inner_udp(VIP, 1, 8)),
                Err((TtlExpired, Some(10))),
            ),
            (
                "ttl 0",
                tunnelled(&inner_udp(VIP, 0, 8)),
                Err((TtlExpired, Some(10))),
            ),
            (
                "ttl 2 passes",
                tunnelled(&inner_udp(VIP, 2, 8)),
                Ok((34, 36, 10)),
            ),
        ];
        for (name, frame, want) in cases {
            let got = classify(&frame, LinkLayer::EthernetIpip, &Fixed);
            // Outer failures know no peer; the unknown peer's either.
            if let Err(r) = &got
                && matches!(
                    r.reason,
                    NotIpv4
                        | MalformedOuter
                        | BadOuterChecksum
                        | OuterFragment
                        | NotIpip
                        | WrongGateway
                        | UnknownPeer
                )
            {
                assert_eq!(r.peer, None, "{name}");
            } else {
                let from = got.as_ref().map_or_else(|r| r.peer, |a| Some(a.peer));
                assert!(from.is_some(), "{name}");
            }
            let got = got
                .map(|a| (a.inner_offset, a.inner_len, a.vip))
                .map_err(|r| (r.reason, r.vip));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn kernel_decap_table() {
        use DropReason::*;
        let good = inner_udp(VIP, 64, 1400);
        type Case = (&'static str, u8, Vec<u8>, Result<usize, DropReason>);
        let cases: Vec<Case> = vec![
            ("good", 1, good.clone(), Ok(1428)),
            ("other peer's vip", 2, good.clone(), Err(VipNotServed)),
            (
                "trailing byte",
                1,
                [&good[..], &[0]].concat(),
                Err(MalformedInner),
            ),
            ("truncated", 1, good[..100].to_vec(), Err(MalformedInner)),
            ("nested", 1, inner_with(4, VIP, &[]), Err(NestedTunnel)),
            ("ttl 1", 1, inner_udp(VIP, 1, 8), Err(TtlExpired)),
        ];
        for (name, peer, frame, want) in cases {
            let got = classify(&frame, LinkLayer::Decapsulated(peer), &Fixed);
            // Every verdict after the peer is known names it (per-peer counters).
            let from = got.map_or_else(|r| r.peer, |a| Some(a.peer));
            assert_eq!(from, Some(peer), "{name}");
            let got = got.map(|a| a.inner_len).map_err(|r| r.reason);
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn accepted_inner_after_ttl_decrement_equals_an_independently_built_packet() {
        let frame = tunnelled(&inner_udp(VIP, 64, 1400));
        let a = classify(&frame, LinkLayer::EthernetIpip, &Fixed).unwrap();
        let mut inner = frame[a.inner_offset..a.inner_offset + a.inner_len].to_vec();
        ipv4::decrement_ttl(&mut inner);
        assert_eq!(inner, inner_udp(VIP, 63, 1400));
    }

    /// An Ethernet frame of `protocol` from `src` to GIP carrying `payload`.
    fn outer_frame(src: [u8; 4], protocol: u8, payload: &[u8]) -> Vec<u8> {
        frame_from(&outer_header(src, GIP, protocol, payload.len()), payload)
    }

    /// A UDP datagram from `src` to GIP, port 40001 → `port`, its checksum computed by
    /// etherparse (or 0 when `checksum` is false).
    fn udp_datagram(src: [u8; 4], port: u16, payload: &[u8], checksum: bool) -> Vec<u8> {
        let ip = Ipv4Header::new((8 + payload.len()) as u16, 63, IpNumber::UDP, src, GIP).unwrap();
        let mut udp = etherparse::UdpHeader {
            source_port: 40001,
            destination_port: port,
            length: (8 + payload.len()) as u16,
            checksum: 0,
        };
        if checksum {
            udp.checksum = udp.calc_checksum_ipv4(&ip, payload).unwrap();
        }
        [&udp.to_bytes()[..], payload].concat()
    }

    fn gue_frame(src: [u8; 4], port: u16, gue: [u8; 4], inner: &[u8]) -> Vec<u8> {
        let payload = [&gue[..], inner].concat();
        outer_frame(src, 17, &udp_datagram(src, port, &payload, true))
    }

    /// A GRE packet: flags byte, protocol, optional checksum (computed by etherparse's
    /// independent ones' complement sum), key and sequence number, then `inner`.
    fn gre_payload(flags: u8, version: u8, protocol: u16, key: u32, inner: &[u8]) -> Vec<u8> {
        let mut g = vec![flags, version];
        g.extend_from_slice(&protocol.to_be_bytes());
        let checksum_at = g.len();
        if flags & 0x80 != 0 {
            g.extend_from_slice(&[0; 4]);
        }
        if flags & 0x20 != 0 {
            g.extend_from_slice(&key.to_be_bytes());
        }
        if flags & 0x10 != 0 {
            g.extend_from_slice(&7u32.to_be_bytes());
        }
        g.extend_from_slice(inner);
        if flags & 0x80 != 0 {
            let sum = etherparse::checksum::Sum16BitWords::new()
                .add_slice(&g)
                .ones_complement()
                .to_be();
            g[checksum_at..checksum_at + 2].copy_from_slice(&sum.to_be_bytes());
        }
        g
    }

    #[test]
    fn tunnel_table() {
        use DropReason::*;
        let inner = inner_udp(VIP, 64, 64);
        let n = inner.len();
        let gue_good = [0, 4, 0, 0];
        let fou = |src, port, payload: &[u8], sum| {
            outer_frame(src, 17, &udp_datagram(src, port, payload, sum))
        };
        let gre =
            |src, flags, key| outer_frame(src, 47, &gre_payload(flags, 0, 0x0800, key, &inner));
        let mut gue_other_sport = gue_frame(GUE_RIP, GUE_PORT, gue_good, &inner);
        gue_other_sport[34..36].copy_from_slice(&1234u16.to_be_bytes());
        // The source port is in the checksum: recompute it (from the old one, RFC 1624).
        let mut bad_udp_sum = gue_frame(GUE_RIP, GUE_PORT, gue_good, &inner);
        bad_udp_sum[40] ^= 0x10;
        let resum = |f: &mut Vec<u8>| {
            let payload = f[42..].to_vec();
            let port = u16::from_be_bytes([f[36], f[37]]);
            let mut d = udp_datagram(GUE_RIP, port, &payload, true);
            d[..2].copy_from_slice(&f[34..36]);
            let ip = Ipv4Header::new(d.len() as u16, 63, IpNumber::UDP, GUE_RIP, GIP).unwrap();
            let h = etherparse::UdpHeader {
                source_port: u16::from_be_bytes([f[34], f[35]]),
                destination_port: port,
                length: d.len() as u16,
                checksum: 0,
            };
            let c = h.calc_checksum_ipv4(&ip, &payload).unwrap();
            f[40..42].copy_from_slice(&c.to_be_bytes());
        };
        resum(&mut gue_other_sport);
        let mut udp_long = gue_frame(GUE_RIP, GUE_PORT, gue_good, &inner);
        udp_long[38..40].copy_from_slice(&((8 + 4 + n + 1) as u16).to_be_bytes());
        let mut udp_short = gue_frame(GUE_RIP, GUE_PORT, gue_good, &inner);
        udp_short[38..40].copy_from_slice(&7u16.to_be_bytes());
        let mut gre_bad_sum = gre(GRE_RIP, 0x80, 0);
        gre_bad_sum[40] ^= 1;

        type Case = (&'static str, Vec<u8>, Result<(usize, u8), DropReason>);
        let cases: Vec<Case> = vec![
            (
                "gue",
                gue_frame(GUE_RIP, GUE_PORT, gue_good, &inner),
                Ok((46, 3)),
            ),
            ("gue, other source port", gue_other_sport, Ok((46, 3))),
            (
                "gue, no udp checksum",
                fou(GUE_RIP, GUE_PORT, &[&gue_good[..], &inner].concat(), false),
                Ok((46, 3)),
            ),
            (
                "gue variant 1 (direct ipv4)",
                fou(GUE_RIP, GUE_PORT, &inner, true),
                Ok((42, 3)),
            ),
            (
                "gue to another port",
                gue_frame(GUE_RIP, GUE_PORT + 1, gue_good, &inner),
                Err(WrongTunnel),
            ),
            (
                "gue from an ipip peer",
                gue_frame(RIP, GUE_PORT, gue_good, &inner),
                Err(WrongTunnel),
            ),
            (
                "ipip from a gue peer",
                outer_frame(GUE_RIP, 4, &inner),
                Err(WrongTunnel),
            ),
            ("gre from a gue peer", gre(GUE_RIP, 0, 0), Err(WrongTunnel)),
            ("udp checksum", bad_udp_sum, Err(BadUdpChecksum)),
            ("udp length past the packet", udp_long, Err(BadUdpLength)),
            ("udp length below 8", udp_short, Err(BadUdpLength)),
            (
                "udp header cut",
                outer_frame(GUE_RIP, 17, &[0x9c, 0x41, 0x17, 0xc0]),
                Err(BadUdpLength),
            ),
            (
                "gue control message",
                gue_frame(GUE_RIP, GUE_PORT, [0x20, 0, 0, 0], &inner),
                Err(BadGue),
            ),
            (
                "gue optional fields",
                gue_frame(GUE_RIP, GUE_PORT, [0x01, 4, 0, 0], &inner),
                Err(BadGue),
            ),
            (
                "gue flags",
                gue_frame(GUE_RIP, GUE_PORT, [0, 4, 0x80, 0], &inner),
                Err(BadGue),
            ),
            (
                "gue version 2",
                gue_frame(GUE_RIP, GUE_PORT, [0x80, 4, 0, 0], &inner),
                Err(BadGue),
            ),
            (
                "gue declaring ipv6, carrying ipv4",
                gue_frame(GUE_RIP, GUE_PORT, [0, 41, 0, 0], &inner),
                Err(MalformedInner),
            ),
            (
                "gue variant 1 ipv6, cut",
                fou(GUE_RIP, GUE_PORT, &[0x60, 0, 0, 0], true),
                Err(MalformedInner),
            ),
            (
                "gue header cut",
                fou(GUE_RIP, GUE_PORT, &[0, 4], true),
                Err(BadGue),
            ),
            ("gue empty", fou(GUE_RIP, GUE_PORT, &[], true), Err(BadGue)),
            (
                "gue nested ipip",
                gue_frame(GUE_RIP, GUE_PORT, gue_good, &inner_with(4, VIP, &[])),
                Err(NestedTunnel),
            ),
            (
                "gue inner cut",
                gue_frame(GUE_RIP, GUE_PORT, gue_good, &inner[..n - 1]),
                Err(MalformedInner),
            ),
            (
                "gue ttl 1",
                gue_frame(GUE_RIP, GUE_PORT, gue_good, &inner_udp(VIP, 1, 8)),
                Err(TtlExpired),
            ),
            ("fou", fou(FOU_RIP, FOU_PORT, &inner, true), Ok((42, 4))),
            (
                "fou, no udp checksum",
                fou(FOU_RIP, FOU_PORT, &inner, false),
                Ok((42, 4)),
            ),
            (
                "fou to the gue port",
                fou(FOU_RIP, GUE_PORT, &inner, true),
                Err(WrongTunnel),
            ),
            (
                "fou carrying gue",
                gue_frame(FOU_RIP, FOU_PORT, gue_good, &inner),
                Err(MalformedInner),
            ),
            (
                "fou vip of another peer",
                fou(FOU_RIP, FOU_PORT, &inner_udp(OTHER_VIP, 64, 8), true),
                Err(VipNotServed),
            ),
            ("gre", gre(GRE_RIP, 0, 0), Ok((38, 5))),
            ("gre with checksum", gre(GRE_RIP, 0x80, 0), Ok((42, 5))),
            ("gre with sequence", gre(GRE_RIP, 0x10, 0), Ok((42, 5))),
            ("gre keyed", gre(KEYED_RIP, 0x20, KEY), Ok((42, 6))),
            (
                "gre keyed, checksum, sequence",
                gre(KEYED_RIP, 0xb0, KEY),
                Ok((50, 6)),
            ),
            (
                "gre key for an unkeyed peer",
                gre(GRE_RIP, 0x20, KEY),
                Err(WrongGreKey),
            ),
            (
                "gre without the peer's key",
                gre(KEYED_RIP, 0, 0),
                Err(WrongGreKey),
            ),
            (
                "gre other key",
                gre(KEYED_RIP, 0x20, KEY + 1),
                Err(WrongGreKey),
            ),
            ("gre checksum", gre_bad_sum, Err(BadGreChecksum)),
            ("gre routing", gre(GRE_RIP, 0x40, 0), Err(BadGre)),
            (
                "gre strict source route",
                gre(GRE_RIP, 0x08, 0),
                Err(BadGre),
            ),
            ("gre recursion", gre(GRE_RIP, 0x01, 0), Err(BadGre)),
            (
                "gre version 1",
                outer_frame(GRE_RIP, 47, &gre_payload(0, 1, 0x0800, 0, &inner)),
                Err(BadGre),
            ),
            (
                "gre ack flag",
                outer_frame(GRE_RIP, 47, &gre_payload(0, 0x80, 0x0800, 0, &inner)),
                Err(BadGre),
            ),
            (
                "gre carrying ipv6",
                outer_frame(GRE_RIP, 47, &gre_payload(0, 0, 0x86dd, 0, &inner)),
                Err(MalformedInner),
            ),
            (
                "gre carrying ethernet",
                outer_frame(GRE_RIP, 47, &gre_payload(0, 0, 0x6558, 0, &inner)),
                Err(BadGre),
            ),
            (
                "gre key cut",
                outer_frame(KEYED_RIP, 47, &[0x20, 0, 8, 0, 1]),
                Err(BadGre),
            ),
            (
                "gre header cut",
                outer_frame(GRE_RIP, 47, &[0, 0, 8]),
                Err(BadGre),
            ),
            ("gre from an ipip peer", gre(RIP, 0, 0), Err(WrongTunnel)),
            (
                "udp from a gre peer",
                fou(GRE_RIP, FOU_PORT, &inner, true),
                Err(WrongTunnel),
            ),
            (
                "gre nested gre",
                outer_frame(
                    GRE_RIP,
                    47,
                    &gre_payload(0, 0, 0x0800, 0, &inner_with(47, VIP, &[])),
                ),
                Err(NestedTunnel),
            ),
            (
                "gre unknown peer",
                gre([10, 9, 9, 9], 0, 0),
                Err(UnknownPeer),
            ),
        ];
        for (name, frame, want) in cases {
            let got = classify(&frame, LinkLayer::EthernetIpip, &Fixed);
            if let Err(r) = &got {
                // Every tunnel-header drop names its (known) peer, for per-peer counters.
                assert_eq!(r.peer.is_some(), r.reason != UnknownPeer, "{name}");
            }
            let got = got.map(|a| (a.inner_offset, a.peer)).map_err(|r| r.reason);
            assert_eq!(got, want, "{name}");
            if let Ok((offset, _)) = got {
                assert_eq!(
                    &frame[offset..offset + inner.len().min(frame.len() - offset)][..20],
                    &inner[..20],
                    "{name}"
                );
            }
        }
    }

    #[test]
    fn accepted_gue_and_gre_inner_is_the_packet_sent() {
        let inner = inner_udp(VIP, 64, 1400);
        for frame in [
            gue_frame(GUE_RIP, GUE_PORT, [0, 4, 0, 0], &inner),
            outer_frame(KEYED_RIP, 47, &gre_payload(0xa0, 0, 0x0800, KEY, &inner)),
        ] {
            let a = classify(&frame, LinkLayer::EthernetIpip, &Fixed).unwrap();
            assert_eq!(
                &frame[a.inner_offset..a.inner_offset + a.inner_len],
                &inner[..]
            );
        }
    }

    #[test]
    fn every_prefix_and_every_single_byte_change_is_handled_without_panic() {
        let inner = inner_with(17, VIP, &[7, 7, 4, 0, 0, 0, 0, 0]);
        for frame in [
            gue_frame(GUE_RIP, GUE_PORT, [0, 4, 0, 0], &inner),
            outer_frame(KEYED_RIP, 47, &gre_payload(0xb0, 0, 0x0800, KEY, &inner)),
        ] {
            for end in 0..frame.len() {
                let _ = classify(&frame[..end], LinkLayer::EthernetIpip, &Fixed);
            }
            for i in 0..frame.len() {
                for v in [0u8, 1, 0x0f, 0x45, 0x80, 0xff] {
                    let mut f = frame.clone();
                    f[i] = v;
                    let _ = classify(&f, LinkLayer::EthernetIpip, &Fixed);
                }
            }
        }
        let frame = tunnelled(&inner);
        for end in 0..frame.len() {
            let _ = classify(&frame[..end], LinkLayer::EthernetIpip, &Fixed);
            let _ = classify(&frame[..end], LinkLayer::Decapsulated(1), &Fixed);
        }
        for i in 0..frame.len() {
            for v in [0u8, 1, 0x0f, 0x45, 0x80, 0xff] {
                let mut f = frame.clone();
                f[i] = v;
                let _ = classify(&f, LinkLayer::EthernetIpip, &Fixed);
            }
        }
    }

    /// The IPv6 forms: outer IPv6 of every tunnel type, 6in4, and the inner IPv6 checks.
    mod v6 {
        use super::*;
        use etherparse::{Ipv6Header, PacketBuilder};

        /// An inner IPv6 UDP reply `src` -> CIP6 built by etherparse.
        pub(super) fn inner6_udp(src: [u8; 16], hop: u8, payload_len: usize) -> Vec<u8> {
            let payload: Vec<u8> = (0..payload_len).map(|i| i as u8).collect();
            let mut out = Vec::new();
            PacketBuilder::ipv6(src, CIP6, hop)
                .udp(80, 40000)
                .write(&mut out, &payload)
                .unwrap();
            out
        }

        /// An IPv6 packet `src` -> `dst`, first next header `next`, extension bytes `ext` then
        /// `data` (the payload length covers both).
        fn ip6(
            src: [u8; 16],
            dst: [u8; 16],
            hop: u8,
            next: u8,
            ext: &[u8],
            data: &[u8],
        ) -> Vec<u8> {
            let h = Ipv6Header {
                traffic_class: 0,
                flow_label: Default::default(),
                payload_length: (ext.len() + data.len()) as u16,
                next_header: etherparse::IpNumber(next),
                hop_limit: hop,
                source: src,
                destination: dst,
            };
            [&h.to_bytes()[..], ext, data].concat()
        }

        /// An 8-byte extension header: next header, length 0, then two bytes and four zeros
        /// (segments left is the fourth byte of a routing header).
        fn ext8(next: u8, third: u8, fourth: u8) -> [u8; 8] {
            [next, 0, third, fourth, 0, 0, 0, 0]
        }

        /// The Destination Options header a stock ip6tnl inserts: the tunnel encapsulation limit
        /// option (type 4, length 1, limit 4) and a PadN.
        fn ip6tnl_limit(next: u8) -> [u8; 8] {
            [next, 0, 4, 1, 4, 1, 1, 0]
        }

        /// A fragment header: next header, offset in 8-byte units, more flag.
        fn frag(next: u8, offset: u16, more: bool) -> [u8; 8] {
            let field = (offset << 3) | u16::from(more);
            let f = field.to_be_bytes();
            [next, 0, f[0], f[1], 0, 0, 0, 9]
        }

        /// An Ethernet frame carrying an outer IPv6 packet `src` -> `dst`.
        fn frame6(src: [u8; 16], dst: [u8; 16], next: u8, ext: &[u8], payload: &[u8]) -> Vec<u8> {
            let eth = etherparse::Ethernet2Header {
                source: [2, 0, 0, 0, 0, 1],
                destination: [2, 0, 0, 0, 0, 2],
                ether_type: etherparse::EtherType::IPV6,
            };
            [&eth.to_bytes()[..], &ip6(src, dst, 63, next, ext, payload)].concat()
        }

        /// An outer IPv6 frame from `src` to GIP6.
        fn outer6(src: [u8; 16], next: u8, ext: &[u8], payload: &[u8]) -> Vec<u8> {
            frame6(src, GIP6, next, ext, payload)
        }

        /// A UDP datagram `src` -> GIP6, port 40001 -> `port`, its checksum by etherparse (or 0).
        fn udp6(src: [u8; 16], port: u16, payload: &[u8], checksum: bool) -> Vec<u8> {
            let mut out = Vec::new();
            PacketBuilder::ipv6(src, GIP6, 63)
                .udp(40001, port)
                .write(&mut out, payload)
                .unwrap();
            let mut d = out[40..].to_vec();
            if !checksum {
                d[6..8].fill(0);
            }
            d
        }

        /// A GRE header of version 0 without flags carrying `protocol`, then `inner`.
        fn gre0(protocol: u16, inner: &[u8]) -> Vec<u8> {
            [&[0, 0][..], &protocol.to_be_bytes(), inner].concat()
        }

        type Want = Result<(usize, usize, u8), (DropReason, Option<u8>)>;

        #[test]
        fn ipv6_table() {
            use DropReason::*;
            let inner = inner6_udp(VIP6, 64, 64);
            let n = inner.len();
            let inner4 = inner_udp(VIP, 64, 64);
            let udp = 17;
            let dest = ipv6::NH_DEST_OPTS;
            let gue6 = |gue: &[u8], sum| {
                outer6(
                    GUE_RIP6,
                    udp,
                    &[],
                    &udp6(GUE_RIP6, GUE_PORT, &[gue, &inner].concat(), sum),
                )
            };
            let inner_ext = |next, ext: &[u8], src, hop| ip6(src, CIP6, hop, next, ext, &[0; 8]);
            let mut bad_udp_sum = gue6(&[0, 41, 0, 0], true);
            bad_udp_sum[14 + 40 + 9] ^= 1;
            let mut udp_long = gue6(&[0, 41, 0, 0], true);
            udp_long[14 + 40 + 5] += 1;
            let mut padded = outer6(RIP6, 41, &[], &inner);
            padded.extend_from_slice(&[0; 6]);
            let mut payload_past_end = outer6(RIP6, 41, &[], &inner);
            payload_past_end[14 + 5] += 1;
            let mut inner_short = inner.clone();
            inner_short[5] -= 1; // the inner payload length one short of the outer payload
            let mut inner_long = inner.clone();
            inner_long[5] += 1;
            let five = [
                ext8(dest, 0, 0),
                ext8(dest, 0, 0),
                ext8(dest, 0, 0),
                ext8(dest, 0, 0),
                ext8(41, 0, 0),
            ]
            .concat();
            let five_inner = [
                ext8(dest, 0, 0),
                ext8(dest, 0, 0),
                ext8(dest, 0, 0),
                ext8(dest, 0, 0),
                ext8(17, 0, 0),
            ]
            .concat();
            let hbh_second = [ext8(0, 0, 0), ext8(41, 0, 0)].concat();
            let routed = |left| [ext8(41, 0, left)].concat();
            let ip6ip6 = |inner: &[u8]| outer6(RIP6, 41, &[], inner);

            let cases: Vec<(&str, Vec<u8>, Want)> = vec![
                // Accepted, one per combination.
                ("ip6ip6", ip6ip6(&inner), Ok((54, n, 20))),
                (
                    "ip6ip6 behind ip6tnl's destination options",
                    outer6(RIP6, dest, &ip6tnl_limit(41), &inner),
                    Ok((62, n, 20)),
                ),
                (
                    "4in6 behind ip6tnl's destination options",
                    outer6(RIP6, dest, &ip6tnl_limit(4), &inner4),
                    Ok((62, inner4.len(), 10)),
                ),
                (
                    "4in6",
                    outer6(RIP6, 4, &[], &inner4),
                    Ok((54, inner4.len(), 10)),
                ),
                ("6in4", outer_frame(RIP, 41, &inner), Ok((34, n, 20))),
                ("ethernet padding", padded, Ok((54, n, 20))),
                (
                    "outer routing header, segments left 0",
                    outer6(RIP6, ipv6::NH_ROUTING, &routed(0), &inner),
                    Ok((62, n, 20)),
                ),
                (
                    "outer atomic fragment",
                    outer6(RIP6, ipv6::NH_FRAGMENT, &frag(41, 0, false), &inner),
                    Ok((62, n, 20)),
                ),
                ("gue over ipv6", gue6(&[0, 41, 0, 0], true), Ok((66, n, 20))),
                (
                    "gue over ipv6, zero udp checksum (RFC 6935)",
                    gue6(&[0, 41, 0, 0], false),
                    Ok((66, n, 20)),
                ),
                (
                    "gue variant 1 ipv6 over ipv6",
                    gue6(&[], true),
                    Ok((62, n, 20)),
                ),
                (
                    "gue over ipv4 carrying ipv6",
                    gue_frame(GUE_RIP, GUE_PORT, [0, 41, 0, 0], &inner),
                    Ok((46, n, 20)),
                ),
                (
                    "fou over ipv6",
                    outer6(FOU_RIP6, udp, &[], &udp6(FOU_RIP6, FOU_PORT, &inner, true)),
                    Ok((62, n, 20)),
                ),
                (
                    "ip6gre",
                    outer6(GRE_RIP6, 47, &[], &gre0(0x86dd, &inner)),
                    Ok((58, n, 20)),
                ),
                (
                    "gre over ipv4 carrying ipv6",
                    outer_frame(GRE_RIP, 47, &gre0(0x86dd, &inner)),
                    Ok((38, n, 20)),
                ),
                (
                    "inner first fragment passes",
                    outer6(RIP6, 41, &[], &inner_ext(44, &frag(17, 0, true), VIP6, 64)),
                    Ok((54, 56, 20)),
                ),
                (
                    "inner later fragment passes",
                    outer6(RIP6, 41, &[], &inner_ext(44, &frag(17, 8, false), VIP6, 64)),
                    Ok((54, 56, 20)),
                ),
                (
                    "inner routing header, segments left 0, passes",
                    ip6ip6(&inner_ext(43, &ext8(17, 0, 0), VIP6, 64)),
                    Ok((54, 56, 20)),
                ),
                (
                    "inner hop-by-hop and destination options pass",
                    ip6ip6(&inner_ext(
                        0,
                        &[ext8(dest, 0, 0), ext8(17, 0, 0)].concat(),
                        VIP6,
                        64,
                    )),
                    Ok((54, 64, 20)),
                ),
                // Outer IPv6.
                (
                    "ipv6 ethertype, version 4",
                    frame6(RIP6, GIP6, 41, &[], &inner)
                        .into_iter()
                        .enumerate()
                        .map(|(i, b)| if i == 14 { 0x45 } else { b })
                        .collect(),
                    Err((MalformedOuter, None)),
                ),
                (
                    "outer header cut",
                    ip6ip6(&inner)[..14 + 39].to_vec(),
                    Err((MalformedOuter, None)),
                ),
                (
                    "payload length past the end",
                    payload_past_end,
                    Err((MalformedOuter, None)),
                ),
                (
                    "outer destination options cut",
                    outer6(RIP6, dest, &[41, 1, 0, 0, 0, 0, 0, 0], &[]),
                    Err((MalformedOuter, None)),
                ),
                (
                    "five outer extension headers",
                    outer6(RIP6, dest, &five, &inner),
                    Err((BadExtensionHeaders, None)),
                ),
                (
                    "outer hop-by-hop not first",
                    outer6(RIP6, dest, &hbh_second, &inner),
                    Err((BadExtensionHeaders, None)),
                ),
                (
                    "outer routing header, segments left 1",
                    outer6(RIP6, ipv6::NH_ROUTING, &routed(1), &inner),
                    Err((RoutingHeader, None)),
                ),
                (
                    "outer first fragment",
                    outer6(RIP6, ipv6::NH_FRAGMENT, &frag(41, 0, true), &inner),
                    Err((OuterFragment, None)),
                ),
                (
                    "outer later fragment",
                    outer6(RIP6, ipv6::NH_FRAGMENT, &frag(41, 9, false), &inner),
                    Err((OuterFragment, None)),
                ),
                (
                    "outer tcp",
                    outer6(RIP6, 6, &[], &inner),
                    Err((NotIpip, None)),
                ),
                (
                    "outer icmpv6 behind destination options",
                    outer6(RIP6, dest, &ext8(58, 0, 0), &inner),
                    Err((NotIpip, None)),
                ),
                (
                    "wrong gateway",
                    frame6(RIP6, v6(0xd, 9), 41, &[], &inner),
                    Err((WrongGateway, None)),
                ),
                (
                    "ipv4 gip as an ipv4-mapped destination",
                    frame6(
                        RIP6,
                        Ipv4Addr::from(GIP).to_ipv6_mapped().octets(),
                        41,
                        &[],
                        &inner,
                    ),
                    Err((WrongGateway, None)),
                ),
                (
                    "unknown peer",
                    outer6(v6(1, 9), 41, &[], &inner),
                    Err((UnknownPeer, None)),
                ),
                (
                    "udp from an ip6ip6 peer",
                    outer6(RIP6, udp, &[], &udp6(RIP6, GUE_PORT, &inner, true)),
                    Err((WrongTunnel, None)),
                ),
                (
                    "udp checksum over ipv6",
                    bad_udp_sum,
                    Err((BadUdpChecksum, None)),
                ),
                ("udp length over ipv6", udp_long, Err((BadUdpLength, None))),
                (
                    "gue protocol 6",
                    gue6(&[0, 6, 0, 0], true),
                    Err((BadGue, None)),
                ),
                (
                    "gre protocol 0x8847",
                    outer6(GRE_RIP6, 47, &[], &gre0(0x8847, &inner)),
                    Err((BadGre, None)),
                ),
                // The family the tunnel declares against the inner version.
                (
                    "ip6ip6 carrying ipv4",
                    ip6ip6(&inner4),
                    Err((MalformedInner, None)),
                ),
                (
                    "ipip carrying ipv6",
                    outer_frame(RIP, 4, &inner),
                    Err((MalformedInner, None)),
                ),
                (
                    "ip6gre 0x86dd carrying ipv4",
                    outer6(GRE_RIP6, 47, &[], &gre0(0x86dd, &inner4)),
                    Err((MalformedInner, None)),
                ),
                (
                    "gue protocol 41 carrying ipv4",
                    outer6(
                        GUE_RIP6,
                        udp,
                        &[],
                        &udp6(
                            GUE_RIP6,
                            GUE_PORT,
                            &[&[0, 41, 0, 0][..], &inner4].concat(),
                            true,
                        ),
                    ),
                    Err((MalformedInner, None)),
                ),
                // Inner IPv6.
                (
                    "inner payload length short",
                    ip6ip6(&inner_short),
                    Err((MalformedInner, None)),
                ),
                (
                    "inner payload length long",
                    ip6ip6(&inner_long),
                    Err((MalformedInner, None)),
                ),
                (
                    "inner header cut",
                    ip6ip6(&inner[..39]),
                    Err((MalformedInner, None)),
                ),
                (
                    "inner destination options cut",
                    ip6ip6(&inner_ext(dest, &[17, 2, 0, 0, 0, 0, 0, 0], VIP6, 64)),
                    Err((MalformedInner, None)),
                ),
                (
                    "nested ipip",
                    ip6ip6(&inner_ext(4, &[], VIP6, 64)),
                    Err((NestedTunnel, None)),
                ),
                (
                    "nested ipv6",
                    ip6ip6(&inner_ext(41, &[], VIP6, 64)),
                    Err((NestedTunnel, None)),
                ),
                (
                    "nested gre",
                    ip6ip6(&inner_ext(47, &[], VIP6, 64)),
                    Err((NestedTunnel, None)),
                ),
                (
                    "nested ipv6 behind destination options",
                    ip6ip6(&inner_ext(dest, &ext8(41, 0, 0), VIP6, 64)),
                    Err((NestedTunnel, None)),
                ),
                (
                    "nested gre in a later fragment",
                    ip6ip6(&inner_ext(44, &frag(47, 8, false), VIP6, 64)),
                    Err((NestedTunnel, None)),
                ),
                (
                    "vip of another peer",
                    ip6ip6(&inner6_udp(OTHER_VIP6, 64, 8)),
                    Err((VipNotServed, None)),
                ),
                (
                    "not a vip",
                    ip6ip6(&inner6_udp(CIP6, 64, 8)),
                    Err((VipNotServed, None)),
                ),
                (
                    "the ipv4-mapped form of an ipv4 vip",
                    ip6ip6(&inner6_udp(
                        Ipv4Addr::from(VIP).to_ipv6_mapped().octets(),
                        64,
                        8,
                    )),
                    Err((VipNotServed, None)),
                ),
                (
                    "inner routing header, segments left 1",
                    ip6ip6(&inner_ext(43, &ext8(17, 0, 1), VIP6, 64)),
                    Err((RoutingHeader, Some(20))),
                ),
                (
                    "inner routing header behind destination options",
                    ip6ip6(&inner_ext(
                        dest,
                        &[ext8(43, 0, 0), ext8(17, 0, 2)].concat(),
                        VIP6,
                        64,
                    )),
                    Err((RoutingHeader, Some(20))),
                ),
                (
                    "inner routing header from a source that is no vip",
                    ip6ip6(&inner_ext(43, &ext8(17, 0, 1), CIP6, 64)),
                    Err((VipNotServed, None)),
                ),
                (
                    "five inner extension headers",
                    ip6ip6(&inner_ext(dest, &five_inner, VIP6, 64)),
                    Err((BadExtensionHeaders, Some(20))),
                ),
                (
                    "inner hop-by-hop not first",
                    ip6ip6(&inner_ext(
                        dest,
                        &[ext8(0, 0, 0), ext8(17, 0, 0)].concat(),
                        VIP6,
                        64,
                    )),
                    Err((BadExtensionHeaders, Some(20))),
                ),
                (
                    "hop limit 1",
                    ip6ip6(&inner6_udp(VIP6, 1, 8)),
                    Err((TtlExpired, Some(20))),
                ),
                (
                    "hop limit 0",
                    ip6ip6(&inner6_udp(VIP6, 0, 8)),
                    Err((TtlExpired, Some(20))),
                ),
            ];
            for (name, frame, want) in cases {
                let got = classify(&frame, LinkLayer::EthernetIpip, &Fixed);
                if let Ok(a) = &got {
                    // The inner packet is exactly the bytes that were encapsulated.
                    assert_eq!(a.inner_len, a.inner.total_len(), "{name}");
                    assert!(frame.len() >= a.inner_offset + a.inner_len, "{name}");
                }
                let got = got
                    .map(|a| (a.inner_offset, a.inner_len, a.vip))
                    .map_err(|r| (r.reason, r.vip));
                assert_eq!(got, want, "{name}");
            }
        }

        #[test]
        fn a_rejection_after_the_outer_checks_names_its_ipv6_peer() {
            let inner = inner6_udp(VIP6, 64, 8);
            let wrong_tunnel = outer6(RIP6, 17, &[], &udp6(RIP6, GUE_PORT, &inner, true));
            let r = classify(&wrong_tunnel, LinkLayer::EthernetIpip, &Fixed).unwrap_err();
            assert_eq!((r.reason, r.peer), (DropReason::WrongTunnel, Some(11)));
            let hop1 = outer6(RIP6, 41, &[], &inner6_udp(VIP6, 1, 8));
            let r = classify(&hop1, LinkLayer::EthernetIpip, &Fixed).unwrap_err();
            assert_eq!((r.peer, r.vip), (Some(11), Some(20)));
        }

        /// A gateway with no IPv6 address: every outer IPv6 frame is `wrong_gateway`.
        struct Ipv4Only;
        impl Directory for Ipv4Only {
            type Peer = u8;
            type Vip = u8;
            fn gateway(&self) -> Ipv4Addr {
                Fixed.gateway()
            }
            fn gateway6(&self) -> Option<Ipv6Addr> {
                None
            }
            fn peer_by_address(&self, a: IpAddr) -> Option<u8> {
                Fixed.peer_by_address(a)
            }
            fn vip_served_by(&self, peer: u8, s: IpAddr) -> Option<u8> {
                Fixed.vip_served_by(peer, s)
            }
            fn tunnel(&self, peer: u8) -> Tunnel {
                Fixed.tunnel(peer)
            }
        }

        #[test]
        fn outer_ipv6_to_a_gateway_without_address6_is_wrong_gateway() {
            let inner = inner6_udp(VIP6, 64, 8);
            for dst in [GIP6, [0; 16]] {
                let r = classify(
                    &frame6(RIP6, dst, 41, &[], &inner),
                    LinkLayer::EthernetIpip,
                    &Ipv4Only,
                );
                assert_eq!(r.unwrap_err().reason, DropReason::WrongGateway);
            }
            // 6in4 still works without address6: the outer header is IPv4.
            let a = classify(
                &outer_frame(RIP, 41, &inner),
                LinkLayer::EthernetIpip,
                &Ipv4Only,
            );
            assert_eq!(a.map(|a| a.vip), Ok(20));
        }

        #[test]
        fn kernel_decap_takes_ipv6_by_its_version() {
            let good = inner6_udp(VIP6, 64, 100);
            let a = classify(&good, LinkLayer::Decapsulated(11), &Fixed).unwrap();
            assert_eq!((a.inner_offset, a.inner_len, a.vip), (0, good.len(), 20));
            let hop1 = inner6_udp(VIP6, 1, 100);
            let r = classify(&hop1, LinkLayer::Decapsulated(11), &Fixed).unwrap_err();
            assert_eq!(r.reason, DropReason::TtlExpired);
            let r = classify(&good[..50], LinkLayer::Decapsulated(11), &Fixed).unwrap_err();
            assert_eq!(r.reason, DropReason::MalformedInner);
        }

        #[test]
        fn accepted_inner_ipv6_after_hop_decrement_equals_an_independently_built_packet() {
            let inner = inner6_udp(VIP6, 64, 1400);
            for frame in [
                outer6(RIP6, ipv6::NH_DEST_OPTS, &ip6tnl_limit(41), &inner),
                outer_frame(RIP, 41, &inner),
                outer6(GRE_RIP6, 47, &[], &gre0(0x86dd, &inner)),
                outer6(
                    GUE_RIP6,
                    17,
                    &[],
                    &udp6(
                        GUE_RIP6,
                        GUE_PORT,
                        &[&[0, 41, 0, 0][..], &inner].concat(),
                        true,
                    ),
                ),
            ] {
                let a = classify(&frame, LinkLayer::EthernetIpip, &Fixed).unwrap();
                let Inner::V6(h) = a.inner else {
                    panic!("not ipv6: {:?}", a.inner)
                };
                assert_eq!(h.source.octets(), VIP6);
                assert_eq!(a.inner.destination(), IpAddr::from(CIP6));
                let mut out = frame[a.inner_offset..a.inner_offset + a.inner_len].to_vec();
                ipv6::decrement_hop_limit(&mut out);
                assert_eq!(out, inner6_udp(VIP6, 63, 1400));
            }
        }

        #[test]
        fn every_prefix_and_every_single_byte_change_of_ipv6_frames_is_handled_without_panic() {
            let inner = ip6(VIP6, CIP6, 64, 60, &ext8(17, 0, 0), &[0; 8]);
            for frame in [
                outer6(RIP6, ipv6::NH_DEST_OPTS, &ip6tnl_limit(41), &inner),
                outer6(
                    GUE_RIP6,
                    17,
                    &[],
                    &udp6(
                        GUE_RIP6,
                        GUE_PORT,
                        &[&[0, 41, 0, 0][..], &inner].concat(),
                        true,
                    ),
                ),
                outer6(GRE_RIP6, 47, &[], &gre0(0x86dd, &inner)),
                outer_frame(RIP, 41, &inner),
            ] {
                for end in 0..frame.len() {
                    let _ = classify(&frame[..end], LinkLayer::EthernetIpip, &Fixed);
                    let _ = classify(&frame[..end], LinkLayer::Decapsulated(11), &Fixed);
                }
                for i in 0..frame.len() {
                    for v in [0u8, 1, 4, 0x29, 0x2b, 0x2c, 0x3c, 0x60, 0x80, 0xff] {
                        let mut f = frame.clone();
                        f[i] = v;
                        let _ = classify(&f, LinkLayer::EthernetIpip, &Fixed);
                    }
                }
            }
        }
    }
}
