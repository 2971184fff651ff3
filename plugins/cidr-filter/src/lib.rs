//! `cidr-filter`: lets a VIP's replies reach only the clients an operator allows.
//!
//! The client is the reply's destination, IPv4 or IPv6 (ABI v2). Configuration (JSON,
//! unknown keys refused; prefixes of either family, mixed freely):
//!
//! ```json
//! { "allow": ["198.51.100.0/24", "203.0.113.7", "2001:db8:ff::/48"],
//!   "deny": ["198.51.100.128/25", "2001:db8:ff:66::/64"] }
//! ```
//!
//! A prefix only ever holds clients of its own family: `0.0.0.0/0` holds every IPv4 client
//! and no IPv6 one, `::/0` the reverse (so an allow list of IPv4 prefixes only drops every
//! IPv6 reply as `not_allowed`).
//!
//! - `deny`: replies to a client inside any of these prefixes are dropped;
//! - `allow`: if given (non-empty), replies to a client outside all of these are dropped;
//! - a client in both is denied (deny wins); at least one list must be non-empty.
//!
//! Counters: `dropped{denied}` and `dropped{not_allowed}`. This crate only judges packets;
//! it keeps no per-client state.

use serde::Deserialize;
use tungate_plugin_sdk::{
    Counter, IpPrefix, Packet, Plugin, PrefixMap, Setup, Verdict, export_plugin,
};

/// Most prefixes per list.
pub const MAX_PREFIXES: usize = 65_536;

/// The binding's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// If non-empty: the only client prefixes replies may go to.
    #[serde(default)]
    pub allow: Vec<IpPrefix>,
    /// Client prefixes replies never go to.
    #[serde(default)]
    pub deny: Vec<IpPrefix>,
}

/// The plugin.
pub struct CidrFilter {
    allow: Option<PrefixMap<()>>,
    deny: PrefixMap<()>,
    denied: Counter,
    not_allowed: Counter,
}

fn prefix_map(list: Vec<IpPrefix>, name: &str) -> Result<PrefixMap<()>, String> {
    if list.len() > MAX_PREFIXES {
        return Err(format!(
            "{name}: {} prefixes, at most {MAX_PREFIXES}",
            list.len()
        ));
    }
    PrefixMap::new(list.into_iter().map(|p| (p, ()))).map_err(|e| format!("{name}: {e}"))
}

impl Plugin for CidrFilter {
    type Config = Config;

    fn configure(config: Config, setup: &mut Setup) -> Result<Self, String> {
        if config.allow.is_empty() && config.deny.is_empty() {
            return Err(
                "give `allow` or `deny` prefixes (or both); an empty filter does nothing".into(),
            );
        }
        let allow = if config.allow.is_empty() {
            None
        } else {
            Some(prefix_map(config.allow, "allow")?)
        };
        Ok(CidrFilter {
            allow,
            deny: prefix_map(config.deny, "deny")?,
            denied: setup.counter("dropped", "denied")?,
            not_allowed: setup.counter("dropped", "not_allowed")?,
        })
    }

    #[inline]
    fn on_packet(&mut self, packet: &Packet<'_>) -> Verdict {
        let client = packet.dst();
        if self.deny.contains(client) {
            self.denied.increment();
            return Verdict::Drop;
        }
        if let Some(allow) = &self.allow
            && !allow.contains(client)
        {
            self.not_allowed.increment();
            return Verdict::Drop;
        }
        Verdict::Pass
    }
}

