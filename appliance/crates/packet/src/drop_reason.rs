//! Why a packet was not forwarded: the closed list of drop reasons.
//!
//! The names are part of the product: they are metric labels and API keys, so a name never
//! changes once released. This module only names reasons; it never counts them.

/// Why the data path dropped a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum DropReason {
    /// The frame is not IP (another EtherType, or an IPv4 EtherType with an IP version other
    /// than 4); the name is older than IPv6 support.
    NotIpv4,
    /// The outer IPv4 or IPv6 header is malformed (IHL, total or payload length, truncated
    /// header or extension header, an IPv6 EtherType with another version).
    MalformedOuter,
    /// The outer IPv4 header checksum is wrong.
    BadOuterChecksum,
    /// The outer packet is a fragment: outer fragments are dropped, never reassembled.
    OuterFragment,
    /// The outer packet carries none of the tunnel protocols tungate decapsulates (IPIP,
    /// UDP for GUE and FOU, GRE); the name is older than the other tunnel types.
    NotIpip,
    /// The outer destination is not the gateway address (GIP).
    WrongGateway,
    /// The outer source is not a configured peer (real server).
    UnknownPeer,
    /// The inner IPv4 or IPv6 header is malformed, its length disagrees with the outer one,
    /// or its version is not the family its tunnel header declares.
    MalformedInner,
    /// The inner IPv4 header checksum is wrong.
    BadInnerChecksum,
    /// The inner packet is itself a tunnel (IPIP, IPv6-in-IPv4 or GRE): never decapsulated twice.
    NestedTunnel,
    /// The inner source is not a VIP that the sending peer serves.
    VipNotServed,
    /// The inner header carries a loose or strict source route option.
    SourceRoute,
    /// The inner TTL (IPv4) or hop limit (IPv6) is 1 or 0: forwarding would expire it.
    TtlExpired,
    /// Larger than the egress MTU and not a GSO super-packet the kernel can segment.
    TooBig,
    /// A plugin dropped the packet on purpose.
    Plugin,
    /// A plugin failed and its binding fails closed.
    PluginError,
    /// No route or no usable next hop towards the inner destination.
    NoRoute,
    /// The transmit itself failed.
    TxError,
    /// The frame was larger than the receive buffer.
    Truncated,
    /// The kernel dropped the frame because the receive socket was full.
    RxOverflow,
    /// The frame came from a link-layer source other than the one its peer must arrive from
    /// (the peer's `check_source_mac`): a host on the real servers' network spoofing a peer.
    SpoofedPeer,
    /// The packet's tunnel is not its peer's: another type (say GUE from an IPIP peer) or
    /// another UDP destination port than the peer's `port`.
    WrongTunnel,
    /// The UDP length is below 8 or disagrees with the outer IPv4 length.
    BadUdpLength,
    /// A non-zero UDP checksum is wrong.
    BadUdpChecksum,
    /// The GUE header is not a variant 0 data message carrying IPv4 or IPv6 (protocol 4 or
    /// 41) with no flags or optional fields (a control message, another version, unknown
    /// flags), nor variant 1 IPv4 or IPv6.
    BadGue,
    /// The GRE header is not version 0 carrying IPv4 (0x0800) or IPv6 (0x86DD), has routing or
    /// another refused
    /// flag, or is longer than the packet.
    BadGre,
    /// The GRE checksum (checksum bit set) is wrong.
    BadGreChecksum,
    /// The GRE key is absent, present or different against the peer's configured `key`.
    WrongGreKey,
    /// An IPv6 extension-header chain (outer or inner) that is not accepted: more than
    /// [`crate::ipv6::MAX_EXTENSION_HEADERS`] headers or [`crate::ipv6::MAX_EXTENSION_BYTES`]
    /// bytes of them, or a hop-by-hop header that is not the first.
    BadExtensionHeaders,
    /// An IPv6 routing header with segments left > 0 (outer or inner): the packet asks to be
    /// sent on elsewhere, the IPv6 counterpart of `source_route`.
    RoutingHeader,
}

impl DropReason {
    /// Every reason, in a stable order (the order of the counters).
    pub const ALL: [DropReason; 30] = [
        DropReason::NotIpv4,
        DropReason::MalformedOuter,
        DropReason::BadOuterChecksum,
        DropReason::OuterFragment,
        DropReason::NotIpip,
        DropReason::WrongGateway,
        DropReason::UnknownPeer,
        DropReason::MalformedInner,
        DropReason::BadInnerChecksum,
        DropReason::NestedTunnel,
        DropReason::VipNotServed,
        DropReason::SourceRoute,
        DropReason::TtlExpired,
        DropReason::TooBig,
        DropReason::Plugin,
        DropReason::PluginError,
        DropReason::NoRoute,
        DropReason::TxError,
        DropReason::Truncated,
        DropReason::RxOverflow,
        DropReason::SpoofedPeer,
        DropReason::WrongTunnel,
        DropReason::BadUdpLength,
        DropReason::BadUdpChecksum,
        DropReason::BadGue,
        DropReason::BadGre,
        DropReason::BadGreChecksum,
        DropReason::WrongGreKey,
        DropReason::BadExtensionHeaders,
        DropReason::RoutingHeader,
    ];

    /// How many reasons there are.
    pub const COUNT: usize = Self::ALL.len();

    /// The reason's position in [`Self::ALL`] (a counter index).
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The stable snake_case name used in metrics, logs and the API.
    pub const fn as_str(self) -> &'static str {
        match self {
            DropReason::NotIpv4 => "not_ipv4",
            DropReason::MalformedOuter => "malformed_outer",
            DropReason::BadOuterChecksum => "bad_outer_checksum",
            DropReason::OuterFragment => "outer_fragment",
            DropReason::NotIpip => "not_ipip",
            DropReason::WrongGateway => "wrong_gateway",
            DropReason::UnknownPeer => "unknown_peer",
            DropReason::MalformedInner => "malformed_inner",
            DropReason::BadInnerChecksum => "bad_inner_checksum",
            DropReason::NestedTunnel => "nested_tunnel",
            DropReason::VipNotServed => "vip_not_served",
            DropReason::SourceRoute => "source_route",
            DropReason::TtlExpired => "ttl_expired",
            DropReason::TooBig => "too_big",
            DropReason::Plugin => "plugin",
            DropReason::PluginError => "plugin_error",
            DropReason::NoRoute => "no_route",
            DropReason::TxError => "tx_error",
            DropReason::Truncated => "truncated",
            DropReason::RxOverflow => "rx_overflow",
            DropReason::SpoofedPeer => "spoofed_peer",
            DropReason::WrongTunnel => "wrong_tunnel",
            DropReason::BadUdpLength => "bad_udp_length",
            DropReason::BadUdpChecksum => "bad_udp_checksum",
            DropReason::BadGue => "bad_gue",
            DropReason::BadGre => "bad_gre",
            DropReason::BadGreChecksum => "bad_gre_checksum",
            DropReason::WrongGreKey => "wrong_gre_key",
            DropReason::BadExtensionHeaders => "bad_extension_headers",
            DropReason::RoutingHeader => "routing_header",
        }
    }
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_follow_all_and_names_are_unique_snake_case() {
        let mut names = std::collections::HashSet::new();
        for (i, r) in DropReason::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i, "{r:?}");
            let name = r.as_str();
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{name}"
            );
            assert!(names.insert(name), "duplicate {name}");
        }
        assert_eq!(DropReason::TtlExpired.to_string(), "ttl_expired");
    }
}
