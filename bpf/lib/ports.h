/* ports.h: NAT gateway port allocation: an SNAT entry's external ports, claimed a bit
 * at a time in their EIP's port bitmap (port_bitmaps), and the endpoint-independent
 * mappings that hold them. */
#pragma once

#include "conntrack.h"
#include "mapping.h"
#include "port_bitmap.h"

/* The search state bpf_loop's callback works on: a copy of the pool's EIPs and their
 * bitmaps, since the callback sees only what it looks up. It lives in a per-CPU map
 * (port_searches), not on the stack: the session-opening path's stack is short. */
struct port_search {
	__be32 eips[MAX_POOL_EIPS];
	__u32 blocks[MAX_POOL_EIPS];
	struct endpoint inside;
	struct endpoint outside; /* out */
	__u32 count;
	__u32 start;
	__u32 offset; /* walking: the first word taken, from the range's first */
	__u32 words;  /* the words the range spans */
	__u32 from;   /* the port the EIPs are searched from, */
	__u32 lo;     /* in [lo, hi] */
	__u32 hi;
	__u32 tried;  /* the EIP (index into eips) the probe tries */
	__u16 port_min;
	__u16 port_max;
	__u32 walk;        /* the range's words fit the budget: walk them instead of drawing */
	__u32 found_index; /* out: index into eips, MAX_POOL_EIPS when none */
	__u32 word_key;    /* port_word's lookup key */
	__u32 first_draw;  /* where the first search after the kept-port probes starts */
	__u32 drawn;       /* 1: drawn for `inside` (port_search_draw) and not used since */
};

/* One search per CPU: the packet path never sleeps, and one search runs at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct port_search);
} port_searches SEC(".maps");

/* Where the search of round r over the pool's EIPs starts: in the walk, a random port
 * of the range's next word; otherwise a random port of the range. */
static __always_inline __u32 search_start(const struct port_search *ps, __u32 r)
{
	if (ps->walk)
		return ((ps->port_min >> 6) + (ps->offset + r) % ps->words) << 6 | (bpf_get_prandom_u32() & 63);
	return ps->port_min + bpf_get_prandom_u32() % ((__u32)ps->port_max - ps->port_min + 1);
}

/* Probe i: the first `count` probes try to keep the internal port on each EIP (RFC
 * 4787 REQ-3, port preservation); the next ones search a word of 64 ports of every EIP,
 * then of another word. When the range's words fit in the probe budget they are walked
 * from a random one, so a free port is always found. Otherwise each search starts at a
 * port drawn at random (RFC 6056 section 3.3.1). A port is claimed by an atomic
 * fetch-or, so two CPUs never take the same one. */
static long probe_port(__u32 i, void *unused)
{
	__u32 zero = 0, n, idx, port;
	struct port_search *ps = bpf_map_lookup_elem(&port_searches, &zero);

	if (!ps)
		return 1;
	n = ps->count;
	if (n == 0 || n > MAX_POOL_EIPS || ps->words == 0)
		return 1;
	if (i < n) {
		/* A range of one port: the internal one. */
		port = bpf_ntohs(ps->inside.port);
		if (port < ps->port_min || port > ps->port_max)
			return 0;
		ps->from = ps->lo = ps->hi = port;
	} else if ((i - n) % n == 0) {
		ps->from = i == n ? ps->first_draw : search_start(ps, (i - n) / n);
		ps->lo = ps->port_min;
		ps->hi = ps->port_max;
	}
	/* Everything the claim needs is in ps: the callback's frame stays small. */
	idx = (ps->start + i) % ps->count;
	opaque(idx);
	if (idx >= MAX_POOL_EIPS)
		return 1;
	ps->tried = idx;
	port = port_claim_in_word(ps->blocks[idx], ps->inside.protocol, ps->from, ps->lo, ps->hi, &ps->word_key);
	if (!port)
		return 0;
	idx = ps->tried;
	if (idx >= MAX_POOL_EIPS)
		return 1;
	ps->outside.addr = ps->eips[idx];
	ps->outside.port = bpf_htons(port);
	ps->outside.protocol = ps->inside.protocol;
	ps->found_index = idx;
	return 1;
}

