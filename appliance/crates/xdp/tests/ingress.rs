//! The XDP pre-filter against the real kernel, in network namespaces: a `peer` namespace
//! (the real server, `r0` with RIP) joined by veth to a `gw` namespace (`g0` with GIP) where
//! the program is attached. The peer sends crafted frames with an AF_PACKET socket; the
//! assertions read the program's own counters and `ip -d link`.
//! Run: `cargo test --release -p tungate-xdp` (as root).

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::process::{Command, Stdio};
use std::time::Duration;

use tungate_packet::{DropReason, Tunnel};
use tungate_test_support::frames::FrameSocket;
use tungate_test_support::netns::Netns;
use tungate_test_support::packets::{
    ethernet, fix_ip_checksum, fou, gre, gre_raw, gue, gue_with, ipip, outer, outer_udp, udp,
};
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP, veth};
use tungate_test_support::wait::until;
use tungate_test_support::xsk::BareXsk;
use tungate_xdp::{
    IngressFilter, MAX_PEERS, MAX_QUEUES, PROGRAM_NAME, XdpCounters, XdpError, XdpMode,
};

/// Another real server's address, not configured unless a test says so.
const OTHER: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
/// The gateway's IPv6 address (`gateway.address6`), the real server's, another's.
const GIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);
const RIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 2);
const OTHER6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 3);
/// An IPv6 VIP and client (the inner addresses).
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x10);
const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 7);
/// A liveness bound for counters to move (not a speed claim).
const LIMIT: Duration = Duration::from_secs(10);

/// The two namespaces, the gateway's ingress index and the peer's frame socket.
struct Pair {
    gw: Netns,
    peer: Netns,
    g0: u32,
    sender: FrameSocket,
}

impl Pair {
    fn new() -> Pair {
        let gw = Netns::new("xdpgw");
        let peer = Netns::new("xdppeer");
        veth(&gw, "g0", &mac(GW_RS_MAC), &peer, "r0", &mac(RS_MAC));
        gw.ip(&["addr", "add", &format!("{GIP}/24"), "dev", "g0"]);
        peer.ip(&["addr", "add", &format!("{RIP}/24"), "dev", "r0"]);
        gw.ip(&["addr", "add", &format!("{GIP6}/64"), "dev", "g0", "nodad"]);
        peer.ip(&["addr", "add", &format!("{RIP6}/64"), "dev", "r0", "nodad"]);
        let g0 = ifindex(&gw, "g0");
        let sender = FrameSocket::open(&peer, "r0");
        Pair {
            gw,
            peer,
            g0,
            sender,
        }
    }

    /// Attaches the filter to `g0` from inside the gateway's namespace.
    fn attach(&self, mode: XdpMode) -> Result<IngressFilter, XdpError> {
        let g0 = self.g0;
        self.gw.run(move || IngressFilter::attach(g0, mode, GIP))
    }

    /// Sends an IPv4 packet from the peer to the gateway in an Ethernet frame.
    fn send(&self, ip: &[u8]) {
        self.sender.send(&ethernet(GW_RS_MAC, RS_MAC, ip));
    }

    /// Sends an IPv6 packet from the peer to the gateway in an Ethernet frame.
    fn send6(&self, ip: &[u8]) {
        let mut frame = GW_RS_MAC.to_vec();
        frame.extend(RS_MAC);
        frame.extend(0x86ddu16.to_be_bytes());
        frame.extend(ip);
        self.sender.send(&frame);
    }

    /// The `xdp` object of `ip -j -d link show g0`, if a program is attached.
    fn xdp(&self) -> Option<serde_json::Value> {
        let link = self.gw.ip_json(&["-d", "link", "show", "g0"]);
        link[0].get("xdp").cloned()
    }
}

fn mac(m: [u8; 6]) -> String {
    m.map(|b| format!("{b:02x}")).join(":")
}

fn ifindex(ns: &Netns, dev: &str) -> u32 {
    let link = ns.ip_json(&["link", "show", dev]);
    link[0]["ifindex"].as_u64().expect("ifindex") as u32
}

/// A valid tunnel packet from `source` to `gateway`.
fn tunnel(source: Ipv4Addr, gateway: Ipv4Addr) -> Vec<u8> {
    ipip(source, gateway, &udp(VIP, CIP, 64, 32))
}

/// `tunnel(RIP, GIP)` edited by `edit`, its header checksum then recomputed.
fn edited(edit: impl Fn(&mut Vec<u8>)) -> Vec<u8> {
    let mut p = tunnel(RIP, GIP);
    edit(&mut p);
    fix_ip_checksum(&mut p);
    p
}

/// Waits until the filter has dropped `total` frames in all, then returns its counters.
fn counters_after(filter: &IngressFilter, total: u64) -> XdpCounters {
    until(LIMIT, &format!("{total} frames dropped by XDP"), || {
        filter.counters().expect("counters").total_dropped() >= total
    });
    filter.counters().expect("counters")
}

/// The drop counters as (name, count), non-zero only.
fn drops(c: &XdpCounters) -> Vec<(&'static str, u64)> {
    c.nonzero_drops().map(|(r, n)| (r.as_str(), n)).collect()
}

