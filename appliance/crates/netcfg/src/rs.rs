//! The real-server role (`tungate rs`): what a real server needs so that its replies go to
//! the gateway through an ipip tunnel instead of straight to the clients.
//!
//! From the settings (a small TOML file and/or flags, flags winning): the reply tunnel
//! (default `tunl1`, local RIP, remote GIP — any name but `tunl0`, which is the ipip
//! module's fallback device that receives the LD-IN's tunnelled requests), `default dev
//! <tunnel> table N`, `rule from VIP lookup N` per VIP, each VIP on the VIP device (default
//! `tunl0`, or `lo`), the ingress device (`tunl0`) up with `rp_filter=2` (loose: the reply
//! route of a VIP is the tunnel, not the device the request came in on; loose also wins
//! against a strict `conf.all.rp_filter`, since the kernel uses the larger value),
//! `arp_ignore=1` and `arp_announce=2` on `all` (the VIP is never announced on the LAN), and
//! for each DNAT entry an nftables DNAT of VIP:port to a container plus a mark on the
//! container's replies that a `fwmark` rule routes into the tunnel (the un-NAT back to the
//! VIP is conntrack's, in POSTROUTING). DNAT also needs `ip_forward=1`, which is set (and
//! restored by `down`) only when there are DNAT entries.
//!
//! The reply tunnel has the type the gateway expects of this server (`tunnel`, `port`,
//! `key`, the names of the gateway's `peers[]` keys): `ipip`; `ipip` with `encap gue|fou
//! encap-sport auto encap-dport PORT` (each flow its own UDP source port, for ECMP and
//! RSS); `gre` (`key KEY` when keyed). Its MTU is the MTU of the device towards the gateway
//! less the type's overhead (IPIP 20, FOU 28, GUE 32, GRE 24 or 28 with a key); locally
//! answered TCP takes its MSS from that route, and with DNAT entries a rule of tungate's
//! table clamps the MSS of forwarded TCP SYNs (the containers' connections) to the tunnel
//! MTU less 40. With `directors` (of either family), tungate's table also
//! holds a fence in prerouting (priority raw): IPIP (and GRE, for a GRE reply tunnel, and
//! 6in4 when IPv6 VIPs over IPv4 bring `sit0` up) from any source but the IPv4 directors is
//! counted and dropped without an answer (CVE-2020-10136: `tunl0` accepts IPIP from anyone). When the server has an IPv6
//! underlay or an IPv6 director, a second table `ip6 tungate_rs` (`kernel::fence6`) does the
//! same for IPv6: ip6ip6 (41) and 4in6 (4), and GRE for a GRE reply tunnel, from any source
//! but the IPv6 directors (`ip6tnl0` accepts ip6ip6 and 4in6 from anyone).
//!
//! This module builds the desired state; it reads the kernel only for the MTU of the
//! device towards the gateway and never changes it.

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::NetError;
use crate::kernel::{links, routes};
use crate::model::{
    DesiredState, Fence6Spec, FencedProtocol, InnerFamilies, Item, L4Protocol, LinkStateSpec,
    NftChain, NftRuleSpec, Role, RouteSpec, RuleSelector, RuleSpec, SysctlSpec, TunnelEncap,
    TunnelSpec,
};
use tungate_config::TunnelKind;
use tungate_config::validate::{FieldError, Invalid, is_valid_interface_name};

/// Default routing table of the replies.
pub(crate) const DEFAULT_TABLE: u32 = 1;
/// Default priority of tungate's rules (before the `main` table's 32766).
pub(crate) const DEFAULT_RULE_PRIORITY: u32 = 1000;
/// Default name of the reply tunnel.
pub(crate) const DEFAULT_REPLY_TUNNEL: &str = "tunl1";
/// The ipip fallback device, where tunnelled requests arrive.
pub(crate) const IPIP_FALLBACK: &str = "tunl0";
/// The ip6_tunnel fallback device, where ip6ip6 (and 4in6) requests arrive.
pub(crate) const IP6TNL_FALLBACK: &str = "ip6tnl0";
/// The sit fallback device, where IPv6-in-IPv4 requests arrive.
pub(crate) const SIT_FALLBACK: &str = "sit0";
/// The IPv4 and TCP headers (without options) that an MSS leaves out of the MTU.
const TCP_IP_HEADERS: u32 = 40;
/// Default firewall mark of the containers' replies ("tg").
pub(crate) const DEFAULT_REPLY_MARK: u32 = 0x7467;

/// One DNAT entry: VIP:port → container address:port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DnatEntry {
    /// The VIP (one of `vips`).
    pub vip: Ipv4Addr,
    /// The VIP's port.
    pub port: u16,
    /// `tcp` (default) or `udp`.
    #[serde(default = "default_protocol")]
    pub protocol: L4Protocol,
    /// The container's address.
    pub to: Ipv4Addr,
    /// The container's port (default: `port`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_port: Option<u16>,
}

fn default_protocol() -> L4Protocol {
    L4Protocol::Tcp
}

impl std::str::FromStr for DnatEntry {
    type Err = String;

    /// Parses `VIP:PORT=ADDRESS[:PORT][/tcp|/udp]`.
    fn from_str(text: &str) -> Result<Self, String> {
        let usage = || {
            format!(
                "{text:?}: expected VIP:PORT=ADDRESS[:PORT][/tcp|/udp], e.g. 192.0.2.10:80=10.88.0.2:8080"
            )
        };
        let (body, protocol) = match text.rsplit_once('/') {
            Some((body, "tcp")) => (body, L4Protocol::Tcp),
            Some((body, "udp")) => (body, L4Protocol::Udp),
            Some(_) => return Err(usage()),
            None => (text, L4Protocol::Tcp),
        };
        let (from, to) = body.split_once('=').ok_or_else(usage)?;
        let (vip, port) = from.split_once(':').ok_or_else(usage)?;
        let (to, to_port) = match to.split_once(':') {
            Some((addr, port)) => (addr, Some(port.parse().map_err(|_| usage())?)),
            None => (to, None),
        };
        Ok(DnatEntry {
            vip: vip.parse().map_err(|_| usage())?,
            port: port.parse().map_err(|_| usage())?,
            protocol,
            to: to.parse().map_err(|_| usage())?,
            to_port,
        })
    }
}

