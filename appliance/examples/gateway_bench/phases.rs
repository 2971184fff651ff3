//! The bench's phases, in order: the throughput matrix (variants alternating, repeated),
//! the loss-free capacity search, (c′) under overload and a hostile flood (and the TPACKET
//! path at half load), latency at half load, hot swaps under load, resident memory; then
//! the report.
//!
//! Cores: the load generator (and the bench's own bookkeeping) runs on core 0; the gateway
//! — tungate's process, or the kernel's forwarding, steered there by RPS on `g0` — on core 1.
//! The 2-worker variants use both cores, one of them shared with the generator.

use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::Options;
use crate::gateway::{self, CIP6, Chain, GIP6, GW_CLIENT6, GatewayProcess, Io, NAPI_ENV, Tunnel};
use crate::measure::{self, CoreTimes};
use crate::report::{self, Report};
use crate::traffic::{
    Encap, Frames, Generator, Received, Receiver, build_frames, pin_current_thread,
};
use tungate_test_support::Topology;
use tungate_test_support::plugins;
use tungate_test_support::topology::{CIP, VIP};

/// The generator's core.
pub const GENERATOR_CPU: usize = 0;
/// The gateway's core (1 worker; the kernel reference on one core).
pub const GATEWAY_CPU: usize = 1;
/// Flows (client ports) the generator cycles through.
const FLOWS: usize = 64;
/// Offset of the UDP payload in the frames the client receives (Ethernet, IPv4, UDP).
const CLIENT_PAYLOAD_OFFSET: usize = 14 + 20 + 8;
/// The MAC the gateway sends the client's packets to: not the client's own, so that the
/// client drops them first thing (see `Bench::prepare`).
const SINK_MAC: [u8; 6] = [0x02, 0, 0, 0, 2, 0x99];
/// Frames sent before each window opens.
const WARM_UP: Duration = Duration::from_millis(500);

/// A packet size of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size {
    /// How the report names it.
    pub label: &'static str,
    /// UDP payload bytes.
    pub payload: usize,
}

/// 64-byte frames at the client (22 bytes of UDP payload), and 1400 bytes of UDP payload.
pub const SIZES: [Size; 2] = [
    Size {
        label: "64 B",
        payload: 22,
    },
    Size {
        label: "1400 B",
        payload: 1400,
    },
];

/// One variant of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Variant {
    /// (a) The kernel forwards the inner packets, on `cores` cores (RPS).
    Kernel {
        /// Cores given to the kernel's forwarding.
        cores: usize,
    },
    /// (a6) The kernel forwards the inner IPv6 packets of the ip6ip6 rows, on `cores`
    /// cores (RPS): the IPv6 reference (this host has no `ip6_tunnel` module to decapsulate
    /// ip6ip6 itself; (a) forwards the plain inner IPv4 packets likewise).
    Kernel6 {
        /// Cores given to the kernel's forwarding.
        cores: usize,
    },
    /// (b)–(d) tungate, userspace decap.
    Tungate {
        /// Workers (pinned to as many cores).
        workers: usize,
        /// The plugin chain of the VIP.
        chain: Chain,
        /// Whether each chain call is timed (the stage-timing samples; two clock reads
        /// per call, so not mixed with the untimed throughput samples).
        timed: bool,
        /// TPACKET rings (b–d) or AF_XDP (b′–d′).
        io: Io,
        /// The peer's return tunnel (IPIP, or GUE for the GUE rows of (c) and (c′)).
        tunnel: Tunnel,
    },
}

/// tungate with `workers` workers, `chain`, untimed, on `io`.
pub fn tungate(workers: usize, chain: Chain, io: Io) -> Variant {
    Variant::Tungate {
        workers,
        chain,
        timed: false,
        io,
        tunnel: Tunnel::Ipip,
    }
}

/// cidr-filter with 1 worker on `io`, its peer tunnelling in GUE.
pub fn gue(io: Io) -> Variant {
    Variant::Tungate {
        workers: 1,
        chain: Chain::Cidr,
        timed: false,
        io,
        tunnel: Tunnel::Gue,
    }
}

/// cidr-filter with 1 worker on `io`, its peer tunnelling in ip6ip6 (IPv6 VIP and client).
pub fn ip6ip6(io: Io) -> Variant {
    Variant::Tungate {
        workers: 1,
        chain: Chain::Cidr,
        timed: false,
        io,
        tunnel: Tunnel::Ip6ip6,
    }
}

