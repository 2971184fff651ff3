//! IPv6 in `userspace` decap with the real binary in namespaces `rs` — `gw` — `client` (needs
//! root), on both I/O paths: an inner IPv6 reply is forwarded byte for
//! byte with its hop limit one lower over ip6ip6 (bare, and behind the Destination Options
//! header a stock ip6tnl inserts), 6in4, GUE over IPv6 and ip6gre, and an inner IPv4 one over
//! 4in6; the IPv6 forms of the hostile cases are dropped, counted under their reason and never
//! delivered; a too-big inner IPv6 packet is answered with ICMPv6 Packet Too Big to the VIP
//! (on the wire, rate-limited like fragmentation-needed) and never reaches the client; an
//! IPv4-only gateway forwards 6in4 and counts outer IPv6 as `wrong_gateway`.

use std::net::Ipv6Addr;
use std::time::Duration;

use etherparse::{IpNumber, Ipv4Header, Ipv6Header, PacketBuilder};
use tungate_test_support::http::Api;
use tungate_test_support::packets::{self, ethernet, udp, with_ttl_decremented};
use tungate_test_support::process::binary;
use tungate_test_support::topology::{
    CIP, GIP, GW_CLIENT_MAC, GW_RS_MAC, IoPath, RIP, RS_MAC, VIP, veth,
};
use tungate_test_support::{FrameSocket, Netns, Topology, Tungate, wait};

use crate::forwarding::{assert_exactly_these_drops, total_drops};

const QUIET: Duration = Duration::from_millis(400);
const GIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
const GUE_RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 3);
const GRE_RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 4);
const GW_CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7);
const VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x10);
const OTHER_VIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xf, 0, 0, 0, 0, 0x11);
const GUE_PORT: u16 = 6080;
const DEST_OPTS: u8 = 60;
/// ETH_P_ALL: every frame, IPv4 and IPv6.
const ALL: u16 = 3;

/// The standard topology with IPv6 beside IPv4: GIP6 on `g0`, RIP6 on `r0`, GW_CLIENT6 on
/// `g1`, CIP6 on `c0` (no duplicate address detection, so they are usable at once).
fn topology(io: IoPath) -> Topology {
    let t = Topology::on(io);
    let add = |ns: &Netns, address: Ipv6Addr, dev: &str| {
        ns.ip(&["addr", "add", &format!("{address}/64"), "dev", dev, "nodad"]);
    };
    add(&t.gw, GIP6, "g0");
    add(&t.rs, RIP6, "r0");
    add(&t.gw, GW_CLIENT6, "g1");
    add(&t.client, CIP6, "c0");
    link_locals_ready(&t.gw);
    t
}

/// Waits until no address of `ns` is tentative: the kernel sends no neighbour solicitation
/// while an interface's link-local address is still in duplicate address detection.
fn link_locals_ready(ns: &Netns) {
    wait::until(
        Duration::from_secs(10),
        "link-local addresses usable",
        || {
            ns.ip(&["-6", "addr", "show", "tentative"])
                .trim()
                .is_empty()
        },
    );
}

/// `rs1` (RIP: IPIP and 6in4) and `rs6` (RIP6: ip6ip6 and 4in6) serve VIP and VIP6; `gue6`
/// (GUE over IPv6 to 6080) and `gre6` (ip6gre) serve VIP6; `other6` serves OTHER_VIP6.
fn config(io: IoPath) -> String {
    let io = io.name();
    format!(
        "[gateway]\naddress = \"{GIP}\"\naddress6 = \"{GIP6}\"\nio = \"{io}\"\n\
         [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [\"{VIP}\", \"{VIP6}\"]\n\
         [[peers]]\nname = \"rs6\"\naddress = \"{RIP6}\"\nvips = [\"{VIP6}\", \"{VIP}\"]\n\
         [[peers]]\nname = \"gue6\"\naddress = \"{GUE_RIP6}\"\ntunnel = \"gue\"\nvips = [\"{VIP6}\"]\n\
         [[peers]]\nname = \"gre6\"\naddress = \"{GRE_RIP6}\"\ntunnel = \"gre\"\nvips = [\"{VIP6}\"]\n\
         [[peers]]\nname = \"other6\"\naddress = \"2001:db8:1::5\"\nvips = [\"{OTHER_VIP6}\"]\n\
         [[vips]]\naddress = \"{VIP}\"\nshared = true\n\
         [[vips]]\naddress = \"{VIP6}\"\nshared = true\n"
    )
}

