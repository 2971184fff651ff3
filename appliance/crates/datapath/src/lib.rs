//! The data path: workers that receive (AF_PACKET rings, their system calls on io_uring),
//! check, decapsulate, filter and forward.
//!
//! [`Datapath`] starts and stops everything the workers need — receive sockets, the
//! next-hop resolver — and publishes new runtime tables without stopping them. It never
//! runs tokio or axum code and never configures the kernel: in `userspace` mode the control
//! side raises the tunnel fence on the interface [`Datapath::userspace_ingress`]
//! names. The control side reaches it only through immutable snapshots,
//! [`filter::FilterSlots`] and its counters (which also hold the [`capture`] taps).

mod afpacket;
mod batch;
pub mod capture;
pub mod counters;
mod egress;
pub mod filter;
mod frag_needed;
mod idle;
mod io;
mod resolver;
mod ring;
mod route_cache;
mod sched;
mod sockopt;
mod tables;
mod tpacket;
pub mod uring;
mod worker;
mod xdp_io;
pub mod xsk;

pub use afpacket::SocketError;
pub use resolver::ResolverError;
pub use sched::{PlacementError, SchedError};
pub use tables::{peer_tunnel, tunnel_udp_ports};
pub use worker::WorkerError;

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use arc_swap::ArcSwap;

use afpacket::RxSocket;
use counters::Counters;
use filter::{FilterSlots, WorkerFilters};
use resolver::Resolver;
use tables::Tables;
use tungate_config::{DecapMode, Document};
use worker::{Source, WorkerSetup};

/// The data path could not start (or restart).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A socket could not be opened or configured.
    #[error("{0}")]
    Socket(#[from] SocketError),
    /// The next-hop resolver could not start.
    #[error("{0}")]
    Resolver(#[from] ResolverError),
    /// A worker could not set up its sockets.
    #[error("{0}")]
    Worker(#[from] WorkerError),
    /// `userspace` mode without an ingress interface.
    #[error(
        "no interface holds the gateway address {0}: add the address, or set \
         gateway.ingress_interface"
    )]
    NoIngress(IpAddr),
    /// `kernel` mode, and no peer has its tunnel device.
    #[error(
        "kernel decap mode: none of the tunnel devices ({0}) exists; create the tunnels \
         (tungate net apply) or use decap mode userspace"
    )]
    NoTunnel(String),
    /// A worker could not take `gateway.worker_priority`.
    #[error("{0}")]
    Sched(#[from] sched::SchedError),
    /// The workers could not be placed on `gateway.worker_cpus`.
    #[error("{0}")]
    Placement(#[from] sched::PlacementError),
    /// A thread could not be started.
    #[error("cannot start a data-path thread: {0}")]
    Spawn(std::io::Error),
    /// An AF_XDP socket could not be opened.
    #[error("{0}")]
    Xsk(#[from] xsk::XskError),
    /// The XDP program's socket map refused a worker's AF_XDP socket.
    #[error("cannot register the AF_XDP socket of queue {queue} with the XDP program: {source}")]
    XskBind {
        /// The receive queue.
        queue: u32,
        /// Why.
        source: std::io::Error,
    },
    /// The ingress device's receive queues are not one per worker: AF_XDP reads queue N
    /// with worker N's socket, and a queue without one would lose its packets.
    #[error(
        "{workers} worker(s) but interface {interface} has {queues} receive queue(s), and the \
         AF_XDP path needs exactly one worker per queue: set gateway.workers = {queues}, or \
         change the device's queues (ethtool -L {interface} combined {workers}), or use \
         gateway.io = \"packet\""
    )]
    QueueMismatch {
        /// The ingress interface.
        interface: String,
        /// Its receive queues.
        queues: usize,
        /// The workers asked for.
        workers: usize,
    },
}

