//! Links over rtnetlink: list them, create, change and delete tungate's ipip tunnels, set
//! the up/down state of a link tungate does not own (remembering the original in the state
//! file), set a link's MTU and alias.
//!
//! Only this file builds link messages. It never decides what should exist (that is the
//! plan's job) and never touches a link it was not asked to. A tunnel is always created
//! down: bringing it up is the caller's step, once its sysctls are set.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::IpProtocol;
use netlink_packet_route::link::{
    GreEncapType, GreIOFlags, InfoData, InfoGre, InfoGre6, InfoIpTunnel, InfoKind, LinkAttribute,
    LinkFlags, LinkInfo, LinkMessage, TunnelEncapFlags, TunnelEncapType,
};
use rtnetlink::{
    Handle, LinkGre, LinkGre6, LinkIp6Tnl, LinkIpIp, LinkMessageBuilder, LinkSit, LinkUnspec,
};

use crate::error::NetError;
use crate::model::{InnerFamilies, LinkStateSpec, TunnelEncap, TunnelSpec};
use crate::plan::Edit;
use crate::state_file::{StateFile, link_key};

/// What tungate needs to know of one existing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LinkView {
    /// Interface index.
    pub(crate) index: u32,
    /// Device name.
    pub(crate) name: String,
    /// The alias (`ip link set NAME alias TEXT`), if any.
    pub(crate) alias: Option<String>,
    /// Administratively up.
    pub(crate) up: bool,
    /// The lower layer is up (`IFF_LOWER_UP`: carrier on a physical or veth link).
    pub(crate) carrier: bool,
    /// The MTU.
    pub(crate) mtu: Option<u32>,
    /// For a tunnel: its encapsulation, local and remote addresses (unspecified when
    /// wildcard).
    pub(crate) tunnel: Option<(TunnelEncap, IpAddr, IpAddr)>,
}

/// The device types whose attributes are `IFLA_IPTUN_*`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum IpTunKind {
    IpIp,
    Ip6Tnl,
    Sit,
}

/// The inner families of an ip6tnl or sit device's `mode` (`IFLA_IPTUN_PROTO`).
fn families_of(protocol: IpProtocol) -> Option<InnerFamilies> {
    match protocol {
        IpProtocol::Ipv6 => Some(InnerFamilies::V6),
        IpProtocol::Ipip => Some(InnerFamilies::V4),
        IpProtocol::Hopopts => Some(InnerFamilies::Both),
        _ => None,
    }
}

/// The mode (`IFLA_IPTUN_PROTO`) that carries `inner`: 0 is `any`.
fn protocol_of(inner: InnerFamilies) -> IpProtocol {
    match inner {
        InnerFamilies::V4 => IpProtocol::Ipip,
        InnerFamilies::V6 => IpProtocol::Ipv6,
        InnerFamilies::Both => IpProtocol::Hopopts,
    }
}

/// The encapsulation and endpoints of an ipip, ip6tnl or sit device, from its
/// `IFLA_IPTUN_*` attributes.
fn iptun_view(params: &[InfoIpTunnel], kind: IpTunKind) -> (TunnelEncap, IpAddr, IpAddr) {
    let unspecified = if kind == IpTunKind::Ip6Tnl {
        IpAddr::V6(Ipv6Addr::UNSPECIFIED)
    } else {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    };
    let (mut local, mut remote) = (unspecified, unspecified);
    let (mut encap_kind, mut port) = (TunnelEncapType::None, 0);
    // A sit device with no mode attribute is IPv6 in IPv4; an ip6tnl one, any.
    let mut protocol = match kind {
        IpTunKind::Sit => IpProtocol::Ipv6,
        _ => IpProtocol::Hopopts,
    };
    for p in params {
        match p {
            InfoIpTunnel::Local(a) => local = *a,
            InfoIpTunnel::Remote(a) => remote = *a,
            InfoIpTunnel::EncapType(t) => encap_kind = *t,
            InfoIpTunnel::EncapDPort(p) => port = *p,
            InfoIpTunnel::Protocol(p) => protocol = *p,
            _ => {}
        }
    }
    let encap = match (kind, encap_kind) {
        (IpTunKind::IpIp, TunnelEncapType::None) => TunnelEncap::Ipip,
        (IpTunKind::IpIp, TunnelEncapType::Fou) => TunnelEncap::Fou { port },
        (IpTunKind::IpIp, TunnelEncapType::Gue) => TunnelEncap::Gue { port },
        (IpTunKind::Ip6Tnl, TunnelEncapType::None) => {
            families_of(protocol).map_or(TunnelEncap::Other, |inner| TunnelEncap::Ip6Tnl { inner })
        }
        (IpTunKind::Ip6Tnl, TunnelEncapType::Fou) => {
            families_of(protocol).map_or(TunnelEncap::Other, |inner| TunnelEncap::Ip6Fou {
                port,
                inner,
            })
        }
        (IpTunKind::Ip6Tnl, TunnelEncapType::Gue) => {
            families_of(protocol).map_or(TunnelEncap::Other, |inner| TunnelEncap::Ip6Gue {
                port,
                inner,
            })
        }
        (IpTunKind::Sit, TunnelEncapType::None) => {
            families_of(protocol).map_or(TunnelEncap::Other, |inner| TunnelEncap::Sit { inner })
        }
        _ => TunnelEncap::Other,
    };
    (encap, local, remote)
}

