//! `/api/v1/status` and `/api/v1/stats`: what the gateway is and what it counted, read
//! from the view and the counters (never from the data path's threads).

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use serde::Serialize;

use super::AdminState;
use tungate_datapath::counters::Snapshot;
use tungate_netcfg::ReconcileStatus;
use tungate_plugin_host::BindingSnapshot;

/// Packet totals of the whole gateway.
#[derive(Debug, Serialize)]
pub struct Totals {
    /// Frames received.
    pub received_packets: u64,
    /// Packets forwarded to clients.
    pub forwarded_packets: u64,
    /// Bytes forwarded.
    pub forwarded_bytes: u64,
    /// Packets dropped (all reasons).
    pub dropped_packets: u64,
}

impl Totals {
    fn of(s: &Snapshot) -> Totals {
        Totals {
            received_packets: s.rx_packets,
            forwarded_packets: s.tx_packets,
            forwarded_bytes: s.tx_bytes,
            dropped_packets: s.drops.total(),
        }
    }
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize)]
pub struct Status {
    /// tungate's version.
    pub version: &'static str,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// `userspace` or `kernel`.
    pub decap_mode: &'static str,
    /// Data-path workers.
    pub workers: u32,
    /// The gateway address.
    pub gateway_address: String,
    /// The data path runs with the configuration in force.
    pub ready: bool,
    /// Configured peers.
    pub peers: usize,
    /// Distinct VIPs: `[[vips]]` entries and the VIPs peers serve.
    pub vips: usize,
    /// Configuration changes applied since start.
    pub config_generation: u64,
    /// Whether LD-OUT's networking is as configured (null when no reconciler runs).
    pub network: Option<Network>,
    /// Packet totals.
    pub totals: Totals,
    /// The plugin filter generation published and the one each worker runs.
    pub filters: Filters,
}

/// Which plugin filter generation is in force: a hot swap (a module, a chain or a binding's
/// configuration changed) is in force once every worker runs the published generation.
#[derive(Debug, Serialize)]
pub struct Filters {
    /// The newest generation published to the workers (it only grows).
    pub published: u64,
    /// The generation each worker runs, by worker index.
    pub workers: Vec<u64>,
}

/// The netcfg reconciler's view of LD-OUT's networking (tunnels, rules, sysctls).
#[derive(Debug, Clone, Serialize)]
pub struct Network {
    /// The last pass succeeded: everything is as the configuration wants it.
    pub in_sync: bool,
    /// Passes done (one on each change and every few seconds).
    pub passes: u64,
    /// Changes made since start (including what was built again after a hand deletion).
    pub changes_applied: u64,
    /// The last pass's error, when it failed.
    pub last_error: Option<String>,
}

impl From<&ReconcileStatus> for Network {
    fn from(s: &ReconcileStatus) -> Network {
        Network {
            in_sync: s.passes > 0 && s.last_error.is_none(),
            passes: s.passes,
            changes_applied: s.changes_applied,
            last_error: s.last_error.clone(),
        }
    }
}

/// `GET /api/v1/status`.
pub async fn status(State(state): State<AdminState>) -> Json<Status> {
    let view = state.view();
    let doc = &view.document;
    let counters = state.0.counters.snapshot();
    Json(Status {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.0.started.elapsed().as_secs_f64(),
        decap_mode: doc.gateway.decap.as_str(),
        workers: doc.gateway.workers,
        gateway_address: doc.gateway.address.to_string(),
        ready: view.ready,
        peers: doc.peers.len(),
        vips: doc
            .vips
            .iter()
            .map(|v| v.address)
            .chain(doc.peers.iter().flat_map(|p| p.vips.iter().copied()))
            .collect::<std::collections::HashSet<_>>()
            .len(),
        config_generation: view.generation,
        network: state.network(),
        totals: Totals::of(&counters),
        filters: Filters {
            published: view.filters.published(),
            workers: view.filters.taken(),
        },
    })
}

