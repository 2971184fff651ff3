//! The virtio-net header (`struct virtio_net_hdr`, 10 bytes) that AF_PACKET sockets with
//! `PACKET_VNET_HDR` put in front of every received frame and expect in front of every sent
//! one. It tells whether the transport checksum is still to be computed
//! (`NEEDS_CSUM`, with `csum_start`/`csum_offset`) and whether the frame is a GSO
//! super-packet (`gso_type`/`gso_size`) that the kernel or NIC segments on transmit.
//!
//! This module reads and rewrites that header and can finish a partial checksum in software;
//! it never does I/O and never panics on any input. Fields are in host byte order (the
//! kernel uses the legacy virtio byte order, which is the CPU's).

use crate::ipv4::{Header, fold, sum_words};

/// Size of `struct virtio_net_hdr`.
pub const LEN: usize = 10;
/// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: the checksum from `csum_start` on is still to be computed.
pub(crate) const F_NEEDS_CSUM: u8 = 1;
/// `VIRTIO_NET_HDR_GSO_NONE`.
pub(crate) const GSO_NONE: u8 = 0;
/// `VIRTIO_NET_HDR_GSO_ECN` (a flag on `gso_type`).
pub(crate) const GSO_ECN: u8 = 0x80;

/// A parsed virtio-net header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHeader {
    /// `F_NEEDS_CSUM` and/or `F_DATA_VALID`.
    pub flags: u8,
    /// `GSO_*`, possibly with `GSO_ECN`.
    pub gso_type: u8,
    /// Length of the headers (a hint for the linear part of the buffer).
    pub hdr_len: u16,
    /// Payload bytes per segment of a GSO super-packet.
    pub gso_size: u16,
    /// Where the checksummed range starts, from the start of the frame.
    pub csum_start: u16,
    /// Where the checksum field is, from `csum_start`.
    pub csum_offset: u16,
}

impl VnetHeader {
    /// Reads the header at the start of `bytes` (`None` if shorter than [`LEN`]).
    pub fn parse(bytes: &[u8]) -> Option<VnetHeader> {
        let b: &[u8; LEN] = bytes.get(..LEN)?.try_into().ok()?;
        let u16_at = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHeader {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16_at(2),
            gso_size: u16_at(4),
            csum_start: u16_at(6),
            csum_offset: u16_at(8),
        })
    }

    /// Writes the header into the first [`LEN`] bytes of `out` (nothing if shorter).
    pub fn write(&self, out: &mut [u8]) {
        let Some(b) = out.get_mut(..LEN) else {
            return;
        };
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
    }

    /// Whether this is a GSO super-packet that is segmented on transmit.
    pub fn is_gso(&self) -> bool {
        self.gso_type & !GSO_ECN != GSO_NONE
    }

    /// Whether the transport checksum is still to be computed.
    pub fn needs_csum(&self) -> bool {
        self.flags & F_NEEDS_CSUM != 0
    }

    /// The header for transmitting the same packet after the bytes before its IP header
    /// changed from `old_l3_offset` to `new_l3_offset` bytes (for example: an Ethernet and an
    /// outer IP header replaced by a new Ethernet header). `packet_len` is the new frame
    /// length. `None` when the offload fields do not fit the packet (they are the kernel's,
    /// so this means a malformed frame).
    pub fn for_transmit(
        &self,
        old_l3_offset: usize,
        new_l3_offset: usize,
        packet_len: usize,
    ) -> Option<VnetHeader> {
        let moved = |v: u16| -> Option<u16> {
            let from_l3 = usize::from(v).checked_sub(old_l3_offset)?;
            u16::try_from(from_l3 + new_l3_offset).ok()
        };
        let mut out = VnetHeader {
            flags: self.flags & F_NEEDS_CSUM,
            gso_type: self.gso_type,
            gso_size: self.gso_size,
            ..VnetHeader::default()
        };
        if self.needs_csum() {
            out.csum_start = moved(self.csum_start)?;
            out.csum_offset = self.csum_offset;
            let field_end = usize::from(out.csum_start) + usize::from(out.csum_offset) + 2;
            if field_end > packet_len {
                return None;
            }
        }
        if self.is_gso() {
            if !self.needs_csum() {
                return None;
            }
            let hdr = moved(self.hdr_len)
                .unwrap_or(0)
                .max(out.csum_start + out.csum_offset + 2);
            out.hdr_len = hdr.min(u16::try_from(packet_len).unwrap_or(u16::MAX));
        }
        Some(out)
    }
}

