/* types.h: every struct and enum that Go sees; bpf2go turns them into Go types (-type). */
#pragma once

#include <linux/types.h>

/* Why a packet left the fast path. Each value is a counter in reason_counters and a
 * metric name on the Go side (dataplane.Reason); a Go test checks the name table
 * against REASON_MAX, so add new values before it, give them a name there and a kind
 * in reason_kinds (stats.h). The order means nothing. */
enum reason {
	/* Handed to the kernel (XDP_PASS / TC_ACT_OK). */
	REASON_PASS_NOT_IPV4 = 0,   /* ARP, IPv6: the kernel's business */
	REASON_PASS_NOT_BOUND,      /* IPv4, but no binding owns it and the kernel would not forward it (the host's own traffic) */
	REASON_PASS_TTL_EXPIRING,   /* TTL <= 1: the kernel answers with ICMP time exceeded */
	REASON_PASS_NO_NEIGH,       /* translated, but the next hop's MAC is not resolved yet */
	REASON_PASS_MTU_EXCEEDED,   /* translated, but bigger than the egress MTU: the kernel fragments or says so */
	REASON_PASS_FIB_OTHER,      /* translated, but the route lookup gave no forwarding next hop */
	REASON_PASS_FRAGMENT_TO_TC, /* XDP hands a fragment to be held or released to its TC companion */
	REASON_PASS_VLAN_TAGGED,    /* a VLAN-tagged frame: never translated, the kernel's (its VLAN devices') business */
	REASON_PASS_BROADCAST_MULTICAST, /* to 255.255.255.255 or 224.0.0.0/4: never translated; the kernel does not forward it */
	REASON_PASS_OTHER_HOST,     /* a frame to another host's MAC or to an Ethernet group address: never translated; the kernel does not forward it */
	/* Kept by the gateway, to be sent later. */
	REASON_HELD_FRAGMENT,       /* a non-first fragment before its first fragment: held until it comes */
	/* Dropped (XDP_DROP / TC_ACT_SHOT). */
	REASON_DROP_TRUNCATED_ETH,  /* shorter than an Ethernet header */
	REASON_DROP_BAD_IP_HEADER,  /* version != 4, IHL < 5, or the header runs past the frame */
	REASON_DROP_BAD_IP_LENGTH,  /* total length shorter than the header or longer than the frame */
	REASON_DROP_TRUNCATED_L4,   /* a bound packet whose TCP/UDP/ICMP header is cut short */
	REASON_DROP_BAD_TCP_HEADER, /* TCP data offset below 5 words, or past the segment */
	REASON_DROP_BAD_UDP_LENGTH, /* UDP length below 8, or (unfragmented) beyond the IP payload */
	REASON_DROP_BAD_ICMP_ERROR, /* an ICMP error whose quoted packet is malformed */
	REASON_DROP_ICMP_MISMATCH,  /* an ICMP error whose quoted packet was not sent by the binding */
	REASON_DROP_CUT_THROUGH_SPOOF, /* a cut-through EIP as source, but not from its ENI's MAC */
	/* The edge: who may send what (docs/security.md). */
	REASON_DROP_SPOOFED_SOURCE,  /* from the VPC: a bound, SNAT or EIP-pool source not registered with the sending MAC */
	REASON_DROP_UNTRANSLATED_SOURCE, /* from the VPC: untranslated, to a global address the kernel would forward */
	REASON_DROP_BOGON_SOURCE,    /* from the internet: a special-purpose source address (RFC 6890), not for the gateway itself */
	REASON_DROP_UNPUBLISHED_DESTINATION, /* from the internet: not an EIP, and not the gateway's own address */
	/* NAT gateways. The refusals of a new session (ports, quotas, table) answer the
	 * instance with ICMP 3/13 (RFC 5508 section 3.3) when the gateway has an address
	 * to send it from; the packet itself is not forwarded either way. */
	REASON_DROP_NAT_NO_SESSION,      /* to a NAT gateway EIP, matching no session and no forward entry (the filter) */
	REASON_DROP_NAT_UNSUPPORTED,     /* a protocol or ICMP type the NAT gateway does not translate */
	REASON_DROP_NAT_PORTS_EXHAUSTED, /* no free external port on the entry's EIPs */
	REASON_DROP_NAT_PORT_QUOTA,      /* the source holds its quota of external ports */
	REASON_DROP_NAT_SESSION_QUOTA,   /* the source holds its quota of sessions */
	REASON_DROP_NAT_TABLE_FULL,      /* the session or mapping table is full */
	REASON_DROP_NAT_MAPPING_EXPIRING,/* the mapping was being expired at that instant; the next packet makes a new one */
	REASON_DROP_NAT_CONTENDED,       /* another CPU opened the same session or took its slot at the same instant; the next packet tries again */
	REASON_DROP_FRAGMENT_NO_STATE,   /* a non-first fragment of a NAT gateway flow whose first fragment was not seen, and that could not be held (too big, too many, no room) */
	REASON_DROP_OVER_BANDWIDTH,      /* over its EIP's bandwidth in that direction (counted per EIP too) */
	REASON_MAX,
};

