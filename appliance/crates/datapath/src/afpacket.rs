//! The sockets of the data path: AF_PACKET receive sockets (with the offload header, a
//! classic BPF filter, a mapped receive ring and PACKET_FANOUT across workers), AF_PACKET
//! transmit sockets (own Ethernet header, offload header, qdisc bypass; one with a mapped
//! transmit ring, one for packets too large for its frames) and the raw `IP_HDRINCL`
//! fallback socket.
//!
//! This module only creates and configures sockets (rings included) and reads their
//! statistics; it never receives or sends packets (the workers do). Every error names the
//! socket option or interface involved.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use super::ring::{RxRing, TxRing};
use tungate_packet::vnet;

/// A socket could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{what} on interface {interface}: {source}")]
pub struct SocketError {
    /// What failed (the call or socket option).
    pub(crate) what: &'static str,
    /// The interface (name or index) concerned.
    pub(crate) interface: String,
    /// The error from the kernel.
    pub(crate) source: io::Error,
}

const ETH_P_IP: u16 = 0x0800;
/// EtherType of IPv6.
const ETH_P_IPV6: u16 = 0x86dd;
/// Bytes of the receive buffer asked for per socket (the kernel caps it without
/// CAP_NET_ADMIN; with it, `SO_RCVBUFFORCE` applies).
const RECEIVE_BUFFER: libc::c_int = 8 << 20;

fn check(rc: libc::c_int) -> io::Result<()> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn set_int(
    fd: &OwnedFd,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: fd is an open socket; the option value is a c_int whose size is passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    })
}

fn packet_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; protocol 0 so nothing is received before bind.
    let fd = unsafe {
        libc::socket(
            libc::AF_PACKET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

fn bind(fd: &OwnedFd, ifindex: u32, protocol: u16) -> io::Result<()> {
    // SAFETY: an all-zero sockaddr_ll is valid; the fields are set below.
    let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex as i32;
    // SAFETY: fd is an open AF_PACKET socket; sll is a sockaddr_ll whose size is passed.
    check(unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&raw const sll).cast(),
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    })
}

/// Sets `SO_RCVTIMEO` on any socket, so a reply that never comes cannot hang a caller.
pub(crate) fn set_receive_timeout(
    fd: std::os::fd::BorrowedFd<'_>,
    timeout: std::time::Duration,
) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: libc::suseconds_t::from(timeout.subsec_micros()),
    };
    // SAFETY: fd is an open socket for the duration of the call; tv is a valid timeval
    // whose size is passed.
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const tv).cast(),
            size_of::<libc::timeval>() as libc::socklen_t,
        )
    })
}

/// The interface index of `name`.
pub(crate) fn ifindex(name: &str) -> Result<u32, SocketError> {
    nix::net::if_::if_nametoindex(name).map_err(|e| SocketError {
        what: "no such interface",
        interface: name.to_owned(),
        source: e.into(),
    })
}

/// The most GUE/FOU ports [`tunnel_filter`] names one by one (a classic BPF jump reaches
/// 255 instructions); with more it takes all UDP to the gateway address.
const MAX_FILTER_PORTS: usize = 200;

