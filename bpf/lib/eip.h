/* eip.h: the 1:1 EIP binding: inbound DNAT (EIP -> private) and outbound SNAT (private -> EIP). */
#pragma once

#include <linux/tcp.h>
#include <linux/udp.h>
#include "ctx.h"
#include "edge.h"
#include "forward.h"
#include "icmp.h"
#include "maps.h"
#include "natgw.h"
#include "parse.h"
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
	count_eip(ct->counter_slot, dir, pkt->total_len);
	return forward_ipv4(ctx, hook, pkt->ip->saddr, pkt->ip->daddr, pkt->ip->tos, pkt->ip->protocol,
			    pkt->total_len);
}

/* Whether a VPC source address belongs to someone the frame's sender is not: an SNAT
 * entry's instances or the EIP pools (a bound private address was checked already). */
static __always_inline bool vpc_source_claimed(__be32 saddr)
{
	struct edge_config *cfg = edge_config_get();
	struct snat_rule_key rule_key = {.prefixlen = 32, .addr = saddr};

	if (cfg && prefix_set_contains(&cfg->eip_pools, saddr))
		return true;
	return bpf_map_lookup_elem(&snat_rules, &rule_key) != 0;
}

/* After no 1:1 binding matched: a NAT gateway's session or entry (only for a registered
 * sender, from the VPC), then a cut-through EIP, then the edge's rules for traffic
 * nobody translates. Looked up in that order, so 1:1 traffic pays nothing for them. */
static __always_inline int eip_unbound(void *ctx, const enum hook hook, const enum direction dir,
				       struct ipv4_packet *pkt, __be32 from, bool registered)
{
	struct cut_through *ct;

	if (dir == DIR_INBOUND || registered) {
		bool ours = true;
		int verdict = dir == DIR_INBOUND ? natgw_inbound(ctx, hook, pkt, &ours)
						 : natgw_outbound(ctx, hook, pkt, &ours);

		if (ours)
			return verdict;
	}
	ct = bpf_map_lookup_elem(&cut_throughs, &from);
	if (ct)
		return cut_through_forward(ctx, hook, dir, pkt, ct);
	if (dir == DIR_OUTBOUND && !registered && vpc_source_claimed(from))
		return drop_with(hook, REASON_DROP_SPOOFED_SOURCE);
	return edge_untranslated(ctx, hook, dir, pkt);
}