fn each_bad_tunnel_packet_is_dropped_under_its_reason(mode: XdpMode) {
    let pair = Pair::new();
    let mut filter = pair.attach(mode).expect("attach");
    filter.set_peers(&[(RIP, Tunnel::Ipip)]).expect("peers");
    assert_eq!(filter.mode(), mode);

    // Not a tunnel packet: the host's business, passed.
    pair.send(&outer(RIP, GIP, 17, &udp(VIP, CIP, 64, 8)[20..]));
    for _ in 0..2 {
        pair.send(&tunnel(RIP, Ipv4Addr::new(10, 0, 1, 99)));
    }
    for _ in 0..3 {
        pair.send(&tunnel(OTHER, GIP));
    }
    pair.send(&edited(|p| p[6] |= 0x20)); // more fragments
    pair.send(&edited(|p| p[7] = 8)); // fragment offset 64
    pair.send(&edited(|p| p[0] = 0x44)); // IHL 4
    pair.send(&edited(|p| {
        let len = p.len() as u16 + 100;
        p[2..4].copy_from_slice(&len.to_be_bytes());
    })); // total length beyond the frame
    let mut bad_sum = tunnel(RIP, GIP);
    bad_sum[10] ^= 0x5a;
    pair.send(&bad_sum);
    // Valid, but no socket on the queue.
    pair.send(&tunnel(RIP, GIP));

    let c = counters_after(&filter, 11);
    assert_eq!(
        drops(&c),
        [
            ("malformed_outer", 2),
            ("bad_outer_checksum", 1),
            ("outer_fragment", 2),
            ("wrong_gateway", 2),
            ("unknown_peer", 3),
            ("rx_overflow", 1),
        ]
    );
    assert_eq!(c.redirected, 0);
    assert!(c.passed >= 1, "the UDP packet passed: {c:?}");
}

#[test]
fn each_bad_tunnel_packet_is_dropped_under_its_reason_native() {
    each_bad_tunnel_packet_is_dropped_under_its_reason(XdpMode::Native);
}

#[test]
fn each_bad_tunnel_packet_is_dropped_under_its_reason_generic() {
    each_bad_tunnel_packet_is_dropped_under_its_reason(XdpMode::Generic);
}

/// A GUE peer (RIP, port 6080) and a keyed GRE peer (OTHER, key 7): each hostile GUE, FOU
/// and GRE frame is dropped under its reason, the host's other UDP passes, and a change of
/// the peer's tunnel moves the UDP ports the program takes.
#[test]
fn each_bad_gue_fou_and_gre_packet_is_dropped_under_its_reason() {
    const PORT: u16 = 6080;
    const KEY: u32 = 7;
    let pair = Pair::new();
    let mut filter = pair.attach(XdpMode::Native).expect("attach");
    filter
        .set_peers(&[
            (RIP, Tunnel::Gue { port: PORT }),
            (OTHER, Tunnel::Gre { key: Some(KEY) }),
        ])
        .expect("peers");
    let inner = udp(VIP, CIP, 64, 32);
    let stranger = Ipv4Addr::new(10, 0, 1, 50);

    // The host's own UDP (another port, or the tunnel port to another address): passed.
    pair.send(&outer_udp(RIP, GIP, 5353, 53, &[1, 2, 3, 4], true));
    pair.send(&gue(RIP, Ipv4Addr::new(10, 0, 1, 99), PORT, &inner));
    let passed = filter.counters().expect("counters").passed;
    // Valid GUE, GUE variant 1 and keyed GRE with a checksum: no socket, so rx_overflow.
    pair.send(&gue(RIP, GIP, PORT, &inner));
    pair.send(&fou(RIP, GIP, PORT, &inner));
    pair.send(&gre(OTHER, GIP, Some(KEY), true, &inner));
    // Hostile.
    pair.send(&gue(stranger, GIP, PORT, &inner)); // unknown_peer
    pair.send(&gue(OTHER, GIP, PORT, &inner)); // wrong_tunnel: GUE from the GRE peer
    pair.send(&gre(RIP, GIP, None, false, &inner)); // wrong_tunnel: GRE from the GUE peer
    pair.send(&ipip(RIP, GIP, &inner)); // wrong_tunnel: IPIP from the GUE peer
    let mut long = gue(RIP, GIP, PORT, &inner);
    long[24..26].copy_from_slice(&((8 + 4 + inner.len() + 1) as u16).to_be_bytes());
    pair.send(&long); // bad_udp_length
    pair.send(&gue_with(RIP, GIP, PORT, [0x20, 0, 0, 0], &inner)); // bad_gue: control
    pair.send(&gue_with(RIP, GIP, PORT, [0, 47, 0, 0], &inner)); // bad_gue: GRE inside
    pair.send(&gue_with(RIP, GIP, PORT, [0, 4, 0x80, 0], &inner)); // bad_gue: flags
    pair.send(&gre(OTHER, GIP, None, false, &inner)); // wrong_gre_key: none
    pair.send(&gre(OTHER, GIP, Some(KEY + 1), false, &inner)); // wrong_gre_key: another
    pair.send(&gre_raw(OTHER, GIP, [0x60, 0], 0x0800, Some(KEY), &inner)); // bad_gre: routing
    pair.send(&gre_raw(OTHER, GIP, [0x20, 1], 0x0800, Some(KEY), &inner)); // bad_gre: version
    pair.send(&gre_raw(OTHER, GIP, [0x20, 0], 0x6558, Some(KEY), &inner)); // bad_gre: Ethernet

    let c = counters_after(&filter, 16);
    assert_eq!(
        drops(&c),
        [
            ("unknown_peer", 1),
            ("rx_overflow", 3),
            ("wrong_tunnel", 3),
            ("bad_udp_length", 1),
            ("bad_gue", 3),
            ("bad_gre", 3),
            ("wrong_gre_key", 2),
        ]
    );
    assert!(passed >= 2, "the host's UDP passed: {c:?}");

    // The GUE peer becomes a FOU peer on 5555: 6080 is the host's again, 5555 is taken.
    filter
        .set_peers(&[
            (RIP, Tunnel::Fou { port: 5555 }),
            (OTHER, Tunnel::Gre { key: Some(KEY) }),
        ])
        .expect("peers changed");
    let before = filter.counters().expect("counters");
    pair.send(&gue(stranger, GIP, PORT, &inner));
    pair.send(&fou(stranger, GIP, 5555, &inner));
    let c = counters_after(&filter, 17);
    assert_eq!(
        c.dropped(DropReason::UnknownPeer),
        2,
        "5555 is a tunnel port"
    );
    assert!(c.passed > before.passed, "6080 passed: {c:?}");
}