/* What a reason does with the packet. Zero is no kind: a reason left out of
 * reason_kinds is dropped (and a Go test fails). */
enum reason_kind {
	REASON_KIND_PASS = 1, /* handed to the kernel */
	REASON_KIND_HELD = 2, /* kept, to be sent later */
	REASON_KIND_DROP = 3,
};

/* Where to send a packet without asking the kernel's FIB: what bpf_fib_lookup would
 * answer for a destination, kept by eipd from the kernel's routes, neighbours and
 * links (dataplane/nexthop.go). Valid only while generation is the current one in
 * next_hop_settings; all zero is none. */
struct next_hop {
	__u32 ifindex;
	__u8 dmac[6];
	__u8 smac[6];
	__u16 mtu;  /* the largest IP packet the hop takes; a bigger one asks the FIB */
	__u16 pad;
	__u32 generation;
};

/* The value of both binding maps: the address to write, and the binding's slot in
 * eip_counters (one array lookup on the hot path instead of a second hash lookup).
 * The outbound half also carries a MAC registered with the private address, so that
 * the usual sender is checked without a vpc_sources lookup (all zero: none known);
 * the inbound half the next hop to the private address. */
struct binding {
	__be32 addr;
	__u32 counter_slot;
	__u8 sender_mac[6];
	__u16 pad;
	struct next_hop hop;
};

/* Per-EIP metering, one per CPU per binding. "in" is internet -> instance,
 * "out" is instance -> internet. Bytes are IP bytes (header included). */
struct eip_counters {
	__u64 in_packets;
	__u64 in_bytes;
	__u64 out_packets;
	__u64 out_bytes;
	/* Dropped for being over the EIP's bandwidth (not in the counts above). */
	__u64 in_dropped_packets;
	__u64 in_dropped_bytes;
	__u64 out_dropped_packets;
	__u64 out_dropped_bytes;
};

/* An EIP's bandwidth, one per counter slot, set by Go: each direction is policed to
 * bytes_per_sec with a bucket burst_bytes deep (0 bytes_per_sec: not policed), taken
 * from the bucket pair `bucket` (buckets_by_slot and credits_by_slot at bucket * 2 +
 * direction): the slot's own, or one the EIPs of a shared bandwidth (a bandwidth
 * package) all name, past the slots' own. An EIP of a shared bandwidth may also be
 * capped: held to its caps_by_slot rate too, from its own bucket pair. */
struct eip_rate {
	__u64 bytes_per_sec;
	__u64 burst_bytes;
	__u32 bucket;
	__u32 capped; /* 1: caps_by_slot holds the EIP's cap (rates_by_slot only) */
};

/* One direction's token bucket of an EIP or a shared bandwidth (buckets_by_slot,
 * eip_rate.bucket * 2 + direction).
 * The lock makes a refill and a take one step for CPUs that police the same EIP. */
struct eip_bucket {
	struct bpf_spin_lock lock;
	__u32 pad;
	__u64 tokens;   /* bytes */
	__u64 stamp_ns; /* when tokens was last brought up to date */
};

