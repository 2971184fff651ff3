//! The seam between the control plane and the data path: [`Forwarding`] is every operation
//! the plane asks of the forwarding workers, and nothing else.
//!
//! The real implementation, [`Workers`], is the data path ([`tungate_datapath::Datapath`])
//! together with the nftables drop table that `userspace` decap needs beside it (netcfg's
//! [`IpipDropTable`]): the table follows the workers on every start, apply, restart and
//! stop, so the plane never handles it separately. It lives here, so the data-path crate
//! never learns about the control plane or the kernel's configuration; the plane's unit
//! tests implement the trait with a fake that fails on demand. This module owns no policy:
//! the plane decides when to apply, restart or stop.

use std::sync::Arc;

use tungate_config::Document;
use tungate_datapath::counters::Counters;
use tungate_datapath::filter::{FilterProgress, WorkerFilters};
use tungate_datapath::{Datapath, StartError};
use tungate_netcfg::{IpipDropTable, NetError};

/// Why the forwarding workers could not (re)start or stop.
#[derive(Debug, thiserror::Error)]
pub enum ForwardingError {
    /// The data path's workers, sockets or resolver.
    #[error("{0}")]
    Datapath(#[from] StartError),
    /// The `userspace` mode's nftables drop table.
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

    /// The I/O path the workers run on, and why. Without an override: the AF_PACKET rings,
    /// the only path of a forwarding that knows no other.
    fn io_path(&self) -> crate::IoPath {
        crate::IoPath::packet("AF_PACKET (TPACKET) rings")
    }

    /// Stops the workers and releases every socket and table.
    fn stop(self: Box<Self>) -> Result<(), ForwardingError>;
}

/// The real forwarding workers: the data path and, in `userspace` mode, the drop table on
/// the interface they read (declared after the data path, so that a drop stops the workers
/// before the table goes).
pub(crate) struct Workers {
    datapath: Datapath,
    drop_table: IpipDropTable,
}

impl Workers {
    /// Starts the real data path for a validated document, its filters published before
    /// the first packet is read, then its drop table.
    pub(crate) fn start(
        doc: &Document,
        counters: Arc<Counters>,
        filters: Vec<WorkerFilters>,
    ) -> Result<Box<dyn Forwarding>, ForwardingError> {
        let datapath = Datapath::start_with_filters(doc, counters, Some(filters))?;
        let mut workers = Workers {
            datapath,
            drop_table: IpipDropTable::new(),
        };
        workers.follow_drop_table()?;
        Ok(Box::new(workers))
    }

    /// Installs, moves or removes the drop table so that it matches the data path: present
    /// exactly while the workers run in `userspace` mode, on the interface they read.
    fn follow_drop_table(&mut self) -> Result<(), NetError> {
        self.drop_table.follow(self.datapath.userspace_ingress())
    }

    /// The table follows also after a failed (re)start, which leaves the workers (and so
    /// the table) gone; the data path's error wins over the table's.
    fn followed<T>(&mut self, result: Result<T, StartError>) -> Result<T, ForwardingError> {
        let followed = self.follow_drop_table();
        let value = result?;
        followed?;
        Ok(value)
    }
}

impl Forwarding for Workers {
    fn apply(
        &mut self,
        doc: &Document,
        filters: Vec<WorkerFilters>,
    ) -> Result<bool, ForwardingError> {
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
        let Workers {
            datapath,
            mut drop_table,
        } = *self;
        datapath.stop();
        drop_table.follow(None)?;
        Ok(())
    }
}
