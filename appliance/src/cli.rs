//! The command line: argument definitions and dispatch, nothing else.
//!
//! Each subcommand's work lives in the module that owns it; this module only parses, sets up
//! logging and maps results to exit statuses (0 success, 1 failure, 2 bad configuration or
//! usage, 3 `plan` found changes).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use tungate_config as config;
use tungate_config::EXIT_BAD_CONFIG;
use tungate_netcfg::{Action, DnatEntry, RsSettings, RunOptions};

/// tungate — the reply gateway of an LVS tunnelling (LVS-TUN) cluster.
///
/// Real servers send their replies through IPIP tunnels to this gateway; tungate checks and
/// decapsulates them, runs each VIP's Wasm plugins and forwards the accepted replies to the
/// clients.
#[derive(Debug, Parser)]
#[command(
    name = "tungate",
    version,
    about,
    long_about,
    after_long_help = "\
Examples:
  sudo tungate demo                      # the whole reply path in namespaces, web UI on :9180
  tungate config check tungate.toml      # validate a configuration offline
  sudo tungate run --config /etc/tungate/tungate.toml
  tungate status --token-file /var/lib/tungate/admin-token
  tungate capture --token-file /var/lib/tungate/admin-token --reason unknown_peer -w drops.pcapng
  tungate plugin check my_plugin.wasm    # validate a plugin exactly as an upload would

Each subcommand has its own --help. Guides: README.md, deploy/INSTALL.md, plugin-sdk/GUIDE.md."
)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Try tungate on this host: a client, a real server and a gateway in network
    /// namespaces, with real traffic (root).
    ///
    /// Builds three network namespaces joined by veth links, runs an HTTP and a UDP echo
    /// server on a VIP in the real server, sends their replies through an IPIP tunnel (a
    /// userspace encapsulator, so no `ipip` module is needed) to `tungate run` in the
    /// gateway's namespace, uploads the four example plugins and binds `accounting`, and
    /// sends a steady mix of client requests from two prefixes. It prints the web UI's URL
    /// and the admin token, and progress every 5 s, until Ctrl-C or SIGTERM; then it removes
    /// every namespace, link and file it made. The host's own network is never changed.
    ///
    /// With --gateways N (2 to 8) it runs a fleet instead: a router namespace running BIRD
    /// with ECMP, N gateway namespaces each running `tungate run --fleet demo` and BIRD
    /// (the files of deploy/fleet/), replies of many flows spread over all of them, and a
    /// line per gateway every 5 s. Needs BIRD 2 (apt-get install bird2). With etcd
    /// installed (etcd-server) the gateways follow one etcd member (--etcd).
    #[command(after_help = "\
Examples:
  sudo tungate demo
  sudo tungate demo --listen 127.0.0.1:8080 --rate 100
  sudo tungate demo --duration 60 --plugin-dir /usr/share/tungate/plugins
  sudo tungate demo --gateways 3    # a fleet: BIRD router with ECMP, 3 gateways")]
    Demo(DemoArgs),
    /// Summarise a running appliance through its admin API.
    ///
    /// Shows version, uptime, decap mode, workers, readiness, per-VIP forwarded and dropped
    /// packets, and every plugin binding with its verdicts, errors and quarantine flag.
    /// Exits 0 when ready, 3 when it answers but is not ready, 1 when it cannot be reached or
    /// refuses the request (a non-loopback listener needs the token for every request).
    #[command(after_help = "\
Examples:
  tungate status
  tungate status --url http://10.0.0.1:9080 --token-file /var/lib/tungate/admin-token")]
    Status(StatusArgs),
    /// Capture dropped packets of a running appliance into a pcapng file (Wireshark,
    /// tshark, tcpdump read it).
    ///
    /// Asks the admin API (`GET /api/v1/capture`, always with the token) for the packets
    /// the data path drops — optionally only one VIP's, one reason's or one plugin's, and
    /// with --passed also the forwarded ones — until --count packets or --seconds have
    /// passed, and writes them as they arrive. Each packet's comment says why it was dropped
    /// (drop_reason, vip, plugin, binding). In userspace decap the frames are as received
    /// (Ethernet, outer and inner headers); in kernel decap the inner packet only. Drops
    /// before tungate reads a packet (rx_overflow, inside an XDP program) are counted, not
    /// captured. At most 4 captures run at once. Exits 0 when the capture ended, 1 when it
    /// was refused or failed, 2 for a bad URL or token file.
    #[command(after_help = "\
