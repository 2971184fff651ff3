//! tungate's nftables table on a real server, over netlink with the `nftnl` and `mnl` crates
//! (never the `nft` binary): read it back, create it with its chains, add and delete rules;
//! and the one nftables batch sender ([`send_batch`]), which the gateway's tunnel fence
//! (`kernel::fence`) and the gateway's IPv6 forwarding guard (`kernel::guard`) use too.
//!
//! The table is `ip tungate_rs` and belongs to tungate whole: `down` deletes it. Each rule
//! carries its description as its comment, which is how the plan recognises it. This module
//! never touches any other table.

use std::ffi::{CStr, CString};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, BorrowedFd};

use nftnl::expr::{ConntrackStatus, Immediate, Nat, NatType, Payload, Register};
use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{
    Batch, Chain, ChainType, FinalizedBatch, Hook, MsgType, Policy, ProtoFamily, Rule, Table,
    nft_expr,
};

use crate::error::NetError;
use crate::model::{FoundNftRule, L4Protocol, NFT_TABLE, NftChain, NftRuleSpec, NftTableSpec};
use crate::plan::{Edit, NftRuleChange};

/// Priority of the DNAT chain (`dstnat`).
const PRIORITY_DSTNAT: i32 = -100;
/// Priority of the reply-marking chain (`mangle`): before the routing decision.
const PRIORITY_MANGLE: i32 = -150;
/// Priority of the fence chain (`raw`): before conntrack and everything else.
const PRIORITY_RAW: i32 = -300;
/// The `udata` type of a rule comment in libnftnl.
const UDATA_RULE_COMMENT: u8 = 0;

/// tungate's table as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct NftView {
    /// The chains present.
    pub(crate) chains: Vec<String>,
    /// The rules present.
    pub(crate) rules: Vec<FoundNftRule>,
}

fn table_name() -> CString {
    CString::new(NFT_TABLE).expect("the table name has no NUL")
}

fn chain_cname(chain: NftChain) -> CString {
    CString::new(chain.name()).expect("chain names have no NUL")
}

fn nft_error(action: impl Into<String>) -> impl FnOnce(io::Error) -> NetError {
    let action = action.into();
    move |source| match source.raw_os_error() {
        Some(libc::EPERM | libc::EACCES) => NetError::PermissionDenied {
            action: format!("nftables, {action}"),
        },
        _ => NetError::Nftables { action, source },
    }
}

/// How long the batch sender waits for an acknowledgement: a reply that never comes must
/// not hang an apply, the gateway's start-up or its shutdown.
const ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Sends a batch to nf_tables and waits for the kernel's acknowledgement of each message:
/// the one nftables batch sender (tungate's RS table and the gateway's tunnel fence).
pub(crate) fn send_batch(batch: &FinalizedBatch) -> io::Result<()> {
    let socket = mnl::Socket::new(mnl::Bus::Netfilter)?;
    // SAFETY: the descriptor belongs to `socket`, which outlives this borrow.
    let fd = unsafe { BorrowedFd::borrow_raw(socket.as_raw_fd()) };
    nix::sys::socket::setsockopt(
        &fd,
        nix::sys::socket::sockopt::ReceiveTimeout,
        &nix::sys::time::TimeVal::new(ACK_TIMEOUT.as_secs() as _, 0),
    )?;
    let portid = socket.portid();
    socket.send_all(batch)?;
    let mut buffer = AlignedBuffer::new();
    let mut expected = batch.sequence_numbers();
    while !expected.is_empty() {
        for message in socket.recv(buffer.bytes_mut())? {
            let message = message?;
            let Some(seq) = expected.next() else {
                return Err(io::Error::other("unexpected extra acknowledgement"));
            };
            mnl::cb_run(message, seq, portid)?;
        }
    }
    Ok(())
}

/// Adds to `batch` what replaces `table` (whether or not it exists) with an empty one
/// holding one base filter chain `name` in prerouting at `priority`, accepting by default;
/// returns that chain, for the rules the caller adds after it.
pub(crate) fn replace_with_prerouting_chain<'a>(
    batch: &mut Batch,
    table: &'a Table,
    name: &CStr,
    priority: i32,
) -> Chain<'a> {
    // Adding first makes the delete succeed whether or not the table exists.
    batch.add(table, MsgType::Add);
    batch.add(table, MsgType::Del);
    batch.add(table, MsgType::Add);
    let mut chain = Chain::new(name, table);
    chain.set_hook(Hook::PreRouting, priority);
    chain.set_type(ChainType::Filter);
    chain.set_policy(Policy::Accept);
    batch.add(&chain, MsgType::Add);
    chain
}

