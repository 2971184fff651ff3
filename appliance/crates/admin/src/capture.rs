//! `GET /api/v1/capture`: a bounded capture of dropped (and, when asked, passed) packets,
//! streamed as pcapng with each packet's drop reason, VIP, plugin and binding in its
//! comment.
//!
//! The handler checks the parameters, starts a tap on the data path's
//! [`Captures`](tungate_datapath::capture::Captures) (at most
//! [`MAX_CAPTURES`](tungate_datapath::capture::MAX_CAPTURES) at once, then 429) and hands it to a thread of its own that turns
//! captured packets into pcapng blocks until `count` packets or `seconds` have passed or the
//! client went away; the body streams those blocks. This module never touches the workers:
//! it only reads the tap's queues.

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use tokio::sync::mpsc;

use super::AdminState;
use super::error::ApiError;
use super::pcapng;
use tungate_config::DecapMode;
use tungate_control::ErrorCode;
use tungate_datapath::capture::{
    CaptureFilter, CaptureSession, Captured, Framing, Outcome, SNAPLEN,
};
use tungate_packet::DropReason;

/// Packets captured when `count` is not given.
pub(crate) const DEFAULT_COUNT: u32 = 100;
/// Most packets one capture may ask for.
pub(crate) const MAX_COUNT: u32 = 100_000;
/// Seconds a capture runs when `seconds` is not given.
pub(crate) const DEFAULT_SECONDS: u32 = 10;
/// Most seconds one capture may run.
pub(crate) const MAX_SECONDS: u32 = 300;
/// How often the capture thread looks whether the client is still there.
const CLIENT_CHECK: Duration = Duration::from_millis(200);
/// pcapng interface 0: frames as received in `userspace` decap.
const IF_ETHERNET: u32 = 0;
/// pcapng interface 1: inner packets in `kernel` decap.
const IF_IPV4: u32 = 1;

/// The query string, as given (each value checked by [`Params::parse`]).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Query0 {
    vip: Option<String>,
    reason: Option<String>,
    plugin: Option<String>,
    count: Option<String>,
    seconds: Option<String>,
    passed: Option<String>,
}

/// A checked capture request.
#[derive(Debug, PartialEq)]
pub(crate) struct Params {
    pub(crate) filter: CaptureFilter,
    pub(crate) count: u32,
    pub(crate) seconds: u32,
}

fn bad(field: &str, message: impl Into<String>) -> ApiError {
    ApiError::new(ErrorCode::BadRequest, message).at(field)
}

fn number(field: &str, value: Option<&str>, default: u32, max: u32) -> Result<u32, ApiError> {
    let Some(value) = value else {
        return Ok(default);
    };
    match value.parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(bad(
            field,
            format!("{field} must be a whole number from 1 to {max}, not {value:?}"),
        )),
    }
}

impl Params {
    /// Checks every parameter; the first problem is the error.
    pub(crate) fn parse(q: &Query0) -> Result<Params, ApiError> {
        let vip = q
            .vip
            .as_deref()
            .map(|v| {
                v.parse::<IpAddr>().map_err(|_| {
                    bad(
                        "vip",
                        format!("vip must be an IPv4 or IPv6 address, not {v:?}"),
                    )
                })
            })
            .transpose()?;
        let reason = q
            .reason
            .as_deref()
            .map(|r| {
                DropReason::ALL
                    .into_iter()
                    .find(|d| d.as_str() == r)
                    .ok_or_else(|| {
                        let names: Vec<&str> = DropReason::ALL.iter().map(|d| d.as_str()).collect();
                        bad(
                            "reason",
                            format!("{r:?} is not a drop reason; one of: {}", names.join(", ")),
                        )
                    })
            })
            .transpose()?;
        if let Some(p) = &q.plugin {
            if reason.is_some() {
                return Err(bad(
                    "plugin",
                    "give reason or plugin, not both (plugin means its drops: plugin and \
                     plugin_error)",
                ));
            }
            if !tungate_config::validate::is_valid_plugin_name(p) {
                return Err(bad("plugin", format!("{p:?} is not a valid plugin name")));
            }
        }
        let passed = match q.passed.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(bad(
                    "passed",
                    format!("passed must be true or false, not {other:?}"),
                ));
            }
        };
        Ok(Params {
            filter: CaptureFilter {
                vip,
                reason,
                plugin: q.plugin.clone(),
                passed,
            },
            count: number("count", q.count.as_deref(), DEFAULT_COUNT, MAX_COUNT)?,
            seconds: number(
                "seconds",
                q.seconds.as_deref(),
                DEFAULT_SECONDS,
                MAX_SECONDS,
            )?,
        })
    }

    /// What the file holds, for its section header's comment.
    fn describe(&self, decap: DecapMode) -> String {
        let f = &self.filter;
        let mut s = String::from("tungate capture of ");
        s.push_str(match (f.passed, f.reason, &f.plugin) {
            (true, _, _) => "dropped and passed packets",
            (false, Some(_), _) => "packets dropped for one reason",
            (false, None, Some(_)) => "packets dropped by one plugin",
            (false, None, None) => "dropped packets",
        });
        let _ = write!(s, "; filter:");
        if let Some(v) = f.vip {
            let _ = write!(s, " vip={v}");
        }
        if let Some(r) = f.reason {
            let _ = write!(s, " reason={r}");
        }
        if let Some(p) = &f.plugin {
            let _ = write!(s, " plugin={p}");
        }
        let _ = write!(
            s,
            " count={} seconds={} passed={}. ",
            self.count, self.seconds, f.passed
        );
        s.push_str(match decap {
            DecapMode::Userspace => {
                "Decap mode userspace: each frame as received on the ingress interface \
                 (Ethernet, outer IPv4 header, inner packet), interface 0. "
            }
            DecapMode::Kernel => {
                "Decap mode kernel: the inner packet only (the kernel removed the outer \
                 header before tungate read it), raw IPv4, interface 1. "
            }
        });
        let _ = write!(
            s,
            "Each packet's comment gives its drop_reason (or passed), vip, and for plugin \
             drops the plugin and binding (vips[VIP].plugins[POSITION]). Packets are cut to \
             {SNAPLEN} bytes. Not captured, only counted: drops before tungate reads a \
             packet (rx_overflow, the kernel's own drops, and packets dropped inside an XDP \
             program on the AF_XDP path), tx_error once the kernel took a packet, and \
             truncated packets read from no frame. A packet dropped after forwarding began \
             (no_route, too_big, tx_error) may show its TTL already decremented. Packets \
             lost because a capture queue was full are counted in the interface \
             statistics (isb_ifdrop) at the end."
        );
        s
    }
}