/// Finishes a partial transport checksum in software (what the NIC would do for
/// `NEEDS_CSUM`): sums `frame[csum_start..]`, whose checksum field already holds the
/// pseudo-header sum, and stores the complement at `csum_start + csum_offset`. Returns
/// `false` (and changes nothing) when the offsets do not fit the frame.
pub fn finish_checksum(frame: &mut [u8], csum_start: usize, csum_offset: usize) -> bool {
    let field = csum_start + csum_offset;
    if field + 2 > frame.len() {
        return false;
    }
    let sum = fold(sum_words(&frame[csum_start..], 0));
    let mut value = !sum;
    // A UDP checksum of zero means "none": send the equivalent all-ones form.
    if value == 0 {
        value = 0xffff;
    }
    frame[field..field + 2].copy_from_slice(&value.to_be_bytes());
    true
}

/// IP protocol numbers whose checksum a sender may leave partial, and where the field is.
const PROTO_TCP: u8 = 6;
const PROTO_UDP: u8 = 17;
const TCP_CSUM_OFFSET: usize = 16;
const UDP_CSUM_OFFSET: usize = 6;

/// The offload header of an inner packet read without one (an AF_XDP frame: the kernel
/// hands XDP no checksum state). `frame` starts at the Ethernet header, the checked inner
/// IPv4 header `inner` starts at `inner_offset`.
///
/// A sender with checksum offload (the kernel's `CHECKSUM_PARTIAL`, which crosses veths and
/// bridges as it is) leaves in a TCP or UDP checksum field only the folded pseudo-header sum,
/// the rest to be added by the device. Such a segment gets `NEEDS_CSUM` with its
/// `csum_start`/`csum_offset`, to be finished before it leaves as a plain frame
/// ([`finish_checksum`]), as the TPACKET rings report it. Everything else gets the empty
/// header and is forwarded as it is: a segment whose checksum verifies; one whose field is
/// anything but that pseudo-header sum (a wrong checksum stays wrong, for the receiver to
/// drop); fragments (the checksum covers the whole datagram); other protocols; a UDP
/// checksum of 0 ("none"). A corrupted segment is mistaken for a partial one only if its
/// field happens to equal the pseudo-header sum (about 1 in 65536 of corrupted segments).
pub fn partial_checksum(frame: &[u8], inner_offset: usize, inner: &Header) -> VnetHeader {
    let mut addresses = [0u8; 8];
    addresses[..4].copy_from_slice(&inner.source.octets());
    addresses[4..].copy_from_slice(&inner.destination.octets());
    partial_segment(
        frame,
        inner_offset + inner.header_len..inner_offset + inner.total_len,
        inner.protocol,
        &addresses,
        inner.is_fragment,
    )
}

/// [`partial_checksum`] for an inner IPv6 packet: the segment starts where the extension
/// header walk stopped (`upper_offset`), and the pseudo-header has the 128-bit addresses
/// and the upper-layer length (RFC 8200 8.1). A packet with a fragment header that is a real
/// fragment is left alone, as in IPv4.
pub fn partial_checksum6(
    frame: &[u8],
    inner_offset: usize,
    inner: &crate::ipv6::Header,
) -> VnetHeader {
    let mut addresses = [0u8; 32];
    addresses[..16].copy_from_slice(&inner.source.octets());
    addresses[16..].copy_from_slice(&inner.destination.octets());
    partial_segment(
        frame,
        inner_offset + inner.upper_offset..inner_offset + inner.total_len(),
        inner.protocol,
        &addresses,
        inner.is_fragment(),
    )
}

