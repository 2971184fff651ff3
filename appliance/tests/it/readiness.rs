//! Readiness of a single gateway (no fleet): `/readyz`, `/api/v1/status`, `/metrics` and
//! `tungate status` turn not ready, naming the reason, while the egress interface has no
//! carrier or the ingress interface is down, and ready again once the link returns; the
//! process lives throughout. The links are real veths in the test's namespaces: the
//! carrier goes when the peer end goes down, as when a cable or switch port fails.

use std::time::Duration;

use tungate_test_support::http::Api;
use tungate_test_support::process::{Tungate, binary};
use tungate_test_support::topology::Topology;
use tungate_test_support::wait::until;

const ADMIN: &str = "127.0.0.1:9080";

/// The `tungate_ready` gauge's value in `/metrics`.
fn ready_gauge(api: &Api) -> String {
    let text = api.get("/metrics").text();
    text.lines()
        .find_map(|l| l.strip_prefix("tungate_ready "))
        .unwrap_or_else(|| panic!("tungate_ready in /metrics: {text}"))
        .trim()
        .to_owned()
}

/// Waits until `/readyz` answers `code`; returns its body.
fn readyz_becomes(api: &Api, code: u16) -> String {
    let mut body = String::new();
    until(
        Duration::from_secs(5),
        &format!("/readyz answers {code}"),
        || {
            let r = api.get("/readyz");
            body = r.text();
            r.status == code
        },
    );
    body
}

#[test]
fn a_link_without_carrier_makes_the_gateway_not_ready_until_it_returns() {
    let t = Topology::new();
    let mut tg = Tungate::start(&t.gw, &t.config("egress_interface = \"g1\""));
    let api = Api::new(&t.gw, ADMIN, None);
    assert_eq!(readyz_becomes(&api, 200), "ready\n");
    assert_eq!(ready_gauge(&api), "1");

    // The client's end goes down: g1 loses its carrier.
    t.client.ip(&["link", "set", "c0", "down"]);
    let body = readyz_becomes(&api, 503);
    assert_eq!(
        body,
        "not ready: egress interface g1 is down (no carrier)\n"
    );
    let status = api.get("/api/v1/status").json();
    assert_eq!(status["ready"], false, "{status}");
    assert_eq!(
        status["not_ready"], "egress interface g1 is down (no carrier)",
        "{status}"
    );
    assert_eq!(ready_gauge(&api), "0");
    let out =
        t.gw.command(&binary(), &["status", "--url", &format!("http://{ADMIN}")]);
    assert_eq!(out.code, 3, "{}{}", out.stdout, out.stderr);
    assert!(
        out.stdout
            .contains("NOT READY: egress interface g1 is down (no carrier)"),
        "{}",
        out.stdout
    );
    assert!(tg.is_running(), "not ready is not an exit");

    // The ingress interface (the one holding GIP) set down by hand: both reasons at once.
    t.gw.ip(&["link", "set", "g0", "down"]);
    let body = readyz_becomes(&api, 503);
    until(Duration::from_secs(5), "both interfaces named", || {
        api.get("/readyz").text()
            == "not ready: ingress interface g0 is down (administratively); egress \
                    interface g1 is down (no carrier)\n"
    });
    assert!(body.starts_with("not ready: "), "{body}");

    // Both links return: ready again, same process.
    t.gw.ip(&["link", "set", "g0", "up"]);
    t.client.ip(&["link", "set", "c0", "up"]);
    assert_eq!(readyz_becomes(&api, 200), "ready\n");
    let status = api.get("/api/v1/status").json();
    assert_eq!(status["ready"], true, "{status}");
    assert!(status["not_ready"].is_null(), "{status}");
    assert_eq!(ready_gauge(&api), "1");
    let out =
        t.gw.command(&binary(), &["status", "--url", &format!("http://{ADMIN}")]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn a_configured_interface_that_does_not_exist_is_named() {
    let t = Topology::new();
    // The egress interface is renamed away under the running gateway, then back.
    let mut tg = Tungate::start(&t.gw, &t.config("egress_interface = \"g1\""));
    let api = Api::new(&t.gw, ADMIN, None);
    readyz_becomes(&api, 200);
    t.gw.ip(&["link", "set", "g1", "down"]);
    t.gw.ip(&["link", "set", "g1", "name", "g1x"]);
    // (It is first seen down, then missing.)
    until(
        Duration::from_secs(5),
        "/readyz names the missing link",
        || {
            let r = api.get("/readyz");
            r.status == 503 && r.text() == "not ready: egress interface g1 does not exist\n"
        },
    );
    t.gw.ip(&["link", "set", "g1x", "name", "g1"]);
    t.gw.ip(&["link", "set", "g1", "up"]);
    assert_eq!(readyz_becomes(&api, 200), "ready\n");
    assert!(tg.is_running());
    assert_eq!(tg.stop().0, 0);
}
