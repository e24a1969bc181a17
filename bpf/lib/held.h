/* held.h: out-of-order fragments (RFC 4787 REQ-14).
 * A non-first fragment that comes before its first fragment is held, whole, until the
 * first fragment gives the datagram's translation. Then each held one is sent back
 * into the interface's ingress, where it meets that translation as an in-order
 * fragment would. Only TC can send more than one packet (bpf_clone_redirect), so XDP
 * passes such fragments, and a first fragment with held followers, to its TC
 * companion (tc_*_fragments in nat.c). */
#pragma once

#include "fragments.h"

static __always_inline bool fragment_has_held(const struct fragment_origin *o)
{
	struct held_key hk = {};

	hk.datagram = datagram_of(o);
	return bpf_map_lookup_elem(&held_fragments, &hk) != NULL;
}

/* Copy the whole frame into the per-CPU scratch. */
static __always_inline struct held_fragment *frame_save(struct __sk_buff *skb)
{
	struct held_fragment *scratch;
	__u32 zero = 0, len = skb->len;

	if (len < ETH_HLEN + sizeof(struct iphdr) || len > HELD_FRAME_MAX)
		return NULL;
	scratch = bpf_map_lookup_elem(&frame_scratch, &zero);
	if (!scratch || bpf_skb_load_bytes(skb, 0, scratch->frame, len) < 0)
		return NULL;
	scratch->len = len;
	return scratch;
}

/* Make the skb the frame f holds. */
static __always_inline int frame_load(struct __sk_buff *skb, const struct held_fragment *f)
{
	__u32 len = f->len;

	opaque(len);
	if (len < ETH_HLEN + sizeof(struct iphdr) || len > HELD_FRAME_MAX)
		return -1;
	if (bpf_skb_change_tail(skb, len, 0) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, 0, f->frame, len, 0) < 0 ? -1 : 0;
}

/* A non-first fragment with no translation yet, of a NAT gateway's flow. */
static __always_inline int fragment_hold(void *ctx, const enum hook hook, const struct fragment_origin *o)
{
	struct held_fragment *copy;
	struct held_key hk = {};
	__u32 i;

	if (hook == HOOK_XDP)
		return pass_with(hook, REASON_PASS_FRAGMENT_TO_TC);
	copy = frame_save(ctx);
	if (!copy)
		return drop_with(hook, REASON_DROP_FRAGMENT_NO_STATE);
	hk.datagram = datagram_of(o);
	for (i = 0; i < HELD_PER_DATAGRAM; i++) {
		hk.index = i;
		if (bpf_map_update_elem(&held_fragments, &hk, copy, BPF_NOEXIST) == 0) {
			count_reason(REASON_HELD_FRAGMENT);
			return TC_ACT_SHOT;
		}
	}
	return drop_with(hook, REASON_DROP_FRAGMENT_NO_STATE);
}

/* After a first fragment got its verdict (its translation now remembered): send its
 * held followers back into ingress, then restore the first fragment for its verdict.
 * A held fragment that cannot be sent is counted and dropped. */
static __always_inline int fragment_release(void *ctx, const enum hook hook, const struct fragment_origin *o,
					    int verdict)
{
	struct held_fragment *first, *held;
	struct held_key hk = {};
	__u32 i, ifindex;

	if (hook == HOOK_XDP || (o->frag_off & bpf_htons(IP_FRAGMENT)) != bpf_htons(IP_MF) || !fragment_has_held(o))
		return verdict;
	first = frame_save(ctx);
	if (!first)
		return verdict; /* too big to set aside: its followers wait in the LRU */
	ifindex = ((struct __sk_buff *)ctx)->ifindex;
	hk.datagram = datagram_of(o);
	for (i = 0; i < HELD_PER_DATAGRAM; i++) {
		hk.index = i;
		held = bpf_map_lookup_elem(&held_fragments, &hk);
		if (!held)
			continue;
		if (frame_load(ctx, held) < 0 || bpf_clone_redirect(ctx, ifindex, BPF_F_INGRESS) < 0)
			count_reason(REASON_DROP_FRAGMENT_NO_STATE);
		bpf_map_delete_elem(&held_fragments, &hk);
	}
	if (frame_load(ctx, first) < 0)
		return drop_with(hook, REASON_DROP_BAD_IP_HEADER);
	return verdict;
}
