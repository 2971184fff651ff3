//! IPv4 and IPv6 prefixes for plugin configurations, and longest-prefix lookup over a set
//! of them.
//!
//! [`Ipv4Prefix`] parses `"10.0.0.0/8"`, [`Ipv6Prefix`] `"2001:db8::/32"` and [`IpPrefix`]
//! either (strictly: no host bits) from JSON; [`PrefixMap`] answers "which configured prefix
//! holds this client" for clients of either family without allocating (a prefix only ever
//! holds addresses of its own family). Nothing here talks to the host.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use core::str::FromStr;

/// An IPv4 prefix such as `198.51.100.0/24` (a bare address means `/32`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv4Prefix {
    network: u32,
    len: u8,
}

/// Why a prefix could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrefixError(String);

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Ipv4Prefix {
    /// The prefix of `len` bits at `network`, if `len <= 32` and no host bit is set.
    pub fn new(network: Ipv4Addr, len: u8) -> Result<Ipv4Prefix, PrefixError> {
        if len > 32 {
            return Err(PrefixError(alloc::format!(
                "prefix length {len} is more than 32"
            )));
        }
        let n = u32::from(network);
        let masked = n & mask(len);
        if masked != n {
            return Err(PrefixError(alloc::format!(
                "{network}/{len} has host bits set; did you mean {}/{len}?",
                Ipv4Addr::from(masked)
            )));
        }
        Ok(Ipv4Prefix { network: n, len })
    }

    /// The first address (host order).
    pub fn network(&self) -> u32 {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether this is `0.0.0.0/0`.
    pub fn is_default(&self) -> bool {
        self.len == 0
    }

    /// Whether `addr` (host order) lies inside.
    pub fn contains(&self, addr: u32) -> bool {
        addr & mask(self.len) == self.network
    }
}

/// The netmask of a prefix length (host order).
pub const fn mask(len: u8) -> u32 {
    if len == 0 {
        0
    } else {
        u32::MAX << (32 - len as u32)
    }
}

impl FromStr for Ipv4Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = split_prefix(s, 32)?;
        let addr = Ipv4Addr::from_str(addr)
            .map_err(|_| PrefixError(alloc::format!("{s:?} is not an IPv4 address or prefix")))?;
        Ipv4Prefix::new(addr, len).map_err(|e| PrefixError(alloc::format!("{s:?}: {e}")))
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv4Addr::from(self.network), self.len)
    }
}

/// An IPv6 prefix such as `2001:db8::/32` (a bare address means `/128`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Ipv6Prefix {
    network: u128,
    len: u8,
}

impl Ipv6Prefix {
    /// The prefix of `len` bits at `network`, if `len <= 128` and no host bit is set.
    pub fn new(network: Ipv6Addr, len: u8) -> Result<Ipv6Prefix, PrefixError> {
        if len > 128 {
            return Err(PrefixError(alloc::format!(
                "prefix length {len} is more than 128"
            )));
        }
        let n = u128::from(network);
        let masked = n & mask6(len);
        if masked != n {
            return Err(PrefixError(alloc::format!(
                "{network}/{len} has host bits set; did you mean {}/{len}?",
                Ipv6Addr::from(masked)
            )));
        }
        Ok(Ipv6Prefix { network: n, len })
    }

    /// The first address (host order).
    pub fn network(&self) -> u128 {
        self.network
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        self.len
    }

    /// Whether `addr` (host order) lies inside.
    pub fn contains(&self, addr: u128) -> bool {
        addr & mask6(self.len) == self.network
    }
}

/// The netmask of an IPv6 prefix length (host order).
pub const fn mask6(len: u8) -> u128 {
    if len == 0 {
        0
    } else {
        u128::MAX << (128 - len as u32)
    }
}

/// Splits `text` into an address and a prefix length (`default` when there is no `/`).
fn split_prefix(text: &str, default: u8) -> Result<(&str, u8), PrefixError> {
    match text.split_once('/') {
        Some((a, l)) => l
            .parse::<u8>()
            .map(|len| (a, len))
            .map_err(|_| PrefixError(alloc::format!("{text:?}: bad prefix length {l:?}"))),
        None => Ok((text, default)),
    }
}

