//! Links over rtnetlink: list them, create and delete tungate's ipip tunnels, set a link up
//! or down, set its MTU and alias.
//!
//! Only this file builds link messages. It never decides what should exist (that is the
//! plan's job) and never touches a link it was not asked to.

use std::net::{IpAddr, Ipv4Addr};

use futures::TryStreamExt;
use netlink_packet_route::link::{
    InfoData, InfoIpTunnel, InfoKind, LinkAttribute, LinkFlags, LinkInfo, LinkMessage,
};
use rtnetlink::{Handle, LinkIpIp, LinkMessageBuilder, LinkUnspec};

use crate::error::NetError;
use crate::model::TunnelSpec;

/// What tungate needs to know of one existing link.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkView {
    /// Interface index.
    pub index: u32,
    /// Device name.
    pub name: String,
    /// The alias (`ip link set NAME alias TEXT`), if any.
    pub alias: Option<String>,
    /// Administratively up.
    pub up: bool,
    /// The MTU.
    pub mtu: Option<u32>,
    /// For an ipip tunnel: its local and remote addresses (unspecified when wildcard).
    pub ipip: Option<(Ipv4Addr, Ipv4Addr)>,
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
pub async fn list(handle: &Handle) -> Result<Vec<LinkView>, NetError> {
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
pub fn index_of(name: &str) -> Option<u32> {
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
pub async fn create_tunnel(
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
pub async fn set_alias(handle: &Handle, name: &str, alias: &str) -> Result<(), NetError> {
    let action = format!("marking link {name} with alias {alias:?}");
    change_link(handle, name, action, |b| b.alias(alias)).await
}

/// Sets link `name` up or down.
pub async fn set_up(handle: &Handle, name: &str, up: bool) -> Result<(), NetError> {
    let action = format!("setting link {name} {}", if up { "up" } else { "down" });
    change_link(handle, name, action, |b| if up { b.up() } else { b.down() }).await
}

/// Sets the MTU of link `name`.
pub async fn set_mtu(handle: &Handle, name: &str, mtu: u32) -> Result<(), NetError> {
    let action = format!("setting the MTU of link {name} to {mtu}");
    change_link(handle, name, action, |b| b.mtu(mtu)).await
}

/// Deletes link `name`; a link that is already gone is not an error.
pub async fn delete(handle: &Handle, name: &str) -> Result<(), NetError> {
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
