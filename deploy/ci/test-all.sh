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

stage "unit and netns integration tests"
cargo test --release --workspace --locked

stage "data path: no leftover test namespaces"
# The netns tests remove their namespaces in Drop guards; a leftover one is a bug.
if ip netns list | grep -E '^tg(rs|gw|cl|cf|pp)-' ; then
  echo "leftover test namespaces (listed above)" >&2
  exit 1
fi

echo
echo "all tests passed"
