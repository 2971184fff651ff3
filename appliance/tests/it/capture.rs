//! `tungate capture` and `GET /api/v1/capture` against the real binary in namespaces `rs` —
//! `gw` — `client` (needs root and `tshark`): frames dropped for known reasons (an unknown
//! peer, a wrong gateway address, a plugin's deny, TTL 1) are sent while captures run; the
//! files are opened with `tshark` and `capinfos` (Wireshark's readers, not ours), and each
//! packet's bytes and comment must match what was sent and why it was dropped; a packet that
//! passed is never in a capture that did not ask for passed ones. The API's refusals — bad
//! reason, count over the limit, no token, a fifth capture at once — are checked too.

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Child, Command};
use std::time::Duration;

use serde_json::{Value, json};
use tungate_test_support::http::Api;
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::topology::IoPath;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use tungate_test_support::wait::eventually;
use tungate_test_support::{FrameSocket, Topology, Tungate, machine, plugins};

const ADMIN: &str = "127.0.0.1:9080";
const QUIET: Duration = Duration::from_millis(400);
/// A client the plugin denies.
const DENIED: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 9);
/// An outer source that is no peer.
const STRANGER: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 9);
/// An outer destination that is not the gateway.
const NOT_GIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 200);

fn from_rs(ip: &[u8]) -> Vec<u8> {
    ethernet(GW_RS_MAC, RS_MAC, ip)
}

/// tungate with `cidr-filter` stored and bound to the VIP, denying `DENIED`'s prefix, and
/// the client's neighbour resolved.
fn start(t: &Topology, dir: &Path) -> (Tungate, Api) {
    t.gw.ip(&["addr", "add", "203.0.113.1/24", "dev", "g1"]);
    let path = dir.join("cidr-filter.wasm");
    std::fs::write(&path, plugins::plugin_wasm("cidr-filter")).unwrap();
    let tg = Tungate::start_with(&t.gw, &t.config(""), &["--plugin", path.to_str().unwrap()]);
    let api = Api::new(&t.gw, ADMIN, Some(tg.token()));
    let chain = json!([{"plugin": "cidr-filter", "config": {"deny": ["203.0.113.0/24"]}}]);
    let r = api.put_json(&format!("/api/v1/vips/{VIP}"), &json!({ "plugins": chain }));
    assert_eq!(r.status, 200, "{}", r.text());
    api.wait_filters_in_force();
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    rs.send(&from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 16))));
    assert_eq!(
        client.receive_for(QUIET, |f| f.len() > 33).len(),
        1,
        "warm-up"
    );
    (tg, api)
}

/// Starts `tungate capture ARGS -w file` in the gateway's namespace and waits until it says
/// it is capturing (the tap runs from then on). Returns the process and its stderr.
fn capture(
    t: &Topology,
    tg: &Tungate,
    args: &[&str],
    file: &Path,
) -> (Child, BufReader<std::process::ChildStderr>) {
    let token = tg.state_dir.join("admin-token");
    let mut all = vec!["capture", "--token-file", token.to_str().unwrap()];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-w", file.to_str().unwrap()]);
    let mut child = t.gw.spawn_tungate(&all);
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(
        line.contains("capturing"),
        "tungate capture {args:?}: {line}"
    );
    (child, stderr)
}

/// Waits for a capture to end by itself; its exit status must be 0.
fn finish(mut c: (Child, BufReader<std::process::ChildStderr>)) {
    let status = c.0.wait().unwrap();
    let mut rest = String::new();
    let _ = std::io::Read::read_to_string(&mut c.1, &mut rest);
    assert!(status.success(), "tungate capture: {status}: {rest}");
}

