//! The four example plugins, built for wasm32 from their crates, through the real host:
//! built from a configuration document, published through `FilterSlots`, taken by a worker
//! and run as its VIP chain on real IPv4 packets (built with etherparse, independently of
//! the SDK's parser). Also the builder's refusals, which publish nothing.

use std::net::Ipv4Addr;

use etherparse::PacketBuilder;
use tungate_config::{Document, parse_toml};
use tungate_datapath::filter::{Decision, FilterSlots, WorkerFilters};
use tungate_plugin_host::build::BuildError;
use tungate_plugin_host::instance::InstanceError;
use tungate_plugin_host::{BindingSnapshot, Limits, PluginHost};
use tungate_test_support::machine;
use tungate_test_support::plugins::{self, plugin_wasm};

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn host() -> PluginHost {
    PluginHost::new(Limits {
        max_instances: 32,
        ..Limits::default()
    })
    .unwrap()
}

/// A document with one VIP whose chain is `bindings` (TOML `[[vips.plugins]]` tables).
fn doc(workers: u32, bindings: &str) -> Document {
    parse_toml(&format!(
        r#"
        [gateway]
        address = "10.0.0.1"
        workers = {workers}
        [[peers]]
        name = "rs1"
        address = "10.0.1.2"
        vips = ["{VIP}"]
        [[vips]]
        address = "{VIP}"
        {bindings}
        "#
    ))
    .unwrap()
}

fn udp(client: [u8; 4], sport: u16, payload: usize) -> Vec<u8> {
    let b = PacketBuilder::ipv4(VIP.octets(), client, 64).udp(sport, 40000);
    let mut out = Vec::with_capacity(b.size(payload));
    b.write(&mut out, &vec![0x5a; payload]).unwrap();
    out
}

fn tcp_syn_ack(client: [u8; 4], sport: u16) -> Vec<u8> {
    let b = PacketBuilder::ipv4(VIP.octets(), client, 64)
        .tcp(sport, 51000, 1, 64240)
        .syn()
        .ack(2);
    let mut out = Vec::new();
    b.write(&mut out, &[]).unwrap();
    out
}

/// Publishes `doc` and returns each worker's taken filter set.
fn publish(host: &PluginHost, doc: &Document) -> Vec<WorkerFilters> {
    let slots = FilterSlots::new(doc.gateway.workers as usize);
    host.publish(&slots, doc, &plugins::example_module).unwrap();
    (0..slots.workers())
        .map(|w| slots.take(w).expect("a set per worker").1)
        .collect()
}

fn run(set: &mut WorkerFilters, packets: &[Vec<u8>]) -> Vec<Decision> {
    let refs: Vec<&[u8]> = packets.iter().map(|p| p.as_slice()).collect();
    let mut d = vec![Decision::Pass; refs.len()];
    set.by_vip
        .get_mut(&VIP.into())
        .expect("the VIP has a chain")
        .filter(&refs, &mut d);
    d
}

fn counter(s: &BindingSnapshot, name: &str, label: &str) -> u64 {
    s.counters
        .iter()
        .find(|c| c.name == name && c.label == label)
        .unwrap_or_else(|| panic!("no counter {name}{{{label}}} in {:?}", s.counters))
        .value
}

use Decision::{DropByPlugin as D, Pass as P};

#[test]
fn cidr_filter_denies_one_client_prefix_on_every_worker() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    let host = host();
    let doc = doc(
        2,
        r#"[[vips.plugins]]
           plugin = "cidr-filter"
           config = { deny = ["198.51.100.0/24"] }"#,
    );
    let mut sets = publish(&host, &doc);
    let denied = udp([198, 51, 100, 7], 53, 100);
    let other = udp([203, 0, 113, 9], 53, 100);
    let batch = vec![
        denied.clone(),
        other.clone(),
        denied.clone(),
        other.clone(),
        other,
    ];
    for set in &mut sets {
        assert_eq!(run(set, &batch), [D, P, D, P, P]);
    }
    let s = &host.stats()[0];
    assert_eq!(
        (s.key.vip, s.key.position, s.key.plugin.as_str()),
        (VIP.into(), 0, "cidr-filter")
    );
    assert_eq!((s.passed, s.dropped), (6, 4), "summed over both workers");
    assert_eq!(counter(s, "dropped", "denied"), 4);
    assert_eq!(counter(s, "dropped", "not_allowed"), 0);
    assert_eq!(s.calls, 2);
    assert_eq!(s.call_ns_buckets.iter().sum::<u64>(), 2);
    assert!(!s.quarantined);
}