/// The real server's settings as a file or the flags give them; every field is optional
/// here so that flags can fill in or override a file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RsSettings {
    /// The gateway's address (GIP, or its IPv6 address): the reply tunnel's remote end.
    pub gateway: Option<IpAddr>,
    /// This real server's address (RIP), of the gateway's family: the reply tunnel's
    /// local end.
    pub address: Option<IpAddr>,
    /// The VIPs this server answers for (IPv4 or IPv6).
    pub vips: Option<Vec<IpAddr>>,
    /// Routing table of the replies (default 1).
    pub table: Option<u32>,
    /// Priority of the rules (default 1000).
    pub rule_priority: Option<u32>,
    /// Device the VIPs are put on (default `tunl0`; `lo` also works).
    pub vip_device: Option<String>,
    /// Device the tunnelled requests arrive on (default `tunl0`).
    pub ingress_device: Option<String>,
    /// Name of the reply tunnel (default `tunl1`).
    pub reply_tunnel: Option<String>,
    /// `false`: the reply device exists already and is not tungate's to create (default true).
    pub create_reply_tunnel: Option<bool>,
    /// Firewall mark of DNAT'd replies (default 0x7467).
    pub reply_mark: Option<u32>,
    /// DNAT entries.
    pub dnat: Option<Vec<DnatEntry>>,
    /// The reply tunnel's type: `ipip` (default), `gue`, `fou` or `gre` (the gateway's
    /// `peers[].tunnel` for this server).
    pub tunnel: Option<TunnelKind>,
    /// The UDP destination port of a `gue` (default 6080) or `fou` (required) reply tunnel.
    pub port: Option<u16>,
    /// The GRE key of a `gre` reply tunnel.
    pub key: Option<u32>,
    /// The directors (LD-IN, IPv4 or IPv6) whose tunnel packets this server accepts; when
    /// given, tunnel packets from anyone else are dropped silently (CVE-2020-10136).
    pub directors: Option<Vec<IpAddr>>,
}

