//! Starting a daemon the demo runs in one of its namespaces (BIRD, etcd) so that it never
//! outlives the demo: its own process group (Ctrl-C reaches the demo only, which stops
//! everything in order) and SIGTERM from the kernel if the demo dies without its guard
//! running (SIGKILL).

use std::os::unix::process::CommandExt as _;
use std::process::{Child, Command};

use super::DemoError;

/// Spawns `command` in its own process group, tied to the demo's life; `what` names it in
/// the error (e.g. `ip netns exec NS bird`).
pub(crate) fn spawn_tied(command: &mut Command, what: String) -> Result<Child, DemoError> {
    command.process_group(0);
    // SAFETY: between fork and exec the child makes one async-signal-safe system call
    // (prctl) and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)?;
            Ok(())
        });
    }
    command.spawn().map_err(|source| DemoError::Tool {
        command: what,
        source,
    })
}
