// SPDX-License-Identifier: Apache-2.0
/*
 * tungate's XDP pre-filter on the ingress interface (userspace decapsulation).
 *
 * Per frame: a tunnel frame is IPv4 or IPv6 carrying IPIP (protocol 4), IPv6 (41), GRE (47),
 * or UDP to the gateway address of its family on one of the configured GUE/FOU ports (the
 * udp_ports map); anything else is the host's own traffic and passes to the kernel untouched
 * (ARP, neighbour discovery, ICMPv6, SSH, DNS, the admin API, BGP). In IPv6 the tunnel
 * protocol is found behind a bounded walk of extension headers (hop-by-hop, destination
 * options, as a stock ip6tnl inserts, routing, fragment), as tungate_packet::ipv6 walks them. Tunnel frames are
 * checked as the userspace receive path checks them, in the same order, and a failed check
 * drops the frame under the same reason name (tungate_packet::DropReason): malformed_outer
 * (in IPv6 also an extension-header chain running past the packet), bad_extension_headers
 * (IPv6: a chain longer than the walk or with hop-by-hop not first, for a frame to the IPv6
 * gateway address whose protocol the walk could not reach),
 * bad_outer_checksum (IPv4), outer_fragment, wrong_gateway, unknown_peer (peers or peers6 map),
 * then against the peer's configured tunnel (the map's value): wrong_tunnel, bad_udp_length,
 * bad_gue, bad_gre, wrong_gre_key. The UDP and GRE checksums and the inner packet (IPv4 or
 * IPv6) are left to user space, which checks every frame again.
 * A frame that passes every check is redirected to the AF_XDP socket bound to its receive queue
 * (a frame too large for a UMEM frame passes to the kernel, to the TPACKET path instead);
 * when that queue has no socket the drop is counted as rx_overflow.
 *
 * Rebuild with bpf/build.sh (the object is committed; CI rebuilds it and compares).
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/in6.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

/*
 * Counter slots. A drop slot is the index of its reason in tungate_packet::DropReason::ALL
 * and is named TG_SLOT_<REASON NAME IN CAPITALS>: the crate's tests check both against the
 * Rust enum, so /metrics shows these drops under today's names.
 */
#define TG_SLOT_MALFORMED_OUTER 1
#define TG_SLOT_BAD_OUTER_CHECKSUM 2
#define TG_SLOT_OUTER_FRAGMENT 3
#define TG_SLOT_WRONG_GATEWAY 5
#define TG_SLOT_UNKNOWN_PEER 6
#define TG_SLOT_RX_OVERFLOW 19
#define TG_SLOT_WRONG_TUNNEL 21
#define TG_SLOT_BAD_UDP_LENGTH 22
#define TG_SLOT_BAD_GUE 24
#define TG_SLOT_BAD_GRE 25
#define TG_SLOT_WRONG_GRE_KEY 27
#define TG_SLOT_BAD_EXTENSION_HEADERS 28
/* After the 30 drop reasons: frames handed to a socket, frames passed to the kernel. */
#define TG_SLOT_REDIRECTED 30
#define TG_SLOT_PASSED 31
#define TG_SLOTS 32

#define TG_MAX_PEERS 16384
#define TG_MAX_UDP_PORTS 1024

/* A peer's tunnel type (struct tg_peer.tunnel), as tungate_xdp's program.rs numbers them. */
#define TG_TUNNEL_IPIP 0
#define TG_TUNNEL_GUE 1
#define TG_TUNNEL_FOU 2
#define TG_TUNNEL_GRE 3

/* IPv6 extension headers the walk steps over, and how many at most. */
#define TG_NEXT_HOP_BY_HOP 0
#define TG_NEXT_ROUTING 43
#define TG_NEXT_FRAGMENT 44
#define TG_NEXT_DEST_OPTIONS 60
#define TG_MAX_EXTENSION_HEADERS 4
/* Most bytes of extension headers walked over (tungate_packet::ipv6::MAX_EXTENSION_BYTES). */
#define TG_MAX_EXTENSION_BYTES 256

