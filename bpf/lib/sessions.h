/* sessions.h: opening NAT gateway sessions: through an SNAT entry (outbound) or a
 * forward entry (inbound). Their state and removal are conntrack.h's. */
#pragma once

#include "conntrack.h"
#include "ports.h"

/* Insert a new session's two records: outbound first, inbound second, so an inbound
 * packet never finds a session without its outbound half (expiry removes them in the
 * other order). Returns 0 with *out the new outbound record; -EEXIST with *out the
 * one the session has already (another CPU opened it this instant, or the tuple is
 * another session's); another negative error having inserted nothing. */
static __always_inline long session_insert(const struct nat_config *cfg, const struct record_key *out_key,
					   const struct record_key *in_key, struct session_record *values,
					   __be32 in_to_addr, __be16 in_to_port, struct record_view *out,
					   struct record_view *in)
{
	long err = record_insert(cfg, out_key, values, out);

	if (err < 0)
		return err;
	/* The inbound record has the same values but where it translates to. */
	values->to_addr = in_to_addr;
	values->to_port = in_to_port;
	err = record_insert(cfg, in_key, values, in);
	if (err < 0) {
		record_remove(out);
		if (err == -EEXIST)
			return -E2BIG; /* the inbound tuple is taken: no room for this one */
		return err == -EAGAIN ? -EBUSY : err; /* the outbound record was the only one */
	}
	return 0;
}

/* What opening a session works on, per CPU rather than on the stack: the chain of
 * frames from a program through snat_open to the port search's callback must fit in
 * the verifier's 512 bytes. */
struct session_opening {
	struct session_record values; /* the template of both records */
	struct record_key other_key;  /* the key of the record the caller did not name */
	struct record_view other;     /* and where it went */
	struct mapping_work mapping;  /* SNAT: the mapping the session holds */
	struct endpoint endpoint;     /* SNAT: the inside one; DNAT: the external one */
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct session_opening);
} session_openings SEC(".maps");

static __always_inline struct session_opening *session_opening_get(void)
{
	__u32 zero = 0;
	struct session_opening *so = bpf_map_lookup_elem(&session_openings, &zero);

	if (so)
		__builtin_memset(so, 0, sizeof(*so));
	return so;
}

/* What snat_open and dnat_open answer, beside a reason, when another CPU opened the
 * same session at the same instant: the caller looks it up (not they: the chain of
 * frames through them into record_find would not fit the stack). Never counted. */
#define OPENED_ELSEWHERE (REASON_MAX + 1)

/* now_hairpin packs a session's opening time (clock units) with whether its remote is
 * an EIP of this gateway (bit 32): global functions take five arguments. */
#define NOW_HAIRPIN(now, hairpin) ((__u64)(now) | ((__u64)!!(hairpin) << 32))

/* Open an SNAT session for key through pool; its records say what was opened. On
 * success (REASON_MAX) *out is its outbound record. A global function, verified once
 * and with its own stack frame. */
