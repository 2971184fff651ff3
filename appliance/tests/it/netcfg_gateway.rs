//! `tungate net plan|apply|down` (the gateway role) against the host kernel, inside network
//! namespaces. This kernel has no ipip: kernel decap mode must plan its tunnels (with the
//! MTU of the device towards each peer) and then fail with the clear ipip error, leaving
//! nothing behind; userspace mode needs nothing from the kernel.

use tungate_test_support::Netns;

fn gateway_namespace() -> Netns {
    let ns = Netns::new("gw");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "eth0-p",
    ]);
    ns.ip(&["link", "set", "eth0", "mtu", "1400"]);
    ns.ip(&["address", "add", "10.0.0.1/24", "dev", "eth0"]);
    ns.ip(&["link", "set", "eth0", "up"]);
    ns
}

fn write_config(ns: &Netns, decap: &str) -> String {
    let path = ns.path("tungate.toml");
    std::fs::write(
        &path,
        format!(
            "[gateway]\naddress = \"10.0.0.1\"\ndecap = \"{decap}\"\n\
             [[peers]]\nname = \"rs1\"\naddress = \"10.0.0.2\"\n\
             [[peers]]\nname = \"far\"\naddress = \"198.51.100.7\"\n"
        ),
    )
    .unwrap();
    path.display().to_string()
}

#[test]
fn kernel_mode_plans_tunnels_and_fails_clearly_without_ipip() {
    let ns = gateway_namespace();
    let config = write_config(&ns, "kernel");
    let state = ns.path("state.json").display().to_string();
    let plan = ns.tungate(&["net", "plan", "--config", &config, "--state-file", &state]);
    assert_eq!(plan.code, 3, "{}", plan.stderr);
    // rs1 is reached through eth0 (MTU 1400, so 1380 inside the tunnel); "far" has no
    // route, so its MTU is left to the kernel.
    assert_eq!(
        plan.stdout.lines().collect::<Vec<_>>(),
        [
            "+ link tg-rs1 ipip local 10.0.0.1 remote 10.0.0.2 mtu 1380 up",
            "+ link tg-far ipip local 10.0.0.1 remote 198.51.100.7 up",
            "+ sysctl net.ipv4.conf.tg-rs1.forwarding = 0",
            "+ sysctl net.ipv4.conf.tg-rs1.rp_filter = 0",
            "+ sysctl net.ipv4.conf.tg-far.forwarding = 0",
            "+ sysctl net.ipv4.conf.tg-far.rp_filter = 0",
        ]
    );
    let apply = ns.tungate(&["net", "apply", "--config", &config, "--state-file", &state]);
    assert_eq!(apply.code, 1, "{}", apply.stderr);
    assert_eq!(
        apply.stderr.trim(),
        "tungate: cannot create tunnel tg-rs1: this kernel has no ipip support (load the ipip \
         module, or use decap mode userspace)"
    );
    assert!(
        !ns.ip(&["link", "show"]).contains("tg-"),
        "no half-made tunnel"
    );
    let down = ns.tungate(&["net", "down", "--state-file", &state]);
    assert_eq!(
        (down.code, down.stdout.as_str()),
        (0, ""),
        "{}",
        down.stderr
    );
}

#[test]
fn userspace_mode_needs_no_kernel_objects_and_leaves_ip_forward_alone() {
    let ns = gateway_namespace();
    ns.set_sysctl("net/ipv4/ip_forward", "1");
    let config = write_config(&ns, "userspace");
    let state = ns.path("state.json").display().to_string();
    for command in ["plan", "apply"] {
        let out = ns.tungate(&["net", command, "--config", &config, "--state-file", &state]);
        assert_eq!(
            (out.code, out.stdout.as_str()),
            (0, ""),
            "{command}: {}",
            out.stderr
        );
    }
    assert_eq!(ns.sysctl("net/ipv4/ip_forward"), "1");
    assert!(!ns.path("state.json").exists());
}

