//! The fleet tasks of a running gateway: follow the fleet state (a watch on the state
//! prefix; every change, and every reconnection, reads the state and hands it to the
//! control plane, which applies it or reports why not), and register this gateway under a
//! lease while listing the fleet's registrations for `GET /api/v1/fleet`.
//! Both retry forever: etcd being away never stops forwarding, and the gateway catches up
//! when it returns.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use etcd_client::{GetOptions, WatchOptions};
use tokio::sync::watch;

use crate::store::Etcd;
use tungate_api::wire::{Fleet, FleetGateway};
use tungate_control::fleet::FleetWriteError;
use tungate_control::{Action, ControlHandle, SharedView};

/// How long a registration outlives its gateway (the lease's time to live), seconds.
pub(crate) const LEASE_TTL_SECONDS: i64 = 5;

/// How often the registration is refreshed and the fleet listed.
const TICK: Duration = Duration::from_secs(1);

/// How long to wait before trying etcd again after a failure.
const RETRY: Duration = Duration::from_secs(1);

/// Follows the fleet state until the runtime stops.
pub(crate) async fn follow(etcd: Etcd, control: ControlHandle) {
    let mut failing = false;
    loop {
        let error = follow_once(&etcd, &control).await;
        if !failing {
            tracing::warn!("fleet: cannot follow etcd ({error}); retrying every second");
        }
        failing = true;
        tokio::time::sleep(RETRY).await;
    }
}

/// Reads and hands over the state, then watches for changes until the watch fails.
async fn follow_once(etcd: &Etcd, control: &ControlHandle) -> FleetWriteError {
    let mut client = match etcd.client().await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let watch = client.watch(etcd.layout.state(), Some(WatchOptions::new().with_prefix()));
    let (_watcher, mut stream) = match tokio::time::timeout(Duration::from_secs(3), watch).await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return FleetWriteError::Unreachable(e.to_string()),
        Err(_) => return FleetWriteError::Unreachable("the watch did not start".into()),
    };
    // Read after the watch started, so no change falls between the two.
    if let Err(e) = hand_over(etcd, control).await {
        return e;
    }
    loop {
        match stream.message().await {
            Ok(Some(resp)) if resp.canceled() => {
                return FleetWriteError::Unreachable(format!(
                    "etcd cancelled the watch: {}",
                    resp.cancel_reason()
                ));
            }
            Ok(Some(resp)) if resp.events().is_empty() => {}
            Ok(Some(_)) => {
                if let Err(e) = hand_over(etcd, control).await {
                    return e;
                }
            }
            Ok(None) => return FleetWriteError::Unreachable("etcd ended the watch".into()),
            Err(e) => return FleetWriteError::Unreachable(e.to_string()),
        }
    }
}

/// Reads the fleet state and has the control plane apply it.
async fn hand_over(etcd: &Etcd, control: &ControlHandle) -> Result<(), FleetWriteError> {
    if let Some(state) = etcd.read().await? {
        let revision = state.revision;
        if let Err(e) = control.call(Action::FleetApply(Box::new(state))).await {
            tracing::error!("fleet: revision {revision}: {e}");
        }
    }
    Ok(())
}

/// Where this gateway's announcement of GIP stands (`announced`, `withdrawn`, `draining`),
/// read for every registration refresh.
pub type AnnouncementSource = Arc<dyn Fn() -> Option<&'static str> + Send + Sync>;

/// This gateway's registration, from the view in force and its announcement.
fn registration(
    etcd: &Etcd,
    view: &SharedView,
    address: &str,
    announcement: &AnnouncementSource,
) -> FleetGateway {
    let view = view.load();
    let quarantined = view
        .bindings
        .snapshot()
        .into_iter()
        .filter(|b| b.quarantined)
        .map(|b| format!("{}#{} {}", b.key.vip, b.key.position, b.key.plugin))
        .collect();
    let fleet = view.fleet.as_ref();
    FleetGateway {
        member: etcd.member.clone(),
        address: address.to_owned(),
        version: env!("CARGO_PKG_VERSION").to_owned(),
        applied_revision: view.revision.number(),
        error: fleet.and_then(|f| f.error.clone()),
        ready: view.ready,
        not_ready: view.not_ready.clone(),
        io: view.io.path.to_owned(),
        quarantined,
        announcement: announcement().map(str::to_owned),
        latest: false,
    }
}

