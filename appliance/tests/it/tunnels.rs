//! GUE, FOU and GRE return tunnels in `userspace` decap, with the real binary in namespaces
//! `rs` — `gw` — `client` (needs root), on both I/O paths: each type is forwarded byte for
//! byte with the TTL one lower (whatever the GUE source port), and every hostile case of the
//! IPIP suite in GUE and GRE form, plus what a tunnel header can lie about, is dropped,
//! counted under its reason and never delivered.

use std::net::Ipv4Addr;
use std::time::Duration;

use tungate_test_support::packets::{
    self, fou, gre, gre_raw, gue, gue_with, ipip, outer_udp, tcp, udp, with_ttl_decremented,
};
use tungate_test_support::topology::IoPath;
use tungate_test_support::topology::{CIP, GIP, RIP, VIP};
use tungate_test_support::{FrameSocket, Topology, Tungate};

use crate::forwarding::{assert_exactly_these_drops, from_rs, to_client, total_drops};

const QUIET: Duration = Duration::from_millis(400);
/// The GUE peer is `rs1` (RIP) on the default port; the others are these.
const GUE_PORT: u16 = 6080;
const FOU_RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
const FOU_PORT: u16 = 5555;
const GRE_RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 4);
const KEYED_RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 5);
const KEY: u32 = 0x0a0b_0c0d;
const FOU_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);
const GRE_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);
const KEYED_VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 13);

/// `rs1` (RIP, VIP) sends GUE to 6080 (the default), `rs2` FOU to 5555, `rs3` GRE without a
/// key, `rs4` GRE with KEY; each serves its own VIP.
fn config(t: &Topology) -> String {
    let base = t.config("").replace(
        &format!("address = \"{RIP}\"\n"),
        &format!("address = \"{RIP}\"\ntunnel = \"gue\"\n"),
    );
    format!(
        "{base}\
         [[peers]]\nname = \"rs2\"\naddress = \"{FOU_RIP}\"\ntunnel = \"fou\"\nport = {FOU_PORT}\nvips = [\"{FOU_VIP}\"]\n\
         [[peers]]\nname = \"rs3\"\naddress = \"{GRE_RIP}\"\ntunnel = \"gre\"\nvips = [\"{GRE_VIP}\"]\n\
         [[peers]]\nname = \"rs4\"\naddress = \"{KEYED_RIP}\"\ntunnel = \"gre\"\nkey = {KEY}\nvips = [\"{KEYED_VIP}\"]\n"
    )
}

fn each_tunnel_type_is_forwarded_byte_for_byte(io: IoPath) {
    let t = Topology::on(io);
    let mut tg = Tungate::start(&t.gw, &config(&t));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let mut sent = Vec::new();
    // Twice: unresolved next hop first (raw fallback), then the fast path.
    for round in 0..2u16 {
        for (i, len) in [64usize, 1400].into_iter().enumerate() {
            let i = i as u16;
            let g = udp(VIP, CIP, 64, len);
            // GUE from a new UDP source port each time (the ECMP entropy): never judged.
            let sport = 40000 + round * 10 + i;
            rs.send(&from_rs(&outer_udp(
                RIP,
                GIP,
                sport,
                GUE_PORT,
                &[&[0, 4, 0, 0][..], &g].concat(),
                true,
            )));
            let f = tcp(FOU_VIP, CIP, 64, len);
            rs.send(&from_rs(&fou(FOU_RIP, GIP, FOU_PORT, &f)));
            let plain = udp(GRE_VIP, CIP, 64, len);
            rs.send(&from_rs(&gre(GRE_RIP, GIP, None, false, &plain)));
            let keyed = tcp(KEYED_VIP, CIP, 64, len);
            rs.send(&from_rs(&gre(KEYED_RIP, GIP, Some(KEY), true, &keyed)));
            sent.extend([g, f, plain, keyed]);
        }
    }
    let got = client.receive_for(QUIET, to_client);
    assert_eq!(
        got.len(),
        sent.len(),
        "the client got {} packets",
        got.len()
    );
    for (i, (frame, packet)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(
            &frame[14..],
            &with_ttl_decremented(packet)[..],
            "packet {i}"
        );
    }
    let c = tg.counters();
    for vip in [VIP, FOU_VIP, GRE_VIP, KEYED_VIP] {
        let v = c["vips"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["vip"] == vip.to_string())
            .cloned()
            .unwrap_or_default();
        assert_eq!(v["packets"], 4, "{vip} in {c}");
    }
    assert_eq!(total_drops(&c), 0, "{c}");
    assert_eq!(tg.stop().0, 0);
}

/// `ip` with its outer IPv4 header edited at `at` (offset in the IPv4 packet) and, if `fix`,
/// its header checksum recomputed.
fn edit(ip: &[u8], at: usize, value: u8, fix: bool) -> Vec<u8> {
    let mut p = ip.to_vec();
    p[at] = value;
    if fix {
        packets::fix_ip_checksum(&mut p);
    }
    from_rs(&p)
}