/* Knuth's multiplicative hash: spreads consecutive addresses over the pool. */
static __always_inline __u32 addr_hash(__be32 addr)
{
	return (bpf_ntohl(addr) * 2654435761u) >> 8;
}

/* The index of the EIP an affine pool of n EIPs (1 to MAX_POOL_EIPS) pairs addr
 * with. Opaque to the compiler, which would otherwise drop the caller's bound check
 * that the verifier needs. */
static __always_inline __u32 affine_index(__be32 addr, __u32 n)
{
	__u32 i = addr_hash(addr) % n;

	opaque(i);
	return i;
}

/* Whether the search walks its range's words, within the probe budget, rather than
 * drawing ports at random. */
static __always_inline __u32 search_walks(const struct port_search *ps, const struct nat_config *cfg)
{
	return ps->count * (ps->words + 1) <= cfg->max_port_probes;
}

/* Draw a port search for inside through pool into ps: the EIPs it tries, in which
 * order, and where its first search starts. false when the pool or the port range
 * leaves nothing to search. Done by mapping_acquire, or ahead of it by snat_read_ahead
 * (new_flow.h), whose guess of the port to come must be what the search then tries. */
static __always_inline bool port_search_draw(struct port_search *ps, const struct snat_pool *pool,
					     const struct nat_config *cfg, const struct endpoint *inside)
{
	__u32 n = pool->eip_count, i;

	if (n == 0 || n > MAX_POOL_EIPS || cfg->port_max < cfg->port_min || cfg->port_min == 0)
		return false;
	__builtin_memset(ps, 0, sizeof(*ps));
	ps->inside = *inside;
	ps->port_min = cfg->port_min;
	ps->port_max = cfg->port_max;
	ps->words = (cfg->port_max >> 6) - (cfg->port_min >> 6) + 1;
	ps->offset = bpf_get_prandom_u32() % ps->words;
	ps->found_index = MAX_POOL_EIPS;
	if (pool->affinity) {
		/* Paired: this internal address always leaves from the same EIP. */
		i = affine_index(inside->addr, n);
		if (i >= MAX_POOL_EIPS)
			i = 0;
		ps->eips[0] = pool->eips[i];
		ps->blocks[0] = pool->port_blocks[i];
		ps->count = 1;
	} else {
		__builtin_memcpy(ps->eips, pool->eips, sizeof(ps->eips));
		__builtin_memcpy(ps->blocks, pool->port_blocks, sizeof(ps->blocks));
		ps->count = n;
		ps->start = bpf_get_prandom_u32() % n;
	}
	ps->walk = search_walks(ps, cfg);
	ps->first_draw = search_start(ps, 0);
	ps->drawn = 1;
	return true;
}

/* Whether ps was drawn for inside through pool and cfg as they are now, and not used
 * since. A search drawn ahead is used only if nothing it was drawn from changed: the
 * rule between the packet's two lookups of it, or anything at all when it is left
 * over from a packet that turned out established (the next new mapping of the same
 * endpoint on this CPU finds it, maybe long after). */
static __always_inline bool port_search_drawn_for(const struct port_search *ps, const struct snat_pool *pool,
						  const struct nat_config *cfg, const struct endpoint *inside)
{
	__u32 n = pool->eip_count, i;

	if (!ps->drawn || ps->inside.addr != inside->addr || ps->inside.port != inside->port ||
	    ps->inside.protocol != inside->protocol || n == 0 || n > MAX_POOL_EIPS ||
	    ps->port_min != cfg->port_min || ps->port_max != cfg->port_max ||
	    ps->walk != search_walks(ps, cfg))
		return false;
	if (pool->affinity) {
		i = affine_index(inside->addr, n);
		if (i >= MAX_POOL_EIPS)
			return false;
		return ps->count == 1 && ps->eips[0] == pool->eips[i] && ps->blocks[0] == pool->port_blocks[i];
	}
	if (ps->count != n)
		return false;
	for (i = 0; i < MAX_POOL_EIPS && i < n; i++)
		if (ps->eips[i] != pool->eips[i] || ps->blocks[i] != pool->port_blocks[i])
			return false;
	return true;
}

