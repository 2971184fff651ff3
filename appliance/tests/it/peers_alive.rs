//! Is this real server's tunnel alive? The real binary in namespaces `rs` — `gw` — `client`
//! (needs root) with two peers, traffic from one: its packets, bytes, drops by reason and
//! the time it was last heard from show in `/api/v1/stats`, `/metrics` and `tungate
//! status`; the other, silent longer than its `silent_after`, is shown as a warning there.

use std::net::Ipv4Addr;
use std::time::{Duration, SystemTime};

use tungate_test_support::http::Api;
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use tungate_test_support::wait::until;
use tungate_test_support::{FrameSocket, Topology, Tungate, process};

/// The second peer's address and VIP (nothing is ever sent from it).
const RIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
const VIP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

fn config(t: &Topology) -> String {
    format!(
        "{}silent_after = \"1h\"\n\
         [[peers]]\nname = \"rs2\"\naddress = \"{RIP2}\"\nvips = [\"{VIP2}\"]\nsilent_after = \"1s\"\n",
        t.config("")
    )
}

#[test]
fn a_peer_heard_from_is_counted_and_a_silent_one_is_a_warning() {
    let t = Topology::new();
    let tg = Tungate::start(&t.gw, &config(&t));
    let api = Api::new(&t.gw, "127.0.0.1:9080", None);
    let rs = FrameSocket::open(&t.rs, "r0");
    let before = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    let good = ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, &udp(VIP, CIP, 64, 100)));
    for _ in 0..5 {
        rs.send(&good);
    }
    // rs1 sends rs2's VIP: heard from, but dropped as vip_not_served (its drop, not rs2's).
    rs.send(&ethernet(
        GW_RS_MAC,
        RS_MAC,
        &ipip(RIP, GIP, &udp(VIP2, CIP, 64, 100)),
    ));
    let peer = |stats: &serde_json::Value, name: &str| {
        stats["peers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .cloned()
            .unwrap_or_else(|| panic!("no peer {name} in {stats}"))
    };
    // rs2 becomes silent once a second has passed with nothing from it.
    let mut stats = serde_json::Value::Null;
    until(
        Duration::from_secs(20),
        "rs1 counted and rs2 silent",
        || {
            stats = api.get("/api/v1/stats").json();
            peer(&stats, "rs1")["received_packets"] == 6 && peer(&stats, "rs2")["silent"] == true
        },
    );
    let rs1 = peer(&stats, "rs1");
    assert_eq!(rs1["address"], RIP.to_string());
    // Frames as read: Ethernet + outer + inner IPv4 + UDP + 100 bytes.
    assert_eq!(rs1["received_bytes"], 6 * (14 + 20 + 20 + 8 + 100), "{rs1}");
    assert_eq!(rs1["dropped"]["vip_not_served"], 1, "{rs1}");
    assert_eq!(rs1["silent"], false, "{rs1}");
    assert_eq!(rs1["silent_after_seconds"], 3600.0);
    let heard = rs1["last_heard_unix"].as_f64().expect("rs1 was heard from");
    assert!(
        heard >= before.floor() - 1.0,
        "last heard {heard}, sent after {before}"
    );
    let rs2 = peer(&stats, "rs2");
    assert_eq!(rs2["received_packets"], 0, "{rs2}");
    assert_eq!(rs2["last_heard_unix"], serde_json::Value::Null, "{rs2}");
    assert_eq!(rs2["dropped"]["vip_not_served"], 0, "{rs2}");

    let metrics = api.get("/metrics").text();
    for line in [
        "tungate_peer_received_packets_total{peer=\"rs1\"} 6",
        "tungate_peer_received_packets_total{peer=\"rs2\"} 0",
        "tungate_peer_dropped_packets_total{peer=\"rs1\",reason=\"vip_not_served\"} 1",
        "tungate_peer_silent{peer=\"rs1\"} 0",
        "tungate_peer_silent{peer=\"rs2\"} 1",
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "no {line:?} in\n{metrics}"
        );
    }
    assert!(
        metrics.contains("tungate_peer_last_heard_timestamp_seconds{peer=\"rs1\"} 1"),
        "{metrics}"
    );
    assert!(
        !metrics.contains("tungate_peer_last_heard_timestamp_seconds{peer=\"rs2\"}"),
        "never heard, no timestamp: {metrics}"
    );

    let (status, out, err) = process::run_to_end(&t.gw, &["status"]);
    assert_eq!(
        status, 0,
        "a silent peer is a warning, not a failure: {out}{err}"
    );
    assert!(out.contains("LAST HEARD"), "{out}");
    assert!(
        out.contains("WARNING: peer rs2 (10.0.1.3) silent for"),
        "{out}"
    );
    assert!(!out.contains("WARNING: peer rs1"), "{out}");
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn a_removed_peer_leaves_the_stats_and_an_api_peer_takes_silent_after() {
    let t = Topology::new();
    let mut tg = Tungate::start(&t.gw, &config(&t));
    let api = Api::new(&t.gw, "127.0.0.1:9080", Some(tg.token()));
    let names = |api: &Api| -> Vec<String> {
        api.get("/api/v1/stats").json()["peers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(names(&api), ["rs1", "rs2"]);
    tg.reload(&t.config(""));
    assert_eq!(names(&api), ["rs1"], "a removed peer is not reported");
    let put = api.put_json(
        "/api/v1/peers/rs3",
        &serde_json::json!({"address": "10.0.1.4", "silent_after": "2m"}),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.json()["silent_after"], "2m");
    let stats = api.get("/api/v1/stats").json();
    assert_eq!(stats["peers"][1]["silent_after_seconds"], 120.0, "{stats}");
    let bad = api.put_json(
        "/api/v1/peers/rs4",
        &serde_json::json!({"address": "10.0.1.5", "silent_after": "soon"}),
    );
    assert_eq!(bad.status, 400, "{}", bad.text());
    assert!(bad.text().contains("not a duration"), "{}", bad.text());
    assert_eq!(tg.stop().0, 0);
}
