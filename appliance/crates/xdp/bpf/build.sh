#!/usr/bin/env bash
# Rebuilds the committed XDP objects (bpf/ingress.bpf.o, the program; bpf/other_tool.bpf.o, a
# test fixture) from their .c sources with Debian's
# clang (-target bpf) and libbpf-dev's headers; reproducible: no absolute paths (the source is
# named relative to this folder, the compile directory mapped to "."), no DWARF kept (only the
# BTF that the loader needs to read the maps).
# Usage: bpf/build.sh          rebuild in place
#        bpf/build.sh --check  rebuild into a temporary file; fail if it differs (CI)
set -euo pipefail
cd "$(dirname "$0")"
status=0
for name in ingress other_tool; do
  out=$name.bpf.o
  [ "${1:-}" = --check ] && out=$(mktemp --suffix=.bpf.o)
  clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror \
    -I"/usr/include/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)" \
    -fdebug-prefix-map="$PWD"=. -fno-ident \
    -c "$name.bpf.c" -o "$out.full"
  # Keep .BTF/.BTF.ext (the maps' definitions), drop DWARF.
  llvm-strip --strip-debug "$out.full" -o "$out"
  rm -f "$out.full"
  if [ "${1:-}" = --check ]; then
    if cmp -s "$out" "$name.bpf.o"; then
      echo "bpf/$name.bpf.o matches its source"
    else
      echo "bpf/$name.bpf.o is not what bpf/$name.bpf.c builds to: run appliance/crates/xdp/bpf/build.sh and commit" >&2
      status=1
    fi
    rm -f "$out"
  fi
done
exit $status
