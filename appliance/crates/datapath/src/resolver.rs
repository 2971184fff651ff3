//! The next-hop resolver: a thread that asks the kernel's route and neighbour tables over
//! rtnetlink where each client address (IPv4 or IPv6) is reached, watches route, neighbour and link
//! changes, and publishes what the workers need to build Ethernet headers themselves.
//!
//! Workers never do netlink I/O: they send a [`Request`] for an unknown destination over a
//! channel (and meanwhile use the raw fallback), receive the [`RouteAnswer`] on their own
//! channel, keep it in a local cache, and read the next hops from an `arc-swap` snapshot
//! ([`NextHops`]). A route change bumps the snapshot's generation, which tells workers to
//! forget their cached answers; a neighbour or link change only republishes the next hops.
//! For peers with `check_source_mac`, workers ask for the peer's address the same way, and
//! the snapshot then carries the link-layer source the peer's frames must come from
//! ([`NextHops::sources`]): its neighbour entry when on-link, else that of the router the
//! route to it uses; kept current on every route, neighbour and link change.
//! This module never sends or receives data-path packets.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use arc_swap::ArcSwap;
use crossbeam_channel::{Receiver, Sender, TrySendError};
use netlink_packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use netlink_packet_route::link::{LinkAttribute, LinkLayerType, LinkMessage};
use netlink_packet_route::neighbour::{
    NeighbourAddress, NeighbourAttribute, NeighbourMessage, NeighbourState,
};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteMetric, RouteType,
};
use netlink_packet_route::{AddressFamily, RouteNetlinkMessage};
use netlink_sys::{Socket, protocols::NETLINK_ROUTE};

/// Index of a next hop in [`NextHops::hops`] (stable for the resolver's life).
pub(crate) type HopId = u32;

/// Where packets to one next hop go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NextHop {
    /// The egress interface.
    pub(crate) ifindex: u32,
    /// The next hop's address (a gateway, or the destination itself when on-link), of the
    /// destination's family.
    pub(crate) address: IpAddr,
    /// The MTU towards it (route MTU if set, else the interface's).
    pub(crate) mtu: u32,
    /// The Ethernet header (destination MAC, source MAC, IPv4 or IPv6 by the family of
    /// `address`) when the interface is
    /// Ethernet and the neighbour is resolved; `None` means "use the raw fallback".
    pub(crate) ethernet: Option<[u8; 14]>,
}

/// The published next hops.
#[derive(Debug, Default)]
pub(crate) struct NextHops {
    /// Bumped on every route change: cached [`RouteAnswer`]s of older generations are stale.
    pub(crate) generation: u64,
    /// The next hops by [`HopId`].
    pub(crate) hops: Vec<NextHop>,
    /// Per peer address asked about with [`ResolverLink::ask_source`]: the MAC its frames
    /// must come from; absent while unresolved (the check then fails closed).
    pub(crate) sources: HashMap<IpAddr, [u8; 6]>,
}

/// The answer for one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteAnswer {
    /// Reached through this next hop.
    Hop(HopId),
    /// No unicast route (unreachable, blackhole, prohibit, local, or an error).
    Unreachable,
}

/// A worker asks where `destination` is reached.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Request {
    /// The asking worker's index.
    pub(crate) worker: usize,
    /// The inner destination (the client), or a checked peer's address.
    pub(crate) destination: IpAddr,
    /// Whether this asks for a peer's expected link-layer source rather than a next hop.
    pub(crate) peer_source: bool,
}

/// An answer to one worker: destination, answer, and the generation it belongs to.
pub(crate) type Answer = (IpAddr, RouteAnswer, u64);

/// A worker's end of the resolver.
#[derive(Clone)]
pub(crate) struct ResolverLink {
    /// The published next hops.
    pub(crate) hops: Arc<ArcSwap<NextHops>>,
    /// Where to send requests (never blocks: a full queue means "ask again later").
    pub(crate) requests: Sender<Request>,
    /// This worker's answers.
    pub(crate) answers: Receiver<Answer>,
}

