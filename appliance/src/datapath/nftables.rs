//! The tungate-owned nftables table of `userspace` decap mode, over netlink (`nftnl` +
//! `mnl`, no `nft` binary).
//!
//! `table ip tungate { chain prerouting { type filter hook prerouting priority raw; ip
//! daddr GIP ip protocol 4 counter drop } }`: the AF_PACKET tap has already handed tungate
//! its copy of each IPIP packet to GIP, so the kernel must neither answer it with ICMP
//! toward the real server nor handle it a second time. Installing replaces a stale table
//! left by a crashed run in the same atomic batch; removing leaves nothing behind. This
//! module owns exactly that one table and never touches any other.

use std::ffi::CStr;
use std::io;
use std::net::Ipv4Addr;

use nftnl::{Batch, Chain, FinalizedBatch, Hook, MsgType, Policy, ProtoFamily, Rule, Table};

/// The name of tungate's table (family `ip`).
pub const TABLE_NAME: &CStr = c"tungate";
const CHAIN_NAME: &CStr = c"prerouting";
/// nftables' `raw` priority (NF_IP_PRI_RAW).
const PRIORITY_RAW: i32 = -300;

/// An nftables operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// The netlink conversation with nf_tables failed.
    #[error(
        "cannot {action} nftables table ip {table} (needs CAP_NET_ADMIN and nf_tables in the \
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
    /// Installs (or replaces) the table that drops IPIP to `gip` in prerouting.
    pub fn install(gip: Ipv4Addr) -> Result<DropRule, NftError> {
        let mut batch = Batch::new();
        let table = Table::new(TABLE_NAME, ProtoFamily::Ipv4);
        // Adding first makes the delete succeed whether or not a stale table exists.
        batch.add(&table, MsgType::Add);
        batch.add(&table, MsgType::Del);
        batch.add(&table, MsgType::Add);
        let mut chain = Chain::new(CHAIN_NAME, &table);
        chain.set_hook(Hook::PreRouting, PRIORITY_RAW);
        chain.set_policy(Policy::Accept);
        batch.add(&chain, MsgType::Add);
        let mut rule = Rule::new(&chain);
        rule.add_expr(&nftnl::nft_expr!(payload ipv4 protocol));
        rule.add_expr(&nftnl::nft_expr!(cmp == libc::IPPROTO_IPIP as u8));
        rule.add_expr(&nftnl::nft_expr!(payload ipv4 daddr));
        rule.add_expr(&nftnl::nft_expr!(cmp == gip));
        rule.add_expr(&nftnl::nft_expr!(counter));
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
    let table = Table::new(TABLE_NAME, ProtoFamily::Ipv4);
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
