// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
/* traffic.c: the benchmark's own programs. gen builds IPv4/UDP frames in live-frames
 * mode (BPF_PROG_TEST_RUN with BPF_F_TEST_XDP_LIVE_FRAMES) and paces them itself;
 * sink counts what arrives by class (translated or not) and checks a sample of
 * checksums; floor is the least any XDP gateway must do: rewrite MACs and redirect. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <stdbool.h>

/* Every generated packet is a 60-byte frame: Ethernet, IPv4, UDP and this payload. */
enum frame_layout {
	FRAME_PAYLOAD_LEN = 18,
	FRAME_UDP_LEN = 8 + FRAME_PAYLOAD_LEN,
};
/* Puts enum frame_layout in BTF, so Go gets the sizes through bpf2go. */
volatile const enum frame_layout frame_layout_in_btf;

struct gen_config {
	__u8 src_mac[6];
	__u8 dst_mac[6];
	__be32 src_base;      /* first source address; flows walk src_hosts from here */
	__be32 dst_base;      /* first destination address; flows walk dst_hosts from here */
	__u32 src_hosts;
	__u32 dst_hosts;
	__u32 src_ports;      /* source ports per host, from port_base */
	__u16 port_base;
	__u16 dst_port;
	__u32 payload_sum;    /* one's complement sum of the template's payload */
	__u32 walk_dst_port;  /* 1: the walked port is the destination's (replies), dst_port the source's */
	__u64 interval_ns;    /* time between packets; 0 sends flat out */
};

struct gen_state {
	__u64 start_ns;
	__u64 sent;
	__u64 late; /* packets sent after their slot because the generator fell behind */
};

/* A packet is translated when it leaves from an EIP (SNAT, 1:1 outbound) or arrives at
 * a private address (DNAT, 1:1 inbound); untranslated when it still leaves from a
 * private address or still arrives at an EIP. */
enum sink_class {
	SINK_TRANSLATED = 0,
	SINK_UNTRANSLATED,
	SINK_OTHER,
	SINK_CHECKED,        /* sampled packets whose checksums were checked */
	SINK_BAD_CHECKSUM,
	SINK_MAX,
};

struct sink_config {
	__be32 eip_net;
	__be32 eip_mask;
	__be32 private_net;
	__be32 private_mask;
	__u32 sample_every; /* check checksums of one packet in this many (a power of two) */
};

struct floor_config {
	__u8 src_mac[6];
	__u8 dst_mac[6];
	__u32 egress_ifindex;
};

volatile const struct sink_config sink_cfg;
/* The floor's way out for each direction: VPC to uplink, and uplink to VPC. */
volatile const struct floor_config floor_out_cfg;
volatile const struct floor_config floor_in_cfg;

/* The generator's settings change between windows without reloading, so they live in
 * a map rather than in constants. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_config);
} gen_configs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_state);
} gen_states SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, SINK_MAX);
	__type(key, enum sink_class);
	__type(value, __u64);
} sink_counts SEC(".maps");

static __always_inline __u16 fold(__u64 sum)
{
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)sum;
}

static __always_inline __u32 sum32(__be32 v) { return (v & 0xffff) + (v >> 16); }

struct spin_ctx {
	__u64 until;
};

static long spin_step(__u32 i, struct spin_ctx *s)
{
	return bpf_ktime_get_ns() >= s->until;
}

/* Every header byte is written on every packet: live-frames pages are recycled with
 * whatever the receivers wrote into them. */
