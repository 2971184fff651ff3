//! The tunnel fence of `userspace` decap (`table inet tungate_fence`), with the real binary
//! in namespaces `rs` — `gw` — `client` (needs root): it stays across a SIGTERM and a
//! crash, so a restart under traffic sends no ICMP towards the peer; no tunnel packet
//! (IPIP, GRE, 6in4, IPv6 tunnels) to any of the gateway's addresses is answered by the
//! kernel while it stands, and every one is once `tungate net down` lowered it; a switch to
//! `kernel` decap, or a start in `kernel` mode, lowers a fence left behind.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tungate_test_support::icmp::IcmpWatch;
use tungate_test_support::packets::{ethernet, fou, gre, gue, outer, udp};
use tungate_test_support::stream::NumberedStream;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RS_MAC, VIP};
use tungate_test_support::{FrameSocket, Topology, Tungate, process};

const QUIET: Duration = Duration::from_millis(400);
/// `ETH_P_ALL`: every frame.
const ETH_P_ALL: u16 = 3;
/// The gateway's second IPv4 address on the ingress interface.
const GIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
/// The gateway's IPv6 address on the ingress interface.
const GIP6: Ipv6Addr = Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, 1);

/// The fence's table as `nft` lists it in `t`'s gateway namespace ("" when absent).
fn fence(t: &Topology) -> String {
    let listed =
        t.gw.exec("nft", &["list", "table", "inet", "tungate_fence"]);
    if listed.status.success() {
        String::from_utf8_lossy(&listed.stdout).into_owned()
    } else {
        String::new()
    }
}

/// Destination-unreachable and parameter-problem messages (ICMP types 3, 12) seen since
/// last asked.
fn icmp_errors(icmp: &IcmpWatch) -> usize {
    icmp.messages()
        .iter()
        .filter(|(kind, _, _)| matches!(kind, 3 | 12))
        .count()
}

/// An IPv6 packet (hop limit 64) from `src` to `dst` with `next` and `payload`.
fn ipv6(src: Ipv6Addr, dst: Ipv6Addr, next: u8, payload: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend((payload.len() as u16).to_be_bytes());
    p.extend([next, 64]);
    p.extend(src.octets());
    p.extend(dst.octets());
    p.extend(payload);
    p
}

/// An Ethernet frame carrying an IPv6 packet from the real server to the gateway.
fn ethernet6(ip: &[u8]) -> Vec<u8> {
    let mut f = GW_RS_MAC.to_vec();
    f.extend(RS_MAC);
    f.extend(0x86ddu16.to_be_bytes());
    f.extend(ip);
    f
}

/// One probe of each kind of tunnel packet, each from its own source address on the real
/// server's side (so that the kernel's per-source ICMP rate limit lets every answer out):
/// (name, source, frame).
fn probes() -> Vec<(&'static str, String, Vec<u8>)> {
    let inner = udp(VIP, CIP, 64, 32);
    let inner6 = ipv6(
        Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 10),
        Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 7),
        17,
        &[0, 1, 0, 2, 0, 8, 0, 0],
    );
    // GRE: no flags, version 0, protocol IPv4.
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend(&inner);
    let v4 = |n: u8| Ipv4Addr::new(10, 0, 1, n);
    let v6 = |n: u16| Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, n);
    vec![
        (
            "IPIP to the other address",
            v4(21).to_string(),
            ethernet(GW_RS_MAC, RS_MAC, &outer(v4(21), GIP2, 4, &inner)),
        ),
        (
            "GRE",
            v4(22).to_string(),
            ethernet(GW_RS_MAC, RS_MAC, &outer(v4(22), GIP, 47, &gre)),
        ),
        (
            "6in4",
            v4(23).to_string(),
            ethernet(GW_RS_MAC, RS_MAC, &outer(v4(23), GIP, 41, &inner6)),
        ),
        (
            "IPv6 in IPv6",
            v6(24).to_string(),
            ethernet6(&ipv6(v6(24), GIP6, 41, &inner6)),
        ),
        (
            "IPIP in IPv6",
            v6(25).to_string(),
            ethernet6(&ipv6(v6(25), GIP6, 4, &inner)),
        ),
        (
            "GRE in IPv6",
            v6(26).to_string(),
            ethernet6(&ipv6(v6(26), GIP6, 47, &gre)),
        ),
    ]
}

