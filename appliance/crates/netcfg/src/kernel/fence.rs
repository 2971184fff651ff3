//! The fence of `userspace` decap mode: tungate's nftables table that keeps the kernel from
//! handling tunnel packets tungate takes itself, over netlink (`nftnl` + `mnl`, no `nft`
//! binary), sent by the one batch sender in `kernel::nft`.
//!
//! ```text
//! table inet tungate_fence {
//!   chain prerouting { type filter hook prerouting priority -500; policy accept;
//!     iifname INGRESS meta l4proto { 4, 41, 47 } fib daddr type local counter drop } }
//! ```
//! (one rule per protocol, and one per GUE/FOU port: `meta l4proto udp udp dport PORT`). The
//! `inet` family covers both: in IPv6, `meta l4proto` is the protocol found behind the
//! extension headers (the destination options a stock ip6tnl inserts, hop-by-hop, routing;
//! in a fragment, the Fragment header's next header), so ip6ip6, 4in6, ip6gre and GUE/FOU
//! over IPv6 to the gateway's IPv6 address are dropped by the same rules as their IPv4
//! forms, and the kernel answers them with no ICMPv6 either. The data path's AF_PACKET tap
//! (bound to every protocol) and its XDP program see each frame before the prerouting hook, so they have their copy already;
//! without the fence the kernel would answer every IPIP, 6in4 (41) or GRE packet to any of
//! the gateway's addresses, IPv4 or IPv6, with ICMP (protocol unreachable, parameter
//! problem), towards the real server, or towards whoever a spoofed source names.
//!
//! The fence outlives tungate on purpose: a stop, a crash or an upgrade leaves it in place,
//! so the kernel never answers the real servers while tungate is away. It goes only when
//! asked ([`TunnelFence::lower`]: `tungate net down`, or the decap mode becomes `kernel`,
//! where it would blackhole the kernel's own tunnels). Raising replaces a table left by an
//! earlier run, and the `netdev tungate` table of releases before the fence, in one atomic
//! batch, so there is no moment without a fence. This module owns exactly these two tables
//! and never touches any other; it does not decide when the fence is wanted (the control
//! plane does, following the decap mode).

use std::ffi::{CStr, CString};
use std::io;
use std::ptr::NonNull;

use nftnl::expr::{Expression, InterfaceName};
use nftnl::nftnl_sys::{self as sys, libc};
use nftnl::{Batch, MsgType, ProtoFamily, Rule, Table};

use crate::error::NetError;
use crate::kernel::nft::{delete_table_if_present, replace_with_prerouting_chain, send_batch};

/// The fence's table (family `inet`: IPv4 and IPv6 in one chain).
pub const FENCE_TABLE: &str = "inet tungate_fence";
const TABLE_NAME: &CStr = c"tungate_fence";
const CHAIN_NAME: &CStr = c"prerouting";
/// The table of releases before the fence (`table netdev tungate`, IPIP to one address).
const LEGACY_TABLE_NAME: &CStr = c"tungate";
/// Before defragmentation (-400) and connection tracking: fragments of tunnel packets are
/// dropped one by one, never held for reassembly (whose timeout would answer with ICMP).
const PRIORITY: i32 = -500;
/// The tunnel protocols fenced: IPIP (4), IPv6 in IP (41, 6in4 and IPv6-in-IPv6), GRE (47).
/// UDP-carried tunnels (GUE, FOU) are fenced by destination port: see [`TunnelFence::raise`].
pub const FENCED_PROTOCOLS: [u8; 3] = [4, 41, 47];
/// `fib` result type `RTN_LOCAL`: the destination is one of this host's addresses.
const RTN_LOCAL: u32 = 2;
/// `NFTA_FIB_F_DADDR`: look the destination address up.
const NFTA_FIB_F_DADDR: u32 = 1 << 1;
/// `NFT_FIB_RESULT_ADDRTYPE`: the result is the address type.
const NFT_FIB_RESULT_ADDRTYPE: u32 = 3;

/// `fib daddr type`: loads the destination address's type into register 1.
struct FibDaddrType;

impl Expression for FibDaddrType {
    fn to_expr(&self, _rule: &Rule) -> NonNull<sys::nftnl_expr> {
        // SAFETY: allocates a fresh libnftnl expression by its registered name; the caller
        // (nftnl's `Rule::add_expr`) takes ownership. The setters copy plain integers.
        unsafe {
            let expr = sys::nftnl_expr_alloc(c"fib".as_ptr());
            let expr = NonNull::new(expr).expect("libnftnl could not allocate an expression");
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_FIB_DREG as u16,
                libc::NFT_REG_1 as u32,
            );
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_FIB_RESULT as u16,
                NFT_FIB_RESULT_ADDRTYPE,
            );
            sys::nftnl_expr_set_u32(
                expr.as_ptr(),
                sys::NFTNL_EXPR_FIB_FLAGS as u16,
                NFTA_FIB_F_DADDR,
            );
            expr
        }
    }
}

