//! The gateway under test, run as its own process in `gw` (so its CPU time and resident
//! memory are its own): tungate's data path and plugin host in-process, driven by one-line
//! commands on stdin, each answered by one JSON line on stdout.
//!
//! Commands: `chain none|cidr|four [timed]` publishes that chain on every VIP (hot swap);
//! `swap-start MS` publishes alternating chains every MS ms from a thread, `swap-stop`
//! ends that; `counters`; `timing` (and reset) of the timed chains; `rss` (VmRSS, VmHWM and
//! PSS); `quit`. The
//! parent side is [`GatewayProcess`].

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungate_config::{self as config, Document};
use tungate_datapath::counters::Counters;
use tungate_datapath::filter::{BatchFilter, Decision, FilterSlots};
use tungate_datapath::{Datapath, IoPlan, XskRegistry};
use tungate_netcfg::TunnelFence;
use tungate_plugin_host::{Limits, PluginHost};
use tungate_xdp::{IngressFilter, XdpMode};

use crate::traffic::{SERVICE_PORT, pin_current_thread};
use tungate_test_support::Netns;
use tungate_test_support::topology::{GIP, RIP};

/// The plugin chain every VIP runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Chain {
    /// No plugin (variant b).
    None,
    /// One `cidr-filter` allowing the client's prefix (variant c).
    Cidr,
    /// `cidr-filter`, `port-filter`, `rate-limit`, `accounting`, all passing (variant d).
    Four,
    /// `cidr-filter` allowing the client's prefix as two halves (the same verdicts as
    /// `Cidr`, a different configuration: what a hot swap alternates with).
    CidrHalves,
}

impl Chain {
    /// The command word.
    pub fn name(self) -> &'static str {
        match self {
            Chain::None => "none",
            Chain::Cidr => "cidr",
            Chain::Four => "four",
            Chain::CidrHalves => "cidr-halves",
        }
    }

    /// The chain a command word names.
    pub fn parse(word: &str) -> Option<Chain> {
        [Chain::None, Chain::Cidr, Chain::Four, Chain::CidrHalves]
            .into_iter()
            .find(|c| c.name() == word)
    }

    /// The chain's bindings for replies to the IPv4 client's prefix, or (`ipv6`) to the
    /// IPv6 client's.
    fn bindings(self, ipv6: bool) -> String {
        let (client, halves, everyone) = if ipv6 {
            (CLIENT6_PREFIX, CLIENT6_HALVES, "::/0")
        } else {
            (
                "198.51.100.0/24",
                ["198.51.100.0/25", "198.51.100.128/25"],
                "0.0.0.0/0",
            )
        };
        let cidr = format!(r#"{{ plugin = "cidr-filter", config = {{ allow = ["{client}"] }} }}"#);
        match self {
            Chain::None => String::new(),
            Chain::Cidr => cidr,
            Chain::CidrHalves => format!(
                r#"{{ plugin = "cidr-filter", config = {{ allow = ["{}", "{}"] }} }}"#,
                halves[0], halves[1]
            ),
            Chain::Four => format!(
                r#"{cidr},
                {{ plugin = "port-filter", config = {{ allow = [{{ protocol = "udp", ports = [{SERVICE_PORT}] }}, {{ protocol = "tcp", ports = [80, 443] }}] }} }},
                {{ plugin = "rate-limit", config = {{ unit = "packets", rate = 10000000000, max_clients = {RATE_LIMIT_CLIENTS} }} }},
                {{ plugin = "accounting", config = {{ prefixes = ["{client}", "{everyone}"] }} }}"#
            ),
        }
    }
}

/// The core of the hot-swap thread (the control plane): not the 1-worker gateway's core.
const CONTROL_CPU: usize = 0;

/// The rate-limit plugin's client table in the 4-plugin chain. Its default (65,536 clients)
/// makes a 5 MiB table per instance (131,072 slots of 40 bytes), touched at configure time:
/// 500 MiB for 100 VIPs on one worker, whatever the gateway does. The bench uses a /22's worth of clients instead and
/// reports the default's cost separately.
pub const RATE_LIMIT_CLIENTS: usize = 1024;

