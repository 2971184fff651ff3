//! The seam between the control plane and the data path: [`Forwarding`] is every operation
//! the plane asks of the forwarding workers, and nothing else.
//!
//! The real data path ([`tungate_datapath::Datapath`]) implements it here, so the data-path
//! crate never learns about the control plane; the plane's unit tests implement it with a
//! fake that fails on demand. This module owns no state and decides nothing: the plane
//! decides when to apply, restart or stop.

use std::sync::Arc;

use tungate_config::Document;
use tungate_datapath::counters::Counters;
use tungate_datapath::filter::WorkerFilters;
use tungate_datapath::{Datapath, StartError};

/// The forwarding workers as the control plane drives them.
pub(crate) trait Forwarding: Send {
    /// Applies a new validated document with one filter set per worker of `doc`; returns
    /// whether the workers were restarted (a changed `[gateway]`, say).
    fn apply(&mut self, doc: &Document, filters: Vec<WorkerFilters>) -> Result<bool, StartError>;

    /// Restarts the workers on the document in force with new receive sockets and `filters`.
    fn restart(&mut self, filters: Vec<WorkerFilters>) -> Result<(), StartError>;

    /// Whether the workers run (false after a failed restart).
    fn is_running(&self) -> bool;

    /// `kernel` mode: whether a tunnel device the workers read was built again since they
    /// bound to it (they must be restarted to read the new one).
    fn tunnel_devices_replaced(&self) -> bool;

    /// Stops the workers and releases every socket and table.
    fn stop(self: Box<Self>) -> Result<(), StartError>;
}

/// Starts the real data path for a validated document, its filters published before the
/// first packet is read.
pub(crate) fn start_datapath(
    doc: &Document,
    counters: Arc<Counters>,
    filters: Vec<WorkerFilters>,
) -> Result<Box<dyn Forwarding>, StartError> {
    Ok(Box::new(Datapath::start_with_filters(
        doc,
        counters,
        Some(filters),
    )?))
}

impl Forwarding for Datapath {
    fn apply(&mut self, doc: &Document, filters: Vec<WorkerFilters>) -> Result<bool, StartError> {
        self.apply_with_filters(doc, Some(filters))
    }

    fn restart(&mut self, filters: Vec<WorkerFilters>) -> Result<(), StartError> {
        self.restart_with_filters(filters)
    }

    fn is_running(&self) -> bool {
        Datapath::is_running(self)
    }

    fn tunnel_devices_replaced(&self) -> bool {
        Datapath::tunnel_devices_replaced(self)
    }

    fn stop(self: Box<Self>) -> Result<(), StartError> {
        Datapath::stop(*self)
    }
}
