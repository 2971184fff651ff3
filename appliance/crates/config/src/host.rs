//! Checks of a document against the host it is about to run on: the gateway address must
//! be one of this host's (in the current network namespace), named interfaces must exist,
//! and on an XDP path (`gateway.io = "xdp"` or `"xdp-generic"`) the ingress interface must
//! have a receive queue per worker (each worker binds one AF_XDP socket to its own queue).
//!
//! These checks read the host's interface list and the ingress device's channel count; they
//! never change anything.

use std::collections::HashSet;
use std::net::IpAddr;

use super::model::{DecapMode, Document};
use super::validate::{FieldError, Invalid};

/// The IP address a socket address of an interface holds, if it is IPv4 or IPv6.
fn ip_of(address: &nix::sys::socket::SockaddrStorage) -> Option<IpAddr> {
    address
        .as_sockaddr_in()
        .map(|sin| IpAddr::V4(sin.ip()))
        .or_else(|| address.as_sockaddr_in6().map(|sin6| IpAddr::V6(sin6.ip())))
}

/// The IPv4 and IPv6 addresses configured on this host's interfaces (in this network
/// namespace).
pub(crate) fn local_addresses() -> std::io::Result<HashSet<IpAddr>> {
    let addrs = nix::ifaddrs::getifaddrs().map_err(std::io::Error::from)?;
    Ok(addrs
        .filter_map(|a| a.address.as_ref().and_then(ip_of))
        .collect())
}

/// Whether an interface of this name exists in this network namespace.
pub(crate) fn interface_exists(name: &str) -> bool {
    nix::net::if_::if_nametoindex(name).is_ok()
}

/// The interface the encapsulated replies arrive on: `gateway.ingress_interface`, else the
/// interface that holds the gateway address (`address`, else `address6`; `None` when no
/// interface holds it).
pub fn ingress_interface(doc: &Document) -> Option<String> {
    if let Some(name) = &doc.gateway.ingress_interface {
        return Some(name.clone());
    }
    let gip = doc.gateway.display_address();
    nix::ifaddrs::getifaddrs().ok()?.find_map(|a| {
        let address = a.address.as_ref().and_then(ip_of)?;
        (address == gip).then_some(a.interface_name)
    })
}

/// `struct ethtool_channels` (linux/ethtool.h).
#[repr(C)]
#[derive(Default)]
struct EthtoolChannels {
    cmd: u32,
    max_rx: u32,
    max_tx: u32,
    max_other: u32,
    max_combined: u32,
    rx_count: u32,
    tx_count: u32,
    other_count: u32,
    combined_count: u32,
}

/// `ETHTOOL_GCHANNELS`.
const ETHTOOL_GCHANNELS: u32 = 0x3c;

/// How many receive queues interface `name` has (in this network namespace): the ethtool
/// channel count (rx + combined channels), or, for a driver without channels, the
/// `queues/rx-*` entries in sysfs.
pub fn rx_queue_count(name: &str) -> std::io::Result<u32> {
    match ethtool_rx_channels(name) {
        Ok(n) if n > 0 => Ok(n),
        Ok(_) => sysfs_rx_queues(name),
        Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => sysfs_rx_queues(name),
        Err(e) => Err(e),
    }
}

fn ethtool_rx_channels(name: &str) -> std::io::Result<u32> {
    use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

    if name.is_empty() || name.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::from_raw_os_error(libc::ENODEV));
    }
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: fd was just created and is owned by nobody else.
    let socket = unsafe { OwnedFd::from_raw_fd(fd) };
    let mut channels = EthtoolChannels {
        cmd: ETHTOOL_GCHANNELS,
        ..EthtoolChannels::default()
    };
    // SAFETY: all-zero ifreq is valid; the name (checked shorter than IFNAMSIZ) and the data
    // pointer are set below.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in request.ifr_name.iter_mut().zip(name.bytes()) {
        *dst = src as libc::c_char;
    }
    request.ifr_ifru.ifru_data = (&raw mut channels).cast();
    // SAFETY: SIOCETHTOOL reads the ifreq and writes the ethtool_channels its data points at;
    // both live across the call.
    let rc = unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCETHTOOL, &raw mut request) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(channels.rx_count + channels.combined_count)
}

fn sysfs_rx_queues(name: &str) -> std::io::Result<u32> {
    let entries = std::fs::read_dir(format!("/sys/class/net/{name}/queues"))?;
    let mut count = 0;
    for entry in entries {
        if entry?.file_name().to_string_lossy().starts_with("rx-") {
            count += 1;
        }
    }
    Ok(count)
}