/// The common part of [`partial_checksum`] and [`partial_checksum6`]: `segment` is the
/// transport segment's range in `frame`, `addresses` the source and destination address
/// bytes of the pseudo-header.
fn partial_segment(
    frame: &[u8],
    segment: std::ops::Range<usize>,
    protocol: u8,
    addresses: &[u8],
    is_fragment: bool,
) -> VnetHeader {
    let none = VnetHeader::default();
    let csum_offset = match protocol {
        PROTO_TCP => TCP_CSUM_OFFSET,
        PROTO_UDP => UDP_CSUM_OFFSET,
        _ => return none,
    };
    if is_fragment {
        return none;
    }
    let start = segment.start;
    let Some(segment) = frame.get(segment) else {
        return none;
    };
    let Some(field) = segment.get(csum_offset..csum_offset + 2) else {
        return none;
    };
    let field = u16::from_be_bytes([field[0], field[1]]);
    let Ok(segment_len) = u32::try_from(segment.len()) else {
        return none;
    };
    let pseudo_sum = sum_words(addresses, u32::from(protocol) + segment_len);
    if field != fold(pseudo_sum) || fold(pseudo_sum + sum_words(segment, 0)) == 0xffff {
        return none;
    }
    let (Ok(csum_start), Ok(csum_offset)) = (u16::try_from(start), u16::try_from(csum_offset))
    else {
        return none;
    };
    VnetHeader {
        flags: F_NEEDS_CSUM,
        csum_start,
        csum_offset,
        ..none
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the checksum was already verified (receive only).
    const F_DATA_VALID: u8 = 2;
    /// `VIRTIO_NET_HDR_GSO_TCPV4`.
    const GSO_TCPV4: u8 = 1;

    #[test]
    fn parse_write_round_trip_and_short_input() {
        let h = VnetHeader {
            flags: F_NEEDS_CSUM,
            gso_type: GSO_TCPV4,
            hdr_len: 74,
            gso_size: 1448,
            csum_start: 54,
            csum_offset: 16,
        };
        let mut b = [0u8; LEN];
        h.write(&mut b);
        assert_eq!(VnetHeader::parse(&b), Some(h));
        assert_eq!(VnetHeader::parse(&b[..9]), None);
        assert!(h.is_gso() && h.needs_csum());
        assert!(!VnetHeader::default().is_gso());
    }

    #[test]
    fn transmit_header_moves_offsets_by_the_removed_outer_header() {
        // Received: Ethernet (14) + outer IP (20) + inner IP (20) + TCP.
        let rx = VnetHeader {
            flags: F_NEEDS_CSUM | F_DATA_VALID,
            gso_type: GSO_TCPV4,
            hdr_len: 86,
            gso_size: 1448,
            csum_start: 54,
            csum_offset: 16,
        };
        let tx = rx.for_transmit(34, 14, 3000).unwrap();
        assert_eq!(tx.flags, F_NEEDS_CSUM);
        assert_eq!((tx.csum_start, tx.csum_offset), (34, 16));
        assert_eq!(tx.hdr_len, 66);
        assert_eq!((tx.gso_type, tx.gso_size), (GSO_TCPV4, 1448));
        // Kernel decap: the frame starts at the inner IP header; Ethernet is added.
        let l3 = VnetHeader {
            flags: F_NEEDS_CSUM,
            csum_start: 20,
            csum_offset: 6,
            ..VnetHeader::default()
        };
        let tx = l3.for_transmit(0, 14, 42).unwrap();
        assert_eq!((tx.csum_start, tx.csum_offset, tx.hdr_len), (34, 6, 0));
        // Offsets that point before the IP header or past the end are refused.
        let bad = VnetHeader {
            flags: F_NEEDS_CSUM,
            csum_start: 10,
            csum_offset: 6,
            ..VnetHeader::default()
        };
        assert_eq!(bad.for_transmit(34, 14, 100), None);
        assert_eq!(l3.for_transmit(0, 14, 41), None);
        // GSO without a partial checksum cannot be segmented by the kernel.
        let gso_only = VnetHeader {
            gso_type: GSO_TCPV4,
            ..VnetHeader::default()
        };
        assert_eq!(gso_only.for_transmit(34, 14, 3000), None);
    }

    /// Ethernet (14) + outer IPv4 (20) in front of the inner packet, as on the wire.
    const INNER_AT: usize = 34;

    /// A frame around an inner TCP (`tcp`) or UDP reply 192.0.2.10 -> 198.51.100.7 with a
    /// correct checksum, and the inner header as `check_header` reads it.
    fn frame(tcp: bool, payload: &[u8]) -> (Vec<u8>, Header) {
        let builder = etherparse::PacketBuilder::ipv4([192, 0, 2, 10], [198, 51, 100, 7], 64);
        let mut inner = Vec::new();
        if tcp {
            builder
                .tcp(443, 40001, 1000, 65535)
                .ack(77)
                .write(&mut inner, payload)
        } else {
            builder.udp(80, 40000).write(&mut inner, payload)
        }
        .unwrap();
        let header = crate::ipv4::check_header(&inner).unwrap();
        let mut frame = vec![0u8; INNER_AT];
        frame.extend_from_slice(&inner);
        (frame, header)
    }

    /// What a sender with checksum offload leaves in the field: the folded pseudo-header sum.
    fn make_partial(frame: &mut [u8], h: &Header) {
        let field = INNER_AT + h.header_len + if h.protocol == 6 { 16 } else { 6 };
        let len = (h.total_len - h.header_len) as u32;
        let mut pseudo = h.source.octets().to_vec();
        pseudo.extend_from_slice(&h.destination.octets());
        let sum = fold(sum_words(&pseudo, u32::from(h.protocol) + len));
        frame[field..field + 2].copy_from_slice(&sum.to_be_bytes());
    }

    fn verifies(frame: &[u8], h: &Header) -> bool {
        let segment = &frame[INNER_AT + h.header_len..INNER_AT + h.total_len];
        let mut pseudo = h.source.octets().to_vec();
        pseudo.extend_from_slice(&h.destination.octets());
        pseudo.extend_from_slice(&[0, h.protocol]);
        pseudo.extend_from_slice(&(segment.len() as u16).to_be_bytes());
        pseudo.extend_from_slice(segment);
        crate::ipv4::checksum(&pseudo) == 0
    }

    #[test]
    fn a_partial_tcp_or_udp_checksum_is_recognised_and_finished() {
        for tcp in [true, false] {
            for len in [0, 1, 7, 1400] {
                let payload: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
                let (mut f, h) = frame(tcp, &payload);
                assert_eq!(
                    partial_checksum(&f, INNER_AT, &h),
                    VnetHeader::default(),
                    "a complete checksum is left alone (tcp {tcp}, {len} bytes)"
                );
                make_partial(&mut f, &h);
                assert!(!verifies(&f, &h));
                let v = partial_checksum(&f, INNER_AT, &h);
                assert!(v.needs_csum() && !v.is_gso());
                assert_eq!(usize::from(v.csum_start), INNER_AT + 20);
                assert_eq!(v.csum_offset, if tcp { 16 } else { 6 });
                // As the transmit side finishes it, after the outer header is gone.
                let tx = v.for_transmit(INNER_AT, 14, f.len() - 20).unwrap();
                let mut out = f[20..].to_vec();
                assert!(finish_checksum(
                    &mut out,
                    usize::from(tx.csum_start),
                    usize::from(tx.csum_offset)
                ));
                let mut back = f[..20].to_vec();
                back.extend_from_slice(&out);
                assert!(verifies(&back, &h), "finished: tcp {tcp}, {len} bytes");
            }
        }
    }

    #[test]
    fn wrong_checksums_fragments_other_protocols_and_no_udp_checksum_are_left_alone() {
        let none = VnetHeader::default();
        // A wrong complete checksum stays wrong (the receiver drops it).
        let (mut f, h) = frame(true, b"hello");
        f[INNER_AT + 20 + 16] ^= 0x5a;
        assert_eq!(partial_checksum(&f, INNER_AT, &h), none);
        // A fragment: the checksum covers the whole datagram.
        let (mut f, h) = frame(false, b"hello");
        make_partial(&mut f, &h);
        let fragment = Header {
            is_fragment: true,
            ..h
        };
        assert_eq!(partial_checksum(&f, INNER_AT, &fragment), none);
        // UDP without a checksum.
        let (mut f, h) = frame(false, b"hello");
        f[INNER_AT + 26..INNER_AT + 28].fill(0);
        assert_eq!(partial_checksum(&f, INNER_AT, &h), none);
        // Another protocol (ICMP's checksum is never left to offload).
        let (f, h) = frame(false, b"hello");
        let icmp = Header { protocol: 1, ..h };
        assert_eq!(partial_checksum(&f, INNER_AT, &icmp), none);
        // Lengths that do not fit the frame.
        let (f, h) = frame(true, b"");
        let long = Header {
            total_len: h.total_len + 10,
            ..h
        };
        assert_eq!(partial_checksum(&f, INNER_AT, &long), none);
        let short = Header {
            total_len: h.header_len + 10,
            ..h
        };
        assert_eq!(
            partial_checksum(&f, INNER_AT, &short),
            none,
            "no room for the field"
        );
    }

    /// An inner IPv6 TCP or UDP reply 2001:db8::10 -> 2001:db8:1::7 with a correct checksum,
    /// behind a Destination Options header (8 bytes) when `options`, in a frame with
    /// [`INNER_AT`] bytes before it, and the header as `ipv6::check_header` reads it.
    fn frame6(tcp: bool, options: bool, payload: &[u8]) -> (Vec<u8>, crate::ipv6::Header) {
        let vip = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10).octets();
        let client = std::net::Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7).octets();
        let builder = etherparse::PacketBuilder::ipv6(vip, client, 64);
        let mut inner = Vec::new();
        if tcp {
            builder
                .tcp(443, 40001, 1000, 65535)
                .ack(77)
                .write(&mut inner, payload)
        } else {
            builder.udp(80, 40000).write(&mut inner, payload)
        }
        .unwrap();
        if options {
            let upper = inner[6];
            inner[6] = 60;
            let payload_len = u16::from_be_bytes([inner[4], inner[5]]) + 8;
            inner[4..6].copy_from_slice(&payload_len.to_be_bytes());
            inner.splice(40..40, [upper, 0, 1, 4, 0, 0, 0, 0]);
        }
        let header = crate::ipv6::check_header(&inner).unwrap();
        let mut frame = vec![0u8; INNER_AT];
        frame.extend_from_slice(&inner);
        (frame, header)
    }

    /// The IPv6 pseudo-header (addresses, upper-layer length, next header) with `segment`.
    fn pseudo6(h: &crate::ipv6::Header, segment: &[u8]) -> Vec<u8> {
        let mut all = h.source.octets().to_vec();
        all.extend_from_slice(&h.destination.octets());
        all.extend_from_slice(&(segment.len() as u32).to_be_bytes());
        all.extend_from_slice(&[0, 0, 0, h.protocol]);
        all.extend_from_slice(segment);
        all
    }

    #[test]
    fn a_partial_ipv6_checksum_is_recognised_and_finished_behind_extension_headers() {
        for tcp in [true, false] {
            for options in [false, true] {
                for len in [0, 1, 1200] {
                    let payload: Vec<u8> = (0..len).map(|i| (i * 5 + 1) as u8).collect();
                    let (mut f, h) = frame6(tcp, options, &payload);
                    let start = INNER_AT + h.upper_offset;
                    let end = INNER_AT + h.total_len();
                    assert_eq!(crate::ipv4::checksum(&pseudo6(&h, &f[start..end])), 0);
                    assert_eq!(
                        partial_checksum6(&f, INNER_AT, &h),
                        VnetHeader::default(),
                        "a complete checksum is left alone"
                    );
                    // What an offloading sender leaves: the folded pseudo-header sum.
                    let field = start + if tcp { 16 } else { 6 };
                    let mut pseudo = pseudo6(&h, &[]);
                    pseudo[32..36].copy_from_slice(&((end - start) as u32).to_be_bytes());
                    let partial = fold(sum_words(&pseudo, 0));
                    f[field..field + 2].copy_from_slice(&partial.to_be_bytes());
                    let v = partial_checksum6(&f, INNER_AT, &h);
                    assert!(v.needs_csum(), "tcp {tcp}, options {options}, {len} bytes");
                    assert_eq!(usize::from(v.csum_start), start);
                    assert_eq!(v.csum_offset, if tcp { 16 } else { 6 });
                    assert!(finish_checksum(
                        &mut f,
                        usize::from(v.csum_start),
                        usize::from(v.csum_offset)
                    ));
                    assert_eq!(crate::ipv4::checksum(&pseudo6(&h, &f[start..end])), 0);
                }
            }
        }
    }

    #[test]
    fn wrong_ipv6_checksums_fragments_and_short_packets_are_left_alone() {
        let none = VnetHeader::default();
        let (mut f, h) = frame6(true, false, b"hello");
        f[INNER_AT + 40 + 16] ^= 0x5a;
        assert_eq!(
            partial_checksum6(&f, INNER_AT, &h),
            none,
            "a wrong checksum"
        );
        let fragment = crate::ipv6::Header {
            fragment: Some(crate::ipv6::Fragment {
                offset: 0,
                more: true,
            }),
            ..h
        };
        assert_eq!(partial_checksum6(&f, INNER_AT, &fragment), none);
        let icmp = crate::ipv6::Header { protocol: 58, ..h };
        assert_eq!(partial_checksum6(&f, INNER_AT, &icmp), none);
        let long = crate::ipv6::Header {
            payload_len: h.payload_len + 10,
            ..h
        };
        assert_eq!(partial_checksum6(&f, INNER_AT, &long), none);
    }

    #[test]
    fn a_complete_checksum_equal_to_the_pseudo_header_sum_is_left_alone() {
        // Choose two payload bytes so that the correct checksum happens to be the value a
        // partial one would hold: it verifies, so it is complete and forwarded as it is.
        let (f, h) = frame(false, &[0, 0, 1, 2]);
        let mut pseudo = h.source.octets().to_vec();
        pseudo.extend_from_slice(&h.destination.octets());
        let partial = fold(sum_words(&pseudo, 17 + 12));
        let found = (0..=u16::MAX).find_map(|w| {
            let mut g = f.clone();
            let at = INNER_AT + 28;
            g[at..at + 2].copy_from_slice(&w.to_be_bytes());
            g[INNER_AT + 26..INNER_AT + 28].fill(0);
            let mut all = pseudo.clone();
            all.extend_from_slice(&[0, 17, 0, 12]);
            all.extend_from_slice(&g[INNER_AT + 20..]);
            let sum = crate::ipv4::checksum(&all);
            (sum == partial).then(|| {
                g[INNER_AT + 26..INNER_AT + 28].copy_from_slice(&sum.to_be_bytes());
                g
            })
        });
        let g = found.expect("some payload word gives that checksum");
        assert!(verifies(&g, &h));
        assert_eq!(partial_checksum(&g, INNER_AT, &h), VnetHeader::default());
    }

    #[test]
    fn finish_checksum_yields_a_verifying_udp_datagram() {
        // UDP 10.0.0.1:1000 -> 10.0.0.2:2000, payload "hi!", checksum field = pseudo sum.
        let mut seg = vec![0x03, 0xe8, 0x07, 0xd0, 0, 11, 0, 0, b'h', b'i', b'!'];
        let pseudo = super::super::ipv4::sum_words(&[10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 11], 0);
        let partial = super::super::ipv4::fold(pseudo);
        seg[6..8].copy_from_slice(&partial.to_be_bytes());
        assert!(finish_checksum(&mut seg, 0, 6));
        let mut all = vec![10, 0, 0, 1, 10, 0, 0, 2, 0, 17, 0, 11];
        all.extend_from_slice(&seg);
        assert_eq!(super::super::ipv4::checksum(&all), 0);
        assert!(!finish_checksum(&mut seg, 5, 6));
    }
}
