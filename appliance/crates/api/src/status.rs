//! `tungate status`: a readable summary of a running appliance, read through its admin API
//! (`/api/v1/status` and `/api/v1/stats`): version, uptime, decap mode, workers, readiness,
//! per-peer received packets and when each was last heard from (a warning for a silent
//! one), per-VIP forwarded and dropped packets, and every plugin binding with its verdicts
//! and quarantine flag.
//!
//! It only reads: it never changes the appliance. Exit status 0 when the appliance answers
//! and is ready, 1 when it cannot be reached or answers with an error (a token given with
//! `--token-file` that the appliance refuses included: it is checked even where reads need
//! none, so a wrong file is said, not silently ignored), 3 when it answers but is not ready,
//! its networking is not as configured (the netcfg reconciler's last pass failed: a tunnel
//! that cannot be built, say), or a plugin binding is quarantined. Warnings (an admin
//! listener without TLS off loopback, plugin calls that failed) are printed, exit 0.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use crate::client::{ApiClient, ClientError};
use crate::wire::{Fleet, PeerStats, Stats, Status};

/// The default admin URL (the default `--admin-listen` of `tungate run`).
pub const DEFAULT_URL: &str = "http://127.0.0.1:9080";
/// The exit status when the appliance answers but is not ready or its networking is not as
/// configured.
pub(crate) const EXIT_NOT_READY: i32 = 3;

/// Runs `tungate status` against `url`, with the token in `token_file` and, for an
/// `https://` URL, trusting the certificates in `ca` (else the system's bundle); returns
/// the exit status.
pub fn run(url: &str, token_file: Option<&PathBuf>, ca: Option<&PathBuf>) -> i32 {
    let (client, runtime) = match crate::command::connect("status", url, token_file, ca) {
        Ok(connected) => connected,
        Err(status) => return status,
    };
    if let Some(path) = token_file {
        match runtime.block_on(check_token(&client)) {
            Ok(()) => {}
            Err(e @ ClientError::Status { status: 401, .. }) => {
                eprintln!(
                    "tungate status: the token in {} is not accepted: {e}",
                    path.display()
                );
                return 1;
            }
            Err(e) => {
                eprintln!("tungate status: {e}");
                return 1;
            }
        }
    }
    match runtime.block_on(fetch(&client)) {
        Ok((status, stats)) => {
            print!("{}", render(client.url(), &status, &stats));
            if let Some(follow) = &status.fleet {
                println!("\n{}", follow.describe());
            }
            if let Some(follow) = status.fleet.as_ref().filter(|f| f.etcd) {
                match runtime.block_on(client.get_json::<Fleet>("/api/v1/fleet")) {
                    Ok(fleet) => print!("{}", render_fleet(&fleet)),
                    Err(e) => eprintln!("tungate status: cannot list fleet {}: {e}", follow.name),
                }
            }
            for warning in status.warnings() {
                eprintln!("tungate status: warning: {warning}");
            }
            match status.problem() {
                None => 0,
                Some(problem) => {
                    eprintln!("tungate status: {problem}");
                    EXIT_NOT_READY
                }
            }
        }
        Err(e) => {
            eprintln!("tungate status: {e}");
            1
        }
    }
}

/// Checks the client's token with `GET /api/v1/auth` (which always checks it).
async fn check_token(client: &ApiClient) -> Result<(), ClientError> {
    client
        .expect_success(hyper::Method::GET, "/api/v1/auth", None, Vec::new())
        .await
        .map(|_| ())
}

/// Reads status and stats.
async fn fetch(client: &ApiClient) -> Result<(Status, Stats), ClientError> {
    let status = client.get_json("/api/v1/status").await?;
    let stats = client.get_json("/api/v1/stats").await?;
    Ok((status, stats))
}

