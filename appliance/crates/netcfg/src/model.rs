//! The object model of what tungate manages in the kernel: tunnels, link states, addresses,
//! routes, rules, sysctls and nftables objects, and the ownership marks that tell tungate's
//! objects from everyone else's.
//!
//! A [`DesiredState`] is a plain list of [`Item`]s built from a configuration (the gateway or
//! the RS role); it never reads or changes the kernel. Every item has a key (its identity:
//! two items with the same key are the same kernel object) and a one-line description.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use tungate_config::{DEFAULT_GUE_PORT, TunnelKind};

/// The protocol number tungate puts on its routes, rules and addresses (`proto 116` in `ip`
/// output; unassigned in the kernel's `rtnetlink.h`). `down` removes exactly those.
pub(crate) const OWNER_PROTOCOL: u8 = 116;

/// The nftables table tungate owns on a real server (family `ip`).
pub(crate) const NFT_TABLE: &str = "tungate_rs";

/// The real server's IPv6 tunnel fence (see `kernel::fence6`).
pub(crate) const FENCE6_TABLE: &str = "ip6 tungate_rs";

/// The gateway's IPv6 forwarding guard of `kernel` decap (see `kernel::guard`).
pub(crate) const GUARD_TABLE: &str = "ip6 tungate_guard";

/// Which side of the topology a desired state is for. Each role marks its links with its
/// own alias, so the two roles never remove each other's objects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The reply gateway (LD-OUT): `tungate net`.
    Gateway,
    /// A real server: `tungate rs`.
    RealServer,
}

impl Role {
    /// The link alias (`ip link` shows it as `alias`) that marks links this role created.
    pub(crate) fn link_alias(self) -> &'static str {
        match self {
            Role::Gateway => "tungate",
            Role::RealServer => "tungate-rs",
        }
    }

    /// The short name used in messages and file names.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Role::Gateway => "gateway",
            Role::RealServer => "rs",
        }
    }
}

/// The bytes an `ip6tnl` device adds: the IPv6 header (40) and the 8-byte Destination
/// Options header that carries its default tunnel encapsulation limit (4).
pub(crate) const IP6TNL_OVERHEAD: u32 = 48;

/// The bytes an `ip6gre` device adds before its GRE header: the IPv6 header (40) and the
/// 8-byte Destination Options header of the encapsulation limit (4, the kernel's default,
/// which tungate sets explicitly).
pub(crate) const IP6GRE_OVERHEAD: u32 = 48;

/// What a tunnel device carries: the device type and, for ipip, its UDP encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TunnelEncap {
    /// A plain `ipip` device (IPv4 in IPv4, protocol 4).
    Ipip,
    /// An `ipip` device with `encap fou encap-sport auto encap-dport PORT`: UDP to `port`,
    /// then the inner packet.
    Fou {
        /// The UDP destination port.
        port: u16,
    },
    /// An `ipip` device with `encap gue encap-sport auto encap-dport PORT`: UDP to `port`,
    /// a GUE header, then the inner packet.
    Gue {
        /// The UDP destination port.
        port: u16,
    },
    /// A `gre` device, with `key KEY` (both directions) when a key is given.
    Gre {
        /// The GRE key.
        key: Option<u32>,
    },
    /// An `ip6tnl` device (IPv6 outer, no extra header): IPv6 in IPv6, IPv4 in IPv6 (4in6),
    /// or both, as its `mode` says.
    Ip6Tnl {
        /// The inner families it accepts.
        inner: InnerFamilies,
    },
    /// A `sit` device (IPv4 outer, protocol 41): IPv6 in IPv4 (6in4), or IPv6 and IPv4
    /// (`mode any`).
    Sit {
        /// The inner families it accepts.
        inner: InnerFamilies,
    },
    /// An `ip6gre` device (IPv6 outer, GRE), with `key KEY` (both directions) when a key
    /// is given, and `encaplimit 4` (the kernel's default, set explicitly).
    Ip6Gre {
        /// The GRE key.
        key: Option<u32>,
    },
    /// An `ip6tnl` device with `encap fou encap-sport auto encap-dport PORT` (IPv6 outer,
    /// UDP, then the inner packet), in the mode of its one inner family.
    Ip6Fou {
        /// The UDP destination port.
        port: u16,
        /// The inner family (never both: a fou port names one inner protocol).
        inner: InnerFamilies,
    },
    /// An `ip6tnl` device with `encap gue encap-sport auto encap-dport PORT` (IPv6 outer,
    /// UDP, a GUE header, then the inner packet), in the mode of its inner families.
    Ip6Gue {
        /// The UDP destination port.
        port: u16,
        /// The inner families it accepts.
        inner: InnerFamilies,
    },
    /// A link found in the kernel that is none of the above (only ever observed).
    Other,
}

