//! A fleet of three gateways behind one router, with real BIRD daemons (needs root and
//! `bird2`) and one real etcd member (`etcd-server`): every gateway runs `tungate run
//! --fleet --etcd` and BIRD with the shipped
//! `deploy/fleet/bird-gateway.conf`; the router runs BIRD with `deploy/fleet/bird-router.conf`
//! (ECMP through `merge paths`) and hashes the inner addresses and ports of the IPIP replies
//! (`fib_multipath_hash_policy` 3). One topology for every case, in order:
//!
//! - each gateway holds GIP on `lo` without ARP, and `tungate net plan --fleet` finds
//!   nothing to change;
//! - spread: 64 flows (16 clients × 4 ports), each gateway carries ≥ 15% of the packets;
//! - failover: `kill -9` of one tungate under traffic takes its next hop off the router,
//!   every flow delivers again, the lost packets are printed; restarted, it rejoins and
//!   carries traffic;
//! - not ready: gw1's egress link loses its carrier (its BGP session runs over the other
//!   link and stays up): `/readyz` answers 503 naming the link, the router loses gw1's next
//!   hop, every flow delivers again, and the fleet list another gateway serves shows gw1
//!   not ready with that reason (its etcd registration carries it), also on the web UI's
//!   fleet page in headless chromium (web/e2e's `fleet` step); the carrier back, gw1 is ready, announced and carries
//!   traffic again, the same process throughout;
//! - drain: `tungate drain` withdraws, the gateway stops by itself, nothing is lost;
//! - a gateway without `--fleet` announces nothing and refuses a drain.
//!
//! Times are printed, never asserted (the fleet benchmark measures them); the bounds are
//! liveness limits for a loaded machine.

use std::time::Duration;

use tungate_test_support::fleet::{FLEET_NAME, FLOWS, Fleet, FlowStream, GIP, Gateway};
use tungate_test_support::http::Api;
use tungate_test_support::wait::until;

const LIMIT: Duration = Duration::from_secs(5);
const RATE: u64 = 1000;

/// Waits until the stream has sent `n` more replies than now.
fn let_run(stream: &FlowStream, n: u32) {
    let from = stream.sent();
    until(Duration::from_secs(30), "the stream sends", || {
        stream.sent() >= from + n
    });
}

fn fleet_member_holds_gip_without_arp(g: &mut Gateway) {
    let lo = g.ns.ip(&["-4", "addr", "show", "dev", "lo"]);
    assert!(
        lo.contains(&format!("{GIP}/32")),
        "gw{}: GIP on lo: {lo}",
        g.index
    );
    assert_eq!(g.ns.sysctl("net/ipv4/conf/all/arp_ignore"), "1");
    assert_eq!(g.ns.sysctl("net/ipv4/conf/all/arp_announce"), "2");
    let link = g.ns.ip(&["link", "show", "dev", "tg-health"]);
    assert!(link.contains(",UP"), "gw{}: tg-health up: {link}", g.index);
    let config = g.tungate().config.display().to_string();
    let plan = g.ns.tungate(&[
        "net",
        "plan",
        "--fleet",
        FLEET_NAME,
        "--config",
        &config,
        "--state-file",
        &g.ns.path("plan-state.json").display().to_string(),
    ]);
    assert_eq!(
        plan.code, 0,
        "gw{}: nothing left to change in fleet mode: {}{}",
        g.index, plan.stdout, plan.stderr
    );
}

