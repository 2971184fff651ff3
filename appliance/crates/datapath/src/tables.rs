//! The runtime tables the workers consult per packet — the gateway address, the peers by
//! RS address with their counters, the VIPs with the peer that serves them and their
//! counters — built from a
//! validated [`Document`] and published with `arc-swap`.
//!
//! Workers load the current [`Tables`] once per batch; the control side builds a complete
//! new set off the data path and swaps it in with one store, so no packet is ever judged by
//! half a configuration and none is dropped by the change. This module never receives,
//! sends or counts packets.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use rustc_hash::FxBuildHasher;

use super::counters::{Counters, PeerCounters, VipCounters};
use tungate_config::{Document, Peer, TunnelKind};
use tungate_packet::{Directory, Tunnel};

/// Index of a peer in [`Tables::peers`].
pub(crate) type PeerId = u16;
/// Index of a VIP in [`Tables::vips`].
pub(crate) type VipId = u32;

/// One peer (real server).
pub(crate) struct PeerEntry {
    /// The real server's address (RIP), of either family.
    pub(crate) address: IpAddr,
    /// Whether its frames must come from the link-layer source the resolver expects.
    pub(crate) check_source_mac: bool,
    /// Its return tunnel (type, GUE/FOU port, GRE key), judged in `userspace` decap.
    pub(crate) tunnel: Tunnel,
    /// Its counters (shared with every earlier and later table generation).
    pub(crate) counters: Arc<PeerCounters>,
}

/// One VIP and the peers that serve it.
pub(crate) struct VipEntry {
    /// The VIP address, of either family.
    pub(crate) address: IpAddr,
    /// The peers that serve it (several when LVS balances it over several real servers).
    pub(crate) peers: Vec<PeerId>,
    /// Its counters (shared with every earlier and later table generation).
    pub(crate) counters: Arc<VipCounters>,
}

/// One immutable generation of the runtime tables.
pub(crate) struct Tables {
    /// The gateway's IPv4 address (GIP), if it has one.
    pub(crate) gateway: Option<Ipv4Addr>,
    /// The gateway's IPv6 address (GIP6), if it has one.
    pub(crate) gateway6: Option<Ipv6Addr>,
    /// The peers, by [`PeerId`].
    pub(crate) peers: Vec<PeerEntry>,
    /// The served VIPs, by [`VipId`].
    pub(crate) vips: Vec<VipEntry>,
    peer_by_address: HashMap<IpAddr, PeerId, FxBuildHasher>,
    peer_by_device: HashMap<String, PeerId, FxBuildHasher>,
    vip_by_address: HashMap<IpAddr, VipId, FxBuildHasher>,
    /// (VIP, peer) pairs that are allowed: one hash lookup per packet.
    served: HashMap<(IpAddr, PeerId), VipId, FxBuildHasher>,
}

impl Tables {
    /// Builds the tables of a validated document; VIP counters come from `counters` (kept
    /// by address, so a VIP keeps its counts across generations), and the counters of VIPs
    /// this document no longer serves are dropped from `counters`.
    pub(crate) fn build(doc: &Document, counters: &Counters) -> Tables {
        let mut t = Tables {
            gateway: doc.gateway.address,
            gateway6: doc.gateway.address6,
            peers: Vec::with_capacity(doc.peers.len()),
            vips: Vec::new(),
            peer_by_address: HashMap::default(),
            peer_by_device: HashMap::default(),
            vip_by_address: HashMap::default(),
            served: HashMap::default(),
        };
        let named: Vec<(&str, IpAddr)> = doc
            .peers
            .iter()
            .map(|p| (p.name.as_str(), p.address))
            .collect();
        let peer_counters = counters.peers(&named);
        for ((i, peer), peer_counters) in doc.peers.iter().enumerate().zip(peer_counters) {
            let id = PeerId::try_from(i).unwrap_or(PeerId::MAX);
            t.peers.push(PeerEntry {
                address: peer.address,
                check_source_mac: peer.check_source_mac,
                tunnel: peer_tunnel(peer),
                counters: peer_counters,
            });
            t.peer_by_address.insert(peer.address, id);
            t.peer_by_device.insert(peer.tunnel_device(), id);
            for vip in &peer.vips {
                let vid = match t.vip_by_address.get(vip) {
                    Some(&vid) => vid,
                    None => {
                        let vid = VipId::try_from(t.vips.len()).unwrap_or(VipId::MAX);
                        t.vip_by_address.insert(*vip, vid);
                        t.vips.push(VipEntry {
                            address: *vip,
                            peers: Vec::new(),
                            counters: counters.vip(*vip),
                        });
                        vid
                    }
                };
                t.vips[vid as usize].peers.push(id);
                t.served.insert((*vip, id), vid);
            }
        }
        counters.retain_vips(|vip| t.vip_by_address.contains_key(&vip));
        t
    }