/// The inner families an `ip6tnl` or `sit` device accepts: its `mode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InnerFamilies {
    /// IPv4 only.
    V4,
    /// IPv6 only.
    V6,
    /// Both (`mode any`).
    Both,
}

impl InnerFamilies {
    /// The families of `vips` (both when there are none, so the device is ready for either).
    pub(crate) fn of(vips: &[IpAddr]) -> Self {
        let v4 = vips.iter().any(IpAddr::is_ipv4);
        let v6 = vips.iter().any(IpAddr::is_ipv6);
        match (v4, v6) {
            (true, false) => InnerFamilies::V4,
            (false, true) => InnerFamilies::V6,
            _ => InnerFamilies::Both,
        }
    }

    /// Whether IPv6 packets come out of the device.
    pub(crate) fn has_v6(self) -> bool {
        self != InnerFamilies::V4
    }
}

impl TunnelEncap {
    /// The encapsulation of a peer's tunnel of type `kind` (`port`: the UDP port of a
    /// gue/fou tunnel; `key`: the GRE key).
    pub(crate) fn of(kind: TunnelKind, port: Option<u16>, key: Option<u32>) -> Self {
        match kind {
            TunnelKind::Ipip => TunnelEncap::Ipip,
            TunnelKind::Fou => TunnelEncap::Fou {
                port: port.unwrap_or(0),
            },
            TunnelKind::Gue => TunnelEncap::Gue {
                port: port.unwrap_or(DEFAULT_GUE_PORT),
            },
            TunnelKind::Gre => TunnelEncap::Gre { key },
        }
    }

    /// The bytes the encapsulation adds before the inner packet: IPIP 20, FOU 28 (IPv4 +
    /// UDP), GUE 32 (IPv4 + UDP + the 4-byte GUE header), GRE 24, or 28 with a key; over
    /// IPv6 the 40-byte header and the 8 bytes of the encapsulation limit option instead of
    /// the 20-byte IPv4 header: ip6tnl 48, ip6gre 52 or 56 with a key, FOU 56, GUE 60.
    pub(crate) fn overhead(self) -> u32 {
        match self {
            TunnelEncap::Ipip | TunnelEncap::Other => 20,
            TunnelEncap::Fou { .. } => 28,
            TunnelEncap::Gue { .. } => 32,
            TunnelEncap::Gre { key: None } => 24,
            TunnelEncap::Gre { key: Some(_) } => 28,
            TunnelEncap::Ip6Tnl { .. } => IP6TNL_OVERHEAD,
            TunnelEncap::Sit { .. } => 20,
            TunnelEncap::Ip6Gre { key: None } => IP6GRE_OVERHEAD + 4,
            TunnelEncap::Ip6Gre { key: Some(_) } => IP6GRE_OVERHEAD + 8,
            TunnelEncap::Ip6Fou { .. } => IP6TNL_OVERHEAD + 8,
            TunnelEncap::Ip6Gue { .. } => IP6TNL_OVERHEAD + 12,
        }
    }

    /// Whether decapsulated IPv6 packets can come out of such a device (GRE names any
    /// inner protocol, whatever the VIPs are).
    pub(crate) fn yields_ipv6(self) -> bool {
        match self {
            TunnelEncap::Ip6Tnl { inner }
            | TunnelEncap::Sit { inner }
            | TunnelEncap::Ip6Fou { inner, .. }
            | TunnelEncap::Ip6Gue { inner, .. } => inner.has_v6(),
            TunnelEncap::Gre { .. } | TunnelEncap::Ip6Gre { .. } => true,
            _ => false,
        }
    }

    /// The fou/gue receive port this encapsulation needs at the receiving end.
    pub(crate) fn receive_port(self) -> Option<FouPortSpec> {
        match self {
            TunnelEncap::Fou { port } => Some(FouPortSpec::fou(port)),
            TunnelEncap::Gue { port } => Some(FouPortSpec::gue(port)),
            TunnelEncap::Ip6Fou { port, inner } => Some(FouPortSpec {
                port,
                gue: false,
                v6: true,
                ipproto: if inner == InnerFamilies::V4 { 4 } else { 41 },
            }),
            TunnelEncap::Ip6Gue { port, .. } => Some(FouPortSpec {
                v6: true,
                ..FouPortSpec::gue(port)
            }),
            _ => None,
        }
    }
}