/// What the generator sends during a measurement.
#[derive(Clone, Copy)]
pub enum Load<'f> {
    /// As fast as it can.
    Flood(&'f Frames),
    /// In bursts of 64 at a steady rate (frames per second).
    Rate(&'f Frames, f64),
    /// `valid` at a steady rate inside a flood of `hostile` frames at the generator's
    /// maximum (`valid_rate` 0: the hostile flood alone).
    Hostile {
        /// The valid traffic.
        valid: &'f Frames,
        /// The flood (IPIP from a non-peer).
        hostile: &'f Frames,
        /// Valid frames per second.
        valid_rate: f64,
    },
}

impl Variant {
    /// Cores the gateway runs on.
    pub fn cpus(self) -> Vec<usize> {
        let n = match self {
            Variant::Kernel { cores } | Variant::Kernel6 { cores } => cores,
            Variant::Tungate { workers, .. } => workers,
        };
        if n == 1 {
            vec![GATEWAY_CPU]
        } else {
            vec![GENERATOR_CPU, GATEWAY_CPU]
        }
    }
}

/// One throughput sample.
#[derive(Debug, Clone)]
pub struct Sample {
    /// Which repeat.
    pub repeat: usize,
    /// The packet size.
    pub size: Size,
    /// The variant.
    pub variant: Variant,
    /// Frames the generator sent per second.
    pub offered_pps: f64,
    /// Frames the client's interface received per second.
    pub delivered_pps: f64,
    /// Busy time (everything but idle and steal) of the gateway's cores per delivered
    /// packet, ns.
    pub busy_ns: f64,
    /// Interrupt time (hard + soft, ksoftirqd included) of those cores per packet, ns.
    pub irq_ns: f64,
    /// The tungate process's CPU time per packet, ns.
    pub process_ns: Option<f64>,
    /// The gateway's CPU time per packet from `perf` samples of its core (interrupt work
    /// in any context, plus its own threads), ns; 1-core variants only.
    pub attributed_ns: Option<f64>,
    /// `attributed_ns` plus the interrupt work on the generator's core per packet: on veth
    /// the receive side's work (the XDP program included) runs in the sender's softirq;
    /// the generator's own sending (system time) stays out. 1-core variants only.
    pub combined_ns: Option<f64>,
    /// Valid frames delivered over valid frames sent over the whole run, warm-up included,
    /// counted after the last ones arrived (hostile loads only).
    pub valid_share: Option<f64>,
    /// Hostile frames the generator sent per second (hostile loads only).
    pub hostile_pps: Option<f64>,
    /// The combined CPU (as `combined_ns`) per hostile frame sent, ns (hostile loads).
    pub combined_ns_per_hostile: Option<f64>,
    /// The gateway core's busy share of the window (0–1), others included.
    pub core_busy_share: f64,
    /// Frames dropped along the path per second, by where (see `measure::PathDrops`).
    pub path_drops: [f64; 4],
    /// Each recorded core's samples by leaf symbol (only when a profile was asked for).
    pub top: Vec<(usize, Vec<(String, u64)>)>,
    /// Share of the gateway core's time that other tasks (compile jobs...) took.
    pub others_share: Option<f64>,
    /// Time in the plugin chain per packet, ns (timed variants).
    pub filter_ns: Option<f64>,
    /// Frames the kernel dropped in front of tungate's sockets (socket full), per second.
    pub rx_overflow_pps: Option<f64>,
    /// Frames tungate received per second.
    pub gateway_rx_pps: Option<f64>,
    /// `/proc/loadavg` at the start of the window.
    pub load: String,
}

/// Latencies of one variant.
#[derive(Debug, Clone)]
pub struct Latency {
    /// The variant.
    pub variant: Variant,
    /// Offered rate, packets per second.
    pub rate: f64,
    /// Frames sent and received.
    pub sent: u64,
    /// Frames received.
    pub received: u64,
    /// One-way latency percentiles, µs: p50, p99, p99.9.
    pub p50_us: f64,
    /// p99.
    pub p99_us: f64,
    /// p99.9.
    pub p999_us: f64,
}

/// A hot-swap (or control) run.
#[derive(Debug, Clone)]
pub struct SwapRun {
    /// The gateway's I/O path.
    pub io: Io,
    /// Swaps done (0: the control run).
    pub swaps: u64,
    /// Swaps that failed to build.
    pub swap_errors: u64,
    /// Offered rate.
    pub rate: f64,
    /// Numbered frames sent.
    pub sent: u64,
    /// Numbers never received.
    pub lost: u64,
    /// Numbers received more than once (extra copies).
    pub duplicated: u64,
    /// Frames the client's receiver socket dropped (its own overflow, not the gateway's).
    pub receiver_drops: u64,
    /// tungate's drops during the run, by reason (non-zero only).
    pub gateway_drops: Vec<(String, u64)>,
}

/// The highest loss-free rate of one variant (1 worker, or the kernel on 1 core).
#[derive(Debug, Clone)]
pub struct Capacity {
    /// The packet size.
    pub size: Size,
    /// The variant.
    pub variant: Variant,
    /// The highest delivered rate with under 2% lost (bursts of 64 at a steady rate).
    pub lossless_pps: f64,
    /// The generator could offer no more and nothing was lost: a lower bound.
    pub generator_limited: bool,
    /// The gateway core's busy time per packet at that rate, ns.
    pub busy_ns: f64,
    /// The gateway's CPU per packet there (its core, from perf), ns.
    pub attributed_ns: Option<f64>,
    /// The same plus the generator core's interrupt work, ns.
    pub combined_ns: Option<f64>,
}

/// The (c′) phases beyond throughput: overload, a hostile flood, and the TPACKET path's
/// burst test at half load.
#[derive(Debug, Clone, Default)]
pub struct Stress {
    /// (c′) at twice its loss-free rate, bursts of 64.
    pub overload: Option<Sample>,
    /// (c′): valid traffic at half its loss-free rate inside a flood from a non-peer.
    pub hostile_xdp: Option<Sample>,
    /// (c) on TPACKET, the same load, for comparison.
    pub hostile_packet: Option<Sample>,
    /// (c′): the hostile flood alone (the cost of dropping it in XDP).
    pub flood_only_xdp: Option<Sample>,
    /// (c) on TPACKET: the hostile flood alone (tap + the nftables fence + tungate's check).
    pub flood_only_packet: Option<Sample>,
    /// (c) on TPACKET at half of its highest measured rate, bursts of 64.
    pub half_load_packet: Option<Sample>,
}

/// Resident memory of one gateway configuration.
#[derive(Debug, Clone)]
pub struct Memory {
    /// VIPs configured.
    pub vips: usize,
    /// Plugins per VIP.
    pub plugins: usize,
    /// Resident set after traffic through every VIP, KiB.
    pub rss_kib: u64,
    /// Peak resident set, KiB.
    pub hwm_kib: u64,
    /// Proportional set size (shared pages divided among their mappings), KiB.
    pub pss_kib: u64,
}

struct Bench<'a> {
    options: &'a Options,
    t: Topology,
    generator: Generator,
    plugins: PathBuf,
}

impl<'a> Bench<'a> {
    /// What `run` and `ipv6` start with: root and 2 cores checked (else the exit status),
    /// this thread (and every process it starts) kept off the gateway's core, the
    /// namespaces, the generator and the prepared plugins; with the start time and the load
    /// average then.
    fn open(options: &'a Options) -> Result<(Bench<'a>, Instant, String), i32> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!(
                "gateway_bench: needs root (network namespaces, AF_PACKET, AF_XDP, nftables)"
            );
            return Err(2);
        }
        if std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
            eprintln!("gateway_bench: needs 2 cores (one for the generator, one for the gateway)");
            return Err(2);
        }
        pin_current_thread(&[GENERATOR_CPU]);
        raise_priority();
        let started = Instant::now();
        let load_before = measure::loadavg();
        let plugins = plugin_dir();
        let t = Topology::new();
        let generator = Generator::open(&t.rs);
        let bench = Bench {
            options,
            t,
            generator,
            plugins,
        };
        bench.prepare();
        Ok((bench, started, load_before))
    }

    /// Runs `block` for each size (64 B only with `--quick`) in every repeat, the sizes'
    /// order reversed every other repeat; returns the samples.
    fn repeated(
        &self,
        started: Instant,
        block: fn(&Self, usize, Size, &mut Vec<Sample>),
    ) -> Vec<Sample> {
        let sizes: Vec<Size> = if self.options.quick {
            vec![SIZES[0]]
        } else {
            SIZES.to_vec()
        };
        let mut samples = Vec::new();
        for repeat in 0..self.options.repeats {
            eprintln!(
                "[{:.0} s] repeat {} of {} (load {})",
                started.elapsed().as_secs_f64(),
                repeat + 1,
                self.options.repeats,
                measure::loadavg()
            );
            let mut order = sizes.clone();
            if repeat % 2 == 1 {
                order.reverse();
            }
            for size in order {
                block(self, repeat, size, &mut samples);
            }
        }
        samples
    }
}

fn sh(args: &[&str]) {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Bench<'static> {
    /// A bench for one subcommand's phase alone (`soak`, `latency`, `memory`, `napi`): root checked
    /// (else `None`, said), the generator pinned and prioritised, the namespaces prepared;
    /// `quick` as `run --quick` (shorter latency runs).
    fn standalone(quick: bool) -> Option<Bench<'static>> {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("gateway_bench: needs root");
            return None;
        }
        pin_current_thread(&[GENERATOR_CPU]);
        raise_priority();
        let options: &'static Options = Box::leak(Box::new(Options {
            quick,
            repeats: 1,
            window: Duration::from_secs(1),
            out: PathBuf::new(),
            samples: PathBuf::new(),
        }));
        let t = Topology::new();
        let generator = Generator::open(&t.rs);
        let bench = Bench {
            options,
            t,
            generator,
            plugins: plugin_dir(),
        };
        bench.prepare();
        Some(bench)
    }
}

