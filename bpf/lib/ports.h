/* ports.h: NAT gateway port allocation: an SNAT entry's external ports, taken
 * one at a time with BPF_NOEXIST, and the endpoint-independent mappings that hold them. */
#pragma once

#include "conntrack.h"


/* The search state bpf_loop's callback works on: a copy of the pool's EIPs, since the
 * callback sees only what it looks up. It lives in a per-CPU map (port_searches), not
 * on the stack: the session-opening path's stack is short. */
struct port_search {
	__be32 eips[MAX_POOL_EIPS];
	struct endpoint inside;
	struct endpoint outside; /* out */
	__u32 count;
	__u32 start;
	__u32 offset;
	__u32 range;
	__u32 port;  /* the port the EIPs are tried at */
	__u16 port_min;
	__u8 walk;   /* the range fits the budget: walk it instead of drawing */
	__u8 table_full; /* out: ports_in_use has no room (a full session table, not a full pool) */
	__u32 found_index; /* out: index into eips, MAX_POOL_EIPS when none */
};

/* One search per CPU: the packet path never sleeps, and one search runs at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_search);
} port_searches SEC(".maps");

/* Probe i: the first `count` probes try to keep the internal port on each EIP
 * (RFC 4787 REQ-? "port preservation"); the next ones try every EIP at one port, then
 * at another. When the whole range fits in the probe budget they walk it from a random
 * offset, so a free port is always found. Otherwise each port is drawn at random (RFC
 * 6056 section 3.3.1): kept ports form dense runs, and a walk starting inside one would
 * spend the budget on it. A port is taken by BPF_NOEXIST, so two CPUs never take the
 * same one. */
static long probe_port(__u32 i, void *unused)
{
	__u32 zero = 0, n, idx, port;
	struct port_search *ps = bpf_map_lookup_elem(&port_searches, &zero);
	struct endpoint out = {};
	long err;

	if (!ps)
		return 1;
	n = ps->count;
	if (n == 0 || n > MAX_POOL_EIPS || ps->range == 0)
		return 1;
	idx = (ps->start + i) % n;
	if (i < n) {
		port = bpf_ntohs(ps->inside.port);
		if (port < ps->port_min || port >= (__u32)ps->port_min + ps->range)
			return 0;
	} else {
		if ((i - n) % n == 0)
			ps->port = ps->walk ? ps->offset + (i - n) / n : bpf_get_prandom_u32();
		port = ps->port_min + ps->port % ps->range;
	}
	opaque(idx);
	if (idx >= MAX_POOL_EIPS)
		return 1;
	out.addr = ps->eips[idx];
	out.port = bpf_htons(port);
	out.protocol = ps->inside.protocol;
	err = bpf_map_update_elem(&ports_in_use, &out, &ps->inside, BPF_NOEXIST);
	if (err == 0) {
		ps->outside = out;
		ps->found_index = idx;
		return 1;
	}
	/* The table is full, not the port taken: no other port will do better. */
	if (err == -E2BIG) {
		ps->table_full = 1;
		return 1;
	}
	return 0;
}

/* Knuth's multiplicative hash: spreads consecutive addresses over the pool. */
static __always_inline __u32 addr_hash(__be32 addr)
{
	return (bpf_ntohl(addr) * 2654435761u) >> 8;
}

/* Find or make the mapping of an internal endpoint and take a reference on it. */
static __always_inline enum reason mapping_acquire(const struct endpoint *inside, const struct snat_pool *pool,
						   const struct nat_config *cfg, struct source_usage *usage,
						   struct mapping *out)
{
	struct mapping *m = bpf_map_lookup_elem(&mappings, inside);
	struct port_search *ps;
	__u32 zero = 0;
	struct mapping fresh = {};
	__u32 n, i, probes;

	if (m) {
		if (__sync_fetch_and_add(&m->sessions, 1) == 0) {
			/* The collector is removing it: do not revive a freed port. */
			__sync_fetch_and_add(&m->sessions, -1);
			return REASON_DROP_NAT_MAPPING_EXPIRING;
		}
		*out = *m;
		return REASON_MAX;
	}

	if (__sync_fetch_and_add(&usage->ports, 1) >= cfg->max_ports_per_source) {
		__sync_fetch_and_add(&usage->ports, -1);
		return REASON_DROP_NAT_PORT_QUOTA;
	}
	n = pool->eip_count;
	if (n == 0 || n > MAX_POOL_EIPS) {
		__sync_fetch_and_add(&usage->ports, -1);
		return REASON_DROP_NAT_PORTS_EXHAUSTED;
	}
	ps = bpf_map_lookup_elem(&port_searches, &zero);
	if (!ps) {
		__sync_fetch_and_add(&usage->ports, -1);
		return REASON_DROP_NAT_PORTS_EXHAUSTED;
	}
	__builtin_memset(ps, 0, sizeof(*ps));
	ps->inside = *inside;
	ps->port_min = cfg->port_min;
	ps->range = cfg->port_max >= cfg->port_min ? (__u32)cfg->port_max - cfg->port_min + 1 : 0;
	ps->offset = ps->range ? bpf_get_prandom_u32() % ps->range : 0;
	ps->found_index = MAX_POOL_EIPS;
	if (pool->affinity) {
		/* Paired: this internal address always leaves from the same EIP. */
		i = addr_hash(inside->addr) % n;
		opaque(i);
		if (i >= MAX_POOL_EIPS)
			i = 0;
		ps->eips[0] = pool->eips[i];
		ps->count = 1;
	} else {
		__builtin_memcpy(ps->eips, pool->eips, sizeof(ps->eips));
		ps->count = n;
		ps->start = bpf_get_prandom_u32() % n;
	}
	probes = ps->count * (ps->range + 1);
	ps->walk = probes <= cfg->max_port_probes;
	if (!ps->walk)
		probes = cfg->max_port_probes;
	bpf_loop(probes, probe_port, NULL, 0);
	if (ps->found_index >= MAX_POOL_EIPS) {
		__sync_fetch_and_add(&usage->ports, -1);
		return ps->table_full ? REASON_DROP_NAT_TABLE_FULL : REASON_DROP_NAT_PORTS_EXHAUSTED;
	}
	if (pool->affinity)
		i = addr_hash(inside->addr) % n;
	else
		i = ps->found_index;
	opaque(i);
	if (i >= MAX_POOL_EIPS)
		i = 0;
	fresh.outside = ps->outside;
	fresh.sessions = 1;
	fresh.counter_slot = pool->counter_slots[i];
	if (bpf_map_update_elem(&mappings, inside, &fresh, BPF_NOEXIST) < 0) {
		/* Full, or another CPU mapped the same endpoint this instant: then its
		 * mapping is this one's too, and the port claimed here goes back. */
		bpf_map_delete_elem(&ports_in_use, &ps->outside);
		__sync_fetch_and_add(&usage->ports, -1);
		m = bpf_map_lookup_elem(&mappings, inside);
		if (!m)
			return REASON_DROP_NAT_TABLE_FULL;
		if (__sync_fetch_and_add(&m->sessions, 1) == 0) {
			__sync_fetch_and_add(&m->sessions, -1);
			return REASON_DROP_NAT_MAPPING_EXPIRING;
		}
		*out = *m;
		return REASON_MAX;
	}
	*out = fresh;
	return REASON_MAX;
}