    /// The peer whose tunnel device (`kernel` decap mode) is `device`.
    pub(crate) fn peer_by_device(&self, device: &str) -> Option<PeerId> {
        self.peer_by_device.get(device).copied()
    }
}

impl Directory for Tables {
    type Peer = PeerId;
    type Vip = VipId;

    fn gateway(&self) -> Ipv4Addr {
        // An IPv6-only gateway: no IPv4 frame is addressed to 0.0.0.0, so every one is
        // `wrong_gateway`.
        self.gateway.unwrap_or(Ipv4Addr::UNSPECIFIED)
    }

    fn gateway6(&self) -> Option<Ipv6Addr> {
        self.gateway6
    }

    #[inline]
    fn peer_by_address(&self, address: IpAddr) -> Option<PeerId> {
        self.peer_by_address.get(&address).copied()
    }

    #[inline]
    fn vip_served_by(&self, peer: PeerId, inner_source: IpAddr) -> Option<VipId> {
        self.served.get(&(inner_source, peer)).copied()
    }

    #[inline]
    fn tunnel(&self, peer: PeerId) -> Tunnel {
        self.peers
            .get(usize::from(peer))
            .map_or(Tunnel::Ipip, |p| p.tunnel)
    }
}

/// The return tunnel of a configured peer, as the packet checks and the XDP program take it.
pub fn peer_tunnel(peer: &Peer) -> Tunnel {
    match peer.tunnel {
        TunnelKind::Ipip => Tunnel::Ipip,
        TunnelKind::Gue => Tunnel::Gue {
            port: peer.udp_port().unwrap_or(tungate_config::DEFAULT_GUE_PORT),
        },
        // Validation requires fou's port; 0 (no port) matches no packet.
        TunnelKind::Fou => Tunnel::Fou {
            port: peer.udp_port().unwrap_or(0),
        },
        TunnelKind::Gre => Tunnel::Gre { key: peer.key },
    }
}

