//! The control plane's state and the carrying out of each [`Action`]: it alone writes the
//! state directory, applies documents to the data path, publishes plugin filters and steers
//! the netcfg reconciler.
//!
//! Applying a document: validate → host checks (when `[gateway]` changed) → resolve and
//! build every binding off the data path (modules compiled once, instances configured) →
//! persist atomically → publish (kernel tunnels, tables and filters; a changed `[gateway]`
//! restarts the workers) → swap the read [`View`]. A failure before persisting changes
//! nothing; a failure after it restores the previous document (and module). Between
//! requests it restarts the workers when a kernel tunnel device they read was built again.
//! It never parses HTTP and never touches a packet.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;

use super::edit;
use super::error::{ControlError, ErrorCode};
use super::fleet::{
    self, FleetChange, FleetPlugin, FleetStart, FleetState, FleetStatus, FleetStore,
    FleetWriteError,
};
use super::forwarding::{Forwarding, ForwardingError, Workers};
use super::kernel::{KernelError, KernelFollower};
use super::{
    Action, IfMatch, NetworkStatus, ReadinessHooks, Reply, Request, Revision, SharedView, View,
};
use crate::store::{PluginRecord, StateDir, StoreError};
use tungate_config::{self as config, Document, Invalid};
use tungate_datapath::StartError;
use tungate_datapath::counters::Counters;
use tungate_datapath::filter::WorkerFilters;
use tungate_plugin_host::{BuildError, EngineError, Generation, Limits, PluginHost, Refusal};

/// The netcfg state file inside the state directory.
const NETCFG_STATE_FILE: &str = "netcfg-gateway.json";

/// How often, between requests, the control thread checks whether a kernel tunnel device
/// was replaced.
const DEVICE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A configuration file given with `--config`, already read and checked.
pub struct ConfigFile {
    /// Where it is (read again on SIGHUP).
    pub path: PathBuf,
    /// Its bytes (its sha256 decides the seeding rule).
    pub text: Vec<u8>,
    /// Its document (valid).
    pub doc: Document,
}

/// Everything the control plane starts from.
pub struct Startup {
    /// The opened, locked state directory.
    pub state: StateDir,
    /// The `--config` file, if any.
    pub config: Option<ConfigFile>,
    /// `--plugin` modules, stored under their file stem before the document is built.
    pub plugin_files: Vec<PathBuf>,
    /// The plugin sandbox limits.
    pub limits: Limits,
    /// `--fleet NAME`: this gateway is a fleet member (it holds GIP on `lo` without ARP).
    pub fleet_name: Option<String>,
    /// Fleet mode (`--fleet`): the fleet store and the state read from it at start.
    pub fleet: Option<FleetStart>,
}

/// Where the document a start uses came from (named in its errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DocumentOrigin {
    /// The `--config` file (it seeds the state).
    File,
    /// The state directory's stored document (at this state directory).
    Stored(PathBuf),
}

impl fmt::Display for DocumentOrigin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DocumentOrigin::File => f.write_str("the configuration file"),
            DocumentOrigin::Stored(root) => {
                write!(f, "the stored configuration {}/config.json", root.display())
            }
        }
    }
}

/// Why a `--plugin` file could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum PluginFileProblem {
    /// Its stem is not a plugin name.
    #[error(
        "the file name (less .wasm) must be a valid plugin name: 1 to 64 of A-Z a-z 0-9 . _ - \
         (not starting with '.')"
    )]
    BadName,
    /// It cannot be read.
    #[error("cannot read: {0}")]
    Read(std::io::Error),
    /// The plugin host refuses the module.
    #[error("refused: {0}")]
    Refused(Refusal),
    /// The state directory could not take it.
    #[error("cannot store it: {0}")]
    Store(StoreError),
}

/// Why the gateway could not start. [`StartupError::is_bad_config`] tells a bad
/// configuration, flag or plugin file (the operator's to fix; exit status 2) from a failure
/// of this host (exit status 1).
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A `--plugin` file could not be stored.
    #[error("--plugin {}: {problem}", path.display())]
    PluginFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: PluginFileProblem,
    },
    /// The plugin engine could not be set up.
    #[error("{0}")]
    Engine(EngineError),
    /// The stored document cannot be read.
    #[error("{0}")]
    StoredConfig(StoreError),
    /// The state directory failed (reading the seed, saving the seeded document).
    #[error("{0}")]
    State(StoreError),
    /// Neither a `--config` file nor a stored document.
    #[error("no configuration: give --config FILE (nothing is stored in {} yet)", .0.display())]
    NoConfig(PathBuf),
    /// The document is invalid.
    #[error("{origin} is invalid:\n{invalid}")]
    Invalid {
        /// Where it came from.
        origin: DocumentOrigin,
        /// Every problem found.
        invalid: Invalid,
    },
    /// The document does not fit this host (addresses, interfaces).
    #[error("{origin} does not fit this host:\n{invalid}")]
    Host {
        /// Where it came from.
        origin: DocumentOrigin,
        /// Every problem found.
        invalid: Invalid,
    },
    /// A plugin binding of the document cannot be built.
    #[error("{origin}: {error}")]
    Build {
        /// Where the document came from.
        origin: DocumentOrigin,
        /// What failed (boxed: it is large and rare).
        error: Box<BuildError>,
    },
    /// The netcfg reconciler could not start.
    #[error("{0}")]
    Kernel(KernelError),
    /// The data path could not start.
    #[error("cannot start the data path: {0}")]
    Datapath(ForwardingError),
    /// Fleet mode: the fleet store could not be read or seeded, and the state directory
    /// holds no cached revision to start from.
    #[error("fleet {fleet}: {message}")]
    Fleet {
        /// The fleet's name.
        fleet: String,
        /// What failed.
        message: String,
    },
}

impl StartupError {
    /// Whether the operator's input is at fault (configuration, flag or plugin file) rather
    /// than this host.
    pub fn is_bad_config(&self) -> bool {
        match self {
            StartupError::PluginFile { .. }
            | StartupError::StoredConfig(_)
            | StartupError::NoConfig(_)
            | StartupError::Invalid { .. }
            | StartupError::Host { .. }
            | StartupError::Build { .. } => true,
            StartupError::Engine(_)
            | StartupError::State(_)
            | StartupError::Kernel(_)
            | StartupError::Fleet { .. }
            | StartupError::Datapath(_) => false,
        }
    }
}

/// Why the control plane did not stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum StopError {
    /// The data path did not stop cleanly.
    #[error("{0}")]
    Datapath(ForwardingError),
    /// The control thread panicked.
    #[error("the control thread panicked")]
    Panicked,
}

/// What a start launches once the document and its filters are ready: the netcfg
/// reconciler (if any) and the forwarding workers.
type Launched = (Option<KernelFollower>, Box<dyn Forwarding>);

/// Fleet mode's part of the plane: the store every change is committed to first, and how
/// this gateway follows the fleet.
struct FleetMode {
    store: Box<dyn FleetStore>,
    status: FleetStatus,
}

/// The control plane's state; runs on the control thread.
pub struct ControlPlane {
    state: StateDir,
    config_path: Option<PathBuf>,
    host: PluginHost,
    datapath: Box<dyn Forwarding>,
    counters: Arc<Counters>,
    kernel: Option<KernelFollower>,
    /// A fleet member (`--fleet`): GIP is held on `lo` by the reconciler, not required
    /// beforehand.
    fleet_member: bool,
    doc: Document,
    generation: u64,
    revision: Revision,
    view: SharedView,
    fleet: Option<FleetMode>,
    /// Called after every view whose readiness differs from the one before.
    readiness_hooks: ReadinessHooks,
}

/// The module bytes of a stored plugin, as the plugin builder looks them up.
fn stored_module(state: &StateDir, name: &str) -> Option<Vec<u8>> {
    match state.plugin_bytes(name) {
        Ok((_, bytes)) => Some(bytes),
        Err(StoreError::NoSuchPlugin(_)) => None,
        Err(e) => {
            tracing::error!("plugin {name:?}: {e}");
            None
        }
    }
}

