//! Every Prometheus metric of tungate, defined once here, rendered at scrape time.
//!
//! The data path never calls `metrics`: workers keep their own relaxed counters
//! ([`tungate_datapath::counters`], [`tungate_plugin_host::stats`]) and a scrape reads them
//! into a fresh `metrics-exporter-prometheus` recorder with `Counter::absolute` and gauges,
//! so a removed binding's series disappears with it and nothing is kept between scrapes.
//! The plugin call-time histogram is kept by the plugin host in fixed buckets (one record
//! per batch call); the exporter cannot take pre-bucketed counts, so that one family is
//! written here in the same text format. Labels are bounded: VIP, drop reason, plugin,
//! position, error kind, peer name and the names and labels plugins define — never client
//! addresses.

use std::fmt::Write as _;

use metrics::{Unit, counter, describe_counter, describe_gauge, gauge};
use metrics_exporter_prometheus::PrometheusBuilder;

use tungate_api::wire::PeerStats;
use tungate_datapath::counters::Snapshot;
use tungate_packet::DropReason;
use tungate_plugin_host::BindingSnapshot;
use tungate_plugin_host::stats::{CALL_NS_BOUNDS, ErrorKind};

/// `tungate_build_info` (gauge, 1; label `version`).
pub(crate) const BUILD_INFO: &str = "tungate_build_info";
/// `tungate_uptime_seconds` (gauge).
pub(crate) const UPTIME: &str = "tungate_uptime_seconds";
/// `tungate_config_generation` (gauge): configurations and plugin swaps applied.
pub(crate) const CONFIG_GENERATION: &str = "tungate_config_generation";
/// `tungate_ready` (gauge, 0 or 1).
pub(crate) const READY: &str = "tungate_ready";
/// `tungate_network_in_sync` (gauge, 0 or 1; absent when no reconciler runs).
pub(crate) const NETWORK_IN_SYNC: &str = "tungate_network_in_sync";
/// `tungate_fleet_applied_revision` (gauge; fleet mode only): the fleet revision in force.
pub(crate) const FLEET_APPLIED_REVISION: &str = "tungate_fleet_applied_revision";
/// `tungate_fleet_latest_revision` (gauge; fleet mode only): the newest fleet revision seen.
pub(crate) const FLEET_LATEST_REVISION: &str = "tungate_fleet_latest_revision";
/// `tungate_received_packets_total` (counter).
pub(crate) const RX_PACKETS: &str = "tungate_received_packets_total";
/// `tungate_received_bytes_total` (counter).
pub(crate) const RX_BYTES: &str = "tungate_received_bytes_total";
/// `tungate_transmitted_packets_total` (counter).
pub(crate) const TX_PACKETS: &str = "tungate_transmitted_packets_total";
/// `tungate_transmitted_bytes_total` (counter).
pub(crate) const TX_BYTES: &str = "tungate_transmitted_bytes_total";
/// `tungate_transmitted_fallback_packets_total` (counter).
pub(crate) const TX_FALLBACK: &str = "tungate_transmitted_fallback_packets_total";
/// `tungate_received_packet_path_packets_total` (counter).
pub(crate) const RX_PACKET_PATH: &str = "tungate_received_packet_path_packets_total";
/// `tungate_transmitted_packet_path_packets_total` (counter).
pub(crate) const TX_PACKET_PATH: &str = "tungate_transmitted_packet_path_packets_total";
/// `tungate_icmp_frag_needed_total` (counter; label `outcome`: `sent`, `rate_limited`,
/// `failed`).
pub(crate) const ICMP_FRAG_NEEDED: &str = "tungate_icmp_frag_needed_total";
/// `tungate_dropped_packets_total` (counter; label `reason`).
pub(crate) const DROPPED: &str = "tungate_dropped_packets_total";
/// `tungate_vip_forwarded_packets_total` (counter; label `vip`).
pub(crate) const VIP_PACKETS: &str = "tungate_vip_forwarded_packets_total";
/// `tungate_vip_forwarded_bytes_total` (counter; label `vip`).
pub(crate) const VIP_BYTES: &str = "tungate_vip_forwarded_bytes_total";
/// `tungate_vip_dropped_packets_total` (counter; labels `vip`, `reason`).
pub(crate) const VIP_DROPPED: &str = "tungate_vip_dropped_packets_total";
/// `tungate_peer_received_packets_total` (counter; label `peer`).
pub(crate) const PEER_PACKETS: &str = "tungate_peer_received_packets_total";
/// `tungate_peer_received_bytes_total` (counter; label `peer`).
pub(crate) const PEER_BYTES: &str = "tungate_peer_received_bytes_total";
/// `tungate_peer_dropped_packets_total` (counter; labels `peer`, `reason`).
pub(crate) const PEER_DROPPED: &str = "tungate_peer_dropped_packets_total";
/// `tungate_peer_last_heard_timestamp_seconds` (gauge; label `peer`; absent until heard).
pub(crate) const PEER_LAST_HEARD: &str = "tungate_peer_last_heard_timestamp_seconds";
/// `tungate_peer_silent` (gauge, 0 or 1; label `peer`).
pub(crate) const PEER_SILENT: &str = "tungate_peer_silent";
/// `tungate_plugin_calls_total` (counter; binding labels).
pub(crate) const PLUGIN_CALLS: &str = "tungate_plugin_calls_total";
/// `tungate_plugin_verdicts_total` (counter; binding labels, `verdict`).
pub(crate) const PLUGIN_VERDICTS: &str = "tungate_plugin_verdicts_total";
/// `tungate_plugin_errors_total` (counter; binding labels, `kind`).
pub(crate) const PLUGIN_ERRORS: &str = "tungate_plugin_errors_total";
/// `tungate_plugin_failure_packets_total` (counter; binding labels, `action`, `cause`).
pub(crate) const PLUGIN_FAILURE_PACKETS: &str = "tungate_plugin_failure_packets_total";
/// `tungate_plugin_quarantined` (gauge; binding labels).
pub(crate) const PLUGIN_QUARANTINED: &str = "tungate_plugin_quarantined";
/// `tungate_plugin_log_lines_total` (counter; binding labels, `outcome`).
pub(crate) const PLUGIN_LOG_LINES: &str = "tungate_plugin_log_lines_total";
/// `tungate_plugin_counter_total` (counter; binding labels, `counter`, `counter_label`).
pub(crate) const PLUGIN_COUNTER: &str = "tungate_plugin_counter_total";
/// `tungate_plugin_batch_duration_seconds` (histogram; binding labels).
pub(crate) const PLUGIN_BATCH_SECONDS: &str = "tungate_plugin_batch_duration_seconds";

