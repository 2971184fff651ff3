//! ABI v2: the descriptor and batch area that carry IPv4 and IPv6 packets alike.
//!
//! Everything not defined here (exports other than the marker, imports, verdicts, limits,
//! [`super::BATCH_MAX`]) is shared with v1 and lives in [`super`]. A v2 descriptor has
//! 16-byte address fields, a family byte and 128 header bytes (an IPv6 header with its
//! extension headers and the transport header fit). Like v1, it is built only by
//! [`PacketDesc::parse`], which both the host and the SDK use; this module holds constants
//! and plain `#[repr(C)]` data only.

use super::{BATCH_AREA_ALIGN, BATCH_MAX, VERDICT_UNSET, protocol};

/// The ABI version of this layout.
pub const VERSION: u32 = 2;
/// The version marker of ABI v2 (a `() -> ()` export, never called).
pub const EXPORT_ABI_MARKER: &str = "tungate_abi_v2";

/// How many leading bytes of each packet (IP header first) a v2 descriptor carries.
pub const HEADER_BYTES: usize = 128;
/// Size in bytes of one v2 [`PacketDesc`].
pub const DESC_SIZE: usize = 192;
/// Offset of the descriptors inside the v2 [`BatchArea`].
pub const AREA_PACKETS_OFFSET: usize = 16;
/// Offset of the verdict bytes inside the v2 [`BatchArea`].
pub const AREA_VERDICTS_OFFSET: usize = AREA_PACKETS_OFFSET + BATCH_MAX * DESC_SIZE;
/// Size in bytes of the v2 [`BatchArea`].
pub const BATCH_AREA_SIZE: usize = AREA_VERDICTS_OFFSET + BATCH_MAX;

/// [`PacketDesc::family`] of an IPv4 packet.
pub const FAMILY_IPV4: u8 = 4;
/// [`PacketDesc::family`] of an IPv6 packet.
pub const FAMILY_IPV6: u8 = 6;

/// The bytes held a well-formed IPv4 or IPv6 header (for IPv6: and an extension-header
/// chain that ends inside the packet); the other fields are meaningful only when set.
pub const FLAG_WELL_FORMED: u8 = 1 << 0;
/// The packet is a fragment (IPv4: more-fragments set or a non-zero offset; IPv6: it has a
/// Fragment header).
pub const FLAG_FRAGMENT: u8 = 1 << 1;
/// The packet is a fragment other than the first: it carries no transport header.
pub const FLAG_LATER_FRAGMENT: u8 = 1 << 2;
/// `src_port`/`dst_port` hold the transport ports (TCP, UDP, UDP-Lite, SCTP).
pub const FLAG_PORTS: u8 = 1 << 3;
/// `tcp_flags` holds the TCP flags byte.
pub const FLAG_TCP_FLAGS: u8 = 1 << 4;
/// IPv4 only: the don't-fragment bit is set (IPv6 routers never fragment: always clear).
pub const FLAG_DONT_FRAGMENT: u8 = 1 << 5;

/// Most IPv6 extension headers [`PacketDesc::parse`] walks before it gives up on a chain.
pub const MAX_EXTENSION_HEADERS: usize = 8;

/// IPv6 next-header values the descriptor parser walks through.
mod next_header {
    pub const HOP_BY_HOP: u8 = 0;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const AUTH: u8 = 51;
    pub const DEST_OPTS: u8 = 60;
}

/// One packet as the host describes it to a v2 plugin: 192 bytes, little-endian numbers,
/// addresses in network order. IPv4 addresses take the first 4 bytes of their 16-byte field
/// (the other 12 are zero); [`PacketDesc::family`] says which.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[repr(C)]
pub struct PacketDesc {
    pub(crate) src: [u8; 16],
    pub(crate) dst: [u8; 16],
    pub(crate) len: u32,
    pub(crate) src_port: u16,
    pub(crate) dst_port: u16,
    pub(crate) protocol: u8,
    pub(crate) ttl: u8,
    pub(crate) tcp_flags: u8,
    pub(crate) flags: u8,
    pub(crate) family: u8,
    pub(crate) tos: u8,
    pub(crate) ip_header_len: u16,
    pub(crate) fragment_offset: u16,
    pub(crate) captured: u16,
    pub(crate) ip_id: u32,
    pub(crate) flow_label: u32,
    pub(crate) reserved: u32,
    pub(crate) header: [u8; HEADER_BYTES],
}

const _: () = assert!(core::mem::size_of::<PacketDesc>() == DESC_SIZE);
const _: () = assert!(core::mem::align_of::<PacketDesc>() <= BATCH_AREA_ALIGN);
const _: () = assert!(core::mem::offset_of!(PacketDesc, header) == 64);