/// Where the AF_XDP sockets of the workers are registered with the ingress interface's
/// XDP program (its socket map, indexed by receive queue). The control plane implements it
/// with the program it attached; the data path never loads BPF itself.
pub trait XskRegistry: Send + Sync {
    /// Makes the program redirect what arrives on receive queue `queue` to socket `fd`.
    fn bind_socket(&self, queue: u32, fd: std::os::fd::BorrowedFd<'_>) -> std::io::Result<()>;
}

/// How the workers of `userspace` decap receive and transmit.
#[derive(Clone, Default)]
pub enum IoPlan {
    /// AF_PACKET `TPACKET_V2` rings.
    #[default]
    Packet,
    /// An AF_XDP socket per worker on receive queue = worker index of the ingress interface,
    /// registered through the registry; transmit from the same UMEM; the TPACKET path for
    /// what AF_XDP cannot carry.
    Xdp(Arc<dyn XskRegistry>),
}

impl std::fmt::Debug for IoPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoPlan::Packet => "Packet",
            IoPlan::Xdp(_) => "Xdp",
        })
    }
}

/// The index of interface `name` in this network namespace.
pub fn interface_index(name: &str) -> Result<u32, SocketError> {
    afpacket::ifindex(name)
}

/// The receive queues of interface `name` (`None`: unknown, from `/sys/class/net`).
pub fn receive_queues(name: &str) -> Option<usize> {
    let dir = std::fs::read_dir(format!("/sys/class/net/{name}/queues")).ok()?;
    Some(
        dir.filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().starts_with("rx-"))
            .count(),
    )
}

/// A running data path.
pub struct Datapath {
    doc: Document,
    counters: Arc<Counters>,
    tables: Arc<ArcSwap<Tables>>,
    filters: Arc<FilterSlots>,
    io: IoPlan,
    running: Option<Running>,
}

struct Running {
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
    resolver: Option<Resolver>,
    /// `userspace` mode: the interface the workers read the encapsulated replies from.
    ingress: Option<String>,
    /// `kernel` mode: each peer's tunnel device and the interface index its sockets were
    /// bound to (`None`: the device did not exist at launch).
    tunnels: Vec<(String, Option<u32>)>,
}

/// The name of the interface that holds `address` in this network namespace.
pub(crate) fn interface_with_address(address: IpAddr) -> Option<String> {
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        let held = a.address?;
        let ip = held
            .as_sockaddr_in()
            .map(|sin| IpAddr::V4(sin.ip()))
            .or_else(|| held.as_sockaddr_in6().map(|sin6| IpAddr::V6(sin6.ip())))?;
        (ip == address).then_some(a.interface_name)
    })
}

/// What the data path reads from a peer's tunnel device in `kernel` decap: IPv4 frames,
/// or every frame when the peer serves an IPv6 VIP (an ip6tnl, sit or gre device hands
/// over IPv6 packets too; the pipeline checks either family).
fn tunnel_tap(peer: &tungate_config::Peer) -> afpacket::Tap {
    if peer.vips.iter().any(IpAddr::is_ipv6) {
        afpacket::Tap::All
    } else {
        afpacket::Tap::Ipv4
    }
}

/// `kernel` decap has no Ethernet header to check: says in the log that the peers with
/// `check_source_mac` are not checked there.
fn note_unchecked_sources(doc: &Document) {
    if doc.gateway.decap != DecapMode::Kernel {
        return;
    }
    for peer in doc.peers.iter().filter(|p| p.check_source_mac) {
        tracing::warn!(
            "peer {}: check_source_mac is ignored with decap = \"kernel\" (the tunnel device \
             hands over no Ethernet header); use decap = \"userspace\" to have it checked",
            peer.name
        );
    }
}

impl Datapath {
    /// Starts the data path for a validated document. `counters` outlive restarts.
    pub fn start(doc: &Document, counters: Arc<Counters>) -> Result<Datapath, StartError> {
        Self::start_with_filters(doc, counters, None)
    }

    /// Like [`Self::start`], with one filter set per worker (`sets.len()` = the document's
    /// workers) published before the first packet is read, so no packet of a VIP with
    /// plugins escapes them at start.
    pub fn start_with_filters(
        doc: &Document,
        counters: Arc<Counters>,
        sets: Option<Vec<WorkerFilters>>,
    ) -> Result<Datapath, StartError> {
        Self::start_with_io(doc, counters, sets, IoPlan::Packet)
    }