#[test]
fn down_removes_only_links_marked_as_the_gateways() {
    let ns = gateway_namespace();
    // A veth marked with the gateway alias stands in for a tunnel tungate made earlier;
    // another, named like a tunnel but unmarked, and one marked for the RS role are foreign.
    ns.ip(&[
        "link", "add", "tg-old", "type", "veth", "peer", "name", "tg-old-p",
    ]);
    ns.ip(&["link", "set", "tg-old", "alias", "tungate"]);
    ns.ip(&[
        "link",
        "add",
        "tg-mine",
        "type",
        "veth",
        "peer",
        "name",
        "tg-mine-p",
    ]);
    ns.ip(&[
        "link", "add", "rsx", "type", "veth", "peer", "name", "rsx-p",
    ]);
    ns.ip(&["link", "set", "rsx", "alias", "tungate-rs"]);
    let state = ns.path("state.json").display().to_string();
    let config = write_config(&ns, "userspace");
    let plan = ns.tungate(&["net", "plan", "--config", &config, "--state-file", &state]);
    assert_eq!(plan.code, 3, "{}", plan.stderr);
    assert_eq!(plan.stdout.trim(), "- link tg-old");
    let down = ns.tungate(&["net", "down", "--state-file", &state]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let links = ns.ip(&["link", "show"]);
    assert!(!links.contains("tg-old"), "{links}");
    assert!(
        links.contains("tg-mine") && links.contains("rsx"),
        "{links}"
    );
}

#[test]
fn a_bad_or_missing_configuration_exits_2() {
    let ns = gateway_namespace();
    let out = ns.tungate(&["net", "plan"]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(
        out.stderr.contains("--config FILE is required"),
        "{}",
        out.stderr
    );
    let path = ns.path("bad.toml");
    std::fs::write(&path, "[gateway]\naddress = \"10.0.0.1\"\nworkers = 0\n").unwrap();
    let out = ns.tungate(&["net", "apply", "--config", path.to_str().unwrap()]);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("gateway.workers"), "{}", out.stderr);
}

#[test]
fn without_cap_net_admin_the_refusal_says_what_and_how_to_fix_it() {
    let ns = gateway_namespace();
    let config = write_config(&ns, "kernel");
    let state = ns.path("state.json").display().to_string();
    // Still uid 0, but with every capability dropped (setpriv is in util-linux).
    let out = ns.command(
        "setpriv",
        &[
            "--bounding-set",
            "-all",
            "--inh-caps",
            "-all",
            env!("CARGO_BIN_EXE_tungate"),
            "net",
            "apply",
            "--config",
            &config,
            "--state-file",
            &state,
        ],
    );
    assert_eq!(out.code, 1, "{}", out.stderr);
    assert_eq!(
        out.stderr.trim(),
        "tungate: creating tunnel tg-rs1: permission denied (run as root or with CAP_NET_ADMIN)"
    );
}

/// An IPv6 gateway namespace: `eth0` (MTU 1400) holds 2001:db8::1/64, where the peers are.
fn gateway_namespace6() -> Netns {
    let ns = gateway_namespace();
    ns.ip(&["address", "add", "2001:db8::1/64", "dev", "eth0", "nodad"]);
    ns
}

/// `net plan` for a gre and a gue peer over IPv6 lists the guard, the IPv6 GUE receive port
/// and an ip6gre and an ip6tnl-with-GUE device with their overheads off eth0's MTU; `net
/// apply` either builds them (a kernel with ip6_gre, ip6_tunnel, fou and fou6: `ip -d link`
/// shows the types, the key, `encaplimit 4` and the encapsulation) or fails naming what the
/// kernel lacks and leaves no device; `net down` removes all of it either way.
#[test]
fn kernel_mode_builds_ip6gre_and_ip6tnl_with_gue_for_ipv6_peers_or_names_the_module() {
    for (peer, planned, shown) in [
        (
            "name = \"r6\"\naddress = \"2001:db8::2\"\ntunnel = \"gre\"\nkey = 7\n",
            vec![
                "+ nft table ip6 tungate_guard drop ipv6 arriving on tg-r6 in prerouting",
                // 1400 less 40 + 8 (encapsulation limit) + 4 (GRE) + 4 (key).
                "+ link tg-r6 ip6gre key 7 encaplimit 4 local 2001:db8::1 remote 2001:db8::2 \
                 mtu 1344 up",
            ],
            &["ip6gre ", "encaplimit 4", "ikey 0.0.0.7", "okey 0.0.0.7"][..],
        ),
        (
            "name = \"g6\"\naddress = \"2001:db8::3\"\ntunnel = \"gue\"\n\
             vips = [\"2001:db8:f::10\"]\n",
            vec![
                "+ nft table ip6 tungate_guard drop ipv6 arriving on tg-g6 in prerouting",
                "+ fou port 6080 gue -6",
                // 1400 less 40 + 8 + 8 (UDP) + 4 (GUE).
                "+ link tg-g6 ip6tnl mode ip6ip6 encap gue encap-sport auto encap-dport 6080 \
                 encaplimit 4 local 2001:db8::1 remote 2001:db8::3 mtu 1340 up",
            ],
            &[
                "ip6tnl ip6ip6 ",
                "encaplimit 4",
                "encap gue encap-sport auto encap-dport 6080",
            ][..],
        ),
    ] {
        let ns = gateway_namespace6();
        let config = ns.path("tungate6.toml");
        std::fs::write(
            &config,
            format!("[gateway]\naddress6 = \"2001:db8::1\"\ndecap = \"kernel\"\n[[peers]]\n{peer}"),
        )
        .unwrap();
        let config = config.display().to_string();
        let state = ns.path("state.json").display().to_string();
        let plan = ns.tungate(&["net", "plan", "--config", &config, "--state-file", &state]);
        assert_eq!(plan.code, 3, "{}", plan.stderr);
        let lines: Vec<&str> = plan
            .stdout
            .lines()
            .filter(|l| !l.contains("sysctl"))
            .collect();
        assert_eq!(lines, planned, "{}", plan.stderr);
        let device = if peer.contains("gre") {
            "tg-r6"
        } else {
            "tg-g6"
        };
        let apply = ns.tungate(&["net", "apply", "--config", &config, "--state-file", &state]);
        if apply.code == 0 {
            let details = ns.ip(&["-d", "link", "show", device]);
            for part in shown {
                assert!(details.contains(part), "{part:?} in {details}");
            }
            if peer.contains("gue") {
                let ports = ns.ip(&["fou", "show"]);
                assert!(ports.contains("port 6080 gue -6"), "{ports}");
            }
        } else {
            assert_eq!(apply.code, 1, "{}", apply.stderr);
            // This host: no ip6_gre, no fou (the GUE port comes before its device).
            let lacks = if peer.contains("gre") {
                "this kernel lacks the ip6_gre module support"
            } else {
                "this kernel has no fou support"
            };
            assert!(apply.stderr.contains(lacks), "{}", apply.stderr);
            assert!(
                !ns.ip(&["link", "show"]).contains("tg-"),
                "no half-made tunnel"
            );
        }
        let down = ns.tungate(&["net", "down", "--state-file", &state]);
        assert_eq!(down.code, 0, "{}", down.stderr);
        assert!(
            !ns.ip(&["link", "show"]).contains("tg-"),
            "down removes the device"
        );
        let tables = ns.exec("nft", &["list", "tables"]);
        assert!(
            !String::from_utf8_lossy(&tables.stdout).contains("tungate_guard"),
            "down removes the guard"
        );
    }
}
