/* eip.h: the 1:1 EIP binding: inbound DNAT (EIP -> private) and outbound SNAT (private -> EIP). */
#pragma once

#include <linux/tcp.h>
#include <linux/udp.h>
#include "ctx.h"
#include "edge.h"
#include "forward.h"
#include "icmp.h"
#include "maps.h"
#include "parse.h"
#include "rewrite.h"
#include "stats.h"

/* Translate a packet of a 1:1 binding: from is the address it was found by (the EIP
 * inbound, the private address outbound). */
static __always_inline int binding_translate(void *ctx, const enum hook hook, const enum direction dir,
					     struct ipv4_packet *pkt, const struct binding *binding, __be32 from)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	const struct next_hop *hop;
	struct l4_fields l4 = {};
	__be32 to, saddr, daddr;
	__u32 slot, csum_off = 0;
	__u8 protocol, tos;
	enum reason reason;
	bool udp = false;

	/* The binding's usual sender costs nothing more; another one (a HaVip's other
	 * holder) one lookup. */
	if (dir == DIR_OUTBOUND && !from_known_sender(ctx, hook, binding->sender_mac) &&
	    !vpc_source_registered(ctx, hook, pkt->ip->saddr))
		return drop_with(hook, REASON_DROP_SPOOFED_SOURCE);
	/* Untranslated, so the kernel's time-exceeded quotes what the sender sent. */
	if (pkt->ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	to = binding->addr;
	slot = binding->counter_slot;
	hop = &binding->hop;
	protocol = pkt->ip->protocol;
	tos = pkt->ip->tos;

	/* Non-first fragments carry no L4 header (L4_NONE): only their IP header changes.
	 * The first fragment's L4 checksum covers the whole datagram, but only the
	 * pseudo-header changes, so an incremental update is right for it too. ICMP echo
	 * and other queries have no pseudo-header: a 1:1 binding leaves them alone; errors
	 * quote a translated packet. */
	reason = parse_l4(data, data_end, pkt, &l4);
	if (reason != REASON_MAX)
		return drop_with(hook, reason);
	if (l4.kind == L4_TCP || l4.kind == L4_UDP) {
		csum_off = l4.csum_off;
		udp = l4.kind == L4_UDP;
	} else if (l4.kind == L4_ICMP_ERROR) {
		reason = icmp_error_translate(data, data_end, pkt, dir, from, to);
		if (reason != REASON_MAX)
			return drop_with(hook, reason);
	}

	if (dir == DIR_INBOUND) {
		saddr = pkt->ip->saddr;
		daddr = to;
		pkt->ip->daddr = to;
	} else {
		saddr = to;
		daddr = pkt->ip->daddr;
		pkt->ip->saddr = to;
	}
	pkt->ip->check = csum_replace4(pkt->ip->check, from, to);
	/* Last, because at TC it invalidates the packet pointers. */
	if (csum_off && ctx_l4_csum_replace_addr(ctx, hook, csum_off, from, to, udp) < 0)
		return drop_with(hook, REASON_DROP_TRUNCATED_L4);

	if (!meter_eip(slot, dir, pkt->total_len))
		return drop_with(hook, REASON_DROP_OVER_BANDWIDTH);
	return forward_ipv4_via(ctx, hook, saddr, daddr, tos, protocol, pkt->total_len,
				dir == DIR_INBOUND ? hop : NULL);
}

