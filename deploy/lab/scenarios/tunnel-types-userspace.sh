#!/usr/bin/env bash
# lab-status: enabled
# lab-summary: GUE and GRE return tunnels with userspace decap at LD-OUT, and the RS fence
# lab-needs: tungate
#
# Issue 16, Part 1: the same as tunnel-types.sh with decap = "userspace": LD-OUT has no
# tunnel device and no fou port; tungate parses GUE (UDP 6080, several source ports) and
# GRE itself; the RS side and its fence are the same.
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
lab_init
tunnel_types_scenario userspace