#[test]
fn the_hosts_own_traffic_passes_while_attached() {
    let pair = Pair::new();
    let filter = pair.attach(XdpMode::Native).expect("attach");
    assert!(pair.xdp().is_some(), "attached");

    // ARP and ICMP: ping the ingress address from the peer.
    let ping = pair
        .peer
        .command("ping", &["-c", "2", "-W", "5", &GIP.to_string()]);
    assert_eq!(
        ping.code, 0,
        "ping through XDP: {}{}",
        ping.stdout, ping.stderr
    );

    // Neighbour discovery and ICMPv6: ping the ingress IPv6 address from the peer.
    let ping6 = pair
        .peer
        .command("ping", &["-6", "-c", "2", "-W", "5", &GIP6.to_string()]);
    assert_eq!(
        ping6.code, 0,
        "ping -6 through XDP: {}{}",
        ping6.stdout, ping6.stderr
    );

    // TCP: a connection to the ingress address, data both ways.
    let listener = pair
        .gw
        .run(|| TcpListener::bind((GIP, 8080)).expect("listen on GIP"));
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        s.write_all(b"world").expect("write");
        buf
    });
    let reply = pair.peer.run(|| {
        let mut s = TcpStream::connect((GIP, 8080)).expect("connect to GIP");
        s.set_read_timeout(Some(LIMIT)).unwrap();
        s.write_all(b"hello").expect("write");
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).expect("read");
        buf
    });
    assert_eq!(&server.join().expect("server"), b"hello");
    assert_eq!(&reply, b"world");

    let c = filter.counters().expect("counters");
    assert_eq!(c.total_dropped(), 0, "{c:?}");
    assert!(
        c.passed >= 10,
        "ARP, ICMP, ND, ICMPv6 and TCP frames passed: {c:?}"
    );
}

#[test]
fn peers_and_gateway_change_without_reloading() {
    let pair = Pair::new();
    let mut filter = pair.attach(XdpMode::Native).expect("attach");
    let id = filter.program_id();
    let dropped = |f: &IngressFilter, r: DropReason| f.counters().expect("counters").dropped(r);

    // No peers yet: every tunnel packet is from an unknown peer.
    pair.send(&tunnel(RIP, GIP));
    counters_after(&filter, 1);
    assert_eq!(dropped(&filter, DropReason::UnknownPeer), 1);

    // RIP added: past the peer check (no socket: rx_overflow).
    filter.set_peers(&[(RIP, Tunnel::Ipip)]).expect("add RIP");
    pair.send(&tunnel(RIP, GIP));
    counters_after(&filter, 2);
    assert_eq!(dropped(&filter, DropReason::RxOverflow), 1);
    assert_eq!(dropped(&filter, DropReason::UnknownPeer), 1);

    // RIP removed, OTHER added.
    filter
        .set_peers(&[(OTHER, Tunnel::Ipip)])
        .expect("swap peers");
    pair.send(&tunnel(RIP, GIP));
    pair.send(&tunnel(OTHER, GIP));
    counters_after(&filter, 4);
    assert_eq!(dropped(&filter, DropReason::UnknownPeer), 2);
    assert_eq!(dropped(&filter, DropReason::RxOverflow), 2);

    // Too many peers: refused, and the set in force stays.
    let many: Vec<(Ipv4Addr, Tunnel)> = (0..=MAX_PEERS as u32)
        .map(|a| (Ipv4Addr::from(a), Tunnel::Ipip))
        .collect();
    let e = filter.set_peers(&many).expect_err("over the map's size");
    assert!(matches!(e, XdpError::TooManyPeers { .. }), "{e}");
    pair.send(&tunnel(OTHER, GIP));
    counters_after(&filter, 5);
    assert_eq!(dropped(&filter, DropReason::RxOverflow), 3);

    // Another gateway address: GIP is now the wrong one.
    filter
        .set_gateway(Ipv4Addr::new(10, 0, 1, 99))
        .expect("gateway");
    pair.send(&tunnel(OTHER, GIP));
    counters_after(&filter, 6);
    assert_eq!(dropped(&filter, DropReason::WrongGateway), 1);

    // IPv6: RIP6 unknown, then added beside OTHER (past the peer check), then removed.
    let ip6ip6 = || v6::packet(RIP6, GIP6, &[], v6::IPV6, &v6::inner6());
    filter.set_gateway6(Some(GIP6)).expect("gateway6");
    pair.send6(&ip6ip6());
    counters_after(&filter, 7);
    assert_eq!(dropped(&filter, DropReason::UnknownPeer), 3);
    filter
        .set_peers(&[
            (IpAddr::V4(OTHER), Tunnel::Ipip),
            (IpAddr::V6(RIP6), Tunnel::Ipip),
        ])
        .expect("add RIP6");
    pair.send6(&ip6ip6());
    counters_after(&filter, 8);
    assert_eq!(dropped(&filter, DropReason::RxOverflow), 4);
    filter
        .set_peers(&[(OTHER, Tunnel::Ipip)])
        .expect("remove RIP6");
    pair.send6(&ip6ip6());
    counters_after(&filter, 9);
    assert_eq!(dropped(&filter, DropReason::UnknownPeer), 4);
    let many6: Vec<(Ipv6Addr, Tunnel)> = (0..=MAX_PEERS as u128)
        .map(|a| (Ipv6Addr::from(a), Tunnel::Ipip))
        .collect();
    let e = filter
        .set_peers(&many6)
        .expect_err("over the IPv6 map's size");
    assert!(matches!(e, XdpError::TooManyPeers { .. }), "{e}");

    // The same program throughout.
    assert_eq!(filter.program_id(), id);
    assert_eq!(pair.xdp().expect("attached")["prog"]["id"], id);
}

fn nix_ifindex(dev: &str) -> u32 {
    let name = std::ffi::CString::new(dev).unwrap();
    // SAFETY: name is a valid C string.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    assert_ne!(index, 0, "no interface {dev}");
    index
}

