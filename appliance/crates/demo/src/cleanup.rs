//! The demo's cleanup guard: everything the demo makes is recorded here the moment it
//! exists — namespaces, the gateway processes, daemons (BIRD), threads, the temporary
//! directory — and undone
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
/// How long a daemon (BIRD) may take to stop after SIGTERM before it is killed.
const DAEMON_STOP_GRACE: Duration = Duration::from_secs(5);

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
    /// The gateways (`tungate run`), with the name their stop is reported by.
    gateways: Vec<(String, Child)>,
    /// Other daemons (BIRD), with their names.
    daemons: Vec<(String, Child)>,
    threads: Vec<Worker>,
    temp_dir: Option<PathBuf>,
}

impl Cleanup {
    /// An empty guard; `stop` is the flag every demo thread watches.
    pub(crate) fn new(stop: Arc<AtomicBool>) -> Cleanup {
        Cleanup {
            stop,
            namespaces: Vec::new(),
            gateways: Vec::new(),
            daemons: Vec::new(),
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
        self.named_gateway("tungate", child)
    }

    /// Records a gateway process whose stop is reported as `NAME stopped`.
    pub(crate) fn named_gateway(&mut self, name: &str, child: Child) -> &mut Child {
        self.gateways.push((name.to_owned(), child));
        &mut self.gateways.last_mut().expect("just pushed").1
    }

    /// Records a daemon (BIRD), stopped after the gateways.
    pub(crate) fn daemon(&mut self, name: &str, child: Child) {
        self.daemons.push((name.to_owned(), child));
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

    /// A gateway process that has exited, taken off the list (its end is reported by
    /// the caller, not again by [`Cleanup::finish`]): its name and how it ended.
    pub(crate) fn gateway_exited(&mut self) -> Option<(String, ExitStatus)> {
        Self::exited(&mut self.gateways)
    }

    /// A daemon that has exited, taken off the list: its name and how it ended.
    pub(crate) fn daemon_exited(&mut self) -> Option<(String, ExitStatus)> {
        Self::exited(&mut self.daemons)
    }

    fn exited(children: &mut Vec<(String, Child)>) -> Option<(String, ExitStatus)> {
        let (index, status) = children
            .iter_mut()
            .enumerate()
            .find_map(|(i, (_, c))| c.try_wait().ok().flatten().map(|s| (i, s)))?;
        Some((children.remove(index).0, status))
    }

    /// Stops `children`: SIGTERM to all at once (a gateway removes its nftables table and
    /// prints its counters), then SIGKILL to any still running after `grace`. Returns how
    /// each ended.
    fn stop_all(
        children: Vec<(String, Child)>,
        grace: Duration,
    ) -> Vec<(String, Result<ExitStatus, StopTimeout>)> {
        for (_, child) in &children {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let started = Instant::now();
        children
            .into_iter()
            .map(|(name, mut child)| {
                loop {
                    match child.try_wait() {
                        Ok(Some(status)) => return (name, Ok(status)),
                        Ok(None) if started.elapsed() < grace => {
                            std::thread::sleep(Duration::from_millis(50))
                        }
                        _ => {
                            let _ = child.kill();
                            let _ = child.wait();
                            return (name, Err(StopTimeout));
                        }
                    }
                }
            })
            .collect()
    }

    /// Undoes everything in reverse order, telling `report` about each step; returns the
    /// problems met (the rest is still undone).
    pub(crate) fn finish(&mut self, report: &mut dyn FnMut(&str)) -> Vec<String> {
        let mut problems = Vec::new();
        self.stop.store(true, Ordering::Relaxed);
        let gateways = std::mem::take(&mut self.gateways);
        for (name, ended) in Self::stop_all(gateways, GATEWAY_STOP_GRACE) {
            match ended {
                Ok(status) if status.success() => report(&format!("{name} stopped")),
                Ok(status) => problems.push(format!("{name} exited with {status}")),
                Err(e) => problems.push(format!("{name}: {e}")),
            }
        }
        // BIRD ends on SIGTERM with status 0 (or 1 when it was killed by the signal
        // before its handler ran): only a kill after the grace period is a problem.
        let daemons = std::mem::take(&mut self.daemons);
        for (name, ended) in Self::stop_all(daemons, DAEMON_STOP_GRACE) {
            match ended {
                Ok(_) => report(&format!("{name} stopped")),
                Err(_) => problems.push(format!(
                    "{name} did not stop within {DAEMON_STOP_GRACE:?} of SIGTERM; killed"
                )),
            }
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
