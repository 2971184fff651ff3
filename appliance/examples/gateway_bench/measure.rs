//! What the bench reads from the kernel around a measurement window: per-core CPU time
//! (`/proc/stat`), a process's CPU time (`/proc/PID/task/*/schedstat`), who used the
//! gateway's core (`perf record` samples, attributed), the client interface's receive
//! counter (`ip -s link`), the load average; and the statistics the report needs (medians,
//! percentiles).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tungate_test_support::Netns;

/// USER_HZ: the unit of `/proc/stat`.
const TICK_NS: u64 = 10_000_000;

/// One core's CPU time, in ns, by kind.
#[derive(Debug, Clone, Copy, Default)]
pub struct CoreTimes {
    /// user + nice + system: processes (on this kernel, without IRQ time accounting, also
    /// the softirqs that ran on their stack when a tick caught them).
    pub process: u64,
    /// Hard and soft interrupts, ksoftirqd included.
    pub interrupts: u64,
    /// Idle + iowait (precise: NO_HZ idle accounting).
    pub idle: u64,
    /// Time the hypervisor gave to other guests.
    pub steal: u64,
}

impl CoreTimes {
    /// Everything but idle and steal.
    pub fn busy(&self) -> u64 {
        self.process + self.interrupts
    }

    fn minus(&self, before: &CoreTimes) -> CoreTimes {
        CoreTimes {
            process: self.process - before.process,
            interrupts: self.interrupts - before.interrupts,
            idle: self.idle - before.idle,
            steal: self.steal - before.steal,
        }
    }
}

/// Every core's times, by core index.
pub fn cores() -> Vec<CoreTimes> {
    let stat = std::fs::read_to_string("/proc/stat").expect("/proc/stat");
    stat.lines()
        .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
        .map(|l| {
            let f: Vec<u64> = l
                .split_whitespace()
                .skip(1)
                .map(|v| v.parse::<u64>().unwrap_or(0) * TICK_NS)
                .collect();
            CoreTimes {
                process: f[0] + f[1] + f[2],
                idle: f[3] + f[4],
                interrupts: f[5] + f[6],
                steal: f[7],
            }
        })
        .collect()
}

/// The sum over `cpus` of `after - before`.
pub fn cores_delta(before: &[CoreTimes], after: &[CoreTimes], cpus: &[usize]) -> CoreTimes {
    let mut sum = CoreTimes::default();
    for &c in cpus {
        let d = after[c].minus(&before[c]);
        sum.process += d.process;
        sum.interrupts += d.interrupts;
        sum.idle += d.idle;
        sum.steal += d.steal;
    }
    sum
}

/// CPU time of every thread of process `pid` so far, in ns (the scheduler's precise run
/// time; it includes interrupts served while the threads ran).
pub fn process_cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// Sampling rate of the attribution (per second of the core's wall time).
const PERF_HZ: u32 = 997;

/// One core's busy time over a window, attributed by `perf record` samples
/// (`cpu-clock` samples on that core, which is not sampled while idle, with kernel call
/// chains): softirq work (in any task's context, or ksoftirqd), the gateway's own threads
/// outside softirq, other tasks. The shares apply to the core's busy time from `/proc/stat`.
/// Unlike `/proc/stat` on this kernel (tick-sampled, no IRQ time accounting), this splits
/// the softirq work that lands on other tasks' stacks from the tasks themselves, so the
/// gateway's CPU is measured even while compile jobs share its core.
#[derive(Debug, Clone, Copy, Default)]
pub struct Attribution {
    /// Seconds in softirq or hard-irq context.
    pub interrupts: f64,
    /// Seconds in the gateway's threads outside interrupts.
    pub gateway_threads: f64,
    /// Seconds in other tasks outside interrupts.
    pub others: f64,
    /// Seconds in the idle task (hardly ever sampled).
    pub idle: f64,
}

