//! IPv4 and IPv6 policy routing rules over rtnetlink: list them with their protocol, add, replace and
//! delete tungate's.
//!
//! tungate's rules carry the rule protocol [`OWNER_PROTOCOL`] (`proto 116` in `ip rule`).
//! Only this file builds rule messages.

use std::net::IpAddr;

use futures::TryStreamExt;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::route::{RouteHeader, RouteProtocol};
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use rtnetlink::{Handle, IpVersion};

use crate::error::NetError;
use crate::model::{OWNER_PROTOCOL, RuleSelector, RuleSpec};
use crate::plan::Edit;

/// One IPv4 rule of a shape tungate manages (`from ADDR/32` or `fwmark MARK`, looking up a
/// table), as found in the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RuleView {
    /// Priority, selector and table.
    pub(crate) spec: RuleSpec,
    /// Whether it carries tungate's protocol.
    pub(crate) owned: bool,
}

/// Every IPv4 rule of a shape tungate manages.
pub(crate) async fn list(handle: &Handle) -> Result<Vec<RuleView>, NetError> {
    let mut messages: Vec<RuleMessage> = Vec::new();
    for version in [IpVersion::V4, IpVersion::V6] {
        let family: Vec<RuleMessage> = handle
            .rule()
            .get(version)
            .execute()
            .try_collect()
            .await
            .map_err(|e| NetError::from_rtnetlink("listing rules", e, None))?;
        messages.extend(family);
    }
    let mut out = Vec::new();
    for msg in messages {
        if msg.header.action != RuleAction::ToTable {
            continue;
        }
        let mut table = u32::from(msg.header.table);
        let mut priority = 0;
        let mut source = None;
        let mut mark = None;
        let mut owned = false;
        let mut other_selectors = msg.header.dst_len != 0 || msg.header.tos != 0;
        for attr in &msg.attributes {
            match attr {
                RuleAttribute::Table(t) => table = *t,
                RuleAttribute::Priority(p) => priority = *p,
                RuleAttribute::Source(a) => source = Some(*a),
                RuleAttribute::FwMark(m) => mark = Some(*m),
                RuleAttribute::Protocol(p) => owned = *p == RouteProtocol::Other(OWNER_PROTOCOL),
                RuleAttribute::Iifname(_)
                | RuleAttribute::Oifname(_)
                | RuleAttribute::Destination(_)
                | RuleAttribute::IpProtocol(_)
                | RuleAttribute::SourcePortRange(_)
                | RuleAttribute::DestinationPortRange(_)
                | RuleAttribute::UidRange(_) => other_selectors = true,
                _ => {}
            }
        }
        let selector = match (source, mark) {
            (Some(addr), None) if msg.header.src_len == host_len(addr) => RuleSelector::From(addr),
            // tungate's mark rules are IPv4 (the DNAT'd containers' replies).
            (None, Some(mark)) if msg.header.family == AddressFamily::Inet => {
                RuleSelector::FwMark(mark)
            }
            _ => continue,
        };
        if other_selectors {
            continue;
        }
        out.push(RuleView {
            spec: RuleSpec {
                priority,
                selector,
                table,
            },
            owned,
        });
    }
    Ok(out)
}

/// The prefix length of one address of `addr`'s family.
fn host_len(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn message(spec: &RuleSpec) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = match spec.selector {
        RuleSelector::From(IpAddr::V6(_)) => AddressFamily::Inet6,
        _ => AddressFamily::Inet,
    };
    msg.header.action = RuleAction::ToTable;
    if spec.table > 255 {
        msg.header.table = RouteHeader::RT_TABLE_UNSPEC;
        msg.attributes.push(RuleAttribute::Table(spec.table));
    } else {
        msg.header.table = spec.table as u8;
    }
    msg.attributes.push(RuleAttribute::Priority(spec.priority));
    match spec.selector {
        RuleSelector::From(addr) => {
            msg.header.src_len = host_len(addr);
            msg.attributes.push(RuleAttribute::Source(addr));
        }
        RuleSelector::FwMark(mark) => {
            msg.attributes.push(RuleAttribute::FwMark(mark));
            msg.attributes.push(RuleAttribute::FwMask(u32::MAX));
        }
    }
    msg.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::Other(
            OWNER_PROTOCOL,
        )));
    msg
}

fn describe(spec: &RuleSpec) -> String {
    let selector = match spec.selector {
        RuleSelector::From(a) => format!("from {a}"),
        RuleSelector::FwMark(m) => format!("fwmark {m:#x}"),
    };
    format!("pref {} {selector} lookup {}", spec.priority, spec.table)
}

/// Adds rule `spec`, marked as tungate's.
pub(crate) async fn add(handle: &Handle, spec: &RuleSpec) -> Result<(), NetError> {
    let add = handle.rule().add();
    let result = match spec.selector {
        RuleSelector::From(IpAddr::V6(_)) => {
            let mut request = add.v6();
            *request.message_mut() = message(spec);
            request.execute().await
        }
        _ => {
            let mut request = add.v4();
            *request.message_mut() = message(spec);
            request.execute().await
        }
    };
    result.map_err(|e| NetError::from_rtnetlink(format!("adding rule {}", describe(spec)), e, None))
}

/// Deletes tungate's rule `spec`; a rule that is already gone is not an error.
pub(crate) async fn delete(handle: &Handle, spec: &RuleSpec) -> Result<(), NetError> {
    match handle.rule().del(message(spec)).execute().await {
        Ok(()) => Ok(()),
        Err(rtnetlink::Error::NetlinkError(msg)) if msg.raw_code().abs() == libc::ENOENT => Ok(()),
        Err(e) => Err(NetError::from_rtnetlink(
            format!("deleting rule {}", describe(spec)),
            e,
            None,
        )),
    }
}

/// Adds, replaces (delete, then add) or deletes one of tungate's rules.
pub(crate) async fn apply(handle: &Handle, edit: &Edit<RuleSpec>) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) => add(handle, spec).await,
        Edit::Update { from, to } => {
            delete(handle, from).await?;
            add(handle, to).await
        }
        Edit::Delete(spec) => delete(handle, spec).await,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    #[test]
    fn a_from_rule_message_carries_source_table_priority_and_protocol() {
        let msg = message(&RuleSpec {
            priority: 1000,
            selector: RuleSelector::From(Ipv4Addr::new(192, 0, 2, 10).into()),
            table: 1,
        });
        assert_eq!(msg.header.src_len, 32);
        assert_eq!(msg.header.table, 1);
        assert!(msg.attributes.contains(&RuleAttribute::Priority(1000)));
        assert!(
            msg.attributes
                .contains(&RuleAttribute::Protocol(RouteProtocol::Other(116)))
        );
        let big = message(&RuleSpec {
            priority: 5,
            selector: RuleSelector::FwMark(7),
            table: 1000,
        });
        assert_eq!(big.header.table, 0);
        assert!(big.attributes.contains(&RuleAttribute::Table(1000)));
    }
}
