/* session_table.h: the NAT gateway's session records, one per direction of each
 * session, in one open-addressing table (session_table, an ARRAY of 64-byte buckets of
 * two 32-byte records). A key has SESSION_WINDOWS windows of SESSION_PROBE_BUCKETS
 * buckets, each from its own hash of the key, and its record is in the first with
 * room: a lookup reads one cache line, or a few in a row, whatever the number of
 * sessions, where a preallocated hash map reads a bucket and then an element wherever
 * its free list put it. Each window counts the live records that skipped it, full, for
 * a later one (session_overflows): a key missing from its first window is looked for
 * further only when that count is not 0, so a new flow's lookups read one window each
 * however long the table has been in use (once every slot had been used, they read all
 * three, and a new flow cost twice as much).
 *
 * Concurrency: readers take no lock. A record's state word says what it holds (empty,
 * busy, outbound, inbound, tentative), carries its TCP bits, and a generation that
 * changes every time the slot is claimed; a reader copies the record and checks the
 * word did not change meanwhile (but for TCP bits). Writers take no lock either: a
 * slot is claimed by compare-and-swap, and an insert that finds its key inserted by
 * another CPU meanwhile withdraws (record_insert). Removal swaps the state word. A key
 * whose windows are all full is refused: live sessions are never evicted. The hash is
 * keyed by a secret seed, so a flood of chosen tuples cannot pile into one window. */
#pragma once

#include "maps.h"
#include "types.h"

/* Open-coded numeric iterators (kernel 6.4): the verifier checks a loop written with
 * them until its state repeats, not once per iteration, which keeps the insert path's
 * nested probe loops within its budget. */
struct bpf_iter_num {
	__u64 __opaque[1];
} __attribute__((aligned(8)));

extern int bpf_iter_num_new(struct bpf_iter_num *it, int start, int end) __ksym;
extern int *bpf_iter_num_next(struct bpf_iter_num *it) __ksym;
extern void bpf_iter_num_destroy(struct bpf_iter_num *it) __ksym;

/* The probe layout, in .rodata too so that it reaches Go through BTF. */
const enum session_probe_layout session_probe_layout = SESSION_WINDOWS;

/* The state word's layout, in .rodata too so that it reaches Go through BTF. */
const enum record_state_layout record_state_layout = RECORD_GEN_SHIFT;

#define RECORD_KIND(state) ((state) & RECORD_KIND_MASK)
#define RECORD_GEN(state) ((state) >> RECORD_GEN_SHIFT)

/* A record's last_seen is rewritten at most this often (100 ms, in clock units): a
 * write per packet would bounce its cache line between CPUs for no gain in timeout
 * precision. */
#define LAST_SEEN_GRANULARITY ((100U * 1000 * 1000) >> SESSION_CLOCK_SHIFT)

#define barrier() asm volatile("" ::: "memory")
#define READ_ONCE_U32(x) (*(volatile __u32 *)&(x))

/* The NAT's settings, the session table's seed and size among them. */
static __always_inline struct nat_config *nat_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nat_settings, &zero);
}

/* What a record is found by: its direction's tuple. */
struct record_key {
	__be32 addr_a;
	__be32 addr_b;
	__be16 port_a;
	__be16 port_b;
	__u8 protocol;
	__u8 kind; /* RECORD_OUTBOUND or RECORD_INBOUND */
	__u16 pad;
};

/* A record as a reader saw it, consistent: where it is (for the direction's own
 * updates: last_seen, TCP bits, removal) and its values. */
struct record_view {
	__u32 bucket;
	__u32 index; /* in the bucket */
	__u32 state;
	__be32 to_addr;
	__be16 to_port;
	__u8 flags;
	__u8 pad;
	__u32 counter_slot;
	__u32 last_seen;
};

