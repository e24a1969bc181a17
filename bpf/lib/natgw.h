/* natgw.h: NAT gateways. SNAT entries share a pool of EIPs among many instances with
 * endpoint-independent mappings; forward (DNAT) entries publish internal endpoints on
 * EIP ports; an instance reaching its own gateway's EIP is hairpinned. Reached only
 * when no 1:1 binding matched, so the 1:1 path pays nothing for it. */
#pragma once

#include "conntrack.h"
#include "forward.h"
#include "refuse.h"
#include "rewrite.h"
#include "stats.h"

/* ---- port allocation ---- */

#ifndef E2BIG
#define E2BIG 7 /* errno-base.h: what a full hash map answers an insert */
#endif

/* Hide a value's range from the compiler, so that a bounds check the verifier needs
 * (it cannot bound the result of a modulo) is not optimised away. */
#define opaque(x) asm volatile("" : "+r"(x))

/* The search state bpf_loop's callback works on: a copy of the pool's EIPs, since the
 * callback sees only this stack struct. */
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

/* Probe i: the first `count` probes try to keep the internal port on each EIP
 * (RFC 4787 REQ-? "port preservation"); the next ones try every EIP at one port, then
 * at another. When the whole range fits in the probe budget they walk it from a random
 * offset, so a free port is always found. Otherwise each port is drawn at random (RFC
 * 6056 section 3.3.1): kept ports form dense runs, and a walk starting inside one would
 * spend the budget on it. A port is taken by BPF_NOEXIST, so two CPUs never take the
 * same one. */
static long probe_port(__u32 i, struct port_search *ps)
{
	__u32 n = ps->count, idx, port;
	struct endpoint out = {};
	long err;

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
	struct port_search ps = {};
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
	ps.inside = *inside;
	ps.port_min = cfg->port_min;
	ps.range = cfg->port_max >= cfg->port_min ? (__u32)cfg->port_max - cfg->port_min + 1 : 0;
	ps.offset = ps.range ? bpf_get_prandom_u32() % ps.range : 0;
	ps.found_index = MAX_POOL_EIPS;
	if (pool->affinity) {
		/* Paired: this internal address always leaves from the same EIP. */
		i = addr_hash(inside->addr) % n;
		opaque(i);
		if (i >= MAX_POOL_EIPS)
			i = 0;
		ps.eips[0] = pool->eips[i];
		ps.count = 1;
	} else {
		__builtin_memcpy(ps.eips, pool->eips, sizeof(ps.eips));
		ps.count = n;
		ps.start = bpf_get_prandom_u32() % n;
	}
	probes = ps.count * (ps.range + 1);
	ps.walk = probes <= cfg->max_port_probes;
	if (!ps.walk)
		probes = cfg->max_port_probes;
	bpf_loop(probes, probe_port, &ps, 0);
	if (ps.found_index >= MAX_POOL_EIPS) {
		__sync_fetch_and_add(&usage->ports, -1);
		return ps.table_full ? REASON_DROP_NAT_TABLE_FULL : REASON_DROP_NAT_PORTS_EXHAUSTED;
	}
	if (pool->affinity)
		i = addr_hash(inside->addr) % n;
	else
		i = ps.found_index;
	opaque(i);
	if (i >= MAX_POOL_EIPS)
		i = 0;
	fresh.outside = ps.outside;
	fresh.sessions = 1;
	fresh.counter_slot = pool->counter_slots[i];
	if (bpf_map_update_elem(&mappings, inside, &fresh, BPF_NOEXIST) < 0) {
		/* Full, or another CPU mapped the same endpoint this instant. */
		bpf_map_delete_elem(&ports_in_use, &ps.outside);
		__sync_fetch_and_add(&usage->ports, -1);
		return bpf_map_lookup_elem(&mappings, inside) ? REASON_DROP_NAT_MAPPING_EXPIRING
							       : REASON_DROP_NAT_TABLE_FULL;
	}
	*out = fresh;
	return REASON_MAX;
}