#[test]
fn a_v1_module_and_a_v2_example_share_one_ipv4_chain() {
    let _machine = machine::shared();
    let host = host();
    let v1 = plugins::pass_all_module("v1");
    assert_eq!(host.check(&v1).unwrap().abi_version, 1);
    assert_eq!(
        host.check(&plugin_wasm("cidr-filter")).unwrap().abi_version,
        2
    );
    // IPv6 prefixes beside IPv4 ones in a v2 plugin's configuration; the v1 module before it
    // gets v1 descriptors, the v2 one v2 descriptors of the same packets.
    let doc = doc(
        1,
        r#"[[vips.plugins]]
           plugin = "v1-pass"
           [[vips.plugins]]
           plugin = "cidr-filter"
           config = { allow = ["203.0.113.0/24", "2001:db8:ff::/48"], deny = ["2001:db8:ff:66::/64"] }"#,
    );
    let slots = FilterSlots::new(1);
    let modules = |name: &str| match name {
        "v1-pass" => Some(v1.clone()),
        other => plugins::example_module(other),
    };
    host.publish(&slots, &doc, &modules).unwrap();
    let mut set = slots.take(0).unwrap().1;
    let batch = vec![
        udp([203, 0, 113, 9], 53, 10),
        udp([198, 51, 100, 7], 53, 10),
        tcp_syn_ack([203, 0, 113, 200], 443),
    ];
    assert_eq!(run(&mut set, &batch), [P, D, P]);
    let stats = host.stats();
    let by_plugin = |name: &str| stats.iter().find(|s| s.key.plugin == name).unwrap();
    assert_eq!(
        (by_plugin("v1-pass").passed, by_plugin("v1-pass").dropped),
        (3, 0)
    );
    let cidr = by_plugin("cidr-filter");
    assert_eq!((cidr.passed, cidr.dropped), (2, 1));
    assert_eq!(counter(cidr, "dropped", "not_allowed"), 1);
}

#[test]
fn port_filter_lets_only_the_services_through() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    let host = host();
    let doc = doc(
        1,
        r#"[[vips.plugins]]
           plugin = "port-filter"
           config = { allow = [ { protocol = "tcp", ports = [80, "443"] }, { protocol = "udp", ports = [53] } ] }"#,
    );
    let mut sets = publish(&host, &doc);
    let c = [203, 0, 113, 9];
    let batch = vec![
        tcp_syn_ack(c, 80),
        tcp_syn_ack(c, 443),
        tcp_syn_ack(c, 22),
        udp(c, 53, 10),
        udp(c, 123, 10),
    ];
    assert_eq!(run(&mut sets[0], &batch), [P, P, D, P, D]);
    let s = &host.stats()[0];
    assert_eq!(counter(s, "dropped", "port"), 2);
    assert_eq!(counter(s, "dropped", "protocol"), 0);
}

#[test]
fn rate_limit_caps_each_client_at_its_burst() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    let host = host();
    let doc = doc(
        1,
        r#"[[vips.plugins]]
           plugin = "rate-limit"
           config = { unit = "packets", rate = 1, burst = 10 }"#,
    );
    let mut sets = publish(&host, &doc);
    let mut batch = vec![udp([198, 51, 100, 1], 53, 20); 30];
    batch.extend(vec![udp([198, 51, 100, 2], 53, 20); 5]);
    let d = run(&mut sets[0], &batch);
    let mut want = vec![P; 10];
    want.extend([D; 20]);
    want.extend([P; 5]);
    assert_eq!(
        d, want,
        "one batch: the first client gets its burst of 10, the other its 5"
    );
    let s = &host.stats()[0];
    assert_eq!(counter(s, "dropped", "rate"), 20);
    assert_eq!((s.passed, s.dropped), (15, 20));
}

