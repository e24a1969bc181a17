/* maps.h: every map of the dataplane. Go owns each one in dataplane/ (one owner per map). */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "types.h"

/* errno-base.h values the map helpers answer with. */
#ifndef E2BIG
#define E2BIG 7   /* a full hash map refuses an insert */
#endif
#ifndef EAGAIN
#define EAGAIN 11 /* the session table: an insert withdrew for a racing twin */
#endif
#ifndef EBUSY
#define EBUSY 16
#endif
#ifndef EEXIST
#define EEXIST 17 /* BPF_NOEXIST and the key is there */
#endif

/* Default capacity; the Go loader may resize before loading (Config.MaxBindings). */
#define MAX_BINDINGS 131072

/* EIP -> private address: the inbound (DNAT) half of a 1:1 binding. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BINDINGS);
	__type(key, __be32);
	__type(value, struct binding);
} inbound_bindings SEC(".maps");

/* Private address -> EIP: the outbound (SNAT) half of a 1:1 binding. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BINDINGS);
	__type(key, __be32);
	__type(value, struct binding);
} outbound_bindings SEC(".maps");

/* EIP -> its cut-through ENI: forwarded untranslated both ways. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_BINDINGS);
	__type(key, __be32);
	__type(value, struct cut_through);
} cut_throughs SEC(".maps");

/* Per-EIP packet and byte counters, indexed by binding.counter_slot (the map is counters_by_slot). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, MAX_BINDINGS);
	__type(key, __u32);
	__type(value, struct eip_counters);
} counters_by_slot SEC(".maps");

/* Per-EIP bandwidth, indexed like counters_by_slot; the loader sizes both to
 * Config.MaxBindings. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE); /* Go reads and sets them all without a syscall each */
	__uint(max_entries, MAX_BINDINGS);
	__type(key, __u32);
	__type(value, struct eip_rate);
} rates_by_slot SEC(".maps");

/* The cap of an EIP inside a shared bandwidth (ModifyCommonBandwidthPackageIpBandwidth),
 * indexed like rates_by_slot, read only where its rate says `capped`: its bucket is
 * the slot's own pair, which the shared bandwidth leaves unused. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_BINDINGS);
	__type(key, __u32);
	__type(value, struct eip_rate);
} caps_by_slot SEC(".maps");

/* Two per bucket pair (eip_rate.bucket): inbound at bucket * 2, outbound at bucket *
 * 2 + 1. A slot's own pair has the slot's number; the loader adds the shared
 * bandwidths' pairs after them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2 * MAX_BINDINGS);
	__type(key, __u32);
	__type(value, struct eip_bucket);
} buckets_by_slot SEC(".maps");

/* Credit this CPU took from a bucket and has not spent yet (bytes), keyed like
 * buckets_by_slot (bucket pair and direction): most packets spend it without touching
 * the bucket and its lock. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2 * MAX_BINDINGS);
	__type(key, __u32);
	__type(value, __u64);
} credits_by_slot SEC(".maps");

/* Room for reasons added later without changing the pinned layout. */
#define REASON_SLOTS 64
_Static_assert(REASON_MAX <= REASON_SLOTS, "reason_counters is too small for enum reason");

/* One counter per enum reason: why packets were passed to the kernel or dropped. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, REASON_SLOTS);
	__type(key, enum reason); /* also puts the enum in BTF, for bpf2go */
	__type(value, __u64);
} reason_counters SEC(".maps");

/* ---- NAT gateways ---- */

/* Default session capacity; the loader resizes (Config.MaxSessions). */
#define MAX_SESSIONS 262144
/* Each NAT EIP's port bitmaps take 24 KiB (port_bitmaps): 24 MiB for all of them. */
#define MAX_NAT_EIPS 1024
#define MAX_SNAT_RULES 16384
#define MAX_FORWARD_PORTS 65536
#define MAX_SOURCES 65536
#define MAX_FRAGMENTS 16384

