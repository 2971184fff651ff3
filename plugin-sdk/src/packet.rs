//! The plugin author's read-only view of one packet.
//!
//! [`Packet`] decodes an ABI v2 [`PacketDesc`] on demand (little-endian numbers,
//! network-order addresses of either family) and adds the batch time. It owns no data and must never allocate: it sits on
//! the per-packet hot path.

use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::abi::v2::{
    FAMILY_IPV4, FAMILY_IPV6, FLAG_DONT_FRAGMENT, FLAG_FRAGMENT, FLAG_LATER_FRAGMENT, FLAG_PORTS,
    FLAG_TCP_FLAGS, FLAG_WELL_FORMED, PacketDesc,
};

/// TCP header flags (the 13th byte of the TCP header).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;

    /// Whether every flag in `mask` is set.
    pub const fn has(self, mask: u8) -> bool {
        self.0 & mask == mask
    }
}

/// One reply packet (inner IPv4 or IPv6, VIP → client) as a plugin sees it.
#[derive(Debug, Clone, Copy)]
pub struct Packet<'a> {
    desc: &'a PacketDesc,
    now_ns: u64,
}

impl<'a> Packet<'a> {
    /// A view of `desc`, judged at monotonic time `now_ns`.
    pub const fn new(desc: &'a PacketDesc, now_ns: u64) -> Packet<'a> {
        Packet { desc, now_ns }
    }

    /// Whether the bytes held a well-formed IPv4 header; if neither this nor
    /// [`Self::is_ipv6`] holds, only [`Self::len`] and [`Self::header`] mean anything (the
    /// gateway checks headers first, so this is rare).
    pub fn is_ipv4(&self) -> bool {
        self.desc.flags & FLAG_WELL_FORMED != 0 && self.desc.family == FAMILY_IPV4
    }

    /// Whether the bytes held a well-formed IPv6 header (and extension-header chain).
    pub fn is_ipv6(&self) -> bool {
        self.desc.flags & FLAG_WELL_FORMED != 0 && self.desc.family == FAMILY_IPV6
    }

    fn addr(&self, bytes: &[u8; 16]) -> IpAddr {
        if self.desc.family == FAMILY_IPV6 {
            IpAddr::V6(Ipv6Addr::from(*bytes))
        } else {
            IpAddr::V4(Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]))
        }
    }

    /// The source address: the VIP that answers (`0.0.0.0` if not well-formed).
    pub fn src(&self) -> IpAddr {
        self.addr(&self.desc.src)
    }

    /// The destination address: the client the reply goes to (`0.0.0.0` if not
    /// well-formed).
    pub fn dst(&self) -> IpAddr {
        self.addr(&self.desc.dst)
    }

    /// The client (the destination of the reply) if it is IPv4, as a host-order number,
    /// handy for prefix matching.
    pub fn client_v4(&self) -> Option<u32> {
        self.is_ipv4().then(|| {
            let d = &self.desc.dst;
            u32::from_be_bytes([d[0], d[1], d[2], d[3]])
        })
    }

    /// The client (the destination of the reply) if it is IPv6, as a host-order number,
    /// handy for prefix matching.
    pub fn client_v6(&self) -> Option<u128> {
        self.is_ipv6().then(|| u128::from_be_bytes(self.desc.dst))
    }

    /// The IP protocol number (6 TCP, 17 UDP, 1 ICMP, 58 ICMPv6, …); for IPv6 the upper-layer
    /// protocol after the extension headers.
    pub fn protocol(&self) -> u8 {
        self.desc.protocol
    }

    /// The packet's length in bytes as it will be forwarded (IP header included).
    pub fn len(&self) -> u32 {
        u32::from_le(self.desc.len)
    }

    /// Whether the packet has no bytes at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The time-to-live (IPv4) or hop limit (IPv6) as received.
    pub fn ttl(&self) -> u8 {
        self.desc.ttl
    }

    /// The type-of-service (IPv4) or traffic class (IPv6) byte: DSCP and ECN.
    pub fn tos(&self) -> u8 {
        self.desc.tos
    }

    /// The IPv4 identification field, or the IPv6 Fragment header's identification (0
    /// without one).
    pub fn ip_id(&self) -> u32 {
        u32::from_le(self.desc.ip_id)
    }

    /// The IPv6 flow label (20 bits; 0 for IPv4).
    pub fn flow_label(&self) -> u32 {
        u32::from_le(self.desc.flow_label)
    }

    /// The source port (the service's port) for TCP, UDP, UDP-Lite and SCTP; `None` for
    /// other protocols and for fragments after the first.
    pub fn src_port(&self) -> Option<u16> {
        (self.desc.flags & FLAG_PORTS != 0).then(|| u16::from_le(self.desc.src_port))
    }

    /// The destination port (the client's port); see [`Self::src_port`].
    pub fn dst_port(&self) -> Option<u16> {
        (self.desc.flags & FLAG_PORTS != 0).then(|| u16::from_le(self.desc.dst_port))
    }

    /// The TCP flags, for TCP packets that carry a TCP header.
    pub fn tcp_flags(&self) -> Option<TcpFlags> {
        (self.desc.flags & FLAG_TCP_FLAGS != 0).then_some(TcpFlags(self.desc.tcp_flags))
    }

    /// Whether the packet is a fragment (first or later).
    pub fn is_fragment(&self) -> bool {
        self.desc.flags & FLAG_FRAGMENT != 0
    }

    /// Whether the packet is a fragment after the first (it has no transport header).
    pub fn is_later_fragment(&self) -> bool {
        self.desc.flags & FLAG_LATER_FRAGMENT != 0
    }

    /// The fragment offset in bytes.
    pub fn fragment_offset(&self) -> u16 {
        u16::from_le(self.desc.fragment_offset)
    }

    /// Whether the IPv4 don't-fragment bit is set (always false for IPv6).
    pub fn dont_fragment(&self) -> bool {
        self.desc.flags & FLAG_DONT_FRAGMENT != 0
    }

    /// The IP header length in bytes: IPv4 20 to 60; IPv6 40 plus the extension headers
    /// before the transport header.
    pub fn ip_header_len(&self) -> usize {
        usize::from(u16::from_le(self.desc.ip_header_len))
    }

    /// The first bytes of the packet (up to [`crate::abi::v2::HEADER_BYTES`]), IP header
    /// first.
    pub fn header(&self) -> &'a [u8] {
        let n = usize::from(u16::from_le(self.desc.captured)).min(self.desc.header.len());
        &self.desc.header[..n]
    }

    /// The transport header bytes that were captured (empty for later fragments).
    pub fn transport_header(&self) -> &'a [u8] {
        if self.desc.flags & FLAG_WELL_FORMED == 0 || self.is_later_fragment() {
            return &[];
        }
        self.header().get(self.ip_header_len()..).unwrap_or(&[])
    }

    /// ICMP type and code, for ICMP (IPv4) and ICMPv6 (IPv6) packets that carry them.
    pub fn icmp_type_code(&self) -> Option<(u8, u8)> {
        let icmp = match self.desc.family {
            FAMILY_IPV4 => crate::abi::protocol::ICMP,
            _ => crate::abi::protocol::ICMPV6,
        };
        if self.protocol() != icmp {
            return None;
        }
        match self.transport_header() {
            [t, c, ..] => Some((*t, *c)),
            _ => None,
        }
    }

    /// The batch's monotonic time in nanoseconds (the same for every packet of a batch).
    pub fn now_ns(&self) -> u64 {
        self.now_ns
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn udp(
        src: [u8; 4],
        dst: [u8; 4],
        sport: u16,
        dport: u16,
        payload: usize,
    ) -> alloc::vec::Vec<u8> {
        let total = 28 + payload;
        let mut p = alloc::vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..22].copy_from_slice(&sport.to_be_bytes());
        p[22..24].copy_from_slice(&dport.to_be_bytes());
        p
    }

    #[test]
    fn udp_view() {
        let bytes = udp([192, 0, 2, 1], [203, 0, 113, 9], 53, 40000, 100);
        let d = PacketDesc::parse(&bytes);
        let p = Packet::new(&d, 77);
        assert!(p.is_ipv4() && !p.is_ipv6());
        assert_eq!(p.src(), Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(p.dst(), Ipv4Addr::new(203, 0, 113, 9));
        assert_eq!(p.client_v4(), Some(0xCB00_7109));
        assert_eq!(p.client_v6(), None);
        assert_eq!((p.protocol(), p.len(), p.ttl()), (17, 128, 64));
        assert_eq!((p.src_port(), p.dst_port()), (Some(53), Some(40000)));
        assert_eq!(p.tcp_flags(), None);
        assert!(!p.is_fragment() && !p.dont_fragment());
        assert_eq!(p.header(), &bytes[..128]);
        assert_eq!(p.transport_header(), &bytes[20..128]);
        assert_eq!(p.icmp_type_code(), None);
        assert_eq!(p.now_ns(), 77);
    }

    #[test]
    fn icmp_and_tcp_flags() {
        let mut bytes = udp([192, 0, 2, 1], [203, 0, 113, 9], 0x0300, 0, 0);
        bytes[9] = 1;
        let d = PacketDesc::parse(&bytes);
        let p = Packet::new(&d, 0);
        assert_eq!(p.icmp_type_code(), Some((3, 0)));
        assert_eq!(p.src_port(), None);
        assert!(TcpFlags(0x12).has(TcpFlags::SYN | TcpFlags::ACK));
        assert!(!TcpFlags(0x10).has(TcpFlags::SYN));
    }

    #[test]
    fn ipv6_view_and_icmpv6() {
        let vip: Ipv6Addr = "2001:db8::10".parse().unwrap();
        let client: Ipv6Addr = "2001:db8:ff::7".parse().unwrap();
        let mut b = alloc::vec![0u8; 48];
        b[..4].copy_from_slice(&((6u32 << 28) | (0x28 << 20) | 0xabcde).to_be_bytes());
        b[4..6].copy_from_slice(&8u16.to_be_bytes());
        b[6] = 58;
        b[7] = 9;
        b[8..24].copy_from_slice(&vip.octets());
        b[24..40].copy_from_slice(&client.octets());
        b[40] = 129; // echo reply
        let d = PacketDesc::parse(&b);
        let p = Packet::new(&d, 1);
        assert!(p.is_ipv6() && !p.is_ipv4());
        assert_eq!((p.src(), p.dst()), (IpAddr::V6(vip), IpAddr::V6(client)));
        assert_eq!(p.client_v6(), Some(u128::from(client)));
        assert_eq!(p.client_v4(), None);
        assert_eq!(
            (p.ttl(), p.tos(), p.flow_label(), p.ip_header_len()),
            (9, 0x28, 0xabcde, 40)
        );
        assert_eq!(p.icmp_type_code(), Some((129, 0)));
        assert_eq!(
            (p.src_port(), p.tcp_flags(), p.dont_fragment()),
            (None, None, false)
        );
        let garbage = PacketDesc::parse(&[0x60; 12]);
        let g = Packet::new(&garbage, 0);
        assert!(!g.is_ipv4() && !g.is_ipv6());
        assert_eq!((g.client_v4(), g.client_v6(), g.len()), (None, None, 12));
        assert!(g.transport_header().is_empty());
    }
}
