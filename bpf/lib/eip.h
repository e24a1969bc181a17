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
#include "stats.h"

/* Translate a packet of a 1:1 binding: from is the address it was found by (the EIP
 * inbound, the private address outbound). */
static __always_inline int binding_translate(void *ctx, const enum hook hook, const enum direction dir,
					     struct ipv4_packet *pkt, const struct binding *binding, __be32 from)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	const struct next_hop *hop;
	__be32 to, saddr, daddr;
	__u32 slot, csum_off = 0;
	__u8 protocol, tos;
	enum reason reason;
	bool udp = false;

	/* The binding's usual sender costs nothing more; another one (a HaVip's other
	 * holder) one lookup. */
	if (dir == DIR_OUTBOUND && !from_binding_sender(ctx, hook, binding) &&
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

	/* Non-first fragments carry no L4 header: only their IP header changes. The first
	 * fragment's L4 checksum covers the whole datagram, but only the pseudo-header
	 * changes, so an incremental update is right for it too. */
	if (pkt->has_l4) {
		reason = check_l4_header(data, data_end, pkt);
		if (reason != REASON_MAX)
			return drop_with(hook, reason);
		if (protocol == IPPROTO_TCP) {
			csum_off = pkt->l4_off + offsetof(struct tcphdr, check);
		} else if (protocol == IPPROTO_UDP) {
			csum_off = pkt->l4_off + offsetof(struct udphdr, check);
			udp = true;
		} else if (protocol == IPPROTO_ICMP) {
			struct icmphdr *icmp = data + pkt->l4_off;

			if (pkt->l4_len < sizeof(*icmp) || (void *)(icmp + 1) > data_end)
				return drop_with(hook, REASON_DROP_TRUNCATED_L4);
			/* Echo and other queries: the ICMP checksum has no pseudo-header, so a
			 * 1:1 binding leaves them alone. Errors quote a translated packet. */
			if (icmp_is_error(icmp->type)) {
				reason = icmp_error_translate(data, data_end, pkt, dir, from, to);
				if (reason != REASON_MAX)
					return drop_with(hook, reason);
			}
		}
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

	count_eip(slot, dir, pkt->total_len);
	return forward_ipv4_via(ctx, hook, saddr, daddr, tos, protocol, pkt->total_len,
				dir == DIR_INBOUND ? hop : NULL);
}