/// The fleet's gateways (fleet mode), each with whether it runs the latest revision.
fn render_fleet(fleet: &Fleet) -> String {
    let mut out = format!(
        "\nfleet {} (this gateway: {}) · latest revision {}{}\n",
        fleet.name,
        fleet.member,
        fleet.latest_revision,
        match (&fleet.error, fleet.reachable) {
            (_, true) => String::new(),
            (Some(e), false) => format!(" · etcd UNREACHABLE: {e}"),
            (None, false) => " · etcd not reached yet".into(),
        }
    );
    let rows: Vec<Vec<String>> = fleet
        .gateways
        .iter()
        .map(|g| {
            vec![
                g.member.clone(),
                g.address.clone(),
                g.version.clone(),
                format!(
                    "{}{}",
                    g.applied_revision,
                    if g.latest { " (latest)" } else { " (BEHIND)" }
                ),
                match (g.ready, &g.not_ready) {
                    (true, _) => "ready".to_owned(),
                    (false, Some(why)) => format!("NOT READY: {why}"),
                    (false, None) => "NOT READY".to_owned(),
                },
                g.announcement.clone().unwrap_or_else(|| "-".into()),
                g.io.clone(),
                [
                    g.error.clone().unwrap_or_default(),
                    if g.quarantined.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "quarantined (does not affect readiness): {}",
                            g.quarantined.join(", ")
                        )
                    },
                ]
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect::<Vec<_>>()
                .join("; "),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "GATEWAY", "ADMIN", "VERSION", "REVISION", "STATE", "GIP", "IO", "NOTE",
        ],
        &rows,
    ));
    out
}

/// Seconds as `1d 2h`, `3h 4m`, `5m 6s` or `7s`.
fn human_duration(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    let (d, h, m, s) = (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m {s}s"),
        (0, _, _) => format!("{h}h {m}m"),
        _ => format!("{d}d {h}h"),
    }
}

