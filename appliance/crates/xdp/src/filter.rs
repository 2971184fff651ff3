//! [`IngressFilter`]: the XDP program loaded, attached to the ingress interface through a BPF
//! link, and its maps kept up to date. Dropping it detaches the program; so does the death of
//! the process (the link is an fd the process owns, never pinned). It refuses to replace
//! another tool's program and replaces a leftover of its own (attached through netlink).

use std::collections::{HashMap as StdHashMap, HashSet};
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};

use aya::Ebpf;
use aya::maps::{Array, HashMap, Map, MapData, PerCpuArray, XskMap};
use aya::programs::{ProgramError, Xdp, XdpFlags, xdp::XdpLinkId};

use crate::counters::XdpCounters;
use crate::error::XdpError;
use crate::interface::{self, FLAGS_DRV_MODE, FLAGS_SKB_MODE};
use crate::program::{
    Config, MAP_CONFIG, MAP_COUNTERS, MAP_PEERS, MAP_PEERS6, MAP_UDP_PORTS, MAP_XSKS, MAX_PEERS,
    MAX_QUEUES, MAX_UDP_PORTS, PROGRAM_NAME, PeerValue, SLOT_PASSED, SLOT_REDIRECTED, object,
};
use crate::sys;
use tungate_packet::Tunnel;

/// Where the program runs: in the driver, or in the kernel's generic hook after the skb is
/// built (works on every device, slower).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XdpMode {
    /// Native (driver) XDP, `XDP_FLAGS_DRV_MODE`.
    Native,
    /// Generic XDP, `XDP_FLAGS_SKB_MODE`.
    Generic,
}

impl XdpMode {
    fn flag(self) -> u32 {
        match self {
            XdpMode::Native => FLAGS_DRV_MODE,
            XdpMode::Generic => FLAGS_SKB_MODE,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            XdpMode::Native => "native",
            XdpMode::Generic => "generic",
        }
    }
}

impl fmt::Display for XdpMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The XDP pre-filter, loaded and attached to one interface. Dropping it detaches it.
pub struct IngressFilter {
    ebpf: Ebpf,
    link: Option<XdpLinkId>,
    ifindex: u32,
    interface: String,
    mode: XdpMode,
    program_id: u32,
    config: Config,
    peers: StdHashMap<IpAddr, Tunnel>,
    udp_ports: HashSet<u16>,
}

impl fmt::Debug for IngressFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IngressFilter")
            .field("interface", &self.interface)
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("program_id", &self.program_id)
            .field("peers", &self.peers.len())
            .finish_non_exhaustive()
    }
}

impl IngressFilter {
    /// Loads the program with `gateway` as the IPv4 GIP (`0.0.0.0`: none), no IPv6 GIP
    /// (see [`set_gateway6`](Self::set_gateway6)) and no peers, and attaches it to interface
    /// `ifindex` in `mode`. A program of tungate's left on the interface by netlink is
    /// replaced; another tool's program is refused ([`XdpError::ForeignProgram`]); a driver
    /// without native XDP gives [`XdpError::NativeUnsupported`]. Until
    /// [`set_peers`](Self::set_peers) and [`bind_socket`](Self::bind_socket), every tunnel
    /// packet is dropped (`unknown_peer`), the host's own traffic passes.
    pub fn attach(ifindex: u32, mode: XdpMode, gateway: Ipv4Addr) -> Result<Self, XdpError> {
        let load = |e| XdpError::Load(Box::new(e));
        let mut ebpf = Ebpf::load(object()).map_err(load)?;
        let program: &mut Xdp = program_of(&mut ebpf)?;
        program
            .load()
            .map_err(|e| load(aya::EbpfError::ProgramError(e)))?;
        let program_id = program
            .info()
            .map_err(|e| load(aya::EbpfError::ProgramError(e)))?
            .id();

        let interface = clear_interface(ifindex)?;
        let mut filter = IngressFilter {
            ebpf,
            link: None,
            ifindex,
            interface,
            mode,
            program_id,
            config: Config::default(),
            peers: StdHashMap::new(),
            udp_ports: HashSet::new(),
        };
        filter.set_gateway(gateway)?;
        let flags = XdpFlags::from_bits_retain(mode.flag());
        let program = program_of(&mut filter.ebpf)?;
        let link = program
            .attach_to_if_index(ifindex, flags)
            .map_err(|e| attach_error(&filter.interface, mode, e))?;
        filter.link = Some(link);
        tracing::info!(
            interface = %filter.interface,
            %mode,
            program_id,
            "XDP pre-filter attached"
        );
        Ok(filter)
    }

