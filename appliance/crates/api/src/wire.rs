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
    /// The address the gateway is shown by: its IPv4 GIP (`gateway.address`), or its IPv6
    /// GIP when it has no IPv4 one.
    pub gateway_address: String,
    /// The gateway's IPv6 GIP (`gateway.address6`); null when it has none (or from a
    /// tungate that does not say).
    #[serde(default)]
    pub gateway_address6: Option<String>,
    /// Ready (`/readyz`): the data path runs with the configuration in force and the
    /// ingress and egress interfaces can carry packets.
    pub ready: bool,
    /// Why it is not ready, e.g. `egress interface eth1 is down (no carrier)` (null when
    /// ready, or from a tungate that does not say).
    #[serde(default)]
    pub not_ready: Option<String>,
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
    /// The configuration state's revision: the `ETag` of the configuration's resources,
    /// raised by every change and kept across restarts.
    #[serde(default)]
    pub revision: u64,
    /// Plugin bindings in trouble: quarantined, or dropping packets because their calls
    /// fail (`on_error = "drop"`).
    #[serde(default)]
    pub plugin_faults: Vec<PluginFault>,
    /// The admin listener (null from a tungate that does not say).
    #[serde(default)]
    pub admin: Option<AdminListener>,
    /// The I/O path the data path runs on, and why.
    pub io: Io,
    /// How this gateway follows its fleet (null without `--fleet`).
    #[serde(default)]
    pub fleet: Option<FleetFollow>,
}

/// How a gateway takes part in its fleet (`/api/v1/status` `fleet`): the routing side
/// (`--fleet`: GIP announced, withdrawn or draining) beside the configuration side
/// (`--etcd`: the fleet revision applied here and the latest one seen).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetFollow {
    /// The fleet's name (`--fleet`).
    pub name: String,
    /// This gateway's announcement of GIP: `announced` (the health link is up, the routing
    /// daemon announces GIP), `withdrawn` (not ready, or stopping) or `draining` (a drain
    /// withdrew it for good; the gateway stops once the traffic has moved).
    pub announcement: String,
    /// Whether the fleet's configuration comes from etcd (`--etcd`); without it the
    /// revisions are null.
    #[serde(default)]
    pub etcd: bool,
    /// The fleet revision in force here (the `ETag` of the configuration's resources).
    #[serde(default)]
    pub applied_revision: Option<u64>,
    /// The newest fleet revision this gateway has seen.
    #[serde(default)]
    pub latest_revision: Option<u64>,
    /// Why the newest revision is not in force here (it failed this host's checks, or
    /// etcd is unreachable), if it is not.
    #[serde(default)]
    pub error: Option<String>,
}

impl FleetFollow {
    /// One line for `tungate status`: the announcement, then the revision in force and
    /// whether it is the latest (with `--etcd`).
    pub fn describe(&self) -> String {
        let mut out = format!("fleet {}: GIP {}", self.name, self.announcement);
        match (self.etcd, self.applied_revision, self.latest_revision) {
            (true, Some(applied), Some(latest)) if applied >= latest => {
                out.push_str(&format!(" · fleet revision {applied} (latest)"));
            }
            (true, Some(applied), Some(latest)) => out.push_str(&format!(
                " · fleet revision {applied} in force, {latest} is the latest (BEHIND)"
            )),
            (true, _, _) => out.push_str(" · fleet revision unknown"),
            (false, _, _) => out.push_str(" · configuration from the local file (no --etcd)"),
        }
        if let Some(error) = &self.error {
            out.push_str(&format!(" · {error}"));
        }
        out
    }
}

/// One gateway of a fleet as it registers itself in etcd, under a lease (a dead gateway's
/// entry disappears when its lease expires).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FleetGateway {
    /// The gateway's member name (`--fleet-member`, default the host name).
    pub member: String,
    /// Its admin listener.
    pub address: String,
    /// Its tungate version.
    pub version: String,
    /// The fleet revision in force on it.
    pub applied_revision: u64,
    /// Why the newest fleet revision is not in force on it, if it is not.
    #[serde(default)]
    pub error: Option<String>,
    /// Whether its data path runs (a quarantined plugin does not make it not ready).
    pub ready: bool,
    /// Why it is not ready (as `/api/v1/status` `not_ready`, e.g. `egress interface eth1
    /// is down (no carrier)`); null when ready or from a gateway that does not say.
    #[serde(default)]
    pub not_ready: Option<String>,
    /// Its I/O path (`xdp`, `xdp-generic`, `packet`).
    pub io: String,
    /// Plugins quarantined on it, as `VIP#position plugin` (they do not make it not
    /// ready).
    #[serde(default)]
    pub quarantined: Vec<String>,
    /// Its announcement of GIP: `announced`, `withdrawn` or `draining` (as in
    /// `/api/v1/status` `fleet.announcement`; null from a gateway that does not say).
    #[serde(default)]
    pub announcement: Option<String>,
    /// Whether it runs the fleet's latest revision (computed when listed, not stored).
    #[serde(default)]
    pub latest: bool,
}

