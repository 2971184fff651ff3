//! `/api/v1/vips` and `/api/v1/vips/{address}`: the VIPs and their plugin chains.

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
use tungate_config::{Binding, Vip};
use tungate_control::{Action, ErrorCode, Reply, edit};

/// The body of `PUT /api/v1/vips/{address}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct VipBody {
    /// Must equal the path's address when given.
    #[serde(default)]
    pub address: Option<IpAddr>,
    /// Served by several peers; when left out, an existing VIP keeps its current value
    /// (so binding plugins never needs to repeat it) and a new one is not shared.
    #[serde(default)]
    pub shared: Option<bool>,
    /// The chain, in order.
    #[serde(default)]
    pub plugins: Vec<Binding>,
}

/// The path's VIP address, checked (IPv4 dotted quad or IPv6).
pub(crate) fn address_param(path: Result<Path<String>, PathRejection>) -> Result<IpAddr, ApiError> {
    let Path(text) =
        path.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()).at("address"))?;
    text.parse().map_err(|_| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!("{text:?} is not an IP address (e.g. 192.0.2.10 or 2001:db8::10)"),
        )
        .at("address")
    })
}

/// `GET /api/v1/vips` (with the revision as `ETag`).
pub(crate) async fn list(State(state): State<AdminState>) -> Response {
    let view = state.view();
    tagged(view.revision, Json(view.document.vips.clone()))
}

/// `GET /api/v1/vips/{address}` (with the revision as `ETag`).
pub(crate) async fn get(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let address = address_param(path)?;
    let view = state.view();
    let vip = view.document.vips.iter().find(|v| v.address == address);
    let vip = vip
        .cloned()
        .ok_or_else(|| ApiError(edit::no_vip(address)))?;
    Ok(tagged(view.revision, Json(vip)))
}

/// `PUT /api/v1/vips/{address}` (honouring `If-Match`; answers the new revision as `ETag`).
pub(crate) async fn put(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let address = address_param(path)?;
    let b: VipBody = body::json(&headers, request).await?;
    if let Some(given) = b.address
        && given != address
    {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!("the body names VIP {given} but the path names {address}"),
        )
        .at("address"));
    }
    let shared = b.shared.unwrap_or_else(|| {
        let view = state.view();
        view.document
            .vips
            .iter()
            .any(|v| v.address == address && v.shared)
    });
    let vip = Vip {
        address,
        shared,
        plugins: b.plugins,
    };
    match state
        .control()
        .call_if(Action::PutVip(vip), if_match(&headers))
        .await?
    {
        (Reply::Vip(v), revision) => Ok(tagged(revision, Json(v))),
        (other, _) => Err(unexpected(other)),
    }
}

/// `DELETE /api/v1/vips/{address}` (honouring `If-Match`).
pub(crate) async fn delete(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let action = Action::DeleteVip(address_param(path)?);
    super::deleted(state.control(), action, &headers).await
}
