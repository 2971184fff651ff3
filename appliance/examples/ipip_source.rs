//! `ipip_source`: a real server's replies, as tungate receives them, at a steady rate.
//!
//! Sends IPIP-encapsulated UDP replies (outer RIP -> GIP, inner VIP:443 -> client:port)
//! from an AF_PACKET socket on one interface towards the gateway's MAC address, round robin
//! over the given clients and a few client ports each, paced to `--rate` packets per
//! second, until `--seconds` have passed or it is killed. The end-to-end test of the web UI
//! runs it in the RS namespace of `deploy/ci/live-tungate.sh` so that the dashboard has real
//! traffic to show and a plugin has real packets to drop.
//!
//! It owns only its own socket: it never configures interfaces, addresses or routes, and it
//! sends on the interface it is told to (run it inside a test network namespace). Packets
//! are built with `etherparse`, independently of tungate's own packet code.
//!
//! ```text
//! ipip_source --interface r0 --gateway-mac 02:00:00:00:01:01 --rip 10.200.0.2 \
//!     --gip 10.200.0.1 --vip 192.0.2.10 --client 198.51.100.7 --client 203.0.113.7 \
//!     [--rate 600] [--seconds N] [--flows-per-client 4] [--payload 200]
//! ```

use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Parser;
use etherparse::{IpNumber, Ipv4Header, PacketBuilder};

/// The service port the replies come from (the VIP's HTTPS).
const SERVICE_PORT: u16 = 443;
/// The first client port; each flow of a client uses the next one.
const CLIENT_PORT_BASE: u16 = 40_000;
/// How far the sender may fall behind its schedule before it gives up the lost time
/// (after a stall it resumes the rate instead of sending a burst).
const MAX_LAG: Duration = Duration::from_millis(20);
/// Ethernet protocol number of IPv4.
const ETH_P_IP: u16 = 0x0800;

/// What to send, from the command line.
#[derive(Debug, Parser)]
#[command(about = "Sends IPIP-encapsulated replies (RIP->GIP around VIP->client) at a steady rate")]
struct Options {
    /// Interface to send on (in the RS's namespace).
    #[arg(long)]
    interface: String,
    /// MAC address of the gateway's ingress interface (the frames' destination).
    #[arg(long, value_parser = parse_mac)]
    gateway_mac: [u8; 6],
    /// The real server's address (outer source).
    #[arg(long)]
    rip: Ipv4Addr,
    /// The gateway's address (outer destination).
    #[arg(long)]
    gip: Ipv4Addr,
    /// The VIP the replies come from (inner source).
    #[arg(long)]
    vip: Ipv4Addr,
    /// A client the replies go to (inner destination); give it once per client.
    #[arg(long = "client", required = true)]
    clients: Vec<Ipv4Addr>,
    /// Packets per second, over all clients.
    #[arg(long, default_value_t = 600, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// Stop after this many seconds (default: run until killed).
    #[arg(long)]
    seconds: Option<u64>,
    /// Client ports per client (flows), so the gateway's workers share the traffic.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=1000))]
    flows_per_client: u16,
    /// UDP payload bytes of each reply.
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u16).range(0..=1400))]
    payload: u16,
}

/// Why the source could not run.
#[derive(Debug, thiserror::Error)]
enum SourceError {
    #[error(
        "interface {name:?} not found in this network namespace ({source}); run inside the RS namespace"
    )]
    Interface { name: String, source: nix::Error },
    #[error("cannot open an AF_PACKET socket ({0}); run as root")]
    Socket(std::io::Error),
    #[error("cannot build the reply to {client}: {reason}")]
    Build { client: Ipv4Addr, reason: String },
}

fn parse_mac(text: &str) -> Result<[u8; 6], String> {
    let parts: Vec<&str> = text.split(':').collect();
    let mut mac = [0u8; 6];
    if parts.len() != 6 {
        return Err(format!(
            "{text:?} is not a MAC address like 02:00:00:00:01:01"
        ));
    }
    for (byte, part) in mac.iter_mut().zip(parts) {
        *byte = u8::from_str_radix(part, 16)
            .map_err(|_| format!("{text:?} is not a MAC address like 02:00:00:00:01:01"))?;
    }
    Ok(mac)
}

/// One IPv4 packet: IPIP from `rip` to `gip` around a UDP reply from `vip` to `client`.
fn ipip_reply(
    options: &Options,
    client: Ipv4Addr,
    client_port: u16,
) -> Result<Vec<u8>, SourceError> {
    let build_error = |reason: String| SourceError::Build { client, reason };
    let mut inner = Vec::new();
    PacketBuilder::ipv4(options.vip.octets(), client.octets(), 64)
        .udp(SERVICE_PORT, client_port)
        .write(&mut inner, &vec![0x5a; usize::from(options.payload)])
        .map_err(|e| build_error(e.to_string()))?;
    let length = u16::try_from(inner.len()).map_err(|e| build_error(e.to_string()))?;
    let mut outer = Ipv4Header::new(
        length,
        64,
        IpNumber::IPV4,
        options.rip.octets(),
        options.gip.octets(),
    )
    .map_err(|e| build_error(e.to_string()))?;
    outer.header_checksum = outer.calc_header_checksum();
    let mut packet = outer.to_bytes().to_vec();
    packet.extend_from_slice(&inner);
    Ok(packet)
}

