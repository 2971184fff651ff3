#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: GUE and GRE return tunnels (kernel decap at LD-OUT) and the RS fence against IPIP/GRE from non-directors
# lab-needs: tungate
#
# Issue 16, Part 1 (kernel side). `tungate rs apply --tunnel gue` on rs1 (ipip encap gue
# encap-sport auto encap-dport 6080, MTU less 32) and `--tunnel gre` on rs2 (MTU less 24),
# both with `--director DIP`; LD-OUT runs `tungate run` with decap = "kernel" and peers of
# tunnel = "gue" / "gre": it builds the GUE receive port (ip fou show) and the matching
# tg-rs1 / tg-rs2 devices itself, `tungate net plan` then finds nothing to change. HTTP
# through IPVS to both RS, the 200 KB file intact, tungate's VIP counter = what the client
# received, LD-OUT's kernel forwarded nothing and sent no ICMP; the GUE replies carry several
# UDP source ports; `tungate net down` removes the devices and the receive port. Then the RS
# fence: IPIP and GRE from a non-director are dropped (fence counter +3 each, tunl0 unmoved),
# the same IPIP from the director's address reaches tunl0; `tungate rs down` removes the fence.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init
tunnel_types_scenario kernel