impl FromStr for Ipv6Prefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, len) = split_prefix(s, 128)?;
        let addr = Ipv6Addr::from_str(addr)
            .map_err(|_| PrefixError(alloc::format!("{s:?} is not an IPv6 address or prefix")))?;
        Ipv6Prefix::new(addr, len).map_err(|e| PrefixError(alloc::format!("{s:?}: {e}")))
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", Ipv6Addr::from(self.network), self.len)
    }
}

/// A prefix of either family: what a configuration lists when it accepts both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpPrefix {
    /// An IPv4 prefix.
    V4(Ipv4Prefix),
    /// An IPv6 prefix.
    V6(Ipv6Prefix),
}

impl IpPrefix {
    /// Whether `addr` lies inside (never for an address of the other family).
    pub fn contains(&self, addr: IpAddr) -> bool {
        match (self, addr) {
            (IpPrefix::V4(p), IpAddr::V4(a)) => p.contains(u32::from(a)),
            (IpPrefix::V6(p), IpAddr::V6(a)) => p.contains(u128::from(a)),
            _ => false,
        }
    }

    /// The prefix length in bits.
    pub fn prefix_len(&self) -> u8 {
        match self {
            IpPrefix::V4(p) => p.prefix_len(),
            IpPrefix::V6(p) => p.prefix_len(),
        }
    }
}

impl From<Ipv4Prefix> for IpPrefix {
    fn from(p: Ipv4Prefix) -> IpPrefix {
        IpPrefix::V4(p)
    }
}

impl From<Ipv6Prefix> for IpPrefix {
    fn from(p: Ipv6Prefix) -> IpPrefix {
        IpPrefix::V6(p)
    }
}

impl FromStr for IpPrefix {
    type Err = PrefixError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, _) = split_prefix(s, 0)?;
        if addr.contains(':') {
            s.parse().map(IpPrefix::V6)
        } else if Ipv4Addr::from_str(addr).is_ok() {
            s.parse().map(IpPrefix::V4)
        } else {
            Err(PrefixError(alloc::format!(
                "{s:?} is not an IPv4 or IPv6 address or prefix"
            )))
        }
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpPrefix::V4(p) => p.fmt(f),
            IpPrefix::V6(p) => p.fmt(f),
        }
    }
}

/// Serde through the prefix's text form, for each prefix type.
macro_rules! serde_as_text {
    ($($t:ty),*) => {$(
        impl<'de> serde::Deserialize<'de> for $t {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }

        impl serde::Serialize for $t {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.to_string())
            }
        }
    )*};
}

serde_as_text!(Ipv4Prefix, Ipv6Prefix, IpPrefix);

/// An address as a host-order number, for one family's lookup table.
trait Key: Copy + Ord {
    fn masked(self, len: u8) -> Self;
}

impl Key for u32 {
    fn masked(self, len: u8) -> u32 {
        self & mask(len)
    }
}

impl Key for u128 {
    fn masked(self, len: u8) -> u128 {
        self & mask6(len)
    }
}

/// One family's prefixes: one group per prefix length, longest first, each sorted by
/// network.
#[derive(Debug, Clone)]
struct Groups<K, T>(Vec<(u8, Vec<(K, T)>)>);

impl<K: Key, T> Groups<K, T> {
    /// Groups `all` (duplicates refused, named by `show`).
    fn new(mut all: Vec<(K, u8, T)>, show: impl Fn(K, u8) -> String) -> Result<Self, PrefixError> {
        all.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut groups: Vec<(u8, Vec<(K, T)>)> = Vec::new();
        for (network, len, value) in all {
            match groups.last_mut() {
                Some((l, list)) if *l == len => {
                    if list.last().is_some_and(|(n, _)| *n == network) {
                        return Err(PrefixError(alloc::format!(
                            "{} is listed twice",
                            show(network, len)
                        )));
                    }
                    list.push((network, value));
                }
                _ => groups.push((len, alloc::vec![(network, value)])),
            }
        }
        Ok(Groups(groups))
    }

    fn lookup(&self, addr: K) -> Option<&T> {
        for (len, list) in &self.0 {
            let key = addr.masked(*len);
            if let Ok(i) = list.binary_search_by(|(n, _)| n.cmp(&key)) {
                return Some(&list[i].1);
            }
        }
        None
    }