__noinline int snat_open(const struct nat_config *cfg, const struct record_key *out_key,
			 const struct snat_pool *pool, __u64 now_hairpin, struct record_view *out)
{
	__u32 now = (__u32)now_hairpin;
	bool hairpin = now_hairpin >> 32;
	struct session_opening *so = session_opening_get();
	struct source_usage *usage;
	enum reason reason;
	long err;

	if (!cfg || !out_key || !pool || !out || !so)
		return REASON_DROP_NAT_TABLE_FULL;
	/* out_key is the VPC-side tuple: inside, remote and their ports. */
	usage = source_usage_of(out_key->addr_a);
	if (!usage)
		return REASON_DROP_NAT_TABLE_FULL;
	if (__sync_fetch_and_add(&usage->sessions, 1) >= cfg->max_sessions_per_source) {
		__sync_fetch_and_add(&usage->sessions, -1);
		return REASON_DROP_NAT_SESSION_QUOTA;
	}
	so->endpoint.addr = out_key->addr_a;
	so->endpoint.port = out_key->port_a;
	so->endpoint.protocol = out_key->protocol;
	reason = mapping_acquire(&so->endpoint, pool, cfg, usage, &so->mapping);
	if (reason != REASON_MAX) {
		__sync_fetch_and_add(&usage->sessions, -1);
		return reason;
	}
	so->other_key = inbound_key(out_key->addr_b, so->mapping.view.to_addr, out_key->port_b,
				    so->mapping.view.to_port, out_key->protocol);
	so->values.flags = SESSION_SNAT | (hairpin ? SESSION_HAIRPIN : 0);
	so->values.to_addr = so->mapping.view.to_addr;
	so->values.to_port = so->mapping.view.to_port;
	so->values.counter_slot = so->mapping.view.counter_slot;
	so->values.last_seen = now;
	err = session_insert(cfg, out_key, &so->other_key, &so->values, out_key->addr_a, out_key->port_a, out,
			     &so->other);
	if (err < 0) {
		mapping_put(so->mapping.view.bucket, so->mapping.view.index, so->mapping.view.state);
		__sync_fetch_and_add(&usage->sessions, -1);
		/* Another CPU opened this very session: use it (*out is its record). */
		if (err == -EEXIST)
			return REASON_MAX;
		return err == -EAGAIN ? OPENED_ELSEWHERE : insert_refused(err);
	}
	return REASON_MAX;
}

/* Open a session through a forward entry for a packet arriving at an EIP of a NAT
 * gateway that matched no session. Filtering is address- and port-dependent (RFC 4787
 * section 5): without a forward entry the packet is dropped. On success (REASON_MAX)
 * *in is its inbound record. A global function, like snat_open. */
__noinline int dnat_open(const struct nat_config *cfg, const struct record_key *in_key, const struct l4_fields *l4,
			 __u64 now_hairpin, struct record_view *in)
{
	__u32 now = (__u32)now_hairpin;
	bool hairpin = now_hairpin >> 32;
	struct session_opening *so = session_opening_get();
	struct forward_target *target;
	long err;

	if (!cfg || !in_key || !l4 || !in || !so)
		return REASON_DROP_NAT_NO_SESSION;
	/* in_key is the uplink tuple: remote, EIP and their ports. */
	so->endpoint.addr = in_key->addr_b;
	so->endpoint.port = in_key->port_b;
	so->endpoint.protocol = in_key->protocol;
	target = bpf_map_lookup_elem(&forward_ports, &so->endpoint);
	if (!target)
		return REASON_DROP_NAT_NO_SESSION;
	/* A forward entry opens TCP sessions with a SYN only. */
	if (l4->kind == L4_TCP && (l4->tcp_flags & (SEG_SYN | SEG_ACK | SEG_RST)) != SEG_SYN)
		return REASON_DROP_NAT_NO_SESSION;
	so->other_key = outbound_key(target->addr, in_key->addr_a, target->port, in_key->port_a, in_key->protocol);
	so->values.flags = SESSION_DNAT | (hairpin ? SESSION_HAIRPIN : 0);
	so->values.to_addr = in_key->addr_b;
	so->values.to_port = in_key->port_b;
	so->values.counter_slot = target->counter_slot;
	so->values.last_seen = now;
	err = session_insert(cfg, &so->other_key, in_key, &so->values, target->addr, target->port, &so->other, in);
	if (err == 0)
		return REASON_MAX;
	if (err == -EAGAIN)
		return OPENED_ELSEWHERE;
	if (err != -EEXIST)
		return insert_refused(err);
	/* Another CPU opened it, or the server's tuple is already some other session's. */
	if (so->other.to_addr != in_key->addr_b || so->other.to_port != in_key->port_b)
		return REASON_DROP_NAT_NO_SESSION;
	return OPENED_ELSEWHERE;
}
