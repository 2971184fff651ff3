//! `port-filter`: lets through only the replies of the services a VIP is meant to offer.
//!
//! A reply's source port is the service's port, so this filter stops a compromised or
//! misconfigured real server from answering (or scanning) from anything else. Configuration
//! (JSON, unknown keys refused):
//!
//! ```json
//! {
//!   "allow": [
//!     { "protocol": "tcp", "ports": [80, 443, "8000-8099"] },
//!     { "protocol": "udp", "ports": [53] },
//!     { "protocol": "icmp" },
//!     { "protocol": "icmpv6" }
//!   ],
//!   "later_fragments": "pass"
//! }
//! ```
//!
//! - `protocol`: `tcp`, `udp`, `icmp`, `icmpv6`, `sctp`, `udplite` or a number 0–255 (for
//!   IPv6 replies, ABI v2: the upper-layer protocol after the extension headers, so
//!   `tcp` covers TCP over IPv6 too; ICMPv6 is 58, not `icmp`);
//! - `ports` (TCP, UDP, UDP-Lite, SCTP only): single ports or `"a-b"` ranges of the reply's
//!   source port; absent means every port of that protocol;
//! - `later_fragments`: what to do with fragments after the first, which carry no ports
//!   (`pass`, the default, since the first fragment was judged; or `drop`).
//!
//! Everything not allowed is dropped. Counters: `dropped{protocol}`, `dropped{port}`,
//! `dropped{fragment}`.

use serde::Deserialize;
use tungate_plugin_sdk::abi::protocol;
use tungate_plugin_sdk::{Counter, Packet, Plugin, Setup, Verdict, export_plugin};

/// A protocol, by name or number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Protocol {
    /// A protocol number.
    Number(u8),
    /// A protocol name.
    Name(ProtocolName),
}

/// The protocols known by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProtocolName {
    /// 6.
    Tcp,
    /// 17.
    Udp,
    /// 1.
    Icmp,
    /// 58.
    Icmpv6,
    /// 132.
    Sctp,
    /// 136.
    Udplite,
}

impl Protocol {
    /// The protocol number.
    pub fn number(self) -> u8 {
        match self {
            Protocol::Number(n) => n,
            Protocol::Name(ProtocolName::Tcp) => protocol::TCP,
            Protocol::Name(ProtocolName::Udp) => protocol::UDP,
            Protocol::Name(ProtocolName::Icmp) => protocol::ICMP,
            Protocol::Name(ProtocolName::Icmpv6) => protocol::ICMPV6,
            Protocol::Name(ProtocolName::Sctp) => protocol::SCTP,
            Protocol::Name(ProtocolName::Udplite) => protocol::UDPLITE,
        }
    }
}

/// One port or an inclusive `"a-b"` range.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum PortSpec {
    /// One port.
    One(u16),
    /// A range written `"a-b"` (or a single port as a string).
    Range(String),
}

impl PortSpec {
    fn bounds(&self) -> Result<(u16, u16), String> {
        match self {
            PortSpec::One(p) => Ok((*p, *p)),
            PortSpec::Range(text) => {
                let parse = |s: &str| {
                    s.trim().parse::<u16>().map_err(|_| {
                        format!("{text:?} is not a port or a range \"a-b\" of ports 0-65535")
                    })
                };
                let (lo, hi) = match text.split_once('-') {
                    Some((a, b)) => (parse(a)?, parse(b)?),
                    None => {
                        let p = parse(text)?;
                        (p, p)
                    }
                };
                if lo > hi {
                    return Err(format!("{text:?}: the range is empty (start after end)"));
                }
                Ok((lo, hi))
            }
        }
    }
}

/// One allow rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// The protocol.
    pub protocol: Protocol,
    /// The allowed source ports; absent = all.
    #[serde(default)]
    pub ports: Option<Vec<PortSpec>>,
}

/// What to do with fragments after the first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FragmentPolicy {
    /// Let them through (the first fragment carried the ports and was judged).
    #[default]
    Pass,
    /// Drop them.
    Drop,
}

/// The binding's configuration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What is allowed; everything else is dropped.
    pub allow: Vec<Rule>,
    /// Fragments after the first.
    #[serde(default)]
    pub later_fragments: FragmentPolicy,
}

/// 65,536 bits: one per port.
struct PortSet(Box<[u64; 1024]>);

