//! `/api/v1/status` and `/api/v1/stats`: what the gateway is and what it counted, read
//! from the view and the counters (never from the data path's threads).
//!
//! The bodies are [`tungate_api::wire`]'s types, the ones every client deserialises; this
//! module only fills them from the server's state and never defines a response shape itself.

use std::collections::{BTreeMap, HashSet};

use axum::Json;
use axum::extract::State;

use super::AdminState;
use crate::error::ApiError;
use tungate_announce::Announcement;
use tungate_api::wire::{
    AdminListener, BindingStats, Filters, Fleet, FleetFollow, Io, Network, PassDrop, PeerStats,
    PluginCounter, PluginFault, Stats, Status, Totals, VipStats,
};
use tungate_control::{ErrorCode, View};
use tungate_datapath::counters::{DropCounts, Snapshot};
use tungate_netcfg::ReconcileStatus;
use tungate_plugin_host::BindingSnapshot;

/// The totals of a counters snapshot.
fn totals(s: &Snapshot) -> Totals {
    Totals {
        received_packets: s.rx_packets,
        forwarded_packets: s.tx_packets,
        forwarded_bytes: s.tx_bytes,
        dropped_packets: s.drops.total(),
    }
}

/// What the reconciler's progress says about LD-OUT's networking.
pub(crate) fn network(s: &ReconcileStatus) -> Network {
    Network {
        in_sync: s.passes > 0 && s.last_error.is_none(),
        passes: s.passes,
        changes_applied: s.changes_applied,
        last_error: s.last_error.clone(),
    }
}

/// The bindings that are quarantined or had `on_error` decide packets after failed calls.
fn plugin_faults(bindings: &[BindingSnapshot]) -> Vec<PluginFault> {
    bindings
        .iter()
        .filter(|b| {
            b.quarantined
                || b.error_dropped + b.skipped_dropped + b.error_passed + b.skipped_passed > 0
        })
        .map(|b| PluginFault {
            vip: b.key.vip.to_string(),
            position: b.key.position,
            plugin: b.key.plugin.clone(),
            on_error: b.on_error.to_owned(),
            quarantined: b.quarantined,
            dropped_packets: b.error_dropped + b.skipped_dropped,
            passed_packets: b.error_passed + b.skipped_passed,
            last_error: b.last_error.clone(),
        })
        .collect()
}

/// The status of a gateway with `view` in force, `counters` counted, up `uptime_seconds`,
/// served on `admin`.
fn status_of(
    view: &View,
    counters: &Snapshot,
    uptime_seconds: f64,
    network: Option<Network>,
    admin: Option<AdminListener>,
) -> Status {
    let doc = &view.document;
    Status {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        uptime_seconds,
        decap_mode: doc.gateway.decap.as_str().to_owned(),
        workers: doc.gateway.workers,
        gateway_address: doc.gateway.display_address().to_string(),
        gateway_address6: doc.gateway.address6.map(|a| a.to_string()),
        ready: view.ready,
        not_ready: view.not_ready.clone(),
        peers: doc.peers.len(),
        vips: doc
            .vips
            .iter()
            .map(|v| v.address)
            .chain(doc.peers.iter().flat_map(|p| p.vips.iter().copied()))
            .collect::<HashSet<_>>()
            .len(),
        config_generation: view.generation,
        network,
        totals: totals(counters),
        filters: Filters {
            published: view.filters.published(),
            workers: view.filters.taken(),
        },
        revision: view.revision.number(),
        plugin_faults: plugin_faults(&view.bindings.snapshot()),
        admin,
        io: Io {
            path: view.io.path.to_owned(),
            reason: view.io.reason.clone(),
        },
        fleet: None,
    }
}

/// How this gateway takes part in fleet `name` (`--fleet`; `None` without it): its
/// `announcement` of GIP beside the fleet revisions of `view` (`--etcd`).
fn fleet_follow(
    view: &View,
    name: Option<&str>,
    announcement: Option<Announcement>,
) -> Option<FleetFollow> {
    let name = name.or(view.fleet.as_ref().map(|f| f.name.as_str()))?;
    let etcd = view.fleet.as_ref();
    Some(FleetFollow {
        name: name.to_owned(),
        announcement: announcement
            .unwrap_or(Announcement::Withdrawn)
            .as_str()
            .to_owned(),
        etcd: etcd.is_some(),
        applied_revision: etcd.map(|f| f.applied.number()),
        latest_revision: etcd.map(|f| f.latest.number()),
        error: etcd.and_then(|f| f.error.clone()),
    })
}

