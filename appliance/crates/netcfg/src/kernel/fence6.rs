//! The real server's IPv6 tunnel fence (`tungate rs apply --director`): tungate's table
//! `ip6 tungate_rs` that drops, in prerouting at priority raw, IPv6 tunnel packets that do
//! not come from an IPv6 director, over netlink (`nftnl`, sent by the one batch sender in
//! `kernel::nft`).
//!
//! ```text
//! table ip6 tungate_rs {
//!   chain fence { type filter hook prerouting priority -300; policy accept;
//!     meta l4proto 41 ip6 saddr != D1 ... counter drop comment "tungate: drop ipv6 ip6ip6 (41) not from D1"
//!     meta l4proto 4 ip6 saddr != D1 ... counter drop comment "tungate: drop ipv6 4in6 (4) not from D1" } }
//! ```
//! The IPv6 counterpart of the IPv4 fence in `ip tungate_rs` (CVE-2020-10136: an `ip6tnl0`
//! that is up accepts ip6ip6 and 4in6 from anyone, `ip6gre0` GRE). `meta l4proto` is the
//! protocol the kernel finds after walking the extension headers (`ipv6_find_hdr`), so a
//! packet whose tunnel header follows a Destination Options header (what a stock `ip6tnl`
//! sends: its encapsulation limit) or a fragment header is matched too; a packet whose
//! extension headers the kernel cannot walk has no `l4proto` and is not matched here (the
//! IPv6 stack drops such a packet itself).
//!
//! This module owns exactly the table `ip6 tungate_rs`; the plan decides when it is wanted
//! (one item of the RS's desired state: `rs plan` shows it, `rs down` removes it). A change
//! replaces the whole table in one atomic batch, so the fence never has a gap.

use std::ffi::{CStr, CString};
use std::io;
use std::net::Ipv6Addr;

use nftnl::nftnl_sys::libc;
use nftnl::{Batch, MsgType, ProtoFamily, Rule, Table};

use crate::error::NetError;
use crate::kernel::nft::{
    delete_table_if_present, replace_with_prerouting_chain, send_batch, table_rule_comments,
};
use crate::model::{FENCE6_TABLE, Fence6Spec, FencedProtocol, NFT_TABLE};
use crate::plan::Edit;

const TABLE_NAME: &CStr = c"tungate_rs";
const CHAIN_NAME: &CStr = c"fence";
/// `raw`: before connection tracking and before the tunnel devices see the packet.
const PRIORITY: i32 = -300;
/// The protocols a fence can hold, to read comments back.
const KNOWN: [FencedProtocol; 3] = [
    FencedProtocol::Ip6ip6,
    FencedProtocol::Ipip,
    FencedProtocol::Gre,
];

fn failed(action: &str) -> impl FnOnce(io::Error) -> NetError {
    let action = format!("{action} table {FENCE6_TABLE}");
    move |source| match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => NetError::PermissionDenied {
            action: format!("nftables, {action}"),
        },
        _ => NetError::Nftables { action, source },
    }
}

/// The protocol and directors a comment of tungate's describes (`None`: not one of its).
fn parse_comment(comment: &str) -> Option<(FencedProtocol, Vec<Ipv6Addr>)> {
    let rest = comment.strip_prefix("tungate: drop ipv6 ")?;
    let (what, from) = rest.split_once(" not from ")?;
    let protocol = KNOWN
        .into_iter()
        .find(|p| what == format!("{} ({})", p.as_str6(), p.number()))?;
    let directors = if from == "(no ipv6 director)" {
        Vec::new()
    } else {
        from.split(',')
            .map(|d| d.parse().ok())
            .collect::<Option<Vec<Ipv6Addr>>>()?
    };
    Some((protocol, directors))
}

/// The spec that the rules with `comments` describe: rules whose comments are not
/// tungate's, or that name other directors than the first rule, are kept as foreign (so
/// the plan replaces the table).
fn spec_from_comments(comments: Vec<String>) -> Fence6Spec {
    let mut spec = Fence6Spec {
        protocols: Vec::new(),
        directors: Vec::new(),
        foreign: Vec::new(),
    };
    for comment in comments {
        match parse_comment(&comment) {
            Some((protocol, directors))
                if spec.protocols.is_empty() || directors == spec.directors =>
            {
                spec.protocols.push(protocol);
                spec.directors = directors;
            }
            _ => spec.foreign.push(comment),
        }
    }
    spec
}