/// Stores one `--plugin` file under its stem (unless the same module is stored already).
fn store_plugin_file(
    host: &PluginHost,
    state: &StateDir,
    path: &Path,
) -> Result<(), PluginFileProblem> {
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|n| config::validate::is_valid_plugin_name(n))
        .ok_or(PluginFileProblem::BadName)?;
    let bytes = std::fs::read(path).map_err(PluginFileProblem::Read)?;
    let info = host.check(&bytes).map_err(PluginFileProblem::Refused)?;
    let same = state
        .plugins()
        .map_err(PluginFileProblem::Store)?
        .get(name)
        .is_some_and(|r| r.sha256 == info.sha256);
    if !same {
        let info = serde_json::to_value(&info).unwrap_or_default();
        state
            .put_plugin(name, &bytes, info)
            .map_err(PluginFileProblem::Store)?;
        tracing::info!("stored plugin {name:?} from {}", path.display());
    }
    Ok(())
}

/// The plugins stored in the state directory, as fleet plugins (to seed an empty fleet).
fn stored_fleet_plugins(state: &StateDir) -> Result<Vec<FleetPlugin>, StoreError> {
    let mut out = Vec::new();
    for name in state.plugins()?.keys() {
        let (record, bytes) = state.plugin_bytes(name)?;
        out.push(FleetPlugin {
            record,
            bytes: Arc::new(bytes),
        });
    }
    Ok(out)
}

/// Makes the state directory's plugins those of `fleet` (the modules of a fleet revision
/// about to be applied), so that the builder and a later restart find them.
fn sync_plugins(state: &StateDir, fleet: &FleetState) -> Result<(), StoreError> {
    let stored = state.plugins()?;
    for (name, plugin) in &fleet.plugins {
        if stored.get(name).map(|r| &r.sha256) != Some(&plugin.record.sha256) {
            state.put_plugin(name, &plugin.bytes, plugin.record.info.clone())?;
        }
    }
    for name in stored.keys() {
        if !fleet.plugins.contains_key(name) {
            state.delete_plugin(name)?;
        }
    }
    Ok(())
}

/// The state directory's cached document (for this host) and its fleet revision: what a
/// gateway starts on when the fleet's revision fails to build here.
type CachedFallback = Option<(Document, Revision)>;

/// Fleet mode at start: the document this host starts with and how it follows the fleet.
/// An empty fleet is seeded from `--config` (and the `--plugin` files) once; otherwise the
/// fleet's state wins over the file, whose per-host fields are kept; a fleet state that
/// fails this host's checks, or an unreachable store, leaves the gateway on the state
/// directory's cached revision (reported). When the fleet's document is chosen, the cached
/// one comes back too, for a refusal found only when building the plugins (e.g. the
/// instance pool of this host's worker count).
fn fleet_document(
    state: &StateDir,
    config: Option<&ConfigFile>,
    stored: Option<Document>,
    start: FleetStart,
    fleet_member: bool,
) -> Result<(Document, FleetMode, CachedFallback), StartupError> {
    let FleetStart {
        name,
        store,
        state: read,
    } = start;
    let failed = |message: String| StartupError::Fleet {
        fleet: name.clone(),
        message,
    };
    let local = config
        .map(|f| f.doc.gateway.clone())
        .or_else(|| stored.as_ref().map(|d| d.gateway.clone()))
        .ok_or_else(|| StartupError::NoConfig(state.root().to_owned()))?;
    let cached = state.revision().map_err(StartupError::State)?;
    let fleet_state = match read {
        Ok(Some(fleet_state)) => Ok(fleet_state),
        Ok(None) => {
            let file = config.ok_or_else(|| {
                failed("the fleet is empty: give --config FILE to seed it".into())
            })?;
            config::validate(&file.doc).map_err(|invalid| StartupError::Invalid {
                origin: DocumentOrigin::File,
                invalid,
            })?;
            let plugins = stored_fleet_plugins(state).map_err(StartupError::State)?;
            let (seeded_state, seeded) = store
                .seed(fleet::fleet_part(&file.doc), plugins)
                .map_err(|e| failed(format!("cannot seed it: {e}")))?;
            if seeded {
                tracing::info!(
                    "fleet {name} was empty: seeded from {} (fleet revision {})",
                    file.path.display(),
                    seeded_state.revision
                );
            }
            Ok(seeded_state)
        }
        Err(e) => Err(e.to_string()),
    };
    let problem = match fleet_state {
        Ok(fleet_state) => {
            let doc = fleet::for_host(&fleet_state.document, &local);
            let checked = config::validate(&doc)
                .and_then(|()| config::host::check_host_as(&doc, fleet_member))
                .map_err(|invalid| invalid.to_string());
            match checked {
                Ok(()) => {
                    sync_plugins(state, &fleet_state).map_err(StartupError::State)?;
                    tracing::info!(
                        "fleet {name}: starting on fleet revision {}",
                        fleet_state.revision
                    );
                    let status = FleetStatus {
                        name: name.clone(),
                        applied: fleet_state.revision,
                        latest: fleet_state.revision,
                        error: None,
                    };
                    let fallback = stored.map(|s| (fleet::for_host(&s, &local), cached));
                    return Ok((doc, FleetMode { store, status }, fallback));
                }
                Err(message) => (
                    fleet_state.revision,
                    format!(
                        "fleet revision {} is not applied here: {message}",
                        fleet_state.revision
                    ),
                ),
            }
        }
        Err(message) => (cached, message),
    };
    let (latest, message) = problem;
    let stored = stored.ok_or_else(|| {
        failed(format!(
            "{message}; and {} caches no revision to start from",
            state.root().display()
        ))
    })?;
    tracing::warn!(
        "fleet {name}: {message}; starting on the cached fleet revision {cached} from {}",
        state.root().display()
    );
    let status = FleetStatus {
        name: name.clone(),
        applied: cached,
        latest: latest.max(cached),
        error: Some(message),
    };
    Ok((
        fleet::for_host(&stored, &local),
        FleetMode { store, status },
        None,
    ))
}

/// Maps a data-path (re)start failure: configuration mismatches name their field.
fn start_failure(e: ForwardingError) -> ControlError {
    let message = format!("the data path cannot run this configuration: {e}");
    match e {
        ForwardingError::Datapath(StartError::NoTunnel(_)) => {
            ControlError::new(ErrorCode::InvalidConfig, message).at("gateway.decap")
        }
        ForwardingError::Datapath(StartError::NoIngress(_)) => {
            ControlError::new(ErrorCode::InvalidConfig, message).at("gateway.ingress_interface")
        }
        ForwardingError::Datapath(StartError::QueueMismatch { .. }) => {
            ControlError::new(ErrorCode::InvalidConfig, message).at("gateway.workers")
        }
        ForwardingError::Xdp(_) => {
            ControlError::new(ErrorCode::InvalidConfig, message).at("gateway.io")
        }
        _ => ControlError::internal(message),
    }
}

fn storage(what: &str) -> impl FnOnce(StoreError) -> ControlError + '_ {
    move |e| ControlError::internal(format!("cannot store {what}: {e}"))
}

/// Starts the real machinery: the netcfg reconciler (for kernel decap, the tunnels first),
/// then the data path with its filters.
fn launch(
    doc: &Document,
    state_root: &Path,
    counters: Arc<Counters>,
    filters: Vec<WorkerFilters>,
    fleet: bool,
) -> Result<Launched, StartupError> {
    let kernel = KernelFollower::start(doc, state_root.join(NETCFG_STATE_FILE), fleet)
        .map_err(StartupError::Kernel)?;
    let datapath = Workers::start(doc, counters, filters).map_err(StartupError::Datapath)?;
    Ok((Some(kernel), datapath))
}

