/* parse.h: validation of the Ethernet and IPv4 headers every path starts from. */
#pragma once

#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include "csum.h"
#include "types.h"

/* iphdr.frag_off (host-order masks): More Fragments, the 13-bit offset, and both, which
 * are set in every fragment of a fragmented datagram and in no whole one. */
#define IP_MF 0x2000
#define IP_FRAG_OFFSET_MASK 0x1fff
#define IP_FRAGMENT (IP_MF | IP_FRAG_OFFSET_MASK)

/* Where the IP header starts (after an untagged Ethernet header), and the furthest an
 * L4 header can: the verifier needs offsets bounded before it allows packet access. */
#define IP_OFF 14
#define IP_HEADER_MAX 60
#define L4_OFF_MAX (IP_OFF + IP_HEADER_MAX)

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
	/* A tagged frame belongs to a VLAN device of the kernel's, not to the fast path:
	 * translating it would send it out untagged (docs/security.md). */
	if (eth->h_proto == bpf_htons(ETH_P_8021Q) || eth->h_proto == bpf_htons(ETH_P_8021AD))
		return REASON_PASS_VLAN_TAGGED;
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

/* Validates the TCP or UDP header of a packet that carries one (not a non-first
 * fragment): present, a TCP data offset of at least 5 words that ends inside the
 * segment, a UDP length of at least 8 that, unless the datagram is fragmented, fits
 * the IP payload. Returns REASON_MAX when it is good or the protocol is another. */
static __always_inline enum reason check_l4_header(void *data, void *data_end, const struct ipv4_packet *pkt)
{
	__u8 protocol = pkt->ip->protocol;
	__u32 off = pkt->l4_off;

	if (!pkt->has_l4 || off > L4_OFF_MAX)
		return pkt->has_l4 ? REASON_DROP_BAD_IP_HEADER : REASON_MAX;
	if (protocol == IPPROTO_TCP) {
		struct tcphdr *tcp = data + off;

		if (pkt->l4_len < sizeof(*tcp) || (void *)(tcp + 1) > data_end)
			return REASON_DROP_TRUNCATED_L4;
		if (tcp->doff < 5 || tcp->doff * 4u > pkt->l4_len)
			return REASON_DROP_BAD_TCP_HEADER;
	} else if (protocol == IPPROTO_UDP) {
		struct udphdr *udp = data + off;
		__u32 len;

		if (pkt->l4_len < sizeof(*udp) || (void *)(udp + 1) > data_end)
			return REASON_DROP_TRUNCATED_L4;
		len = bpf_ntohs(udp->len);
		/* A first fragment's UDP length covers the whole datagram. */
		if (len < sizeof(*udp) || (len > pkt->l4_len && !(pkt->ip->frag_off & bpf_htons(IP_MF))))
			return REASON_DROP_BAD_UDP_LENGTH;
	}
	return REASON_MAX;
}
