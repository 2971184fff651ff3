//! The declarative configuration document, exactly as an operator writes it.
//!
//! One document describes the whole gateway: its own address and receive mode, the real
//! servers (peers) whose replies it accepts, and the plugin chain of every VIP. It is read
//! from TOML (`tungate run --config FILE`) and served and replaced as JSON by the admin API;
//! both go through these types, so a key unknown to one is unknown to the other. This module
//! only describes shapes; [`super::validate`] checks the meaning.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The whole configuration document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// The gateway itself (LD-OUT).
    pub gateway: Gateway,
    /// The real servers whose IPIP-encapsulated replies are accepted.
    #[serde(default)]
    pub peers: Vec<Peer>,
    /// The VIPs with their plugin chains. A VIP served by a peer but not listed here has an
    /// empty chain; a VIP listed here but served by no peer is kept but carries no traffic.
    /// A VIP served by several peers must be listed here with `shared = true`.
    #[serde(default)]
    pub vips: Vec<Vip>,
}

/// How the gateway receives and decapsulates the replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecapMode {
    /// tungate reads the outer IPIP packets itself on the ingress interface and checks the
    /// outer addresses; no kernel tunnel is needed (works on kernels without `ipip`).
    #[default]
    Userspace,
    /// The kernel decapsulates through one ipip tunnel per peer that tungate builds; tungate
    /// reads the inner packets from the tunnel devices.
    Kernel,
}

impl DecapMode {
    /// The lowercase name used in the document, the API and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            DecapMode::Userspace => "userspace",
            DecapMode::Kernel => "kernel",
        }
    }
}

/// How the data path receives and sends packets (`gateway.io`; `userspace` decap only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub enum IoMode {
    /// Native XDP with AF_XDP sockets where the ingress driver has it, else the TPACKET
    /// path (the reason is logged and shown in the status).
    #[default]
    #[serde(rename = "auto")]
    Auto,
    /// Native XDP with AF_XDP sockets; refused at start when the driver has none.
    #[serde(rename = "xdp")]
    Xdp,
    /// Generic (skb) XDP with AF_XDP sockets: works on every device, slower than native.
    #[serde(rename = "xdp-generic")]
    XdpGeneric,
    /// AF_PACKET (TPACKET) rings, no XDP.
    #[serde(rename = "packet")]
    Packet,
}

impl IoMode {
    /// The name used in the document and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            IoMode::Auto => "auto",
            IoMode::Xdp => "xdp",
            IoMode::XdpGeneric => "xdp-generic",
            IoMode::Packet => "packet",
        }
    }

    /// Whether this mode asks for XDP explicitly (`xdp` or `xdp-generic`).
    pub fn is_xdp(self) -> bool {
        matches!(self, IoMode::Xdp | IoMode::XdpGeneric)
    }

    fn is_auto(&self) -> bool {
        *self == IoMode::Auto
    }
}

/// The `[gateway]` section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Gateway {
    /// The gateway's own IPv4 address (GIP): the outer destination of every reply tunnel
    /// from an IPv4 peer. At least one of `address` and `address6` is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<Ipv4Addr>,
    /// The gateway's own IPv6 address (its IPv6 GIP): the outer destination of every reply
    /// tunnel from an IPv6 peer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address6: Option<Ipv6Addr>,
    /// Receive and decapsulation mode.
    #[serde(default)]
    pub decap: DecapMode,
    /// How the data path receives and sends (`userspace` decap): `auto` (default), `xdp`,
    /// `xdp-generic` or `packet`. With `kernel` decap only `auto` and `packet` are allowed.
    #[serde(default, skip_serializing_if = "IoMode::is_auto")]
    pub io: IoMode,
    /// Number of data-path worker threads (1 to 64).
    #[serde(default = "default_workers")]
    pub workers: u32,
    /// Real-time priority of the data-path worker threads: 1 to 99 runs them `SCHED_FIFO` at
    /// that priority, ahead of every normal task on their cores (needs `CAP_SYS_NICE` or an
    /// `RLIMIT_RTPRIO` of at least this; refused at start otherwise). Default: none, normal
    /// scheduling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_priority: Option<u32>,
    /// The CPUs the data-path workers run on, one per worker in order (worker `i` on the
    /// `i`-th; the AF_XDP path binds worker `i` to receive queue `i`, so steer that queue's
    /// interrupt to the same CPU). The gateway's other threads (API, plugin epoch ticker,
    /// resolver, …) are then kept off these CPUs. Each must be one the process may run on
    /// (refused at start otherwise). Default: none, the scheduler places every thread.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker_cpus: Option<Vec<u32>>,
    /// Interface the decapsulated replies leave by, towards the clients. Default: chosen per
    /// destination from the kernel's route table.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub egress_interface: Option<String>,
    /// Interface the encapsulated replies arrive on (`userspace` mode). Default: the
    /// interface that holds the gateway address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress_interface: Option<String>,
}

