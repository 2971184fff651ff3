//! Plugin modules for tests and benchmarks: the example plugins built for
//! `wasm32-unknown-unknown` once per process ([`plugin_wasm`]), and a tiny pass-all module
//! in WAT that compiles in a millisecond ([`pass_all_module`]).
//!
//! The build runs the same command as the CI stage (`cargo build --profile plugin --target
//! wasm32-unknown-unknown`), in its own target directory (`target/wasm-plugins`) so that it
//! never waits for the lock of the `cargo test` that runs it; when CI has built them
//! already, this is a no-op check.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The example plugins (package names).
pub const EXAMPLES: [&str; 4] = ["cidr-filter", "rate-limit", "port-filter", "accounting"];

/// The workspace root.
pub fn workspace() -> PathBuf {
    // This crate is `appliance/crates/test-support` in the workspace.
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(3)
        .expect("the test-support crate sits in appliance/crates of the workspace")
        .to_path_buf()
}

/// Where the `.wasm` files land.
pub fn wasm_dir() -> PathBuf {
    workspace().join(tungate_demo::WORKSPACE_PLUGIN_DIR)
}

/// `cargo build --profile plugin --target wasm32-unknown-unknown -p P…` for `packages`, into
/// `target/wasm-plugins` (the `.wasm` files land in [`wasm_dir`]).
pub fn plugin_build(packages: &[&str]) -> Command {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut cmd = Command::new(&cargo);
    cmd.current_dir(workspace())
        .args([
            "build",
            "--profile",
            "plugin",
            "--target",
            "wasm32-unknown-unknown",
        ])
        .env("CARGO_TARGET_DIR", workspace().join("target/wasm-plugins"))
        // Whatever the caller uses: the plugin profile is never incremental (as in CI).
        .env("CARGO_INCREMENTAL", "0")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS");
    for p in packages {
        cmd.args(["-p", p]);
    }
    cmd
}

fn build_all() -> Result<PathBuf, String> {
    let mut cmd = plugin_build(&EXAMPLES);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "building the example plugins for wasm32 failed (is the wasm32-unknown-unknown target installed? \
             deploy/ci/install-deps.sh adds it):\n{}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(wasm_dir())
}

/// The module bytes of example plugin `package` (e.g. `"cidr-filter"`), built if needed.
pub fn plugin_wasm(package: &str) -> Vec<u8> {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(build_all)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let file = dir.join(format!("{}.wasm", package.replace('-', "_")));
    std::fs::read(&file).unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()))
}

/// Looks up an example plugin's module by the name it is uploaded under (its package name),
/// as the builder's module lookup wants it.
pub fn example_module(name: &str) -> Option<Vec<u8>> {
    EXAMPLES.contains(&name).then(|| plugin_wasm(name))
}
/// A tiny ABI v1 plugin that passes every packet, made distinct by a tag in a custom
/// section: for tests that need many different modules. It reads no configuration (any is
/// accepted). The module tagged `tag` (other bytes and sha256 per tag, same behaviour).
pub fn pass_all_module(tag: &str) -> Vec<u8> {
    // Batch area at 8192: 16 header bytes, 64 descriptors of 96 bytes, then the verdicts
    // (plugin-sdk's abi.rs); verdict 0 is "pass".
    wat::parse_str(format!(
        r#"(module
             (memory (export "memory") 1)
             (func (export "tungate_abi_v1"))
             (func (export "tungate_alloc") (param i32) (result i32) (i32.const 1024))
             (func (export "tungate_configure") (param i32 i32) (result i32) (i32.const 0))
             (func (export "tungate_batch_area") (result i32) (i32.const 8192))
             (func (export "tungate_filter") (param $n i32)
               (memory.fill (i32.const 14352) (i32.const 0) (local.get $n)))
             (@custom "tag" "{tag}"))"#
    ))
    .expect("the tiny module is valid WAT")
}
