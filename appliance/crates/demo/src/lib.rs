//! `tungate demo`: the whole reply path on one Linux host, no LVS cluster needed. It builds
//! three network namespaces — a client, a real server and the gateway (see [`topology`]) —,
//! runs a real HTTP and UDP echo server on the VIP in the real server ([`servers`]), sends
//! that server's replies through an IPIP tunnel to the gateway ([`encap`], a userspace
//! encapsulator, since the host may have no `ipip` module), starts the real `tungate run` in
//! the gateway's namespace and sets it up through its API ([`gateway`]), makes the admin
//! API and web UI reachable from the host ([`relay`]), and sends a steady mix of client
//! requests from two prefixes ([`traffic`]) until Ctrl-C, SIGTERM or `--duration`. Then
//! [`cleanup`] removes everything it made — also when setup fails or the demo panics.
//!
//! With `--gateways N` (N > 1) it runs a fleet instead ([`fleet`]): a router namespace
//! running BIRD with ECMP, N gateway namespaces each running `tungate run --fleet demo` and
//! its BIRD ([`bird`], shared with the fleet tests), the real server and the client.
//!
//! This module orchestrates and prints progress; the work is in the files beside it. It
//! never configures the host's own namespace (no interface, address, route, rule, sysctl
//! or nftables table outside the namespaces it created).

/// `println!` that never panics: the demo keeps running (and cleans up) when its output is
/// a pipe whose reader went away (`tungate demo | head`); the lines are then lost.
macro_rules! out {
    ($($t:tt)*) => {{
        let _ = std::io::Write::write_fmt(
            &mut std::io::stdout().lock(),
            format_args!("{}\n", format_args!($($t)*)),
        );
    }};
}

/// `eprintln!` that never panics (see [`out!`]).
macro_rules! err {
    ($($t:tt)*) => {{
        let _ = std::io::Write::write_fmt(
            &mut std::io::stderr().lock(),
            format_args!("{}\n", format_args!($($t)*)),
        );
    }};
}

pub mod bird;
mod cleanup;
mod encap;
mod etcd;
mod fleet;
mod gateway;
pub mod netns;
mod relay;
mod servers;
mod topology;
mod traffic;

#[cfg(test)]
mod doc_paths;

pub use gateway::WORKSPACE_PLUGIN_DIR;

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cleanup::Cleanup;
pub use encap::DemoTunnel;
use encap::EncapCounters;
use topology::{CLIENT_PREFIXES, GIP, Names, RIP, TUN_NAME, VIP};
use traffic::TrafficCounters;

use tungate_api::client::{ApiClient, ClientError};
use tungate_api::token::{TokenFileError, read_token_file};
use tungate_api::wire::Stats;