/// The fence as the kernel has it: `None` when the table does not exist.
pub(crate) fn observe() -> Result<Option<Fence6Spec>, NetError> {
    let comments = table_rule_comments(NFT_TABLE, libc::NFPROTO_IPV6).map_err(failed("reading"))?;
    Ok(comments.map(spec_from_comments))
}

/// The batch that replaces the table with one holding `spec`'s rules.
fn install_batch(spec: &Fence6Spec) -> Result<Batch, NetError> {
    let mut batch = Batch::new();
    let table = Table::new(TABLE_NAME, ProtoFamily::Ipv6);
    let chain = replace_with_prerouting_chain(&mut batch, &table, CHAIN_NAME, PRIORITY);
    for protocol in &spec.protocols {
        let comment = CString::new(spec.comment(*protocol)).map_err(|_| {
            failed("installing")(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a comment has a NUL",
            ))
        })?;
        let mut rule = Rule::new(&chain);
        rule.add_expr(&nftnl::nft_expr!(meta l4proto));
        rule.add_expr(&nftnl::nft_expr!(cmp == protocol.number()));
        for director in &spec.directors {
            rule.add_expr(&nftnl::nft_expr!(payload ipv6 saddr));
            rule.add_expr(&nftnl::nft_expr!(cmp != *director));
        }
        rule.add_expr(&nftnl::nft_expr!(counter));
        rule.add_expr(&nftnl::nft_expr!(verdict drop));
        rule.set_comment(&comment)
            .map_err(|e| failed("installing")(io::Error::new(io::ErrorKind::InvalidInput, e)))?;
        batch.add(&rule, MsgType::Add);
    }
    Ok(batch)
}

/// Creates or replaces the fence (atomically), or deletes it (a missing table is fine).
pub(crate) fn apply(edit: &Edit<Fence6Spec>) -> Result<(), NetError> {
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

    fn spec() -> Fence6Spec {
        Fence6Spec {
            protocols: vec![FencedProtocol::Ip6ip6, FencedProtocol::Ipip],
            directors: vec![
                "2001:db8::2".parse().unwrap(),
                "2001:db8::3".parse().unwrap(),
            ],
            foreign: Vec::new(),
        }
    }

    #[test]
    fn each_protocol_gets_one_rule_whose_comment_reads_back() {
        let spec = spec();
        // Batch begin, table add, del, add, chain, two rules, batch end.
        assert_eq!(
            install_batch(&spec)
                .unwrap()
                .finalize()
                .sequence_numbers()
                .count(),
            8
        );
        assert_eq!(
            spec.comments(),
            [
                "tungate: drop ipv6 ip6ip6 (41) not from 2001:db8::2,2001:db8::3",
                "tungate: drop ipv6 4in6 (4) not from 2001:db8::2,2001:db8::3",
            ]
        );
        assert_eq!(spec_from_comments(spec.comments()), spec);
        let none = Fence6Spec {
            directors: Vec::new(),
            ..spec
        };
        assert_eq!(
            none.comment(FencedProtocol::Gre),
            "tungate: drop ipv6 gre (47) not from (no ipv6 director)"
        );
        assert_eq!(spec_from_comments(none.comments()), none);
    }

    #[test]
    fn comments_not_tungates_or_disagreeing_are_kept_as_foreign() {
        let mut comments = spec().comments();
        comments.push("someone's rule".into());
        comments.push("tungate: drop ipv6 gre (47) not from 2001:db8::9".into());
        comments.push("tungate: drop ipv6 ip6ip6 (41) not from not-an-address".into());
        let found = spec_from_comments(comments);
        assert_eq!(found.protocols, spec().protocols);
        assert_eq!(found.foreign.len(), 3, "{found:?}");
        assert_ne!(found.comments(), spec().comments());
    }
}