impl fmt::Display for TunnelEncap {
    /// The device type and options as `ip link add` spells them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TunnelEncap::Ipip => f.write_str("ipip"),
            TunnelEncap::Fou { port } => {
                write!(f, "ipip encap fou encap-sport auto encap-dport {port}")
            }
            TunnelEncap::Gue { port } => {
                write!(f, "ipip encap gue encap-sport auto encap-dport {port}")
            }
            TunnelEncap::Gre { key: None } => f.write_str("gre"),
            TunnelEncap::Gre { key: Some(key) } => write!(f, "gre key {key}"),
            TunnelEncap::Ip6Tnl { inner } => f.write_str(match inner {
                InnerFamilies::V6 => "ip6tnl mode ip6ip6",
                InnerFamilies::V4 => "ip6tnl mode ipip6",
                InnerFamilies::Both => "ip6tnl mode any",
            }),
            TunnelEncap::Sit { inner } => f.write_str(match inner {
                InnerFamilies::V6 => "sit mode ip6ip",
                InnerFamilies::V4 => "sit mode ipip",
                InnerFamilies::Both => "sit mode any",
            }),
            TunnelEncap::Ip6Gre { key: None } => f.write_str("ip6gre encaplimit 4"),
            TunnelEncap::Ip6Gre { key: Some(key) } => {
                write!(f, "ip6gre key {key} encaplimit 4")
            }
            TunnelEncap::Ip6Fou { port, inner } => write!(
                f,
                "ip6tnl mode {} encap fou encap-sport auto encap-dport {port} encaplimit 4",
                ip6tnl_mode(*inner)
            ),
            TunnelEncap::Ip6Gue { port, inner } => write!(
                f,
                "ip6tnl mode {} encap gue encap-sport auto encap-dport {port} encaplimit 4",
                ip6tnl_mode(*inner)
            ),
            TunnelEncap::Other => f.write_str("(not a tunnel tungate builds)"),
        }
    }
}

/// The `mode` word of an `ip6tnl` device carrying `inner`.
fn ip6tnl_mode(inner: InnerFamilies) -> &'static str {
    match inner {
        InnerFamilies::V6 => "ip6ip6",
        InnerFamilies::V4 => "ipip6",
        InnerFamilies::Both => "any",
    }
}

/// A fou/gue receive port (`ip fou add port PORT gue|ipproto N [-6]`): the kernel listens on
/// the UDP port (of one family) and hands what arrives to the tunnel devices. The kernel
/// keeps no owner mark on it: tungate remembers the ports it added in the state file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FouPortSpec {
    /// The UDP port.
    pub(crate) port: u16,
    /// GUE (a GUE header names the inner protocol) rather than FOU (always `ipproto`).
    pub(crate) gue: bool,
    /// An IPv6 socket (`-6`, `FOU_ATTR_AF` = `AF_INET6`) rather than IPv4.
    pub(crate) v6: bool,
    /// For FOU, the protocol its packets are handed to: 4 (IPv4 inside) or 41 (IPv6
    /// inside); 0 for GUE.
    pub(crate) ipproto: u8,
}

impl FouPortSpec {
    /// An IPv4 GUE port.
    pub(crate) fn gue(port: u16) -> Self {
        Self {
            port,
            gue: true,
            v6: false,
            ipproto: 0,
        }
    }

    /// An IPv4 FOU port for IPIP.
    pub(crate) fn fou(port: u16) -> Self {
        Self {
            port,
            gue: false,
            v6: false,
            ipproto: 4,
        }
    }

    /// How the state file and the plan name the port: `PORT`, or `PORT/ipv6` for an IPv6
    /// one (the kernel has an IPv4 and an IPv6 port of one number apart).
    pub(crate) fn id(&self) -> String {
        if self.v6 {
            format!("{}/ipv6", self.port)
        } else {
            self.port.to_string()
        }
    }
}

impl fmt::Display for FouPortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.gue {
            write!(f, "fou port {} gue", self.port)?;
        } else {
            write!(f, "fou port {} ipproto {}", self.port, self.ipproto)?;
        }
        if self.v6 {
            f.write_str(" -6")?;
        }
        Ok(())
    }
}

