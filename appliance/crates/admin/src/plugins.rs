//! `/api/v1/plugins` and `/api/v1/plugins/{name}`: uploaded modules (raw `.wasm` bodies,
//! checked exactly as `tungate plugin check` does, stored by sha256, hot-swapped into every
//! binding), their metadata and who binds them.

use axum::Json;
use axum::body::Body;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Serialize;

use super::error::ApiError;
use super::revision::{if_match, tagged};
use super::{AdminState, body, unexpected};
use tungate_config::validate::is_valid_plugin_name;
use tungate_control::store::PluginRecord;
use tungate_control::{Action, ErrorCode, Reply, View, edit};

/// The content types an upload may have.
pub(crate) const UPLOAD_TYPES: [&str; 2] = ["application/wasm", "application/octet-stream"];

/// A plugin as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct PluginOut {
    /// The stored record.
    #[serde(flatten)]
    pub record: PluginRecord,
    /// Bindings using it, as `vip#position`.
    pub bound_to: Vec<String>,
}

fn describe(view: &View, record: &PluginRecord) -> PluginOut {
    PluginOut {
        record: record.clone(),
        bound_to: edit::bindings_of(&view.document, &record.name)
            .into_iter()
            .map(|(_, vip, position)| format!("{vip}#{position}"))
            .collect(),
    }
}

/// The path's plugin name, checked (no `..`, no `/`, no leading `.`).
pub(crate) fn name_param(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(name) =
        path.map_err(|e| ApiError::new(ErrorCode::BadRequest, e.body_text()).at("name"))?;
    if !is_valid_plugin_name(&name) {
        return Err(ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "{name:?} is not a valid plugin name: use 1 to 64 of A-Z a-z 0-9 . _ - (not \
                 starting with '.')"
            ),
        )
        .at("name"));
    }
    Ok(name)
}

fn no_plugin(name: &str) -> ApiError {
    ApiError::new(
        ErrorCode::NotFound,
        format!("no plugin named {name:?}; GET /api/v1/plugins lists them"),
    )
}

/// `GET /api/v1/plugins` (with the revision as `ETag`).
pub(crate) async fn list(State(state): State<AdminState>) -> Response {
    let view = state.view();
    let list: Vec<PluginOut> = view.plugins.values().map(|r| describe(&view, r)).collect();
    tagged(view.revision, Json(list))
}

/// `GET /api/v1/plugins/{name}` (with the revision as `ETag`).
pub(crate) async fn get(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let name = name_param(path)?;
    let view = state.view();
    let record = view.plugins.get(&name).ok_or_else(|| no_plugin(&name))?;
    Ok(tagged(view.revision, Json(describe(&view, record))))
}

/// `PUT /api/v1/plugins/{name}` (honouring `If-Match`; answers the new revision as `ETag`).
pub(crate) async fn put(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let name = name_param(path)?;
    body::require_type(&headers, &UPLOAD_TYPES)?;
    let bytes = body::read_limited(&headers, request, state.0.max_module_bytes).await?;
    match state
        .control()
        .call_if(Action::PutPlugin { name, bytes }, if_match(&headers))
        .await?
    {
        (Reply::Plugin(record), revision) => {
            Ok(tagged(revision, Json(describe(&state.view(), &record))))
        }
        (other, _) => Err(unexpected(other)),
    }
}

/// `DELETE /api/v1/plugins/{name}` (honouring `If-Match`).
pub(crate) async fn delete(
    State(state): State<AdminState>,
    path: Result<Path<String>, PathRejection>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let action = Action::DeletePlugin(name_param(path)?);
    super::deleted(state.control(), action, &headers).await
}
