//! The API's error answers: `{"error": {"code", "message", "field"?, "details"?}}` with the
//! HTTP status that belongs to each stable code, and `WWW-Authenticate: Bearer` on 401.
//!
//! Owns only the mapping from [`ControlError`] to a response; it never decides whether
//! something is an error.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use tungate_config::FieldError;
use tungate_control::{ControlError, ErrorCode};

/// An error answer of the API.
#[derive(Debug)]
pub(crate) struct ApiError(pub ControlError);

impl From<ControlError> for ApiError {
    fn from(e: ControlError) -> Self {
        ApiError(e)
    }
}

impl ApiError {
    /// An error with a code and message.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError(ControlError::new(code, message))
    }

    /// The same error about `field`.
    pub(crate) fn at(self, field: impl Into<String>) -> ApiError {
        ApiError(self.0.at(field))
    }
}

/// The HTTP status of each code.
pub(crate) fn status_of(code: ErrorCode) -> StatusCode {
    match code {
        ErrorCode::BadRequest | ErrorCode::InvalidJson => StatusCode::BAD_REQUEST,
        ErrorCode::InvalidConfig | ErrorCode::PluginRejected | ErrorCode::PluginRefusedConfig => {
            StatusCode::UNPROCESSABLE_ENTITY
        }
        ErrorCode::NotFound => StatusCode::NOT_FOUND,
        ErrorCode::Conflict => StatusCode::CONFLICT,
        ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
        ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
        ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
        ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
        ErrorCode::BadGateway => StatusCode::BAD_GATEWAY,
        ErrorCode::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    }
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[FieldError]>::is_empty")]
    details: &'a [FieldError],
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = self.0;
        let status = status_of(e.code);
        let body = Body {
            error: Inner {
                code: e.code,
                message: &e.message,
                field: e.field.as_deref(),
                details: &e.details,
            },
        };
        let mut response = (status, Json(body)).into_response();
        if e.code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"tungate\""),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_client_or_server_status() {
        for code in ErrorCode::ALL {
            let s = status_of(code);
            assert!(
                s.is_client_error()
                    || matches!(
                        code,
                        ErrorCode::Internal | ErrorCode::BadGateway | ErrorCode::Unavailable
                    ),
                "{code:?}"
            );
        }
        let r = ApiError::new(ErrorCode::Unauthorized, "no").into_response();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        assert!(
            r.headers()[header::WWW_AUTHENTICATE]
                .to_str()
                .unwrap()
                .starts_with("Bearer")
        );
    }
}