impl Attribution {
    /// The gateway's CPU time: its threads plus every interrupt on its core (the network
    /// receive and transmit work, whoever's stack it ran on).
    pub fn gateway(&self) -> f64 {
        self.interrupts + self.gateway_threads
    }

    fn total(&self) -> f64 {
        (self.interrupts + self.gateway_threads + self.others + self.idle).max(1e-9)
    }

    /// The gateway's share of the core's time.
    pub fn gateway_share(&self) -> f64 {
        self.gateway() / self.total()
    }

    /// Other tasks' share of the core's time.
    pub fn others_share(&self) -> f64 {
        self.others / self.total()
    }

    /// The interrupt work's share of the core's time (on the generator's core: the receive
    /// side's work for what it sent, e.g. the XDP program on veth).
    pub fn interrupt_share(&self) -> f64 {
        self.interrupts / self.total()
    }
}

/// What `perf` saw on the recorded cores over one window.
#[derive(Debug, Clone, Default)]
pub struct Profile {
    /// Each recorded core's attribution, by core index.
    pub by_cpu: Vec<(usize, Attribution)>,
    /// Each core's samples by leaf symbol (the function the sample landed in), most first.
    pub top: Vec<(usize, Vec<(String, u64)>)>,
}

impl Profile {
    /// The attribution of core `cpu`, if it was recorded.
    pub fn cpu(&self, cpu: usize) -> Option<Attribution> {
        self.by_cpu.iter().find(|(c, _)| *c == cpu).map(|(_, a)| *a)
    }
}

/// A `perf record` of some cores for one window.
pub struct PerfRecording {
    child: Child,
    file: PathBuf,
}

impl PerfRecording {
    /// Starts recording cores `cpus` for `window`; `None` if `perf` is not there.
    pub fn start(cpus: &[usize], window: Duration, tag: &str) -> Option<PerfRecording> {
        let file =
            std::env::temp_dir().join(format!("gateway-bench-{}-{tag}.perf", std::process::id()));
        let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
        let child = Command::new("perf")
            .args([
                "record",
                "-q",
                "-e",
                "cpu-clock",
                "-g",
                "-C",
                &list.join(","),
            ])
            .args(["-F", &PERF_HZ.to_string(), "-o"])
            .arg(&file)
            .args(["--", "sleep", &format!("{:.3}", window.as_secs_f64())])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        Some(PerfRecording { child, file })
    }

    /// Waits for the recording and attributes its samples per core; `ours` are the
    /// gateway's thread ids, `load` the generator's (their samples count in the top
    /// symbols, not in the gateway's CPU).
    pub fn finish(mut self, ours: &HashSet<u32>, load: &HashSet<u32>) -> Option<Profile> {
        let ok = self.child.wait().ok()?.success();
        let result = ok.then(|| attribute(&self.file, ours, load)).flatten();
        let _ = std::fs::remove_file(&self.file);
        result
    }
}

/// Frames that mean "this sample ran in softirq context" (the network's receive and
/// transmit work, on whichever task's stack it ran).
fn is_softirq_frame(symbol: &str) -> bool {
    matches!(
        symbol,
        "handle_softirqs" | "__do_softirq" | "do_softirq" | "net_rx_action" | "run_ksoftirqd"
    )
}

/// Frames that mean "this sample ran in a hard interrupt" (timer, IPIs, devices).
fn is_hardirq_frame(symbol: &str) -> bool {
    symbol.starts_with("sysvec_")
        || symbol.starts_with("__sysvec_")
        || symbol.starts_with("asm_sysvec_")
        || symbol.starts_with("common_interrupt")
}

/// The symbol of one call-chain line of `perf script` (`ADDRESS SYMBOL+OFFSET`).
fn frame_symbol(line: &str) -> Option<&str> {
    let (_, sym) = line.trim().split_once(char::is_whitespace)?;
    let sym = sym.trim();
    Some(sym.split('+').next().unwrap_or(sym))
}

