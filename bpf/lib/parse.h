/* parse.h: validation of the Ethernet and IPv4 headers every path starts from. */
#pragma once

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include "csum.h"
#include "types.h"

/* Fragment offset bits of iphdr.frag_off (host order mask). */
#define IP_FRAG_OFFSET_MASK 0x1fff

struct ipv4_packet {
	struct iphdr *ip;
	__u32 header_len; /* IHL in bytes, options included */
	__u32 total_len;  /* iphdr.tot_len: Ethernet padding is not part of the packet */
	__u32 l4_off;     /* from the start of the frame */
	__u32 l4_len;     /* L4 bytes carried by this packet (or fragment) */
	bool has_l4;      /* false for non-first fragments: they carry no L4 header */
};

/* Returns REASON_MAX when the frame is a well-formed IPv4 packet, otherwise the reason
 * to pass or drop it. frame_len is the whole frame's length (may exceed data_end at TC). */
static __always_inline enum reason parse_ipv4(void *data, void *data_end, __u32 frame_len,
					      struct ipv4_packet *pkt)
{
	struct ethhdr *eth = data;
	struct iphdr *ip;

	if ((void *)(eth + 1) > data_end)
		return REASON_DROP_TRUNCATED_ETH;
	if (eth->h_proto != bpf_htons(ETH_P_IP))
		return REASON_PASS_NOT_IPV4;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > data_end)
		return REASON_DROP_BAD_IP_HEADER;
	if (ip->version != 4 || ip->ihl < 5)
		return REASON_DROP_BAD_IP_HEADER;
	pkt->header_len = ip->ihl * 4;
	if ((void *)ip + pkt->header_len > data_end)
		return REASON_DROP_BAD_IP_HEADER;
	pkt->total_len = bpf_ntohs(ip->tot_len);
	if (pkt->total_len < pkt->header_len || pkt->total_len > frame_len - sizeof(*eth))
		return REASON_DROP_BAD_IP_LENGTH;
	pkt->ip = ip;
	pkt->l4_off = sizeof(*eth) + pkt->header_len;
	pkt->l4_len = pkt->total_len - pkt->header_len;
	pkt->has_l4 = (ip->frag_off & bpf_htons(IP_FRAG_OFFSET_MASK)) == 0;
	return REASON_MAX;
}