static __always_inline int eip_nat(void *ctx, const enum hook hook, const enum direction dir)
{
	struct ipv4_packet pkt = {};
	struct binding *binding;
	void *data, *data_end;
	__be32 from, to, saddr, daddr;
	__u32 slot, csum_off = 0;
	__u8 protocol, tos;
	enum reason reason;
	bool udp = false, registered = false, bogon = false;

	if (ctx_vlan_tagged(ctx, hook))
		return pass_with(hook, REASON_PASS_VLAN_TAGGED);
	ctx_pull_headers(ctx, hook);
	data = ctx_data(ctx, hook);
	data_end = ctx_data_end(ctx, hook);

	reason = parse_ipv4(data, data_end, ctx_len(ctx, hook), &pkt);
	if (reason != REASON_MAX)
		return reason < REASON_DROP_TRUNCATED_ETH ? pass_with(hook, reason)
							  : drop_with(hook, reason);
	if (is_broadcast_or_multicast(pkt.ip->daddr))
		return pass_with(hook, REASON_PASS_BROADCAST_MULTICAST);
	if (dir == DIR_INBOUND) {
		struct edge_config *edge = edge_config_get();

		bogon = edge && prefix_set_contains(&edge->special_purpose, pkt.ip->saddr);
	}

	/* One hash lookup decides whether the packet is ours. */
	from = dir == DIR_INBOUND ? pkt.ip->daddr : pkt.ip->saddr;
	binding = bpf_map_lookup_elem(dir == DIR_INBOUND ? (void *)&inbound_bindings
							   : (void *)&outbound_bindings,
				      &from);
	/* A special-purpose source may still reach the gateway itself (a router on a
	 * private link net peering with it, an operator on a management network): only
	 * what would go on, to an EIP or beyond, is refused. */
	if (bogon && (binding || kernel_would_forward(ctx, hook, &pkt)))
		return drop_with(hook, REASON_DROP_BOGON_SOURCE);
	if (!binding) {
		registered = dir == DIR_OUTBOUND && vpc_source_registered(ctx, hook, pkt.ip->saddr);
		return eip_unbound(ctx, hook, dir, &pkt, from, registered);
	}
	/* The binding's usual sender costs nothing more; another one (a HaVip's other
	 * holder) one lookup. */
	if (dir == DIR_OUTBOUND && !from_binding_sender(ctx, hook, binding) &&
	    !vpc_source_registered(ctx, hook, pkt.ip->saddr))
		return drop_with(hook, REASON_DROP_SPOOFED_SOURCE);
	/* Untranslated, so the kernel's time-exceeded quotes what the sender sent. */
	if (pkt.ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	to = binding->addr;
	slot = binding->counter_slot;
	protocol = pkt.ip->protocol;
	tos = pkt.ip->tos;

	/* Non-first fragments carry no L4 header: only their IP header changes. The first
	 * fragment's L4 checksum covers the whole datagram, but only the pseudo-header
	 * changes, so an incremental update is right for it too. */
	if (pkt.has_l4) {
		reason = check_l4_header(data, data_end, &pkt);
		if (reason != REASON_MAX)
			return drop_with(hook, reason);
		if (protocol == IPPROTO_TCP) {
			csum_off = pkt.l4_off + offsetof(struct tcphdr, check);
		} else if (protocol == IPPROTO_UDP) {
			csum_off = pkt.l4_off + offsetof(struct udphdr, check);
			udp = true;
		} else if (protocol == IPPROTO_ICMP) {
			struct icmphdr *icmp = data + pkt.l4_off;

			if (pkt.l4_len < sizeof(*icmp) || (void *)(icmp + 1) > data_end)
				return drop_with(hook, REASON_DROP_TRUNCATED_L4);
			/* Echo and other queries: the ICMP checksum has no pseudo-header, so a
			 * 1:1 binding leaves them alone. Errors quote a translated packet. */
			if (icmp_is_error(icmp->type)) {
				reason = icmp_error_translate(data, data_end, &pkt, dir, from, to);
				if (reason != REASON_MAX)
					return drop_with(hook, reason);
			}
		}
	}

	if (dir == DIR_INBOUND) {
		saddr = pkt.ip->saddr;
		daddr = to;
		pkt.ip->daddr = to;
	} else {
		saddr = to;
		daddr = pkt.ip->daddr;
		pkt.ip->saddr = to;
	}
	pkt.ip->check = csum_replace4(pkt.ip->check, from, to);
	/* Last, because at TC it invalidates the packet pointers. */
	if (csum_off && ctx_l4_csum_replace_addr(ctx, hook, csum_off, from, to, udp) < 0)
		return drop_with(hook, REASON_DROP_TRUNCATED_L4);

	count_eip(slot, dir, pkt.total_len);
	return forward_ipv4(ctx, hook, saddr, daddr, tos, protocol, pkt.total_len);
}

/* The TC companion of the XDP programs, on the same interface. XDP passes up the
 * fragments it cannot finish: one to hold, or a first fragment whose held followers
 * must be sent too, which takes more than one packet. Everything else XDP passed is
 * the kernel's and is left alone, uncounted (XDP counted it), as are fragments about
 * to expire (XDP passed them for the kernel's time-exceeded). */
static __always_inline int fragment_companion(struct __sk_buff *ctx, const enum direction dir)
{
	struct ipv4_packet pkt = {};
	bool ours = true;
	int verdict;

	ctx_pull_headers(ctx, HOOK_TC);
	if (parse_ipv4(ctx_data(ctx, HOOK_TC), ctx_data_end(ctx, HOOK_TC), ctx_len(ctx, HOOK_TC), &pkt) != REASON_MAX)
		return TC_ACT_OK;
	if (!(pkt.ip->frag_off & bpf_htons(0x3fff)) || pkt.ip->ttl <= 1)
		return TC_ACT_OK;
	verdict = dir == DIR_INBOUND ? natgw_inbound(ctx, HOOK_TC, &pkt, &ours)
				     : natgw_outbound(ctx, HOOK_TC, &pkt, &ours);
	return ours ? verdict : TC_ACT_OK;
}