/// Bytes with a binary unit (`512 B`, `1.5 KiB`, `2.0 MiB`, ...).
fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// Lays rows out in left-aligned columns under a header, two spaces apart.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                out.push_str(cell);
            } else {
                let _ = write!(out, "{cell:<w$}  ");
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(header.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn reasons(map: &BTreeMap<String, u64>) -> String {
    let nonzero: Vec<String> = map
        .iter()
        .filter(|(_, n)| **n > 0)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    if nonzero.is_empty() {
        "-".into()
    } else {
        nonzero.join(", ")
    }
}

/// A peer's return tunnel as the table shows it (as the web UI does): `ipip`, `gue :6080`,
/// `fou :5555`, `gre`, `gre key 7`.
fn tunnel(p: &PeerStats) -> String {
    match (p.port, p.key) {
        (Some(port), _) => format!("{} :{port}", p.tunnel),
        (None, Some(key)) => format!("{} key {key}", p.tunnel),
        (None, None) => p.tunnel.clone(),
    }
}

/// The peers' table and a warning line per silent peer (a warning: exit status unchanged).
fn render_peers(out: &mut String, stats: &Stats) {
    if stats.peers.is_empty() {
        return;
    }
    let rows: Vec<Vec<String>> = stats
        .peers
        .iter()
        .map(|p| {
            let heard = match p.last_heard_unix {
                Some(_) => format!("{} ago", human_duration(p.silent_seconds)),
                None => "never".into(),
            };
            vec![
                p.name.clone(),
                p.address.clone(),
                tunnel(p),
                p.received_packets.to_string(),
                human_bytes(p.received_bytes),
                heard,
                if p.silent { "SILENT" } else { "ok" }.into(),
                reasons(&p.dropped),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "PEER",
            "ADDRESS",
            "TUNNEL",
            "RECEIVED",
            "BYTES",
            "LAST HEARD",
            "STATE",
            "DROP REASONS",
        ],
        &rows,
    ));
    for p in stats.peers.iter().filter(|p| p.silent) {
        let _ = writeln!(
            out,
            "WARNING: peer {} ({}) silent for {} (silent_after {}): is its tunnel up?",
            p.name,
            p.address,
            human_duration(p.silent_seconds),
            human_duration(p.silent_after_seconds)
        );
    }
    out.push('\n');
}

/// The summary a person reads.
fn render(url: &str, status: &Status, stats: &Stats) -> String {
    let mut out = String::new();
    let t = &status.totals;
    let _ = writeln!(
        out,
        "tungate {} at {url}: {}",
        status.version,
        match (status.ready, &status.not_ready) {
            (true, _) => "ready".to_owned(),
            (false, Some(why)) => format!("NOT READY: {why}"),
            (false, None) => "NOT READY".to_owned(),
        }
    );
    let _ = writeln!(
        out,
        "  up {} · decap {} · {} worker{} · gateway {} · {} peer{} · config generation {}",
        human_duration(status.uptime_seconds),
        status.decap_mode,
        status.workers,
        if status.workers == 1 { "" } else { "s" },
        status.gateway_addresses().join(" + "),
        status.peers,
        if status.peers == 1 { "" } else { "s" },
        status.config_generation
    );
    let _ = writeln!(out, "  io: {} ({})", status.io.path, status.io.reason);
    if let Some(n) = &status.network {
        let _ = match (&n.last_error, n.in_sync) {
            (_, true) => writeln!(
                out,
                "  network: as configured ({} passes, {} changes since start)",
                n.passes, n.changes_applied
            ),
            (Some(e), false) => writeln!(out, "  network: NOT as configured: {e}"),
            (None, false) => writeln!(out, "  network: no reconciling pass yet"),
        };
    }
    if let Some(warning) = status.admin.as_ref().and_then(|a| a.warning()) {
        let _ = writeln!(out, "  admin: WARNING: {warning}");
    }
    for fault in &status.plugin_faults {
        let _ = writeln!(
            out,
            "  plugin fault: {}{}",
            if fault.quarantined { "PROBLEM: " } else { "" },
            fault.describe()
        );
    }
    let _ = writeln!(
        out,
        "  received {} · forwarded {} ({}) · dropped {}\n",
        t.received_packets,
        t.forwarded_packets,
        human_bytes(t.forwarded_bytes),
        t.dropped_packets
    );
    render_peers(&mut out, stats);
    if stats.vips.is_empty() {
        out.push_str("no VIPs configured\n");
    } else {
        let rows: Vec<Vec<String>> = stats
            .vips
            .iter()
            .map(|v| {
                vec![
                    v.address.clone(),
                    v.peer.clone().unwrap_or_else(|| "-".into()),
                    v.forwarded_packets.to_string(),
                    human_bytes(v.forwarded_bytes),
                    v.dropped.values().sum::<u64>().to_string(),
                    reasons(&v.dropped),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "VIP",
                "PEER",
                "FORWARDED",
                "BYTES",
                "DROPPED",
                "DROP REASONS",
            ],
            &rows,
        ));
    }
    out.push('\n');
    if stats.bindings.is_empty() {
        out.push_str("no plugins bound\n");
    } else {
        let rows: Vec<Vec<String>> = stats
            .bindings
            .iter()
            .map(|b| {
                vec![
                    format!("{}#{}", b.vip, b.position),
                    b.plugin.clone(),
                    b.on_error.clone(),
                    b.verdicts.pass.to_string(),
                    b.verdicts.drop.to_string(),
                    reasons(&b.errors),
                    if b.quarantined { "YES" } else { "no" }.into(),
                    reasons(&b.counters),
                ]
            })
            .collect();
        out.push_str(&table(
            &[
                "BINDING",
                "PLUGIN",
                "ON ERROR",
                "PASSED",
                "DROPPED",
                "ERRORS",
                "QUARANTINED",
                "PLUGIN COUNTERS",
            ],
            &rows,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_lines_say_why_a_gateway_is_not_ready() {
        let gateway = |member: &str, not_ready: Option<&str>| crate::wire::FleetGateway {
            member: member.into(),
            address: "10.0.0.1:9080".into(),
            version: "0.1.0".into(),
            applied_revision: 7,
            error: None,
            ready: not_ready.is_none(),
            not_ready: not_ready.map(str::to_owned),
            io: "packet".into(),
            quarantined: Vec::new(),
            announcement: Some(
                if not_ready.is_none() {
                    "announced"
                } else {
                    "withdrawn"
                }
                .into(),
            ),
            latest: true,
        };
        let fleet = Fleet {
            name: "f1".into(),
            member: "gw1".into(),
            reachable: true,
            latest_revision: 7,
            gateways: vec![
                gateway("gw1", None),
                gateway("gw2", Some("egress interface eth1 is down (no carrier)")),
            ],
            error: None,
        };
        let text = render_fleet(&fleet);
        let lines: Vec<&str> = text.lines().collect();
        let gw1 = lines.iter().find(|l| l.starts_with("gw1")).unwrap();
        let gw2 = lines.iter().find(|l| l.starts_with("gw2")).unwrap();
        assert!(
            gw1.contains(" ready ") && !gw1.contains("NOT READY"),
            "{text}"
        );
        assert!(
            gw2.contains("NOT READY: egress interface eth1 is down (no carrier)")
                && gw2.contains("withdrawn"),
            "{text}"
        );
    }

    #[test]
    fn durations_and_sizes_read_well() {
        assert_eq!(human_duration(7.9), "7s");
        assert_eq!(human_duration(65.0), "1m 5s");
        assert_eq!(human_duration(3.0 * 3600.0 + 120.0), "3h 2m");
        assert_eq!(human_duration(90_000.0), "1d 1h");
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024), "3.0 MiB");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(
            &["A", "LONGER"],
            &[
                vec!["wide cell".into(), "x".into()],
                vec!["b".into(), "".into()],
            ],
        );
        assert_eq!(t, "A          LONGER\nwide cell  x\nb\n");
    }

    #[test]
    fn the_summary_names_vips_bindings_and_quarantine() {
        let status: Status = serde_json::from_value(serde_json::json!({
            "version": "9.9.9", "uptime_seconds": 61.0, "decap_mode": "userspace",
            "workers": 2, "gateway_address": "10.0.0.1", "ready": true, "peers": 1,
            "vips": 1, "config_generation": 4,
            "totals": {"received_packets": 10, "forwarded_packets": 8,
                       "forwarded_bytes": 2048, "dropped_packets": 2},
            "filters": {"published": 4, "workers": [4, 4]},
            "io": {"path": "xdp", "reason": "native XDP attached to eth1"}
        }))
        .unwrap();
        let stats: Stats = serde_json::from_value(serde_json::json!({
            "totals": {"received_packets": 10, "forwarded_packets": 8,
                       "forwarded_bytes": 2048, "dropped_packets": 2},
            "drops": {"plugin": 2, "ttl_expired": 0},
            "vips": [{"address": "192.0.2.1", "peer": "rs1", "forwarded_packets": 8,
                      "forwarded_bytes": 2048, "dropped": {"plugin": 2, "ttl_expired": 0}}],
            "bindings": [{"vip": "192.0.2.1", "position": 0, "plugin": "cidr-filter",
                          "sha256": "00", "on_error": "pass", "calls": 1,
                          "verdicts": {"pass": 8, "drop": 2},
                          "errors": {}, "error_packets": {"pass": 0, "drop": 0},
                          "quarantine_packets": {"pass": 0, "drop": 0},
                          "quarantined": true, "last_error": null,
                          "counters": {"dropped{denied}": 2},
                          "plugin_counters": [{"name": "dropped", "label": "denied",
                                               "value": 2}]}]
        }))
        .unwrap();
        let text = render("http://x:1", &status, &stats);
        assert!(
            text.starts_with("tungate 9.9.9 at http://x:1: ready\n"),
            "{text}"
        );
        assert!(
            text.contains("up 1m 1s · decap userspace · 2 workers"),
            "{text}"
        );
        assert!(
            text.contains("\n  io: xdp (native XDP attached to eth1)\n"),
            "{text}"
        );
        assert!(text.contains("forwarded 8 (2.0 KiB) · dropped 2"), "{text}");
        assert!(
            text.contains("192.0.2.1  rs1   8          2.0 KiB  2        plugin 2"),
            "{text}"
        );
        assert!(
            text.contains("192.0.2.1#0  cidr-filter  pass      8       2        -       YES"),
            "{text}"
        );
        assert!(text.contains("dropped{denied} 2"), "{text}");
        assert!(!text.contains("network:"), "no reconciler, no line: {text}");
        assert!(
            !text.contains("LAST HEARD"),
            "no peers in the stats, no table: {text}"
        );
        assert_eq!(status.problem(), None);
    }

    #[test]
    fn both_gips_and_ipv6_vips_and_bindings_are_shown() {
        let status = |v4: Option<&str>, v6: Option<&str>| -> Status {
            let mut s = serde_json::json!({
                "version": "9.9.9", "uptime_seconds": 1.0, "decap_mode": "userspace",
                "workers": 1, "gateway_address": v4.or(v6).unwrap(), "ready": true,
                "peers": 1, "vips": 1, "config_generation": 1,
                "totals": {"received_packets": 0, "forwarded_packets": 0,
                           "forwarded_bytes": 0, "dropped_packets": 0},
                "filters": {"published": 1, "workers": [1]},
                "io": {"path": "packet", "reason": "gateway.io = \"packet\""}
            });
            if let Some(v6) = v6 {
                s["gateway_address6"] = v6.into();
            }
            serde_json::from_value(s).unwrap()
        };
        let stats: Stats = serde_json::from_value(serde_json::json!({
            "totals": {"received_packets": 3, "forwarded_packets": 3,
                       "forwarded_bytes": 300, "dropped_packets": 0},
            "drops": {},
            "vips": [{"address": "2001:db8:f::10", "peer": "rs6", "forwarded_packets": 3,
                      "forwarded_bytes": 300, "dropped": {}}],
            "bindings": [{"vip": "2001:db8:f::10", "position": 0, "plugin": "cidr-filter",
                          "sha256": "00", "on_error": "pass", "calls": 1,
                          "verdicts": {"pass": 3, "drop": 0},
                          "errors": {}, "error_packets": {"pass": 0, "drop": 0},
                          "quarantine_packets": {"pass": 0, "drop": 0},
                          "quarantined": false, "last_error": null, "counters": {},
                          "plugin_counters": []}]
        }))
        .unwrap();
        let both = status(Some("10.0.0.1"), Some("2001:db8::1"));
        assert_eq!(both.gateway_addresses(), ["10.0.0.1", "2001:db8::1"]);
        let text = render("http://x:1", &both, &stats);
        assert!(
            text.contains(" · gateway 10.0.0.1 + 2001:db8::1 · 1 peer · "),
            "{text}"
        );
        assert!(
            text.contains("\n2001:db8:f::10  rs6   3          300 B  0        -\n"),
            "{text}"
        );
        assert!(
            text.contains("\n2001:db8:f::10#0  cidr-filter  pass      3       0"),
            "{text}"
        );
        // Only an IPv6 GIP: the server reports it in both fields; shown once.
        let v6_only = status(None, Some("2001:db8::1"));
        assert_eq!(v6_only.gateway_addresses(), ["2001:db8::1"]);
        assert!(render("http://x:1", &v6_only, &stats).contains(" · gateway 2001:db8::1 · "));
        // Only an IPv4 GIP, or a tungate that does not send the field: null, shown alone.
        let v4_only = status(Some("10.0.0.1"), None);
        assert_eq!(v4_only.gateway_address6, None);
        assert!(render("http://x:1", &v4_only, &stats).contains(" · gateway 10.0.0.1 · "));
    }

    #[test]
    fn a_quarantined_binding_is_a_problem_and_a_clear_text_listener_a_warning() {
        let mut status: Status = serde_json::from_value(serde_json::json!({
            "version": "9.9.9", "uptime_seconds": 1.0, "decap_mode": "userspace",
            "workers": 1, "gateway_address": "10.0.0.1", "ready": true, "peers": 1,
            "vips": 1, "config_generation": 2,
            "totals": {"received_packets": 0, "forwarded_packets": 0,
                       "forwarded_bytes": 0, "dropped_packets": 9},
            "filters": {"published": 2, "workers": [2]},
            "revision": 5,
            "plugin_faults": [{"vip": "192.0.2.1", "position": 0, "plugin": "trap",
                               "on_error": "drop", "quarantined": true,
                               "dropped_packets": 9, "passed_packets": 0,
                               "last_error": "wasm trap: unreachable"}],
            "admin": {"address": "10.0.0.1:9080", "tls": false, "loopback": false},
            "io": {"path": "packet", "reason": "gateway.io = \"packet\""}
        }))
        .unwrap();
        let stats = Stats {
            totals: status.totals.clone(),
            drops: BTreeMap::new(),
            vips: vec![],
            bindings: vec![],
            peers: vec![],
        };
        let text = render("http://x:1", &status, &stats);
        assert!(
            text.contains(
                "plugin fault: PROBLEM: plugin \"trap\" at 192.0.2.1#0 is QUARANTINED and fails \
                 closed: every packet of the VIP is dropped (9 dropped"
            ),
            "{text}"
        );
        assert!(
            text.contains("admin: WARNING: the admin API listens on 10.0.0.1:9080 WITHOUT TLS"),
            "{text}"
        );
        let problem = status.problem().expect("quarantine is a problem");
        assert!(
            problem.contains("1 plugin binding is quarantined"),
            "{problem}"
        );
        assert_eq!(status.warnings().len(), 1, "the listener");
        // A binding whose calls failed but that is not quarantined: a warning only.
        status.plugin_faults[0].quarantined = false;
        assert_eq!(status.problem(), None);
        assert_eq!(status.warnings().len(), 2);
        // Old servers send neither field.
        let old: Status = serde_json::from_str(
            &serde_json::to_string(&status)
                .unwrap()
                .replace("\"plugin_faults\"", "\"x_faults\""),
        )
        .unwrap();
        assert!(old.plugin_faults.is_empty());
    }

    #[test]
    fn a_silent_peer_is_a_warning_with_when_it_was_last_heard() {
        let peer = |name: &str, heard: Option<f64>, since: f64, silent: bool| {
            serde_json::json!({"name": name, "address": "10.0.1.2", "received_packets": 7,
                "received_bytes": 2048, "dropped": {"vip_not_served": 1, "plugin": 0},
                "last_heard_unix": heard, "silent_seconds": since,
                "silent_after_seconds": 30.0, "silent": silent})
        };
        let mut gue = peer("rs2", None, 75.0, true);
        gue["tunnel"] = "gue".into();
        gue["port"] = 6080.into();
        let mut gre = peer("rs3", Some(1.7e9), 1.0, false);
        gre["tunnel"] = "gre".into();
        gre["key"] = 7.into();
        gre["address"] = "2001:db8::2".into();
        let stats: Stats = serde_json::from_value(serde_json::json!({
            "totals": {"received_packets": 7, "forwarded_packets": 6,
                       "forwarded_bytes": 2048, "dropped_packets": 1},
            "drops": {}, "vips": [], "bindings": [],
            "peers": [peer("rs1", Some(1.7e9), 2.0, false), gue, gre]
        }))
        .unwrap();
        assert_eq!(
            stats.peers[0].tunnel, "ipip",
            "absent: a tungate that does not say"
        );
        let mut text = String::new();
        render_peers(&mut text, &stats);
        assert!(
            text.contains("rs1   10.0.1.2     ipip       7         2.0 KiB  2s ago      ok"),
            "{text}"
        );
        assert!(
            text.contains("rs2   10.0.1.2     gue :6080  7         2.0 KiB  never       SILENT"),
            "{text}"
        );
        assert!(
            text.contains("rs3   2001:db8::2  gre key 7  7         2.0 KiB  1s ago      ok"),
            "{text}"
        );
        assert!(text.contains("vip_not_served 1"), "{text}");
        assert!(
            text.contains("WARNING: peer rs2 (10.0.1.2) silent for 1m 15s (silent_after 30s)"),
            "{text}"
        );
        assert!(!text.contains("WARNING: peer rs1"), "{text}");
    }

    #[test]
    fn networking_not_as_configured_is_a_problem() {
        let mut status: Status = serde_json::from_value(serde_json::json!({
            "version": "9.9.9", "uptime_seconds": 1.0, "decap_mode": "kernel",
            "workers": 1, "gateway_address": "10.0.0.1", "ready": true, "peers": 1,
            "vips": 0, "config_generation": 1,
            "network": {"in_sync": false, "passes": 3, "changes_applied": 0,
                        "last_error": "cannot create tunnel tg-rs1"},
            "totals": {"received_packets": 0, "forwarded_packets": 0,
                       "forwarded_bytes": 0, "dropped_packets": 0},
            "filters": {"published": 1, "workers": [1]},
            "io": {"path": "packet", "reason": "AF_PACKET (TPACKET) rings"}
        }))
        .unwrap();
        let stats = Stats {
            totals: status.totals.clone(),
            drops: BTreeMap::new(),
            vips: vec![],
            bindings: vec![],
            peers: vec![],
        };
        let text = render("http://x:1", &status, &stats);
        assert!(
            text.contains("network: NOT as configured: cannot create tunnel tg-rs1"),
            "{text}"
        );
        let problem = status.problem().expect("a problem");
        assert!(problem.contains("cannot create tunnel tg-rs1"), "{problem}");
        // Before the first pass nothing is known to be wrong: shown, not a problem.
        let network = status.network.as_mut().unwrap();
        network.passes = 0;
        network.last_error = None;
        assert!(render("http://x:1", &status, &stats).contains("network: no reconciling pass yet"));
        assert_eq!(status.problem(), None);
        status.ready = false;
        assert!(status.problem().unwrap().contains("NOT ready"));
        status.not_ready = Some("egress interface eth1 is down (no carrier)".into());
        assert_eq!(
            status.problem().unwrap(),
            "the appliance answers but is NOT ready: egress interface eth1 is down (no carrier)"
        );
        assert!(
            render("http://x:1", &status, &stats)
                .contains("NOT READY: egress interface eth1 is down (no carrier)")
        );
    }
}
