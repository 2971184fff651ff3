//! Native network configuration over netlink: desired state → plan → apply, idempotent,
//! for the gateway role (`tungate net`) and the real-server role (`tungate rs`).
//!
//! Flow: a role module ([`gateway`], [`rs`]) turns a configuration into a
//! [`DesiredState`]; [`observe`] reads the kernel; [`plan::diff`] lists the changes; [`apply`]
//! carries them out. `down` is a plan against an empty desired state: it removes exactly
//! what carries tungate's marks — links with the role's alias (`tungate` on the gateway,
//! `tungate-rs` on a real server), routes, rules and addresses with protocol
//! [`OWNER_PROTOCOL`] (116), the nftables table `ip tungate_rs` — and restores the sysctls and
//! link states remembered in the [`state_file`].
//!
//! For the daemon: [`Reconciler::spawn`] on the control runtime with a `watch` channel of
//! [`Target::Gateway`] applies at once and keeps the kernel reconciled; [`connect`] plus
//! [`apply_changes`] or [`down`] are the one-shot forms the CLI uses.
//!
//! This module never runs `ip`, `sysctl`, `iptables` or `nft`, never changes
//! `net.ipv4.ip_forward` on the gateway, and never touches the data path's own nftables
//! table. Every function acts on the network namespace of the calling thread.

pub mod apply;
pub mod command;
pub mod error;
pub mod gateway;
pub mod kernel;
pub mod model;
pub mod observe;
pub mod plan;
pub mod reconcile;
pub mod rs;
pub mod state_file;

use std::path::{Path, PathBuf};

pub use error::NetError;
pub use model::{DesiredState, Item, OWNER_PROTOCOL, Role};
pub use plan::{Change, Plan};
pub use reconcile::{ReconcileOptions, ReconcileStatus, Reconciler, Target};
use state_file::StateFile;

/// Opens an rtnetlink connection on the current tokio runtime.
pub fn connect() -> Result<rtnetlink::Handle, NetError> {
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
pub async fn plan_changes(
    handle: &rtnetlink::Handle,
    desired: &DesiredState,
    state_path: &Path,
) -> Result<Plan, NetError> {
    let state = StateFile::load(state_path)?;
    plan_with(handle, desired, &state).await
}

/// Makes the kernel match `desired`; returns the changes made (empty when nothing was to do).
/// `on_done` hears of each change as soon as it is made.
pub async fn apply_changes(
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
pub async fn down(
    handle: &rtnetlink::Handle,
    role: Role,
    state_path: &Path,
    on_done: &mut (dyn FnMut(&Change) + Send),
) -> Result<Plan, NetError> {
    apply_changes(handle, &DesiredState::empty(role), state_path, on_done).await
}

/// Drops remembered settings whose object no longer exists (a device that went away takes
/// its per-device sysctls with it: there is nothing left to restore).
fn forget_vanished_settings(state: &mut StateFile) -> Result<(), NetError> {
    let before = state.originals.settings.len();
    state.originals.settings.retain(|key, _| {
        if let Some(path) = key.strip_prefix("sysctl ") {
            Path::new(kernel::sysctl::PROC_SYS).join(path).exists()
        } else if let Some(name) = key.strip_prefix("link ") {
            kernel::links::index_of(name).is_some()
        } else {
            true
        }
    });
    if state.originals.settings.len() != before {
        state.save()?;
    }
    Ok(())
}

/// The state file used when none is given: see [`state_file::default_path`].
pub fn default_state_file(role: Role) -> PathBuf {
    state_file::default_path(role)
}
