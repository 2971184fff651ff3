//! Restart and `kill -9` during configuration writes and plugin uploads, many times with
//! random delays (needs root): after every kill the state directory holds a complete,
//! earlier-accepted state — the document parses and validates, is one of those sent, and
//! every bound plugin's module is present and matches its sha256 — and tungate starts
//! from it again.

mod common;
#[path = "support/plugin_wasm.rs"]
#[allow(dead_code)]
mod plugin_wasm;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::http::Api;
use common::net::VIP;
use common::{Topology, Tungate};
use rand::Rng;
use tungate::config::{Document, validate};
use tungate::store::StateDir;

const ITERATIONS: usize = 50;
const ADMIN: &str = "127.0.0.1:9080";

/// Configuration variant `k`: the VIP's chain binds `acc` with a prefix of its own.
fn variant(base: &Document, k: usize) -> Document {
    let mut doc = base.clone();
    doc.vips = vec![tungate::config::Vip {
        address: VIP,
        shared: false,
        plugins: vec![tungate::config::Binding {
            plugin: "acc".into(),
            sha256: None,
            config: serde_json::json!({ "prefixes": [format!("10.{}.0.0/16", k % 250)] }),
            on_error: tungate::config::OnError::Pass,
        }],
    }];
    doc
}

/// The accounting module with a custom section making variant `k` (other bytes, same code).
fn module(k: usize) -> Vec<u8> {
    let mut m = plugin_wasm::plugin_wasm("accounting");
    let tag = format!("{k:08}");
    m.extend_from_slice(&[0, 14, 5]);
    m.extend_from_slice(b"crash");
    m.extend_from_slice(tag.as_bytes());
    m
}

/// One request from inside `ns`; `None` when the server went away mid-request.
fn try_request(ns: &str, request: Vec<u8>) -> Option<u16> {
    let path = format!("/run/netns/{ns}");
    std::thread::spawn(move || {
        let file = std::fs::File::open(&path).ok()?;
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).ok()?;
        let mut s = TcpStream::connect(ADMIN).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
        s.write_all(&request).ok()?;
        let mut data = Vec::new();
        s.read_to_end(&mut data).ok()?;
        String::from_utf8_lossy(&data)
            .split(' ')
            .nth(1)?
            .parse()
            .ok()
    })
    .join()
    .ok()
    .flatten()
}

fn put(token: &str, path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Checks the state directory offline: complete, valid, one of `sent`, modules intact.
fn check_state(dir: &std::path::Path, sent: &[Document], modules: &BTreeSet<String>) -> Document {
    let state =
        StateDir::open(dir).expect("the state directory opens (the lock died with tungate)");
    let doc = state
        .config()
        .expect("config.json parses")
        .expect("a configuration is stored");
    validate(&doc).expect("the stored configuration validates");
    assert!(
        sent.contains(&doc),
        "the stored document is one that was sent: {doc:?}"
    );
    for vip in &doc.vips {
        for b in &vip.plugins {
            let (record, bytes) = state
                .plugin_bytes(&b.plugin)
                .unwrap_or_else(|e| panic!("bound plugin {:?}: {e}", b.plugin));
            assert!(
                modules.contains(&record.sha256),
                "module {} was one uploaded",
                record.sha256
            );
            assert_eq!(tungate::store::sha256_hex(&bytes), record.sha256);
        }
    }
    for (name, record) in state.plugins().unwrap() {
        assert!(
            dir.join(format!("plugins/{}.wasm", record.sha256)).exists(),
            "indexed plugin {name} has its module"
        );
    }
    doc
}

#[test]
fn kill_9_during_writes_and_uploads_always_leaves_an_accepted_state() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let acc = dir.path().join("acc.wasm");
    std::fs::write(&acc, module(0)).unwrap();
    let base_text = t.config("");
    let base = tungate::config::parse_toml(&base_text).unwrap();
    let file_text = format!(
        "{base_text}[[vips]]\naddress = \"{VIP}\"\n[[vips.plugins]]\nplugin = \"acc\"\nconfig = {{ prefixes = [\"10.0.0.0/16\"] }}\n"
    );
    let mut sent = vec![variant(&base, 0)];
    let mut modules: BTreeSet<String> = [tungate::store::sha256_hex(&module(0))].into();
    let mut rng = rand::rng();
    let mut k = 1;
    let (mut accepted, mut interrupted) = (0, 0);
    for iteration in 0..ITERATIONS {
        let mut tg = Tungate::start_in(
            &t.gw,
            &state_dir,
            &file_text,
            &["--plugin", acc.to_str().unwrap()],
        );
        assert!(
            tg.is_running(),
            "iteration {iteration}: tungate starts from the state left"
        );
        let token = tg.token();
        let stop = Arc::new(AtomicBool::new(false));
        // Register every variant before it is sent: any of them may be the one stored.
        // Uploads compile a new module (a few hundred ms), config writes are quicker: the
        // random kill lands in either.
        let batch: Vec<usize> = (k..k + 40).collect();
        k += 40;
        for &j in &batch {
            sent.push(variant(&base, j));
            modules.insert(tungate::store::sha256_hex(&module(j)));
        }
        let writer = {
            let (stop, ns, token, base) =
                (stop.clone(), t.gw.name.clone(), token.clone(), base.clone());
            std::thread::spawn(move || {
                let (mut accepted, mut interrupted) = (0, 0);
                for &j in &batch {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let body = serde_json::to_vec(&variant(&base, j)).unwrap();
                    let request = if j % 2 == 0 {
                        put(&token, "/api/v1/config", "application/json", &body)
                    } else {
                        put(
                            &token,
                            "/api/v1/plugins/acc",
                            "application/wasm",
                            &module(j),
                        )
                    };
                    match try_request(&ns, request) {
                        Some(200) => accepted += 1,
                        Some(status) => panic!("variant {j} refused with {status}"),
                        None => {
                            interrupted += 1;
                            break;
                        }
                    }
                }
                (accepted, interrupted)
            })
        };
        std::thread::sleep(Duration::from_millis(rng.random_range(0..1200)));
        tg.kill9();
        stop.store(true, Ordering::Relaxed);
        let (a, i) = writer.join().unwrap();
        accepted += a;
        interrupted += i;
        check_state(&state_dir, &sent, &modules);
    }
    eprintln!("{ITERATIONS} kills: {accepted} writes accepted, {interrupted} cut short");
    assert!(
        accepted > ITERATIONS,
        "writes were accepted between the kills ({accepted})"
    );
    assert!(
        interrupted > ITERATIONS / 2,
        "most kills cut a request short ({interrupted})"
    );
    // A last start serves exactly what is stored.
    let tg = Tungate::start_in(
        &t.gw,
        &state_dir,
        &file_text,
        &["--plugin", acc.to_str().unwrap()],
    );
    let api = Api::new(&t.gw, ADMIN, None);
    let served: Document = serde_json::from_value(api.get("/api/v1/config").json()).unwrap();
    assert!(sent.contains(&served));
    assert_eq!(api.get("/readyz").status, 200);
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
    let stored = check_state(&state_dir, &sent, &modules);
    assert_eq!(stored, served);
}