/* The outbound record of a session: the VPC-side tuple. */
static __always_inline struct record_key outbound_key(__be32 inside, __be32 remote, __be16 inside_port,
						      __be16 remote_port, __u8 protocol)
{
	struct record_key k = {inside, remote, inside_port, remote_port, protocol, RECORD_OUTBOUND, 0};

	return k;
}

/* The inbound record of a session: the uplink tuple. */
static __always_inline struct record_key inbound_key(__be32 remote, __be32 eip, __be16 remote_port,
						     __be16 eip_port, __u8 protocol)
{
	struct record_key k = {remote, eip, remote_port, eip_port, protocol, RECORD_INBOUND, 0};

	return k;
}

/* lowbias32 (Chris Wellons): a 32-bit mixer with good avalanche. */
static __always_inline __u32 mix32(__u32 x)
{
	x ^= x >> 16;
	x *= 0x7feb352du;
	x ^= x >> 15;
	x *= 0x846ca68bu;
	x ^= x >> 16;
	return x;
}

/* The keyed hash of a record's key, from its fields. */
static __always_inline __u32 record_fields_hash(__be32 addr_a, __be32 addr_b, __be16 port_a, __be16 port_b,
						__u8 protocol, __u8 kind, __u32 seed)
{
	__u32 h = mix32(seed ^ addr_a);

	h = mix32(h ^ addr_b);
	h = mix32(h ^ ((__u32)port_a << 16 | port_b));
	return mix32(h ^ ((__u32)protocol << 8 | kind));
}

static __always_inline __u32 record_hash(const struct record_key *k, __u32 seed)
{
	return record_fields_hash(k->addr_a, k->addr_b, k->port_a, k->port_b, k->protocol, k->kind, seed);
}

/* The home bucket: the hash scaled to the table by multiply and shift (no division,
 * any table size). */
static __always_inline __u32 record_home(__u32 hash, __u32 buckets)
{
	return ((__u64)hash * buckets) >> 32;
}

static __always_inline bool record_holds(const struct session_record *r, __u32 state, const struct record_key *k)
{
	return RECORD_KIND(state) == k->kind && r->addr_a == k->addr_a && r->addr_b == k->addr_b &&
	       r->port_a == k->port_a && r->port_b == k->port_b && r->protocol == k->protocol;
}

static __always_inline struct session_record *record_at(__u32 bucket, __u32 index)
{
	struct session_bucket *b = bpf_map_lookup_elem(&session_table, &bucket);

	if (!b)
		return 0;
	return index ? &b->records[1] : &b->records[0];
}

/* Copy the record at (bucket, index) into v (when not NULL) if it holds k and did not
 * change while being read. */
static __always_inline bool record_read(struct session_bucket *b, __u32 bucket, __u32 index,
					const struct record_key *k, struct record_view *v)
{
	struct session_record *r = index ? &b->records[1] : &b->records[0];
	__u32 state = READ_ONCE_U32(r->state), counter_slot, last_seen;
	__be32 to_addr;
	__be16 to_port;
	__u8 flags;

	if (!record_holds(r, state, k))
		return false;
	to_addr = r->to_addr;
	to_port = r->to_port;
	flags = r->flags;
	counter_slot = r->counter_slot;
	last_seen = r->last_seen;
	barrier();
	/* Removed or reused meanwhile: not this one. TCP bits may change under us. */
	if ((READ_ONCE_U32(r->state) ^ state) & ~RECORD_TCP_MASK)
		return false;
	if (v) {
		v->bucket = bucket;
		v->index = index;
		v->state = state;
		v->to_addr = to_addr;
		v->to_port = to_port;
		v->flags = flags;
		v->counter_slot = counter_slot;
		v->last_seen = last_seen;
	}
	return true;
}

static __always_inline __u32 next_bucket(__u32 b, __u32 buckets)
{
	return b + 1 >= buckets ? 0 : b + 1;
}

/* A key has SESSION_WINDOWS windows of SESSION_PROBE_BUCKETS buckets, each starting at
 * its own hash of the key; a record goes in the first with room. One window of 8
 * slots at a third full overflows about once in a thousand inserts; all three at
 * once, about once in a billion. */

