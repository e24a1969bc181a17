/* forward.h: route a translated packet and send it out directly: by the next hop eipd
 * cached from the kernel's tables, or by asking the kernel's FIB. */
#pragma once

#include <linux/if_ether.h>
#include <linux/ip.h>
#include "ctx.h"
#include "maps.h"
#include "prefix.h"
#include "stats.h"

#ifndef AF_INET
#define AF_INET 2
#endif

static __always_inline void count_fallback(enum next_hop_fallback why)
{
	__u32 key = why;
	__u64 *count = bpf_map_lookup_elem(&next_hop_fallbacks, &key);

	if (count)
		*count += 1;
}

/* Decrement TTL as a router must, write the next hop's MACs and send the frame there.
 * Checksum helpers at TC invalidate every packet pointer: they are taken again here. */
static __always_inline int send_to(void *ctx, const enum hook hook, __u32 ifindex, const __u8 *dmac,
				   const __u8 *smac)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	__u16 old_word, new_word;

	if ((void *)(ip + 1) > data_end)
		return drop_with(hook, REASON_DROP_BAD_IP_HEADER);
	old_word = *(__u16 *)&ip->ttl;
	ip->ttl--;
	new_word = *(__u16 *)&ip->ttl;
	ip->check = csum_replace2(ip->check, old_word, new_word);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	return bpf_redirect(ifindex, 0);
}

/* The cached next hop of daddr, or NULL (counted) when the FIB must answer. known is
 * the hop the caller's own lookup carried (a 1:1 binding's), or NULL. */
static __always_inline const struct next_hop *cached_next_hop(__be32 daddr, __u16 total_len,
							      const struct next_hop *known)
{
	__u32 zero = 0;
	struct next_hop_config *cfg = bpf_map_lookup_elem(&next_hop_settings, &zero);
	const struct next_hop *hop = known;

	if (!cfg || cfg->generation == 0) {
		count_fallback(NEXT_HOP_FALLBACK_OFF);
		return NULL;
	}
	/* Beyond every specific route, the default route's hop: no lookup. */
	if (!hop)
		hop = prefix_set_contains(&cfg->specific_routes, daddr) ? bpf_map_lookup_elem(&next_hops, &daddr)
									: &cfg->default_hop;
	if (!hop || hop->ifindex == 0) {
		count_fallback(NEXT_HOP_FALLBACK_MISS);
		return NULL;
	}
	if (hop->generation != cfg->generation) {
		count_fallback(NEXT_HOP_FALLBACK_STALE);
		return NULL;
	}
	if (total_len > hop->mtu) {
		count_fallback(NEXT_HOP_FALLBACK_SIZE);
		return NULL;
	}
	return hop;
}

/* Send the (already translated) packet to its next hop: the cached one when it is
 * valid, else the one the kernel's FIB gives. Whatever the fast path cannot finish
 * goes to the kernel, still translated, so that its stack resolves the neighbour,
 * fragments or reports the error. */
static __always_inline int forward_ipv4_via(void *ctx, const enum hook hook, __be32 saddr, __be32 daddr,
					    __u8 tos, __u8 protocol, __u16 total_len, const struct next_hop *known)
{
	const struct next_hop *hop = cached_next_hop(daddr, total_len, known);
	struct bpf_fib_lookup *fib;
	long rc;

	if (hop)
		return send_to(ctx, hook, hop->ifindex, hop->dmac, hop->smac);
	fib = fib_params_get();
	if (!fib)
		return pass_with(hook, REASON_PASS_FIB_OTHER);
	fib->family = AF_INET;
	fib->tos = tos;
	fib->l4_protocol = protocol;
	/* At TC, 0 lets the kernel check the MTU against each GSO segment, not the
	 * aggregate; an XDP frame is one packet. */
	fib->tot_len = hook == HOOK_XDP ? total_len : 0;
	fib->ifindex = ctx_ifindex(ctx, hook);
	fib->ipv4_src = saddr;
	fib->ipv4_dst = daddr;

	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), 0);
	switch (rc) {
	case BPF_FIB_LKUP_RET_SUCCESS:
		break;
	case BPF_FIB_LKUP_RET_NO_NEIGH:
		return pass_with(hook, REASON_PASS_NO_NEIGH);
	case BPF_FIB_LKUP_RET_FRAG_NEEDED:
		return pass_with(hook, REASON_PASS_MTU_EXCEEDED);
	default:
		return pass_with(hook, REASON_PASS_FIB_OTHER);
	}

	return send_to(ctx, hook, fib->ifindex, fib->dmac, fib->smac);
}

static __always_inline int forward_ipv4(void *ctx, const enum hook hook, __be32 saddr, __be32 daddr,
					__u8 tos, __u8 protocol, __u16 total_len)
{
	return forward_ipv4_via(ctx, hook, saddr, daddr, tos, protocol, total_len, NULL);
}
