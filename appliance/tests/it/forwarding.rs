//! `tungate run` on the host kernel, in namespaces `rs` — `gw` — `client` (needs root):
//! real IPIP replies are forwarded byte for byte with the TTL one lower, every bad case is
//! dropped, counted under its reason and never delivered, no ICMP goes back to the real
//! server, configuration changes drop nothing, and the tunnel fence outlives a stop.

use std::net::Ipv4Addr;
use std::time::Duration;

use tungate_test_support::icmp::IcmpWatch;
use tungate_test_support::packets::{self, ethernet, ipip, tcp, udp, with_ttl_decremented};
use tungate_test_support::topology::IoPath;
use tungate_test_support::topology::{
    CIP, CLIENT_MAC, GIP, GW_CLIENT_MAC, GW_RS_MAC, RIP, RS_MAC, VIP,
};
use tungate_test_support::{FrameSocket, Topology, Tungate};

const QUIET: Duration = Duration::from_millis(400);

/// Frames the client receives that are IPv4 to CIP from a VIP (ignores ARP, IPv6 etc.).
/// Whether `frame` is an IPv4 frame to the client.
pub(crate) fn to_client(frame: &[u8]) -> bool {
    frame.len() >= 34 && frame[12..14] == [8, 0] && frame[30..34] == CIP.octets()
}

/// `ip` in an Ethernet frame from the RS to the gateway.
pub(crate) fn from_rs(ip: &[u8]) -> Vec<u8> {
    ethernet(GW_RS_MAC, RS_MAC, ip)
}

/// The drops of `reason` in the counters `counters`.
pub(crate) fn drops(counters: &serde_json::Value, reason: &str) -> u64 {
    counters["drops"][reason]
        .as_u64()
        .unwrap_or_else(|| panic!("no reason {reason} in {counters}"))
}

/// Asserts that the counters `c` hold exactly the `expected` drops per reason, and no other.
pub(crate) fn assert_exactly_these_drops(
    c: &serde_json::Value,
    expected: &std::collections::BTreeMap<&str, u64>,
) {
    for (reason, n) in expected {
        assert_eq!(drops(c, reason), *n, "{reason} in {c}");
    }
    let total: u64 = expected.values().sum();
    assert_eq!(total_drops(c), total, "no other drops: {c}");
}

