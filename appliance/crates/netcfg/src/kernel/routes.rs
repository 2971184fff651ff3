//! IPv4 and IPv6 device routes over rtnetlink: list them with their protocol, add (or replace) and
//! delete tungate's.
//!
//! tungate's routes carry the route protocol [`OWNER_PROTOCOL`] (`proto 116` in `ip route`).
//! Only this file builds route messages.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteProtocol, RouteScope, RouteType,
};
use rtnetlink::{Handle, RouteMessageBuilder};

use crate::error::NetError;
use crate::kernel::links::index_of;
use crate::model::{OWNER_PROTOCOL, RouteSpec};
use crate::plan::Edit;

/// One unicast IPv4 route with a single output device, as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RouteView {
    /// Table, destination and device.
    pub(crate) spec: RouteSpec,
    /// Whether it carries tungate's protocol.
    pub(crate) owned: bool,
    /// Whether it has a gateway, a metric or a TOS (then it is never one of tungate's
    /// shapes, and a foreign one is not the same object as tungate's metric-0 route).
    pub(crate) has_extras: bool,
}

/// Every unicast IPv4 and IPv6 route with an output device, in every table.
pub(crate) async fn list(
    handle: &Handle,
    names: &HashMap<u32, String>,
) -> Result<Vec<RouteView>, NetError> {
    let mut messages: Vec<RouteMessage> = Vec::new();
    for request in [
        RouteMessageBuilder::<Ipv4Addr>::new().table_id(0).build(),
        RouteMessageBuilder::<Ipv6Addr>::new().table_id(0).build(),
    ] {
        let family: Vec<RouteMessage> =
            handle
                .route()
                .get(request)
                .execute()
                .try_collect()
                .await
                .map_err(|e| NetError::from_rtnetlink("listing routes", e, None))?;
        messages.extend(family);
    }
    let mut out = Vec::new();
    for msg in messages {
        let v6 = msg.header.address_family == AddressFamily::Inet6;
        if msg.header.kind != RouteType::Unicast {
            continue;
        }
        let mut table = u32::from(msg.header.table);
        let mut destination = if v6 {
            IpAddr::V6(Ipv6Addr::UNSPECIFIED)
        } else {
            IpAddr::V4(Ipv4Addr::UNSPECIFIED)
        };
        let mut device = None;
        let mut has_extras = msg.header.tos != 0;
        for attr in &msg.attributes {
            match attr {
                RouteAttribute::Table(t) => table = *t,
                RouteAttribute::Destination(RouteAddress::Inet(a)) => destination = (*a).into(),
                RouteAttribute::Destination(RouteAddress::Inet6(a)) => destination = (*a).into(),
                RouteAttribute::Oif(i) => device = names.get(i).cloned(),
                RouteAttribute::Gateway(_) | RouteAttribute::MultiPath(_) => has_extras = true,
                RouteAttribute::Priority(p) if *p != 0 => has_extras = true,
                _ => {}
            }
        }
        let Some(device) = device else { continue };
        out.push(RouteView {
            spec: RouteSpec {
                table,
                destination,
                prefix: msg.header.destination_prefix_length,
                device,
            },
            owned: msg.header.protocol == RouteProtocol::Other(OWNER_PROTOCOL),
            has_extras,
        });
    }
    Ok(out)
}

fn message(spec: &RouteSpec, index: Option<u32>) -> RouteMessage {
    fn finish<T>(b: RouteMessageBuilder<T>, spec: &RouteSpec, index: Option<u32>) -> RouteMessage {
        let b = b
            .table_id(spec.table)
            .protocol(RouteProtocol::Other(OWNER_PROTOCOL))
            .scope(RouteScope::Link)
            .kind(RouteType::Unicast);
        match index {
            Some(index) => b.output_interface(index).build(),
            None => b.build(),
        }
    }
    match spec.destination {
        IpAddr::V4(d) => finish(
            RouteMessageBuilder::<Ipv4Addr>::new().destination_prefix(d, spec.prefix),
            spec,
            index,
        ),
        IpAddr::V6(d) => finish(
            RouteMessageBuilder::<Ipv6Addr>::new().destination_prefix(d, spec.prefix),
            spec,
            index,
        ),
    }
}

fn describe(spec: &RouteSpec) -> String {
    format!(
        "{}/{} dev {} table {}",
        spec.destination, spec.prefix, spec.device, spec.table
    )
}

/// Adds `spec` marked as tungate's; with `replace`, replaces the route of the same
/// destination in the same table (an update).
pub(crate) async fn add(handle: &Handle, spec: &RouteSpec, replace: bool) -> Result<(), NetError> {
    let action = format!("adding route {}", describe(spec));
    let index = index_of(&spec.device).ok_or_else(|| NetError::MissingInterface {
        action: action.clone(),
        interface: spec.device.clone(),
        hint: String::new(),
    })?;
    let request = handle.route().add(message(spec, Some(index)));
    let request = if replace { request.replace() } else { request };
    request
        .execute()
        .await
        .map_err(|e| NetError::from_rtnetlink(action, e, Some(&spec.device)))
}

/// Deletes tungate's route `spec`; a route that is already gone is not an error.
pub(crate) async fn delete(handle: &Handle, spec: &RouteSpec) -> Result<(), NetError> {
    match handle
        .route()
        .del(message(spec, index_of(&spec.device)))
        .execute()
        .await
    {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(msg))
            if matches!(msg.raw_code().abs(), libc::ESRCH | libc::ENODEV) =>
        {
            Ok(())
        }
        Err(e) => Err(NetError::from_rtnetlink(
            format!("deleting route {}", describe(spec)),
            e,
            Some(&spec.device),
        )),
    }
}

/// The interface index the kernel would send a packet to `destination` through (`ip route
/// get`), or `None` when it has no route.
pub(crate) async fn output_interface_toward(
    handle: &Handle,
    destination: impl Into<IpAddr>,
) -> Option<u32> {
    let request = match destination.into() {
        IpAddr::V4(d) => RouteMessageBuilder::<Ipv4Addr>::new()
            .destination_prefix(d, 32)
            .table_id(0)
            .build(),
        IpAddr::V6(d) => RouteMessageBuilder::<Ipv6Addr>::new()
            .destination_prefix(d, 128)
            .table_id(0)
            .build(),
    };
    let mut answers = handle.route().get(request).execute();
    let answer = answers.try_next().await.ok().flatten()?;
    answer.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    })
}

/// Adds, replaces (in place, by destination and table) or deletes one of tungate's routes.
pub(crate) async fn apply(handle: &Handle, edit: &Edit<RouteSpec>) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) => add(handle, spec, false).await,
        Edit::Update { to, .. } => add(handle, to, true).await,
        Edit::Delete(spec) => delete(handle, spec).await,
    }
}