impl Bench<'_> {
    /// Forwarding on in `gw`, and a permanent neighbour entry for the client with a MAC that
    /// is not the client's: the client's interface counts every frame, then its IP layer
    /// discards it at once as addressed to another host (the cheapest sink there is, the
    /// same for every variant; an AF_PACKET socket on it still sees every frame).
    fn prepare(&self) {
        let gw = &self.t.gw.name;
        for setting in [
            "net.ipv4.ip_forward=1",
            "net.ipv4.conf.all.rp_filter=0",
            "net.ipv4.conf.g0.rp_filter=0",
            "net.ipv6.conf.all.forwarding=1",
        ] {
            sh(&["ip", "netns", "exec", gw, "sysctl", "-q", "-w", setting]);
        }
        // The ip6ip6 rows: GIP6 on the ingress, the IPv6 client's prefix behind g1 (no
        // duplicate address detection: usable at once).
        for (address, dev) in [(GIP6, "g0"), (GW_CLIENT6, "g1")] {
            self.t.gw.ip(&[
                "-6",
                "addr",
                "add",
                &format!("{address}/64"),
                "dev",
                dev,
                "nodad",
            ]);
        }
        let mac = SINK_MAC
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(":");
        for client in [CIP.to_string(), CIP6.to_string()] {
            self.t.gw.ip(&[
                "neigh",
                "replace",
                &client,
                "lladdr",
                &mac,
                "dev",
                "g1",
                "nud",
                "permanent",
            ]);
        }
    }

    /// Steers `g0`'s receive processing to `cpus` (RPS), so the gateway's share of the
    /// kernel's work runs on the gateway's cores and not on the generator's.
    fn steer(&self, cpus: &[usize]) {
        let mask: u32 = cpus.iter().map(|c| 1u32 << c).sum();
        sh(&[
            "ip",
            "netns",
            "exec",
            &self.t.gw.name,
            "sh",
            "-c",
            &format!("echo {mask:x} > /sys/class/net/g0/queues/rx-0/rps_cpus"),
        ]);
    }

    fn start_gateway(&self, io: Io, workers: usize, vips: usize) -> GatewayProcess {
        self.start_gateway_with(io, Tunnel::Ipip, workers, vips)
    }

    fn start_gateway_with(
        &self,
        io: Io,
        tunnel: Tunnel,
        workers: usize,
        vips: usize,
    ) -> GatewayProcess {
        self.start_gateway_env(io, tunnel, workers, vips, &[])
    }

    fn start_gateway_env(
        &self,
        io: Io,
        tunnel: Tunnel,
        workers: usize,
        vips: usize,
        env: &[(&str, &str)],
    ) -> GatewayProcess {
        let cpus = tungate(workers, Chain::None, io).cpus();
        GatewayProcess::start(
            &self.t.gw,
            io,
            tunnel,
            workers,
            &cpus,
            vips,
            &self.plugins,
            env,
        )
    }

    /// Sends `load` and measures one window; with `profile`, keeps the recorded cores'
    /// top symbols. 1-core variants record both cores with `perf` (the gateway's, and the
    /// generator's for the receive work the kernel runs there).
    fn measure(
        &self,
        load: Load<'_>,
        variant: Variant,
        mut gw: Option<&mut GatewayProcess>,
        window: Duration,
        profile: bool,
    ) -> Sample {
        let cpus = variant.cpus();
        let stop = AtomicBool::new(false);
        let sent = AtomicU64::new(0);
        let sent_hostile = AtomicU64::new(0);
        let rx_start = measure::rx_packets(&self.t.client, "c0");
        std::thread::scope(|s| {
            let generator = s.spawn(|| {
                pin_current_thread(&[GENERATOR_CPU]);
                match load {
                    Load::Flood(f) => self.generator.flood(f, &stop, &sent, None),
                    Load::Rate(f, rate) => self.generator.flood(f, &stop, &sent, Some(rate)),
                    Load::Hostile {
                        valid,
                        hostile,
                        valid_rate,
                    } => self.generator.mixed(
                        valid,
                        hostile,
                        valid_rate,
                        &stop,
                        &sent,
                        &sent_hostile,
                    ),
                }
            });
            std::thread::sleep(WARM_UP);
            if let Some(g) = gw.as_mut() {
                g.command("timing");
            }
            let load_avg = measure::loadavg();
            let rx0 = measure::rx_packets(&self.t.client, "c0");
            let rx_t0 = Instant::now();
            let sent0 = sent.load(Ordering::Relaxed);
            let hostile0 = sent_hostile.load(Ordering::Relaxed);
            let drops0 = measure::path_drops(&self.t.rs, &self.t.gw);
            let cores0 = measure::cores();
            let proc0 = gw.as_ref().map(|g| measure::process_cpu_ns(g.pid()));
            let counters_before = gw.as_mut().map(|g| g.command("counters"));
            let t0 = Instant::now();
            let recording = (cpus.len() == 1)
                .then(|| measure::PerfRecording::start(&[GENERATOR_CPU, cpus[0]], window, "window"))
                .flatten();
            std::thread::sleep(window);
            let rx1 = measure::rx_packets(&self.t.client, "c0");
            let rx_t1 = Instant::now();
            let sent1 = sent.load(Ordering::Relaxed);
            let hostile1 = sent_hostile.load(Ordering::Relaxed);
            let cores1 = measure::cores();
            let drops = measure::path_drops(&self.t.rs, &self.t.gw).minus(&drops0);
            let proc1 = gw.as_ref().map(|g| measure::process_cpu_ns(g.pid()));
            let t1 = Instant::now();
            let counters_after = gw.as_mut().map(|g| g.command("counters"));
            let timing = gw.as_mut().map(|g| g.command("timing"));
            let ours = gw
                .as_ref()
                .map(|g| measure::thread_ids(g.pid()))
                .unwrap_or_default();
            let load_threads = measure::thread_ids(std::process::id());
            let recorded = recording.and_then(|r| r.finish(&ours, &load_threads));
            stop.store(true, Ordering::Relaxed);
            generator.join().expect("generator");
            // Over the whole run (warm-up included), after what was in flight has arrived:
            // exact where the window's counters are read a few ms apart.
            let whole_run_share = matches!(load, Load::Hostile { .. }).then(|| {
                std::thread::sleep(Duration::from_millis(100));
                let rx = measure::rx_packets(&self.t.client, "c0") - rx_start;
                rx as f64 / sent.load(Ordering::Relaxed).max(1) as f64
            });

            let rx_elapsed = (rx_t1 - rx_t0).as_secs_f64();
            let elapsed = (t1 - t0).as_secs_f64();
            let delivered_pps = (rx1 - rx0) as f64 / rx_elapsed;
            let packets = (delivered_pps * elapsed).max(1.0);
            let core: CoreTimes = measure::cores_delta(&cores0, &cores1, &cpus);
            let generator_core = measure::cores_delta(&cores0, &cores1, &[GENERATOR_CPU]);
            let filter_ns = match (variant, &timing) {
                (Variant::Tungate { timed: true, .. }, Some(t)) => {
                    t["median_ns_per_packet"].as_f64()
                }
                _ => None,
            };
            let counter = |path: &[&str]| match (&counters_before, &counters_after) {
                (Some(a), Some(b)) => {
                    let get = |v: &serde_json::Value| {
                        path.iter().fold(v, |v, k| &v[*k]).as_f64().unwrap_or(0.0)
                    };
                    Some((get(b) - get(a)) / elapsed)
                }
                _ => None,
            };
            // The recorded shares (perf samples only a busy core) applied to each core's busy
            // time over the window as timed here.
            let gateway_ns = recorded
                .as_ref()
                .and_then(|p| Some(p.cpu(cpus[0])?.gateway_share() * core.busy() as f64));
            let generator_irq_ns = recorded.as_ref().and_then(|p| {
                Some(p.cpu(GENERATOR_CPU)?.interrupt_share() * generator_core.busy() as f64)
            });
            let combined = gateway_ns.zip(generator_irq_ns).map(|(a, b)| a + b);
            let hostile_sent = (hostile1 - hostile0) as f64;
            let hostile = matches!(load, Load::Hostile { .. });
            Sample {
                repeat: 0,
                size: SIZES[0],
                variant,
                offered_pps: (sent1 - sent0) as f64 / elapsed,
                delivered_pps,
                busy_ns: core.busy() as f64 / packets,
                irq_ns: core.interrupts as f64 / packets,
                process_ns: proc0.zip(proc1).map(|(a, b)| (b - a) as f64 / packets),
                attributed_ns: gateway_ns.map(|g| g / packets),
                combined_ns: combined.map(|c| c / packets),
                hostile_pps: hostile.then_some(hostile_sent / elapsed),
                valid_share: whole_run_share,
                combined_ns_per_hostile: combined
                    .filter(|_| hostile && hostile_sent > 0.0)
                    .map(|c| c / hostile_sent),
                core_busy_share: core.busy() as f64 / (elapsed * 1e9 * cpus.len() as f64),
                others_share: recorded.as_ref().and_then(|p| {
                    Some(p.cpu(cpus[0])?.others_share() * core.busy() as f64 / (elapsed * 1e9))
                }),
                top: if profile {
                    recorded.map(|p| p.top).unwrap_or_default()
                } else {
                    Vec::new()
                },
                filter_ns,
                rx_overflow_pps: counter(&["drops", "rx_overflow"]),
                path_drops: [drops.sender, drops.ingress, drops.egress, drops.backlog]
                    .map(|d| d as f64 / elapsed),
                gateway_rx_pps: counter(&["rx_packets"]),
                load: load_avg,
            }
        })
    }

    /// One repeat of the throughput matrix for one size.
    fn matrix_block(&self, repeat: usize, size: Size, out: &mut Vec<Sample>) {
        let ipip = build_frames(Encap::Ipip, size.payload, FLOWS, &[VIP]);
        let plain = build_frames(Encap::Plain, size.payload, FLOWS, &[VIP]);
        let window = self.options.window;
        let mut workers: Vec<usize> = if self.options.quick {
            vec![1]
        } else {
            vec![1, 2]
        };
        let mut chains = vec![Chain::None, Chain::Cidr, Chain::Four];
        if repeat % 2 == 1 {
            workers.reverse();
            chains.reverse();
        }
        let mut push = |mut s: Sample| {
            s.repeat = repeat;
            s.size = size;
            eprintln!("  {}", report::sample_line(&s));
            out.push(s);
        };
        for &n in &workers {
            let kernel = Variant::Kernel { cores: n };
            let tungate_first = repeat % 2 == 1;
            let run_kernel = |push: &mut dyn FnMut(Sample)| {
                self.steer(&kernel.cpus());
                push(self.measure(Load::Flood(&plain), kernel, None, window, false));
            };
            if !tungate_first {
                run_kernel(&mut push);
            }
            // AF_XDP with 1 worker only: the bench's veth has one queue (one worker per
            // receive queue on AF_XDP), and 2 workers would share the generator's core.
            let mut ios = if n == 1 {
                vec![Io::Packet, Io::Xdp]
            } else {
                vec![Io::Packet]
            };
            if repeat % 2 == 1 {
                ios.reverse();
            }
            for io in ios {
                // On AF_XDP RPS changes nothing (XDP runs before it, on the sender's core);
                // the TPACKET path's receive work is steered to the gateway's core.
                self.steer(&tungate(n, Chain::None, io).cpus());
                let mut gw = self.start_gateway(io, n, 1);
                for &chain in &chains {
                    gw.command(&format!("chain {}", chain.name()));
                    let v = tungate(n, chain, io);
                    // The (c′) flood's profile: what limits the AF_XDP path.
                    let profile = io == Io::Xdp && chain == Chain::Cidr && size == SIZES[0];
                    push(self.measure(Load::Flood(&ipip), v, Some(&mut gw), window, profile));
                }
                if n == 1 && io == Io::Packet {
                    for chain in [Chain::Cidr, Chain::Four] {
                        gw.command(&format!("chain {} timed", chain.name()));
                        let v = Variant::Tungate {
                            workers: n,
                            chain,
                            timed: true,
                            io,
                            tunnel: Tunnel::Ipip,
                        };
                        push(self.measure(Load::Flood(&ipip), v, Some(&mut gw), window, false));
                    }
                }
                gw.quit();
            }
            if n == 1 {
                // The GUE rows beside IPIP: (c) and (c′), the generator sending GUE with
                // one UDP source port per flow.
                let gue_frames = build_frames(Encap::Gue, size.payload, FLOWS, &[VIP]);
                let mut ios = [Io::Packet, Io::Xdp];
                if repeat % 2 == 1 {
                    ios.reverse();
                }
                for io in ios {
                    self.steer(&gue(io).cpus());
                    let mut gw = self.start_gateway_with(io, Tunnel::Gue, 1, 1);
                    gw.command("chain cidr");
                    let load = Load::Flood(&gue_frames);
                    push(self.measure(load, gue(io), Some(&mut gw), window, false));
                    gw.quit();
                }
                // The IPv6 rows: (c′) in ip6ip6 and its kernel reference (a6).
                self.ipv6_block(repeat, size, &mut push);
            }
            if tungate_first {
                run_kernel(&mut push);
            }
        }
    }

    /// The IPv6 rows of one repeat and size: the kernel forwarding the inner IPv6 packets
    /// (a6, 1 core) and (c′) with its peer tunnelling in ip6ip6, in alternating order.
    fn ipv6_block(&self, repeat: usize, size: Size, push: &mut dyn FnMut(Sample)) {
        let window = self.options.window;
        let tunnelled = build_frames(Encap::Ip6ip6, size.payload, FLOWS, &[VIP]);
        let plain = build_frames(Encap::Plain6, size.payload, FLOWS, &[VIP]);
        let kernel = Variant::Kernel6 { cores: 1 };
        let run_kernel = |push: &mut dyn FnMut(Sample)| {
            self.steer(&kernel.cpus());
            push(self.measure(Load::Flood(&plain), kernel, None, window, false));
        };
        if repeat.is_multiple_of(2) {
            run_kernel(push);
        }
        let v = ip6ip6(Io::Xdp);
        self.steer(&v.cpus());
        let mut gw = self.start_gateway_with(Io::Xdp, Tunnel::Ip6ip6, 1, 1);
        gw.command("chain cidr");
        push(self.measure(Load::Flood(&tunnelled), v, Some(&mut gw), window, false));
        gw.quit();
        if repeat % 2 == 1 {
            run_kernel(push);
        }
    }

    /// `gateway_bench ipv6`'s block: the IPIP rows (a) and (c′) and the IPv6 rows (a6) and
    /// (c′) in ip6ip6, side by side, the order alternating by repeat.
    fn ipv4_and_ipv6_block(&self, repeat: usize, size: Size, out: &mut Vec<Sample>) {
        let window = self.options.window;
        let ipip = build_frames(Encap::Ipip, size.payload, FLOWS, &[VIP]);
        let plain = build_frames(Encap::Plain, size.payload, FLOWS, &[VIP]);
        let mut push = |mut s: Sample| {
            s.repeat = repeat;
            s.size = size;
            eprintln!("  {}", report::sample_line(&s));
            out.push(s);
        };
        let ipv4 = |push: &mut dyn FnMut(Sample)| {
            let kernel = Variant::Kernel { cores: 1 };
            self.steer(&kernel.cpus());
            push(self.measure(Load::Flood(&plain), kernel, None, window, false));
            let v = tungate(1, Chain::Cidr, Io::Xdp);
            self.steer(&v.cpus());
            let mut gw = self.start_gateway(Io::Xdp, 1, 1);
            gw.command("chain cidr");
            push(self.measure(Load::Flood(&ipip), v, Some(&mut gw), window, false));
            gw.quit();
        };
        if repeat.is_multiple_of(2) {
            ipv4(&mut push);
            self.ipv6_block(repeat, size, &mut push);
        } else {
            self.ipv6_block(repeat, size, &mut push);
            ipv4(&mut push);
        }
    }

    /// Sends `count` numbered frames at `rate` and returns what the client received.
    fn paced(&self, frames: &Frames, rate: f64, count: u64) -> (u64, Received) {
        let receiver = Receiver::open(&self.t.client, CLIENT_PAYLOAD_OFFSET);
        let stop_receiver = AtomicBool::new(false);
        let never = AtomicBool::new(false);
        std::thread::scope(|s| {
            let r = s.spawn(|| {
                pin_current_thread(&[GENERATOR_CPU]);
                receiver.collect(&stop_receiver)
            });
            let g = s.spawn(|| {
                pin_current_thread(&[GENERATOR_CPU]);
                self.generator.paced(frames, rate, count, 0, &never)
            });
            let sent = g.join().expect("generator");
            std::thread::sleep(Duration::from_millis(300));
            stop_receiver.store(true, Ordering::Relaxed);
            (sent, r.join().expect("receiver"))
        })
    }

    /// One-way latency of the kernel and of `chains` on `io` at `rate`, `rounds` rounds
    /// alternating.
    fn latency_phase(&self, rate: f64, io: Io, chains: &[Chain], rounds: usize) -> Vec<Latency> {
        let frames = build_frames(Encap::Ipip, SIZES[0].payload, FLOWS, &[VIP]);
        let plain = build_frames(Encap::Plain, SIZES[0].payload, FLOWS, &[VIP]);
        let seconds = if self.options.quick { 0.5 } else { 2.0 };

        let count = (rate * seconds) as u64;
        let kernel = Variant::Kernel { cores: 1 };
        let mut all: Vec<(Variant, Vec<f64>, u64, u64)> = Vec::new();
        let mut runs = 0;
        let mut record = |v: Variant, sent: u64, r: Received| {
            if let Some(dir) = std::env::var_os(ARRIVALS_ENV) {
                runs += 1;
                let name = if v == kernel { "kernel" } else { "tungate" };
                save_arrivals(&PathBuf::from(dir).join(format!("{runs}-{name}.tsv")), &r);
            }
            let lat: Vec<f64> = r
                .arrivals
                .iter()
                .map(|a| a.latency_ns as f64 / 1000.0)
                .collect();
            let received = lat.len() as u64;
            match all.iter_mut().find(|e| e.0 == v) {
                Some(e) => {
                    e.1.extend(lat);
                    e.2 += sent;
                    e.3 += received;
                }
                None => all.push((v, lat, sent, received)),
            }
        };
        for round in 0..rounds {
            let kernel_first = round % 2 == 0;
            let run_kernel = |record: &mut dyn FnMut(Variant, u64, Received)| {
                self.steer(&kernel.cpus());
                let (sent, r) = self.paced(&plain, rate, count);
                record(kernel, sent, r);
            };
            if kernel_first {
                run_kernel(&mut record);
            }
            self.steer(&[GATEWAY_CPU]);
            let mut gw = self.start_gateway(io, 1, 1);
            for &chain in chains {
                gw.command(&format!("chain {}", chain.name()));
                // Who waited for a CPU meanwhile: the worker, and the softirq threads of
                // both cores (softirq work the kernel defers runs there, as a task).
                let worker = measure::Sched::find(gw.pid(), "tg-worker-0");
                let threads: Vec<(String, u32, u32)> = worker
                    .map(|t| ("worker".to_owned(), gw.pid(), t))
                    .into_iter()
                    .chain([GENERATOR_CPU, GATEWAY_CPU].into_iter().filter_map(|c| {
                        let pid = measure::Sched::ksoftirqd(c)?;
                        Some((format!("ksoftirqd/{c}"), pid, pid))
                    }))
                    .collect();
                let before: Vec<_> = threads
                    .iter()
                    .map(|(_, p, t)| measure::Sched::of(*p, *t))
                    .collect();
                let started = Instant::now();
                let (sent, r) = self.paced(&frames, rate, count);
                let seconds = started.elapsed().as_secs_f64();
                for ((name, p, t), b) in threads.iter().zip(&before) {
                    if let (Some(b), Some(a)) = (b, measure::Sched::of(*p, *t)) {
                        eprintln!(
                            "  latency {} {}: {name}: {}",
                            io.name(),
                            chain.name(),
                            a.since(b, seconds)
                        );
                    }
                }
                record(tungate(1, chain, io), sent, r);
            }
            gw.quit();
            if !kernel_first {
                run_kernel(&mut record);
            }
        }
        all.into_iter()
            .map(|(variant, lat, sent, received)| Latency {
                variant,
                rate,
                sent,
                received,
                p50_us: measure::percentile(&lat, 0.5),
                p99_us: measure::percentile(&lat, 0.99),
                p999_us: measure::percentile(&lat, 0.999),
            })
            .collect()
    }

    /// A control run and a run with a hot swap every 100 ms, on `io` at `rate`.
    fn swap_phase(&self, rate: f64, io: Io) -> Vec<SwapRun> {
        let frames = build_frames(Encap::Ipip, SIZES[0].payload, FLOWS, &[VIP]);
        let seconds = if self.options.quick { 1.0 } else { 5.0 };
        let count = (rate * seconds) as u64;
        self.steer(&[GATEWAY_CPU]);
        let mut gw = self.start_gateway(io, 1, 1);
        gw.command("chain cidr");
        let mut runs = Vec::new();
        for swapping in [false, true] {
            let before = gw.command("counters");
            if swapping {
                gw.command("swap-start 100");
            }
            let (sent, received) = self.paced(&frames, rate, count);
            let (swaps, swap_errors) = if swapping {
                let v = gw.command("swap-stop");
                (
                    v["swaps"].as_u64().unwrap_or(0),
                    v["errors"].as_u64().unwrap_or(0),
                )
            } else {
                (0, 0)
            };
            let after = gw.command("counters");
            let (lost, duplicated) = count_sequence(sent, &received);
            let gateway_drops = after["drops"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| {
                            let d =
                                v.as_u64().unwrap_or(0) - before["drops"][k].as_u64().unwrap_or(0);
                            (k.clone(), d)
                        })
                        .filter(|(_, d)| *d > 0)
                        .collect()
                })
                .unwrap_or_default();
            runs.push(SwapRun {
                io,
                swaps,
                swap_errors,
                rate,
                sent,
                lost,
                duplicated,
                receiver_drops: received.socket_drops,
                gateway_drops,
            });
        }
        gw.quit();
        runs
    }

    /// The highest rate each 1-worker variant (and the kernel on 1 core) forwards without
    /// loss, sent in bursts of 64 at a steady rate: from half of the variant's median flood
    /// rate (at least 50 k pps) up by `step` until more than 2% is lost or the generator
    /// tops out; down by `step` first while the starting rate already loses.
    fn capacity_phase(&self, samples: &[Sample]) -> Vec<Capacity> {
        let quick = self.options.quick;
        let sizes: Vec<Size> = if quick {
            vec![SIZES[0]]
        } else {
            SIZES.to_vec()
        };
        let window = if quick {
            Duration::from_millis(500)
        } else {
            Duration::from_secs(1)
        };
        let step = if quick { 1.3 } else { 1.15 };
        let chains: Vec<Chain> = if quick {
            vec![Chain::Cidr]
        } else {
            vec![Chain::None, Chain::Cidr, Chain::Four]
        };
        let mut out = Vec::new();
        for size in sizes {
            let ipip = build_frames(Encap::Ipip, size.payload, FLOWS, &[VIP]);
            let plain = build_frames(Encap::Plain, size.payload, FLOWS, &[VIP]);
            if !quick {
                let kernel = Variant::Kernel { cores: 1 };
                self.steer(&kernel.cpus());
                let start = report::median_delivered(samples, size, kernel);
                out.push(self.search(&plain, kernel, None, start, step, window));
            }
            self.steer(&[GATEWAY_CPU]);
            for io in [Io::Packet, Io::Xdp] {
                let mut gw = self.start_gateway(io, 1, 1);
                for &chain in &chains {
                    gw.command(&format!("chain {}", chain.name()));
                    let v = tungate(1, chain, io);
                    let start = report::median_delivered(samples, size, v);
                    out.push(self.search(&ipip, v, Some(&mut gw), start, step, window));
                }
                gw.quit();
            }
            let gue_frames = build_frames(Encap::Gue, size.payload, FLOWS, &[VIP]);
            for io in [Io::Packet, Io::Xdp] {
                let mut gw = self.start_gateway_with(io, Tunnel::Gue, 1, 1);
                gw.command("chain cidr");
                let start = report::median_delivered(samples, size, gue(io));
                out.push(self.search(&gue_frames, gue(io), Some(&mut gw), start, step, window));
                gw.quit();
            }
        }
        out
    }

    /// One variant's loss-free search (see `capacity_phase`); `flood` is its median flood
    /// rate (NaN if unknown).
    fn search(
        &self,
        frames: &Frames,
        v: Variant,
        mut gw: Option<&mut GatewayProcess>,
        flood: f64,
        step: f64,
        window: Duration,
    ) -> Capacity {
        let size = if frames.frames[0].len() > 200 {
            SIZES[1]
        } else {
            SIZES[0]
        };
        let mut rate = if flood.is_nan() {
            100_000.0
        } else {
            (flood / 2.0).max(50_000.0)
        };
        let mut best: Option<Sample> = None;
        let mut limited = false;
        let mut going_down = false;
        for _ in 0..40 {
            let mut s = self.measure(
                Load::Rate(frames, rate),
                v,
                gw.as_deref_mut(),
                window,
                false,
            );
            s.size = size;
            let lossless = s.delivered_pps >= 0.98 * s.offered_pps;
            let topped_out = s.offered_pps < 0.95 * rate;
            eprintln!(
                "  capacity {} at {rate:.0}: {}",
                size.label,
                report::sample_line(&s)
            );
            if lossless {
                best = Some(s);
                if topped_out {
                    limited = true;
                    break;
                }
                if going_down {
                    break;
                }
                rate *= step;
            } else if best.is_none() && rate > 20_000.0 {
                going_down = true;
                rate /= step;
            } else {
                break;
            }
        }
        Capacity {
            size,
            variant: v,
            lossless_pps: best.as_ref().map_or(0.0, |s| s.delivered_pps),
            generator_limited: limited,
            busy_ns: best.as_ref().map_or(f64::NAN, |s| s.busy_ns),
            attributed_ns: best.as_ref().and_then(|s| s.attributed_ns),
            combined_ns: best.as_ref().and_then(|s| s.combined_ns),
        }
    }

    /// (c′) under twice its loss-free rate; a hostile flood with valid traffic at half of
    /// it, on AF_XDP and on the TPACKET path; the flood alone on both (the cost of dropping
    /// it); and (c) on TPACKET at half of its highest measured rate (the burst-loss test).
    fn stress_phase(&self, c_prime: f64, c_packet_max: f64) -> Stress {
        let window = if self.options.quick {
            Duration::from_millis(700)
        } else {
            Duration::from_secs(2)
        };
        let ipip = build_frames(Encap::Ipip, SIZES[0].payload, FLOWS, &[VIP]);
        let hostile = build_frames(Encap::Stranger, SIZES[0].payload, FLOWS, &[VIP]);
        let mut out = Stress::default();
        self.steer(&[GATEWAY_CPU]);
        let line = |what: &str, s: Sample| {
            eprintln!("  {what}: {}", report::sample_line(&s));
            Some(s)
        };
        for io in [Io::Xdp, Io::Packet] {
            let v = tungate(1, Chain::Cidr, io);
            let mut gw = self.start_gateway(io, 1, 1);
            gw.command("chain cidr");
            if io == Io::Xdp && c_prime > 0.0 {
                let s = self.measure(
                    Load::Rate(&ipip, 2.0 * c_prime),
                    v,
                    Some(&mut gw),
                    window,
                    false,
                );
                out.overload = line("overload", s);
            }
            let half = (c_prime / 2.0).max(10_000.0);
            let mixed = Load::Hostile {
                valid: &ipip,
                hostile: &hostile,
                valid_rate: half,
            };
            let alone = Load::Hostile {
                valid: &ipip,
                hostile: &hostile,
                valid_rate: 0.0,
            };
            let with_valid = line(
                "hostile flood + valid",
                self.measure(mixed, v, Some(&mut gw), window, false),
            );
            let flood = line(
                "hostile flood alone",
                self.measure(alone, v, Some(&mut gw), window, false),
            );
            if io == Io::Xdp {
                (out.hostile_xdp, out.flood_only_xdp) = (with_valid, flood);
            } else {
                (out.hostile_packet, out.flood_only_packet) = (with_valid, flood);
                if c_packet_max > 0.0 {
                    let s = self.measure(
                        Load::Rate(&ipip, c_packet_max / 2.0),
                        v,
                        Some(&mut gw),
                        window.max(Duration::from_secs(1)),
                        false,
                    );
                    out.half_load_packet = line("TPACKET at half load", s);
                }
            }
            gw.quit();
        }
        out
    }

    fn memory_phase(&self) -> Vec<Memory> {
        let mut out = Vec::new();
        self.steer(&[GATEWAY_CPU]);
        for (vips, chain, plugins) in [
            (1, Chain::None, 0),
            (100, Chain::None, 0),
            (100, Chain::Four, 4),
        ] {
            let list = gateway::vips(vips);
            let frames = build_frames(Encap::Ipip, SIZES[0].payload, vips.max(FLOWS), &list);
            let mut gw = self.start_gateway(Io::Packet, 1, vips);
            gw.command(&format!("chain {}", chain.name()));
            let window = if self.options.quick {
                Duration::from_millis(500)
            } else {
                Duration::from_secs(2)
            };
            let v = tungate(1, chain, Io::Packet);
            let s = self.measure(Load::Flood(&frames), v, Some(&mut gw), window, false);
            let rss = gw.command("rss");
            eprintln!(
                "  memory: {vips} VIPs × {plugins} plugins: {rss} ({:.0} pps)",
                s.delivered_pps
            );
            if let Some(dir) = std::env::var_os(SMAPS_ENV) {
                let file = PathBuf::from(dir).join(format!("smaps-{vips}-{plugins}.txt"));
                let copied = std::fs::copy(format!("/proc/{}/smaps", gw.pid()), &file);
                if let Err(e) = copied {
                    eprintln!("  cannot save {}: {e}", file.display());
                }
            }
            out.push(Memory {
                vips,
                plugins,
                rss_kib: rss["rss_kib"].as_u64().unwrap_or(0),
                hwm_kib: rss["hwm_kib"].as_u64().unwrap_or(0),
                pss_kib: rss["pss_kib"].as_u64().unwrap_or(0),
            });
            gw.quit();
        }
        out
    }
}

