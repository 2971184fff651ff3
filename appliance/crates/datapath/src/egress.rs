//! Where and how an accepted packet leaves: the choice of path ([`choose`]: a resolved next
//! hop's interface, the raw fallback, a too-big answer, or no route), the AF_PACKET
//! transmit rings of each egress interface with tungate's own offload and Ethernet header
//! ([`Egresses`], opened on first use), the `send()` of a packet too large for a ring frame,
//! and the raw `IP_HDRINCL` fallback socket ([`RawFallback`]) for packets whose next hop is
//! not resolved.
//!
//! This module moves bytes and reports what the kernel took; it never decides to drop a
//! packet for a reason of its own, never counts (the worker does, from what it returns) and
//! never changes the packet itself (the worker decrements the TTL before handing it over).

use std::io;
use std::net::IpAddr;
use std::os::fd::{AsRawFd, OwnedFd, RawFd};

use tungate_packet::vnet;

use crate::afpacket::{self, SocketError, TxSocket};
use crate::io::{Transmit, TxHeader, TxTag};
use crate::resolver::NextHops;
use crate::ring::TX_CAPACITY;
use crate::route_cache::Lookup;
use crate::uring::LoopCalls;

/// Bytes written in front of the inner packet for transmit: offload header and Ethernet.
pub(crate) const TX_PREFIX: usize = vnet::LEN + ETHERNET;
/// Bytes of an Ethernet header.
const ETHERNET: usize = 14;

/// The path chosen for one accepted packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Choice {
    /// Out of `ifindex` behind this Ethernet header.
    Interface {
        /// The egress interface.
        ifindex: u32,
        /// The Ethernet header to write in front of it.
        ethernet: [u8; 14],
    },
    /// Larger than the next hop's MTU and not a GSO super-packet: answer with
    /// fragmentation-needed for this MTU, and drop.
    TooBig {
        /// The next hop's MTU.
        mtu: u32,
    },
    /// Through the raw fallback socket: the next hop is not known or not resolved yet, or
    /// its interface is not Ethernet.
    Fallback,
    /// Nowhere: no unicast route.
    NoRoute,
}

/// Chooses the path of an inner packet of `inner_len` bytes (`gso`: a super-packet the
/// kernel segments) from what the route cache knows and the published next hops.
pub(crate) fn choose(lookup: Lookup, hops: &NextHops, inner_len: usize, gso: bool) -> Choice {
    let hop = match lookup {
        Lookup::Unreachable => return Choice::NoRoute,
        Lookup::Unresolved { .. } => return Choice::Fallback,
        Lookup::Hop(id) => hops.hops.get(id as usize),
    };
    match hop {
        Some(h) => match h.ethernet {
            Some(_) if inner_len > h.mtu as usize && !gso => Choice::TooBig { mtu: h.mtu },
            Some(ethernet) => Choice::Interface {
                ifindex: h.ifindex,
                ethernet,
            },
            None => Choice::Fallback,
        },
        None => Choice::Fallback,
    }
}

/// One egress interface's transmit side.
enum Egress {
    /// Its transmit sockets, and the tags of the packets requested in its ring, in order.
    Open {
        socket: TxSocket,
        pending: Vec<TxTag>,
    },
    /// Its sockets could not be opened: its packets take the raw fallback.
    Unavailable,
}

/// A worker's transmit rings, one per egress interface, opened on first use.
pub(crate) struct Egresses {
    worker: usize,
    /// By interface index; a handful of entries, so a linear search.
    interfaces: Vec<(u32, Egress)>,
    /// Outcomes of a kick made before a large packet's `send()`, reported at the next
    /// [`Self::kick`].
    settled: Vec<(TxTag, bool)>,
    /// Transmit ring sockets to kick (reused).
    kick_fds: Vec<RawFd>,
    batch: usize,
}

impl Egresses {
    /// No interface yet; `batch`: the most packets a worker queues between two kicks.
    pub(crate) fn new(worker: usize, batch: usize) -> Egresses {
        Egresses {
            worker,
            interfaces: Vec::new(),
            settled: Vec::with_capacity(batch),
            kick_fds: Vec::new(),
            batch,
        }
    }