/// The key and endpoints of a gre device, from its `IFLA_GRE_*` attributes (a key counts
/// when the receive side checks it: `ikey` with the key flag).
fn gre_view(params: &[InfoGre]) -> (TunnelEncap, IpAddr, IpAddr) {
    let (mut local, mut remote) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
    let (mut keyed, mut key, mut encapsulated) = (false, 0, false);
    for p in params {
        match p {
            InfoGre::Local(a) => local = *a,
            InfoGre::Remote(a) => remote = *a,
            InfoGre::IFlags(flags) => keyed = flags.contains(GreIOFlags::Key),
            InfoGre::IKey(k) => key = *k,
            InfoGre::EncapType(t) => encapsulated = *t != GreEncapType::None,
            _ => {}
        }
    }
    let encap = if encapsulated {
        TunnelEncap::Other
    } else {
        TunnelEncap::Gre {
            key: keyed.then_some(key),
        }
    };
    (encap, local.into(), remote.into())
}

/// The key and endpoints of an ip6gre device, from its `IFLA_GRE_*` attributes, as
/// [`gre_view`] reads a gre device's.
fn gre6_view(params: &[InfoGre6]) -> (TunnelEncap, IpAddr, IpAddr) {
    let (mut local, mut remote) = (Ipv6Addr::UNSPECIFIED, Ipv6Addr::UNSPECIFIED);
    let (mut keyed, mut key, mut encapsulated) = (false, 0, false);
    for p in params {
        match p {
            InfoGre6::Local(a) => local = *a,
            InfoGre6::Remote(a) => remote = *a,
            InfoGre6::IFlags(flags) => keyed = flags.contains(GreIOFlags::Key),
            InfoGre6::IKey(k) => key = *k,
            InfoGre6::EncapType(t) => encapsulated = *t != GreEncapType::None,
            _ => {}
        }
    }
    let encap = if encapsulated {
        TunnelEncap::Other
    } else {
        TunnelEncap::Ip6Gre {
            key: keyed.then_some(key),
        }
    };
    (encap, local.into(), remote.into())
}

