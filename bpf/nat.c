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

/* What each expire_one call shares: bpf_loop hands its callback a stack pointer, not
 * the syscall context. */
struct expire_run {
	__u64 now_ns;
	__u32 force;
	__u32 expired;
};

static long expire_one(__u32 i, struct expire_run *run)
{
	struct expire_item *item = bpf_map_lookup_elem(&expire_queue, &i);
	__u32 flags = 0;

	if (!item)
		return 1;
	item->expired = session_remove(&item->key, run->now_ns, run->force != 0, &flags);
	item->removed_flags = flags;
	run->expired += item->expired;
	return 0;
}

/* Run by the Go session collector (BPF_PROG_TEST_RUN) for the sessions it found idle,
 * and by purges, a batch of them in expire_queue a run: the removal, with its
 * reference counts, happens here, atomically with the packet path's own updates. */
SEC("syscall")
int expire_sessions(struct expire_request *req)
{
	/* The caller reads the sessions' clock: a syscall program cannot read the coarse
	 * one. */
	struct expire_run run = { .now_ns = req->now_ns, .force = req->force };
	__u32 count = req->count;

	if (count > EXPIRE_BATCH)
		count = EXPIRE_BATCH;
	bpf_loop(count, expire_one, &run, 0);
	req->expired = run.expired;
	return 0;
}

char __license[] SEC("license") = "Dual BSD/GPL";
