//! The tests' network namespace: a uniquely named namespace (test tag, process id and a
//! counter) that is deleted when dropped, also when a test fails; `ip` and other commands
//! run inside it; code run on a thread that entered it (sockets opened there stay there);
//! the real `tungate` binary run inside it.
//!
//! Creating, deleting and entering a namespace is the demo's own code
//! ([`tungate_demo::netns`]), so tests and the demo share one implementation; this module
//! only adds the owner that cleans up and the test conveniences (a failure panics with what
//! the command said). It never touches the host's own interfaces, routes, rules or sysctls:
//! every command runs in a namespace it created.

use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};

use tungate_demo::netns as shared;

use crate::machine::{self, Shared};
use crate::process::binary;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call: `tg<prefix>-<pid>-<counter>`.
pub fn unique_name(prefix: &str) -> String {
    format!(
        "tg{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A network namespace that is deleted when dropped.
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
    /// A private directory for state files and configurations, removed with the namespace.
    pub dir: tempfile::TempDir,
    /// Keeps the machine shared with other tests while the namespace lives (see
    /// [`machine`]).
    _machine: Shared,
}

/// What a command printed and how it ended, as text.
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
    /// Creates a namespace named from `prefix` (see [`unique_name`]) with `lo` up.
    pub fn new(prefix: &str) -> Netns {
        let machine = machine::shared();
        let name = unique_name(prefix);
        shared::add(&name).unwrap_or_else(|e| {
            panic!("creating network namespace {name} failed (run the tests as root): {e}")
        });
        Netns {
            name,
            dir: tempfile::tempdir().expect("a temporary directory"),
            _machine: machine,
        }
    }

    /// A namespace for the RS role with the `vin` and `vgw` veths of [`RS_STANDIN_FLAGS`].
    pub fn with_rs_devices(prefix: &str) -> Netns {
        let ns = Netns::new(prefix);
        ns.ip(&[
            "link", "add", "vin", "type", "veth", "peer", "name", "vin-p",
        ]);
        ns.ip(&[
            "link", "add", "vgw", "type", "veth", "peer", "name", "vgw-p",
        ]);
        ns
    }

    /// Runs `ip -n NAME ARGS`, requires success and returns what it printed.
    pub fn ip(&self, args: &[&str]) -> String {
        let out = Command::new("ip")
            .args(["-n", &self.name])
            .args(args)
            .output()
            .expect("ip runs (install iproute2)");
        assert!(
            out.status.success(),
            "ip {args:?} in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Runs `ip -j ARGS` inside the namespace and parses the JSON.
    pub fn ip_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["-j"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.ip(&all)).expect("ip -j prints JSON")
    }

    /// Runs a command inside the namespace (`ip netns exec`) and returns its raw output.
    pub fn exec(&self, program: &str, args: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .output()
            .expect("ip netns exec runs")
    }

    /// Runs a command inside the namespace and returns its output as text.
    pub fn command(&self, program: &str, args: &[&str]) -> Run {
        self.exec(program, args).into()
    }

    /// Runs the real tungate binary inside the namespace to its end.
    pub fn tungate(&self, args: &[&str]) -> Run {
        self.command(&binary(), args)
    }

    /// Starts the real tungate binary inside the namespace without waiting for it (its
    /// output piped).
    pub fn spawn_tungate(&self, args: &[&str]) -> std::process::Child {
        Command::new("ip")
            .args(["netns", "exec", &self.name, &binary()])
            .args(args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("tungate starts")
    }

    /// Reads a sysctl (path relative to /proc/sys) as seen inside the namespace.
    pub fn sysctl(&self, path: &str) -> String {
        let out = self.command("cat", &[&format!("/proc/sys/{path}")]);
        assert_eq!(out.code, 0, "reading {path}: {}", out.stderr);
        out.stdout.trim().to_owned()
    }

    /// Writes a sysctl inside the namespace.
    pub fn set_sysctl(&self, path: &str, value: &str) {
        shared::sysctl_in(&self.name, path, value)
            .unwrap_or_else(|e| panic!("writing {path} in {}: {e}", self.name));
    }

    /// A path in the namespace's private directory.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.path().join(file)
    }

    /// Runs `f` on a new thread that has entered this namespace and returns its result.
    /// Sockets created there stay in the namespace when used from other threads.
    pub fn run<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        Netns::enter_and(&self.name, f)
    }

    /// Runs `f` on a new thread that has entered the namespace called `name`.
    pub fn enter_and<T: Send + 'static>(name: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
        shared::run_in(name, f).unwrap_or_else(|e| panic!("in network namespace {name}: {e}"))
    }

    /// Starts `f` on a new thread that has entered this namespace; its handle gives the
    /// result (joining panics if entering the namespace failed).
    pub fn in_thread<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> InThread<T> {
        let handle = shared::spawn_in(&self.name, "tg-test-netns", f)
            .unwrap_or_else(|e| panic!("in network namespace {}: {e}", self.name));
        InThread { handle }
    }

    /// Moves interface `name` of this namespace into `other`.
    pub fn move_link(&self, name: &str, other: &Netns) {
        self.ip(&["link", "set", name, "netns", &other.name]);
    }
}

/// A thread started by [`Netns::in_thread`].
pub struct InThread<T> {
    handle: std::thread::JoinHandle<Result<T, tungate_demo::DemoError>>,
}

impl<T> InThread<T> {
    /// Waits for the thread; `Err` if it panicked (as [`std::thread::JoinHandle::join`]).
    pub fn join(self) -> std::thread::Result<T> {
        self.handle.join().map(|entered| {
            entered.unwrap_or_else(|e| panic!("entering the network namespace failed: {e}"))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = shared::delete(&self.name) {
            eprintln!("could not delete network namespace {}: {e}", self.name);
        }
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