/// The CPUs this process could run on when first asked: asked at start, before the data
/// path narrows any thread's affinity (`gateway.worker_cpus`), so later checks see the
/// whole set, not the narrowed one of the thread that asks.
pub fn allowed_cpus() -> std::io::Result<&'static [u32]> {
    static CPUS: std::sync::OnceLock<Vec<u32>> = std::sync::OnceLock::new();
    if let Some(cpus) = CPUS.get() {
        return Ok(cpus);
    }
    let set = nix::sched::sched_getaffinity(nix::unistd::Pid::from_raw(0))
        .map_err(std::io::Error::from)?;
    let cpus = (0..nix::sched::CpuSet::count())
        .filter(|&c| set.is_set(c).unwrap_or(false))
        .map(|c| c as u32)
        .collect();
    Ok(CPUS.get_or_init(|| cpus))
}

/// A `0-3,6`-style list (as the kernel writes CPU lists) of sorted CPU numbers.
pub fn cpu_list(cpus: &[u32]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < cpus.len() {
        let mut j = i;
        while j + 1 < cpus.len() && cpus[j + 1] == cpus[j] + 1 {
            j += 1;
        }
        parts.push(if i == j {
            cpus[i].to_string()
        } else {
            format!("{}-{}", cpus[i], cpus[j])
        });
        i = j + 1;
    }
    parts.join(",")
}

/// Why `cpu` of `gateway.worker_cpus` is refused: it is not among `allowed`.
pub fn cpu_not_allowed(cpu: u32, allowed: &[u32]) -> String {
    format!(
        "CPU {cpu} is not one this process may run on (it may run on {}); name CPUs from that \
         set, or widen it (taskset, systemd CPUAffinity=)",
        cpu_list(allowed)
    )
}

/// Checks the document against this host.
pub fn check_host(doc: &Document) -> Result<(), Invalid> {
    check_host_as(doc, false)
}