/* The external endpoint ps's first claim would take, as the bitmaps stand (another CPU
 * may take it first): the internal port on the first EIP tried, or else, with one EIP,
 * the first free port from the first draw. 0 when there is no such guess. */
static __always_inline __u32 port_search_guess(struct port_search *ps, __be32 *eip)
{
	__u32 idx = ps->start, port = bpf_ntohs(ps->inside.port);

	opaque(idx);
	if (idx >= MAX_POOL_EIPS)
		return 0;
	*eip = ps->eips[idx];
	if (port >= ps->port_min && port <= ps->port_max &&
	    port_peek_in_word(ps->blocks[idx], ps->inside.protocol, port, port, port, &ps->word_key))
		return port;
	if (ps->count != 1)
		return 0;
	return port_peek_in_word(ps->blocks[idx], ps->inside.protocol, ps->first_draw, ps->port_min, ps->port_max,
				 &ps->word_key);
}

/* What mapping_acquire works on, in per-CPU memory (the caller's session_opening), not
 * on the stack: the mapping's key, the record found or made (its to_addr, to_port and
 * counter_slot are the mapping), and the values of a new one. */
struct mapping_work {
	struct record_key key;
	struct record_view view;
	struct session_record values;
};

/* Find or make the mapping of an internal endpoint and take a reference on it: on
 * REASON_MAX, w->view is its record. */
static __always_inline enum reason mapping_acquire(const struct endpoint *inside, const struct snat_pool *pool,
						   const struct nat_config *cfg, struct source_usage *usage,
						   struct mapping_work *w)
{
	struct port_search *ps;
	__u32 zero = 0;
	__u32 n, i, probes;
	long err;

	w->key = mapping_key(inside->addr, inside->port, inside->protocol);
	if (record_find(cfg, &w->key, &w->view))
		return mapping_hold(&w->view);

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
	/* A search drawn ahead for this packet (snat_read_ahead) is searched as drawn:
	 * its first port's inbound bucket is on its way in. */
	if (!ps || (!port_search_drawn_for(ps, pool, cfg, inside) && !port_search_draw(ps, pool, cfg, inside))) {
		__sync_fetch_and_add(&usage->ports, -1);
		return REASON_DROP_NAT_PORTS_EXHAUSTED;
	}
	ps->drawn = 0;
	probes = ps->walk ? ps->count * (ps->words + 1) : cfg->max_port_probes;
	bpf_loop(probes, probe_port, NULL, 0);
	if (ps->found_index >= MAX_POOL_EIPS) {
		__sync_fetch_and_add(&usage->ports, -1);
		return REASON_DROP_NAT_PORTS_EXHAUSTED;
	}
	i = pool->affinity ? affine_index(inside->addr, n) : ps->found_index;
	opaque(i);
	if (i >= MAX_POOL_EIPS)
		i = 0;
	w->values.to_addr = ps->outside.addr;
	w->values.to_port = ps->outside.port;
	w->values.counter_slot = pool->counter_slots[i];
	w->values.sessions = 1;
	err = record_insert(cfg, &w->key, &w->values, &w->view);
	if (err == 0)
		return REASON_MAX;
	/* The port claimed here goes back: another CPU mapped the same endpoint this
	 * instant (its mapping is this one's too), or there is no room. */
	port_free(pool->port_blocks[i], ps->outside.protocol, bpf_ntohs(ps->outside.port));
	__sync_fetch_and_add(&usage->ports, -1);
	if (err == -EEXIST || (err == -EAGAIN && record_find(cfg, &w->key, &w->view)))
		return mapping_hold(&w->view);
	/* Withdrawn for another CPU's mapping not yet live: its next packet finds it. */
	return err == -E2BIG ? REASON_DROP_NAT_TABLE_FULL : REASON_DROP_NAT_CONTENDED;
}
