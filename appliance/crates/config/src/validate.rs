//! Meaning checks on a parsed [`Document`]: everything the types alone cannot say.
//!
//! Every problem is reported with the path of the field it concerns (`peers[1].vips[0]`),
//! and all problems are reported at once so an operator fixes a file in one pass. Nothing
//! here looks at the host: [`super::host`] checks the document against this machine.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde::Serialize;

use super::model::{DecapMode, Document, Peer, TunnelKind};

/// The number of CPUs a `gateway.worker_cpus` entry may name (the kernel's affinity masks
/// as the C library passes them: CPUs 0 to 1023).
pub const MAX_CPUS: u32 = 1024;

/// `gateway.worker_cpus`: one CPU per worker, each its own, each a CPU number the affinity
/// calls can carry. Whether this host has and allows them is checked at start.
fn check_worker_cpus(cpus: &[u32], workers: u32, p: &mut Problems) {
    if cpus.len() != workers as usize {
        p.add(
            "gateway.worker_cpus",
            format!(
                "{} CPUs for {workers} workers: give one CPU per worker (worker i runs on the \
                 i-th), or leave it out",
                cpus.len()
            ),
        );
    }
    for (i, cpu) in cpus.iter().enumerate() {
        if *cpu >= MAX_CPUS {
            p.add(
                "gateway.worker_cpus",
                format!(
                    "CPU {cpu} is out of range: give CPU numbers 0 to {}",
                    MAX_CPUS - 1
                ),
            );
        } else if cpus[..i].contains(cpu) {
            p.add(
                "gateway.worker_cpus",
                format!("CPU {cpu} is given twice: each worker needs a CPU of its own"),
            );
        }
    }
}

/// The highest `gateway.worker_priority` (Linux's highest `SCHED_FIFO` priority).
const MAX_WORKER_PRIORITY: u32 = 99;
/// Most workers a gateway may ask for.
pub(crate) const MAX_WORKERS: u32 = 64;
/// Longest peer name: `tg-` plus the name must fit the kernel's 15-byte interface names.
pub(crate) const MAX_PEER_NAME: usize =
    MAX_INTERFACE_NAME - crate::model::TUNNEL_DEVICE_PREFIX.len();
/// Longest Linux interface name (`IFNAMSIZ` less the NUL).
const MAX_INTERFACE_NAME: usize = 15;
/// Longest plugin name.
pub(crate) const MAX_PLUGIN_NAME: usize = 64;

/// One problem with one field of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Path of the field, e.g. `peers[1].address`.
    pub field: String,
    /// What is wrong, and where it helps, what to do.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

/// All problems found in a document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Invalid(pub Vec<FieldError>);

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Invalid {}

struct Problems(Vec<FieldError>);

impl Problems {
    fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
        });
    }
}

/// The field path of a plugin binding in the whole document: `vips[VIP].plugins[POSITION]`
/// (the one place this path is spelled; errors about a binding's keys append `.plugin`,
/// `.sha256` or `.config`).
pub fn binding_field(vip: usize, position: usize) -> String {
    format!("vips[{vip}].plugins[{position}]")
}

/// Whether `name` is a valid peer name (1–12 of `A-Z a-z 0-9 _ -`).
pub fn is_valid_peer_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PEER_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Whether `name` is a valid plugin name (1–64 of `A-Z a-z 0-9 . _ -`, not starting with `.`).
///
/// Plugin names appear in URLs, file names and metric labels, so they are kept plain.
pub fn is_valid_plugin_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_PLUGIN_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `name` could be a Linux interface name (1–15 bytes, no `/`, no white space).
pub fn is_valid_interface_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_INTERFACE_NAME
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'/' && b != b':')
}

/// Why `addr` cannot be a unicast host address, if it cannot.
fn not_unicast(addr: Ipv4Addr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("is the unspecified address 0.0.0.0")
    } else if addr.is_broadcast() {
        Some("is the broadcast address")
    } else if addr.is_multicast() {
        Some("is a multicast address")
    } else {
        None
    }
}

/// Why `addr` cannot be a unicast IPv6 host address, if it cannot.
fn not_unicast6(addr: Ipv6Addr) -> Option<&'static str> {
    if addr.is_unspecified() {
        Some("is the unspecified address ::")
    } else if addr.is_multicast() {
        Some("is a multicast address")
    } else if addr.to_ipv4_mapped().is_some() {
        Some("is an IPv4-mapped address (::ffff:0:0/96); give the IPv4 address itself")
    } else {
        None
    }
}

/// Why `addr` cannot be a peer's or a VIP's address, if it cannot: not unicast, or on
/// loopback (127.0.0.0/8 and ::1 never cross a wire: a tunnel from them or a reply to them is
/// spoofed or misconfigured).
fn not_remote(addr: IpAddr) -> Option<&'static str> {
    match addr {
        IpAddr::V4(a) if a.is_loopback() => {
            Some("is a loopback address (127.0.0.0/8); give the address on the wire")
        }
        IpAddr::V4(a) => not_unicast(a),
        IpAddr::V6(a) if a.is_loopback() => {
            Some("is the loopback address ::1; give the address on the wire")
        }
        IpAddr::V6(a) => not_unicast6(a),
    }
}

/// The family name an operator reads in a message.
fn family(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() { "IPv4" } else { "IPv6" }
}

/// The gateway key that holds the gateway address of `addr`'s family.
fn gateway_key(addr: IpAddr) -> &'static str {
    if addr.is_ipv4() {
        "address"
    } else {
        "address6"
    }
}