/// An inner IPv6 UDP reply `src` -> CIP6 with `len` payload bytes (built by etherparse).
fn reply6(src: Ipv6Addr, hop: u8, len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 7) as u8).collect();
    let mut out = Vec::new();
    PacketBuilder::ipv6(src.octets(), CIP6.octets(), hop)
        .udp(80, 40000)
        .write(&mut out, &payload)
        .unwrap();
    out
}

/// An IPv6 packet `src` -> `dst`, first next header `next`, extension bytes `ext`, `data`.
fn ip6(src: Ipv6Addr, dst: Ipv6Addr, hop: u8, next: u8, ext: &[u8], data: &[u8]) -> Vec<u8> {
    let h = Ipv6Header {
        traffic_class: 0,
        flow_label: Default::default(),
        payload_length: (ext.len() + data.len()) as u16,
        next_header: IpNumber(next),
        hop_limit: hop,
        source: src.octets(),
        destination: dst.octets(),
    };
    [&h.to_bytes()[..], ext, data].concat()
}

/// An outer IPv6 packet `src` -> GIP6 in an Ethernet frame from the RS.
fn from_rs6(src: Ipv6Addr, next: u8, ext: &[u8], payload: &[u8]) -> Vec<u8> {
    to_gw6(&ip6(src, GIP6, 64, next, ext, payload))
}

/// `ip` (an IPv6 packet) in an Ethernet frame from the RS to the gateway.
fn to_gw6(ip: &[u8]) -> Vec<u8> {
    let mut f = ethernet(GW_RS_MAC, RS_MAC, ip);
    f[12..14].copy_from_slice(&[0x86, 0xdd]);
    f
}

/// An outer IPv4 packet RIP -> GIP carrying `protocol` in an Ethernet frame from the RS.
fn from_rs4(protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut h = Ipv4Header::new(
        payload.len() as u16,
        64,
        IpNumber(protocol),
        RIP.octets(),
        GIP.octets(),
    )
    .unwrap();
    h.header_checksum = h.calc_header_checksum();
    ethernet(GW_RS_MAC, RS_MAC, &[&h.to_bytes()[..], payload].concat())
}

/// The Destination Options header of a stock ip6tnl: tunnel encapsulation limit 4, PadN.
fn ip6tnl_limit(next: u8) -> [u8; 8] {
    [next, 0, 4, 1, 4, 1, 1, 0]
}

/// An 8-byte extension header (the fourth byte is a routing header's segments left).
fn ext8(next: u8, fourth: u8) -> [u8; 8] {
    [next, 0, 0, fourth, 0, 0, 0, 0]
}

/// A GUE (variant 0, protocol 41) datagram over IPv6 from `src` to GIP6, checksummed.
fn gue6(src: Ipv6Addr, port: u16, inner: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    PacketBuilder::ipv6(src.octets(), GIP6.octets(), 64)
        .udp(40123, port)
        .write(&mut out, &[&[0, 41, 0, 0][..], inner].concat())
        .unwrap();
    to_gw6(&out)
}

/// GRE version 0 with `protocol`, no flags, then `inner`.
fn gre0(protocol: u16, inner: &[u8]) -> Vec<u8> {
    [&[0, 0][..], &protocol.to_be_bytes(), inner].concat()
}

/// A frame the gateway sent to the client: IPv6 UDP to CIP6, or IPv4 to CIP.
fn to_client(frame: &[u8]) -> bool {
    frame.len() >= 54
        && frame[6..12] == GW_CLIENT_MAC
        && match frame[12..14] {
            [0x86, 0xdd] => frame[14 + 6] == 17 && frame[14 + 24..14 + 40] == CIP6.octets(),
            [0x08, 0x00] => frame[30..34] == CIP.octets(),
            _ => false,
        }
}

/// `packet` as it leaves: IPv6 with its hop limit one lower, IPv4 with its TTL.
fn forwarded(packet: &[u8]) -> Vec<u8> {
    if packet[0] >> 4 == 6 {
        let mut p = packet.to_vec();
        p[7] -= 1;
        p
    } else {
        with_ttl_decremented(packet)
    }
}

