#!/bin/bash
# Stage 2 of the lab guest: PID 1 after switch_root, running from the host's (read-only) root.
#
# Owns: the guest's kernel modules (through `modprobe -d` on the cached Debian modules, also
# for the kernel's own on-demand loading), running the planned scenarios one after another
# with a time limit each, cleaning up what a failed scenario left, the transcript, the
# per-scenario results and the final verdict in the results share; then it powers off.
# Never: touches anything outside the guest (it has no network device at all), or reports a
# pass it did not see (the verdict is written last, after every scenario has finished).
set -uo pipefail

RESULTS=/run/lab/results
# shellcheck source=/dev/null
source "$RESULTS/plan.env"
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 LC_ALL=C.UTF-8
export LAB_REPO LAB_DIR LAB_MODULES_DIR LAB_KVER LAB_TUNGATE LAB_PLUGIN_DIR
export LAB_RESULTS=$RESULTS LAB_TRANSCRIPT=$RESULTS/transcript.txt

# lib.sh's exit status for a scenario interrupted outside its checks (LAB_EXIT_INTERRUPTED).
LAB_EXIT_INTERRUPTED=3
# Modules the scenarios use; the kernel loads others on demand through the wrapper below.
LAB_MODULES=(ipip ip_vs ip_vs_rr veth bridge dummy nf_tables nf_conntrack tun)

power_off() {
  sync
  echo o >/proc/sysrq-trigger
  sleep 30
}
trap power_off EXIT

# Appends a line to the transcript (the host shows it live) and to the console log.
say() { printf '%s\n' "$*" | tee -a "$LAB_TRANSCRIPT"; }

uptime_s() { cut -d' ' -f1 /proc/uptime; }

# The kernel runs /proc/sys/kernel/modprobe to load modules on demand (e.g. for `ip link add
# type ipip` or an nftables expression); point it at the cached modules of this kernel.
install_modprobe_wrapper() {
  mkdir -p /run/lab/bin
  printf '#!/bin/sh\nexec /usr/sbin/modprobe -d %q "$@"\n' "$LAB_MODULES_DIR" >/run/lab/bin/modprobe
  chmod 0755 /run/lab/bin/modprobe
  echo /run/lab/bin/modprobe >/proc/sys/kernel/modprobe
}

prepare_guest() {
  mount -t tmpfs -o mode=1777 tmpfs /dev/shm 2>/dev/null || true
  mkdir -p /dev/pts
  mount -t devpts devpts /dev/pts 2>/dev/null || true
  ip link set lo up
  # The lab is IPv4 only: new namespaces inherit IPv6 switched off, so no router
  # solicitations or MLD reports wander through the topology (or into its counters).
  sysctl -qw net.core.devconf_inherit_init_net=1 net.ipv6.conf.all.disable_ipv6=1 \
    net.ipv6.conf.default.disable_ipv6=1
  install_modprobe_wrapper
  modprobe -d "$LAB_MODULES_DIR" -a "${LAB_MODULES[@]}" || {
    say "cannot load the modules ${LAB_MODULES[*]} from $LAB_MODULES_DIR"
    return 1
  }
}

# Kills every process left in a namespace and deletes all namespaces, so a scenario that
# failed or timed out cannot disturb the next one. The guest belongs to the lab alone.
clean_leftovers() {
  local ns
  for ns in $(ip netns list | awk '{print $1}'); do
    ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null
    ip netns delete "$ns" 2>/dev/null
  done
}

# Runs one scenario under its time limit; prints its result line; returns its status.
run_scenario_once() {
  local name=$1 file=$LAB_DIR/scenarios/$1.sh started status elapsed
  say ""
  say "=== scenario $name: $(sed -n 's/^# lab-summary: *//p' "$file" | head -n 1)"
  started=$(uptime_s)
  LAB_SCENARIO=$name timeout --kill-after=10 "$LAB_SCENARIO_TIMEOUT" bash "$file" 2>&1 |
    tee -a "$LAB_TRANSCRIPT"
  status=${PIPESTATUS[0]}
  elapsed=$(awk -v s="$started" -v e="$(uptime_s)" 'BEGIN { printf "%.1f", e - s }')
  SCENARIO_ELAPSED=$elapsed
  clean_leftovers
  if ((status == 0)); then
    say "=== scenario $name: PASS in $elapsed s"
  elif ((status == 124 || status == 137)); then
    say "=== scenario $name: FAIL (timed out after $LAB_SCENARIO_TIMEOUT s) in $elapsed s"
  elif ((status == LAB_EXIT_INTERRUPTED)); then
    say "=== scenario $name: FAIL (interrupted outside its checks) in $elapsed s"
  else
    say "=== scenario $name: FAIL (status $status) in $elapsed s"
  fi
  return "$status"
}

# Runs a scenario; one that was interrupted outside its checks (lib.sh's status 3: a signal
# or a shell error, with every check so far passed) runs once more, and the second run's
# verdict counts. A failed check or a timeout fails at once.
run_scenario() {
  local name=$1 status=0 verdict=pass
  run_scenario_once "$name" || status=$?
  if ((status == LAB_EXIT_INTERRUPTED)); then
    say "=== scenario $name: running it once more (the interruption is in the transcript above)"
    status=0
    run_scenario_once "$name" || status=$?
    verdict=pass-on-retry
  fi
  ((status == 0)) || verdict=fail
  printf '%s\t%s\t%s\n' "$name" "$verdict" "$SCENARIO_ELAPSED" >>"$RESULTS/results.tsv"
  return "$status"
}

main() {
  local boot_s name failed=() passed=0
  boot_s=$(uptime_s)
  say "guest up: Linux $(uname -r), stage 2 reached at $boot_s s guest uptime, $(nproc) CPU(s)"
  prepare_guest || {
    echo "guest setup failed before any scenario ran (see transcript.txt)" >"$RESULTS/rc"
    return 1
  }
  say "modules loaded in $(awk -v s="$boot_s" -v e="$(uptime_s)" 'BEGIN { printf "%.1f", e - s }') s: ${LAB_MODULES[*]}"
  # shellcheck source=SCRIPTDIR/../scenarios/lib.sh
  (source "$LAB_DIR/scenarios/lib.sh" && topo_drawing) | tee -a "$LAB_TRANSCRIPT"
  for name in $LAB_SCENARIOS; do
    if run_scenario "$name"; then passed=$((passed + 1)); else failed+=("$name"); fi
  done
  say ""
  say "lab: ${passed} passed, ${#failed[@]} failed${failed[*]:+ (${failed[*]})}; guest uptime $(uptime_s) s"
  sync
  if ((${#failed[@]} == 0)); then echo 0 >"$RESULTS/rc"; else echo 1 >"$RESULTS/rc"; fi
}

main
