//! The appliance from a newcomer's side (needs root): `tungate demo` from the real binary —
//! its web UI answers at the printed URL, traffic is counted, a cidr-filter bound through
//! the API drops one client prefix's replies while the other's flow, and the host is as
//! before once it stops —; `tungate status` against a running appliance and against
//! nothing; and the template plugin builds and passes `tungate plugin check`.
//!
//! Expected values come from outside the code under test: curl from the host and from the
//! client's namespace, the API's JSON, and `ip`/`nft` listings of the host.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::Value;
use tungate_test_support::Netns;
use tungate_test_support::plugins;
use tungate_test_support::process::binary;
use tungate_test_support::wait::{filters_in_force, until};

const VIP: &str = "192.0.2.80";
const PREFIX_A: &str = "198.51.100.0/24";
const PREFIX_B: &str = "203.0.113.0/24";

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {program}: {e}"))
}

fn text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Held by each test that compares the host before and after a demo: two demos at once
/// would each see the other's namespaces come and go.
static HOST: Mutex<()> = Mutex::new(());

/// Takes [`HOST`], also after another test failed while holding it.
fn host_lock() -> MutexGuard<'static, ()> {
    HOST.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// What the demo could leave behind in the host's namespace: links, rules, routes,
/// nftables tables, the demo's namespaces and temporary directories.
fn host_snapshot() -> Vec<String> {
    let mut lines = Vec::new();
    for (program, args) in [
        ("ip", vec!["-o", "link", "show"]),
        ("ip", vec!["rule", "show"]),
        ("ip", vec!["route", "show", "table", "all"]),
        ("nft", vec!["list", "tables"]),
    ] {
        let out = run(program, &args);
        assert!(out.status.success(), "{program} {args:?} failed");
        lines.extend(
            text(&out)
                .lines()
                .map(|l| format!("{program} {}: {l}", args[0])),
        );
    }
    lines.extend(
        text(&run("ip", &["netns", "list"]))
            .lines()
            .filter(|l| l.starts_with("tgdemo-"))
            .map(|l| format!("netns: {l}")),
    );
    if let Ok(dir) = std::fs::read_dir(std::env::temp_dir()) {
        lines.extend(
            dir.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("tungate-demo-"))
                .map(|n| format!("tmp: {n}")),
        );
    }
    lines.sort();
    lines
}

/// The running demo; stopped with SIGTERM (its own cleanup then runs) if a test fails.
struct Demo {
    child: Child,
    lines: Receiver<String>,
    seen: Vec<String>,
}

impl Demo {
    fn start(port: u16, duration: u64) -> Demo {
        Demo::start_with(port, duration, &[])
    }

    /// Starts `tungate demo` with `extra` flags after the usual ones.
    fn start_with(port: u16, duration: u64, extra: &[&str]) -> Demo {
        let mut child = Command::new(binary())
            .args([
                "demo",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--rate",
                "40",
                "--duration",
                &duration.to_string(),
                "--plugin-dir",
                &plugins::wasm_dir().display().to_string(),
            ])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start tungate demo");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                println!("demo| {line}");
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Demo {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until one satisfies `want`, within `timeout`.
    fn wait_line(&mut self, timeout: Duration, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if want(&line) {
                        return line;
                    }
                }
                Err(_) => panic!(
                    "the demo printed no expected line within {timeout:?}; it printed:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Collects the rest of the output and the exit status.
    fn wait_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(500)) {
                    self.seen.push(line);
                }
                return status;
            }
            assert!(Instant::now() < deadline, "the demo did not stop in time");
            while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(100)) {
                self.seen.push(line);
            }
        }
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = run("kill", &["-TERM", &self.child.id().to_string()]);
            let deadline = Instant::now() + Duration::from_secs(30);
            while self.child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        // Last resort, should the demo's own guard not have run.
        let fleet = (1..=8).map(|i| format!("gw{i}"));
        let roles = ["client", "rs", "gw", "router"].map(String::from);
        for role in roles.into_iter().chain(fleet) {
            let _ = run(
                "ip",
                &[
                    "netns",
                    "del",
                    &format!("tgdemo-{}-{role}", self.child.id()),
                ],
            );
        }
    }
}