/// The comment of one captured packet: `drop_reason=R vip=V plugin=P binding=B worker=W`.
fn comment(c: &Captured) -> String {
    let mut s = match c.outcome {
        Outcome::Dropped(r) => format!("drop_reason={r}"),
        Outcome::Passed => "passed".to_owned(),
    };
    if let Some(v) = c.vip {
        let _ = write!(s, " vip={v}");
    }
    if let Some(culprit) = &c.culprit {
        let _ = write!(s, " plugin={}", culprit.plugin);
        if let Some(v) = c.vip {
            let _ = write!(s, " binding=vips[{v}].plugins[{}]", culprit.position);
        }
    }
    let _ = write!(s, " worker={}", c.worker);
    s
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The file's first blocks: the section header and both interfaces.
fn file_head(describe: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let app = concat!("tungate ", env!("CARGO_PKG_VERSION"));
    pcapng::section_header(&mut out, describe, app);
    pcapng::interface(
        &mut out,
        pcapng::LINKTYPE_ETHERNET,
        SNAPLEN as u32,
        "ingress (userspace decap)",
    );
    pcapng::interface(
        &mut out,
        pcapng::LINKTYPE_RAW,
        SNAPLEN as u32,
        "tunnel (kernel decap)",
    );
    out
}

/// Runs on the capture's own thread: packets into blocks until `count`, the deadline, or
/// the client is gone; then the statistics.
fn pump(session: CaptureSession, params: &Params, tx: &mpsc::Sender<Bytes>) {
    let started = unix_nanos();
    let deadline = Instant::now() + Duration::from_secs(u64::from(params.seconds));
    let mut written = 0u32;
    while written < params.count && !tx.is_closed() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let Some(c) = session.next_until(deadline.min(now + CLIENT_CHECK)) else {
            continue;
        };
        let mut block = Vec::with_capacity(c.bytes.len() + 128);
        let interface = match c.framing {
            Framing::Ethernet => IF_ETHERNET,
            Framing::Ipv4 => IF_IPV4,
        };
        pcapng::packet(
            &mut block,
            interface,
            c.unix_nanos,
            &c.bytes,
            c.original_len,
            &comment(&c),
        );
        if tx.blocking_send(Bytes::from(block)).is_err() {
            return;
        }
        written += 1;
    }
    let lost = session.lost();
    drop(session);
    let ended = unix_nanos();
    let mut tail = Vec::new();
    for interface in [IF_ETHERNET, IF_IPV4] {
        pcapng::statistics(
            &mut tail,
            interface,
            started,
            ended,
            if interface == IF_ETHERNET { lost } else { 0 },
            &format!(
                "{written} packet(s) written; {lost} lost in all (a worker's capture queue \
                 was full), counted on interface 0"
            ),
        );
    }
    let _ = tx.blocking_send(Bytes::from(tail));
}

