//! IPv4 prefixes for plugin configurations, and longest-prefix lookup over a set of them.
//!
//! [`Ipv4Prefix`] parses `"10.0.0.0/8"` (strictly: no host bits) from JSON; [`PrefixMap`]
//! answers "which configured prefix holds this client" without allocating. Nothing here
//! talks to the host.

use alloc::string::{String, ToString};
use alloc::vec::Vec;
use core::fmt;
use core::net::Ipv4Addr;
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
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => {
                let len = l
                    .parse::<u8>()
                    .map_err(|_| PrefixError(alloc::format!("{s:?}: bad prefix length {l:?}")))?;
                (a, len)
            }
            None => (s, 32),
        };
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

impl<'de> serde::Deserialize<'de> for Ipv4Prefix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for Ipv4Prefix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Prefixes with a value each; [`PrefixMap::lookup`] finds the longest prefix holding an
/// address. Lookups cost one binary search per distinct prefix length and never allocate.
#[derive(Debug, Clone)]
pub struct PrefixMap<T> {
    /// One group per prefix length, longest first: (length, sorted (network, value)).
    groups: Vec<(u8, Vec<(u32, T)>)>,
}

impl<T> PrefixMap<T> {
    /// Builds the map; a prefix listed twice is an error naming it.
    pub fn new(entries: impl IntoIterator<Item = (Ipv4Prefix, T)>) -> Result<Self, PrefixError> {
        let mut all: Vec<(Ipv4Prefix, T)> = entries.into_iter().collect();
        all.sort_by(|a, b| b.0.len.cmp(&a.0.len).then(a.0.network.cmp(&b.0.network)));
        let mut groups: Vec<(u8, Vec<(u32, T)>)> = Vec::new();
        for (prefix, value) in all {
            match groups.last_mut() {
                Some((len, list)) if *len == prefix.len => {
                    if list.last().is_some_and(|(n, _)| *n == prefix.network) {
                        return Err(PrefixError(alloc::format!("{prefix} is listed twice")));
                    }
                    list.push((prefix.network, value));
                }
                _ => groups.push((prefix.len, alloc::vec![(prefix.network, value)])),
            }
        }
        Ok(PrefixMap { groups })
    }

    /// The value of the longest prefix holding `addr` (host order).
    pub fn lookup(&self, addr: u32) -> Option<&T> {
        for (len, list) in &self.groups {
            let key = addr & mask(*len);
            if let Ok(i) = list.binary_search_by(|(n, _)| n.cmp(&key)) {
                return Some(&list[i].1);
            }
        }
        None
    }

    /// Whether some prefix holds `addr`.
    pub fn contains(&self, addr: u32) -> bool {
        self.lookup(addr).is_some()
    }

    /// Number of prefixes.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|(_, l)| l.len()).sum()
    }

    /// Whether there are no prefixes.
    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
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
            assert_eq!(m.lookup(a(addr)).copied(), want, "{addr}");
        }
        let all = PrefixMap::new([(p("0.0.0.0/0"), 1)]).unwrap();
        assert!(all.contains(a("255.255.255.255")));
        assert!(PrefixMap::<u8>::new([]).unwrap().is_empty());
    }

    #[test]
    fn duplicates_are_refused() {
        let e = PrefixMap::new([(p("10.0.0.0/8"), 1), (p("10.0.0.0/8"), 2)]).unwrap_err();
        assert_eq!(e.to_string(), "10.0.0.0/8 is listed twice");
    }
}