fn curl(args: &[&str]) -> Output {
    run("curl", &[&["-sS", "-m", "5"], args].concat())
}

fn api_get(url: &str, token: &str, path: &str) -> Value {
    let out = curl(&[
        "-f",
        "-H",
        &format!("Authorization: Bearer {token}"),
        &format!("{url}{path}"),
    ]);
    assert!(
        out.status.success(),
        "GET {path}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn vip_stats(stats: &Value) -> &Value {
    stats["vips"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["address"] == VIP)
        .expect("the VIP in /api/v1/stats")
}

fn binding<'a>(stats: &'a Value, plugin: &str) -> &'a Value {
    stats["bindings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["vip"] == VIP && b["plugin"] == plugin)
        .unwrap_or_else(|| panic!("no {plugin} binding in {stats}"))
}

fn counter(value: &Value, key: &str) -> u64 {
    value[key].as_u64().unwrap_or(0)
}

/// `answered A x/y B x/y` of a progress line: ((answered, sent) of A, of B).
fn progress(line: &str) -> Option<((u64, u64), (u64, u64))> {
    let mut words = line.split_whitespace();
    let mut pair = |prefix: &str| -> Option<(u64, u64)> {
        words.find(|w| *w == prefix)?;
        let (a, n) = words.next()?.split_once('/')?;
        Some((a.parse().ok()?, n.parse().ok()?))
    };
    Some((pair(PREFIX_A)?, pair(PREFIX_B)?))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn the_demo_serves_counts_filters_and_leaves_the_host_clean() {
    plugins::plugin_wasm("accounting"); // builds the example plugins if needed
    let _host = host_lock();
    let before = host_snapshot();
    let port = free_port();
    let mut demo = Demo::start(port, 50);
    let pid = demo.child.id();

    let url_line = demo.wait_line(Duration::from_secs(120), |l| {
        l.trim_start().starts_with("web UI")
    });
    let url = url_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL")
        .trim_end_matches('/')
        .to_owned();
    assert_eq!(url, format!("http://127.0.0.1:{port}"));
    let token_line = demo.wait_line(Duration::from_secs(5), |l| {
        l.trim_start().starts_with("token")
    });
    let token = token_line.split_whitespace().nth(1).unwrap().to_owned();
    let client_ns = format!("tgdemo-{pid}-client");
    assert!(
        text(&run("ip", &["netns", "list"])).contains(&client_ns),
        "the client namespace exists while the demo runs"
    );

    // The web UI answers at the printed URL, from the host.
    let page = curl(&["-f", &format!("{url}/")]);
    assert!(page.status.success(), "GET / failed");
    assert!(
        text(&page).to_lowercase().contains("<!doctype html"),
        "{}",
        text(&page)
    );

    // Traffic is counted: the VIP's forwarded packets and accounting's counters rise.
    let first = api_get(&url, &token, "/api/v1/stats");
    std::thread::sleep(Duration::from_secs(4));
    let second = api_get(&url, &token, "/api/v1/stats");
    assert!(
        counter(vip_stats(&second), "forwarded_packets")
            > counter(vip_stats(&first), "forwarded_packets"),
        "forwarded packets rise: {first} -> {second}"
    );
    for prefix in [PREFIX_A, PREFIX_B] {
        let key = format!("packets{{{prefix}}}");
        let (a, b) = (
            counter(&binding(&first, "accounting")["counters"], &key),
            counter(&binding(&second, "accounting")["counters"], &key),
        );
        assert!(b > a, "accounting's {key} rises: {a} -> {b}");
    }

    // Bind cidr-filter denying prefix B, through the API, as the demo's hint says.
    let body = serde_json::json!({"plugins": [
        {"plugin": "accounting", "config": {"prefixes": [PREFIX_A, PREFIX_B]}},
        {"plugin": "cidr-filter", "config": {"deny": [PREFIX_B]}}
    ]});
    let put = curl(&[
        "-f",
        "-X",
        "PUT",
        "-H",
        &format!("Authorization: Bearer {token}"),
        "-H",
        "Content-Type: application/json",
        "-d",
        &body.to_string(),
        &format!("{url}/api/v1/vips/{VIP}"),
    ]);
    assert!(
        put.status.success(),
        "PUT vips: {}",
        String::from_utf8_lossy(&put.stderr)
    );
    // The new chain is in force once every worker runs the published filters.
    until(
        Duration::from_secs(10),
        "every worker runs the published filters",
        || filters_in_force(&api_get(&url, &token, "/api/v1/status")),
    );
    let third = api_get(&url, &token, "/api/v1/stats");
    std::thread::sleep(Duration::from_secs(5));
    let fourth = api_get(&url, &token, "/api/v1/stats");
    let plugin_drops = |s: &Value| counter(&vip_stats(s)["dropped"], "plugin");
    assert!(
        plugin_drops(&fourth) > plugin_drops(&third),
        "prefix B's replies are dropped and counted under `plugin`: {third} -> {fourth}"
    );
    let denied = |s: &Value| counter(&binding(s, "cidr-filter")["counters"], "dropped{denied}");
    assert!(
        denied(&fourth) > denied(&third),
        "cidr-filter counts its denials"
    );
    assert!(
        counter(vip_stats(&fourth), "forwarded_packets")
            > counter(vip_stats(&third), "forwarded_packets"),
        "the other prefix keeps flowing"
    );

    // Seen from the clients, independently of the demo's own traffic.
    let probe = |source: &str, seconds: &str| {
        run(
            "ip",
            &[
                "netns",
                "exec",
                &client_ns,
                "curl",
                "-sS",
                "-m",
                seconds,
                "--interface",
                source,
                &format!("http://{VIP}/"),
            ],
        )
    };
    let allowed = probe("198.51.100.11", "5");
    assert!(allowed.status.success(), "prefix A is answered");
    assert!(
        text(&allowed).contains("hello 198.51.100.11"),
        "{}",
        text(&allowed)
    );
    let denied_probe = probe("203.0.113.11", "2");
    assert!(!denied_probe.status.success(), "prefix B gets no answer");

    // The demo's own progress shows it too: a line after the deny with B all lost, A answered.
    let deny_seen = demo.seen.len();
    let line = demo.wait_line(
        Duration::from_secs(15),
        |l| matches!(progress(l), Some(((a, n), (0, m))) if a > 0 && a == n && m > 0),
    );
    assert!(demo.seen.len() > deny_seen, "{line}");

    // It stops by itself (--duration), cleanly, and the host is as before.
    let status = demo.wait_exit(Duration::from_secs(90));
    assert!(
        status.success(),
        "demo exit: {status}\n{}",
        demo.seen.join("\n")
    );
    assert!(
        demo.seen
            .iter()
            .any(|l| l.contains("the host is as it was")),
        "{}",
        demo.seen.join("\n")
    );
    let after = host_snapshot();
    assert_eq!(before, after, "the host changed across the demo");
    assert!(!text(&run("ip", &["netns", "list"])).contains(&format!("tgdemo-{pid}-")));
}

/// `tungate demo --tunnel gue`: the real server's replies reach the gateway as GUE (the
/// configuration names the tunnel, the stats show replies forwarded and no tunnel drop),
/// and the host is as before.
#[test]
fn the_demo_with_a_gue_tunnel_forwards_its_replies() {
    plugins::plugin_wasm("accounting");
    let _host = host_lock();
    let before = host_snapshot();
    let port = free_port();
    let mut demo = Demo::start_with(port, 25, &["--tunnel", "gue"]);
    demo.wait_line(Duration::from_secs(120), |l| {
        l.contains("GUE 10.99.0.2:<per-flow port> -> 10.99.0.1:6080")
    });
    let url_line = demo.wait_line(Duration::from_secs(60), |l| {
        l.trim_start().starts_with("web UI")
    });
    let url = url_line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL")
        .trim_end_matches('/')
        .to_owned();
    let token_line = demo.wait_line(Duration::from_secs(5), |l| {
        l.trim_start().starts_with("token")
    });
    let token = token_line.split_whitespace().nth(1).unwrap().to_owned();
    let config = api_get(&url, &token, "/api/v1/config");
    assert_eq!(config["peers"][0]["tunnel"], "gue", "{config}");
    let first = api_get(&url, &token, "/api/v1/stats");
    std::thread::sleep(Duration::from_secs(4));
    let second = api_get(&url, &token, "/api/v1/stats");
    assert!(
        counter(vip_stats(&second), "forwarded_packets")
            > counter(vip_stats(&first), "forwarded_packets"),
        "forwarded packets rise: {first} -> {second}"
    );
    for reason in [
        "wrong_tunnel",
        "bad_udp_length",
        "bad_udp_checksum",
        "bad_gue",
    ] {
        assert_eq!(counter(&second["drops"], reason), 0, "{reason}: {second}");
    }
    let status = demo.wait_exit(Duration::from_secs(90));
    assert!(
        status.success(),
        "demo exit: {status}\n{}",
        demo.seen.join("\n")
    );
    assert_eq!(before, host_snapshot(), "the host changed across the demo");
}

#[test]
fn a_demo_that_fails_half_way_removes_what_it_made() {
    plugins::plugin_wasm("accounting");
    // rate-limit is not a Wasm module: its upload, after the namespaces, the tunnel and the
    // gateway exist, is refused.
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(plugins::wasm_dir()).unwrap().flatten() {
        if entry.path().extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(entry.path(), dir.path().join(entry.file_name())).unwrap();
        }
    }
    std::fs::write(dir.path().join("rate_limit.wasm"), b"not wasm at all").unwrap();
    let _host = host_lock();
    let before = host_snapshot();
    let out = run(
        &binary(),
        &[
            "demo",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--plugin-dir",
            dir.path().to_str().unwrap(),
        ],
    );
    let (stdout, stderr) = (text(&out), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(
        stdout.contains("[4/7]"),
        "it got as far as the gateway:\n{stdout}"
    );
    assert!(
        stderr.contains("/api/v1/plugins/rate-limit: HTTP 422"),
        "{stderr}"
    );
    assert!(stdout.contains("removed namespace"), "{stdout}");
    assert_eq!(
        before,
        host_snapshot(),
        "the host changed across the failed demo"
    );

    // Refused before anything is made: a busy --listen, no plugins, a bad --rate.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    let empty = tempfile::tempdir().unwrap();
    let empty = empty.path().to_str().unwrap();
    for (args, status, says) in [
        (vec!["--listen", busy.as_str()], 1, "cannot listen on"),
        (vec!["--plugin-dir", empty], 1, "the four example plugins"),
        (vec!["--rate", "0"], 2, "--rate 0 is not a request rate"),
    ] {
        let mut all = vec!["demo"];
        all.extend(args.iter().copied());
        if !args.contains(&"--plugin-dir") {
            all.extend(["--plugin-dir", dir.path().to_str().unwrap()]);
        }
        let out = run(&binary(), &all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{all:?}: {stderr}");
        assert!(stderr.contains(says), "{all:?}: {stderr}");
        assert!(!text(&out).contains("[1/7]"), "{all:?} made nothing");
    }
    assert_eq!(before, host_snapshot());
}

#[test]
fn a_demo_killed_with_sigkill_is_cleaned_up_by_the_next() {
    plugins::plugin_wasm("accounting");
    let _host = host_lock();
    let before = host_snapshot();
    let mut killed = Demo::start(free_port(), 600);
    let pid = killed.child.id();
    killed.wait_line(Duration::from_secs(120), |l| {
        l.trim_start().starts_with("web UI")
    });
    killed.child.kill().unwrap(); // SIGKILL: its cleanup guard never runs
    killed.child.wait().unwrap();
    let gw = format!("tgdemo-{pid}-gw");
    assert!(
        text(&run("ip", &["netns", "list"])).contains(&gw),
        "the killed demo left its namespaces"
    );
    // Its gateway (tungate run, a child process) stops with it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !text(&run("ip", &["netns", "pids", &gw])).trim().is_empty() {
        assert!(
            Instant::now() < deadline,
            "tungate run outlived the killed demo"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    let next = run(
        &binary(),
        &[
            "demo",
            "--duration",
            "1",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--plugin-dir",
            &plugins::wasm_dir().display().to_string(),
        ],
    );
    let (stdout, stderr) = (text(&next), String::from_utf8_lossy(&next.stderr));
    assert!(next.status.success(), "{stdout}{stderr}");
    let leftovers = stdout
        .lines()
        .find(|l| l.contains("removed leftovers of a killed demo"))
        .unwrap_or_else(|| panic!("{stdout}"));
    for made in [
        format!("tgdemo-{pid}-client"),
        format!("tgdemo-{pid}-rs"),
        gw,
        format!("tungate-demo-{pid}"),
    ] {
        assert!(leftovers.contains(&made), "{made} in: {leftovers}");
    }
    assert_eq!(before, host_snapshot(), "the host is as before both demos");
}

#[test]
fn status_summarises_a_running_appliance_and_fails_clearly_on_nothing() {
    // Nothing listening: a clear error, exit 1.
    let nothing = run(
        &binary(),
        &[
            "status",
            "--url",
            &format!("http://127.0.0.1:{}", free_port()),
        ],
    );
    assert_eq!(nothing.status.code(), Some(1));
    let err = String::from_utf8_lossy(&nothing.stderr);
    assert!(err.contains("cannot reach the admin API"), "{err}");

    // A running appliance with a bound plugin.
    let ns = Netns::new("st");
    ns.ip(&["link", "add", "g0", "type", "veth", "peer", "name", "r0"]);
    ns.ip(&["link", "set", "g0", "up"]);
    ns.ip(&["link", "set", "r0", "up"]);
    ns.ip(&["addr", "add", "10.202.0.1/24", "dev", "g0"]);
    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("cidr-filter.wasm");
    std::fs::write(&module, plugins::plugin_wasm("cidr-filter")).unwrap();
    let config = "[gateway]\naddress = \"10.202.0.1\"\n\
        [[peers]]\nname = \"rs1\"\naddress = \"10.202.0.2\"\nvips = [\"192.0.2.10\"]\n\
        [[vips]]\naddress = \"192.0.2.10\"\n\
        [[vips.plugins]]\nplugin = \"cidr-filter\"\nconfig = { deny = [\"203.0.113.0/24\"] }\n";
    let gateway = tungate_test_support::Tungate::start_with(
        &ns,
        config,
        &["--plugin", module.to_str().unwrap()],
    );
    let out = ns.exec(&binary(), &["status", "--url", "http://127.0.0.1:9080"]);
    let shown = text(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.starts_with("tungate "), "{shown}");
    assert!(
        shown.lines().next().unwrap().ends_with(": ready"),
        "{shown}"
    );
    assert!(
        shown.contains("decap userspace · 1 worker · gateway 10.202.0.1"),
        "{shown}"
    );
    // The start waits for the first netcfg pass: known from the first request.
    assert!(shown.contains("  network: as configured ("), "{shown}");
    let vip_row = shown
        .lines()
        .find(|l| l.starts_with("192.0.2.10 "))
        .expect(&shown);
    assert_eq!(
        vip_row.split_whitespace().collect::<Vec<_>>(),
        ["192.0.2.10", "rs1", "0", "0", "B", "0", "-"]
    );
    let binding_row = shown
        .lines()
        .find(|l| l.starts_with("192.0.2.10#0"))
        .expect(&shown);
    assert_eq!(
        binding_row.split_whitespace().take(7).collect::<Vec<_>>(),
        ["192.0.2.10#0", "cidr-filter", "pass", "0", "0", "-", "no"]
    );
    drop(gateway);
}

/// The template as a plugin author starts from it: copied out of the repository, renamed,
/// its SDK path set (deploy/ci/plugin-template.sh, the CI step), it tests and builds alone
/// (its own workspace, profile, toolchain and lock file, offline) and the module passes
/// `tungate plugin check`.
#[test]
fn the_template_copied_out_of_the_repository_builds_alone_and_passes_plugin_check() {
    let script = plugins::workspace().join("deploy/ci/plugin-template.sh");
    let out = run(script.to_str().unwrap(), &[&binary()]);
    let shown = text(&out);
    assert!(
        out.status.success(),
        "{shown}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(shown.contains("min_ttl.wasm: accepted"), "{shown}");
    assert!(shown.contains("name:    min-ttl"), "{shown}");
    assert!(shown.contains("abi:     v2"), "{shown}");
}

/// A port `p` with `p`, `p + 1` ... `p + count - 1` free on 127.0.0.1.
fn free_ports(count: u16) -> u16 {
    loop {
        let first = free_port();
        if first.checked_add(count).is_some()
            && (1..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", first + i)).is_ok())
        {
            return first;
        }
    }
}

/// `NAME{...vip="VIP"...} VALUE` of a Prometheus text page.
fn vip_sample(page: &str, name: &str) -> Option<u64> {
    page.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) && l.contains(&format!("vip=\"{VIP}\"")))
        .find_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
}

/// The pids in the namespace `ns` (`ip netns pids`).
fn pids_in(ns: &str) -> Vec<String> {
    text(&run("ip", &["netns", "pids", ns]))
        .split_whitespace()
        .map(String::from)
        .collect()
}

/// Issue 15 item 5: `tungate demo --gateways 3` builds the fleet — BIRD router with ECMP,
/// three gateways each running `tungate run --fleet` and BIRD — and the replies of its
/// clients' many flows go through all three (each gateway's own `/metrics`, reached on the
/// printed addresses), following one etcd (the plugins uploaded through gw1 are bound on
/// all three); SIGTERM then stops every tungate, BIRD and etcd and removes every
/// namespace and file: the host is as before. Also the refusals before anything is made.
#[test]
fn the_fleet_demo_spreads_replies_over_three_gateways_and_leaves_the_host_clean() {
    plugins::plugin_wasm("accounting");
    let _host = host_lock();
    let before = host_snapshot();
    let port = free_ports(3);
    let mut demo = Demo::start_with(port, 300, &["--gateways", "3"]);
    let pid = demo.child.id();
    demo.wait_line(Duration::from_secs(180), |l| {
        l.trim_start().starts_with("web UI")
    });
    let urls: Vec<String> = (0..3)
        .map(|i| format!("http://127.0.0.1:{}", port + i))
        .collect();
    for (i, url) in urls.iter().enumerate().skip(1) {
        let printed = demo.wait_line(Duration::from_secs(5), |l| {
            l.trim_start().starts_with(&format!("gw{}", i + 1))
        });
        assert!(printed.contains(url), "{printed}");
    }
    let router = format!("tgdemo-{pid}-router");
    let route = text(&run(
        "ip",
        &["-n", &router, "route", "show", "10.200.0.1/32"],
    ));
    for hop in ["10.1.1.2", "10.1.2.2", "10.1.3.2"] {
        assert!(
            route.contains(hop),
            "the router's ECMP route has {hop}: {route}"
        );
    }
    // Every gateway carries replies (its own counters, from its /metrics).
    let mut carried = vec![0u64; 3];
    until(
        Duration::from_secs(90),
        "each of the three gateways forwarded replies",
        || {
            for (i, url) in urls.iter().enumerate() {
                let page = text(&curl(&["-f", &format!("{url}/metrics")]));
                carried[i] = vip_sample(&page, "tungate_vip_forwarded_packets_total").unwrap_or(0);
            }
            carried.iter().all(|&c| c > 0)
        },
    );
    println!("forwarded per gateway: {carried:?}");
    // One etcd (CI installs etcd-server): the plugins uploaded through gw1 are in force on
    // all three, and gw1's fleet view lists the three members on the latest revision.
    assert!(
        demo.seen.iter().any(|l| l.contains("etcd (one member)")),
        "{}",
        demo.seen.join("\n")
    );
    until(
        Duration::from_secs(30),
        "gw1's fleet view lists gw1..gw3 on the latest revision",
        || {
            let out = curl(&["-f", &format!("{}/api/v1/fleet", urls[0])]);
            let Ok(fleet) = serde_json::from_slice::<Value>(&out.stdout) else {
                return false;
            };
            let latest = &fleet["latest_revision"];
            let members: Vec<&str> = fleet["gateways"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|g| &g["applied_revision"] == latest)
                .filter_map(|g| g["member"].as_str())
                .collect();
            ["gw1", "gw2", "gw3"].iter().all(|m| members.contains(m))
        },
    );
    for url in &urls {
        let page = text(&curl(&["-f", &format!("{url}/api/v1/stats")]));
        let stats: Value = serde_json::from_str(&page).expect("stats JSON");
        assert_eq!(binding(&stats, "accounting")["vip"], VIP, "{url}");
    }
    // The per-gateway lines say so too.
    for i in 1..=3 {
        demo.wait_line(Duration::from_secs(30), |l| {
            l.trim_start()
                .starts_with(&format!("gw{i} 10.1.{i}.2  forwarded +"))
                && l.ends_with("routed")
        });
    }
    let namespaces: Vec<String> = ["router", "rs", "client", "gw1", "gw2", "gw3"]
        .iter()
        .map(|role| format!("tgdemo-{pid}-{role}"))
        .collect();
    let processes: Vec<String> = namespaces.iter().flat_map(|ns| pids_in(ns)).collect();
    // etcd and BIRD in the router, BIRD and tungate in each gateway.
    assert!(processes.len() >= 8, "{processes:?}");

    run("kill", &["-TERM", &pid.to_string()]);
    let status = demo.wait_exit(Duration::from_secs(90));
    let stdout = demo.seen.join("\n");
    assert!(status.success(), "{status}:\n{stdout}");
    for stopped in [
        "tungate on gw1 stopped",
        "tungate on gw3 stopped",
        "BIRD on the router stopped",
        "BIRD on gw2 stopped",
        "etcd on the router stopped",
        "done: the host is as it was before the demo",
    ] {
        assert!(stdout.contains(stopped), "{stopped}:\n{stdout}");
    }
    for p in &processes {
        assert!(
            !std::path::Path::new(&format!("/proc/{p}")).exists(),
            "process {p} of the demo is still running"
        );
    }
    let left = text(&run("ip", &["netns", "list"]));
    for ns in &namespaces {
        assert!(!left.contains(ns.as_str()), "{ns} is left: {left}");
    }
    assert_eq!(
        before,
        host_snapshot(),
        "the host changed across the fleet demo"
    );

    // Refused before anything is made: no BIRD in PATH, GUE, too many gateways.
    let wasm = plugins::wasm_dir().display().to_string();
    let listen = format!("127.0.0.1:{}", free_ports(3));
    let base = ["demo", "--listen", &listen, "--plugin-dir", &wasm];
    let no_bird = Command::new(binary())
        .args(base)
        .args(["--gateways", "3"])
        .env("PATH", "/nonexistent")
        .output()
        .unwrap();
    for (out, status, says) in [
        (no_bird, 1, "apt-get install bird2"),
        (
            run(
                &binary(),
                &[&base[..], &["--gateways", "3", "--tunnel", "gue"]].concat(),
            ),
            1,
            "--gateways with --tunnel gue is not supported",
        ),
        (
            run(&binary(), &[&base[..], &["--gateways", "9"]].concat()),
            2,
            "9 is not in 1..=8",
        ),
    ] {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(status), "{stderr}");
        assert!(stderr.contains(says), "{says}: {stderr}");
        assert!(!text(&out).contains("[1/8]"), "made nothing");
    }
    assert_eq!(before, host_snapshot());
}
