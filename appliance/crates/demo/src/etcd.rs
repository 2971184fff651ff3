//! The fleet demo's store: one real etcd member (Debian's `etcd-server`) in the router's
//! namespace, its data in the demo's temporary directory, which every gateway runs with
//! `--etcd`. Gateway 1 seeds the empty fleet from its configuration file; the others take
//! etcd's state, and a change through any gateway's API reaches all of them.
//!
//! It starts the process and waits until it is healthy; stopping it is the cleanup
//! guard's job.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{DemoError, netns};

/// How long etcd may take to become healthy.
const HEALTHY_TIMEOUT: Duration = Duration::from_secs(30);

/// The client URL of etcd listening on `address`.
pub(crate) fn url(address: Ipv4Addr) -> String {
    format!("http://{address}:2379")
}

/// `etcd` in `$PATH`, if installed.
pub(crate) fn find() -> Option<PathBuf> {
    super::bird::which("etcd")
}

/// Whether etcd on `address` answers `GET /health` with `"health":"true"`, asked from
/// inside `namespace`.
fn healthy(namespace: &str, address: Ipv4Addr) -> bool {
    let ask = move || -> std::io::Result<bool> {
        let timeout = Duration::from_secs(1);
        let mut s = TcpStream::connect_timeout(&SocketAddr::from((address, 2379)), timeout)?;
        s.set_read_timeout(Some(timeout))?;
        s.write_all(b"GET /health HTTP/1.0\r\n\r\n")?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        Ok(answer.contains("\"health\":\"true\""))
    };
    matches!(netns::run_in(namespace, ask), Ok(Ok(true)))
}

/// Starts a one-member etcd (`etcd` at `program`) in `namespace` on `address`, its data
/// and log in `dir`, and waits until it is healthy.
pub(crate) fn start(
    program: &Path,
    namespace: &str,
    address: Ipv4Addr,
    dir: &Path,
) -> Result<Child, DemoError> {
    let io = |what: &'static str| move |source| DemoError::Io { what, source };
    let client = url(address);
    let peer = format!("http://{address}:2380");
    let log = std::fs::File::create(dir.join("etcd.log")).map_err(io("creating etcd.log"))?;
    let log_err = log.try_clone().map_err(io("creating etcd.log"))?;
    let mut command = Command::new("ip");
    command
        .args(["netns", "exec", namespace])
        .arg(program)
        .args(["--name", "demo", "--data-dir"])
        .arg(dir.join("etcd-data"))
        .args(["--listen-client-urls", &client])
        .args(["--advertise-client-urls", &client])
        .args(["--listen-peer-urls", &peer])
        .args(["--initial-advertise-peer-urls", &peer])
        .args(["--initial-cluster", &format!("demo={peer}")])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    // SAFETY: between fork and exec the child makes one async-signal-safe system call
    // (prctl) and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGTERM)?;
            Ok(())
        });
    }
    let mut child = command.spawn().map_err(|source| DemoError::Tool {
        command: format!("ip netns exec {namespace} etcd"),
        source,
    })?;
    let started = Instant::now();
    while !healthy(namespace, address) {
        let failed = match child.try_wait() {
            Ok(Some(status)) => Some(format!("exited ({status})")),
            _ if started.elapsed() > HEALTHY_TIMEOUT => {
                Some(format!("was not healthy within {HEALTHY_TIMEOUT:?}"))
            }
            _ => None,
        };
        if let Some(why) = failed {
            let _ = child.kill();
            let _ = child.wait();
            return Err(DemoError::Gateway(format!(
                "etcd in {namespace} {why}; its log is {}",
                dir.join("etcd.log").display()
            )));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(child)
}
