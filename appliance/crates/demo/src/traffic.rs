//! The clients: from every client address of both prefixes, a steady mix of HTTP requests
//! (TCP) and UDP echoes to the VIP, counted per prefix as answered or lost. A lost request
//! is one with no complete, correct answer within [`ANSWER_TIMEOUT`] — which is what a
//! cidr-filter deny on that prefix looks like from the client's side.
//!
//! It only sends to the VIP, from the client addresses, inside the client's namespace (the
//! caller runs it on a thread that entered it), and stops when the stop flag is set.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::DemoError;
use super::topology::{CLIENT_PREFIXES, ECHO_PORT, HTTP_PORT, VIP};

/// How long a request may wait for its answer.
pub(crate) const ANSWER_TIMEOUT: Duration = Duration::from_secs(1);

/// Answered and lost requests of one client prefix (its place in [`CLIENT_PREFIXES`]
/// says which).
#[derive(Debug)]
pub(crate) struct PrefixCounters {
    /// Requests answered correctly.
    pub answered: AtomicU64,
    /// Requests with no correct answer in time.
    pub lost: AtomicU64,
}

/// The counters of both prefixes, in [`CLIENT_PREFIXES`] order.
#[derive(Debug)]
pub(crate) struct TrafficCounters {
    /// One entry per prefix.
    pub prefixes: Vec<PrefixCounters>,
}

impl Default for TrafficCounters {
    fn default() -> Self {
        TrafficCounters {
            prefixes: CLIENT_PREFIXES
                .iter()
                .map(|_| PrefixCounters {
                    answered: AtomicU64::new(0),
                    lost: AtomicU64::new(0),
                })
                .collect(),
        }
    }
}

/// One HTTP GET from `client`: true when a `200` with the greeting came back.
async fn http_get(client: Ipv4Addr) -> bool {
    let exchange = async {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(client.into(), 0))?;
        let mut stream = socket
            .connect(SocketAddrV4::new(VIP, HTTP_PORT).into())
            .await?;
        let request = format!("GET / HTTP/1.1\r\nHost: {VIP}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await?;
        std::io::Result::Ok(response)
    };
    match tokio::time::timeout(ANSWER_TIMEOUT, exchange).await {
        Ok(Ok(response)) => {
            response.starts_with(b"HTTP/1.1 200")
                && String::from_utf8_lossy(&response).contains(&format!("hello {client}"))
        }
        _ => false,
    }
}

/// One UDP echo from `client`: true when the same bytes came back from the VIP.
async fn udp_echo(client: Ipv4Addr, sequence: u64) -> bool {
    let exchange = async {
        let socket = tokio::net::UdpSocket::bind(SocketAddr::new(client.into(), 0)).await?;
        let message = format!("tungate demo echo {client} #{sequence}");
        let vip = SocketAddr::from(SocketAddrV4::new(VIP, ECHO_PORT));
        socket.send_to(message.as_bytes(), vip).await?;
        let mut buffer = [0u8; 256];
        let (n, from) = socket.recv_from(&mut buffer).await?;
        std::io::Result::Ok(from == vip && buffer[..n] == *message.as_bytes())
    };
    matches!(
        tokio::time::timeout(ANSWER_TIMEOUT, exchange).await,
        Ok(Ok(true))
    )
}

/// Sends `rate` requests per second in all (spread over the client addresses, HTTP and UDP
/// in turn) until `stop`. Call it on a thread inside the client's namespace.
pub(crate) fn run(
    rate: f64,
    counters: Arc<TrafficCounters>,
    stop: Arc<AtomicBool>,
) -> Result<(), DemoError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| DemoError::Socket {
            what: "the clients' runtime",
            source,
        })?;
    let clients: Vec<(usize, Ipv4Addr)> = CLIENT_PREFIXES
        .iter()
        .enumerate()
        .flat_map(|(i, (_, addresses))| addresses.iter().map(move |a| (i, *a)))
        .collect();
    let count = clients.len();
    let period = Duration::from_secs_f64(count as f64 / rate.max(0.1));
    runtime.block_on(async move {
        for (index, (prefix, client)) in clients.into_iter().enumerate() {
            let counters = counters.clone();
            tokio::spawn(async move {
                // Spread the clients' first requests over one period.
                tokio::time::sleep(period.mul_f64(index as f64 / count as f64)).await;
                let mut tick = tokio::time::interval(period);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                for sequence in 0u64.. {
                    tick.tick().await;
                    let counters = counters.clone();
                    // Each request is its own task: a lost one does not delay the next.
                    tokio::spawn(async move {
                        let ok = if sequence % 2 == 0 {
                            http_get(client).await
                        } else {
                            udp_echo(client, sequence).await
                        };
                        let c = &counters.prefixes[prefix];
                        if ok { &c.answered } else { &c.lost }.fetch_add(1, Ordering::Relaxed);
                    });
                }
            });
        }
        super::servers::stopped(stop).await;
    });
    Ok(())
}
