//! Shared pieces of tungate's fuzz targets: a fixed peer/VIP [`Directory`], the invariants
//! every accepted frame must satisfy, and a structured frame generator ([`FrameSpec`]) that
//! builds mostly well-formed IPIP frames with at most one injected [`Fault`], together with
//! the verdict the documented check order gives for it.
//!
//! The generator writes headers by hand and checksums them with `etherparse`, so the expected
//! verdicts come from the specification (the order of checks in `packet::decap`), not from
//! the code under test. Nothing here is compiled into tungate.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use arbitrary::Arbitrary;
use tungate_packet::{
    Accepted, Directory, DropReason, Inner, LinkLayer, Tunnel, classify, ipv4, ipv6,
};

/// The gateway address of the fixed directory.
pub const GIP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
/// Peer 1's address; it serves [`VIP1`].
pub const RIP1: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
/// Peer 2's address; it serves [`VIP2`].
pub const RIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
/// The VIP of peer 1 (VIP id 10).
pub const VIP1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The VIP of peer 2 (VIP id 11).
pub const VIP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

/// The IPv6 gateway address of the fixed directory.
pub const GIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xd, 0, 0, 0, 0, 1);
/// Peer 3's address (IPv6); it serves [`VIP6`].
pub const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// The IPv6 VIP of peers 1 (6in4) and 3 (VIP id 12).
pub const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);

/// Three peers sending IP in IP: two IPv4 ones with one VIP each (peer 1 also serving
/// [`VIP6`] over 6in4), and an IPv6 one serving [`VIP6`].
pub struct Fixed;

impl Directory for Fixed {
    type Peer = u8;
    type Vip = u8;
    fn gateway(&self) -> Ipv4Addr {
        GIP
    }
    fn gateway6(&self) -> Option<Ipv6Addr> {
        Some(GIP6)
    }
    fn peer_by_address(&self, a: IpAddr) -> Option<u8> {
        if a == RIP1 {
            Some(1)
        } else if a == RIP2 {
            Some(2)
        } else if a == RIP6 {
            Some(3)
        } else {
            None
        }
    }
    fn vip_served_by(&self, peer: u8, s: IpAddr) -> Option<u8> {
        match (peer, s) {
            (1, s) if s == VIP1 => Some(10),
            (2, s) if s == VIP2 => Some(11),
            (1 | 3, s) if s == VIP6 => Some(12),
            _ => None,
        }
    }
    fn tunnel(&self, _peer: u8) -> Tunnel {
        Tunnel::Ipip
    }
}

/// What every accepted frame must satisfy, whatever the input: the inner packet lies inside
/// the frame, its header verifies, it is what the header fields say, and it may be forwarded.
pub fn assert_accepted_invariants(frame: &[u8], link: LinkLayer<u8>, a: &Accepted<u8, u8>) {
    let end = a.inner_offset + a.inner_len;
    assert!(end <= frame.len(), "inner packet past the frame");
    let inner = &frame[a.inner_offset..end];
    let peer = match link {
        LinkLayer::Decapsulated(p) => p,
        LinkLayer::EthernetIpip => outer_peer(frame, a, end),
    };
    assert_eq!(Fixed.vip_served_by(peer, a.inner.source()), Some(a.vip));
    match a.inner {
        Inner::V4(h) => assert_inner4(inner, a.inner_len, &h),
        Inner::V6(h) => assert_inner6(inner, a.inner_len, &h),
    }
}

