//! The few pcapng blocks a capture file needs (little-endian, one section): the section
//! header with a comment, interface descriptions, enhanced packet blocks with a comment
//! each, and interface statistics with the packets lost.
//!
//! See the pcapng specification (draft-ietf-opsawg-pcapng): every block is `type, total
//! length, body, total length`, options are `code, length, value` padded to 32 bits and end
//! with code 0. This module only encodes bytes; it never reads packets or does I/O.

/// `LINKTYPE_ETHERNET`.
pub(crate) const LINKTYPE_ETHERNET: u16 = 1;
/// `LINKTYPE_RAW`: the packet starts with its IPv4 (or IPv6) header.
pub(crate) const LINKTYPE_RAW: u16 = 101;

const SHB: u32 = 0x0A0D_0D0A;
const IDB: u32 = 1;
const ISB: u32 = 5;
const EPB: u32 = 6;
const BYTE_ORDER_MAGIC: u32 = 0x1A2B_3C4D;

const OPT_END: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_NAME: u16 = 2;
const IF_TSRESOL: u16 = 9;
const ISB_STARTTIME: u16 = 2;
const ISB_ENDTIME: u16 = 3;
const ISB_IFDROP: u16 = 5;

/// Appends one option (value padded to 32 bits).
fn option(out: &mut Vec<u8>, code: u16, value: &[u8]) {
    // Longer values are cut: an option's length is 16 bits.
    let value = &value[..value.len().min(usize::from(u16::MAX) & !3)];
    out.extend_from_slice(&code.to_le_bytes());
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
    pad(out);
}

fn pad(out: &mut Vec<u8>) {
    while !out.len().is_multiple_of(4) {
        out.push(0);
    }
}

/// Wraps a block body (already padded) with its type and lengths.
fn block(out: &mut Vec<u8>, kind: u32, body: &[u8]) {
    let total = (12 + body.len()) as u32;
    out.extend_from_slice(&kind.to_le_bytes());
    out.extend_from_slice(&total.to_le_bytes());
    out.extend_from_slice(body);
    out.extend_from_slice(&total.to_le_bytes());
}