/// The first value inside a plugin's configuration that TOML cannot hold, with its path
/// (`.deny[2]`) and why: a JSON `null`, or an integer above `i64::MAX`. The document is one
/// document whether it arrived as TOML or JSON, so it must survive both.
fn not_expressible_in_toml(value: &serde_json::Value) -> Option<(String, String)> {
    use serde_json::Value;
    match value {
        Value::Null => Some((
            String::new(),
            "null is not allowed (TOML has no null): leave the key out".into(),
        )),
        Value::Number(n) if n.is_u64() && n.as_i64().is_none() => Some((
            String::new(),
            format!(
                "{n} is larger than the largest integer a configuration holds ({})",
                i64::MAX
            ),
        )),
        Value::Array(items) => items.iter().enumerate().find_map(|(i, v)| {
            not_expressible_in_toml(v).map(|(path, why)| (format!("[{i}]{path}"), why))
        }),
        Value::Object(map) => map.iter().find_map(|(k, v)| {
            not_expressible_in_toml(v).map(|(path, why)| (format!(".{k}{path}"), why))
        }),
        _ => None,
    }
}

/// The shortest `peers[].silent_after` (the counters are read once a second or so).
const MIN_SILENT_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
/// The longest `peers[].silent_after`.
const MAX_SILENT_AFTER: std::time::Duration = std::time::Duration::from_secs(86_400);

/// Checks a peer's `tunnel`, `port` and `key`: each key only where its tunnel type uses it,
/// `fou` with its port, and one UDP port never carrying both `gue` and `fou` (the kernel's
/// receive port on it is one or the other).
fn check_tunnel(
    peer: &Peer,
    index: usize,
    at: &str,
    udp_ports: &mut HashMap<u16, (TunnelKind, usize)>,
    p: &mut Problems,
) {
    let kind = peer.tunnel.as_str();
    if !peer.tunnel.is_udp() && peer.port.is_some() {
        p.add(
            format!("{at}.port"),
            format!("tunnel = {kind:?} has no UDP port: port applies to \"gue\" and \"fou\" only"),
        );
    }
    if peer.tunnel == TunnelKind::Fou && peer.port.is_none() {
        p.add(
            format!("{at}.port"),
            "tunnel = \"fou\" needs the UDP port its packets are sent to".to_string(),
        );
    }
    if peer.port == Some(0) {
        p.add(
            format!("{at}.port"),
            "0 is not a UDP port: give 1 to 65535".to_string(),
        );
    }
    if peer.tunnel != TunnelKind::Gre && peer.key.is_some() {
        p.add(
            format!("{at}.key"),
            format!("tunnel = {kind:?} has no key: key applies to \"gre\" only"),
        );
    }
    if let Some(port) = peer.udp_port().filter(|&port| port != 0) {
        let (other_kind, other) = *udp_ports.entry(port).or_insert((peer.tunnel, index));
        if other_kind != peer.tunnel {
            p.add(
                format!("{at}.port"),
                format!(
                    "UDP port {port} is already the {:?} port of peers[{other}]; one port \
                     carries either gue or fou: give this peer another port",
                    other_kind.as_str()
                ),
            );
        }
    }
}

/// Checks `gateway.address` and `gateway.address6`: at least one, each a unicast address.
fn check_gateway_addresses(doc: &Document, p: &mut Problems) {
    let g = &doc.gateway;
    if g.address.is_none() && g.address6.is_none() {
        p.add(
            "gateway.address",
            "the gateway needs an address: give address (IPv4), address6 (IPv6) or both",
        );
    }
    if let Some(gip) = g.address
        && let Some(why) = not_unicast(gip)
    {
        p.add(
            "gateway.address",
            format!("{gip} {why}; give the gateway's own unicast address"),
        );
    }
    if let Some(gip6) = g.address6
        && let Some(why) = not_unicast6(gip6)
    {
        p.add(
            "gateway.address6",
            format!("{gip6} {why}; give the gateway's own unicast IPv6 address"),
        );
    }
}

/// With `kernel` decap, checks that the kernel has a tunnel device for the peer's outer and
/// inner families: an IPv6 peer gets an `ip6tnl` device (ip6ip6, 4in6 or both; with `encap
/// gue|fou` for those types) or an `ip6gre` one; an IPv4 peer with IPv6 VIPs gets a `sit`
/// device (6in4) for `ipip`, or its `gre` device (GRE names the inner protocol); gue/fou
/// over IPv4 carrying IPv6 is parsed by `userspace` decap only. `fou6` remembers, per UDP
/// port, the inner family the IPv6 fou receive port of the first IPv6 fou peer on it hands
/// its packets to (one port names one protocol).
fn check_kernel_families(
    doc: &Document,
    peer: &Peer,
    index: usize,
    at: &str,
    fou6: &mut HashMap<u16, (bool, usize)>,
    p: &mut Problems,
) {
    if doc.gateway.decap != DecapMode::Kernel {
        return;
    }
    let kind = peer.tunnel.as_str();
    if peer.address.is_ipv6()
        && peer.tunnel == TunnelKind::Fou
        && let Some(port) = peer.port.filter(|&port| port != 0)
    {
        // IPv6 inside unless every VIP is IPv4 (what the gateway's receive port is built for).
        let inner_v6 = peer.vips.is_empty() || peer.vips.iter().any(|v| v.is_ipv6());
        let (other_v6, other) = *fou6.entry(port).or_insert((inner_v6, index));
        if other_v6 != inner_v6 {
            p.add(
                format!("{at}.port"),
                format!(
                    "decap = \"kernel\" has one IPv6 fou receive port {port}, which hands \
                     its packets to {} as peers[{other}] needs, not {}: give this peer \
                     another port",
                    if other_v6 { "IPv6 (41)" } else { "IPv4 (4)" },
                    if inner_v6 { "IPv6 (41)" } else { "IPv4 (4)" },
                ),
            );
        }
    } else if peer.address.is_ipv4()
        && peer.tunnel.is_udp()
        && let Some((j, vip)) = peer.vips.iter().enumerate().find(|(_, v)| v.is_ipv6())
    {
        p.add(
            format!("{at}.vips[{j}]"),
            format!(
                "decap = \"kernel\" has no {kind} device for IPv6 inside IPv4 ({vip} is \
                 IPv6): serve it from an ipip (6in4) or gre peer, or use decap = \"userspace\""
            ),
        );
    }
}

