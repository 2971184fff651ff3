//! Restart and `kill -9` during configuration writes, plugin uploads and plugin deletes,
//! many times at random moments (needs root). After every kill the state directory holds
//! a complete, earlier-accepted state — the document parses and validates and is one of
//! those sent, every indexed plugin (so every bound one) has its module, which matches its
//! sha256 and is one that was uploaded — and tungate starts from it again, leaves no
//! temporary or unindexed module file behind, and forwards.
//!
//! The modules are tiny WAT plugins (they compile in a millisecond), so the writes are
//! quick and a random kill lands in any part of them: the HTTP exchange, validation, the
//! filter build, or the file writes with their fsyncs and renames.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use tungate_config::{Document, validate};
use tungate_control::store::StateDir;
use tungate_test_support::http::Api;
use tungate_test_support::plugins::pass_all_module;
use tungate_test_support::stream::{number_of, numbered};
use tungate_test_support::topology::VIP;
use tungate_test_support::{FrameSocket, Topology, Tungate};

const ITERATIONS: usize = 120;
/// Writes queued per iteration (more than fit before the latest kill).
const BATCH: usize = 200;
/// The kill comes this long (at most; uniformly at random) after tungate is up.
const LATEST_KILL_MS: u64 = 700;
const ADMIN: &str = "127.0.0.1:9080";

/// Configuration variant `k`: the VIP's chain binds `acc` with a configuration of its own.
fn variant(base: &Document, k: usize) -> Document {
    let mut doc = base.clone();
    doc.vips = vec![tungate_config::Vip {
        address: VIP.into(),
        shared: false,
        plugins: vec![tungate_config::Binding {
            plugin: "acc".into(),
            sha256: None,
            config: serde_json::json!({ "variant": k }),
            on_error: tungate_config::OnError::Pass,
        }],
    }];
    doc
}

/// Module variant `k` (other bytes, same behaviour).
fn module(k: usize) -> Vec<u8> {
    pass_all_module(&format!("crash-{k:08}"))
}

/// What a write of the batch does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Op {
    /// `PUT /api/v1/config` with variant `j`.
    Config,
    /// `PUT /api/v1/plugins/acc` (bound) with module `j`.
    UploadBound,
    /// `PUT /api/v1/plugins/spare-j` (unbound) with module `j`.
    UploadSpare,
    /// `DELETE /api/v1/plugins/spare-(j-1)`.
    Delete,
}

impl Op {
    fn of(j: usize) -> Op {
        [Op::Config, Op::UploadBound, Op::UploadSpare, Op::Delete][j % 4]
    }
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

fn http(token: &str, method: &str, path: &str, content_type: &str, body: &[u8]) -> Vec<u8> {
    let mut r = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    r.extend_from_slice(body);
    r
}

/// Files in `dir` whose names start with `prefix`.
fn count_named(dir: &Path, prefix: &str) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().starts_with(prefix))
        })
        .count()
}

/// Module files in the plugin directory that the index (read as plain JSON) does not name.
fn unindexed_modules(state_dir: &Path) -> usize {
    let plugins = state_dir.join("plugins");
    let named: BTreeSet<String> = std::fs::read(plugins.join("index.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default()
        .values()
        .filter_map(|r| r["sha256"].as_str().map(|s| format!("{s}.wasm")))
        .collect();
    std::fs::read_dir(&plugins)
        .unwrap()
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".wasm") && !named.contains(n))
        .count()
}

/// Checks the state directory offline: complete, valid, one of `sent`, modules intact and
/// uploaded ones. Returns the document.
fn check_state(dir: &Path, sent: &[Document], modules: &BTreeSet<String>) -> Document {
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
    let plugins = state.plugins().expect("the plugin index parses");
    for vip in &doc.vips {
        for b in &vip.plugins {
            assert!(
                plugins.contains_key(&b.plugin),
                "bound plugin {} indexed",
                b.plugin
            );
        }
    }
    for name in plugins.keys() {
        let (record, bytes) = state
            .plugin_bytes(name)
            .unwrap_or_else(|e| panic!("plugin {name:?}: {e}"));
        assert!(
            modules.contains(&record.sha256),
            "module {} of {name} was one uploaded",
            record.sha256
        );
        assert_eq!(tungate_control::store::sha256_hex(&bytes), record.sha256);
    }
    doc
}

/// Sends numbered reply `n` and says whether the client received it.
fn forwards(rs: &FrameSocket, client: &FrameSocket, n: u32) -> bool {
    rs.send(&numbered(n));
    client.wait_for(Duration::from_secs(5), |f| number_of(f) == Some(n))
}

/// The writes a batch made: accepted per kind, and the kind in flight when it was cut short.
type BatchOutcome = (BTreeMap<Op, usize>, Option<Op>);