/* The hash of a key's next window. */
static __always_inline __u32 next_window_hash(__u32 hash)
{
	return mix32(hash ^ 0x9e3779b9u);
}

/* Whether a live record skipped the window from home, full, for a later window of its
 * key: only then may a key missing from the window be in a later one. The lookup's key
 * is written at `at`, memory the caller has already: record_insert's frame, over
 * snat_open's and a program's, is at the verifier's 512 bytes of stack, and a slot
 * of its own for each key would pass them. */
static __always_inline bool window_overflowed(__u32 home, __u32 *at)
{
	__u32 *skipped;

	*at = home;
	skipped = bpf_map_lookup_elem(&session_overflows, at);
	return skipped && READ_ONCE_U32(*skipped) != 0;
}

/* Which window of the key with this hash holds bucket: the first that covers it (two
 * windows may overlap). An insert counts its record's skips by it and a removal
 * uncounts them by it, so the two always agree. */
static __always_inline __u32 window_holding(__u32 hash, __u32 buckets, __u32 bucket)
{
	__u32 w, home, offset;

	for (w = 0; w < SESSION_WINDOWS; w++) {
		home = record_home(hash, buckets);
		offset = bucket >= home ? bucket - home : bucket + buckets - home;
		if (offset < SESSION_PROBE_BUCKETS)
			return w;
		hash = next_window_hash(hash);
	}
	return SESSION_WINDOWS;
}

/* Add delta to the skip counts of the windows that a record of the key with hash in
 * bucket skipped: those before the one holding it. The lookups' key is written at
 * `at` (window_overflowed says why). */
static __always_inline void record_skips(__u32 hash, __u32 buckets, __u32 bucket, __u32 delta, __u32 *at)
{
	__u32 windows = window_holding(hash, buckets, bucket), w, *skipped;

	for (w = 0; w < SESSION_WINDOWS - 1 && w < windows; w++) {
		*at = record_home(hash, buckets);
		skipped = bpf_map_lookup_elem(&session_overflows, at);
		if (skipped)
			__sync_fetch_and_add(skipped, delta);
		hash = next_window_hash(hash);
	}
}

/* A slot never claimed since the table was made (state 0: empty, generation 0). An
 * insert takes the first empty slot of its window, so a key is never found beyond
 * such a slot, and a window that has one never overflowed into the second. */
#define RECORD_NEVER_USED 0u

#define NO_FREE_SLOT 0xffffffffu

/* Look for k in the window from home: 1 found (v filled); 0 absent, the window having
 * a never-used slot (k is not in its second window either); -1 absent. */
static __always_inline int window_find(__u32 home, __u32 buckets, const struct record_key *k, struct record_view *v)
{
	struct session_bucket *bucket;
	__u32 b = home, i;

	for (i = 0; i < SESSION_PROBE_BUCKETS; i++) {
		bucket = bpf_map_lookup_elem(&session_table, &b);
		if (!bucket)
			return 0;
		if (record_read(bucket, b, 0, k, v) || record_read(bucket, b, 1, k, v))
			return 1;
		if (READ_ONCE_U32(bucket->records[0].state) == RECORD_NEVER_USED ||
		    READ_ONCE_U32(bucket->records[1].state) == RECORD_NEVER_USED)
			return 0;
		b = next_bucket(b, buckets);
	}
	return -1;
}

/* Find k's record: 1 with v filled, or 0. Its first window, then the next if a live
 * record skipped that one, and so on. A global function: the verifier checks it once,
 * not at each of its callers. Inlined into the established packets' lookups (7fd883f)
 * it left the verifier a state for each place a record can be found, carried through
 * the rest of the path: 8 times the instructions to verify (xdp_vpc 84,103 ->
 * 669,868 of the 1,000,000 allowed; the four programs loaded in 2.4-2.8 s, not 0.8),
 * for no gain measured here (InProgram/(snat|dnat)/sessions=N/established/random). */
