#!/usr/bin/env bash
# lab-status: pending
# lab-summary: kill -9 and restart keep tungate's state; `tungate net down` restores LD-OUT
# lab-needs: tungate cidr-filter-wasm
#
# Issue 6, scenario 4, in kernel decap mode. A plugin binding made through the admin API
# must survive kill -9 (the state directory is crash-safe); while tungate is dead the kernel
# must not take over forwarding; after a restart service resumes with the same document;
# after a clean stop `tungate net down` leaves LD-OUT's links, addresses, routes, rules,
# sysctls and nftables exactly as they were before tungate first started.
# Pending until `tungate run`, `tungate net down`, the plugin host and the admin API land.
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

step "service, then a change through the admin API"
check_round_robin 2
require "upload the cidr-filter plugin" tg_plugin_upload cidr-filter "$(tg_cidr_filter_wasm)"
require "bind it to the VIP (denying 192.0.2.0/24, not the client)" \
  tg_vip_set_plugins "$VIP" "[$(tg_cidr_filter_deny 192.0.2.0/24)]"
config_before=$(tg_config_json)

step "kill -9"
tg_kill9
check_fails "while tungate is dead, no reply reaches the client (the kernel does not forward)" \
  http_get / "$WORK/page" 4

step "restart"
tg_start
check_round_robin 2
check_bulk_intact 1
expect "the restarted tungate holds the same document, binding included" "$(tg_config_json)" == "$config_before"

step "stop, then tungate net down"
tg_stop
check "tungate net down" tg_net_down
ldout_net_dump >"$WORK/ldout-after.txt"
check "LD-OUT's links, addresses, routes, rules, sysctls and nftables are as before tungate" \
  diff -u "$WORK/ldout-before.txt" "$WORK/ldout-after.txt"