Examples:
  tungate capture --token-file /var/lib/tungate/admin-token -w drops.pcapng
  tungate capture --reason unknown_peer --count 20 -w unknown.pcapng --token-file T
  tungate capture --vip 192.0.2.10 --plugin cidr-filter --seconds 60 -w - --token-file T | tshark -r -")]
    Capture(CaptureArgs),
    /// Drain a fleet gateway: withdraw its route, wait until the router moved the traffic,
    /// stop it.
    ///
    /// Asks the admin API (`POST /api/v1/drain`, with the token) of a gateway started with
    /// `tungate run --fleet NAME`: it sets its health link `tg-health` down (the host's
    /// routing daemon withdraws GIP from the router), keeps forwarding until no packet has
    /// arrived for 1 s (at most 30 s), answers, and exits 0. Prints when the route was
    /// withdrawn and how many packets still came. Exits 0 when drained, 1 when refused (not
    /// in fleet mode, draining already) or unreachable, 2 for a bad URL or token file.
    #[command(after_help = "\
Examples:
  tungate drain --token-file /var/lib/tungate/admin-token
  tungate drain --url http://10.0.0.1:9080 --token-file T")]
    Drain(DrainArgs),
    /// Work with configuration documents without running anything.
    ///
    /// `check` validates a TOML file exactly as `run` and the API would (and, with --host,
    /// that its addresses and interfaces exist here).
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Run the gateway: receive, check, decapsulate, filter and forward the replies.
    ///
    /// Opens (and locks) the state directory, seeds it from --config, starts the data path
    /// and the plugins, then the admin API and web UI on --admin-listen. SIGUSR1 prints the
    /// counters, SIGHUP reloads the file, SIGINT/SIGTERM stop cleanly. Needs CAP_NET_ADMIN
    /// and CAP_NET_RAW (root, or the systemd unit in deploy/systemd). Exits 2 for a bad
    /// configuration, flag or plugin file, 1 for a failure of the host.
    #[command(after_help = "\
Examples:
  sudo tungate run --config /etc/tungate/tungate.toml
  sudo tungate run --config gw.toml --state-dir /tmp/tg --admin-listen 10.0.0.1:9080 \\
      --token-file /etc/tungate/admin-token --plugin cidr-filter.wasm")]
    Run(RunArgs),
    /// Plan, apply or remove the gateway's kernel networking (kernel-decap tunnels and their
    /// sysctls).
    ///
    /// Desired state from the configuration file, compared with the kernel over netlink:
    /// `plan` prints the changes (exit 3 when some are pending), `apply` makes them (and
    /// with --watch keeps them), `down` removes what tungate made (also the userspace
    /// decap mode's tunnel fence, which a stopped `run` leaves in place) and restores the
    /// settings it changed. `run` does the same itself; this is for checking and for hosts where the
    /// tunnels should exist before the daemon starts.
    #[command(subcommand)]
    Net(NetCommand),
    /// Plan, apply or remove a real server's networking (reply tunnel, table, rules, VIPs,
    /// ARP sysctls, optional DNAT).
    ///
    /// Run on each real server: it builds the reply tunnel to the gateway, the routing
    /// table and rules that send the VIPs' replies into it, the VIPs on tunl0 and the ARP
    /// settings LVS-TUN needs. `plan` exits 3 when changes are pending.
    #[command(
        subcommand,
        after_help = "\
Examples:
  sudo tungate rs plan  --gateway 10.0.0.1 --address 10.0.0.21 --vip 192.0.2.10
  sudo tungate rs apply --gateway 10.0.0.1 --address 10.0.0.21 --vip 192.0.2.10 --watch
  sudo tungate rs down"
    )]
    Rs(RsCommand),
    /// Work with Wasm plugin modules without running anything.
    ///
    /// `check` validates a module offline exactly as an upload would (ABI version, imports,
    /// exports, limits) and prints its name, sha256 and ABI.
    #[command(subcommand)]
    Plugin(PluginCommand),
}

