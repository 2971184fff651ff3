//! The bench's traffic: pre-built frames, the load generator in `rs` (AF_PACKET +
//! `PACKET_QDISC_BYPASS` + `sendmmsg`, flat out or paced with sequence numbers and send
//! times), and the receiver in `client` that reads those numbers and the kernel's receive
//! time back.
//!
//! Frames are built with `etherparse`, independently of tungate's own packet code. Every
//! UDP payload starts with the sequence number and the send time (CLOCK_REALTIME, ns), both
//! big-endian u64; UDP checksums are zero (allowed in IPv4), so the generator may rewrite
//! them per packet without recomputing anything. IPv6 frames (the ip6ip6 rows) carry a
//! UDP checksum, as IPv6 requires, which a rewrite leaves stale: the client's sink counts
//! frames and never checks it, nor does anything on the way.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use etherparse::{EtherType, Ethernet2Header, PacketBuilder};

use tungate_test_support::packets::{ethernet, ipip, outer_udp};
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC};
use tungate_test_support::{Netns, frames};

use crate::gateway::{CIP6, GIP6, RIP6, vip6};

/// The VIPs' reply source port (the service), and the first client port.
pub const SERVICE_PORT: u16 = 443;
const CLIENT_PORT_BASE: u16 = 40000;
/// Frames per `sendmmsg` when sending flat out.
const FLOOD_BATCH: usize = 64;
/// How far a rate-limited sender may fall behind before it gives up the lost time instead
/// of catching up in a burst.
const MAX_LAG: Duration = Duration::from_micros(500);
/// Frames per `sendmmsg` when flooding at a set rate: bursts of 64, as the issue defines
/// "loss-free" (a real server's TSO/GRO bursts are larger still).
const PACED_FLOOD_BATCH: usize = 64;
/// Frames per `sendmmsg` when paced (the largest burst a paced run sends at once).
const PACED_BATCH: usize = 8;

/// How the generator's frames reach the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encap {
    /// The inner packet in IPIP from RIP to GIP (what tungate decapsulates).
    Ipip,
    /// The inner packet alone (what the kernel forwards in the reference variant).
    Plain,
    /// The inner packet in GUE (variant 0) from RIP to GIP's UDP port 6080, one UDP source
    /// port per flow, no UDP checksum (as Linux's fou sends by default).
    Gue,
    /// The inner packet in IPIP from [`STRANGER`], not a configured peer, to GIP: the hostile
    /// flood (dropped as `unknown_peer`).
    Stranger,
    /// ip6ip6: the IPv6 inner packet (from the VIP's [`vip6`] to [`CIP6`]) in an outer IPv6
    /// header from RIP6 to GIP6, next header 41, no extension header.
    Ip6ip6,
    /// The IPv6 inner packet alone (what the kernel forwards in the IPv6 reference).
    Plain6,
}

/// The GUE destination port: the config's default for `tunnel = "gue"`.
const GUE_PORT: u16 = 6080;
/// The first flow's GUE source port (the next flows count up from it).
const GUE_SOURCE_PORT_BASE: u16 = 49152;
/// A GUE variant 0 header: version 0, no flags, protocol 4 (IPv4).
const GUE_HEADER: [u8; 4] = [0, 4, 0, 0];

/// The outer source of the hostile flood: no peer of the gateway's.
pub const STRANGER: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 66);

/// Frames to send, all of the same length, and where their payload starts.
pub struct Frames {
    /// One frame per flow.
    pub frames: Vec<Vec<u8>>,
    /// Offset of the UDP payload in each frame (sequence number, then send time).
    pub payload_offset: usize,
}

