/* sessions.h: opening NAT gateway sessions: through an SNAT entry (outbound) or a
 * forward entry (inbound). Their state and removal are conntrack.h's. */
#pragma once

#include "conntrack.h"
#include "ports.h"

/* Open an SNAT session for key through pool. On success *s points at the session. */
static __always_inline enum reason snat_open(const struct flow_key *key, const struct snat_pool *pool,
					     __u64 now, bool hairpin, struct session **s)
{
	struct nat_config *cfg = nat_config_get();
	struct endpoint inside = {};
	struct session fresh = {};
	struct source_usage *usage;
	struct reply_key reply;
	struct mapping m;
	enum reason reason;

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
	fresh.eip = m.outside.addr;
	fresh.eip_port = m.outside.port;
	fresh.flags = SESSION_SNAT | (hairpin ? SESSION_HAIRPIN : 0);
	fresh.counter_slot = m.counter_slot;
	fresh.last_seen_ns = now;
	reply = reply_key_of(key->remote_addr, key->remote_port, m.outside.addr, m.outside.port, key->protocol);
	/* Session first, reply entry second: inbound never finds a reply without session. */
	if (bpf_map_update_elem(&sessions, key, &fresh, BPF_NOEXIST) < 0) {
		mapping_release(&inside);
		__sync_fetch_and_add(&usage->sessions, -1);
		/* Another CPU opened this very session: use it. */
		*s = bpf_map_lookup_elem(&sessions, key);
		return *s ? REASON_MAX : REASON_DROP_NAT_TABLE_FULL;
	}
	if (bpf_map_update_elem(&sessions_by_reply, &reply, key, BPF_NOEXIST) < 0) {
		bpf_map_delete_elem(&sessions, key);
		mapping_release(&inside);
		__sync_fetch_and_add(&usage->sessions, -1);
		return REASON_DROP_NAT_TABLE_FULL;
	}
	*s = bpf_map_lookup_elem(&sessions, key);
	return *s ? REASON_MAX : REASON_DROP_NAT_NO_SESSION;
}

/* Find the session of a packet arriving at an EIP of a NAT gateway (found is the
 * caller's lookup of reply in sessions_by_reply), or open one through a forward entry.
 * Filtering is address- and port-dependent (RFC 4787 section 5): without a session or
 * a forward entry the packet is dropped. */
static __always_inline enum reason inbound_session(const struct reply_key *reply, const struct flow_key *found,
						   const struct nat_l4 *l4, __u64 now, bool hairpin,
						   struct flow_key *key, struct session **s)
{
	struct forward_target *target;
	struct endpoint external = {};
	struct session fresh = {}, *cur;

	if (found) {
		*key = *found;
		*s = bpf_map_lookup_elem(&sessions, key);
		return *s ? REASON_MAX : REASON_DROP_NAT_NO_SESSION;
	}
	external.addr = reply->eip;
	external.port = reply->eip_port;
	external.protocol = reply->protocol;
	target = bpf_map_lookup_elem(&forward_ports, &external);
	if (!target)
		return REASON_DROP_NAT_NO_SESSION;
	/* A forward entry opens TCP sessions with a SYN only. */
	if (l4->kind == L4_TCP && (l4->tcp_flags & (SEG_SYN | SEG_ACK | SEG_RST)) != SEG_SYN)
		return REASON_DROP_NAT_NO_SESSION;
	key->inside_addr = target->addr;
	key->remote_addr = reply->remote_addr;
	key->inside_port = target->port;
	key->remote_port = reply->remote_port;
	key->protocol = reply->protocol;
	fresh.eip = reply->eip;
	fresh.eip_port = reply->eip_port;
	fresh.flags = SESSION_DNAT | (hairpin ? SESSION_HAIRPIN : 0);
	fresh.counter_slot = target->counter_slot;
	fresh.last_seen_ns = now;
	if (bpf_map_update_elem(&sessions, key, &fresh, BPF_NOEXIST) < 0) {
		/* Another CPU opened it, or the server's tuple is already some other session's. */
		cur = bpf_map_lookup_elem(&sessions, key);
		if (!cur)
			return REASON_DROP_NAT_TABLE_FULL;
		if (cur->eip != reply->eip || cur->eip_port != reply->eip_port)
			return REASON_DROP_NAT_NO_SESSION;
		*s = cur;
		return REASON_MAX;
	}
	if (bpf_map_update_elem(&sessions_by_reply, reply, key, BPF_NOEXIST) < 0) {
		bpf_map_delete_elem(&sessions, key);
		return REASON_DROP_NAT_TABLE_FULL;
	}
	*s = bpf_map_lookup_elem(&sessions, key);
	return *s ? REASON_MAX : REASON_DROP_NAT_NO_SESSION;
}
