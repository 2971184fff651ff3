//! The admin API's defences and its honesty, against the real binary in the netns topology
//! (needs root): the configuration's revision (`ETag` on reads, `If-Match` refusing a stale
//! write with 412 and changing nothing, the revision surviving a restart); the `Host` check
//! that keeps a DNS-rebinding page from reading a loopback listener; the UI's security
//! headers; error codes that say what happened (405) without telling an unauthenticated
//! client where the token is; loopback refused as a VIP or peer address; and `tungate
//! status` saying when its token is refused and when a quarantined plugin drops a VIP's
//! traffic (exit 3) while `/readyz` keeps its meaning.

use std::time::Duration;

use serde_json::json;
use tungate_test_support::http::{Api, Response, raw};
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use tungate_test_support::wait::until;
use tungate_test_support::{FrameSocket, Topology, Tungate};

const ADMIN: &str = "127.0.0.1:9080";

#[track_caller]
fn expect_error(r: &Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(r.error_code(), code, "{}", r.text());
}

/// The error body's message.
trait Message {
    fn message(&self) -> String;
}

impl Message for Response {
    fn message(&self) -> String {
        self.json()["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

fn etag(r: &Response) -> String {
    r.header("etag")
        .unwrap_or_else(|| panic!("no ETag: {}", r.text()))
        .to_owned()
}

/// `method path` with exactly these headers (the test's own `Host` included).
fn request(t: &Topology, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut text = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (n, v) in headers {
        text.push_str(&format!("{n}: {v}\r\n"));
    }
    text.push_str("Content-Length: 0\r\n\r\n");
    raw(&t.gw, ADMIN, text.into_bytes())
}

/// A well-formed ABI v1 module whose filter traps on every call.
fn trapping_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func (export "tungate_abi_v1"))
             (func (export "tungate_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "tungate_configure") (param i32 i32) (result i32) (i32.const 0))
             (func (export "tungate_batch_area") (result i32) (i32.const 8192))
             (func (export "tungate_filter") (param i32) (unreachable)))"#,
    )
    .unwrap()
}

#[test]
fn a_stale_if_match_changes_nothing_and_the_revision_survives_a_restart() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = t.config("");
    let tg = Tungate::start_in(&t.gw, &state, &config, &[]);
    let api = Api::new(&t.gw, ADMIN, Some(tg.token()));
    let json_type = ("Content-Type", "application/json");

