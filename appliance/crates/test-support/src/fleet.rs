//! The fleet topology (issue 15): a `router` namespace running BIRD with ECMP
//! (`merge paths`, `fib_multipath_hash_policy` 3 over the inner addresses and ports), N
//! gateway namespaces each running BIRD and `tungate run --fleet`, a real server (`rs`)
//! sending crafted IPIP replies of many flows to GIP through the router, and a `client`
//! receiving them through the router again. The BIRD configurations (the shipped
//! `deploy/fleet/` files with their placeholders filled in), the link addressing and the
//! router's sysctls come from `tungate_demo::bird`, which `tungate demo --gateways N` uses
//! too.
//!
//! ```text
//!  rs 10.2.0.2 ── 10.2.0.1 router 10.1.N.1 ── 10.1.N.2 gwN eth0 (GIP on lo, tg-health, BIRD)
//!                                 10.4.N.1 ── 10.4.N.2 gwN eth1 (egress: replies to clients)
//!                           10.3.0.1 ── 10.3.0.2 client (198.51.100.0/24 routed to it)
//! ```
//!
//! Each gateway has two links to the router: `eth0` carries BGP and the tunnelled replies
//! (its ingress interface), `eth1` is its `gateway.egress_interface`, routed towards the
//! clients. Taking `eth1`'s carrier away ([`Fleet::set_egress_carrier`]) makes the gateway
//! not ready while its BGP session lives: the route leaves by readiness, not by BGP timers.
//!
//! Every process it starts (BIRD, tungate) is killed on drop, before its namespace goes.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use etherparse::PacketBuilder;

use crate::etcd::Etcd;
use crate::flood::BulkSender;
use crate::frames::FrameSocket;
use crate::netns::Netns;
use crate::packets::ethernet;
use crate::process::Tungate;
use crate::topology::veth;
use crate::wait::until;

/// The fleet's shared gateway address.
pub const GIP: Ipv4Addr = Ipv4Addr::new(10, 200, 0, 1);
/// The real server's address.
pub const RIP: Ipv4Addr = Ipv4Addr::new(10, 2, 0, 2);
/// The VIP it answers for.
pub const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 10);
pub use tungate_demo::bird::{BIRD_GATEWAY, BIRD_ROUTER, FLEET_AS, ROUTER_AS, gateway_link};
/// Client addresses (198.51.100.1 ...).
pub const CLIENTS: u8 = 16;
/// Destination ports per client (40000 ...).
pub const PORTS: u16 = 4;
/// Flows: every client address with every port.
pub const FLOWS: u32 = CLIENTS as u32 * PORTS as u32;
/// The fleet name the gateways run with.
pub const FLEET_NAME: &str = "test";
/// The admin port of a gateway whose admin API listens on its link.
pub const ADMIN_PORT: u16 = 9080;

const RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x02];
const ROUTER_RS_MAC: [u8; 6] = [0x02, 0, 0, 0, 0x0a, 0x01];
/// Longest a stream runs (its loops stop by themselves after this).
const LONGEST: Duration = Duration::from_secs(300);
/// Replies per send call: small, so the stream is smooth at the millisecond scale of a
/// failover (a burst every 8 ms at 1000/s).
const CHUNK: u32 = 8;

/// Client address `i` (0-based).
pub fn client(i: u8) -> Ipv4Addr {
    Ipv4Addr::new(198, 51, 100, 1 + i)
}

/// Gateway `i`'s (1-based) address on its link to the router with [`ADMIN_PORT`].
pub fn admin_address(i: usize) -> String {
    format!("{}:{ADMIN_PORT}", gateway_link(i).1)
}

/// The router's address towards gateway `i`'s (1-based) egress link and the gateway's own
/// address there (`10.4.i.1` and `10.4.i.2`, /24).
pub fn egress_link(i: usize) -> (Ipv4Addr, Ipv4Addr) {
    (
        Ipv4Addr::new(10, 4, i as u8, 1),
        Ipv4Addr::new(10, 4, i as u8, 2),
    )
}

/// The router's end of gateway `i`'s egress link.
fn egress_peer(i: usize) -> String {
    format!("gw{i}e")
}