/// A classic BPF program that accepts only frames carrying a tunnel, offsets from the
/// Ethernet header. IPv4: IP in IP (4, 41: IPIP and 6in4) or GRE (47) to any address, or UDP
/// to `gateway` on one of `udp_ports` (GUE/FOU; not a later fragment, which has no port).
/// IPv6: next header 4, 41 or 47 to any address (without `gateway6` each is counted as
/// `wrong_gateway`, as the XDP program does); and when the gateway has `gateway6`, UDP to it
/// on one of `udp_ports`, or an extension header (hop-by-hop, routing, fragment, destination
/// options: a stock `ip6tnl` sends one) to it, whose chain user space walks. The outer destination of IP in IP and GRE is checked in user space, so what a
/// misconfigured real server sends to another address of this host is counted as
/// `wrong_gateway` instead of vanishing unseen; UDP is the host's own business unless it goes
/// to a tunnel port of a gateway address. Beyond [`MAX_FILTER_PORTS`] ports every UDP
/// datagram to a gateway address is taken (the ones on no tunnel port are counted as
/// `wrong_tunnel` or `unknown_peer`; the kernel still gets them, the fence drops only tunnel
/// ports).
pub(crate) fn tunnel_filter(
    gateway: Ipv4Addr,
    gateway6: Option<Ipv6Addr>,
    udp_ports: &[u16],
) -> Vec<libc::sock_filter> {
    /// Where a conditional jump goes.
    #[derive(Clone, Copy, PartialEq)]
    enum To {
        Next,
        /// Past the next instruction.
        Skip,
        Accept,
        Drop,
        Ipv6,
    }
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let jset = libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K;
    let ja = libc::BPF_JMP | libc::BPF_JA;
    let ret = libc::BPF_RET | libc::BPF_K;
    let load = |size: u32, offset: u32| {
        (
            libc::BPF_LD | size | libc::BPF_ABS,
            To::Next,
            To::Next,
            offset,
        )
    };
    // The UDP destination port after the header whose length is in X (IPv4) or at a fixed
    // offset (IPv6), against each port; falls through when none matches.
    let ports = |program: &mut Vec<(u32, To, To, u32)>, indirect: bool| {
        if udp_ports.len() > MAX_FILTER_PORTS {
            program.push((ret, To::Next, To::Next, u32::MAX));
            return;
        }
        if indirect {
            // X = the IPv4 header length; then the UDP destination port after it.
            program.push((
                libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH,
                To::Next,
                To::Next,
                14,
            ));
            program.push((
                libc::BPF_LD | libc::BPF_H | libc::BPF_IND,
                To::Next,
                To::Next,
                14 + 2,
            ));
        } else {
            program.push(load(libc::BPF_H, 14 + 40 + 2));
        }
        for &port in udp_ports {
            program.push((jeq, To::Accept, To::Next, u32::from(port)));
        }
    };
    let mut program: Vec<(u32, To, To, u32)> = vec![
        load(libc::BPF_H, 12), // EtherType
        // IPv4 skips the next instruction; anything else takes it to the IPv6 part (a jump
        // past the IPv4 part can be longer than a conditional jump's 255: BPF_JA).
        (jeq, To::Skip, To::Next, u32::from(ETH_P_IP)),
        (ja, To::Ipv6, To::Ipv6, 0),
        load(libc::BPF_B, 14 + 9), // protocol
        (jeq, To::Accept, To::Next, libc::IPPROTO_IPIP as u32),
        (jeq, To::Accept, To::Next, libc::IPPROTO_IPV6 as u32),
        (jeq, To::Accept, To::Next, libc::IPPROTO_GRE as u32),
        (jeq, To::Next, To::Drop, libc::IPPROTO_UDP as u32),
        load(libc::BPF_W, 14 + 16), // destination address
        (jeq, To::Next, To::Drop, u32::from(gateway)),
        load(libc::BPF_H, 14 + 6),          // flags and fragment offset
        (jset, To::Drop, To::Next, 0x1fff), // a later fragment carries no port
    ];
    ports(&mut program, true);
    // Each part has its own exits, so no conditional jump has to cross the other part.
    let (drop4, accept4) = (program.len(), program.len() + 1);
    program.push((ret, To::Next, To::Next, 0));
    program.push((ret, To::Next, To::Next, u32::MAX));
    let ipv6 = program.len();
    program.push((jeq, To::Next, To::Drop, u32::from(ETH_P_IPV6)));
    program.push(load(libc::BPF_B, 14 + 6)); // next header
    for tunnel in [libc::IPPROTO_IPIP, libc::IPPROTO_IPV6, libc::IPPROTO_GRE] {
        program.push((jeq, To::Accept, To::Next, tunnel as u32));
    }
    if let Some(gateway6) = gateway6 {
        // Keep the next header in X while the destination is compared.
        program.push((libc::BPF_MISC | libc::BPF_TAX, To::Next, To::Next, 0));
        let words = gateway6.octets();
        for (i, word) in words.chunks_exact(4).enumerate() {
            program.push(load(libc::BPF_W, 14 + 24 + 4 * i as u32));
            let word = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            program.push((jeq, To::Next, To::Drop, word));
        }
        program.push((libc::BPF_MISC | libc::BPF_TXA, To::Next, To::Next, 0));
        for extension in [
            libc::IPPROTO_HOPOPTS,
            libc::IPPROTO_ROUTING,
            libc::IPPROTO_FRAGMENT,
            libc::IPPROTO_DSTOPTS,
        ] {
            program.push((jeq, To::Accept, To::Next, extension as u32));
        }
        program.push((jeq, To::Next, To::Drop, libc::IPPROTO_UDP as u32));
        ports(&mut program, false);
    }
    let drop = program.len();
    let accept = drop + 1;
    program.push((ret, To::Next, To::Next, 0)); // drop
    program.push((ret, To::Next, To::Next, u32::MAX)); // accept the whole frame
    let offset = |at: usize, to: To| -> u32 {
        let target = match to {
            To::Next => return 0,
            To::Skip => return 1,
            To::Accept if at < ipv6 => accept4,
            To::Drop if at < ipv6 => drop4,
            To::Accept => accept,
            To::Drop => drop,
            To::Ipv6 => ipv6,
        };
        (target - at - 1) as u32
    };
    program
        .iter()
        .enumerate()
        .map(|(at, &(code, jt, jf, k))| {
            if code == ja {
                return libc::sock_filter {
                    code: code as u16,
                    jt: 0,
                    jf: 0,
                    k: offset(at, jt),
                };
            }
            libc::sock_filter {
                code: code as u16,
                // Conditional jumps stay in their part: at most 30 + MAX_FILTER_PORTS
                // instructions ahead, within a u8.
                jt: offset(at, jt) as u8,
                jf: offset(at, jf) as u8,
                k,
            }
        })
        .collect()
}