/// The VIPs of a run: 192.0.2.10, .11, ...
pub fn vips(count: usize) -> Vec<Ipv4Addr> {
    (0..count)
        .map(|i| Ipv4Addr::from(u32::from(Ipv4Addr::new(192, 0, 2, 10)) + i as u32))
        .collect()
}

/// The gateway's IPv6 address (GIP6), on `g0` beside GIP (see `Bench::prepare`).
pub const GIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1);
/// The peer's IPv6 address (RIP6), the outer source of ip6ip6.
pub const RIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2);
/// The gateway's IPv6 address towards the client, on `g1`.
pub const GW_CLIENT6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 1);
/// The IPv6 client.
pub const CIP6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0xc, 0, 0, 0, 0, 7);
/// The IPv6 client's prefix (what cidr-filter allows for the ip6ip6 rows).
const CLIENT6_PREFIX: &str = "2001:db8:c::/48";
/// [`CLIENT6_PREFIX`] as two halves.
const CLIENT6_HALVES: [&str; 2] = ["2001:db8:c::/49", "2001:db8:c:8000::/49"];

/// The IPv6 VIP that stands for IPv4 VIP `v4` in the ip6ip6 rows: 2001:db8:f:: with `v4`'s
/// 32 bits at the end.
pub fn vip6(v4: Ipv4Addr) -> Ipv6Addr {
    Ipv6Addr::from((0x2001_0db8_000f_u128 << 80) | u128::from(u32::from(v4)))
}

/// The gateway's configuration: peer `rs1` (its return tunnel `tunnel`) serving `vips`,
/// each with `chain`. With [`Tunnel::Ip6ip6`] the gateway also has GIP6, `rs1` is RIP6
/// (tunnel `ipip` with an IPv6 peer: ip6ip6) and each VIP is its [`vip6`].
pub fn document(workers: usize, vips: &[Ipv4Addr], chain: Chain, tunnel: Tunnel) -> Document {
    let ipv6 = tunnel == Tunnel::Ip6ip6;
    let vips: Vec<IpAddr> = vips
        .iter()
        .map(|&v| if ipv6 { vip6(v).into() } else { v.into() })
        .collect();
    let list: Vec<String> = vips.iter().map(|v| format!("\"{v}\"")).collect();
    let (address6, rip, kind) = if ipv6 {
        (
            format!("address6 = \"{GIP6}\"\n"),
            IpAddr::from(RIP6),
            "ipip",
        )
    } else {
        (String::new(), IpAddr::from(RIP), tunnel.name())
    };
    let mut text = format!(
        "[gateway]\naddress = \"{GIP}\"\n{address6}workers = {workers}\n\
         [[peers]]\nname = \"rs1\"\naddress = \"{rip}\"\ntunnel = \"{kind}\"\nvips = [{}]\n",
        list.join(", ")
    );
    for v in &vips {
        text += &format!(
            "[[vips]]\naddress = \"{v}\"\nplugins = [{}]\n",
            chain.bindings(ipv6)
        );
    }
    let doc = config::parse_toml(&text).expect("bench configuration parses");
    config::validate(&doc).expect("bench configuration is valid");
    doc
}

/// Calls of at least this many packets go into the per-call histogram.
const HISTOGRAM_MIN_PACKETS: usize = 16;
/// Histogram buckets: 0.5 ns per packet each.
const HISTOGRAM_BUCKETS: usize = 2048;

/// Time spent in timed filters, and packets judged, shared by every timed chain; and a
/// histogram of each call's ns per packet. Interrupts that land during a call (the
/// gateway's own receive and transmit work, on this kernel charged to whoever runs) inflate
/// some calls: the median call shows the chain's own cost.
struct Timing {
    ns: AtomicU64,
    packets: AtomicU64,
    calls: AtomicU64,
    per_call: Vec<AtomicU64>,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            ns: AtomicU64::new(0),
            packets: AtomicU64::new(0),
            calls: AtomicU64::new(0),
            per_call: (0..HISTOGRAM_BUCKETS).map(|_| AtomicU64::new(0)).collect(),
        }
    }
}

