//! Hostile requests against the admin API of the real `tungate` binary in the netns
//! topology, while a numbered stream of replies flows through its data path (needs root):
//! a burst of thousands of concurrent mixed requests, unauthenticated writes on every write
//! path in every form a token might be smuggled in, path tricks in names, huge bodies, and
//! slow clients (slowloris heads, clients that never read their answers, a body dripped a
//! byte a second, more connections than the cap).
//!
//! What must hold: every reply of the stream arrives; no unauthenticated write is accepted
//! or changes the stored state; no file outside the state directory is touched; tungate's
//! memory and open connections stay bounded; other clients are served while slow ones hang
//! on; and tungate's own limits (header and write timeouts, body deadline, connection cap)
//! close what misbehaves. Expected answers come from the rules (README, SECURITY.md), not
//! from tungate's code.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use serde_json::json;
use tungate_test_support::http::Api;
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::plugins;
use tungate_test_support::plugins::pass_all_module;
use tungate_test_support::requests::{ADMIN, bearer, burst, exchange_here, request};
use tungate_test_support::stream::NumberedStream;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use tungate_test_support::{FrameSocket, Netns, Topology, Tungate};

/// The stream's rate: moderate, far below the data path's capacity.
const STREAM_PPS: u64 = 2_000;
/// How long the stream's receiver waits after the last reply.
const STREAM_QUIET: Duration = Duration::from_secs(3);
/// tungate's limits as documented (README "The admin API", SECURITY.md).
const JSON_LIMIT: usize = 1 << 20;
const MODULE_LIMIT: usize = 8 << 20;
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_TIMEOUT: Duration = Duration::from_secs(30);
const MAX_CONNECTIONS: usize = 256;

/// Starts tungate with the `accounting` plugin stored (under that name) and bound to VIP,
/// and resolves the client's neighbour so the stream takes the fast path from its start.
fn start(t: &Topology, dir: &Path) -> Tungate {
    let acc = dir.join("accounting.wasm");
    std::fs::write(&acc, plugins::plugin_wasm("accounting")).unwrap();
    let config = t.config(&format!(
        "[[vips]]\naddress = \"{VIP}\"\n[[vips.plugins]]\nplugin = \"accounting\"\n\
         config = {{ prefixes = [\"198.51.100.0/24\"] }}\n"
    ));
    let tg = Tungate::start_with(&t.gw, &config, &["--plugin", acc.to_str().unwrap()]);
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    rs.send(&ethernet(
        GW_RS_MAC,
        RS_MAC,
        &ipip(RIP, GIP, &udp(VIP, CIP, 64, 8)),
    ));
    assert_eq!(
        client
            .receive_for(Duration::from_millis(500), |f| f.len() > 34
                && f[30..34] == CIP.octets())
            .len(),
        1,
        "the warm-up reply arrives"
    );
    tg
}

/// A request body: its content type and bytes.
type Body<'a> = (&'a str, Vec<u8>);

/// Standard base64 (RFC 4648) of `bytes`, for Basic credentials.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Every regular file under `root` with its size and modification time.
fn tree(root: &Path) -> BTreeMap<PathBuf, (u64, std::time::SystemTime)> {
    let mut files = BTreeMap::new();
    let mut dirs = vec![root.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                dirs.push(entry.path());
            } else {
                files.insert(entry.path(), (meta.len(), meta.modified().unwrap()));
            }
        }
    }
    files
}

/// The stored state as bytes: the document, the plugin index and the module files.
fn stored_state(state_dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut state = BTreeMap::new();
    state.insert(
        "config.json".into(),
        std::fs::read(state_dir.join("config.json")).unwrap(),
    );
    for entry in std::fs::read_dir(state_dir.join("plugins")).unwrap() {
        let entry = entry.unwrap();
        let name = format!("plugins/{}", entry.file_name().to_string_lossy());
        state.insert(name, std::fs::read(entry.path()).unwrap());
    }
    state
}

