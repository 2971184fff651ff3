//! `tungate run` on the AF_XDP path (`gateway.io = "xdp"`: tungate's XDP program on the
//! ingress veth, AF_XDP sockets, transmit from the shared UMEM) on the host kernel, in
//! namespaces `rs` — `gw` — `client` (needs root): the gateway host keeps its own traffic
//! (ping and TCP to its ingress address) while it forwards, a peer added through the API is
//! accepted within one apply and a removed one dropped, `kill -9` leaves no XDP program on
//! the interface, the program's drops show in `/metrics`, and a restart under traffic sends
//! no ICMP towards the real server.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tungate_test_support::flood::BulkSender;
use tungate_test_support::http::Api;
use tungate_test_support::icmp::IcmpWatch;
use tungate_test_support::packets::with_ttl_decremented;
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, IoPath, RIP, RS_MAC, VIP};
use tungate_test_support::wait;
use tungate_test_support::{FrameSocket, Topology, Tungate};

const QUIET: Duration = Duration::from_millis(400);
/// The `[gateway]` line that selects native XDP.
const XDP: &str = "io = \"xdp\"";
/// The admin API, on the gateway's ingress address (so a TCP connection to it crosses the
/// interface the XDP program is attached to).
const ADMIN_ON_GIP: &str = "10.0.1.1:9080";
/// A second real server's address on the `rs` side, and the VIP it serves.
const RIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
const VIP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

fn from_rs(ip: &[u8]) -> Vec<u8> {
    ethernet(GW_RS_MAC, RS_MAC, ip)
}

/// Frames the client receives that are IPv4 to CIP.
fn to_client(frame: &[u8]) -> bool {
    frame.len() >= 34 && frame[12..14] == [8, 0] && frame[30..34] == CIP.octets()
}

/// Whether `ip -d link show DEV` in the gateway namespace shows an XDP program.
fn has_xdp(t: &Topology, dev: &str) -> bool {
    t.gw.ip(&["-d", "link", "show", "dev", dev])
        .contains("prog/xdp")
}

/// Sends `n` replies of `vip` tunnelled from `source` and returns how many reached the
/// client.
fn delivered_of(t: &Topology, source: Ipv4Addr, vip: Ipv4Addr, n: usize) -> usize {
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    for _ in 0..n {
        rs.send(&from_rs(&ipip(source, GIP, &udp(vip, CIP, 64, 64))));
    }
    client.receive_for(QUIET, to_client).len()
}

/// [`delivered_of`] for the VIP of peer `rs1`.
fn delivered(t: &Topology, source: Ipv4Addr, n: usize) -> usize {
    delivered_of(t, source, VIP, n)
}

