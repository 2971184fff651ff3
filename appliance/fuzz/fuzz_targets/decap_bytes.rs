//! Arbitrary bytes as a received frame, in both receive modes: `classify` never panics, and
//! whatever it accepts satisfies the invariants of a forwardable packet.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tungate_fuzz::classify_both_modes(data);
});
