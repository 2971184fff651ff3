//! IPv4 and IPv6 addresses over rtnetlink: list them with their owner protocol, add, replace and
//! delete tungate's.
//!
//! tungate marks its addresses with the address protocol (`IFA_PROTO`, Linux 6.1 and later;
//! `ip address` shows `proto 116`). Only this file builds address messages.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::{AddressAttribute, AddressProtocol};
use rtnetlink::{AddressMessageBuilder, Handle};

use crate::error::NetError;
use crate::kernel::links::index_of;
use crate::model::{AddressSpec, OWNER_PROTOCOL};
use crate::plan::Edit;

/// One IPv4 address as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AddressView {
    /// The address, its prefix and its device's name.
    pub(crate) spec: AddressSpec,
    /// Whether it carries tungate's protocol mark.
    pub(crate) owned: bool,
}

/// Every IPv4 address in this namespace; `names` maps interface indexes to names.
pub(crate) async fn list(
    handle: &Handle,
    names: &HashMap<u32, String>,
) -> Result<Vec<AddressView>, NetError> {
    let request = handle.address().get();
    let messages: Vec<_> = request
        .execute()
        .try_collect()
        .await
        .map_err(|e| NetError::from_rtnetlink("listing addresses", e, None))?;
    let mut out = Vec::new();
    for msg in messages {
        if !matches!(
            msg.header.family,
            AddressFamily::Inet | AddressFamily::Inet6
        ) {
            continue;
        }
        let mut local = None;
        let mut address = None;
        let mut owned = false;
        for attr in &msg.attributes {
            match attr {
                AddressAttribute::Local(a) => local = Some(*a),
                AddressAttribute::Address(a) => address = Some(*a),
                AddressAttribute::Protocol(AddressProtocol::Other(p)) => {
                    owned = *p == OWNER_PROTOCOL;
                }
                _ => {}
            }
        }
        let (Some(addr), Some(device)) = (local.or(address), names.get(&msg.header.index)) else {
            continue;
        };
        out.push(AddressView {
            spec: AddressSpec {
                device: device.clone(),
                address: addr,
                prefix: msg.header.prefix_len,
            },
            owned,
        });
    }
    Ok(out)
}

fn message(spec: &AddressSpec, index: u32) -> netlink_packet_route::address::AddressMessage {
    let mut msg = match spec.address {
        IpAddr::V4(a) => AddressMessageBuilder::<Ipv4Addr>::new()
            .index(index)
            .address(a, spec.prefix)
            .build(),
        IpAddr::V6(a) => AddressMessageBuilder::<Ipv6Addr>::new()
            .index(index)
            .address(a, spec.prefix)
            .build(),
    };
    msg.attributes
        .push(AddressAttribute::Protocol(AddressProtocol::Other(
            OWNER_PROTOCOL,
        )));
    msg
}

fn describe(spec: &AddressSpec) -> String {
    format!("{}/{} on {}", spec.address, spec.prefix, spec.device)
}

/// Adds `spec`, marked as tungate's.
pub(crate) async fn add(handle: &Handle, spec: &AddressSpec) -> Result<(), NetError> {
    let action = format!("adding address {}", describe(spec));
    let index = index_of(&spec.device).ok_or_else(|| NetError::MissingInterface {
        action: action.clone(),
        interface: spec.device.clone(),
        hint: if spec.device == "tunl0" {
            " (tunl0 appears when the ipip module is loaded: load it, or put the VIPs on lo)".into()
        } else {
            String::new()
        },
    })?;
    let mut request = handle.address().add(index, spec.address, spec.prefix);
    *request.message_mut() = message(spec, index);
    request
        .execute()
        .await
        .map_err(|e| NetError::from_rtnetlink(action, e, Some(&spec.device)))
}

/// Deletes `spec`; an address (or device) that is already gone is not an error.
pub(crate) async fn delete(handle: &Handle, spec: &AddressSpec) -> Result<(), NetError> {
    let Some(index) = index_of(&spec.device) else {
        return Ok(());
    };
    match handle.address().del(message(spec, index)).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(msg))
            if matches!(msg.raw_code().abs(), libc::EADDRNOTAVAIL | libc::ENODEV) =>
        {
            Ok(())
        }
        Err(e) => Err(NetError::from_rtnetlink(
            format!("deleting address {}", describe(spec)),
            e,
            Some(&spec.device),
        )),
    }
}

/// Adds, replaces (delete, then add) or deletes one of tungate's addresses.
pub(crate) async fn apply(handle: &Handle, edit: &Edit<AddressSpec>) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) => add(handle, spec).await,
        Edit::Update { from, to } => {
            delete(handle, from).await?;
            add(handle, to).await
        }
        Edit::Delete(spec) => delete(handle, spec).await,
    }
}
