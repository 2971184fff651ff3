//! The tungate-owned nftables table of `userspace` decap mode, over netlink (`nftnl` +
//! `mnl`, no `nft` binary).
//!
//! `table netdev tungate { chain ingress { type filter hook ingress device INGRESS priority
//! 0; meta protocol ip ip protocol 4 ip daddr GIP drop } }`: the AF_PACKET tap (bound
//! to every protocol, so it runs before the ingress hook) has already handed tungate its
//! copy of each IPIP packet to GIP, so the kernel must neither answer it with ICMP toward
//! the real server nor handle it a second time; dropping at ingress also spares the kernel's
//! IP layer (validation, prerouting hooks) for every packet tungate takes. Installing replaces a stale table
//! left by a crashed run in the same atomic batch; removing leaves nothing behind. This
//! module owns exactly that one table and never touches any other.

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;

use nftnl::{Batch, Chain, FinalizedBatch, Hook, MsgType, Policy, ProtoFamily, Rule, Table};

/// The name of tungate's table (family `netdev`).
pub const TABLE_NAME: &CStr = c"tungate";
const CHAIN_NAME: &CStr = c"ingress";
/// The netdev family's only hook, ingress, has number 0 (NF_NETDEV_INGRESS), which nftnl
/// spells as its first hook.
const HOOK_INGRESS: Hook = Hook::PreRouting;
/// The chain's priority (`filter`).
const PRIORITY: i32 = 0;
/// EtherType IPv4, as `meta protocol` holds it (network order).
const ETHERTYPE_IPV4: u16 = 0x0800;

/// An nftables operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The netlink conversation with nf_tables failed.
    #[error(
        "cannot {action} nftables table netdev {table} (needs CAP_NET_ADMIN and nf_tables in the \
         kernel): {source}",
        table = TABLE_NAME.to_string_lossy()
    )]
    Netlink {
        /// What was being done.
        action: &'static str,
        /// The error from the kernel.
        source: io::Error,
    },
}

/// The installed table; [`DropRule::remove`] (or dropping it) removes the table again.
#[derive(Debug)]
pub struct DropRule {
    removed: bool,
}

impl DropRule {
    /// Installs (or replaces) the table that drops IPIP to `gip` arriving on `ingress`.
    pub fn install(gip: Ipv4Addr, ingress: &str) -> Result<DropRule, NftError> {
        let device = std::ffi::CString::new(ingress).map_err(|_| NftError::Netlink {
            action: "install",
            source: io::Error::new(io::ErrorKind::InvalidInput, "interface name has a NUL"),
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
        rule.add_expr(&nftnl::nft_expr!(cmp == gip));
        rule.add_expr(&nftnl::nft_expr!(verdict drop));
        batch.add(&rule, MsgType::Add);
        send(&batch.finalize()).map_err(|source| NftError::Netlink {
            action: "install",
            source,
        })?;
        Ok(DropRule { removed: false })
    }

    /// Removes the table (also if it was already removed by someone else).
    pub fn remove(mut self) -> Result<(), NftError> {
        self.removed = true;
        remove_table()
    }
}

impl Drop for DropRule {
    fn drop(&mut self) {
        if !self.removed
            && let Err(e) = remove_table()
        {
            tracing::warn!("{e}");
        }
    }
}

/// Removes tungate's table if it exists (for cleaning up after a crashed run).
pub fn remove_table() -> Result<(), NftError> {
    let mut batch = Batch::new();
    let table = Table::new(TABLE_NAME, ProtoFamily::NetDev);
    batch.add(&table, MsgType::Add);
    batch.add(&table, MsgType::Del);
    send(&batch.finalize()).map_err(|source| NftError::Netlink {
        action: "remove",
        source,
    })
}

/// Sends a batch and waits for the kernel's acknowledgement of each message.
fn send(batch: &FinalizedBatch) -> io::Result<()> {
    let socket = mnl::Socket::new(mnl::Bus::Netfilter)?;
    // A reply that never comes must not hang start-up or shutdown.
    // SAFETY: the fd belongs to `socket`, which outlives this borrow.
    let fd =
        unsafe { std::os::fd::BorrowedFd::borrow_raw(std::os::fd::AsRawFd::as_raw_fd(&socket)) };
    super::afpacket::set_receive_timeout(fd, std::time::Duration::from_secs(5))?;
    let portid = socket.portid();
    socket.send_all(batch)?;
    let mut buffer = vec![0; nftnl::nft_nlmsg_maxsize() as usize];
    let mut expected = batch.sequence_numbers();
    while !expected.is_empty() {
        for message in socket.recv(&mut buffer[..])? {
            let message = message?;
            let Some(seq) = expected.next() else {
                return Err(io::Error::other("unexpected extra acknowledgement"));
            };
            mnl::cb_run(message, seq, portid)?;
        }
    }
    Ok(())
}
