//! ICMP fragmentation-needed from the real binary in namespaces (needs root): the client
//! side's MTU (1280) is below what the real server sends, and an `ld` namespace plays LD-IN,
//! holding the VIP (the gateway routes the VIP there). A too-big inner packet with DF is
//! dropped and answered with type 3 code 4 to the VIP — next-hop MTU 1280, quoting the
//! packet — and nothing to the real server or the client; one without DF is dropped
//! silently; and a burst of too-big packets is answered only up to the per-VIP budget,
//! every one counted as sent or rate-limited.

use std::net::Ipv4Addr;
use std::time::Duration;

use etherparse::{IpNumber, Ipv4Header};
use tungate_test_support::icmp::IcmpWatch;
use tungate_test_support::packets::{ethernet, ipip, payload, with_ttl_decremented};
use tungate_test_support::topology::IoPath;
use tungate_test_support::topology::{CIP, GIP, GW_RS_MAC, RIP, RS_MAC, VIP, veth};
use tungate_test_support::{FrameSocket, Netns, Topology, Tungate};

const QUIET: Duration = Duration::from_millis(400);
const EGRESS_MTU: u16 = 1280;
/// The gateway's address towards LD-IN (the source of its ICMP messages).
const GW_LDIN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 1);
const LDIN_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 3, 2);
/// The documented per-VIP budget of one worker: a burst of 10, then 20 per second.
const PER_VIP_BURST: u64 = 10;

/// An inner UDP reply VIP -> CIP with `len` payload bytes and DF as given.
fn reply(len: usize, dont_fragment: bool) -> Vec<u8> {
    let mut udp_part = vec![0u8; 8];
    udp_part[0..2].copy_from_slice(&80u16.to_be_bytes());
    udp_part[2..4].copy_from_slice(&40000u16.to_be_bytes());
    udp_part[4..6].copy_from_slice(&((8 + len) as u16).to_be_bytes());
    udp_part.extend_from_slice(&payload(len));
    let mut h = Ipv4Header::new(
        udp_part.len() as u16,
        64,
        IpNumber(17),
        VIP.octets(),
        CIP.octets(),
    )
    .unwrap();
    h.dont_fragment = dont_fragment;
    h.identification = 0x1234;
    h.header_checksum = h.calc_header_checksum();
    let mut out = h.to_bytes().to_vec();
    out.extend_from_slice(&udp_part);
    out
}

fn to_client(frame: &[u8]) -> bool {
    frame.len() >= 34 && frame[12..14] == [8, 0] && frame[30..34] == CIP.octets()
}

fn too_big_df_replies_get_rate_limited_frag_needed_to_the_vip_only(io: IoPath) {
    let t = Topology::on(io);
    let ldin = Netns::new("ld");
    veth(
        &t.gw,
        "g2",
        "02:00:00:00:03:01",
        &ldin,
        "l0",
        "02:00:00:00:03:02",
    );
    t.gw.ip(&["addr", "add", &format!("{GW_LDIN_IP}/24"), "dev", "g2"]);
    ldin.ip(&["addr", "add", &format!("{LDIN_IP}/24"), "dev", "l0"]);
    ldin.ip(&["addr", "add", &format!("{VIP}/32"), "dev", "l0"]);
    t.gw.ip(&[
        "route",
        "add",
        &format!("{VIP}/32"),
        "via",
        &LDIN_IP.to_string(),
    ]);
    let mtu = EGRESS_MTU.to_string();
    t.gw.ip(&["link", "set", "g1", "mtu", &mtu]);
    t.client.ip(&["link", "set", "c0", "mtu", &mtu]);

    let mut tg = Tungate::start(&t.gw, &t.config(""));
    let rs = FrameSocket::open(&t.rs, "r0");
    let client = FrameSocket::open(&t.client, "c0");
    let send = |inner: &[u8]| rs.send(&ethernet(GW_RS_MAC, RS_MAC, &ipip(RIP, GIP, inner)));
    // Resolve the client's neighbour first: the fast path checks the MTU.
    let fits = reply(1200, true);
    send(&fits);
    assert_eq!(client.receive_for(QUIET, to_client).len(), 1);
    let at_ldin = IcmpWatch::open(&ldin);
    let at_rs = IcmpWatch::open(&t.rs);
    let at_client = IcmpWatch::open(&t.client);

    // One too big with DF: one message to the VIP, from the gateway, quoting the packet.
    let big_df = reply(1400, true);
    send(&big_df);
    send(&reply(1400, false));
    send(&fits);
    let got = client.receive_for(QUIET, to_client);
    assert_eq!(got.len(), 1, "only the packet that fits arrives");
    assert_eq!(&got[0][14..], &with_ttl_decremented(&fits)[..]);
    let messages = at_ldin.packets();
    assert_eq!(
        messages.len(),
        1,
        "one message for the DF packet, none for the other"
    );
    let m = &messages[0];
    let ihl = usize::from(m[0] & 0xf) * 4;
    assert_eq!(m[9], 1, "ICMP");
    assert_eq!(&m[12..16], &GW_LDIN_IP.octets(), "from the gateway");
    assert_eq!(&m[16..20], &VIP.octets(), "to the VIP");
    let icmp = &m[ihl..];
    assert_eq!(
        (icmp[0], icmp[1]),
        (3, 4),
        "destination unreachable, fragmentation needed"
    );
    assert_eq!(
        u16::from_be_bytes([icmp[6], icmp[7]]),
        EGRESS_MTU,
        "next-hop MTU"
    );
    assert_eq!(icmp.len(), 576 - 20, "quotes as much as fits in 576 bytes");
    let quote = &icmp[8..];
    let forwarded = with_ttl_decremented(&big_df);
    assert!(
        quote == &big_df[..quote.len()] || quote == &forwarded[..quote.len()],
        "the quote is the packet (as received or as it would have left)"
    );
    let ones_complement: u32 = icmp
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)])))
        .sum();
    let folded = (ones_complement & 0xffff) + (ones_complement >> 16);
    assert_eq!((folded & 0xffff) + (folded >> 16), 0xffff, "ICMP checksum");

    // A burst: answered up to the per-VIP budget (plus what refills while it is sent).
    const BURST: u64 = 100;
    for _ in 0..BURST {
        send(&big_df);
    }
    std::thread::sleep(QUIET);
    let answered = at_ldin.packets().len() as u64;
    let c = tg.counters();
    eprintln!("burst of {BURST} too-big DF packets: {answered} answered; counters {c}");
    assert!(
        answered >= PER_VIP_BURST - 1,
        "the budget left is used ({answered})"
    );
    assert!(answered <= PER_VIP_BURST + 5, "rate-limited ({answered})");
    assert_eq!(c["icmp_sent"], 1 + answered, "{c}");
    assert_eq!(c["icmp_rate_limited"], BURST - answered, "{c}");
    assert_eq!(c["icmp_failed"], 0, "{c}");
    assert_eq!(
        c["drops"]["too_big"],
        1 + 1 + BURST,
        "every too-big packet dropped"
    );
    assert_eq!(at_rs.messages(), [], "no ICMP toward the real server");
    assert_eq!(at_client.messages(), [], "no ICMP toward the client");
    assert_eq!(tg.stop().0, 0);
}

crate::on_both_io_paths!(too_big_df_replies_get_rate_limited_frag_needed_to_the_vip_only,);
