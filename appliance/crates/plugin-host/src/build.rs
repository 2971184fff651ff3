//! Turns a configuration [`Document`] plus the uploaded modules into one [`WorkerFilters`]
//! set per worker (a generation), off the data path.
//!
//! Resolves each binding's module (by name, pinned by sha256), compiles it once (cached by
//! sha256 in [`ModuleCache`]), then instantiates and configures one instance per (binding,
//! worker). Any failure names the binding (`vips[0].plugins[1]`) and yields no generation,
//! so nothing half-built is ever published. It never touches the running data path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use super::chain::{Link, VipChain};
use super::engine::PluginEngine;
use super::instance::{InstanceError, InstanceLabels, PluginInstance, Prepared};
use super::precompiled::{CacheCounts, CompiledCache};
use super::stats::{BindingKey, BindingStats, StatsRegistry, StatsTable};
use super::validate::{ModuleInfo, Refusal, check_module_with, sha256_hex};
use tungate_config::{self as config, Document};
use tungate_datapath::filter::WorkerFilters;

/// A module that passed the checks, compiled and linked.
pub(crate) struct Compiled {
    /// What the check found.
    pub info: ModuleInfo,
    prepared: Prepared,
}

/// Compiled modules by sha256, in memory, and on disk when given a directory.
#[derive(Default)]
pub(crate) struct ModuleCache {
    by_sha: Mutex<HashMap<String, Arc<Compiled>>>,
    on_disk: Option<CompiledCache>,
}

impl ModuleCache {
    /// A cache that also keeps compiled modules in `dir` for the next start.
    pub(crate) fn on_disk(dir: std::path::PathBuf, engine: &PluginEngine) -> ModuleCache {
        ModuleCache {
            by_sha: Mutex::default(),
            on_disk: Some(CompiledCache::new(dir, engine.engine())),
        }
    }

    /// What the on-disk cache did (all zero without one).
    pub(crate) fn disk_counts(&self) -> CacheCounts {
        self.on_disk
            .as_ref()
            .map(CompiledCache::counts)
            .unwrap_or_default()
    }

    /// The compiled module for `bytes`: from the cache, or checked and compiled now.
    pub(crate) fn get_or_compile(
        &self,
        engine: &PluginEngine,
        bytes: &[u8],
    ) -> Result<Arc<Compiled>, Refusal> {
        let sha = sha256_hex(bytes);
        if let Some(c) = self.lock().get(&sha) {
            return Ok(c.clone());
        }
        let checked = check_module_with(engine, bytes, &|bytes| match &self.on_disk {
            Some(disk) => disk.load_or_compile(engine.engine(), &sha, bytes),
            None => wasmtime::Module::new(engine.engine(), bytes),
        })?;
        let prepared = Prepared::new(engine, &checked.module)
            .map_err(|e| Refusal::DoesNotCompile(e.to_string()))?;
        let compiled = Arc::new(Compiled {
            info: checked.info,
            prepared,
        });
        self.lock().insert(sha, compiled.clone());
        Ok(compiled)
    }

    /// Forgets every module whose sha256 is not in `keep` (and removes their entries on
    /// disk).
    pub fn retain(&self, keep: &HashSet<String>) {
        self.lock().retain(|sha, _| keep.contains(sha));
        if let Some(disk) = &self.on_disk {
            disk.retain(keep);
        }
    }

    /// Number of cached modules.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<Compiled>>> {
        self.by_sha.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Why a generation could not be built (nothing was published).
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The document itself is invalid.
    #[error("the configuration is invalid:\n{0}")]
    Invalid(#[from] config::Invalid),
    /// A binding names a plugin that is not uploaded.
    #[error("{binding}: no plugin named {plugin:?} is uploaded; upload it or fix the name")]
    MissingPlugin {
        /// The binding's path.
        binding: String,
        /// The plugin name.
        plugin: String,
    },
    /// The stored module does not pass the checks.
    #[error("{binding}: plugin {plugin:?} is refused: {refusal}")]
    Refused {
        /// The binding's path.
        binding: String,
        /// The plugin name.
        plugin: String,
        /// Why.
        refusal: Refusal,
    },
    /// The module is not the one the binding pins.
    #[error(
        "{binding}: plugin {plugin:?} has sha256 {actual}, but the binding pins {pinned}; upload the pinned module or change the pin"
    )]
    Sha256Mismatch {
        /// The binding's path.
        binding: String,
        /// The plugin name.
        plugin: String,
        /// The pinned sha256.
        pinned: String,
        /// The uploaded module's sha256.
        actual: String,
    },
    /// The configuration needs more plugin instances than the engine's pool holds (one per
    /// binding and worker; a hot swap holds the generation in force too). No binding is
    /// at fault: the whole configuration is too large for the pool.
    #[error(
        "the configuration needs {needed} plugin instances ({bindings} bindings × {workers} \
         workers), and the instance pool holds {pool} for every generation alive at once{in_use}: \
         {POOL_ADVICE}"
    )]
    PoolTooSmall {
        /// Instances this generation needs.
        needed: usize,
        /// Plugin bindings in the configuration.
        bindings: usize,
        /// Data-path workers.
        workers: usize,
        /// The pool's size.
        pool: u32,
        /// Empty, or why fewer than `pool` were free (the generation in force holds some).
        in_use: String,
    },
    /// An instance could not be built or configured (including the plugin refusing its
    /// configuration, with its message). The text names no worker: every worker builds the
    /// same instance, so which one failed first tells the operator nothing.
    #[error("{binding}: plugin {plugin:?}: {error}")]
    Instance {
        /// The binding's path.
        binding: String,
        /// The plugin name.
        plugin: String,
        /// The worker whose instance failed first (for logs and tests).
        worker: usize,
        /// What went wrong.
        error: InstanceError,
    },
}

