#!/usr/bin/env bash
# Runs every test of tungate, installing what it needs first. Must run as root (the netns
# tests create network namespaces). Usage: deploy/ci/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

# Every stage stops what it starts: after each one, a test network namespace or a process
# of a program the tests run that is still there fails CI, listed (check_leftovers).
# Test namespaces: tg<kind>-<pid>-<n|role> (tests' unique_name, tgdemo-PID-gw, tglv-PID-cl,
# tgimg-PID-0) and tg<tag><pid>n<n> (the netns tests' Netns).
TEST_NETNS='^tg[a-z]+-[0-9]+-[a-z0-9]+|^tg[a-z_]*[0-9]+n[0-9]+'
# Process names (pgrep -x: the whole name, so neither this script nor `cargo test`'s harness
# binaries match). The kernel keeps 15 characters of a name: qemu-system-x86_64 is
# qemu-system-x86 there.
TEST_PROGRAMS=(tungate etcd bird gobgpd exabgp zebra bgpd prometheus qemu-system-x86)
test_netns() { ip netns list | awk '{print $1}' | grep -E "$TEST_NETNS" | sort || true; }
test_pids() { for p in "${TEST_PROGRAMS[@]}"; do pgrep -x "$p" || true; done | sort; }
# What already ran before this run started (another checkout's test, an installed
# tungate.service) is not this run's leftover.
NETNS_BEFORE=$(test_netns)
PIDS_BEFORE=$(test_pids)
new_netns() { comm -13 <(echo "$NETNS_BEFORE") <(test_netns); }
new_pids() { comm -13 <(echo "$PIDS_BEFORE") <(test_pids); }
check_leftovers() { # STAGE
  local netns pids deadline=$((SECONDS + 5)) # a process or namespace may take a moment to go
  while :; do
    netns=$(new_netns)
    pids=$(new_pids)
    [ -z "$netns$pids" ] && return 0
    ((SECONDS < deadline)) || break
    sleep 0.2
  done
  echo "left behind by: $1" >&2
  [ -z "$netns" ] || { echo "network namespaces:"; echo "$netns"; } >&2
  [ -z "$pids" ] || { echo "processes:"; ps -o pid=,ppid=,etime=,args= -p "$(paste -sd, <<<"$pids")"; } >&2
  exit 1
}

CURRENT_STAGE=
stage() {
  [ -z "$CURRENT_STAGE" ] || check_leftovers "$CURRENT_STAGE"
  CURRENT_STAGE=$1
  printf '\n==== %s (%s)\n' "$1" "$(date +%T)"
}

stage "install dependencies"
deploy/ci/install-deps.sh

stage "web UI: npm ci, API types, format, typecheck, unit tests, build, browser run with no API"
# Before the Rust stages: tungate embeds web/dist at build time.
(
  cd web
  npm ci --no-audit --no-fund --prefer-offline
  npm run api:check # src/api/schema.gen.ts is what appliance/src/admin/openapi.yaml generates
  npm run format:check
  npm run typecheck
  npm test
  npm run build
  npm run e2e:no-api
)

stage "format and lints"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings

stage "dependency policy (cargo-deny, cargo-machete) and shell scripts (shellcheck)"
# deny.toml: licenses, banned crates and duplicate versions, crates.io as the only source.
# Not `advisories`: the RustSec database is on github.com, which CI cannot reach (deny.toml).
cargo deny --all-features --locked check bans licenses sources
# Unused dependencies, by reading the sources (no build). From the root it walks every
# Cargo.toml outside .gitignore'd folders: the workspace and, deliberately, appliance/fuzz
# (its own workspace, whose dependencies should be used too). A dependency used only in a
# way it cannot see goes in that crate's [package.metadata.cargo-machete] ignored, with why.
cargo machete
# Every tracked shell script under deploy/ and .ci/ (a .sh name or an sh/bash/dash shebang),
# following what they source (-x); tracked only, so that caches a run leaves there (the
# lab's extracted kernel package ships scripts of its own) are not checked.
# shellcheck disable=SC2016 # $f and $1 belong to the inner sh script
mapfile -t scripts < <(git ls-files -z deploy .ci | xargs -0 sh -c 'for f; do
  case $f in *.sh) echo "$f" ;; *) head -n 1 "$f" | grep -qE "^#!.*[/ ](ba|da)?sh( |\$)" && echo "$f" ;; esac
done' sh | sort)
echo "shellcheck: ${#scripts[@]} scripts"
shellcheck -x "${scripts[@]}"

stage "XDP program: the committed object is what its C source builds to (clang -target bpf, ~2 s)"
appliance/crates/xdp/bpf/build.sh --check

stage "example Wasm plugins (wasm32-unknown-unknown, plugin profile)"
# The same command and target directory as appliance/crates/test-support/src/plugins.rs, so the
# integration tests find the modules built and only check that they are up to date.
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/wasm-plugins cargo build --locked --profile plugin \
  --target wasm32-unknown-unknown -p cidr-filter -p rate-limit -p port-filter -p accounting
ls -l target/wasm-plugins/wasm32-unknown-unknown/plugin/*.wasm
# Lint the wasm-only code (guest runtime, export macro) as built for wasm32.
CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/wasm-plugins cargo clippy --locked --profile plugin \
  --target wasm32-unknown-unknown -p tungate-plugin-sdk -p cidr-filter -p rate-limit \
  -p port-filter -p accounting -- -D warnings
# The plugin template stands alone (its own workspace, profile, toolchain, lock file): copied
# to a temporary folder as a plugin author would, its tests run and it builds for wasm32 with
# its `plugin` profile, offline (about 40 s cold, into target/wasm-template). The integration
# test the_template_copied_out_of_the_repository_builds_alone_and_passes_plugin_check runs
# the same script again with the tungate binary the tests build, for `tungate plugin check`
# (then only the copied crate recompiles).
deploy/ci/plugin-template.sh
(
  cd plugins/template
  cargo fmt --check
  CARGO_TARGET_DIR=../../target/wasm-template cargo clippy --offline --locked --profile plugin \
    --target wasm32-unknown-unknown -- -D warnings
)

stage "unit and netns integration tests"
# fleet_bgp also runs web/e2e's fleet step in chromium against a real fleet: it uses the
# web stage's web/dist (embedded) and e2e/.build (adds ~2 s).
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

stage "data path: no leftover test namespaces or processes"
# The netns tests remove their namespaces in Drop guards and stop what they start; a
# leftover is a bug. (stage() checks after every stage; this states it for all of them.)
check_leftovers "every stage above"

stage "QEMU lab: the LVS-TUN topology on a Debian kernel with ipip and IPVS"
deploy/lab/run.sh
check_leftovers "$CURRENT_STAGE"

echo
echo "all tests passed"
