//! IPv6 header checks and the bounded walk over its extension headers.
//!
//! A stock `ip6tnl` puts a Destination Options header (next header 60) carrying the tunnel
//! encapsulation limit in front of the inner packet, so the encapsulated protocol of an outer
//! IPv6 header is found only by walking the chain. The walk accepts hop-by-hop options (first
//! only, RFC 8200 4.1), destination options, routing and fragment headers, at most
//! [`MAX_EXTENSION_HEADERS`] of them in at most [`MAX_EXTENSION_BYTES`] bytes; anything else
//! (an unknown next header that is not an upper-layer protocol the caller knows, AH, ESP,
//! "no next header") ends the walk and the caller judges the protocol it stopped at.
//!
//! Works on byte slices only; never allocates and never panics on any input.

use std::net::Ipv6Addr;

/// Length of the fixed IPv6 header.
pub const HEADER_LEN: usize = 40;
/// Next header: hop-by-hop options.
pub const NH_HOP_BY_HOP: u8 = 0;
/// Next header: routing header.
pub const NH_ROUTING: u8 = 43;
/// Next header: fragment header.
pub const NH_FRAGMENT: u8 = 44;
/// Next header: destination options (what `ip6tnl` inserts with the encapsulation limit).
pub const NH_DEST_OPTS: u8 = 60;
/// Next header: ICMPv6.
pub const NH_ICMPV6: u8 = 58;
/// Most extension headers the walk goes through before it refuses the chain.
pub const MAX_EXTENSION_HEADERS: usize = 4;
/// Most bytes of extension headers the walk goes through before it refuses the chain (an
/// `ip6tnl` destination option is 8 bytes; a chain this long is no tunnel's).
pub const MAX_EXTENSION_BYTES: usize = 256;

/// What is wrong with an IPv6 header or its extension chain (mapped to an outer or inner drop
/// reason by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Version is not 6.
    NotIpv6,
    /// Fewer than 40 bytes, a payload length beyond the bytes present, or an extension
    /// header cut short by the payload length.
    Malformed,
    /// More than [`MAX_EXTENSION_HEADERS`] extension headers or [`MAX_EXTENSION_BYTES`]
    /// bytes of them, or a hop-by-hop header that is not the first.
    BadExtensionChain,
    /// A routing header with segments left > 0: the packet asks to be sent on elsewhere
    /// (the IPv6 counterpart of an IPv4 source route).
    RoutingHeader,
}

/// The fragment header of a packet, if it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// Fragment offset in 8-byte units.
    pub offset: u16,
    /// More-fragments flag.
    pub more: bool,
}

impl Fragment {
    /// Whether this is a real fragment: not an atomic one (offset 0 and no more fragments,
    /// RFC 6946), which holds the whole packet.
    pub fn is_fragment(self) -> bool {
        self.offset != 0 || self.more
    }
}

/// The fields of a checked IPv6 header and its extension chain that the data path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The payload length field: the packet is `HEADER_LEN + payload_len` bytes.
    pub payload_len: usize,
    /// Hop limit.
    pub hop_limit: u8,
    /// The protocol the walk stopped at: the upper-layer protocol (or tunnel) of a first or
    /// only fragment, the fragment header's next header for a later fragment.
    pub protocol: u8,
    /// Where the data of `protocol` starts, from the start of the IPv6 header.
    pub upper_offset: usize,
    /// The fragment header, if any.
    pub fragment: Option<Fragment>,
    /// Source address.
    pub source: Ipv6Addr,
    /// Destination address.
    pub destination: Ipv6Addr,
}

impl Header {
    /// The packet's total length (header and payload).
    pub fn total_len(&self) -> usize {
        HEADER_LEN + self.payload_len
    }

    /// Whether the packet is a real fragment (see [`Fragment::is_fragment`]).
    pub fn is_fragment(&self) -> bool {
        self.fragment.is_some_and(Fragment::is_fragment)
    }
}

/// Whether `next` is an extension header the walk goes through.
fn is_walked(next: u8) -> bool {
    matches!(
        next,
        NH_HOP_BY_HOP | NH_ROUTING | NH_FRAGMENT | NH_DEST_OPTS
    )
}

fn address(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[..16]);
    Ipv6Addr::from(octets)
}

