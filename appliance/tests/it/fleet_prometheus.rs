//! Accounting across the fleet with a real Prometheus (needs root, `bird2` and `prometheus`):
//! the shipped `deploy/fleet/` Prometheus files pass `promtool` (config, rules and the
//! rules' unit tests); in the fleet_bgp topology (three gateways behind a BIRD router with
//! ECMP, admin APIs on their links) a Prometheus in the router's namespace scrapes the three
//! gateways through a file_sd targets file; after replies and TTL-expired packets of one VIP
//! spread over the gateways, the recording rules' fleet totals (packets, bytes, drops) equal
//! the sums of the gateways' own counters read from each `/metrics`; a gateway that stops
//! shows as down and not ready in the fleet rules.
//!
//! Waits are polls with generous bounds (scrapes every second); no time is asserted.

use std::path::Path;
use std::time::{Duration, Instant};

use tungate_test_support::Netns;
use tungate_test_support::Tungate;
use tungate_test_support::fleet::{
    FLEET_NAME, FLOWS, Fleet, FlowStream, Gateway, VIP, admin_address, expired_frame, gateway_link,
};
use tungate_test_support::flood::BulkSender;
use tungate_test_support::http::{Api, Response};
use tungate_test_support::prometheus::{self, Prometheus, promtool, sample};
use tungate_test_support::wait::until;

const SCRAPES: Duration = Duration::from_secs(60);
const EXPIRED: u32 = 640;

fn deploy_fleet(file: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy/fleet")
        .join(file)
        .display()
        .to_string()
}

#[test]
fn the_shipped_prometheus_files_pass_promtool() {
    let (code, out) = promtool(&["check", "rules", &deploy_fleet("tungate-fleet.rules.yml")]);
    assert_eq!(code, 0, "{out}");
    let (code, out) = promtool(&[
        "test",
        "rules",
        &deploy_fleet("tungate-fleet.rules.test.yml"),
    ]);
    assert_eq!(code, 0, "{out}");
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    let rules = write("rules.yml", prometheus::RULES);
    let targets = write("targets.json", prometheus::TARGETS_EXAMPLE);
    let config = write(
        "prometheus.yml",
        &prometheus::config("15s", &targets, &rules),
    );
    let (code, out) = promtool(&["check", "config", &config]);
    assert_eq!(code, 0, "{out}");
    // An unfilled placeholder is an error, not a silently wrong configuration.
    let raw = write("raw.yml", prometheus::CONFIG);
    let (code, out) = promtool(&["check", "config", &raw]);
    assert_ne!(
        code, 0,
        "the template with @...@ placeholders is refused: {out}"
    );
}

/// The fleet-level `rule` for the test's fleet.
fn fleet_count(prom: &Prometheus, rule: &str) -> Option<f64> {
    prom.value(&format!("{rule}{{fleet=\"{FLEET_NAME}\"}}"))
}

/// A gateway's `/metrics` sample `name{labels}` (0 when absent), read from the router.
fn gateway_sample(router: &Netns, g: &Gateway, name: &str, labels: &[(&str, &str)]) -> f64 {
    let metrics = Api::new(router, &g.admin_address(), None).get("/metrics");
    assert_eq!(metrics.status, 200, "gw{} /metrics", g.index);
    sample(&metrics.text(), name, labels).unwrap_or(0.0)
}

