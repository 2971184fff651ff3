#!/usr/bin/env bash
# The newcomer's first command on a fresh Debian 12 host, as root: installs what tungate
# needs, builds the web UI, the binary and the example plugins, then runs `tungate demo`
# (a client, a real server and the gateway in network namespaces, with live traffic).
# Arguments go to `tungate demo` (e.g. --listen 127.0.0.1:8080, --rate 50, --duration 60).
# Usage: ./deploy/demo.sh [DEMO FLAGS...]
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\n==> %s (%s)\n' "$1" "$(date +%T)"; }

[ "$(id -u)" = 0 ] || { echo "run as root: the demo makes network namespaces (sudo ./deploy/demo.sh)" >&2; exit 1; }

say "installing what the build needs (deploy/ci/install-deps.sh --build-only; quick when done before)"
deploy/ci/install-deps.sh --build-only

say "building the web UI (npm ci, vite build)"
(cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)

say "building tungate (release; the first build takes several minutes)"
cargo build --release --locked -p tungate

say "building the example plugins (wasm32-unknown-unknown)"
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/wasm-plugins cargo build --locked --profile plugin \
  --target wasm32-unknown-unknown -p accounting -p cidr-filter -p port-filter -p rate-limit

say "starting the demo (Ctrl-C stops it and removes everything it made)"
exec target/release/tungate demo \
  --plugin-dir target/wasm-plugins/wasm32-unknown-unknown/plugin "$@"