impl Timing {
    /// The `q` quantile of the per-call ns per packet (and resets the histogram).
    fn take_quantiles(&self, qs: &[f64]) -> Vec<f64> {
        let counts: Vec<u64> = self
            .per_call
            .iter()
            .map(|c| c.swap(0, Ordering::Relaxed))
            .collect();
        let total: u64 = counts.iter().sum();
        qs.iter()
            .map(|q| {
                if total == 0 {
                    return f64::NAN;
                }
                let rank = ((q * total as f64).ceil() as u64).max(1);
                let mut seen = 0;
                for (i, c) in counts.iter().enumerate() {
                    seen += c;
                    if seen >= rank {
                        return (i as f64 + 0.5) * 0.5;
                    }
                }
                f64::NAN
            })
            .collect()
    }
}

/// A chain with a clock around each call (two clock reads per VIP batch).
struct Timed {
    inner: Box<dyn BatchFilter>,
    timing: Arc<Timing>,
}

impl BatchFilter for Timed {
    fn filter(&mut self, packets: &[&[u8]], decisions: &mut [Decision]) {
        let start = Instant::now();
        self.inner.filter(packets, decisions);
        let took = start.elapsed().as_nanos() as u64;
        self.timing.ns.fetch_add(took, Ordering::Relaxed);
        if packets.len() >= HISTOGRAM_MIN_PACKETS {
            let bucket = (2 * took / packets.len() as u64).min(HISTOGRAM_BUCKETS as u64 - 1);
            self.timing.per_call[bucket as usize].fetch_add(1, Ordering::Relaxed);
        }
        self.timing
            .packets
            .fetch_add(packets.len() as u64, Ordering::Relaxed);
        self.timing.calls.fetch_add(1, Ordering::Relaxed);
    }
}

struct GatewayState {
    workers: usize,
    vips: Vec<Ipv4Addr>,
    host: Arc<PluginHost>,
    slots: Arc<FilterSlots>,
    modules: Arc<HashMap<String, Vec<u8>>>,
    timing: Arc<Timing>,
}

impl GatewayState {
    fn publish(&self, chain: Chain, timed: bool) -> Result<u64, String> {
        let doc = document(self.workers, &self.vips, chain, Tunnel::from_env());
        let modules = self.modules.clone();
        let lookup = move |name: &str| modules.get(name).cloned();
        if !timed {
            return self
                .host
                .publish(&self.slots, &doc, &lookup)
                .map_err(|e| e.to_string());
        }
        let mut generation = self
            .host
            .build(&doc, &lookup, self.workers)
            .map_err(|e| e.to_string())?;
        for set in &mut generation.filters {
            let wrapped = std::mem::take(&mut set.by_vip)
                .into_iter()
                .map(|(vip, inner)| {
                    let timed: Box<dyn BatchFilter> = Box::new(Timed {
                        inner,
                        timing: self.timing.clone(),
                    });
                    (vip, timed)
                })
                .collect();
            set.by_vip = wrapped;
        }
        Ok(self.slots.publish(generation.filters))
    }
}

/// A running hot-swap thread: its stop flag, and its (swaps, failed swaps) when joined.
type Swapper = (Arc<AtomicBool>, std::thread::JoinHandle<(u64, u64)>);

/// Resident and peak resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// Proportional set size of this process in KiB (`Pss` of /proc/self/smaps_rollup): its
/// resident pages with each shared page divided among the mappings that share it. VmRSS
/// counts a page once per mapping: the plugin instances of one module each map all of its
/// memory image, so VmRSS counts those shared pages once per instance.
fn pss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/smaps_rollup")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("Pss:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// The child's `main`: `gateway WORKERS CPUS VIPS PLUGIN_DIR` (CPUS like `1` or `0,1`).
/// A running capture's stop flag and drain thread (packets taken, packets lost).
type CaptureDrain = (Arc<AtomicBool>, std::thread::JoinHandle<(u64, u64)>);
/// The environment variable that puts the gateway on the AF_XDP path (`xdp`): native XDP
/// on the ingress veth, as the daemon's `gateway.io = "xdp"`. The run sets it for each
/// gateway it starts; `soak` passes on its own.
pub const IO_ENV: &str = "GATEWAY_BENCH_IO";

