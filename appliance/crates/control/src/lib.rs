//! The control plane: the one thread that changes tungate's state — the stored document and
//! plugins, the data path's tables and filters, the kernel's tunnels — one action at a time.
//!
//! Its API: [`ControlPlane::start`] seeds the state and starts the machinery from a
//! [`Startup`] (failing with a typed [`StartupError`]); [`Control::spawn`] runs it on its own
//! thread; requests (admin handlers, signals) become an [`Action`] sent through a
//! [`ControlHandle`] and answered with a [`Reply`] or a [`ControlError`]; readers use the
//! immutable [`View`] published with `arc-swap` after every change, plus the data path's
//! counters, so a read never waits for a write and never blocks the data path. [`store`] is
//! the state directory.
//!
//! Inside: `plane` carries out actions (validate → host checks → build the filters →
//! persist → publish → swap the view, rolling back on a late failure) through the
//! `forwarding` seam (the data path as a small trait, faked in the unit tests), [`edit`]
//! turns resource edits into documents (the admin API reads its lookups), `kernel` keeps the netcfg reconciler following the
//! document, `error` names every refusal's code and field. It never parses HTTP, never
//! touches a packet, and is the only writer of the state directory.

pub mod edit;
mod error;
pub mod fleet;
mod forwarding;
mod kernel;
mod plane;
pub mod revision;
pub mod store;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::thread::JoinHandle;

use arc_swap::ArcSwap;

use crate::store::PluginRecord;
pub use error::{ControlError, ErrorCode};
pub use forwarding::ForwardingError;
pub use kernel::KernelError;
pub use plane::{
    ConfigFile, ControlPlane, DocumentOrigin, PluginFileProblem, Startup, StartupError, StopError,
};
pub use revision::{IfMatch, Revision};
use tungate_config::{Document, Peer, Vip};
use tungate_plugin_host::StatsTable;

/// Follows the netcfg reconciler's progress (passes, changes, the last pass's error).
pub type NetworkStatus = tokio::sync::watch::Receiver<tungate_netcfg::ReconcileStatus>;

/// What the control plane is asked to do.
#[derive(Debug)]
pub enum Action {
    /// Replace the whole document.
    ReplaceConfig(Document),
    /// Create or replace one peer (by name).
    PutPeer(Peer),
    /// Remove one peer.
    DeletePeer(String),
    /// Create or replace one VIP entry and its chain (by address).
    PutVip(Vip),
    /// Remove one VIP entry.
    DeleteVip(IpAddr),
    /// Store (or replace, hot-swapping its bindings) a plugin module.
    PutPlugin {
        /// The plugin's name.
        name: String,
        /// The module bytes.
        bytes: Vec<u8>,
    },
    /// Remove a plugin (refused while bound).
    DeletePlugin(String),
    /// Seed again from the config file (SIGHUP): an edited file replaces the document.
    Reseed,
    /// Apply a fleet revision read from the fleet store (fleet mode): applied if it is
    /// newer than the one in force and passes this host's checks, else reported.
    FleetApply(Box<fleet::FleetState>),
}

/// What an action produced.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// The document now in force.
    Document(Arc<Document>),
    /// The peer as stored.
    Peer(Peer),
    /// The VIP as stored.
    Vip(Vip),
    /// The plugin as stored.
    Plugin(PluginRecord),
    /// The resource was removed.
    Deleted,
    /// Reseeding: whether the file replaced the document.
    Reseeded {
        /// True when the file changed and its document is now in force.
        replaced: bool,
    },
    /// A fleet revision was looked at.
    FleetApplied {
        /// True when it is now in force (false: not newer, or refused here and reported).
        applied: bool,
    },
}

/// An action's outcome: what it produced and the revision in force right after it.
pub type Outcome = Result<(Reply, Revision), ControlError>;

/// An action with its precondition and the channel its outcome goes back on.
pub struct Request {
    /// What to do.
    pub action: Action,
    /// Carried out only if the revision in force satisfies it (else `precondition_failed`
    /// and nothing changes); none: unconditionally.
    pub if_match: Option<IfMatch>,
    /// Where the outcome goes.
    pub reply: tokio::sync::oneshot::Sender<Outcome>,
}

/// What readers see: replaced as a whole after every change, never edited in place.
#[derive(Debug, Clone)]
pub struct View {
    /// The document in force.
    pub document: Arc<Document>,
    /// The stored plugins by name.
    pub plugins: Arc<BTreeMap<String, PluginRecord>>,
    /// The statistics of the bindings in force (cumulative per binding).
    pub bindings: Arc<StatsTable>,
    /// Configuration changes applied since the start (1 = the initial document).
    pub generation: u64,
    /// The revision of the document and plugins shown here (it survives restarts).
    pub revision: Revision,
    /// Whether the gateway is ready (`/readyz`): the data path runs with the document in
    /// force and the ingress and egress interfaces can carry packets (exist, are up and
    /// have carrier). A quarantined plugin does not make it not ready.
    pub ready: bool,
    /// Why it is not ready (e.g. `egress interface eth1 is down (no carrier)`); `None`
    /// when ready.
    pub not_ready: Option<String>,
    /// The filter generation published to the workers and the one each runs (live).
    pub filters: Arc<tungate_datapath::filter::FilterProgress>,
    /// The I/O path the workers run on, and why.
    pub io: IoPath,
    /// How this gateway follows its fleet (none without `--fleet`).
    pub fleet: Option<fleet::FleetStatus>,
}

