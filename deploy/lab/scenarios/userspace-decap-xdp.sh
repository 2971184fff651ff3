#!/usr/bin/env bash
# lab-status: pending
# lab-summary: userspace decap on the AF_XDP path (io = "xdp"): native XDP on LD-OUT's veth, the same checks as userspace-decap
# lab-needs: tungate
#
# Issue 14: as userspace-decap, with `gateway.io = "xdp"`: tungate attaches its XDP program
# to eth1 (native mode on the guest kernel's veth), receives the replies on AF_XDP sockets and
# transmits them by AF_XDP from the same UMEM; the 200 KB file still arrives intact. After a
# stop, no XDP program is left on eth1 (it was attached through a BPF link).
#
# Pending: on the guest's 6.1 kernel the program attaches and tungate counts the replies as
# forwarded, but the client's HTTP requests fail (2026-12-05). Suspected cause: the real
# servers' TCP stacks send through veths and a bridge with checksum offload
# (CHECKSUM_PARTIAL); the TPACKET path carries that state in its virtio-net header and the
# kernel completes the checksum on transmit, AF_XDP carries no such state. That is why
# `gateway.io = "auto"` takes the TPACKET rings on virtual devices.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init
tungate_decap_scenario userspace xdp
