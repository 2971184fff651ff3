//! `tungate run`: open the state directory, seed it, start the control plane (which starts
//! the tunnels, the data path and the filters) and the admin server, then serve signals
//! until told to stop.
//!
//! SIGUSR1 prints the counters, SIGHUP seeds again from the config file (an edited file
//! replaces the document; an unchanged one keeps the stored state with its API changes),
//! SIGINT and SIGTERM stop the admin server, drain the control plane and stop the data path
//! cleanly — no socket or thread left behind; the `userspace` decap mode's tunnel fence
//! stays on purpose, until `tungate net down` — and print the counters a last time. Exit status 2 for a bad configuration, flag or plugin file (the field or file
//! named), 1 for a failure of this host. This module only orchestrates.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use nix::sys::signal::{SigSet, Signal};

use tungate_admin::{AdminServer, AdminState, Shared};
use tungate_api::token::{TokenFileError, read_server_token_file};
use tungate_config::{self as config, ConfigError, EXIT_BAD_CONFIG};
use tungate_control::store::{StateDir, StoreError};
use tungate_control::{Action, ConfigFile, Control, ControlPlane, Reply, Startup};
use tungate_datapath::counters::Snapshot;
use tungate_plugin_host::Limits;

/// The default admin listener.
pub(crate) const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:9080";

