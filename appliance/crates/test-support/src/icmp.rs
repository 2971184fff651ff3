//! A raw ICMP socket inside a namespace that sees every ICMP message arriving there: tests
//! use it to prove tungate sends none toward a real server or client, and to read the
//! fragmentation-needed messages it sends to a VIP.

use std::net::Ipv4Addr;
use std::time::Duration;

use crate::netns::Netns;

/// Every ICMP message arriving in one namespace.
pub struct IcmpWatch {
    fd: std::net::UdpSocket,
}

impl IcmpWatch {
    /// Opens the socket inside `ns`.
    pub fn open(ns: &Netns) -> IcmpWatch {
        use std::os::fd::FromRawFd;
        let fd = ns.run(|| {
            // SAFETY: plain socket(2) call.
            unsafe {
                libc::socket(
                    libc::AF_INET,
                    libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                    libc::IPPROTO_ICMP,
                )
            }
        });
        assert!(fd >= 0, "raw ICMP socket");
        // SAFETY: a fresh socket owned by nobody else; UdpSocket is used only for recv.
        let fd = unsafe { std::net::UdpSocket::from_raw_fd(fd) };
        fd.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        IcmpWatch { fd }
    }

    /// The IPv4 packets (header and ICMP message) received so far, waiting up to 300 ms
    /// for the next one.
    pub fn packets(&self) -> Vec<Vec<u8>> {
        let mut buf = [0u8; 2048];
        let mut got = Vec::new();
        while let Ok(len) = self.fd.recv(&mut buf) {
            got.push(buf[..len].to_vec());
        }
        got
    }

    /// The ICMP messages received so far, as (type, code, source).
    pub fn messages(&self) -> Vec<(u8, u8, Ipv4Addr)> {
        self.packets()
            .iter()
            .filter_map(|p| {
                let ihl = usize::from(p[0] & 0xf) * 4;
                (p.len() > ihl + 1).then(|| {
                    let src = Ipv4Addr::new(p[12], p[13], p[14], p[15]);
                    (p[ihl], p[ihl + 1], src)
                })
            })
            .collect()
    }
}