/// The outer checks of an accepted `userspace` frame (either family): returns its peer.
fn outer_peer(frame: &[u8], a: &Accepted<u8, u8>, end: usize) -> u8 {
    let inner_protocol = match a.inner {
        Inner::V4(_) => 4,
        Inner::V6(_) => 41,
    };
    let sliced = etherparse::SlicedPacket::from_ethernet(frame);
    match frame.get(12..14) {
        Some([0x08, 0x00]) => {
            assert!(a.inner_offset >= 14 + 20);
            let outer = etherparse::Ipv4HeaderSlice::from_slice(&frame[14..]).expect("outer");
            assert_eq!(outer.destination_addr(), GIP);
            assert!(!outer.is_fragmenting_payload(), "outer fragment accepted");
            assert_eq!(outer.protocol().0, inner_protocol);
            assert_eq!(14 + usize::from(outer.total_len()), end);
            Fixed
                .peer_by_address(outer.source_addr().into())
                .expect("known peer")
        }
        Some([0x86, 0xdd]) => {
            assert!(a.inner_offset >= 14 + 40);
            let outer = etherparse::Ipv6HeaderSlice::from_slice(&frame[14..]).expect("outer");
            assert_eq!(outer.destination_addr(), GIP6);
            assert_eq!(14 + 40 + usize::from(outer.payload_length()), end);
            // etherparse walks the same chain (fragment and routing headers included).
            if let Ok(p) = sliced {
                if let Some(etherparse::NetSlice::Ipv6(ip)) = p.net {
                    assert!(!ip.is_payload_fragmented(), "outer fragment accepted");
                }
            }
            Fixed
                .peer_by_address(outer.source_addr().into())
                .expect("known peer")
        }
        other => panic!("accepted with EtherType {other:?}"),
    }
}

fn assert_inner4(inner: &[u8], len: usize, h: &ipv4::Header) {
    let header = etherparse::Ipv4HeaderSlice::from_slice(inner).expect("accepted inner parses");
    assert_eq!(usize::from(header.total_len()), len);
    assert_eq!(usize::from(header.ihl()) * 4, h.header_len);
    assert_eq!(ipv4::checksum(&inner[..h.header_len]), 0);
    assert!(h.ttl > 1, "TTL {} accepted", h.ttl);
    assert!(!matches!(h.protocol, 4 | 41 | 47), "tunnel accepted");
    // No loose or strict source route among the options.
    let mut options = &inner[20..h.header_len];
    while let Some(&kind) = options.first() {
        match kind {
            0 => break,
            1 => options = &options[1..],
            _ => {
                assert!(kind != 0x83 && kind != 0x89, "source route accepted");
                let len = usize::from(options[1]);
                options = &options[len..];
            }
        }
    }
}

fn assert_inner6(inner: &[u8], len: usize, h: &ipv6::Header) {
    let header = etherparse::Ipv6HeaderSlice::from_slice(inner).expect("accepted inner parses");
    assert_eq!(40 + usize::from(header.payload_length()), len);
    assert_eq!(header.source_addr(), h.source);
    assert!(h.hop_limit > 1, "hop limit {} accepted", h.hop_limit);
    assert!(!matches!(h.protocol, 4 | 41 | 47), "tunnel accepted");
    // Walk the chain independently: no routing header with segments left.
    let mut next = header.next_header().0;
    let mut at = 40;
    while matches!(next, 0 | 43 | 60 | 44) && at + 8 <= inner.len() {
        assert!(!(next == 43 && inner[at + 3] > 0), "routing header accepted");
        let ext_len = if next == 44 { 8 } else { (usize::from(inner[at + 1]) + 1) * 8 };
        let later_fragment =
            next == 44 && u16::from_be_bytes([inner[at + 2], inner[at + 3]]) >> 3 != 0;
        next = inner[at];
        at += ext_len;
        if later_fragment {
            // A later fragment's data is no header: the walk names its next header.
            break;
        }
    }
    assert_eq!(next, h.protocol);
}

/// Runs [`classify`] in both modes on `bytes` and checks the invariants of what it accepts.
pub fn classify_both_modes(bytes: &[u8]) {
    for link in [
        LinkLayer::EthernetIpip,
        LinkLayer::Decapsulated(1),
        LinkLayer::Decapsulated(2),
        LinkLayer::Decapsulated(3),
    ] {
        if let Ok(a) = classify(bytes, link, &Fixed) {
            assert_accepted_invariants(bytes, link, &a);
        }
    }
}

/// Who sent the outer packet.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum OuterSource {
    /// Peer 1.
    Peer1,
    /// Peer 2.
    Peer2,
    /// Anyone else.
    Other([u8; 4]),
}