#[test]
fn a_bound_socket_gets_the_valid_packets_and_unbinding_drops_them() {
    let pair = Pair::new();
    let mut filter = pair.attach(XdpMode::Native).expect("attach");
    filter.set_peers(&[(RIP, Tunnel::Ipip)]).expect("peers");
    let xsk = BareXsk::open(&pair.gw, "g0", 0);

    filter.bind_socket(0, xsk.as_fd()).expect("bind queue 0");
    pair.send(&tunnel(RIP, GIP));
    pair.send(&tunnel(OTHER, GIP));
    counters_after(&filter, 1);
    until(LIMIT, "a frame redirected", || {
        filter.counters().expect("counters").redirected == 1
    });
    // The other tunnel types are redirected too (RIP's tunnel changed while running).
    filter
        .set_peers(&[(RIP, Tunnel::Gue { port: 6080 })])
        .expect("gue peer");
    pair.send(&gue(RIP, GIP, 6080, &udp(VIP, CIP, 64, 32)));
    until(LIMIT, "a GUE frame redirected", || {
        filter.counters().expect("counters").redirected == 2
    });
    filter
        .set_peers(&[(RIP, Tunnel::Gre { key: Some(9) })])
        .expect("gre peer");
    pair.send(&gre(RIP, GIP, Some(9), false, &udp(VIP, CIP, 64, 32)));
    until(LIMIT, "a GRE frame redirected", || {
        filter.counters().expect("counters").redirected == 3
    });
    filter
        .set_peers(&[(RIP, Tunnel::Ipip)])
        .expect("ipip peer again");

    filter.unbind_socket(0).expect("unbind");
    filter
        .unbind_socket(0)
        .expect("unbinding twice does nothing");
    pair.send(&tunnel(RIP, GIP));
    let c = counters_after(&filter, 2);
    assert_eq!(drops(&c), [("unknown_peer", 1), ("rx_overflow", 1)]);
    assert_eq!(c.redirected, 3);

    // Error paths: a queue beyond the map, a socket that is not AF_XDP.
    let e = filter
        .bind_socket(MAX_QUEUES, xsk.as_fd())
        .expect_err("queue out of range");
    assert!(matches!(e, XdpError::QueueOutOfRange { .. }), "{e}");
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let e = filter
        .bind_socket(1, udp.as_fd())
        .expect_err("not an AF_XDP socket");
    assert!(e.to_string().contains("xsks"), "{e}");
    drop(filter);
    drop(xsk);
}

#[test]
fn dropping_the_filter_leaves_no_program() {
    let pair = Pair::new();
    let filter = pair.attach(XdpMode::Native).expect("attach");
    let xdp = pair.xdp().expect("attached");
    assert_eq!(xdp["prog"]["name"], PROGRAM_NAME);
    assert_eq!(xdp["prog"]["id"], filter.program_id());
    drop(filter);
    until(LIMIT, "no XDP program on g0", || pair.xdp().is_none());
}

#[test]
fn a_detached_filter_keeps_its_maps_and_goes_back_unless_another_program_came() {
    let pair = Pair::new();
    // Attaching (and the interface lookups before it) happen in the namespace of the calling
    // thread: every call that attaches runs inside the gateway's namespace.
    let reattach = |filter: IngressFilter| {
        pair.gw.run(move || {
            let mut filter = filter;
            let result = filter.reattach();
            (filter, result)
        })
    };
    let mut filter = pair.attach(XdpMode::Generic).expect("attach");
    filter.set_peers(&[(RIP, Tunnel::Ipip)]).expect("peers");
    let id = filter.program_id();
    filter.detach().expect("detach");
    filter.detach().expect("detaching twice does nothing");
    assert!(!filter.is_attached());
    until(LIMIT, "no XDP program on g0", || pair.xdp().is_none());
    // Still loaded: its maps answer while detached.
    filter
        .set_peers(&[(RIP, Tunnel::Ipip)])
        .expect("the peer map is still there");
    filter.counters().expect("the counters are still there");

    let (filter, result) = reattach(filter);
    result.expect("reattach");
    let (mut filter, result) = reattach(filter);
    result.expect("reattaching an attached filter does nothing");
    assert!(filter.is_attached());
    let xdp = pair.xdp().expect("attached again");
    assert_eq!(xdp["prog"]["id"], id, "the same program, not a new one");

    // Another tool's program attached while ours was away is refused and left alone.
    filter.detach().expect("detach");
    let dir = env!("CARGO_MANIFEST_DIR");
    let other = format!("{dir}/bpf/other_tool.bpf.o");
    pair.gw.ip(&[
        "link",
        "set",
        "dev",
        "g0",
        "xdpgeneric",
        "obj",
        &other,
        "sec",
        "xdp",
    ]);
    let (filter, result) = reattach(filter);
    let e = result.expect_err("another tool's program is there");
    assert!(matches!(e, XdpError::ForeignProgram { .. }), "{e}");
    assert!(!filter.is_attached());
    assert_eq!(
        pair.xdp().expect("the other program")["prog"]["name"],
        "other_tool_pass"
    );
    pair.gw
        .ip(&["link", "set", "dev", "g0", "xdpgeneric", "off"]);
    let (_filter, result) = reattach(filter);
    result.expect("the interface is free again");
    assert_eq!(pair.xdp().expect("ours")["prog"]["id"], id);
}

/// Not a test on its own: the child process of
/// `a_killed_process_leaves_no_program`, run with `--ignored` and `TG_XDP_HOLDER=NS`. It
/// attaches the filter to `g0` in namespace NS, says so on stdout and waits to be killed.
#[test]
#[ignore = "the child process of a_killed_process_leaves_no_program"]
fn holder_child() {
    let ns = std::env::var("TG_XDP_HOLDER").expect("TG_XDP_HOLDER names the namespace");
    Netns::enter_and(&ns, || {
        let filter = IngressFilter::attach(nix_ifindex("g0"), XdpMode::Native, GIP)
            .expect("attach in the child");
        println!("attached {}", filter.program_id());
        loop {
            std::thread::sleep(Duration::from_secs(60));
        }
    });
}

