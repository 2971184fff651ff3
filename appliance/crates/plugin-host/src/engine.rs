//! The one wasmtime [`Engine`] of the gateway, its sandbox limits, and the epoch ticker.
//!
//! Owns every knob that bounds a plugin: memory per instance, instance pool size, the
//! deadline of each call (epoch interruption driven by a ticker thread), the time budget of
//! a binding, stack size, quarantine threshold and log rate. The defaults are the constants below. It must never
//! run guest code itself: instances live in [`super::instance`].

use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use wasmtime::{Config, Engine, InstanceAllocationStrategy, OptLevel, PoolingAllocationConfig};

/// Default cap on one plugin instance's linear memory.
pub const MEMORY_CAP_BYTES: usize = 16 << 20;
/// Default number of instances the pool holds. One (binding, worker) pair takes one, and a
/// hot swap holds the old and the new generation at once, so a generation may use half:
/// 100 VIPs with 4 plugins each on 4 workers fit, swapping. The pool reserves address space
/// only (about 0.5 GiB per slot, 2 TiB in all, `PROT_NONE`): resident memory grows with the
/// instances in use, not with this number.
pub(crate) const MAX_INSTANCES: u32 = 4096;
/// Most elements of a plugin's table (function pointers of indirect calls).
pub(crate) const TABLE_ELEMENTS_CAP: usize = 20_000;
/// Largest wasm stack a call may use.
pub(crate) const MAX_WASM_STACK_BYTES: usize = 512 << 10;
/// How often the ticker advances the engine's epoch: the resolution of every deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);
/// Default deadline of one `tungate_filter` call (one batch of up to 64 packets, which
/// normally takes well under a microsecond).
pub(crate) const FILTER_DEADLINE: Duration = Duration::from_millis(5);
/// Default deadline of instantiation plus `tungate_configure`.
pub(crate) const CONFIGURE_DEADLINE: Duration = Duration::from_secs(1);
/// The window over which a binding's plugin time is measured against its budget.
pub(crate) const TIME_BUDGET_WINDOW: Duration = Duration::from_millis(100);
/// Default plugin time a binding may use per worker in each [`TIME_BUDGET_WINDOW`] (5 % of
/// the worker). A plugin that stays under the deadline on every call but is slow would
/// otherwise take its worker's time from every other VIP; at the 5–10 ns per packet a
/// batched plugin normally costs, the budget covers hundreds of thousands of packets per
/// second.
pub(crate) const FILTER_TIME_BUDGET: Duration = Duration::from_millis(5);
/// Default number of consecutive failing calls after which a binding is quarantined.
pub(crate) const QUARANTINE_AFTER: u32 = 5;
/// Default log lines a plugin instance may emit per second (sustained).
pub const LOG_LINES_PER_SECOND: u32 = 5;
/// Default burst of log lines above the sustained rate.
pub const LOG_BURST: u32 = 20;
/// Default largest module accepted (bytes of the `.wasm` file).
pub(crate) const MAX_MODULE_BYTES: usize = 8 << 20;
/// Default most functions a module may define (imports not counted). Compilation time and
/// memory grow with the number of functions, and an 8 MiB module could define two million;
/// real plugins built with the SDK define about 200–250.
pub const MAX_FUNCTIONS: u32 = 10_000;

