//! The seam between the control plane and the data path: [`Forwarding`] is every operation
//! the plane asks of the forwarding workers, and nothing else.
//!
//! The real implementation, [`Workers`], is the data path ([`tungate_datapath::Datapath`])
//! together with the tunnel fence that `userspace` decap needs beside it (netcfg's
//! [`TunnelFence`]): the fence is raised on the interface the workers read whenever they
//! run in `userspace` mode, lowered before the decap mode becomes `kernel` (also at a start
//! in `kernel` mode, where a fence left by an earlier run would blackhole the kernel's
//! tunnels), and otherwise left as it is: a stop or a failed restart keeps it, so the kernel
//! never answers the real servers with ICMP while tungate is away (`tungate net down`
//! lowers it). It lives here, so the data-path crate never learns about the control plane
//! or the kernel's configuration; the plane's unit tests implement the trait with a fake
//! that fails on demand. This module owns no policy: the plane decides when to apply,
//! restart or stop.

use std::sync::Arc;

use tungate_config::{DecapMode, Document};
use tungate_datapath::counters::Counters;
use tungate_datapath::filter::{FilterProgress, WorkerFilters};
use tungate_datapath::{Datapath, StartError};
use tungate_netcfg::{NetError, TunnelFence};

/// Why the forwarding workers could not (re)start or stop.
#[derive(Debug, thiserror::Error)]
pub enum ForwardingError {
    /// The data path's workers, sockets or resolver.
    #[error("{0}")]
    Datapath(#[from] StartError),
    /// The `userspace` mode's tunnel fence.
    #[error("{0}")]
    DropTable(#[from] NetError),
}

/// The forwarding workers as the control plane drives them.
pub(crate) trait Forwarding: Send {
    /// Applies a new validated document with one filter set per worker of `doc`; returns
    /// whether the workers were restarted (a changed `[gateway]`, say).
    fn apply(
        &mut self,
        doc: &Document,
        filters: Vec<WorkerFilters>,
    ) -> Result<bool, ForwardingError>;

    /// Restarts the workers on the document in force with new receive sockets and `filters`.
    fn restart(&mut self, filters: Vec<WorkerFilters>) -> Result<(), ForwardingError>;

    /// Whether the workers run (false after a failed restart).
    fn is_running(&self) -> bool;

    /// `kernel` mode: whether a tunnel device the workers read was built again since they
    /// bound to it (they must be restarted to read the new one).
    fn tunnel_devices_replaced(&self) -> bool;

    /// Which filter generation is published and which one each worker runs.
    fn filter_progress(&self) -> Arc<FilterProgress>;

    /// Stops the workers and releases every socket (the tunnel fence stays).
    fn stop(self: Box<Self>) -> Result<(), ForwardingError>;
}

/// The real forwarding workers: the data path and the tunnel fence of `userspace` mode.
pub(crate) struct Workers {
    datapath: Datapath,
    fence: TunnelFence,
}

impl Workers {
    /// Starts the real data path for a validated document, its filters published before
    /// the first packet is read; raises the fence once it runs in `userspace` mode, or
    /// lowers a leftover one before it starts in `kernel` mode.
    pub(crate) fn start(
        doc: &Document,
        counters: Arc<Counters>,
        filters: Vec<WorkerFilters>,
    ) -> Result<Box<dyn Forwarding>, ForwardingError> {
        let mut fence = TunnelFence::new();
        lower_for_kernel(&mut fence, doc)?;
        let datapath = Datapath::start_with_filters(doc, counters, Some(filters))?;
        let mut workers = Workers { datapath, fence };
        workers.raise_fence()?;
        Ok(Box::new(workers))
    }

    /// Raises (or moves) the fence to the interface the workers read while they run in
    /// `userspace` mode; otherwise leaves it as it is.
    fn raise_fence(&mut self) -> Result<(), NetError> {
        match self.datapath.userspace_ingress() {
            Some((_, ingress)) => self.fence.raise(ingress, &[]),
            None => Ok(()),
        }
    }

    /// The fence follows also after a failed (re)start; the data path's error wins over
    /// the fence's.
    fn followed<T>(&mut self, result: Result<T, StartError>) -> Result<T, ForwardingError> {
        let raised = self.raise_fence();
        let value = result?;
        raised?;
        Ok(value)
    }
}

/// Lowers the fence when `doc` wants `kernel` decap: before its workers start, so no tunnel
/// packet of the kernel's is dropped by a fence of `userspace` mode.
fn lower_for_kernel(fence: &mut TunnelFence, doc: &Document) -> Result<(), NetError> {
    if doc.gateway.decap == DecapMode::Kernel {
        fence.lower()?;
    }
    Ok(())
}

impl Forwarding for Workers {
    fn apply(
        &mut self,
        doc: &Document,
        filters: Vec<WorkerFilters>,
    ) -> Result<bool, ForwardingError> {
        lower_for_kernel(&mut self.fence, doc)?;
        let applied = self.datapath.apply_with_filters(doc, Some(filters));
        self.followed(applied)
    }

    fn restart(&mut self, filters: Vec<WorkerFilters>) -> Result<(), ForwardingError> {
        let restarted = self.datapath.restart_with_filters(filters);
        self.followed(restarted)
    }

    fn is_running(&self) -> bool {
        self.datapath.is_running()
    }

    fn tunnel_devices_replaced(&self) -> bool {
        self.datapath.tunnel_devices_replaced()
    }

    fn filter_progress(&self) -> Arc<FilterProgress> {
        self.datapath.filter_slots().progress()
    }

    fn stop(self: Box<Self>) -> Result<(), ForwardingError> {
        // The fence stays: see the module's header.
        self.datapath.stop();
        Ok(())
    }
}