#[test]
fn accounting_counts_per_configured_prefix_with_bounded_labels() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    let host = host();
    let doc = doc(
        2,
        r#"[[vips.plugins]]
           plugin = "accounting"
           config = { prefixes = ["198.51.100.0/24", "203.0.113.0/25"] }"#,
    );
    let mut sets = publish(&host, &doc);
    let a = udp([198, 51, 100, 1], 53, 100);
    let b = udp([203, 0, 113, 5], 53, 1000);
    let outside = udp([203, 0, 113, 200], 53, 10);
    run(&mut sets[0], &[a.clone(), b.clone(), outside.clone()]);
    run(&mut sets[1], &[a.clone(), a.clone()]);
    let s = &host.stats()[0];
    let labels: Vec<(&str, &str)> = s
        .counters
        .iter()
        .map(|c| (c.name.as_str(), c.label.as_str()))
        .collect();
    assert_eq!(
        labels,
        [
            ("packets", "198.51.100.0/24"),
            ("bytes", "198.51.100.0/24"),
            ("packets", "203.0.113.0/25"),
            ("bytes", "203.0.113.0/25"),
            ("packets", "unmatched"),
            ("bytes", "unmatched"),
        ],
        "labels are the configured prefixes, never client addresses"
    );
    assert_eq!(counter(s, "packets", "198.51.100.0/24"), 3);
    assert_eq!(counter(s, "bytes", "198.51.100.0/24"), 3 * a.len() as u64);
    assert_eq!(counter(s, "packets", "203.0.113.0/25"), 1);
    assert_eq!(counter(s, "bytes", "203.0.113.0/25"), b.len() as u64);
    assert_eq!(counter(s, "packets", "unmatched"), 1);
    assert_eq!(counter(s, "bytes", "unmatched"), outside.len() as u64);
    assert_eq!((s.passed, s.dropped), (5, 0));
}

#[test]
fn a_chain_of_all_four_judges_in_order_and_first_drop_wins() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    let host = host();
    let doc = doc(
        1,
        r#"[[vips.plugins]]
           plugin = "accounting"
           config = { prefixes = ["0.0.0.0/0"] }
           [[vips.plugins]]
           plugin = "cidr-filter"
           config = { deny = ["198.51.100.0/24"] }
           [[vips.plugins]]
           plugin = "port-filter"
           on_error = "drop"
           config = { allow = [ { protocol = "udp", ports = [53] } ] }
           [[vips.plugins]]
           plugin = "accounting"
           config = { prefixes = ["0.0.0.0/0"] }"#,
    );
    let mut sets = publish(&host, &doc);
    let batch = vec![
        udp([198, 51, 100, 1], 53, 10),
        udp([203, 0, 113, 1], 53, 10),
        udp([203, 0, 113, 1], 54, 10),
        udp([203, 0, 113, 2], 53, 10),
    ];
    assert_eq!(run(&mut sets[0], &batch), [D, P, D, P]);
    let stats = host.stats();
    assert_eq!(stats.len(), 4);
    assert_eq!(
        counter(&stats[0], "packets", "0.0.0.0/0"),
        4,
        "first sees all"
    );
    assert_eq!((stats[1].passed, stats[1].dropped), (3, 1));
    assert_eq!((stats[2].passed, stats[2].dropped), (2, 1));
    assert_eq!(
        counter(&stats[3], "packets", "0.0.0.0/0"),
        2,
        "last sees the survivors"
    );
    assert_eq!(stats[2].on_error, "drop");
    assert_eq!(host.cached_modules(), 3, "compiled once per module");
}

#[test]
fn builder_refusals_name_the_binding_and_publish_nothing() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    let host = host();
    let slots = FilterSlots::new(2);
    let cidr_sha = host.check(&plugin_wasm("cidr-filter")).unwrap().sha256;
    let ok = r#"[[vips.plugins]]
                plugin = "accounting"
                config = { prefixes = ["0.0.0.0/0"] }