/// Checks the IPv6 header at the start of `bytes` and walks its extension headers: version,
/// payload length against the bytes present (trailing bytes such as Ethernet padding are
/// allowed), each extension header inside the payload, the chain's bounds, and no routing
/// header with segments left > 0. IPv6 has no header checksum.
pub fn check_header(bytes: &[u8]) -> Result<Header, HeaderProblem> {
    let Some(&first) = bytes.first() else {
        return Err(HeaderProblem::Malformed);
    };
    if first >> 4 != 6 {
        return Err(HeaderProblem::NotIpv6);
    }
    if bytes.len() < HEADER_LEN {
        return Err(HeaderProblem::Malformed);
    }
    let payload_len = usize::from(u16::from_be_bytes([bytes[4], bytes[5]]));
    let total_len = HEADER_LEN + payload_len;
    if total_len > bytes.len() {
        return Err(HeaderProblem::Malformed);
    }
    let packet = &bytes[..total_len];
    let mut next = bytes[6];
    let mut at = HEADER_LEN;
    let mut count = 0;
    let mut fragment = None;
    while is_walked(next) {
        if next == NH_HOP_BY_HOP && count > 0 {
            return Err(HeaderProblem::BadExtensionChain);
        }
        count += 1;
        if count > MAX_EXTENSION_HEADERS {
            return Err(HeaderProblem::BadExtensionChain);
        }
        // Every extension header starts with next header and a length byte; the fragment
        // header is 8 bytes, the others (hdr ext len + 1) × 8.
        let Some(head) = packet.get(at..at + 8) else {
            return Err(HeaderProblem::Malformed);
        };
        let len = if next == NH_FRAGMENT {
            8
        } else {
            (usize::from(head[1]) + 1) * 8
        };
        if at + len > packet.len() {
            return Err(HeaderProblem::Malformed);
        }
        if at + len - HEADER_LEN > MAX_EXTENSION_BYTES {
            return Err(HeaderProblem::BadExtensionChain);
        }
        if next == NH_ROUTING && head[3] > 0 {
            return Err(HeaderProblem::RoutingHeader);
        }
        let this = next;
        next = head[0];
        at += len;
        if this == NH_FRAGMENT {
            let field = u16::from_be_bytes([head[2], head[3]]);
            let f = Fragment {
                offset: field >> 3,
                more: field & 1 != 0,
            };
            fragment = Some(f);
            if f.offset != 0 {
                // A later fragment's payload is data, not headers: the walk ends here.
                break;
            }
        }
    }
    Ok(Header {
        payload_len,
        hop_limit: bytes[7],
        protocol: next,
        upper_offset: at,
        fragment,
        source: address(&bytes[8..24]),
        destination: address(&bytes[24..40]),
    })
}

