//! The web UI, embedded from `web/dist` at build time (see `build.rs`), served at `/` as a
//! single-page app: known files with their content type, any other path outside `/api/`
//! answered with `index.html` (client-side routes). `index.html` is never cached; Vite's
//! content-hashed files under `assets/` are cached for a year. Unknown `/api/` paths get
//! the API's JSON 404. This module serves bytes only; it knows nothing of the API.

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
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Some(response)
}

/// The fallback handler: UI files, the SPA fallback, or a JSON 404 under `/api/`.
pub(crate) async fn serve(method: Method, uri: Uri) -> Response {
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
        let mut r = ApiError::new(
            ErrorCode::BadRequest,
            format!("{method} is not allowed here"),
        )
        .into_response();
        *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
        return r;
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
