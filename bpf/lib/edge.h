/* edge.h: who may send what through the gateway (docs/security.md). From the VPC, a
 * frame is translated only when its source address is registered with the MAC it
 * comes from; from the internet, special-purpose sources are refused; nothing the
 * gateway does not publish is forwarded by its kernel on the fast path's behalf. */
#pragma once

#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include "ctx.h"
#include "maps.h"
#include "parse.h"
#include "prefix.h"
#include "stats.h"

#ifndef AF_INET
#define AF_INET 2
#endif

static __always_inline struct edge_config *edge_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&edge_settings, &zero);
}

/* 255.255.255.255 and 224.0.0.0/4: link-local by nature, never the internet's. */
static __always_inline bool is_broadcast_or_multicast(__be32 addr)
{
	return addr == 0xffffffff || (((__u8 *)&addr)[0] & 0xf0) == 0xe0;
}

/* Compared as a 4- and a 2-byte word: clang turns memcmp into a call BPF cannot make. */
static __always_inline bool mac_equal(const __u8 *a, const __u8 *b)
{
	__u32 hi_a, hi_b;
	__u16 lo_a, lo_b;

	__builtin_memcpy(&hi_a, a, 4);
	__builtin_memcpy(&lo_a, a + 4, 2);
	__builtin_memcpy(&hi_b, b, 4);
	__builtin_memcpy(&lo_b, b + 4, 2);
	return hi_a == hi_b && lo_a == lo_b;
}

/* Named in the object so that bpf2go gives Go the layout (dataplane/interfaces.go). */
const enum interface_slots_layout interface_slots_layout = INTERFACE_SLOTS;

/* Whether the frame was sent to the MAC of the interface it came in on: another
 * host's unicast (flooded to us by a bridge) or an Ethernet group address is not the
 * gateway's to forward, as the kernel would not forward it (RFC 1812 section 5.3.4).
 * At TC the kernel has judged already (skb->pkt_type); at XDP the interface's MAC
 * comes from interface_macs, which Attach fills: an interface missing there forwards
 * nothing, every frame goes to the kernel and is counted. A frame too short for an
 * Ethernet header is left to parse_ipv4 to drop. */
static __always_inline bool frame_to_us(void *ctx, const enum hook hook)
{
	struct ethhdr *eth = ctx_data(ctx, hook);
	__u32 ifindex;

	if (hook == HOOK_TC)
		return ((struct __sk_buff *)ctx)->pkt_type == PACKET_HOST;
	if ((void *)(eth + 1) > ctx_data_end(ctx, hook))
		return true;
	ifindex = ctx_ifindex(ctx, hook);
	/* Every probe slot is looked at: Go empties a slot without moving the ones after. */
#pragma unroll
	for (__u32 i = 0; i < INTERFACE_PROBES; i++) {
		__u32 slot = (ifindex + i) % INTERFACE_SLOTS;
		struct interface_mac *entry = bpf_map_lookup_elem(&interface_macs, &slot);

		if (entry && entry->ifindex == ifindex)
			return mac_equal(eth->h_dest, entry->mac);
	}
	return false;
}

/* Whether the instance registered with this source address sent it (from its MAC). */
static __always_inline bool vpc_source_registered(void *ctx, const enum hook hook, __be32 saddr)
{
	struct ethhdr *eth = ctx_data(ctx, hook);
	struct source_key key = {};

	if ((void *)(eth + 1) > ctx_data_end(ctx, hook))
		return false;
	key.addr = saddr;
	__builtin_memcpy(key.mac, eth->h_source, ETH_ALEN);
	return bpf_map_lookup_elem(&vpc_sources, &key) != 0;
}

/* Whether the frame comes from the sender a 1:1 binding's outbound half carries: the
 * usual sender, checked without a vpc_sources lookup. A session's record has no room
 * for a MAC, so NAT gateway traffic is checked against vpc_sources. */
static __always_inline bool from_known_sender(void *ctx, const enum hook hook, const __u8 *sender_mac)
{
	struct ethhdr *eth = ctx_data(ctx, hook);
	__u32 hi;
	__u16 lo;

	/* All zero is no sender known, never a sender: a frame may claim that MAC too. */
	__builtin_memcpy(&hi, sender_mac, 4);
	__builtin_memcpy(&lo, sender_mac + 4, 2);
	if (!(hi | lo) || (void *)(eth + 1) > ctx_data_end(ctx, hook))
		return false;
	return mac_equal(eth->h_source, sender_mac);
}

/* Whether the kernel would route this packet on to another host (as opposed to
 * delivering it locally, having no route, or refusing it). */
static __always_inline bool kernel_would_forward(void *ctx, const enum hook hook, const struct ipv4_packet *pkt)
{
	struct bpf_fib_lookup *fib = fib_params_get();
	long rc;

	if (!fib)
		return false;
	fib->family = AF_INET;
	fib->tos = pkt->ip->tos;
	fib->l4_protocol = pkt->ip->protocol;
	fib->ifindex = ctx_ifindex(ctx, hook);
	fib->ipv4_src = pkt->ip->saddr;
	fib->ipv4_dst = pkt->ip->daddr;
	rc = bpf_fib_lookup(ctx, fib, sizeof(*fib), BPF_FIB_LOOKUP_SKIP_NEIGH);
	return rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH ||
	       rc == BPF_FIB_LKUP_RET_FRAG_NEEDED;
}

/* A packet nobody translates. From the internet, the kernel may have it only when it
 * is for the gateway itself: anything it would forward (to an instance's private
 * address, to an address no EIP holds) is dropped. From the VPC, untranslated traffic
 * may reach special-purpose destinations (the VPC's other subnets, internal services on
 * 100.64.0.0/10) and the gateway itself, never a global address: that would leave the
 * uplink with a private source. */
static __always_inline int edge_untranslated(void *ctx, const enum hook hook, const enum direction dir,
					     const struct ipv4_packet *pkt)
{
	if (dir == DIR_OUTBOUND) {
		struct edge_config *cfg = edge_config_get();

		if (cfg && prefix_set_contains(&cfg->special_purpose, pkt->ip->daddr))
			return pass_with(hook, REASON_PASS_NOT_BOUND);
		if (kernel_would_forward(ctx, hook, pkt))
			return drop_with(hook, REASON_DROP_UNTRANSLATED_SOURCE);
		return pass_with(hook, REASON_PASS_NOT_BOUND);
	}
	if (kernel_would_forward(ctx, hook, pkt))
		return drop_with(hook, REASON_DROP_UNPUBLISHED_DESTINATION);
	return pass_with(hook, REASON_PASS_NOT_BOUND);
}
