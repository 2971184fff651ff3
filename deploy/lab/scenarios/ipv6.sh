#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: an IPv6 VIP through IPVS with ip6ip6 return tunnels, kernel and userspace decap at LD-OUT
# lab-needs: tungate
#
# Issue 16, Part 2. Beside the IPv4 topology, IPv6 on both segments; LD-IN balances
# [VIP6]:80 over both RS with IPVS in tunnelling mode (`ipvsadm -A -t [VIP6]:80 -s rr`,
# `-a … -r [RIP6]:80 -i`: ip6ip6 DIP6->RIP6). rs1 is built by `tungate rs apply --gateway
# GIP6 --director DIP6` (its IPv6 fence: ip6ip6 from anyone else is counted and dropped), rs2 by hand with ip(8) — the INSTALL.md equivalent: VIP6 on lo, ip6tnl0 up (it
# receives IPVS's ip6ip6), an ip6tnl return tunnel RIP6->GIP6 in mode ip6ip6 (MTU 1500 - 48
# with the default encapsulation limit), `-6 rule from VIP6 table 1`, `-6 route default dev
# tunl6 table 1`, and no other route to the client; `tungate rs plan` on rs1 then finds
# nothing to change, and `tungate rs down` at the end removes its reply path. LD-OUT runs `tungate run` with `address6 = GIP6` and IPv6 peers,
# first with decap = "kernel": it builds tg-rs1/tg-rs2 as ip6tnl devices and the IPv6
# forwarding guard (nft table ip6 tungate_guard) itself, `tungate net plan` then finds nothing
# to change; with `net.ipv6.conf.all.forwarding=1` on LD-OUT, HTTP through both RS and the
# 200 KB file intact, tungate's VIP6 counter = the IPv6 packets the client received (no
# duplicate), LD-OUT's Ip6OutForwDatagrams unmoved while the guard counted the decapsulated
# packets it kept from the kernel's forwarding; `net down` removes devices and guard. Then
# the same traffic with decap = "userspace" on AF_XDP (io = "xdp"; no tunnel device at LD-OUT: tungate parses the
# ip6ip6 itself, behind the Destination Options header of the RS's stock ip6tnl, and finishes
# the partial TCP checksums the RS leaves to offload: the client's Tcp InCsumErrors stays +0).
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init

CIP6=fd00:203::10
LDIN_PUB6=fd00:203::1
LDOUT_PUB6=fd00:203::fe
VIP6=fd00:198::10
DIP6=fd00:10::1
GIP6=fd00:10::fe
declare -A RIP6_OF=([rs1]=fd00:10::11 [rs2]=fd00:10::12)
declare -A HTTP6_PID

# snmp6 ROLE FIELD: a counter of /proc/net/snmp6 in the role's namespace.
snmp6() {
  # shellcheck disable=SC2016 # an awk program, not a shell string
  in_ns "$1" awk -v f="$2" '$1 == f { print $2 }' /proc/net/snmp6
}

# from_vip6_at_client: IPv6 packets from VIP6 that reached the client's eth0 (a counter of
# the lab's own, in the client's prerouting: exact, unlike Ip6InReceives, which also counts
# neighbour discovery and the client's own loopback traffic).
from_vip6_at_client() {
  in_ns client nft list table ip6 labcount | sed -n 's/.*counter packets \([0-9]*\) bytes.*/\1/p'
}

