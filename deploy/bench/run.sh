#!/usr/bin/env bash
# tungate's forwarding benchmark against the kernel; needs root (network namespaces,
# AF_PACKET, nftables) and 2 cores. Writes BENCHMARKS.md and deploy/bench/results/samples.csv
# unless told otherwise. See deploy/bench/README.md.
#
# Usage: deploy/bench/run.sh [--quick] [--repeats N] [--seconds S] [--out FILE] [--samples FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."

# tungate embeds web/dist and its build never runs npm: make the bundle when there is none
# (after CI or deploy/demo.sh it is there, and rebuilding it would rebuild tungate).
[ -d web/dist ] || (cd web && { [ -d node_modules ] || npm ci --no-audit --no-fund; } && npm run build)
# The same commands (and target directories) as CI, so nothing is built twice.
cargo build --release --locked -p tungate --example gateway_bench
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/wasm-plugins cargo build --locked --profile plugin \
  --target wasm32-unknown-unknown -p cidr-filter -p rate-limit -p port-filter -p accounting

exec target/release/examples/gateway_bench run "$@"
