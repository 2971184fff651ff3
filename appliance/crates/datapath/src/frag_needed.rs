//! ICMP "fragmentation needed" (type 3, code 4, RFC 1191) for inner IPv4 packets that are
//! too big for the egress MTU and carry DF, and ICMPv6 Packet Too Big (type 2, RFC 4443, built
//! by `tungate_packet::icmpv6`) for inner IPv6 packets that are too big: sent to the packet's
//! source — the VIP, which lives
//! on LD-IN, whose IPVS relays ICMP errors about a connection to the real server that owns
//! it — so the real server lowers its path MTU instead of losing every large packet.
//!
//! Never sent toward a real server (an ICMP error about a tunnel packet puts its tunnel in
//! an error state), never about a packet without DF, a fragment other than the first, or
//! an ICMP error (for IPv6: a later fragment, an ICMPv6 error, a multicast destination), and
//! rate-limited per worker, both families in the same budgets: [`GLOBAL_PER_SECOND`] in all
//! and [`PER_VIP_PER_SECOND`] per VIP, each with a burst. The quote is the inner packet as
//! the worker holds it when it finds it too big, up to [`MAX_MESSAGE`] bytes in all (IPv4),
//! or as much as fits in 1280 bytes with the IPv6 header (IPv6). The kernel's ICMPv6 raw
//! socket fills in the checksum for the source address it picks.
//!
//! The worker only calls [`answer_too_big`]; the socket and the rate limits are the calling
//! worker thread's own (a thread-local), so nothing is shared or locked. A send never
//! blocks and nothing here allocates per packet once a VIP has been seen.

use std::cell::RefCell;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Instant;

use rustc_hash::FxHashMap;
use tungate_token_bucket::TokenBucket;

use super::counters::GlobalCells;
use tungate_packet::{icmpv6, ipv4};

/// Messages a worker sends per second in all.
pub(crate) const GLOBAL_PER_SECOND: f64 = 200.0;
/// Messages a worker may send at once before the global rate applies.
pub(crate) const GLOBAL_BURST: f64 = 50.0;
/// Messages a worker sends per second to one VIP.
pub(crate) const PER_VIP_PER_SECOND: f64 = 20.0;
/// Messages a worker may send at once to one VIP before its rate applies.
pub(crate) const PER_VIP_BURST: f64 = 10.0;
/// Largest message (RFC 1812 4.3.2.3: at most 576 bytes with its IPv4 header).
pub(crate) const MAX_MESSAGE: usize = 576 - 20;

const ICMP_DEST_UNREACHABLE: u8 = 3;
const CODE_FRAG_NEEDED: u8 = 4;
const ICMP_HEADER: usize = 8;
/// ICMP types that are errors (no error is ever sent about one).
const ICMP_ERRORS: [u8; 5] = [3, 4, 5, 11, 12];

/// The global and per-VIP budgets of one worker.
#[derive(Debug)]
struct Limits {
    global: TokenBucket,
    per_vip: FxHashMap<IpAddr, TokenBucket>,
}

impl Limits {
    fn new(now: Instant) -> Limits {
        Limits {
            global: TokenBucket::full(GLOBAL_PER_SECOND, GLOBAL_BURST, now),
            per_vip: FxHashMap::default(),
        }
    }

    /// Whether one more message to `vip` fits both budgets (and spends from both if so).
    fn allow(&mut self, vip: IpAddr, now: Instant) -> bool {
        let vip_bucket = self
            .per_vip
            .entry(vip)
            .or_insert_with(|| TokenBucket::full(PER_VIP_PER_SECOND, PER_VIP_BURST, now));
        if !vip_bucket.has(now) || !self.global.has(now) {
            return false;
        }
        vip_bucket.take(now) && self.global.take(now)
    }
}

/// Writes the frag-needed message about `inner` (an inner IPv4 packet, header checked)
/// with next-hop MTU `mtu` into `out`; returns its length, or `None` when no message may
/// be sent about this packet (no DF, a later fragment, an ICMP error, a short header).
pub(crate) fn build(inner: &[u8], mtu: u32, out: &mut [u8; MAX_MESSAGE]) -> Option<usize> {
    if inner.len() < 20 {
        return None;
    }
    let header_len = usize::from(inner[0] & 0x0f) * 4;
    let flags_offset = u16::from_be_bytes([inner[6], inner[7]]);
    let dont_fragment = flags_offset & 0x4000 != 0;
    let offset = flags_offset & 0x1fff;
    if !dont_fragment || offset != 0 || header_len < 20 || inner.len() < header_len {
        return None;
    }
    if inner[9] == 1
        && inner
            .get(header_len)
            .is_some_and(|t| ICMP_ERRORS.contains(t))
    {
        return None;
    }
    let quoted = inner.len().min(MAX_MESSAGE - ICMP_HEADER);
    let len = ICMP_HEADER + quoted;
    out[0] = ICMP_DEST_UNREACHABLE;
    out[1] = CODE_FRAG_NEEDED;
    out[2..6].fill(0);
    out[6..8].copy_from_slice(&(mtu.min(u32::from(u16::MAX)) as u16).to_be_bytes());
    out[ICMP_HEADER..len].copy_from_slice(&inner[..quoted]);
    let checksum = ipv4::checksum(&out[..len]);
    out[2..4].copy_from_slice(&checksum.to_be_bytes());
    Some(len)
}

