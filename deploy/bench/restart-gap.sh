#!/usr/bin/env bash
# How long a restart of `tungate run` with bound plugins keeps the gateway unready: from
# the SIGTERM of the running process to the new one's /readyz answering 200, with the
# compiled-module cache emptied before each start ("cold": every module compiled, as
# before the cache) and kept ("cached": the modules loaded from <state>/compiled).
# Needs root (a network namespace of its own, removed on exit) and a built tungate and
# example plugins (deploy/ci/test-all.sh or deploy/demo.sh build both).
#
# Usage: deploy/bench/restart-gap.sh [REPEATS] [TUNGATE] [PLUGIN_DIR]
# Prints one line per restart and the medians; results/restart-gap.md has a run.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPEATS=${1:-5}
TUNGATE=$(realpath "${2:-target/release/tungate}")
PLUGINS=$(realpath "${3:-target/wasm-plugins/wasm32-unknown-unknown/plugin}")
[ "$(id -u)" = 0 ] || { echo "restart-gap.sh: run as root (network namespaces)" >&2; exit 1; }

NS=tgbench-$$-gw
WORK=$(mktemp -d)
PID=
cleanup() {
  [ -z "$PID" ] || kill -9 "$PID" 2>/dev/null || true
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add gw0 type veth peer name rs0
ip -n "$NS" addr add 10.99.0.1/24 dev gw0
ip -n "$NS" link set gw0 up
ip -n "$NS" link set rs0 up

# One VIP with the four example plugins bound (all passing), one worker per core.
ARGS=()
for p in cidr_filter rate_limit port_filter accounting; do
  cp "$PLUGINS/$p.wasm" "$WORK/${p//_/-}.wasm"
  ARGS+=(--plugin "$WORK/${p//_/-}.wasm")
done
cat >"$WORK/tungate.toml" <<'TOML'
[gateway]
address = "10.99.0.1"
decap = "userspace"
workers = 2

[[peers]]
name = "rs1"
address = "10.99.0.2"
vips = ["198.51.100.80"]

[[vips]]
address = "198.51.100.80"
[[vips.plugins]]
plugin = "cidr-filter"
config = { deny = ["203.0.113.0/24"] }
[[vips.plugins]]
plugin = "port-filter"
config = { allow = [{ protocol = "tcp", ports = [80, 443] }, { protocol = "udp", ports = [53] }] }
[[vips.plugins]]
plugin = "rate-limit"
config = { unit = "packets", rate = 100000 }
[[vips.plugins]]
plugin = "accounting"
config = { prefixes = ["192.0.2.0/24"] }
TOML

now_ms() { echo $(($(date +%s%N) / 1000000)); }
start() { # the first start stores the modules (--plugin); later ones find them stored
  ip netns exec "$NS" "$TUNGATE" run --config "$WORK/tungate.toml" --state-dir "$WORK/state" \
    "$@" >/dev/null 2>>"$WORK/log" &
  PID=$!
}
wait_ready() {
  ip netns exec "$NS" sh -c 'until curl -fs -o /dev/null http://127.0.0.1:9080/readyz; do sleep 0.01; done'
}
stop() {
  kill -TERM "$PID"
  wait "$PID" || true
  PID=
}

start "${ARGS[@]}"
wait_ready
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
cold=() cached=()
for ((i = 1; i <= REPEATS; i++)); do
  for mode in cold cached; do
    t0=$(now_ms)
    stop
    [ "$mode" = cold ] && rm -rf "$WORK/state/compiled"
    start
    wait_ready
    gap=$(($(now_ms) - t0))
    echo "restart $i $mode: ${gap} ms from SIGTERM to /readyz 200"
    if [ "$mode" = cold ]; then cold+=("$gap"); else cached+=("$gap"); fi
  done
done
stop
echo "median of $REPEATS: cold $(printf '%s\n' "${cold[@]}" | median) ms, cached $(printf '%s\n' "${cached[@]}" | median) ms"
grep -h "plugin modules:" "$WORK/log" | tail -2 | sed 's/^/  last log: /'