#define TG_GRE_CHECKSUM 0x80
#define TG_GRE_KEY 0x20
#define TG_GRE_SEQUENCE 0x10
/* Routing, strict source route, recursion control: never in a return tunnel. */
#define TG_GRE_REFUSED 0x4f
/*
 * The largest frame (Ethernet header included) an AF_XDP socket's 2 KiB UMEM frame holds
 * behind the kernel's 256-byte headroom; larger valid tunnel frames pass to the kernel, where
 * the workers' TPACKET sockets take them (the tunnel fence then drops them in the IP layer).
 */
#define TG_MAX_REDIRECT_FRAME 1792
#define TG_MAX_QUEUES 64

/*
 * The gateway addresses (GIP), as they appear in the header (network byte order); 0, or
 * all-zero for gateway6, when the gateway has no address of that family.
 */
struct tg_config {
	__u32 gateway;
	__u32 gateway6[4];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__type(key, __u32);
	__type(value, __u64);
	__uint(max_entries, TG_SLOTS);
} counters SEC(".maps");

/* A peer's return tunnel: type, UDP port (gue/fou) and GRE key, both in network byte order. */
struct tg_peer {
	__u8 tunnel;
	__u8 has_key;
	__u16 port;
	__u32 key;
};

/* Configured peers (real servers): outer source address (network byte order) -> tunnel. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u32);
	__type(value, struct tg_peer);
	__uint(max_entries, TG_MAX_PEERS);
} peers SEC(".maps");

/* Configured IPv6 peers: outer source address (network byte order) -> tunnel. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, struct in6_addr);
	__type(value, struct tg_peer);
	__uint(max_entries, TG_MAX_PEERS);
} peers6 SEC(".maps");

/* The GUE/FOU ports of the configured peers (network byte order) -> 1: UDP to the gateway on
 * one of them is a tunnel frame, other UDP is the host's. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__type(key, __u16);
	__type(value, __u8);
	__uint(max_entries, TG_MAX_UDP_PORTS);
} udp_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__type(key, __u32);
	__type(value, struct tg_config);
	__uint(max_entries, 1);
} config SEC(".maps");

/* Receive queue -> AF_XDP socket bound to it. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, sizeof(__u32));
	__uint(max_entries, TG_MAX_QUEUES);
} xsks SEC(".maps");

static __always_inline int count(__u32 slot, int action)
{
	__u64 *c = bpf_map_lookup_elem(&counters, &slot);

	if (c)
		*c += 1; /* per-CPU slot: no atomic needed */
	return action;
}

/*
 * Adds header word K (bytes 2K, 2K+1) when the header has it. Written out per word, with a
 * constant offset, so that the verifier sees each packet read checked against data_end (a
 * loop lets the compiler turn the check into arithmetic the verifier cannot follow).
 */
#define TG_OPTION_WORD(K)                                                  \
	if ((K) * 2 < header_len) {                                        \
		if ((const void *)(words + (K) + 1) > data_end)            \
			return 0; /* cannot happen: header_len was checked */ \
		sum += words[K];                                           \
	}

/*
 * Ones' complement sum of the header's 16-bit words, folded: 0xffff when the checksum is
 * valid. The caller has checked that the 20 fixed bytes are in the frame and header_len
 * (20..60) is in it too.
 */
static __always_inline __u16 header_sum(const struct iphdr *ip, __u32 header_len,
					const void *data_end)
{
	const __u16 *words = (const __u16 *)ip;
	__u32 sum = 0;

	for (int k = 0; k < 10; k++) /* the fixed header: constant bounds, unrolled */
		sum += words[k];
	TG_OPTION_WORD(10) TG_OPTION_WORD(11) TG_OPTION_WORD(12) TG_OPTION_WORD(13)
	TG_OPTION_WORD(14) TG_OPTION_WORD(15) TG_OPTION_WORD(16) TG_OPTION_WORD(17)
	TG_OPTION_WORD(18) TG_OPTION_WORD(19) TG_OPTION_WORD(20) TG_OPTION_WORD(21)
	TG_OPTION_WORD(22) TG_OPTION_WORD(23) TG_OPTION_WORD(24) TG_OPTION_WORD(25)
	TG_OPTION_WORD(26) TG_OPTION_WORD(27) TG_OPTION_WORD(28) TG_OPTION_WORD(29)
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/*
 * Reads `len` bytes at `offset` from the frame's start into `out`: 0, or negative when the
 * frame is shorter. A helper rather than packet pointers: a variable offset (after IPv4
 * options) on a packet pointer needs CAP_PERFMON, and the systemd unit grants only CAP_BPF.
 */
static __always_inline long load(struct xdp_md *ctx, __u32 offset, void *out, __u32 len)
{
	return bpf_xdp_load_bytes(ctx, offset, out, len);
}

/* The configuration (gateway addresses), or NULL (never: an array's slot 0 exists). */
static __always_inline const struct tg_config *config_of(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&config, &zero);
}

