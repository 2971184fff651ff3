#!/usr/bin/env bash
# tungate's forwarding benchmark against the kernel; needs root (network namespaces,
# AF_PACKET, nftables) and 2 cores. Writes BENCHMARKS.md and deploy/bench/results/samples.csv
# unless told otherwise. See deploy/bench/README.md.
#
# Usage: deploy/bench/run.sh [--quick] [--repeats N] [--seconds S] [--out FILE] [--samples FILE]
set -euo pipefail
cd "$(dirname "$0")/../.."

# The same commands (and target directories) as CI, so nothing is built twice.
cargo build --release --locked -p tungate --example gateway_bench
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/wasm-plugins cargo build --locked --profile plugin \
  --target wasm32-unknown-unknown -p cidr-filter -p rate-limit -p port-filter -p accounting

exec target/release/examples/gateway_bench run "$@"
