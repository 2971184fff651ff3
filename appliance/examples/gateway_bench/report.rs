//! The bench's report: BENCHMARKS.md (machine, command, where each target stands, medians,
//! latency, hot swap, memory, method) and every throughput sample as CSV.
//!
//! Ratios against the kernel are taken within each repeat (the kernel sample of the same
//! repeat, size and core count) and their median reported, so slow drift of the machine's
//! load cancels out.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::Options;
use crate::gateway::{Chain, Io, Tunnel};
use crate::measure::median;
use crate::phases::{
    Capacity, Latency, Memory, SIZES, Sample, Size, Stress, SwapRun, Variant, tungate,
};

/// Everything a run found.
pub struct Report<'a> {
    /// How it was run.
    pub options: &'a Options,
    /// Throughput samples.
    pub samples: Vec<Sample>,
    /// Latency per variant.
    pub latency: Vec<Latency>,
    /// Control run, then the run with hot swaps.
    pub swaps: Vec<SwapRun>,
    /// Highest loss-free rates.
    pub capacity: Vec<Capacity>,
    /// (c′) under overload and a hostile flood; the TPACKET half-load burst test.
    pub stress: Stress,
    /// Resident memory per configuration.
    pub memory: Vec<Memory>,
    /// Load average before the run.
    pub load_before: String,
    /// Load average after it.
    pub load_after: String,
    /// How long it took.
    pub duration: Duration,
}

const RSS_TARGET_KIB: u64 = 64 * 1024;

/// The variant's name in tables.
pub fn variant_name(v: Variant) -> String {
    match v {
        Variant::Kernel { cores: 1 } => "(a) kernel forwarding, 1 core".into(),
        Variant::Kernel { cores } => {
            format!("(a) kernel forwarding, {cores} cores (one shared with the generator)")
        }
        Variant::Kernel6 { cores: 1 } => "(a6) kernel IPv6 forwarding, 1 core".into(),
        Variant::Kernel6 { cores } => {
            format!("(a6) kernel IPv6 forwarding, {cores} cores (one shared with the generator)")
        }
        Variant::Tungate {
            workers,
            chain,
            timed,
            io,
            tunnel,
        } => {
            let what = match (chain, io) {
                (Chain::None, Io::Packet) => "(b) tungate, no plugin",
                (Chain::Cidr, Io::Packet) => "(c) tungate, cidr-filter",
                (Chain::Four, Io::Packet) => "(d) tungate, 4 plugins",
                (Chain::CidrHalves, Io::Packet) => "tungate, cidr-filter (halves)",
                (Chain::None, Io::Xdp) => "(b′) tungate on AF_XDP, no plugin",
                (Chain::Cidr, Io::Xdp) => "(c′) tungate on AF_XDP, cidr-filter",
                (Chain::Four, Io::Xdp) => "(d′) tungate on AF_XDP, 4 plugins",
                (Chain::CidrHalves, Io::Xdp) => "tungate on AF_XDP, cidr-filter (halves)",
            };
            let workers = if workers == 1 {
                "1 worker".to_owned()
            } else {
                format!("{workers} workers (one core shared with the generator)")
            };
            format!(
                "{what}, {workers}{}{}",
                match tunnel {
                    Tunnel::Ipip => "",
                    Tunnel::Gue => ", GUE",
                    Tunnel::Ip6ip6 => ", ip6ip6 (IPv6 VIP and client)",
                },
                if timed { ", chain timed" } else { "" }
            )
        }
    }
}

/// One progress line for a sample.
pub fn sample_line(s: &Sample) -> String {
    format!(
        "{} {}: offered {:.0} pps, delivered {:.0} pps, busy {:.0} ns/pkt, irq {:.0} ns/pkt{}{}{}{}{}{}{}",
        s.size.label,
        variant_name(s.variant),
        s.offered_pps,
        s.delivered_pps,
        s.busy_ns,
        s.irq_ns,
        s.process_ns
            .map(|p| format!(", process {p:.0} ns/pkt"))
            .unwrap_or_default(),
        s.attributed_ns
            .zip(s.others_share)
            .map(|(p, o)| format!(
                ", gateway CPU {p:.0} ns/pkt (others {:.0}% of the core)",
                o * 100.0
            ))
            .unwrap_or_default(),
        s.combined_ns
            .map(|c| format!(", with the generator core's irq {c:.0} ns/pkt"))
            .unwrap_or_default(),
        s.hostile_pps
            .map(|h| format!(
                ", hostile {h:.0} pps ({} ns/hostile frame)",
                fmt_opt(s.combined_ns_per_hostile.unwrap_or(f64::NAN), 0)
            ))
            .unwrap_or_default(),
        s.filter_ns
            .map(|p| format!(", chain {p:.1} ns/pkt"))
            .unwrap_or_default(),
        s.rx_overflow_pps
            .zip(s.gateway_rx_pps)
            .map(|(p, r)| format!(", tungate rx {r:.0}/s, rx_overflow {p:.0}/s"))
            .unwrap_or_default(),
        lost_where(s)
            .map(|w| format!(", also dropped: {w}"))
            .unwrap_or_default(),
    )
}