impl PortSet {
    fn new() -> PortSet {
        PortSet(Box::new([0; 1024]))
    }
    fn insert_range(&mut self, lo: u16, hi: u16) {
        for p in lo..=hi {
            self.0[usize::from(p >> 6)] |= 1 << (p & 63);
        }
    }
    #[inline]
    fn contains(&self, p: u16) -> bool {
        self.0[usize::from(p >> 6)] & (1 << (p & 63)) != 0
    }
}

/// How one protocol is treated.
enum Allowed {
    /// Not allowed at all.
    No,
    /// Every packet of the protocol.
    All,
    /// Packets whose source port is in the set (index into `PortFilter::ports`).
    Ports(usize),
}

/// The plugin.
pub struct PortFilter {
    by_protocol: Vec<Allowed>,
    ports: Vec<PortSet>,
    later_fragments: FragmentPolicy,
    dropped_protocol: Counter,
    dropped_port: Counter,
    dropped_fragment: Counter,
}

impl Plugin for PortFilter {
    type Config = Config;

    fn configure(config: Config, setup: &mut Setup) -> Result<Self, String> {
        if config.allow.is_empty() {
            return Err("`allow` is empty: this would drop every reply; list the services".into());
        }
        let mut by_protocol: Vec<Allowed> = (0..256).map(|_| Allowed::No).collect();
        let mut ports: Vec<PortSet> = Vec::new();
        for (i, rule) in config.allow.iter().enumerate() {
            let proto = rule.protocol.number();
            let slot = &mut by_protocol[usize::from(proto)];
            match &rule.ports {
                None => *slot = Allowed::All,
                Some(specs) => {
                    if !protocol::has_ports(proto) {
                        return Err(format!(
                            "allow[{i}]: protocol {proto} has no ports; leave `ports` out"
                        ));
                    }
                    if specs.is_empty() {
                        return Err(format!(
                            "allow[{i}]: `ports` is empty; leave it out to allow every port"
                        ));
                    }
                    let index = match slot {
                        Allowed::All => continue,
                        Allowed::Ports(index) => *index,
                        Allowed::No => {
                            ports.push(PortSet::new());
                            *slot = Allowed::Ports(ports.len() - 1);
                            ports.len() - 1
                        }
                    };
                    for spec in specs {
                        let (lo, hi) = spec
                            .bounds()
                            .map_err(|e| format!("allow[{i}].ports: {e}"))?;
                        ports[index].insert_range(lo, hi);
                    }
                }
            }
        }
        Ok(PortFilter {
            by_protocol,
            ports,
            later_fragments: config.later_fragments,
            dropped_protocol: setup.counter("dropped", "protocol")?,
            dropped_port: setup.counter("dropped", "port")?,
            dropped_fragment: setup.counter("dropped", "fragment")?,
        })
    }

    #[inline]
    fn on_packet(&mut self, packet: &Packet<'_>) -> Verdict {
        match self.by_protocol[usize::from(packet.protocol())] {
            Allowed::All => Verdict::Pass,
            Allowed::No => {
                self.dropped_protocol.increment();
                Verdict::Drop
            }
            Allowed::Ports(index) => match packet.src_port() {
                Some(port) if self.ports[index].contains(port) => Verdict::Pass,
                Some(_) => {
                    self.dropped_port.increment();
                    Verdict::Drop
                }
                None if packet.is_later_fragment()
                    && self.later_fragments == FragmentPolicy::Pass =>
                {
                    Verdict::Pass
                }
                None => {
                    self.dropped_fragment.increment();
                    Verdict::Drop
                }
            },
        }
    }
}

export_plugin!(PortFilter);

#[cfg(test)]
mod tests {
    use super::*;
    use tungate_plugin_sdk::{PacketDesc, configure_from_json, native};

    /// A reply of protocol `proto` from source port `sport`; `offset8` is the fragment
    /// offset in 8-byte units.
    fn reply(proto: u8, sport: u16, offset8: u16) -> PacketDesc {
        let mut b = [0u8; 40];
        b[0] = 0x45;
        b[6..8].copy_from_slice(&offset8.to_be_bytes());
        b[8] = 64;
        b[9] = proto;
        b[20..22].copy_from_slice(&sport.to_be_bytes());
        PacketDesc::parse(&b)
    }