/// Arguments of `tungate demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Where the web UI and admin API are reachable from this host (a relay into the
    /// gateway's namespace). A non-loopback address makes every API request need the token.
    #[arg(long, default_value = tungate_demo::DEFAULT_LISTEN)]
    pub listen: std::net::SocketAddr,
    /// Client requests per second, over all client addresses (HTTP and UDP in turn).
    #[arg(long, default_value_t = tungate_demo::DEFAULT_RATE)]
    pub rate: f64,
    /// Stop after this many seconds [default: run until Ctrl-C or SIGTERM].
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Where the example plugins' .wasm files are [default: /usr/share/tungate/plugins,
    /// then target/wasm-plugins/wasm32-unknown-unknown/plugin].
    #[arg(long, value_name = "DIR")]
    pub plugin_dir: Option<PathBuf>,
    /// The real server's reply tunnel: ipip, or gue (UDP to port 6080, a source port per
    /// flow, as `encap-sport auto` sends it).
    #[arg(long, value_enum, default_value_t = DemoTunnelArg::Ipip)]
    pub tunnel: DemoTunnelArg,
    /// How many gateways. 1 is the single gateway above; 2 to 8 make a fleet (issue 15): a
    /// router namespace running BIRD with ECMP, each gateway running `tungate run --fleet
    /// demo` and its own BIRD announcing GIP, replies of many flows spread over all of them;
    /// gateway 1's web UI on --listen, gateway N's on the next ports; a line per gateway
    /// every 5 s. Needs BIRD 2 (apt-get install bird2) and --tunnel ipip.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=8))]
    pub gateways: u8,
}

/// The reply tunnels `tungate demo --tunnel` can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DemoTunnelArg {
    /// IPv4 in IPv4.
    Ipip,
    /// Generic UDP Encapsulation.
    Gue,
}

/// Arguments of `tungate status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The admin API's URL (the `--admin-listen` of `tungate run`).
    #[arg(long, default_value = tungate_api::status::DEFAULT_URL, env = "TUNGATE_URL")]
    pub url: String,
    /// A file holding the admin token (needed on a non-loopback listener). When given it
    /// is checked: a token the appliance refuses fails the command.
    #[arg(long, env = "TUNGATE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// For an https:// URL: the certificate(s) to trust (PEM; the listener's self-signed
    /// certificate or its CA) [default: the system's bundle,
    /// /etc/ssl/certs/ca-certificates.crt].
    #[arg(long, value_name = "PATH", env = "TUNGATE_ADMIN_CA")]
    pub admin_ca: Option<PathBuf>,
}

/// Arguments of `tungate drain`.
#[derive(Debug, Args)]
pub struct DrainArgs {
    /// The admin API's URL (the `--admin-listen` of `tungate run`).
    #[arg(long, default_value = tungate_api::status::DEFAULT_URL, env = "TUNGATE_URL")]
    pub url: String,
    /// A file holding the admin token (a drain is a write: always needed).
    #[arg(long, env = "TUNGATE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// For an https:// URL: the certificate(s) to trust (PEM) [default: the system's
    /// bundle].
    #[arg(long, value_name = "PATH", env = "TUNGATE_ADMIN_CA")]
    pub admin_ca: Option<PathBuf>,
}

/// Arguments of `tungate capture`.
#[derive(Debug, Args)]
pub struct CaptureArgs {
    /// The admin API's URL (the `--admin-listen` of `tungate run`).
    #[arg(long, default_value = tungate_api::status::DEFAULT_URL, env = "TUNGATE_URL")]
    pub url: String,
    /// A file holding the admin token (a capture always needs it).
    #[arg(long, env = "TUNGATE_TOKEN_FILE")]
    pub token_file: Option<PathBuf>,
    /// Only packets attributed to this VIP.
    #[arg(long)]
    pub vip: Option<std::net::Ipv4Addr>,
    /// Only drops for this reason (a drop counter's name, e.g. unknown_peer).
    #[arg(long, conflicts_with = "plugin")]
    pub reason: Option<String>,
    /// Only drops decided by this plugin (plugin and plugin_error).
    #[arg(long)]
    pub plugin: Option<String>,
    /// Packets to capture, 1 to 100000 [default: 100].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub count: Option<u32>,
    /// Longest run in seconds, 1 to 300 [default: 10].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=300))]
    pub seconds: Option<u32>,
    /// Also capture forwarded packets (off by default).
    #[arg(long)]
    pub passed: bool,
    /// Where to write the pcapng file (`-`: standard output).
    #[arg(short = 'w', long = "write", value_name = "FILE.pcapng")]
    pub write: PathBuf,
}

