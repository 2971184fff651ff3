#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: kill -9 and restart on the same state dir: same state, service resumes, a deleted tunnel heals, net down restores LD-OUT
# lab-needs: tungate cidr-filter-wasm
#
# Issue 6, scenario 4, in kernel decap mode. State is made through the admin API (a plugin
# uploaded and bound to the VIP with a deny of a prefix no client uses, so it changes the
# document but not the traffic). While tungate is dead its tunnels stay and the kernel must
# not forward what arrives on them; restarted on the same state directory, tungate finds
# LD-OUT as it left it (`tungate net plan` has nothing to change), holds the same document
# and module and serves again; a tunnel deleted by hand comes back by itself (the netcfg
# reconciler) and carries replies again; after a clean stop, `tungate net down` leaves
# LD-OUT's links, addresses, routes, rules, sysctls and nftables exactly as they were before
# tungate first started.
# shellcheck source=SCRIPTDIR/lib.sh
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

step "state made through the admin API"
require "upload the cidr-filter plugin (PUT /api/v1/plugins/cidr-filter)" \
  tg_plugin_upload cidr-filter "$(tg_cidr_filter_wasm)"
require "bind it to the VIP denying 192.0.2.0/24, a prefix no client uses (PUT /api/v1/vips/$VIP)" \
  tg_vip_set_plugins "$VIP" "[$(tg_cidr_filter_deny 192.0.2.0/24)]"
config_before=$(tg_config_json)
sha_before=$(tg_plugin_sha256 cidr-filter)
expect "the stored module is the file uploaded (sha256)" "$sha_before" == \
  "$(sha256sum "$(tg_cidr_filter_wasm)" | cut -d' ' -f1)"
say "   config generation $(tg_status config_generation); bindings on $VIP: $(tg_bindings "$VIP")"
rs_wait_http

step "service"
check_round_robin 2

step "kill -9"
tg_kill9
check_fails "while tungate is dead, no reply reaches the client (the kernel does not forward)" \
  http_get / "$WORK/page" 4
check "LD-OUT is still as tungate left it (tungate net plan: nothing to change)" tg_net_plan

step "restart on the same state directory"
tg_start
expect "the configuration document is the one before the kill (GET /api/v1/config)" \
  "$(tg_config_json)" == "$config_before"
expect "the stored cidr-filter module is the same (sha256)" "$(tg_plugin_sha256 cidr-filter)" == "$sha_before"
expect "the binding runs in the data path again (GET /api/v1/stats)" "$(tg_bindings "$VIP")" == "cidr-filter"
say "   config generation $(tg_status config_generation) (counted per process: the first document applied is 1)"
check_round_robin 2
check_bulk_intact 1

step "a tunnel deleted by hand comes back by itself"
require "delete tg-rs1 by hand" nsip ldout link delete tg-rs1
healing_started=$(cut -d' ' -f1 /proc/uptime)
wait_until 20 "tg-rs1 rebuilt by tungate's reconciler" \
  link_matches ldout tg-rs1 "ipip .*remote $RIP1 local $GIP"
pass "tungate rebuilt tg-rs1 within $(elapsed_since "$healing_started") s"
expect "the rebuilt tg-rs1 has forwarding=0 again" \
  "$(in_ns ldout cat /proc/sys/net/ipv4/conf/tg-rs1/forwarding)" -eq 0
check_round_robin 4
check "tungate net plan: nothing to change after the healing" tg_net_plan
say "   tungate: $(tg_counters_summary)"

step "stop, then tungate net down"
tg_stop
check "tungate net down" tg_net_down
ldout_net_dump >"$WORK/ldout-after.txt"
check "LD-OUT's links, addresses, routes, rules, sysctls and nftables are as before tungate" \
  diff -u "$WORK/ldout-before.txt" "$WORK/ldout-after.txt"
