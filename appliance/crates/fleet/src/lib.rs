//! The fleet store (`tungate run --fleet NAME --etcd URL[,URL…]`): a gateway's fleet-wide
//! configuration and plugin modules in etcd, under one key prefix (`/tungate/<fleet>/`).
//!
//! [`Fleet::open`] sets up the etcd client on its own runtime thread (`tg-fleet`) — the
//! control plane and the admin server never wait on etcd except for a write's
//! compare-and-swap. [`Fleet::start`] reads the fleet state for the control plane's start
//! (seeding an empty fleet is the plane's, through the [`FleetStore`] it is given);
//! [`Fleet::follow`] then watches the state and registers the gateway under a lease.
//! This crate owns only the store: validating and applying a revision is the control
//! plane's (`tungate_control::fleet`), the data path never sees etcd.
//!
//! [`FleetStore`]: tungate_control::fleet::FleetStore

mod follow;
mod layout;
mod store;

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{Certificate, ConnectOptions, Identity, TlsOptions};
use tokio::sync::watch;

pub use follow::AnnouncementSource;
use follow::LeaseSlot;
use store::{BlockingStore, Etcd};
use tungate_api::wire;
use tungate_control::fleet::FleetStart;
use tungate_control::{ControlHandle, SharedView};

/// How `tungate run` reaches its fleet.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    /// The fleet's name (`--fleet`): its key prefix is `/tungate/<name>/`.
    pub name: String,
    /// This gateway's name in the fleet (`--fleet-member`, default the host name).
    pub member: String,
    /// The etcd endpoints (`--etcd`), e.g. `http://10.0.0.5:2379`.
    pub endpoints: Vec<String>,
    /// A CA certificate (PEM) to verify etcd's TLS certificate (`--etcd-ca`).
    pub ca: Option<PathBuf>,
    /// A client certificate and key (PEM) for etcd's mutual TLS (`--etcd-cert`,
    /// `--etcd-key`).
    pub identity: Option<(PathBuf, PathBuf)>,
    /// A user name and password for etcd's authentication (`--etcd-user`,
    /// `--etcd-password-file`).
    pub user: Option<(String, String)>,
}

/// Why the fleet store cannot be set up (the options are wrong; etcd being down is not an
/// error here).
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A fleet or member name that cannot be a key segment.
    #[error("{what} {name:?}: use 1 to 64 of A-Z a-z 0-9 . _ - (not starting with '.')")]
    BadName {
        /// `--fleet` or `--fleet-member`.
        what: &'static str,
        /// The name given.
        name: String,
    },
    /// No endpoint given.
    #[error("--etcd: give at least one endpoint URL, e.g. http://127.0.0.1:2379")]
    NoEndpoint,
    /// A TLS file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The runtime thread cannot start.
    #[error("cannot start the fleet thread: {0}")]
    Runtime(std::io::Error),
}

/// Whether `name` can be a fleet or member name (one etcd key segment).
pub fn is_valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn read(path: &PathBuf) -> Result<Vec<u8>, FleetError> {
    std::fs::read(path).map_err(|source| FleetError::Read {
        path: path.clone(),
        source,
    })
}

/// A gateway's connection to its fleet.
pub struct Fleet {
    runtime: tokio::runtime::Runtime,
    etcd: Etcd,
    name: String,
    lease: LeaseSlot,
}

