#!/usr/bin/env bash
# Runs a command next to a live tungate: makes a network namespace (removed on exit), starts
# target/release/tungate in it with a small configuration and a temporary state directory,
# waits until /readyz answers, then runs the command inside the namespace with
# TUNGATE_URL and TUNGATE_TOKEN_FILE set. Fails if tungate dies or logs an error meanwhile.
#
# With --traffic, the gateway namespace gets neighbours: an RS namespace that sends real
# IPIP-encapsulated replies (outer RIP->GIP, inner VIP->client, built and paced by
# target/release/examples/ipip_source over AF_PACKET) for two client prefixes into the
# gateway's ingress g0, and a client namespace behind g1 where tungate forwards them
# (nftables counters there count what arrives, per prefix). The command then also gets
# TUNGATE_TRAFFIC_VIP, TUNGATE_TRAFFIC_PREFIXES (the two client prefixes, space separated),
# TUNGATE_CLIENT_NS and TUNGATE_CLIENT_COUNTERS (the nftables table with one named counter
# per prefix: prefix_a, prefix_b).
# Either way the gateway's g0 also holds an IPv6 address that the configuration does not use
# (TUNGATE_GIP6): a test may make it gateway.address6 (which must be an address of the host).
# Usage (root): deploy/ci/live-tungate.sh [--traffic] [--rate PPS] COMMAND [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$PWD/target/release/tungate
SOURCE=$PWD/target/release/examples/ipip_source
TRAFFIC=0
RATE=600
while (($#)); do
  case "$1" in
    --traffic) TRAFFIC=1; shift ;;
    --rate) RATE=$2; shift 2 ;;
    *) break ;;
  esac