/* An interface a NAT program runs on, with its MAC, in interface_macs (ifindex 0: a
 * free slot). A router forwards only frames sent to it (RFC 1812 section 5.3.4): on a
 * shared segment that floods unknown unicast (a bridge, a switch that lost its
 * table), a gateway that translated every frame it saw would send copies of other
 * gateways' and hosts' traffic. */
struct interface_mac {
	__u32 ifindex;
	__u8 mac[6];
	__u16 pad;
};

/* interface_macs is open addressing on the ifindex: an interface lives in one of
 * INTERFACE_PROBES slots from ifindex % INTERFACE_SLOTS, so that the program finds it
 * in an array (inlined, no hash) and two interfaces whose indexes collide still fit. */
enum interface_slots_layout {
	INTERFACE_SLOTS = 256,
	INTERFACE_PROBES = 4,
};

/* A cut-through EIP: it lives on the instance's secondary ENI and is forwarded
 * untranslated; only that ENI (its MAC) may send with it as source. */
struct cut_through {
	__u8 eni_mac[6];
	__u16 pad;
	__u32 counter_slot;
};

/* An endpoint: an address, a port (or an ICMP echo identifier) and the protocol. */
struct endpoint {
	__be32 addr;
	__be16 port;
	__u8 protocol;
	__u8 pad;
};

/* A NAT gateway session as the VPC side sees it: the instance and the remote peer. */
struct flow_key {
	__be32 inside_addr;
	__be32 remote_addr;
	__be16 inside_port; /* ICMP echo: the identifier */
	__be16 remote_port; /* ICMP echo: 0 */
	__u8 protocol;
	__u8 pad[3];
};

/* How a session began, and whether its remote end is an EIP of this gateway. */
enum session_flags {
	SESSION_SNAT = 1,    /* an instance opened it through an SNAT entry */
	SESSION_DNAT = 2,    /* the internet (or a hairpinned instance) opened it through a forward entry */
	SESSION_HAIRPIN = 4, /* the remote is an EIP of this gateway: translate the destination too */
};

/* What a TCP session has seen, as bits set atomically by both directions. */
enum tcp_seen {
	TCP_SEEN_INSIDE = 1,
	TCP_SEEN_REMOTE = 2,
	TCP_FIN_INSIDE = 4,
	TCP_FIN_REMOTE = 8,
	TCP_SEEN_RST = 16,
} __attribute__((packed)); /* one byte of a record's state */

/* A session is two records, one per direction, each carrying all its packets need,
 * so that each direction finds it with one lookup and writes only its own record
 * (its own last_seen and TCP bits). They live in session_table (session_table.h),
 * beside the mappings the SNAT sessions hold (mapping.h). */
enum record_kind {
	RECORD_EMPTY = 0,
	RECORD_BUSY = 1,     /* being written or removed */
	RECORD_OUTBOUND = 2, /* keyed by the VPC-side tuple: inside, remote, their ports */
	RECORD_INBOUND = 3,  /* keyed by the uplink tuple: remote, EIP, their ports */
	RECORD_MAPPING = 4,  /* keyed by an inside endpoint (addr_b, port_b 0): its external one */
	/* With a kind: inserted, not yet known to be its key's only record; readers
	 * do not see it (record_insert). */
	RECORD_TENTATIVE = 0x80,
} __attribute__((packed)); /* one byte: the low byte of a record's state */

struct session_record {
	union {
		__u32 state; /* read and swapped atomically as a whole */
		struct {
			enum record_kind kind;
			enum tcp_seen tcp; /* the bits this direction saw */
			__u16 generation;  /* moves each time the slot is claimed */
		} parts;
	};
	__be32 addr_a;    /* outbound: the inside address; inbound: the remote's */
	__be32 addr_b;    /* outbound: the remote address; inbound: the EIP */
	__be16 port_a;    /* ICMP echo: the identifier on the side that chose it, 0 on the other */
	__be16 port_b;
	__u8 protocol;
	__u8 flags;       /* enum session_flags */
	__be16 to_port;   /* outbound: the EIP port to write as source; inbound: the inside port */
	__be32 to_addr;   /* outbound and mapping: the EIP; inbound: the inside address */
	__u32 counter_slot;
	union {
		__u32 last_seen; /* the sessions' clock >> SESSION_CLOCK_SHIFT (about 1 ms) */
		__u32 sessions;  /* a mapping: the sessions holding it; 0 means being removed */
	};
};