#[test]
fn three_gateways_spread_fail_over_and_drain() {
    let mut fleet = Fleet::start_with_etcd(3, |_| Vec::new());
    for g in &mut fleet.gateways {
        fleet_member_holds_gip_without_arp(g);
    }

    // Spread.
    let before: Vec<u64> = fleet.gateways.iter_mut().map(Gateway::forwarded).collect();
    let stream = FlowStream::start(&fleet, 2 * RATE, Duration::from_secs(2));
    let_run(&stream, 40 * FLOWS);
    let spread = stream.finish();
    let carried: Vec<u64> = fleet
        .gateways
        .iter_mut()
        .zip(&before)
        .map(|(g, b)| g.forwarded() - b)
        .collect();
    let total: u64 = carried.iter().sum();
    eprintln!(
        "spread: {} replies over {FLOWS} flows, {} lost; per gateway {carried:?}",
        spread.sent,
        spread.lost()
    );
    assert_eq!(spread.lost(), 0, "steady state loses nothing");
    for (i, c) in carried.iter().enumerate() {
        assert!(
            *c * 100 >= total * 15,
            "gw{} carried {c} of {total} packets (< 15%): {carried:?}",
            i + 1
        );
    }

    // Failover: kill -9 of gw3's tungate under traffic.
    let stream = FlowStream::start(&fleet, RATE, Duration::from_secs(3));
    let_run(&stream, RATE as u32);
    let victim = fleet.gateways[2].next_hop();
    let killed_at = stream.sent();
    fleet.gateways[2].tungate.take().expect("gw3 runs").kill9();
    let withdrawn = fleet
        .time_until(LIMIT, |hops| !hops.contains(&victim))
        .expect("the killed gateway's next hop leaves the router");
    let withdrawn_at = stream.sent();
    let route = fleet
        .router_bird
        .birdc(&["show", "route", "for", &GIP.to_string()]);
    assert!(
        !route.contains(&victim.to_string()),
        "BIRD on the router no longer has gw3's route: {route}"
    );
    assert_eq!(fleet.next_hops().len(), 2, "the two others stay");
    let_run(&stream, RATE as u32);
    fleet.gateways[2].start_tungate();
    let rejoined = fleet
        .time_until(Duration::from_secs(10), |hops| hops.contains(&victim))
        .expect("the restarted gateway rejoins");
    until(LIMIT, "the restarted gateway carries traffic", || {
        fleet.gateways[2].forwarded() > 0
    });
    let_run(&stream, RATE as u32);
    let failover = stream.finish();
    let silent = failover.silent_flows_from(withdrawn_at);
    eprintln!(
        "failover: kill -9 at reply {killed_at}; route withdrawn after {withdrawn:?} (reply \
         {withdrawn_at}); rejoined {rejoined:?} after the restart; {} of {} replies lost",
        failover.lost(),
        failover.sent
    );
    assert!(
        silent.is_empty(),
        "flows broken after the failover: {silent:?}"
    );

    // Not ready: gw1's egress link loses its carrier under traffic.
    not_ready_withdraws_and_ready_announces_again(&mut fleet);

    // Drain gw2: nothing lost.
    let stream = FlowStream::start(&fleet, RATE, Duration::from_secs(3));
    let_run(&stream, RATE as u32);
    let token = fleet.gateways[1]
        .tungate()
        .state_dir
        .join("admin-token")
        .display()
        .to_string();
    let drained_hop = fleet.gateways[1].next_hop();
    let drain = fleet.gateways[1]
        .ns
        .tungate(&["drain", "--token-file", &token]);
    eprintln!("tungate drain: {}{}", drain.stdout, drain.stderr);
    assert_eq!(drain.code, 0, "the drain succeeds");
    assert!(drain.stdout.contains("withdrawn after"), "{}", drain.stdout);
    assert!(
        !fleet.next_hops().contains(&drained_hop),
        "the drained gateway's route is gone before it stops"
    );
    let (status, _) = fleet.gateways[1].tungate.take().expect("gw2 runs").wait();
    assert_eq!(status, 0, "a drained gateway stops cleanly");
    let_run(&stream, RATE as u32 / 2);
    let drained = stream.finish();
    eprintln!("drain: {} of {} replies lost", drained.lost(), drained.sent);
    assert_eq!(drained.lost(), 0, "a drain loses nothing");

    // Without --fleet: nothing announced, and a drain is refused.
    let g = &mut fleet.gateways[1];
    g.tungate = Some(tungate_test_support::Tungate::start(
        &g.ns,
        &Gateway::config(),
    ));
    let token = g.tungate().state_dir.join("admin-token");
    let refused =
        g.ns.tungate(&["drain", "--token-file", &token.display().to_string()]);
    assert_eq!(refused.code, 1, "{}{}", refused.stdout, refused.stderr);
    assert!(
        refused.stderr.contains("not in fleet mode"),
        "{}",
        refused.stderr
    );
    assert!(
        !g.ns.ip(&["link", "show"]).contains("tg-health"),
        "no health link without --fleet"
    );
    assert!(!fleet.next_hops().contains(&drained_hop));
}