__noinline int record_find(const struct nat_config *cfg, const struct record_key *k, struct record_view *v)
{
	__u32 buckets, hash, home, w, w_home;
	int found;

	/* A global function's pointers may be NULL as far as the verifier knows. */
	if (!cfg || !k || !v)
		return 0;
	buckets = cfg->session_buckets;
	if (buckets == 0)
		return 0;
	hash = record_hash(k, cfg->session_seed);
	for (w = 0; w < SESSION_WINDOWS; w++) {
		home = record_home(hash, buckets);
		found = window_find(home, buckets, k, v);
		if (found >= 0)
			return found;
		if (!window_overflowed(home, &w_home))
			return 0;
		hash = next_window_hash(hash);
	}
	return 0;
}

/* The record at (bucket, index), being removed (busy: its key stays), in state seen
 * before: it no longer counts as having skipped its key's earlier windows. A global
 * function: every removal path shares one verified copy. */
__noinline int record_unskip(__u32 bucket, __u32 index, __u32 seen)
{
	struct nat_config *cfg = nat_config_get();
	struct session_record *r = record_at(bucket, index);
	__u32 hash, home;

	if (!cfg || !r || cfg->session_buckets == 0)
		return 0;
	hash = record_fields_hash(r->addr_a, r->addr_b, r->port_a, r->port_b, r->protocol,
				  RECORD_KIND(seen) & ~RECORD_TENTATIVE, cfg->session_seed);
	record_skips(hash, cfg->session_buckets, bucket, -1, &home);
	return 0;
}

/* Start reading the first bucket of the key with these fields, and its window's skip
 * count, without waiting for them: a new flow's lookups each miss the cache in a large
 * table, and loads whose values nothing waits for let the CPU go on with the work
 * before the lookup (the rule, the quota) while the lines come in. Not inside
 * record_insert: there the next compare-and-swap would wait for a skip count it may
 * not need (a new mapping cost 5% more on a fresh table). No stack: the callers' frames
 * are at the verifier's limit. */
static __always_inline void record_prefetch(const struct nat_config *cfg, __be32 addr_a, __be32 addr_b,
					    __be16 port_a, __be16 port_b, __u8 protocol, __u8 kind)
{
	struct session_bucket *bucket;
	__u32 home, *skipped;

	if (cfg->session_buckets == 0)
		return;
	home = record_home(record_fields_hash(addr_a, addr_b, port_a, port_b, protocol, kind, cfg->session_seed),
			   cfg->session_buckets);
	bucket = bpf_map_lookup_elem(&session_table, &home);
	if (bucket)
		(void)READ_ONCE_U32(bucket->records[0].state);
	skipped = bpf_map_lookup_elem(&session_overflows, &home);
	if (skipped)
		(void)READ_ONCE_U32(*skipped);
}

/* Remove the record at (bucket, index) if its state is still seen (but for TCP bits,
 * which may move under us): 1 when removed, 0 when another remover won. */
static __always_inline int record_remove_at(__u32 bucket, __u32 index, __u32 seen)
{
	struct session_record *r = record_at(bucket, index);
	__u32 now, i;

	if (!r)
		return 0;
	for (i = 0; i < 4; i++) {
		now = __sync_val_compare_and_swap(&r->state, seen, RECORD_BUSY | (seen & ~RECORD_KIND_MASK));
		if (now == seen) {
			record_unskip(bucket, index, seen);
			/* Empty, keeping the generation: the next claim moves it on. */
			__sync_lock_test_and_set(&r->state, RECORD_EMPTY | (RECORD_GEN(seen) << RECORD_GEN_SHIFT));
			return 1;
		}
		/* Only its TCP bits moved: try again with them. */
		if ((now ^ seen) & ~RECORD_TCP_MASK)
			return 0;
		seen = now;
	}
	return 0;
}