/// Arguments of `tungate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The configuration file (TOML). It seeds the state directory: an edited file replaces
    /// the stored configuration, the same file again keeps it (with its API changes).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The state directory (stored configuration, plugins, admin token).
    #[arg(long, default_value = tungate_control::store::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Address of the admin API and web UI. On a non-loopback address every API request
    /// needs the token.
    #[arg(long, default_value = crate::daemon::DEFAULT_ADMIN_LISTEN)]
    pub admin_listen: std::net::SocketAddr,
    /// A file holding the admin bearer token [default: generated into the state directory].
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// A name (besides localhost and loopback addresses) by which clients on this host
    /// reach a loopback admin listener without the token, e.g. through an SSH tunnel or a
    /// local proxy (repeat for several). Any other `Host` needs the token even for reads,
    /// so a DNS-rebinding web page cannot read the API.
    #[arg(long = "admin-host", value_name = "NAME")]
    pub admin_hosts: Vec<String>,
    /// Serve the admin API and web UI over HTTPS with this certificate chain (PEM, leaf
    /// first; needs --admin-tls-key). Without it a non-loopback listener sends the token in
    /// clear: tungate warns in its log and in `tungate status`.
    #[arg(long, value_name = "PATH", requires = "admin_tls_key")]
    pub admin_tls_cert: Option<PathBuf>,
    /// The private key of --admin-tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "PATH", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
    /// A plugin module to store under its file stem before the configuration is applied
    /// (repeat for several), so the configuration file may bind it on first start.
    #[arg(long = "plugin", value_name = "PATH.wasm")]
    pub plugins: Vec<PathBuf>,
    /// How the counters are printed (on SIGUSR1 and on exit).
    #[arg(long, value_enum, default_value_t)]
    pub counters_format: crate::daemon::CountersFormat,
    /// Run as a member of the fleet NAME: hold GIP on `lo` (no ARP for it), and keep the
    /// health link `tg-health` up while ready and not draining — the host's routing daemon
    /// announces GIP/32 only while it is up (deploy/fleet/). The link vanishes with the
    /// process, kill -9 included. `gateway.ingress_interface` must be set. With --etcd, the
    /// fleet-wide configuration (gateway address, decap mode, peers, VIPs, chains) and the
    /// plugins come from etcd; interfaces, workers, io and the admin listener stay per host
    /// (--config). Without --etcd each gateway keeps its own --config.
    #[arg(long, value_name = "NAME", value_parser = fleet_name)]
    pub fleet: Option<String>,
    /// The fleet's Prometheus (`http://HOST:PORT` or `https://HOST:PORT`), which scrapes
    /// every gateway and runs deploy/fleet/tungate-fleet.rules.yml: the dashboard's fleet
    /// totals per VIP (`GET /api/v1/fleet/totals`) are read from it. Needs --fleet.
    #[arg(long, value_name = "URL", requires = "fleet", value_parser = prometheus_url)]
    pub prometheus: Option<String>,
    /// The fleet's etcd endpoints, comma-separated (e.g. http://10.0.0.5:2379).
    #[arg(
        long,
        value_name = "URL[,URL...]",
        value_delimiter = ',',
        requires = "fleet"
    )]
    pub etcd: Vec<String>,
    /// This gateway's name in the fleet [default: the host name].
    #[arg(long, value_name = "NAME", requires = "fleet")]
    pub fleet_member: Option<String>,
    /// A CA certificate (PEM) to verify etcd's TLS certificate (https:// endpoints).
    #[arg(long, value_name = "PATH", requires = "fleet")]
    pub etcd_ca: Option<PathBuf>,
    /// A client certificate (PEM) for etcd's mutual TLS (needs --etcd-key).
    #[arg(long, value_name = "PATH", requires = "etcd_key")]
    pub etcd_cert: Option<PathBuf>,
    /// The private key (PEM) of --etcd-cert.
    #[arg(long, value_name = "PATH", requires = "etcd_cert")]
    pub etcd_key: Option<PathBuf>,
    /// An etcd user name (needs --etcd-password-file).
    #[arg(long, value_name = "NAME", requires = "etcd_password_file")]
    pub etcd_user: Option<String>,
    /// A file holding the password of --etcd-user (its first line).
    #[arg(long, value_name = "PATH", requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
}