/* Whether UDP destination port `port` (network byte order) is a configured GUE/FOU port. */
static __always_inline int is_tunnel_port(__u16 port)
{
	return bpf_map_lookup_elem(&udp_ports, &port) != NULL;
}

/*
 * Whether an IPv4 frame carrying UDP is a tunnel frame: addressed to the gateway, not a later
 * fragment (those carry no port), its destination port one of udp_ports. The caller has
 * checked that the fixed header is in the frame.
 */
static __always_inline int is_tunnel_udp(struct xdp_md *ctx, const struct iphdr *ip)
{
	if (ip->frag_off & bpf_htons(0x1fff))
		return 0;
	const struct tg_config *cfg = config_of();

	if (!cfg || !cfg->gateway || ip->daddr != cfg->gateway)
		return 0;
	__u32 header_len = (__u32)ip->ihl * 4;
	struct udphdr udp;

	if (header_len < sizeof(struct iphdr) ||
	    load(ctx, sizeof(struct ethhdr) + header_len, &udp, sizeof(udp)) < 0)
		return 0;
	return is_tunnel_port(udp.dest);
}

/* Whether `protocol` (IPv4 protocol or IPv6 next header) is IP-in-IP: IPv4 (4) or IPv6 (41). */
static __always_inline int is_ip_in_ip(__u8 protocol)
{
	return protocol == IPPROTO_IPIP || protocol == IPPROTO_IPV6;
}

/*
 * The tunnel header of a frame from `peer` whose outer header has been checked: `protocol`
 * is the tunnel protocol, found at frame offset `at`, with `payload_len` bytes from there to
 * the end of the outer packet. The drop slot of the first failed check, or 0. The order is
 * the userspace one (tungate_packet's tunnel.rs): the type, then per type UDP length, port,
 * GUE header; or the GRE header, then its key. The encapsulated packet may be IPv4 or IPv6.
 * Checksums are left to user space.
 */
static __always_inline __u32 tunnel_problem(struct xdp_md *ctx, __u8 protocol, __u32 at,
					    __u32 payload_len, const struct tg_peer *peer)
{
	if (is_ip_in_ip(protocol))
		return peer->tunnel == TG_TUNNEL_IPIP ? 0 : TG_SLOT_WRONG_TUNNEL;
	if (protocol == IPPROTO_UDP) {
		if (peer->tunnel != TG_TUNNEL_GUE && peer->tunnel != TG_TUNNEL_FOU)
			return TG_SLOT_WRONG_TUNNEL;
		struct udphdr udp;

		if (payload_len < sizeof(udp) || load(ctx, at, &udp, sizeof(udp)) < 0 ||
		    bpf_ntohs(udp.len) != payload_len)
			return TG_SLOT_BAD_UDP_LENGTH;
		if (udp.dest != peer->port)
			return TG_SLOT_WRONG_TUNNEL;
		if (peer->tunnel == TG_TUNNEL_FOU)
			return 0;
		__u8 gue[4] = {};

		if (payload_len < sizeof(udp) + 1 || load(ctx, at + sizeof(udp), gue, 1) < 0)
			return TG_SLOT_BAD_GUE;
		/* Variant 1: the IP packet directly, IPv4 or IPv6. */
		if ((gue[0] >> 4) == 4 || (gue[0] >> 4) == 6)
			return 0;
		if (payload_len < sizeof(udp) + 4 || load(ctx, at + sizeof(udp), gue, 4) < 0)
			return TG_SLOT_BAD_GUE;
		/* Variant 0 data message, no optional fields, no flags, protocol 4 or 41. */
		if (gue[0] != 0 || !is_ip_in_ip(gue[1]) || gue[2] != 0 || gue[3] != 0)
			return TG_SLOT_BAD_GUE;
		return 0;
	}
	/* GRE (the callers pass only IP-in-IP, UDP and GRE). */
	if (peer->tunnel != TG_TUNNEL_GRE)
		return TG_SLOT_WRONG_TUNNEL;
	__u8 gre[4];

	if (payload_len < 4 || load(ctx, at, gre, 4) < 0)
		return TG_SLOT_BAD_GRE;
	/* Version 0, protocol IPv4 (0x0800) or IPv6 (0x86dd). */
	if ((gre[0] & TG_GRE_REFUSED) || gre[1] != 0 ||
	    !((gre[2] == 0x08 && gre[3] == 0x00) || (gre[2] == 0x86 && gre[3] == 0xdd)))
		return TG_SLOT_BAD_GRE;
	__u32 len = 4 + ((gre[0] & TG_GRE_CHECKSUM) ? 4 : 0) + ((gre[0] & TG_GRE_KEY) ? 4 : 0) +
		    ((gre[0] & TG_GRE_SEQUENCE) ? 4 : 0);

	if (payload_len < len)
		return TG_SLOT_BAD_GRE;
	if (!(gre[0] & TG_GRE_KEY) != !peer->has_key)
		return TG_SLOT_WRONG_GRE_KEY;
	if (!peer->has_key)
		return 0;
	__u32 key;

	if (load(ctx, at + ((gre[0] & TG_GRE_CHECKSUM) ? 8 : 4), &key, sizeof(key)) < 0)
		return TG_SLOT_BAD_GRE; /* cannot happen: len was checked */
	return key == peer->key ? 0 : TG_SLOT_WRONG_GRE_KEY;
}

