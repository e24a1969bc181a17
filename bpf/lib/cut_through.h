/* cut_through.h: cut-through EIPs, which live on an instance's secondary ENI. */
#pragma once

#include "edge.h"
#include "forward.h"
#include "stats.h"

/* A cut-through EIP is not translated: it is forwarded as it is, to and from its ENI. */
static __always_inline int cut_through_forward(void *ctx, const enum hook hook, const enum direction dir,
					       struct ipv4_packet *pkt, const struct cut_through *ct)
{
	struct ethhdr *eth;
	void *data, *data_end;

	if (dir == DIR_OUTBOUND) {
		data = ctx_data(ctx, hook);
		data_end = ctx_data_end(ctx, hook);
		eth = data;
		if ((void *)(eth + 1) > data_end)
			return drop_with(hook, REASON_DROP_TRUNCATED_ETH);
		/* Source validation: the EIP is the ENI's alone. */
		if (!mac_equal(eth->h_source, ct->eni_mac))
			return drop_with(hook, REASON_DROP_CUT_THROUGH_SPOOF);
	}
	if (pkt->ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	if (!meter_eip(ct->counter_slot, dir, pkt->total_len))
		return drop_with(hook, REASON_DROP_OVER_BANDWIDTH);
	return forward_ipv4(ctx, hook, pkt->ip->saddr, pkt->ip->daddr, pkt->ip->tos, pkt->ip->protocol,
			    pkt->total_len);
}

