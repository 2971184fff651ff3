//! The admin API over real HTTP against the real binary in the netns topology (needs
//! root): every resource, every error path (bad JSON, unknown field, invalid address,
//! unknown plugin, ABI-mismatched and non-wasm uploads, oversize bodies, wrong content
//! types, missing and wrong tokens, path tricks), auth on a non-loopback listener, and
//! configuration changes reaching the data path on the next packets.

use std::time::Duration;

use serde_json::json;
use sha2::Digest;
use tungate_test_support::http::Api;
use tungate_test_support::packets::{ethernet, ipip, udp};
use tungate_test_support::plugins;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP};
use tungate_test_support::{FrameSocket, Topology, Tungate};

const ADMIN: &str = "127.0.0.1:9080";
const QUIET: Duration = Duration::from_millis(400);

/// Writes the example modules `names` into `dir` as `<name>.wasm`; returns `--plugin` args.
fn plugin_args(dir: &std::path::Path, names: &[&str]) -> Vec<String> {
    let mut args = Vec::new();
    for name in names {
        let path = dir.join(format!("{name}.wasm"));
        std::fs::write(&path, plugins::plugin_wasm(name)).unwrap();
        args.push("--plugin".to_owned());
        args.push(path.display().to_string());
    }
    args
}

fn start(t: &Topology, dir: &std::path::Path, extra: &[&str]) -> Tungate {
    let mut args = plugin_args(dir, &["cidr-filter", "accounting"]);
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    Tungate::start_with(&t.gw, &t.config(""), &refs)
}

#[track_caller]
fn expect_error(
    r: &tungate_test_support::http::Response,
    status: u16,
    code: &str,
    field: Option<&str>,
) {
    assert_eq!(r.status, status, "{}", r.text());
    assert_eq!(
        r.header("content-type"),
        Some("application/json"),
        "{}",
        r.text()
    );
    assert_eq!(r.error_code(), code, "{}", r.text());
    if let Some(f) = field {
        assert_eq!(r.error_field(), f, "{}", r.text());
    }
    assert!(!r.json()["error"]["message"].as_str().unwrap().is_empty());
}

