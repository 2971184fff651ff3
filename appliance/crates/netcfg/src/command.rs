//! The work behind `tungate net plan|apply|down` and `tungate rs plan|apply|down`: load the
//! configuration, run one action on a small tokio runtime of its own, print the changes one
//! per line, and return the exit status. `tungate net down` also lowers the `userspace`
//! decap mode's tunnel fence, which a stopped gateway leaves in place.
//!
//! Exit statuses: 0 done (for `plan`: nothing would change), [`EXIT_CHANGES_PENDING`] (3)
//! `plan` found changes, [`EXIT_BAD_CONFIG`] (2) bad configuration, [`EXIT_FAILURE`] (1) the
//! kernel refused or another failure. This module never parses the command line (the CLI
//! does) and never prints anything but the changes and the errors.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::sync::watch;

use crate::error::NetError;
use crate::kernel::fence::{FENCE_TABLE, TunnelFence};
use crate::model::Role;
use crate::plan::Plan;
use crate::reconcile::{ReconcileOptions, Reconciler, Target};
use crate::rs::RsSettings;
use crate::{apply_changes, connect, default_state_file, down, plan_changes};
use tungate_config as config;
use tungate_config::EXIT_BAD_CONFIG;

/// Exit status of `plan` when changes are pending.
pub(crate) const EXIT_CHANGES_PENDING: i32 = 3;
/// Exit status of a failure (the kernel refused, a conflict, an I/O error).
pub(crate) const EXIT_FAILURE: i32 = 1;

/// What to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// List the changes; change nothing.
    Plan,
    /// Make the changes.
    Apply,
    /// Remove what tungate created, restore what it changed.
    Down,
}

/// Options shared by both roles.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The state file (default: [`default_state_file`] of the role).
    pub state_file: Option<PathBuf>,
    /// After `apply`, keep reconciling until SIGINT or SIGTERM.
    pub watch: bool,
    /// Time between two reconciling passes in watch mode.
    pub interval: Duration,
    /// The gateway is a fleet member (`--fleet NAME`): it also holds GIP on `lo` without
    /// ARP (the real-server role ignores it).
    pub fleet: bool,
}

/// `tungate net ACTION`: the gateway role from the document in `config_file` (not needed
/// for `down`).
pub fn run_net(action: Action, config_file: Option<&Path>, options: &RunOptions) -> i32 {
    let target = match (action, config_file) {
        (Action::Down, _) => None,
        (_, None) => {
            eprintln!("tungate: --config FILE is required for plan and apply");
            return EXIT_BAD_CONFIG;
        }
        (_, Some(file)) => match config::load_file(file) {
            Ok(doc) => Some(Target::gateway(doc, options.fleet)),
            Err(e) => {
                eprintln!("tungate: invalid configuration: {e}");
                return EXIT_BAD_CONFIG;
            }
        },
    };
    run(Role::Gateway, action, target, options)
}

/// `tungate rs ACTION`: the real-server role from a settings file and flags (flags win;
/// neither is needed for `down`).
pub fn run_rs(
    action: Action,
    settings_file: Option<&Path>,
    flags: RsSettings,
    options: &RunOptions,
) -> i32 {
    let target = if action == Action::Down {
        None
    } else {
        let from_file = match settings_file.map(RsSettings::load).transpose() {
            Ok(settings) => settings.unwrap_or_default(),
            Err(e) => {
                eprintln!("tungate: invalid real-server settings: {e}");
                return EXIT_BAD_CONFIG;
            }
        };
        match from_file.overridden_by(flags).resolve() {
            Ok(config) => Some(Target::RealServer(config)),
            Err(e) => {
                eprintln!("tungate: invalid real-server settings:\n{e}");
                return EXIT_BAD_CONFIG;
            }
        }
    };
    run(Role::RealServer, action, target, options)
}

fn run(role: Role, action: Action, target: Option<Target>, options: &RunOptions) -> i32 {
    let state_file = options
        .state_file
        .clone()
        .unwrap_or_else(|| default_state_file(role));
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tungate: cannot start a runtime: {e}");
            return EXIT_FAILURE;
        }
    };
    runtime.block_on(async {
        let outcome = once(role, action, target.as_ref(), &state_file)
            .await
            .and_then(|plan| Ok((plan, lower_fence(role, action)?)));
        let status = match outcome {
            Ok((plan, fence)) => report(action, &plan, fence),
            Err(e) => {
                eprintln!("tungate: {e}");
                EXIT_FAILURE
            }
        };
        match (action, target) {
            (Action::Apply, Some(target)) if options.watch => {
                watch_until_signal(target, state_file, options.interval).await
            }
            _ => status,
        }
    })
}

async fn once(
    role: Role,
    action: Action,
    target: Option<&Target>,
    state_file: &Path,
) -> Result<Plan, NetError> {
    let handle = connect()?;
    // Changes are printed as they are made, so a failure part-way shows what was done. A
    // closed output (`tungate net apply | head -1`) must not stop a change half-made: the
    // lines are then lost, the work goes on.
    let mut print = |change: &crate::Change| {
        let _ = writeln!(std::io::stdout().lock(), "{change}");
    };
    match (action, target) {
        (Action::Down, _) => down(&handle, role, state_file, &mut print).await,
        (_, None) => Ok(Plan::default()),
        (Action::Plan, Some(target)) => {
            let desired = target.desired(&handle).await?;
            plan_changes(&handle, &desired, state_file).await
        }
        (Action::Apply, Some(target)) => {
            let desired = target.desired(&handle).await?;
            apply_changes(&handle, &desired, state_file, &mut print).await
        }
    }
}

/// `tungate net down` also lowers the `userspace` decap fence, which a stopped gateway
/// leaves in place on purpose (see `kernel::fence`); whether there was one.
fn lower_fence(role: Role, action: Action) -> Result<bool, NetError> {
    if (role, action) != (Role::Gateway, Action::Down) {
        return Ok(false);
    }
    let removed = TunnelFence::new().lower()?;
    if removed {
        println!("delete nftables table {FENCE_TABLE} (the userspace decap fence)");
    }
    Ok(removed)
}

fn report(action: Action, plan: &Plan, fence_removed: bool) -> i32 {
    if action == Action::Plan {
        // `plan` only reads: the CLI lets SIGPIPE end it quietly on a closed output.
        let _ = write!(std::io::stdout().lock(), "{plan}");
    }
    let changes = plan.changes.len() + usize::from(fence_removed);
    match (action, plan.is_empty() && !fence_removed) {
        (_, true) => {
            eprintln!("tungate: nothing to change");
            0
        }
        (Action::Plan, false) => {
            eprintln!("tungate: {changes} change(s) pending");
            EXIT_CHANGES_PENDING
        }
        (_, false) => {
            eprintln!("tungate: {changes} change(s) made");
            0
        }
    }
}

async fn watch_until_signal(target: Target, state_file: PathBuf, interval: Duration) -> i32 {
    let (_keep, receiver) = watch::channel(target);
    let reconciler = match Reconciler::spawn(
        receiver,
        ReconcileOptions {
            state_file,
            interval,
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("tungate: {e}");
            return EXIT_FAILURE;
        }
    };
    eprintln!(
        "tungate: reconciling every {interval:?} and on changes; stop with SIGINT or SIGTERM"
    );
    let mut terminate =
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("tungate: cannot watch for SIGTERM: {e}");
                return EXIT_FAILURE;
            }
        };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    let status = reconciler.status();
    reconciler.stop().await;
    eprintln!(
        "tungate: stopped after {} passes, {} change(s) made",
        status.passes, status.changes_applied
    );
    0
}
