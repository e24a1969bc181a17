/* dispatch.h: the NAT's entry: which path a packet takes, in the order that makes the
 * common one cheapest. A 1:1 binding is one hash lookup; a NAT gateway, a cut-through
 * EIP and the edge's rules for untranslated traffic are tried only when it misses. */
#pragma once

#include "cut_through.h"
#include "edge.h"
#include "eip.h"
#include "natgw.h"
#include "parse.h"
#include "stats.h"

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

/* After no 1:1 binding matched: a NAT gateway's session or entry (from the VPC, only
 * for a registered sender, which natgw_outbound checks), then a cut-through EIP, then
 * the edge's rules for traffic nobody translates. Looked up in that order, so 1:1
 * traffic pays nothing for them. */
static __always_inline int eip_unbound(void *ctx, const enum hook hook, const enum direction dir,
				       struct ipv4_packet *pkt, __be32 from)
{
	struct cut_through *ct;

	bool ours = true, registered = false;
	int verdict = dir == DIR_INBOUND ? natgw_inbound(ctx, hook, pkt, &ours)
					 : natgw_outbound(ctx, hook, pkt, &ours, &registered);

	if (ours)
		return verdict;
	ct = bpf_map_lookup_elem(&cut_throughs, &from);
	if (ct)
		return cut_through_forward(ctx, hook, dir, pkt, ct);
	if (dir == DIR_OUTBOUND && !registered && vpc_source_claimed(from))
		return drop_with(hook, REASON_DROP_SPOOFED_SOURCE);
	return edge_untranslated(ctx, hook, dir, pkt);
}

/* The entry point of every NAT program: XDP or TC, from the internet or from the VPC. */
static __always_inline int nat_dispatch(void *ctx, const enum hook hook, const enum direction dir)
{
	struct ipv4_packet pkt = {};
	struct binding *binding;
	void *data, *data_end;
	__be32 from;
	enum reason reason;
	bool bogon = false;

	if (ctx_vlan_tagged(ctx, hook))
		return pass_with(hook, REASON_PASS_VLAN_TAGGED);
	ctx_pull_headers(ctx, hook);
	data = ctx_data(ctx, hook);
	data_end = ctx_data_end(ctx, hook);

	reason = parse_ipv4(data, data_end, ctx_len(ctx, hook), &pkt);
	if (reason == REASON_MAX && is_broadcast_or_multicast(pkt.ip->daddr))
		return pass_with(hook, REASON_PASS_BROADCAST_MULTICAST);
	/* Any other IPv4 frame, well formed or not, is judged only when it was sent to
	 * us; what is not IPv4 keeps its own reason. */
	if (reason != REASON_PASS_NOT_IPV4 && reason != REASON_PASS_VLAN_TAGGED && !frame_to_us(ctx, hook))
		return pass_with(hook, REASON_PASS_OTHER_HOST);
	if (reason != REASON_MAX)
		return leave_with(hook, reason);
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
	if (!binding)
		return eip_unbound(ctx, hook, dir, &pkt, from);
	return binding_translate(ctx, hook, dir, &pkt, binding, from);
}

/* The TC companion of the XDP programs, on the same interface. XDP passes up the
 * fragments it cannot finish: one to hold, or a first fragment whose held followers
 * must be sent too, which takes more than one packet. Everything else XDP passed is
 * the kernel's and is left alone, uncounted (XDP counted it): frames to another
 * host's MAC, and fragments about to expire (XDP passed them for the kernel's
 * time-exceeded). */
static __always_inline int fragment_companion(struct __sk_buff *ctx, const enum direction dir)
{
	struct ipv4_packet pkt = {};
	bool ours = true, registered = false;
	int verdict;

	if (ctx->pkt_type != PACKET_HOST)
		return TC_ACT_OK;
	ctx_pull_headers(ctx, HOOK_TC);
	if (parse_ipv4(ctx_data(ctx, HOOK_TC), ctx_data_end(ctx, HOOK_TC), ctx_len(ctx, HOOK_TC), &pkt) != REASON_MAX)
		return TC_ACT_OK;
	if (!(pkt.ip->frag_off & bpf_htons(IP_FRAGMENT)) || pkt.ip->ttl <= 1)
		return TC_ACT_OK;
	verdict = dir == DIR_INBOUND ? natgw_inbound(ctx, HOOK_TC, &pkt, &ours)
				     : natgw_outbound(ctx, HOOK_TC, &pkt, &ours, &registered);
	return ours ? verdict : TC_ACT_OK;
}