/// Deletes the table `name` of `family` with everything in it; whether it existed (a
/// missing table is not an error).
pub(crate) fn delete_table_if_present(name: &CStr, family: ProtoFamily) -> io::Result<bool> {
    let mut batch = Batch::new();
    batch.add(&Table::new(name, family), MsgType::Del);
    match send_batch(&batch.finalize()) {
        Ok(()) => Ok(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Sends a batch of changes to tungate's RS table; failures say what was being done.
fn send_rs_batch(batch: &FinalizedBatch, action: &str) -> Result<(), NetError> {
    send_batch(batch).map_err(nft_error(action))
}

/// A receive buffer aligned for `nlmsghdr`, as `mnl` requires.
struct AlignedBuffer(Vec<u64>);

impl AlignedBuffer {
    fn new() -> Self {
        Self(vec![
            0u64;
            (nftnl::nft_nlmsg_maxsize() as usize)
                .div_ceil(8)
                .max(1024)
        ])
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        let len = self.0.len() * 8;
        // SAFETY: a `Vec<u64>` is `len` initialised bytes, u8 has no alignment requirement,
        // and the returned slice borrows `self` mutably, so nothing else aliases it.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_mut_ptr().cast::<u8>(), len) }
    }
}

/// Sends one dump request (built by `build` into a buffer) and hands every answer to
/// `parse`, until the kernel says it is done.
fn dump<T>(
    build: impl FnOnce(&mut [u8], u32) -> usize,
    parse: mnl::Callback<T>,
    data: &mut T,
) -> io::Result<()> {
    let socket = mnl::Socket::new(mnl::Bus::Netfilter)?;
    let portid = socket.portid();
    let seq = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as u32)
        .unwrap_or(1);
    let mut request = AlignedBuffer::new();
    let len = build(request.bytes_mut(), seq);
    socket.send(&request.bytes_mut()[..len])?;
    let mut buffer = AlignedBuffer::new();
    loop {
        let n = socket.recv_raw(buffer.bytes_mut())?;
        if n == 0 {
            return Ok(());
        }
        match mnl::cb_run2(&buffer.bytes_mut()[..n], seq, portid, parse, data)? {
            mnl::CbResult::Stop => return Ok(()),
            mnl::CbResult::Ok => {}
        }
    }
}

/// Builds the header (and, through `payload`, the body) of a dump request; returns its length.
fn build_dump(
    buf: &mut [u8],
    seq: u32,
    msg_type: u16,
    family: i32,
    payload: impl FnOnce(*mut libc::nlmsghdr),
) -> usize {
    // SAFETY: `buf` is at least `nft_nlmsg_maxsize()` bytes and aligned for nlmsghdr (an
    // AlignedBuffer); libnftnl writes one header into it and returns a pointer into it.
    let header = unsafe {
        sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast(),
            msg_type,
            family as u16,
            (libc::NLM_F_DUMP | libc::NLM_F_ACK) as u16,
            seq,
        )
    };
    payload(header);
    // SAFETY: `header` points at the header libnftnl just wrote inside `buf`.
    unsafe { (*header).nlmsg_len as usize }
}

fn owned_str(ptr: *const libc::c_char) -> String {
    if ptr.is_null() {
        return String::new();
    }
    // SAFETY: libnftnl returns NUL-terminated strings owned by the parsed object, which is
    // alive for the duration of this call.
    unsafe { CStr::from_ptr(ptr) }
        .to_string_lossy()
        .into_owned()
}

fn on_table(header: &libc::nlmsghdr, names: &mut Vec<String>) -> libc::c_int {
    // SAFETY: allocation of an empty libnftnl object; checked for null below.
    let table = unsafe { sys::nftnl_table_alloc() };
    if table.is_null() {
        return mnl::mnl_sys::MNL_CB_ERROR;
    }
    // SAFETY: `header` is a complete netlink message handed over by mnl; `table` is valid and
    // freed exactly once at the end.
    unsafe {
        if sys::nftnl_table_nlmsg_parse(header, table) >= 0 {
            names.push(owned_str(sys::nftnl_table_get_str(
                table,
                sys::NFTNL_TABLE_NAME as u16,
            )));
        }
        sys::nftnl_table_free(table);
    }
    mnl::mnl_sys::MNL_CB_OK
}

fn on_chain(header: &libc::nlmsghdr, chains: &mut Vec<(String, String)>) -> libc::c_int {
    // SAFETY: allocation of an empty libnftnl object; checked for null below.
    let chain = unsafe { sys::nftnl_chain_alloc() };
    if chain.is_null() {
        return mnl::mnl_sys::MNL_CB_ERROR;
    }
    // SAFETY: as in `on_table`.
    unsafe {
        if sys::nftnl_chain_nlmsg_parse(header, chain) >= 0 {
            chains.push((
                owned_str(sys::nftnl_chain_get_str(
                    chain,
                    sys::NFTNL_CHAIN_TABLE as u16,
                )),
                owned_str(sys::nftnl_chain_get_str(
                    chain,
                    sys::NFTNL_CHAIN_NAME as u16,
                )),
            ));
        }
        sys::nftnl_chain_free(chain);
    }
    mnl::mnl_sys::MNL_CB_OK
}

fn on_rule(header: &libc::nlmsghdr, rules: &mut Vec<(String, FoundNftRule)>) -> libc::c_int {
    // SAFETY: allocation of an empty libnftnl object; checked for null below.
    let rule = unsafe { sys::nftnl_rule_alloc() };
    if rule.is_null() {
        return mnl::mnl_sys::MNL_CB_ERROR;
    }
    // SAFETY: as in `on_table`; the user data pointer is valid for `len` bytes while `rule`
    // lives, and is copied before `rule` is freed.
    unsafe {
        if sys::nftnl_rule_nlmsg_parse(header, rule) >= 0 {
            let table = owned_str(sys::nftnl_rule_get_str(rule, sys::NFTNL_RULE_TABLE as u16));
            let chain = owned_str(sys::nftnl_rule_get_str(rule, sys::NFTNL_RULE_CHAIN as u16));
            let handle = sys::nftnl_rule_get_u64(rule, sys::NFTNL_RULE_HANDLE as u16);
            let mut len = 0u32;
            let data = sys::nftnl_rule_get_data(rule, sys::NFTNL_RULE_USERDATA as u16, &mut len);
            let udata = if data.is_null() {
                Vec::new()
            } else {
                std::slice::from_raw_parts(data.cast::<u8>(), len as usize).to_vec()
            };
            rules.push((
                table,
                FoundNftRule {
                    chain,
                    handle,
                    comment: comment_from_udata(&udata),
                },
            ));
        }
        sys::nftnl_rule_free(rule);
    }
    mnl::mnl_sys::MNL_CB_OK
}

/// Extracts the comment from a rule's user data (type-length-value records).
fn comment_from_udata(mut udata: &[u8]) -> String {
    while udata.len() >= 2 {
        let (kind, len) = (udata[0], udata[1] as usize);
        let Some(value) = udata.get(2..2 + len) else {
            break;
        };
        if kind == UDATA_RULE_COMMENT {
            let end = value.iter().position(|&b| b == 0).unwrap_or(value.len());
            return String::from_utf8_lossy(&value[..end]).into_owned();
        }
        udata = &udata[2 + len..];
    }
    String::new()
}

/// Reads tungate's table back: `None` when it does not exist.
pub(crate) fn observe() -> Result<Option<NftView>, NetError> {
    let mut tables = Vec::new();
    dump(
        |buf, seq| {
            build_dump(
                buf,
                seq,
                libc::NFT_MSG_GETTABLE as u16,
                libc::NFPROTO_IPV4,
                |_| {},
            )
        },
        on_table,
        &mut tables,
    )
    .map_err(nft_error("listing tables"))?;
    if !tables.iter().any(|t| t == NFT_TABLE) {
        return Ok(None);
    }
    let mut chains = Vec::new();
    dump(
        |buf, seq| {
            build_dump(
                buf,
                seq,
                libc::NFT_MSG_GETCHAIN as u16,
                libc::NFPROTO_IPV4,
                |_| {},
            )
        },
        on_chain,
        &mut chains,
    )
    .map_err(nft_error("listing chains"))?;
    let mut rules = Vec::new();
    dump(
        |buf, seq| {
            build_dump(
                buf,
                seq,
                libc::NFT_MSG_GETRULE as u16,
                libc::NFPROTO_IPV4,
                |header| {
                    let name = table_name();
                    // SAFETY: a fresh rule object carries only the table filter; libnftnl copies
                    // the string; the object is freed right after its payload is written into
                    // the request that `header` starts.
                    unsafe {
                        let filter = sys::nftnl_rule_alloc();
                        if !filter.is_null() {
                            sys::nftnl_rule_set_str(
                                filter,
                                sys::NFTNL_RULE_TABLE as u16,
                                name.as_ptr(),
                            );
                            sys::nftnl_rule_set_u32(
                                filter,
                                sys::NFTNL_RULE_FAMILY as u16,
                                libc::NFPROTO_IPV4 as u32,
                            );
                            sys::nftnl_rule_nlmsg_build_payload(header, filter);
                            sys::nftnl_rule_free(filter);
                        }
                    }
                },
            )
        },
        on_rule,
        &mut rules,
    )
    .map_err(nft_error("listing rules"))?;
    Ok(Some(NftView {
        chains: chains
            .into_iter()
            .filter(|(table, _)| table == NFT_TABLE)
            .map(|(_, chain)| chain)
            .collect(),
        rules: rules
            .into_iter()
            .filter(|(table, _)| table == NFT_TABLE)
            .map(|(_, rule)| rule)
            .collect(),
    }))
}

/// The comments of the rules of table `name` of `family` (`NFPROTO_*`), in chain order:
/// `None` when the table does not exist. For the gateway's tables (`kernel::guard`).
pub(crate) fn table_rule_comments(name: &str, family: i32) -> io::Result<Option<Vec<String>>> {
    let mut tables = Vec::new();
    dump(
        |buf, seq| build_dump(buf, seq, libc::NFT_MSG_GETTABLE as u16, family, |_| {}),
        on_table,
        &mut tables,
    )?;
    if !tables.iter().any(|t| t == name) {
        return Ok(None);
    }
    let cname = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    let mut rules = Vec::new();
    dump(
        |buf, seq| {
            build_dump(buf, seq, libc::NFT_MSG_GETRULE as u16, family, |header| {
                // SAFETY: a fresh rule object carries only the table filter; libnftnl copies
                // the string; the object is freed right after its payload is written into
                // the request that `header` starts.
                unsafe {
                    let filter = sys::nftnl_rule_alloc();
                    if !filter.is_null() {
                        sys::nftnl_rule_set_str(
                            filter,
                            sys::NFTNL_RULE_TABLE as u16,
                            cname.as_ptr(),
                        );
                        sys::nftnl_rule_set_u32(
                            filter,
                            sys::NFTNL_RULE_FAMILY as u16,
                            family as u32,
                        );
                        sys::nftnl_rule_nlmsg_build_payload(header, filter);
                        sys::nftnl_rule_free(filter);
                    }
                }
            })
        },
        on_rule,
        &mut rules,
    )?;
    Ok(Some(
        rules
            .into_iter()
            .filter(|(table, _)| table == name)
            .map(|(_, rule)| rule.comment)
            .collect(),
    ))
}

fn chain<'a>(table: &'a Table, which: NftChain) -> Chain<'a> {
    let mut chain = Chain::new(chain_cname(which), table);
    match which {
        NftChain::Dnat => {
            chain.set_hook(Hook::PreRouting, PRIORITY_DSTNAT);
            chain.set_type(ChainType::Nat);
        }
        NftChain::MarkReplies => {
            chain.set_hook(Hook::PreRouting, PRIORITY_MANGLE);
            chain.set_type(ChainType::Filter);
        }
        NftChain::Fence => {
            chain.set_hook(Hook::PreRouting, PRIORITY_RAW);
            chain.set_type(ChainType::Filter);
        }
        NftChain::Clamp => {
            chain.set_hook(Hook::Forward, PRIORITY_MANGLE);
            chain.set_type(ChainType::Filter);
        }
    }
    chain.set_policy(Policy::Accept);
    chain
}

