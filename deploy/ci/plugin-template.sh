#!/usr/bin/env bash
# The plugin template as a plugin author starts from it: copied out of this repository into
# a temporary folder, its SDK dependency pointed at this checkout's plugin-sdk (the one edit
# plugin-sdk/GUIDE.md asks for), then its native unit tests and its Wasm build with its own
# `plugin` profile, offline and with its own Cargo.lock. Given a tungate binary, the module
# must then pass `tungate plugin check`.
# Usage: deploy/ci/plugin-template.sh [TUNGATE_BINARY]
# The build shares target/wasm-template (CARGO_TARGET_DIR) between runs, so a second run
# only recompiles the copied crate itself.
set -euo pipefail
cd "$(dirname "$0")/../.."
REPO=$PWD
TUNGATE=${1:-}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cp -r plugins/template "$work/min-ttl"
cd "$work/min-ttl"
rm -rf target
# The guide's steps: rename the package, point the SDK at the checkout.
sed -i 's/^name = "plugin-template"/name = "min-ttl"/' Cargo.toml
sed -i "s|path = \"../../plugin-sdk\"|path = \"$REPO/plugin-sdk\"|" Cargo.toml
grep -q "path = \"$REPO/plugin-sdk\"" Cargo.toml || {
  echo "plugin-template.sh: the template's tungate-plugin-sdk path was not found to rewrite" >&2
  exit 1
}
# The package name is also in the lock file; cargo would rewrite it (refused by --locked).
sed -i 's/^name = "plugin-template"/name = "min-ttl"/' Cargo.lock

export CARGO_TARGET_DIR=$REPO/target/wasm-template CARGO_INCREMENTAL=0
cargo test --offline --locked --quiet
cargo build --offline --locked --profile plugin --target wasm32-unknown-unknown
module=$CARGO_TARGET_DIR/wasm32-unknown-unknown/plugin/min_ttl.wasm
ls -l "$module"
if [ -n "$TUNGATE" ]; then
  "$TUNGATE" plugin check "$module"
fi