/*
 * A valid tunnel frame of `frame_len` bytes: redirected to the AF_XDP socket of its receive
 * queue, or passed to the kernel when too large for a UMEM frame, or dropped as rx_overflow.
 */
static __always_inline int deliver(struct xdp_md *ctx, __u32 frame_len)
{
	/* Too large for a UMEM frame: the TPACKET path carries it. */
	if (frame_len > TG_MAX_REDIRECT_FRAME)
		return count(TG_SLOT_PASSED, XDP_PASS);
	__u32 queue = ctx->rx_queue_index;

	if (!bpf_map_lookup_elem(&xsks, &queue))
		return count(TG_SLOT_RX_OVERFLOW, XDP_DROP);
	long action = bpf_redirect_map(&xsks, queue, XDP_DROP);

	if (action != XDP_REDIRECT)
		return count(TG_SLOT_RX_OVERFLOW, XDP_DROP);
	return count(TG_SLOT_REDIRECTED, XDP_REDIRECT);
}

/* An IPv4 frame (the caller has checked the EtherType and that the protocol byte is in it). */
static __always_inline int ingress4(struct xdp_md *ctx, const struct iphdr *ip,
				    const void *data_end)
{
	if (ip->protocol == IPPROTO_UDP) {
		if ((const void *)(ip + 1) > data_end || !is_tunnel_udp(ctx, ip))
			return count(TG_SLOT_PASSED, XDP_PASS);
	} else if (!is_ip_in_ip(ip->protocol) && ip->protocol != IPPROTO_GRE) {
		return count(TG_SLOT_PASSED, XDP_PASS);
	}

	/*
	 * The bytes after the Ethernet header, from the frame's length rather than by subtracting
	 * packet pointers: that needs CAP_PERFMON, and the systemd unit grants only CAP_BPF.
	 * The program is not frags-aware, so the frame is all linear data (kernel >= 5.18).
	 */
	__u32 available = (__u32)bpf_xdp_get_buff_len(ctx) - sizeof(struct ethhdr);
	__u32 header_len = (__u32)ip->ihl * 4;

	if (header_len < sizeof(struct iphdr) || header_len > available)
		return count(TG_SLOT_MALFORMED_OUTER, XDP_DROP);
	/* header_len >= 20 and fits, so the fixed header is readable; tell the verifier. */
	if ((const void *)(ip + 1) > data_end)
		return count(TG_SLOT_MALFORMED_OUTER, XDP_DROP);
	__u32 total_len = bpf_ntohs(ip->tot_len);

	if (total_len < header_len || total_len > available)
		return count(TG_SLOT_MALFORMED_OUTER, XDP_DROP);
	if (header_sum(ip, header_len, data_end) != 0xffff)
		return count(TG_SLOT_BAD_OUTER_CHECKSUM, XDP_DROP);
	if (ip->frag_off & bpf_htons(0x3fff))
		return count(TG_SLOT_OUTER_FRAGMENT, XDP_DROP);

	const struct tg_config *cfg = config_of();

	if (!cfg || !cfg->gateway || ip->daddr != cfg->gateway)
		return count(TG_SLOT_WRONG_GATEWAY, XDP_DROP);
	__u32 source = ip->saddr;

	const struct tg_peer *peer = bpf_map_lookup_elem(&peers, &source);

	if (!peer)
		return count(TG_SLOT_UNKNOWN_PEER, XDP_DROP);
	__u32 problem = tunnel_problem(ctx, ip->protocol, sizeof(struct ethhdr) + header_len,
				       total_len - header_len, peer);

	if (problem)
		return count(problem, XDP_DROP);
	return deliver(ctx, available + sizeof(struct ethhdr));
}

