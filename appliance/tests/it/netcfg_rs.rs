//! `tungate rs plan|apply|down` against the host kernel, inside network namespaces: the
//! real-server objects are created, re-applying changes nothing, drift is healed, `down`
//! removes only tungate's objects and restores the sysctls, foreign objects survive, and
//! errors (conflict, no ipip, bad settings) are clear.
//!
//! This kernel has no ipip, so the reply device here is an existing veth
//! (`--existing-reply-device`) and requests arrive on a veth instead of `tunl0`; the real
//! tunnels are exercised in the QEMU lab.

use tungate_test_support::Netns;
use tungate_test_support::netns::RS_STANDIN_FLAGS;

fn rs_namespace() -> Netns {
    Netns::with_rs_devices("rs")
}

fn rs_args(ns: &Netns) -> Vec<String> {
    [
        "--gateway",
        "10.0.0.1",
        "--address",
        "10.0.1.2",
        "--vip",
        "192.0.2.10",
        "--vip",
        "192.0.2.11",
        "--table",
        "7",
    ]
    .iter()
    .chain(RS_STANDIN_FLAGS.iter())
    .chain(["--state-file"].iter())
    .map(|s| s.to_string())
    .chain([ns.path("state.json").display().to_string()])
    .collect()
}

fn tungate(ns: &Netns, command: &[&str], args: &[String]) -> tungate_test_support::netns::Run {
    let mut all: Vec<&str> = command.to_vec();
    all.extend(args.iter().map(String::as_str));
    ns.tungate(&all)
}

fn lines(text: &str) -> Vec<&str> {
    text.lines().collect()
}

/// The `ip -j` rows of tungate's protocol (116).
fn owned_rows(rows: &serde_json::Value) -> Vec<serde_json::Value> {
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["protocol"] == "116" || r["protocol"] == 116)
        .cloned()
        .collect()
}

