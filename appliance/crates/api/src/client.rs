//! A small HTTP/1.1 client of tungate's own admin API, for `tungate status` and `tungate
//! demo`: one connection per request (hyper), over TLS for an `https://` URL (rustls,
//! trusting a CA file: `--admin-ca`, else the system's bundle [`DEFAULT_CA_FILE`]), a
//! deadline on every request, the bearer token when one is given, and the API's JSON error
//! bodies turned into readable errors.
//!
//! It owns nothing but the request and its response; it never retries, never keeps
//! connections open and never prints (callers decide what a person sees).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::rt::{Read, Write};
use hyper_util::rt::TokioIo;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde::de::DeserializeOwned;

/// The CA certificates an `https://` admin URL is checked against when no `--admin-ca` is
/// given (Debian's `ca-certificates` bundle).
pub const DEFAULT_CA_FILE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// How long one request may take, connecting included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request to the admin API failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The URL is not `http://HOST:PORT` or `https://HOST:PORT`.
    #[error("{url:?} is not an admin URL like http://127.0.0.1:9080 ({reason})")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Nothing answered at the address.
    #[error(
        "cannot reach the admin API at {url}: {source} (is tungate running, and is that its \
         --admin-listen address?)"
    )]
    Unreachable {
        /// The base URL.
        url: String,
        /// The connection error.
        source: std::io::Error,
    },
    /// The CA file for an `https://` URL cannot be used.
    #[error("CA file {}: {message} (give the admin listener's certificate or its CA with --admin-ca)", path.display())]
    CaFile {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The TLS handshake failed: not a TLS listener, or a certificate the CA file does not
    /// vouch for.
    #[error(
        "TLS with {url} failed: {source} (is it served over HTTPS, and does --admin-ca hold its certificate or CA?)"
    )]
    Tls {
        /// The base URL.
        url: String,
        /// The handshake error.
        source: std::io::Error,
    },
    /// The request took longer than its limit ([`REQUEST_TIMEOUT`] unless said).
    #[error("the admin API at {url} did not answer {path} within {limit:?}")]
    Timeout {
        /// The base URL.
        url: String,
        /// The request path.
        path: String,
        /// The limit.
        limit: Duration,
    },
    /// The HTTP exchange itself failed.
    #[error("HTTP exchange with {url} for {path} failed: {source}")]
    Http {
        /// The base URL.
        url: String,
        /// The request path.
        path: String,
        /// hyper's error.
        source: hyper::Error,
    },
    /// The API answered with an error status.
    #[error("{method} {path}: HTTP {status}: {message}{hint}")]
    Status {
        /// The request method.
        method: String,
        /// The request path.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The API's error message (or the body).
        message: String,
        /// What to do about it, when known.
        hint: &'static str,
    },
    /// The body was not the JSON expected.
    #[error("{path}: unexpected response body: {source}")]
    BadBody {
        /// The request path.
        path: String,
        /// The decoding error.
        source: serde_json::Error,
    },
}

/// One answer of the API.
#[derive(Debug, Clone)]
pub struct ApiResponse {
    /// The HTTP status.
    pub status: u16,
    /// The body.
    pub body: Bytes,
}

/// How an `https://` client speaks TLS: the connector and the name the certificate must
/// carry.
#[derive(Clone)]
struct Tls {
    connector: tokio_rustls::TlsConnector,
    name: ServerName<'static>,
}

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Tls({:?})", self.name)
    }
}

/// A client of one tungate admin API.
#[derive(Debug, Clone)]
pub struct ApiClient {
    url: String,
    authority: String,
    token: Option<String>,
    tls: Option<Tls>,
}

