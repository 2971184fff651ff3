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

/// A classic BPF program that accepts only IPv4 frames carrying IPIP (protocol 4), offsets
/// from the Ethernet header. The outer destination is checked in user space, so IPIP that a
/// misconfigured real server sends to another address of this host is counted as
/// `wrong_gateway` instead of vanishing unseen; the nftables rule still drops only IPIP to
/// the gateway address.
pub(crate) fn ipip_filter() -> [libc::sock_filter; 6] {
    let op = |code: u32, jt: u8, jf: u8, k: u32| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    [
        op(libc::BPF_LD | libc::BPF_H | libc::BPF_ABS, 0, 0, 12), // EtherType
        op(jeq, 0, 3, u32::from(ETH_P_IP)),
        op(libc::BPF_LD | libc::BPF_B | libc::BPF_ABS, 0, 0, 14 + 9), // outer protocol
        op(jeq, 0, 1, libc::IPPROTO_IPIP as u32),
        op(ret, 0, 0, u32::MAX), // accept the whole frame
        op(ret, 0, 0, 0),        // drop
    ]
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
    /// seeing it. Use with a BPF filter.
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
pub(crate) fn open_raw_fallback() -> Result<OwnedFd, SocketError> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe {
        libc::socket(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            libc::IPPROTO_RAW,
        )
    };
    if fd < 0 {
        return Err(SocketError {
            what: "socket(AF_INET, SOCK_RAW, IPPROTO_RAW)",
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

    #[test]
    fn filter_checks_ethertype_and_protocol() {
        let f = ipip_filter();
        assert_eq!(f[1].k, 0x0800);
        assert_eq!(f[3].k, 4);
        // Every false branch lands on the final "drop".
        for (i, jf) in [(1usize, 3u8), (3, 1)] {
            assert_eq!(i + 1 + usize::from(jf), f.len() - 1);
            assert_eq!(f[i].jf, jf);
        }
        assert_eq!(f[5].k, 0);
    }

    #[test]
    fn a_missing_interface_is_named() {
        let Err(err) = open_receive_group("tg-nonexist0", 1, Tap::Ipv4, None) else {
            panic!("a missing interface was accepted");
        };
        assert!(err.to_string().contains("tg-nonexist0"), "{err}");
    }
}