    /// Detaches the program from its interface but keeps it loaded, with its maps (peers,
    /// gateway, registered sockets, counters): [`reattach`](Self::reattach) puts the same
    /// program back. Detaching a detached filter does nothing.
    pub fn detach(&mut self) -> Result<(), XdpError> {
        let Some(link) = self.link.take() else {
            return Ok(());
        };
        let program = program_of(&mut self.ebpf)?;
        program
            .detach(link)
            .map_err(|e| attach_error(&self.interface, self.mode, e))?;
        tracing::info!(interface = %self.interface, "XDP pre-filter detached (kept loaded)");
        Ok(())
    }

    /// Attaches the program again after [`detach`](Self::detach), in the same mode on the
    /// same interface, with the same checks as [`attach`](Self::attach) (another tool's
    /// program attached meanwhile is refused). Attaching an attached filter does nothing.
    pub fn reattach(&mut self) -> Result<(), XdpError> {
        if self.link.is_some() {
            return Ok(());
        }
        self.interface = clear_interface(self.ifindex)?;
        let flags = XdpFlags::from_bits_retain(self.mode.flag());
        let program = program_of(&mut self.ebpf)?;
        let link = program
            .attach_to_if_index(self.ifindex, flags)
            .map_err(|e| attach_error(&self.interface, self.mode, e))?;
        self.link = Some(link);
        tracing::info!(
            interface = %self.interface,
            mode = %self.mode,
            program_id = self.program_id,
            "XDP pre-filter attached again"
        );
        Ok(())
    }

    /// Whether the program is attached to its interface.
    pub fn is_attached(&self) -> bool {
        self.link.is_some()
    }

    /// The interface's index.
    pub fn ifindex(&self) -> u32 {
        self.ifindex
    }

    /// The interface's name (when attached).
    pub fn interface(&self) -> &str {
        &self.interface
    }

    /// The mode the program runs in.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The program's id in the kernel (`bpftool prog show id ID`).
    pub fn program_id(&self) -> u32 {
        self.program_id
    }

