/* forward.h: route a translated packet with the kernel's FIB and send it out directly. */
#pragma once

#include <linux/if_ether.h>
#include <linux/ip.h>
#include "ctx.h"
#include "stats.h"

#ifndef AF_INET
#define AF_INET 2
#endif

/* Look up the next hop for the (already translated) addresses and redirect the frame
 * there, decrementing TTL as a router must. Whatever the fast path cannot finish goes
 * to the kernel, still translated, so that its stack resolves the neighbour, fragments
 * or reports the error. */
static __always_inline int forward_ipv4(void *ctx, const enum hook hook, __be32 saddr,
					__be32 daddr, __u8 tos, __u8 protocol, __u16 total_len)
{
	struct bpf_fib_lookup fib = {};
	struct ethhdr *eth;
	struct iphdr *ip;
	void *data, *data_end;
	__u16 old_word, new_word;
	long rc;

	fib.family = AF_INET;
	fib.tos = tos;
	fib.l4_protocol = protocol;
	/* At TC, 0 lets the kernel check the MTU against each GSO segment, not the
	 * aggregate; an XDP frame is one packet. */
	fib.tot_len = hook == HOOK_XDP ? total_len : 0;
	fib.ifindex = ctx_ifindex(ctx, hook);
	fib.ipv4_src = saddr;
	fib.ipv4_dst = daddr;

	rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
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

	/* Checksum helpers at TC invalidated every packet pointer: take them again. */
	data = ctx_data(ctx, hook);
	data_end = ctx_data_end(ctx, hook);
	eth = data;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return drop_with(hook, REASON_DROP_BAD_IP_HEADER);

	old_word = *(__u16 *)&ip->ttl;
	ip->ttl--;
	new_word = *(__u16 *)&ip->ttl;
	ip->check = csum_replace2(ip->check, old_word, new_word);

	__builtin_memcpy(eth->h_dest, fib.dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, fib.smac, ETH_ALEN);
	return bpf_redirect(fib.ifindex, 0);
}