fn attribute(file: &Path, ours: &HashSet<u32>, load: &HashSet<u32>) -> Option<Profile> {
    let out = Command::new("perf")
        .args(["script", "-F", "comm,tid,cpu,ip,sym", "-i"])
        .arg(file)
        .stderr(Stdio::null())
        .output()
        .ok()?;
    parse_script(&String::from_utf8_lossy(&out.stdout), ours, load)
}

/// Attributes the samples of `perf script -F comm,tid,cpu,ip,sym` output. The top symbols
/// count interrupt work and the `ours` and `load` threads only (other tasks left out).
fn parse_script(text: &str, ours: &HashSet<u32>, load: &HashSet<u32>) -> Option<Profile> {
    let seconds = 1.0 / f64::from(PERF_HZ);
    let mut by_cpu: Vec<(usize, Attribution)> = Vec::new();
    let mut top: Vec<(usize, std::collections::HashMap<String, u64>)> = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines().filter(|l| !l.trim().is_empty());
        let Some(header) = lines.next() else {
            continue;
        };
        // `COMM TID [CPU]`; COMM may contain spaces.
        let mut words = header.split_whitespace().rev();
        let cpu: usize = words
            .next()
            .and_then(|c| c.trim_matches(|x| x == '[' || x == ']').parse().ok())
            .unwrap_or(usize::MAX);
        let tid: u32 = words.next().and_then(|t| t.parse().ok()).unwrap_or(0);
        let comm: Vec<&str> = words.rev().collect();
        let comm = comm.join(" ");
        let frames: Vec<&str> = lines.filter_map(frame_symbol).collect();
        let idle = comm.starts_with("swapper") || tid == 0;
        // Softirq work is the network's wherever it ran; a hard interrupt (a timer tick, an
        // IPI) belongs to the task it interrupted: the gateway's threads, the generator's,
        // or an idle core (a wakeup) — not another task's (a compile job's own ticks).
        let interrupt = comm.starts_with("ksoftirqd/")
            || frames.iter().any(|f| is_softirq_frame(f))
            || ((idle || ours.contains(&tid) || load.contains(&tid))
                && frames.iter().any(|f| is_hardirq_frame(f)));
        let a = match by_cpu.iter_mut().find(|(c, _)| *c == cpu) {
            Some((_, a)) => a,
            None => {
                by_cpu.push((cpu, Attribution::default()));
                &mut by_cpu.last_mut().expect("just pushed").1
            }
        };
        if interrupt {
            a.interrupts += seconds;
        } else if ours.contains(&tid) {
            a.gateway_threads += seconds;
        } else if idle {
            a.idle += seconds;
        } else {
            a.others += seconds;
        }
        if interrupt || ours.contains(&tid) || load.contains(&tid) {
            let leaf = frames.first().copied().unwrap_or("[unknown]").to_owned();
            let counts = match top.iter_mut().find(|(c, _)| *c == cpu) {
                Some((_, m)) => m,
                None => {
                    top.push((cpu, Default::default()));
                    &mut top.last_mut().expect("just pushed").1
                }
            };
            *counts.entry(leaf).or_default() += 1;
        }
    }
    if by_cpu.is_empty() {
        return None;
    }
    by_cpu.sort_by_key(|(c, _)| *c);
    let mut top: Vec<(usize, Vec<(String, u64)>)> = top
        .into_iter()
        .map(|(c, m)| {
            let mut v: Vec<(String, u64)> = m.into_iter().collect();
            v.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            (c, v)
        })
        .collect();
    top.sort_by_key(|(c, _)| *c);
    Some(Profile { by_cpu, top })
}