/// `GET /api/v1/fleet`: the fleet as this gateway sees it in etcd.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fleet {
    /// The fleet's name.
    pub name: String,
    /// This gateway's member name.
    pub member: String,
    /// Whether etcd answered this gateway's last request.
    pub reachable: bool,
    /// The fleet's latest revision in etcd (as last read).
    pub latest_revision: u64,
    /// The registered gateways, by member name (as last read).
    pub gateways: Vec<FleetGateway>,
    /// The last error talking to etcd, if the last request failed.
    #[serde(default)]
    pub error: Option<String>,
}

/// A plugin binding that is quarantined or has dropped packets because its calls failed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginFault {
    /// The VIP.
    pub vip: String,
    /// Position in the chain.
    pub position: usize,
    /// The plugin name.
    pub plugin: String,
    /// The failure policy: `pass` (fail open) or `drop` (fail closed).
    pub on_error: String,
    /// Quarantined: the plugin is no longer called; `on_error` decides every packet of the
    /// VIP (all dropped when `drop`, all passed unfiltered when `pass`).
    pub quarantined: bool,
    /// Packets dropped by `on_error` after failed calls or while quarantined.
    pub dropped_packets: u64,
    /// Packets passed unfiltered by `on_error` after failed calls or while quarantined.
    pub passed_packets: u64,
    /// The latest failure's message.
    pub last_error: Option<String>,
}

impl PluginFault {
    /// One line for a person.
    pub fn describe(&self) -> String {
        let what = match (self.quarantined, self.on_error.as_str()) {
            (true, "drop") => "is QUARANTINED and fails closed: every packet of the VIP is dropped",
            (true, _) => "is QUARANTINED and fails open: the VIP's packets pass unfiltered",
            (false, _) => "has failed calls",
        };
        let mut line = format!(
            "plugin {:?} at {}#{} {what} ({} dropped, {} passed by on_error = {:?})",
            self.plugin,
            self.vip,
            self.position,
            self.dropped_packets,
            self.passed_packets,
            self.on_error
        );
        if let Some(e) = &self.last_error {
            line.push_str(&format!("; last error: {e}"));
        }
        line
    }
}

/// The admin listener as the server knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdminListener {
    /// The address it listens on.
    pub address: String,
    /// Whether it serves HTTPS.
    pub tls: bool,
    /// Whether it is on loopback (reads from an allowed Host need no token then).
    pub loopback: bool,
}

impl AdminListener {
    /// The warning a listener deserves: not on loopback and without TLS, the bearer token
    /// crosses the network in clear.
    pub fn warning(&self) -> Option<String> {
        (!self.loopback && !self.tls).then(|| {
            format!(
                "the admin API listens on {} WITHOUT TLS: the bearer token crosses the network \
                 in clear; give --admin-tls-cert and --admin-tls-key",
                self.address
            )
        })
    }
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
    /// The gateway's GIPs as shown: the IPv4 one, then the IPv6 one, those it has (a
    /// gateway with only an IPv6 GIP reports it in both fields; it is listed once).
    pub fn gateway_addresses(&self) -> Vec<&str> {
        let mut all = vec![self.gateway_address.as_str()];
        if let Some(v6) = self.gateway_address6.as_deref()
            && v6 != self.gateway_address
        {
            all.push(v6);
        }
        all
    }

    /// The problem that makes `tungate status` exit 3, if any: the data path does not run
    /// with the configuration in force, or the networking is not as configured.
    pub fn problem(&self) -> Option<String> {
        if !self.ready {
            return Some(match &self.not_ready {
                Some(why) => format!("the appliance answers but is NOT ready: {why}"),
                None => "the appliance answers but is NOT ready (its data path does not run \
                         with the configuration in force; see its log)"
                    .into(),
            });
        }
        if let Some(error) = self.network.as_ref().and_then(|n| n.last_error.as_ref()) {
            return Some(format!(
                "the appliance forwards, but its networking is NOT as configured: {error}"
            ));
        }
        let quarantined: Vec<String> = self
            .plugin_faults
            .iter()
            .filter(|f| f.quarantined)
            .map(PluginFault::describe)
            .collect();
        (!quarantined.is_empty()).then(|| {
            format!(
                "the appliance forwards, but {} plugin binding{} {} quarantined: {}",
                quarantined.len(),
                if quarantined.len() == 1 { "" } else { "s" },
                if quarantined.len() == 1 { "is" } else { "are" },
                quarantined.join("; ")
            )
        })
    }

