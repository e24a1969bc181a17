/* rewrite.h: rewriting one endpoint (address, and port or ICMP echo identifier) of a
 * packet by frame offsets, with every checksum kept valid, at XDP and at TC. Each call
 * takes its packet pointers afresh, since TC's checksum helpers invalidate them. */
#pragma once

#include <linux/tcp.h>
#include <linux/udp.h>
#include "ctx.h"
#include "icmp.h"
#include "parse.h"

#define IP_SADDR_OFF (IP_OFF + offsetof(struct iphdr, saddr))
#define IP_DADDR_OFF (IP_OFF + offsetof(struct iphdr, daddr))
#define IP_CHECK_OFF (IP_OFF + offsetof(struct iphdr, check))

/* What the NAT gateway found in a packet's L4 header. */
enum l4_kind {
	L4_NONE,       /* a non-first fragment: no L4 header */
	L4_TCP,
	L4_UDP,
	L4_ICMP_ECHO,  /* echo request or reply: the identifier plays the port */
	L4_ICMP_ERROR,
	L4_OTHER,      /* another protocol or ICMP type: not translated by NAT gateways */
};

struct l4_fields {
	__u32 sport_off; /* frame offset of the source port, or of the echo identifier */
	__u32 dport_off; /* frame offset of the destination port, or of the echo identifier */
	__u32 csum_off;  /* frame offset of the L4 checksum */
	__be16 sport;    /* echo: the identifier on the side that chose it, 0 on the other */
	__be16 dport;
	__u8 kind;       /* enum l4_kind */
	__u8 tcp_flags;  /* TCP: the FIN/SYN/RST/ACK byte */
	__u8 protocol;
	__u8 echo_type;  /* ICMP echo: ICMP_ECHO or ICMP_ECHOREPLY */
};

/* TCP flag bits of byte 13 (linux/tcp.h's TCP_FLAG_* are 32-bit words). */
#define SEG_FIN 0x01
#define SEG_SYN 0x02
#define SEG_RST 0x04
#define SEG_ACK 0x10

/* Parse the L4 header, for every path (the one L4 parser): its kind, ports and
 * checksum offset. Returns REASON_MAX, or a drop reason. */
static __always_inline enum reason parse_l4(void *data, void *data_end, const struct ipv4_packet *pkt,
						struct l4_fields *l4)
{
	__u32 off = pkt->l4_off;

	l4->protocol = pkt->ip->protocol;
	if (!pkt->has_l4) {
		l4->kind = L4_NONE;
		return REASON_MAX;
	}
	if (off > L4_OFF_MAX)
		return REASON_DROP_BAD_IP_HEADER;
	if (l4->protocol == IPPROTO_TCP || l4->protocol == IPPROTO_UDP) {
		struct udphdr *ports = data + off; /* TCP and UDP ports sit alike */
		enum reason bad = check_l4_header(data, data_end, pkt);

		if (bad != REASON_MAX)
			return bad;
		/* Verifier guard: check_l4_header proved at least this, but the compiler may
		 * compute the pointer anew, and the verifier knows only what it checked. */
		if ((void *)(ports + 1) > data_end)
			return REASON_DROP_TRUNCATED_L4;
		l4->sport = ports->source;
		l4->dport = ports->dest;
		l4->sport_off = off;
		l4->dport_off = off + 2;
		if (l4->protocol == IPPROTO_TCP) {
			struct tcphdr *tcp = data + off;

			if ((void *)(tcp + 1) > data_end) /* verifier guard, as above */
				return REASON_DROP_TRUNCATED_L4;
			l4->kind = L4_TCP;
			l4->csum_off = off + offsetof(struct tcphdr, check);
			l4->tcp_flags = ((__u8 *)tcp)[13];
		} else {
			l4->kind = L4_UDP;
			l4->csum_off = off + offsetof(struct udphdr, check);
		}
		return REASON_MAX;
	}
	if (l4->protocol == IPPROTO_ICMP) {
		struct icmphdr *icmp = data + off;

		if (pkt->l4_len < sizeof(*icmp) || (void *)(icmp + 1) > data_end)
			return REASON_DROP_TRUNCATED_L4;
		l4->csum_off = off + offsetof(struct icmphdr, checksum);
		if (icmp_is_error(icmp->type)) {
			l4->kind = L4_ICMP_ERROR;
			return REASON_MAX;
		}
		if (icmp->type == ICMP_ECHO || icmp->type == ICMP_ECHOREPLY) {
			__be16 id = *(__be16 *)&icmp->rest;

			l4->kind = L4_ICMP_ECHO;
			l4->echo_type = icmp->type;
			l4->sport_off = off + offsetof(struct icmphdr, rest);
			l4->dport_off = l4->sport_off;
			/* The requester chose the identifier: it is the requester's "port". */
			if (icmp->type == ICMP_ECHO)
				l4->sport = id;
			else
				l4->dport = id;
			return REASON_MAX;
		}
	}
	l4->kind = L4_OTHER;
	return REASON_MAX;
}

