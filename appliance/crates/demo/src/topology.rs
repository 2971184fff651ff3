//! The demo's address plan and its three namespaces: `client`, `rs` (the real server) and
//! `gw` (the gateway, holding GIP), joined by veth pairs:
//!
//! ```text
//!   client c0 10.99.1.2 ──── r1 10.99.1.1  rs   (requests: the demo stands in for LD-IN)
//!   client c1 10.99.2.2 ──── g1 10.99.2.1  gw   (replies, forwarded by tungate)
//!       rs r0 10.99.0.2 ──── g0 10.99.0.1  gw   (IPIP RIP -> GIP)
//! ```
//!
//! The clients' addresses (two prefixes) sit on the client's loopback, the VIP on the real
//! server's. It only builds inside namespaces it created: the host's own interfaces, routes,
//! rules and sysctls are never touched. Every namespace is recorded in the cleanup guard
//! the moment it exists.

use std::net::Ipv4Addr;

use super::DemoError;
use super::cleanup::Cleanup;
use super::netns::{self, ip_in};

/// The VIP the real server answers for.
pub(crate) const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 80);
/// The HTTP port on the VIP.
pub(crate) const HTTP_PORT: u16 = 80;
/// The UDP echo port on the VIP.
pub(crate) const ECHO_PORT: u16 = 7;
/// The gateway's address (GIP), on `g0`.
pub(crate) const GIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 1);
/// The real server's address (RIP), on `r0`.
pub(crate) const RIP: Ipv4Addr = Ipv4Addr::new(10, 99, 0, 2);
/// The real server's address towards the client (the stand-in for LD-IN).
pub(crate) const RS_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 1, 1);
/// The gateway's address towards the client.
pub(crate) const GW_CLIENT_SIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 2, 1);
/// The client's address towards the gateway (the replies' next hop).
pub(crate) const CLIENT_GW_SIDE: Ipv4Addr = Ipv4Addr::new(10, 99, 2, 2);
/// The two client prefixes, and the client addresses in each.
pub(crate) const CLIENT_PREFIXES: [(&str, [Ipv4Addr; 2]); 2] = [
    (
        "198.51.100.0/24",
        [
            Ipv4Addr::new(198, 51, 100, 10),
            Ipv4Addr::new(198, 51, 100, 11),
        ],
    ),
    (
        "203.0.113.0/24",
        [
            Ipv4Addr::new(203, 0, 113, 10),
            Ipv4Addr::new(203, 0, 113, 11),
        ],
    ),
];
/// The TUN device on the real server that its replies are routed into.
pub(crate) const TUN_NAME: &str = "tgdemo0";
/// Its MTU: the 1500 of the veth less the 20-byte outer IPv4 header.
pub(crate) const TUN_MTU: u32 = 1480;
/// The real server's reply routing table.
pub(crate) const REPLY_TABLE: u32 = 100;
/// The prefix of every namespace the demo makes (`tgdemo-<pid>-<role>`).
pub(crate) const NAME_PREFIX: &str = "tgdemo-";

/// The namespaces of one demo run.
#[derive(Debug, Clone)]
pub(crate) struct Names {
    /// The client.
    pub client: String,
    /// The real server.
    pub rs: String,
    /// The gateway.
    pub gw: String,
}

impl Names {
    /// The names for the process `pid`.
    pub(crate) fn for_pid(pid: u32) -> Names {
        let name = |role: &str| format!("{NAME_PREFIX}{pid}-{role}");
        Names {
            client: name("client"),
            rs: name("rs"),
            gw: name("gw"),
        }
    }

    /// All three.
    pub(crate) fn all(&self) -> [&str; 3] {
        [&self.client, &self.rs, &self.gw]
    }
}

/// The pid in a demo namespace's name, if it is one.
pub(crate) fn owner_pid(namespace: &str) -> Option<u32> {
    let rest = namespace.strip_prefix(NAME_PREFIX)?;
    let (pid, role) = rest.split_once('-')?;
    // The fleet demo adds `router` and `gw1` ... `gw8`.
    let fleet_gateway = role
        .strip_prefix("gw")
        .and_then(|n| n.parse::<usize>().ok())
        .is_some_and(|n| (1..=crate::bird::MAX_GATEWAYS).contains(&n));
    (matches!(role, "client" | "rs" | "gw" | "router") || fleet_gateway)
        .then(|| pid.parse().ok())
        .flatten()
}

