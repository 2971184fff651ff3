#!/usr/bin/env bash
# Builds the tungate appliance image with podman (root, vfs storage, chroot isolation: this
# also works where `podman run` does not), then tests what it built: exports the image's root
# filesystem and runs its own tungate from it (chroot, so the image's libraries are used)
# inside a network namespace: --version, `plugin check` on an example plugin, and a real
# `tungate run` answering /healthz and /readyz.
#
# Usage (repository root or anywhere, as root):
#   deploy/image/build.sh --prebuilt   package target/release/tungate and the example plugins
#                                      built by deploy/ci/test-all.sh (CI; measured on the
#                                      2-core CI machine kind: 2.5 min cold, of which 2 min
#                                      make the Debian base; 30-50 s once the base exists)
#   deploy/image/build.sh              the full multi-stage build (Containerfile, pulls the
#                                      rust, node and debian base images from docker.io, then
#                                      compiles everything from scratch: far slower)
# Environment: RUNTIME_IMAGE (default: docker.io/library/debian:12-slim for the full build;
# for --prebuilt a local Debian 12 base made once with debootstrap, since that needs only
# Debian's package archive), TAG (default localhost/tungate:latest), KEEP_IMAGE=1 to keep it.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$PWD
MODE=full
[ "${1:-}" = "--prebuilt" ] && MODE=prebuilt
TAG=${TAG:-localhost/tungate:latest}
PODMAN=(podman --storage-driver vfs)
LOCAL_BASE=localhost/tungate-debian:12
say() { printf '[image %s] %s\n' "$(date +%T)" "$*"; }