/// Gives the gateway its other addresses and the real server's side the probes' sources.
fn add_addresses(t: &Topology) {
    t.gw.ip(&["addr", "add", &format!("{GIP2}/24"), "dev", "g0"]);
    t.gw.ip(&["addr", "add", &format!("{GIP6}/64"), "dev", "g0", "nodad"]);
    for (_, source, _) in probes() {
        let prefix = if source.contains(':') { 64 } else { 24 };
        t.rs.ip(&[
            "addr",
            "add",
            &format!("{source}/{prefix}"),
            "dev",
            "r0",
            "nodad",
        ]);
    }
}

/// Whether `frame` is an ICMP error (v4: destination unreachable, parameter problem; v6:
/// types below 128) addressed to `to`.
fn icmp_error_to(frame: &[u8], to: &str) -> bool {
    match frame.get(12..14) {
        Some([0x08, 0x00]) if frame.len() >= 35 => {
            let dst = Ipv4Addr::new(frame[30], frame[31], frame[32], frame[33]);
            frame[23] == 1 && matches!(frame[34], 3 | 12) && dst.to_string() == to
        }
        Some([0x86, 0xdd]) if frame.len() >= 55 => {
            let dst: [u8; 16] = frame[38..54].try_into().unwrap();
            frame[20] == 58 && frame[54] < 128 && Ipv6Addr::from(dst).to_string() == to
        }
        _ => false,
    }
}

/// Sends every probe from the real server and returns the names of those the gateway
/// answered with an ICMP error.
fn answered(t: &Topology) -> Vec<&'static str> {
    answered_to(t, probes())
}