fn attach_filter(fd: &OwnedFd, filter: &[libc::sock_filter]) -> io::Result<()> {
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: prog points at `filter`, which outlives the call (the kernel copies it).
    check(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&raw const prog).cast(),
            size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
}

/// A receive socket and its mapped ring.
pub(crate) struct RxSocket {
    /// The socket (for `poll`, statistics, and the packets too large for a ring frame).
    pub(crate) fd: OwnedFd,
    /// Its receive ring.
    pub(crate) ring: RxRing,
}

/// Which frames a receive socket is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tap {
    /// IPv4 frames, delivered after the device's ingress hooks (a tunnel device).
    Ipv4,
    /// Every frame, delivered before the device's ingress hooks (tc, nftables `netdev`), so
    /// that an ingress rule can drop what tungate takes without the kernel's IP layer ever
    /// seeing it. Use with a BPF filter on an ingress device; on a tunnel device (kernel
    /// decap of a peer with IPv6 VIPs) it is how IPv4 and IPv6 come through one socket.
    All,
}

/// Opens the `count` receive sockets of one interface, one per worker (several: in one hash
/// fanout group; one alone: no fanout, which would only hash every packet for nothing):
/// AF_PACKET, offload header on, own transmissions ignored, optionally a BPF filter
/// attached, and a receive ring, all before the socket is bound (so nothing unfiltered, or
/// outside the ring, is ever queued).
pub(crate) fn open_receive_group(
    interface: &str,
    count: usize,
    tap: Tap,
    filter: Option<&[libc::sock_filter]>,
) -> Result<Vec<RxSocket>, SocketError> {
    let index = ifindex(interface)?;
    let fail = |what: &'static str| {
        let interface = interface.to_owned();
        move |source| SocketError {
            what,
            interface,
            source,
        }
    };
    let mut group_id: Option<u32> = None;
    let mut sockets = Vec::with_capacity(count);
    for _ in 0..count {
        let fd = packet_socket().map_err(fail("socket(AF_PACKET)"))?;
        set_int(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1)
            .map_err(fail("PACKET_VNET_HDR"))?;
        set_int(&fd, libc::SOL_PACKET, libc::PACKET_IGNORE_OUTGOING, 1)
            .map_err(fail("PACKET_IGNORE_OUTGOING"))?;
        if set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, RECEIVE_BUFFER).is_err() {
            set_int(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, RECEIVE_BUFFER)
                .map_err(fail("SO_RCVBUF"))?;
        }
        if let Some(filter) = filter {
            attach_filter(&fd, filter).map_err(fail("SO_ATTACH_FILTER"))?;
        }
        let ring = RxRing::create(&fd, vnet::LEN).map_err(fail("PACKET_RX_RING"))?;
        let protocol = match tap {
            Tap::Ipv4 => ETH_P_IP,
            Tap::All => libc::ETH_P_ALL as u16,
        };
        bind(&fd, index, protocol).map_err(fail("bind(AF_PACKET)"))?;
        if count == 1 {
            sockets.push(RxSocket { fd, ring });
            break;
        }
        // PACKET_FANOUT takes the group id in the low 16 bits and type and flags above. The
        // first socket asks the kernel for an unused group id; the others join that group.
        let arg = match group_id {
            None => (libc::PACKET_FANOUT_HASH | libc::PACKET_FANOUT_FLAG_UNIQUEID) << 16,
            Some(id) => id | (libc::PACKET_FANOUT_HASH << 16),
        };
        set_int(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            arg as libc::c_int,
        )
        .map_err(fail("PACKET_FANOUT"))?;
        if group_id.is_none() {
            group_id = Some(fanout_id(&fd).map_err(fail("getsockopt(PACKET_FANOUT)"))?);
        }
        sockets.push(RxSocket { fd, ring });
    }
    Ok(sockets)
}