/// The default host address of the admin relay (the web UI's URL).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9180";
/// The default request rate, requests per second over all clients.
pub const DEFAULT_RATE: f64 = 20.0;
/// The highest `--rate` accepted (the clients are one thread).
pub(crate) const MAX_RATE: f64 = 10_000.0;
/// The name of a demo's temporary directory, before its process id.
const WORK_DIR_PREFIX: &str = "tungate-demo-";
/// How often progress is printed.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// Steps of the set-up, for the `[n/N]` progress lines.
const STEPS: u32 = 7;

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// Not running as root.
    #[error("the demo makes network namespaces and needs root: run it with sudo")]
    NotRoot,
    /// The gateway's admin token cannot be read.
    #[error("reading the admin token: {0}")]
    Token(#[from] TokenFileError),
    /// A tool could not be started.
    #[error("cannot run `{command}`: {source} (the demo needs iproute2: apt-get install iproute2)")]
    Tool {
        /// The command line.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("`{command}` failed: {stderr}")]
    Command {
        /// The command line.
        command: String,
        /// What it said.
        stderr: String,
    },
    /// A namespace could not be opened or entered.
    #[error("network namespace {name}: {source}")]
    Namespace {
        /// Its name.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// A sysctl could not be written.
    #[error("cannot write {path} in namespace {namespace}: {source}")]
    Sysctl {
        /// The namespace.
        namespace: String,
        /// The sysctl's path.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// A thread could not be started.
    #[error("cannot start the thread {what}: {source}")]
    Thread {
        /// Which thread.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// A helper thread panicked.
    #[error("{0} panicked")]
    Panicked(&'static str),
    /// The TUN device failed.
    #[error("TUN device {name}: {source} (is /dev/net/tun there? modprobe tun)")]
    Tun {
        /// The device.
        name: String,
        /// Why.
        source: std::io::Error,
    },
    /// A socket or runtime could not be made.
    #[error("{what}: {source}")]
    Socket {
        /// Which one.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
    /// The example plugins were not found.
    #[error(
        "the four example plugins (accounting, cidr-filter, port-filter, rate-limit .wasm) are \
         not in {searched}: build them with `cargo build --profile plugin --target \
         wasm32-unknown-unknown -p accounting -p cidr-filter -p port-filter -p rate-limit` \
         (CARGO_TARGET_DIR=target/wasm-plugins), or give --plugin-dir DIR"
    )]
    PluginsMissing {
        /// The directories searched.
        searched: String,
    },
    /// The host listener could not be bound.
    #[error("cannot listen on {address} for the web UI: {source}; give another --listen")]
    Listen {
        /// The address.
        address: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// `bird`/`birdc` are not installed (the fleet demo needs them).
    #[error(
        "the fleet demo runs BIRD 2 in its router and gateway namespaces, but `bird` and \
         `birdc` are not in PATH: apt-get install bird2 (then `systemctl disable --now bird` \
         if you do not want the host's own BIRD running)"
    )]
    BirdMissing,
    /// The options do not go together.
    #[error("{0}")]
    Options(String),
    /// The gateway did not start or died.
    #[error("the gateway: {0}")]
    Gateway(String),
    /// The admin API refused or failed a request.
    #[error(transparent)]
    Api(#[from] ClientError),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// Why.
        source: std::io::Error,
    },
}

/// The flags of `tungate demo`.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Where the web UI and API are reachable from the host.
    pub listen: SocketAddr,
    /// Client requests per second, over all client addresses.
    pub rate: f64,
    /// Stop after this long (default: run until Ctrl-C or SIGTERM).
    pub duration: Option<Duration>,
    /// Where the example plugins' `.wasm` files are.
    pub plugin_dir: Option<PathBuf>,
    /// The real server's reply tunnel (`--tunnel`): IPIP, or GUE to port 6080.
    pub tunnel: DemoTunnel,
    /// How many gateways (`--gateways`): 1 is the single gateway; more make a fleet behind
    /// a BIRD router with ECMP (at most [`bird::MAX_GATEWAYS`]).
    pub gateways: usize,
}

fn step(n: u32, text: &str) {
    step_of(n, STEPS, text);
}

/// Prints the progress line `[n/steps] text`.
fn step_of(n: u32, steps: u32, text: &str) {
    out!("[{n}/{steps}] {text}");
    let _ = std::io::stdout().flush();
}

fn detail(text: &str) {
    out!("      {text}");
    let _ = std::io::stdout().flush();
}

/// The temporary directory (configuration, state, logs) of the demo with process id `pid`.
fn work_dir(pid: u32) -> PathBuf {
    std::env::temp_dir().join(format!("{WORK_DIR_PREFIX}{pid}"))
}

/// Deletes the temporary directories of earlier demos whose process is gone (killed with
/// SIGKILL, so their guard never ran); returns their paths.
fn remove_stale_work_dirs() -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix(WORK_DIR_PREFIX))
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        if std::fs::remove_dir_all(entry.path()).is_ok() {
            removed.push(entry.path().display().to_string());
        }
    }
    removed
}

/// Runs the demo; returns the process exit status.
pub fn run(options: DemoOptions) -> i32 {
    if !(options.rate > 0.0 && options.rate <= MAX_RATE) {
        err!(
            "tungate demo: --rate {} is not a request rate: give more than 0 and at most {MAX_RATE}",
            options.rate
        );
        return tungate_config::EXIT_BAD_CONFIG;
    }
    if !nix::unistd::geteuid().is_root() {
        err!("tungate demo: {}", DemoError::NotRoot);
        return 1;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let mut cleanup = Cleanup::new(stop.clone());
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            err!("tungate demo: cannot start a runtime: {e}");
            return 1;
        }
    };
    let result = if options.gateways > 1 {
        runtime.block_on(fleet::demo(&options, &mut cleanup, stop))
    } else {
        runtime.block_on(demo(&options, &mut cleanup, stop))
    };
    out!("stopping: removing everything the demo made");
    let problems = cleanup.finish(&mut |m| detail(m));
    drop(runtime);
    for p in &problems {
        err!("tungate demo: cleanup: {p}");
    }
    match result {
        Ok(()) if problems.is_empty() => {
            out!("done: the host is as it was before the demo");
            0
        }
        Ok(()) => 1,
        Err(e) => {
            err!("tungate demo: {e}");
            1
        }
    }
}