#define RECORDS_PER_BUCKET 2
struct session_bucket {
	struct session_record records[RECORDS_PER_BUCKET];
};

/* A record's state word: its kind (enum record_kind) in the low byte, its TCP bits
 * (enum tcp_seen) in the next, its generation in the upper half. An enum so that Go
 * reads the layout from the object. */
enum record_state_layout {
	RECORD_KIND_MASK = 0xff,
	RECORD_TCP_SHIFT = 8,
	RECORD_TCP_MASK = 0xff << RECORD_TCP_SHIFT,
	RECORD_GEN_SHIFT = 16,
};

/* How a key's records are looked for in the session table (session_table.h): in
 * SESSION_WINDOWS windows of SESSION_PROBE_BUCKETS buckets each. An enum so that Go,
 * which finds a session's inbound record the same way, reads it from the object. */
enum session_probe_layout {
	SESSION_PROBE_BUCKETS = 4,
	SESSION_WINDOWS = 3,
};

/* The sessions' clock in last_seen: ns >> 20, about 1.05 ms a unit; 32 bits wrap after
 * 52 days, far beyond any timeout (idle times are taken modulo 2^32). An enum so that
 * Go reads it from the object. */
enum session_clock {
	SESSION_CLOCK_SHIFT = 20,
};

/* The EIPs an SNAT entry translates to. */
#define MAX_POOL_EIPS 20
struct snat_pool {
	__be32 eips[MAX_POOL_EIPS];
	__u32 counter_slots[MAX_POOL_EIPS];
	__u32 port_blocks[MAX_POOL_EIPS]; /* each EIP's block of port_bitmaps */
	__u32 eip_count;
	__u32 affinity; /* 1: an internal address always uses the same EIP (EipAffinity) */
};

struct snat_rule_key {
	__u32 prefixlen;
	__be32 addr;
};

/* A forward (DNAT) entry's target for one external port. */
struct forward_target {
	__be32 addr;
	__be16 port;
	__u16 pad;
	__u32 counter_slot;
};

/* An EIP of a NAT gateway. */
struct nat_eip {
	__u32 counter_slot;
	__u32 port_block; /* its ports' bits in port_bitmaps */
};

/* port_bitmaps' layout: per NAT EIP a block of PORT_PROTOCOLS bitmaps (TCP, UDP, ICMP
 * identifiers), each PORT_WORDS 64-bit words, a bit per port. An enum so that Go reads
 * the layout from the object. */
enum port_bitmap_layout {
	PORT_BITMAP_TCP = 0, /* a block's bitmaps, in this order */
	PORT_BITMAP_UDP = 1,
	PORT_BITMAP_ICMP = 2,
	PORT_PROTOCOLS = 3,
	PORT_WORDS = 1024,
	PORT_BLOCK_WORDS = PORT_PROTOCOLS * PORT_WORDS,
};

/* An internal address's share of the NAT (RFC 6888 quotas). */
struct source_usage {
	__u32 sessions;
	__u32 ports;
};

/* The translation of a fragmented datagram, from its first fragment, for the rest. */
struct fragment_key {
	__be32 saddr;
	__be32 daddr;
	__be16 id;
	__u8 protocol;
	__u8 pad;
};

struct fragment_translation {
	__be32 saddr;
	__be32 daddr;
	__u32 counter_slot;
	__u32 outbound;
};

/* A fragment held until its first fragment comes: the whole frame, as it arrived. */
#define HELD_FRAME_MAX 1536 /* an Ethernet frame of a 1500-byte MTU, with a VLAN tag and slack */
#define HELD_PER_DATAGRAM 4 /* non-first fragments held per datagram */