fn fanout_id(fd: &OwnedFd) -> io::Result<u32> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len are valid for writes of the sizes given.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            (&raw mut value).cast(),
            &raw mut len,
        )
    })?;
    Ok(value as u32 & 0xffff)
}

/// The transmit sockets of one egress interface.
pub(crate) struct TxSocket {
    /// The socket whose ring carries every packet that fits a ring frame.
    pub(crate) ring_fd: OwnedFd,
    /// Its transmit ring.
    pub(crate) ring: TxRing,
    /// A ring-less socket for larger packets (GSO super-packets), sent one `send()` each.
    pub(crate) plain: OwnedFd,
}

/// One AF_PACKET transmit socket on `ifindex`: tungate's own Ethernet header behind the
/// offload header, no qdisc; bound with protocol 0, so it never receives anything.
fn open_transmit_socket(ifindex: u32) -> Result<OwnedFd, SocketError> {
    let fail = |what: &'static str| {
        move |source| SocketError {
            what,
            interface: format!("#{ifindex}"),
            source,
        }
    };
    let fd = packet_socket().map_err(fail("socket(AF_PACKET)"))?;
    set_int(&fd, libc::SOL_PACKET, libc::PACKET_VNET_HDR, 1).map_err(fail("PACKET_VNET_HDR"))?;
    set_int(&fd, libc::SOL_PACKET, libc::PACKET_QDISC_BYPASS, 1)
        .map_err(fail("PACKET_QDISC_BYPASS"))?;
    bind(&fd, ifindex, 0).map_err(fail("bind(AF_PACKET)"))?;
    Ok(fd)
}

/// Opens the transmit sockets of interface `ifindex` (see [`TxSocket`]).
pub(crate) fn open_transmit(ifindex: u32) -> Result<TxSocket, SocketError> {
    let ring_fd = open_transmit_socket(ifindex)?;
    let ring = TxRing::create(&ring_fd).map_err(|source| SocketError {
        what: "PACKET_TX_RING",
        interface: format!("#{ifindex}"),
        source,
    })?;
    Ok(TxSocket {
        ring_fd,
        ring,
        plain: open_transmit_socket(ifindex)?,
    })
}