/// Checks that a peer's tunnel can carry each of its VIPs' families: a `fou` tunnel has no
/// protocol field (its receive port names one inner protocol), so its VIPs are of one
/// family.
fn check_inner_families(peer: &Peer, at: &str, p: &mut Problems) {
    if peer.tunnel != TunnelKind::Fou {
        return;
    }
    if let Some(first) = peer.vips.first()
        && let Some((j, other)) = peer
            .vips
            .iter()
            .enumerate()
            .find(|(_, v)| v.is_ipv4() != first.is_ipv4())
    {
        p.add(
            format!("{at}.vips[{j}]"),
            format!(
                "tunnel = \"fou\" carries one inner family (its port has no protocol field): \
                 {other} is {} but {first} is {}; serve them from a gue, gre or ipip peer",
                family(*other),
                family(*first)
            ),
        );
    }
}

/// Checks the meaning of a document; `Ok` means it can be run.
pub fn validate(doc: &Document) -> Result<(), Invalid> {
    let mut p = Problems(Vec::new());
    check_gateway_addresses(doc, &mut p);
    if doc.gateway.workers == 0 || doc.gateway.workers > MAX_WORKERS {
        p.add(
            "gateway.workers",
            format!(
                "{} is out of range: give 1 to {MAX_WORKERS}",
                doc.gateway.workers
            ),
        );
    }
    if let Some(priority) = doc.gateway.worker_priority
        && !(1..=MAX_WORKER_PRIORITY).contains(&priority)
    {
        p.add(
            "gateway.worker_priority",
            format!(
                "{priority} is out of range: give a SCHED_FIFO priority of 1 to \
                 {MAX_WORKER_PRIORITY}, or leave it out for normal scheduling"
            ),
        );
    }
    if let Some(cpus) = &doc.gateway.worker_cpus {
        check_worker_cpus(cpus, doc.gateway.workers, &mut p);
    }
    if doc.gateway.decap == DecapMode::Kernel && doc.gateway.io.is_xdp() {
        p.add(
            "gateway.io",
            format!(
                "{:?} needs decap = \"userspace\": with decap = \"kernel\" the kernel's \
                 tunnels receive, so io may only be \"auto\" or \"packet\"",
                doc.gateway.io.as_str()
            ),
        );
    }
    for (field, value) in [
        ("gateway.egress_interface", &doc.gateway.egress_interface),
        ("gateway.ingress_interface", &doc.gateway.ingress_interface),
    ] {
        if let Some(name) = value
            && !is_valid_interface_name(name)
        {
            p.add(
                field,
                format!("{name:?} is not a valid interface name (1 to 15 bytes, no '/')"),
            );
        }
    }

    let shared: HashSet<IpAddr> = doc
        .vips
        .iter()
        .filter(|v| v.shared)
        .map(|v| v.address)
        .collect();
    let mut peer_names: HashMap<&str, usize> = HashMap::new();
    let mut peer_addrs: HashMap<IpAddr, usize> = HashMap::new();
    let mut vip_owner: HashMap<IpAddr, usize> = HashMap::new();
    let mut udp_ports: HashMap<u16, (TunnelKind, usize)> = HashMap::new();
    let mut fou6_ports: HashMap<u16, (bool, usize)> = HashMap::new();
    for (i, peer) in doc.peers.iter().enumerate() {
        let at = format!("peers[{i}]");
        if let Some(d) = peer.silent_after
            && !(MIN_SILENT_AFTER..=MAX_SILENT_AFTER).contains(&d.0)
        {
            p.add(
                format!("{at}.silent_after"),
                format!(
                    "{} is out of range: use 1s to 1day",
                    humantime::format_duration(d.0)
                ),
            );
        }
        if !is_valid_peer_name(&peer.name) {
            p.add(
                format!("{at}.name"),
                format!(
                    "{:?} is not a valid peer name: use 1 to {MAX_PEER_NAME} of A-Z a-z 0-9 _ -",
                    peer.name
                ),
            );
        } else if let Some(first) = peer_names.insert(&peer.name, i) {
            p.add(
                format!("{at}.name"),
                format!("duplicate peer name {:?} (also peers[{first}])", peer.name),
            );
        }
        if let Some(why) = not_remote(peer.address) {
            p.add(format!("{at}.address"), format!("{} {why}", peer.address));
        } else if doc.gateway.address_for(peer.address).is_none() {
            p.add(
                format!("{at}.address"),
                format!(
                    "peer {} has an {} address but the gateway has no {}: give \
                     gateway.{} (the outer family of a tunnel is its peer's)",
                    peer.name,
                    family(peer.address),
                    gateway_key(peer.address),
                    gateway_key(peer.address)
                ),
            );
        } else if doc.gateway.addresses().any(|g| g == peer.address) {
            p.add(
                format!("{at}.address"),
                format!(
                    "{} is the gateway's own address; a peer is a real server",
                    peer.address
                ),
            );
        } else if let Some(first) = peer_addrs.insert(peer.address, i) {
            p.add(
                format!("{at}.address"),
                format!(
                    "duplicate peer address {} (also peers[{first}])",
                    peer.address
                ),
            );
        }
        check_tunnel(peer, i, &at, &mut udp_ports, &mut p);
        check_kernel_families(doc, peer, i, &at, &mut fou6_ports, &mut p);
        check_inner_families(peer, &at, &mut p);
        let mut own = HashSet::new();
        for (j, vip) in peer.vips.iter().enumerate() {
            let vat = format!("{at}.vips[{j}]");
            if let Some(why) = not_remote(*vip) {
                p.add(vat, format!("{vip} {why}"));
            } else if !own.insert(*vip) {
                p.add(vat, format!("VIP {vip} is listed twice for this peer"));
            } else if let Some(&other) = vip_owner.get(vip)
                && !shared.contains(vip)
            {
                p.add(
                    vat,
                    format!(
                        "VIP {vip} is served by two peers, {:?} and {:?}; if LVS balances it \
                         over several real servers, declare it under [[vips]] with shared = true",
                        doc.peers[other].name, peer.name
                    ),
                );
            } else {
                vip_owner.insert(*vip, i);
            }
        }
    }

    let mut vips_seen: HashMap<IpAddr, usize> = HashMap::new();
    for (k, vip) in doc.vips.iter().enumerate() {
        let at = format!("vips[{k}]");
        if let Some(why) = not_remote(vip.address) {
            p.add(format!("{at}.address"), format!("{} {why}", vip.address));
        } else if let Some(first) = vips_seen.insert(vip.address, k) {
            p.add(
                format!("{at}.address"),
                format!("duplicate VIP {} (also vips[{first}])", vip.address),
            );
        }
        for (m, binding) in vip.plugins.iter().enumerate() {
            let bat = binding_field(k, m);
            // Whether a plugin can judge an IPv6 VIP depends on the module's ABI (v1:
            // IPv4 only), which the plugin host checks when it binds the chain.
            if !is_valid_plugin_name(&binding.plugin) {
                p.add(
                    format!("{bat}.plugin"),
                    format!(
                        "{:?} is not a valid plugin name: use 1 to {MAX_PLUGIN_NAME} of \
                         A-Z a-z 0-9 . _ - (not starting with '.')",
                        binding.plugin
                    ),
                );
            }
            if let Some((path, why)) = not_expressible_in_toml(&binding.config) {
                p.add(format!("{bat}.config{path}"), why);
            }
            if let Some(sha) = &binding.sha256
                && !(sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()))
            {
                p.add(
                    format!("{bat}.sha256"),
                    format!("{sha:?} is not a sha256 in hex (64 digits)"),
                );
            }
        }
    }

    if p.0.is_empty() {
        Ok(())
    } else {
        Err(Invalid(p.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_toml;

    #[test]
    fn the_longest_peer_name_still_names_a_tunnel_device() {
        let peer = |name: String| crate::Peer {
            name,
            address: std::net::IpAddr::from([10, 0, 1, 2]),
            vips: Vec::new(),
            silent_after: None,
            check_source_mac: false,
            tunnel: Default::default(),
            port: None,
            key: None,
        };
        let longest = peer("a".repeat(MAX_PEER_NAME));
        assert!(is_valid_peer_name(&longest.name));
        assert_eq!(longest.tunnel_device(), format!("tg-{}", longest.name));
        assert!(is_valid_interface_name(&longest.tunnel_device()));
        let too_long = peer("a".repeat(MAX_PEER_NAME + 1));
        assert!(!is_valid_peer_name(&too_long.name));
        assert!(!is_valid_interface_name(&too_long.tunnel_device()));
    }

    const BASE: &str = r#"
        [gateway]
        address = "10.0.0.1"
        [[peers]]
        name = "rs1"
        address = "10.0.1.2"
        vips = ["192.0.2.10"]
    "#;

    fn problems(extra: &str) -> Vec<String> {
        let doc = parse_toml(&format!("{BASE}\n{extra}")).expect("parses");
        match validate(&doc) {
            Ok(()) => vec![],
            Err(Invalid(list)) => list.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn base_document_is_valid() {
        assert_eq!(problems(""), Vec::<String>::new());
    }

    #[test]
    fn silent_after_is_a_humane_duration_with_a_default() {
        let doc = parse_toml(&format!(
            "{BASE}\n[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\nsilent_after = \"1m 30s\""
        ))
        .unwrap();
        assert_eq!(doc.peers[0].silent_after(), crate::DEFAULT_SILENT_AFTER);
        assert_eq!(
            doc.peers[1].silent_after(),
            std::time::Duration::from_secs(90)
        );
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["peers"][1]["silent_after"], "1m 30s");
        assert!(json["peers"][0].get("silent_after").is_none());
        let bad = parse_toml(&format!(
            "{BASE}\n[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\nsilent_after = \"soon\""
        ))
        .unwrap_err()
        .to_string();
        assert!(bad.contains("\"soon\" is not a duration"), "{bad}");
    }

    #[test]
    fn check_source_mac_defaults_off_is_kept_and_must_be_a_boolean() {
        let doc = parse_toml(&format!(
            "{BASE}\n[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\ncheck_source_mac = true"
        ))
        .unwrap();
        assert!(!doc.peers[0].check_source_mac);
        assert!(doc.peers[1].check_source_mac);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["peers"][1]["check_source_mac"], true);
        assert!(json["peers"][0].get("check_source_mac").is_none());
        assert_eq!(parse_toml(&crate::to_toml(&doc)).unwrap(), doc);
        let bad = parse_toml(&format!(
            "{BASE}\n[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\ncheck_source_mac = \"yes\""
        ))
        .unwrap_err()
        .to_string();
        assert!(bad.contains("check_source_mac"), "{bad}");
    }

    /// A document of `gateway` and `rest`, validated: its problems as text.
    fn problems_of(gateway: &str, rest: &str) -> Vec<String> {
        let doc = parse_toml(&format!("[gateway]\n{gateway}\n{rest}")).expect("parses");
        match validate(&doc) {
            Ok(()) => vec![],
            Err(Invalid(list)) => list.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn kernel_decap_takes_the_combinations_the_kernel_has_devices_for_and_names_the_rest() {
        let both = "address = \"10.0.0.1\"\naddress6 = \"2001:db8::1\"\ndecap = \"kernel\"";
        let peer = |address: &str, vips: &str, extra: &str| {
            format!("[[peers]]\nname = \"rs6\"\naddress = \"{address}\"\nvips = [{vips}]\n{extra}")
        };
        let v6 = "\"2001:db8:f::10\"";
        let v4 = "\"192.0.2.10\"";
        let mixed = "\"192.0.2.10\", \"2001:db8:f::10\"";
        // ip6tnl (ip6ip6, 4in6, any), sit (6in4, any), gre carrying IPv6, ip6gre, ip6tnl with
        // encap gue|fou, and IPv4 as before.
        for (address, vips, extra) in [
            ("2001:db8:1::2", v6, ""),
            ("2001:db8:1::2", v4, ""),
            ("2001:db8:1::2", mixed, "tunnel = \"ipip\""),
            ("2001:db8:1::2", v6, "tunnel = \"gre\""),
            ("2001:db8:1::2", mixed, "tunnel = \"gre\"\nkey = 7"),
            ("2001:db8:1::2", v4, "tunnel = \"gue\""),
            ("2001:db8:1::2", mixed, "tunnel = \"gue\"\nport = 7000"),
            ("2001:db8:1::2", v6, "tunnel = \"fou\"\nport = 5555"),
            ("2001:db8:1::2", v4, "tunnel = \"fou\"\nport = 5555"),
            ("2001:db8:1::2", "", "tunnel = \"fou\"\nport = 5555"),
            ("10.0.1.2", v6, ""),
            ("10.0.1.2", mixed, ""),
            ("10.0.1.2", mixed, "tunnel = \"gre\"\nkey = 7"),
            ("10.0.1.2", v4, "tunnel = \"gue\""),
        ] {
            let rest = peer(address, vips, extra);
            assert_eq!(problems_of(both, &rest), Vec::<String>::new(), "{rest}");
        }
        // Two IPv6 fou peers on one port: the port's one ipproto fits one of them only.
        let second = |vips: &str| {
            format!(
                "[[peers]]\nname = \"rs7\"\naddress = \"2001:db8:1::3\"\nvips = [{vips}]\n\
                 tunnel = \"fou\"\nport = 5555"
            )
        };
        let fou = "tunnel = \"fou\"\nport = 5555";
        assert_eq!(
            problems_of(
                both,
                &[peer("2001:db8:1::2", v6, fou), second("")].join("\n")
            ),
            Vec::<String>::new()
        );
        let refused = [
            (
                [peer("2001:db8:1::2", v6, fou), second("\"192.0.2.11\"")].join("\n"),
                "peers[1].port: decap = \"kernel\" has one IPv6 fou receive port 5555, which \
                 hands its packets to IPv6 (41) as peers[0] needs, not IPv4 (4): give this peer \
                 another port",
            ),
            (
                peer("10.0.1.2", mixed, "tunnel = \"gue\""),
                "peers[0].vips[1]: decap = \"kernel\" has no gue device for IPv6 inside IPv4 \
                 (2001:db8:f::10 is IPv6): serve it from an ipip (6in4) or gre peer, or use \
                 decap = \"userspace\"",
            ),
            (
                peer("10.0.1.2", v6, "tunnel = \"fou\"\nport = 5555"),
                "peers[0].vips[0]: decap = \"kernel\" has no fou device for IPv6 inside IPv4",
            ),
        ];
        for (rest, expected) in refused {
            let got = problems_of(both, &rest);
            assert!(
                got.len() == 1 && got[0].starts_with(expected),
                "{rest}: expected {expected:?}, got {got:?}"
            );
            // The same document is fine with userspace decap.
            let userspace = both.replace("\"kernel\"", "\"userspace\"");
            assert_eq!(
                problems_of(&userspace, &rest),
                Vec::<String>::new(),
                "{rest}"
            );
        }
    }

    #[test]
    fn each_family_needs_its_gateway_address_and_every_combination_is_named() {
        let v4 = "address = \"10.0.0.1\"";
        let v6 = "address6 = \"2001:db8::1\"";
        let both = "address = \"10.0.0.1\"\naddress6 = \"2001:db8::1\"";
        let peer = |address: &str, vips: &str, extra: &str| {
            format!("[[peers]]\nname = \"rs6\"\naddress = \"{address}\"\nvips = [{vips}]\n{extra}")
        };
        let valid: &[(&str, String)] = &[
            // ip6ip6, 4in6, 6in4, ipip; GUE and GRE over IPv6 with both inner families.
            (v6, peer("2001:db8:1::2", "\"2001:db8:f::10\"", "")),
            (v6, peer("2001:db8:1::2", "\"192.0.2.10\"", "")),
            (v4, peer("10.0.1.2", "\"2001:db8:f::10\"", "")),
            (
                both,
                peer(
                    "2001:db8:1::2",
                    "\"192.0.2.10\", \"2001:db8:f::10\"",
                    "tunnel = \"gue\"",
                ),
            ),
            (
                both,
                peer(
                    "2001:db8:1::2",
                    "\"192.0.2.10\", \"2001:db8:f::10\"",
                    "tunnel = \"gre\"",
                ),
            ),
            (
                v6,
                peer(
                    "2001:db8:1::2",
                    "\"2001:db8:f::10\", \"2001:db8:f::11\"",
                    "tunnel = \"fou\"\nport = 5555",
                ),
            ),
            (v6, "[[vips]]\naddress = \"2001:db8:f::10\"".into()),
        ];
        for (gateway, rest) in valid {
            assert_eq!(
                problems_of(gateway, rest),
                Vec::<String>::new(),
                "{gateway} {rest}"
            );
        }
        let invalid: &[(&str, String, &str)] = &[
            (
                "",
                String::new(),
                "gateway.address: the gateway needs an address: give address (IPv4), address6 (IPv6) or both",
            ),
            (
                v4,
                peer("2001:db8:1::2", "", ""),
                "peers[0].address: peer rs6 has an IPv6 address but the gateway has no address6",
            ),
            (
                v6,
                peer("10.0.1.2", "", ""),
                "peers[0].address: peer rs6 has an IPv4 address but the gateway has no address",
            ),
            (
                both,
                peer("2001:db8::1", "", ""),
                "peers[0].address: 2001:db8::1 is the gateway's own address",
            ),
            (
                "address6 = \"ff02::1\"",
                String::new(),
                "gateway.address6: ff02::1 is a multicast address",
            ),
            (
                "address6 = \"::\"",
                String::new(),
                "gateway.address6: :: is the unspecified address ::",
            ),
            (
                v6,
                peer("::1", "", ""),
                "peers[0].address: ::1 is the loopback address ::1",
            ),
            (
                v6,
                peer("2001:db8:1::2", "\"::ffff:192.0.2.1\"", ""),
                "peers[0].vips[0]: ::ffff:192.0.2.1 is an IPv4-mapped address",
            ),
            (
                v6,
                peer(
                    "2001:db8:1::2",
                    "\"2001:db8:f::10\", \"192.0.2.10\"",
                    "tunnel = \"fou\"\nport = 5555",
                ),
                "peers[0].vips[1]: tunnel = \"fou\" carries one inner family (its port has no protocol field): 192.0.2.10 is IPv4 but 2001:db8:f::10 is IPv6",
            ),
            (
                v4,
                format!(
                    "{}\n[[vips]]\naddress = \"2001:db8:f::10\"",
                    peer("10.0.1.2", "", "")
                ),
                "",
            ),
            (
                v6,
                "[[vips]]\naddress = \"2001:db8:f::10\"\n[[vips.plugins]]\nplugin = \"p\"".into(),
                "",
            ),
        ];
        for (gateway, rest, expected) in invalid {
            let got = problems_of(gateway, rest);
            if expected.is_empty() {
                // An IPv6 VIP without plugins beside an IPv4 gateway is fine: the outer
                // family is the peer's, not the VIP's. Plugins on an IPv6 VIP are the plugin
                // host's to judge (by the module's ABI), not the document's.
                assert_eq!(got, Vec::<String>::new(), "{gateway} {rest}");
                continue;
            }
            assert!(
                got.len() == 1 && got[0].starts_with(expected),
                "{gateway} {rest}: expected {expected:?}, got {got:?}"
            );
        }
    }

    #[test]
    fn an_ipv4_document_is_written_as_before_and_address6_is_kept() {
        let text = "[gateway]\naddress = \"10.0.0.1\"\n";
        let doc = parse_toml(text).unwrap();
        let json = serde_json::to_string(&doc.gateway).unwrap();
        assert_eq!(
            json, r#"{"address":"10.0.0.1","decap":"userspace","workers":1}"#,
            "no address6 key"
        );
        let both = parse_toml("[gateway]\naddress6 = \"2001:db8::1\"\n").unwrap();
        assert_eq!(both.gateway.address, None);
        assert_eq!(both.gateway.address6, Some("2001:db8::1".parse().unwrap()));
        assert_eq!(parse_toml(&crate::to_toml(&both)).unwrap(), both);
        let json = serde_json::to_value(&both).unwrap();
        assert_eq!(json["gateway"]["address6"], "2001:db8::1");
        assert!(json["gateway"].get("address").is_none());
    }

    #[test]
    fn tunnel_types_default_to_ipip_and_gue_to_port_6080() {
        let doc = parse_toml(&format!(
            "{BASE}\n[[peers]]\nname = \"g\"\naddress = \"10.0.1.3\"\ntunnel = \"gue\"\n\
             [[peers]]\nname = \"f\"\naddress = \"10.0.1.4\"\ntunnel = \"fou\"\nport = 5555\n\
             [[peers]]\nname = \"k\"\naddress = \"10.0.1.5\"\ntunnel = \"gre\"\nkey = 4294967295"
        ))
        .unwrap();
        let kinds: Vec<_> = doc.peers.iter().map(|p| (p.tunnel, p.udp_port())).collect();
        assert_eq!(
            kinds,
            [
                (TunnelKind::Ipip, None),
                (TunnelKind::Gue, Some(crate::DEFAULT_GUE_PORT)),
                (TunnelKind::Fou, Some(5555)),
                (TunnelKind::Gre, None),
            ]
        );
        assert_eq!(doc.peers[3].key, Some(u32::MAX));
        let json = serde_json::to_value(&doc).unwrap();
        assert!(json["peers"][0].get("tunnel").is_none());
        assert_eq!(json["peers"][1]["tunnel"], "gue");
        assert!(json["peers"][1].get("port").is_none());
        let bad = parse_toml(&format!(
            "{BASE}\n[[peers]]\nname = \"x\"\naddress = \"10.0.1.3\"\ntunnel = \"vxlan\""
        ))
        .unwrap_err()
        .to_string();
        assert!(bad.contains("tunnel"), "{bad}");
    }

    #[test]
    fn tunnel_keys_only_where_their_type_uses_them() {
        let cases: &[(&str, &str)] = &[
            (
                "tunnel = \"fou\"",
                "peers[1].port: tunnel = \"fou\" needs the UDP port",
            ),
            (
                "port = 6080",
                "peers[1].port: tunnel = \"ipip\" has no UDP port",
            ),
            (
                "tunnel = \"gre\"\nport = 1",
                "peers[1].port: tunnel = \"gre\" has no UDP port",
            ),
            (
                "tunnel = \"gue\"\nport = 0",
                "peers[1].port: 0 is not a UDP port",
            ),
            (
                "tunnel = \"gue\"\nkey = 7",
                "peers[1].key: tunnel = \"gue\" has no key",
            ),
            ("key = 7", "peers[1].key: tunnel = \"ipip\" has no key"),
        ];
        for (keys, want) in cases {
            let err = problems(&format!(
                "[[peers]]\nname = \"x\"\naddress = \"10.0.1.3\"\n{keys}"
            ))
            .join("\n");
            assert!(err.contains(want), "{keys}: {err}");
        }
        let mixed = "[[peers]]\nname = \"g\"\naddress = \"10.0.1.3\"\ntunnel = \"gue\"\nport = 7000\n\
             [[peers]]\nname = \"f\"\naddress = \"10.0.1.4\"\ntunnel = \"fou\"\nport = 7000";
        let err = problems(mixed).join("\n");
        assert!(
            err.contains("peers[2].port: UDP port 7000 is already the \"gue\" port of peers[1]"),
            "{err}"
        );
        let same = mixed.replace("tunnel = \"fou\"", "tunnel = \"gue\"");
        assert_eq!(problems(&same), Vec::<String>::new());
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases: &[(&str, &str)] = &[
            (
                "[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\nvips = [\"192.0.2.10\"]",
                "peers[1].vips[0]: VIP 192.0.2.10 is served by two peers, \"rs1\" and \"rs2\"",
            ),
            (
                "[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\nvips = [\"192.0.2.10\"]\n\
                 [[vips]]\naddress = \"192.0.2.10\"\nshared = true\n\
                 [[vips]]\naddress = \"192.0.2.10\"",
                "vips[1].address: duplicate VIP 192.0.2.10 (also vips[0])",
            ),
            (
                "[[peers]]\nname = \"rs1\"\naddress = \"10.0.1.3\"",
                "peers[1].name: duplicate peer name \"rs1\" (also peers[0])",
            ),
            (
                "[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.2\"",
                "peers[1].address: duplicate peer address 10.0.1.2 (also peers[0])",
            ),
            (
                "[[peers]]\nname = \"much-too-long-name\"\naddress = \"10.0.1.3\"",
                "peers[1].name: \"much-too-long-name\" is not a valid peer name",
            ),
            (
                "[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\nsilent_after = \"500ms\"",
                "peers[1].silent_after: 500ms is out of range: use 1s to 1day",
            ),
            (
                "[[peers]]\nname = \"gw\"\naddress = \"10.0.0.1\"",
                "peers[1].address: 10.0.0.1 is the gateway's own address",
            ),
            (
                "[[vips]]\naddress = \"192.0.2.10\"\n[[vips]]\naddress = \"192.0.2.10\"",
                "vips[1].address: duplicate VIP 192.0.2.10 (also vips[0])",
            ),
            (
                "[[vips]]\naddress = \"224.0.0.1\"",
                "vips[0].address: 224.0.0.1 is a multicast",
            ),
            (
                "[[vips]]\naddress = \"127.0.0.1\"",
                "vips[0].address: 127.0.0.1 is a loopback address",
            ),
            (
                "[[peers]]\nname = \"lo\"\naddress = \"127.5.0.1\"",
                "peers[1].address: 127.5.0.1 is a loopback address",
            ),
            (
                "[[peers]]\nname = \"lo\"\naddress = \"10.0.1.9\"\nvips = [\"127.0.0.2\"]",
                "peers[1].vips[0]: 127.0.0.2 is a loopback address",
            ),
            (
                "[[vips]]\naddress = \"192.0.2.10\"\n[[vips.plugins]]\nplugin = \"../x\"",
                "vips[0].plugins[0].plugin: \"../x\" is not a valid plugin name",
            ),
            (
                "[[vips]]\naddress = \"192.0.2.10\"\n[[vips.plugins]]\nplugin = \"x\"\nsha256 = \"zz\"",
                "vips[0].plugins[0].sha256: \"zz\" is not a sha256",
            ),
        ];
        for (extra, expected) in cases {
            let got = problems(extra);
            assert!(
                got.iter().any(|g| g.starts_with(expected)),
                "for {extra:?} expected a problem starting {expected:?}, got {got:?}"
            );
        }
    }

    /// The round-trip property of the `config_parse` fuzz target: a JSON document whose
    /// plugin configuration held a `null` (or an integer above i64::MAX) validated, then
    /// could not be rendered as TOML (`to_toml` panicked, or dropped the key silently).
    #[test]
    fn plugin_configs_that_toml_cannot_hold_are_refused() {
        use crate::{parse_json, to_toml};
        let doc = |config: &str| {
            parse_json(
                format!(
                    r#"{{"gateway":{{"address":"10.0.0.1"}},"vips":[{{"address":"192.0.2.10",
                    "plugins":[{{"plugin":"p","config":{config}}}]}}]}}"#
                )
                .as_bytes(),
            )
            .expect("parses")
        };
        let cases = [
            ("null", "vips[0].plugins[0].config: null is not allowed"),
            (
                r#"{"a":null}"#,
                "vips[0].plugins[0].config.a: null is not allowed",
            ),
            (
                r#"{"n":[1,2.5,null,true]}"#,
                "vips[0].plugins[0].config.n[2]: null",
            ),
            (
                r#"{"big":18446744073709551615}"#,
                "vips[0].plugins[0].config.big: 18446744073709551615 is larger",
            ),
        ];
        for (config, expected) in cases {
            let msg = validate(&doc(config)).unwrap_err().to_string();
            assert!(msg.starts_with(expected), "{config}: {msg}");
        }
        let fine = doc(r#"{"big":9223372036854775807,"neg":-1,"f":1.5e300,"e":[],"o":{}}"#);
        validate(&fine).unwrap();
        assert_eq!(crate::parse_toml(&to_toml(&fine)).unwrap(), fine);
    }

    #[test]
    fn a_shared_vip_may_be_served_by_several_peers() {
        let extra = "[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\nvips = [\"192.0.2.10\"]\n\
                     [[vips]]\naddress = \"192.0.2.10\"\nshared = true";
        assert_eq!(problems(extra), Vec::<String>::new());
    }

    #[test]
    fn gateway_fields_are_checked() {
        let doc =
            parse_toml("[gateway]\naddress = \"0.0.0.0\"\nworkers = 0\negress_interface = \"a/b\"")
                .unwrap();
        let msg = validate(&doc).unwrap_err().to_string();
        assert!(
            msg.contains("gateway.address: 0.0.0.0 is the unspecified address"),
            "{msg}"
        );
        assert!(msg.contains("gateway.workers: 0 is out of range"), "{msg}");
        assert!(
            msg.contains("gateway.egress_interface: \"a/b\" is not a valid"),
            "{msg}"
        );
    }

    #[test]
    fn worker_priority_is_a_sched_fifo_priority() {
        let gw = "address = \"10.0.0.1\"";
        for ok in [1, 50, 99] {
            let problems = problems_of(&format!("{gw}\nworker_priority = {ok}"), "");
            assert_eq!(problems, Vec::<String>::new(), "{ok}");
        }
        for bad in [0, 100, 4096] {
            let problems = problems_of(&format!("{gw}\nworker_priority = {bad}"), "");
            assert_eq!(
                problems,
                vec![format!(
                    "gateway.worker_priority: {bad} is out of range: give a SCHED_FIFO priority \
                     of 1 to 99, or leave it out for normal scheduling"
                )]
            );
        }
        for bad in ["-1", "\"high\"", "1.5"] {
            let text = format!("[gateway]\n{gw}\nworker_priority = {bad}");
            assert!(parse_toml(&text).is_err(), "{bad}");
        }
        let doc = parse_toml(&format!("[gateway]\n{gw}\nworker_priority = 10")).unwrap();
        assert_eq!(doc.gateway.worker_priority, Some(10));
        assert_eq!(parse_toml(&crate::to_toml(&doc)).unwrap(), doc);
    }

    #[test]
    fn worker_cpus_give_each_worker_a_cpu_of_its_own() {
        let gw = "address = \"10.0.0.1\"";
        for ok in [
            "workers = 1\nworker_cpus = [0]",
            "workers = 2\nworker_cpus = [3, 1]",
        ] {
            assert_eq!(
                problems_of(&format!("{gw}\n{ok}"), ""),
                Vec::<String>::new()
            );
        }
        let cases = [
            (
                "workers = 2\nworker_cpus = [1]",
                "gateway.worker_cpus: 1 CPUs for 2 workers: give one CPU per worker (worker i \
                 runs on the i-th), or leave it out",
            ),
            (
                "workers = 2\nworker_cpus = [1, 1]",
                "gateway.worker_cpus: CPU 1 is given twice: each worker needs a CPU of its own",
            ),
            (
                "workers = 1\nworker_cpus = [1024]",
                "gateway.worker_cpus: CPU 1024 is out of range: give CPU numbers 0 to 1023",
            ),
        ];
        for (text, problem) in cases {
            assert_eq!(
                problems_of(&format!("{gw}\n{text}"), ""),
                vec![problem.to_owned()],
                "{text}"
            );
        }
        for bad in ["-1", "\"1\"", "[\"a\"]", "[-1]"] {
            let text = format!("[gateway]\n{gw}\nworker_cpus = {bad}");
            assert!(parse_toml(&text).is_err(), "{bad}");
        }
        let doc = parse_toml(&format!(
            "[gateway]\n{gw}\nworkers = 2\nworker_cpus = [1, 0]"
        ))
        .unwrap();
        assert_eq!(doc.gateway.worker_cpus, Some(vec![1, 0]));
        assert_eq!(parse_toml(&crate::to_toml(&doc)).unwrap(), doc);
    }

    #[test]
    fn names() {
        assert!(is_valid_plugin_name("cidr-filter"));
        assert!(is_valid_plugin_name("v1.2_x"));
        for bad in ["", ".hidden", "a/b", "a b", "..", &"x".repeat(65)] {
            assert!(!is_valid_plugin_name(bad), "{bad:?}");
        }
        assert!(is_valid_peer_name("rs-01_a"));
        assert!(!is_valid_peer_name("rs.1"));
    }
}
