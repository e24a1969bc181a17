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
	struct icmp_quote q;
	struct session *s;
	struct session_in *in;
	struct flow_key key = {};
	struct reply_key reply;
	__u32 slot, len;
	__be16 *port_field, new_port;
	__be32 *addr_field, new_addr, saddr, daddr;
	enum reason reason;
	__u8 tos, protocol;

	reason = icmp_quote_parse(data, data_end, pkt, &q);
	if (reason != REASON_MAX)
		return drop_with(hook, reason);
	/* A session is found by the quoted ports: RFC 792's 8 bytes, of a first fragment,
	 * of TCP, UDP or (inbound, about a request the gateway sent) an ICMP echo. */
	if (q.l4_len < 8)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);
	if (q.ip->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK))
		return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
	if (q.ip->protocol == IPPROTO_ICMP && !(q.echo && dir == DIR_INBOUND))
		return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
	if (q.ip->protocol != IPPROTO_TCP && q.ip->protocol != IPPROTO_UDP && q.ip->protocol != IPPROTO_ICMP)
		return drop_with(hook, REASON_DROP_NAT_UNSUPPORTED);
	if (!q.sport || !q.dport)
		return drop_with(hook, REASON_DROP_BAD_ICMP_ERROR);

	if (dir == DIR_INBOUND) {
		/* The quoted packet left from EIP:port towards the remote. */
		if (q.ip->saddr != pkt->ip->daddr)
			return drop_with(hook, REASON_DROP_ICMP_MISMATCH);
		reply = reply_key_of(q.ip->daddr, q.echo ? 0 : *q.dport, q.ip->saddr, *q.sport, q.ip->protocol);
		in = bpf_map_lookup_elem(&sessions_in, &reply);
		if (!in)
			return not_found(found);
		addr_field = &q.ip->saddr;
		port_field = q.sport;
		new_addr = in->inside_addr;
		new_port = in->inside_port;
		slot = in->counter_slot;
	} else {
		/* The quoted packet came from the remote to the instance's endpoint. */
		if (q.ip->daddr != pkt->ip->saddr)
			return not_found(found);
		key.inside_addr = q.ip->daddr;
		key.remote_addr = q.ip->saddr;
		key.inside_port = *q.dport;
		key.remote_port = *q.sport;
		key.protocol = q.ip->protocol;
		s = bpf_map_lookup_elem(&sessions, &key);
		if (!s)
			return not_found(found);
		addr_field = &q.ip->daddr;
		port_field = q.dport;
		new_addr = s->eip;
		new_port = s->eip_port;
		slot = s->counter_slot;
	}
	icmp_quote_rewrite(&q, addr_field, new_addr, port_field, new_port);

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