WORK=$(mktemp -d)
NS=tgimg-$$-0
# The pids of the processes in the namespace, one a line (none once it is gone).
netns_pids() { ip netns pids "$NS" 2>/dev/null || true; }
# Lists the processes left in the namespace and stops them (TERM, then KILL after 10 s);
# fails if one is still there afterwards.
stop_netns_processes() {
  local pids _
  mapfile -t pids < <(netns_pids)
  ((${#pids[@]})) || return 0
  ps -o pid=,args= -p "$(IFS=,; echo "${pids[*]}")" >&2 || true
  kill -TERM "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 50); do
    [ -z "$(netns_pids)" ] && return 0
    sleep 0.2
  done
  mapfile -t pids < <(netns_pids)
  ((${#pids[@]} == 0)) || kill -KILL "${pids[@]}" 2>/dev/null || true
  sleep 0.5
  [ -z "$(netns_pids)" ]
}
cleanup() {
  if [ -n "$(netns_pids)" ]; then
    echo "processes still running in $NS at exit, stopping them:" >&2
    stop_netns_processes || echo "could not stop them" >&2
  fi
  ip netns del "$NS" 2>/dev/null || true
  if [ -n "${CONTAINER:-}" ]; then "${PODMAN[@]}" rm -f "$CONTAINER" >/dev/null 2>&1 || true; fi
  if [ "${KEEP_IMAGE:-0}" != 1 ]; then "${PODMAN[@]}" rmi -f "$TAG" >/dev/null 2>&1 || true; fi
  rm -rf "$WORK"
}
trap cleanup EXIT

# A Debian 12 base from Debian's own archive (debootstrap), imported once and reused.
ensure_local_base() {
  if "${PODMAN[@]}" image exists "$LOCAL_BASE"; then
    say "base image $LOCAL_BASE already there"
    return
  fi
  command -v debootstrap >/dev/null || { echo "install debootstrap (deploy/ci/install-deps.sh)" >&2; exit 1; }
  say "making $LOCAL_BASE with debootstrap (minbase bookworm; about 2-4 minutes)"
  local rootfs=$WORK/base
  debootstrap --variant=minbase bookworm "$rootfs" http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 \
    || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | "${PODMAN[@]}" import --change 'CMD ["/bin/bash"]' - "$LOCAL_BASE" >/dev/null
  rm -rf "$rootfs"
  say "base image $LOCAL_BASE made"
}

started=$(date +%s)
if [ "$MODE" = prebuilt ]; then
  BIN=$ROOT/target/release/tungate
  PLUGINS=$ROOT/target/wasm-plugins/wasm32-unknown-unknown/plugin
  [ -x "$BIN" ] || { echo "build tungate first: cargo build --release -p tungate" >&2; exit 1; }
  RUNTIME_IMAGE=${RUNTIME_IMAGE:-$LOCAL_BASE}
  [ "$RUNTIME_IMAGE" = "$LOCAL_BASE" ] && ensure_local_base
  CONTEXT=$WORK/context
  mkdir -p "$CONTEXT/plugins"
  # Debug line tables stay in the build tree; the image gets the code only (115 -> 25 MB).
  strip --strip-debug -o "$CONTEXT/tungate" "$BIN"
  for p in accounting cidr_filter port_filter rate_limit; do
    [ -f "$PLUGINS/$p.wasm" ] || { echo "missing $PLUGINS/$p.wasm: build the example plugins first" >&2; exit 1; }
    cp "$PLUGINS/$p.wasm" "$CONTEXT/plugins/$(echo $p | tr _ -).wasm"
  done
  say "podman build --target prebuilt (runtime base $RUNTIME_IMAGE)"
  "${PODMAN[@]}" build --isolation chroot --network host --target prebuilt \
    --build-arg RUNTIME_IMAGE="$RUNTIME_IMAGE" -f deploy/image/Containerfile -t "$TAG" "$CONTEXT"
else
  say "podman build, full multi-stage (web, builder, runtime)"
  args=()
  for a in RUST_IMAGE NODE_IMAGE RUNTIME_IMAGE; do
    [ -n "${!a:-}" ] && args+=(--build-arg "$a=${!a}")
  done
  "${PODMAN[@]}" build --isolation chroot --network host "${args[@]}" \
    -f deploy/image/Containerfile -t "$TAG" .
fi
say "built $TAG in $(( $(date +%s) - started )) s; $("${PODMAN[@]}" image inspect "$TAG" --format '{{.Size}}') bytes"

say "exporting its root filesystem"
CONTAINER=$("${PODMAN[@]}" create "$TAG")
ROOTFS=$WORK/rootfs
mkdir -p "$ROOTFS"
"${PODMAN[@]}" export "$CONTAINER" | tar -C "$ROOTFS" -x

# Runs a command inside the namespace, chrooted into the image (with /proc and /dev):
# "${IN_IMAGE[@]}" COMMAND... Each step execs the next (ip netns exec, unshare without
# --fork, sh's exec, chroot), so started with & its $! is the command's own pid. (A shell
# function started with & is a subshell: its $! would be that wrapper's pid, not the command's.)
# shellcheck disable=SC2016 # $0 and $@ are the inner shell's: the rootfs and the command
IN_IMAGE=(ip netns exec "$NS" unshare --mount sh -c '
    mount -t proc proc "$0/proc" && mount --rbind /dev "$0/dev" && exec chroot "$0" "$@"' \
    "$ROOTFS")

ip netns add "$NS"
ip -n "$NS" link set lo up
ip -n "$NS" link add g0 type veth peer name r0
ip -n "$NS" link set g0 up
ip -n "$NS" link set r0 up
ip -n "$NS" addr add 10.201.0.1/24 dev g0

say "the image's tungate --version"
"${IN_IMAGE[@]}" /usr/local/bin/tungate --version
say "the image's tungate plugin check on its cidr-filter"
"${IN_IMAGE[@]}" /usr/local/bin/tungate plugin check /usr/share/tungate/plugins/cidr-filter.wasm

say "the image's tungate run, answering /healthz and /readyz"
cat > "$ROOTFS/etc/tungate/tungate.toml" <<TOML
[gateway]
address = "10.201.0.1"
[[peers]]
name = "rs1"
address = "10.201.0.2"
vips = ["192.0.2.10"]
TOML
"${IN_IMAGE[@]}" /usr/local/bin/tungate run --config /etc/tungate/tungate.toml \
  --state-dir /var/lib/tungate >"$WORK/run.log" 2>&1 &
RUN_PID=$!
ok=0
for _ in $(seq 100); do
  if ip netns exec "$NS" curl -fsS http://127.0.0.1:9080/readyz >/dev/null 2>&1; then ok=1; break; fi
  kill -0 "$RUN_PID" 2>/dev/null || break
  sleep 0.2
done
health=$(ip netns exec "$NS" curl -fsS http://127.0.0.1:9080/healthz || true)
# $RUN_PID is tungate itself (see IN_IMAGE): SIGTERM is its clean stop. Wait up to 10 s.
kill -TERM "$RUN_PID" 2>/dev/null || true
for _ in $(seq 50); do
  kill -0 "$RUN_PID" 2>/dev/null || break
  sleep 0.2
done
run_status=0
if kill -0 "$RUN_PID" 2>/dev/null; then
  run_status="still running 10 s after SIGTERM"
else
  wait "$RUN_PID" || run_status=$?
fi
if [ -n "$(netns_pids)" ]; then
  echo "processes still running in $NS after the image's tungate run was stopped:" >&2
  stop_netns_processes || echo "(could not stop them)" >&2
  exit 1
fi
if [ "$ok" != 1 ] || [ "$health" != ok ]; then
  echo "the image's tungate run did not become ready (healthz: '$health'):" >&2
  cat "$WORK/run.log" >&2
  exit 1
fi
if [ "$run_status" != 0 ]; then
  echo "the image's tungate run did not stop cleanly on SIGTERM (exit status: $run_status):" >&2
  cat "$WORK/run.log" >&2
  exit 1
fi
say "healthz: $health; readyz: 200; stopped cleanly (exit status 0, no process left in $NS)"
[ -f "$ROOTFS/var/lib/tungate/admin-token" ] || { echo "no admin token in the state directory" >&2; exit 1; }
say "image OK in $(( $(date +%s) - started )) s"