/* Open an SNAT session for key through pool. On success *s points at the session. */
static __always_inline enum reason snat_open(const struct flow_key *key, const struct snat_pool *pool,
					     __u64 now, bool hairpin, struct session **s)
{
	struct nat_config *cfg = nat_config_get();
	struct endpoint inside = {};
	struct session fresh = {};
	struct source_usage *usage;
	struct reply_key reply;
	struct mapping m;
	enum reason reason;

	if (!cfg)
		return REASON_DROP_NAT_PORTS_EXHAUSTED;
	usage = source_usage_of(key->inside_addr);
	if (!usage)
		return REASON_DROP_NAT_TABLE_FULL;
	if (__sync_fetch_and_add(&usage->sessions, 1) >= cfg->max_sessions_per_source) {
		__sync_fetch_and_add(&usage->sessions, -1);
		return REASON_DROP_NAT_SESSION_QUOTA;
	}
	inside.addr = key->inside_addr;
	inside.port = key->inside_port;
	inside.protocol = key->protocol;
	reason = mapping_acquire(&inside, pool, cfg, usage, &m);
	if (reason != REASON_MAX) {
		__sync_fetch_and_add(&usage->sessions, -1);
		return reason;
	}
	fresh.eip = m.outside.addr;
	fresh.eip_port = m.outside.port;
	fresh.flags = SESSION_SNAT | (hairpin ? SESSION_HAIRPIN : 0);
	fresh.counter_slot = m.counter_slot;
	fresh.last_seen_ns = now;
	reply = reply_key_of(key->remote_addr, key->remote_port, m.outside.addr, m.outside.port, key->protocol);
	/* Session first, reply entry second: inbound never finds a reply without session. */
	if (bpf_map_update_elem(&sessions, key, &fresh, BPF_NOEXIST) < 0) {
		mapping_release(&inside);
		__sync_fetch_and_add(&usage->sessions, -1);
		/* Another CPU opened this very session: use it. */
		*s = bpf_map_lookup_elem(&sessions, key);
		return *s ? REASON_MAX : REASON_DROP_NAT_TABLE_FULL;
	}
	if (bpf_map_update_elem(&sessions_by_reply, &reply, key, BPF_NOEXIST) < 0) {
		bpf_map_delete_elem(&sessions, key);
		mapping_release(&inside);
		__sync_fetch_and_add(&usage->sessions, -1);
		return REASON_DROP_NAT_TABLE_FULL;
	}
	*s = bpf_map_lookup_elem(&sessions, key);
	return *s ? REASON_MAX : REASON_DROP_NAT_NO_SESSION;
}

/* Find the session of a packet arriving at an EIP of a NAT gateway (found is the
 * caller's lookup of reply in sessions_by_reply), or open one through a forward entry.
 * Filtering is address- and port-dependent (RFC 4787 section 5): without a session or
 * a forward entry the packet is dropped. */
static __always_inline enum reason inbound_session(const struct reply_key *reply, const struct flow_key *found,
						   const struct nat_l4 *l4, __u64 now, bool hairpin,
						   struct flow_key *key, struct session **s)
{
	struct forward_target *target;
	struct endpoint external = {};
	struct session fresh = {}, *cur;