/// A tunnel device that tungate creates and owns (`ipip`, `ipip` with a UDP encapsulation,
/// `gre`, `ip6tnl` or `sit`); `local` and `remote` are of the family its type's outer
/// header has (IPv6 for `ip6tnl`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TunnelSpec {
    /// Device name (at most 15 bytes).
    pub(crate) name: String,
    /// The device type and encapsulation.
    pub(crate) encap: TunnelEncap,
    /// Outer source address of what it sends, outer destination of what it accepts.
    pub(crate) local: IpAddr,
    /// The other end.
    pub(crate) remote: IpAddr,
    /// The MTU to set, if tungate decides it (else the kernel's choice is kept).
    pub(crate) mtu: Option<u32>,
    /// Whether the device is up.
    pub(crate) up: bool,
}

/// The administrative state of a link tungate does not own (e.g. the ipip fallback device
/// `tunl0`); the original state is remembered in the state file and restored on `down`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkStateSpec {
    /// Device name.
    pub(crate) name: String,
    /// Whether it is up.
    pub(crate) up: bool,
}

/// An address (IPv4 or IPv6) on a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddressSpec {
    /// Device name.
    pub(crate) device: String,
    /// The address.
    pub(crate) address: IpAddr,
    /// Prefix length.
    pub(crate) prefix: u8,
}

/// A device route (`DEST/PREFIX dev DEVICE table TABLE`, scope link, metric 0).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteSpec {
    /// Routing table number.
    pub(crate) table: u32,
    /// Destination network (its family is the route's).
    pub(crate) destination: IpAddr,
    /// Destination prefix length (0 for the default route).
    pub(crate) prefix: u8,
    /// Output device.
    pub(crate) device: String,
}

/// What a policy routing rule matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RuleSelector {
    /// `from ADDRESS/32` (`/128` for IPv6; the family is the address's).
    From(IpAddr),
    /// `fwmark MARK`.
    FwMark(u32),
}

/// A policy routing rule (`pref PRIORITY SELECTOR lookup TABLE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleSpec {
    /// Rule priority (`pref`).
    pub(crate) priority: u32,
    /// What it matches.
    pub(crate) selector: RuleSelector,
    /// The table it looks up.
    pub(crate) table: u32,
}

/// A value under `/proc/sys`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SysctlSpec {
    /// Path relative to `/proc/sys`, e.g. `net/ipv4/conf/tunl0/rp_filter`.
    pub(crate) path: String,
    /// The value, as written to the file.
    pub(crate) value: String,
}

impl SysctlSpec {
    /// A per-interface IPv4 setting: `net.ipv4.conf.<device>.<name>`.
    pub(crate) fn ipv4_conf(device: &str, name: &str, value: impl Into<String>) -> Self {
        Self {
            path: format!("net/ipv4/conf/{device}/{name}"),
            value: value.into(),
        }
    }

    /// The dotted name `sysctl(8)` uses (dots inside a device name shown as `/`).
    pub(crate) fn dotted(&self) -> String {
        self.path
            .chars()
            .map(|c| match c {
                '/' => '.',
                '.' => '/',
                other => other,
            })
            .collect()
    }
}

/// Layer 4 protocol of a DNAT entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4Protocol {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl L4Protocol {
    /// `tcp` or `udp`.
    pub fn as_str(self) -> &'static str {
        match self {
            L4Protocol::Tcp => "tcp",
            L4Protocol::Udp => "udp",
        }
    }

    /// The IP protocol number.
    pub fn number(self) -> u8 {
        match self {
            L4Protocol::Tcp => libc::IPPROTO_TCP as u8,
            L4Protocol::Udp => libc::IPPROTO_UDP as u8,
        }
    }
}

/// The chains of tungate's nftables table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NftChain {
    /// `type nat hook prerouting priority dstnat`: VIP:port → container.
    Dnat,
    /// `type filter hook prerouting priority mangle`: marks the container's replies so that
    /// policy routing sends them into the reply tunnel.
    MarkReplies,
    /// `type filter hook prerouting priority raw`: drops tunnel packets that do not come
    /// from a director (before conntrack and before the tunnel devices see them).
    Fence,
    /// `type filter hook forward priority mangle`: clamps the MSS of forwarded TCP SYNs
    /// (the DNAT'd containers' connections) to what fits the reply tunnel.
    Clamp,
}