/// Every drop in the counters `c`, whatever its reason.
pub(crate) fn total_drops(c: &serde_json::Value) -> u64 {
    c["drops"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum()
}

fn vip_counters(counters: &serde_json::Value, vip: Ipv4Addr) -> serde_json::Value {
    counters["vips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["vip"] == vip.to_string())
        .cloned()
        .unwrap_or(serde_json::Value::Null)
}

fn forwards_udp_and_tcp_byte_for_byte_with_the_ttl_one_lower(io: IoPath) {
    let t = Topology::on(io);
    let mut tg = Tungate::start(&t.gw, &t.config(""));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let inner = [
        udp(VIP, CIP, 64, 64),
        udp(VIP, CIP, 64, 1400),
        tcp(VIP, CIP, 64, 64),
        tcp(VIP, CIP, 64, 1400),
    ];
    // Twice: the first round goes out while the neighbour is unresolved (raw fallback),
    // the second by the AF_PACKET fast path with tungate's own Ethernet header.
    let mut got = Vec::new();
    for _ in 0..2 {
        for p in &inner {
            rs.send(&from_rs(&ipip(RIP, GIP, p)));
        }
        got.extend(client.receive_for(QUIET, to_client));
    }
    let expected: Vec<Vec<u8>> = inner.iter().map(|p| with_ttl_decremented(p)).collect();
    assert_eq!(got.len(), 8, "the client got {} packets", got.len());
    for (i, frame) in got.iter().enumerate() {
        assert_eq!(&frame[14..], &expected[i % 4][..], "packet {i}");
        assert_eq!(frame[22], 63, "TTL");
    }
    // The fast-path frames carry the gateway's MAC towards the client.
    let last = &got[7];
    assert_eq!(&last[..6], &CLIENT_MAC);
    assert_eq!(&last[6..12], &GW_CLIENT_MAC);
    let c = tg.counters();
    let v = vip_counters(&c, VIP);
    assert_eq!(v["packets"], 8);
    let bytes: usize = expected.iter().map(Vec::len).sum::<usize>() * 2;
    assert_eq!(v["bytes"].as_u64().unwrap() as usize, bytes);
    assert!(c["tx_fallback_packets"].as_u64().unwrap() >= 1, "{c}");
    assert!(
        c["tx_fallback_packets"].as_u64().unwrap() < 8,
        "fast path never used: {c}"
    );
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

fn every_bad_case_is_dropped_counted_and_never_delivered(io: IoPath) {
    let t = Topology::on(io);
    let other_vip = Ipv4Addr::new(192, 0, 2, 11);
    let config = format!(
        "{}[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\nvips = [\"{other_vip}\"]\n",
        t.config("")
    );
    let mut tg = Tungate::start(&t.gw, &config);
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let good = udp(VIP, CIP, 64, 64);
    let good_frame = from_rs(&ipip(RIP, GIP, &good));

    let edit = |at: usize, value: u8, fix_outer: bool| {
        let mut f = good_frame.clone();
        f[at] = value;
        if fix_outer {
            packets::fix_ip_checksum(&mut f[14..]);
        }
        f
    };
    let mut inner_length_lies = good.clone();
    inner_length_lies[3] -= 4;
    packets::fix_ip_checksum(&mut inner_length_lies);
    // A 36-byte packet whose IHL claims a 60-byte header, and one claiming 12 bytes.
    let mut inner_ihl_lies = udp(VIP, CIP, 64, 8);
    inner_ihl_lies[0] = 0x4f;
    packets::fix_ip_checksum(&mut inner_ihl_lies);
    let mut inner_ihl_short = udp(VIP, CIP, 64, 8);
    inner_ihl_short[0] = 0x43;
    let mut garbage = good_frame[..34].to_vec();
    garbage.extend((0..200u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8));
    let mut short_outer_ihl_lies = from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 0)));
    short_outer_ihl_lies[14] = 0x4f;
    packets::fix_ip_checksum(&mut short_outer_ihl_lies[14..]);
    let lsrr = [1, 0x83, 7, 4, 1, 2, 3, 4];

    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "unknown peer",
            from_rs(&ipip(Ipv4Addr::new(10, 0, 1, 9), GIP, &good)),
            "unknown_peer",
        ),
        (
            "wrong gateway",
            from_rs(&ipip(RIP, Ipv4Addr::new(10, 0, 1, 200), &good)),
            "wrong_gateway",
        ),
        (
            "vip of another peer",
            from_rs(&ipip(RIP, GIP, &udp(other_vip, CIP, 64, 64))),
            "vip_not_served",
        ),
        (
            "source not a vip",
            from_rs(&ipip(
                RIP,
                GIP,
                &udp(Ipv4Addr::new(192, 0, 2, 99), CIP, 64, 64),
            )),
            "vip_not_served",
        ),
        (
            "nested ipip",
            from_rs(&ipip(RIP, GIP, &ipip(VIP, CIP, &good))),
            "nested_tunnel",
        ),
        (
            "nested gre",
            from_rs(&ipip(RIP, GIP, &packets::raw_inner(VIP, CIP, 47, &[]))),
            "nested_tunnel",
        ),
        (
            "ttl 1",
            from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 1, 64))),
            "ttl_expired",
        ),
        (
            "source route",
            from_rs(&ipip(RIP, GIP, &packets::raw_inner(VIP, CIP, 17, &lsrr))),
            "source_route",
        ),
        (
            "truncated frame",
            good_frame[..60].to_vec(),
            "malformed_outer",
        ),
        ("garbage after the outer header", garbage, "malformed_inner"),
        (
            "outer ihl past the outer length",
            short_outer_ihl_lies,
            "malformed_outer",
        ),
        (
            "outer ihl shifts the inner header",
            edit(14, 0x4f, true),
            "malformed_inner",
        ),
        (
            "outer length lies",
            edit(17, good_frame[17] + 40, true),
            "malformed_outer",
        ),
        (
            "outer checksum",
            edit(25, good_frame[25] ^ 0xff, false),
            "bad_outer_checksum",
        ),
        ("outer fragment", edit(20, 0x20, true), "outer_fragment"),
        (
            "inner length lies",
            from_rs(&ipip(RIP, GIP, &inner_length_lies)),
            "malformed_inner",
        ),
        (
            "inner ihl past its length",
            from_rs(&ipip(RIP, GIP, &inner_ihl_lies)),
            "malformed_inner",
        ),
        (
            "inner ihl below 5",
            from_rs(&ipip(RIP, GIP, &inner_ihl_short)),
            "malformed_inner",
        ),
        (
            "inner checksum",
            edit(34 + 11, good[11] ^ 0xff, false),
            "bad_inner_checksum",
        ),
    ];
    let mut expected: std::collections::BTreeMap<&str, u64> = Default::default();
    for (_, frame, reason) in &cases {
        rs.send(frame);
        *expected.entry(reason).or_default() += 1;
    }
    rs.send(&good_frame);
    let got = client.receive_for(QUIET, to_client);
    let hex: Vec<String> = got
        .iter()
        .map(|f| hex::encode(&f[14..f.len().min(60)]))
        .collect();
    assert_eq!(got.len(), 1, "only the good packet is delivered: {hex:?}");
    assert_eq!(&got[0][14..], &with_ttl_decremented(&good)[..]);

    let c = tg.counters();
    assert_exactly_these_drops(&c, &expected);
    // Drops that happen once the VIP is known are also counted for that VIP.
    let v = vip_counters(&c, VIP);
    assert_eq!(v["drops"]["ttl_expired"], 1);
    assert_eq!(v["drops"]["source_route"], 1);
    assert_eq!(v["packets"], 1);
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

