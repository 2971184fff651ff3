//! Bearer-token authentication of the admin API.
//!
//! Every write (any method but GET and HEAD) needs `Authorization: Bearer <token>`; on a
//! listener that is not loopback, every `/api/v1` request does. `GET /api/v1/auth` always
//! checks the token (the web UI's sign-in), and so does `GET /api/v1/capture` (packets of
//! clients). Open on any listener: `/healthz`, `/readyz`,
//! `/metrics` (probes and scrapers; no client addresses in it), `/api/v1/openapi.yaml`, and
//! the web UI's static files (they hold no data). Tokens are compared in constant time.
//! This module never logs a token.

use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use super::AdminState;
use super::error::ApiError;
use tungate_control::ErrorCode;

/// Paths open to everyone on every listener.
pub(crate) const OPEN_PATHS: [&str; 4] =
    ["/healthz", "/readyz", "/metrics", "/api/v1/openapi.yaml"];

/// Whether the request needs the token on this listener.
pub(crate) fn needs_token(method: &Method, path: &str, loopback: bool) -> bool {
    if OPEN_PATHS.contains(&path) || !(path == "/api" || path.starts_with("/api/")) {
        return false;
    }
    let read = method == Method::GET || method == Method::HEAD;
    !read || !loopback || path == "/api/v1/auth" || path == CAPTURE_PATH
}

/// Captures hold packets of clients, so they always need the token.
pub(crate) const CAPTURE_PATH: &str = "/api/v1/capture";

/// Whether `presented` equals `expected`, in time independent of where they differ.
pub(crate) fn token_matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

/// The token of an `Authorization: Bearer ...` header.
fn bearer(request: &Request) -> Option<&str> {
    let value = request
        .headers()
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The middleware: refuses with 401 when the token is needed and missing or wrong.
pub(crate) async fn require_token(
    State(state): State<AdminState>,
    request: Request,
    next: Next,
) -> Response {
    if !needs_token(request.method(), request.uri().path(), state.loopback()) {
        return next.run(request).await;
    }
    match bearer(&request) {
        Some(token) if token_matches(token, state.token()) => next.run(request).await,
        Some(_) => ApiError::new(
            ErrorCode::Unauthorized,
            "the bearer token is wrong; use the one in the admin token file",
        )
        .into_response(),
        None => ApiError::new(
            ErrorCode::Unauthorized,
            format!(
                "this request needs `Authorization: Bearer <token>`{}; the token is in {}",
                if state.loopback() {
                    " (writes always do)"
                } else {
                    " (every API request does on a non-loopback listener)"
                },
                state.token_hint()
            ),
        )
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn who_needs_the_token() {
        let g = Method::GET;
        let p = Method::PUT;
        assert!(!needs_token(&g, "/api/v1/config", true));
        assert!(needs_token(&g, "/api/v1/config", false));
        assert!(needs_token(&p, "/api/v1/config", true));
        assert!(needs_token(&Method::DELETE, "/api/v1/plugins/x", true));
        assert!(needs_token(&g, "/api/v1/auth", true));
        assert!(needs_token(&g, "/api/v1/capture", true));
        for open in OPEN_PATHS {
            assert!(!needs_token(&g, open, false), "{open}");
        }
        assert!(!needs_token(&g, "/", false));
        assert!(!needs_token(&g, "/assets/index-abc.js", false));
        assert!(needs_token(&g, "/api/v2/whatever", false));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("", "abc"));
    }
}