"#;
    type Case = (String, Box<dyn Fn(&BuildError) -> bool>, String);
    let cases: Vec<Case> = vec![
        (
            format!("{ok}[[vips.plugins]]\nplugin = \"no-such-plugin\""),
            Box::new(|e| matches!(e, BuildError::MissingPlugin { .. })),
            "vips[0].plugins[1]: no plugin named \"no-such-plugin\" is uploaded".into(),
        ),
        (
            format!(
                "{ok}[[vips.plugins]]\nplugin = \"cidr-filter\"\nsha256 = \"{}\"\nconfig = {{ deny = [\"10.0.0.0/8\"] }}",
                "0".repeat(64)
            ),
            Box::new(|e| matches!(e, BuildError::Sha256Mismatch { .. })),
            format!(
                "vips[0].plugins[1]: plugin \"cidr-filter\" has sha256 {cidr_sha}, but the binding pins"
            ),
        ),
        (
            format!(
                "{ok}[[vips.plugins]]\nplugin = \"cidr-filter\"\nconfig = {{ deny = [\"10.0.0.1/8\"] }}"
            ),
            Box::new(|e| {
                matches!(e, BuildError::Instance { error: InstanceError::Refused(m), .. }
                         if m.contains("did you mean 10.0.0.0/8"))
            }),
            "vips[0].plugins[1]: plugin \"cidr-filter\": the plugin refused its configuration"
                .into(),
        ),
        (
            format!(
                "{ok}[[vips.plugins]]\nplugin = \"rate-limit\"\nconfig = {{ unit = \"packets\" }}"
            ),
            Box::new(
                |e| matches!(e, BuildError::Instance { error: InstanceError::Refused(m), .. } if m.contains("missing field `rate`")),
            ),
            "vips[0].plugins[1]".into(),
        ),
    ];
    for (bindings, is_expected, text) in cases {
        let err = host
            .publish(&slots, &doc(2, &bindings), &plugins::example_module)
            .err()
            .unwrap();
        assert!(is_expected(&err), "{err:?}");
        assert!(
            err.to_string().starts_with(&text),
            "{text:?} is not the start of {err}"
        );
        assert_eq!(slots.generation(), 0, "nothing published");
        assert!(slots.take(0).is_none() && slots.take(1).is_none());
    }
    // The pin in the right form is accepted (any case).
    let pinned = format!(
        "[[vips.plugins]]\nplugin = \"cidr-filter\"\nsha256 = \"{}\"\nconfig = {{ deny = [\"10.0.0.0/8\"] }}",
        cidr_sha.to_uppercase()
    );
    assert_eq!(
        host.publish(&slots, &doc(2, &pinned), &plugins::example_module)
            .unwrap(),
        1
    );
    // A module that does not pass the upload checks is refused at build time too.
    let bad = |name: &str| (name == "junk").then(|| b"not wasm".to_vec());
    let err = host
        .publish(&slots, &doc(2, "[[vips.plugins]]\nplugin = \"junk\""), &bad)
        .err()
        .unwrap();
    assert!(matches!(err, BuildError::Refused { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("vips[0].plugins[0]: plugin \"junk\" is refused: not a WebAssembly module"),
        "{err}"
    );
}

#[test]
fn plugin_check_cli_accepts_a_plugin_and_refuses_junk() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("accounting.wasm");
    std::fs::write(&good, plugin_wasm("accounting")).unwrap();
    let junk = dir.path().join("junk.wasm");
    std::fs::write(&junk, b"\0asm\x01\0\0\0\x01\x05junk").unwrap();
    let bin = env!("CARGO_BIN_EXE_tungate");
    let out = std::process::Command::new(bin)
        .args(["plugin", "check"])
        .arg(&good)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("name:    accounting 0.1.0"), "{stdout}");
    assert!(stdout.contains("abi:     v2"), "{stdout}");
    assert!(stdout.contains("tungate_filter"), "{stdout}");
    let out = std::process::Command::new(bin)
        .args(["plugin", "check"])
        .arg(&junk)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("refused: the module does not compile"),
        "{stderr}"
    );
}

#[test]
fn an_exhausted_instance_pool_is_a_build_error_naming_the_pool() {
    // In-process plugin instances: not beside a test that measures this process.
    let _machine = machine::shared();
    let host = PluginHost::new(Limits {
        max_instances: 2,
        ..Limits::default()
    })
    .unwrap();
    let slots = FilterSlots::new(3);
    let doc = doc(
        3,
        r#"[[vips.plugins]]
           plugin = "accounting"
           config = { prefixes = ["0.0.0.0/0"] }"#,
    );
    let err = host
        .publish(&slots, &doc, &plugins::example_module)
        .err()
        .unwrap();
    // The whole configuration is too large for the pool: no binding is blamed.
    assert!(
        matches!(
            err,
            BuildError::PoolTooSmall {
                needed: 3,
                bindings: 1,
                workers: 3,
                pool: 2,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        err.to_string().starts_with(
            "the configuration needs 3 plugin instances (1 bindings × 3 workers), and the \
             instance pool holds 2"
        ),
        "{err}"
    );
    assert_eq!(slots.generation(), 0);
    // Nothing of the refused build holds the pool: a smaller build fits.
    let one = FilterSlots::new(2);
    assert_eq!(
        host.publish(&one, &doc, &plugins::example_module).unwrap(),
        1
    );
}
