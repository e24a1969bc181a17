/* conntrack.h: NAT gateway sessions: their state, their timeouts, and their removal.
 * Packets only create and refresh sessions; removal happens in expire_sessions, a
 * program the Go session collector runs, so that every count kept beside the sessions
 * (mapping references, per-source quotas) changes atomically in one place. */
#pragma once

#include "mapping.h"
#include "maps.h"
#include "rewrite.h"
#include "session_table.h"
#include "types.h"


/* The sessions' clock: the coarse monotonic clock, which costs a load where
 * bpf_ktime_get_ns reads the clock source (10-19 ns), and is as fine as last_seen
 * needs; or the time a test froze it at (cfg: the caller's nat_config_get()). */
static __always_inline __u64 session_now(const struct nat_config *cfg)
{
	if (cfg && cfg->frozen_now_ns)
		return cfg->frozen_now_ns;
	return bpf_ktime_get_coarse_ns();
}

/* The clock's resolution, in the object's .rodata so that its type, and the value,
 * reach Go through BTF (dataplane.SessionClockUnit). */
const enum session_clock session_clock_shift = SESSION_CLOCK_SHIFT;

/* The sessions' clock in last_seen's units. */
static __always_inline __u32 session_clock(__u64 now_ns)
{
	return (__u32)(now_ns >> session_clock_shift);
}

/* The enum tcp_seen bits a TCP segment sets in its direction's record. */
static __always_inline __u32 tcp_bits(__u8 tcp_flags, const bool from_inside)
{
	__u32 bits = from_inside ? TCP_SEEN_INSIDE : TCP_SEEN_REMOTE;

	if (tcp_flags & SEG_FIN)
		bits |= from_inside ? TCP_FIN_INSIDE : TCP_FIN_REMOTE;
	if (tcp_flags & SEG_RST)
		bits |= TCP_SEEN_RST;
	return bits;
}

/* RFC 5382 and RFC 7857: a TCP session is established once both ends spoke and until
 * both sent FIN or either sent RST; otherwise it is transitory. */
static __always_inline __u64 session_timeout(const struct nat_config *cfg, __u8 protocol, __u32 tcp)
{
	const __u32 both = TCP_SEEN_INSIDE | TCP_SEEN_REMOTE;
	const __u32 fins = TCP_FIN_INSIDE | TCP_FIN_REMOTE;

	if (protocol == IPPROTO_TCP) {
		if ((tcp & both) == both && (tcp & fins) != fins && !(tcp & TCP_SEEN_RST))
			return cfg->tcp_established_ns;
		return cfg->tcp_transitory_ns;
	}
	if (protocol == IPPROTO_UDP)
		return cfg->udp_ns;
	return cfg->icmp_ns;
}

static __always_inline struct source_usage *source_usage_of(__be32 addr)
{
	struct source_usage *u = bpf_map_lookup_elem(&usage_by_source, &addr);
	struct source_usage zero = {};

	if (u)
		return u;
	/* Another CPU may insert it first; either way it exists after this. */
	bpf_map_update_elem(&usage_by_source, &addr, &zero, BPF_NOEXIST);
	return bpf_map_lookup_elem(&usage_by_source, &addr);
}

/* Remove a session and what it holds: the inbound record first (inbound stops), then
 * the outbound one, its quota share and its mapping reference. A session is idle when
 * neither direction saw a packet for its timeout, which both directions' TCP bits
 * decide. */
static __always_inline int session_remove(const struct flow_key *key, __u64 now_ns, bool force, __u32 *removed_flags)
{
	struct nat_config *cfg = nat_config_get();
	struct record_key out_key, in_key;
	struct record_view out = {}, in = {};
	struct source_usage *u;
	__u32 now, idle, tcp;
	bool has_in;

	if (!cfg)
		return 0;
	out_key = outbound_key(key->inside_addr, key->remote_addr, key->inside_port, key->remote_port, key->protocol);
	if (!record_find(cfg, &out_key, &out))
		return 0;
	in_key = inbound_key(key->remote_addr, out.to_addr, key->remote_port, out.to_port, key->protocol);
	has_in = record_find(cfg, &in_key, &in);
	now = session_clock(now_ns);
	idle = now - out.last_seen;
	tcp = (out.state & RECORD_TCP_MASK) >> RECORD_TCP_SHIFT;
	if (has_in) {
		if (now - in.last_seen < idle)
			idle = now - in.last_seen;
		tcp |= (in.state & RECORD_TCP_MASK) >> RECORD_TCP_SHIFT;
	}
	if (!force && ((__u64)idle << SESSION_CLOCK_SHIFT) < session_timeout(cfg, key->protocol, tcp))
		return 0; /* refreshed since the collector looked */
	if (has_in)
		record_remove(&in);
	if (!record_remove(&out))
		return 0; /* another collector won */
	*removed_flags = out.flags;
	if (!(out.flags & SESSION_SNAT))
		return 1;
	u = bpf_map_lookup_elem(&usage_by_source, &key->inside_addr);
	if (u)
		__sync_fetch_and_add(&u->sessions, -1);
	mapping_release(cfg, key->inside_addr, key->inside_port, key->protocol);
	return 1;
}