#[test]
fn rs_lifecycle_create_reapply_drift_heal_and_down_leaving_foreign_objects() {
    let ns = rs_namespace();
    let args = rs_args(&ns);
    // Foreign objects tungate must leave alone.
    ns.ip(&["route", "add", "198.51.100.0/24", "dev", "lo", "table", "7"]);
    ns.ip(&[
        "rule",
        "add",
        "pref",
        "1000",
        "from",
        "203.0.113.5",
        "lookup",
        "7",
    ]);
    ns.ip(&["address", "add", "192.0.2.99/32", "dev", "lo"]);
    ns.set_sysctl("net/ipv4/conf/vgw/rp_filter", "1");

    let plan = tungate(&ns, &["rs", "plan"], &args);
    assert_eq!(plan.code, 3, "plan with changes exits 3: {}", plan.stderr);
    assert_eq!(
        lines(&plan.stdout),
        [
            "~ link vgw up (was: link vgw down)",
            "~ link vin up (was: link vin down)",
            "~ sysctl net.ipv4.conf.vin.rp_filter = 2 (was: sysctl net.ipv4.conf.vin.rp_filter = 0)",
            "~ sysctl net.ipv4.conf.all.arp_ignore = 1 (was: sysctl net.ipv4.conf.all.arp_ignore = 0)",
            "~ sysctl net.ipv4.conf.all.arp_announce = 2 (was: sysctl net.ipv4.conf.all.arp_announce = 0)",
            "+ address 192.0.2.10/32 dev lo",
            "+ address 192.0.2.11/32 dev lo",
            "+ route 0.0.0.0/0 dev vgw table 7",
            "+ rule pref 1000 from 192.0.2.10 lookup 7",
            "+ rule pref 1000 from 192.0.2.11 lookup 7",
        ]
    );

    let apply = tungate(&ns, &["rs", "apply"], &args);
    assert_eq!(apply.code, 0, "apply: {}", apply.stderr);
    assert_eq!(
        apply.stdout, plan.stdout,
        "apply makes exactly the planned changes"
    );

    // What the kernel now holds, read with `ip`.
    let routes = owned_rows(&ns.ip_json(&["route", "show", "table", "7"]));
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["dst"], "default");
    assert_eq!(routes[0]["dev"], "vgw");
    let rules = owned_rows(&ns.ip_json(&["rule", "show"]));
    let mut sources: Vec<String> = rules
        .iter()
        .map(|r| {
            format!(
                "{} {} {}",
                r["priority"],
                r["src"].as_str().unwrap(),
                r["table"]
            )
        })
        .collect();
    sources.sort();
    assert_eq!(sources, ["1000 192.0.2.10 \"7\"", "1000 192.0.2.11 \"7\""]);
    let lo = ns.ip(&["address", "show", "dev", "lo"]);
    // (iproute2 6.1 does not print the address protocol; `down` below shows the mark works.)
    assert!(
        lo.contains("inet 192.0.2.10/32") && lo.contains("inet 192.0.2.11/32"),
        "{lo}"
    );
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_ignore"), "1");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_announce"), "2");
    assert_eq!(ns.sysctl("net/ipv4/conf/vin/rp_filter"), "2");
    assert!(ns.ip(&["link", "show", "vgw"]).contains(",UP"));
    let state = std::fs::read_to_string(ns.path("state.json")).unwrap();
    assert!(
        state.contains("\"sysctl net/ipv4/conf/all/arp_ignore\""),
        "{state}"
    );

    // Applying again changes nothing; plan agrees.
    let again = tungate(&ns, &["rs", "apply"], &args);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );
    let plan = tungate(&ns, &["rs", "plan"], &args);
    assert_eq!(
        (plan.code, plan.stdout.as_str()),
        (0, ""),
        "{}",
        plan.stderr
    );

    // Drift by hand: each piece is planned back and healed.
    ns.ip(&["route", "del", "default", "table", "7"]);
    ns.ip(&[
        "rule",
        "del",
        "pref",
        "1000",
        "from",
        "192.0.2.11",
        "lookup",
        "7",
    ]);
    ns.ip(&["address", "del", "192.0.2.10/32", "dev", "lo"]);
    ns.set_sysctl("net/ipv4/conf/all/arp_ignore", "0");
    ns.ip(&["link", "set", "vin", "down"]);
    let plan = tungate(&ns, &["rs", "plan"], &args);
    assert_eq!(plan.code, 3, "{}", plan.stderr);
    assert_eq!(
        lines(&plan.stdout),
        [
            "~ link vin up (was: link vin down)",
            "~ sysctl net.ipv4.conf.all.arp_ignore = 1 (was: sysctl net.ipv4.conf.all.arp_ignore = 0)",
            "+ address 192.0.2.10/32 dev lo",
            "+ route 0.0.0.0/0 dev vgw table 7",
            "+ rule pref 1000 from 192.0.2.11 lookup 7",
        ]
    );
    let heal = tungate(&ns, &["rs", "apply"], &args);
    assert_eq!(heal.code, 0, "{}", heal.stderr);
    let plan = tungate(&ns, &["rs", "plan"], &args);
    assert_eq!(
        (plan.code, plan.stdout.as_str()),
        (0, ""),
        "healed: {}",
        plan.stderr
    );

    // Down removes tungate's objects only and restores the originals.
    let state_file = ns.path("state.json").display().to_string();
    let down = ns.tungate(&["rs", "down", "--state-file", &state_file]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert!(owned_rows(&ns.ip_json(&["route", "show", "table", "7"])).is_empty());
    assert!(owned_rows(&ns.ip_json(&["rule", "show"])).is_empty());
    let lo = ns.ip(&["address", "show", "dev", "lo"]);
    assert!(
        !lo.contains("192.0.2.10") && !lo.contains("192.0.2.11"),
        "{lo}"
    );
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_ignore"), "0");
    assert_eq!(ns.sysctl("net/ipv4/conf/all/arp_announce"), "0");
    assert_eq!(ns.sysctl("net/ipv4/conf/vin/rp_filter"), "0");
    assert!(
        !ns.ip(&["link", "show", "vgw"]).contains(",UP"),
        "vgw back down"
    );
    assert!(!ns.path("state.json").exists(), "nothing left to remember");
    // The foreign objects survived.
    assert!(
        ns.ip(&["route", "show", "table", "7"])
            .contains("198.51.100.0/24 dev lo")
    );
    assert!(
        ns.ip(&["rule", "show"])
            .contains("from 203.0.113.5 lookup 7")
    );
    assert!(lo.contains("192.0.2.99/32"));
    assert_eq!(ns.sysctl("net/ipv4/conf/vgw/rp_filter"), "1");
    // And a second down has nothing to do.
    let down = ns.tungate(&["rs", "down", "--state-file", &state_file]);
    assert_eq!(
        (down.code, down.stdout.as_str()),
        (0, ""),
        "{}",
        down.stderr
    );
}

