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
        let prepared = Prepared::new(engine, &checked.module, checked.info.abi_version)
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
    /// A module of ABI v1 (IPv4-only descriptors) bound to an IPv6 VIP.
    #[error(
        "{binding}: plugin {plugin:?} speaks ABI v1, whose packet descriptors hold only IPv4 \
         addresses, so it cannot judge the replies of the IPv6 VIP {vip}: rebuild it with a \
         tungate-plugin-sdk that speaks ABI v2 (export tungate_abi_v2), or bind it to IPv4 \
         VIPs only"
    )]
    AbiCannotServeVip {
        /// The binding's path.
        binding: String,
        /// The plugin name.
        plugin: String,
        /// The VIP.
        vip: std::net::IpAddr,
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

/// Whether a module speaking ABI `abi_version` can judge the replies of `vip`: ABI v1
/// descriptors have 4-byte addresses, so a v1 module serves IPv4 VIPs only; v2 serves both.
pub fn abi_serves(abi_version: u32, vip: std::net::IpAddr) -> bool {
    vip.is_ipv4() || abi_version >= tungate_plugin_sdk::abi::v2::VERSION
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
            if !abi_serves(compiled.info.abi_version, vip.address) {
                return Err(BuildError::AbiCannotServeVip {
                    binding: at,
                    plugin: binding.plugin.clone(),
                    vip: vip.address,
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
        if chain.is_empty() {
            continue;
        }
        let mut per_worker: Vec<Vec<Link>> = (0..workers).map(|_| Vec::new()).collect();
        for (position, (at, binding, compiled)) in chain.into_iter().enumerate() {
            let config =
                serde_json::to_vec(&binding.config).expect("a JSON value always serialises");
            let plugin: Arc<str> = binding.plugin.as_str().into();
            let key = BindingKey {
                vip,
                position,
                plugin: binding.plugin.clone(),
            };
            let stats = registry.cells(&key, workers);
            for (worker, links) in per_worker.iter_mut().enumerate() {
                let labels = InstanceLabels {
                    vip,
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
            set.by_vip.insert(vip, Box::new(VipChain::new(vip, links)));
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

    #[test]
    fn a_v1_module_serves_only_ipv4_vips_and_a_v2_module_both() {
        let v4: std::net::IpAddr = "192.0.2.10".parse().unwrap();
        let v6: std::net::IpAddr = "2001:db8::10".parse().unwrap();
        assert!(abi_serves(1, v4));
        assert!(!abi_serves(1, v6));
        assert!(abi_serves(2, v4));
        assert!(abi_serves(2, v6));
        let text = BuildError::AbiCannotServeVip {
            binding: "vips[1].plugins[0]".into(),
            plugin: "old".into(),
            vip: v6,
        }
        .to_string();
        assert!(
            text.starts_with(
                "vips[1].plugins[0]: plugin \"old\" speaks ABI v1, whose packet descriptors \
                 hold only IPv4 addresses, so it cannot judge the replies of the IPv6 VIP \
                 2001:db8::10"
            ),
            "{text}"
        );
    }

    #[test]
    fn v1_and_v2_modules_build_side_by_side_on_an_ipv4_vip() {
        let engine = PluginEngine::new(Limits {
            max_instances: 8,
            memory_cap_bytes: 1 << 20,
            ..Limits::default()
        })
        .unwrap();
        let doc = config::parse_toml(
            "[gateway]\naddress = \"192.0.2.1\"\nworkers = 2\n\
             [[peers]]\nname = \"rs1\"\naddress = \"192.0.2.10\"\nvips = [\"10.0.0.1\"]\n\
             [[vips]]\naddress = \"10.0.0.1\"\n\
             [[vips.plugins]]\nplugin = \"v1\"\n[[vips.plugins]]\nplugin = \"v2\"\n",
        )
        .unwrap();
        let (v1, v2) = (
            test_wat::plugin(test_wat::PASS_ALL),
            test_wat::v2_plugin(&test_wat::drop_family(4)),
        );
        let generation = build_generation(
            &engine,
            &ModuleCache::default(),
            &StatsRegistry::default(),
            &doc,
            &|name| match name {
                "v1" => Some(v1.clone()),
                "v2" => Some(v2.clone()),
                _ => None,
            },
            2,
        )
        .expect("both ABIs serve an IPv4 VIP");
        assert_eq!(generation.modules.len(), 2);
        // The chain works end to end: v1 passes, then v2 drops the IPv4 packet.
        let mut filters = generation.filters;
        let chain = filters[0]
            .by_vip
            .get_mut(&"10.0.0.1".parse().unwrap())
            .unwrap();
        let mut packet = vec![0u8; 20];
        packet[0] = 0x45;
        let mut decisions = [tungate_datapath::filter::Decision::Pass];
        chain.filter(&[&packet], &mut decisions);
        assert_eq!(
            decisions,
            [tungate_datapath::filter::Decision::DropByPlugin]
        );
    }

    #[test]
    fn a_v1_module_bound_to_an_ipv6_vip_is_refused_and_a_v2_module_is_built() {
        let engine = PluginEngine::new(Limits {
            max_instances: 8,
            memory_cap_bytes: 1 << 20,
            ..Limits::default()
        })
        .unwrap();
        let doc = |plugin: &str| {
            config::parse_toml(&format!(
                "[gateway]\naddress = \"192.0.2.1\"\naddress6 = \"2001:db8::1\"\n\
                 [[peers]]\nname = \"rs1\"\naddress = \"2001:db8:1::2\"\nvips = [\"2001:db8:f::10\"]\n\
                 [[vips]]\naddress = \"2001:db8:f::10\"\n[[vips.plugins]]\nplugin = \"{plugin}\"\n"
            ))
            .unwrap()
        };
        let (v1, v2) = (
            test_wat::plugin(test_wat::PASS_ALL),
            test_wat::v2_plugin(&test_wat::drop_family(6)),
        );
        let modules = |name: &str| match name {
            "old" => Some(v1.clone()),
            "new" => Some(v2.clone()),
            _ => None,
        };
        let build = |doc: &Document| {
            build_generation(
                &engine,
                &ModuleCache::default(),
                &StatsRegistry::default(),
                doc,
                &modules,
                1,
            )
        };
        let error = build(&doc("old"))
            .err()
            .expect("a v1 module cannot judge IPv6");
        assert!(
            matches!(&error, BuildError::AbiCannotServeVip { binding, plugin, vip }
                if binding == "vips[0].plugins[0]" && plugin == "old"
                    && *vip == "2001:db8:f::10".parse::<std::net::IpAddr>().unwrap()),
            "{error}"
        );
        assert!(error.to_string().contains("speaks ABI v1"), "{error}");
        let mut generation = build(&doc("new")).expect("a v2 module serves an IPv6 VIP");
        let chain = generation.filters[0]
            .by_vip
            .get_mut(&"2001:db8:f::10".parse().unwrap())
            .unwrap();
        let mut packet = vec![0u8; 40];
        packet[0] = 0x60;
        packet[6] = 59;
        let mut decisions = [tungate_datapath::filter::Decision::Pass];
        chain.filter(&[&packet], &mut decisions);
        assert_eq!(
            decisions,
            [tungate_datapath::filter::Decision::DropByPlugin],
            "the v2 module saw family 6"
        );
    }
}
