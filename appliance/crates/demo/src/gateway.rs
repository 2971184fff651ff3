//! The gateway of the demo: the real `tungate run`, started as a child process inside the
//! gateway's namespace (a temporary state directory, userspace decap, one peer — the real
//! server — serving the VIP), then set up through its admin API as an operator would: the
//! four example plugins uploaded, `accounting` bound to the VIP.
//!
//! It owns the child's start and its API set-up; stopping it is the cleanup guard's job.
//! It never touches the state directory behind tungate's back.

use std::fs::File;
use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use serde::Deserialize;

use super::DemoError;
use super::encap::DemoTunnel;
use super::netns::NETNS_DIR;
use super::topology::{CLIENT_PREFIXES, GIP, RIP, VIP};
use tungate_api::client::ApiClient;

/// The example plugins, in upload order.
pub(crate) const EXAMPLE_PLUGINS: [&str; 4] =
    ["accounting", "cidr-filter", "port-filter", "rate-limit"];
/// Where built plugins land, relative to the repository (or a plugin's) folder: what
/// `deploy/ci/test-all.sh`, `deploy/demo.sh`, the tests and the guides build into. The one
/// place this path is defined; `doc_paths` holds the documents and scripts to it.
pub const WORKSPACE_PLUGIN_DIR: &str = "target/wasm-plugins/wasm32-unknown-unknown/plugin";
/// Where the appliance image installs them.
pub(crate) const INSTALLED_PLUGIN_DIR: &str = "/usr/share/tungate/plugins";
/// How long tungate may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// The configuration file the gateway starts with: its one peer sends `tunnel`.
pub(crate) fn config_toml(tunnel: DemoTunnel) -> String {
    let tunnel = match tunnel {
        DemoTunnel::Ipip => String::new(),
        other => format!("tunnel = \"{}\"\n", other.as_str()),
    };
    format!(
        "# Written by `tungate demo`.\n\
         [gateway]\naddress = \"{GIP}\"\ndecap = \"userspace\"\nworkers = 1\n\n\
         [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\n{tunnel}vips = [\"{VIP}\"]\n"
    )
}

/// The `.wasm` file of each example plugin in `dir` (named `cidr-filter.wasm` or, as cargo
/// writes it, `cidr_filter.wasm`).
pub(crate) fn find_plugins(dirs: &[PathBuf]) -> Result<Vec<(&'static str, PathBuf)>, DemoError> {
    let mut missing = Vec::new();
    for dir in dirs {
        let found: Vec<_> = EXAMPLE_PLUGINS
            .iter()
            .filter_map(|name| {
                [name.to_string(), name.replace('-', "_")]
                    .into_iter()
                    .map(|stem| dir.join(format!("{stem}.wasm")))
                    .find(|p| p.is_file())
                    .map(|p| (*name, p))
            })
            .collect();
        if found.len() == EXAMPLE_PLUGINS.len() {
            return Ok(found);
        }
        missing.push(dir.display().to_string());
    }
    Err(DemoError::PluginsMissing {
        searched: missing.join(", "),
    })
}

/// Starts `tungate run` (this same executable) inside the namespace `namespace` with the
/// configuration file `config_text` and the `extra` flags, its configuration, state and
/// output in `work`.
pub(crate) fn spawn(
    namespace: &str,
    work: &Path,
    admin_listen: SocketAddr,
    config_text: &str,
    extra: &[&str],
) -> Result<Child, DemoError> {
    let io = |what: &'static str| move |source| DemoError::Io { what, source };
    let config = work.join("tungate.toml");
    std::fs::write(&config, config_text).map_err(io("writing the gateway's configuration"))?;
    let exe = std::env::current_exe().map_err(io("finding the tungate executable"))?;
    let namespace_file = File::open(Path::new(NETNS_DIR).join(namespace)).map_err(|source| {
        DemoError::Namespace {
            name: namespace.to_owned(),
            source,
        }
    })?;
    let stdout =
        File::create(work.join("tungate.stdout")).map_err(io("creating tungate.stdout"))?;
    let stderr =
        File::create(work.join("tungate.stderr")).map_err(io("creating tungate.stderr"))?;
    let mut command = Command::new(exe);
    command
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(work.join("state"))
        .arg("--admin-listen")
        .arg(admin_listen.to_string())
        .args(extra)
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        // Its own process group: Ctrl-C reaches the demo only, which stops it in order.
        .process_group(0);
    // SAFETY: between fork and exec the child only makes two system calls (setns on a
    // descriptor opened before the fork, prctl), both async-signal-safe, and allocates
    // nothing.
    unsafe {
        command.pre_exec(move || {
            setns(&namespace_file, CloneFlags::CLONE_NEWNET)?;
            // If the demo dies without its guard running (SIGKILL), tungate stops too.
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)?;
            Ok(())
        });
    }
    command.spawn().map_err(io("starting tungate run"))
}