/// tungate's open file descriptors that are sockets.
fn socket_fds(tg: &Tungate) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", tg.pid()))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.to_string_lossy().starts_with("socket:"))
        .count()
}

#[test]
fn a_burst_of_requests_while_traffic_flows_loses_no_reply_and_accepts_no_unauthenticated_write() {
    const THREADS: usize = 16;
    const PER_THREAD: usize = 250;
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&t, dir.path());
    let token = tg.token();
    let rss_before = tg.rss_kib();
    let stream = NumberedStream::start(&t, STREAM_PPS, STREAM_QUIET);
    let started = Instant::now();
    let outcome = burst(
        &t.gw.name,
        &token,
        THREADS,
        PER_THREAD,
        &Arc::new(AtomicBool::new(false)),
    );
    let burst_time = started.elapsed();
    let delivered = stream.finish();
    eprintln!(
        "burst: {} requests in {burst_time:?} by {THREADS} threads: {:?}; stream: {} \
         replies sent, {} received",
        outcome.total(),
        outcome.seen,
        delivered.sent,
        delivered.received.len()
    );
    assert_eq!(outcome.total(), THREADS * PER_THREAD);
    assert_eq!(
        outcome.unexpected,
        Vec::<String>::new(),
        "every answer as the rules say"
    );
    assert_eq!(
        outcome.unauthenticated_accepted(),
        0,
        "unauthenticated writes accepted"
    );
    assert!(delivered.sent > 1000, "the stream ran during the burst");
    assert_eq!(
        delivered.missing(),
        0,
        "every reply of the stream delivered during the burst"
    );
    assert!(delivered.complete(), "replies arrive in order, none twice");

    // Afterwards: what the authorised writes left is exactly what the rules give (each
    // thread's last peer and plugin operations were deletions).
    let api = Api::new(&t.gw, ADMIN, None);
    let peers: Vec<String> = api
        .get("/api/v1/peers")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(peers, ["rs1"]);
    let plugins: BTreeSet<String> = api
        .get("/api/v1/plugins")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(plugins, BTreeSet::from(["accounting".to_owned()]));
    let rss_after = tg.rss_kib();
    eprintln!("tungate RSS: {rss_before} KiB before the burst, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn unauthenticated_writes_on_every_write_path_in_every_form_are_refused_and_change_nothing() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&t, dir.path());
    let token = tg.token();
    let api = Api::new(&t.gw, ADMIN, Some(token.clone()));
    let config_before = api.get("/api/v1/config").json();
    let generation_before = api.get("/api/v1/status").json()["config_generation"].clone();
    let state_before = stored_state(&tg.state_dir);

    // Bodies that would be accepted with the token, so a bypass would show.
    let mut changed = config_before.clone();
    changed["peers"][0]["vips"] = json!([]);
    changed["vips"] = json!([]);
    let module = pass_all_module("smuggled");
    let writes: Vec<(&str, String, Option<Body>)> = vec![
        (
            "PUT",
            "api/v1/config".into(),
            Some(("application/json", changed.to_string().into_bytes())),
        ),
        (
            "PUT",
            "api/v1/peers/rs9".into(),
            Some(("application/json", br#"{"address":"10.0.1.9"}"#.to_vec())),
        ),
        ("DELETE", "api/v1/peers/rs1".into(), None),
        (
            "PUT",
            format!("api/v1/vips/{VIP}"),
            Some(("application/json", br#"{"plugins":[]}"#.to_vec())),
        ),
        ("DELETE", format!("api/v1/vips/{VIP}"), None),
        (
            "PUT",
            "api/v1/plugins/smuggled".into(),
            Some(("application/wasm", module.clone())),
        ),
        (
            "PUT",
            "api/v1/plugins/accounting".into(),
            Some(("application/wasm", module.clone())),
        ),
        ("DELETE", "api/v1/plugins/accounting".into(), None),
        (
            "POST",
            "api/v1/plugins/smuggled".into(),
            Some(("application/wasm", module.clone())),
        ),
        (
            "PATCH",
            "api/v1/config".into(),
            Some(("application/json", changed.to_string().into_bytes())),
        ),
    ];
    let hex_token = &token;
    let credentials: Vec<(&str, Vec<String>, String)> = vec![
        ("no token", vec![], String::new()),
        (
            "wrong token",
            vec![bearer("0123456789abcdef0123456789abcdef")],
            String::new(),
        ),
        (
            "token one character longer",
            vec![bearer(&format!("{hex_token}0"))],
            String::new(),
        ),
        (
            "token one character short",
            vec![bearer(&hex_token[..hex_token.len() - 1])],
            String::new(),
        ),
        ("token in the query", vec![], format!("?token={hex_token}")),
        (
            "access_token in the query",
            vec![],
            format!("?access_token={hex_token}"),
        ),
        (
            "authorization in the query",
            vec![],
            format!("?authorization=Bearer%20{hex_token}"),
        ),
        (
            "basic auth, token as password",
            vec![format!(
                "Authorization: Basic {}",
                base64(format!("admin:{hex_token}").as_bytes())
            )],
            String::new(),
        ),
        (
            "basic auth, token as user",
            vec![format!(
                "Authorization: Basic {}",
                base64(format!("{hex_token}:").as_bytes())
            )],
            String::new(),
        ),
        (
            "token without a scheme",
            vec![format!("Authorization: {hex_token}")],
            String::new(),
        ),
        (
            "token with another scheme",
            vec![format!("Authorization: Token {hex_token}")],
            String::new(),
        ),
        (
            "token in a cookie",
            vec![format!("Cookie: token={hex_token}")],
            String::new(),
        ),
        (
            "token in X-Api-Key",
            vec![format!("X-Api-Key: {hex_token}")],
            String::new(),
        ),
        (
            "wrong token first, right one second",
            vec![bearer("0123456789abcdef-wrong"), bearer(hex_token)],
            String::new(),
        ),
    ];
    let paths: [fn(&str) -> String; 9] = [
        |p| format!("/{p}"),
        |p| format!("//{p}"),
        |p| format!("/{}", p.replacen("v1/", "v1//", 1)),
        |p| format!("/{p}/"),
        |p| format!("/{}", p.replacen("api", "API", 1)),
        |p| format!("/{}", p.replacen("v1/", "v1/./", 1)),
        |p| format!("/{}", p.replacen("v1/", "v1/x/../", 1)),
        |p| format!("/{}", p.replacen("api", "%61pi", 1)),
        |p| format!("http://{ADMIN}/{p}"),
    ];
    let mut requests = Vec::new();
    for (method, path, body) in &writes {
        for (what, headers, query) in &credentials {
            for (variant, make) in paths.iter().enumerate() {
                let mut headers = headers.clone();
                let bytes = match body {
                    Some((content_type, b)) => {
                        headers.push(format!("Content-Type: {content_type}"));
                        b.clone()
                    }
                    None => Vec::new(),
                };
                let target = format!("{}{query}", make(path));
                requests.push((
                    format!("{method} {target} ({what}, path form {variant})"),
                    request(method, &target, &headers, &bytes),
                ));
            }
        }
    }
    let total = requests.len();
    let answers: Vec<(String, Option<u16>)> = t.gw.run(move || {
        requests
            .into_iter()
            .map(|(what, bytes)| (what, exchange_here(&bytes).map(|(s, _)| s)))
            .collect()
    });
    let mut by_status: BTreeMap<u16, usize> = BTreeMap::new();
    let mut wrong = Vec::new();
    for (what, status) in &answers {
        let status = status.unwrap_or(0);
        *by_status.entry(status).or_default() += 1;
        // 401 where the route exists; 404/405 where the path names no API route at all.
        if ![401, 404, 405].contains(&status) {
            wrong.push(format!("{what}: {status}"));
        }
    }
    eprintln!("{total} unauthenticated write attempts: statuses {by_status:?}");
    assert_eq!(wrong, Vec::<String>::new(), "refused with 401, 404 or 405");
    assert_eq!(total, 10 * 14 * 9);
    assert_eq!(
        api.get("/api/v1/config").json(),
        config_before,
        "the document is unchanged"
    );
    assert_eq!(
        api.get("/api/v1/status").json()["config_generation"],
        generation_before,
        "no change was applied"
    );
    assert_eq!(
        stored_state(&tg.state_dir),
        state_before,
        "the stored state is unchanged"
    );
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn path_tricks_in_names_get_400_or_404_and_touch_no_file_outside_the_state_dir() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&t, dir.path());
    let token = tg.token();
    let api = Api::new(&t.gw, ADMIN, Some(token.clone()));
    // Files a write escaping the state directory would hit: next to it, above it, and in
    // the shared temporary directory.
    let root = tg.state_dir.parent().unwrap().to_owned();
    let marker = format!("tg-escape-{}", std::process::id());
    std::fs::write(root.join("tungate.toml.bak"), b"sentinel").unwrap();
    let before = tree(&root);
    let config_before = api.get("/api/v1/config").json();
    let state_before = stored_state(&tg.state_dir);

    let long = "a".repeat(65);
    let very_long = "a".repeat(5000);
    let names: Vec<String> = vec![
        "..".into(),
        ".".into(),
        "%2e%2e".into(),
        "%2E%2E".into(),
        ".%2e".into(),
        "%2e%2e%2f%2e%2e%2findex.json".into(),
        format!("..%2F..%2F..%2F..%2F..%2F..%2Ftmp%2F{marker}"),
        format!("%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2ftmp%2f{marker}"),
        "..%2Fconfig.json".into(),
        "a%2Fb".into(),
        "%2Findex.json".into(),
        "..%5C..%5Cwindows".into(),
        "%252e%252e%252f".into(),
        "a%00b".into(),
        "%00".into(),
        "index.json%00.wasm".into(),
        long.clone(),
        very_long.clone(),
        "%C0%AE%C0%AE".into(),        // overlong UTF-8 for ".."
        "%EF%BC%8E%EF%BC%8E".into(),  // fullwidth full stops
        "%E2%80%A4%E2%80%A4".into(),  // one-dot leaders
        "a%E2%88%95b".into(),         // division slash
        "%D0%B0ccounting".into(),     // Cyrillic a: looks like "accounting"
        "accounting%E2%80%8B".into(), // zero-width space after it
        ".hidden".into(),
        "name%20with%20space".into(),
        "%FF".into(), // not UTF-8
    ];
    let module = pass_all_module("tricks");
    let mut wrong = Vec::new();
    let mut statuses: BTreeMap<u16, usize> = BTreeMap::new();
    for name in &names {
        for resource in ["plugins", "peers", "vips"] {
            let target = format!("/api/v1/{resource}/{name}");
            let attempts = [
                api.get(&target),
                api.delete(&target),
                match resource {
                    "plugins" => api.put_wasm(&target, &module),
                    "peers" => api.put_json(&target, &json!({"address": "10.0.1.9"})),
                    _ => api.put_json(&target, &json!({"plugins": []})),
                },
            ];
            for (method, r) in ["GET", "DELETE", "PUT"].iter().zip(attempts) {
                *statuses.entry(r.status).or_default() += 1;
                if ![400, 404].contains(&r.status) {
                    wrong.push(format!("{method} {target}: {} {}", r.status, r.text()));
                }
            }
        }
    }
    eprintln!("{} path tricks: statuses {statuses:?}", names.len() * 9);
    assert_eq!(
        wrong,
        Vec::<String>::new(),
        "every trick answered 400 or 404"
    );
    assert!(
        !Path::new("/tmp").join(&marker).exists(),
        "a file escaped to /tmp/{marker}"
    );
    assert_eq!(
        tree(&root),
        before,
        "no file around the state dir created or changed"
    );
    assert_eq!(api.get("/api/v1/config").json(), config_before);
    assert_eq!(stored_state(&tg.state_dir), state_before);

    // Names that are also file names of the state directory are only names: modules are
    // stored under their sha256, so they overwrite nothing.
    for name in ["index.json", "config.json", "admin-token", "lock"] {
        let r = api.put_wasm(&format!("/api/v1/plugins/{name}"), &module);
        assert_eq!(r.status, 200, "{name}: {}", r.text());
    }
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(tg.state_dir.join("plugins/index.json")).unwrap())
            .unwrap();
    assert!(index["index.json"]["sha256"].is_string(), "{index}");
    assert_eq!(
        std::fs::read(tg.state_dir.join("config.json")).unwrap(),
        state_before["config.json"],
        "config.json is the stored document still"
    );
    assert_eq!(tg.token(), token, "the token file is untouched");
    let r = Api::new(&t.gw, ADMIN, Some(token.clone())).get("/api/v1/auth");
    assert_eq!(r.status, 204);
    assert_eq!(tg.stop().0, 0);
}

/// Sends a request head announcing `content_length` (or chunked when `None`) for a body
/// of `body_bytes` bytes (written in 64 KiB pieces, then `chunked_end` decides whether a
/// chunked body is ended), and reads the answer while writing: the status, or `None`.
fn oversize(head: &str, content_length: Option<u64>, body_bytes: usize) -> Option<u16> {
    let mut s = TcpStream::connect(ADMIN).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let mut head = head.to_owned();
    match content_length {
        Some(n) => head.push_str(&format!("Content-Length: {n}\r\n\r\n")),
        None => head.push_str("Transfer-Encoding: chunked\r\n\r\n"),
    }
    s.write_all(head.as_bytes()).ok()?;
    let mut reader = s.try_clone().ok()?;
    let answer = std::thread::spawn(move || {
        let mut data = Vec::new();
        let mut buf = [0u8; 4096];
        while !data.windows(4).any(|w| w == b"\r\n\r\n") {
            match reader.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => data.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&data)
            .split(' ')
            .nth(1)
            .and_then(|c| c.parse::<u16>().ok())
    });
    let piece = vec![b'x'; 64 * 1024];
    let mut written = 0;
    while written < body_bytes && !answer.is_finished() {
        let n = piece.len().min(body_bytes - written);
        let ok = match content_length {
            Some(_) => s.write_all(&piece[..n]).is_ok(),
            None => s
                .write_all(format!("{n:x}\r\n").as_bytes())
                .and_then(|()| s.write_all(&piece[..n]))
                .and_then(|()| s.write_all(b"\r\n"))
                .is_ok(),
        };
        if !ok {
            break;
        }
        written += n;
    }
    answer.join().ok().flatten()
}

#[test]
fn huge_bodies_get_413_and_memory_stays_bounded() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&t, dir.path());
    let token = tg.token();
    let targets: [(&str, &str, usize); 4] = [
        ("/api/v1/config", "application/json", JSON_LIMIT),
        ("/api/v1/peers/big", "application/json", JSON_LIMIT),
        ("/api/v1/vips/192.0.2.77", "application/json", JSON_LIMIT),
        ("/api/v1/plugins/big", "application/wasm", MODULE_LIMIT),
    ];
    let round = move |token: String| {
        let mut outcomes = Vec::new();
        for (path, content_type, limit) in targets {
            let head = format!(
                "PUT {path} HTTP/1.1\r\nHost: {ADMIN}\r\nAuthorization: Bearer {token}\r\n\
                 Content-Type: {content_type}\r\n"
            );
            let cases: [(&str, Option<u64>, usize); 4] = [
                (
                    "one byte over, with Content-Length",
                    Some(limit as u64 + 1),
                    limit + 1,
                ),
                ("one byte over, chunked", None, limit + 1),
                ("gigabytes announced", Some(50 << 30), 1 << 20),
                ("chunked without end", None, 64 << 20),
            ];
            for (what, length, bytes) in cases {
                outcomes.push((format!("{path}: {what}"), oversize(&head, length, bytes)));
            }
        }
        outcomes
    };
    // A first round warms the allocator up; memory is measured around the next rounds.
    let ns = t.gw.name.clone();
    let run = |token: &str| {
        let token = token.to_owned();
        Netns::enter_and(&ns, move || round(token))
    };
    let first = run(&token);
    let rss_before = tg.rss_kib();
    let mut outcomes = first;
    for _ in 0..5 {
        outcomes.extend(run(&token));
    }
    let rss_after = tg.rss_kib();
    let wrong: Vec<_> = outcomes
        .iter()
        .filter(|(_, status)| *status != Some(413))
        .collect();
    eprintln!(
        "{} oversize bodies: {} not answered 413; tungate RSS {rss_before} KiB before, \
         {rss_after} KiB after",
        outcomes.len(),
        wrong.len()
    );
    assert!(wrong.is_empty(), "every oversize body gets 413: {wrong:?}");
    assert!(
        rss_after < rss_before + 16 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    // A body exactly at the limit is read (and judged on its content: an unknown field).
    let api = Api::new(&t.gw, ADMIN, Some(token.clone()));
    let fixed = r#"{"address":"10.0.1.9","pad":""}"#.len();
    let at_limit = format!(
        r#"{{"address":"10.0.1.9","pad":"{}"}}"#,
        "x".repeat(JSON_LIMIT - fixed)
    );
    assert_eq!(at_limit.len(), JSON_LIMIT);
    let r = api.put_json(
        "/api/v1/peers/big",
        &serde_json::from_str(&at_limit).unwrap(),
    );
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.error_code(), "invalid_json");
    assert_eq!(tg.stop().0, 0);
}