/// The thread ids of process `pid`.
pub fn thread_ids(pid: u32) -> HashSet<u32> {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

/// A thread's scheduling so far (`/proc/.../schedstat` and its context switches).
#[derive(Debug, Clone, Copy, Default)]
pub struct Sched {
    /// Time on a CPU, ns.
    pub run_ns: u64,
    /// Time runnable but waiting for a CPU, ns.
    pub wait_ns: u64,
    /// Times it went to sleep (voluntary switches).
    pub sleeps: u64,
    /// Times another task took the CPU from it while it could run (involuntary switches).
    pub preempted: u64,
}

impl Sched {
    /// Thread `tid`'s figures (of process `pid`), if it still exists.
    pub fn of(pid: u32, tid: u32) -> Option<Sched> {
        let dir = format!("/proc/{pid}/task/{tid}");
        let stat = std::fs::read_to_string(format!("{dir}/schedstat")).ok()?;
        let mut f = stat.split_whitespace().map(|x| x.parse::<u64>().ok());
        let (run_ns, wait_ns) = (f.next()??, f.next()??);
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        };
        Some(Sched {
            run_ns,
            wait_ns,
            sleeps: field("voluntary_ctxt_switches:")?,
            preempted: field("nonvoluntary_ctxt_switches:")?,
        })
    }

    /// The thread of process `pid` named `comm` (e.g. `tg-worker-0`, or `ksoftirqd/1` in
    /// process `pid` = itself).
    pub fn find(pid: u32, comm: &str) -> Option<u32> {
        thread_ids(pid).into_iter().find(|tid| {
            std::fs::read_to_string(format!("/proc/{pid}/task/{tid}/comm"))
                .is_ok_and(|c| c.trim() == comm)
        })
    }

    /// The kernel thread `ksoftirqd/CPU` (its pid), where softirq work goes once the kernel
    /// defers it from interrupt exits: it then waits for the CPU like any task.
    pub fn ksoftirqd(cpu: usize) -> Option<u32> {
        let name = format!("ksoftirqd/{cpu}");
        std::fs::read_dir("/proc").ok()?.find_map(|e| {
            let pid: u32 = e.ok()?.file_name().to_str()?.parse().ok()?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            (comm.trim() == name).then_some(pid)
        })
    }

    /// What happened between `before` and `self`, over `seconds`, as a log phrase.
    pub fn since(&self, before: &Sched, seconds: f64) -> String {
        let wait = self.wait_ns.saturating_sub(before.wait_ns);
        let switches_in = (self.sleeps + self.preempted)
            .saturating_sub(before.sleeps + before.preempted)
            .max(1);
        format!(
            "on a CPU {:.1}%, waiting for one {:.2}% ({:.0} µs per switch-in), {:.0} sleeps/s, \
             {:.0} preemptions/s",
            self.run_ns.saturating_sub(before.run_ns) as f64 / seconds / 1e7,
            wait as f64 / seconds / 1e7,
            wait as f64 / switches_in as f64 / 1e3,
            self.sleeps.saturating_sub(before.sleeps) as f64 / seconds,
            self.preempted.saturating_sub(before.preempted) as f64 / seconds,
        )
    }
}

/// Packets received by `interface` of `ns` so far.
pub fn rx_packets(ns: &Netns, interface: &str) -> u64 {
    let out = Command::new("ip")
        .args(["-n", &ns.name, "-j", "-s", "link", "show", interface])
        .output()
        .expect("run ip");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j output");
    v[0]["stats64"]["rx"]["packets"]
        .as_u64()
        .expect("rx packets")
}

/// Drop counters along the bench's path, read together: where frames were lost.
#[derive(Debug, Clone, Copy, Default)]
pub struct PathDrops {
    /// The generator's veth (`r0` tx dropped): the gateway side refused the frame (its XDP
    /// ring or backlog full).
    pub sender: u64,
    /// The gateway's ingress (`g0` rx dropped): e.g. an XDP redirect that found no room.
    pub ingress: u64,
    /// The gateway's egress (`g1` tx dropped): the client side refused the frame.
    pub egress: u64,
    /// Every core's backlog drops (`/proc/net/softnet_stat`, whole host: RPS and
    /// `netif_rx` queues over `netdev_max_backlog`).
    pub backlog: u64,
}

