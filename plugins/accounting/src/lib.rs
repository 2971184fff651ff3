//! `accounting`: counts a VIP's replies, packets and bytes, per configured client prefix.
//!
//! Each reply is counted once, under the longest configured prefix that holds its client
//! (the destination), or under `unmatched`; it always passes. Labels are the configured
//! prefixes only, never addresses seen in traffic, so the number of series is bounded.
//! Configuration (JSON, unknown keys refused):
//!
//! ```json
//! { "prefixes": ["198.51.100.0/24", "203.0.113.0/24", "0.0.0.0/0"] }
//! ```
//!
//! Counters: `packets{<prefix>}`, `bytes{<prefix>}` for each prefix, and
//! `packets{unmatched}`, `bytes{unmatched}`.

use serde::Deserialize;
use tungate_plugin_sdk::abi::MAX_COUNTERS;
use tungate_plugin_sdk::{
    Counter, Ipv4Prefix, Packet, Plugin, PrefixMap, Setup, Verdict, export_plugin,
};

/// Most prefixes (two counters each, plus the two `unmatched` ones, must fit the ABI's
/// counter limit).
pub const MAX_PREFIXES: usize = MAX_COUNTERS / 2 - 1;

/// The binding's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The client prefixes to count separately.
    pub prefixes: Vec<Ipv4Prefix>,
}

/// The packets and bytes counters of one bucket.
struct Bucket {
    packets: Counter,
    bytes: Counter,
}

/// The plugin.
pub struct Accounting {
    index: PrefixMap<usize>,
    /// One per prefix, then `unmatched` last.
    buckets: Vec<Bucket>,
}

impl Plugin for Accounting {
    type Config = Config;

    fn configure(config: Config, setup: &mut Setup) -> Result<Self, String> {
        if config.prefixes.is_empty() {
            return Err(
                "`prefixes` is empty: list the client prefixes to count (0.0.0.0/0 for all)".into(),
            );
        }
        if config.prefixes.len() > MAX_PREFIXES {
            return Err(format!(
                "{} prefixes, at most {MAX_PREFIXES}",
                config.prefixes.len()
            ));
        }
        let index = PrefixMap::new(config.prefixes.iter().copied().zip(0..))
            .map_err(|e| format!("prefixes: {e}"))?;
        let mut buckets = Vec::with_capacity(config.prefixes.len() + 1);
        let labels = config
            .prefixes
            .iter()
            .map(|p| p.to_string())
            .chain([String::from("unmatched")]);
        for label in labels {
            buckets.push(Bucket {
                packets: setup.counter("packets", &label)?,
                bytes: setup.counter("bytes", &label)?,
            });
        }
        Ok(Accounting { index, buckets })
    }

    #[inline]
    fn on_packet(&mut self, packet: &Packet<'_>) -> Verdict {
        let i = self
            .index
            .lookup(packet.client_u32())
            .copied()
            .unwrap_or(self.buckets.len() - 1);
        let bucket = &self.buckets[i];
        bucket.packets.increment();
        bucket.bytes.add(u64::from(packet.len()));
        Verdict::Pass
    }
}

export_plugin!(Accounting);

#[cfg(test)]
mod tests {
    use super::*;
    use tungate_plugin_sdk::{PacketDesc, configure_from_json, native};

    fn reply(client: [u8; 4], len: usize) -> PacketDesc {
        let mut b = vec![0u8; len];
        b[0] = 0x45;
        b[9] = 6;
        b[16..20].copy_from_slice(&client);
        PacketDesc::parse(&b)
    }

    #[test]
    fn counts_under_the_longest_prefix_or_unmatched() {
        let mut f = configure_from_json::<Accounting>(
            br#"{"prefixes":["198.51.100.0/24","198.51.100.128/25","203.0.113.0/24"]}"#,
        )
        .unwrap();
        let traffic = [
            ([198, 51, 100, 1], 100),
            ([198, 51, 100, 200], 1000),
            ([198, 51, 100, 201], 60),
            ([203, 0, 113, 9], 40),
            ([8, 8, 8, 8], 1500),
        ];
        for (client, len) in traffic {
            assert_eq!(
                f.on_packet(&Packet::new(&reply(client, len), 0)),
                Verdict::Pass
            );
        }
        let want = [
            ("198.51.100.0/24", 1, 100),
            ("198.51.100.128/25", 2, 1060),
            ("203.0.113.0/24", 1, 40),
            ("unmatched", 1, 1500),
        ];
        for (label, packets, bytes) in want {
            assert_eq!(native::counter("packets", label), Some(packets), "{label}");
            assert_eq!(native::counter("bytes", label), Some(bytes), "{label}");
        }
        assert_eq!(
            native::counters().len(),
            8,
            "two counters per prefix plus unmatched"
        );
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let many: Vec<String> = (0..=MAX_PREFIXES)
            .map(|i| format!("\"10.0.{i}.0/24\""))
            .collect();
        let many = format!("{{\"prefixes\":[{}]}}", many.join(","));
        let cases: Vec<(&[u8], &str)> = vec![
            (br#"{"prefixes":[]}"#, "`prefixes` is empty"),
            (
                br#"{"prefixes":["10.0.0.0/8","10.0.0.0/8"]}"#,
                "listed twice",
            ),
            (br#"{"prefixes":["10.0.0.1/8"]}"#, "host bits set"),
            (br#"{"prefix":["10.0.0.0/8"]}"#, "unknown field `prefix`"),
            (many.as_bytes(), "at most 127"),
        ];
        native::assert_refusals::<Accounting>(&cases);
    }
}
