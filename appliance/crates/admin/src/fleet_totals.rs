//! `GET /api/v1/fleet/totals`: the fleet's totals per VIP for the dashboard. A gateway
//! only counts its own packets; the fleet's sums are made by Prometheus (the recording rules
//! of `deploy/fleet/tungate-fleet.rules.yml`), so a gateway started with `--fleet NAME
//! --prometheus URL` asks that Prometheus for them and answers in the API's shape.
//!
//! It sends only its own fixed instant queries, for its own fleet's label: a client cannot
//! make it run other PromQL or reach another address. Without `--prometheus`: 409; a
//! Prometheus that cannot be reached, fails or answers nonsense: 502 naming it.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};
use serde::Deserialize;

use super::AdminState;
use crate::error::ApiError;
use tungate_api::client::ApiClient;
use tungate_api::wire::{FleetTotals, FleetVipTotals};
use tungate_control::ErrorCode;

/// The recording rule of the packets forwarded per fleet and VIP.
pub(crate) const PACKETS: &str = "fleet_vip:tungate_vip_forwarded_packets_total:sum";
/// The recording rule of the bytes forwarded per fleet and VIP.
pub(crate) const BYTES: &str = "fleet_vip:tungate_vip_forwarded_bytes_total:sum";
/// The recording rule of the packets dropped per fleet and VIP (every reason).
pub(crate) const DROPPED: &str = "fleet_vip:tungate_vip_dropped_packets_total:sum";
/// The recording rule of the gateways that answered the last scrape, per fleet.
pub(crate) const UP: &str = "fleet:up:sum";
/// The longest a query may take (the dashboard polls; a slow Prometheus is an error).
const QUERY_LIMIT: Duration = Duration::from_secs(5);

/// Where a fleet gateway reads its fleet's totals (`--prometheus URL`).
pub struct FleetPrometheus {
    /// The fleet's name (the `fleet` label of its scrape targets).
    pub fleet: String,
    /// A client of the Prometheus HTTP API.
    pub client: ApiClient,
}

/// One sample of an instant query: its labels and value.
type Sample = (BTreeMap<String, String>, f64);

/// `GET /api/v1/fleet/totals`.
pub(crate) async fn totals(State(state): State<AdminState>) -> Result<Json<FleetTotals>, ApiError> {
    let Some(source) = state.0.prometheus.as_ref() else {
        return Err(ApiError::new(
            ErrorCode::Conflict,
            "no Prometheus is configured for this gateway's fleet: start it with --fleet NAME \
             --prometheus URL (deploy/fleet/prometheus.yml)",
        ));
    };
    let mut vips: BTreeMap<String, FleetVipTotals> = BTreeMap::new();
    for rule in [PACKETS, BYTES, DROPPED] {
        for (labels, value) in query(source, rule).await? {
            let Some(vip) = labels.get("vip") else {
                continue;
            };
            let entry = vips.entry(vip.clone()).or_insert_with(|| FleetVipTotals {
                vip: vip.clone(),
                forwarded_packets: 0,
                forwarded_bytes: 0,
                dropped_packets: 0,
            });
            let field = match rule {
                PACKETS => &mut entry.forwarded_packets,
                BYTES => &mut entry.forwarded_bytes,
                _ => &mut entry.dropped_packets,
            };
            *field = value;
        }
    }
    let up = query(source, UP).await?;
    let mut vips: Vec<FleetVipTotals> = vips.into_values().collect();
    in_address_order(&mut vips);
    Ok(Json(FleetTotals {
        fleet: source.fleet.clone(),
        prometheus: source.client.url().to_owned(),
        gateways_up: up.first().map(|(_, v)| *v),
        vips,
    }))
}

/// Orders `vips` by address, IPv4 before IPv6, each numerically (as `/api/v1/stats` lists
/// them), then any label that is no address.
fn in_address_order(vips: &mut [FleetVipTotals]) {
    vips.sort_by_key(|v| {
        v.vip
            .parse::<std::net::IpAddr>()
            .map_or((1, None), |a| (0, Some(a)))
    });
}

