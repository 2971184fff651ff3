#!/usr/bin/env bash
# A short fuzzing run of every tungate fuzz target (appliance/fuzz), failing on the first
# crash. Each target starts from its committed seeds (appliance/fuzz/seeds/TARGET) with a
# fresh working corpus, for FUZZ_SECONDS seconds (default 15). A crash leaves its input in
# appliance/fuzz/artifacts/TARGET/; reproduce it with
#   cd appliance && cargo +nightly fuzz run TARGET fuzz/artifacts/TARGET/crash-...
# and turn it into a unit test next to the code it broke.
# Needs the nightly toolchain and cargo-fuzz (deploy/ci/install-deps.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/../../appliance"
seconds=${FUZZ_SECONDS:-15}
# One build for all targets: release with 16 codegen units (a much shorter build than the
# default single unit), no sanitizer (tungate's own code is safe Rust; overflow checks are
# on in the fuzz profile), and without cfg(fuzzing), so wasmtime is the production build.
# The build lives outside the checkout (FUZZ_TARGET_DIR), like cargo's registry cache: a cold
# build compiles wasmtime with coverage instrumentation (about 15 CPU-minutes); later runs on
# the same machine, from any checkout, rebuild only tungate and the targets.
target_dir=${FUZZ_TARGET_DIR:-/var/tmp/tungate-fuzz-target}
flags=(-O -s none --no-cfg-fuzzing --codegen-units 16 --target-dir "$target_dir")
cargo +nightly fuzz build "${flags[@]}"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for target in $(cargo +nightly fuzz list); do
  mkdir -p "$work/$target"
  echo ">> fuzz $target for ${seconds}s"
  cargo +nightly fuzz run "${flags[@]}" "$target" "$work/$target" "fuzz/seeds/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=4096 -print_final_stats=1 \
    2> "$work/$target.log" || { tail -n 60 "$work/$target.log" >&2; exit 1; }
  grep -E '^(stat::number_of_executed_units|stat::peak_rss_mb|#[0-9]+ +DONE)' "$work/$target.log" || true
  echo "   corpus: $(find "$work/$target" -mindepth 1 -maxdepth 1 ! -name '.*' | wc -l) inputs"
done