/// The value of the sample line that starts with `name_and_labels` (0 if none).
fn metric(text: &str, name_and_labels: &str) -> u64 {
    text.lines()
        .find(|l| l.starts_with(name_and_labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn the_gateway_answers_ping_and_tcp_on_its_ingress_address_while_forwarding() {
    let t = Topology::new();
    let mut tg = Tungate::start_with(&t.gw, &t.config(XDP), &["--admin-listen", ADMIN_ON_GIP]);
    assert!(has_xdp(&t, "g0"), "the XDP program is attached");
    let api = Api::new(&t.rs, ADMIN_ON_GIP, Some(tg.token()));
    let sender = BulkSender::open(&t.rs, "r0");
    let frame = from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 64)));
    let order = vec![0usize; 1024];
    let stop = AtomicBool::new(false);
    let (sent, ping, status) = std::thread::scope(|s| {
        let flood = s.spawn(|| {
            let mut sent = 0;
            while !stop.load(Ordering::Relaxed) {
                let deadline = Instant::now() + Duration::from_millis(200);
                sent += sender.send(std::slice::from_ref(&frame), &order, None, deadline);
            }
            sent
        });
        // Ping and TCP (the admin API) to the ingress address while the flood runs.
        let ping = t.rs.exec(
            "ping",
            &["-c", "3", "-i", "0.2", "-W", "2", &GIP.to_string()],
        );
        let status = api.get("/api/v1/stats");
        stop.store(true, Ordering::Relaxed);
        (flood.join().unwrap(), ping, status)
    });
    assert!(
        ping.status.success(),
        "ping: {}",
        String::from_utf8_lossy(&ping.stdout)
    );
    assert_eq!(status.status, 200, "TCP to the ingress address");
    assert!(sent > 0);
    let c = tg.counters();
    assert!(
        c["tx_packets"].as_u64().unwrap() > 0,
        "it forwarded meanwhile: {c}"
    );
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn a_peer_added_through_the_api_is_accepted_at_once_and_a_removed_one_dropped() {
    let t = Topology::new();
    t.rs.ip(&["addr", "add", &format!("{RIP2}/24"), "dev", "r0"]);
    let tg = Tungate::start(&t.gw, &t.config(XDP));
    let api = Api::new(&t.gw, "127.0.0.1:9080", Some(tg.token()));
    assert_eq!(tg.status()["io"]["path"], "xdp", "{}", tg.status());
    assert_eq!(delivered(&t, RIP, 3), 3, "the configured peer");
    assert_eq!(delivered_of(&t, RIP2, VIP2, 3), 0, "not a peer yet");
    let put = api.put_json(
        "/api/v1/peers/rs2",
        &json!({"address": RIP2.to_string(), "vips": [VIP2.to_string()]}),
    );
    assert!(
        put.status / 100 == 2,
        "{}",
        String::from_utf8_lossy(&put.body)
    );
    assert_eq!(
        delivered_of(&t, RIP2, VIP2, 3),
        3,
        "accepted once the apply returned"
    );
    let delete = api.delete("/api/v1/peers/rs2");
    assert!(delete.status / 100 == 2);
    assert_eq!(delivered_of(&t, RIP2, VIP2, 3), 0, "dropped once removed");
    assert_eq!(delivered(&t, RIP, 3), 3, "the other peer untouched");
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn kill_9_leaves_no_xdp_program_on_the_interface() {
    let t = Topology::new();
    let mut tg = Tungate::start(&t.gw, &t.config(XDP));
    assert!(has_xdp(&t, "g0"), "attached while it runs");
    assert_eq!(delivered(&t, RIP, 2), 2);
    assert!(tg.is_running());
    tg.kill9();
    wait::until(Duration::from_secs(10), "the XDP program gone", || {
        !has_xdp(&t, "g0")
    });
}

#[test]
fn the_programs_drops_appear_in_metrics() {
    let t = Topology::new();
    let tg = Tungate::start(&t.gw, &t.config(XDP));
    let stranger = Ipv4Addr::new(10, 0, 1, 77);
    t.rs.ip(&["addr", "add", &format!("{stranger}/24"), "dev", "r0"]);
    assert_eq!(delivered(&t, stranger, 5), 0);
    let api = Api::new(&t.gw, "127.0.0.1:9080", Some(tg.token()));
    let text = String::from_utf8(api.get("/metrics").body).unwrap();
    assert!(
        metric(
            &text,
            "tungate_dropped_packets_total{reason=\"unknown_peer\"}"
        ) >= 5,
        "{text}"
    );
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn a_restart_under_traffic_sends_no_icmp_towards_the_peer() {
    let t = Topology::new();
    let config = t.config(XDP);
    let tg = Tungate::start(&t.gw, &config);
    let icmp = IcmpWatch::open(&t.rs);
    let rs = FrameSocket::open(&t.rs, "r0");
    let frame = from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 64)));
    for _ in 0..20 {
        rs.send(&frame);
    }
    assert_eq!(tg.stop().0, 0);
    // Between the two runs: no program, the fence alone.
    for _ in 0..20 {
        rs.send(&frame);
    }
    let tg = Tungate::start(&t.gw, &config);
    for _ in 0..20 {
        rs.send(&frame);
    }
    std::thread::sleep(QUIET);
    let errors = icmp
        .messages()
        .iter()
        .filter(|(kind, _, _)| *kind == 3)
        .count();
    assert_eq!(errors, 0, "ICMP went back to the real server");
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn a_reload_that_changes_gateway_io_detaches_and_attaches_the_program() {
    let t = Topology::on(IoPath::Xdp);
    let on_xdp = t.config("");
    let on_packet = on_xdp.replace("io = \"xdp\"", "io = \"packet\"");
    let mut tg = Tungate::start(&t.gw, &on_xdp);
    assert!(has_xdp(&t, "g0"));
    assert_eq!(delivered(&t, RIP, 3), 3);
    tg.reload(&on_packet);
    assert_eq!(tg.status()["io"]["path"], "packet", "{}", tg.status());
    assert!(!has_xdp(&t, "g0"), "detached on the packet path");
    assert_eq!(delivered(&t, RIP, 3), 3, "forwards on the packet rings");
    tg.reload(&on_xdp);
    assert_eq!(tg.status()["io"]["path"], "xdp", "{}", tg.status());
    assert!(has_xdp(&t, "g0"), "attached again");
    assert_eq!(delivered(&t, RIP, 3), 3, "forwards on AF_XDP again");
    assert_eq!(tg.stop().0, 0);
}

/// The id of the XDP program on `dev` of the gateway namespace, and its mode (`xdp`,
/// `xdpgeneric`), from `ip -j -d link`.
fn xdp_program(t: &Topology, dev: &str) -> Option<(u64, String)> {
    let links = t.gw.ip_json(&["-d", "link", "show", "dev", dev]);
    let xdp = &links[0]["xdp"];
    let id = xdp["prog"]["id"].as_u64()?;
    let mode = match xdp["mode"].as_u64() {
        Some(1) => "xdp",
        Some(2) => "xdpgeneric",
        _ => "other",
    };
    Some((id, mode.to_owned()))
}

#[test]
fn an_io_change_that_fails_through_the_api_puts_the_program_in_force_back() {
    let t = Topology::new();
    // A veth whose peer's MTU is above 3506 refuses a native (non-multi-buffer) XDP
    // program; generic XDP attaches.
    t.rs.ip(&["link", "set", "dev", "r0", "mtu", "9000"]);
    let tg = Tungate::start(&t.gw, &t.config("io = \"xdp-generic\""));
    let api = Api::new(&t.gw, "127.0.0.1:9080", Some(tg.token()));
    let before = xdp_program(&t, "g0").expect("generic XDP attached");
    assert_eq!(before.1, "xdpgeneric");
    assert_eq!(tg.status()["io"]["path"], "xdp-generic", "{}", tg.status());
    assert_eq!(delivered(&t, RIP, 3), 3);

    let mut config = api.get("/api/v1/config").json();
    config["gateway"]["io"] = json!("xdp");
    let r = api.put_json("/api/v1/config", &config);
    assert!(r.status / 100 != 2, "native XDP cannot attach: refused");
    let error = r.json();
    assert_eq!(error["error"]["field"], "gateway.io", "{error}");
    let message = error["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("MTU"), "says why: {message}");

    assert_eq!(
        xdp_program(&t, "g0"),
        Some(before),
        "the same program, attached again in its mode"
    );
    let status = tg.status();
    assert_eq!(status["io"]["path"], "xdp-generic", "{status}");
    assert_eq!(
        api.get("/api/v1/config").json()["gateway"]["io"],
        "xdp-generic",
        "the document in force stays"
    );
    // The program redirects to the sockets registered in its map before the attempt: were
    // it a new program, or the old one without them, nothing would arrive (rx_overflow).
    assert_eq!(delivered(&t, RIP, 3), 3, "forwards on AF_XDP as before");
    // The peers in force are still in the program: a stranger is dropped there.
    let stranger = Ipv4Addr::new(10, 0, 1, 77);
    t.rs.ip(&["addr", "add", &format!("{stranger}/24"), "dev", "r0"]);
    assert_eq!(delivered(&t, stranger, 2), 0);
    let text = String::from_utf8(api.get("/metrics").body).unwrap();
    assert!(
        metric(
            &text,
            "tungate_dropped_packets_total{reason=\"unknown_peer\"}"
        ) >= 2,
        "{text}"
    );
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn auto_takes_native_xdp_on_a_veth_and_the_packet_rings_where_it_cannot_attach() {
    let t = Topology::new();
    // A veth has native XDP: `auto` takes it (partial checksums from local senders are
    // finished by tungate, see forwarding::replies_sent_with_checksum_offload_*).
    let tg = Tungate::start(&t.gw, &t.config("io = \"auto\""));
    let status = tg.status();
    assert_eq!(status["io"]["path"], "xdp", "{status}");
    let reason = status["io"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("native XDP attached to g0"), "{reason}");
    assert!(has_xdp(&t, "g0"));
    assert_eq!(delivered(&t, RIP, 3), 3, "it forwards on AF_XDP");
    assert_eq!(tg.stop().0, 0);

    // A veth whose peer's MTU is above 3506 refuses a (non-multi-buffer) XDP program.
    t.rs.ip(&["link", "set", "dev", "r0", "mtu", "9000"]);
    let tg = Tungate::start(&t.gw, &t.config("io = \"auto\""));
    let status = tg.status();
    assert_eq!(status["io"]["path"], "packet", "{status}");
    let reason = status["io"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("XDP is unavailable"), "{reason}");
    assert!(!has_xdp(&t, "g0"));
    assert_eq!(delivered(&t, RIP, 3), 3, "it forwards on the packet rings");
    assert_eq!(tg.stop().0, 0);
}

/// A frame larger than a UMEM frame (2048 bytes) but within the veth's XDP limit: the XDP
/// program passes it to the kernel and the TPACKET socket beside the AF_XDP one forwards it.
fn a_frame_larger_than_a_umem_frame_still_arrives(io: IoPath) {
    let t = Topology::on(io);
    for (ns, dev) in [
        (&t.rs, "r0"),
        (&t.gw, "g0"),
        (&t.gw, "g1"),
        (&t.client, "c0"),
    ] {
        ns.ip(&["link", "set", "dev", dev, "mtu", "3000"]);
    }
    let mut tg = Tungate::start(&t.gw, &t.config(""));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let inner = udp(VIP, CIP, 64, 2400);
    let mut got = Vec::new();
    // Twice: the raw fallback first (neighbour unresolved), then the transmit ring.
    for _ in 0..2 {
        rs.send(&from_rs(&ipip(RIP, GIP, &inner)));
        got.extend(client.receive_for(QUIET, to_client));
    }
    assert_eq!(got.len(), 2, "both large replies arrived");
    for frame in &got {
        assert_eq!(&frame[14..], &with_ttl_decremented(&inner)[..]);
    }
    let c = tg.counters();
    assert_eq!(c["tx_packets"], 2, "{c}");
    // Counted as what took the TPACKET path beside AF_XDP: both received there, the
    // second sent there (the first left by the raw fallback); nothing on the packet path,
    // where the rings are the only path.
    let beside_xdp = u64::from(io == IoPath::Xdp);
    assert_eq!(c["tx_fallback_packets"], 1, "{c}");
    assert_eq!(c["rx_packet_path_packets"], 2 * beside_xdp, "{c}");
    assert_eq!(c["tx_packet_path_packets"], beside_xdp, "{c}");
    let metrics = Api::new(&t.gw, "127.0.0.1:9080", None)
        .get("/metrics")
        .text();
    assert_eq!(
        metric(&metrics, "tungate_received_packet_path_packets_total"),
        2 * beside_xdp,
        "{metrics}"
    );
    assert_eq!(
        metric(&metrics, "tungate_transmitted_packet_path_packets_total"),
        beside_xdp,
        "{metrics}"
    );
    assert_eq!(tg.stop().0, 0);
}

crate::on_both_io_paths!(a_frame_larger_than_a_umem_frame_still_arrives);
