//! The fleet benchmark (root, `bird2`): in the fleet test topology (router with BIRD and
//! ECMP, three gateways with BIRD and `tungate run --fleet`, 64 flows at 1000 replies/s), it
//! measures, ROUNDS times each, how long the router keeps a gateway's route after
//!
//! - `kill -9` of its tungate (the health link vanishes with the process),
//! - `tungate drain` (the health link set down; also the drain's own report),
//! - SIGTERM (a clean stop withdraws first),
//! - not ready: its egress link (`eth1`; BGP runs over `eth0` and stays up) loses its
//!   carrier, so `/readyz` turns false and the gateway withdraws while it runs,
//!
//! the replies lost in each case, and how long a restarted gateway (for not ready: the
//! same gateway once the carrier is back) takes to be back on the router. Times are the router's view: its route table polled every 1 ms. Then, with the
//! gateways following one real etcd member (`--etcd`), the time from sending a write to
//! one gateway's API until the written revision is in force on every gateway (each one's
//! `GET /api/v1/config` ETag, polled every 1 ms). Writes `deploy/bench/results/fleet.md`.
//!
//! Run: `cargo build --release -p tungate --bin tungate --example fleet_bench &&
//! target/release/examples/fleet_bench [ROUNDS]` (default 5).

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use tungate_test_support::fleet::{Fleet, FlowStream, GIP};
use tungate_test_support::http::Api;
use tungate_test_support::wait::until;

const RATE: u64 = 1000;
const LIMIT: Duration = Duration::from_secs(10);

/// One measured case: withdrawal times (ms) and replies lost.
#[derive(Default)]
struct Case {
    withdrawn_ms: Vec<f64>,
    lost: Vec<u32>,
    sent: Vec<u32>,
    rejoin_ms: Vec<f64>,
    extra: Vec<String>,
}