/// `GET /api/v1/fleet`: the fleet's gateways as last read from etcd (404 without
/// `--fleet`).
pub(crate) async fn fleet(State(state): State<AdminState>) -> Result<Json<Fleet>, ApiError> {
    match &state.0.fleet {
        Some(fleet) => Ok(Json(fleet.borrow().clone())),
        None => Err(ApiError::new(
            ErrorCode::NotFound,
            "this gateway lists no fleet: it is not in a fleet, or its fleet has no store \
             (start it with --fleet NAME --etcd URL)",
        )),
    }
}

/// `GET /api/v1/status`.
pub(crate) async fn status(State(state): State<AdminState>) -> Json<Status> {
    let view = state.view();
    let mut status = status_of(
        &view,
        &state.0.counters.snapshot(),
        state.0.started.elapsed().as_secs_f64(),
        state.network(),
        Some(state.admin_listener()),
    );
    status.fleet = fleet_follow(
        &view,
        state.0.fleet_name.as_deref(),
        state.0.announce.as_ref().map(|a| a.announcement()),
    );
    Json(status)
}

/// Drops by every reason, keyed by the reason's name.
fn by_reason(d: &DropCounts) -> BTreeMap<String, u64> {
    tungate_packet::DropReason::ALL
        .into_iter()
        .map(|r| (r.as_str().to_owned(), d.get(r)))
        .collect()
}

/// One binding's statistics as the API shows them.
fn binding_stats(b: &BindingSnapshot) -> BindingStats {
    BindingStats {
        vip: b.key.vip.to_string(),
        position: b.key.position,
        plugin: b.key.plugin.clone(),
        sha256: b.sha256.clone(),
        on_error: b.on_error.to_owned(),
        calls: b.calls,
        verdicts: PassDrop {
            pass: b.passed,
            drop: b.dropped,
        },
        errors: [
            ("deadline", b.errors.deadline),
            ("memory_cap", b.errors.memory_cap),
            ("trap", b.errors.trap),
            ("bad_verdict", b.errors.bad_verdict),
        ]
        .into_iter()
        .map(|(kind, n)| (kind.to_owned(), n))
        .collect(),
        error_packets: PassDrop {
            pass: b.error_passed,
            drop: b.error_dropped,
        },
        quarantine_packets: PassDrop {
            pass: b.skipped_passed,
            drop: b.skipped_dropped,
        },
        quarantined: b.quarantined,
        last_error: b.last_error.clone(),
        counters: b
            .counters
            .iter()
            .map(|c| {
                let key = if c.label.is_empty() {
                    c.name.clone()
                } else {
                    format!("{}{{{}}}", c.name, c.label)
                };
                (key, c.value)
            })
            .collect(),
        plugin_counters: b
            .counters
            .iter()
            .map(|c| PluginCounter {
                name: c.name.clone(),
                label: c.label.clone(),
                value: c.value,
            })
            .collect(),
    }
}

