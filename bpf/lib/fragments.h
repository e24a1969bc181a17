/* fragments.h: fragmented datagrams of NAT gateway flows: a first fragment's
 * translation, remembered for the fragments that follow it. */
#pragma once

#include "forward.h"
#include "rewrite.h"
#include "stats.h"

static __always_inline struct fragment_key fragment_key_of(__be32 saddr, __be32 daddr, __be16 id, __u8 protocol)
{
	struct fragment_key k = {};

	k.saddr = saddr;
	k.daddr = daddr;
	k.id = id;
	k.protocol = protocol;
	return k;
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
	if (!(o->frag_off & bpf_htons(IP_MF)))
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
	if (!meter_eip(slot, dir, len))
		return drop_with(hook, REASON_DROP_OVER_BANDWIDTH);
	return forward_ipv4(ctx, hook, saddr, daddr, tos, protocol, len);
}