/* Remove the record v saw, unless it changed since (another remover won): 1 when
 * removed. */
static __always_inline int record_remove(const struct record_view *v)
{
	return v ? record_remove_at(v->bucket, v->index, v->state) : 0;
}

/* Claim r if its state is still empty (as read): the busy state written, or 0 when
 * another CPU changed it first. States come back as values rather than through
 * pointers: each pointed-to local is a stack slot, and record_insert's frame is at the
 * verifier's limit. */
static __always_inline __u32 record_claim(struct session_record *r, __u32 seen)
{
	__u32 gen = RECORD_GEN(seen) + 1, busy;

	/* Generation 0 means never used (RECORD_NEVER_USED): skip it when wrapping. */
	if (gen > 0xffff)
		gen = 1;
	busy = RECORD_BUSY | (gen << RECORD_GEN_SHIFT);
	return __sync_val_compare_and_swap(&r->state, seen, busy) == seen ? busy : 0;
}

/* Try to take the slot at (bucket, index) for k; on success it is filled and
 * published as tentative, and that state is returned (0: another CPU took it). */
static __always_inline __u32 record_take(struct session_bucket *bk, __u32 index, const struct record_key *k,
					 const struct session_record *values)
{
	struct session_record *r = index ? &bk->records[1] : &bk->records[0];
	__u32 seen = READ_ONCE_U32(r->state), busy, tentative;

	if (RECORD_KIND(seen) != RECORD_EMPTY)
		return 0;
	busy = record_claim(r, seen);
	if (!busy)
		return 0;
	r->addr_a = k->addr_a;
	r->addr_b = k->addr_b;
	r->port_a = k->port_a;
	r->port_b = k->port_b;
	r->protocol = k->protocol;
	r->flags = values->flags;
	r->to_port = values->to_port;
	r->to_addr = values->to_addr;
	r->counter_slot = values->counter_slot;
	r->last_seen = values->last_seen;
	tentative = k->kind | RECORD_TENTATIVE | (busy & ~RECORD_KIND_MASK);
	/* Publish: an atomic exchange, so the fields are visible before the state, and
	 * the caller's later reads of other slots are not ordered before it. */
	__sync_lock_test_and_set(&r->state, tentative);
	return tentative;
}

/* Whether the slot at (bucket, index) of bk holds k, live or tentative. */
static __always_inline bool record_twin(struct session_bucket *bk, __u32 index, const struct record_key *k)
{
	struct session_record *r = index ? &bk->records[1] : &bk->records[0];
	__u32 state = READ_ONCE_U32(r->state);

	return record_holds(r, state & ~RECORD_TENTATIVE, k);
}

/* Look in the window from home for a record of k, live or tentative, other than the
 * one at (bucket, index): 1 found; 0 absent, the window having a never-used slot (no
 * insert of k went further); -1 absent. */
static __always_inline int window_twin(__u32 home, __u32 buckets, const struct record_key *k, __u32 bucket,
				       __u32 index)
{
	struct session_bucket *bk;
	struct bpf_iter_num it;
	__u32 b = home;
	int twin = -1;

	bpf_iter_num_new(&it, 0, SESSION_PROBE_BUCKETS);
	while (bpf_iter_num_next(&it)) {
		bk = bpf_map_lookup_elem(&session_table, &b);
		if (!bk) {
			twin = 0;
			break;
		}
		if (((b != bucket || index != 0) && record_twin(bk, 0, k)) ||
		    ((b != bucket || index != 1) && record_twin(bk, 1, k))) {
			twin = 1;
			break;
		}
		if (READ_ONCE_U32(bk->records[0].state) == RECORD_NEVER_USED ||
		    READ_ONCE_U32(bk->records[1].state) == RECORD_NEVER_USED) {
			twin = 0;
			break;
		}
		b = next_bucket(b, buckets);
	}
	bpf_iter_num_destroy(&it);
	return twin;
}