/// Destination-unreachable messages (ICMP type 3) that `icmp` has seen since last asked.
fn icmp_errors(icmp: &IcmpWatch) -> usize {
    icmp.messages()
        .iter()
        .filter(|(kind, _, _)| *kind == 3)
        .count()
}

fn no_icmp_goes_back_and_the_fence_outlives_a_stop(io: IoPath) {
    let t = Topology::on(io);
    let tg = Tungate::start(&t.gw, &t.config(""));
    let listed =
        t.gw.exec("nft", &["list", "table", "inet", "tungate_fence"]);
    let rules = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success() && rules.contains("drop"), "{rules}");
    let icmp = IcmpWatch::open(&t.rs);
    let rs = FrameSocket::open(&t.rs, "r0");
    let probe = from_rs(&ipip(
        RIP,
        GIP,
        &udp(Ipv4Addr::new(192, 0, 2, 99), CIP, 64, 64),
    ));
    for _ in 0..5 {
        rs.send(&from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 64))));
        rs.send(&probe);
    }
    assert_eq!(icmp_errors(&icmp), 0, "ICMP went back to the real server");
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
    // The fence stays while tungate is away (`tungate net down` lowers it: see `fence`).
    for _ in 0..3 {
        rs.send(&probe);
    }
    assert_eq!(icmp_errors(&icmp), 0, "ICMP went back after the stop");
    let deleted =
        t.gw.exec("nft", &["delete", "table", "inet", "tungate_fence"]);
    assert!(deleted.status.success());
    // Without tungate's fence this kernel answers IPIP with ICMP: the checks above can fail.
    for _ in 0..3 {
        rs.send(&probe);
    }
    assert!(
        icmp_errors(&icmp) > 0,
        "the kernel sent no ICMP without the fence"
    );
}