/// Where the outer packet goes.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum OuterDestination {
    /// The gateway.
    Gateway,
    /// Any address.
    Other([u8; 4]),
}

/// The inner source address.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum InnerSource {
    /// Peer 1's VIP.
    Vip1,
    /// Peer 2's VIP.
    Vip2,
    /// Any address.
    Other([u8; 4]),
}

/// One well-formed IPv4 option.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum IpOption {
    /// End of options list (kind 0): what follows is not read.
    End,
    /// No operation (kind 1).
    Nop,
    /// Record route (kind 7) with room for `1 + n % 8` addresses.
    RecordRoute(u8),
    /// Timestamp (kind 0x44) with `n % 8` timestamps.
    Timestamp(u8),
    /// Loose source route (kind 0x83) through `1 + n % 8` addresses.
    Lsrr(u8),
    /// Strict source route (kind 0x89) through `1 + n % 8` addresses.
    Ssrr(u8),
    /// Router alert (kind 0x94).
    RouterAlert,
}

impl IpOption {
    fn encode(self, out: &mut Vec<u8>) {
        let with_len = |out: &mut Vec<u8>, kind: u8, body: usize| {
            out.push(kind);
            out.push((2 + body) as u8);
            out.extend(std::iter::repeat_n(0u8, body));
        };
        match self {
            IpOption::End => out.push(0),
            IpOption::Nop => out.push(1),
            IpOption::RecordRoute(n) => with_len(out, 7, 1 + 4 * (1 + usize::from(n % 8))),
            IpOption::Timestamp(n) => with_len(out, 0x44, 2 + 4 * usize::from(n % 8)),
            IpOption::Lsrr(n) => with_len(out, 0x83, 1 + 4 * (1 + usize::from(n % 8))),
            IpOption::Ssrr(n) => with_len(out, 0x89, 1 + 4 * (1 + usize::from(n % 8))),
            IpOption::RouterAlert => with_len(out, 0x94, 2),
        }
    }
}

/// At most one thing made wrong on purpose.
#[derive(Debug, Clone, Copy, Arbitrary)]
pub enum Fault {
    /// Another EtherType (made different from IPv4 and IPv6).
    EtherType(u16),
    /// Another outer IP version (made different from 4).
    OuterVersion(u8),
    /// An outer IHL below 5 (checksum fixed).
    OuterIhlBelowFive(u8),
    /// An outer total length past the bytes present.
    OuterLengthPastEnd(u16),
    /// An outer total length below the header length.
    OuterLengthBelowHeader(u8),
    /// A broken outer checksum (the xor is made non-zero).
    OuterChecksum(u16),
    /// Another outer protocol than IPIP (made different from 4).
    OuterProtocol(u8),
    /// Another inner IP version (made different from 4).
    InnerVersion(u8),
    /// An inner IHL below 5 (checksum fixed).
    InnerIhlBelowFive(u8),
    /// An inner total length that disagrees with the outer payload (non-zero delta).
    InnerLengthDelta(i16),
    /// A broken inner checksum.
    InnerChecksum(u16),
    /// An inner option whose length runs past the header (or is below 2).
    InnerOptionLength(bool),
    /// The frame cut short at this many bytes (taken modulo its length).
    Truncate(u16),
}

