//! The command line: argument definitions and dispatch, nothing else.
//!
//! Each subcommand's work lives in the module that owns it; this module only parses, sets up
//! logging and maps results to exit statuses (0 success, 1 failure, 2 bad configuration or
//! usage).

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::EXIT_BAD_CONFIG;
use crate::config;

/// tungate — the reply gateway of an LVS tunnelling (LVS-TUN) cluster.
///
/// Real servers send their replies through IPIP tunnels to this gateway; tungate checks and
/// decapsulates them, runs each VIP's Wasm plugins and forwards the accepted replies to the
/// clients.
#[derive(Debug, Parser)]
#[command(name = "tungate", version, about, long_about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Work with configuration documents without running anything.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Work with Wasm plugin modules without running anything.
    #[command(subcommand)]
    Plugin(PluginCommand),
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
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parses the command line, runs the command, and returns the process exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Config(ConfigCommand::Check { file, host }) => config_check(&file, host),
        Command::Plugin(PluginCommand::Check { file }) => crate::plugin_host::check_file(&file),
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
