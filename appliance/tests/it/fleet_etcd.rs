//! Fleet mode's configuration from etcd (`tungate run --fleet NAME --etcd URL`): three
//! real `tungate` processes, each in its own namespace, against one real etcd member in a
//! hub namespace (a bridge joins them). One test walks the whole story so the gateways and
//! etcd start once: seeding, a write through one gateway in force on all three, a stale
//! `If-Match`, a 2 MiB module served from etcd byte for byte (replaced, then deleted: its
//! chunks leave etcd with the record that referenced them), a revision one gateway
//! cannot apply (its own worker count makes the revision's plugin bindings overflow its
//! instance pool) — also when it restarts meanwhile —, etcd stopped (real replies still forwarded, writes 503) and back, a
//! killed gateway leaving the list, and a restart with etcd down on the cached revision.

use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::PacketBuilder;
use serde_json::{Value, json};
use tungate_control::store::sha256_hex;
use tungate_test_support::etcd::Etcd;
use tungate_test_support::frames::FrameSocket;
use tungate_test_support::http::{Api, Response};
use tungate_test_support::packets::{ethernet, ipip};
use tungate_test_support::plugins::pass_all_module;
use tungate_test_support::wait::until;
use tungate_test_support::{Netns, Tungate};

/// The shared GIP (tungate puts it on `lo` of every gateway: `--fleet`).
const GIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// rs1, the peer every gateway's file seeds, and the VIP it serves.
const RIP: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 2);
const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
/// The hub (etcd, and the client the test's replies go to).
const HUB: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 1);
const ADMIN: &str = "127.0.0.1:9080";
/// gw3's data-path workers (gw1 and gw2 run one): a per-host setting of its file.
const GW3_WORKERS: u32 = 2;
/// Plugin bindings of the revision gw3 cannot apply: more than the instance pool (4096)
/// holds at `GW3_WORKERS` instances each, fewer than it holds at one.
const BINDINGS: usize = 2049;

/// The MAC of gateway `n`'s `eth0`.
fn gateway_mac(n: usize) -> [u8; 6] {
    [0x02, 0, 0, 0x88, 0, n as u8]
}

/// The file of gateway `n`: per-host fields (its ingress interface, the packet rings, its
/// workers), and fleet-wide ones that only seed an empty fleet (gw2 and gw3 add a peer that
/// must never be in force: etcd wins over their files).
fn config(n: usize) -> String {
    let extra = if n == 1 {
        String::new()
    } else {
        format!(
            "[[peers]]\nname = \"only{n}\"\naddress = \"10.77.0.{}\"\n",
            100 + n
        )
    };
    let workers = if n == 3 { GW3_WORKERS } else { 1 };
    format!(
        "[gateway]\naddress = \"{GIP}\"\nio = \"packet\"\ningress_interface = \"eth0\"\n\
         workers = {workers}\n\
         [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [\"{VIP}\"]\n{extra}"
    )
}