/// A Prometheus URL: one the API client can ask (scheme, host, port, no path).
fn prometheus_url(text: &str) -> Result<String, String> {
    tungate_api::client::ApiClient::new(text, None)
        .map(|_| text.to_owned())
        .map_err(|e| e.to_string())
}

/// A fleet name: 1 to 63 of `a-z 0-9 -` (it names keys and logs, never a device).
fn fleet_name(text: &str) -> Result<String, String> {
    let ok = !text.is_empty()
        && text.len() <= 63
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(text.to_owned())
    } else {
        Err(format!(
            "{text:?} is not a fleet name: 1 to 63 of a-z, 0-9 and '-'"
        ))
    }
}

/// `tungate net ...`
#[derive(Debug, Subcommand)]
pub enum NetCommand {
    /// Print the changes `apply` would make (exit 0: none, 3: some).
    Plan(NetArgs),
    /// Make the changes.
    Apply {
        /// What to apply.
        #[command(flatten)]
        args: NetArgs,
        /// Whether to keep reconciling.
        #[command(flatten)]
        watch: WatchArgs,
    },
    /// Remove what tungate created (tunnels, the userspace tunnel fence) and restore the
    /// settings it changed.
    Down(NetArgs),
}

/// Arguments of `tungate net`.
#[derive(Debug, Args)]
pub struct NetArgs {
    /// The configuration file (not needed for `down`).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Where original values of changed settings are kept
    /// [default: /var/lib/tungate/netcfg-gateway.json].
    #[arg(long)]
    pub state_file: Option<PathBuf>,
    /// As a member of the fleet NAME (`tungate run --fleet NAME`): also GIP/32 on `lo`
    /// and `arp_ignore=1`, `arp_announce=2` on `all`.
    #[arg(long, value_name = "NAME", value_parser = fleet_name)]
    pub fleet: Option<String>,
}

/// Keep reconciling after `apply`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// After applying, keep the state reconciled (periodically and on netlink events) until
    /// SIGINT or SIGTERM.
    #[arg(long)]
    pub watch: bool,
    /// Seconds between two reconciling passes in --watch mode.
    #[arg(long, default_value_t = 5)]
    pub interval: u64,
}

/// `tungate rs ...`
#[derive(Debug, Subcommand)]
pub enum RsCommand {
    /// Print the changes `apply` would make (exit 0: none, 3: some).
    Plan(RsArgs),
    /// Make the changes.
    Apply {
        /// What to apply.
        #[command(flatten)]
        args: RsArgs,
        /// Whether to keep reconciling.
        #[command(flatten)]
        watch: WatchArgs,
    },
    /// Remove what tungate created and restore the settings it changed.
    Down(RsArgs),
}