	if (found) {
		*key = *found;
		*s = bpf_map_lookup_elem(&sessions, key);
		return *s ? REASON_MAX : REASON_DROP_NAT_NO_SESSION;
	}
	external.addr = reply->eip;
	external.port = reply->eip_port;
	external.protocol = reply->protocol;
	target = bpf_map_lookup_elem(&forward_ports, &external);
	if (!target)
		return REASON_DROP_NAT_NO_SESSION;
	/* A forward entry opens TCP sessions with a SYN only. */
	if (l4->kind == L4_TCP && (l4->tcp_flags & (SEG_SYN | SEG_ACK | SEG_RST)) != SEG_SYN)
		return REASON_DROP_NAT_NO_SESSION;
	key->inside_addr = target->addr;
	key->remote_addr = reply->remote_addr;
	key->inside_port = target->port;
	key->remote_port = reply->remote_port;
	key->protocol = reply->protocol;
	fresh.eip = reply->eip;
	fresh.eip_port = reply->eip_port;
	fresh.flags = SESSION_DNAT | (hairpin ? SESSION_HAIRPIN : 0);
	fresh.counter_slot = target->counter_slot;
	fresh.last_seen_ns = now;
	if (bpf_map_update_elem(&sessions, key, &fresh, BPF_NOEXIST) < 0) {
		/* Another CPU opened it, or the server's tuple is already some other session's. */
		cur = bpf_map_lookup_elem(&sessions, key);
		if (!cur)
			return REASON_DROP_NAT_TABLE_FULL;
		if (cur->eip != reply->eip || cur->eip_port != reply->eip_port)
			return REASON_DROP_NAT_NO_SESSION;
		*s = cur;
		return REASON_MAX;
	}
	if (bpf_map_update_elem(&sessions_by_reply, reply, key, BPF_NOEXIST) < 0) {
		bpf_map_delete_elem(&sessions, key);
		return REASON_DROP_NAT_TABLE_FULL;
	}
	*s = bpf_map_lookup_elem(&sessions, key);
	return *s ? REASON_MAX : REASON_DROP_NAT_NO_SESSION;
}

/* ---- fragments ---- */

static __always_inline struct fragment_key fragment_key_of(__be32 saddr, __be32 daddr, __be16 id, __u8 protocol)
{
	struct fragment_key k = {};

	k.saddr = saddr;
	k.daddr = daddr;
	k.id = id;
	k.protocol = protocol;
	return k;
}

static __always_inline int not_found(bool *found)
{
	*found = false;
	return 0;
}

/* The header fields a first fragment is remembered by, read before any rewrite (at TC
 * a rewrite invalidates the packet pointers). */
struct fragment_origin {
	__be32 saddr;
	__be32 daddr;
	__be16 frag_off;
	__be16 id;
	__u8 protocol;
};

/* The datagram a fragment belongs to, built only where a fragment needs it. */
static __always_inline struct fragment_key datagram_of(const struct fragment_origin *o)
{
	return fragment_key_of(o->saddr, o->daddr, o->id, o->protocol);
}

static __always_inline void fragment_remember(const struct fragment_origin *o, __be32 new_saddr,
					      __be32 new_daddr, __u32 slot, const enum direction dir)
{
	struct fragment_translation t = {};
	struct fragment_key k;

	/* Only a first fragment with more to come needs remembering. */
	if (!(o->frag_off & bpf_htons(0x2000)))
		return;
	k = datagram_of(o);
	t.saddr = new_saddr;
	t.daddr = new_daddr;
	t.counter_slot = slot;
	t.outbound = dir == DIR_OUTBOUND;
	bpf_map_update_elem(&fragments, &k, &t, BPF_ANY);
}

/* A non-first fragment carries no ports: it takes its first fragment's translation.
 * Sets *found to false, changing nothing, when no translation is known. (A flag and not
 * a negative verdict: the verifier cannot tell a helper's verdict is not negative.) */
