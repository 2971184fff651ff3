#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: tungate run with decap = "kernel": tungate builds the tunnels and forwards the replies
# lab-needs: tungate
#
# Issue 6, scenario 1. The RS side is built by `tungate rs apply`; LD-OUT runs `tungate run`
# (no `tungate net apply` before it), which builds one ipip tunnel per RS itself (forwarding=0,
# so the kernel drops what arrives there; `tungate net plan` then has nothing to change) and
# forwards the decapsulated replies. Checks: `tungate status` exits 0 (ready, LD-OUT's
# networking as configured), HTTP through both RS, the 200 KB file intact,
# tungate's VIP counter (GET /api/v1/stats) accounts for every packet the client received,
# LD-OUT's kernel forwarded nothing (IpForwDatagrams, with ip_forward=1) and sent no ICMP to
# the RS; after a stop, `tungate net down` removes the tunnels.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init
tungate_decap_scenario kernel