impl ControlPlane {
    /// Seeds the state, builds the filters and starts the data path (and, for kernel
    /// decap, the tunnels first).
    pub fn start(startup: Startup) -> Result<ControlPlane, StartupError> {
        let fleet_member = startup.fleet_name.is_some();
        Self::start_with(startup, move |doc, root, counters, filters| {
            launch(doc, root, counters, filters, fleet_member)
        })
    }

    /// [`Self::start`] with `launch` standing in for starting the reconciler and the data
    /// path (the unit tests' seam).
    fn start_with(
        startup: Startup,
        launch: impl FnOnce(
            &Document,
            &Path,
            Arc<Counters>,
            Vec<WorkerFilters>,
        ) -> Result<Launched, StartupError>,
    ) -> Result<ControlPlane, StartupError> {
        let Startup {
            state,
            config,
            plugin_files,
            limits,
            fleet_name,
            fleet: fleet_start,
        } = startup;
        let fleet_member = fleet_name.is_some();
        let host = PluginHost::with_compiled_cache(limits, state.compiled_dir())
            .map_err(StartupError::Engine)?;
        for path in &plugin_files {
            store_plugin_file(&host, &state, path).map_err(|problem| StartupError::PluginFile {
                path: path.clone(),
                problem,
            })?;
        }
        let stored = state.config().map_err(StartupError::StoredConfig)?;
        let config_path = config.as_ref().map(|f| f.path.clone());
        let root = state.root().to_owned();
        let (config, stored, mut fleet, fallback) = match fleet_start {
            None => (config, stored, None, None),
            Some(start) => {
                let (doc, mode, fallback) =
                    fleet_document(&state, config.as_ref(), stored, start, fleet_member)?;
                (None, Some(doc), Some(mode), fallback)
            }
        };
        // The seeding rule: a file seeds an empty state; the same file again keeps the
        // stored document (with its API changes); an edited file replaces it.
        let (mut doc, seed_text) = match (config, stored) {
            (Some(file), Some(stored))
                if state.seeded_by(&file.text).map_err(StartupError::State)? =>
            {
                tracing::info!(
                    "{} is unchanged since it seeded {}: the stored configuration (with \
                     its API changes) is in force",
                    file.path.display(),
                    root.display()
                );
                (stored, None)
            }
            (Some(file), _) => (file.doc, Some(file.text)),
            (None, Some(stored)) => (stored, None),
            (None, None) => return Err(StartupError::NoConfig(root)),
        };
        let origin = if seed_text.is_some() {
            DocumentOrigin::File
        } else {
            DocumentOrigin::Stored(root.clone())
        };
        config::validate(&doc).map_err(|invalid| StartupError::Invalid {
            origin: origin.clone(),
            invalid,
        })?;
        config::host::check_host_as(&doc, fleet_member).map_err(|invalid| StartupError::Host {
            origin: origin.clone(),
            invalid,
        })?;
        let build = |doc: &Document| {
            host.build(
                doc,
                &|name: &str| stored_module(&state, name),
                doc.gateway.workers as usize,
            )
        };
        let generation = match (build(&doc), fleet.as_mut(), fallback) {
            (Ok(generation), _, _) => generation,
            // The fleet's revision passed this host's checks but its plugins cannot be
            // built here: start on the cached revision, reported like a refusal at run time.
            (Err(error), Some(mode), Some((cached_doc, cached))) => {
                let message = format!(
                    "fleet revision {} is not applied here: {error}",
                    mode.status.latest
                );
                tracing::warn!(
                    "fleet {}: {message}; starting on the cached fleet revision {cached} from {}",
                    mode.status.name,
                    root.display()
                );
                mode.status.applied = cached;
                mode.status.error = Some(message);
                doc = cached_doc;
                let origin = DocumentOrigin::Stored(root.clone());
                config::host::check_host_as(&doc, fleet_member).map_err(|invalid| {
                    StartupError::Host {
                        origin: origin.clone(),
                        invalid,
                    }
                })?;
                build(&doc).map_err(|error| StartupError::Build {
                    origin,
                    error: Box::new(error),
                })?
            }
            (Err(error), _, _) => {
                return Err(StartupError::Build {
                    origin,
                    error: Box::new(error),
                });
            }
        };
        let mut revision = match &fleet {
            Some(mode) => {
                state
                    .save_revision(mode.status.applied)
                    .and_then(|()| state.save_config(&doc))
                    .map_err(StartupError::State)?;
                mode.status.applied
            }
            None => state.revision().map_err(StartupError::State)?,
        };
        let cache = host.compiled_cache_counts();
        tracing::info!(
            "plugin modules: {} loaded compiled from {}, {} compiled, {} cache entries refused",
            cache.hits,
            state.compiled_dir().display(),
            cache.misses,
            cache.rejected
        );
        if let Some(text) = &seed_text {
            // The file's document replaces whatever was stored: a new revision.
            revision = revision.next();
            state
                .save_revision(revision)
                .and_then(|()| state.save_config(&doc))
                .and_then(|()| state.record_seed(text))
                .map_err(StartupError::State)?;
        }
        let counters = Arc::new(Counters::new(doc.gateway.workers as usize));
        let (kernel, datapath) = launch(&doc, &root, counters.clone(), generation.filters)?;
        host.commit(generation.stats, &generation.modules);
        let filters = datapath.filter_progress();
        let mut plane = ControlPlane {
            view: Arc::new(ArcSwap::from_pointee(View {
                document: Arc::new(doc.clone()),
                plugins: Arc::default(),
                bindings: Arc::default(),
                generation: 0,
                revision,
                ready: false,
                not_ready: None,
                filters,
                io: datapath.io_path(),
                fleet: None,
            })),
            state,
            config_path,
            fleet_member,
            host,
            datapath,
            counters,
            kernel,
            fleet,
            doc,
            generation: 1,
            revision,
            readiness_hooks: ReadinessHooks::default(),
        };
        plane.refresh_view();
        Ok(plane)
    }

    /// Where readers find the current view.
    pub fn view(&self) -> SharedView {
        self.view.clone()
    }

    /// Where the calls on a readiness change are registered.
    pub(crate) fn readiness_hooks(&self) -> ReadinessHooks {
        self.readiness_hooks.clone()
    }

    /// The netcfg reconciler's progress: whether LD-OUT's networking is as configured.
    pub fn network(&self) -> Option<NetworkStatus> {
        self.kernel.as_ref().map(KernelFollower::subscribe)
    }

    /// The data path's counters (they outlive worker restarts).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Serves requests until every sender is gone, then stops the data path and the
    /// reconciler. Returns an error if the data path did not stop cleanly.
    /// Between requests it checks every [`DEVICE_CHECK_INTERVAL`] whether a kernel tunnel
    /// device was replaced (see [`Self::follow_tunnel_devices`]).
    pub(crate) fn run(
        mut self,
        requests: crossbeam_channel::Receiver<Request>,
    ) -> Result<(), StopError> {
        let mut next_check = Instant::now() + DEVICE_CHECK_INTERVAL;
        let mut links = self
            .kernel
            .as_ref()
            .map_or_else(crossbeam_channel::never, KernelFollower::link_changes);
        loop {
            crossbeam_channel::select! {
                recv(requests) -> request => match request {
                    Ok(Request {
                        action,
                        if_match,
                        reply,
                    }) => {
                        let outcome = self.handle_if(action, if_match.as_ref());
                        if let Err(e) = &outcome {
                            tracing::info!("refused: {e}");
                        }
                        let _ = reply.send(outcome.map(|r| (r, self.revision)));
                    }
                    Err(_) => break,
                },
                recv(links) -> change => match change {
                    // An interface went down or came back: readiness follows at once.
                    Ok(()) => self.refresh_view(),
                    Err(_) => links = crossbeam_channel::never(),
                },
                default(next_check.saturating_duration_since(Instant::now())) => {}
            }
            // Also under a steady stream of requests.
            if Instant::now() >= next_check {
                self.follow_tunnel_devices();
                next_check = Instant::now() + DEVICE_CHECK_INTERVAL;
            }
        }
        if let Some(k) = self.kernel.take() {
            k.stop();
        }
        self.datapath.stop().map_err(StopError::Datapath)
    }

