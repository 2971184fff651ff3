//! Structured frames (well-formed IPIP with at most one fault) so the fuzzer reaches the deep
//! inner checks: the verdict must be the one the documented check order gives.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tungate_fuzz::FrameSpec;

fuzz_target!(|spec: FrameSpec| {
    spec.check();
});
