//! The demo's cleanup guard: everything the demo makes is recorded here the moment it
//! exists — namespaces, the gateway process, threads, the temporary directory — and undone
//! in reverse order by [`Cleanup::finish`], or by `Drop` when setup fails half-way or the
//! demo panics.
//!
//! It only removes what was recorded: never a namespace, process or file of anyone else.

use std::path::PathBuf;
use std::process::{Child, ExitStatus};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::{DemoError, netns};

/// How long the gateway may take to stop after SIGTERM before it is killed.
const GATEWAY_STOP_GRACE: Duration = Duration::from_secs(10);

/// The gateway did not stop within [`GATEWAY_STOP_GRACE`] of SIGTERM and was killed.
#[derive(Debug, thiserror::Error)]
#[error("tungate did not stop within {GATEWAY_STOP_GRACE:?} of SIGTERM; killed")]
pub(crate) struct StopTimeout;

/// A thread of the demo: its name and handle.
type Worker = (String, JoinHandle<Result<Result<(), DemoError>, DemoError>>);

/// What the demo made, to be removed.
pub(crate) struct Cleanup {
    stop: Arc<AtomicBool>,
    namespaces: Vec<String>,
    gateway: Option<Child>,
    threads: Vec<Worker>,
    temp_dir: Option<PathBuf>,
}

impl Cleanup {
    /// An empty guard; `stop` is the flag every demo thread watches.
    pub(crate) fn new(stop: Arc<AtomicBool>) -> Cleanup {
        Cleanup {
            stop,
            namespaces: Vec::new(),
            gateway: None,
            threads: Vec::new(),
            temp_dir: None,
        }
    }

    /// Records a namespace.
    pub(crate) fn namespace(&mut self, name: &str) {
        self.namespaces.push(name.to_owned());
    }

    /// Records the gateway process.
    pub(crate) fn gateway(&mut self, child: Child) -> &mut Child {
        self.gateway.insert(child)
    }

    /// Records a thread that stops when the stop flag is set.
    pub(crate) fn thread(
        &mut self,
        name: &str,
        handle: JoinHandle<Result<Result<(), DemoError>, DemoError>>,
    ) {
        self.threads.push((name.to_owned(), handle));
    }

    /// Records the temporary directory.
    pub(crate) fn temp_dir(&mut self, path: PathBuf) {
        self.temp_dir = Some(path);
    }

    /// The name of a recorded thread that has ended, if any (it should not before stop).
    pub(crate) fn ended_thread(&self) -> Option<&str> {
        self.threads
            .iter()
            .find(|(_, h)| h.is_finished())
            .map(|(n, _)| n.as_str())
    }

    /// Whether the gateway process has exited.
    pub(crate) fn gateway_exited(&mut self) -> Option<ExitStatus> {
        self.gateway
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
    }

    /// Stops the gateway: SIGTERM (it removes its nftables table and prints its counters),
    /// then SIGKILL after a grace period. Returns how it ended.
    pub(crate) fn stop_gateway(&mut self) -> Option<Result<ExitStatus, StopTimeout>> {
        let mut child = self.gateway.take()?;
        if let Ok(Some(status)) = child.try_wait() {
            return Some(Ok(status));
        }
        let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        let started = Instant::now();
        loop {
            match child.try_wait() {
                Ok(Some(status)) => return Some(Ok(status)),
                Ok(None) if started.elapsed() < GATEWAY_STOP_GRACE => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Some(Err(StopTimeout));
                }
            }
        }
    }

    /// Undoes everything in reverse order, telling `report` about each step; returns the
    /// problems met (the rest is still undone).
    pub(crate) fn finish(&mut self, report: &mut dyn FnMut(&str)) -> Vec<String> {
        let mut problems = Vec::new();
        self.stop.store(true, Ordering::Relaxed);
        match self.stop_gateway() {
            Some(Ok(status)) if status.success() => report("tungate stopped"),
            Some(Ok(status)) => problems.push(format!("tungate exited with {status}")),
            Some(Err(e)) => problems.push(e.to_string()),
            None => {}
        }
        for (name, handle) in self.threads.drain(..).rev() {
            match handle.join() {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e)) | Err(e)) => problems.push(format!("{name}: {e}")),
                Err(_) => problems.push(format!("{name}: panicked")),
            }
        }
        for name in self.namespaces.drain(..).rev() {
            match netns::delete(&name) {
                Ok(()) => report(&format!("removed namespace {name} (and its links)")),
                Err(e) => problems.push(e.to_string()),
            }
        }
        if let Some(dir) = self.temp_dir.take() {
            match std::fs::remove_dir_all(&dir) {
                Ok(()) => report(&format!("removed {}", dir.display())),
                Err(e) => problems.push(format!("cannot remove {}: {e}", dir.display())),
            }
        }
        problems
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for problem in self.finish(&mut |_| {}) {
            err!("tungate demo: cleanup: {problem}");
        }
    }
}
