//! Keeps the kernel's gateway networking following the document in force: the netcfg
//! [`Reconciler`] runs on the control side's own small tokio runtime (never on a data-path
//! thread) and is handed every new document through a `watch` channel.
//!
//! The start waits (bounded) for the first pass in either mode, so that the status says from
//! the first request whether the networking is as configured. In `kernel` decap mode the
//! tunnels must exist before the data path reads them, so a change waits (bounded) too. A failed pass is logged and
//! retried by the reconciler; it never stops the gateway. This module decides nothing about
//! what the tunnels are: `netcfg::gateway` does. It also passes on which of the gateway's
//! interfaces cannot carry packets (the reconciler watches them), for readiness.

use std::path::PathBuf;
use std::time::Duration;

use tokio::sync::watch;

use tungate_config::{DecapMode, Document};
use tungate_netcfg::{LinkDown, NetError, ReconcileOptions, ReconcileStatus, Reconciler, Target};

/// Why the reconciler could not start.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// Its tokio runtime could not be built.
    #[error("cannot start the netcfg runtime: {0}")]
    Runtime(std::io::Error),
    /// The reconciler could not start (netlink).
    #[error("{0}")]
    Reconciler(NetError),
}

/// Longest wait for a reconciling pass before the data path goes ahead anyway.
pub(crate) const PASS_WAIT: Duration = Duration::from_secs(5);

/// The reconciler and the runtime it runs on.
pub(crate) struct KernelFollower {
    runtime: tokio::runtime::Runtime,
    target: watch::Sender<Target>,
    status: watch::Receiver<ReconcileStatus>,
    reconciler: Option<Reconciler>,
    /// A fleet member: the target also holds GIP on `lo`.
    fleet: bool,
}

impl KernelFollower {
    /// Starts reconciling `doc` with the state file `state_file`, and waits (bounded) for the
    /// first pass.
    pub(crate) fn start(
        doc: &Document,
        state_file: PathBuf,
        fleet: bool,
    ) -> Result<KernelFollower, KernelError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tg-netcfg")
            .enable_all()
            .build()
            .map_err(KernelError::Runtime)?;
        let (target, receiver) = watch::channel(Target::gateway(doc.clone(), fleet));
        let reconciler = {
            let _entered = runtime.enter();
            Reconciler::spawn(
                receiver,
                ReconcileOptions {
                    state_file,
                    interval: tungate_netcfg::DEFAULT_INTERVAL,
                },
            )
            .map_err(KernelError::Reconciler)?
        };
        let status = reconciler.subscribe();
        let follower = KernelFollower {
            runtime,
            target,
            status,
            reconciler: Some(reconciler),
            fleet,
        };
        follower.wait_for_pass(0);
        Ok(follower)
    }

    /// Hands `doc` to the reconciler; in `kernel` mode, waits for the pass that applies it
    /// (the data path then finds the tunnels).
    pub(crate) fn follow(&self, doc: &Document) {
        let passes = self.status.borrow().passes;
        let changed = self.target.send_if_modified(|t| {
            let new = Target::gateway(doc.clone(), self.fleet);
            let differs = *t != new;
            *t = new;
            differs
        });
        if changed && doc.gateway.decap == DecapMode::Kernel {
            self.wait_for_pass(passes);
        }
    }

    /// Waits until more than `after` passes are done (at most [`PASS_WAIT`]).
    fn wait_for_pass(&self, after: u64) {
        let mut status = self.status.clone();
        let outcome = self.runtime.block_on(async {
            tokio::time::timeout(PASS_WAIT, status.wait_for(|s| s.passes > after))
                .await
                .ok()
                .and_then(|r| r.ok().map(|s| s.last_error.clone()))
        });
        match outcome {
            Some(None) => {}
            Some(Some(e)) => tracing::warn!("the networking is not as configured: {e}"),
            None => tracing::warn!("no reconciling pass within {PASS_WAIT:?}; going on"),
        }
    }

    /// The gateway's interfaces that cannot carry packets, as last seen.
    pub(crate) fn links_down(&self) -> Vec<LinkDown> {
        self.status.borrow().links_down.clone()
    }

    /// A channel that receives a message whenever [`Self::links_down`] changes (at most
    /// one pending: it means "look again").
    pub(crate) fn link_changes(&self) -> crossbeam_channel::Receiver<()> {
        let (tx, rx) = crossbeam_channel::bounded(1);
        let mut status = self.status.clone();
        self.runtime.spawn(async move {
            let mut last = status.borrow_and_update().links_down.clone();
            while status.changed().await.is_ok() {
                let now = status.borrow_and_update().links_down.clone();
                if now == last {
                    continue;
                }
                last = now;
                if let Err(crossbeam_channel::TrySendError::Disconnected(())) = tx.try_send(()) {
                    break;
                }
            }
        });
        rx
    }

    /// A receiver of the reconciler's progress (for the admin API's status).
    pub(crate) fn subscribe(&self) -> watch::Receiver<ReconcileStatus> {
        self.status.clone()
    }

    /// Stops reconciling (the tunnels stay; `tungate net down` removes them).
    pub(crate) fn stop(mut self) {
        if let Some(r) = self.reconciler.take() {
            self.runtime.block_on(r.stop());
        }
    }
}
