#!/usr/bin/env bash
# Fuzzes the admin API of a live tungate (deploy/ci/live-tungate.sh) from its own OpenAPI
# document with schemathesis (PyPI, installed into a venv under target/): no 5xx, and every
# response matches the documented status codes, content types and schemas. The stateful phase
# follows the contract's links (PUT a resource, then GET or DELETE it by what the answer names).
# Usage (root): deploy/ci/schemathesis.sh [MAX_EXAMPLES]   (needs target/release/tungate)
set -euo pipefail
cd "$(dirname "$0")/../.."
MAX_EXAMPLES=${1:-25}
VENV=$PWD/target/schemathesis-venv
SCHEMATHESIS_VERSION=4.32.5

if ! "$VENV/bin/st" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
REPORT=$(mktemp -d)
trap 'rm -rf "$REPORT"' EXIT

# /api/v1/capture is left out: a capture streams until `count` packets or `seconds` (up to 300)
# have passed, longer than the request timeout on an idle gateway; its parameters, limits and
# errors are tested by the integration tests (cargo test --test it -- capture::).
# shellcheck disable=SC2016 # the inner sh expands these: TUNGATE_* are set by live-tungate.sh
deploy/ci/live-tungate.sh sh -c '
  exec "$0" run "$TUNGATE_URL/api/v1/openapi.yaml" \
    --url "$TUNGATE_URL" \
    --header "Authorization: Bearer $(cat "$TUNGATE_TOKEN_FILE")" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
    --phases examples,coverage,fuzzing,stateful \
    --max-examples "$1" \
    --seed 1 \
    --generation-database none \
    --request-timeout 30 \
    --exclude-path /api/v1/capture \
    --report-dir "$2"' "$VENV/bin/st" "$MAX_EXAMPLES" "$REPORT"