/// How the generator encapsulates for a gateway whose peer tunnels with `tunnel`.
fn encap_of(tunnel: Tunnel) -> Encap {
    match tunnel {
        Tunnel::Ipip => Encap::Ipip,
        Tunnel::Gue => Encap::Gue,
        Tunnel::Ip6ip6 => Encap::Ip6ip6,
    }
}

/// Nice −10 for this thread and everything it starts (the generator, the gateway process
/// and its threads): on a machine shared with compile jobs, the generator and tungate's
/// worker then get most of their cores, as on a dedicated gateway. The kernel's forwarding
/// runs in softirq context, ahead of every process, so it needs no such help.
pub const NICE: libc::c_int = -10;

/// Where the kernel keeps the nice value of the calling process's autogroup.
const AUTOGROUP: &str = "/proc/self/autogroup";

/// Nice [`NICE`] for the calling thread and for its session's autogroup. With
/// `kernel.sched_autogroup_enabled=1` (this host) the scheduler first shares a core between
/// sessions' autogroups, and a task's own nice value only orders it within its session:
/// without the autogroup's nice, another engineer's compile session took the gateway's core
/// for longer than its receive ring lasts (2048 frames: 8 ms at 250 k pps) while the core
/// was half idle on average, and the TPACKET path lost 40% at 170 k pps. `main` gives the
/// bench a session of its own first, so only the bench's processes are raised.
fn raise_priority() {
    // SAFETY: plain setpriority(2) on the calling thread (who = 0).
    if unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) } != 0 {
        eprintln!(
            "gateway_bench: cannot raise priority: {}",
            std::io::Error::last_os_error()
        );
    }
    if std::path::Path::new(AUTOGROUP).exists()
        && let Err(e) = std::fs::write(AUTOGROUP, NICE.to_string())
    {
        eprintln!("gateway_bench: cannot raise the autogroup's priority: {e}");
    }
}