impl RsSettings {
    /// Reads a settings file (TOML).
    pub(crate) fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        toml::from_str(&text)
            .map_err(|e| format!("{}: {}", path.display(), e.to_string().trim_end()))
    }

    /// `self` with every field that `flags` sets taken from `flags`.
    pub(crate) fn overridden_by(self, flags: RsSettings) -> RsSettings {
        RsSettings {
            gateway: flags.gateway.or(self.gateway),
            address: flags.address.or(self.address),
            vips: flags.vips.or(self.vips),
            table: flags.table.or(self.table),
            rule_priority: flags.rule_priority.or(self.rule_priority),
            vip_device: flags.vip_device.or(self.vip_device),
            ingress_device: flags.ingress_device.or(self.ingress_device),
            reply_tunnel: flags.reply_tunnel.or(self.reply_tunnel),
            create_reply_tunnel: flags.create_reply_tunnel.or(self.create_reply_tunnel),
            reply_mark: flags.reply_mark.or(self.reply_mark),
            dnat: flags.dnat.or(self.dnat),
            tunnel: flags.tunnel.or(self.tunnel),
            port: flags.port.or(self.port),
            key: flags.key.or(self.key),
            directors: flags.directors.or(self.directors),
        }
    }

    /// Checks the settings and fills in the defaults.
    pub(crate) fn resolve(self) -> Result<RsConfig, Invalid> {
        let mut problems = Vec::new();
        let mut problem = |field: &str, message: String| {
            problems.push(FieldError {
                field: field.into(),
                message,
            })
        };
        let unicast = |a: IpAddr| {
            !(a.is_unspecified()
                || a.is_multicast()
                || matches!(a, IpAddr::V4(v4) if v4.is_broadcast()))
        };
        let unicast4 = |a: Ipv4Addr| unicast(a.into());
        let gateway = self.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED.into());
        let address = self.address.unwrap_or(Ipv4Addr::UNSPECIFIED.into());
        if self.gateway.is_none() {
            problem(
                "gateway",
                "missing: give the gateway's address (--gateway GIP)".into(),
            );
        } else if !unicast(gateway) {
            problem("gateway", format!("{gateway} is not a unicast address"));
        }
        if self.address.is_none() {
            problem(
                "address",
                "missing: give this real server's address (--address RIP)".into(),
            );
        } else if !unicast(address) {
            problem("address", format!("{address} is not a unicast address"));
        } else if address == gateway {
            problem(
                "address",
                format!("{address} is also the gateway's address"),
            );
        } else if self.gateway.is_some() && address.is_ipv4() != gateway.is_ipv4() {
            problem(
                "address",
                format!(
                    "{address} and the gateway's {gateway} are of two families: the reply \
                     tunnel's ends are both IPv4 or both IPv6"
                ),
            );
        }
        let vips = self.vips.unwrap_or_default();
        if vips.is_empty() {
            problem("vips", "missing: give at least one VIP (--vip VIP)".into());
        }
        let mut seen = HashSet::new();
        for (i, vip) in vips.iter().enumerate() {
            if !unicast(*vip) {
                problem(
                    &format!("vips[{i}]"),
                    format!("{vip} is not a unicast address"),
                );
            } else if !seen.insert(*vip) {
                problem(&format!("vips[{i}]"), format!("{vip} is listed twice"));
            }
        }
        let table = self.table.unwrap_or(DEFAULT_TABLE);
        if matches!(table, 0 | 253..=255) {
            problem(
                "table",
                format!(
                    "{table} is reserved (0 unspec, 253 default, 254 main, 255 local): pick another"
                ),
            );
        }
        let rule_priority = self.rule_priority.unwrap_or(DEFAULT_RULE_PRIORITY);
        if rule_priority == 0 || rule_priority >= 32766 {
            problem(
                "rule_priority",
                format!("{rule_priority} must be between 1 and 32765 (before the main table)"),
            );
        }
        let vip_device = self.vip_device.unwrap_or_else(|| IPIP_FALLBACK.into());
        let ingress_device = self.ingress_device.unwrap_or_else(|| IPIP_FALLBACK.into());
        let reply_tunnel = self
            .reply_tunnel
            .unwrap_or_else(|| DEFAULT_REPLY_TUNNEL.into());
        let create_reply_tunnel = self.create_reply_tunnel.unwrap_or(true);
        for (field, name) in [
            ("vip_device", &vip_device),
            ("ingress_device", &ingress_device),
            ("reply_tunnel", &reply_tunnel),
        ] {
            if !is_valid_interface_name(name) {
                problem(field, format!("{name:?} is not a valid interface name"));
            }
        }
        if create_reply_tunnel && reply_tunnel == IPIP_FALLBACK {
            problem(
                "reply_tunnel",
                "tunl0 is the ipip module's fallback device (it receives the requests); name the \
                 reply tunnel differently, e.g. tunl1"
                    .into(),
            );
        }
        if reply_tunnel == vip_device || reply_tunnel == ingress_device {
            problem(
                "reply_tunnel",
                format!(
                    "{reply_tunnel:?} is also the VIP or ingress device; the replies need their own tunnel"
                ),
            );
        }
        let reply_mark = self.reply_mark.unwrap_or(DEFAULT_REPLY_MARK);
        let dnat = self.dnat.unwrap_or_default();
        if !dnat.is_empty() && reply_mark == 0 {
            problem(
                "reply_mark",
                "0 cannot mark anything: give a non-zero mark".into(),
            );
        }
        let mut entries = HashSet::new();
        for (i, entry) in dnat.iter().enumerate() {
            if !seen.contains(&IpAddr::V4(entry.vip)) {
                problem(
                    &format!("dnat[{i}].vip"),
                    format!("{} is not one of the VIPs", entry.vip),
                );
            }
            if entry.port == 0 || entry.to_port == Some(0) {
                problem(&format!("dnat[{i}]"), "port 0 cannot be forwarded".into());
            }
            if !unicast4(entry.to) {
                problem(
                    &format!("dnat[{i}].to"),
                    format!("{} is not a unicast address", entry.to),
                );
            }
            if !entries.insert((entry.vip, entry.port, entry.protocol)) {
                problem(
                    &format!("dnat[{i}]"),
                    format!(
                        "{} {}:{} is forwarded twice",
                        entry.protocol.as_str(),
                        entry.vip,
                        entry.port
                    ),
                );
            }
        }
        let tunnel = self.tunnel.unwrap_or_default();
        let kind = tunnel.as_str();
        if !tunnel.is_udp() && self.port.is_some() {
            problem(
                "port",
                format!(
                    "tunnel = {kind:?} has no UDP port: port applies to \"gue\" and \"fou\" only"
                ),
            );
        }
        if tunnel == TunnelKind::Fou && self.port.is_none() {
            problem(
                "port",
                "tunnel = \"fou\" needs the gateway's UDP port (--port)".into(),
            );
        }
        if self.port == Some(0) {
            problem("port", "0 is not a UDP port: give 1 to 65535".into());
        }
        if tunnel != TunnelKind::Gre && self.key.is_some() {
            problem(
                "key",
                format!("tunnel = {kind:?} has no key: key applies to \"gre\" only"),
            );
        }
        if gateway.is_ipv6() && tunnel != TunnelKind::Ipip {
            problem(
                "tunnel",
                format!(
                    "an IPv6 gateway gets an ip6tnl reply tunnel (tunnel = \"ipip\": ip6ip6, \
                     4in6); tunnel = {kind:?} over IPv6 is not built by tungate rs"
                ),
            );
        } else if tunnel.is_udp() && vips.iter().any(IpAddr::is_ipv6) {
            problem(
                "tunnel",
                format!(
                    "tunnel = {kind:?} does not carry IPv6 VIPs here: use \"ipip\" (a sit \
                     reply tunnel, 6in4) or \"gre\""
                ),
            );
        }
        let directors = self.directors.unwrap_or_default();
        let mut seen_directors = HashSet::new();
        for (i, director) in directors.iter().enumerate() {
            if !unicast(*director) {
                problem(
                    &format!("directors[{i}]"),
                    format!("{director} is not a unicast address"),
                );
            } else if !seen_directors.insert(*director) {
                problem(
                    &format!("directors[{i}]"),
                    format!("{director} is listed twice"),
                );
            }
        }
        if !problems.is_empty() {
            return Err(Invalid(problems));
        }
        let encap = reply_encap(gateway, &vips, tunnel, self.port, self.key);
        Ok(RsConfig {
            gateway,
            address,
            vips,
            table,
            rule_priority,
            vip_device,
            ingress_device,
            reply_tunnel,
            create_reply_tunnel,
            reply_mark,
            dnat,
            encap,
            directors,
        })
    }
}