    // Every read of the configuration answers the same revision; a fresh state is "1".
    let first = etag(&api.get("/api/v1/config"));
    assert_eq!(first, "\"1\"");
    for path in [
        "/api/v1/peers",
        "/api/v1/peers/rs1",
        "/api/v1/vips",
        "/api/v1/plugins",
    ] {
        let r = api.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text());
        assert_eq!(etag(&r), first, "{path}");
    }
    assert_eq!(tg.status()["revision"], 1);

    // A write naming the current revision goes through and answers the next one.
    let peer = json!({"address": "10.0.1.3"}).to_string();
    let r = api.send(
        "PUT",
        "/api/v1/peers/rs2",
        &[json_type, ("If-Match", &first)],
        peer.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let second = etag(&r);
    assert_eq!(second, "\"2\"");
    let doc = api.get("/api/v1/config").json();

    // Writes naming the old one are refused with 412 and change nothing, whatever they are.
    let stale = [json_type, ("If-Match", first.as_str())];
    let other = json!({"address": "10.0.1.4"}).to_string();
    for (method, path, body) in [
        ("PUT", "/api/v1/peers/rs3", other.clone()),
        ("PUT", "/api/v1/peers/rs2", other.clone()),
        ("DELETE", "/api/v1/peers/rs2", String::new()),
        ("PUT", &format!("/api/v1/vips/{VIP}"), "{}".to_owned()),
        ("DELETE", "/api/v1/peers/rs1", String::new()),
        ("PUT", "/api/v1/config", doc.to_string()),
    ] {
        let r = api.send(method, path, &stale, body.as_bytes());
        expect_error(&r, 412, "precondition_failed");
        assert!(r.message().contains("nothing was changed"), "{}", r.text());
    }
    let wasm = [
        ("Content-Type", "application/wasm"),
        ("If-Match", first.as_str()),
    ];
    let r = api.send("PUT", "/api/v1/plugins/trap", &wasm, &trapping_module());
    expect_error(&r, 412, "precondition_failed");
    assert_eq!(api.get("/api/v1/config").json(), doc, "nothing changed");
    assert_eq!(api.get("/api/v1/plugins/trap").status, 404);
    assert_eq!(etag(&api.get("/api/v1/config")), second);

    // `*`, and no If-Match at all, are accepted (scripts keep working); plugins count too.
    let any = [("Content-Type", "application/wasm"), ("If-Match", "*")];
    assert_eq!(
        api.send("PUT", "/api/v1/plugins/trap", &any, &trapping_module())
            .status,
        200
    );
    let r = api.delete("/api/v1/plugins/trap");
    assert_eq!(r.status, 204, "{}", r.text());
    let now = etag(&api.get("/api/v1/plugins"));
    assert_eq!(now, "\"4\"", "an upload and a delete: two revisions");

    // A restart keeps the revision (and the document it numbers).
    assert_eq!(tg.stop().0, 0);
    let tg = Tungate::start_in(&t.gw, &state, &config, &[]);
    let api = api.with_token(Some(&tg.token()));
    assert_eq!(etag(&api.get("/api/v1/config")), now);
    assert_eq!(api.get("/api/v1/config").json(), doc);
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn reads_need_a_local_host_the_ui_refuses_framing_and_errors_say_no_more_than_needed() {
    let t = Topology::new();
    let tg = Tungate::start_with(&t.gw, &t.config(""), &["--admin-host", "gw.example"]);
    let token = tg.token();
    let bearer = format!("Bearer {token}");

    // DNS rebinding: a page of the attacker's name that resolves to 127.0.0.1 reads nothing.
    let rebound = request(
        &t,
        "GET",
        "/api/v1/config",
        &[("Host", "rebind.attacker.example:9080")],
    );
    expect_error(&rebound, 401, "unauthorized");
    assert!(rebound.message().contains("Host"), "{}", rebound.text());
    for path in ["/api/v1/status", "/api/v1/stats", "/api/v1/peers"] {
        let r = request(&t, "GET", path, &[("Host", "rebind.attacker.example")]);
        expect_error(&r, 401, "unauthorized");
    }
    // Local names, loopback addresses and --admin-host names read without the token; any
    // Host reads with it; the probes stay open to any Host.
    for host in [
        "127.0.0.1:9080",
        "localhost:9080",
        "gw.example",
        "[::1]:9080",
    ] {
        let r = request(&t, "GET", "/api/v1/config", &[("Host", host)]);
        assert_eq!(r.status, 200, "{host}: {}", r.text());
    }
    let r = request(
        &t,
        "GET",
        "/api/v1/config",
        &[
            ("Host", "rebind.attacker.example"),
            ("Authorization", &bearer),
        ],
    );
    assert_eq!(r.status, 200, "{}", r.text());
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.yaml",
        "/",
    ] {
        let r = request(&t, "GET", path, &[("Host", "rebind.attacker.example")]);
        assert_eq!(r.status, 200, "{path} stays open");
    }

    // A 401 never tells where the token is kept.
    let state = tg.state_dir.display().to_string();
    let open = Api::new(&t.gw, ADMIN, None);
    for r in [
        open.put_json("/api/v1/peers/rs2", &json!({"address": "10.0.1.3"})),
        open.get("/api/v1/auth"),
        rebound,
    ] {
        expect_error(&r, 401, "unauthorized");
        assert!(
            !r.text().contains(&state) && !r.text().contains("admin-token"),
            "{}",
            r.text()
        );
    }

    // The UI: no framing, no referrer, a CSP, on the page and on its assets.
    let index = open.get("/");
    let csp = index.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(csp.contains("script-src 'self'"), "{csp}");
    for r in [&index, &open.get("/peers-vips")] {
        assert_eq!(r.header("x-frame-options"), Some("DENY"));
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    }

    // A method a path does not serve: 405 with its own code, on the API and the UI.
    let api = open.with_token(Some(&token));
    expect_error(
        &api.send("POST", "/api/v1/config", &[], b""),
        405,
        "method_not_allowed",
    );
    expect_error(&api.send("POST", "/", &[], b""), 405, "method_not_allowed");

    // Loopback is refused as a VIP and as a peer's address, naming the field.
    let r = api.put_json("/api/v1/vips/127.0.0.1", &json!({}));
    expect_error(&r, 422, "invalid_config");
    assert!(r.message().contains("loopback"), "{}", r.text());
    let r = api.put_json("/api/v1/peers/lo", &json!({"address": "127.0.0.2"}));
    expect_error(&r, 422, "invalid_config");
    assert!(r.error_field().ends_with(".address"), "{}", r.text());

    assert_eq!(tg.stop().0, 0);
}

