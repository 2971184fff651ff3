//! tungate's data path run in-process inside the `gw` namespace of a [`Topology`], with a
//! [`PluginHost`] publishing filter chains to it: for tests and benchmarks that need the
//! plugin host and the data path together before the daemon wires them up.
//!
//! The data path and its nftables drop table (as the daemon installs it) are started,
//! stopped and dropped on threads that entered `gw`, so its sockets, worker threads and
//! table all live there (never in the host's own namespace), also when a test fails.

use std::sync::Arc;

use tungate_config::{Document, parse_toml};
use tungate_datapath::Datapath;
use tungate_datapath::counters::{Counters, Snapshot};
use tungate_netcfg::IpipDropTable;
use tungate_plugin_host::{BindingSnapshot, Limits, PluginHost};

use super::net::{GIP, Netns, RIP, Topology};

/// A data path in `gw` and the plugin host that feeds it.
pub struct InProcessGateway {
    gw: String,
    datapath: Option<(Datapath, IpipDropTable)>,
    workers: u32,
    counters: Arc<Counters>,
    /// The plugin host (publishes to this data path's filter slots).
    pub host: PluginHost,
}

impl InProcessGateway {
    /// Starts the data path in `t.gw` for peer `rs1` (RIP) serving `vips`, with `workers`
    /// workers and the given plugin limits.
    pub fn start(t: &Topology, vips: &[std::net::Ipv4Addr], workers: u32, limits: Limits) -> Self {
        let counters = Arc::new(Counters::new(workers as usize));
        let doc = Self::document(vips, workers, "");
        let c = counters.clone();
        let datapath = t.gw.run(move || {
            let datapath = Datapath::start(&doc, c).map_err(|e| e.to_string())?;
            let mut drop_table = IpipDropTable::new();
            drop_table
                .follow(datapath.userspace_ingress())
                .map_err(|e| e.to_string())?;
            Ok::<_, String>((datapath, drop_table))
        });
        let datapath = datapath.unwrap_or_else(|e| panic!("data path in gw: {e}"));
        InProcessGateway {
            gw: t.gw.name.clone(),
            datapath: Some(datapath),
            workers,
            counters,
            host: PluginHost::new(limits).expect("plugin host"),
        }
    }

    /// The configuration: peer `rs1` (RIP) serving `vips`, plus `vip_tables` (TOML
    /// `[[vips]]` tables with their plugin chains).
    pub fn document(vips: &[std::net::Ipv4Addr], workers: u32, vip_tables: &str) -> Document {
        let list: Vec<String> = vips.iter().map(|v| format!("\"{v}\"")).collect();
        parse_toml(&format!(
            "[gateway]\naddress = \"{GIP}\"\nworkers = {workers}\n\
             [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [{}]\n{vip_tables}",
            list.join(", ")
        ))
        .expect("test document")
    }

    /// Builds and publishes the plugin chains of `doc` (modules by name from `modules`);
    /// the workers switch to them between two batches.
    pub fn publish(&self, doc: &Document, modules: &dyn Fn(&str) -> Option<Vec<u8>>) {
        let slots = self.datapath.as_ref().expect("running").0.filter_slots();
        self.host
            .publish(&slots, doc, modules)
            .unwrap_or_else(|e| panic!("publish: {e}"));
    }

    /// Publishes a configuration for `vips` in which `vip` has one binding: plugin `name`
    /// (module `module`) with `on_error = "drop"`, and waits for the workers to take it
    /// (they switch between batches and wake at least every 100 ms).
    pub fn bind_one(
        &self,
        vips: &[std::net::Ipv4Addr],
        vip: std::net::Ipv4Addr,
        name: &str,
        module: &[u8],
    ) {
        let doc = Self::document(
            vips,
            self.workers,
            &format!(
                "[[vips]]\naddress = \"{vip}\"\n[[vips.plugins]]\nplugin = \"{name}\"\n\
                 on_error = \"drop\"\n"
            ),
        );
        self.publish(&doc, &|n| (n == name).then(|| module.to_vec()));
        std::thread::sleep(std::time::Duration::from_millis(300));
    }

    /// The data path's counters.
    pub fn counters(&self) -> Snapshot {
        self.counters.snapshot()
    }

    /// The statistics of every binding of the last published chains.
    pub fn plugin_stats(&self) -> Vec<BindingSnapshot> {
        self.host.stats()
    }

    /// Stops the data path inside `gw` and returns the result.
    pub fn stop(mut self) {
        let (datapath, mut drop_table) = self.datapath.take().expect("running");
        Netns::enter_and(&self.gw, move || {
            datapath.stop();
            drop_table.follow(None)
        })
        .unwrap_or_else(|e| panic!("stopping the data path: {e}"));
    }
}

impl Drop for InProcessGateway {
    fn drop(&mut self) {
        if let Some(datapath) = self.datapath.take() {
            // Drop it inside `gw`: its nftables table is removed in the namespace it is in.
            Netns::enter_and(&self.gw, move || drop(datapath));
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