/// Checks the document against this host; a fleet member (`fleet`: `tungate run --fleet`)
/// need not hold GIP yet (it puts GIP on `lo` itself) but must name
/// `gateway.ingress_interface` (the interface holding GIP, `lo`, is not where the tunnels
/// arrive).
pub fn check_host_as(doc: &Document, fleet: bool) -> Result<(), Invalid> {
    let mut problems = Vec::new();
    let gip = doc.gateway.display_address();
    if fleet && doc.gateway.decap == DecapMode::Userspace && doc.gateway.ingress_interface.is_none()
    {
        problems.push(FieldError {
            field: "gateway.ingress_interface".into(),
            message: format!(
                "in fleet mode {gip} is held on lo: name the interface the reply tunnels \
                 arrive on"
            ),
        });
    }
    match local_addresses() {
        Ok(_) if fleet => {}
        Ok(local) => {
            let keys = [("gateway.address", doc.gateway.address.map(IpAddr::V4))];
            let keys6 = [("gateway.address6", doc.gateway.address6.map(IpAddr::V6))];
            for (field, gip) in keys.into_iter().chain(keys6) {
                if let Some(gip) = gip
                    && !local.contains(&gip)
                {
                    problems.push(FieldError {
                        field: field.into(),
                        message: format!(
                            "{gip} is not an address of this host; add it to an interface or \
                             give the address the real servers tunnel to"
                        ),
                    });
                }
            }
        }
        Err(e) => problems.push(FieldError {
            field: "gateway.address".into(),
            message: format!("cannot list this host's addresses: {e}"),
        }),
    }
    for (field, value) in [
        ("gateway.egress_interface", &doc.gateway.egress_interface),
        ("gateway.ingress_interface", &doc.gateway.ingress_interface),
    ] {
        if let Some(name) = value
            && !interface_exists(name)
        {
            problems.push(FieldError {
                field: field.into(),
                message: format!("no interface named {name:?} on this host"),
            });
        }
    }
    if doc.gateway.decap == DecapMode::Userspace
        && doc.gateway.io.is_xdp()
        && let Some(ingress) = ingress_interface(doc)
        && let Ok(queues) = rx_queue_count(&ingress)
        && doc.gateway.workers > queues
    {
        problems.push(FieldError {
            field: "gateway.workers".into(),
            message: format!(
                "{} workers, but the ingress interface {ingress} has {queues} receive \
                 queue{}: with io = {:?} each worker needs its own queue; give at most \
                 {queues} workers, or add queues (ethtool -L {ingress} rx N / combined N)",
                doc.gateway.workers,
                if queues == 1 { "" } else { "s" },
                doc.gateway.io.as_str(),
            ),
        });
    }
    if let Some(cpus) = &doc.gateway.worker_cpus {
        match allowed_cpus() {
            Ok(allowed) => {
                for &cpu in cpus.iter().filter(|c| !allowed.contains(c)) {
                    problems.push(FieldError {
                        field: "gateway.worker_cpus".into(),
                        message: cpu_not_allowed(cpu, allowed),
                    });
                }
            }
            Err(e) => problems.push(FieldError {
                field: "gateway.worker_cpus".into(),
                message: format!("cannot read the CPUs this process may run on: {e}"),
            }),
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(Invalid(problems))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse_toml;

    #[test]
    fn cpu_lists_read_as_the_kernel_writes_them() {
        assert_eq!(cpu_list(&[0, 1, 2, 5, 7, 8]), "0-2,5,7-8");
        assert_eq!(cpu_list(&[3]), "3");
        assert_eq!(cpu_list(&[]), "");
    }

    #[test]
    fn worker_cpus_must_be_cpus_this_process_may_run_on() {
        let allowed = allowed_cpus().unwrap();
        let mut doc = crate::parse_toml("[gateway]\naddress = \"127.0.0.1\"").unwrap();
        doc.gateway.worker_cpus = Some(vec![allowed[0]]);
        check_host(&doc).unwrap();
        assert!(
            !allowed.contains(&1023),
            "a machine with 1024 CPUs: {allowed:?}"
        );
        doc.gateway.worker_cpus = Some(vec![1023]);
        let problems = check_host(&doc).unwrap_err().0;
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].field, "gateway.worker_cpus");
        assert_eq!(
            problems[0].message,
            format!(
                "CPU 1023 is not one this process may run on (it may run on {}); name CPUs \
                 from that set, or widen it (taskset, systemd CPUAffinity=)",
                cpu_list(allowed)
            )
        );
    }

    #[test]
    fn a_fleet_member_needs_no_gip_yet_but_its_ingress_interface() {
        let gip_elsewhere = "[gateway]\naddress = \"203.0.113.77\"\n";
        check_host_as(
            &parse_toml(&format!("{gip_elsewhere}ingress_interface = \"lo\"")).unwrap(),
            true,
        )
        .unwrap();
        let unnamed = check_host_as(&parse_toml(gip_elsewhere).unwrap(), true)
            .unwrap_err()
            .to_string();
        assert!(
            unnamed.contains("gateway.ingress_interface") && unnamed.contains("fleet mode"),
            "{unnamed}"
        );
        assert!(
            !unnamed.contains("not an address of this host"),
            "{unnamed}"
        );
        let outside = check_host(&parse_toml(gip_elsewhere).unwrap()).unwrap_err();
        assert!(outside.to_string().contains("not an address of this host"));
    }

    #[test]
    fn loopback_is_local_and_a_documentation_address_is_not() {
        let ok =
            parse_toml("[gateway]\naddress = \"127.0.0.1\"\negress_interface = \"lo\"").unwrap();
        check_host(&ok).unwrap();
        let bad = parse_toml("[gateway]\naddress = \"203.0.113.77\"\negress_interface = \"nope0\"")
            .unwrap();
        let msg = check_host(&bad).unwrap_err().to_string();
        assert!(
            msg.contains("gateway.address: 203.0.113.77 is not an address of this host"),
            "{msg}"
        );
        assert!(
            msg.contains("gateway.egress_interface: no interface named \"nope0\""),
            "{msg}"
        );
    }

    #[test]
    fn loopback_has_one_receive_queue_and_more_xdp_workers_are_refused() {
        assert_eq!(rx_queue_count("lo").unwrap(), 1);
        assert!(rx_queue_count("nope0").is_err());
        let doc = |io: &str, workers: u32| {
            parse_toml(&format!(
                "[gateway]\naddress = \"127.0.0.1\"\nio = \"{io}\"\nworkers = {workers}"
            ))
            .unwrap()
        };
        assert_eq!(ingress_interface(&doc("xdp", 1)).as_deref(), Some("lo"));
        check_host(&doc("xdp", 1)).unwrap();
        for io in ["xdp", "xdp-generic"] {
            let msg = check_host(&doc(io, 2)).unwrap_err().to_string();
            assert!(
                msg.contains(
                    "gateway.workers: 2 workers, but the ingress interface lo has 1 receive queue:"
                ),
                "{msg}"
            );
        }
        // The TPACKET path spreads one queue over workers; auto decides at start.
        check_host(&doc("packet", 2)).unwrap();
        check_host(&doc("auto", 2)).unwrap();
    }
}