static __always_inline int fragment_translate(void *ctx, const enum hook hook, struct ipv4_packet *pkt,
					      const enum direction dir, bool *found)
{
	struct fragment_translation *t;
	struct fragment_key k = fragment_key_of(pkt->ip->saddr, pkt->ip->daddr, pkt->ip->id, pkt->ip->protocol);
	__be32 saddr, daddr;
	__u8 tos, protocol;
	__u32 slot, len;

	t = bpf_map_lookup_elem(&fragments, &k);
	*found = t && t->outbound == (dir == DIR_OUTBOUND);
	if (!*found)
		return 0;
	saddr = t->saddr;
	daddr = t->daddr;
	slot = t->counter_slot;
	tos = pkt->ip->tos;
	protocol = pkt->ip->protocol;
	len = pkt->total_len;
	if (pkt->ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	if (rewrite_ip_addr(ctx, hook, IP_SADDR_OFF, saddr) < 0 ||
	    rewrite_ip_addr(ctx, hook, IP_DADDR_OFF, daddr) < 0)
		return drop_with(hook, REASON_DROP_BAD_IP_HEADER);
	count_eip(slot, dir, len);
	return forward_ipv4(ctx, hook, saddr, daddr, tos, protocol, len);
}

/* ---- out-of-order fragments (RFC 4787 REQ-14) ----
 * A non-first fragment that comes before its first fragment is held, whole, until the
 * first fragment gives the datagram's translation. Then each held one is sent back
 * into the interface's ingress, where it meets that translation as an in-order
 * fragment would. Only TC can send more than one packet (bpf_clone_redirect), so XDP
 * passes such fragments, and a first fragment with held followers, to its TC
 * companion (tc_*_fragments in nat.c). */

static __always_inline bool fragment_has_held(const struct fragment_origin *o)
{
	struct held_key hk = {};

	hk.datagram = datagram_of(o);
	return bpf_map_lookup_elem(&held_fragments, &hk) != NULL;
}

/* Copy the whole frame into the per-CPU scratch. */
static __always_inline struct held_fragment *frame_save(struct __sk_buff *skb)
{
	struct held_fragment *scratch;
	__u32 zero = 0, len = skb->len;

	if (len < ETH_HLEN + sizeof(struct iphdr) || len > HELD_FRAME_MAX)
		return NULL;
	scratch = bpf_map_lookup_elem(&frame_scratch, &zero);
	if (!scratch || bpf_skb_load_bytes(skb, 0, scratch->frame, len) < 0)
		return NULL;
	scratch->len = len;
	return scratch;
}

/* Make the skb the frame f holds. */
static __always_inline int frame_load(struct __sk_buff *skb, const struct held_fragment *f)
{
	__u32 len = f->len;

	opaque(len);
	if (len < ETH_HLEN + sizeof(struct iphdr) || len > HELD_FRAME_MAX)
		return -1;
	if (bpf_skb_change_tail(skb, len, 0) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, 0, f->frame, len, 0) < 0 ? -1 : 0;
}

/* A non-first fragment with no translation yet, of a NAT gateway's flow. */
static __always_inline int fragment_hold(void *ctx, const enum hook hook, const struct fragment_origin *o)
{
	struct held_fragment *copy;
	struct held_key hk = {};
	__u32 i;

	if (hook == HOOK_XDP)
		return pass_with(hook, REASON_PASS_FRAGMENT_TO_TC);
	copy = frame_save(ctx);
	if (!copy)
		return drop_with(hook, REASON_DROP_FRAGMENT_NO_STATE);
	hk.datagram = datagram_of(o);
	for (i = 0; i < HELD_PER_DATAGRAM; i++) {
		hk.index = i;
		if (bpf_map_update_elem(&held_fragments, &hk, copy, BPF_NOEXIST) == 0) {
			count_reason(REASON_HELD_FRAGMENT);
			return TC_ACT_SHOT;
		}
	}
	return drop_with(hook, REASON_DROP_FRAGMENT_NO_STATE);
}

/* After a first fragment got its verdict (its translation now remembered): send its
 * held followers back into ingress, then restore the first fragment for its verdict.
 * A held fragment that cannot be sent is counted and dropped. */
static __always_inline int fragment_release(void *ctx, const enum hook hook, const struct fragment_origin *o,
					    int verdict)
{
	struct held_fragment *first, *held;
	struct held_key hk = {};
	__u32 i, ifindex;

	if (hook == HOOK_XDP || (o->frag_off & bpf_htons(0x3fff)) != bpf_htons(0x2000) || !fragment_has_held(o))
		return verdict;
	first = frame_save(ctx);
	if (!first)
		return verdict; /* too big to set aside: its followers wait in the LRU */
	ifindex = ((struct __sk_buff *)ctx)->ifindex;
	hk.datagram = datagram_of(o);
	for (i = 0; i < HELD_PER_DATAGRAM; i++) {
		hk.index = i;
		held = bpf_map_lookup_elem(&held_fragments, &hk);
		if (!held)
			continue;
		if (frame_load(ctx, held) < 0 || bpf_clone_redirect(ctx, ifindex, BPF_F_INGRESS) < 0)
			count_reason(REASON_DROP_FRAGMENT_NO_STATE);
		bpf_map_delete_elem(&held_fragments, &hk);
	}
	if (frame_load(ctx, first) < 0)
		return drop_with(hook, REASON_DROP_BAD_IP_HEADER);
	return verdict;
}

/* ---- ICMP errors about tracked sessions (RFC 5508 section 3.4) ---- */

/* Translate the packet an ICMP error quotes and the error's outer address. Sets
 * *found to false, having changed nothing, when the error is about no session. Inbound,
 * the error is about a packet the gateway sent from EIP:port, so the quoted source
 * goes back to the instance's endpoint; outbound, an instance complains about a packet
 * it got, so the quoted destination becomes the EIP's endpoint again. */
static __always_inline int icmp_error_nat(void *ctx, const enum hook hook, struct ipv4_packet *pkt,
					  const enum direction dir, bool *found)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	struct icmphdr *icmp;
	struct iphdr *inner;
	struct session *s;
	struct flow_key key = {}, *quoted;
	struct reply_key reply;
	__u32 inner_len, quoted_l4, slot;
	__be16 *inner_sport, *inner_dport, *port_field, new_port, old_port;
	__u16 *l4_check = 0, icmp_check, old, new;
	__be32 *addr_field, old_addr, new_addr, saddr, daddr;
	bool udp = false, echo = false;
	__u8 tos, protocol;
	__u32 len;

	if (pkt->l4_off > IP_OFF + 60)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	icmp = data + pkt->l4_off;
	inner = (void *)(icmp + 1);
	if ((void *)(inner + 1) > data_end || pkt->l4_len < sizeof(*icmp) + sizeof(*inner))
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	if (inner->version != 4 || inner->ihl != 5)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	inner_len = sizeof(*inner);
	if (pkt->l4_len < sizeof(*icmp) + inner_len + 8 || (void *)inner + inner_len + 8 > data_end)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	if (inner->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK))
		return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
	quoted_l4 = pkt->l4_len - sizeof(*icmp) - inner_len;
	inner_sport = (void *)inner + inner_len;
	inner_dport = inner_sport + 1;
	if (inner->protocol == IPPROTO_TCP) {
		if (quoted_l4 >= offsetof(struct tcphdr, check) + 2) {
			l4_check = (void *)inner_sport + offsetof(struct tcphdr, check);
			if ((void *)(l4_check + 1) > data_end)
				return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
		}
	} else if (inner->protocol == IPPROTO_UDP) {
		l4_check = (void *)inner_sport + offsetof(struct udphdr, check);
		udp = true;
	} else if (inner->protocol == IPPROTO_ICMP) {
		/* A quoted echo request: its identifier sits at bytes 4-5. */
		struct icmphdr *q = (void *)inner_sport;

		if (dir != DIR_INBOUND || q->type != ICMP_ECHO)
			return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
		inner_sport = (void *)&q->rest;
		echo = true;
	} else {
		return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
	}
	if ((void *)(inner_sport + 1) > data_end)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);

	if (dir == DIR_INBOUND) {
		/* The quoted packet left from EIP:port towards the remote. */
		if (inner->saddr != pkt->ip->daddr)
			return drop_with(hook, REASON_DROP_ICMP_MISMATCH);
		reply = reply_key_of(inner->daddr, echo ? 0 : *inner_dport, inner->saddr, *inner_sport, inner->protocol);
		quoted = bpf_map_lookup_elem(&sessions_by_reply, &reply);
		if (!quoted)
			return not_found(found);
		key = *quoted;
		s = bpf_map_lookup_elem(&sessions, &key);
		if (!s)
			return not_found(found);
		addr_field = &inner->saddr;
		port_field = inner_sport;
		new_addr = key.inside_addr;
		new_port = key.inside_port;
	} else {
		/* The quoted packet came from the remote to the instance's endpoint. */
		if (inner->daddr != pkt->ip->saddr)
			return not_found(found);
		key.inside_addr = inner->daddr;
		key.remote_addr = inner->saddr;
		key.inside_port = *inner_dport;
		key.remote_port = *inner_sport;
		key.protocol = inner->protocol;
		s = bpf_map_lookup_elem(&sessions, &key);
		if (!s)
			return not_found(found);
		addr_field = &inner->daddr;
		port_field = inner_dport;
		new_addr = s->eip;
		new_port = s->eip_port;
	}
	slot = s->counter_slot;
	old_addr = *addr_field;
	old_port = *port_field;

	/* Every quoted change shows in the outer ICMP checksum once; all offsets inside the
	 * ICMP message are even, so 16-bit updates line up. */
	icmp_check = icmp->checksum;
	if (l4_check) {
		old = *l4_check;
		if (!(udp && old == 0)) {
			new = csum_replace4(old, old_addr, new_addr);
			new = csum_replace2(new, old_port, new_port);
			if (udp && new == 0)
				new = 0xffff;
			*l4_check = new;
			icmp_check = csum_replace2(icmp_check, old, new);
		}
	} else if (echo) {
		/* The quoted echo's own checksum covers its identifier. */
		struct icmphdr *q = (void *)inner + inner_len;

		old = q->checksum;
		new = csum_replace2(old, old_port, new_port);
		q->checksum = new;
		icmp_check = csum_replace2(icmp_check, old, new);
	}
	*port_field = new_port;
	icmp_check = csum_replace2(icmp_check, old_port, new_port);
	old = inner->check;
	new = csum_replace4(old, old_addr, new_addr);
	inner->check = new;
	icmp_check = csum_replace2(icmp_check, old, new);
	*addr_field = new_addr;
	icmp_check = csum_replace4(icmp_check, old_addr, new_addr);
	icmp->checksum = icmp_check;

	/* The outer header: to the instance inbound, from the EIP outbound. */
	if (pkt->ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	tos = pkt->ip->tos;
	protocol = pkt->ip->protocol;
	len = pkt->total_len;
	saddr = pkt->ip->saddr;
	daddr = pkt->ip->daddr;
	if (dir == DIR_INBOUND)
		daddr = new_addr;
	else
		saddr = new_addr;
	if (rewrite_ip_addr(ctx, hook, dir == DIR_INBOUND ? IP_DADDR_OFF : IP_SADDR_OFF, new_addr) < 0)
		return drop_with(hook, REASON_DROP_BAD_IP_HEADER);
	count_eip(slot, dir, len);
	return forward_ipv4(ctx, hook, saddr, daddr, tos, protocol, len);
}

