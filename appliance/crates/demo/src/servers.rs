//! The real server's applications, bound to the VIP inside its namespace: an HTTP server
//! (axum) on port 80 that greets each client by address, and a UDP echo server on port 7.
//! Their replies leave from the VIP, so the real server's policy rule sends them into the
//! reply tunnel.
//!
//! It serves until the stop flag is set; it never listens outside the real server's
//! namespace (the caller runs it on a thread that entered it).

use std::net::{SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::routing::get;

use super::DemoError;
use super::topology::{ECHO_PORT, HTTP_PORT, RIP, VIP};

/// Resolves once `stop` is set (checked every 100 ms).
pub(crate) async fn stopped(stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn greet(ConnectInfo(client): ConnectInfo<SocketAddr>) -> String {
    format!(
        "hello {}: the real server {RIP} answers for {VIP}, and this reply came back \
         through tungate\n",
        client.ip()
    )
}

/// Binds both servers (returning an error at once if the VIP is not there), tells
/// `bound`, then serves until `stop`.
pub(crate) fn run(
    stop: Arc<AtomicBool>,
    bound: std::sync::mpsc::Sender<()>,
) -> Result<(), DemoError> {
    let socket_error = |what| move |source| DemoError::Socket { what, source };
    let http = std::net::TcpListener::bind(SocketAddrV4::new(VIP, HTTP_PORT))
        .map_err(socket_error("the real server's HTTP listener"))?;
    let echo = std::net::UdpSocket::bind(SocketAddrV4::new(VIP, ECHO_PORT))
        .map_err(socket_error("the real server's UDP echo socket"))?;
    for nonblocking in [http.set_nonblocking(true), echo.set_nonblocking(true)] {
        nonblocking.map_err(socket_error("the real server's sockets"))?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(socket_error("the real server's runtime"))?;
    let _ = bound.send(());
    runtime.block_on(async move {
        let http = tokio::net::TcpListener::from_std(http)
            .map_err(socket_error("the real server's HTTP listener"))?;
        let echo = tokio::net::UdpSocket::from_std(echo)
            .map_err(socket_error("the real server's UDP echo socket"))?;
        let echo_task = tokio::spawn(async move {
            let mut buffer = vec![0u8; 2048];
            while let Ok((n, from)) = echo.recv_from(&mut buffer).await {
                let _ = echo.send_to(&buffer[..n], from).await;
            }
        });
        let app = Router::new().route("/", get(greet));
        let served = axum::serve(
            http,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(stopped(stop))
        .await;
        echo_task.abort();
        served.map_err(socket_error("the real server's HTTP server"))
    })
}
