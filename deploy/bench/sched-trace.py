#!/usr/bin/env python3
"""Lines up the late frames of a `gateway_bench latency` run with a scheduler trace.

Usage (see deploy/bench/README.md, "Tracing the latency tail"):

    GATEWAY_BENCH_ARRIVALS=DIR GATEWAY_BENCH_IO=xdp perf record -k mono -a \\
        -e sched:sched_switch -e sched:sched_waking -o T.data -- \\
        gateway_bench latency RATE ROUNDS
    perf script -i T.data -F comm,tid,cpu,time,event,trace --ns > T.txt
    sched-trace.py T.txt DIR/N-tungate.tsv [LATE_US] [WORKER_COMM]

For the frames whose latency exceeds LATE_US (default 100), it reports how long the worker
thread (WORKER_COMM, default tg-worker-0) was running, preempted (runnable, another task on
its core), woken but not yet on a core, or asleep while each such frame was in flight, and
which tasks ran on each core meanwhile; also who preempted a worker over the whole trace.
Standard library only; it reads the whole trace into memory.
"""

import bisect
import collections
import re
import sys

SWITCH = re.compile(
    r"\[(\d+)\]\s+([\d.]+):\s+sched:sched_switch: prev_comm=(.*?) prev_pid=(\d+) "
    r"prev_prio=(\d+) prev_state=(\S+) ==> next_comm=(.*?) next_pid=(\d+) next_prio=(\d+)"
)
WAKING = re.compile(r"\[(\d+)\]\s+([\d.]+):\s+sched:sched_waking: comm=(.*?) pid=(\d+) ")


def ns(stamp):
    """perf's `SECONDS.NANOSECONDS` as integer ns."""
    sec, _, frac = stamp.partition(".")
    return int(sec) * 1_000_000_000 + int(frac.ljust(9, "0")[:9])


class Intervals:
    """Non-overlapping [start, end) intervals with a label, in time order."""

    def __init__(self):
        self.starts, self.ends, self.labels = [], [], []

    def add(self, start, end, label):
        if end > start:
            self.starts.append(start)
            self.ends.append(end)
            self.labels.append(label)

    def overlap(self, lo, hi):
        """(label, ns) of every interval overlapping [lo, hi)."""
        i = max(bisect.bisect_right(self.starts, lo) - 1, 0)
        while i < len(self.starts) and self.starts[i] < hi:
            a, b = max(self.starts[i], lo), min(self.ends[i], hi)
            if b > a:
                yield self.labels[i], b - a
            i += 1


def read_trace(path, worker_comm):
    """Every `worker_comm` thread's states (by tid), the tasks on each CPU, and who
    preempted a worker, from `perf script` output."""
    states = collections.defaultdict(Intervals)
    state = {}  # tid -> (state, since)
    on_cpu = collections.defaultdict(Intervals)
    current = {}  # cpu -> (label, since)
    preempted_by = collections.Counter()
    with open(path, errors="replace") as f:
        for line in f:
            m = SWITCH.search(line)
            if m:
                c, t, pcomm, ppid, _, pstate, ncomm, npid, nprio = m.groups()
                c, t = int(c), ns(t)
                if c in current:
                    on_cpu[c].add(current[c][1], t, current[c][0])
                current[c] = (f"{ncomm}/{npid} prio {nprio}", t)
                if pcomm == worker_comm:
                    if ppid in state:
                        states[ppid].add(state[ppid][1], t, state[ppid][0])
                    if pstate.startswith("R"):
                        state[ppid] = ("preempted", t)
                        preempted_by[f"{ncomm} prio {nprio}"] += 1
                    else:
                        state[ppid] = ("asleep", t)
                if ncomm == worker_comm:
                    if npid in state:
                        states[npid].add(state[npid][1], t, state[npid][0])
                    state[npid] = ("running", t)
                continue
            m = WAKING.search(line)
            if m and m.group(3) == worker_comm and state.get(m.group(4), ("",))[0] == "asleep":
                tid, t = m.group(4), ns(m.group(2))
                states[tid].add(state[tid][1], t, "asleep")
                state[tid] = ("woken", t)
    return states, on_cpu, preempted_by


def read_arrivals(path):
    """(sent, received) in CLOCK_MONOTONIC ns, from a GATEWAY_BENCH_ARRIVALS file."""
    offset, out = 0, []
    with open(path) as f:
        for line in f:
            if line.startswith("# realtime_minus_monotonic_ns"):
                offset = int(line.split()[-1])
            elif not line.startswith("#"):
                sent, latency = map(int, line.split())
                out.append((sent - offset, sent - offset + latency))
    return out


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    late_us = float(argv[3]) if len(argv) > 3 else 100.0
    worker_comm = argv[4] if len(argv) > 4 else "tg-worker-0"
    all_states, on_cpu, preempted_by = read_trace(argv[1], worker_comm)
    arrivals = read_arrivals(argv[2])
    if not arrivals:
        print("no arrivals", file=sys.stderr)
        return 1
    first, last = arrivals[0][0], max(r for _, r in arrivals)
    span = (last - first) / 1e9
    print(f"run: {len(arrivals)} frames over {span:.2f} s")
    # The worker of this run: the thread of that name that was traced in its window.
    states, in_run = Intervals(), collections.Counter()
    for tid, st in all_states.items():
        seen = collections.Counter()
        n = 0
        for label, d in st.overlap(first, last):
            seen[label] += d
            n += label == "preempted"
        if sum(seen.values()) > sum(in_run.values()):
            states, in_run, preemptions, worker = st, seen, n, tid
    if in_run:
        total = sum(in_run.values())
        print(f"  worker {worker_comm} (tid {worker}): " + ", ".join(
            f"{k} {v / total * 100:.2f}%" for k, v in in_run.most_common())
            + f"; preempted {preemptions / span:.0f} times/s")
        print("  who preempted a worker (whole trace): "
              + ", ".join(f"{k} {v}" for k, v in preempted_by.most_common(6)))
    late = [(s, r) for s, r in arrivals if r - s > late_us * 1000]
    print(f"late (> {late_us:.0f} µs): {len(late)} frames, {len(late) / len(arrivals) * 100:.2f}%")
    if not late:
        return 0
    flight = sum(r - s for s, r in late)
    if in_run:
        worker_time, dominant = collections.Counter(), collections.defaultdict(list)
        for s, r in late:
            mine = collections.Counter()
            for label, d in states.overlap(s, r):
                mine[label] += d
            worker_time.update(mine)
            dominant[mine.most_common(1)[0][0] if mine else "untraced"].append(r - s)
        print("  the worker while they were in flight (time summed over late frames): "
              + ", ".join(f"{k} {v / flight * 100:.1f}%" for k, v in worker_time.most_common()))
        print("  late frames by the worker's main state in flight (frames, median and max µs):")
        for k, v in sorted(dominant.items(), key=lambda e: -len(e[1])):
            v.sort()
            print(f"    {k}: {len(v)}, {v[len(v) // 2] / 1e3:.0f}, {v[-1] / 1e3:.0f}")
    for c in sorted(on_cpu):
        tasks = collections.Counter()
        for s, r in late:
            for label, d in on_cpu[c].overlap(s, r):
                tasks[label] += d
        print(f"  CPU {c} while they were in flight (share of their summed flight time):")
        for label, d in tasks.most_common(8):
            print(f"    {label}: {d / flight * 100:.1f}%")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