/// Everything one scrape reads.
pub(crate) struct Sources<'a> {
    /// The tungate version.
    pub version: &'a str,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// Configuration generation.
    pub generation: u64,
    /// Whether the data path runs with the configuration in force.
    pub ready: bool,
    /// Whether the last netcfg reconciling pass succeeded (`None`: no reconciler).
    pub network_in_sync: Option<bool>,
    /// Fleet mode: the fleet revision in force and the newest seen (`None`: no fleet).
    pub fleet_revisions: Option<(u64, u64)>,
    /// The data path's counters.
    pub counters: &'a Snapshot,
    /// The bindings' statistics.
    pub bindings: &'a [BindingSnapshot],
    /// The configured peers' statistics.
    pub peers: &'a [PeerStats],
}

fn describe() {
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the label carries the tungate version."
    );
    describe_gauge!(UPTIME, Unit::Seconds, "Seconds since tungate started.");
    describe_gauge!(
        CONFIG_GENERATION,
        "Configuration documents and plugin swaps applied since start (1 = the first)."
    );
    describe_gauge!(
        READY,
        "1 when the data path runs with the configuration in force."
    );
    describe_gauge!(
        NETWORK_IN_SYNC,
        "1 when the last netcfg pass found the tunnels, rules and sysctls as configured."
    );
    describe_gauge!(
        FLEET_APPLIED_REVISION,
        "Fleet mode: the fleet revision (etcd) in force on this gateway."
    );
    describe_gauge!(
        FLEET_LATEST_REVISION,
        "Fleet mode: the newest fleet revision seen; above the applied one when it could \
         not be applied here (see /api/v1/status fleet.error)."
    );
    describe_counter!(RX_PACKETS, "Frames received by the data path.");
    describe_counter!(RX_BYTES, Unit::Bytes, "Bytes of the frames received.");
    describe_counter!(TX_PACKETS, "Decapsulated packets forwarded to clients.");
    describe_counter!(TX_BYTES, Unit::Bytes, "Bytes of the packets forwarded.");
    describe_counter!(
        TX_FALLBACK,
        "Forwarded packets sent by the raw-socket fallback (next hop not yet resolved)."
    );
    describe_counter!(
        RX_PACKET_PATH,
        "On the AF_XDP path: packets received through the TPACKET rings beside it (frames \
         the XDP program passes to the kernel, e.g. larger than a UMEM frame)."
    );
    describe_counter!(
        TX_PACKET_PATH,
        "On the AF_XDP path: packets transmitted through a TPACKET ring (what AF_XDP cannot \
         carry)."
    );
    describe_counter!(
        ICMP_FRAG_NEEDED,
        "ICMP fragmentation-needed messages to VIPs about too-big DF packets, by outcome."
    );
    describe_counter!(DROPPED, "Packets dropped, by reason.");
    describe_counter!(VIP_PACKETS, "Packets forwarded, per VIP.");
    describe_counter!(VIP_BYTES, Unit::Bytes, "Bytes forwarded, per VIP.");
    describe_counter!(VIP_DROPPED, "Packets of a VIP dropped, by reason.");
    describe_counter!(
        PEER_PACKETS,
        "Packets received from a peer (real server), whatever became of them."
    );
    describe_counter!(PEER_BYTES, Unit::Bytes, "Bytes received from a peer.");
    describe_counter!(PEER_DROPPED, "Packets of a peer dropped, by reason.");
    describe_gauge!(
        PEER_LAST_HEARD,
        Unit::Seconds,
        "When a packet from the peer was last received (Unix time)."
    );
    describe_gauge!(
        PEER_SILENT,
        "1 while the peer has sent nothing for longer than its silent_after."
    );
    describe_counter!(PLUGIN_CALLS, "Batch calls into a binding's plugin.");
    describe_counter!(
        PLUGIN_VERDICTS,
        "Packets a binding's plugin passed or dropped."
    );
    describe_counter!(PLUGIN_ERRORS, "Failed plugin calls, by kind.");
    describe_counter!(
        PLUGIN_FAILURE_PACKETS,
        "Packets a binding's on_error decided: after a failed call or while quarantined."
    );
    describe_gauge!(
        PLUGIN_QUARANTINED,
        "1 while the binding is quarantined on any worker."
    );
    describe_counter!(
        PLUGIN_LOG_LINES,
        "Plugin log lines emitted or suppressed by the rate limit."
    );
    describe_counter!(
        PLUGIN_COUNTER,
        "Counters the plugins define, with the name and label the plugin gave."
    );
}