/* Where the walk of an IPv6 frame's extension headers ended. */
struct tg_walk {
	__u32 at;	/* frame offset of the header `next` names */
	__u8 next;	/* the first protocol that is not an extension header walked over */
	__u8 complete;	/* 0: the chain is longer than the walk, or runs past the packet */
	__u8 cut;	/* ... runs past the packet (not complete for that reason) */
	__u8 fragment;	/* a Fragment header of a real fragment (not an atomic one) was passed */
	__u8 later;	/* ... of a later fragment (offset > 0: no upper header follows) */
};

/* Whether the walk steps over next header `next`. */
static __always_inline int is_walked(__u8 next)
{
	return next == TG_NEXT_HOP_BY_HOP || next == TG_NEXT_ROUTING ||
	       next == TG_NEXT_FRAGMENT || next == TG_NEXT_DEST_OPTIONS;
}

/*
 * Walks at most TG_MAX_EXTENSION_HEADERS extension headers (TG_MAX_EXTENSION_BYTES bytes)
 * from `first` (the fixed header's next header) up to frame offset `end` (the end of the
 * packet, or of the frame when that is shorter); hop-by-hop options only first. An atomic
 * fragment (offset 0, no more fragments, RFC 6946) holds the whole packet: not a fragment.
 * A constant bound the verifier unrolls.
 */
static __always_inline void walk6(struct xdp_md *ctx, __u8 first, __u32 end, struct tg_walk *w)
{
	w->at = sizeof(struct ethhdr) + sizeof(struct ipv6hdr);
	w->next = first;
	w->complete = 0;
	w->cut = 0;
	w->fragment = 0;
	w->later = 0;
	for (int i = 0; i < TG_MAX_EXTENSION_HEADERS; i++) {
		if (!is_walked(w->next) || w->later)
			break;
		if (w->next == TG_NEXT_HOP_BY_HOP && i > 0)
			return;
		__u8 h[4];

		if (w->at + 4 > end || load(ctx, w->at, h, 4) < 0) {
			w->cut = 1;
			return;
		}
		__u32 len;

		if (w->next == TG_NEXT_FRAGMENT) {
			len = 8;
			w->later = (h[2] != 0 || (h[3] & 0xf8) != 0);
			w->fragment |= w->later || (h[3] & 1);
		} else {
			len = ((__u32)h[1] + 1) * 8;
		}
		if (w->at + len > end) {
			w->cut = 1;
			return;
		}
		if (w->at + len > sizeof(struct ethhdr) + sizeof(struct ipv6hdr) + TG_MAX_EXTENSION_BYTES)
			return;
		w->next = h[0];
		w->at += len;
	}
	w->complete = w->later || !is_walked(w->next);
}

/* Whether IPv6 address `a` (network byte order) is the gateway's, which must be set. */
static __always_inline int is_gateway6(const struct tg_config *cfg, const struct in6_addr *a)
{
	const __u32 *g = cfg->gateway6;

	if (!(g[0] | g[1] | g[2] | g[3]))
		return 0;
	return a->in6_u.u6_addr32[0] == g[0] && a->in6_u.u6_addr32[1] == g[1] &&
	       a->in6_u.u6_addr32[2] == g[2] && a->in6_u.u6_addr32[3] == g[3];
}

