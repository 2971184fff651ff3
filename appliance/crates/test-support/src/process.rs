//! The `tungate` binary under test, started inside a namespace with a config file and
//! `--counters-format json`; killed on drop if a test fails before stopping it. Also the
//! CPU time of a named thread (for benchmarks).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use crate::netns::Netns;
use crate::wait::{eventually, filters_in_force, until};

/// A running `tungate run`.
pub struct Tungate {
    child: Child,
    stdout: BufReader<ChildStdout>,
    _dir: tempfile::TempDir,
    /// The configuration file (rewrite it and call [`Tungate::reload`]).
    pub config: PathBuf,
    /// Its state directory (inside the test's temporary directory).
    pub state_dir: PathBuf,
    /// Its log (stderr) up to and including the "forwarding" line.
    pub startup_log: String,
    ns: String,
}

/// The path of the binary under test: the `tungate` in the profile directory of the running
/// executable (integration tests run from `deps/`, examples from `examples/`; Cargo builds
/// the binary before an integration test runs).
pub fn binary() -> String {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe.parent().and_then(|p| p.parent()).expect("target dir");
    profile_dir.join("tungate").display().to_string()
}

/// Nanoseconds the thread named `thread` of `process` (a pid, or `self`) has run, from its
/// schedstat; panics if there is no such thread.
pub fn thread_cpu_ns(process: &str, thread: &str) -> u64 {
    let tasks = format!("/proc/{process}/task");
    for task in std::fs::read_dir(&tasks).unwrap_or_else(|e| panic!("{tasks}: {e}")) {
        let dir = task.expect("task").path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim() == thread {
            let stat = std::fs::read_to_string(dir.join("schedstat")).expect("schedstat");
            return stat
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .expect("schedstat run time");
        }
    }
    panic!("no thread {thread} in process {process}")
}

/// Runs `tungate run` once in `ns` with `config` (TOML) and a fresh state directory, through
/// `wrapper` (a command and its arguments that then run it, e.g. `["taskset", "-c", "0"]`),
/// and returns how it ended: for starts that must be refused.
pub fn run_once_through(ns: &Netns, wrapper: &[&str], config: &str) -> std::process::Output {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("tungate.toml");
    std::fs::write(&file, config).expect("write the configuration");
    let state = dir.path().join("state");
    let bin = binary();
    let mut args: Vec<&str> = wrapper[1..].to_vec();
    args.extend([
        bin.as_str(),
        "run",
        "--config",
        file.to_str().expect("a UTF-8 path"),
        "--state-dir",
        state.to_str().expect("a UTF-8 path"),
    ]);
    ns.exec(wrapper[0], &args)
}

/// The threads of process `pid`: (name, the `/proc/PID/task/TID` directory).
pub fn threads_of(pid: u32) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("the process's tasks")
        .filter_map(Result::ok)
        .map(|t| {
            let comm = std::fs::read_to_string(t.path().join("comm")).unwrap_or_default();
            (comm.trim().to_owned(), t.path())
        })
        .collect()
}

impl Tungate {
    /// Starts `tungate run` in `ns` with `config` and waits until it forwards (or exits).
    pub fn start(ns: &Netns, config: &str) -> Tungate {
        Self::start_with(ns, config, &[])
    }

    /// Like [`Tungate::start`], with extra `tungate run` arguments (e.g. `--plugin F`). The
    /// state directory is private to this run.
    pub fn start_with(ns: &Netns, config: &str, extra: &[&str]) -> Tungate {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tungate.toml");
        std::fs::write(&path, config).unwrap();
        let state_dir = dir.path().join("state");
        Self::spawn(ns, dir, path, state_dir, extra)
    }

    /// Starts `tungate run` on an existing state directory (kept by the caller across runs)
    /// with `config` written next to it.
    pub fn start_in(
        ns: &Netns,
        state_dir: &std::path::Path,
        config: &str,
        extra: &[&str],
    ) -> Tungate {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tungate.toml");
        std::fs::write(&path, config).unwrap();
        Self::spawn(ns, dir, path, state_dir.to_owned(), extra)
    }