# IPv6 beside the IPv4 topology, IPVS for [VIP6]:80, each RS's IPv6 reply path by hand and
# its HTTP server on [VIP6]:80.
ipv6_up() {
  local role
  printf '%s\n' "address add $CIP6/64 dev eth0 nodad" "route add $VIP6/128 via $LDIN_PUB6" |
    ns_batch client
  in_ns client nft -f - <<<"table ip6 labcount { chain fromvip { type filter hook prerouting priority 0; iifname \"eth0\" ip6 saddr $VIP6 counter; }; }"
  printf '%s\n' "address add $LDIN_PUB6/64 dev eth0 nodad" "address add $DIP6/64 dev eth1 nodad" \
    "address add $VIP6/128 dev lo" | ns_batch ldin
  printf '%s\n' "address add $LDOUT_PUB6/64 dev eth0 nodad" "address add $GIP6/64 dev eth1 nodad" |
    ns_batch ldout
  {
    echo "-A -t [$VIP6]:80 -s rr"
    for role in "${RS_ROLES[@]}"; do echo "-a -t [$VIP6]:80 -r [${RIP6_OF[$role]}]:80 -i"; done
  } | in_ns ldin ipvsadm -R
  for role in "${RS_ROLES[@]}"; do
    nsip "$role" address add "${RIP6_OF[$role]}/64" dev eth0 nodad
  done
  # rs1 by `tungate rs apply`; rs2 by hand with ip(8), as INSTALL.md shows.
  require "tungate rs apply builds rs1's IPv6 reply path (ip6tnl tunl6 to GIP6)" \
    in_ns rs1 "$LAB_TUNGATE" rs apply --gateway "$GIP6" --address "${RIP6_OF[rs1]}" --vip "$VIP6" \
    --reply-tunnel tunl6 --director "$DIP6" --state-file "$WORK/netcfg-rs6-rs1.json"
  # ip6tnl0 (the ip6_tunnel fallback device) receives IPVS's ip6ip6; replies from VIP6 go
  # into the return tunnel; the RS has no other route to the client.
  printf '%s\n' \
    "address add $VIP6/128 dev lo" \
    "link set ip6tnl0 up" \
    "link add tunl6 type ip6tnl mode ip6ip6 local ${RIP6_OF[rs2]} remote $GIP6 dev eth0" \
    "link set tunl6 up" \
    "route add ::/0 dev tunl6 table 1" | ns_batch rs2
  # (ip -batch takes no -6, and `rule` would read the address as IPv4 without it)
  nsip rs2 -6 rule add from "$VIP6" table 1
  for role in "${RS_ROLES[@]}"; do
    spawn "$role" "$WORK/http6-$role.log" \
      "$PYTHON" -S -m http.server --bind "$VIP6" --directory "$WORK/www-$role" 80
    HTTP6_PID[$role]=$SPAWNED_PID
  done
}

# http6_get PATH OUTFILE [MAX_SECONDS]: one request from the client to [VIP6].
http6_get() {
  in_ns client timeout "${3:-15}" busybox wget -q -O "$2" "http://[$VIP6]$1"
}

# LD-OUT's configuration: IPv6 peers, decap mode $1, I/O path $2 (userspace decap). The real
# servers send TCP with checksum offload: on AF_XDP tungate finishes the partial checksums of
# inner IPv6 segments itself (the TPACKET path reads the kernel's offload state).
ipv6_config() {
  TG_CONFIG=$WORK/tungate6.toml
  TG_STATE=$WORK/tungate-state6-$1
  printf '%s\n' \
    '[gateway]' "address = \"$GIP\"" "address6 = \"$GIP6\"" "decap = \"$1\"" "io = \"${2:-auto}\"" '' \
    '[[peers]]' 'name = "rs1"' "address = \"${RIP6_OF[rs1]}\"" "vips = [\"$VIP6\"]" '' \
    '[[peers]]' 'name = "rs2"' "address = \"${RIP6_OF[rs2]}\"" "vips = [\"$VIP6\"]" '' \
    '[[vips]]' "address = \"$VIP6\"" 'shared = true # LVS balances it over both real servers' \
    >"$TG_CONFIG"
}

# tg_guard_packets: what the IPv6 forwarding guard's rules counted, summed.
tg_guard_packets() {
  in_ns ldout nft list table ip6 tungate_guard |
    sed -n 's/.*counter packets \([0-9]*\) bytes.*/\1/p' | awk '{ s += $1 } END { print s + 0 }'
}

# tg_guard_devices: how many of tungate's tunnels the guard names.
tg_guard_devices() {
  in_ns ldout nft list table ip6 tungate_guard | grep -c 'iifname "tg-rs[12]"'
}