fn let_run(stream: &FlowStream, n: u32) {
    let from = stream.sent();
    until(Duration::from_secs(30), "the stream sends", || {
        stream.sent() >= from + n
    });
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

fn max(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// Whether the router namespace `router` routes GIP through `hop` (its kernel table).
fn router_has(router: &str, hop: std::net::Ipv4Addr) -> bool {
    let out = std::process::Command::new("ip")
        .args(["-n", router, "route", "show", &format!("{GIP}/32")])
        .output()
        .expect("ip route show");
    String::from_utf8_lossy(&out.stdout).contains(&format!("via {hop} "))
}

/// Starts gateway `g`'s tungate again.
fn restart(fleet: &mut Fleet, g: usize) {
    fleet.gateways[g].start_tungate();
}

/// Ends gateway `g`'s service with `end` while a thread polls the router every 1 ms, then
/// brings it back with `restore` and waits until it is back and carries traffic.
fn round(
    fleet: &mut Fleet,
    g: usize,
    case: &mut Case,
    end: &dyn Fn(&mut Fleet, usize) -> Option<String>,
    restore: &dyn Fn(&mut Fleet, usize),
) {
    let hop = fleet.gateways[g].next_hop();
    let router = fleet.router.name.clone();
    assert!(router_has(&router, hop), "gw{} is announced", g + 1);
    let stream = FlowStream::start(fleet, RATE, Duration::from_secs(3));
    let_run(&stream, RATE as u32 / 2);
    let started = Instant::now();
    let poller = std::thread::spawn(move || {
        while started.elapsed() < LIMIT {
            if !router_has(&router, hop) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    });
    let extra = end(fleet, g);
    let withdrawn = poller
        .join()
        .expect("the poller")
        .expect("the route is withdrawn");
    case.withdrawn_ms.push(withdrawn.as_secs_f64() * 1000.0);
    let_run(&stream, RATE as u32 / 2);
    let delivered = stream.finish();
    case.lost.push(delivered.lost());
    case.sent.push(delivered.sent);
    if let Some(e) = extra {
        case.extra.push(e);
    }
    let restarted = Instant::now();
    restore(fleet, g);
    fleet
        .time_until(LIMIT, |hops| hops.contains(&hop))
        .expect("the gateway rejoins");
    case.rejoin_ms
        .push(restarted.elapsed().as_secs_f64() * 1000.0);
    let stream = FlowStream::start(fleet, RATE, Duration::from_millis(500));
    let before = fleet.gateways[g].forwarded();
    until(LIMIT, "the restarted gateway carries traffic", || {
        fleet.gateways[g].forwarded() > before
    });
    drop(stream.finish());
}

/// `rounds` writes (a new peer each) through gateway 1's API of a fleet that follows etcd:
/// for each, the time until every gateway's configuration carries the written revision.
fn writes_in_force(rounds: usize) -> Vec<f64> {
    let mut fleet = Fleet::start_with_etcd(3, |_| Vec::new());
    let apis: Vec<Api> = fleet
        .gateways
        .iter_mut()
        .map(|g| {
            let token = g.tungate().token();
            Api::new(&g.ns, "127.0.0.1:9080", Some(token))
        })
        .collect();
    let etag = |api: &Api| {
        api.get("/api/v1/config")
            .header("etag")
            .map(str::to_owned)
            .unwrap_or_default()
    };
    let mut times = Vec::new();
    for r in 0..rounds {
        let name = format!("w{r}");
        let body = serde_json::json!({"name": name, "address": format!("10.77.1.{}", r + 1)});
        let started = Instant::now();
        let put = apis[0].put_json(&format!("/api/v1/peers/{name}"), &body);
        assert_eq!(put.status, 200, "the write: {}", put.text());
        let written = put.header("etag").expect("an ETag").to_owned();
        while !apis.iter().all(|api| etag(api) == written) {
            assert!(started.elapsed() < LIMIT, "write {r} in force everywhere");
            std::thread::sleep(Duration::from_millis(1));
        }
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .map(|a| a.parse().expect("ROUNDS is a number"))
        .unwrap_or(5);
    let load_before = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut fleet = Fleet::start(3);
    let mut kill = Case::default();
    let mut drain = Case::default();
    let mut stop = Case::default();
    let mut not_ready = Case::default();
    for r in 0..rounds {
        eprintln!("round {}/{rounds}", r + 1);
        round(
            &mut fleet,
            2,
            &mut kill,
            &|f, g| {
                f.gateways[g].tungate.take().expect("runs").kill9();
                None
            },
            &restart,
        );
        round(
            &mut fleet,
            1,
            &mut drain,
            &|f, g| {
                let token = f.gateways[g]
                    .tungate()
                    .state_dir
                    .join("admin-token")
                    .display()
                    .to_string();
                let out = f.gateways[g].ns.tungate(&["drain", "--token-file", &token]);
                assert_eq!(out.code, 0, "drain: {}{}", out.stdout, out.stderr);
                let (status, _) = f.gateways[g].tungate.take().expect("runs").wait();
                assert_eq!(status, 0);
                Some(out.stdout.lines().next().unwrap_or_default().to_owned())
            },
            &restart,
        );
        round(
            &mut fleet,
            0,
            &mut stop,
            &|f, g| {
                let (status, _) = f.gateways[g].tungate.take().expect("runs").stop();
                assert_eq!(status, 0);
                None
            },
            &restart,
        );
        round(
            &mut fleet,
            0,
            &mut not_ready,
            &|f, g| {
                f.set_egress_carrier(g, false);
                None
            },
            &|f, g| f.set_egress_carrier(g, true),
        );
    }
    drop(fleet);
    eprintln!("writes through etcd");
    let writes = writes_in_force(rounds * 4);
    let load_after = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Fleet: route withdrawal and failover (BIRD 2, ECMP, 3 gateways)\n\n\
         Generated by `target/release/examples/fleet_bench {rounds}` (appliance/examples/fleet_bench.rs) \
         on this 2-core VM, in the fleet test topology: a router namespace running BIRD with \
         `deploy/fleet/bird-router.conf` (ECMP, `fib_multipath_hash_policy` 3 over the inner \
         addresses and ports), three gateways each running BIRD with \
         `deploy/fleet/bird-gateway.conf` and `tungate run --fleet` (userspace decap, io \
         packet), 64 flows of IPIP replies at {RATE}/s. \"Withdrawn\" is from the action \
         (kill -9 sent, `tungate drain` started, SIGTERM sent, the egress link set down) until the router's kernel \
         route to GIP lost that gateway's next hop (route table polled every 1 ms). \"Lost\" \
         is replies sent in the round (about 1 s) that never reached the client. \"Rejoin\" is \
         from starting tungate again until the router has the next hop back (includes \
         tungate's start-up). Load average (1, 5, 15 min) before: {}, after: {} — other \
         engineers were compiling on the same 2 cores; figures move with that.\n",
        load_before
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
        load_after
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    );
    let _ = writeln!(
        out,
        "| case | rounds | withdrawn, median ms | withdrawn, max ms | lost per failover (each round) | rejoin, median ms |\n|---|---|---|---|---|---|"
    );
    for (name, c) in [
        ("kill -9", &kill),
        ("tungate drain", &drain),
        ("SIGTERM", &stop),
        ("not ready (egress link lost carrier)", &not_ready),
    ] {
        let _ = writeln!(
            out,
            "| {name} | {} | {:.1} | {:.1} | {} | {:.0} |",
            c.withdrawn_ms.len(),
            median(&c.withdrawn_ms),
            max(&c.withdrawn_ms),
            c.lost
                .iter()
                .zip(&c.sent)
                .map(|(l, s)| format!("{l}/{s}"))
                .collect::<Vec<_>>()
                .join(", "),
            median(&c.rejoin_ms),
        );
    }
    let _ = writeln!(
        out,
        "\nThe drain includes waiting for the traffic to move (1 s without a packet): its \
         withdrawal itself, as the drain reports it:\n"
    );
    for e in &drain.extra {
        let _ = writeln!(out, "- {e}");
    }
    let _ = writeln!(
        out,
        "\nNot ready: the router's end of the gateway's egress link (`eth1`, its \
         `gateway.egress_interface`) is set down, so `eth1` loses its carrier while the BGP \
         session over `eth0` stays up; \"withdrawn\" runs from that command until the \
         router's route lost the next hop (the link notification, `/readyz` false, the \
         announcer woken by that change, the health link down, BIRD's withdrawal). \
         \"Lost\" are the replies the router still sent to the gateway meanwhile, which it \
         could not send on. \"Rejoin\" runs from setting the link up again until the route \
         is back (no restart: the same process).\n"
    );
    let _ = writeln!(
        out,
        "## A write in force on every gateway (etcd)\n\n\
         The same three gateways started with `--etcd` on one etcd member (Debian \
         `etcd-server`) in the router's namespace. Each write is `PUT /api/v1/peers/NAME` \
         through gateway 1's API (a compare-and-swap in etcd, then applied there); the time \
         runs from sending it until every gateway's `GET /api/v1/config` answers the written \
         revision as its ETag (each polled every 1 ms, one request after another, so the \
         figure includes up to three requests' time).\n\n\
         | writes | median ms | max ms | each, ms |\n|---|---|---|---|\n| {} | {:.1} | {:.1} | {} |\n",
        writes.len(),
        median(&writes),
        max(&writes),
        writes
            .iter()
            .map(|t| format!("{t:.0}"))
            .collect::<Vec<_>>()
            .join(", "),
    );
    print!("{out}");
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/bench/results/fleet.md"
    );
    std::fs::write(path, out).expect("write the results");
    eprintln!("written to {path}");
}
