#!/usr/bin/env bash
# Installs everything tungate needs to build and test on a fresh Debian 12 host (as root).
# Safe to run again: each step is skipped when its result is already there.
# Usage: deploy/ci/install-deps.sh [--build-only]
#   --build-only: only what building tungate and running `tungate demo` need (deploy/demo.sh);
#   no browser, image, perf or fuzzing tools.
set -euo pipefail
build_only=false
[ "${1:-}" = --build-only ] && build_only=true

APT_PACKAGES=(
  build-essential pkg-config      # C toolchain for -sys crates
  libnftnl-dev libmnl-dev         # nftables over netlink (nftnl, mnl crates)
  iproute2 iputils-ping           # test topologies and the demo's namespaces (tungate's own networking never runs `ip`)
  protobuf-compiler               # protoc: the etcd client (etcd-client, tonic) compiles etcd's gRPC protocol at build time
)
$build_only || APT_PACKAGES+=(
  nftables                        # tests read tungate's nftables table back (the product never runs `nft`)
  chromium                        # headless browser for the web UI tests (web/e2e)
  curl python3-venv               # the schemathesis stage: readiness probe, venv for the PyPI package
  systemd strace                  # the unit: systemd-analyze verify, its syscall filter vs a traced run
  podman debootstrap              # the appliance image (deploy/image/build.sh): build, local Debian base
  tshark                          # the capture tests open the pcapng files tungate writes
  linux-perf                      # the benchmark attributes the gateway core's time with perf samples
  shellcheck                      # the dependency-policy stage lints every shell script under deploy/ and .ci/
  openssl ca-certificates         # the admin TLS test makes a self-signed certificate; the system CA bundle it is checked against
  etcd-server etcd-client         # the fleet tests run a real etcd member (tungate run --fleet --etcd) and read it with etcdctl
  clang llvm libbpf-dev           # rebuilds the committed XDP object and checks it matches its source (appliance/crates/xdp/bpf/build.sh --check)
  bird2                           # the fleet tests run BIRD in namespaces (router with ECMP, one per gateway)
  prometheus                      # the fleet tests scrape the gateways with a real Prometheus (recording rules, promtool)
)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo ">> apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian enables bird.service and prometheus.service on install: the tests run their own BIRD
# and Prometheus in namespaces, and a CI host must not run a routing daemon or scraper of its own.
if ! $build_only && command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
  systemctl disable --now bird.service prometheus.service 2>/dev/null || true
fi

# The toolchain, its components and the wasm32 target come from rust-toolchain.toml.
cd "$(dirname "$0")/../.."
rustup show active-toolchain >/dev/null 2>&1 || rustup toolchain install
rustup target list --installed | grep -q wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown

# cargo_tool [+TOOLCHAIN] CRATE VERSION: `cargo install --locked` of a cargo subcommand, skipped
# when `cargo SUBCOMMAND --version` already reports that version.
cargo_tool() {
  local toolchain=()
  if [[ $1 == +* ]]; then toolchain=("$1"); shift; fi
  local crate=$1 version=$2
  if cargo "${toolchain[@]}" "${crate#cargo-}" --version 2>/dev/null | grep -qE "(^| )$version\$"; then
    return
  fi
  echo ">> cargo ${toolchain[*]} install --locked $crate --version $version"
  cargo "${toolchain[@]}" install --locked "$crate" --version "$version"
}

$build_only || {
# Fuzzing (deploy/ci/fuzz.sh): cargo-fuzz from crates.io, run with the nightly toolchain that
# this machine kind ships (rustup cannot fetch toolchains here).
rustup toolchain list | grep -q '^nightly' \
  || { echo "the fuzz stage needs the nightly toolchain (rustup toolchain list shows none)" >&2; exit 1; }
cargo_tool +nightly cargo-fuzz 0.13.2
# The dependency policy (deny.toml: licenses, bans, sources) and unused dependencies; both
# build with the pinned toolchain (cargo-deny 0.20 needs Rust >= 1.88).
cargo_tool cargo-deny 0.20.2
cargo_tool cargo-machete 0.9.2
}

# The web UI builds with the machine's Node.js (Vite 8 needs Node >= 20.19); npm ci installs
# its packages from web/package-lock.json in the web stage of test-all.sh.
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' \
  || { echo "Node.js >= 20.19 is needed for the web UI (found $(node --version 2>/dev/null || echo none))" >&2; exit 1; }
