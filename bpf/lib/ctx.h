/* ctx.h: the few things that differ between the XDP and TC hooks. Every function takes
 * the hook as a compile-time constant, so after inlining only one branch survives and
 * the verifier never sees the other context type. */
#pragma once

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>
#include "csum.h"

enum hook {
	HOOK_XDP,
	HOOK_TC,
};

/* Headers the NAT may touch lie in the first bytes: Ethernet, IP with options, an ICMP
 * header and the quoted IP header with options and 8 bytes of L4 (14+60+8+60+20). */
#define PULL_LEN 162

/* Hide a value's range from the compiler, so that a bounds check the verifier needs
 * (it cannot bound the result of a modulo) is not optimised away. */
#define opaque(x) asm volatile("" : "+r"(x))

/* ctx_data and ctx_data_end hide ctx from the optimiser: otherwise clang may keep
 * &skb->data in a register across calls, and the verifier refuses a load through a
 * context pointer that was moved ("dereference of modified ctx ptr"). */
static __always_inline void *ctx_data(void *ctx, const enum hook hook)
{
	opaque(ctx);
	if (hook == HOOK_XDP)
		return (void *)(long)((struct xdp_md *)ctx)->data;
	return (void *)(long)((struct __sk_buff *)ctx)->data;
}

static __always_inline void *ctx_data_end(void *ctx, const enum hook hook)
{
	opaque(ctx);
	if (hook == HOOK_XDP)
		return (void *)(long)((struct xdp_md *)ctx)->data_end;
	return (void *)(long)((struct __sk_buff *)ctx)->data_end;
}

/* The whole packet's length. At TC the skb may be non-linear (GSO, GRO), so this is
 * more than data_end - data. */
static __always_inline __u32 ctx_len(void *ctx, const enum hook hook)
{
	if (hook == HOOK_XDP)
		return (__u32)(ctx_data_end(ctx, hook) - ctx_data(ctx, hook));
	return ((struct __sk_buff *)ctx)->len;
}

static __always_inline __u32 ctx_ifindex(void *ctx, const enum hook hook)
{
	if (hook == HOOK_XDP)
		return ((struct xdp_md *)ctx)->ingress_ifindex;
	return ((struct __sk_buff *)ctx)->ifindex;
}

/* Whether the frame carries a VLAN tag outside its bytes: at TC, the skb's tag (the
 * sender's or the NIC's VLAN offload). An XDP program cannot see such a tag without a
 * device-bound metadata kfunc, so at XDP only tags inside the frame are seen
 * (docs/security.md says which offload to turn off). */
static __always_inline bool ctx_vlan_tagged(void *ctx, const enum hook hook)
{
	if (hook == HOOK_XDP)
		return false;
	return ((struct __sk_buff *)ctx)->vlan_present != 0;
}

/* Make the headers directly readable. XDP frames are linear; an skb's headers may sit
 * in fragments, and pulling invalidates every packet pointer taken before. */
static __always_inline void ctx_pull_headers(void *ctx, const enum hook hook)
{
	__u32 want, len;

	if (hook == HOOK_XDP)
		return;
	len = ctx_len(ctx, hook);
	want = len < PULL_LEN ? len : PULL_LEN;
	if (ctx_data_end(ctx, hook) - ctx_data(ctx, hook) < want)
		bpf_skb_pull_data(ctx, want);
}

static __always_inline int ctx_pass(const enum hook hook)
{
	return hook == HOOK_XDP ? XDP_PASS : TC_ACT_OK;
}

static __always_inline int ctx_drop(const enum hook hook)
{
	return hook == HOOK_XDP ? XDP_DROP : TC_ACT_SHOT;
}

/* Update a TCP or UDP checksum for a changed pseudo-header address.
 * At TC the kernel's helper must do it: an skb may carry CHECKSUM_PARTIAL (the field
 * holds only the uncomplemented pseudo-header sum) or CHECKSUM_COMPLETE (skb->csum must
 * follow), and only the helper knows which. An XDP frame always carries a full checksum.
 * At TC this invalidates packet pointers: callers reload them afterwards. */
static __always_inline int ctx_l4_csum_replace_addr(void *ctx, const enum hook hook, __u32 off,
						    __be32 from, __be32 to, const bool udp)
{
	if (hook == HOOK_XDP) {
		void *data = ctx_data(ctx, hook), *data_end = ctx_data_end(ctx, hook);
		__u16 *check;

		if (off > PULL_LEN)
			return -1;
		check = data + off;
		if ((void *)(check + 1) > data_end)
			return -1;
		*check = udp ? udp_csum_replace4(*check, from, to) : csum_replace4(*check, from, to);
		return 0;
	}
	return bpf_l4_csum_replace(ctx, off, from, to,
				   BPF_F_PSEUDO_HDR | sizeof(to) | (udp ? BPF_F_MARK_MANGLED_0 : 0));
}