/* ---- the two directions ---- */

static __always_inline bool is_nat_eip(__be32 addr)
{
	return bpf_map_lookup_elem(&nat_eips, &addr) != 0;
}

/* Translate the destination of a packet headed to an EIP of this gateway: the
 * inbound half, used for the internet's packets and for hairpinned ones. found is the
 * caller's lookup of reply in sessions_by_reply, so established traffic pays one. */
static __always_inline enum reason translate_inbound(void *ctx, const enum hook hook, const struct nat_l4 *l4,
						     const struct reply_key *reply, const struct flow_key *found,
						     __u64 now, bool hairpin, __be32 *new_daddr, __u32 *slot)
{
	__be32 eip = reply->eip;
	__be16 eip_port = reply->eip_port;
	struct flow_key key = {};
	struct session *s = 0;
	enum reason reason;

	reason = inbound_session(reply, found, l4, now, hairpin, &key, &s);
	if (reason != REASON_MAX)
		return reason;
	if (!s)
		return REASON_DROP_NAT_NO_SESSION;
	/* RFC 4787 REQ-6: outbound packets refresh a UDP session; inbound ones only when
	 * the operator allows it (an outside host could otherwise hold it open for ever). */
	if (l4->kind != L4_UDP || udp_inbound_refreshes())
		session_touch(s, now);
	if (l4->kind == L4_TCP)
		session_track_tcp(s, l4->tcp_flags, false);
	*slot = s->counter_slot;
	*new_daddr = key.inside_addr;
	if (rewrite_endpoint(ctx, hook, l4, false, eip, key.inside_addr, eip_port, key.inside_port) < 0)
		return REASON_DROP_TRUNCATED_L4;
	return REASON_MAX;
}

