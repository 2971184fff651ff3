//! `plugin-template`: the starting point for a new tungate plugin (copy this crate; see
//! `plugin-sdk/GUIDE.md`). It counts a VIP's replies per protocol and drops the replies
//! whose TTL (IPv4) or hop limit (IPv6) is below a configured minimum. It speaks ABI v2
//! (the SDK's `export_plugin!` writes the `tungate_abi_v2` marker), so it serves IPv4 and
//! IPv6 VIPs alike.
//!
//! Configuration (JSON, unknown keys refused):
//!
//! ```json
//! { "min_ttl": 2 }
//! ```
//!
//! - `min_ttl` (0–255, default 0 = drop nothing): replies arriving with a smaller TTL or
//!   hop limit are dropped.
//!
//! Counters: `packets{tcp}`, `packets{udp}`, `packets{other}` and `dropped{low_ttl}`. This
//! crate only judges packets; it keeps no per-client state.

use serde::Deserialize;
use tungate_plugin_sdk::abi::protocol;
use tungate_plugin_sdk::{Counter, Packet, Plugin, Setup, Verdict, export_plugin};

/// The binding's configuration (the JSON of `config` in a VIP's plugin chain).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Replies with a smaller TTL are dropped (0: none are).
    #[serde(default)]
    pub min_ttl: u8,
}

/// The plugin: its configuration and counters, made once per binding by `configure`.
pub struct Template {
    min_ttl: u8,
    tcp: Counter,
    udp: Counter,
    other: Counter,
    low_ttl: Counter,
}

impl Plugin for Template {
    type Config = Config;

    /// Called when the plugin is bound (and when its configuration changes); an `Err`
    /// refuses the binding, and the API shows the message to the operator.
    fn configure(config: Config, setup: &mut Setup) -> Result<Self, String> {
        if config.min_ttl > 64 {
            return Err(format!(
                "min_ttl {} would drop almost every reply (most hosts send TTL 64): use at \
                 most 64",
                config.min_ttl
            ));
        }
        Ok(Template {
            min_ttl: config.min_ttl,
            tcp: setup.counter("packets", "tcp")?,
            udp: setup.counter("packets", "udp")?,
            other: setup.counter("packets", "other")?,
            low_ttl: setup.counter("dropped", "low_ttl")?,
        })
    }

    /// Called for every reply to the VIP (the SDK batches the calls): pass or drop.
    #[inline]
    fn on_packet(&mut self, packet: &Packet<'_>) -> Verdict {
        match packet.protocol() {
            protocol::TCP => self.tcp.increment(),
            protocol::UDP => self.udp.increment(),
            _ => self.other.increment(),
        }
        if packet.ttl() < self.min_ttl {
            self.low_ttl.increment();
            return Verdict::Drop;
        }
        Verdict::Pass
    }
}

export_plugin!(Template);

#[cfg(test)]
mod tests {
    use super::*;
    use tungate_plugin_sdk::{PacketDesc, configure_from_json, native};

    /// A reply header: IPv4, `protocol`, `ttl`, to 198.51.100.7.
    fn reply(protocol: u8, ttl: u8) -> PacketDesc {
        let mut b = native::reply(
            [192, 0, 2, 10].into(),
            [198, 51, 100, 7].into(),
            protocol,
            (443, 50000),
            40,
        );
        b[8] = ttl;
        PacketDesc::parse(&b)
    }

    /// The same over IPv6: `protocol`, hop limit `ttl`, to 2001:db8:ff::7.
    fn reply6(protocol: u8, ttl: u8) -> PacketDesc {
        let vip = "2001:db8::10".parse().unwrap();
        let client = "2001:db8:ff::7".parse().unwrap();
        let mut b = native::reply(vip, client, protocol, (443, 50000), 60);
        b[7] = ttl;
        PacketDesc::parse(&b)
    }

    #[test]
    fn ipv6_replies_are_judged_by_their_hop_limit() {
        let mut f = configure_from_json::<Template>(br#"{"min_ttl":5}"#).unwrap();
        assert_eq!(f.on_packet(&Packet::new(&reply6(6, 5), 0)), Verdict::Pass);
        assert_eq!(f.on_packet(&Packet::new(&reply6(17, 4), 0)), Verdict::Drop);
        assert_eq!(native::counter("packets", "tcp"), Some(1));
        assert_eq!(native::counter("dropped", "low_ttl"), Some(1));
    }

    #[test]
    fn counts_per_protocol_and_drops_low_ttl() {
        let mut f = configure_from_json::<Template>(br#"{"min_ttl":5}"#).unwrap();
        let cases = [
            (6, 64, Verdict::Pass),
            (17, 5, Verdict::Pass),
            (17, 4, Verdict::Drop),
            (1, 1, Verdict::Drop),
        ];
        for (protocol, ttl, verdict) in cases {
            let p = reply(protocol, ttl);
            assert_eq!(
                f.on_packet(&Packet::new(&p, 0)),
                verdict,
                "{protocol}/{ttl}"
            );
        }
        assert_eq!(native::counter("packets", "tcp"), Some(1));
        assert_eq!(native::counter("packets", "udp"), Some(2));
        assert_eq!(native::counter("packets", "other"), Some(1));
        assert_eq!(native::counter("dropped", "low_ttl"), Some(2));
    }

    #[test]
    fn the_default_drops_nothing() {
        let mut f = configure_from_json::<Template>(b"{}").unwrap();
        let p = reply(6, 0);
        assert_eq!(f.on_packet(&Packet::new(&p, 0)), Verdict::Pass);
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let cases: Vec<(&[u8], &str)> = vec![
            (br#"{"min_ttl":65}"#, "use at most 64"),
            (br#"{"min_ttl":300}"#, "invalid value"),
            (br#"{"max_ttl":3}"#, "unknown field `max_ttl`"),
        ];
        native::assert_refusals::<Template>(&cases);
    }
}
