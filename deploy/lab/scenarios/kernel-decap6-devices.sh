#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: decap = "kernel" over IPv6: `tungate net apply` builds ip6tnl with GUE and FOU, and ip6gre, on the lab kernel
# lab-needs: tungate
#
# Issue 16, Part 2 item 1. The host kernel has no ip6_tunnel, ip6_gre or fou modules, so
# only the lab builds these devices for real. LD-OUT gets GIP6 on eth1 (MTU 1500) and a
# configuration with three IPv6 peers (no traffic: the peers need not exist): g6 with
# `tunnel = "gue"`, f6 with `tunnel = "fou"` on port 5555, r6 with `tunnel = "gre"` and
# `key = 7`, each serving VIP6. `tungate net apply` builds the IPv6 GUE receive port (`fou
# port 6080 gue -6`), the IPv6 FOU one (`ipproto 41 -6`), tg-g6/tg-f6 as ip6tnl ip6ip6 with
# `encap gue|fou encap-sport auto` and tg-r6 as ip6gre with the key, all with `encaplimit 4`
# and the MTU less each overhead (GUE 60, FOU 56, keyed ip6gre 56), and the IPv6 forwarding
# guard naming all three; `net plan` then finds nothing to change (the devices read back as
# built); `net down` removes devices, ports and guard.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init

GIP6=fd00:10::fe
VIP6=fd00:198::10

# ldout_has_tg_links: LD-OUT has a link whose name starts with tg-.
ldout_has_tg_links() {
  nsip ldout -o link show | grep -q ': tg-'
}

topo_up
# fou6 holds the IPv6 encapsulation ops of ip6tnl's `encap gue|fou`: nothing loads it on demand.
require "the IPv6 tunnel modules load" modprobe -d "$LAB_MODULES_DIR" -a ip6_tunnel ip6_gre fou fou6
nsip ldout address add "$GIP6/64" dev eth1 nodad

TG_CONFIG=$WORK/tungate-kdecap6.toml
TG_STATE=$WORK/tungate-state-kdecap6
printf '%s\n' \
  '[gateway]' "address6 = \"$GIP6\"" 'decap = "kernel"' '' \
  '[[peers]]' 'name = "g6"' 'address = "fd00:10::21"' 'tunnel = "gue"' "vips = [\"$VIP6\"]" '' \
  '[[peers]]' 'name = "f6"' 'address = "fd00:10::22"' 'tunnel = "fou"' 'port = 5555' "vips = [\"$VIP6\"]" '' \
  '[[peers]]' 'name = "r6"' 'address = "fd00:10::23"' 'tunnel = "gre"' 'key = 7' "vips = [\"$VIP6\"]" '' \
  '[[vips]]' "address = \"$VIP6\"" 'shared = true' >"$TG_CONFIG"

step "tungate net apply on LD-OUT"
check_fails "tungate net plan lists the changes first" tg_net_plan
require "tungate net apply builds the IPv6 devices" tg_net_apply
nsip ldout -d link show >>"$LAB_DETAIL"
nsip ldout fou show >>"$LAB_DETAIL"
# (each REGEX is matched line by line: one property per check)
check "tg-g6: ip6tnl ip6ip6" link_matches ldout tg-g6 'ip6tnl ip6ip6 '
check "tg-g6: encap gue encap-sport auto encap-dport 6080" link_matches ldout tg-g6 'encap gue encap-sport auto encap-dport 6080'
check "tg-g6: encaplimit 4" link_matches ldout tg-g6 'encaplimit 4'
check "tg-g6: mtu 1440 (1500 - 40 - 8 - 8 - 4)" link_matches ldout tg-g6 'mtu 1440 '
check "tg-f6: ip6tnl ip6ip6" link_matches ldout tg-f6 'ip6tnl ip6ip6 '
check "tg-f6: encap fou encap-sport auto encap-dport 5555" link_matches ldout tg-f6 'encap fou encap-sport auto encap-dport 5555'
check "tg-f6: encaplimit 4" link_matches ldout tg-f6 'encaplimit 4'
check "tg-f6: mtu 1444 (1500 - 40 - 8 - 8)" link_matches ldout tg-f6 'mtu 1444 '
check "tg-r6: ip6gre" link_matches ldout tg-r6 'ip6gre '
check "tg-r6: the key both ways" link_matches ldout tg-r6 'ikey 0.0.0.7 .*okey 0.0.0.7'
check "tg-r6: encaplimit 4" link_matches ldout tg-r6 'encaplimit 4'
check "tg-r6: mtu 1444 (1500 - 40 - 8 - 4 - 4)" link_matches ldout tg-r6 'mtu 1444 '
check "the IPv6 GUE receive port" link_fou_matches 'port 6080 gue -6'
check "the IPv6 FOU receive port hands IPv6 (41)" link_fou_matches 'port 5555 ipproto 41 -6'
expect "devices the IPv6 forwarding guard names" \
  "$(in_ns ldout nft list table ip6 tungate_guard | grep -c 'iifname "tg-[gfr]6"')" -eq 3
check "tungate net plan: nothing to change (the devices read back as built)" tg_net_plan

step "tungate net down"
check "tungate net down" tg_net_down
check_fails "no tg- device is left" ldout_has_tg_links
check_fails "no fou port is left" link_fou_matches 'port'
check_fails "no guard is left" in_ns ldout nft list table ip6 tungate_guard
