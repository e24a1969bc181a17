/* csum.h: incremental Internet checksum updates (RFC 1624), with the UDP zero rule. */
#pragma once

#include <linux/types.h>
#include <stdbool.h>
#include <bpf/bpf_helpers.h>

static __always_inline __u16 csum_fold32(__u32 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

/* HC' = ~(~HC + ~m + m') for a 32-bit field changing from -> to. The one's
 * complement sum is byte-order independent, so the words are used as stored. */
static __always_inline __u16 csum_replace4(__u16 check, __be32 from, __be32 to)
{
	__u32 sum = (__u16)~check;

	sum += (~from & 0xffff) + (~from >> 16);
	sum += (to & 0xffff) + (to >> 16);
	return (__u16)~csum_fold32(sum);
}

static __always_inline __u16 csum_replace2(__u16 check, __u16 from, __u16 to)
{
	__u32 sum = (__u16)~check;

	sum += (__u16)~from;
	sum += to;
	return (__u16)~csum_fold32(sum);
}

/* A TCP or UDP checksum after its packet's address (in the pseudo-header) and port
 * changed; udp keeps RFC 768's zero rule (below). */
static __always_inline __u16 l4_csum_replace_endpoint(__u16 check, __be32 from_addr, __be32 to_addr,
						      __u16 from_port, __u16 to_port, const bool udp)
{
	if (udp && check == 0)
		return 0;
	check = csum_replace4(check, from_addr, to_addr);
	check = csum_replace2(check, from_port, to_port);
	return udp && check == 0 ? 0xffff : check;
}

/* UDP over IPv4: a checksum of 0 means "none" and must stay 0 (RFC 768); a computed
 * 0 is sent as 0xffff, which is the same value in one's complement. */
static __always_inline __u16 udp_csum_replace4(__u16 check, __be32 from, __be32 to)
{
	if (check == 0)
		return 0;
	check = csum_replace4(check, from, to);
	return check ? check : 0xffff;
}
