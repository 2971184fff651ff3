//! The checks every received frame passes before any plugin sees it, and decapsulation.
//!
//! [`classify`] takes one received frame and either accepts it — naming the VIP whose reply
//! it is and where the inner IPv4 packet lies in the frame — or gives the [`DropReason`].
//! The order of the checks is part of the contract (the first failing check names the
//! reason): link type, outer header (well formed, checksum, not a fragment, a tunnel protocol,
//! addressed to GIP, from a known peer), the tunnel header against that peer's configured
//! tunnel (`crate::tunnel`: type, UDP port or GRE key, then the header itself), then the inner header (well formed and exactly the outer
//! payload, checksum, not a tunnel itself, source a VIP of that peer, no source route, TTL
//! above 1). Inner fragments pass. Who the peers and VIPs are comes from a [`Directory`];
//! this module never allocates, never does I/O and never panics on any input.

use std::net::Ipv4Addr;

use super::DropReason;
use super::ipv4::{self, HeaderProblem, PROTO_GRE, PROTO_IPIP, PROTO_IPV6};
use super::tunnel::{self, Outer, Tunnel};

/// Length of an Ethernet II header.
pub(crate) const ETHERNET_LEN: usize = 14;
const ETHERTYPE_IPV4: [u8; 2] = [0x08, 0x00];

/// Who the gateway, the peers and their VIPs are (the data path's runtime tables).
pub trait Directory {
    /// How the caller names a peer.
    type Peer: Copy;
    /// How the caller names a VIP.
    type Vip: Copy;
    /// The gateway address (GIP).
    fn gateway(&self) -> Ipv4Addr;
    /// The peer whose RS address (RIP) is `address`.
    fn peer_by_address(&self, address: Ipv4Addr) -> Option<Self::Peer>;
    /// The VIP `inner_source` if `peer` serves it.
    fn vip_served_by(&self, peer: Self::Peer, inner_source: Ipv4Addr) -> Option<Self::Vip>;
    /// The return tunnel `peer` is configured with (`userspace` decap judges it).
    fn tunnel(&self, peer: Self::Peer) -> Tunnel;
}

/// What a received frame looks like, by receive mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkLayer<P> {
    /// `userspace` decap: Ethernet, outer IPv4, the tunnel header of the peer's type (none
    /// for IPIP; UDP + GUE, UDP for FOU, GRE) and the inner packet. (The name predates the
    /// other tunnel types.)
    EthernetIpip,
    /// `kernel` decap: the inner IPv4 packet alone, read from the tunnel device of this peer.
    Decapsulated(P),
}

/// A frame that passed every check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted<P, V> {
    /// The peer it came from.
    pub peer: P,
    /// The VIP whose reply this is.
    pub vip: V,
    /// Where the inner IPv4 header starts in the frame.
    pub inner_offset: usize,
    /// The inner packet's length (its total length field).
    pub inner_len: usize,
    /// The inner header's fields.
    pub inner: ipv4::Header,
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

/// Checks one received frame and finds the inner packet in it.
pub fn classify<D: Directory>(
    frame: &[u8],
    link: LinkLayer<D::Peer>,
    directory: &D,
) -> Classified<D> {
    let (peer, inner_offset, inner_end) = match link {
        LinkLayer::EthernetIpip => check_outer(frame, directory)?,
        LinkLayer::Decapsulated(peer) => (peer, 0, frame.len()),
    };
    let from_peer = |reason| Rejected {
        reason,
        peer: Some(peer),
        vip: None,
    };
    let inner_bytes = &frame[inner_offset..inner_end];
    let inner = match ipv4::check_header(inner_bytes) {
        Ok(h) if h.total_len == inner_bytes.len() => h,
        Ok(_) | Err(HeaderProblem::Malformed | HeaderProblem::NotIpv4) => {
            return Err(from_peer(DropReason::MalformedInner));
        }
        Err(HeaderProblem::BadChecksum) => return Err(from_peer(DropReason::BadInnerChecksum)),
    };
    if matches!(inner.protocol, PROTO_IPIP | PROTO_IPV6 | PROTO_GRE) {
        return Err(from_peer(DropReason::NestedTunnel));
    }
    let vip = directory
        .vip_served_by(peer, inner.source)
        .ok_or(from_peer(DropReason::VipNotServed))?;
    let drop = |reason| Rejected {
        reason,
        peer: Some(peer),
        vip: Some(vip),
    };
    match ipv4::has_source_route(&inner_bytes[..inner.header_len]) {
        Ok(false) => {}
        Ok(true) => return Err(drop(DropReason::SourceRoute)),
        Err(_) => return Err(drop(DropReason::MalformedInner)),
    }
    if inner.ttl <= 1 {
        return Err(drop(DropReason::TtlExpired));
    }
    Ok(Accepted {
        peer,
        vip,
        inner_offset,
        inner_len: inner.total_len,
        inner,
    })
}

/// The outer checks of `userspace` decap: returns the peer and the inner packet's range.
fn check_outer<D: Directory>(
    frame: &[u8],
    directory: &D,
) -> Result<(D::Peer, usize, usize), RejectedBy<D>> {
    if frame.get(12..14) != Some(&ETHERTYPE_IPV4[..]) {
        return Err(DropReason::NotIpv4.into());
    }
    let outer = match ipv4::check_header(&frame[ETHERNET_LEN..]) {
        Ok(h) => h,
        Err(HeaderProblem::NotIpv4) => return Err(DropReason::NotIpv4.into()),
        Err(HeaderProblem::Malformed) => return Err(DropReason::MalformedOuter.into()),
        Err(HeaderProblem::BadChecksum) => return Err(DropReason::BadOuterChecksum.into()),
    };
    if outer.is_fragment {
        return Err(DropReason::OuterFragment.into());
    }
    if !tunnel::is_tunnel_protocol(outer.protocol) {
        return Err(DropReason::NotIpip.into());
    }
    if outer.destination != directory.gateway() {
        return Err(DropReason::WrongGateway.into());
    }
    let peer = directory
        .peer_by_address(outer.source)
        .ok_or(DropReason::UnknownPeer)?;
    let payload_start = ETHERNET_LEN + outer.header_len;
    let payload_end = ETHERNET_LEN + outer.total_len;
    let fields = Outer {
        protocol: outer.protocol,
        source: outer.source,
        destination: outer.destination,
    };
    let tunnel: Tunnel = directory.tunnel(peer);
    let inner = tunnel::inner_start(tunnel, fields, &frame[payload_start..payload_end]).map_err(
        |reason| Rejected {
            reason,
            peer: Some(peer),
            vip: None,
        },
    )?;
    Ok((peer, payload_start + inner, payload_end))
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
        fn peer_by_address(&self, a: Ipv4Addr) -> Option<u8> {
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
        fn vip_served_by(&self, peer: u8, s: Ipv4Addr) -> Option<u8> {
            match (peer, s.octets()) {
                (1 | 3..=6, VIP) => Some(10),
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
                "gue carrying ipv6",
                gue_frame(GUE_RIP, GUE_PORT, [0, 41, 0, 0], &inner),
                Err(BadGue),
            ),
            (
                "gue variant 1 ipv6",
                fou(GUE_RIP, GUE_PORT, &[0x60, 0, 0, 0], true),
                Err(BadGue),
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
                Err(BadGre),
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
}