/// One worker's sender: its raw ICMP and ICMPv6 sockets (those that could be opened),
/// budgets and buffers.
struct Responder {
    socket: Option<OwnedFd>,
    socket6: Option<OwnedFd>,
    limits: Limits,
    message: [u8; MAX_MESSAGE],
    message6: [u8; icmpv6::MAX_MESSAGE],
}

/// A non-blocking raw socket of `family` for `protocol`, or `None` (with a warning).
fn raw_socket(family: libc::c_int, protocol: libc::c_int, what: &str) -> Option<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            protocol,
        )
    };
    if fd < 0 {
        tracing::warn!(
            "cannot open a raw {what} socket ({}): too-big packets are dropped without it",
            std::io::Error::last_os_error()
        );
        return None;
    }
    // SAFETY: fd was just created and is owned by nobody else.
    Some(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `sendto(2)` of `message` to the socket address `to` without blocking: whether it all went.
fn send_to<A>(socket: &OwnedFd, message: &[u8], to: &A) -> bool {
    // SAFETY: message is valid for reads of its length; `to` is a socket address of the
    // size passed.
    let sent = unsafe {
        libc::sendto(
            socket.as_raw_fd(),
            message.as_ptr().cast(),
            message.len(),
            libc::MSG_DONTWAIT,
            std::ptr::from_ref(to).cast(),
            size_of::<A>() as libc::socklen_t,
        )
    };
    sent == message.len() as isize
}

impl Responder {
    fn new() -> Responder {
        Responder {
            socket: raw_socket(libc::AF_INET, libc::IPPROTO_ICMP, "ICMP"),
            socket6: raw_socket(libc::AF_INET6, libc::IPPROTO_ICMPV6, "ICMPv6"),
            limits: Limits::new(Instant::now()),
            message: [0; MAX_MESSAGE],
            message6: [0; icmpv6::MAX_MESSAGE],
        }
    }

    fn answer(&mut self, inner: &[u8], mtu: u32, cells: &GlobalCells) {
        let (vip, sent) = match inner.first().map(|b| b >> 4) {
            Some(4) => {
                let Some(len) = build(inner, mtu, &mut self.message) else {
                    return;
                };
                let vip = Ipv4Addr::new(inner[12], inner[13], inner[14], inner[15]);
                if !self.limits.allow(vip.into(), Instant::now()) {
                    cells.icmp_rate_limited.add(1);
                    return;
                }
                // SAFETY: an all-zero sockaddr_in is valid; the fields are set below.
                let mut to: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                to.sin_family = libc::AF_INET as libc::sa_family_t;
                to.sin_addr.s_addr = u32::from(vip).to_be();
                let sent = self
                    .socket
                    .as_ref()
                    .map(|s| send_to(s, &self.message[..len], &to));
                (IpAddr::from(vip), sent)
            }
            Some(6) => {
                // The kernel puts in the checksum for the source address it picks.
                let built =
                    icmpv6::packet_too_big(inner, mtu, Ipv6Addr::UNSPECIFIED, &mut self.message6);
                let Some(len) = built else {
                    return;
                };
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&inner[8..24]);
                let vip = Ipv6Addr::from(octets);
                if !self.limits.allow(vip.into(), Instant::now()) {
                    cells.icmp_rate_limited.add(1);
                    return;
                }
                // SAFETY: an all-zero sockaddr_in6 is valid; the fields are set below.
                let mut to: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                to.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                to.sin6_addr.s6_addr = octets;
                let sent = self
                    .socket6
                    .as_ref()
                    .map(|s| send_to(s, &self.message6[..len], &to));
                (IpAddr::from(vip), sent)
            }
            _ => return,
        };
        if sent == Some(true) {
            cells.icmp_sent.add(1);
        } else {
            cells.icmp_failed.add(1);
            tracing::debug!(
                "too-big message to {vip}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
}

thread_local! {
    static RESPONDER: RefCell<Option<Responder>> = const { RefCell::new(None) };
}

/// Answers an inner packet (IPv4 or IPv6) the worker found too big for the egress MTU `mtu`
/// (and drops): sends fragmentation-needed or Packet Too Big to its source VIP when the
/// packet allows one and the budgets do, and counts what happened in the worker's `cells`.
pub(crate) fn answer_too_big(inner: &[u8], mtu: u32, cells: &GlobalCells) {
    RESPONDER.with(|r| {
        r.borrow_mut()
            .get_or_insert_with(Responder::new)
            .answer(inner, mtu, cells);
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::{IpNumber, Ipv4Header};
    use std::time::Duration;

    /// An inner packet VIP -> client with `payload` bytes, flags/offset field `frag`.
    fn packet(protocol: u8, frag: u16, payload: &[u8]) -> Vec<u8> {
        let mut h = Ipv4Header::new(
            payload.len() as u16,
            63,
            IpNumber(protocol),
            [192, 0, 2, 10],
            [198, 51, 100, 7],
        )
        .unwrap();
        h.dont_fragment = frag & 0x4000 != 0;
        h.more_fragments = frag & 0x2000 != 0;
        h.fragment_offset = (frag & 0x1fff).try_into().unwrap();
        h.header_checksum = h.calc_header_checksum();
        let mut out = h.to_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    #[test]
    fn a_df_packet_gets_frag_needed_quoting_it() {
        let big = packet(17, 0x4000, &[0x5a; 1400]);
        let mut out = [0u8; MAX_MESSAGE];
        let len = build(&big, 1280, &mut out).expect("a message");
        assert_eq!(len, 576 - 20, "capped at 576 bytes with the IPv4 header");
        assert_eq!(&out[..2], &[3, 4]);
        assert_eq!(&out[4..6], &[0, 0]);
        assert_eq!(u16::from_be_bytes([out[6], out[7]]), 1280);
        assert_eq!(&out[8..len], &big[..len - 8], "the packet's first bytes");
        // A correct ICMP checksum sums to zero over the whole message.
        let sum: u32 = out[..len]
            .chunks(2)
            .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
            .sum();
        let folded = (sum & 0xffff) + (sum >> 16);
        assert_eq!((folded & 0xffff) + (folded >> 16), 0xffff);
        // A short packet is quoted whole.
        let small = packet(6, 0x4000, &[1; 12]);
        assert_eq!(build(&small, 1000, &mut out), Some(8 + 32));
    }

    #[test]
    fn no_message_about_what_may_be_fragmented_later_fragments_or_icmp_errors() {
        let mut out = [0u8; MAX_MESSAGE];
        let cases: [(&str, Vec<u8>, bool); 7] = [
            ("no DF", packet(17, 0, &[0; 1400]), false),
            ("DF", packet(17, 0x4000, &[0; 1400]), true),
            ("DF, first fragment", packet(17, 0x6000, &[0; 1400]), true),
            (
                "DF, later fragment",
                packet(17, 0x4000 | 185, &[0; 1400]),
                false,
            ),
            ("ICMP echo reply", packet(1, 0x4000, &[0; 1400]), true),
            ("ICMP unreachable", packet(1, 0x4000, &[3; 1400]), false),
            ("ICMP time exceeded", packet(1, 0x4000, &[11; 1400]), false),
        ];
        for (what, p, answered) in cases {
            assert_eq!(build(&p, 1280, &mut out).is_some(), answered, "{what}");
        }
        assert_eq!(build(&[0x45; 12], 1280, &mut out), None, "short header");
    }

    #[test]
    fn budgets_hold_per_vip_and_in_all_and_refill() {
        let start = Instant::now();
        let mut limits = Limits::new(start);
        let a = IpAddr::from([192, 0, 2, 10]);
        let allowed = (0..100).filter(|_| limits.allow(a, start)).count();
        assert_eq!(allowed, PER_VIP_BURST as usize, "one VIP gets its burst");
        // Other VIPs share the global budget.
        let mut others = 0;
        for i in 0..100u8 {
            others += (0..100)
                .filter(|_| limits.allow(Ipv4Addr::new(192, 0, 3, i).into(), start))
                .count();
        }
        assert_eq!(
            others + allowed,
            GLOBAL_BURST as usize,
            "the global burst in all"
        );
        // A second later each budget has refilled by its rate (capped by its burst).
        let later = start + Duration::from_secs(1);
        let refilled = (0..100).filter(|_| limits.allow(a, later)).count();
        assert_eq!(refilled, PER_VIP_BURST as usize);
    }
}
