#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: tungate run with decap = "userspace" on the TPACKET rings (io = "packet"): no tunnel at LD-OUT, tungate decapsulates
# lab-needs: tungate
#
# Issue 6, scenario 2: as kernel-decap, but LD-OUT has no ipip tunnel at all (only the
# module's fallback tunl0, down): tungate reads the outer IPIP packets on eth1 and its
# nftables rule keeps the kernel from answering them with ICMP (checked: no
# IcmpOutDestUnreachs at LD-OUT). On the TPACKET rings (`io = "packet"`): `auto` would take
# native XDP on the guest's veth, which userspace-decap-xdp covers.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init
tungate_decap_scenario userspace packet