/// Each packet of a pcapng file as tshark reads it: (comment, frame bytes).
fn tshark(file: &Path) -> Vec<(String, Vec<u8>)> {
    let out = Command::new("tshark")
        .args(["-r", file.to_str().unwrap(), "-T", "json", "-x"])
        .output()
        .expect("tshark runs (apt-get install tshark)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let packets: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    packets
        .iter()
        .map(|p| {
            let layers = &p["_source"]["layers"];
            let comment = layers["frame"]["frame.comment"]
                .as_str()
                .or_else(|| layers["frame"]["frame.comment_tree"]["frame.comment"].as_str())
                .or_else(|| layers["pkt_comment"]["frame.comment"].as_str())
                .unwrap_or_else(|| panic!("no comment in {layers}"))
                .to_owned();
            let hex = layers["frame_raw"][0].as_str().expect("frame_raw");
            let bytes = (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
                .collect();
            (comment, bytes)
        })
        .collect()
}

/// The section header's comment, as `capinfos` reads it.
fn file_comment(file: &Path) -> String {
    let out = Command::new("capinfos")
        .args(["-k", file.to_str().unwrap()])
        .output()
        .expect("capinfos runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn dropped_packets_are_captured_as_sent_with_their_reasons_and_tshark_reads_them() {
    // The plugin's per-call deadline is wall time: run alone.
    let _serial = machine::alone();
    // The TPACKET path: on the AF_XDP path the outer checks (unknown_peer, wrong_gateway)
    // drop inside the XDP program, where packets are counted, not captured (documented).
    let t = Topology::on(IoPath::Packet);
    let dir = tempfile::tempdir().unwrap();
    let (tg, _api) = start(&t, dir.path());
    let all_file = dir.path().join("all.pcapng");
    let plugin_file = dir.path().join("plugin.pcapng");
    let reason_file = dir.path().join("reason.pcapng");
    let passed_file = dir.path().join("passed.pcapng");
    let all = capture(&t, &tg, &["--count", "4", "--seconds", "120"], &all_file);
    let by_plugin = capture(
        &t,
        &tg,
        &[
            "--plugin",
            "cidr-filter",
            "--count",
            "1",
            "--seconds",
            "120",
        ],
        &plugin_file,
    );
    let by_reason = capture(
        &t,
        &tg,
        &[
            "--reason",
            "wrong_gateway",
            "--count",
            "1",
            "--seconds",
            "120",
        ],
        &reason_file,
    );
    let passed = capture(
        &t,
        &tg,
        &[
            "--passed",
            "--vip",
            &VIP.to_string(),
            "--count",
            "3",
            "--seconds",
            "120",
        ],
        &passed_file,
    );

    let good = from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 64, 20)));
    let unknown_peer = from_rs(&ipip(STRANGER, GIP, &udp(VIP, CIP, 64, 21)));
    let wrong_gateway = from_rs(&ipip(RIP, NOT_GIP, &udp(VIP, CIP, 64, 22)));
    let denied = from_rs(&ipip(RIP, GIP, &udp(VIP, DENIED, 64, 23)));
    let ttl_expired = from_rs(&ipip(RIP, GIP, &udp(VIP, CIP, 1, 24)));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    for frame in [&good, &unknown_peer, &wrong_gateway, &denied, &ttl_expired] {
        rs.send(frame);
    }
    assert_eq!(
        client.receive_for(QUIET, |f| f.len() > 33).len(),
        1,
        "only the good reply arrives"
    );
    for c in [all, by_plugin, by_reason, passed] {
        finish(c);
    }

    let binding = format!("binding=vips[{VIP}].plugins[0]");
    let mut got = tshark(&all_file);
    got.sort_by(|a, b| a.0.cmp(&b.0));
    let mut want = vec![
        (
            format!("drop_reason=plugin vip={VIP} plugin=cidr-filter {binding}"),
            denied.clone(),
        ),
        (
            format!("drop_reason=ttl_expired vip={VIP}"),
            ttl_expired.clone(),
        ),
        ("drop_reason=unknown_peer".to_owned(), unknown_peer.clone()),
        (
            "drop_reason=wrong_gateway".to_owned(),
            wrong_gateway.clone(),
        ),
    ];
    want.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(got.len(), want.len(), "{got:?}");
    for ((comment, bytes), (prefix, sent)) in got.iter().zip(&want) {
        // The comment ends with the worker that saw it.
        assert!(
            comment.starts_with(&format!("{prefix} worker=")),
            "{comment:?} vs {prefix:?}"
        );
        assert_eq!(
            bytes, sent,
            "{prefix}: the frame as received, outer and inner headers"
        );
    }

    let p = tshark(&plugin_file);
    assert_eq!(p.len(), 1);
    assert!(
        p[0].0.contains("plugin=cidr-filter") && p[0].0.contains(&binding),
        "{p:?}"
    );
    assert_eq!(p[0].1, denied);
    let r = tshark(&reason_file);
    assert_eq!(r.len(), 1);
    assert!(r[0].0.starts_with("drop_reason=wrong_gateway "), "{r:?}");
    assert_eq!(r[0].1, wrong_gateway);
    // --passed --vip: the good reply (passed), the plugin's drop and TTL 1 (both attributed
    // to the VIP); the unknown peer's and the wrong gateway's drops have no VIP.
    let mut pv: Vec<(String, Vec<u8>)> = tshark(&passed_file);
    pv.sort_by(|a, b| a.0.cmp(&b.0));
    let comments: Vec<&str> = pv.iter().map(|(c, _)| c.as_str()).collect();
    assert_eq!(pv.len(), 3, "{comments:?}");
    assert!(
        comments[0].starts_with(&format!("drop_reason=plugin vip={VIP}")),
        "{comments:?}"
    );
    assert!(
        comments[1].starts_with(&format!("drop_reason=ttl_expired vip={VIP}")),
        "{comments:?}"
    );
    assert!(
        comments[2].starts_with(&format!("passed vip={VIP}")),
        "{comments:?}"
    );
    assert_eq!(
        pv[2].1, good,
        "a passed packet as received, before its TTL decrement"
    );

    let comment = file_comment(&all_file);
    assert!(
        comment.contains("Decap mode userspace") && comment.contains("XDP"),
        "{comment}"
    );
}