fn a_stale_fence_from_a_crashed_run_is_replaced(io: IoPath) {
    let t = Topology::on(io);
    let add = t.gw.exec("nft", &["add", "table", "inet", "tungate_fence"]);
    assert!(add.status.success());
    let chain = t.gw.exec(
        "nft",
        &[
            "add",
            "chain",
            "inet",
            "tungate_fence",
            "stale",
            "{ type filter hook prerouting priority 0 ; }",
        ],
    );
    assert!(chain.status.success());
    let tg = Tungate::start(&t.gw, &t.config(""));
    let listed = String::from_utf8_lossy(
        &t.gw
            .exec("nft", &["list", "table", "inet", "tungate_fence"])
            .stdout,
    )
    .into_owned();
    assert!(
        !listed.contains("stale") && listed.contains("hook prerouting") && listed.contains("drop"),
        "{listed}"
    );
    assert_eq!(tg.stop().0, 0);
}

fn table_changes_drop_nothing_and_vip_counters_survive(io: IoPath) {
    let t = Topology::on(io);
    let mut tg = Tungate::start(&t.gw, &t.config(""));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let vip2 = Ipv4Addr::new(192, 0, 2, 12);
    // The same document (the same `[gateway]`, so no worker restart) with a second VIP.
    let with_vip2 = t.config("").replace(
        &format!("vips = [\"{VIP}\"]"),
        &format!("vips = [\"{VIP}\", \"{vip2}\"]"),
    );
    let frame = from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 32)));
    // Resolve the neighbour first so timing does not depend on ARP.
    rs.send(&frame);
    assert_eq!(client.receive_for(QUIET, to_client).len(), 1);
    let sender = std::thread::spawn(move || {
        for _ in 0..2000 {
            rs.send(&frame);
            std::thread::sleep(Duration::from_micros(200));
        }
        rs
    });
    for i in 0..6 {
        std::thread::sleep(Duration::from_millis(50));
        let config = if i % 2 == 0 {
            with_vip2.clone()
        } else {
            t.config("")
        };
        tg.reload(&config);
    }
    let rs = sender.join().unwrap();
    let got = client.receive_for(QUIET, to_client);
    assert_eq!(got.len(), 2000, "packets lost during table swaps");
    // The new VIP works after the swap, and the old VIP's counter kept counting.
    tg.reload(&with_vip2);
    rs.send(&from_rs(&ipip(RIP, GIP, &udp(vip2, CIP, 64, 32))));
    assert_eq!(client.receive_for(QUIET, to_client).len(), 1);
    let c = tg.counters();
    assert_eq!(vip_counters(&c, VIP)["packets"], 2001);
    assert_eq!(vip_counters(&c, vip2)["packets"], 1);
    // A changed [gateway] restarts the workers cleanly; forwarding and counts go on.
    tg.reload(&with_vip2.replace("[gateway]\n", "[gateway]\nworkers = 2\n"));
    tg.wait_filters_in_force();
    for _ in 0..10 {
        rs.send(&from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 32))));
    }
    assert_eq!(client.receive_for(QUIET, to_client).len(), 10);
    let c = tg.counters();
    assert_eq!(vip_counters(&c, VIP)["packets"], 2011);
    assert_eq!(tg.stop().0, 0);
}