/// `flows` frames of UDP replies with `payload` bytes (at least 16) from the VIPs (round
/// robin) to the client, one client port per flow (so PACKET_FANOUT and RPS hash them
/// over workers and cores).
pub fn build_frames(encap: Encap, payload: usize, flows: usize, vips: &[Ipv4Addr]) -> Frames {
    assert!(
        payload >= 16,
        "room for the sequence number and the send time"
    );
    let mut frames = Vec::with_capacity(flows);
    for f in 0..flows {
        let vip = vips[f % vips.len()];
        let client_port = CLIENT_PORT_BASE + f as u16;
        if matches!(encap, Encap::Ip6ip6 | Encap::Plain6) {
            let mut inner = Vec::new();
            PacketBuilder::ipv6(vip6(vip).octets(), CIP6.octets(), 64)
                .udp(SERVICE_PORT, client_port)
                .write(&mut inner, &vec![0x5a; payload])
                .expect("build the inner IPv6 packet");
            let ip = match encap {
                Encap::Ip6ip6 => ipv6_outer(RIP6, GIP6, 41, &inner),
                _ => inner,
            };
            frames.push(ethernet6(GW_RS_MAC, RS_MAC, &ip));
            continue;
        }
        let mut inner = Vec::new();
        PacketBuilder::ipv4(vip.octets(), CIP.octets(), 64)
            .udp(SERVICE_PORT, client_port)
            .write(&mut inner, &vec![0x5a; payload])
            .expect("build the inner packet");
        inner[26..28].fill(0); // no UDP checksum: payload rewrites stay valid
        let ip = match encap {
            Encap::Ipip => ipip(RIP, GIP, &inner),
            Encap::Gue => {
                let gue = [&GUE_HEADER[..], &inner].concat();
                outer_udp(
                    RIP,
                    GIP,
                    GUE_SOURCE_PORT_BASE + f as u16,
                    GUE_PORT,
                    &gue,
                    false,
                )
            }
            Encap::Stranger => ipip(STRANGER, GIP, &inner),
            Encap::Plain => inner,
            Encap::Ip6ip6 | Encap::Plain6 => unreachable!("built above"),
        };
        frames.push(ethernet(GW_RS_MAC, RS_MAC, &ip));
    }
    let payload_offset = frames[0].len() - payload;
    Frames {
        frames,
        payload_offset,
    }
}

/// An IPv6 header from `src` to `dst` (hop limit 64, next header `next`) in front of
/// `payload`.
fn ipv6_outer(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let length = u16::try_from(payload.len()).expect("an IPv6 payload under 64 KiB");
    let mut ip = vec![0x60, 0, 0, 0];
    ip.extend_from_slice(&length.to_be_bytes());
    ip.extend_from_slice(&[next, 64]);
    ip.extend_from_slice(&src.octets());
    ip.extend_from_slice(&dst.octets());
    ip.extend_from_slice(payload);
    ip
}

/// An Ethernet frame of type IPv6 from `src` to `dst` around `ip`.
fn ethernet6(dst: [u8; 6], src: [u8; 6], ip: &[u8]) -> Vec<u8> {
    let eth = Ethernet2Header {
        source: src,
        destination: dst,
        ether_type: EtherType::IPV6,
    };
    [&eth.to_bytes()[..], ip].concat()
}

/// Sets an int socket option, panicking with the option's name if it fails.
fn set_int(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int, what: &str) {
    // SAFETY: fd is an open socket; the value is a c_int whose size is passed.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "{what}: {}", std::io::Error::last_os_error());
}

/// An AF_PACKET socket bound to `interface` of `ns` (protocol `protocol`, 0 = receive
/// nothing).
fn packet_socket(ns: &Netns, interface: &str, protocol: u16) -> OwnedFd {
    let interface = interface.to_owned();
    ns.run(move || frames::packet_socket(&interface, protocol))
}

/// Pins the calling thread to `cpus`.
pub fn pin_current_thread(cpus: &[usize]) {
    let mut set = nix::sched::CpuSet::new();
    for &c in cpus {
        set.set(c).expect("cpu index");
    }
    nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set).expect("sched_setaffinity");
}

/// CLOCK_REALTIME in nanoseconds (the clock of the kernel's software receive stamps).
pub fn realtime_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The load generator's socket on `r0` in `rs`.
pub struct Generator {
    fd: OwnedFd,
}