impl Gateway {
    /// The gateway's address in the family of `peer`: the outer destination of that peer's
    /// tunnel, `None` when the gateway has no address of that family.
    pub fn address_for(&self, peer: IpAddr) -> Option<IpAddr> {
        match peer {
            IpAddr::V4(_) => self.address.map(IpAddr::V4),
            IpAddr::V6(_) => self.address6.map(IpAddr::V6),
        }
    }

    /// The gateway's addresses: `address` then `address6`, those that are given.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> {
        self.address
            .map(IpAddr::V4)
            .into_iter()
            .chain(self.address6.map(IpAddr::V6))
    }

    /// The address the gateway is shown by: `address`, else `address6` (validation requires
    /// one; an invalid document without either shows the IPv4 unspecified address).
    pub fn display_address(&self) -> IpAddr {
        self.addresses()
            .next()
            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// The default worker count: one, which leaves the other cores to the kernel and the admin.
pub(crate) fn default_workers() -> u32 {
    1
}

/// How a peer's kernel tunnel device is named: this prefix and the peer's name.
pub(crate) const TUNNEL_DEVICE_PREFIX: &str = "tg-";

/// One real server (`[[peers]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Peer {
    /// Short unique name (1–12 of `A-Z a-z 0-9 _ -`); the kernel tunnel is `tg-<name>`.
    pub name: String,
    /// The real server's address (RIP), IPv4 or IPv6: the outer source of its reply tunnel,
    /// whose outer family follows it (the gateway needs `address` or `address6` to match).
    pub address: IpAddr,
    /// The VIPs this real server answers for, of either family; replies from other sources
    /// are dropped.
    #[serde(default)]
    pub vips: Vec<IpAddr>,
    /// How long this peer may send nothing before it is shown as silent (a warning in
    /// `tungate status`, the UI and `/metrics`), e.g. `"30s"`, `"2m"`; default
    /// [`DEFAULT_SILENT_AFTER`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub silent_after: Option<HumaneDuration>,
    /// Drop (as `spoofed_peer`) this peer's tunnel frames unless their Ethernet source is the
    /// MAC they must come from: the peer's neighbour entry when it is on-link, else that of
    /// the router the route to it uses (unresolved: dropped, fail closed). `userspace` decap
    /// only (kernel decap has no Ethernet header). Default false.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub check_source_mac: bool,
    /// The type of this peer's return tunnel: `ipip` (default), `gue`, `fou` or `gre`.
    #[serde(default, skip_serializing_if = "TunnelKind::is_ipip")]
    pub tunnel: TunnelKind,
    /// The UDP destination port of a `gue` or `fou` tunnel (the gateway's receive port):
    /// default [`DEFAULT_GUE_PORT`] for `gue`, required for `fou`, refused for the others.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// The GRE key (32 bits) a `gre` tunnel must carry; without it, a GRE packet that carries
    /// a key is refused. Refused for the other tunnel types.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<u32>,
}

/// The UDP port of a `gue` peer without `port`, as in the kernel's examples.
pub const DEFAULT_GUE_PORT: u16 = 6080;

