#!/usr/bin/env bash
# Rebuilds the committed XDP object bpf/ingress.bpf.o from bpf/ingress.bpf.c with Debian's
# clang (-target bpf) and libbpf-dev's headers; reproducible: no absolute paths (the source is
# named relative to this folder, the compile directory mapped to "."), no DWARF kept (only the
# BTF that the loader needs to read the maps).
# Usage: bpf/build.sh          rebuild in place
#        bpf/build.sh --check  rebuild into a temporary file; fail if it differs (CI)
set -euo pipefail
cd "$(dirname "$0")"
out=ingress.bpf.o
if [ "${1:-}" = --check ]; then
  out=$(mktemp --suffix=.bpf.o)
  trap 'rm -f "$out"' EXIT
fi
clang -O2 -g -target bpf -mcpu=v3 -Wall -Werror \
  -I"/usr/include/$(gcc -dumpmachine 2>/dev/null || echo x86_64-linux-gnu)" \
  -fdebug-prefix-map="$PWD"=. -fno-ident \
  -c ingress.bpf.c -o "$out.tmp"
# Keep .BTF/.BTF.ext (the maps' definitions), drop DWARF.
llvm-strip --strip-debug "$out.tmp" -o "$out"
rm -f "$out.tmp"
if [ "${1:-}" = --check ]; then
  if ! cmp -s "$out" ingress.bpf.o; then
    echo "bpf/ingress.bpf.o is not what bpf/ingress.bpf.c builds to: run appliance/crates/xdp/bpf/build.sh and commit" >&2
    exit 1
  fi
  echo "bpf/ingress.bpf.o matches its source"
fi