impl ResolverLink {
    /// Asks for `destination`; false when the queue is full.
    pub(crate) fn ask(&self, worker: usize, destination: IpAddr) -> bool {
        !matches!(
            self.requests.try_send(Request {
                worker,
                destination,
                peer_source: false,
            }),
            Err(TrySendError::Full(_))
        )
    }

    /// Asks the resolver to learn and keep current the link-layer source `peer`'s frames
    /// must come from ([`NextHops::sources`]); false when the queue is full.
    pub(crate) fn ask_source(&self, worker: usize, peer: IpAddr) -> bool {
        !matches!(
            self.requests.try_send(Request {
                worker,
                destination: peer,
                peer_source: true,
            }),
            Err(TrySendError::Full(_))
        )
    }
}

/// The resolver thread; dropping it stops the thread.
pub(crate) struct Resolver {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// The resolver could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot start the next-hop resolver ({what}): {source}")]
pub struct ResolverError {
    what: &'static str,
    source: io::Error,
}

impl Resolver {
    /// Starts the resolver for `workers` workers; `egress` pins every lookup to one
    /// interface (the configured egress interface). Returns one link per worker.
    pub(crate) fn start(
        workers: usize,
        egress: Option<u32>,
    ) -> Result<(Resolver, Vec<ResolverLink>), ResolverError> {
        let mut state = State::open(egress)?;
        state.load_neighbours().map_err(|source| ResolverError {
            what: "dump neighbours",
            source,
        })?;
        let hops = Arc::new(ArcSwap::from_pointee(NextHops::default()));
        let (req_tx, req_rx) = crossbeam_channel::bounded(4096);
        let mut answer_txs = Vec::with_capacity(workers);
        let mut links = Vec::with_capacity(workers);
        for _ in 0..workers {
            let (tx, rx) = crossbeam_channel::bounded(4096);
            answer_txs.push(tx);
            links.push(ResolverLink {
                hops: hops.clone(),
                requests: req_tx.clone(),
                answers: rx,
            });
        }
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::Builder::new()
            .name("tg-resolver".into())
            .spawn(move || state.run(&stop2, &req_rx, &answer_txs, &hops))
            .map_err(|source| ResolverError {
                what: "spawn thread",
                source,
            })?;
        Ok((
            Resolver {
                stop,
                thread: Some(thread),
            },
            links,
        ))
    }
}

impl Drop for Resolver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// What `ip route get` said.
struct RouteFound {
    ifindex: u32,
    gateway: Option<IpAddr>,
    mtu: Option<u32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct LinkInfo {
    mtu: u32,
    /// The interface's MAC when it is an Ethernet interface.
    mac: Option<[u8; 6]>,
}

struct State {
    query: Socket,
    events: Socket,
    seq: u32,
    egress: Option<u32>,
    generation: u64,
    hops: Vec<NextHop>,
    /// The route's own MTU of each hop, if it has one.
    route_mtus: Vec<Option<u32>>,
    hop_ids: HashMap<(u32, IpAddr), HopId>,
    neighbours: HashMap<(u32, IpAddr), [u8; 6]>,
    links: HashMap<u32, LinkInfo>,
    /// Expected link-layer source per checked peer address (`None`: unresolved).
    sources: HashMap<IpAddr, Option<[u8; 6]>>,
    buffer: Vec<u8>,
}

fn netlink_socket(what: &'static str) -> Result<Socket, ResolverError> {
    let fail = |source| ResolverError { what, source };
    let mut s = Socket::new(NETLINK_ROUTE).map_err(fail)?;
    s.bind_auto().map_err(fail)?;
    Ok(s)
}

impl State {
    fn open(egress: Option<u32>) -> Result<State, ResolverError> {
        let query = netlink_socket("query socket")?;
        super::afpacket::set_receive_timeout(
            std::os::fd::AsFd::as_fd(&query),
            Duration::from_secs(2),
        )
        .map_err(|source| ResolverError {
            what: "query socket timeout",
            source,
        })?;
        let events = netlink_socket("event socket")?;
        for group in [
            libc::RTNLGRP_LINK,
            libc::RTNLGRP_NEIGH,
            libc::RTNLGRP_IPV4_ROUTE,
            libc::RTNLGRP_IPV6_ROUTE,
        ] {
            events
                .add_membership(group)
                .map_err(|source| ResolverError {
                    what: "subscribe to route, neighbour and link changes",
                    source,
                })?;
        }
        events
            .set_non_blocking(true)
            .map_err(|source| ResolverError {
                what: "event socket",
                source,
            })?;
        Ok(State {
            query,
            events,
            seq: 0,
            egress,
            generation: 0,
            hops: Vec::new(),
            route_mtus: Vec::new(),
            hop_ids: HashMap::new(),
            neighbours: HashMap::new(),
            links: HashMap::new(),
            sources: HashMap::new(),
            buffer: vec![0; 64 * 1024],
        })
    }