    /// Like [`Self::start_with_filters`], `userspace` decap on the I/O path `io` (kept
    /// across restarts until [`Self::set_io`]).
    pub fn start_with_io(
        doc: &Document,
        counters: Arc<Counters>,
        sets: Option<Vec<WorkerFilters>>,
        io: IoPlan,
    ) -> Result<Datapath, StartError> {
        note_unchecked_sources(doc);
        let tables = Arc::new(ArcSwap::from_pointee(Tables::build(doc, &counters)));
        let filters = Arc::new(FilterSlots::new(doc.gateway.workers as usize));
        if let Some(sets) = sets {
            filters.publish(sets);
        }
        let mut dp = Datapath {
            doc: doc.clone(),
            counters,
            tables,
            filters,
            io,
            running: None,
        };
        dp.running = Some(dp.launch()?);
        Ok(dp)
    }

    /// Where the plugin host publishes filter sets for the current workers. A restart (a
    /// changed `[gateway]`) makes a new one: fetch it again after
    /// [`Self::apply_with_filters`].
    pub fn filter_slots(&self) -> Arc<FilterSlots> {
        self.filters.clone()
    }

    /// `userspace` decap: the interface the workers read for `doc` (its
    /// `gateway.ingress_interface`, else the one holding the gateway address).
    pub fn ingress_interface(doc: &Document) -> Option<String> {
        if doc.gateway.decap != DecapMode::Userspace {
            return None;
        }
        doc.gateway
            .ingress_interface
            .clone()
            .or_else(|| interface_with_address(doc.gateway.display_address()))
    }

    /// The I/O path of the next (re)start of the workers.
    pub fn set_io(&mut self, io: IoPlan) {
        self.io = io;
    }

    /// Whether the workers are running (false after a failed restart).
    pub fn is_running(&self) -> bool {
        self.running.is_some()
    }

    /// Applies a new validated document: peers and VIPs by swapping the tables (the workers
    /// go on without dropping anything); a changed `[gateway]`, or changed peers in
    /// `kernel` mode (other tunnel devices to read), by restarting the workers. Returns
    /// whether the workers were restarted. `sets`: one filter set per worker of `doc`,
    /// published with the new tables: before the new workers read their first packet when
    /// they restart, otherwise just before the tables swap (each worker takes its set
    /// between two batches).
    pub fn apply_with_filters(
        &mut self,
        doc: &Document,
        sets: Option<Vec<WorkerFilters>>,
    ) -> Result<bool, StartError> {
        note_unchecked_sources(doc);
        let kernel_devices_changed = doc.gateway.decap == DecapMode::Kernel
            && doc.peers.iter().map(|p| (&p.name, tunnel_tap(p))).ne(self
                .doc
                .peers
                .iter()
                .map(|p| (&p.name, tunnel_tap(p))));
        // Workers that a failed restart left stopped start again with whatever comes next.
        let stopped = self.running.is_none();
        if stopped || tables::needs_restart(&self.doc, doc) || kernel_devices_changed {
            self.doc = doc.clone();
            self.restart(sets)?;
            return Ok(true);
        }
        if let Some(sets) = sets {
            self.filters.publish(sets);
        }
        self.doc = doc.clone();
        self.tables
            .store(Arc::new(Tables::build(doc, &self.counters)));
        Ok(false)
    }

    /// Restarts the workers on the document in force with new receive sockets; `sets`
    /// (one per worker, as for [`Self::apply_with_filters`]) are published before they read
    /// their first packet.
    pub fn restart_with_filters(&mut self, sets: Vec<WorkerFilters>) -> Result<(), StartError> {
        self.restart(Some(sets))
    }

    fn restart(&mut self, sets: Option<Vec<WorkerFilters>>) -> Result<(), StartError> {
        self.halt();
        // New workers start empty: sets taken by the old ones are gone with them, so the
        // plugin host publishes to the new slots (see `filter_slots`).
        self.filters = Arc::new(FilterSlots::following(
            &self.filters,
            self.doc.gateway.workers as usize,
        ));
        if let Some(sets) = sets {
            self.filters.publish(sets);
        }
        self.running = Some(self.launch()?);
        Ok(())
    }