impl NftChain {
    /// Every chain, in creation order.
    pub(crate) const ALL: [NftChain; 4] = [
        NftChain::Dnat,
        NftChain::MarkReplies,
        NftChain::Fence,
        NftChain::Clamp,
    ];

    /// The chain's name in the table.
    pub(crate) fn name(self) -> &'static str {
        match self {
            NftChain::Dnat => "dnat",
            NftChain::MarkReplies => "mark_replies",
            NftChain::Fence => "fence",
            NftChain::Clamp => "clamp",
        }
    }
}

/// A tunnel protocol the real server's fence covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FencedProtocol {
    /// IPv4 in IPv4 (protocol 4).
    Ipip,
    /// GRE (protocol 47).
    Gre,
    /// IPv6 inside (protocol 41): ip6ip6 in the IPv6 fence, 6in4 in the IPv4 one.
    Ip6ip6,
}

impl FencedProtocol {
    /// The name inside IPv4: `ipip`, `gre`, or `6in4` for IPv6 in IPv4.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            FencedProtocol::Ipip => "ipip",
            FencedProtocol::Gre => "gre",
            FencedProtocol::Ip6ip6 => "6in4",
        }
    }

    /// The name inside IPv6: `4in6` for IPv4 in IPv6, `ip6ip6`, `gre`.
    pub(crate) fn as_str6(self) -> &'static str {
        match self {
            FencedProtocol::Ipip => "4in6",
            FencedProtocol::Gre => "gre",
            FencedProtocol::Ip6ip6 => "ip6ip6",
        }
    }

    /// The IP protocol number.
    pub(crate) fn number(self) -> u8 {
        match self {
            FencedProtocol::Ipip => 4,
            FencedProtocol::Gre => 47,
            FencedProtocol::Ip6ip6 => 41,
        }
    }
}

/// One nftables rule in tungate's table. Its identity is its comment, which spells out all
/// that it does, so a changed rule is a different rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NftRuleSpec {
    /// `ip daddr VIP PROTO dport PORT dnat to TO:TO_PORT`.
    Dnat {
        /// The VIP.
        vip: Ipv4Addr,
        /// The VIP's port.
        port: u16,
        /// TCP or UDP.
        protocol: L4Protocol,
        /// The container's address.
        to: Ipv4Addr,
        /// The container's port.
        to_port: u16,
    },
    /// `ip saddr TO PROTO sport TO_PORT ct status dnat meta mark set MARK`.
    MarkReply {
        /// The container's address.
        from: Ipv4Addr,
        /// The container's port.
        from_port: u16,
        /// TCP or UDP.
        protocol: L4Protocol,
        /// The firewall mark the `fwmark` rule routes by.
        mark: u32,
    },
    /// `tcp flags & (syn|rst) == syn tcp option maxseg size > MSS counter tcp option maxseg
    /// size set MSS`, for forwarded packets.
    ClampMss {
        /// The largest MSS that fits the reply tunnel (its MTU less 40).
        mss: u16,
    },
    /// `ip protocol PROTO ip saddr != D1 ip saddr != D2 … counter drop`.
    Fence {
        /// The tunnel protocol.
        protocol: FencedProtocol,
        /// The directors, whose packets pass.
        directors: Vec<Ipv4Addr>,
    },
}

impl NftRuleSpec {
    /// The chain the rule lives in.
    pub(crate) fn chain(&self) -> NftChain {
        match self {
            NftRuleSpec::Dnat { .. } => NftChain::Dnat,
            NftRuleSpec::MarkReply { .. } => NftChain::MarkReplies,
            NftRuleSpec::Fence { .. } => NftChain::Fence,
            NftRuleSpec::ClampMss { .. } => NftChain::Clamp,
        }
    }

    /// The rule's comment: `tungate: ` and what it does (also its identity).
    pub(crate) fn comment(&self) -> String {
        match self {
            NftRuleSpec::Dnat {
                vip,
                port,
                protocol,
                to,
                to_port,
            } => format!(
                "tungate: dnat {} {vip}:{port} to {to}:{to_port}",
                protocol.as_str()
            ),
            NftRuleSpec::MarkReply {
                from,
                from_port,
                protocol,
                mark,
            } => format!(
                "tungate: mark {} replies from {from}:{from_port} with {mark:#x}",
                protocol.as_str()
            ),
            NftRuleSpec::ClampMss { mss } => {
                format!("tungate: clamp the mss of forwarded tcp syn to {mss}")
            }
            NftRuleSpec::Fence {
                protocol,
                directors,
            } => {
                let from: Vec<String> = directors.iter().map(|d| d.to_string()).collect();
                let from = if from.is_empty() {
                    "(no ipv4 director)".to_owned()
                } else {
                    from.join(",")
                };
                format!("tungate: drop {} not from {from}", protocol.as_str())
            }
        }
    }
}