/// Sends `probes` (name, source, frame) from the real server and returns the names of those
/// the gateway answered with an ICMP error.
fn answered_to(t: &Topology, probes: Vec<(&'static str, String, Vec<u8>)>) -> Vec<&'static str> {
    let rs = FrameSocket::open_protocol(&t.rs, "r0", ETH_P_ALL);
    for (_, _, frame) in &probes {
        rs.send(frame);
    }
    let got = rs.receive_for(QUIET, |f| {
        probes.iter().any(|(_, to, _)| icmp_error_to(f, to))
    });
    probes
        .iter()
        .filter(|(_, to, _)| got.iter().any(|f| icmp_error_to(f, to)))
        .map(|(name, _, _)| *name)
        .collect()
}

#[test]
fn a_restart_under_traffic_sends_no_icmp_to_the_peer() {
    let t = Topology::new();
    let tg = Tungate::start(&t.gw, &t.config(""));
    let icmp = IcmpWatch::open(&t.rs);
    let stream = NumberedStream::start(&t, 2000, Duration::from_secs(2));
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
    assert!(
        fence(&t).contains("drop"),
        "the fence went with the SIGTERM"
    );
    let tg = Tungate::start(&t.gw, &t.config(""));
    // A crash (SIGKILL) leaves it too, and the next start takes it over.
    tg.kill9();
    assert!(fence(&t).contains("drop"), "the fence went with the crash");
    let tg = Tungate::start(&t.gw, &t.config(""));
    let delivered = stream.finish();
    assert_eq!(icmp_errors(&icmp), 0, "ICMP went back to the real server");
    assert!(
        !delivered.received.is_empty(),
        "nothing was forwarded ({} sent)",
        delivered.sent
    );
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn no_tunnel_probe_is_answered_until_net_down_lowers_the_fence() {
    let t = Topology::new();
    add_addresses(&t);
    let tg = Tungate::start(&t.gw, &t.config(""));
    let listed = fence(&t);
    for protocol in ["ipencap", "ipv6", "gre"] {
        assert!(listed.contains(protocol), "{protocol} missing in {listed}");
    }
    assert!(listed.contains("iifname \"g0\""), "{listed}");
    assert!(listed.contains("fib daddr type local"), "{listed}");
    assert_eq!(answered(&t), Vec::<&str>::new(), "answered while fenced");
    assert_eq!(tg.stop().0, 0);
    assert_eq!(answered(&t), Vec::<&str>::new(), "answered after a stop");

    let state = tempfile::tempdir().unwrap();
    let state_file = state.path().join("netcfg.json");
    let (status, out, err) = process::run_to_end(
        &t.gw,
        &["net", "down", "--state-file", state_file.to_str().unwrap()],
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("inet tungate_fence"), "{out}");
    assert_eq!(fence(&t), "", "the fence is still there");
    let listed = t.gw.exec("nft", &["list", "tables"]);
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains("tungate"),
        "a table left behind"
    );
    // Without the fence this kernel answers every probe: the checks above can fail.
    let all: Vec<&str> = probes().iter().map(|(name, _, _)| *name).collect();
    assert_eq!(answered(&t), all);
    // Lowering a fence that is not there changes nothing.
    let (status, out, err) = process::run_to_end(
        &t.gw,
        &["net", "down", "--state-file", state_file.to_str().unwrap()],
    );
    assert_eq!(status, 0, "{out}{err}");
    assert!(!out.contains("tungate_fence"), "{out}");
}

/// This host has no fou, gue or gre modules: without the fence the kernel answers GUE and
/// FOU to GIP with port-unreachable and GRE with protocol-unreachable, towards the RS. With
/// the fence (raised for the configured GUE/FOU ports, kept across a stop) it answers none.
#[test]
fn gue_fou_and_gre_probes_get_no_icmp_while_fenced_and_do_without() {
    let t = Topology::new();
    let v4 = |n: u8| Ipv4Addr::new(10, 0, 1, n);
    let probes = || {
        let inner = udp(VIP, CIP, 64, 32);
        vec![
            (
                "GUE",
                v4(31).to_string(),
                ethernet(GW_RS_MAC, RS_MAC, &gue(v4(31), GIP, 6080, &inner)),
            ),
            (
                "FOU",
                v4(32).to_string(),
                ethernet(GW_RS_MAC, RS_MAC, &fou(v4(32), GIP, 5555, &inner)),
            ),
            (
                "GRE with a key",
                v4(33).to_string(),
                ethernet(GW_RS_MAC, RS_MAC, &gre(v4(33), GIP, Some(7), true, &inner)),
            ),
        ]
    };
    for (_, source, _) in probes() {
        t.rs.ip(&["addr", "add", &format!("{source}/24"), "dev", "r0"]);
    }
    let config = format!(
        "{}[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.40\"\ntunnel = \"fou\"\nport = 5555\n\
         [[peers]]\nname = \"rs3\"\naddress = \"10.0.1.41\"\ntunnel = \"gue\"\n",
        t.config("")
    );
    let tg = Tungate::start(&t.gw, &config);
    let listed = fence(&t);
    for rule in ["udp dport 5555", "udp dport 6080", "gre"] {
        assert!(listed.contains(rule), "{rule} missing in {listed}");
    }
    assert_eq!(
        answered_to(&t, probes()),
        Vec::<&str>::new(),
        "answered while fenced"
    );
    assert_eq!(tg.stop().0, 0);
    assert_eq!(
        answered_to(&t, probes()),
        Vec::<&str>::new(),
        "answered after a stop"
    );
    let deleted =
        t.gw.exec("nft", &["delete", "table", "inet", "tungate_fence"]);
    assert!(deleted.status.success());
    // Without the fence every probe is answered: the checks above can fail.
    assert_eq!(answered_to(&t, probes()), ["GUE", "FOU", "GRE with a key"]);
}

#[test]
fn a_release_before_the_fence_leaves_no_table_of_its_own() {
    let t = Topology::new();
    for args in [
        &["add", "table", "netdev", "tungate"][..],
        &[
            "add",
            "chain",
            "netdev",
            "tungate",
            "ingress",
            "{ type filter hook ingress device \"g0\" priority 0 ; }",
        ],
    ] {
        let run = t.gw.exec("nft", args);
        assert!(run.status.success(), "{run:?}");
    }
    let tg = Tungate::start(&t.gw, &t.config(""));
    let listed =
        String::from_utf8_lossy(&t.gw.exec("nft", &["list", "tables"]).stdout).into_owned();
    assert_eq!(listed.trim(), "table inet tungate_fence", "{listed}");
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn kernel_decap_lowers_a_fence_on_a_switch_and_at_start() {
    let t = Topology::new();
    let kernel = t.config("decap = \"kernel\"\nworkers = 1\negress_interface = \"g1\"");
    // A stand-in for the peer's tunnel device (this kernel builds no ipip tunnels).
    let _tunnel = crate::run_modes::tun_device(&t.gw, "tg-rs1");
    let mut tg = Tungate::start(&t.gw, &t.config(""));
    assert!(fence(&t).contains("drop"));
    tg.reload(&kernel);
    assert_eq!(fence(&t), "", "the fence stands in kernel mode");
    // And back: userspace mode raises it again.
    tg.reload(&t.config(""));
    assert!(
        fence(&t).contains("drop"),
        "no fence back in userspace mode"
    );
    tg.kill9();
    assert!(fence(&t).contains("drop"));
    // A start in kernel mode lowers the fence an earlier run left.
    let tg = Tungate::start(&t.gw, &kernel);
    assert_eq!(fence(&t), "", "a leftover fence stands in kernel mode");
    assert_eq!(tg.stop().0, 0);
}

/// A UDP datagram `sport -> port` from `src` to `dst` around `payload`, with its IPv6
/// checksum (mandatory in IPv6: the kernel drops a zero one silently, which would prove
/// nothing here).
fn udp6(src: Ipv6Addr, dst: Ipv6Addr, port: u16, payload: &[u8]) -> Vec<u8> {
    let header = etherparse::UdpHeader::with_ipv6_checksum(
        49152,
        port,
        &etherparse::Ipv6Header {
            payload_length: (8 + payload.len()) as u16,
            next_header: etherparse::IpNumber::UDP,
            hop_limit: 64,
            source: src.octets(),
            destination: dst.octets(),
            ..Default::default()
        },
        payload,
    )
    .expect("a UDP header");
    [&header.to_bytes()[..], payload].concat()
}

/// IPv6 tunnel packets to the gateway's IPv6 address (GIP6) on a host without the fou, gue,
/// gre and ip6_tunnel modules: GUE and FOU over IPv6 (UDP to the configured ports), ip6gre,
/// and ip6ip6 / 4in6 behind the destination options header a stock ip6tnl inserts (the
/// tunnel encapsulation limit). While the fence stands (and after a stop) the kernel answers
/// none with ICMPv6; without it, every one (port unreachable, parameter problem).
#[test]
fn ipv6_tunnel_probes_get_no_icmpv6_while_fenced_and_do_without() {
    let t = Topology::new();
    let v6 = |n: u16| Ipv6Addr::new(0xfd00, 1, 0, 0, 0, 0, 0, n);
    let inner = udp(VIP, CIP, 64, 32);
    let inner6 = ipv6(
        Ipv6Addr::new(0xfd00, 2, 0, 0, 0, 0, 0, 10),
        Ipv6Addr::new(0xfd00, 3, 0, 0, 0, 0, 0, 7),
        17,
        &[0, 1, 0, 2, 0, 8, 0, 0],
    );
    // Destination options of a stock ip6tnl: encapsulation limit 4, PadN; then `next`.
    let dest_options = |next: u8, payload: &[u8]| {
        [&[next, 0, 0x04, 0x01, 0x04, 0x01, 0x01, 0x00][..], payload].concat()
    };
    let mut gre = vec![0x20, 0, 0x86, 0xdd];
    gre.extend(7u32.to_be_bytes());
    gre.extend(&inner6);
    let probes = || {
        let gue = [&[0, 41, 0, 0][..], &inner6].concat();
        vec![
            (
                "GUE over IPv6",
                v6(41).to_string(),
                ethernet6(&ipv6(v6(41), GIP6, 17, &udp6(v6(41), GIP6, 6080, &gue))),
            ),
            (
                "FOU over IPv6",
                v6(42).to_string(),
                ethernet6(&ipv6(v6(42), GIP6, 17, &udp6(v6(42), GIP6, 5555, &inner))),
            ),
            (
                "ip6gre with a key",
                v6(43).to_string(),
                ethernet6(&ipv6(v6(43), GIP6, 47, &gre)),
            ),
            (
                "ip6ip6 with destination options",
                v6(44).to_string(),
                ethernet6(&ipv6(v6(44), GIP6, 60, &dest_options(41, &inner6))),
            ),
            (
                "4in6 with destination options",
                v6(45).to_string(),
                ethernet6(&ipv6(v6(45), GIP6, 60, &dest_options(4, &inner))),
            ),
        ]
    };
    t.gw.ip(&["addr", "add", &format!("{GIP6}/64"), "dev", "g0", "nodad"]);
    for (_, source, _) in probes() {
        t.rs.ip(&["addr", "add", &format!("{source}/64"), "dev", "r0", "nodad"]);
    }
    let config = format!(
        "{}[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.40\"\ntunnel = \"fou\"\nport = 5555\n\
         [[peers]]\nname = \"rs3\"\naddress = \"10.0.1.41\"\ntunnel = \"gue\"\n",
        t.config("")
    );
    let tg = Tungate::start(&t.gw, &config);
    let all: Vec<&str> = probes().iter().map(|(name, _, _)| *name).collect();
    assert_eq!(
        answered_to(&t, probes()),
        Vec::<&str>::new(),
        "answered while fenced"
    );
    assert_eq!(tg.stop().0, 0);
    assert_eq!(
        answered_to(&t, probes()),
        Vec::<&str>::new(),
        "answered after a stop"
    );
    let deleted =
        t.gw.exec("nft", &["delete", "table", "inet", "tungate_fence"]);
    assert!(deleted.status.success());
    // Without the fence every probe is answered: the checks above can fail.
    assert_eq!(answered_to(&t, probes()), all);
}
