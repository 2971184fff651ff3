#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: userspace decap on the AF_XDP path (io = "xdp"): native XDP on LD-OUT's veth, the same checks as userspace-decap
# lab-needs: tungate
#
# Issue 14: as userspace-decap, with `gateway.io = "xdp"`: tungate attaches its XDP program
# to eth1 (native mode on the guest kernel's veth), receives the replies on AF_XDP sockets and
# transmits them by AF_XDP from the same UMEM; the 200 KB file still arrives intact. After a
# stop, no XDP program is left on eth1 (it was attached through a BPF link).
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init
tungate_decap_scenario userspace xdp
