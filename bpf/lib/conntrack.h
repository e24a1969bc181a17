/* conntrack.h: NAT gateway sessions: their state, their timeouts, and their removal.
 * Packets only create and refresh sessions; removal happens in expire_session, a
 * program the Go garbage collector runs, so that every count kept beside the sessions
 * (mapping references, per-source quotas) changes atomically in one place. */
#pragma once

#include "maps.h"
#include "rewrite.h"
#include "types.h"

/* A session's last_seen is rewritten at most this often: a write per packet would
 * bounce its cache line between CPUs for no gain in timeout precision. */
#define LAST_SEEN_GRANULARITY_NS (100ULL * 1000 * 1000)

static __always_inline struct nat_config *nat_config_get(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&nat_settings, &zero);
}

/* The sessions' clock: the coarse monotonic clock, which costs a load where
 * bpf_ktime_get_ns reads the clock source (10-19 ns), and is as fine as last_seen
 * needs; or the time a test froze it at (cfg: the caller's nat_config_get()). */
static __always_inline __u64 session_now(const struct nat_config *cfg)
{
	if (cfg && cfg->frozen_now_ns)
		return cfg->frozen_now_ns;
	return bpf_ktime_get_coarse_ns();
}

/* A direction's record saw a packet now: last_seen is one of its fields. */
static __always_inline void session_touch(__u64 *last_seen, __u64 now)
{
	if (now - *last_seen > LAST_SEEN_GRANULARITY_NS)
		*last_seen = now;
}

/* Record what a TCP segment says about the connection in its direction's bits. */
static __always_inline void session_track_tcp(__u32 *seen, __u8 tcp_flags, const bool from_inside)
{
	__u32 bits = from_inside ? TCP_SEEN_INSIDE : TCP_SEEN_REMOTE;

	if (tcp_flags & SEG_FIN)
		bits |= from_inside ? TCP_FIN_INSIDE : TCP_FIN_REMOTE;
	if (tcp_flags & SEG_RST)
		bits |= TCP_SEEN_RST;
	if ((*seen & bits) != bits)
		__sync_fetch_and_or(seen, bits);
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

/* Drop one session's reference on its mapping; the last one removes the mapping and
 * frees its external port (mapping first, so no new session finds it). */
static __always_inline void mapping_release(const struct endpoint *inside)
{
	struct mapping *m = bpf_map_lookup_elem(&mappings, inside);
	struct source_usage *u;
	struct endpoint outside;

	if (!m)
		return;
	if (__sync_fetch_and_add(&m->sessions, -1) != 1)
		return;
	outside = m->outside;
	bpf_map_delete_elem(&mappings, inside);
	bpf_map_delete_elem(&ports_in_use, &outside);
	u = bpf_map_lookup_elem(&usage_by_source, &inside->addr);
	if (u)
		__sync_fetch_and_add(&u->ports, -1);
}

/* The uplink tuple of a packet from remote to an EIP of this gateway. */
static __always_inline struct reply_key reply_key_of(__be32 remote, __be16 remote_port, __be32 eip,
						     __be16 eip_port, __u8 protocol)
{
	struct reply_key reply = {};

	reply.remote_addr = remote;
	reply.eip = eip;
	reply.remote_port = remote_port;
	reply.eip_port = eip_port;
	reply.protocol = protocol;
	return reply;
}

/* Remove a session and what it holds: the inbound record first (inbound stops), then
 * the outbound one, its quota share and its mapping reference. A session is idle when
 * neither direction saw a packet for its timeout, which both directions' TCP bits
 * decide. */
static __always_inline int session_remove(const struct flow_key *key, __u64 now, bool force, __u32 *removed_flags)
{
	struct session *s = bpf_map_lookup_elem(&sessions, key);
	struct nat_config *cfg = nat_config_get();
	struct endpoint inside = {};
	struct session_in *in;
	struct reply_key reply;
	struct source_usage *u;
	__u64 last_seen;
	__u32 tcp;
	__u8 flags;

	if (!s || !cfg)
		return 0;
	reply = reply_key_of(key->remote_addr, key->remote_port, s->eip, s->eip_port, key->protocol);
	in = bpf_map_lookup_elem(&sessions_in, &reply);
	last_seen = s->last_seen_ns;
	tcp = s->tcp;
	if (in) {
		if (in->last_seen_ns > last_seen)
			last_seen = in->last_seen_ns;
		tcp |= in->tcp;
	}
	if (!force && now - last_seen < session_timeout(cfg, key->protocol, tcp))
		return 0; /* refreshed since the collector looked */
	flags = s->flags;
	bpf_map_delete_elem(&sessions_in, &reply);
	if (bpf_map_delete_elem(&sessions, key) < 0)
		return 0; /* another collector won */
	*removed_flags = flags;
	if (!(flags & SESSION_SNAT))
		return 1;
	u = bpf_map_lookup_elem(&usage_by_source, &key->inside_addr);
	if (u)
		__sync_fetch_and_add(&u->sessions, -1);
	inside.addr = key->inside_addr;
	inside.port = key->inside_port;
	inside.protocol = key->protocol;
	mapping_release(&inside);
	return 1;
}
