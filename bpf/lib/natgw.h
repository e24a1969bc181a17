/* natgw.h: NAT gateways. SNAT entries share a pool of EIPs among many instances with
 * endpoint-independent mappings; forward (DNAT) entries publish internal endpoints on
 * EIP ports; an instance reaching its own gateway's EIP is hairpinned. Reached only
 * when no 1:1 binding matched, so the 1:1 path pays nothing for it. */
#pragma once


#include "fragments.h"
#include "held.h"
#include "icmp_nat.h"
#include "refuse.h"
#include "sessions.h"

static __always_inline bool is_nat_eip(__be32 addr)
{
	return bpf_map_lookup_elem(&nat_eips, &addr) != 0;
}

/* Translate the destination of a packet headed to an EIP of this gateway: the
 * inbound half, used for the internet's packets and for hairpinned ones. found is the
 * caller's lookup of reply in sessions_in: established traffic pays that one lookup,
 * and only a miss tries a forward entry. */
static __always_inline enum reason translate_inbound(void *ctx, const enum hook hook, const struct nat_config *cfg,
						     const struct l4_fields *l4, const struct reply_key *reply,
						     struct session_in *found, __u64 now, bool hairpin, __be32 *new_daddr,
						     __u32 *slot)
{
	__be32 eip = reply->eip, inside_addr;
	__be16 eip_port = reply->eip_port, inside_port;
	struct session_in *in = found;
	enum reason reason;

	if (!in) {
		reason = dnat_open(reply, l4, now, hairpin, &in);
		if (reason != REASON_MAX)
			return reason;
		if (!in)
			return REASON_DROP_NAT_NO_SESSION;
	}
	/* RFC 4787 REQ-6: outbound packets refresh a UDP session; inbound ones only when
	 * the operator allows it (an outside host could otherwise hold it open for ever). */
	if (l4->kind != L4_UDP || (cfg && cfg->udp_inbound_refresh))
		session_touch(&in->last_seen_ns, now);
	if (l4->kind == L4_TCP)
		session_track_tcp(&in->tcp, l4->tcp_flags, false);
	*slot = in->counter_slot;
	inside_addr = in->inside_addr;
	inside_port = in->inside_port;
	*new_daddr = inside_addr;
	if (rewrite_endpoint(ctx, hook, l4, false, eip, inside_addr, eip_port, inside_port) < 0)
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
	struct nat_config *cfg;
	struct session_in *found_in;
	struct reply_key reply;
	struct l4_fields l4 = {};
	enum reason reason;
	bool found = true;
	int verdict;

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
	reply = reply_key_of(saddr, l4.sport, daddr, l4.dport, protocol);
	found_in = bpf_map_lookup_elem(&sessions_in, &reply);
	if (!found_in && !is_nat_eip(daddr))
		return not_found(ours);
	if (pkt->ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	cfg = nat_config_get();
	reason = translate_inbound(ctx, hook, cfg, &l4, &reply, found_in, session_now(cfg), false, &new_daddr, &slot);
	if (reason != REASON_MAX)
		return drop_with(hook, reason);
	fragment_remember(&origin, saddr, new_daddr, slot, DIR_INBOUND);
	count_eip(slot, DIR_INBOUND, len);
	verdict = forward_ipv4(ctx, hook, saddr, new_daddr, tos, protocol, len);
	return fragment_release(ctx, hook, &origin, verdict);
}

/* Outbound, on the VPC side, after no 1:1 binding matched. Sets *ours to false,
 * changing nothing, when the source is not a NAT gateway's (no session, no SNAT entry)
 * or the sender is not registered with it; *registered then says which. A packet of
 * an established session from the sender its record carries skips the vpc_sources
 * lookup; everything else is for a registered sender only. */
static __always_inline int natgw_outbound(void *ctx, const enum hook hook, struct ipv4_packet *pkt, bool *ours,
					  bool *registered)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	__be32 saddr = pkt->ip->saddr, daddr = pkt->ip->daddr, new_daddr;
	__u8 tos = pkt->ip->tos, protocol = pkt->ip->protocol;
	__u32 len = pkt->total_len, slot, in_slot = 0;
	struct fragment_origin origin = {saddr, daddr, pkt->ip->frag_off, pkt->ip->id, protocol};
	struct snat_rule_key rule_key = {};
	struct flow_key key = {};
	struct nat_config *cfg;
	struct snat_pool *pool;
	struct l4_fields l4 = {};
	struct session *s = 0;
	enum reason reason;
	__be32 eip;
	__be16 eip_port;
	__u8 flags, sender[ETH_ALEN];
	__u64 now;
	bool found = true;
	int verdict;

	rule_key.prefixlen = 32;
	rule_key.addr = saddr;
	reason = parse_l4(data, data_end, pkt, &l4);
	key.inside_addr = saddr;
	key.remote_addr = daddr;
	key.inside_port = l4.sport;
	key.remote_port = l4.dport;
	key.protocol = protocol;
	if (reason == REASON_MAX && (l4.kind == L4_TCP || l4.kind == L4_UDP || l4.kind == L4_ICMP_ECHO))
		s = bpf_map_lookup_elem(&sessions, &key);
	if (!s || !from_known_sender(ctx, hook, s->sender_mac)) {
		*registered = vpc_source_registered(ctx, hook, saddr);
		if (!*registered)
			return not_found(ours);
	}
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
	cfg = nat_config_get();
	now = session_now(cfg);
	if (!s) {
		pool = bpf_map_lookup_elem(&snat_rules, &rule_key);
		if (!pool)
			return not_found(ours);
		if (l4.kind == L4_OTHER || (l4.kind == L4_ICMP_ECHO && l4.echo_type != ICMP_ECHO))
			return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
		if (l4.kind == L4_TCP && (l4.tcp_flags & SEG_RST))
			return drop_with(hook, REASON_DROP_NAT_NO_SESSION);
		if (pkt->ip->ttl <= 1)
			return pass_with(hook, REASON_PASS_TTL_EXPIRING);
		frame_sender(ctx, hook, sender);
		reason = snat_open(cfg, &key, pool, now, is_nat_eip(daddr), sender, &s);
		if (reason != REASON_MAX)
			return refuse_with_icmp(ctx, hook, reason);
		if (!s)
			return drop_with(hook, REASON_DROP_NAT_NO_SESSION);
	} else if (pkt->ip->ttl <= 1) {
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	} else {
		session_learn_sender(ctx, hook, s);
	}
	session_touch(&s->last_seen_ns, now);
	if (l4.kind == L4_TCP)
		session_track_tcp(&s->tcp, l4.tcp_flags, true);
	eip = s->eip;
	eip_port = s->eip_port;
	slot = s->counter_slot;
	flags = s->flags;
	if (rewrite_endpoint(ctx, hook, &l4, true, saddr, eip, l4.sport, eip_port) < 0)
		return drop_with(hook, REASON_DROP_TRUNCATED_L4);
	new_daddr = daddr;
	if (flags & SESSION_HAIRPIN) {
		/* The remote is one of our EIPs: deliver it as if it came from the internet,
		 * from our EIP:port, so the server sees the caller's external address. */
		struct reply_key reply = reply_key_of(eip, eip_port, daddr, l4.dport, protocol);

		reason = translate_inbound(ctx, hook, cfg, &l4, &reply, bpf_map_lookup_elem(&sessions_in, &reply),
					   now, true, &new_daddr, &in_slot);
		if (reason != REASON_MAX)
			return drop_with(hook, reason);
	}
	fragment_remember(&origin, eip, new_daddr, slot, DIR_OUTBOUND);
	count_eip(slot, DIR_OUTBOUND, len);
	if (flags & SESSION_HAIRPIN)
		count_eip(in_slot, DIR_INBOUND, len);
	verdict = forward_ipv4(ctx, hook, eip, new_daddr, tos, protocol, len);
	return fragment_release(ctx, hook, &origin, verdict);
}