/// One VIP's counters.
#[derive(Debug, Serialize)]
pub struct VipStats {
    /// The VIP.
    pub address: String,
    /// The peer serving it now (null when none does).
    pub peer: Option<String>,
    /// Packets forwarded.
    pub forwarded_packets: u64,
    /// Bytes forwarded.
    pub forwarded_bytes: u64,
    /// Drops by reason (every reason).
    pub dropped: BTreeMap<&'static str, u64>,
}

/// A pass/drop pair.
#[derive(Debug, Serialize)]
pub struct PassDrop {
    /// Packets that went on.
    pub pass: u64,
    /// Packets dropped.
    pub drop: u64,
}

/// A plugin-defined counter.
#[derive(Debug, Serialize)]
pub struct PluginCounter {
    /// The name the plugin gave.
    pub name: String,
    /// The label the plugin gave (may be empty).
    pub label: String,
    /// The value, cumulative over the binding's life.
    pub value: u64,
}

/// One binding's statistics (cumulative per VIP, position and plugin).
#[derive(Debug, Serialize)]
pub struct BindingStats {
    /// The VIP.
    pub vip: String,
    /// Position in the chain.
    pub position: usize,
    /// The plugin name.
    pub plugin: String,
    /// The module's sha256.
    pub sha256: String,
    /// The failure policy.
    pub on_error: &'static str,
    /// Batch calls.
    pub calls: u64,
    /// The plugin's verdicts, in packets.
    pub verdicts: PassDrop,
    /// Failed calls by kind.
    pub errors: BTreeMap<&'static str, u64>,
    /// Packets decided by `on_error` after failed calls.
    pub error_packets: PassDrop,
    /// Packets decided by `on_error` while quarantined.
    pub quarantine_packets: PassDrop,
    /// Whether the binding is quarantined (on any worker).
    pub quarantined: bool,
    /// The latest failure's message.
    pub last_error: Option<String>,
    /// Plugin counters keyed `name` or `name{label}`.
    pub counters: BTreeMap<String, u64>,
    /// Plugin counters with their name and label apart.
    pub plugin_counters: Vec<PluginCounter>,
}

impl BindingStats {
    fn of(b: &BindingSnapshot) -> BindingStats {
        BindingStats {
            vip: b.key.vip.to_string(),
            position: b.key.position,
            plugin: b.key.plugin.clone(),
            sha256: b.sha256.clone(),
            on_error: b.on_error,
            calls: b.calls,
            verdicts: PassDrop {
                pass: b.passed,
                drop: b.dropped,
            },
            errors: BTreeMap::from([
                ("deadline", b.errors.deadline),
                ("memory_cap", b.errors.memory_cap),
                ("trap", b.errors.trap),
                ("bad_verdict", b.errors.bad_verdict),
            ]),
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
}

/// `GET /api/v1/stats`.
#[derive(Debug, Serialize)]
pub struct Stats {
    /// Packet totals.
    pub totals: Totals,
    /// Drops by reason over the whole gateway.
    pub drops: BTreeMap<&'static str, u64>,
    /// Per VIP (every VIP that was ever served since start).
    pub vips: Vec<VipStats>,
    /// Per binding in force.
    pub bindings: Vec<BindingStats>,
}

/// `GET /api/v1/stats`.
pub async fn stats(State(state): State<AdminState>) -> Json<Stats> {
    let view = state.view();
    let s = state.0.counters.snapshot();
    let serving = |vip| {
        view.document
            .peers
            .iter()
            .find(|p| p.vips.contains(&vip))
            .map(|p| p.name.clone())
    };
    let all = |d: &tungate_datapath::counters::DropCounts| {
        tungate_packet::DropReason::ALL
            .into_iter()
            .map(|r| (r.as_str(), d.get(r)))
            .collect::<BTreeMap<_, _>>()
    };
    Json(Stats {
        totals: Totals::of(&s),
        drops: all(&s.drops),
        vips: s
            .vips
            .iter()
            .map(|v| VipStats {
                address: v.vip.to_string(),
                peer: serving(v.vip),
                forwarded_packets: v.packets,
                forwarded_bytes: v.bytes,
                dropped: all(&v.drops),
            })
            .collect(),
        bindings: view
            .bindings
            .snapshot()
            .iter()
            .map(BindingStats::of)
            .collect(),
    })
}
