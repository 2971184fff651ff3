#!/bin/bash
# Side by side, alternating: one AF_XDP worker with the ingress veth's receive NAPI (the XDP
# program and the copy into the UMEM) in the sending core's softirq (the default) and in a
# NAPI thread pinned to the gateway's core (GATEWAY_BENCH_NAPI=threaded), at 64 B and 1400 B,
# under a flood and at a paced rate. As root, from anywhere in the checkout; prints the soak
# samples (3 repeats x 5 one-second samples per case). Results:
# deploy/bench/results/xdp-cpu-latency.md, "Busy polling, and where the receive work runs".
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
cargo build --release --locked -p tungate --example gateway_bench
bench=target/release/examples/gateway_bench
for repeat in 1 2 3; do
    for size in 64 1400; do
        for rate in flood 400000; do
            for napi in softirq threaded; do
                echo "=== repeat $repeat size $size rate $rate napi $napi"
                rate_arg=()
                [ "$rate" = flood ] || rate_arg=("$rate")
                mode=""
                [ "$napi" = threaded ] && mode=threaded
                GATEWAY_BENCH_NAPI=$mode GATEWAY_BENCH_IO=xdp \
                    "$bench" soak 5 cidr 1 "$size" "${rate_arg[@]}" 2>&1 |
                    grep -E "offered|gateway:" || true
            done
        done
    done
done
