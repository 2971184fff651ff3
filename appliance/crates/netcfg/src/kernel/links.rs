//! Links over rtnetlink: list them, create, change and delete tungate's ipip tunnels, set
//! the up/down state of a link tungate does not own (remembering the original in the state
//! file), set a link's MTU and alias.
//!
//! Only this file builds link messages. It never decides what should exist (that is the
//! plan's job) and never touches a link it was not asked to. A tunnel is always created
//! down: bringing it up is the caller's step, once its sysctls are set.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkIpIp, LinkMessageBuilder, LinkUnspec};

use crate::error::NetError;
use crate::model::{LinkStateSpec, TunnelSpec};
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
    /// The MTU.
    pub(crate) mtu: Option<u32>,
    /// For an ipip tunnel: its local and remote addresses (unspecified when wildcard).
    pub(crate) ipip: Option<(Ipv4Addr, Ipv4Addr)>,
}

fn view(msg: LinkMessage) -> LinkView {
    let mut name = String::new();
    let mut alias = None;
    let mut mtu = None;
    let mut ipip = None;
    for attr in msg.attributes {
        match attr {
            LinkAttribute::IfName(n) => name = n,
            LinkAttribute::IfAlias(a) => alias = Some(a),
            LinkAttribute::Mtu(m) => mtu = Some(m),
            LinkAttribute::LinkInfo(infos) => {
                let is_ipip = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::IpIp)));
                if is_ipip {
                    let (mut local, mut remote) = (Ipv4Addr::UNSPECIFIED, Ipv4Addr::UNSPECIFIED);
                    for info in infos {
                        if let LinkInfo::Data(InfoData::IpTunnel(params)) = info {
                            for p in params {
                                match p {
                                    InfoIpTunnel::Local(IpAddr::V4(a)) => local = a,
                                    InfoIpTunnel::Remote(IpAddr::V4(a)) => remote = a,
                                    _ => {}
                                }
                            }
                        }
                    }
                    ipip = Some((local, remote));
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
        mtu,
        ipip,
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

/// Creates the ipip tunnel `spec` (down, so that its sysctls can be set before it carries
/// anything), marked with `alias`. A kernel without ipip gets [`NetError::NoIpip`].
pub(crate) async fn create_tunnel(
    handle: &Handle,
    spec: &TunnelSpec,
    alias: &str,
) -> Result<(), NetError> {
    let action = format!("creating tunnel {}", spec.name);
    let mut builder = LinkIpIp::new(&spec.name)
        .local(spec.local)
        .remote(spec.remote);
    if let Some(mtu) = spec.mtu {
        builder = builder.mtu(mtu);
    }
    match handle.link().add(builder.build()).execute().await {
        Ok(()) => {}
        Err(rtnetlink::Error::NetlinkError(msg))
            if matches!(msg.raw_code().abs(), libc::EOPNOTSUPP | libc::EAFNOSUPPORT) =>
        {
            return Err(NetError::NoIpip {
                tunnel: spec.name.clone(),
            });
        }
        Err(rtnetlink::Error::NetlinkError(msg)) if msg.raw_code().abs() == libc::EEXIST => {
            return Err(NetError::AlreadyExists {
                action,
                hint: format!(
                    " (another ipip tunnel already has local {} remote {}, or the name is \
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
    /// The endpoints differ: delete the link and create it again (down).
    recreate: bool,
    /// The MTU to set on the existing link.
    mtu: Option<u32>,
    /// Take the link down now.
    set_down: bool,
}

fn tunnel_update(from: &TunnelSpec, to: &TunnelSpec) -> TunnelUpdate {
    let recreate = from.local != to.local || from.remote != to.remote;
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
            local: Ipv4Addr::new(10, 0, 0, 1),
            remote: Ipv4Addr::new(10, 0, 1, remote),
            mtu,
            up,
        }
    }

    fn update(from: TunnelSpec, to: TunnelSpec) -> Edit<TunnelSpec> {
        Edit::Update { from, to }
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
