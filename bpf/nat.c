// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* nat.c: entry points only. The same NAT code runs at XDP and at TC; each interface
 * role (uplink: from the internet; vpc: from instances) has its own entry point so the
 * direction is a constant and not a per-packet lookup. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/dispatch.h"

SEC("xdp")
int xdp_uplink(struct xdp_md *ctx)
{
	return nat_dispatch(ctx, HOOK_XDP, DIR_INBOUND);
}

SEC("xdp")
int xdp_vpc(struct xdp_md *ctx)
{
	return nat_dispatch(ctx, HOOK_XDP, DIR_OUTBOUND);
}

SEC("tc")
int tc_uplink(struct __sk_buff *ctx)
{
	return nat_dispatch(ctx, HOOK_TC, DIR_INBOUND);
}

SEC("tc")
int tc_vpc(struct __sk_buff *ctx)
{
	return nat_dispatch(ctx, HOOK_TC, DIR_OUTBOUND);
}

/* Attached at TC ingress beside the XDP programs: see fragment_companion. */
SEC("tc")
int tc_uplink_fragments(struct __sk_buff *ctx)
{
	return fragment_companion(ctx, DIR_INBOUND);
}

SEC("tc")
int tc_vpc_fragments(struct __sk_buff *ctx)
{
	return fragment_companion(ctx, DIR_OUTBOUND);
}

/* Run by the Go session collector (BPF_PROG_TEST_RUN) for each session it found idle,
 * and by purges: the removal, with its reference counts, happens here, atomically
 * with the packet path's own updates. */
SEC("syscall")
int expire_session(struct expire_request *req)
{
	struct flow_key key = req->key;
	/* The caller reads the sessions' clock: a syscall program cannot read the coarse
	 * one. */
	__u64 now = req->now_ns;

	__u32 flags = 0;

	req->expired = session_remove(&key, now, req->force != 0, &flags);
	req->removed_flags = flags;
	return 0;
}

char __license[] SEC("license") = "Dual BSD/GPL";