done
(($#)) || { echo "usage: $0 [--traffic] [--rate PPS] COMMAND [ARGS...]" >&2; exit 2; }
[ -x "$BIN" ] || { echo "build tungate first: cargo build --release -p tungate" >&2; exit 1; }
if ((TRAFFIC)) && [ ! -x "$SOURCE" ]; then
  echo "build the traffic source first: cargo build --release -p tungate --example ipip_source" >&2
  exit 1
fi

NS=tglv-$$-0
RS_NS=tglv-$$-rs
CLIENT_NS=tglv-$$-cl
GIP=10.200.0.1
GIP6=2001:db8:200::1
RIP=10.200.0.2
VIP=192.0.2.10
PREFIX_A=198.51.100.0/24 CLIENT_A=198.51.100.7 GW_A=198.51.100.1
PREFIX_B=203.0.113.0/24 CLIENT_B=203.0.113.7 GW_B=203.0.113.1
WORK=$(mktemp -d)
PID=
SOURCE_PID=
# Stops a process: SIGTERM, up to 10 s to exit, then SIGKILL. (tungate and ipip_source are
# started with `ip netns exec`, which execs them: their $! is their own pid.)
# shellcheck disable=SC2317 # reached from cleanup (see there)
stop_pid() {
  local p=$1 _
  kill -0 "$p" 2>/dev/null || return 0
  kill -TERM "$p" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$p" 2>/dev/null || break
    sleep 0.2
  done
  if kill -0 "$p" 2>/dev/null; then
    echo "pid $p did not stop within 10 s of SIGTERM; killing it" >&2
    kill -KILL "$p" 2>/dev/null || true
  fi
  wait "$p" 2>/dev/null || true # (reaps our own children; others are not ours to wait for)
}
# Stops what this script started, then anything else still running in its namespaces (e.g.
# left behind by the command): those are listed, stopped, and fail the run.
# shellcheck disable=SC2317 # reached through the EXIT trap; shellcheck 0.9 (Debian 12)
# takes the script's final `exit` for the end of every path (fixed in 0.10)
cleanup() {
  local status=$? p ns left
  for p in $SOURCE_PID $PID; do stop_pid "$p"; done
  for ns in "$NS" "$RS_NS" "$CLIENT_NS"; do
    mapfile -t left < <(ip netns pids "$ns" 2>/dev/null || true)
    if ((${#left[@]})); then
      echo "processes left running in namespace $ns:" >&2
      ps -o pid=,args= -p "$(IFS=,; echo "${left[*]}")" >&2 || true
      for p in "${left[@]}"; do stop_pid "$p"; done
      status=1
    fi
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
if ((TRAFFIC)); then
  # rs (r0: RIP) --veth-- gw (g0: GIP) | gw (g1: both client gateways) --veth-- client (c0)
  ip netns add "$RS_NS"
  ip netns add "$CLIENT_NS"
  ip -n "$NS" link add g0 address 02:00:00:00:01:01 type veth peer name r0 netns "$RS_NS"
  ip -n "$NS" link add g1 address 02:00:00:00:02:01 type veth peer name c0 netns "$CLIENT_NS"
  ip -n "$NS" link set g1 up
  ip -n "$NS" addr add "$GW_A/24" dev g1
  ip -n "$NS" addr add "$GW_B/24" dev g1
  ip -n "$RS_NS" link set r0 up
  ip -n "$RS_NS" addr add "$RIP/24" dev r0
  ip -n "$CLIENT_NS" link set lo up
  ip -n "$CLIENT_NS" link set c0 up
  ip -n "$CLIENT_NS" addr add "$CLIENT_A/24" dev c0
  ip -n "$CLIENT_NS" addr add "$CLIENT_B/24" dev c0
  ip netns exec "$CLIENT_NS" nft -f - <<NFT
table inet tglive {
  counter prefix_a {}
  counter prefix_b {}
  chain arrive {
    type filter hook prerouting priority 0; policy accept;
    ip saddr $VIP ip daddr $PREFIX_A counter name prefix_a
    ip saddr $VIP ip daddr $PREFIX_B counter name prefix_b
  }
}
NFT
else
  ip -n "$NS" link add g0 type veth peer name r0
  ip -n "$NS" link set r0 up
fi
ip -n "$NS" link set g0 up
ip -n "$NS" addr add "$GIP/24" dev g0
ip -n "$NS" addr add "$GIP6/64" dev g0 nodad
cat > "$WORK/tungate.toml" <<TOML
[gateway]
address = "$GIP"
[[peers]]
name = "rs1"
address = "$RIP"
vips = ["$VIP"]
# Never sends: the browser test sees it shown silent.
[[peers]]
name = "quiet"
address = "10.200.0.9"
silent_after = "1s"
TOML
ip netns exec "$NS" "$BIN" run --config "$WORK/tungate.toml" --state-dir "$WORK/state" \
  >"$WORK/stdout" 2>"$WORK/stderr" &
PID=$!
for _ in $(seq 100); do
  if ip netns exec "$NS" curl -fsS http://127.0.0.1:9080/readyz >/dev/null 2>&1; then break; fi
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/stderr" >&2; exit 1; }
  sleep 0.2
done

traffic_env=()
if ((TRAFFIC)); then
  ip netns exec "$RS_NS" "$SOURCE" --interface r0 --gateway-mac 02:00:00:00:01:01 \
    --rip "$RIP" --gip "$GIP" --vip "$VIP" --client "$CLIENT_A" --client "$CLIENT_B" \
    --rate "$RATE" 2>"$WORK/source.log" &
  SOURCE_PID=$!
  traffic_env=(TUNGATE_TRAFFIC_VIP="$VIP" TUNGATE_TRAFFIC_PREFIXES="$PREFIX_A $PREFIX_B"
    TUNGATE_CLIENT_NS="$CLIENT_NS" TUNGATE_CLIENT_COUNTERS="inet tglive")
fi

status=0
ip netns exec "$NS" env TUNGATE_URL=http://127.0.0.1:9080 TUNGATE_GIP6="$GIP6" \
  TUNGATE_TOKEN_FILE="$WORK/state/admin-token" "${traffic_env[@]}" "$@" || status=$?
if ((TRAFFIC)); then
  if ! kill -0 "$SOURCE_PID" 2>/dev/null; then
    echo "the traffic source died during the run:" >&2; cat "$WORK/source.log" >&2; exit 1
  fi
  echo "client side, what arrived from $VIP:"
  ip netns exec "$CLIENT_NS" nft list counters table inet tglive | grep -E 'counter|packets'
fi
if ! kill -0 "$PID" 2>/dev/null; then
  echo "tungate died during the run:" >&2; cat "$WORK/stderr" >&2; exit 1
fi
if grep -E "panicked|ERROR" "$WORK/stderr" >&2; then
  echo "tungate logged errors during the run (above)" >&2; exit 1
fi
exit $status