/// Opens the raw fallback socket (`IPPROTO_RAW`, which implies `IP_HDRINCL`): the kernel
/// routes each packet itself and resolves the neighbour when needed.
pub(crate) fn open_raw_fallback(ipv6: bool) -> Result<OwnedFd, SocketError> {
    // IPPROTO_RAW implies IP_HDRINCL, for AF_INET6 too (Linux 4.5 and later).
    let (family, what) = if ipv6 {
        (libc::AF_INET6, "socket(AF_INET6, SOCK_RAW, IPPROTO_RAW)")
    } else {
        (libc::AF_INET, "socket(AF_INET, SOCK_RAW, IPPROTO_RAW)")
    };
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            family,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(SocketError {
            what,
            interface: "any".into(),
            source: io::Error::last_os_error(),
        });
    }
    // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Reads and resets the socket's statistics: (frames received, frames the kernel dropped
/// because the socket was full) since the last call.
pub(crate) fn take_statistics(fd: &OwnedFd) -> io::Result<(u32, u32)> {
    let mut stats = libc::tpacket_stats {
        tp_packets: 0,
        tp_drops: 0,
    };
    let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
    // SAFETY: stats and len are valid for writes of the sizes given.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            (&raw mut stats).cast(),
            &raw mut len,
        )
    })?;
    Ok((stats.tp_packets, stats.tp_drops))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs a classic BPF program the way the kernel does, on `frame` (only the
    /// instructions `tunnel_filter` emits): the number of bytes accepted.
    fn run(program: &[libc::sock_filter], frame: &[u8]) -> u32 {
        let (mut a, mut x, mut pc) = (0u32, 0u32, 0usize);
        let read = |at: usize, n: usize| -> Option<u32> {
            let b = frame.get(at..at + n)?;
            Some(b.iter().fold(0u32, |v, &byte| (v << 8) | u32::from(byte)))
        };
        loop {
            let i = program[pc];
            let code = u32::from(i.code);
            let k = i.k as usize;
            pc += 1;
            match code {
                c if c == libc::BPF_RET | libc::BPF_K => return i.k,
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_ABS => match read(k, 2) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_B | libc::BPF_ABS => match read(k, 1) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_W | libc::BPF_ABS => match read(k, 4) {
                    Some(v) => a = v,
                    None => return 0,
                },
                c if c == libc::BPF_LD | libc::BPF_H | libc::BPF_IND => {
                    match read(x as usize + k, 2) {
                        Some(v) => a = v,
                        None => return 0,
                    }
                }
                c if c == libc::BPF_LDX | libc::BPF_B | libc::BPF_MSH => match read(k, 1) {
                    Some(v) => x = (v & 0xf) * 4,
                    None => return 0,
                },
                c if c == libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K => {
                    pc += usize::from(if a == i.k { i.jt } else { i.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K => {
                    pc += usize::from(if a & i.k != 0 { i.jt } else { i.jf });
                }
                c if c == libc::BPF_JMP | libc::BPF_JA => pc += k,
                c if c == libc::BPF_MISC | libc::BPF_TAX => x = a,
                c if c == libc::BPF_MISC | libc::BPF_TXA => a = x,
                other => panic!("instruction {other:#x} not emitted by tunnel_filter"),
            }
        }
    }

    const GIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xd, 0, 0, 0, 0, 1);

    /// Ethernet + IPv6 to `dst` with next header `next`, then 8 bytes (the UDP ports first).
    fn frame6(ethertype: u16, next: u8, dst: Ipv6Addr, port: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12..14].copy_from_slice(&ethertype.to_be_bytes());
        let mut ip = vec![0u8; 40];
        ip[0] = 0x60;
        ip[4..6].copy_from_slice(&8u16.to_be_bytes());
        ip[6] = next;
        ip[24..40].copy_from_slice(&dst.octets());
        f.extend_from_slice(&ip);
        f.extend_from_slice(&[0xc0, 0x00]);
        f.extend_from_slice(&port.to_be_bytes());
        f.extend_from_slice(&[0, 8, 0, 0]);
        f
    }

    #[test]
    fn the_filter_takes_ipv6_tunnels_and_extension_chains_and_udp_to_gip6_with_address6() {
        let gip = Ipv4Addr::new(10, 0, 0, 1);
        let other = Ipv6Addr::new(0x2001, 0xdb8, 0xd, 0, 0, 0, 0, 9);
        let taken = |p: &[libc::sock_filter], f: &[u8]| run(p, f) == u32::MAX;
        for ports in [vec![], vec![6080], vec![5555, 6080, 7000]] {
            let p = tunnel_filter(gip, Some(GIP6), &ports);
            let has = |port| ports.contains(&port);
            for next in [4, 41, 47] {
                assert!(
                    taken(&p, &frame6(0x86dd, next, other, 0)),
                    "{next} anywhere"
                );
            }
            for next in [0, 43, 44, 60] {
                assert!(taken(&p, &frame6(0x86dd, next, GIP6, 0)), "chain {next}");
                assert!(!taken(&p, &frame6(0x86dd, next, other, 0)), "chain {next}");
            }
            assert_eq!(taken(&p, &frame6(0x86dd, 17, GIP6, 6080)), has(6080));
            assert!(!taken(&p, &frame6(0x86dd, 17, GIP6, 53)), "dns");
            assert!(
                !taken(&p, &frame6(0x86dd, 17, other, 6080)),
                "other address"
            );
            assert!(!taken(&p, &frame6(0x86dd, 6, GIP6, 6080)), "tcp");
            assert!(!taken(&p, &frame6(0x86dd, 58, GIP6, 0)), "icmpv6");
            assert!(!taken(&p, &frame6(0x0806, 4, GIP6, 0)), "arp");
            assert!(!taken(&p, &frame6(0x86dd, 60, GIP6, 0)[..40]), "cut short");
            // Without address6 only IPv6 tunnel protocols (counted as wrong_gateway).
            let p4 = tunnel_filter(gip, None, &ports);
            for next in [4, 41, 47] {
                assert!(taken(&p4, &frame6(0x86dd, next, GIP6, 6080)), "{next}");
            }
            for next in [60, 17, 58] {
                assert!(!taken(&p4, &frame6(0x86dd, next, GIP6, 6080)), "{next}");
            }
        }
        // The most ports in both parts: every jump still lands (the IPv4 part's exits are
        // its own, the IPv6 part is reached by BPF_JA).
        let most: Vec<u16> = (1000..1000 + MAX_FILTER_PORTS as u16).collect();
        let p = tunnel_filter(gip, Some(GIP6), &most);
        assert!(taken(
            &p,
            &frame6(0x86dd, 17, GIP6, 1000 + MAX_FILTER_PORTS as u16 - 1)
        ));
        assert!(taken(&p, &frame6(0x86dd, 41, other, 0)));
        assert!(!taken(&p, &frame6(0x86dd, 17, GIP6, 999)));
        let many: Vec<u16> = (1000..1000 + MAX_FILTER_PORTS as u16 + 1).collect();
        let p = tunnel_filter(gip, Some(GIP6), &many);
        assert!(taken(&p, &frame6(0x86dd, 17, GIP6, 53)));
        assert!(!taken(&p, &frame6(0x86dd, 17, other, 53)));
    }

    #[test]
    fn the_filter_takes_ipip_gre_and_udp_to_the_gateway_on_tunnel_ports_only() {
        let gip = Ipv4Addr::new(10, 0, 0, 1);
        let other = Ipv4Addr::new(10, 0, 0, 9);
        // Ethernet + IPv4 (IHL `ihl`) + the UDP ports, enough to be read.
        let frame = |ethertype: u16, protocol: u8, dst: Ipv4Addr, ihl: u8, frag: u16, port: u16| {
            let mut f = vec![0u8; 14];
            f[12..14].copy_from_slice(&ethertype.to_be_bytes());
            let mut ip = vec![0u8; usize::from(ihl) * 4];
            ip[0] = 0x40 | ihl;
            ip[6..8].copy_from_slice(&frag.to_be_bytes());
            ip[9] = protocol;
            ip[16..20].copy_from_slice(&dst.octets());
            f.extend_from_slice(&ip);
            f.extend_from_slice(&[0xc0, 0x00]);
            f.extend_from_slice(&port.to_be_bytes());
            f.extend_from_slice(&[0, 8, 0, 0]);
            f
        };
        let taken = |p: &[libc::sock_filter], f: &[u8]| run(p, f) == u32::MAX;
        for ports in [vec![], vec![6080], vec![5555, 6080, 7000]] {
            let p = tunnel_filter(gip, None, &ports);
            let has = |port| ports.contains(&port);
            assert!(
                taken(&p, &frame(0x0800, 4, other, 5, 0, 0)),
                "ipip anywhere"
            );
            assert!(taken(&p, &frame(0x0800, 47, gip, 5, 0, 0)), "gre");
            assert!(
                taken(&p, &frame(0x0800, 41, other, 5, 0, 0)),
                "6in4 anywhere"
            );
            assert!(!taken(&p, &frame(0x0800, 6, gip, 5, 0, 6080)), "tcp");
            assert!(!taken(&p, &frame(0x86dd, 4, gip, 5, 0, 0)), "ipv6");
            assert_eq!(
                taken(&p, &frame(0x0800, 17, gip, 5, 0, 6080)),
                has(6080),
                "{ports:?}"
            );
            assert_eq!(
                taken(&p, &frame(0x0800, 17, gip, 7, 0, 6080)),
                has(6080),
                "options"
            );
            assert_eq!(
                taken(&p, &frame(0x0800, 17, gip, 5, 0x2000, 6080)),
                has(6080),
                "first fragment"
            );
            assert!(
                !taken(&p, &frame(0x0800, 17, gip, 5, 0x0001, 6080)),
                "later fragment"
            );
            assert!(
                !taken(&p, &frame(0x0800, 17, other, 5, 0, 6080)),
                "other address"
            );
            assert!(!taken(&p, &frame(0x0800, 17, gip, 5, 0, 53)), "dns");
            assert!(
                !taken(&p, &frame(0x0800, 17, gip, 5, 0, 6080)[..30]),
                "cut short"
            );
        }
        // Too many ports to name: all UDP to the gateway, still none elsewhere.
        let many: Vec<u16> = (1000..1000 + MAX_FILTER_PORTS as u16 + 1).collect();
        let p = tunnel_filter(gip, Some(GIP6), &many);
        assert!(taken(&p, &frame(0x0800, 17, gip, 5, 0, 53)));
        assert!(!taken(&p, &frame(0x0800, 17, other, 5, 0, 53)));
        // The longest named list still jumps within a u8.
        let most: Vec<u16> = (1000..1000 + MAX_FILTER_PORTS as u16).collect();
        let p = tunnel_filter(gip, Some(GIP6), &most);
        assert!(taken(&p, &frame(0x0800, 17, gip, 5, 0, 1000)));
        assert!(taken(&p, &frame(0x0800, 4, gip, 5, 0, 0)));
        assert!(!taken(&p, &frame(0x0800, 17, gip, 5, 0, 999)));
    }

    #[test]
    fn a_missing_interface_is_named() {
        let Err(err) = open_receive_group("tg-nonexist0", 1, Tap::Ipv4, None) else {
            panic!("a missing interface was accepted");
        };
        assert!(err.to_string().contains("tg-nonexist0"), "{err}");
    }
}
