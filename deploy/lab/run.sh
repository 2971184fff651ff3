#!/usr/bin/env bash
# The QEMU lab: runs scenarios of the whole LVS-TUN topology on a real Debian 12 kernel.
#
# The host kernel has neither ipip nor IPVS; Debian's generic kernel has both. This script
# boots that kernel under QEMU software emulation (TCG) with the host's root filesystem shared
# read-only over virtio-9p, so the host's own binaries (ip, ipvsadm, python3, curl, a freshly
# built tungate) run inside the guest. All networking happens in network namespaces inside the
# guest: the host's interfaces, routes, rules and nftables are never touched.
#
# Usage: deploy/lab/run.sh [--list] [--all] [SCENARIO...]
#   (none)       run every enabled scenario, all in one boot
#   SCENARIO...  run these scenarios (pending ones too) in one boot, in the order given
#   --all        run every scenario, pending ones too
#   --list       list the scenarios with their status and summary
#
# Environment (all optional):
#   LAB_CACHE             cache of the extracted kernel and the initramfs (deploy/lab/.cache)
#   LAB_KERNEL_PACKAGE    kernel package to use (default: what linux-image-amd64 depends on)
#   LAB_DOWNLOAD_ATTEMPTS tries of the kernel download before giving up (3)
#   LAB_SMP, LAB_MEM      guest CPUs (1) and memory in MiB (1536)
#   LAB_SCENARIO_TIMEOUT  guest-side limit per scenario in seconds (240)
#   LAB_TIMEOUT           host-side limit for the whole boot in seconds (derived from the above)
#
# Exit status: 0 every selected scenario passed; 1 a scenario failed, or the guest crashed,
# panicked or timed out (the result file is pre-seeded with a failure); 2 usage error.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$LAB_DIR/../.." && pwd)
SCENARIO_DIR=$LAB_DIR/scenarios
CACHE=${LAB_CACHE:-$LAB_DIR/.cache}
SMP=${LAB_SMP:-1}
MEM=${LAB_MEM:-1536}
SCENARIO_TIMEOUT=${LAB_SCENARIO_TIMEOUT:-240}
TARGET_DIR=${CARGO_TARGET_DIR:-$REPO_ROOT/target}

# Host packages the lab needs: command -> Debian package. busybox must be the static build (it
# runs inside the initramfs before any library is reachable).
declare -A HOST_TOOLS=(
  [qemu-system-x86_64]=qemu-system-x86
  [/bin/busybox]=busybox-static
  [ipvsadm]=ipvsadm
  [modprobe]=kmod
  [depmod]=kmod
  [ip]=iproute2
  [sysctl]=procps
  [/usr/bin/python3]=python3
  [curl]=curl
  [nft]=nftables
  [timeout]=coreutils
  [dumpcap]=tshark
  [tshark]=tshark
)

log() { printf '[lab %s] %s\n' "$(date +%T)" "$*" >&2; }
die() {
  log "error: $*"
  exit 1
}

# --- scenarios ---------------------------------------------------------------------------

# Prints a scenario's header field: the value of its `# lab-KEY: value` line.
scenario_field() {
  local file=$1 key=$2
  sed -n "s/^# lab-$key: *//p" "$file" | head -n 1
}