/// The path's drops per second outside tungate's counters, if any.
fn lost_where(s: &Sample) -> Option<String> {
    let names = [
        "generator's veth (r0 tx)",
        "gateway ingress (g0 rx)",
        "gateway egress (g1 tx)",
        "backlog (softnet)",
    ];
    let list: Vec<String> = names
        .iter()
        .zip(s.path_drops)
        .filter(|(_, d)| *d >= 1.0)
        .map(|(n, d)| format!("{n} {d:.0}/s"))
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

fn of(samples: &[Sample], size: Size, v: Variant) -> impl Iterator<Item = &Sample> {
    samples
        .iter()
        .filter(move |s| s.size == size && s.variant == v)
}

/// Median delivered rate of one variant at one size.
pub fn median_delivered(samples: &[Sample], size: Size, v: Variant) -> f64 {
    let d: Vec<f64> = of(samples, size, v).map(|s| s.delivered_pps).collect();
    median(&d)
}

/// Median over repeats of `f(sample of v, sample of base)` taken within each repeat.
fn paired(
    samples: &[Sample],
    size: Size,
    v: Variant,
    base: Variant,
    f: impl Fn(&Sample, &Sample) -> Option<f64>,
) -> f64 {
    let values: Vec<f64> = of(samples, size, v)
        .filter_map(|s| {
            let b = of(samples, size, base).find(|b| b.repeat == s.repeat)?;
            f(s, b)
        })
        .collect();
    median(&values)
}

fn kernel_for(v: Variant) -> Variant {
    match v {
        Variant::Tungate {
            workers,
            tunnel: Tunnel::Ip6ip6,
            ..
        } => Variant::Kernel6 { cores: workers },
        Variant::Tungate { workers, .. } => Variant::Kernel { cores: workers },
        k => k,
    }
}

fn command_output(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> Vec<(&'static str, String)> {
    let lscpu = command_output("lscpu", &[]);
    let field = |name: &str| {
        lscpu
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    vec![
        ("CPU", field("Model name")),
        ("cores", field("CPU(s)")),
        ("hypervisor", field("Hypervisor vendor")),
        ("kernel", command_output("uname", &["-r"])),
        (
            "tungate commit",
            command_output("git", &["rev-parse", "--short", "HEAD"]),
        ),
    ]
}

fn fmt_opt(v: f64, digits: usize) -> String {
    if v.is_nan() {
        "–".into()
    } else {
        format!("{v:.digits$}")
    }
}

fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**not met**" }
}

/// The status of "ours ≥ target × the kernel's" where either rate may be a lower bound
/// (the generator's limit, nothing lost): decided only where the bounds allow it.
fn bounded(ratio: f64, target: f64, kernel_lower: bool, ours_lower: bool) -> &'static str {
    match (ratio >= target, kernel_lower, ours_lower) {
        // A higher kernel rate could only lower the ratio; a higher rate of ours only raise it.
        (false, _, false) | (true, false, _) => met(ratio >= target),
        _ => "**not shown**: the generator's limit bounds the ratio from the wrong side",
    }
}

/// Writes the report and the samples.
pub fn write(r: &Report<'_>, out: &Path, samples_csv: &Path) -> std::io::Result<()> {
    let mut md = String::new();
    let quick = if r.options.quick {
        " (quick mode: one short repeat, indicative only)"
    } else {
        ""
    };
    let _ = writeln!(md, "# tungate forwarding benchmark{quick}\n");
    let _ = writeln!(
        md,
        "Written by `deploy/bench/run.sh` (the bench is `appliance/examples/gateway_bench/`); \
         do not edit by hand. How it measures and what was learnt while making the data path \
         fast: [deploy/bench/README.md](deploy/bench/README.md). Every sample: \
         [{}]({}). What a running capture of dropped packets costs: \
         [deploy/bench/capture.md](deploy/bench/capture.md). A fleet's route withdrawal and \
         failover (BIRD, ECMP): [deploy/bench/results/fleet.md](deploy/bench/results/fleet.md).\n",
        samples_csv
            .file_name()
            .unwrap_or_default()
            .to_string_lossy(),
        samples_csv
            .strip_prefix(tungate_test_support::plugins::workspace())
            .unwrap_or(samples_csv)
            .display()
    );
    let _ = writeln!(md, "## Run\n");
    let _ = writeln!(
        md,
        "- command: `deploy/bench/run.sh{}` (as root), i.e. `gateway_bench run --repeats {} \
         --seconds {}`",
        if r.options.quick { " --quick" } else { "" },
        r.options.repeats,
        r.options.window.as_secs_f64()
    );
    for (k, v) in machine() {
        let _ = writeln!(md, "- {k}: {v}");
    }
    let _ = writeln!(
        md,
        "- load average (1, 5, 15 min) before: {}; after: {}; each sample's is in the CSV. \
         Other engineers were compiling on the same 2 cores: numbers move with that, ratios \
         within one repeat much less.",
        r.load_before, r.load_after
    );
    let _ = writeln!(md, "- duration: {:.0} s", r.duration.as_secs_f64());
    let _ = writeln!(
        md,
        "- cores: the load generator (and the bench's bookkeeping and the client's receiver) \
         on core 0; the gateway on core 1 — tungate's process pinned there with `g0`'s receive \
         processing steered there by RPS, or, for (a), the kernel's forwarding steered there \
         by RPS. The machine has 2 cores, so the 2-worker variants (and the kernel on 2 \
         cores) share core 0 with the generator: labelled so, and not a fair scaling figure.\n\
         - priority: the bench and the gateway process run at nice {} in a session of their \
         own whose autogroup has the same nice value (with `kernel.sched_autogroup_enabled=1` \
         a task's nice only counts within its session; the kernel's forwarding runs in softirq \
         context, ahead of any process, anyway).\n",
        crate::phases::NICE
    );

    targets(&mut md, r);
    throughput(&mut md, r);
    capacity(&mut md, r);
    stress(&mut md, r);
    limits(&mut md, r);
    stage_timing(&mut md, r);
    latency(&mut md, r);
    swaps(&mut md, r);
    memory(&mut md, r);
    method(&mut md);
    std::fs::write(out, md)?;

    let mut csv = String::from(
        "repeat,size,variant,offered_pps,delivered_pps,gateway_cpu_ns_per_pkt,with_generator_irq_ns_per_pkt,others_share_of_core,busy_ns_per_pkt,irq_ns_per_pkt,process_ns_per_pkt,chain_ns_per_pkt,rx_overflow_per_s,loadavg\n",
    );
    for s in &r.samples {
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
        let _ = writeln!(
            csv,
            "{},{},\"{}\",{:.0},{:.0},{},{},{},{:.1},{:.1},{},{},{},{}",
            s.repeat,
            s.size.label,
            variant_name(s.variant),
            s.offered_pps,
            s.delivered_pps,
            opt(s.attributed_ns),
            opt(s.combined_ns),
            s.others_share
                .map(|o| format!("{o:.3}"))
                .unwrap_or_default(),
            s.busy_ns,
            s.irq_ns,
            opt(s.process_ns),
            opt(s.filter_ns),
            opt(s.rx_overflow_pps),
            s.load
        );
    }
    if let Some(dir) = samples_csv.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(samples_csv, csv)
}

/// The timed (chain stage) variant of `chain` on the TPACKET path, 1 worker.
fn timed(chain: Chain) -> Variant {
    Variant::Tungate {
        workers: 1,
        chain,
        timed: true,
        io: Io::Packet,
        tunnel: Tunnel::Ipip,
    }
}

fn targets(md: &mut String, r: &Report<'_>) {
    let s = &r.samples;
    let _ = writeln!(md, "## Where the targets stand\n");
    let _ = writeln!(
        md,
        "| target | measured (medians over repeats) | |\n|---|---|---|"
    );
    let k1 = Variant::Kernel { cores: 1 };
    for size in SIZES {
        let c = tungate(1, Chain::Cidr, Io::Packet);
        let rate = paired(s, size, c, k1, |a, b| {
            Some(a.delivered_pps / b.delivered_pps)
        });
        if rate.is_nan() {
            continue;
        }
        let _ = writeln!(
            md,
            "| (c) ≥ 0.6× the kernel's rate, 1 worker vs 1 core, {} | {:.2}× ({:.0} vs {:.0} pps) | {} |",
            size.label,
            rate,
            median_delivered(s, size, c),
            median_delivered(s, size, k1),
            met(rate >= 0.6)
        );
        let cpu = paired(s, size, c, k1, |a, b| {
            Some(b.attributed_ns? / a.attributed_ns?)
        });
        let _ = writeln!(
            md,
            "| aim: (c) ≥ 1.0× the kernel's packets per CPU-second, {} | {}× (gateway CPU {} vs {} ns/packet) | {} |",
            size.label,
            fmt_opt(cpu, 2),
            fmt_opt(
                median(
                    &of(s, size, c)
                        .filter_map(|x| x.attributed_ns)
                        .collect::<Vec<_>>()
                ),
                0
            ),
            fmt_opt(
                median(
                    &of(s, size, k1)
                        .filter_map(|x| x.attributed_ns)
                        .collect::<Vec<_>>()
                ),
                0
            ),
            met(cpu >= 1.0)
        );
    }
    let c_packet = tungate(1, Chain::Cidr, Io::Packet);
    for cap in r.capacity.iter().filter(|c| c.variant == c_packet) {
        let k = kernel_lossfree(r, cap.size);
        let _ = writeln!(
            md,
            "| (c) loss-free capacity vs the kernel, {} | {:.0} pps = {}× the kernel's {:.0}{}; CPU {} vs {} ns/packet = {}× the kernel's packets per CPU-second | {} |",
            cap.size.label,
            cap.lossless_pps,
            fmt_opt(cap.lossless_pps / k.pps, 2),
            k.pps,
            if k.lower_bound {
                " (the generator's limit: its capacity is higher still)"
            } else {
                ""
            },
            fmt_opt(cap.combined_ns.unwrap_or(f64::NAN), 0),
            fmt_opt(k.combined_ns, 0),
            fmt_opt(k.combined_ns / cap.combined_ns.unwrap_or(f64::NAN), 2),
            bounded(
                cap.lossless_pps / k.pps,
                0.6,
                k.lower_bound,
                cap.generator_limited
            )
        );
    }
    xdp_targets(md, r);
    let b = tungate(1, Chain::None, Io::Packet);
    let c = tungate(1, Chain::Cidr, Io::Packet);
    let overhead = paired(s, SIZES[0], c, b, |a, b| {
        Some(a.attributed_ns? - b.attributed_ns?)
    });
    let timed: Vec<f64> = of(s, SIZES[0], timed(Chain::Cidr))
        .filter_map(|x| x.filter_ns)
        .collect();
    let timed = median(&timed);
    let _ = writeln!(
        md,
        "| plugin overhead (c) − (b) ≤ 10 ns/packet, 64 B | chain stage {} ns/packet (timed inside the worker); gateway CPU (c) − (b): {} ns/packet | {} |",
        fmt_opt(timed, 1),
        fmt_opt(overhead, 1),
        met(timed <= 10.0)
    );
    for run in r.swaps.iter().filter(|w| w.swaps > 0) {
        let _ = writeln!(
            md,
            "| 0 lost / duplicated across hot swaps every 100 ms, {} | {} swaps in {:.1} s (one asked for every 100 ms, each after the previous build finished): {} lost, {} duplicated of {} | {} |",
            io_name(run.io),
            run.swaps,
            run.sent as f64 / run.rate,
            run.lost,
            run.duplicated,
            run.sent,
            met(run.lost == 0 && run.duplicated == 0 && run.swap_errors == 0)
        );
    }
    if let Some(m) = r.memory.iter().find(|m| m.vips == 100 && m.plugins == 4) {
        let _ = writeln!(
            md,
            "| RSS ≤ 64 MiB, 100 VIPs × 4 plugins | {:.1} MiB (peak {:.1} MiB) | {} |",
            m.rss_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0,
            met(m.hwm_kib <= RSS_TARGET_KIB)
        );
    }
    let _ = writeln!(md);
}

/// The I/O path's name in the report.
fn io_name(io: Io) -> &'static str {
    match io {
        Io::Packet => "TPACKET",
        Io::Xdp => "AF_XDP",
    }
}