/// The chains of [`NftChain::ALL`] named in `names`.
fn chains_named(names: &[String]) -> Vec<NftChain> {
    NftChain::ALL
        .into_iter()
        .filter(|c| names.iter().any(|n| n == c.name()))
        .collect()
}

/// Creates tungate's table with the chains of `spec` (those present are left as they are)
/// and deletes the chains of `found` that `spec` no longer has (their rules went first).
pub(crate) fn ensure_table(
    spec: &NftTableSpec,
    found: Option<&NftTableSpec>,
) -> Result<(), NetError> {
    let table = Table::new(table_name(), ProtoFamily::Ipv4);
    let mut batch = Batch::new();
    batch.add(&table, MsgType::Add);
    let wanted: Vec<Chain<'_>> = chains_named(&spec.chains)
        .into_iter()
        .map(|c| chain(&table, c))
        .collect();
    for c in &wanted {
        batch.add(c, MsgType::Add);
    }
    let stale: Vec<Chain<'_>> = found
        .map(|f| {
            f.chains
                .iter()
                .filter(|n| !spec.chains.contains(n))
                .cloned()
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .filter_map(|name| CString::new(name).ok())
        .map(|name| Chain::new(name, &table))
        .collect();
    for c in &stale {
        batch.add(c, MsgType::Del);
    }
    send_rs_batch(&batch.finalize(), &format!("creating table ip {NFT_TABLE}"))
}

/// Deletes tungate's table with everything in it; a missing table is not an error.
pub(crate) fn delete_table() -> Result<(), NetError> {
    let table = Table::new(table_name(), ProtoFamily::Ipv4);
    let mut batch = Batch::new();
    batch.add(&table, MsgType::Del);
    match send_rs_batch(&batch.finalize(), &format!("deleting table ip {NFT_TABLE}")) {
        Err(NetError::Nftables { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            Ok(())
        }
        other => other,
    }
}

/// The SYN and RST bits of the TCP flags byte.
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
/// `NFT_EXTHDR_OP_TCPOPT`: the extension header expression works on TCP options.
const NFT_EXTHDR_OP_TCPOPT: u32 = 1;
/// The TCP option kind of the maximum segment size, its value's offset and length.
const TCPOPT_MAXSEG: u8 = 2;
const TCPOPT_MAXSEG_OFFSET: u32 = 2;
const TCPOPT_MAXSEG_LEN: u32 = 2;

/// `NFT_PAYLOAD_TRANSPORT_HEADER`, and where the TCP flags byte is in the TCP header.
const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
const TCP_FLAGS_OFFSET: u32 = 13;

/// `tcp flags`: the TCP flags byte, loaded into register 1 (nftnl 0.9's payload expression
/// knows only the ports, so it is built from libnftnl's attributes).
struct TcpFlags;

impl nftnl::expr::Expression for TcpFlags {
    fn to_expr(&self, _rule: &Rule<'_>) -> std::ptr::NonNull<sys::nftnl_expr> {
        let expr = alloc_expr(c"payload");
        // SAFETY: `expr` is a live payload expression; each attribute is one of its own,
        // set with the width libnftnl expects for it.
        unsafe {
            let e = expr.as_ptr();
            sys::nftnl_expr_set_u32(
                e,
                sys::NFTNL_EXPR_PAYLOAD_DREG as u16,
                libc::NFT_REG_1 as u32,
            );
            sys::nftnl_expr_set_u32(
                e,
                sys::NFTNL_EXPR_PAYLOAD_BASE as u16,
                NFT_PAYLOAD_TRANSPORT_HEADER,
            );
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, TCP_FLAGS_OFFSET);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, 1);
        }
        expr
    }
}

/// A fresh libnftnl expression of type `name`.
fn alloc_expr(name: &CStr) -> std::ptr::NonNull<sys::nftnl_expr> {
    // SAFETY: allocation of an empty libnftnl expression by its registered name.
    let expr = unsafe { sys::nftnl_expr_alloc(name.as_ptr()) };
    let Some(expr) = std::ptr::NonNull::new(expr) else {
        // As nftnl does for its own expressions: a failed tiny allocation is out of memory,
        // where aborting is all that is left.
        std::process::abort();
    };
    expr
}

/// `tcp option maxseg size`: read into register 1 (a packet without the option does not
/// match), or written from it (`... set`; the kernel fixes the TCP checksum). nftnl 0.9
/// has no extension header expression, so it is built from libnftnl's attributes.
struct TcpMaxseg {
    write: bool,
}

impl nftnl::expr::Expression for TcpMaxseg {
    fn to_expr(&self, _rule: &Rule<'_>) -> std::ptr::NonNull<sys::nftnl_expr> {
        let expr = alloc_expr(c"exthdr");
        let register = if self.write {
            sys::NFTNL_EXPR_EXTHDR_SREG
        } else {
            sys::NFTNL_EXPR_EXTHDR_DREG
        };
        // SAFETY: `expr` is a live exthdr expression; each attribute is one of its own,
        // set with the width libnftnl expects for it.
        unsafe {
            sys::nftnl_expr_set_u32(expr.as_ptr(), register as u16, libc::NFT_REG_1 as u32);
            sys::nftnl_expr_set_u8(
                expr.as_ptr(),
                sys::NFTNL_EXPR_EXTHDR_TYPE as u16,
                TCPOPT_MAXSEG,
            );
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_EXTHDR_OFFSET as u16,
                TCPOPT_MAXSEG_OFFSET,
            );
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_EXTHDR_LEN as u16,
                TCPOPT_MAXSEG_LEN,
            );
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_EXTHDR_OP as u16,
                NFT_EXTHDR_OP_TCPOPT,
            );
        }
        expr
    }
}