/// The TLS client configuration trusting the certificates in `ca` (PEM).
fn client_config(ca: &Path) -> Result<Arc<rustls::ClientConfig>, ClientError> {
    let bad = |message: String| ClientError::CaFile {
        path: ca.to_owned(),
        message,
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(e.to_string()))? {
        roots
            .add(cert.map_err(|e| bad(e.to_string()))?)
            .map_err(|e| bad(e.to_string()))?;
    }
    if roots.is_empty() {
        return Err(bad("no PEM certificate in it".into()));
    }
    // The crypto provider is rustls's process default: ring, the only one built in.
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

impl ApiClient {
    /// A client of the API at `url` (`http://HOST:PORT` or `https://HOST:PORT`, a trailing
    /// `/` allowed), sending `token` as a bearer token when given; an `https://` URL trusts
    /// the system's CA bundle.
    pub fn new(url: &str, token: Option<String>) -> Result<ApiClient, ClientError> {
        Self::with_ca(url, token, None)
    }

    /// Like [`ApiClient::new`]; an `https://` URL trusts the certificates in `ca` (the
    /// listener's own self-signed certificate, or its CA) instead of the system's bundle.
    pub fn with_ca(
        url: &str,
        token: Option<String>,
        ca: Option<&Path>,
    ) -> Result<ApiClient, ClientError> {
        let bad = |reason: &str| ClientError::BadUrl {
            url: url.to_owned(),
            reason: reason.to_owned(),
        };
        let uri: hyper::Uri = url.parse().map_err(|_| bad("cannot parse it"))?;
        let (scheme, default_port) = match uri.scheme_str() {
            Some("http") => ("http", 80),
            Some("https") => ("https", 443),
            _ => return Err(bad("give http:// or https://")),
        };
        if !matches!(uri.path(), "" | "/") || uri.query().is_some() {
            return Err(bad("give no path: the API paths are added to it"));
        }
        let authority = uri.authority().ok_or_else(|| bad("no host"))?;
        let port = authority.port_u16().unwrap_or(default_port);
        let host = authority.host();
        let tls = if scheme == "https" {
            let bare = host.trim_start_matches('[').trim_end_matches(']');
            let name = ServerName::try_from(bare.to_owned())
                .map_err(|_| bad("the host is not a name or address a certificate can carry"))?;
            let ca = ca.unwrap_or(Path::new(DEFAULT_CA_FILE));
            Some(Tls {
                connector: tokio_rustls::TlsConnector::from(client_config(ca)?),
                name,
            })
        } else {
            None
        };
        let authority = format!("{host}:{port}");
        Ok(ApiClient {
            url: format!("{scheme}://{authority}"),
            authority,
            token,
            tls,
        })
    }

    /// The base URL, `http://HOST:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    async fn connect(&self) -> Result<tokio::net::TcpStream, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            url: self.url.clone(),
            source,
        };
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host(&self.authority)
            .await
            .map_err(unreachable)?
            .collect();
        let mut last = std::io::Error::new(std::io::ErrorKind::NotFound, "no address");
        for address in addresses {
            match tokio::net::TcpStream::connect(address).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(unreachable(last))
    }

    /// Sends one request and returns the answer, whatever its status.
    pub async fn send(
        &self,
        method: hyper::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ApiResponse, ClientError> {
        self.send_within(REQUEST_TIMEOUT, method, path, content_type, body)
            .await
    }

    /// Like [`Self::send`], waiting at most `limit` (for a request the server answers
    /// late on purpose, e.g. a drain).
    pub async fn send_within(
        &self,
        limit: Duration,
        method: hyper::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ApiResponse, ClientError> {
        let exchange = async {
            let stream = self.connect().await?;
            match &self.tls {
                None => {
                    self.exchange(TokioIo::new(stream), method, path, content_type, body)
                        .await
                }
                Some(tls) => {
                    let stream = tls
                        .connector
                        .connect(tls.name.clone(), stream)
                        .await
                        .map_err(|source| ClientError::Tls {
                            url: self.url.clone(),
                            source,
                        })?;
                    self.exchange(TokioIo::new(stream), method, path, content_type, body)
                        .await
                }
            }
        };
        tokio::time::timeout(limit, exchange)
            .await
            .map_err(|_| ClientError::Timeout {
                url: self.url.clone(),
                path: path.to_owned(),
                limit,
            })?
    }

    /// One request and its answer over a connected (and, for HTTPS, encrypted) stream.
    async fn exchange<I>(
        &self,
        io: I,
        method: hyper::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<ApiResponse, ClientError>
    where
        I: Read + Write + Unpin + Send + 'static,
    {
        let http = |source| ClientError::Http {
            url: self.url.clone(),
            path: path.to_owned(),
            source,
        };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(http)?;
        tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, &self.authority);
        if let Some(token) = &self.token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        if let Some(content_type) = content_type {
            request = request.header(hyper::header::CONTENT_TYPE, content_type);
        }
        let request = request
            .body(Full::new(Bytes::from(body)))
            .expect("method, path and headers are valid");
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await.map_err(http)?;
        Ok(ApiResponse {
            status,
            body: body.to_bytes(),
        })
    }

    /// Sends a request and returns the body of a 2xx answer; any other status is an error
    /// carrying the API's message.
    pub async fn expect_success(
        &self,
        method: hyper::Method,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Result<Bytes, ClientError> {
        let response = self.send(method.clone(), path, content_type, body).await?;
        if (200..300).contains(&response.status) {
            return Ok(response.body);
        }
        Err(ClientError::Status {
            method: method.to_string(),
            path: path.to_owned(),
            status: response.status,
            message: error_message(&response.body),
            hint: match response.status {
                401 => " (give the admin token: --token-file FILE)",
                _ => "",
            },
        })
    }

    /// GETs `path` and decodes its JSON body.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self
            .expect_success(hyper::Method::GET, path, None, Vec::new())
            .await?;
        decode(path, &body)
    }

    /// PUTs a JSON body to `path` and decodes the JSON answer.
    pub async fn put_json<T: DeserializeOwned>(
        &self,
        path: &str,
        value: &serde_json::Value,
    ) -> Result<T, ClientError> {
        let body = self
            .expect_success(
                hyper::Method::PUT,
                path,
                Some("application/json"),
                value.to_string().into_bytes(),
            )
            .await?;
        decode(path, &body)
    }

    /// PUTs a Wasm module to `path` and decodes the JSON answer.
    pub async fn put_wasm<T: DeserializeOwned>(
        &self,
        path: &str,
        module: Vec<u8>,
    ) -> Result<T, ClientError> {
        let body = self
            .expect_success(hyper::Method::PUT, path, Some("application/wasm"), module)
            .await?;
        decode(path, &body)
    }
}

impl ApiClient {
    /// GETs `path` and writes the body of a 2xx answer to `sink` as it arrives (a stream
    /// such as a capture), returning the bytes written. The answer's head must come within
    /// [`REQUEST_TIMEOUT`], the whole body within `body_deadline`; any other status than
    /// 2xx is an error carrying the API's message. `started` is called once the head came.
    pub async fn get_streaming(
        &self,
        path: &str,
        body_deadline: Duration,
        sink: &mut dyn std::io::Write,
        started: &mut dyn FnMut(),
    ) -> Result<u64, StreamError> {
        let http = |source| ClientError::Http {
            url: self.url.clone(),
            path: path.to_owned(),
            source,
        };
        let timeout = || ClientError::Timeout {
            url: self.url.clone(),
            path: path.to_owned(),
            limit: REQUEST_TIMEOUT,
        };
        let head = async {
            let stream = self.connect().await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(http)?;
            tokio::spawn(connection);
            let mut request = hyper::Request::builder()
                .method(hyper::Method::GET)
                .uri(path)
                .header(hyper::header::HOST, &self.authority);
            if let Some(token) = &self.token {
                request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = request
                .body(Full::new(Bytes::new()))
                .expect("method, path and headers are valid");
            sender.send_request(request).await.map_err(http)
        };
        let response = tokio::time::timeout(REQUEST_TIMEOUT, head)
            .await
            .map_err(|_| timeout())??;
        let status = response.status().as_u16();
        let mut body = response.into_body();
        if !(200..300).contains(&status) {
            let body = tokio::time::timeout(REQUEST_TIMEOUT, body.collect())
                .await
                .map_err(|_| timeout())?
                .map_err(http)?
                .to_bytes();
            return Err(ClientError::Status {
                method: "GET".into(),
                path: path.to_owned(),
                status,
                message: error_message(&body),
                hint: match status {
                    401 => " (give the admin token: --token-file FILE)",
                    _ => "",
                },
            }
            .into());
        }
        started();
        let mut written = 0u64;
        let until = tokio::time::Instant::now() + body_deadline;
        loop {
            let frame = tokio::time::timeout_at(until, body.frame())
                .await
                .map_err(|_| timeout())?;
            let Some(frame) = frame else {
                return Ok(written);
            };
            if let Ok(data) = frame.map_err(http)?.into_data() {
                sink.write_all(&data).map_err(StreamError::Write)?;
                sink.flush().map_err(StreamError::Write)?;
                written += data.len() as u64;
            }
        }
    }
}

/// Why a streamed GET failed.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The request or the answer.
    #[error("{0}")]
    Client(#[from] ClientError),
    /// Writing what arrived.
    #[error("cannot write the answer: {0}")]
    Write(std::io::Error),
}

pub(crate) fn decode<T: DeserializeOwned>(path: &str, body: &[u8]) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|source| ClientError::BadBody {
        path: path.to_owned(),
        source,
    })
}

/// The message of an API error body (`{"error": {"message": ...}}`), else the body as text.
pub(crate) fn error_message(body: &[u8]) -> String {
    serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked() {
        let ok = ApiClient::new("http://127.0.0.1:9080/", None).unwrap();
        assert_eq!(ok.url(), "http://127.0.0.1:9080");
        assert_eq!(
            ApiClient::new("http://localhost", None).unwrap().url(),
            "http://localhost:80"
        );
        for bad in ["ftp://127.0.0.1:9080", "http://127.0.0.1:9080/api", "::"] {
            let e = ApiClient::new(bad, None).unwrap_err();
            assert!(matches!(e, ClientError::BadUrl { .. }), "{bad}: {e}");
        }
    }

    #[test]
    fn https_needs_a_usable_ca_file() {
        let dir = tempfile::tempdir().unwrap();
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        let e = ApiClient::with_ca("https://127.0.0.1:9443", None, Some(&empty)).unwrap_err();
        assert!(matches!(e, ClientError::CaFile { .. }), "{e}");
        assert!(e.to_string().contains("no PEM certificate"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = ApiClient::with_ca("https://localhost", None, Some(&missing)).unwrap_err();
        assert!(matches!(e, ClientError::CaFile { .. }), "{e}");
        // A CA file is only read for https.
        let plain = ApiClient::with_ca("http://127.0.0.1:9080", None, Some(&missing)).unwrap();
        assert_eq!(plain.url(), "http://127.0.0.1:9080");
    }

    #[test]
    fn api_error_bodies_become_messages() {
        assert_eq!(
            error_message(br#"{"error":{"code":"not_found","message":"no VIP 1.2.3.4"}}"#),
            "no VIP 1.2.3.4"
        );
        assert_eq!(error_message(b"plain text\n"), "plain text");
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_closed_port_is_unreachable() {
        // A port that was free a moment ago: bind, note it, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let client = ApiClient::new(&format!("http://127.0.0.1:{port}"), None).unwrap();
        let e = client.get_json::<serde_json::Value>("/healthz").await;
        assert!(matches!(e, Err(ClientError::Unreachable { .. })), "{e:?}");
    }
}