/// Arguments of `tungate rs` (each flag overrides the same key of --config).
#[derive(Debug, Args)]
pub struct RsArgs {
    /// A TOML file with the same keys as the flags (gateway, address, vips, table, ...).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The gateway's address (GIP, or its IPv6 address: then the reply tunnel is ip6tnl),
    /// the reply tunnel's remote end.
    #[arg(long)]
    pub gateway: Option<std::net::IpAddr>,
    /// This real server's address (RIP), of the gateway's family: the reply tunnel's local
    /// end.
    #[arg(long)]
    pub address: Option<std::net::IpAddr>,
    /// A VIP this server answers for, IPv4 or IPv6 (repeat for several; IPv6 VIPs go on lo).
    #[arg(long = "vip")]
    pub vips: Vec<std::net::IpAddr>,
    /// Routing table of the replies [default: 1].
    #[arg(long)]
    pub table: Option<u32>,
    /// Priority of the rules [default: 1000].
    #[arg(long)]
    pub rule_priority: Option<u32>,
    /// Device the VIPs go on [default: tunl0; lo also works].
    #[arg(long)]
    pub vip_device: Option<String>,
    /// Device the tunnelled requests arrive on [default: tunl0].
    #[arg(long)]
    pub ingress_device: Option<String>,
    /// Name of the reply tunnel [default: tunl1].
    #[arg(long)]
    pub reply_tunnel: Option<String>,
    /// The reply device exists already (not created or deleted by tungate).
    #[arg(long)]
    pub existing_reply_device: bool,
    /// Firewall mark of DNAT'd replies, decimal or 0x-hex [default: 0x7467].
    #[arg(long, value_parser = parse_mark)]
    pub reply_mark: Option<u32>,
    /// DNAT `VIP:PORT=ADDRESS[:PORT][/tcp|/udp]` (repeat for several).
    #[arg(long = "dnat")]
    pub dnat: Vec<DnatEntry>,
    /// The reply tunnel's type, as the gateway's `peers[].tunnel` for this server:
    /// ipip, gue or fou (UDP, `encap-sport auto`), gre [default: ipip].
    #[arg(long, value_parser = parse_tunnel_kind)]
    pub tunnel: Option<tungate_config::TunnelKind>,
    /// The gateway's UDP port of a gue (default 6080) or fou (required) reply tunnel.
    #[arg(long)]
    pub port: Option<u16>,
    /// The GRE key of a gre reply tunnel.
    #[arg(long)]
    pub key: Option<u32>,
    /// A director (LD-IN, IPv4 or IPv6) whose tunnel packets are accepted (repeat for
    /// several); with it, IPIP (and GRE for a gre reply tunnel) from anyone else is dropped
    /// silently, and with an IPv6 underlay or director also ip6ip6 and 4in6 (and GRE).
    #[arg(long = "director")]
    pub directors: Vec<std::net::IpAddr>,
    /// Where original values of changed settings are kept
    /// [default: /var/lib/tungate/netcfg-rs.json].
    #[arg(long)]
    pub state_file: Option<PathBuf>,
}

impl RsArgs {
    fn settings(&self) -> RsSettings {
        RsSettings {
            gateway: self.gateway,
            address: self.address,
            vips: (!self.vips.is_empty()).then(|| self.vips.clone()),
            table: self.table,
            rule_priority: self.rule_priority,
            vip_device: self.vip_device.clone(),
            ingress_device: self.ingress_device.clone(),
            reply_tunnel: self.reply_tunnel.clone(),
            create_reply_tunnel: self.existing_reply_device.then_some(false),
            reply_mark: self.reply_mark,
            dnat: (!self.dnat.is_empty()).then(|| self.dnat.clone()),
            tunnel: self.tunnel,
            port: self.port,
            key: self.key,
            directors: (!self.directors.is_empty()).then(|| self.directors.clone()),
        }
    }
}

/// Reads `--tunnel` (the names of the configuration's `peers[].tunnel`).
fn parse_tunnel_kind(text: &str) -> Result<tungate_config::TunnelKind, String> {
    use tungate_config::TunnelKind;
    [
        TunnelKind::Ipip,
        TunnelKind::Gue,
        TunnelKind::Fou,
        TunnelKind::Gre,
    ]
    .into_iter()
    .find(|k| k.as_str() == text)
    .ok_or_else(|| format!("{text:?} is not a tunnel type: give ipip, gue, fou or gre"))
}

/// A `--reply-mark` that is not a 32-bit number.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a mark: {source}")]
struct BadMark {
    text: String,
    source: std::num::ParseIntError,
}

fn parse_mark(text: &str) -> Result<u32, BadMark> {
    match text.strip_prefix("0x") {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse(),
    }
    .map_err(|source| BadMark {
        text: text.to_owned(),
        source,
    })
}

