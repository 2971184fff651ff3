//! Builds the example plugins for `wasm32-unknown-unknown` once per test process and hands
//! out their module bytes.
//!
//! Shared by the integration tests and the benchmark (`#[path]`-included). It runs the same
//! command as the CI stage (`cargo build --profile plugin --target wasm32-unknown-unknown`),
//! in its own target directory (`target/wasm-plugins`) so that it never waits for the lock of
//! the `cargo test` that runs it; when CI has built them already, this is a no-op check.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

/// The example plugins (package names).
pub const EXAMPLES: [&str; 4] = ["cidr-filter", "rate-limit", "port-filter", "accounting"];

/// The workspace root.
pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the appliance crate sits in the workspace")
        .to_path_buf()
}

/// Where the `.wasm` files land.
pub fn wasm_dir() -> PathBuf {
    workspace().join("target/wasm-plugins/wasm32-unknown-unknown/plugin")
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