/// The section header block: `comment` says what the file holds, `application` who wrote it.
pub(crate) fn section_header(out: &mut Vec<u8>, comment: &str, application: &str) {
    let mut body = Vec::new();
    body.extend_from_slice(&BYTE_ORDER_MAGIC.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    // Section length unknown (the file is streamed).
    body.extend_from_slice(&(-1i64).to_le_bytes());
    option(&mut body, OPT_COMMENT, comment.as_bytes());
    option(&mut body, SHB_USERAPPL, application.as_bytes());
    option(&mut body, OPT_END, &[]);
    block(out, SHB, &body);
}

/// An interface description block (timestamps in nanoseconds).
pub(crate) fn interface(out: &mut Vec<u8>, linktype: u16, snaplen: u32, name: &str) {
    let mut body = Vec::new();
    body.extend_from_slice(&linktype.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&snaplen.to_le_bytes());
    option(&mut body, IF_NAME, name.as_bytes());
    option(&mut body, IF_TSRESOL, &[9]);
    option(&mut body, OPT_END, &[]);
    block(out, IDB, &body);
}

fn timestamp(body: &mut Vec<u8>, unix_nanos: u64) {
    body.extend_from_slice(&((unix_nanos >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(unix_nanos as u32).to_le_bytes());
}

/// An enhanced packet block on interface `interface_id` with a comment.
pub(crate) fn packet(
    out: &mut Vec<u8>,
    interface_id: u32,
    unix_nanos: u64,
    data: &[u8],
    original_len: usize,
    comment: &str,
) {
    let mut body = Vec::with_capacity(data.len() + comment.len() + 40);
    body.extend_from_slice(&interface_id.to_le_bytes());
    timestamp(&mut body, unix_nanos);
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(&(original_len.max(data.len()) as u32).to_le_bytes());
    body.extend_from_slice(data);
    pad(&mut body);
    option(&mut body, OPT_COMMENT, comment.as_bytes());
    option(&mut body, OPT_END, &[]);
    block(out, EPB, &body);
}

/// An interface statistics block: the capture's start and end, and `dropped` (packets the
/// capture wanted but lost) with a comment saying why.
pub(crate) fn statistics(
    out: &mut Vec<u8>,
    interface_id: u32,
    start_nanos: u64,
    end_nanos: u64,
    dropped: u64,
    comment: &str,
) {
    let mut body = Vec::new();
    body.extend_from_slice(&interface_id.to_le_bytes());
    timestamp(&mut body, end_nanos);
    let mut split = Vec::new();
    for t in [start_nanos, end_nanos] {
        split.clear();
        timestamp(&mut split, t);
        option(
            &mut body,
            if t == start_nanos {
                ISB_STARTTIME
            } else {
                ISB_ENDTIME
            },
            &split,
        );
    }
    option(&mut body, ISB_IFDROP, &dropped.to_le_bytes());
    option(&mut body, OPT_COMMENT, comment.as_bytes());
    option(&mut body, OPT_END, &[]);
    block(out, ISB, &body);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u32_at(b: &[u8], at: usize) -> u32 {
        u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
    }

    /// Splits a file into (type, body) blocks, checking both lengths of each.
    fn blocks(mut b: &[u8]) -> Vec<(u32, Vec<u8>)> {
        let mut out = Vec::new();
        while !b.is_empty() {
            let len = u32_at(b, 4) as usize;
            assert_eq!(len % 4, 0, "blocks are 32-bit aligned");
            assert_eq!(u32_at(b, len - 4), len as u32, "trailing length");
            out.push((u32_at(b, 0), b[8..len - 4].to_vec()));
            b = &b[len..];
        }
        out
    }

    /// The options of a block body from `at`: (code, value).
    fn options(body: &[u8], mut at: usize) -> Vec<(u16, Vec<u8>)> {
        let mut out = Vec::new();
        loop {
            let code = u16::from_le_bytes([body[at], body[at + 1]]);
            let len = usize::from(u16::from_le_bytes([body[at + 2], body[at + 3]]));
            if code == OPT_END {
                assert_eq!(len, 0);
                assert_eq!(at + 4, body.len(), "end of options ends the body");
                return out;
            }
            out.push((code, body[at + 4..at + 4 + len].to_vec()));
            at += 4 + len.next_multiple_of(4);
        }
    }

    #[test]
    fn a_file_is_blocks_with_their_fields_and_options() {
        let mut f = Vec::new();
        section_header(&mut f, "what this is", "tungate");
        interface(&mut f, LINKTYPE_RAW, 4096, "tunnel");
        packet(
            &mut f,
            0,
            0x1_0000_0002,
            &[0x45, 0, 0, 5, 9],
            7,
            "drop_reason=plugin",
        );
        statistics(&mut f, 0, 10, 20, 3, "lost");
        assert_eq!(&f[..4], &[0x0A, 0x0D, 0x0D, 0x0A], "the pcapng magic");
        let b = blocks(&f);
        assert_eq!(
            b.iter().map(|(t, _)| *t).collect::<Vec<_>>(),
            [SHB, IDB, EPB, ISB]
        );

        let shb = &b[0].1;
        assert_eq!(u32_at(shb, 0), BYTE_ORDER_MAGIC);
        assert_eq!(&shb[4..8], &[1, 0, 0, 0], "version 1.0");
        assert_eq!(
            options(shb, 16),
            [
                (OPT_COMMENT, b"what this is".to_vec()),
                (SHB_USERAPPL, b"tungate".to_vec())
            ]
        );

        let idb = &b[1].1;
        assert_eq!(u16::from_le_bytes([idb[0], idb[1]]), LINKTYPE_RAW);
        assert_eq!(u32_at(idb, 4), 4096);
        assert_eq!(
            options(idb, 8),
            [(IF_NAME, b"tunnel".to_vec()), (IF_TSRESOL, vec![9])]
        );

        let epb = &b[2].1;
        assert_eq!(
            (u32_at(epb, 0), u32_at(epb, 4), u32_at(epb, 8)),
            (0, 1, 2),
            "interface, timestamp high and low"
        );
        assert_eq!(
            (u32_at(epb, 12), u32_at(epb, 16)),
            (5, 7),
            "captured, original"
        );
        assert_eq!(&epb[20..25], &[0x45, 0, 0, 5, 9]);
        assert_eq!(
            options(epb, 28),
            [(OPT_COMMENT, b"drop_reason=plugin".to_vec())]
        );

        let isb = &b[3].1;
        let opts = options(isb, 12);
        assert_eq!(opts[2], (ISB_IFDROP, 3u64.to_le_bytes().to_vec()));
        assert_eq!(opts[3], (OPT_COMMENT, b"lost".to_vec()));
    }
}