fn each_ipv6_tunnel_is_forwarded_byte_for_byte(io: IoPath) {
    let t = topology(io);
    let mut tg = Tungate::start(&t.gw, &config(io));
    let rs = FrameSocket::open_protocol(&t.rs, "r0", ALL);
    let client = FrameSocket::open_protocol(&t.client, "c0", ALL);
    let mut sent = Vec::new();
    // Twice: unresolved next hops first (the raw fallback), then the fast path.
    for _round in 0..2 {
        for len in [64usize, 1300] {
            let a = reply6(VIP6, 64, len);
            rs.send(&from_rs6(RIP6, 41, &[], &a));
            let b = reply6(VIP6, 64, len + 1);
            rs.send(&from_rs6(RIP6, DEST_OPTS, &ip6tnl_limit(41), &b));
            let c = udp(VIP, CIP, 64, len);
            rs.send(&from_rs6(RIP6, DEST_OPTS, &ip6tnl_limit(4), &c));
            let d = reply6(VIP6, 64, len + 2);
            rs.send(&from_rs4(41, &d));
            let e = reply6(VIP6, 64, len + 3);
            rs.send(&gue6(GUE_RIP6, GUE_PORT, &e));
            let f = reply6(VIP6, 64, len + 4);
            rs.send(&from_rs6(GRE_RIP6, 47, &[], &gre0(0x86dd, &f)));
            sent.extend([a, b, c, d, e, f]);
        }
    }
    let got = client.receive_for(QUIET, to_client);
    // The IPv4 and IPv6 neighbours resolve apart, so the order across families may differ.
    let mut got: Vec<Vec<u8>> = got.iter().map(|f| f[14..].to_vec()).collect();
    let mut want: Vec<Vec<u8>> = sent.iter().map(|p| forwarded(p)).collect();
    got.sort();
    want.sort();
    let c = tg.counters();
    assert_eq!(
        got.len(),
        want.len(),
        "the client got {} packets; missing {:?}; counters {c}",
        got.len(),
        want.iter()
            .filter(|p| !got.contains(p))
            .map(|p| hex::encode(&p[..p.len().min(48)]))
            .collect::<Vec<_>>()
    );
    assert!(
        got == want,
        "every packet arrives as sent, hop limit or TTL one lower"
    );
    let c = tg.counters();
    assert_eq!(total_drops(&c), 0, "{c}");
    let vip6 = c["vips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vip"] == VIP6.to_string())
        .cloned()
        .unwrap_or_default();
    assert_eq!(vip6["packets"], 20, "the IPv6 VIP by its text in {c}");
    assert_eq!(tg.stop().0, 0);
}

/// A real server's stack sends IPv6 with checksum offload: its TCP and UDP checksums are
/// left partial (`CHECKSUM_PARTIAL`, which an ip6tnl device and a veth keep as they are).
/// The replies reach the client's sockets with complete checksums on both paths (TPACKET
/// reads the offload state, AF_XDP recognises the partial checksum and finishes it), over
/// bare ip6ip6 and behind ip6tnl's Destination Options header; a complete but wrong checksum
/// is forwarded as it is and the client's stack counts it (the control).
fn ipv6_replies_sent_with_checksum_offload_reach_the_clients_sockets(io: IoPath) {
    let t = topology(io);
    let mut tg = Tungate::start(&t.gw, &config(io));
    let rs = FrameSocket::open_protocol(&t.rs, "r0", ALL).with_offload_header();
    let socket = t.client.run(|| {
        let s = std::net::UdpSocket::bind((CIP6, 40000)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    });
    let errors = || {
        (
            snmp6(&t.client, "Udp6InCsumErrors"),
            tcp_csum_errors(&t.client),
        )
    };
    let before = errors();
    // (inner packet, partial?, behind ip6tnl's options?); Ethernet + outer IPv6 = 54 bytes.
    let send = |inner: &[u8], partial: bool, options: bool| {
        let mut inner = inner.to_vec();
        let outer_len = 54 + if options { 8 } else { 0 };
        let vnet = if partial {
            let (start, offset) = packets::make_checksum_partial6(&mut inner);
            packets::vnet_needs_csum(outer_len + start, offset)
        } else {
            [0; 10]
        };
        let frame = if options {
            from_rs6(RIP6, DEST_OPTS, &ip6tnl_limit(41), &inner)
        } else {
            from_rs6(RIP6, 41, &[], &inner)
        };
        rs.send(&[&vnet[..], &frame].concat());
    };
    let sizes = [1, 200, 1300];
    // Twice: the first round leaves by the raw fallback, the second by the fast path.
    let mut got = Vec::new();
    for round in 0..2 {
        for len in sizes {
            send(&reply6(VIP6, 64, len), true, round == 1);
            send(&tcp6(len), true, round == 0);
        }
        let mut buf = [0u8; 2000];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push(n);
        }
    }
    assert_eq!(
        got,
        [sizes, sizes].concat(),
        "every partial-checksum UDP reply reaches the socket"
    );
    assert_eq!(
        errors(),
        before,
        "no reply reached the client with a bad checksum"
    );
    // The control: a complete checksum made wrong after the fact stays wrong.
    let mut bad_udp = reply6(VIP6, 64, 100);
    bad_udp[48 + 5] ^= 0x55;
    let mut bad_tcp = tcp6(100);
    bad_tcp[60 + 5] ^= 0x55;
    send(&bad_udp, false, false);
    send(&bad_tcp, false, false);
    let mut buf = [0u8; 2000];
    assert!(
        socket.recv(&mut buf).is_err(),
        "a datagram with a bad checksum is not delivered"
    );
    assert_eq!(errors(), (before.0 + 1, before.1 + 1));
    let c = tg.counters();
    assert_eq!(total_drops(&c), 0, "{c}");
    assert_eq!(tg.stop().0, 0);
}

