//! The probes and documents: `/healthz` (the process answers), `/readyz` (the data path
//! runs with the configuration in force and the ingress and egress interfaces carry
//! packets; 503 names the reason), `/metrics` (Prometheus text), the API contract,
//! and `/api/v1/auth` (the token check; the auth layer did the work).

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;

use super::AdminState;
use crate::telemetry;

/// `GET /healthz`.
pub(crate) async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "ok\n",
    )
}

/// `GET /readyz`: 200 `ready`, or 503 `not ready: REASON` (e.g. `egress interface eth1 is
/// down (no carrier)`).
pub(crate) async fn readyz(State(state): State<AdminState>) -> impl IntoResponse {
    let view = state.view();
    let text = |t: String| ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], t);
    match (&view.not_ready, view.ready) {
        (None, true) => (StatusCode::OK, text("ready\n".into())),
        (why, _) => (
            StatusCode::SERVICE_UNAVAILABLE,
            text(format!(
                "not ready: {}\n",
                why.as_deref().unwrap_or("the data path is not running")
            )),
        ),
    }
}

/// `GET /metrics`.
pub(crate) async fn metrics(State(state): State<AdminState>) -> impl IntoResponse {
    let view = state.view();
    let counters = state.0.counters.snapshot();
    let bindings = view.bindings.snapshot();
    let peers = super::stats::peer_stats(
        &view,
        &counters,
        super::stats::unix_ms_now(),
        state.started_unix_ms(),
    );
    let text = telemetry::render(&telemetry::Sources {
        version: env!("CARGO_PKG_VERSION"),
        uptime_seconds: state.0.started.elapsed().as_secs_f64(),
        generation: view.generation,
        ready: view.ready,
        network_in_sync: state.network().map(|n| n.in_sync),
        fleet_revisions: view
            .fleet
            .as_ref()
            .map(|f| (f.applied.number(), f.latest.number())),
        counters: &counters,
        bindings: &bindings,
        peers: &peers,
    });
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
}

/// `GET /api/v1/openapi.yaml`.
pub(crate) async fn openapi() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/yaml")],
        super::OPENAPI_YAML,
    )
}

/// `GET /api/v1/auth`: reached only with a valid token.
pub(crate) async fn auth() -> StatusCode {
    StatusCode::NO_CONTENT
}
