//! The admin API requests of the hostile-request test and the API-burst benchmark: raw
//! HTTP/1.1 requests written byte for byte and sent from a thread inside the gateway's
//! namespace, and the burst's mix — reads, authorised writes (a VIP's chain, a peer added
//! and removed, a plugin uploaded and deleted) and unauthenticated writes — with the
//! statuses the documented rules allow for each. Every loop is bounded.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::netns::Netns;
use crate::plugins::pass_all_module;
use crate::topology::VIP;

/// The admin API's default listener.
pub const ADMIN: &str = "127.0.0.1:9080";

/// One request on a new connection from the calling thread (already inside the gateway's
/// namespace): the status, or `None` if the connection failed or no answer came.
pub fn exchange_here(request: &[u8]) -> Option<(u16, Vec<u8>)> {
    let mut s = TcpStream::connect(ADMIN).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(60))).ok()?;
    let _ = s.write_all(request);
    let mut data = Vec::new();
    let _ = s.read_to_end(&mut data);
    let split = data.windows(4).position(|w| w == b"\r\n\r\n")?;
    let status = std::str::from_utf8(&data[..split])
        .ok()?
        .split(' ')
        .nth(1)?
        .parse()
        .ok()?;
    Some((status, data[split + 4..].to_vec()))
}

/// A request's bytes: `Connection: close`, the given extra header lines, and the body with
/// its `Content-Length` (for PUT, POST and PATCH, also when empty).
pub fn request(method: &str, target: &str, headers: &[String], body: &[u8]) -> Vec<u8> {
    let mut r = format!("{method} {target} HTTP/1.1\r\nHost: {ADMIN}\r\nConnection: close\r\n");
    for h in headers {
        r.push_str(h);
        r.push_str("\r\n");
    }
    if !body.is_empty() || ["PUT", "POST", "PATCH"].contains(&method) {
        r.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    r.push_str("\r\n");
    let mut bytes = r.into_bytes();
    bytes.extend_from_slice(body);
    bytes
}

/// An `Authorization: Bearer` header line.
pub fn bearer(token: &str) -> String {
    format!("Authorization: Bearer {token}")
}

/// The kinds of request in the burst, in the order each thread cycles through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A read (no token needed on loopback).
    Read,
    /// An authorised write.
    Write,
    /// A write without a token or with a wrong one.
    Unauthenticated,
}

