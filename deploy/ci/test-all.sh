#!/usr/bin/env bash
# Runs every test of tungate, installing what it needs first. Must run as root (the netns
# tests create network namespaces). Usage: deploy/ci/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

stage() { printf '\n==== %s (%s)\n' "$1" "$(date +%T)"; }

stage "install dependencies"
deploy/ci/install-deps.sh

stage "web UI: npm ci, format, typecheck, unit tests, build, browser run with no API"
# Before the Rust stages: tungate embeds web/dist at build time.
(
  cd web
  npm ci --no-audit --no-fund --prefer-offline
  npm run format:check
  npm run typecheck
  npm test
  npm run build
  npm run e2e:no-api
)

stage "format and lints"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings

stage "example Wasm plugins (wasm32-unknown-unknown, plugin profile)"
# The same command and target directory as appliance/crates/test-support/src/plugins.rs, so the
# integration tests find the modules built and only check that they are up to date.
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/wasm-plugins cargo build --locked --profile plugin \
  --target wasm32-unknown-unknown -p cidr-filter -p rate-limit -p port-filter -p accounting \
  -p plugin-template
ls -l target/wasm-plugins/wasm32-unknown-unknown/plugin/*.wasm
# Lint the wasm-only code (guest runtime, export macro) as built for wasm32.
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/wasm-plugins cargo clippy --locked --profile plugin \
  --target wasm32-unknown-unknown -p tungate-plugin-sdk -p cidr-filter -p rate-limit \
  -p port-filter -p accounting -p plugin-template -- -D warnings

stage "unit and netns integration tests"
cargo test --release --workspace --locked

stage "systemd unit: systemd-analyze verify (any complaint fails), its syscall filter vs a running gateway"
deploy/systemd/verify.sh target/release/tungate
deploy/systemd/syscalls.sh target/release/tungate

stage "appliance image: package the CI binary, run it from the exported root filesystem"
# The prebuilt target of deploy/image/Containerfile on a Debian 12 base made with debootstrap
# (no container registry is needed); the full multi-stage build is `deploy/image/build.sh`.
deploy/image/build.sh --prebuilt

stage "admin API fuzzed from its OpenAPI document (schemathesis, bounded examples)"
# Against the tungate binary the tests above built; no 5xx, responses match the contract.
deploy/ci/schemathesis.sh 50

stage "web UI in chromium against a live tungate with real IPIP traffic (its real API)"
# live-tungate.sh --traffic: an RS namespace sends IPIP replies for two client prefixes
# (target/release/examples/ipip_source: `cargo test` builds that example only as a test
# harness, so it is built here); the run uploads cidr-filter.wasm (the plugin stage's
# build), denies one prefix and watches it drop.
cargo build --release --locked -p tungate --example ipip_source
SHOTS=$(mktemp -d)
deploy/ci/live-tungate.sh --traffic sh -c "cd web && node e2e/.build/run.js --base-url \"\$TUNGATE_URL\" \
  --token-file \"\$TUNGATE_TOKEN_FILE\" --screenshots $SHOTS"
rm -rf "$SHOTS"

stage "fuzzing: a short run of every target (deploy/ci/fuzz.sh)"
deploy/ci/fuzz.sh

stage "benchmark, quick mode (no thresholds: it only has to run through)"
# `cargo test` built the example above; the full run is deploy/bench/run.sh (BENCHMARKS.md).
target/release/examples/gateway_bench run --quick --out /tmp/tungate-bench-quick.md \
  --samples /tmp/tungate-bench-quick.csv
grep -q "Where the targets stand" /tmp/tungate-bench-quick.md

stage "data path: no leftover test namespaces"
# The netns tests remove their namespaces in Drop guards; a leftover one is a bug.
# (the demo's are tgdemo-PID-client/rs/gw)
if ip netns list | grep -E '^tg[a-z]+-[0-9]+-([0-9]+|client|rs|gw)' ; then
  echo "leftover test namespaces (listed above)" >&2
  exit 1
fi

stage "QEMU lab: the LVS-TUN topology on a Debian kernel with ipip and IPVS"
deploy/lab/run.sh

echo
echo "all tests passed"