/// The kernel's loss-free rate at one size: its capacity search if it ran, else its
/// flood rate (a lower bound when it lost nothing there).
struct KernelReference {
    pps: f64,
    lower_bound: bool,
    combined_ns: f64,
    gateway_ns: f64,
}

fn kernel_lossfree(r: &Report<'_>, size: Size) -> KernelReference {
    let k1 = Variant::Kernel { cores: 1 };
    if let Some(c) = r
        .capacity
        .iter()
        .find(|c| c.size == size && c.variant == k1 && c.lossless_pps > 0.0)
    {
        return KernelReference {
            pps: c.lossless_pps,
            lower_bound: c.generator_limited,
            combined_ns: c.combined_ns.unwrap_or(f64::NAN),
            gateway_ns: c.attributed_ns.unwrap_or(f64::NAN),
        };
    }
    let flood: Vec<&Sample> = of(&r.samples, size, k1).collect();
    let m = |f: &dyn Fn(&Sample) -> Option<f64>| {
        median(&flood.iter().filter_map(|x| f(x)).collect::<Vec<_>>())
    };
    KernelReference {
        pps: m(&|x| Some(x.delivered_pps)),
        lower_bound: m(&|x| Some(x.delivered_pps / x.offered_pps)) >= 0.98,
        combined_ns: m(&|x| x.combined_ns),
        gateway_ns: m(&|x| x.attributed_ns),
    }
}