/* Inbound, on the uplink, after no 1:1 binding matched. Sets *ours to false, changing
 * nothing, when the EIP is not a NAT gateway's, for the caller's next candidate. */
static __always_inline int natgw_inbound(void *ctx, const enum hook hook, struct ipv4_packet *pkt, bool *ours)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	__be32 saddr = pkt->ip->saddr, daddr = pkt->ip->daddr, new_daddr = 0;
	__u8 tos = pkt->ip->tos, protocol = pkt->ip->protocol;
	__u32 len = pkt->total_len, slot = 0;
	struct fragment_origin origin = {saddr, daddr, pkt->ip->frag_off, pkt->ip->id, protocol};
	struct flow_key *found_key;
	struct reply_key reply;
	struct nat_l4 l4 = {};
	enum reason reason;
	bool found = true;
	int verdict;

	reason = parse_nat_l4(data, data_end, pkt, &l4);
	if (reason != REASON_MAX)
		return is_nat_eip(daddr) ? drop_with(hook, reason) : not_found(ours);
	if (l4.kind == L4_NONE) {
		verdict = fragment_translate(ctx, hook, pkt, DIR_INBOUND, &found);
		if (found)
			return verdict;
		return is_nat_eip(daddr) ? fragment_hold(ctx, hook, &origin) : not_found(ours);
	}
	if (hook == HOOK_XDP && (origin.frag_off & bpf_htons(0x2000)) && fragment_has_held(&origin))
		return pass_with(hook, REASON_PASS_FRAGMENT_TO_TC);
	if (l4.kind == L4_ICMP_ERROR) {
		if (!is_nat_eip(daddr))
			return not_found(ours);
		verdict = icmp_error_nat(ctx, hook, pkt, DIR_INBOUND, &found);
		return found ? verdict : drop_with(hook, REASON_DROP_NAT_NO_SESSION);
	}
	if (l4.kind == L4_OTHER || (l4.kind == L4_ICMP_ECHO && l4.echo_type != ICMP_ECHOREPLY))
		return is_nat_eip(daddr) ? drop_with(hook, REASON_DROP_NAT_UNSUPPORTED) : not_found(ours);
	/* Established traffic finds its session with this one lookup; the membership test
	 * is only paid when it misses. */
	reply = reply_key_of(saddr, l4.sport, daddr, l4.dport, protocol);
	found_key = bpf_map_lookup_elem(&sessions_by_reply, &reply);
	if (!found_key && !is_nat_eip(daddr))
		return not_found(ours);
	if (pkt->ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	reason = translate_inbound(ctx, hook, &l4, &reply, found_key, bpf_ktime_get_ns(), false, &new_daddr, &slot);
	if (reason != REASON_MAX)
		return drop_with(hook, reason);
	fragment_remember(&origin, saddr, new_daddr, slot, DIR_INBOUND);
	count_eip(slot, DIR_INBOUND, len);
	verdict = forward_ipv4(ctx, hook, saddr, new_daddr, tos, protocol, len);
	return fragment_release(ctx, hook, &origin, verdict);
}