    /// Makes `peers` the accepted outer sources, IPv4 or IPv6, each with its tunnel (type,
    /// GUE/FOU port, GRE key; the outer family is the address's), and their GUE/FOU ports the
    /// UDP ports taken as tunnel frames: adds, changes and removes map entries while the
    /// program runs (no reload). On an error the maps may hold part of the change; calling
    /// again with the same set completes it.
    pub fn set_peers<A: Into<IpAddr> + Copy>(
        &mut self,
        peers: &[(A, Tunnel)],
    ) -> Result<(), XdpError> {
        let wanted: StdHashMap<IpAddr, Tunnel> =
            peers.iter().map(|&(a, t)| (a.into(), t)).collect();
        let v6 = wanted.keys().filter(|a| a.is_ipv6()).count();
        let count = v6.max(wanted.len() - v6);
        if count > MAX_PEERS {
            return Err(XdpError::TooManyPeers {
                count,
                max: MAX_PEERS,
            });
        }
        let ports: HashSet<u16> = wanted.values().filter_map(|t| t.udp_port()).collect();
        if ports.len() > MAX_UDP_PORTS {
            return Err(XdpError::TooManyUdpPorts {
                count: ports.len(),
                max: MAX_UDP_PORTS,
            });
        }
        // Ports first when they grow, last when they shrink: a peer's frames are never
        // passed to the kernel for want of their port.
        self.add_udp_ports(&ports)?;
        let gone: Vec<IpAddr> = self
            .peers
            .keys()
            .filter(|p| !wanted.contains_key(p))
            .copied()
            .collect();
        for peer in gone {
            let removed = match peer {
                IpAddr::V4(a) => self.peer_map::<u32>(MAP_PEERS)?.remove(&key(a)),
                IpAddr::V6(a) => self.peer_map::<[u8; 16]>(MAP_PEERS6)?.remove(&a.octets()),
            };
            match removed {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(XdpError::map(map_of(peer), "removing a peer", e)),
            }
            self.peers.remove(&peer);
        }
        for (&peer, &tunnel) in &wanted {
            if self.peers.get(&peer) == Some(&tunnel) {
                continue;
            }
            let value = PeerValue::of(tunnel);
            match peer {
                IpAddr::V4(a) => self.peer_map::<u32>(MAP_PEERS)?.insert(key(a), value, 0),
                IpAddr::V6(a) => {
                    self.peer_map::<[u8; 16]>(MAP_PEERS6)?
                        .insert(a.octets(), value, 0)
                }
            }
            .map_err(|e| XdpError::map(map_of(peer), "adding a peer", e))?;
            self.peers.insert(peer, tunnel);
        }
        self.remove_udp_ports(&ports)
    }

    /// The peer map `name` (`peers`, keyed by a `u32`, or `peers6`, by 16 bytes).
    fn peer_map<K: aya::Pod>(
        &mut self,
        name: &'static str,
    ) -> Result<HashMap<&mut MapData, K, PeerValue>, XdpError> {
        HashMap::try_from(map_mut(&mut self.ebpf, name)?)
            .map_err(|e| XdpError::map(name, "opening", e))
    }

    fn add_udp_ports(&mut self, ports: &HashSet<u16>) -> Result<(), XdpError> {
        let mut map: HashMap<&mut MapData, u16, u8> =
            HashMap::try_from(map_mut(&mut self.ebpf, MAP_UDP_PORTS)?)
                .map_err(|e| XdpError::map(MAP_UDP_PORTS, "opening", e))?;
        for &port in ports.difference(&self.udp_ports) {
            map.insert(port.to_be(), 1, 0)
                .map_err(|e| XdpError::map(MAP_UDP_PORTS, "adding a port", e))?;
        }
        self.udp_ports.extend(ports);
        Ok(())
    }

    fn remove_udp_ports(&mut self, ports: &HashSet<u16>) -> Result<(), XdpError> {
        let mut map: HashMap<&mut MapData, u16, u8> =
            HashMap::try_from(map_mut(&mut self.ebpf, MAP_UDP_PORTS)?)
                .map_err(|e| XdpError::map(MAP_UDP_PORTS, "opening", e))?;
        let gone: Vec<u16> = self.udp_ports.difference(ports).copied().collect();
        for port in gone {
            match map.remove(&port.to_be()) {
                Ok(()) | Err(aya::maps::MapError::KeyNotFound) => {}
                Err(e) => return Err(XdpError::map(MAP_UDP_PORTS, "removing a port", e)),
            }
            self.udp_ports.remove(&port);
        }
        Ok(())
    }

    /// Sets the IPv4 gateway address (GIP; `0.0.0.0` when the gateway has none): IPv4
    /// tunnel packets to any other address are dropped (`wrong_gateway`).
    pub fn set_gateway(&mut self, gateway: Ipv4Addr) -> Result<(), XdpError> {
        let config = Config {
            gateway: key(gateway),
            ..self.config
        };
        self.write_config(config)
    }