impl PacketDesc {
    /// The all-zero descriptor (family 0, nothing well-formed).
    pub const ZERO: PacketDesc = PacketDesc {
        src: [0; 16],
        dst: [0; 16],
        len: 0,
        src_port: 0,
        dst_port: 0,
        protocol: 0,
        ttl: 0,
        tcp_flags: 0,
        flags: 0,
        family: 0,
        tos: 0,
        ip_header_len: 0,
        fragment_offset: 0,
        captured: 0,
        ip_id: 0,
        flow_label: 0,
        reserved: 0,
        header: [0; HEADER_BYTES],
    };

    /// Describes an IPv4 or IPv6 packet (IP header first). Never panics: bytes that are not
    /// a well-formed header give a descriptor with only `len` and the header bytes set.
    pub fn parse(bytes: &[u8]) -> PacketDesc {
        let mut d = PacketDesc::ZERO;
        d.parse_into(bytes);
        d
    }

    /// Describes `bytes` into `self`, overwriting every field: the same descriptor as
    /// [`PacketDesc::parse`], written in place (the host writes straight into guest memory).
    #[inline]
    pub fn parse_into(&mut self, bytes: &[u8]) {
        let header = match bytes.first_chunk::<HEADER_BYTES>() {
            Some(head) => *head,
            None => {
                let mut h = [0; HEADER_BYTES];
                h[..bytes.len()].copy_from_slice(bytes);
                h
            }
        };
        *self = PacketDesc {
            header,
            len: u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le(),
            captured: (bytes.len().min(HEADER_BYTES) as u16).to_le(),
            ..PacketDesc::ZERO
        };
        let parsed = match bytes.first().map(|b| b >> 4) {
            Some(4) => self.parse_v4(bytes),
            Some(6) => self.parse_v6(bytes),
            _ => None,
        };
        if parsed.is_none() {
            // Not well-formed: keep only the length and the bytes, as documented.
            *self = PacketDesc {
                header: self.header,
                len: self.len,
                captured: self.captured,
                ..PacketDesc::ZERO
            };
        }
    }

    fn parse_v4(&mut self, bytes: &[u8]) -> Option<()> {
        let ip = bytes.first_chunk::<20>()?;
        let ihl = usize::from(ip[0] & 0x0f) * 4;
        if ihl < 20 || ihl > bytes.len() {
            return None;
        }
        let frag = u16::from_be_bytes([ip[6], ip[7]]);
        let offset = (frag & 0x1fff) << 3;
        let mut flags = FLAG_WELL_FORMED;
        if frag & 0x4000 != 0 {
            flags |= FLAG_DONT_FRAGMENT;
        }
        if frag & 0x2000 != 0 || offset != 0 {
            flags |= FLAG_FRAGMENT;
        }
        self.family = FAMILY_IPV4;
        self.tos = ip[1];
        self.ip_id = u32::from(u16::from_be_bytes([ip[4], ip[5]])).to_le();
        self.ttl = ip[8];
        self.src[..4].copy_from_slice(&ip[12..16]);
        self.dst[..4].copy_from_slice(&ip[16..20]);
        self.finish(bytes, ip[9], ihl, offset, flags);
        Some(())
    }