/// The sandbox limits; [`Limits::default`] gives the documented constants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Cap on each instance's linear memory, in bytes.
    pub memory_cap_bytes: usize,
    /// Instances the pool holds (all generations alive at once).
    pub max_instances: u32,
    /// Deadline of one batch call.
    pub filter_deadline: Duration,
    /// Deadline of instantiation plus configure.
    pub configure_deadline: Duration,
    /// Plugin time one binding may use on one worker per [`TIME_BUDGET_WINDOW`].
    pub filter_time_budget: Duration,
    /// Consecutive failing calls before quarantine (at least 1).
    pub quarantine_after: u32,
    /// Sustained log lines per second per instance (0: only the burst, ever).
    pub log_lines_per_second: u32,
    /// Log line burst per instance.
    pub log_burst: u32,
    /// Largest module accepted, in bytes.
    pub max_module_bytes: usize,
    /// Most functions a module may define.
    pub max_functions: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            memory_cap_bytes: MEMORY_CAP_BYTES,
            max_instances: MAX_INSTANCES,
            filter_deadline: FILTER_DEADLINE,
            configure_deadline: CONFIGURE_DEADLINE,
            filter_time_budget: FILTER_TIME_BUDGET,
            quarantine_after: QUARANTINE_AFTER,
            log_lines_per_second: LOG_LINES_PER_SECOND,
            log_burst: LOG_BURST,
            max_module_bytes: MAX_MODULE_BYTES,
            max_functions: MAX_FUNCTIONS,
        }
    }
}

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot set up the Wasm engine: {0} (check the limits, and that the process may reserve virtual memory)"
)]
pub struct EngineError(String);

/// The shared engine and its ticker; cheap to clone. The ticker thread advances the epoch
/// as long as any clone (held by every instance) is alive, so a deadline always fires.
#[derive(Clone)]
pub struct PluginEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    limits: Limits,
}

impl PluginEngine {
    /// Builds the engine (pooling allocator, epoch interruption) and starts its ticker.
    pub fn new(limits: Limits) -> Result<PluginEngine, EngineError> {
        if limits.quarantine_after == 0 {
            return Err(EngineError("quarantine_after must be at least 1".into()));
        }
        let mut pool = PoolingAllocationConfig::default();
        pool.total_core_instances(limits.max_instances)
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances)
            .max_memories_per_module(1)
            .max_tables_per_module(1)
            .max_memory_size(limits.memory_cap_bytes)
            .table_elements(TABLE_ELEMENTS_CAP);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .max_wasm_stack(MAX_WASM_STACK_BYTES)
            .cranelift_opt_level(OptLevel::Speed);
        let engine = Engine::new(&config).map_err(|e| EngineError(format!("{e:#}")))?;
        let inner = Arc::new(EngineInner { engine, limits });
        start_ticker(Arc::downgrade(&inner), inner.engine.clone());
        Ok(PluginEngine { inner })
    }

    /// The wasmtime engine.
    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    /// The limits in force.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// `d` in epoch ticks (at least 1).
    pub(crate) fn ticks(d: Duration) -> u64 {
        (d.as_nanos() / EPOCH_TICK.as_nanos()).max(1) as u64
    }
}

fn start_ticker(alive: Weak<EngineInner>, engine: Engine) {
    std::thread::Builder::new()
        .name("tg-wasm-epoch".into())
        .spawn(move || {
            while alive.strong_count() > 0 {
                std::thread::sleep(EPOCH_TICK);
                engine.increment_epoch();
            }
        })
        .expect("spawning the epoch ticker thread");
}

/// The host's monotonic clock in nanoseconds, shared by the batch time and the `now_ns`
/// import (its origin is the first call in this process).
pub fn monotonic_ns() -> u64 {
    monotonic_ns_at(Instant::now())
}

/// [`monotonic_ns`] of an instant already read (saves a clock read on the data path).
pub(crate) fn monotonic_ns_at(at: Instant) -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    let start = *START.get_or_init(Instant::now);
    u64::try_from(at.saturating_duration_since(start).as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticker_advances_the_epoch_while_the_engine_lives() {
        let limits = Limits {
            max_instances: 2,
            ..Limits::default()
        };
        let engine = PluginEngine::new(limits).unwrap();
        assert_eq!(PluginEngine::ticks(FILTER_DEADLINE), 5);
        assert_eq!(PluginEngine::ticks(Duration::from_micros(10)), 1);
        let a = monotonic_ns();
        std::thread::sleep(Duration::from_millis(2));
        assert!(monotonic_ns() > a);
        drop(engine);
        let bad = Limits {
            quarantine_after: 0,
            ..Limits::default()
        };
        let err = PluginEngine::new(bad).err().unwrap().to_string();
        assert!(err.contains("quarantine_after must be at least 1"), "{err}");
    }
}