/// What to do when a configuration needs more instances than the pool holds.
const POOL_ADVICE: &str = "bind fewer plugins (a VIP's chain, or fewer VIPs with plugins), \
or run fewer data-path workers (gateway.workers); the pool size is the constant \
MAX_INSTANCES of the plugin host (SECURITY.md, The plugin sandbox)";

/// A built, not yet published, set of filters.
pub struct Generation {
    /// One set per worker.
    pub filters: Vec<WorkerFilters>,
    /// The statistics of its bindings.
    pub stats: Arc<StatsTable>,
    /// The sha256 of every module it uses.
    pub modules: HashSet<String>,
}

/// Builds a generation for `workers` workers. `modules` returns a plugin's module bytes by
/// name (`None` if no such plugin is uploaded). Each binding's statistics blocks come from
/// `registry` (those of the same binding key in earlier generations, so counts carry on).
pub(crate) fn build_generation(
    engine: &PluginEngine,
    cache: &ModuleCache,
    registry: &StatsRegistry,
    doc: &Document,
    modules: &dyn Fn(&str) -> Option<Vec<u8>>,
    workers: usize,
) -> Result<Generation, BuildError> {
    config::validate(doc)?;
    let bindings: usize = doc.vips.iter().map(|v| v.plugins.len()).sum();
    let needed = bindings.saturating_mul(workers);
    let pool = engine.limits().max_instances;
    let too_small = |in_use: String| BuildError::PoolTooSmall {
        needed,
        bindings,
        workers,
        pool,
        in_use,
    };
    if needed > pool as usize {
        return Err(too_small(String::new()));
    }
    let mut by_name: HashMap<&str, Arc<Compiled>> = HashMap::new();
    let mut resolved = Vec::new();
    for (v, vip) in doc.vips.iter().enumerate() {
        let mut chain = Vec::new();
        for (p, binding) in vip.plugins.iter().enumerate() {
            let at = config::validate::binding_field(v, p);
            let compiled = match by_name.get(binding.plugin.as_str()) {
                Some(c) => c.clone(),
                None => {
                    let bytes =
                        modules(&binding.plugin).ok_or_else(|| BuildError::MissingPlugin {
                            binding: at.clone(),
                            plugin: binding.plugin.clone(),
                        })?;
                    let c = cache.get_or_compile(engine, &bytes).map_err(|refusal| {
                        BuildError::Refused {
                            binding: at.clone(),
                            plugin: binding.plugin.clone(),
                            refusal,
                        }
                    })?;
                    by_name.insert(&binding.plugin, c.clone());
                    c
                }
            };
            if let Some(pinned) = &binding.sha256
                && !pinned.eq_ignore_ascii_case(&compiled.info.sha256)
            {
                return Err(BuildError::Sha256Mismatch {
                    binding: at,
                    plugin: binding.plugin.clone(),
                    pinned: pinned.clone(),
                    actual: compiled.info.sha256.clone(),
                });
            }
            chain.push((at, binding, compiled));
        }
        resolved.push((vip.address, chain));
    }

    let mut filters: Vec<WorkerFilters> = (0..workers).map(|_| WorkerFilters::default()).collect();
    let mut table = StatsTable::default();
    let quarantine_after = engine.limits().quarantine_after;
    let time_budget = engine.limits().filter_time_budget;
    for (vip, chain) in resolved {
        // Validation refuses plugins on IPv6 VIPs until the ABI carries IPv6 (the v1
        // descriptor holds IPv4 addresses only), so an IPv6 VIP's chain is empty here.
        let (false, std::net::IpAddr::V4(vip4)) = (chain.is_empty(), vip) else {
            continue;
        };
        let mut per_worker: Vec<Vec<Link>> = (0..workers).map(|_| Vec::new()).collect();
        for (position, (at, binding, compiled)) in chain.into_iter().enumerate() {
            let config =
                serde_json::to_vec(&binding.config).expect("a JSON value always serialises");
            let plugin: Arc<str> = binding.plugin.as_str().into();
            let key = BindingKey {
                vip: vip4,
                position,
                plugin: binding.plugin.clone(),
            };
            let stats = registry.cells(&key, workers);
            for (worker, links) in per_worker.iter_mut().enumerate() {
                let labels = InstanceLabels {
                    vip: vip4,
                    position,
                    plugin: plugin.clone(),
                };
                let instance = PluginInstance::new(
                    engine,
                    &compiled.prepared,
                    &config,
                    labels,
                    stats[worker].clone(),
                )
                .map_err(|error| match error {
                    InstanceError::PoolFull(_) => too_small(
                        " (the generation in force holds the others until this one replaces it)"
                            .into(),
                    ),
                    error => BuildError::Instance {
                        binding: at.clone(),
                        plugin: binding.plugin.clone(),
                        worker,
                        error,
                    },
                })?;
                links.push(Link::new(
                    instance,
                    plugin.clone(),
                    binding.on_error,
                    stats[worker].clone(),
                    quarantine_after,
                    time_budget,
                ));
            }
            table.bindings.push(BindingStats {
                key,
                sha256: compiled.info.sha256.clone(),
                on_error: binding.on_error,
                workers: stats,
            });
        }
        for (set, links) in filters.iter_mut().zip(per_worker) {
            set.by_vip.insert(vip, Box::new(VipChain::new(vip4, links)));
        }
    }
    Ok(Generation {
        filters,
        stats: Arc::new(table),
        modules: by_name.values().map(|c| c.info.sha256.clone()).collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::{Limits, MAX_INSTANCES};
    use crate::test_wat;

    /// A document with `vips` VIPs (all served by one peer), each binding plugin `p`
    /// `per_vip` times, on `workers` workers.
    fn document(vips: usize, per_vip: usize, workers: usize) -> Document {
        let addresses: Vec<String> = (0..vips)
            .map(|i| format!("\"10.{}.{}.1\"", i / 256, i % 256))
            .collect();
        let mut text = format!(
            "[gateway]\naddress = \"192.0.2.1\"\nworkers = {workers}\n\
             [[peers]]\nname = \"rs1\"\naddress = \"192.0.2.10\"\nvips = [{}]\n",
            addresses.join(", ")
        );
        for a in &addresses {
            text.push_str(&format!("[[vips]]\naddress = {a}\n"));
            for _ in 0..per_vip {
                text.push_str("[[vips.plugins]]\nplugin = \"p\"\n");
            }
        }
        config::parse_toml(&text).expect("test document")
    }

    fn build(
        engine: &PluginEngine,
        cache: &ModuleCache,
        doc: &Document,
        workers: usize,
    ) -> Result<Generation, BuildError> {
        let module = test_wat::plugin(test_wat::PASS_ALL);
        build_generation(
            engine,
            cache,
            &StatsRegistry::default(),
            doc,
            &|name| (name == "p").then(|| module.clone()),
            workers,
        )
    }

    #[test]
    fn a_configuration_larger_than_the_pool_blames_the_pool_not_a_binding() {
        // 4 100 bindings on one worker, with the default pool: refused before any
        // instance is made, naming the pool and what to do.
        let engine = PluginEngine::new(Limits::default()).unwrap();
        let doc = document(1025, 4, 1);
        let needed = 1025 * 4;
        assert!(needed > MAX_INSTANCES as usize);
        let error = build(&engine, &ModuleCache::default(), &doc, 1)
            .err()
            .expect("too large for the pool");
        let text = error.to_string();
        assert!(
            matches!(error, BuildError::PoolTooSmall { needed: 4100, bindings: 4100, workers: 1, pool, .. } if pool == MAX_INSTANCES),
            "{text}"
        );
        assert!(
            text.starts_with(&format!(
                "the configuration needs 4100 plugin instances (4100 bindings × 1 workers), \
                 and the instance pool holds {MAX_INSTANCES}"
            )),
            "{text}"
        );
        assert!(text.contains("bind fewer plugins"), "{text}");
        assert!(!text.contains("vips["), "no binding is blamed: {text}");
    }

    #[test]
    fn a_pool_full_because_of_the_generation_in_force_says_so() {
        // A pool of 4: a generation of 3 instances is in force; the next one needs 3
        // more, which only fit once the first is gone.
        let engine = PluginEngine::new(Limits {
            max_instances: 4,
            memory_cap_bytes: 1 << 20,
            ..Limits::default()
        })
        .unwrap();
        let cache = ModuleCache::default();
        let doc = document(3, 1, 1);
        let first = build(&engine, &cache, &doc, 1).expect("3 of 4 slots");
        let error = build(&engine, &cache, &doc, 1)
            .err()
            .expect("the pool is full");
        let text = error.to_string();
        assert!(
            matches!(
                error,
                BuildError::PoolTooSmall {
                    needed: 3,
                    pool: 4,
                    ..
                }
            ),
            "{text}"
        );
        assert!(text.contains("the generation in force holds"), "{text}");
        drop(first);
        build(&engine, &cache, &doc, 1).expect("fits once the old generation is gone");
    }
}
