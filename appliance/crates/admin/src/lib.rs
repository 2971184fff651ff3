//! The admin HTTP server (axum, on its own thread with its own tokio runtime): the
//! `/api/v1` resources of `openapi.yaml`, bearer auth, `/healthz`, `/readyz`, `/metrics`,
//! and the embedded web UI at `/`.
//!
//! Handlers read the control plane's immutable [`View`](tungate_control::View) and the data
//! path's counters, and turn every change into a [`tungate_control::Action`] sent to the
//! control thread; they never touch the state directory, the data path or the plugin host
//! themselves. One file per resource; [`endpoints`] is the one list of API routes (the
//! router is built from it and a test compares it with `openapi.yaml`).

mod auth;
mod body;
mod capture;
mod config;
mod drain;
mod error;
mod fleet_totals;
mod health;
mod listener;
mod pcapng;
mod peers;
mod plugins;
mod revision;
mod stats;
mod telemetry;
pub mod tls;
mod ui;
mod vips;

use std::net::SocketAddr;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::Router;
use axum::handler::Handler;
use axum::http::Method;
use axum::routing::{MethodFilter, MethodRouter, on};

use error::ApiError;
pub use fleet_totals::FleetPrometheus;
use tungate_control::{ControlError, ControlHandle, ErrorCode, Reply, SharedView, View};
use tungate_datapath::counters::Counters;

/// The committed API contract, served at `/api/v1/openapi.yaml`.
pub(crate) const OPENAPI_YAML: &str = include_str!("openapi.yaml");

/// How long a stopping server waits for requests in flight.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What the handlers share.
pub struct Shared {
    /// Sends actions to the control plane.
    pub control: ControlHandle,
    /// The control plane's current view.
    pub view: SharedView,
    /// The data path's counters.
    pub counters: Arc<Counters>,
    /// The bearer token.
    pub token: String,
    /// The address the listener is bound to.
    pub address: SocketAddr,
    /// Whether the listener serves HTTPS.
    pub tls: bool,
    /// Names besides `localhost` and loopback addresses that a `Host` header may give for a
    /// read without the token on a loopback listener (`--admin-host`).
    pub admin_hosts: Vec<String>,
    /// When tungate started.
    pub started: Instant,
    /// Largest plugin upload accepted (the plugin host's module cap).
    pub max_module_bytes: usize,
    /// The netcfg reconciler's progress (none when it does not run).
    pub network: Option<tungate_control::NetworkStatus>,
    /// Fleet mode: the fleet's name (`--fleet`), for `/api/v1/status` `fleet`.
    pub fleet_name: Option<String>,
    /// Fleet mode (`--fleet`): the announcer's handle, for `POST /api/v1/drain`.
    pub announce: Option<tungate_announce::AnnounceHandle>,
    /// Fleet mode: the fleet as last read from etcd (`GET /api/v1/fleet`).
    pub fleet: Option<tokio::sync::watch::Receiver<tungate_api::wire::Fleet>>,
    /// `--fleet NAME --prometheus URL`: where `GET /api/v1/fleet/totals` reads the fleet's
    /// totals.
    pub prometheus: Option<FleetPrometheus>,
}

/// The handlers' state (cheap to clone).
#[derive(Clone)]
pub struct AdminState(pub Arc<Shared>);

impl AdminState {
    /// The current view.
    pub(crate) fn view(&self) -> Arc<View> {
        self.0.view.load_full()
    }

    /// What the netcfg reconciler last found (none when it does not run).
    pub(crate) fn network(&self) -> Option<tungate_api::wire::Network> {
        self.0.network.as_ref().map(|n| stats::network(&n.borrow()))
    }

    /// When tungate started, in ms since the Unix epoch (from the uptime: a clock step
    /// after the start moves it too).
    pub(crate) fn started_unix_ms(&self) -> u64 {
        stats::unix_ms_now().saturating_sub(self.0.started.elapsed().as_millis() as u64)
    }

    /// The control handle.
    pub(crate) fn control(&self) -> &ControlHandle {
        &self.0.control
    }