    /// Sets the IPv6 gateway address (`gateway.address6`), or none: IPv6 tunnel packets to
    /// any other address, or all of them when there is none, are dropped (`wrong_gateway`).
    pub fn set_gateway6(&mut self, gateway: Option<Ipv6Addr>) -> Result<(), XdpError> {
        let config = Config {
            gateway6: gateway.unwrap_or(Ipv6Addr::UNSPECIFIED).octets(),
            ..self.config
        };
        self.write_config(config)
    }

    fn write_config(&mut self, config: Config) -> Result<(), XdpError> {
        let mut map: Array<&mut MapData, Config> =
            Array::try_from(map_mut(&mut self.ebpf, MAP_CONFIG)?)
                .map_err(|e| XdpError::map(MAP_CONFIG, "opening", e))?;
        map.set(0, config, 0)
            .map_err(|e| XdpError::map(MAP_CONFIG, "setting the gateway", e))?;
        self.config = config;
        Ok(())
    }

    /// Redirects the valid tunnel packets of receive queue `queue` to the AF_XDP socket
    /// `xsk` (bound to that queue of this interface). The map holds its own reference to the
    /// socket until [`unbind_socket`](Self::unbind_socket) or the filter's drop.
    pub fn bind_socket(&mut self, queue: u32, xsk: BorrowedFd<'_>) -> Result<(), XdpError> {
        check_queue(queue)?;
        let mut map: XskMap<&mut MapData> = XskMap::try_from(map_mut(&mut self.ebpf, MAP_XSKS)?)
            .map_err(|e| XdpError::map(MAP_XSKS, "opening", e))?;
        map.set(queue, xsk.as_raw_fd(), 0)
            .map_err(|e| XdpError::map(MAP_XSKS, "binding a socket", e))
    }

    /// Removes queue `queue`'s socket: its tunnel packets are then dropped and counted as
    /// `rx_overflow`. Unbinding a queue that has no socket does nothing.
    pub fn unbind_socket(&mut self, queue: u32) -> Result<(), XdpError> {
        check_queue(queue)?;
        let Map::XskMap(data) = map_mut(&mut self.ebpf, MAP_XSKS)? else {
            return Err(XdpError::map(
                MAP_XSKS,
                "opening",
                io::Error::other("not an XSKMAP"),
            ));
        };
        sys::map_delete_u32(data.fd().as_fd(), queue)
            .map(|_| ())
            .map_err(|e| XdpError::map(MAP_XSKS, "unbinding a socket", e))
    }

    /// The program's counters since it was loaded, summed over CPUs.
    pub fn counters(&self) -> Result<XdpCounters, XdpError> {
        let map = self
            .ebpf
            .map(MAP_COUNTERS)
            .ok_or_else(|| missing_map(MAP_COUNTERS))?;
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(map).map_err(|e| XdpError::map(MAP_COUNTERS, "opening", e))?;
        let read = |slot: u32| -> Result<u64, XdpError> {
            let values = array
                .get(&slot, 0)
                .map_err(|e| XdpError::map(MAP_COUNTERS, "reading", e))?;
            Ok(values.iter().sum())
        };
        let mut counters = XdpCounters::default();
        for (slot, count) in counters.drops.iter_mut().enumerate() {
            *count = read(slot as u32)?;
        }
        counters.redirected = read(SLOT_REDIRECTED)?;
        counters.passed = read(SLOT_PASSED)?;
        Ok(counters)
    }
}

impl Drop for IngressFilter {
    fn drop(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        let detached = program_of(&mut self.ebpf).and_then(|p| {
            p.detach(link)
                .map_err(|e| attach_error(&self.interface, self.mode, e))
        });
        match detached {
            Ok(()) => tracing::info!(interface = %self.interface, "XDP pre-filter detached"),
            // The link's fd closes with the program anyway, which detaches it.
            Err(e) => tracing::warn!(interface = %self.interface, "detaching XDP: {e}"),
        }
    }
}

