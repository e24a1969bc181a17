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

/* An ICMP error about a packet the binding translated quotes that packet as the far
 * side saw it: inbound, the quoted source is the EIP; outbound, the quoted destination
 * is the private address. Revert it, and fix the quoted IP checksum, the quoted L4
 * checksum when it is quoted, and the outer ICMP checksum, each once. All of this is
 * payload to the skb, so direct writes with manual checksums are right at both hooks.
 * Returns REASON_MAX on success. */
static __always_inline enum reason icmp_error_translate(void *data, void *data_end,
							const struct ipv4_packet *pkt,
							const enum direction dir, __be32 from, __be32 to)
{
	struct icmphdr *icmp;
	struct iphdr *inner;
	__u32 inner_len, quoted_l4;
	__u16 icmp_check, old, new;
	__be32 *inner_addr;
	void *inner_l4;

	if (pkt->l4_off > L4_OFF_MAX)
		return REASON_DROP_BAD_ICMP_ERROR;
	icmp = data + pkt->l4_off;
	inner = (void *)(icmp + 1);
	/* RFC 792: an error quotes the IP header and at least 8 bytes of its payload;
	 * we need the whole quoted IP header to translate anything. */
	if ((void *)(inner + 1) > data_end || pkt->l4_len < sizeof(*icmp) + sizeof(*inner))
		return REASON_DROP_BAD_ICMP_ERROR;
	if (inner->version != 4 || inner->ihl < 5)
		return REASON_DROP_BAD_ICMP_ERROR;
	inner_len = inner->ihl * 4;
	if (pkt->l4_len < sizeof(*icmp) + inner_len)
		return REASON_DROP_BAD_ICMP_ERROR;
	inner_l4 = (void *)inner + inner_len;
	if (inner_l4 > data_end)
		return REASON_DROP_BAD_ICMP_ERROR;
	quoted_l4 = pkt->l4_len - sizeof(*icmp) - inner_len;

	inner_addr = dir == DIR_INBOUND ? &inner->saddr : &inner->daddr;
	if (*inner_addr != from)
		return REASON_DROP_ICMP_MISMATCH;

	icmp_check = icmp->checksum;
	if ((inner->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK)) == 0) {
		__u16 *l4_check = 0;
		bool udp = false;

		/* The quoted L4 checksum covers the quoted addresses through its
		 * pseudo-header; it is fixed only when the error quotes it. */
		if (inner->protocol == IPPROTO_UDP && quoted_l4 >= sizeof(struct udphdr)) {
			l4_check = inner_l4 + offsetof(struct udphdr, check);
			udp = true;
		} else if (inner->protocol == IPPROTO_TCP &&
			   quoted_l4 >= offsetof(struct tcphdr, check) + sizeof(__u16)) {
			l4_check = inner_l4 + offsetof(struct tcphdr, check);
		}
		if (l4_check) {
			if ((void *)(l4_check + 1) > data_end)
				return REASON_DROP_BAD_ICMP_ERROR;
			old = *l4_check;
			new = udp ? udp_csum_replace4(old, from, to) : csum_replace4(old, from, to);
			*l4_check = new;
			icmp_check = csum_replace2(icmp_check, old, new);
		}
	}
	old = inner->check;
	new = csum_replace4(old, from, to);
	inner->check = new;
	icmp_check = csum_replace2(icmp_check, old, new);
	*inner_addr = to;
	icmp_check = csum_replace4(icmp_check, from, to);
	icmp->checksum = icmp_check;
	return REASON_MAX;
}
