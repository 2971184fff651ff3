//! The IPv6 forwarding guard of `kernel` decap: tungate's nftables table that drops, in
//! prerouting, every IPv6 packet that comes out of one of tungate's tunnel devices, over
//! netlink (`nftnl`, sent by the one batch sender in `kernel::nft`).
//!
//! ```text
//! table ip6 tungate_guard {
//!   chain prerouting { type filter hook prerouting priority -300; policy accept;
//!     iifname "tg-rs1" counter drop comment "tungate: drop ipv6 arriving on tg-rs1" } }
//! ```
//! IPv4 has a per-device switch (`net.ipv4.conf.DEV.forwarding=0`: what arrives on the
//! tunnel is dropped, never forwarded); IPv6 has none (`net.ipv6.conf.DEV.forwarding` does
//! not stop forwarding while `all.forwarding=1`). Without the guard, a host that forwards
//! IPv6 would forward each decapsulated reply itself, beside tungate's copy: a duplicate at
//! the client, with no plugin run. The drop is in prerouting rather than in the forward
//! hook because the kernel's forward path acts before its hook (hop limit exceeded and
//! Packet Too Big answers, redirects); at priority raw it is before conntrack too. The data
//! path's AF_PACKET sockets on the device see each packet before prerouting, so they have
//! their copy already.
//!
//! This module owns exactly the table `ip6 tungate_guard`; the plan decides when it is
//! wanted (one item of the gateway's desired state: `net plan` shows it, `net down`
//! removes it). A change replaces the whole table in one atomic batch, so the devices are
//! never unguarded in between.

use std::ffi::{CStr, CString};
use std::io;

use nftnl::expr::InterfaceName;
use nftnl::nftnl_sys::libc;
use nftnl::{Batch, MsgType, ProtoFamily, Rule, Table};

use crate::error::NetError;
use crate::kernel::nft::{
    delete_table_if_present, replace_with_prerouting_chain, send_batch, table_rule_comments,
};
use crate::model::{GUARD_TABLE, GuardSpec};
use crate::plan::Edit;

const TABLE_NAME: &CStr = c"tungate_guard";
const CHAIN_NAME: &CStr = c"prerouting";
/// `raw`: before connection tracking.
const PRIORITY: i32 = -300;
/// The start of each rule's comment; the device name follows.
const COMMENT_PREFIX: &str = "tungate: drop ipv6 arriving on ";

fn failed(action: &str) -> impl FnOnce(io::Error) -> NetError {
    let action = format!("{action} table {GUARD_TABLE}");
    move |source| match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => NetError::PermissionDenied {
            action: format!("nftables, {action}"),
        },
        _ => NetError::Nftables { action, source },
    }
}

/// The comment (and identity) of the rule that guards `device`.
pub(crate) fn rule_comment(device: &str) -> String {
    format!("{COMMENT_PREFIX}{device}")
}

/// The guard as the kernel has it: `None` when the table does not exist. Devices are
/// read from the rules' comments (a rule without tungate's comment shows as a device
/// name no configuration has, so the plan replaces the table).
pub(crate) fn observe() -> Result<Option<GuardSpec>, NetError> {
    let comments =
        table_rule_comments(GUARD_TABLE_NAME, libc::NFPROTO_IPV6).map_err(failed("reading"))?;
    Ok(comments.map(|comments| GuardSpec {
        devices: comments
            .into_iter()
            .map(|c| match c.strip_prefix(COMMENT_PREFIX) {
                Some(device) => device.to_owned(),
                None => format!("(a rule not tungate's: {c:?})"),
            })
            .collect(),
    }))
}

/// The name of the table without its family, as the kernel lists it.
const GUARD_TABLE_NAME: &str = "tungate_guard";

/// The batch that replaces the table with one that guards `spec.devices`.
fn install_batch(spec: &GuardSpec) -> Result<Batch, NetError> {
    let mut batch = Batch::new();
    let table = Table::new(TABLE_NAME, ProtoFamily::Ipv6);
    let chain = replace_with_prerouting_chain(&mut batch, &table, CHAIN_NAME, PRIORITY);
    for device in &spec.devices {
        let invalid = |what: &str| {
            failed("installing")(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("device {device:?}: {what} has a NUL"),
            ))
        };
        let name = CString::new(device.as_str()).map_err(|_| invalid("the name"))?;
        let comment = CString::new(rule_comment(device)).map_err(|_| invalid("the comment"))?;
        let mut rule = Rule::new(&chain);
        rule.add_expr(&nftnl::nft_expr!(meta iifname));
        rule.add_expr(&nftnl::nft_expr!(cmp == &InterfaceName::Exact(name)));
        rule.add_expr(&nftnl::nft_expr!(counter));
        rule.add_expr(&nftnl::nft_expr!(verdict drop));
        rule.set_comment(&comment)
            .map_err(|e| failed("installing")(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        batch.add(&rule, MsgType::Add);
    }
    Ok(batch)
}

/// Creates or replaces the guard (atomically), or deletes it (a missing table is fine).
pub(crate) fn apply(edit: &Edit<GuardSpec>) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) | Edit::Update { to: spec, .. } => {
            send_batch(&install_batch(spec)?.finalize()).map_err(failed("installing"))
        }
        Edit::Delete(_) => delete_table_if_present(TABLE_NAME, ProtoFamily::Ipv6)
            .map(|_existed| ())
            .map_err(failed("deleting")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_device_gets_one_rule_whose_comment_names_it() {
        let spec = GuardSpec {
            devices: vec!["tg-rs1".into(), "tg-rs2".into()],
        };
        let batch = install_batch(&spec).unwrap().finalize();
        // Batch begin, table add, del, add, chain, two rules, batch end.
        assert_eq!(batch.sequence_numbers().count(), 8);
        assert_eq!(
            rule_comment("tg-rs1"),
            "tungate: drop ipv6 arriving on tg-rs1"
        );
        let bad = GuardSpec {
            devices: vec!["tg\0x".into()],
        };
        assert!(matches!(
            install_batch(&bad),
            Err(NetError::Nftables { .. })
        ));
    }
}