all_scenarios() {
  local f
  for f in "$SCENARIO_DIR"/*.sh; do
    [[ $(basename "$f") == lib.sh ]] && continue
    basename "$f" .sh
  done
}

list_scenarios() {
  local name
  printf '%-18s %-8s %s\n' SCENARIO STATUS SUMMARY
  for name in $(all_scenarios); do
    printf '%-18s %-8s %s\n' "$name" \
      "$(scenario_field "$SCENARIO_DIR/$name.sh" status)" \
      "$(scenario_field "$SCENARIO_DIR/$name.sh" summary)"
  done
}

enabled_scenarios() {
  local name
  for name in $(all_scenarios); do
    [[ $(scenario_field "$SCENARIO_DIR/$name.sh" status) == enabled ]] && echo "$name"
  done
  return 0
}

# --- host tools ------------------------------------------------------------------------

# Installs the Debian packages of missing tools (apt-get update first, once).
ensure_host_tools() {
  local tool missing=()
  for tool in "${!HOST_TOOLS[@]}"; do
    if [[ $tool == /* ]]; then [[ -x $tool ]] && continue; else command -v "$tool" >/dev/null && continue; fi
    missing+=("${HOST_TOOLS[$tool]}")
  done
  # The dynamic `busybox` package provides /bin/busybox too, but the initramfs needs the static one.
  dpkg-query -W -f='${Status}' busybox-static 2>/dev/null | grep -q "install ok installed" ||
    missing+=(busybox-static)
  ((${#missing[@]})) || return 0
  mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
  log "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}

# --- kernel ----------------------------------------------------------------------------

# Prints the generic kernel package apt offers now (e.g. linux-image-6.1.0-56-amd64),
# refreshing the package lists once if apt does not know it yet.
current_kernel_package() {
  kernel_dependency || {
    apt-get update -q >/dev/null 2>&1 || true
    kernel_dependency
  }
}

# Prints the package the metapackage linux-image-amd64 depends on; fails when apt cannot say.
kernel_dependency() {
  apt-cache depends linux-image-amd64 2>/dev/null |
    sed -n 's/^ *Depends: \(linux-image-[^ ]*-amd64\)$/\1/p' | head -n 1 | grep .
}

# Prints the kernel package to use: LAB_KERNEL_PACKAGE, else the one apt offers now, else
# (apt cannot answer: no package lists, no registry) the newest cached kernel's; fails when
# there is none of these.
choose_kernel_package() {
  if [[ -n ${LAB_KERNEL_PACKAGE:-} ]]; then
    echo "$LAB_KERNEL_PACKAGE"
    return
  fi
  current_kernel_package && return
  local cached
  cached=$(find "$CACHE/kernel" -mindepth 2 -maxdepth 2 -name .complete -printf '%h\n' 2>/dev/null | sort -V | tail -n 1)
  [[ -n $cached ]] || return 1
  log "apt offers no kernel package; using the cached linux-image-$(basename "$cached")"
  echo "linux-image-$(basename "$cached")"
}

# The first lines apt printed as errors in the log $1, on one line (for messages).
apt_errors() {
  grep -E '^(E|Err|W):' "$1" 2>/dev/null | head -n 2 | tr '\n' ' ' | sed 's/ *$//'
}

# Makes sure $CACHE/kernel/$KVER holds the extracted kernel with its module index; sets
# KVER and KERNEL_DIR. The download (~70 MB, on every fresh CI machine) is tried
# LAB_DOWNLOAD_ATTEMPTS times; between attempts apt's package lists are refreshed (a
# superseded kernel package is no longer on the mirror, and the metapackage then names its
# successor) and the wait grows (10 s, 30 s, ...).
ensure_kernel() {
  local pkg attempt attempts=${LAB_DOWNLOAD_ATTEMPTS:-3} wait=10 tmp errors=""
  for ((attempt = 1; ; attempt++)); do
    pkg=$(choose_kernel_package) ||
      die "cannot find the kernel package linux-image-amd64 depends on (apt-get update failed?) and none is cached in $CACHE/kernel; set LAB_KERNEL_PACKAGE to one that apt-cache policy lists"
    KVER=${pkg#linux-image-}
    KERNEL_DIR=$CACHE/kernel/$KVER
    if [[ -e $KERNEL_DIR/.complete ]]; then
      log "kernel $KVER (cached in ${KERNEL_DIR#"$REPO_ROOT"/})"
      return
    fi
    tmp=$(mktemp -d "$CACHE/download.XXXXXX")
    log "downloading kernel package $pkg (apt-get download, ~70 MB; attempt $attempt of $attempts)"
    if (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg") >"$tmp/apt.log" 2>&1 &&
      compgen -G "$tmp/*.deb" >/dev/null; then
      break
    fi
    errors=$(apt_errors "$tmp/apt.log")
    rm -rf "$tmp"
    ((attempt < attempts)) ||
      die "could not download the kernel package $pkg ($attempts attempts; apt said: ${errors:-nothing}). The lab needs a Debian kernel with ipip, IPVS and 9p: check this machine's network and apt sources (try: apt-get update && apt-get download $pkg), or set LAB_KERNEL_PACKAGE to a package apt can fetch"
    log "download failed (apt said: ${errors:-nothing}); refreshing the package lists, next attempt in $wait s"
    apt-get update -q >/dev/null 2>&1 || log "apt-get update failed too"
    sleep "$wait"
    wait=$((wait * 3))
  done
  log "extracting $pkg"
  rm -rf "$KERNEL_DIR"
  mkdir -p "$KERNEL_DIR"
  dpkg-deb -x "$tmp"/*.deb "$KERNEL_DIR" ||
    die "cannot extract $(basename "$tmp"/*.deb) into $KERNEL_DIR (disk full? a damaged download?); it is deleted, run again"
  rm -rf "$tmp"
  [[ -f $KERNEL_DIR/boot/vmlinuz-$KVER ]] || die "$pkg has no boot/vmlinuz-$KVER"
  # The .deb ships no modules.dep; `modprobe -d` needs it.
  log "indexing modules (depmod)"
  depmod -b "$KERNEL_DIR" "$KVER"
  touch "$KERNEL_DIR/.complete"
}

# --- initramfs -------------------------------------------------------------------------

# Modules the initramfs loads to reach the host root (their dependencies are added in order).
INITRAMFS_MODULES=(virtio_pci 9pnet_virtio 9p overlay)

# Builds $CACHE/initramfs-$KVER.cpio (busybox, guest/init, the modules) unless it is newer than
# its inputs; sets INITRAMFS.
ensure_initramfs() {
  INITRAMFS=$CACHE/initramfs-$KVER.cpio
  if [[ -f $INITRAMFS && $INITRAMFS -nt $LAB_DIR/guest/init && $INITRAMFS -nt /bin/busybox &&
    $INITRAMFS -nt $LAB_DIR/run.sh ]]; then
    return
  fi
  log "building the initramfs (busybox + virtio/9p/overlay modules)"
  local root
  root=$(mktemp -d "$CACHE/initramfs.XXXXXX")
  mkdir -p "$root"/{bin,dev,proc,sys,newroot,modules}
  cp /bin/busybox "$root/bin/busybox"
  install -m 0755 "$LAB_DIR/guest/init" "$root/init"
  # `modprobe --show-depends` prints `insmod PATH` for each module in load order (virtio_ring
  # before virtio, ...); a module shared by two lists is loaded once.
  local line path n=0
  while read -r line; do
    [[ $line == insmod\ * ]] || continue
    path=$(awk '{print $2}' <<<"$line")
    grep -qx "$(basename "$path")" "$root/modules/order" 2>/dev/null && continue
    cp "$path" "$root/modules/"
    basename "$path" >>"$root/modules/order"
    n=$((n + 1))
  done < <(modprobe -d "$KERNEL_DIR" -S "$KVER" --show-depends -a "${INITRAMFS_MODULES[@]}")
  ((n > 0)) || die "found none of ${INITRAMFS_MODULES[*]} in $KERNEL_DIR"
  (cd "$root" && find . | busybox cpio -o -H newc 2>/dev/null) >"$INITRAMFS.tmp"
  mv "$INITRAMFS.tmp" "$INITRAMFS"
  rm -rf "$root"
}

# --- what scenarios need -----------------------------------------------------------------

# Builds what the selected scenarios declare in `# lab-needs:` (tungate, cidr-filter-wasm).
ensure_needs() {
  local name need needs=()
  for name in "$@"; do
    for need in $(scenario_field "$SCENARIO_DIR/$name.sh" needs); do needs+=("$need"); done
  done
  ((${#needs[@]})) || return 0
  mapfile -t needs < <(printf '%s\n' "${needs[@]}" | sort -u)
  for need in "${needs[@]}"; do
    case $need in
      tungate)
        # tungate embeds web/dist and its build never runs npm: make the bundle when there is
        # none (after CI it is there, and rebuilding it would rebuild tungate).
        if [[ ! -d $REPO_ROOT/web/dist ]]; then
          log "building the web UI (npm ci, npm run build): tungate embeds web/dist"
          (cd "$REPO_ROOT/web" && { [[ -d node_modules ]] || npm ci --no-audit --no-fund; } && npm run build) ||
            die "the web UI does not build"
        fi
        log "building tungate (cargo build --release)"
        (cd "$REPO_ROOT" && cargo build --release --locked -q -p tungate) || die "tungate does not build"
        ;;
      cidr-filter-wasm)
        # The same command and target directory as CI's plugin stage: a no-op after it.
        log "building the cidr-filter plugin (wasm32-unknown-unknown, plugin profile)"
        (cd "$REPO_ROOT" && CARGO_INCREMENTAL=0 CARGO_TARGET_DIR=target/wasm-plugins cargo build --locked -q \
          --profile plugin --target wasm32-unknown-unknown -p cidr-filter) ||
          die "the cidr-filter plugin does not build"
        ;;
      *) die "unknown lab-needs entry '$need'" ;;
    esac
  done
}

# --- boot --------------------------------------------------------------------------------

# Writes the run directory (the guest's writable share): the plan the guest reads, and the
# result file pre-seeded with a failure so a crash, panic or timeout cannot pass.
prepare_run_dir() {
  RUN_DIR=$CACHE/runs/$(date +%Y%m%d-%H%M%S)-$$
  mkdir -p "$RUN_DIR"
  # Keep the ten newest runs.
  find "$CACHE/runs" -mindepth 1 -maxdepth 1 -type d -name '2*' -printf '%f\n' | sort -r | tail -n +11 |
    while read -r old; do rm -rf "${CACHE:?}/runs/$old"; done
  ln -sfn "$RUN_DIR" "$CACHE/runs/last"
  {
    printf 'LAB_REPO=%q\n' "$REPO_ROOT"
    printf 'LAB_DIR=%q\n' "$LAB_DIR"
    printf 'LAB_MODULES_DIR=%q\n' "$KERNEL_DIR"
    printf 'LAB_KVER=%q\n' "$KVER"
    printf 'LAB_SCENARIOS=%q\n' "$*"
    printf 'LAB_SCENARIO_TIMEOUT=%q\n' "$SCENARIO_TIMEOUT"
    printf 'LAB_TUNGATE=%q\n' "$TARGET_DIR/release/tungate"
    printf 'LAB_PLUGIN_DIR=%q\n' "$REPO_ROOT/target/wasm-plugins/wasm32-unknown-unknown/plugin"
  } >"$RUN_DIR/plan.env"
  echo "no result: the guest crashed, panicked or timed out before reporting (see console.log)" >"$RUN_DIR/rc"
  : >"$RUN_DIR/transcript.txt"
}

# The pid of `timeout` running qemu while the guest runs (stop_guest stops it).
QEMU_PID=
# Stops the guest if this script ends while it runs (Ctrl-C, a kill, a failing command): an
# EXIT trap. `timeout` puts itself in its own process group, so a Ctrl-C in the terminal never
# reaches it or qemu; a SIGTERM to it is passed on to qemu (and --kill-after bounds the wait).
stop_guest() {
  [[ -n $QEMU_PID ]] && kill -0 "$QEMU_PID" 2>/dev/null || return 0
  log "stopping the guest (qemu, under timeout pid $QEMU_PID)"
  kill -TERM "$QEMU_PID" 2>/dev/null || true
  wait "$QEMU_PID" 2>/dev/null || true
}

# Boots the guest, streams the transcript while it runs, and returns the guest's verdict.
boot_and_wait() {
  local timeout=$1 qemu_pid status=0 started
  log "booting $KVER under QEMU TCG (-smp $SMP, ${MEM} MiB; host-side limit ${timeout} s; console: ${RUN_DIR#"$REPO_ROOT"/}/console.log)"
  started=$(date +%s.%N)
  timeout --kill-after=10 "$timeout" qemu-system-x86_64 \
    -accel tcg -cpu max -smp "$SMP" -m "$MEM" \
    -nographic -nodefaults -no-user-config -no-reboot \
    -serial "file:$RUN_DIR/console.log" -monitor none \
    -kernel "$KERNEL_DIR/boot/vmlinuz-$KVER" -initrd "$INITRAMFS" \
    -append "console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off" \
    -fsdev "local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap" \
    -device "virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot" \
    -fsdev "local,id=results,path=$RUN_DIR,security_model=none" \
    -device "virtio-9p-pci,fsdev=results,mount_tag=results" \
    </dev/null >"$RUN_DIR/qemu.log" 2>&1 &
  qemu_pid=$!
  QEMU_PID=$qemu_pid
  trap stop_guest EXIT
  # The guest writes the transcript over 9p as it goes; show it live.
  tail -n +1 -s 0.5 -F --pid="$qemu_pid" "$RUN_DIR/transcript.txt" 2>/dev/null || true
  wait "$qemu_pid" || status=$?
  QEMU_PID=
  log "guest powered off after $(awk -v s="$started" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s (host wall clock)"
  if ((status == 124 || status == 137)); then
    log "the guest did not finish within $timeout s (host-side timeout)"
  elif ((status != 0)); then
    log "qemu exited with status $status: $(tail -n 3 "$RUN_DIR/qemu.log" | tr '\n' ' ')"
  fi
}

# Prints the verdict and returns 0 only when the guest wrote "0" to the result file.
verdict() {
  local rc
  rc=$(cat "$RUN_DIR/rc")
  if [[ $rc == 0 ]]; then
    log "PASS (results: ${RUN_DIR#"$REPO_ROOT"/})"
    return 0
  fi
  if [[ $rc != 1 ]]; then
    log "FAIL: $rc"
    log "last lines of the guest console:"
    # (without the terminal escapes the firmware prints)
    tail -n 25 "$RUN_DIR/console.log" | sed 's/\x1b\[[0-9;?]*[A-Za-z]//g; s/\x1bc//g' >&2 || true
  else
    log "FAIL (results and logs: ${RUN_DIR#"$REPO_ROOT"/})"
  fi
  return 1
}

main() {
  local selected=() arg
  for arg in "$@"; do
    case $arg in
      --list)
        list_scenarios
        return 0
        ;;
      --all) mapfile -t selected < <(all_scenarios) ;;
      -h | --help)
        sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'
        return 0
        ;;
      -*)
        echo "unknown option $arg (see --help)" >&2
        return 2
        ;;
      *)
        [[ -f $SCENARIO_DIR/$arg.sh && $arg != lib ]] || {
          echo "no scenario '$arg'; --list shows them" >&2
          return 2
        }
        selected+=("$arg")
        ;;
    esac
  done
  ((${#selected[@]})) || mapfile -t selected < <(enabled_scenarios)
  ((${#selected[@]})) || {
    echo "no scenario is enabled; --list shows them" >&2
    return 2
  }
  [[ $(id -u) == 0 ]] || die "run as root (apt installs; QEMU shares / read-only with the guest)"
  case $REPO_ROOT/ in
    /run/* | /proc/* | /sys/* | /dev/*)
      die "the repository must not live under /run, /proc, /sys or /dev: the guest mounts its own there"
      ;;
  esac

  mkdir -p "$CACHE"
  ensure_host_tools
  ensure_kernel
  ensure_initramfs
  ensure_needs "${selected[@]}"
  prepare_run_dir "${selected[@]}"
  # Boot time, then each scenario's limit, plus one more for the retry of an interrupted one.
  boot_and_wait "${LAB_TIMEOUT:-$((120 + (SCENARIO_TIMEOUT + 15) * (${#selected[@]} + 1)))}"
  verdict
}

main "$@"