/// Why `tungate run` could not start; [`StartupError::exit_status`] is its exit status.
#[derive(Debug, thiserror::Error)]
enum StartupError {
    /// The signals could not be blocked.
    #[error("cannot block signals: {0}")]
    Signals(nix::Error),
    /// The `--config` file cannot be read.
    #[error("cannot read config file {}: {source}", path.display())]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The `--config` file is not a valid document.
    #[error("invalid configuration: {0}")]
    Config(ConfigError),
    /// The `--token-file` is unusable.
    #[error("{0}")]
    TokenFile(TokenFileError),
    /// The state directory cannot be opened, or its token read.
    #[error("{0}")]
    State(StoreError),
    /// The control plane could not start.
    #[error("{0}")]
    Plane(tungate_control::StartupError),
    /// The control thread could not be started.
    #[error("cannot start the control thread: {0}")]
    ControlThread(std::io::Error),
    /// The admin listener could not be bound.
    #[error("cannot listen on {address} for the admin API: {source}; give another --admin-listen")]
    Listen {
        /// The address asked for.
        address: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The admin server could not start.
    #[error("cannot start the admin server: {0}")]
    AdminServer(std::io::Error),
    /// The admin listener's certificate or key cannot be used.
    #[error("{0}")]
    Tls(tungate_admin::tls::TlsError),
    /// Fleet mode: the health link cannot be made.
    #[error("{0}")]
    HealthLink(tungate_announce::LinkError),
    /// Fleet mode: the announcer thread could not be started.
    #[error("cannot start the announcer thread: {0}")]
    Announcer(std::io::Error),
    /// The fleet options are unusable.
    #[error("{0}")]
    Fleet(tungate_fleet::FleetError),
    /// The etcd password file cannot be read.
    #[error("cannot read --etcd-password-file {}: {source}", path.display())]
    EtcdPassword {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

impl StartupError {
    /// 2 for a bad configuration, flag or plugin file; 1 for a failure of this host.
    fn exit_status(&self) -> i32 {
        match self {
            StartupError::ReadConfig { .. }
            | StartupError::Config(_)
            | StartupError::TokenFile(_)
            | StartupError::Fleet(_)
            | StartupError::EtcdPassword { .. }
            | StartupError::Tls(_) => EXIT_BAD_CONFIG,
            StartupError::Plane(e) if e.is_bad_config() => EXIT_BAD_CONFIG,
            StartupError::Signals(_)
            | StartupError::State(_)
            | StartupError::Plane(_)
            | StartupError::ControlThread(_)
            | StartupError::Listen { .. }
            | StartupError::AdminServer(_)
            | StartupError::HealthLink(_)
            | StartupError::Announcer(_) => 1,
        }
    }
}

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
    /// The admin listener's TLS certificate chain and private key (PEM), if it serves HTTPS.
    pub admin_tls: Option<(PathBuf, PathBuf)>,
    /// Names a `Host` header may give for reads without the token on a loopback listener
    /// (besides `localhost` and loopback addresses).
    pub admin_hosts: Vec<String>,
    /// Plugin modules to store under their file stem before the document is built.
    pub plugins: Vec<PathBuf>,
    /// How counters are printed.
    pub counters_format: CountersFormat,
    /// `--fleet NAME`: a fleet member (GIP on `lo`, the health link, drain).
    pub fleet: Option<String>,
    /// `--prometheus URL` (with `--fleet`): where the fleet's totals are read.
    pub prometheus: Option<String>,
    /// Fleet mode with its configuration in etcd (`--fleet` with `--etcd`).
    pub etcd: Option<FleetArgs>,
}

/// `--fleet NAME --prometheus URL`: the source of the fleet's totals (the URL was checked
/// when the arguments were read).
fn fleet_prometheus(options: &RunOptions) -> Option<tungate_admin::FleetPrometheus> {
    let fleet = options.fleet.clone()?;
    let url = options.prometheus.as_deref()?;
    match tungate_api::client::ApiClient::new(url, None) {
        Ok(client) => Some(tungate_admin::FleetPrometheus { fleet, client }),
        Err(e) => {
            tracing::error!("--prometheus {url}: {e}; the fleet totals are not available");
            None
        }
    }
}

/// The fleet flags of `tungate run`.
#[derive(Debug, Clone)]
pub struct FleetArgs {
    /// `--fleet`.
    pub name: String,
    /// `--fleet-member` (default: the host name).
    pub member: Option<String>,
    /// `--etcd`.
    pub endpoints: Vec<String>,
    /// `--etcd-ca`.
    pub ca: Option<PathBuf>,
    /// `--etcd-cert` and `--etcd-key`.
    pub identity: Option<(PathBuf, PathBuf)>,
    /// `--etcd-user` and `--etcd-password-file`.
    pub user: Option<(String, PathBuf)>,
}

/// Sets up the fleet store from the flags (etcd is not contacted yet).
fn open_fleet(args: &FleetArgs) -> Result<tungate_fleet::Fleet, StartupError> {
    let member = args.member.clone().unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default()
    });
    let user = args
        .user
        .as_ref()
        .map(|(user, path)| {
            std::fs::read_to_string(path)
                .map(|p| (user.clone(), p.lines().next().unwrap_or("").to_owned()))
                .map_err(|source| StartupError::EtcdPassword {
                    path: path.clone(),
                    source,
                })
        })
        .transpose()?;
    tungate_fleet::Fleet::open(tungate_fleet::FleetOptions {
        name: args.name.clone(),
        member,
        endpoints: args.endpoints.clone(),
        ca: args.ca.clone(),
        identity: args.identity.clone(),
        user,
    })
    .map_err(StartupError::Fleet)
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
fn read_config(path: &Path) -> Result<ConfigFile, StartupError> {
    let text = std::fs::read(path).map_err(|source| StartupError::ReadConfig {
        path: path.to_owned(),
        source,
    })?;
    let doc = config::load_file(path).map_err(StartupError::Config)?;
    Ok(ConfigFile {
        path: path.to_owned(),
        text,
        doc,
    })
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

/// Fleet mode: creates the health link and starts the announcer, which keeps it up while
/// the control plane's view says ready (woken by every readiness change); a finished drain stops this process (SIGTERM to
/// itself, served by the signal loop like any other).
fn announce(
    fleet: &str,
    control: &Control,
    counters: &Arc<tungate_datapath::counters::Counters>,
) -> Result<tungate_announce::Announcer, StartupError> {
    let link = tungate_announce::HealthLink::create(tungate_announce::HEALTH_DEVICE)
        .map_err(StartupError::HealthLink)?;
    let view = control.view();
    let counters = counters.clone();
    tracing::info!(
        "fleet {fleet:?}: GIP is announced while the health link {} is up (while ready)",
        link.name()
    );
    let announcer = tungate_announce::Announcer::start(
        link,
        move || view.load().ready,
        move || counters.snapshot().rx_packets,
        || {
            let _ =
                nix::sys::signal::kill(nix::unistd::getpid(), nix::sys::signal::Signal::SIGTERM);
        },
    )
    .map_err(StartupError::Announcer)?;
    // Every readiness change wakes the announcer at once; the wake after registering
    // covers a change between its first look and the registration.
    let handle = announcer.handle();
    control.on_readiness_change(move || handle.wake());
    announcer.handle().wake();
    Ok(announcer)
}

/// Runs the gateway; returns the process exit status.
pub(crate) fn run(options: RunOptions) -> i32 {
    abort_on_panic();
    match serve(options) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("tungate: {e}");
            e.exit_status()
        }
    }
}