/// The encapsulation of a peer's return tunnel (`peers[].tunnel`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TunnelKind {
    /// IP in IP, as IPVS tunnels by default: the inner packet directly after the outer
    /// header, IP protocol / next header 4 for an inner IPv4 packet and 41 for an inner IPv6
    /// one (ipip, sit/6in4, ip6tnl's ip6ip6 and 4in6).
    #[default]
    Ipip,
    /// Generic UDP Encapsulation: UDP, a GUE header, then the inner packet.
    Gue,
    /// Foo-over-UDP: UDP directly followed by the inner packet.
    Fou,
    /// Generic Routing Encapsulation (IP protocol 47), optionally keyed.
    Gre,
}

impl TunnelKind {
    /// The name used in the document and the API.
    pub fn as_str(self) -> &'static str {
        match self {
            TunnelKind::Ipip => "ipip",
            TunnelKind::Gue => "gue",
            TunnelKind::Fou => "fou",
            TunnelKind::Gre => "gre",
        }
    }

    /// Whether the tunnel is carried in UDP (`gue`, `fou`).
    pub fn is_udp(self) -> bool {
        matches!(self, TunnelKind::Gue | TunnelKind::Fou)
    }

    fn is_ipip(&self) -> bool {
        *self == TunnelKind::Ipip
    }
}

/// How long a peer may be silent when `silent_after` is not set.
pub const DEFAULT_SILENT_AFTER: Duration = Duration::from_secs(30);

/// A duration written for humans (`"30s"`, `"1m 30s"`, `"500ms"`), as `humantime` reads
/// and writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumaneDuration(pub Duration);

impl Serialize for HumaneDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_duration(self.0))
    }
}

impl<'de> Deserialize<'de> for HumaneDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text)
            .map(HumaneDuration)
            .map_err(|e| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a duration like \"30s\" or \"2m\": {e}"
                ))
            })
    }
}

impl Peer {
    /// How long this peer may send nothing before it is shown as silent.
    pub fn silent_after(&self) -> Duration {
        self.silent_after.map_or(DEFAULT_SILENT_AFTER, |d| d.0)
    }

    /// The UDP destination port of this peer's tunnel: `port`, or [`DEFAULT_GUE_PORT`] for
    /// `gue`; `None` for the tunnels that are not carried in UDP.
    pub fn udp_port(&self) -> Option<u16> {
        match self.tunnel {
            TunnelKind::Gue => Some(self.port.unwrap_or(DEFAULT_GUE_PORT)),
            TunnelKind::Fou => self.port,
            TunnelKind::Ipip | TunnelKind::Gre => None,
        }
    }

    /// The kernel tunnel device of this peer in `kernel` decap mode: `tg-<name>` (the one
    /// definition: netcfg builds it under this name and the data path reads from it).
    pub fn tunnel_device(&self) -> String {
        format!("{TUNNEL_DEVICE_PREFIX}{}", self.name)
    }
}

/// One VIP and its plugin chain (`[[vips]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vip {
    /// The virtual address clients talk to (IPv4 or IPv6): the inner source of the replies.
    pub address: IpAddr,
    /// Several peers serve this VIP (LVS balances it over several real servers). Without
    /// it, a VIP listed under two peers is refused as a likely mistake.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shared: bool,
    /// Plugins run on every reply from this VIP, in order; the first drop wins.
    #[serde(default)]
    pub plugins: Vec<Binding>,
}

/// What the gateway does with a packet when a plugin fails (trap, deadline, bad verdict).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Fail open: the packet goes on to the next plugin (availability first).
    #[default]
    Pass,
    /// Fail closed: the packet is dropped (policy first).
    Drop,
}

impl OnError {
    /// The lowercase name used in the document, the API and the metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            OnError::Pass => "pass",
            OnError::Drop => "drop",
        }
    }
}

/// A plugin bound to a VIP, with its own configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Binding {
    /// Name of an uploaded plugin.
    pub plugin: String,
    /// Pins the module: the binding refuses any other content than this sha256 (hex).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The plugin's own configuration, handed to its `configure` export as JSON.
    #[serde(default = "empty_object")]
    pub config: serde_json::Value,
    /// Fail-open (`pass`, the default) or fail-closed (`drop`).
    #[serde(default)]
    pub on_error: OnError,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}