/* The 16-bit field at a frame offset, or 0 when it lies outside the headers. */
static __always_inline __u16 *be16_at(void *ctx, const enum hook hook, __u32 off)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	__u16 *p;

	if (off > PULL_LEN)
		return 0;
	p = data + off;
	if ((void *)(p + 1) > data_end)
		return 0;
	return p;
}

static __always_inline int load_be16(void *ctx, const enum hook hook, __u32 off, __u16 *v)
{
	__u16 *p = be16_at(ctx, hook, off);

	if (!p)
		return -1;
	*v = *p;
	return 0;
}

static __always_inline int store_be16(void *ctx, const enum hook hook, __u32 off, __u16 v)
{
	__u16 *p = be16_at(ctx, hook, off);

	if (!p)
		return -1;
	*p = v;
	return 0;
}

/* Rewrite the IP address at addr_off (IP_SADDR_OFF or IP_DADDR_OFF) and the IP
 * checksum. Direct writes are right at both hooks: the IP checksum is never offloaded,
 * and the address and checksum changes cancel in a CHECKSUM_COMPLETE sum. */
static __always_inline int rewrite_ip_addr(void *ctx, const enum hook hook, __u32 addr_off, __be32 to)
{
	void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
	struct iphdr *ip = data + IP_OFF;
	__be32 from;

	if ((void *)(ip + 1) > data_end)
		return -1;
	if (addr_off == IP_SADDR_OFF) {
		from = ip->saddr;
		ip->saddr = to;
	} else {
		from = ip->daddr;
		ip->daddr = to;
	}
	ip->check = csum_replace4(ip->check, from, to);
	return 0;
}

/* Rewrite one endpoint: the address (src or dst) and, for TCP, UDP and ICMP echo, the
 * port or identifier, keeping the IP and L4 checksums valid. */
static __always_inline int rewrite_endpoint(void *ctx, const enum hook hook, const struct l4_fields *l4,
					    const bool src, __be32 from_addr, __be32 to_addr,
					    __be16 from_port, __be16 to_port)
{
	__u32 port_off = src ? l4->sport_off : l4->dport_off;
	const bool udp = l4->kind == L4_UDP;
	__u16 check;

	if (rewrite_ip_addr(ctx, hook, src ? IP_SADDR_OFF : IP_DADDR_OFF, to_addr) < 0)
		return -1;
	if (l4->kind == L4_NONE || l4->kind == L4_OTHER || l4->kind == L4_ICMP_ERROR)
		return 0;
	if (store_be16(ctx, hook, port_off, to_port) < 0)
		return -1;
	if (l4->kind == L4_ICMP_ECHO) {
		/* No pseudo-header: only the identifier counts. ICMP is never offloaded. */
		if (load_be16(ctx, hook, l4->csum_off, &check) < 0)
			return -1;
		return store_be16(ctx, hook, l4->csum_off, csum_replace2(check, from_port, to_port));
	}
	if (hook == HOOK_TC) {
		__u64 mangled = udp ? BPF_F_MARK_MANGLED_0 : 0;

		if (bpf_l4_csum_replace(ctx, l4->csum_off, from_addr, to_addr,
					BPF_F_PSEUDO_HDR | sizeof(to_addr) | mangled) < 0)
			return -1;
		return bpf_l4_csum_replace(ctx, l4->csum_off, from_port, to_port, sizeof(to_port) | mangled);
	}
	if (load_be16(ctx, hook, l4->csum_off, &check) < 0)
		return -1;
	return store_be16(ctx, hook, l4->csum_off,
			  l4_csum_replace_endpoint(check, from_addr, to_addr, from_port, to_port, udp));
}
