//! Packet crafting with `etherparse`: inner replies (UDP, TCP), IPIP, GUE, FOU and GRE
//! encapsulation and Ethernet framing, built independently of tungate's own code.

use std::net::Ipv4Addr;

use etherparse::{Ethernet2Header, IpNumber, Ipv4Header, PacketBuilder, TcpHeader};

/// Deterministic payload bytes.
pub fn payload(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// An inner UDP reply `src:80 -> dst:40000` with `payload_len` bytes.
pub fn udp(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv4(src.octets(), dst.octets(), ttl)
        .udp(80, 40000)
        .write(&mut out, &payload(payload_len))
        .unwrap();
    out
}

/// An inner TCP segment `src:443 -> dst:40001` (ACK|PSH) with `payload_len` bytes.
pub fn tcp(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, payload_len: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut h = TcpHeader::new(443, 40001, 1000, 65535);
    h.ack = true;
    h.psh = true;
    h.acknowledgment_number = 77;
    PacketBuilder::ipv4(src.octets(), dst.octets(), ttl)
        .tcp_header(h)
        .write(&mut out, &payload(payload_len))
        .unwrap();
    out
}

/// An inner packet of any protocol with an 8-byte zero payload.
pub fn raw_inner(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, options: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(8, 64, IpNumber(protocol), src.octets(), dst.octets()).unwrap();
    h.options = options.try_into().unwrap();
    h.total_len = (h.header_len() + 8) as u16;
    h.header_checksum = h.calc_header_checksum();
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(&[0; 8]);
    out
}

/// The same packet with its TTL lowered by one and the header checksum recomputed.
pub fn with_ttl_decremented(packet: &[u8]) -> Vec<u8> {
    let (mut h, rest) = Ipv4Header::from_slice(packet).unwrap();
    h.time_to_live -= 1;
    h.header_checksum = h.calc_header_checksum();
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(rest);
    out
}

/// An outer IPv4 header (IPIP unless `protocol` says otherwise) around `inner`.
pub fn ipip(src: Ipv4Addr, dst: Ipv4Addr, inner: &[u8]) -> Vec<u8> {
    outer(src, dst, 4, inner)
}

/// An outer IPv4 header with any protocol around `payload`.
pub fn outer(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(
        payload.len() as u16,
        64,
        IpNumber(protocol),
        src.octets(),
        dst.octets(),
    )
    .unwrap();
    h.header_checksum = h.calc_header_checksum();
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

/// An Ethernet II frame carrying an IPv4 packet.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let eth = Ethernet2Header {
        source: src,
        destination: dst,
        ether_type: etherparse::EtherType::IPV4,
    };
    let mut out = eth.to_bytes().to_vec();
    out.extend_from_slice(ip);
    out
}

