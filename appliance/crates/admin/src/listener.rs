//! The admin listener's connections: HTTP/1.1 served by hyper with the limits that keep slow
//! or hostile clients from holding the server or its memory (axum's own `serve` has no
//! settings for any of them).
//!
//! - at most [`MAX_CONNECTIONS`] connections at once; past it the listener stops accepting
//!   (new clients wait in the kernel's backlog) until one closes;
//! - a request head (line and headers) must arrive whole within [`HEADER_READ_TIMEOUT`] —
//!   a slowloris client sending a byte a second is cut off, and so is a keep-alive
//!   connection left idle that long — and fit in [`MAX_HEADER_BYTES`];
//! - a response the client does not read is given up after [`WRITE_TIMEOUT`] without any
//!   progress, and its connection closed.
//!
//! - with TLS (`--admin-tls-cert`), the handshake must also finish within
//!   [`HEADER_READ_TIMEOUT`]; a client speaking plain HTTP to it fails the handshake and is
//!   closed without an answer.
//!
//! Bodies have their own size limits and deadline ([`super::body`]). This module owns only
//! connections: it never routes, authenticates or looks at a request.

use std::pin::pin;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::rt::{Read, Write};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};
use tokio_io_timeout::TimeoutStream;

/// Connections served at once.
pub(crate) const MAX_CONNECTIONS: usize = 256;
/// Time a client has to send a whole request head, from the first byte it may send (also
/// how long an idle keep-alive connection stays open).
pub(crate) const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a response write may make no progress (a client that never reads) before the
/// connection is closed.
pub(crate) const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest request head (hyper answers 431 past it); also bounds the read buffer.
pub(crate) const MAX_HEADER_BYTES: usize = 64 * 1024;
/// How long a failed `accept` (e.g. out of file descriptors) waits before the next one.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Serves one connection until it closes, or, once `stop` turns true, until its request in
/// flight is answered.
async fn connection<I>(io: I, app: Router, mut stop: watch::Receiver<bool>)
where
    I: Read + Write + Unpin + Send + 'static,
{
    let service = TowerToHyperService::new(app);
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .max_buf_size(MAX_HEADER_BYTES);
    let mut connection = pin!(builder.serve_connection(io, service));
    let mut stopping = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!("admin connection closed: {e}");
                }
                break;
            }
            _ = stop.wait_for(|s| *s), if !stopping => {
                stopping = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Serves `app` on `listener` (over TLS when `tls` is given) until `stop` turns true, then
/// stops accepting, lets each connection finish its request in flight, and returns once
/// every connection has closed.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Router,
    mut stop: watch::Receiver<bool>,
    tls: Option<Arc<rustls::ServerConfig>>,
) {
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    // Every connection task holds a clone of `open`; `all_closed` resolves when none is left.
    let (all_closed, open) = watch::channel(());
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("admin listener: accept failed: {e}; retrying");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = stop.wait_for(|s| *s) => break,
        };
        let _ = stream.set_nodelay(true);
        let mut timed = TimeoutStream::new(stream);
        timed.set_write_timeout(Some(WRITE_TIMEOUT));
        let timed = Box::pin(timed);
        let app = app.clone();
        let stop = stop.clone();
        let open = open.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(TokioIo::new(timed), app, stop).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(HEADER_READ_TIMEOUT, acceptor.accept(timed)).await;
                    match handshake {
                        Ok(Ok(stream)) => connection(TokioIo::new(stream), app, stop).await,
                        Ok(Err(e)) => tracing::debug!("admin TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!("admin TLS handshake timed out"),
                    }
                }
            }
            drop(slot);
            drop(open);
        });
    }
    drop(open);
    drop(listener);
    all_closed.closed().await;
}