/// The map key or value of an address: its bytes in network order, as the header has them.
fn key(address: Ipv4Addr) -> u32 {
    u32::from_ne_bytes(address.octets())
}

/// The peer map of an address's family.
fn map_of(peer: IpAddr) -> &'static str {
    match peer {
        IpAddr::V4(_) => MAP_PEERS,
        IpAddr::V6(_) => MAP_PEERS6,
    }
}

fn check_queue(queue: u32) -> Result<(), XdpError> {
    if queue >= MAX_QUEUES {
        return Err(XdpError::QueueOutOfRange {
            queue,
            max: MAX_QUEUES,
        });
    }
    Ok(())
}

fn missing_map(map: &'static str) -> XdpError {
    XdpError::map(map, "finding", io::Error::other("not in the object"))
}

fn map_mut<'a>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut Map, XdpError> {
    ebpf.map_mut(name).ok_or_else(|| missing_map(name))
}

fn program_of(ebpf: &mut Ebpf) -> Result<&mut Xdp, XdpError> {
    let load = |e| XdpError::Load(Box::new(aya::EbpfError::ProgramError(e)));
    ebpf.program_mut(PROGRAM_NAME)
        .ok_or(load(ProgramError::UnexpectedProgramType))?
        .try_into()
        .map_err(load)
}

/// Looks at the interface before attaching: refuses another tool's program, detaches a
/// leftover of tungate's that netlink attached, and returns the interface's name.
fn clear_interface(ifindex: u32) -> Result<String, XdpError> {
    let netlink = |what, source| XdpError::Netlink {
        what,
        interface: ifindex.to_string(),
        source,
    };
    let state = interface::query(ifindex)
        .map_err(|e| netlink("reading the XDP state", e))?
        .ok_or(XdpError::NoInterface(ifindex))?;
    for attached in &state.attached {
        let name = match interface::program_name(attached.id) {
            Ok(Some(name)) => name,
            // A program that vanished between the two looks is no longer in the way.
            Ok(None) => continue,
            Err(e) => {
                return Err(XdpError::UnknownProgram {
                    interface: state.name,
                    id: attached.id,
                    reason: e.to_string(),
                });
            }
        };
        if name != PROGRAM_NAME {
            return Err(XdpError::ForeignProgram {
                interface: state.name,
                name,
                id: attached.id,
            });
        }
        match interface::detach(ifindex, attached.mode_flag) {
            Ok(()) => tracing::warn!(
                interface = %state.name,
                program_id = attached.id,
                "replaced a leftover tungate XDP program"
            ),
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                return Err(XdpError::InUse {
                    interface: state.name,
                    id: attached.id,
                });
            }
            Err(e) => {
                return Err(XdpError::Netlink {
                    what: "detaching a leftover XDP program",
                    interface: state.name,
                    source: e,
                });
            }
        }
    }
    Ok(state.name)
}

/// The error of an attach or detach, with what the kernel's answer usually means.
fn attach_error(interface: &str, mode: XdpMode, e: ProgramError) -> XdpError {
    let source = match e {
        ProgramError::SyscallError(s) => s.io_error,
        other => io::Error::other(other),
    };
    if mode == XdpMode::Native && source.raw_os_error() == Some(libc::EOPNOTSUPP) {
        return XdpError::NativeUnsupported {
            interface: interface.to_owned(),
        };
    }
    let hint = match source.raw_os_error() {
        Some(libc::ERANGE) => {
            " (the MTU is too large for XDP; on veth the peer's MTU must be at most 3506)"
        }
        Some(libc::EBUSY | libc::EEXIST) => {
            " (another XDP program is attached, perhaps in the other mode)"
        }
        _ => "",
    };
    XdpError::Attach {
        interface: interface.to_owned(),
        mode: mode.as_str(),
        source,
        hint,
    }
}