#[test]
fn kill_9_during_config_writes_uploads_and_deletes_always_leaves_an_accepted_state() {
    let t = Topology::new();
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let acc = dir.path().join("acc.wasm");
    std::fs::write(&acc, module(0)).unwrap();
    let base_text = t.config("");
    let base = tungate_config::parse_toml(&base_text).unwrap();
    let file_text = format!(
        "{base_text}[[vips]]\naddress = \"{VIP}\"\n[[vips.plugins]]\nplugin = \"acc\"\n\
         config = {{ variant = 0 }}\n"
    );
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let mut sent = vec![variant(&base, 0)];
    let mut modules: BTreeSet<String> = [tungate_control::store::sha256_hex(&module(0))].into();
    let mut rng = rand::rng();
    let mut k = 1;
    let mut accepted: BTreeMap<Op, usize> = BTreeMap::new();
    let mut cut_short: BTreeMap<Op, usize> = BTreeMap::new();
    let (mut temporaries_left, mut modules_left) = (0, 0);
    let started = Instant::now();
    for iteration in 0..ITERATIONS {
        // The module file seeds the first start only; later starts use the stored state.
        let plugin_flag = ["--plugin", acc.to_str().unwrap()];
        let extra: &[&str] = if iteration == 0 { &plugin_flag } else { &[] };
        let mut tg = Tungate::start_in(&t.gw, &state_dir, &file_text, extra);
        assert!(
            tg.is_running(),
            "iteration {iteration}: tungate starts from the state left"
        );
        assert_eq!(count_named(&state_dir, ".tmp-"), 0, "temporaries removed");
        assert_eq!(count_named(&state_dir.join("plugins"), ".tmp-"), 0);
        assert_eq!(
            unindexed_modules(&state_dir),
            0,
            "unindexed modules removed"
        );
        assert!(
            forwards(&rs, &client, iteration as u32),
            "iteration {iteration}: tungate forwards from the state left"
        );
        let token = tg.token();
        let stop = Arc::new(AtomicBool::new(false));
        // Register every variant and module before it is sent: any may be the one stored.
        let batch: Vec<usize> = (k..k + BATCH).collect();
        k += BATCH;
        for &j in &batch {
            match Op::of(j) {
                Op::Config => sent.push(variant(&base, j)),
                Op::UploadBound | Op::UploadSpare => {
                    modules.insert(tungate_control::store::sha256_hex(&module(j)));
                }
                Op::Delete => {}
            }
        }
        let writer = {
            let (stop, ns, token, base) =
                (stop.clone(), t.gw.name.clone(), token.clone(), base.clone());
            std::thread::spawn(move || -> BatchOutcome {
                let mut accepted = BTreeMap::new();
                for &j in &batch {
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let kind = Op::of(j);
                    let (request, expected) = match kind {
                        Op::Config => {
                            let body = serde_json::to_vec(&variant(&base, j)).unwrap();
                            let r =
                                http(&token, "PUT", "/api/v1/config", "application/json", &body);
                            (r, 200)
                        }
                        Op::UploadBound => {
                            let r = http(
                                &token,
                                "PUT",
                                "/api/v1/plugins/acc",
                                "application/wasm",
                                &module(j),
                            );
                            (r, 200)
                        }
                        Op::UploadSpare => {
                            let path = format!("/api/v1/plugins/spare-{j}");
                            (
                                http(&token, "PUT", &path, "application/wasm", &module(j)),
                                200,
                            )
                        }
                        Op::Delete => {
                            let path = format!("/api/v1/plugins/spare-{}", j - 1);
                            (http(&token, "DELETE", &path, "application/json", b""), 204)
                        }
                    };
                    match try_request(&ns, request) {
                        Some(status) if status == expected => {
                            *accepted.entry(kind).or_default() += 1;
                        }
                        Some(status) => panic!("write {j} ({kind:?}) answered {status}"),
                        None => return (accepted, Some(kind)),
                    }
                }
                (accepted, None)
            })
        };
        std::thread::sleep(Duration::from_millis(rng.random_range(0..LATEST_KILL_MS)));
        tg.kill9();
        stop.store(true, Ordering::Relaxed);
        let (a, cut) = writer.join().unwrap();
        for (kind, n) in a {
            *accepted.entry(kind).or_default() += n;
        }
        if let Some(kind) = cut {
            *cut_short.entry(kind).or_default() += 1;
        }
        temporaries_left +=
            count_named(&state_dir, ".tmp-") + count_named(&state_dir.join("plugins"), ".tmp-");
        modules_left += unindexed_modules(&state_dir);
        check_state(&state_dir, &sent, &modules);
    }
    let accepted_total: usize = accepted.values().sum();
    let cut_total: usize = cut_short.values().sum();
    eprintln!(
        "{ITERATIONS} kills in {:?}: {accepted_total} writes accepted {accepted:?}, \
         {cut_total} cut short {cut_short:?}; the kills left {temporaries_left} temporary \
         files and {modules_left} unindexed modules, all removed at the next start",
        started.elapsed()
    );
    assert!(
        accepted_total > ITERATIONS,
        "writes were accepted between the kills ({accepted_total})"
    );
    assert!(
        cut_total > ITERATIONS / 2,
        "most kills cut a request short ({cut_total})"
    );
    for kind in [Op::Config, Op::UploadBound, Op::UploadSpare, Op::Delete] {
        assert!(
            accepted.get(&kind).copied().unwrap_or(0) > 0,
            "{kind:?} writes were accepted"
        );
    }
    // A last start serves exactly what is stored, and forwards.
    let tg = Tungate::start_in(&t.gw, &state_dir, &file_text, &[]);
    let api = Api::new(&t.gw, ADMIN, None);
    let served: Document = serde_json::from_value(api.get("/api/v1/config").json()).unwrap();
    assert!(sent.contains(&served));
    assert_eq!(api.get("/readyz").status, 200);
    assert!(forwards(&rs, &client, u32::MAX));
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
    let stored = check_state(&state_dir, &sent, &modules);
    assert_eq!(stored, served);
}