/// A frame to build: every header field the checks look at, plus at most one fault.
#[derive(Debug, Clone, Arbitrary)]
pub struct FrameSpec {
    /// `kernel` decap (the frame is the inner packet alone, read from this peer's tunnel:
    /// `Some(false)` peer 1, `Some(true)` peer 2) or `userspace` decap (`None`).
    pub kernel_peer: Option<bool>,
    /// Outer source.
    pub outer_source: OuterSource,
    /// Outer destination.
    pub outer_destination: OuterDestination,
    /// Outer options (raw bytes, never parsed by tungate; up to 40).
    pub outer_options: Vec<u8>,
    /// Outer more-fragments flag.
    pub outer_more_fragments: bool,
    /// Outer fragment offset (13 bits).
    pub outer_fragment_offset: u16,
    /// Outer TTL, TOS, identification, DF (not judged).
    pub outer_misc: (u8, u8, u16, bool),
    /// Inner source.
    pub inner_source: InnerSource,
    /// Inner destination.
    pub inner_destination: [u8; 4],
    /// Inner protocol.
    pub inner_protocol: u8,
    /// Inner TTL.
    pub inner_ttl: u8,
    /// Inner options (well formed; cut to 40 bytes).
    pub inner_options: Vec<IpOption>,
    /// Inner more-fragments flag and fragment offset (inner fragments are forwarded).
    pub inner_fragment: (bool, u16),
    /// Inner payload length (up to 1500).
    pub payload_len: u16,
    /// Bytes after the outer packet (Ethernet padding), up to 63.
    pub trailer: u8,
    /// What is made wrong.
    pub fault: Option<Fault>,
}

/// A built frame and the verdict the documented check order gives for it.
pub struct Built {
    /// The frame (userspace: Ethernet + outer + inner; kernel: inner only).
    pub frame: Vec<u8>,
    /// How it is received.
    pub link: LinkLayer<u8>,
    /// `Ok((inner_offset, inner_len, vip))` or `Err((reason, vip known))`.
    pub expected: Result<(usize, usize, u8), (DropReason, Option<u8>)>,
}

fn set_checksum(header: &mut [u8]) {
    header[10..12].fill(0);
    let sum = etherparse_checksum(header);
    header[10..12].copy_from_slice(&sum.to_be_bytes());
}

/// The RFC 1071 checksum, computed through etherparse's independent implementation.
fn etherparse_checksum(header: &[u8]) -> u16 {
    let mut sum = etherparse::checksum::Sum16BitWords::new();
    sum = sum.add_slice(header);
    sum.ones_complement().to_be()
}

fn ipv4_header(
    ihl_words: usize,
    total_len: usize,
    (tos, id, df): (u8, u16, bool),
    fragment: (bool, u16),
    ttl: u8,
    protocol: u8,
    source: [u8; 4],
    destination: [u8; 4],
    options: &[u8],
) -> Vec<u8> {
    let mut h = vec![0u8; 20];
    h[0] = 0x40 | (ihl_words as u8 & 0x0f);
    h[1] = tos;
    h[2..4].copy_from_slice(&(total_len as u16).to_be_bytes());
    h[4..6].copy_from_slice(&id.to_be_bytes());
    let flags = (u16::from(df) << 14) | (u16::from(fragment.0) << 13) | (fragment.1 & 0x1fff);
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    h[8] = ttl;
    h[9] = protocol;
    h[12..16].copy_from_slice(&source);
    h[16..20].copy_from_slice(&destination);
    h.extend_from_slice(options);
    h
}

/// Pads option bytes with End to a multiple of 4, at most 40 bytes.
fn padded_options(mut bytes: Vec<u8>) -> Vec<u8> {
    bytes.truncate(40);
    while bytes.len() % 4 != 0 {
        bytes.push(0);
    }
    bytes
}