/// The reply tunnel's device: `ip6tnl` towards an IPv6 gateway (mode ip6ip6, ipip6 — 4in6
/// — or any, as the VIPs' families need), `sit` (6in4) for `ipip` with IPv6 VIPs towards an
/// IPv4 gateway, else the device of `tunnel` (the gateway builds the same in `kernel`
/// decap).
fn reply_encap(
    gateway: IpAddr,
    vips: &[IpAddr],
    tunnel: TunnelKind,
    port: Option<u16>,
    key: Option<u32>,
) -> TunnelEncap {
    let inner = InnerFamilies::of(vips);
    if gateway.is_ipv6() {
        TunnelEncap::Ip6Tnl { inner }
    } else if tunnel == TunnelKind::Ipip && vips.iter().any(IpAddr::is_ipv6) {
        TunnelEncap::Sit { inner }
    } else {
        TunnelEncap::of(tunnel, port, key)
    }
}

/// Checked real-server settings with the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RsConfig {
    /// GIP (or the gateway's IPv6 address).
    pub gateway: IpAddr,
    /// RIP, of the gateway's family.
    pub address: IpAddr,
    /// The VIPs.
    pub vips: Vec<IpAddr>,
    /// Routing table of the replies.
    pub table: u32,
    /// Priority of the rules.
    pub rule_priority: u32,
    /// Device the VIPs are on.
    pub vip_device: String,
    /// Device the requests arrive on.
    pub ingress_device: String,
    /// The reply tunnel.
    pub reply_tunnel: String,
    /// Whether tungate creates the reply tunnel.
    pub create_reply_tunnel: bool,
    /// Mark of DNAT'd replies.
    pub reply_mark: u32,
    /// DNAT entries.
    pub dnat: Vec<DnatEntry>,
    /// The reply tunnel's type and encapsulation.
    pub(crate) encap: TunnelEncap,
    /// The directors whose tunnel packets are accepted, of either family (empty: no fence).
    pub directors: Vec<IpAddr>,
}

/// The desired state of a real server, with the MTU that [`desired`] needs read from the
/// kernel: of the device towards the gateway (tungate builds the reply tunnel), or of the
/// existing reply device.
pub(crate) async fn desired_from_kernel(
    handle: &rtnetlink::Handle,
    config: &RsConfig,
) -> Result<DesiredState, NetError> {
    let all = links::list(handle).await?;
    let mtu = if config.create_reply_tunnel {
        match routes::output_interface_toward(handle, config.gateway).await {
            Some(index) => all.iter().find(|l| l.index == index).and_then(|l| l.mtu),
            None => None,
        }
    } else {
        all.iter()
            .find(|l| l.name == config.reply_tunnel)
            .and_then(|l| l.mtu)
    };
    Ok(desired(config, mtu))
}

/// The tunnel packets the fence drops unless they come from a director: IPIP (what the
/// directors send, and what the `ipip` module's `tunl0` accepts from anyone), and GRE when
/// the reply tunnel is GRE (the `ip_gre` module then brings up `gre0`, which accepts GRE
/// from anyone too).
fn fenced(encap: TunnelEncap) -> Vec<FencedProtocol> {
    let mut out = vec![FencedProtocol::Ipip];
    if matches!(encap, TunnelEncap::Gre { .. }) {
        out.push(FencedProtocol::Gre);
    }
    out
}

/// The IPv6 fence, when the server has an IPv6 underlay (its `ip6tnl0` is up) or an IPv6
/// director: ip6ip6 and 4in6 (what `ip6tnl0` accepts from anyone), and GRE when the IPv4
/// fence covers GRE, from anyone but the IPv6 directors.
fn fence6(config: &RsConfig) -> Option<Fence6Spec> {
    let directors: Vec<Ipv6Addr> = config
        .directors
        .iter()
        .filter_map(|d| match d {
            IpAddr::V6(v6) => Some(*v6),
            IpAddr::V4(_) => None,
        })
        .collect();
    if config.directors.is_empty() || (config.address.is_ipv4() && directors.is_empty()) {
        return None;
    }
    let mut protocols = vec![FencedProtocol::Ip6ip6];
    protocols.extend(fenced(config.encap));
    Some(Fence6Spec {
        protocols,
        directors,
        foreign: Vec::new(),
    })
}

