//! `tungate run`: load and check the configuration, start the data path, and serve signals
//! until told to stop.
//!
//! SIGUSR1 prints the counters, SIGHUP reloads the configuration file (a bad file is
//! reported and the running configuration kept), SIGINT and SIGTERM stop the data path
//! cleanly — no nftables table, socket or thread left behind — and print the counters a
//! last time. This module only orchestrates; it never touches packets.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use nix::sys::signal::{SigSet, Signal};

use crate::EXIT_BAD_CONFIG;
use crate::config::{self, Document};
use crate::datapath::Datapath;
use crate::datapath::counters::{Counters, Snapshot};

/// How `tungate run` prints its counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum CountersFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object per print, on one line (for scripts and tests).
    Json,
}

/// Loads a file and checks it, also against this host.
fn load_checked(file: &Path) -> Result<Document, String> {
    let doc = config::load_file(file).map_err(|e| format!("invalid configuration: {e}"))?;
    config::host::check_host(&doc)
        .map_err(|e| format!("configuration does not fit this host: {e}"))?;
    Ok(doc)
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

/// Runs the gateway; returns the process exit status.
pub fn run(file: &Path, format: CountersFormat) -> i32 {
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
    let doc = match load_checked(file) {
        Ok(doc) => doc,
        Err(e) => {
            eprintln!("tungate: {e}");
            return EXIT_BAD_CONFIG;
        }
    };
    let counters = Arc::new(Counters::new(doc.gateway.workers as usize));
    let mut datapath = match Datapath::start(&doc, counters.clone()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("tungate: cannot start the data path: {e}");
            return 1;
        }
    };
    tracing::info!("forwarding; SIGUSR1 prints counters, SIGHUP reloads, SIGTERM stops");
    loop {
        match signals.wait() {
            Ok(Signal::SIGUSR1) => print_counters(&counters.snapshot(), format),
            Ok(Signal::SIGHUP) => match load_checked(file) {
                Ok(new) => match datapath.apply(&new) {
                    Ok(restarted) => tracing::info!(
                        "configuration reloaded{}",
                        if restarted {
                            " (workers restarted)"
                        } else {
                            ""
                        }
                    ),
                    Err(e) => {
                        eprintln!("tungate: reload failed, data path stopped: {e}");
                        print_counters(&counters.snapshot(), format);
                        return 1;
                    }
                },
                Err(e) => eprintln!("tungate: reload refused, keeping the running one: {e}"),
            },
            Ok(_) => break,
            Err(e) => {
                eprintln!("tungate: waiting for signals failed: {e}");
                break;
            }
        }
    }
    let status = match datapath.stop() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("tungate: unclean shutdown: {e}");
            1
        }
    };
    print_counters(&counters.snapshot(), format);
    status
}