    /// `kernel` mode: whether a peer's tunnel device now exists under another interface
    /// index than the one the workers' sockets were bound to (deleted and built again, e.g.
    /// by the netcfg reconciler, or missing at launch and there now). Such sockets stay
    /// bound to the vanished device and never see a packet again: restart the workers
    /// ([`Self::restart_with_filters`]). A device that is gone right now does not count (the
    /// reconciler is expected to build it again).
    pub fn tunnel_devices_replaced(&self) -> bool {
        self.running.as_ref().is_some_and(|r| {
            r.tunnels.iter().any(|(device, bound)| {
                afpacket::ifindex(device)
                    .ok()
                    .is_some_and(|now| Some(now) != *bound)
            })
        })
    }

    /// `userspace` mode, while the workers run: the gateway address and the interface they
    /// read the encapsulated replies from (where the kernel must drop the tunnel packets
    /// once the workers have their copy: see `tungate_netcfg::TunnelFence`).
    pub fn userspace_ingress(&self) -> Option<(IpAddr, &str)> {
        let ingress = self.running.as_ref()?.ingress.as_deref()?;
        Some((self.doc.gateway.display_address(), ingress))
    }

    /// The GUE/FOU ports of the peers in force: with IPIP and GRE, what the ingress taps take
    /// and the fence must drop (see [`tunnel_udp_ports`]).
    pub fn udp_ports(&self) -> Vec<u16> {
        tables::tunnel_udp_ports(&self.doc)
    }