/// The hostile cases of the IPIP suite (`forwarding.rs`) wrapped by `wrap`, the tunnel of a
/// peer serving `vip`: (name, frame, reason).
fn inner_cases(
    vip: Ipv4Addr,
    other_vip: Ipv4Addr,
    wrap: &dyn Fn(&[u8]) -> Vec<u8>,
) -> Vec<(String, Vec<u8>, &'static str)> {
    let good = udp(vip, CIP, 64, 64);
    let mut inner_length_lies = good.clone();
    inner_length_lies[3] -= 4;
    packets::fix_ip_checksum(&mut inner_length_lies);
    let mut inner_ihl_lies = udp(vip, CIP, 64, 8);
    inner_ihl_lies[0] = 0x4f;
    packets::fix_ip_checksum(&mut inner_ihl_lies);
    let mut inner_ihl_short = udp(vip, CIP, 64, 8);
    inner_ihl_short[0] = 0x43;
    let mut inner_bad_sum = good.clone();
    inner_bad_sum[11] ^= 0xff;
    let garbage: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let lsrr = [1, 0x83, 7, 4, 1, 2, 3, 4];
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "vip of another peer",
            udp(other_vip, CIP, 64, 64),
            "vip_not_served",
        ),
        (
            "source not a vip",
            udp(Ipv4Addr::new(192, 0, 2, 99), CIP, 64, 64),
            "vip_not_served",
        ),
        ("nested ipip", ipip(vip, CIP, &good), "nested_tunnel"),
        (
            "nested gre",
            packets::raw_inner(vip, CIP, 47, &[]),
            "nested_tunnel",
        ),
        ("ttl 1", udp(vip, CIP, 1, 64), "ttl_expired"),
        (
            "source route",
            packets::raw_inner(vip, CIP, 17, &lsrr),
            "source_route",
        ),
        ("garbage inner", garbage, "malformed_inner"),
        ("inner length lies", inner_length_lies, "malformed_inner"),
        (
            "inner ihl past its length",
            inner_ihl_lies,
            "malformed_inner",
        ),
        ("inner ihl below 5", inner_ihl_short, "malformed_inner"),
        ("inner checksum", inner_bad_sum, "bad_inner_checksum"),
    ];
    cases
        .into_iter()
        .map(|(name, inner, reason)| (name.to_string(), from_rs(&wrap(&inner)), reason))
        .collect()
}

/// The outer-header cases of the IPIP suite on a good tunnel packet `ip`.
fn outer_cases(ip: &[u8]) -> Vec<(String, Vec<u8>, &'static str)> {
    let frame = from_rs(ip);
    vec![
        (
            "truncated frame".into(),
            frame[..40].to_vec(),
            "malformed_outer",
        ),
        (
            "outer length lies".into(),
            edit(ip, 3, ip[3].wrapping_add(40), true),
            "malformed_outer",
        ),
        (
            "outer checksum".into(),
            edit(ip, 11, ip[11] ^ 0xff, false),
            "bad_outer_checksum",
        ),
        (
            "outer fragment".into(),
            edit(ip, 6, 0x20, true),
            "outer_fragment",
        ),
    ]
}

