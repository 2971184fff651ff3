//! `/api/v1/peers` and `/api/v1/peers/{name}`: the real servers, one at a time.

use std::net::IpAddr;

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use super::error::ApiError;
use super::revision::{if_match, tagged};
use super::{AdminState, body, unexpected};
use tungate_config::validate::is_valid_peer_name;
use tungate_config::{HumaneDuration, Peer, TunnelKind};
use tungate_control::{Action, ErrorCode, Reply, edit};

/// The body of `PUT /api/v1/peers/{name}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct PeerBody {
    /// Must equal the path's name when given.
    #[serde(default)]
    pub name: Option<String>,
    /// The real server's address (RIP).
    pub address: IpAddr,
    /// The VIPs it serves.
    #[serde(default)]
    pub vips: Vec<IpAddr>,
    /// How long it may be silent before it is shown as such (default 30 s).
    #[serde(default)]
    pub silent_after: Option<HumaneDuration>,
    /// Whether its frames must come from the link-layer source it is expected at.
    #[serde(default)]
    pub check_source_mac: bool,
    /// The type of its return tunnel (default `ipip`).
    #[serde(default)]
    pub tunnel: TunnelKind,
    /// The UDP port of a `gue` or `fou` tunnel.
    #[serde(default)]
    pub port: Option<u16>,
    /// The GRE key of a `gre` tunnel.
    #[serde(default)]
    pub key: Option<u32>,
}

/// The path's peer name, checked.
pub(crate) fn name_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) =
        path.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()).at("name"))?;
    if !is_valid_peer_name(&name) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("{name:?} is not a valid peer name: use 1 to 12 of A-Z a-z 0-9 _ -"),
        )
        .at("name"));
    }
    Ok(name)
}

/// `GET /api/v1/peers` (with the revision as `ETag`).
pub(crate) async fn list(State(state): State<AdminState>) -> Response {
    let view = state.view();
    tagged(view.revision, Json(view.document.peers.clone()))
}

/// `GET /api/v1/peers/{name}` (with the revision as `ETag`).
pub(crate) async fn get(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = name_param(path)?;
    let view = state.view();
    let peer = view.document.peers.iter().find(|p| p.name == name);
    let peer = peer
        .cloned()
        .ok_or_else(|| ApiError(edit::no_peer(&name)))?;
    Ok(tagged(view.revision, Json(peer)))
}

/// `PUT /api/v1/peers/{name}` (honouring `If-Match`; answers the new revision as `ETag`).
pub(crate) async fn put(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let name = name_param(path)?;
    let b: PeerBody = body::json(&headers, request).await?;
    if let Some(given) = &b.name
        && *given != name
    {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("the body names peer {given:?} but the path names {name:?}"),
        )
        .at("name"));
    }
    let peer = Peer {
        name,
        address: b.address,
        vips: b.vips,
        silent_after: b.silent_after,
        check_source_mac: b.check_source_mac,
        tunnel: b.tunnel,
        port: b.port,
        key: b.key,
    };
    match state
        .control()
        .call_if(Action::PutPeer(peer), if_match(&headers))
        .await?
    {
        (Reply::Peer(p), revision) => Ok(tagged(revision, Json(p))),
        (other, _) => Err(unexpected(other)),
    }
}

/// `DELETE /api/v1/peers/{name}` (honouring `If-Match`).
pub(crate) async fn delete(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let action = Action::DeletePeer(name_param(path)?);
    super::deleted(state.control(), action, &headers).await
}