/// The gateway's receive and transmit path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Io {
    /// TPACKET rings (variants b–d), with the nftables fence dropping tunnel packets after
    /// the tap.
    Packet,
    /// AF_XDP sockets behind the XDP pre-filter, native XDP on the ingress veth (b′–d′).
    Xdp,
}

impl Io {
    /// The value of [`IO_ENV`].
    pub fn name(self) -> &'static str {
        match self {
            Io::Packet => "packet",
            Io::Xdp => "xdp",
        }
    }

    /// The path [`IO_ENV`] names in this process's environment (TPACKET unless `xdp`).
    pub fn from_env() -> Io {
        match std::env::var(IO_ENV).as_deref() {
            Ok("xdp") => Io::Xdp,
            _ => Io::Packet,
        }
    }
}

/// With this variable set to 1–99, the gateway runs its workers `SCHED_FIFO` at that
/// priority (`gateway.worker_priority`).
pub const PRIORITY_ENV: &str = "GATEWAY_BENCH_WORKER_PRIORITY";

/// The environment variable that names the peer's return tunnel (`ipip`, `gue` or
/// `ip6ip6`) to the gateway it starts.
pub const TUNNEL_ENV: &str = "GATEWAY_BENCH_TUNNEL";

/// The peer's return tunnel: what the generator encapsulates in and the gateway expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunnel {
    /// IPIP (IP protocol 4), IPVS's default.
    Ipip,
    /// GUE variant 0 to UDP port 6080 (the config's default), one UDP source port per flow
    /// (the per-flow entropy `encap-sport auto` gives).
    Gue,
    /// ip6ip6: outer IPv6 RIP6 -> GIP6 (next header 41), inner IPv6 from the VIPs' IPv6
    /// counterparts to the IPv6 client.
    Ip6ip6,
}

impl Tunnel {
    /// The value of [`TUNNEL_ENV`]; for IPIP and GUE also the config's name
    /// (`peers[].tunnel`; ip6ip6 is `ipip` with an IPv6 peer).
    pub fn name(self) -> &'static str {
        match self {
            Tunnel::Ipip => "ipip",
            Tunnel::Gue => "gue",
            Tunnel::Ip6ip6 => "ip6ip6",
        }
    }

    /// The tunnel [`TUNNEL_ENV`] names in this process's environment (IPIP unless `gue` or
    /// `ip6ip6`).
    pub fn from_env() -> Tunnel {
        match std::env::var(TUNNEL_ENV).as_deref() {
            Ok("gue") => Tunnel::Gue,
            Ok("ip6ip6") => Tunnel::Ip6ip6,
            _ => Tunnel::Ipip,
        }
    }
}

/// Registers the workers' AF_XDP sockets in the attached program.
struct Registry(SharedFilter);

impl XskRegistry for Registry {
    fn bind_socket(&self, queue: u32, fd: BorrowedFd<'_>) -> std::io::Result<()> {
        let mut filter = self.0.lock().unwrap_or_else(|e| e.into_inner());
        filter
            .bind_socket(queue, fd)
            .map_err(|e| std::io::Error::other(e.to_string()))
    }
}

/// The I/O plan [`IO_ENV`] asks for, with the attached program (kept while the data path
/// runs).
/// The attached XDP program, shared with the socket registry.
type SharedFilter = Arc<Mutex<IngressFilter>>;

fn io_plan(doc: &Document) -> Result<(IoPlan, Option<SharedFilter>), String> {
    if Io::from_env() != Io::Xdp {
        return Ok((IoPlan::Packet, None));
    }
    let ingress = Datapath::ingress_interface(doc).ok_or("no ingress interface")?;
    let ifindex = tungate_datapath::interface_index(&ingress).map_err(|e| e.to_string())?;
    let gip = doc
        .gateway
        .address
        .ok_or("the bench gateway has an IPv4 address")?;
    let mut filter =
        IngressFilter::attach(ifindex, XdpMode::Native, gip).map_err(|e| e.to_string())?;
    filter
        .set_gateway6(doc.gateway.address6)
        .map_err(|e| e.to_string())?;
    let peers: Vec<(IpAddr, _)> = doc
        .peers
        .iter()
        .map(|p| (p.address, tungate_datapath::peer_tunnel(p)))
        .collect();
    filter.set_peers(&peers).map_err(|e| e.to_string())?;
    let filter = Arc::new(Mutex::new(filter));
    Ok((
        IoPlan::Xdp(Arc::new(Registry(filter.clone()))),
        Some(filter),
    ))
}