impl FrameSpec {
    /// Builds the frame and its expected verdict.
    pub fn build(&self) -> Built {
        let fault = self.fault;
        // The inner packet.
        let mut opts = Vec::new();
        let mut source_route = false;
        let mut ended = false;
        for o in &self.inner_options {
            let before = opts.len();
            o.encode(&mut opts);
            if opts.len() > 40 {
                opts.truncate(before);
                break;
            }
            if !ended && matches!(o, IpOption::Lsrr(_) | IpOption::Ssrr(_)) {
                source_route = true;
            }
            if matches!(o, IpOption::End) {
                ended = true;
            }
        }
        let mut bad_option = false;
        if let Some(Fault::InnerOptionLength(below_two)) = fault {
            // A timestamp option whose length runs past the header (or is below 2), placed
            // first so nothing before it ends the scan.
            let len = if below_two { 1 } else { 44 };
            opts.splice(0..0, [0x44, len, 0, 0]);
            opts.truncate(40);
            bad_option = true;
            source_route = false;
        }
        let inner_opts = padded_options(opts);
        let inner_hl = 20 + inner_opts.len();
        let payload_len = usize::from(self.payload_len % 1501);
        let inner_total = inner_hl + payload_len;
        let inner_src = match self.inner_source {
            InnerSource::Vip1 => VIP1.octets(),
            InnerSource::Vip2 => VIP2.octets(),
            InnerSource::Other(a) => a,
        };
        let mut inner = ipv4_header(
            inner_hl / 4,
            inner_total,
            (0, 0x1234, false),
            self.inner_fragment,
            self.inner_ttl,
            self.inner_protocol,
            inner_src,
            self.inner_destination,
            &inner_opts,
        );
        inner.extend((0..payload_len).map(|i| (i * 13 + 5) as u8));
        let mut inner_fault = None;
        match fault {
            Some(Fault::InnerVersion(v)) => {
                let v = if v & 0x0f == 4 { 5 } else { v & 0x0f };
                inner[0] = (v << 4) | (inner[0] & 0x0f);
                inner_fault = Some(DropReason::MalformedInner);
            }
            Some(Fault::InnerIhlBelowFive(i)) => {
                inner[0] = 0x40 | (i % 5);
                inner_fault = Some(DropReason::MalformedInner);
            }
            Some(Fault::InnerLengthDelta(d)) if d != 0 => {
                let t = (inner_total as i64 + i64::from(d)).clamp(0, 0xffff);
                if t as usize != inner_total {
                    inner[2..4].copy_from_slice(&(t as u16).to_be_bytes());
                    inner_fault = Some(DropReason::MalformedInner);
                }
            }
            _ => {}
        }
        set_checksum(&mut inner[..inner_hl]);
        if let Some(Fault::InnerChecksum(x)) = fault {
            let x = if x == 0 { 1 } else { x };
            let c = u16::from_be_bytes([inner[10], inner[11]]) ^ x;
            inner[10..12].copy_from_slice(&c.to_be_bytes());
            // Flipping the checksum can only keep it valid if it swaps 0x0000 and 0xffff,
            // the two encodings of zero; the xor here never maps one onto the other unless
            // x == 0xffff and the checksum is one of them.
            let still_valid = x == 0xffff && (c == 0 || c == 0xffff);
            if !still_valid {
                inner_fault = Some(DropReason::BadInnerChecksum);
            }
        }

        let inner_ok_vip = |peer: u8| -> Option<u8> {
            let src = Ipv4Addr::from(inner_src);
            Fixed.vip_served_by(peer, src.into())
        };
        // The inner checks, in the documented order.
        let judge_inner =
            |peer: u8, inner_len_matches: bool| -> Result<u8, (DropReason, Option<u8>)> {
                if let Some(r) = inner_fault {
                    return Err((r, None));
                }
                if !inner_len_matches {
                    return Err((DropReason::MalformedInner, None));
                }
                if matches!(self.inner_protocol, 4 | 41 | 47) {
                    return Err((DropReason::NestedTunnel, None));
                }
                let vip = inner_ok_vip(peer).ok_or((DropReason::VipNotServed, None))?;
                if bad_option {
                    return Err((DropReason::MalformedInner, Some(vip)));
                }
                if source_route {
                    return Err((DropReason::SourceRoute, Some(vip)));
                }
                if self.inner_ttl <= 1 {
                    return Err((DropReason::TtlExpired, Some(vip)));
                }
                Ok(vip)
            };

        if let Some(second) = self.kernel_peer {
            let peer = if second { 2 } else { 1 };
            let mut frame = inner;
            // A trailing byte with a length field one too long would make a valid packet
            // again: no trailer when the length is the fault.
            let trailer = match fault {
                Some(Fault::InnerLengthDelta(_)) => 0,
                _ => usize::from(self.trailer % 2),
            };
            frame.extend(std::iter::repeat_n(0u8, trailer));
            let mut expected = judge_inner(peer, trailer == 0).map(|vip| (0, inner_total, vip));
            if let Some(Fault::Truncate(at)) = fault {
                // Cut inside the packet (Truncate is the only fault, so nothing else is
                // wrong): the header or the total length no longer fits the bytes present.
                frame.truncate(usize::from(at) % inner_total);
                expected = Err((DropReason::MalformedInner, None));
            }
            return Built {
                frame,
                link: LinkLayer::Decapsulated(peer),
                expected,
            };
        }

        // The outer header and the Ethernet frame.
        let outer_opts = padded_options(self.outer_options.clone());
        let outer_hl = 20 + outer_opts.len();
        let outer_total = outer_hl + inner.len();
        let (outer_ttl, tos, id, df) = self.outer_misc;
        let outer_src = match self.outer_source {
            OuterSource::Peer1 => RIP1.octets(),
            OuterSource::Peer2 => RIP2.octets(),
            OuterSource::Other(a) => a,
        };
        let outer_dst = match self.outer_destination {
            OuterDestination::Gateway => GIP.octets(),
            OuterDestination::Other(a) => a,
        };
        let mut protocol = 4;
        if let Some(Fault::OuterProtocol(p)) = fault {
            protocol = if p == 4 { 5 } else { p };
        }
        let mut outer = ipv4_header(
            outer_hl / 4,
            outer_total,
            (tos, id, df),
            (
                self.outer_more_fragments,
                self.outer_fragment_offset & 0x1fff,
            ),
            outer_ttl,
            protocol,
            outer_src,
            outer_dst,
            &outer_opts,
        );
        let trailer = usize::from(self.trailer % 64);
        let mut outer_fault = None;
        match fault {
            Some(Fault::OuterVersion(v)) => {
                let v = if v & 0x0f == 4 { 6 } else { v & 0x0f };
                outer[0] = (v << 4) | (outer[0] & 0x0f);
                outer_fault = Some(DropReason::NotIpv4);
            }
            Some(Fault::OuterIhlBelowFive(i)) => {
                outer[0] = 0x40 | (i % 5);
                outer_fault = Some(DropReason::MalformedOuter);
            }
            Some(Fault::OuterLengthPastEnd(extra)) => {
                let t = (outer_total + trailer + 1 + usize::from(extra)).min(0xffff);
                if t > outer_total + trailer {
                    outer[2..4].copy_from_slice(&(t as u16).to_be_bytes());
                    outer_fault = Some(DropReason::MalformedOuter);
                }
            }
            Some(Fault::OuterLengthBelowHeader(t)) => {
                let t = usize::from(t) % outer_hl;
                outer[2..4].copy_from_slice(&(t as u16).to_be_bytes());
                outer_fault = Some(DropReason::MalformedOuter);
            }
            _ => {}
        }
        set_checksum(&mut outer[..outer_hl]);
        if let Some(Fault::OuterChecksum(x)) = fault {
            let x = if x == 0 { 1 } else { x };
            let c = u16::from_be_bytes([outer[10], outer[11]]) ^ x;
            outer[10..12].copy_from_slice(&c.to_be_bytes());
            if !(x == 0xffff && (c == 0 || c == 0xffff)) {
                outer_fault = Some(DropReason::BadOuterChecksum);
            }
        }
        let mut ethertype = [0x08, 0x00];
        if let Some(Fault::EtherType(t)) = fault {
            // Neither IPv4 nor IPv6 (an IPv4 packet under 0x86DD is malformed_outer).
            let t = if matches!(t, 0x0800 | 0x86dd) { 0x88b5 } else { t };
            ethertype = t.to_be_bytes();
            outer_fault = Some(DropReason::NotIpv4);
        }
        let mut frame = vec![
            2,
            0,
            0,
            0,
            0,
            2,
            2,
            0,
            0,
            0,
            0,
            1,
            ethertype[0],
            ethertype[1],
        ];
        frame.extend_from_slice(&outer);
        frame.extend_from_slice(&inner);
        frame.extend(std::iter::repeat_n(0u8, trailer));

        let outer_fragment = self.outer_more_fragments || self.outer_fragment_offset & 0x1fff != 0;
        let expected = (|| {
            if let Some(r) = outer_fault {
                return Err((r, None));
            }
            if outer_fragment {
                return Err((DropReason::OuterFragment, None));
            }
            // IP in IP (4, 41), UDP (GUE/FOU) and GRE are tunnel protocols; the others are not.
            if !matches!(protocol, 4 | 17 | 41 | 47) {
                return Err((DropReason::NotIpip, None));
            }
            if outer_dst != GIP.octets() {
                return Err((DropReason::WrongGateway, None));
            }
            let peer = Fixed
                .peer_by_address(Ipv4Addr::from(outer_src).into())
                .ok_or((DropReason::UnknownPeer, None))?;
            // Both peers send IP in IP: UDP or GRE from them is another tunnel.
            if !matches!(protocol, 4 | 41) {
                return Err((DropReason::WrongTunnel, None));
            }
            // Protocol 41 declares IPv6 (6in4), and the generated inner packet is IPv4.
            if protocol == 41 {
                return Err((DropReason::MalformedInner, None));
            }
            judge_inner(peer, true).map(|vip| (14 + outer_hl, inner_total, vip))
        })();
        let mut expected = expected;
        if let Some(Fault::Truncate(at)) = fault {
            let at = usize::from(at) % frame.len();
            frame.truncate(at);
            if at < 14 {
                expected = Err((DropReason::NotIpv4, None));
            } else if at < 14 + outer_total {
                expected = Err((DropReason::MalformedOuter, None));
            }
        }
        Built {
            frame,
            link: LinkLayer::EthernetIpip,
            expected,
        }
    }