    fn len(&self) -> usize {
        self.0.iter().map(|(_, l)| l.len()).sum()
    }
}

/// Prefixes of either family with a value each; [`PrefixMap::lookup`] finds the longest
/// prefix holding an address. Lookups cost one binary search per distinct prefix length of
/// the address's family and never allocate.
#[derive(Debug, Clone)]
pub struct PrefixMap<T> {
    v4: Groups<u32, T>,
    v6: Groups<u128, T>,
}

impl<T> PrefixMap<T> {
    /// Builds the map from prefixes of either family; a prefix listed twice is an error
    /// naming it.
    pub fn new<P: Into<IpPrefix>>(
        entries: impl IntoIterator<Item = (P, T)>,
    ) -> Result<Self, PrefixError> {
        let (mut v4, mut v6) = (Vec::new(), Vec::new());
        for (prefix, value) in entries {
            match prefix.into() {
                IpPrefix::V4(p) => v4.push((p.network, p.len, value)),
                IpPrefix::V6(p) => v6.push((p.network, p.len, value)),
            }
        }
        Ok(PrefixMap {
            v4: Groups::new(v4, |n, len| alloc::format!("{}/{len}", Ipv4Addr::from(n)))?,
            v6: Groups::new(v6, |n, len| alloc::format!("{}/{len}", Ipv6Addr::from(n)))?,
        })
    }

    /// The value of the longest prefix holding `addr`.
    pub fn lookup(&self, addr: IpAddr) -> Option<&T> {
        match addr {
            IpAddr::V4(a) => self.lookup_v4(u32::from(a)),
            IpAddr::V6(a) => self.lookup_v6(u128::from(a)),
        }
    }

    /// The value of the longest IPv4 prefix holding `addr` (host order).
    pub fn lookup_v4(&self, addr: u32) -> Option<&T> {
        self.v4.lookup(addr)
    }

    /// The value of the longest IPv6 prefix holding `addr` (host order).
    pub fn lookup_v6(&self, addr: u128) -> Option<&T> {
        self.v6.lookup(addr)
    }