/// The I/O path the data path receives and sends on, and why it was chosen
/// (`/api/v1/status` `io`, `tungate status`, the dashboard).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IoPath {
    /// `xdp` (native XDP + AF_XDP), `xdp-generic` (generic XDP + AF_XDP) or `packet`
    /// (AF_PACKET TPACKET rings).
    pub path: &'static str,
    /// Why this path: e.g. "native XDP attached to eth1", "asked for (gateway.io =
    /// \"packet\")", or why XDP was not available.
    pub reason: String,
}

impl IoPath {
    /// The AF_PACKET (TPACKET) rings, for `reason`.
    pub fn packet(reason: impl Into<String>) -> IoPath {
        IoPath {
            path: "packet",
            reason: reason.into(),
        }
    }
}

/// Where readers find the current [`View`].
pub type SharedView = Arc<ArcSwap<View>>;

/// Calls the control plane makes after publishing a view whose readiness changed (e.g.
/// waking the fleet announcer, so that it withdraws or announces GIP at once). They run
/// on the control thread: they must return at once.
type ReadinessHooks = Arc<std::sync::Mutex<Vec<Box<dyn Fn() + Send>>>>;

/// Sends actions to the control plane; cheap to clone, usable from any thread.
#[derive(Clone)]
pub struct ControlHandle {
    sender: crossbeam_channel::Sender<Request>,
}

impl ControlHandle {
    fn stopped() -> ControlError {
        ControlError::internal("the control plane has stopped (tungate is shutting down)")
    }

    /// Runs `action` and waits for its outcome (from async code).
    pub async fn call(&self, action: Action) -> Result<Reply, ControlError> {
        self.call_if(action, None).await.map(|(reply, _)| reply)
    }

    /// Runs `action` if the revision in force satisfies `if_match` (else answers
    /// `precondition_failed` and changes nothing), and waits for its outcome with the
    /// revision in force right after it.
    pub async fn call_if(&self, action: Action, if_match: Option<IfMatch>) -> Outcome {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.sender
            .send(Request {
                action,
                if_match,
                reply,
            })
            .map_err(|_| Self::stopped())?;
        outcome.await.map_err(|_| Self::stopped())?
    }

    /// Runs `action` and waits for its outcome (from a plain thread).
    pub fn call_blocking(&self, action: Action) -> Result<Reply, ControlError> {
        let (reply, outcome) = tokio::sync::oneshot::channel();
        self.sender
            .send(Request {
                action,
                if_match: None,
                reply,
            })
            .map_err(|_| Self::stopped())?;
        outcome
            .blocking_recv()
            .map_err(|_| Self::stopped())?
            .map(|(reply, _)| reply)
    }
}

/// The running control thread.
pub struct Control {
    handle: ControlHandle,
    view: SharedView,
    readiness_hooks: ReadinessHooks,
    network: Option<NetworkStatus>,
    thread: JoinHandle<Result<(), StopError>>,
}

impl Control {
    /// Runs `plane` on its own thread (`tg-control`) until [`Control::stop`].
    pub fn spawn(plane: ControlPlane) -> std::io::Result<Control> {
        let (sender, receiver) = crossbeam_channel::unbounded::<Request>();
        let view = plane.view();
        let readiness_hooks = plane.readiness_hooks();
        let network = plane.network();
        let thread = std::thread::Builder::new()
            .name("tg-control".into())
            .spawn(move || plane.run(receiver))?;
        Ok(Control {
            handle: ControlHandle { sender },
            view,
            readiness_hooks,
            network,
            thread,
        })
    }

    /// A handle for sending actions.
    pub fn handle(&self) -> ControlHandle {
        self.handle.clone()
    }

    /// Where readers find the current view.
    pub fn view(&self) -> SharedView {
        self.view.clone()
    }

    /// Has `hook` called (on the control thread; it must return at once) every time the
    /// view's readiness changes, right after that view is published. Register first, then
    /// read readiness: no change is missed.
    pub fn on_readiness_change(&self, hook: impl Fn() + Send + 'static) {
        self.readiness_hooks
            .lock()
            .expect("readiness hooks")
            .push(Box::new(hook));
    }

    /// Where readers follow the netcfg reconciler (none when it is not running).
    pub fn network(&self) -> Option<NetworkStatus> {
        self.network.clone()
    }

    /// Stops the control plane once every handle is dropped: the pending actions finish,
    /// then the data path stops (workers joined, nftables table and sockets removed).
    pub fn stop(self) -> Result<(), StopError> {
        drop(self.handle);
        self.thread.join().unwrap_or(Err(StopError::Panicked))
    }
}
