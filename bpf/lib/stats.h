/* stats.h: the reason counters (why a packet left the fast path) and per-EIP metering. */
#pragma once

#include "ctx.h"
#include "maps.h"

enum direction {
	DIR_INBOUND,  /* internet -> instance, seen on the uplink */
	DIR_OUTBOUND, /* instance -> internet, seen on the VPC side */
};

static __always_inline void count_reason(enum reason reason)
{
	__u32 key = reason;
	__u64 *count = bpf_map_lookup_elem(&reason_counters, &key);

	if (count)
		*count += 1;
}

/* Each reason's kind, in .rodata: the packet path reads it where a parser's reason may
 * be either, and Go reads it from the object (dataplane.Reason.IsDrop), so the list
 * has one owner. */
const enum reason_kind reason_kinds[REASON_SLOTS] = {
	[REASON_PASS_NOT_IPV4] = REASON_KIND_PASS,
	[REASON_PASS_NOT_BOUND] = REASON_KIND_PASS,
	[REASON_PASS_TTL_EXPIRING] = REASON_KIND_PASS,
	[REASON_PASS_NO_NEIGH] = REASON_KIND_PASS,
	[REASON_PASS_MTU_EXCEEDED] = REASON_KIND_PASS,
	[REASON_PASS_FIB_OTHER] = REASON_KIND_PASS,
	[REASON_PASS_FRAGMENT_TO_TC] = REASON_KIND_PASS,
	[REASON_PASS_VLAN_TAGGED] = REASON_KIND_PASS,
	[REASON_PASS_BROADCAST_MULTICAST] = REASON_KIND_PASS,
	[REASON_PASS_OTHER_HOST] = REASON_KIND_PASS,
	[REASON_HELD_FRAGMENT] = REASON_KIND_HELD,
	[REASON_DROP_TRUNCATED_ETH] = REASON_KIND_DROP,
	[REASON_DROP_BAD_IP_HEADER] = REASON_KIND_DROP,
	[REASON_DROP_BAD_IP_LENGTH] = REASON_KIND_DROP,
	[REASON_DROP_TRUNCATED_L4] = REASON_KIND_DROP,
	[REASON_DROP_BAD_TCP_HEADER] = REASON_KIND_DROP,
	[REASON_DROP_BAD_UDP_LENGTH] = REASON_KIND_DROP,
	[REASON_DROP_BAD_ICMP_ERROR] = REASON_KIND_DROP,
	[REASON_DROP_ICMP_MISMATCH] = REASON_KIND_DROP,
	[REASON_DROP_CUT_THROUGH_SPOOF] = REASON_KIND_DROP,
	[REASON_DROP_SPOOFED_SOURCE] = REASON_KIND_DROP,
	[REASON_DROP_UNTRANSLATED_SOURCE] = REASON_KIND_DROP,
	[REASON_DROP_BOGON_SOURCE] = REASON_KIND_DROP,
	[REASON_DROP_UNPUBLISHED_DESTINATION] = REASON_KIND_DROP,
	[REASON_DROP_NAT_NO_SESSION] = REASON_KIND_DROP,
	[REASON_DROP_NAT_UNSUPPORTED] = REASON_KIND_DROP,
	[REASON_DROP_NAT_PORTS_EXHAUSTED] = REASON_KIND_DROP,
	[REASON_DROP_NAT_PORT_QUOTA] = REASON_KIND_DROP,
	[REASON_DROP_NAT_SESSION_QUOTA] = REASON_KIND_DROP,
	[REASON_DROP_NAT_TABLE_FULL] = REASON_KIND_DROP,
	[REASON_DROP_NAT_MAPPING_EXPIRING] = REASON_KIND_DROP,
	[REASON_DROP_NAT_CONTENDED] = REASON_KIND_DROP,
	[REASON_DROP_FRAGMENT_NO_STATE] = REASON_KIND_DROP,
	[REASON_DROP_OVER_BANDWIDTH] = REASON_KIND_DROP,
};

static __always_inline int pass_with(const enum hook hook, enum reason reason)
{
	count_reason(reason);
	return ctx_pass(hook);
}

static __always_inline int drop_with(const enum hook hook, enum reason reason)
{
	count_reason(reason);
	return ctx_drop(hook);
}

/* Leave with a reason that may be a pass or a drop (a parser's), by its kind; one
 * without a kind is dropped. */
static __always_inline int leave_with(const enum hook hook, enum reason reason)
{
	__u32 r = reason;

	if (r < REASON_SLOTS && reason_kinds[r] == REASON_KIND_PASS)
		return pass_with(hook, reason);
	return drop_with(hook, reason);
}

/* For a candidate path that found the packet is not its own: sets *found to false and
 * returns nothing the caller uses. (A flag and not a negative verdict: the verifier
 * cannot tell a helper's verdict is not negative.) */
static __always_inline int not_found(bool *found)
{
	*found = false;
	return 0;
}

#define NSEC_PER_SEC 1000000000ULL

/* The policers' clock: the coarse one (a tick's resolution is enough for buckets at
 * least a tick of traffic deep), or the time a test froze the NAT clock at. */