    /// Whether `ifindex` can transmit, opening its sockets on first use (a failure is
    /// logged once and the interface then takes the raw fallback).
    pub(crate) fn ready(&mut self, ifindex: u32) -> bool {
        if let Some((_, e)) = self.interfaces.iter().find(|(i, _)| *i == ifindex) {
            return matches!(e, Egress::Open { .. });
        }
        let egress = match afpacket::open_transmit(ifindex) {
            Ok(socket) => Egress::Open {
                socket,
                pending: Vec::with_capacity(self.batch),
            },
            Err(e) => {
                tracing::warn!("worker {}: {e}; using the raw fallback", self.worker);
                Egress::Unavailable
            }
        };
        let ready = matches!(egress, Egress::Open { .. });
        self.interfaces.push((ifindex, egress));
        ready
    }

    /// Transmits the inner packet `buf[start..]` behind `header` on `ifindex`: copied into
    /// a frame of its transmit ring when it fits one, otherwise (a GSO super-packet in the
    /// large-packet buffer) sent on its own with the headers written into `buf[..start]`,
    /// after everything queued before it (the order within a flow holds).
    pub(crate) fn transmit(
        &mut self,
        calls: &mut LoopCalls,
        ifindex: u32,
        buf: &mut [u8],
        start: usize,
        header: &TxHeader,
        tag: TxTag,
    ) -> Transmit {
        let Some(inner) = buf.get(start..) else {
            return Transmit::Failed(io::Error::other("packet outside its buffer"));
        };
        let frame_len = ETHERNET + inner.len();
        let len = vnet::LEN + frame_len;
        let Some((_, Egress::Open { socket, pending })) =
            self.interfaces.iter_mut().find(|(i, _)| *i == ifindex)
        else {
            return Transmit::Failed(io::Error::other("egress interface not opened"));
        };
        if len <= TX_CAPACITY {
            let mut vnet_header = header.vnet;
            if !vnet_header.is_gso() {
                // The whole frame is "header": the kernel copies it into the skb's linear
                // part. Otherwise the skb would point into the ring's pages, and the first
                // hop that orphans user pages (veth, any local delivery) would allocate a
                // page and copy it again (skb_copy_ubufs).
                vnet_header.hdr_len = frame_len as u16;
            }
            let pushed = socket.ring.push(len, |out| {
                vnet_header.write(&mut out[..vnet::LEN]);
                out[vnet::LEN..TX_PREFIX].copy_from_slice(&header.ethernet);
                out[TX_PREFIX..].copy_from_slice(inner);
            });
            return match pushed {
                Some(()) => {
                    pending.push(tag);
                    Transmit::Queued
                }
                None => Transmit::Full,
            };
        }
        let Some(from) = start.checked_sub(TX_PREFIX) else {
            return Transmit::Failed(io::Error::other("no room for the headers"));
        };
        let fd = socket.plain.as_raw_fd();
        self.kick_into_settled(calls);
        let out = &mut buf[from..];
        header.vnet.write(&mut out[..vnet::LEN]);
        out[vnet::LEN..TX_PREFIX].copy_from_slice(&header.ethernet);
        // SAFETY: out is valid for reads of its length.
        let rc = unsafe { libc::send(fd, out.as_ptr().cast(), out.len(), libc::MSG_DONTWAIT) };
        if rc < 0 {
            Transmit::Failed(io::Error::last_os_error())
        } else {
            Transmit::Sent
        }
    }

    /// Kicks every transmit ring with requested frames (one `io_uring_enter` for all), then
    /// reports each packet (those of an earlier kick first) with whether the kernel took it.
    pub(crate) fn kick(&mut self, calls: &mut LoopCalls, settled: &mut dyn FnMut(TxTag, bool)) {
        self.kick_into_settled(calls);
        for (tag, taken) in self.settled.drain(..) {
            settled(tag, taken);
        }
    }

    fn kick_into_settled(&mut self, calls: &mut LoopCalls) {
        self.kick_fds.clear();
        for (_, e) in &self.interfaces {
            if let Egress::Open { socket, .. } = e
                && socket.ring.has_pending()
            {
                self.kick_fds.push(socket.ring_fd.as_raw_fd());
            }
        }
        if self.kick_fds.is_empty() {
            return;
        }
        calls.kick(&self.kick_fds);
        for (_, e) in &mut self.interfaces {
            let Egress::Open { socket, pending } = e else {
                continue;
            };
            if pending.is_empty() {
                continue;
            }
            let settled = &mut self.settled;
            socket
                .ring
                .settle(|position, taken| settled.push((pending[position], taken)));
            pending.clear();
        }
    }
}

/// The raw fallback sockets (`IPPROTO_RAW`, so `IP_HDRINCL`), one per family: the kernel
/// routes each packet itself and resolves the neighbour when needed.
pub(crate) struct RawFallback {
    fd: OwnedFd,
    /// The IPv6 one; `None` when the host has no IPv6 (its packets then fail as
    /// `tx_error`).
    fd6: Option<OwnedFd>,
}