    const CONFIG: &[u8] = br#"{"allow":[
        {"protocol":"tcp","ports":[80,443,"8000-8099"]},
        {"protocol":"udp","ports":["53"]},
        {"protocol":"icmp"},
        {"protocol":47}
    ]}"#;

    #[test]
    fn table() {
        let mut f = configure_from_json::<PortFilter>(CONFIG).unwrap();
        let table = [
            (6, 80, 0, Verdict::Pass),
            (6, 443, 0, Verdict::Pass),
            (6, 8000, 0, Verdict::Pass),
            (6, 8099, 0, Verdict::Pass),
            (6, 8100, 0, Verdict::Drop),
            (6, 22, 0, Verdict::Drop),
            (17, 53, 0, Verdict::Pass),
            (17, 80, 0, Verdict::Drop),
            (1, 0, 0, Verdict::Pass),
            (47, 0, 0, Verdict::Pass),
            (132, 80, 0, Verdict::Drop),
            (6, 0, 100, Verdict::Pass),
        ];
        for (proto, port, off, want) in table {
            let d = reply(proto, port, off);
            assert_eq!(
                f.on_packet(&Packet::new(&d, 0)),
                want,
                "{proto}/{port} offset {off}"
            );
        }
        assert_eq!(native::counter("dropped", "port"), Some(3));
        assert_eq!(native::counter("dropped", "protocol"), Some(1));
        assert_eq!(native::counter("dropped", "fragment"), Some(0));
    }

    /// An IPv6 reply of protocol `proto` from source port `sport`, behind a Destination
    /// Options header; with `later_fragment` a Fragment header with a non-zero offset too.
    fn reply6(proto: u8, sport: u16, later_fragment: bool) -> PacketDesc {
        let vip: std::net::IpAddr = "2001:db8::10".parse().unwrap();
        let client: std::net::IpAddr = "2001:db8:ff::7".parse().unwrap();
        let plain = native::reply(vip, client, proto, (sport, 40000), 80);
        let mut b = plain[..40].to_vec();
        b[6] = 60;
        b.extend_from_slice(&[if later_fragment { 44 } else { proto }, 0, 1, 4, 0, 0, 0, 0]);
        if later_fragment {
            b.extend_from_slice(&[proto, 0, 0x05, 0xc8, 0, 0, 0, 1]);
        }
        b.extend_from_slice(&plain[40..]);
        PacketDesc::parse(&b)
    }

    #[test]
    fn ipv6_replies_through_extension_headers() {
        let mut f = configure_from_json::<PortFilter>(
            br#"{"allow":[{"protocol":"tcp","ports":[443]},{"protocol":"icmpv6"}]}"#,
        )
        .unwrap();
        let table = [
            (reply6(6, 443, false), Verdict::Pass),
            (reply6(6, 22, false), Verdict::Drop),
            (reply6(58, 0, false), Verdict::Pass),
            (reply6(1, 0, false), Verdict::Drop),
            (reply6(6, 0, true), Verdict::Pass),
        ];
        for (i, (d, want)) in table.iter().enumerate() {
            assert_eq!(f.on_packet(&Packet::new(d, 0)), *want, "case {i}");
        }
        assert_eq!(native::counter("dropped", "port"), Some(1));
        assert_eq!(native::counter("dropped", "protocol"), Some(1));
    }

    #[test]
    fn later_fragments_can_be_dropped() {
        let mut f = configure_from_json::<PortFilter>(
            br#"{"allow":[{"protocol":"udp","ports":[53]}],"later_fragments":"drop"}"#,
        )
        .unwrap();
        let d = reply(17, 0, 10);
        assert_eq!(f.on_packet(&Packet::new(&d, 0)), Verdict::Drop);
        assert_eq!(native::counter("dropped", "fragment"), Some(1));
    }

    #[test]
    fn bad_configs_are_refused_with_reasons() {
        let cases: &[(&[u8], &str)] = &[
            (br#"{"allow":[]}"#, "`allow` is empty"),
            (
                br#"{"allow":[{"protocol":"icmp","ports":[1]}]}"#,
                "allow[0]: protocol 1 has no ports",
            ),
            (
                br#"{"allow":[{"protocol":"tcp","ports":["90-80"]}]}"#,
                "the range is empty",
            ),
            (
                br#"{"allow":[{"protocol":"tcp","ports":["http"]}]}"#,
                "\"http\" is not a port",
            ),
            (
                br#"{"allow":[{"protocol":"tcp","ports":[70000]}]}"#,
                "did not match any variant",
            ),
            (
                br#"{"allow":[{"protocol":"gre"}]}"#,
                "did not match any variant",
            ),
            (
                br#"{"allow":[{"protocol":"tcp","port":[80]}]}"#,
                "unknown field `port`",
            ),
            (
                br#"{"allow":[{"protocol":"tcp","ports":[]}]}"#,
                "`ports` is empty",
            ),
        ];
        native::assert_refusals::<PortFilter>(cases);
    }
}
