//! A quick forwarding-rate measurement (needs root): builds the `rs` / `gw` / `client`
//! namespaces of the integration tests, runs the real `tungate` binary in `gw`, offers
//! IPIP-encapsulated 64-byte UDP replies from `rs` with an AF_PACKET + qdisc-bypass +
//! `sendmmsg` load generator for a few seconds, and reports packets per second offered,
//! forwarded by tungate and received by the client's interface.
//!
//! `cargo run --release -p tungate --example forward_pps -- [SECONDS] [WORKERS]`
//! (build the binary first: `cargo build --release -p tungate`).

#[path = "../tests/common/mod.rs"]
mod common;

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::net::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use common::packets::{ethernet, ipip, udp};
use common::{FrameSocket, Topology, Tungate};

fn client_rx_packets(t: &Topology) -> u64 {
    let out = t.client.exec("ip", &["-j", "-s", "link", "show", "c0"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    v[0]["stats64"]["rx"]["packets"].as_u64().unwrap_or(0)
}

/// A sending AF_PACKET socket on `r0` that bypasses the qdisc layer.
fn load_socket(t: &Topology) -> OwnedFd {
    t.rs.run(|| {
        // SAFETY: plain socket(2) call.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        assert!(fd >= 0);
        // SAFETY: fd is fresh and owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let one: libc::c_int = 1;
        // SAFETY: valid c_int option value of the size passed.
        unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_QDISC_BYPASS,
                (&raw const one).cast(),
                4,
            )
        };
        // SAFETY: all-zero sockaddr_ll is valid; fields set below.
        let mut sll: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_ifindex = nix::net::if_::if_nametoindex("r0").unwrap() as i32;
        // SAFETY: sll is valid for the size passed.
        let rc = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const sll).cast(),
                size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        assert_eq!(rc, 0);
        fd
    })
}

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let workers: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(1);
    let t = Topology::new();
    let mut tg = Tungate::start(&t.gw, &t.config(&format!("workers = {workers}")));
    // 64-byte UDP reply frames (14 + 20 + 8 + 22 = 64 bytes) inside IPIP.
    let frame = ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, &udp(VIP, CIP, 64, 22)));
    let probe = FrameSocket::open(&t.rs, "r0");
    probe.send(&frame); // resolve the client's neighbour entry first
    std::thread::sleep(Duration::from_millis(300));

    let fd = load_socket(&t);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let (stop2, sent2, frame2) = (stop.clone(), sent.clone(), frame.clone());
    let before_tg = tg.counters();
    let before_client = client_rx_packets(&t);
    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        const BATCH: usize = 64;
        let mut iov: Vec<libc::iovec> = (0..BATCH)
            .map(|_| libc::iovec {
                iov_base: frame2.as_ptr() as *mut _,
                iov_len: frame2.len(),
            })
            .collect();
        // SAFETY: mmsghdr is plain data; all-zero is valid before the fields are set.
        let mut msgs: Vec<libc::mmsghdr> =
            (0..BATCH).map(|_| unsafe { std::mem::zeroed() }).collect();
        for (m, v) in msgs.iter_mut().zip(iov.iter_mut()) {
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
        }
        while !stop2.load(Ordering::Relaxed) {
            // SAFETY: msgs/iov point at `frame2`, alive for the whole loop.
            let n = unsafe { libc::sendmmsg(fd.as_raw_fd(), msgs.as_mut_ptr(), BATCH as u32, 0) };
            if n > 0 {
                sent2.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    });
    std::thread::sleep(Duration::from_secs(seconds));
    stop.store(true, Ordering::Relaxed);
    sender.join().unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(200));
    let after_tg = tg.counters();
    let after_client = client_rx_packets(&t);
    let delta = |k: &str| after_tg[k].as_u64().unwrap() - before_tg[k].as_u64().unwrap();
    let offered = sent.load(Ordering::Relaxed);
    let rate = |n: u64| n as f64 / elapsed;
    println!("forward_pps: {seconds} s, {workers} worker(s), 64-byte UDP replies in IPIP, veth");
    println!(
        "  offered by the load generator: {:>10.0} pps",
        rate(offered)
    );
    println!(
        "  received by tungate:           {:>10.0} pps",
        rate(delta("rx_packets"))
    );
    println!(
        "  forwarded by tungate:          {:>10.0} pps",
        rate(delta("tx_packets"))
    );
    println!(
        "  received by the client (c0):   {:>10.0} pps",
        rate(after_client - before_client)
    );
    println!(
        "  kernel drops before tungate (rx_overflow): {}",
        after_tg["drops"]["rx_overflow"].as_u64().unwrap()
            - before_tg["drops"]["rx_overflow"].as_u64().unwrap()
    );
    assert_eq!(tg.stop().0, 0);
}