impl Generator {
    /// Opens the socket: frames go straight to the device (no qdisc).
    pub fn open(rs: &Netns) -> Generator {
        let fd = packet_socket(rs, "r0", 0);
        set_int(
            &fd,
            libc::SOL_PACKET,
            libc::PACKET_QDISC_BYPASS,
            1,
            "PACKET_QDISC_BYPASS",
        );
        Generator { fd }
    }

    fn sendmmsg(&self, frames: &[&[u8]]) -> usize {
        let mut iov: [libc::iovec; FLOOD_BATCH] = [libc::iovec {
            iov_base: std::ptr::null_mut(),
            iov_len: 0,
        }; FLOOD_BATCH];
        // SAFETY: mmsghdr is plain data; all-zero is valid before the fields are set.
        let mut msgs: [libc::mmsghdr; FLOOD_BATCH] = unsafe { std::mem::zeroed() };
        let n = frames.len().min(FLOOD_BATCH);
        for i in 0..n {
            iov[i].iov_base = frames[i].as_ptr() as *mut libc::c_void;
            iov[i].iov_len = frames[i].len();
            msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
            msgs[i].msg_hdr.msg_iovlen = 1;
        }
        // SAFETY: msgs/iov point at `frames`, alive for the call.
        let sent = unsafe { libc::sendmmsg(self.fd.as_raw_fd(), msgs.as_mut_ptr(), n as u32, 0) };
        sent.max(0) as usize
    }

    /// Sends `frames` round robin as fast as it can until `stop` is set, adding what it sent
    /// to `sent` after every batch.
    /// With a `rate`, it sends bursts of 64 at that rate instead.
    pub fn flood(&self, frames: &Frames, stop: &AtomicBool, sent: &AtomicU64, rate: Option<f64>) {
        let refs: Vec<&[u8]> = frames
            .frames
            .iter()
            .cycle()
            .take(FLOOD_BATCH * frames.frames.len().div_ceil(FLOOD_BATCH).max(1))
            .map(|f| f.as_slice())
            .collect();
        let burst = if rate.is_some() {
            PACED_FLOOD_BATCH
        } else {
            FLOOD_BATCH
        };
        let mut started = Instant::now();
        let mut total = 0u64;
        let mut at = 0;
        while !stop.load(Ordering::Relaxed) {
            if let Some(rate) = rate {
                let mut due = started + Duration::from_secs_f64(total as f64 / rate);
                let now = Instant::now();
                if now > due + MAX_LAG {
                    started += now - due; // no catch-up burst (see `paced`)
                    due = now;
                }
                while Instant::now() < due && !stop.load(Ordering::Relaxed) {
                    std::hint::spin_loop();
                }
            }
            let batch = &refs[at..at + burst];
            let n = self.sendmmsg(batch);
            total += n as u64;
            sent.fetch_add(n as u64, Ordering::Relaxed);
            at = (at + burst) % refs.len();
        }
    }

