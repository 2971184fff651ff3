//! tungate's forwarding benchmark against the kernel (needs root; see deploy/bench/README.md).
//!
//! One run, on one machine: builds the `rs` → `gw` → `client` namespaces on veth, then
//! alternates, repeat after repeat, (a) the kernel forwarding the same inner packets in
//! `gw` and tungate with userspace decap with (b) no plugin, (c) one `cidr-filter`, (d) a
//! chain of four plugins, for 64 B and 1400 B payload packets, with 1 worker (and the kernel
//! on 1 core) and with 2 (2 cores, one shared with the load generator), and (b′)–(d′) on
//! AF_XDP with 1 worker, (c) and (c′) in GUE, and (c′) in ip6ip6 beside the kernel's IPv6
//! forwarding (a6). Then it measures each 1-core variant's highest loss-free rate,
//! (c′) under overload and under a hostile flood, one-way latency at half load, a hot swap
//! every 100 ms under load on both paths (lost and duplicated packets by sequence number),
//! and resident memory with 100 VIPs × 4 plugins, and writes BENCHMARKS.md. It runs in a
//! session of its own (see `phases::raise_priority`).
//!
//! `gateway_bench run [--quick] [--repeats N] [--seconds S] [--out FILE] [--samples FILE]`
//! `gateway_bench soak [SECONDS] [kernel|none|cidr|four|cidr-timed|four-timed] [WORKERS] [64|1400] [RATE]`
//! holds one variant under full load and prints its rate every second (for `perf`); with
//! `TUNGATE_BENCH_CAPTURE=passed` (or `drops`) a capture of every forwarded (or dropped)
//! packet runs meanwhile (deploy/bench/capture.md).
//! `gateway_bench latency [RATE] [ROUNDS]` runs the latency phase alone at RATE: the kernel
//! and cidr-filter on AF_XDP (`GATEWAY_BENCH_IO=xdp`) or TPACKET, rounds alternating.
//! `gateway_bench memory [REPEATS]` runs the memory phase alone REPEATS times (default 5)
//! and prints the medians (with `GATEWAY_BENCH_SMAPS=DIR`, each gateway's smaps saved there;
//! with `GATEWAY_BENCH_PLUGINS=DIR`, the example plugins' `.wasm` files taken from DIR).
//! `gateway_bench ipv6 [--quick] [--repeats N] [--seconds S] [--out FILE]` runs only the
//! IPIP and ip6ip6 rows of (c′) beside the kernel's (a) and (a6), side by side, and writes
//! their medians (default deploy/bench/results/ipv6.md).
//! `gateway_bench gateway ...` is the gateway process the run starts in `gw` (internal).

use tungate_test_support::plugins;

mod gateway;
mod measure;
mod phases;
mod report;
mod traffic;

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::time::Duration;

/// What to run, from the command line.
#[derive(Debug, Clone)]
pub struct Options {
    /// A few seconds in all: one repeat, short windows, 64 B only, 1 worker.
    pub quick: bool,
    /// Repeats of the throughput matrix.
    pub repeats: usize,
    /// Measurement window of each throughput sample.
    pub window: Duration,
    /// The report to write.
    pub out: PathBuf,
    /// Every throughput sample, as CSV.
    pub samples: PathBuf,
}