/// An inner IPv6 TCP segment VIP6:443 -> CIP6:40001 with `len` payload bytes.
fn tcp6(len: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..len).map(|i| (i * 3) as u8).collect();
    let mut out = Vec::new();
    PacketBuilder::ipv6(VIP6.octets(), CIP6.octets(), 64)
        .tcp(443, 40001, 1000, 65535)
        .ack(77)
        .write(&mut out, &payload)
        .unwrap();
    out
}

/// A counter of `/proc/net/snmp6` in `ns` (`Udp6InCsumErrors`, …).
fn snmp6(ns: &Netns, name: &'static str) -> u64 {
    ns.run(move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp6").unwrap();
        text.lines()
            .find_map(|l| {
                let mut words = l.split_whitespace();
                (words.next() == Some(name)).then(|| words.next().unwrap().parse().unwrap())
            })
            .unwrap()
    })
}

/// TCP's `InCsumErrors` in `ns` (the TCP MIB counts both families).
fn tcp_csum_errors(ns: &Netns) -> u64 {
    ns.run(|| {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
        let mut lines = text.lines().filter(|l| l.starts_with("Tcp:"));
        let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
        let at = names
            .split_whitespace()
            .position(|n| n == "InCsumErrors")
            .unwrap();
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    })
}

fn every_hostile_ipv6_case_is_dropped_and_counted(io: IoPath) {
    let t = topology(io);
    let mut tg = Tungate::start(&t.gw, &config(io));
    let rs = FrameSocket::open_protocol(&t.rs, "r0", ALL);
    let client = FrameSocket::open_protocol(&t.client, "c0", ALL);
    let good = reply6(VIP6, 64, 100);
    let other_gw = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 9);
    let five: Vec<u8> = [
        ext8(DEST_OPTS, 0),
        ext8(DEST_OPTS, 0),
        ext8(DEST_OPTS, 0),
        ext8(DEST_OPTS, 0),
        ext8(41, 0),
    ]
    .concat();
    let inner_ext = |next, ext: &[u8], src, hop| ip6(src, CIP6, hop, next, ext, &[0; 8]);
    let mut short = good.clone();
    short[5] -= 1;
    let mut bad_sum = gue6(GUE_RIP6, GUE_PORT, &good);
    bad_sum[14 + 40 + 8 + 4 + 50] ^= 1;
    let udp_to_ipip_peer = gue6(RIP6, GUE_PORT, &good);
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "another gateway address",
            to_gw6(&ip6(RIP6, other_gw, 64, 41, &[], &good)),
            "wrong_gateway",
        ),
        (
            "unknown peer",
            from_rs6(
                Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 0x99),
                41,
                &[],
                &good,
            ),
            "unknown_peer",
        ),
        (
            "five outer extension headers",
            from_rs6(RIP6, DEST_OPTS, &five, &good),
            "bad_extension_headers",
        ),
        (
            "outer routing header with segments left",
            from_rs6(RIP6, 43, &ext8(41, 1), &good),
            "routing_header",
        ),
        (
            "outer fragment",
            from_rs6(RIP6, 44, &[41, 0, 0, 1, 0, 0, 0, 7], &good),
            "outer_fragment",
        ),
        ("udp from an ip6ip6 peer", udp_to_ipip_peer, "wrong_tunnel"),
        ("udp checksum", bad_sum, "bad_udp_checksum"),
        (
            "ip6gre with another protocol",
            from_rs6(GRE_RIP6, 47, &[], &gre0(0x8847, &good)),
            "bad_gre",
        ),
        (
            "ip6ip6 carrying ipv4",
            from_rs6(RIP6, 41, &[], &udp(VIP, CIP, 64, 20)),
            "malformed_inner",
        ),
        (
            "inner payload length short",
            from_rs6(RIP6, 41, &[], &short),
            "malformed_inner",
        ),
        (
            "nested ip6ip6",
            from_rs6(RIP6, 41, &[], &inner_ext(41, &[], VIP6, 64)),
            "nested_tunnel",
        ),
        (
            "nested gre behind destination options",
            from_rs6(RIP6, 41, &[], &inner_ext(DEST_OPTS, &ext8(47, 0), VIP6, 64)),
            "nested_tunnel",
        ),
        (
            "vip of another peer",
            from_rs6(RIP6, 41, &[], &reply6(OTHER_VIP6, 64, 10)),
            "vip_not_served",
        ),
        (
            "source not a vip",
            from_rs6(RIP6, 41, &[], &reply6(CIP6, 64, 10)),
            "vip_not_served",
        ),
        (
            "inner routing header with segments left",
            from_rs6(RIP6, 41, &[], &inner_ext(43, &ext8(17, 1), VIP6, 64)),
            "routing_header",
        ),
        (
            "five inner extension headers",
            from_rs6(RIP6, 41, &[], &inner_ext(DEST_OPTS, &five, VIP6, 64)),
            "bad_extension_headers",
        ),
        (
            "hop limit 1",
            from_rs6(RIP6, 41, &[], &reply6(VIP6, 1, 10)),
            "ttl_expired",
        ),
        (
            "6in4, hop limit 1",
            from_rs4(41, &reply6(VIP6, 1, 10)),
            "ttl_expired",
        ),
    ];
    let mut expected = std::collections::BTreeMap::new();
    for (_, frame, reason) in &cases {
        rs.send(frame);
        *expected.entry(*reason).or_insert(0u64) += 1;
    }
    rs.send(&from_rs6(RIP6, 41, &[], &good));
    let got = client.receive_for(QUIET, to_client);
    assert_eq!(got.len(), 1, "only the good packet is delivered");
    assert_eq!(&got[0][14..], &forwarded(&good)[..]);
    let c = tg.counters();
    assert_exactly_these_drops(&c, &expected);
    assert_eq!(tg.stop().0, 0);
}