    /// Sends `valid` frames at `valid_rate` per second and fills every batch of 64 up with
    /// `hostile` frames, as fast as it can, until `stop` is set: a flood from a stranger at
    /// the generator's maximum with valid traffic at a steady rate inside it. Adds what it
    /// sent to `sent_valid` and `sent_hostile` after every batch.
    pub fn mixed(
        &self,
        valid: &Frames,
        hostile: &Frames,
        valid_rate: f64,
        stop: &AtomicBool,
        sent_valid: &AtomicU64,
        sent_hostile: &AtomicU64,
    ) {
        let mut started = Instant::now();
        let (mut total_valid, mut v, mut h) = (0u64, 0usize, 0usize);
        let mut batch: Vec<&[u8]> = Vec::with_capacity(FLOOD_BATCH);
        while !stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            let mut due = ((now - started).as_secs_f64() * valid_rate) as u64;
            if due > total_valid + (MAX_LAG.as_secs_f64() * valid_rate) as u64 + FLOOD_BATCH as u64
            {
                // Held up: go on from here (no catch-up burst, as `flood`).
                started = now - Duration::from_secs_f64(total_valid as f64 / valid_rate);
                due = total_valid;
            }
            let n_valid = (due.saturating_sub(total_valid) as usize).min(FLOOD_BATCH);
            batch.clear();
            for _ in 0..n_valid {
                batch.push(&valid.frames[v]);
                v = (v + 1) % valid.frames.len();
            }
            while batch.len() < FLOOD_BATCH {
                batch.push(&hostile.frames[h]);
                h = (h + 1) % hostile.frames.len();
            }
            let n = self.sendmmsg(&batch);
            // sendmmsg sends in order: the valid frames lead the batch.
            let sent_v = n.min(n_valid) as u64;
            total_valid += sent_v;
            sent_valid.fetch_add(sent_v, Ordering::Relaxed);
            sent_hostile.fetch_add((n as u64).saturating_sub(sent_v), Ordering::Relaxed);
        }
    }

    /// Sends `count` frames at `rate` per second, in bursts of at most 8, numbering them
    /// from `first` and stamping each with its send time. Stops early if `stop` is set.
    /// Returns how many it sent.
    pub fn paced(
        &self,
        frames: &Frames,
        rate: f64,
        count: u64,
        first: u64,
        stop: &AtomicBool,
    ) -> u64 {
        let mut batch: Vec<Vec<u8>> = (0..PACED_BATCH)
            .map(|i| frames.frames[i % frames.frames.len()].clone())
            .collect();
        let mut started = Instant::now();
        let mut seq = first;
        let mut sent = 0u64;
        let mut flow = 0usize;
        while sent < count && !stop.load(Ordering::Relaxed) {
            let mut due = started + Duration::from_secs_f64(sent as f64 / rate);
            let now = Instant::now();
            if now > due + MAX_LAG {
                // The generator was held up (its core is shared): go on from now rather
                // than catch up in a burst far above the rate asked for.
                started += now - due;
                due = now;
            }
            while Instant::now() < due {
                std::hint::spin_loop();
            }
            let n = PACED_BATCH.min((count - sent) as usize);
            let now = realtime_ns();
            for frame in batch.iter_mut().take(n) {
                frame.copy_from_slice(&frames.frames[flow]);
                flow = (flow + 1) % frames.frames.len();
                let p = frames.payload_offset;
                frame[p..p + 8].copy_from_slice(&seq.to_be_bytes());
                frame[p + 8..p + 16].copy_from_slice(&now.to_be_bytes());
                seq += 1;
            }
            let refs: Vec<&[u8]> = batch[..n].iter().map(|f| f.as_slice()).collect();
            let done = self.sendmmsg(&refs);
            if done < n {
                // Numbers not sent are never expected: take them back.
                seq -= (n - done) as u64;
            }
            sent += done as u64;
        }
        sent
    }
}

/// One frame the client received: its sequence number and its one-way latency (kernel
/// receive time at the client minus the generator's send time, ns).
#[derive(Debug, Clone, Copy)]
pub struct Arrival {
    /// The generator's sequence number.
    pub seq: u64,
    /// Receive time minus send time, in nanoseconds.
    pub latency_ns: i64,
    /// The send time the generator wrote into the frame (CLOCK_REALTIME, ns).
    pub sent_ns: u64,
}

/// What the client's receiver saw.
pub struct Received {
    /// Every numbered frame, in arrival order.
    pub arrivals: Vec<Arrival>,
    /// Frames the kernel dropped because the receiver's socket was full.
    pub socket_drops: u64,
}

/// A receiver on `c0` in `client`: every frame (AF_PACKET, all protocols, before the
/// client's nftables drop), with the kernel's software receive time stamp.
pub struct Receiver {
    fd: OwnedFd,
    payload_offset: usize,
}