    fn parse_v6(&mut self, bytes: &[u8]) -> Option<()> {
        let ip = bytes.first_chunk::<40>()?;
        let word = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]);
        self.family = FAMILY_IPV6;
        self.tos = (word >> 20) as u8;
        self.flow_label = (word & 0x000f_ffff).to_le();
        self.ttl = ip[7];
        self.src.copy_from_slice(&ip[8..24]);
        self.dst.copy_from_slice(&ip[24..40]);
        let mut next = ip[6];
        let mut at = 40usize;
        let mut flags = FLAG_WELL_FORMED;
        for _ in 0..=MAX_EXTENSION_HEADERS {
            let ext = bytes.get(at..at + 8);
            let len = match next {
                next_header::HOP_BY_HOP | next_header::ROUTING | next_header::DEST_OPTS => {
                    (usize::from(ext?[1]) + 1) * 8
                }
                next_header::AUTH => (usize::from(ext?[1]) + 2) * 4,
                next_header::FRAGMENT => {
                    let f = ext?;
                    let offset = u16::from_be_bytes([f[2], f[3]]) & 0xfff8;
                    flags |= FLAG_FRAGMENT;
                    self.ip_id = u32::from_be_bytes([f[4], f[5], f[6], f[7]]).to_le();
                    if offset != 0 {
                        // A later fragment: what follows is payload, not headers.
                        self.finish(bytes, f[0], at + 8, offset, flags);
                        return Some(());
                    }
                    8
                }
                upper => {
                    self.finish(bytes, upper, at, 0, flags);
                    return Some(());
                }
            };
            if at + len > bytes.len() {
                return None;
            }
            next = bytes[at];
            at += len;
        }
        // More extension headers than a descriptor walks.
        None
    }

    /// Fills the fields after the IP header: protocol, header length, fragment offset, and
    /// ports and TCP flags when the transport header is there.
    fn finish(&mut self, bytes: &[u8], proto: u8, ip_len: usize, offset: u16, mut flags: u8) {
        self.protocol = proto;
        self.ip_header_len = (ip_len as u16).to_le();
        self.fragment_offset = offset.to_le();
        if offset != 0 {
            flags |= FLAG_LATER_FRAGMENT;
        } else {
            let l4 = bytes.get(ip_len..).unwrap_or(&[]);
            if protocol::has_ports(proto)
                && let Some(p) = l4.first_chunk::<4>()
            {
                self.src_port = u16::from_be_bytes([p[0], p[1]]).to_le();
                self.dst_port = u16::from_be_bytes([p[2], p[3]]).to_le();
                flags |= FLAG_PORTS;
            }
            if proto == protocol::TCP && l4.len() >= 14 {
                self.tcp_flags = l4[13];
                flags |= FLAG_TCP_FLAGS;
            }
        }
        self.flags = flags;
    }

    /// The address family: [`FAMILY_IPV4`], [`FAMILY_IPV6`], or 0 if not well-formed.
    pub fn family(&self) -> u8 {
        self.family
    }

    /// The descriptor's 192 bytes exactly as they lie in guest memory.
    pub fn as_bytes(&self) -> &[u8; DESC_SIZE] {
        // SAFETY: `PacketDesc` is `repr(C)`, exactly DESC_SIZE bytes (asserted above) with no
        // padding (its fields add up to DESC_SIZE), and made only of integers, so every byte
        // is initialised and the reference lives as long as `self`.
        unsafe { &*(self as *const PacketDesc).cast::<[u8; DESC_SIZE]>() }
    }

    /// Guest memory (`bytes`, at least 4-byte aligned, a whole number of descriptors long)
    /// seen as descriptors, for the host to write them in place; `None` if misaligned or of
    /// the wrong length.
    pub fn slice_from_bytes_mut(bytes: &mut [u8]) -> Option<&mut [PacketDesc]> {
        if !(bytes.as_ptr() as usize).is_multiple_of(core::mem::align_of::<PacketDesc>())
            || !bytes.len().is_multiple_of(DESC_SIZE)
        {
            return None;
        }
        // SAFETY: aligned (checked) and `len / DESC_SIZE` whole descriptors long (checked);
        // `PacketDesc` is `repr(C)` integers without padding, so every byte pattern is a
        // valid value, and the result borrows `bytes` exclusively for its lifetime.
        Some(unsafe {
            core::slice::from_raw_parts_mut(
                bytes.as_mut_ptr().cast::<PacketDesc>(),
                bytes.len() / DESC_SIZE,
            )
        })
    }
}

/// The guest's v2 batch area, at the address `tungate_batch_area` returns: the host writes
/// the batch time and the descriptors, the guest writes the verdicts.
#[derive(Clone, PartialEq, Eq, Debug)]
#[repr(C, align(8))]
pub struct BatchArea {
    /// Monotonic time of the batch in nanoseconds (the same clock as `now_ns`).
    pub now_ns: u64,
    /// Zero; reserved for later ABI versions.
    pub reserved: u64,
    /// The packets of the batch; only the first `count` are meaningful.
    pub packets: [PacketDesc; BATCH_MAX],
    /// One [`super::Verdict`] code per packet.
    pub verdicts: [u8; BATCH_MAX],
}

const _: () = assert!(core::mem::size_of::<BatchArea>() == BATCH_AREA_SIZE.next_multiple_of(8));
const _: () = assert!(core::mem::offset_of!(BatchArea, packets) == AREA_PACKETS_OFFSET);
const _: () = assert!(core::mem::offset_of!(BatchArea, verdicts) == AREA_VERDICTS_OFFSET);

impl BatchArea {
    /// An empty area (all verdicts unset).
    pub const fn new() -> BatchArea {
        BatchArea {
            now_ns: 0,
            reserved: 0,
            packets: [PacketDesc::ZERO; BATCH_MAX],
            verdicts: [VERDICT_UNSET; BATCH_MAX],
        }
    }
}