/// (lost, duplicated) of the numbers `0..sent` among the frames received.
pub fn count_sequence(sent: u64, received: &Received) -> (u64, u64) {
    let mut seen = vec![false; sent as usize];
    let mut duplicated = 0;
    for a in &received.arrivals {
        match seen.get_mut(a.seq as usize) {
            Some(s) if *s => duplicated += 1,
            Some(s) => *s = true,
            None => duplicated += 1, // a number never sent counts against us too
        }
    }
    let lost = seen.iter().filter(|s| !**s).count() as u64;
    (lost, duplicated)
}

/// With this variable set to a directory, the gateways load the example plugins' `.wasm`
/// files from there instead of building them (to compare plugin builds side by side).
pub const PLUGINS_ENV: &str = "GATEWAY_BENCH_PLUGINS";

fn plugin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os(PLUGINS_ENV) {
        return dir.into();
    }
    for p in plugins::EXAMPLES {
        plugins::plugin_wasm(p);
    }
    plugins::wasm_dir()
}

/// `gateway_bench ipv6`: only the IPIP and ip6ip6 rows of (a) and (c′) (and (a6)), side
/// by side, `options.repeats` times for each size; writes their medians to `options.out`.
pub fn ipv6(options: &Options) -> i32 {
    let (bench, started, load_before) = match Bench::open(options) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let samples = bench.repeated(started, Bench::ipv4_and_ipv6_block);
    let text = report::ipv6_results(
        options,
        &samples,
        &load_before,
        &measure::loadavg(),
        started.elapsed(),
    );
    match std::fs::write(&options.out, text) {
        Ok(()) => {
            eprintln!("wrote {}", options.out.display());
            0
        }
        Err(e) => {
            eprintln!("gateway_bench: cannot write {}: {e}", options.out.display());
            1
        }
    }
}