/// The AF_XDP targets of issue 14 and the TPACKET half-load test.
fn xdp_targets(md: &mut String, r: &Report<'_>) {
    let c_prime = tungate(1, Chain::Cidr, Io::Xdp);
    for (size, target) in [(SIZES[0], 1.0), (SIZES[1], 0.9)] {
        let Some(cap) = r
            .capacity
            .iter()
            .find(|c| c.size == size && c.variant == c_prime)
        else {
            continue;
        };
        let k = kernel_lossfree(r, size);
        let ratio = cap.lossless_pps / k.pps;
        let bound = match (k.lower_bound, cap.generator_limited) {
            (true, true) => " (both at the generator's limit: lower bounds)",
            (true, false) => {
                " (the kernel's figure is the generator's limit, a lower bound: the ratio is an upper bound)"
            }
            (false, true) => " ((c′) at the generator's limit: a lower bound)",
            (false, false) => "",
        };
        let _ = writeln!(
            md,
            "| (c′) loss-free rate ≥ {target:.1}× the kernel's, {} (< 2% lost, bursts of 64) | {:.0} vs {:.0} pps = {}×{bound} | {} |",
            size.label,
            cap.lossless_pps,
            k.pps,
            fmt_opt(ratio, 2),
            bounded(ratio, target, k.lower_bound, cap.generator_limited)
        );
        let ours = cap.combined_ns.unwrap_or(f64::NAN);
        let _ = writeln!(
            md,
            "| (c′) CPU per delivered packet ≤ the kernel's at the loss-free rate, {} (gateway core + the generator core's irq/softirq) | {} vs {} ns/packet (gateway core alone: {} vs {}) | {} |",
            size.label,
            fmt_opt(ours, 0),
            fmt_opt(k.combined_ns, 0),
            fmt_opt(cap.attributed_ns.unwrap_or(f64::NAN), 0),
            fmt_opt(k.gateway_ns, 0),
            met(ours <= k.combined_ns)
        );
    }
    let cap64 = r
        .capacity
        .iter()
        .find(|c| c.size == SIZES[0] && c.variant == c_prime)
        .map_or(f64::NAN, |c| c.lossless_pps);
    if let Some(o) = &r.stress.overload {
        let short = o.offered_pps < 1.9 * cap64;
        let _ = writeln!(
            md,
            "| (c′) under a flood at 2× its loss-free rate: delivered ≥ 0.9× that rate, 64 B | offered {:.0} pps{}, delivered {:.0} = {}× its loss-free {:.0} | {} |",
            o.offered_pps,
            if short {
                format!(
                    " (the generator's maximum: {:.2}× the loss-free rate, short of 2×)",
                    o.offered_pps / cap64
                )
            } else {
                String::new()
            },
            o.delivered_pps,
            fmt_opt(o.delivered_pps / cap64, 2),
            cap64,
            if short {
                "**not shown**: the generator cannot offer 2×"
            } else {
                met(o.delivered_pps >= 0.9 * cap64)
            }
        );
    }
    if let Some(h) = &r.stress.hostile_xdp {
        let share = h.valid_share.unwrap_or(f64::NAN);
        let per = |x: &Option<Sample>| {
            x.as_ref()
                .and_then(|x| x.combined_ns_per_hostile)
                .unwrap_or(f64::NAN)
        };
        let _ = writeln!(
            md,
            "| (c′) ≥ 99% of valid traffic at half its loss-free rate delivered under a hostile flood (IPIP from a non-peer) at the generator's maximum, 64 B | {:.1}% of {:.0} pps beside {:.0} pps hostile (TPACKET (c), same load: {}%); dropping the flood alone costs {} ns per hostile frame in XDP vs {} ns on the TPACKET path with the nftables fence (tap + fence + tungate's peer check; gateway core + the generator core's irq) | {} |",
            share * 100.0,
            h.offered_pps,
            h.hostile_pps.unwrap_or(f64::NAN),
            r.stress
                .hostile_packet
                .as_ref()
                .and_then(|p| p.valid_share)
                .map_or("–".into(), |p| format!("{:.1}", p * 100.0)),
            fmt_opt(per(&r.stress.flood_only_xdp), 0),
            fmt_opt(per(&r.stress.flood_only_packet), 0),
            met(share >= 0.99)
        );
    }
    let kernel_at = |rate: f64| {
        r.latency
            .iter()
            .find(|l| matches!(l.variant, Variant::Kernel { .. }) && l.rate == rate)
    };
    if let Some(l) = r.latency.iter().find(|l| l.variant == c_prime)
        && let Some(k) = kernel_at(l.rate)
    {
        let added = l.p99_us - k.p99_us;
        let _ = writeln!(
            md,
            "| (c′) added latency p99 ≤ 50 µs at half its loss-free rate, 64 B | {:.1} µs ({:.1} vs the kernel's {:.1} µs at {:.0} pps; {} of {} received) | {} |",
            added,
            l.p99_us,
            k.p99_us,
            l.rate,
            l.received,
            l.sent,
            met(added <= 50.0 && l.received == l.sent)
        );
    }
    if let Some(h) = &r.stress.half_load_packet {
        let lost = 1.0 - h.delivered_pps / h.offered_pps;
        let _ = writeln!(
            md,
            "| (c) TPACKET loss-free at half load, bursts of 64, 64 B | {:.0} pps (half of (c)'s highest measured rate), the gateway core {:.0}% busy: {:.2}% lost | {} |",
            h.offered_pps,
            h.core_busy_share * 100.0,
            lost.max(0.0) * 100.0,
            met(lost < 0.02)
        );
    }
}

