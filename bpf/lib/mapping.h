/* mapping.h: endpoint-independent mappings (RFC 4787 REQ-1): one external endpoint per
 * internal endpoint, whatever the remote. Each is a record of the session table (kind
 * RECORD_MAPPING, keyed by the internal endpoint), counting the sessions that hold it
 * in its `sessions`: found, created and removed like the sessions' own records, where
 * a hash map of mappings cost a bucket lock and a free-list pop per new mapping and
 * about 90 bytes a session of capacity. Taking one is ports.h's; this is its key, and
 * holding and letting go. */
#pragma once

#include "maps.h"
#include "port_bitmap.h"
#include "session_table.h"
#include "types.h"

static __always_inline struct record_key mapping_key(__be32 inside_addr, __be16 inside_port, __u8 protocol)
{
	struct record_key k = {inside_addr, 0, inside_port, 0, protocol, RECORD_MAPPING, 0};

	return k;
}

/* Drop a reference on the mapping record at (bucket, index), last seen in state seen:
 * the last one removes the record, then frees its external port and its share of the
 * internal address's port quota (removed first, so no new session finds it). */
static __always_inline void mapping_put(__u32 bucket, __u32 index, __u32 seen)
{
	struct session_record *r = record_at(bucket, index);
	struct source_usage *u;
	struct nat_eip *eip;
	__be32 inside_addr, outside_addr;
	__be16 outside_port;
	__u8 protocol;

	if (!r || __sync_fetch_and_add(&r->sessions, -1) != 1)
		return;
	/* At 0 nobody else takes it (mapping_hold backs off): its fields stay. */
	inside_addr = r->addr_a;
	outside_addr = r->to_addr;
	outside_port = r->to_port;
	protocol = r->protocol;
	if (!record_remove_at(bucket, index, seen))
		return;
	/* The EIP's bitmap, by its current entry: an EIP removed meanwhile has no ports
	 * to free, and its block may be another EIP's by now. */
	eip = bpf_map_lookup_elem(&nat_eips, &outside_addr);
	if (eip)
		port_free(eip->port_block, protocol, bpf_ntohs(outside_port));
	u = bpf_map_lookup_elem(&usage_by_source, &inside_addr);
	if (u)
		__sync_fetch_and_add(&u->ports, -1);
}

/* Take a reference on the mapping record v found: REASON_MAX, or
 * REASON_DROP_NAT_MAPPING_EXPIRING when its last session let it go meanwhile. */
static __always_inline enum reason mapping_hold(const struct record_view *v)
{
	struct session_record *r = record_at(v->bucket, v->index);
	__u32 old, now;

	if (!r)
		return REASON_DROP_NAT_MAPPING_EXPIRING;
	old = __sync_fetch_and_add(&r->sessions, 1);
	now = READ_ONCE_U32(r->state);
	if (now != v->state) {
		/* Removed and its slot taken again since v was read: the reference went to
		 * another record. Give it back as that record's: a live mapping's, whose
		 * last session may have gone meanwhile; anything else's, plainly (a
		 * session's last_seen moved by one unit and back). */
		if (RECORD_KIND(now) == RECORD_MAPPING && old != 0)
			mapping_put(v->bucket, v->index, now);
		else
			__sync_fetch_and_add(&r->sessions, -1);
		return REASON_DROP_NAT_MAPPING_EXPIRING;
	}
	if (old == 0) {
		/* Its last session let it go: it is being removed, its port freed. */
		__sync_fetch_and_add(&r->sessions, -1);
		return REASON_DROP_NAT_MAPPING_EXPIRING;
	}
	return REASON_MAX;
}

/* Drop a session's reference on the mapping of an internal endpoint. */
static __always_inline void mapping_release(const struct nat_config *cfg, __be32 inside_addr, __be16 inside_port,
					    __u8 protocol)
{
	struct record_key k = mapping_key(inside_addr, inside_port, protocol);
	struct record_view v = {};

	if (record_find(cfg, &k, &v))
		mapping_put(v.bucket, v.index, v.state);
}