/// Runs every phase and writes the report; returns the exit status.
pub fn run(options: &Options) -> i32 {
    let (bench, started, load_before) = match Bench::open(options) {
        Ok(opened) => opened,
        Err(code) => return code,
    };
    let samples = bench.repeated(started, Bench::matrix_block);
    let at = || started.elapsed().as_secs_f64();
    eprintln!("[{:.0} s] capacity", at());
    let capacity = bench.capacity_phase(&samples);
    let c = tungate(1, Chain::Cidr, Io::Packet);
    let c_prime = tungate(1, Chain::Cidr, Io::Xdp);
    let c_rate = report::median_delivered(&samples, SIZES[0], c);
    let cap = |v: Variant| {
        capacity
            .iter()
            .find(|x| x.size == SIZES[0] && x.variant == v)
            .map_or(0.0, |x| x.lossless_pps)
    };
    let c_prime_cap = cap(c_prime);
    eprintln!(
        "[{:.0} s] (c′) at 2× its capacity, hostile flood, TPACKET at half load",
        at()
    );
    let stress = bench.stress_phase(c_prime_cap, c_rate.max(cap(c)));
    let half = (c_rate / 2.0).max(1000.0);
    let half_prime = (c_prime_cap / 2.0).max(1000.0);
    eprintln!(
        "[{:.0} s] latency at {half:.0} pps (TPACKET) and {half_prime:.0} pps (AF_XDP)",
        at()
    );
    let rounds = if options.quick { 1 } else { 3 };
    let mut latency = bench.latency_phase(
        half,
        Io::Packet,
        &[Chain::None, Chain::Cidr, Chain::Four],
        rounds,
    );
    latency.extend(bench.latency_phase(half_prime, Io::Xdp, &[Chain::Cidr], rounds));
    eprintln!(
        "[{:.0} s] hot swap at {half:.0} pps (TPACKET) and {half_prime:.0} pps (AF_XDP)",
        at()
    );
    let mut swaps = bench.swap_phase(half, Io::Packet);
    swaps.extend(bench.swap_phase(half_prime, Io::Xdp));
    eprintln!("[{:.0} s] memory", at());
    let memory = bench.memory_phase();
    let r = Report {
        options,
        samples,
        latency,
        swaps,
        capacity,
        stress,
        memory,
        load_before,
        load_after: measure::loadavg(),
        duration: started.elapsed(),
    };
    if let Err(e) = report::write(&r, &options.out, &options.samples) {
        eprintln!("gateway_bench: cannot write the report: {e}");
        return 1;
    }
    eprintln!(
        "wrote {} and {}",
        options.out.display(),
        options.samples.display()
    );
    0
}

