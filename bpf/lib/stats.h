/* stats.h: the reason counters (why a packet left the fast path) and per-EIP metering. */
#pragma once

#include "ctx.h"
#include "maps.h"

enum direction {
	DIR_INBOUND,  /* internet -> instance, seen on the uplink */
	DIR_OUTBOUND, /* instance -> internet, seen on the VPC side */
};

static __always_inline void count_reason(enum reason reason)
{
	__u32 key = reason;
	__u64 *count = bpf_map_lookup_elem(&reason_counters, &key);

	if (count)
		*count += 1;
}

static __always_inline int pass_with(const enum hook hook, enum reason reason)
{
	count_reason(reason);
	return ctx_pass(hook);
}

static __always_inline int drop_with(const enum hook hook, enum reason reason)
{
	count_reason(reason);
	return ctx_drop(hook);
}

static __always_inline void count_eip(__u32 slot, const enum direction dir, __u32 ip_bytes)
{
	struct eip_counters *c = bpf_map_lookup_elem(&counters_by_slot, &slot);

	if (!c)
		return;
	if (dir == DIR_INBOUND) {
		c->in_packets++;
		c->in_bytes += ip_bytes;
	} else {
		c->out_packets++;
		c->out_bytes += ip_bytes;
	}
}