/// An AF_PACKET datagram socket that sends IPv4 packets to `gateway_mac` on `interface`
/// (the kernel adds the Ethernet header with the interface's own source address).
struct Sender {
    fd: OwnedFd,
    destination: libc::sockaddr_ll,
}

impl Sender {
    fn open(interface: &str, gateway_mac: [u8; 6]) -> Result<Sender, SourceError> {
        let index =
            nix::net::if_::if_nametoindex(interface).map_err(|source| SourceError::Interface {
                name: interface.to_owned(),
                source,
            })?;
        // SAFETY: plain socket(2) call; protocol 0 means this socket receives nothing.
        let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(SourceError::Socket(std::io::Error::last_os_error()));
        }
        // SAFETY: fd was just created and nothing else owns it.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: an all-zero sockaddr_ll is valid; the fields that matter are set below.
        let mut destination: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        destination.sll_family = libc::AF_PACKET as u16;
        destination.sll_protocol = ETH_P_IP.to_be();
        destination.sll_ifindex = index as i32;
        destination.sll_halen = 6;
        destination.sll_addr[..6].copy_from_slice(&gateway_mac);
        Ok(Sender { fd, destination })
    }

    /// Sends one packet; false when the kernel refused it (e.g. a full queue).
    fn send(&self, packet: &[u8]) -> bool {
        // SAFETY: packet and destination are valid for the call; sizes are passed.
        let sent = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                (&raw const self.destination).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        sent == packet.len() as isize
    }
}

fn run(options: &Options) -> Result<(), SourceError> {
    let mut packets = Vec::new();
    for flow in 0..options.flows_per_client {
        for &client in &options.clients {
            packets.push(ipip_reply(options, client, CLIENT_PORT_BASE + flow)?);
        }
    }
    let sender = Sender::open(&options.interface, options.gateway_mac)?;
    let interval = Duration::from_secs(1) / options.rate;
    let started = Instant::now();
    let stop_at = options.seconds.map(|s| started + Duration::from_secs(s));
    eprintln!(
        "ipip_source: {} pps of {} flows on {} ({} -> {} around {} -> {:?})",
        options.rate,
        packets.len(),
        options.interface,
        options.rip,
        options.gip,
        options.vip,
        options.clients
    );
    let (mut sent, mut refused) = (0u64, 0u64);
    let mut next = started;
    let mut report_at = started + Duration::from_secs(10);
    for packet in packets.iter().cycle() {
        let now = Instant::now();
        if stop_at.is_some_and(|end| now >= end) {
            break;
        }
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > MAX_LAG {
            next = now;
        }
        if sender.send(packet) {
            sent += 1;
        } else {
            refused += 1;
        }
        next += interval;
        if now >= report_at {
            eprintln!("ipip_source: {sent} sent, {refused} refused by the kernel");
            report_at += Duration::from_secs(10);
        }
    }
    eprintln!("ipip_source: done, {sent} sent, {refused} refused by the kernel");
    Ok(())
}

fn main() -> ExitCode {
    let options = Options::parse();
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ipip_source: {error}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_addresses_parse_and_bad_ones_are_refused() {
        assert_eq!(parse_mac("02:00:00:00:01:0a"), Ok([0x02, 0, 0, 0, 1, 0x0a]));
        assert!(parse_mac("02:00:00:00:01").is_err());
        assert!(parse_mac("02:00:00:00:01:zz").is_err());
    }

    #[test]
    fn a_reply_is_ipip_from_rip_to_gip_around_vip_to_client() {
        let options = Options::parse_from([
            "ipip_source",
            "--interface=r0",
            "--gateway-mac=02:00:00:00:01:01",
            "--rip=10.200.0.2",
            "--gip=10.200.0.1",
            "--vip=192.0.2.10",
            "--client=203.0.113.7",
            "--payload=16",
        ]);
        let packet = ipip_reply(&options, Ipv4Addr::new(203, 0, 113, 7), 40_001).unwrap();
        // outer header: IPIP (4), RIP -> GIP
        assert_eq!(packet[9], 4);
        assert_eq!(&packet[12..16], &[10, 200, 0, 2]);
        assert_eq!(&packet[16..20], &[10, 200, 0, 1]);
        // inner: UDP (17), VIP -> client, 443 -> 40001, 20 + 8 + 16 bytes
        let inner = &packet[20..];
        assert_eq!(inner.len(), 44);
        assert_eq!(inner[9], 17);
        assert_eq!(&inner[12..16], &[192, 0, 2, 10]);
        assert_eq!(&inner[16..20], &[203, 0, 113, 7]);
        assert_eq!(&inner[20..24], &[0x01, 0xbb, 0x9c, 0x41]);
    }
}