/// A BIRD daemon in the foreground, killed on drop.
pub struct Bird {
    child: Child,
    /// Its control socket (for `birdc -s`).
    pub socket: PathBuf,
}

impl Bird {
    /// Starts `bird -f` in `ns` with `config` (its log goes to a file next to it).
    pub fn start(ns: &Netns, name: &str, config: &str) -> Bird {
        let log = ns.path(&format!("{name}.log"));
        let config = tungate_demo::bird::log_to_file(config, &log);
        let path = ns.path(&format!("{name}.conf"));
        std::fs::write(&path, config).expect("write the BIRD configuration");
        let socket = ns.path(&format!("{name}.ctl"));
        let pid = ns.path(&format!("{name}.pid"));
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name, "bird", "-f", "-c"])
            .arg(&path)
            .arg("-s")
            .arg(&socket)
            .arg("-P")
            .arg(&pid)
            .stdout(Stdio::null())
            .spawn()
            .expect("start bird (apt-get install bird2)");
        let bird = Bird { child, socket };
        until(
            Duration::from_secs(10),
            "BIRD answers on its socket",
            || bird.birdc(&["show", "status"]).contains("Daemon is up"),
        );
        bird
    }

    /// `birdc -s SOCKET ARGS`: its output.
    pub fn birdc(&self, args: &[&str]) -> String {
        let out = Command::new("birdc")
            .arg("-s")
            .arg(&self.socket)
            .args(args)
            .output()
            .expect("run birdc");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Bird {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One gateway: its namespace, BIRD and (while it runs) tungate.
pub struct Gateway {
    /// tungate, while it runs (dropped first: killed before BIRD and the namespace).
    pub tungate: Option<Tungate>,
    /// Its BIRD.
    pub bird: Bird,
    /// Its number (1-based).
    pub index: usize,
    /// Extra `tungate run` arguments (e.g. `--admin-listen` on [`Gateway::admin_address`]
    /// for a scraper in the router).
    pub args: Vec<String>,
    /// Its namespace (dropped last).
    pub ns: Netns,
}

impl Gateway {
    /// The tungate configuration of every gateway.
    pub fn config() -> String {
        format!(
            "[gateway]\naddress = \"{GIP}\"\nio = \"packet\"\ningress_interface = \"eth0\"\n\
             egress_interface = \"eth1\"\n\
             [[peers]]\nname = \"rs1\"\naddress = \"{RIP}\"\nvips = [\"{VIP}\"]\n"
        )
    }

    /// Starts `tungate run --fleet` here (a fresh state directory).
    pub fn start_tungate(&mut self) {
        assert!(self.tungate.is_none(), "gw{} runs already", self.index);
        let mut args = vec!["--fleet", FLEET_NAME];
        args.extend(self.args.iter().map(String::as_str));
        self.tungate = Some(Tungate::start_with(&self.ns, &Self::config(), &args));
    }

    /// The running tungate.
    pub fn tungate(&mut self) -> &mut Tungate {
        self.tungate.as_mut().expect("tungate runs")
    }

    /// Packets its tungate forwarded (its counters, SIGUSR1).
    pub fn forwarded(&mut self) -> u64 {
        self.tungate().counters()["tx_packets"]
            .as_u64()
            .expect("tx_packets in the counters")
    }

    /// Its address on its link to the router with [`ADMIN_PORT`]: where its admin API
    /// listens when its [`Gateway::args`] say `--admin-listen` there ([`admin_address`]).
    pub fn admin_address(&self) -> String {
        admin_address(self.index)
    }

    /// The next hop the router uses for this gateway.
    pub fn next_hop(&self) -> Ipv4Addr {
        gateway_link(self.index).1
    }
}

/// The whole topology.
pub struct Fleet {
    /// The gateways (dropped first: their processes end before the router's).
    pub gateways: Vec<Gateway>,
    /// The fleet's etcd ([`Fleet::start_with_etcd`]), in the router's namespace (dropped
    /// after the gateways, before the namespace).
    pub etcd: Option<Etcd>,
    /// The router's BIRD.
    pub router_bird: Bird,
    /// The router.
    pub router: Netns,
    /// The real server (sends the replies).
    pub rs: Netns,
    /// The client (receives them).
    pub client: Netns,
}

impl Fleet {
    /// Builds the namespaces and links, starts every BIRD and every tungate, and waits
    /// until the router has one next hop per gateway.
    pub fn start(gateways: usize) -> Fleet {
        Self::start_with(gateways, |_| Vec::new())
    }

    /// [`Fleet::start`], gateway `i` (1-based) running `tungate run` with the extra
    /// arguments `args(i)` (e.g. `--admin-listen` on [`admin_address`]`(i)`, so that the
    /// router's namespace can scrape `/metrics`).
    pub fn start_with(gateways: usize, args: impl Fn(usize) -> Vec<String>) -> Fleet {
        Self::build(gateways, args, false)
    }

    /// [`Fleet::start_with`], the gateways also following one real etcd member that runs
    /// in the router's namespace on its address towards the real server (`--etcd`,
    /// `--fleet-member gwN`); gateway 1's file seeds the empty fleet.
    pub fn start_with_etcd(gateways: usize, args: impl Fn(usize) -> Vec<String>) -> Fleet {
        Self::build(gateways, args, true)
    }

    fn build(gateways: usize, args: impl Fn(usize) -> Vec<String>, with_etcd: bool) -> Fleet {
        let router = Netns::new("flr");
        let rs = Netns::new("flrs");
        let client = Netns::new("flcl");
        for (path, value) in tungate_demo::bird::ROUTER_SYSCTLS {
            router.set_sysctl(path, value);
        }
        let text = |m: [u8; 6]| {
            m.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(":")
        };
        veth(
            &router,
            "rs0",
            &text(ROUTER_RS_MAC),
            &rs,
            "eth0",
            &text(RS_MAC),
        );
        router.ip(&["addr", "add", "10.2.0.1/24", "dev", "rs0"]);
        rs.ip(&["addr", "add", &format!("{RIP}/24"), "dev", "eth0"]);
        rs.ip(&["route", "add", "default", "via", "10.2.0.1"]);
        let etcd = with_etcd.then(|| Etcd::start(&router, "10.2.0.1"));
        let etcd_args = |i: usize| match &etcd {
            Some(etcd) => vec![
                "--etcd".to_owned(),
                etcd.url(),
                "--fleet-member".to_owned(),
                format!("gw{i}"),
            ],
            None => Vec::new(),
        };
        veth(
            &router,
            "cl0",
            "02:00:00:00:0b:01",
            &client,
            "eth0",
            "02:00:00:00:0b:02",
        );
        router.ip(&["addr", "add", "10.3.0.1/24", "dev", "cl0"]);
        client.ip(&["addr", "add", "10.3.0.2/24", "dev", "eth0"]);
        router.ip(&["route", "add", "198.51.100.0/24", "via", "10.3.0.2"]);
        // The client's neighbour entry is fixed, so no reply waits for ARP.
        router.ip(&[
            "neigh",
            "replace",
            "10.3.0.2",
            "lladdr",
            "02:00:00:00:0b:02",
            "dev",
            "cl0",
            "nud",
            "permanent",
        ]);
        let router_config =
            tungate_demo::bird::router_config(Ipv4Addr::new(10, 2, 0, 1), GIP, gateways);
        let mut members = Vec::new();
        for i in 1..=gateways {
            let ns = Netns::new("flgw");
            let (router_address, own) = gateway_link(i);
            veth(
                &router,
                &format!("gw{i}"),
                &format!("02:00:00:01:{i:02x}:01"),
                &ns,
                "eth0",
                &format!("02:00:00:01:{i:02x}:02"),
            );
            router.ip(&[
                "addr",
                "add",
                &format!("{router_address}/24"),
                "dev",
                &format!("gw{i}"),
            ]);
            ns.ip(&["addr", "add", &format!("{own}/24"), "dev", "eth0"]);
            ns.ip(&[
                "route",
                "add",
                "default",
                "via",
                &router_address.to_string(),
            ]);
            let (router_egress, own_egress) = egress_link(i);
            veth(
                &router,
                &egress_peer(i),
                &format!("02:00:00:04:{i:02x}:01"),
                &ns,
                "eth1",
                &format!("02:00:00:04:{i:02x}:02"),
            );
            router.ip(&[
                "addr",
                "add",
                &format!("{router_egress}/24"),
                "dev",
                &egress_peer(i),
            ]);
            ns.ip(&["addr", "add", &format!("{own_egress}/24"), "dev", "eth1"]);
            ns.ip(&[
                "route",
                "add",
                "198.51.100.0/24",
                "via",
                &router_egress.to_string(),
                "dev",
                "eth1",
            ]);
            let config = tungate_demo::bird::gateway_config(i, GIP);
            let bird = Bird::start(&ns, "bird", &config);
            members.push(Gateway {
                tungate: None,
                bird,
                index: i,
                args: [args(i), etcd_args(i)].concat(),
                ns,
            });
        }
        let router_bird = Bird::start(&router, "bird", &router_config);
        let mut fleet = Fleet {
            gateways: members,
            etcd,
            router_bird,
            router,
            rs,
            client,
        };
        for g in &mut fleet.gateways {
            g.start_tungate();
        }
        fleet.wait_next_hops(gateways, Duration::from_secs(20));
        fleet
    }

    /// Sets the router's end of gateway `index`'s (0-based) egress link up or down: the
    /// gateway's `eth1` gains or loses its carrier, as when a cable or switch port fails.
    pub fn set_egress_carrier(&self, index: usize, on: bool) {
        let i = self.gateways[index].index;
        self.router.ip(&[
            "link",
            "set",
            &egress_peer(i),
            if on { "up" } else { "down" },
        ]);
    }

    /// The router's next hops for GIP (none when no gateway announces it).
    pub fn next_hops(&self) -> BTreeSet<Ipv4Addr> {
        let text = self
            .router
            .ip(&["-j", "route", "show", &format!("{GIP}/32")]);
        let mut hops = BTreeSet::new();
        if text.trim().is_empty() {
            return hops;
        }
        let routes: serde_json::Value = serde_json::from_str(&text).expect("ip -j prints JSON");
        for route in routes.as_array().into_iter().flatten() {
            if let Some(g) = route["gateway"].as_str() {
                hops.insert(g.parse().expect("a next hop address"));
            }
            for hop in route["nexthops"].as_array().into_iter().flatten() {
                if let Some(g) = hop["gateway"].as_str() {
                    hops.insert(g.parse().expect("a next hop address"));
                }
            }
        }
        hops
    }

    /// Waits (at most `limit`) until the router has `count` next hops for GIP.
    pub fn wait_next_hops(&self, count: usize, limit: Duration) {
        until(
            limit,
            &format!("the router has {count} next hops for GIP"),
            || self.next_hops().len() == count,
        );
    }

    /// Polls (every 1 ms, at most `limit`) until `done(next hops)` holds; the time it took.
    pub fn time_until(
        &self,
        limit: Duration,
        done: impl Fn(&BTreeSet<Ipv4Addr>) -> bool,
    ) -> Option<Duration> {
        let started = Instant::now();
        while started.elapsed() < limit {
            if done(&self.next_hops()) {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        None
    }
}

/// The frame of reply `n` of flow `n % FLOWS`: VIP:80 -> client(flow % 16):(40000 + flow /
/// 16), IPIP RIP -> GIP, addressed to the router.
pub fn flow_frame(n: u32) -> Vec<u8> {
    flow_frame_ttl(n, 64)
}

/// [`flow_frame`] with an inner TTL of 1: every gateway drops it, counted for VIP as
/// `ttl_expired`.
pub fn expired_frame(n: u32) -> Vec<u8> {
    flow_frame_ttl(n, 1)
}

fn flow_frame_ttl(n: u32, ttl: u8) -> Vec<u8> {
    let flow = n % FLOWS;
    let mut inner = Vec::new();
    PacketBuilder::ipv4(
        VIP.octets(),
        client((flow % CLIENTS as u32) as u8).octets(),
        ttl,
    )
    .udp(80, 40000 + (flow / CLIENTS as u32) as u16)
    .write(&mut inner, &n.to_be_bytes())
    .expect("a UDP packet");
    ethernet(
        ROUTER_RS_MAC,
        RS_MAC,
        &crate::packets::ipip(RIP, GIP, &inner),
    )
}

/// The number of a reply as the client receives it (Ethernet, IPv4 from VIP, UDP, number).
pub fn flow_number(frame: &[u8]) -> Option<u32> {
    (frame.len() >= 46
        && frame[12..14] == [8, 0]
        && frame[26..30] == VIP.octets()
        && frame[23] == 17)
        .then(|| u32::from_be_bytes(frame[42..46].try_into().expect("4 bytes")))
}

/// A paced stream of numbered replies over every flow, from `rs` to `client`.
pub struct FlowStream {
    stop: Arc<AtomicBool>,
    next: Arc<AtomicU32>,
    sender: Option<JoinHandle<u32>>,
    receiver: Option<JoinHandle<Vec<u32>>>,
}

/// What a stream delivered.
pub struct Delivery {
    /// Replies sent (numbered 0..sent).
    pub sent: u32,
    /// The distinct numbers the client received.
    pub received: BTreeSet<u32>,
}

impl Delivery {
    /// Replies that never arrived.
    pub fn lost(&self) -> u32 {
        self.sent - self.received.len() as u32
    }

    /// Flows (0..FLOWS) that delivered no reply numbered `from` or later.
    pub fn silent_flows_from(&self, from: u32) -> Vec<u32> {
        let live: BTreeSet<u32> = self.received.range(from..).map(|n| n % FLOWS).collect();
        (0..FLOWS).filter(|f| !live.contains(f)).collect()
    }
}

impl FlowStream {
    /// Starts sending `per_second` replies round-robin over the flows; the receiver stops
    /// `quiet` after the last reply arrives.
    pub fn start(fleet: &Fleet, per_second: u64, quiet: Duration) -> FlowStream {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU32::new(0));
        let socket = FrameSocket::open(&fleet.client, "eth0");
        let receiver = std::thread::spawn(move || {
            socket
                .receive_for(quiet, |f| flow_number(f).is_some())
                .iter()
                .filter_map(|f| flow_number(f))
                .collect()
        });
        let sender = BulkSender::open(&fleet.rs, "eth0");
        let (sending, counter) = (stop.clone(), next.clone());
        let sender = std::thread::spawn(move || {
            let started = Instant::now();
            let mut n = 0u32;
            while !sending.load(Ordering::Relaxed) && started.elapsed() < LONGEST {
                let frames: Vec<Vec<u8>> = (n..n + CHUNK).map(flow_frame).collect();
                let order: Vec<usize> = (0..CHUNK as usize).collect();
                let due = started + Duration::from_secs_f64(f64::from(n) / per_second as f64);
                if let Some(wait) = due.checked_duration_since(Instant::now()) {
                    std::thread::sleep(wait);
                }
                n += sender.send(&frames, &order, None, Instant::now() + LONGEST) as u32;
                counter.store(n, Ordering::Release);
            }
            n
        });
        FlowStream {
            stop,
            next,
            sender: Some(sender),
            receiver: Some(receiver),
        }
    }

    /// Replies sent so far.
    pub fn sent(&self) -> u32 {
        self.next.load(Ordering::Acquire)
    }

    /// Stops sending, waits for the receiver to fall quiet, and returns what arrived.
    pub fn finish(mut self) -> Delivery {
        self.stop.store(true, Ordering::Relaxed);
        let sent = self.sender.take().unwrap().join().expect("stream sender");
        let received = self
            .receiver
            .take()
            .unwrap()
            .join()
            .expect("stream receiver")
            .into_iter()
            .collect();
        Delivery { sent, received }
    }
}

impl Drop for FlowStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(s) = self.sender.take() {
            let _ = s.join();
        }
        if let Some(r) = self.receiver.take() {
            let _ = r.join();
        }
    }
}