#[test]
fn a_killed_process_leaves_no_program() {
    let pair = Pair::new();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "holder_child", "--nocapture"])
        .env("TG_XDP_HOLDER", &pair.gw.name)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("child starts");
    // Kill the child whatever happens below.
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Kill(child);
    let mut line = String::new();
    let mut lines = std::io::BufReader::new(stdout);
    loop {
        line.clear();
        let n = std::io::BufRead::read_line(&mut lines, &mut line).expect("child output");
        assert!(n > 0, "the child ended before attaching");
        if line.starts_with("attached ") {
            break;
        }
    }
    let id: u64 = line["attached ".len()..].trim().parse().expect("an id");
    assert_eq!(pair.xdp().expect("attached by the child")["prog"]["id"], id);

    // SIGKILL: no destructor runs; the kernel closes the link's fd.
    child.0.kill().expect("SIGKILL");
    child.0.wait().expect("reaped");
    until(LIMIT, "no XDP program on g0 after kill -9", || {
        pair.xdp().is_none()
    });
}

#[test]
fn another_tools_program_is_refused_and_a_leftover_of_ours_replaced() {
    let pair = Pair::new();
    let dir = env!("CARGO_MANIFEST_DIR");
    let other = format!("{dir}/bpf/other_tool.bpf.o");
    for (how, mode) in [("xdp", XdpMode::Native), ("xdpgeneric", XdpMode::Generic)] {
        pair.gw
            .ip(&["link", "set", "dev", "g0", how, "obj", &other, "sec", "xdp"]);
        let foreign = pair.xdp().expect("the other tool's program")["prog"]["id"].clone();
        let e = pair.attach(mode).expect_err("another tool's program");
        let XdpError::ForeignProgram { name, id, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(name, "other_tool_pass");
        assert_eq!(foreign, *id);
        let text = e.to_string();
        assert!(
            text.contains("other_tool_pass") && text.contains(&format!("id {id}")),
            "{text}"
        );
        assert_eq!(
            pair.xdp().expect("left in place")["prog"]["id"],
            foreign,
            "untouched"
        );
        pair.gw.ip(&["link", "set", "dev", "g0", how, "off"]);
    }

    // Our own program, attached by netlink and left behind: replaced.
    let ours = format!("{dir}/bpf/ingress.bpf.o");
    pair.gw.ip(&[
        "link", "set", "dev", "g0", "xdp", "obj", &ours, "sec", "xdp",
    ]);
    let leftover = pair.xdp().expect("leftover")["prog"]["id"].clone();
    let filter = pair.attach(XdpMode::Native).expect("replaces the leftover");
    assert_ne!(leftover, filter.program_id());
    assert_eq!(pair.xdp().expect("ours")["prog"]["id"], filter.program_id());

    // Ours, but held by a live link (another tungate): refused.
    let e = pair.attach(XdpMode::Native).expect_err("in use");
    assert!(
        matches!(e, XdpError::InUse { id, .. } if id == filter.program_id()),
        "{e}"
    );
    assert_eq!(
        pair.xdp().expect("still ours")["prog"]["id"],
        filter.program_id()
    );
    drop(filter);
    until(LIMIT, "no XDP program on g0", || pair.xdp().is_none());
}

#[test]
fn native_on_a_driver_without_it_is_a_distinct_error() {
    let pair = Pair::new();
    // The namespace's loopback has no native XDP.
    let lo = ifindex(&pair.gw, "lo");
    let e = pair
        .gw
        .run(move || IngressFilter::attach(lo, XdpMode::Native, GIP))
        .expect_err("lo has no native XDP");
    assert!(
        matches!(e, XdpError::NativeUnsupported { ref interface } if interface == "lo"),
        "{e}"
    );
    let generic = pair
        .gw
        .run(move || IngressFilter::attach(lo, XdpMode::Generic, GIP))
        .expect("generic XDP works everywhere");
    assert_eq!(generic.interface(), "lo");
    drop(generic);

    let e = pair
        .gw
        .run(|| IngressFilter::attach(999_999, XdpMode::Generic, GIP))
        .expect_err("no such interface");
    assert!(matches!(e, XdpError::NoInterface(999_999)), "{e}");
}

/// Keeps only the systemd unit's capabilities (CAP_NET_ADMIN, CAP_NET_RAW, CAP_BPF) in the
/// calling thread's effective set (capabilities are per thread: only this thread changes).
fn keep_only_the_units_capabilities() {
    use caps::{CapSet, Capability};
    let permitted = caps::read(None, CapSet::Permitted).expect("capget");
    let unit: caps::CapsHashSet = [
        Capability::CAP_NET_ADMIN,
        Capability::CAP_NET_RAW,
        Capability::CAP_BPF,
    ]
    .into_iter()
    .filter(|c| permitted.contains(c))
    .collect();
    caps::set(None, CapSet::Effective, &unit).expect("capset");
}

#[test]
fn with_only_the_units_capabilities_it_attaches_and_refuses_a_program_it_cannot_name() {
    let pair = Pair::new();
    let g0 = pair.g0;
    let filter = pair
        .gw
        .run(move || {
            keep_only_the_units_capabilities();
            IngressFilter::attach(g0, XdpMode::Native, GIP)
        })
        .expect("CAP_NET_ADMIN, CAP_NET_RAW and CAP_BPF load and attach the program");
    assert_eq!(
        pair.xdp().expect("attached")["prog"]["id"],
        filter.program_id()
    );
    drop(filter);
    until(LIMIT, "no XDP program on g0", || pair.xdp().is_none());

    // Without CAP_SYS_ADMIN a found program's name cannot be read: left alone, refused.
    let other = format!("{}/bpf/other_tool.bpf.o", env!("CARGO_MANIFEST_DIR"));
    pair.gw.ip(&[
        "link", "set", "dev", "g0", "xdp", "obj", &other, "sec", "xdp",
    ]);
    let foreign = pair.xdp().expect("the other tool's program")["prog"]["id"].clone();
    let e = pair
        .gw
        .run(move || {
            keep_only_the_units_capabilities();
            IngressFilter::attach(g0, XdpMode::Native, GIP)
        })
        .expect_err("a program it cannot name");
    assert!(
        matches!(&e, XdpError::UnknownProgram { id, .. } if foreign == *id),
        "{e}"
    );
    assert_eq!(pair.xdp().expect("left in place")["prog"]["id"], foreign);
    pair.gw.ip(&["link", "set", "dev", "g0", "xdp", "off"]);
}

/// IPv6 packets, crafted: the program reads headers only, so checksums stay zero.
mod v6 {
    use super::*;

    /// Next header numbers.
    pub const HOP_BY_HOP: u8 = 0;
    pub const IPIP: u8 = 4;
    pub const UDP: u8 = 17;
    pub const IPV6: u8 = 41;
    pub const ROUTING: u8 = 43;
    pub const FRAGMENT: u8 = 44;
    pub const GRE: u8 = 47;
    pub const DEST_OPTIONS: u8 = 60;

    /// An IPv6 packet (hop limit 64) from `src` to `dst`: `chain` is the extension headers
    /// (each built by [`ext`] or [`fragment`]) in front of `payload`, whose protocol is `next`.
    pub fn packet(
        src: Ipv6Addr,
        dst: Ipv6Addr,
        chain: &[(u8, Vec<u8>)],
        next: u8,
        payload: &[u8],
    ) -> Vec<u8> {
        let mut body = Vec::new();
        let first = chain.first().map_or(next, |(kind, _)| *kind);
        for (i, (_, header)) in chain.iter().enumerate() {
            let mut header = header.clone();
            header[0] = chain.get(i + 1).map_or(next, |(kind, _)| *kind);
            body.extend(header);
        }
        body.extend(payload);
        let mut p = vec![0x60, 0, 0, 0];
        p.extend((body.len() as u16).to_be_bytes());
        p.extend([first, 64]);
        p.extend(src.octets());
        p.extend(dst.octets());
        p.extend(body);
        p
    }

    /// An options or routing extension header of `kind`, 8 bytes (its next header is filled
    /// in by [`packet`]); the destination options are those of a stock ip6tnl: the tunnel
    /// encapsulation limit 4 and a PadN.
    pub fn ext(kind: u8) -> (u8, Vec<u8>) {
        let header = match kind {
            ROUTING => vec![0, 0, 0, 0, 0, 0, 0, 0], // type 0, segments left 0
            _ => vec![0, 0, 0x04, 0x01, 0x04, 0x01, 0x01, 0x00],
        };
        (kind, header)
    }

    /// An options header of `kind` whose length field says `units` 8-byte units more.
    pub fn ext_long(kind: u8, units: u8) -> (u8, Vec<u8>) {
        let mut header = vec![0u8; 8 * (usize::from(units) + 1)];
        header[1] = units;
        header[2] = 0x01; // PadN over the rest
        header[3] = (header.len() - 4) as u8;
        (kind, header)
    }

    /// A Fragment header: `offset` in 8-byte units, more fragments or not.
    pub fn fragment(offset: u16, more: bool) -> (u8, Vec<u8>) {
        let field = (offset << 3) | u16::from(more);
        let mut header = vec![0, 0];
        header.extend(field.to_be_bytes());
        header.extend(7u32.to_be_bytes());
        (FRAGMENT, header)
    }

    /// The inner IPv6 reply: UDP from the VIP to the client, 32 bytes of payload.
    pub fn inner6() -> Vec<u8> {
        let mut udp = vec![0, 80, 0xc0, 0];
        udp.extend(40u16.to_be_bytes());
        udp.extend([0, 0]);
        udp.extend([0xab; 32]);
        packet(VIP6, CIP6, &[], UDP, &udp)
    }

    /// UDP `sport -> port` around `payload` (checksum 0: the program leaves it to user space).
    pub fn udp6(port: u16, payload: &[u8]) -> Vec<u8> {
        let mut u = TUNNEL_SPORT.to_be_bytes().to_vec();
        u.extend(port.to_be_bytes());
        u.extend(((8 + payload.len()) as u16).to_be_bytes());
        u.extend([0, 0]);
        u.extend(payload);
        u
    }

    /// A GUE header `header` and `inner` in UDP to `port`.
    pub fn gue(port: u16, header: [u8; 4], inner: &[u8]) -> Vec<u8> {
        udp6(port, &[&header[..], inner].concat())
    }

    /// A GRE header (version 0, `protocol`, with `key` if given) and `inner`.
    pub fn gre(protocol: u16, key: Option<u32>, inner: &[u8]) -> Vec<u8> {
        let mut g = vec![if key.is_some() { 0x20 } else { 0 }, 0];
        g.extend(protocol.to_be_bytes());
        if let Some(key) = key {
            g.extend(key.to_be_bytes());
        }
        g.extend(inner);
        g
    }

    const TUNNEL_SPORT: u16 = 49152;
}

/// Every IPv6 tunnel type (ip6ip6, 4in6, the same behind a stock ip6tnl's destination
/// options and a longer chain, GUE variants 0 and 1 and FOU over IPv6, ip6gre with IPv6 and
/// IPv4 inside) and 6in4 over IPv4 reaches a bound socket; the host's IPv6 UDP passes.
#[test]
fn each_ipv6_tunnel_type_is_redirected_to_the_socket() {
    use v6::*;
    let pair = Pair::new();
    let mut filter = pair.attach(XdpMode::Native).expect("attach");
    filter.set_gateway6(Some(GIP6)).expect("gateway6");
    let xsk = BareXsk::open(&pair.gw, "g0", 0);
    filter.bind_socket(0, xsk.as_fd()).expect("bind queue 0");
    let inner6 = inner6();
    let inner4 = udp(VIP, CIP, 64, 32);
    let mut redirected = 0;
    let mut expect = |filter: &IngressFilter, n: u64, what: &str| {
        redirected += n;
        until(LIMIT, what, || {
            filter.counters().expect("counters").redirected == redirected
        });
    };

    filter
        .set_peers(&[
            (IpAddr::V6(RIP6), Tunnel::Ipip),
            (IpAddr::V4(RIP), Tunnel::Ipip),
        ])
        .expect("ipip peers");
    pair.send6(&packet(RIP6, GIP6, &[], IPV6, &inner6));
    pair.send6(&packet(RIP6, GIP6, &[], IPIP, &inner4));
    pair.send6(&packet(RIP6, GIP6, &[ext(DEST_OPTIONS)], IPV6, &inner6));
    pair.send6(&packet(
        RIP6,
        GIP6,
        &[
            ext(HOP_BY_HOP),
            ext(DEST_OPTIONS),
            ext(ROUTING),
            ext(DEST_OPTIONS),
        ],
        IPIP,
        &inner4,
    ));
    pair.send(&outer(RIP, GIP, 41, &inner6)); // 6in4
    expect(&filter, 5, "ip6ip6, 4in6, with options, 6in4 redirected");

    filter
        .set_peers(&[(RIP6, Tunnel::Gue { port: 6080 })])
        .expect("gue peer");
    pair.send6(&packet(
        RIP6,
        GIP6,
        &[],
        UDP,
        &gue(6080, [0, IPV6, 0, 0], &inner6),
    ));
    pair.send6(&packet(
        RIP6,
        GIP6,
        &[ext(DEST_OPTIONS)],
        UDP,
        &gue(6080, [0, IPIP, 0, 0], &inner4),
    ));
    pair.send6(&packet(RIP6, GIP6, &[], UDP, &v6::udp6(6080, &inner6))); // variant 1
    expect(&filter, 3, "GUE over IPv6 redirected");
    filter
        .set_peers(&[(RIP6, Tunnel::Fou { port: 5555 })])
        .expect("fou peer");
    pair.send6(&packet(RIP6, GIP6, &[], UDP, &v6::udp6(5555, &inner6)));
    expect(&filter, 1, "FOU over IPv6 redirected");
    filter
        .set_peers(&[(RIP6, Tunnel::Gre { key: Some(9) })])
        .expect("gre peer");
    pair.send6(&packet(
        RIP6,
        GIP6,
        &[],
        GRE,
        &v6::gre(0x86dd, Some(9), &inner6),
    ));
    pair.send6(&packet(
        RIP6,
        GIP6,
        &[ext(DEST_OPTIONS)],
        GRE,
        &v6::gre(0x0800, Some(9), &inner4),
    ));
    expect(&filter, 2, "ip6gre redirected");

    let c = filter.counters().expect("counters");
    assert_eq!(c.total_dropped(), 0, "{c:?}");
    // The host's IPv6 UDP (another port; the tunnel port to another address): passed.
    let passed = c.passed;
    pair.send6(&packet(RIP6, GIP6, &[], UDP, &v6::udp6(53, &[1, 2, 3, 4])));
    pair.send6(&packet(RIP6, OTHER6, &[], UDP, &v6::udp6(6080, &inner6)));
    until(LIMIT, "the host's IPv6 UDP passed", || {
        filter.counters().expect("counters").passed >= passed + 2
    });
    assert_eq!(filter.counters().expect("counters").redirected, redirected);
    drop(filter);
    drop(xsk);
}

fn each_bad_ipv6_tunnel_packet_is_dropped_under_its_reason(mode: XdpMode) {
    use v6::*;
    let pair = Pair::new();
    let mut filter = pair.attach(mode).expect("attach");
    filter.set_gateway6(Some(GIP6)).expect("gateway6");
    filter
        .set_peers(&[(RIP6, Tunnel::Ipip), (OTHER6, Tunnel::Gue { port: 6080 })])
        .expect("peers");
    let inner6 = inner6();
    let stranger = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x50);
    let elsewhere = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 0x99);
    let ip6ip6 = |chain: &[(u8, Vec<u8>)]| packet(RIP6, GIP6, chain, IPV6, &inner6);

    // Not tunnel packets, the host's: passed (also a later UDP fragment, which has no port,
    // and a chain beyond the walk to another address).
    let passed = filter.counters().expect("counters").passed;
    pair.send6(&packet(RIP6, GIP6, &[fragment(8, false)], UDP, &[0; 16]));
    pair.send6(&packet(
        RIP6,
        elsewhere,
        &vec![ext(DEST_OPTIONS); 5],
        IPV6,
        &inner6,
    ));
    until(LIMIT, "the host's frames passed", || {
        filter.counters().expect("counters").passed >= passed + 2
    });

    // unknown_peer, wrong_gateway
    for _ in 0..3 {
        pair.send6(&packet(stranger, GIP6, &[], IPV6, &inner6));
    }
    pair.send6(&packet(RIP6, elsewhere, &[], IPV6, &inner6));
    pair.send6(&packet(
        RIP6,
        elsewhere,
        &[ext(DEST_OPTIONS)],
        GRE,
        &v6::gre(0x86dd, None, &inner6),
    ));
    // An atomic fragment (offset 0, no more fragments) holds the whole packet: not a
    // fragment (valid, no socket: rx_overflow).
    pair.send6(&ip6ip6(&[fragment(0, false)]));
    // outer_fragment: first and later fragments of a tunnel packet, and GUE's first.
    pair.send6(&ip6ip6(&[fragment(0, true)]));
    pair.send6(&ip6ip6(&[ext(DEST_OPTIONS), fragment(8, false)]));
    pair.send6(&packet(
        OTHER6,
        GIP6,
        &[fragment(0, true)],
        UDP,
        &gue(6080, [0, IPV6, 0, 0], &inner6),
    ));
    // An extension-header chain longer than the walk, hop-by-hop not first:
    // bad_extension_headers; a header past the packet's end: malformed_outer (as the
    // packet crate judges them).
    pair.send6(&ip6ip6(&vec![ext(DEST_OPTIONS); 5]));
    pair.send6(&ip6ip6(&[ext(DEST_OPTIONS), ext(HOP_BY_HOP)]));
    let mut past = packet(RIP6, GIP6, &[ext_long(DEST_OPTIONS, 1)], IPV6, &[]);
    past.truncate(past.len() - 8);
    past[4..6].copy_from_slice(&8u16.to_be_bytes());
    pair.send6(&past);
    // malformed_outer: payload length past the frame, payload length 0 (a jumbogram), a
    // frame too short for the fixed header.
    let mut long = ip6ip6(&[]);
    long[4..6].copy_from_slice(&((inner6.len() + 1) as u16).to_be_bytes());
    pair.send6(&long);
    let mut jumbo = ip6ip6(&[]);
    jumbo[4..6].copy_from_slice(&[0, 0]);
    pair.send6(&jumbo);
    pair.send6(&ip6ip6(&[])[..30]);
    // wrong_tunnel: GUE from the IPIP peer, ip6ip6 from the GUE peer, GUE to another port.
    pair.send6(&packet(
        RIP6,
        GIP6,
        &[],
        UDP,
        &gue(6080, [0, IPV6, 0, 0], &inner6),
    ));
    pair.send6(&packet(OTHER6, GIP6, &[ext(DEST_OPTIONS)], IPV6, &inner6));
    // Judged before the peers change (the veth peer's receive runs after the send returns).
    counters_after(&filter, 17);
    filter
        .set_peers(&[
            (RIP6, Tunnel::Ipip),
            (OTHER6, Tunnel::Gue { port: 6080 }),
            (stranger, Tunnel::Fou { port: 5555 }),
        ])
        .expect("peers with a FOU port");
    pair.send6(&packet(OTHER6, GIP6, &[], UDP, &v6::udp6(5555, &inner6)));
    // bad_udp_length (the length counts from the UDP header, not the extension headers),
    // bad_gue.
    let gue_frame = gue(6080, [0, IPV6, 0, 0], &inner6);
    let mut short = gue_frame.clone();
    short[4..6].copy_from_slice(&((gue_frame.len() + 8) as u16).to_be_bytes());
    pair.send6(&packet(OTHER6, GIP6, &[ext(DEST_OPTIONS)], UDP, &short));
    pair.send6(&packet(
        OTHER6,
        GIP6,
        &[],
        UDP,
        &gue(6080, [0, GRE, 0, 0], &inner6),
    ));
    // Valid, but no socket on the queue.
    pair.send6(&ip6ip6(&[ext(DEST_OPTIONS)]));
    pair.send6(&packet(OTHER6, GIP6, &[ext(DEST_OPTIONS)], UDP, &gue_frame));

    let c = counters_after(&filter, 22);
    assert_eq!(
        drops(&c),
        [
            ("malformed_outer", 4),
            ("outer_fragment", 3),
            ("wrong_gateway", 2),
            ("unknown_peer", 3),
            ("rx_overflow", 3),
            ("wrong_tunnel", 3),
            ("bad_udp_length", 1),
            ("bad_gue", 1),
            ("bad_extension_headers", 2),
        ]
    );
    assert_eq!(c.redirected, 0);

    // Without an IPv6 gateway address every IPv6 tunnel packet is wrong_gateway.
    filter.set_gateway6(None).expect("no gateway6");
    pair.send6(&ip6ip6(&[]));
    let c = counters_after(&filter, 23);
    assert_eq!(c.dropped(DropReason::WrongGateway), 3);
}