/// One gateway's namespace, process and state directory (the process first: fields drop
/// in order, so it is gone before its namespace is deleted).
struct Gateway {
    process: Option<Tungate>,
    ns: Netns,
    state_dir: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Gateway {
    fn new(hub: &Netns, n: usize) -> Gateway {
        let ns = Netns::new("fleet");
        let hub_side = format!("fl{n}");
        let mac = gateway_mac(n)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        hub.ip(&[
            "link", "add", &hub_side, "type", "veth", "peer", "name", "eth0", "address", &mac,
            "netns", &ns.name,
        ]);
        hub.ip(&["link", "set", &hub_side, "master", "br0", "up"]);
        ns.ip(&[
            "addr",
            "add",
            &format!("10.88.0.{}/24", 10 + n),
            "dev",
            "eth0",
        ]);
        ns.ip(&["link", "set", "eth0", "up"]);
        let dir = tempfile::tempdir().unwrap();
        Gateway {
            ns,
            process: None,
            state_dir: dir.path().join("state"),
            _dir: dir,
        }
    }

    fn start(&mut self, n: usize, etcd: &str) -> String {
        let member = format!("gw{n}");
        let process = Tungate::start_in(
            &self.ns,
            &self.state_dir,
            &config(n),
            &["--fleet", "f1", "--etcd", etcd, "--fleet-member", &member],
        );
        let log = process.startup_log.clone();
        self.process = Some(process);
        log
    }

    fn api(&self) -> Api {
        let token = self.process.as_ref().expect("running").token();
        Api::new(&self.ns, ADMIN, Some(token))
    }

    fn status(&self) -> Value {
        self.api().get("/api/v1/status").json()
    }

    fn revision(&self) -> u64 {
        self.status()["fleet"]["applied_revision"]
            .as_u64()
            .unwrap_or(0)
    }
}

/// The chunk keys of module `sha` in etcd (read with `etcdctl`).
fn module_keys(etcd: &Etcd, sha: &str) -> Vec<String> {
    let (ok, out) = etcd.etcdctl(&[
        "get",
        "--prefix",
        "--keys-only",
        &format!("/tungate/f1/modules/{sha}/"),
    ]);
    assert!(ok, "etcdctl get: {out}");
    out.lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn etag(r: &Response) -> String {
    r.header("etag").expect("an ETag").to_owned()
}

fn has_peer(g: &Gateway, name: &str) -> bool {
    g.api().get(&format!("/api/v1/peers/{name}")).status == 200
}

/// Sends `count` real replies of rs1 (IPIP RIP -> GIP, inner VIP -> the hub, UDP source
/// port `round`) from the hub to gateway `n` and waits (at most 10 s) until every one of
/// them came back from it decapsulated; the number that came back.
fn forwarded(hub: &Netns, n: usize, round: u16, count: u32) -> u32 {
    let link = format!("fl{n}");
    // Every EtherType: a bridge port hands IPv4 frames to the bridge before an IPv4-only
    // packet socket on it would see them.
    let socket = FrameSocket::open_protocol(hub, &link, 3);
    let hub_mac = mac_of(hub, &link);
    for i in 0..count {
        let mut inner = Vec::new();
        PacketBuilder::ipv4(VIP.octets(), HUB.octets(), 64)
            .udp(round, 40000)
            .write(&mut inner, &i.to_be_bytes())
            .expect("a UDP reply");
        socket.send(&ethernet(gateway_mac(n), hub_mac, &ipip(RIP, GIP, &inner)));
    }
    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while (seen.len() as u32) < count && std::time::Instant::now() < deadline {
        for frame in socket.receive_for(Duration::from_millis(100), |f| {
            f.len() >= 46
                && f[6..12] == gateway_mac(n)
                && f[12..14] == [8, 0]
                && f[23] == 17
                && f[26..30] == VIP.octets()
                && f[34..36] == round.to_be_bytes()
        }) {
            seen.insert(u32::from_be_bytes(
                frame[42..46].try_into().expect("4 bytes"),
            ));
        }
    }
    seen.len() as u32
}

/// The MAC address of `link` in `ns`.
fn mac_of(ns: &Netns, link: &str) -> [u8; 6] {
    let shown: Value =
        serde_json::from_str(&ns.ip(&["-j", "link", "show", link])).expect("ip -j prints JSON");
    let mut mac = [0u8; 6];
    for (byte, part) in mac.iter_mut().zip(
        shown[0]["address"]
            .as_str()
            .expect("a link address")
            .split(':'),
    ) {
        *byte = u8::from_str_radix(part, 16).expect("hex");
    }
    mac
}

/// A document of `BINDINGS` bindings of plugin `tiny` (three per VIP, VIPs 10.66.x.y).
fn with_many_bindings(doc: &Value) -> Value {
    let mut doc = doc.clone();
    let vips = (0..BINDINGS.div_ceil(3))
        .map(|i| {
            let n = (BINDINGS - 3 * i).min(3);
            json!({
                "address": format!("10.66.{}.{}", i / 250, 1 + i % 250),
                "plugins": vec![json!({"plugin": "tiny"}); n],
            })
        })
        .collect::<Vec<_>>();
    doc["vips"] = json!(vips);
    doc
}

#[test]
fn three_gateways_follow_one_etcd_and_keep_forwarding_without_it() {
    let hub = Netns::new("fleethub");
    hub.ip(&["link", "add", "br0", "type", "bridge"]);
    hub.ip(&["addr", "add", "10.88.0.1/24", "dev", "br0"]);
    hub.ip(&["link", "set", "br0", "up"]);
    let mut etcd = Etcd::start(&hub, "10.88.0.1");
    let url = etcd.url();
    let mut gws: Vec<Gateway> = (1..=3).map(|n| Gateway::new(&hub, n)).collect();

    // gw1 seeds the empty fleet from its file, once; the others take the fleet's state.
    let log = gws[0].start(1, &url);
    assert!(log.contains("fleet f1 was empty: seeded from"), "{log}");
    for n in [2, 3] {
        let log = gws[n - 1].start(n, &url);
        assert!(!log.contains("seeded"), "{log}");
    }
    let seeded = gws[0].revision();
    assert!(seeded > 0);
    for g in &gws {
        assert_eq!(g.revision(), seeded);
        assert!(g.status()["ready"].as_bool().unwrap());
        assert!(has_peer(g, "rs1"));
        assert!(!has_peer(g, "only2") && !has_peer(g, "only3"), "etcd wins");
        // The per-host fields stay the file's.
        let doc = g.api().get("/api/v1/config").json();
        assert_eq!(doc["gateway"]["ingress_interface"], "eth0");
        assert_eq!(doc["gateway"]["io"], "packet");
        // --fleet put GIP on lo; it forwards real replies.
        assert!(
            g.ns.ip(&["addr", "show", "dev", "lo"])
                .contains(&format!("{GIP}/32"))
        );
    }
    assert_eq!(gws[2].status()["workers"], GW3_WORKERS);
    // The status shows the routing side beside the etcd side; so does the fleet list.
    for g in &gws {
        until(Duration::from_secs(10), "GIP announced", || {
            g.status()["fleet"]["announcement"] == "announced"
        });
        assert_eq!(g.status()["fleet"]["etcd"], true);
    }
    until(
        Duration::from_secs(10),
        "every gateway listed as announced",
        || {
            let fleet = gws[0].api().get("/api/v1/fleet").json();
            let rows = fleet["gateways"].as_array().cloned().unwrap_or_default();
            rows.len() == 3 && rows.iter().all(|g| g["announcement"] == "announced")
        },
    );
    for n in 1..=3 {
        let got = forwarded(&hub, n, 1000 + n as u16, 20);
        assert_eq!(
            got,
            20,
            "gw{n}: {} {}",
            gws[n - 1].api().get("/api/v1/stats").text(),
            hub.ip(&["-s", "link"])
        );
    }
    let seeded_etcd = etcd.etcdctl(&["get", "/tungate/f1/state/config", "--print-value-only"]);
    assert!(
        seeded_etcd.0 && seeded_etcd.1.contains("10.77.0.2"),
        "{seeded_etcd:?}"
    );
    assert!(
        !seeded_etcd.1.contains("eth0"),
        "per-host fields stay out of etcd"
    );

    // A write through gw1, made against the revision read, is in force on all three; the
    // ETag everywhere is the fleet revision.
    let read = gws[0].api().get("/api/v1/config");
    let tag = etag(&read);
    assert_eq!(tag, format!("\"{seeded}\""));
    let put = gws[0].api().send(
        "PUT",
        "/api/v1/peers/rs2",
        &[("Content-Type", "application/json"), ("If-Match", &tag)],
        json!({"name": "rs2", "address": "10.77.0.3", "vips": ["192.0.2.11"]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(put.status, 200, "{}", put.text());
    let after = etag(&put);
    assert_ne!(after, tag);
    for g in &gws {
        until(Duration::from_secs(10), "rs2 in force everywhere", || {
            has_peer(g, "rs2")
        });
        assert_eq!(etag(&g.api().get("/api/v1/config")), after);
    }

    // A stale If-Match through another gateway: 412, nothing changed anywhere.
    let stale = gws[1].api().send(
        "PUT",
        "/api/v1/peers/rs3",
        &[("Content-Type", "application/json"), ("If-Match", &tag)],
        json!({"name": "rs3", "address": "10.77.0.4"})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert_eq!(stale.error_code(), "precondition_failed");
    for g in &gws {
        assert!(!has_peer(g, "rs3"));
        assert_eq!(etag(&g.api().get("/api/v1/config")), after);
    }

    // A 2 MiB module uploaded through gw2 (over etcd's 1.5 MiB request limit) reaches the
    // others from etcd byte for byte.
    let big = pass_all_module(&"x".repeat(2 << 20));
    assert!(big.len() > 3 << 19);
    let sha = sha256_hex(&big);
    let up = gws[1].api().put_wasm("/api/v1/plugins/big", &big);
    assert_eq!(up.status, 200, "{}", up.text());
    for g in &gws {
        until(Duration::from_secs(20), "the module everywhere", || {
            g.api().get("/api/v1/plugins/big").json()["sha256"] == sha.as_str()
        });
        let stored = std::fs::read(g.state_dir.join("plugins").join(format!("{sha}.wasm")))
            .expect("the module in the state directory");
        assert_eq!(sha256_hex(&stored), sha);
        assert_eq!(stored, big);
    }
    assert_eq!(module_keys(&etcd, &sha).len(), big.len().div_ceil(1 << 20));

    // Replaced through another gateway by another module: the old module's chunks leave
    // etcd in the transaction that replaced it, the new one's are there, every gateway
    // runs the new one. Deleted: its chunks go too.
    let other = pass_all_module(&"y".repeat(2 << 20));
    let other_sha = sha256_hex(&other);
    let up = gws[0].api().put_wasm("/api/v1/plugins/big", &other);
    assert_eq!(up.status, 200, "{}", up.text());
    for g in &gws {
        until(Duration::from_secs(20), "the new module everywhere", || {
            g.api().get("/api/v1/plugins/big").json()["sha256"] == other_sha.as_str()
        });
    }
    assert_eq!(module_keys(&etcd, &sha), Vec::<String>::new());
    assert_eq!(
        module_keys(&etcd, &other_sha).len(),
        other.len().div_ceil(1 << 20)
    );
    // A stale upload is refused and leaves no chunks behind.
    let stale_module = pass_all_module("stale");
    let stale = gws[1].api().send(
        "PUT",
        "/api/v1/plugins/late",
        &[("Content-Type", "application/wasm"), ("If-Match", &tag)],
        &stale_module,
    );
    assert_eq!(stale.status, 412, "{}", stale.text());
    assert!(module_keys(&etcd, &sha256_hex(&stale_module)).is_empty());
    let gone = gws[2].api().delete("/api/v1/plugins/big");
    assert!(gone.status < 300, "{} {}", gone.status, gone.text());
    for g in &gws {
        until(
            Duration::from_secs(20),
            "the plugin gone everywhere",
            || g.api().get("/api/v1/plugins/big").status == 404,
        );
    }
    assert_eq!(module_keys(&etcd, &other_sha), Vec::<String>::new());

    // A revision gw3 cannot apply: 2049 bindings of a tiny plugin need 2049 instances on
    // gw1 and gw2 (one worker each) but 4098 on gw3 (two workers, a per-host setting of its
    // file), more than its instance pool holds. gw1 and gw2 run it; gw3 stays on the last
    // good revision, ready, and says why (status, metrics, fleet list).
    let tiny = gws[0]
        .api()
        .put_wasm("/api/v1/plugins/tiny", &pass_all_module("tiny"));
    assert_eq!(tiny.status, 200, "{}", tiny.text());
    let tiny_rev: u64 = etag(&tiny).trim_matches('"').parse().unwrap();
    until(Duration::from_secs(10), "gw3 has the tiny plugin", || {
        gws[2].revision() == tiny_rev
    });
    let good = gws[2].revision();
    let doc = gws[0].api().get("/api/v1/config").json();
    let many = gws[0]
        .api()
        .put_json("/api/v1/config", &with_many_bindings(&doc));
    assert_eq!(many.status, 200, "{}", many.text());
    let many_rev: u64 = etag(&many).trim_matches('"').parse().unwrap();
    for g in &gws[..2] {
        until(
            Duration::from_secs(20),
            "the bindings in force on gw1 and gw2",
            || g.revision() == many_rev,
        );
        let stats = g.api().get("/api/v1/stats").json();
        let bindings = stats["bindings"].as_array().map_or(0, Vec::len);
        assert_eq!(bindings, BINDINGS, "{}", g.status());
    }
    until(Duration::from_secs(20), "gw3 reports the refusal", || {
        gws[2].status()["fleet"]["latest_revision"].as_u64() == Some(many_rev)
    });
    let s3 = gws[2].status();
    assert_eq!(s3["ready"], true);
    assert_eq!(s3["fleet"]["applied_revision"].as_u64(), Some(good));
    assert_eq!(s3["revision"].as_u64(), Some(good));
    let error = s3["fleet"]["error"].as_str().unwrap_or_default().to_owned();
    assert!(
        error.contains(&format!("fleet revision {many_rev} is not applied here"))
            && error.contains(&format!(
                "{} plugin instances ({BINDINGS} bindings × {GW3_WORKERS} workers)",
                BINDINGS * GW3_WORKERS as usize
            )),
        "{error}"
    );
    let stats3 = gws[2].api().get("/api/v1/stats").json();
    assert_eq!(stats3["bindings"].as_array().map_or(0, Vec::len), 0);
    let metrics = gws[2].api().get("/metrics").text();
    assert!(
        metrics.contains(&format!("tungate_fleet_applied_revision {good}\n"))
            && metrics.contains(&format!("tungate_fleet_latest_revision {many_rev}\n")),
        "{metrics}"
    );
    until(
        Duration::from_secs(10),
        "the fleet list shows gw3 behind",
        || {
            let fleet = gws[0].api().get("/api/v1/fleet").json();
            let rows = fleet["gateways"].as_array().cloned().unwrap_or_default();
            rows.len() == 3
                && rows
                    .iter()
                    .all(|g| (g["member"] == "gw3") != (g["latest"] == true))
                && rows[2]["error"]
                    .as_str()
                    .is_some_and(|e| e.contains("plugin instances"))
        },
    );
    // gw3 still forwards on the last good revision.
    assert_eq!(forwarded(&hub, 3, 1003, 20), 20);
    // Restarted while that revision is the fleet's latest, gw3 starts on its cached one
    // (the refusal is found only when building the plugins), ready, and says why.
    let (code, _) = gws[2].process.take().unwrap().stop();
    assert_eq!(code, 0);
    let log = gws[2].start(3, &url);
    assert!(
        log.contains(&format!("fleet revision {many_rev} is not applied here"))
            && log.contains(&format!("starting on the cached fleet revision {good}")),
        "{log}"
    );
    let s3 = gws[2].status();
    assert_eq!(s3["ready"], true, "{s3}");
    assert_eq!(s3["fleet"]["applied_revision"].as_u64(), Some(good));
    assert_eq!(s3["fleet"]["latest_revision"].as_u64(), Some(many_rev));
    assert!(
        s3["fleet"]["error"]
            .as_str()
            .is_some_and(|e| e.contains("plugin instances")),
        "{s3}"
    );
    let metrics = gws[2].api().get("/metrics").text();
    assert!(
        metrics.contains(&format!("tungate_fleet_applied_revision {good}\n")),
        "{metrics}"
    );
    assert_eq!(forwarded(&hub, 3, 1004, 20), 20);
    // The bindings removed again: gw3 catches up.
    let back = gws[1].api().put_json("/api/v1/config", &doc);
    assert_eq!(back.status, 200, "{}", back.text());
    let back_rev: u64 = etag(&back).trim_matches('"').parse().unwrap();
    for g in &gws {
        until(
            Duration::from_secs(10),
            "everyone on the latest revision",
            || g.revision() == back_rev,
        );
        assert!(g.status()["fleet"]["error"].is_null());
    }

    // etcd stopped: every gateway keeps forwarding with what it runs; writes answer 503.
    etcd.stop();
    let put = gws[0].api().put_json(
        "/api/v1/peers/rs4",
        &json!({"name": "rs4", "address": "10.77.0.5"}),
    );
    assert_eq!(put.status, 503, "{}", put.text());
    assert_eq!(put.error_code(), "unavailable");
    assert!(put.text().contains("etcd"), "{}", put.text());
    for (n, g) in gws.iter().enumerate() {
        let s = g.status();
        assert_eq!(s["ready"], true);
        assert_eq!(s["fleet"]["applied_revision"].as_u64(), Some(back_rev));
        assert!(!has_peer(g, "rs4"));
        // Real replies still go through every gateway.
        assert_eq!(
            forwarded(&hub, n + 1, 2000 + n as u16, 20),
            20,
            "gw{}",
            n + 1
        );
    }

    // etcd back: a write made then reaches every gateway.
    etcd.resume();
    until(Duration::from_secs(20), "writes accepted again", || {
        gws[2]
            .api()
            .put_json(
                "/api/v1/peers/rs4",
                &json!({"name": "rs4", "address": "10.77.0.5"}),
            )
            .status
            == 200
    });
    for g in &gws {
        until(Duration::from_secs(10), "rs4 everywhere", || {
            has_peer(g, "rs4")
        });
    }

    // A gateway killed with kill -9 leaves the list when its lease expires.
    gws[0].process.take().unwrap().kill9();
    until(Duration::from_secs(15), "gw1 left the list", || {
        let fleet = gws[1].api().get("/api/v1/fleet").json();
        let rows = fleet["gateways"].as_array().cloned().unwrap_or_default();
        rows.len() == 2 && rows.iter().all(|g| g["member"] != "gw1")
    });

    // Restarted with etcd down, a gateway forwards on its cached revision.
    let last = gws[1].revision();
    etcd.stop();
    let (code, _) = gws[1].process.take().unwrap().stop();
    assert_eq!(code, 0);
    let log = gws[1].start(2, &url);
    assert!(
        log.contains("starting on the cached fleet revision"),
        "{log}"
    );
    let s = gws[1].status();
    assert_eq!(s["ready"], true);
    assert_eq!(s["fleet"]["applied_revision"].as_u64(), Some(last));
    assert!(has_peer(&gws[1], "rs4") && !has_peer(&gws[1], "only2"));
}
