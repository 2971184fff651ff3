//! The configuration's revision on the wire: `ETag` on reads of the configuration and its
//! resources, `If-Match` on writes (a stale one is answered 412 by the control plane, which
//! checks it in the same step as the change). Only headers here: the revision itself is
//! [`tungate_control::Revision`].

use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use tungate_control::{IfMatch, Revision};

/// The request's `If-Match` precondition, if it sent one (a value that is not text never
/// matches).
pub(crate) fn if_match(headers: &HeaderMap) -> Option<IfMatch> {
    let value = headers.get(header::IF_MATCH)?;
    Some(IfMatch::parse(value.to_str().unwrap_or("\u{0}")))
}

/// `body` with `ETag: "<revision>"`.
pub(crate) fn tagged(revision: Revision, body: impl IntoResponse) -> Response {
    let mut response = body.into_response();
    if let Ok(value) = HeaderValue::from_str(&revision.etag()) {
        response.headers_mut().insert(header::ETAG, value);
    }
    response
}
