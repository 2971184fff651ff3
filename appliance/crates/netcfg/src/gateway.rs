//! The gateway role (LD-OUT, `tungate net`): what the configuration [`Document`] asks of the
//! kernel.
//!
//! In `kernel` decap mode: one tunnel device per peer, `tg-<peer name>`, local GIP, remote
//! RIP, up, of the peer's `tunnel` type — `ipip`; `ipip` with `encap gue|fou encap-sport
//! auto encap-dport PORT` plus the fou/gue receive port (`ip fou add port PORT gue|ipproto
//! 4`, one per port however many peers share it); `gre`, with `key` when the peer has one
//! — or, for IPv6, `ip6tnl` for an IPv6 peer (mode ip6ip6, ipip6 — 4in6 — or any, as its
//! VIPs' families need) and `sit` for an IPv4 `ipip` peer with IPv6 VIPs (6in4; mode any
//! with IPv4 VIPs beside) — with the MTU of the device towards the peer less the type's
//! overhead (IPIP 20, FOU 28, GUE 32, GRE 24 or 28 with a key, ip6tnl 48, sit 20); on
//! each, `forwarding=0` (the kernel drops what arrives instead of forwarding it; the data
//! path reads the packets with AF_PACKET before that) and `rp_filter=0` (the replies' inner
//! sources are VIPs that are not routed through the tunnel; the effective value is the
//! larger of this and `conf.all.rp_filter`, which is left as the operator set it). IPv6
//! has no such per-device forwarding switch: every device IPv6 can come out of (ip6tnl
//! but ipip6, sit, gre) is listed in the IPv6 forwarding guard, an nftables table that
//! drops in prerouting what arrives on them (`kernel::guard`). In
//! `userspace` mode the gateway needs no kernel objects (the data path owns its nftables
//! rule). The global `ip_forward` is never touched.
//!
//! In fleet mode (`tungate run --fleet NAME`, `tungate net plan --fleet NAME`) every gateway
//! of the fleet holds the shared GIP as `GIP/32` on `lo` (the router reaches each gateway by
//! its own unicast address), and `arp_ignore=1`, `arp_announce=2` on `all` keep the host from
//! answering ARP for it or using it as an ARP source on a shared segment, as LVS-DR real
//! servers do for a VIP.

use std::collections::HashMap;
use std::net::IpAddr;

use rtnetlink::Handle;

use crate::error::NetError;
use crate::kernel::{links, routes};
use crate::model::{
    DesiredState, GuardSpec, InnerFamilies, Item, Role, SysctlSpec, TunnelEncap, TunnelSpec,
};
use tungate_config::{DecapMode, Document, TunnelKind};

/// The tunnel device a peer's replies arrive on with `kernel` decap: an IPv6 peer's is an
/// `ip6tnl` device in the mode of its VIPs' families (with `encap gue|fou` for those
/// tunnel types; a fou peer's one family, IPv6 when it has no VIPs) or, for `gre`, an
/// `ip6gre` device; an IPv4 `ipip` peer with IPv6 VIPs gets a `sit` device (6in4, `mode
/// any` when it has IPv4 VIPs too); otherwise the device of its `tunnel` type.
pub(crate) fn device_encap(peer: &tungate_config::Peer) -> TunnelEncap {
    let inner = InnerFamilies::of(&peer.vips);
    if peer.address.is_ipv6() {
        let port = peer.udp_port().unwrap_or(0);
        match peer.tunnel {
            TunnelKind::Ipip => TunnelEncap::Ip6Tnl { inner },
            TunnelKind::Gre => TunnelEncap::Ip6Gre { key: peer.key },
            TunnelKind::Gue => TunnelEncap::Ip6Gue { port, inner },
            TunnelKind::Fou => TunnelEncap::Ip6Fou {
                port,
                inner: match inner {
                    InnerFamilies::V4 => InnerFamilies::V4,
                    _ => InnerFamilies::V6,
                },
            },
        }
    } else if peer.tunnel == TunnelKind::Ipip && inner.has_v6() && !peer.vips.is_empty() {
        TunnelEncap::Sit { inner }
    } else {
        TunnelEncap::of(peer.tunnel, peer.udp_port(), peer.key)
    }
}

