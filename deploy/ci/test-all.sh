#!/usr/bin/env bash
# Runs every test of tungate, installing what it needs first. Must run as root (the netns
# tests create network namespaces). Usage: deploy/ci/test-all.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD

stage() { printf '\n==== %s (%s)\n' "$1" "$(date +%T)"; }

stage "install dependencies"
deploy/ci/install-deps.sh

stage "format and lints"
cargo fmt --all --check
cargo clippy --release --workspace --all-targets --locked -- -D warnings

stage "unit and netns integration tests"
cargo test --release --workspace --locked

stage "QEMU lab: the LVS-TUN topology on a Debian kernel with ipip and IPVS"
deploy/lab/run.sh

echo
echo "all tests passed"
