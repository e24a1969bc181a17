// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* harness.c: a test-only object (dataplane/harness_test.go) that measures the NAT's
 * paths inside the kernel. BPF_PROG_TEST_RUN with repeat runs one buffer again and
 * again, each run seeing the previous run's output; a single-packet run instead pays
 * about 1 us of setup. Here each run first rebuilds the frame from a template, with
 * the flow picked in order or at random among many, and then runs the same code as
 * nat.c's entry points. harness_rebuild does the rebuild alone: its time is
 * subtracted. The maps are the dataplane's own (the test loads this object onto
 * them), so the state measured is what the dataplane's Go API made. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "lib/dispatch.h"

/* A 14-byte Ethernet header, a 20 to 60-byte IP header, and a TCP header with options
 * fit; the Go side pads templates to a multiple of 8 bytes. */
#define HARNESS_FRAME_MAX 128

/* Flow i of `flows` changes the template's source address (or, with vary_dst, its
 * destination address) by i / (ports * remotes),
 * its source port by (i / remotes) % ports, and its destination port by i % remotes
 * (host-order additions). Checksums are not refreshed: nothing on the measured paths
 * checks them, and the NAT updates them incrementally whatever they hold. */
struct harness_template {
	__u32 len;     /* bytes of frame to copy; the run's buffer has exactly this size */
	__u32 flows;   /* >= 1 */
	__u32 ports;   /* >= 1 */
	__u32 remotes; /* >= 1 */
	__u32 random;  /* 1: each run picks its flow at random; 0: in order */
	__u32 vary_dst;
	__u8 frame[HARNESS_FRAME_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct harness_template);
} harness_templates SEC(".maps");

/* The next flow of an in-order run, per CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} harness_cursor SEC(".maps");


/* Write the template, with flow i's changes, over the run's buffer. Returns 0 when the
 * buffer was rebuilt. */
static __always_inline int rebuild(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct harness_template *t;
	__u32 zero = 0, flow, *cursor, i, len, ihl, addr_step, port_step, remote_step;
	struct iphdr *ip;
	__be16 *ports;

	t = bpf_map_lookup_elem(&harness_templates, &zero);
	cursor = bpf_map_lookup_elem(&harness_cursor, &zero);
	if (!t || !cursor || t->flows == 0 || t->ports == 0 || t->remotes == 0)
		return -1;
	len = t->len;
	if (data + len != data_end)
		return -1;
	/* Eight bytes at a time; the verifier proves each copy inside both buffers. */
	for (i = 0; i < HARNESS_FRAME_MAX / 8; i++) {
		if (i * 8 >= len || data + i * 8 + 8 > data_end)
			break;
		*(__u64 *)(data + i * 8) = *(__u64 *)(t->frame + i * 8);
	}
	if (t->random) {
		flow = bpf_get_prandom_u32() % t->flows;
	} else {
		flow = *cursor;
		*cursor = flow + 1 >= t->flows ? 0 : flow + 1;
	}
	remote_step = flow % t->remotes;
	port_step = (flow / t->remotes) % t->ports;
	addr_step = flow / t->remotes / t->ports;

	ip = data + IP_OFF;
	if ((void *)(ip + 1) > data_end)
		return -1;
	if (t->vary_dst)
		ip->daddr = bpf_htonl(bpf_ntohl(ip->daddr) + addr_step);
	else
		ip->saddr = bpf_htonl(bpf_ntohl(ip->saddr) + addr_step);
	ihl = ip->ihl * 4;
	if (ihl > IP_HEADER_MAX)
		return -1;
	ports = data + IP_OFF + ihl;
	if ((void *)(ports + 2) > data_end)
		return 0; /* no ports: only the address varies */
	ports[0] = bpf_htons(bpf_ntohs(ports[0]) + port_step);
	ports[1] = bpf_htons(bpf_ntohs(ports[1]) + remote_step);
	return 0;
}

SEC("xdp")
int harness_rebuild(struct xdp_md *ctx)
{
	return rebuild(ctx) == 0 ? XDP_DROP : XDP_ABORTED;
}

SEC("xdp")
int harness_uplink(struct xdp_md *ctx)
{
	if (rebuild(ctx) < 0)
		return XDP_ABORTED;
	return nat_dispatch(ctx, HOOK_XDP, DIR_INBOUND);
}

SEC("xdp")
int harness_vpc(struct xdp_md *ctx)
{
	if (rebuild(ctx) < 0)
		return XDP_ABORTED;
	return nat_dispatch(ctx, HOOK_XDP, DIR_OUTBOUND);
}

char __license[] SEC("license") = "Dual BSD/GPL";
