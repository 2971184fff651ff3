//! `tungate run` beyond userspace forwarding (needs root): bad configurations exit with
//! status 2 and a message naming the field; `kernel` decap mode reads inner packets from
//! `tg-<peer>` devices (TUN devices here: this host has no ipip) through the same checks;
//! and plugin filters (a trivial `BatchFilter`) judge each VIP's packets.

use std::io::Write;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tungate_datapath::Datapath;
use tungate_datapath::counters::Counters;
use tungate_datapath::filter::{BatchFilter, Decision, WorkerFilters};
use tungate_netcfg::TunnelFence;
use tungate_packet::DropReason;
use tungate_test_support::packets::{self, udp, with_ttl_decremented};
use tungate_test_support::process::run_to_end;
use tungate_test_support::topology::{CIP, GIP, RIP, VIP};
use tungate_test_support::wait::until;
use tungate_test_support::{FrameSocket, Netns, Topology, Tungate};

const QUIET: Duration = Duration::from_millis(400);

fn to_client(frame: &[u8]) -> bool {
    frame.len() >= 34 && frame[12..14] == [8, 0] && frame[30..34] == CIP.octets()
}

#[test]
fn bad_configurations_exit_2_naming_the_field() {
    let ns = Netns::new("cf");
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[gateway]\naddress = \"203.0.113.77\"\n",
            "gateway.address: 203.0.113.77 is not an address of this host",
        ),
        (
            "[gateway]\naddress = \"127.0.0.1\"\ningress_interface = \"nope0\"\n",
            "gateway.ingress_interface: no interface named \"nope0\"",
        ),
        (
            "[gateway]\naddress = \"127.0.0.1\"\ncolour = 1\n",
            "unknown field `colour`",
        ),
        (
            "[gateway]\naddress = \"127.0.0.1\"\nworkers = 0\n",
            "gateway.workers: 0 is out of range",
        ),
    ];
    for (i, (text, message)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.toml"));
        std::fs::File::create(&path)
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
        let (status, _, stderr) = run_to_end(&ns, &["run", "--config", path.to_str().unwrap()]);
        assert_eq!(status, 2, "{text}: {stderr}");
        assert!(
            stderr.contains(message),
            "{text}: expected {message:?} in {stderr}"
        );
    }
    let listed = ns.exec("nft", &["list", "tables"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("tungate"));
}

/// Creates TUN device `name` (IFF_TUN | IFF_NO_PI) in `ns`, brings it up, returns its fd.
pub(crate) fn tun_device(ns: &Netns, name: &str) -> OwnedFd {
    tun_device_with(ns, name, 0)
}

/// Like [`tun_device`], with extra flags (e.g. IFF_VNET_HDR).
fn tun_device_with(ns: &Netns, name: &str, extra_flags: libc::c_int) -> OwnedFd {
    let owned = name.to_owned();
    let fd = ns.run(move || {
        // SAFETY: plain open(2) of the TUN clone device.
        let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC) };
        assert!(
            fd >= 0,
            "open /dev/net/tun: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: fd is fresh and owned here.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero ifreq is valid; name and flags are set below.
        let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
        for (d, s) in ifr.ifr_name.iter_mut().zip(owned.bytes()) {
            *d = s as libc::c_char;
        }
        ifr.ifr_ifru.ifru_flags = (libc::IFF_TUN | libc::IFF_NO_PI | extra_flags) as libc::c_short;
        // SAFETY: TUNSETIFF takes a pointer to an ifreq, valid for the call.
        let rc = unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &raw mut ifr) };
        assert_eq!(rc, 0, "TUNSETIFF: {}", std::io::Error::last_os_error());
        fd
    });
    ns.ip(&["link", "set", name, "up"]);
    fd
}