fn view(msg: LinkMessage) -> LinkView {
    let mut name = String::new();
    let mut alias = None;
    let mut mtu = None;
    let mut tunnel = None;
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n,
            LinkAttribute::IfAlias(a) => alias = Some(a),
            LinkAttribute::Mtu(m) => mtu = Some(m),
            LinkAttribute::LinkInfo(infos) => {
                let iptun = infos.iter().find_map(|i| match i {
                    LinkInfo::Kind(InfoKind::IpIp) => Some(IpTunKind::IpIp),
                    LinkInfo::Kind(InfoKind::Ip6Tnl) => Some(IpTunKind::Ip6Tnl),
                    LinkInfo::Kind(InfoKind::SitTun) => Some(IpTunKind::Sit),
                    _ => None,
                });
                for info in &infos {
                    match info {
                        LinkInfo::Data(InfoData::IpTunnel(params)) if iptun.is_some() => {
                            tunnel = iptun.map(|kind| iptun_view(params, kind));
                        }
                        LinkInfo::Data(InfoData::GreTun(params)) => {
                            tunnel = Some(gre_view(params));
                        }
                        LinkInfo::Data(InfoData::GreTun6(params)) => {
                            tunnel = Some(gre6_view(params));
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    LinkView {
        index: msg.header.index,
        name,
        alias,
        up: msg.header.flags.contains(LinkFlags::Up),
        carrier: msg.header.flags.contains(LinkFlags::LowerUp),
        mtu,
        tunnel,
    }
}

/// Every link in this network namespace.
pub(crate) async fn list(handle: &Handle) -> Result<Vec<LinkView>, NetError> {
    handle
        .link()
        .get()
        .execute()
        .map_ok(view)
        .try_collect()
        .await
        .map_err(|e| NetError::from_rtnetlink("listing links", e, None))
}

/// The index of the link called `name`, if it exists.
pub(crate) fn index_of(name: &str) -> Option<u32> {
    nix::net::if_::if_nametoindex(name).ok()
}

fn require_index(name: &str, action: &str) -> Result<u32, NetError> {
    index_of(name).ok_or_else(|| NetError::MissingInterface {
        action: action.to_owned(),
        interface: name.to_owned(),
        hint: String::new(),
    })
}

/// The message that creates tunnel `spec`: an `ipip` device (with `encap fou|gue
/// encap-sport auto encap-dport PORT` for the UDP encapsulations), a `gre` device (with
/// `key KEY` in both directions when keyed), an `ip6tnl` or a `sit` device (with the mode of
/// its inner families), over IPv6 an `ip6tnl` device with `encap fou|gue` or an `ip6gre`
/// device (both with the encapsulation limit 4, the kernel's default, set explicitly).
/// `None` when the endpoints are not of the family the type's outer header has (an IPv6
/// pair for `ip6tnl` and `ip6gre`, IPv4 for the others).
pub(crate) fn tunnel_message(spec: &TunnelSpec) -> Option<LinkMessage> {
    fn finish<T>(b: LinkMessageBuilder<T>, mtu: Option<u32>) -> LinkMessage {
        match mtu {
            Some(mtu) => b.mtu(mtu).build(),
            None => b.build(),
        }
    }
    if let TunnelEncap::Ip6Tnl { .. }
    | TunnelEncap::Ip6Fou { .. }
    | TunnelEncap::Ip6Gue { .. }
    | TunnelEncap::Ip6Gre { .. } = spec.encap
    {
        let (IpAddr::V6(local), IpAddr::V6(remote)) = (spec.local, spec.remote) else {
            return None;
        };
        return Some(ip6_tunnel_message(spec, local, remote));
    }
    let (IpAddr::V4(local), IpAddr::V4(remote)) = (spec.local, spec.remote) else {
        return None;
    };
    let ipip = || LinkIpIp::new(&spec.name).local(local).remote(remote);
    let udp = |kind: TunnelEncapType, port: u16| {
        ipip()
            .encap_type(kind)
            .encap_sport(0)
            .encap_dport(port)
            .encap_flags(TunnelEncapFlags::empty())
    };
    Some(match spec.encap {
        TunnelEncap::Ipip
        | TunnelEncap::Other
        | TunnelEncap::Ip6Tnl { .. }
        | TunnelEncap::Ip6Fou { .. }
        | TunnelEncap::Ip6Gue { .. }
        | TunnelEncap::Ip6Gre { .. } => finish(ipip(), spec.mtu),
        TunnelEncap::Fou { port } => finish(udp(TunnelEncapType::Fou, port), spec.mtu),
        TunnelEncap::Gue { port } => finish(udp(TunnelEncapType::Gue, port), spec.mtu),
        TunnelEncap::Sit { inner } => finish(
            LinkSit::new(&spec.name)
                .local(local)
                .remote(remote)
                .protocol(protocol_of(inner)),
            spec.mtu,
        ),
        TunnelEncap::Gre { key } => {
            let mut b = LinkGre::new(&spec.name).local(local).remote(remote);
            if let Some(key) = key {
                b = b
                    .iflags(GreIOFlags::Key)
                    .oflags(GreIOFlags::Key)
                    .ikey(key)
                    .okey(key);
            }
            finish(b, spec.mtu)
        }
    })
}

/// The encapsulation limit tungate sets on the IPv6 devices it adds encapsulations to: the
/// kernel's default (`IPV6_DEFAULT_TNL_ENCAP_LIMIT`), so the overhead is known.
const ENCAP_LIMIT: u8 = 4;

/// The message of an IPv6-outer tunnel (`spec.encap` is one of the IPv6 types).
fn ip6_tunnel_message(spec: &TunnelSpec, local: Ipv6Addr, remote: Ipv6Addr) -> LinkMessage {
    fn finish<T>(b: LinkMessageBuilder<T>, mtu: Option<u32>) -> LinkMessage {
        match mtu {
            Some(mtu) => b.mtu(mtu).build(),
            None => b.build(),
        }
    }
    let ip6tnl = |inner| {
        LinkIp6Tnl::new(&spec.name)
            .local(local)
            .remote(remote)
            .mode(protocol_of(inner))
    };
    let udp = |inner, kind: TunnelEncapType, port: u16| {
        ip6tnl(inner)
            .encap_limit(ENCAP_LIMIT)
            .encap_type(kind)
            .encap_sport(0)
            .encap_dport(port)
            .encap_flags(TunnelEncapFlags::empty())
    };
    match spec.encap {
        TunnelEncap::Ip6Fou { port, inner } => {
            finish(udp(inner, TunnelEncapType::Fou, port), spec.mtu)
        }
        TunnelEncap::Ip6Gue { port, inner } => {
            finish(udp(inner, TunnelEncapType::Gue, port), spec.mtu)
        }
        TunnelEncap::Ip6Gre { key } => {
            let mut b = LinkGre6::new(&spec.name)
                .local(local)
                .remote(remote)
                .encap_limit(ENCAP_LIMIT);
            if let Some(key) = key {
                b = b
                    .iflags(GreIOFlags::Key)
                    .oflags(GreIOFlags::Key)
                    .ikey(key)
                    .okey(key);
            }
            finish(b, spec.mtu)
        }
        TunnelEncap::Ip6Tnl { inner } => finish(ip6tnl(inner), spec.mtu),
        _ => finish(ip6tnl(InnerFamilies::Both), spec.mtu),
    }
}

/// The kernel module a tunnel of this encapsulation needs.
fn module_of(encap: TunnelEncap) -> &'static str {
    match encap {
        TunnelEncap::Ipip | TunnelEncap::Other => "ipip",
        TunnelEncap::Fou { .. } | TunnelEncap::Gue { .. } => "ipip and fou",
        TunnelEncap::Gre { .. } => "ip_gre",
        TunnelEncap::Ip6Tnl { .. } => "ip6_tunnel",
        TunnelEncap::Sit { .. } => "sit",
        TunnelEncap::Ip6Gre { .. } => "ip6_gre",
        TunnelEncap::Ip6Fou { .. } | TunnelEncap::Ip6Gue { .. } => "ip6_tunnel, fou and fou6",
    }
}

/// Whether the kernel's answer `code` to creating a tunnel of `encap` means a missing
/// module: no device type (`EOPNOTSUPP`, `EAFNOSUPPORT`) or, for a UDP encapsulation, no
/// encapsulation ops registered (`EINVAL`: `fou`, or `fou6` for an IPv6 outer header, is not
/// loaded).
fn lacks_support(encap: TunnelEncap, code: i32) -> bool {
    match code.abs() {
        libc::EOPNOTSUPP | libc::EAFNOSUPPORT => true,
        libc::EINVAL => matches!(
            encap,
            TunnelEncap::Fou { .. }
                | TunnelEncap::Gue { .. }
                | TunnelEncap::Ip6Fou { .. }
                | TunnelEncap::Ip6Gue { .. }
        ),
        _ => false,
    }
}

/// Creates the tunnel `spec` (down, so that its sysctls can be set before it carries
/// anything), marked with `alias`. A kernel without the tunnel's module gets
/// [`NetError::NoTunnelSupport`] ([`NetError::NoIpip`] for plain ipip).
pub(crate) async fn create_tunnel(
    handle: &Handle,
    spec: &TunnelSpec,
    alias: &str,
) -> Result<(), NetError> {
    let action = format!("creating tunnel {}", spec.name);
    let Some(message) = tunnel_message(spec) else {
        return Err(NetError::Netlink {
            action,
            detail: format!(
                "{} needs local and remote of its outer family (local {}, remote {})",
                spec.encap, spec.local, spec.remote
            ),
        });
    };
    match handle.link().add(message).execute().await {
        Ok(()) => {}
        Err(rtnetlink::Error::NetlinkError(msg)) if lacks_support(spec.encap, msg.raw_code()) => {
            return Err(match spec.encap {
                TunnelEncap::Ipip | TunnelEncap::Other => NetError::NoIpip {
                    tunnel: spec.name.clone(),
                },
                encap => NetError::NoTunnelSupport {
                    tunnel: spec.name.clone(),
                    modules: module_of(encap),
                },
            });
        }
        Err(rtnetlink::Error::NetlinkError(msg)) if msg.raw_code().abs() == libc::EEXIST => {
            return Err(NetError::AlreadyExists {
                action,
                hint: format!(
                    " (another tunnel already has local {} remote {}, or the name is \
                     taken; remove it or change the configuration)",
                    spec.local, spec.remote
                ),
            });
        }
        Err(e) => return Err(NetError::from_rtnetlink(action, e, None)),
    }
    // The kernel ignores an alias given at creation: mark the link right away, and take the
    // link back out if it cannot be marked (an unmarked link would look like someone else's).
    if let Err(e) = set_alias(handle, &spec.name, alias).await {
        let _ = delete(handle, &spec.name).await;
        return Err(e);
    }
    Ok(())
}

/// Sends one change of link `name`, built by `build` from a message that names the link.
async fn change_link(
    handle: &Handle,
    name: &str,
    action: String,
    build: impl FnOnce(LinkMessageBuilder<LinkUnspec>) -> LinkMessageBuilder<LinkUnspec>,
) -> Result<(), NetError> {
    let index = require_index(name, &action)?;
    let msg = build(LinkUnspec::new_with_index(index)).build();
    handle
        .link()
        .set(msg)
        .execute()
        .await
        .map_err(|e| NetError::from_rtnetlink(action, e, Some(name)))
}

/// Sets the alias of link `name`.
pub(crate) async fn set_alias(handle: &Handle, name: &str, alias: &str) -> Result<(), NetError> {
    let action = format!("marking link {name} with alias {alias:?}");
    change_link(handle, name, action, |b| b.alias(alias)).await
}

/// Sets link `name` up or down.
pub(crate) async fn set_up(handle: &Handle, name: &str, up: bool) -> Result<(), NetError> {
    let action = format!("setting link {name} {}", if up { "up" } else { "down" });
    change_link(handle, name, action, |b| if up { b.up() } else { b.down() }).await
}

/// Sets the MTU of link `name`.
pub(crate) async fn set_mtu(handle: &Handle, name: &str, mtu: u32) -> Result<(), NetError> {
    let action = format!("setting the MTU of link {name} to {mtu}");
    change_link(handle, name, action, |b| b.mtu(mtu)).await
}

/// Deletes link `name`; a link that is already gone is not an error.
pub(crate) async fn delete(handle: &Handle, name: &str) -> Result<(), NetError> {
    let Some(index) = index_of(name) else {
        return Ok(());
    };
    match handle.link().del(index).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(msg)) if msg.raw_code().abs() == libc::ENODEV => Ok(()),
        Err(e) => Err(NetError::from_rtnetlink(
            format!("deleting link {name}"),
            e,
            Some(name),
        )),
    }
}

/// `up` or `down`, as the state file and messages spell a link state.
fn up_word(up: bool) -> &'static str {
    if up { "up" } else { "down" }
}