/// The fence as this process last set it: raised on an interface, lowered, or not known
/// yet (a fresh process: a fence of an earlier run may be there). Dropping it changes
/// nothing in the kernel.
#[derive(Debug, Default)]
pub struct TunnelFence {
    known: Option<Option<Raised>>,
}

/// Where a raised fence drops.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Raised {
    ingress: String,
    udp_ports: Vec<u16>,
}

fn failed(action: &'static str) -> impl FnOnce(io::Error) -> NetError {
    move |source| NetError::DropTable { action, source }
}

impl TunnelFence {
    /// Nothing known yet: the first raise or lower always reaches the kernel.
    pub fn new() -> Self {
        Self::default()
    }

    /// Raises the fence on `ingress` (replacing any fence there was, also one of an earlier
    /// run, atomically): tunnel packets of [`FENCED_PROTOCOLS`], and UDP to `udp_ports` (the
    /// GUE/FOU ports of the tunnels in force; none today), arriving on `ingress` for any
    /// local address are dropped after the data path's taps took them. Nothing is sent when
    /// this process raised the same fence already.
    pub fn raise(&mut self, ingress: &str, udp_ports: &[u16]) -> Result<(), NetError> {
        let want = Raised {
            ingress: ingress.to_owned(),
            udp_ports: udp_ports.to_vec(),
        };
        if self.known.as_ref().and_then(Option::as_ref) == Some(&want) {
            return Ok(());
        }
        install(&want)?;
        self.known = Some(Some(want));
        Ok(())
    }

    /// Lowers the fence (and the table of releases before it): the kernel handles tunnel
    /// packets itself again. Returns whether a fence was there; nothing is sent when this
    /// process lowered it already.
    pub fn lower(&mut self) -> Result<bool, NetError> {
        if self.known == Some(None) {
            return Ok(false);
        }
        let removed = remove()?;
        self.known = Some(None);
        Ok(removed)
    }
}

/// Installs (or replaces) the fence, removing the table of releases before it.
fn install(fence: &Raised) -> Result<(), NetError> {
    let device = CString::new(fence.ingress.as_str()).map_err(|_| {
        failed("install")(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name has a NUL",
        ))
    })?;
    let ingress = InterfaceName::Exact(device);
    let mut batch = Batch::new();
    let legacy = Table::new(LEGACY_TABLE_NAME, ProtoFamily::NetDev);
    // Adding first makes each delete succeed whether or not the table exists.
    batch.add(&legacy, MsgType::Add);
    batch.add(&legacy, MsgType::Del);
    let table = Table::new(TABLE_NAME, ProtoFamily::Inet);
    let chain = replace_with_prerouting_chain(&mut batch, &table, CHAIN_NAME, PRIORITY);
    for protocol in FENCED_PROTOCOLS {
        let mut rule = Rule::new(&chain);
        rule.add_expr(&nftnl::nft_expr!(meta iifname));
        rule.add_expr(&nftnl::nft_expr!(cmp == &ingress));
        rule.add_expr(&nftnl::nft_expr!(meta l4proto));
        rule.add_expr(&nftnl::nft_expr!(cmp == protocol));
        drop_if_local(&mut rule);
        batch.add(&rule, MsgType::Add);
    }
    for port in &fence.udp_ports {
        use nftnl::expr::{Payload, TransportHeaderField, UdpHeaderField};
        let mut rule = Rule::new(&chain);
        rule.add_expr(&nftnl::nft_expr!(meta iifname));
        rule.add_expr(&nftnl::nft_expr!(cmp == &ingress));
        rule.add_expr(&nftnl::nft_expr!(meta l4proto));
        rule.add_expr(&nftnl::nft_expr!(cmp == libc::IPPROTO_UDP as u8));
        rule.add_expr(&Payload::Transport(TransportHeaderField::Udp(
            UdpHeaderField::Dport,
        )));
        rule.add_expr(&nftnl::nft_expr!(cmp == port.to_be()));
        drop_if_local(&mut rule);
        batch.add(&rule, MsgType::Add);
    }
    send_batch(&batch.finalize()).map_err(failed("install"))
}

/// Ends a rule with `fib daddr type local counter drop`.
fn drop_if_local(rule: &mut Rule<'_>) {
    rule.add_expr(&FibDaddrType);
    rule.add_expr(&nftnl::nft_expr!(cmp == RTN_LOCAL));
    rule.add_expr(&nftnl::nft_expr!(counter));
    rule.add_expr(&nftnl::nft_expr!(verdict drop));
}

/// Deletes one table; whether it existed.
fn delete_table(name: &CStr, family: ProtoFamily) -> Result<bool, NetError> {
    delete_table_if_present(name, family).map_err(failed("remove"))
}

/// Removes the fence and the table of releases before it; whether either existed.
fn remove() -> Result<bool, NetError> {
    let legacy = delete_table(LEGACY_TABLE_NAME, ProtoFamily::NetDev)?;
    let fence = delete_table(TABLE_NAME, ProtoFamily::Inet)?;
    Ok(legacy || fence)
}
