//! The gateway's nftables table of `userspace` decap mode, over netlink (`nftnl` + `mnl`, no
//! `nft` binary), sent by the one batch sender in `kernel::nft`.
//!
//! `table netdev tungate { chain ingress { type filter hook ingress device INGRESS priority
//! 0; meta protocol ip ip protocol 4 ip daddr GIP drop } }`: the data path's AF_PACKET tap
//! (bound to every protocol, so it runs before the ingress hook) has already taken its copy
//! of each IPIP packet to GIP, so the kernel must neither answer it with ICMP toward the real
//! server nor handle it a second time; dropping at ingress also spares the kernel's IP layer
//! for every packet tungate takes. Installing replaces a stale table left by a crashed run in
//! the same atomic batch; removing leaves nothing behind. This module owns exactly that one
//! table and never touches any other; it does not decide when the table is wanted (the
//! control plane does, following the data path).

use std::ffi::{CStr, CString};
use std::io;
use std::net::Ipv4Addr;

use nftnl::{Batch, Chain, Hook, MsgType, Policy, ProtoFamily, Rule, Table};

use crate::error::NetError;
use crate::kernel::nft::send_batch;

/// The name of the table (family `netdev`).
const TABLE_NAME: &CStr = c"tungate";
const CHAIN_NAME: &CStr = c"ingress";
/// The netdev family's only hook, ingress, has number 0 (NF_NETDEV_INGRESS), which nftnl
/// spells as its first hook.
const HOOK_INGRESS: Hook = Hook::PreRouting;
/// The chain's priority (`filter`).
const PRIORITY: i32 = 0;
/// EtherType IPv4, as `meta protocol` holds it (network order).
const ETHERTYPE_IPV4: u16 = 0x0800;

/// Where the drop table drops: IPIP to `gateway` arriving on `ingress`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Installed {
    gateway: Ipv4Addr,
    ingress: String,
}

/// The drop table of `userspace` decap mode, kept in step with the data path by
/// [`IpipDropTable::follow`]; dropping it removes the table (in the network namespace of
/// the dropping thread).
#[derive(Debug, Default)]
pub struct IpipDropTable {
    installed: Option<Installed>,
}

impl IpipDropTable {
    /// No table installed yet (a stale one from a crashed run is replaced on install).
    pub fn new() -> Self {
        Self::default()
    }

    /// Makes the kernel match `want`: with `Some((gateway, ingress))` (the data path runs in
    /// `userspace` mode, reading `ingress`), the table drops IPIP to `gateway` arriving on
    /// `ingress`; with `None` there is no table. Nothing is sent when the table already is
    /// as wanted.
    pub fn follow(&mut self, want: Option<(Ipv4Addr, &str)>) -> Result<(), NetError> {
        let want = want.map(|(gateway, ingress)| Installed {
            gateway,
            ingress: ingress.to_owned(),
        });
        if want == self.installed {
            return Ok(());
        }
        match &want {
            Some(target) => install(target.gateway, &target.ingress)?,
            None => remove()?,
        }
        self.installed = want;
        Ok(())
    }
}

impl Drop for IpipDropTable {
    fn drop(&mut self) {
        if self.installed.is_some()
            && let Err(e) = remove()
        {
            tracing::warn!("{e}");
        }
    }
}

fn failed(action: &'static str) -> impl FnOnce(io::Error) -> NetError {
    move |source| NetError::DropTable { action, source }
}

/// Installs (or replaces) the table that drops IPIP to `gateway` arriving on `ingress`.
fn install(gateway: Ipv4Addr, ingress: &str) -> Result<(), NetError> {
    let device = CString::new(ingress).map_err(|_| {
        failed("install")(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name has a NUL",
        ))
    })?;
    let mut batch = Batch::new();
    let table = Table::new(TABLE_NAME, ProtoFamily::NetDev);
    // Adding first makes the delete succeed whether or not a stale table exists.
    batch.add(&table, MsgType::Add);
    batch.add(&table, MsgType::Del);
    batch.add(&table, MsgType::Add);
    let mut chain = Chain::new(CHAIN_NAME, &table);
    chain.set_hook(HOOK_INGRESS, PRIORITY);
    chain.set_device(&device);
    chain.set_policy(Policy::Accept);
    batch.add(&chain, MsgType::Add);
    let mut rule = Rule::new(&chain);
    rule.add_expr(&nftnl::nft_expr!(meta proto));
    rule.add_expr(&nftnl::nft_expr!(cmp == ETHERTYPE_IPV4.to_be()));
    rule.add_expr(&nftnl::nft_expr!(payload ipv4 protocol));
    rule.add_expr(&nftnl::nft_expr!(cmp == libc::IPPROTO_IPIP as u8));
    rule.add_expr(&nftnl::nft_expr!(payload ipv4 daddr));
    rule.add_expr(&nftnl::nft_expr!(cmp == gateway));
    rule.add_expr(&nftnl::nft_expr!(verdict drop));
    batch.add(&rule, MsgType::Add);
    send_batch(&batch.finalize()).map_err(failed("install"))
}

/// Removes the table if it exists (also if someone else removed it already).
fn remove() -> Result<(), NetError> {
    let mut batch = Batch::new();
    let table = Table::new(TABLE_NAME, ProtoFamily::NetDev);
    batch.add(&table, MsgType::Add);
    batch.add(&table, MsgType::Del);
    send_batch(&batch.finalize()).map_err(failed("remove"))
}
