//! ICMPv6 Packet Too Big (type 2, RFC 4443 3.2) about an inner IPv6 packet that does not fit
//! the egress MTU: the IPv6 counterpart of IPv4's fragmentation-needed. IPv6 routers never
//! fragment, so every too-big IPv6 packet may be answered (there is no DF bit to ask).
//!
//! Never about an ICMPv6 error message (types below 128), a later fragment, or a packet sent
//! to a multicast address (RFC 4443 2.4 (e)); the message quotes as much of the packet as
//! fits in the IPv6 minimum MTU of 1280 bytes with its IPv6 header. Only builds the message
//! (with its checksum over the RFC 8200 pseudo-header); sending and rate limits are the
//! data path's.

use std::net::Ipv6Addr;

use crate::ipv4::{fold, sum_words};
use crate::ipv6;

/// ICMPv6 type Packet Too Big.
pub const TYPE_PACKET_TOO_BIG: u8 = 2;
/// ICMPv6 header length (type, code, checksum, MTU).
const HEADER: usize = 8;
/// Largest message without its IPv6 header: the whole packet within the IPv6 minimum MTU.
pub const MAX_MESSAGE: usize = 1280 - ipv6::HEADER_LEN;
/// ICMPv6 types below this are errors (no error is ever sent about one).
const FIRST_INFORMATIONAL: u8 = 128;

/// Writes the Packet Too Big message from `source` about `inner` (an inner IPv6 packet) with
/// MTU `mtu` into `out`; returns its length, or `None` when no message may be sent about this
/// packet (an ICMPv6 error, a later fragment, a multicast destination, a bad header). The
/// message goes to the packet's source (the VIP).
pub fn packet_too_big(
    inner: &[u8],
    mtu: u32,
    source: Ipv6Addr,
    out: &mut [u8; MAX_MESSAGE],
) -> Option<usize> {
    let header = ipv6::check_header(inner).ok()?;
    if header.destination.is_multicast() || header.fragment.is_some_and(|f| f.offset != 0) {
        return None;
    }
    if header.protocol == ipv6::NH_ICMPV6
        && inner
            .get(header.upper_offset)
            .is_none_or(|&t| t < FIRST_INFORMATIONAL)
    {
        return None;
    }
    let packet = &inner[..header.total_len()];
    let quoted = packet.len().min(MAX_MESSAGE - HEADER);
    let len = HEADER + quoted;
    out[0] = TYPE_PACKET_TOO_BIG;
    out[1] = 0;
    out[2..4].fill(0);
    out[4..8].copy_from_slice(&mtu.to_be_bytes());
    out[HEADER..len].copy_from_slice(&packet[..quoted]);
    let checksum = checksum(source, header.source, &out[..len]);
    out[2..4].copy_from_slice(&checksum.to_be_bytes());
    Some(len)
}

/// The ICMPv6 checksum of `message` (its checksum field zero) from `source` to
/// `destination`: the Internet checksum over the pseudo-header and the message.
pub fn checksum(source: Ipv6Addr, destination: Ipv6Addr, message: &[u8]) -> u16 {
    let mut pseudo = [0u8; 40];
    pseudo[..16].copy_from_slice(&source.octets());
    pseudo[16..32].copy_from_slice(&destination.octets());
    pseudo[32..36].copy_from_slice(&(message.len() as u32).to_be_bytes());
    pseudo[39] = ipv6::NH_ICMPV6;
    let sum = sum_words(message, 0) + sum_words(&pseudo, 0);
    !fold(sum)
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv6Header};

    const GIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
    const VIP: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0xf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
    const CLIENT: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0xc, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7];

    /// An inner IPv6 packet VIP -> `destination`, next header `next`, then `payload`.
    fn packet(next: u8, destination: [u8; 16], payload: &[u8]) -> Vec<u8> {
        let h = Ipv6Header {
            traffic_class: 0,
            flow_label: Default::default(),
            payload_length: payload.len() as u16,
            next_header: IpNumber(next),
            hop_limit: 63,
            source: VIP,
            destination,
        };
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_big_packet_gets_packet_too_big_quoting_up_to_1280_bytes_with_a_valid_checksum() {
        let big = packet(17, CLIENT, &[0x5a; 1500]);
        let mut out = [0u8; MAX_MESSAGE];
        let len = packet_too_big(&big, 1400, GIP6, &mut out).expect("a message");
        assert_eq!(
            len + 40,
            1280,
            "the whole message fits the IPv6 minimum MTU"
        );
        assert_eq!(&out[..2], &[2, 0]);
        assert_eq!(u32::from_be_bytes([out[4], out[5], out[6], out[7]]), 1400);
        assert_eq!(&out[8..len], &big[..len - 8], "the packet's first bytes");
        // Checked by etherparse against the pseudo-header, GIP6 -> VIP.
        let icmp = etherparse::Icmpv6Slice::from_slice(&out[..len]).unwrap();
        let expected = icmp
            .header()
            .icmp_type
            .calc_checksum(GIP6.octets(), VIP, icmp.payload())
            .unwrap();
        assert_eq!(icmp.checksum(), expected);
        assert_eq!(checksum(GIP6, VIP.into(), &out[..len]), 0, "sums to zero");
        let small = packet(6, CLIENT, &[1; 12]);
        assert_eq!(packet_too_big(&small, 1280, GIP6, &mut out), Some(8 + 52));
    }

    #[test]
    fn no_message_about_icmpv6_errors_later_fragments_multicast_or_bad_headers() {
        let mut out = [0u8; MAX_MESSAGE];
        let mut later = vec![17, 0, 0, 0x19, 0, 0, 0, 1];
        later.extend_from_slice(&[0; 1400]);
        let mut first = vec![17, 0, 0, 1, 0, 0, 0, 1];
        first.extend_from_slice(&[0; 1400]);
        let multicast = [0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        let cases: [(&str, Vec<u8>, bool); 8] = [
            ("udp", packet(17, CLIENT, &[0; 1400]), true),
            ("echo reply", packet(58, CLIENT, &[129; 1400]), true),
            (
                "destination unreachable",
                packet(58, CLIENT, &[1; 1400]),
                false,
            ),
            ("packet too big", packet(58, CLIENT, &[2; 1400]), false),
            ("first fragment", packet(44, CLIENT, &first), true),
            ("later fragment", packet(44, CLIENT, &later), false),
            ("to multicast", packet(17, multicast, &[0; 1400]), false),
            ("icmpv6 cut short", packet(58, CLIENT, &[]), false),
        ];
        for (what, p, answered) in cases {
            let got = packet_too_big(&p, 1280, GIP6, &mut out).is_some();
            assert_eq!(got, answered, "{what}");
        }
        assert_eq!(packet_too_big(&[0x60; 20], 1280, GIP6, &mut out), None);
    }
}