impl PathDrops {
    /// `self - before`, per counter.
    pub fn minus(&self, before: &PathDrops) -> PathDrops {
        PathDrops {
            sender: self.sender.saturating_sub(before.sender),
            ingress: self.ingress.saturating_sub(before.ingress),
            egress: self.egress.saturating_sub(before.egress),
            backlog: self.backlog.saturating_sub(before.backlog),
        }
    }
}

fn link_stat(ns: &Netns, interface: &str, dir: &str, field: &str) -> u64 {
    let Ok(out) = Command::new("ip")
        .args(["-n", &ns.name, "-j", "-s", "link", "show", interface])
        .output()
    else {
        return 0;
    };
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v[0]["stats64"][dir][field].as_u64())
        .unwrap_or(0)
}

/// The host's backlog drops so far (the second column of `/proc/net/softnet_stat`, summed
/// over cores).
fn softnet_drops() -> u64 {
    std::fs::read_to_string("/proc/net/softnet_stat")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| u64::from_str_radix(l.split_whitespace().nth(1)?, 16).ok())
        .sum()
}

/// The drop counters of the bench's path now.
pub fn path_drops(rs: &Netns, gw: &Netns) -> PathDrops {
    PathDrops {
        sender: link_stat(rs, "r0", "tx", "dropped"),
        ingress: link_stat(gw, "g0", "rx", "dropped"),
        egress: link_stat(gw, "g1", "tx", "dropped"),
        backlog: softnet_drops(),
    }
}

/// The first three fields of `/proc/loadavg`.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The median of `v` (NaN if empty).
pub fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// The `q` quantile of `v` (nearest rank; NaN if empty).
pub fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let rank = ((q * s.len() as f64).ceil() as usize).clamp(1, s.len());
    s[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 50.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&v, 1.0), 100.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn perf_samples_are_attributed_per_core() {
        let text = "tungate-w0 700 [001] \n\
            \t ffffffff81000001 tpacket_rcv+0x10\n\
            \t ffffffff81000002 net_rx_action+0x20\n\
            \n\
            tungate-w0 700 [001] \n\
            \t 5555 tungate_datapath::worker::run\n\
            \n\
            gateway_bench 600 [000] \n\
            \t ffffffff81000003 veth_xdp_rcv+0x1\n\
            \t ffffffff81000004 handle_softirqs+0x1\n\
            \n\
            gateway_bench 600 [000] \n\
            \t ffffffff81000005 packet_sendmsg+0x1\n\
            \n\
            lto cgu.02 900 [001] \n\
            \t 1234 llvm::Pass::run\n\
            \n\
            lto cgu.02 900 [001] \n\
            \t ffffffff81000006 irqentry_exit_to_user_mode+0x1\n\
            \t ffffffff81000007 asm_sysvec_apic_timer_interrupt+0x1\n\
            \n\
            tungate-w0 700 [001] \n\
            \t ffffffff81000008 scheduler_tick+0x1\n\
            \t ffffffff81000009 sysvec_apic_timer_interrupt+0x1\n";
        let ours: HashSet<u32> = [700].into();
        let p = parse_script(text, &ours, &[600].into()).expect("samples");
        let s = 1.0 / f64::from(PERF_HZ);
        let gw = p.cpu(1).expect("core 1");
        assert_eq!(
            (gw.interrupts, gw.gateway_threads, gw.others),
            (2.0 * s, s, 2.0 * s),
            "the worker's softirq and its own timer tick are the gateway's; the compile \
             job's tick is its own"
        );
        let generator = p.cpu(0).expect("core 0");
        assert_eq!(
            (
                generator.interrupts,
                generator.gateway_threads,
                generator.others
            ),
            (s, 0.0, s)
        );
        let top0 = &p.top.iter().find(|(c, _)| *c == 0).expect("core 0").1;
        assert_eq!(top0[0], ("packet_sendmsg".to_owned(), 1));
        assert!(top0.contains(&("veth_xdp_rcv".to_owned(), 1)));
        assert!(p.cpu(2).is_none());
    }
}
