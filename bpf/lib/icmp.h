/* icmp.h: translation of the packet quoted inside an ICMP error (RFC 5508 section 3.4). */
#pragma once

#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include "csum.h"
#include "parse.h"
#include "stats.h"

/* linux/icmp.h drags in libc's socket headers, which do not build for BPF; the few
 * definitions needed are RFC 792's. */
#define ICMP_ECHOREPLY 0
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_REDIRECT 5
#define ICMP_ECHO 8
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

struct icmphdr {
	__u8 type;
	__u8 code;
	__sum16 checksum;
	__be32 rest; /* identifier and sequence, gateway, or unused: never translated here */
};

static __always_inline bool icmp_is_error(__u8 type)
{
	return type == ICMP_DEST_UNREACH || type == ICMP_SOURCE_QUENCH || type == ICMP_REDIRECT ||
	       type == ICMP_TIME_EXCEEDED || type == ICMP_PARAMETERPROB;
}

/* The packet an ICMP error quotes (RFC 792: its IP header, options included, and at
 * least 8 bytes of what followed), as both the 1:1 path and the NAT gateways use it. */
struct icmp_quote {
	struct icmphdr *icmp; /* the error's own header */
	struct iphdr *ip;     /* the quoted IP header */
	__u32 l4_len;         /* quoted bytes after the quoted IP header */
	__be16 *sport;        /* the quoted ports, or an echo's identifier (both point at it); */
	__be16 *dport;        /*   NULL when not quoted or not a first fragment */
	__u16 *l4_check;      /* the quoted TCP/UDP checksum, or an echo's own; NULL when not quoted */
	bool udp;             /* l4_check is UDP's: zero means none */
	bool echo;            /* the quoted packet is an ICMP echo request */
};

/* Parse the error's quote. Returns REASON_MAX, or REASON_DROP_BAD_ICMP_ERROR when it
 * is cut short or is not IPv4. */
static __always_inline enum reason icmp_quote_parse(void *data, void *data_end, const struct ipv4_packet *pkt,
						    struct icmp_quote *q)
{
	__u32 ip_len;
	void *l4;

	if (pkt->l4_off > L4_OFF_MAX)
		return REASON_DROP_BAD_ICMP_ERROR;
	q->icmp = data + pkt->l4_off;
	q->ip = (void *)(q->icmp + 1);
	if ((void *)(q->ip + 1) > data_end || pkt->l4_len < sizeof(struct icmphdr) + sizeof(struct iphdr))
		return REASON_DROP_BAD_ICMP_ERROR;
	if (q->ip->version != 4 || q->ip->ihl < 5)
		return REASON_DROP_BAD_ICMP_ERROR;
	ip_len = q->ip->ihl * 4;
	if (pkt->l4_len < sizeof(struct icmphdr) + ip_len)
		return REASON_DROP_BAD_ICMP_ERROR;
	l4 = (void *)q->ip + ip_len;
	if (l4 > data_end)
		return REASON_DROP_BAD_ICMP_ERROR;
	q->l4_len = pkt->l4_len - sizeof(struct icmphdr) - ip_len;
	q->sport = q->dport = 0;
	q->l4_check = 0;
	q->udp = q->echo = false;
	/* Only a first fragment quotes an L4 header. */
	if (q->ip->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK))
		return REASON_MAX;
	if (q->ip->protocol == IPPROTO_TCP || q->ip->protocol == IPPROTO_UDP) {
		__u32 check_off = q->ip->protocol == IPPROTO_UDP ? offsetof(struct udphdr, check)
								  : offsetof(struct tcphdr, check);

		if (q->l4_len >= 4 && l4 + 4 <= data_end) {
			q->sport = l4;
			q->dport = l4 + 2;
		}
		/* The quoted checksum is fixed only when the error quotes it. */
		if (q->l4_len >= check_off + 2 && l4 + check_off + 2 <= data_end) {
			q->l4_check = l4 + check_off;
			q->udp = q->ip->protocol == IPPROTO_UDP;
		}
	} else if (q->ip->protocol == IPPROTO_ICMP) {
		struct icmphdr *quoted = l4;

		if (q->l4_len >= sizeof(*quoted) && (void *)(quoted + 1) <= data_end && quoted->type == ICMP_ECHO) {
			q->echo = true;
			q->sport = q->dport = (__be16 *)&quoted->rest;
			q->l4_check = &quoted->checksum;
		}
	}
	return REASON_MAX;
}

/* Rewrite the quoted address at addr (the quote's saddr or daddr) and, when port is
 * set, the quoted port (or identifier) at port, fixing each checksum they show in
 * once: the quoted IP header's, the quoted L4 checksum (TCP and UDP cover the address
 * through their pseudo-header and the port; an echo's only its identifier), and the
 * error's own. All of this is payload to the skb, so direct writes with manual
 * checksums are right at both hooks. */
static __always_inline void icmp_quote_rewrite(struct icmp_quote *q, __be32 *addr, __be32 to_addr, __be16 *port,
					       __be16 to_port)
{
	__u16 icmp_check = q->icmp->checksum, old, new;
	__be32 from_addr = *addr;
	__be16 from_port = port ? *port : to_port;

	/* An echo's checksum has no pseudo-header: only a new identifier changes it. */
	if (q->l4_check && (port || !q->echo)) {
		old = *q->l4_check;
		if (q->echo)
			new = csum_replace2(old, from_port, to_port);
		else
			new = l4_csum_replace_endpoint(old, from_addr, to_addr, from_port, to_port, q->udp);
		*q->l4_check = new;
		icmp_check = csum_replace2(icmp_check, old, new);
	}
	if (port) {
		*port = to_port;
		icmp_check = csum_replace2(icmp_check, from_port, to_port);
	}
	old = q->ip->check;
	new = csum_replace4(old, from_addr, to_addr);
	q->ip->check = new;
	icmp_check = csum_replace2(icmp_check, old, new);
	*addr = to_addr;
	icmp_check = csum_replace4(icmp_check, from_addr, to_addr);
	q->icmp->checksum = icmp_check;
}

/* An ICMP error about a packet a 1:1 binding translated quotes that packet as the far
 * side saw it: inbound, the quoted source is the EIP; outbound, the quoted destination
 * is the private address. Revert it. Returns REASON_MAX on success. */
static __always_inline enum reason icmp_error_translate(void *data, void *data_end,
							const struct ipv4_packet *pkt,
							const enum direction dir, __be32 from, __be32 to)
{
	struct icmp_quote q;
	enum reason reason = icmp_quote_parse(data, data_end, pkt, &q);
	__be32 *inner_addr;

	if (reason != REASON_MAX)
		return reason;
	inner_addr = dir == DIR_INBOUND ? &q.ip->saddr : &q.ip->daddr;
	if (*inner_addr != from)
		return REASON_DROP_ICMP_MISMATCH;
	icmp_quote_rewrite(&q, inner_addr, to, 0, 0);
	return REASON_MAX;
}