/// The environment variable that, when set, pins only the gateway's workers to its cores
/// (`gateway.worker_cpus`) instead of the whole gateway process (as `CPUAffinity=` would).
pub const WORKER_CPUS_ENV: &str = "GATEWAY_BENCH_WORKER_CPUS";

/// The environment variable that, set to `threaded`, moves the ingress veth's NAPI poll (on
/// the AF_XDP path: the XDP program and the copy into the socket) from the sending core's
/// softirq into its own kernel thread pinned to the gateway's cores, where a NIC's receive
/// interrupt would be steered.
pub const NAPI_ENV: &str = "GATEWAY_BENCH_NAPI";

/// Switches `g0` (in this process's namespace) to threaded NAPI and pins its NAPI threads
/// (`napi/g0-ID`, one per queue that has a NAPI: only once an XDP program is attached) to
/// `cpus`.
fn threaded_ingress_napi(cpus: &[usize]) -> Result<(), String> {
    std::fs::write("/sys/class/net/g0/threaded", "1")
        .map_err(|e| format!("/sys/class/net/g0/threaded: {e}"))?;
    let mut pinned = 0;
    for entry in std::fs::read_dir("/proc").map_err(|e| e.to_string())? {
        let Ok(pid) = entry
            .map_err(|e| e.to_string())?
            .file_name()
            .to_string_lossy()
            .parse::<i32>()
        else {
            continue;
        };
        let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
        if comm.trim_end().starts_with("napi/g0-") {
            let mut set = nix::sched::CpuSet::new();
            for &cpu in cpus {
                set.set(cpu).map_err(|e| e.to_string())?;
            }
            nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(pid), &set)
                .map_err(|e| format!("pin {}: {e}", comm.trim_end()))?;
            pinned += 1;
        }
    }
    if pinned == 0 {
        return Err("no napi/g0-* thread (no NAPI on g0: is an XDP program attached?)".into());
    }
    Ok(())
}