/* Both records of every session, and the mappings SNAT sessions hold
 * (session_table.h, mapping.h). The loader sizes it to 2.25 buckets of two records for
 * each session of Config.MaxSessions: when that many SNAT sessions live, each with a
 * mapping of its own (three records), it is two thirds full. Mmapable: Go reads it
 * without a syscall per entry. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_SESSIONS * 9 / 4);
	__type(key, __u32);
	__type(value, struct session_bucket);
} session_table SEC(".maps");

/* For each probe window of the session table (by the bucket it starts at): how many
 * live records skipped it, full, for a later window of their key
 * (session_table.h). A lookup that misses a window goes on to the key's next one
 * only when this is not 0, so a missing key costs one window, however many slots
 * were ever used. The loader sizes it with session_table. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, MAX_SESSIONS * 9 / 4);
	__type(key, __u32);
	__type(value, __u32);
} session_overflows SEC(".maps");

/* The sessions the Go collector or a purge asks expire_sessions to remove, a batch a
 * run. Mmapable: filled without a syscall. Only the dataplane's owner uses it. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, EXPIRE_BATCH);
	__type(key, __u32);
	__type(value, struct expire_item);
} expire_queue SEC(".maps");

/* External ports in use: a bit per port, in each NAT EIP's block (enum
 * port_bitmap_layout). A port is taken by setting its bit with an atomic fetch-or: of
 * two CPUs racing for it, one sees it clear. A block costs 24 KiB whatever the number
 * of sessions, where a hash of taken ports cost about 70 bytes a session at capacity
 * and an insert (a free-list pop and a bucket lock) per new mapping. Mmapable: Go
 * reads and clears a block without a syscall per word. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, MAX_NAT_EIPS * PORT_BLOCK_WORDS);
	__type(key, __u32);
	__type(value, __u64);
} port_bitmaps SEC(".maps");

/* SNAT entries: longest source prefix -> the EIP pool. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, MAX_SNAT_RULES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct snat_rule_key);
	__type(value, struct snat_pool);
} snat_rules SEC(".maps");

/* Forward entries, one per external endpoint (a port range is expanded). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_FORWARD_PORTS);
	__type(key, struct endpoint);
	__type(value, struct forward_target);
} forward_ports SEC(".maps");

/* The EIPs of NAT gateways. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_NAT_EIPS);
	__type(key, __be32);
	__type(value, struct nat_eip);
} nat_eips SEC(".maps");

/* Sessions and ports held per internal address. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_SOURCES);
	__type(key, __be32);
	__type(value, struct source_usage);
} usage_by_source SEC(".maps");

/* Fragmented datagrams in flight. An LRU: losing one under a flood of fragments
 * loses that datagram only, never a session. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_FRAGMENTS);
	__type(key, struct fragment_key);
	__type(value, struct fragment_translation);
} fragments SEC(".maps");

/* Fragments that came before their first fragment. An LRU too: under a flood the
 * oldest held ones go, and their datagrams with them. */
#define MAX_HELD_FRAGMENTS 1024

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MAX_HELD_FRAGMENTS);
	__type(key, struct held_key);
	__type(value, struct held_fragment);
} held_fragments SEC(".maps");

/* Room to copy one frame: a held fragment on its way in, the first fragment while its
 * held followers are sent. Per CPU, as the packet path never sleeps. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct held_fragment);
} frame_scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct nat_config);
} nat_settings SEC(".maps");

/* Default capacity of vpc_sources and next_hops; the loader resizes (Config.MaxSources). */
#define MAX_VPC_SOURCES 131072

/* ---- next hops ---- */

/* VPC addresses (instances the NAT gateways serve, cut-through ENIs) -> their next
 * hop; a 1:1 binding carries its own. Sized like vpc_sources. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VPC_SOURCES);
	__type(key, __be32);
	__type(value, struct next_hop);
} next_hops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct next_hop_config);
} next_hop_settings SEC(".maps");

/* The parameters of a bpf_fib_lookup, per CPU rather than on the stack: 64 bytes the
 * programs' frames, with the session-opening functions they call, cannot spare (the
 * chain must fit in 512 bytes). Only the FIB paths use it. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	/* By size: bpf2go cannot give the kernel's struct, with its anonymous unions,
	 * a Go type, and Go never reads it. */
	__uint(value_size, sizeof(struct bpf_fib_lookup));
} fib_params SEC(".maps");

/* This CPU's FIB lookup parameters, zeroed. */
static __always_inline struct bpf_fib_lookup *fib_params_get(void)
{
	__u32 zero = 0;
	struct bpf_fib_lookup *fib = bpf_map_lookup_elem(&fib_params, &zero);

	if (fib)
		__builtin_memset(fib, 0, sizeof(*fib));
	return fib;
}

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NEXT_HOP_FALLBACK_MAX);
	__type(key, enum next_hop_fallback);
	__type(value, __u64);
} next_hop_fallbacks SEC(".maps");

/* ---- the edge ---- */

/* (VPC address, MAC) pairs that may be translated: an instance's addresses with its
 * ENI's MAC. Nothing else from the VPC is. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MAX_VPC_SOURCES);
	__type(key, struct source_key);
	__type(value, __u32);
} vpc_sources SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct edge_config);
} edge_settings SEC(".maps");

/* The interfaces the XDP programs run on, with their MACs (TC reads the kernel's
 * verdict, skb->pkt_type): see struct interface_mac. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, INTERFACE_SLOTS);
	__type(key, __u32);
	__type(value, struct interface_mac);
} interface_macs SEC(".maps");