export_plugin!(CidrFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use tungate_plugin_sdk::{PacketDesc, configure_from_json, native};

    fn reply_to(client: IpAddr) -> PacketDesc {
        let vip: IpAddr = match client {
            IpAddr::V4(_) => [192, 0, 2, 10].into(),
            IpAddr::V6(_) => "2001:db8::10".parse().unwrap(),
        };
        PacketDesc::parse(&native::reply(vip, client, 17, (53, 40000), 60))
    }

    fn judge(f: &mut CidrFilter, client: impl Into<IpAddr>) -> Verdict {
        f.on_packet(&Packet::new(&reply_to(client.into()), 0))
    }

    fn v6(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_prefixes_beside_ipv4_ones() {
        let mut f = configure_from_json::<CidrFilter>(
            br#"{"allow":["2001:db8:ff::/48","10.0.0.0/8"],"deny":["2001:db8:ff:66::/64"]}"#,
        )
        .unwrap();
        let table = [
            (v6("2001:db8:ff::7"), Verdict::Pass),
            (v6("2001:db8:ff:66::1"), Verdict::Drop),
            (v6("2001:db8:fe::1"), Verdict::Drop),
            (v6("::ffff:10.0.0.1"), Verdict::Drop),
            (IpAddr::from([10, 0, 0, 1]), Verdict::Pass),
        ];
        for (client, want) in table {
            assert_eq!(judge(&mut f, client), want, "{client}");
        }
        assert_eq!(native::counter("dropped", "denied"), Some(1));
        assert_eq!(native::counter("dropped", "not_allowed"), Some(2));
    }

    #[test]
    fn an_ipv4_allow_list_lets_no_ipv6_client_through() {
        let mut f = configure_from_json::<CidrFilter>(br#"{"allow":["0.0.0.0/0"]}"#).unwrap();
        assert_eq!(judge(&mut f, [1, 2, 3, 4]), Verdict::Pass);
        assert_eq!(judge(&mut f, v6("2001:db8::1")), Verdict::Drop);
        let mut f = configure_from_json::<CidrFilter>(br#"{"deny":["::/0"]}"#).unwrap();
        assert_eq!(judge(&mut f, [1, 2, 3, 4]), Verdict::Pass);
        assert_eq!(judge(&mut f, v6("2001:db8::1")), Verdict::Drop);
    }

    #[test]
    fn deny_list_only() {
        let mut f = configure_from_json::<CidrFilter>(br#"{"deny":["198.51.100.0/24"]}"#).unwrap();
        let table = [
            ([198, 51, 100, 1], Verdict::Drop),
            ([198, 51, 100, 255], Verdict::Drop),
            ([198, 51, 101, 1], Verdict::Pass),
            ([10, 0, 0, 1], Verdict::Pass),
        ];
        for (client, want) in table {
            assert_eq!(judge(&mut f, client), want, "{client:?}");
        }
        assert_eq!(native::counter("dropped", "denied"), Some(2));
        assert_eq!(native::counter("dropped", "not_allowed"), Some(0));
    }

    #[test]
    fn allow_list_with_a_denied_hole() {
        let mut f = configure_from_json::<CidrFilter>(
            br#"{"allow":["10.0.0.0/8","203.0.113.7"],"deny":["10.66.0.0/16"]}"#,
        )
        .unwrap();
        let table = [
            ([10, 1, 2, 3], Verdict::Pass),
            ([10, 66, 1, 1], Verdict::Drop),
            ([203, 0, 113, 7], Verdict::Pass),
            ([203, 0, 113, 8], Verdict::Drop),
            ([11, 0, 0, 0], Verdict::Drop),
        ];
        for (client, want) in table {
            assert_eq!(judge(&mut f, client), want, "{client:?}");
        }
        assert_eq!(native::counter("dropped", "denied"), Some(1));
        assert_eq!(native::counter("dropped", "not_allowed"), Some(2));
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{}"#, "give `allow` or `deny`"),
            (br#"{"deny":["10.0.0.1/8"]}"#, "did you mean 10.0.0.0/8"),
            (
                br#"{"deny":["10.0.0.0/8","10.0.0.0/8"]}"#,
                "deny: 10.0.0.0/8 is listed twice",
            ),
            (br#"{"alow":["10.0.0.0/8"]}"#, "unknown field `alow`"),
            (br#"{"allow":"10.0.0.0/8"}"#, "invalid type"),
            (
                br#"{"deny":["2001:db8::1/32"]}"#,
                "did you mean 2001:db8::/32",
            ),
            (br#"{"allow":["2001:db8::/129"]}"#, "more than 128"),
            (
                br#"{"allow":["2001:db8::/32","2001:db8::/32"]}"#,
                "allow: 2001:db8::/32 is listed twice",
            ),
            (br#"{"deny":["fe80::1%eth0"]}"#, "not an IPv6 address"),
        ];
        native::assert_refusals::<CidrFilter>(cases);
    }
}