/// The desired state of a real server. `device_mtu` (`None`: unknown): when tungate builds
/// the reply tunnel, the MTU of the device towards the gateway, which less the tunnel's
/// overhead is the tunnel's MTU; with an existing reply device, that device's MTU. The
/// MSS clamp (with DNAT) is the reply MTU less 40.
pub(crate) fn desired(config: &RsConfig, device_mtu: Option<u32>) -> DesiredState {
    let reply_mtu = if config.create_reply_tunnel {
        device_mtu.map(|m| m.saturating_sub(config.encap.overhead()))
    } else {
        device_mtu
    };
    let mut items = Vec::new();
    if config.create_reply_tunnel {
        items.push(Item::Tunnel(TunnelSpec {
            name: config.reply_tunnel.clone(),
            encap: config.encap,
            local: config.address,
            remote: config.gateway,
            mtu: reply_mtu,
            up: true,
        }));
    } else {
        items.push(Item::LinkState(LinkStateSpec {
            name: config.reply_tunnel.clone(),
            up: true,
        }));
    }
    let has_v4 = config.vips.iter().any(IpAddr::is_ipv4);
    let has_v6 = config.vips.iter().any(IpAddr::is_ipv6);
    // IPv4 VIPs arrive over IPIP on the ingress device (tunl0) and live on the VIP device,
    // as they always did; over an IPv6 underlay the requests arrive on the ip6_tunnel
    // module's fallback device instead, and IPv6 inside IPv4 on sit's.
    // A named ingress device (not the default tunl0) is used as it is for every family.
    let named = (config.ingress_device != IPIP_FALLBACK).then_some(config.ingress_device.as_str());
    let ip6tnl_ingress = named.unwrap_or(IP6TNL_FALLBACK);
    let mut up_devices = Vec::new();
    if config.address.is_ipv4() && has_v4 {
        up_devices.push(config.ingress_device.clone());
    }
    if config.address.is_ipv6() {
        up_devices.push(ip6tnl_ingress.to_owned());
    } else if has_v6 {
        up_devices.push(named.unwrap_or(SIT_FALLBACK).to_owned());
    }
    up_devices.dedup();
    if has_v4 && config.vip_device != "lo" && !up_devices.contains(&config.vip_device) {
        up_devices.push(config.vip_device.clone());
    }
    for name in &up_devices {
        items.push(Item::LinkState(LinkStateSpec {
            name: name.clone(),
            up: true,
        }));
    }
    if has_v4 {
        let ingress = if config.address.is_ipv4() {
            config.ingress_device.as_str()
        } else {
            ip6tnl_ingress
        };
        items.push(Item::Sysctl(SysctlSpec::ipv4_conf(
            ingress,
            "rp_filter",
            "2",
        )));
        items.push(Item::Sysctl(SysctlSpec::ipv4_conf(
            "all",
            "arp_ignore",
            "1",
        )));
        items.push(Item::Sysctl(SysctlSpec::ipv4_conf(
            "all",
            "arp_announce",
            "2",
        )));
    }
    for vip in &config.vips {
        // An IPv6 VIP goes on lo: IPv6 has no ARP to hide it from, and the kernel answers
        // neighbour solicitations only for the addresses of the receiving interface.
        let (device, prefix) = match vip {
            IpAddr::V4(_) => (config.vip_device.clone(), 32),
            IpAddr::V6(_) => ("lo".to_owned(), 128),
        };
        items.push(Item::Address(crate::model::AddressSpec {
            device,
            address: *vip,
            prefix,
        }));
    }
    for (present, default) in [
        (has_v4, IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
        (has_v6, IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED)),
    ] {
        if present {
            items.push(Item::Route(RouteSpec {
                table: config.table,
                destination: default,
                prefix: 0,
                device: config.reply_tunnel.clone(),
            }));
        }
    }
    for vip in &config.vips {
        items.push(Item::Rule(RuleSpec {
            priority: config.rule_priority,
            selector: RuleSelector::From(*vip),
            table: config.table,
        }));
    }
    // Only the chains in use: an (even empty) nat chain makes conntrack track everything.
    let mut chains = Vec::new();
    if !config.dnat.is_empty() {
        chains.extend([NftChain::Dnat, NftChain::MarkReplies, NftChain::Clamp]);
    }
    if !config.directors.is_empty() {
        chains.push(NftChain::Fence);
    }
    if !chains.is_empty() {
        items.push(Item::nft_table(&chains));
    }
    if !config.directors.is_empty() {
        let directors: Vec<Ipv4Addr> = config
            .directors
            .iter()
            .filter_map(|d| match d {
                IpAddr::V4(v4) => Some(*v4),
                IpAddr::V6(_) => None,
            })
            .collect();
        let mut protocols = fenced(config.encap);
        if config.address.is_ipv4() && config.vips.iter().any(IpAddr::is_ipv6) {
            // IPv6 VIPs over IPv4 bring up sit0, which takes 6in4 from anyone.
            protocols.push(FencedProtocol::Ip6ip6);
        }
        for protocol in protocols {
            items.push(Item::nft_rule(NftRuleSpec::Fence {
                protocol,
                directors: directors.clone(),
            }));
        }
    }
    if let Some(spec) = fence6(config) {
        items.push(Item::Fence6(spec));
    }
    if !config.dnat.is_empty()
        && let Some(mtu) = reply_mtu
    {
        items.push(Item::nft_rule(NftRuleSpec::ClampMss {
            mss: u16::try_from(mtu.saturating_sub(TCP_IP_HEADERS)).unwrap_or(u16::MAX),
        }));
    }
    if !config.dnat.is_empty() {
        items.push(Item::Sysctl(SysctlSpec {
            path: "net/ipv4/ip_forward".into(),
            value: "1".into(),
        }));
        items.push(Item::Rule(RuleSpec {
            priority: config.rule_priority,
            selector: RuleSelector::FwMark(config.reply_mark),
            table: config.table,
        }));
        for entry in &config.dnat {
            let to_port = entry.to_port.unwrap_or(entry.port);
            items.push(Item::nft_rule(NftRuleSpec::Dnat {
                vip: entry.vip,
                port: entry.port,
                protocol: entry.protocol,
                to: entry.to,
                to_port,
            }));
            items.push(Item::nft_rule(NftRuleSpec::MarkReply {
                from: entry.to,
                from_port: to_port,
                protocol: entry.protocol,
                mark: config.reply_mark,
            }));
        }
    }
    DesiredState {
        role: Role::RealServer,
        items,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> RsSettings {
        RsSettings {
            gateway: Some(Ipv4Addr::new(10, 0, 0, 1).into()),
            address: Some(Ipv4Addr::new(10, 0, 1, 2).into()),
            vips: Some(vec![Ipv4Addr::new(192, 0, 2, 10).into()]),
            ..Default::default()
        }
    }

    #[test]
    fn defaults_give_the_seed_setup() {
        let state = desired(&base().resolve().unwrap(), None);
        let lines: Vec<String> = state.items.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            lines,
            [
                "link tunl1 ipip local 10.0.1.2 remote 10.0.0.1 up",
                "link tunl0 up",
                "sysctl net.ipv4.conf.tunl0.rp_filter = 2",
                "sysctl net.ipv4.conf.all.arp_ignore = 1",
                "sysctl net.ipv4.conf.all.arp_announce = 2",
                "address 192.0.2.10/32 dev tunl0",
                "route 0.0.0.0/0 dev tunl1 table 1",
                "rule pref 1000 from 192.0.2.10 lookup 1",
            ]
        );
    }

    #[test]
    fn dnat_adds_forwarding_a_mark_rule_and_the_nft_table() {
        let settings = RsSettings {
            dnat: Some(vec!["192.0.2.10:80=10.88.0.2:8080".parse().unwrap()]),
            vip_device: Some("lo".into()),
            ..base()
        };
        let state = desired(&settings.resolve().unwrap(), None);
        let lines: Vec<String> = state.items.iter().map(|i| i.to_string()).collect();
        for expected in [
            "address 192.0.2.10/32 dev lo",
            "sysctl net.ipv4.ip_forward = 1",
            "rule pref 1000 fwmark 0x7467 lookup 1",
            "nft table ip tungate_rs chains dnat,mark_replies,clamp",
            "nft rule \"tungate: dnat tcp 192.0.2.10:80 to 10.88.0.2:8080\"",
            "nft rule \"tungate: mark tcp replies from 10.88.0.2:8080 with 0x7467\"",
        ] {
            assert!(
                lines.iter().any(|l| l == expected),
                "{expected} not in {lines:#?}"
            );
        }
    }

    #[test]
    fn each_reply_tunnel_type_gets_its_device_and_its_overhead_off_the_mtu() {
        for (tunnel, port, key, line) in [
            (
                TunnelKind::Gue,
                None,
                None,
                "link tunl1 ipip encap gue encap-sport auto encap-dport 6080 local 10.0.1.2 \
                 remote 10.0.0.1 mtu 1468 up",
            ),
            (
                TunnelKind::Fou,
                Some(5555),
                None,
                "link tunl1 ipip encap fou encap-sport auto encap-dport 5555 local 10.0.1.2 \
                 remote 10.0.0.1 mtu 1472 up",
            ),
            (
                TunnelKind::Gre,
                None,
                None,
                "link tunl1 gre local 10.0.1.2 remote 10.0.0.1 mtu 1476 up",
            ),
            (
                TunnelKind::Gre,
                None,
                Some(7),
                "link tunl1 gre key 7 local 10.0.1.2 remote 10.0.0.1 mtu 1472 up",
            ),
            (
                TunnelKind::Ipip,
                None,
                None,
                "link tunl1 ipip local 10.0.1.2 remote 10.0.0.1 mtu 1480 up",
            ),
        ] {
            let settings = RsSettings {
                tunnel: Some(tunnel),
                port,
                key,
                ..base()
            };
            let state = desired(&settings.resolve().unwrap(), Some(1500));
            assert_eq!(state.items[0].to_string(), line);
        }
    }

    #[test]
    fn directors_fence_ipip_and_a_gre_reply_tunnels_gre_from_everyone_else() {
        let settings = RsSettings {
            directors: Some(vec![
                Ipv4Addr::new(10, 0, 0, 2).into(),
                Ipv4Addr::new(10, 0, 0, 3).into(),
            ]),
            tunnel: Some(TunnelKind::Gre),
            ..base()
        };
        let state = desired(&settings.resolve().unwrap(), None);
        let lines: Vec<String> = state.items.iter().map(|i| i.to_string()).collect();
        let nft: Vec<&String> = lines.iter().filter(|l| l.starts_with("nft")).collect();
        assert_eq!(
            nft,
            [
                "nft table ip tungate_rs chains fence",
                "nft rule \"tungate: drop ipip not from 10.0.0.2,10.0.0.3\"",
                "nft rule \"tungate: drop gre not from 10.0.0.2,10.0.0.3\"",
            ]
        );
        assert!(
            !lines.iter().any(|l| l.contains("ip_forward")),
            "{lines:#?}"
        );
        let ipip_only = RsSettings {
            directors: Some(vec![Ipv4Addr::new(10, 0, 0, 2).into()]),
            tunnel: Some(TunnelKind::Gue),
            ..base()
        };
        let state = desired(&ipip_only.resolve().unwrap(), None);
        let rules = state
            .items
            .iter()
            .filter(|i| matches!(i, Item::NftRule(_)))
            .count();
        assert_eq!(rules, 1);
        assert!(
            desired(&base().resolve().unwrap(), None)
                .items
                .iter()
                .all(|i| !matches!(i, Item::NftTable(_) | Item::NftRule(_)))
        );
    }

    #[test]
    fn an_ipv6_underlay_or_director_gets_the_ipv6_fence_too() {
        let v6 = RsSettings {
            gateway: Some("2001:db8::1".parse().unwrap()),
            address: Some("2001:db8:1::2".parse().unwrap()),
            vips: Some(vec!["2001:db8:f::10".parse().unwrap()]),
            directors: Some(vec![
                "2001:db8::2".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
                "2001:db8::3".parse().unwrap(),
            ]),
            ..Default::default()
        };
        let state = desired(&v6.clone().resolve().unwrap(), None);
        let nft: Vec<String> = state
            .items
            .iter()
            .map(|i| i.to_string())
            .filter(|l| l.starts_with("nft"))
            .collect();
        assert_eq!(
            nft,
            [
                "nft table ip tungate_rs chains fence",
                "nft rule \"tungate: drop ipip not from 10.0.0.2\"",
                "nft table ip6 tungate_rs chain fence: tungate: drop ipv6 ip6ip6 (41) not from \
                 2001:db8::2,2001:db8::3; tungate: drop ipv6 4in6 (4) not from \
                 2001:db8::2,2001:db8::3",
            ]
        );
        // An IPv6 underlay with IPv4 directors only: every IPv6 tunnel packet is dropped.
        let v4_directors = RsSettings {
            directors: Some(vec!["10.0.0.2".parse().unwrap()]),
            ..v6
        };
        let state = desired(&v4_directors.resolve().unwrap(), None);
        let fence = state
            .items
            .iter()
            .find_map(|i| match i {
                Item::Fence6(f) => Some(f.clone()),
                _ => None,
            })
            .expect("an IPv6 fence");
        assert!(fence.directors.is_empty());
        assert_eq!(
            fence.comments()[0],
            "tungate: drop ipv6 ip6ip6 (41) not from (no ipv6 director)"
        );
        // An IPv4 server with an IPv6 director: both fences; the IPv4 one drops all IPIP.
        // A GRE reply tunnel: GRE is fenced in both families.
        let mixed = RsSettings {
            directors: Some(vec!["2001:db8::2".parse().unwrap()]),
            tunnel: Some(TunnelKind::Gre),
            ..base()
        };
        let state = desired(&mixed.resolve().unwrap(), None);
        let lines: Vec<String> = state.items.iter().map(|i| i.to_string()).collect();
        for line in [
            "nft rule \"tungate: drop ipip not from (no ipv4 director)\"",
            "nft rule \"tungate: drop gre not from (no ipv4 director)\"",
            "nft table ip6 tungate_rs chain fence: tungate: drop ipv6 ip6ip6 (41) not from \
             2001:db8::2; tungate: drop ipv6 4in6 (4) not from 2001:db8::2; tungate: drop \
             ipv6 gre (47) not from 2001:db8::2",
        ] {
            assert!(lines.iter().any(|l| l == line), "{line} in {lines:#?}");
        }
        // An IPv4 server with IPv4 directors only keeps exactly the IPv4 fence (above).
        let v4 = RsSettings {
            directors: Some(vec!["10.0.0.2".parse().unwrap()]),
            ..base()
        };
        assert!(
            desired(&v4.resolve().unwrap(), None)
                .items
                .iter()
                .all(|i| !matches!(i, Item::Fence6(_)))
        );
    }

    #[test]
    fn bad_ipv6_directors_are_named() {
        let bad = RsSettings {
            directors: Some(vec![
                "ff02::1".parse().unwrap(),
                "::".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
                "2001:db8::2".parse().unwrap(),
            ]),
            ..base()
        };
        let msg = bad.resolve().unwrap_err().to_string();
        for expected in [
            "directors[0]: ff02::1 is not a unicast address",
            "directors[1]: :: is not a unicast address",
            "directors[3]: 2001:db8::2 is listed twice",
        ] {
            assert!(msg.contains(expected), "{expected:?} not in {msg}");
        }
    }

    #[test]
    fn tunnel_keys_are_checked_like_the_gateways() {
        let bad = RsSettings {
            tunnel: Some(TunnelKind::Fou),
            key: Some(1),
            directors: Some(vec![
                Ipv4Addr::new(10, 0, 0, 2).into(),
                Ipv4Addr::new(10, 0, 0, 2).into(),
            ]),
            ..base()
        };
        let msg = bad.resolve().unwrap_err().to_string();
        for expected in [
            "port: tunnel = \"fou\" needs the gateway's UDP port",
            "key: tunnel = \"fou\" has no key",
            "directors[1]: 10.0.0.2 is listed twice",
        ] {
            assert!(msg.contains(expected), "{expected:?} not in {msg}");
        }
        let bad = RsSettings {
            port: Some(6080),
            ..base()
        };
        let msg = bad.resolve().unwrap_err().to_string();
        assert!(
            msg.contains("port: tunnel = \"ipip\" has no UDP port"),
            "{msg}"
        );
    }

    #[test]
    fn dnat_through_a_gue_tunnel_clamps_forwarded_syns_to_the_tunnel_mtu_less_40() {
        let settings = RsSettings {
            dnat: Some(vec!["192.0.2.10:80=10.88.0.2:8080".parse().unwrap()]),
            tunnel: Some(TunnelKind::Gue),
            ..base()
        };
        let config = settings.resolve().unwrap();
        let lines: Vec<String> = desired(&config, Some(1500))
            .items
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert!(
            lines.contains(
                &"nft rule \"tungate: clamp the mss of forwarded tcp syn to 1428\"".into()
            ),
            "{lines:#?}"
        );
        // Without a known MTU there is nothing to clamp to.
        assert!(
            !desired(&config, None)
                .items
                .iter()
                .any(|i| i.to_string().contains("clamp the mss"))
        );
    }

    #[test]
    fn flags_override_the_file() {
        let file = RsSettings {
            table: Some(7),
            ..base()
        };
        let flags = RsSettings {
            table: Some(9),
            reply_tunnel: Some("tgrs0".into()),
            ..Default::default()
        };
        let merged = file.overridden_by(flags).resolve().unwrap();
        assert_eq!(merged.table, 9);
        assert_eq!(merged.reply_tunnel, "tgrs0");
        assert_eq!(merged.gateway, IpAddr::from(Ipv4Addr::new(10, 0, 0, 1)));
    }

    #[test]
    fn an_ipv6_gateway_gets_an_ip6tnl_reply_tunnel_and_ipv6_vips_go_on_lo() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let settings = RsSettings {
            gateway: Some(v6("2001:db8::1")),
            address: Some(v6("2001:db8:1::2")),
            vips: Some(vec![v6("2001:db8:f::10")]),
            ..Default::default()
        };
        let state = desired(&settings.clone().resolve().unwrap(), Some(1500));
        let lines: Vec<String> = state.items.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            lines,
            [
                // 1500 less 48: IPv6 and the Destination Options of the encapsulation limit.
                "link tunl1 ip6tnl mode ip6ip6 local 2001:db8:1::2 remote 2001:db8::1 mtu 1452 up",
                "link ip6tnl0 up",
                "address 2001:db8:f::10/128 dev lo",
                "route ::/0 dev tunl1 table 1",
                "rule pref 1000 from 2001:db8:f::10 lookup 1",
            ]
        );
        // Both families over IPv6: mode any, 4in6 requests on ip6tnl0 (loose rp_filter
        // there), an IPv4 VIP where IPv4 VIPs go, and a default route per family.
        let both = RsSettings {
            vips: Some(vec![v6("2001:db8:f::10"), v6("192.0.2.10")]),
            ..settings.clone()
        };
        let lines: Vec<String> = desired(&both.resolve().unwrap(), None)
            .items
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            lines,
            [
                "link tunl1 ip6tnl mode any local 2001:db8:1::2 remote 2001:db8::1 up",
                "link ip6tnl0 up",
                "link tunl0 up",
                "sysctl net.ipv4.conf.ip6tnl0.rp_filter = 2",
                "sysctl net.ipv4.conf.all.arp_ignore = 1",
                "sysctl net.ipv4.conf.all.arp_announce = 2",
                "address 2001:db8:f::10/128 dev lo",
                "address 192.0.2.10/32 dev tunl0",
                "route 0.0.0.0/0 dev tunl1 table 1",
                "route ::/0 dev tunl1 table 1",
                "rule pref 1000 from 2001:db8:f::10 lookup 1",
                "rule pref 1000 from 192.0.2.10 lookup 1",
            ]
        );
        // IPv6 VIPs over IPv4: a sit reply tunnel (6in4), requests on sit0.
        let six_in_four = RsSettings {
            vips: Some(vec![v6("2001:db8:f::10")]),
            ..base()
        };
        let lines: Vec<String> = desired(&six_in_four.resolve().unwrap(), Some(1500))
            .items
            .iter()
            .map(|i| i.to_string())
            .collect();
        assert_eq!(
            lines[0],
            "link tunl1 sit mode ip6ip local 10.0.1.2 remote 10.0.0.1 mtu 1480 up"
        );
        assert_eq!(lines[1], "link sit0 up");
    }

    #[test]
    fn ipv6_vips_over_ipv4_fence_6in4_too() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let settings = RsSettings {
            vips: Some(vec![v6("2001:db8:f::10"), "192.0.2.10".parse().unwrap()]),
            directors: Some(vec![Ipv4Addr::new(10, 0, 0, 2).into()]),
            ..base()
        };
        let state = desired(&settings.resolve().unwrap(), None);
        let nft: Vec<String> = state
            .items
            .iter()
            .map(|i| i.to_string())
            .filter(|l| l.starts_with("nft"))
            .collect();
        assert_eq!(
            nft,
            [
                "nft table ip tungate_rs chains fence",
                "nft rule \"tungate: drop ipip not from 10.0.0.2\"",
                "nft rule \"tungate: drop 6in4 not from 10.0.0.2\"",
            ]
        );
        // IPv4 VIPs alone: no sit0, no 6in4 rule.
        let v4_only = RsSettings {
            directors: Some(vec![Ipv4Addr::new(10, 0, 0, 2).into()]),
            ..base()
        };
        let state = desired(&v4_only.resolve().unwrap(), None);
        assert!(!state.items.iter().any(|i| i.to_string().contains("6in4")));
    }

    #[test]
    fn families_and_tunnel_types_that_do_not_meet_are_refused() {
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        for (settings, expected) in [
            (
                RsSettings {
                    gateway: Some(v6("2001:db8::1")),
                    ..base()
                },
                "address: 10.0.1.2 and the gateway's 2001:db8::1 are of two families",
            ),
            (
                RsSettings {
                    gateway: Some(v6("2001:db8::1")),
                    address: Some(v6("2001:db8:1::2")),
                    tunnel: Some(TunnelKind::Gre),
                    ..base()
                },
                "tunnel: an IPv6 gateway gets an ip6tnl reply tunnel",
            ),
            (
                RsSettings {
                    vips: Some(vec![v6("2001:db8:f::10")]),
                    tunnel: Some(TunnelKind::Gue),
                    ..base()
                },
                "tunnel: tunnel = \"gue\" does not carry IPv6 VIPs here",
            ),
            (
                RsSettings {
                    vips: Some(vec![v6("ff02::1")]),
                    ..base()
                },
                "vips[0]: ff02::1 is not a unicast address",
            ),
        ] {
            let msg = settings.resolve().unwrap_err().to_string();
            assert!(msg.contains(expected), "{expected:?} not in {msg}");
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        let bad = RsSettings {
            gateway: None,
            table: Some(254),
            reply_tunnel: Some("tunl0".into()),
            dnat: Some(vec!["198.51.100.1:80=10.88.0.2".parse().unwrap()]),
            ..base()
        };
        let msg = bad.resolve().unwrap_err().to_string();
        for expected in [
            "gateway: missing",
            "table: 254 is reserved",
            "reply_tunnel: tunl0 is the ipip module's fallback device",
            "dnat[0].vip: 198.51.100.1 is not one of the VIPs",
        ] {
            assert!(msg.contains(expected), "{expected:?} not in {msg}");
        }
    }

    #[test]
    fn dnat_flags_parse_or_explain() {
        let e: DnatEntry = "192.0.2.10:53=10.88.0.2/udp".parse().unwrap();
        assert_eq!(e.protocol, L4Protocol::Udp);
        assert_eq!(e.to_port, None);
        let err = "192.0.2.10=10.88.0.2".parse::<DnatEntry>().unwrap_err();
        assert!(err.contains("expected VIP:PORT=ADDRESS"), "{err}");
    }

    #[test]
    fn a_settings_file_is_read_and_unknown_keys_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rs.toml");
        std::fs::write(
            &path,
            "gateway = \"10.0.0.1\"\naddress = \"10.0.1.2\"\nvips = [\"192.0.2.10\"]\n\
             [[dnat]]\nvip = \"192.0.2.10\"\nport = 80\nto = \"10.88.0.2\"\n",
        )
        .unwrap();
        let settings = RsSettings::load(&path).unwrap();
        assert_eq!(settings.dnat.as_ref().unwrap()[0].protocol, L4Protocol::Tcp);
        std::fs::write(&path, "gateway = \"10.0.0.1\"\ncolour = 1\n").unwrap();
        let err = RsSettings::load(&path).unwrap_err();
        assert!(err.contains("unknown field `colour`"), "{err}");
    }
}