impl Fleet {
    /// Checks the options and sets up the client (connecting happens on first use).
    pub fn open(options: FleetOptions) -> Result<Fleet, FleetError> {
        for (what, name) in [
            ("--fleet", &options.name),
            ("--fleet-member", &options.member),
        ] {
            if !is_valid_name(name) {
                return Err(FleetError::BadName {
                    what,
                    name: name.clone(),
                });
            }
        }
        if options.endpoints.is_empty() {
            return Err(FleetError::NoEndpoint);
        }
        let mut connect = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        if let Some((user, password)) = &options.user {
            connect = connect.with_user(user.clone(), password.clone());
        }
        if options.ca.is_some() || options.identity.is_some() {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &options.ca {
                tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
            }
            if let Some((cert, key)) = &options.identity {
                tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
            }
            connect = connect.with_tls(tls);
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("tg-fleet")
            .enable_all()
            .build()
            .map_err(FleetError::Runtime)?;
        Ok(Fleet {
            runtime,
            etcd: Etcd::new(options.endpoints, connect, &options.name, &options.member),
            name: options.name,
            lease: LeaseSlot::default(),
        })
    }

    /// Reads the fleet state for the control plane's start (an unreachable etcd is part of
    /// the answer: the plane then starts on its cached revision).
    pub fn start(&self) -> FleetStart {
        let state = self.runtime.block_on(self.etcd.read());
        FleetStart {
            name: self.name.clone(),
            store: Box::new(BlockingStore {
                etcd: self.etcd.clone(),
                runtime: self.runtime.handle().clone(),
            }),
            state,
        }
    }

    /// Starts following the fleet (changes go to `control`) and registering this gateway
    /// (its admin listener `address`, what `view` shows and its `announcement` of GIP);
    /// returns where `GET /api/v1/fleet` reads the fleet.
    pub fn follow(
        &self,
        control: ControlHandle,
        view: SharedView,
        address: String,
        announcement: AnnouncementSource,
    ) -> watch::Receiver<wire::Fleet> {
        let (report, receiver) = watch::channel(wire::Fleet {
            name: self.name.clone(),
            member: self.etcd.member.clone(),
            reachable: false,
            latest_revision: 0,
            gateways: Vec::new(),
            error: None,
        });
        self.runtime
            .spawn(follow::follow(self.etcd.clone(), control));
        self.runtime.spawn(follow::register(
            self.etcd.clone(),
            view,
            address,
            announcement,
            self.lease.clone(),
            report,
        ));
        receiver
    }

    /// Stops the fleet tasks and revokes the registration's lease, so that the gateway
    /// leaves the fleet's list at once (a killed gateway leaves it when the lease expires).
    pub fn stop(self) {
        let lease = *self.lease.lock().expect("lease slot");
        if let Some(id) = lease {
            let etcd = self.etcd.clone();
            let revoked = self.runtime.block_on(async move {
                let mut client = etcd.client().await.ok()?;
                tokio::time::timeout(Duration::from_secs(2), client.lease_revoke(id))
                    .await
                    .ok()?
                    .ok()
            });
            if revoked.is_none() {
                tracing::warn!(
                    "fleet: could not revoke the registration's lease; it expires within {}s",
                    follow::LEASE_TTL_SECONDS
                );
            }
        }
        self.runtime.shutdown_timeout(Duration::from_secs(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_one_key_segment_and_bad_options_are_refused_before_any_network() {
        for good in ["f1", "prod.eu-1", "A_b"] {
            assert!(is_valid_name(good), "{good}");
        }
        for bad in ["", ".x", "a/b", "a b", &"x".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
        let options = FleetOptions {
            name: "f/1".into(),
            member: "gw1".into(),
            endpoints: vec!["http://127.0.0.1:1".into()],
            ca: None,
            identity: None,
            user: None,
        };
        let e = Fleet::open(options.clone()).err().unwrap().to_string();
        assert!(e.starts_with("--fleet \"f/1\""), "{e}");
        let e = Fleet::open(FleetOptions {
            name: "f1".into(),
            endpoints: Vec::new(),
            ..options.clone()
        })
        .err()
        .unwrap();
        assert!(matches!(e, FleetError::NoEndpoint));
        let e = Fleet::open(FleetOptions {
            name: "f1".into(),
            ca: Some("/nonexistent/ca.pem".into()),
            ..options
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.starts_with("cannot read /nonexistent/ca.pem"), "{e}");
    }
}