pub(crate) fn write_packet(fd: &OwnedFd, packet: &[u8]) {
    // SAFETY: packet is a valid buffer of the given length.
    let n = unsafe { libc::write(fd.as_raw_fd(), packet.as_ptr().cast(), packet.len()) };
    assert_eq!(
        n,
        packet.len() as isize,
        "{}",
        std::io::Error::last_os_error()
    );
}

#[test]
fn kernel_decap_reads_the_tunnel_devices_through_the_same_checks() {
    let t = Topology::new();
    let tun1 = tun_device(&t.gw, "tg-rs1");
    let tun2 = tun_device(&t.gw, "tg-rs2");
    let vip2 = Ipv4Addr::new(192, 0, 2, 11);
    let config = format!(
        "{}[[peers]]\nname = \"rs2\"\naddress = \"10.0.1.3\"\nvips = [\"{vip2}\"]\n",
        t.config("decap = \"kernel\"\nworkers = 2\negress_interface = \"g1\"")
    );
    let mut tg = Tungate::start(&t.gw, &config);
    // Userspace mode's nftables table is not used in kernel mode.
    let listed = t.gw.exec("nft", &["list", "tables"]);
    assert!(!String::from_utf8_lossy(&listed.stdout).contains("tungate"));
    let client = FrameSocket::open(&t.client, "c0");
    let good = [udp(VIP, CIP, 64, 64), udp(VIP, CIP, 64, 1400)];
    for _ in 0..2 {
        for p in &good {
            write_packet(&tun1, p);
        }
    }
    write_packet(&tun2, &udp(vip2, CIP, 64, 64));
    // Bad: rs1's VIP arriving on rs2's device, nested IPIP, TTL 1, a length that lies.
    write_packet(&tun2, &udp(VIP, CIP, 64, 64));
    write_packet(&tun1, &packets::ipip(VIP, CIP, &good[0]));
    write_packet(&tun1, &udp(VIP, CIP, 1, 64));
    let mut lies = udp(VIP, CIP, 64, 64);
    lies[3] -= 8;
    packets::fix_ip_checksum(&mut lies);
    write_packet(&tun1, &lies);
    let got = client.receive_for(QUIET, to_client);
    let mut ips: Vec<Vec<u8>> = got.iter().map(|f| f[14..].to_vec()).collect();
    ips.sort();
    let mut expected: Vec<Vec<u8>> = good
        .iter()
        .chain(&good)
        .chain([&udp(vip2, CIP, 64, 64)])
        .map(|p| with_ttl_decremented(p))
        .collect();
    expected.sort();
    assert_eq!(ips.len(), expected.len());
    assert!(
        ips == expected,
        "delivered packets differ from the expected ones"
    );
    let c = tg.counters();
    for (reason, n) in [
        ("vip_not_served", 1),
        ("nested_tunnel", 1),
        ("ttl_expired", 1),
        ("malformed_inner", 1),
    ] {
        assert_eq!(c["drops"][reason], n, "{reason}: {c}");
    }
    assert_eq!(tg.stop().0, 0);
}

/// `kernel` decap: a tunnel device deleted and built again (what the netcfg reconciler does
/// after an operator's `ip link del`; found in the QEMU lab) is read again — the workers
/// restart onto the new device, whose packets the old sockets would never see.
#[test]
fn kernel_decap_follows_a_tunnel_device_built_again() {
    let t = Topology::new();
    let tun = tun_device(&t.gw, "tg-rs1");
    let mut tg = Tungate::start(
        &t.gw,
        &t.config("decap = \"kernel\"\nworkers = 2\negress_interface = \"g1\""),
    );
    let client = FrameSocket::open(&t.client, "c0");
    let packet = udp(VIP, CIP, 64, 64);
    write_packet(&tun, &packet);
    assert_eq!(client.receive_for(QUIET, to_client).len(), 1, "before");
    // A TUN device that is not persistent goes away with its last descriptor.
    drop(tun);
    let tun = tun_device(&t.gw, "tg-rs1");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut sent = 0;
    loop {
        write_packet(&tun, &packet);
        sent += 1;
        if !client
            .receive_for(Duration::from_millis(300), to_client)
            .is_empty()
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nothing written to the new tg-rs1 reached the client ({sent} packets)"
        );
    }
    assert!(tg.is_running());
    let c = tg.counters();
    assert!(c["vips"][0]["packets"].as_u64().unwrap() >= 2, "{c}");
    assert_eq!(tg.stop().0, 0);
}

