/* refuse.h: turn a packet the NAT gateway cannot open a session for into an ICMP
 * "communication administratively prohibited" (type 3, code 13) back to its sender, as
 * RFC 5508 section 3.3 and RFC 6888 REQ-4 ask. */
#pragma once

#include "conntrack.h"
#include "ctx.h"
#include "icmp.h"
#include "stats.h"

#define ICMP_CODE_ADMIN_PROHIBITED 13
/* The new headers go in front of the refused packet's IP header: IP + ICMP. */
#define REFUSE_GROW (sizeof(struct iphdr) + sizeof(struct icmphdr))
/* What the error quotes: the refused IP header (without options) and 8 bytes. */
#define REFUSE_QUOTE (sizeof(struct iphdr) + 8)
#define REFUSE_FRAME_LEN (IP_OFF + REFUSE_GROW + REFUSE_QUOTE)

static __always_inline __u16 csum_fold_full(__s64 sum)
{
	__u32 s = (__u32)sum;

	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* Counts the reason and answers, or only drops when the gateway has no address to
 * answer from, the refused packet has IP options or is a fragment, or is itself ICMP
 * (no error about an error, RFC 1122). */
static __always_inline int refuse_with_icmp(void *ctx, const enum hook hook, enum reason reason)
{
	struct nat_config *cfg = nat_config_get();
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1), *outer;
	struct icmphdr *icmp;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	__be32 source, dest;
	__u32 len;

	count_reason(reason);
	if (!cfg || !cfg->icmp_source)
		return ctx_drop(hook);
	if ((void *)(ip + 1) > data_end || ip->ihl != 5 || ip->protocol == IPPROTO_ICMP ||
	    (ip->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK)))
		return ctx_drop(hook);
	if (ctx_len(ctx, hook) < IP_OFF + REFUSE_QUOTE)
		return ctx_drop(hook);
	source = cfg->icmp_source;
	dest = ip->saddr;
	__builtin_memcpy(dmac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(smac, eth->h_dest, ETH_ALEN);

	/* Make room after the Ethernet header and cut the quote to 8 bytes of L4. */
	if (hook == HOOK_XDP) {
		if (bpf_xdp_adjust_head(ctx, -(int)REFUSE_GROW))
			return ctx_drop(hook);
		len = ctx_len(ctx, hook);
		if (len > REFUSE_FRAME_LEN && bpf_xdp_adjust_tail(ctx, REFUSE_FRAME_LEN - (int)len))
			return ctx_drop(hook);
	} else {
		if (bpf_skb_adjust_room(ctx, REFUSE_GROW, BPF_ADJ_ROOM_MAC, 0))
			return ctx_drop(hook);
		if (bpf_skb_change_tail(ctx, REFUSE_FRAME_LEN, 0))
			return ctx_drop(hook);
	}
	data = ctx_data(ctx, hook);
	data_end = ctx_data_end(ctx, hook);
	eth = data;
	outer = (void *)(eth + 1);
	icmp = (void *)(outer + 1);
	if ((void *)icmp + sizeof(*icmp) + REFUSE_QUOTE > data_end)
		return ctx_drop(hook);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	outer->version = 4;
	outer->ihl = 5;
	outer->tos = 0xc0; /* internetwork control, as the kernel sends its ICMP errors */
	outer->tot_len = bpf_htons(REFUSE_GROW + REFUSE_QUOTE);
	outer->id = 0;
	outer->frag_off = 0;
	outer->ttl = 64;
	outer->protocol = IPPROTO_ICMP;
	outer->check = 0;
	outer->saddr = source;
	outer->daddr = dest;
	outer->check = csum_fold_full(bpf_csum_diff(0, 0, (void *)outer, sizeof(*outer), 0));

	icmp->type = ICMP_DEST_UNREACH;
	icmp->code = ICMP_CODE_ADMIN_PROHIBITED;
	icmp->checksum = 0;
	icmp->rest = 0;
	icmp->checksum = csum_fold_full(bpf_csum_diff(0, 0, (void *)icmp, sizeof(*icmp) + REFUSE_QUOTE, 0));

	/* Back out of the interface it came in on, towards the sender. */
	return bpf_redirect(ctx_ifindex(ctx, hook), 0);
}
