//! The web UI, embedded from `web/dist` at build time (see `build.rs`), served at `/` as a
//! single-page app: known files with their content type, any other path outside `/api/`
//! answered with `index.html` (client-side routes). `index.html` is never cached; Vite's
//! content-hashed files under `assets/` are cached for a year. Unknown `/api/` paths get
//! the API's JSON 404. Every UI response carries [`CSP`], `X-Frame-Options: DENY` and
//! `Referrer-Policy: no-referrer`. This module serves bytes only; it knows nothing of the API.

use axum::body::Body;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use rust_embed::RustEmbed;

use super::error::ApiError;
use tungate_control::ErrorCode;

/// The built UI bundle.
#[derive(RustEmbed)]
#[folder = "../../../web/dist"]
pub(crate) struct Assets;

/// The UI's Content-Security-Policy: its own scripts, styles and API only, nothing inline
/// (the bundle has no inline script or style element; styles set from script through the
/// CSSOM, as Preact and uPlot do, are not inline styles), no framing, no plugins.
pub(crate) const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; font-src 'self'; connect-src 'self'; manifest-src 'self'; \
     base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Adds the UI's security headers to `response`.
fn secure(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// Cache policy for `index.html` (and the SPA fallback).
pub(crate) const NO_CACHE: &str = "no-cache";
/// Cache policy for content-hashed assets.
pub(crate) const IMMUTABLE: &str = "public, max-age=31536000, immutable";

fn file(path: &str) -> Option<Response> {
    let asset = Assets::get(path)?;
    let mime = asset.metadata.mimetype().to_owned();
    let cache = if path.starts_with("assets/") {
        IMMUTABLE
    } else {
        NO_CACHE
    };
    let mut response = Response::new(Body::from(asset.data.into_owned()));
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(&mime)
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    Some(response)
}

/// The fallback handler: UI files, the SPA fallback, or a JSON 404 under `/api/`.
pub(crate) async fn serve(method: Method, uri: Uri) -> Response {
    secure(respond(method, uri))
}

fn respond(method: Method, uri: Uri) -> Response {
    let path = uri.path().trim_start_matches('/');
    if path == "api" || path.starts_with("api/") {
        return ApiError::new(
            ErrorCode::NotFound,
            format!(
                "no API resource at {}; see /api/v1/openapi.yaml",
                uri.path()
            ),
        )
        .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(
            ErrorCode::MethodNotAllowed,
            format!("{method} is not allowed here"),
        )
        .into_response();
    }
    let wanted = if path.is_empty() { "index.html" } else { path };
    if let Some(r) = file(wanted) {
        return r;
    }
    // A missing hashed asset is a real 404; anything else is a client-side route.
    if wanted.starts_with("assets/") {
        return (StatusCode::NOT_FOUND, "no such asset\n").into_response();
    }
    file("index.html").unwrap_or_else(|| {
        (
            StatusCode::NOT_FOUND,
            "the web UI is not built into this binary\n",
        )
            .into_response()
    })
}
