//! The control plane's seam to a fleet store (`tungate run --fleet NAME --etcd URL`): what
//! a fleet-wide state is, how it is cut from and merged into this host's document, and the
//! [`FleetStore`] trait through which the plane commits a change fleet-wide before it
//! applies it here. The store itself (etcd) lives in `tungate-fleet`; this module never
//! talks to the network.
//!
//! Fleet-wide: `gateway.address`, `gateway.decap`, the peers, the VIPs and their chains,
//! the plugin modules. Per host (kept from the local file or the stored document, never
//! taken from the fleet): `gateway.workers`, `gateway.worker_priority`,
//! `gateway.worker_cpus`, `gateway.io`, `gateway.ingress_interface`,
//! `gateway.egress_interface` (the admin listener is a flag).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::revision::Revision;
use crate::store::PluginRecord;
use tungate_config::{Document, Gateway, IoMode};

/// One plugin of the fleet state: its record and its module bytes.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetPlugin {
    /// Name, sha256, size, upload time and ABI information, as the uploader stored them.
    pub record: PluginRecord,
    /// The module (its sha256 is `record.sha256`).
    pub bytes: Arc<Vec<u8>>,
}

/// The fleet-wide state at one fleet revision.
#[derive(Debug, Clone, PartialEq)]
pub struct FleetState {
    /// The fleet revision (in etcd: the mod revision of the state's revision key); it is
    /// the `ETag` of every gateway that runs this state.
    pub revision: Revision,
    /// The fleet-wide document (its per-host fields are meaningless: see [`for_host`]).
    pub document: Document,
    /// The plugins, by name.
    pub plugins: BTreeMap<String, FleetPlugin>,
}

/// One change committed to the fleet store.
#[derive(Debug, Clone)]
pub enum FleetChange {
    /// Replace the fleet-wide document (already cut with [`fleet_part`]).
    Document(Document),
    /// Store or replace a plugin module.
    PutPlugin(FleetPlugin),
    /// Remove a plugin.
    DeletePlugin(String),
}

/// Why a fleet commit did not happen (nothing was changed anywhere).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FleetWriteError {
    /// The fleet state moved past the revision the change was made against.
    #[error("the fleet configuration changed since revision {expected}: nothing was changed")]
    Stale {
        /// The revision the change was made against.
        expected: Revision,
    },
    /// The fleet store cannot be reached.
    #[error("the fleet store (etcd) is unreachable: {0}")]
    Unreachable(String),
}

/// The fleet store as the control plane uses it: a blocking compare-and-swap on the fleet
/// revision. Called on the control thread only.
pub trait FleetStore: Send {
    /// Commits `change` if the fleet state is still at `expected`; returns the new fleet
    /// revision.
    fn commit(&self, expected: Revision, change: FleetChange) -> Result<Revision, FleetWriteError>;

    /// Writes the first fleet state into an empty fleet (once per fleet: if another
    /// gateway seeded it first, returns that state instead). Returns the fleet state now
    /// in the store and whether this call seeded it.
    fn seed(
        &self,
        document: Document,
        plugins: Vec<FleetPlugin>,
    ) -> Result<(FleetState, bool), FleetWriteError>;
}

/// What the plane was given of the fleet at start.
pub struct FleetStart {
    /// The fleet's name (`--fleet`).
    pub name: String,
    /// The store.
    pub store: Box<dyn FleetStore>,
    /// The fleet state read at start: `Ok(None)` for an empty fleet (seeded from
    /// `--config`), `Err` when the store cannot be reached (the state directory's cached
    /// revision is used).
    pub state: Result<Option<FleetState>, FleetWriteError>,
}

/// How this gateway follows its fleet (`/api/v1/status` `fleet`, `/metrics`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FleetStatus {
    /// The fleet's name.
    pub name: String,
    /// The fleet revision in force here.
    pub applied: Revision,
    /// The newest fleet revision seen (above `applied` when it could not be applied here).
    pub latest: Revision,
    /// Why `latest` is not in force here, if it is not.
    pub error: Option<String>,
}

/// The fleet-wide part of `doc`: its per-host fields set to their defaults.
pub fn fleet_part(doc: &Document) -> Document {
    let mut out = doc.clone();
    out.gateway = Gateway {
        address: doc.gateway.address,
        address6: doc.gateway.address6,
        decap: doc.gateway.decap,
        io: IoMode::Auto,
        workers: 1,
        worker_priority: None,
        worker_cpus: None,
        egress_interface: None,
        ingress_interface: None,
    };
    out
}

/// The document this host runs for the fleet-wide `fleet` document: its fleet-wide fields
/// with this host's per-host fields from `local`.
pub fn for_host(fleet: &Document, local: &Gateway) -> Document {
    let mut out = fleet.clone();
    out.gateway = Gateway {
        address: fleet.gateway.address,
        address6: fleet.gateway.address6,
        decap: fleet.gateway.decap,
        io: local.io,
        workers: local.workers,
        worker_priority: local.worker_priority,
        worker_cpus: local.worker_cpus.clone(),
        egress_interface: local.egress_interface.clone(),
        ingress_interface: local.ingress_interface.clone(),
    };
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fleet_gives_address_decap_peers_and_vips_and_the_host_keeps_its_own_fields() {
        let local = tungate_config::parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\nworkers = 2\nworker_cpus = [3, 1]\n\
             io = \"packet\"\ningress_interface = \"eth1\"\negress_interface = \"eth2\"",
        )
        .unwrap();
        let fleet = tungate_config::parse_toml(
            "[gateway]\naddress = \"10.9.9.9\"\ndecap = \"kernel\"\nworkers = 7\n\
             worker_cpus = [5]\ningress_interface = \"other\"\n[[peers]]\nname = \"rs1\"\naddress = \"10.0.1.2\"",
        )
        .unwrap();
        let cut = fleet_part(&fleet);
        assert_eq!(cut.gateway.workers, 1);
        assert_eq!(cut.gateway.ingress_interface, None);
        assert_eq!(cut.gateway.worker_cpus, None);
        let here = for_host(&cut, &local.gateway);
        assert_eq!(here.gateway.address, fleet.gateway.address);
        assert_eq!(here.gateway.decap, fleet.gateway.decap);
        assert_eq!(here.peers, fleet.peers);
        assert_eq!(here.gateway.workers, 2);
        assert_eq!(here.gateway.io, IoMode::Packet);
        assert_eq!(here.gateway.worker_cpus, Some(vec![3, 1]));
        assert_eq!(here.gateway.ingress_interface.as_deref(), Some("eth1"));
        assert_eq!(here.gateway.egress_interface.as_deref(), Some("eth2"));
        assert_eq!(for_host(&fleet_part(&here), &local.gateway), here);
    }
}