/// The desired state of the gateway. `mtu_toward(rip)` gives the MTU of the device the
/// kernel would use to reach a peer (`None`: unknown, the kernel's choice is kept).
pub(crate) fn desired(doc: &Document, mtu_toward: impl Fn(IpAddr) -> Option<u32>) -> DesiredState {
    let mut items = Vec::new();
    if doc.gateway.decap == DecapMode::Kernel {
        let guarded: Vec<String> = doc
            .peers
            .iter()
            .filter(|peer| device_encap(peer).yields_ipv6())
            .map(|peer| peer.tunnel_device())
            .collect();
        if !guarded.is_empty() {
            items.push(Item::Guard(GuardSpec { devices: guarded }));
        }
        for peer in &doc.peers {
            if let Some(port) = device_encap(peer).receive_port() {
                items.push(Item::FouPort(port));
            }
        }
        // Validation gives every peer a gateway address of its family.
        for peer in &doc.peers {
            let Some(local) = doc.gateway.address_for(peer.address) else {
                continue;
            };
            let name = peer.tunnel_device();
            let encap = device_encap(peer);
            items.push(Item::Tunnel(TunnelSpec {
                name: name.clone(),
                encap,
                local,
                remote: peer.address,
                mtu: mtu_toward(peer.address).map(|m| m.saturating_sub(encap.overhead())),
                up: true,
            }));
            items.push(Item::Sysctl(SysctlSpec::ipv4_conf(
                &name,
                "forwarding",
                "0",
            )));
            items.push(Item::Sysctl(SysctlSpec::ipv4_conf(&name, "rp_filter", "0")));
        }
    }
    DesiredState {
        role: Role::Gateway,
        items,
    }
}

/// The device a fleet gateway holds the shared GIP on.
pub(crate) const FLEET_GIP_DEVICE: &str = "lo";

/// What fleet mode adds to the gateway's desired state: GIP/32 on `lo`, never answered or
/// announced over ARP. (Fleet mode shares the IPv4 GIP only; an IPv6 `address6` is not put
/// on `lo`.)
pub(crate) fn fleet_items(doc: &Document) -> Vec<Item> {
    let Some(address) = doc.gateway.address else {
        return Vec::new();
    };
    vec![
        Item::Address(crate::model::AddressSpec {
            device: FLEET_GIP_DEVICE.into(),
            address: address.into(),
            prefix: 32,
        }),
        Item::Sysctl(SysctlSpec::ipv4_conf("all", "arp_ignore", "1")),
        Item::Sysctl(SysctlSpec::ipv4_conf("all", "arp_announce", "2")),
    ]
}

/// The MTU of the device towards each peer, asked of the kernel.
pub(crate) async fn peer_device_mtus(
    handle: &Handle,
    doc: &Document,
) -> Result<HashMap<IpAddr, u32>, NetError> {
    let mut out = HashMap::new();
    if doc.gateway.decap != DecapMode::Kernel {
        return Ok(out);
    }
    let all = links::list(handle).await?;
    for peer in &doc.peers {
        let address = peer.address;
        if let Some(index) = routes::output_interface_toward(handle, address).await
            && let Some(mtu) = all.iter().find(|l| l.index == index).and_then(|l| l.mtu)
        {
            out.insert(address, mtu);
        }
    }
    Ok(out)
}