/// Deletes the namespaces of earlier demos whose process is gone (killed with SIGKILL, so
/// its guard never ran); returns their names.
pub(crate) fn remove_stale() -> Result<Vec<String>, DemoError> {
    let mut removed = Vec::new();
    for name in netns::list() {
        let Some(pid) = owner_pid(&name) else {
            continue;
        };
        if std::path::Path::new(&format!("/proc/{pid}")).exists() {
            continue;
        }
        netns::delete(&name)?;
        removed.push(name);
    }
    Ok(removed)
}

/// Joins `a:a_if` and `b:b_if` with a veth pair and brings both ends up.
pub(crate) fn veth(a: &str, a_if: &str, b: &str, b_if: &str) -> Result<(), DemoError> {
    ip_in(
        a,
        &[
            "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ],
    )?;
    ip_in(a, &["link", "set", a_if, "up"])?;
    ip_in(b, &["link", "set", b_if, "up"])
}

pub(crate) fn address(ns: &str, cidr: String, device: &str) -> Result<(), DemoError> {
    ip_in(ns, &["addr", "add", &cidr, "dev", device])
}

/// Builds the namespaces, links, addresses and routes (not yet the real server's reply
/// route, which needs its TUN device: [`route_replies_into_tun`]).
pub(crate) fn build(names: &Names, cleanup: &mut Cleanup) -> Result<(), DemoError> {
    for ns in names.all() {
        netns::add(ns)?;
        cleanup.namespace(ns);
        // Replies arrive from the gateway while the route to the VIP points at the real
        // server (and the real server's replies leave through its TUN): reverse-path
        // filtering would drop both. `default` first, so links made later inherit it.
        for conf in ["default", "all"] {
            netns::sysctl_in(ns, &format!("net/ipv4/conf/{conf}/rp_filter"), "0")?;
        }
    }
    veth(&names.gw, "g0", &names.rs, "r0")?;
    veth(&names.gw, "g1", &names.client, "c1")?;
    veth(&names.rs, "r1", &names.client, "c0")?;
    address(&names.gw, format!("{GIP}/24"), "g0")?;
    address(&names.rs, format!("{RIP}/24"), "r0")?;
    address(&names.gw, format!("{GW_CLIENT_SIDE}/24"), "g1")?;
    address(&names.client, format!("{CLIENT_GW_SIDE}/24"), "c1")?;
    address(&names.rs, format!("{RS_CLIENT_SIDE}/24"), "r1")?;
    address(&names.client, "10.99.1.2/24".into(), "c0")?;
    address(&names.rs, format!("{VIP}/32"), "lo")?;
    for (prefix, clients) in CLIENT_PREFIXES {
        for client in clients {
            address(&names.client, format!("{client}/32"), "lo")?;
        }
        // The gateway forwards the replies to the client over g1.
        ip_in(
            &names.gw,
            &["route", "add", prefix, "via", &CLIENT_GW_SIDE.to_string()],
        )?;
    }
    // Requests go straight to the real server (the demo stands in for LD-IN).
    ip_in(
        &names.client,
        &[
            "route",
            "add",
            &format!("{VIP}/32"),
            "via",
            &RS_CLIENT_SIDE.to_string(),
        ],
    )?;
    Ok(())
}

/// Sends everything the real server answers from the VIP into its TUN device (`rule from
/// VIP table 100`, `default dev tgdemo0 table 100`), as `tungate rs apply` does with tunl1.
pub(crate) fn route_replies_into_tun(rs: &str) -> Result<(), DemoError> {
    let table = REPLY_TABLE.to_string();
    ip_in(
        rs,
        &["link", "set", TUN_NAME, "mtu", &TUN_MTU.to_string(), "up"],
    )?;
    ip_in(
        rs,
        &["route", "add", "default", "dev", TUN_NAME, "table", &table],
    )?;
    ip_in(
        rs,
        &[
            "rule",
            "add",
            "from",
            &VIP.to_string(),
            "lookup",
            &table,
            "priority",
            "1000",
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_pid_and_are_recognised() {
        let names = Names::for_pid(4242);
        assert_eq!(names.gw, "tgdemo-4242-gw");
        for n in names.all() {
            assert_eq!(owner_pid(n), Some(4242), "{n}");
        }
        for fleet in ["tgdemo-77-router", "tgdemo-77-gw1", "tgdemo-77-gw8"] {
            assert_eq!(owner_pid(fleet), Some(77), "{fleet}");
        }
        for other in [
            "tgdemo-x-gw",
            "tgdemo-12-db",
            "tgrs-1-0",
            "tgdemo-12",
            "tgdemo-12-gw9",
            "tgdemo-12-gwx",
        ] {
            assert_eq!(owner_pid(other), None, "{other}");
        }
    }
}