#[test]
fn each_bad_ipv6_tunnel_packet_is_dropped_under_its_reason_native() {
    each_bad_ipv6_tunnel_packet_is_dropped_under_its_reason(XdpMode::Native);
}

#[test]
fn each_bad_ipv6_tunnel_packet_is_dropped_under_its_reason_generic() {
    each_bad_ipv6_tunnel_packet_is_dropped_under_its_reason(XdpMode::Generic);
}

/// ip6gre from a keyed GRE peer over IPv6: the GRE checks, under their reasons.
#[test]
fn bad_ip6gre_packets_are_dropped_under_their_reasons() {
    use v6::*;
    let pair = Pair::new();
    let mut filter = pair.attach(XdpMode::Native).expect("attach");
    filter.set_gateway6(Some(GIP6)).expect("gateway6");
    filter
        .set_peers(&[(RIP6, Tunnel::Gre { key: Some(7) })])
        .expect("peers");
    let inner6 = inner6();
    let gre6 = |g: Vec<u8>| packet(RIP6, GIP6, &[], GRE, &g);
    pair.send6(&gre6(v6::gre(0x86dd, None, &inner6))); // wrong_gre_key: none
    pair.send6(&gre6(v6::gre(0x86dd, Some(8), &inner6))); // wrong_gre_key: another
    pair.send6(&gre6(v6::gre(0x6558, Some(7), &inner6))); // bad_gre: Ethernet inside
    let mut routing = v6::gre(0x86dd, Some(7), &inner6);
    routing[0] |= 0x40;
    pair.send6(&gre6(routing)); // bad_gre: routing
    pair.send6(&packet(RIP6, GIP6, &[], IPV6, &inner6)); // wrong_tunnel
    pair.send6(&gre6(v6::gre(0x86dd, Some(7), &inner6))); // valid: rx_overflow
    let c = counters_after(&filter, 6);
    assert_eq!(
        drops(&c),
        [
            ("rx_overflow", 1),
            ("wrong_tunnel", 1),
            ("bad_gre", 2),
            ("wrong_gre_key", 2),
        ]
    );
}