    fn run(
        mut self,
        stop: &AtomicBool,
        requests: &Receiver<Request>,
        answers: &[Sender<Answer>],
        published: &ArcSwap<NextHops>,
    ) {
        let mut dirty = true;
        while !stop.load(Ordering::Relaxed) {
            let generation = self.generation;
            dirty |= self.drain_events();
            if dirty {
                if self.generation != generation {
                    // A route changed: a peer may now be reached through another router.
                    self.refresh_sources();
                }
                published.store(Arc::new(NextHops {
                    generation: self.generation,
                    hops: self.hops.clone(),
                    sources: self
                        .sources
                        .iter()
                        .filter_map(|(&peer, &mac)| Some((peer, mac?)))
                        .collect(),
                }));
                dirty = false;
            }
            let first = match requests.recv_timeout(Duration::from_millis(20)) {
                Ok(r) => r,
                Err(_) => continue,
            };
            let before = self.hops.len();
            for req in std::iter::once(first).chain(requests.try_iter()) {
                if req.peer_source {
                    if !self.sources.contains_key(&req.destination) {
                        let mac = self.expected_source(req.destination);
                        self.sources.insert(req.destination, mac);
                        dirty |= mac.is_some();
                    }
                    continue;
                }
                let answer = self.resolve(req.destination);
                if let Some(tx) = answers.get(req.worker) {
                    let _ = tx.try_send((req.destination, answer, self.generation));
                }
            }
            // New hops must be visible before a worker acts on an answer naming them; the
            // worker also checks the id against the snapshot it holds.
            if self.hops.len() != before {
                dirty = true;
            }
        }
    }

    /// Applies pending change notifications; true if the next hops changed.
    fn drain_events(&mut self) -> bool {
        let mut changed = false;
        loop {
            let n = match self
                .events
                .recv(&mut &mut self.buffer[..], libc::MSG_DONTWAIT)
            {
                Ok(n) => n.min(self.buffer.len()),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    // ENOBUFS: notifications were lost; start over from the kernel's view.
                    tracing::debug!("resolver event socket: {e}; reloading");
                    self.generation += 1;
                    let _ = self.load_neighbours();
                    self.refresh_links();
                    return true;
                }
            };
            let messages = parse_all(&self.buffer[..n]);
            for msg in messages {
                changed |= self.apply_event(msg);
            }
        }
        changed
    }