/// Recomputes the IPv4 header checksum of `packet` in place (after a deliberate edit).
pub fn fix_ip_checksum(packet: &mut [u8]) {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    packet[10..12].fill(0);
    let mut sum: u32 = packet[..ihl.min(packet.len())]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    packet[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
}

/// The UDP source port of crafted GUE/FOU packets (tungate never judges it).
pub const TUNNEL_SOURCE_PORT: u16 = 49152;

/// An outer UDP datagram `src:sport -> dst:port` around `payload`, its UDP checksum computed
/// by etherparse (0, "none", when `checksum` is false).
pub fn outer_udp(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    sport: u16,
    port: u16,
    payload: &[u8],
    checksum: bool,
) -> Vec<u8> {
    let ip = Ipv4Header::new(
        (8 + payload.len()) as u16,
        64,
        IpNumber::UDP,
        src.octets(),
        dst.octets(),
    )
    .unwrap();
    let mut udp = etherparse::UdpHeader {
        source_port: sport,
        destination_port: port,
        length: (8 + payload.len()) as u16,
        checksum: 0,
    };
    if checksum {
        udp.checksum = udp.calc_checksum_ipv4(&ip, payload).unwrap();
    }
    outer(src, dst, 17, &[&udp.to_bytes()[..], payload].concat())
}

/// A GUE (variant 0, protocol 4) packet to UDP port `port` around `inner`.
pub fn gue(src: Ipv4Addr, dst: Ipv4Addr, port: u16, inner: &[u8]) -> Vec<u8> {
    gue_with(src, dst, port, [0, 4, 0, 0], inner)
}

/// A GUE packet with the 4-byte GUE header `header` (for hostile variants).
pub fn gue_with(src: Ipv4Addr, dst: Ipv4Addr, port: u16, header: [u8; 4], inner: &[u8]) -> Vec<u8> {
    let payload = [&header[..], inner].concat();
    outer_udp(src, dst, TUNNEL_SOURCE_PORT, port, &payload, true)
}

/// A FOU packet (UDP directly followed by IPv4) to UDP port `port` around `inner`.
pub fn fou(src: Ipv4Addr, dst: Ipv4Addr, port: u16, inner: &[u8]) -> Vec<u8> {
    outer_udp(src, dst, TUNNEL_SOURCE_PORT, port, inner, true)
}

/// A GRE (version 0, protocol 0x0800) packet around `inner`, with `key` if given and a GRE
/// checksum if `checksum`.
pub fn gre(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    key: Option<u32>,
    checksum: bool,
    inner: &[u8],
) -> Vec<u8> {
    let flags = if checksum { 0x80 } else { 0 } | if key.is_some() { 0x20 } else { 0 };
    gre_raw(src, dst, [flags, 0], 0x0800, key, inner)
}

/// A GRE packet with raw flag/version bytes and protocol (for hostile variants): the
/// checksum field is present and computed when flag 0x80 is set, the key when 0x20 is.
pub fn gre_raw(
    src: Ipv4Addr,
    dst: Ipv4Addr,
    flags: [u8; 2],
    protocol: u16,
    key: Option<u32>,
    inner: &[u8],
) -> Vec<u8> {
    let mut g = flags.to_vec();
    g.extend_from_slice(&protocol.to_be_bytes());
    if flags[0] & 0x80 != 0 {
        g.extend_from_slice(&[0; 4]);
    }
    if flags[0] & 0x20 != 0 {
        g.extend_from_slice(&key.unwrap_or(0).to_be_bytes());
    }
    if flags[0] & 0x10 != 0 {
        g.extend_from_slice(&1u32.to_be_bytes());
    }
    g.extend_from_slice(inner);
    if flags[0] & 0x80 != 0 {
        let sum = etherparse::checksum::Sum16BitWords::new()
            .add_slice(&g)
            .ones_complement()
            .to_be();
        g[4..6].copy_from_slice(&sum.to_be_bytes());
    }
    outer(src, dst, 47, &g)
}

/// Turns the complete UDP or TCP checksum of the IPv4 `packet` into what a sender with
/// checksum offload leaves in it (the kernel's `CHECKSUM_PARTIAL`): the folded pseudo-header
/// sum, not complemented, the rest to be summed by whoever finishes it. Returns where the
/// checksummed range starts in `packet` and where the field is from there (the offload
/// header's `csum_start`, less the bytes in front of `packet`, and `csum_offset`).
pub fn make_checksum_partial(packet: &mut [u8]) -> (usize, usize) {
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let field = match packet[9] {
        6 => 16,
        17 => 6,
        p => panic!("protocol {p} has no transport checksum here"),
    };
    let mut sum: u32 = packet[12..20]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    sum += u32::from(packet[9]) + (total - ihl) as u32;
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    packet[ihl + field..ihl + field + 2].copy_from_slice(&(sum as u16).to_be_bytes());
    (ihl, field)
}

/// [`make_checksum_partial`] for an IPv6 TCP or UDP packet with no extension headers: the
/// field gets the folded IPv6 pseudo-header sum (addresses, upper-layer length, next
/// header). Returns (where the transport header starts, where its checksum field is in it).
pub fn make_checksum_partial6(packet: &mut [u8]) -> (usize, usize) {
    let field = match packet[6] {
        6 => 16,
        17 => 6,
        p => panic!("next header {p} has no transport checksum here"),
    };
    let upper_len = u32::from(u16::from_be_bytes([packet[4], packet[5]]));
    let mut sum: u32 = packet[8..40]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    sum += u32::from(packet[6]) + upper_len;
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    packet[40 + field..40 + field + 2].copy_from_slice(&(sum as u16).to_be_bytes());
    (40, field)
}

/// The 10-byte virtio-net header (`PACKET_VNET_HDR`) of a frame whose transport checksum is
/// still to be finished (`VIRTIO_NET_HDR_F_NEEDS_CSUM`), no GSO; offsets from the frame start.
pub fn vnet_needs_csum(csum_start: usize, csum_offset: usize) -> [u8; 10] {
    let mut h = [0u8; 10];
    h[0] = 1;
    h[6..8].copy_from_slice(&(csum_start as u16).to_ne_bytes());
    h[8..10].copy_from_slice(&(csum_offset as u16).to_ne_bytes());
    h
}
