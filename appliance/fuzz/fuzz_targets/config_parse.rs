//! Configuration documents from untrusted text (TOML file, JSON from the admin API): parsing
//! and validation never panic, and a document that validates renders back to TOML and JSON
//! that parse to the same document.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tungate_config::{self as config, Document};

fn round_trip(doc: &Document) {
    if config::validate(doc).is_err() {
        return;
    }
    let json = serde_json::to_vec(doc).expect("a document serialises to JSON");
    assert_eq!(&config::parse_json(&json).expect("its JSON parses"), doc);
    let toml = config::to_toml(doc);
    assert_eq!(&config::parse_toml(&toml).expect("its TOML parses"), doc);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = config::parse_json(data) {
        round_trip(&doc);
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(doc) = config::parse_toml(text)
    {
        round_trip(&doc);
    }
});