    fn apply_event(&mut self, msg: RouteNetlinkMessage) -> bool {
        match msg {
            RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
                if !may_route_a_client(&r) {
                    return false;
                }
                self.generation += 1;
                true
            }
            RouteNetlinkMessage::NewNeighbour(n) => {
                self.learn_neighbour(&n);
                self.refresh_hops() | self.refresh_sources()
            }
            RouteNetlinkMessage::DelNeighbour(n) => {
                if let Some(key) = neighbour_key(&n) {
                    self.neighbours.remove(&key);
                }
                self.refresh_hops() | self.refresh_sources()
            }
            RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) => {
                self.links.remove(&l.header.index);
                self.generation += 1;
                self.refresh_hops();
                true
            }
            _ => false,
        }
    }

    fn refresh_links(&mut self) {
        self.links.clear();
        self.refresh_hops();
    }

    /// The MAC that frames from `peer` must come from: the neighbour entry of `peer` when
    /// the route to it is on-link, else that of the route's gateway; `None` when there is
    /// no route or the neighbour is not resolved.
    fn expected_source(&mut self, peer: IpAddr) -> Option<[u8; 6]> {
        // Not pinned to the egress interface: the peer's frames arrive on the ingress one.
        let found = self.route_get(peer, None).ok()??;
        let hop = found.gateway.unwrap_or(peer);
        self.neighbours.get(&(found.ifindex, hop)).copied()
    }

    /// Recomputes every checked peer's expected source; true if any changed.
    fn refresh_sources(&mut self) -> bool {
        let peers: Vec<IpAddr> = self.sources.keys().copied().collect();
        let mut changed = false;
        for peer in peers {
            let mac = self.expected_source(peer);
            changed |= self.sources.insert(peer, mac) != Some(mac);
        }
        changed
    }

    /// Recomputes every hop's MTU and Ethernet header; true if any changed.
    fn refresh_hops(&mut self) -> bool {
        let mut changed = false;
        for i in 0..self.hops.len() {
            let hop = self.hops[i].clone();
            let link = self.link(hop.ifindex);
            let mtu = match (link, self.route_mtus[i]) {
                (Some(l), Some(r)) => l.mtu.min(r),
                (Some(l), None) => l.mtu,
                (None, _) => hop.mtu,
            };
            let ethernet = self.ethernet_header(hop.ifindex, hop.address);
            if ethernet != hop.ethernet || mtu != hop.mtu {
                self.hops[i].ethernet = ethernet;
                self.hops[i].mtu = mtu;
                changed = true;
            }
        }
        changed
    }

    fn ethernet_header(&mut self, ifindex: u32, address: IpAddr) -> Option<[u8; 14]> {
        let own = self.link(ifindex)?.mac?;
        let peer = *self.neighbours.get(&(ifindex, address))?;
        let mut h = [0u8; 14];
        h[..6].copy_from_slice(&peer);
        h[6..12].copy_from_slice(&own);
        let ethertype: [u8; 2] = match address {
            IpAddr::V4(_) => [0x08, 0x00],
            IpAddr::V6(_) => [0x86, 0xdd],
        };
        h[12..14].copy_from_slice(&ethertype);
        Some(h)
    }

    fn resolve(&mut self, destination: IpAddr) -> RouteAnswer {
        let Ok(Some(RouteFound {
            ifindex,
            gateway,
            mtu: route_mtu,
        })) = self.route_get(destination, self.egress)
        else {
            return RouteAnswer::Unreachable;
        };
        let address = gateway.unwrap_or(destination);
        if let Some(&id) = self.hop_ids.get(&(ifindex, address)) {
            return RouteAnswer::Hop(id);
        }
        let link_mtu = self.link(ifindex).map_or(1500, |l| l.mtu);
        let mtu = route_mtu.map_or(link_mtu, |m| m.min(link_mtu));
        let id = self.hops.len() as HopId;
        let ethernet = self.ethernet_header(ifindex, address);
        self.hops.push(NextHop {
            ifindex,
            address,
            mtu,
            ethernet,
        });
        self.route_mtus.push(route_mtu);
        self.hop_ids.insert((ifindex, address), id);
        RouteAnswer::Hop(id)
    }

    fn link(&mut self, ifindex: u32) -> Option<LinkInfo> {
        if let Some(l) = self.links.get(&ifindex) {
            return Some(*l);
        }
        let mut msg = LinkMessage::default();
        msg.header.index = ifindex;
        let replies = self
            .request(RouteNetlinkMessage::GetLink(msg), false)
            .ok()?;
        for reply in replies {
            if let RouteNetlinkMessage::NewLink(l) = reply {
                let mut info = LinkInfo {
                    mtu: 1500,
                    mac: None,
                };
                for a in &l.attributes {
                    match a {
                        LinkAttribute::Mtu(m) => info.mtu = *m,
                        LinkAttribute::Address(mac)
                            if l.header.link_layer_type == LinkLayerType::Ether
                                && mac.len() == 6 =>
                        {
                            info.mac = mac[..].try_into().ok();
                        }
                        _ => {}
                    }
                }
                self.links.insert(ifindex, info);
                return Some(info);
            }
        }
        None
    }

    /// `ip route get DESTINATION [oif OIF]`, or `None`
    /// when the kernel has no unicast route.
    fn route_get(
        &mut self,
        destination: IpAddr,
        oif: Option<u32>,
    ) -> io::Result<Option<RouteFound>> {
        let mut msg = RouteMessage::default();
        let (family, length, address) = match destination {
            IpAddr::V4(a) => (AddressFamily::Inet, 32, RouteAddress::Inet(a)),
            IpAddr::V6(a) => (AddressFamily::Inet6, 128, RouteAddress::Inet6(a)),
        };
        msg.header.address_family = family;
        msg.header.destination_prefix_length = length;
        msg.attributes.push(RouteAttribute::Destination(address));
        if let Some(oif) = oif {
            msg.attributes.push(RouteAttribute::Oif(oif));
        }
        let replies = self.request(RouteNetlinkMessage::GetRoute(msg), false)?;
        for reply in replies {
            let RouteNetlinkMessage::NewRoute(r) = reply else {
                continue;
            };
            if r.header.kind != RouteType::Unicast {
                return Ok(None);
            }
            let mut oif = None;
            let mut gateway = None;
            let mut mtu = None;
            for a in &r.attributes {
                match a {
                    RouteAttribute::Oif(i) => oif = Some(*i),
                    RouteAttribute::Gateway(RouteAddress::Inet(g)) => gateway = Some((*g).into()),
                    RouteAttribute::Gateway(RouteAddress::Inet6(g)) => {
                        gateway = Some((*g).into());
                    }
                    RouteAttribute::Metrics(ms) => {
                        for m in ms {
                            if let RouteMetric::Mtu(v) = m {
                                mtu = Some(*v);
                            }
                        }
                    }
                    _ => {}
                }
            }
            return Ok(oif.map(|ifindex| RouteFound {
                ifindex,
                gateway,
                mtu,
            }));
        }
        Ok(None)
    }

    fn load_neighbours(&mut self) -> io::Result<()> {
        self.neighbours.clear();
        for family in [AddressFamily::Inet, AddressFamily::Inet6] {
            let mut msg = NeighbourMessage::default();
            msg.header.family = family;
            let replies = self.request(RouteNetlinkMessage::GetNeighbour(msg), true)?;
            for reply in replies {
                if let RouteNetlinkMessage::NewNeighbour(n) = reply {
                    self.learn_neighbour(&n);
                }
            }
        }
        Ok(())
    }

    fn learn_neighbour(&mut self, n: &NeighbourMessage) {
        let Some(key) = neighbour_key(n) else {
            return;
        };
        let usable = matches!(
            n.header.state,
            NeighbourState::Reachable
                | NeighbourState::Stale
                | NeighbourState::Delay
                | NeighbourState::Probe
                | NeighbourState::Permanent
                | NeighbourState::Noarp
        );
        let mac = n.attributes.iter().find_map(|a| match a {
            NeighbourAttribute::LinkLayerAddress(m) if m.len() == 6 => m[..].try_into().ok(),
            _ => None,
        });
        match (usable, mac) {
            (true, Some(mac)) => {
                self.neighbours.insert(key, mac);
            }
            _ => {
                self.neighbours.remove(&key);
            }
        }
    }

    /// Sends one request and collects the replies (all parts of a dump).
    fn request(
        &mut self,
        message: RouteNetlinkMessage,
        dump: bool,
    ) -> io::Result<Vec<RouteNetlinkMessage>> {
        self.seq = self.seq.wrapping_add(1);
        let mut nl = NetlinkMessage::from(message);
        nl.header.flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        nl.header.sequence_number = self.seq;
        nl.finalize();
        let mut out = vec![0; nl.buffer_len()];
        nl.serialize(&mut out);
        self.query.send(&out, 0)?;
        let mut replies = Vec::new();
        loop {
            let n = self.query.recv(&mut &mut self.buffer[..], 0)?;
            let mut offset = 0;
            let data = &self.buffer[..n.min(self.buffer.len())];
            while offset < data.len() {
                let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                else {
                    return Err(io::Error::other("undecodable netlink reply"));
                };
                let len = msg.header.length as usize;
                if msg.header.sequence_number == self.seq {
                    match msg.payload {
                        NetlinkPayload::InnerMessage(m) => {
                            replies.push(m);
                            if !dump {
                                return Ok(replies);
                            }
                        }
                        NetlinkPayload::Done(_) => return Ok(replies),
                        NetlinkPayload::Error(e) => {
                            return match e.code {
                                None => Ok(replies),
                                Some(code) => Err(io::Error::from_raw_os_error(-code.get())),
                            };
                        }
                        _ => {}
                    }
                }
                if len == 0 {
                    break;
                }
                offset += len.next_multiple_of(4);
            }
        }
    }
}