/// What changing a tunnel from one spec to another takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TunnelUpdate {
    /// The endpoints or the encapsulation differ: delete the link and create it again
    /// (down).
    recreate: bool,
    /// The MTU to set on the existing link.
    mtu: Option<u32>,
    /// Take the link down now.
    set_down: bool,
}

fn tunnel_update(from: &TunnelSpec, to: &TunnelSpec) -> TunnelUpdate {
    let recreate = from.local != to.local || from.remote != to.remote || from.encap != to.encap;
    TunnelUpdate {
        recreate,
        mtu: to.mtu.filter(|m| !recreate && from.mtu != Some(*m)),
        set_down: !to.up && from.up,
    }
}

/// The tunnel that `edit` leaves down and that must be brought up once its sysctls are set:
/// a new one, a re-created one, or one that was down.
pub(crate) fn brought_up_later(edit: &Edit<TunnelSpec>) -> Option<&str> {
    let wants_up = match edit {
        Edit::Create(spec) => spec.up,
        Edit::Update { from, to } => to.up && (!from.up || tunnel_update(from, to).recreate),
        Edit::Delete(_) => false,
    };
    let (Edit::Create(spec) | Edit::Update { to: spec, .. } | Edit::Delete(spec)) = edit;
    wants_up.then_some(spec.name.as_str())
}

