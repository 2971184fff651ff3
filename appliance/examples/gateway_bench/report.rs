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
use crate::gateway::Chain;
use crate::measure::median;
use crate::phases::{Capacity, Latency, Memory, SIZES, Sample, Size, SwapRun, Variant};

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
        Variant::Tungate {
            workers,
            chain,
            timed,
        } => {
            let what = match chain {
                Chain::None => "(b) tungate, no plugin",
                Chain::Cidr => "(c) tungate, cidr-filter",
                Chain::Four => "(d) tungate, 4 plugins",
                Chain::CidrHalves => "tungate, cidr-filter (halves)",
            };
            let workers = if workers == 1 {
                "1 worker".to_owned()
            } else {
                format!("{workers} workers (one core shared with the generator)")
            };
            format!(
                "{what}, {workers}{}",
                if timed { ", chain timed" } else { "" }
            )
        }
    }
}

/// One progress line for a sample.
pub fn sample_line(s: &Sample) -> String {
    format!(
        "{} {}: offered {:.0} pps, delivered {:.0} pps, busy {:.0} ns/pkt, irq {:.0} ns/pkt{}{}{}{}",
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
        s.filter_ns
            .map(|p| format!(", chain {p:.1} ns/pkt"))
            .unwrap_or_default(),
        s.rx_overflow_pps
            .zip(s.gateway_rx_pps)
            .map(|(p, r)| format!(", tungate rx {r:.0}/s, rx_overflow {p:.0}/s"))
            .unwrap_or_default(),
    )
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
         - priority: the bench and the gateway process run at nice {} (the kernel's forwarding \
         runs in softirq context, ahead of any process, anyway).\n",
        crate::phases::NICE
    );

    targets(&mut md, r);
    throughput(&mut md, r);
    capacity(&mut md, r);
    stage_timing(&mut md, r);
    latency(&mut md, r);
    swaps(&mut md, r);
    memory(&mut md, r);
    method(&mut md);
    std::fs::write(out, md)?;

    let mut csv = String::from(
        "repeat,size,variant,offered_pps,delivered_pps,gateway_cpu_ns_per_pkt,others_share_of_core,busy_ns_per_pkt,irq_ns_per_pkt,process_ns_per_pkt,chain_ns_per_pkt,rx_overflow_per_s,loadavg\n",
    );
    for s in &r.samples {
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.1}")).unwrap_or_default();
        let _ = writeln!(
            csv,
            "{},{},\"{}\",{:.0},{:.0},{},{},{:.1},{:.1},{},{},{},{}",
            s.repeat,
            s.size.label,
            variant_name(s.variant),
            s.offered_pps,
            s.delivered_pps,
            opt(s.attributed_ns),
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

fn tungate(workers: usize, chain: Chain, timed: bool) -> Variant {
    Variant::Tungate {
        workers,
        chain,
        timed,
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
        let c = tungate(1, Chain::Cidr, false);
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
    for cap in r.capacity.iter().filter(|c| c.chain == Chain::Cidr) {
        let kernel = median_delivered(s, cap.size, k1);
        let kernel_cpu = median(
            &of(s, cap.size, k1)
                .filter_map(|x| x.attributed_ns)
                .collect::<Vec<_>>(),
        );
        let _ = writeln!(
            md,
            "| (c) loss-free capacity vs the kernel, {} | {:.0} pps = {}× the kernel's {:.0} (its capacity is higher still); CPU {} vs {} ns/packet = {}× the kernel's packets per CPU-second | {} |",
            cap.size.label,
            cap.lossless_pps,
            fmt_opt(cap.lossless_pps / kernel, 2),
            kernel,
            fmt_opt(cap.busy_ns, 0),
            fmt_opt(kernel_cpu, 0),
            fmt_opt(kernel_cpu / cap.busy_ns, 2),
            met(cap.lossless_pps / kernel >= 0.6)
        );
    }
    let b = tungate(1, Chain::None, false);
    let c = tungate(1, Chain::Cidr, false);
    let overhead = paired(s, SIZES[0], c, b, |a, b| {
        Some(a.attributed_ns? - b.attributed_ns?)
    });
    let timed: Vec<f64> = of(s, SIZES[0], tungate(1, Chain::Cidr, true))
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
    if let Some(run) = r.swaps.iter().find(|w| w.swaps > 0) {
        let _ = writeln!(
            md,
            "| 0 lost / duplicated across hot swaps | {} swaps in {:.1} s (one asked for every 100 ms, each after the previous build finished): {} lost, {} duplicated of {} | {} |",
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
         scheduler run time). \"dropped before tungate\" counts frames the kernel received \
         but found tungate's receive ring full: under overload the receive work for them is \
         done (in softirq, ahead of tungate's thread) and wasted, while the kernel's own \
         forwarding sheds excess load before it costs the gateway core anything.\n"
    );
    let _ = writeln!(
        md,
        "| size | variant | offered pps | delivered pps | × kernel | gateway CPU ns/pkt | others | core busy ns/pkt | irq ns/pkt | dropped before tungate /s |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"
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
        Variant::Tungate { workers, chain, .. } => (
            workers,
            match chain {
                Chain::None => 1,
                Chain::Cidr => 2,
                Chain::Four => 3,
                Chain::CidrHalves => 4,
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
                "| {} | {} | {:.0} | {:.0} | {:.2} | {} | {} | {} | {:.0} | {} |",
                size.label,
                variant_name(v),
                m(&|x| Some(x.offered_pps)),
                m(&|x| Some(x.delivered_pps)),
                ratio,
                fmt_opt(m(&|x| x.attributed_ns), 0),
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
    let _ = writeln!(md, "## Highest loss-free rate (1 worker)\n");
    let _ = writeln!(
        md,
        "Under the flood above, tungate delivers less than it can: the kernel does the receive \
         work (tap, ingress drop, free) for every frame in softirq, ahead of tungate's thread, \
         also for the frames that then find the receive ring full. Here the generator offers \
         100 k pps and 15% more each second until over 2% is lost; the last rate without loss \
         is tungate's capacity, with the gateway core's busy time per packet there (no waste). \
         The kernel's forwarding lost nothing even at the generator's maximum (table above), so \
         its capacity is at least that.\n"
    );
    let _ = writeln!(
        md,
        "| size | chain | loss-free pps (< 2% lost) | × kernel's delivered (a lower bound of its capacity) | core busy ns/pkt | kernel's gateway CPU ns/pkt |\n|---|---|---:|---:|---:|---:|"
    );
    let k1 = Variant::Kernel { cores: 1 };
    for c in &r.capacity {
        let kernel = median_delivered(&r.samples, c.size, k1);
        let kernel_cpu = median(
            &of(&r.samples, c.size, k1)
                .filter_map(|x| x.attributed_ns)
                .collect::<Vec<_>>(),
        );
        let _ = writeln!(
            md,
            "| {} | {} | {:.0} | {} | {} | {} |",
            c.size.label,
            match c.chain {
                Chain::None => "(b) none",
                Chain::Cidr => "(c) cidr-filter",
                Chain::Four => "(d) 4 plugins",
                Chain::CidrHalves => "cidr-filter (halves)",
            },
            c.lossless_pps,
            fmt_opt(c.lossless_pps / kernel, 2),
            fmt_opt(c.busy_ns, 0),
            fmt_opt(kernel_cpu, 0),
        );
    }
    let _ = writeln!(md);
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
            let xs: Vec<&Sample> = of(&r.samples, size, tungate(1, chain, true)).collect();
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

fn latency(md: &mut String, r: &Report<'_>) {
    let Some(first) = r.latency.first() else {
        return;
    };
    let _ = writeln!(
        md,
        "## One-way latency at half of (c)'s maximum rate (64 B, 1 worker)\n"
    );
    let _ = writeln!(
        md,
        "Offered {:.0} pps, paced in bursts of at most 8. Latency is the client's kernel \
         receive time stamp (SO_TIMESTAMPNS on `c0`) minus the send time the generator wrote \
         into the payload just before `sendmmsg` — same host clock. It includes the \
         generator's send path and both veth hops; \"added\" is the difference to (a).\n",
        first.rate
    );
    let _ = writeln!(
        md,
        "| variant | sent | received | p50 µs | p99 µs | p99.9 µs | p50 added µs | p99 added µs |\n|---|---:|---:|---:|---:|---:|---:|---:|"
    );
    let kernel = r
        .latency
        .iter()
        .find(|l| matches!(l.variant, Variant::Kernel { .. }));
    for l in &r.latency {
        let (a50, a99) = kernel
            .map(|k| (l.p50_us - k.p50_us, l.p99_us - k.p99_us))
            .unwrap_or((f64::NAN, f64::NAN));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {} | {} |",
            variant_name(l.variant),
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
}

fn swaps(md: &mut String, r: &Report<'_>) {
    if r.swaps.is_empty() {
        return;
    }
    let _ = writeln!(md, "## Hot swap under load (64 B, 1 worker)\n");
    let _ = writeln!(
        md,
        "Numbered frames at half of (c)'s maximum rate; the gateway publishes a new plugin \
         generation every 100 ms (cycling: the 4-plugin chain, cidr-filter with another \
         configuration, cidr-filter) through `PluginHost::publish` from a control thread on \
         core 0 (beside the gateway's core, as a control plane would run), every generation passing all \
         traffic; the worker hands each replaced set back to be freed by the control side. The control run is the same without swaps.\n"
    );
    let _ = writeln!(
        md,
        "| run | swaps done | offered pps | sent | lost | duplicated | receiver socket drops | gateway drops |\n|---|---:|---:|---:|---:|---:|---:|---|"
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
            "| {} | {}{} | {:.0} | {} | {} | {} | {} | {} |",
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
         per VIP at least).\n"
    );
    let _ = writeln!(
        md,
        "| VIPs | plugins per VIP | RSS MiB | peak MiB |\n|---:|---:|---:|---:|"
    );
    for m in &r.memory {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {:.1} |",
            m.vips,
            m.plugins,
            m.rss_kib as f64 / 1024.0,
            m.hwm_kib as f64 / 1024.0
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