SEC("xdp")
int gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	struct gen_config *cfg;
	struct gen_state *st;
	__u32 key = 0, flow, flows, host, dst_host, sport;
	__be32 saddr, daddr;
	__u16 udp_len, ip_len;
	__u64 sum, now;

	if ((void *)(udp + 1) > data_end)
		return XDP_ABORTED;
	st = bpf_map_lookup_elem(&gen_states, &key);
	cfg = bpf_map_lookup_elem(&gen_configs, &key);
	if (!st || !cfg)
		return XDP_ABORTED;

	now = bpf_ktime_get_ns();
	if (!st->start_ns)
		st->start_ns = now;
	if (cfg->interval_ns) {
		struct spin_ctx spin = { .until = st->start_ns + st->sent * cfg->interval_ns };

		if (now < spin.until)
			bpf_loop(1 << 20, spin_step, &spin, 0);
		else if (now > spin.until + 1000000)
			st->late++;
	}

	flows = cfg->src_hosts * cfg->src_ports;
	flow = flows ? st->sent % flows : 0;
	host = cfg->src_ports ? flow / cfg->src_ports : 0;
	sport = cfg->port_base + (cfg->src_ports ? flow % cfg->src_ports : 0);
	dst_host = cfg->dst_hosts ? st->sent % cfg->dst_hosts : 0;
	saddr = bpf_htonl(bpf_ntohl(cfg->src_base) + host);
	daddr = bpf_htonl(bpf_ntohl(cfg->dst_base) + dst_host);
	st->sent++;

	udp_len = FRAME_UDP_LEN;
	ip_len = sizeof(*ip) + udp_len;

	__builtin_memcpy(eth->h_dest, cfg->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, cfg->src_mac, ETH_ALEN);
	eth->h_proto = bpf_htons(ETH_P_IP);

	ip->version = 4;
	ip->ihl = 5;
	ip->tos = 0;
	ip->tot_len = bpf_htons(ip_len);
	ip->id = 0;
	ip->frag_off = 0;
	ip->ttl = 64;
	ip->protocol = IPPROTO_UDP;
	ip->saddr = saddr;
	ip->daddr = daddr;
	ip->check = 0;
	sum = bpf_htons(0x4500) + bpf_htons(ip_len) + bpf_htons((64 << 8) | IPPROTO_UDP) + sum32(saddr) +
	      sum32(daddr);
	ip->check = ~fold(sum);

	if (cfg->walk_dst_port) {
		udp->source = bpf_htons(cfg->dst_port);
		udp->dest = bpf_htons(sport);
	} else {
		udp->source = bpf_htons(sport);
		udp->dest = bpf_htons(cfg->dst_port);
	}
	udp->len = bpf_htons(udp_len);
	udp->check = 0;
	sum = sum32(saddr) + sum32(daddr) + bpf_htons(IPPROTO_UDP) + bpf_htons(udp_len) +
	      udp->source + udp->dest + udp->len + cfg->payload_sum;
	udp->check = ~fold(sum) ?: 0xffff;
	return XDP_TX;
}

static __always_inline void sink_count(enum sink_class c)
{
	__u64 *n = bpf_map_lookup_elem(&sink_counts, &c);

	if (n)
		*n += 1;
}

/* Checks the IPv4 header checksum and the UDP checksum of a generated packet. */
static __always_inline bool checksums_ok(struct iphdr *ip, void *data_end)
{
	struct udphdr *udp = (void *)(ip + 1);
	__u16 *w = (void *)ip;
	__u64 sum = 0;
	int i;

	if ((void *)udp + FRAME_UDP_LEN > data_end || udp->len != bpf_htons(FRAME_UDP_LEN))
		return false;
#pragma unroll
	for (i = 0; i < 10; i++)
		sum += w[i];
	if (fold(sum) != 0xffff)
		return false;
	sum = sum32(ip->saddr) + sum32(ip->daddr) + bpf_htons(IPPROTO_UDP) + udp->len;
	w = (void *)udp;
#pragma unroll
	for (i = 0; i < FRAME_UDP_LEN / 2; i++)
		sum += w[i];
	return fold(sum) == 0xffff;
}

SEC("xdp")
int sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	static __u32 seen; /* per-program sample clock; races between CPUs only blur the sample */

	if ((void *)(ip + 1) > data_end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	if ((ip->saddr & sink_cfg.eip_mask) == sink_cfg.eip_net ||
	    (ip->daddr & sink_cfg.private_mask) == sink_cfg.private_net)
		sink_count(SINK_TRANSLATED);
	else if ((ip->saddr & sink_cfg.private_mask) == sink_cfg.private_net ||
		 (ip->daddr & sink_cfg.eip_mask) == sink_cfg.eip_net)
		sink_count(SINK_UNTRANSLATED);
	else
		sink_count(SINK_OTHER);
	if ((seen++ & (sink_cfg.sample_every - 1)) == 0 && ip->protocol == IPPROTO_UDP && ip->ihl == 5) {
		sink_count(SINK_CHECKED);
		if (!checksums_ok(ip, data_end))
			sink_count(SINK_BAD_CHECKSUM);
	}
	return XDP_DROP;
}

static __always_inline int floor_forward(struct xdp_md *ctx, volatile const struct floor_config *cfg)
{
	void *data = (void *)(long)ctx->data, *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;

	if ((void *)(eth + 1) > data_end)
		return XDP_DROP;
	__builtin_memcpy(eth->h_dest, (const void *)cfg->dst_mac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, (const void *)cfg->src_mac, ETH_ALEN);
	return bpf_redirect(cfg->egress_ifindex, 0);
}

SEC("xdp")
int xdp_floor(struct xdp_md *ctx)
{
	return floor_forward(ctx, &floor_out_cfg);
}

/* The same for traffic from the uplink to the VPC (the DNAT cases' floor). */
SEC("xdp")
int xdp_floor_in(struct xdp_md *ctx)
{
	return floor_forward(ctx, &floor_in_cfg);
}

char __license[] SEC("license") = "Dual BSD/GPL";
