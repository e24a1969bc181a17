/* new_flow.h: reading a new NAT flow's records ahead. In a table larger than the
 * cache a new flow waits on its misses one after the other: an SNAT flow on its
 * outbound lookup, its mapping's bucket and its inbound record's bucket, whose key
 * holds the port the search takes (BenchmarkLineProfile/snat-own-mapping at 100,000
 * sessions: the lookup's and the inbound insert's first reads, 27% each); a DNAT flow
 * on its inbound lookup and its outbound record's bucket. When a packet is likely to
 * open a flow, the other buckets are read before the lookup, their misses overlapping
 * it. Likely: a TCP SYN, or a packet on a CPU whose recent lookups in its direction
 * mostly missed (a storm of connections, a resolver's queries from fresh ports).
 * Elsewhere the reads would only cost, so established traffic pays a per-CPU score's
 * read, and its write while the score falls. */
#pragma once

#include "maps.h"
#include "ports.h"
#include "rewrite.h"
#include "session_table.h"
#include "stats.h"

/* A CPU's recent lookups in a direction: up NEW_FLOW_MISS for a miss, down one for a hit,
 * within [0, NEW_FLOW_SCORE_MAX]. It rises when more than a quarter of the packets open
 * flows, about where the reads ahead start to pay: an established packet read ahead
 * for costs 80-100 ns more (harness, established SNAT with every packet read ahead),
 * a new flow saves 200-300 (live, and harness at 100,000 sessions). */
#define NEW_FLOW_MISS 3
#define NEW_FLOW_SCORE_MAX 64
#define NEW_FLOW_LIKELY 16

/* One score a direction (enum direction), per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u32);
} new_flow_scores SEC(".maps");

/* The scores' keys, in .rodata rather than on the stack: the packet path's frame,
 * with snat_open's and record_insert's, is at the verifier's 512 bytes. */
const __u32 new_flow_score_keys[2] = {DIR_INBOUND, DIR_OUTBOUND};

/* Whether a packet is likely to open a flow in direction dir. */
static __always_inline bool new_flow_likely(const struct l4_fields *l4, const enum direction dir)
{
	__u32 *score;

	if (l4->kind == L4_TCP)
		return (l4->tcp_flags & (SEG_SYN | SEG_ACK)) == SEG_SYN;
	score = bpf_map_lookup_elem(&new_flow_scores, &new_flow_score_keys[dir]);
	return score && *score >= NEW_FLOW_LIKELY;
}

/* Count a lookup in direction dir: found or missed. */
static __always_inline void new_flow_count(const enum direction dir, bool found)
{
	__u32 *score = bpf_map_lookup_elem(&new_flow_scores, &new_flow_score_keys[dir]);

	if (!score)
		return;
	if (!found)
		*score = *score + NEW_FLOW_MISS > NEW_FLOW_SCORE_MAX ? NEW_FLOW_SCORE_MAX : *score + NEW_FLOW_MISS;
	else if (*score)
		*score -= 1;
}

/* The ports and protocol of a flow in one argument: a global function takes five. */
#define FLOW_PORTS(sport, dport, protocol) ((__u64)(sport) | (__u64)(dport) << 16 | (__u64)(protocol) << 32)

/* Start reading the buckets a new SNAT flow from saddr to daddr would use: its
 * mapping's, and its inbound record's for the port its search would take first, the
 * search being drawn now (port_searches) for mapping_acquire to use as drawn. A global
 * function: verified once, out of the packet path's budget. */
__noinline int snat_read_ahead(const struct nat_config *cfg, __be32 saddr, __be32 daddr, __u64 ports)
{
	struct snat_rule_key rule_key = {32, saddr};
	struct endpoint inside = {saddr, (__be16)ports, (__u8)(ports >> 32), 0};
	__be16 dport = ports >> 16;
	struct port_search *ps;
	struct snat_pool *pool;
	__u32 zero = 0, port;
	__be32 eip = 0;

	if (!cfg)
		return 0;
	pool = bpf_map_lookup_elem(&snat_rules, &rule_key);
	ps = bpf_map_lookup_elem(&port_searches, &zero);
	if (!pool || !ps || !port_search_draw(ps, pool, cfg, &inside))
		return 0;
	port = port_search_guess(ps, &eip);
	/* The reads last and together, with the caller's lookup right after them: a
	 * read issued before the rule lookup and the draw waited alone, the CPU's window
	 * of work in flight full before the others were issued. */
	record_prefetch(cfg, saddr, 0, inside.port, 0, inside.protocol, RECORD_MAPPING);
	if (port)
		record_prefetch(cfg, daddr, eip, dport, bpf_htons(port), inside.protocol, RECORD_INBOUND);
	return 0;
}

/* Start reading the bucket of the outbound record a new DNAT flow from saddr to the
 * forward entry at daddr would insert: the entry's target and the remote's endpoint.
 * A global function, like snat_read_ahead. */
__noinline int dnat_read_ahead(const struct nat_config *cfg, __be32 saddr, __be32 daddr, __u64 ports)
{
	struct endpoint external = {daddr, (__be16)(ports >> 16), (__u8)(ports >> 32), 0};
	struct forward_target *target;

	if (!cfg)
		return 0;
	target = bpf_map_lookup_elem(&forward_ports, &external);
	if (target)
		record_prefetch(cfg, target->addr, saddr, target->port, (__be16)ports, external.protocol,
				RECORD_OUTBOUND);
	return 0;
}