/// One object tungate manages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Item {
    /// A tunnel device tungate owns.
    Tunnel(TunnelSpec),
    /// A fou/gue receive port tungate added (remembered in the state file).
    FouPort(FouPortSpec),
    /// The up/down state of a link tungate does not own.
    LinkState(LinkStateSpec),
    /// An address.
    Address(AddressSpec),
    /// A route.
    Route(RouteSpec),
    /// A rule.
    Rule(RuleSpec),
    /// A sysctl value.
    Sysctl(SysctlSpec),
    /// tungate's nftables table with its chains.
    NftTable(NftTableSpec),
    /// A rule in tungate's nftables table (identified by its comment).
    NftRule(NftRuleItem),
    /// The gateway's IPv6 forwarding guard: drops in prerouting what comes out of these
    /// tunnel devices (their decapsulated IPv6 packets, which tungate reads before that).
    Guard(GuardSpec),
    /// The real server's IPv6 tunnel fence: a table of its own, replaced whole.
    Fence6(Fence6Spec),
}

/// The real server's IPv6 fence, table `ip6 tungate_rs`: one rule per protocol that drops
/// it unless it comes from one of the IPv6 directors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fence6Spec {
    /// The tunnel protocols dropped unless from a director.
    pub(crate) protocols: Vec<FencedProtocol>,
    /// The IPv6 directors, whose packets pass.
    pub(crate) directors: Vec<Ipv6Addr>,
    /// Comments of rules found in the kernel that are not tungate's (observed only).
    pub(crate) foreign: Vec<String>,
}

impl Fence6Spec {
    /// The comment (and identity) of the rule for `protocol`.
    pub(crate) fn comment(&self, protocol: FencedProtocol) -> String {
        let from: Vec<String> = self.directors.iter().map(|d| d.to_string()).collect();
        let from = if from.is_empty() {
            "(no ipv6 director)".to_owned()
        } else {
            from.join(",")
        };
        format!(
            "tungate: drop ipv6 {} ({}) not from {from}",
            protocol.as_str6(),
            protocol.number()
        )
    }

    /// The rules' comments, in order.
    pub(crate) fn comments(&self) -> Vec<String> {
        let mut out: Vec<String> = self.protocols.iter().map(|p| self.comment(*p)).collect();
        out.extend(self.foreign.iter().cloned());
        out
    }
}

/// The IPv6 forwarding guard's table `ip6 tungate_guard`: one drop rule per device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GuardSpec {
    /// The tunnel devices guarded.
    pub(crate) devices: Vec<String>,
}

/// tungate's nftables table (`ip tungate_rs`) and the chains it has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NftTableSpec {
    /// Chains present (all of [`NftChain::ALL`] when desired).
    pub(crate) chains: Vec<String>,
}

/// A rule of tungate's nftables table: one the configuration wants, or one found in the
/// kernel (which only says where it is and what its comment is).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NftRuleItem {
    /// A rule the configuration wants.
    Wanted(NftRuleSpec),
    /// A rule read back from the kernel.
    Found(FoundNftRule),
}

/// A rule of tungate's nftables table as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FoundNftRule {
    /// The chain it is in.
    pub(crate) chain: String,
    /// Its kernel handle (what deleting it needs).
    pub(crate) handle: u64,
    /// Its comment (its identity; empty when it has none).
    pub(crate) comment: String,
}

impl NftRuleItem {
    /// The rule's comment (its identity).
    pub(crate) fn comment(&self) -> String {
        match self {
            NftRuleItem::Wanted(spec) => spec.comment(),
            NftRuleItem::Found(found) => found.comment.clone(),
        }
    }
}

impl Item {
    /// tungate's nftables table with the chains `chains` (in [`NftChain::ALL`] order).
    pub(crate) fn nft_table(chains: &[NftChain]) -> Item {
        Item::NftTable(NftTableSpec {
            chains: NftChain::ALL
                .iter()
                .filter(|c| chains.contains(c))
                .map(|c| c.name().to_owned())
                .collect(),
        })
    }