fn run_options(state_file: &Option<PathBuf>, watch: Option<&WatchArgs>) -> RunOptions {
    RunOptions {
        state_file: state_file.clone(),
        watch: watch.is_some_and(|w| w.watch),
        interval: std::time::Duration::from_secs(watch.map_or(5, |w| w.interval.max(1))),
        fleet: false,
    }
}

/// `tungate plugin ...`
#[derive(Debug, Subcommand)]
pub enum PluginCommand {
    /// Check a module exactly as an upload is checked; exit 0 if accepted, 1 if refused.
    Check {
        /// The `.wasm` file.
        file: PathBuf,
    },
}

/// `tungate config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a TOML configuration file (add --host to also check it against this host).
    Check {
        /// The configuration file.
        file: PathBuf,
        /// Also check that the gateway address and interfaces exist on this host.
        #[arg(long)]
        host: bool,
    },
}

/// Sets up logging on standard error; `RUST_LOG` overrides the default `info` level.
/// Colour only on a terminal and without `NO_COLOR`: journald and log files would keep
/// the escape codes as text.
pub fn init_logging() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let colour = use_colour(
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(colour)
        .try_init();
}

/// Whether the log may use ANSI colours: on a terminal, unless `NO_COLOR` is set to
/// anything non-empty (<https://no-color.org>).
fn use_colour(stderr_is_terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
    stderr_is_terminal && no_color.is_none_or(|v| v.is_empty())
}

impl Command {
    /// Commands that only read and print, and end: a closed output may end them at once.
    /// The others change state (`run`, `demo`, `net`/`rs` `apply` and `down`) and must
    /// finish or clean up whatever happens to their output.
    fn only_prints(&self) -> bool {
        matches!(
            self,
            Command::Status(_)
                | Command::Config(_)
                | Command::Plugin(_)
                | Command::Net(NetCommand::Plan(_))
                | Command::Rs(RsCommand::Plan(_))
        )
    }
}

/// Gives SIGPIPE back its default action, as every Unix filter has it: writing to a pipe
/// whose reader is gone (`tungate plugin check X | head -1`) ends the process quietly,
/// with the shell's status 141, instead of Rust's "failed printing to stdout" panic.
fn default_sigpipe() {
    use nix::sys::signal::{SigHandler, Signal, signal};
    // SAFETY: SIG_DFL installs no handler code; this runs at start-up, before any thread
    // of ours exists, and only for commands that hold no state a sudden end could lose.
    let _ = unsafe { signal(Signal::SIGPIPE, SigHandler::SigDfl) };
}