/* An IPv6 frame (the caller has checked the EtherType). */
static __always_inline int ingress6(struct xdp_md *ctx, const struct ipv6hdr *ip,
				    const void *data_end)
{
	if ((const void *)(ip + 1) > data_end) {
		/* Too short for the fixed header: malformed if it names a tunnel, else not ours. */
		if ((const void *)&ip->nexthdr + 1 <= data_end && ip->version == 6 &&
		    (is_ip_in_ip(ip->nexthdr) || ip->nexthdr == IPPROTO_GRE))
			return count(TG_SLOT_MALFORMED_OUTER, XDP_DROP);
		return count(TG_SLOT_PASSED, XDP_PASS);
	}
	if (ip->version != 6)
		return count(TG_SLOT_PASSED, XDP_PASS);
	__u32 available = (__u32)bpf_xdp_get_buff_len(ctx) - sizeof(struct ethhdr);
	__u32 packet_len = sizeof(struct ipv6hdr) + bpf_ntohs(ip->payload_len);
	__u32 end = sizeof(struct ethhdr) + (packet_len < available ? packet_len : available);
	const struct tg_config *cfg = config_of();
	int to_gateway = cfg && is_gateway6(cfg, &ip->daddr);
	struct tg_walk w;

	walk6(ctx, ip->nexthdr, end, &w);
	if (!w.complete) {
		/* The protocol is out of the walk's reach: judged only when sent to us. */
		if (!to_gateway)
			return count(TG_SLOT_PASSED, XDP_PASS);
	} else if (w.next == IPPROTO_UDP) {
		struct udphdr udp;

		if (!to_gateway || w.later || load(ctx, w.at, &udp, sizeof(udp)) < 0 ||
		    !is_tunnel_port(udp.dest))
			return count(TG_SLOT_PASSED, XDP_PASS);
	} else if (!is_ip_in_ip(w.next) && w.next != IPPROTO_GRE) {
		return count(TG_SLOT_PASSED, XDP_PASS);
	}

	/* A tunnel frame (or one to the gateway that hides its protocol): the checks. */
	if (ip->payload_len == 0 || packet_len > available)
		return count(TG_SLOT_MALFORMED_OUTER, XDP_DROP);
	if (!w.complete)
		return count(w.cut ? TG_SLOT_MALFORMED_OUTER : TG_SLOT_BAD_EXTENSION_HEADERS, XDP_DROP);
	if (w.fragment)
		return count(TG_SLOT_OUTER_FRAGMENT, XDP_DROP);
	if (!to_gateway)
		return count(TG_SLOT_WRONG_GATEWAY, XDP_DROP);
	struct in6_addr source = ip->saddr;
	const struct tg_peer *peer = bpf_map_lookup_elem(&peers6, &source);

	if (!peer)
		return count(TG_SLOT_UNKNOWN_PEER, XDP_DROP);
	__u32 payload_len = sizeof(struct ethhdr) + packet_len - w.at;
	__u32 problem = tunnel_problem(ctx, w.next, w.at, payload_len, peer);

	if (problem)
		return count(problem, XDP_DROP);
	return deliver(ctx, available + sizeof(struct ethhdr));
}

SEC("xdp")
int tungate_ingress(struct xdp_md *ctx)
{
	const void *data = (const void *)(long)ctx->data;
	const void *data_end = (const void *)(long)ctx->data_end;
	const struct ethhdr *eth = data;

	if ((const void *)(eth + 1) > data_end)
		return count(TG_SLOT_PASSED, XDP_PASS);
	if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		return ingress6(ctx, (const void *)(eth + 1), data_end);
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return count(TG_SLOT_PASSED, XDP_PASS);
	const struct iphdr *ip = (const void *)(eth + 1);

	/* The protocol byte is the tenth of the header: read it before judging the rest. */
	if ((const void *)&ip->protocol + 1 > data_end || ip->version != 4)
		return count(TG_SLOT_PASSED, XDP_PASS);
	return ingress4(ctx, ip, data_end);
}

char LICENSE[] SEC("license") = "Apache-2.0";