static __always_inline __u64 police_now(void)
{
	__u32 zero = 0;
	struct nat_config *cfg = bpf_map_lookup_elem(&nat_settings, &zero);

	if (cfg && cfg->frozen_now_ns)
		return cfg->frozen_now_ns;
	return bpf_ktime_get_coarse_ns();
}

/* The most credit a CPU takes from a bucket at once (less for a small bucket): the
 * shared bucket, and its lock, is touched once every few dozen packets of a busy EIP,
 * and no more than this sits unspent on a CPU when its flows stop. */
#define POLICE_BATCH_BYTES (16U << 10)

/* A bucket pair's entry for dir in buckets_by_slot and credits_by_slot. */
static __always_inline __u32 bucket_key(__u32 bucket, const enum direction dir)
{
	return bucket * 2 + (dir == DIR_INBOUND ? 0 : 1);
}

/* Takes ip_bytes of credit for dir at rate r: this CPU's own first, then a batch from
 * r's bucket (an EIP's own, or its shared bandwidth's). False when the bucket cannot
 * cover what is missing (the packet is over the bandwidth and takes nothing). Not
 * inlined: its frame is its own, not added to the packet path's, whose chain of frames
 * through snat_open and record_insert is at the verifier's 512 bytes. */
static __noinline bool police_take(const struct eip_rate *r, const enum direction dir, __u32 ip_bytes)
{
	struct eip_bucket *b;
	__u64 now, elapsed, tokens, per_sec, burst, need, batch, grant = 0;
	__u64 *credit;
	__u32 key;

	key = bucket_key(r->bucket, dir);
	credit = bpf_map_lookup_elem(&credits_by_slot, &key);
	if (!credit)
		return true;
	if (*credit >= ip_bytes) {
		*credit -= ip_bytes;
		return true;
	}
	per_sec = r->bytes_per_sec;
	burst = r->burst_bytes;
	need = ip_bytes - *credit;
	batch = burst / 4 < POLICE_BATCH_BYTES ? burst / 4 : POLICE_BATCH_BYTES;
	if (batch < need)
		batch = need;
	b = bpf_map_lookup_elem(&buckets_by_slot, &key);
	if (!b)
		return true;
	now = police_now();
	bpf_spin_lock(&b->lock);
	elapsed = now > b->stamp_ns ? now - b->stamp_ns : 0;
	/* A second or more without traffic fills any bucket of at most a second of
	 * traffic; below a second, elapsed * per_sec cannot overflow (per_sec is under
	 * 2^34, about 137 Gbit/s, which Go checks). */
	if (elapsed >= NSEC_PER_SEC)
		tokens = burst;
	else
		tokens = b->tokens + elapsed * per_sec / NSEC_PER_SEC;
	if (tokens > burst)
		tokens = burst;
	if (tokens >= need) {
		grant = tokens < batch ? tokens : batch;
		tokens -= grant;
	}
	b->tokens = tokens;
	b->stamp_ns = now;
	bpf_spin_unlock(&b->lock);
	if (!grant)
		return false;
	*credit = *credit + grant - ip_bytes;
	return true;
}

/* Polices a packet of the EIP in slot for dir: false when it is over the EIP's
 * bandwidth. A capped EIP of a shared bandwidth takes from its cap first, then from
 * the shared bucket; when the shared one refuses, the cap's credit goes back to this
 * CPU, so a refused packet spends neither. */
static __always_inline bool police_eip(__u32 slot, const enum direction dir, __u32 ip_bytes)
{
	struct eip_rate *rate = bpf_map_lookup_elem(&rates_by_slot, &slot), *cap = 0;
	__u64 *credit;
	__u32 key;

	if (!rate || rate->bytes_per_sec == 0)
		return true;
	if (rate->capped) {
		cap = bpf_map_lookup_elem(&caps_by_slot, &slot);
		if (cap && cap->bytes_per_sec == 0)
			cap = 0;
	}
	if (cap && !police_take(cap, dir, ip_bytes))
		return false;
	if (police_take(rate, dir, ip_bytes))
		return true;
	if (cap) {
		key = bucket_key(cap->bucket, dir);
		credit = bpf_map_lookup_elem(&credits_by_slot, &key);
		if (credit)
			*credit += ip_bytes;
	}
	return false;
}

/* Meters a packet through its EIP: false when it is over the EIP's bandwidth, and
 * then counted as dropped, for the caller to drop with REASON_DROP_OVER_BANDWIDTH. */
static __always_inline bool meter_eip(__u32 slot, const enum direction dir, __u32 ip_bytes)
{
	struct eip_counters *c = bpf_map_lookup_elem(&counters_by_slot, &slot);
	bool ok = police_eip(slot, dir, ip_bytes);

	if (!c)
		return ok;
	if (dir == DIR_INBOUND) {
		if (ok) {
			c->in_packets++;
			c->in_bytes += ip_bytes;
		} else {
			c->in_dropped_packets++;
			c->in_dropped_bytes += ip_bytes;
		}
	} else {
		if (ok) {
			c->out_packets++;
			c->out_bytes += ip_bytes;
		} else {
			c->out_dropped_packets++;
			c->out_dropped_bytes += ip_bytes;
		}
	}
	return ok;
}