/// Parses the command line, runs the command, and returns the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if cli.command.only_prints() {
        default_sigpipe();
    }
    init_logging();
    match cli.command {
        Command::Demo(args) => tungate_demo::run(tungate_demo::DemoOptions {
            listen: args.listen,
            rate: args.rate,
            duration: args.duration.map(std::time::Duration::from_secs),
            plugin_dir: args.plugin_dir,
            tunnel: match args.tunnel {
                DemoTunnelArg::Ipip => tungate_demo::DemoTunnel::Ipip,
                DemoTunnelArg::Gue => tungate_demo::DemoTunnel::Gue,
            },
            gateways: usize::from(args.gateways),
        }),
        Command::Drain(args) => {
            tungate_api::drain::run(&args.url, args.token_file.as_ref(), args.admin_ca.as_ref())
        }
        Command::Status(args) => {
            tungate_api::status::run(&args.url, args.token_file.as_ref(), args.admin_ca.as_ref())
        }
        Command::Capture(args) => tungate_api::capture::run(
            &args.url,
            args.token_file.as_ref(),
            &tungate_api::capture::CaptureRequest {
                vip: args.vip.map(|v| v.to_string()),
                reason: args.reason,
                plugin: args.plugin,
                count: args.count,
                seconds: args.seconds,
                passed: args.passed,
            },
            &args.write,
        ),
        Command::Config(ConfigCommand::Check { file, host }) => config_check(&file, host),
        Command::Run(args) => crate::daemon::run(crate::daemon::RunOptions {
            config: args.config,
            state_dir: args.state_dir,
            admin_listen: args.admin_listen,
            token_file: args.token_file,
            admin_hosts: args.admin_hosts,
            admin_tls: args.admin_tls_cert.zip(args.admin_tls_key),
            plugins: args.plugins,
            counters_format: args.counters_format,
            fleet: args.fleet.clone(),
            etcd: (!args.etcd.is_empty())
                .then(|| args.fleet.clone())
                .flatten()
                .map(|name| crate::daemon::FleetArgs {
                    name,
                    member: args.fleet_member,
                    endpoints: args.etcd,
                    ca: args.etcd_ca,
                    identity: args.etcd_cert.zip(args.etcd_key),
                    user: args.etcd_user.zip(args.etcd_password_file),
                }),
            prometheus: args.prometheus,
        }),
        Command::Net(cmd) => {
            let (action, args, watch) = match &cmd {
                NetCommand::Plan(a) => (Action::Plan, a, None),
                NetCommand::Apply { args, watch } => (Action::Apply, args, Some(watch)),
                NetCommand::Down(a) => (Action::Down, a, None),
            };
            let options = RunOptions {
                fleet: args.fleet.is_some(),
                ..run_options(&args.state_file, watch)
            };
            tungate_netcfg::run_net(action, args.config.as_deref(), &options)
        }
        Command::Rs(cmd) => {
            let (action, args, watch) = match &cmd {
                RsCommand::Plan(a) => (Action::Plan, a, None),
                RsCommand::Apply { args, watch } => (Action::Apply, args, Some(watch)),
                RsCommand::Down(a) => (Action::Down, a, None),
            };
            let options = run_options(&args.state_file, watch);
            tungate_netcfg::run_rs(action, args.config.as_deref(), args.settings(), &options)
        }
        Command::Plugin(PluginCommand::Check { file }) => tungate_plugin_host::check_file(&file),
    }
}

fn config_check(file: &std::path::Path, host: bool) -> i32 {
    let doc = match config::load_file(file) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("tungate: invalid configuration: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    if host && let Err(e) = config::host::check_host(&doc) {
        eprintln!("tungate: configuration does not fit this host: {e}");
        return EXIT_BAD_CONFIG;
    }
    println!(
        "{}: ok ({} peers, {} VIPs with plugin chains)",
        file.display(),
        doc.peers.len(),
        doc.vips.len()
    );
    0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsStr;

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        assert!(use_colour(true, None));
        assert!(use_colour(true, Some(OsStr::new(""))));
        assert!(!use_colour(true, Some(OsStr::new("1"))));
        assert!(!use_colour(false, None));
        assert!(!use_colour(false, Some(OsStr::new("1"))));
    }

    #[test]
    fn only_reading_commands_may_end_on_a_closed_output() {
        let reads = ["status", "plugin check x.wasm", "config check x.toml"];
        let changes = ["run", "demo", "net apply --config x", "net down"];
        for (line, expected) in reads
            .iter()
            .map(|l| (l, true))
            .chain(changes.iter().map(|l| (l, false)))
        {
            let cli = Cli::try_parse_from(std::iter::once("tungate").chain(line.split(' ')))
                .unwrap_or_else(|e| panic!("{line}: {e}"));
            assert_eq!(cli.command.only_prints(), expected, "{line}");
        }
    }
    #[test]
    fn prometheus_needs_the_fleet_and_a_url_the_client_can_ask() {
        let parse =
            |line: &str| Cli::try_parse_from(std::iter::once("tungate").chain(line.split(' ')));
        let Command::Run(args) = parse("run --fleet f1 --prometheus http://10.0.0.9:9090")
            .expect("a fleet with its Prometheus")
            .command
        else {
            panic!("not run")
        };
        assert_eq!(args.prometheus.as_deref(), Some("http://10.0.0.9:9090"));
        let alone = parse("run --prometheus http://10.0.0.9:9090").unwrap_err();
        assert!(alone.to_string().contains("--fleet"), "{alone}");
        for bad in ["10.0.0.9:9090", "ftp://p:9090", "http://p:9090/prometheus"] {
            let e = parse(&format!("run --fleet f1 --prometheus {bad}")).unwrap_err();
            assert!(e.to_string().contains("--prometheus"), "{bad}: {e}");
        }
    }
}
