#!/usr/bin/env bash
# Runs a command next to a live tungate: makes a network namespace (removed on exit), starts
# target/release/tungate in it with a small configuration and a temporary state directory,
# waits until /readyz answers, then runs the command inside the namespace with
# TUNGATE_URL and TUNGATE_TOKEN_FILE set. Fails if tungate dies or logs an error meanwhile.
# Usage (root): deploy/ci/live-tungate.sh COMMAND [ARGS...]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$PWD/target/release/tungate
[ -x "$BIN" ] || { echo "build tungate first: cargo build --release -p tungate" >&2; exit 1; }

NS=tglv-$$-0
WORK=$(mktemp -d)
PID=
cleanup() {
  if [ -n "$PID" ] && kill -0 "$PID" 2>/dev/null; then
    kill -TERM "$PID"; wait "$PID" || true
  fi
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add g0 type veth peer name r0
ip -n "$NS" link set g0 up
ip -n "$NS" link set r0 up
ip -n "$NS" addr add 10.200.0.1/24 dev g0
cat > "$WORK/tungate.toml" <<TOML
[gateway]
address = "10.200.0.1"
[[peers]]
name = "rs1"
address = "10.200.0.2"
vips = ["192.0.2.10"]
TOML
ip netns exec "$NS" "$BIN" run --config "$WORK/tungate.toml" --state-dir "$WORK/state" \
  >"$WORK/stdout" 2>"$WORK/stderr" &
PID=$!
for _ in $(seq 100); do
  if ip netns exec "$NS" curl -fsS http://127.0.0.1:9080/readyz >/dev/null 2>&1; then break; fi
  kill -0 "$PID" 2>/dev/null || { cat "$WORK/stderr" >&2; exit 1; }
  sleep 0.2
done

status=0
ip netns exec "$NS" env TUNGATE_URL=http://127.0.0.1:9080 \
  TUNGATE_TOKEN_FILE="$WORK/state/admin-token" "$@" || status=$?
if ! kill -0 "$PID" 2>/dev/null; then
  echo "tungate died during the run:" >&2; cat "$WORK/stderr" >&2; exit 1
fi
if grep -E "panicked|ERROR" "$WORK/stderr" >&2; then
  echo "tungate logged errors during the run (above)" >&2; exit 1
fi
exit $status