/// Polls until the fleet rule `rule{fleet,vip[,reason]}` equals the sum of the gateways'
/// `metric` samples (each read directly); returns the per-gateway values.
fn rule_equals_sum(
    prom: &Prometheus,
    router: &Netns,
    fleet: &Fleet,
    rule: &str,
    metric: &str,
    extra: &[(&str, &str)],
) -> Vec<f64> {
    let vip = VIP.to_string();
    let mut labels = vec![("vip", vip.as_str())];
    labels.extend_from_slice(extra);
    let selector: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k}=\"{v}\""))
        .chain([format!("fleet=\"{FLEET_NAME}\"")])
        .collect();
    let expr = format!("{rule}{{{}}}", selector.join(","));
    let started = Instant::now();
    loop {
        let each: Vec<f64> = fleet
            .gateways
            .iter()
            .map(|g| gateway_sample(router, g, metric, &labels))
            .collect();
        let sum: f64 = each.iter().sum();
        let recorded = prom.value(&expr);
        if recorded == Some(sum) {
            eprintln!("{expr} = {sum}, per gateway {each:?}");
            return each;
        }
        assert!(
            started.elapsed() < SCRAPES,
            "{expr} is {recorded:?}, the gateways' {metric} sum to {sum} ({each:?})"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn the_fleet_totals_per_vip_equal_the_sum_of_the_gateways_counters() {
    let mut fleet = Fleet::start_with(3, |i| {
        vec![
            "--admin-listen".into(),
            admin_address(i),
            "--prometheus".into(),
            format!("http://{}:{}", gateway_link(i).0, prometheus::PORT),
        ]
    });
    let addresses: Vec<String> = fleet.gateways.iter().map(Gateway::admin_address).collect();
    let prom = Prometheus::start(
        &fleet.router,
        "1s",
        &prometheus::targets(FLEET_NAME, &addresses),
    );
    until(SCRAPES, "Prometheus scrapes the three gateways", || {
        let targets = prom.targets();
        addresses
            .iter()
            .all(|a| targets.get(a).map(String::as_str) == Some("up"))
    });
    until(
        SCRAPES,
        "the fleet counts three gateways up and ready",
        || {
            fleet_count(&prom, "fleet:up:sum") == Some(3.0)
                && fleet_count(&prom, "fleet:tungate_ready:sum") == Some(3.0)
        },
    );

    // Replies of 64 flows (spread over the gateways by the router), then TTL-expired
    // packets of the same flows (each gateway drops its share, counted for the VIP).
    let stream = FlowStream::start(&fleet, 2000, Duration::from_secs(2));
    until(Duration::from_secs(60), "the stream sends", || {
        stream.sent() >= 20 * FLOWS
    });
    let delivered = stream.finish();
    let expired: Vec<Vec<u8>> = (0..EXPIRED).map(expired_frame).collect();
    let order: Vec<usize> = (0..expired.len()).collect();
    let sent = BulkSender::open(&fleet.rs, "eth0").send(
        &expired,
        &order,
        Some(2000),
        Instant::now() + Duration::from_secs(60),
    );
    assert_eq!(sent, expired.len(), "every TTL-expired packet sent");

    let packets = rule_equals_sum(
        &prom,
        &fleet.router,
        &fleet,
        "fleet_vip:tungate_vip_forwarded_packets_total:sum",
        "tungate_vip_forwarded_packets_total",
        &[],
    );
    assert!(
        packets.iter().all(|p| *p > 0.0),
        "every gateway carried some of the VIP's replies: {packets:?}"
    );
    let total: f64 = packets.iter().sum();
    assert!(
        total >= delivered.received.len() as f64,
        "the fleet forwarded at least what the client received ({total} vs {})",
        delivered.received.len()
    );
    let bytes = rule_equals_sum(
        &prom,
        &fleet.router,
        &fleet,
        "fleet_vip:tungate_vip_forwarded_bytes_total:sum",
        "tungate_vip_forwarded_bytes_total",
        &[],
    );
    let drops = rule_equals_sum(
        &prom,
        &fleet.router,
        &fleet,
        "fleet_vip_reason:tungate_vip_dropped_packets_total:sum",
        "tungate_vip_dropped_packets_total",
        &[("reason", "ttl_expired")],
    );
    assert_eq!(
        drops.iter().sum::<f64>(),
        f64::from(EXPIRED),
        "every TTL-expired packet is one fleet drop: {drops:?}"
    );
    assert_eq!(
        prom.value(&format!(
            "fleet_vip:tungate_vip_dropped_packets_total:sum{{fleet=\"{FLEET_NAME}\",vip=\"{VIP}\"}}"
        )),
        Some(f64::from(EXPIRED)),
        "the drops over every reason"
    );

    // The dashboard's fleet totals, through gw1's API: the same sums.
    let totals = fleet_totals(&fleet.gateways[0]);
    assert_eq!(totals.status, 200, "{}", totals.text());
    let totals = totals.json();
    assert_eq!(totals["fleet"], FLEET_NAME);
    assert_eq!(totals["gateways_up"], 3);
    let vips = totals["vips"].as_array().expect("vips");
    assert_eq!(vips.len(), 1, "{totals}");
    assert_eq!(vips[0]["vip"], VIP.to_string());
    assert_eq!(
        vips[0]["forwarded_packets"].as_f64(),
        Some(packets.iter().sum())
    );
    assert_eq!(
        vips[0]["forwarded_bytes"].as_f64(),
        Some(bytes.iter().sum())
    );
    assert_eq!(
        vips[0]["dropped_packets"].as_u64(),
        Some(u64::from(EXPIRED))
    );

    // A gateway that stops: down in the targets, the fleet's up and ready sums count two.
    fleet.gateways[2].tungate.take().expect("gw3 runs").kill9();
    let down = fleet.gateways[2].admin_address();
    until(SCRAPES, "Prometheus sees gw3 down", || {
        prom.targets().get(&down).map(String::as_str) == Some("down")
    });
    until(
        SCRAPES,
        "the fleet counts two gateways up and ready",
        || {
            fleet_count(&prom, "fleet:up:sum") == Some(2.0)
                && fleet_count(&prom, "fleet:tungate_ready:sum") == Some(2.0)
        },
    );

    // Restarted without --prometheus: no fleet totals (409). Prometheus gone: 502, naming it.
    let g = &mut fleet.gateways[2];
    g.tungate = Some(Tungate::start_with(
        &g.ns,
        &Gateway::config(),
        &["--fleet", FLEET_NAME, "--admin-listen", &g.admin_address()],
    ));
    let refused = fleet_totals(&fleet.gateways[2]);
    assert_eq!(refused.status, 409, "{}", refused.text());
    assert!(
        refused.text().contains("--prometheus"),
        "{}",
        refused.text()
    );
    drop(prom);
    let failed = fleet_totals(&fleet.gateways[0]);
    assert_eq!(failed.status, 502, "{}", failed.text());
    assert_eq!(failed.error_code(), "bad_gateway");
    assert!(
        failed
            .text()
            .contains(&format!("http://{}:9090", gateway_link(1).0)),
        "the error names the Prometheus: {}",
        failed.text()
    );
}

/// `GET /api/v1/fleet/totals` on gateway `g` (from its own namespace, with its token).
fn fleet_totals(g: &Gateway) -> Response {
    let token = std::fs::read_to_string(
        g.tungate
            .as_ref()
            .expect("the gateway runs")
            .state_dir
            .join("admin-token"),
    )
    .expect("the admin token");
    Api::new(&g.ns, &g.admin_address(), Some(token.trim().to_owned())).get("/api/v1/fleet/totals")
}
