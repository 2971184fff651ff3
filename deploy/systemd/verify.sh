#!/usr/bin/env bash
# Checks deploy/systemd/tungate.service with `systemd-analyze verify`, which exits 0 even
# for unknown keys or unparsable values: any output at all fails here. ExecStart's binary
# must exist for verify, so a copy of the unit points at BINARY (default: the release
# build). Usage: deploy/systemd/verify.sh [BINARY]
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${1:-target/release/tungate}")
[ -x "$BIN" ] || { echo "no executable tungate at $BIN: build it first" >&2; exit 1; }
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
sed "s#/usr/local/bin/tungate#$BIN#" deploy/systemd/tungate.service > "$WORK/tungate.service"
out=$(systemd-analyze verify "$WORK/tungate.service" 2>&1) || { echo "$out" >&2; exit 1; }
if [ -n "$out" ]; then
  echo "systemd-analyze verify complained about tungate.service:" >&2
  echo "$out" >&2
  exit 1
fi
echo "tungate.service: systemd-analyze verify found nothing to complain about"