/// Drops every packet whose length is odd; counts what it saw.
struct DropOddLength;
impl BatchFilter for DropOddLength {
    fn filter(&mut self, packets: &[&[u8]], decisions: &mut [Decision]) {
        for (p, d) in packets.iter().zip(decisions) {
            // Each view is a whole inner packet, as it will be forwarded.
            assert_eq!(usize::from(u16::from_be_bytes([p[2], p[3]])), p.len());
            if p.len() % 2 == 1 {
                *d = Decision::DropByPlugin;
            } else if p.len() == 100 {
                *d = Decision::DropOnError;
            }
        }
    }
}

#[test]
fn each_vips_batch_filter_judges_its_packets() {
    let t = Topology::new();
    let doc = tungate_config::parse_toml(&t.config("")).unwrap();
    let counters = Arc::new(Counters::new(1));
    let path = format!("/run/netns/{}", t.gw.name);
    let c2 = counters.clone();
    // The data path runs on threads created from a thread inside the gw namespace.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let (started_tx, started) = std::sync::mpsc::channel();
    let runner = std::thread::spawn(move || {
        let file = std::fs::File::open(&path).unwrap();
        nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET).unwrap();
        let dp = Datapath::start(&doc, c2).expect("start");
        let mut fence = TunnelFence::new();
        let (_, ingress) = dp.userspace_ingress().expect("userspace mode");
        fence.raise(ingress, &[]).expect("tunnel fence");
        let mut set = WorkerFilters::default();
        set.by_vip.insert(VIP.into(), Box::new(DropOddLength));
        dp.filter_slots().publish(vec![set]);
        started_tx.send(dp.filter_slots().progress()).unwrap();
        rx.recv().unwrap();
        dp.stop();
        fence.lower().unwrap();
    });
    // The worker runs the filter once it took it.
    let progress = started.recv().expect("the data path starts");
    until(
        Duration::from_secs(10),
        "the worker takes its filter",
        || progress.taken() == [1],
    );
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    // Inner lengths 28 + n: 64 (even, pass), 65 (odd, plugin), 72 (pass), 100 (error).
    for n in [36, 37, 44, 72] {
        let inner = udp(VIP, CIP, 64, n);
        rs.send(&tungate_test_support::packets::ethernet(
            tungate_test_support::topology::GW_RS_MAC,
            tungate_test_support::topology::RS_MAC,
            &packets::ipip(RIP, GIP, &inner),
        ));
    }
    let got = client.receive_for(QUIET, to_client);
    let lens: Vec<usize> = got.iter().map(|f| f.len() - 14).collect();
    assert_eq!(lens, vec![64, 72]);
    tx.send(()).unwrap();
    runner.join().unwrap();
    let s = counters.snapshot();
    assert_eq!(s.drops.get(DropReason::Plugin), 1);
    assert_eq!(s.drops.get(DropReason::PluginError), 1);
    let v = s.vip(VIP).unwrap();
    assert_eq!((v.packets, v.drops.get(DropReason::Plugin)), (2, 1));
}

