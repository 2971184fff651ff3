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
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use crossbeam_channel::RecvTimeoutError;

use super::edit;
use super::error::{ControlError, ErrorCode};
use super::kernel::KernelFollower;
use super::{Action, NetworkStatus, Reply, Request, SharedView, View};
use crate::store::{StateDir, StoreError};
use tungate_config::{self as config, Document};
use tungate_datapath::counters::Counters;
use tungate_datapath::{Datapath, StartError};
use tungate_netcfg::IpipDropTable;
use tungate_plugin_host::{Generation, Limits, PluginHost};

/// The netcfg state file inside the state directory.
pub const NETCFG_STATE_FILE: &str = "netcfg-gateway.json";

/// How often, between requests, the control thread checks whether a kernel tunnel device
/// was replaced.
pub const DEVICE_CHECK_INTERVAL: Duration = Duration::from_secs(1);

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
}

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// A bad configuration, flag or plugin file (exit status 2).
    #[error("{0}")]
    BadConfig(String),
    /// Something failed on this host (exit status 1).
    #[error("{0}")]
    Failed(String),
}

/// The control plane's state; runs on the control thread.
pub struct ControlPlane {
    state: StateDir,
    config_path: Option<PathBuf>,
    host: PluginHost,
    datapath: Datapath,
    /// `userspace` mode's nftables drop table, following the data path (declared after
    /// it, so that dropping the plane stops the workers before the table goes).
    drop_table: IpipDropTable,
    counters: Arc<Counters>,
    kernel: Option<KernelFollower>,
    doc: Document,
    generation: u64,
    view: SharedView,
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
fn store_plugin_file(host: &PluginHost, state: &StateDir, path: &PathBuf) -> Result<(), String> {
    let shown = path.display();
    let name = path
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|n| config::validate::is_valid_plugin_name(n))
        .ok_or_else(|| {
            format!(
                "--plugin {shown}: the file name (less .wasm) must be a valid plugin name: \
                 1 to 64 of A-Z a-z 0-9 . _ - (not starting with '.')"
            )
        })?;
    let bytes = std::fs::read(path).map_err(|e| format!("--plugin {shown}: cannot read: {e}"))?;
    let info = host
        .check(&bytes)
        .map_err(|e| format!("--plugin {shown}: refused: {e}"))?;
    let same = state
        .plugins()
        .map_err(|e| e.to_string())?
        .get(name)
        .is_some_and(|r| r.sha256 == info.sha256);
    if !same {
        let info = serde_json::to_value(&info).unwrap_or_default();
        state
            .put_plugin(name, &bytes, info)
            .map_err(|e| format!("--plugin {shown}: cannot store it: {e}"))?;
        tracing::info!("stored plugin {name:?} from {shown}");
    }
    Ok(())
}

/// Maps a data-path (re)start failure: configuration mismatches name their field.
fn start_failure(e: StartError) -> ControlError {
    let message = format!("the data path cannot run this configuration: {e}");
    match e {
        StartError::NoTunnel(_) => {
            ControlError::new(ErrorCode::InvalidConfig, message).at("gateway.decap")
        }
        StartError::NoIngress(_) => {
            ControlError::new(ErrorCode::InvalidConfig, message).at("gateway.ingress_interface")
        }
        _ => ControlError::internal(message),
    }
}

fn storage(what: &str) -> impl FnOnce(StoreError) -> ControlError + '_ {
    move |e| ControlError::internal(format!("cannot store {what}: {e}"))
}