    /// A desired nftables rule.
    pub(crate) fn nft_rule(spec: NftRuleSpec) -> Item {
        Item::NftRule(NftRuleItem::Wanted(spec))
    }

    /// The identity of the kernel object: items with equal keys are the same object.
    pub(crate) fn key(&self) -> String {
        match self {
            Item::Tunnel(t) => format!("link {}", t.name),
            Item::FouPort(p) => format!("fou port {}", p.id()),
            Item::LinkState(l) => format!("link-state {}", l.name),
            Item::Address(a) => format!("address {}/{} dev {}", a.address, a.prefix, a.device),
            Item::Route(r) => format!("route {}/{} table {}", r.destination, r.prefix, r.table),
            Item::Rule(r) => format!("rule pref {} {}", r.priority, selector_text(r.selector)),
            Item::Sysctl(s) => format!("sysctl {}", s.dotted()),
            Item::NftTable(_) => format!("nft table ip {NFT_TABLE}"),
            Item::NftRule(rule) => format!("nft rule \"{}\"", rule.comment()),
            Item::Guard(_) => format!("nft table {GUARD_TABLE}"),
            Item::Fence6(_) => format!("nft table {FENCE6_TABLE}"),
        }
    }

    /// The order in which creations run (deletions run in the reverse order): links before
    /// what lives on them, the table before its rules.
    pub(crate) fn stage(&self) -> u8 {
        match self {
            // The guard first of all (it names devices, which need not exist yet): no
            // tunnel of tungate's is ever unguarded.
            Item::Guard(_) | Item::FouPort(_) | Item::Tunnel(_) => 0,
            Item::LinkState(_) => 1,
            Item::Sysctl(_) => 2,
            Item::Address(_) => 3,
            Item::Route(_) => 4,
            Item::Rule(_) => 5,
            Item::NftTable(_) | Item::Fence6(_) => 6,
            Item::NftRule(_) => 7,
        }
    }

    /// Whether two items with the same key mean the same thing.
    pub(crate) fn same_content(&self, other: &Item) -> bool {
        match (self, other) {
            (Item::Tunnel(a), Item::Tunnel(b)) => {
                a.name == b.name
                    && a.encap == b.encap
                    && a.local == b.local
                    && a.remote == b.remote
                    && a.up == b.up
                    && (a.mtu.is_none() || b.mtu.is_none() || a.mtu == b.mtu)
            }
            (Item::NftRule(a), Item::NftRule(b)) => a.comment() == b.comment(),
            (Item::Guard(a), Item::Guard(b)) => {
                let mut a = a.devices.clone();
                let mut b = b.devices.clone();
                a.sort_unstable();
                b.sort_unstable();
                a == b
            }
            (Item::Fence6(a), Item::Fence6(b)) => a.comments() == b.comments(),
            (Item::NftTable(a), Item::NftTable(b)) => {
                let mut a = a.chains.clone();
                let mut b = b.chains.clone();
                a.sort_unstable();
                b.sort_unstable();
                a == b
            }
            (a, b) => a == b,
        }
    }
}

fn selector_text(selector: RuleSelector) -> String {
    match selector {
        RuleSelector::From(addr) => format!("from {addr}"),
        RuleSelector::FwMark(mark) => format!("fwmark {mark:#x}"),
    }
}

impl fmt::Display for Item {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Item::Tunnel(t) => {
                write!(
                    f,
                    "link {} {} local {} remote {}",
                    t.name, t.encap, t.local, t.remote
                )?;
                if let Some(mtu) = t.mtu {
                    write!(f, " mtu {mtu}")?;
                }
                f.write_str(if t.up { " up" } else { " down" })
            }
            Item::FouPort(p) => p.fmt(f),
            Item::LinkState(l) => {
                write!(f, "link {} {}", l.name, if l.up { "up" } else { "down" })
            }
            Item::Address(a) => write!(f, "address {}/{} dev {}", a.address, a.prefix, a.device),
            Item::Route(r) => write!(
                f,
                "route {}/{} dev {} table {}",
                r.destination, r.prefix, r.device, r.table
            ),
            Item::Rule(r) => write!(
                f,
                "rule pref {} {} lookup {}",
                r.priority,
                selector_text(r.selector),
                r.table
            ),
            Item::Sysctl(s) => write!(f, "sysctl {} = {}", s.dotted(), s.value),
            Item::NftTable(table) => {
                write!(
                    f,
                    "nft table ip {NFT_TABLE} chains {}",
                    table.chains.join(",")
                )
            }
            Item::NftRule(rule) => write!(f, "nft rule \"{}\"", rule.comment()),
            Item::Guard(g) => write!(
                f,
                "nft table {GUARD_TABLE} drop ipv6 arriving on {} in prerouting",
                g.devices.join(",")
            ),
            Item::Fence6(fence) => write!(
                f,
                "nft table {FENCE6_TABLE} chain fence: {}",
                fence.comments().join("; ")
            ),
        }
    }
}