    /// Whether some prefix holds `addr`.
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.lookup(addr).is_some()
    }

    /// Number of prefixes (both families).
    pub fn len(&self) -> usize {
        self.v4.len() + self.v6.len()
    }

    /// Whether there are no prefixes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Ipv4Prefix {
        s.parse().unwrap()
    }

    fn a(s: &str) -> u32 {
        u32::from(Ipv4Addr::from_str(s).unwrap())
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(p("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(p("192.0.2.7").to_string(), "192.0.2.7/32");
        assert_eq!(p("0.0.0.0/0").prefix_len(), 0);
        assert!(p("0.0.0.0/0").is_default());
        let errs = [
            ("10.0.0.1/8", "host bits set; did you mean 10.0.0.0/8?"),
            ("10.0.0.0/33", "more than 32"),
            ("10.0.0.0/x", "bad prefix length"),
            ("10.0.0/8", "not an IPv4 address"),
            ("", "not an IPv4 address"),
        ];
        for (text, want) in errs {
            let e = text.parse::<Ipv4Prefix>().unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn serde_round_trip() {
        let v: Vec<Ipv4Prefix> = serde_json::from_str(r#"["10.0.0.0/8","192.0.2.1"]"#).unwrap();
        assert_eq!(v, [p("10.0.0.0/8"), p("192.0.2.1/32")]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"["10.0.0.0/8","192.0.2.1/32"]"#
        );
        let e = serde_json::from_str::<Ipv4Prefix>(r#""1.2.3.4/40""#).unwrap_err();
        assert!(e.to_string().contains("more than 32"), "{e}");
    }

    #[test]
    fn longest_prefix_wins() {
        let m = PrefixMap::new([
            (p("10.0.0.0/8"), "ten"),
            (p("10.1.0.0/16"), "ten-one"),
            (p("10.1.2.3"), "host"),
            (p("192.0.2.0/24"), "doc"),
        ])
        .unwrap();
        assert_eq!(m.len(), 4);
        let cases = [
            ("10.9.9.9", Some("ten")),
            ("10.1.9.9", Some("ten-one")),
            ("10.1.2.3", Some("host")),
            ("10.1.2.4", Some("ten-one")),
            ("192.0.2.255", Some("doc")),
            ("192.0.3.0", None),
            ("11.0.0.0", None),
        ];
        for (addr, want) in cases {
            assert_eq!(m.lookup_v4(a(addr)).copied(), want, "{addr}");
        }
        let all = PrefixMap::new([(p("0.0.0.0/0"), 1)]).unwrap();
        assert!(all.contains("255.255.255.255".parse().unwrap()));
        assert!(
            !all.contains("::ffff:1.2.3.4".parse().unwrap()),
            "IPv4 /0 holds no IPv6"
        );
        assert!(PrefixMap::<u8>::new::<IpPrefix>([]).unwrap().is_empty());
    }

    #[test]
    fn duplicates_are_refused() {
        let e = PrefixMap::new([(p("10.0.0.0/8"), 1), (p("10.0.0.0/8"), 2)]).unwrap_err();
        assert_eq!(e.to_string(), "10.0.0.0/8 is listed twice");
        let e = PrefixMap::new([(ip("2001:db8::/32"), 1), (ip("2001:db8::/32"), 2)]).unwrap_err();
        assert_eq!(e.to_string(), "2001:db8::/32 is listed twice");
    }

    fn ip(s: &str) -> IpPrefix {
        s.parse().unwrap()
    }

    #[test]
    fn ipv6_and_either_family_parse_display_and_serde() {
        assert_eq!(ip("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(ip("2001:db8::7").to_string(), "2001:db8::7/128");
        assert_eq!(ip("10.0.0.0/8"), IpPrefix::V4(p("10.0.0.0/8")));
        assert_eq!(ip("::/0").prefix_len(), 0);
        let errs = [
            (
                "2001:db8::1/32",
                "host bits set; did you mean 2001:db8::/32?",
            ),
            ("2001:db8::/129", "more than 128"),
            ("2001:db8::/x", "bad prefix length"),
            ("2001:db8:::1", "not an IPv6 address"),
            ("10.0.0/8", "not an IPv4 or IPv6 address"),
            ("", "not an IPv4 or IPv6 address"),
            ("10.0.0.0/40", "more than 32"),
        ];
        for (text, want) in errs {
            let e = text.parse::<IpPrefix>().unwrap_err().to_string();
            assert!(e.contains(want), "{text}: {e}");
        }
        let v: Vec<IpPrefix> =
            serde_json::from_str(r#"["10.0.0.0/8","2001:db8:ff::/48"]"#).unwrap();
        assert_eq!(v, [ip("10.0.0.0/8"), ip("2001:db8:ff::/48")]);
        assert_eq!(
            serde_json::to_string(&v).unwrap(),
            r#"["10.0.0.0/8","2001:db8:ff::/48"]"#
        );
        assert!(ip("2001:db8::/32").contains("2001:db8:1::1".parse().unwrap()));
        assert!(!ip("::/0").contains("1.2.3.4".parse().unwrap()));
        assert!(!ip("0.0.0.0/0").contains("::1".parse().unwrap()));
    }

    #[test]
    fn longest_prefix_wins_in_each_family_and_families_never_mix() {
        let m = PrefixMap::new([
            (ip("2001:db8::/32"), "doc"),
            (ip("2001:db8:ff::/48"), "clients"),
            (ip("2001:db8:ff::7"), "host"),
            (ip("::/0"), "any6"),
            (ip("10.0.0.0/8"), "ten"),
        ])
        .unwrap();
        assert_eq!(m.len(), 5);
        let cases = [
            ("2001:db8:1::1", Some("doc")),
            ("2001:db8:ff::8", Some("clients")),
            ("2001:db8:ff::7", Some("host")),
            ("fe80::1", Some("any6")),
            ("::ffff:10.0.0.1", Some("any6")),
            ("10.0.0.1", Some("ten")),
            ("11.0.0.1", None),
        ];
        for (addr, want) in cases {
            let addr: IpAddr = addr.parse().unwrap();
            assert_eq!(m.lookup(addr).copied(), want, "{addr}");
        }
        assert_eq!(
            m.lookup_v6(u128::from("2001:db8:ff::9".parse::<Ipv6Addr>().unwrap())),
            Some(&"clients")
        );
    }
}