/// LD-IN holds VIP6 (the gateway routes it there), the client side's MTU is 1280: a too-big
/// inner IPv6 packet is dropped as `too_big` and answered with Packet Too Big to the VIP —
/// MTU 1280, the packet quoted up to 1280 bytes in all, a valid checksum — and a burst only
/// up to the per-VIP budget.
fn too_big_ipv6_replies_get_rate_limited_packet_too_big_to_the_vip(io: IoPath) {
    const PER_VIP_BURST: u64 = 10;
    let t = topology(io);
    let ldin = Netns::new("ld");
    veth(
        &t.gw,
        "g2",
        "02:00:00:00:03:01",
        &ldin,
        "l0",
        "02:00:00:00:03:02",
    );
    let gw_ldin = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 1);
    let ldin_ip = Ipv6Addr::new(0x2001, 0xdb8, 3, 0, 0, 0, 0, 2);
    t.gw.ip(&[
        "addr",
        "add",
        &format!("{gw_ldin}/64"),
        "dev",
        "g2",
        "nodad",
    ]);
    ldin.ip(&[
        "addr",
        "add",
        &format!("{ldin_ip}/64"),
        "dev",
        "l0",
        "nodad",
    ]);
    ldin.ip(&["addr", "add", &format!("{VIP6}/128"), "dev", "l0", "nodad"]);
    t.gw.ip(&[
        "-6",
        "route",
        "add",
        &format!("{VIP6}/128"),
        "via",
        &ldin_ip.to_string(),
    ]);
    t.gw.ip(&["link", "set", "g1", "mtu", "1280"]);
    t.client.ip(&["link", "set", "c0", "mtu", "1280"]);
    link_locals_ready(&t.gw);

    let mut tg = Tungate::start(&t.gw, &config(io));
    let rs = FrameSocket::open_protocol(&t.rs, "r0", ALL);
    let client = FrameSocket::open_protocol(&t.client, "c0", ALL);
    let at_ldin = FrameSocket::open_protocol(&ldin, "l0", ALL);
    let fits = reply6(VIP6, 64, 1000);
    // Resolve the client's neighbour first: the fast path checks the MTU.
    rs.send(&from_rs6(RIP6, 41, &[], &fits));
    assert_eq!(client.receive_for(QUIET, to_client).len(), 1);
    let is_ptb =
        |f: &[u8]| f.len() > 62 && f[12..14] == [0x86, 0xdd] && f[14 + 6] == 58 && f[54] == 2;

    let big = reply6(VIP6, 64, 1400);
    rs.send(&from_rs6(RIP6, 41, &[], &big));
    rs.send(&from_rs6(RIP6, 41, &[], &fits));
    let got = client.receive_for(QUIET, to_client);
    assert_eq!(got.len(), 1, "only the packet that fits arrives");
    let messages = at_ldin.receive_for(QUIET, is_ptb);
    assert_eq!(messages.len(), 1, "one Packet Too Big: {}", messages.len());
    let m = &messages[0][14..];
    assert_eq!(&m[8..24], &gw_ldin.octets(), "from the gateway");
    assert_eq!(&m[24..40], &VIP6.octets(), "to the VIP");
    assert_eq!(m.len(), 1280, "quotes as much as fits in 1280 bytes");
    let icmp = &m[40..];
    assert_eq!((icmp[0], icmp[1]), (2, 0));
    assert_eq!(
        u32::from_be_bytes([icmp[4], icmp[5], icmp[6], icmp[7]]),
        1280
    );
    let quote = &icmp[8..];
    assert!(
        quote == &big[..quote.len()] || quote == &forwarded(&big)[..quote.len()],
        "the quote is the packet"
    );
    // The checksum over the RFC 8200 pseudo-header (etherparse computes it independently).
    let header = etherparse::Ipv6HeaderSlice::from_slice(m)
        .unwrap()
        .to_header();
    let sliced = etherparse::Icmpv6Slice::from_slice(icmp).unwrap();
    let computed = sliced
        .header()
        .icmp_type
        .calc_checksum(header.source, header.destination, sliced.payload())
        .unwrap();
    assert_eq!(computed, sliced.checksum(), "ICMPv6 checksum");

    const BURST: u64 = 60;
    for _ in 0..BURST {
        rs.send(&from_rs6(RIP6, 41, &[], &big));
    }
    let answered = at_ldin.receive_for(QUIET, is_ptb).len() as u64;
    let c = tg.counters();
    assert!(
        answered >= PER_VIP_BURST - 1,
        "the budget left is used ({answered})"
    );
    assert!(answered <= PER_VIP_BURST + 5, "rate-limited ({answered})");
    assert_eq!(c["icmp_sent"], 1 + answered, "{c}");
    assert_eq!(c["icmp_rate_limited"], BURST - answered, "{c}");
    assert_eq!(c["icmp_failed"], 0, "{c}");
    assert_eq!(c["drops"]["too_big"], 1 + BURST, "{c}");
    assert_eq!(client.receive_for(QUIET, to_client).len(), 0);
    assert_eq!(
        rs.receive_for(QUIET, is_ptb).len(),
        0,
        "no Packet Too Big toward the real server"
    );
    assert_eq!(tg.stop().0, 0);
}