pub fn child_main(args: &[String]) -> i32 {
    let [workers, cpus, vip_count, dir] = args else {
        eprintln!("usage: gateway_bench gateway WORKERS CPUS VIPS PLUGIN_DIR");
        return 2;
    };
    let workers: usize = workers.parse().expect("workers");
    let cpus: Vec<usize> = cpus.split(',').map(|c| c.parse().expect("cpu")).collect();
    let vips = vips(vip_count.parse().expect("vips"));
    // Every thread started from here on (workers, resolver, epoch ticker) inherits this;
    // with GATEWAY_BENCH_WORKER_CPUS the workers alone are pinned to the gateway's cores
    // (`gateway.worker_cpus`) and the other threads may run on any core but those.
    let worker_cpus = std::env::var_os(WORKER_CPUS_ENV).is_some();
    if worker_cpus {
        // The bench runs on the control core: let the gateway use both.
        let mut all = cpus.clone();
        all.push(CONTROL_CPU);
        pin_current_thread(&all);
    } else {
        pin_current_thread(&cpus);
    }
    let modules: HashMap<String, Vec<u8>> =
        ["cidr-filter", "port-filter", "rate-limit", "accounting"]
            .into_iter()
            .map(|name| {
                let file = Path::new(dir).join(format!("{}.wasm", name.replace('-', "_")));
                let bytes = std::fs::read(&file)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
                (name.to_owned(), bytes)
            })
            .collect();
    let mut doc = document(workers, &vips, Chain::None, Tunnel::from_env());
    doc.gateway.worker_priority = std::env::var(PRIORITY_ENV)
        .ok()
        .map(|p| p.parse().expect("GATEWAY_BENCH_WORKER_PRIORITY: 1 to 99"));
    if worker_cpus {
        doc.gateway.worker_cpus = Some((0..workers).map(|w| cpus[w % cpus.len()] as u32).collect());
    }
    let counters = Arc::new(Counters::new(workers));
    let (plan, _filter) = match io_plan(&doc) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("gateway: cannot attach the XDP program: {e}");
            return 1;
        }
    };
    let datapath = match Datapath::start_with_io(&doc, counters.clone(), None, plan) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gateway: cannot start the data path: {e}");
            return 1;
        }
    };
    // As the daemon does: the kernel drops the tunnel packets that the workers take.
    let mut fence = TunnelFence::new();
    let raised = match datapath.userspace_ingress() {
        Some((_, ingress)) => fence.raise(ingress, &[]),
        None => Ok(()),
    };
    if let Err(e) = raised {
        eprintln!("gateway: cannot start the data path: {e}");
        return 1;
    }
    if std::env::var(NAPI_ENV).as_deref() == Ok("threaded")
        && let Err(e) = threaded_ingress_napi(&cpus)
    {
        eprintln!("gateway: {NAPI_ENV}=threaded: {e}");
        return 1;
    }
    // Room for two generations of every binding of every worker (a hot swap holds both).
    let bindings = vips.len() as u32 * 4 * workers as u32;
    let host = PluginHost::new(Limits {
        max_instances: Limits::default().max_instances.max(2 * bindings),
        ..Limits::default()
    })
    .expect("plugin engine");
    let child = Arc::new(GatewayState {
        workers,
        vips,
        host: Arc::new(host),
        slots: datapath.filter_slots(),
        modules: Arc::new(modules),
        timing: Arc::default(),
    });
    let mut out = std::io::stdout().lock();
    let mut reply = |v: Value| {
        writeln!(out, "{v}").expect("stdout");
        out.flush().expect("stdout");
    };
    reply(json!({ "ready": true }));
    let mut swapper: Option<Swapper> = None;
    let mut capture: Option<CaptureDrain> = None;
    for line in std::io::stdin().lock().lines() {
        let line = line.expect("stdin");
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["chain", name, rest @ ..] => {
                let Some(chain) = Chain::parse(name) else {
                    reply(json!({ "error": format!("no chain {name}") }));
                    continue;
                };
                match child.publish(chain, rest == ["timed"]) {
                    Ok(g) => reply(json!({ "generation": g })),
                    Err(e) => reply(json!({ "error": e })),
                }
            }
            ["swap-start", ms] => {
                let period = Duration::from_millis(ms.parse().expect("ms"));
                let stop = Arc::new(AtomicBool::new(false));
                let (c, s) = (child.clone(), stop.clone());
                let handle = std::thread::spawn(move || {
                    // The control plane runs beside the data path, not on its core (as the
                    // daemon's control runtime would); here that is the generator's core.
                    pin_current_thread(&[CONTROL_CPU]);
                    let order = [Chain::Four, Chain::CidrHalves, Chain::Cidr];
                    let (mut swaps, mut errors) = (0u64, 0u64);
                    let mut next = Instant::now() + period;
                    while !s.load(Ordering::Relaxed) {
                        std::thread::sleep(next.saturating_duration_since(Instant::now()));
                        next += period;
                        match c.publish(order[swaps as usize % order.len()], false) {
                            Ok(_) => swaps += 1,
                            Err(e) => {
                                eprintln!("gateway: swap failed: {e}");
                                errors += 1;
                            }
                        }
                    }
                    (swaps, errors)
                });
                swapper = Some((stop, handle));
                reply(json!({ "ok": true }));
            }
            ["swap-stop"] => match swapper.take() {
                Some((stop, handle)) => {
                    stop.store(true, Ordering::Relaxed);
                    let (swaps, errors) = handle.join().expect("swapper");
                    reply(json!({ "swaps": swaps, "errors": errors }));
                }
                None => reply(json!({ "error": "no swap running" })),
            },
            ["capture", what] => {
                // A capture as `GET /api/v1/capture` runs it: a tap drained by a thread of
                // its own (on the generator's core, as the admin runtime would not be on the
                // gateway's), here without writing the packets anywhere.
                let filter = tungate_datapath::capture::CaptureFilter {
                    passed: *what == "passed",
                    ..Default::default()
                };
                match counters.captures().start(filter) {
                    Ok(session) => {
                        let stop = Arc::new(AtomicBool::new(false));
                        let s = stop.clone();
                        let handle = std::thread::spawn(move || {
                            pin_current_thread(&[CONTROL_CPU]);
                            let mut captured = 0u64;
                            while !s.load(Ordering::Relaxed) {
                                let until = Instant::now() + Duration::from_millis(50);
                                while let Some(_packet) = session.next_until(until) {
                                    captured += 1;
                                }
                            }
                            (captured, session.lost())
                        });
                        capture = Some((stop, handle));
                        reply(json!({ "ok": true }));
                    }
                    Err(e) => reply(json!({ "error": e.to_string() })),
                }
            }
            ["capture-stop"] => match capture.take() {
                Some((stop, handle)) => {
                    stop.store(true, Ordering::Relaxed);
                    let (captured, lost) = handle.join().expect("capture drain");
                    reply(json!({ "captured": captured, "lost": lost }));
                }
                None => reply(json!({ "error": "no capture running" })),
            },
            ["counters"] => reply(serde_json::to_value(counters.snapshot()).expect("json")),
            ["timing"] => {
                let t = &child.timing;
                let q = t.take_quantiles(&[0.1, 0.5]);
                reply(json!({
                    "p10_ns_per_packet": q[0],
                    "median_ns_per_packet": q[1],
                    "ns": t.ns.swap(0, Ordering::Relaxed),
                    "packets": t.packets.swap(0, Ordering::Relaxed),
                    "calls": t.calls.swap(0, Ordering::Relaxed),
                }));
            }
            ["rss"] => {
                let (rss, hwm) = rss_kib(std::process::id());
                reply(json!({ "rss_kib": rss, "hwm_kib": hwm, "pss_kib": pss_kib() }));
            }
            ["quit"] => break,
            _ => reply(json!({ "error": format!("unknown command {line:?}") })),
        }
    }
    datapath.stop();
    let status = match fence.lower() {
        Ok(_) => 0,
        Err(e) => {
            eprintln!("gateway: unclean stop: {e}");
            1
        }
    };
    reply(json!({ "stopped": status == 0 }));
    status
}