/// The distinct GUE/FOU destination ports of `doc`'s peers, ascending: the UDP the ingress
/// taps take (and the fence drops) besides IPIP and GRE.
pub fn tunnel_udp_ports(doc: &Document) -> Vec<u16> {
    let mut ports: Vec<u16> = doc.peers.iter().filter_map(Peer::udp_port).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// Whether going from `old` to `new` restarts the workers rather than only swapping tables
/// (peers and VIPs): the `[gateway]` section changed, or the set of GUE/FOU ports did (the
/// receive sockets' BPF filter names them).
pub(crate) fn needs_restart(old: &Document, new: &Document) -> bool {
    old.gateway != new.gateway || tunnel_udp_ports(old) != tunnel_udp_ports(new)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tungate_config::parse_toml;

    #[test]
    fn peers_and_vips_are_found_and_vip_counters_persist_across_builds() {
        let doc = parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\n\
             [[peers]]\nname = \"a\"\naddress = \"10.0.1.2\"\nvips = [\"192.0.2.10\"]\n\
             [[peers]]\nname = \"b\"\naddress = \"10.0.1.3\"\nvips = [\"192.0.2.11\", \"192.0.2.12\"]",
        )
        .unwrap();
        let counters = Counters::new(1);
        let t = Tables::build(&doc, &counters);
        let a = t.peer_by_address("10.0.1.2".parse().unwrap()).unwrap();
        let b = t.peer_by_address("10.0.1.3".parse().unwrap()).unwrap();
        assert_eq!(t.peer_by_device("tg-b"), Some(b));
        assert_eq!(t.peer_by_device("tg-x"), None);
        assert!(t.peer_by_address("10.0.1.4".parse().unwrap()).is_none());
        let v = t.vip_served_by(b, "192.0.2.12".parse().unwrap()).unwrap();
        assert_eq!(t.vips[v as usize].address, Ipv4Addr::new(192, 0, 2, 12));
        assert!(t.vip_served_by(a, "192.0.2.12".parse().unwrap()).is_none());
        t.vips[v as usize].counters.worker(0).packets.add(9);

        let t2 = Tables::build(&doc, &counters);
        let v2 = t2.vip_served_by(b, "192.0.2.12".parse().unwrap()).unwrap();
        assert_eq!(t2.vips[v2 as usize].counters.worker(0).packets.get(), 9);

        // Back to one VIP: the other two leave the counters.
        let one = parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\n\
             [[peers]]\nname = \"b\"\naddress = \"10.0.1.3\"\nvips = [\"192.0.2.12\"]",
        )
        .unwrap();
        Tables::build(&one, &counters);
        let left: Vec<_> = counters.snapshot().vips.iter().map(|v| v.vip).collect();
        assert_eq!(left, vec![Ipv4Addr::new(192, 0, 2, 12)]);
        assert_eq!(counters.snapshot().vips[0].packets, 9);

        // A VIP balanced over two real servers is served by both, counted once.
        let shared = parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\n\
             [[peers]]\nname = \"a\"\naddress = \"10.0.1.2\"\nvips = [\"192.0.2.10\"]\n\
             [[peers]]\nname = \"b\"\naddress = \"10.0.1.3\"\nvips = [\"192.0.2.10\"]\n\
             [[vips]]\naddress = \"192.0.2.10\"\nshared = true",
        )
        .unwrap();
        let t3 = Tables::build(&shared, &counters);
        let vip = "192.0.2.10".parse().unwrap();
        assert_eq!(t3.vips.len(), 1);
        assert_eq!(t3.vip_served_by(0, vip), t3.vip_served_by(1, vip));
        assert!(t3.vip_served_by(0, vip).is_some());
        assert_eq!(t3.vips[0].peers, vec![0, 1]);

        let mut moved = doc.clone();
        moved.peers[0].vips.clear();
        assert!(!needs_restart(&doc, &moved));
        moved.gateway.workers = 2;
        assert!(needs_restart(&doc, &moved));
    }

    #[test]
    fn each_peer_has_its_tunnel_and_a_new_udp_port_restarts() {
        let doc = parse_toml(
            "[gateway]\naddress = \"10.0.0.1\"\n\
             [[peers]]\nname = \"a\"\naddress = \"10.0.1.2\"\n\
             [[peers]]\nname = \"b\"\naddress = \"10.0.1.3\"\ntunnel = \"gue\"\n\
             [[peers]]\nname = \"c\"\naddress = \"10.0.1.4\"\ntunnel = \"fou\"\nport = 5555\n\
             [[peers]]\nname = \"d\"\naddress = \"10.0.1.5\"\ntunnel = \"gre\"\nkey = 7\n",
        )
        .unwrap();
        let t = Tables::build(&doc, &Counters::new(1));
        let tunnels: Vec<Tunnel> = (0..4).map(|p| t.tunnel(p)).collect();
        assert_eq!(
            tunnels,
            [
                Tunnel::Ipip,
                Tunnel::Gue { port: 6080 },
                Tunnel::Fou { port: 5555 },
                Tunnel::Gre { key: Some(7) },
            ]
        );
        assert_eq!(tunnel_udp_ports(&doc), [5555, 6080]);
        let mut keyed = doc.clone();
        keyed.peers[3].key = Some(8);
        assert!(!needs_restart(&doc, &keyed), "a key is in the tables");
        let mut moved = doc.clone();
        moved.peers[2].port = Some(5556);
        assert!(
            needs_restart(&doc, &moved),
            "the receive filter names the ports"
        );
    }
}
