//! `/api/v1/config`: the whole document — read from the view, replaced through the
//! control plane (validated, stored atomically, applied).

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;

use super::error::ApiError;
use super::revision::{if_match, tagged};
use super::{AdminState, body, unexpected};
use tungate_config::Document;
use tungate_control::{Action, Reply};

/// `GET /api/v1/config` (with the revision as `ETag`).
pub(crate) async fn get(State(state): State<AdminState>) -> Response {
    let view = state.view();
    tagged(view.revision, Json((*view.document).clone()))
}

/// `PUT /api/v1/config` (honouring `If-Match`; answers the new revision as `ETag`).
pub(crate) async fn put(
    State(state): State<AdminState>,
    headers: HeaderMap,
    request: Body,
) -> Result<Response, ApiError> {
    let doc: Document = body::json(&headers, request).await?;
    let call = Action::ReplaceConfig(doc);
    match state.control().call_if(call, if_match(&headers)).await? {
        (Reply::Document(d), revision) => Ok(tagged(revision, Json((*d).clone()))),
        (other, _) => Err(unexpected(other)),
    }
}
