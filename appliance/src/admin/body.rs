//! Request bodies: the content type each resource takes (415 otherwise), size limits
//! (413, checked on `Content-Length` first and while reading), and JSON parsing whose
//! errors name the field path (`peers[0].address`). Owns no resource logic.

use axum::body::Body;
use axum::http::{HeaderMap, header};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::control::ErrorCode;

/// Largest JSON body accepted.
pub const MAX_JSON_BYTES: usize = 1 << 20;

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
pub fn require_type(headers: &HeaderMap, accepted: &[&str]) -> Result<(), ApiError> {
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

/// Reads the whole body, refusing more than `limit` bytes.
pub async fn read_limited(
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
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let error = ApiError::new(ErrorCode::InvalidJson, inner.to_string());
        if path.is_empty() || path == "." || path == "?" {
            error
        } else {
            error.at(path)
        }
    })?;
    Ok(value)
}

/// A JSON request body: `application/json`, at most [`MAX_JSON_BYTES`], parsed into `T`.
pub async fn json<T: DeserializeOwned>(headers: &HeaderMap, body: Body) -> Result<T, ApiError> {
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
        let e = parse::<Shape>(br#"{"list":[],"extra":1}"#).unwrap_err();
        assert!(
            e.0.message.contains("unknown field `extra`"),
            "{}",
            e.0.message
        );
        let e = parse::<Shape>(b"{not json").unwrap_err();
        assert_eq!(e.0.field, None);
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
