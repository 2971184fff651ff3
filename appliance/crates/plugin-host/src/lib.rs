//! The Wasm plugin host: sandboxed wasmtime instances that judge each VIP's replies.
//!
//! - [`engine`]: the one engine, its limits and the epoch ticker;
//! - [`validate`]: the checks an uploaded module must pass (ABI v1), and its identity;
//! - [`instance`]: one configured instance and its batch call;
//! - [`chain`]: a VIP's chain on one worker, as the data path's `BatchFilter`;
//! - [`stats`]: per-binding statistics readable from any thread;
//! - [`build`]: from a configuration document to one filter set per worker;
//! - [`precompiled`]: the compiled-module cache on disk (the crate's only `unsafe` code,
//!   loading machine code it wrote itself).
//!
//! [`PluginHost`] ties them together for the control side: check an upload, build and
//! publish a generation (hot swap through [`FilterSlots`]), read statistics. Nothing here
//! runs on the data path except the chains it hands over; it never forwards packets, never
//! touches the network, and of the state directory only the compiled-module cache folder
//! it is given. `unsafe` code is denied everywhere but [`precompiled`].

#![deny(unsafe_code)]

pub mod build;
pub mod chain;
pub mod engine;
pub mod instance;
pub mod precompiled;
pub mod stats;
pub mod validate;

#[cfg(test)]
mod doc_limits;

#[cfg(any(test, feature = "test-wat"))]
pub mod test_wat;

use std::sync::Arc;

use arc_swap::ArcSwap;

pub use build::{BuildError, Generation};
pub use engine::{EngineError, Limits, PluginEngine};
pub use precompiled::CacheCounts;
pub use stats::{BindingSnapshot, StatsRegistry, StatsTable};
pub use validate::{ModuleInfo, Refusal};

use tungate_config::Document;
use tungate_datapath::filter::FilterSlots;

/// The control side's handle on plugins.
pub struct PluginHost {
    engine: PluginEngine,
    cache: build::ModuleCache,
    registry: StatsRegistry,
    current: ArcSwap<StatsTable>,
}

impl PluginHost {
    /// A host with these limits.
    pub fn new(limits: Limits) -> Result<PluginHost, EngineError> {
        Ok(PluginHost {
            engine: PluginEngine::new(limits)?,
            cache: build::ModuleCache::default(),
            registry: StatsRegistry::default(),
            current: ArcSwap::from_pointee(StatsTable::default()),
        })
    }

    /// A host with these limits that keeps compiled modules in `dir` (a folder of the
    /// state directory), so that the next start loads them instead of compiling
    /// ([`precompiled`]).
    pub fn with_compiled_cache(
        limits: Limits,
        dir: std::path::PathBuf,
    ) -> Result<PluginHost, EngineError> {
        let engine = PluginEngine::new(limits)?;
        Ok(PluginHost {
            cache: build::ModuleCache::on_disk(dir, &engine),
            engine,
            registry: StatsRegistry::default(),
            current: ArcSwap::from_pointee(StatsTable::default()),
        })
    }

    /// What the compiled-module cache on disk did since this host started.
    pub fn compiled_cache_counts(&self) -> CacheCounts {
        self.cache.disk_counts()
    }

    /// Checks an uploaded module (and keeps it compiled for the next build); call this
    /// before storing an upload.
    pub fn check(&self, bytes: &[u8]) -> Result<ModuleInfo, Refusal> {
        Ok(self.cache.get_or_compile(&self.engine, bytes)?.info.clone())
    }

    /// Builds a generation for `workers` workers without publishing it.
    pub fn build(
        &self,
        doc: &Document,
        modules: &dyn Fn(&str) -> Option<Vec<u8>>,
        workers: usize,
    ) -> Result<Generation, BuildError> {
        build::build_generation(
            &self.engine,
            &self.cache,
            &self.registry,
            doc,
            modules,
            workers,
        )
    }

    /// Records that a built generation's filters were handed to the workers: its statistics
    /// become the current ones (bindings no longer present are forgotten) and compiled
    /// modules it does not use are released.
    pub fn commit(&self, stats: Arc<StatsTable>, modules: &std::collections::HashSet<String>) {
        self.registry.adopt(&stats);
        self.current.store(stats);
        self.cache.retain(modules);
    }

    /// Builds a generation for every worker of `slots` and publishes it (hot swap: each
    /// worker switches between two batches). On error nothing is published. Returns the new
    /// generation number.
    pub fn publish(
        &self,
        slots: &FilterSlots,
        doc: &Document,
        modules: &dyn Fn(&str) -> Option<Vec<u8>>,
    ) -> Result<u64, BuildError> {
        let generation = self.build(doc, modules, slots.workers())?;
        let number = slots.publish(generation.filters);
        self.commit(generation.stats, &generation.modules);
        Ok(number)
    }

    /// The statistics of the last published generation.
    pub fn stats_table(&self) -> Arc<StatsTable> {
        self.current.load_full()
    }

    /// A snapshot of every binding's statistics (last published generation).
    pub fn stats(&self) -> Vec<BindingSnapshot> {
        self.current.load().snapshot()
    }

    /// Number of compiled modules kept.
    pub fn cached_modules(&self) -> usize {
        self.cache.len()
    }
}

/// Why `tungate plugin check` refused a file.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    /// The engine could not be set up.
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// The module was refused.
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// `tungate plugin check FILE`: checks the file, prints what it found or why it is refused,
/// and returns the exit status (0 accepted, 1 refused or unreadable).
pub fn check_file(path: &std::path::Path) -> i32 {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("tungate: cannot read {}: {e}", path.display());
            return 1;
        }
    };
    match check_offline(&bytes) {
        Ok(info) => {
            let name = match (&info.name, &info.version) {
                (Some(n), Some(v)) => format!("{n} {v}"),
                (Some(n), None) => n.clone(),
                _ => "(no tungate.plugin metadata section)".into(),
            };
            println!("{}: accepted", path.display());
            println!("  name:    {name}");
            println!("  sha256:  {}", info.sha256);
            println!("  size:    {} bytes", info.size);
            println!("  abi:     v{}", info.abi_version);
            println!("  exports: {}", info.exports.join(", "));
            println!("  imports: {}", info.imports.join(", "));
            0
        }
        Err(e) => {
            eprintln!("{}: refused: {e}", path.display());
            1
        }
    }
}

/// Checks module bytes offline exactly as an upload is checked (`tungate plugin check`).
pub fn check_offline(bytes: &[u8]) -> Result<ModuleInfo, CheckError> {
    let engine = PluginEngine::new(Limits {
        max_instances: 1,
        ..Limits::default()
    })?;
    Ok(validate::check_module(&engine, bytes)?.info)
}
