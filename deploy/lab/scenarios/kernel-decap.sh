#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: tungate run with decap = "kernel": tungate builds the tunnels and forwards the replies
# lab-needs: tungate
#
# Issue 6, scenario 1. The RS side is built by `tungate rs apply`; LD-OUT runs `tungate run`,
# which builds one ipip tunnel per RS (forwarding=0, so the kernel drops what arrives there)
# and forwards the decapsulated replies itself. Checks: HTTP through both RS, the 200 KB file
# intact, tungate's VIP counter accounts for every packet the client received, LD-OUT's
# kernel forwarded nothing (IpForwDatagrams, with ip_forward=1) and sent no ICMP to the RS.
# Pending until the config accepts one VIP served by two RS (config/validate.rs refuses it).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init
tungate_decap_scenario kernel
