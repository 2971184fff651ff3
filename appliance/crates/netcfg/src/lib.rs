//! Native network configuration over netlink: desired state → plan → apply, idempotent,
//! for the gateway role (`tungate net`) and the real-server role (`tungate rs`), and the
//! gateway's `userspace`-mode tunnel fence (an nftables table).
//!
//! Flow: a role module (`gateway`, `rs`) turns a configuration into a desired state; `observe`
//! reads the kernel; `plan` lists the changes, typed by the kind of object; `apply` carries
//! each out through that object's module under `kernel`. `down` is a plan against an empty
//! desired state: it removes exactly what carries tungate's marks — links with the role's
//! alias (`tungate` on the gateway, `tungate-rs` on a real server), routes, rules and
//! addresses with protocol 116, the nftables tables `ip tungate_rs` (a real server's) and
//! `ip6 tungate_guard` (the gateway's IPv6 forwarding guard of `kernel` decap) — and restores the
//! sysctls and link states remembered in the state file.
//!
//! The API: for the CLI, [`run_net`] and [`run_rs`] (`tungate net|rs plan|apply|down`,
//! printing the changes and returning the exit status); for the daemon, [`Reconciler::spawn`]
//! on the control runtime with a `watch` channel of [`Target::Gateway`] applies at once and
//! keeps the kernel reconciled, and [`TunnelFence`] keeps the
//! kernel off the tunnel packets of `userspace` decap mode.
//!
//! This crate never runs `ip`, `sysctl`, `iptables` or `nft`, and never changes
//! `net.ipv4.ip_forward` on the gateway. Every function acts on the network namespace of
//! the calling thread.

mod apply;
mod carrier;
mod command;
mod error;
mod gateway;
mod kernel;
mod model;
mod observe;
mod plan;
mod reconcile;
mod rs;
mod state_file;

use std::path::{Path, PathBuf};

pub use carrier::{LinkDown, LinkFault, LinkRole};
pub use command::{Action, RunOptions, run_net, run_rs};
pub use error::NetError;
pub use kernel::fence::{FENCE_TABLE, FENCED_PROTOCOLS, TunnelFence};
pub use model::L4Protocol;
use model::{DesiredState, Role};
use plan::{Change, Plan};
pub use reconcile::{DEFAULT_INTERVAL, ReconcileOptions, ReconcileStatus, Reconciler, Target};
pub use rs::{DnatEntry, RsConfig, RsSettings};
use state_file::StateFile;

/// Opens an rtnetlink connection on the current tokio runtime.
fn connect() -> Result<rtnetlink::Handle, NetError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(|e| NetError::Netlink {
        action: "opening a netlink socket".into(),
        detail: e.to_string(),
    })?;
    tokio::spawn(connection);
    Ok(handle)
}

/// What [`plan_changes`] compares against: the desired state and where the state file is.
async fn plan_with(
    handle: &rtnetlink::Handle,
    desired: &DesiredState,
    state: &StateFile,
) -> Result<Plan, NetError> {
    let observed = observe::observe(handle, desired, state).await?;
    plan::diff(desired, &observed)
}

/// Lists the changes that [`apply_changes`] would make (nothing is changed).
async fn plan_changes(
    handle: &rtnetlink::Handle,
    desired: &DesiredState,
    state_path: &Path,
) -> Result<Plan, NetError> {
    let state = StateFile::load(state_path)?;
    plan_with(handle, desired, &state).await
}

/// Makes the kernel match `desired`; returns the changes made (empty when nothing was to do).
/// `on_done` hears of each change as soon as it is made.
async fn apply_changes(
    handle: &rtnetlink::Handle,
    desired: &DesiredState,
    state_path: &Path,
    on_done: &mut (dyn FnMut(&Change) + Send),
) -> Result<Plan, NetError> {
    let mut state = StateFile::load(state_path)?;
    let plan = plan_with(handle, desired, &state).await?;
    apply::execute(handle, &plan, desired, &mut state, on_done).await?;
    forget_vanished_settings(&mut state)?;
    Ok(plan)
}

/// Removes everything of `role` that tungate created and restores what it changed; returns
/// the changes made (`on_done` hears of each as it is made).
async fn down(
    handle: &rtnetlink::Handle,
    role: Role,
    state_path: &Path,
    on_done: &mut (dyn FnMut(&Change) + Send),
) -> Result<Plan, NetError> {
    apply_changes(handle, &DesiredState::empty(role), state_path, on_done).await
}

/// Drops remembered settings whose object no longer exists (a device that went away takes
/// its per-device sysctls with it: there is nothing left to restore; a fou port someone
/// else deleted is no longer tungate's to remove).
fn forget_vanished_settings(state: &mut StateFile) -> Result<(), NetError> {
    let before = state.originals.settings.len();
    let fou_ports = if state
        .originals
        .settings
        .keys()
        .any(|k| k.starts_with(state_file::FOU_KEY))
    {
        kernel::fou::list().ok()
    } else {
        None
    };
    state.originals.settings.retain(|key, _| {
        if let Some(path) = key.strip_prefix(state_file::SYSCTL_KEY) {
            Path::new(kernel::sysctl::PROC_SYS).join(path).exists()
        } else if let Some(name) = key.strip_prefix(state_file::LINK_KEY) {
            kernel::links::index_of(name).is_some()
        } else if let (Some(port), Some(ports)) =
            (key.strip_prefix(state_file::FOU_KEY), &fou_ports)
        {
            ports.iter().any(|p| p.id() == port)
        } else {
            true
        }
    });
    if state.originals.settings.len() != before {
        state.save()?;
    }
    Ok(())
}

/// The state file used when none is given: see `state_file::default_path`.
fn default_state_file(role: Role) -> PathBuf {
    state_file::default_path(role)
}