fn rings_wrap_around_and_every_packet_arrives_once_in_order(io: IoPath) {
    // More packets than the receive ring (2048 frames) and the transmit ring (1024) hold,
    // so both wrap around; one flow, so one worker and one order.
    const COUNT: u32 = 5000;
    let t = Topology::on(io);
    let mut tg = Tungate::start(&t.gw, &t.config(""));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let numbered = |n: u32| {
        let mut p = udp(VIP, CIP, 64, 0);
        let payload = n.to_be_bytes();
        p.extend_from_slice(&payload);
        let total = p.len() as u16;
        p[2..4].copy_from_slice(&total.to_be_bytes());
        p[24..26].copy_from_slice(&(8 + payload.len() as u16).to_be_bytes()); // UDP length
        p[26..28].fill(0); // no UDP checksum
        packets::fix_ip_checksum(&mut p);
        p
    };
    // Resolve the client's neighbour first (that packet goes by the raw fallback).
    rs.send(&from_rs(&ipip(RIP, GIP, &numbered(u32::MAX))));
    assert_eq!(client.receive_for(QUIET, to_client).len(), 1);
    for chunk in (0..COUNT).collect::<Vec<_>>().chunks(250) {
        for &n in chunk {
            rs.send(&from_rs(&ipip(RIP, GIP, &numbered(n))));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let got = client.receive_for(QUIET, to_client);
    let numbers: Vec<u32> = got
        .iter()
        .map(|f| u32::from_be_bytes(f[42..46].try_into().unwrap()))
        .collect();
    assert_eq!(
        numbers,
        (0..COUNT).collect::<Vec<_>>(),
        "every number once, in order"
    );
    let expected = with_ttl_decremented(&numbered(COUNT - 1));
    assert_eq!(&got[got.len() - 1][14..], &expected[..], "byte for byte");
    let c = tg.counters();
    assert_eq!(c["rx_packets"], u64::from(COUNT) + 1, "{c}");
    assert_eq!(c["tx_packets"], u64::from(COUNT) + 1, "{c}");
    assert_eq!(c["drops"]["rx_overflow"], 0, "{c}");
    assert_eq!(tg.stop().0, 0);
}

/// io_uring instances open in a process (`anon_inode:[io_uring]` entries of /proc/PID/fd).
fn io_urings_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("list tungate's descriptors")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy() == "anon_inode:[io_uring]")
        .count()
}

fn each_worker_runs_its_loop_on_its_own_io_uring(io: IoPath) {
    let t = Topology::on_with_queues(io, 2);
    let mut tg = Tungate::start(&t.gw, &t.config("workers = 2"));
    assert_eq!(io_urings_of(tg.pid()), 2, "one io_uring per worker");
    // Packets after an idle spell: the sleeping workers are woken by their ring's poll and
    // the replies leave through the kicked transmit ring (the second round's fast path).
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let mut got = 0;
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(300));
        for _ in 0..20 {
            rs.send(&from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 64))));
        }
        got += client.receive_for(QUIET, to_client).len();
    }
    assert_eq!(got, 60);
    let c = tg.counters();
    assert!(c["tx_fallback_packets"].as_u64().unwrap() < 60, "{c}");
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

/// A counter of `/proc/net/snmp` (`proto` "Udp" or "Tcp", `field` e.g. "InCsumErrors") in
/// the namespace `ns`.
fn snmp(ns: &tungate_test_support::Netns, proto: &'static str, field: &'static str) -> u64 {
    ns.run(move || {
        let text = std::fs::read_to_string("/proc/thread-self/net/snmp").unwrap();
        let mut lines = text.lines().filter(|l| l.starts_with(&format!("{proto}:")));
        let (names, values) = (lines.next().unwrap(), lines.next().unwrap());
        let at = names.split_whitespace().position(|n| n == field).unwrap();
        values.split_whitespace().nth(at).unwrap().parse().unwrap()
    })
}