    /// Whether the listener is loopback.
    pub(crate) fn loopback(&self) -> bool {
        self.0.address.ip().is_loopback()
    }

    /// The listener as `/api/v1/status` shows it.
    pub(crate) fn admin_listener(&self) -> tungate_api::wire::AdminListener {
        tungate_api::wire::AdminListener {
            address: self.0.address.to_string(),
            tls: self.0.tls,
            loopback: self.loopback(),
        }
    }

    /// The bearer token.
    pub(crate) fn token(&self) -> &str {
        &self.0.token
    }

    /// The extra `Host` names allowed for tokenless reads.
    pub(crate) fn admin_hosts(&self) -> &[String] {
        &self.0.admin_hosts
    }
}

/// An answer the control plane should not have given for this action.
pub(crate) fn unexpected(reply: Reply) -> ApiError {
    ApiError(ControlError::internal(format!(
        "unexpected reply from the control plane: {reply:?}"
    )))
}

/// The answer to a DELETE (honouring `If-Match`): 204 once the control plane removed the
/// resource.
pub(crate) async fn deleted(
    control: &ControlHandle,
    action: tungate_control::Action,
    headers: &axum::http::HeaderMap,
) -> Result<axum::http::StatusCode, ApiError> {
    match control.call_if(action, revision::if_match(headers)).await? {
        (Reply::Deleted, _) => Ok(axum::http::StatusCode::NO_CONTENT),
        (other, _) => Err(unexpected(other)),
    }
}

/// One API route: method, path (as in openapi.yaml) and its handler.
pub(crate) struct Endpoint {
    /// The method (inside `router` too; kept apart for the test against the contract).
    #[cfg(test)]
    method: Method,
    /// The path, with `{param}` segments.
    path: &'static str,
    router: MethodRouter<AdminState>,
}

fn endpoint<H, T>(method: Method, path: &'static str, handler: H) -> Endpoint
where
    H: Handler<T, AdminState>,
    T: 'static,
{
    let filter = MethodFilter::try_from(method.clone()).expect("a standard method");
    Endpoint {
        #[cfg(test)]
        method,
        path,
        router: on(filter, handler),
    }
}

/// Every API route.
pub(crate) fn endpoints() -> Vec<Endpoint> {
    use Method as M;
    vec![
        endpoint(M::GET, "/healthz", health::healthz),
        endpoint(M::GET, "/readyz", health::readyz),
        endpoint(M::GET, "/metrics", health::metrics),
        endpoint(M::GET, "/api/v1/openapi.yaml", health::openapi),
        endpoint(M::GET, "/api/v1/auth", health::auth),
        endpoint(M::GET, "/api/v1/status", stats::status),
        endpoint(M::GET, "/api/v1/stats", stats::stats),
        endpoint(M::GET, "/api/v1/fleet", stats::fleet),
        endpoint(M::GET, "/api/v1/capture", capture::capture),
        endpoint(M::POST, "/api/v1/drain", drain::drain),
        endpoint(M::GET, "/api/v1/fleet/totals", fleet_totals::totals),
        endpoint(M::GET, "/api/v1/config", config::get),
        endpoint(M::PUT, "/api/v1/config", config::put),
        endpoint(M::GET, "/api/v1/peers", peers::list),
        endpoint(M::GET, "/api/v1/peers/{name}", peers::get),
        endpoint(M::PUT, "/api/v1/peers/{name}", peers::put),
        endpoint(M::DELETE, "/api/v1/peers/{name}", peers::delete),
        endpoint(M::GET, "/api/v1/vips", vips::list),
        endpoint(M::GET, "/api/v1/vips/{address}", vips::get),
        endpoint(M::PUT, "/api/v1/vips/{address}", vips::put),
        endpoint(M::DELETE, "/api/v1/vips/{address}", vips::delete),
        endpoint(M::GET, "/api/v1/plugins", plugins::list),
        endpoint(M::GET, "/api/v1/plugins/{name}", plugins::get),
        endpoint(M::PUT, "/api/v1/plugins/{name}", plugins::put),
        endpoint(M::DELETE, "/api/v1/plugins/{name}", plugins::delete),
    ]
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        format!("{method} is not allowed on this path; see /api/v1/openapi.yaml"),
    )
}

