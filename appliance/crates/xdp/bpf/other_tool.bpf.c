// SPDX-License-Identifier: Apache-2.0
/*
 * A test fixture, never loaded by tungate: "another tool's" XDP program that passes every
 * frame. The tests attach it with `ip link set dev DEV xdp obj bpf/other_tool.bpf.o sec xdp`
 * and check that tungate refuses to replace it.
 */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int other_tool_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Apache-2.0";
