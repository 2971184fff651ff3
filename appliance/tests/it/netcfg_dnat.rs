//! The RS role's DNAT with real traffic, inside namespaces: a client connects to VIP:80, the
//! real server (set up by `tungate rs apply --dnat`) forwards it to a container listening on
//! 10.88.0.2:8080, and the container's SYN-ACK must leave through the reply device — marked
//! by tungate's nftables rule, routed by its fwmark rule and table, and un-NATed back to the
//! VIP by conntrack — so the gateway side sees VIP:80 → client.
//!
//! Namespaces: client (10.1.0.2) —vin— rs —vc— container (10.88.0.2); rs —vgw— gw, where a
//! packet socket watches for the reply. A veth stands in for the reply tunnel (this kernel
//! has no ipip).

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, recv, setsockopt, socket, sockopt,
};
use nix::sys::time::TimeVal;
use tungate_test_support::Netns;
use tungate_test_support::netns::RS_STANDIN_FLAGS;

const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 1, 0, 2);
const CONTAINER: Ipv4Addr = Ipv4Addr::new(10, 88, 0, 2);

/// The MTU of the stand-in reply device: the SYN-ACK's MSS must be clamped to it less 40.
const REPLY_MTU: u16 = 1400;

/// The value of the MSS option of a TCP segment (`tcp`: from the TCP header on), if any.
fn mss_option(tcp: &[u8]) -> Option<u16> {
    let header_len = usize::from(tcp.get(12)? >> 4) * 4;
    let mut options = tcp.get(20..header_len)?;
    while let [kind, rest @ ..] = options {
        match kind {
            0 => return None,
            1 => options = rest,
            _ => {
                let len = usize::from(*rest.first()?);
                if *kind == 2 && len == 4 {
                    return Some(u16::from_be_bytes([*rest.get(1)?, *rest.get(2)?]));
                }
                options = options.get(len.max(2)..)?;
            }
        }
    }
    None
}

/// Whether `packet` (an IPv4 packet) is a TCP SYN-ACK from VIP:80 to the client.
fn is_vip_syn_ack(packet: &[u8]) -> bool {
    if packet.len() < 40 || packet[0] >> 4 != 4 || packet[9] != 6 {
        return false;
    }
    let ihl = usize::from(packet[0] & 0x0f) * 4;
    let Some(tcp) = packet.get(ihl..ihl + 14) else {
        return false;
    };
    packet[12..16] == VIP.octets()
        && packet[16..20] == CLIENT.octets()
        && u16::from_be_bytes([tcp[0], tcp[1]]) == 80
        && tcp[13] & 0x12 == 0x12
}