fn throughput(md: &mut String, r: &Report<'_>) {
    let s = &r.samples;
    let _ = writeln!(
        md,
        "## Throughput and CPU per packet (medians of {} repeats)\n",
        r.options.repeats
    );
    let _ = writeln!(
        md,
        "\"× kernel\" is the median of the per-repeat ratios to (a) on the same cores. \
         \"gateway CPU\" is the gateway core's time per delivered packet spent in interrupt \
         context (softirq or hard irq, on any task's stack, ksoftirqd included) or in \
         tungate's own threads, from `perf` samples of that core — the measure that stays \
         right while other tasks share the core (\"others\" is their share); 1-core variants \
         only. \"core busy\" is all non-idle time of the core per packet (others included; \
         left out for 2 cores, where it would include the generator); \"irq\" the \
         tick-sampled interrupt time from `/proc/stat` (the CSV also has tungate's threads' \
         scheduler run time). \"+ generator irq\" adds the interrupt work on the generator's \
         core per packet (on veth the receive side's work — for AF_XDP the XDP program and the \
         copy into the socket — runs in the sender's softirq; the generator's own sending stays \
         out): the fair measure between the kernel, TPACKET and AF_XDP. \"dropped before tungate\" counts frames the kernel received \
         but found tungate's receive ring full: under overload the receive work for them is \
         done (in softirq, ahead of tungate's thread) and wasted, while the kernel's own \
         forwarding sheds excess load before it costs the gateway core anything.\n"
    );
    let _ = writeln!(
        md,
        "| size | variant | offered pps | delivered pps | × kernel | gateway CPU ns/pkt | + generator irq ns/pkt | others | core busy ns/pkt | irq ns/pkt | dropped before tungate /s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    let mut variants: Vec<Variant> = Vec::new();
    for x in s {
        if !matches!(x.variant, Variant::Tungate { timed: true, .. })
            && !variants.contains(&x.variant)
        {
            variants.push(x.variant);
        }
    }
    let order = |v: &Variant| match *v {
        Variant::Kernel { cores } => (cores, 0),
        Variant::Kernel6 { cores } => (cores, 17),
        Variant::Tungate {
            workers,
            chain,
            io,
            tunnel,
            ..
        } => (
            workers,
            match chain {
                Chain::None => 1,
                Chain::Cidr => 2,
                Chain::Four => 3,
                Chain::CidrHalves => 4,
            } + if io == Io::Xdp { 4 } else { 0 }
                + match tunnel {
                    Tunnel::Ipip => 0,
                    Tunnel::Gue => 8,
                    Tunnel::Ip6ip6 => 18,
                },
        ),
    };
    variants.sort_by_key(order);
    for size in SIZES {
        for &v in &variants {
            let xs: Vec<&Sample> = of(s, size, v).collect();
            if xs.is_empty() {
                continue;
            }
            let m = |f: &dyn Fn(&Sample) -> Option<f64>| {
                median(&xs.iter().filter_map(|x| f(x)).collect::<Vec<_>>())
            };
            let ratio = paired(s, size, v, kernel_for(v), |a, b| {
                Some(a.delivered_pps / b.delivered_pps)
            });
            let two_core = v.cpus().len() > 1;
            let _ = writeln!(
                md,
                "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {} | {:.0} | {} |",
                size.label,
                variant_name(v),
                m(&|x| Some(x.offered_pps)),
                m(&|x| Some(x.delivered_pps)),
                ratio,
                fmt_opt(m(&|x| x.attributed_ns), 0),
                fmt_opt(m(&|x| x.combined_ns), 0),
                m(&|x| x.others_share)
                    .is_nan()
                    .then(String::new)
                    .unwrap_or_else(|| format!("{:.0}%", m(&|x| x.others_share) * 100.0)),
                if two_core {
                    "–".into()
                } else {
                    fmt_opt(m(&|x| Some(x.busy_ns)), 0)
                },
                m(&|x| Some(x.irq_ns)),
                fmt_opt(m(&|x| x.rx_overflow_pps), 0),
            );
        }
    }
    let _ = writeln!(md);
}

fn capacity(md: &mut String, r: &Report<'_>) {
    if r.capacity.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "## Highest loss-free rate (1 worker; the kernel on 1 core)\n"
    );
    let _ = writeln!(
        md,
        "Under a flood the TPACKET path delivers less than it can: the kernel does the receive \
         work (tap, ingress drop, free) for every frame in softirq, ahead of tungate's thread, \
         also for the frames that then find the receive ring full. Here the generator sends \
         bursts of 64 frames at a steady rate, from half of the variant's flood rate (at least \
         50 k pps) up by 15% per step (1 s each) until over 2% is lost, or the generator tops \
         out (then the figure is a lower bound, marked ≥); the last rate without loss is the \
         capacity. CPU there: \"gateway core\" as in the table above; \"+ generator core's \
         irq\" adds the interrupt work perf finds on the generator's core — on veth the \
         receive side's work, the XDP program and the copy into the AF_XDP socket included, \
         runs in the sender's softirq (RPS does not move it), so the gateway core alone \
         flatters AF_XDP; the generator's own sending (system time) stays out. The same \
         measure for every variant.\n"
    );
    let _ = writeln!(
        md,
        "| size | variant | loss-free pps (< 2% lost) | × the kernel's | gateway core ns/pkt | + generator core's irq ns/pkt | core busy ns/pkt |\n|---|---|---:|---:|---:|---:|---:|"
    );
    for c in &r.capacity {
        let kernel = kernel_lossfree(r, c.size);
        let _ = writeln!(
            md,
            "| {} | {} | {}{:.0} | {} | {} | {} | {} |",
            c.size.label,
            variant_name(c.variant),
            if c.generator_limited { "≥ " } else { "" },
            c.lossless_pps,
            if matches!(c.variant, Variant::Kernel { .. }) {
                "1.00".to_owned()
            } else {
                fmt_opt(c.lossless_pps / kernel.pps, 2)
            },
            fmt_opt(c.attributed_ns.unwrap_or(f64::NAN), 0),
            fmt_opt(c.combined_ns.unwrap_or(f64::NAN), 0),
            fmt_opt(c.busy_ns, 0),
        );
    }
    let _ = writeln!(md);
}

fn stress(md: &mut String, r: &Report<'_>) {
    let st = &r.stress;
    let rows = [
        ("(c′) at 2× its loss-free rate (bursts of 64)", &st.overload),
        (
            "(c′) valid at half its loss-free rate + hostile flood at the generator's maximum",
            &st.hostile_xdp,
        ),
        ("(c) TPACKET, the same load", &st.hostile_packet),
        ("(c′) the hostile flood alone", &st.flood_only_xdp),
        (
            "(c) TPACKET + the nftables fence, the hostile flood alone",
            &st.flood_only_packet,
        ),
        (
            "(c) TPACKET at half of its highest measured rate (bursts of 64)",
            &st.half_load_packet,
        ),
    ];
    if rows.iter().all(|(_, s)| s.is_none()) {
        return;
    }
    let _ = writeln!(md, "## Overload and a hostile flood (64 B, 1 worker)\n");
    let _ = writeln!(
        md,
        "The hostile flood is IPIP to the gateway address from {} (not a peer), sent by the \
         same generator in every batch of 64 after the valid frames due at their steady rate: \
         on AF_XDP the XDP program drops it (`unknown_peer`), on the TPACKET path the tap \
         copies it into tungate's ring, the nftables fence (`inet tungate_fence`) drops it in \
         prerouting and tungate counts it. \"valid offered / delivered\" are the valid frames \
         only; CPU per hostile frame is the gateway core plus the generator core's irq, over \
         the hostile frames sent.\n",
        crate::traffic::STRANGER
    );
    let _ = writeln!(
        md,
        "| run | valid offered pps | valid delivered pps | delivered | hostile pps | CPU ns per hostile frame | gateway core busy | rx_overflow /s | other drops /s |\n|---|---:|---:|---:|---:|---:|---:|---:|---|"
    );
    for (what, s) in rows {
        let Some(s) = s else { continue };
        let _ = writeln!(
            md,
            "| {what} | {:.0} | {:.0} | {} | {} | {} | {:.0}% | {} | {} |",
            s.offered_pps,
            s.delivered_pps,
            match s.valid_share {
                Some(share) if s.offered_pps > 0.0 => format!("{:.1}% (whole run)", share * 100.0),
                _ if s.offered_pps > 0.0 => {
                    format!("{:.1}%", s.delivered_pps / s.offered_pps * 100.0)
                }
                _ => "–".into(),
            },
            fmt_opt(s.hostile_pps.unwrap_or(f64::NAN), 0),
            fmt_opt(s.combined_ns_per_hostile.unwrap_or(f64::NAN), 0),
            s.core_busy_share * 100.0,
            fmt_opt(s.rx_overflow_pps.unwrap_or(f64::NAN), 0),
            lost_where(s).unwrap_or_else(|| "none".into()),
        );
    }
    let _ = writeln!(md);
}