/// The lease this gateway's registration lives under (revoked on a clean stop).
pub(crate) type LeaseSlot = Arc<Mutex<Option<i64>>>;

/// Registers this gateway under a lease and lists the fleet, until the runtime stops.
pub(crate) async fn register(
    etcd: Etcd,
    view: SharedView,
    address: String,
    announcement: AnnouncementSource,
    lease: LeaseSlot,
    report: watch::Sender<Fleet>,
) {
    let mut failing = false;
    loop {
        let error = register_once(&etcd, &view, &address, &announcement, &lease, &report).await;
        report.send_modify(|r| {
            r.reachable = false;
            r.error = Some(error.to_string());
        });
        if !failing {
            tracing::warn!("fleet: cannot register in etcd ({error}); retrying every second");
        }
        failing = true;
        tokio::time::sleep(RETRY).await;
    }
}

async fn register_once(
    etcd: &Etcd,
    view: &SharedView,
    address: &str,
    announcement: &AnnouncementSource,
    lease: &LeaseSlot,
    report: &watch::Sender<Fleet>,
) -> FleetWriteError {
    let unreachable = |e: etcd_client::Error| FleetWriteError::Unreachable(e.to_string());
    let mut client = match etcd.client().await {
        Ok(c) => c,
        Err(e) => return e,
    };
    let id = match tokio::time::timeout(TICK * 3, client.lease_grant(LEASE_TTL_SECONDS, None)).await
    {
        Ok(Ok(grant)) => grant.id(),
        Ok(Err(e)) => return unreachable(e),
        Err(_) => return FleetWriteError::Unreachable("no lease granted in time".into()),
    };
    *lease.lock().expect("lease slot") = Some(id);
    let (mut keeper, mut answers) = match client.lease_keep_alive(id).await {
        Ok(k) => k,
        Err(e) => return unreachable(e),
    };
    let mut registered: Option<FleetGateway> = None;
    loop {
        let now = registration(etcd, view, address, announcement);
        if registered.as_ref() != Some(&now) {
            let value = serde_json::to_vec(&now).expect("serialises");
            if let Err(e) = etcd
                .put_leased(etcd.layout.gateway(&etcd.member), value, id)
                .await
            {
                return e;
            }
            registered = Some(now);
        }
        if let Err(e) = keeper.keep_alive().await {
            return unreachable(e);
        }
        match tokio::time::timeout(TICK * 3, answers.message()).await {
            Ok(Ok(Some(answer))) if answer.ttl() > 0 => {}
            Ok(Ok(_)) => return FleetWriteError::Unreachable("the lease expired".into()),
            Ok(Err(e)) => return unreachable(e),
            Err(_) => return FleetWriteError::Unreachable("no keep-alive answer".into()),
        }
        match list(etcd).await {
            Ok((latest, gateways)) => report.send_modify(|r| {
                r.reachable = true;
                r.error = None;
                r.latest_revision = latest;
                r.gateways = gateways;
            }),
            Err(e) => return e,
        }
        tokio::time::sleep(TICK).await;
    }
}

/// The fleet's latest revision and its registered gateways, each marked whether it runs
/// that revision.
async fn list(etcd: &Etcd) -> Result<(u64, Vec<FleetGateway>), FleetWriteError> {
    let unreachable = |e: etcd_client::Error| FleetWriteError::Unreachable(e.to_string());
    let mut client = etcd.client().await?;
    let latest = client
        .get(etcd.layout.revision(), None)
        .await
        .map_err(unreachable)?
        .kvs()
        .first()
        .map_or(0, |kv| kv.mod_revision() as u64);
    let resp = client
        .get(
            etcd.layout.gateways(),
            Some(GetOptions::new().with_prefix()),
        )
        .await
        .map_err(unreachable)?;
    let mut gateways: Vec<FleetGateway> = resp
        .kvs()
        .iter()
        .filter_map(|kv| serde_json::from_slice::<FleetGateway>(kv.value()).ok())
        .map(|mut g| {
            g.latest = g.applied_revision == latest;
            g
        })
        .collect();
    gateways.sort_by(|a, b| a.member.cmp(&b.member));
    Ok((latest, gateways))
}
