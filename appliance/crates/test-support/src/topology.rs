//! The standard test topology: the `rs` / `gw` / `client` namespaces joined by veth pairs,
//! its addresses and MACs, and the veth helper. It only builds inside namespaces it
//! created.

use std::net::Ipv4Addr;

use crate::netns::Netns;

/// Joins `a:a_if` and `b:b_if` with a veth pair, sets the MACs and brings both up.
pub fn veth(a: &Netns, a_if: &str, a_mac: &str, b: &Netns, b_if: &str, b_mac: &str) {
    a.ip(&[
        "link", "add", a_if, "address", a_mac, "type", "veth", "peer", "name", b_if, "address",
        b_mac, "netns", &b.name,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// MAC of the real server's interface `r0`.
pub const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 2];
/// MAC of the gateway's interface `g0` (towards the real server).
pub const GW_RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 1, 1];
/// MAC of the gateway's interface `g1` (towards the client).
pub const GW_CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 1];
/// MAC of the client's interface `c0`.
pub const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 7];
/// The gateway address (on `g0`).
pub const GIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 1);
/// The real server's address (RIP, on `r0`).
pub const RIP: Ipv4Addr = Ipv4Addr::new(10, 0, 1, 2);
/// The client's address (CIP, on `c0`).
pub const CIP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 7);
/// The gateway's address towards the client (on `g1`).
pub const GW_CLIENT_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
/// The VIP served by peer `rs1`.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);

fn mac_text(m: [u8; 6]) -> String {
    m.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The three namespaces: `rs` (r0, RIP/24) — `gw` (g0 GIP/24; g1 GW_CLIENT_IP/24) —
/// `client` (c0, CIP/24).
pub struct Topology {
    /// The simulated real server.
    pub rs: Netns,
    /// Where tungate runs.
    pub gw: Netns,
    /// The client.
    pub client: Netns,
}

impl Topology {
    /// Builds the topology.
    #[expect(
        clippy::new_without_default,
        reason = "it creates namespaces and links: not a default value"
    )]
    pub fn new() -> Topology {
        let t = Topology {
            rs: Netns::new("rs"),
            gw: Netns::new("gw"),
            client: Netns::new("cl"),
        };
        veth(
            &t.gw,
            "g0",
            &mac_text(GW_RS_MAC),
            &t.rs,
            "r0",
            &mac_text(RS_MAC),
        );
        veth(
            &t.gw,
            "g1",
            &mac_text(GW_CLIENT_MAC),
            &t.client,
            "c0",
            &mac_text(CLIENT_MAC),
        );
        t.gw.ip(&["addr", "add", &format!("{GIP}/24"), "dev", "g0"]);
        t.gw.ip(&["addr", "add", &format!("{GW_CLIENT_IP}/24"), "dev", "g1"]);
        t.rs.ip(&["addr", "add", &format!("{RIP}/24"), "dev", "r0"]);
        t.client
            .ip(&["addr", "add", &format!("{CIP}/24"), "dev", "c0"]);
        t
    }

    /// The usual configuration: peer `rs1` (RIP) serving VIP, plus `extra` TOML.
    pub fn config(&self, extra: &str) -> String {
        format!(
            "[gateway]\naddress = \"{GIP}\"\n{extra}\n\
             [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [\"{VIP}\"]\n"
        )
    }
}