    /// Stops the workers and closes every socket.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        let Some(mut r) = self.running.take() else {
            return;
        };
        r.stop.store(true, Ordering::Relaxed);
        for w in r.workers.drain(..) {
            let _ = w.join();
        }
        drop(r.resolver.take());
    }

    fn launch(&mut self) -> Result<Running, StartError> {
        let doc = &self.doc;
        let workers = doc.gateway.workers as usize;
        sched::check_worker_cpus(doc.gateway.worker_cpus.as_deref())?;
        self.counters.resize(workers);
        // Rebuild the tables so their VIP counters are the resized ones.
        self.tables
            .store(Arc::new(Tables::build(doc, &self.counters)));
        let mut per_worker: Vec<Vec<(RxSocket, Source)>> =
            (0..workers).map(|_| Vec::new()).collect();
        let mut userspace_ingress = None;
        let mut tunnels = Vec::new();
        let mut xsks = Vec::new();
        match doc.gateway.decap {
            DecapMode::Userspace => {
                let ingress = match &doc.gateway.ingress_interface {
                    Some(i) => i.clone(),
                    None => interface_with_address(doc.gateway.display_address())
                        .ok_or(StartError::NoIngress(doc.gateway.display_address()))?,
                };
                // Without an IPv4 GIP no IPv4 UDP is addressed to 0.0.0.0: the filter then
                // takes no IPv4 GUE/FOU.
                let filter = afpacket::tunnel_filter(
                    doc.gateway.address.unwrap_or(Ipv4Addr::UNSPECIFIED),
                    doc.gateway.address6,
                    &tables::tunnel_udp_ports(doc),
                );
                let sockets = afpacket::open_receive_group(
                    &ingress,
                    workers,
                    afpacket::Tap::All,
                    Some(&filter[..]),
                )?;
                for (w, fd) in sockets.into_iter().enumerate() {
                    per_worker[w].push((fd, Source::Ingress));
                }
                if let IoPlan::Xdp(registry) = &self.io {
                    xsks = open_xsks(&ingress, workers, registry.as_ref())?;
                }
                tracing::info!(
                    "userspace decap on {ingress} for {} with {workers} worker(s) on {}",
                    doc.gateway
                        .addresses()
                        .map(|a| a.to_string())
                        .collect::<Vec<_>>()
                        .join(" and "),
                    if xsks.is_empty() {
                        "AF_PACKET rings"
                    } else {
                        "AF_XDP"
                    },
                );
                userspace_ingress = Some(ingress);
            }
            DecapMode::Kernel => {
                let mut found = 0;
                for peer in &doc.peers {
                    let device = peer.tunnel_device();
                    // Read before opening: a device replaced in between shows as replaced.
                    tunnels.push((device.clone(), afpacket::ifindex(&device).ok()));
                    match afpacket::open_receive_group(&device, workers, tunnel_tap(peer), None) {
                        Ok(sockets) => {
                            found += 1;
                            for (w, fd) in sockets.into_iter().enumerate() {
                                per_worker[w].push((
                                    fd,
                                    Source::Tunnel {
                                        device: device.clone(),
                                    },
                                ));
                            }
                        }
                        Err(e) => tracing::warn!("peer {}: {e}", peer.name),
                    }
                }
                if found == 0 && !doc.peers.is_empty() {
                    let names: Vec<String> = doc.peers.iter().map(|p| p.tunnel_device()).collect();
                    return Err(StartError::NoTunnel(names.join(", ")));
                }
                tracing::info!("kernel decap on {found} tunnel device(s) with {workers} worker(s)");
            }
        }
        let egress = match &doc.gateway.egress_interface {
            Some(name) => Some(afpacket::ifindex(name)?),
            None => None,
        };
        let (resolver, links) = Resolver::start(workers, egress)?;
        let stop = Arc::new(AtomicBool::new(false));
        let mut running = Running {
            stop: stop.clone(),
            workers: Vec::with_capacity(workers),
            resolver: Some(resolver),
            ingress: userspace_ingress,
            tunnels,
        };
        let cells = self.counters.global_cells();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(workers);
        let mut xsks = xsks.into_iter();
        for (index, (sockets, link)) in per_worker.into_iter().zip(links).enumerate() {
            let setup = WorkerSetup {
                xsk: xsks.next(),
                index,
                sockets,
                tables: self.tables.clone(),
                resolver: link,
                filters: self.filters.clone(),
                counters: cells.clone(),
                captures: self.counters.captures(),
                stop: stop.clone(),
            };
            let ready = ready_tx.clone();
            let priority = doc.gateway.worker_priority;
            let cpu = doc
                .gateway
                .worker_cpus
                .as_ref()
                .and_then(|c| c.get(index).copied());
            let handle = std::thread::Builder::new()
                .name(format!("tg-worker-{index}"))
                .spawn(move || {
                    let placed = sched::pin_current_thread(index, cpu)
                        .map_err(StartError::from)
                        .and_then(|()| {
                            sched::apply_to_current_thread(priority).map_err(StartError::from)
                        });
                    match placed {
                        Ok(()) => worker::run(setup, ready),
                        Err(e) => {
                            let _ = ready.send(Err(e));
                        }
                    }
                });
            match handle {
                Ok(h) => running.workers.push(h),
                Err(e) => {
                    self.running = Some(running);
                    self.halt();
                    return Err(StartError::Spawn(e));
                }
            }
        }
        drop(ready_tx);
        let mut failure = None;
        for _ in 0..workers {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => failure = failure.or(Some(e)),
                Err(_) => break,
            }
        }
        if let Some(e) = failure {
            self.running = Some(running);
            self.halt();
            return Err(e);
        }
        sched::keep_other_threads_off(doc.gateway.worker_cpus.as_deref());
        Ok(running)
    }
}

/// One AF_XDP socket (with its UMEM) per worker on receive queue = worker index of
/// `ingress`, each registered with the XDP program.
fn open_xsks(
    ingress: &str,
    workers: usize,
    registry: &dyn XskRegistry,
) -> Result<Vec<(xsk::Umem, xsk::XskSocket)>, StartError> {
    if let Some(queues) = receive_queues(ingress)
        && queues != workers
    {
        return Err(StartError::QueueMismatch {
            interface: ingress.to_string(),
            queues,
            workers,
        });
    }
    let ifindex = afpacket::ifindex(ingress)?;
    let mut out = Vec::with_capacity(workers);
    for queue in 0..workers as u32 {
        let (umem, socket) = xsk::open_owner(ifindex, queue)?;
        registry
            .bind_socket(queue, std::os::fd::AsFd::as_fd(&socket.fd))
            .map_err(|source| StartError::XskBind { queue, source })?;
        out.push((umem, socket));
    }
    Ok(out)
}

impl Drop for Datapath {
    fn drop(&mut self) {
        self.halt();
    }
}