/// The desired state of the gateway, with MTUs read from the kernel.
pub(crate) async fn desired_from_kernel(
    handle: &Handle,
    doc: &Document,
) -> Result<DesiredState, NetError> {
    let mtus = peer_device_mtus(handle, doc).await?;
    Ok(desired(doc, |rip| mtus.get(&rip).copied()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The planned items but the sysctls, as `net plan` prints them.
    fn lines_without_sysctls(state: &DesiredState) -> Vec<String> {
        state
            .items
            .iter()
            .filter(|i| !matches!(i, Item::Sysctl(_)))
            .map(|i| i.to_string())
            .collect()
    }
    use std::net::Ipv4Addr;
    use tungate_config::parse_toml;

    const DOC: &str = r#"
        [gateway]
        address = "10.0.0.1"
        decap = "kernel"
        [[peers]]
        name = "rs1"
        address = "10.0.1.2"
        [[peers]]
        name = "rs2"
        address = "10.0.1.3"
    "#;

    #[test]
    fn fleet_mode_holds_gip_on_lo_without_arp() {
        let doc = parse_toml("[gateway]\naddress = \"10.0.0.1\"\n").unwrap();
        let lines: Vec<String> = fleet_items(&doc).iter().map(|i| i.to_string()).collect();
        assert_eq!(
            lines,
            [
                "address 10.0.0.1/32 dev lo",
                "sysctl net.ipv4.conf.all.arp_ignore = 1",
                "sysctl net.ipv4.conf.all.arp_announce = 2",
            ]
        );
    }

    #[test]
    fn kernel_mode_wants_one_quiet_tunnel_per_peer() {
        let doc = parse_toml(DOC).unwrap();
        let state = desired(&doc, |rip| {
            (rip == IpAddr::V4(Ipv4Addr::new(10, 0, 1, 2))).then_some(1500)
        });
        let lines: Vec<String> = state.items.iter().map(|i| i.to_string()).collect();
        assert_eq!(
            lines,
            [
                "link tg-rs1 ipip local 10.0.0.1 remote 10.0.1.2 mtu 1480 up",
                "sysctl net.ipv4.conf.tg-rs1.forwarding = 0",
                "sysctl net.ipv4.conf.tg-rs1.rp_filter = 0",
                "link tg-rs2 ipip local 10.0.0.1 remote 10.0.1.3 up",
                "sysctl net.ipv4.conf.tg-rs2.forwarding = 0",
                "sysctl net.ipv4.conf.tg-rs2.rp_filter = 0",
            ]
        );
        assert_eq!(state.tunnel_names(), ["tg-rs1", "tg-rs2"]);
    }

    #[test]
    fn each_tunnel_type_gets_its_device_its_overhead_and_one_receive_port_per_port() {
        let doc = parse_toml(
            r#"
            [gateway]
            address = "10.0.0.1"
            decap = "kernel"
            [[peers]]
            name = "g1"
            address = "10.0.1.2"
            tunnel = "gue"
            [[peers]]
            name = "g2"
            address = "10.0.1.3"
            tunnel = "gue"
            [[peers]]
            name = "f1"
            address = "10.0.1.4"
            tunnel = "fou"
            port = 5555
            [[peers]]
            name = "r1"
            address = "10.0.1.5"
            tunnel = "gre"
            [[peers]]
            name = "r2"
            address = "10.0.1.6"
            tunnel = "gre"
            key = 7
            "#,
        )
        .unwrap();
        let state = desired(&doc, |_| Some(1500));
        let lines = lines_without_sysctls(&state);
        assert_eq!(
            lines,
            [
                // GRE names its inner protocol: an IPv6 packet can come out of any gre device.
                "nft table ip6 tungate_guard drop ipv6 arriving on tg-r1,tg-r2 in prerouting",
                "fou port 6080 gue",
                "fou port 6080 gue",
                "fou port 5555 ipproto 4",
                "link tg-g1 ipip encap gue encap-sport auto encap-dport 6080 local 10.0.0.1 \
                 remote 10.0.1.2 mtu 1468 up",
                "link tg-g2 ipip encap gue encap-sport auto encap-dport 6080 local 10.0.0.1 \
                 remote 10.0.1.3 mtu 1468 up",
                "link tg-f1 ipip encap fou encap-sport auto encap-dport 5555 local 10.0.0.1 \
                 remote 10.0.1.4 mtu 1472 up",
                "link tg-r1 gre local 10.0.0.1 remote 10.0.1.5 mtu 1476 up",
                "link tg-r2 gre key 7 local 10.0.0.1 remote 10.0.1.6 mtu 1472 up",
            ]
        );
        // Two peers on one port share one receive port: the plan dedups by key.
        let plan = crate::plan::diff(&state, &[]).unwrap();
        let ports = plan
            .changes
            .iter()
            .filter(|c| matches!(c, crate::plan::Change::FouPort(_)))
            .count();
        assert_eq!(ports, 2);
    }

    #[test]
    fn ipv6_gets_ip6tnl_or_sit_devices_in_the_mode_of_the_vips_and_a_guard() {
        let doc = parse_toml(
            r#"
            [gateway]
            address = "10.0.0.1"
            address6 = "2001:db8::1"
            decap = "kernel"
            [[peers]]
            name = "a6"
            address = "2001:db8:1::2"
            vips = ["2001:db8:f::10"]
            [[peers]]
            name = "b6"
            address = "2001:db8:1::3"
            vips = ["192.0.2.10"]
            [[peers]]
            name = "c6"
            address = "2001:db8:1::4"
            vips = ["192.0.2.11", "2001:db8:f::11"]
            [[peers]]
            name = "d4"
            address = "10.0.1.2"
            vips = ["2001:db8:f::12"]
            [[peers]]
            name = "e4"
            address = "10.0.1.3"
            vips = ["192.0.2.12", "2001:db8:f::13"]
            [[peers]]
            name = "f4"
            address = "10.0.1.4"
            vips = ["192.0.2.13"]
            "#,
        )
        .unwrap();
        let state = desired(&doc, |_| Some(1500));
        let lines = lines_without_sysctls(&state);
        assert_eq!(
            lines,
            [
                // Every device IPv6 can come out of, and no other; before any of them.
                "nft table ip6 tungate_guard drop ipv6 arriving on tg-a6,tg-c6,tg-d4,tg-e4 in \
                 prerouting",
                // 48: IPv6 header + the destination options of the encapsulation limit.
                "link tg-a6 ip6tnl mode ip6ip6 local 2001:db8::1 remote 2001:db8:1::2 mtu 1452 up",
                "link tg-b6 ip6tnl mode ipip6 local 2001:db8::1 remote 2001:db8:1::3 mtu 1452 up",
                "link tg-c6 ip6tnl mode any local 2001:db8::1 remote 2001:db8:1::4 mtu 1452 up",
                "link tg-d4 sit mode ip6ip local 10.0.0.1 remote 10.0.1.2 mtu 1480 up",
                "link tg-e4 sit mode any local 10.0.0.1 remote 10.0.1.3 mtu 1480 up",
                "link tg-f4 ipip local 10.0.0.1 remote 10.0.1.4 mtu 1480 up",
            ]
        );
        // The IPv4 switch still covers what comes out as IPv4 (4in6, sit mode any).
        let sysctls: Vec<String> = state
            .items
            .iter()
            .filter(|i| matches!(i, Item::Sysctl(_)))
            .map(|i| i.to_string())
            .collect();
        assert!(sysctls.contains(&"sysctl net.ipv4.conf.tg-b6.forwarding = 0".to_string()));
        // The guard is in place before any tunnel is brought up (stage 2 and after).
        let guard = state
            .items
            .iter()
            .find(|i| matches!(i, Item::Guard(_)))
            .unwrap();
        assert!(guard.stage() < 2);
    }

    #[test]
    fn ipv6_gre_gue_and_fou_peers_get_ip6gre_and_ip6tnl_with_encap_and_ipv6_ports() {
        let doc = parse_toml(
            r#"
            [gateway]
            address = "10.0.0.1"
            address6 = "2001:db8::1"
            decap = "kernel"
            [[peers]]
            name = "r6"
            address = "2001:db8:1::2"
            tunnel = "gre"
            [[peers]]
            name = "k6"
            address = "2001:db8:1::3"
            tunnel = "gre"
            key = 7
            vips = ["192.0.2.10"]
            [[peers]]
            name = "g6"
            address = "2001:db8:1::4"
            tunnel = "gue"
            vips = ["192.0.2.11", "2001:db8:f::11"]
            [[peers]]
            name = "f6"
            address = "2001:db8:1::5"
            tunnel = "fou"
            port = 5555
            vips = ["2001:db8:f::12"]
            [[peers]]
            name = "h6"
            address = "2001:db8:1::6"
            tunnel = "fou"
            port = 5556
            vips = ["192.0.2.13"]
            [[peers]]
            name = "g4"
            address = "10.0.1.2"
            tunnel = "gue"
            "#,
        )
        .unwrap();
        let state = desired(&doc, |_| Some(1500));
        let lines = lines_without_sysctls(&state);
        assert_eq!(
            lines,
            [
                // GRE names any inner protocol; an ip6tnl device with IPv6 VIPs yields IPv6.
                "nft table ip6 tungate_guard drop ipv6 arriving on tg-r6,tg-k6,tg-g6,tg-f6 in \
                 prerouting",
                "fou port 6080 gue -6",
                "fou port 5555 ipproto 41 -6",
                "fou port 5556 ipproto 4 -6",
                "fou port 6080 gue",
                // 40 + 8 (encapsulation limit) + 4 GRE (+ 4 key).
                "link tg-r6 ip6gre encaplimit 4 local 2001:db8::1 remote 2001:db8:1::2 mtu 1448 up",
                "link tg-k6 ip6gre key 7 encaplimit 4 local 2001:db8::1 remote 2001:db8:1::3 \
                 mtu 1444 up",
                // 40 + 8 + UDP 8 + GUE 4; 40 + 8 + UDP 8.
                "link tg-g6 ip6tnl mode any encap gue encap-sport auto encap-dport 6080 \
                 encaplimit 4 local 2001:db8::1 remote 2001:db8:1::4 mtu 1440 up",
                "link tg-f6 ip6tnl mode ip6ip6 encap fou encap-sport auto encap-dport 5555 \
                 encaplimit 4 local 2001:db8::1 remote 2001:db8:1::5 mtu 1444 up",
                "link tg-h6 ip6tnl mode ipip6 encap fou encap-sport auto encap-dport 5556 \
                 encaplimit 4 local 2001:db8::1 remote 2001:db8:1::6 mtu 1444 up",
                "link tg-g4 ipip encap gue encap-sport auto encap-dport 6080 local 10.0.0.1 \
                 remote 10.0.1.2 mtu 1468 up",
            ]
        );
        // The IPv4 and the IPv6 GUE port 6080 are two receive ports.
        let plan = crate::plan::diff(&state, &[]).unwrap();
        let ports = plan
            .changes
            .iter()
            .filter(|c| matches!(c, crate::plan::Change::FouPort(_)))
            .count();
        assert_eq!(ports, 4);
    }

    #[test]
    fn userspace_mode_wants_nothing_from_the_kernel() {
        let doc = parse_toml(&DOC.replace("\"kernel\"", "\"userspace\"")).unwrap();
        assert!(desired(&doc, |_| Some(1500)).items.is_empty());
    }
}
