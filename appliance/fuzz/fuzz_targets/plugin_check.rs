//! Arbitrary bytes as an uploaded plugin: the upload check refuses or accepts without
//! panicking, and what it accepts is described consistently.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tungate_plugin_host::validate::check_module;
use tungate_plugin_host::{Limits, PluginEngine};

fn engine() -> &'static PluginEngine {
    static ENGINE: OnceLock<PluginEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        PluginEngine::new(Limits {
            max_instances: 4,
            ..Limits::default()
        })
        .expect("engine")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(checked) = check_module(engine(), data) {
        assert_eq!(checked.info.size, data.len());
        assert_eq!(checked.info.sha256.len(), 64);
    }
});