/// The web UI's fleet page, in headless chromium (web/e2e's runner, its `fleet` step) against
/// gateway `index` (0-based): every row says what `/api/v1/fleet` says, and `not_ready`'s row
/// is `NOT READY: reason`. Needs `cd web && npm run build && npm run e2e:build` before the
/// build of tungate (CI's web stages run first).
fn fleet_page_in_chromium(fleet: &mut Fleet, index: usize, not_ready: &str) {
    let web = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../web");
    let runner = web.join("e2e/.build/run.js");
    assert!(
        runner.exists(),
        "{} is missing: run `cd web && npm run e2e:build`",
        runner.display()
    );
    let token = fleet.gateways[index]
        .tungate()
        .state_dir
        .join("admin-token");
    let shots = tempfile::tempdir().unwrap();
    let run = fleet.gateways[index].ns.exec(
        "env",
        &[
            &format!("TUNGATE_E2E_NOT_READY={not_ready}"),
            "node",
            &runner.display().to_string(),
            "--base-url",
            "http://127.0.0.1:9080",
            "--token-file",
            &token.display().to_string(),
            "--only",
            "^fleet$",
            "--screenshots",
            &shots.path().display().to_string(),
        ],
    );
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success() && out.contains("ok   fleet"),
        "the fleet page in chromium: {out}{}",
        String::from_utf8_lossy(&run.stderr)
    );
}

/// gw1's egress link (`eth1`, not the one BGP runs over) loses its carrier: gw1 turns not
/// ready and its route leaves the router while its BGP session stays established; the
/// carrier back, it is announced again and carries traffic, without a restart.
fn not_ready_withdraws_and_ready_announces_again(fleet: &mut Fleet) {
    let api = Api::new(&fleet.gateways[0].ns, "127.0.0.1:9080", None);
    let pid = fleet.gateways[0].tungate().pid();
    assert_eq!(api.get("/readyz").status, 200);
    let hop = fleet.gateways[0].next_hop();
    let stream = FlowStream::start(fleet, RATE, Duration::from_secs(3));
    let_run(&stream, RATE as u32);
    fleet.set_egress_carrier(0, false);
    let withdrawn = fleet
        .time_until(LIMIT, |hops| !hops.contains(&hop))
        .expect("the not-ready gateway's next hop leaves the router");
    let withdrawn_at = stream.sent();
    let readyz = api.get("/readyz");
    assert_eq!(readyz.status, 503, "{}", readyz.text());
    assert_eq!(
        readyz.text(),
        "not ready: egress interface eth1 is down (no carrier)\n"
    );
    let status = api.get("/api/v1/status").json();
    assert_eq!(status["fleet"]["announcement"], "withdrawn", "{status}");
    // Its registration says why: gw2's fleet list shows it.
    let others = Api::new(&fleet.gateways[1].ns, "127.0.0.1:9080", None);
    let gw1_row = || {
        let list = others.get("/api/v1/fleet").json();
        list["gateways"]
            .as_array()
            .and_then(|rows| rows.iter().find(|g| g["member"] == "gw1").cloned())
            .unwrap_or_default()
    };
    until(LIMIT, "gw1 listed not ready, with the reason", || {
        let row = gw1_row();
        row["ready"] == false
            && row["not_ready"] == "egress interface eth1 is down (no carrier)"
            && row["announcement"] == "withdrawn"
    });
    fleet_page_in_chromium(fleet, 1, "gw1");
    let session = fleet.router_bird.birdc(&["show", "protocols", "gw1"]);
    assert!(
        session.contains("Established"),
        "the BGP session to gw1 stays up: the route left by readiness: {session}"
    );
    assert_eq!(fleet.next_hops().len(), 2, "the two others stay");
    let_run(&stream, RATE as u32);

    fleet.set_egress_carrier(0, true);
    let announced = fleet
        .time_until(LIMIT, |hops| hops.contains(&hop))
        .expect("the gateway ready again is announced again");
    assert_eq!(api.get("/readyz").text(), "ready\n");
    until(LIMIT, "gw1 listed ready again, no reason", || {
        let row = gw1_row();
        row["ready"] == true && row["not_ready"].is_null()
    });
    let before = fleet.gateways[0].forwarded();
    until(LIMIT, "gw1 carries traffic again", || {
        fleet.gateways[0].forwarded() > before
    });
    assert_eq!(fleet.gateways[0].tungate().pid(), pid, "the same process");
    let_run(&stream, RATE as u32);
    let delivered = stream.finish();
    let silent = delivered.silent_flows_from(withdrawn_at);
    eprintln!(
        "not ready: route withdrawn after {withdrawn:?}, announced again {announced:?} after \
         the carrier returned; {} of {} replies lost",
        delivered.lost(),
        delivered.sent
    );
    assert!(
        silent.is_empty(),
        "flows broken after not-ready: {silent:?}"
    );
}