# Traffic through tungate in decap mode $1, with the checks every mode shares.
ipv6_traffic() {
  local mode=$1 io=${2:-auto} role i sum intact=0 fwd0 fwd1 rx0 rx1 tg0 tg1 guard0=0 guard1 csum0 csum1
  ipv6_config "$mode" "$io"
  tg_start
  step "LD-OUT in $mode decap mode, IPv6 peers"
  if [[ $io == xdp ]]; then
    expect "tungate forwards on native XDP (GET /api/v1/status: io.path)" "$(tg_api GET /api/v1/status | json_eval 'd["io"]["path"]')" == xdp
  fi
  if [[ $mode == kernel ]]; then
    for role in "${RS_ROLES[@]}"; do
      check "tungate run built tg-$role as an ip6tnl device ($GIP6 <- ${RIP6_OF[$role]})" \
        link_matches ldout "tg-$role" "ip6tnl ip6ip6 remote ${RIP6_OF[$role]} local $GIP6"
    done
    expect "the IPv6 forwarding guard (nft table ip6 tungate_guard) names both devices" \
      "$(tg_guard_devices)" -eq 2
    check "LD-OUT is as the configuration wants it (tungate net plan: nothing to change)" tg_net_plan
    guard0=$(tg_guard_packets)
  else
    check_fails "no tunnel of tungate's on LD-OUT in userspace mode" nsip ldout link show tg-rs1
  fi
  step "traffic to [$VIP6]:80 through tungate ($mode)"
  fwd0=$(snmp6 ldout Ip6OutForwDatagrams)
  rx0=$(from_vip6_at_client)
  tg0=$(tg_vip_forwarded "$VIP6")
  csum0=$(snmp client Tcp InCsumErrors)
  HTTP_OK=0
  HTTP_SERVED=()
  for i in 1 2 3 4; do
    if http6_get / "$WORK/page6" >>"$LAB_DETAIL" 2>&1; then
      HTTP_OK=$((HTTP_OK + 1))
      HTTP_SERVED+=("$(sed -n 's/^served by //p' "$WORK/page6")")
    else
      HTTP_SERVED+=("(failed)")
    fi
  done
  say "   4 requests to http://[$VIP6]/ answered by: ${HTTP_SERVED[*]}"
  expect "4 of 4 HTTP requests to the IPv6 VIP succeed" "$HTTP_OK" -eq 4
  expect "both real servers answer (IPVS round robin over ip6ip6)" "$(served_set)" == "rs1 rs2 "
  for i in 1 2; do
    rm -f "$WORK/bulk6.got"
    http6_get /bulk.bin "$WORK/bulk6.got" 30 >>"$LAB_DETAIL" 2>&1 || true
    sum=$(sha256sum "$WORK/bulk6.got" 2>/dev/null | cut -d' ' -f1 || true)
    echo "bulk6 download $i: $(stat -c %s "$WORK/bulk6.got" 2>/dev/null || echo 0) bytes, sha256 ${sum:-none}" >>"$LAB_DETAIL"
    if [[ $sum == "$BULK_SHA256" ]]; then intact=$((intact + 1)); fi
  done
  expect "the $BULK_BYTES-byte file arrives intact over IPv6 2 times" "$intact" -eq 2
  fwd1=$(snmp6 ldout Ip6OutForwDatagrams)
  csum1=$(snmp client Tcp InCsumErrors)
  rx1=$(from_vip6_at_client)
  tg1=$(tg_vip_forwarded "$VIP6")
  say "   tungate forwarded for $VIP6: +$((tg1 - tg0)) packets; client received +$((rx1 - rx0)) IPv6 packets from it"
  say "   LD-OUT kernel (IPv6 forwarding on): Ip6OutForwDatagrams +$((fwd1 - fwd0))"
  say "   tungate: $(tg_counters_summary)"
  expect "tungate forwarded the IPv6 replies (its VIP6 counter rose)" "$((tg1 - tg0))" -gt 0
  expect "tungate's VIP6 counter accounts for every IPv6 packet the client received (no duplicate)" \
    "$((tg1 - tg0))" -eq "$((rx1 - rx0))"
  expect "LD-OUT's kernel forwarded no IPv6 (Ip6OutForwDatagrams unchanged)" "$((fwd1 - fwd0))" -eq 0
  expect "the client's TCP dropped no reply for a bad checksum (Tcp InCsumErrors unchanged)" "$((csum1 - csum0))" -eq 0
  if [[ $mode == kernel ]]; then
    guard1=$(tg_guard_packets)
    say "   the guard dropped +$((guard1 - guard0)) decapsulated packets the kernel would have forwarded"
    expect "the guard kept the decapsulated replies from the kernel's forwarding" "$((guard1 - guard0))" -gt 0
  fi
  tg_stop
  check "tungate net down ($mode)" tg_net_down
  expect "no tunnel of tungate's is left on LD-OUT" \
    "$(nsip ldout -o link show | awk -F': ' '$2 ~ /^tg-/ { print $2 }' | sed 's/@.*//' | tr '\n' ' ')" == ""
  check_fails "no IPv6 guard is left on LD-OUT" in_ns ldout nft list table ip6 tungate_guard
}