/// The last lines of the gateway's standard error (for error messages).
pub(crate) fn stderr_tail(work: &Path) -> String {
    let text = std::fs::read_to_string(work.join("tungate.stderr")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(8)..].join("\n")
}

/// Waits until the API at `client` says ready (`/readyz` 200), failing early when the
/// child exits.
pub(crate) async fn wait_ready(
    client: &ApiClient,
    child: &mut Child,
    work: &Path,
) -> Result<(), DemoError> {
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(DemoError::Gateway(format!(
                "tungate run exited ({status}) before it was ready:\n{}",
                stderr_tail(work)
            )));
        }
        if let Ok(r) = client
            .send(hyper::Method::GET, "/readyz", None, Vec::new())
            .await
            && r.status == 200
        {
            return Ok(());
        }
        if started.elapsed() > READY_TIMEOUT {
            return Err(DemoError::Gateway(format!(
                "tungate run was not ready within {READY_TIMEOUT:?}:\n{}",
                stderr_tail(work)
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What the API says of an uploaded plugin.
#[derive(Debug, Deserialize)]
pub(crate) struct Uploaded {
    /// Its sha256.
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Uploads one plugin module through the API.
pub(crate) async fn upload(
    client: &ApiClient,
    name: &str,
    file: &Path,
) -> Result<Uploaded, DemoError> {
    let module = std::fs::read(file).map_err(|source| DemoError::Io {
        what: "reading a plugin module",
        source,
    })?;
    Ok(client
        .put_wasm(&format!("/api/v1/plugins/{name}"), module)
        .await?)
}

/// The client prefixes, as JSON strings.
pub(crate) fn client_prefixes() -> Vec<&'static str> {
    CLIENT_PREFIXES.iter().map(|(p, _)| *p).collect()
}

/// Binds `accounting` (counting per client prefix) to the VIP.
pub(crate) async fn bind_accounting(client: &ApiClient) -> Result<(), DemoError> {
    let body = serde_json::json!({
        "plugins": [{"plugin": "accounting", "config": {"prefixes": client_prefixes()}}]
    });
    let _: serde_json::Value = client
        .put_json(&format!("/api/v1/vips/{VIP}"), &body)
        .await?;
    Ok(())
}

/// The JSON body that binds accounting and a cidr-filter denying `prefix` (printed as a
/// hint, and used by the tests).
pub(crate) fn deny_body(prefix: &str) -> serde_json::Value {
    serde_json::json!({
        "plugins": [
            {"plugin": "accounting", "config": {"prefixes": client_prefixes()}},
            {"plugin": "cidr-filter", "config": {"deny": [prefix]}}
        ]
    })
}

/// The admin listener inside the gateway's namespace: loopback when the relay only
/// listens on the host's loopback (reads need no token, as on any loopback tungate), the
/// gateway's own address otherwise (every API request then needs the token).
pub(crate) fn inner_admin_listen(host_listen: SocketAddr) -> SocketAddr {
    let ip: Ipv4Addr = if host_listen.ip().is_loopback() {
        Ipv4Addr::LOCALHOST
    } else {
        GIP
    };
    SocketAddr::from((ip, 9080))
}
