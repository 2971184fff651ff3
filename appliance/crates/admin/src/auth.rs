//! Bearer-token authentication of the admin API.
//!
//! Every write (any method but GET and HEAD) needs `Authorization: Bearer <token>`; on a
//! listener that is not loopback, every `/api/v1` request does. On a loopback listener a
//! read needs no token only when its `Host` is `localhost`, a loopback address or a name
//! given with `--admin-host`: a DNS-rebinding page (a name of the attacker's that resolves
//! to 127.0.0.1) sends its own name as `Host`, so it gets a 401 and no data, while every
//! local tool, the browser on `http://127.0.0.1:9080` and the demo's relay keep working
//! without a token. (Requiring the token for every read was the other choice; it would
//! make `tungate status` and scripts on the host itself carry the token for no gain.)
//! `GET /api/v1/auth` always checks the token (the web UI's sign-in), and so does
//! `GET /api/v1/capture` (packets of clients). Open on any listener
//! and any `Host`: `/healthz`, `/readyz`, `/metrics` (probes and scrapers; no client
//! addresses in it), `/api/v1/openapi.yaml`, and the web UI's static files (they hold no
//! data). Tokens are compared in constant time. This module never logs a token, and a 401
//! never names where the token is kept (an unauthenticated client learns no path).

use axum::extract::{Request, State};
use std::net::{IpAddr, SocketAddr};

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

/// Whether the request needs the token; `open_reads`: reads are open to this request (a
/// loopback listener, and a `Host` that [`host_allows_open_reads`] accepts).
pub(crate) fn needs_token(method: &Method, path: &str, open_reads: bool) -> bool {
    if OPEN_PATHS.contains(&path) || !(path == "/api" || path.starts_with("/api/")) {
        return false;
    }
    let read = method == Method::GET || method == Method::HEAD;
    !read || !open_reads || path == "/api/v1/auth" || path == CAPTURE_PATH
}

/// The host part of a `Host` value (`name`, `name:port`, `[v6]`, `[v6]:port`), lower case
/// and without a trailing dot.
fn host_part(host: &str) -> String {
    let host = host.trim();
    let name = match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(""),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// Whether `host` (the request's `Host`, if any) may read without the token on a loopback
/// listener bound to `listener`: `localhost`, a loopback address or the listener's own, or
/// one of `extra` (`--admin-host`). A request without `Host` may not.
pub(crate) fn host_allows_open_reads(
    host: Option<&str>,
    listener: SocketAddr,
    extra: &[String],
) -> bool {
    let Some(host) = host else {
        return false;
    };
    let name = host_part(host);
    if name == "localhost" {
        return true;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        return ip.is_loopback() || ip == listener.ip();
    }
    extra.iter().any(|e| host_part(e) == name)
}

/// The request's `Host`: the absolute-form target's authority, else the header.
fn request_host(request: &Request) -> Option<&str> {
    if let Some(authority) = request.uri().authority() {
        return Some(authority.as_str());
    }
    request.headers().get(header::HOST)?.to_str().ok()
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
    let host = request_host(&request);
    let host_ok = host_allows_open_reads(host, state.0.address, state.admin_hosts());
    let open_reads = state.loopback() && host_ok;
    if !needs_token(request.method(), request.uri().path(), open_reads) {
        return next.run(request).await;
    }
    match bearer(&request) {
        Some(token) if token_matches(token, state.token()) => next.run(request).await,
        Some(_) => ApiError::new(
            ErrorCode::Unauthorized,
            "the bearer token is wrong; use the one in the admin token file",
        )
        .into_response(),
        None => {
            let why = if !state.loopback() {
                " (every API request does on a non-loopback listener)".to_owned()
            } else if !host_ok {
                format!(
                    " (reads without it are answered only for Host localhost, a loopback \
                     address or an --admin-host name; this request's Host is {:?})",
                    host.unwrap_or("")
                )
            } else {
                " (writes always do)".to_owned()
            };
            ApiError::new(
                ErrorCode::Unauthorized,
                format!(
                    "this request needs `Authorization: Bearer <token>`{why}; the token is \
                     the gateway's admin token (its --token-file, or the one it generated \
                     into its state directory)"
                ),
            )
            .into_response()
        }
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
    fn only_local_names_read_without_the_token() {
        let lo: SocketAddr = "127.0.0.1:9080".parse().unwrap();
        let extra = vec!["Gw.Example.".to_owned()];
        for ok in [
            "127.0.0.1:9080",
            "127.0.0.1",
            "127.0.0.2:9180",
            "localhost:9080",
            "LOCALHOST.",
            "[::1]:9080",
            "gw.example:9080",
            "GW.EXAMPLE",
        ] {
            assert!(host_allows_open_reads(Some(ok), lo, &extra), "{ok}");
        }
        for bad in [
            "rebind.attacker.example:9080",
            "gw.example.attacker.example",
            "localhost.attacker.example",
            "10.0.0.1:9080",
            "",
        ] {
            assert!(!host_allows_open_reads(Some(bad), lo, &extra), "{bad}");
        }
        assert!(!host_allows_open_reads(None, lo, &extra));
        let own: SocketAddr = "[::1]:9080".parse().unwrap();
        assert!(host_allows_open_reads(Some("[::1]"), own, &[]));
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(token_matches("abc", "abc"));
        assert!(!token_matches("abd", "abc"));
        assert!(!token_matches("ab", "abc"));
        assert!(!token_matches("", "abc"));
    }
}
