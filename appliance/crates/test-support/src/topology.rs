//! The standard test topology: the `rs` / `gw` / `client` namespaces joined by veth pairs,
//! its addresses and MACs, and the veth helper. It only builds inside namespaces it
//! created.

use std::net::Ipv4Addr;

use crate::netns::Netns;

/// Joins `a:a_if` and `b:b_if` with a veth pair, sets the MACs and brings both up.
pub fn veth(a: &Netns, a_if: &str, a_mac: &str, b: &Netns, b_if: &str, b_mac: &str) {
    veth_with_queues(a, a_if, a_mac, b, b_if, b_mac, 1);
}

/// Like [`veth`], each end with `queues` receive and transmit queues (a veth's queue is
/// chosen by the sending CPU).
pub fn veth_with_queues(
    a: &Netns,
    a_if: &str,
    a_mac: &str,
    b: &Netns,
    b_if: &str,
    b_mac: &str,
    queues: usize,
) {
    let q = queues.to_string();
    a.ip(&[
        "link",
        "add",
        a_if,
        "address",
        a_mac,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "type",
        "veth",
        "peer",
        "name",
        b_if,
        "address",
        b_mac,
        "numtxqueues",
        &q,
        "numrxqueues",
        &q,
        "netns",
        &b.name,
    ]);
    a.ip(&["link", "set", a_if, "up"]);
    b.ip(&["link", "set", b_if, "up"]);
}

/// The gateway's I/O path in a test (`gateway.io`): every forwarding test runs on both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoPath {
    /// `io = "packet"`: the AF_PACKET rings.
    Packet,
    /// `io = "xdp"`: native XDP on the ingress veth, AF_XDP sockets.
    Xdp,
}

impl IoPath {
    /// The value of `gateway.io`.
    pub fn name(self) -> &'static str {
        match self {
            IoPath::Packet => "packet",
            IoPath::Xdp => "xdp",
        }
    }
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
    /// The `gateway.io` that [`Self::config`] writes (none: the default).
    pub io: Option<IoPath>,
}

impl Topology {
    /// Builds the topology.
    #[expect(
        clippy::new_without_default,
        reason = "it creates namespaces and links: not a default value"
    )]
    pub fn new() -> Topology {
        Self::build(None, 1)
    }

    /// The topology with `io` in the configuration it writes.
    pub fn on(io: IoPath) -> Topology {
        Self::build(Some(io), 1)
    }

    /// Like [`Self::on`], the gateway's veths with `queues` queues each (AF_XDP needs one
    /// worker per receive queue).
    pub fn on_with_queues(io: IoPath, queues: usize) -> Topology {
        Self::build(Some(io), queues)
    }

    fn build(io: Option<IoPath>, queues: usize) -> Topology {
        let t = Topology {
            rs: Netns::new("rs"),
            gw: Netns::new("gw"),
            client: Netns::new("cl"),
            io,
        };
        veth_with_queues(
            &t.gw,
            "g0",
            &mac_text(GW_RS_MAC),
            &t.rs,
            "r0",
            &mac_text(RS_MAC),
            queues,
        );
        veth_with_queues(
            &t.gw,
            "g1",
            &mac_text(GW_CLIENT_MAC),
            &t.client,
            "c0",
            &mac_text(CLIENT_MAC),
            queues,
        );
        t.gw.ip(&["addr", "add", &format!("{GIP}/24"), "dev", "g0"]);
        t.gw.ip(&["addr", "add", &format!("{GW_CLIENT_IP}/24"), "dev", "g1"]);
        t.rs.ip(&["addr", "add", &format!("{RIP}/24"), "dev", "r0"]);
        t.client
            .ip(&["addr", "add", &format!("{CIP}/24"), "dev", "c0"]);
        t
    }

    /// The usual configuration: peer `rs1` (RIP) serving VIP, plus `extra` TOML (in
    /// `[gateway]`, after its `io` when the topology has one).
    pub fn config(&self, extra: &str) -> String {
        let io = self
            .io
            .map(|io| format!("io = \"{}\"\n", io.name()))
            .unwrap_or_default();
        format!(
            "[gateway]\naddress = \"{GIP}\"\n{io}{extra}\n\
             [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [\"{VIP}\"]\n"
        )
    }

    /// Panics if the gateway namespace holds any of tungate's nftables tables or an XDP
    /// program on `g0`: what a refused start must not leave behind.
    pub fn assert_gateway_left_nothing(&self) {
        let listed = self.gw.exec("nft", &["list", "tables"]);
        let tables = String::from_utf8_lossy(&listed.stdout);
        assert!(
            !tables.contains("tungate"),
            "no fence left behind: {tables}"
        );
        assert!(
            !self
                .gw
                .ip(&["-d", "link", "show", "dev", "g0"])
                .contains("prog/xdp"),
            "no XDP program left behind"
        );
    }

    /// Sends `n` IPIP replies (UDP VIP → CIP, 64 B) from the real server to GIP and
    /// returns how many reach the client within 400 ms.
    pub fn replies_reaching_the_client(&self, n: usize) -> usize {
        let rs = crate::FrameSocket::open(&self.rs, "r0");
        let client = crate::FrameSocket::open(&self.client, "c0");
        let frame = crate::packets::ethernet(
            GW_RS_MAC,
            RS_MAC,
            &crate::packets::ipip(RIP, GIP, &crate::packets::udp(VIP, CIP, 64, 64)),
        );
        for _ in 0..n {
            rs.send(&frame);
        }
        client
            .receive_for(std::time::Duration::from_millis(400), |f| {
                f.len() >= 34 && f[12..14] == [8, 0] && f[30..34] == CIP.octets()
            })
            .len()
    }
}
