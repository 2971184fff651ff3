//! A real Prometheus (Debian's `prometheus`) inside a test's namespace, configured from the
//! shipped `deploy/fleet/` files: `prometheus.yml` with its placeholders filled in, the
//! recording rules `tungate-fleet.rules.yml` as they are, and a file_sd targets file in the
//! format of `tungate-targets.json`. It listens on every address of its namespace (the
//! test's only: the gateways reach it over their links); queries go through its HTTP API. Killed on drop, before its namespace goes. Also `promtool`, and a
//! reader of one sample from Prometheus text (a gateway's `/metrics`).

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use percent_encoding::{NON_ALPHANUMERIC, utf8_percent_encode};

use crate::http::Api;
use crate::netns::Netns;
use crate::wait::until;

/// The shipped Prometheus configuration (with `@...@` placeholders).
pub const CONFIG: &str = include_str!("../../../../deploy/fleet/prometheus.yml");
/// The shipped recording rules.
pub const RULES: &str = include_str!("../../../../deploy/fleet/tungate-fleet.rules.yml");
/// The shipped example targets file.
pub const TARGETS_EXAMPLE: &str = include_str!("../../../../deploy/fleet/tungate-targets.json");
/// Prometheus' port: it listens on every address of its namespace (so that a gateway's
/// `--prometheus` reaches it); the test asks it on [`LOCAL`].
pub const PORT: u16 = 9090;
/// Where the test asks it, inside its namespace.
pub const LOCAL: &str = "127.0.0.1:9090";

/// The shipped `prometheus.yml` with its placeholders filled in.
pub fn config(scrape_interval: &str, targets_file: &str, rules_file: &str) -> String {
    CONFIG
        .replace("@SCRAPE_INTERVAL@", scrape_interval)
        .replace("@TARGETS_FILE@", targets_file)
        .replace("@RULES_FILE@", rules_file)
}

/// A file_sd targets file: one group of `targets` labelled `fleet`.
pub fn targets(fleet: &str, targets: &[String]) -> String {
    serde_json::json!([{ "targets": targets, "labels": { "fleet": fleet } }]).to_string()
}

/// `promtool ARGS`: exit code and output (stdout then stderr).
pub fn promtool(args: &[&str]) -> (i32, String) {
    let out = Command::new("promtool")
        .args(args)
        .output()
        .expect("run promtool (apt-get install prometheus)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), text)
}

/// The value of the sample `name{labels}` (exactly those labels) in Prometheus text.
pub fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let wanted: BTreeMap<&str, &str> = labels.iter().copied().collect();
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let (metric, found) = match series.split_once('{') {
                Some((m, rest)) => (m, parse_labels(rest.strip_suffix('}')?)?),
                None => (series, BTreeMap::new()),
            };
            (metric == name && found == wanted).then(|| value.parse().ok())?
        })
}

/// `a="x",b="y"` (no escapes: tungate's label values are addresses and reason names).
fn parse_labels(text: &str) -> Option<BTreeMap<&str, &str>> {
    text.split(',')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=')?;
            Some((k, v.strip_prefix('"')?.strip_suffix('"')?))
        })
        .collect()
}