/// A real server's stack sends with checksum offload: its TCP and UDP checksums are left
/// partial (`CHECKSUM_PARTIAL`) and cross the veth that way. The replies must reach the
/// client's sockets with complete checksums on both paths: the TPACKET rings read the
/// offload state from the virtio-net header; an AF_XDP frame carries none, so tungate
/// recognises the partial checksum itself and finishes it. A complete but wrong checksum is
/// forwarded as it is (the client's stack drops it and counts it: the control).
fn replies_sent_with_checksum_offload_reach_the_clients_sockets(io: IoPath) {
    let t = Topology::on(io);
    let mut tg = Tungate::start(&t.gw, &t.config(""));
    let rs = FrameSocket::open(&t.rs, "r0").with_offload_header();
    let socket = t.client.run(|| {
        let s = std::net::UdpSocket::bind((CIP, 40000)).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s
    });
    let before = (
        snmp(&t.client, "Udp", "InCsumErrors"),
        snmp(&t.client, "Tcp", "InCsumErrors"),
    );
    // (inner packet, whether its checksum is left partial); outer Ethernet + IP = 34 bytes.
    let send = |inner: &[u8], partial: bool| {
        let mut inner = inner.to_vec();
        let vnet = if partial {
            let (start, offset) = packets::make_checksum_partial(&mut inner);
            packets::vnet_needs_csum(34 + start, offset)
        } else {
            [0; 10]
        };
        let mut frame = vnet.to_vec();
        frame.extend(from_rs(&ipip(RIP, GIP, &inner)));
        rs.send(&frame);
    };
    let sizes = [1, 200, 1400];
    // Twice: the first round leaves by the raw fallback, the second by the fast path.
    let mut got = Vec::new();
    for _ in 0..2 {
        for len in sizes {
            send(&udp(VIP, CIP, 64, len), true);
            send(&tcp(VIP, CIP, 64, len), true);
        }
        let mut buf = [0u8; 2000];
        while let Ok(n) = socket.recv(&mut buf) {
            got.push(buf[..n].to_vec());
        }
    }
    let expected: Vec<Vec<u8>> = [sizes, sizes]
        .concat()
        .into_iter()
        .map(packets::payload)
        .collect();
    let lengths = |d: &[Vec<u8>]| d.iter().map(Vec::len).collect::<Vec<_>>();
    assert_eq!(
        lengths(&got),
        lengths(&expected),
        "every partial-checksum UDP reply reaches the socket"
    );
    assert!(got == expected, "the datagrams arrive as sent");
    assert_eq!(
        (
            snmp(&t.client, "Udp", "InCsumErrors"),
            snmp(&t.client, "Tcp", "InCsumErrors")
        ),
        before,
        "no reply reached the client with a bad checksum"
    );
    // The control: complete checksums that are wrong stay wrong, and the client sees it.
    // (A payload byte changed after the checksum was computed: IP 20 + UDP 8, IP 20 + TCP 20.)
    let mut bad_udp = udp(VIP, CIP, 64, 100);
    bad_udp[28 + 5] ^= 0x55;
    let mut bad_tcp = tcp(VIP, CIP, 64, 100);
    bad_tcp[40 + 5] ^= 0x55;
    send(&bad_udp, false);
    send(&bad_tcp, false);
    let mut buf = [0u8; 2000];
    assert!(
        socket.recv(&mut buf).is_err(),
        "a datagram with a bad checksum is not delivered"
    );
    assert_eq!(snmp(&t.client, "Udp", "InCsumErrors"), before.0 + 1);
    assert_eq!(snmp(&t.client, "Tcp", "InCsumErrors"), before.1 + 1);
    let v = vip_counters(&tg.counters(), VIP);
    assert_eq!(v["packets"], 14, "tungate forwarded them all: {v}");
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

crate::on_both_io_paths!(
    replies_sent_with_checksum_offload_reach_the_clients_sockets,
    forwards_udp_and_tcp_byte_for_byte_with_the_ttl_one_lower,
    every_bad_case_is_dropped_counted_and_never_delivered,
    no_icmp_goes_back_and_the_fence_outlives_a_stop,
    a_stale_fence_from_a_crashed_run_is_replaced,
    table_changes_drop_nothing_and_vip_counters_survive,
    rings_wrap_around_and_every_packet_arrives_once_in_order,
    each_worker_runs_its_loop_on_its_own_io_uring,
);
