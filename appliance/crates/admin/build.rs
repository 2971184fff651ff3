//! Build script: makes sure the web UI bundle (`web/dist`) exists and is newer than its
//! sources, because the admin server embeds it into the binary (`tungate` stays one file).
//!
//! When `web/dist` is missing or older than `web/src` (or the other inputs of the bundle)
//! and `npm` is on the PATH, it runs `npm ci` (only when `web/node_modules` is missing) and
//! `npm run build` in `web/`. Without `npm` it stops the build with what to run.

use std::path::{Path, PathBuf};
use std::process::Command;
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

/// Why an npm step of the UI build failed.
enum NpmError {
    /// npm could not be started.
    Spawn(String, std::io::Error),
    /// npm ran and failed.
    Failed(String, std::process::ExitStatus),
}

impl std::fmt::Display for NpmError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NpmError::Spawn(args, e) => write!(f, "cannot run npm {args}: {e}"),
            NpmError::Failed(args, status) => write!(f, "npm {args} failed ({status})"),
        }
    }
}

fn npm(web: &Path, args: &[&str]) -> Result<(), NpmError> {
    let status = Command::new("npm")
        .args(args)
        .current_dir(web)
        .status()
        .map_err(|e| NpmError::Spawn(args.join(" "), e))?;
    if status.success() {
        Ok(())
    } else {
        Err(NpmError::Failed(args.join(" "), status))
    }
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let web = manifest.join("../../../web");
    for input in INPUTS {
        println!("cargo:rerun-if-changed={}", web.join(input).display());
    }
    println!("cargo:rerun-if-changed={}", web.join("dist").display());
    let sources = INPUTS.iter().filter_map(|i| newest(&web.join(i))).max();
    let built = std::fs::metadata(web.join("dist/index.html"))
        .and_then(|m| m.modified())
        .ok();
    let fresh = matches!((built, sources), (Some(b), Some(s)) if b >= s);
    if fresh {
        return;
    }
    let what = if built.is_none() {
        "is missing"
    } else {
        "is older than web/src"
    };
    let has_npm = Command::new("npm").arg("--version").output().is_ok();
    if !has_npm {
        panic!(
            "web/dist {what} and npm is not installed: run `cd web && npm ci && npm run build` \
             (Node.js >= 20.19), then build tungate again"
        );
    }
    let result = (|| {
        if !web.join("node_modules").exists() {
            npm(&web, &["ci", "--no-audit", "--no-fund"])?;
        }
        npm(&web, &["run", "build"])
    })();
    if let Err(e) = result {
        panic!(
            "web/dist {what}; building it failed: {e}; run `cd web && npm ci && npm run build` and read its errors"
        );
    }
}
