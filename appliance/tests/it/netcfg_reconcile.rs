//! The reconciler, through `tungate rs apply --watch` inside a namespace: objects removed by
//! hand come back (on the netlink notification or the next periodic pass), and SIGTERM
//! stops it cleanly without removing anything.

use std::io::Read;
use std::time::Duration;

use tungate_test_support::Netns;
use tungate_test_support::netns::RS_STANDIN_FLAGS;
use tungate_test_support::wait::eventually;

#[test]
fn watch_mode_heals_hand_made_drift_and_stops_on_sigterm() {
    let ns = Netns::with_rs_devices("rec");
    let state = ns.path("state.json").display().to_string();
    let mut args = vec![
        "rs",
        "apply",
        "--watch",
        "--interval",
        "2",
        "--gateway",
        "10.0.0.1",
        "--address",
        "10.0.1.2",
        "--vip",
        "192.0.2.10",
        "--state-file",
        &state,
    ];
    args.extend(RS_STANDIN_FLAGS);
    let mut child = ns.spawn_tungate(&args);
    let route_present = || {
        ns.command("ip", &["route", "show", "table", "1"])
            .stdout
            .contains("default dev vgw")
    };
    let rule_present = || {
        ns.ip(&["rule", "show"])
            .contains("from 192.0.2.10 lookup 1")
    };
    let sysctl_set = || ns.sysctl("net/ipv4/conf/all/arp_ignore") == "1";
    assert!(eventually(Duration::from_secs(10), || route_present()
        && rule_present()));

    ns.ip(&["route", "del", "default", "table", "1"]);
    ns.ip(&[
        "rule",
        "del",
        "pref",
        "1000",
        "from",
        "192.0.2.10",
        "lookup",
        "1",
    ]);
    assert!(eventually(Duration::from_secs(10), || route_present()
        && rule_present()));

    // A sysctl change sends no netlink notification: a later pass (the periodic one at the
    // latest) heals it.
    ns.set_sysctl("net/ipv4/conf/all/arp_ignore", "0");
    assert!(eventually(Duration::from_secs(10), sysctl_set));

    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    // `ip netns exec` passes the signal's effect on: wait for the process to end.
    let status = child.wait().unwrap();
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{status:?}: {stderr}");
    assert!(stderr.contains("tungate: stopped after"), "{stderr}");
    assert!(
        route_present(),
        "stopping leaves the configuration in place"
    );

    let down = ns.tungate(&["rs", "down", "--state-file", &state]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(!route_present());
}
