//! Named network namespaces for the demo: create and delete them (with iproute2's `ip`, so
//! a person can `ip netns exec` into them while the demo runs), run `ip -n` commands in
//! them, and run code on a thread that has entered one (sockets and devices made there stay
//! in that namespace whichever thread uses them later). The one implementation of these:
//! the test harness (`tungate-test-support`) builds its `Netns` on it.
//!
//! It never changes the calling thread's namespace: only threads it spawns enter one, and
//! the process's own namespace (the host's) is never configured.

use std::fs::File;
use std::process::Command;
use std::thread::JoinHandle;

use nix::sched::{CloneFlags, setns};

use super::DemoError;

/// Where iproute2 keeps named namespaces.
pub(crate) const NETNS_DIR: &str = "/run/netns";

/// Runs `ip ARGS`; a failure names the command and what `ip` said.
pub(crate) fn ip(args: &[&str]) -> Result<(), DemoError> {
    let command = format!("ip {}", args.join(" "));
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|source| DemoError::Tool {
            command: command.clone(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(DemoError::Command {
            command,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// Runs `ip -n NAMESPACE ARGS`.
pub(crate) fn ip_in(namespace: &str, args: &[&str]) -> Result<(), DemoError> {
    let mut all = vec!["-n", namespace];
    all.extend_from_slice(args);
    ip(&all)
}

/// Creates the namespace `name` with its loopback up.
pub fn add(name: &str) -> Result<(), DemoError> {
    ip(&["netns", "add", name])?;
    ip_in(name, &["link", "set", "lo", "up"])
}

/// Deletes the namespace `name` (its links go with it); a missing one is not an error.
pub fn delete(name: &str) -> Result<(), DemoError> {
    if !exists(name) {
        return Ok(());
    }
    ip(&["netns", "del", name])
}

/// Whether the namespace `name` exists.
pub(crate) fn exists(name: &str) -> bool {
    std::path::Path::new(NETNS_DIR).join(name).exists()
}

/// Every named namespace.
pub(crate) fn list() -> Vec<String> {
    std::fs::read_dir(NETNS_DIR)
        .map(|dir| {
            dir.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// Opens the namespace `name` (a handle that `setns` accepts).
fn open(name: &str) -> Result<File, DemoError> {
    let path = std::path::Path::new(NETNS_DIR).join(name);
    File::open(&path).map_err(|source| DemoError::Namespace {
        name: name.to_owned(),
        source,
    })
}

/// Spawns a thread named `thread` that enters the namespace `name` and runs `f` there.
pub fn spawn_in<T: Send + 'static>(
    name: &str,
    thread: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<JoinHandle<Result<T, DemoError>>, DemoError> {
    let handle = open(name)?;
    let name = name.to_owned();
    std::thread::Builder::new()
        .name(thread.to_owned())
        .spawn(move || {
            setns(&handle, CloneFlags::CLONE_NEWNET).map_err(|e| DemoError::Namespace {
                name,
                source: e.into(),
            })?;
            drop(handle);
            Ok(f())
        })
        .map_err(|source| DemoError::Thread {
            what: thread.to_owned(),
            source,
        })
}

/// Runs `f` on a short-lived thread inside the namespace `name` and returns its result.
pub fn run_in<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Result<T, DemoError> {
    spawn_in(name, "tgdemo-netns", f)?
        .join()
        .map_err(|_| DemoError::Panicked("a namespace helper thread"))?
}

/// Writes the sysctl at `path` (under `/proc/sys/`) inside the namespace `name`.
pub fn sysctl_in(name: &str, path: &str, value: &str) -> Result<(), DemoError> {
    let full = format!("/proc/sys/{path}");
    let value = value.to_owned();
    let shown = full.clone();
    run_in(name, move || std::fs::write(&full, value))?.map_err(|source| DemoError::Sysctl {
        namespace: name.to_owned(),
        path: shown,
        source,
    })
}
