//! Keeping the kernel reconciled: re-plan and apply every few seconds, whenever a link,
//! address, route or rule changes, whenever a device's IPv4 `forwarding` or `rp_filter`
//! changes (netlink notifications; writing `ip_forward` resets every device's `forwarding`,
//! and a gateway tunnel must get its `forwarding=0` back at once), and whenever the
//! configuration changes — so that a tunnel deleted by hand comes back. On every link
//! notification (at once, before the pass) and after every pass it also says which of the
//! gateway's ingress and egress interfaces cannot carry packets ([`crate::carrier`],
//! [`ReconcileStatus::links_down`]): part of the gateway's readiness.
//!
//! The daemon spawns a [`Reconciler`] on its control-side tokio runtime (never on a data-path
//! thread) and hands it the configuration through a `watch` channel; it reads progress from
//! [`Reconciler::status`]. This module never exits the process and never stops on a failed
//! pass: it reports the error and tries again.

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use rtnetlink::MulticastGroup;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::carrier::{self, LinkDown, LinkRole};
use crate::error::NetError;
use crate::model::DesiredState;
use crate::rs::{self, RsConfig};
use crate::{apply_changes, gateway};
use tungate_config::Document;

/// Default time between two passes when nothing happens.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(5);
/// How long to wait after a kernel notification for the burst to end before a pass.
const SETTLE: Duration = Duration::from_millis(200);
/// The rtnetlink group of IPv4 per-device configuration changes (`RTNLGRP_IPV4_NETCONF`).
const RTNLGRP_IPV4_NETCONF: u32 = 24;

/// A socket that receives the kernel's IPv4 netconf notifications (netlink-packet-route does
/// not decode them, so they are read raw: any datagram means "look again").
fn netconf_socket() -> std::io::Result<rtnetlink::sys::TokioSocket> {
    use rtnetlink::sys::AsyncSocket;
    let mut socket = rtnetlink::sys::TokioSocket::new(rtnetlink::sys::protocols::NETLINK_ROUTE)?;
    socket.socket_mut().bind_auto()?;
    socket.socket_mut().add_membership(RTNLGRP_IPV4_NETCONF)?;
    Ok(socket)
}

/// What to reconcile: one role's configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// The gateway role, from the configuration document.
    Gateway(Document),
    /// The gateway role of a fleet member (`--fleet`): also the shared GIP on `lo`, with
    /// the ARP settings that keep it off the LAN.
    FleetGateway(Document),
    /// The real-server role, from checked settings.
    RealServer(RsConfig),
}

impl Target {
    /// The gateway role's target for `doc`: [`Target::FleetGateway`] in fleet mode.
    pub fn gateway(doc: Document, fleet: bool) -> Target {
        if fleet {
            Target::FleetGateway(doc)
        } else {
            Target::Gateway(doc)
        }
    }

    /// The interfaces whose carrier the gateway's readiness depends on (none for the
    /// real-server role).
    fn watched_links(&self) -> Vec<(LinkRole, String)> {
        match self {
            Target::Gateway(doc) | Target::FleetGateway(doc) => carrier::watched(doc),
            Target::RealServer(_) => Vec::new(),
        }
    }

    /// The desired state now (the gateway's tunnel MTUs follow the kernel's routes).
    pub(crate) async fn desired(
        &self,
        handle: &rtnetlink::Handle,
    ) -> Result<DesiredState, NetError> {
        match self {
            Target::Gateway(doc) => gateway::desired_from_kernel(handle, doc).await,
            Target::FleetGateway(doc) => {
                let mut state = gateway::desired_from_kernel(handle, doc).await?;
                state.items.extend(gateway::fleet_items(doc));
                Ok(state)
            }
            Target::RealServer(config) => rs::desired_from_kernel(handle, config).await,
        }
    }
}

/// Settings of a [`Reconciler`].
#[derive(Debug, Clone)]
pub struct ReconcileOptions {
    /// The state file (original values of changed settings).
    pub state_file: PathBuf,
    /// Time between two passes when nothing happens.
    pub interval: Duration,
}

/// Progress of a [`Reconciler`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileStatus {
    /// Passes completed (successful or not).
    pub passes: u64,
    /// Changes made since the start.
    pub changes_applied: u64,
    /// The error of the last pass, if it failed.
    pub last_error: Option<String>,
    /// The gateway's ingress and egress interfaces that cannot carry packets (missing,
    /// down, or without carrier), as last seen; empty when all can (or none is known).
    pub links_down: Vec<LinkDown>,
}

/// A running reconciliation task.
pub struct Reconciler {
    status: watch::Receiver<ReconcileStatus>,
    task: JoinHandle<()>,
}

