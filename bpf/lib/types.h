/* types.h: every struct and enum that Go sees; bpf2go turns them into Go types (-type). */
#pragma once

#include <linux/types.h>

/* Why a packet left the fast path. Each value is a counter in reason_counters and a
 * metric name on the Go side (dataplane.Reason); a Go test checks the name table
 * against REASON_MAX, so add new values before it and give them a name there. */
enum reason {
	/* Handed to the kernel (XDP_PASS / TC_ACT_OK). */
	REASON_PASS_NOT_IPV4 = 0,   /* ARP, IPv6, VLAN-tagged: the kernel's business */
	REASON_PASS_NOT_BOUND,      /* IPv4, but no binding owns it (the host's own traffic) */
	REASON_PASS_TTL_EXPIRING,   /* TTL <= 1: the kernel answers with ICMP time exceeded */
	REASON_PASS_NO_NEIGH,       /* translated, but the next hop's MAC is not resolved yet */
	REASON_PASS_MTU_EXCEEDED,   /* translated, but bigger than the egress MTU: the kernel fragments or says so */
	REASON_PASS_FIB_OTHER,      /* translated, but the route lookup gave no forwarding next hop */
	/* Dropped (XDP_DROP / TC_ACT_SHOT). */
	REASON_DROP_TRUNCATED_ETH,  /* shorter than an Ethernet header */
	REASON_DROP_BAD_IP_HEADER,  /* version != 4, IHL < 5, or the header runs past the frame */
	REASON_DROP_BAD_IP_LENGTH,  /* total length shorter than the header or longer than the frame */
	REASON_DROP_TRUNCATED_L4,   /* a bound packet whose TCP/UDP/ICMP header is cut short */
	REASON_DROP_BAD_ICMP_ERROR, /* an ICMP error whose quoted packet is malformed */
	REASON_DROP_ICMP_MISMATCH,  /* an ICMP error whose quoted packet was not sent by the binding */
	REASON_DROP_CUT_THROUGH_SPOOF, /* a cut-through EIP as source, but not from its ENI's MAC */
	REASON_MAX,
};

/* The value of both binding maps: the address to write, and the binding's slot in
 * eip_counters (one array lookup on the hot path instead of a second hash lookup). */
struct binding {
	__be32 addr;
	__u32 counter_slot;
};

/* Per-EIP metering, one per CPU per binding. "in" is internet -> instance,
 * "out" is instance -> internet. Bytes are IP bytes (header included). */
struct eip_counters {
	__u64 in_packets;
	__u64 in_bytes;
	__u64 out_packets;
	__u64 out_bytes;
};

/* A cut-through EIP: it lives on the instance's secondary ENI and is forwarded
 * untranslated; only that ENI (its MAC) may send with it as source. */
struct cut_through {
	__u8 eni_mac[6];
	__u16 pad;
	__u32 counter_slot;
};