/// `gateway_bench latency`: the latency phase alone — the kernel and (c′) (or (c) with
/// `GATEWAY_BENCH_IO=packet`), cidr-filter, at `rate`, `rounds` rounds alternating — and
/// the (c′) paced run's CPU at that rate, for side-by-side runs of two builds.
pub fn latency(rate: f64, rounds: usize) -> i32 {
    let Some(bench) = Bench::standalone(false) else {
        return 2;
    };
    for l in bench.latency_phase(rate, Io::from_env(), &[Chain::Cidr], rounds.max(1)) {
        eprintln!("{}", report::latency_line(&l));
    }
    0
}

/// With this variable set to a directory, the latency phase saves every frame's send time
/// and latency there, one file per run (`N-kernel.tsv`, `N-tungate.tsv`), to line them up
/// with a scheduler trace (`deploy/bench/sched-trace.py`).
pub const ARRIVALS_ENV: &str = "GATEWAY_BENCH_ARRIVALS";

/// Writes `r`'s arrivals to `file`: a header with CLOCK_REALTIME − CLOCK_MONOTONIC (ns, to
/// turn the send times into `perf`'s `-k mono` clock), then `sent_ns latency_ns` per frame.
fn save_arrivals(file: &std::path::Path, r: &Received) {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: ts is a valid timespec to write; the clock ids are the kernel's own.
        unsafe { libc::clock_gettime(clock, &raw mut ts) };
        ts.tv_sec * 1_000_000_000 + ts.tv_nsec
    };
    let offset = now(libc::CLOCK_REALTIME) - now(libc::CLOCK_MONOTONIC);
    let mut text = format!("# realtime_minus_monotonic_ns {offset}\n# sent_ns latency_ns\n");
    for a in &r.arrivals {
        text.push_str(&format!("{} {}\n", a.sent_ns, a.latency_ns));
    }
    if let Err(e) = std::fs::write(file, text) {
        eprintln!("gateway_bench: cannot write {}: {e}", file.display());
    }
}