#[test]
fn down_does_not_restore_a_setting_someone_changed_after_tungate() {
    let ns = rs_namespace();
    let args = rs_args(&ns);
    assert_eq!(tungate(&ns, &["rs", "apply"], &args).code, 0);
    ns.set_sysctl("net/ipv4/conf/all/arp_announce", "1");
    let state_file = ns.path("state.json").display().to_string();
    let down = ns.tungate(&["rs", "down", "--state-file", &state_file]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    assert_eq!(
        ns.sysctl("net/ipv4/conf/all/arp_announce"),
        "1",
        "the operator's value stays"
    );
    assert_eq!(
        ns.sysctl("net/ipv4/conf/all/arp_ignore"),
        "0",
        "tungate's value is undone"
    );
}

#[test]
fn a_foreign_route_in_the_way_is_a_conflict_not_a_takeover() {
    let ns = rs_namespace();
    ns.ip(&["link", "set", "vin-p", "up"]);
    ns.ip(&["route", "add", "default", "dev", "vin-p", "table", "7"]);
    let args = rs_args(&ns);
    for command in ["plan", "apply"] {
        let out = tungate(&ns, &["rs", command], &args);
        assert_eq!(out.code, 1, "{command}: {}", out.stderr);
        assert!(
            out.stderr.contains(
                "route 0.0.0.0/0 table 7 exists but was not created by tungate and differs \
                 (route 0.0.0.0/0 dev vin-p table 7); remove it or change the configuration"
            ),
            "{command}: {}",
            out.stderr
        );
    }
    assert!(
        ns.ip(&["route", "show", "table", "7"])
            .contains("default dev vin-p")
    );
}

#[test]
fn the_default_reply_tunnel_needs_ipip_and_says_so() {
    let ns = rs_namespace();
    let state = ns.path("state.json").display().to_string();
    let args = [
        "--gateway",
        "10.0.0.1",
        "--address",
        "10.0.1.2",
        "--vip",
        "192.0.2.10",
        "--state-file",
        &state,
    ];
    let mut plan_args = vec!["rs", "plan"];
    plan_args.extend(args);
    let plan = ns.tungate(&plan_args);
    assert_eq!(plan.code, 3, "{}", plan.stderr);
    assert_eq!(
        lines(&plan.stdout)[0],
        "+ link tunl1 ipip local 10.0.1.2 remote 10.0.0.1 up"
    );
    let mut apply_args = vec!["rs", "apply"];
    apply_args.extend(args);
    let apply = ns.tungate(&apply_args);
    assert_eq!(apply.code, 1, "{}", apply.stderr);
    assert_eq!(
        apply.stderr.trim(),
        "tungate: cannot create tunnel tunl1: this kernel has no ipip support (load the ipip \
         module, or use decap mode userspace)"
    );
    assert!(!ns.ip(&["link", "show"]).contains("tunl1"));
}

#[test]
fn bad_settings_exit_2_and_name_the_field() {
    let ns = rs_namespace();
    let out = ns.tungate(&["rs", "plan", "--address", "10.0.1.2", "--table", "255"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    for expected in [
        "gateway: missing",
        "vips: missing",
        "table: 255 is reserved",
    ] {
        assert!(
            out.stderr.contains(expected),
            "{expected:?} in {}",
            out.stderr
        );
    }
    let file = ns.path("rs.toml");
    std::fs::write(&file, "gateway = \"10.0.0.1\"\nvip = \"x\"\n").unwrap();
    let out = ns.tungate(&["rs", "plan", "--config", file.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("unknown field `vip`"), "{}", out.stderr);
}

#[test]
fn a_missing_vip_device_is_named() {
    let ns = rs_namespace();
    let mut args = rs_args(&ns);
    let at = args.iter().position(|a| a == "lo").unwrap();
    args[at] = "nosuch0".into();
    let out = tungate(&ns, &["rs", "apply"], &args);
    assert_eq!(out.code, 1, "{}", out.stderr);
    // What was done before the failure is shown.
    assert_eq!(
        lines(&out.stdout),
        [
            "~ link vgw up (was: link vgw down)",
            "~ link vin up (was: link vin down)",
        ]
    );
    assert!(
        out.stderr.contains(
            "setting link nosuch0 up: no interface named \"nosuch0\" in this network namespace"
        ),
        "{}",
        out.stderr
    );
}

/// An IPv6 reply path on this kernel (no ip6_tunnel: the reply device is the existing `vgw`,
/// requests arrive on `vin`): IPv6 VIPs on lo, `::/0 dev vgw table 7` and a `from VIP6`
/// rule, all of tungate's protocol, read back with `ip`; re-applying changes nothing;
/// `down` removes exactly them.
#[test]
fn an_ipv6_reply_path_is_built_read_back_and_removed() {
    let ns = rs_namespace();
    let args: Vec<String> = [
        "--gateway",
        "2001:db8::1",
        "--address",
        "2001:db8:1::2",
        "--vip",
        "2001:db8:f::10",
        "--vip",
        "192.0.2.10",
        "--table",
        "7",
    ]
    .iter()
    .chain(RS_STANDIN_FLAGS.iter())
    .chain(["--state-file"].iter())
    .map(|s| s.to_string())
    .chain([ns.path("state6.json").display().to_string()])
    .collect();
    let apply = tungate(&ns, &["rs", "apply"], &args);
    assert_eq!(apply.code, 0, "apply: {}", apply.stderr);
    for line in [
        "+ address 2001:db8:f::10/128 dev lo",
        "+ address 192.0.2.10/32 dev lo",
        "+ route 0.0.0.0/0 dev vgw table 7",
        "+ route ::/0 dev vgw table 7",
        "+ rule pref 1000 from 2001:db8:f::10 lookup 7",
        "+ rule pref 1000 from 192.0.2.10 lookup 7",
        // (an update: the namespace's default was 0)
        "~ sysctl net.ipv4.conf.vin.rp_filter = 2 (was: sysctl net.ipv4.conf.vin.rp_filter = 0)",
    ] {
        assert!(
            lines(&apply.stdout).contains(&line),
            "{line:?} in {}",
            apply.stdout
        );
    }
    let routes = owned_rows(&ns.ip_json(&["-6", "route", "show", "table", "7"]));
    assert_eq!(routes.len(), 1, "{routes:?}");
    assert_eq!(routes[0]["dst"], "default");
    assert_eq!(routes[0]["dev"], "vgw");
    let rules = owned_rows(&ns.ip_json(&["-6", "rule", "show"]));
    assert_eq!(rules.len(), 1, "{rules:?}");
    assert_eq!(rules[0]["src"], "2001:db8:f::10");
    assert_eq!(rules[0]["table"], "7");
    let addresses = ns.ip(&["-6", "address", "show", "dev", "lo"]);
    assert!(addresses.contains("2001:db8:f::10/128"), "{addresses}");

    let again = tungate(&ns, &["rs", "plan"], &args);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );

    let down = tungate(&ns, &["rs", "down"], &args);
    assert_eq!(down.code, 0, "down: {}", down.stderr);
    assert!(owned_rows(&ns.ip_json(&["-6", "route", "show", "table", "7"])).is_empty());
    assert!(owned_rows(&ns.ip_json(&["-6", "rule", "show"])).is_empty());
    assert!(
        !ns.ip(&["-6", "address", "show", "dev", "lo"])
            .contains("2001:db8:f::10")
    );
}

/// An Ethernet frame to `dst_mac` carrying an IPv6 packet from `src` with next header
/// `next` (and, with `dstopts`, a Destination Options header in front of it holding the
/// tunnel encapsulation limit, as a stock `ip6tnl` sends) and `payload`.
fn ipv6_frame(
    dst_mac: [u8; 6],
    src: std::net::Ipv6Addr,
    next: u8,
    dstopts: bool,
    payload: &[u8],
) -> Vec<u8> {
    let mut body = Vec::new();
    let first = if dstopts {
        // Next header, length 0 (8 bytes), encapsulation limit 4, PadN of one byte.
        body.extend_from_slice(&[next, 0, 4, 1, 4, 1, 1, 0]);
        60
    } else {
        next
    };
    body.extend_from_slice(payload);
    let mut frame = dst_mac.to_vec();
    frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x86, 0xdd]);
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(body.len() as u16).to_be_bytes());
    frame.extend_from_slice(&[first, 64]);
    frame.extend_from_slice(&src.octets());
    frame.extend_from_slice(
        &"2001:db8:1::2"
            .parse::<std::net::Ipv6Addr>()
            .unwrap()
            .octets(),
    );
    frame.extend_from_slice(&body);
    frame
}

