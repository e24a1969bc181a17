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

/* Each reason's kind, in .rodata: the packet path reads it where a parser's reason may
 * be either, and Go reads it from the object (dataplane.Reason.IsDrop), so the list
 * has one owner. */
const enum reason_kind reason_kinds[REASON_SLOTS] = {
	[REASON_PASS_NOT_IPV4] = REASON_KIND_PASS,
	[REASON_PASS_NOT_BOUND] = REASON_KIND_PASS,
	[REASON_PASS_TTL_EXPIRING] = REASON_KIND_PASS,
	[REASON_PASS_NO_NEIGH] = REASON_KIND_PASS,
	[REASON_PASS_MTU_EXCEEDED] = REASON_KIND_PASS,
	[REASON_PASS_FIB_OTHER] = REASON_KIND_PASS,
	[REASON_PASS_FRAGMENT_TO_TC] = REASON_KIND_PASS,
	[REASON_PASS_VLAN_TAGGED] = REASON_KIND_PASS,
	[REASON_PASS_BROADCAST_MULTICAST] = REASON_KIND_PASS,
	[REASON_HELD_FRAGMENT] = REASON_KIND_HELD,
	[REASON_DROP_TRUNCATED_ETH] = REASON_KIND_DROP,
	[REASON_DROP_BAD_IP_HEADER] = REASON_KIND_DROP,
	[REASON_DROP_BAD_IP_LENGTH] = REASON_KIND_DROP,
	[REASON_DROP_TRUNCATED_L4] = REASON_KIND_DROP,
	[REASON_DROP_BAD_TCP_HEADER] = REASON_KIND_DROP,
	[REASON_DROP_BAD_UDP_LENGTH] = REASON_KIND_DROP,
	[REASON_DROP_BAD_ICMP_ERROR] = REASON_KIND_DROP,
	[REASON_DROP_ICMP_MISMATCH] = REASON_KIND_DROP,
	[REASON_DROP_CUT_THROUGH_SPOOF] = REASON_KIND_DROP,
	[REASON_DROP_SPOOFED_SOURCE] = REASON_KIND_DROP,
	[REASON_DROP_UNTRANSLATED_SOURCE] = REASON_KIND_DROP,
	[REASON_DROP_BOGON_SOURCE] = REASON_KIND_DROP,
	[REASON_DROP_UNPUBLISHED_DESTINATION] = REASON_KIND_DROP,
	[REASON_DROP_NAT_NO_SESSION] = REASON_KIND_DROP,
	[REASON_DROP_NAT_UNSUPPORTED] = REASON_KIND_DROP,
	[REASON_DROP_NAT_PORTS_EXHAUSTED] = REASON_KIND_DROP,
	[REASON_DROP_NAT_PORT_QUOTA] = REASON_KIND_DROP,
	[REASON_DROP_NAT_SESSION_QUOTA] = REASON_KIND_DROP,
	[REASON_DROP_NAT_TABLE_FULL] = REASON_KIND_DROP,
	[REASON_DROP_NAT_MAPPING_EXPIRING] = REASON_KIND_DROP,
	[REASON_DROP_NAT_CONTENDED] = REASON_KIND_DROP,
	[REASON_DROP_FRAGMENT_NO_STATE] = REASON_KIND_DROP,
};

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

/* Leave with a reason that may be a pass or a drop (a parser's), by its kind; one
 * without a kind is dropped. */
static __always_inline int leave_with(const enum hook hook, enum reason reason)
{
	__u32 r = reason;

	if (r < REASON_SLOTS && reason_kinds[r] == REASON_KIND_PASS)
		return pass_with(hook, reason);
	return drop_with(hook, reason);
}

/* For a candidate path that found the packet is not its own: sets *found to false and
 * returns nothing the caller uses. (A flag and not a negative verdict: the verifier
 * cannot tell a helper's verdict is not negative.) */
static __always_inline int not_found(bool *found)
{
	*found = false;
	return 0;
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
