//! `/api/v1/config`: the whole document — read from the view, replaced through the
//! control plane (validated, stored atomically, applied).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;

use super::error::ApiError;
use super::{AdminState, body, unexpected};
use tungate_config::Document;
use tungate_control::{Action, Reply};

/// `GET /api/v1/config`.
pub(crate) async fn get(State(state): State<AdminState>) -> Json<Document> {
    Json((*state.view().document).clone())
}

/// `PUT /api/v1/config`.
pub(crate) async fn put(
    State(state): State<AdminState>,
    headers: HeaderMap,
    request: Body,
) -> Result<Json<Document>, ApiError> {
    let doc: Document = body::json(&headers, request).await?;
    match state.control().call(Action::ReplaceConfig(doc)).await? {
        Reply::Document(d) => Ok(Json((*d).clone())),
        other => Err(unexpected(other)),
    }
}