/// Sets the far end of the ingress veth up (the test's frames go in there) and returns the
/// MAC address of the ingress device `vin`, where they arrive.
fn ingress_up_and_its_mac(ns: &Netns) -> [u8; 6] {
    ns.ip(&["link", "set", "vin-p", "up"]);
    let mac = ns.ip_json(&["link", "show", "vin"])[0]["address"]
        .as_str()
        .unwrap()
        .to_owned();
    let mac: Vec<u8> = mac
        .split(':')
        .map(|b| u8::from_str_radix(b, 16).unwrap())
        .collect();
    mac.try_into().unwrap()
}

/// The packet counters of the rules of `ip6 tungate_rs`, by comment.
fn fence6_counters(ns: &Netns) -> Vec<(String, u64)> {
    fence_counters(ns, "ip6")
}

/// The packet counters of the counted rules of `FAMILY tungate_rs`, by comment.
fn fence_counters(ns: &Netns, family: &str) -> Vec<(String, u64)> {
    let out = ns.exec("nft", &["-j", "list", "table", family, "tungate_rs"]);
    assert!(
        out.status.success(),
        "nft: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    listed["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|o| o.get("rule"))
        .filter_map(|rule| {
            let packets = rule["expr"]
                .as_array()?
                .iter()
                .find_map(|e| e.get("counter"))?["packets"]
                .as_u64()?;
            Some((rule["comment"].as_str()?.to_owned(), packets))
        })
        .collect()
}

