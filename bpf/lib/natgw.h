/* natgw.h: NAT gateways. SNAT entries share a pool of EIPs among many instances with
 * endpoint-independent mappings; forward (DNAT) entries publish internal endpoints on
 * EIP ports; an instance reaching its own gateway's EIP is hairpinned. Reached only
 * when no 1:1 binding matched, so the 1:1 path pays nothing for it. */
#pragma once


#include "fragments.h"
#include "held.h"
#include "icmp_nat.h"
#include "new_flow.h"
#include "refuse.h"
#include "sessions.h"

static __always_inline bool is_nat_eip(__be32 addr)
{
	return bpf_map_lookup_elem(&nat_eips, &addr) != 0;
}

/* Translate the destination of a packet headed to an EIP of this gateway: the
 * inbound half, used for the internet's packets and for hairpinned ones. found is the
 * caller's lookup of the inbound record (NULL: none): established traffic pays that one
 * lookup, and only a miss tries a forward entry. */
static __always_inline enum reason translate_inbound(void *ctx, const enum hook hook, const struct nat_config *cfg,
						     const struct l4_fields *l4, const struct record_key *in_key,
						     struct record_view *found, __u32 now, bool hairpin,
						     __be32 *new_daddr, __u32 *slot)
{
	__be32 eip = in_key->addr_b;
	__be16 eip_port = in_key->port_b;
	struct record_view opened = {}, *in = found;
	enum reason reason;

	if (!in) {
		reason = dnat_open(cfg, in_key, l4, NOW_HAIRPIN(now, hairpin), &opened);
		if (reason == OPENED_ELSEWHERE)
			reason = record_find(cfg, in_key, &opened) ? REASON_MAX : REASON_DROP_NAT_CONTENDED;
		if (reason != REASON_MAX)
			return reason;
		in = &opened;
	}
	/* RFC 4787 REQ-6: outbound packets refresh a UDP session; inbound ones only when
	 * the operator allows it (an outside host could otherwise hold it open for ever). */
	if (l4->kind != L4_UDP || cfg->udp_inbound_refresh)
		record_touch(in, now);
	if (l4->kind == L4_TCP)
		record_track_tcp(in, tcp_bits(l4->tcp_flags, false));
	*slot = in->counter_slot;
	*new_daddr = in->to_addr;
	if (rewrite_endpoint(ctx, hook, l4, false, eip, in->to_addr, eip_port, in->to_port) < 0)
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
	struct nat_config *cfg = nat_config_get();
	struct record_view in = {};
	struct record_key in_key;
	struct l4_fields l4 = {};
	enum reason reason;
	bool found = true, established;
	int verdict;

	if (!cfg)
		return not_found(ours);
	reason = parse_l4(data, data_end, pkt, &l4);
	if (reason != REASON_MAX)
		return is_nat_eip(daddr) ? drop_with(hook, reason) : not_found(ours);
	if (l4.kind == L4_NONE) {
		verdict = fragment_translate(ctx, hook, pkt, DIR_INBOUND, &found);
		if (found)
			return verdict;
		return is_nat_eip(daddr) ? fragment_hold(ctx, hook, &origin) : not_found(ours);
	}
	if (hook == HOOK_XDP && (origin.frag_off & bpf_htons(IP_MF)) && fragment_has_held(&origin))
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
	in_key = inbound_key(saddr, daddr, l4.sport, l4.dport, protocol);
	if (new_flow_likely(&l4, DIR_INBOUND))
		dnat_read_ahead(cfg, saddr, daddr, FLOW_PORTS(l4.sport, l4.dport, protocol));
	established = record_find(cfg, &in_key, &in);
	if (!established && !is_nat_eip(daddr))
		return not_found(ours);
	/* Counted once the packet is a NAT gateway's: the uplink's other traffic would
	 * make every packet look new. */
	new_flow_count(DIR_INBOUND, established);
	if (pkt->ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	reason = translate_inbound(ctx, hook, cfg, &l4, &in_key, established ? &in : NULL,
				   session_clock(session_now(cfg)), false, &new_daddr, &slot);
	if (reason != REASON_MAX)
		return drop_with(hook, reason);
	fragment_remember(&origin, saddr, new_daddr, slot, DIR_INBOUND);
	if (!meter_eip(slot, DIR_INBOUND, len))
		return drop_with(hook, REASON_DROP_OVER_BANDWIDTH);
	verdict = forward_ipv4(ctx, hook, saddr, new_daddr, tos, protocol, len);
	return fragment_release(ctx, hook, &origin, verdict);
}

/* Outbound, on the VPC side, after no 1:1 binding matched. Sets *ours to false,
 * changing nothing, when the source is not a NAT gateway's (no session, no SNAT entry)
 * or the sender is not registered with it; *registered then says which. */
static __always_inline int natgw_outbound(void *ctx, const enum hook hook, struct ipv4_packet *pkt, bool *ours,
					       bool *registered)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	__be32 saddr = pkt->ip->saddr, daddr = pkt->ip->daddr, new_daddr;
	__u8 tos = pkt->ip->tos, protocol = pkt->ip->protocol;
	__u32 len = pkt->total_len, in_slot = 0, now;
	struct fragment_origin origin = {saddr, daddr, pkt->ip->frag_off, pkt->ip->id, protocol};
	struct nat_config *cfg = nat_config_get();
	struct snat_rule_key rule_key = {};
	struct record_key out_key;
	struct record_view out = {};
	struct snat_pool *pool;
	struct l4_fields l4 = {};
	enum reason reason;
	bool found = true, read_ahead;
	int verdict;

	*registered = vpc_source_registered(ctx, hook, saddr);
	if (!*registered || !cfg)
		return not_found(ours);
	rule_key.prefixlen = 32;
	rule_key.addr = saddr;
	reason = parse_l4(data, data_end, pkt, &l4);
	if (reason != REASON_MAX)
		return bpf_map_lookup_elem(&snat_rules, &rule_key) ? drop_with(hook, reason) : not_found(ours);
	if (l4.kind == L4_NONE) {
		verdict = fragment_translate(ctx, hook, pkt, DIR_OUTBOUND, &found);
		if (found)
			return verdict;
		return bpf_map_lookup_elem(&snat_rules, &rule_key) ? fragment_hold(ctx, hook, &origin) : not_found(ours);
	}
	if (hook == HOOK_XDP && (origin.frag_off & bpf_htons(IP_MF)) && fragment_has_held(&origin))
		return pass_with(hook, REASON_PASS_FRAGMENT_TO_TC);
	if (l4.kind == L4_ICMP_ERROR) {
		/* Only an error about a session's packet is ours. */
		verdict = icmp_error_nat(ctx, hook, pkt, DIR_OUTBOUND, &found);
		if (found)
			return verdict;
		return bpf_map_lookup_elem(&snat_rules, &rule_key) ? drop_with(hook, REASON_DROP_NAT_NO_SESSION) : not_found(ours);
	}
	now = session_clock(session_now(cfg));
	out_key = outbound_key(saddr, daddr, l4.sport, l4.dport, protocol);
	read_ahead = new_flow_likely(&l4, DIR_OUTBOUND);
	if (read_ahead)
		snat_read_ahead(cfg, saddr, daddr, FLOW_PORTS(l4.sport, l4.dport, protocol));
	if (!record_find(cfg, &out_key, &out)) {
		new_flow_count(DIR_OUTBOUND, false);
		/* A new flow: its mapping's bucket comes in while the rule is looked up
		 * (InProgram/snat-own-mapping: 13% off a new mapping on a churned table),
		 * unless the read-ahead ran: it reads that bucket too, but when the rule or
		 * the port range leave no port to search, and then the lookup reads it. */
		if (!read_ahead)
			record_prefetch(cfg, saddr, 0, l4.sport, 0, protocol, RECORD_MAPPING);
		pool = bpf_map_lookup_elem(&snat_rules, &rule_key);
		if (!pool)
			return not_found(ours);
		if (l4.kind == L4_OTHER || (l4.kind == L4_ICMP_ECHO && l4.echo_type != ICMP_ECHO))
			return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
		if (l4.kind == L4_TCP && (l4.tcp_flags & SEG_RST))
			return drop_with(hook, REASON_DROP_NAT_NO_SESSION);
		if (pkt->ip->ttl <= 1)
			return pass_with(hook, REASON_PASS_TTL_EXPIRING);
		reason = snat_open(cfg, &out_key, pool, NOW_HAIRPIN(now, is_nat_eip(daddr)), &out);
		if (reason == OPENED_ELSEWHERE)
			reason = record_find(cfg, &out_key, &out) ? REASON_MAX : REASON_DROP_NAT_CONTENDED;
		/* Losing a race for the session, or meeting its mapping as the collector
		 * removes it, is no reason to tell the sender the destination is
		 * unreachable (a TCP connect would give up): its next packet gets through. */
		if (reason == REASON_DROP_NAT_CONTENDED || reason == REASON_DROP_NAT_MAPPING_EXPIRING)
			return drop_with(hook, reason);
		if (reason != REASON_MAX)
			return refuse_with_icmp(ctx, hook, reason);
	} else {
		new_flow_count(DIR_OUTBOUND, true);
		if (pkt->ip->ttl <= 1)
			return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	}
	record_touch(&out, now);
	if (l4.kind == L4_TCP)
		record_track_tcp(&out, tcp_bits(l4.tcp_flags, true));
	if (rewrite_endpoint(ctx, hook, &l4, true, saddr, out.to_addr, l4.sport, out.to_port) < 0)
		return drop_with(hook, REASON_DROP_TRUNCATED_L4);
	new_daddr = daddr;
	if (out.flags & SESSION_HAIRPIN) {
		/* The remote is one of our EIPs: deliver it as if it came from the internet,
		 * from our EIP:port, so the server sees the caller's external address. */
		struct record_key in_key = inbound_key(out.to_addr, daddr, out.to_port, l4.dport, protocol);
		struct record_view in = {};
		bool established = record_find(cfg, &in_key, &in);

		reason = translate_inbound(ctx, hook, cfg, &l4, &in_key, established ? &in : NULL, now, true,
					   &new_daddr, &in_slot);
		if (reason != REASON_MAX)
			return drop_with(hook, reason);
	}
	fragment_remember(&origin, out.to_addr, new_daddr, out.counter_slot, DIR_OUTBOUND);
	/* A hairpinned packet leaves through one EIP and comes in through another: both
	 * bandwidths apply. */
	if (!meter_eip(out.counter_slot, DIR_OUTBOUND, len) ||
	    ((out.flags & SESSION_HAIRPIN) && !meter_eip(in_slot, DIR_INBOUND, len)))
		return drop_with(hook, REASON_DROP_OVER_BANDWIDTH);
	verdict = forward_ipv4(ctx, hook, out.to_addr, new_daddr, tos, protocol, len);
	return fragment_release(ctx, hook, &origin, verdict);
}