    /// Builds the frame, classifies it and checks the verdict against the expected one and
    /// the invariants of an accepted frame.
    pub fn check(&self) {
        let built = self.build();
        let got = classify(&built.frame, built.link, &Fixed);
        if let Ok(a) = &got {
            assert_accepted_invariants(&built.frame, built.link, a);
        }
        let got = got
            .map(|a| (a.inner_offset, a.inner_len, a.vip))
            .map_err(|r| (r.reason, r.vip));
        assert_eq!(got, built.expected, "{self:?}");
    }
}

/// Peers with the other tunnel types, all serving [`VIP1`]: peer 3 sends GUE to
/// [`GUE_PORT`], peer 4 FOU to [`FOU_PORT`], peer 5 GRE without a key, peer 6 GRE with
/// [`GRE_KEY`]; their addresses are 10.0.1.(peer + 10).
pub struct Tunnels;

/// The GUE peer's port.
pub const GUE_PORT: u16 = 6080;
/// The FOU peer's port.
pub const FOU_PORT: u16 = 5555;
/// The keyed GRE peer's key.
pub const GRE_KEY: u32 = 0x0102_0304;

impl Directory for Tunnels {
    type Peer = u8;
    type Vip = u8;
    fn gateway(&self) -> Ipv4Addr {
        GIP
    }
    fn gateway6(&self) -> Option<Ipv6Addr> {
        None
    }
    fn peer_by_address(&self, a: IpAddr) -> Option<u8> {
        match a {
            IpAddr::V4(a) => match a.octets() {
                [10, 0, 1, n @ 13..=16] => Some(n - 10),
                _ => None,
            },
            IpAddr::V6(_) => None,
        }
    }
    fn vip_served_by(&self, _peer: u8, s: IpAddr) -> Option<u8> {
        (s == VIP1).then_some(10)
    }
    fn tunnel(&self, peer: u8) -> Tunnel {
        match peer {
            3 => Tunnel::Gue { port: GUE_PORT },
            4 => Tunnel::Fou { port: FOU_PORT },
            5 => Tunnel::Gre { key: None },
            _ => Tunnel::Gre { key: Some(GRE_KEY) },
        }
    }
}