impl RawFallback {
    /// Opens the sockets (the IPv6 one only if the host has IPv6).
    pub(crate) fn open() -> Result<RawFallback, SocketError> {
        let fd6 = match afpacket::open_raw_fallback(true) {
            Ok(fd) => Some(fd),
            Err(e) => {
                tracing::debug!("no IPv6 raw fallback: {e}");
                None
            }
        };
        Ok(RawFallback {
            fd: afpacket::open_raw_fallback(false)?,
            fd6,
        })
    }

    /// A stand-in over any socket (tests: one that can never put a packet on a wire).
    #[cfg(test)]
    pub(crate) fn over(fd: OwnedFd) -> RawFallback {
        RawFallback { fd, fd6: None }
    }

    /// Sends one whole IPv4 or IPv6 packet toward `destination` without blocking.
    pub(crate) fn send(&self, packet: &[u8], destination: IpAddr) -> io::Result<()> {
        match destination {
            IpAddr::V4(destination) => {
                // SAFETY: an all-zero sockaddr_in is valid; the fields are set below.
                let mut dest: libc::sockaddr_in = unsafe { std::mem::zeroed() };
                dest.sin_family = libc::AF_INET as libc::sa_family_t;
                dest.sin_addr.s_addr = u32::from(destination).to_be();
                send_to(&self.fd, packet, &dest)
            }
            IpAddr::V6(destination) => {
                let Some(fd) = &self.fd6 else {
                    return Err(io::Error::from_raw_os_error(libc::EAFNOSUPPORT));
                };
                // SAFETY: an all-zero sockaddr_in6 is valid; the fields are set below.
                let mut dest: libc::sockaddr_in6 = unsafe { std::mem::zeroed() };
                dest.sin6_family = libc::AF_INET6 as libc::sa_family_t;
                dest.sin6_addr.s6_addr = destination.octets();
                send_to(fd, packet, &dest)
            }
        }
    }
}

/// `sendto(2)` of `packet` to the socket address `dest` (a `sockaddr_in` or `sockaddr_in6`),
/// without blocking.
fn send_to<A>(fd: &OwnedFd, packet: &[u8], dest: &A) -> io::Result<()> {
    // SAFETY: packet and dest are valid for reads of the lengths passed.
    let rc = unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            packet.as_ptr().cast(),
            packet.len(),
            libc::MSG_DONTWAIT,
            std::ptr::from_ref(dest).cast(),
            size_of::<A>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resolver::NextHop;

    fn hops() -> NextHops {
        let hop = |ifindex, ethernet| NextHop {
            ifindex,
            address: std::net::Ipv4Addr::new(10, 0, 0, 1).into(),
            mtu: 1500,
            ethernet,
        };
        NextHops {
            generation: 1,
            hops: vec![hop(7, Some([0xaa; 14])), hop(8, None)],
            sources: Default::default(),
        }
    }

    #[test]
    fn a_resolved_next_hop_takes_its_interface() {
        assert_eq!(
            choose(Lookup::Hop(0), &hops(), 1500, false),
            Choice::Interface {
                ifindex: 7,
                ethernet: [0xaa; 14]
            }
        );
    }

    #[test]
    fn unknown_unresolved_or_not_ethernet_next_hops_take_the_fallback() {
        let h = hops();
        for (what, lookup) in [
            ("asked", Lookup::Unresolved { ask: false }),
            ("to ask", Lookup::Unresolved { ask: true }),
            ("no Ethernet header", Lookup::Hop(1)),
            ("a hop id the snapshot does not have", Lookup::Hop(9)),
        ] {
            assert_eq!(choose(lookup, &h, 100, false), Choice::Fallback, "{what}");
        }
        assert_eq!(choose(Lookup::Unreachable, &h, 100, false), Choice::NoRoute);
    }

    #[test]
    fn only_a_non_gso_packet_above_the_mtu_is_too_big() {
        let h = hops();
        assert_eq!(
            choose(Lookup::Hop(0), &h, 1501, false),
            Choice::TooBig { mtu: 1500 }
        );
        assert!(matches!(
            choose(Lookup::Hop(0), &h, 64000, true),
            Choice::Interface { ifindex: 7, .. }
        ));
        // The fallback checks no MTU here (the kernel refuses what does not fit).
        assert_eq!(choose(Lookup::Hop(1), &h, 9000, false), Choice::Fallback);
    }
}