/// A module that speaks an ABI version this gateway does not (it speaks v1 and v2).
fn abi_v3_module() -> Vec<u8> {
    wat::parse_str(
        r#"(module
             (memory (export "memory") 1)
             (func (export "tungate_abi_v3"))
             (func (export "tungate_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "tungate_configure") (param i32 i32) (result i32) (i32.const 0))
             (func (export "tungate_batch_area") (result i32) (i32.const 8192))
             (func (export "tungate_filter") (param i32)))"#,
    )
    .unwrap()
}

#[test]
fn every_resource_and_every_error_path() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&t, dir.path(), &[]);
    let token = tg.token();
    let open = Api::new(&t.gw, ADMIN, None);
    let api = open.with_token(Some(&token));
    let wrong = open.with_token(Some("0123456789abcdef-wrong"));

    // Probes and documents, open without a token.
    let r = open.get("/healthz");
    assert_eq!((r.status, r.text().as_str()), (200, "ok\n"));
    assert_eq!(open.get("/readyz").status, 200);
    let r = open.get("/metrics");
    assert_eq!(r.status, 200);
    assert!(
        r.text().contains("tungate_build_info{version=\""),
        "{}",
        r.text()
    );
    let r = open.get("/api/v1/openapi.yaml");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.text(),
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/crates/admin/src/openapi.yaml"
        ))
        .unwrap()
    );

    // Auth: the token check, and writes need the token even on loopback.
    let r = open.get("/api/v1/auth");
    expect_error(&r, 401, "unauthorized", None);
    assert!(r.header("www-authenticate").unwrap().starts_with("Bearer"));
    expect_error(&wrong.get("/api/v1/auth"), 401, "unauthorized", None);
    assert_eq!(api.get("/api/v1/auth").status, 204);
    let peer = json!({"address": "10.0.1.3"});
    expect_error(
        &open.put_json("/api/v1/peers/rs2", &peer),
        401,
        "unauthorized",
        None,
    );
    expect_error(
        &wrong.put_json("/api/v1/peers/rs2", &peer),
        401,
        "unauthorized",
        None,
    );
    expect_error(
        &wrong.delete("/api/v1/peers/rs1"),
        401,
        "unauthorized",
        None,
    );

    // Status and config (reads open on loopback).
    let s = open.get("/api/v1/status").json();
    assert_eq!(s["gateway_address"], GIP.to_string());
    assert_eq!(s["decap_mode"], "userspace");
    assert!(
        ["xdp", "xdp-generic", "packet"].contains(&s["io"]["path"].as_str().unwrap_or("")),
        "the I/O path and why: {s}"
    );
    assert!(!s["io"]["reason"].as_str().unwrap_or("").is_empty(), "{s}");
    assert_eq!(
        (s["ready"].as_bool(), s["workers"].as_u64()),
        (Some(true), Some(1))
    );
    assert_eq!(s["config_generation"], 1);
    // The VIP is only listed under its peer (no [[vips]] entry): it still counts.
    assert_eq!(
        (s["peers"].as_u64(), s["vips"].as_u64()),
        (Some(1), Some(1))
    );
    let config = open.get("/api/v1/config").json();
    assert_eq!(config["peers"][0]["name"], "rs1");
    assert_eq!(config["peers"][0]["address"], RIP.to_string());

    // PUT /config: every error path, then a good one.
    let good = json!({
        "gateway": {"address": GIP.to_string()},
        "peers": [{"name": "rs1", "address": RIP.to_string(), "vips": [VIP.to_string()]}],
        "vips": []
    });
    let r = api.send(
        "PUT",
        "/api/v1/config",
        &[("Content-Type", "text/plain")],
        good.to_string().as_bytes(),
    );
    expect_error(&r, 415, "unsupported_media_type", None);
    let r = api.send("PUT", "/api/v1/config", &[], good.to_string().as_bytes());
    expect_error(&r, 415, "unsupported_media_type", None);
    let r = api.send(
        "PUT",
        "/api/v1/config",
        &[("Content-Type", "application/json")],
        b"{\"gateway\":",
    );
    expect_error(&r, 400, "invalid_json", None);
    let mut unknown = good.clone();
    unknown["gateway"]["colour"] = json!("blue");
    let r = api.put_json("/api/v1/config", &unknown);
    expect_error(&r, 400, "invalid_json", Some("gateway.colour"));
    assert!(
        r.json()["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`")
    );
    let mut bad_address = good.clone();
    bad_address["peers"][0]["address"] = json!("10.0.1.300");
    expect_error(
        &api.put_json("/api/v1/config", &bad_address),
        400,
        "invalid_json",
        Some("peers[0].address"),
    );
    let mut twice = good.clone();
    twice["peers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "rs1", "address": "10.0.1.9"}));
    let r = api.put_json("/api/v1/config", &twice);
    expect_error(&r, 422, "invalid_config", Some("peers[1].name"));
    assert_eq!(r.json()["error"]["details"][0]["field"], "peers[1].name");
    let mut not_here = good.clone();
    not_here["gateway"]["address"] = json!("203.0.113.77");
    expect_error(
        &api.put_json("/api/v1/config", &not_here),
        422,
        "invalid_config",
        Some("gateway.address"),
    );
    let mut unknown_plugin = good.clone();
    unknown_plugin["vips"] =
        json!([{"address": VIP.to_string(), "plugins": [{"plugin": "no-such"}]}]);
    let r = api.put_json("/api/v1/config", &unknown_plugin);
    expect_error(&r, 422, "invalid_config", Some("vips[0].plugins[0].plugin"));
    assert!(
        r.text().contains("no plugin named \\\"no-such\\\""),
        "{}",
        r.text()
    );
    let mut pinned = good.clone();
    pinned["vips"] = json!([{"address": VIP.to_string(), "plugins": [{"plugin": "accounting", "sha256": "0".repeat(64), "config": {"prefixes": ["0.0.0.0/0"]}}]}]);
    expect_error(
        &api.put_json("/api/v1/config", &pinned),
        422,
        "invalid_config",
        Some("vips[0].plugins[0].sha256"),
    );
    let mut refused = good.clone();
    refused["vips"] = json!([{"address": VIP.to_string(), "plugins": [{"plugin": "cidr-filter", "config": {"deny": ["10.0.0.1/8"]}}]}]);
    let r = api.put_json("/api/v1/config", &refused);
    expect_error(
        &r,
        422,
        "plugin_refused_config",
        Some("vips[0].plugins[0].config"),
    );
    assert!(r.text().contains("did you mean 10.0.0.0/8"), "{}", r.text());
    let huge = format!(
        "{{\"gateway\":{{\"address\":\"{GIP}\"}},\"pad\":\"{}\"}}",
        "x".repeat(1 << 20)
    );
    let r = api.send(
        "PUT",
        "/api/v1/config",
        &[("Content-Type", "application/json")],
        huge.as_bytes(),
    );
    expect_error(&r, 413, "payload_too_large", None);
    assert_eq!(
        open.get("/api/v1/config").json(),
        config,
        "no refused change took effect"
    );
    let r = api.put_json("/api/v1/config", &good);
    assert_eq!(r.status, 200, "{}", r.text());
    let mut with_defaults = good.clone();
    with_defaults["gateway"] =
        json!({"address": GIP.to_string(), "decap": "userspace", "workers": 1});
    assert_eq!(
        r.json(),
        with_defaults,
        "the document as stored, defaults filled in"
    );
    assert_eq!(open.get("/api/v1/status").json()["config_generation"], 2);

    // Peers.
    let r = api.put_json(
        "/api/v1/peers/rs2",
        &json!({"address": "10.0.1.3", "vips": ["192.0.2.11"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"name": "rs2", "address": "10.0.1.3", "vips": ["192.0.2.11"]})
    );
    assert_eq!(open.get("/api/v1/peers/rs2").json()["address"], "10.0.1.3");
    assert_eq!(
        open.get("/api/v1/peers").json().as_array().unwrap().len(),
        2
    );
    expect_error(
        &api.put_json(
            "/api/v1/peers/rs2",
            &json!({"name": "rs3", "address": "10.0.1.3"}),
        ),
        400,
        "bad_request",
        Some("name"),
    );
    expect_error(
        &api.put_json(
            "/api/v1/peers/rs2",
            &json!({"address": "10.0.1.3", "mtu": 1}),
        ),
        400,
        "invalid_json",
        None,
    );
    expect_error(
        &api.put_json(
            "/api/v1/peers/rs2",
            &json!({"address": "10.0.1.3", "port": 1}),
        ),
        422,
        "invalid_config",
        Some("peers[1].port"),
    );
    expect_error(
        &api.put_json("/api/v1/peers/rs3", &json!({"address": "10.0.1.2"})),
        422,
        "invalid_config",
        Some("peers[2].address"),
    );
    expect_error(
        &open.get("/api/v1/peers/much-too-long-name"),
        400,
        "bad_request",
        Some("name"),
    );
    expect_error(
        &open.get("/api/v1/peers/a.b"),
        400,
        "bad_request",
        Some("name"),
    );
    assert_eq!(api.delete("/api/v1/peers/rs2").status, 204);
    expect_error(&api.delete("/api/v1/peers/rs2"), 404, "not_found", None);
    expect_error(&open.get("/api/v1/peers/rs2"), 404, "not_found", None);

    // VIPs.
    let vip = format!("/api/v1/vips/{VIP}");
    let chain =
        json!({"plugins": [{"plugin": "accounting", "config": {"prefixes": ["0.0.0.0/0"]}}]});
    let r = api.put_json(&vip, &chain);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["address"], VIP.to_string());
    assert_eq!(r.json()["plugins"][0]["on_error"], "pass");
    assert_eq!(open.get(&vip).json()["plugins"][0]["plugin"], "accounting");
    assert_eq!(open.get("/api/v1/vips").json().as_array().unwrap().len(), 1);
    expect_error(
        &open.get("/api/v1/vips/192.0.2.300"),
        400,
        "bad_request",
        Some("address"),
    );
    expect_error(
        &open.get("/api/v1/vips/.."),
        400,
        "bad_request",
        Some("address"),
    );
    expect_error(
        &api.put_json(&vip, &json!({"address": "192.0.2.99", "plugins": []})),
        400,
        "bad_request",
        Some("address"),
    );
    expect_error(
        &api.put_json(&vip, &json!({"plugins": [{"plugin": "nope"}]})),
        422,
        "invalid_config",
        Some("vips[0].plugins[0].plugin"),
    );
    expect_error(
        &api.put_json(
            &vip,
            &json!({"plugins": [{"plugin": "accounting", "on_error": "maybe"}]}),
        ),
        400,
        "invalid_json",
        Some("plugins[0].on_error"),
    );
    expect_error(&open.get("/api/v1/vips/192.0.2.99"), 404, "not_found", None);

    // Plugins: upload errors.
    let name_path = "/api/v1/plugins/pf";
    let pf = plugins::plugin_wasm("port-filter");
    let r = api.put_wasm(name_path, b"this is not wasm at all");
    expect_error(&r, 422, "plugin_rejected", None);
    assert!(
        r.text().contains("not a WebAssembly module"),
        "{}",
        r.text()
    );
    let r = api.put_wasm(name_path, &abi_v3_module());
    expect_error(&r, 422, "plugin_rejected", None);
    assert!(
        r.text()
            .contains("speaks ABI \\\"tungate_abi_v3\\\", this gateway speaks v1 and v2"),
        "{}",
        r.text()
    );
    let r = api.send(
        "PUT",
        name_path,
        &[("Content-Type", "application/json")],
        &pf,
    );
    expect_error(&r, 415, "unsupported_media_type", None);
    let big = vec![0u8; 8 * 1024 * 1024 + 1];
    expect_error(
        &api.put_wasm(name_path, &big),
        413,
        "payload_too_large",
        None,
    );
    for trick in [
        "/api/v1/plugins/..",
        "/api/v1/plugins/%2E%2E",
        "/api/v1/plugins/a%2Fb",
        "/api/v1/plugins/.hidden",
        "/api/v1/plugins/a%20b",
    ] {
        expect_error(&api.put_wasm(trick, &pf), 400, "bad_request", Some("name"));
        expect_error(&open.get(trick), 400, "bad_request", Some("name"));
    }
    let r = api.get("/api/v1/plugins/../../etc/passwd");
    assert!(r.status == 404 || r.status == 400, "{}", r.status);
    expect_error(&open.get(name_path), 404, "not_found", None);
    assert!(
        !std::fs::read_dir(tg.state_dir.join("plugins"))
            .unwrap()
            .any(|e| e.unwrap().file_name().to_string_lossy().contains("passwd"))
    );

    // Plugins: a good upload, metadata, binding, delete refused while bound.
    let r = api.put_wasm(name_path, &pf);
    assert_eq!(r.status, 200, "{}", r.text());
    let sha = hex::encode(sha2::Sha256::digest(&pf));
    assert_eq!(r.json()["sha256"], sha);
    assert_eq!(r.json()["size"], pf.len());
    assert_eq!(
        r.json()["info"]["abi_version"],
        2,
        "the SDK's examples speak ABI v2"
    );
    assert!(tg.state_dir.join(format!("plugins/{sha}.wasm")).exists());
    let names: Vec<String> = open
        .get("/api/v1/plugins")
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["accounting", "cidr-filter", "pf"]);
    let with_pf = json!({"plugins": [
        {"plugin": "accounting", "config": {"prefixes": ["0.0.0.0/0"]}},
        {"plugin": "pf", "sha256": sha, "on_error": "drop", "config": {"allow": [{"protocol": "udp", "ports": [80]}]}}]});
    assert_eq!(api.put_json(&vip, &with_pf).status, 200);
    assert_eq!(
        open.get(name_path).json()["bound_to"],
        json!([format!("{VIP}#1")])
    );
    let r = api.delete(name_path);
    expect_error(&r, 409, "conflict", Some("vips[0].plugins[1]"));
    // Replacing a pinned module with other bytes is refused before anything is stored.
    let r = api.put_wasm(name_path, &plugins::plugin_wasm("rate-limit"));
    expect_error(&r, 422, "invalid_config", Some("vips[0].plugins[1].sha256"));
    assert_eq!(open.get(name_path).json()["sha256"], sha);
    assert_eq!(api.put_json(&vip, &chain).status, 200);
    assert_eq!(api.delete(name_path).status, 204);
    expect_error(&open.get(name_path), 404, "not_found", None);
    assert!(!tg.state_dir.join(format!("plugins/{sha}.wasm")).exists());
    expect_error(&api.delete(name_path), 404, "not_found", None);

    // Stats, and unknown API paths.
    let stats = open.get("/api/v1/stats").json();
    assert_eq!(stats["bindings"][0]["plugin"], "accounting");
    assert_eq!(stats["bindings"][0]["vip"], VIP.to_string());
    assert!(stats["drops"]["ttl_expired"].is_u64());
    expect_error(&open.get("/api/v1/nothing"), 404, "not_found", None);
    let r = open.send("POST", "/api/v1/config", &[], b"");
    assert_eq!(r.status, 401, "a write without a token is refused first");
    let r = api.send("POST", "/api/v1/config", &[], b"");
    assert_eq!(r.status, 405);
    assert_eq!(api.delete(&vip).status, 204);
    expect_error(&api.delete(&vip), 404, "not_found", None);

    // The web UI: index not cached, hashed assets cached, client routes fall back.
    let r = open.get("/");
    assert_eq!(r.status, 200);
    assert!(r.header("content-type").unwrap().starts_with("text/html"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    let asset = r
        .text()
        .split("src=\"./")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    let a = open.get(&format!("/{asset}"));
    assert_eq!(a.status, 200, "{asset}");
    assert!(a.header("content-type").unwrap().contains("javascript"));
    assert!(a.header("cache-control").unwrap().contains("immutable"));
    assert_eq!(
        open.get("/plugins/whatever").header("cache-control"),
        Some("no-cache")
    );
    assert_eq!(open.get("/assets/missing-123.js").status, 404);

    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

#[test]
fn a_non_loopback_listener_requires_the_token_on_reads_and_a_token_file_sets_it() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("token");
    let token = "s3cret-token-for-the-test-0123456789";
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let listen = format!("{GIP}:9081");
    let tg = start(
        &t,
        dir.path(),
        &[
            "--admin-listen",
            &listen,
            "--token-file",
            token_file.to_str().unwrap(),
        ],
    );
    let open = Api::new(&t.gw, &listen, None);
    for path in [
        "/api/v1/status",
        "/api/v1/config",
        "/api/v1/stats",
        "/api/v1/plugins",
    ] {
        expect_error(&open.get(path), 401, "unauthorized", None);
    }
    expect_error(
        &open
            .with_token(Some("another-token-of-enough-length"))
            .get("/api/v1/status"),
        401,
        "unauthorized",
        None,
    );
    assert!(
        !tg.state_dir.join("admin-token").exists(),
        "no token generated when one is given"
    );
    let api = open.with_token(Some(token));
    assert_eq!(api.get("/api/v1/status").status, 200);
    assert_eq!(api.get("/api/v1/auth").status, 204);
    for path in [
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/openapi.yaml",
        "/",
    ] {
        assert_eq!(open.get(path).status, 200, "{path} stays open");
    }
    assert_eq!(tg.stop().0, 0);

    // A token file that is too short is a bad flag: exit 2 naming it.
    std::fs::write(&token_file, "short\n").unwrap();
    let (status, _, stderr) = tungate_test_support::process::run_to_end(
        &t.gw,
        &[
            "run",
            "--config",
            "/nonexistent",
            "--token-file",
            token_file.to_str().unwrap(),
        ],
    );
    assert_eq!(status, 2, "{stderr}");
}

#[test]
fn startup_errors_exit_2_naming_the_problem() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let s = state.to_str().unwrap();
    let cfg = dir.path().join("c.toml");
    let c = cfg.to_str().unwrap();
    // Neither a file nor stored state.
    let (status, _, stderr) =
        tungate_test_support::process::run_to_end(&t.gw, &["run", "--state-dir", s]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("no configuration: give --config FILE"),
        "{stderr}"
    );
    // A binding of a plugin that is not stored.
    let bound = format!(
        "{}[[vips]]\naddress = \"{VIP}\"\n[[vips.plugins]]\nplugin = \"cidr-filter\"\n",
        t.config("")
    );
    std::fs::write(&cfg, &bound).unwrap();
    let (status, _, stderr) =
        tungate_test_support::process::run_to_end(&t.gw, &["run", "--config", c, "--state-dir", s]);
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("vips[0].plugins[0]: no plugin named \"cidr-filter\""),
        "{stderr}"
    );
    // A --plugin file that is not a module.
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"junk").unwrap();
    let (status, _, stderr) = tungate_test_support::process::run_to_end(
        &t.gw,
        &[
            "run",
            "--config",
            c,
            "--state-dir",
            s,
            "--plugin",
            junk.to_str().unwrap(),
        ],
    );
    assert_eq!(status, 2, "{stderr}");
    assert!(
        stderr.contains("junk.wasm: refused: not a WebAssembly module"),
        "{stderr}"
    );
    // The same binding starts once --plugin stores the module under its stem.
    let args = plugin_args(dir.path(), &["cidr-filter"]);
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let tg = Tungate::start_in(
        &t.gw,
        &state,
        &format!("{bound}config = {{ deny = [\"203.0.113.0/24\"] }}\n"),
        &refs,
    );
    let api = Api::new(&t.gw, ADMIN, None);
    assert_eq!(
        api.get("/api/v1/vips").json()[0]["plugins"][0]["plugin"],
        "cidr-filter"
    );
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn bindings_made_through_the_api_act_on_the_next_packets_and_unbinding_restores() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&t, dir.path(), &[]);
    let api = Api::new(&t.gw, ADMIN, Some(tg.token()));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let send = |n: usize| {
        for i in 0..n {
            let inner = udp(VIP, CIP, 64, 20 + i);
            rs.send(&ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, &inner)));
        }
    };
    let to_client = |f: &[u8]| f.len() >= 34 && f[12..14] == [8, 0] && f[30..34] == CIP.octets();
    let vip = format!("/api/v1/vips/{VIP}");

    send(5);
    assert_eq!(
        client.receive_for(QUIET, to_client).len(),
        5,
        "no chain: all forwarded"
    );
    let deny =
        json!({"plugins": [{"plugin": "cidr-filter", "config": {"deny": [format!("{CIP}/32")]}}]});
    assert_eq!(api.put_json(&vip, &deny).status, 200);
    send(5);
    assert_eq!(
        client.receive_for(QUIET, to_client).len(),
        0,
        "the new binding drops them"
    );
    let stats = api.get("/api/v1/stats").json();
    assert_eq!(stats["bindings"][0]["verdicts"]["drop"], 5);
    assert_eq!(stats["vips"][0]["dropped"]["plugin"], 5);
    assert_eq!(api.delete(&vip).status, 204);
    send(5);
    assert_eq!(
        client.receive_for(QUIET, to_client).len(),
        5,
        "unbinding restores"
    );
    let stats = api.get("/api/v1/stats").json();
    assert_eq!(stats["vips"][0]["forwarded_packets"], 10);
    assert_eq!(
        stats["bindings"],
        json!([]),
        "the removed binding's statistics are gone"
    );
    assert_eq!(tg.stop().0, 0);
}

