//! `accounting`: counts a VIP's replies, packets and bytes, per configured client prefix.
//!
//! Each reply is counted once, under the longest configured prefix that holds its client
//! (the destination, IPv4 or IPv6: ABI v2), or under `unmatched`; it always passes. Labels are the configured
//! prefixes only, never addresses seen in traffic, so the number of series is bounded.
//! Configuration (JSON, unknown keys refused):
//!
//! ```json
//! { "prefixes": ["198.51.100.0/24", "203.0.113.0/24", "0.0.0.0/0", "2001:db8:ff::/48", "::/0"] }
//! ```
//!
//! Prefixes of both families may be listed; a prefix holds only clients of its own family
//! (`0.0.0.0/0` every IPv4 client, `::/0` every IPv6 one).
//!
//! Counters: `packets{<prefix>}`, `bytes{<prefix>}` for each prefix, and
//! `packets{unmatched}`, `bytes{unmatched}`.

use serde::Deserialize;
use tungate_plugin_sdk::abi::MAX_COUNTERS;
use tungate_plugin_sdk::{
    Counter, IpPrefix, Packet, Plugin, PrefixMap, Setup, Verdict, export_plugin,
};

/// Most prefixes (two counters each, plus the two `unmatched` ones, must fit the ABI's
/// counter limit).
pub const MAX_PREFIXES: usize = MAX_COUNTERS / 2 - 1;

/// The binding's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The client prefixes to count separately.
    pub prefixes: Vec<IpPrefix>,
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
                "`prefixes` is empty: list the client prefixes to count (0.0.0.0/0 and ::/0 for all)".into(),
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
            .lookup(packet.dst())
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
    use std::net::IpAddr;
    use tungate_plugin_sdk::{PacketDesc, configure_from_json, native};

    fn reply(client: impl Into<IpAddr>, len: usize) -> PacketDesc {
        let client = client.into();
        let vip: IpAddr = match client {
            IpAddr::V4(_) => [192, 0, 2, 10].into(),
            IpAddr::V6(_) => "2001:db8::10".parse().unwrap(),
        };
        PacketDesc::parse(&native::reply(vip, client, 6, (443, 50000), len))
    }

    #[test]
    fn counts_ipv6_clients_per_ipv6_prefix() {
        let mut f = configure_from_json::<Accounting>(
            br#"{"prefixes":["2001:db8:ff::/48","2001:db8:ff:1::/64","0.0.0.0/0"]}"#,
        )
        .unwrap();
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let traffic = [
            (v6("2001:db8:ff::1"), 100),
            (v6("2001:db8:ff:1::9"), 1000),
            (v6("2001:db8:ff:1::a"), 80),
            (IpAddr::from([8, 8, 8, 8]), 60),
            (v6("2001:db8:aa::1"), 1500),
        ];
        for (client, len) in traffic {
            assert_eq!(
                f.on_packet(&Packet::new(&reply(client, len), 0)),
                Verdict::Pass
            );
        }
        let want = [
            ("2001:db8:ff::/48", 1, 100),
            ("2001:db8:ff:1::/64", 2, 1080),
            ("0.0.0.0/0", 1, 60),
            ("unmatched", 1, 1500),
        ];
        for (label, packets, bytes) in want {
            assert_eq!(native::counter("packets", label), Some(packets), "{label}");
            assert_eq!(native::counter("bytes", label), Some(bytes), "{label}");
        }
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
            (br#"{"prefixes":["2001:db8::1/64"]}"#, "host bits set"),
            (br#"{"prefix":["10.0.0.0/8"]}"#, "unknown field `prefix`"),
            (many.as_bytes(), "at most 127"),
        ];
        native::assert_refusals::<Accounting>(&cases);
    }
}
