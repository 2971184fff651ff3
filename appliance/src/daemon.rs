//! `tungate run`: open the state directory, seed it, start the control plane (which starts
//! the tunnels, the data path and the filters) and the admin server, then serve signals
//! until told to stop.
//!
//! SIGUSR1 prints the counters, SIGHUP seeds again from the config file (an edited file
//! replaces the document; an unchanged one keeps the stored state with its API changes),
//! SIGINT and SIGTERM stop the admin server, drain the control plane and stop the data path
//! cleanly — no nftables table, socket or thread left behind — and print the counters a
//! last time. Exit status 2 for a bad configuration, flag or plugin file (the field or file
//! named), 1 for a failure of this host. This module only orchestrates.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::{SigSet, Signal};

use tungate_admin::{AdminServer, AdminState, Shared};
use tungate_config as config;
use tungate_config::EXIT_BAD_CONFIG;
use tungate_control::plane::ConfigFile;
use tungate_control::store::StateDir;
use tungate_control::{Action, Control, ControlPlane, Reply, Startup, StartupError};
use tungate_datapath::counters::Snapshot;
use tungate_plugin_host::Limits;

/// The default admin listener.
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9080";
/// Shortest bearer token accepted from `--token-file`.
pub const MIN_TOKEN_LEN: usize = 16;

/// How `tungate run` prints its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CountersFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object per print, on one line (for scripts and tests).
    Json,
}

/// The flags of `tungate run`.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The configuration file (seeds the state; see the README's seeding rule).
    pub config: Option<PathBuf>,
    /// The state directory.
    pub state_dir: PathBuf,
    /// Where the admin API listens.
    pub admin_listen: SocketAddr,
    /// A file holding the admin bearer token (instead of the generated one).
    pub token_file: Option<PathBuf>,
    /// Plugin modules to store under their file stem before the document is built.
    pub plugins: Vec<PathBuf>,
    /// How counters are printed.
    pub counters_format: CountersFormat,
}

fn print_counters(snapshot: &Snapshot, format: CountersFormat) {
    let mut out = std::io::stdout().lock();
    let _ = match format {
        CountersFormat::Text => write!(out, "{}", snapshot.render()),
        CountersFormat::Json => writeln!(
            out,
            "{}",
            serde_json::to_string(snapshot).unwrap_or_default()
        ),
    };
    let _ = out.flush();
}

/// Reads and checks the `--config` file (shape and meaning; the host is checked later).
fn read_config(path: &Path) -> Result<ConfigFile, String> {
    let text = std::fs::read(path)
        .map_err(|e| format!("cannot read config file {}: {e}", path.display()))?;
    let doc = config::load_file(path).map_err(|e| format!("invalid configuration: {e}"))?;
    Ok(ConfigFile {
        path: path.to_owned(),
        text,
        doc,
    })
}

/// Reads the token of `--token-file`.
fn read_token_file(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--token-file {}: cannot read: {e}", path.display()))?;
    let token = text.trim().to_owned();
    if token.len() < MIN_TOKEN_LEN || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!(
            "--token-file {}: the token must be at least {MIN_TOKEN_LEN} characters without \
             spaces (e.g. `openssl rand -hex 32`)",
            path.display()
        ));
    }
    Ok(token)
}

/// Makes a panic on any thread end the whole process (after the usual message): a gateway
/// with a dead worker or control thread would keep answering its health checks while
/// forwarding nothing; ended, it is restarted by its supervisor (systemd's
/// `Restart=on-failure`) with its stored state.
fn abort_on_panic() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        report(info);
        eprintln!("tungate: a thread panicked; ending the process so that it is restarted");
        std::process::abort();
    }));
}

/// Runs the gateway; returns the process exit status.
pub fn run(options: RunOptions) -> i32 {
    abort_on_panic();
    // Block the signals before any thread exists, so every thread inherits the mask and
    // only `wait` below ever sees them.
    let mut signals = SigSet::empty();
    for s in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGUSR1,
        Signal::SIGHUP,
    ] {
        signals.add(s);
    }
    if let Err(e) = signals.thread_block() {
        eprintln!("tungate: cannot block signals: {e}");
        return 1;
    }
    let bad = |e: String| {
        eprintln!("tungate: {e}");
        EXIT_BAD_CONFIG
    };
    let config = match options.config.as_deref().map(read_config).transpose() {
        Ok(c) => c,
        Err(e) => return bad(e),
    };
    let explicit_token = match options
        .token_file
        .as_deref()
        .map(read_token_file)
        .transpose()
    {
        Ok(t) => t,
        Err(e) => return bad(e),
    };
    let state = match StateDir::open(&options.state_dir) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("tungate: {e}");
            return 1;
        }
    };
    let (token, token_hint) = match explicit_token {
        Some(t) => (t, options.token_file.clone().unwrap_or_default()),
        None => match state.admin_token() {
            Ok(t) => (t, state.admin_token_path()),
            Err(e) => {
                eprintln!("tungate: {e}");
                return 1;
            }
        },
    };
    let limits = Limits::default();
    let max_module_bytes = limits.max_module_bytes;
    let plane = match ControlPlane::start(Startup {
        state,
        config,
        plugin_files: options.plugins.clone(),
        limits,
    }) {
        Ok(p) => p,
        Err(StartupError::BadConfig(e)) => return bad(e),
        Err(StartupError::Failed(e)) => {
            eprintln!("tungate: {e}");
            return 1;
        }
    };
    let counters = plane.counters();
    let control = match Control::spawn(plane) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tungate: cannot start the control thread: {e}");
            return 1;
        }
    };
    let listener = match std::net::TcpListener::bind(options.admin_listen) {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "tungate: cannot listen on {} for the admin API: {e}; give another \
                 --admin-listen",
                options.admin_listen
            );
            let _ = control.stop();
            return 1;
        }
    };
    let loopback = options.admin_listen.ip().is_loopback();
    let state = AdminState(Arc::new(Shared {
        control: control.handle(),
        view: control.view(),
        counters: counters.clone(),
        token,
        token_hint: token_hint.display().to_string(),
        loopback,
        started: Instant::now(),
        max_module_bytes,
        network: control.network(),
    }));
    let admin = match AdminServer::start(listener, state) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("tungate: cannot start the admin server: {e}");
            let _ = control.stop();
            return 1;
        }
    };
    tracing::info!(
        "forwarding; admin API on http://{} (token {}); SIGUSR1 prints counters, SIGHUP \
         reloads the config file, SIGTERM stops",
        admin.address(),
        if loopback {
            "needed for writes"
        } else {
            "needed for every API request"
        }
    );
    let handle = control.handle();
    loop {
        match signals.wait() {
            Ok(Signal::SIGUSR1) => print_counters(&counters.snapshot(), options.counters_format),
            Ok(Signal::SIGHUP) => match handle.call_blocking(Action::Reseed) {
                Ok(Reply::Reseeded { replaced: true }) => {
                    tracing::info!("configuration reloaded from the file")
                }
                Ok(_) => tracing::info!(
                    "the configuration file is unchanged since it seeded the state: nothing \
                     to reload"
                ),
                Err(e) => eprintln!("tungate: reload refused, keeping the running one: {e}"),
            },
            Ok(_) => break,
            Err(e) => {
                eprintln!("tungate: waiting for signals failed: {e}");
                break;
            }
        }
    }
    admin.stop();
    drop(handle);
    let status = match control.stop() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tungate: unclean shutdown: {e}");
            1
        }
    };
    print_counters(&counters.snapshot(), options.counters_format);
    status
}