/// Issue 17 item 1: apply 600 served VIPs through the API, send a reply for one of the
/// soon-removed ones, then go back to 2: the stats, `tungate status` and `/metrics` list
/// only the 2 configured VIPs (the removed VIP's forwarded packet stays in the totals).
#[test]
fn removed_vips_leave_stats_status_and_metrics() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let tg = start(&t, dir.path(), &[]);
    let api = Api::new(&t.gw, ADMIN, Some(tg.token()));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let to_client = |f: &[u8]| f.len() >= 34 && f[12..14] == [8, 0] && f[30..34] == CIP.octets();
    let many: Vec<String> = (0..600)
        .map(|i| format!("203.0.{}.{}", 113 + i / 250, 1 + i % 250))
        .collect();
    let kept = [VIP.to_string(), many[0].clone()];
    let removed = many[599].clone();

    let mut doc = api.get("/api/v1/config").json();
    let mut vips: Vec<String> = vec![VIP.to_string()];
    vips.extend(many.iter().cloned());
    doc["peers"][0]["vips"] = json!(vips);
    let r = api.put_json("/api/v1/config", &doc);
    assert_eq!(r.status, 200, "{}", r.text());
    let inner = udp(removed.parse().unwrap(), CIP, 64, 20);
    rs.send(&ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, &inner)));
    assert_eq!(client.receive_for(QUIET, to_client).len(), 1);
    let stats = api.get("/api/v1/stats").json();
    assert_eq!(stats["vips"].as_array().unwrap().len(), 601);
    let metrics = api.get("/metrics").text();
    assert!(
        metrics.contains(&format!(
            "tungate_vip_forwarded_packets_total{{vip=\"{removed}\"}} 1"
        )),
        "{metrics}"
    );

    doc["peers"][0]["vips"] = json!(kept);
    let r = api.put_json("/api/v1/config", &doc);
    assert_eq!(r.status, 200, "{}", r.text());

    let stats = api.get("/api/v1/stats").json();
    let mut listed: Vec<String> = stats["vips"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["address"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    let mut want = kept.to_vec();
    want.sort();
    assert_eq!(listed, want, "only the configured VIPs");
    assert!(
        stats["vips"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v["peer"] == "rs1"),
        "{stats}"
    );
    assert_eq!(stats["totals"]["forwarded_packets"], 1, "totals keep it");

    let metrics = api.get("/metrics").text();
    let vip_series: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("tungate_vip_"))
        .collect();
    assert_eq!(
        vip_series.len(),
        4,
        "packets and bytes of 2 VIPs: {vip_series:?}"
    );
    assert!(!metrics.contains(&removed), "{metrics}");

    let out = t.gw.command(
        &tungate_test_support::process::binary(),
        &["status", "--url", &format!("http://{ADMIN}")],
    );
    let vip_rows: Vec<&str> = out
        .stdout
        .lines()
        .filter(|l| l.starts_with("192.0.2.") || l.starts_with("203.0."))
        .collect();
    assert_eq!(vip_rows.len(), 2, "{}", out.stdout);
    assert!(
        vip_rows
            .iter()
            .all(|row| row.split_whitespace().nth(1) == Some("rs1")),
        "no row without a peer: {}",
        out.stdout
    );
    assert_eq!(tg.stop().0, 0);
}
