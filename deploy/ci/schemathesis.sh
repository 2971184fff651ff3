#!/usr/bin/env bash
# Fuzzes the admin API of a running tungate from its own OpenAPI document with schemathesis
# (PyPI, installed into a venv under target/): no 5xx, every response matching the
# documented schema, status code and content type. tungate runs as root inside a network
# namespace made here (removed on exit), with a state directory in a temporary folder.
# Usage (root): deploy/ci/schemathesis.sh [MAX_EXAMPLES]   (needs target/release/tungate)
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MAX_EXAMPLES=${1:-25}
BIN=$ROOT/target/release/tungate
VENV=$ROOT/target/schemathesis-venv
SCHEMATHESIS_VERSION=4.32.5

[ -x "$BIN" ] || { echo "build tungate first: cargo build --release -p tungate" >&2; exit 1; }
if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi

NS=tgst-$$-0
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
TOKEN=$(cat "$WORK/state/admin-token")

status=0
ip netns exec "$NS" "$VENV/bin/st" run http://127.0.0.1:9080/api/v1/openapi.yaml \
  --url http://127.0.0.1:9080 \
  --header "Authorization: Bearer $TOKEN" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --phases examples,coverage,fuzzing \
  --max-examples "$MAX_EXAMPLES" \
  --seed 1 \
  --generation-database none \
  --request-timeout 30 \
  --report-dir "$WORK/report" || status=$?
if ! kill -0 "$PID" 2>/dev/null; then
  echo "tungate died during the run:" >&2; cat "$WORK/stderr" >&2; exit 1
fi
if grep -E "panicked|ERROR" "$WORK/stderr" >&2; then
  echo "tungate logged errors during the run (above)" >&2; exit 1
fi
exit $status
