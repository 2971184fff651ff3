//! The JSON bodies of `GET /api/v1/status` and `GET /api/v1/stats`, one definition for
//! both ends: the admin server builds and serialises exactly these types, `tungate status`
//! and `tungate demo` deserialise them. Their shape is the API contract (`openapi.yaml`,
//! the web UI): field names, order, nesting and nulls must not change without it.
//!
//! Plain data only: this module never reads counters, documents or the network; the server
//! fills these types from its own state.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// `GET /api/v1/status`: what the gateway is and whether it forwards.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// tungate's version.
    pub version: String,
    /// Seconds since start.
    pub uptime_seconds: f64,
    /// `userspace` or `kernel`.
    pub decap_mode: String,
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
    #[serde(default)]
    pub network: Option<Network>,
    /// Packet totals.
    pub totals: Totals,
    /// The plugin filter generation published and the one each worker runs.
    pub filters: Filters,
    /// The I/O path the data path runs on, and why.
    pub io: Io,
}

/// The I/O path the data path receives and sends on (`gateway.io` and what the host allows).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Io {
    /// `xdp` (native XDP + AF_XDP sockets), `xdp-generic` (generic XDP + AF_XDP) or `packet`
    /// (AF_PACKET TPACKET rings).
    pub path: String,
    /// Why this path (asked for, or why XDP was not available).
    pub reason: String,
}

/// Which plugin filter generation is in force: a hot swap (a module, a chain or a binding's
/// configuration changed) is in force once every worker runs the published generation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filters {
    /// The newest generation published to the workers (it only grows).
    pub published: u64,
    /// The generation each worker runs, by worker index.
    pub workers: Vec<u64>,
}

impl Status {
    /// The problem that makes `tungate status` exit 3, if any: the data path does not run
    /// with the configuration in force, or the networking is not as configured.
    pub fn problem(&self) -> Option<String> {
        if !self.ready {
            return Some(
                "the appliance answers but is NOT ready (its data path does not run with the \
                 configuration in force; see its log)"
                    .into(),
            );
        }
        let error = self.network.as_ref()?.last_error.as_ref()?;
        Some(format!(
            "the appliance forwards, but its networking is NOT as configured: {error}"
        ))
    }
}

/// The netcfg reconciler's view of LD-OUT's networking (tunnels, rules, sysctls).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// Packet totals of the whole gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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

/// `GET /api/v1/stats`: what the gateway counted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Packet totals.
    pub totals: Totals,
    /// Drops by reason over the whole gateway.
    pub drops: BTreeMap<String, u64>,
    /// Per VIP (every VIP that was ever served since start).
    pub vips: Vec<VipStats>,
    /// Per binding in force.
    pub bindings: Vec<BindingStats>,
}

/// One VIP's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    pub dropped: BTreeMap<String, u64>,
}

/// A pass/drop pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PassDrop {
    /// Packets that went on.
    pub pass: u64,
    /// Packets dropped.
    pub drop: u64,
}

/// A plugin-defined counter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginCounter {
    /// The name the plugin gave.
    pub name: String,
    /// The label the plugin gave (may be empty).
    pub label: String,
    /// The value, cumulative over the binding's life.
    pub value: u64,
}

/// One binding's statistics (cumulative per VIP, position and plugin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BindingStats {
    /// The VIP.
    pub vip: String,
    /// Position in the chain.
    pub position: usize,
    /// The plugin name.
    pub plugin: String,
    /// The module's sha256.
    pub sha256: String,
    /// The failure policy: `pass` or `drop`.
    pub on_error: String,
    /// Batch calls.
    pub calls: u64,
    /// The plugin's verdicts, in packets.
    pub verdicts: PassDrop,
    /// Failed calls by kind.
    pub errors: BTreeMap<String, u64>,
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