/// The top symbols perf found on each core during the (c′) 64 B flood (the last repeat's
/// sample), then what busy-polling and a real NIC would change.
fn limits(md: &mut String, r: &Report<'_>) {
    let c_prime = tungate(1, Chain::Cidr, Io::Xdp);
    let profiled = r
        .samples
        .iter()
        .rev()
        .find(|s| s.variant == c_prime && s.size == SIZES[0] && !s.top.is_empty());
    let _ = writeln!(md, "## What limits the AF_XDP result\n");
    if let Some(p) = profiled {
        let _ = writeln!(
            md,
            "`perf record -C 0,1 -g` (cpu-clock) during a (c′) 64 B flood sample (repeat {}, \
             {:.0} pps delivered): the functions the samples landed in, per core, as a share \
             of that core's samples in interrupt work, tungate's threads and the generator's \
             (other tasks — compile jobs sharing the machine — left out). Core {} runs the generator and, on veth, the \
             receive side's softirq (the XDP program and the copy into the socket); core {} \
             runs tungate's worker, its transmit (AF_XDP copy mode builds an skb per frame) \
             and the client's receive.\n",
            p.repeat + 1,
            p.delivered_pps,
            crate::phases::GENERATOR_CPU,
            crate::phases::GATEWAY_CPU
        );
        for (cpu, top) in &p.top {
            let total: u64 = top.iter().map(|(_, n)| n).sum();
            let list: Vec<String> = top
                .iter()
                .take(10)
                .map(|(sym, n)| format!("`{sym}` {:.1}%", *n as f64 * 100.0 / total.max(1) as f64))
                .collect();
            let _ = writeln!(md, "- core {cpu}: {}", list.join(", "));
        }
        let _ = writeln!(md);
    } else {
        let _ = writeln!(md, "(No profile: `perf` was not available.)\n");
    }
    let cap = r
        .capacity
        .iter()
        .find(|c| c.size == SIZES[0] && c.variant == c_prime)
        .map_or(f64::NAN, |c| c.lossless_pps);
    let _ = writeln!(
        md,
        "**Wakeups, spinning and what busy-polling would add.** The worker waits through its \
         io_uring (`IORING_OP_POLL_ADD` on the AF_XDP fd) after spinning only while frames \
         have been arriving in short gaps (up to twice the last idle gap when that was under \
         50 µs, half the previous limit otherwise): a fixed 50 µs spin was paid in full \
         between every two bursts of 64 at the loss-free rates (≈ 0.8 µs per packet), and a \
         worker that never sleeps spends its scheduler share, so on a shared core it then \
         waits behind other tasks for milliseconds — the latency tail \
         ([deploy/bench/results/xdp-cpu-latency.md](deploy/bench/results/xdp-cpu-latency.md)). \
         It kicks transmission with `sendto(MSG_DONTWAIT)` only when the kernel flags the \
         transmit ring (`XDP_USE_NEED_WAKEUP`; in copy mode it always does, since only the \
         kick sends). Busy polling (`SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL`, \
         `SO_BUSY_POLL_BUDGET` and a `recvfrom` in the spin, measured with a prototype) adds \
         nothing on veth: the AF_XDP socket gets no NAPI id (`SO_INCOMING_NAPI_ID` reads 0), \
         so there is nothing for it to poll (the throwaway C forwarder's 0.77× → 0.87× at \
         1400 B is not reproducible that way on this kernel); on a NIC it would run the \
         queue's NAPI from the worker's thread. Moving the veth's receive NAPI onto the \
         gateway core instead (threaded NAPI, `GATEWAY_BENCH_NAPI=threaded`) gives one \
         worker's capacity with all of its receive work on its own core: ~626 k pps at 64 B \
         and ~562 k at 1400 B under flood, about 0.5× the kernel's, and 31% less CPU per \
         packet at 1400 B; tungate's own code is ~190 ns of a 64 B packet's cost, the rest is \
         the kernel's copy-mode AF_XDP work (same file, `deploy/bench/napi-placement.sh`).\n"
    );
    let _ = writeln!(
        md,
        "**What a real NIC with zero-copy would change (on paper).** veth has no AF_XDP \
         zero-copy (`XDP_ZEROCOPY` → `EOPNOTSUPP`): every received frame is copied into the \
         UMEM and every transmitted one into a freshly built skb, and the receive work runs on \
         the sending core. With a driver that has zero-copy (ice, i40e, mlx5), the NIC writes \
         into the UMEM and transmits from it: no copy and no skb per packet, and the XDP \
         program runs on the queue's interrupt core. Published figures: AF_XDP `xdpsock` l2fwd \
         6–7 M pps per core in zero-copy mode; Katran (XDP, forwarding in the kernel) 5.2 M \
         pps per core. (c′) here: {} pps at 64 B on one core in copy mode, {} of those \
         figures; on such a NIC the per-packet path left would be tungate's own checks, \
         decapsulation and plugin chain (tens to a few hundred ns per packet in the profile \
         above) — an estimate, not a measurement.\n",
        fmt_opt(cap, 0),
        if cap.is_nan() {
            "–".to_owned()
        } else {
            format!("{:.0}–{:.0}%", cap / 7e6 * 100.0, cap / 6e6 * 100.0)
        }
    );
}

fn stage_timing(md: &mut String, r: &Report<'_>) {
    let _ = writeln!(
        md,
        "## Time in the plugin chain (1 worker, under full load)\n"
    );
    let _ = writeln!(
        md,
        "The chain's `BatchFilter::filter` timed inside the worker (a clock read before and \
         after each VIP batch): descriptors, the Wasm call(s), verdict checks and statistics. \
         Per sample, the median over calls of at least 16 packets of the call's ns per packet \
         (interrupts that land during a call — the gateway's own network work — inflate some \
         calls; the median call is the chain's own cost); then the median over repeats.\n"
    );
    let _ = writeln!(
        md,
        "| size | chain | ns/packet | delivered pps |\n|---|---|---:|---:|"
    );
    for size in SIZES {
        for chain in [Chain::Cidr, Chain::Four] {
            let xs: Vec<&Sample> = of(&r.samples, size, timed(chain)).collect();
            if xs.is_empty() {
                continue;
            }
            let f: Vec<f64> = xs.iter().filter_map(|x| x.filter_ns).collect();
            let d: Vec<f64> = xs.iter().map(|x| x.delivered_pps).collect();
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.0} |",
                size.label,
                if chain == Chain::Cidr {
                    "cidr-filter"
                } else {
                    "cidr, port, rate-limit, accounting"
                },
                fmt_opt(median(&f), 1),
                median(&d)
            );
        }
    }
    let _ = writeln!(md);
}

/// One latency result as a log line (`gateway_bench latency`).
pub fn latency_line(l: &Latency) -> String {
    format!(
        "{} at {:.0} pps: {} of {} received, p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs",
        variant_name(l.variant),
        l.rate,
        l.received,
        l.sent,
        l.p50_us,
        l.p99_us,
        l.p999_us
    )
}