impl ControlPlane {
    /// Seeds the state, builds the filters and starts the data path (and, for kernel
    /// decap, the tunnels first).
    pub fn start(startup: Startup) -> Result<ControlPlane, StartupError> {
        let Startup {
            state,
            config,
            plugin_files,
            limits,
        } = startup;
        let failed = |e: String| StartupError::Failed(e);
        let host = PluginHost::new(limits).map_err(|e| failed(e.to_string()))?;
        for path in &plugin_files {
            store_plugin_file(&host, &state, path).map_err(StartupError::BadConfig)?;
        }
        let stored = state
            .config()
            .map_err(|e| StartupError::BadConfig(e.to_string()))?;
        let config_path = config.as_ref().map(|f| f.path.clone());
        let root = state.root().display().to_string();
        // The seeding rule: a file seeds an empty state; the same file again keeps the
        // stored document (with its API changes); an edited file replaces it.
        let (doc, seed_text) = match (config, stored) {
            (Some(file), Some(stored))
                if state
                    .seeded_by(&file.text)
                    .map_err(|e| failed(e.to_string()))? =>
            {
                tracing::info!(
                    "{} is unchanged since it seeded {root}: the stored configuration (with \
                     its API changes) is in force",
                    file.path.display()
                );
                (stored, None)
            }
            (Some(file), _) => (file.doc, Some(file.text)),
            (None, Some(stored)) => (stored, None),
            (None, None) => {
                return Err(StartupError::BadConfig(format!(
                    "no configuration: give --config FILE (nothing is stored in {root} yet)"
                )));
            }
        };
        let source = if seed_text.is_some() {
            "the configuration file".to_owned()
        } else {
            format!("the stored configuration {root}/config.json")
        };
        config::validate(&doc)
            .map_err(|e| StartupError::BadConfig(format!("{source} is invalid:\n{e}")))?;
        config::host::check_host(&doc).map_err(|e| {
            StartupError::BadConfig(format!("{source} does not fit this host:\n{e}"))
        })?;
        let generation = host
            .build(
                &doc,
                &|name: &str| stored_module(&state, name),
                doc.gateway.workers as usize,
            )
            .map_err(|e| StartupError::BadConfig(format!("{source}: {e}")))?;
        if let Some(text) = &seed_text {
            state
                .save_config(&doc)
                .and_then(|()| state.record_seed(text))
                .map_err(|e| failed(e.to_string()))?;
        }
        let counters = Arc::new(Counters::new(doc.gateway.workers as usize));
        let kernel =
            KernelFollower::start(&doc, state.root().join(NETCFG_STATE_FILE)).map_err(failed)?;
        let datapath =
            Datapath::start_with_filters(&doc, counters.clone(), Some(generation.filters))
                .map_err(|e| failed(format!("cannot start the data path: {e}")))?;
        let mut drop_table = IpipDropTable::new();
        drop_table
            .follow(datapath.userspace_ingress())
            .map_err(|e| failed(format!("cannot start the data path: {e}")))?;
        host.commit(generation.stats, &generation.modules);
        let filters = datapath.filter_slots().progress();
        let doc_for_view = doc.clone();
        let mut plane = ControlPlane {
            state,
            config_path,
            host,
            datapath,
            drop_table,
            counters,
            kernel: Some(kernel),
            doc,
            generation: 1,
            view: Arc::new(ArcSwap::from_pointee(View {
                document: Arc::new(doc_for_view.clone()),
                plugins: Arc::default(),
                bindings: Arc::default(),
                generation: 0,
                ready: false,
                filters,
            })),
        };
        plane.refresh_view();
        Ok(plane)
    }

    /// Where readers find the current view.
    pub fn view(&self) -> SharedView {
        self.view.clone()
    }

    /// The netcfg reconciler's progress: whether LD-OUT's networking is as configured.
    pub fn network(&self) -> Option<NetworkStatus> {
        self.kernel.as_ref().map(KernelFollower::subscribe)
    }

    /// The data path's counters (they outlive worker restarts).
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// The state directory.
    pub fn state_dir(&self) -> &StateDir {
        &self.state
    }

    /// Serves requests until every sender is gone, then stops the data path and the
    /// reconciler. Returns an error message if the data path did not stop cleanly.
    /// Between requests it checks every [`DEVICE_CHECK_INTERVAL`] whether a kernel tunnel
    /// device was replaced (see [`Self::follow_tunnel_devices`]).
    pub fn run(mut self, requests: crossbeam_channel::Receiver<Request>) -> Result<(), String> {
        let mut next_check = Instant::now() + DEVICE_CHECK_INTERVAL;
        loop {
            match requests.recv_deadline(next_check) {
                Ok(Request { action, reply }) => {
                    let outcome = self.handle(action);
                    if let Err(e) = &outcome {
                        tracing::info!("refused: {e}");
                    }
                    let _ = reply.send(outcome);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
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
        self.datapath.stop();
        self.drop_table.follow(None).map_err(|e| e.to_string())
    }

    /// Installs, moves or removes the drop table so that it matches the data path: present
    /// exactly while the workers run in `userspace` mode, on the interface they read.
    fn follow_drop_table(&mut self) -> Result<(), ControlError> {
        self.drop_table
            .follow(self.datapath.userspace_ingress())
            .map_err(|e| {
                ControlError::internal(format!("the data path cannot run this configuration: {e}"))
            })
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
            let restarted = self
                .datapath
                .restart_with_filters(generation.filters)
                .map_err(start_failure);
            let followed = self.follow_drop_table();
            restarted?;
            followed?;
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
        }
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
            config::host::check_host(&new).map_err(ControlError::invalid)?;
        }
        let generation = self.build(&new, None)?;
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
        let applied = self
            .datapath
            .apply_with_filters(doc, Some(generation.filters))
            .map_err(start_failure);
        // Also after a failed restart, which leaves the workers (and so the table) gone.
        let followed = self.follow_drop_table();
        let restarted = applied?;
        followed?;
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
        self.view.store(Arc::new(View {
            document: Arc::new(self.doc.clone()),
            plugins: Arc::new(plugins),
            bindings: self.host.stats_table(),
            generation: self.generation,
            ready: self.datapath.is_running(),
            filters: self.datapath.filter_slots().progress(),
        }));
    }
}