#[test]
fn a_containers_reply_leaves_through_the_reply_device_as_the_vip() {
    let rs = Netns::new("drs");
    let client = Netns::new("dcl");
    let container = Netns::new("dct");
    let gw = Netns::new("dgw");

    rs.ip(&[
        "link",
        "add",
        "vin",
        "type",
        "veth",
        "peer",
        "name",
        "c0",
        "netns",
        &client.name,
    ]);
    rs.ip(&[
        "link",
        "add",
        "vc",
        "type",
        "veth",
        "peer",
        "name",
        "k0",
        "netns",
        &container.name,
    ]);
    rs.ip(&[
        "link", "add", "vgw", "type", "veth", "peer", "name", "g0", "netns", &gw.name,
    ]);
    rs.ip(&["address", "add", "10.1.0.1/24", "dev", "vin"]);
    rs.ip(&["address", "add", "10.88.0.1/24", "dev", "vc"]);
    rs.ip(&["address", "add", "10.2.0.1/24", "dev", "vgw"]);
    rs.ip(&["link", "set", "vgw", "mtu", &REPLY_MTU.to_string()]);
    rs.ip(&["link", "set", "vc", "up"]);
    client.ip(&["address", "add", "10.1.0.2/24", "dev", "c0"]);
    client.ip(&["link", "set", "c0", "up"]);
    client.ip(&["route", "add", "192.0.2.0/24", "via", "10.1.0.1"]);
    container.ip(&["address", "add", "10.88.0.2/24", "dev", "k0"]);
    container.ip(&["link", "set", "k0", "up"]);
    container.ip(&["route", "add", "default", "via", "10.88.0.1"]);
    gw.ip(&["address", "add", "10.2.0.2/24", "dev", "g0"]);
    gw.ip(&["link", "set", "g0", "up"]);
    // The reply device is a plain veth here: tell the RS which MAC is "the other end".
    let g0 = gw.ip_json(&["link", "show", "g0"]);
    let g0_mac = g0[0]["address"].as_str().unwrap().to_owned();

    let state = rs.path("state.json").display().to_string();
    let mut args = vec![
        "rs",
        "apply",
        "--gateway",
        "10.2.0.2",
        "--address",
        "10.2.0.1",
        "--vip",
        "192.0.2.10",
        "--dnat",
        "192.0.2.10:80=10.88.0.2:8080",
        "--state-file",
        &state,
    ];
    args.extend(RS_STANDIN_FLAGS);
    let apply = rs.tungate(&args);
    assert_eq!(apply.code, 0, "{}\n{}", apply.stdout, apply.stderr);
    rs.ip(&[
        "neigh",
        "replace",
        "10.1.0.2",
        "lladdr",
        &g0_mac,
        "dev",
        "vgw",
        "nud",
        "permanent",
    ]);

    // The container listens (the kernel answers the SYN; no accept needed).
    let (listening_tx, listening_rx) = mpsc::channel();
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let server = container.in_thread(move || {
        let listener = TcpListener::bind(SocketAddrV4::new(CONTAINER, 8080)).expect("bind");
        listening_tx.send(()).unwrap();
        let _ = done_rx.recv_timeout(Duration::from_secs(30));
        drop(listener);
    });
    listening_rx.recv().unwrap();

    // The gateway side watches every packet arriving on its end of the reply device.
    let (watching_tx, watching_rx) = mpsc::channel();
    let watcher = gw.in_thread(move || {
        let fd = socket(
            AddressFamily::Packet,
            SockType::Datagram,
            SockFlag::empty(),
            SockProtocol::EthAll,
        )
        .expect("packet socket");
        setsockopt(&fd, sockopt::ReceiveTimeout, &TimeVal::new(0, 200_000)).unwrap();
        watching_tx.send(()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline {
            if let Ok(n) = recv(
                std::os::fd::AsRawFd::as_raw_fd(&fd),
                &mut buf,
                MsgFlags::empty(),
            ) && is_vip_syn_ack(&buf[..n])
            {
                let ihl = usize::from(buf[0] & 0x0f) * 4;
                return Some(mss_option(&buf[ihl..n]));
            }
        }
        None
    });
    watching_rx.recv().unwrap();

    // The client connects to the VIP; the SYN-ACK goes to the gateway, not back to it.
    let connector = client.in_thread(|| {
        let _ =
            TcpStream::connect_timeout(&SocketAddrV4::new(VIP, 80).into(), Duration::from_secs(3));
    });

    let seen = watcher.join().unwrap();
    let _ = done_tx.send(());
    server.join().unwrap();
    connector.join().unwrap();
    let ruleset = rs.command("nft", &["list", "ruleset"]).stdout;
    let Some(mss) = seen else {
        panic!(
            "no SYN-ACK from 192.0.2.10:80 to 10.1.0.2 reached the gateway side; ruleset:\n{ruleset}"
        );
    };
    // The container's own stack offered 1460 (its link is 1500): tungate's clamp rule
    // brought it down to what fits the reply device.
    assert_eq!(mss, Some(REPLY_MTU - 40), "ruleset:\n{ruleset}");
    assert!(
        ruleset.contains("tungate: clamp the mss of forwarded tcp syn to 1360"),
        "{ruleset}"
    );

    let down = rs.tungate(&["rs", "down", "--state-file", &state]);
    assert_eq!(down.code, 0, "{}", down.stderr);
    let ruleset = rs.command("nft", &["list", "ruleset"]);
    assert_eq!(
        ruleset.code, 0,
        "nft (from the nftables package) runs: {}",
        ruleset.stderr
    );
    assert!(!ruleset.stdout.contains("tungate_rs"), "{}", ruleset.stdout);
    assert_eq!(rs.sysctl("net/ipv4/ip_forward"), "0");
}

#[test]
fn the_mss_option_is_found_among_the_options() {
    let mut tcp = [0u8; 32];
    tcp[12] = 8 << 4; // 32-byte header: 12 bytes of options
    // NOP, NOP, SACK permitted, MSS 1360, end of options.
    tcp[20..32].copy_from_slice(&[1, 1, 4, 2, 2, 4, 0x05, 0x50, 0, 0, 0, 0]);
    assert_eq!(mss_option(&tcp), Some(1360));
    tcp[24] = 30; // an unknown option of the same length instead
    assert_eq!(mss_option(&tcp), None);
    assert_eq!(mss_option(&[0u8; 10]), None);
}

#[test]
fn the_syn_ack_matcher_is_exact() {
    let mut packet = [0u8; 40];
    packet[0] = 0x45;
    packet[9] = 6;
    packet[12..16].copy_from_slice(&VIP.octets());
    packet[16..20].copy_from_slice(&CLIENT.octets());
    packet[20..22].copy_from_slice(&80u16.to_be_bytes());
    packet[33] = 0x12;
    assert!(is_vip_syn_ack(&packet));
    let mut other_port = packet;
    other_port[20..22].copy_from_slice(&8080u16.to_be_bytes());
    assert!(
        !is_vip_syn_ack(&other_port),
        "a reply still from the container port"
    );
    let mut other_source = packet;
    other_source[12..16].copy_from_slice(&CONTAINER.octets());
    assert!(!is_vip_syn_ack(&other_source), "a reply not un-NATed");
}