fn parse(args: &[String]) -> Result<Options, String> {
    let root = plugins::workspace();
    let mut o = Options {
        quick: false,
        repeats: 5,
        window: Duration::from_millis(2500),
        out: root.join("BENCHMARKS.md"),
        samples: root.join("deploy/bench/results/samples.csv"),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{name} needs a value"))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--repeats" => {
                o.repeats = value("--repeats")?
                    .parse()
                    .map_err(|e| format!("--repeats: {e}"))?
            }
            "--seconds" => {
                let s: f64 = value("--seconds")?
                    .parse()
                    .map_err(|e| format!("--seconds: {e}"))?;
                o.window = Duration::from_secs_f64(s);
            }
            "--out" => o.out = value("--out")?.into(),
            "--samples" => o.samples = value("--samples")?.into(),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if o.quick {
        o.repeats = 1;
        o.window = Duration::from_millis(700);
    }
    if o.repeats == 0 {
        return Err("--repeats must be at least 1".into());
    }
    Ok(o)
}

/// `soak [SECONDS] [kernel|none|cidr|four|cidr-timed|four-timed] [WORKERS] [64|1400] [RATE]`
fn soak(args: &[String]) -> i32 {
    let seconds = args.first().and_then(|a| a.parse().ok()).unwrap_or(20);
    let what = args.get(1).map_or("none", String::as_str);
    let workers = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1);
    let size = match args.get(3).map(String::as_str) {
        Some("1400") => phases::SIZES[1],
        _ => phases::SIZES[0],
    };
    let variant = if what == "kernel" {
        phases::Variant::Kernel { cores: workers }
    } else {
        let (name, timed) = match what.strip_suffix("-timed") {
            Some(n) => (n, true),
            None => (what, false),
        };
        let Some(chain) = gateway::Chain::parse(name) else {
            eprintln!("gateway_bench soak: no variant {what}");
            return 2;
        };
        phases::Variant::Tungate {
            workers,
            chain,
            timed,
            io: gateway::Io::from_env(),
            tunnel: gateway::Tunnel::from_env(),
        }
    };
    let rate = args.get(4).and_then(|a| a.parse().ok());
    phases::soak(seconds, variant, size, rate)
}

/// Runs this program again as the leader of a new session (so that the priority the bench
/// gives its session's autogroup is its own, not the caller's shell's) and returns its exit
/// status; `None` if this process leads its session already.
fn in_own_session() -> Option<i32> {
    if nix::unistd::getsid(None).ok() == Some(nix::unistd::getpid()) {
        return None;
    }
    let mut command = std::process::Command::new(std::env::current_exe().expect("own executable"));
    command.args(std::env::args_os().skip(1));
    // SAFETY: setsid(2) and prctl(2) are async-signal-safe; nothing else runs between fork
    // and exec. The death signal ends the bench with its caller (Ctrl-C, a CI timeout), as
    // before it had a session of its own.
    unsafe {
        command.pre_exec(|| {
            nix::unistd::setsid().map_err(std::io::Error::from)?;
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let status = command.status().expect("run the bench in its own session");
    Some(status.code().unwrap_or(1))
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if matches!(
        args.first().map(String::as_str),
        Some("run" | "soak" | "latency" | "memory" | "ipv6" | "napi")
    ) && let Some(code) = in_own_session()
    {
        std::process::exit(code);
    }
    match args.first().map(String::as_str) {
        Some("gateway") => {
            tracing_subscriber::fmt()
                .with_writer(std::io::stderr)
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .init();
            std::process::exit(gateway::child_main(&args[1..]));
        }
        Some("soak") => std::process::exit(soak(&args[1..])),
        Some("latency") => {
            let rate = args
                .get(1)
                .and_then(|a| a.parse().ok())
                .unwrap_or(100_000.0);
            let rounds = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
            std::process::exit(phases::latency(rate, rounds))
        }
        Some("napi") => {
            let size = match args.get(1).map(String::as_str) {
                Some("64") => phases::SIZES[0],
                _ => phases::SIZES[1],
            };
            let repeats = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
            std::process::exit(phases::napi_capacity(size, repeats))
        }
        Some("memory") => {
            let repeats = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(5);
            std::process::exit(phases::memory(repeats))
        }
        Some("ipv6") => match parse(&args[1..]) {
            Ok(mut options) => {
                if !args[1..].iter().any(|a| a == "--out") {
                    options.out = plugins::workspace().join("deploy/bench/results/ipv6.md");
                }
                std::process::exit(phases::ipv6(&options))
            }
            Err(e) => {
                eprintln!("gateway_bench: {e}");
                std::process::exit(2);
            }
        },
        Some("run") => match parse(&args[1..]) {
            Ok(options) => std::process::exit(phases::run(&options)),
            Err(e) => {
                eprintln!("gateway_bench: {e}");
                std::process::exit(2);
            }
        },
        _ => {
            eprintln!(
                "usage: gateway_bench run|ipv6 [--quick] [--repeats N] [--seconds S] [--out FILE] [--samples FILE] | napi [64|1400] [REPEATS]"
            );
            std::process::exit(2);
        }
    }
}
