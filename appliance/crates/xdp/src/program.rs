//! The compiled XDP program and the facts the loader shares with its C source: the program's
//! name, the maps' names and sizes, and the counter slots. The `tests` below check them
//! against `bpf/ingress.bpf.c` and [`DropReason`], so the two sides cannot drift apart.

use tungate_packet::{DropReason, Tunnel};

/// The program's name in the kernel (its C function name; at most 15 bytes): how tungate
/// recognises its own program on an interface.
pub const PROGRAM_NAME: &str = "tungate_ingress";

/// How many peers (real servers) the peer map holds.
pub const MAX_PEERS: usize = 16384;

/// How many distinct GUE/FOU ports the port map holds.
pub const MAX_UDP_PORTS: usize = 1024;

/// How many receive queues the socket map covers (queue ids `0..MAX_QUEUES`).
pub const MAX_QUEUES: u32 = 64;

/// The largest valid tunnel frame (Ethernet header included) the program redirects to an
/// AF_XDP socket: what a 2 KiB UMEM frame holds behind the kernel's 256-byte headroom.
/// Larger ones pass to the kernel, for the data path's TPACKET sockets.
pub const MAX_REDIRECT_FRAME: u32 = 1792;

/// Map names, as in the C source.
pub(crate) const MAP_COUNTERS: &str = "counters";
pub(crate) const MAP_PEERS: &str = "peers";
pub(crate) const MAP_PEERS6: &str = "peers6";
pub(crate) const MAP_UDP_PORTS: &str = "udp_ports";
pub(crate) const MAP_CONFIG: &str = "config";
pub(crate) const MAP_XSKS: &str = "xsks";

/// Counter slot of frames redirected to a socket (after the drop reasons).
pub(crate) const SLOT_REDIRECTED: u32 = DropReason::COUNT as u32;
/// Counter slot of frames passed to the kernel.
pub(crate) const SLOT_PASSED: u32 = SLOT_REDIRECTED + 1;
/// How many counter slots there are.
#[cfg(test)]
pub(crate) const SLOTS: u32 = SLOT_PASSED + 1;

/// How many IPv6 extension headers the program walks over to find the tunnel protocol.
pub const MAX_EXTENSION_HEADERS: u32 = 4;

/// The program's value in the `config` map (`struct tg_config`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Config {
    /// The IPv4 gateway address (GIP) in network byte order, as the header carries it; 0
    /// when the gateway has none.
    pub(crate) gateway: u32,
    /// The IPv6 gateway address, as the header carries it; all zero when the gateway has
    /// none.
    pub(crate) gateway6: [u8; 16],
}

// SAFETY: `Config` is `repr(C)`: a `u32` then 16 bytes (offsets 0 and 4, size 20), no
// padding, every bit pattern valid.
unsafe impl aya::Pod for Config {}

/// Tunnel type numbers of `struct tg_peer` (`TG_TUNNEL_*` in the C source).
pub(crate) const TUNNEL_IPIP: u8 = 0;
pub(crate) const TUNNEL_GUE: u8 = 1;
pub(crate) const TUNNEL_FOU: u8 = 2;
pub(crate) const TUNNEL_GRE: u8 = 3;

/// The program's value in the `peers` map (`struct tg_peer`): the peer's tunnel.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PeerValue {
    /// `TUNNEL_*`.
    pub(crate) tunnel: u8,
    /// 1 when GRE packets must carry `key`, 0 when they must carry none.
    pub(crate) has_key: u8,
    /// The GUE/FOU destination port, network byte order (0 for the others).
    pub(crate) port: u16,
    /// The GRE key, network byte order.
    pub(crate) key: u32,
}

// SAFETY: `PeerValue` is `repr(C)` with fields 1 + 1 + 2 + 4 bytes in that order: no padding,
// every bit pattern valid.
unsafe impl aya::Pod for PeerValue {}

impl PeerValue {
    /// The map value of a peer with `tunnel`.
    pub(crate) fn of(tunnel: Tunnel) -> PeerValue {
        let (tunnel, port, key) = match tunnel {
            Tunnel::Ipip => (TUNNEL_IPIP, 0, None),
            Tunnel::Gue { port } => (TUNNEL_GUE, port, None),
            Tunnel::Fou { port } => (TUNNEL_FOU, port, None),
            Tunnel::Gre { key } => (TUNNEL_GRE, 0, key),
        };
        PeerValue {
            tunnel,
            has_key: u8::from(key.is_some()),
            port: port.to_be(),
            key: key.unwrap_or(0).to_be(),
        }
    }
}

/// The ELF object, aligned so that the ELF parser may read its headers in place.
#[repr(C, align(32))]
struct Aligned<Bytes: ?Sized> {
    bytes: Bytes,
}