fn latency(md: &mut String, r: &Report<'_>) {
    if r.latency.is_empty() {
        return;
    }
    let _ = writeln!(md, "## One-way latency at half load (64 B, 1 worker)\n");
    let _ = writeln!(
        md,
        "TPACKET variants at half of (c)'s flood rate, (c′) at half of its loss-free rate, \
         each beside the kernel at the same rate; paced in bursts of at most 8. Latency is the client's kernel \
         receive time stamp (SO_TIMESTAMPNS on `c0`) minus the send time the generator wrote \
         into the payload just before `sendmmsg` — same host clock. It includes the \
         generator's send path and both veth hops; \"added\" is the difference to (a) at \
         the same rate.\n"
    );
    let _ = writeln!(
        md,
        "| variant | rate pps | sent | received | p50 µs | p99 µs | p99.9 µs | p50 added µs | p99 added µs |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for l in &r.latency {
        let kernel = r
            .latency
            .iter()
            .find(|k| matches!(k.variant, Variant::Kernel { .. }) && k.rate == l.rate);
        let (a50, a99) = kernel
            .map(|k| (l.p50_us - k.p50_us, l.p99_us - k.p99_us))
            .unwrap_or((f64::NAN, f64::NAN));
        let _ = writeln!(
            md,
            "| {} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
            variant_name(l.variant),
            l.rate,
            l.sent,
            l.received,
            l.p50_us,
            l.p99_us,
            l.p999_us,
            fmt_opt(a50, 1),
            fmt_opt(a99, 1)
        );
    }
    let _ = writeln!(md);
    let _ = writeln!(
        md,
        "What the (c′) tail is, traced with the scheduler's events (`deploy/bench/sched-trace.py`, [deploy/bench/results/xdp-cpu-latency.md](deploy/bench/results/xdp-cpu-latency.md)): the frames that arrive while the worker waits for its core. A normal (SCHED_OTHER) worker was preempted 600–700 times a second, ~95% of them by the gateway's own wasm epoch ticker (pinned to the worker's core with the rest of the process here), and, once woken by a burst, waited behind whatever else ran on core 1; the kernel's forwarding runs in softirq and waits for nothing. `gateway.worker_priority` (opt-in, SCHED_FIFO) took the preemptions to 0 and the worker's waiting for a CPU from 2–10% to 0.2–1.9% of the time; side by side (`gateway_bench latency 235000 1`, 8 runs each alternating, load 4–5) the (c′) p99 median went from 3271 µs to 2119 µs (the kernel's: 82 and 89 µs; in one FIFO run 76.6 vs 74.5 µs, 2 µs added) — still above the target in the others: on this VM (kernel in `preempt=none` mode, shared with other jobs) a task running inside the kernel keeps the core even from a real-time worker, and an idle vCPU is slow to wake. `gateway.worker_cpus` (opt-in: each worker pinned to its own core, tungate's other threads kept off it) removes the ticker's preemptions without a real-time class: side by side (`GATEWAY_BENCH_WORKER_CPUS=1`, 6 runs each alternating, load ~1) preemptions 602 → 21/s, (c′) p50 17.6 → 13.2 µs (the kernel's: 21 µs), added p99 127 → 65 µs in the median run (two of six below the kernel's; a second batch gave 105 µs with `worker_cpus` alone and 61 µs with `worker_priority` too: the spread between batches is wider than the difference); the p99.9 of 3.7–4.1 ms comes from stalls every ~1.07 s that the kernel's runs show too. The rows above pin the whole gateway process to core 1, with normal scheduling.\n"
    );
}

fn swaps(md: &mut String, r: &Report<'_>) {
    if r.swaps.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Hot swap under load (64 B, 1 worker)\n");
    let _ = writeln!(
        md,
        "Numbered frames at half load (TPACKET: half of (c)'s flood rate; AF_XDP: half of \
         (c′)'s loss-free rate); the gateway publishes a new plugin \
         generation every 100 ms (cycling: the 4-plugin chain, cidr-filter with another \
         configuration, cidr-filter) through `PluginHost::publish` from a control thread on \
         core 0 (beside the gateway's core, as a control plane would run), every generation passing all \
         traffic; the worker hands each replaced set back to be freed by the control side. The control run is the same without swaps.\n"
    );
    let _ = writeln!(
        md,
        "| path | run | swaps done | offered pps | sent | lost | duplicated | receiver socket drops | gateway drops |\n|---|---|---:|---:|---:|---:|---:|---:|---|"
    );
    for w in &r.swaps {
        let drops = if w.gateway_drops.is_empty() {
            "none".to_owned()
        } else {
            w.gateway_drops
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "| {} | {} | {}{} | {:.0} | {} | {} | {} | {} | {} |",
            io_name(w.io),
            if w.swaps == 0 { "control" } else { "hot swaps" },
            w.swaps,
            if w.swap_errors > 0 {
                format!(" ({} failed)", w.swap_errors)
            } else {
                String::new()
            },
            w.rate,
            w.sent,
            w.lost,
            w.duplicated,
            w.receiver_drops,
            drops
        );
    }
    let _ = writeln!(md);
}

fn memory(md: &mut String, r: &Report<'_>) {
    if r.memory.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Resident memory of the gateway process (1 worker)\n");
    let _ = writeln!(
        md,
        "VmRSS and VmHWM of the gateway process after 64 B traffic through every VIP (one flow \
         per VIP at least), and its PSS (`Pss` of smaps_rollup: shared pages divided among \
         their mappings; VmRSS counts each plugin instance's mapping of its module's memory \
         image in full). Where the memory of 100 VIPs × 4 plugins goes, mapping by mapping, \
         and `gateway_bench memory` to measure it alone: \
         [deploy/bench/results/memory.md](deploy/bench/results/memory.md).\n"
    );
    let _ = writeln!(
        md,
        "| VIPs | plugins per VIP | RSS MiB | peak MiB | PSS MiB |\n|---:|---:|---:|---:|---:|"
    );
    for m in &r.memory {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} | {:.1} |",
            m.vips,
            m.plugins,
            m.rss_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0,
            m.pss_kib as f64 / 1024.0
        );
    }
    let _ = writeln!(md);
}

