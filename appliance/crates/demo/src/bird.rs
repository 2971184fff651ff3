//! The routing side of a fleet on one host, shared by `tungate demo --gateways N` and the
//! fleet tests (test-support uses it, so both run the same set-up): the shipped BIRD
//! configurations of `deploy/fleet/` with their placeholders filled in, the addressing of
//! the router's link to each gateway, the router's ECMP sysctls, and a BIRD daemon started
//! inside a namespace.
//!
//! It only fills in text and starts processes; who stops them is the caller's business
//! (the demo's cleanup guard, the tests' `Drop`).

use std::net::Ipv4Addr;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::DemoError;

/// The shipped gateway BIRD configuration (a template).
pub const BIRD_GATEWAY: &str = include_str!("../../../../deploy/fleet/bird-gateway.conf");
/// The shipped router BIRD configuration (a template).
pub const BIRD_ROUTER: &str = include_str!("../../../../deploy/fleet/bird-router.conf");
/// The router's AS number.
pub const ROUTER_AS: u32 = 65000;
/// The fleet's AS number (every gateway's).
pub const FLEET_AS: u32 = 65001;
/// The most gateways a one-host fleet has (`10.1.N.0/24` per link, one BGP session each).
pub const MAX_GATEWAYS: usize = 8;
/// The router's sysctls: forwarding, ECMP hashing on the inner source and destination
/// address, protocol and ports (policy 3, fields 0x0dc0, as `deploy/fleet/router-sysctl.conf`
/// ships them), and no reverse-path filter (replies enter from the gateways).
pub const ROUTER_SYSCTLS: [(&str, &str); 5] = [
    ("net/ipv4/ip_forward", "1"),
    ("net/ipv4/fib_multipath_hash_policy", "3"),
    ("net/ipv4/fib_multipath_hash_fields", "0x0dc0"),
    ("net/ipv4/conf/all/rp_filter", "0"),
    ("net/ipv4/conf/default/rp_filter", "0"),
];
/// How long a BIRD may take to answer on its control socket.
const BIRD_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// The router's address towards gateway `i` (1-based) and the gateway's own address on
/// that link (`10.1.i.1` and `10.1.i.2`, /24).
pub fn gateway_link(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(10, 1, i as u8, 1),
        Ipv4Addr::new(10, 1, i as u8, 2),
    )
}

/// The router's BIRD configuration: the shipped file's common part with one BGP session
/// per gateway `1..=gateways`, importing only `gip`/32 and merging the paths (ECMP).
pub fn router_config(router_id: Ipv4Addr, gip: Ipv4Addr, gateways: usize) -> String {
    let head = BIRD_ROUTER
        .split("\n# The gateways: one line each")
        .next()
        .unwrap_or(BIRD_ROUTER);
    let mut config = head
        .replace("@ROUTER_ID@", &router_id.to_string())
        .replace("@ROUTER_AS@", &ROUTER_AS.to_string())
        .replace("@FLEET_AS@", &FLEET_AS.to_string())
        .replace("@GIP@", &gip.to_string());
    for i in 1..=gateways {
        let own = gateway_link(i).1;
        config.push_str(&format!(
            "\nprotocol bgp gw{i} from fleet_gateway {{ neighbor {own} as {FLEET_AS}; }}\n"
        ));
    }
    config
}

/// Gateway `i`'s (1-based) BIRD configuration: announce `gip`/32 to the router while the
/// health link `tg-health` is up.
pub fn gateway_config(i: usize, gip: Ipv4Addr) -> String {
    let (router, own) = gateway_link(i);
    BIRD_GATEWAY
        .replace("@LOCAL_ADDRESS@", &own.to_string())
        .replace("@ROUTER_ADDRESS@", &router.to_string())
        .replace("@FLEET_AS@", &FLEET_AS.to_string())
        .replace("@ROUTER_AS@", &ROUTER_AS.to_string())
        .replace("@GIP@", &gip.to_string())
}

/// `config` logging everything to the file `log` instead of syslog.
pub fn log_to_file(config: &str, log: &Path) -> String {
    config.replace(
        "log syslog { warning, error, fatal };",
        &format!("log \"{}\" all;", log.display()),
    )
}

