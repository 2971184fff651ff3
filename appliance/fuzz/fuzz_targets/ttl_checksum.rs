//! The TTL decrement with its incremental checksum update, and the offload-header rewrite:
//! on any header that passes the checks the checksum stays valid and only the TTL and the
//! checksum change; the virtio-net helpers never panic and never write outside the frame.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use tungate_packet::{ipv4, vnet};

#[derive(Debug, Arbitrary)]
struct Input {
    header: Vec<u8>,
    fix_checksum: bool,
    vnet: [u8; vnet::LEN],
    old_l3: u8,
    new_l3: u8,
    frame: Vec<u8>,
    csum: (u16, u16),
}

fuzz_target!(|input: Input| {
    let mut h = input.header;
    if input.fix_checksum && h.len() >= 20 {
        let ihl = (usize::from(h[0] & 0x0f) * 4).clamp(20, h.len());
        h[10..12].fill(0);
        let c = ipv4::checksum(&h[..ihl]);
        h[10..12].copy_from_slice(&c.to_be_bytes());
    }
    let before = h.clone();
    if let Ok(checked) = ipv4::check_header(&h)
        && checked.ttl > 1
    {
        ipv4::decrement_ttl(&mut h);
        let hl = checked.header_len;
        assert_eq!(
            ipv4::checksum(&h[..hl]),
            0,
            "checksum invalid after the decrement"
        );
        assert_eq!(h[8], before[8] - 1);
        assert_eq!(h[..8], before[..8]);
        assert_eq!(h[9], before[9]);
        assert_eq!(h[12..], before[12..]);
        let again = ipv4::check_header(&h).expect("still a valid header");
        assert_eq!(again.ttl, checked.ttl - 1);
    } else {
        // Never panics on what the caller would not hand it either.
        ipv4::decrement_ttl(&mut h);
        assert_eq!(h.len(), before.len());
    }

    let parsed = vnet::VnetHeader::parse(&input.vnet).expect("10 bytes");
    let mut written = [0u8; vnet::LEN];
    parsed.write(&mut written);
    assert_eq!(written, input.vnet);
    let len = input.frame.len();
    if let Some(tx) = parsed.for_transmit(usize::from(input.old_l3), usize::from(input.new_l3), len)
        && tx.needs_csum()
    {
        assert!(
            usize::from(tx.csum_start) + usize::from(tx.csum_offset) + 2 <= len,
            "checksum field outside the frame: {tx:?}"
        );
    }
    let mut frame = input.frame;
    let (start, offset) = (usize::from(input.csum.0), usize::from(input.csum.1));
    let original = frame.clone();
    if vnet::finish_checksum(&mut frame, start, offset) {
        let field = start + offset;
        assert_eq!(frame[..field], original[..field]);
        assert_eq!(frame[field + 2..], original[field + 2..]);
    } else {
        assert_eq!(frame, original);
    }
});
