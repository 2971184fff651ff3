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
//!
//! For `userspace` decap it also chooses the I/O path (`gateway.io`, [`IoMode`]): AF_XDP behind
//! tungate's XDP pre-filter ([`IngressFilter`], attached here, its peer map updated on every
//! apply, each worker's socket registered in it) or the AF_PACKET rings.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::BorrowedFd;
use std::sync::{Arc, Mutex};

use tungate_config::{DecapMode, Document, IoMode};
use tungate_datapath::counters::{Counters, DropCounts};
use tungate_datapath::filter::{FilterProgress, WorkerFilters};
use tungate_datapath::{Datapath, IoPlan, StartError, XskRegistry, peer_tunnel};
use tungate_netcfg::{NetError, TunnelFence};
use tungate_packet::Tunnel;
use tungate_xdp::{IngressFilter, XdpError, XdpMode};

use crate::IoPath;

/// Why the forwarding workers could not (re)start or stop.
#[derive(Debug, thiserror::Error)]
pub enum ForwardingError {
    /// The data path's workers, sockets or resolver.
    #[error("{0}")]
    Datapath(#[from] StartError),
    /// The `userspace` mode's tunnel fence.
    #[error("{0}")]
    DropTable(#[from] NetError),
    /// The XDP pre-filter could not be attached or updated (`gateway.io` asked for XDP).
    #[error("{0}")]
    Xdp(#[from] XdpError),
}

/// The log target of the I/O path's choice (not this module's path: test harnesses wait for
/// the daemon's "forwarding" line).
const IO_LOG: &str = "tungate_control::io_path";

/// The pre-filter as the data path registers its sockets in it.
struct FilterRegistry(Arc<Mutex<IngressFilter>>);

impl XskRegistry for FilterRegistry {
    fn bind_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        let mut filter = self.0.lock().unwrap_or_else(|e| e.into_inner());
        filter
            .bind_socket(queue, fd)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// The running pre-filter, with what selected it.
struct Xdp {
    filter: Arc<Mutex<IngressFilter>>,
}

impl Xdp {
    fn lock(&self) -> std::sync::MutexGuard<'_, IngressFilter> {
        self.filter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Makes the program's peer sets (IPv4 and IPv6) and gateway addresses those of `doc`.
    fn follow(&self, doc: &Document) -> Result<(), XdpError> {
        let peers: Vec<(IpAddr, Tunnel)> = doc
            .peers
            .iter()
            .map(|p| (p.address, peer_tunnel(p)))
            .collect();
        let mut filter = self.filter.lock().unwrap_or_else(|e| e.into_inner());
        // Without an IPv4 GIP, 0.0.0.0 tells the program there is none.
        filter.set_gateway(doc.gateway.address.unwrap_or(Ipv4Addr::UNSPECIFIED))?;
        filter.set_gateway6(doc.gateway.address6)?;
        filter.set_peers(&peers)
    }
}

/// What decides the I/O path: the decap mode, `gateway.io`, the ingress interface and
/// the worker count (one AF_XDP worker per receive queue).
#[derive(Debug, Clone, PartialEq, Eq)]
struct IoKey {
    decap: DecapMode,
    selection: IoMode,
    ingress: Option<String>,
    workers: u32,
}

impl IoKey {
    fn of(doc: &Document) -> IoKey {
        IoKey {
            decap: doc.gateway.decap,
            selection: doc.gateway.io,
            ingress: Datapath::ingress_interface(doc),
            workers: doc.gateway.workers,
        }
    }
}

/// Chooses the I/O path for `key` (attaching the pre-filter for an XDP path and loading
/// `doc`'s peers into it).
fn select_io(key: &IoKey, doc: &Document) -> Result<(Option<Xdp>, IoPath), ForwardingError> {
    let packet = |reason: String| {
        Ok((
            None,
            IoPath {
                path: "packet",
                reason,
            },
        ))
    };
    if key.decap == DecapMode::Kernel {
        return packet("kernel decap reads the tunnel devices with AF_PACKET".into());
    }
    let (mode, path) = match key.selection {
        IoMode::Packet => return packet("gateway.io = \"packet\"".into()),
        IoMode::Auto | IoMode::Xdp => (XdpMode::Native, "xdp"),
        IoMode::XdpGeneric => (XdpMode::Generic, "xdp-generic"),
    };
    let Some(ingress) = &key.ingress else {
        // The data path's start names the missing interface.
        return packet("no ingress interface".into());
    };
    let workers = doc.gateway.workers as usize;
    if key.selection == IoMode::Auto
        && let Some(queues) = tungate_datapath::receive_queues(ingress)
        && queues != workers
    {
        return packet(format!(
            "gateway.io = \"auto\": AF_PACKET rings, as {ingress} has {queues} receive \
             queue(s) for {workers} worker(s) (AF_XDP needs one worker per queue)"
        ));
    }
    let Ok(ifindex) = tungate_datapath::interface_index(ingress) else {
        // The data path's start names the missing interface.
        return packet(format!("no interface {ingress}"));
    };
    let attached = IngressFilter::attach(
        ifindex,
        mode,
        doc.gateway.address.unwrap_or(Ipv4Addr::UNSPECIFIED),
    );
    match attached {
        Ok(filter) => {
            let xdp = Xdp {
                filter: Arc::new(Mutex::new(filter)),
            };
            xdp.follow(doc)?;
            let reason = match key.selection {
                IoMode::Auto => {
                    format!("gateway.io = \"auto\": native XDP attached to {ingress}")
                }
                _ => format!("{mode} XDP attached to {ingress} as asked"),
            };
            tracing::info!(target: IO_LOG, "I/O path: AF_XDP ({reason})");
            Ok((Some(xdp), IoPath { path, reason }))
        }
        Err(e) if key.selection == IoMode::Auto => {
            let reason =
                format!("gateway.io = \"auto\": AF_PACKET rings, as XDP is unavailable: {e}");
            tracing::warn!(target: IO_LOG, "I/O path: {reason}");
            packet(reason)
        }
        Err(e) => Err(e.into()),
    }
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

    /// Stops the workers and releases every socket (the tunnel fence stays).
    fn stop(self: Box<Self>) -> Result<(), ForwardingError>;
}

/// The real forwarding workers: the data path and, in `userspace` mode, the drop table on
/// the interface they read (declared after the data path, so that a drop stops the workers
/// before the table goes).
pub(crate) struct Workers {
    datapath: Datapath,
    fence: TunnelFence,
    /// The XDP pre-filter while the workers run on AF_XDP (after the data path: its
    /// sockets close before the program goes).
    xdp: Option<Xdp>,
    io_key: IoKey,
    io: IoPath,
    /// Where the pre-filter's drops are added (they outlive restarts).
    counters: Arc<Counters>,
}

impl Workers {
    /// Starts the real data path for a validated document, its filters published before
    /// the first packet is read, then its drop table.
    pub(crate) fn start(
        doc: &Document,
        counters: Arc<Counters>,
        filters: Vec<WorkerFilters>,
    ) -> Result<Box<dyn Forwarding>, ForwardingError> {
        let mut fence = TunnelFence::new();
        lower_for_kernel(&mut fence, doc)?;
        let io_key = IoKey::of(doc);
        let (xdp, io) = select_io(&io_key, doc)?;
        counters.set_drop_source(drop_source(xdp.as_ref()));
        let datapath =
            Datapath::start_with_io(doc, counters.clone(), Some(filters), plan(xdp.as_ref()))?;
        let mut workers = Workers {
            datapath,
            fence,
            xdp,
            io_key,
            io,
            counters,
        };
        workers.raise_fence()?;
        Ok(Box::new(workers))
    }

    /// Raises (or moves) the fence to the interface the workers read while they run in
    /// `userspace` mode; otherwise leaves it as it is.
    fn raise_fence(&mut self) -> Result<(), NetError> {
        match self.datapath.userspace_ingress() {
            Some((_, ingress)) => {
                let ports = self.datapath.udp_ports();
                self.fence.raise(ingress, &ports)
            }
            None => Ok(()),
        }
    }

    /// Before applying `doc`: when its decap mode, `gateway.io` or ingress interface differ
    /// from those the I/O path was chosen for, chooses again (the workers restart on the
    /// new path with the apply, as `[gateway]` changed); otherwise loads its peers and
    /// gateway address into the running pre-filter. When the new choice fails (say
    /// `io = "xdp"` on a device without native XDP), the apply is refused and the path in
    /// force stays: its program, detached for the attempt, is attached again.
    fn follow_io(&mut self, doc: &Document) -> Result<(), ForwardingError> {
        let key = IoKey::of(doc);
        if key == self.io_key {
            if let Some(xdp) = &self.xdp {
                xdp.follow(doc)?;
            }
            return Ok(());
        }
        // Detach first: the interface takes one program, and ours is refused while held.
        // The program stays loaded (its maps hold the running workers' sockets and the peers
        // in force), so a failed choice can put it back as it was.
        if let Some(xdp) = &self.xdp {
            xdp.lock().detach()?;
        }
        match select_io(&key, doc) {
            Ok((xdp, io)) => {
                self.counters.set_drop_source(drop_source(xdp.as_ref()));
                self.datapath.set_io(plan(xdp.as_ref()));
                self.xdp = xdp;
                self.io = io;
                self.io_key = key;
                Ok(())
            }
            Err(e) => {
                self.restore_io(&e);
                Err(e)
            }
        }
    }

    /// After a failed choice (`failed`): attaches the program in force again. If even that
    /// fails (another tool attached a program meanwhile), the workers are left on their
    /// TPACKET sockets, which see every tunnel packet without the program, and the path is
    /// reported as such.
    fn restore_io(&mut self, failed: &ForwardingError) {
        let Some(xdp) = &self.xdp else {
            // The TPACKET path needs nothing back.
            return;
        };
        let Err(again) = xdp.lock().reattach() else {
            tracing::warn!(
                target: IO_LOG,
                "I/O path: kept {} ({failed})",
                self.io.path
            );
            return;
        };
        tracing::error!(
            target: IO_LOG,
            "I/O path: {failed}; the XDP program in force could not be attached again              ({again}): forwarding through the TPACKET sockets"
        );
        self.counters.set_drop_source(None);
        self.datapath.set_io(IoPlan::Packet);
        self.xdp = None;
        self.io = IoPath::packet(format!(
            "the XDP program could not be attached again after a refused change ({again})"
        ));
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
        self.follow_io(doc)?;
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

    fn io_path(&self) -> IoPath {
        self.io.clone()
    }

    fn stop(self: Box<Self>) -> Result<(), ForwardingError> {
        // The fence stays: see the module's header.
        let Workers {
            datapath,
            xdp,
            counters,
            ..
        } = *self;
        datapath.stop();
        counters.set_drop_source(None);
        drop(xdp);
        Ok(())
    }
}

/// The pre-filter's per-reason drops as the counters' drop source (or none).
fn drop_source(xdp: Option<&Xdp>) -> Option<tungate_datapath::counters::DropSource> {
    let filter = xdp?.filter.clone();
    Some(Box::new(move || {
        let filter = filter.lock().unwrap_or_else(|e| e.into_inner());
        filter.counters().ok().map(|c| DropCounts(c.drops))
    }))
}

/// The data path's I/O plan for a pre-filter (or none).
fn plan(xdp: Option<&Xdp>) -> IoPlan {
    match xdp {
        Some(x) => IoPlan::Xdp(Arc::new(FilterRegistry(x.filter.clone()))),
        None => IoPlan::Packet,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_program_redirects_only_what_a_umem_frame_holds() {
        assert_eq!(
            tungate_xdp::MAX_REDIRECT_FRAME as usize,
            tungate_datapath::xsk::MAX_REDIRECT_FRAME,
            "the XDP program and the AF_XDP sockets must agree on the largest redirected frame"
        );
    }
}