/* Where an insert may go: the first empty slot seen. */
struct free_slot {
	__u32 bucket;
	__u32 index;
};

/* Look for k in the window from home, noting its first empty slot in *free unless one
 * was found before: 1 found (v filled); 0 absent, the window having a never-used slot;
 * -1 absent. */
static __always_inline int window_scan(__u32 home, __u32 buckets, const struct record_key *k, struct record_view *v,
				       struct free_slot *free)
{
	struct session_bucket *bucket;
	struct bpf_iter_num it;
	__u32 b = home, s0, s1;
	int found = -1;

	bpf_iter_num_new(&it, 0, SESSION_PROBE_BUCKETS);
	while (bpf_iter_num_next(&it)) {
		bucket = bpf_map_lookup_elem(&session_table, &b);
		if (!bucket) {
			found = 0;
			break;
		}
		if (record_read(bucket, b, 0, k, v) || record_read(bucket, b, 1, k, v)) {
			found = 1;
			break;
		}
		s0 = READ_ONCE_U32(bucket->records[0].state);
		s1 = READ_ONCE_U32(bucket->records[1].state);
		if (free->bucket == NO_FREE_SLOT) {
			if (RECORD_KIND(s0) == RECORD_EMPTY) {
				free->bucket = b;
				free->index = 0;
			} else if (RECORD_KIND(s1) == RECORD_EMPTY) {
				free->bucket = b;
				free->index = 1;
			}
		}
		if (s0 == RECORD_NEVER_USED || s1 == RECORD_NEVER_USED) {
			found = 0;
			break;
		}
		b = next_bucket(b, buckets);
	}
	bpf_iter_num_destroy(&it);
	return found;
}

/* Insert k's record with the values of `values` (its state ignored). Returns 0 with v
 * the new record; -EEXIST with v the record k already has; -E2BIG when k's probe
 * windows are full; -EBUSY when another CPU took its slot first; -EAGAIN when it
 * withdrew for another CPU's insert of k (look k up again).
 *
 * No lock: one pass finds k's record or the first empty slot, which is claimed by
 * compare-and-swap, filled and published as tentative, invisible to readers. Two CPUs
 * inserting the same key at once could both get that far, so each then looks for
 * another record of k, live or tentative: with none, its record goes live; with one,
 * it withdraws its own. Publishing is ordered before that look, so of two racing
 * inserts at least one sees the other, and a live record is never withdrawn: a key
 * never has two live records, and a packet is never translated by a record that does
 * not stay. (Both may withdraw: then neither finds the other's record when it looks
 * again, their packets are refused as contended, and the next one opens the
 * session.) */
