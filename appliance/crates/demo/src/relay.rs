//! The way in from the host to the gateway's admin API: a TCP relay that listens on the
//! host (`tungate demo --listen`, loopback by default) and, for each connection, connects
//! from inside the gateway's namespace to tungate's admin listener and copies bytes both
//! ways.
//!
//! Chosen over a veth into the host namespace because it adds no interface, address or
//! route to the host: the host's network stays exactly as it was. It never reads or
//! changes what it relays.

use std::net::SocketAddr;
use std::time::Duration;

use super::netns;

/// How long connecting to the gateway's admin listener may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Connects to `target` from inside the namespace `namespace`.
async fn connect_inside(
    namespace: String,
    target: SocketAddr,
) -> std::io::Result<tokio::net::TcpStream> {
    let stream = tokio::task::spawn_blocking(move || {
        netns::run_in(&namespace, move || {
            std::net::TcpStream::connect_timeout(&target, CONNECT_TIMEOUT)
        })
    })
    .await
    .map_err(std::io::Error::other)?
    .map_err(std::io::Error::other)??;
    stream.set_nonblocking(true)?;
    tokio::net::TcpStream::from_std(stream)
}

/// Accepts connections on `listener` for ever, relaying each to `target` in `namespace`.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    namespace: String,
    target: SocketAddr,
) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let namespace = namespace.clone();
        tokio::spawn(async move {
            match connect_inside(namespace, target).await {
                Ok(mut upstream) => {
                    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
                }
                Err(e) => tracing::debug!("admin relay: cannot reach {target}: {e}"),
            }
        });
    }
}