# rs6_fence_drops PROTOCOL: what rs1's IPv6 fence (`rs apply --director DIP6`) counted for
# PROTOCOL (ip6ip6 | 4in6).
rs6_fence_drops() {
  in_ns rs1 nft list chain ip6 tungate_rs fence |
    sed -n "s/.*counter packets \([0-9]*\) bytes.*comment \"tungate: drop ipv6 $1 .*/\1/p"
}

# The IPv6 form of the RS fence (CVE-2020-10136): rs1's ip6tnl0 is up to receive IPVS's
# ip6ip6, so without the fence it would take ip6ip6 from anyone. The traffic above came from
# the director and was not counted; ip6ip6 from another address on the same segment is
# counted and dropped and never reaches ip6tnl0.
rs1_fence6_checks() {
  local rx0 rx1 d0 d1
  step "rs1's IPv6 tunnel fence (director: $DIP6)"
  expect "rs1's IPv6 fence counted none of IPVS's ip6ip6 (from the director)" "$(rs6_fence_drops ip6ip6)" -eq 0
  printf '%s\n' "address add fd00:10::66/64 dev eth1 nodad" \
    "link add probe6 type ip6tnl mode ip6ip6 local fd00:10::66 remote ${RIP6_OF[rs1]} dev eth1" \
    "link set probe6 up" | ns_batch ldin
  nsip ldin -6 route add fd00:99::1/128 dev probe6
  rx0=$(link_stat rs1 ip6tnl0 rx_packets)
  d0=$(rs6_fence_drops ip6ip6)
  in_ns ldin ping -6 -q -c 3 -i 0.2 -W 1 fd00:99::1 >>"$LAB_DETAIL" 2>&1 || true
  rx1=$(link_stat rs1 ip6tnl0 rx_packets)
  d1=$(rs6_fence_drops ip6ip6)
  expect "ip6ip6 from a non-director: rs1's IPv6 fence counted and dropped all 3" "$((d1 - d0))" -eq 3
  expect "none of it reached rs1's ip6tnl0" "$((rx1 - rx0))" -eq 0
  nsip ldin link del probe6
}

modprobe -d "$LAB_MODULES_DIR" -a ip6_tunnel
topo_up
ipv6_up
# IPv6 forwarding on makes "the kernel forwarded nothing" mean something: it could.
in_ns ldout sysctl -qw net.ipv6.conf.all.forwarding=1
step "IPv6 real servers (rs1 by tungate rs apply, rs2 by hand as INSTALL.md shows)"
for role in "${RS_ROLES[@]}"; do
  expect "$role's ip6tnl return tunnel has MTU 1452 (1500 - 40 - 8 of the encapsulation limit)" \
    "$(in_ns "$role" cat /sys/class/net/tunl6/mtu)" -eq 1452
  check_fails "$role has no route to the client (CIP6) from its own address" nsip "$role" -6 route get "$CIP6"
  wait_until 60 "HTTP server on [$VIP6]:80 in $role" --alive "${HTTP6_PID[$role]}" \
    in_ns "$role" busybox wget -q -O /dev/null "http://[$VIP6]/"
done
check "tungate rs plan on rs1: nothing to change" in_ns rs1 "$LAB_TUNGATE" rs plan \
  --gateway "$GIP6" --address "${RIP6_OF[rs1]}" --vip "$VIP6" --reply-tunnel tunl6 \
  --director "$DIP6" --state-file "$WORK/netcfg-rs6-rs1.json"
ipv6_traffic kernel
ipv6_traffic userspace xdp
rs1_fence6_checks
check "tungate rs down on rs1" in_ns rs1 "$LAB_TUNGATE" rs down --gateway "$GIP6" \
  --address "${RIP6_OF[rs1]}" --vip "$VIP6" --reply-tunnel tunl6 --director "$DIP6" \
  --state-file "$WORK/netcfg-rs6-rs1.json"
check_fails "rs1's IPv6 fence left with it (no table ip6 tungate_rs)" in_ns rs1 nft list table ip6 tungate_rs
check_fails "rs1's reply tunnel left with it" nsip rs1 link show tunl6
expect "and its VIP6 rule too" "$(nsip rs1 -6 rule show | grep -c "$VIP6" || true)" -eq 0
