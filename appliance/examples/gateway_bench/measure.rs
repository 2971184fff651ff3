//! What the bench reads from the kernel around a measurement window: per-core CPU time
//! (`/proc/stat`), a process's CPU time (`/proc/PID/task/*/schedstat`), the client
//! interface's receive counter (`ip -s link`), the load average; and the statistics the
//! report needs (medians, percentiles).

use std::process::Command;

use crate::common::Netns;

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
}