fn an_ipv4_only_gateway_counts_outer_ipv6_as_wrong_gateway(io: IoPath) {
    let t = topology(io);
    // Only rs1 (IPv4), serving VIP6 over 6in4; no address6.
    let io = io.name();
    let ipv4_only = format!(
        "[gateway]\naddress = \"{GIP}\"\nio = \"{io}\"\n\
         [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [\"{VIP6}\"]\n"
    );
    let mut tg = Tungate::start(&t.gw, &ipv4_only);
    let rs = FrameSocket::open_protocol(&t.rs, "r0", ALL);
    let client = FrameSocket::open_protocol(&t.client, "c0", ALL);
    let good = reply6(VIP6, 64, 100);
    rs.send(&from_rs6(RIP6, 41, &[], &good));
    rs.send(&from_rs4(41, &good));
    let got = client.receive_for(QUIET, to_client);
    let c = tg.counters();
    assert_eq!(got.len(), 1, "6in4 only: {c}");
    assert_eq!(&got[0][14..], &forwarded(&good)[..]);
    // As an IPIP frame to another address: seen and counted, never forwarded.
    let expected = std::collections::BTreeMap::from([("wrong_gateway", 1)]);
    assert_exactly_these_drops(&c, &expected);
    assert_eq!(tg.stop().0, 0);
}