    fn spawn(
        ns: &Netns,
        dir: tempfile::TempDir,
        path: PathBuf,
        state_dir: PathBuf,
        extra: &[&str],
    ) -> Tungate {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &ns.name, &binary(), "run", "--config"])
            .arg(&path)
            .arg("--state-dir")
            .arg(&state_dir)
            .args(extra)
            .args(["--counters-format", "json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tungate");
        let stdout = BufReader::new(child.stdout.take().unwrap());
        // Wait for the "forwarding" log line on stderr (or for the process to end).
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        let mut startup_log = String::new();
        loop {
            line.clear();
            if stderr.read_line(&mut line).unwrap_or(0) == 0 {
                break;
            }
            eprint!("tungate: {line}");
            startup_log.push_str(&line);
            if line.contains("forwarding") {
                break;
            }
        }
        // Keep draining stderr into the test log so tungate never blocks on it.
        std::thread::spawn(move || {
            for l in stderr.lines().map_while(Result::ok) {
                eprintln!("tungate: {l}");
            }
        });
        Tungate {
            child,
            stdout,
            _dir: dir,
            config: path,
            state_dir,
            startup_log,
            ns: ns.name.clone(),
        }
    }

    /// The process id of tungate itself (`ip netns exec` execs the binary).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// tungate's resident set size in KiB (`VmRSS` from /proc).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("read /proc/PID/status of tungate");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// The admin token generated into the state directory.
    pub fn token(&self) -> String {
        std::fs::read_to_string(self.state_dir.join("admin-token"))
            .expect("admin token file")
            .trim()
            .to_owned()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it with SIGKILL (no cleanup at all) and waits for it.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn signal(&self, signal: nix::sys::signal::Signal) {
        // `ip netns exec` execs the binary, so the child's pid is tungate's.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), signal)
            .expect("signal tungate");
    }

    /// Asks for the counters (SIGUSR1) and returns them.
    pub fn counters(&mut self) -> serde_json::Value {
        self.signal(nix::sys::signal::Signal::SIGUSR1);
        self.read_counters()
    }

    fn read_counters(&mut self) -> serde_json::Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("read counters");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("counters {line:?}: {e}"))
    }

    /// `GET /api/v1/status` from its admin API (null if it does not answer with JSON).
    pub fn status(&self) -> serde_json::Value {
        let request =
            b"GET /api/v1/status HTTP/1.1\r\nHost: 127.0.0.1:9080\r\nConnection: close\r\n\r\n";
        let r = crate::http::raw_in(&self.ns, "127.0.0.1:9080", request.to_vec());
        serde_json::from_slice(&r.body).unwrap_or_default()
    }

    /// The configuration generation its admin API reports (0 if it does not answer).
    pub fn generation(&self) -> u64 {
        self.status()["config_generation"].as_u64().unwrap_or(0)
    }

    /// Waits until every worker runs the filter generation published last (after a reload
    /// or a restart of the workers: they run their loop with the new configuration).
    pub fn wait_filters_in_force(&self) {
        until(
            Duration::from_secs(10),
            "every worker runs the published filters",
            || filters_in_force(&self.status()),
        );
    }

    /// Rewrites the configuration and reloads it (SIGHUP); waits until the new document is
    /// in force (the generation moves on; the stored state is written first, which can take
    /// a while on a busy disk), or at most 10 s for a file it refuses or finds unchanged.
    pub fn reload(&mut self, config: &str) {
        let before = self.generation();
        std::fs::write(&self.config, config).unwrap();
        self.signal(nix::sys::signal::Signal::SIGHUP);
        eventually(Duration::from_secs(10), || self.generation() > before);
    }

    /// Waits for it to end by itself (e.g. after a drain) and returns its exit status and
    /// final counters.
    pub fn wait(mut self) -> (i32, serde_json::Value) {
        let counters = self.read_counters();
        let status = self.child.wait().unwrap().code().unwrap_or(-1);
        (status, counters)
    }

    /// Stops it (SIGTERM) and returns its exit status and final counters.
    pub fn stop(mut self) -> (i32, serde_json::Value) {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let counters = self.read_counters();
        let status = self.child.wait().unwrap().code().unwrap_or(-1);
        (status, counters)
    }
}

impl Drop for Tungate {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Runs `tungate ARGS` in `ns` to completion: (status, stdout, stderr).
pub fn run_to_end(ns: &Netns, args: &[&str]) -> (i32, String, String) {
    let out = ns.exec(&binary(), args);
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
