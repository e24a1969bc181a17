/* maps.h: every map of the dataplane. Go owns each one in dataplane/ (one owner per map). */
#pragma once

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "types.h"

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
