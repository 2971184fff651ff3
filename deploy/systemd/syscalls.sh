#!/usr/bin/env bash
# Checks that the unit's SystemCallFilter lets tungate work: runs `tungate demo` (the real
# `tungate run` in a namespace, plugins uploaded and bound, replies forwarded through the
# data path) under strace, takes every system call the `tungate run` process and its
# threads made after it started, and fails if one is outside what the unit's filter allows
# (@system-service, less the `~` lines, plus bpf() added back for the XDP path), and every
# socket address family it opened against RestrictAddressFamilies. A call the filter refuses
# would fail with EPERM in production (SystemCallErrorNumber), so this catches e.g. a new
# io_uring data path before it ships. The demo's gateway runs on the AF_XDP path (`io =
# "auto"` on its veth: native XDP), which keeps its TPACKET sockets open beside the AF_XDP
# ones: the trace must show bpf(), an AF_XDP and an AF_PACKET socket, so both paths' calls
# are checked. Usage (root): deploy/systemd/syscalls.sh [BINARY] [PLUGIN_DIR]
# (UNIT=path checks another unit file.)
set -euo pipefail
cd "$(dirname "$0")/../.."
BIN=$(realpath "${1:-target/release/tungate}")
PLUGINS=${2:-target/wasm-plugins/wasm32-unknown-unknown/plugin}
UNIT=${UNIT:-deploy/systemd/tungate.service}
for tool in strace systemd-analyze python3; do
  command -v "$tool" >/dev/null || { echo "install $tool (deploy/ci/install-deps.sh)" >&2; exit 1; }
done
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# The unit's filter, its lines in order: the first (an allow list) sets the calls allowed,
# each later `~` line takes calls away and each later plain line adds calls back.
expand() { # a group or call name -> the calls, one per line (groups nest)
  case "$1" in
    @*) systemd-analyze syscall-filter "$1" | tail -n +2 | grep -v '#' | awk 'NF {print $1}' |
          while read -r item; do expand "$item"; done ;;
    *) echo "$1" ;;
  esac
}
: >"$WORK/allowed"
while read -r line; do
  case "$line" in
    "~"*)
      for g in ${line#\~}; do expand "$g"; done | sort -u >"$WORK/minus"
      comm -23 "$WORK/allowed" "$WORK/minus" >"$WORK/next" ;;
    *) { cat "$WORK/allowed"; for g in $line; do expand "$g"; done; } | sort -u >"$WORK/next" ;;
  esac
  mv "$WORK/next" "$WORK/allowed"
done < <(sed -n 's/^SystemCallFilter=//p' "$UNIT")

echo "running tungate demo under strace for 10 s"
strace -ff -qq -o "$WORK/trace" "$BIN" demo --duration 10 --rate 50 --plugin-dir "$PLUGINS" \
  --listen "127.0.0.1:$((20000 + RANDOM % 20000))" >"$WORK/demo.log" 2>&1 \
  || { cat "$WORK/demo.log" >&2; exit 1; }
grep -q "gateway forwarded +[1-9]" "$WORK/demo.log" \
  || { echo "the demo forwarded nothing: no data path calls were seen" >&2; cat "$WORK/demo.log" >&2; exit 1; }

# The calls of the `tungate run` task (after its execve) and of every task it cloned.
python3 - "$WORK" >"$WORK/used" <<'PY'
import glob, re, sys
work = sys.argv[1]
traces = {f.rsplit(".", 1)[1]: open(f, errors="replace").read().splitlines()
          for f in glob.glob(f"{work}/trace.*")}
run = [t for t, lines in traces.items()
       if any(re.match(r'execve\("[^"]*", \[[^\]]*"run"', l) for l in lines)]
if len(run) != 1:
    sys.exit(f"expected one `tungate run` task in the trace, found {len(run)}")
tasks, used, todo = set(run), set(), list(run)
while todo:
    task = todo.pop()
    lines = traces.get(task, [])
    if task == run[0]:  # before its execve it was still the demo's child
        lines = lines[next(i for i, l in enumerate(lines) if l.startswith("execve(")):]
    for line in lines:
        m = re.match(r"([a-z_0-9]+)\(", line)
        if not m:
            continue
        used.add(m.group(1))
        child = re.match(r"(?:clone3?|fork|vfork)\(.*\)\s*=\s*(\d+)", line)
        if child and child.group(1) not in tasks:
            tasks.add(child.group(1))
            todo.append(child.group(1))
families = set()
for task in tasks:
    for line in traces.get(task, []):
        m = re.match(r"socket\((AF_[A-Z0-9]+|\d+),.*\)\s*=\s*\d+", line)
        if m:
            families.add(m.group(1))
open(f"{work}/families", "w").write("".join(f"{f}\n" for f in sorted(families)))
print("\n".join(sorted(used)))
print(f"{len(tasks)} tasks, {len(used)} distinct calls, families {sorted(families)}", file=sys.stderr)
PY
# The gateway ran on the AF_XDP path (it loads its XDP program and opens AF_XDP sockets),
# with its TPACKET sockets beside them.
if ! { grep -qx bpf "$WORK/used" && grep -qx AF_XDP "$WORK/families" && grep -qx AF_PACKET "$WORK/families"; }; then
  echo "the traced gateway did not run on the AF_XDP path (bpf() and AF_XDP and AF_PACKET sockets expected):" >&2
  grep -i "I/O path" "$WORK/demo.log" >&2 || true
  exit 1
fi
allowed_families=$(sed -n 's/^RestrictAddressFamilies=//p' "$UNIT" | tr ' ' '\n' | sort -u)
outside=$(comm -23 "$WORK/families" <(echo "$allowed_families"))
if [ -n "$outside" ]; then
  echo "tungate opened sockets of families that $UNIT's RestrictAddressFamilies refuses:" >&2
  echo "$outside" >&2
  exit 1
fi
refused=$(comm -23 "$WORK/used" "$WORK/allowed")
if [ -n "$refused" ]; then
  echo "tungate made system calls that $UNIT's SystemCallFilter refuses:" >&2
  echo "$refused" | sort -u >&2
  exit 1
fi
echo "tungate.service: all $(wc -l <"$WORK/used") system calls of a running gateway (AF_XDP path) pass its SystemCallFilter; its socket families ($(tr '\n' ' ' <"$WORK/families")) its RestrictAddressFamilies"