/// Whether a route change may change where a client is reached: not a multicast route, nor
/// one to an IPv6 link-local or multicast prefix (the kernel adds those on every interface
/// that comes up, and no client address is one of them). Without this filter, IPv6
/// autoconfiguration on an unrelated interface would make every worker forget its next hops
/// for a moment.
fn may_route_a_client(route: &RouteMessage) -> bool {
    if route.header.kind == RouteType::Multicast {
        return false;
    }
    !route.attributes.iter().any(|a| {
        matches!(a, RouteAttribute::Destination(RouteAddress::Inet6(d))
            if d.is_unicast_link_local() || d.is_multicast())
    })
}

fn neighbour_key(n: &NeighbourMessage) -> Option<(u32, IpAddr)> {
    n.attributes.iter().find_map(|a| match a {
        NeighbourAttribute::Destination(NeighbourAddress::Inet(ip)) => {
            Some((n.header.ifindex, (*ip).into()))
        }
        NeighbourAttribute::Destination(NeighbourAddress::Inet6(ip)) => {
            Some((n.header.ifindex, (*ip).into()))
        }
        _ => None,
    })
}

fn parse_all(mut data: &[u8]) -> Vec<RouteNetlinkMessage> {
    let mut out = Vec::new();
    while !data.is_empty() {
        let Ok(msg) = NetlinkMessage::<RouteNetlinkMessage>::deserialize(data) else {
            break;
        };
        let len = (msg.header.length as usize).next_multiple_of(4);
        if let NetlinkPayload::InnerMessage(m) = msg.payload {
            out.push(m);
        }
        if len == 0 || len > data.len() {
            break;
        }
        data = &data[len..];
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    /// Read-only lookups in this process's own network namespace: loopback only.
    #[test]
    fn loopback_resolves_to_lo_and_workers_get_answers() {
        let (resolver, links) = Resolver::start(2, None).unwrap();
        assert!(links[1].ask(1, Ipv4Addr::LOCALHOST.into()));
        let (dst, answer, _) = links[1]
            .answers
            .recv_timeout(Duration::from_secs(5))
            .unwrap();
        assert_eq!(dst, IpAddr::from(Ipv4Addr::LOCALHOST));
        // 127.0.0.1 is a local route, not a unicast one: the data path never forwards there.
        assert_eq!(answer, RouteAnswer::Unreachable);
        assert!(links[0].answers.try_recv().is_err());
        drop(resolver);
    }

    #[test]
    fn link_local_and_multicast_route_changes_keep_the_next_hops() {
        let route = |kind, destination: Option<std::net::Ipv6Addr>| {
            let mut r = RouteMessage::default();
            r.header.kind = kind;
            if let Some(d) = destination {
                r.attributes
                    .push(RouteAttribute::Destination(RouteAddress::Inet6(d)));
            }
            r
        };
        assert!(!may_route_a_client(&route(
            RouteType::Unicast,
            Some("fe80::".parse().unwrap())
        )));
        assert!(!may_route_a_client(&route(
            RouteType::Unicast,
            Some("ff00::".parse().unwrap())
        )));
        assert!(!may_route_a_client(&route(RouteType::Multicast, None)));
        assert!(may_route_a_client(&route(
            RouteType::Unicast,
            Some("2001:db8::".parse().unwrap())
        )));
        assert!(may_route_a_client(&route(
            RouteType::Unreachable,
            Some("2001:db8::".parse().unwrap())
        )));
        assert!(
            may_route_a_client(&route(RouteType::Unicast, None)),
            "a default route"
        );
    }
}