/// Starts everything, serves signals until told to stop, and stops; returns the exit
/// status of a gateway that started.
fn serve(options: RunOptions) -> Result<i32, StartupError> {
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
    signals.thread_block().map_err(StartupError::Signals)?;
    let config = options.config.as_deref().map(read_config).transpose()?;
    let explicit_token = options
        .token_file
        .as_deref()
        .map(read_server_token_file)
        .transpose()
        .map_err(StartupError::TokenFile)?;
    let tls = options
        .admin_tls
        .as_ref()
        .map(|(cert, key)| tungate_admin::tls::server_config(cert, key))
        .transpose()
        .map_err(StartupError::Tls)?;
    let state = StateDir::open(&options.state_dir).map_err(StartupError::State)?;
    let (token, token_path) = match explicit_token {
        Some(t) => (t, options.token_file.clone().unwrap_or_default()),
        None => (
            state.admin_token().map_err(StartupError::State)?,
            state.admin_token_path(),
        ),
    };
    let limits = Limits::default();
    let max_module_bytes = limits.max_module_bytes;
    let fleet = options.etcd.as_ref().map(open_fleet).transpose()?;
    let plane = ControlPlane::start(Startup {
        state,
        config,
        plugin_files: options.plugins.clone(),
        limits,
        fleet_name: options.fleet.clone(),
        fleet: fleet.as_ref().map(tungate_fleet::Fleet::start),
    })
    .map_err(StartupError::Plane)?;
    let counters = plane.counters();
    let control = Control::spawn(plane).map_err(StartupError::ControlThread)?;
    let announcer = match options
        .fleet
        .as_deref()
        .map(|name| announce(name, &control, &counters))
    {
        Some(Err(e)) => {
            let _ = control.stop();
            return Err(e);
        }
        Some(Ok(a)) => Some(a),
        None => None,
    };
    let listener = match std::net::TcpListener::bind(options.admin_listen) {
        Ok(l) => l,
        Err(source) => {
            if let Some(a) = announcer {
                a.stop();
            }
            let _ = control.stop();
            return Err(StartupError::Listen {
                address: options.admin_listen,
                source,
            });
        }
    };
    let loopback = options.admin_listen.ip().is_loopback();
    let address = listener.local_addr().unwrap_or(options.admin_listen);
    let fleet_report = fleet.as_ref().map(|f| {
        let handle = announcer.as_ref().map(tungate_announce::Announcer::handle);
        let announcement: tungate_fleet::AnnouncementSource =
            Arc::new(move || handle.as_ref().map(|h| h.announcement().as_str()));
        f.follow(
            control.handle(),
            control.view(),
            address.to_string(),
            announcement,
        )
    });
    let state = AdminState(Arc::new(Shared {
        control: control.handle(),
        view: control.view(),
        counters: counters.clone(),
        token,
        address,
        tls: tls.is_some(),
        admin_hosts: options.admin_hosts.clone(),
        started: Instant::now(),
        max_module_bytes,
        network: control.network(),
        fleet_name: options.fleet.clone(),
        announce: announcer.as_ref().map(tungate_announce::Announcer::handle),
        fleet: fleet_report,
        prometheus: fleet_prometheus(&options),
    }));
    let scheme = if tls.is_some() { "https" } else { "http" };
    let encrypted = tls.is_some();
    let admin = match AdminServer::start(listener, state, tls) {
        Ok(a) => a,
        Err(e) => {
            if let Some(a) = announcer {
                a.stop();
            }
            if let Some(fleet) = fleet {
                fleet.stop();
            }
            let _ = control.stop();
            return Err(StartupError::AdminServer(e));
        }
    };
    tracing::info!(
        "forwarding; admin API on {scheme}://{} (token in {}, {}); SIGUSR1 prints counters, \
         SIGHUP reloads the config file, SIGTERM stops",
        admin.address(),
        token_path.display(),
        if loopback {
            "needed for writes"
        } else {
            "needed for every API request"
        }
    );
    if let Some(warning) =
        tungate_api::wire::AdminListener::warning(&tungate_api::wire::AdminListener {
            address: address.to_string(),
            tls: encrypted,
            loopback,
        })
    {
        tracing::warn!("WARNING: {warning}");
    }
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
    // Withdraw first, so the router moves the traffic while the data path still runs.
    if let Some(a) = announcer {
        a.stop();
    }
    admin.stop();
    if let Some(fleet) = fleet {
        fleet.stop();
    }
    drop(handle);
    let status = match control.stop() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tungate: unclean shutdown: {e}");
            1
        }
    };
    print_counters(&counters.snapshot(), options.counters_format);
    Ok(status)
}