impl Reconciler {
    /// Starts reconciling `target` on the current tokio runtime; the first pass runs at once.
    /// A new value sent on `target` is applied right away. Must be called from inside a
    /// tokio runtime with I/O and time enabled.
    pub fn spawn(
        target: watch::Receiver<Target>,
        options: ReconcileOptions,
    ) -> Result<Self, NetError> {
        let netlink_error = |e: std::io::Error| NetError::Netlink {
            action: "opening a netlink socket for reconciling".into(),
            detail: e.to_string(),
        };
        let (connection, handle, _) = rtnetlink::new_connection().map_err(netlink_error)?;
        let (events_connection, _, events) = rtnetlink::new_multicast_connection(&[
            MulticastGroup::Link,
            MulticastGroup::Ipv4Ifaddr,
            MulticastGroup::Ipv4Route,
            MulticastGroup::Ipv4Rule,
        ])
        .map_err(netlink_error)?;
        let netconf = netconf_socket().map_err(netlink_error)?;
        let (status_tx, status) = watch::channel(ReconcileStatus::default());
        let task = tokio::spawn(async move {
            let connection = tokio::spawn(connection);
            let events_connection = tokio::spawn(events_connection);
            run(handle, target, options, events, netconf, status_tx).await;
            connection.abort();
            events_connection.abort();
        });
        Ok(Self { status, task })
    }

    /// The progress so far.
    pub fn status(&self) -> ReconcileStatus {
        self.status.borrow().clone()
    }

    /// A receiver that sees every new status (e.g. to wait for the first pass).
    pub fn subscribe(&self) -> watch::Receiver<ReconcileStatus> {
        self.status.clone()
    }

    /// Stops reconciling (what was applied stays; `down` removes it).
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn run(
    handle: rtnetlink::Handle,
    mut target: watch::Receiver<Target>,
    options: ReconcileOptions,
    mut events: futures::channel::mpsc::UnboundedReceiver<(
        rtnetlink::packet_core::NetlinkMessage<rtnetlink::packet_route::RouteNetlinkMessage>,
        rtnetlink::sys::SocketAddr,
    )>,
    netconf: rtnetlink::sys::TokioSocket,
    status: watch::Sender<ReconcileStatus>,
) {
    use rtnetlink::sys::AsyncSocketExt;
    loop {
        let current = target.borrow_and_update().clone();
        let watched = current.watched_links();
        check_links(&handle, &watched, &status).await;
        let outcome = match current.desired(&handle).await {
            Ok(desired) => {
                let mut log = |change: &crate::Change| {
                    tracing::info!(target: "tungate::netcfg", "reconciled: {change}");
                };
                apply_changes(&handle, &desired, &options.state_file, &mut log).await
            }
            Err(e) => Err(e),
        };
        status.send_modify(|s| {
            s.passes += 1;
            match &outcome {
                Ok(plan) => {
                    s.changes_applied += plan.changes.len() as u64;
                    s.last_error = None;
                }
                Err(e) => s.last_error = Some(e.to_string()),
            }
        });
        if let Err(e) = &outcome {
            tracing::warn!(target: "tungate::netcfg", "reconciling failed: {e}");
        }
        check_links(&handle, &watched, &status).await;
        tokio::select! {
            _ = tokio::time::sleep(options.interval) => {}
            event = events.next() => {
                if event.is_none() {
                    // The notification socket closed: fall back to the timer alone.
                    tokio::time::sleep(options.interval).await;
                } else {
                    // Readiness follows a link at once, not after the settling pause.
                    check_links(&handle, &watched, &status).await;
                    tokio::time::sleep(SETTLE).await;
                    while events.try_recv().is_ok() {}
                }
            }
            notice = netconf.recv_from_full() => {
                if notice.is_err() {
                    tokio::time::sleep(options.interval).await;
                } else {
                    tokio::time::sleep(SETTLE).await;
                }
            }
            changed = target.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Reads which of `watched` cannot carry packets and publishes it when it changed (a failed
/// read keeps the last known state: it is retried on the next notification or pass).
async fn check_links(
    handle: &rtnetlink::Handle,
    watched: &[(LinkRole, String)],
    status: &watch::Sender<ReconcileStatus>,
) {
    match carrier::check(handle, watched).await {
        Ok(down) => {
            status.send_if_modified(|s| {
                if s.links_down == down {
                    return false;
                }
                for d in &down {
                    if !s.links_down.contains(d) {
                        tracing::warn!(target: "tungate::netcfg", "{d}");
                    }
                }
                for d in &s.links_down {
                    if !down.iter().any(|n| n.name == d.name) {
                        tracing::info!(target: "tungate::netcfg", "{} interface {} is up again", d.role, d.name);
                    }
                }
                s.links_down = down;
                true
            });
        }
        Err(e) => tracing::warn!(target: "tungate::netcfg", "cannot read the links: {e}"),
    }
}