/// Decrements the hop limit of the IPv6 packet at the start of `bytes` (checked by
/// [`check_header`] and with a hop limit above 1); IPv6 has no header checksum to update.
pub fn decrement_hop_limit(bytes: &mut [u8]) {
    if let Some(hop) = bytes.get_mut(7) {
        *hop = hop.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    const DST: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x07,
    ];

    /// An IPv6 packet: next header `next`, then `ext` (extension headers) and `data`.
    fn packet(next: u8, ext: &[u8], data: &[u8]) -> Vec<u8> {
        let payload = (ext.len() + data.len()) as u16;
        let mut p = vec![0x60, 0, 0, 0];
        p.extend_from_slice(&payload.to_be_bytes());
        p.extend_from_slice(&[next, 64]);
        p.extend_from_slice(&SRC);
        p.extend_from_slice(&DST);
        p.extend_from_slice(ext);
        p.extend_from_slice(data);
        p
    }

    /// An 8-byte extension header with next header `next`.
    fn ext8(next: u8, third: u8, fourth: u8) -> [u8; 8] {
        [next, 0, third, fourth, 0, 0, 0, 0]
    }

    /// The destination options header of a stock ip6tnl: tunnel encapsulation limit 4
    /// (option type 4, length 1), then a PadN of 1 byte.
    fn ip6tnl_dest_opts(next: u8) -> [u8; 8] {
        [next, 0, 4, 1, 4, 1, 1, 0]
    }

    #[test]
    fn headers_and_chains_table() {
        let data = [0u8; 16];
        let fragment = |next, offset: u16, more: bool| {
            let field = (offset << 3) | u16::from(more);
            let [a, b] = field.to_be_bytes();
            ext8(next, a, b)
        };
        let chain = |headers: &[[u8; 8]]| headers.concat();
        // (name, packet, expected (protocol, upper_offset, is_fragment) or problem)
        type Want = Result<(u8, usize, bool), HeaderProblem>;
        let cases: Vec<(&str, Vec<u8>, Want)> = vec![
            ("plain udp", packet(17, &[], &data), Ok((17, 40, false))),
            ("ip6ip6", packet(41, &[], &data), Ok((41, 40, false))),
            (
                "ip6tnl encapsulation limit",
                packet(60, &ip6tnl_dest_opts(41), &data),
                Ok((41, 48, false)),
            ),
            (
                "4in6 with the limit",
                packet(60, &ip6tnl_dest_opts(4), &data),
                Ok((4, 48, false)),
            ),
            (
                "hop-by-hop then dest opts",
                packet(0, &chain(&[ext8(60, 0, 0), ip6tnl_dest_opts(47)]), &data),
                Ok((47, 56, false)),
            ),
            (
                "routing header, segments left 0",
                packet(43, &ext8(17, 4, 0), &data),
                Ok((17, 48, false)),
            ),
            (
                "routing header, segments left 1",
                packet(43, &ext8(17, 4, 1), &data),
                Err(HeaderProblem::RoutingHeader),
            ),
            (
                "routing header behind dest opts",
                packet(60, &chain(&[ext8(43, 0, 0), ext8(17, 0, 2)]), &data),
                Err(HeaderProblem::RoutingHeader),
            ),
            (
                "first fragment",
                packet(44, &fragment(17, 0, true), &data),
                Ok((17, 48, true)),
            ),
            (
                "later fragment of a tunnel: protocol still named",
                packet(44, &fragment(41, 3, false), &data),
                Ok((41, 48, true)),
            ),
            (
                "later fragment: its data is not walked",
                packet(44, &fragment(60, 3, true), &[60, 255, 0, 0, 0, 0, 0, 0]),
                Ok((60, 48, true)),
            ),
            (
                "atomic fragment",
                packet(44, &fragment(17, 0, false), &data),
                Ok((17, 48, false)),
            ),
            (
                "hop-by-hop not first",
                packet(60, &chain(&[ext8(0, 0, 0), ext8(17, 0, 0)]), &data),
                Err(HeaderProblem::BadExtensionChain),
            ),
            (
                "five extension headers",
                packet(60, &chain(&[ext8(60, 0, 0); 5]), &data),
                Err(HeaderProblem::BadExtensionChain),
            ),
            (
                "four extension headers",
                packet(
                    60,
                    &chain(&[
                        ext8(60, 0, 0),
                        ext8(60, 0, 0),
                        ext8(60, 0, 0),
                        ext8(17, 0, 0),
                    ]),
                    &data,
                ),
                Ok((17, 72, false)),
            ),
            (
                "one oversized extension header",
                packet(60, &[&[17u8, 32][..], &[0u8; 262][..]].concat(), &data),
                Err(HeaderProblem::BadExtensionChain),
            ),
            (
                "extension header past the payload",
                packet(60, &[17, 1, 0, 0, 0, 0, 0, 0], &[]),
                Err(HeaderProblem::Malformed),
            ),
            (
                "extension header cut short",
                packet(60, &[17, 0, 0], &[]),
                Err(HeaderProblem::Malformed),
            ),
        ];
        for (name, bytes, want) in cases {
            let got = check_header(&bytes).map(|h| (h.protocol, h.upper_offset, h.is_fragment()));
            assert_eq!(got, want, "{name}");
        }
    }

    #[test]
    fn fields_lengths_and_version() {
        let mut p = packet(17, &[], &[1, 2, 3, 4]);
        let h = check_header(&p).unwrap();
        assert_eq!(h.source, Ipv6Addr::from(SRC));
        assert_eq!(h.destination, Ipv6Addr::from(DST));
        assert_eq!((h.hop_limit, h.payload_len, h.total_len()), (64, 4, 44));
        p.extend_from_slice(&[0; 6]);
        assert_eq!(check_header(&p).unwrap().total_len(), 44, "padding allowed");
        assert_eq!(check_header(&p[..43]), Err(HeaderProblem::Malformed));
        assert_eq!(check_header(&p[..39]), Err(HeaderProblem::Malformed));
        assert_eq!(check_header(&[]), Err(HeaderProblem::Malformed));
        p[0] = 0x45;
        assert_eq!(check_header(&p), Err(HeaderProblem::NotIpv6));
        p[0] = 0x60;
        decrement_hop_limit(&mut p);
        assert_eq!(check_header(&p).unwrap().hop_limit, 63);
    }

    #[test]
    fn no_input_panics() {
        let base = packet(
            0,
            &[ext8(60, 0, 0), ip6tnl_dest_opts(44), ext8(41, 0, 1)].concat(),
            &[0x60; 48],
        );
        for cut in 0..=base.len() {
            let _ = check_header(&base[..cut]);
        }
        for i in 0..base.len() {
            for v in [0u8, 1, 0x2b, 0x2c, 0x3c, 0xff] {
                let mut p = base.clone();
                p[i] = v;
                let _ = check_header(&p);
            }
        }
    }
}
