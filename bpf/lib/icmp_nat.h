/* icmp_nat.h: ICMP errors about NAT gateway sessions (RFC 5508 section 3.4). */
#pragma once

#include "conntrack.h"
#include "forward.h"
#include "rewrite.h"
#include "stats.h"

/* Translate the packet an ICMP error quotes and the error's outer address. Sets
 * *found to false, having changed nothing, when the error is about no session. Inbound,
 * the error is about a packet the gateway sent from EIP:port, so the quoted source
 * goes back to the instance's endpoint; outbound, an instance complains about a packet
 * it got, so the quoted destination becomes the EIP's endpoint again. */
static __always_inline int icmp_error_nat(void *ctx, const enum hook hook, struct ipv4_packet *pkt,
					  const enum direction dir, bool *found)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	struct icmphdr *icmp;
	struct iphdr *inner;
	struct session *s;
	struct session_in *in;
	struct flow_key key = {};
	struct reply_key reply;
	__u32 inner_len, quoted_l4, slot;
	__be16 *inner_sport, *inner_dport, *port_field, new_port, old_port;
	__u16 *l4_check = 0, icmp_check, old, new;
	__be32 *addr_field, old_addr, new_addr, saddr, daddr;
	bool udp = false, echo = false;
	__u8 tos, protocol;
	__u32 len;

	if (pkt->l4_off > L4_OFF_MAX)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	icmp = data + pkt->l4_off;
	inner = (void *)(icmp + 1);
	if ((void *)(inner + 1) > data_end || pkt->l4_len < sizeof(*icmp) + sizeof(*inner))
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	if (inner->version != 4 || inner->ihl != 5)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	inner_len = sizeof(*inner);
	if (pkt->l4_len < sizeof(*icmp) + inner_len + 8 || (void *)inner + inner_len + 8 > data_end)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	if (inner->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK))
		return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
	quoted_l4 = pkt->l4_len - sizeof(*icmp) - inner_len;
	inner_sport = (void *)inner + inner_len;
	inner_dport = inner_sport + 1;
	if (inner->protocol == IPPROTO_TCP) {
		if (quoted_l4 >= offsetof(struct tcphdr, check) + 2) {
			l4_check = (void *)inner_sport + offsetof(struct tcphdr, check);
			if ((void *)(l4_check + 1) > data_end)
				return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
		}
	} else if (inner->protocol == IPPROTO_UDP) {
		l4_check = (void *)inner_sport + offsetof(struct udphdr, check);
		udp = true;
	} else if (inner->protocol == IPPROTO_ICMP) {
		/* A quoted echo request: its identifier sits at bytes 4-5. */
		struct icmphdr *q = (void *)inner_sport;

		if (dir != DIR_INBOUND || q->type != ICMP_ECHO)
			return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
		inner_sport = (void *)&q->rest;
		echo = true;
	} else {
		return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
	}
	if ((void *)(inner_sport + 1) > data_end)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);

	if (dir == DIR_INBOUND) {
		/* The quoted packet left from EIP:port towards the remote. */
		if (inner->saddr != pkt->ip->daddr)
			return drop_with(hook, REASON_DROP_ICMP_MISMATCH);
		reply = reply_key_of(inner->daddr, echo ? 0 : *inner_dport, inner->saddr, *inner_sport, inner->protocol);
		in = bpf_map_lookup_elem(&sessions_in, &reply);
		if (!in)
			return not_found(found);
		addr_field = &inner->saddr;
		port_field = inner_sport;
		new_addr = in->inside_addr;
		new_port = in->inside_port;
		slot = in->counter_slot;
	} else {
		/* The quoted packet came from the remote to the instance's endpoint. */
		if (inner->daddr != pkt->ip->saddr)
			return not_found(found);
		key.inside_addr = inner->daddr;
		key.remote_addr = inner->saddr;
		key.inside_port = *inner_dport;
		key.remote_port = *inner_sport;
		key.protocol = inner->protocol;
		s = bpf_map_lookup_elem(&sessions, &key);
		if (!s)
			return not_found(found);
		addr_field = &inner->daddr;
		port_field = inner_dport;
		new_addr = s->eip;
		new_port = s->eip_port;
		slot = s->counter_slot;
	}
	old_addr = *addr_field;
	old_port = *port_field;

	/* Every quoted change shows in the outer ICMP checksum once; all offsets inside the
	 * ICMP message are even, so 16-bit updates line up. */
	icmp_check = icmp->checksum;
	if (l4_check) {
		old = *l4_check;
		if (!(udp && old == 0)) {
			new = csum_replace4(old, old_addr, new_addr);
			new = csum_replace2(new, old_port, new_port);
			if (udp && new == 0)
				new = 0xffff;
			*l4_check = new;
			icmp_check = csum_replace2(icmp_check, old, new);
		}
	} else if (echo) {
		/* The quoted echo's own checksum covers its identifier. */
		struct icmphdr *q = (void *)inner + inner_len;

		old = q->checksum;
		new = csum_replace2(old, old_port, new_port);
		q->checksum = new;
		icmp_check = csum_replace2(icmp_check, old, new);
	}
	*port_field = new_port;
	icmp_check = csum_replace2(icmp_check, old_port, new_port);
	old = inner->check;
	new = csum_replace4(old, old_addr, new_addr);
	inner->check = new;
	icmp_check = csum_replace2(icmp_check, old, new);
	*addr_field = new_addr;
	icmp_check = csum_replace4(icmp_check, old_addr, new_addr);
	icmp->checksum = icmp_check;

	/* The outer header: to the instance inbound, from the EIP outbound. */
	if (pkt->ip->ttl <= 1)
		return pass_with(hook, REASON_PASS_TTL_EXPIRING);
	tos = pkt->ip->tos;
	protocol = pkt->ip->protocol;
	len = pkt->total_len;
	saddr = pkt->ip->saddr;
	daddr = pkt->ip->daddr;
	if (dir == DIR_INBOUND)
		daddr = new_addr;
	else
		saddr = new_addr;
	if (rewrite_ip_addr(ctx, hook, dir == DIR_INBOUND ? IP_DADDR_OFF : IP_SADDR_OFF, new_addr) < 0)
		return drop_with(hook, REASON_DROP_BAD_IP_HEADER);
	count_eip(slot, dir, len);
	return forward_ipv4(ctx, hook, saddr, daddr, tos, protocol, len);
}
