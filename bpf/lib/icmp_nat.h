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
	struct nat_config *cfg = nat_config_get();
	struct icmp_quote q;
	struct record_key rk;
	struct record_view v = {};
	__u32 slot, len;
	__be16 *port_field, new_port;
	__be32 *addr_field, new_addr, saddr, daddr;
	enum reason reason;
	__u8 tos, protocol;

	if (!cfg)
		return not_found(found);
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
		rk = inbound_key(q.ip->daddr, q.ip->saddr, q.echo ? 0 : *q.dport, *q.sport, q.ip->protocol);
		if (!record_find(cfg, &rk, &v))
			return not_found(found);
		addr_field = &q.ip->saddr;
		port_field = q.sport;
	} else {
		/* The quoted packet came from the remote to the instance's endpoint. */
		if (q.ip->daddr != pkt->ip->saddr)
			return not_found(found);
		rk = outbound_key(q.ip->daddr, q.ip->saddr, *q.dport, *q.sport, q.ip->protocol);
		if (!record_find(cfg, &rk, &v))
			return not_found(found);
		addr_field = &q.ip->daddr;
		port_field = q.dport;
	}
	new_addr = v.to_addr;
	new_port = v.to_port;
	slot = v.counter_slot;
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
	if (!meter_eip(slot, dir, len))
		return drop_with(hook, REASON_DROP_OVER_BANDWIDTH);
	return forward_ipv4(ctx, hook, saddr, daddr, tos, protocol, len);
}
