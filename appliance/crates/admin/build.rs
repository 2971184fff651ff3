//! Build script: checks the web UI bundle (`web/dist`) that the admin server embeds into the
//! binary (`tungate` stays one file). It never builds the bundle itself and never runs npm:
//! a `cargo build` needs no network and no Node.js once `web/dist` is there.
//!
//! - `web/dist` missing: the build stops and says what to run (`npm ci && npm run build` in
//!   `web/`; `deploy/demo.sh` and `deploy/ci/test-all.sh` do that before building tungate).
//! - `web/dist` older than `web/src` (or the other inputs of the bundle): a `cargo:warning`
//!   saying to run `npm run build`; the build goes on and embeds the bundle that is there.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// Inputs of the bundle, relative to `web/`.
const INPUTS: [&str; 6] = [
    "src",
    "index.html",
    "package.json",
    "package-lock.json",
    "vite.config.ts",
    "tsconfig.json",
];

fn newest(path: &Path) -> Option<SystemTime> {
    let meta = std::fs::metadata(path).ok()?;
    let mut time = meta.modified().ok()?;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).ok()?.flatten() {
            if let Some(t) = newest(&entry.path()) {
                time = time.max(t);
            }
        }
    }
    Some(time)
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    // The repository's web/, as the embed in src/ui.rs names it.
    let web = manifest.join("../../../web");
    for input in INPUTS {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    let dist = web.join("dist");
    println!("cargo:rerun-if-changed={}", dist.display());
    let index = dist.join("index.html");
    if !index.is_file() {
        let what = if dist.is_dir() {
            "has no index.html"
        } else {
            "is missing"
        };
        panic!(
            "{} {what}: tungate embeds the web UI bundle, and the build does not make it \
             (it never runs npm). Build it first with `cd web && npm ci && npm run build` \
             (Node.js >= 20.19; deploy/demo.sh does that too), then build tungate again.",
            dist.display()
        );
    }
    let sources = INPUTS.iter().filter_map(|i| newest(&web.join(i))).max();
    let built = std::fs::metadata(&index).and_then(|m| m.modified()).ok();
    if let (Some(built), Some(sources)) = (built, sources)
        && built < sources
    {
        println!(
            "cargo:warning=web/dist is older than web/src (or the other inputs of the bundle): \
             this build embeds the older web UI; run `cd web && npm run build` to update it"
        );
    }
}
