//! A real etcd (Debian's `etcd-server`) for the fleet tests: one member inside a namespace
//! the test created, listening on one of its addresses, its data in a temporary directory;
//! stopped (and started again on the same data) on demand, killed on drop.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::netns::Netns;
use crate::wait::until;

/// A running (or stopped) one-member etcd.
pub struct Etcd {
    ns: String,
    address: String,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

impl Etcd {
    /// Starts etcd in `ns` on `address` (client port 2379, peer port 2380: the namespace is
    /// the test's own, so the ports are free) and waits until it answers.
    pub fn start(ns: &Netns, address: &str) -> Etcd {
        let mut etcd = Etcd {
            ns: ns.name.clone(),
            address: address.to_owned(),
            dir: tempfile::tempdir().expect("a temporary directory"),
            child: None,
        };
        etcd.resume();
        etcd
    }

    /// Its client URL, for `tungate run --etcd`.
    pub fn url(&self) -> String {
        format!("http://{}:2379", self.address)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Starts it again on the same data (after [`Etcd::stop`]) and waits until it answers.
    pub fn resume(&mut self) {
        assert!(self.child.is_none(), "etcd is already running");
        let peer = format!("http://{}:2380", self.address);
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "etcd", "--name", "tg"])
            .arg("--data-dir")
            .arg(self.data_dir())
            .args(["--listen-client-urls", &self.url()])
            .args(["--advertise-client-urls", &self.url()])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &format!("tg={peer}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start etcd (apt-get install etcd-server)");
        self.child = Some(child);
        until(Duration::from_secs(20), "etcd answers", || {
            self.etcdctl(&["endpoint", "health"]).0
        });
    }

    /// Stops it (SIGKILL: as a crash, the data stays).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Runs `etcdctl ARGS` against it: (success, stdout).
    pub fn etcdctl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.ns,
                "etcdctl",
                "--endpoints",
                &self.url(),
            ])
            .args(["--command-timeout", "2s"])
            .args(args)
            .env("ETCDCTL_API", "3")
            .output()
            .expect("etcdctl runs (apt-get install etcd-client)");
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}
