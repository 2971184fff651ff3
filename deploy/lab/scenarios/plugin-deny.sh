#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: a cidr-filter bound through the admin API denies the client; unbinding restores
# lab-needs: tungate cidr-filter-wasm
#
# Issue 6, scenario 3, in userspace decap mode. The plugin is uploaded and bound to the VIP
# through the admin API while tungate runs: a binding that denies another prefix changes
# nothing (the plugin is selective), one that denies the client stops the replies and the
# drop counters rise; the binding survives kill -9 and a restart (the state directory is
# crash-safe; tungate restarts on the same one); unbinding restores service in the same
# tungate process. A denied request is dropped silently: the client times out (4 s here).
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init

topo_up
rs_by_tungate
tg_write_config userspace
tg_start
topo_show
rs_wait_http
check_rs_reply_routes

step "baseline: no plugin"
check_round_robin 2

step "cidr-filter denying another prefix"
require "upload the cidr-filter plugin (PUT /api/v1/plugins/cidr-filter)" \
  tg_plugin_upload cidr-filter "$(tg_cidr_filter_wasm)"
require "bind it to the VIP denying 192.0.2.0/24" tg_vip_set_plugins "$VIP" "[$(tg_cidr_filter_deny 192.0.2.0/24)]"
check_round_robin 2

step "cidr-filter denying the client"
dropped0=$(tg_vip_dropped "$VIP" plugin)
verdicts0=$(tg_binding_drops "$VIP")
require "bind it to the VIP denying $CIP/32" tg_vip_set_plugins "$VIP" "[$(tg_cidr_filter_deny "$CIP/32")]"
http_attempts 2 4
dropped1=$(tg_vip_dropped "$VIP" plugin)
verdicts1=$(tg_binding_drops "$VIP")
say "   VIP drops (plugin): +$((dropped1 - dropped0)); binding drop verdicts: +$((verdicts1 - verdicts0))"
say "   tungate: $(tg_counters_summary)"
expect "no request succeeds while the client is denied" "$HTTP_OK" -eq 0
expect "the VIP's plugin drop counter rose" "$((dropped1 - dropped0))" -gt 0
expect "the binding counted drop verdicts" "$((verdicts1 - verdicts0))" -gt 0

step "kill -9 and restart: the binding survives"
tg_kill9
tg_start
expect "the binding runs in the data path of the new process (GET /api/v1/stats)" "$(tg_bindings "$VIP")" == "cidr-filter"
http_attempts 1 4
expect "after the restart the client is still denied" "$HTTP_OK" -eq 0
expect "the new process counts the drops" "$(tg_vip_dropped "$VIP" plugin)" -gt 0

step "unbind"
require "unbind (PUT the VIP with no plugins)" tg_vip_set_plugins "$VIP" "[]"
check_round_robin 2
check_bulk_intact 1
check "unbinding took effect without another restart (same process)" alive "$TG_PID"
expect "no binding is left on the VIP" "$(tg_bindings "$VIP")" == ""