fn every_hostile_gue_fou_and_gre_case_is_dropped_and_counted(io: IoPath) {
    let t = Topology::on(io);
    let mut tg = Tungate::start(&t.gw, &config(&t));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let stranger = Ipv4Addr::new(10, 0, 1, 9);
    let good = udp(VIP, CIP, 64, 64);
    let good_gue = gue(RIP, GIP, GUE_PORT, &good);
    let plain = udp(GRE_VIP, CIP, 64, 64);
    let good_gre = gre(GRE_RIP, GIP, None, false, &plain);
    let keyed = udp(KEYED_VIP, CIP, 64, 64);

    let mut cases = inner_cases(VIP, GRE_VIP, &|inner| gue(RIP, GIP, GUE_PORT, inner));
    cases.extend(inner_cases(GRE_VIP, VIP, &|inner| {
        gre(GRE_RIP, GIP, None, false, inner)
    }));
    cases.extend(inner_cases(FOU_VIP, VIP, &|inner| {
        fou(FOU_RIP, GIP, FOU_PORT, inner)
    }));
    cases.extend(outer_cases(&good_gue));
    cases.extend(outer_cases(&good_gre));
    let mut udp_long = good_gue.clone();
    udp_long[24..26].copy_from_slice(&((8 + 4 + good.len() + 1) as u16).to_be_bytes());
    let mut udp_short = good_gue.clone();
    udp_short[24..26].copy_from_slice(&7u16.to_be_bytes());
    let mut udp_bad_sum = good_gue.clone();
    udp_bad_sum[26] ^= 0x5a;
    let mut gre_bad_sum = gre(GRE_RIP, GIP, None, true, &plain);
    gre_bad_sum[30] ^= 1; // a payload byte: the GRE checksum no longer holds
    let tunnel_cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "gue from an unknown peer",
            gue(stranger, GIP, GUE_PORT, &good),
            "unknown_peer",
        ),
        (
            "gre from an unknown peer",
            gre(stranger, GIP, None, false, &good),
            "unknown_peer",
        ),
        (
            "gre to another address",
            gre(GRE_RIP, Ipv4Addr::new(10, 0, 1, 200), None, false, &plain),
            "wrong_gateway",
        ),
        (
            "ipip from the gue peer",
            ipip(RIP, GIP, &good),
            "wrong_tunnel",
        ),
        (
            "gre from the gue peer",
            gre(RIP, GIP, None, false, &good),
            "wrong_tunnel",
        ),
        (
            "gue from the gre peer",
            gue(GRE_RIP, GIP, GUE_PORT, &plain),
            "wrong_tunnel",
        ),
        (
            "ipip from the gre peer",
            ipip(GRE_RIP, GIP, &plain),
            "wrong_tunnel",
        ),
        (
            "fou to the gue port",
            fou(FOU_RIP, GIP, GUE_PORT, &udp(FOU_VIP, CIP, 64, 64)),
            "wrong_tunnel",
        ),
        (
            "gue to the fou port",
            gue(RIP, GIP, FOU_PORT, &good),
            "wrong_tunnel",
        ),
        ("udp length past the packet", udp_long, "bad_udp_length"),
        ("udp length below 8", udp_short, "bad_udp_length"),
        ("udp checksum", udp_bad_sum, "bad_udp_checksum"),
        (
            "gue control message",
            gue_with(RIP, GIP, GUE_PORT, [0x20, 0, 0, 0], &good),
            "bad_gue",
        ),
        (
            "gue optional fields",
            gue_with(RIP, GIP, GUE_PORT, [0x01, 4, 0, 0], &good),
            "bad_gue",
        ),
        (
            "gue flags",
            gue_with(RIP, GIP, GUE_PORT, [0, 4, 0x80, 0], &good),
            "bad_gue",
        ),
        (
            "gue version 2",
            gue_with(RIP, GIP, GUE_PORT, [0x80, 4, 0, 0], &good),
            "bad_gue",
        ),
        (
            "gue carrying tcp",
            gue_with(RIP, GIP, GUE_PORT, [0, 6, 0, 0], &good),
            "bad_gue",
        ),
        (
            "gre routing",
            gre_raw(GRE_RIP, GIP, [0x40, 0], 0x0800, None, &plain),
            "bad_gre",
        ),
        (
            "gre version 1",
            gre_raw(GRE_RIP, GIP, [0, 1], 0x0800, None, &plain),
            "bad_gre",
        ),
        (
            "gre carrying ethernet",
            gre_raw(GRE_RIP, GIP, [0, 0], 0x6558, None, &plain),
            "bad_gre",
        ),
        ("gre checksum", gre_bad_sum, "bad_gre_checksum"),
        (
            "gre key to an unkeyed peer",
            gre(GRE_RIP, GIP, Some(KEY), false, &plain),
            "wrong_gre_key",
        ),
        (
            "gre without the key",
            gre(KEYED_RIP, GIP, None, false, &keyed),
            "wrong_gre_key",
        ),
        (
            "gre with another key",
            gre(KEYED_RIP, GIP, Some(KEY ^ 1), false, &keyed),
            "wrong_gre_key",
        ),
    ];
    cases.extend(
        tunnel_cases
            .into_iter()
            .map(|(name, ip, reason)| (name.to_string(), from_rs(&ip), reason)),
    );
    let mut expected: std::collections::BTreeMap<&str, u64> = Default::default();
    for (_, frame, reason) in &cases {
        rs.send(frame);
        *expected.entry(reason).or_default() += 1;
    }
    // The host's own UDP to the gateway is not tungate's: neither taken nor counted.
    rs.send(&from_rs(&outer_udp(RIP, GIP, 5353, 53, &[0; 12], true)));
    // GUE to another address of the host is not a tunnel packet to GIP either.
    rs.send(&from_rs(&gue(
        RIP,
        Ipv4Addr::new(10, 0, 1, 200),
        GUE_PORT,
        &good,
    )));
    rs.send(&from_rs(&good_gue));
    rs.send(&from_rs(&good_gre));
    let got = client.receive_for(QUIET, to_client);
    let hex: Vec<String> = got
        .iter()
        .map(|f| hex::encode(&f[14..f.len().min(60)]))
        .collect();
    assert_eq!(got.len(), 2, "only the good packets are delivered: {hex:?}");
    assert_eq!(&got[0][14..], &with_ttl_decremented(&good)[..]);
    assert_eq!(&got[1][14..], &with_ttl_decremented(&plain)[..]);

    let c = tg.counters();
    assert_exactly_these_drops(&c, &expected);
    assert_eq!(tg.stop().0, 0);
}

crate::on_both_io_paths!(
    each_tunnel_type_is_forwarded_byte_for_byte,
    every_hostile_gue_fou_and_gre_case_is_dropped_and_counted,
);
