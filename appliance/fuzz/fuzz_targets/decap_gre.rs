//! Arbitrary GRE payloads behind a valid outer IPv4 header from an unkeyed or a keyed GRE
//! peer: `classify` never panics, and what it accepts is GRE version 0 carrying IPv4 with no
//! refused flag, a key exactly when the peer has one, a checksum that holds when present.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (peer, rest) = data.split_first().unwrap_or((&0, &[]));
    tungate_fuzz::classify_tunnel_frame(5 + peer % 2, rest);
});