static OBJECT: &Aligned<[u8]> = &Aligned {
    bytes: *include_bytes!("../bpf/ingress.bpf.o"),
};

/// The compiled program (`bpf/ingress.bpf.o`).
pub(crate) fn object() -> &'static [u8] {
    &OBJECT.bytes
}

#[cfg(test)]
mod tests {
    use super::*;

    const SOURCE: &str = include_str!("../bpf/ingress.bpf.c");

    /// `#define NAME VALUE` lines of the C source whose name starts with `prefix`.
    fn defines(prefix: &str) -> Vec<(String, u32)> {
        SOURCE
            .lines()
            .filter_map(|l| {
                let mut words = l.strip_prefix("#define ")?.split_whitespace();
                let name = words.next()?.strip_prefix(prefix)?;
                Some((name.to_owned(), words.next()?.parse().ok()?))
            })
            .collect()
    }

    #[test]
    fn every_c_drop_slot_is_the_drop_reason_of_that_name_and_index() {
        let slots = defines("TG_SLOT_");
        assert!(slots.len() >= 7, "{slots:?}");
        for (name, slot) in slots {
            match name.as_str() {
                "REDIRECTED" => assert_eq!(slot, SLOT_REDIRECTED),
                "PASSED" => assert_eq!(slot, SLOT_PASSED),
                reason => {
                    let found = DropReason::ALL
                        .into_iter()
                        .find(|r| r.as_str() == reason.to_ascii_lowercase())
                        .unwrap_or_else(|| panic!("TG_SLOT_{reason} names no DropReason"));
                    assert_eq!(found.index() as u32, slot, "TG_SLOT_{reason}");
                }
            }
        }
    }

    #[test]
    fn sizes_and_names_match_the_c_source() {
        let all = defines("TG_");
        let value = |n: &str| all.iter().find(|(k, _)| k == n).map(|(_, v)| *v);
        assert_eq!(value("SLOTS"), Some(SLOTS));
        assert_eq!(value("MAX_PEERS"), Some(MAX_PEERS as u32));
        assert_eq!(value("MAX_UDP_PORTS"), Some(MAX_UDP_PORTS as u32));
        assert_eq!(value("TUNNEL_IPIP"), Some(u32::from(TUNNEL_IPIP)));
        assert_eq!(value("TUNNEL_GUE"), Some(u32::from(TUNNEL_GUE)));
        assert_eq!(value("TUNNEL_FOU"), Some(u32::from(TUNNEL_FOU)));
        assert_eq!(value("TUNNEL_GRE"), Some(u32::from(TUNNEL_GRE)));
        assert!(SOURCE.contains(
            "struct tg_peer {\n\t__u8 tunnel;\n\t__u8 has_key;\n\t__u16 port;\n\t__u32 key;\n};"
        ));
        assert_eq!(std::mem::size_of::<PeerValue>(), 8);
        assert!(SOURCE.contains("struct tg_config {\n\t__u32 gateway;\n\t__u32 gateway6[4];\n};"));
        assert_eq!(std::mem::size_of::<Config>(), 20);
        assert_eq!(value("MAX_EXTENSION_HEADERS"), Some(MAX_EXTENSION_HEADERS));
        assert_eq!(
            value("MAX_EXTENSION_HEADERS"),
            Some(tungate_packet::ipv6::MAX_EXTENSION_HEADERS as u32)
        );
        assert_eq!(
            value("MAX_EXTENSION_BYTES"),
            Some(tungate_packet::ipv6::MAX_EXTENSION_BYTES as u32)
        );
        assert_eq!(value("MAX_QUEUES"), Some(MAX_QUEUES));
        assert_eq!(value("MAX_REDIRECT_FRAME"), Some(MAX_REDIRECT_FRAME));
        assert!(SOURCE.contains(&format!("int {PROGRAM_NAME}(struct xdp_md *ctx)")));
        assert!(
            PROGRAM_NAME.len() < 16,
            "the kernel keeps 15 bytes of a name"
        );
        for map in [
            MAP_COUNTERS,
            MAP_PEERS,
            MAP_PEERS6,
            MAP_UDP_PORTS,
            MAP_CONFIG,
            MAP_XSKS,
        ] {
            assert!(
                SOURCE.contains(&format!("}} {map} SEC(\".maps\");")),
                "{map}"
            );
        }
    }

    #[test]
    fn the_object_is_an_elf_for_bpf() {
        let o = object();
        assert_eq!(&o[..4], b"\x7fELF");
        // e_machine (offset 18, little-endian): EM_BPF = 247.
        assert_eq!(u16::from_le_bytes([o[18], o[19]]), 247);
        assert_eq!(o.as_ptr() as usize % 32, 0);
    }
}