/// The 16-bit ones' complement sum of `bytes` (folded, not complemented).
fn ones_sum(bytes: &[u8], mut sum: u32) -> u16 {
    for w in bytes.chunks(2) {
        sum += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// A client socket that also reads the offload header (PACKET_VNET_HDR).
fn vnet_client(ns: &Netns) -> FrameSocket {
    let s = FrameSocket::open(ns, "c0");
    let one: libc::c_int = 1;
    // SAFETY: valid c_int option of the size passed, on an open AF_PACKET socket. Set
    // before any frame is read; frames queued earlier carry no header, and none are.
    let rc = unsafe {
        libc::setsockopt(
            s.raw_fd(),
            libc::SOL_PACKET,
            libc::PACKET_VNET_HDR,
            (&raw const one).cast(),
            4,
        )
    };
    assert_eq!(rc, 0);
    s
}

#[test]
fn gso_super_packets_with_partial_checksums_are_finished_by_the_kernel() {
    let t = Topology::new();
    let tun = tun_device_with(&t.gw, "tg-rs1", libc::IFF_VNET_HDR);
    let mut tg = Tungate::start(&t.gw, &t.config("decap = \"kernel\""));
    let client = vnet_client(&t.client);
    // A 6000-byte TCP super-packet whose checksum is still to be computed (CHECKSUM_PARTIAL
    // with the pseudo-header sum in the field), as an RS's TSO hands it through veth.
    let data: Vec<u8> = (0..6000u32).map(|i| (i % 251) as u8).collect();
    let mut inner = tungate_test_support::packets::tcp(VIP, CIP, 64, 0);
    inner.extend_from_slice(&data);
    let total = inner.len() as u16;
    inner[2..4].copy_from_slice(&total.to_be_bytes());
    packets::fix_ip_checksum(&mut inner);
    let tcp_len = (inner.len() - 20) as u32;
    let mut pseudo = Vec::new();
    pseudo.extend_from_slice(&VIP.octets());
    pseudo.extend_from_slice(&CIP.octets());
    pseudo.extend_from_slice(&[0, 6]);
    pseudo.extend_from_slice(&(tcp_len as u16).to_be_bytes());
    let partial = ones_sum(&pseudo, 0);
    inner[36..38].copy_from_slice(&partial.to_be_bytes());
    // virtio_net_hdr: NEEDS_CSUM, TCPV4, hdr_len 40, gso_size 1448, csum 20 + 16.
    let mut vnet = vec![1u8, 1];
    for v in [40u16, 1448, 20, 16] {
        vnet.extend_from_slice(&v.to_ne_bytes());
    }
    // A small packet first: it resolves the client's neighbour entry (the raw fallback
    // cannot carry super-packets).
    write_packet(&tun, &[&[0u8; 10][..], &udp(VIP, CIP, 64, 8)].concat());
    std::thread::sleep(Duration::from_millis(300));
    write_packet(&tun, &[vnet, inner.clone()].concat());

    let frames = client.receive_for(QUIET, |f| {
        f.len() >= 10 + 34 && f[10 + 30..10 + 34] == CIP.octets() && f[10 + 23] == 6
    });
    assert!(!frames.is_empty(), "nothing delivered: {}", tg.counters());
    let mut payload = Vec::new();
    for f in &frames {
        let (vh, frame) = f.split_at(10);
        let ip = &frame[14..];
        assert_eq!(ip[8], 63, "TTL one lower");
        assert_eq!(ones_sum(&ip[..20], 0), 0xffff, "IP header checksum");
        let tcp = &ip[20..usize::from(u16::from_be_bytes([ip[2], ip[3]]))];
        if vh[0] & 1 == 0 {
            // Segmented and finished: the TCP checksum must verify.
            let mut ph = Vec::new();
            ph.extend_from_slice(&ip[12..20]);
            ph.extend_from_slice(&[0, 6]);
            ph.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
            assert_eq!(
                ones_sum(tcp, u32::from(ones_sum(&ph, 0))),
                0xffff,
                "TCP checksum"
            );
        } else {
            // Still partial (veth passes super-packets on): the offsets must point at the
            // inner TCP header behind tungate's Ethernet header.
            assert_eq!(u16::from_ne_bytes([vh[6], vh[7]]), 34, "csum_start");
            assert_eq!(u16::from_ne_bytes([vh[8], vh[9]]), 16, "csum_offset");
        }
        payload.extend_from_slice(&tcp[20..]);
    }
    assert_eq!(payload, data, "the TCP payload arrives whole and in order");
    let c = tg.counters();
    assert_eq!(c["vips"][0]["packets"], 2, "{c}");
    assert_eq!(tg.stop().0, 0);
}

/// A worker with no receive socket (`kernel` decap before any peer is configured) idles
/// instead of dying; regression for a remainder by zero found by the API fuzzer in CI.
#[test]
fn kernel_decap_with_no_peer_keeps_running() {
    let t = Topology::new();
    let config = format!(
        "[gateway]\naddress = \"{GIP}\"\ndecap = \"kernel\"\nworkers = 2\negress_interface = \"g1\"\n"
    );
    let mut tg = Tungate::start(&t.gw, &config);
    std::thread::sleep(Duration::from_millis(500));
    assert!(tg.is_running(), "tungate ended with no peer in kernel mode");
    let c = tg.counters();
    assert_eq!(c["rx_packets"], 0, "{c}");
    let (status, _) = tg.stop();
    assert_eq!(status, 0);
}

/// `tungate status` and `GET /api/v1/status` say when LD-OUT's networking is not as the
/// configuration wants it (the netcfg reconciler's last pass failed), with the reconciler's
/// own words, and exit 3 while tungate goes on forwarding: here a `tg-rs1` that tungate did
/// not build (a TUN device), then, once it is gone, a tunnel this kernel cannot build.
#[test]
fn status_says_when_the_networking_is_not_as_configured() {
    let t = Topology::new();
    let tun = tun_device(&t.gw, "tg-rs1");
    let mut tg = Tungate::start(
        &t.gw,
        &t.config("decap = \"kernel\"\nworkers = 1\negress_interface = \"g1\""),
    );
    let binary = tungate_test_support::process::binary();
    let status = || {
        let out =
            t.gw.exec(&binary, &["status", "--url", "http://127.0.0.1:9080"]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = status();
    assert_eq!(code, Some(3), "{text}");
    assert!(
        text.contains(
            "network: NOT as configured: link tg-rs1 exists but was not created by tungate"
        ),
        "{text}"
    );
    assert!(text.contains(": ready"), "the data path runs: {text}");
    let api = tungate_test_support::http::Api::new(&t.gw, "127.0.0.1:9080", None);
    let network = &api.get("/api/v1/status").json()["network"];
    assert_eq!(network["in_sync"], false, "{network}");
    assert!(network["passes"].as_u64().unwrap() >= 1, "{network}");

    drop(tun);
    let deadline = Instant::now() + Duration::from_secs(20);
    let text = loop {
        let (code, text) = status();
        assert_eq!(code, Some(3), "{text}");
        if text.contains("no ipip support") {
            break text;
        }
        assert!(Instant::now() < deadline, "{text}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        text.contains("network: NOT as configured: cannot create tunnel tg-rs1"),
        "{text}"
    );
    let metrics = api.get("/metrics").text();
    assert!(metrics.contains("tungate_network_in_sync 0"), "{metrics}");
    assert!(tg.is_running(), "tungate keeps running");
    assert_eq!(tg.stop().0, 0);
}

#[test]
fn check_source_mac_is_ignored_with_a_logged_warning_in_kernel_decap() {
    let t = Topology::new();
    let _tun = tun_device_with(&t.gw, "tg-rs1", libc::IFF_VNET_HDR);
    // `config` ends inside rs1's [[peers]] table: the key lands there.
    let config = format!(
        "{}check_source_mac = true\n",
        t.config("decap = \"kernel\"")
    );
    let tg = Tungate::start(&t.gw, &config);
    assert!(
        tg.startup_log
            .contains("peer rs1: check_source_mac is ignored with decap = \"kernel\""),
        "{}",
        tg.startup_log
    );
    assert_eq!(tg.stop().0, 0);
}