/// The whole application: API routes, auth, and the UI as the fallback.
pub(crate) fn router(state: AdminState) -> Router {
    let mut by_path: Vec<(&'static str, MethodRouter<AdminState>)> = Vec::new();
    for e in endpoints() {
        match by_path.iter_mut().find(|(p, _)| *p == e.path) {
            Some((_, existing)) => *existing = std::mem::take(existing).merge(e.router),
            None => by_path.push((e.path, e.router)),
        }
    }
    let mut router = Router::new();
    for (path, methods) in by_path {
        router = router.route(path, methods);
    }
    router
        .fallback(ui::serve)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            body::reserve_memory,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        .with_state(state)
}

/// The running admin server.
pub struct AdminServer {
    address: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Serves `router(state)` on `listener` from a new thread (`tg-admin`) with its own
    /// single-threaded tokio runtime, with the connection limits of [`listener`]; over TLS
    /// when `tls` is given ([`tls::server_config`]).
    pub fn start(
        listener: std::net::TcpListener,
        state: AdminState,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> std::io::Result<AdminServer> {
        listener.set_nonblocking(true)?;
        let address = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("tg-admin".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let listener = match tokio::net::TcpListener::from_std(listener) {
                        Ok(l) => l,
                        Err(e) => {
                            tracing::error!("admin listener: {e}");
                            return;
                        }
                    };
                    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
                    let server = listener::serve(listener, router(state), stop_rx, tls);
                    let grace = async move {
                        let _ = stopped.await;
                        let _ = stop_tx.send(true);
                        tokio::time::sleep(SHUTDOWN_GRACE).await;
                    };
                    tokio::select! {
                        () = server => {}
                        () = grace => tracing::warn!("admin requests still open after {SHUTDOWN_GRACE:?}; closing"),
                    }
                });
            })?;
        Ok(AdminServer {
            address,
            shutdown: Some(shutdown),
            thread: Some(thread),
        })
    }

    /// The address it listens on.
    pub fn address(&self) -> SocketAddr {
        self.address
    }

    /// Stops accepting, lets requests in flight finish (at most [`SHUTDOWN_GRACE`]) and
    /// joins the thread.
    pub fn stop(mut self) {
        self.halt();
    }

    fn halt(&mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.halt();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// The router's routes are exactly the operations of openapi.yaml.
    #[test]
    fn every_route_is_in_the_contract_and_every_operation_is_routed() {
        let doc: serde_json::Value = serde_yaml_ng::from_str(OPENAPI_YAML).unwrap();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                if ["get", "put", "post", "delete", "patch", "head", "options"]
                    .contains(&method.as_str())
                {
                    documented.insert((method.to_uppercase(), path.clone()));
                }
            }
        }
        let routed: BTreeSet<(String, String)> = endpoints()
            .iter()
            .map(|e| (e.method.to_string(), e.path.to_owned()))
            .collect();
        assert_eq!(routed, documented);
    }

    /// The contract's drop reasons (the capture's `reason`) are exactly the data path's.
    #[test]
    fn drop_reasons_match_the_contract() {
        let doc: serde_json::Value = serde_yaml_ng::from_str(OPENAPI_YAML).unwrap();
        let listed: Vec<&str> = doc["components"]["schemas"]["DropReason"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        let ours: Vec<&str> = tungate_packet::DropReason::ALL
            .iter()
            .map(|r| r.as_str())
            .collect();
        assert_eq!(listed, ours);
    }

    /// The contract's error codes are exactly the control plane's.
    #[test]
    fn error_codes_match_the_contract() {
        let doc: serde_json::Value = serde_yaml_ng::from_str(OPENAPI_YAML).unwrap();
        let listed: BTreeSet<String> = doc["components"]["schemas"]["Error"]["properties"]["error"]
            ["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        let ours: BTreeSet<String> = ErrorCode::ALL
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect();
        assert_eq!(listed, ours);
    }
}