/// Creates, changes or deletes one of tungate's tunnels (marking new ones with `alias`).
/// Never brings a tunnel up: see [`brought_up_later`].
pub(crate) async fn apply_tunnel(
    handle: &Handle,
    edit: &Edit<TunnelSpec>,
    alias: &str,
) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) => create_tunnel(handle, spec, alias).await,
        Edit::Update { from, to } => {
            let update = tunnel_update(from, to);
            if update.recreate {
                delete(handle, &from.name).await?;
                create_tunnel(handle, to, alias).await?;
            }
            if let Some(mtu) = update.mtu {
                set_mtu(handle, &to.name, mtu).await?;
            }
            if update.set_down {
                set_up(handle, &to.name, false).await?;
            }
            Ok(())
        }
        Edit::Delete(spec) => delete(handle, &spec.name).await,
    }
}

async fn is_up(handle: &Handle, name: &str) -> Result<Option<bool>, NetError> {
    Ok(list(handle)
        .await?
        .into_iter()
        .find(|l| l.name == name)
        .map(|l| l.up))
}

/// Sets the up/down state of a link tungate does not own, remembering its original state
/// in `state` before changing it; deleting restores the original, if the link still has
/// the state tungate set.
pub(crate) async fn apply_link_state(
    handle: &Handle,
    edit: &Edit<LinkStateSpec>,
    state: &mut StateFile,
) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) | Edit::Update { to: spec, .. } => {
            let Some(now) = is_up(handle, &spec.name).await? else {
                return Err(NetError::MissingInterface {
                    action: format!("setting link {} {}", spec.name, up_word(spec.up)),
                    interface: spec.name.clone(),
                    hint: if spec.name == "tunl0" {
                        " (tunl0 appears when the ipip module is loaded: load it)".into()
                    } else {
                        String::new()
                    },
                });
            };
            if now != spec.up {
                state.remember(&link_key(&spec.name), up_word(now), up_word(spec.up));
                state.save()?;
                set_up(handle, &spec.name, spec.up).await?;
            }
            Ok(())
        }
        Edit::Delete(spec) => {
            let key = link_key(&spec.name);
            if let Some(saved) = state.originals.settings.get(&key).cloned() {
                let now = is_up(handle, &spec.name).await?;
                if now.map(up_word) == Some(saved.set.as_str()) && saved.original != saved.set {
                    set_up(handle, &spec.name, saved.original == "up").await?;
                }
            }
            state.forget(&key);
            state.save()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tunnel(remote: u8, mtu: Option<u32>, up: bool) -> TunnelSpec {
        TunnelSpec {
            name: "tg-rs1".into(),
            encap: TunnelEncap::Ipip,
            local: Ipv4Addr::new(10, 0, 0, 1).into(),
            remote: Ipv4Addr::new(10, 0, 1, remote).into(),
            mtu,
            up,
        }
    }

    fn update(from: TunnelSpec, to: TunnelSpec) -> Edit<TunnelSpec> {
        Edit::Update { from, to }
    }

    #[test]
    fn each_tunnel_message_reads_back_as_the_tunnel_it_builds() {
        use netlink_packet_core::{Emitable, Parseable};
        let v6 = |last: u16| IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, last));
        for encap in [
            TunnelEncap::Ipip,
            TunnelEncap::Gue { port: 6080 },
            TunnelEncap::Fou { port: 5555 },
            TunnelEncap::Gre { key: None },
            TunnelEncap::Gre {
                key: Some(0xdead_beef),
            },
            TunnelEncap::Ip6Tnl {
                inner: InnerFamilies::V6,
            },
            TunnelEncap::Ip6Tnl {
                inner: InnerFamilies::V4,
            },
            TunnelEncap::Ip6Tnl {
                inner: InnerFamilies::Both,
            },
            TunnelEncap::Sit {
                inner: InnerFamilies::V6,
            },
            TunnelEncap::Sit {
                inner: InnerFamilies::Both,
            },
            TunnelEncap::Ip6Gre { key: None },
            TunnelEncap::Ip6Gre {
                key: Some(0xdead_beef),
            },
            TunnelEncap::Ip6Fou {
                port: 5555,
                inner: InnerFamilies::V6,
            },
            TunnelEncap::Ip6Fou {
                port: 5556,
                inner: InnerFamilies::V4,
            },
            TunnelEncap::Ip6Gue {
                port: 6080,
                inner: InnerFamilies::Both,
            },
        ] {
            let mut spec = TunnelSpec {
                encap,
                ..tunnel(2, Some(1400), false)
            };
            if let TunnelEncap::Ip6Tnl { .. }
            | TunnelEncap::Ip6Gre { .. }
            | TunnelEncap::Ip6Fou { .. }
            | TunnelEncap::Ip6Gue { .. } = encap
            {
                // An IPv4 pair has no ip6tnl or ip6gre device.
                assert!(tunnel_message(&spec).is_none());
                (spec.local, spec.remote) = (v6(1), v6(2));
            } else {
                let mut v6_pair = spec.clone();
                (v6_pair.local, v6_pair.remote) = (v6(1), v6(2));
                assert!(tunnel_message(&v6_pair).is_none(), "{encap}");
            }
            let message = tunnel_message(&spec).unwrap();
            // Through the wire format, as the kernel would receive it.
            let mut bytes = vec![0; message.buffer_len()];
            message.emit(&mut bytes);
            let parsed = LinkMessage::parse(bytes.as_slice()).unwrap();
            let infos = parsed
                .attributes
                .iter()
                .find_map(|a| match a {
                    LinkAttribute::LinkInfo(infos) => Some(infos.clone()),
                    _ => None,
                })
                .unwrap();
            let kind = infos
                .iter()
                .find_map(|i| match i {
                    LinkInfo::Kind(kind) => Some(kind.clone()),
                    _ => None,
                })
                .unwrap();
            let wanted_kind = match encap {
                TunnelEncap::Gre { .. } => InfoKind::GreTun,
                TunnelEncap::Ip6Tnl { .. }
                | TunnelEncap::Ip6Fou { .. }
                | TunnelEncap::Ip6Gue { .. } => InfoKind::Ip6Tnl,
                TunnelEncap::Ip6Gre { .. } => InfoKind::GreTun6,
                TunnelEncap::Sit { .. } => InfoKind::SitTun,
                _ => InfoKind::IpIp,
            };
            assert_eq!(kind, wanted_kind, "{encap}");
            let seen = view(parsed);
            assert_eq!(seen.name, "tg-rs1");
            assert_eq!(seen.mtu, Some(1400));
            assert_eq!(
                seen.tunnel,
                Some((encap, spec.local, spec.remote)),
                "{encap}"
            );
            if let TunnelEncap::Gue { .. } | TunnelEncap::Fou { .. } = encap {
                // encap-sport auto: the kernel picks a source port per flow.
                let data = infos.iter().find_map(|i| match i {
                    LinkInfo::Data(InfoData::IpTunnel(p)) => Some(p.clone()),
                    _ => None,
                });
                assert!(data.unwrap().contains(&InfoIpTunnel::EncapSPort(0)));
            }
            let data = infos.iter().find_map(|i| match i {
                LinkInfo::Data(d) => Some(d.clone()),
                _ => None,
            });
            match (encap, data.unwrap()) {
                // The kernel's default encapsulation limit, set explicitly: the overhead
                // counts its 8-byte option.
                (TunnelEncap::Ip6Fou { port, .. }, InfoData::IpTunnel(p))
                | (TunnelEncap::Ip6Gue { port, .. }, InfoData::IpTunnel(p)) => {
                    assert!(p.contains(&InfoIpTunnel::EncapLimit(4)), "{encap}");
                    assert!(p.contains(&InfoIpTunnel::EncapSPort(0)), "{encap}");
                    assert!(p.contains(&InfoIpTunnel::EncapDPort(port)), "{encap}");
                }
                (TunnelEncap::Ip6Gre { key }, InfoData::GreTun6(p)) => {
                    assert!(p.contains(&InfoGre6::EncapLimit(4)));
                    // The 16-byte addresses.
                    assert!(p.contains(&InfoGre6::Local(Ipv6Addr::new(
                        0x2001, 0xdb8, 0, 0, 0, 0, 0, 1
                    ))));
                    assert!(p.contains(&InfoGre6::Remote(Ipv6Addr::new(
                        0x2001, 0xdb8, 0, 0, 0, 0, 0, 2
                    ))));
                    assert_eq!(key.is_some(), p.contains(&InfoGre6::OKey(0xdead_beef)));
                }
                _ => {}
            }
        }
    }

    #[test]
    fn a_missing_module_is_told_apart_from_other_refusals() {
        let gue6 = TunnelEncap::Ip6Gue {
            port: 6080,
            inner: InnerFamilies::V6,
        };
        let gre6 = TunnelEncap::Ip6Gre { key: None };
        // No ip6_gre: the device type is unknown.
        assert!(lacks_support(gre6, -libc::EOPNOTSUPP));
        assert_eq!(module_of(gre6), "ip6_gre");
        // No fou6: the ip6tnl device refuses the encapsulation it has no ops for.
        assert!(lacks_support(gue6, -libc::EINVAL));
        assert_eq!(module_of(gue6), "ip6_tunnel, fou and fou6");
        // EINVAL of a device without a UDP encapsulation is a real error, not a module.
        assert!(!lacks_support(gre6, -libc::EINVAL));
        assert!(!lacks_support(gue6, -libc::EEXIST));
    }

    #[test]
    fn a_new_endpoint_recreates_the_tunnel_and_brings_it_up_later() {
        let edit = update(tunnel(2, Some(1480), true), tunnel(3, Some(1400), true));
        let Edit::Update { from, to } = &edit else {
            unreachable!()
        };
        let steps = tunnel_update(from, to);
        assert_eq!(
            steps,
            TunnelUpdate {
                recreate: true,
                mtu: None,
                set_down: false
            }
        );
        assert_eq!(brought_up_later(&edit), Some("tg-rs1"));
    }

    #[test]
    fn another_tunnel_type_recreates_the_device() {
        let from = tunnel(2, Some(1480), true);
        let to = TunnelSpec {
            encap: TunnelEncap::Gue { port: 6080 },
            mtu: Some(1468),
            ..from.clone()
        };
        assert!(tunnel_update(&from, &to).recreate);
        let keyed = TunnelSpec {
            encap: TunnelEncap::Gre { key: Some(1) },
            ..from.clone()
        };
        let other_key = TunnelSpec {
            encap: TunnelEncap::Gre { key: Some(2) },
            ..from
        };
        assert!(tunnel_update(&keyed, &other_key).recreate);
    }

    #[test]
    fn an_mtu_change_keeps_the_tunnel_and_its_state() {
        let edit = update(tunnel(2, Some(1480), true), tunnel(2, Some(1400), true));
        let Edit::Update { from, to } = &edit else {
            unreachable!()
        };
        assert_eq!(
            tunnel_update(from, to),
            TunnelUpdate {
                recreate: false,
                mtu: Some(1400),
                set_down: false
            }
        );
        assert_eq!(brought_up_later(&edit), None);
    }

    #[test]
    fn up_and_down_follow_the_desired_state() {
        let up = update(tunnel(2, None, false), tunnel(2, None, true));
        assert_eq!(brought_up_later(&up), Some("tg-rs1"));
        let down = update(tunnel(2, None, true), tunnel(2, None, false));
        let Edit::Update { from, to } = &down else {
            unreachable!()
        };
        assert!(tunnel_update(from, to).set_down);
        assert_eq!(brought_up_later(&down), None);
        assert_eq!(
            brought_up_later(&Edit::Create(tunnel(2, None, true))),
            Some("tg-rs1")
        );
        assert_eq!(
            brought_up_later(&Edit::Create(tunnel(2, None, false))),
            None
        );
        assert_eq!(brought_up_later(&Edit::Delete(tunnel(2, None, true))), None);
    }
}