/// Issue 16 Part 2 item 6: `/api/v1/status` names both GIPs (`gateway_address6` beside
/// the IPv4 one), `/api/v1/stats`, the `/metrics` labels and `tungate status` show the IPv6
/// VIP and peers by their text; a gateway with only `address6` reports it once. The API is
/// one for both I/O paths: the packet path only.
#[test]
fn the_api_metrics_and_tungate_status_show_ipv6_gips_vips_and_peers() {
    let t = topology(IoPath::Packet);
    let mut tg = Tungate::start(&t.gw, &config(IoPath::Packet));
    let rs = FrameSocket::open_protocol(&t.rs, "r0", ALL);
    let client = FrameSocket::open_protocol(&t.client, "c0", ALL);
    let good = reply6(VIP6, 64, 100);
    rs.send(&from_rs6(RIP6, 41, &[], &good));
    // From rs6, a reply from a VIP it does not serve: dropped, counted per peer and VIP.
    rs.send(&from_rs6(RIP6, 41, &[], &reply6(OTHER_VIP6, 64, 100)));
    assert_eq!(client.receive_for(QUIET, to_client).len(), 1);
    let c = tg.counters();
    assert_exactly_these_drops(
        &c,
        &std::collections::BTreeMap::from([("vip_not_served", 1)]),
    );

    let api = Api::new(&t.gw, "127.0.0.1:9080", Some(tg.token()));
    let status = api.get("/api/v1/status").json();
    assert_eq!(status["gateway_address"], GIP.to_string(), "{status}");
    assert_eq!(status["gateway_address6"], GIP6.to_string(), "{status}");
    assert_eq!(status["vips"], 3, "VIP, VIP6, OTHER_VIP6: {status}");

    let stats = api.get("/api/v1/stats").json();
    let vip6 = stats["vips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["address"] == VIP6.to_string())
        .unwrap_or_else(|| panic!("VIP6 by its text in {stats}"));
    assert_eq!(vip6["forwarded_packets"], 1, "{stats}");
    let rs6 = stats["peers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "rs6")
        .unwrap_or_else(|| panic!("rs6 in {stats}"));
    assert_eq!(rs6["address"], RIP6.to_string(), "{stats}");
    assert_eq!(rs6["received_packets"], 2, "{stats}");
    assert_eq!(rs6["dropped"]["vip_not_served"], 1, "{stats}");

    let metrics = api.get("/metrics").text();
    for series in [
        format!("tungate_vip_forwarded_packets_total{{vip=\"{VIP6}\"}} 1"),
        "tungate_peer_received_packets_total{peer=\"rs6\"} 2".to_owned(),
    ] {
        assert!(metrics.contains(&series), "{series} in {metrics}");
    }

    let url = "http://127.0.0.1:9080";
    let out = t.gw.command(&binary(), &["status", "--url", url]);
    let text = &out.stdout;
    assert!(
        text.contains(&format!(" · gateway {GIP} + {GIP6} · ")),
        "both GIPs: {text}"
    );
    let row = |start: String| {
        text.lines()
            .find(|l| l.starts_with(&start))
            .map(str::to_owned)
    };
    let vip_row = row(format!("{VIP6} ")).unwrap_or_else(|| panic!("VIP6 row: {text}"));
    assert_eq!(
        vip_row.split_whitespace().take(3).collect::<Vec<_>>(),
        [VIP6.to_string().as_str(), "rs1", "1"],
        "the first peer that lists it; 1 forwarded: {text}"
    );
    let peer_row = row("rs6 ".into()).unwrap_or_else(|| panic!("rs6 row: {text}"));
    assert_eq!(
        peer_row.split_whitespace().take(3).collect::<Vec<_>>(),
        ["rs6", RIP6.to_string().as_str(), "ipip"],
        "{text}"
    );

    // Only an IPv6 GIP: shown once, in both fields.
    tg.reload(&format!(
        "[gateway]\naddress6 = \"{GIP6}\"\nio = \"packet\"\n\
         [[peers]]\nname = \"rs6\"\naddress = \"{RIP6}\"\nvips = [\"{VIP6}\"]\n"
    ));
    let status = api.get("/api/v1/status").json();
    assert_eq!(status["gateway_address"], GIP6.to_string(), "{status}");
    assert_eq!(status["gateway_address6"], GIP6.to_string(), "{status}");
    let text = t.gw.command(&binary(), &["status", "--url", url]).stdout;
    assert!(
        text.contains(&format!(" · gateway {GIP6} · 1 peer · ")),
        "one GIP: {text}"
    );
    assert_eq!(tg.stop().0, 0);
}

crate::on_both_io_paths!(
    each_ipv6_tunnel_is_forwarded_byte_for_byte,
    ipv6_replies_sent_with_checksum_offload_reach_the_clients_sockets,
    every_hostile_ipv6_case_is_dropped_and_counted,
    too_big_ipv6_replies_get_rate_limited_packet_too_big_to_the_vip,
    an_ipv4_only_gateway_counts_outer_ipv6_as_wrong_gateway,
);

/// `kernel` decap over IPv6, as far as this kernel goes (it has no ip6_tunnel): `tungate net
/// apply` puts the IPv6 forwarding guard (`ip6 tungate_guard`) in place before it tries the
/// ip6tnl device, which then fails with the module named; with a TUN stand-in named like
/// that device (it hands over bare IP packets, as a tunnel does), `ipv6.conf.all.forwarding
/// = 1` on the gateway and tungate reading the device, an inner IPv6 reply reaches the
/// client exactly once (tungate's copy, hop limit one lower), the kernel's forwarding
/// counter is unmoved and the guard counted the packet. `net down` removes the guard; the
/// same packet is then forwarded by the kernel itself (what the guard prevents).
#[test]
fn kernel_decap_over_ipv6_guards_against_the_kernel_forwarding_a_second_copy() {
    let t = topology(IoPath::Packet);
    let config = format!(
        "[gateway]\naddress = \"{GIP}\"\naddress6 = \"{GIP6}\"\ndecap = \"kernel\"\n\
         io = \"packet\"\nworkers = 1\negress_interface = \"g1\"\n\
         [[peers]]\nname = \"rs6\"\naddress = \"{RIP6}\"\nvips = [\"{VIP6}\"]\n"
    );
    let path = t.gw.path("kernel6.toml");
    std::fs::write(&path, &config).unwrap();
    let path = path.display().to_string();
    let state = t.gw.path("net-state.json").display().to_string();
    let plan =
        t.gw.tungate(&["net", "plan", "--config", &path, "--state-file", &state]);
    assert_eq!(
        plan.stdout.lines().take(2).collect::<Vec<_>>(),
        [
            "+ nft table ip6 tungate_guard drop ipv6 arriving on tg-rs6 in prerouting",
            // The MTU of g0 (1500) less 48.
            &format!("+ link tg-rs6 ip6tnl mode ip6ip6 local {GIP6} remote {RIP6} mtu 1452 up"),
        ],
        "{}",
        plan.stderr
    );
    let apply =
        t.gw.tungate(&["net", "apply", "--config", &path, "--state-file", &state]);
    assert_eq!(apply.code, 1, "{}", apply.stderr);
    assert!(
        apply.stderr.contains("ip6_tunnel"),
        "the missing module is named: {}",
        apply.stderr
    );
    let guard = || {
        String::from_utf8_lossy(
            &t.gw
                .exec("nft", &["list", "table", "ip6", "tungate_guard"])
                .stdout,
        )
        .into_owned()
    };
    assert!(guard().contains("iifname \"tg-rs6\""), "{}", guard());

    let tun = crate::run_modes::tun_device(&t.gw, "tg-rs6");
    t.gw.set_sysctl("net/ipv6/conf/all/forwarding", "1");
    let forwarded_by_kernel = || {
        let snmp = t.gw.exec("cat", &["/proc/net/snmp6"]);
        String::from_utf8_lossy(&snmp.stdout)
            .lines()
            .find_map(|l| l.strip_prefix("Ip6OutForwDatagrams"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .expect("Ip6OutForwDatagrams in /proc/net/snmp6")
    };
    let before = forwarded_by_kernel();
    let mut tg = Tungate::start(&t.gw, &config);
    let client = FrameSocket::open_protocol(&t.client, "c0", ALL);
    let reply = reply6(VIP6, 64, 200);
    // Twice: unresolved next hop first (the raw fallback), then the fast path.
    for _ in 0..2 {
        crate::run_modes::write_packet(&tun, &reply);
    }
    let got = client.receive_for(QUIET, to_client);
    assert_eq!(got.len(), 2, "each reply once, from tungate: {got:?}");
    for frame in &got {
        assert_eq!(frame[14..], forwarded(&reply)[..]);
    }
    assert_eq!(forwarded_by_kernel(), before, "the kernel forwarded none");
    assert!(guard().contains("packets 2 "), "{}", guard());
    let c = tg.counters();
    assert_eq!(total_drops(&c), 0, "{c}");
    assert_eq!(tg.stop().0, 0);

    let down = t.gw.tungate(&["net", "down", "--state-file", &state]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(
        down.stdout.contains("- nft table ip6 tungate_guard"),
        "{}",
        down.stdout
    );
    assert!(!guard().contains("tg-rs6"), "the guard is gone");
    // Without the guard (and without tungate) the kernel forwards the reply itself.
    crate::run_modes::write_packet(&tun, &reply);
    let got = client.receive_for(QUIET, to_client);
    assert_eq!(got.len(), 1, "the kernel's copy: {got:?}");
    assert_eq!(forwarded_by_kernel(), before + 1);
}