    /// What deserves attention without making `tungate status` fail: an admin listener
    /// without TLS off loopback, and bindings that dropped packets after failed calls but
    /// are not quarantined (their counters are cumulative, so a past fault stays visible).
    pub fn warnings(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .admin
            .iter()
            .filter_map(AdminListener::warning)
            .collect();
        out.extend(
            self.plugin_faults
                .iter()
                .filter(|f| !f.quarantined)
                .map(PluginFault::describe),
        );
        out.extend(
            self.fleet
                .iter()
                .filter_map(|f| f.error.as_ref().map(|e| format!("fleet {}: {e}", f.name))),
        );
        out
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Packet totals.
    pub totals: Totals,
    /// Drops by reason over the whole gateway.
    pub drops: BTreeMap<String, u64>,
    /// Per VIP served now (a VIP removed from the configuration leaves this list; added
    /// again, its counters start from zero).
    pub vips: Vec<VipStats>,
    /// Per binding in force.
    pub bindings: Vec<BindingStats>,
    /// Per configured peer, in the configuration's order.
    #[serde(default)]
    pub peers: Vec<PeerStats>,
}

/// One peer's counters: is its tunnel alive?
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerStats {
    /// The peer's name.
    pub name: String,
    /// Its address (RIP).
    pub address: String,
    /// Its return tunnel's type: `ipip`, `gue`, `fou` or `gre` (`ipip` from a tungate that
    /// does not say).
    #[serde(default = "ipip")]
    pub tunnel: String,
    /// The UDP destination port of a `gue` or `fou` tunnel (`gue`'s default filled in);
    /// null for the others.
    #[serde(default)]
    pub port: Option<u16>,
    /// The GRE key its packets must carry (`gre` only); null when none is configured.
    #[serde(default)]
    pub key: Option<u32>,
    /// Packets received from it (its outer source, or its tunnel device, named it).
    pub received_packets: u64,
    /// Bytes received from it.
    pub received_bytes: u64,
    /// Drops of its packets by reason (every reason).
    pub dropped: BTreeMap<String, u64>,
    /// When it was last heard from, in seconds since the Unix epoch (null: never since
    /// start).
    pub last_heard_unix: Option<f64>,
    /// Seconds since it was last heard from (since start when never).
    pub silent_seconds: f64,
    /// Its `silent_after` in seconds.
    pub silent_after_seconds: f64,
    /// Silent longer than `silent_after`: shown as a warning.
    pub silent: bool,
}

fn ipip() -> String {
    "ipip".into()
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

/// `POST /api/v1/drain`: what the drain of a fleet gateway did (it stops right after).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drain {
    /// Milliseconds from the request until the health link was down (the routing daemon
    /// withdraws GIP on that event).
    pub withdrawn_after_ms: u64,
    /// Milliseconds from the withdrawal until the drain ended.
    pub drained_after_ms: u64,
    /// Packets that still arrived after the withdrawal (all forwarded).
    pub packets_after_withdrawal: u64,
    /// True when no packet arrived for the quiet period (the router moved the traffic);
    /// false when the drain's time limit ended it.
    pub quiet: bool,
}

/// `GET /api/v1/fleet/totals`: the fleet's totals per VIP, summed over its gateways by the
/// Prometheus recording rules of `deploy/fleet/tungate-fleet.rules.yml` and read from the
/// Prometheus given by `tungate run --prometheus`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetTotals {
    /// The fleet (`--fleet NAME`; the `fleet` label of the scrape targets).
    pub fleet: String,
    /// The Prometheus asked (`--prometheus URL`).
    pub prometheus: String,
    /// Gateways of the fleet that answered Prometheus' last scrape (`fleet:up:sum`); none
    /// when Prometheus has no such series (no target carries the fleet's label).
    pub gateways_up: Option<u64>,
    /// Per VIP, ordered by address; empty when the rules have recorded nothing yet.
    pub vips: Vec<FleetVipTotals>,
}

/// One VIP's totals over the fleet: the sums of the gateways' counters as last scraped (a
/// gateway that restarted counts from 0 again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetVipTotals {
    /// The VIP.
    pub vip: String,
    /// Packets forwarded (`fleet_vip:tungate_vip_forwarded_packets_total:sum`).
    pub forwarded_packets: u64,
    /// Bytes forwarded (`fleet_vip:tungate_vip_forwarded_bytes_total:sum`).
    pub forwarded_bytes: u64,
    /// Packets dropped, every reason (`fleet_vip:tungate_vip_dropped_packets_total:sum`).
    pub dropped_packets: u64,
}