/// Request `i` of burst thread `thread`: what it is, its bytes, and the statuses the rules
/// allow for it.
pub fn burst_request(thread: usize, i: usize, token: &str) -> (Kind, Vec<u8>, &'static [u16]) {
    const READS: [&str; 10] = [
        "/api/v1/status",
        "/api/v1/stats",
        "/api/v1/config",
        "/metrics",
        "/api/v1/vips",
        "/api/v1/peers",
        "/api/v1/plugins",
        "/healthz",
        "/readyz",
        "/api/v1/vips/192.0.2.10",
    ];
    let peer = format!("/api/v1/peers/b{thread}");
    let plugin = format!("/api/v1/plugins/burst-{thread}");
    let auth = [bearer(token)];
    let json = |body: serde_json::Value| {
        let mut h = auth.to_vec();
        h.push("Content-Type: application/json".into());
        (h, body.to_string().into_bytes())
    };
    let peer_body = json!({"address": format!("10.0.1.{}", 100 + thread), "vips": [format!("198.18.{thread}.1")]});
    let vip_body = json!({"plugins": [{"plugin": "accounting", "config": {"prefixes": [format!("198.51.{}.0/24", i % 250)]}}]});
    match i % 20 {
        n @ 0..=9 => (Kind::Read, request("GET", READS[n], &[], b""), &[200]),
        10 => {
            let (h, b) = json(vip_body);
            let target = format!("/api/v1/vips/{VIP}");
            (Kind::Write, request("PUT", &target, &h, &b), &[200])
        }
        11 => {
            let (h, b) = json(peer_body);
            (Kind::Write, request("PUT", &peer, &h, &b), &[200])
        }
        12 => (Kind::Write, request("DELETE", &peer, &auth, b""), &[204]),
        13 if (i / 20).is_multiple_of(2) => {
            let mut h = auth.to_vec();
            h.push("Content-Type: application/wasm".into());
            let module = pass_all_module(&format!("{thread}-{i}"));
            (Kind::Write, request("PUT", &plugin, &h, &module), &[200])
        }
        13 => (Kind::Write, request("DELETE", &plugin, &auth, b""), &[204]),
        n => {
            // Unauthenticated writes of every kind, without or with a wrong token.
            let wrong = [format!("Authorization: Bearer {}x", &token[..8])];
            let creds: &[String] = if n % 2 == 0 { &[] } else { &wrong };
            let with_type = |t: &str| {
                let mut h = creds.to_vec();
                h.push(format!("Content-Type: {t}"));
                h
            };
            let r = match n {
                14 => request(
                    "PUT",
                    "/api/v1/config",
                    &with_type("application/json"),
                    br#"{"gateway":{"address":"10.0.1.1"}}"#,
                ),
                15 => request(
                    "PUT",
                    &peer,
                    &with_type("application/json"),
                    peer_body.to_string().as_bytes(),
                ),
                16 => request("DELETE", "/api/v1/peers/rs1", creds, b""),
                17 => request("DELETE", &format!("/api/v1/vips/{VIP}"), creds, b""),
                18 => request(
                    "PUT",
                    &plugin,
                    &with_type("application/wasm"),
                    &pass_all_module("unauthenticated"),
                ),
                _ => request("DELETE", "/api/v1/plugins/accounting", creds, b""),
            };
            (Kind::Unauthenticated, r, &[401])
        }
    }
}

/// What a burst saw: answers counted by (kind, status; 0 for no answer), and the answers
/// the rules do not allow, described.
#[derive(Default)]
pub struct BurstOutcome {
    /// Answers by kind and status.
    pub seen: BTreeMap<(Kind, u16), usize>,
    /// Answers outside the allowed statuses.
    pub unexpected: Vec<String>,
}

impl BurstOutcome {
    /// Requests answered in all.
    pub fn total(&self) -> usize {
        self.seen.values().sum()
    }

    /// Unauthenticated writes that were accepted (2xx).
    pub fn unauthenticated_accepted(&self) -> usize {
        self.seen
            .iter()
            .filter(|((k, s), _)| *k == Kind::Unauthenticated && (200..300).contains(s))
            .map(|(_, n)| n)
            .sum()
    }
}

/// Runs `threads` burst threads inside the namespace named `ns`, each sending `per_thread` requests of the
/// mix one after another (or fewer, once `stop` is set), and gathers what they saw.
pub fn burst(
    ns: &str,
    token: &str,
    threads: usize,
    per_thread: usize,
    stop: &Arc<AtomicBool>,
) -> BurstOutcome {
    let handles: Vec<_> = (0..threads)
        .map(|thread| {
            let token = token.to_owned();
            let ns = ns.to_owned();
            let stop = stop.clone();
            std::thread::spawn(move || {
                Netns::enter_and(&ns, move || {
                    let mut out = BurstOutcome::default();
                    for i in 0..per_thread {
                        if stop.load(Ordering::Relaxed) {
                            break;
                        }
                        let (kind, bytes, allowed) = burst_request(thread, i, &token);
                        let (status, body) = exchange_here(&bytes).unwrap_or((0, Vec::new()));
                        *out.seen.entry((kind, status)).or_default() += 1;
                        if !allowed.contains(&status) {
                            out.unexpected.push(format!(
                                "thread {thread} request {i} ({kind:?}): {status} {}",
                                String::from_utf8_lossy(&body)
                            ));
                        }
                    }
                    out
                })
            })
        })
        .collect();
    let mut all = BurstOutcome::default();
    for h in handles {
        let out = h.join().expect("burst thread");
        for (k, n) in out.seen {
            *all.seen.entry(k).or_default() += n;
        }
        all.unexpected.extend(out.unexpected);
    }
    all
}