#[test]
fn the_api_refuses_bad_parameters_missing_tokens_and_a_fifth_capture() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = Tungate::start(&t.gw, &t.config(""));
    let api = Api::new(&t.gw, ADMIN, Some(tg.token()));

    let r = api.get("/api/v1/capture?reason=no_such_reason");
    assert_eq!(
        (r.status, r.error_code()),
        (400, "bad_request".into()),
        "{}",
        r.text()
    );
    assert_eq!(r.error_field(), "reason");
    let r = api.get("/api/v1/capture?count=100001");
    assert_eq!(
        (r.status, r.error_field()),
        (400, "count".into()),
        "{}",
        r.text()
    );
    let r = api.get("/api/v1/capture?seconds=301");
    assert_eq!(
        (r.status, r.error_field()),
        (400, "seconds".into()),
        "{}",
        r.text()
    );
    let r = api.get("/api/v1/capture?bogus=1");
    assert_eq!(r.status, 400, "{}", r.text());
    // Loopback reads need no token, captures do.
    let r = api.with_token(None).get("/api/v1/capture?seconds=1");
    assert_eq!((r.status, r.error_code()), (401, "unauthorized".into()));

    // Four captures at once, then 429 (from the API and from the CLI).
    let running: Vec<_> = (0..4)
        .map(|n| {
            let file = dir.path().join(format!("{n}.pcapng"));
            capture(&t, &tg, &["--seconds", "120"], &file)
        })
        .collect();
    let r = api.get("/api/v1/capture?seconds=1");
    assert_eq!(
        (r.status, r.error_code()),
        (429, "too_many_requests".into()),
        "{}",
        r.text()
    );
    let token = tg.state_dir.join("admin-token");
    let fifth = dir.path().join("fifth.pcapng");
    let out = t.gw.tungate(&[
        "capture",
        "--token-file",
        token.to_str().unwrap(),
        "-w",
        fifth.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert!(out.stderr.contains("429"), "{}", out.stderr);
    assert!(!fifth.exists(), "a refused capture leaves no file");

    // A client that goes away ends its capture: the slot is free again.
    for (mut child, _) in running {
        let _ = child.kill();
        let _ = child.wait();
    }
    assert!(
        eventually(Duration::from_secs(10), || {
            api.get("/api/v1/capture?seconds=1&count=1").status == 200
        }),
        "a capture runs again once the others' clients left"
    );
    let r = api.get("/api/v1/capture?seconds=1");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/x-pcapng"));
    assert_eq!(&r.body[..4], &[0x0A, 0x0D, 0x0D, 0x0A], "the pcapng magic");
}