/// `GET /api/v1/capture`.
pub(crate) async fn capture(
    State(state): State<AdminState>,
    query: Result<Query<Query0>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(query) = query.map_err(|e| {
        ApiError::new(
            ErrorCode::BadRequest,
            format!(
                "{}; the parameters are vip, reason, plugin, count, seconds, passed",
                e.body_text()
            ),
        )
    })?;
    let params = Params::parse(&query)?;
    let session = state
        .0
        .counters
        .captures()
        .start(params.filter.clone())
        .map_err(|e| ApiError::new(ErrorCode::TooManyRequests, e.to_string()))?;
    let head = file_head(&params.describe(state.view().document.gateway.decap));
    let (tx, mut rx) = mpsc::channel::<Bytes>(64);
    tx.try_send(Bytes::from(head))
        .map_err(|_| ApiError::new(ErrorCode::Internal, "the capture stream closed"))?;
    std::thread::Builder::new()
        .name("tg-capture".into())
        .spawn(move || pump(session, &params, &tx))
        .map_err(|e| {
            ApiError::new(
                ErrorCode::Internal,
                format!("cannot start the capture thread: {e}"),
            )
        })?;
    let stream = futures::stream::poll_fn(move |cx| {
        rx.poll_recv(cx).map(|b| b.map(Ok::<Bytes, Infallible>))
    });
    let name = format!(
        "attachment; filename=\"tungate-{}.pcapng\"",
        unix_nanos() / 1_000_000_000
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-pcapng".to_owned()),
            (header::CONTENT_DISPOSITION, name),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Query0 {
        let mut q = Query0::default();
        for (k, v) in pairs {
            let v = Some((*v).to_owned());
            match *k {
                "vip" => q.vip = v,
                "reason" => q.reason = v,
                "plugin" => q.plugin = v,
                "count" => q.count = v,
                "seconds" => q.seconds = v,
                "passed" => q.passed = v,
                _ => unreachable!(),
            }
        }
        q
    }

    fn field_of(e: ApiError) -> String {
        assert_eq!(e.0.code, ErrorCode::BadRequest);
        e.0.field.unwrap()
    }

    #[test]
    fn defaults_and_every_parameter() {
        let p = Params::parse(&Query0::default()).unwrap();
        assert_eq!((p.count, p.seconds), (DEFAULT_COUNT, DEFAULT_SECONDS));
        assert_eq!(p.filter, CaptureFilter::default());
        let p = Params::parse(&q(&[
            ("vip", "192.0.2.10"),
            ("reason", "unknown_peer"),
            ("count", "100000"),
            ("seconds", "300"),
            ("passed", "true"),
        ]))
        .unwrap();
        assert_eq!(
            p.filter.vip,
            Some(std::net::Ipv4Addr::new(192, 0, 2, 10).into())
        );
        assert_eq!(p.filter.reason, Some(DropReason::UnknownPeer));
        assert!(p.filter.passed);
        assert_eq!((p.count, p.seconds), (MAX_COUNT, MAX_SECONDS));
        let p = Params::parse(&q(&[("plugin", "deny-all")])).unwrap();
        assert_eq!(p.filter.plugin.as_deref(), Some("deny-all"));
    }

    #[test]
    fn bad_parameters_name_their_field() {
        for (pairs, field) in [
            (&[("vip", "10.0.0")][..], "vip"),
            (&[("reason", "nope")][..], "reason"),
            (&[("reason", "plugin"), ("plugin", "x")][..], "plugin"),
            (&[("plugin", "../x")][..], "plugin"),
            (&[("count", "0")][..], "count"),
            (&[("count", "100001")][..], "count"),
            (&[("count", "-1")][..], "count"),
            (&[("seconds", "301")][..], "seconds"),
            (&[("passed", "yes")][..], "passed"),
        ] {
            let e = Params::parse(&q(pairs)).unwrap_err();
            assert_eq!(field_of(e), field, "{pairs:?}");
        }
    }

    #[test]
    fn comments_and_the_section_comment_say_what_each_packet_is() {
        let c = Captured {
            unix_nanos: 1,
            worker: 1,
            framing: Framing::Ipv4,
            bytes: vec![0x45],
            original_len: 1,
            outcome: Outcome::Dropped(DropReason::Plugin),
            vip: Some(std::net::Ipv4Addr::new(192, 0, 2, 10).into()),
            culprit: Some(tungate_datapath::filter::Culprit {
                position: 0,
                plugin: "deny".into(),
            }),
        };
        assert_eq!(
            comment(&c),
            "drop_reason=plugin vip=192.0.2.10 plugin=deny \
             binding=vips[192.0.2.10].plugins[0] worker=1"
        );
        let passed = Captured {
            outcome: Outcome::Passed,
            vip: None,
            culprit: None,
            ..c
        };
        assert_eq!(comment(&passed), "passed worker=1");
        let p = Params::parse(&Query0::default()).unwrap();
        assert!(
            p.describe(DecapMode::Kernel)
                .contains("the inner packet only")
        );
        assert!(
            p.describe(DecapMode::Userspace)
                .contains("outer IPv4 header")
        );
        assert!(p.describe(DecapMode::Userspace).contains("XDP"));
    }
}