/// Milliseconds since the Unix epoch.
pub(crate) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The configured peers of `view` with what `s` counted for them, at `now_ms` (ms since the
/// Unix epoch) in a process started at `started_ms`: a peer never heard from is silent
/// since the start. The one place that decides whether a peer is silent (the API, the
/// metrics and so `tungate status` and the UI read it from here).
pub(crate) fn peer_stats(
    view: &View,
    s: &Snapshot,
    now_ms: u64,
    started_ms: u64,
) -> Vec<PeerStats> {
    view.document
        .peers
        .iter()
        .map(|p| {
            let counted = s.peer(&p.name).filter(|c| c.address == p.address);
            let last_heard = counted.and_then(|c| c.last_heard_ms);
            let since = now_ms.saturating_sub(last_heard.unwrap_or(started_ms));
            let silent_after = p.silent_after();
            PeerStats {
                name: p.name.clone(),
                address: p.address.to_string(),
                tunnel: p.tunnel.as_str().into(),
                port: p.udp_port(),
                key: p.key,
                received_packets: counted.map_or(0, |c| c.packets),
                received_bytes: counted.map_or(0, |c| c.bytes),
                dropped: by_reason(&counted.map(|c| c.drops).unwrap_or_default()),
                last_heard_unix: last_heard.map(|ms| ms as f64 / 1000.0),
                silent_seconds: since as f64 / 1000.0,
                silent_after_seconds: silent_after.as_secs_f64(),
                silent: u128::from(since) > silent_after.as_millis(),
            }
        })
        .collect()
}

/// The statistics of a gateway with `view` in force and `s` counted; `bindings` are the
/// bindings' statistics, `peers` the peers' (see [`peer_stats`]).
fn stats_of(
    view: &View,
    s: &Snapshot,
    bindings: &[BindingSnapshot],
    peers: Vec<PeerStats>,
) -> Stats {
    let serving = |vip| {
        view.document
            .peers
            .iter()
            .find(|p| p.vips.contains(&vip))
            .map(|p| p.name.clone())
    };
    Stats {
        totals: totals(s),
        drops: by_reason(&s.drops),
        vips: s
            .vips
            .iter()
            .map(|v| VipStats {
                address: v.vip.to_string(),
                peer: serving(v.vip),
                forwarded_packets: v.packets,
                forwarded_bytes: v.bytes,
                dropped: by_reason(&v.drops),
            })
            .collect(),
        bindings: bindings.iter().map(binding_stats).collect(),
        peers,
    }
}

/// `GET /api/v1/stats`.
pub(crate) async fn stats(State(state): State<AdminState>) -> Json<Stats> {
    let view = state.view();
    let counters = state.0.counters.snapshot();
    let peers = peer_stats(&view, &counters, unix_ms_now(), state.started_unix_ms());
    Json(stats_of(&view, &counters, &view.bindings.snapshot(), peers))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::sync::Arc;

    use super::*;
    use crate::telemetry::tests::binding;
    use tungate_datapath::counters::Counters;

    fn view() -> View {
        let document = tungate_config::parse_toml(
            r#"
            [gateway]
            address = "10.0.0.1"
            workers = 2
            [[peers]]
            name = "rs1"
            address = "10.0.1.2"
            vips = ["192.0.2.10", "192.0.2.11"]
            [[vips]]
            address = "192.0.2.10"
            [[vips.plugins]]
            plugin = "cidr-filter"
            "#,
        )
        .unwrap();
        View {
            document: Arc::new(document),
            plugins: Arc::default(),
            bindings: Arc::default(),
            generation: 3,
            revision: tungate_control::Revision::new(7),
            ready: true,
            not_ready: None,
            filters: tungate_datapath::filter::FilterSlots::new(2).progress(),
            io: tungate_control::IoPath {
                path: "xdp",
                reason: "native XDP attached to eth1".into(),
            },
            fleet: None,
        }
    }

    /// The property names of the contract's schema `name`.
    fn schema_properties(name: &str) -> BTreeSet<String> {
        let doc: serde_json::Value = serde_yaml_ng::from_str(crate::OPENAPI_YAML).unwrap();
        doc["components"]["schemas"][name]["properties"]
            .as_object()
            .unwrap_or_else(|| panic!("openapi.yaml has no schema {name}"))
            .keys()
            .cloned()
            .collect()
    }

    fn keys(value: &serde_json::Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    #[test]
    fn the_server_status_reads_back_as_the_client_type_and_has_the_contract_fields() {
        let counters = Counters::new(2).snapshot();
        let net = network(&ReconcileStatus {
            passes: 2,
            changes_applied: 1,
            last_error: Some("cannot create tunnel tg-rs1".into()),
            links_down: Vec::new(),
        });
        for network in [None, Some(net)] {
            let admin = AdminListener {
                address: "127.0.0.1:9080".into(),
                tls: false,
                loopback: true,
            };
            let served = status_of(&view(), &counters, 61.5, network, Some(admin));
            let json = serde_json::to_string(&served).unwrap();
            let read: Status = serde_json::from_str(&json).unwrap();
            assert_eq!(read, served, "{json}");
            let value: serde_json::Value = serde_json::from_str(&json).unwrap();
            assert_eq!(keys(&value), schema_properties("Status"), "{json}");
            assert_eq!(value["vips"], 2, "distinct VIPs: {json}");
            assert_eq!(value["decap_mode"], "userspace");
            assert_eq!(value["revision"], 7);
            assert_eq!(value["plugin_faults"], serde_json::json!([]));
            assert_eq!(value["io"]["path"], "xdp", "{json}");
            assert_eq!(
                value["io"]["reason"], "native XDP attached to eth1",
                "{json}"
            );
        }
        let offline = status_of(&view(), &counters, 1.0, None, None);
        assert!(
            serde_json::to_string(&offline)
                .unwrap()
                .contains("\"network\":null"),
            "no reconciler: network is null, not absent"
        );
    }

    #[test]
    fn the_fleet_object_shows_the_announcement_beside_the_etcd_revisions() {
        assert_eq!(fleet_follow(&view(), None, None), None, "no --fleet: null");
        // --fleet without --etcd: the routing side only.
        let bgp = fleet_follow(&view(), Some("f1"), Some(Announcement::Announced)).unwrap();
        assert_eq!(bgp.announcement, "announced");
        assert!(!bgp.etcd);
        assert_eq!((bgp.applied_revision, bgp.latest_revision), (None, None));
        assert!(
            bgp.describe().contains("GIP announced"),
            "{}",
            bgp.describe()
        );
        // With --etcd, behind the latest revision, draining.
        let mut behind = view();
        behind.fleet = Some(tungate_control::fleet::FleetStatus {
            name: "f1".into(),
            applied: tungate_control::Revision::new(5),
            latest: tungate_control::Revision::new(9),
            error: Some("fleet revision 9 is not applied here: too many".into()),
        });
        let both = fleet_follow(&behind, Some("f1"), Some(Announcement::Draining)).unwrap();
        assert_eq!(both.announcement, "draining");
        assert!(both.etcd);
        assert_eq!(
            (both.applied_revision, both.latest_revision),
            (Some(5), Some(9))
        );
        let line = both.describe();
        assert!(
            line.contains("GIP draining") && line.contains("9 is the latest (BEHIND)"),
            "{line}"
        );
        // Its fields are the contract's (Status.fleet in openapi.yaml).
        let value = serde_json::to_value(&both).unwrap();
        let doc: serde_json::Value = serde_yaml_ng::from_str(crate::OPENAPI_YAML).unwrap();
        let contract: BTreeSet<String> =
            doc["components"]["schemas"]["Status"]["properties"]["fleet"]["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
        assert_eq!(keys(&value), contract);
        let registered = tungate_api::wire::FleetGateway {
            member: "gw1".into(),
            address: "127.0.0.1:9080".into(),
            version: "0.1.0".into(),
            applied_revision: 5,
            error: None,
            ready: true,
            not_ready: None,
            io: "packet".into(),
            quarantined: Vec::new(),
            announcement: Some("announced".into()),
            latest: true,
        };
        assert_eq!(
            keys(&serde_json::to_value(registered).unwrap()),
            schema_properties("FleetGateway")
        );
    }

    #[test]
    fn quarantined_and_failing_bindings_are_plugin_faults_and_a_quarantine_is_a_problem() {
        let mut quarantined = binding();
        quarantined.quarantined = true;
        quarantined.on_error = "drop";
        quarantined.skipped_dropped = 40;
        let faults = plugin_faults(&[quarantined.clone()]);
        assert_eq!(faults.len(), 1);
        assert!(faults[0].quarantined);
        assert_eq!(faults[0].dropped_packets, 40 + quarantined.error_dropped);
        let mut status = status_of(&view(), &Counters::new(2).snapshot(), 1.0, None, None);
        status.plugin_faults = faults;
        let problem = status.problem().expect("a quarantine is a problem");
        assert!(
            problem.contains("fails closed: every packet of the VIP is dropped"),
            "{problem}"
        );

        let mut healthy = binding();
        healthy.quarantined = false;
        (healthy.error_passed, healthy.error_dropped) = (0, 0);
        (healthy.skipped_passed, healthy.skipped_dropped) = (0, 0);
        assert!(plugin_faults(&[healthy]).is_empty());
    }

    #[test]
    fn the_server_stats_read_back_as_the_client_type() {
        let counters = Counters::new(2).snapshot();
        let peers = peer_stats(&view(), &counters, 60_000, 10_000);
        let served = stats_of(&view(), &counters, &[binding()], peers);
        let json = serde_json::to_string(&served).unwrap();
        let read: Stats = serde_json::from_str(&json).unwrap();
        assert_eq!(read, served, "{json}");
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(keys(&value), schema_properties("Stats"), "{json}");
        let b = &value["bindings"][0];
        assert_eq!(b["counters"]["dropped{denied}"], 2, "{json}");
        assert_eq!(b["errors"]["trap"], 1, "{json}");
        assert_eq!(b["error_packets"]["pass"], 5, "{json}");
        let p = &value["peers"][0];
        assert_eq!(keys(p), schema_properties("PeerStats"), "{json}");
        assert_eq!(p["name"], "rs1");
        assert_eq!(p["last_heard_unix"], serde_json::Value::Null);
        assert_eq!(
            (p["silent_seconds"].as_f64(), p["silent"].as_bool()),
            (Some(50.0), Some(true))
        );
        assert_eq!(
            value["drops"].as_object().unwrap().len(),
            tungate_packet::DropReason::ALL.len(),
            "every drop reason is listed: {json}"
        );
    }
}