/* Outbound, on the VPC side, after no 1:1 binding matched. Sets *ours to false,
 * changing nothing, when the source is not a NAT gateway's (no session, no SNAT entry). */
static __always_inline int natgw_outbound(void *ctx, const enum hook hook, struct ipv4_packet *pkt, bool *ours)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	__be32 saddr = pkt->ip->saddr, daddr = pkt->ip->daddr, new_daddr;
	__u8 tos = pkt->ip->tos, protocol = pkt->ip->protocol;
	__u32 len = pkt->total_len, slot, in_slot = 0;
	struct fragment_origin origin = {saddr, daddr, pkt->ip->frag_off, pkt->ip->id, protocol};
	struct snat_rule_key rule_key = {};
	struct flow_key key = {};
	struct snat_pool *pool;
	struct nat_l4 l4 = {};
	struct session *s;
	enum reason reason;
	__be32 eip;
	__be16 eip_port;
	__u8 flags;
	__u64 now;
	bool found = true;
	int verdict;

	rule_key.prefixlen = 32;
	rule_key.addr = saddr;
	reason = parse_nat_l4(data, data_end, pkt, &l4);
	if (reason != REASON_MAX)
		return bpf_map_lookup_elem(&snat_rules, &rule_key) ? drop_with(hook, reason) : not_found(ours);
	if (l4.kind == L4_NONE) {
		verdict = fragment_translate(ctx, hook, pkt, DIR_OUTBOUND, &found);
		if (found)
			return verdict;
		return bpf_map_lookup_elem(&snat_rules, &rule_key) ? fragment_hold(ctx, hook, &origin) : not_found(ours);
	}
	if (hook == HOOK_XDP && (origin.frag_off & bpf_htons(0x2000)) && fragment_has_held(&origin))
		return pass_with(hook, REASON_PASS_FRAGMENT_TO_TC);
	if (l4.kind == L4_ICMP_ERROR) {
		/* Only an error about a session's packet is ours. */
		verdict = icmp_error_nat(ctx, hook, pkt, DIR_OUTBOUND, &found);
		if (found)
			return verdict;
		return bpf_map_lookup_elem(&snat_rules, &rule_key) ? drop_with(hook, REASON_DROP_NAT_NO_SESSION) : not_found(ours);
	}
	key.inside_addr = saddr;
	key.remote_addr = daddr;
	key.inside_port = l4.sport;
	key.remote_port = l4.dport;
	key.protocol = protocol;
	now = bpf_ktime_get_ns();
	s = bpf_map_lookup_elem(&sessions, &key);
	if (!s) {
		pool = bpf_map_lookup_elem(&snat_rules, &rule_key);
		if (!pool)
			return not_found(ours);
		if (l4.kind == L4_OTHER || (l4.kind == L4_ICMP_ECHO && l4.echo_type != ICMP_ECHO))
			return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
		if (l4.kind == L4_TCP && (l4.tcp_flags & SEG_RST))
			return drop_with(hook, REASON_DROP_NAT_NO_SESSION);
		if (pkt->ip->ttl <= 1)
			return pass_with(hook, REASON_PASS_TTL_EXPIRING);
		reason = snat_open(&key, pool, now, is_nat_eip(daddr), &s);
		if (reason != REASON_MAX)
			return refuse_with_icmp(ctx, hook, reason);
		if (!s)
			return drop_with(hook, REASON_DROP_NAT_NO_SESSION);
	} else if (pkt->ip->ttl <= 1) {
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	}
	session_touch(s, now);
	if (l4.kind == L4_TCP)
		session_track_tcp(s, l4.tcp_flags, true);
	eip = s->eip;
	eip_port = s->eip_port;
	slot = s->counter_slot;
	flags = s->flags;
	if (rewrite_endpoint(ctx, hook, &l4, true, saddr, eip, l4.sport, eip_port) < 0)
		return drop_with(hook, REASON_DROP_TRUNCATED_L4);
	new_daddr = daddr;
	if (flags & SESSION_HAIRPIN) {
		/* The remote is one of our EIPs: deliver it as if it came from the internet,
		 * from our EIP:port, so the server sees the caller's external address. */
		struct reply_key reply = reply_key_of(eip, eip_port, daddr, l4.dport, protocol);

		reason = translate_inbound(ctx, hook, &l4, &reply, bpf_map_lookup_elem(&sessions_by_reply, &reply),
					   now, true, &new_daddr, &in_slot);
		if (reason != REASON_MAX)
			return drop_with(hook, reason);
	}
	fragment_remember(&origin, eip, new_daddr, slot, DIR_OUTBOUND);
	count_eip(slot, DIR_OUTBOUND, len);
	if (flags & SESSION_HAIRPIN)
		count_eip(in_slot, DIR_INBOUND, len);
	verdict = forward_ipv4(ctx, hook, eip, new_daddr, tos, protocol, len);
	return fragment_release(ctx, hook, &origin, verdict);
}