struct held_key {
	struct fragment_key datagram;
	__u32 index; /* 0 .. HELD_PER_DATAGRAM-1 */
};

struct held_fragment {
	__u32 len;
	__u8 frame[HELD_FRAME_MAX];
};

/* Set by the loader: timeouts, the external port range and the quotas. */
struct nat_config {
	__u64 tcp_established_ns;
	__u64 tcp_transitory_ns;
	__u64 udp_ns;
	__u64 icmp_ns;
	__u32 max_sessions_per_source;
	__u32 max_ports_per_source;
	__u32 max_port_probes;
	__u16 port_min;
	__u16 port_max;
	__be32 icmp_source; /* the gateway's VPC address, source of ICMP 3/13; 0: send none */
	/* 1: inbound UDP packets refresh a session too. RFC 4787 REQ-6 requires outbound
	 * refresh and allows inbound, but then an outside host alone can keep a mapping
	 * open for ever (section 4.3): off by default. */
	__u32 udp_inbound_refresh;
	/* Nonzero: the sessions' clock stands still at this time (tests). */
	__u64 frozen_now_ns;
	/* session_table: the secret seed of its keyed hash, and its bucket count. Set once
	 * for a dataplane (records sit where these put them). */
	__u32 session_seed;
	__u32 session_buckets;
};

/* A VPC address and the MAC it may be sent from: the instance (ENI) registered with
 * it. An address may be registered with several MACs (a HaVip). */
struct source_key {
	__be32 addr;
	__u8 mac[6];
	__u16 pad;
};

/* A set of IPv4 prefixes matched by a bounded scan; first_octets has a bit for every
 * first octet some prefix covers, so an address outside the set costs one load. */
#define MAX_EDGE_PREFIXES 32

struct prefix4 {
	__be32 addr;
	__be32 mask;
};

struct prefix_set {
	__u32 first_octets[8];
	__u32 count;
	__u32 pad;
	struct prefix4 prefixes[MAX_EDGE_PREFIXES];
};

/* Set by eipd: whether next hops are cached (generation 0: no, every packet asks the
 * FIB, as with policy routing or a multipath default), the next hop of destinations
 * the default route covers, and the prefixes of every other route, whose
 * destinations take their own next hop (next_hops) or ask the FIB. */
struct next_hop_config {
	__u32 generation;
	__u32 pad;
	struct next_hop default_hop;
	struct prefix_set specific_routes;
};

/* Why a packet's next hop came from the FIB and not the cache: counted per reason. */
enum next_hop_fallback {
	NEXT_HOP_FALLBACK_OFF,     /* caching is off (not configured, policy routing, multipath) */
	NEXT_HOP_FALLBACK_MISS,    /* no cached hop for the destination */
	NEXT_HOP_FALLBACK_STALE,   /* a cached hop from an older generation */
	NEXT_HOP_FALLBACK_SIZE,    /* bigger than the cached hop's MTU: the FIB decides */
	NEXT_HOP_FALLBACK_MAX,
};

/* Set by the loader: what the edge refuses. */
struct edge_config {
	struct prefix_set special_purpose; /* never a source from the internet; untranslated VPC traffic may go only there */
	struct prefix_set eip_pools;       /* never a source from the VPC, but for a cut-through EIP from its ENI */
};

/* One session for expire_sessions to remove: its key in, whether it went out. */
struct expire_item {
	struct flow_key key;
	__u32 expired;                   /* out: 1 if the session was removed */
	enum session_flags removed_flags; /* out: the removed session's flags */
};

/* Sessions the Go side hands expire_sessions at once (expire_queue's capacity). */
enum { EXPIRE_BATCH = 4096 };

/* The argument of the expire_sessions program, written back with the outcome: the
 * first `count` items of expire_queue are tried. */
struct expire_request {
	__u64 now_ns;  /* the sessions' clock (session_now), read by the caller */
	__u32 force;   /* 1: expire even if alive (purge) */
	__u32 count;   /* items of expire_queue to try, at most EXPIRE_BATCH */
	__u32 expired; /* out: how many were removed */
	__u32 pad;
};
