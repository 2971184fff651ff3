#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: userspace decap on the AF_XDP path (io = "xdp"): native XDP on LD-OUT's veth, the same checks as userspace-decap
# lab-needs: tungate
#
# Issue 14: as userspace-decap, with `gateway.io = "xdp"`: tungate attaches its XDP program
# to eth1 (native mode on the guest kernel's veth), receives the replies on AF_XDP sockets and
# transmits them by AF_XDP from the same UMEM; the 200 KB file still arrives intact. After a
# stop, no XDP program is left on eth1 (it was attached through a BPF link).
#
# The real servers' TCP stacks send with checksum offload: their segments cross the veths
# and the bridge with the checksum left partial (CHECKSUM_PARTIAL: the field holds only the
# pseudo-header sum), and an AF_XDP frame carries no such state. Before tungate finished
# those checksums itself, every reply reached the client with a bad checksum (captured
# 2026-12-05: 55 of 55 SYN-ACKs with the field 0x6677, the pseudo-header sum, and the
# client's Tcp InCsumErrors +55): the client capture and the InCsumErrors check catch it.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init
tungate_decap_scenario userspace xdp
