//! IPv4 header arithmetic: validation, the Internet checksum, the RFC 1624 incremental
//! update for a TTL decrement, and the option scan.
//!
//! Works on byte slices only; never allocates and never panics on any input.

use std::net::Ipv4Addr;

/// Length of an IPv4 header without options.
pub(crate) const MIN_HEADER_LEN: usize = 20;
/// IP protocol number of IPIP (IPv4 in IPv4).
pub(crate) const PROTO_IPIP: u8 = 4;
/// IP protocol number of IPv6 in IPv4.
pub(crate) const PROTO_IPV6: u8 = 41;
/// IP protocol number of GRE.
pub(crate) const PROTO_GRE: u8 = 47;

const OPT_END: u8 = 0;
const OPT_NOP: u8 = 1;
const OPT_LSRR: u8 = 0x83;
const OPT_SSRR: u8 = 0x89;

/// What is wrong with an IPv4 header (mapped to an outer or inner drop reason by the caller).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderProblem {
    /// Version is not 4.
    NotIpv4,
    /// IHL, total length or the bytes present do not fit together.
    Malformed,
    /// The header checksum is wrong.
    BadChecksum,
}

/// The fields of a checked IPv4 header that the data path needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Header length in bytes (IHL × 4).
    pub header_len: usize,
    /// The total length field.
    pub total_len: usize,
    /// Time to live.
    pub ttl: u8,
    /// The protocol of the payload.
    pub protocol: u8,
    /// More-fragments flag set or a non-zero fragment offset.
    pub is_fragment: bool,
    /// Source address.
    pub source: Ipv4Addr,
    /// Destination address.
    pub destination: Ipv4Addr,
}

/// Checks the IPv4 header at the start of `bytes`: version, IHL, total length against the
/// bytes present (`total_len <= bytes.len()`; trailing bytes such as Ethernet padding are
/// allowed) and the header checksum.
pub fn check_header(bytes: &[u8]) -> Result<Header, HeaderProblem> {
    let Some(&first) = bytes.first() else {
        return Err(HeaderProblem::Malformed);
    };
    if first >> 4 != 4 {
        return Err(HeaderProblem::NotIpv4);
    }
    let header_len = usize::from(first & 0x0f) * 4;
    if header_len < MIN_HEADER_LEN || bytes.len() < header_len {
        return Err(HeaderProblem::Malformed);
    }
    let total_len = usize::from(u16::from_be_bytes([bytes[2], bytes[3]]));
    if total_len < header_len || total_len > bytes.len() {
        return Err(HeaderProblem::Malformed);
    }
    if checksum(&bytes[..header_len]) != 0 {
        return Err(HeaderProblem::BadChecksum);
    }
    let frag = u16::from_be_bytes([bytes[6], bytes[7]]);
    Ok(Header {
        header_len,
        total_len,
        ttl: bytes[8],
        protocol: bytes[9],
        is_fragment: frag & 0x3fff != 0,
        source: Ipv4Addr::new(bytes[12], bytes[13], bytes[14], bytes[15]),
        destination: Ipv4Addr::new(bytes[16], bytes[17], bytes[18], bytes[19]),
    })
}

/// The ones' complement sum of `bytes` as 16-bit big-endian words (odd tail padded with
/// zero), not yet folded or complemented.
pub(crate) fn sum_words(bytes: &[u8], initial: u32) -> u64 {
    let mut sum = u64::from(initial);
    let mut chunks = bytes.chunks_exact(2);
    for w in &mut chunks {
        sum += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u64::from(u16::from_be_bytes([*last, 0]));
    }
    sum
}

/// Folds a ones' complement sum to 16 bits.
pub(crate) fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// The Internet checksum of `bytes` (RFC 1071): 0 when `bytes` already carries a correct
/// checksum field.
pub fn checksum(bytes: &[u8]) -> u16 {
    !fold(sum_words(bytes, 0))
}

/// Decrements the TTL of the IPv4 header at the start of `header` and updates its checksum
/// incrementally (RFC 1624, equation 3: `HC' = ~(~HC + ~m + m')`). The caller has checked
/// the header and that the TTL is above 1; a header shorter than 12 bytes is left alone.
pub fn decrement_ttl(header: &mut [u8]) {
    if header.len() < 12 || header[8] == 0 {
        return;
    }
    let old_word = u16::from_be_bytes([header[8], header[9]]);
    header[8] -= 1;
    let new_word = u16::from_be_bytes([header[8], header[9]]);
    let old_check = u16::from_be_bytes([header[10], header[11]]);
    let sum = u64::from(!old_check) + u64::from(!old_word) + u64::from(new_word);
    header[10..12].copy_from_slice(&(!fold(sum)).to_be_bytes());
}

