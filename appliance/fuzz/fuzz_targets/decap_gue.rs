//! Arbitrary GUE and FOU payloads behind a valid outer IPv4 and UDP header from a GUE or FOU
//! peer: `classify` never panics, and what it accepts came to the peer's port, with a
//! well-formed inner packet ending with the outer one.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (peer, rest) = data.split_first().unwrap_or((&0, &[]));
    tungate_fuzz::classify_tunnel_frame(3 + peer % 2, rest);
});