#[test]
fn status_says_when_its_token_is_refused_and_when_a_quarantined_plugin_drops_a_vip() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = Tungate::start(&t.gw, &t.config(""));
    let binary = tungate_test_support::process::binary();
    let status = |extra: &[&str]| {
        let mut args = vec!["status", "--url", "http://127.0.0.1:9080"];
        args.extend_from_slice(extra);
        let out = t.gw.exec(&binary, &args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = status(&[]);
    assert_eq!(code, Some(0), "{text}");

    // A wrong token file is said, and fails, even where reads need no token.
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-token-of-this-gateway\n").unwrap();
    let (code, text) = status(&["--token-file", wrong.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains(&format!("the token in {} is not accepted", wrong.display())),
        "{text}"
    );
    let right = tg.state_dir.join("admin-token");
    let (code, text) = status(&["--token-file", right.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");

    // A plugin that traps on every call, failing closed: quarantined, every packet dropped.
    let api = Api::new(&t.gw, ADMIN, Some(tg.token()));
    assert_eq!(
        api.put_wasm("/api/v1/plugins/trap", &trapping_module())
            .status,
        200
    );
    let chain = json!({"plugins": [{"plugin": "trap", "on_error": "drop"}]});
    let r = api.put_json(&format!("/api/v1/vips/{VIP}"), &chain);
    assert_eq!(r.status, 200, "{}", r.text());
    tg.wait_filters_in_force();
    let rs = FrameSocket::open(&t.rs, "r0");
    let mut n: usize = 0;
    until(
        Duration::from_secs(30),
        "the trapping binding is quarantined",
        || {
            // One reply at a time: each is a call of its own, and each call fails.
            n += 1;
            rs.send(&ethernet(
                GW_RS_MAC,
                RS_MAC,
                &ipip(RIP, GIP, &udp(VIP, CIP, 64, n)),
            ));
            std::thread::sleep(Duration::from_millis(20));
            tg.status()["plugin_faults"][0]["quarantined"] == true
        },
    );
    let fault = &tg.status()["plugin_faults"][0];
    assert_eq!(fault["plugin"], "trap", "{fault}");
    assert_eq!(fault["on_error"], "drop", "{fault}");
    assert!(fault["dropped_packets"].as_u64().unwrap() >= 1, "{fault}");

    let (code, text) = status(&[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains(": ready"), "the data path runs: {text}");
    assert!(
        text.contains(&format!(
            "plugin \"trap\" at {VIP}#0 is QUARANTINED and fails closed: every packet of the \
             VIP is dropped"
        )),
        "{text}"
    );
    assert!(text.contains("1 plugin binding is quarantined"), "{text}");
    // /readyz keeps its meaning: the data path runs with the configuration in force.
    assert_eq!(api.get("/readyz").status, 200);
    assert_eq!(tg.stop().0, 0);
}

/// A self-signed certificate for 127.0.0.1 and localhost in `dir`: (cert.pem, key.pem).
fn self_signed(dir: &std::path::Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let out = std::process::Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
        .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"])
        // A leaf, not a CA: rustls refuses a CA certificate as the server's own.
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (Debian's openssl package)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

#[test]
fn the_admin_listener_serves_https_and_a_clear_text_one_off_loopback_is_a_warning() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = self_signed(dir.path());
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let binary = tungate_test_support::process::binary();
    let run = |args: &[&str]| {
        let out = t.gw.exec(&binary, args);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };

    // Files that are not a certificate and a key: a bad flag, exit 2, naming it.
    let config = dir.path().join("c.toml");
    std::fs::write(&config, t.config("")).unwrap();
    let state = dir.path().join("state");
    let (code, text) = run(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--state-dir",
        state.to_str().unwrap(),
        "--admin-tls-cert",
        key_s,
        "--admin-tls-key",
        key_s,
    ]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("--admin-tls-cert"), "{text}");

    let tg = Tungate::start_with(
        &t.gw,
        &t.config(""),
        &["--admin-tls-cert", cert_s, "--admin-tls-key", key_s],
    );
    let token = tg.state_dir.join("admin-token");
    let token = token.to_str().unwrap();
    let https = "https://127.0.0.1:9080";
    // HTTPS with the certificate trusted: the status, the token checked through TLS.
    let (code, text) = run(&[
        "status",
        "--url",
        https,
        "--admin-ca",
        cert_s,
        "--token-file",
        token,
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains(&format!("at {https}: ready")), "{text}");
    assert!(!text.contains("WITHOUT TLS"), "{text}");
    // Not trusted (the system's bundle does not hold a self-signed certificate): refused.
    let (code, text) = run(&["status", "--url", https]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("TLS with https://127.0.0.1:9080 failed"),
        "{text}"
    );
    // Plain HTTP to the TLS listener gets no answer at all.
    let (code, text) = run(&["status", "--url", "http://127.0.0.1:9080"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("HTTP exchange with http://127.0.0.1:9080 for /api/v1/status failed"),
        "{text}"
    );
    assert_eq!(tg.stop().0, 0);

    // Off loopback without TLS: it runs, and says in `status` that the token is in clear.
    let listen = format!("{GIP}:9081");
    let tg = Tungate::start_with(&t.gw, &t.config(""), &["--admin-listen", &listen]);
    let token = tg.state_dir.join("admin-token");
    let (code, text) = run(&[
        "status",
        "--url",
        &format!("http://{listen}"),
        "--token-file",
        token.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "a warning, not a failure: {text}");
    assert!(
        text.contains(&format!(
            "the admin API listens on {listen} WITHOUT TLS: the bearer token crosses the \
             network in clear"
        )),
        "{text}"
    );
    let api = Api::new(&t.gw, &listen, Some(tg.token()));
    let admin = &api.get("/api/v1/status").json()["admin"];
    assert_eq!(admin["tls"], false, "{admin}");
    assert_eq!(admin["loopback"], false, "{admin}");
    assert_eq!(tg.stop().0, 0);
}