/// The parent's handle on a gateway process (killed on drop).
pub struct GatewayProcess {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl GatewayProcess {
    /// Starts a gateway in `gw` on `io`, its peer tunnelling with `tunnel`, with `workers`
    /// workers pinned to `cpus`, serving `vips` VIPs, with `env` added to its environment,
    /// and waits until it forwards.
    pub fn start(
        gw: &Netns,
        io: Io,
        tunnel: Tunnel,
        workers: usize,
        cpus: &[usize],
        vips: usize,
        plugins: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let exe: PathBuf = std::env::current_exe().expect("own executable");
        let cpus: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
        let mut child = Command::new("ip")
            .args(["netns", "exec", &gw.name])
            .arg(exe)
            .args([
                "gateway",
                &workers.to_string(),
                &cpus.join(","),
                &vips.to_string(),
            ])
            .arg(plugins)
            .env("RUST_LOG", "warn")
            .env(IO_ENV, io.name())
            .env(TUNNEL_ENV, tunnel.name())
            .envs(env.iter().copied())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the gateway process");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut g = GatewayProcess {
            child,
            stdin,
            stdout,
        };
        let ready = g.read();
        assert_eq!(ready["ready"], true, "gateway did not start: {ready}");
        g
    }

    fn read(&mut self) -> Value {
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("gateway reply");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("gateway reply {line:?}: {e}"))
    }

    /// Sends one command and returns its reply; panics on an `error` reply.
    pub fn command(&mut self, line: &str) -> Value {
        writeln!(self.stdin, "{line}").expect("gateway stdin");
        self.stdin.flush().expect("gateway stdin");
        let v = self.read();
        assert!(v.get("error").is_none(), "gateway {line:?}: {v}");
        v
    }

    /// Its process id (`ip netns exec` execs it, so this is the gateway's).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops it and waits for it to exit.
    pub fn quit(mut self) {
        let v = self.command("quit");
        assert_eq!(v["stopped"], true, "gateway stop: {v}");
        let status = self.child.wait().expect("wait for the gateway");
        assert!(status.success(), "gateway exit: {status}");
    }
}

impl Drop for GatewayProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