/// The IPv6 fence (`--director` with an IPv6 underlay): `ip6 tungate_rs` holds one
/// counted drop each for ip6ip6 and 4in6 from anyone but the IPv6 director, beside the
/// IPv4 fence; crafted packets arriving on the ingress veth from a non-director are
/// counted and dropped (also behind a Destination Options header, which `meta l4proto`
/// walks), the director's are not counted; re-applying changes nothing, a table removed
/// by hand is put back, and `down` removes both tables.
#[test]
fn the_ipv6_fence_drops_ip6ip6_and_4in6_from_all_but_the_directors() {
    let ns = rs_namespace();
    let args: Vec<String> = [
        "--gateway",
        "2001:db8::1",
        "--address",
        "2001:db8:1::2",
        "--vip",
        "2001:db8:f::10",
        "--vip",
        "192.0.2.10",
        "--director",
        "2001:db8::2",
        "--director",
        "10.0.0.2",
    ]
    .iter()
    .chain(RS_STANDIN_FLAGS.iter())
    .chain(["--state-file"].iter())
    .map(|s| s.to_string())
    .chain([ns.path("state6.json").display().to_string()])
    .collect();
    let fence6_line = "+ nft table ip6 tungate_rs chain fence: tungate: drop ipv6 ip6ip6 (41) \
                       not from 2001:db8::2; tungate: drop ipv6 4in6 (4) not from 2001:db8::2";
    let plan = tungate(&ns, &["rs", "plan"], &args);
    assert_eq!(plan.code, 3, "plan: {}", plan.stderr);
    assert!(
        lines(&plan.stdout).contains(&fence6_line),
        "{}",
        plan.stdout
    );
    let apply = tungate(&ns, &["rs", "apply"], &args);
    assert_eq!(apply.code, 0, "apply: {}", apply.stderr);
    for line in [
        fence6_line,
        "+ nft rule \"tungate: drop ipip not from 10.0.0.2\"",
    ] {
        assert!(
            lines(&apply.stdout).contains(&line),
            "{line:?} in {}",
            apply.stdout
        );
    }
    let again = tungate(&ns, &["rs", "plan"], &args);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );

    let mac = ingress_up_and_its_mac(&ns);
    let director: std::net::Ipv6Addr = "2001:db8::2".parse().unwrap();
    let stranger: std::net::Ipv6Addr = "2001:db8::66".parse().unwrap();
    let inner6 = ipv6_frame(mac, director, 59, false, &[])[14..].to_vec();
    let inner4 =
        tungate_test_support::packets::udp([192, 0, 2, 10].into(), [198, 51, 100, 1].into(), 64, 8);
    let socket = tungate_test_support::FrameSocket::open(&ns, "vin-p");
    // The director's first: once the stranger's are counted, the director's went by.
    for src in [director, stranger] {
        for dstopts in [false, true] {
            socket.send(&ipv6_frame(mac, src, 41, dstopts, &inner6));
        }
        socket.send(&ipv6_frame(mac, src, 4, false, &inner4));
    }
    let expected = vec![
        (
            "tungate: drop ipv6 ip6ip6 (41) not from 2001:db8::2".to_owned(),
            2,
        ),
        (
            "tungate: drop ipv6 4in6 (4) not from 2001:db8::2".to_owned(),
            1,
        ),
    ];
    tungate_test_support::wait::until(
        std::time::Duration::from_secs(10),
        "the stranger's packets are counted",
        || fence6_counters(&ns).iter().map(|c| c.1).sum::<u64>() >= 3,
    );
    assert_eq!(fence6_counters(&ns), expected);

    // Drift: the table removed by hand is put back.
    let out = ns.exec("nft", &["delete", "table", "ip6", "tungate_rs"]);
    assert!(out.status.success());
    let heal = tungate(&ns, &["rs", "apply"], &args);
    assert_eq!(heal.code, 0, "heal: {}", heal.stderr);
    assert_eq!(lines(&heal.stdout), [fence6_line]);

    let down = tungate(&ns, &["rs", "down"], &args);
    assert_eq!(down.code, 0, "down: {}", down.stderr);
    assert!(
        down.stdout.contains("- nft table ip6 tungate_rs"),
        "{}",
        down.stdout
    );
    let ruleset = ns.exec("nft", &["list", "ruleset"]);
    assert!(
        !String::from_utf8_lossy(&ruleset.stdout).contains("tungate_rs"),
        "{}",
        String::from_utf8_lossy(&ruleset.stdout)
    );
    let again = tungate(&ns, &["rs", "down"], &args);
    assert_eq!(
        (again.code, again.stdout.as_str()),
        (0, ""),
        "{}",
        again.stderr
    );
}