/// A frame from tunnel peer `peer` (3..=6) whose outer header is valid and whose payload is
/// `data` (for GUE/FOU behind a UDP header with the right length, checksummed or not, to the
/// peer's port or not, as `data`'s first byte says), so that the fuzzer reaches the tunnel
/// header parsers; then classifies it and checks the invariants of what is accepted.
pub fn classify_tunnel_frame(peer: u8, data: &[u8]) {
    let (control, data) = data.split_first().unwrap_or((&0, &[]));
    let source = Ipv4Addr::new(10, 0, 1, peer + 10);
    let tunnel = Tunnels.tunnel(peer);
    let (protocol, payload) = match tunnel {
        Tunnel::Gue { port } | Tunnel::Fou { port } => {
            let port = if control & 1 == 0 { port } else { port ^ 1 };
            let mut udp = vec![0xc0, 0x01];
            udp.extend_from_slice(&port.to_be_bytes());
            udp.extend_from_slice(&((8 + data.len()) as u16).to_be_bytes());
            udp.extend_from_slice(&[0, 0]);
            udp.extend_from_slice(data);
            if control & 2 != 0 {
                let mut sum = etherparse::checksum::Sum16BitWords::new()
                    .add_4bytes(source.octets())
                    .add_4bytes(GIP.octets())
                    .add_2bytes([0, 17])
                    .add_2bytes((udp.len() as u16).to_be_bytes())
                    .add_slice(&udp)
                    .ones_complement()
                    .to_be();
                if sum == 0 {
                    sum = 0xffff;
                }
                udp[6..8].copy_from_slice(&sum.to_be_bytes());
            }
            (17, udp)
        }
        _ => (47, data.to_vec()),
    };
    let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 8, 0];
    let total = 20 + payload.len();
    if total > 0xffff {
        return;
    }
    let mut outer = ipv4_header(
        5,
        total,
        (0, 1, true),
        (false, 0),
        64,
        protocol,
        source.octets(),
        GIP.octets(),
        &[],
    );
    set_checksum(&mut outer);
    frame.extend_from_slice(&outer);
    frame.extend_from_slice(&payload);
    let Ok(a) = classify(&frame, LinkLayer::EthernetIpip, &Tunnels) else {
        return;
    };
    assert_eq!(a.peer, peer);
    let end = a.inner_offset + a.inner_len;
    assert_eq!(end, frame.len(), "the inner packet ends with the outer one");
    let min_header = match tunnel {
        Tunnel::Gue { .. } | Tunnel::Fou { .. } => 8,
        Tunnel::Gre { key } => 4 + 4 * usize::from(key.is_some()),
        Tunnel::Ipip => 0,
    };
    assert!(a.inner_offset >= 14 + 20 + min_header);
    if let Tunnel::Gue { port } | Tunnel::Fou { port } = tunnel {
        assert_eq!(frame[36..38], port.to_be_bytes(), "another port accepted");
    }
    if let Tunnel::Gre { key } = tunnel {
        let flags = frame[34];
        assert_eq!(frame[35], 0, "GRE version or reserved flags accepted");
        assert_eq!(frame[36..38], [8, 0], "GRE protocol other than IPv4 accepted");
        assert_eq!(flags & 0x4f, 0, "refused GRE flag accepted");
        assert_eq!(flags & 0x20 != 0, key.is_some(), "GRE key presence");
        if flags & 0x80 != 0 {
            assert_eq!(etherparse_checksum(&frame[34..]), 0, "bad GRE checksum accepted");
        }
    }
    let inner = &frame[a.inner_offset..end];
    let header = etherparse::Ipv4HeaderSlice::from_slice(inner).expect("accepted inner parses");
    assert_eq!(usize::from(header.total_len()), a.inner_len);
    let Inner::V4(h) = a.inner else {
        panic!("IPv6 accepted from an IPv4-only directory")
    };
    assert_eq!(ipv4::checksum(&inner[..h.header_len]), 0);
    assert!(h.ttl > 1);
    assert!(!matches!(h.protocol, 4 | 41 | 47), "tunnel accepted");
    assert_eq!(h.source, VIP1);
}