impl Default for BatchArea {
    fn default() -> Self {
        BatchArea::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::vec::Vec;

    const VIP6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    const CLIENT6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7,
    ];

    /// An IPv6 packet VIP6 -> CLIENT6 with these extension headers (each given as its
    /// next-header value and its bytes after the first two), then `upper` and its header.
    fn v6(exts: &[(u8, Vec<u8>)], upper: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = alloc::vec![0u8; 40];
        // Version 6, traffic class 0xb8, flow label 0x12345.
        p[..4].copy_from_slice(&((6u32 << 28) | (0xb8 << 20) | 0x12345).to_be_bytes());
        p[6] = exts.first().map_or(upper, |e| e.0);
        p[7] = 64;
        p[8..24].copy_from_slice(&VIP6);
        p[24..40].copy_from_slice(&CLIENT6);
        for (i, (_, body)) in exts.iter().enumerate() {
            let next = exts.get(i + 1).map_or(upper, |e| e.0);
            p.push(next);
            p.extend_from_slice(body);
        }
        p.extend_from_slice(l4);
        let payload = (p.len() - 40) as u16;
        p[4..6].copy_from_slice(&payload.to_be_bytes());
        p
    }

    fn tcp_syn_ack() -> [u8; 20] {
        let mut t = [0u8; 20];
        t[..2].copy_from_slice(&443u16.to_be_bytes());
        t[2..4].copy_from_slice(&51000u16.to_be_bytes());
        t[13] = 0x12;
        t
    }

    #[test]
    fn layout_offsets_match_abi_md() {
        assert_eq!(AREA_PACKETS_OFFSET, 16);
        assert_eq!(AREA_VERDICTS_OFFSET, 12304);
        assert_eq!(BATCH_AREA_SIZE, 12368);
        assert_eq!(core::mem::offset_of!(PacketDesc, dst), 16);
        assert_eq!(core::mem::offset_of!(PacketDesc, len), 32);
        assert_eq!(core::mem::offset_of!(PacketDesc, src_port), 36);
        assert_eq!(core::mem::offset_of!(PacketDesc, protocol), 40);
        assert_eq!(core::mem::offset_of!(PacketDesc, flags), 43);
        assert_eq!(core::mem::offset_of!(PacketDesc, family), 44);
        assert_eq!(core::mem::offset_of!(PacketDesc, tos), 45);
        assert_eq!(core::mem::offset_of!(PacketDesc, ip_header_len), 46);
        assert_eq!(core::mem::offset_of!(PacketDesc, fragment_offset), 48);
        assert_eq!(core::mem::offset_of!(PacketDesc, captured), 50);
        assert_eq!(core::mem::offset_of!(PacketDesc, ip_id), 52);
        assert_eq!(core::mem::offset_of!(PacketDesc, flow_label), 56);
        assert!(EXPORT_ABI_MARKER.starts_with(super::super::ABI_MARKER_PREFIX));
        assert_eq!(
            &EXPORT_ABI_MARKER[super::super::ABI_MARKER_PREFIX.len()..],
            "2"
        );
    }

    #[test]
    fn ipv6_tcp_through_destination_options_bytes_in_guest_memory() {
        let p = v6(&[(60, alloc::vec![0, 1, 4, 0, 0, 0, 0])], 6, &tcp_syn_ack());
        let d = PacketDesc::parse(&p);
        let b = d.as_bytes();
        assert_eq!(&b[0..16], &VIP6);
        assert_eq!(&b[16..32], &CLIENT6);
        assert_eq!(&b[32..36], &(p.len() as u32).to_le_bytes());
        assert_eq!(&b[36..38], &443u16.to_le_bytes());
        assert_eq!(&b[38..40], &51000u16.to_le_bytes());
        assert_eq!((b[40], b[41], b[42]), (6, 64, 0x12));
        assert_eq!(b[43], FLAG_WELL_FORMED | FLAG_PORTS | FLAG_TCP_FLAGS);
        assert_eq!((b[44], b[45]), (FAMILY_IPV6, 0xb8));
        assert_eq!(
            &b[46..48],
            &48u16.to_le_bytes(),
            "40 + one 8-byte option header"
        );
        assert_eq!(&b[50..52], &(p.len() as u16).to_le_bytes());
        assert_eq!(&b[56..60], &0x12345u32.to_le_bytes());
        assert_eq!(&b[64..64 + p.len()], &p[..]);
        assert!(b[64 + p.len()..].iter().all(|&x| x == 0));
    }

