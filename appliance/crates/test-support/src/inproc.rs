//! tungate's gateway run in-process inside the `gw` namespace of a [`Topology`], wired like
//! production: the same [`ControlPlane`] that `tungate run` starts (state directory seeded
//! from a configuration file, filters built, netcfg follower and data path started), on its
//! own control thread, changed only through [`Action`]s. For tests and benchmarks that read
//! the plugin statistics and counters of the process itself.
//!
//! The control plane is started on a thread that entered `gw`, so every thread it makes
//! (control, workers, resolver, netcfg) and its sockets and nftables table live there (never
//! in the host's own namespace); it is stopped when the gateway is stopped or dropped, also
//! when a test fails.

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::time::Duration;

use tungate_config::{Document, parse_toml};
use tungate_control::ConfigFile;
use tungate_control::store::StateDir;
use tungate_control::{Action, Control, ControlPlane, SharedView, Startup};
use tungate_datapath::counters::{Counters, Snapshot};
use tungate_plugin_host::{BindingSnapshot, Limits, ModuleInfo, PluginHost, Refusal};

use crate::topology::{GIP, RIP, Topology};
use crate::wait::until;

/// How long a published filter generation may take to reach every worker (they switch
/// between batches and wake at least every 100 ms).
const FILTERS_IN_FORCE: Duration = Duration::from_secs(10);

/// A gateway in `gw`: its control plane and what readers see of it.
pub struct InProcessGateway {
    control: Option<Control>,
    view: SharedView,
    counters: Arc<Counters>,
    checker: PluginHost,
    _state: tempfile::TempDir,
}

impl InProcessGateway {
    /// Starts the gateway in `t.gw` for peer `rs1` (RIP) serving `vips`, with `workers`
    /// workers and the given plugin limits, as `tungate run --config FILE` does.
    pub fn start(t: &Topology, vips: &[Ipv4Addr], workers: u32, limits: Limits) -> Self {
        let state = tempfile::tempdir().expect("a temporary directory");
        let path = state.path().join("tungate.toml");
        let text = Self::document_text(vips, workers, "");
        std::fs::write(&path, &text).expect("write the configuration file");
        let config = ConfigFile {
            path,
            text: text.into_bytes(),
            doc: Self::document(vips, workers, ""),
        };
        let root = state.path().join("state");
        let checker = PluginHost::new(limits.clone()).expect("plugin host");
        let (control, counters) = t.gw.run(move || {
            let state = StateDir::open(&root)
                .unwrap_or_else(|e| panic!("state directory {}: {e}", root.display()));
            let plane = ControlPlane::start(Startup {
                state,
                config: Some(config),
                plugin_files: Vec::new(),
                limits,
                fleet_name: None,
                fleet: None,
            })
            .unwrap_or_else(|e| panic!("the control plane does not start in gw: {e}"));
            let counters = plane.counters();
            let control = Control::spawn(plane).expect("the control thread starts");
            (control, counters)
        });
        InProcessGateway {
            view: control.view(),
            control: Some(control),
            counters,
            checker,
            _state: state,
        }
    }

    /// The configuration text: peer `rs1` (RIP) serving `vips`, plus `vip_tables` (TOML
    /// `[[vips]]` tables with their plugin chains).
    fn document_text(vips: &[Ipv4Addr], workers: u32, vip_tables: &str) -> String {
        let list: Vec<String> = vips.iter().map(|v| format!("\"{v}\"")).collect();
        format!(
            "[gateway]\naddress = \"{GIP}\"\nworkers = {workers}\n\
             [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [{}]\n{vip_tables}",
            list.join(", ")
        )
    }

    /// The configuration: peer `rs1` (RIP) serving `vips`, plus `vip_tables` (TOML
    /// `[[vips]]` tables with their plugin chains).
    pub fn document(vips: &[Ipv4Addr], workers: u32, vip_tables: &str) -> Document {
        parse_toml(&Self::document_text(vips, workers, vip_tables)).expect("test document")
    }

    /// Applies `doc` as the admin API does: stores the module of every plugin its chains
    /// name (from `modules`; a changed module hot-swaps its bindings), then replaces the
    /// document. The workers switch to the new filters between two batches (see
    /// [`Self::wait_filters_in_force`]).
    pub fn publish(&self, doc: &Document, modules: &dyn Fn(&str) -> Option<Vec<u8>>) {
        let mut names: Vec<&str> = doc
            .vips
            .iter()
            .flat_map(|v| v.plugins.iter().map(|b| b.plugin.as_str()))
            .collect();
        names.sort_unstable();
        names.dedup();
        for name in names {
            if let Some(bytes) = modules(name) {
                let action = Action::PutPlugin {
                    name: name.to_owned(),
                    bytes,
                };
                self.act(&format!("storing plugin {name}"), action);
            }
        }
        self.act("the document", Action::ReplaceConfig(doc.clone()));
    }

    /// Publishes a configuration for `vips` in which `vip` has one binding: plugin `name`
    /// (module `module`) with `on_error = "drop"`, and waits until every worker runs it.
    pub fn bind_one(&self, vips: &[Ipv4Addr], vip: Ipv4Addr, name: &str, module: &[u8]) {
        let workers = self.view.load().document.gateway.workers;
        let doc = Self::document(
            vips,
            workers,
            &format!(
                "[[vips]]\naddress = \"{vip}\"\n[[vips.plugins]]\nplugin = \"{name}\"\n\
                 on_error = \"drop\"\n"
            ),
        );
        self.publish(&doc, &|n| (n == name).then(|| module.to_vec()));
        self.wait_filters_in_force();
    }

    /// Waits until every worker runs the filter generation published last (panics after
    /// 10 s).
    pub fn wait_filters_in_force(&self) {
        let view = self.view.load_full();
        until(
            FILTERS_IN_FORCE,
            "every worker runs the published filters",
            || {
                let published = view.filters.published();
                view.filters.taken().iter().all(|&g| g == published)
            },
        );
    }

    fn act(&self, what: &str, action: Action) {
        self.control
            .as_ref()
            .expect("running")
            .handle()
            .call_blocking(action)
            .unwrap_or_else(|e| panic!("the control plane refused {what}: {e}"));
    }

    /// The upload check the control plane runs on a new module, with the same limits.
    pub fn check(&self, bytes: &[u8]) -> Result<ModuleInfo, Refusal> {
        self.checker.check(bytes)
    }

    /// The data path's counters.
    pub fn counters(&self) -> Snapshot {
        self.counters.snapshot()
    }

    /// The statistics of every binding in force.
    pub fn plugin_stats(&self) -> Vec<BindingSnapshot> {
        self.view.load().bindings.snapshot()
    }

    /// Stops the control plane (the data path with it); panics if it did not stop cleanly.
    pub fn stop(mut self) {
        let control = self.control.take().expect("running");
        control
            .stop()
            .unwrap_or_else(|e| panic!("stopping the gateway: {e}"));
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        if let Some(control) = self.control.take()
            && let Err(e) = control.stop()
        {
            eprintln!("stopping the in-process gateway: {e}");
        }
    }
}

/// The resident set size of this process, in KiB.
pub fn own_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}