/// The first executable called `name` in `$PATH`.
pub fn which(name: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt as _;
    std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|dir| dir.join(name))
        .find(|p| {
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// BIRD's two programs, found in `$PATH`.
#[derive(Debug, Clone)]
pub struct BirdTools {
    /// The daemon, `bird`.
    pub bird: PathBuf,
    /// Its client, `birdc`.
    pub birdc: PathBuf,
}

impl BirdTools {
    /// Finds `bird` and `birdc`, or says how to install them.
    pub fn find() -> Result<BirdTools, DemoError> {
        match (which("bird"), which("birdc")) {
            (Some(bird), Some(birdc)) => Ok(BirdTools { bird, birdc }),
            _ => Err(DemoError::BirdMissing),
        }
    }

    /// `birdc -s SOCKET ARGS`: its standard output (empty when it cannot run).
    pub fn birdc(&self, socket: &Path, args: &[&str]) -> String {
        Command::new(&self.birdc)
            .arg("-s")
            .arg(socket)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    }

    /// Starts `bird -f` in the namespace `namespace` with `config` written to
    /// `dir/NAME.conf` (its log `dir/NAME.log`, its socket `dir/NAME.ctl`) and waits until
    /// it answers. The child is in its own process group and gets SIGTERM when its parent
    /// dies; the caller stops it.
    pub fn start(
        &self,
        namespace: &str,
        dir: &Path,
        name: &str,
        config: &str,
    ) -> Result<(Child, PathBuf), DemoError> {
        let io = |what: &'static str| move |source| DemoError::Io { what, source };
        let path = dir.join(format!("{name}.conf"));
        let config = log_to_file(config, &dir.join(format!("{name}.log")));
        std::fs::write(&path, config).map_err(io("writing a BIRD configuration"))?;
        let socket = dir.join(format!("{name}.ctl"));
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", namespace])
            .arg(&self.bird)
            .arg("-f")
            .arg("-c")
            .arg(&path)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(dir.join(format!("{name}.pid")))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
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
            command: format!("ip netns exec {namespace} bird"),
            source,
        })?;
        let started = Instant::now();
        loop {
            if self
                .birdc(&socket, &["show", "status"])
                .contains("Daemon is up")
            {
                return Ok((child, socket));
            }
            let failed = match child.try_wait() {
                Ok(Some(status)) => Some(format!("exited ({status})")),
                _ if started.elapsed() > BIRD_UP_TIMEOUT => {
                    Some(format!("did not answer within {BIRD_UP_TIMEOUT:?}"))
                }
                _ => None,
            };
            if let Some(why) = failed {
                let _ = child.kill();
                let _ = child.wait();
                let log =
                    std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default();
                return Err(DemoError::Gateway(format!(
                    "BIRD in {namespace} {why}: {}",
                    log.lines().rev().take(5).collect::<Vec<_>>().join(" / ")
                )));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configurations_have_every_placeholder_filled() {
        let gip = Ipv4Addr::new(10, 200, 0, 1);
        let router = router_config(Ipv4Addr::new(10, 2, 0, 1), gip, 3);
        let gateway = gateway_config(2, gip);
        for text in [&router, &gateway] {
            // The comments explain the placeholders; no statement keeps one.
            let left: Vec<&str> = text
                .lines()
                .filter(|l| !l.trim_start().starts_with('#') && l.contains('@'))
                .collect();
            assert!(left.is_empty(), "{left:?}");
        }
        assert!(router.contains("merge paths on"), "{router}");
        for i in 1..=3 {
            assert!(
                router.contains(&format!(
                    "protocol bgp gw{i} from fleet_gateway {{ neighbor 10.1.{i}.2 as 65001; }}"
                )),
                "{router}"
            );
        }
        assert!(!router.contains("gw4"), "{router}");
        assert!(gateway.contains("neighbor 10.1.2.1 as 65000;"), "{gateway}");
        assert!(
            gateway.contains("route 10.200.0.1/32 via \"tg-health\";"),
            "{gateway}"
        );
        let logged = log_to_file(&gateway, Path::new("/tmp/x/bird.log"));
        assert!(logged.contains("log \"/tmp/x/bird.log\" all;"), "{logged}");
    }

    #[test]
    fn which_finds_executables_only() {
        assert!(which("sh").is_some());
        assert!(which("no-such-program-tungate").is_none());
    }
}