fn method(md: &mut String) {
    let _ = writeln!(md, "## Method\n");
    let _ = writeln!(
        md,
        "- Topology: namespaces `rs` (r0) — `gw` (g0, g1) — `client` (c0) on veth, unique \
         names, removed on exit and on failure. `gw` forwards (`ip_forward=1`) and has a \
         permanent neighbour entry for the client with a MAC that is not the client's, so the \
         client's interface counts each frame and its IP layer discards it at once as meant \
         for another host (the cheapest sink, the same for every variant).\n\
         - Load: AF_PACKET + `PACKET_QDISC_BYPASS` + `sendmmsg` (64 frames per call) from `rs`, \
         pre-built frames over 64 flows (client ports), so fanout and RPS can spread them. For \
         (a) the generator sends the inner packets themselves to `g0`; for (b)–(d) the same \
         packets in IPIP from the RS to the gateway address.\n\
         - Delivered: the client interface's receive counter over the window. Offered: what \
         the generator's `sendmmsg` accepted over the window.\n\
         - Each sample: 0.5 s warm-up, then the window. Order: kernel and tungate blocks, \
         chains and sizes alternate between repeats (reversed every other repeat).\n\
         - CPU: `/proc/stat` per core (idle is exact under NO_HZ; the rest is tick-sampled at \
         250 Hz, this kernel has no IRQ time accounting) and tungate's threads' scheduler run \
         time (`/proc/PID/task/*/schedstat`).\n\
         - tungate runs in-process in a small gateway program (`gateway_bench gateway`): the \
         library's `Datapath` and `PluginHost`, as `tungate run` uses them, so that plugin \
         chains can be published (hot swap) without the admin API."
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ratio_of_lower_bounds_is_decided_only_where_the_bound_allows() {
        let unknown = "**not shown**: the generator's limit bounds the ratio from the wrong side";
        // Both exact.
        assert_eq!(bounded(1.2, 1.0, false, false), "**met**");
        assert_eq!(bounded(0.8, 1.0, false, false), "**not met**");
        // The kernel's rate a lower bound: a miss stays a miss, a hit is unknown.
        assert_eq!(bounded(0.8, 1.0, true, false), "**not met**");
        assert_eq!(bounded(1.2, 1.0, true, false), unknown);
        // Ours a lower bound: a hit stays a hit, a miss is unknown.
        assert_eq!(bounded(1.2, 1.0, false, true), "**met**");
        assert_eq!(bounded(0.8, 1.0, false, true), unknown);
        // Both: unknown either way.
        assert_eq!(bounded(1.2, 1.0, true, true), unknown);
        assert_eq!(bounded(0.8, 1.0, true, true), unknown);
    }
}

/// `gateway_bench ipv6`'s results: the IPIP and ip6ip6 rows of (c′) beside the kernel's
/// (a) and (a6), medians over the repeats, ratios taken within each repeat.
pub fn ipv6_results(
    options: &Options,
    samples: &[Sample],
    load_before: &str,
    load_after: &str,
    duration: Duration,
) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# IPv6 (ip6ip6) beside IPIP: (c′) and the kernel\n");
    let _ = writeln!(
        md,
        "Written by `gateway_bench ipv6` (appliance/examples/gateway_bench): only these rows of \
         the forwarding benchmark, side by side in one run, alternating; BENCHMARKS.md holds \
         the whole matrix and how it measures.\n"
    );
    let _ = writeln!(
        md,
        "- command: `gateway_bench ipv6 --repeats {} --seconds {} --out {}` (as root; \
         `deploy/bench/run.sh` builds it), {:.0} s",
        options.repeats,
        options.window.as_secs_f64(),
        options
            .out
            .strip_prefix(tungate_test_support::plugins::workspace())
            .unwrap_or(&options.out)
            .display(),
        duration.as_secs_f64()
    );
    for (name, value) in machine() {
        let _ = writeln!(md, "- {name}: {value}");
    }
    let _ = writeln!(
        md,
        "- load average (1, 5, 15 min) before: {load_before}; after: {load_after}"
    );
    let _ = writeln!(
        md,
        "\nThe same UDP payload in every row: the \"64 B\" rows are 64-byte frames at the \
         client for IPv4 and 84-byte ones for IPv6 (its header is 20 bytes longer), the \
         ip6ip6 frames on the wire 40 bytes longer than their inner packet (IPIP: 20). \
         (a6) is the kernel forwarding the inner IPv6 packets themselves, as (a) forwards \
         the inner IPv4 ones: this host has no `ip6_tunnel` module to decapsulate ip6ip6 \
         (`modprobe -n ip6_tunnel`: not found), so no kernel row decapsulates, for either \
         family. Gateway CPU: the gateway core's share from `perf` samples, plus the \
         generator core's interrupt work (on veth the XDP program runs there), per \
         delivered packet.\n"
    );
    let _ = writeln!(
        md,
        "| size | variant | offered pps | delivered pps | × its kernel | × IPIP (c′) | gateway + generator irq CPU ns/pkt | others on the gateway core | samples |\n|---|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let ipip = tungate(1, Chain::Cidr, Io::Xdp);
    let v6 = crate::phases::ip6ip6(Io::Xdp);
    let rows = [
        Variant::Kernel { cores: 1 },
        ipip,
        Variant::Kernel6 { cores: 1 },
        v6,
    ];
    for size in SIZES {
        for v in rows {
            let xs: Vec<&Sample> = of(samples, size, v).collect();
            if xs.is_empty() {
                continue;
            }
            let offered = median(&xs.iter().map(|x| x.offered_pps).collect::<Vec<_>>());
            let delivered = median(&xs.iter().map(|x| x.delivered_pps).collect::<Vec<_>>());
            let others = median(&xs.iter().filter_map(|x| x.others_share).collect::<Vec<_>>());
            let combined = median(&xs.iter().filter_map(|x| x.combined_ns).collect::<Vec<_>>());
            let per_pair = |base: Variant| {
                paired(samples, size, v, base, |a, b| {
                    Some(a.delivered_pps / b.delivered_pps)
                })
            };
            let vs_kernel = if matches!(v, Variant::Tungate { .. }) {
                format!("{:.2}", per_pair(kernel_for(v)))
            } else {
                String::new()
            };
            let vs_ipip = if v == v6 {
                format!("{:.2}", per_pair(ipip))
            } else {
                String::new()
            };
            let _ = writeln!(
                md,
                "| {} | {} | {offered:.0} | {delivered:.0} | {vs_kernel} | {vs_ipip} | {} | {}% | {} |",
                size.label,
                variant_name(v),
                fmt_opt(combined, 0),
                fmt_opt(others * 100.0, 0),
                xs.len()
            );
        }
    }
    let _ = writeln!(md, "\nEvery sample (the load average at its start):\n");
    for x in samples {
        let _ = writeln!(
            md,
            "- repeat {} {} {}: offered {:.0} pps, delivered {:.0} pps (load {})",
            x.repeat + 1,
            x.size.label,
            variant_name(x.variant),
            x.offered_pps,
            x.delivered_pps,
            x.load.trim()
        );
    }
    md
}
