/* sessions.h: opening NAT gateway sessions: through an SNAT entry (outbound) or a
 * forward entry (inbound). Their state and removal are conntrack.h's. */
#pragma once

#include "conntrack.h"
#include "ports.h"

/* Insert a new session's two records: outbound first, inbound second, so an inbound
 * packet never finds a session without its outbound half (expiry removes them in the
 * other order). Returns 0, -EEXIST when the outbound record exists already (another
 * CPU opened the same session this instant, or the tuple is another session's), or
 * another negative error, having inserted nothing. */
static __always_inline long session_insert(const struct flow_key *key, const struct session *out,
					   const struct reply_key *reply, const struct session_in *in)
{
	long err = bpf_map_update_elem(&sessions, key, out, BPF_NOEXIST);

	if (err < 0)
		return err;
	err = bpf_map_update_elem(&sessions_in, reply, in, BPF_NOEXIST);
	if (err < 0) {
		bpf_map_delete_elem(&sessions, key);
		return err == -EEXIST ? -E2BIG : err; /* the inbound tuple is taken: no room for this one */
	}
	return 0;
}

/* Open an SNAT session for key through pool, for the registered instance at sender;
 * its records say what was opened. On success *s points at the outbound record. */
static __always_inline enum reason snat_open(const struct nat_config *cfg, const struct flow_key *key,
					     const struct snat_pool *pool, __u64 now, bool hairpin,
					     const __u8 *sender, struct session **s)
{
	struct endpoint inside = {};
	struct session out = {};
	struct session_in in = {};
	struct source_usage *usage;
	struct reply_key reply;
	struct mapping m;
	enum reason reason;
	long err;

	if (!cfg)
		return REASON_DROP_NAT_PORTS_EXHAUSTED;
	usage = source_usage_of(key->inside_addr);
	if (!usage)
		return REASON_DROP_NAT_TABLE_FULL;
	if (__sync_fetch_and_add(&usage->sessions, 1) >= cfg->max_sessions_per_source) {
		__sync_fetch_and_add(&usage->sessions, -1);
		return REASON_DROP_NAT_SESSION_QUOTA;
	}
	inside.addr = key->inside_addr;
	inside.port = key->inside_port;
	inside.protocol = key->protocol;
	reason = mapping_acquire(&inside, pool, cfg, usage, &m);
	if (reason != REASON_MAX) {
		__sync_fetch_and_add(&usage->sessions, -1);
		return reason;
	}
	out.eip = m.outside.addr;
	out.eip_port = m.outside.port;
	out.flags = SESSION_SNAT | (hairpin ? SESSION_HAIRPIN : 0);
	out.counter_slot = m.counter_slot;
	out.last_seen_ns = now;
	__builtin_memcpy(out.sender_mac, sender, ETH_ALEN);
	in.inside_addr = key->inside_addr;
	in.inside_port = key->inside_port;
	in.flags = out.flags;
	in.counter_slot = m.counter_slot;
	in.last_seen_ns = now;
	reply = reply_key_of(key->remote_addr, key->remote_port, m.outside.addr, m.outside.port, key->protocol);
	err = session_insert(key, &out, &reply, &in);
	if (err < 0) {
		mapping_release(&inside);
		__sync_fetch_and_add(&usage->sessions, -1);
		if (err != -EEXIST)
			return REASON_DROP_NAT_TABLE_FULL;
		/* Another CPU opened this very session: use it. */
		*s = bpf_map_lookup_elem(&sessions, key);
		return *s ? REASON_MAX : REASON_DROP_NAT_TABLE_FULL;
	}
	*s = bpf_map_lookup_elem(&sessions, key);
	return *s ? REASON_MAX : REASON_DROP_NAT_NO_SESSION;
}

/* Open a session through a forward entry for a packet arriving at an EIP of a NAT
 * gateway that matched no session. Filtering is address- and port-dependent (RFC 4787
 * section 5): without a forward entry the packet is dropped. On success *in points
 * at the inbound record. */
static __always_inline enum reason dnat_open(const struct reply_key *reply, const struct l4_fields *l4, __u64 now,
					     bool hairpin, struct session_in **in)
{
	struct forward_target *target;
	struct endpoint external = {};
	struct session out = {}, *cur;
	struct session_in fresh = {};
	struct flow_key key = {};
	long err;

	external.addr = reply->eip;
	external.port = reply->eip_port;
	external.protocol = reply->protocol;
	target = bpf_map_lookup_elem(&forward_ports, &external);
	if (!target)
		return REASON_DROP_NAT_NO_SESSION;
	/* A forward entry opens TCP sessions with a SYN only. */
	if (l4->kind == L4_TCP && (l4->tcp_flags & (SEG_SYN | SEG_ACK | SEG_RST)) != SEG_SYN)
		return REASON_DROP_NAT_NO_SESSION;
	key.inside_addr = target->addr;
	key.remote_addr = reply->remote_addr;
	key.inside_port = target->port;
	key.remote_port = reply->remote_port;
	key.protocol = reply->protocol;
	out.eip = reply->eip;
	out.eip_port = reply->eip_port;
	out.flags = SESSION_DNAT | (hairpin ? SESSION_HAIRPIN : 0);
	out.counter_slot = target->counter_slot;
	out.last_seen_ns = now;
	fresh.inside_addr = target->addr;
	fresh.inside_port = target->port;
	fresh.flags = out.flags;
	fresh.counter_slot = target->counter_slot;
	fresh.last_seen_ns = now;
	err = session_insert(&key, &out, reply, &fresh);
	if (err == -EEXIST) {
		/* Another CPU opened it, or the server's tuple is already some other session's. */
		cur = bpf_map_lookup_elem(&sessions, &key);
		if (!cur)
			return REASON_DROP_NAT_TABLE_FULL;
		if (cur->eip != reply->eip || cur->eip_port != reply->eip_port)
			return REASON_DROP_NAT_NO_SESSION;
	} else if (err < 0) {
		return REASON_DROP_NAT_TABLE_FULL;
	}
	*in = bpf_map_lookup_elem(&sessions_in, reply);
	return *in ? REASON_MAX : REASON_DROP_NAT_NO_SESSION;
}