/// With this variable set to a directory, the memory phase saves each gateway's
/// `/proc/PID/smaps` there (`smaps-VIPS-PLUGINS.txt`), to see which mappings hold it.
pub const SMAPS_ENV: &str = "GATEWAY_BENCH_SMAPS";

/// `gateway_bench memory`: the memory phase alone, `repeats` times, printing each
/// configuration's resident and peak memory per repeat and their medians.
pub fn memory(repeats: usize) -> i32 {
    let Some(bench) = Bench::standalone(false) else {
        return 2;
    };
    let runs: Vec<Vec<Memory>> = (0..repeats.max(1)).map(|_| bench.memory_phase()).collect();
    for (i, first) in runs[0].iter().enumerate() {
        let field = |f: fn(&Memory) -> u64| {
            let mut v: Vec<u64> = runs.iter().map(|r| f(&r[i])).collect();
            v.sort_unstable();
            let all: Vec<String> = v
                .iter()
                .map(|k| format!("{:.1}", *k as f64 / 1024.0))
                .collect();
            format!(
                "median {:.1} MiB ({})",
                v[v.len() / 2] as f64 / 1024.0,
                all.join(" ")
            )
        };
        println!(
            "{} VIPs × {} plugins: RSS {}, peak {}, PSS {}",
            first.vips,
            first.plugins,
            field(|m| m.rss_kib),
            field(|m| m.hwm_kib),
            field(|m| m.pss_kib)
        );
    }
    0
}

/// `gateway_bench soak`: the topology and one variant under full load for `seconds`,
/// printing the delivered rate every second (for profiling with `perf record -C 1`).
/// The loss-free search alone, side by side at `size`, `repeats` rounds: (a) the kernel,
/// then (c′) with the ingress veth's receive NAPI in the sending core's softirq (the
/// default) and threaded on the gateway core (`GATEWAY_BENCH_NAPI=threaded`); prints each
/// result. Results: deploy/bench/results/xdp-cpu-latency.md.
pub fn napi_capacity(size: Size, repeats: usize) -> i32 {
    let Some(bench) = Bench::standalone(true) else {
        return 2;
    };
    let ipip = build_frames(Encap::Ipip, size.payload, FLOWS, &[VIP]);
    let plain = build_frames(Encap::Plain, size.payload, FLOWS, &[VIP]);
    let (step, window) = (1.15, Duration::from_secs(1));
    // Half of these is where each search starts (the floods of BENCHMARKS.md, rounded down).
    let (kernel_flood, xdp_flood) = (1_000_000.0, 600_000.0);
    for repeat in 1..=repeats {
        let kernel = Variant::Kernel { cores: 1 };
        bench.steer(&kernel.cpus());
        let c = bench.search(&plain, kernel, None, kernel_flood, step, window);
        eprintln!(
            "repeat {repeat} {}: {}",
            report::variant_name(kernel),
            capacity_line(&c)
        );
        bench.steer(&[GATEWAY_CPU]);
        for napi in ["softirq", "threaded"] {
            let mut gw = bench.start_gateway_env(
                Io::Xdp,
                Tunnel::Ipip,
                1,
                1,
                &[(NAPI_ENV, if napi == "threaded" { "threaded" } else { "" })],
            );
            gw.command("chain cidr");
            let v = tungate(1, Chain::Cidr, Io::Xdp);
            let c = bench.search(&ipip, v, Some(&mut gw), xdp_flood, step, window);
            eprintln!(
                "repeat {repeat} {}, NAPI {napi}: {}",
                report::variant_name(v),
                capacity_line(&c)
            );
            gw.quit();
        }
    }
    0
}

fn capacity_line(c: &Capacity) -> String {
    format!(
        "{} {:.0} pps loss-free, gateway core busy {:.0} ns/pkt, gateway CPU {} ns/pkt, + generator irq {} ns/pkt",
        if c.generator_limited { "≥" } else { "=" },
        c.lossless_pps,
        c.busy_ns,
        c.attributed_ns.map_or("–".into(), |v| format!("{v:.0}")),
        c.combined_ns.map_or("–".into(), |v| format!("{v:.0}")),
    )
}

pub fn soak(seconds: u64, variant: Variant, size: Size, rate: Option<f64>) -> i32 {
    let Some(bench) = Bench::standalone(true) else {
        return 2;
    };
    bench.steer(&variant.cpus());
    let (encap, mut gw) = match variant {
        Variant::Kernel { .. } => (Encap::Plain, None),
        Variant::Kernel6 { .. } => (Encap::Plain6, None),
        Variant::Tungate {
            workers,
            chain,
            timed,
            io,
            tunnel,
        } => {
            let mut g = bench.start_gateway_with(io, tunnel, workers, 1);
            g.command(&format!(
                "chain {}{}",
                chain.name(),
                if timed { " timed" } else { "" }
            ));
            (encap_of(tunnel), Some(g))
        }
    };
    // TUNGATE_BENCH_CAPTURE=passed|drops: a capture runs meanwhile (its cost in
    // deploy/bench/capture.md).
    let capture = std::env::var("TUNGATE_BENCH_CAPTURE").ok();
    if let (Some(what), Some(g)) = (&capture, gw.as_mut()) {
        eprintln!("capture {what}: {}", g.command(&format!("capture {what}")));
    }
    let frames = build_frames(encap, size.payload, FLOWS, &[VIP]);
    for _ in 0..seconds {
        let load = match rate {
            Some(r) => Load::Rate(&frames, r),
            None => Load::Flood(&frames),
        };
        let mut s = bench.measure(
            load,
            variant,
            gw.as_mut(),
            Duration::from_millis(500),
            false,
        );
        s.size = size;
        eprintln!("{}", report::sample_line(&s));
    }
    if let Some(mut g) = gw {
        if capture.is_some() {
            eprintln!("capture: {}", g.command("capture-stop"));
        }
        eprintln!("gateway counters: {}", g.command("counters"));
        g.quit();
    }
    0
}
