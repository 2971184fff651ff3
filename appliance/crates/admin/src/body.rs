//! Request bodies: the content type each resource takes (415 otherwise), size limits
//! (413, checked on `Content-Length` first and while reading), a deadline for the whole
//! body (408), a bound on the memory all bodies being read may hold at once, and JSON
//! parsing whose errors name the field path (`peers[0].address`). Owns no resource logic.

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use super::AdminState;
use super::error::ApiError;
use tungate_control::ErrorCode;

/// Largest JSON body accepted.
pub(crate) const MAX_JSON_BYTES: usize = 1 << 20;

/// Time a whole body has to arrive, from the moment its handler starts reading it: a
/// client dripping a body slowly is cut off (408). Waiting for [`BODY_MEMORY_BYTES`] has
/// the same deadline.
pub(crate) const BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Memory that requests with a body may hold at once, from reading the body until their
/// answer: a request reserves its declared length (or the largest upload, when it declares
/// none) before its handler runs, and others wait their turn within [`BODY_READ_TIMEOUT`].
/// At least one upload of the largest size always fits.
pub(crate) const BODY_MEMORY_BYTES: usize = 64 << 20;

/// The unit of [`BODY_BUDGET`]'s permits.
const BUDGET_UNIT: usize = 1024;

/// Reservations against [`BODY_MEMORY_BYTES`], in [`BUDGET_UNIT`]s.
static BODY_BUDGET: Semaphore = Semaphore::const_new(BODY_MEMORY_BYTES / BUDGET_UNIT);

/// Middleware (after authentication): a request that may carry a body holds a reservation
/// of [`BODY_MEMORY_BYTES`] while it is handled; requests without one (GET, HEAD, DELETE
/// without `Content-Length` or chunked encoding) pass straight through.
pub(crate) async fn reserve_memory(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    let largest = state.0.max_module_bytes.max(MAX_JSON_BYTES);
    let bytes = match declared {
        Some(0) | None if !chunked => return next.run(request).await,
        // Over the largest limit: the handler refuses it (413) without reading it.
        Some(n) => (n as usize).min(largest),
        None => largest,
    };
    let units = bytes
        .div_ceil(BUDGET_UNIT)
        .min(BODY_MEMORY_BYTES / BUDGET_UNIT) as u32;
    match tokio::time::timeout(BODY_READ_TIMEOUT, BODY_BUDGET.acquire_many(units)).await {
        Ok(Ok(_reserved)) => next.run(request).await,
        Ok(Err(_)) => {
            ApiError::new(ErrorCode::Internal, "the body memory budget is closed").into_response()
        }
        Err(_) => ApiError::new(
            ErrorCode::RequestTimeout,
            format!(
                "other requests held the memory for request bodies ({} MiB) for {} s; retry \
                 when the admin API is less busy",
                BODY_MEMORY_BYTES >> 20,
                BODY_READ_TIMEOUT.as_secs()
            ),
        )
        .into_response(),
    }
}

/// The media type of the request (lowercase, without parameters).
fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Refuses a body whose content type is not one of `accepted`.
pub(crate) fn require_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
    match media_type(headers) {
        Some(t) if accepted.contains(&t.as_str()) => Ok(()),
        found => Err(ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!(
                "the body must be {} (Content-Type was {})",
                accepted.join(" or "),
                found.map_or("missing".into(), |t| format!("{t:?}"))
            ),
        )),
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        ErrorCode::PayloadTooLarge,
        format!("the body is larger than the limit of {limit} bytes"),
    )
}

fn too_slow() -> ApiError {
    ApiError::new(
        ErrorCode::RequestTimeout,
        format!(
            "the body did not arrive within {} s; send it faster",
            BODY_READ_TIMEOUT.as_secs()
        ),
    )
}

/// Reads the whole body, refusing more than `limit` bytes (413) or a body slower than
/// [`BODY_READ_TIMEOUT`] (408).
pub(crate) async fn read_limited(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    tokio::time::timeout(BODY_READ_TIMEOUT, read_to_limit(body, limit))
        .await
        .unwrap_or_else(|_| Err(too_slow()))
}

async fn read_to_limit(body: Body, limit: usize) -> Result<Vec<u8>, ApiError> {
    match axum::body::to_bytes(body, limit).await {
        Ok(bytes) => Ok(bytes.to_vec()),
        Err(e) => {
            let over = std::error::Error::source(&e)
                .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
            if over {
                Err(too_large(limit))
            } else {
                Err(ApiError::new(
                    ErrorCode::BadRequest,
                    format!("cannot read the request body: {e}"),
                ))
            }
        }
    }
}

/// Parses JSON bytes; errors are `invalid_json` naming the field path.
pub(crate) fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path.is_empty() || path == "." || path == "?" {
            // Not valid JSON at all: the position in the body is the only clue.
            ApiError::new(ErrorCode::InvalidJson, inner.to_string())
        } else {
            // The field path says where; a line and column would point into the JSON the
            // client serialised (the web UI's, not what the operator typed).
            ApiError::new(ErrorCode::InvalidJson, without_position(&inner)).at(path)
        }
    })?;
    Ok(value)
}

/// A JSON error's text without its ` at line L column C`.
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let position = format!(" at line {} column {}", e.line(), e.column());
    match text.strip_suffix(&position) {
        Some(message) => message.to_owned(),
        None => text,
    }
}

/// A JSON request body: `application/json`, at most [`MAX_JSON_BYTES`], parsed into `T`.
pub(crate) async fn json<T: DeserializeOwned>(
    headers: &HeaderMap,
    body: Body,
) -> Result<T, ApiError> {
    require_type(headers, &["application/json"])?;
    let bytes = read_limited(headers, body, MAX_JSON_BYTES).await?;
    parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        list: Vec<std::net::Ipv4Addr>,
    }

    #[test]
    fn json_errors_name_the_field() {
        let e = parse::<Shape>(br#"{"list":["10.0.0.1","10.0.0.300"]}"#).unwrap_err();
        assert_eq!(e.0.code, ErrorCode::InvalidJson);
        assert_eq!(e.0.field.as_deref(), Some("list[1]"));
        assert_eq!(e.0.message, "invalid IPv4 address syntax");
        let e = parse::<Shape>(br#"{"list":[],"extra":1}"#).unwrap_err();
        assert_eq!(e.0.message, "unknown field `extra`, expected `list`");
        let e = parse::<Shape>(b"{not json").unwrap_err();
        assert_eq!(e.0.field, None);
        assert!(
            e.0.message.ends_with("at line 1 column 2"),
            "{}",
            e.0.message
        );
    }

    #[test]
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(require_type(&h, &["application/json"]).is_err());
        h.insert(
            header::CONTENT_TYPE,
            "Application/JSON; charset=utf-8".parse().unwrap(),
        );
        assert!(require_type(&h, &["application/json"]).is_ok());
        h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
        let e = require_type(&h, &["application/json"]).unwrap_err();
        assert_eq!(e.0.code, ErrorCode::UnsupportedMediaType);
    }
}
