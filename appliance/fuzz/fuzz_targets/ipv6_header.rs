//! Arbitrary bytes as an IPv6 packet: `ipv6::check_header` never panics, and what it accepts
//! is version 6, fits the bytes given, stops inside the payload within the chain's bounds,
//! and names an upper-layer protocol (not a walked extension header) unless it stopped at a
//! later fragment's data.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tungate_packet::ipv6;

fuzz_target!(|data: &[u8]| {
    let Ok(h) = ipv6::check_header(data) else {
        return;
    };
    assert_eq!(data[0] >> 4, 6);
    assert!(h.total_len() <= data.len());
    assert!(ipv6::HEADER_LEN <= h.upper_offset && h.upper_offset <= h.total_len());
    assert!(h.upper_offset - ipv6::HEADER_LEN <= ipv6::MAX_EXTENSION_BYTES);
    let later_fragment = h.fragment.is_some_and(|f| f.offset != 0);
    if !later_fragment {
        assert!(!matches!(
            h.protocol,
            ipv6::NH_HOP_BY_HOP | ipv6::NH_ROUTING | ipv6::NH_FRAGMENT | ipv6::NH_DEST_OPTS
        ));
    }
});
