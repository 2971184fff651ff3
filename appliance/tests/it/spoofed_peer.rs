//! `peers[].check_source_mac` against the real `tungate` binary in namespaces `rs` — `gw` —
//! `client` (needs root): a third host on the real servers' network sending IPIP with a
//! peer's address as outer source (and the peer's VIP as inner source) from another MAC is
//! dropped and counted as `spoofed_peer` while the check is on, and forwarded when it is off;
//! the real peer is forwarded with the check on; a checked peer whose expected source is not
//! resolved is dropped (fail closed).

use std::net::Ipv4Addr;
use std::time::Duration;

use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, IoPath, RIP, RS_MAC, VIP};
use tungate_test_support::{FrameSocket, Topology, Tungate};

const QUIET: Duration = Duration::from_millis(400);
/// The spoofing host's MAC, on the same link as the real server.
const SPOOFER_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 0x66];
/// A second checked peer that no neighbour entry resolves, and its VIP.
const RIP2: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 3);
const VIP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 11);

/// A checked peer behind a router (the real server's address, RIP, routes its subnet),
/// and its VIP.
const RIP3: Ipv4Addr = Ipv4Addr::new(10, 9, 0, 5);
const VIP3: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 12);

/// `rs1` (RIP, VIP), `rs2` (RIP2, VIP2) and `rs3` (RIP3, VIP3), all with
/// `check_source_mac = check`.
fn config(t: &Topology, check: bool) -> String {
    format!(
        "{}check_source_mac = {check}\n\
         [[peers]]\nname = \"rs2\"\naddress = \"{RIP2}\"\nvips = [\"{VIP2}\"]\n\
         check_source_mac = {check}\n\
         [[peers]]\nname = \"rs3\"\naddress = \"{RIP3}\"\nvips = [\"{VIP3}\"]\n\
         check_source_mac = {check}\n",
        t.config("")
    )
}

/// IPv4 frames the client receives.
fn to_client(frame: &[u8]) -> bool {
    frame.len() >= 34 && frame[12..14] == [8, 0] && frame[30..34] == CIP.octets()
}

/// A reply tunnelled from `rip` for `vip`, sent from the Ethernet address `from`.
fn reply(from: [u8; 6], rip: Ipv4Addr, vip: Ipv4Addr, n: u16) -> Vec<u8> {
    ethernet(
        GW_RS_MAC,
        from,
        &ipip(rip, GIP, &udp(vip, CIP, 64, 16 + n as usize)),
    )
}

/// The drops counted under `reason` in the counters `c`.
fn drop_count(c: &serde_json::Value, reason: &str) -> u64 {
    c["drops"][reason].as_u64().unwrap_or(0)
}

/// The drops counted for `peer` under `reason` in the counters `c`.
fn peer_drops(c: &serde_json::Value, peer: &str, reason: &str) -> u64 {
    let peers = c["peers"].as_array().expect("the counters list peers");
    let p = peers
        .iter()
        .find(|p| p["name"] == peer)
        .unwrap_or_else(|| panic!("no peer {peer} in {c}"));
    p["drops"][reason].as_u64().unwrap_or(0)
}

fn a_spoofed_peer_is_dropped_with_the_check_and_forwarded_without(io: IoPath) {
    let t = Topology::on(io);
    // The binding an operator pins: the real server's MAC for its address.
    t.gw.ip(&[
        "neigh",
        "replace",
        &RIP.to_string(),
        "lladdr",
        "02:00:00:00:01:02",
        "dev",
        "g0",
        "nud",
        "permanent",
    ]);
    // rs3 sits behind RIP acting as its router: its frames must come from RIP's MAC.
    t.gw.ip(&[
        "route",
        "add",
        "10.9.0.0/24",
        "via",
        &RIP.to_string(),
        "dev",
        "g0",
    ]);
    let mut tg = Tungate::start(&t.gw, &config(&t, true));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");

    // Until the resolver has published the expected source, the check fails closed: send
    // the real server's reply until one arrives (the first ask also resolves the client).
    let mut warmed = false;
    for n in 0..25 {
        rs.send(&reply(RS_MAC, RIP, VIP, n));
        if !client.receive_for(QUIET, to_client).is_empty() {
            warmed = true;
            break;
        }
    }
    assert!(
        warmed,
        "the real peer's replies never arrived with the check on"
    );
    let before = tg.counters();

    // The spoofer: the peer's address and VIP, another MAC.
    for n in 0..5 {
        rs.send(&reply(SPOOFER_MAC, RIP, VIP, n));
    }
    assert_eq!(
        client.receive_for(QUIET, to_client).len(),
        0,
        "a spoofed reply reached the client"
    );
    // The real server, interleaved with more spoofed frames.
    for n in 0..5 {
        rs.send(&reply(RS_MAC, RIP, VIP, n));
        rs.send(&reply(SPOOFER_MAC, RIP, VIP, n));
    }
    let arrived = client.receive_for(QUIET, to_client);
    assert_eq!(arrived.len(), 5, "the real peer's replies, and only those");
    // A checked peer whose address has no neighbour entry: fail closed.
    for n in 0..3 {
        rs.send(&reply(RS_MAC, RIP2, VIP2, n));
    }
    assert_eq!(client.receive_for(QUIET, to_client).len(), 0);

    // Behind the router: the router's MAC passes (after the resolver learned it, fail
    // closed until then), another MAC does not.
    let mut routed = 0;
    for n in 0..25 {
        rs.send(&reply(RS_MAC, RIP3, VIP3, n));
        if !client.receive_for(QUIET, to_client).is_empty() {
            routed = n + 1;
            break;
        }
    }
    assert!(routed > 0, "rs3's replies through its router never arrived");
    let routed_before = tg.counters();
    for n in 0..4 {
        rs.send(&reply(SPOOFER_MAC, RIP3, VIP3, n));
    }
    assert_eq!(client.receive_for(QUIET, to_client).len(), 0);
    let routed_after = tg.counters();
    assert_eq!(
        peer_drops(&routed_after, "rs3", "spoofed_peer")
            - peer_drops(&routed_before, "rs3", "spoofed_peer"),
        4
    );

    let after = tg.counters();
    assert_eq!(
        drop_count(&after, "spoofed_peer")
            - drop_count(&before, "spoofed_peer")
            - u64::from(routed - 1),
        17,
        "10 spoofed + 3 unresolved + 4 spoofed behind the router: {after}"
    );
    assert!(peer_drops(&after, "rs1", "spoofed_peer") >= 10);
    assert_eq!(peer_drops(&after, "rs2", "spoofed_peer"), 3);
    // Frames that fail the check are not heard from the peer: it would look alive.
    assert_eq!(after["peers"][1]["packets"], 0, "{after}");

    // With the check off the same spoofed frames are forwarded: the outer source is the only
    // proof of a peer.
    tg.reload(&config(&t, false));
    let off_before = drop_count(&tg.counters(), "spoofed_peer");
    for n in 0..5 {
        rs.send(&reply(SPOOFER_MAC, RIP, VIP, n));
    }
    assert_eq!(client.receive_for(QUIET, to_client).len(), 5);
    assert_eq!(drop_count(&tg.counters(), "spoofed_peer"), off_before);
    assert_eq!(tg.stop().0, 0);
}

crate::on_both_io_paths!(a_spoofed_peer_is_dropped_with_the_check_and_forwarded_without,);