/// Whether the options of a checked header (`header[20..header_len]`) hold a loose or strict
/// source route. `Err` when an option's length runs past the header or is below 2.
pub(crate) fn has_source_route(header: &[u8]) -> Result<bool, HeaderProblem> {
    let mut options = header.get(MIN_HEADER_LEN..).unwrap_or(&[]);
    while let Some(&kind) = options.first() {
        match kind {
            OPT_END => return Ok(false),
            OPT_NOP => options = &options[1..],
            _ => {
                let len = usize::from(*options.get(1).ok_or(HeaderProblem::Malformed)?);
                if len < 2 || len > options.len() {
                    return Err(HeaderProblem::Malformed);
                }
                if kind == OPT_LSRR || kind == OPT_SSRR {
                    return Ok(true);
                }
                options = &options[len..];
            }
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(ttl: u8, options: &[u8]) -> Vec<u8> {
        let ihl = (20 + options.len()) / 4;
        let total = 20 + options.len() + 8;
        let mut h = vec![
            0x40 | ihl as u8,
            0,
            0,
            total as u8,
            0x12,
            0x34,
            0x40,
            0,
            ttl,
            17,
            0,
            0,
            192,
            0,
            2,
            10,
            198,
            51,
            100,
            7,
        ];
        h.extend_from_slice(options);
        let c = checksum(&h);
        h[10..12].copy_from_slice(&c.to_be_bytes());
        h.extend_from_slice(&[0; 8]);
        h
    }

    #[test]
    fn a_good_header_checks_and_its_fields_are_read() {
        let h = header(64, &[]);
        let got = check_header(&h).unwrap();
        assert_eq!(got.header_len, 20);
        assert_eq!(got.total_len, 28);
        assert_eq!(got.ttl, 64);
        assert_eq!(got.protocol, 17);
        assert!(!got.is_fragment);
        assert_eq!(got.source, Ipv4Addr::new(192, 0, 2, 10));
        assert_eq!(got.destination, Ipv4Addr::new(198, 51, 100, 7));
    }

    #[test]
    fn header_problems() {
        let good = header(64, &[]);
        let with = |i: usize, v: u8| {
            let mut h = good.clone();
            h[i] = v;
            h
        };
        let cases: Vec<(&str, Vec<u8>, HeaderProblem)> = vec![
            ("empty", vec![], HeaderProblem::Malformed),
            ("version 6", with(0, 0x65), HeaderProblem::NotIpv4),
            ("ihl 4", with(0, 0x44), HeaderProblem::Malformed),
            ("ihl past end", with(0, 0x4f), HeaderProblem::Malformed),
            ("total below ihl", with(3, 19), HeaderProblem::Malformed),
            ("total past end", with(3, 29), HeaderProblem::Malformed),
            ("short", good[..19].to_vec(), HeaderProblem::Malformed),
            (
                "checksum",
                with(11, good[11] ^ 1),
                HeaderProblem::BadChecksum,
            ),
        ];
        for (name, bytes, want) in cases {
            assert_eq!(check_header(&bytes), Err(want), "{name}");
        }
    }

    #[test]
    fn ttl_decrement_matches_a_full_recompute_for_every_ttl_and_checksum_edge() {
        for ttl in 1..=255u8 {
            for id in [0u16, 0x1234, 0xfeff, 0xffff] {
                let mut h = header(ttl, &[]);
                h[4..6].copy_from_slice(&id.to_be_bytes());
                h[10..12].fill(0);
                let c = checksum(&h[..20]);
                h[10..12].copy_from_slice(&c.to_be_bytes());
                let mut expected = h.clone();
                expected[8] = ttl - 1;
                expected[10..12].fill(0);
                let c = checksum(&expected[..20]);
                expected[10..12].copy_from_slice(&c.to_be_bytes());
                decrement_ttl(&mut h);
                // Both 0x0000 and 0xffff are valid encodings of a zero sum; RFC 1624 eqn 3
                // never produces the -0 (0xffff) form a full recompute avoids.
                assert_eq!(checksum(&h[..20]), 0, "ttl {ttl} id {id:#x}");
                assert_eq!(h[8], ttl - 1);
                assert_eq!(h[..10], expected[..10]);
            }
        }
    }

    #[test]
    fn source_route_options() {
        let cases: &[(&str, &[u8], Result<bool, HeaderProblem>)] = &[
            ("none", &[], Ok(false)),
            ("nop and end", &[1, 1, 1, 0], Ok(false)),
            ("record route", &[7, 7, 4, 0, 0, 0, 0, 0], Ok(false)),
            ("lsrr", &[1, 0x83, 7, 4, 10, 0, 0, 1], Ok(true)),
            ("ssrr after nop", &[1, 0x89, 7, 4, 10, 0, 0, 1], Ok(true)),
            (
                "length past end",
                &[0x44, 12, 5, 0],
                Err(HeaderProblem::Malformed),
            ),
            (
                "length below 2",
                &[0x44, 1, 0, 0],
                Err(HeaderProblem::Malformed),
            ),
            ("lone kind", &[1, 1, 1, 0x44], Err(HeaderProblem::Malformed)),
        ];
        for (name, opts, want) in cases {
            let h = header(64, opts);
            let checked = check_header(&h).unwrap();
            assert_eq!(has_source_route(&h[..checked.header_len]), *want, "{name}");
        }
    }
}