/// IPv6 VIPs over an IPv4 underlay bring up `sit0`, which takes 6in4 (protocol 41) from
/// anyone: the IPv4 fence then holds a counted drop for 6in4 beside IPIP. Crafted 6in4
/// packets on the ingress veth from the director pass uncounted, a stranger's are counted.
#[test]
fn ipv6_vips_over_ipv4_get_a_6in4_fence_beside_ipip() {
    let ns = rs_namespace();
    let args: Vec<String> = [
        "--gateway",
        "10.0.0.1",
        "--address",
        "10.0.1.2",
        "--vip",
        "2001:db8:f::10",
        "--director",
        "10.0.0.2",
    ]
    .iter()
    .chain(RS_STANDIN_FLAGS.iter())
    .chain(["--state-file"].iter())
    .map(|s| s.to_string())
    .chain([ns.path("state64.json").display().to_string()])
    .collect();
    let apply = tungate(&ns, &["rs", "apply"], &args);
    assert_eq!(apply.code, 0, "apply: {}", apply.stderr);
    assert!(
        lines(&apply.stdout).contains(&"+ nft rule \"tungate: drop 6in4 not from 10.0.0.2\""),
        "{}",
        apply.stdout
    );
    let mac = ingress_up_and_its_mac(&ns);
    let inner6 = ipv6_frame(mac, "2001:db8:f::10".parse().unwrap(), 59, false, &[])[14..].to_vec();
    let socket = tungate_test_support::FrameSocket::open(&ns, "vin-p");
    // The director's first: once the stranger's is counted, the director's went by.
    for src in [[10, 0, 0, 2], [10, 0, 0, 66]] {
        let mut ip = etherparse::Ipv4Header::new(
            inner6.len() as u16,
            64,
            etherparse::IpNumber(41),
            src,
            [10, 0, 1, 2],
        )
        .unwrap();
        ip.header_checksum = ip.calc_header_checksum();
        let mut frame = mac.to_vec();
        frame.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x99, 0x08, 0x00]);
        frame.extend_from_slice(&ip.to_bytes());
        frame.extend_from_slice(&inner6);
        socket.send(&frame);
    }
    tungate_test_support::wait::until(
        std::time::Duration::from_secs(10),
        "the stranger's 6in4 packet is counted",
        || fence_counters(&ns, "ip").iter().map(|c| c.1).sum::<u64>() >= 1,
    );
    assert_eq!(
        fence_counters(&ns, "ip"),
        [
            ("tungate: drop ipip not from 10.0.0.2".to_owned(), 0),
            ("tungate: drop 6in4 not from 10.0.0.2".to_owned(), 1),
        ]
    );
    let down = tungate(&ns, &["rs", "down"], &args);
    assert_eq!(down.code, 0, "down: {}", down.stderr);
}