/// Runs the instant query `rule{fleet="NAME"}`; each sample's labels and value as a count.
async fn query(
    source: &FleetPrometheus,
    rule: &str,
) -> Result<Vec<(BTreeMap<String, String>, u64)>, ApiError> {
    let expr = format!("{rule}{{fleet=\"{}\"}}", source.fleet);
    let path = format!(
        "/api/v1/query?query={}",
        utf8_percent_encode(&expr, NON_ALPHANUMERIC)
    );
    let failed = |why: String| {
        ApiError::new(
            ErrorCode::BadGateway,
            format!(
                "the fleet's Prometheus at {} could not give {expr}: {why}",
                source.client.url()
            ),
        )
    };
    let response = source
        .client
        .send_within(QUERY_LIMIT, hyper::Method::GET, &path, None, Vec::new())
        .await
        .map_err(|e| failed(e.to_string()))?;
    let samples = parse(response.status, &response.body).map_err(failed)?;
    samples
        .into_iter()
        .map(|(labels, value)| {
            if value.is_finite() && value >= 0.0 && value <= 2f64.powi(53) {
                Ok((labels, value.round() as u64))
            } else {
                Err(failed(format!("{value} is not a count")))
            }
        })
        .collect()
}

/// Prometheus' answer to a query (`/api/v1/query`).
#[derive(Deserialize)]
struct Answer {
    status: String,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    data: Option<Data>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Data {
    result_type: String,
    result: Vec<Series>,
}

#[derive(Deserialize)]
struct Series {
    metric: BTreeMap<String, String>,
    /// `[unix time, "value"]`.
    value: (f64, String),
}

/// The samples of an instant vector answer, or why there are none.
fn parse(status: u16, body: &[u8]) -> Result<Vec<Sample>, String> {
    let answer: Answer = serde_json::from_slice(body).map_err(|e| {
        format!(
            "HTTP {status} with a body that is not a Prometheus query answer ({e}): {}",
            String::from_utf8_lossy(&body[..body.len().min(200)])
        )
    })?;
    if answer.status != "success" || status != 200 {
        return Err(format!(
            "HTTP {status}: {}",
            answer.error.unwrap_or_else(|| answer.status.clone())
        ));
    }
    let data = answer.data.ok_or("a success without data")?;
    if data.result_type != "vector" {
        return Err(format!(
            "a {} instead of an instant vector",
            data.result_type
        ));
    }
    data.result
        .into_iter()
        .map(|s| {
            let value: f64 = s
                .value
                .1
                .parse()
                .map_err(|_| format!("{:?} is not a number", s.value.1))?;
            Ok((s.metric, value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instant_vector_gives_its_samples() {
        let body = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{"__name__":"fleet_vip:tungate_vip_forwarded_packets_total:sum","fleet":"test","vip":"192.0.2.10"},"value":[1764950000.123,"2560"]},
            {"metric":{"fleet":"test","vip":"192.0.2.11"},"value":[1764950000.123,"0"]}]}}"#;
        let samples = parse(200, body).unwrap();
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].0["vip"], "192.0.2.10");
        assert_eq!(samples[0].1, 2560.0);
        let empty = br#"{"status":"success","data":{"resultType":"vector","result":[]}}"#;
        assert!(parse(200, empty).unwrap().is_empty());
    }

    #[test]
    fn vips_are_in_address_order_of_both_families() {
        let mut vips: Vec<FleetVipTotals> =
            ["2001:db8::10", "x", "192.0.2.10", "2001:db8::9", "10.0.0.1"]
                .map(|vip| FleetVipTotals {
                    vip: vip.into(),
                    forwarded_packets: 0,
                    forwarded_bytes: 0,
                    dropped_packets: 0,
                })
                .into();
        in_address_order(&mut vips);
        let order: Vec<&str> = vips.iter().map(|v| v.vip.as_str()).collect();
        assert_eq!(
            order,
            ["10.0.0.1", "192.0.2.10", "2001:db8::9", "2001:db8::10", "x"]
        );
    }

    #[test]
    fn errors_and_other_answers_say_what_came_back() {
        let bad = br#"{"status":"error","errorType":"bad_data","error":"parse error at char 3"}"#;
        assert_eq!(
            parse(400, bad).unwrap_err(),
            "HTTP 400: parse error at char 3"
        );
        let matrix = br#"{"status":"success","data":{"resultType":"matrix","result":[]}}"#;
        assert!(parse(200, matrix).unwrap_err().contains("matrix"));
        let html = b"<html>not Prometheus</html>";
        let e = parse(404, html).unwrap_err();
        assert!(e.starts_with("HTTP 404 with a body that is not"), "{e}");
        let nan = br#"{"status":"success","data":{"resultType":"vector","result":[
            {"metric":{},"value":[1,"x"]}]}}"#;
        assert!(parse(200, nan).unwrap_err().contains("not a number"));
    }
}