/// Opens `n` connections to the admin API from inside `ns`.
fn connections(ns: &Netns, n: usize) -> Vec<TcpStream> {
    Netns::enter_and(&ns.name, move || {
        (0..n)
            .map(|_| TcpStream::connect(ADMIN).expect("connect to the admin API"))
            .collect()
    })
}

/// Whether the server closed `s` (end of stream or reset), reading whatever it sent first.
fn closed_by_server(s: &TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = [0u8; 65536];
    let mut reader = s;
    loop {
        match reader.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn slow_clients_block_neither_other_clients_nor_the_data_path() {
    const SLOWLORIS: usize = 100;
    const NON_READERS: usize = 8;
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&t, dir.path());
    let token = tg.token();
    let sockets_idle = socket_fds(&tg);
    let rss_before = tg.rss_kib();
    let stream = NumberedStream::start(&t, STREAM_PPS, STREAM_QUIET);

    // Slowloris: many connections sending a request head one byte a second.
    let mut slow = connections(&t.gw, SLOWLORIS);
    // Clients that ask for much more than the socket buffers hold and never read it.
    let mut non_readers = connections(&t.gw, NON_READERS);
    let pipelined = "GET /api/v1/openapi.yaml HTTP/1.1\r\nHost: x\r\n\r\n".repeat(2000);
    for s in &mut non_readers {
        s.set_write_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(pipelined.as_bytes());
    }
    // A body dripped a byte a second.
    let mut drip = connections(&t.gw, 1).pop().unwrap();
    drip.write_all(
        format!(
            "PUT /api/v1/peers/drip HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\
             Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
        )
        .as_bytes(),
    )
    .unwrap();

    let head = b"GET /api/v1/status HTTP/1.1\r\nHost: slow\r\n";
    let api = Api::new(&t.gw, ADMIN, None);
    let started = Instant::now();
    let mut served = 0;
    let mut second = 0;
    let mut slow_closed_at = None;
    while started.elapsed() < BODY_TIMEOUT + Duration::from_secs(5) {
        // One byte a second on every slow connection (while the server keeps it).
        if second < head.len() {
            for s in &mut slow {
                let _ = s.write_all(&head[second..second + 1]);
            }
        }
        let _ = drip.write_all(b" ");
        // Meanwhile other clients are served.
        for path in [
            "/api/v1/status",
            "/api/v1/stats",
            "/healthz",
            "/api/v1/config",
        ] {
            let r = api.get(path);
            assert_eq!(
                r.status,
                200,
                "{path} while slow clients hang on: {}",
                r.text()
            );
            served += 1;
        }
        if slow_closed_at.is_none() && started.elapsed() > HEADER_TIMEOUT + Duration::from_secs(3) {
            let closed = slow.iter().filter(|s| closed_by_server(s)).count();
            assert_eq!(
                closed, SLOWLORIS,
                "the header timeout closed every slowloris connection"
            );
            slow_closed_at = Some(started.elapsed());
        }
        second += 1;
        std::thread::sleep(Duration::from_secs(1).saturating_sub(Duration::from_millis(50)));
    }
    assert!(slow_closed_at.is_some());
    assert!(started.elapsed() > WRITE_TIMEOUT + Duration::from_secs(5));
    // The client that never read: the server gave up on it (its connection is closed, and
    // far fewer answers than asked for were ever written).
    for s in &mut non_readers {
        let mut data = Vec::new();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let outcome = s.read_to_end(&mut data);
        let answers = data.windows(15).filter(|w| w == b"HTTP/1.1 200 OK").count();
        assert!(
            outcome.is_ok()
                || outcome
                    .as_ref()
                    .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
            "the server closed the connection of a client that never read: {outcome:?}"
        );
        assert!(
            answers < 2000,
            "{answers} answers written to a client that never read"
        );
    }
    // The dripped body was cut off by the body deadline with 408.
    let mut answer = Vec::new();
    drip.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = drip.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.starts_with("HTTP/1.1 408"),
        "the dripped body: {answer}"
    );
    assert!(answer.contains("request_timeout"), "{answer}");

    let delivered = stream.finish();
    eprintln!(
        "slow clients: {served} other requests served; slowloris closed after {slow_closed_at:?}; \
         stream: {} sent, {} received",
        delivered.sent,
        delivered.received.len()
    );
    assert_eq!(
        delivered.missing(),
        0,
        "every reply of the stream delivered"
    );
    assert!(delivered.complete());

    // More connections than the cap: tungate holds at most MAX_CONNECTIONS of them open
    // (the rest wait in the kernel's backlog), and serves again once they time out.
    let crowd = connections(&t.gw, MAX_CONNECTIONS + 100);
    std::thread::sleep(Duration::from_secs(2));
    let open = socket_fds(&tg) - sockets_idle;
    eprintln!(
        "{} idle connections offered: tungate holds {open} open",
        crowd.len()
    );
    // (A little slack for sockets the data path or resolver may open meanwhile.)
    assert!(
        open <= MAX_CONNECTIONS + 4,
        "{open} connections open, over the cap"
    );
    assert!(
        open >= MAX_CONNECTIONS / 2,
        "the listener accepted connections ({open})"
    );
    let r = Netns::enter_and(&t.gw.name, || {
        exchange_here(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    });
    assert_eq!(
        r.map(|(s, _)| s),
        Some(200),
        "served once the idle crowd timed out"
    );
    drop(crowd);
    let rss_after = tg.rss_kib();
    eprintln!("tungate RSS: {rss_before} KiB before the slow clients, {rss_after} KiB after");
    assert!(
        rss_after < rss_before + 32 * 1024,
        "memory grew from {rss_before} KiB to {rss_after} KiB"
    );
    assert_eq!(tg.stop().0, 0);
}