/// The bytes of an IPv4 address as nftables keeps them, in a value whose in-memory
/// representation is those bytes.
fn addr_data(addr: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(addr.octets())
}

fn match_l4(rule: &mut Rule<'_>, protocol: L4Protocol) {
    rule.add_expr(&nft_expr!(meta l4proto));
    rule.add_expr(&nft_expr!(cmp == protocol.number()));
}

fn port_payload(protocol: L4Protocol, source: bool) -> Payload {
    use nftnl::expr::{TcpHeaderField, TransportHeaderField, UdpHeaderField};
    Payload::Transport(match (protocol, source) {
        (L4Protocol::Tcp, true) => TransportHeaderField::Tcp(TcpHeaderField::Sport),
        (L4Protocol::Tcp, false) => TransportHeaderField::Tcp(TcpHeaderField::Dport),
        (L4Protocol::Udp, true) => TransportHeaderField::Udp(UdpHeaderField::Sport),
        (L4Protocol::Udp, false) => TransportHeaderField::Udp(UdpHeaderField::Dport),
    })
}

/// Appends rule `spec` to its chain, with its comment.
pub(crate) fn add_rule(spec: &NftRuleSpec) -> Result<(), NetError> {
    let comment = spec.comment();
    let action = format!("adding rule \"{comment}\"");
    let table = Table::new(table_name(), ProtoFamily::Ipv4);
    let chain = chain(&table, spec.chain());
    let mut rule = Rule::new(&chain);
    let ccomment = CString::new(comment.clone()).map_err(|_| NetError::Nftables {
        action: action.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "comment contains NUL"),
    })?;
    match spec {
        NftRuleSpec::Dnat {
            vip,
            port,
            protocol,
            to,
            to_port,
        } => {
            rule.add_expr(&nft_expr!(payload ipv4 daddr));
            rule.add_expr(&nft_expr!(cmp == *vip));
            match_l4(&mut rule, *protocol);
            rule.add_expr(&port_payload(*protocol, false));
            rule.add_expr(&nft_expr!(cmp == port.to_be()));
            rule.add_expr(&nft_expr!(counter));
            rule.add_expr(&Immediate::new(addr_data(*to), Register::Reg1));
            rule.add_expr(&Immediate::new(to_port.to_be(), Register::Reg2));
            rule.add_expr(&Nat {
                nat_type: NatType::DNat,
                family: ProtoFamily::Ipv4,
                ip_register: Register::Reg1,
                port_register: Some(Register::Reg2),
            });
        }
        NftRuleSpec::MarkReply {
            from,
            from_port,
            protocol,
            mark,
        } => {
            rule.add_expr(&nft_expr!(payload ipv4 saddr));
            rule.add_expr(&nft_expr!(cmp == *from));
            match_l4(&mut rule, *protocol);
            rule.add_expr(&port_payload(*protocol, true));
            rule.add_expr(&nft_expr!(cmp == from_port.to_be()));
            rule.add_expr(&nft_expr!(ct status));
            rule.add_expr(&nft_expr!(bitwise mask ConntrackStatus::DST_NAT.bits(), xor 0u32));
            rule.add_expr(&nft_expr!(cmp != 0u32));
            rule.add_expr(&nft_expr!(counter));
            rule.add_expr(&Immediate::new(*mark, Register::Reg1));
            rule.add_expr(&nft_expr!(meta mark set));
        }
        NftRuleSpec::ClampMss { mss } => {
            match_l4(&mut rule, L4Protocol::Tcp);
            rule.add_expr(&TcpFlags);
            rule.add_expr(&nft_expr!(bitwise mask TCP_SYN | TCP_RST, xor 0u8));
            rule.add_expr(&nft_expr!(cmp == TCP_SYN));
            rule.add_expr(&TcpMaxseg { write: false });
            rule.add_expr(&nft_expr!(cmp > mss.to_be()));
            rule.add_expr(&nft_expr!(counter));
            rule.add_expr(&Immediate::new(mss.to_be(), Register::Reg1));
            rule.add_expr(&TcpMaxseg { write: true });
        }
        NftRuleSpec::Fence {
            protocol,
            directors,
        } => {
            rule.add_expr(&nft_expr!(payload ipv4 protocol));
            rule.add_expr(&nft_expr!(cmp == protocol.number()));
            for director in directors {
                rule.add_expr(&nft_expr!(payload ipv4 saddr));
                rule.add_expr(&nft_expr!(cmp != *director));
            }
            rule.add_expr(&nft_expr!(counter));
            rule.add_expr(&nft_expr!(verdict drop));
        }
    }
    rule.set_comment(&ccomment)
        .map_err(|e| NetError::Nftables {
            action: action.clone(),
            source: io::Error::new(io::ErrorKind::InvalidInput, e),
        })?;
    let mut batch = Batch::new();
    batch.add(&rule, MsgType::Add);
    send_rs_batch(&batch.finalize(), &action)
}

