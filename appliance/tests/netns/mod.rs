//! Network namespaces for the netcfg integration tests: unique names (test tag, pid and a
//! counter), removal on drop (also when a test fails), commands and the real `tungate`
//! binary run inside, and threads that enter a namespace to open sockets there.
//!
//! Nothing here touches the host's own interfaces, routes, rules or sysctls: every command
//! runs under `ip netns exec` in a namespace this module created.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A network namespace that is deleted when dropped.
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
    /// A private directory for state files and configurations, removed with the namespace.
    pub dir: tempfile::TempDir,
}

/// What a command printed and how it ended.
pub struct Run {
    /// Exit status (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Netns {
    /// Creates a namespace named `tg<tag><pid>n<counter>` with `lo` up.
    pub fn new(tag: &str) -> Self {
        let name = format!(
            "tg{tag}{}n{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let status = Command::new("ip")
            .args(["netns", "add", &name])
            .status()
            .expect("ip runs");
        assert!(
            status.success(),
            "ip netns add {name} failed (run the tests as root)"
        );
        let ns = Netns {
            name,
            dir: tempfile::tempdir().expect("temp dir"),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    /// Runs a command inside the namespace.
    pub fn run(&self, program: &str, args: &[&str]) -> Run {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .expect("ip netns exec runs")
            .into()
    }

    /// Runs `ip ARGS` inside the namespace and requires success.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = self.run("ip", args);
        assert_eq!(out.code, 0, "ip {args:?} in {}: {}", self.name, out.stderr);
        out.stdout
    }

    /// Runs `ip -j ARGS` and parses the JSON.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ip(&all)).expect("ip -j prints JSON")
    }

    /// Runs the real tungate binary inside the namespace.
    pub fn tungate(&self, args: &[&str]) -> Run {
        self.run(env!("CARGO_BIN_EXE_tungate"), args)
    }

    /// Starts the real tungate binary inside the namespace without waiting for it.
    pub fn spawn_tungate(&self, args: &[&str]) -> std::process::Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name, env!("CARGO_BIN_EXE_tungate")])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tungate starts")
    }

    /// Reads a sysctl (path relative to /proc/sys) as seen inside the namespace.
    pub fn sysctl(&self, path: &str) -> String {
        let out = self.run("cat", &[&format!("/proc/sys/{path}")]);
        assert_eq!(out.code, 0, "reading {path}: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// Writes a sysctl inside the namespace.
    pub fn set_sysctl(&self, path: &str, value: &str) {
        let out = self.run("sh", &["-c", &format!("echo {value} > /proc/sys/{path}")]);
        assert_eq!(out.code, 0, "writing {path}: {}", out.stderr);
    }

    /// A path in the namespace's private directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Runs `f` on a new thread that has entered this namespace (sockets it opens live
    /// there) and returns its result.
    pub fn in_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> std::thread::JoinHandle<T> {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let file = std::fs::File::open(&path).expect("namespace file opens");
            nix::sched::setns(file, nix::sched::CloneFlags::CLONE_NEWNET).expect("setns");
            f()
        })
    }

    /// Moves interface `name` of this namespace into `other`.
    pub fn move_link(&self, name: &str, other: &Netns) {
        self.ip(&["link", "set", name, "netns", &other.name]);
    }
}

/// `tungate rs` flags that make veths stand in for the ipip devices (this kernel has none):
/// VIPs on `lo`, requests arriving on `vin`, replies leaving by the existing `vgw`.
pub const RS_STANDIN_FLAGS: [&str; 7] = [
    "--vip-device",
    "lo",
    "--ingress-device",
    "vin",
    "--reply-tunnel",
    "vgw",
    "--existing-reply-device",
];

impl Netns {
    /// A namespace for the RS role with the `vin` and `vgw` veths of [`RS_STANDIN_FLAGS`].
    pub fn with_rs_devices(tag: &str) -> Self {
        let ns = Netns::new(tag);
        ns.ip(&[
            "link", "add", "vin", "type", "veth", "peer", "name", "vin-p",
        ]);
        ns.ip(&[
            "link", "add", "vgw", "type", "veth", "peer", "name", "vgw-p",
        ]);
        ns
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}