impl Receiver {
    /// Opens it; frames have their payload at `payload_offset` (Ethernet + inner packet).
    pub fn open(client: &Netns, payload_offset: usize) -> Receiver {
        let fd = packet_socket(client, "c0", libc::ETH_P_ALL as u16);
        set_int(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUFFORCE,
            256 << 20,
            "SO_RCVBUFFORCE",
        );
        set_int(
            &fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            1,
            "SO_TIMESTAMPNS",
        );
        let tv = libc::timeval {
            tv_sec: 0,
            tv_usec: 100_000,
        };
        // SAFETY: tv is a valid timeval whose size is passed.
        let rc = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&raw const tv).cast(),
                size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        assert_eq!(rc, 0);
        let r = Receiver { fd, payload_offset };
        r.take_drops();
        r
    }

    fn take_drops(&self) -> u64 {
        let mut stats = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let mut len = size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: stats and len are valid for writes of the sizes given.
        unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&raw mut stats).cast(),
                &raw mut len,
            )
        };
        u64::from(stats.tp_drops)
    }

    /// Reads until `stop` is set and then nothing arrives for 100 ms.
    pub fn collect(&self, stop: &AtomicBool) -> Received {
        const N: usize = 64;
        const FRAME: usize = 2048;
        const CONTROL: usize = 64;
        let mut bufs = vec![[0u8; FRAME]; N];
        let mut controls = vec![[0u64; CONTROL / 8]; N];
        let mut iov: Vec<libc::iovec> = Vec::with_capacity(N);
        for b in bufs.iter_mut() {
            iov.push(libc::iovec {
                iov_base: b.as_mut_ptr().cast(),
                iov_len: FRAME,
            });
        }
        // SAFETY: mmsghdr is plain data; all-zero is valid before the fields are set.
        let mut msgs: Vec<libc::mmsghdr> = (0..N).map(|_| unsafe { std::mem::zeroed() }).collect();
        let mut arrivals = Vec::with_capacity(1 << 20);
        let p = self.payload_offset;
        loop {
            for i in 0..N {
                msgs[i].msg_hdr.msg_iov = &raw mut iov[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_control = controls[i].as_mut_ptr().cast();
                msgs[i].msg_hdr.msg_controllen = CONTROL;
            }
            // SAFETY: every message points at its own buffer and control area, alive for
            // the call; the timeout (SO_RCVTIMEO) bounds it.
            let n = unsafe {
                libc::recvmmsg(
                    self.fd.as_raw_fd(),
                    msgs.as_mut_ptr(),
                    N as u32,
                    libc::MSG_WAITFORONE,
                    std::ptr::null_mut(),
                )
            };
            if n <= 0 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                continue;
            }
            for i in 0..n as usize {
                let len = msgs[i].msg_len as usize;
                let f = &bufs[i][..len.min(FRAME)];
                // Ours: IPv4, UDP, from the service port, long enough for the stamp.
                if len < p + 16
                    || f[12..14] != [0x08, 0x00]
                    || f[23] != 17
                    || f[34..36] != SERVICE_PORT.to_be_bytes()
                {
                    continue;
                }
                let seq = u64::from_be_bytes(f[p..p + 8].try_into().unwrap());
                let sent = u64::from_be_bytes(f[p + 8..p + 16].try_into().unwrap());
                let received = timestamp(&msgs[i].msg_hdr).unwrap_or(0);
                arrivals.push(Arrival {
                    seq,
                    latency_ns: received as i64 - sent as i64,
                    sent_ns: sent,
                });
            }
        }
        Received {
            arrivals,
            socket_drops: self.take_drops(),
        }
    }
}

/// The SCM_TIMESTAMPNS receive time of a message, in ns.
fn timestamp(hdr: &libc::msghdr) -> Option<u64> {
    // SAFETY: hdr was filled by recvmmsg; the CMSG macros walk its control area within
    // msg_controllen.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<libc::timespec>());
                return Some(ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64);
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    None
}