/// Deletes a rule found in the kernel (by its chain and handle); a missing rule is not an
/// error.
fn delete_rule(found: &FoundNftRule) -> Result<(), NetError> {
    let action = format!("deleting rule \"{}\"", found.comment);
    let table = Table::new(table_name(), ProtoFamily::Ipv4);
    let cname = CString::new(found.chain.as_str()).map_err(|_| NetError::Nftables {
        action: action.clone(),
        source: io::Error::new(io::ErrorKind::InvalidInput, "chain name contains NUL"),
    })?;
    let chain = Chain::new(cname, &table);
    let mut rule = Rule::new(&chain);
    rule.set_handle(found.handle);
    let mut batch = Batch::new();
    batch.add(&rule, MsgType::Del);
    match send_rs_batch(&batch.finalize(), &action) {
        Err(NetError::Nftables { source, .. }) if source.raw_os_error() == Some(libc::ENOENT) => {
            Ok(())
        }
        other => other,
    }
}

/// Creates tungate's table with its chains (also when it exists with chains missing), or
/// deletes it with everything in it.
pub(crate) fn apply_table(edit: &Edit<NftTableSpec>) -> Result<(), NetError> {
    match edit {
        Edit::Create(spec) => ensure_table(spec, None),
        Edit::Update { from, to } => ensure_table(to, Some(from)),
        Edit::Delete(_) => delete_table(),
    }
}

/// Adds, replaces (delete, then add) or deletes a rule of tungate's table.
pub(crate) fn apply_rule(change: &NftRuleChange) -> Result<(), NetError> {
    match change {
        NftRuleChange::Add(spec) => add_rule(spec),
        NftRuleChange::Replace { from, to } => {
            delete_rule(from)?;
            add_rule(to)
        }
        NftRuleChange::Delete(found) => delete_rule(found),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_comment_is_found_among_user_data_records() {
        let mut udata = vec![5u8, 2, 9, 9];
        udata.extend([UDATA_RULE_COMMENT, 6]);
        udata.extend(b"hello\0");
        assert_eq!(comment_from_udata(&udata), "hello");
        assert_eq!(comment_from_udata(&[UDATA_RULE_COMMENT, 50, b'x']), "");
        assert_eq!(comment_from_udata(&[]), "");
    }

    #[test]
    fn addresses_keep_network_byte_order_in_memory() {
        let data = addr_data(Ipv4Addr::new(10, 88, 0, 2));
        assert_eq!(data.to_ne_bytes(), [10, 88, 0, 2]);
    }
}