fn binding_labels(b: &BindingSnapshot) -> [(&'static str, String); 3] {
    [
        ("vip", b.key.vip.to_string()),
        ("position", b.key.position.to_string()),
        ("plugin", b.key.plugin.clone()),
    ]
}

fn with<const N: usize>(
    base: &[(&'static str, String); N],
    extra: &[(&'static str, &str)],
) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&'static str, String)> = base.to_vec();
    out.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    out
}

fn record(s: &Sources<'_>) {
    describe();
    gauge!(BUILD_INFO, "version" => s.version.to_owned()).set(1.0);
    gauge!(UPTIME).set(s.uptime_seconds);
    gauge!(CONFIG_GENERATION).set(s.generation as f64);
    gauge!(READY).set(if s.ready { 1.0 } else { 0.0 });
    if let Some(in_sync) = s.network_in_sync {
        gauge!(NETWORK_IN_SYNC).set(if in_sync { 1.0 } else { 0.0 });
    }
    if let Some((applied, latest)) = s.fleet_revisions {
        gauge!(FLEET_APPLIED_REVISION).set(applied as f64);
        gauge!(FLEET_LATEST_REVISION).set(latest as f64);
    }
    let c = s.counters;
    counter!(RX_PACKETS).absolute(c.rx_packets);
    counter!(RX_BYTES).absolute(c.rx_bytes);
    counter!(TX_PACKETS).absolute(c.tx_packets);
    counter!(TX_BYTES).absolute(c.tx_bytes);
    counter!(TX_FALLBACK).absolute(c.tx_fallback_packets);
    counter!(RX_PACKET_PATH).absolute(c.rx_packet_path_packets);
    counter!(TX_PACKET_PATH).absolute(c.tx_packet_path_packets);
    for (outcome, n) in [
        ("sent", c.icmp_sent),
        ("rate_limited", c.icmp_rate_limited),
        ("failed", c.icmp_failed),
    ] {
        counter!(ICMP_FRAG_NEEDED, "outcome" => outcome).absolute(n);
    }
    for reason in DropReason::ALL {
        counter!(DROPPED, "reason" => reason.as_str()).absolute(c.drops.get(reason));
    }
    for v in &c.vips {
        let vip = v.vip.to_string();
        counter!(VIP_PACKETS, "vip" => vip.clone()).absolute(v.packets);
        counter!(VIP_BYTES, "vip" => vip.clone()).absolute(v.bytes);
        for (reason, n) in v.drops.nonzero() {
            counter!(VIP_DROPPED, "vip" => vip.clone(), "reason" => reason).absolute(n);
        }
    }
    for p in s.peers {
        let peer = p.name.clone();
        counter!(PEER_PACKETS, "peer" => peer.clone()).absolute(p.received_packets);
        counter!(PEER_BYTES, "peer" => peer.clone()).absolute(p.received_bytes);
        for (reason, n) in p.dropped.iter().filter(|(_, n)| **n > 0) {
            counter!(PEER_DROPPED, "peer" => peer.clone(), "reason" => reason.clone()).absolute(*n);
        }
        if let Some(at) = p.last_heard_unix {
            gauge!(PEER_LAST_HEARD, "peer" => peer.clone()).set(at);
        }
        gauge!(PEER_SILENT, "peer" => peer).set(if p.silent { 1.0 } else { 0.0 });
    }
    for b in s.bindings {
        let base = binding_labels(b);
        counter!(PLUGIN_CALLS, &base).absolute(b.calls);
        counter!(PLUGIN_VERDICTS, &with(&base, &[("verdict", "pass")])).absolute(b.passed);
        counter!(PLUGIN_VERDICTS, &with(&base, &[("verdict", "drop")])).absolute(b.dropped);
        for kind in ErrorKind::ALL {
            let n = match kind {
                ErrorKind::Deadline => b.errors.deadline,
                ErrorKind::MemoryCap => b.errors.memory_cap,
                ErrorKind::Trap => b.errors.trap,
                ErrorKind::BadVerdict => b.errors.bad_verdict,
            };
            counter!(PLUGIN_ERRORS, &with(&base, &[("kind", kind.as_str())])).absolute(n);
        }
        for (action, cause, n) in [
            ("pass", "error", b.error_passed),
            ("drop", "error", b.error_dropped),
            ("pass", "quarantine", b.skipped_passed),
            ("drop", "quarantine", b.skipped_dropped),
        ] {
            let labels = with(&base, &[("action", action), ("cause", cause)]);
            counter!(PLUGIN_FAILURE_PACKETS, &labels).absolute(n);
        }
        gauge!(PLUGIN_QUARANTINED, &base).set(if b.quarantined { 1.0 } else { 0.0 });
        counter!(PLUGIN_LOG_LINES, &with(&base, &[("outcome", "emitted")])).absolute(b.log_lines);
        counter!(PLUGIN_LOG_LINES, &with(&base, &[("outcome", "suppressed")]))
            .absolute(b.log_suppressed);
        for pc in &b.counters {
            let labels = with(
                &base,
                &[
                    ("counter", pc.name.as_str()),
                    ("counter_label", pc.label.as_str()),
                ],
            );
            counter!(PLUGIN_COUNTER, &labels).absolute(pc.value);
        }
    }
}

/// Escapes a label value for the text format.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('\n', "\\n")
        .replace('"', "\\\"")
}

/// Writes the plugin call-time histogram (cumulative buckets in seconds, sum and count).
fn render_histogram(bindings: &[BindingSnapshot], out: &mut String) {
    if bindings.is_empty() {
        return;
    }
    let _ = writeln!(
        out,
        "# HELP {PLUGIN_BATCH_SECONDS} Time of one batch call into a binding's plugin."
    );
    let _ = writeln!(out, "# TYPE {PLUGIN_BATCH_SECONDS} histogram");
    for b in bindings {
        let labels = format!(
            "vip=\"{}\",position=\"{}\",plugin=\"{}\"",
            b.key.vip,
            b.key.position,
            escape(&b.key.plugin)
        );
        let mut cumulative = 0u64;
        for (i, bound) in CALL_NS_BOUNDS.iter().enumerate() {
            cumulative += b.call_ns_buckets.get(i).copied().unwrap_or(0);
            let le = *bound as f64 / 1e9;
            let _ = writeln!(
                out,
                "{PLUGIN_BATCH_SECONDS}_bucket{{{labels},le=\"{le}\"}} {cumulative}"
            );
        }
        let total: u64 = b.call_ns_buckets.iter().sum();
        let _ = writeln!(
            out,
            "{PLUGIN_BATCH_SECONDS}_bucket{{{labels},le=\"+Inf\"}} {total}"
        );
        let _ = writeln!(
            out,
            "{PLUGIN_BATCH_SECONDS}_sum{{{labels}}} {}",
            b.call_ns_sum as f64 / 1e9
        );
        let _ = writeln!(out, "{PLUGIN_BATCH_SECONDS}_count{{{labels}}} {total}");
    }
}

/// The Prometheus text exposition of every metric.
pub(crate) fn render(sources: &Sources<'_>) -> String {
    let recorder = PrometheusBuilder::new().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || record(sources));
    let mut out = handle.render();
    render_histogram(sources.bindings, &mut out);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tungate_datapath::counters::{DropCounts, VipSnapshot};
    use tungate_plugin_host::stats::{BindingKey, CounterValue, ErrorCounts};

    /// A binding's statistics as the plugin host reports them (shared by the admin tests).
    pub(crate) fn binding() -> BindingSnapshot {
        let mut buckets = vec![0u64; CALL_NS_BOUNDS.len() + 1];
        buckets[0] = 2;
        buckets[3] = 1;
        BindingSnapshot {
            key: BindingKey {
                vip: "192.0.2.10".parse().unwrap(),
                position: 1,
                plugin: "cidr-filter".into(),
            },
            sha256: "ab".repeat(32),
            on_error: "pass",
            calls: 3,
            passed: 40,
            dropped: 2,
            errors: ErrorCounts {
                trap: 1,
                ..ErrorCounts::default()
            },
            error_passed: 5,
            error_dropped: 0,
            skipped_passed: 0,
            skipped_dropped: 0,
            quarantined: true,
            quarantined_workers: 1,
            log_lines: 0,
            log_suppressed: 0,
            call_ns_sum: 1_500,
            call_ns_buckets: buckets,
            counters: vec![CounterValue {
                name: "dropped".into(),
                label: "denied".into(),
                value: 2,
            }],
            last_error: None,
        }
    }

    #[test]
    fn every_family_renders_with_bounded_labels() {
        let mut drops = DropCounts::default();
        drops.0[DropReason::Plugin.index()] = 2;
        let counters = Snapshot {
            rx_packets: 50,
            rx_bytes: 5000,
            tx_packets: 40,
            tx_bytes: 4000,
            tx_fallback_packets: 1,
            rx_packet_path_packets: 5,
            tx_packet_path_packets: 4,
            icmp_sent: 7,
            icmp_rate_limited: 2,
            icmp_failed: 0,
            drops,
            vips: vec![VipSnapshot {
                vip: "192.0.2.10".parse().unwrap(),
                packets: 40,
                bytes: 4000,
                drops,
            }],
            peers: vec![],
        };
        let bindings = [binding()];
        let peer = |name: &str, heard: Option<f64>, silent| PeerStats {
            name: name.into(),
            address: "10.0.1.2".into(),
            tunnel: "ipip".into(),
            port: None,
            key: None,
            received_packets: 44,
            received_bytes: 5000,
            dropped: [("vip_not_served".to_owned(), 3), ("plugin".to_owned(), 0)].into(),
            last_heard_unix: heard,
            silent_seconds: 1.0,
            silent_after_seconds: 30.0,
            silent,
        };
        let peers = [
            peer("rs1", Some(1_700_000_000.5), false),
            peer("rs2", None, true),
        ];
        let text = render(&Sources {
            version: "9.9.9",
            uptime_seconds: 12.5,
            generation: 3,
            ready: true,
            network_in_sync: Some(false),
            fleet_revisions: Some((41, 42)),
            counters: &counters,
            bindings: &bindings,
            peers: &peers,
        });
        let b = "vip=\"192.0.2.10\",position=\"1\",plugin=\"cidr-filter\"";
        for line in [
            "tungate_build_info{version=\"9.9.9\"} 1".to_owned(),
            "tungate_config_generation 3".into(),
            "tungate_ready 1".into(),
            "tungate_network_in_sync 0".into(),
            "tungate_fleet_applied_revision 41".into(),
            "tungate_fleet_latest_revision 42".into(),
            "tungate_received_packets_total 50".into(),
            "tungate_transmitted_bytes_total 4000".into(),
            "tungate_received_packet_path_packets_total 5".into(),
            "tungate_transmitted_packet_path_packets_total 4".into(),
            "tungate_dropped_packets_total{reason=\"plugin\"} 2".into(),
            "tungate_icmp_frag_needed_total{outcome=\"sent\"} 7".into(),
            "tungate_icmp_frag_needed_total{outcome=\"rate_limited\"} 2".into(),
            "tungate_dropped_packets_total{reason=\"ttl_expired\"} 0".into(),
            "tungate_vip_forwarded_packets_total{vip=\"192.0.2.10\"} 40".into(),
            "tungate_vip_dropped_packets_total{vip=\"192.0.2.10\",reason=\"plugin\"} 2".into(),
            "tungate_peer_received_packets_total{peer=\"rs1\"} 44".into(),
            "tungate_peer_received_bytes_total{peer=\"rs2\"} 5000".into(),
            "tungate_peer_dropped_packets_total{peer=\"rs1\",reason=\"vip_not_served\"} 3".into(),
            "tungate_peer_last_heard_timestamp_seconds{peer=\"rs1\"} 1700000000.5".into(),
            "tungate_peer_silent{peer=\"rs1\"} 0".into(),
            "tungate_peer_silent{peer=\"rs2\"} 1".into(),
            format!("tungate_plugin_verdicts_total{{{b},verdict=\"drop\"}} 2"),
            format!("tungate_plugin_errors_total{{{b},kind=\"trap\"}} 1"),
            format!(
                "tungate_plugin_failure_packets_total{{{b},action=\"pass\",cause=\"error\"}} 5"
            ),
            format!("tungate_plugin_quarantined{{{b}}} 1"),
            format!(
                "tungate_plugin_counter_total{{{b},counter=\"dropped\",counter_label=\"denied\"}} 2"
            ),
            format!("tungate_plugin_batch_duration_seconds_bucket{{{b},le=\"0.000000128\"}} 2"),
            format!("tungate_plugin_batch_duration_seconds_bucket{{{b},le=\"0.000001024\"}} 3"),
            format!("tungate_plugin_batch_duration_seconds_bucket{{{b},le=\"+Inf\"}} 3"),
            format!("tungate_plugin_batch_duration_seconds_sum{{{b}}} 0.0000015"),
            format!("tungate_plugin_batch_duration_seconds_count{{{b}}} 3"),
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "missing line {line:?} in:\n{text}"
            );
        }
        assert!(
            text.contains("# TYPE tungate_received_packets_total counter"),
            "{text}"
        );
        assert!(text.contains("# TYPE tungate_plugin_batch_duration_seconds histogram"));
        assert!(
            text.contains("# HELP tungate_vip_forwarded_bytes_total"),
            "{text}"
        );
        // Never heard: no timestamp; no series for a reason with no drops.
        assert!(
            !text.contains("tungate_peer_last_heard_timestamp_seconds{peer=\"rs2\"}"),
            "{text}"
        );
        assert!(!text.contains("peer=\"rs1\",reason=\"plugin\""), "{text}");
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