    #[test]
    fn ipv6_fragments_first_and_later() {
        let frag = |offset_units: u16, more: bool| {
            let mut f = alloc::vec![0u8; 7];
            f[1..3].copy_from_slice(&((offset_units << 3) | u16::from(more)).to_be_bytes());
            f[3..7].copy_from_slice(&0xdead_beefu32.to_be_bytes());
            f
        };
        let first = PacketDesc::parse(&v6(&[(44, frag(0, true))], 17, &[0, 53, 0x9c, 0x40]));
        assert_eq!(first.flags, FLAG_WELL_FORMED | FLAG_FRAGMENT | FLAG_PORTS);
        assert_eq!((first.protocol, u16::from_le(first.src_port)), (17, 53));
        assert_eq!(u32::from_le(first.ip_id), 0xdead_beef);
        let later = PacketDesc::parse(&v6(&[(44, frag(185, false))], 17, &[0, 53, 0, 1]));
        assert_eq!(
            later.flags,
            FLAG_WELL_FORMED | FLAG_FRAGMENT | FLAG_LATER_FRAGMENT
        );
        assert_eq!(u16::from_le(later.fragment_offset), 1480);
        assert_eq!((later.protocol, later.src_port), (17, 0));
    }

    #[test]
    fn ipv4_in_a_v2_descriptor() {
        let mut p = [0u8; 40];
        p[0] = 0x45;
        p[1] = 0x10;
        p[4..6].copy_from_slice(&[0x12, 0x34]);
        p[6] = 0x40;
        p[8] = 63;
        p[9] = 6;
        p[12..16].copy_from_slice(&[192, 0, 2, 10]);
        p[16..20].copy_from_slice(&[198, 51, 100, 7]);
        p[20..40].copy_from_slice(&tcp_syn_ack());
        let d = PacketDesc::parse(&p);
        assert_eq!(d.family(), FAMILY_IPV4);
        assert_eq!(&d.src[..4], &[192, 0, 2, 10]);
        assert!(d.src[4..].iter().chain(&d.dst[4..]).all(|&b| b == 0));
        assert_eq!(&d.dst[..4], &[198, 51, 100, 7]);
        assert_eq!(
            d.flags,
            FLAG_WELL_FORMED | FLAG_PORTS | FLAG_TCP_FLAGS | FLAG_DONT_FRAGMENT
        );
        assert_eq!(
            (d.ttl, d.tos, u16::from_le(d.ip_header_len)),
            (63, 0x10, 20)
        );
        assert_eq!(u32::from_le(d.ip_id), 0x1234);
        assert_eq!(d.flow_label, 0);
    }

    #[test]
    fn malformed_bytes_keep_only_length_and_header_and_never_panic() {
        let too_many: Vec<(u8, Vec<u8>)> = (0..=MAX_EXTENSION_HEADERS)
            .map(|_| (60, alloc::vec![0u8; 7]))
            .collect();
        let cut_chain = {
            let mut p = v6(&[(0, alloc::vec![0u8; 7])], 6, &tcp_syn_ack());
            p[41] = 200; // hop-by-hop claims 1608 bytes
            p
        };
        let cases: [&[u8]; 7] = [
            &[],
            &[0x60; 39],
            &[0x45; 10],
            &[0x4f; 20],
            &[0x70; 60],
            &v6(&too_many, 6, &tcp_syn_ack()),
            &cut_chain,
        ];
        for bytes in cases {
            let mut used = PacketDesc::parse(&v6(&[], 6, &tcp_syn_ack()));
            used.parse_into(bytes);
            let mut want = PacketDesc::ZERO;
            want.len = (bytes.len() as u32).to_le();
            want.captured = (bytes.len().min(HEADER_BYTES) as u16).to_le();
            want.header[..bytes.len().min(HEADER_BYTES)]
                .copy_from_slice(&bytes[..bytes.len().min(HEADER_BYTES)]);
            assert_eq!(used, want, "{bytes:?}");
        }
        let deepest: Vec<(u8, Vec<u8>)> = (0..MAX_EXTENSION_HEADERS)
            .map(|_| (60, alloc::vec![0u8; 7]))
            .collect();
        let d = PacketDesc::parse(&v6(&deepest, 17, &[0, 53, 0, 1]));
        assert_eq!(
            d.flags,
            FLAG_WELL_FORMED | FLAG_PORTS,
            "the deepest chain walked"
        );
        assert_eq!(u16::from_le(d.ip_header_len), 40 + 8 * 8);
        let long = v6(&deepest, 6, &[0u8; 40]);
        assert_eq!(long.len(), 144);
        assert_eq!(
            u16::from_le(PacketDesc::parse(&long).captured),
            128,
            "cut at HEADER_BYTES"
        );
    }
}