/// The plugin directories searched, in order.
fn plugin_dirs(options: &DemoOptions) -> Vec<PathBuf> {
    match &options.plugin_dir {
        Some(dir) => vec![dir.clone()],
        None => vec![
            PathBuf::from(gateway::INSTALLED_PLUGIN_DIR),
            PathBuf::from(gateway::WORKSPACE_PLUGIN_DIR),
        ],
    }
}

async fn demo(
    options: &DemoOptions,
    cleanup: &mut Cleanup,
    stop: Arc<AtomicBool>,
) -> Result<(), DemoError> {
    // Everything that can be checked before touching the kernel is checked first.
    let plugins = gateway::find_plugins(&plugin_dirs(options))?;
    let listener = tokio::net::TcpListener::bind(options.listen)
        .await
        .map_err(|source| DemoError::Listen {
            address: options.listen,
            source,
        })?;
    let pid = std::process::id();
    let names = Names::for_pid(pid);
    let mut stale = topology::remove_stale()?;
    stale.extend(remove_stale_work_dirs());
    out!("tungate demo: a client, a real server and a gateway in three network namespaces");
    if !stale.is_empty() {
        detail(&format!(
            "removed leftovers of a killed demo: {}",
            stale.join(", ")
        ));
    }

    step(1, "namespaces and veth links");
    topology::build(&names, cleanup)?;
    detail(&format!(
        "{} (clients {}), {} (real server {RIP}, VIP {VIP}), {} (gateway {GIP})",
        names.client,
        CLIENT_PREFIXES.map(|(p, _)| p).join(" and "),
        names.rs,
        names.gw
    ));

    step(2, "reply tunnel on the real server");
    let encap_counters = Arc::new(EncapCounters::default());
    let (tun_ready, tun_made) = std::sync::mpsc::channel();
    let (counters, flag) = (encap_counters.clone(), stop.clone());
    let tunnel = options.tunnel;
    let handle = netns::spawn_in(&names.rs, "tgdemo-encap", move || {
        let tun = match encap::open_tun(TUN_NAME) {
            Ok(t) => t,
            Err(e) => {
                let _ = tun_ready.send(Err(e.to_string()));
                return Err(e);
            }
        };
        let _ = tun_ready.send(Ok(()));
        encap::run(tun, tunnel, RIP, GIP, &flag, &counters)
    })?;
    cleanup.thread("the encapsulator", handle);
    match tun_made.recv() {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(DemoError::Gateway(e)),
        Err(_) => return Err(DemoError::Panicked("the encapsulator")),
    }
    topology::route_replies_into_tun(&names.rs)?;
    let outer = match tunnel {
        DemoTunnel::Ipip => format!("IPIP {RIP} -> {GIP}"),
        DemoTunnel::Gue => format!(
            "GUE {RIP}:<per-flow port> -> {GIP}:{}",
            tungate_config::DEFAULT_GUE_PORT
        ),
    };
    detail(&format!(
        "userspace encapsulator (the demo always uses one, so it runs on kernels without \
         ipip or fou): replies from {VIP} -> rule table {} -> TUN {TUN_NAME} -> {outer}",
        topology::REPLY_TABLE
    ));

    step(3, "real server applications on the VIP");
    let (bound_tx, bound_rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let handle = netns::spawn_in(&names.rs, "tgdemo-servers", move || {
        servers::run(flag, bound_tx)
    })?;
    cleanup.thread("the real server's applications", handle);
    if bound_rx.recv_timeout(Duration::from_secs(10)).is_err() {
        return Err(DemoError::Gateway(
            "the real server's applications did not start".into(),
        ));
    }
    detail(&format!(
        "HTTP on {VIP}:{} and UDP echo on {VIP}:{}",
        topology::HTTP_PORT,
        topology::ECHO_PORT
    ));

    step(4, "gateway: tungate run in the gateway's namespace");
    let work = work_dir(pid);
    let _ = std::fs::remove_dir_all(&work);
    std::os::unix::fs::DirBuilderExt::mode(&mut std::fs::DirBuilder::new(), 0o700)
        .create(&work)
        .map_err(|source| DemoError::Io {
            what: "creating the demo's temporary directory",
            source,
        })?;
    cleanup.temp_dir(work.clone());
    let inner_listen = gateway::inner_admin_listen(options.listen);
    let child = cleanup.gateway(gateway::spawn(
        &names.gw,
        &work,
        inner_listen,
        &gateway::config_toml(options.tunnel),
        &[],
    )?);
    let url = format!("http://{}", listener.local_addr().unwrap_or(options.listen));
    tokio::spawn(relay::serve(listener, names.gw.clone(), inner_listen));
    let open = ApiClient::new(&url, None)?;
    gateway::wait_ready(&open, child, &work).await?;
    let token_file = work.join("state/admin-token");
    let token = read_token_file(&token_file)?;
    let api = ApiClient::new(&url, Some(token.clone()))?;
    detail(&format!(
        "ready: decap userspace, peer rs1 = {RIP} serving {VIP}; state in {}",
        work.join("state").display()
    ));

    step(5, "plugins, through the admin API");
    for (name, file) in &plugins {
        let uploaded = gateway::upload(&api, name, file).await?;
        detail(&format!(
            "uploaded {name:<12} sha256 {}…  {} bytes",
            &uploaded.sha256[..12.min(uploaded.sha256.len())],
            uploaded.size
        ));
    }
    gateway::bind_accounting(&api).await?;
    detail(&format!(
        "bound accounting to {VIP} (counts replies per client prefix)"
    ));

    step(6, "clients");
    let traffic_counters = Arc::new(TrafficCounters::default());
    let (counters, flag, rate) = (traffic_counters.clone(), stop.clone(), options.rate);
    let handle = netns::spawn_in(&names.client, "tgdemo-clients", move || {
        traffic::run(rate, counters, flag)
    })?;
    cleanup.thread("the clients", handle);
    detail(&format!(
        "{} requests/s in all, HTTP and UDP echo in turn, from {}",
        options.rate,
        CLIENT_PREFIXES
            .iter()
            .flat_map(|(_, a)| a.iter().map(|a| a.to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    ));

    step(7, "running");
    print_welcome(&url, &token, &token_file, &names);
    watch(options, cleanup, &api, &traffic_counters, &encap_counters).await
}

fn print_welcome(url: &str, token: &str, token_file: &std::path::Path, names: &Names) {
    let deny = gateway::deny_body(CLIENT_PREFIXES[1].0);
    out!("");
    out!("  web UI   {url}/   (sign in with the token)");
    out!("  token    {token}");
    out!(
        "  status   tungate status --url {url} --token-file {}",
        token_file.display()
    );
    out!(
        "  explore  ip netns exec {} curl -s --interface {} http://{VIP}/",
        names.client,
        CLIENT_PREFIXES[0].1[0]
    );
    out!("");
    out!(
        "  Try it: bind cidr-filter denying {} (web UI: Peers & VIPs, edit {VIP}, add cidr-filter),",
        CLIENT_PREFIXES[1].0
    );
    out!("  or with curl — that prefix's replies then drop at the gateway, the other's flow:");
    out!(
        "    curl -X PUT -H 'Authorization: Bearer {token}' -H 'Content-Type: application/json' \\"
    );
    out!("      -d '{deny}' {url}/api/v1/vips/{VIP}");
    out!("");
    out!("  Ctrl-C stops the demo and removes everything it made.");
    out!("");
    let _ = std::io::stdout().flush();
}

/// Prints progress every [`PROGRESS_EVERY`] until a signal, `--duration`, or a part of
/// the demo dying.
async fn watch(
    options: &DemoOptions,
    cleanup: &mut Cleanup,
    api: &ApiClient,
    traffic: &TrafficCounters,
    encap: &EncapCounters,
) -> Result<(), DemoError> {
    use tokio::signal::unix::{SignalKind, signal};
    let signal_error = |source| DemoError::Socket {
        what: "installing the signal handlers",
        source,
    };
    let mut interrupt = signal(SignalKind::interrupt()).map_err(signal_error)?;
    let mut terminate = signal(SignalKind::terminate()).map_err(signal_error)?;
    let started = Instant::now();
    let deadline = options.duration.map(|d| started + d);
    let mut tick = tokio::time::interval(PROGRESS_EVERY);
    tick.tick().await;
    let mut last = Progress::default();
    loop {
        let until_deadline = deadline.map_or(Duration::MAX, |d| {
            d.saturating_duration_since(Instant::now())
        });
        tokio::select! {
            _ = interrupt.recv() => { out!("\nCtrl-C"); return Ok(()); }
            _ = terminate.recv() => { out!("\nSIGTERM"); return Ok(()); }
            _ = tokio::time::sleep(until_deadline) => {
                out!("--duration reached");
                return Ok(());
            }
            _ = tick.tick() => {}
        }
        if let Some((_, status)) = cleanup.gateway_exited() {
            return Err(DemoError::Gateway(format!(
                "tungate run exited unexpectedly ({status})"
            )));
        }
        if let Some(name) = cleanup.ended_thread() {
            return Err(DemoError::Gateway(format!("{name} stopped unexpectedly")));
        }
        let now = Progress::read(api, traffic, encap).await;
        out!("{}", now.line(&last, started.elapsed()));
        let _ = std::io::stdout().flush();
        last = now;
    }
}

/// Counters read for one progress line.
#[derive(Debug, Default, Clone)]
struct Progress {
    answered: Vec<u64>,
    lost: Vec<u64>,
    tunnelled: u64,
    forwarded: u64,
    dropped: u64,
    plugin_drops: u64,
    /// Drops because a plugin failed (trap, deadline, memory cap) or is quarantined, with
    /// its binding's `on_error = "drop"`.
    plugin_error_drops: u64,
    api_error: Option<String>,
}

impl Progress {
    async fn read(api: &ApiClient, traffic: &TrafficCounters, encap: &EncapCounters) -> Progress {
        let mut p = Progress {
            answered: traffic
                .prefixes
                .iter()
                .map(|c| c.answered.load(Ordering::Relaxed))
                .collect(),
            lost: traffic
                .prefixes
                .iter()
                .map(|c| c.lost.load(Ordering::Relaxed))
                .collect(),
            tunnelled: encap.sent.load(Ordering::Relaxed),
            ..Progress::default()
        };
        match api.get_json::<Stats>("/api/v1/stats").await {
            Ok(stats) => {
                for vip in stats.vips.iter().filter(|v| v.address == VIP.to_string()) {
                    p.forwarded = vip.forwarded_packets;
                    p.dropped = vip.dropped.values().sum();
                    p.plugin_drops = vip.dropped.get("plugin").copied().unwrap_or(0);
                    p.plugin_error_drops = vip.dropped.get("plugin_error").copied().unwrap_or(0);
                }
            }
            Err(e) => p.api_error = Some(e.to_string()),
        }
        p
    }

    /// `[+15s] answered 198.51.100.0/24 50/50 203.0.113.0/24 50/50 | tunnelled +304 |
    /// gateway forwarded +304 dropped +0 (plugin +0, plugin_error +0)`: counts since the
    /// previous line; `plugin` are a plugin's own drop verdicts, `plugin_error` the drops
    /// of a failing or quarantined plugin whose binding says `on_error = "drop"`.
    fn line(&self, last: &Progress, elapsed: Duration) -> String {
        let delta = |now: u64, before: u64| now.saturating_sub(before);
        let mut out = format!("[+{}s] answered", elapsed.as_secs());
        for (i, (prefix, _)) in CLIENT_PREFIXES.iter().enumerate() {
            let answered = delta(self.answered[i], last.answered.get(i).copied().unwrap_or(0));
            let lost = delta(self.lost[i], last.lost.get(i).copied().unwrap_or(0));
            out.push_str(&format!(" {prefix} {answered}/{}", answered + lost));
        }
        out.push_str(&format!(
            " | tunnelled +{}",
            delta(self.tunnelled, last.tunnelled)
        ));
        match &self.api_error {
            Some(e) => out.push_str(&format!(" | gateway stats unavailable: {e}")),
            None => out.push_str(&format!(
                " | gateway forwarded +{} dropped +{} (plugin +{}, plugin_error +{})",
                delta(self.forwarded, last.forwarded),
                delta(self.dropped, last.dropped),
                delta(self.plugin_drops, last.plugin_drops),
                delta(self.plugin_error_drops, last.plugin_error_drops)
            )),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_progress_line_shows_what_changed_since_the_last() {
        let before = Progress {
            answered: vec![10, 10],
            lost: vec![0, 0],
            tunnelled: 40,
            forwarded: 40,
            ..Progress::default()
        };
        let now = Progress {
            answered: vec![15, 10],
            lost: vec![0, 5],
            tunnelled: 70,
            forwarded: 55,
            dropped: 15,
            plugin_drops: 15,
            plugin_error_drops: 0,
            api_error: None,
        };
        assert_eq!(
            now.line(&before, Duration::from_secs(10)),
            "[+10s] answered 198.51.100.0/24 5/5 203.0.113.0/24 0/5 | tunnelled +30 | gateway \
             forwarded +15 dropped +15 (plugin +15, plugin_error +0)"
        );
    }

    /// Issue 17 item 4: drops by a failing plugin (`plugin_error`) show in the line.
    #[test]
    fn a_progress_line_shows_drops_by_failing_plugins() {
        let before = Progress {
            answered: vec![50, 50],
            lost: vec![0, 0],
            ..Progress::default()
        };
        let now = Progress {
            answered: vec![100, 50],
            lost: vec![0, 50],
            dropped: 196,
            plugin_error_drops: 196,
            ..Progress::default()
        };
        let line = now.line(&before, Duration::from_secs(5));
        assert!(
            line.ends_with("dropped +196 (plugin +0, plugin_error +196)"),
            "{line}"
        );
    }
}