    /// `kernel` mode: when a tunnel device the workers read was replaced (deleted by hand
    /// and built again by the reconciler) or appeared after they started, restarts them on
    /// the document in force, with its filters built afresh, so that they read the new
    /// device; their old sockets stay bound to the vanished one and would never see a
    /// packet again. Returns whether the workers were restarted.
    pub fn follow_tunnel_devices(&mut self) -> bool {
        if !self.datapath.tunnel_devices_replaced() {
            return false;
        }
        let doc = self.doc.clone();
        let outcome = self.build(&doc, None).and_then(|generation| {
            self.datapath
                .restart(generation.filters)
                .map_err(start_failure)?;
            self.host.commit(generation.stats, &generation.modules);
            Ok(())
        });
        match outcome {
            Ok(()) => tracing::info!(
                "a tunnel device was built again: workers restarted to read the new one"
            ),
            Err(e) => tracing::error!("a tunnel device was built again, but {e}"),
        }
        self.refresh_view();
        true
    }

    /// Carries out one action if the revision in force satisfies `if_match`; otherwise
    /// refuses it with `precondition_failed` and changes nothing.
    pub fn handle_if(
        &mut self,
        action: Action,
        if_match: Option<&IfMatch>,
    ) -> Result<Reply, ControlError> {
        if let Some(condition) = if_match
            && !condition.admits(self.revision)
        {
            return Err(ControlError::new(
                ErrorCode::PreconditionFailed,
                format!(
                    "the configuration changed since you read it (If-Match {}, now {}): \
                     nothing was changed; read it again and redo your change",
                    match condition {
                        IfMatch::Any => "*".to_owned(),
                        IfMatch::Tags(t) => t.join(", "),
                    },
                    self.revision.etag()
                ),
            ));
        }
        self.handle(action)
    }

    /// The revision in force.
    pub fn revision(&self) -> Revision {
        self.revision
    }

    /// Raises the revision and stores it, before the change it numbers is stored (see
    /// [`StateDir::save_revision`]).
    fn raise_revision(&mut self) -> Result<(), ControlError> {
        let next = self.revision.next();
        self.state
            .save_revision(next)
            .map_err(storage("the revision"))?;
        self.revision = next;
        Ok(())
    }

    /// Carries out one action.
    pub fn handle(&mut self, action: Action) -> Result<Reply, ControlError> {
        match action {
            Action::ReplaceConfig(doc) => {
                self.apply(doc)?;
                Ok(Reply::Document(self.view.load().document.clone()))
            }
            Action::PutPeer(peer) => {
                let name = peer.name.clone();
                self.apply(edit::put_peer(&self.doc, peer))?;
                let stored = self.doc.peers.iter().find(|p| p.name == name);
                Ok(Reply::Peer(
                    stored.cloned().ok_or_else(|| edit::no_peer(&name))?,
                ))
            }
            Action::DeletePeer(name) => {
                self.apply(edit::delete_peer(&self.doc, &name)?)?;
                Ok(Reply::Deleted)
            }
            Action::PutVip(vip) => {
                let address = vip.address;
                self.apply(edit::put_vip(&self.doc, vip))?;
                let stored = self.doc.vips.iter().find(|v| v.address == address);
                Ok(Reply::Vip(
                    stored.cloned().ok_or_else(|| edit::no_vip(address))?,
                ))
            }
            Action::DeleteVip(address) => {
                self.apply(edit::delete_vip(&self.doc, address)?)?;
                Ok(Reply::Deleted)
            }
            Action::PutPlugin { name, bytes } => self.put_plugin(&name, &bytes),
            Action::DeletePlugin(name) => self.delete_plugin(&name),
            Action::Reseed => self.reseed(),
            Action::FleetApply(state) => Ok(self.apply_fleet(*state)),
        }
    }

    /// Numbers the change about to be stored: without a fleet, the next local revision; in
    /// fleet mode, the fleet revision `change` got when committed to the fleet store as a
    /// compare-and-swap on the revision in force (stale: `precondition_failed`; store
    /// unreachable: `unavailable`; nothing changed either way).
    fn next_revision(&mut self, change: impl FnOnce() -> FleetChange) -> Result<(), ControlError> {
        let Some(mode) = &self.fleet else {
            return self.raise_revision();
        };
        let next = mode
            .store
            .commit(self.revision, change())
            .map_err(|e| match e {
                FleetWriteError::Stale { expected } => ControlError::new(
                    ErrorCode::PreconditionFailed,
                    format!(
                        "the fleet configuration changed since revision {expected} (another \
                         gateway wrote it): nothing was changed; read it again and redo your \
                         change"
                    ),
                ),
                FleetWriteError::Unreachable(why) => ControlError::new(
                    ErrorCode::Unavailable,
                    format!(
                        "the fleet store (etcd) is unreachable ({why}): nothing was changed; \
                         writes are refused until it is back, forwarding goes on with fleet \
                         revision {}",
                        self.revision
                    ),
                ),
            })?;
        self.state
            .save_revision(next)
            .map_err(storage("the revision"))?;
        self.revision = next;
        if let Some(mode) = &mut self.fleet {
            mode.status.applied = next;
            mode.status.latest = mode.status.latest.max(next);
            mode.status.error = None;
        }
        Ok(())
    }

    /// Fleet mode: applies a fleet revision read from the store if it is newer than the one
    /// in force; one that fails this host's checks leaves the last good one in force and
    /// is reported in the fleet status.
    fn apply_fleet(&mut self, fleet_state: FleetState) -> Reply {
        let Some(mode) = &mut self.fleet else {
            return Reply::FleetApplied { applied: false };
        };
        let revision = fleet_state.revision;
        mode.status.latest = mode.status.latest.max(revision);
        if revision <= self.revision {
            if revision == self.revision {
                mode.status.error = None;
            }
            self.refresh_view();
            return Reply::FleetApplied { applied: false };
        }
        let outcome = self.apply_fleet_state(&fleet_state);
        let mode = self.fleet.as_mut().expect("fleet mode");
        let applied = match outcome {
            Ok(()) => {
                tracing::info!("fleet revision {revision} applied");
                mode.status.applied = revision;
                mode.status.error = None;
                true
            }
            Err(e) => {
                let message = format!("fleet revision {revision} is not applied here: {e}");
                tracing::error!("{message}; fleet revision {} stays in force", self.revision);
                mode.status.error = Some(message);
                false
            }
        };
        self.refresh_view();
        Reply::FleetApplied { applied }
    }

    /// Validates, builds, stores and publishes a fleet revision (the same checks and hot
    /// swap as a local edit).
    fn apply_fleet_state(&mut self, fleet_state: &FleetState) -> Result<(), ControlError> {
        let new = fleet::for_host(&fleet_state.document, &self.doc.gateway);
        config::validate(&new).map_err(ControlError::invalid)?;
        if new.gateway != self.doc.gateway {
            config::host::check_host_as(&new, self.fleet_member).map_err(ControlError::invalid)?;
        }
        let lookup = |name: &str| -> Option<Vec<u8>> {
            fleet_state.plugins.get(name).map(|p| p.bytes.to_vec())
        };
        let generation = self
            .host
            .build(&new, &lookup, new.gateway.workers as usize)
            .map_err(ControlError::from_build)?;
        sync_plugins(&self.state, fleet_state).map_err(storage("the fleet's plugins"))?;
        self.state
            .save_revision(fleet_state.revision)
            .and_then(|()| self.state.save_config(&new))
            .map_err(storage("the configuration"))?;
        let previous = self.revision;
        self.revision = fleet_state.revision;
        if let Err(e) = self.publish(&new, generation) {
            let doc = self.doc.clone();
            if let Err(s) = self
                .state
                .save_config(&doc)
                .and_then(|()| self.state.save_revision(previous))
            {
                tracing::error!("cannot store the previous configuration back: {s}");
            }
            self.revision = previous;
            return Err(self.restore(e));
        }
        Ok(())
    }

