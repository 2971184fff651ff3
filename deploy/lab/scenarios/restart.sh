#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: kill -9 and restart: the kernel never takes over, service resumes, net down restores LD-OUT
# lab-needs: tungate
#
# Issue 6, scenario 4, in kernel decap mode. While tungate is dead its tunnels stay and the
# kernel must not forward what arrives on them; a restarted tungate finds LD-OUT as it left
# it (`tungate net plan` has nothing to change) and serves again; after a clean stop,
# `tungate net down` leaves LD-OUT's links, addresses, routes, rules, sysctls and nftables
# exactly as they were before tungate first started. (That an admin-API change survives
# kill -9 is checked in plugin-deny.) Pending until the config accepts one VIP on two RS.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init

topo_up
rs_by_tungate
# The operator's own setting; tungate must leave it alone.
in_ns ldout sysctl -qw net.ipv4.ip_forward=1
ldout_net_dump >"$WORK/ldout-before.txt"
tg_write_config kernel
tg_start
topo_show
rs_wait_http

step "service"
check_round_robin 2

step "kill -9"
tg_kill9
check_fails "while tungate is dead, no reply reaches the client (the kernel does not forward)" \
  http_get / "$WORK/page" 4
check "LD-OUT is still as tungate left it (tungate net plan: nothing to change)" tg_net_plan

step "restart"
tg_start
check_round_robin 2
check_bulk_intact 1

step "stop, then tungate net down"
tg_stop
check "tungate net down" tg_net_down
ldout_net_dump >"$WORK/ldout-after.txt"
check "LD-OUT's links, addresses, routes, rules, sysctls and nftables are as before tungate" \
  diff -u "$WORK/ldout-before.txt" "$WORK/ldout-after.txt"