/// Everything one role wants in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DesiredState {
    /// The role the objects belong to (decides the link alias).
    pub(crate) role: Role,
    /// The objects.
    pub(crate) items: Vec<Item>,
}

impl DesiredState {
    /// Nothing at all: planning against it lists what `down` removes.
    pub(crate) fn empty(role: Role) -> Self {
        Self {
            role,
            items: Vec::new(),
        }
    }

    /// Names of the links this state creates (their per-device sysctls need no restoring).
    pub(crate) fn tunnel_names(&self) -> Vec<&str> {
        self.items
            .iter()
            .filter_map(|i| match i {
                Item::Tunnel(t) => Some(t.name.as_str()),
                _ => None,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_lines_read_like_ip_commands() {
        let route = Item::Route(RouteSpec {
            table: 1,
            destination: Ipv4Addr::UNSPECIFIED.into(),
            prefix: 0,
            device: "tunl1".into(),
        });
        assert_eq!(route.key(), "route 0.0.0.0/0 table 1");
        assert_eq!(route.to_string(), "route 0.0.0.0/0 dev tunl1 table 1");
        let rule = Item::Rule(RuleSpec {
            priority: 1000,
            selector: RuleSelector::From(Ipv4Addr::new(192, 0, 2, 10).into()),
            table: 1,
        });
        assert_eq!(rule.to_string(), "rule pref 1000 from 192.0.2.10 lookup 1");
        let mark = Item::Rule(RuleSpec {
            priority: 1000,
            selector: RuleSelector::FwMark(0x7467),
            table: 1,
        });
        assert_eq!(mark.key(), "rule pref 1000 fwmark 0x7467");
        let sysctl = Item::Sysctl(SysctlSpec::ipv4_conf("eth0.100", "rp_filter", "2"));
        assert_eq!(
            sysctl.to_string(),
            "sysctl net.ipv4.conf.eth0/100.rp_filter = 2"
        );
        let tunnel = Item::Tunnel(TunnelSpec {
            name: "tg-rs1".into(),
            encap: TunnelEncap::Ipip,
            local: Ipv4Addr::new(10, 0, 0, 1).into(),
            remote: Ipv4Addr::new(10, 0, 1, 2).into(),
            mtu: Some(1480),
            up: true,
        });
        assert_eq!(
            tunnel.to_string(),
            "link tg-rs1 ipip local 10.0.0.1 remote 10.0.1.2 mtu 1480 up"
        );
    }

    #[test]
    fn tunnel_mtu_is_compared_only_when_both_sides_know_it() {
        let a = TunnelSpec {
            name: "t".into(),
            encap: TunnelEncap::Ipip,
            local: Ipv4Addr::new(10, 0, 0, 1).into(),
            remote: Ipv4Addr::new(10, 0, 1, 2).into(),
            mtu: Some(1480),
            up: true,
        };
        let unknown = TunnelSpec {
            mtu: None,
            ..a.clone()
        };
        let other = TunnelSpec {
            mtu: Some(1400),
            ..a.clone()
        };
        assert!(Item::Tunnel(a.clone()).same_content(&Item::Tunnel(unknown)));
        assert!(!Item::Tunnel(a.clone()).same_content(&Item::Tunnel(other)));
        let down = TunnelSpec {
            up: false,
            ..a.clone()
        };
        assert!(!Item::Tunnel(a).same_content(&Item::Tunnel(down)));
    }

    #[test]
    fn nft_comments_spell_out_the_rule() {
        let dnat = NftRuleSpec::Dnat {
            vip: Ipv4Addr::new(192, 0, 2, 10),
            port: 80,
            protocol: L4Protocol::Tcp,
            to: Ipv4Addr::new(10, 88, 0, 2),
            to_port: 8080,
        };
        assert_eq!(
            dnat.comment(),
            "tungate: dnat tcp 192.0.2.10:80 to 10.88.0.2:8080"
        );
        assert_eq!(dnat.chain().name(), "dnat");
    }
}