    /// Builds the filters of `doc` off the data path; `replacing` stands in for one stored
    /// module (an upload being checked against its bindings).
    fn build(
        &self,
        doc: &Document,
        replacing: Option<(&str, &[u8])>,
    ) -> Result<Generation, ControlError> {
        let lookup = |name: &str| -> Option<Vec<u8>> {
            match replacing {
                Some((n, bytes)) if n == name => Some(bytes.to_vec()),
                _ => stored_module(&self.state, name),
            }
        };
        self.host
            .build(doc, &lookup, doc.gateway.workers as usize)
            .map_err(ControlError::from_build)
    }

    /// Validates, builds, persists and publishes a new document.
    fn apply(&mut self, new: Document) -> Result<(), ControlError> {
        config::validate(&new).map_err(ControlError::invalid)?;
        if new.gateway != self.doc.gateway {
            config::host::check_host_as(&new, self.fleet_member).map_err(ControlError::invalid)?;
        }
        let generation = self.build(&new, None)?;
        self.next_revision(|| FleetChange::Document(fleet::fleet_part(&new)))?;
        self.state
            .save_config(&new)
            .map_err(storage("the configuration"))?;
        if let Err(e) = self.publish(&new, generation) {
            let previous = self.doc.clone();
            if let Err(s) = self.state.save_config(&previous) {
                tracing::error!("cannot store the previous configuration back: {s}");
            }
            return Err(self.restore(e));
        }
        Ok(())
    }

    /// Hands a built generation and its document to the reconciler and the data path.
    fn publish(&mut self, doc: &Document, generation: Generation) -> Result<(), ControlError> {
        if let Some(k) = &self.kernel {
            k.follow(doc);
        }
        let restarted = self
            .datapath
            .apply(doc, generation.filters)
            .map_err(start_failure)?;
        if restarted {
            tracing::info!("workers restarted for the new [gateway] section");
        }
        self.host.commit(generation.stats, &generation.modules);
        self.doc = doc.clone();
        self.generation += 1;
        self.refresh_view();
        Ok(())
    }

    /// After a failed publish: puts the document in force (`self.doc`, unchanged) back
    /// onto the data path and the reconciler, and says so in the error.
    fn restore(&mut self, failed: ControlError) -> ControlError {
        let previous = self.doc.clone();
        let outcome = self
            .build(&previous, None)
            .and_then(|g| self.publish(&previous, g));
        let mut failed = failed;
        match outcome {
            Ok(()) => failed
                .message
                .push_str("; the previous configuration is back in force"),
            Err(e) => {
                tracing::error!("restoring the previous configuration failed too: {e}");
                failed.message.push_str(&format!(
                    "; restoring the previous configuration failed too ({e}): the data path is \
                     stopped until a configuration is applied"
                ));
            }
        }
        self.refresh_view();
        failed
    }

    fn put_plugin(&mut self, name: &str, bytes: &[u8]) -> Result<Reply, ControlError> {
        if !config::validate::is_valid_plugin_name(name) {
            return Err(ControlError::new(
                ErrorCode::BadRequest,
                format!("{name:?} is not a valid plugin name"),
            )
            .at("name"));
        }
        let info = self.host.check(bytes).map_err(|refusal| {
            ControlError::new(
                ErrorCode::PluginRejected,
                format!("the module is refused: {refusal}"),
            )
        })?;
        let bound = !edit::bindings_of(&self.doc, name).is_empty();
        let doc = self.doc.clone();
        let generation = if bound {
            Some(self.build(&doc, Some((name, bytes)))?)
        } else {
            None
        };
        let previous = self.state.plugin_bytes(name).ok();
        let info = serde_json::to_value(&info).unwrap_or_default();
        self.next_revision(|| {
            FleetChange::PutPlugin(FleetPlugin {
                record: PluginRecord {
                    name: name.to_owned(),
                    sha256: crate::store::sha256_hex(bytes),
                    size: bytes.len() as u64,
                    uploaded_at: std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| d.as_secs()),
                    info: info.clone(),
                },
                bytes: Arc::new(bytes.to_vec()),
            })
        })?;
        let record = self
            .state
            .put_plugin(name, bytes, info)
            .map_err(storage("the plugin"))?;
        if let Some(generation) = generation
            && let Err(e) = self.publish(&doc, generation)
        {
            let put_back = match previous {
                Some((old, old_bytes)) => self.state.put_plugin(name, &old_bytes, old.info),
                None => self.state.delete_plugin(name),
            };
            if let Err(s) = put_back {
                tracing::error!("cannot store the previous module of {name:?} back: {s}");
            }
            return Err(self.restore(e));
        }
        self.refresh_view();
        Ok(Reply::Plugin(record))
    }

    fn delete_plugin(&mut self, name: &str) -> Result<Reply, ControlError> {
        let bound = edit::bindings_of(&self.doc, name);
        if !bound.is_empty() {
            let list: Vec<String> = bound
                .iter()
                .map(|(field, vip, position)| format!("{field} ({vip} position {position})"))
                .collect();
            return Err(ControlError::new(
                ErrorCode::Conflict,
                format!(
                    "plugin {name:?} is bound by {}; remove it from those chains first",
                    list.join(", ")
                ),
            )
            .at(bound[0].0.clone()));
        }
        if !self
            .state
            .plugins()
            .map_err(storage("the plugin index"))?
            .contains_key(name)
        {
            return Err(ControlError::new(
                ErrorCode::NotFound,
                format!("no plugin named {name:?}; GET /api/v1/plugins lists them"),
            ));
        }
        self.next_revision(|| FleetChange::DeletePlugin(name.to_owned()))?;
        match self.state.delete_plugin(name) {
            Ok(_) => {
                self.refresh_view();
                Ok(Reply::Deleted)
            }
            Err(StoreError::NoSuchPlugin(_)) => Err(ControlError::new(
                ErrorCode::NotFound,
                format!("no plugin named {name:?}; GET /api/v1/plugins lists them"),
            )),
            Err(e) => Err(storage("the plugin index")(e)),
        }
    }

    /// SIGHUP: an edited config file replaces the document; an unchanged one does nothing.
    fn reseed(&mut self) -> Result<Reply, ControlError> {
        if let Some(mode) = &self.fleet {
            return Err(ControlError::new(
                ErrorCode::BadRequest,
                format!(
                    "in fleet mode (fleet {}) the configuration comes from etcd: change it \
                     through the admin API of any gateway; the file is read at start only",
                    mode.status.name
                ),
            ));
        }
        let Some(path) = self.config_path.clone() else {
            return Err(ControlError::new(
                ErrorCode::BadRequest,
                "tungate was started without --config: there is no file to reload",
            ));
        };
        let text = std::fs::read(&path).map_err(|e| {
            ControlError::new(
                ErrorCode::InvalidConfig,
                format!("cannot read {}: {e}", path.display()),
            )
        })?;
        if self.state.seeded_by(&text).map_err(storage("the seed"))? {
            return Ok(Reply::Reseeded { replaced: false });
        }
        let doc = std::str::from_utf8(&text)
            .map_err(|e| e.to_string())
            .and_then(|t| config::parse_toml(t).map_err(|e| e.to_string()))
            .map_err(|e| {
                ControlError::new(ErrorCode::InvalidConfig, format!("{}: {e}", path.display()))
            })?;
        self.apply(doc)?;
        self.state.record_seed(&text).map_err(storage("the seed"))?;
        Ok(Reply::Reseeded { replaced: true })
    }

    fn refresh_view(&mut self) {
        let plugins = match self.state.plugins() {
            Ok(p) => p,
            Err(e) => {
                tracing::error!("{e}");
                BTreeMap::new()
            }
        };
        let links_down = self
            .kernel
            .as_ref()
            .map(KernelFollower::links_down)
            .unwrap_or_default();
        let not_ready = not_ready_reason(self.datapath.is_running(), &links_down);
        let before = self.view.load();
        if before.not_ready != not_ready {
            match &not_ready {
                Some(why) => tracing::warn!("not ready: {why}"),
                None => tracing::info!("ready again"),
            }
        }
        self.view.store(Arc::new(View {
            document: Arc::new(self.doc.clone()),
            plugins: Arc::new(plugins),
            bindings: self.host.stats_table(),
            generation: self.generation,
            revision: self.revision,
            ready: not_ready.is_none(),
            not_ready,
            filters: self.datapath.filter_progress(),
            io: self.datapath.io_path(),
            fleet: self.fleet.as_ref().map(|m| m.status.clone()),
        }));
        if before.ready != self.view.load().ready {
            for hook in self.readiness_hooks.lock().expect("readiness hooks").iter() {
                hook();
            }
        }
    }
}