__noinline int record_insert(const struct nat_config *cfg, const struct record_key *k,
			     const struct session_record *values, struct record_view *v)
{
	__u32 buckets, first, hash, tentative = 0;
	struct free_slot free = {NO_FREE_SLOT, 0};
	struct bpf_iter_num it;
	int twin = -1;
	struct session_bucket *bucket;
	struct session_record *r;
	int found = -1;

	/* A global function's pointers may be NULL as far as the verifier knows. */
	if (!cfg || !k || !values || !v)
		return -E2BIG;
	buckets = cfg->session_buckets;
	if (buckets == 0)
		return -E2BIG;
	first = hash = record_hash(k, cfg->session_seed);
	/* The windows in order, as far as record_find would look (k may be in any of
	 * them) or until one has room: the first empty slot is where it goes. */
	bpf_iter_num_new(&it, 0, SESSION_WINDOWS);
	while (found < 0 && bpf_iter_num_next(&it)) {
		found = window_scan(record_home(hash, buckets), buckets, k, v, &free);
		/* v is this insert's to fill: its bucket serves as the lookup's key. */
		if (found < 0 && free.bucket != NO_FREE_SLOT && !window_overflowed(record_home(hash, buckets), &v->bucket))
			found = 0;
		hash = next_window_hash(hash);
	}
	bpf_iter_num_destroy(&it);
	if (found > 0)
		return -EEXIST;
	if (free.bucket == NO_FREE_SLOT)
		return -E2BIG; /* every window is full */
	bucket = bpf_map_lookup_elem(&session_table, &free.bucket);
	tentative = bucket ? record_take(bucket, free.index, k, values) : 0;
	if (!tentative)
		return -EBUSY; /* another insert took the slot since */
	/* v's values now, so that `values` and `bucket` need not outlive the look for a
	 * twin below: fewer registers to spill into a frame at the verifier's limit. */
	v->to_addr = values->to_addr;
	v->to_port = values->to_port;
	v->flags = values->flags;
	v->counter_slot = values->counter_slot;
	v->last_seen = values->last_seen;
	/* Counted before the look for a twin, and so before the record goes live:
	 * whoever finds it live followed the skips that lead to it. */
	record_skips(first, buckets, free.bucket, 1, &v->bucket);
	/* A racing insert of k stopped where this one would have: at the first
	 * never-used slot, which was never-used then too, or after a window nobody had
	 * skipped. Of two racing inserts, the one whose look came last reaches the
	 * other's record: each counted its skips before its own look, and a record
	 * that skipped nothing is in the first window, which every look reads. */
	hash = first;
	bpf_iter_num_new(&it, 0, SESSION_WINDOWS);
	while (twin < 0 && bpf_iter_num_next(&it)) {
		twin = window_twin(record_home(hash, buckets), buckets, k, free.bucket, free.index);
		if (twin < 0 && !window_overflowed(record_home(hash, buckets), &v->bucket))
			twin = 0;
		hash = next_window_hash(hash);
	}
	bpf_iter_num_destroy(&it);
	if (twin > 0) {
		/* Another CPU is inserting k, or has: withdraw. Nobody else removes a
		 * tentative record (nobody else sees it): this is record_remove_at, with the
		 * skips this insert counted. */
		record_skips(first, buckets, free.bucket, -1, &v->bucket);
		r = record_at(free.bucket, free.index);
		if (r)
			__sync_lock_test_and_set(&r->state, RECORD_EMPTY | (RECORD_GEN(tentative) << RECORD_GEN_SHIFT));
		return -EAGAIN;
	}
	/* The only one: live. Nobody else writes a tentative record. */
	r = record_at(free.bucket, free.index);
	if (r)
		__sync_lock_test_and_set(&r->state, tentative & ~RECORD_TENTATIVE);
	v->bucket = free.bucket;
	v->index = free.index;
	v->state = tentative & ~RECORD_TENTATIVE;
	return 0;
}

/* Why an insert failed, as a reason. */
static __always_inline enum reason insert_refused(long err)
{
	return err == -EBUSY ? REASON_DROP_NAT_CONTENDED : REASON_DROP_NAT_TABLE_FULL;
}

/* The direction saw TCP flags: add its bits, unless the record changed meanwhile. */
static __always_inline void record_track_tcp(const struct record_view *v, __u32 bits)
{
	struct session_record *r = record_at(v->bucket, v->index);
	__u32 seen, want = bits << RECORD_TCP_SHIFT, i;

	if (!r)
		return;
	seen = READ_ONCE_U32(r->state);
	for (i = 0; i < 4; i++) {
		if ((seen ^ v->state) & ~RECORD_TCP_MASK)
			return; /* removed or reused */
		if ((seen & want) == want)
			return;
		if (__sync_val_compare_and_swap(&r->state, seen, seen | want) == seen)
			return;
		seen = READ_ONCE_U32(r->state);
	}
}

/* The direction saw a packet now (in clock units). */
static __always_inline void record_touch(const struct record_view *v, __u32 now)
{
	struct session_record *r;

	if (now - v->last_seen <= LAST_SEEN_GRANULARITY)
		return;
	r = record_at(v->bucket, v->index);
	if (r)
		r->last_seen = now;
}
