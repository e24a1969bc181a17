// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* nat.c: entry points only. The same NAT code runs at XDP and at TC; each interface
 * role (uplink: from the internet; vpc: from instances) has its own entry point so the
 * direction is a constant and not a per-packet lookup. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/eip.h"

SEC("xdp")
int xdp_uplink(struct xdp_md *ctx)
{
	return eip_nat(ctx, HOOK_XDP, DIR_INBOUND);
}

SEC("xdp")
int xdp_vpc(struct xdp_md *ctx)
{
	return eip_nat(ctx, HOOK_XDP, DIR_OUTBOUND);
}

SEC("tc")
int tc_uplink(struct __sk_buff *ctx)
{
	return eip_nat(ctx, HOOK_TC, DIR_INBOUND);
}

SEC("tc")
int tc_vpc(struct __sk_buff *ctx)
{
	return eip_nat(ctx, HOOK_TC, DIR_OUTBOUND);
}

char __license[] SEC("license") = "Dual BSD/GPL";