/// Why a gateway is not ready (`/readyz`), `None` when it is: its data path does not run
/// with the document in force, or one of its ingress and egress interfaces cannot carry
/// packets. Plugins play no part: a quarantine is reported, but withdrawing a fleet's every
/// gateway for one plugin's fault would take the whole service down.
fn not_ready_reason(running: bool, links_down: &[tungate_netcfg::LinkDown]) -> Option<String> {
    let reasons: Vec<String> = (!running)
        .then(|| "the data path is not running with the configuration in force".to_owned())
        .into_iter()
        .chain(links_down.iter().map(ToString::to_string))
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::sha256_hex;
    use tungate_datapath::filter::FilterProgress;
    use tungate_plugin_host::test_wat;

    /// What the fake data path was asked, and whether its next apply fails.
    struct FakeState {
        applied: Vec<Document>,
        fail_next_apply: bool,
        running: bool,
        progress: Arc<FilterProgress>,
    }

    impl Default for FakeState {
        fn default() -> Self {
            FakeState {
                applied: Vec::new(),
                fail_next_apply: false,
                running: false,
                progress: tungate_datapath::filter::FilterSlots::new(1).progress(),
            }
        }
    }

    /// A data path that records every document it is given and fails on demand, like the
    /// real one whose restart fails: the document is taken, the workers are gone.
    #[derive(Clone, Default)]
    struct FakeForwarding(Arc<Mutex<FakeState>>);

    impl FakeForwarding {
        fn fail_next_apply(&self) {
            self.0.lock().unwrap().fail_next_apply = true;
        }

        fn last_applied(&self) -> Document {
            self.0.lock().unwrap().applied.last().cloned().unwrap()
        }
    }

    impl Forwarding for FakeForwarding {
        fn apply(
            &mut self,
            doc: &Document,
            _: Vec<WorkerFilters>,
        ) -> Result<bool, ForwardingError> {
            let mut s = self.0.lock().unwrap();
            s.applied.push(doc.clone());
            if std::mem::take(&mut s.fail_next_apply) {
                s.running = false;
                return Err(StartError::Spawn(std::io::Error::other("fake: no threads")).into());
            }
            let restarted = !s.running;
            s.running = true;
            Ok(restarted)
        }

        fn restart(&mut self, _: Vec<WorkerFilters>) -> Result<(), ForwardingError> {
            self.0.lock().unwrap().running = true;
            Ok(())
        }

        fn is_running(&self) -> bool {
            self.0.lock().unwrap().running
        }

        fn tunnel_devices_replaced(&self) -> bool {
            false
        }

        fn filter_progress(&self) -> Arc<FilterProgress> {
            self.0.lock().unwrap().progress.clone()
        }

        fn stop(self: Box<Self>) -> Result<(), ForwardingError> {
            self.0.lock().unwrap().running = false;
            Ok(())
        }
    }

    /// One peer serving one VIP whose chain binds plugin `p` (unpinned, so an upload of
    /// another module may replace it).
    const DOC: &str = r#"
        [gateway]
        address = "127.0.0.1"
        [[peers]]
        name = "rs1"
        address = "10.0.1.2"
        vips = ["192.0.2.10"]
        [[vips]]
        address = "192.0.2.10"
        [[vips.plugins]]
        plugin = "p"
    "#;

    /// A plane started from `DOC` in a fresh state directory under `dir`, with module
    /// `p` stored from a `--plugin` file, driving a fake data path and no reconciler.
    fn started(dir: &Path, p: &[u8]) -> (ControlPlane, FakeForwarding) {
        let config_path = dir.join("tungate.toml");
        std::fs::write(&config_path, DOC).unwrap();
        let plugin_path = dir.join("p.wasm");
        std::fs::write(&plugin_path, p).unwrap();
        let startup = Startup {
            state: StateDir::open(&dir.join("state")).unwrap(),
            config: Some(ConfigFile {
                path: config_path,
                text: DOC.as_bytes().to_vec(),
                doc: config::parse_toml(DOC).unwrap(),
            }),
            plugin_files: vec![plugin_path],
            limits: Limits::default(),
            fleet_name: None,
            fleet: None,
        };
        let fake = FakeForwarding::default();
        let given = fake.clone();
        let plane = ControlPlane::start_with(startup, move |doc, _, _, _| {
            let mut s = given.0.lock().unwrap();
            s.applied.push(doc.clone());
            s.running = true;
            drop(s);
            Ok((None, Box::new(given) as Box<dyn Forwarding>))
        })
        .unwrap();
        (plane, fake)
    }

    /// A fleet store in memory: commits move its revision by 5 (as etcd's moves with other
    /// keys too), it can be made unreachable, and another writer can move it.
    #[derive(Clone, Default)]
    struct FakeStore {
        revision: Arc<Mutex<u64>>,
        down: Arc<Mutex<bool>>,
    }

    impl FleetStore for FakeStore {
        fn commit(&self, expected: Revision, _: FleetChange) -> Result<Revision, FleetWriteError> {
            if *self.down.lock().unwrap() {
                return Err(FleetWriteError::Unreachable(
                    "fake: connection refused".into(),
                ));
            }
            let mut r = self.revision.lock().unwrap();
            if *r != expected.number() {
                return Err(FleetWriteError::Stale { expected });
            }
            *r += 5;
            Ok(Revision::new(*r))
        }

        fn seed(
            &self,
            _: Document,
            _: Vec<FleetPlugin>,
        ) -> Result<(FleetState, bool), FleetWriteError> {
            Err(FleetWriteError::Unreachable("fake: not seeded here".into()))
        }
    }

    /// A plane started in fleet mode on fleet revision 10 (`DOC`, module `p`).
    fn started_in_fleet(dir: &Path, store: &FakeStore) -> (ControlPlane, FleetState) {
        *store.revision.lock().unwrap() = 10;
        let fleet_state = fleet_state_of(DOC);
        let plane = start_in_fleet(dir, store, &fleet_state, Limits::default()).unwrap();
        (plane, fleet_state)
    }

    /// Fleet revision 10 holding `doc` (its fleet-wide part) and module `p`.
    fn fleet_state_of(doc: &str) -> FleetState {
        let p = module(1);
        FleetState {
            revision: Revision::new(10),
            document: fleet::fleet_part(&config::parse_toml(doc).unwrap()),
            plugins: BTreeMap::from([(
                "p".to_owned(),
                FleetPlugin {
                    record: PluginRecord {
                        name: "p".into(),
                        sha256: sha256_hex(&p),
                        size: p.len() as u64,
                        uploaded_at: 0,
                        info: serde_json::Value::Null,
                    },
                    bytes: Arc::new(p),
                },
            )]),
        }
    }

    /// Starts a fleet member (2 workers, `limits`) on the state directory under `dir`,
    /// reading `fleet_state` from `store`, with a fake data path and no reconciler.
    fn start_in_fleet(
        dir: &Path,
        store: &FakeStore,
        fleet_state: &FleetState,
        limits: Limits,
    ) -> Result<ControlPlane, StartupError> {
        let local = "[gateway]\naddress = \"127.0.0.1\"\nworkers = 2";
        let startup = Startup {
            state: StateDir::open(&dir.join("state")).unwrap(),
            config: Some(ConfigFile {
                path: dir.join("tungate.toml"),
                text: local.as_bytes().to_vec(),
                doc: config::parse_toml(local).unwrap(),
            }),
            plugin_files: Vec::new(),
            limits,
            fleet_name: None,
            fleet: Some(FleetStart {
                name: "f1".into(),
                store: Box::new(store.clone()),
                state: Ok(Some(fleet_state.clone())),
            }),
        };
        let fake = FakeForwarding::default();
        ControlPlane::start_with(startup, move |_, _, _, _| {
            fake.0.lock().unwrap().running = true;
            Ok((None, Box::new(fake) as Box<dyn Forwarding>))
        })
    }

    #[test]
    fn a_member_starting_on_a_fleet_revision_its_plugins_cannot_build_starts_on_the_cached_one() {
        let dir = tempfile::tempdir().unwrap();
        let store = FakeStore::default();
        // First start: fleet revision 10 (one binding × 2 workers) is applied and cached.
        let good = fleet_state_of(DOC);
        let limits = || Limits {
            max_instances: 2,
            ..Limits::default()
        };
        let plane = start_in_fleet(dir.path(), &store, &good, limits()).unwrap();
        assert_eq!(plane.view().load().revision, Revision::new(10));
        drop(plane);

        // Meanwhile the fleet moved to revision 11 with a second bound VIP: it passes this
        // host's checks, but 2 bindings × 2 workers overflow its pool of 2 instances.
        let mut refused = good.clone();
        refused.revision = Revision::new(11);
        let mut second = refused.document.vips[0].clone();
        second.address = "192.0.2.11".parse().unwrap();
        refused.document.vips.push(second.clone());
        refused.document.peers[0].vips.push(second.address);
        let plane = start_in_fleet(dir.path(), &store, &refused, limits())
            .expect("it starts on the cached revision instead of failing");
        let view = plane.view().load_full();
        assert!(view.ready);
        assert_eq!(view.revision, Revision::new(10));
        assert_eq!(view.document.vips.len(), 1, "the cached document runs");
        let status = view.fleet.clone().unwrap();
        assert_eq!(status.applied, Revision::new(10));
        assert_eq!(status.latest, Revision::new(11));
        let error = status.error.unwrap();
        assert!(
            error.starts_with("fleet revision 11 is not applied here")
                && error.contains("4 plugin instances (2 bindings × 2 workers)"),
            "{error}"
        );
        assert_eq!(plane.state.revision().unwrap(), Revision::new(10));
        drop(plane);

        // Without a cached revision to fall back on, the start fails with the build error.
        let empty = tempfile::tempdir().unwrap();
        let e = start_in_fleet(empty.path(), &store, &refused, limits())
            .err()
            .expect("nothing to start on");
        assert!(e.to_string().contains("plugin instances"), "{e}");
    }

    #[test]
    fn in_a_fleet_writes_are_compare_and_swaps_and_a_revision_this_host_refuses_is_reported() {
        let dir = tempfile::tempdir().unwrap();
        let store = FakeStore::default();
        let (mut plane, fleet_state) = started_in_fleet(dir.path(), &store);
        let view = plane.view().load_full();
        assert_eq!(view.revision, Revision::new(10));
        assert_eq!(view.document.peers.len(), 1, "the fleet's document");
        assert_eq!(view.document.gateway.workers, 2, "the host's own field");
        assert_eq!(
            plane.state.plugin_bytes("p").unwrap().1,
            *fleet_state.plugins["p"].bytes
        );

        // A write is committed fleet-wide first; its revision is the store's.
        let mut peer = view.document.peers[0].clone();
        peer.name = "rs2".into();
        peer.address = "10.0.1.3".parse().unwrap();
        peer.vips.clear();
        plane
            .handle_if(
                Action::PutPeer(peer.clone()),
                Some(&IfMatch::parse("\"10\"")),
            )
            .unwrap();
        assert_eq!(plane.revision(), Revision::new(15));
        assert_eq!(plane.state.revision().unwrap(), Revision::new(15));

        // Another gateway moved the fleet on: this one's write is stale, nothing changes.
        *store.revision.lock().unwrap() = 40;
        peer.name = "rs3".into();
        peer.address = "10.0.1.4".parse().unwrap();
        let e = plane
            .handle_if(
                Action::PutPeer(peer.clone()),
                Some(&IfMatch::parse("\"15\"")),
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PreconditionFailed, "{e}");
        assert_eq!(plane.revision(), Revision::new(15));
        assert!(plane.doc.peers.iter().all(|p| p.name != "rs3"));

        // The store unreachable: unavailable, nothing changes, the data path runs on.
        *store.down.lock().unwrap() = true;
        let e = plane.handle(Action::DeletePlugin("p".into())).unwrap_err();
        assert_eq!(
            e.code,
            ErrorCode::Conflict,
            "bound: refused before the store"
        );
        let e = plane.handle(Action::PutPeer(peer.clone())).unwrap_err();
        assert_eq!(e.code, ErrorCode::Unavailable, "{e}");
        assert!(e.message.contains("fake: connection refused"), "{e}");
        assert_eq!(plane.revision(), Revision::new(15));
        assert!(plane.view().load().ready);

        // A fleet revision this host cannot apply (its GIP is not here): the last good one
        // stays, the refusal is reported.
        let mut elsewhere = fleet_state.clone();
        elsewhere.revision = Revision::new(40);
        elsewhere.document.gateway.address = Some("203.0.113.77".parse().unwrap());
        assert_eq!(
            plane
                .handle(Action::FleetApply(Box::new(elsewhere)))
                .unwrap(),
            Reply::FleetApplied { applied: false }
        );
        let view = plane.view().load_full();
        let status = view.fleet.clone().unwrap();
        assert_eq!(status.applied, Revision::new(15));
        assert_eq!(status.latest, Revision::new(40));
        let error = status.error.unwrap();
        assert!(
            error.starts_with("fleet revision 40 is not applied here")
                && error.contains("203.0.113.77 is not an address of this host"),
            "{error}"
        );
        assert_eq!(view.revision, Revision::new(15));
        assert_eq!(
            view.document.gateway.address,
            Some(std::net::Ipv4Addr::LOCALHOST)
        );

        // The next good revision is applied (and an old one ignored).
        let mut next = fleet_state.clone();
        next.revision = Revision::new(45);
        next.document.peers[0].address = "10.0.1.9".parse().unwrap();
        assert_eq!(
            plane.handle(Action::FleetApply(Box::new(next))).unwrap(),
            Reply::FleetApplied { applied: true }
        );
        assert_eq!(
            plane
                .handle(Action::FleetApply(Box::new(fleet_state)))
                .unwrap(),
            Reply::FleetApplied { applied: false }
        );
        let view = plane.view().load_full();
        assert_eq!(view.revision, Revision::new(45));
        assert_eq!(view.fleet.clone().unwrap().error, None);
        assert_eq!(view.document.peers[0].address.to_string(), "10.0.1.9");
        assert_eq!(
            view.document.peers.len(),
            1,
            "the fleet's document replaced ours"
        );
        assert_eq!(view.document.gateway.workers, 2);
        assert_eq!(plane.state.revision().unwrap(), Revision::new(45));

        // SIGHUP does not reload the file in a fleet.
        assert_eq!(
            plane.handle(Action::Reseed).unwrap_err().code,
            ErrorCode::BadRequest
        );
    }

    fn module(tos: u8) -> Vec<u8> {
        test_wat::plugin(&test_wat::drop_tos(tos))
    }

    #[test]
    fn a_failed_apply_puts_the_previous_document_back_in_the_store_the_view_and_the_data_path() {
        let dir = tempfile::tempdir().unwrap();
        let (mut plane, fake) = started(dir.path(), &module(1));
        let before = plane.view().load().document.clone();
        assert!(plane.view().load().ready);

        let mut changed = (*before).clone();
        changed.peers[0].address = "10.0.1.9".parse().unwrap();
        fake.fail_next_apply();
        let e = plane
            .handle(Action::ReplaceConfig(changed.clone()))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::Internal, "{e}");
        assert!(
            e.message.contains("fake: no threads")
                && e.message
                    .ends_with("; the previous configuration is back in force"),
            "{e}"
        );
        assert_eq!(plane.state.config().unwrap().as_ref(), Some(&*before));
        let view = plane.view().load_full();
        assert_eq!(*view.document, *before);
        assert!(view.ready, "the data path runs the previous document again");
        assert_eq!(fake.last_applied(), *before);

        // The next change goes through as if nothing had failed.
        plane
            .handle(Action::ReplaceConfig(changed.clone()))
            .unwrap();
        assert_eq!(plane.state.config().unwrap(), Some(changed.clone()));
        assert_eq!(*plane.view().load().document, changed);
        assert_eq!(fake.last_applied(), changed);
    }

    #[test]
    fn a_readiness_change_calls_the_hooks_once_after_publishing_and_nothing_else_does() {
        let dir = tempfile::tempdir().unwrap();
        let (mut plane, fake) = started(dir.path(), &module(1));
        let view = plane.view();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let v = view.clone();
        plane
            .readiness_hooks()
            .lock()
            .unwrap()
            .push(Box::new(move || s.lock().unwrap().push(v.load().ready)));
        plane.refresh_view();
        assert!(seen.lock().unwrap().is_empty(), "ready before and after");
        fake.0.lock().unwrap().running = false;
        plane.refresh_view();
        plane.refresh_view();
        assert_eq!(
            *seen.lock().unwrap(),
            [false],
            "called once, the view already new"
        );
        fake.0.lock().unwrap().running = true;
        plane.refresh_view();
        assert_eq!(*seen.lock().unwrap(), [false, true]);
    }

    #[test]
    fn a_failed_upload_apply_puts_the_previous_module_back() {
        let dir = tempfile::tempdir().unwrap();
        let (old, new) = (module(1), module(2));
        let (mut plane, fake) = started(dir.path(), &old);
        let sha = |view: &View| view.bindings.snapshot()[0].sha256.clone();
        assert_eq!(sha(&plane.view().load()), sha256_hex(&old));

        fake.fail_next_apply();
        let e = plane
            .handle(Action::PutPlugin {
                name: "p".into(),
                bytes: new.clone(),
            })
            .unwrap_err();
        assert!(
            e.message
                .ends_with("; the previous configuration is back in force"),
            "{e}"
        );
        let (record, bytes) = plane.state.plugin_bytes("p").unwrap();
        assert_eq!(bytes, old, "the stored module is the previous one");
        assert_eq!(record.sha256, sha256_hex(&old));
        let view = plane.view().load_full();
        assert_eq!(view.plugins["p"].sha256, sha256_hex(&old));
        assert_eq!(
            sha(&view),
            sha256_hex(&old),
            "the binding runs the old module"
        );
        assert!(view.ready);

        // Uploaded again without a failure, the new module is stored and bound.
        match plane.handle(Action::PutPlugin {
            name: "p".into(),
            bytes: new.clone(),
        }) {
            Ok(Reply::Plugin(r)) => assert_eq!(r.sha256, sha256_hex(&new)),
            other => panic!("{other:?}"),
        }
        assert_eq!(plane.state.plugin_bytes("p").unwrap().1, new);
        assert_eq!(sha(&plane.view().load()), sha256_hex(&new));
    }

    #[test]
    fn every_change_raises_the_revision_a_stale_if_match_changes_nothing_and_it_survives_a_restart()
    {
        let dir = tempfile::tempdir().unwrap();
        let (mut plane, _fake) = started(dir.path(), &module(1));
        let r1 = Revision::new(1);
        assert_eq!(plane.revision(), r1, "seeding a fresh state is revision 1");
        assert_eq!(plane.view().load().revision, r1);

        let before = plane.view().load().document.clone();
        let mut changed = (*before).clone();
        changed.peers[0].address = "10.0.1.9".parse().unwrap();
        let stale = IfMatch::parse("\"0\"");
        let e = plane
            .handle_if(Action::ReplaceConfig(changed.clone()), Some(&stale))
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PreconditionFailed, "{e}");
        assert!(e.message.contains("now \"1\""), "{e}");
        assert_eq!(plane.revision(), r1);
        assert_eq!(*plane.view().load().document, *before);
        assert_eq!(plane.state.config().unwrap().as_ref(), Some(&*before));
        assert_eq!(plane.state.revision().unwrap(), r1);

        let current = IfMatch::parse(&r1.etag());
        plane
            .handle_if(Action::ReplaceConfig(changed.clone()), Some(&current))
            .unwrap();
        assert_eq!(plane.revision(), Revision::new(2));
        assert_eq!(plane.view().load().revision, Revision::new(2));
        // The old tag is stale now.
        let e = plane
            .handle_if(
                Action::DeleteVip("192.0.2.10".parse().unwrap()),
                Some(&current),
            )
            .unwrap_err();
        assert_eq!(e.code, ErrorCode::PreconditionFailed);
        assert_eq!(plane.view().load().document.vips.len(), 1);

        // Plugins are part of the state too; a refused change raises nothing.
        plane
            .handle(Action::PutPlugin {
                name: "q".into(),
                bytes: module(3),
            })
            .unwrap();
        assert_eq!(plane.revision(), Revision::new(3));
        plane.handle(Action::DeletePlugin("q".into())).unwrap();
        assert_eq!(plane.revision(), Revision::new(4));
        let e = plane.handle(Action::DeletePlugin("q".into())).unwrap_err();
        assert_eq!(e.code, ErrorCode::NotFound);
        assert_eq!(plane.revision(), Revision::new(4));
        assert_eq!(plane.view().load().revision, Revision::new(4));

        // A restart from the same (unchanged) file keeps the stored state and its revision.
        drop(plane);
        let (plane, _fake) = started(dir.path(), &module(1));
        assert_eq!(plane.revision(), Revision::new(4));
        assert_eq!(*plane.view().load().document, changed);
    }

    #[test]
    fn readiness_names_every_reason_and_ignores_nothing_else() {
        use tungate_netcfg::{LinkDown, LinkFault, LinkRole};
        assert_eq!(not_ready_reason(true, &[]), None);
        assert_eq!(
            not_ready_reason(false, &[]).as_deref(),
            Some("the data path is not running with the configuration in force")
        );
        let egress = LinkDown {
            role: LinkRole::Egress,
            name: "eth1".into(),
            fault: LinkFault::NoCarrier,
        };
        assert_eq!(
            not_ready_reason(true, std::slice::from_ref(&egress)).as_deref(),
            Some("egress interface eth1 is down (no carrier)")
        );
        let ingress = LinkDown {
            role: LinkRole::Ingress,
            name: "eth0".into(),
            fault: LinkFault::Missing,
        };
        assert_eq!(
            not_ready_reason(false, &[ingress, egress]).as_deref(),
            Some(
                "the data path is not running with the configuration in force; ingress \
                 interface eth0 does not exist; egress interface eth1 is down (no carrier)"
            )
        );
    }
}