/// A Prometheus process, killed on drop.
pub struct Prometheus {
    child: Child,
    api: Api,
    ns: String,
    /// Its log.
    pub log: std::path::PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `ns` with the shipped configuration and rules, scraping the
    /// gateways in `targets_json` (a file_sd file) every `scrape_interval`, and waits until
    /// it is ready.
    pub fn start(ns: &Netns, scrape_interval: &str, targets_json: &str) -> Prometheus {
        let rules = ns.path("tungate-fleet.rules.yml");
        std::fs::write(&rules, RULES).expect("write the rules");
        let targets = ns.path("tungate-targets.json");
        std::fs::write(&targets, targets_json).expect("write the targets file");
        let path = ns.path("prometheus.yml");
        std::fs::write(
            &path,
            config(
                scrape_interval,
                &targets.display().to_string(),
                &rules.display().to_string(),
            ),
        )
        .expect("write the Prometheus configuration");
        let data = ns.path("prometheus-data");
        let log = ns.path("prometheus.log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "prometheus"])
            .arg(format!("--config.file={}", path.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address=0.0.0.0:{PORT}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("create the Prometheus log"))
            .spawn()
            .expect("start prometheus (apt-get install prometheus)");
        let prometheus = Prometheus {
            child,
            api: Api::new(ns, LOCAL, None),
            ns: ns.name.clone(),
            log,
        };
        until(Duration::from_secs(30), "Prometheus is ready", || {
            prometheus.reachable() && prometheus.api.get("/-/ready").status == 200
        });
        prometheus
    }

    fn reachable(&self) -> bool {
        // A refused connection panics inside the HTTP client: probe with a plain connect.
        let path = format!("/run/netns/{}", self.ns);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("open netns");
            nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            std::net::TcpStream::connect(LOCAL).is_ok()
        })
        .join()
        .expect("probe thread")
    }

    /// An instant query: each result's labels and value (panics on an API error, with it).
    pub fn query(&self, expr: &str) -> Vec<(BTreeMap<String, String>, f64)> {
        let path = format!(
            "/api/v1/query?query={}",
            utf8_percent_encode(expr, NON_ALPHANUMERIC)
        );
        let answer = self.api.get(&path).json();
        assert_eq!(answer["status"], "success", "query {expr}: {answer}");
        answer["data"]["result"]
            .as_array()
            .expect("a vector result")
            .iter()
            .map(|r| {
                let labels = r["metric"]
                    .as_object()
                    .expect("labels")
                    .iter()
                    .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
                    .collect();
                let value = r["value"][1]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .expect("a sample value");
                (labels, value)
            })
            .collect()
    }

    /// The one value of `expr`, if it has exactly one result.
    pub fn value(&self, expr: &str) -> Option<f64> {
        match self.query(expr).as_slice() {
            [(_, v)] => Some(*v),
            _ => None,
        }
    }

    /// Its scrape targets: address and health (`up`, `down`, `unknown`).
    pub fn targets(&self) -> BTreeMap<String, String> {
        let answer = self.api.get("/api/v1/targets").json();
        answer["data"]["activeTargets"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|t| {
                (
                    t["labels"]["instance"].as_str().unwrap_or("").to_owned(),
                    t["health"].as_str().unwrap_or("").to_owned(),
                )
            })
            .collect()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_is_found_by_its_exact_labels() {
        let text = "# HELP x y\n# TYPE t counter\nt 3\nv{vip=\"192.0.2.10\"} 7\n\
                    v{vip=\"192.0.2.10\",reason=\"ttl_expired\"} 2\n";
        assert_eq!(sample(text, "t", &[]), Some(3.0));
        assert_eq!(sample(text, "v", &[("vip", "192.0.2.10")]), Some(7.0));
        assert_eq!(
            sample(
                text,
                "v",
                &[("reason", "ttl_expired"), ("vip", "192.0.2.10")]
            ),
            Some(2.0)
        );
        assert_eq!(sample(text, "v", &[("vip", "192.0.2.11")]), None);
        assert_eq!(sample(text, "w", &[]), None);
    }

    #[test]
    fn the_shipped_example_targets_file_has_the_written_shape() {
        let example: serde_json::Value = serde_json::from_str(TARGETS_EXAMPLE).unwrap();
        let written: serde_json::Value =
            serde_json::from_str(&targets("prod", &["10.1.1.2:9080".to_owned()])).unwrap();
        assert_eq!(example[0]["labels"]["fleet"], written[0]["labels"]["fleet"]);
        assert!(example[0]["targets"].is_array() && written[0]["targets"].is_array());
    }
}
